//! The one error type of the operators crate; each variant says whose fault it is.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum OpsError {
    /// A step's options are wrong (the user's pipeline): the message names the option.
    #[error("{0}")]
    Config(String),
    /// The data does not have the shape an operator needs (the input's fault).
    #[error("{0}")]
    Data(String),
    /// A file an operator reads (benchmark list, test patches) could not be read.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// DataFusion refused a plan or failed while running it.
    #[error(transparent)]
    Plan(#[from] datafusion::error::DataFusionError),
}

impl OpsError {
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> OpsError {
        OpsError::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}
