//! # trajforge-pipeline
//!
//! Declarative pipelines: `trajforge run PIPELINE.yaml`. [`yaml`] parses the file into a tree
//! that remembers lines and key paths, applies `${ENV}` and `--set` overrides; [`de`] reads
//! it into typed structs with errors that name the line, the key and the closest valid name
//! (both from `trajforge-config`, which the trainer shares); [`spec`] validates it against the operator registry into a [`Pipeline`]. [`source`] exposes
//! canonical Parquet to DataFusion as a table with a stable `_row` ordinal, [`engine`] builds
//! the decide and write plans (DataFusion executes them: streaming, parallel, under a memory
//! limit with spilling), and [`run`] drives the stages with checkpoints for `--resume`, writes
//! `kept/`, `filtered/`, `rejects/` and `manifest.json`, and checks the ledger;
//! [`tokenize_stage`] turns the kept rows into tokenized samples or packed training shards
//! (`shards/`) when the pipeline ends with `tokenize` / `pack`. [`schema`]
//! generates `schemas/pipeline.schema.json` and the operator reference from the registry.

pub mod engine;
pub mod error;
pub mod run;
pub mod schema;
pub mod source;
pub mod spec;
pub mod tokenize_stage;

pub use error::PipelineError;
pub use run::{RunManifest, RunOptions, RunProgress, run};
pub use spec::{LoadOptions, Pipeline, load, load_str};
/// The strict YAML machinery, shared with the trainer (see `trajforge-config`).
pub use trajforge_config::{de, yaml};

#[cfg(test)]
mod docs_tests;
#[cfg(test)]
mod run_tests;
