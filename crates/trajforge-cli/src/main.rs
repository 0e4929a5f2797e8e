//! # trajforge
//!
//! The command-line front end: `ingest` turns published trajectory formats into canonical
//! Parquet, `inspect` summarises any Parquet dataset and pretty-prints a trajectory, `synth`
//! generates realistic OpenHands trajectories with planted defects for scale tests, `run` executes a
//! declarative YAML pipeline on DataFusion, `tokenize` renders, tokenizes, loss-masks and
//! optionally packs trajectories for training, `sql` queries runs and datasets, `report` writes an
//! HTML page of a run's statistics and charts, `publish` makes a run a Hugging Face dataset, `train`
//! fine-tunes a Qwen2 model on packed shards in stages and `eval` scores a model folder on them. Global flags
//! set the thread count (rayon, and DataFusion in later commands), silence progress bars, or ask
//! for one machine-readable JSON summary line on stdout.

mod commands;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

// Runs interleave large short-lived buffers (decoded trajectories) with small long-lived ones
// (decisions, signatures). Measured on zero.yaml under memory_limit=1GiB, peak RSS with glibc's
// allocator 1.41 GB (5k rows) / 1.43 GB (20k), with mimalloc 1.25 / 1.12 GB, same speed.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "trajforge",
    version,
    about = "Turn software-engineering agent trajectories into training data"
)]
struct Cli {
    /// Worker threads for all parallel work (default: all cores).
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,
    /// No progress bars or informational messages.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Print a one-line JSON summary on stdout (for scripts).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Ingest(commands::ingest::Args),
    Inspect(commands::inspect::Args),
    Synth(commands::synth::Args),
    Run(commands::run::Args),
    Tokenize(commands::tokenize::Args),
    /// Query runs and datasets with SQL (DataFusion): tables, message views, trajectory UDFs.
    Sql(commands::sql::Args),
    Report(commands::report::Args),
    Publish(commands::publish::Args),
    Train(commands::train::Args),
    Eval(commands::train::EvalArgs),
}

/// Settings every command gets.
#[derive(Debug, Clone, Copy)]
pub struct Global {
    pub quiet: bool,
    pub json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        if n == 0 {
            eprintln!("error: --threads must be at least 1");
            return ExitCode::from(2);
        }
        limit_polars_threads(n);
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
        {
            eprintln!("error: cannot start {n} threads: {e}");
            return ExitCode::FAILURE;
        }
    }
    let threads = cli
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let global = Global {
        quiet: cli.quiet,
        json: cli.json,
    };
    let result = match cli.command {
        Command::Ingest(args) => commands::ingest::run(args, global),
        Command::Inspect(args) => commands::inspect::run(args, global),
        Command::Synth(args) => commands::synth::run(args, global),
        Command::Run(args) => commands::run::run(args, global, threads),
        Command::Tokenize(args) => commands::tokenize::run(args, global, threads),
        Command::Sql(args) => commands::sql::run(args, global, threads),
        Command::Report(args) => commands::report::run(args, global),
        Command::Publish(args) => commands::publish::run(args, global),
        Command::Train(args) => commands::train::run(args, global),
        Command::Eval(args) => commands::train::eval(args, global),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// `report` and `publish` compute their statistics with polars, whose thread pool reads its size
/// from `POLARS_MAX_THREADS` when it first starts and offers no other setting.
#[allow(unsafe_code)]
fn limit_polars_threads(n: usize) {
    // SAFETY: called first in `main`, before rayon's pool or any runtime starts a thread, so no
    // other thread can read the environment while it changes.
    unsafe { std::env::set_var("POLARS_MAX_THREADS", n.to_string()) };
}

/// The error and its causes on one line, as the exit path and the `sql` prompt print them.
/// DataFusion's errors (and ours that wrap them) repeat their source's text in their own message,
/// so a cause already said is not said again: a bad column name reads once, not three times.
pub(crate) fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// `trajforge inspect … | head` closes the pipe early: that is the reader's choice, not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
