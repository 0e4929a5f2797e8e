//! JSON as Python sees it. Chat templates run under `transformers` serialise tools and tool-call
//! arguments with `json.dumps(x, ensure_ascii=False)`: `", "` and `": "` separators, keys in
//! insertion order, non-ASCII kept, floats in `repr` form (`1.0`, `1e-05`, `1e+16`). [`Json`]
//! keeps what that needs (key order, integer vs float) and [`dumps`] writes it byte for byte.
//! (serde_json's `Value` sorts keys here: the workspace relies on that for content hashes.)

use std::fmt::Write as _;

use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

/// A JSON value with object keys in document order.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Array(Vec<Json>),
    /// Keys in first-seen order; a repeated key keeps its first position and its last value
    /// (Python's `json.loads` into a dict).
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Parses JSON text.
    pub fn parse(text: &str) -> Result<Json, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub fn is_object(&self) -> bool {
        matches!(self, Json::Object(_))
    }

    /// The value under `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(items) => items.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::UInt(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
        Ok(Json::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut items: Vec<(String, Json)> = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Json>()? {
            match items.iter_mut().find(|(key, _)| *key == k) {
                Some(slot) => slot.1 = v,
                None => items.push((k, v)),
            }
        }
        Ok(Json::Object(items))
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

/// Serialises in key order (minijinja with `preserve_order` keeps it).
impl Serialize for Json {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => s.serialize_unit(),
            Json::Bool(b) => s.serialize_bool(*b),
            Json::Int(i) => s.serialize_i64(*i),
            Json::UInt(u) => s.serialize_u64(*u),
            Json::Float(f) => s.serialize_f64(*f),
            Json::Str(t) => s.serialize_str(t),
            Json::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for v in items {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Json::Object(items) => {
                let mut map = s.serialize_map(Some(items.len()))?;
                for (k, v) in items {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// The `json.dumps` keywords templates pass through `tojson`.
#[derive(Debug, Clone, PartialEq)]
pub struct DumpOptions {
    /// Escape every non-ASCII character as `\uXXXX` (surrogate pairs above U+FFFF).
    pub ensure_ascii: bool,
    pub sort_keys: bool,
    /// `separators=(item, key)`.
    pub item_separator: String,
    pub key_separator: String,
}

/// transformers' defaults: `ensure_ascii=False`, `", "` and `": "`, keys in order.
impl Default for DumpOptions {
    fn default() -> Self {
        DumpOptions {
            ensure_ascii: false,
            sort_keys: false,
            item_separator: ", ".into(),
            key_separator: ": ".into(),
        }
    }
}

/// `json.dumps(value, ensure_ascii=False)`.
pub fn dumps(value: &Json) -> String {
    dumps_with(value, &DumpOptions::default())
}

/// `json.dumps(value, …)` with the given keywords.
pub fn dumps_with(value: &Json, opts: &DumpOptions) -> String {
    let mut out = String::new();
    write_json(value, opts, &mut out);
    out
}

fn write_json(value: &Json, opts: &DumpOptions, out: &mut String) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(true) => out.push_str("true"),
        Json::Bool(false) => out.push_str("false"),
        Json::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Json::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        Json::Float(f) => out.push_str(&float_repr(*f)),
        Json::Str(s) => write_str(s, opts.ensure_ascii, out),
        Json::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(&opts.item_separator);
                }
                write_json(v, opts, out);
            }
            out.push(']');
        }
        Json::Object(items) => {
            let mut entries: Vec<&(String, Json)> = items.iter().collect();
            if opts.sort_keys {
                // UTF-8 byte order is code-point order, which is how Python sorts str keys.
                entries.sort_by(|a, b| a.0.cmp(&b.0));
            }
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(&opts.item_separator);
                }
                write_str(k, opts.ensure_ascii, out);
                out.push_str(&opts.key_separator);
                write_json(v, opts, out);
            }
            out.push('}');
        }
    }
}

/// A JSON string as Python's encoder writes it: `"`, `\` and control characters below U+0020
/// escaped; with `ensure_ascii`, also everything outside printable ASCII (DEL included).
pub fn write_str(s: &str, ensure_ascii: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ensure_ascii && !(' '..='~').contains(&c)) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Python's `repr(float)` (what `json.dumps` writes): the shortest digits that round-trip,
/// positional when the decimal exponent is in -4..16, else `d.ddde+XX`; `NaN`, `Infinity`.
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "1.2345e-5", "1e16".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        let body = if point <= 0 {
            format!("0.{}{}", "0".repeat((-point) as usize), digits)
        } else if point as usize >= digits.len() {
            format!("{}{}.0", digits, "0".repeat(point as usize - digits.len()))
        } else {
            let (int, frac) = digits.split_at(point as usize);
            format!("{int}.{frac}")
        };
        format!("{sign}{body}")
    } else {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}{frac}e{esign}{:02}", exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected strings are what CPython 3.11 prints for `repr(x)` / `json.dumps(x,
    /// ensure_ascii=False)`.
    #[test]
    fn floats_print_like_python_repr() {
        let cases = [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123456789012345680.0, "1.2345678901234568e+17"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (0.00012345, "0.00012345"),
            (1.5e-7, "1.5e-07"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1e300, "1e+300"),
            (f64::INFINITY, "Infinity"),
            (f64::NAN, "NaN"),
        ];
        for (f, want) in cases {
            assert_eq!(float_repr(f), want, "{f:?}");
        }
    }

    #[test]
    fn dumps_matches_python_separators_order_and_escapes() {
        let v = Json::parse(r#"{"z": 1, "a": [true, null, 2.0, "é\n\"\\\u0001"], "m": {"k": -3}}"#)
            .expect("json");
        assert_eq!(
            dumps(&v),
            "{\"z\": 1, \"a\": [true, null, 2.0, \"é\\n\\\"\\\\\\u0001\"], \"m\": {\"k\": -3}}"
        );
    }

    /// CPython: `json.dumps({"é": "😀\x7f", "b": [1, 2], "a": None}, ensure_ascii=True,
    /// sort_keys=True, separators=(",", ":"))`.
    #[test]
    fn dumps_honours_ensure_ascii_sort_keys_and_separators() {
        let v = Json::parse(r#"{"é": "😀\u007f", "b": [1, 2], "a": null}"#).expect("json");
        let opts = DumpOptions {
            ensure_ascii: true,
            sort_keys: true,
            item_separator: ",".into(),
            key_separator: ":".into(),
        };
        assert_eq!(
            dumps_with(&v, &opts),
            r#"{"a":null,"b":[1,2],"\u00e9":"\ud83d\ude00\u007f"}"#
        );
        assert_eq!(
            dumps(&v),
            "{\"é\": \"😀\u{7f}\", \"b\": [1, 2], \"a\": null}"
        );
    }

    #[test]
    fn repeated_keys_keep_first_position_and_last_value() {
        let v = Json::parse(r#"{"a": 1, "b": 2, "a": 3}"#).expect("json");
        assert_eq!(dumps(&v), r#"{"a": 3, "b": 2}"#);
    }
}
