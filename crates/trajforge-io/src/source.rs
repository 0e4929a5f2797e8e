//! Input discovery and record streaming with bounded memory.
//!
//! [`expand_inputs`] turns the command line's files, directories and globs into a sorted,
//! de-duplicated file list. [`read_records`] streams one file's records to a callback: JSON
//! arrays element by element (never the whole array in memory), a single JSON object as one
//! record (`.traj`), JSONL line by line, Parquet in small batches converted to JSON rows. Damage
//! never aborts a run: a bad line, an array that stops early, a corrupt file each arrive as a
//! [`Event::Broken`] for the rejects table.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use arrow::json::LineDelimitedWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::de::{Deserializer as _, Error as _, SeqAccess, Visitor};
use serde_json::value::RawValue;
use xxhash_rust::xxh3::Xxh3;

use crate::IoError;
use crate::reject::{DataError, Location, RejectKind};

/// Rows per Parquet batch: trajectories are large (tens to hundreds of KB), keep batches small.
const PARQUET_BATCH_ROWS: usize = 64;

/// How a file's bytes are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Parquet,
    /// A JSON array of records, or one JSON object (a `.traj` file).
    Json,
    Jsonl,
}

/// Byte-level compression of a JSON or JSONL file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// One record as raw JSON text, with where it came from.
#[derive(Debug)]
pub struct RawRecord {
    pub location: Location,
    pub json: Box<RawValue>,
}

/// What [`read_records`] hands to its callback.
#[derive(Debug)]
pub enum Event {
    Record(RawRecord),
    /// Input that could not be turned into a record; `raw` is what was seen of it.
    Broken {
        location: Location,
        error: DataError,
        raw: String,
    },
}

/// Size and content hash of an input file, for the manifest.
#[derive(Debug, Clone)]
pub struct FileFingerprint {
    pub bytes: u64,
    /// xxh3-128 of the file's bytes as stored (before decompression), 32 hex digits.
    pub xxh3_128: String,
}

/// Expands files, directories (recursively) and glob patterns into a sorted list of files.
pub fn expand_inputs(inputs: &[String]) -> Result<Vec<PathBuf>, IoError> {
    let mut files = Vec::new();
    for input in inputs {
        if input.contains(['*', '?', '[']) {
            let paths = glob::glob(input)
                .map_err(|e| IoError::Config(format!("invalid glob pattern {input:?}: {e}")))?;
            let mut matched: Vec<PathBuf> = paths
                .filter_map(Result::ok)
                .filter(|p| p.is_file())
                .collect();
            if matched.is_empty() {
                return Err(IoError::Config(format!(
                    "no files match the input pattern {input:?}"
                )));
            }
            files.append(&mut matched);
            continue;
        }
        let path = PathBuf::from(input);
        if path.is_dir() {
            let before = files.len();
            walk_dir(&path, &mut files)?;
            if files.len() == before {
                return Err(IoError::Config(format!(
                    "input directory {} holds no .parquet, .json, .jsonl, .traj, .gz or .zst files",
                    path.display()
                )));
            }
        } else if path.is_file() {
            files.push(path);
        } else {
            return Err(IoError::Config(format!(
                "input {} does not exist",
                path.display()
            )));
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

fn walk_dir(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), IoError> {
    let entries = std::fs::read_dir(dir).map_err(|e| IoError::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| IoError::io(dir, e))?.path();
        if path.is_dir() {
            walk_dir(&path, out)?;
        } else if is_data_file(&path) {
            out.push(path);
        }
    }
    Ok(())
}

fn is_data_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    [
        ".parquet", ".json", ".jsonl", ".ndjson", ".traj", ".gz", ".zst",
    ]
    .iter()
    .any(|ext| name.ends_with(ext))
        && !name.ends_with(".truth.parquet")
}

/// Decides container and compression from the file name, sniffing the first bytes when the
/// name says nothing.
pub fn classify(path: &Path) -> Result<(Container, Compression), IoError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let (stem, compression) = if let Some(s) = name.strip_suffix(".gz") {
        (s, Compression::Gzip)
    } else if let Some(s) = name.strip_suffix(".zst") {
        (s, Compression::Zstd)
    } else {
        (name.as_str(), Compression::None)
    };
    let container = if stem.ends_with(".parquet") {
        Container::Parquet
    } else if stem.ends_with(".jsonl") || stem.ends_with(".ndjson") {
        Container::Jsonl
    } else if stem.ends_with(".json") || stem.ends_with(".traj") {
        Container::Json
    } else {
        sniff(path)?
    };
    if container == Container::Parquet && compression != Compression::None {
        return Err(IoError::Config(format!(
            "{}: compressed Parquet files are not supported; Parquet compresses its own pages",
            path.display()
        )));
    }
    Ok((container, compression))
}

fn sniff(path: &Path) -> Result<Container, IoError> {
    let mut head = [0u8; 4];
    let n = File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| IoError::io(path, e))?;
    Ok(if &head[..n] == b"PAR1" {
        Container::Parquet
    } else {
        Container::Json
    })
}

/// Streams every record of `path` to `sink`, and returns the file's fingerprint. `sink` errors
/// (a failed write downstream) stop the read and are returned as they are.
pub fn read_records(
    path: &Path,
    on_bytes: &(dyn Fn(u64) + Sync),
    sink: &mut dyn FnMut(Event) -> Result<(), IoError>,
) -> Result<FileFingerprint, IoError> {
    let (container, compression) = classify(path)?;
    match container {
        Container::Parquet => {
            read_parquet(path, sink)?;
            let fingerprint = fingerprint_file(path)?;
            on_bytes(fingerprint.bytes);
            Ok(fingerprint)
        }
        Container::Json | Container::Jsonl => {
            let file = File::open(path).map_err(|e| IoError::io(path, e))?;
            let mut hashing = HashingReader {
                inner: file,
                hasher: Xxh3::new(),
                bytes: 0,
                on_bytes,
            };
            {
                let reader = decompress(&mut hashing, compression);
                let mut reader = BufReader::with_capacity(1 << 20, reader);
                match container {
                    Container::Jsonl => read_jsonl(&mut reader, sink)?,
                    _ => read_json(&mut reader, sink)?,
                }
            }
            // Hash whatever the parser did not need to read (after a broken array, say).
            io::copy(&mut hashing, &mut io::sink()).map_err(|e| IoError::io(path, e))?;
            Ok(FileFingerprint {
                bytes: hashing.bytes,
                xxh3_128: format!("{:032x}", hashing.hasher.digest128()),
            })
        }
    }
}

fn decompress<'a, R: Read + 'a>(inner: R, compression: Compression) -> Box<dyn Read + 'a> {
    match compression {
        Compression::None => Box::new(inner),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(inner)),
        Compression::Zstd => match zstd::stream::read::Decoder::new(inner) {
            Ok(d) => Box::new(d),
            Err(e) => Box::new(FailingReader(Some(e))),
        },
    }
}

struct FailingReader(Option<io::Error>);

impl Read for FailingReader {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(self
            .0
            .take()
            .unwrap_or_else(|| io::Error::other("decoder failed")))
    }
}

/// Hashes and counts the bytes that pass through it.
struct HashingReader<'a, R> {
    inner: R,
    hasher: Xxh3,
    bytes: u64,
    on_bytes: &'a (dyn Fn(u64) + Sync),
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        (self.on_bytes)(n as u64);
        Ok(n)
    }
}

/// What a `.parquet` input holds, judged from its footer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParquetKind {
    /// Canonical trajectories (every column of the canonical schema), with its row count.
    Canonical(u64),
    /// A rejects table written by trajforge.
    Rejects,
    /// Anything else (a raw published dataset, or not readable as Parquet).
    Other,
}

/// Input files sorted into canonical Parquet, raw inputs (for `ingest`) and skipped files.
#[derive(Debug, Clone, Default)]
pub struct ClassifiedInputs {
    /// Canonical Parquet files and their row counts (from the footer read to classify them).
    pub canonical: Vec<(PathBuf, u64)>,
    pub raw: Vec<PathBuf>,
    /// Files left out, with why (rejects tables written by trajforge).
    pub skipped: Vec<String>,
}

/// Expands `inputs` (files, folders, globs) and sorts the files by [`parquet_kind`].
pub fn classify_inputs(inputs: &[String]) -> Result<ClassifiedInputs, IoError> {
    let mut out = ClassifiedInputs::default();
    for f in expand_inputs(inputs)? {
        match parquet_kind(&f) {
            ParquetKind::Canonical(rows) => out.canonical.push((f, rows)),
            ParquetKind::Rejects => out
                .skipped
                .push(format!("{} (a rejects table)", f.display())),
            ParquetKind::Other => out.raw.push(f),
        }
    }
    Ok(out)
}

/// Reads the footer of `path` (a `.parquet` file) to tell canonical trajectories and rejects
/// tables from raw inputs; anything else, or a non-Parquet name, is [`ParquetKind::Other`].
pub fn parquet_kind(path: &Path) -> ParquetKind {
    if path.extension().is_none_or(|e| e != "parquet") {
        return ParquetKind::Other;
    }
    let footer = File::open(path)
        .ok()
        .and_then(|h| ParquetRecordBatchReaderBuilder::try_new(h).ok())
        .map(|b| (b.schema().clone(), b.metadata().file_metadata().num_rows()));
    let Some((schema, rows)) = footer else {
        return ParquetKind::Other;
    };
    let has_all = |want: &arrow::datatypes::Schema| {
        want.fields()
            .iter()
            .all(|f| schema.field_with_name(f.name()).is_ok())
    };
    if has_all(&trajforge_schema::arrow_schema()) {
        ParquetKind::Canonical(rows.max(0) as u64)
    } else if has_all(&crate::reject::rejects_schema()) {
        ParquetKind::Rejects
    } else {
        ParquetKind::Other
    }
}

/// xxh3-128 of a whole file.
pub fn fingerprint_file(path: &Path) -> Result<FileFingerprint, IoError> {
    let mut file = File::open(path).map_err(|e| IoError::io(path, e))?;
    let mut hasher = Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| IoError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok(FileFingerprint {
        bytes,
        xxh3_128: format!("{:032x}", hasher.digest128()),
    })
}

fn broken(location: Location, kind: RejectKind, message: String) -> Event {
    Event::Broken {
        location,
        error: DataError::new(kind, message),
        raw: String::new(),
    }
}

fn io_kind(e: &io::Error) -> RejectKind {
    if e.kind() == io::ErrorKind::InvalidData {
        RejectKind::InvalidUtf8
    } else {
        RejectKind::CorruptFile
    }
}

fn read_jsonl(
    reader: &mut dyn BufRead,
    sink: &mut dyn FnMut(Event) -> Result<(), IoError>,
) -> Result<(), IoError> {
    let mut line = Vec::new();
    let mut line_no = 0u64;
    let mut saw_content = false;
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                let msg = format!("cannot read past line {line_no}: {e}");
                return sink(broken(
                    Location::Line(line_no + 1),
                    RejectKind::CorruptFile,
                    msg,
                ));
            }
        }
        line_no += 1;
        let text = match std::str::from_utf8(&line) {
            Ok(t) => t,
            Err(e) => {
                let raw = String::from_utf8_lossy(&line).into_owned();
                let error = DataError::new(
                    RejectKind::InvalidUtf8,
                    format!("line is not valid UTF-8: {e}"),
                );
                sink(Event::Broken {
                    location: Location::Line(line_no),
                    error,
                    raw,
                })?;
                saw_content = true;
                continue;
            }
        };
        if text.trim().is_empty() {
            continue;
        }
        saw_content = true;
        let event = match serde_json::from_str::<Box<RawValue>>(text.trim_end()) {
            Ok(json) => Event::Record(RawRecord {
                location: Location::Line(line_no),
                json,
            }),
            Err(e) => {
                let kind = if e.is_eof() {
                    RejectKind::Truncated
                } else {
                    RejectKind::InvalidJson
                };
                let error = DataError::new(kind, format!("line is not a JSON value: {e}"));
                Event::Broken {
                    location: Location::Line(line_no),
                    error,
                    raw: text.to_string(),
                }
            }
        };
        sink(event)?;
    }
    if !saw_content {
        sink(broken(
            Location::File,
            RejectKind::EmptyFile,
            "file is empty: no JSON lines".into(),
        ))?;
    }
    Ok(())
}

fn read_json(
    reader: &mut dyn BufRead,
    sink: &mut dyn FnMut(Event) -> Result<(), IoError>,
) -> Result<(), IoError> {
    let first = loop {
        let buf = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) => {
                return sink(broken(
                    Location::File,
                    io_kind(&e),
                    format!("cannot read file: {e}"),
                ));
            }
        };
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => {
                let byte = buf[i];
                reader.consume(i);
                break Some(byte);
            }
            None if buf.is_empty() => break None,
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    };
    match first {
        None => sink(broken(
            Location::File,
            RejectKind::EmptyFile,
            "file is empty".into(),
        )),
        Some(b'[') => read_json_array(reader, sink),
        Some(_) => {
            let mut de = serde_json::Deserializer::from_reader(reader);
            let parsed = <Box<RawValue> as serde::Deserialize>::deserialize(&mut de)
                .and_then(|json| de.end().map(|_| json));
            match parsed {
                Ok(json) => sink(Event::Record(RawRecord {
                    location: Location::Row(0),
                    json,
                })),
                Err(e) => sink(json_error_event(Location::Row(0), 0, &e)),
            }
        }
    }
}

fn json_error_event(location: Location, records_before: u64, e: &serde_json::Error) -> Event {
    let kind = if e.is_eof() {
        RejectKind::Truncated
    } else if e.to_string().contains("unicode") || e.is_io() {
        RejectKind::InvalidUtf8
    } else {
        RejectKind::InvalidJson
    };
    let what = if e.is_eof() {
        "file ends in the middle of a record"
    } else {
        "malformed JSON"
    };
    let message = format!(
        "{what} after {records_before} complete record(s); the rest of the file is unreadable: {e}"
    );
    broken(location, kind, message)
}

/// Walks a top-level JSON array element by element.
fn read_json_array(
    reader: &mut dyn BufRead,
    sink: &mut dyn FnMut(Event) -> Result<(), IoError>,
) -> Result<(), IoError> {
    struct Elements<'a> {
        sink: &'a mut dyn FnMut(Event) -> Result<(), IoError>,
        count: u64,
        sink_error: Option<IoError>,
    }
    impl<'de> Visitor<'de> for &mut Elements<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON array of records")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(json) = seq.next_element::<Box<RawValue>>()? {
                let record = RawRecord {
                    location: Location::Row(self.count),
                    json,
                };
                self.count += 1;
                if let Err(e) = (self.sink)(Event::Record(record)) {
                    self.sink_error = Some(e);
                    return Err(A::Error::custom("output failed"));
                }
            }
            Ok(())
        }
    }
    let mut elements = Elements {
        sink,
        count: 0,
        sink_error: None,
    };
    // The '[' was only peeked at by the caller (consume stopped before it), so parse from it.
    let mut de = serde_json::Deserializer::from_reader(reader);
    let result = de.deserialize_seq(&mut elements).and_then(|_| de.end());
    if let Some(e) = elements.sink_error.take() {
        return Err(e);
    }
    match result {
        Ok(()) => Ok(()),
        Err(e) => {
            let event = json_error_event(Location::Row(elements.count), elements.count, &e);
            (elements.sink)(event)
        }
    }
}

fn read_parquet(
    path: &Path,
    sink: &mut dyn FnMut(Event) -> Result<(), IoError>,
) -> Result<(), IoError> {
    let file = File::open(path).map_err(|e| IoError::io(path, e))?;
    if file.metadata().map(|m| m.len()).unwrap_or(0) == 0 {
        return sink(broken(
            Location::File,
            RejectKind::EmptyFile,
            "file is empty".into(),
        ));
    }
    let reader = match ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.with_batch_size(PARQUET_BATCH_ROWS).build())
    {
        Ok(r) => r,
        Err(e) => {
            return sink(broken(
                Location::File,
                RejectKind::CorruptFile,
                format!("not a readable Parquet file: {e}"),
            ));
        }
    };
    let mut row = 0u64;
    for batch in reader {
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                let msg = format!("Parquet data unreadable from row {row} on: {e}");
                return sink(broken(Location::Row(row), RejectKind::CorruptFile, msg));
            }
        };
        let mut buf = Vec::new();
        let mut writer = LineDelimitedWriter::new(&mut buf);
        if let Err(e) = writer.write(&batch).and_then(|_| writer.finish()) {
            let msg = format!(
                "rows {row}..{} cannot be converted to JSON: {e}",
                row + batch.num_rows() as u64
            );
            return sink(broken(Location::Row(row), RejectKind::CorruptFile, msg));
        }
        drop(writer);
        for line in buf.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let event = match std::str::from_utf8(line)
                .map_err(|e| e.to_string())
                .and_then(|text| {
                    serde_json::from_str::<Box<RawValue>>(text).map_err(|e| e.to_string())
                }) {
                Ok(json) => Event::Record(RawRecord {
                    location: Location::Row(row),
                    json,
                }),
                Err(e) => broken(
                    Location::Row(row),
                    RejectKind::CorruptFile,
                    format!("row cannot be read: {e}"),
                ),
            };
            row += 1;
            sink(event)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events_of(bytes: &[u8], container: Container) -> Vec<Event> {
        let mut out = Vec::new();
        let mut reader = BufReader::new(bytes);
        let mut sink = |e: Event| {
            out.push(e);
            Ok(())
        };
        match container {
            Container::Jsonl => read_jsonl(&mut reader, &mut sink).expect("read"),
            _ => read_json(&mut reader, &mut sink).expect("read"),
        }
        out
    }

    fn summary(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                Event::Record(r) => format!("ok {:?} {}", r.location, r.json.get()),
                Event::Broken {
                    location, error, ..
                } => format!("bad {:?} {}", location, error.kind.as_str()),
            })
            .collect()
    }

    #[test]
    fn json_array_streams_elements_and_reports_truncation() {
        let ev = events_of(br#" [ {"a": 1}, {"b": [1,2]}, {"c": "#, Container::Json);
        assert_eq!(
            summary(&ev),
            vec![
                "ok Row(0) {\"a\": 1}",
                "ok Row(1) {\"b\": [1,2]}",
                "bad Row(2) truncated"
            ]
        );
    }

    #[test]
    fn single_object_is_one_record_and_trailing_garbage_is_caught() {
        assert_eq!(
            summary(&events_of(br#"{"x": 1}"#, Container::Json)),
            vec!["ok Row(0) {\"x\": 1}"]
        );
        assert_eq!(
            summary(&events_of(br#"{"x": 1} }"#, Container::Json)),
            vec!["bad Row(0) invalid_json"]
        );
    }

    #[test]
    fn jsonl_rejects_bad_lines_and_keeps_going() {
        let input = b"{\"a\":1}\n\nnot json\n{\"b\":\xff}\n{\"c\":2}";
        let got = summary(&events_of(input, Container::Jsonl));
        assert_eq!(
            got,
            vec![
                "ok Line(1) {\"a\":1}",
                "bad Line(3) invalid_json",
                "bad Line(4) invalid_utf8",
                "ok Line(5) {\"c\":2}"
            ]
        );
    }

    #[test]
    fn empty_inputs_are_reported() {
        assert_eq!(
            summary(&events_of(b"  \n", Container::Json)),
            vec!["bad File empty_file"]
        );
        assert_eq!(
            summary(&events_of(b"", Container::Jsonl)),
            vec!["bad File empty_file"]
        );
        assert!(events_of(b"[]", Container::Json).is_empty());
    }
}
