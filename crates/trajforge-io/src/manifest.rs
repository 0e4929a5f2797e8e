//! `manifest.json`: what a run read, what it wrote, and proof that every input row is accounted for.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::writer::PartInfo;

/// One input file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputFile {
    pub path: String,
    pub bytes: u64,
    /// xxh3-128 of the stored bytes, 32 hex digits.
    pub xxh3_128: String,
    /// The format its records were read as (null when no record was recognised).
    pub format: Option<String>,
    pub read: u64,
    pub written: u64,
    pub rejected: u64,
}

/// Row accounting: `read == written + rejected`, always.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub read: u64,
    pub written: u64,
    pub rejected: u64,
}

impl Counts {
    pub fn balanced(&self) -> bool {
        self.read == self.written + self.rejected
    }
}

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub tool: String,
    pub tool_version: String,
    pub schema_version: u32,
    pub command: String,
    pub threads: usize,
    pub inputs: Vec<InputFile>,
    pub counts: Counts,
    pub written_by_format: BTreeMap<String, u64>,
    pub rejected_by_kind: BTreeMap<String, u64>,
    pub outputs: Vec<PartInfo>,
    pub timings: Timings,
}

/// Wall-clock seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub total_seconds: f64,
    pub input_bytes_per_second: f64,
    pub rows_per_second: f64,
}
