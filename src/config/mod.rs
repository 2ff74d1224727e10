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

use std::path::Path;

pub use crate::report::{Problem, Problems};
use crate::report::{Report, report_nul_characters};
pub use manifest::{AssetConfig, Manifest};
pub use notifiers::{AssetPolicy, Flapping, Grouping, Metadata, NotificationPolicy, NotifiersConfig};

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
        if let (Some(manifest), Some(notifiers)) = (&manifest, &notifiers) {
            // Routes match the manifest's metadata: only the two files together tell a route
            // that can never match.
            let file = notifiers_path.display().to_string();
            let mut report = Report::new(&file, &mut problems);
            notifiers.policy.check_routes(&manifest.assets, &mut report);
            warnings.extend(report.into_warnings());
        }
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
}
