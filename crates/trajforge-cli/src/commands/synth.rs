//! `trajforge synth --kind zero|hero --count N --seed S --out PATH [--defects RATE]`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use trajforge_synth::{Kind, SynthOptions, synth};

use crate::Global;
use crate::progress::bar;

/// Generate realistic OpenHands trajectories (nvidia Parquet layout) with planted defects.
///
/// Deterministic: the same seed gives the same bytes at any thread count. Planted defects are
/// listed in PATH's sidecar `<stem>.truth.parquet` (trajectory_id, defect).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, value_parser = ["zero", "hero"])]
    kind: String,
    /// Number of trajectories.
    #[arg(long, value_name = "N")]
    count: u64,
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
    /// Output Parquet file.
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
    /// Fraction of rows that carry a planted defect (0–1).
    #[arg(long, value_name = "RATE", default_value_t = 0.0)]
    defects: f64,
}

pub fn run(args: Args, global: Global) -> Result<()> {
    let kind = if args.kind == "hero" {
        Kind::Hero
    } else {
        Kind::Zero
    };
    let opts = SynthOptions {
        kind,
        count: args.count,
        seed: args.seed,
        defect_rate: args.defects,
        batch_rows: 128,
    };
    let pb = bar(
        global,
        args.count,
        "{spinner} synth [{bar:30}] {pos}/{len} rows {per_sec} eta {eta}",
    );
    let summary = synth(&opts, &args.out, &|n| pb.set_position(n))
        .with_context(|| format!("synth into {} failed", args.out.display()))?;
    pb.finish_and_clear();
    if global.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else if !global.quiet {
        let planted: u64 = summary.defects.values().sum();
        eprintln!(
            "wrote {} {} trajectories ({:.1} MB) to {}; {planted} planted defects in {}",
            summary.rows,
            kind.name(),
            summary.bytes as f64 / 1e6,
            summary.output,
            summary.truth
        );
    }
    Ok(())
}
