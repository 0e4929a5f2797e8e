//! `trajforge ingest`: stream every input record through its format's reader into canonical
//! Parquet, rejects and a manifest.
//!
//! Records are parsed in chunks (bounded by bytes and count) in parallel with rayon, and results
//! are written in input order, so output bytes never depend on the thread count.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use trajforge_schema::{SCHEMA_VERSION, Stage, Trajectory, batch};

use crate::IoError;
use crate::formats::raw::RawObject;
use crate::formats::{Format, RecordCtx, parse_record};
use crate::manifest::{Counts, InputFile, Manifest, Timings};
use crate::reject::{DataError, Location, Reject, rejects_batch, rejects_schema};
use crate::source::{Event, RawRecord, expand_inputs, read_records};
use crate::writer::{PartOptions, PartWriter, write_atomic};

/// What to ingest and how.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub inputs: Vec<String>,
    pub out: PathBuf,
    /// Force a format instead of detecting it per file.
    pub format: Option<Format>,
    pub stage: Option<Stage>,
    /// Overrides `source_dataset`.
    pub source: Option<String>,
    pub parts: PartOptions,
    /// Raw JSON bytes parsed per parallel chunk (bounds memory together with `chunk_records`).
    pub chunk_bytes: usize,
    pub chunk_records: usize,
    /// The command line, recorded in the manifest.
    pub command: String,
}

impl IngestOptions {
    pub fn new(inputs: Vec<String>, out: PathBuf) -> IngestOptions {
        IngestOptions {
            inputs,
            out,
            format: None,
            stage: None,
            source: None,
            parts: PartOptions::default(),
            chunk_bytes: 64 << 20,
            chunk_records: 1024,
            command: String::new(),
        }
    }
}

/// Progress callbacks (the CLI draws bars with them; tests pass [`NoProgress`]).
pub trait Progress: Sync {
    fn start(&self, _total_bytes: u64) {}
    fn bytes_read(&self, _n: u64) {}
    fn rows(&self, _written: u64, _rejected: u64) {}
}

/// Progress that shows nothing.
#[derive(Debug)]
pub struct NoProgress;
impl Progress for NoProgress {}

struct Run<'a> {
    opts: &'a IngestOptions,
    progress: &'a dyn Progress,
    rows: PartWriter,
    rejects: PartWriter,
    counts: Counts,
    written_by_format: BTreeMap<String, u64>,
    rejected_by_kind: BTreeMap<String, u64>,
}

/// Runs an ingest and returns its manifest (also written to `OUT/manifest.json`).
pub fn ingest(opts: &IngestOptions, progress: &dyn Progress) -> Result<Manifest, IoError> {
    let started = Instant::now();
    let files = expand_inputs(&opts.inputs)?;
    let total_bytes = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    progress.start(total_bytes);
    std::fs::create_dir_all(&opts.out).map_err(|e| IoError::io(&opts.out, e))?;
    let mut run = Run {
        opts,
        progress,
        rows: PartWriter::create(
            &opts.out,
            "trajectories",
            trajforge_schema::arrow_schema(),
            opts.parts.clone(),
        )?,
        rejects: PartWriter::create(&opts.out, "rejects", rejects_schema(), opts.parts.clone())?,
        counts: Counts::default(),
        written_by_format: BTreeMap::new(),
        rejected_by_kind: BTreeMap::new(),
    };
    let mut inputs = Vec::with_capacity(files.len());
    for file in &files {
        inputs.push(run.ingest_file(file)?);
    }
    let Run {
        rows,
        rejects,
        counts,
        written_by_format,
        rejected_by_kind,
        ..
    } = run;
    let mut outputs = rows.finish()?;
    outputs.extend(rejects.finish()?);
    if !counts.balanced() {
        return Err(IoError::Internal(format!(
            "row accounting does not balance: read {} != written {} + rejected {}",
            counts.read, counts.written, counts.rejected
        )));
    }
    let seconds = started.elapsed().as_secs_f64();
    let manifest = Manifest {
        tool: "trajforge".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        schema_version: SCHEMA_VERSION,
        command: opts.command.clone(),
        threads: rayon::current_num_threads(),
        timings: Timings {
            total_seconds: seconds,
            input_bytes_per_second: total_bytes as f64 / seconds.max(1e-9),
            rows_per_second: counts.read as f64 / seconds.max(1e-9),
        },
        inputs,
        counts,
        written_by_format,
        rejected_by_kind,
        outputs,
    };
    let json =
        serde_json::to_vec_pretty(&manifest).map_err(|e| IoError::Internal(e.to_string()))?;
    write_atomic(&opts.out.join("manifest.json"), &json)?;
    Ok(manifest)
}

/// Records of one file waiting to be parsed together.
struct Chunk {
    records: Vec<RawRecord>,
    bytes: usize,
}

impl Run<'_> {
    fn ingest_file(&mut self, path: &Path) -> Result<InputFile, IoError> {
        let display = path.display().to_string();
        // Derived ids hash the parent folder and file name: stable when a dataset moves, distinct
        // for same-named files in different folders (`zero/train.jsonl`, `hero/train.jsonl`).
        let file_name: String = {
            let parts: Vec<&str> = path
                .iter()
                .rev()
                .take(2)
                .filter_map(|c| c.to_str())
                .collect();
            parts.into_iter().rev().collect::<Vec<_>>().join("/")
        };
        let before = self.counts.clone();
        let mut format = self.opts.format;
        let mut chunk = Chunk {
            records: Vec::new(),
            bytes: 0,
        };
        let progress = self.progress;
        let on_bytes = |n: u64| progress.bytes_read(n);
        let fingerprint = read_records(path, &on_bytes, &mut |event| match event {
            Event::Record(record) => {
                if format.is_none() {
                    format = RawObject::parse(&record.json, "")
                        .ok()
                        .as_ref()
                        .and_then(Format::detect);
                }
                chunk.bytes += record.json.get().len();
                chunk.records.push(record);
                if chunk.bytes >= self.opts.chunk_bytes
                    || chunk.records.len() >= self.opts.chunk_records
                {
                    self.flush(&mut chunk, format, &display, &file_name)?;
                }
                Ok(())
            }
            Event::Broken {
                location,
                error,
                raw,
            } => {
                // Keep rejects in file order: parse what came before the damage first.
                self.flush(&mut chunk, format, &display, &file_name)?;
                self.counts.read += 1;
                self.reject(vec![Reject::new(&display, location, error, &raw)])
            }
        })?;
        self.flush(&mut chunk, format, &display, &file_name)?;
        Ok(InputFile {
            path: display,
            bytes: fingerprint.bytes,
            xxh3_128: fingerprint.xxh3_128,
            format: format.map(|f| f.name().to_string()),
            read: self.counts.read - before.read,
            written: self.counts.written - before.written,
            rejected: self.counts.rejected - before.rejected,
        })
    }

    fn flush(
        &mut self,
        chunk: &mut Chunk,
        format: Option<Format>,
        file: &str,
        file_name: &str,
    ) -> Result<(), IoError> {
        if chunk.records.is_empty() {
            return Ok(());
        }
        let ctx = |location: Location| RecordCtx {
            file,
            file_name,
            location,
            stage: self.opts.stage,
            source: self.opts.source.as_deref(),
        };
        let results: Vec<Result<Trajectory, DataError>> = chunk
            .records
            .par_iter()
            .map(|r| parse_record(&r.json, format, &ctx(r.location)))
            .collect();
        let mut rows = Vec::with_capacity(results.len());
        let mut rejects = Vec::new();
        for (record, result) in chunk.records.iter().zip(results) {
            match result {
                Ok(t) => rows.push(t),
                Err(e) => rejects.push(Reject::new(file, record.location, e, record.json.get())),
            }
        }
        self.counts.read += chunk.records.len() as u64;
        chunk.records.clear();
        chunk.bytes = 0;
        if !rows.is_empty() {
            for t in &rows {
                *self
                    .written_by_format
                    .entry(t.source_format.clone())
                    .or_default() += 1;
            }
            self.counts.written += rows.len() as u64;
            let batch =
                batch::to_record_batch(&rows).map_err(|e| IoError::Internal(e.to_string()))?;
            self.rows.write(&batch)?;
        }
        self.reject(rejects)
    }

    fn reject(&mut self, rejects: Vec<Reject>) -> Result<(), IoError> {
        if !rejects.is_empty() {
            for r in &rejects {
                *self
                    .rejected_by_kind
                    .entry(r.error_kind.clone())
                    .or_default() += 1;
            }
            self.counts.rejected += rejects.len() as u64;
            self.rejects.write(&rejects_batch(&rejects)?)?;
        }
        self.progress
            .rows(self.counts.written, self.counts.rejected);
        Ok(())
    }
}
