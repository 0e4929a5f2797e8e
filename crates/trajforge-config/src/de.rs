//! Reads a located YAML tree into typed structs with serde, keeping the location.
//!
//! The error type records the key path and line of the node being read when serde reports a
//! problem, and for an unknown field or variant it also picks the closest valid name (serde
//! hands the deserializer the list of expected names, so the suggestion needs no guessing).

use std::fmt;

use serde::de::{
    self, DeserializeSeed, Error as _, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};

use crate::yaml::{Key, Node, Origin, Value, child_path};

/// A typed-read error with its place in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct DeError {
    pub message: String,
    pub path: Option<String>,
    pub at: Option<Origin>,
    pub suggestion: Option<String>,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(at) = &self.at {
            write!(f, "{at}: ")?;
        }
        if let Some(path) = self.path.as_deref().filter(|p| !p.is_empty()) {
            write!(f, "{path}: ")?;
        }
        write!(f, "{}", self.message)?;
        if let Some(s) = &self.suggestion {
            write!(f, " (did you mean `{s}`?)")?;
        }
        Ok(())
    }
}

impl std::error::Error for DeError {}

/// The valid name closest to `given`, if any is close enough to be a likely typo.
pub fn closest<'a>(given: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(given, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3) && *d < c.len().max(given.len()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_string())
}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            message: msg.to_string(),
            path: None,
            at: None,
            suggestion: None,
        }
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let mut e = DeError::custom(format!(
            "unknown key `{field}`; valid keys: {}",
            expected.join(", ")
        ));
        e.suggestion = closest(field, expected.iter().copied());
        e
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let mut e = DeError::custom(format!(
            "unknown value `{variant}`; expected one of: {}",
            expected.join(", ")
        ));
        e.suggestion = closest(variant, expected.iter().copied());
        e
    }
}

impl DeError {
    /// Attaches the location of the innermost node that saw the error.
    fn locate(mut self, path: &str, at: &Origin) -> Self {
        if self.at.is_none() {
            self.at = Some(at.clone());
            self.path = Some(path.to_string());
        }
        self
    }
}

/// Reads a node into `T`.
pub fn from_node<T: de::DeserializeOwned>(node: &Node) -> Result<T, DeError> {
    T::deserialize(node)
}

struct KeyDe<'a> {
    key: &'a Key,
    path: String,
}

impl<'de> de::Deserializer<'de> for KeyDe<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor
            .visit_borrowed_str(&self.key.name)
            .map_err(|e: DeError| e.locate(&self.path, &self.key.at))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

struct Entries<'a> {
    entries: std::slice::Iter<'a, (Key, Node)>,
    value: Option<&'a Node>,
    path: &'a str,
}

impl<'de> MapAccess<'de> for Entries<'de> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(value);
        seed.deserialize(KeyDe {
            key,
            path: child_path(self.path, &key.name),
        })
        .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        match self.value.take() {
            Some(node) => seed.deserialize(node),
            None => Err(DeError::custom("value read before its key")),
        }
    }
}

struct Items<'a>(std::slice::Iter<'a, Node>);

impl<'de> SeqAccess<'de> for Items<'de> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        self.0.next().map(|n| seed.deserialize(n)).transpose()
    }
}

impl<'de> de::Deserializer<'de> for &'de Node {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Str(s) => visitor.visit_borrowed_str(s),
            Value::Seq(items) => visitor.visit_seq(Items(items.iter())),
            Value::Map(entries) => visitor.visit_map(Entries {
                entries: entries.iter(),
                value: None,
                path: &self.path,
            }),
        };
        result.map_err(|e| e.locate(&self.path, &self.at))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let result = match &self.value {
            Value::Str(s) => {
                let d: de::value::StrDeserializer<DeError> = s.as_str().into_deserializer();
                visitor.visit_enum(d)
            }
            _ => Err(DeError::custom(format!(
                "expected a name, found {}",
                self.kind()
            ))),
        };
        result.map_err(|e| e.locate(&self.path, &self.at))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Opts {
        threshold: f64,
        #[serde(default)]
        keep: Option<Mode>,
        #[serde(default)]
        names: Vec<String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Mode {
        First,
        Best,
    }

    fn read(text: &str) -> Result<Opts, DeError> {
        from_node(&parse(text, &|_| None).expect("yaml"))
    }

    #[test]
    fn reads_typed_values() {
        let o = read("threshold: 1\nkeep: best\nnames: [a, b]\n").expect("reads");
        assert_eq!(
            o,
            Opts {
                threshold: 1.0,
                keep: Some(Mode::Best),
                names: vec!["a".into(), "b".into()]
            }
        );
    }

    #[test]
    fn unknown_keys_are_located_with_a_suggestion() {
        let e = read("threshold: 0.5\nthreshhold: 0.8\n").expect_err("unknown key");
        assert_eq!(e.at, Some(Origin::File { line: 2, col: 1 }));
        assert_eq!(e.path.as_deref(), Some("threshhold"));
        assert_eq!(e.suggestion.as_deref(), Some("threshold"));
        assert!(e.to_string().contains("did you mean `threshold`"), "{e}");
    }

    #[test]
    fn wrong_types_and_variants_name_the_key_and_line() {
        let e = read("threshold: high\n").expect_err("type");
        assert_eq!(e.path.as_deref(), Some("threshold"));
        assert!(e.message.contains("invalid type"), "{e}");
        assert_eq!(e.at, Some(Origin::File { line: 1, col: 12 }));
        let e = read("threshold: 1\nkeep: bset\n").expect_err("variant");
        assert_eq!(e.suggestion.as_deref(), Some("best"));
        assert_eq!(e.path.as_deref(), Some("keep"));
        let e = read("threshold: 1\nnames: [a, 3]\n").expect_err("item type");
        assert_eq!(e.path.as_deref(), Some("names[1]"));
    }

    #[test]
    fn missing_fields_point_at_the_mapping() {
        let e = read("keep: first\n").expect_err("missing");
        assert!(e.message.contains("missing field `threshold`"), "{e}");
    }

    #[test]
    fn suggestions_only_for_near_misses() {
        assert_eq!(closest("tresh", ["threshold", "keep"]), None);
        assert_eq!(
            closest("near_dedup", ["near_dedupe", "exact_dedupe"]).as_deref(),
            Some("near_dedupe")
        );
        assert_eq!(closest("xyz", ["where"]), None);
    }
}
