//! `trajforge inspect PATH`: schema, row count, per-column summary, and one trajectory printed.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::kernels::{cast::cast, length::length};
use arrow::datatypes::{DataType, Float64Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use console::style;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;
use trajforge_schema::{Trajectory, batch};

use crate::Global;
use crate::progress::bar;

/// Summarise a Parquet file or dataset directory and pretty-print one trajectory.
///
/// PATH is a .parquet file, a directory of them, or an ingest/run output directory (its
/// trajectories/ folder is used). Roles are coloured when stdout is a terminal. Tokenized and
/// packed files (OUT/tokenized/, OUT/shards/) show the row decoded with its supervised spans
/// highlighted.
#[derive(Debug, clap::Args)]
pub struct Args {
    path: PathBuf,
    /// Which row to print (0-based, across files in name order).
    #[arg(long, default_value_t = 0, value_name = "N")]
    row: u64,
    /// Characters of each message to show (0 = all).
    #[arg(long, default_value_t = 800, value_name = "N")]
    max_chars: usize,
    /// Tokenizer folder to decode tokenized or packed rows with (default: the bundled
    /// Qwen2.5-Coder one).
    #[arg(long, value_name = "DIR")]
    tokenizer: Option<PathBuf>,
}

/// Running statistics of one column; lists and strings are measured by length.
#[derive(Debug, Default, Clone, Serialize)]
struct ColumnSummary {
    name: String,
    data_type: String,
    nulls: u64,
    /// What `min`/`mean`/`max` measure: `value`, `length` (strings: bytes, lists: items) or `true`.
    measure: Option<&'static str>,
    min: Option<f64>,
    max: Option<f64>,
    mean: Option<f64>,
    #[serde(skip)]
    sum: f64,
    #[serde(skip)]
    count: u64,
}

impl ColumnSummary {
    fn add(&mut self, column: &ArrayRef) -> Result<()> {
        self.nulls += column.null_count() as u64;
        let (measure, values) = match column.data_type() {
            DataType::Utf8
            | DataType::LargeUtf8
            | DataType::List(_)
            | DataType::LargeList(_)
            | DataType::Binary
            | DataType::LargeBinary => ("length", cast(&length(column)?, &DataType::Float64)?),
            DataType::Boolean => ("true", cast(column, &DataType::Float64)?),
            t if t.is_numeric() => ("value", cast(column, &DataType::Float64)?),
            _ => return Ok(()),
        };
        self.measure = Some(measure);
        for v in values.as_primitive::<Float64Type>().iter().flatten() {
            self.min = Some(self.min.map_or(v, |m| m.min(v)));
            self.max = Some(self.max.map_or(v, |m| m.max(v)));
            self.sum += v;
            self.count += 1;
        }
        self.mean = (self.count > 0).then(|| self.sum / self.count as f64);
        Ok(())
    }
}

fn parquet_files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let dir = if path.join("trajectories").is_dir() {
        path.join("trajectories")
    } else {
        path.to_path_buf()
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{} holds no .parquet files", dir.display());
    }
    Ok(files)
}

pub fn run(args: Args, global: Global) -> Result<()> {
    let files = parquet_files(&args.path)?;
    let mut schema: Option<SchemaRef> = None;
    let mut columns: Vec<ColumnSummary> = Vec::new();
    let mut rows = 0u64;
    let mut picked: Option<RecordBatch> = None;
    // Footers first: the total row count drives the progress bar of the full scan.
    let mut readers = Vec::with_capacity(files.len());
    for file in &files {
        let open = File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(open)
            .with_context(|| format!("{} is not a readable Parquet file", file.display()))?;
        let total = builder.metadata().file_metadata().num_rows().max(0) as u64;
        let reader = builder
            .with_batch_size(256)
            .build()
            .with_context(|| format!("{} is not a readable Parquet file", file.display()))?;
        readers.push((file, reader, total));
    }
    let total: u64 = readers.iter().map(|(_, _, n)| n).sum();
    let pb = bar(
        global,
        total,
        "{spinner} inspect [{bar:30}] {pos}/{len} rows {per_sec}",
    );
    for (file, reader, _) in readers {
        for batch in reader {
            let batch = batch.with_context(|| format!("{}: unreadable data", file.display()))?;
            let s = schema.get_or_insert_with(|| batch.schema());
            if s.fields() != batch.schema().fields() {
                bail!(
                    "{} has a different schema from {}",
                    file.display(),
                    files[0].display()
                );
            }
            if columns.is_empty() {
                columns = s
                    .fields()
                    .iter()
                    .map(|f| ColumnSummary {
                        name: f.name().clone(),
                        data_type: short_type(f.data_type()),
                        ..Default::default()
                    })
                    .collect();
            }
            for (summary, column) in columns.iter_mut().zip(batch.columns()) {
                summary.add(column)?;
            }
            let n = batch.num_rows() as u64;
            if picked.is_none() && args.row < rows + n {
                picked = Some(batch.slice((args.row - rows) as usize, 1));
            }
            rows += n;
            pb.set_position(rows);
        }
    }
    pb.finish_and_clear();
    if global.json {
        let summary = serde_json::json!({ "command": "inspect", "files": files.len(), "rows": rows, "columns": columns });
        writeln!(std::io::stdout(), "{summary}")?;
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    print_summary(&mut out, &files, rows, &columns)?;
    match picked {
        Some(b) if super::inspect_tokens::is_token_layout(&b) => {
            writeln!(out, "\n{} {}", style("row").bold(), args.row)?;
            super::inspect_tokens::print_token_row(
                &mut out,
                &b,
                args.tokenizer.as_deref(),
                args.max_chars,
            )?
        }
        Some(b) => print_row(&mut out, &b, args.row, args.max_chars)?,
        None => writeln!(
            out,
            "\n(no row {} to show: the dataset has {rows} rows)",
            args.row
        )?,
    }
    out.flush()?;
    Ok(())
}

fn short_type(t: &DataType) -> String {
    match t {
        DataType::List(f) => format!("List<{}>", short_type(f.data_type())),
        DataType::Struct(fields) => format!(
            "Struct<{}>",
            fields
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

fn print_summary(
    out: &mut dyn Write,
    files: &[PathBuf],
    rows: u64,
    columns: &[ColumnSummary],
) -> std::io::Result<()> {
    writeln!(
        out,
        "{} {} rows in {} file(s)",
        style("dataset").bold(),
        rows,
        files.len()
    )?;
    writeln!(
        out,
        "{:<22} {:<44} {:>8} {:>7} {:>12} {:>12} {:>12}",
        "column", "type", "nulls", "of", "min", "mean", "max"
    )?;
    for c in columns {
        let num = |v: Option<f64>| {
            v.map_or("".to_string(), |v| {
                if v.fract() == 0.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.2}")
                }
            })
        };
        let mut ty = c.data_type.clone();
        if ty.len() > 44 {
            ty.truncate(41);
            ty.push_str("...");
        }
        writeln!(
            out,
            "{:<22} {:<44} {:>8} {:>7} {:>12} {:>12} {:>12}",
            c.name,
            ty,
            c.nulls,
            c.measure.unwrap_or(""),
            num(c.min),
            num(c.mean),
            num(c.max)
        )?;
    }
    Ok(())
}

fn print_row(out: &mut dyn Write, b: &RecordBatch, index: u64, max_chars: usize) -> Result<()> {
    writeln!(out, "\n{} {index}", style("row").bold())?;
    let canonical = b.schema().fields() == trajforge_schema::arrow_schema().fields();
    if !canonical {
        let mut buf = Vec::new();
        let mut writer = arrow::json::ArrayWriter::new(&mut buf);
        writer.write(b)?;
        writer.finish()?;
        let value: serde_json::Value = serde_json::from_slice(&buf)?;
        writeln!(
            out,
            "{}",
            clip(
                &serde_json::to_string_pretty(&value)?,
                max_chars.saturating_mul(20)
            )
        )?;
        return Ok(());
    }
    let rows = batch::from_record_batch(b)?;
    if let Some(t) = rows.first() {
        print_trajectory(out, t, max_chars)?;
    }
    Ok(())
}

pub(crate) fn clip(text: &str, max_chars: usize) -> String {
    if max_chars == 0 || text.chars().count() <= max_chars {
        return text.to_string();
    }
    let cut: String = text.chars().take(max_chars).collect();
    format!("{cut}… [{} more bytes]", text.len() - cut.len())
}

fn print_trajectory(out: &mut dyn Write, t: &Trajectory, max_chars: usize) -> std::io::Result<()> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    writeln!(out, "trajectory_id  {}", t.trajectory_id)?;
    writeln!(
        out,
        "instance_id    {}  ({})",
        opt(&t.instance_id),
        opt(&t.instance_key)
    )?;
    writeln!(
        out,
        "source         {} via {} (stage {}, scaffold {})",
        opt(&t.source_dataset),
        t.source_format,
        t.stage.map_or("-", |s| s.as_str()),
        opt(&t.scaffold)
    )?;
    writeln!(
        out,
        "turns          {} messages, {} assistant turns, {} tool calls ({}), {} content bytes",
        t.num_messages,
        t.num_assistant_turns,
        t.num_tool_calls,
        t.tool_names.join(", "),
        t.content_bytes
    )?;
    writeln!(
        out,
        "patch          {} file(s) +{} -{}: {}",
        t.patch_files.len(),
        t.patch_added_lines,
        t.patch_removed_lines,
        t.patch_files.join(", ")
    )?;
    for (i, m) in t.messages.iter().enumerate() {
        let label = format!("[{i}] {}", m.role);
        let label = match m.role.as_str() {
            "system" | "developer" => style(label).magenta(),
            "user" => style(label).green(),
            "assistant" => style(label).cyan(),
            _ => style(label).yellow(),
        }
        .bold();
        let extra = m
            .tool_call_id
            .as_ref()
            .map(|id| format!(" (answers {id})"))
            .unwrap_or_default();
        writeln!(out, "\n{label}{extra}")?;
        if let Some(r) = &m.reasoning_content {
            writeln!(out, "{}", style(clip(r, max_chars)).dim())?;
        }
        if let Some(c) = &m.content {
            writeln!(out, "{}", clip(c, max_chars))?;
        }
        for call in &m.tool_calls {
            writeln!(
                out,
                "{} {}({})",
                style("→").cyan(),
                style(&call.name).bold(),
                clip(&call.arguments, max_chars)
            )?;
        }
    }
    Ok(())
}
