//! The stage after `write`: the kept rows rendered, tokenized and loss-masked by
//! `trajforge_tokenize`, packed into training shards when the pipeline has a `pack` step.
//! Reads the kept parts from the work folder and writes beside them; `publish` moves the
//! results to `OUT/shards/` (or `OUT/tokenized/`) and `OUT/tokenize_dropped/`.

use std::path::{Path, PathBuf};

use trajforge_ops::operators::tokenize::{LengthPolicyName, LossTurns};
use trajforge_ops::{PackOptions, TokenizeOptions};
use trajforge_schema::FailureRule;
use trajforge_tokenize::job::{
    self, JobOptions, JobProgress, Layout, TokenizeSummary, ToolCatalogue,
};
use trajforge_tokenize::model::Model;
use trajforge_tokenize::pack::PackConfig;
use trajforge_tokenize::sample::{LengthPolicy, SampleOptions, Turns};

use crate::PipelineError;
use crate::run::RunProgress;

/// The folders the stage writes (in the work folder, then moved under OUT by `publish`).
pub const OUTPUT_DIRS: [&str; 3] = ["shards", "tokenized", "tokenize_dropped"];

fn config(e: trajforge_tokenize::TokenizeError) -> PipelineError {
    match e {
        trajforge_tokenize::TokenizeError::Config(m) => {
            PipelineError::Config(format!("tokenize: {m}"))
        }
        other => PipelineError::Internal(format!("tokenize: {other}")),
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
    pub model: Model,
    pub tools: ToolCatalogue,
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
        model,
        tools,
        job,
        output,
    })
}

/// Tokenizes (and packs) `kept` (the kept parts, in order) into `stage_dir`.
pub fn run(
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
    let summary = job::run(
        &p.model,
        &p.tools,
        kept,
        &stage_dir.join(p.output),
        &stage_dir.join("tokenize_dropped"),
        &p.job,
        &advance,
    )
    .map_err(|e| PipelineError::Internal(format!("tokenize: {e}")))?;
    progress.stage_done();
    Ok(summary)
}
