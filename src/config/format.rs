//! Config files are JSON, TOML or YAML, told apart by their extension.

use std::path::Path;

use serde_json::Value;

/// Reads a config file into a JSON value, whatever its format; the error says what went wrong.
pub fn read(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the file: {e}"))?;
    let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
    match extension.as_str() {
        "json" => serde_json::from_str(&text).map_err(|e| format!("invalid JSON: {e}")),
        "toml" => toml::from_str(&text).map_err(|e| format!("invalid TOML: {}", e.to_string().trim())),
        "yaml" | "yml" => serde_yaml_ng::from_str(&text).map_err(|e| format!("invalid YAML: {e}")),
        other => Err(format!("unsupported file extension {other:?}: use .json, .toml, .yaml or .yml")),
    }
}
