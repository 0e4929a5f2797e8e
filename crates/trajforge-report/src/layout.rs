//! The files of a run, an ingest output or a published dataset that the statistics read.

use std::path::{Path, PathBuf};

use trajforge_io::{IoError, OutputLayout};

use crate::ReportError;

/// The Parquet files of each table found in a directory, in file-name order, and its manifest.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    pub root: PathBuf,
    /// Kept trajectories: `kept/` (run), `trajectories/` (ingest) or every `data/<config>/`
    /// except `packed` (published dataset).
    pub trajectories: Vec<PathBuf>,
    pub filtered: Vec<PathBuf>,
    pub rejects: Vec<PathBuf>,
    /// Packed training rows: `shards/` (run) or `data/packed/` (published dataset).
    pub packed: Vec<PathBuf>,
    /// The run manifest (`manifest.json`, or `provenance/manifest.json` in a published dataset).
    pub manifest: Option<serde_json::Value>,
}

impl Layout {
    /// Looks at `root` and finds what trajforge wrote there (`trajforge_io::layout`).
    pub fn discover(root: &Path) -> Result<Layout, ReportError> {
        let found = OutputLayout::discover(root).map_err(|e| match e {
            IoError::Layout { path, message } => ReportError::Usage { path, message },
            other => ReportError::data(root, other),
        })?;
        let files = |table: &str| found.files(table).map_err(|e| ReportError::data(root, e));
        let layout = Layout {
            root: root.to_path_buf(),
            trajectories: files("trajectories")?,
            filtered: files("filtered")?,
            rejects: files("rejects")?,
            packed: files("packed")?,
            manifest: found.manifest.as_deref().map(read_manifest).transpose()?,
        };
        if layout.trajectories.is_empty() && layout.packed.is_empty() {
            return Err(ReportError::Usage {
                path: root.to_path_buf(),
                message: "no trajectories or packed shards here: expected kept/ (a run), \
                          trajectories/ (an ingest output) or data/<config>/ (a published dataset)"
                    .into(),
            });
        }
        Ok(layout)
    }

    /// `pack_len` of the run that wrote the shards, from the manifest.
    pub fn pack_len(&self) -> Option<u64> {
        self.manifest
            .as_ref()?
            .pointer("/tokenize/pack_len")?
            .as_u64()
    }
}

fn read_manifest(path: &Path) -> Result<serde_json::Value, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|e| ReportError::io(path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| ReportError::data(path, format!("not a JSON manifest: {e}")))
}
