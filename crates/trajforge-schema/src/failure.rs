//! When a tool result says its call failed. One rule for every reader of it: the
//! `max_failed_edits` filter counts failed editor calls with it, and the tokenizer can take the
//! loss off assistant turns whose call failed.

/// Failure markers of tool results. Phrases are matched case-insensitively (lower-cased once,
/// here, not per result).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureRule {
    prefixes: Vec<String>,
    phrases: Vec<String>,
}

/// The markers the paper's filter uses: an `ERROR` prefix, or the editor's "no replacement was
/// performed".
pub fn default_error_prefixes() -> Vec<String> {
    vec!["ERROR".into()]
}

/// See [`default_error_prefixes`].
pub fn default_failure_phrases() -> Vec<String> {
    vec!["no replacement was performed".into()]
}

impl FailureRule {
    /// A result failed when it starts with one of `prefixes` (after leading whitespace) or
    /// contains one of `phrases` (case-insensitive).
    pub fn new(prefixes: &[String], phrases: &[String]) -> FailureRule {
        FailureRule {
            prefixes: prefixes.to_vec(),
            phrases: phrases.iter().map(|p| p.to_lowercase()).collect(),
        }
    }

    /// Whether the tool result `observation` reports a failure.
    pub fn failed(&self, observation: &str) -> bool {
        let head = observation.trim_start();
        if self.prefixes.iter().any(|p| head.starts_with(p.as_str())) {
            return true;
        }
        if self.phrases.is_empty() {
            return false;
        }
        let lower = observation.to_lowercase();
        self.phrases.iter().any(|p| lower.contains(p.as_str()))
    }
}

impl Default for FailureRule {
    fn default() -> Self {
        FailureRule::new(&default_error_prefixes(), &default_failure_phrases())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_after_whitespace_and_phrases_in_any_case() {
        let r = FailureRule::default();
        assert!(r.failed("  ERROR: file not found"));
        assert!(r.failed("No replacement was performed, old_str did not appear"));
        assert!(!r.failed("ok: ERROR handling added"));
        let custom = FailureRule::new(&[], &["Traceback".into()]);
        assert!(custom.failed("...\ntraceback (most recent call last)"));
        assert!(!custom.failed("ERROR"));
    }
}
