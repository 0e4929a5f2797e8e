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
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::PipelineError;

/// The ordinal column every scan adds.
pub const ROW: &str = "_row";

/// Rows per batch read: trajectories are ~100 KB each, so this keeps batches near 25 MB.
pub const BATCH_ROWS: usize = 256;

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

/// A row group to read and the `_row` of its first row (row groups of a file are contiguous in
/// `_row`, so a run of them reads as one stream).
#[derive(Debug, Clone, Copy)]
struct Chunk {
    file: usize,
    row_group: usize,
    first_row: u64,
    bytes: u64,
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

/// Contiguous ranges of chunks with about equal rows each.
fn split(chunks: Vec<(Chunk, u64)>, parts: usize) -> Vec<Vec<Chunk>> {
    let total: u64 = chunks.iter().map(|c| c.1).sum();
    let target = total.div_ceil(parts as u64).max(1);
    let mut out: Vec<Vec<Chunk>> = vec![Vec::new()];
    let mut filled = 0;
    for (chunk, rows) in chunks {
        if filled >= target && out.len() < parts {
            out.push(Vec::new());
            filled = 0;
        }
        if let Some(last) = out.last_mut() {
            last.push(chunk);
        }
        filled += rows;
    }
    out
}

impl TrajectoryScan {
    fn new(source: &TrajectorySource, projection: Vec<usize>, parts: usize) -> DfResult<Self> {
        let schema = Arc::new(source.schema.project(&projection)?);
        let mut chunks = Vec::new();
        for (fi, f) in source.files.iter().enumerate() {
            let mut first = f.first_row;
            for (ri, &(rows, bytes)) in f.row_groups.iter().enumerate() {
                let chunk = Chunk {
                    file: fi,
                    row_group: ri,
                    first_row: first,
                    bytes,
                };
                chunks.push((chunk, rows));
                first += rows;
            }
        }
        let partitions = split(chunks, parts);
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

/// Reads one partition's row groups into `tx`, adding `_row`.
fn read_partition(
    files: &[SourceFile],
    chunks: &[Chunk],
    projection: &[usize],
    schema: &SchemaRef,
    counter: &ScanCounter,
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
        let reader = builder
            .with_projection(mask)
            .with_row_groups(run.iter().map(|c| c.row_group).collect())
            .with_batch_size(BATCH_ROWS)
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
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let chunks = self.partitions.get(partition).cloned().ok_or_else(|| {
            DataFusionError::Internal(format!("TrajectoryScan has no partition {partition}"))
        })?;
        let mut builder = RecordBatchReceiverStreamBuilder::new(Arc::clone(&self.schema), 2);
        let tx = builder.tx();
        let files = Arc::clone(&self.files);
        let projection = self.projection.clone();
        let schema = Arc::clone(&self.schema);
        let counter = Arc::clone(&self.counter);
        builder.spawn_blocking(move || {
            read_partition(&files, &chunks, &projection, &schema, &counter, &tx)
        });
        Ok(builder.build())
    }
}
