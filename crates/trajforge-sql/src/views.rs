//! `messages` and `tool_calls`: the nested `messages` column of `trajectories` flattened, as
//! SQL views (DataFusion plans them; nothing is materialised).
//!
//! - `messages`: one row per message — `trajectory_id`, `turn` (0-based position in the
//!   conversation), `role`, `content`, `reasoning_content`, `tool_call_id`, `name`,
//!   `num_tool_calls`, `tool_name` and `arguments` (of the message's first tool call, or the
//!   tool name a tool result answers), `tool_calls` (the full list).
//! - `tool_calls`: one row per call — `trajectory_id`, `turn`, `call_index`, `call_id`, `name`,
//!   `arguments` (the JSON text as stored).
//!
//! `tool_calls` reads `messages` through a cast to a list of structs holding only `tool_calls`:
//! DataFusion's Parquet scan clips such a cast to the leaves it names, so the message text (~90%
//! of the bytes) is neither decoded nor copied by the unnests. On 23k rows that made
//! `tool_use_mix` ~5× faster at a third of the memory (bench/RESULTS.md).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields};
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
        let messages_type = ctx
            .table(q("trajectories"))
            .await?
            .schema()
            .field_with_unqualified_name("messages")
            .map(|f| f.data_type().clone())
            .ok();
        let tool_calls = match messages_type.as_ref().and_then(only_tool_calls) {
            Some(narrow) => tool_calls_sql(&q("tool_calls"), &q("trajectories"), &narrow),
            None => tool_calls_from_messages_sql(&q("tool_calls"), &q("messages")),
        };
        for sql in [messages_sql(&q("messages"), &q("trajectories")), tool_calls] {
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

/// The type of `messages` with each message cut down to its `tool_calls` (as an `arrow_cast`
/// type string), or None when `messages` is not a list of structs with `tool_calls` or the
/// string would not parse back to the same type.
fn only_tool_calls(messages: &DataType) -> Option<String> {
    let narrow_item = |item: &Arc<Field>| -> Option<Arc<Field>> {
        let DataType::Struct(fields) = item.data_type() else {
            return None;
        };
        let (_, calls) = fields.find("tool_calls")?;
        let only = Fields::from(vec![calls.as_ref().clone()]);
        Some(Arc::new(Field::new(
            item.name(),
            DataType::Struct(only),
            item.is_nullable(),
        )))
    };
    let narrow = match messages {
        DataType::List(item) => DataType::List(narrow_item(item)?),
        DataType::LargeList(item) => DataType::LargeList(narrow_item(item)?),
        _ => return None,
    };
    let text = narrow.to_string();
    (text.parse::<DataType>().ok()? == narrow).then(|| text.replace('\'', "''"))
}

// The innermost SELECT is the only place `messages` is read, and only through the cast.
fn tool_calls_sql(view: &str, trajectories: &str, narrow_type: &str) -> String {
    format!(
        "CREATE VIEW {view} AS SELECT trajectory_id, turn, call_index, \
           c['id'] AS call_id, c['name'] AS name, c['arguments'] AS arguments \
         FROM (SELECT trajectory_id, turn, \
                 unnest(range(0, cardinality(calls))) AS call_index, \
                 unnest(calls) AS c \
               FROM (SELECT trajectory_id, turn, m['tool_calls'] AS calls \
                     FROM (SELECT trajectory_id, \
                             unnest(range(0, cardinality(ms))) AS turn, \
                             unnest(ms) AS m \
                           FROM (SELECT trajectory_id, arrow_cast(messages, '{narrow_type}') AS ms \
                                 FROM {trajectories}))) \
               WHERE cardinality(calls) > 0)"
    )
}

/// The same view over `messages`, for tables whose `messages` cannot be narrowed.
fn tool_calls_from_messages_sql(view: &str, messages: &str) -> String {
    format!(
        "CREATE VIEW {view} AS SELECT trajectory_id, turn, call_index, \
           c['id'] AS call_id, c['name'] AS name, c['arguments'] AS arguments \
         FROM (SELECT trajectory_id, turn, \
                 unnest(range(0, num_tool_calls)) AS call_index, \
                 unnest(tool_calls) AS c \
               FROM {messages} WHERE num_tool_calls > 0)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical_messages() -> DataType {
        let schema = trajforge_schema::arrow::arrow_schema();
        schema
            .field_with_name("messages")
            .expect("the canonical schema has messages")
            .data_type()
            .clone()
    }

    #[test]
    fn canonical_messages_narrow_to_their_tool_calls_only() {
        let text = only_tool_calls(&canonical_messages()).expect("canonical messages narrow");
        let narrow: DataType = text.replace("''", "'").parse().expect("parses back");
        let DataType::List(item) = &narrow else {
            panic!("not a list: {narrow}")
        };
        let DataType::Struct(fields) = item.data_type() else {
            panic!("not a list of structs: {narrow}")
        };
        let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["tool_calls"]);
        // The calls keep every field the view selects.
        assert!(text.contains("\"arguments\"") && !text.contains("\"content\""));
    }

    #[test]
    fn other_shapes_fall_back_to_the_messages_view() {
        assert_eq!(only_tool_calls(&DataType::Utf8), None);
        let no_calls = DataType::List(Arc::new(Field::new(
            "element",
            DataType::Struct(Fields::from(vec![Field::new(
                "role",
                DataType::Utf8,
                false,
            )])),
            false,
        )));
        assert_eq!(only_tool_calls(&no_calls), None);
    }
}
