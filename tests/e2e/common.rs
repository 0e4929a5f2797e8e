//! Helpers shared by the end-to-end tests.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use trajforge_io::ingest::NoProgress;
use trajforge_io::{Format, IngestOptions, Manifest, Reject, ingest};
use trajforge_schema::{Trajectory, batch};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn sample(rel: &str) -> String {
    root().join("data-samples").join(rel).display().to_string()
}

pub fn corpus(name: &str) -> String {
    root()
        .join("tests/corpus/malformed")
        .join(name)
        .display()
        .to_string()
}

/// Runs the real binary.
pub fn trajforge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trajforge"))
        .args(args)
        .output()
        .expect("run trajforge")
}

/// The quickstart run, in a folder named `quickstart` (queries show the run's name).
pub fn quickstart_run(tmp: &Path) -> PathBuf {
    let out = tmp.join("quickstart");
    let quick = root().join("pipelines/quickstart.yaml");
    let o = trajforge(&[
        "run",
        quick.to_str().expect("utf8"),
        "--out",
        out.to_str().expect("utf8"),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

/// Fails the test, with the command that installs them, unless `python3` imports `modules`
/// (comma-separated). The tests that call it are `#[ignore]`d, so a plain `cargo test` lists
/// them as ignored instead of passing them silently; CI installs their tools and runs them with
/// `-- --include-ignored`, where a missing tool is a failure.
pub fn require_python(modules: &str, install: &str) {
    let o = Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output();
    let why = match o {
        Ok(o) if o.status.success() => return,
        Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
        Err(e) => format!("python3 does not start: {e}"),
    };
    panic!("this test needs python3 with {modules}; install them with `{install}` ({why})");
}

/// The pip line that installs what the stock-engine and Hub checks import (as `.ci/run` does).
pub const INTEROP_PIP: &str = "python3 -m pip install transformers==4.57.1 'huggingface-hub>=0.34,<1.0' \
     datasets==4.8.5 pyarrow==26.0.1 polars==2.1.0 duckdb==2.0.0 datafusion==55.0.0 pyyaml";

/// Runs a Python script from the repository with `args`, offline for Hugging Face (its caches
/// under `hf_home`), asserts it succeeded and returns its stdout.
pub fn python_script(script: &str, args: &[&std::ffi::OsStr], hf_home: &Path) -> String {
    let o = Command::new("python3")
        .arg(root().join(script))
        .args(args)
        .env("HF_HOME", hf_home)
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_DATASETS_OFFLINE", "1")
        .output()
        .expect("python runs");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{script}: {out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// Ingests through the library with default options.
pub fn ingest_into(inputs: &[String], out: &Path, format: Option<Format>) -> Manifest {
    let mut opts = IngestOptions::new(inputs.to_vec(), out.to_path_buf());
    opts.format = format;
    ingest(&opts, &NoProgress).expect("ingest runs")
}

fn parts(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("output dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    files
}

/// Every batch of a folder's Parquet files, in file-name order.
pub fn batches(dir: &Path) -> Vec<arrow::record_batch::RecordBatch> {
    parts(dir)
        .into_iter()
        .flat_map(|p| {
            let reader =
                ParquetRecordBatchReaderBuilder::try_new(File::open(&p).expect("open part"))
                    .expect("parquet")
                    .build()
                    .expect("reader");
            reader.map(|b| b.expect("batch")).collect::<Vec<_>>()
        })
        .collect()
}

/// Every canonical row an ingest wrote, in order.
pub fn trajectories(out: &Path) -> Vec<Trajectory> {
    batches(&out.join("trajectories"))
        .iter()
        .flat_map(|b| batch::from_record_batch(b).expect("canonical rows"))
        .collect()
}

/// Every reject an ingest wrote, in order.
pub fn rejects(out: &Path) -> Vec<Reject> {
    batches(&out.join("rejects"))
        .iter()
        .flat_map(|b| serde_arrow::from_record_batch::<Vec<Reject>>(b).expect("reject rows"))
        .collect()
}

/// An ingest whose ledger was checked against the rows it left on disk.
pub struct Ingested {
    pub manifest: Manifest,
    pub rows: Vec<Trajectory>,
    pub rejects: Vec<Reject>,
}

/// Ingests into a fresh directory, reads back every written and rejected row, and checks that
/// read = written + rejected and that the counts agree with the rows on disk and the manifest
/// file.
pub fn ingest_checked(inputs: &[String], format: Option<Format>) -> Ingested {
    let out = tempfile::tempdir().expect("tmp");
    let manifest = ingest_into(inputs, out.path(), format);
    let (rows, rejects) = (trajectories(out.path()), rejects(out.path()));
    let c = &manifest.counts;
    assert_eq!(
        c.read,
        c.written + c.rejected,
        "ledger does not balance: {c:?}"
    );
    assert_eq!(rows.len() as u64, c.written, "written rows on disk");
    assert_eq!(rejects.len() as u64, c.rejected, "reject rows on disk");
    let on_disk: Manifest =
        serde_json::from_slice(&std::fs::read(out.path().join("manifest.json")).expect("manifest"))
            .expect("manifest json");
    assert_eq!(&on_disk.counts, c);
    Ingested {
        manifest,
        rows,
        rejects,
    }
}

/// All bytes of every Parquet file under `out`, by relative path.
pub fn output_bytes(out: &Path) -> Vec<(String, Vec<u8>)> {
    dir_bytes(out, &["trajectories", "rejects"])
}

/// All bytes of every Parquet file in the given subfolders of `out`, by relative path.
pub fn dir_bytes(out: &Path, subs: &[&str]) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for sub in subs {
        for p in parts(&out.join(sub)) {
            files.push((
                format!(
                    "{sub}/{}",
                    p.file_name().and_then(|n| n.to_str()).unwrap_or("")
                ),
                std::fs::read(&p).expect("read part"),
            ));
        }
    }
    files
}

/// Writes a synthetic corpus (nvidia Parquet layout) of `count` rows to `path`.
pub fn synth_corpus(
    path: &Path,
    kind: trajforge_synth::Kind,
    count: u64,
    seed: u64,
    defect_rate: f64,
) {
    let opts = trajforge_synth::SynthOptions {
        kind,
        count,
        seed,
        defect_rate,
        batch_rows: 64,
    };
    trajforge_synth::synth(&opts, path, &|_| {}).expect("synth");
}
