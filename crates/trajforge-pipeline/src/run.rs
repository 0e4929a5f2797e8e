//! `trajforge run`: stages, checkpoints, outputs and the ledger.
//!
//! A run has three stages, each finished by an atomic checkpoint under `OUT/.work/`:
//! **ingest** (raw inputs → canonical Parquet and rejects), **decide** (the decide plan →
//! `decisions.parquet`) and **write** (the write plan → kept and filtered shards). `--resume`
//! skips the stages whose checkpoint exists for the same configuration and inputs; an
//! unfinished stage is redone from its start, and since every stage is deterministic the
//! outputs are byte-identical to an uninterrupted run. The last step moves the outputs into
//! place, checks read = kept + filtered + rejected and writes `manifest.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use datafusion::physical_plan::{ExecutionPlan, collect, execute_stream};
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};
use trajforge_io::manifest::InputFile;
use trajforge_io::source::ClassifiedInputs;
use trajforge_io::writer::{ParquetFile, PartInfo, PartOptions, PartWriter, write_atomic};
use trajforge_io::{IngestOptions, Progress};
use xxhash_rust::xxh3::xxh3_128;

use crate::PipelineError;
use crate::engine::{
    PlanEnv, REASONS, StepMeters, decide_plan, default_memory_limit, session, write_plan,
};
use crate::source::{ROW, TrajectorySource};
use crate::spec::Pipeline;
use crate::tokenize_stage;
use trajforge_tokenize::job::TokenizeSummary;

/// How to run a pipeline.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub out: PathBuf,
    pub threads: usize,
    pub resume: bool,
    /// The command line, for the manifest.
    pub command: String,
}

/// Progress of a run's stages (the CLI draws bars).
pub trait RunProgress: Sync {
    /// A stage starts; totals may be 0 when unknown.
    fn stage(&self, _name: &str, _total_rows: u64, _total_bytes: u64) {}
    /// Rows and bytes done so far in the current stage.
    fn advance(&self, _rows: u64, _bytes: u64) {}
    fn stage_done(&self) {}
    /// The decide stage judges rows with these steps (one bar each); totals are rows.
    fn steps(&self, _names: &[String], _total_rows: u64) {}
    /// Rows and trajectory bytes step `index` has judged so far.
    fn step_advance(&self, _index: usize, _rows: u64, _bytes: u64) {}
    /// Progress for the ingest stage.
    fn ingest(&self) -> &dyn Progress;
}

/// Shows nothing.
#[derive(Debug)]
pub struct Quiet;

impl RunProgress for Quiet {
    fn ingest(&self) -> &dyn Progress {
        &trajforge_io::ingest::NoProgress
    }
}

/// Rows in and out of one step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepCounts {
    pub index: usize,
    pub name: String,
    pub op: String,
    pub kind: trajforge_ops::StepKind,
    /// Rows no earlier step dropped.
    pub rows_in: u64,
    /// Rows neither this nor an earlier step dropped.
    pub rows_out: u64,
    /// Rows this step flagged, whether or not an earlier step dropped them.
    pub flagged: u64,
}

/// read = kept + filtered + rejected.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Ledger {
    pub read: u64,
    pub kept: u64,
    pub filtered: u64,
    pub rejected: u64,
    pub balanced: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outputs {
    pub kept: Vec<PartInfo>,
    pub filtered: Vec<PartInfo>,
    pub rejects: Vec<PartInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Timings {
    pub ingest_seconds: f64,
    pub decide_seconds: f64,
    pub write_seconds: f64,
    pub total_seconds: f64,
    pub rows_per_second: f64,
    pub input_mb_per_second: f64,
    /// Bytes the decide and write plans spilled to disk under `memory_limit` (0: all in memory).
    #[serde(default)]
    pub decide_spilled_bytes: u64,
    #[serde(default)]
    pub write_spilled_bytes: u64,
    #[serde(default)]
    pub tokenize_seconds: f64,
}

/// Bytes spilled by `plan` and its inputs, from DataFusion's metrics.
fn spilled_bytes(plan: &Arc<dyn ExecutionPlan>) -> u64 {
    let own = plan.metrics().and_then(|m| m.spilled_bytes()).unwrap_or(0) as u64;
    own + plan.children().into_iter().map(spilled_bytes).sum::<u64>()
}

/// `OUT/manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunManifest {
    pub tool: String,
    pub tool_version: String,
    pub schema_version: u32,
    pub pipeline: String,
    pub config: serde_json::Value,
    pub config_hash: String,
    pub command: String,
    pub threads: usize,
    pub memory_limit: usize,
    pub inputs: Vec<InputFile>,
    pub skipped_inputs: Vec<String>,
    pub ledger: Ledger,
    pub steps: Vec<StepCounts>,
    /// Rows carrying each reason code (a row may carry several).
    pub reasons: BTreeMap<String, u64>,
    pub outputs: Outputs,
    /// The tokenize (and pack) stage: samples, drops by reason, tokens, fill, shard index.
    #[serde(default)]
    pub tokenize: Option<TokenizeSummary>,
    pub timings: Timings,
    pub resumed: bool,
    /// `--resume` found the run already finished and did nothing (not written to the file).
    #[serde(skip)]
    pub already_complete: bool,
}

/// The write stage's parts.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Written {
    kept: Vec<PartInfo>,
    filtered: Vec<PartInfo>,
}

/// What the checkpoints record.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    config_hash: String,
    inputs_signature: String,
    done: Vec<String>,
    ingest: Option<IngestResult>,
    /// Kept and filtered parts, once the write stage finished.
    written: Option<Written>,
    #[serde(default)]
    tokenize: Option<TokenizeSummary>,
    #[serde(default)]
    timings: Timings,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct IngestResult {
    inputs: Vec<InputFile>,
    read: u64,
    rejected: u64,
    /// The rejects table's parts (in the work folder until published).
    rejects: Vec<PartInfo>,
}

/// A stage hook for crash tests: `TRAJFORGE_PAUSE_AFTER=<point>` makes the run write
/// `OUT/.work/paused-<point>` and wait there to be killed. Only in builds with the `test-hooks`
/// feature (the e2e tests turn it on); elsewhere it is nothing, and the variable does nothing.
#[cfg(not(feature = "test-hooks"))]
fn pause_point(_work: &Path, _point: &str) {}

#[cfg(feature = "test-hooks")]
fn pause_point(work: &Path, point: &str) {
    if std::env::var("TRAJFORGE_PAUSE_AFTER").is_ok_and(|p| p == point) {
        let _ = std::fs::write(work.join(format!("paused-{point}")), b"");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
    }
}

fn classify_inputs(inputs: &[String]) -> Result<ClassifiedInputs, PipelineError> {
    if inputs.is_empty() {
        return Err(PipelineError::Config(
            "no input: give `input:` in the pipeline or --input PATH".into(),
        ));
    }
    Ok(trajforge_io::source::classify_inputs(inputs)?)
}

fn signature(files: &[PathBuf]) -> String {
    let mut text = String::new();
    for f in files {
        let meta = std::fs::metadata(f).ok();
        let size = meta.as_ref().map_or(0, |m| m.len());
        let mtime = meta
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        text.push_str(&format!("{}\t{size}\t{mtime}\n", f.display()));
    }
    format!("{:032x}", xxh3_128(text.as_bytes()))
}

fn save_state(work: &Path, state: &State) -> Result<(), PipelineError> {
    let json =
        serde_json::to_vec_pretty(state).map_err(|e| PipelineError::Internal(e.to_string()))?;
    write_atomic(&work.join("state.json"), &json)?;
    Ok(())
}

/// The advisory lock a run holds on its output folder, so that a second run into the same
/// `--out` fails at once instead of writing beside the first.
const LOCK_FILE: &str = ".trajforge.lock";

/// Takes `out`'s lock (creating `out`), held until the returned file is dropped; the holder's
/// pid and command are written into it so a second run can name them.
fn lock_out(out: &Path) -> Result<std::fs::File, PipelineError> {
    use std::io::{Read, Seek, Write};
    std::fs::create_dir_all(out).map_err(|e| PipelineError::io(out, e))?;
    let path = out.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| PipelineError::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(PipelineError::Config(format!(
                "{} is in use by another trajforge run ({}); wait for it to finish or choose \
                 another --out",
                out.display(),
                holder.trim()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(PipelineError::io(&path, e)),
    }
    let me = format!(
        "pid {}: {}",
        std::process::id(),
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(me.as_bytes()));
    written.map_err(|e| PipelineError::io(&path, e))?;
    Ok(file)
}

/// Where `--resume` picks up in `out`.
enum ResumePoint {
    /// After the last checkpointed stage.
    Stage(Box<State>),
    /// Nothing to do: the run finished (its manifest, marked `already_complete`).
    Finished(Box<RunManifest>),
    /// From the start: `out` does not exist, is empty, or holds a run killed before its first
    /// checkpoint (only `.work/`).
    Start,
}

/// Reads what `out` holds for `--resume`, and refuses to start over in a folder that is not a
/// run, which would delete its `kept/`, `filtered/` and other outputs.
fn resume_point(out: &Path, pipeline: &Pipeline) -> Result<ResumePoint, PipelineError> {
    let state_path = out.join(".work").join("state.json");
    if state_path.is_file() {
        let text = std::fs::read(&state_path).map_err(|e| PipelineError::io(&state_path, e))?;
        let state = serde_json::from_slice(&text).map_err(|e| {
            PipelineError::Data(format!(
                "cannot resume {}: {} is not a run state ({e}); run again without --resume",
                out.display(),
                state_path.display()
            ))
        })?;
        return Ok(ResumePoint::Stage(Box::new(state)));
    }
    let manifest_path = out.join("manifest.json");
    if manifest_path.is_file() {
        let text =
            std::fs::read(&manifest_path).map_err(|e| PipelineError::io(&manifest_path, e))?;
        let mut manifest: RunManifest = serde_json::from_slice(&text).map_err(|e| {
            PipelineError::Data(format!(
                "cannot resume {}: {} is not a run manifest ({e})",
                out.display(),
                manifest_path.display()
            ))
        })?;
        if manifest.config_hash != pipeline.config_hash {
            return Err(PipelineError::Config(format!(
                "cannot resume {}: it holds a finished run of another configuration (config \
                 hash {} then, {} now); run again without --resume to replace it",
                out.display(),
                manifest.config_hash,
                pipeline.config_hash
            )));
        }
        manifest.already_complete = true;
        return Ok(ResumePoint::Finished(Box::new(manifest)));
    }
    let is_empty = |dir: &Path| {
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .filter_map(Result::ok)
                .all(|e| e.file_name() == LOCK_FILE)
        })
    };
    if !out.exists() || is_empty(out) || out.join(".work").is_dir() {
        return Ok(ResumePoint::Start);
    }
    Err(PipelineError::Config(format!(
        "cannot resume {}: it is not a run folder (no .work/state.json, no manifest.json); \
         nothing was changed. Choose another --out, or run without --resume to write the run \
         there (which replaces its kept/, filtered/ and rejects/)",
        out.display()
    )))
}

fn remove_dir(path: &Path) -> Result<(), PipelineError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(PipelineError::io(path, e)),
    }
}

fn part_options(p: &Pipeline) -> PartOptions {
    PartOptions {
        rows_per_part: p.write.rows_per_shard,
        row_group_bytes: p.write.row_group_bytes,
        row_group_rows: p.write.row_group_rows,
        row_group_decoded_bytes: p.write.row_group_decoded_bytes,
        bloom_filter_columns: p.write.bloom_filter_columns.clone(),
        zstd_level: p.write.zstd_level,
        metadata: Vec::new(),
    }
}

/// Maps an executor error to a message that says what to do.
fn explain_df(e: datafusion::error::DataFusionError, limit: usize) -> PipelineError {
    if matches!(
        e.find_root(),
        datafusion::error::DataFusionError::ResourcesExhausted(_)
    ) {
        let text = e.to_string();
        return PipelineError::Config(format!(
            "the run needs more memory than memory_limit ({} MiB) allows and could not spill: {text}. \
             Raise it (--set memory_limit=8GiB) or use fewer --threads.",
            limit >> 20
        ));
    }
    PipelineError::Plan(e)
}

/// Runs a pipeline to completion and returns its manifest.
pub fn run(
    pipeline: &Pipeline,
    opts: &RunOptions,
    progress: &dyn RunProgress,
) -> Result<RunManifest, PipelineError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.threads.max(1))
        .enable_time()
        .build()
        .map_err(|e| PipelineError::Internal(format!("cannot start the runtime: {e}")))?;
    rt.block_on(run_async(pipeline, opts, progress))
}

struct Ctx<'a> {
    pipeline: &'a Pipeline,
    opts: &'a RunOptions,
    work: PathBuf,
    memory_limit: usize,
    progress: &'a dyn RunProgress,
}

async fn run_async(
    pipeline: &Pipeline,
    opts: &RunOptions,
    progress: &dyn RunProgress,
) -> Result<RunManifest, PipelineError> {
    let started = Instant::now();
    let out = &opts.out;
    let work = out.join(".work");
    let inputs = classify_inputs(&pipeline.input)?;
    let all: Vec<PathBuf> = inputs
        .canonical
        .iter()
        .map(|(p, _)| p)
        .chain(&inputs.raw)
        .cloned()
        .collect();
    let inputs_signature = signature(&all);
    // Tokenizer and tool catalogues load before any stage runs: a wrong path is a config error
    // now, not after the filters have run over the whole corpus.
    let tokenize = match &pipeline.tokenize {
        Some(t) => Some(tokenize_stage::prepare(
            t,
            pipeline.pack.as_ref(),
            &pipeline.base_dir,
        )?),
        None => None,
    };
    let _lock = lock_out(out)?;
    let resumed_state = match opts.resume {
        true => match resume_point(out, pipeline)? {
            ResumePoint::Stage(state) => Some(*state),
            ResumePoint::Finished(manifest) => return Ok(*manifest),
            ResumePoint::Start => None,
        },
        false => None,
    };
    let mut state = match resumed_state {
        Some(s) if s.config_hash != pipeline.config_hash => {
            return Err(PipelineError::Config(format!(
                "cannot resume {}: the pipeline configuration changed since the interrupted run \
                 (config hash {} then, {} now); run again without --resume",
                out.display(),
                s.config_hash,
                pipeline.config_hash
            )));
        }
        Some(s) if s.inputs_signature != inputs_signature => {
            return Err(PipelineError::Config(format!(
                "cannot resume {}: the input files changed since the interrupted run; run again without --resume",
                out.display()
            )));
        }
        Some(s) => s,
        None => {
            let stale_dirs = ["kept", "filtered", "rejects", ".work"];
            for stale in stale_dirs.into_iter().chain(tokenize_stage::OUTPUT_DIRS) {
                remove_dir(&out.join(stale))?;
            }
            let _ = std::fs::remove_file(out.join("manifest.json"));
            State {
                config_hash: pipeline.config_hash.clone(),
                inputs_signature,
                done: Vec::new(),
                ingest: None,
                written: None,
                tokenize: None,
                timings: Timings::default(),
            }
        }
    };
    let resumed = !state.done.is_empty();
    std::fs::create_dir_all(&work).map_err(|e| PipelineError::io(&work, e))?;
    let memory_limit = pipeline.memory_limit.unwrap_or_else(default_memory_limit);
    let cx = Ctx {
        pipeline,
        opts,
        work: work.clone(),
        memory_limit,
        progress,
    };
    if !state.done.iter().any(|d| d == "ingest") {
        let t = Instant::now();
        state.ingest = Some(ingest_stage(&cx, &inputs)?);
        state.timings.ingest_seconds = t.elapsed().as_secs_f64();
        state.done.push("ingest".into());
        save_state(&work, &state)?;
        pause_point(&work, "ingest");
    }
    let ingest = state
        .ingest
        .clone()
        .ok_or_else(|| PipelineError::Internal("ingest checkpoint has no result".into()))?;
    let mut files: Vec<PathBuf> = inputs.canonical.iter().map(|(p, _)| p.clone()).collect();
    if !inputs.raw.is_empty() {
        let ingested = work.join("ingest").join("trajectories");
        files.extend(crate::engine::parquet_files(&[ingested])?);
    }
    let ctx = session(opts.threads, memory_limit, &work.join("spill"))?;
    let source = TrajectorySource::open(&files)?;
    if !state.done.iter().any(|d| d == "decide") {
        let t = Instant::now();
        state.timings.decide_spilled_bytes = decide_stage(&cx, &ctx, &source).await?;
        state.timings.decide_seconds = t.elapsed().as_secs_f64();
        state.done.push("decide".into());
        save_state(&work, &state)?;
        pause_point(&work, "decide");
    }
    let decisions = read_decisions(&work.join("decisions.parquet"))?;
    if !state.done.iter().any(|d| d == "write") {
        let t = Instant::now();
        let (written, spilled) = write_stage(&cx, &ctx, &source, &decisions).await?;
        state.written = Some(written);
        state.timings.write_spilled_bytes = spilled;
        state.timings.write_seconds = t.elapsed().as_secs_f64();
        state.done.push("write".into());
        save_state(&work, &state)?;
        pause_point(&work, "write");
    }
    let (steps, reasons) = step_counts(pipeline, &decisions)?;
    let written = state
        .written
        .clone()
        .ok_or_else(|| PipelineError::Internal("write checkpoint has no parts".into()))?;
    if let Some(prepared) = tokenize
        .as_ref()
        .filter(|_| !state.done.iter().any(|d| d == "tokenize"))
    {
        let t = Instant::now();
        let kept: Vec<PathBuf> = written
            .kept
            .iter()
            .map(|p| work.join("write").join(&p.path))
            .collect();
        let rows = written.kept.iter().map(|p| p.rows).sum();
        state.tokenize = Some(
            tokenize_stage::run(
                &ctx,
                prepared,
                &kept,
                rows,
                &work.join("tokenize"),
                progress,
            )
            .await?,
        );
        state.timings.tokenize_seconds = t.elapsed().as_secs_f64();
        state.done.push("tokenize".into());
        save_state(&work, &state)?;
        pause_point(&work, "tokenize");
    }
    let outputs = publish(&cx, written, ingest.rejects.clone())?;
    let kept: u64 = outputs.kept.iter().map(|p| p.rows).sum();
    let filtered: u64 = outputs.filtered.iter().map(|p| p.rows).sum();
    let rejected: u64 = outputs.rejects.iter().map(|p| p.rows).sum();
    let read = ingest.read;
    let ledger = Ledger {
        read,
        kept,
        filtered,
        rejected,
        balanced: read == kept + filtered + rejected && rejected == ingest.rejected,
    };
    let mut timings = state.timings.clone();
    timings.total_seconds = started.elapsed().as_secs_f64();
    let busy = (timings.ingest_seconds + timings.decide_seconds + timings.write_seconds).max(1e-9);
    let tokenize_balanced = state
        .tokenize
        .as_ref()
        .is_none_or(|t| t.balanced && t.rows_in == kept);
    timings.rows_per_second = read as f64 / busy;
    let in_bytes: u64 = ingest.inputs.iter().map(|i| i.bytes).sum();
    timings.input_mb_per_second = in_bytes as f64 / 1e6 / busy;
    let manifest = RunManifest {
        tool: "trajforge".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        schema_version: trajforge_schema::SCHEMA_VERSION,
        pipeline: pipeline.file.clone(),
        config: pipeline.config.clone(),
        config_hash: pipeline.config_hash.clone(),
        command: opts.command.clone(),
        threads: opts.threads,
        memory_limit,
        inputs: ingest.inputs.clone(),
        skipped_inputs: inputs.skipped,
        ledger: ledger.clone(),
        steps,
        reasons,
        outputs,
        tokenize: state.tokenize.clone(),
        timings,
        resumed,
        already_complete: false,
    };
    let json =
        serde_json::to_vec_pretty(&manifest).map_err(|e| PipelineError::Internal(e.to_string()))?;
    write_atomic(&out.join("manifest.json"), &json)?;
    remove_dir(&work)?;
    if !tokenize_balanced {
        return Err(PipelineError::Internal(
            "the tokenize stage does not account for every kept row".into(),
        ));
    }
    if !ledger.balanced {
        return Err(PipelineError::Internal(format!(
            "the ledger does not balance: read {read} != kept {kept} + filtered {filtered} + rejected {rejected}"
        )));
    }
    Ok(manifest)
}

/// Ingests raw inputs; fingerprints canonical ones.
fn ingest_stage(cx: &Ctx, inputs: &ClassifiedInputs) -> Result<IngestResult, PipelineError> {
    let dir = cx.work.join("ingest");
    remove_dir(&dir)?;
    let mut files = Vec::new();
    let (mut read, mut rejected) = (0, 0);
    for &(ref path, rows) in &inputs.canonical {
        let fp = trajforge_io::source::fingerprint_file(path)?;
        read += rows;
        files.push(InputFile {
            path: path.display().to_string(),
            bytes: fp.bytes,
            xxh3_128: fp.xxh3_128,
            format: Some("canonical".into()),
            read: rows,
            written: rows,
            rejected: 0,
        });
    }
    let mut ingest_opts = IngestOptions::new(
        inputs.raw.iter().map(|p| p.display().to_string()).collect(),
        dir.clone(),
    );
    ingest_opts.format = cx.pipeline.format;
    ingest_opts.command = cx.opts.command.clone();
    let rejects = if inputs.raw.is_empty() {
        // Nothing to ingest: an empty rejects table keeps the output layout the same.
        let w = PartWriter::create(
            &dir,
            "rejects",
            trajforge_io::reject::rejects_schema(),
            PartOptions::default(),
        )?;
        w.finish()?
    } else {
        cx.progress.stage("ingest", 0, 0);
        let m = trajforge_io::ingest(&ingest_opts, cx.progress.ingest())?;
        cx.progress.stage_done();
        read += m.counts.read;
        rejected += m.counts.rejected;
        files.extend(m.inputs);
        m.outputs
            .into_iter()
            .filter(|p| p.path.starts_with("rejects/"))
            .collect()
    };
    Ok(IngestResult {
        inputs: files,
        read,
        rejected,
        rejects,
    })
}

/// Polls the scan counter (and the step meters, if any) into the progress bars while `fut`
/// runs.
async fn with_progress<T>(
    cx: &Ctx<'_>,
    source: &TrajectorySource,
    name: &str,
    meters: Option<&StepMeters>,
    fut: impl std::future::Future<Output = T>,
) -> T {
    let counter = source.counter();
    let start_rows = counter.rows.load(std::sync::atomic::Ordering::Relaxed);
    let start_bytes = counter.bytes.load(std::sync::atomic::Ordering::Relaxed);
    cx.progress
        .stage(name, source.total_rows(), source.total_bytes());
    let report = || {
        let rows = counter.rows.load(std::sync::atomic::Ordering::Relaxed) - start_rows;
        let bytes = counter.bytes.load(std::sync::atomic::Ordering::Relaxed) - start_bytes;
        cx.progress.advance(rows, bytes);
        let steps = meters.map(StepMeters::read).unwrap_or_default();
        for (k, (rows, bytes)) in steps.into_iter().enumerate() {
            cx.progress.step_advance(k, rows, bytes);
        }
    };
    let mut fut = std::pin::pin!(fut);
    let out = loop {
        let tick = std::pin::pin!(tokio::time::sleep(std::time::Duration::from_millis(200)));
        match futures::future::select(fut.as_mut(), tick).await {
            futures::future::Either::Left((out, _)) => break out,
            futures::future::Either::Right(((), _)) => report(),
        }
    };
    report();
    cx.progress.stage_done();
    out
}

async fn decide_stage(
    cx: &Ctx<'_>,
    ctx: &SessionContext,
    source: &TrajectorySource,
) -> Result<u64, PipelineError> {
    let env = PlanEnv::new(ctx.clone())?;
    let df = ctx.read_table(Arc::new(source.clone()))?;
    let steps = &cx.pipeline.steps;
    let meters = StepMeters::new(steps.len());
    let plan = decide_plan(steps, df, &env, &meters)?;
    let names: Vec<String> = steps.iter().map(|s| s.ctx.name.clone()).collect();
    cx.progress.steps(&names, source.total_rows());
    let physical = plan.create_physical_plan().await?;
    let running = collect(Arc::clone(&physical), ctx.task_ctx());
    let batches = with_progress(cx, source, "decide", Some(&meters), running)
        .await
        .map_err(|e| explain_df(e, cx.memory_limit))?;
    let schema = batches
        .first()
        .map(|b| b.schema())
        .ok_or_else(|| PipelineError::Data("the input has no rows".into()))?;
    let path = cx.work.join("decisions.parquet");
    let mut file = ParquetFile::create(&path, schema, &PartOptions::default())?;
    for b in &batches {
        file.write(b)?;
    }
    file.finish()?;
    Ok(spilled_bytes(&physical))
}

fn read_decisions(path: &Path) -> Result<Vec<RecordBatch>, PipelineError> {
    let file = std::fs::File::open(path).map_err(|e| PipelineError::io(path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| PipelineError::Data(format!("{}: {e}", path.display())))?
        .with_batch_size(65_536)
        .build()
        .map_err(|e| PipelineError::Data(format!("{}: {e}", path.display())))?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PipelineError::Data(format!("{}: {e}", path.display())))
}

/// Rows whose reason list is empty.
fn kept_mask(batch: &RecordBatch) -> Result<BooleanArray, PipelineError> {
    let reasons = batch
        .column_by_name(REASONS)
        .ok_or_else(|| PipelineError::Internal("write plan lost the reasons column".into()))?
        .as_list::<i32>();
    Ok((0..batch.num_rows())
        .map(|i| Some(reasons.value_length(i) == 0))
        .collect())
}

async fn write_stage(
    cx: &Ctx<'_>,
    ctx: &SessionContext,
    source: &TrajectorySource,
    decisions: &[RecordBatch],
) -> Result<(Written, u64), PipelineError> {
    let dir = cx.work.join("write");
    remove_dir(&dir)?;
    let ctx = &crate::engine::write_session(ctx);
    let src = ctx.read_table(Arc::new(source.clone()))?;
    let dec = ctx.read_batches(decisions.to_vec())?;
    let plan = write_plan(&cx.pipeline.steps, src, dec, &cx.pipeline.write.sort_by)?;
    let schema = Arc::new(plan.schema().as_arrow().clone());
    let row_idx = schema.index_of(ROW)?;
    let filtered_cols: Vec<usize> = (0..schema.fields().len())
        .filter(|&i| i != row_idx)
        .collect();
    let reason_idx = schema.index_of(REASONS)?;
    let kept_cols: Vec<usize> = filtered_cols
        .iter()
        .copied()
        .filter(|&i| i < reason_idx)
        .collect();
    let parts = part_options(cx.pipeline);
    let mut kept = PartWriter::create(
        &dir,
        "kept",
        Arc::new(schema.project(&kept_cols)?),
        parts.clone(),
    )?;
    let mut filtered = PartWriter::create(
        &dir,
        "filtered",
        Arc::new(schema.project(&filtered_cols)?),
        parts,
    )?;
    let work = cx.work.clone();
    let physical = plan.create_physical_plan().await?;
    let writing = async {
        let mut stream = execute_stream(Arc::clone(&physical), ctx.task_ctx())?;
        let mut paused = false;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let mask = kept_mask(&batch)?;
            let keep = filter_record_batch(&batch, &mask)?;
            let drop = filter_record_batch(&batch, &arrow::compute::not(&mask)?)?;
            kept.write(&keep.project(&kept_cols)?)?;
            filtered.write(&drop.project(&filtered_cols)?)?;
            if !paused && std::fs::read_dir(dir.join("kept")).is_ok_and(|d| d.count() > 1) {
                paused = true;
                pause_point(&work, "write-part");
            }
        }
        Ok::<_, PipelineError>(())
    };
    with_progress(cx, source, "write", None, writing)
        .await
        .map_err(|e| match e {
            PipelineError::Plan(d) => explain_df(d, cx.memory_limit),
            other => other,
        })?;
    let written = Written {
        kept: kept.finish()?,
        filtered: filtered.finish()?,
    };
    Ok((written, spilled_bytes(&physical)))
}

/// Moves outputs from the work folder into place.
fn publish(cx: &Ctx, written: Written, rejects: Vec<PartInfo>) -> Result<Outputs, PipelineError> {
    let out = &cx.opts.out;
    let moves = [
        (cx.work.join("write").join("kept"), "kept"),
        (cx.work.join("write").join("filtered"), "filtered"),
        (cx.work.join("ingest").join("rejects"), "rejects"),
    ];
    let staged = tokenize_stage::OUTPUT_DIRS.map(|d| (cx.work.join("tokenize").join(d), d));
    for (from, name) in moves.iter().chain(&staged) {
        let to = out.join(name);
        if from.exists() {
            remove_dir(&to)?;
            std::fs::rename(from, &to).map_err(|e| PipelineError::io(&to, e))?;
        }
    }
    Ok(Outputs {
        kept: written.kept,
        filtered: written.filtered,
        rejects,
    })
}

/// Per-step rows in/out and per-reason counts from the decisions.
fn step_counts(
    pipeline: &Pipeline,
    decisions: &[RecordBatch],
) -> Result<(Vec<StepCounts>, BTreeMap<String, u64>), PipelineError> {
    let steps = &pipeline.steps;
    let mut dropped_at = vec![0u64; steps.len()];
    let mut flagged = vec![0u64; steps.len()];
    let mut total = 0u64;
    for batch in decisions {
        let cols: Vec<_> = steps
            .iter()
            .map(|s| {
                batch
                    .column_by_name(&s.ctx.reason_col())
                    .map(|c| c.logical_nulls())
                    .ok_or_else(|| PipelineError::Internal(format!("no {}", s.ctx.reason_col())))
            })
            .collect::<Result<_, _>>()?;
        for row in 0..batch.num_rows() {
            total += 1;
            let mut first = None;
            for (k, nulls) in cols.iter().enumerate() {
                let flag = nulls.as_ref().is_none_or(|n| n.is_valid(row));
                if flag {
                    flagged[k] += 1;
                    first.get_or_insert(k);
                }
            }
            if let Some(k) = first {
                dropped_at[k] += 1;
            }
        }
    }
    let mut alive = total;
    let mut counts = Vec::new();
    let mut reasons = BTreeMap::new();
    for (k, s) in steps.iter().enumerate() {
        let rows_in = alive;
        alive -= dropped_at[k];
        counts.push(StepCounts {
            index: k,
            name: s.ctx.name.clone(),
            op: s.op.to_string(),
            kind: s.kind,
            rows_in,
            rows_out: alive,
            flagged: flagged[k],
        });
        reasons.insert(s.ctx.name.clone(), flagged[k]);
    }
    Ok((counts, reasons))
}
