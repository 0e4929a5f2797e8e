//! # trajforge-io
//!
//! Everything between bytes on disk and canonical rows. [`source`] expands inputs (files,
//! directories, globs) and streams their records one at a time — JSON arrays are walked element
//! by element, JSONL line by line, `.gz`/`.zst` decompressed on the fly and Parquet read in small
//! batches — so memory stays bounded whatever the input size. [`formats`] recognises each
//! published trajectory format and maps a record to a [`trajforge_schema::Trajectory`]; every
//! unusable record becomes a [`reject::Reject`] with its file, row or line and a reason, never a
//! panic and never a silent drop. [`writer`] writes zstd Parquet parts atomically, [`manifest`]
//! records what a run read and wrote, and [`ingest`] ties them together with rayon-parallel,
//! order-preserving parsing so the output is byte-identical at any thread count. [`layout`]
//! tells the readers of those outputs (sql, report, publish) which folder holds which table.

pub mod error;
pub mod formats;
pub mod ingest;
pub mod layout;
pub mod manifest;
pub mod reject;
pub mod source;
pub mod writer;

pub use error::IoError;
pub use formats::Format;
pub use ingest::{IngestOptions, Progress, ingest};
pub use layout::OutputLayout;
pub use manifest::Manifest;
pub use reject::{Reject, RejectKind};
