//! Generic OpenAI chat records: `{"messages", "tools"?}` and `{"model", "messages", "metadata"}`.

use super::Draft;
use super::messages::{pair_tool_results, parse_messages};
use super::raw::RawObject;
use crate::reject::DataError;

pub(super) fn parse(mut obj: RawObject) -> Result<Draft, DataError> {
    let mut d = Draft::new(None);
    d.t.trajectory_id = match obj.take_as_text("trajectory_id")? {
        Some(id) => id,
        None => obj.take_as_text("id")?.unwrap_or_default(),
    };
    d.t.instance_id = obj.take_string("instance_id")?;
    d.t.repo = obj.take_string("repo")?;
    d.t.tools = obj.take_as_text("tools")?;
    let items = obj.require_array("messages")?;
    d.t.messages = parse_messages(&items, "messages", &mut d.extras)?;
    pair_tool_results(&mut d.t.messages)?;
    d.keep_rest(obj);
    Ok(d)
}
