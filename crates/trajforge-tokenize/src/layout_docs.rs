//! The documents under `schemas/` that describe what trainers read: the Arrow layouts of the
//! tokenized and packed files and a JSON Schema of one packed row, generated from
//! [`crate::shard`] so they cannot drift (a test compares them with the committed files).

use arrow::datatypes::DataType;
use serde_json::{Value, json};
use trajforge_schema::docs::{arrow_layout, pretty};

use crate::shard::{
    LAYOUT_VERSION, PACKED_COLUMNS, TOKENIZED_COLUMNS, packed_schema, tokenized_schema,
};

pub fn packed_arrow_layout() -> String {
    arrow_layout(
        "trajforge packed training row",
        LAYOUT_VERSION,
        &packed_schema(),
        PACKED_COLUMNS,
    )
}

pub fn tokenized_arrow_layout() -> String {
    arrow_layout(
        "trajforge tokenized trajectory",
        LAYOUT_VERSION,
        &tokenized_schema(),
        TOKENIZED_COLUMNS,
    )
}

fn json_type(t: &DataType) -> Value {
    match t {
        DataType::List(item) => json!({"type": "array", "items": json_type(item.data_type())}),
        DataType::Utf8 | DataType::LargeUtf8 => json!({"type": "string"}),
        DataType::UInt8 => json!({"type": "integer", "minimum": 0, "maximum": 1}),
        DataType::UInt32 => json!({"type": "integer", "minimum": 0}),
        _ => json!({"type": "integer"}),
    }
}

/// JSON Schema (draft 2020-12) of one packed row read as JSON (e.g. `pyarrow` `to_pylist`).
pub fn packed_json_schema() -> String {
    let schema = packed_schema();
    let mut properties = serde_json::Map::new();
    for f in schema.fields() {
        let mut t = json_type(f.data_type());
        if let Some((_, d)) = PACKED_COLUMNS.iter().find(|(n, _)| n == f.name()) {
            t["description"] = json!(d);
        }
        properties.insert(f.name().clone(), t);
    }
    let required: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
    pretty(&json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "trajforge packed training row",
        "description": concat!(
            "One row of OUT/shards/shard-NNNNN.parquet: whole samples concatenated, never split, no padding stored. ",
            "Invariants: len(input_ids) = len(loss_mask) = len(position_ids) = num_tokens <= pack_len ",
            "(the footer key trajforge.pack_len); sum(seq_lens) = num_tokens; len(seq_lens) = len(trajectory_ids) = num_samples; ",
            "cu_seqlens = [0, seq_lens[0], seq_lens[0]+seq_lens[1], ...]; position_ids restart at 0 at every cu_seqlens boundary; ",
            "a token attends only to earlier tokens of its own document (block-diagonal causal mask); ",
            "the loss applies where loss_mask = 1 (assistant turns, including the end-of-turn token)."
        ),
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    }))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    /// Regenerate with `UPDATE_SCHEMAS=1 cargo test -p trajforge-tokenize`.
    #[test]
    fn committed_layout_documents_are_current() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
        let documents = [
            ("packed.schema.json", super::packed_json_schema()),
            ("packed.arrow.json", super::packed_arrow_layout()),
            ("tokenized.arrow.json", super::tokenized_arrow_layout()),
        ];
        let stale = trajforge_schema::docs::stale_documents(&dir, &documents);
        assert!(
            stale.is_empty(),
            "schemas/{stale:?} stale: regenerate with UPDATE_SCHEMAS=1 cargo test -p trajforge-tokenize"
        );
    }
}
