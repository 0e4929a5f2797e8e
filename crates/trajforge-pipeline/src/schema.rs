//! Generated documents: the pipeline JSON Schema and the operator reference.
//!
//! Both come from the Rust types through the registry, so they cannot drift from what the
//! parser accepts; tests fail when the committed copies are stale.

use serde_json::{Map, Value, json};

use crate::spec::{PipelineFile, registry};

/// Moves `$defs` of a sub-schema into `defs` and returns the rest.
fn hoist(mut schema: Value, defs: &mut Map<String, Value>) -> Value {
    if let Some(Value::Object(d)) = schema.as_object_mut().and_then(|o| o.remove("$defs")) {
        defs.extend(d);
    }
    if let Some(o) = schema.as_object_mut() {
        o.remove("$schema");
        o.remove("title");
    }
    schema
}

/// `schemas/pipeline.schema.json`.
pub fn pipeline_json_schema() -> String {
    let mut defs = Map::new();
    let mut root = hoist(
        serde_json::to_value(schemars::schema_for!(PipelineFile)).unwrap_or_default(),
        &mut defs,
    );
    let mut variants = Vec::new();
    for entry in registry() {
        let mut step = hoist((entry.options_schema)(), &mut defs);
        let obj = step.as_object_mut().cloned().unwrap_or_default();
        let mut props = obj
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        props.insert("op".into(), json!({ "const": entry.name }));
        props.insert(
            "name".into(),
            json!({ "type": "string", "description": "Step name (the reason code); defaults to the operator name." }),
        );
        let mut required = vec![json!("op")];
        if let Some(Value::Array(r)) = obj.get("required") {
            required.extend(r.iter().cloned());
        }
        step = json!({
            "title": entry.name,
            "description": entry.summary,
            "type": "object",
            "properties": props,
            "required": required,
            "additionalProperties": false,
        });
        variants.push(step);
    }
    if let Some(steps) = root.pointer_mut("/properties/steps") {
        *steps = json!({
            "description": "The steps, in order; each names an `op` and its options.",
            "type": "array",
            "minItems": 1,
            "items": { "oneOf": variants },
        });
    }
    if let Some(o) = root.as_object_mut() {
        o.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        o.insert("title".into(), json!("trajforge pipeline"));
        o.insert("$defs".into(), Value::Object(defs));
    }
    let mut text = serde_json::to_string_pretty(&root).unwrap_or_default();
    text.push('\n');
    text
}

/// The operator reference section of `pipelines/README.md`.
pub fn operator_reference() -> String {
    let mut out = String::new();
    for entry in registry() {
        out.push_str(&format!(
            "### `{}` ({:?})\n\n{}\n\n",
            entry.name, entry.kind, entry.summary
        ));
        let schema = (entry.options_schema)();
        if let Some(props) = schema.pointer("/properties").and_then(Value::as_object)
            && !props.is_empty()
        {
            out.push_str("| option | description | default |\n|---|---|---|\n");
            for (name, p) in props {
                let desc = p
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .replace('\n', " ");
                let default = p
                    .get("default")
                    .map(|d| format!("`{d}`"))
                    .unwrap_or_else(|| "required".into());
                out.push_str(&format!("| `{name}` | {desc} | {default} |\n"));
            }
            out.push('\n');
        }
        out.push_str(&format!(
            "```yaml\nsteps:\n  - {}\n```\n\n",
            entry.example.replace('\n', "\n    ")
        ));
    }
    out
}
