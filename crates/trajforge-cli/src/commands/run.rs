//! `trajforge run PIPELINE.yaml`.

use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget};
use trajforge_io::Progress;
use trajforge_pipeline::run::{RunProgress, StepCounts};
use trajforge_pipeline::spec::ExplainStep;
use trajforge_pipeline::{LoadOptions, RunOptions, load};

use crate::Global;
use crate::progress::{IngestBar, bar};

/// Run a declarative pipeline: filter, dedupe, cap and decontaminate trajectories.
///
/// Writes OUT/kept/ and OUT/filtered/ (zstd Parquet shards; filtered rows list every reason
/// code that applied), OUT/rejects/ (unreadable input records) and OUT/manifest.json (resolved
/// config and its hash, input fingerprints, rows in and out per step, rows per reason,
/// timings). Exits non-zero if read != kept + filtered + rejected.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline file (YAML, `version: 1`).
    #[arg(value_name = "PIPELINE")]
    pipeline: PathBuf,
    /// Input files, folders or globs; replaces the pipeline's `input` (repeatable).
    #[arg(long = "input", value_name = "PATH")]
    inputs: Vec<String>,
    /// Output folder; replaces the pipeline's `output`.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Override a value: `steps.near_dedupe.threshold=0.85`, `memory_limit=8GiB` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Finish an interrupted run in OUT without redoing completed stages.
    #[arg(long)]
    resume: bool,
    /// Print the resolved steps and the DataFusion plans, then exit without running.
    #[arg(long)]
    explain: bool,
}

/// One bar per stage (rows scanned) and, while the decide stage runs, one per step (rows
/// judged, trajectory MB/s).
struct Bars {
    global: Global,
    multi: MultiProgress,
    current: Mutex<Option<ProgressBar>>,
    steps: Mutex<Vec<ProgressBar>>,
    ingest: IngestBar,
}

const ROWS_TEMPLATE: &str = "{prefix:>24} [{bar:30}] {pos}/{len} rows {msg} ({elapsed})";

/// Shows rows and bytes over the bar's elapsed time as rows/s and MB/s.
fn set_rate(b: &ProgressBar, rows: u64, bytes: u64) {
    b.set_position(rows);
    let secs = b.elapsed().as_secs_f64().max(1e-3);
    b.set_message(format!(
        "{:.0} rows/s {:.1} MB/s",
        rows as f64 / secs,
        bytes as f64 / 1e6 / secs
    ));
}

impl RunProgress for Bars {
    fn stage(&self, name: &str, total_rows: u64, _total_bytes: u64) {
        if name == "ingest" {
            return;
        }
        let b = self
            .multi
            .insert(0, bar(self.global, total_rows, ROWS_TEMPLATE));
        b.set_prefix(name.to_string());
        if let Ok(mut c) = self.current.lock() {
            *c = Some(b);
        }
    }
    fn advance(&self, rows: u64, bytes: u64) {
        if let Ok(c) = self.current.lock()
            && let Some(b) = c.as_ref()
        {
            set_rate(b, rows, bytes);
        }
    }
    fn stage_done(&self) {
        if let Ok(mut c) = self.current.lock()
            && let Some(b) = c.take()
        {
            b.finish();
        }
        if let Ok(mut steps) = self.steps.lock() {
            for b in steps.drain(..) {
                b.finish();
            }
        }
        self.ingest.0.finish_and_clear();
    }
    fn steps(&self, names: &[String], total_rows: u64) {
        if let Ok(mut steps) = self.steps.lock() {
            *steps = names
                .iter()
                .map(|name| {
                    let b = self.multi.add(bar(self.global, total_rows, ROWS_TEMPLATE));
                    b.set_prefix(format!("  {name}"));
                    b
                })
                .collect();
        }
    }
    fn step_advance(&self, index: usize, rows: u64, bytes: u64) {
        if let Ok(steps) = self.steps.lock()
            && let Some(b) = steps.get(index)
        {
            set_rate(b, rows, bytes);
        }
    }
    fn ingest(&self) -> &dyn Progress {
        &self.ingest
    }
}

fn explain(pipeline: &trajforge_pipeline::Pipeline, threads: usize) -> Result<()> {
    println!(
        "pipeline {} (config {})",
        pipeline.file, pipeline.config_hash
    );
    for s in &pipeline.steps {
        let step = ExplainStep {
            index: s.ctx.index,
            name: &s.ctx.name,
            op: s.op,
            kind: s.kind,
            options: &s.options,
        };
        println!("  {}", serde_json::to_string(&step)?);
    }
    println!("  write: {}", serde_json::to_string(&pipeline.write)?);
    if let Some(t) = &pipeline.tokenize {
        println!("  tokenize: {}", serde_json::to_string(t)?);
    }
    if let Some(p) = &pipeline.pack {
        println!("  pack: {}", serde_json::to_string(p)?);
    }
    println!();
    for (name, plan) in trajforge_pipeline::engine::explain_plans(pipeline, threads)? {
        println!("== {name} plan ==\n{plan}");
    }
    Ok(())
}

fn print_summary(m: &trajforge_pipeline::RunManifest, out: &std::path::Path) {
    let l = &m.ledger;
    eprintln!(
        "read {} = kept {} + filtered {} + rejected {} → {}",
        l.read,
        l.kept,
        l.filtered,
        l.rejected,
        out.display()
    );
    for StepCounts {
        name,
        rows_in,
        rows_out,
        flagged,
        ..
    } in &m.steps
    {
        eprintln!("  {name:<24} {rows_in:>8} → {rows_out:>8}  (flagged {flagged})");
    }
    if let Some(t) = &m.tokenize {
        let filtered: Vec<String> = t.filtered.iter().map(|(r, n)| format!("{n} {r}")).collect();
        eprintln!(
            "  tokenize {:>24} → {:>8}  ({} tokens, {:.1}% supervised; dropped: {}{} rejected)",
            t.rows_in,
            t.samples,
            t.tokens,
            100.0 * t.supervised_fraction,
            filtered
                .iter()
                .map(|f| format!("{f}, "))
                .collect::<String>(),
            t.rejected
        );
        if let (Some(len), Some(fill)) = (t.pack_len, t.packing_fill) {
            eprintln!(
                "  pack {:>28} rows of {len} tokens, fill {:.2}%, {} shard(s) in {}",
                t.packed_rows,
                100.0 * fill,
                t.shards.len(),
                out.join("shards").display()
            );
        }
    }
}

pub fn run(args: Args, global: Global, threads: usize) -> Result<()> {
    let opts = LoadOptions {
        sets: args.sets,
        inputs: args.inputs,
        output: args.out,
    };
    let pipeline = load(&args.pipeline, &opts)?;
    if args.explain {
        return explain(&pipeline, threads);
    }
    let Some(out) = pipeline.output.clone() else {
        bail!("no output folder: give `output:` in the pipeline or --out DIR");
    };
    let command: Vec<String> = std::env::args().collect();
    let run_opts = RunOptions {
        out: out.clone(),
        threads,
        resume: args.resume,
        command: command.join(" "),
    };
    let multi = MultiProgress::new();
    if global.quiet || global.json {
        multi.set_draw_target(ProgressDrawTarget::hidden());
    }
    let bars = Bars {
        global,
        multi,
        current: Mutex::new(None),
        steps: Mutex::new(Vec::new()),
        ingest: IngestBar(bar(
            global,
            0,
            " ingest [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        )),
    };
    let manifest = trajforge_pipeline::run(&pipeline, &run_opts, &bars)
        .with_context(|| format!("pipeline {}", args.pipeline.display()))?;
    if global.json {
        let summary = serde_json::json!({
            "out": out.display().to_string(),
            "ledger": manifest.ledger,
            "reasons": manifest.reasons,
            "config_hash": manifest.config_hash,
            "seconds": manifest.timings.total_seconds,
            "already_complete": manifest.already_complete,
        });
        println!("{summary}");
    } else if manifest.already_complete {
        // Said even under --quiet: the user asked for work and none was done.
        eprintln!(
            "{} is a finished run: nothing to resume (run without --resume to start over)",
            out.display()
        );
        if !global.quiet {
            print_summary(&manifest, &out);
        }
    } else if !global.quiet {
        print_summary(&manifest, &out);
    }
    Ok(())
}
