//! Generated documents: `schemas/train.schema.json` and the key reference of
//! `pipelines/TRAINING.md`, both from the types of [`crate::config`], so they cannot drift from
//! what the loader accepts (a test fails when the committed copies are stale).

use serde_json::Value;

/// `schemas/train.schema.json`.
pub fn train_json_schema() -> String {
    let mut schema = crate::config::json_schema();
    if let Some(o) = schema.as_object_mut() {
        o.insert("title".into(), "trajforge training run".into());
    }
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(r) => r.strip_prefix("#/").map_or(node, |p| {
            p.split('/').try_fold(root, |n, k| n.get(k)).unwrap_or(node)
        }),
        None => node,
    }
}

fn type_of(root: &Value, node: &Value) -> String {
    let node = resolve(root, node);
    if let Some(any) = node.get("anyOf").and_then(Value::as_array) {
        let parts: Vec<String> = any
            .iter()
            .map(|n| type_of(root, n))
            .filter(|t| t != "null")
            .collect();
        return parts.join(" | ");
    }
    match node.get("type") {
        Some(Value::String(t)) if t == "array" => {
            let item = node
                .get("items")
                .map(|i| type_of(root, i))
                .unwrap_or_default();
            format!("list of {item}")
        }
        Some(Value::String(t)) if t == "object" => "mapping".into(),
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join(" | "),
        _ => "any".into(),
    }
}

fn rows(root: &Value, node: &Value, prefix: &str, out: &mut Vec<String>) {
    let node = resolve(root, node);
    let required: Vec<&str> = node
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(props) = node.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, prop) in props {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let target = resolve(root, prop);
        let inner = match target.get("anyOf").and_then(Value::as_array) {
            Some(any) => any
                .iter()
                .map(|n| resolve(root, n))
                .find(|n| n.get("properties").is_some()),
            None => Some(target),
        };
        let items = target.get("items").map(|i| resolve(root, i));
        let default = prop
            .get("default")
            .map(|d| format!("`{d}`"))
            .unwrap_or_else(|| {
                if required.contains(&name.as_str()) {
                    "required".into()
                } else {
                    "none".into()
                }
            });
        let doc = prop
            .get("description")
            .or_else(|| target.get("description"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .replace('\n', " ");
        out.push(format!(
            "| `{key}` | {} | {default} | {doc} |",
            type_of(root, prop)
        ));
        if let Some(i) = inner.filter(|n| n.get("properties").is_some()) {
            rows(root, i, &key, out);
        }
        if let Some(i) = items.filter(|n| n.get("properties").is_some()) {
            rows(root, i, &format!("{key}[]"), out);
        }
    }
}

/// The table of every key of the training file, for `pipelines/TRAINING.md`.
pub fn key_reference() -> String {
    let schema = crate::config::json_schema();
    let mut out = vec![
        "| key | type | default | meaning |".to_string(),
        "|---|---|---|---|".to_string(),
    ];
    rows(&schema, &schema, "", &mut out);
    let mut text = out.join("\n");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    const BEGIN: &str = "<!-- BEGIN GENERATED KEYS -->\n";
    const END: &str = "<!-- END GENERATED KEYS -->";

    /// Regenerate with `UPDATE_SCHEMAS=1 cargo test -p trajforge-train`.
    #[test]
    fn committed_train_schema_and_key_reference_are_current() {
        let schema_path = root().join("schemas/train.schema.json");
        let doc_path = root().join("pipelines/TRAINING.md");
        let schema = train_json_schema();
        let doc = std::fs::read_to_string(&doc_path).unwrap_or_default();
        let (head, rest) = doc.split_once(BEGIN).unwrap_or((&doc, END));
        let tail = rest.split_once(END).map_or("", |(_, t)| t);
        let fresh = format!("{head}{BEGIN}{}{END}{tail}", key_reference());
        if std::env::var("UPDATE_SCHEMAS").is_ok() {
            std::fs::write(&schema_path, &schema).unwrap_or_else(|e| panic!("write schema: {e}"));
            std::fs::write(&doc_path, &fresh).unwrap_or_else(|e| panic!("write doc: {e}"));
        }
        let committed = std::fs::read_to_string(&schema_path).unwrap_or_default();
        assert!(
            committed == schema,
            "schemas/train.schema.json is stale: run UPDATE_SCHEMAS=1 cargo test -p trajforge-train"
        );
        assert!(
            doc == fresh,
            "pipelines/TRAINING.md key reference is stale: run UPDATE_SCHEMAS=1 cargo test -p trajforge-train"
        );
    }

    /// The shipped training files load (the zero-hero one needs its model folder, so only its
    /// YAML is read here: the model path is the part a user supplies).
    #[test]
    fn shipped_training_files_parse() {
        for name in ["train-quickstart.yaml", "train-zero-hero.yaml"] {
            let text =
                std::fs::read_to_string(root().join("pipelines").join(name)).unwrap_or_default();
            let env = |_: &str| Some("x".to_string());
            let node = trajforge_config::yaml::parse(&text, &env)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let parsed: Result<crate::config::TrainFile, _> = trajforge_config::from_node(&node);
            assert!(parsed.is_ok(), "{name}: {:?}", parsed.err());
        }
    }
}
