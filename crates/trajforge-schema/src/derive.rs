//! Fields derived at ingest, computed the same way for every reader.

use std::collections::BTreeSet;

use xxhash_rust::xxh3::Xxh3;

use crate::patch::patch_stats;
use crate::{Message, Trajectory, instance_key};

/// Fills every derived column of `t` from its messages, patch and instance id.
pub fn fill_derived(t: &mut Trajectory) {
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    t.num_messages = count(t.messages.len());
    t.num_assistant_turns = count(t.messages.iter().filter(|m| m.role == "assistant").count());
    t.num_tool_calls = count(t.messages.iter().map(|m| m.tool_calls.len()).sum());
    let names: BTreeSet<&str> = t
        .messages
        .iter()
        .flat_map(|m| m.tool_calls.iter().map(|c| c.name.as_str()))
        .collect();
    t.tool_names = names.into_iter().map(str::to_string).collect();
    t.content_bytes = t.messages.iter().map(message_bytes).sum();
    let stats = patch_stats(t.model_patch.as_deref().unwrap_or(""));
    t.patch_files = stats.files;
    t.patch_added_lines = stats.added;
    t.patch_removed_lines = stats.removed;
    t.instance_key = t.instance_id.as_deref().and_then(instance_key);
    t.content_hash = content_hash(&t.messages);
}

fn message_bytes(m: &Message) -> u64 {
    let len = |s: &Option<String>| s.as_ref().map_or(0, |s| s.len() as u64);
    len(&m.content)
        + len(&m.reasoning_content)
        + m.tool_calls
            .iter()
            .map(|c| c.arguments.len() as u64)
            .sum::<u64>()
}

/// xxh3-128 of the canonicalised conversation, as 32 lowercase hex digits.
///
/// Canonical form: per message its role, content, reasoning, tool name, and per tool call the
/// function name and the arguments re-serialised with sorted keys and no whitespace. Call ids
/// are left out: they are random per sampling run and carry no content. Every field is
/// length-prefixed, so no two different conversations share a byte stream.
pub fn content_hash(messages: &[Message]) -> String {
    let mut h = Xxh3::new();
    let mut field = |bytes: Option<&[u8]>| match bytes {
        None => h.update(&u64::MAX.to_le_bytes()),
        Some(b) => {
            h.update(&(b.len() as u64).to_le_bytes());
            h.update(b);
        }
    };
    for m in messages {
        field(Some(m.role.as_bytes()));
        field(m.content.as_deref().map(str::as_bytes));
        field(m.reasoning_content.as_deref().map(str::as_bytes));
        field(m.name.as_deref().map(str::as_bytes));
        field(Some(&(m.tool_calls.len() as u64).to_le_bytes()));
        for c in &m.tool_calls {
            field(Some(c.name.as_bytes()));
            field(Some(canonical_json(&c.arguments).as_bytes()));
        }
    }
    format!("{:032x}", h.digest128())
}

/// Sorted-key compact JSON; the text unchanged when it is not JSON.
pub fn canonical_json(text: &str) -> String {
    // serde_json's Map is a BTreeMap here (no `preserve_order`), so writing sorts the keys.
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) => v.to_string(),
        Err(_) => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ToolCall;

    fn call(id: &str, args: &str) -> Message {
        Message {
            tool_calls: vec![ToolCall {
                id: Some(id.into()),
                name: "f".into(),
                arguments: args.into(),
            }],
            ..Message::text("assistant", "x")
        }
    }

    #[test]
    fn hash_ignores_call_ids_and_argument_formatting() {
        let a = content_hash(&[call("1", r#"{"b": 1, "a": 2}"#)]);
        let b = content_hash(&[call("2", r#"{"a":2,"b":1}"#)]);
        assert_eq!(a, b);
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn hash_separates_fields_and_content() {
        let ab = content_hash(&[Message::text("user", "ab"), Message::text("user", "")]);
        let a_b = content_hash(&[Message::text("user", "a"), Message::text("user", "b")]);
        assert_ne!(ab, a_b);
        let none = Message {
            content: None,
            ..Message::text("user", "")
        };
        assert_ne!(
            content_hash(&[none]),
            content_hash(&[Message::text("user", "")])
        );
    }

    #[test]
    fn derived_counts() {
        let mut t = Trajectory {
            messages: vec![
                Message::text("user", "hi"),
                call("1", "{}"),
                call("2", r#"{"k":1}"#),
            ],
            instance_id: Some("a__b-1".into()),
            ..Trajectory::empty()
        };
        fill_derived(&mut t);
        assert_eq!(
            (t.num_messages, t.num_assistant_turns, t.num_tool_calls),
            (3, 2, 2)
        );
        assert_eq!(t.tool_names, vec!["f"]);
        assert_eq!(t.content_bytes, 2 + 1 + 2 + 1 + 7);
        assert_eq!(t.instance_key.as_deref(), Some("a/b#1"));
    }
}
