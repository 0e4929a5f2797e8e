//! Query results as text or files: `table` (aligned, long cells cut, newlines shown as `⏎`),
//! `csv` (with a header), `json` (one object per line) and `parquet` (zstd, to a file only).
//! Results stream batch by batch from DataFusion to the output; files are written atomically.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::StreamExt;
use trajforge_io::writer::{AtomicFile, ParquetFile, PartOptions};

use crate::SqlError;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
    Parquet,
}

impl Format {
    pub fn parse(name: &str) -> Result<Format, SqlError> {
        match name {
            "table" => Ok(Format::Table),
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            "parquet" => Ok(Format::Parquet),
            other => Err(SqlError::Usage(format!(
                "unknown format `{other}` (table, csv, json or parquet)"
            ))),
        }
    }
}

/// Where text goes: standard output, or a file that appears only once the result is complete.
enum Dest {
    Stdout(std::io::BufWriter<std::io::Stdout>),
    File(AtomicFile),
}

impl Dest {
    fn open(path: Option<&Path>) -> Result<Dest, SqlError> {
        Ok(match path {
            Some(p) => Dest::File(AtomicFile::create(p).map_err(|e| io_failure(p, e))?),
            None => Dest::Stdout(std::io::BufWriter::new(std::io::stdout())),
        })
    }

    fn name(&self) -> PathBuf {
        match self {
            Dest::Stdout(_) => "<stdout>".into(),
            Dest::File(f) => f.temp_path().to_path_buf(),
        }
    }

    fn finish(self) -> Result<(), SqlError> {
        match self {
            Dest::Stdout(mut out) => out.flush().map_err(|e| SqlError::Io {
                path: "<stdout>".into(),
                source: e,
            }),
            Dest::File(f) => {
                let path = f.temp_path().to_path_buf();
                f.commit().map_err(|e| io_failure(&path, e))
            }
        }
    }
}

impl Write for Dest {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Dest::Stdout(out) => out.write(buf),
            Dest::File(f) => f.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Dest::Stdout(out) => out.flush(),
            Dest::File(f) => f.flush(),
        }
    }
}

fn io_failure(path: &Path, e: trajforge_io::IoError) -> SqlError {
    SqlError::Data {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

enum Sink {
    /// Aligned columns need every row's width first, so the table keeps its rows, each cell
    /// already cut to `max_cell` characters (bounded by rows × columns × `max_cell`).
    Table {
        out: Dest,
        schema: SchemaRef,
        cut: Vec<RecordBatch>,
        max_cell: usize,
    },
    Csv(arrow::csv::Writer<Dest>),
    Json(arrow::json::LineDelimitedWriter<Dest>),
    Parquet(ParquetFile),
}

/// A query result written batch by batch as DataFusion produces it, so `csv`, `json` and
/// `parquet` output of a result larger than memory streams through; files are written to a
/// temporary name and renamed when the result is complete.
pub struct ResultWriter {
    sink: Sink,
    schema: SchemaRef,
    rows: u64,
}

impl ResultWriter {
    /// Starts a result of `schema` in `format`, to `path` or (text formats only) standard output.
    pub fn create(
        schema: &SchemaRef,
        format: Format,
        path: Option<&Path>,
        max_cell: usize,
    ) -> Result<ResultWriter, SqlError> {
        let sink = match format {
            Format::Parquet => {
                let path = path.ok_or_else(|| {
                    SqlError::Usage(
                        "--format parquet writes a file: give --output FILE.parquet".into(),
                    )
                })?;
                Sink::Parquet(
                    ParquetFile::create(path, schema.clone(), &PartOptions::default())
                        .map_err(|e| io_failure(path, e))?,
                )
            }
            Format::Table => Sink::Table {
                out: Dest::open(path)?,
                schema: schema.clone(),
                cut: Vec::new(),
                max_cell,
            },
            Format::Csv => Sink::Csv(
                arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(Dest::open(path)?),
            ),
            Format::Json => Sink::Json(arrow::json::LineDelimitedWriter::new(Dest::open(path)?)),
        };
        Ok(ResultWriter {
            sink,
            schema: schema.clone(),
            rows: 0,
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), SqlError> {
        self.rows += batch.num_rows() as u64;
        match &mut self.sink {
            Sink::Table { cut, max_cell, .. } => cut.push(shorten(batch, *max_cell)?),
            Sink::Csv(w) => w.write(batch)?,
            Sink::Json(w) => w.write(batch)?,
            Sink::Parquet(f) => {
                let path = f.path().to_path_buf();
                f.write(batch).map_err(|e| io_failure(&path, e))?
            }
        }
        Ok(())
    }

    /// Completes the output (the table is printed now; a file is renamed into place) and returns
    /// the number of rows.
    pub fn finish(self) -> Result<u64, SqlError> {
        let rows = self.rows;
        match self.sink {
            Sink::Table {
                mut out,
                schema,
                cut,
                ..
            } => {
                let text = if cut.is_empty() {
                    let empty = RecordBatch::new_empty(text_schema(&schema));
                    arrow::util::pretty::pretty_format_batches(&[empty])?
                } else {
                    arrow::util::pretty::pretty_format_batches(&cut)?
                };
                let name = out.name();
                writeln!(out, "{text}\n{rows} row(s)").map_err(|e| SqlError::Io {
                    path: name,
                    source: e,
                })?;
                out.finish()?;
            }
            Sink::Csv(mut w) => {
                if rows == 0 {
                    // The header is written with the first batch: an empty result still has one.
                    w.write(&RecordBatch::new_empty(self.schema.clone()))?;
                }
                w.into_inner().finish()?;
            }
            Sink::Json(mut w) => {
                w.finish()?;
                w.into_inner().finish()?;
            }
            Sink::Parquet(f) => {
                let path = f.path().to_path_buf();
                f.finish().map_err(|e| io_failure(&path, e))?;
            }
        }
        Ok(rows)
    }
}

/// Runs `df` and streams its result into `out`; returns the number of rows.
pub async fn write_result(
    df: datafusion::dataframe::DataFrame,
    mut out: ResultWriter,
) -> Result<u64, SqlError> {
    let mut stream = df.execute_stream().await?;
    while let Some(batch) = stream.next().await {
        out.write(&batch?)?;
    }
    out.finish()
}

/// Runs `df` for its effects (a statement before the last), dropping its rows as they come.
pub async fn drain(df: datafusion::dataframe::DataFrame) -> Result<(), SqlError> {
    let mut stream = df.execute_stream().await?;
    while let Some(batch) = stream.next().await {
        batch?;
    }
    Ok(())
}

fn text_schema(schema: &SchemaRef) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ))
}

/// Every column rendered as text, cells cut to `max_cell` characters (0: no cut).
fn shorten(batch: &RecordBatch, max_cell: usize) -> Result<RecordBatch, SqlError> {
    let options = FormatOptions::default().with_null("NULL");
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for column in batch.columns() {
        let f = ArrayFormatter::try_new(column.as_ref(), &options)?;
        let mut b = StringBuilder::new();
        for i in 0..column.len() {
            let cell = f.value(i).to_string().replace('\n', "⏎");
            if max_cell > 0 && cell.chars().count() > max_cell {
                let kept: String = cell.chars().take(max_cell.saturating_sub(1)).collect();
                b.append_value(format!("{kept}…"));
            } else {
                b.append_value(cell);
            }
        }
        columns.push(Arc::new(b.finish()));
    }
    Ok(RecordBatch::try_new(text_schema(&batch.schema()), columns)?)
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, StringArray};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("text", DataType::Utf8, true),
        ]))
    }

    fn batch(from: i64, rows: i64) -> RecordBatch {
        let n = Int64Array::from_iter_values(from..from + rows);
        let text = StringArray::from_iter(
            (from..from + rows)
                .map(|i| (i % 7 != 0).then(|| format!("row {i}, \"quoted\"\nsecond line"))),
        );
        RecordBatch::try_new(schema(), vec![Arc::new(n), Arc::new(text)]).expect("batch")
    }

    fn stream_to(path: &Path, format: Format, batches: &[RecordBatch]) -> u64 {
        let mut out = ResultWriter::create(&schema(), format, Some(path), 0).expect("create");
        for b in batches {
            out.write(b).expect("write");
        }
        out.finish().expect("finish")
    }

    #[test]
    fn streamed_csv_and_json_equal_one_write_of_the_whole_result() {
        let dir = tempfile::tempdir().expect("temp dir");
        let batches: Vec<RecordBatch> = (0..5).map(|i| batch(i * 100, 100)).collect();
        let whole = arrow::compute::concat_batches(&schema(), &batches).expect("concat");
        for (format, name) in [(Format::Csv, "r.csv"), (Format::Json, "r.json")] {
            let path = dir.path().join(name);
            assert_eq!(stream_to(&path, format, &batches), 500);
            let mut expected = Vec::new();
            if format == Format::Csv {
                let mut w = arrow::csv::WriterBuilder::new().build(&mut expected);
                w.write(&whole).expect("csv");
            } else {
                let mut w = arrow::json::LineDelimitedWriter::new(&mut expected);
                w.write(&whole).expect("json");
                w.finish().expect("json");
            }
            assert_eq!(std::fs::read(&path).expect("read"), expected, "{name}");
        }
    }

    #[test]
    fn empty_results_keep_their_header_and_parquet_keeps_every_row() {
        let dir = tempfile::tempdir().expect("temp dir");
        let csv = dir.path().join("empty.csv");
        assert_eq!(stream_to(&csv, Format::Csv, &[]), 0);
        assert_eq!(std::fs::read_to_string(&csv).expect("read"), "n,text\n");
        let table = dir.path().join("empty.txt");
        stream_to(&table, Format::Table, &[]);
        let text = std::fs::read_to_string(&table).expect("read");
        assert!(
            text.contains("| n | text |") && text.ends_with("0 row(s)\n"),
            "{text}"
        );

        let parquet = dir.path().join("r.parquet");
        let batches: Vec<RecordBatch> = (0..3).map(|i| batch(i * 1000, 1000)).collect();
        assert_eq!(stream_to(&parquet, Format::Parquet, &batches), 3000);
        let file = std::fs::File::open(&parquet).expect("open");
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 4096)
            .expect("reader");
        let read: Vec<RecordBatch> = reader.collect::<Result<_, _>>().expect("read");
        let whole = arrow::compute::concat_batches(&schema(), &batches).expect("concat");
        assert_eq!(
            arrow::compute::concat_batches(&schema(), &read).expect("concat"),
            whole
        );
    }

    #[test]
    fn an_unfinished_result_leaves_no_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        for (format, name) in [(Format::Csv, "r.csv"), (Format::Parquet, "r.parquet")] {
            let path = dir.path().join(name);
            let mut out = ResultWriter::create(&schema(), format, Some(&path), 0).expect("create");
            out.write(&batch(0, 10)).expect("write");
            drop(out); // as when the query fails after its first batch
            assert!(!path.exists(), "{name}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0);
    }
}
