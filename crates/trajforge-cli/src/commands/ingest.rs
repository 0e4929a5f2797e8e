//! `trajforge ingest INPUT... --out DIR`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use trajforge_io::{Format, IngestOptions, ingest};
use trajforge_schema::Stage;

use crate::Global;
use crate::progress::{IngestBar, bar};

/// Read trajectories in any supported format into canonical zstd Parquet.
///
/// Writes DIR/trajectories/part-NNNNN.parquet, DIR/rejects/ (one row per unusable record, with
/// file, row or line, error kind, message and a raw snippet) and DIR/manifest.json (inputs with
/// sizes and hashes; read = written + rejected). Exits 0 when the run completes, even with
/// rejects.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Input files, directories or glob patterns (.parquet, .json, .jsonl, .traj, .gz, .zst).
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<String>,
    /// Output directory.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Force a format instead of detecting it: nvidia_openhands, nebius_openhands, swe_smith,
    /// swe_agent, mini_swe_agent, swe_gym, openai_chat.
    #[arg(long, value_name = "F")]
    format: Option<String>,
    /// Recipe stage of these trajectories.
    #[arg(long, value_parser = ["zero", "hero"])]
    stage: Option<String>,
    /// Dataset name for the source_dataset column (default: the format's published dataset).
    #[arg(long, value_name = "NAME")]
    source: Option<String>,
    /// Rows per output part file.
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    rows_per_part: usize,
}

pub fn run(args: Args, global: Global) -> Result<()> {
    let format = match args.format.as_deref() {
        None => None,
        Some(name) => match Format::from_name(name) {
            Some(f) => Some(f),
            None => {
                let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
                bail!(
                    "unknown --format {name:?}; expected one of {}",
                    names.join(", ")
                );
            }
        },
    };
    if args.rows_per_part == 0 {
        bail!("--rows-per-part must be at least 1");
    }
    let mut opts = IngestOptions::new(args.inputs, args.out.clone());
    opts.format = format;
    opts.stage = args.stage.as_deref().map(|s| {
        if s == "hero" {
            Stage::Hero
        } else {
            Stage::Zero
        }
    });
    opts.source = args.source;
    opts.parts.rows_per_part = args.rows_per_part;
    opts.command = std::env::args().collect::<Vec<_>>().join(" ");
    let progress = IngestBar(bar(
        global,
        0,
        "{spinner} ingest [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
    ));
    let manifest = ingest(&opts, &progress)
        .with_context(|| format!("ingest into {} failed", args.out.display()))?;
    progress.0.finish_and_clear();
    let c = &manifest.counts;
    if global.json {
        let summary = serde_json::json!({
            "command": "ingest",
            "out": args.out.display().to_string(),
            "read": c.read, "written": c.written, "rejected": c.rejected,
            "rejected_by_kind": manifest.rejected_by_kind,
            "written_by_format": manifest.written_by_format,
            "seconds": manifest.timings.total_seconds,
        });
        println!("{summary}");
    } else if !global.quiet {
        eprintln!(
            "ingested {} records from {} file(s): {} written, {} rejected in {:.2}s -> {}",
            c.read,
            manifest.inputs.len(),
            c.written,
            c.rejected,
            manifest.timings.total_seconds,
            args.out.display()
        );
        for (kind, n) in &manifest.rejected_by_kind {
            eprintln!(
                "  rejected {n:>6} {kind} (see {}/rejects/)",
                args.out.display()
            );
        }
    }
    Ok(())
}
