//! The pipeline file: read, overridden, validated into a resolved [`Pipeline`].
//!
//! The top level is a `deny_unknown_fields` struct; each step is a mapping whose `op` picks an
//! operator from the registry and whose other keys (but `name`) are that operator's options,
//! read into its own `deny_unknown_fields` struct. Every error names the file, line, key path
//! and, for a misspelt key, operator or value, the closest valid name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use trajforge_ops::{
    Operator, OperatorDef, PackOptions, RegistryVisitor, StepCtx, StepKind, TokenizeOptions,
    WriteOptions,
};
use xxhash_rust::xxh3::xxh3_128;

use crate::PipelineError;
use trajforge_config::de::{DeError, closest, from_node};
use trajforge_config::set::apply_set;
use trajforge_config::yaml::{self, Node, Value};

/// The YAML top level. `steps` is read step by step against the registry (see [`resolve`]).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    /// Format version of the pipeline file; must be 1.
    pub version: u32,
    /// Inputs: files, folders or globs in any format `trajforge ingest` reads, or canonical
    /// Parquet. Relative paths resolve against the pipeline file's folder.
    #[serde(default)]
    pub input: Vec<String>,
    /// Output folder (gets `kept/`, `filtered/`, `rejects/`, `manifest.json`).
    #[serde(default)]
    pub output: Option<String>,
    /// Force one input format instead of detecting it per file (e.g. `nvidia-openhands`).
    #[serde(default)]
    pub format: Option<String>,
    /// Memory the executor may use before it spills or fails: bytes or `512MiB`, `4GiB`
    /// (default 2GiB, or 60% of RAM when less). Measured peak RSS of zero.yaml: 1.1-1.2 GB at
    /// 1GiB, 1.5-1.9 GB at 2GiB, from 5k to 40k rows (bench/RESULTS.md).
    #[serde(default)]
    pub memory_limit: Option<String>,
    /// The steps, in order; each names an `op` and its options.
    #[schemars(with = "Vec<serde_json::Value>")]
    pub steps: StepsPlaceholder,
}

/// Accepts any value: the steps are read from the tree against the registry.
#[derive(Debug, Default)]
pub struct StepsPlaceholder;

impl<'de> Deserialize<'de> for StepsPlaceholder {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| StepsPlaceholder)
    }
}

/// A resolved step.
#[derive(Debug, Clone)]
pub struct Step {
    pub ctx: StepCtx,
    pub op: &'static str,
    pub kind: StepKind,
    pub operator: Arc<dyn Operator>,
    /// The options with defaults filled in, as recorded in the manifest.
    pub options: serde_json::Value,
}

/// A validated pipeline, ready to plan.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The pipeline file (for messages).
    pub file: String,
    pub base_dir: PathBuf,
    pub input: Vec<String>,
    pub output: Option<PathBuf>,
    pub format: Option<trajforge_io::Format>,
    pub memory_limit: Option<usize>,
    /// Filter and group steps, in order (the sink steps are taken out into `write`,
    /// `tokenize` and `pack`).
    pub steps: Vec<Step>,
    pub write: WriteOptions,
    /// Tokenize the kept rows after writing them.
    pub tokenize: Option<TokenizeOptions>,
    /// Pack the tokenized samples into training shards.
    pub pack: Option<PackOptions>,
    /// The resolved configuration (defaults filled, overrides applied).
    pub config: serde_json::Value,
    /// xxh3-128 of `config` (32 hex digits).
    pub config_hash: String,
}

/// One registry entry as the pipeline uses it.
pub struct Entry {
    pub name: &'static str,
    pub kind: StepKind,
    pub summary: &'static str,
    pub example: &'static str,
    #[allow(clippy::type_complexity)]
    build: fn(&Node, &StepCtx) -> Result<(Arc<dyn Operator>, serde_json::Value), DeError>,
    pub options_schema: fn() -> serde_json::Value,
}

fn build_with<O: OperatorDef>(
    node: &Node,
    ctx: &StepCtx,
) -> Result<(Arc<dyn Operator>, serde_json::Value), DeError> {
    let options: O::Options = from_node(node)?;
    let json = serde_json::to_value(&options).map_err(|e| DeError {
        message: format!("options cannot be recorded: {e}"),
        path: Some(node.path.clone()),
        at: Some(node.at.clone()),
        suggestion: None,
    })?;
    let op = O::build(options, ctx).map_err(|e| DeError {
        message: e.to_string(),
        path: Some(node.path.clone()),
        at: Some(node.at.clone()),
        suggestion: None,
    })?;
    Ok((op, json))
}

fn schema_of<O: OperatorDef>() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(O::Options)).unwrap_or_default()
}

/// The operator registry as entries.
pub fn registry() -> Vec<Entry> {
    struct Collect(Vec<Entry>);
    impl RegistryVisitor for Collect {
        fn visit<O: OperatorDef>(&mut self) {
            self.0.push(Entry {
                name: O::NAME,
                kind: O::KIND,
                summary: O::SUMMARY,
                example: O::EXAMPLE,
                build: build_with::<O>,
                options_schema: schema_of::<O>,
            });
        }
    }
    let mut c = Collect(Vec::new());
    trajforge_ops::visit_operators(&mut c);
    c.0
}

/// Parses `512MiB`, `4GiB`, `2GB`, `1000000`.
pub fn parse_bytes(text: &str) -> Option<usize> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" => 1e12,
        "tib" => 1024f64.powi(4),
        _ => return None,
    };
    Some((n * mult) as usize)
}

/// Where a config problem is, as text (`zero.yaml: line 4, column 3: steps[1].max: …`).
fn located(file: &str, e: impl std::fmt::Display) -> PipelineError {
    PipelineError::Config(format!("{file}: {e}"))
}

fn error_at(node: &Node, message: String, suggestion: Option<String>) -> DeError {
    DeError {
        message,
        path: Some(node.path.clone()),
        at: Some(node.at.clone()),
        suggestion,
    }
}

/// Everything needed to read a pipeline.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub sets: Vec<String>,
    /// Overrides `input`.
    pub inputs: Vec<String>,
    /// Overrides `output`.
    pub output: Option<PathBuf>,
}

/// Reads, overrides and validates a pipeline file.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Pipeline, PipelineError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        PipelineError::Config(format!("cannot read pipeline {}: {e}", path.display()))
    })?;
    let base_dir = path
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let env = |name: &str| std::env::var(name).ok();
    load_str(&text, &path.display().to_string(), &base_dir, opts, &env)
}

/// [`load`] from text (tests and `--explain` of inline pipelines).
pub fn load_str(
    text: &str,
    file: &str,
    base_dir: &Path,
    opts: &LoadOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Pipeline, PipelineError> {
    let mut root = yaml::parse(text, env).map_err(|e| located(file, e))?;
    for set in &opts.sets {
        apply_set(&mut root, set, env, &["name", "op"]).map_err(PipelineError::Config)?;
    }
    let top: PipelineFile = from_node(&root).map_err(|e| located(file, e))?;
    if top.version != 1 {
        let node = root.get("version").unwrap_or(&root);
        return Err(located(
            file,
            error_at(
                node,
                format!(
                    "version {} is not supported; write `version: 1`",
                    top.version
                ),
                None,
            ),
        ));
    }
    let steps_node = root.get("steps").cloned().unwrap_or(Node {
        value: Value::Null,
        at: root.at.clone(),
        path: "steps".into(),
    });
    let Resolved {
        steps,
        write,
        tokenize,
        pack,
        configs: step_configs,
    } = resolve(&steps_node, base_dir).map_err(|e| located(file, e))?;
    let resolve_path = |p: &str| {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base_dir.join(p)
        }
    };
    let input: Vec<String> = if opts.inputs.is_empty() {
        top.input
            .iter()
            .map(|i| resolve_path(i).display().to_string())
            .collect()
    } else {
        opts.inputs.clone()
    };
    let output = opts
        .output
        .clone()
        .or_else(|| top.output.as_deref().map(resolve_path));
    let format = match &top.format {
        Some(f) => Some(trajforge_io::Format::from_name(f).ok_or_else(|| {
            let node = root.get("format").unwrap_or(&root);
            let names: Vec<&str> = trajforge_io::Format::ALL.iter().map(|f| f.name()).collect();
            let hint = closest(f, names.iter().copied());
            located(
                file,
                error_at(
                    node,
                    format!("unknown format `{f}`; formats: {}", names.join(", ")),
                    hint,
                ),
            )
        })?),
        None => None,
    };
    let memory_limit = match &top.memory_limit {
        Some(m) => Some(parse_bytes(m).ok_or_else(|| {
            let node = root.get("memory_limit").unwrap_or(&root);
            located(
                file,
                error_at(
                    node,
                    format!("{m:?} is not a size; write bytes or e.g. 512MiB, 4GiB"),
                    None,
                ),
            )
        })?),
        None => None,
    };
    let config = serde_json::json!({
        "version": top.version,
        "format": top.format,
        "memory_limit": memory_limit,
        "steps": step_configs,
        "write": serde_json::to_value(&write).unwrap_or_default(),
    });
    let config_hash = format!("{:032x}", xxh3_128(config.to_string().as_bytes()));
    Ok(Pipeline {
        file: file.to_string(),
        base_dir: base_dir.to_path_buf(),
        input,
        output,
        format,
        memory_limit,
        steps,
        write,
        tokenize,
        pack,
        config,
        config_hash,
    })
}

/// The steps of a pipeline file, sinks taken out.
struct Resolved {
    steps: Vec<Step>,
    write: WriteOptions,
    tokenize: Option<TokenizeOptions>,
    pack: Option<PackOptions>,
    configs: Vec<serde_json::Value>,
}

/// The sinks in the order they must appear, after every filter and group step.
const SINK_ORDER: [&str; 3] = ["write", "tokenize", "pack"];

/// Reads the steps against the registry.
fn resolve(steps_node: &Node, base_dir: &Path) -> Result<Resolved, DeError> {
    let Value::Seq(items) = &steps_node.value else {
        return Err(error_at(
            steps_node,
            format!("steps must be a list of steps, found {}", steps_node.kind()),
            None,
        ));
    };
    if items.is_empty() {
        return Err(error_at(
            steps_node,
            "the pipeline has no steps".into(),
            None,
        ));
    }
    let registry = registry();
    let names: Vec<&str> = registry.iter().map(|e| e.name).collect();
    let mut steps = Vec::new();
    let mut configs = Vec::new();
    let mut write = None;
    let (mut tokenize, mut pack) = (None, None);
    // Index in SINK_ORDER of the last sink seen.
    let mut last_sink: Option<usize> = None;
    for (index, item) in items.iter().enumerate() {
        let Value::Map(entries) = &item.value else {
            return Err(error_at(
                item,
                format!("a step must be a mapping with `op`, found {}", item.kind()),
                None,
            ));
        };
        let op_node = item
            .get("op")
            .ok_or_else(|| error_at(item, "step has no `op`".into(), None))?;
        let op = op_node.as_str().ok_or_else(|| {
            error_at(
                op_node,
                format!("op must be a name, found {}", op_node.kind()),
                None,
            )
        })?;
        let Some(entry) = registry.iter().find(|e| e.name == op) else {
            return Err(error_at(
                op_node,
                format!("unknown operator `{op}`; operators: {}", names.join(", ")),
                closest(op, names.iter().copied()),
            ));
        };
        let name = match item.get("name") {
            Some(n) => n
                .as_str()
                .ok_or_else(|| {
                    error_at(
                        n,
                        format!("name must be a string, found {}", n.kind()),
                        None,
                    )
                })?
                .to_string(),
            None => op.to_string(),
        };
        if steps.iter().any(|s: &Step| s.ctx.name == name) {
            return Err(error_at(
                item,
                format!("two steps are named `{name}`; give one a distinct `name:`"),
                None,
            ));
        }
        let sink_rank = SINK_ORDER.iter().position(|s| *s == op);
        if let Some(seen) = last_sink.filter(|&seen| sink_rank.is_none_or(|r| r <= seen)) {
            return Err(error_at(
                item,
                format!(
                    "`{op}` cannot follow `{}`: filter and group steps come first, then `write`, `tokenize`, `pack`, each at most once",
                    SINK_ORDER[seen]
                ),
                None,
            ));
        }
        if op == "pack" && last_sink != Some(1) {
            return Err(error_at(
                item,
                "`pack` needs a `tokenize` step right before it".into(),
                None,
            ));
        }
        if sink_rank.is_some() {
            last_sink = sink_rank;
        }
        let options = Node {
            value: Value::Map(
                entries
                    .iter()
                    .filter(|(k, _)| k.name != "op" && k.name != "name")
                    .cloned()
                    .collect(),
            ),
            at: item.at.clone(),
            path: item.path.clone(),
        };
        let ctx = StepCtx {
            index,
            name: name.clone(),
            base_dir: base_dir.to_path_buf(),
        };
        let (operator, json) = (entry.build)(&options, &ctx)?;
        configs.push(serde_json::json!({ "name": name, "op": op, "options": json }));
        if let Some(w) = operator.write_options() {
            write = Some(w.clone());
            continue;
        }
        if let Some(t) = operator.tokenize_options() {
            tokenize = Some(t.clone());
            continue;
        }
        if let Some(p) = operator.pack_options() {
            pack = Some(p.clone());
            continue;
        }
        steps.push(Step {
            ctx,
            op: entry.name,
            kind: entry.kind,
            operator,
            options: json,
        });
    }
    Ok(Resolved {
        steps,
        write: write.unwrap_or_default(),
        tokenize,
        pack,
        configs,
    })
}

/// Serialises the resolved steps for `--explain`.
#[derive(Debug, Serialize)]
pub struct ExplainStep<'a> {
    pub index: usize,
    pub name: &'a str,
    pub op: &'a str,
    pub kind: StepKind,
    pub options: &'a serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str, sets: &[&str]) -> Result<Pipeline, PipelineError> {
        let env = |k: &str| match k {
            "THRESH" => Some("0.9".to_string()),
            _ => None,
        };
        let opts = LoadOptions {
            sets: sets.iter().map(|s| s.to_string()).collect(),
            ..LoadOptions::default()
        };
        load_str(text, "p.yaml", Path::new("/base"), &opts, &env)
    }

    const GOOD: &str = "version: 1\ninput: [raw]\noutput: out\nsteps:\n  - op: max_assistant_turns\n    max: 50\n  - op: near_dedupe\n    name: dedupe\n    threshold: ${THRESH}\n  - op: write\n    sort_by: [instance_id]\n";

    #[test]
    fn resolves_steps_defaults_env_and_paths() {
        let p = load_text(GOOD, &[]).expect("valid");
        assert_eq!(p.steps.len(), 2);
        assert_eq!(p.steps[1].ctx.name, "dedupe");
        assert_eq!(p.steps[1].options["threshold"], 0.9);
        assert_eq!(p.steps[1].options["num_perm"], 128);
        assert_eq!(p.write.sort_by, ["instance_id"]);
        assert_eq!(p.input, ["/base/raw"]);
        assert_eq!(p.output, Some(PathBuf::from("/base/out")));
        assert_eq!(p.config_hash.len(), 32);
    }

    #[test]
    fn set_overrides_by_step_name_index_and_top_level() {
        let p = load_text(
            GOOD,
            &[
                "steps.dedupe.threshold=0.7",
                "steps.0.max=10",
                "memory_limit=1GiB",
            ],
        )
        .expect("valid");
        assert_eq!(p.steps[1].options["threshold"], 0.7);
        assert_eq!(p.steps[0].options["max"], 10);
        assert_eq!(p.memory_limit, Some(1 << 30));
        let base = load_text(GOOD, &[]).expect("valid");
        assert_ne!(p.config_hash, base.config_hash);
    }

    fn err(text: &str, sets: &[&str]) -> String {
        load_text(text, sets).expect_err("invalid").to_string()
    }

    #[test]
    fn unknown_operator_names_the_line_and_suggests() {
        let e = err(&GOOD.replace("op: near_dedupe", "op: near_dedup"), &[]);
        assert!(
            e.starts_with("p.yaml: line 7, column 9: steps[1].op: unknown operator `near_dedup`"),
            "{e}"
        );
        assert!(e.contains("did you mean `near_dedupe`"), "{e}");
    }

    #[test]
    fn unknown_option_key_and_wrong_type_are_located() {
        let e = err(&GOOD.replace("    max: 50", "    maxx: 50"), &[]);
        assert!(
            e.contains("line 6, column 5: steps[0].maxx: unknown key `maxx`"),
            "{e}"
        );
        assert!(e.contains("did you mean `max`"), "{e}");
        let e = err(&GOOD.replace("max: 50", "max: lots"), &[]);
        assert!(
            e.contains("line 6, column 10: steps[0].max: invalid type: string \"lots\""),
            "{e}"
        );
        let e = err(&GOOD.replace("version: 1", "version: 1\nouptut: x"), &[]);
        assert!(e.contains("did you mean `output`"), "{e}");
    }

    #[test]
    fn set_errors_name_the_argument() {
        let e = err(GOOD, &["steps.dedup.threshold=0.7"]);
        assert!(
            e.contains("no entry of steps is named `dedup`") && e.contains("did you mean `dedupe`"),
            "{e}"
        );
        let e = err(GOOD, &["steps.dedupe.treshold=0.7"]);
        assert!(
            e.contains("--set steps.dedupe.treshold=0.7: steps[1].treshold: unknown key"),
            "{e}"
        );
        let e = err(GOOD, &["steps.dedupe.threshold=high"]);
        assert!(e.contains("--set steps.dedupe.threshold=high"), "{e}");
        assert!(err(GOOD, &["nonsense"]).contains("expected KEY=VALUE"));
    }

    #[test]
    fn operator_validation_errors_are_located() {
        let e = err(&GOOD.replace("${THRESH}", "1.5"), &[]);
        assert!(e.contains("steps[1]: threshold must be in (0, 1]"), "{e}");
        let e = err(
            &GOOD.replace(
                "  - op: write\n    sort_by: [instance_id]\n",
                "  - op: write\n  - op: non_empty_patch\n",
            ),
            &[],
        );
        assert!(
            e.contains(
                "`non_empty_patch` cannot follow `write`: filter and group steps come first"
            ),
            "{e}"
        );
        let tail = |steps: &str| {
            GOOD.replace(
                "  - op: write\n    sort_by: [instance_id]\n",
                &format!("  - op: write\n{steps}"),
            )
        };
        let e = err(&tail("  - op: pack\n"), &[]);
        assert!(
            e.contains("`pack` needs a `tokenize` step right before it"),
            "{e}"
        );
        let e = err(
            &tail("  - op: tokenize\n  - op: pack\n  - op: tokenize\n"),
            &[],
        );
        assert!(e.contains("`tokenize` cannot follow `pack`"), "{e}");
        let p = load_text(
            &tail("  - op: tokenize\n    max_tokens: 64\n  - op: pack\n"),
            &[],
        )
        .expect("write, tokenize, pack in order");
        assert_eq!(p.tokenize.as_ref().and_then(|t| t.max_tokens), Some(64));
        assert_eq!(p.pack.as_ref().map(|p| p.pack_len), Some(32_768));
        let e = err(
            &GOOD.replace("name: dedupe", "name: max_assistant_turns"),
            &[],
        );
        assert!(
            e.contains("two steps are named `max_assistant_turns`"),
            "{e}"
        );
        assert!(err("version: 2\nsteps: []\n", &[]).contains("version 2 is not supported"));
        assert!(err("version: 1\nsteps: []\n", &[]).contains("no steps"));
        assert!(
            err(
                "version: 1\nmemory_limit: lots\nsteps: [{op: non_empty_patch}]\n",
                &[]
            )
            .contains("not a size")
        );
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("512MiB"), Some(512 << 20));
        assert_eq!(parse_bytes("2GB"), Some(2_000_000_000));
        assert_eq!(parse_bytes("1000"), Some(1000));
        assert_eq!(parse_bytes("1.5GiB"), Some(3 << 29));
        assert_eq!(parse_bytes("x"), None);
    }
}
