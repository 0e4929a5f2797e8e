//! Canonical conversation text for exact-duplicate keys.
//!
//! Two rollouts that differ only in run-specific noise — tool-call ids, UUIDs, timestamps, the
//! per-run workspace folder — are the same training example. [`Canon`] hashes a row's messages
//! (role, content, tool names, arguments with sorted keys) with that noise replaced by tokens.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use crate::view::MessagesView;

/// Run-specific noise a duplicate key may ignore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Ignore {
    CallIds,
    Uuids,
    Timestamps,
    WorkspacePaths,
}

impl Ignore {
    pub fn all() -> Vec<Ignore> {
        vec![
            Ignore::CallIds,
            Ignore::Uuids,
            Ignore::Timestamps,
            Ignore::WorkspacePaths,
        ]
    }
}

#[derive(Debug, Clone)]
pub struct Canon {
    call_ids: bool,
    uuids: bool,
    timestamps: bool,
    prefixes: Vec<String>,
}

fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

/// Length of a UUID (8-4-4-4-12 hex) starting at `s[0]`, if there is one.
fn uuid_at(s: &[u8]) -> Option<usize> {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    let mut i = 0;
    for (g, len) in GROUPS.iter().enumerate() {
        if g > 0 {
            if s.get(i) != Some(&b'-') {
                return None;
            }
            i += 1;
        }
        if s.len() < i + len || !s[i..i + len].iter().all(|&b| is_hex(b)) {
            return None;
        }
        i += len;
    }
    (!s.get(i).is_some_and(|&b| is_hex(b))).then_some(i)
}

/// Length of an ISO-8601 timestamp (`2024-05-01T12:00:00[.123][Z|+02:00]`, `T` or space).
fn timestamp_at(s: &[u8]) -> Option<usize> {
    let digits = |from: usize, n: usize| {
        s.len() >= from + n && s[from..from + n].iter().all(u8::is_ascii_digit)
    };
    let shape = [(0, 4), (5, 2), (8, 2), (11, 2), (14, 2), (17, 2)];
    let seps = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if !shape.iter().all(|&(f, n)| digits(f, n))
        || !seps.iter().all(|&(i, c)| s.get(i) == Some(&c))
        || !matches!(s.get(10), Some(b'T' | b' '))
    {
        return None;
    }
    let mut i = 19;
    if s.get(i) == Some(&b'.') {
        i += 1;
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    if s.get(i) == Some(&b'Z') {
        i += 1;
    } else if matches!(s.get(i), Some(b'+' | b'-')) && digits(i + 1, 2) {
        i += 3;
        if s.get(i) == Some(&b':') {
            i += 1;
        }
        if digits(i, 2) {
            i += 2;
        }
    }
    Some(i)
}

impl Canon {
    pub fn new(ignore: &[Ignore], prefixes: &[String]) -> Canon {
        Canon {
            call_ids: ignore.contains(&Ignore::CallIds),
            uuids: ignore.contains(&Ignore::Uuids),
            timestamps: ignore.contains(&Ignore::Timestamps),
            prefixes: if ignore.contains(&Ignore::WorkspacePaths) {
                prefixes.to_vec()
            } else {
                Vec::new()
            },
        }
    }

    /// Feeds `text` to the hasher with noise replaced by tokens.
    pub fn feed(&self, text: &str, h: &mut Xxh3) {
        let s = text.as_bytes();
        let mut start = 0;
        let mut i = 0;
        while i < s.len() {
            let boundary = i == 0 || !s[i - 1].is_ascii_alphanumeric();
            let rest = &s[i..];
            let hit: Option<(usize, &[u8])> = if !boundary {
                None
            } else {
                let uuid = || {
                    (self.uuids && is_hex(s[i]))
                        .then(|| uuid_at(rest))
                        .flatten()
                        .map(|n| (n, b"<uuid>".as_slice()))
                };
                let ts = || {
                    (self.timestamps && s[i].is_ascii_digit())
                        .then(|| timestamp_at(rest))
                        .flatten()
                        .map(|n| (n, b"<ts>".as_slice()))
                };
                let ws = || {
                    (s[i] == b'/')
                        .then(|| self.workspace_at(rest))
                        .flatten()
                        .map(|n| (n, b"<ws>".as_slice()))
                };
                uuid().or_else(ts).or_else(ws)
            };
            match hit {
                Some((n, token)) => {
                    h.update(&s[start..i]);
                    h.update(token);
                    i += n;
                    start = i;
                }
                None => i += 1,
            }
        }
        h.update(&s[start..]);
    }

    fn workspace_at(&self, s: &[u8]) -> Option<usize> {
        self.prefixes.iter().find_map(|p| {
            let rest = s.strip_prefix(p.as_bytes())?;
            let comp = rest
                .iter()
                .position(|&b| b == b'/' || b.is_ascii_whitespace() || b == b'"' || b == b'\'')
                .unwrap_or(rest.len());
            Some(p.len() + comp)
        })
    }

    /// xxh3-128 (32 hex digits) of row `row`'s canonical messages.
    pub fn hash_row(&self, view: &MessagesView, row: usize) -> String {
        let mut h = Xxh3::new();
        for msg in view.row(row) {
            h.update(msg.role().as_bytes());
            h.update(&[0]);
            self.feed(msg.content(), &mut h);
            h.update(&[0]);
            // Absent and empty differ, as in `content_hash`.
            if let Some(reasoning) = msg.reasoning() {
                h.update(&[3]);
                self.feed(reasoning, &mut h);
            }
            h.update(&[0]);
            h.update(msg.name().unwrap_or("").as_bytes());
            h.update(&[0]);
            if !self.call_ids {
                h.update(msg.tool_call_id().unwrap_or("").as_bytes());
            }
            for call in msg.calls() {
                h.update(&[1]);
                if !self.call_ids {
                    h.update(call.id.unwrap_or("").as_bytes());
                }
                h.update(call.name.as_bytes());
                h.update(&[0]);
                // Argument key order is the writer's choice, not content: sort keys.
                let args = trajforge_schema::derive::canonical_json(call.arguments);
                self.feed(&args, &mut h);
            }
            h.update(&[2]);
        }
        format!("{:032x}", h.digest128())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: &Canon, text: &str) -> u128 {
        let mut h = Xxh3::new();
        c.feed(text, &mut h);
        h.digest128()
    }

    #[test]
    fn noise_is_ignored_and_content_is_not() {
        let c = Canon::new(&Ignore::all(), &["/workspace/".to_string()]);
        let a = "run 1b4e28ba-2fa1-11d2-883f-0016d3cca427 at 2024-05-01T12:00:00Z in /workspace/django__4.0/x.py";
        let b = "run 6fa459ea-ee8a-3ca4-894e-db77e160355e at 2025-11-30 08:15:59.123+02:00 in /workspace/django__4.1/x.py";
        assert_eq!(digest(&c, a), digest(&c, b));
        assert_ne!(digest(&c, a), digest(&c, &a.replace("x.py", "y.py")));
        let strict = Canon::new(&[], &[]);
        assert_ne!(digest(&strict, a), digest(&strict, b));
    }

    /// The canonical key sees everything `content_hash` sees (reasoning, message names), and
    /// ignores what it is told to (call ids).
    #[test]
    fn key_covers_reasoning_and_names_but_not_call_ids() {
        use crate::view::tests::{batch_of, call, tool, traj};
        let base = traj(
            "a",
            vec![
                call("bash", serde_json::json!({"command": "ls"})),
                tool("x"),
            ],
        );
        let mut reasoned = base.clone();
        reasoned.messages[0].reasoning_content = Some("think".into());
        let mut empty_reasoning = base.clone();
        empty_reasoning.messages[0].reasoning_content = Some(String::new());
        let mut named = base.clone();
        named.messages[1].name = Some("bash".into());
        let mut other_ids = base.clone();
        other_ids.messages[0].tool_calls[0].id = Some("call_other".into());
        let batch = batch_of(vec![base, reasoned, empty_reasoning, named, other_ids]);
        let messages = batch.column_by_name("messages").expect("messages");
        let view = MessagesView::try_new(messages).expect("canonical");
        let c = Canon::new(&Ignore::all(), &[]);
        let keys: Vec<String> = (0..5).map(|i| c.hash_row(&view, i)).collect();
        for i in 1..4 {
            assert_ne!(keys[0], keys[i], "row {i} differs from row 0");
        }
        assert_ne!(keys[1], keys[2]);
        assert_eq!(keys[0], keys[4], "call ids are ignored");
    }

    #[test]
    fn partial_patterns_are_text() {
        assert_eq!(uuid_at(b"1b4e28ba-2fa1-11d2-883f-0016d3cca42"), None);
        assert_eq!(uuid_at(b"1b4e28ba-2fa1-11d2-883f-0016d3cca4271"), None);
        assert_eq!(timestamp_at(b"2024-05-01"), None);
        assert_eq!(timestamp_at(b"2024-05-01 12:00:00"), Some(19));
    }
}
