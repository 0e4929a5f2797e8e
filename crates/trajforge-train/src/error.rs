//! The trainer's one error type; each variant says whose fault it is.

use std::path::Path;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum TrainError {
    /// The training file, a `--set`, or a model folder's `config.json` is wrong (the message
    /// names the file, line and key).
    #[error("{0}")]
    Config(String),
    /// A shard breaks the packed layout (the message names the shard, row and invariant), or a
    /// weight file does not fit the model.
    #[error("{0}")]
    Data(String),
    /// Reading inputs or writing outputs failed.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// A tensor operation failed (out of memory, a device error).
    #[error("tensor: {0}")]
    Tensor(#[from] candle_core::Error),
    /// A broken invariant of the trainer itself: a bug, never bad input.
    #[error("internal error (please report): {0}")]
    Internal(String),
}

impl TrainError {
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> TrainError {
        TrainError::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }

    pub fn data(path: impl AsRef<Path>, what: impl std::fmt::Display) -> TrainError {
        TrainError::Data(format!("{}: {what}", path.as_ref().display()))
    }
}

pub type Result<T, E = TrainError> = std::result::Result<T, E>;
