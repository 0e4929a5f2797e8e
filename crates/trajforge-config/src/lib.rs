//! # trajforge-config
//!
//! The strict YAML machinery every trajforge config file goes through (pipelines and training
//! runs alike). [`yaml`] parses a file into a tree of [`yaml::Node`]s that remember their line,
//! column and key path and substitutes `${ENV}` references; [`set`] applies `--set KEY=VALUE`
//! overrides to that tree so an override is checked exactly like the file; [`de`] reads the tree
//! into `deny_unknown_fields` serde structs with errors that name the line, the key path and the
//! closest valid name. It depends on neither DataFusion nor the pipeline, so the trainer shares it.

pub mod de;
pub mod set;
pub mod yaml;

pub use de::{DeError, closest, from_node};
pub use set::apply_set;
pub use yaml::{Key, Node, Origin, Value, YamlError};
