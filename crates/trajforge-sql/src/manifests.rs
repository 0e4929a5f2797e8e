//! `runs`, `run_steps` and `run_reasons`: the run manifests (`manifest.json`) as tables, one
//! row per run, per step and per reason, with the run's directory in `run`. They are small and
//! read once, into memory tables. `run` is the directory as given, `run_name` its last part,
//! `kind` says whether it is a pipeline run (a ledger) or an ingest output (read/written counts).

use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::json::ReaderBuilder;
use arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use serde_json::{Value, json};

use crate::SqlError;
use crate::catalog::DataDir;

/// A schema of nullable columns (manifests may lack any key).
fn nullable(columns: &[(&str, DataType)]) -> SchemaRef {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, t)| Field::new(*n, t.clone(), true))
        .collect();
    Arc::new(Schema::new(fields))
}

fn runs_schema() -> SchemaRef {
    nullable(&[
        ("run", DataType::Utf8),
        ("run_name", DataType::Utf8),
        ("kind", DataType::Utf8),
        ("schema", DataType::Utf8),
        ("pipeline", DataType::Utf8),
        ("config_hash", DataType::Utf8),
        ("command", DataType::Utf8),
        ("threads", DataType::Int64),
        ("read", DataType::Int64),
        ("kept", DataType::Int64),
        ("filtered", DataType::Int64),
        ("rejected", DataType::Int64),
        ("balanced", DataType::Boolean),
        ("samples", DataType::Int64),
        ("tokens", DataType::Int64),
        ("supervised_tokens", DataType::Int64),
        ("packed_rows", DataType::Int64),
        ("packing_fill", DataType::Float64),
        ("total_seconds", DataType::Float64),
        ("manifest", DataType::Utf8),
    ])
}

fn steps_schema() -> SchemaRef {
    nullable(&[
        ("run", DataType::Utf8),
        ("run_name", DataType::Utf8),
        ("step_index", DataType::Int64),
        ("name", DataType::Utf8),
        ("op", DataType::Utf8),
        ("kind", DataType::Utf8),
        ("rows_in", DataType::Int64),
        ("rows_out", DataType::Int64),
        ("flagged", DataType::Int64),
    ])
}

fn reasons_schema() -> SchemaRef {
    nullable(&[
        ("run", DataType::Utf8),
        ("run_name", DataType::Utf8),
        ("reason", DataType::Utf8),
        ("rows", DataType::Int64),
    ])
}

/// Registers the manifest tables when any directory is a run; returns their names.
pub fn register(ctx: &SessionContext, dirs: &[DataDir]) -> Result<Vec<String>, SqlError> {
    let (mut runs, mut steps, mut reasons) = (Vec::new(), Vec::new(), Vec::new());
    for dir in dirs {
        let Some(path) = &dir.manifest else {
            continue;
        };
        let m = read_manifest(path)?;
        let run = dir.path.display().to_string();
        let name = &dir.name;
        runs.push(run_row(&run, name, &dir.schema, &m));
        for s in m["steps"].as_array().into_iter().flatten() {
            steps.push(json!({
                "run": run, "run_name": name, "step_index": s["index"], "name": s["name"], "op": s["op"],
                "kind": s["kind"], "rows_in": s["rows_in"], "rows_out": s["rows_out"],
                "flagged": s["flagged"],
            }));
        }
        for (reason, rows) in m["reasons"].as_object().into_iter().flatten() {
            reasons.push(json!({"run": run, "run_name": name, "reason": reason, "rows": rows}));
        }
    }
    if runs.is_empty() {
        return Ok(Vec::new());
    }
    let mut names = Vec::new();
    for (name, schema, rows) in [
        ("runs", runs_schema(), runs),
        ("run_steps", steps_schema(), steps),
        ("run_reasons", reasons_schema(), reasons),
    ] {
        let batch = to_batch(schema.clone(), &rows)?;
        let table = MemTable::try_new(schema, vec![vec![batch]])?;
        ctx.register_table(name, Arc::new(table))?;
        names.push(name.to_string());
    }
    Ok(names)
}

fn read_manifest(path: &Path) -> Result<Value, SqlError> {
    let bad = |message: String| SqlError::Data {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let m: Value =
        serde_json::from_slice(&text).map_err(|e| bad(format!("not a run manifest: {e}")))?;
    if !m.is_object() {
        return Err(bad("not a run manifest: a JSON object is expected".into()));
    }
    Ok(m)
}

fn run_row(run: &str, name: &str, schema: &str, m: &Value) -> Value {
    let t = &m["tokenize"];
    // A pipeline run has a ledger; an ingest output has counts (read = written + rejected).
    let (read, kept, rejected, balanced) = match (&m["ledger"], &m["counts"]) {
        (Value::Object(l), _) => (
            &l["read"],
            &l["kept"],
            &l["rejected"],
            l["balanced"].clone(),
        ),
        (_, Value::Object(c)) => (&c["read"], &c["written"], &c["rejected"], Value::Null),
        _ => (&Value::Null, &Value::Null, &Value::Null, Value::Null),
    };
    let kind = if m["ledger"].is_object() {
        "run"
    } else {
        "ingest"
    };
    json!({
        "run": run, "run_name": name, "kind": kind, "schema": schema, "pipeline": m["pipeline"],
        "config_hash": m["config_hash"], "command": m["command"], "threads": m["threads"],
        "read": read, "kept": kept, "filtered": m["ledger"]["filtered"],
        "rejected": rejected, "balanced": balanced,
        "samples": t["samples"], "tokens": t["tokens"], "supervised_tokens": t["supervised_tokens"],
        "packed_rows": t["packed_rows"], "packing_fill": t["packing_fill"],
        "total_seconds": m["timings"]["total_seconds"],
        "manifest": m.to_string(),
    })
}

/// JSON rows → one batch of `schema` (missing keys are nulls).
fn to_batch(schema: SchemaRef, rows: &[Value]) -> Result<RecordBatch, SqlError> {
    let mut decoder = ReaderBuilder::new(schema.clone()).build_decoder()?;
    decoder.serialize(rows)?;
    Ok(decoder
        .flush()?
        .unwrap_or_else(|| RecordBatch::new_empty(schema)))
}
