//! SWE-smith trajectories: `messages` is a JSON string holding a SWE-agent chat in one of three
//! action styles — function calls (`tool`), XML `<function=…>` blocks (`xml`) and fenced blocks
//! (`ticks`). The text is kept as written; for the XML style a tool call is also extracted when
//! the assistant turn holds exactly one well-formed block (anything else is ambiguous and stays
//! text only). Extracted calls are flagged in `metadata.tool_calls_from_text`.

use std::collections::BTreeMap;

use serde_json::value::RawValue;
use trajforge_schema::ToolCall;

use super::Draft;
use super::messages::{pair_tool_results, parse_messages};
use super::raw::{RawObject, to_raw, wrong_type};
use crate::reject::{DataError, RejectKind};

pub(super) fn parse(mut obj: RawObject) -> Result<Draft, DataError> {
    let mut d = Draft::new(Some("swe-agent"));
    d.t.trajectory_id = obj.take_as_text("traj_id")?.unwrap_or_default();
    d.t.instance_id = obj.take_string("instance_id")?;
    d.t.resolved = obj.take_bool_like("resolved")?;
    d.t.model_patch = match obj.take_string("model_patch")? {
        Some(p) => Some(p),
        None => obj.take_string("patch")?,
    };
    d.t.tools = obj.take_as_text("tools")?;
    let items = take_message_items(&mut obj)?;
    d.t.messages = parse_messages(&items, "messages", &mut d.extras)?;
    pair_tool_results(&mut d.t.messages)?;
    let mut extracted = 0usize;
    for m in
        d.t.messages
            .iter_mut()
            .filter(|m| m.role == "assistant" && m.tool_calls.is_empty())
    {
        if let Some(call) = m.content.as_deref().and_then(xml_function_call) {
            m.tool_calls.push(call);
            extracted += 1;
        }
    }
    d.keep_rest(obj);
    if extracted > 0 {
        d.rest.insert("tool_calls_from_text".into(), to_raw("xml")?);
    }
    Ok(d)
}

/// `messages` as a JSON string (the published dataset) or as an array (converted copies).
fn take_message_items(obj: &mut RawObject) -> Result<Vec<Box<RawValue>>, DataError> {
    let raw = obj
        .take_raw("messages")
        .ok_or_else(|| obj.missing("messages"))?;
    let text = raw.get();
    if text.trim_start().starts_with('[') {
        return serde_json::from_str(text).map_err(|_| wrong_type("messages", "an array", &raw));
    }
    let inner: String = serde_json::from_str(text)
        .map_err(|_| wrong_type("messages", "a JSON string or an array", &raw))?;
    serde_json::from_str(&inner).map_err(|e| {
        DataError::new(
            RejectKind::InvalidJson,
            format!("messages: the string does not hold a JSON array of messages ({e})"),
        )
    })
}

/// The single `<function=NAME>…</function>` block of an assistant turn, as a tool call.
fn xml_function_call(text: &str) -> Option<ToolCall> {
    if text.matches("<function=").count() != 1 {
        return None;
    }
    let start = text.find("<function=")? + "<function=".len();
    let name_end = start + text[start..].find('>')?;
    let name = text[start..name_end].trim();
    let body_end = name_end + text[name_end..].find("</function>")?;
    let body = &text[name_end + 1..body_end];
    if name.is_empty() || name.contains(char::is_whitespace) {
        return None;
    }
    let mut params = BTreeMap::new();
    let mut rest = body;
    while let Some(p) = rest.find("<parameter=") {
        let after = &rest[p + "<parameter=".len()..];
        let key_end = after.find('>')?;
        let value_end = after.find("</parameter>")?;
        if value_end < key_end {
            return None;
        }
        let value = &after[key_end + 1..value_end];
        let value = value.strip_prefix('\n').unwrap_or(value);
        let value = value.strip_suffix('\n').unwrap_or(value);
        params.insert(after[..key_end].trim().to_string(), value.to_string());
        rest = &after[value_end + "</parameter>".len()..];
    }
    let arguments = serde_json::to_string(&params).ok()?;
    Some(ToolCall {
        id: None,
        name: name.to_string(),
        arguments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_xml_block_becomes_a_call() {
        let text = "Look.\n<function=str_replace_editor>\n<parameter=command>view</parameter>\n<parameter=path>/testbed/a.py</parameter>\n</function>";
        let call = xml_function_call(text).expect("call");
        assert_eq!(call.name, "str_replace_editor");
        assert_eq!(
            call.arguments,
            r#"{"command":"view","path":"/testbed/a.py"}"#
        );
        let submit = xml_function_call("\n\n<function=submit>\n</function>").expect("call");
        assert_eq!(
            (submit.name.as_str(), submit.arguments.as_str()),
            ("submit", "{}")
        );
    }

    #[test]
    fn ambiguous_blocks_stay_text() {
        assert!(xml_function_call("<function=a>\n</function><function=b>\n</function>").is_none());
        assert!(xml_function_call("<function=a>\n<parameter=x>1").is_none());
        assert!(xml_function_call("```bash\nls\n```").is_none());
    }
}
