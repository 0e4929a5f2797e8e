//! SWE-agent `.traj` files: `history` is the chat the model saw (function-calling variants carry
//! tool calls and `tool_call_ids`; text-action variants keep the action in the assistant text);
//! `trajectory` (steps with timings and state), `environment` and `replay_config` go to metadata.

use serde_json::value::RawValue;

use super::messages::{pair_tool_results, parse_messages};
use super::raw::{RawObject, to_raw};
use super::{Draft, RecordCtx};
use crate::reject::DataError;

pub(super) fn parse(mut obj: RawObject, ctx: &RecordCtx) -> Result<Draft, DataError> {
    let mut d = Draft::new(Some("swe-agent"));
    let items = obj.require_array("history")?;
    d.t.messages = parse_messages(&items, "history", &mut d.extras)?;
    pair_tool_results(&mut d.t.messages)?;
    take_info(&mut d, &mut obj)?;
    d.t.instance_id = obj
        .peek("replay_config")
        .and_then(problem_statement_id)
        .or_else(|| instance_from_file_name(ctx.file_name));
    d.keep_rest(obj);
    Ok(d)
}

/// `info.submission` is the patch and `info.exit_status` how the run ended; the rest of `info`
/// (model stats, edited-file excerpts) stays in metadata.
pub(super) fn take_info(d: &mut Draft, obj: &mut RawObject) -> Result<(), DataError> {
    let Some(raw) = obj.take_raw("info") else {
        return Ok(());
    };
    let mut info = RawObject::parse(&raw, "info")?;
    if let Some(patch) = info.take_string("submission")? {
        d.t.model_patch = Some(patch);
    }
    if let Some(status) = info.take_as_text("exit_status")? {
        d.t.exit_status = Some(status);
    }
    let rest = info.into_rest();
    if !rest.is_empty() {
        d.rest.insert("info".into(), to_raw(&rest)?);
    }
    Ok(())
}

/// `replay_config.problem_statement.id`; `replay_config` is an object or a JSON string of one.
fn problem_statement_id(replay_config: &RawValue) -> Option<String> {
    let text = replay_config.get();
    let config: serde_json::Value = if text.trim_start().starts_with('"') {
        serde_json::from_str::<String>(text)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())?
    } else {
        serde_json::from_str(text).ok()?
    };
    config
        .pointer("/problem_statement/id")?
        .as_str()
        .map(str::to_string)
}

/// SWE-agent names each output `<instance_id>.traj`.
fn instance_from_file_name(name: &str) -> Option<String> {
    let name = name.rsplit('/').next().unwrap_or(name);
    let stem = name
        .strip_suffix(".traj")
        .or_else(|| name.strip_suffix(".traj.json"))?;
    (!stem.is_empty()).then(|| stem.to_string())
}
