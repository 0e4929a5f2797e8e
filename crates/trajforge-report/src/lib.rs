//! # trajforge-report
//!
//! What a data engineer looks at before training, for a run's output folder or a published
//! dataset. [`layout`] finds the tables (kept, filtered, rejects, packed shards, manifest);
//! [`stats`] computes the statistics with polars' lazy engine over the Parquet files — length
//! distributions, tool-use mix, per-repo / per-source / per-license counts, the filter funnel,
//! dedupe cluster sizes, supervised-token fraction and packing fill; [`charts`] draws them as SVG
//! with plotters; [`html`] assembles one self-contained page. The dataset card of `trajforge
//! publish` is written from the same [`stats::Stats`]. A training folder (`trajforge train`'s
//! output) gets its loss and learning-rate curves instead ([`training`]).

pub mod charts;
mod error;
pub mod html;
pub mod layout;
pub mod stats;
pub mod training;

pub use error::ReportError;
pub use layout::Layout;
pub use stats::Stats;
