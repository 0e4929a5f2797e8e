//! The io crate's error type: variants say whose fault a failure is.

use std::path::PathBuf;

/// A failure that stops a run (bad records never do: they become rejects).
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// The invocation is wrong: no such input, an unknown format name, an unusable output path.
    #[error("{0}")]
    Config(String),
    /// The folder given is not a trajforge output (the message says what was expected).
    #[error("{}: {message}", path.display())]
    Layout { path: PathBuf, message: String },
    /// The file system failed on a path.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Writing Parquet or Arrow data failed.
    #[error("{}: {message}", path.display())]
    Write { path: PathBuf, message: String },
    /// A bug in trajforge.
    #[error("internal error (please report): {0}")]
    Internal(String),
}

impl IoError {
    /// Wraps a `std::io::Error` with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> IoError {
        IoError::Io {
            path: path.into(),
            source,
        }
    }

    /// Wraps a writer error with the path being written.
    pub fn write(path: impl Into<PathBuf>, err: impl std::fmt::Display) -> IoError {
        IoError::Write {
            path: path.into(),
            message: err.to_string(),
        }
    }
}
