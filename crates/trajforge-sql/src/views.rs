//! `messages` and `tool_calls`: the nested `messages` column of `trajectories` flattened, as
//! SQL views (DataFusion plans them; nothing is materialised).
//!
//! - `messages`: one row per message — `trajectory_id`, `turn` (0-based position in the
//!   conversation), `role`, `content`, `reasoning_content`, `tool_call_id`, `name`,
//!   `num_tool_calls`, `tool_name` and `arguments` (of the message's first tool call, or the
//!   tool name a tool result answers), `tool_calls` (the full list).
//! - `tool_calls`: one row per call — `trajectory_id`, `turn`, `call_index`, `call_id`, `name`,
//!   `arguments` (the JSON text as stored).

use datafusion::prelude::SessionContext;

use crate::SqlError;
use crate::catalog::Catalog;

/// The view names.
pub const VIEWS: [&str; 2] = ["messages", "tool_calls"];

/// Creates the views in every schema that has a `trajectories` table.
pub async fn register(ctx: &SessionContext, catalog: &Catalog) -> Result<(), SqlError> {
    for dir in &catalog.dirs {
        if !dir.tables.iter().any(|(t, _)| t == "trajectories") {
            continue;
        }
        let q = |t: &str| catalog.qualified(&dir.schema, t);
        for sql in [
            messages_sql(&q("messages"), &q("trajectories")),
            tool_calls_sql(&q("tool_calls"), &q("messages")),
        ] {
            ctx.sql(&sql).await?.collect().await?;
        }
    }
    Ok(())
}

// Two unnests in one SELECT advance together, so `turn` lines up with its message.
fn messages_sql(view: &str, trajectories: &str) -> String {
    format!(
        "CREATE VIEW {view} AS SELECT trajectory_id, turn, \
           m['role'] AS role, m['content'] AS content, \
           m['reasoning_content'] AS reasoning_content, m['tool_call_id'] AS tool_call_id, \
           m['name'] AS name, cardinality(m['tool_calls']) AS num_tool_calls, \
           coalesce(m['tool_calls'][1]['name'], \
                    CASE WHEN m['role'] = 'tool' THEN m['name'] END) AS tool_name, \
           m['tool_calls'][1]['arguments'] AS arguments, m['tool_calls'] AS tool_calls \
         FROM (SELECT trajectory_id, \
                 unnest(range(0, cardinality(messages))) AS turn, \
                 unnest(messages) AS m \
               FROM {trajectories})"
    )
}

fn tool_calls_sql(view: &str, messages: &str) -> String {
    format!(
        "CREATE VIEW {view} AS SELECT trajectory_id, turn, call_index, \
           c['id'] AS call_id, c['name'] AS name, c['arguments'] AS arguments \
         FROM (SELECT trajectory_id, turn, \
                 unnest(range(0, num_tool_calls)) AS call_index, \
                 unnest(tool_calls) AS c \
               FROM {messages} WHERE num_tool_calls > 0)"
    )
}
