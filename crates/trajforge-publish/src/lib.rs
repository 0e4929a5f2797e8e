//! # trajforge-publish
//!
//! Turns a pipeline run into a dataset in the layout the Hugging Face Hub expects. [`shards`]
//! re-writes the kept trajectories as one config per training stage (`zero`, `hero`, or
//! `trajectories` when the run recorded none) and the packed rows as config `packed`, under
//! `data/<config>/train-NNNNN-of-NNNNN.parquet`, with shard and row-group sizes that suit the Hub
//! viewer; [`features`] derives each config's `dataset_info.features` from the Parquet schema;
//! [`card`] writes `README.md` (front matter with licenses, configs, features, size category and
//! tags; a body with counts, tokens, filters and every source's license and attribution, drawn
//! from `trajforge-report`'s statistics); [`sources`] knows the source datasets' licenses;
//! `provenance/` keeps the pipeline and manifest, and `SHA256SUMS` checksums every file. The
//! dataset is built in a temporary folder beside `--out` and renamed into place when complete.

pub mod card;
pub mod checksums;
pub mod features;
pub mod shards;
pub mod sources;

use std::path::{Path, PathBuf};

use trajforge_report::{Layout, Stats};

pub use shards::ConfigFiles;

/// What went wrong, and whose fault it is.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The command line asks for something impossible (the message says what to change).
    #[error("{0}")]
    Usage(String),
    /// The run's files are not what a run writes.
    #[error("{0}")]
    Data(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Report(#[from] trajforge_report::ReportError),
    #[error(transparent)]
    Write(#[from] trajforge_io::IoError),
}

impl PublishError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> PublishError {
        PublishError::Io {
            path: path.into(),
            source,
        }
    }
}

/// How to publish.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    pub run_dir: PathBuf,
    pub out: PathBuf,
    /// Dataset name for the card's title (default: `--out`'s folder name).
    pub name: Option<String>,
    /// A data file is closed once its share of the input reaches about this many bytes.
    pub shard_bytes: u64,
    /// Row groups are closed at this encoded size (the Hub viewer reads a row group at a time).
    pub row_group_bytes: usize,
    /// At most this many rows per row group.
    pub row_group_rows: usize,
    /// Replace `--out` when it already exists.
    pub overwrite: bool,
}

impl PublishOptions {
    pub fn new(run_dir: PathBuf, out: PathBuf) -> PublishOptions {
        PublishOptions {
            run_dir,
            out,
            name: None,
            // The Hub's own Parquet exports use files of up to ~500 MB.
            shard_bytes: 500_000_000,
            row_group_bytes: 32 << 20,
            row_group_rows: 1_000,
            overwrite: false,
        }
    }

    fn dataset_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            self.out
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "trajforge-dataset".into())
        })
    }
}

/// What was published.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Published {
    pub out: PathBuf,
    pub configs: Vec<ConfigFiles>,
    pub files: usize,
    pub bytes: u64,
}

/// Publishes `options.run_dir` as a dataset at `options.out`.
pub fn publish(options: &PublishOptions) -> Result<Published, PublishError> {
    let layout = Layout::discover(&options.run_dir)?;
    let Some(manifest) = layout.manifest.clone() else {
        return Err(PublishError::Usage(format!(
            "{}: no manifest.json; publish takes the output folder of `trajforge run`",
            options.run_dir.display()
        )));
    };
    if layout.trajectories.is_empty() {
        return Err(PublishError::Usage(format!(
            "{}: no kept trajectories (kept/*.parquet) to publish",
            options.run_dir.display()
        )));
    }
    check_out(options)?;
    let stats = Stats::compute(&layout)?;
    let parent = options
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| PublishError::io(parent, e))?;
    let staging = tempfile::Builder::new()
        .prefix(".trajforge-publish-")
        .tempdir_in(parent)
        .map_err(|e| PublishError::io(parent, e))?;
    let root = staging.path();
    let configs = shards::write_configs(&layout, &stats, options, root)?;
    let provenance = write_provenance(&options.run_dir, &manifest, root)?;
    let card = card::Card {
        name: &options.dataset_name(),
        stats: &stats,
        manifest: &manifest,
        configs: &configs,
        provenance: &provenance,
    };
    trajforge_io::writer::write_atomic(&root.join("README.md"), card.render()?.as_bytes())?;
    let (files, bytes) = checksums::write_sha256sums(root)?;
    finish(staging, options)?;
    Ok(Published {
        out: options.out.clone(),
        configs,
        files,
        bytes,
    })
}

/// Refuses an `--out` that would overwrite or hold the run, or that names a folder publish did
/// not write. Paths are compared resolved (symlinks, `..`), so `run/../run` is the run.
fn check_out(options: &PublishOptions) -> Result<(), PublishError> {
    let run = resolved(&options.run_dir);
    let out = resolved(&options.out);
    if out.starts_with(&run) || run.starts_with(&out) {
        return Err(PublishError::Usage(format!(
            "--out {} {} the run folder {}; publish next to it instead",
            options.out.display(),
            if out.starts_with(&run) {
                "is or is inside"
            } else {
                "holds"
            },
            options.run_dir.display()
        )));
    }
    if !options.out.exists() {
        return Ok(());
    }
    if !options.overwrite {
        return Err(PublishError::Usage(format!(
            "{} already exists; choose another --out or pass --overwrite to replace it",
            options.out.display()
        )));
    }
    if !is_empty_dir(&options.out) && !is_published_dataset(&options.out) {
        return Err(PublishError::Usage(format!(
            "--overwrite replaces only a dataset trajforge published (with {SHA256SUMS} and \
             {MANIFEST_COPY}) or an empty folder, and {} is neither; choose another --out or \
             remove it yourself",
            options.out.display()
        )));
    }
    Ok(())
}

/// The files by which publish recognises a dataset it wrote.
const SHA256SUMS: &str = checksums::FILE_NAME;
const MANIFEST_COPY: &str = "provenance/manifest.json";

fn is_published_dataset(dir: &Path) -> bool {
    dir.join(SHA256SUMS).is_file() && dir.join(MANIFEST_COPY).is_file()
}

fn is_empty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none())
}

/// `path` made absolute with symlinks and `..` resolved; the part that does not exist yet is
/// appended to its deepest existing ancestor, with `..` taken lexically.
fn resolved(path: &Path) -> PathBuf {
    use std::path::Component;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    let base = loop {
        if let Ok(real) = existing.canonicalize() {
            break real;
        }
        match (existing.parent(), existing.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                existing = parent;
            }
            _ => break existing.to_path_buf(),
        }
    };
    let mut out = base;
    for component in rest.into_iter().rev() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Renames the finished staging folder to `--out` (replacing it under `--overwrite`).
fn finish(staging: tempfile::TempDir, options: &PublishOptions) -> Result<(), PublishError> {
    use std::os::unix::fs::PermissionsExt;
    let built = staging.keep();
    std::fs::set_permissions(&built, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| PublishError::io(&built, e))?;
    if options.out.exists() {
        std::fs::remove_dir_all(&options.out).map_err(|e| PublishError::io(&options.out, e))?;
    }
    std::fs::rename(&built, &options.out).map_err(|e| PublishError::io(&options.out, e))
}

/// Files under `provenance/` (paths relative to the dataset root).
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    pub manifest: String,
    /// The pipeline YAML as written, when the path the manifest records still resolves.
    pub pipeline_yaml: Option<String>,
    /// The validated pipeline configuration the run executed (always present).
    pub resolved_config: String,
}

fn write_provenance(
    run_dir: &Path,
    manifest: &serde_json::Value,
    root: &Path,
) -> Result<Provenance, PublishError> {
    let dir = root.join("provenance");
    std::fs::create_dir_all(&dir).map_err(|e| PublishError::io(&dir, e))?;
    let write = |name: &str, bytes: &[u8]| -> Result<String, PublishError> {
        trajforge_io::writer::write_atomic(&dir.join(name), bytes)?;
        Ok(format!("provenance/{name}"))
    };
    let manifest_bytes = std::fs::read(run_dir.join("manifest.json"))
        .map_err(|e| PublishError::io(run_dir.join("manifest.json"), e))?;
    let mut provenance = Provenance {
        manifest: write("manifest.json", &manifest_bytes)?,
        ..Provenance::default()
    };
    let config = manifest.get("config").cloned().unwrap_or_default();
    let yaml = serde_norway::to_string(&config)
        .map_err(|e| PublishError::Data(format!("manifest config is not serialisable: {e}")))?;
    provenance.resolved_config = write("pipeline.resolved.yaml", yaml.as_bytes())?;
    if let Some(text) = pipeline_text(run_dir, manifest) {
        provenance.pipeline_yaml = Some(write("pipeline.yaml", text.as_bytes())?);
    }
    Ok(provenance)
}

/// The pipeline file the manifest names, read relative to the working directory the run was
/// started in (tried as given, then from the run folder's parents).
fn pipeline_text(run_dir: &Path, manifest: &serde_json::Value) -> Option<String> {
    let recorded = PathBuf::from(manifest.get("pipeline")?.as_str()?);
    let mut candidates = vec![recorded.clone()];
    let absolute = run_dir.canonicalize().ok()?;
    candidates.extend(absolute.ancestors().map(|a| a.join(&recorded)));
    candidates
        .into_iter()
        .find(|c| c.is_file())
        .and_then(|c| std::fs::read_to_string(c).ok())
}
