//! The canonical Arrow schema and typed-row ↔ record-batch conversion.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef, Fields, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use crate::{SchemaError, Trajectory};

/// Version of the canonical schema; bumped on any change to [`arrow_schema`].
pub const SCHEMA_VERSION: u32 = 1;

fn text(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

fn long_text(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::LargeUtf8, nullable)
}

fn list_of(name: &str, item: Field) -> Field {
    Field::new(name, DataType::List(Arc::new(item)), false)
}

fn tool_call_fields() -> Fields {
    Fields::from(vec![
        text("id", true),
        text("name", false),
        long_text("arguments", false),
    ])
}

fn message_fields() -> Fields {
    Fields::from(vec![
        text("role", false),
        long_text("content", true),
        long_text("reasoning_content", true),
        list_of(
            "tool_calls",
            Field::new("element", DataType::Struct(tool_call_fields()), false),
        ),
        text("tool_call_id", true),
        text("name", true),
    ])
}

/// The canonical schema: one row per trajectory.
pub fn arrow_schema() -> SchemaRef {
    let fields = vec![
        text("trajectory_id", false),
        text("instance_id", true),
        text("repo", true),
        text("source_dataset", true),
        text("source_format", false),
        text("license", true),
        text("stage", true),
        text("scaffold", true),
        list_of(
            "messages",
            Field::new("element", DataType::Struct(message_fields()), false),
        ),
        long_text("tools", true),
        long_text("model_patch", true),
        Field::new("resolved", DataType::Boolean, true),
        text("exit_status", true),
        long_text("metadata", true),
        Field::new("num_messages", DataType::UInt32, false),
        Field::new("num_assistant_turns", DataType::UInt32, false),
        Field::new("num_tool_calls", DataType::UInt32, false),
        list_of("tool_names", text("element", false)),
        Field::new("content_bytes", DataType::UInt64, false),
        list_of("patch_files", text("element", false)),
        Field::new("patch_added_lines", DataType::UInt32, false),
        Field::new("patch_removed_lines", DataType::UInt32, false),
        text("instance_key", true),
        text("content_hash", false),
    ];
    let metadata = [(
        "trajforge.schema_version".to_string(),
        SCHEMA_VERSION.to_string(),
    )];
    Arc::new(Schema::new(fields).with_metadata(metadata.into()))
}

/// Conversions between typed rows and record batches of the canonical schema.
pub mod batch {
    use super::*;

    fn fields() -> Vec<FieldRef> {
        arrow_schema().fields().iter().cloned().collect()
    }

    /// Typed rows → one record batch with exactly [`arrow_schema`].
    pub fn to_record_batch(rows: &[Trajectory]) -> Result<RecordBatch, SchemaError> {
        let batch = serde_arrow::to_record_batch(&fields(), &rows)
            .map_err(|e| SchemaError::Internal(e.to_string()))?;
        // serde_arrow builds a schema without our metadata; put it back so files are self-describing.
        RecordBatch::try_new(arrow_schema(), batch.columns().to_vec())
            .map_err(|e| SchemaError::Internal(e.to_string()))
    }

    /// A record batch of the canonical schema → typed rows.
    pub fn from_record_batch(batch: &RecordBatch) -> Result<Vec<Trajectory>, SchemaError> {
        serde_arrow::from_record_batch(batch).map_err(|e| SchemaError::Data(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Message, Stage, ToolCall, fill_derived};

    fn sample() -> Trajectory {
        let mut t = Trajectory {
            trajectory_id: "t1".into(),
            instance_id: Some("django__django-11099".into()),
            repo: Some("django/django".into()),
            source_dataset: None,
            source_format: "openai_chat".into(),
            license: None,
            stage: Some(Stage::Zero),
            scaffold: Some("openhands".into()),
            messages: vec![
                Message::text("user", "fix it"),
                Message {
                    tool_calls: vec![ToolCall {
                        id: Some("c1".into()),
                        name: "execute_bash".into(),
                        arguments: r#"{"command": "ls"}"#.into(),
                    }],
                    ..Message::text("assistant", "")
                },
            ],
            tools: None,
            model_patch: Some(
                "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n".into(),
            ),
            resolved: None,
            exit_status: None,
            metadata: None,
            ..Trajectory::empty()
        };
        fill_derived(&mut t);
        t
    }

    #[test]
    fn typed_rows_round_trip_through_arrow() {
        let rows = vec![sample(), sample()];
        let batch = batch::to_record_batch(&rows).expect("to batch");
        assert_eq!(batch.schema(), arrow_schema());
        assert_eq!(batch.num_rows(), 2);
        let back = batch::from_record_batch(&batch).expect("from batch");
        assert_eq!(back, rows);
    }
}
