//! The malformed-input corpus: every bad record becomes a reject with a useful reason, good
//! records beside it are kept, and the ledger balances.

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use trajforge_io::{Format, Reject};

use crate::common::{corpus, ingest_checked, trajforge};

/// Ingests one corpus file and returns (written, rejects).
fn ingest_one(path: &str, format: Option<Format>) -> (usize, Vec<Reject>) {
    let run = ingest_checked(&[path.to_string()], format);
    assert!(
        run.rejects.iter().all(|r| r.source_file == path),
        "every reject names its file"
    );
    (run.rows.len(), run.rejects)
}

fn kinds(r: &[Reject]) -> Vec<(&str, Option<u64>)> {
    r.iter()
        .map(|r| (r.error_kind.as_str(), r.location))
        .collect()
}

#[test]
fn truncated_array_keeps_complete_records() {
    let (written, r) = ingest_one(&corpus("truncated.json"), None);
    assert_eq!(written, 2);
    assert_eq!(kinds(&r), vec![("truncated", Some(2))]);
    assert!(
        r[0].message.contains("after 2 complete record(s)"),
        "{}",
        r[0].message
    );
}

#[test]
fn wrong_types_name_the_field() {
    let (written, r) = ingest_one(&corpus("wrong-types.jsonl"), None);
    assert_eq!(written, 1);
    let got: Vec<(&str, &str)> = r
        .iter()
        .map(|r| (r.error_kind.as_str(), r.message.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "wrong_type",
                "trajectory[0].content: expected a string, found a number"
            ),
            (
                "wrong_type",
                "trajectory: expected an array, found a string"
            ),
            (
                "missing_field",
                "trajectory[0].role: required field is missing"
            ),
            (
                "wrong_type",
                "instance_id: expected a string, found an array"
            ),
            (
                "unknown_role",
                "trajectory[0].role: unknown role \"wizard\" (expected system, developer, user, assistant, tool or function)"
            ),
        ]
    );
    assert_eq!(
        r.iter().map(|r| r.location).collect::<Vec<_>>(),
        vec![Some(2), Some(3), Some(4), Some(5), Some(6)]
    );
    assert!(
        r.iter()
            .all(|r| r.location_kind == "line" && r.snippet.starts_with('{'))
    );
}

#[test]
fn invalid_utf8_line_is_rejected_alone() {
    let (written, r) = ingest_one(&corpus("invalid-utf8.jsonl"), None);
    assert_eq!(written, 2);
    assert_eq!(kinds(&r), vec![("invalid_utf8", Some(2))]);
}

#[test]
fn tool_message_without_a_call_is_a_data_error() {
    let (written, r) = ingest_one(&corpus("orphan-tool-message.json"), None);
    assert_eq!(written, 1);
    assert_eq!(kinds(&r), vec![("unpaired_tool_message", Some(0))]);
    assert!(
        r[0].message
            .starts_with("message 2: tool result with no open tool call"),
        "{}",
        r[0].message
    );
}

#[test]
fn arguments_that_are_not_json() {
    let (written, r) = ingest_one(&corpus("bad-arguments.jsonl"), None);
    assert_eq!(written, 1);
    assert_eq!(kinds(&r), vec![("invalid_tool_arguments", Some(1))]);
    assert!(
        r[0].message
            .contains("trajectory[2].tool_calls[0].function.arguments"),
        "{}",
        r[0].message
    );
}

#[test]
fn empty_file_and_non_json_lines() {
    let (written, r) = ingest_one(&corpus("empty.jsonl"), None);
    assert_eq!((written, kinds(&r)), (0, vec![("empty_file", None)]));
    let (written, r) = ingest_one(&corpus("not-json.jsonl"), None);
    assert_eq!((written, kinds(&r)), (2, vec![("invalid_json", Some(2))]));
}

#[test]
fn missing_required_column_in_json_and_parquet() {
    let (written, r) = ingest_one(
        &corpus("missing-trajectory.jsonl"),
        Some(Format::NvidiaOpenhands),
    );
    assert_eq!(written, 0);
    assert_eq!(
        kinds(&r),
        vec![("missing_field", Some(1)), ("missing_field", Some(2))]
    );
    assert_eq!(r[0].message, "trajectory: required field is missing");

    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("no-trajectory.parquet");
    let schema = Arc::new(Schema::new(vec![
        Field::new("instance_id", DataType::Utf8, false),
        Field::new("model_patch", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["a__b-1", "a__b-2", "a__b-3"])),
            Arc::new(StringArray::from(vec!["", "", ""])),
        ],
    )
    .expect("batch");
    let mut w = ArrowWriter::try_new(std::fs::File::create(&path).expect("create"), schema, None)
        .expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
    let (written, r) = ingest_one(&path.display().to_string(), Some(Format::NvidiaOpenhands));
    assert_eq!(written, 0);
    assert_eq!(
        kinds(&r),
        vec![
            ("missing_field", Some(0)),
            ("missing_field", Some(1)),
            ("missing_field", Some(2))
        ]
    );
    // Without --format, such rows match no known format, and say so.
    let (_, r) = ingest_one(&path.display().to_string(), None);
    assert_eq!(r[0].error_kind, "unrecognised_format");
    assert!(r[0].message.contains("pass --format"), "{}", r[0].message);
}

#[test]
fn corrupt_and_truncated_parquet() {
    let (written, r) = ingest_one(&corpus("corrupt.parquet"), None);
    assert_eq!((written, kinds(&r)), (0, vec![("corrupt_file", None)]));
    assert!(
        r[0].message.starts_with("not a readable Parquet file"),
        "{}",
        r[0].message
    );

    // A real Parquet file cut in half.
    let dir = tempfile::tempdir().expect("tmp");
    let whole = std::fs::read(crate::common::sample("synthetic/hero.parquet")).expect("sample");
    let path = dir.path().join("cut.parquet");
    std::fs::write(&path, &whole[..whole.len() / 2]).expect("write");
    let (written, r) = ingest_one(&path.display().to_string(), None);
    assert_eq!((written, kinds(&r)), (0, vec![("corrupt_file", None)]));
}

#[test]
fn thirteen_megabyte_patch_is_kept_whole() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut patch = String::from(
        "diff --git a/big.txt b/big.txt\n--- a/big.txt\n+++ b/big.txt\n@@ -0,0 +1,200000 @@\n",
    );
    for i in 0..200_000 {
        patch.push_str(&format!("+line {i:06} {}\n", "x".repeat(52)));
    }
    assert!(patch.len() > 13_000_000);
    let row = serde_json::json!({
        "instance_id": "big__patch-1",
        "trajectory": [{"role": "user", "content": "make it big"}, {"role": "assistant", "content": "done"}],
        "model_patch": patch,
    });
    let path = dir.path().join("big.jsonl");
    std::fs::write(&path, format!("{row}\n")).expect("write");
    let run = ingest_checked(&[path.display().to_string()], None);
    let got = run.rows;
    assert_eq!(
        got[0].model_patch.as_deref().map(str::len),
        Some(patch.len())
    );
    assert_eq!(
        (got[0].patch_added_lines, got[0].patch_files.clone()),
        (200_000, vec!["big.txt".to_string()])
    );
}

#[test]
fn cli_exit_codes_and_one_line_errors() {
    let out = tempfile::tempdir().expect("tmp");
    let out_dir = out.path().display().to_string();
    // Rejected rows are not a failed run.
    let ok = trajforge(&[
        "ingest",
        &corpus("wrong-types.jsonl"),
        "--out",
        &out_dir,
        "--json",
    ]);
    assert!(ok.status.success());
    let summary: serde_json::Value = serde_json::from_slice(&ok.stdout).expect("one JSON line");
    assert_eq!(
        (
            summary["read"].as_u64(),
            summary["written"].as_u64(),
            summary["rejected"].as_u64()
        ),
        (Some(6), Some(1), Some(5))
    );
    // Inputs that do not exist are: non-zero, one line naming the path, no panic.
    let missing = trajforge(&["ingest", "/no/such/input.jsonl", "--out", &out_dir]);
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("/no/such/input.jsonl does not exist"),
        "{stderr}"
    );
    let bad_format = trajforge(&[
        "ingest",
        &corpus("empty.jsonl"),
        "--out",
        &out_dir,
        "--format",
        "nvidia",
    ]);
    assert!(
        String::from_utf8_lossy(&bad_format.stderr)
            .contains("unknown --format \"nvidia\"; expected one of nvidia_openhands")
    );
}
