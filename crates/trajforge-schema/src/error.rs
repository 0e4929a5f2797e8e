//! Errors of the schema crate: a batch that does not have the canonical shape.

/// What went wrong converting between typed rows and Arrow.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// Data does not fit the canonical schema (a column missing, a wrong type).
    #[error("data does not match the canonical trajectory schema: {0}")]
    Data(String),
    /// A bug in trajforge: typed rows that should always convert did not.
    #[error("internal error converting trajectories to Arrow (please report): {0}")]
    Internal(String),
}
