//! A tokenize run over canonical Parquet files: DataFusion scans them in order in small batches
//! and evaluates the `tokenize` UDF (render, tokenize and mask, rows of a batch in parallel),
//! then the samples are either written unpacked (one row per trajectory) or packed into
//! training shards, in input order so the output bytes do not depend on the thread count.
//! Every input row ends as a sample or in the `dropped` table with its reason.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{AsArray, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::col;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use trajforge_io::writer::{PartOptions, PartWriter};

use crate::TokenizeError;
use crate::model::Model;
use crate::pack::{PackConfig, Packer, fill};
use crate::pyjson::Json;
use crate::sample::SampleOptions;
use crate::shard::{
    Doc, ShardInfo, ShardWriter, io, packed_batch, packed_schema, tokenized_batch, tokenized_schema,
};
use crate::udf::{ARGUMENTS, TokenizeFn, outcome_at};

/// The OpenHands tool catalogue (`crates/trajforge-assets/data/tools/openhands.json`).
pub const OPENHANDS_TOOLS: &str = trajforge_assets::OPENHANDS_TOOLS;

/// Where the `tools=` of a row come from.
#[derive(Debug, Clone)]
pub struct ToolCatalogue {
    /// Tool lists by scaffold name, for rows without a `tools` column.
    by_scaffold: BTreeMap<String, Vec<Json>>,
}

impl ToolCatalogue {
    /// The bundled catalogues (OpenHands).
    pub fn bundled() -> Result<ToolCatalogue, TokenizeError> {
        let mut by_scaffold = BTreeMap::new();
        by_scaffold.insert(
            "openhands".to_string(),
            tool_list(OPENHANDS_TOOLS, "openhands.json").map_err(TokenizeError::Internal)?,
        );
        Ok(ToolCatalogue { by_scaffold })
    }

    /// Adds or replaces the catalogue of `scaffold` from a JSON file (an array of tools).
    pub fn insert_file(&mut self, scaffold: &str, path: &Path) -> Result<(), TokenizeError> {
        let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
        let tools = tool_list(&text, &path.display().to_string()).map_err(TokenizeError::Config)?;
        self.by_scaffold.insert(scaffold.to_string(), tools);
        Ok(())
    }

    /// The row's own tools (its `tools` column), else its scaffold's catalogue, else none.
    pub fn tools_for(
        &self,
        tools_column: Option<&str>,
        scaffold: Option<&str>,
    ) -> Result<Option<Vec<Json>>, TokenizeError> {
        if let Some(text) = tools_column.filter(|t| !t.trim().is_empty()) {
            return tool_list(text, "the row's tools column")
                .map(Some)
                .map_err(TokenizeError::Data);
        }
        Ok(scaffold.and_then(|s| self.by_scaffold.get(s)).cloned())
    }
}

/// A JSON array of tool schemas; the error says what is wrong (the caller says whose fault).
fn tool_list(text: &str, origin: &str) -> Result<Vec<Json>, String> {
    match Json::parse(text) {
        Ok(Json::Array(items)) => Ok(items),
        Ok(_) => Err(format!("{origin}: tools must be a JSON array")),
        Err(e) => Err(format!("{origin}: tools are not JSON: {e}")),
    }
}

/// What a run writes.
#[derive(Debug, Clone, Copy)]
pub enum Layout {
    /// One row per trajectory.
    Unpacked,
    /// Packed training rows.
    Packed(PackConfig),
}

/// A tokenize run's settings.
#[derive(Debug, Clone)]
pub struct JobOptions {
    pub sample: SampleOptions,
    pub layout: Layout,
    pub rows_per_shard: usize,
    /// Bytes of text each worker's segment cache may hold (0 turns caching off).
    pub cache_bytes: usize,
    /// Footer metadata of every shard (model, pack_len, …).
    pub metadata: Vec<(String, String)>,
}

/// What a run did, for the manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenizeSummary {
    /// Rows read.
    pub rows_in: u64,
    /// Samples written (packed or not).
    pub samples: u64,
    /// Samples shortened by `truncate_turns`.
    pub truncated: u64,
    /// Rows filtered, by reason (`too_long`, `no_supervised_tokens`).
    pub filtered: BTreeMap<String, u64>,
    /// Rows that could not be rendered (bad tool-call arguments, bad tools, template errors).
    pub rejected: u64,
    pub tokens: u64,
    pub supervised_tokens: u64,
    /// supervised / tokens.
    pub supervised_fraction: f64,
    /// Packed rows (0 when unpacked).
    pub packed_rows: u64,
    pub pack_len: Option<u32>,
    /// Tokens / (packed rows × pack_len).
    pub packing_fill: Option<f64>,
    /// The best fill any packing that never splits a sample could reach on these lengths:
    /// tokens / (max(samples longer than pack_len / 2, ⌈tokens / pack_len⌉) × pack_len), since
    /// no two samples longer than half a row share one.
    pub packing_fill_bound: Option<f64>,
    /// The shard index.
    pub shards: Vec<ShardInfo>,
    /// Repeated pieces found in the segment caches / pieces looked up.
    pub cache_hits: u64,
    pub cache_lookups: u64,
    pub seconds: f64,
    /// True when every row is accounted for (samples + filtered + rejected = rows in).
    pub balanced: bool,
}

/// Reports rows as they finish.
pub trait JobProgress: Sync {
    fn rows_done(&self, _rows: u64, _tokens: u64) {}
}

/// No progress reporting.
#[derive(Debug)]
pub struct NoProgress;
impl JobProgress for NoProgress {}

/// Why rows were dropped: `trajectory_id`, `reason`, `detail`.
pub fn dropped_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("trajectory_id", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("detail", DataType::Utf8, false),
    ]))
}

/// A dropped row: id, reason, detail.
type Dropped = (String, String, String);

/// The column giving the input's order: rows are processed by ascending `_row`.
pub const ORDER: &str = "_row";

/// Runs over `input` (canonical rows with [`ORDER`], `trajectory_id`, `messages`, `tools` and
/// `scaffold`): DataFusion evaluates the [`crate::udf`] `tokenize` function on each partition's
/// batches and merges the partitions back into `_row` order; the samples are written unpacked
/// or fed to the packer in that order, so the bytes do not depend on the thread count. Shards
/// go to `shard_dir`, the dropped table to `dropped_dir`.
pub async fn run(
    input: DataFrame,
    model: &Arc<Model>,
    tools: &Arc<ToolCatalogue>,
    shard_dir: &Path,
    dropped_dir: &Path,
    opts: &JobOptions,
    progress: &dyn JobProgress,
) -> Result<TokenizeSummary, TokenizeError> {
    let started = Instant::now();
    let f = TokenizeFn::new(
        Arc::clone(model),
        Arc::clone(tools),
        opts.sample.clone(),
        opts.cache_bytes,
    );
    let (stem, schema) = match opts.layout {
        Layout::Unpacked => ("part", tokenized_schema()),
        Layout::Packed(_) => ("shard", packed_schema()),
    };
    let mut shards = ShardWriter::new(
        shard_dir,
        stem,
        schema,
        opts.rows_per_shard,
        opts.metadata.clone(),
    )?;
    let mut dropped = dropped_writer(dropped_dir)?;
    let mut packer = match opts.layout {
        Layout::Packed(cfg) => Some(Packer::new(cfg)?),
        Layout::Unpacked => None,
    };
    let mut s = TokenizeSummary::default();
    let mut over_half = 0u64;
    let mut batches = tokenized_stream(input, &f).await?;
    while let Some(batch) = batches.next().await {
        let (docs, drop_rows) = split_batch(&batch.map_err(scan_error)?)?;
        s.rows_in += (docs.len() + drop_rows.len()) as u64;
        account(&mut s, &docs, &drop_rows);
        progress.rows_done(
            (docs.len() + drop_rows.len()) as u64,
            docs.iter().map(|d| d.sample.total_tokens() as u64).sum(),
        );
        dropped
            .write(&dropped_batch(&drop_rows)?)
            .map_err(|e| TokenizeError::Internal(e.to_string()))?;
        match packer.as_mut() {
            None => shards.write(&tokenized_batch(&docs)?)?,
            Some(p) => {
                for d in docs {
                    let len = d.sample.total_tokens();
                    over_half += u64::from(2 * len as u64 > p.pack_len() as u64);
                    let key = d.trajectory_id.clone();
                    let bins = p.push(len, key.as_bytes(), d)?;
                    write_bins(&mut shards, bins, &mut s)?;
                }
            }
        }
    }
    if let Some(p) = packer {
        write_bins(&mut shards, p.finish(), &mut s)?;
    }
    dropped
        .finish()
        .map_err(|e| TokenizeError::Internal(e.to_string()))?;
    s.shards = shards.finish()?;
    (s.cache_hits, s.cache_lookups) = f.cache_stats();
    if let Layout::Packed(cfg) = opts.layout {
        s.pack_len = Some(cfg.pack_len);
        s.packing_fill = Some(fill(s.packed_rows as usize, s.tokens, cfg.pack_len));
        let fewest_rows = over_half.max(s.tokens.div_ceil(cfg.pack_len as u64));
        s.packing_fill_bound = Some(fill(fewest_rows as usize, s.tokens, cfg.pack_len));
    }
    s.supervised_fraction = if s.tokens == 0 {
        0.0
    } else {
        s.supervised_tokens as f64 / s.tokens as f64
    };
    s.balanced = s.samples + s.filtered.values().sum::<u64>() + s.rejected == s.rows_in;
    s.seconds = started.elapsed().as_secs_f64();
    Ok(s)
}

/// `trajectory_id` and `tokenize(messages, tools, scaffold)` of every input row, in order.
async fn tokenized_stream(
    input: DataFrame,
    f: &Arc<TokenizeFn>,
) -> Result<SendableRecordBatchStream, TokenizeError> {
    let args = ARGUMENTS.iter().map(|c| col(*c)).collect();
    // Each partition keeps its `_row` order through the projection, so the sort is a merge.
    let df = input
        .select(vec![
            col(ORDER),
            col("trajectory_id"),
            f.udf().call(args).alias("t"),
        ])
        .and_then(|df| df.sort(vec![col(ORDER).sort(true, false)]))
        .and_then(|df| df.select(vec![col("trajectory_id"), col("t")]))
        .map_err(scan_error)?;
    df.execute_stream().await.map_err(scan_error)
}

fn scan_error(e: DataFusionError) -> TokenizeError {
    TokenizeError::Data(format!(
        "tokenizing the canonical rows failed (trajectory_id, messages, tools and scaffold \
         columns are expected): {e}"
    ))
}

/// The samples and the dropped rows of one tokenized batch, in row order.
fn split_batch(batch: &RecordBatch) -> Result<(Vec<Doc>, Vec<Dropped>), TokenizeError> {
    let bad = || TokenizeError::Internal("tokenized batch has an unexpected layout".into());
    let ids = batch.column(0).as_string_opt::<i32>().ok_or_else(bad)?;
    let t = batch.column(1).as_struct_opt().ok_or_else(bad)?;
    let (mut docs, mut dropped) = (Vec::new(), Vec::new());
    for i in 0..batch.num_rows() {
        let trajectory_id = ids.value(i).to_string();
        match outcome_at(t, i) {
            Ok(sample) => docs.push(Doc {
                trajectory_id,
                sample,
            }),
            Err((reason, detail)) => dropped.push((trajectory_id, reason, detail)),
        }
    }
    Ok((docs, dropped))
}

fn dropped_writer(dropped_dir: &Path) -> Result<PartWriter, TokenizeError> {
    let (parent, name) = match (dropped_dir.parent(), dropped_dir.file_name()) {
        (Some(p), Some(n)) => (p, n.to_string_lossy().into_owned()),
        _ => {
            return Err(TokenizeError::Config(format!(
                "{}: not a folder path",
                dropped_dir.display()
            )));
        }
    };
    PartWriter::create(parent, &name, dropped_schema(), PartOptions::default())
        .map_err(|e| TokenizeError::Internal(e.to_string()))
}

fn account(s: &mut TokenizeSummary, docs: &[Doc], dropped: &[Dropped]) {
    for d in docs {
        s.samples += 1;
        s.truncated += u64::from(d.sample.dropped_exchanges > 0);
        s.tokens += d.sample.total_tokens() as u64;
        s.supervised_tokens += d.sample.supervised_tokens as u64;
    }
    for (_, reason, _) in dropped {
        if reason == REJECTED {
            s.rejected += 1;
        } else {
            *s.filtered.entry(reason.clone()).or_default() += 1;
        }
    }
}

/// The reason recorded for rows that cannot be rendered.
pub const REJECTED: &str = "invalid_row";

fn write_bins(
    shards: &mut ShardWriter,
    bins: Vec<crate::pack::Bin<Doc>>,
    s: &mut TokenizeSummary,
) -> Result<(), TokenizeError> {
    let rows: Vec<Vec<Doc>> = bins.into_iter().map(|b| b.items).collect();
    // A few rows per batch: packed rows are up to pack_len tokens each.
    for chunk in rows.chunks(8) {
        s.packed_rows += chunk.len() as u64;
        shards.write(&packed_batch(chunk)?)?;
    }
    Ok(())
}

fn dropped_batch(rows: &[Dropped]) -> Result<RecordBatch, TokenizeError> {
    let (mut id, mut reason, mut detail) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    for (i, r, d) in rows {
        id.append_value(i);
        reason.append_value(r);
        detail.append_value(d);
    }
    RecordBatch::try_new(
        dropped_schema(),
        vec![
            Arc::new(id.finish()),
            Arc::new(reason.finish()),
            Arc::new(detail.finish()),
        ],
    )
    .map_err(|e| TokenizeError::Internal(e.to_string()))
}
