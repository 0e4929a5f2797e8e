use std::path::PathBuf;

/// What went wrong, and whose fault it is.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The directory given is not a run or a published dataset (the message says what is missing).
    #[error("{path}: {message}")]
    Usage { path: PathBuf, message: String },
    /// A file in the directory cannot be read as what its place says it is.
    #[error("{path}: {message}")]
    Data { path: PathBuf, message: String },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A bug in trajforge: a statistic or chart that should always compute did not.
    #[error("internal error (a bug in trajforge): {0}")]
    Internal(String),
}

impl ReportError {
    pub(crate) fn data(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> ReportError {
        ReportError::Data {
            path: path.into(),
            message: message.to_string(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> ReportError {
        ReportError::Io {
            path: path.into(),
            source,
        }
    }
}
