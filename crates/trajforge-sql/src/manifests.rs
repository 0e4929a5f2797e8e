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

fn runs_schema() -> SchemaRef {
    let f = |n: &str, t: DataType| Field::new(n, t, true);
    Arc::new(Schema::new(vec![
        f("run", DataType::Utf8),
        f("run_name", DataType::Utf8),
        f("kind", DataType::Utf8),
        f("schema", DataType::Utf8),
        f("pipeline", DataType::Utf8),
        f("config_hash", DataType::Utf8),
        f("command", DataType::Utf8),
        f("threads", DataType::Int64),
        f("read", DataType::Int64),
        f("kept", DataType::Int64),
        f("filtered", DataType::Int64),
        f("rejected", DataType::Int64),
        f("balanced", DataType::Boolean),
        f("samples", DataType::Int64),
        f("tokens", DataType::Int64),
        f("supervised_tokens", DataType::Int64),
        f("packed_rows", DataType::Int64),
        f("packing_fill", DataType::Float64),
        f("total_seconds", DataType::Float64),
        f("manifest", DataType::Utf8),
    ]))
}

fn steps_schema() -> SchemaRef {
    let f = |n: &str, t: DataType| Field::new(n, t, true);
    Arc::new(Schema::new(vec![
        f("run", DataType::Utf8),
        f("run_name", DataType::Utf8),
        f("step_index", DataType::Int64),
        f("name", DataType::Utf8),
        f("op", DataType::Utf8),
        f("kind", DataType::Utf8),
        f("rows_in", DataType::Int64),
        f("rows_out", DataType::Int64),
        f("flagged", DataType::Int64),
    ]))
}

fn reasons_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("run", DataType::Utf8, true),
        Field::new("run_name", DataType::Utf8, true),
        Field::new("reason", DataType::Utf8, true),
        Field::new("rows", DataType::Int64, true),
    ]))
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
        let name = run_name(&dir.path);
        runs.push(run_row(&run, &name, &dir.schema, &m));
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

/// The run directory's own name (`out/quickstart` → `quickstart`).
fn run_name(dir: &Path) -> String {
    std::fs::canonicalize(dir)
        .unwrap_or_else(|_| dir.to_path_buf())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
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
