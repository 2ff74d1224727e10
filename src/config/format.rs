//! Config files are JSON, TOML or YAML, told apart by their extension, in UTF-8 with or
//! without the byte order mark some editors (Notepad, Visual Studio) write first.

use std::path::Path;

use serde_json::Value;

/// Reads a config file into a JSON value, whatever its format; the error says what went wrong.
pub fn read(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the file: {e}"))?;
    let text = without_bom(&text);
    let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
    match extension.as_str() {
        "json" => serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}")),
        "toml" => toml::from_str(text).map_err(|e| format!("invalid TOML: {}", e.to_string().trim())),
        "yaml" | "yml" => serde_yaml_ng::from_str(text).map_err(|e| format!("invalid YAML: {e}")),
        other => Err(format!("unsupported file extension {other:?}: use .json, .toml, .yaml or .yml")),
    }
}

/// The text without a leading UTF-8 byte order mark (U+FEFF), which JSON parsers refuse
/// (RFC 8259 section 8.1 lets them) and which means nothing in UTF-8 anyway.
pub fn without_bom(text: &str) -> &str {
    text.strip_prefix('\u{FEFF}').unwrap_or(text)
}
