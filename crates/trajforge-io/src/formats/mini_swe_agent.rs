//! mini-swe-agent: plain `{role, content}` messages; the action is a fenced bash block in the
//! assistant text and observations come back as user messages, so there are no tool calls.

use super::Draft;
use super::messages::parse_messages;
use super::raw::RawObject;
use super::swe_agent::take_info;
use crate::reject::DataError;

pub(super) fn parse(mut obj: RawObject) -> Result<Draft, DataError> {
    let mut d = Draft::new(Some("mini-swe-agent"));
    d.t.instance_id = obj.take_string("instance_id")?;
    d.t.repo = obj.take_string("repo")?;
    d.t.exit_status = obj.take_as_text("exit_status")?;
    let items = obj.require_array("messages")?;
    d.t.messages = parse_messages(&items, "messages", &mut d.extras)?;
    take_info(&mut d, &mut obj)?;
    d.keep_rest(obj);
    Ok(d)
}
