//! `trajforge tokenize INPUT... --out DIR [--tokenizer DIR] [--max-tokens N]`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, bail};
use trajforge_io::source::classify_inputs;
use trajforge_io::{IngestOptions, ingest};
use trajforge_ops::operators::tokenize::{LengthPolicyName, LossTurns};
use trajforge_ops::{PackOptions, TokenizeOptions};
use trajforge_pipeline::tokenize_stage::{DROPPED_DIR, OUTPUT_DIRS, prepare, run_files_blocking};
use trajforge_tokenize::job::JobProgress;

use crate::Global;
use crate::progress::{IngestBar, bar};

/// Render, tokenize and loss-mask trajectories (one row per trajectory, for inspection and
/// parity checks), or pack them into training shards with --pack-len.
///
/// Inputs in a published format are ingested first (their rejects go to DIR/rejects/). Writes
/// DIR/tokenized/part-NNNNN.parquet (trajectory_id, input_ids, loss_mask, num_tokens,
/// num_supervised, dropped_exchanges) — or DIR/shards/shard-NNNNN.parquet with --pack-len —
/// DIR/tokenize_dropped/ (trajectory_id, reason, detail for every row not tokenized) and
/// DIR/manifest.json.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Input files, directories or globs: canonical Parquet or any format `ingest` reads.
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<String>,
    /// Output directory.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Hugging Face tokenizer folder (tokenizer.json + tokenizer_config.json); default: the
    /// bundled Qwen2.5-Coder tokenizer and chat template.
    #[arg(long, value_name = "DIR")]
    tokenizer: Option<PathBuf>,
    /// Longest sample kept, in tokens.
    #[arg(long, value_name = "N")]
    max_tokens: Option<u32>,
    /// What to do with longer samples.
    #[arg(long, default_value = "drop", value_parser = ["drop", "truncate_turns"])]
    length_policy: String,
    /// Which assistant turns carry the loss.
    #[arg(long, default_value = "all", value_parser = ["all", "last"])]
    turns: String,
    /// Take the loss off assistant turns whose tool call failed.
    #[arg(long)]
    mask_failed_tool_calls: bool,
    /// Pack into rows of this many tokens (writes DIR/shards/ instead of DIR/tokenized/).
    #[arg(long, value_name = "N")]
    pack_len: Option<u32>,
    /// Seed for the packer's tie-breaks.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Rows per output file (packed rows with --pack-len, else trajectories); the pipeline's
    /// `tokenize` and `pack` steps use the same default.
    #[arg(long, default_value_t = trajforge_ops::DEFAULT_ROWS_PER_SHARD, value_name = "N")]
    rows_per_shard: usize,
    /// Turn off the cache of repeated pieces (for benchmarks; the output is the same).
    #[arg(long)]
    no_cache: bool,
}

struct Bar(indicatif::ProgressBar, AtomicU64);

impl JobProgress for Bar {
    fn rows_done(&self, rows: u64, tokens: u64) {
        self.0.inc(rows);
        let total = self.1.fetch_add(tokens, Ordering::Relaxed) + tokens;
        self.0.set_message(total.to_string());
    }
}

/// The flags as the pipeline's `tokenize` / `pack` step options, so both paths share one setup.
fn step_options(args: &Args) -> (TokenizeOptions, Option<PackOptions>) {
    let t = TokenizeOptions {
        tokenizer: args.tokenizer.as_ref().map(|p| p.display().to_string()),
        max_tokens: args.max_tokens,
        length_policy: if args.length_policy == "truncate_turns" {
            LengthPolicyName::TruncateTurns
        } else {
            LengthPolicyName::Drop
        },
        loss_on: if args.turns == "last" {
            LossTurns::Last
        } else {
            LossTurns::All
        },
        mask_failed_tool_calls: args.mask_failed_tool_calls,
        cache_bytes: if args.no_cache {
            0
        } else {
            TokenizeOptions::default().cache_bytes
        },
        rows_per_shard: args.rows_per_shard,
        ..TokenizeOptions::default()
    };
    let pack = args.pack_len.map(|pack_len| PackOptions {
        pack_len,
        seed: args.seed,
        rows_per_shard: args.rows_per_shard,
        ..PackOptions::default()
    });
    (t, pack)
}

pub fn run(args: Args, global: Global, threads: usize) -> Result<()> {
    if args.pack_len == Some(0) || args.rows_per_shard == 0 || args.max_tokens == Some(0) {
        bail!("--pack-len, --rows-per-shard and --max-tokens must be at least 1");
    }
    let (t, pack) = step_options(&args);
    let p = prepare(&t, pack.as_ref(), Path::new("")).context("cannot load the tokenizer")?;
    let (files, rows, rejected) = canonical_inputs(&args, global)?;
    // What a previous tokenize into the same folder left (`dropped/` was its name before pipelines and tokenize shared one).
    let stale = OUTPUT_DIRS.iter().chain(&["rejects", "dropped"]);
    for stale in stale {
        let _ = std::fs::remove_dir_all(args.out.join(stale));
    }
    let progress = Bar(
        bar(
            global,
            rows,
            "{spinner} tokenize [{bar:30}] {pos}/{len} rows {per_sec} {msg} tokens",
        ),
        AtomicU64::new(0),
    );
    let summary = run_files_blocking(
        &p,
        &files,
        &args.out.join(p.output),
        &args.out.join(DROPPED_DIR),
        threads,
        &progress,
    )
    .with_context(|| format!("tokenize into {} failed", args.out.display()))?;
    progress.0.finish_and_clear();
    keep_ingest_rejects(&args.out)?;
    let manifest = serde_json::json!({
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "tokenizer": p.model.source,
        "ingest_rejected": rejected,
        "tokenize": summary,
    });
    trajforge_io::writer::write_atomic(
        &args.out.join("manifest.json"),
        &serde_json::to_vec_pretty(&manifest)?,
    )?;
    if global.json {
        println!(
            "{}",
            serde_json::json!({"command": "tokenize", "out": args.out.display().to_string(), "tokenize": summary})
        );
    } else if !global.quiet {
        eprintln!(
            "tokenized {} of {} rows: {} tokens, {:.1}% supervised, {} filtered, {} rejected in {:.2}s -> {}",
            summary.samples,
            summary.rows_in,
            summary.tokens,
            100.0 * summary.supervised_fraction,
            summary.filtered.values().sum::<u64>(),
            summary.rejected,
            summary.seconds,
            args.out.join(p.output).display()
        );
        if let Some(fill) = summary.packing_fill {
            eprintln!(
                "  packed into {} rows, fill {:.2}%",
                summary.packed_rows,
                100.0 * fill
            );
        }
    }
    if !summary.balanced {
        bail!("internal error: rows in != samples + filtered + rejected");
    }
    Ok(())
}

/// Moves the rejects of the ingest step (if one ran) to DIR/rejects/ and removes the ingested
/// copy, which only served the run.
fn keep_ingest_rejects(out: &std::path::Path) -> Result<()> {
    let staged = out.join(".ingest");
    if !staged.exists() {
        return Ok(());
    }
    let rejects = staged.join("rejects");
    if rejects.exists() {
        std::fs::rename(&rejects, out.join("rejects"))
            .with_context(|| format!("cannot move {}", rejects.display()))?;
    }
    std::fs::remove_dir_all(&staged).with_context(|| format!("cannot remove {}", staged.display()))
}

/// Canonical Parquet inputs as they are; the others ingested into DIR/.ingest first.
fn canonical_inputs(args: &Args, global: Global) -> Result<(Vec<PathBuf>, u64, u64)> {
    let inputs = classify_inputs(&args.inputs)?;
    let mut rows: u64 = inputs.canonical.iter().map(|(_, n)| n).sum();
    let mut files: Vec<PathBuf> = inputs.canonical.into_iter().map(|(p, _)| p).collect();
    let raw: Vec<String> = inputs.raw.iter().map(|p| p.display().to_string()).collect();
    let mut rejected = 0;
    if !raw.is_empty() {
        let dir = args.out.join(".ingest");
        let mut opts = IngestOptions::new(raw, dir.clone());
        opts.command = std::env::args().collect::<Vec<_>>().join(" ");
        let bar = IngestBar(bar(
            global,
            0,
            "{spinner} ingest [{bar:30}] {bytes}/{total_bytes} {msg}",
        ));
        let m = ingest(&opts, &bar).context("ingesting the inputs failed")?;
        bar.0.finish_and_clear();
        rows += m.counts.written;
        rejected = m.counts.rejected;
        for p in m
            .outputs
            .iter()
            .filter(|p| p.path.starts_with("trajectories/"))
        {
            files.push(dir.join(&p.path));
        }
    }
    Ok((files, rows, rejected))
}
