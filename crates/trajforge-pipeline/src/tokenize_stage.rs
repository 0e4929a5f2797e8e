//! The stage after `write`: the kept rows rendered, tokenized and loss-masked by
//! `trajforge_tokenize`, packed into training shards when the pipeline has a `pack` step.
//! Reads the kept parts from the work folder and writes beside them; `publish` moves the
//! results to `OUT/shards/` (or `OUT/tokenized/`) and `OUT/tokenize_dropped/`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::prelude::{SessionConfig, SessionContext};

use trajforge_ops::operators::tokenize::{LengthPolicyName, LossTurns};
use trajforge_ops::{PackOptions, TokenizeOptions};
use trajforge_schema::FailureRule;
use trajforge_tokenize::TokenizeError;
use trajforge_tokenize::job::{
    self, JobOptions, JobProgress, Layout, TokenizeSummary, ToolCatalogue,
};
use trajforge_tokenize::model::Model;
use trajforge_tokenize::pack::PackConfig;
use trajforge_tokenize::sample::{LengthPolicy, SampleOptions, Turns};

use crate::PipelineError;
use crate::engine::write_session;
use crate::run::RunProgress;
use crate::source::{TrajectorySource, WRITE_BATCH_ROWS};

/// The folders the stage writes (in the work folder, then moved under OUT by `publish`).
pub const OUTPUT_DIRS: [&str; 3] = ["shards", "tokenized", DROPPED_DIR];
/// Where the rows that were not tokenized go, with their reason (pipeline and `trajforge
/// tokenize` alike).
pub const DROPPED_DIR: &str = "tokenize_dropped";

fn config(e: TokenizeError) -> PipelineError {
    match e {
        TokenizeError::Config(m) => PipelineError::Config(format!("tokenize: {m}")),
        other => PipelineError::Internal(format!("tokenize: {other}")),
    }
}

/// A failed run: bad data and I/O keep their blame; anything else is ours.
fn failed(e: TokenizeError) -> PipelineError {
    match e {
        TokenizeError::Config(m) => PipelineError::Config(format!("tokenize: {m}")),
        TokenizeError::Data(m) => PipelineError::Data(format!("tokenize: {m}")),
        TokenizeError::Io { path, source } => PipelineError::io(path, source),
        TokenizeError::Internal(m) => PipelineError::Internal(format!("tokenize: {m}")),
    }
}

fn sample_options(t: &TokenizeOptions) -> SampleOptions {
    SampleOptions {
        turns: match t.loss_on {
            LossTurns::All => Turns::All,
            LossTurns::Last => Turns::Last,
        },
        mask_failed_tool_calls: t.mask_failed_tool_calls,
        failure: FailureRule::new(&t.error_prefixes, &t.failure_phrases),
        max_tokens: t.max_tokens,
        length_policy: match t.length_policy {
            LengthPolicyName::Drop => LengthPolicy::Drop,
            LengthPolicyName::TruncateTurns => LengthPolicy::TruncateTurns,
        },
    }
}

fn layout(pack: Option<&PackOptions>) -> Layout {
    match pack {
        None => Layout::Unpacked,
        Some(p) => Layout::Packed(PackConfig {
            pack_len: p.pack_len,
            lookahead: p.lookahead,
            max_open: p.max_open,
            seed: p.seed,
        }),
    }
}

struct Advance<'a>(&'a dyn RunProgress, std::sync::atomic::AtomicU64);

impl JobProgress for Advance<'_> {
    fn rows_done(&self, rows: u64, _tokens: u64) {
        let done = self.1.fetch_add(rows, std::sync::atomic::Ordering::Relaxed) + rows;
        self.0.advance(done, 0);
    }
}

/// What a tokenize run needs, resolved from the step options (the pipeline's `tokenize` and
/// `pack` steps, or the `trajforge tokenize` flags expressed as the same options).
pub struct Prepared {
    pub model: Arc<Model>,
    pub tools: Arc<ToolCatalogue>,
    pub job: JobOptions,
    /// `shards` (packed) or `tokenized`.
    pub output: &'static str,
}

/// Loads the tokenizer and tool catalogues (paths relative to `base_dir`) and the job settings.
pub fn prepare(
    t: &TokenizeOptions,
    pack: Option<&PackOptions>,
    base_dir: &Path,
) -> Result<Prepared, PipelineError> {
    let resolve = |p: &str| base_dir.join(p);
    let model = Model::load(t.tokenizer.as_deref().map(resolve).as_deref()).map_err(config)?;
    let mut tools = ToolCatalogue::bundled().map_err(config)?;
    for (scaffold, path) in &t.tool_catalogues {
        tools
            .insert_file(scaffold, &resolve(path))
            .map_err(config)?;
    }
    let (rows_per_shard, output) = match pack {
        Some(p) => (p.rows_per_shard, "shards"),
        None => (t.rows_per_shard, "tokenized"),
    };
    let mut metadata = vec![("trajforge.tokenizer".to_string(), model.source.clone())];
    if let Some(p) = pack {
        metadata.push(("trajforge.pack_len".into(), p.pack_len.to_string()));
    }
    let job = JobOptions {
        sample: sample_options(t),
        layout: layout(pack),
        rows_per_shard,
        cache_bytes: t.cache_bytes,
        metadata,
    };
    Ok(Prepared {
        model: Arc::new(model),
        tools: Arc::new(tools),
        job,
        output,
    })
}

/// Tokenizes (and packs) `kept` (the kept parts, in order) into `stage_dir`, in `ctx`'s
/// runtime with the write stage's small batches.
pub async fn run(
    ctx: &SessionContext,
    p: &Prepared,
    kept: &[PathBuf],
    kept_rows: u64,
    stage_dir: &Path,
    progress: &dyn RunProgress,
) -> Result<TokenizeSummary, PipelineError> {
    for d in OUTPUT_DIRS {
        let dir = stage_dir.join(d);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| PipelineError::io(&dir, e))?;
        }
    }
    progress.stage("tokenize", kept_rows, 0);
    let advance = Advance(progress, Default::default());
    let summary = run_files(
        &write_session(ctx),
        p,
        kept,
        &stage_dir.join(p.output),
        &stage_dir.join(DROPPED_DIR),
        &advance,
    )
    .await?;
    progress.stage_done();
    Ok(summary)
}

/// Tokenizes (and packs) canonical Parquet `files` in `ctx`: shards (or tokenized parts) to
/// `out`, the dropped table to `dropped`. DataFusion scans the files with `_row` ordinals
/// (the same scan as the pipeline's), one partition per thread.
pub async fn run_files(
    ctx: &SessionContext,
    p: &Prepared,
    files: &[PathBuf],
    out: &Path,
    dropped: &Path,
    progress: &dyn JobProgress,
) -> Result<TokenizeSummary, PipelineError> {
    let source = TrajectorySource::open(files)?;
    let input = ctx.read_table(Arc::new(source))?;
    job::run(input, &p.model, &p.tools, out, dropped, &p.job, progress)
        .await
        .map_err(failed)
}

/// [`run_files`] for callers outside an async runtime (`trajforge tokenize`): a session of
/// `threads` partitions and write-stage batches.
pub fn run_files_blocking(
    p: &Prepared,
    files: &[PathBuf],
    out: &Path,
    dropped: &Path,
    threads: usize,
    progress: &dyn JobProgress,
) -> Result<TokenizeSummary, PipelineError> {
    let config = SessionConfig::new()
        .with_target_partitions(threads.max(1))
        .with_batch_size(WRITE_BATCH_ROWS);
    let ctx = SessionContext::new_with_config(config);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .build()
        .map_err(|e| PipelineError::Internal(format!("cannot start the runtime: {e}")))?;
    rt.block_on(run_files(&ctx, p, files, out, dropped, progress))
}
