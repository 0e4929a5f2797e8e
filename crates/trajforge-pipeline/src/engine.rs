//! The DataFusion side of a run: the session (threads, memory limit, spill folder), the
//! environment operators plan against, and the two plans of a run.
//!
//! The *decide* plan scans the canonical rows once, evaluates every step's row expressions in
//! one projection down to a narrow table, applies the group steps' window functions in YAML
//! order and ends with `_row`, one reason column per step, the reason lists and the columns
//! operators publish. The *write* plan joins those decisions back to the rows by `_row`
//! (decisions are the small build side) and sorts for the output layout.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{Array, ArrayRef, AsArray, ListBuilder, StringBuilder};
use arrow::compute::kernels::aggregate as arrays;
use arrow::datatypes::{DataType, Field, UInt64Type};
use datafusion::common::config::SpillCompression;
use datafusion::common::{DFSchema, JoinType};
use datafusion::dataframe::DataFrame;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::SortExpr;
use datafusion::prelude::{Expr, SessionConfig, SessionContext, col, lit};
use trajforge_ops::operator::BatchUdf;
use trajforge_ops::{Env, OpsError};

use crate::PipelineError;
use crate::source::{BATCH_ROWS, ROW, TrajectorySource, WRITE_BATCH_ROWS};
use crate::spec::Step;

/// Canonical columns small enough to carry through the decision layer (keep policies and
/// `where` predicates in group steps may use them).
pub const NARROW: [&str; 18] = [
    "trajectory_id",
    "instance_id",
    "repo",
    "source_dataset",
    "source_format",
    "license",
    "stage",
    "scaffold",
    "resolved",
    "exit_status",
    "num_messages",
    "num_assistant_turns",
    "num_tool_calls",
    "content_bytes",
    "patch_added_lines",
    "patch_removed_lines",
    "instance_key",
    "content_hash",
];

/// Reason codes and details, one list each per row.
pub const REASONS: &str = "reasons";
pub const REASON_DETAILS: &str = "reason_details";

/// The default memory limit: 2 GiB, or 60% of physical memory (Linux) when that is less. A
/// fixed budget keeps a run's peak memory flat whatever the input size (sorts spill to
/// `OUT/.work/spill`); a larger one only buys fewer spills.
pub fn default_memory_limit() -> usize {
    let total_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<usize>().ok())
        })
        .unwrap_or(8 << 20);
    (total_kib * 1024 / 10 * 6).min(DEFAULT_MEMORY_LIMIT)
}

/// See [`default_memory_limit`].
pub const DEFAULT_MEMORY_LIMIT: usize = 2 << 30;

/// A DataFusion session for a run.
pub fn session(
    threads: usize,
    memory_limit: usize,
    spill_dir: &Path,
) -> Result<SessionContext, PipelineError> {
    let threads = threads.max(1);
    std::fs::create_dir_all(spill_dir).map_err(|e| PipelineError::io(spill_dir, e))?;
    let mut config = SessionConfig::new()
        .with_target_partitions(threads)
        .with_batch_size(BATCH_ROWS);
    // Each sorting partition holds this much back for its merge; keep it a small share of the
    // limit so small limits spill instead of failing.
    let share = memory_limit / (8 * threads);
    let execution = &mut config.options_mut().execution;
    execution.sort_spill_reservation_bytes = execution.sort_spill_reservation_bytes.min(share);
    // The write sort spills whole trajectories, text that zstd shrinks ~10×: uncompressed, a
    // 300k-row corpus spills more than its outputs' disk (7.7 GB spilled for 30k rows).
    execution.spill_compression = SpillCompression::Zstd;
    // Decisions cover every row, so a join's dynamic filter never prunes; and where the scan
    // cannot take it, DataFusion wraps it in a FilterExec that coalesces to 8,192 rows
    // (~2 GB of trajectories) regardless of the session's batch size, which no sort can
    // reserve under a modest memory limit.
    config
        .options_mut()
        .optimizer
        .enable_join_dynamic_filter_pushdown = false;
    let runtime = RuntimeEnvBuilder::new()
        // A fair pool: with a greedy one, one partition's sort can take the whole pool and
        // leave the other unable to buffer a single batch (it fails instead of spilling).
        .with_memory_pool(Arc::new(TrackConsumersPool::new(
            FairSpillPool::new(memory_limit),
            NonZeroUsize::new(5).expect("non-zero"),
        )))
        .with_disk_manager_builder(
            DiskManagerBuilder::default()
                .with_mode(DiskManagerMode::Directories(vec![spill_dir.to_path_buf()]))
                .with_max_spill_merge_fan_in(merge_fan_in(memory_limit, threads)),
        )
        .build_arc()?;
    Ok(SessionContext::new_with_config_rt(config, runtime))
}

/// How many spill files one sorting partition merges at once. DataFusion's default (all that
/// fit) lets the first partition to merge take the whole pool and starve the others; a few
/// more merge passes are cheaper than a failed run. Budget ~128 MiB per stream per thread.
fn merge_fan_in(memory_limit: usize, threads: usize) -> usize {
    (memory_limit / (threads * (128 << 20))).clamp(2, 16)
}

/// The session of the write stage: the same runtime (memory pool, spill folder), smaller
/// batches (see [`WRITE_BATCH_ROWS`]).
pub fn write_session(ctx: &SessionContext) -> SessionContext {
    let config = ctx.copied_config().with_batch_size(WRITE_BATCH_ROWS);
    SessionContext::new_with_config_rt(config, ctx.runtime_env())
}

/// Canonical Parquet files under `paths` (files or folders), sorted.
pub fn parquet_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, PipelineError> {
    let inputs: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let files = trajforge_io::source::expand_inputs(&inputs)?;
    Ok(files
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "parquet"))
        .collect())
}

/// What operators plan against.
pub struct PlanEnv {
    pub ctx: SessionContext,
    schema: DFSchema,
}

impl PlanEnv {
    pub fn new(ctx: SessionContext) -> Result<PlanEnv, PipelineError> {
        let schema = DFSchema::try_from(crate::source::source_schema().as_ref().clone())?;
        Ok(PlanEnv { ctx, schema })
    }
}

impl Env for PlanEnv {
    fn parse_expr(&self, sql: &str) -> Result<Expr, OpsError> {
        Ok(self.ctx.parse_sql_expr(sql, &self.schema)?)
    }

    fn reference(&self, paths: &[PathBuf]) -> Result<DataFrame, OpsError> {
        let files =
            parquet_files(paths).map_err(|e| OpsError::Config(format!("reference: {e}")))?;
        if files.is_empty() {
            return Err(OpsError::Config(format!(
                "reference: no Parquet files under {}",
                paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let source = TrajectorySource::open(&files)
            .map_err(|e| OpsError::Config(format!("reference: {e}")))?;
        Ok(self.ctx.read_table(Arc::new(source))?)
    }
}

/// `_r00 IS NULL AND …` over the steps before `index`: rows no earlier step dropped.
pub fn alive_before(steps: &[Step], index: usize) -> Expr {
    steps[..index]
        .iter()
        .map(|s| col(s.ctx.reason_col()).is_null())
        .reduce(Expr::and)
        .unwrap_or(lit(true))
}

/// Builds the reason lists from the per-step reason columns.
fn collect_reasons(steps: &[Step], details: bool) -> Expr {
    let names: Vec<String> = steps.iter().map(|s| s.ctx.name.clone()).collect();
    let args: Vec<Expr> = steps.iter().map(|s| col(s.ctx.reason_col())).collect();
    let name = if details {
        "tf_reason_details"
    } else {
        "tf_reasons"
    };
    let item = Arc::new(Field::new("item", DataType::Utf8, true));
    BatchUdf::call(
        name.into(),
        DataType::List(item),
        args,
        move |arrays: &[ArrayRef]| {
            let n = arrays.first().map_or(0, |a| a.len());
            let cols: Vec<_> = arrays.iter().map(|a| a.as_string::<i32>()).collect();
            let mut b = ListBuilder::new(StringBuilder::new());
            for row in 0..n {
                for (k, c) in cols.iter().enumerate() {
                    if !c.is_null(row) {
                        if details {
                            b.values().append_value(c.value(row));
                        } else {
                            b.values().append_value(&names[k]);
                        }
                    }
                }
                b.append(true);
            }
            Ok(Arc::new(b.finish()))
        },
    )
}

/// Rows and trajectory bytes (`content_bytes`) each step has judged so far, for progress bars.
#[derive(Debug, Default)]
pub struct StepMeters {
    steps: Vec<(AtomicU64, AtomicU64)>,
}

impl StepMeters {
    pub fn new(steps: usize) -> Arc<StepMeters> {
        Arc::new(StepMeters {
            steps: (0..steps).map(|_| Default::default()).collect(),
        })
    }

    /// `(rows, bytes)` per step.
    pub fn read(&self) -> Vec<(u64, u64)> {
        self.steps
            .iter()
            .map(|(r, b)| (r.load(Ordering::Relaxed), b.load(Ordering::Relaxed)))
            .collect()
    }

    /// Passes step `index`'s reason column through unchanged, counting the rows (and their
    /// `content_bytes`) as they leave the step.
    fn meter(self: &Arc<Self>, index: usize, reason: Expr) -> Expr {
        let meters = Arc::clone(self);
        BatchUdf::call(
            format!("tf_meter_{index:02}"),
            DataType::Utf8,
            vec![reason, col("content_bytes")],
            move |arrays: &[ArrayRef]| {
                let bytes = arrays[1].as_primitive::<UInt64Type>();
                if let Some((rows, total)) = meters.steps.get(index) {
                    rows.fetch_add(arrays[0].len() as u64, Ordering::Relaxed);
                    total.fetch_add(arrays::sum(bytes).unwrap_or(0), Ordering::Relaxed);
                }
                Ok(Arc::clone(&arrays[0]))
            },
        )
    }
}

/// The decide plan over `source` (a scan of canonical rows); `meters` counts each step's rows.
pub fn decide_plan(
    steps: &[Step],
    source: DataFrame,
    env: &PlanEnv,
    meters: &Arc<StepMeters>,
) -> Result<DataFrame, PipelineError> {
    let mut exprs: Vec<Expr> = std::iter::once(ROW).chain(NARROW).map(col).collect();
    for step in steps {
        for (name, expr) in step.operator.row_columns(&step.ctx, env)? {
            exprs.push(expr.alias(name));
        }
    }
    let mut df = source.select(exprs)?;
    for (k, step) in steps.iter().enumerate() {
        df = step
            .operator
            .decide(df, &step.ctx, alive_before(steps, k), env)?;
        let reason = step.ctx.reason_col();
        df = df.with_column(&reason, meters.meter(k, col(reason.as_str())))?;
    }
    let mut out: Vec<Expr> = vec![col(ROW)];
    for step in steps {
        out.push(col(step.ctx.reason_col()));
    }
    for (name, column) in output_columns(steps) {
        out.push(col(column).alias(name));
    }
    out.push(collect_reasons(steps, false).alias(REASONS));
    out.push(collect_reasons(steps, true).alias(REASON_DETAILS));
    Ok(df.select(out)?.sort(vec![col(ROW).sort(true, false)])?)
}

/// `(output name, narrow column)` of every column operators publish.
pub fn output_columns(steps: &[Step]) -> Vec<(String, String)> {
    steps
        .iter()
        .flat_map(|s| s.operator.output_columns(&s.ctx))
        .collect()
}

/// Sort order of the outputs: the `write` step's columns, then `_row`.
pub fn output_order(sort_by: &[String]) -> Vec<SortExpr> {
    sort_by
        .iter()
        .map(|c| col(c.as_str()).sort(true, false))
        .chain(std::iter::once(col(ROW).sort(true, false)))
        .collect()
}

/// The write plan: rows joined to their decisions, ordered for output. Columns: canonical,
/// published columns, `reasons`, `reason_details`, `_row`.
pub fn write_plan(
    steps: &[Step],
    source: DataFrame,
    decisions: DataFrame,
    sort_by: &[String],
) -> Result<DataFrame, PipelineError> {
    let published: Vec<String> = output_columns(steps).into_iter().map(|(n, _)| n).collect();
    let mut keep: Vec<Expr> = vec![col(ROW).alias("_drow")];
    keep.extend(published.iter().map(|n| col(n.as_str())));
    keep.push(col(REASONS));
    keep.push(col(REASON_DETAILS));
    let decisions = decisions.select(keep)?;
    let joined = decisions.join(source, JoinType::Inner, &["_drow"], &[ROW], None)?;
    let mut out: Vec<Expr> = trajforge_schema::arrow_schema()
        .fields()
        .iter()
        .map(|f| col(f.name().as_str()))
        .collect();
    out.extend(published.iter().map(|n| col(n.as_str())));
    out.push(col(REASONS));
    out.push(col(REASON_DETAILS));
    out.push(col(ROW));
    Ok(joined.select(out)?.sort(output_order(sort_by))?)
}

/// The decide and write plans (logical and physical) for `--explain`, planned over the
/// pipeline's canonical inputs (raw inputs are ingested only when the pipeline runs).
pub fn explain_plans(
    pipeline: &crate::Pipeline,
    threads: usize,
) -> Result<Vec<(String, String)>, PipelineError> {
    use datafusion::physical_plan::displayable;
    let files: Vec<PathBuf> = trajforge_io::source::expand_inputs(&pipeline.input)
        .unwrap_or_default()
        .into_iter()
        .filter(|f| crate::source::inspect_file(f).is_ok())
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| PipelineError::Internal(format!("cannot start the runtime: {e}")))?;
    rt.block_on(async {
        let spill = std::env::temp_dir();
        let ctx = session(threads, default_memory_limit(), &spill)?;
        let source = Arc::new(TrajectorySource::open(&files)?);
        let env = PlanEnv::new(ctx.clone())?;
        let meters = StepMeters::new(pipeline.steps.len());
        let decide = decide_plan(
            &pipeline.steps,
            ctx.read_table(source.clone())?,
            &env,
            &meters,
        )?;
        let decisions_schema = decide.schema().as_arrow().clone();
        let empty =
            datafusion::datasource::MemTable::try_new(Arc::new(decisions_schema), vec![vec![]])?;
        let write = write_plan(
            &pipeline.steps,
            ctx.read_table(source)?,
            ctx.read_table(Arc::new(empty))?,
            &pipeline.write.sort_by,
        )?;
        let mut out = Vec::new();
        for (name, df) in [("decide", decide), ("write", write)] {
            let logical = df.clone().into_optimized_plan()?;
            let physical = df.create_physical_plan().await?;
            out.push((
                name.to_string(),
                format!(
                    "{}\n\n{}",
                    logical.display_indent(),
                    displayable(physical.as_ref()).indent(true)
                ),
            ));
        }
        Ok(out)
    })
}
