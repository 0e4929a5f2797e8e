//! # trajforge-schema
//!
//! The one canonical shape every trajectory takes inside trajforge, whatever format it came from.
//! [`Trajectory`] is the typed row (one per agent run), [`Message`] and [`ToolCall`] its chat turns;
//! [`arrow_schema`] is the Arrow schema those rows are stored with (long texts as `LargeUtf8`, so a
//! 13 MB patch or a 500 KB file view never overflows 32-bit offsets), and [`batch`] converts typed
//! rows to and from Arrow record batches through `serde_arrow`. Fields derived at ingest (counts,
//! patch statistics, [`instance_key`], [`content_hash`]) are computed by [`derive::fill_derived`]
//! so every reader derives them the same way. The JSON documents in `schemas/` are generated from
//! these types by [`docs`], and a test fails when the committed copies are stale.

pub mod arrow;
pub mod derive;
pub mod docs;
pub mod error;
pub mod failure;
pub mod instance_key;
pub mod patch;
pub mod trajectory;

pub use arrow::{SCHEMA_VERSION, arrow_schema, batch};
pub use derive::{content_hash, fill_derived};
pub use error::SchemaError;
pub use failure::FailureRule;
pub use instance_key::instance_key;
pub use trajectory::{Message, Role, Stage, ToolCall, Trajectory};
