//! Statistics of a unified diff: which files it touches and how many lines it adds and removes.
//!
//! Hunk headers (`@@ -a,b +c,d @@`) give the exact number of lines each hunk spans, so a removed
//! line that itself starts with `--` is never mistaken for a file header.

/// What a patch touches.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PatchStats {
    /// Paths in order of first appearance (the new path; the old one for deletions).
    pub files: Vec<String>,
    pub added: u32,
    pub removed: u32,
}

/// Parses `git diff` / unified-diff text. Unknown lines are ignored; never fails.
pub fn patch_stats(patch: &str) -> PatchStats {
    let mut stats = PatchStats::default();
    let mut old_left = 0u32;
    let mut new_left = 0u32;
    let mut pending_old: Option<String> = None;
    for raw in patch.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if old_left > 0 || new_left > 0 {
            match line.as_bytes().first() {
                Some(b'+') => {
                    stats.added += 1;
                    new_left = new_left.saturating_sub(1);
                }
                Some(b'-') => {
                    stats.removed += 1;
                    old_left = old_left.saturating_sub(1);
                }
                Some(b'\\') => {} // "\ No newline at end of file"
                _ => {
                    old_left = old_left.saturating_sub(1);
                    new_left = new_left.saturating_sub(1);
                }
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("@@ ") {
            (old_left, new_left) = hunk_lengths(rest);
        } else if let Some(rest) = line.strip_prefix("--- ") {
            pending_old = diff_path(rest);
        } else if let Some(rest) = line.strip_prefix("+++ ") {
            let path = diff_path(rest).or(pending_old.take());
            if let Some(path) = path {
                push_unique(&mut stats.files, path);
            }
        } else if let Some(rest) = line.strip_prefix("diff --git ") {
            // Renames and mode changes have no ---/+++ lines; take the b/ path from the header.
            if let Some(b_path) = rest.rsplit(" b/").next().filter(|_| rest.contains(" b/")) {
                push_unique(&mut stats.files, b_path.to_string());
            }
        }
    }
    stats
}

fn push_unique(files: &mut Vec<String>, path: String) {
    if !files.contains(&path) {
        files.push(path);
    }
}

/// `a/src/x.py\t2024-…` → `src/x.py`; `/dev/null` → None.
fn diff_path(rest: &str) -> Option<String> {
    let path = rest.split('\t').next().unwrap_or(rest).trim();
    if path == "/dev/null" {
        return None;
    }
    let path = path
        .strip_prefix("a/")
        .or_else(|| path.strip_prefix("b/"))
        .unwrap_or(path);
    Some(path.to_string())
}

/// `-12,7 +12,9 @@ fn x` → (7, 9); a missing count means 1.
fn hunk_lengths(rest: &str) -> (u32, u32) {
    let mut parts = rest.split_whitespace();
    let old = parts
        .next()
        .and_then(|p| p.strip_prefix('-'))
        .map_or(0, range_len);
    let new = parts
        .next()
        .and_then(|p| p.strip_prefix('+'))
        .map_or(0, range_len);
    (old, new)
}

fn range_len(range: &str) -> u32 {
    match range.split_once(',') {
        Some((_, n)) => n.parse().unwrap_or(0),
        None => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_files_and_lines_exactly() {
        let patch = "diff --git a/src/a.py b/src/a.py\nindex 1..2 100644\n--- a/src/a.py\n+++ b/src/a.py\n@@ -1,3 +1,3 @@\n ctx\n--- removed line that looks like a header\n+++ added line that looks like a header\n ctx\ndiff --git a/new.txt b/new.txt\nnew file mode 100644\n--- /dev/null\n+++ b/new.txt\n@@ -0,0 +1,2 @@\n+one\n+two\n";
        let s = patch_stats(patch);
        assert_eq!(s.files, vec!["src/a.py", "new.txt"]);
        assert_eq!((s.added, s.removed), (3, 1));
    }

    #[test]
    fn deleted_file_uses_old_path_and_crlf_is_tolerated() {
        let patch = "diff --git a/gone.py b/gone.py\r\ndeleted file mode 100644\r\n--- a/gone.py\r\n+++ /dev/null\r\n@@ -1,2 +0,0 @@\r\n-x\r\n-y\r\n";
        let s = patch_stats(patch);
        assert_eq!(s.files, vec!["gone.py"]);
        assert_eq!((s.added, s.removed), (0, 2));
    }

    #[test]
    fn empty_and_garbage_patches_give_nothing() {
        assert_eq!(patch_stats(""), PatchStats::default());
        assert_eq!(
            patch_stats("not a diff\n+ but has plus"),
            PatchStats::default()
        );
    }
}
