//! `trajforge publish RUN_DIR --out DATASET_DIR [--name N]`: a run as a Hugging Face dataset
//! (configs per stage plus `packed`, dataset card, checksums, provenance).

use std::path::PathBuf;

use anyhow::Result;
use trajforge_publish::{PublishOptions, publish};

use crate::Global;

/// Publish a run as a Hugging Face dataset: data/<config>/train-*.parquet, README.md with the
/// dataset card, provenance/ and SHA256SUMS.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The output folder of `trajforge run` (kept/, shards/, manifest.json).
    run_dir: PathBuf,
    /// The dataset folder to create.
    #[arg(long, value_name = "DATASET_DIR")]
    out: PathBuf,
    /// Dataset name in the card (default: the --out folder's name).
    #[arg(long, value_name = "N")]
    name: Option<String>,
    /// Target size of one data file, in MB (the Hub's own exports use ~500).
    #[arg(long, value_name = "MB", default_value_t = 500.0)]
    shard_mb: f64,
    /// At most this many rows per Parquet row group (the Hub viewer reads one at a time).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    row_group_rows: usize,
    /// Replace DATASET_DIR when it exists.
    #[arg(long)]
    overwrite: bool,
}

pub fn run(args: Args, global: Global) -> Result<()> {
    if args.shard_mb.is_nan() || args.shard_mb <= 0.0 || args.row_group_rows == 0 {
        anyhow::bail!("--shard-mb must be positive and --row-group-rows at least 1");
    }
    let mut options = PublishOptions::new(args.run_dir, args.out);
    options.name = args.name;
    options.shard_bytes = (args.shard_mb * 1e6).ceil() as u64;
    options.row_group_rows = args.row_group_rows;
    options.overwrite = args.overwrite;
    let published = publish(&options)?;
    if global.json {
        println!("{}", serde_json::to_string(&published)?);
    } else if !global.quiet {
        for c in &published.configs {
            eprintln!(
                "{:<14} {:>8} rows  {:>3} file(s)  {:>12} bytes",
                c.config,
                c.rows,
                c.files.len(),
                c.bytes
            );
        }
        eprintln!(
            "published {} ({} files, {} bytes, SHA256SUMS written)",
            published.out.display(),
            published.files,
            published.bytes
        );
    }
    Ok(())
}
