//! Query results as text or files: `table` (aligned, long cells cut, newlines shown as `⏎`),
//! `csv` (with a header), `json` (one object per line) and `parquet` (zstd, to a file only,
//! written atomically).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use trajforge_io::writer::{ParquetFile, PartOptions};

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

/// Writes `batches` (all of `schema`) to `out` in a text format.
pub fn write_text(
    out: &mut dyn Write,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    format: Format,
    max_cell: usize,
) -> Result<(), SqlError> {
    let io = |e: std::io::Error| SqlError::Io {
        path: "<stdout>".into(),
        source: e,
    };
    match format {
        Format::Table => {
            let cut: Vec<RecordBatch> = batches
                .iter()
                .map(|b| shorten(b, max_cell))
                .collect::<Result<_, _>>()?;
            let text = if cut.is_empty() {
                arrow::util::pretty::pretty_format_batches(&[RecordBatch::new_empty(text_schema(
                    schema,
                ))])?
            } else {
                arrow::util::pretty::pretty_format_batches(&cut)?
            };
            writeln!(out, "{text}").map_err(io)?;
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            writeln!(out, "{rows} row(s)").map_err(io)?;
        }
        Format::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(out);
            if batches.is_empty() {
                w.write(&RecordBatch::new_empty(schema.clone()))?;
            }
            for b in batches {
                w.write(b)?;
            }
        }
        Format::Json => {
            let mut w = arrow::json::LineDelimitedWriter::new(out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
        }
        Format::Parquet => {
            return Err(SqlError::Usage(
                "--format parquet writes a file: give --output FILE.parquet".into(),
            ));
        }
    }
    Ok(())
}

/// Writes `batches` as a zstd Parquet file at `path` (atomically, with trajforge-io's writer:
/// page statistics, row groups sized for readers).
pub fn write_parquet(
    path: &Path,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<u64, SqlError> {
    let fail = |e: trajforge_io::IoError| SqlError::Data {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut file =
        ParquetFile::create(path, schema.clone(), &PartOptions::default()).map_err(fail)?;
    for b in batches {
        file.write(b).map_err(fail)?;
    }
    file.finish().map_err(fail)
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
