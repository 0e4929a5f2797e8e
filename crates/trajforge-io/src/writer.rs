//! Parquet part writers: zstd, row groups sized for scans, parts rolled at a row count, every
//! file written to a temporary name in the same directory and renamed into place when complete,
//! so a reader never sees a half-written part.
//!
//! Row groups are bounded three ways: rows, encoded bytes (the writer's own buffer) and decoded
//! bytes. The last is the one readers feel: DataFusion, polars and DuckDB decode a row group (or
//! up to 8,192 rows of it) into one batch, and trajectory text compresses ~10× with zstd, so a
//! 64 MB encoded group of trajectories decodes to several hundred MB per reading thread. Files
//! also carry page statistics with column and offset indexes (page pruning on sorted columns)
//! and bloom filters on the id columns (point lookups on unsorted ids).

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};
use tempfile::NamedTempFile;

use crate::IoError;

/// Sizing of Parquet output.
#[derive(Debug, Clone)]
pub struct PartOptions {
    /// Rows per `part-NNNNN.parquet` file.
    pub rows_per_part: usize,
    /// A row group is closed once the writer's estimate of its encoded size reaches this many
    /// bytes (this bounds the writer's memory).
    pub row_group_bytes: usize,
    /// … or this many rows, whichever comes first.
    pub row_group_rows: usize,
    /// … or once the Arrow (decoded) size of its rows reaches this many bytes, which is what a
    /// reader holds per row group.
    pub row_group_decoded_bytes: usize,
    /// Columns (top-level, by name) that get a bloom filter per row group, for point lookups;
    /// names absent from a file's schema are ignored.
    pub bloom_filter_columns: Vec<String>,
    /// zstd level (1–22).
    pub zstd_level: i32,
    /// Key-value pairs stored in each file's footer.
    pub metadata: Vec<(String, String)>,
}

/// Decoded bytes per row group: ~250 ZERO trajectories (~120 KB each). Measured on 30k rows
/// (bench/RESULTS.md, "SQL queries and Parquet layout"): the queries that explode `messages`
/// peaked at 2.8 GB with the old 64 MB-encoded groups (~500 MB decoded), 1.07 GB at 128 MB and
/// 0.51 GB at 32 MB, at equal or better speed in DataFusion and DuckDB alike; narrow queries
/// did not move.
pub const DEFAULT_ROW_GROUP_DECODED_BYTES: usize = 32 << 20;

/// The id columns point lookups filter on: `trajectory_id` is unsorted in every output (a hash),
/// so min/max statistics cannot prune it; `instance_id` is sorted in pipeline outputs but not in
/// ingest outputs or `filtered`.
pub fn default_bloom_filter_columns() -> Vec<String> {
    vec!["trajectory_id".into(), "instance_id".into()]
}

impl Default for PartOptions {
    fn default() -> Self {
        // ~64 MB (encoded) row groups bound the writer's buffer and give scans several row groups per file.
        PartOptions {
            rows_per_part: 100_000,
            row_group_bytes: 64 << 20,
            row_group_rows: 16_384,
            row_group_decoded_bytes: DEFAULT_ROW_GROUP_DECODED_BYTES,
            bloom_filter_columns: default_bloom_filter_columns(),
            zstd_level: 3,
            metadata: Vec::new(),
        }
    }
}

/// One finished part file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartInfo {
    /// Path relative to the run's output directory.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
}

/// One Parquet file written under a temporary name in its final directory and renamed into
/// place by [`ParquetFile::finish`]; a reader never sees it half-written.
pub struct ParquetFile {
    writer: ArrowWriter<File>,
    temp: NamedTempFile,
    path: PathBuf,
    row_group_bytes: usize,
    row_group_decoded_bytes: usize,
    /// Decoded bytes of the rows in the open row group (an estimate once the writer has cut a
    /// group at its row limit inside a batch).
    group_decoded: usize,
    rows: usize,
}

impl ParquetFile {
    /// Starts `path` (creating its directory) with zstd, page statistics and the row-group sizing
    /// of `options`.
    pub fn create(
        path: &Path,
        schema: SchemaRef,
        options: &PartOptions,
    ) -> Result<ParquetFile, IoError> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| IoError::io(dir, e))?;
        let level = ZstdLevel::try_new(options.zstd_level).map_err(|e| {
            IoError::Config(format!("invalid zstd level {}: {e}", options.zstd_level))
        })?;
        let mut properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_max_row_group_row_count(Some(options.row_group_rows))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_key_value_metadata((!options.metadata.is_empty()).then(|| {
                options
                    .metadata
                    .iter()
                    .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
                    .collect()
            }));
        for name in &options.bloom_filter_columns {
            if schema.column_with_name(name).is_some() {
                // Sized for the row-group row limit, then folded down to what the group holds.
                properties = properties
                    .set_column_bloom_filter_enabled(ColumnPath::from(name.as_str()), true);
            }
        }
        let properties = properties.build();
        let temp = tempfile::Builder::new()
            .prefix(".trajforge-")
            .suffix(".parquet.tmp")
            .permissions(readable_by_all())
            .tempfile_in(dir)
            .map_err(|e| IoError::io(dir, e))?;
        let file = temp
            .as_file()
            .try_clone()
            .map_err(|e| IoError::io(temp.path(), e))?;
        let writer = ArrowWriter::try_new(file, schema, Some(properties))
            .map_err(|e| IoError::write(path, e))?;
        Ok(ParquetFile {
            writer,
            temp,
            path: path.to_path_buf(),
            row_group_bytes: options.row_group_bytes,
            row_group_decoded_bytes: options.row_group_decoded_bytes.max(1),
            group_decoded: 0,
            rows: 0,
        })
    }

    /// Appends a batch, closing row groups at the decoded-size limit (splitting a batch larger
    /// than the limit) and once a group's encoded size reaches its limit.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), IoError> {
        let decoded = decoded_size(batch);
        if decoded > self.row_group_decoded_bytes && batch.num_rows() > 1 {
            // Equal row slices, each about the limit: trajectories are similar in size.
            let pieces = decoded.div_ceil(self.row_group_decoded_bytes);
            let step = batch.num_rows().div_ceil(pieces);
            for offset in (0..batch.num_rows()).step_by(step) {
                let len = step.min(batch.num_rows() - offset);
                self.write_piece(&batch.slice(offset, len))?;
            }
            return Ok(());
        }
        self.write_piece(batch)
    }

    fn write_piece(&mut self, batch: &RecordBatch) -> Result<(), IoError> {
        let decoded = decoded_size(batch);
        if self.group_decoded > 0 && self.group_decoded + decoded > self.row_group_decoded_bytes {
            self.flush_group()?;
        }
        let rows_before = self.writer.in_progress_rows();
        self.writer
            .write(batch)
            .map_err(|e| IoError::write(&self.path, e))?;
        let rows_now = self.writer.in_progress_rows();
        self.group_decoded = if rows_now == rows_before + batch.num_rows() {
            self.group_decoded + decoded
        } else {
            // The writer closed a group at its row limit inside this batch; what is left open
            // is the batch's tail.
            decoded * rows_now / batch.num_rows().max(1)
        };
        if self.writer.in_progress_size() >= self.row_group_bytes
            || self.group_decoded >= self.row_group_decoded_bytes
        {
            self.flush_group()?;
        }
        self.rows += batch.num_rows();
        Ok(())
    }

    fn flush_group(&mut self) -> Result<(), IoError> {
        self.group_decoded = 0;
        self.writer
            .flush()
            .map_err(|e| IoError::write(&self.path, e))
    }

    /// The final path (the file is there once finished).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rows written so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Writes the footer, renames the file into place and returns its size in bytes.
    pub fn finish(self) -> Result<u64, IoError> {
        self.writer
            .close()
            .map_err(|e| IoError::write(&self.path, e))?;
        self.temp
            .persist(&self.path)
            .map_err(|e| IoError::io(&self.path, e.error))?;
        Ok(std::fs::metadata(&self.path)
            .map_err(|e| IoError::io(&self.path, e))?
            .len())
    }
}

/// Bytes of Arrow memory the rows of `batch` occupy (for a slice, only its own rows).
fn decoded_size(batch: &RecordBatch) -> usize {
    batch.columns().iter().map(|c| slice_size(c.as_ref())).sum()
}

/// [`ArrayData::get_slice_memory_size`](arrow::array::ArrayData::get_slice_memory_size), except
/// that a list slice counts only the child values its offsets cover (the Arrow function counts
/// the whole child, so a 10-row slice of a batch would weigh as much as the batch).
fn slice_size(array: &dyn Array) -> usize {
    // A slice without nulls needs no bitmap, as a compacted copy has none.
    let nulls = array
        .nulls()
        .filter(|n| n.null_count() > 0)
        .map_or(0, |n| n.len().div_ceil(8));
    match array.data_type() {
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            let offsets = list.value_offsets();
            let (start, end) = (offsets[0] as usize, offsets[offsets.len() - 1] as usize);
            nulls + 4 * offsets.len() + slice_size(list.values().slice(start, end - start).as_ref())
        }
        DataType::LargeList(_) => {
            let list = array.as_list::<i64>();
            let offsets = list.value_offsets();
            let (start, end) = (offsets[0] as usize, offsets[offsets.len() - 1] as usize);
            nulls + 8 * offsets.len() + slice_size(list.values().slice(start, end - start).as_ref())
        }
        // A struct's slice slices its children.
        DataType::Struct(_) => {
            nulls
                + array
                    .as_struct()
                    .columns()
                    .iter()
                    .map(|c| slice_size(c.as_ref()))
                    .sum::<usize>()
        }
        _ => array
            .to_data()
            .get_slice_memory_size()
            .unwrap_or_else(|_| array.get_array_memory_size()),
    }
}

/// Writes a stream of batches of one schema as `DIR/part-NNNNN.parquet` files.
pub struct PartWriter {
    dir: PathBuf,
    /// Directory name recorded in [`PartInfo::path`] (`trajectories`, `rejects`).
    label: String,
    schema: SchemaRef,
    options: PartOptions,
    open: Option<ParquetFile>,
    parts: Vec<PartInfo>,
}

impl PartWriter {
    /// Creates `root/label/`, removing part files a previous run left there.
    pub fn create(
        root: &Path,
        label: &str,
        schema: SchemaRef,
        options: PartOptions,
    ) -> Result<PartWriter, IoError> {
        let dir = root.join(label);
        std::fs::create_dir_all(&dir).map_err(|e| IoError::io(&dir, e))?;
        for entry in std::fs::read_dir(&dir).map_err(|e| IoError::io(&dir, e))? {
            let path = entry.map_err(|e| IoError::io(&dir, e))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with("part-") && name.ends_with(".parquet") {
                std::fs::remove_file(&path).map_err(|e| IoError::io(&path, e))?;
            }
        }
        Ok(PartWriter {
            dir,
            label: label.to_string(),
            schema,
            options,
            open: None,
            parts: Vec::new(),
        })
    }

    fn part_name(&self) -> String {
        format!("part-{:05}.parquet", self.parts.len())
    }

    fn open_part(&mut self) -> Result<&mut ParquetFile, IoError> {
        if self.open.is_none() {
            let path = self.dir.join(self.part_name());
            self.open = Some(ParquetFile::create(
                &path,
                self.schema.clone(),
                &self.options,
            )?);
        }
        self.open
            .as_mut()
            .ok_or_else(|| IoError::Internal("part writer not open".into()))
    }

    /// Appends a batch, closing row groups and parts as they fill.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), IoError> {
        let limit = self.options.rows_per_part;
        let mut offset = 0;
        while offset < batch.num_rows() {
            let part = self.open_part()?;
            let take = (limit - part.rows()).min(batch.num_rows() - offset);
            part.write(&batch.slice(offset, take))?;
            offset += take;
            if part.rows() >= limit {
                self.close_part()?;
            }
        }
        Ok(())
    }

    fn close_part(&mut self) -> Result<(), IoError> {
        let Some(part) = self.open.take() else {
            return Ok(());
        };
        let rows = part.rows() as u64;
        let bytes = part.finish()?;
        self.parts.push(PartInfo {
            path: format!("{}/{}", self.label, self.part_name()),
            rows,
            bytes,
        });
        Ok(())
    }

    /// Closes the last part. With no rows at all, one empty part is still written so the table
    /// exists with its schema for every reader.
    pub fn finish(mut self) -> Result<Vec<PartInfo>, IoError> {
        if self.parts.is_empty() && self.open.is_none() {
            self.open_part()?;
        }
        self.close_part()?;
        Ok(self.parts)
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    use std::io::Write;
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes)
        .map_err(|e| IoError::io(file.temp_path(), e))?;
    file.commit()
}

/// A file streamed (buffered) to a temporary name in its final directory and renamed into place
/// by [`AtomicFile::commit`]; dropped without a commit, the temporary file is removed, so a
/// failed or interrupted write leaves nothing behind at `path`.
pub struct AtomicFile {
    temp: std::io::BufWriter<NamedTempFile>,
    path: PathBuf,
}

impl AtomicFile {
    pub fn create(path: &Path) -> Result<AtomicFile, IoError> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let temp = tempfile::Builder::new()
            .prefix(".tmp-")
            .permissions(readable_by_all())
            .tempfile_in(dir)
            .map_err(|e| IoError::io(dir, e))?;
        Ok(AtomicFile {
            temp: std::io::BufWriter::with_capacity(1 << 20, temp),
            path: path.to_path_buf(),
        })
    }

    /// Where the bytes go until the commit.
    pub fn temp_path(&self) -> &Path {
        self.temp.get_ref().path()
    }

    /// Flushes and renames the file to its final path.
    pub fn commit(self) -> Result<(), IoError> {
        let AtomicFile { temp, path } = self;
        let temp = temp
            .into_inner()
            .map_err(|e| IoError::io(&path, e.into_error()))?;
        temp.persist(&path)
            .map_err(|e| IoError::io(&path, e.error))?;
        Ok(())
    }
}

impl std::io::Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.temp.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.temp.flush()
    }
}

/// Outputs are datasets for other tools and users: 0644, not tempfile's private 0600.
pub fn readable_by_all() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o644)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, ListBuilder, StringBuilder, StructBuilder};
    use arrow::datatypes::{Field, Fields, Schema};
    use parquet::file::properties::ReaderProperties;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::file::serialized_reader::ReadOptionsBuilder;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn atomic_file_appears_only_on_commit() {
        use std::io::Write;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("out.csv");
        let mut dropped = AtomicFile::create(&path).expect("create");
        dropped.write_all(b"half a result").expect("write");
        drop(dropped);
        let left: Vec<_> = std::fs::read_dir(dir.path()).expect("list").collect();
        assert!(
            left.is_empty(),
            "an uncommitted file leaves nothing: {left:?}"
        );

        let mut file = AtomicFile::create(&path).expect("create");
        for line in 0..10_000 {
            writeln!(file, "line {line}").expect("write");
        }
        assert!(!path.exists(), "not visible before the commit");
        file.commit().expect("commit");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.lines().count(), 10_000);
        assert_eq!(text.lines().last(), Some("line 9999"));
        let names: Vec<_> = std::fs::read_dir(dir.path()).expect("list").collect();
        assert_eq!(names.len(), 1, "the temporary file was renamed, not copied");
    }

    fn message_fields() -> Fields {
        Fields::from(vec![
            Field::new("role", DataType::Utf8, true),
            Field::new("content", DataType::Utf8, true),
        ])
    }

    /// `rows` trajectories shaped like the canonical ones: an id and a list of messages whose
    /// count and text length vary (seeded), some of them null.
    fn trajectories(rows: usize, seed: u64) -> RecordBatch {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut ids = StringBuilder::new();
        let mut messages = ListBuilder::new(StructBuilder::from_fields(message_fields(), 0));
        for row in 0..rows {
            ids.append_value(format!("traj-{seed}-{row:05}"));
            if rng.random_bool(0.05) {
                messages.append(false);
                continue;
            }
            for _ in 0..rng.random_range(0..12) {
                let text = "x".repeat(rng.random_range(0..4_000));
                let item = messages.values();
                item.field_builder::<StringBuilder>(0)
                    .expect("role")
                    .append_value("assistant");
                item.field_builder::<StringBuilder>(1)
                    .expect("content")
                    .append_value(text);
                item.append(true);
            }
            messages.append(true);
        }
        let columns: Vec<ArrayRef> = vec![Arc::new(ids.finish()), Arc::new(messages.finish())];
        let schema = Schema::new(vec![
            Field::new("trajectory_id", DataType::Utf8, false),
            Field::new(
                "messages",
                DataType::List(Arc::new(Field::new_struct("item", message_fields(), true))),
                true,
            ),
        ]);
        RecordBatch::try_new(Arc::new(schema), columns).expect("batch")
    }

    /// The naive size: copy the slice into fresh arrays (`take` of every row), whose buffers
    /// hold exactly its rows, and ask Arrow.
    fn compacted_size(batch: &RecordBatch) -> usize {
        let every_row = arrow::array::UInt32Array::from_iter_values(0..batch.num_rows() as u32);
        batch
            .columns()
            .iter()
            .map(|c| {
                let fresh = arrow::compute::take(c.as_ref(), &every_row, None).expect("take");
                fresh.to_data().get_slice_memory_size().expect("size")
            })
            .sum()
    }

    #[test]
    fn slice_size_matches_a_compacted_copy_on_random_slices() {
        let batch = trajectories(300, 11);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for _ in 0..200 {
            let offset = rng.random_range(0..batch.num_rows());
            let len = rng.random_range(0..=batch.num_rows() - offset);
            let slice = batch.slice(offset, len);
            assert_eq!(
                decoded_size(&slice),
                compacted_size(&slice),
                "slice {offset}+{len}"
            );
        }
    }

    fn write_file(batches: &[RecordBatch], options: &PartOptions) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("part.parquet");
        let mut file = ParquetFile::create(&path, batches[0].schema(), options).expect("create");
        for batch in batches {
            file.write(batch).expect("write");
        }
        file.finish().expect("finish");
        (dir, path)
    }

    fn row_groups(path: &Path) -> Vec<RecordBatch> {
        let file = File::open(path).expect("open");
        let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("test file");
        let groups = builder.metadata().num_row_groups();
        (0..groups)
            .map(|g| {
                let file = File::open(path).expect("open");
                let reader =
                    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                        .expect("test file")
                        .with_row_groups(vec![g])
                        .with_batch_size(usize::MAX)
                        .build()
                        .expect("test file");
                let batches: Vec<RecordBatch> = reader.map(|b| b.expect("test file")).collect();
                arrow::compute::concat_batches(&batches[0].schema(), &batches).expect("test file")
            })
            .collect()
    }

    #[test]
    fn row_groups_stay_under_the_decoded_limit_and_keep_every_row() {
        let batches: Vec<RecordBatch> = (0..6).map(|i| trajectories(70, i)).collect();
        let limit = 400_000;
        let options = PartOptions {
            row_group_decoded_bytes: limit,
            row_group_rows: 50,
            ..PartOptions::default()
        };
        let (_dir, path) = write_file(&batches, &options);
        let groups = row_groups(&path);
        let total: usize = batches.iter().map(decoded_size).sum();
        assert!(
            groups.len() >= total.div_ceil(limit),
            "{} groups",
            groups.len()
        );
        for group in &groups {
            assert!(group.num_rows() <= 50);
            // A group passes the limit by less than one row (the largest is < 50 KB here).
            assert!(
                decoded_size(group) < limit + 50_000,
                "{}",
                decoded_size(group)
            );
        }
        let expected =
            arrow::compute::concat_batches(&batches[0].schema(), &batches).expect("test file");
        let read = arrow::compute::concat_batches(&groups[0].schema(), &groups).expect("test file");
        assert_eq!(read, expected);
    }

    #[test]
    fn a_batch_larger_than_the_limit_is_split_into_several_groups() {
        let batch = trajectories(200, 3);
        let limit = decoded_size(&batch) / 5;
        let options = PartOptions {
            row_group_decoded_bytes: limit,
            ..PartOptions::default()
        };
        let (_dir, path) = write_file(std::slice::from_ref(&batch), &options);
        let groups = row_groups(&path);
        assert!((5..=7).contains(&groups.len()), "{} groups", groups.len());
        let read = arrow::compute::concat_batches(&batch.schema(), &groups).expect("test file");
        assert_eq!(read, batch);
    }

    #[test]
    fn id_columns_get_bloom_filters_that_find_every_id() {
        let batches: Vec<RecordBatch> = (0..3).map(|i| trajectories(100, i)).collect();
        let options = PartOptions {
            row_group_rows: 100,
            ..PartOptions::default()
        };
        let (_dir, path) = write_file(&batches, &options);
        let read_options = ReadOptionsBuilder::new()
            .with_reader_properties(
                ReaderProperties::builder()
                    .set_read_bloom_filter(true)
                    .build(),
            )
            .build();
        let reader = SerializedFileReader::new_with_options(
            File::open(&path).expect("test file"),
            read_options,
        )
        .expect("reader");
        assert_eq!(reader.num_row_groups(), 3);
        for (g, batch) in batches.iter().enumerate() {
            let group = reader.get_row_group(g).expect("row group");
            let bloom = group
                .get_column_bloom_filter(0)
                .expect("bloom on trajectory_id");
            let ids = batch.column(0).as_string::<i32>();
            assert!(ids.iter().flatten().all(|id| bloom.check(&id)));
            // Ids of the other groups are (almost all) ruled out: fpp is 5%.
            let other = batches[(g + 1) % 3].column(0).as_string::<i32>();
            let false_hits = other.iter().flatten().filter(|id| bloom.check(id)).count();
            assert!(false_hits < 20, "{false_hits} false positives of 100");
            assert!(
                group.get_column_bloom_filter(1).is_none(),
                "none on messages"
            );
        }
    }
}
