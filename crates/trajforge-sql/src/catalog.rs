//! Which tables a data directory holds, and their registration.
//!
//! A directory is recognised by the layouts trajforge writes ([`trajforge_io::layout`]: a run,
//! an ingest or tokenize output, a published dataset, or a folder of canonical Parquet). Each
//! table is a DataFusion listing table over its folders' `*.parquet` files (a published
//! dataset's `trajectories` spans its configs), so nothing is copied or loaded up front. With
//! one directory the tables live in the default schema; with several, each directory gets a
//! schema named after it (`runa.kept`…), while `runs` and `run_steps` cover every directory from
//! the default schema.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::common::TableReference;
use datafusion::datasource::file_format::options::ReadOptions;
use datafusion::datasource::listing::{ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use trajforge_io::{IoError, OutputLayout};

use crate::SqlError;
use crate::manifests;

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
    /// `(table, folders)` pairs.
    pub tables: Vec<(String, Vec<PathBuf>)>,
    /// Its run manifest, when it has one.
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
        for (table, folders) in &dir.tables {
            let reference = TableReference::partial(dir.schema.as_str(), table.as_str());
            register_listing(ctx, reference, folders)
                .await
                .map_err(|e| SqlError::Data {
                    path: folders.first().cloned().unwrap_or_else(|| dir.path.clone()),
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
    let layout = OutputLayout::discover(path).map_err(|e| match e {
        IoError::Layout { .. } => SqlError::Usage(e.to_string()),
        other => SqlError::Data {
            path: path.to_path_buf(),
            message: other.to_string(),
        },
    })?;
    Ok(DataDir {
        path: path.to_path_buf(),
        name: dir_name(path),
        schema,
        tables: layout.tables,
        manifest: layout.manifest,
    })
}

/// One listing table over the `*.parquet` files of `folders` (as `register_parquet` makes for
/// one folder), its schema read from the first file.
async fn register_listing(
    ctx: &SessionContext,
    reference: TableReference,
    folders: &[PathBuf],
) -> datafusion::error::Result<()> {
    let urls = folders
        .iter()
        .map(|f| {
            let url = ListingTableUrl::parse(f.display().to_string())?;
            Ok(url.with_table_ref(reference.clone()))
        })
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    let options = ParquetReadOptions::default()
        .to_listing_options(&ctx.copied_config(), ctx.copied_table_options());
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .infer_schema(&ctx.state())
        .await?;
    let table = ListingTable::try_new(config)?
        .with_cache(ctx.runtime_env().cache_manager.get_file_statistic_cache());
    ctx.register_table(reference, Arc::new(table))?;
    Ok(())
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
