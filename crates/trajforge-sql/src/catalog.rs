//! Which tables a data directory holds, and their registration.
//!
//! A directory is recognised by its sub-folders, the layouts trajforge writes: a pipeline run
//! (`kept/`, `filtered/`, `rejects/`, `shards/`, `tokenized/`, `tokenize_dropped/`,
//! `manifest.json`), an ingest output (`trajectories/`, `rejects/`), a `trajforge tokenize`
//! output (`tokenized/` or `shards/`, `dropped/`), or simply a folder of canonical Parquet files
//! (`trajectories`). Each table is a DataFusion listing table over the folder's `*.parquet`
//! files, so nothing is copied or loaded up front. With one directory the tables live in the
//! default schema; with several, each directory gets a schema named after it (`runa.kept`…),
//! while `runs` and `run_steps` cover every directory from the default schema.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::common::TableReference;
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use crate::SqlError;
use crate::manifests;

/// Table names and the sub-folders they may come from, in order of preference.
pub const FOLDER_TABLES: [(&str, &[&str]); 6] = [
    ("trajectories", &["kept", "trajectories"]),
    ("filtered", &["filtered"]),
    ("rejects", &["rejects"]),
    ("packed", &["shards"]),
    ("tokenized", &["tokenized"]),
    ("tokenize_dropped", &["tokenize_dropped", "dropped"]),
];

/// The default schema.
pub const DEFAULT_SCHEMA: &str = "public";

/// One data directory and what was registered from it.
#[derive(Debug, Clone)]
pub struct DataDir {
    pub path: PathBuf,
    /// Its own name (the last part of the resolved path).
    pub name: String,
    /// The schema its tables live in.
    pub schema: String,
    /// `(table, folder)` pairs.
    pub tables: Vec<(String, PathBuf)>,
    /// Its `manifest.json`, when it is a run.
    pub manifest: Option<PathBuf>,
}

/// Everything registered in a session.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub dirs: Vec<DataDir>,
    /// `runs` and `run_steps` (when any directory has a manifest).
    pub run_tables: Vec<String>,
}

impl Catalog {
    /// Every table and view name as a query would write it (`kept` or `runa.kept`).
    pub fn qualified(&self, schema: &str, table: &str) -> String {
        if schema == DEFAULT_SCHEMA {
            table.to_string()
        } else {
            format!("{schema}.{table}")
        }
    }
}

/// Finds and registers the tables of `dirs` in `ctx`.
pub async fn register(ctx: &SessionContext, dirs: &[PathBuf]) -> Result<Catalog, SqlError> {
    let mut catalog = Catalog::default();
    let names = schema_names(dirs);
    for (path, schema) in dirs.iter().zip(names) {
        let dir = discover(path, schema)?;
        if dir.schema != DEFAULT_SCHEMA {
            let provider: Arc<dyn SchemaProvider> = Arc::new(MemorySchemaProvider::new());
            ctx.catalog("datafusion")
                .ok_or_else(|| SqlError::Usage("the default catalog is missing".into()))?
                .register_schema(&dir.schema, provider)?;
        }
        for (table, folder) in &dir.tables {
            let reference = TableReference::partial(dir.schema.as_str(), table.as_str());
            let location = folder.display().to_string();
            ctx.register_parquet(reference, &location, ParquetReadOptions::default())
                .await
                .map_err(|e| SqlError::Data {
                    path: folder.clone(),
                    message: format!("cannot read as the `{table}` table: {e}"),
                })?;
        }
        catalog.dirs.push(dir);
    }
    catalog.run_tables = manifests::register(ctx, &catalog.dirs)?;
    Ok(catalog)
}

/// `public` for a single directory; otherwise a distinct identifier per directory.
fn schema_names(dirs: &[PathBuf]) -> Vec<String> {
    if dirs.len() == 1 {
        return vec![DEFAULT_SCHEMA.to_string()];
    }
    let mut taken: Vec<String> = Vec::new();
    for d in dirs {
        let base = identifier(d);
        let mut name = base.clone();
        let mut n = 2;
        while taken.contains(&name) || name == DEFAULT_SCHEMA {
            name = format!("{base}_{n}");
            n += 1;
        }
        taken.push(name);
    }
    taken
}

/// The directory's name as a lower-case SQL identifier (`out/Run-1` → `run_1`).
fn identifier(dir: &Path) -> String {
    let mut id: String = dir_name(dir)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if id.is_empty() || id.starts_with(|c: char| c.is_ascii_digit()) {
        id.insert_str(0, "d_");
    }
    id
}

/// The directory's own name, resolved (`out/quickstart/.` → `quickstart`).
fn dir_name(dir: &Path) -> String {
    std::fs::canonicalize(dir)
        .unwrap_or_else(|_| dir.to_path_buf())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// What `path` holds.
fn discover(path: &Path, schema: String) -> Result<DataDir, SqlError> {
    if !path.is_dir() {
        return Err(SqlError::Usage(format!(
            "{}: not a directory (--data takes a run, ingest or dataset folder)",
            path.display()
        )));
    }
    let mut tables = Vec::new();
    for (table, folders) in FOLDER_TABLES {
        let found = folders
            .iter()
            .map(|f| path.join(f))
            .find(|f| has_parquet(f));
        if let Some(folder) = found {
            tables.push((table.to_string(), folder));
        }
    }
    if tables.is_empty() && has_parquet(path) {
        tables.push(("trajectories".to_string(), path.to_path_buf()));
    }
    let manifest = Some(path.join("manifest.json")).filter(|m| m.is_file());
    if tables.is_empty() && manifest.is_none() {
        return Err(SqlError::Usage(format!(
            "{}: no trajforge outputs here (expected kept/, filtered/, rejects/, shards/, \
             trajectories/ or tokenized/ folders of Parquet files, a manifest.json, or *.parquet files)",
            path.display()
        )));
    }
    Ok(DataDir {
        path: path.to_path_buf(),
        name: dir_name(path),
        schema,
        tables,
        manifest,
    })
}

/// True when `dir` directly holds at least one `*.parquet` file.
fn has_parquet(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "parquet") && e.path().is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_distinct_identifiers() {
        let dirs = [
            PathBuf::from("/x/run-A"),
            PathBuf::from("/y/run-a"),
            PathBuf::from("/z/2024"),
            PathBuf::from("/w/public"),
        ];
        assert_eq!(
            schema_names(&dirs),
            ["run_a", "run_a_2", "d_2024", "public_2"]
        );
        assert_eq!(schema_names(&dirs[..1]), ["public"]);
    }

    #[test]
    fn a_folder_without_outputs_is_a_usage_error() {
        let tmp = tempfile::tempdir().expect("tmp");
        let e = discover(tmp.path(), "public".into()).expect_err("empty folder");
        assert!(e.to_string().contains("no trajforge outputs"), "{e}");
        let missing = tmp.path().join("nope");
        let e = discover(&missing, "public".into()).expect_err("missing");
        assert!(e.to_string().contains("not a directory"), "{e}");
    }
}
