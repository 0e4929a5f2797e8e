//! Where the tables of an output folder live, for every reader of trajforge's outputs (`sql`,
//! `report`, `publish`): the folder is recognised by what trajforge wrote there —
//! - a pipeline run: `kept/`, `filtered/`, `rejects/`, `shards/`, `tokenized/`,
//!   `tokenize_dropped/`, `manifest.json`;
//! - an ingest output: `trajectories/`, `rejects/`, `manifest.json`;
//! - a `trajforge tokenize` output: `shards/` or `tokenized/`, `tokenize_dropped/` (`dropped/`
//!   from versions before this name was shared with pipelines);
//! - a published dataset: `data/<config>/` (every config but `packed` holds trajectories),
//!   `provenance/manifest.json`;
//! - or simply a folder of canonical Parquet files (`trajectories`).

use std::path::{Path, PathBuf};

use crate::IoError;

/// Table names and the sub-folders they may come from, in order of preference.
pub const FOLDER_TABLES: [(&str, &[&str]); 6] = [
    ("trajectories", &["kept", "trajectories"]),
    ("filtered", &["filtered"]),
    ("rejects", &["rejects"]),
    ("packed", &["shards"]),
    ("tokenized", &["tokenized"]),
    ("tokenize_dropped", &["tokenize_dropped", "dropped"]),
];

/// The config folder of a published dataset that holds packed rows.
const PACKED_CONFIG: &str = "packed";

/// The tables found in one output folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLayout {
    pub root: PathBuf,
    /// `(table, folders)` in [`FOLDER_TABLES`] order, each folder holding `*.parquet` files; a
    /// published dataset's `trajectories` spans all its trajectory configs.
    pub tables: Vec<(String, Vec<PathBuf>)>,
    /// The run manifest, when there is one.
    pub manifest: Option<PathBuf>,
}

impl OutputLayout {
    /// Looks at `root` and finds what trajforge wrote there; a folder with neither Parquet
    /// tables nor a manifest is the user's mistake, said with what was expected.
    pub fn discover(root: &Path) -> Result<OutputLayout, IoError> {
        let wrong = |message: &str| IoError::Layout {
            path: root.to_path_buf(),
            message: message.to_string(),
        };
        if !root.is_dir() {
            return Err(wrong(
                "not a directory (give a run, ingest, tokenize or published dataset folder)",
            ));
        }
        let data = root.join("data");
        let (tables, manifest) = if data.is_dir() {
            (
                dataset_tables(&data)?,
                root.join("provenance/manifest.json"),
            )
        } else {
            (run_tables(root)?, root.join("manifest.json"))
        };
        let manifest = Some(manifest).filter(|m| m.is_file());
        if tables.is_empty() && manifest.is_none() {
            return Err(wrong(
                "no trajforge outputs here: expected kept/ (a run), trajectories/ (an ingest \
                 output), shards/ or tokenized/ (a tokenize output), data/<config>/ (a published \
                 dataset), a manifest.json, or *.parquet files",
            ));
        }
        Ok(OutputLayout {
            root: root.to_path_buf(),
            tables,
            manifest,
        })
    }

    /// The folders of `table` (empty when the folder has none).
    pub fn folders(&self, table: &str) -> &[PathBuf] {
        self.tables
            .iter()
            .find(|(t, _)| t == table)
            .map_or(&[], |(_, f)| f.as_slice())
    }

    /// The Parquet files of `table`, folder by folder, each folder in file-name order.
    pub fn files(&self, table: &str) -> Result<Vec<PathBuf>, IoError> {
        let mut files = Vec::new();
        for folder in self.folders(table) {
            files.extend(parquet_files(folder)?);
        }
        Ok(files)
    }
}

fn run_tables(root: &Path) -> Result<Vec<(String, Vec<PathBuf>)>, IoError> {
    let mut tables = Vec::new();
    for (table, folders) in FOLDER_TABLES {
        for folder in folders.iter().map(|f| root.join(f)) {
            if !parquet_files(&folder)?.is_empty() {
                tables.push((table.to_string(), vec![folder]));
                break;
            }
        }
    }
    if tables.is_empty() && !parquet_files(root)?.is_empty() {
        tables.push(("trajectories".to_string(), vec![root.to_path_buf()]));
    }
    Ok(tables)
}

fn dataset_tables(data: &Path) -> Result<Vec<(String, Vec<PathBuf>)>, IoError> {
    let (mut trajectories, mut packed) = (Vec::new(), Vec::new());
    for config in sorted_entries(data)? {
        if !config.is_dir() || parquet_files(&config)?.is_empty() {
            continue;
        }
        if config.file_name().is_some_and(|n| n == PACKED_CONFIG) {
            packed.push(config);
        } else {
            trajectories.push(config);
        }
    }
    Ok([("trajectories", trajectories), ("packed", packed)]
        .into_iter()
        .filter(|(_, folders)| !folders.is_empty())
        .map(|(t, folders)| (t.to_string(), folders))
        .collect())
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, IoError> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| IoError::io(dir, e))? {
        entries.push(entry.map_err(|e| IoError::io(dir, e))?.path());
    }
    entries.sort();
    Ok(entries)
}

/// `*.parquet` files directly in `dir`, in name order (none when it does not exist), skipping
/// the hidden temporary files of writes in progress.
pub fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>, IoError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    Ok(sorted_entries(dir)?
        .into_iter()
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".parquet") && !name.starts_with('.') && p.is_file()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &Path, rel: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, b"").expect("write");
    }

    fn names(layout: &OutputLayout) -> Vec<(String, Vec<String>)> {
        let rel = |p: &PathBuf| {
            let r = p.strip_prefix(&layout.root).expect("under root");
            r.display().to_string()
        };
        let tables = layout.tables.iter();
        tables
            .map(|(t, f)| (t.clone(), f.iter().map(rel).collect()))
            .collect()
    }

    #[test]
    fn each_output_kind_is_recognised() {
        let tmp = tempfile::tempdir().expect("tmp");
        let run = tmp.path().join("run");
        for f in [
            "kept/part-0.parquet",
            "filtered/part-0.parquet",
            "shards/s.parquet",
        ] {
            touch(&run, f);
        }
        touch(&run, "rejects/.trajforge-x.parquet.tmp"); // a write in progress is not a table
        touch(&run, "manifest.json");
        let layout = OutputLayout::discover(&run).expect("run");
        let expected = [
            ("trajectories", "kept"),
            ("filtered", "filtered"),
            ("packed", "shards"),
        ];
        let expected: Vec<(String, Vec<String>)> = expected
            .iter()
            .map(|(t, f)| (t.to_string(), vec![f.to_string()]))
            .collect();
        assert_eq!(names(&layout), expected);
        assert_eq!(layout.manifest, Some(run.join("manifest.json")));

        let dataset = tmp.path().join("dataset");
        for f in [
            "data/zero/train-00000-of-00001.parquet",
            "data/hero/train-00000-of-00002.parquet",
        ] {
            touch(&dataset, f);
        }
        touch(&dataset, "data/hero/train-00001-of-00002.parquet");
        touch(&dataset, "data/packed/train-00000-of-00001.parquet");
        touch(&dataset, "provenance/manifest.json");
        let layout = OutputLayout::discover(&dataset).expect("dataset");
        assert_eq!(layout.folders("trajectories").len(), 2);
        assert_eq!(layout.files("trajectories").expect("files").len(), 3);
        assert_eq!(layout.files("packed").expect("files").len(), 1);
        assert!(layout.folders("filtered").is_empty());
        assert_eq!(
            layout.manifest,
            Some(dataset.join("provenance/manifest.json"))
        );

        let folder = tmp.path().join("folder");
        touch(&folder, "a.parquet");
        let layout = OutputLayout::discover(&folder).expect("folder");
        assert_eq!(
            names(&layout),
            [("trajectories".to_string(), vec![String::new()])]
        );
    }

    #[test]
    fn a_folder_without_outputs_says_what_was_expected() {
        let tmp = tempfile::tempdir().expect("tmp");
        let e = OutputLayout::discover(tmp.path()).expect_err("empty folder");
        assert!(e.to_string().contains("no trajforge outputs here"), "{e}");
        let missing = tmp.path().join("nope");
        let e = OutputLayout::discover(&missing).expect_err("missing");
        assert!(e.to_string().contains("not a directory"), "{e}");
    }
}
