//! Config files are JSON, TOML or YAML, told apart by their extension, in UTF-8 with or
//! without the byte order mark some editors (Notepad, Visual Studio) write first.
//!
//! Every format reads into one JSON value, and means exactly what it says:
//! - a key given twice in one object is refused with its path (JSON and YAML parsers would keep
//!   the last one silently; TOML refuses it already);
//! - YAML merge keys (`<<: *defaults`, <https://yaml.org/type/merge.html>) are applied, as Gatus
//!   users write them;
//! - top-level keys starting with `x-` are a place for YAML anchors (as in compose files) and are
//!   left out of the config.

use std::cell::RefCell;
use std::fmt;
use std::path::Path;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why a file could not be read; `path` is where in the file, when the problem is at a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    pub path: String,
    pub message: String,
}

impl ReadError {
    fn whole_file(message: String) -> Self {
        ReadError { path: String::new(), message }
    }
}

/// Reads a config file into a JSON value, whatever its format.
pub fn read(path: &Path) -> Result<Value, ReadError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| ReadError::whole_file(format!("cannot read the file: {e}")))?;
    let text = without_bom(&text);
    let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
    let mut value = match extension.as_str() {
        "json" => strict(&mut serde_json::Deserializer::from_str(text), "JSON")?,
        "toml" => toml::from_str(text)
            .map_err(|e| ReadError::whole_file(format!("invalid TOML: {}", e.to_string().trim())))?,
        "yaml" | "yml" => {
            let mut value = strict(serde_yaml_ng::Deserializer::from_str(text), "YAML")?;
            apply_merge_keys(&mut value, "")?;
            value
        }
        other => {
            return Err(ReadError::whole_file(format!(
                "unsupported file extension {other:?}: use .json, .toml, .yaml or .yml"
            )));
        }
    };
    if let Value::Object(root) = &mut value {
        root.retain(|key, _| !key.starts_with("x-"));
    }
    Ok(value)
}

/// The text without a leading UTF-8 byte order mark (U+FEFF), which JSON parsers refuse
/// (RFC 8259 section 8.1 lets them) and which means nothing in UTF-8 anyway.
pub fn without_bom(text: &str) -> &str {
    text.strip_prefix('\u{FEFF}').unwrap_or(text)
}

/// Reads a whole document with `deserializer`, refusing duplicate keys.
fn strict<'de, D: de::Deserializer<'de>>(deserializer: D, format: &str) -> Result<Value, ReadError> {
    let duplicate = RefCell::new(None);
    let read = Strict { path: String::new(), duplicate: &duplicate }.deserialize(deserializer);
    match (read, duplicate.into_inner()) {
        (_, Some(path)) => Err(ReadError {
            path,
            message: "is given twice in one object: keep one (the parser would silently keep the last)".into(),
        }),
        (Ok(value), None) => Ok(value),
        (Err(error), None) => Err(ReadError::whole_file(format!("invalid {format}: {error}"))),
    }
}

/// Builds a JSON value like `serde_json::Value`'s own deserializer does, except that a key met
/// twice in one object stops the read and leaves its path in `duplicate`. Written here because
/// neither parser can be told to refuse duplicates when reading into a generic value (serde's
/// `deny_unknown_fields` and friends work on typed structs only), and one visitor serves both.
struct Strict<'a> {
    path: String,
    duplicate: &'a RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    /// As `serde_json::Value` does: a number JSON cannot hold (YAML's `.nan`, `.inf`) is null.
    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_string()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq
            .next_element_seed(Strict { path: format!("{}[{}]", self.path, items.len()), duplicate: self.duplicate })?
        {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(Key(key)) = map.next_key()? {
            let path = if self.path.is_empty() { key.clone() } else { format!("{}.{key}", self.path) };
            if object.contains_key(&key) {
                *self.duplicate.borrow_mut() = Some(path);
                return Err(de::Error::custom("duplicate key"));
            }
            let value = map.next_value_seed(Strict { path, duplicate: self.duplicate })?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// A map key as JSON spells it: YAML's `1:` or `true:` keys become `"1"` and `"true"`, as
/// `serde_json::Value` makes them.
struct Key(String);

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Key, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a string, number or boolean key")
            }
            fn visit_str<E>(self, value: &str) -> Result<Key, E> {
                Ok(Key(value.to_string()))
            }
            fn visit_bool<E>(self, value: bool) -> Result<Key, E> {
                Ok(Key(value.to_string()))
            }
            fn visit_i64<E>(self, value: i64) -> Result<Key, E> {
                Ok(Key(value.to_string()))
            }
            fn visit_u64<E>(self, value: u64) -> Result<Key, E> {
                Ok(Key(value.to_string()))
            }
            fn visit_f64<E>(self, value: f64) -> Result<Key, E> {
                Ok(Key(value.to_string()))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}

/// Applies YAML merge keys (<https://yaml.org/type/merge.html>), outermost first: `<<` names a
/// mapping, or a list of mappings, whose keys the surrounding mapping takes unless it has them
/// itself; of a list, earlier mappings win over later ones.
fn apply_merge_keys(value: &mut Value, path: &str) -> Result<(), ReadError> {
    match value {
        Value::Object(object) => {
            if let Some(merged) = object.remove("<<") {
                let sources = match merged {
                    Value::Object(source) => vec![source],
                    Value::Array(items) => items
                        .into_iter()
                        .map(|item| match item {
                            Value::Object(source) => Ok(source),
                            _ => Err(merge_error(path)),
                        })
                        .collect::<Result<_, _>>()?,
                    _ => return Err(merge_error(path)),
                };
                for source in sources {
                    for (key, item) in source {
                        object.entry(key).or_insert(item);
                    }
                }
            }
            for (key, item) in object.iter_mut() {
                let path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                apply_merge_keys(item, &path)?;
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                apply_merge_keys(item, &format!("{path}[{index}]"))?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn merge_error(path: &str) -> ReadError {
    ReadError {
        path: if path.is_empty() { "<<".into() } else { format!("{path}.<<") },
        message: "a merge key must name a mapping (<<: *defaults) or a list of mappings".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read_text(name: &str, text: &str) -> Result<Value, ReadError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        read(&path)
    }

    #[test]
    fn a_key_given_twice_is_refused_with_its_path_in_json_and_yaml() {
        let json = r#"{"assets": [{"id": "a"}, {"id": "b", "address": "http://x/", "address": "http://y/"}]}"#;
        let error = read_text("m.json", json).expect_err("duplicate");
        assert_eq!(error.path, "assets[1].address");
        assert!(error.message.starts_with("is given twice in one object"), "{error:?}");

        let yaml = "assets:\n  - id: a\n    metadata:\n      team: x\n      team: y\n";
        let error = read_text("m.yaml", yaml).expect_err("duplicate");
        assert_eq!(error.path, "assets[0].metadata.team");

        let toml = "[[assets]]\nid = \"a\"\nid = \"b\"\n";
        assert!(read_text("m.toml", toml).is_err(), "TOML refuses it itself");
        // The same key in two objects is fine.
        assert!(read_text("m.json", r#"{"a": {"k": 1}, "b": {"k": 2}}"#).is_ok());
    }

    #[test]
    fn yaml_merge_keys_are_applied_and_x_keys_hold_anchors() {
        let yaml = "\
x-defaults: &defaults
  assetType: http
  intervalSeconds: 30
  metadata: {team: web}
x-slow: &slow
  intervalSeconds: 300
  timeoutSeconds: 20
assets:
  - <<: *defaults
    id: a
    address: http://a/
  - <<: [*slow, *defaults]
    id: b
    address: http://b/
    metadata: {team: api}
";
        let value = read_text("m.yml", yaml).expect("valid");
        assert_eq!(
            value,
            json!({"assets": [
                {"id": "a", "address": "http://a/", "assetType": "http", "intervalSeconds": 30, "metadata": {"team": "web"}},
                {"id": "b", "address": "http://b/", "assetType": "http", "intervalSeconds": 300, "timeoutSeconds": 20,
                 "metadata": {"team": "api"}},
            ]})
        );
        let error = read_text("m.yml", "assets:\n  - <<: 5\n    id: a\n").expect_err("scalar merge");
        assert_eq!(error.path, "assets[0].<<");
    }

    #[test]
    fn yaml_scalars_read_as_before() {
        let value =
            read_text("m.yaml", "a: 1\nb: -2\nc: 1.5\nd: .nan\ne: ~\nf: yes\ng: 'x'\n3: three\n").expect("valid");
        assert_eq!(value, json!({"a": 1, "b": -2, "c": 1.5, "d": null, "e": null, "f": "yes", "g": "x", "3": "three"}));
    }
}
