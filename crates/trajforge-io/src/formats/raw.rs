//! A JSON object whose fields are taken one by one, with the field path in every error; what
//! no reader took stays behind as raw JSON text for the `metadata` column.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::reject::{DataError, RejectKind};

/// An object's fields, still as raw JSON text.
#[derive(Debug)]
pub struct RawObject {
    path: String,
    fields: BTreeMap<String, Box<RawValue>>,
}

fn json_type(raw: &RawValue) -> &'static str {
    match raw.get().trim_start().as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// A "wrong type" error naming the path, what was expected and what was found.
pub fn wrong_type(path: &str, expected: &str, raw: &RawValue) -> DataError {
    DataError::new(
        RejectKind::WrongType,
        format!("{path}: expected {expected}, found {}", json_type(raw)),
    )
}

/// Serialises fields the readers keep for `metadata` (maps of JSON they already parsed, so a
/// failure here would be a bug, reported as a data error rather than a panic).
pub fn to_raw<T: Serialize + ?Sized>(value: &T) -> Result<Box<RawValue>, DataError> {
    serde_json::value::to_raw_value(value)
        .map_err(|e| DataError::new(RejectKind::InvalidJson, e.to_string()))
}

pub fn is_null(raw: &RawValue) -> bool {
    raw.get().trim() == "null"
}

impl RawObject {
    /// Reads `raw` as an object; `path` names it in errors (`trajectory[3]`).
    pub fn parse(raw: &RawValue, path: &str) -> Result<RawObject, DataError> {
        let fields =
            serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(raw.get()).map_err(|_| {
                wrong_type(
                    if path.is_empty() { "record" } else { path },
                    "an object",
                    raw,
                )
            })?;
        Ok(RawObject {
            path: path.to_string(),
            fields,
        })
    }

    pub fn has(&self, key: &str) -> bool {
        self.fields.contains_key(key)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.fields.keys().map(String::as_str)
    }

    /// The path of a field of this object, for error messages.
    pub fn path_of(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Takes a field out, treating JSON `null` as absent.
    pub fn take_raw(&mut self, key: &str) -> Option<Box<RawValue>> {
        self.fields.remove(key).filter(|v| !is_null(v))
    }

    /// Looks at a field without taking it.
    pub fn peek(&self, key: &str) -> Option<&RawValue> {
        self.fields.get(key).map(|b| &**b).filter(|v| !is_null(v))
    }

    /// Takes and decodes an optional field.
    pub fn take<T: DeserializeOwned>(
        &mut self,
        key: &str,
        expected: &str,
    ) -> Result<Option<T>, DataError> {
        let Some(raw) = self.take_raw(key) else {
            return Ok(None);
        };
        serde_json::from_str(raw.get())
            .map(Some)
            .map_err(|_| wrong_type(&self.path_of(key), expected, &raw))
    }

    pub fn take_string(&mut self, key: &str) -> Result<Option<String>, DataError> {
        self.take(key, "a string")
    }

    /// A string field that must be present.
    pub fn require_string(&mut self, key: &str) -> Result<String, DataError> {
        self.take_string(key)?.ok_or_else(|| self.missing(key))
    }

    /// An array field that must be present, as its raw elements.
    pub fn require_array(&mut self, key: &str) -> Result<Vec<Box<RawValue>>, DataError> {
        self.take(key, "an array")?.ok_or_else(|| self.missing(key))
    }

    /// A boolean that sources also write as 0/1 or 0.0/1.0.
    pub fn take_bool_like(&mut self, key: &str) -> Result<Option<bool>, DataError> {
        let Some(raw) = self.take_raw(key) else {
            return Ok(None);
        };
        match raw.get().trim() {
            "true" | "1" | "1.0" => Ok(Some(true)),
            "false" | "0" | "0.0" => Ok(Some(false)),
            _ => Err(wrong_type(&self.path_of(key), "a boolean or 0/1", &raw)),
        }
    }

    /// Any JSON value as its text (objects and arrays kept verbatim, strings unquoted).
    pub fn take_as_text(&mut self, key: &str) -> Result<Option<String>, DataError> {
        let Some(raw) = self.take_raw(key) else {
            return Ok(None);
        };
        if raw.get().trim_start().starts_with('"') {
            return serde_json::from_str(raw.get())
                .map(Some)
                .map_err(|_| wrong_type(&self.path_of(key), "a string", &raw));
        }
        Ok(Some(raw.get().to_string()))
    }

    pub fn missing(&self, key: &str) -> DataError {
        DataError::new(
            RejectKind::MissingField,
            format!("{}: required field is missing", self.path_of(key)),
        )
    }

    /// The fields nobody took.
    pub fn into_rest(self) -> BTreeMap<String, Box<RawValue>> {
        self.fields
    }
}
