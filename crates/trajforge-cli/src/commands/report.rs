//! `trajforge report RUN_OR_DATASET --out report.html`: statistics (polars) and charts
//! (plotters) of a run's output folder or a published dataset, as one self-contained HTML page.

use std::path::PathBuf;

use anyhow::{Context, Result};
use trajforge_report::{Layout, Stats, html};

use crate::Global;

/// Write an HTML report (length distributions, tool mix, repos and sources, filter funnel,
/// dedupe clusters, tokens and packing) of a run or a published dataset.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A run's output folder (kept/, filtered/, rejects/, shards/, manifest.json), an ingest
    /// output, a dataset written by `trajforge publish`, or a training folder (`trajforge
    /// train`'s output: loss and learning-rate curves).
    path: PathBuf,
    /// Where to write the page.
    #[arg(long, value_name = "FILE", default_value = "report.html")]
    out: PathBuf,
}

pub fn run(args: Args, global: Global) -> Result<()> {
    if trajforge_report::training::is_training_dir(&args.path) {
        return training(args, global);
    }
    let layout = Layout::discover(&args.path)?;
    let stats = Stats::compute(&layout)
        .with_context(|| format!("computing statistics of {}", args.path.display()))?;
    let title = args
        .path
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| args.path.display().to_string());
    let page = html::render(&title, &stats)?;
    trajforge_io::writer::write_atomic(&args.out, page.as_bytes())?;
    if global.json {
        let summary = serde_json::json!({
            "out": args.out,
            "bytes": page.len(),
            "threads": trajforge_report::stats::worker_threads(),
            "stats": stats,
        });
        println!("{summary}");
    } else if !global.quiet {
        eprintln!(
            "wrote {} ({} kept, {} filtered, {} rejected; {} KiB)",
            args.out.display(),
            stats.trajectories,
            stats.filtered,
            stats.rejected,
            page.len() / 1024
        );
    }
    Ok(())
}

/// The page of a training folder: loss and learning-rate curves.
fn training(args: Args, global: Global) -> Result<()> {
    let curves = trajforge_report::training::TrainingCurves::read(&args.path)?;
    let title = args.path.display().to_string();
    let page = html::render_training(&title, &curves)?;
    trajforge_io::writer::write_atomic(&args.out, page.as_bytes())?;
    let steps: usize = curves.stages.iter().map(|s| s.loss.len()).sum();
    if global.json {
        println!(
            "{}",
            serde_json::json!({ "command": "report", "ok": true, "out": args.out, "bytes": page.len(), "steps": steps })
        );
    } else if !global.quiet {
        eprintln!(
            "wrote {} ({} stages, {steps} steps)",
            args.out.display(),
            curves.stages.len()
        );
    }
    Ok(())
}
