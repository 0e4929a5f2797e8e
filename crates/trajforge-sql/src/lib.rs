//! # trajforge-sql
//!
//! One DataFusion session over trajforge outputs, for `trajforge sql` and for tests. [`catalog`]
//! looks at each data directory (a pipeline run, an ingest output or a folder of Parquet) and
//! registers what it finds as tables — `trajectories`, `filtered`, `rejects`, `packed`,
//! `tokenized`, `tokenize_dropped` — plus `runs` and `run_steps` read from the run manifests;
//! with several directories each gets its own schema. [`views`] adds `messages` (one row per
//! message) and `tool_calls` (one row per call) over `trajectories`. [`functions`] registers
//! the JSON functions of `datafusion-functions-json` and trajforge's own: `bash_commands` (the
//! pipeline's shell parser) and `patch_files` / `patch_added_lines` / `patch_removed_lines` (the
//! ingest's diff reader). [`output`] prints results as a table, CSV, JSON or Parquet.

pub mod catalog;
pub mod functions;
pub mod manifests;
pub mod output;
pub mod views;

use std::path::PathBuf;

use datafusion::prelude::{SessionConfig, SessionContext};

/// What went wrong, and whose fault it is.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// A data directory or option the user gave is unusable (the message says which and why).
    #[error("{0}")]
    Usage(String),
    /// A file in a data directory cannot be read as what its place says it is.
    #[error("{path}: {message}")]
    Data { path: PathBuf, message: String },
    /// The query failed (syntax, unknown table or column, execution).
    #[error("{0}")]
    Query(#[from] datafusion::error::DataFusionError),
    /// Writing a result failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Formatting a result failed.
    #[error("{0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

/// A session with every table, view and function registered for `dirs`, running each query on
/// `threads` partitions.
pub async fn session(
    dirs: &[PathBuf],
    threads: usize,
) -> Result<(SessionContext, catalog::Catalog), SqlError> {
    let config = SessionConfig::new()
        .with_target_partitions(threads.max(1))
        .with_information_schema(true)
        .with_default_catalog_and_schema("datafusion", "public");
    // Paths in FROM ('out/kept/part-00000.parquet') read files directly, as in datafusion-cli.
    let ctx = SessionContext::new_with_config(config).enable_url_table();
    functions::register(&ctx)?;
    let catalog = catalog::register(&ctx, dirs).await?;
    views::register(&ctx, &catalog).await?;
    Ok((ctx, catalog))
}
