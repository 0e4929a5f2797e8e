//! Parquet part writers: zstd, row groups sized for scans, parts rolled at a row count, every
//! file written to a temporary name in the same directory and renamed into place when complete,
//! so a reader never sees a half-written part.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
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
    /// zstd level (1–22).
    pub zstd_level: i32,
    /// Key-value pairs stored in each file's footer.
    pub metadata: Vec<(String, String)>,
}

impl Default for PartOptions {
    fn default() -> Self {
        // ~64 MB (encoded) row groups bound the writer's buffer and give scans several row groups per file.
        PartOptions {
            rows_per_part: 100_000,
            row_group_bytes: 64 << 20,
            row_group_rows: 16_384,
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
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_max_row_group_row_count(Some(options.row_group_rows))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_key_value_metadata((!options.metadata.is_empty()).then(|| {
                options
                    .metadata
                    .iter()
                    .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
                    .collect()
            }))
            .build();
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
            rows: 0,
        })
    }

    /// Appends a batch, closing the row group once its encoded size reaches the limit.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), IoError> {
        self.writer
            .write(batch)
            .map_err(|e| IoError::write(&self.path, e))?;
        if self.writer.in_progress_size() >= self.row_group_bytes {
            self.writer
                .flush()
                .map_err(|e| IoError::write(&self.path, e))?;
        }
        self.rows += batch.num_rows();
        Ok(())
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
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut temp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(readable_by_all())
        .tempfile_in(dir)
        .map_err(|e| IoError::io(dir, e))?;
    temp.write_all(bytes)
        .map_err(|e| IoError::io(temp.path(), e))?;
    temp.persist(path).map_err(|e| IoError::io(path, e.error))?;
    Ok(())
}

/// Outputs are datasets for other tools and users: 0644, not tempfile's private 0600.
pub fn readable_by_all() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o644)
}
