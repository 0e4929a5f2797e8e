//! Canonical Parquet files as a DataFusion table with a stable row ordinal.
//!
//! Every row gets `_row`, its position in the dataset (files in sorted order, row groups in
//! file order). Decisions are keyed by it, ties in keep policies are broken by it, and outputs
//! are ordered by it, so results never depend on how many threads read the files. The scan
//! splits row groups into contiguous ranges, one per partition, reads them on blocking threads
//! with the projection pushed into the Parquet reader, and declares each partition sorted by
//! `_row` so DataFusion can merge instead of sort.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{ArrayRef, RecordBatch, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::{EquivalenceProperties, LexOrdering, PhysicalSortExpr};
use datafusion::physical_plan::execution_plan::{
    Boundedness, ChildrenPropertiesMode, EmissionType, ReplaceChildrenOptions,
};
use datafusion::physical_plan::expressions::Column;
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReaderBuilder, RowSelection, RowSelector};
use parquet::file::metadata::ParquetMetaData;

use crate::PipelineError;

/// The ordinal column every scan adds.
pub const ROW: &str = "_row";

/// Decoded bytes a scan batch aims at (see `rows_per_batch`).
pub const BATCH_TARGET_BYTES: u64 = 16 << 20;

/// Rows per batch in the decide stage: trajectories are ~100 KB each, so batches stay near
/// 25–60 MB in memory. The scan reads whatever batch size its session asks for.
pub const BATCH_ROWS: usize = 256;

/// Rows per batch in the write stage: every sorted batch is held (twice, by the sort's
/// reckoning) per spill file being merged, so wide rows travel in small batches.
pub const WRITE_BATCH_ROWS: usize = 64;

/// One Parquet file of the dataset.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    /// Rows and compressed bytes per row group.
    pub row_groups: Vec<(u64, u64)>,
    /// `_row` of the file's first row.
    pub first_row: u64,
}

/// Rows and bytes a scan has produced (for progress bars).
#[derive(Debug, Default)]
pub struct ScanCounter {
    pub rows: AtomicU64,
    pub bytes: AtomicU64,
}

/// Canonical Parquet files as a table.
#[derive(Debug, Clone)]
pub struct TrajectorySource {
    files: Arc<Vec<SourceFile>>,
    schema: SchemaRef,
    counter: Arc<ScanCounter>,
}

/// The canonical schema plus `_row`.
pub fn source_schema() -> SchemaRef {
    let canonical = trajforge_schema::arrow_schema();
    let mut fields: Vec<Arc<Field>> = canonical.fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(ROW, DataType::UInt64, false)));
    Arc::new(Schema::new(fields))
}

/// Checks that a file holds canonical rows; returns its row groups.
pub fn inspect_file(path: &Path) -> Result<Vec<(u64, u64)>, PipelineError> {
    let file = std::fs::File::open(path).map_err(|e| PipelineError::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| {
        PipelineError::Data(format!(
            "{}: not a readable Parquet file: {e}",
            path.display()
        ))
    })?;
    let file_schema = builder.schema();
    for field in trajforge_schema::arrow_schema().fields() {
        match file_schema.field_with_name(field.name()) {
            Ok(f) if f.data_type().equals_datatype(field.data_type()) => {}
            Ok(f) => {
                return Err(PipelineError::Data(format!(
                    "{}: column {} is {}, the canonical schema has {}",
                    path.display(),
                    field.name(),
                    f.data_type(),
                    field.data_type()
                )));
            }
            Err(_) => {
                return Err(PipelineError::Data(format!(
                    "{}: no column {}; is this canonical trajforge Parquet?",
                    path.display(),
                    field.name()
                )));
            }
        }
    }
    Ok(builder
        .metadata()
        .row_groups()
        .iter()
        .map(|rg| (rg.num_rows() as u64, rg.compressed_size() as u64))
        .collect())
}

impl TrajectorySource {
    /// Opens canonical Parquet files (in the given order) as one table.
    pub fn open(paths: &[PathBuf]) -> Result<TrajectorySource, PipelineError> {
        let mut files = Vec::with_capacity(paths.len());
        let mut next = 0;
        for path in paths {
            let row_groups = inspect_file(path)?;
            let rows: u64 = row_groups.iter().map(|r| r.0).sum();
            files.push(SourceFile {
                path: path.clone(),
                row_groups,
                first_row: next,
            });
            next += rows;
        }
        Ok(TrajectorySource {
            files: Arc::new(files),
            schema: source_schema(),
            counter: Arc::new(ScanCounter::default()),
        })
    }

    pub fn total_rows(&self) -> u64 {
        self.files
            .iter()
            .map(|f| f.row_groups.iter().map(|r| r.0).sum::<u64>())
            .sum()
    }

    pub fn total_bytes(&self) -> u64 {
        self.files
            .iter()
            .map(|f| f.row_groups.iter().map(|r| r.1).sum::<u64>())
            .sum()
    }

    pub fn counter(&self) -> Arc<ScanCounter> {
        Arc::clone(&self.counter)
    }
}

#[async_trait]
impl TableProvider for TrajectorySource {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let projection: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let partitions = state.config().target_partitions().max(1);
        Ok(Arc::new(TrajectoryScan::new(self, projection, partitions)?))
    }
}

/// A run of rows inside one row group: rows `offset..offset + rows` of the group, whose first
/// row has `_row` = `first_row`. A partition's pieces are contiguous in `_row`, so the pieces
/// of one file read as one stream.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Chunk {
    file: usize,
    row_group: usize,
    /// Rows in the whole row group.
    group_rows: u64,
    offset: u64,
    rows: u64,
    first_row: u64,
    /// The piece's share of the row group's compressed bytes (for progress).
    bytes: u64,
}

/// Cuts the row groups into `parts` contiguous ranges of (almost) equal rows, splitting row
/// groups where needed: one huge row group must not leave all but one thread idle.
fn split(groups: &[Chunk], parts: usize) -> Vec<Vec<Chunk>> {
    let total: u64 = groups.iter().map(|c| c.rows).sum();
    let parts = (parts.max(1) as u64).min(total.max(1));
    let mut out: Vec<Vec<Chunk>> = (0..parts).map(|_| Vec::new()).collect();
    let mut start = 0; // global row index of the current group's first row
    for g in groups {
        let mut done = 0;
        while done < g.rows {
            let at = start + done;
            let part = (at * parts / total.max(1)) as usize;
            let part_end = ((part as u64 + 1) * total).div_ceil(parts);
            let take = (part_end - at).min(g.rows - done);
            out[part].push(Chunk {
                offset: g.offset + done,
                rows: take,
                first_row: g.first_row + done,
                bytes: g.bytes * take / g.rows.max(1),
                ..*g
            });
            done += take;
        }
        start += g.rows;
    }
    out.retain(|p| !p.is_empty());
    if out.is_empty() {
        out.push(Vec::new());
    }
    out
}

/// The rows of `pieces` (one file, ascending row groups) as a selection over their row groups.
fn row_selection(pieces: &[Chunk]) -> RowSelection {
    let mut selectors = Vec::new();
    for p in pieces {
        if p.offset > 0 {
            selectors.push(RowSelector::skip(p.offset as usize));
        }
        selectors.push(RowSelector::select(p.rows as usize));
        let after = p.group_rows - p.offset - p.rows;
        if after > 0 {
            selectors.push(RowSelector::skip(after as usize));
        }
    }
    RowSelection::from(selectors)
}

/// The physical scan of a [`TrajectorySource`].
#[derive(Debug)]
pub struct TrajectoryScan {
    files: Arc<Vec<SourceFile>>,
    projection: Vec<usize>,
    schema: SchemaRef,
    partitions: Vec<Vec<Chunk>>,
    counter: Arc<ScanCounter>,
    props: Arc<PlanProperties>,
}

impl TrajectoryScan {
    fn new(source: &TrajectorySource, projection: Vec<usize>, parts: usize) -> DfResult<Self> {
        let schema = Arc::new(source.schema.project(&projection)?);
        let mut groups = Vec::new();
        for (fi, f) in source.files.iter().enumerate() {
            let mut first = f.first_row;
            for (ri, &(rows, bytes)) in f.row_groups.iter().enumerate() {
                groups.push(Chunk {
                    file: fi,
                    row_group: ri,
                    group_rows: rows,
                    offset: 0,
                    rows,
                    first_row: first,
                    bytes,
                });
                first += rows;
            }
        }
        let partitions = split(&groups, parts);
        let mut eq = EquivalenceProperties::new(Arc::clone(&schema));
        if let Ok(i) = schema.index_of(ROW) {
            let sort = PhysicalSortExpr::new_default(Arc::new(Column::new(ROW, i)));
            if let Some(ordering) = LexOrdering::new(vec![sort]) {
                eq.add_orderings(vec![ordering]);
            }
        }
        let props = PlanProperties::new(
            eq,
            Partitioning::UnknownPartitioning(partitions.len()),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(TrajectoryScan {
            files: Arc::clone(&source.files),
            projection,
            schema,
            partitions,
            counter: Arc::clone(&source.counter),
            props: Arc::new(props),
        })
    }
}

impl DisplayAs for TrajectoryScan {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let names: Vec<&str> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        write!(
            f,
            "TrajectoryScan: files={}, partitions={}, projection=[{}]",
            self.files.len(),
            self.partitions.len(),
            names.join(", ")
        )
    }
}

/// Rows per batch for these row groups: at most `max_rows`, and few enough that a batch of the
/// widest row group's average row (projected columns, decoded) stays near
/// [`BATCH_TARGET_BYTES`]. Trajectories range from a few KB to many MB, so a fixed row count
/// would let memory follow the corpus's row sizes.
fn rows_per_batch(
    metadata: &ParquetMetaData,
    groups: &[usize],
    columns: &[&str],
    max_rows: usize,
) -> usize {
    let widest = groups
        .iter()
        .filter_map(|&g| metadata.row_groups().get(g))
        .map(|rg| {
            let bytes: i64 = rg
                .columns()
                .iter()
                .filter(|c| {
                    c.column_path()
                        .parts()
                        .first()
                        .is_some_and(|root| columns.contains(&root.as_str()))
                })
                .map(|c| c.uncompressed_size())
                .sum();
            bytes.max(0) as u64 / (rg.num_rows().max(1) as u64)
        })
        .max()
        .unwrap_or(0)
        .max(1);
    (BATCH_TARGET_BYTES / widest).clamp(1, max_rows.max(1) as u64) as usize
}

/// Reads one partition's row groups into `tx`, adding `_row`.
fn read_partition(
    files: &[SourceFile],
    chunks: &[Chunk],
    projection: &[usize],
    schema: &SchemaRef,
    counter: &ScanCounter,
    batch_rows: usize,
    tx: &tokio::sync::mpsc::Sender<DfResult<RecordBatch>>,
) -> DfResult<()> {
    let full = source_schema();
    let wanted: Vec<&str> = projection
        .iter()
        .map(|&i| full.field(i).name().as_str())
        .collect();
    // A partition's chunks are contiguous: open each file (and parse its footer) once.
    for run in chunks.chunk_by(|a, b| a.file == b.file) {
        let file = &files[run[0].file];
        let handle = std::fs::File::open(&file.path)
            .map_err(|e| DataFusionError::Execution(format!("{}: {e}", file.path.display())))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(handle)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let file_schema = Arc::clone(builder.schema());
        let roots: Vec<usize> = wanted
            .iter()
            .filter_map(|n| file_schema.index_of(n).ok())
            .collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        let groups: Vec<usize> = run.iter().map(|c| c.row_group).collect();
        let rows = rows_per_batch(builder.metadata(), &groups, &wanted, batch_rows);
        let reader = builder
            .with_projection(mask)
            .with_row_groups(groups)
            .with_row_selection(row_selection(run))
            .with_batch_size(rows)
            .build()
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let mut next_row = run[0].first_row;
        for batch in reader {
            let batch = batch?;
            let n = batch.num_rows();
            let mut columns: Vec<ArrayRef> = Vec::with_capacity(wanted.len());
            for name in &wanted {
                if *name == ROW {
                    columns.push(Arc::new(UInt64Array::from_iter_values(
                        next_row..next_row + n as u64,
                    )));
                } else {
                    let col = batch.column_by_name(name).ok_or_else(|| {
                        DataFusionError::Execution(format!(
                            "{}: column {name} vanished",
                            file.path.display()
                        ))
                    })?;
                    columns.push(Arc::clone(col));
                }
            }
            next_row += n as u64;
            counter.rows.fetch_add(n as u64, Ordering::Relaxed);
            let out = RecordBatch::try_new_with_options(
                Arc::clone(schema),
                columns,
                &arrow::array::RecordBatchOptions::new().with_row_count(Some(n)),
            )?;
            if tx.blocking_send(Ok(out)).is_err() {
                return Ok(()); // the consumer went away (LIMIT, error elsewhere)
            }
        }
        let bytes: u64 = run.iter().map(|c| c.bytes).sum();
        counter.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    Ok(())
}

impl ExecutionPlan for TrajectoryScan {
    fn name(&self) -> &str {
        "TrajectoryScan"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.props
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let batch_rows = context.session_config().batch_size();
        let chunks = self.partitions.get(partition).cloned().ok_or_else(|| {
            DataFusionError::Internal(format!("TrajectoryScan has no partition {partition}"))
        })?;
        // One batch queued per partition: decoded trajectories are the bulk of a run's memory.
        let mut builder = RecordBatchReceiverStreamBuilder::new(Arc::clone(&self.schema), 1);
        let tx = builder.tx();
        let files = Arc::clone(&self.files);
        let projection = self.projection.clone();
        let schema = Arc::clone(&self.schema);
        let counter = Arc::clone(&self.counter);
        builder.spawn_blocking(move || {
            read_partition(
                &files,
                &chunks,
                &projection,
                &schema,
                &counter,
                batch_rows,
                &tx,
            )
        });
        Ok(builder.build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(sizes: &[(usize, u64)]) -> Vec<Chunk> {
        let mut first = 0;
        let mut row_group = Vec::new();
        let mut out = Vec::new();
        for &(file, rows) in sizes {
            row_group.resize(file + 1, 0);
            out.push(Chunk {
                file,
                row_group: row_group[file],
                group_rows: rows,
                offset: 0,
                rows,
                first_row: first,
                bytes: rows * 10,
            });
            row_group[file] += 1;
            first += rows;
        }
        out
    }

    /// Every row lands in exactly one partition, in `_row` order, with balanced partitions.
    #[test]
    fn split_covers_rows_once_in_order_and_balances() {
        let cases: &[&[(usize, u64)]] = &[
            &[(0, 4969), (0, 31)],
            &[(0, 1)],
            &[(0, 3), (1, 7), (1, 2), (2, 100)],
            &[(0, 10), (0, 10), (0, 10)],
        ];
        for case in cases {
            let g = groups(case);
            let total: u64 = g.iter().map(|c| c.rows).sum();
            for parts in 1..=5 {
                let split = split(&g, parts);
                let flat: Vec<Chunk> = split.iter().flatten().copied().collect();
                let mut next = 0;
                for c in &flat {
                    assert_eq!(c.first_row, next, "{case:?} / {parts}: rows out of order");
                    assert!(c.offset + c.rows <= c.group_rows);
                    next += c.rows;
                }
                assert_eq!(next, total);
                let sizes: Vec<u64> = split
                    .iter()
                    .map(|p| p.iter().map(|c| c.rows).sum())
                    .collect();
                let (lo, hi) = (
                    sizes.iter().min().expect("test setup"),
                    sizes.iter().max().expect("test setup"),
                );
                assert!(hi - lo <= 1, "{case:?} / {parts}: unbalanced {sizes:?}");
                assert_eq!(split.len() as u64, (parts as u64).min(total));
            }
        }
    }

    #[test]
    fn a_piece_selects_its_rows_of_the_group() {
        let piece = |offset, rows| Chunk {
            file: 0,
            row_group: 0,
            group_rows: 10,
            offset,
            rows,
            first_row: 0,
            bytes: 0,
        };
        let sel = row_selection(&[piece(3, 4)]);
        assert_eq!(sel.row_count(), 4);
        assert_eq!(sel.skipped_row_count(), 6);
        let whole = row_selection(&[piece(0, 10), piece(0, 5)]);
        assert_eq!(whole.row_count(), 15);
        assert_eq!(whole.skipped_row_count(), 5);
    }

    /// Reads a canonical file with several row groups at 1–4 partitions: the same rows get the
    /// same `_row`, whatever the split.
    #[test]
    fn partitions_read_the_same_rows_with_the_same_ordinals() {
        use datafusion::prelude::{SessionConfig, SessionContext};
        let dir = tempfile::tempdir().expect("test setup");
        let path = dir.path().join("t.parquet");
        let rows = sample_rows();
        let n = rows.num_rows();
        assert!(n > 10, "the sample has {n} rows");
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(5))
            .build();
        let file = std::fs::File::create(&path).expect("test setup");
        let mut w = parquet::arrow::ArrowWriter::try_new(file, rows.schema(), Some(props))
            .expect("test setup");
        w.write(&rows).expect("test setup");
        w.close().expect("test setup");
        let source =
            Arc::new(TrajectorySource::open(std::slice::from_ref(&path)).expect("test setup"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("test setup");
        let mut seen = Vec::new();
        for parts in 1..=4 {
            let config = SessionConfig::new()
                .with_target_partitions(parts)
                .with_batch_size(3);
            let ctx = SessionContext::new_with_config(config);
            let batches = rt.block_on(async {
                let df = ctx.read_table(source.clone()).expect("test setup");
                df.select_columns(&[ROW, "trajectory_id"])
                    .expect("test setup")
                    .sort(vec![datafusion::prelude::col(ROW).sort(true, false)])
                    .expect("test setup")
                    .collect()
                    .await
                    .expect("test setup")
            });
            let pairs: Vec<(u64, String)> = batches
                .iter()
                .flat_map(|b| {
                    let r = b
                        .column(0)
                        .as_any()
                        .downcast_ref::<UInt64Array>()
                        .expect("test setup");
                    let id = arrow::array::AsArray::as_string::<i32>(b.column(1));
                    (0..b.num_rows())
                        .map(|i| (r.value(i), id.value(i).to_string()))
                        .collect::<Vec<_>>()
                })
                .collect();
            assert_eq!(pairs.len(), n, "{parts} partitions");
            assert!(pairs.iter().enumerate().all(|(i, p)| p.0 == i as u64));
            seen.push(pairs);
        }
        assert!(seen.windows(2).all(|w| w[0] == w[1]));
    }

    /// The canonical rows of the bundled synthetic sample (ingested through trajforge-io).
    fn sample_rows() -> RecordBatch {
        let dir = tempfile::tempdir().expect("test setup");
        let sample = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../data-samples/synthetic/zero.parquet"
        );
        let opts = trajforge_io::IngestOptions::new(vec![sample.into()], dir.path().into());
        trajforge_io::ingest(&opts, &trajforge_io::ingest::NoProgress).expect("test setup");
        let files =
            crate::engine::parquet_files(&[dir.path().join("trajectories")]).expect("test setup");
        let batches: Vec<RecordBatch> = files
            .iter()
            .flat_map(|f| {
                ParquetRecordBatchReaderBuilder::try_new(
                    std::fs::File::open(f).expect("test setup"),
                )
                .expect("test setup")
                .build()
                .expect("test setup")
                .map(|b| b.expect("batch"))
            })
            .collect();
        arrow::compute::concat_batches(&batches[0].schema(), &batches).expect("test setup")
    }
}
