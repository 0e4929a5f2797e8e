//! OpenAI-style chat messages shared by most formats, and tool-result pairing.

use std::collections::{BTreeMap, VecDeque};

use serde_json::value::RawValue;
use trajforge_schema::{Message, Role, ToolCall};

use super::raw::{RawObject, is_null, wrong_type};
use crate::reject::{DataError, RejectKind};

/// Fields of messages that the canonical schema has no column for, keyed by message index;
/// they end up in the row's `metadata.message_extras` so nothing is lost.
pub type MessageExtras = BTreeMap<usize, BTreeMap<String, Box<RawValue>>>;

/// Parses a list of chat messages. `list_path` names the list in errors (`trajectory`).
pub fn parse_messages(
    items: &[Box<RawValue>],
    list_path: &str,
    extras: &mut MessageExtras,
) -> Result<Vec<Message>, DataError> {
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("{list_path}[{i}]");
        let mut obj = RawObject::parse(item, &path)?;
        let message = parse_message(&mut obj)?;
        let rest: BTreeMap<_, _> = obj
            .into_rest()
            .into_iter()
            .filter(|(_, v)| !is_null(v))
            .collect();
        if !rest.is_empty() {
            extras.insert(i, rest);
        }
        out.push(message);
    }
    Ok(out)
}

fn parse_message(obj: &mut RawObject) -> Result<Message, DataError> {
    let role = obj.require_string("role")?;
    if Role::parse(&role).is_none() {
        return Err(DataError::new(
            RejectKind::UnknownRole,
            format!(
                "{}: unknown role {role:?} (expected system, developer, user, assistant, tool or function)",
                obj.path_of("role")
            ),
        ));
    }
    let content = take_content(obj)?;
    let reasoning_content = obj.take_string("reasoning_content")?;
    let mut tool_calls = match obj.take_raw("tool_calls") {
        Some(raw) => parse_tool_calls(&raw, &obj.path_of("tool_calls"))?,
        None => Vec::new(),
    };
    if let Some(raw) = obj.take_raw("function_call") {
        // The legacy single-call field of older OpenAI responses.
        tool_calls.push(parse_function(&raw, &obj.path_of("function_call"), None)?);
    }
    let mut tool_call_id = obj.take_string("tool_call_id")?;
    if tool_call_id.is_none() && obj.peek("tool_call_ids").is_some() {
        // SWE-agent writes a list of the call ids an observation answers.
        let ids: Vec<String> = obj
            .take("tool_call_ids", "an array of strings")?
            .unwrap_or_default();
        tool_call_id = ids.first().cloned();
    }
    let name = obj.take_string("name")?;
    Ok(Message {
        role,
        content,
        reasoning_content,
        tool_calls,
        tool_call_id,
        name,
    })
}

/// `content` as a string, null, or a list of typed parts whose text parts are joined.
fn take_content(obj: &mut RawObject) -> Result<Option<String>, DataError> {
    let Some(raw) = obj.peek("content") else {
        obj.take_raw("content");
        return Ok(None);
    };
    if raw.get().trim_start().starts_with('[') {
        let path = obj.path_of("content");
        let parts: Vec<Box<RawValue>> = obj
            .take("content", "a string or a list of parts")?
            .unwrap_or_default();
        let mut text = String::new();
        for (i, part) in parts.iter().enumerate() {
            let mut p = RawObject::parse(part, &format!("{path}[{i}]"))?;
            if let Some(t) = p.take_string("text")? {
                text.push_str(&t);
            }
        }
        return Ok(Some(text));
    }
    obj.take_string("content")
}

fn parse_tool_calls(raw: &RawValue, path: &str) -> Result<Vec<ToolCall>, DataError> {
    let items: Vec<Box<RawValue>> =
        serde_json::from_str(raw.get()).map_err(|_| wrong_type(path, "an array", raw))?;
    let mut calls = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let call_path = format!("{path}[{i}]");
        let mut obj = RawObject::parse(item, &call_path)?;
        let id = obj.take_as_text("id")?;
        let call = match obj.take_raw("function") {
            Some(function) => parse_function(&function, &obj.path_of("function"), id)?,
            // Some exports flatten the call: {"id", "name", "arguments"}.
            None => parse_function(item, &call_path, id)?,
        };
        calls.push(call);
    }
    Ok(calls)
}

fn parse_function(raw: &RawValue, path: &str, id: Option<String>) -> Result<ToolCall, DataError> {
    let mut obj = RawObject::parse(raw, path)?;
    let name = obj.require_string("name")?;
    let args_path = obj.path_of("arguments");
    let arguments = match obj.take_raw("arguments") {
        None => "{}".to_string(),
        Some(a) if a.get().trim_start().starts_with('"') => {
            let text: String = serde_json::from_str(a.get())
                .map_err(|_| wrong_type(&args_path, "a string", &a))?;
            validate_arguments(&text, &args_path)?;
            text
        }
        // Arguments given as a JSON object: keep the source's own text of it.
        Some(a) => a.get().to_string(),
    };
    Ok(ToolCall {
        id,
        name,
        arguments,
    })
}

fn validate_arguments(text: &str, path: &str) -> Result<(), DataError> {
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(|_| ())
        .map_err(|e| {
            DataError::new(
                RejectKind::InvalidToolArguments,
                format!("{path}: tool-call arguments are not valid JSON ({e})"),
            )
        })
}

/// Gives every tool message the id of the call it answers, checking the pairing.
///
/// Calls open when an assistant turn makes them; each tool message answers one. A tool message
/// with an id must name an open call; one without (nvidia rows) answers the oldest open call.
/// A tool message with no open call is a data error, never a guess.
pub fn pair_tool_results(messages: &mut [Message]) -> Result<(), DataError> {
    let mut open: VecDeque<Option<String>> = VecDeque::new();
    for (i, m) in messages.iter_mut().enumerate() {
        match m.role.as_str() {
            "assistant" => open = m.tool_calls.iter().map(|c| c.id.clone()).collect(),
            "tool" => match &m.tool_call_id {
                Some(id) => {
                    let Some(pos) = open.iter().position(|o| o.as_deref() == Some(id.as_str()))
                    else {
                        return Err(DataError::new(
                            RejectKind::UnpairedToolMessage,
                            format!(
                                "message {i}: tool result answers call id {id:?}, which no open tool call has"
                            ),
                        ));
                    };
                    open.remove(pos);
                }
                None => {
                    let Some(id) = open.pop_front() else {
                        return Err(DataError::new(
                            RejectKind::UnpairedToolMessage,
                            format!(
                                "message {i}: tool result with no open tool call to answer (the assistant turn before it made no unanswered call)"
                            ),
                        ));
                    };
                    m.tool_call_id = id;
                }
            },
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Vec<Message>, DataError> {
        let items: Vec<Box<RawValue>> = serde_json::from_str(json).expect("test json");
        parse_messages(&items, "messages", &mut MessageExtras::new())
    }

    #[test]
    fn arguments_text_is_kept_verbatim() {
        let m = parse(r#"[{"role":"assistant","content":null,"tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{ \"x\" :1 }"}}]}]"#).expect("parse");
        assert_eq!(m[0].tool_calls[0].arguments, r#"{ "x" :1 }"#);
        let m = parse(r#"[{"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":{"b": 2,  "a": 1}}}]}]"#).expect("parse");
        assert_eq!(m[0].tool_calls[0].arguments, r#"{"b": 2,  "a": 1}"#);
    }

    #[test]
    fn bad_arguments_and_roles_and_types_are_named() {
        let e = parse(r#"[{"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":"{not json"}}]}]"#).expect_err("must fail");
        assert_eq!(e.kind, RejectKind::InvalidToolArguments);
        assert!(
            e.message
                .contains("messages[0].tool_calls[0].function.arguments"),
            "{}",
            e.message
        );
        let e = parse(r#"[{"role":"robot","content":"x"}]"#).expect_err("must fail");
        assert_eq!(e.kind, RejectKind::UnknownRole);
        let e = parse(r#"[{"role":"user","content":42}]"#).expect_err("must fail");
        assert_eq!(
            (e.kind, e.message.as_str()),
            (
                RejectKind::WrongType,
                "messages[0].content: expected a string, found a number"
            )
        );
    }

    #[test]
    fn pairing_by_order_and_by_id() {
        let mut m = parse(r#"[{"role":"assistant","tool_calls":[{"id":"a","function":{"name":"f","arguments":"{}"}},{"id":"b","function":{"name":"g","arguments":"{}"}}]},{"role":"tool","content":"1"},{"role":"tool","content":"2"}]"#).expect("parse");
        pair_tool_results(&mut m).expect("pairs");
        assert_eq!(m[1].tool_call_id.as_deref(), Some("a"));
        assert_eq!(m[2].tool_call_id.as_deref(), Some("b"));

        let mut m = parse(r#"[{"role":"user","content":"x"},{"role":"tool","content":"orphan"}]"#)
            .expect("parse");
        assert_eq!(
            pair_tool_results(&mut m).expect_err("must fail").kind,
            RejectKind::UnpairedToolMessage
        );
        let mut m = parse(r#"[{"role":"assistant","tool_calls":[{"id":"a","function":{"name":"f"}}]},{"role":"tool","tool_call_id":"zzz","content":"x"}]"#).expect("parse");
        assert_eq!(
            pair_tool_results(&mut m).expect_err("must fail").kind,
            RejectKind::UnpairedToolMessage
        );
    }
}
