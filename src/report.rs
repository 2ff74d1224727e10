//! Validation reports: every problem (and warning) found in a config file or in settings, with
//! the file, the path of the offending value and what is wrong with it, so that one
//! `statusd check-config` lists everything there is to fix.
//!
//! A leaf module: the config loader, the probe and channel specs (which validate themselves) and
//! the settings all report through it, and it depends on none of them.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;

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
    pub(crate) problems: &'a mut Vec<Problem>,
    pub(crate) warnings: Vec<Problem>,
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

    pub fn into_warnings(self) -> Vec<Problem> {
        self.warnings
    }

    /// Checks every whole-number field of `object` (at `path`) that `bounds` names, on the
    /// value as written, before serde: each refused number is reported with its key and its
    /// range (serde would say only "expected u32", and loses the key inside flattened probe
    /// settings). Returns the object to parse on: itself when all are in range, otherwise a copy
    /// without the refused fields, so the rest is still checked and reported, and whether all
    /// were in range (if not, what is parsed from the copy must not be used).
    pub(crate) fn bounded<'v>(
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
    pub(crate) fn deserialize_error(&mut self, path: &str, error: serde_path_to_error::Error<serde_json::Error>) {
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
    pub(crate) fn unknown_fields(&mut self, path: &str, input: &serde_json::Value, known: &[&str]) {
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
pub(crate) fn parse_value<T: for<'de> Deserialize<'de>>(
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
pub(crate) fn report_nul_characters(value: &serde_json::Value, path: &str, report: &mut Report<'_>) {
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

pub(crate) fn join_path(prefix: &str, key: &str) -> String {
    if prefix.is_empty() { key.to_string() } else { format!("{prefix}.{key}") }
}

/// Ids and names end up in URLs, metric labels and log fields: keep them to a safe alphabet.
pub(crate) fn check_identifier(report: &mut Report<'_>, path: &str, what: &str, value: &str) {
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
pub(crate) fn closest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (strsim::levenshtein(&word.to_lowercase(), &k.to_lowercase()), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_field_a_typo_was_meant_to_be() {
        let known = ["intervalSeconds", "timeoutSeconds", "name"];
        assert_eq!(closest("intervalSecond", &known), Some("intervalSeconds"));
        assert_eq!(closest("intervalseconds", &known), Some("intervalSeconds"));
        assert_eq!(closest("colour", &known), None);
    }
}
