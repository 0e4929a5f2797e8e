//! Where the tables of a run, an ingest output or a published dataset live.

use std::path::{Path, PathBuf};

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
    /// Looks at `root` and finds what trajforge wrote there.
    pub fn discover(root: &Path) -> Result<Layout, ReportError> {
        if !root.is_dir() {
            return Err(ReportError::Usage {
                path: root.to_path_buf(),
                message: "not a directory (give a run's output folder or a published dataset)"
                    .into(),
            });
        }
        let mut layout = Layout {
            root: root.to_path_buf(),
            filtered: parquet_files(&root.join("filtered"))?,
            rejects: parquet_files(&root.join("rejects"))?,
            ..Layout::default()
        };
        let data = root.join("data");
        if data.is_dir() {
            for config in sorted_entries(&data)? {
                if !config.is_dir() {
                    continue;
                }
                let files = parquet_files(&config)?;
                if config.file_name().is_some_and(|n| n == "packed") {
                    layout.packed = files;
                } else {
                    layout.trajectories.extend(files);
                }
            }
        } else {
            layout.trajectories = parquet_files(&root.join("kept"))?;
            if layout.trajectories.is_empty() {
                layout.trajectories = parquet_files(&root.join("trajectories"))?;
            }
            layout.packed = parquet_files(&root.join("shards"))?;
        }
        layout.manifest = read_manifest(root)?;
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

fn read_manifest(root: &Path) -> Result<Option<serde_json::Value>, ReportError> {
    for path in [
        root.join("manifest.json"),
        root.join("provenance").join("manifest.json"),
    ] {
        if path.is_file() {
            let text = std::fs::read_to_string(&path).map_err(|e| ReportError::io(&path, e))?;
            let value = serde_json::from_str(&text)
                .map_err(|e| ReportError::data(&path, format!("not a JSON manifest: {e}")))?;
            return Ok(Some(value));
        }
    }
    Ok(None)
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| ReportError::io(dir, e))? {
        entries.push(entry.map_err(|e| ReportError::io(dir, e))?.path());
    }
    entries.sort();
    Ok(entries)
}

/// `*.parquet` directly in `dir` (none when it does not exist), skipping temporary files.
pub fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    Ok(sorted_entries(dir)?
        .into_iter()
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".parquet") && !name.starts_with('.')
        })
        .collect())
}
