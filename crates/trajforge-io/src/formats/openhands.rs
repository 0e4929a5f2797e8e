//! The OpenHands exports: nvidia (tool results without ids), nebius (with ids and tool schemas),
//! and SWE-Gym's sampled trajectories.

use super::Draft;
use super::messages::{pair_tool_results, parse_messages};
use super::raw::RawObject;
use crate::reject::DataError;

fn take_trajectory(d: &mut Draft, obj: &mut RawObject, key: &str) -> Result<(), DataError> {
    let items = obj.require_array(key)?;
    d.t.messages = parse_messages(&items, key, &mut d.extras)?;
    pair_tool_results(&mut d.t.messages)
}

/// What `trajforge synth` writes in the `dataset` field of its rows (then `zero` or `hero`).
pub const SYNTH_DATASET_PREFIX: &str = "trajforge/synth-";

/// `instance_id, repo, license, trajectory_id, trajectory, model_patch, dataset`.
pub(super) fn parse_nvidia(mut obj: RawObject) -> Result<Draft, DataError> {
    let mut d = Draft::new(Some("openhands"));
    // `dataset` names the benchmark a task came from and stays in `metadata`, except for the mark
    // synth leaves: generated rows in nvidia's layout are not NVIDIA's data, and must be neither
    // credited to nor licensed as their dataset.
    if let Some(name) = obj
        .peek("dataset")
        .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
        .filter(|name| name.starts_with(SYNTH_DATASET_PREFIX))
    {
        d.t.source_dataset = Some(name);
    }
    d.t.trajectory_id = obj.take_string("trajectory_id")?.unwrap_or_default();
    d.t.instance_id = obj.take_string("instance_id")?;
    d.t.repo = obj.take_string("repo")?;
    d.t.license = obj.take_string("license")?;
    take_trajectory(&mut d, &mut obj, "trajectory")?;
    d.t.model_patch = obj.take_string("model_patch")?;
    d.keep_rest(obj);
    Ok(d)
}

/// nvidia's fields plus `tools`, `exit_status`, `resolved` (0/1) and test-generation scores.
pub(super) fn parse_nebius(mut obj: RawObject) -> Result<Draft, DataError> {
    let tools = obj.take_as_text("tools")?;
    let exit_status = obj.take_as_text("exit_status")?;
    let resolved = obj.take_bool_like("resolved")?;
    let mut d = parse_nvidia(obj)?;
    d.t.tools = tools;
    d.t.exit_status = exit_status;
    d.t.resolved = resolved;
    Ok(d)
}

/// `instance_id, run_id, resolved, messages, tools, test_result`.
pub(super) fn parse_swe_gym(mut obj: RawObject) -> Result<Draft, DataError> {
    let mut d = Draft::new(Some("openhands"));
    d.t.instance_id = obj.take_string("instance_id")?;
    if let (Some(run), Some(instance)) = (obj.peek("run_id"), d.t.instance_id.as_deref()) {
        // One sampling run visits each instance once: run id + instance id names the rollout.
        if let Ok(run) = serde_json::from_str::<String>(run.get()) {
            d.t.trajectory_id = format!("{run}/{instance}");
        }
    }
    d.t.resolved = obj.take_bool_like("resolved")?;
    d.t.tools = obj.take_as_text("tools")?;
    take_trajectory(&mut d, &mut obj, "messages")?;
    d.keep_rest(obj);
    Ok(d)
}
