//! Generated documentation of the canonical schema (the files under `schemas/`).

use arrow::datatypes::{DataType, Field};
use serde_json::{Value, json};

use crate::{SCHEMA_VERSION, Trajectory, arrow_schema};

/// JSON Schema (draft 2020-12) of one canonical row as JSON, from the Rust types.
pub fn trajectory_json_schema() -> String {
    let schema = schemars::schema_for!(Trajectory);
    pretty(&serde_json::to_value(schema).unwrap_or(Value::Null))
}

/// The Arrow/Parquet layout: every column with its Arrow type and nullability.
pub fn trajectory_arrow_layout() -> String {
    arrow_layout(
        "trajforge canonical trajectory",
        SCHEMA_VERSION,
        &arrow_schema(),
        &[],
    )
}

/// Any Arrow layout as a JSON document: `name`, `schema_version`, and every column with its
/// Arrow type, nullability and, when `descriptions` has it, what it holds.
pub fn arrow_layout(
    name: &str,
    version: u32,
    schema: &arrow::datatypes::Schema,
    descriptions: &[(&str, &str)],
) -> String {
    let columns: Vec<Value> = schema
        .fields()
        .iter()
        .map(|f| {
            let mut doc = field_doc(f);
            if let Some((_, d)) = descriptions.iter().find(|(n, _)| n == f.name()) {
                doc["description"] = json!(d);
            }
            doc
        })
        .collect();
    pretty(&json!({
        "name": name,
        "schema_version": version,
        "columns": columns,
    }))
}

fn field_doc(f: &Field) -> Value {
    let mut doc =
        json!({ "name": f.name(), "type": type_name(f.data_type()), "nullable": f.is_nullable() });
    match f.data_type() {
        DataType::Struct(children) => {
            doc["fields"] = children.iter().map(|c| field_doc(c)).collect();
        }
        DataType::List(item) => {
            doc["item"] = field_doc(item);
        }
        _ => {}
    }
    doc
}

fn type_name(t: &DataType) -> String {
    match t {
        DataType::List(_) => "List".into(),
        DataType::Struct(_) => "Struct".into(),
        other => other.to_string(),
    }
}

/// Pretty JSON with a final newline, as the committed documents are written.
pub fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// Compares generated documents with the committed files in `dir`, or rewrites them when the
/// `UPDATE_SCHEMAS` environment variable is set; returns the names of the stale ones.
pub fn stale_documents(dir: &std::path::Path, documents: &[(&str, String)]) -> Vec<String> {
    let mut stale = Vec::new();
    for (name, generated) in documents {
        let path = dir.join(name);
        if std::env::var_os("UPDATE_SCHEMAS").is_some() {
            if std::fs::write(&path, generated).is_err() {
                stale.push(format!("{name} (cannot write)"));
            }
            continue;
        }
        if std::fs::read_to_string(&path).ok().as_ref() != Some(generated) {
            stale.push(name.to_string());
        }
    }
    stale
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    /// The committed `schemas/` files must equal what the types generate. Regenerate with
    /// `UPDATE_SCHEMAS=1 cargo test -p trajforge-schema`.
    #[test]
    fn committed_schema_documents_are_current() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
        let documents = [
            ("trajectory.schema.json", super::trajectory_json_schema()),
            ("trajectory.arrow.json", super::trajectory_arrow_layout()),
        ];
        let stale = super::stale_documents(&dir, &documents);
        assert!(
            stale.is_empty(),
            "schemas/{stale:?} stale: regenerate with UPDATE_SCHEMAS=1 cargo test -p trajforge-schema"
        );
    }
}
