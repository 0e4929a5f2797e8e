//! The statistics a data engineer checks before training, computed with polars' lazy engine over
//! the Parquet outputs (only the columns a statistic needs are read). The report and the dataset
//! card are both drawn from one [`Stats`].

use std::path::PathBuf;

use polars::prelude::*;
use polars_core::query_result::QueryResult;
use serde::Serialize;

use crate::ReportError;
use crate::layout::Layout;

/// Bins in each length histogram.
pub const HISTOGRAM_BINS: u64 = 24;

/// The name counts give a null value (a trajectory with no stage, no source).
pub const NO_VALUE: &str = "(none)";

/// Everything the report shows, computed once.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub trajectories: u64,
    pub filtered: u64,
    pub rejected: u64,
    /// Rows the run read, from its manifest (kept + filtered + rejected).
    pub read: Option<u64>,
    /// Per-trajectory length measures (messages, assistant turns, tool calls, bytes, patch lines).
    pub lengths: Vec<Distribution>,
    /// Tool calls per tool name, over every assistant message.
    pub tool_calls: Vec<Count>,
    /// Trajectories that call each tool at least once.
    pub tool_trajectories: Vec<Count>,
    pub repos: Vec<Count>,
    pub distinct_repos: u64,
    pub sources: Vec<SourceCount>,
    pub licenses: Vec<Count>,
    pub stages: Vec<Count>,
    /// Rows each pipeline step removed, in step order (from the manifest).
    pub funnel: Vec<FunnelStep>,
    /// Reasons recorded on filtered rows (a row can carry several).
    pub filter_reasons: Vec<Count>,
    pub reject_kinds: Vec<Count>,
    pub clusters: Option<ClusterStats>,
    pub packing: Option<PackingStats>,
}

/// Summary and histogram of one numeric measure.
#[derive(Debug, Clone, Serialize)]
pub struct Distribution {
    pub name: String,
    pub count: u64,
    pub mean: f64,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub sum: f64,
    pub bins: Vec<Bin>,
}

/// Values in `[lo, hi)`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Bin {
    pub lo: f64,
    pub hi: f64,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Count {
    pub name: String,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SourceCount {
    pub source_dataset: String,
    pub source_format: String,
    pub rows: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FunnelStep {
    pub step: String,
    pub op: String,
    pub rows_in: u64,
    pub rows_out: u64,
    pub removed: u64,
}

/// Near-duplicate clusters over kept and filtered rows.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStats {
    pub clusters: u64,
    /// Clusters with more than one member.
    pub multi_member: u64,
    pub largest: u64,
    /// (cluster size, number of clusters of that size), by size.
    pub sizes: Vec<(u64, u64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PackingStats {
    pub rows: u64,
    pub samples: u64,
    pub tokens: u64,
    pub supervised: u64,
    pub supervised_fraction: f64,
    pub pack_len: Option<u64>,
    /// tokens / (rows × pack_len).
    pub fill: Option<f64>,
    /// Tokens per packed sample.
    pub sample_tokens: Distribution,
}

/// Where a polars query failed, for the error message.
struct Ctx<'a> {
    files: &'a [PathBuf],
}

impl Ctx<'_> {
    fn err(&self, e: PolarsError) -> ReportError {
        let path = self.files.first().cloned().unwrap_or_default();
        ReportError::data(
            path,
            format!("{e} (in one of {} file(s))", self.files.len()),
        )
    }

    fn scan(&self) -> Result<LazyFrame, ReportError> {
        let scans = self
            .files
            .iter()
            .map(|p| {
                LazyFrame::scan_parquet(PlRefPath::try_from_path(p)?, ScanArgsParquet::default())
            })
            .collect::<PolarsResult<Vec<_>>>()
            .map_err(|e| self.err(e))?;
        concat(scans, UnionArgs::default()).map_err(|e| self.err(e))
    }

    /// Runs on polars' streaming engine: scans proceed in morsels, so memory follows the
    /// aggregates, not the corpus (a 300k-row corpus holds ~30 GB of messages).
    fn collect(&self, lf: LazyFrame) -> Result<DataFrame, ReportError> {
        match lf
            .collect_with_engine(Engine::Streaming)
            .map_err(|e| self.err(e))?
        {
            QueryResult::Single(df) => Ok(df),
            QueryResult::Multiple(_) => Err(ReportError::Internal(
                "a statistics query returned several frames".into(),
            )),
        }
    }

    fn has_column(&self, lf: &mut LazyFrame, name: &str) -> Result<bool, ReportError> {
        Ok(lf.collect_schema().map_err(|e| self.err(e))?.contains(name))
    }
}

/// Threads of polars' pool, which computes the statistics (`POLARS_MAX_THREADS`, which
/// `--threads` sets; all cores by default).
pub fn worker_threads() -> usize {
    polars_core::runtime::THREAD_POOL.current_num_threads()
}

impl Stats {
    /// Computes every statistic over what [`Layout::discover`] found.
    pub fn compute(layout: &Layout) -> Result<Stats, ReportError> {
        let kept = Ctx {
            files: &layout.trajectories,
        };
        let filtered = Ctx {
            files: &layout.filtered,
        };
        let rejects = Ctx {
            files: &layout.rejects,
        };
        let mut stats = Stats {
            trajectories: row_count(&kept)?,
            filtered: row_count(&filtered)?,
            rejected: row_count(&rejects)?,
            read: layout
                .manifest
                .as_ref()
                .and_then(|m| m.pointer("/ledger/read")?.as_u64()),
            lengths: Vec::new(),
            tool_calls: Vec::new(),
            tool_trajectories: Vec::new(),
            repos: Vec::new(),
            distinct_repos: 0,
            sources: Vec::new(),
            licenses: Vec::new(),
            stages: Vec::new(),
            funnel: funnel(layout),
            filter_reasons: Vec::new(),
            reject_kinds: Vec::new(),
            clusters: None,
            packing: None,
        };
        if !layout.trajectories.is_empty() {
            trajectory_stats(&kept, &mut stats)?;
            stats.clusters = cluster_stats(&kept, &filtered)?;
        }
        if !layout.filtered.is_empty() {
            let reasons = col("reasons").explode(keep_empty());
            stats.filter_reasons = counts(&filtered, reasons, usize::MAX)?;
        }
        if !layout.rejects.is_empty() {
            stats.reject_kinds = counts(&rejects, col("error_kind"), usize::MAX)?;
        }
        if !layout.packed.is_empty() {
            stats.packing = Some(packing_stats(layout)?);
        }
        Ok(stats)
    }

    /// A length measure by name (`messages`, `tokens per sample`, …).
    pub fn length(&self, name: &str) -> Option<&Distribution> {
        self.lengths.iter().find(|d| d.name == name)
    }
}

/// The per-trajectory measures: (name in the report, column).
pub const LENGTH_MEASURES: [(&str, &str); 6] = [
    ("messages", "num_messages"),
    ("assistant turns", "num_assistant_turns"),
    ("tool calls", "num_tool_calls"),
    ("content bytes", "content_bytes"),
    ("patch lines added", "patch_added_lines"),
    ("patch lines removed", "patch_removed_lines"),
];

fn trajectory_stats(kept: &Ctx, stats: &mut Stats) -> Result<(), ReportError> {
    for (name, column) in LENGTH_MEASURES {
        stats.lengths.push(distribution(kept, name, col(column))?);
    }
    let call_names = col("messages")
        .explode(keep_empty())
        .struct_()
        .field_by_name("tool_calls")
        .explode(keep_empty())
        .struct_()
        .field_by_name("name");
    stats.tool_calls = counts(kept, call_names, usize::MAX)?;
    stats.tool_trajectories = counts(kept, col("tool_names").explode(keep_empty()), usize::MAX)?;
    stats.repos = counts(kept, col("repo"), 25)?;
    let distinct = kept.collect(kept.scan()?.select([col("repo").n_unique().alias("n")]))?;
    stats.distinct_repos = u64_column(&distinct, "n", kept)?
        .first()
        .copied()
        .unwrap_or(0);
    stats.sources = source_counts(kept)?;
    stats.licenses = counts(kept, col("license"), usize::MAX)?;
    stats.stages = counts(kept, col("stage"), usize::MAX)?;
    Ok(())
}

fn keep_empty() -> ExplodeOptions {
    ExplodeOptions {
        empty_as_null: false,
        keep_nulls: false,
    }
}

fn row_count(ctx: &Ctx) -> Result<u64, ReportError> {
    if ctx.files.is_empty() {
        return Ok(0);
    }
    let df = ctx.collect(ctx.scan()?.select([len().cast(DataType::Int64).alias("n")]))?;
    Ok(u64_column(&df, "n", ctx)?.first().copied().unwrap_or(0))
}

/// Summary statistics and an integer-aligned histogram of `expr` (nulls left out).
fn distribution(ctx: &Ctx, name: &str, expr: Expr) -> Result<Distribution, ReportError> {
    let values = ctx
        .scan()?
        .select([expr.cast(DataType::Float64).alias("x")])
        .filter(col("x").is_not_null());
    let quantile = |q: f64| col("x").quantile(lit(q), QuantileMethod::Nearest);
    let summary = ctx.collect(values.clone().select([
        len().cast(DataType::Float64).alias("count"),
        col("x").mean().alias("mean"),
        col("x").min().alias("min"),
        quantile(0.5).alias("p50"),
        quantile(0.9).alias("p90"),
        quantile(0.99).alias("p99"),
        col("x").max().alias("max"),
        col("x").sum().alias("sum"),
    ]))?;
    let get = |c: &str| -> Result<f64, ReportError> {
        Ok(f64_column(&summary, c, ctx)?
            .first()
            .copied()
            .flatten()
            .unwrap_or(0.0))
    };
    let (min, max, count) = (get("min")?, get("max")?, get("count")? as u64);
    let width = ((max - min + 1.0) / HISTOGRAM_BINS as f64).ceil().max(1.0);
    let bins = if count == 0 {
        Vec::new()
    } else {
        histogram(ctx, values, min, width)?
    };
    Ok(Distribution {
        name: name.to_string(),
        count,
        mean: get("mean")?,
        min,
        p50: get("p50")?,
        p90: get("p90")?,
        p99: get("p99")?,
        max,
        sum: get("sum")?,
        bins,
    })
}

/// Counts per bin `[min + i·width, min + (i+1)·width)`, every bin up to the last non-empty one.
fn histogram(ctx: &Ctx, values: LazyFrame, min: f64, width: f64) -> Result<Vec<Bin>, ReportError> {
    let bin = ((col("x") - lit(min)) / lit(width))
        .floor()
        .cast(DataType::UInt64);
    let df = ctx.collect(
        values
            .select([bin.alias("bin")])
            .group_by([col("bin")])
            .agg([len().alias("n")])
            .sort(["bin"], SortMultipleOptions::default()),
    )?;
    let index = u64_column(&df, "bin", ctx)?;
    let counts = u64_column(&df, "n", ctx)?;
    let last = index.last().copied().unwrap_or(0) as usize;
    let mut dense = vec![0u64; last + 1];
    for (i, n) in index.iter().zip(counts) {
        dense[*i as usize] = n;
    }
    Ok(dense
        .into_iter()
        .enumerate()
        .map(|(i, count)| Bin {
            lo: min + i as f64 * width,
            hi: min + (i + 1) as f64 * width,
            count,
        })
        .collect())
}

/// Rows per value of `expr` (null as [`NO_VALUE`]), most frequent first, ties by name; at most
/// `top`.
fn counts(ctx: &Ctx, expr: Expr, top: usize) -> Result<Vec<Count>, ReportError> {
    let df = ctx.collect(
        ctx.scan()?
            .select([expr
                .cast(DataType::String)
                .fill_null(lit(NO_VALUE))
                .alias("name")])
            .group_by([col("name")])
            .agg([len().alias("n")])
            .sort_by_exprs(
                [col("n"), col("name")],
                SortMultipleOptions::default().with_order_descending_multi([true, false]),
            )
            .limit(top.min(u32::MAX as usize) as IdxSize),
    )?;
    let names = str_column(&df, "name", ctx)?;
    let counts = u64_column(&df, "n", ctx)?;
    Ok(names
        .into_iter()
        .zip(counts)
        .map(|(name, count)| Count { name, count })
        .collect())
}

fn source_counts(ctx: &Ctx) -> Result<Vec<SourceCount>, ReportError> {
    let none = |c: &str| col(c).cast(DataType::String).fill_null(lit(NO_VALUE));
    let df = ctx.collect(
        ctx.scan()?
            .select([none("source_dataset"), none("source_format")])
            .group_by([col("source_dataset"), col("source_format")])
            .agg([len().alias("n")])
            .sort_by_exprs(
                [col("n"), col("source_dataset"), col("source_format")],
                SortMultipleOptions::default().with_order_descending_multi([true, false, false]),
            ),
    )?;
    let datasets = str_column(&df, "source_dataset", ctx)?;
    let formats = str_column(&df, "source_format", ctx)?;
    let rows = u64_column(&df, "n", ctx)?;
    Ok(datasets
        .into_iter()
        .zip(formats)
        .zip(rows)
        .map(|((source_dataset, source_format), rows)| SourceCount {
            source_dataset,
            source_format,
            rows,
        })
        .collect())
}

fn funnel(layout: &Layout) -> Vec<FunnelStep> {
    let Some(steps) = layout
        .manifest
        .as_ref()
        .and_then(|m| m.get("steps")?.as_array().cloned())
    else {
        return Vec::new();
    };
    steps
        .iter()
        .filter_map(|s| {
            let rows_in = s.get("rows_in")?.as_u64()?;
            let rows_out = s.get("rows_out")?.as_u64()?;
            Some(FunnelStep {
                step: s.get("name")?.as_str()?.to_string(),
                op: s.get("op")?.as_str()?.to_string(),
                rows_in,
                rows_out,
                removed: rows_in.saturating_sub(rows_out),
            })
        })
        .collect()
}

/// Cluster sizes over kept and filtered rows: every row that reached `near_dedupe` names its
/// cluster's representative, so a cluster's size is how many rows name it.
fn cluster_stats(kept: &Ctx, filtered: &Ctx) -> Result<Option<ClusterStats>, ReportError> {
    let mut frames = Vec::new();
    for ctx in [kept, filtered] {
        if ctx.files.is_empty() {
            continue;
        }
        let mut lf = ctx.scan()?;
        if ctx.has_column(&mut lf, "near_dedupe_cluster")? {
            frames.push(lf.select([col("near_dedupe_cluster").cast(DataType::String)]));
        }
    }
    if frames.is_empty() {
        return Ok(None);
    }
    let all = concat(frames, UnionArgs::default()).map_err(|e| kept.err(e))?;
    let df = kept.collect(
        all.filter(col("near_dedupe_cluster").is_not_null())
            .group_by([col("near_dedupe_cluster")])
            .agg([len().alias("size")])
            .group_by([col("size")])
            .agg([len().alias("clusters")])
            .sort(["size"], SortMultipleOptions::default()),
    )?;
    let sizes: Vec<(u64, u64)> = u64_column(&df, "size", kept)?
        .into_iter()
        .zip(u64_column(&df, "clusters", kept)?)
        .collect();
    if sizes.is_empty() {
        return Ok(None);
    }
    Ok(Some(ClusterStats {
        clusters: sizes.iter().map(|(_, n)| n).sum(),
        multi_member: sizes.iter().filter(|(s, _)| *s > 1).map(|(_, n)| n).sum(),
        largest: sizes.last().map(|(s, _)| *s).unwrap_or(0),
        sizes,
    }))
}

fn packing_stats(layout: &Layout) -> Result<PackingStats, ReportError> {
    let packed = Ctx {
        files: &layout.packed,
    };
    let sum = |c: &str| col(c).cast(DataType::UInt64).sum().alias(c);
    let df = packed.collect(packed.scan()?.select([
        len().cast(DataType::UInt64).alias("rows"),
        sum("num_tokens"),
        sum("num_supervised"),
        sum("num_samples"),
    ]))?;
    let get = |c: &str| -> Result<u64, ReportError> {
        Ok(u64_column(&df, c, &packed)?.first().copied().unwrap_or(0))
    };
    let (rows, tokens, supervised) = (get("rows")?, get("num_tokens")?, get("num_supervised")?);
    let pack_len = layout.pack_len();
    Ok(PackingStats {
        rows,
        samples: get("num_samples")?,
        tokens,
        supervised,
        supervised_fraction: ratio(supervised, tokens),
        pack_len,
        fill: pack_len.map(|len| ratio(tokens, rows * len)),
        sample_tokens: distribution(
            &packed,
            "tokens per sample",
            col("seq_lens").explode(keep_empty()),
        )?,
    })
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn series<'a>(df: &'a DataFrame, name: &str, ctx: &Ctx) -> Result<&'a Series, ReportError> {
    Ok(df
        .column(name)
        .map_err(|e| ctx.err(e))?
        .as_materialized_series())
}

fn u64_column(df: &DataFrame, name: &str, ctx: &Ctx) -> Result<Vec<u64>, ReportError> {
    // Through Int64: polars 0.55 routes an eager UInt32 → UInt64 cast via UInt128, a dtype this
    // build leaves out. Counts and sums stay far below 2^63.
    let cast = series(df, name, ctx)?
        .cast(&DataType::Int64)
        .map_err(|e| ctx.err(e))?;
    let values = cast.i64().map_err(|e| ctx.err(e))?;
    Ok(values
        .iter()
        .map(|v| v.unwrap_or(0).max(0) as u64)
        .collect())
}

fn f64_column(df: &DataFrame, name: &str, ctx: &Ctx) -> Result<Vec<Option<f64>>, ReportError> {
    let cast = series(df, name, ctx)?
        .cast(&DataType::Float64)
        .map_err(|e| ctx.err(e))?;
    Ok(cast.f64().map_err(|e| ctx.err(e))?.iter().collect())
}

fn str_column(df: &DataFrame, name: &str, ctx: &Ctx) -> Result<Vec<String>, ReportError> {
    let s = series(df, name, ctx)?;
    let values = s.str().map_err(|e| ctx.err(e))?;
    Ok(values
        .iter()
        .map(|v| v.unwrap_or(NO_VALUE).to_string())
        .collect())
}
