//! Hugging Face `datasets` features from an Arrow schema, in the YAML list form the Hub reads
//! from a card's `dataset_info.features` (the form `datasets.Features._to_yaml_list` writes).

use arrow::datatypes::{DataType, Field, Fields, TimeUnit};
use serde_json::{Map, Value, json};

use crate::PublishError;

/// `[{name, dtype | list | large_list | struct}]` for every field of `fields`.
pub fn yaml_features(fields: &Fields) -> Result<Value, PublishError> {
    fields
        .iter()
        .map(|f| named(f))
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

fn named(field: &Field) -> Result<Value, PublishError> {
    let mut entry = Map::new();
    entry.insert("name".into(), json!(field.name()));
    let (key, value) = feature(field.data_type(), field.name())?;
    entry.insert(key.into(), value);
    Ok(Value::Object(entry))
}

/// The `(key, value)` pair describing `dt`: `("dtype", "string")`, `("list", …)`, `("struct", […])`.
fn feature(dt: &DataType, name: &str) -> Result<(&'static str, Value), PublishError> {
    Ok(match dt {
        DataType::List(item) | DataType::ListView(item) => ("list", list_item(item, name)?),
        DataType::LargeList(item) | DataType::LargeListView(item) => {
            ("large_list", list_item(item, name)?)
        }
        DataType::Struct(fields) => ("struct", yaml_features(fields)?),
        other => ("dtype", json!(dtype(other, name)?)),
    })
}

/// A list's item: a bare dtype string, a list of struct fields, or a nested `{list: …}`.
fn list_item(item: &Field, name: &str) -> Result<Value, PublishError> {
    let (key, value) = feature(item.data_type(), name)?;
    Ok(match key {
        "dtype" | "struct" => value,
        _ => json!({ key: value }),
    })
}

fn dtype(dt: &DataType, name: &str) -> Result<String, PublishError> {
    let unit = |u: &TimeUnit| match u {
        TimeUnit::Second => "s",
        TimeUnit::Millisecond => "ms",
        TimeUnit::Microsecond => "us",
        TimeUnit::Nanosecond => "ns",
    };
    Ok(match dt {
        DataType::Null => "null".into(),
        DataType::Boolean => "bool".into(),
        DataType::Int8 => "int8".into(),
        DataType::Int16 => "int16".into(),
        DataType::Int32 => "int32".into(),
        DataType::Int64 => "int64".into(),
        DataType::UInt8 => "uint8".into(),
        DataType::UInt16 => "uint16".into(),
        DataType::UInt32 => "uint32".into(),
        DataType::UInt64 => "uint64".into(),
        DataType::Float16 => "float16".into(),
        DataType::Float32 => "float32".into(),
        DataType::Float64 => "float64".into(),
        DataType::Utf8 | DataType::Utf8View => "string".into(),
        DataType::LargeUtf8 => "large_string".into(),
        DataType::Binary | DataType::BinaryView => "binary".into(),
        DataType::LargeBinary => "large_binary".into(),
        DataType::Date32 => "date32".into(),
        DataType::Date64 => "date64".into(),
        DataType::Timestamp(u, None) => format!("timestamp[{}]", unit(u)),
        DataType::Timestamp(u, Some(tz)) => format!("timestamp[{}, tz={tz}]", unit(u)),
        other => {
            return Err(PublishError::Data(format!(
                "column {name}: type {other} has no Hugging Face `datasets` feature"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn nested_lists_and_structs_take_the_hub_yaml_form() {
        let call = Fields::from(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("arguments", DataType::LargeUtf8, false),
        ]);
        let message = Fields::from(vec![
            Field::new("role", DataType::Utf8, false),
            Field::new_list(
                "tool_calls",
                Field::new("element", DataType::Struct(call), false),
                false,
            ),
        ]);
        let fields = Fields::from(vec![
            Field::new("n", DataType::UInt32, false),
            Field::new_list("names", Field::new("element", DataType::Utf8, false), false),
            Field::new_list(
                "messages",
                Field::new("element", DataType::Struct(message), false),
                false,
            ),
            Field::new(
                "nested",
                DataType::List(Arc::new(Field::new_list(
                    "element",
                    Field::new("element", DataType::Int32, false),
                    false,
                ))),
                true,
            ),
        ]);
        let got = yaml_features(&fields).expect("features");
        let want = json!([
            {"name": "n", "dtype": "uint32"},
            {"name": "names", "list": "string"},
            {"name": "messages", "list": [
                {"name": "role", "dtype": "string"},
                {"name": "tool_calls", "list": [
                    {"name": "id", "dtype": "string"},
                    {"name": "arguments", "dtype": "large_string"}
                ]}
            ]},
            {"name": "nested", "list": {"list": "int32"}}
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn unsupported_types_name_the_column() {
        let fields = Fields::from(vec![Field::new(
            "when",
            DataType::Duration(TimeUnit::Second),
            true,
        )]);
        let err = yaml_features(&fields).expect_err("duration has no feature");
        assert!(err.to_string().contains("column when"), "{err}");
    }
}
