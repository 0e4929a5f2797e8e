//! SQL over a real run: the quickstart pipeline's outputs queried through the `trajforge-sql`
//! session with sqllogictest files (`tests/sql/*.slt`) — the curated `queries/*.sql` each with
//! its expected result, the views and the UDFs — and `trajforge sql` itself (formats, COPY,
//! several directories). `UPDATE_SLT=1` rewrites the expected results (review the diff).

use std::path::PathBuf;

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::SessionContext;
use sqllogictest::{DBOutput, DefaultColumnType};

use crate::common::{INTEROP_PIP, python_script, quickstart_run, require_python, root, trajforge};

struct Db(SessionContext);

#[derive(Debug)]
struct DbError(String);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DbError {}

fn column_type(t: &DataType) -> DefaultColumnType {
    if t.is_integer() {
        DefaultColumnType::Integer
    } else if t.is_floating() || matches!(t, DataType::Decimal128(..)) {
        DefaultColumnType::FloatingPoint
    } else {
        DefaultColumnType::Text
    }
}

fn rows(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, DbError> {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let formatters = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| DbError(e.to_string()))?;
        for i in 0..b.num_rows() {
            out.push(
                formatters
                    .iter()
                    .map(|f| {
                        let v = f.value(i).to_string();
                        if v.is_empty() { "(empty)".into() } else { v }
                    })
                    .collect(),
            );
        }
    }
    Ok(out)
}

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for Db {
    type Error = DbError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DbError> {
        let err = |e: datafusion::error::DataFusionError| DbError(e.to_string());
        let df = self.0.sql(sql).await.map_err(err)?;
        let types = df
            .schema()
            .fields()
            .iter()
            .map(|f| column_type(f.data_type()))
            .collect();
        let batches = df.collect().await.map_err(err)?;
        let statement = ["CREATE", "COPY", "DROP", "SET", "INSERT"]
            .iter()
            .any(|k| sql.trim_start().to_ascii_uppercase().starts_with(k));
        if statement {
            return Ok(DBOutput::StatementComplete(0));
        }
        Ok(DBOutput::Rows {
            types,
            rows: rows(&batches)?,
        })
    }

    async fn shutdown(&mut self) {}
}

fn slt_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("tests/sql"))
        .expect("tests/sql")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .collect();
    files.sort();
    files
}

/// Whitespace-normalised SQL without `--` comment lines and the final `;`.
fn normalized(sql: &str) -> String {
    sql.lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .trim_end_matches(';')
        .trim()
        .to_string()
}

/// Every curated query has a `.slt` of the same name whose text contains it verbatim, so the
/// tested SQL is the shipped SQL.
#[test]
fn every_curated_query_is_tested_verbatim() {
    let mut n = 0;
    for entry in std::fs::read_dir(root().join("queries")).expect("queries/") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|x| x != "sql") {
            continue;
        }
        let stem = path
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .into_owned();
        let slt = root().join("tests/sql").join(format!("{stem}.slt"));
        let tested = std::fs::read_to_string(&slt)
            .unwrap_or_else(|_| panic!("{} has no {}", path.display(), slt.display()));
        let shipped = std::fs::read_to_string(&path).expect("read query");
        assert!(
            normalized(&tested).contains(&normalized(&shipped)),
            "{} is not the query tested in {}",
            path.display(),
            slt.display()
        );
        n += 1;
    }
    assert!(n >= 6, "{n} curated queries");
}

#[test]
fn sqllogictest_files_pass_on_the_quickstart_run() {
    let tmp = tempfile::tempdir().expect("tmp");
    let run = quickstart_run(tmp.path());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .build()
        .expect("runtime");
    let update = std::env::var_os("UPDATE_SLT").is_some();
    let mut failures = Vec::new();
    for file in slt_files() {
        let run = run.clone();
        let mut runner = sqllogictest::Runner::new(move || {
            let run = run.clone();
            async move {
                let (ctx, _) = trajforge_sql::session(&[run], 2)
                    .await
                    .map_err(|e| DbError(e.to_string()))?;
                Ok(Db(ctx))
            }
        });
        let result = rt.block_on(async {
            if update {
                runner
                    .update_test_file(
                        &file,
                        " ",
                        sqllogictest::default_validator,
                        sqllogictest::default_normalizer,
                        sqllogictest::default_column_validator,
                    )
                    .await
                    .map_err(|e| e.to_string())
            } else {
                runner
                    .run_file_async(&file)
                    .await
                    .map_err(|e| e.to_string())
            }
        });
        if let Err(e) = result {
            failures.push(format!("{}: {e}", file.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The command line: formats, COPY to Parquet read back, `\d`, several directories.
#[test]
fn trajforge_sql_prints_formats_and_copies() {
    let tmp = tempfile::tempdir().expect("tmp");
    let run = quickstart_run(tmp.path());
    let data = run.to_str().expect("utf8");
    let sql = |args: &[&str]| {
        let mut all = vec!["sql", "--data", data];
        all.extend_from_slice(args);
        let o = trajforge(&all);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // Statements end at `;` tokens only: not inside a block comment or a string.
    let last = sql(&["--format", "csv", "SELECT 1 AS a /* ; */; SELECT 'x;' AS b"]);
    assert_eq!(last, "b\nx;\n");
    // --threads sets the partitions DataFusion plans each query with.
    let setting = "SELECT value FROM information_schema.df_settings \
                   WHERE name = 'datafusion.execution.target_partitions'";
    let o = trajforge(&[
        "--threads",
        "3",
        "sql",
        "--data",
        data,
        "--format",
        "csv",
        setting,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "value\n3\n");

    let q = "SELECT role, count(*) AS n FROM messages GROUP BY role ORDER BY n DESC, role";
    let csv = sql(&["--format", "csv", q]);
    assert_eq!(csv.lines().next(), Some("role,n"));
    let json = sql(&["--format", "json", q]);
    let counts: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(counts.len(), csv.lines().count() - 1);
    let total: u64 = counts.iter().map(|c| c["n"].as_u64().expect("n")).sum();
    let messages = sql(&[
        "--format",
        "csv",
        "SELECT sum(num_messages) FROM trajectories",
    ]);
    assert_eq!(messages.lines().nth(1), Some(total.to_string().as_str()));

    let copy = tmp.path().join("ids.parquet");
    let copy_sql = format!(
        "COPY (SELECT trajectory_id FROM trajectories ORDER BY trajectory_id) TO '{}'",
        copy.display()
    );
    sql(&[&copy_sql]);
    let back = sql(&[
        "--format",
        "csv",
        &format!("SELECT count(*) FROM '{}'", copy.display()),
    ]);
    let kept = sql(&["--format", "csv", "SELECT count(*) FROM trajectories"]);
    assert_eq!(back, kept);

    let out = tmp.path().join("mix.parquet");
    sql(&[
        "--format",
        "parquet",
        "--output",
        out.to_str().expect("utf8"),
        "-f",
        root()
            .join("queries/tool_use_mix.sql")
            .to_str()
            .expect("utf8"),
    ]);
    let file = std::fs::File::open(&out).expect("parquet written");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet");
    let names: Vec<String> = reader
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["tool", "calls", "pct"]);

    let tables = sql(&["\\d"]);
    for t in [
        "trajectories",
        "filtered",
        "rejects",
        "packed",
        "messages",
        "tool_calls",
        "runs",
    ] {
        assert!(
            tables.contains(&format!("| {t} ")),
            "{t} missing:\n{tables}"
        );
    }

    // Two directories: one schema each, manifests together.
    let ingest = tmp.path().join("samples");
    let o = trajforge(&[
        "ingest",
        &crate::common::sample("real"),
        "--out",
        ingest.to_str().expect("utf8"),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let both = |query: &str| {
        let ingest = ingest.to_str().expect("utf8");
        let o = trajforge(&[
            "sql", "--data", data, "--data", ingest, "--format", "csv", query,
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let counts = both(
        "SELECT (SELECT count(*) FROM quickstart.trajectories) AS a, \
                (SELECT count(*) FROM samples.messages) > 0 AS b",
    );
    assert_eq!(
        counts.lines().nth(1),
        Some(format!("{},true", kept.lines().nth(1).expect("count")).as_str())
    );

    // The prompt, fed from a pipe: \d NAME, a statement over several lines with a quoted `;`,
    // a misspelt column (said once, and the prompt goes on), then another, then \q.
    let script = "\\d trajectories\nSELECT count(*) AS n\n  FROM messages\n WHERE role = 'tool;';\n\
                  SELECT tool FROM tool_calls;\nSELECT 41 + 1 AS answer;\n\\q\nSELECT 'not run';\n";
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_trajforge"))
        .args(["sql", "--quiet", "--data", data, "--format", "csv"])
        .env("HOME", tmp.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), script.as_bytes())
        .expect("write stdin");
    let o = child.wait_with_output().expect("prompt exits");
    assert!(o.status.success());
    let printed = String::from_utf8_lossy(&o.stdout);
    assert!(printed.contains("messages,\"List("), "{printed}");
    assert!(printed.contains("n\n0\n"), "{printed}");
    assert!(printed.contains("answer\n42\n"), "{printed}");
    assert!(!printed.contains("not run"), "{printed}");
    let said = String::from_utf8_lossy(&o.stderr);
    assert_eq!(said.matches("No field named tool").count(), 1, "{said}");

    // tokenize() in SQL is the tokenize stage's own function: the rows within the quickstart's
    // 32k limit are its samples, with the manifest's token total.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("manifest.json")).expect("manifest"))
            .expect("json");
    let tokens = sql(&[
        "--tokenize",
        "--format",
        "csv",
        "SELECT count(*), sum(n) FROM (SELECT tokenize(messages, tools, scaffold)['num_tokens'] AS n \
         FROM trajectories) WHERE n <= 32768",
    ]);
    let t = &manifest["tokenize"];
    assert_eq!(
        tokens.lines().nth(1),
        Some(format!("{},{}", t["samples"], t["tokens"]).as_str())
    );

    // The manifests of both directories, a run and an ingest output, side by side.
    assert_eq!(
        both("SELECT run_name, kind, read, kept, rejected FROM runs ORDER BY run_name"),
        "run_name,kind,read,kept,rejected\nquickstart,run,74,37,0\nsamples,ingest,7,7,0\n"
    );

    // A folder with nothing to query is refused with the reason.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let o = trajforge(&["sql", "--data", empty.to_str().expect("utf8"), "SELECT 1"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no trajforge outputs"));

    // A misspelt column: the statement, the missing name and the valid ones, said once
    // (DataFusion's error repeats its cause's text at each level of the chain).
    let o = trajforge(&["sql", "--data", data, "SELECT tool FROM tool_calls"]);
    assert!(!o.status.success());
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(said.contains("in: SELECT tool FROM tool_calls"), "{said}");
    assert!(said.contains("tool_calls.name"), "{said}");
    assert_eq!(said.matches("No field named tool").count(), 1, "{said}");
}

/// Every Parquet output of a run is read unchanged, with the same rows, columns and nested
/// totals, by pyarrow, polars, DuckDB, DataFusion's Python bindings (`CREATE EXTERNAL TABLE`)
/// and Hugging Face `datasets` (`tests/interop/stock_engines.py`).
#[test]
#[ignore = "needs python3 with pyarrow, polars, duckdb, datafusion, datasets; CI runs it"]
fn stock_engines_read_every_output() {
    require_python("pyarrow, polars, duckdb, datafusion, datasets", INTEROP_PIP);
    let tmp = tempfile::tempdir().expect("tmp");
    let run = quickstart_run(tmp.path());
    let report = python_script(
        "tests/interop/stock_engines.py",
        &[run.as_os_str()],
        &tmp.path().join("hf-home"),
    );
    for folder in ["kept", "filtered", "rejects", "shards", "tokenize_dropped"] {
        assert!(
            report.contains(&format!("\"folder\": \"{folder}\"")),
            "{folder} not checked:\n{report}"
        );
    }
    assert!(report.contains("\"datasets\""), "{report}");
}
