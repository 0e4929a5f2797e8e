//! Rejected input records: one row per unusable record, with where it was and why.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::IoError;

/// Largest raw snippet kept with a reject.
pub const SNIPPET_BYTES: usize = 1024;

/// Why a record could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectKind {
    /// Not valid JSON (or a JSON string field that should hold JSON and does not).
    InvalidJson,
    /// Bytes that are not UTF-8.
    InvalidUtf8,
    /// The file ends in the middle of a record.
    Truncated,
    /// A field has the wrong JSON type.
    WrongType,
    /// A required field is absent.
    MissingField,
    /// A role outside system/developer/user/assistant/tool/function.
    UnknownRole,
    /// A tool message that answers no open tool call.
    UnpairedToolMessage,
    /// Tool-call arguments that are not JSON.
    InvalidToolArguments,
    /// The record matches none of the known formats.
    UnrecognisedFormat,
    /// A file with no content at all.
    EmptyFile,
    /// A file that cannot be decoded (corrupt Parquet, broken compression).
    CorruptFile,
}

impl RejectKind {
    /// The snake_case name stored in the `error_kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectKind::InvalidJson => "invalid_json",
            RejectKind::InvalidUtf8 => "invalid_utf8",
            RejectKind::Truncated => "truncated",
            RejectKind::WrongType => "wrong_type",
            RejectKind::MissingField => "missing_field",
            RejectKind::UnknownRole => "unknown_role",
            RejectKind::UnpairedToolMessage => "unpaired_tool_message",
            RejectKind::InvalidToolArguments => "invalid_tool_arguments",
            RejectKind::UnrecognisedFormat => "unrecognised_format",
            RejectKind::EmptyFile => "empty_file",
            RejectKind::CorruptFile => "corrupt_file",
        }
    }
}

/// A data problem found while parsing one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataError {
    pub kind: RejectKind,
    pub message: String,
}

impl DataError {
    pub fn new(kind: RejectKind, message: impl Into<String>) -> DataError {
        DataError {
            kind,
            message: message.into(),
        }
    }
}

/// Where in its file a record was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// 0-based row of a Parquet file or element of a JSON array.
    Row(u64),
    /// 1-based line of a JSONL file.
    Line(u64),
    /// The file as a whole (empty, corrupt, or an unreadable remainder starting at a row/line).
    File,
}

/// One row of the rejects table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reject {
    /// The input file.
    pub source_file: String,
    /// `row`, `line` or `file`.
    pub location_kind: String,
    /// The row (0-based) or line (1-based) number; null for whole-file problems.
    pub location: Option<u64>,
    /// A [`RejectKind`] name.
    pub error_kind: String,
    /// What is wrong, naming the field path.
    pub message: String,
    /// The start of the raw record (at most [`SNIPPET_BYTES`] bytes).
    pub snippet: String,
}

impl Reject {
    pub fn new(file: &str, location: Location, err: DataError, raw: &str) -> Reject {
        let (location_kind, location) = match location {
            Location::Row(r) => ("row", Some(r)),
            Location::Line(l) => ("line", Some(l)),
            Location::File => ("file", None),
        };
        Reject {
            source_file: file.to_string(),
            location_kind: location_kind.to_string(),
            location,
            error_kind: err.kind.as_str().to_string(),
            message: err.message,
            snippet: snippet(raw),
        }
    }
}

/// The first [`SNIPPET_BYTES`] bytes of `raw`, cut at a character boundary.
pub fn snippet(raw: &str) -> String {
    if raw.len() <= SNIPPET_BYTES {
        return raw.to_string();
    }
    let mut end = SNIPPET_BYTES;
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    raw[..end].to_string()
}

/// Schema of the rejects table.
pub fn rejects_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("source_file", DataType::Utf8, false),
        Field::new("location_kind", DataType::Utf8, false),
        Field::new("location", DataType::UInt64, true),
        Field::new("error_kind", DataType::Utf8, false),
        Field::new("message", DataType::LargeUtf8, false),
        Field::new("snippet", DataType::LargeUtf8, false),
    ]))
}

/// Rejects → a record batch of [`rejects_schema`].
pub fn rejects_batch(rows: &[Reject]) -> Result<RecordBatch, IoError> {
    let fields: Vec<FieldRef> = rejects_schema().fields().iter().cloned().collect();
    serde_arrow::to_record_batch(&fields, &rows).map_err(|e| IoError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippet_is_bounded_at_a_char_boundary() {
        let raw = "é".repeat(SNIPPET_BYTES);
        let s = snippet(&raw);
        assert!(s.len() <= SNIPPET_BYTES && s.len() >= SNIPPET_BYTES - 1);
        assert!(raw.starts_with(&s));
    }

    #[test]
    fn rejects_convert_to_arrow() {
        let r = Reject::new(
            "f.jsonl",
            Location::Line(3),
            DataError::new(RejectKind::InvalidJson, "bad"),
            "{",
        );
        let b = rejects_batch(&[r]).expect("batch");
        assert_eq!(b.num_rows(), 1);
        assert_eq!(b.schema(), rejects_schema());
    }
}
