//! The committed generated documents match the code.

use crate::schema::{operator_reference, pipeline_json_schema};
use crate::spec::{LoadOptions, load_str, registry};

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const BEGIN: &str = "<!-- BEGIN GENERATED OPERATORS -->\n";
const END: &str = "<!-- END GENERATED OPERATORS -->";

/// Regenerate with `UPDATE_SCHEMAS=1 cargo test -p trajforge-pipeline`.
#[test]
fn committed_pipeline_schema_and_operator_docs_are_current() {
    let schema_path = root().join("schemas/pipeline.schema.json");
    let readme_path = root().join("pipelines/README.md");
    let schema = pipeline_json_schema();
    let readme = std::fs::read_to_string(&readme_path).unwrap_or_default();
    let (head, rest) = readme.split_once(BEGIN).unwrap_or((&readme, END));
    let tail = rest.split_once(END).map_or("", |(_, t)| t);
    let fresh_readme = format!("{head}{BEGIN}{}{END}{tail}", operator_reference());
    if std::env::var("UPDATE_SCHEMAS").is_ok() {
        std::fs::write(&schema_path, &schema).expect("write schema");
        std::fs::write(&readme_path, &fresh_readme).expect("write readme");
    }
    let committed = std::fs::read_to_string(&schema_path).unwrap_or_default();
    assert!(
        committed == schema,
        "schemas/pipeline.schema.json is stale: run UPDATE_SCHEMAS=1 cargo test -p trajforge-pipeline"
    );
    assert!(
        readme == fresh_readme,
        "pipelines/README.md operator reference is stale: run UPDATE_SCHEMAS=1 cargo test -p trajforge-pipeline"
    );
}

/// Every documented example is a valid step.
#[test]
fn operator_examples_parse() {
    for entry in registry() {
        // `pack` follows `tokenize`; its example is shown after one.
        let before = if entry.name == "pack" {
            "  - op: tokenize\n"
        } else {
            ""
        };
        let yaml = format!(
            "version: 1\nsteps:\n{before}  - {}\n",
            entry.example.replace('\n', "\n    ")
        );
        let needs_files = entry.example.contains(".jsonl");
        let result = load_str(
            &yaml,
            "example.yaml",
            std::path::Path::new("."),
            &LoadOptions::default(),
            &|_| None,
        );
        match result {
            Ok(p) if entry.name == "write" => assert!(p.steps.is_empty()),
            Ok(p) if entry.name == "tokenize" => assert!(p.tokenize.is_some()),
            Ok(p) if entry.name == "pack" => assert!(p.pack.is_some()),
            Ok(p) => assert_eq!(p.steps[0].op, entry.name),
            // Examples that name a data file fail only because the file is absent here.
            Err(e) if needs_files => assert!(e.to_string().contains(".jsonl"), "{e}"),
            Err(e) => panic!("example of {} does not parse: {e}", entry.name),
        }
    }
}

/// The shipped pipelines load.
#[test]
fn shipped_pipelines_load() {
    for name in ["quickstart", "zero", "hero"] {
        let path = root().join(format!("pipelines/{name}.yaml"));
        let p = crate::spec::load(&path, &LoadOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(p.steps.len() >= 8, "{name}");
    }
}
