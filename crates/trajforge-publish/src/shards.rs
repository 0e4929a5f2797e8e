//! The dataset's data files: kept trajectories split into one config per training stage, packed
//! rows as config `packed`, each config as `data/<config>/train-NNNNN-of-NNNNN.parquet`.
//!
//! The shard count of a config is fixed before writing (its share of the input bytes over
//! `shard_bytes`), so names carry their final `-of-NNNNN` and rows are spread evenly; rows keep
//! the run's order, so the same run publishes byte-identical files.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{Array, BooleanArray, StringArray};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde::Serialize;
use trajforge_io::writer::{ParquetFile, PartOptions};
use trajforge_report::stats::NO_VALUE;
use trajforge_report::{Layout, Stats};

use crate::{PublishError, PublishOptions, features};

/// Config name for trajectories whose `stage` is null.
pub const UNSTAGED: &str = "trajectories";
/// Config name of the packed training rows.
pub const PACKED: &str = "packed";

/// One config's files, as the card and the front matter describe them.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigFiles {
    pub config: String,
    /// The `stage` value of its rows (trajectory configs) — `None` for unstaged and packed.
    pub stage: Option<String>,
    pub packed: bool,
    pub files: Vec<DataFile>,
    pub rows: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// Uncompressed size of the row groups (the card's `num_bytes`).
    pub uncompressed_bytes: u64,
    /// `dataset_info.features` in the Hub's YAML list form.
    pub features: serde_json::Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct DataFile {
    /// Relative to the dataset root.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
}

/// Writes every config under `root/data/` and describes them, trajectory configs first.
pub fn write_configs(
    layout: &Layout,
    stats: &Stats,
    options: &PublishOptions,
    root: &Path,
) -> Result<Vec<ConfigFiles>, PublishError> {
    let input_bytes = total_bytes(&layout.trajectories)?;
    let stages: Vec<Option<String>> = stats
        .stages
        .iter()
        .map(|stage| (stage.name != NO_VALUE).then(|| stage.name.clone()))
        .collect();
    let names = config_names(&stages)?;
    let mut writers = Vec::new();
    for ((stage, value), config) in stats.stages.iter().zip(stages).zip(names) {
        let shards = shard_count(input_bytes, stage.count, stats.trajectories, options);
        writers.push(ConfigWriter::new(
            root,
            config,
            value,
            stage.count,
            shards,
            options,
        ));
    }
    copy_rows(&layout.trajectories, &mut writers)?;
    let mut configs = writers
        .into_iter()
        .map(ConfigWriter::finish)
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(packing) = stats.packing.as_ref().filter(|p| p.rows > 0) {
        let shards = shard_count(total_bytes(&layout.packed)?, 1, 1, options);
        let mut packed =
            ConfigWriter::new(root, PACKED.into(), None, packing.rows, shards, options);
        packed.packed = true;
        let mut writers = vec![packed];
        copy_rows(&layout.packed, &mut writers)?;
        configs.extend(
            writers
                .into_iter()
                .map(ConfigWriter::finish)
                .collect::<Result<Vec<_>, _>>()?,
        );
    }
    Ok(configs)
}

/// One config name per stage, refusing two stages that would share a folder: `ZERO` and `zero`
/// both become `zero`, and a stage called `trajectories` meets the unstaged rows; writing both
/// into one config would mix their rows under the first stage's counts.
fn config_names(stages: &[Option<String>]) -> Result<Vec<String>, PublishError> {
    let mut names: Vec<String> = Vec::with_capacity(stages.len());
    for stage in stages {
        let name = config_name(stage.as_deref())?;
        if let Some(j) = names.iter().position(|n| *n == name) {
            let said =
                |s: &Option<String>| s.as_ref().map_or("no stage".into(), |s| format!("{s:?}"));
            return Err(PublishError::Data(format!(
                "stages {} and {} would both publish as config `{name}` (config names are \
                 lower-case); give the rows distinct stage values (`trajforge ingest --stage \
                 zero|hero` sets them)",
                said(&stages[j]),
                said(stage)
            )));
        }
        names.push(name);
    }
    Ok(names)
}

/// `zero` for stage `ZERO`, `trajectories` for no stage; names are folder names and config
/// names on the Hub, so only `[a-z0-9_-]` pass.
fn config_name(stage: Option<&str>) -> Result<String, PublishError> {
    let Some(stage) = stage else {
        return Ok(UNSTAGED.into());
    };
    let name = stage.to_ascii_lowercase();
    let valid = !name.is_empty()
        && name != PACKED
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid {
        return Err(PublishError::Data(format!(
            "stage {stage:?} cannot name a dataset config (use letters, digits, _ or -, not \
             `{PACKED}`); set the stage at ingest with --stage zero|hero"
        )));
    }
    Ok(name)
}

fn shard_count(input_bytes: u64, rows: u64, total_rows: u64, options: &PublishOptions) -> u64 {
    let share = input_bytes as f64 * rows as f64 / total_rows.max(1) as f64;
    ((share / options.shard_bytes.max(1) as f64).ceil() as u64).clamp(1, rows.max(1))
}

fn total_bytes(files: &[PathBuf]) -> Result<u64, PublishError> {
    files.iter().try_fold(0, |sum, f| {
        Ok(sum
            + std::fs::metadata(f)
                .map_err(|e| PublishError::io(f, e))?
                .len())
    })
}

/// Streams `files` in order, giving each writer the rows of its stage.
fn copy_rows(files: &[PathBuf], writers: &mut [ConfigWriter]) -> Result<(), PublishError> {
    for path in files {
        let file = File::open(path).map_err(|e| PublishError::io(path, e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.with_batch_size(256).build())
            .map_err(|e| PublishError::Data(format!("{}: {e}", path.display())))?;
        for batch in reader {
            let batch =
                batch.map_err(|e| PublishError::Data(format!("{}: {e}", path.display())))?;
            route(&batch, writers, path)?;
        }
    }
    Ok(())
}

fn route(
    batch: &RecordBatch,
    writers: &mut [ConfigWriter],
    path: &Path,
) -> Result<(), PublishError> {
    if let [only] = writers
        && (only.packed || only.stage.is_none() && !has_stage(batch))
    {
        return only.write(batch);
    }
    let stage = batch
        .column_by_name("stage")
        .ok_or_else(|| PublishError::Data(format!("{}: no `stage` column", path.display())))?;
    let stage = cast(stage, &DataType::Utf8)
        .map_err(|e| PublishError::Data(format!("{}: stage: {e}", path.display())))?;
    let stage = stage
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| PublishError::Data(format!("{}: stage is not text", path.display())))?;
    for writer in writers.iter_mut() {
        let mask: BooleanArray = (0..stage.len())
            .map(|i| {
                let value = (!stage.is_null(i)).then(|| stage.value(i));
                Some(value == writer.stage.as_deref())
            })
            .collect();
        let rows = filter_record_batch(batch, &mask)
            .map_err(|e| PublishError::Data(format!("{}: {e}", path.display())))?;
        if rows.num_rows() > 0 {
            writer.write(&rows)?;
        }
    }
    Ok(())
}

fn has_stage(batch: &RecordBatch) -> bool {
    batch
        .column_by_name("stage")
        .is_some_and(|c| c.null_count() < c.len())
}

/// Writes one config's rows into its fixed number of files.
struct ConfigWriter {
    dir: PathBuf,
    root: PathBuf,
    config: String,
    stage: Option<String>,
    packed: bool,
    shards: u64,
    rows_per_file: u64,
    options: PartOptions,
    open: Option<ParquetFile>,
    schema: Option<SchemaRef>,
    files: Vec<DataFile>,
}

impl ConfigWriter {
    fn new(
        root: &Path,
        config: String,
        stage: Option<String>,
        rows: u64,
        shards: u64,
        options: &PublishOptions,
    ) -> ConfigWriter {
        // Even files: 16 rows asked into 5 files take 4 per file, hence 4 files.
        let rows_per_file = rows.div_ceil(shards.max(1)).max(1);
        let shards = rows.div_ceil(rows_per_file).max(1);
        ConfigWriter {
            dir: root.join("data").join(&config),
            root: root.to_path_buf(),
            config,
            stage,
            packed: false,
            shards,
            rows_per_file,
            options: PartOptions {
                row_group_bytes: options.row_group_bytes,
                row_group_rows: options.row_group_rows,
                ..PartOptions::default()
            },
            open: None,
            schema: None,
            files: Vec::new(),
        }
    }

    fn file_path(&self) -> PathBuf {
        let index = self.files.len();
        self.dir
            .join(format!("train-{index:05}-of-{:05}.parquet", self.shards))
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), PublishError> {
        self.schema.get_or_insert_with(|| batch.schema());
        let mut offset = 0;
        while offset < batch.num_rows() {
            if self.open.is_none() {
                let path = self.file_path();
                self.open = Some(ParquetFile::create(&path, batch.schema(), &self.options)?);
            }
            let Some(file) = self.open.as_mut() else {
                continue;
            };
            let room = (self.rows_per_file - file.rows() as u64) as usize;
            let take = room.min(batch.num_rows() - offset);
            file.write(&batch.slice(offset, take))?;
            offset += take;
            if file.rows() as u64 >= self.rows_per_file {
                self.close()?;
            }
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), PublishError> {
        let Some(file) = self.open.take() else {
            return Ok(());
        };
        let path = self.file_path();
        let rows = file.rows() as u64;
        let bytes = file.finish()?;
        let relative = path.strip_prefix(&self.root).unwrap_or(&path);
        self.files.push(DataFile {
            path: relative.to_string_lossy().into_owned(),
            rows,
            bytes,
        });
        Ok(())
    }

    fn finish(mut self) -> Result<ConfigFiles, PublishError> {
        self.close()?;
        let schema = self.schema.clone().ok_or_else(|| {
            PublishError::Data(format!("config {} received no rows", self.config))
        })?;
        if self.files.len() as u64 != self.shards {
            // Rows per file are fixed up front, so this only happens when the row count the
            // statistics gave differs from the rows read.
            return Err(PublishError::Data(format!(
                "config {}: wrote {} files, expected {}; the run's files changed while publishing",
                self.config,
                self.files.len(),
                self.shards
            )));
        }
        let mut uncompressed_bytes = 0;
        for f in &self.files {
            uncompressed_bytes += uncompressed_size(&self.root.join(&f.path))?;
        }
        Ok(ConfigFiles {
            features: features::yaml_features(schema.fields())?,
            rows: self.files.iter().map(|f| f.rows).sum(),
            bytes: self.files.iter().map(|f| f.bytes).sum(),
            uncompressed_bytes,
            config: self.config,
            stage: self.stage,
            packed: self.packed,
            files: self.files,
        })
    }
}

fn uncompressed_size(path: &Path) -> Result<u64, PublishError> {
    let file = File::open(path).map_err(|e| PublishError::io(path, e))?;
    let reader = SerializedFileReader::new(file)
        .map_err(|e| PublishError::Data(format!("{}: {e}", path.display())))?;
    Ok(reader
        .metadata()
        .row_groups()
        .iter()
        .map(|rg| rg.total_byte_size().max(0) as u64)
        .sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stages(names: &[Option<&str>]) -> Vec<Option<String>> {
        names.iter().map(|s| s.map(String::from)).collect()
    }

    #[test]
    fn stages_map_to_lower_case_configs() {
        let names = config_names(&stages(&[Some("ZERO"), Some("hero"), None])).expect("valid");
        assert_eq!(names, ["zero", "hero", UNSTAGED]);
    }

    #[test]
    fn stages_differing_in_case_are_refused() {
        let err = config_names(&stages(&[Some("ZERO"), Some("hero"), Some("zero")]))
            .expect_err("ZERO and zero share a folder")
            .to_string();
        assert!(err.contains(r#""ZERO" and "zero""#), "{err}");
        assert!(err.contains("config `zero`"), "{err}");
    }

    #[test]
    fn a_stage_named_like_the_unstaged_config_is_refused() {
        let err = config_names(&stages(&[None, Some("Trajectories")]))
            .expect_err("collides with the unstaged rows")
            .to_string();
        assert!(err.contains(r#"no stage and "Trajectories""#), "{err}");
    }

    #[test]
    fn packed_and_odd_characters_cannot_name_a_stage_config() {
        assert!(config_names(&stages(&[Some("Packed")])).is_err());
        assert!(config_names(&stages(&[Some("zero stage")])).is_err());
        assert!(config_names(&stages(&[Some("")])).is_err());
    }
}
