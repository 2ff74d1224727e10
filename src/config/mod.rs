//! The config files: what to watch (the manifest) and whom to tell (the notifiers).
//!
//! Loading never stops at the first mistake. Every problem is collected with its file and the
//! path of the offending value (`assets[2].intervalSeconds: must be at least 1`), so a single
//! `statusd check-config` shows everything there is to fix, and `statusd run` refuses to start
//! with exactly the same list. Warnings (a setting that works, but maybe not as meant) are
//! collected the same way; they never stop a load.

pub mod diff;
pub(crate) mod format;
pub mod manifest;
pub mod notifiers;
pub mod watcher;

use std::borrow::Cow;
use std::fmt;
use std::path::Path;

use serde::Deserialize;

pub use manifest::{AssetConfig, Manifest};
pub use notifiers::{NotificationPolicy, NotifiersConfig};

/// Both config files, loaded and validated together.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub manifest: Manifest,
    pub notifiers: NotifiersConfig,
    /// What works but may not be what was meant (a timeout longer than the interval):
    /// `check-config` prints these, `run` and every reload log them.
    pub warnings: Vec<Problem>,
}

impl Config {
    /// Loads and validates both files, reporting every problem in either of them.
    pub fn load(manifest_path: &Path, notifiers_path: &Path) -> Result<Config, Problems> {
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        let manifest = load_file(manifest_path, &mut problems, &mut warnings, manifest::parse);
        let notifiers = load_file(notifiers_path, &mut problems, &mut warnings, notifiers::parse);
        match (manifest, notifiers) {
            (Some(manifest), Some(notifiers)) if problems.is_empty() => Ok(Config { manifest, notifiers, warnings }),
            _ => Err(Problems(problems)),
        }
    }

    /// Logs every warning, at start and at each reload.
    pub fn log_warnings(&self) {
        for warning in &self.warnings {
            tracing::warn!(file = %warning.file, path = %warning.path, "config warning: {}", warning.message);
        }
    }
}

/// Reads one config file and parses it, adding every problem and warning found.
fn load_file<T>(
    path: &Path,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
    parse: impl FnOnce(&serde_json::Value, &mut Report<'_>) -> Option<T>,
) -> Option<T> {
    let file = path.display().to_string();
    let mut report = Report::new(&file, problems);
    let parsed = match format::read(path) {
        Ok(value) => {
            report_nul_characters(&value, "", &mut report);
            parse(&value, &mut report)
        }
        Err(error) => {
            report.problem(error.path, error.message);
            None
        }
    };
    warnings.extend(report.into_warnings());
    parsed
}

/// One thing wrong (or, as a warning, odd) in a config file: where it is and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    /// JSON-style path of the value (`assets[2].intervalSeconds`); empty for the whole file.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}: {}: {}", self.file, self.path, self.message)
        }
    }
}

/// Every problem found in a config; never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "{n} problem{} in the config:", if n == 1 { "" } else { "s" })?;
        for problem in &self.0 {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

/// Collects the problems (and warnings) of one file, so validation code only says where and
/// what.
pub struct Report<'a> {
    file: &'a str,
    problems: &'a mut Vec<Problem>,
    warnings: Vec<Problem>,
}

impl<'a> Report<'a> {
    pub fn new(file: &'a str, problems: &'a mut Vec<Problem>) -> Self {
        Report { file, problems, warnings: Vec::new() }
    }

    pub fn problem(&mut self, path: impl fmt::Display, message: impl fmt::Display) {
        self.problems.push(Problem {
            file: self.file.to_string(),
            path: path.to_string(),
            message: message.to_string(),
        });
    }

    /// Something that works but may not be what was meant: reported, never refused.
    pub fn warning(&mut self, path: impl fmt::Display, message: impl fmt::Display) {
        self.warnings.push(Problem {
            file: self.file.to_string(),
            path: path.to_string(),
            message: message.to_string(),
        });
    }

    /// The warnings collected so far.
    pub fn warnings(&self) -> &[Problem] {
        &self.warnings
    }

    pub fn into_warnings(self) -> Vec<Problem> {
        self.warnings
    }

    /// Checks every whole-number field of `object` (at `path`) that `bounds` names, on the
    /// value as written, before serde: each refused number is reported with its key and its
    /// range (serde would say only "expected u32", and loses the key inside flattened probe
    /// settings). Returns the object to parse on: itself when all are in range, otherwise a copy
    /// without the refused fields, so the rest is still checked and reported, and whether all
    /// were in range (if not, what is parsed from the copy must not be used).
    fn bounded<'v>(
        &mut self,
        path: &str,
        object: &'v serde_json::Value,
        bounds: &[&[Bound]],
    ) -> (Cow<'v, serde_json::Value>, bool) {
        let mut refused = Vec::new();
        for bound in bounds.iter().flat_map(|b| b.iter()) {
            if let Some(value) = object.get(bound.key) {
                let before = self.problems.len();
                bound.check(value, &join_path(path, bound.key), self);
                if self.problems.len() != before {
                    refused.push(bound.key);
                }
            }
        }
        if refused.is_empty() {
            return (Cow::Borrowed(object), true);
        }
        let mut rest = object.clone();
        if let Some(fields) = rest.as_object_mut() {
            for key in refused {
                fields.remove(key);
            }
        }
        (Cow::Owned(rest), false)
    }

    /// Records a serde error for the value at `path`, keeping serde's own path inside it.
    fn deserialize_error(&mut self, path: &str, error: serde_path_to_error::Error<serde_json::Error>) {
        let inner = error.path().to_string();
        let full = if inner == "." || inner == "?" {
            path.to_string()
        } else if path.is_empty() {
            inner
        } else {
            format!("{path}.{inner}")
        };
        self.problem(full, error.into_inner());
    }

    /// Reports every key of `input` that `known` does not have, suggesting a close match.
    fn unknown_fields(&mut self, path: &str, input: &serde_json::Value, known: &[&str]) {
        let Some(object) = input.as_object() else {
            return;
        };
        for key in object.keys().filter(|k| !known.contains(&k.as_str())) {
            let message = match closest(key, known) {
                Some(near) => format!("unknown field (did you mean `{near}`?)"),
                None => format!("unknown field (known: {})", known.join(", ")),
            };
            self.problem(join_path(path, key), message);
        }
    }
}

/// The range of a whole-number field: every number statusd reads from a file, the environment
/// or a flag has one, so that no value a person can write makes arithmetic on it overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// The field's name as written (`intervalSeconds`; dotted for settings, `retention.days`).
    pub key: &'static str,
    pub min: u64,
    pub max: u64,
    /// A list of such numbers (`expectedStatusCodes`), each checked.
    pub list: bool,
}

impl Bound {
    pub const fn new(key: &'static str, min: u64, max: u64) -> Bound {
        Bound { key, min, max, list: false }
    }

    /// A list whose every element must be in range.
    pub const fn each(key: &'static str, min: u64, max: u64) -> Bound {
        Bound { key, min, max, list: true }
    }

    /// Reports why `value`, found at `path`, is refused, if it is. `null` is left to serde: it
    /// means "the default" for optional fields.
    fn check(&self, value: &serde_json::Value, path: &str, report: &mut Report<'_>) {
        match value {
            serde_json::Value::Null => {}
            serde_json::Value::Array(items) if self.list => {
                for (index, item) in items.iter().enumerate() {
                    if let Err(message) = self.refusal(item) {
                        report.problem(format!("{path}[{index}]"), message);
                    }
                }
            }
            _ if self.list => {
                report.problem(path, format!("must be a list of whole numbers from {} to {}", self.min, self.max))
            }
            _ => {
                if let Err(message) = self.refusal(value) {
                    report.problem(path, message);
                }
            }
        }
    }

    /// Why one number is refused: `must be at most 36500`, in the words of every other check.
    pub fn refusal(&self, value: &serde_json::Value) -> Result<(), String> {
        let number = value.as_number();
        if let Some(n) = number.and_then(serde_json::Number::as_u64) {
            if n < self.min {
                return Err(format!("must be at least {}", self.min));
            }
            if n > self.max {
                return Err(format!("must be at most {}", self.max));
            }
            return Ok(());
        }
        // A negative integer, or one too large even for u64 (JSON parsers read it as a float).
        if number.and_then(serde_json::Number::as_i64).is_some() {
            return Err(format!("must be at least {}", self.min));
        }
        if let Some(f) = number.and_then(serde_json::Number::as_f64).filter(|f| f.fract() == 0.0) {
            if f < 0.0 {
                return Err(format!("must be at least {}", self.min));
            }
            if f > u64::MAX as f64 {
                return Err(format!("must be at most {}", self.max));
            }
        }
        let mut shown = value.to_string();
        if shown.chars().count() > 40 {
            shown = format!("{}…", shown.chars().take(40).collect::<String>());
        }
        Err(format!("must be a whole number from {} to {}, not {shown}", self.min, self.max))
    }
}

/// Deserializes one value, recording the error with its full path instead of failing the load.
fn parse_value<T: for<'de> Deserialize<'de>>(
    value: &serde_json::Value,
    path: &str,
    report: &mut Report<'_>,
) -> Option<T> {
    match serde_path_to_error::deserialize(value) {
        Ok(parsed) => Some(parsed),
        Err(error) => {
            report.deserialize_error(path, error);
            None
        }
    }
}

/// A NUL (`\u0000`) is valid in JSON, YAML and TOML strings but not in PostgreSQL text, and no
/// name, address or header needs one: refuse it where it is rather than fail every write later.
fn report_nul_characters(value: &serde_json::Value, path: &str, report: &mut Report<'_>) {
    const MESSAGE: &str = "contains a NUL character (\\u0000)";
    match value {
        serde_json::Value::String(text) if text.contains('\0') => report.problem(path, MESSAGE),
        serde_json::Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                report_nul_characters(item, &format!("{path}[{index}]"), report);
            }
        }
        serde_json::Value::Object(object) => {
            for (key, item) in object {
                if key.contains('\0') {
                    report.problem(path, format!("a key {MESSAGE}"));
                } else {
                    report_nul_characters(item, &join_path(path, key), report);
                }
            }
        }
        _ => {}
    }
}

fn join_path(prefix: &str, key: &str) -> String {
    if prefix.is_empty() { key.to_string() } else { format!("{prefix}.{key}") }
}

/// Ids and names end up in URLs, metric labels and log fields: keep them to a safe alphabet.
fn check_identifier(report: &mut Report<'_>, path: &str, what: &str, value: &str) {
    if value.is_empty() {
        report.problem(path, format!("{what} must not be empty"));
    } else if value.len() > 128 {
        report.problem(path, format!("{what} must be at most 128 characters"));
    } else if let Some(bad) = value.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
        report.problem(path, format!("{what} {value:?} has {bad:?}: use letters, digits, '-', '_' and '.'"));
    }
}

/// The known name nearest to a misspelled one (by Levenshtein distance, case ignored), if any is
/// near enough to be a typo.
fn closest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (strsim::levenshtein(&word.to_lowercase(), &k.to_lowercase()), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// A value that must never reach a log line or an API answer (webhook URLs carry their token).
#[derive(Clone, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, example = "***")]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Shown as `***` wherever the config is serialized (the API answers with assets' settings).
impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn toml_and_yaml_files_load_like_json() {
        let dir = tempfile::tempdir().expect("tempdir");
        let manifest = write(
            &dir,
            "manifest.toml",
            r#"
            [[assets]]
            id = "api"
            assetType = "http"
            address = "http://localhost/health"
            expectedStatusCodes = [200, 204]
            [assets.metadata]
            env = "prod"
            "#,
        );
        let notifiers = write(
            &dir,
            "notifiers.yaml",
            "notifiers:\n  teams:\n    type: teams\n    webhookUrl: https://example.com/hook\nnotificationPolicy:\n  onDown: [teams]\n  throttleSeconds: 0\n",
        );
        let config = Config::load(&manifest, &notifiers).expect("valid");
        assert_eq!(config.manifest.assets[0].id, "api");
        assert_eq!(config.manifest.assets[0].metadata["env"], "prod");
        assert_eq!(config.notifiers.policy.on_down, ["teams"]);
        assert_eq!(config.notifiers.policy.throttle_seconds, 0);

        let yml =
            write(&dir, "manifest.yml", "assets:\n  - id: web\n    assetType: http\n    address: http://localhost/\n");
        assert_eq!(Config::load(&yml, &notifiers).expect("valid").manifest.assets[0].id, "web");
    }

    #[test]
    fn files_saved_with_a_byte_order_mark_load_in_every_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        let notifiers = write(&dir, "notifiers.yaml", "\u{FEFF}notifiers: {}\n");
        for (name, text) in [
            ("manifest.json", r#"{"assets": [{"id": "api", "assetType": "http", "address": "http://localhost/"}]}"#),
            ("manifest.toml", "[[assets]]\nid = \"api\"\nassetType = \"http\"\naddress = \"http://localhost/\"\n"),
            ("manifest.yaml", "assets:\n  - id: api\n    assetType: http\n    address: http://localhost/\n"),
        ] {
            let manifest = write(&dir, name, &format!("\u{FEFF}{text}"));
            let config = Config::load(&manifest, &notifiers).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(config.manifest.assets[0].id, "api", "{name}");
        }
    }

    #[test]
    fn unreadable_and_malformed_files_are_problems_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let broken = write(&dir, "manifest.json", "{\"assets\": [");
        let odd = write(&dir, "notifiers.ini", "x=1");
        let problems = Config::load(&broken, &odd).expect_err("invalid").0;
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].message.starts_with("invalid JSON: EOF while parsing a list at line 1"), "{problems:?}");
        assert!(problems[1].message.contains("unsupported file extension \"ini\""), "{problems:?}");
        let missing = dir.path().join("missing.json");
        let problems = Config::load(&missing, &missing).expect_err("missing").0;
        assert!(problems.iter().all(|p| p.message.starts_with("cannot read the file")), "{problems:?}");
        assert!(problems[0].to_string().contains("missing.json"));
    }

    #[test]
    fn nul_characters_anywhere_are_refused_where_they_are() {
        let dir = tempfile::tempdir().expect("tempdir");
        let manifest = write(
            &dir,
            "manifest.json",
            r#"{"assets": [{"id": "api", "assetType": "http", "name": "A\u0000B", "address": "http://localhost/",
                "metadata": {"tags": ["ok", "bad\u0000"], "k\u0000": "v"}}]}"#,
        );
        let notifiers = write(&dir, "notifiers.yaml", "notifiers: {}\n");
        let problems = Config::load(&manifest, &notifiers).expect_err("invalid").0;
        let mut found: Vec<String> = problems.iter().map(ToString::to_string).collect();
        found.sort();
        let file = manifest.display();
        assert_eq!(
            found,
            [
                format!("{file}: assets[0].metadata.tags[1]: contains a NUL character (\\u0000)"),
                format!("{file}: assets[0].metadata: a key contains a NUL character (\\u0000)"),
                format!("{file}: assets[0].name: contains a NUL character (\\u0000)"),
            ]
        );
    }

    #[test]
    fn suggests_the_field_a_typo_was_meant_to_be() {
        let known = ["intervalSeconds", "timeoutSeconds", "name"];
        assert_eq!(closest("intervalSecond", &known), Some("intervalSeconds"));
        assert_eq!(closest("intervalseconds", &known), Some("intervalSeconds"));
        assert_eq!(closest("colour", &known), None);
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let secret = Secret::new("https://hooks.example.com/T0/B0/token");
        assert_eq!(format!("{secret:?}"), "\"***\"");
    }
}
