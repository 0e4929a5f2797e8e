//! The one error type of the pipeline crate; each variant says whose fault it is.

use thiserror::Error;
use trajforge_io::IoError;
use trajforge_ops::OpsError;

#[derive(Debug, Error)]
pub enum PipelineError {
    /// The pipeline file or the command line (message names the file, line and key).
    #[error("{0}")]
    Config(String),
    /// The input data cannot be processed (message names the file).
    #[error("{0}")]
    Data(String),
    /// Reading inputs or writing outputs failed.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// Ingesting raw inputs failed.
    #[error(transparent)]
    Ingest(#[from] IoError),
    /// An operator refused its options or its data.
    #[error(transparent)]
    Ops(#[from] OpsError),
    /// The executor failed (out of memory under the limit, a UDF error, …).
    #[error("executor: {0}")]
    Plan(#[from] datafusion::error::DataFusionError),
    /// An Arrow kernel failed on data the plan produced.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// The ledger does not balance: a bug, never bad input.
    #[error("internal error (please report): {0}")]
    Internal(String),
}

impl PipelineError {
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> PipelineError {
        PipelineError::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}
