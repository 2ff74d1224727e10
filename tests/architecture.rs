//! The modules of `src/` depend one way: no top-level module reaches, directly or through
//! others, one that reaches back to it. Read from the source text (every `crate::name` path, in
//! `use` lines and in code, and grouped `use crate::{a, b}` lists), so that a new import that
//! closes a cycle fails here with the files and lines that make it.
//!
//! `cargo test --test architecture -- --nocapture` also prints the layers, lowest first: a module
//! uses only modules of lower layers (this is the order ARCHITECTURE.md describes).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Where one module uses another: `src/probe/http.rs:12`.
type Uses = BTreeMap<(String, String), Vec<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src/") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/probe/http.rs` → `probe`); None for the crate
/// root (`lib.rs`, `main.rs`), which may use everything.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).expect("under src/");
    let first = relative.components().next()?.as_os_str().to_string_lossy().into_owned();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_string();
    (name != "lib" && name != "main").then_some(name)
}

/// The top-level module names a line of code reaches through `crate::`.
fn used_modules(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or_default();
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::c}` (on one line; rustfmt keeps short groups on one line, and a
            // long one still names its first module here).
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.push(first_ident(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            found.push(first_ident(&item));
        } else {
            found.push(first_ident(rest));
        }
    }
    found.retain(|name| !name.is_empty() && name.chars().next().is_some_and(|c| c.is_ascii_lowercase()));
    found
}

fn first_ident(text: &str) -> String {
    text.trim_start().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
}

fn module_uses() -> (BTreeSet<String>, Uses) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut modules = BTreeSet::new();
    let mut uses: Uses = BTreeMap::new();
    for file in &files {
        let Some(from) = module_of(&src, file) else { continue };
        modules.insert(from.clone());
        let text = std::fs::read_to_string(file).expect("read source file");
        for (number, line) in text.lines().enumerate() {
            for to in used_modules(line) {
                if to != from {
                    let place =
                        format!("src/{}:{}", file.strip_prefix(&src).expect("under src/").display(), number + 1);
                    uses.entry((from.clone(), to)).or_default().push(place);
                }
            }
        }
    }
    (modules, uses)
}

/// The modules in layers, lowest first; Err with the modules left over when there is a cycle.
fn layers(modules: &BTreeSet<String>, uses: &Uses) -> Result<Vec<Vec<String>>, BTreeSet<String>> {
    let mut placed: BTreeSet<String> = BTreeSet::new();
    let mut layers = Vec::new();
    while placed.len() < modules.len() {
        let layer: Vec<String> = modules
            .iter()
            .filter(|m| !placed.contains(*m))
            .filter(|m| {
                uses.keys().filter(|(from, _)| from == *m).all(|(_, to)| placed.contains(to) || !modules.contains(to))
            })
            .cloned()
            .collect();
        if layer.is_empty() {
            return Err(modules.difference(&placed).cloned().collect());
        }
        placed.extend(layer.iter().cloned());
        layers.push(layer);
    }
    Ok(layers)
}

#[test]
fn top_level_modules_depend_one_way() {
    let (modules, uses) = module_uses();
    for name in ["actors", "api", "config", "notify", "probe", "store"] {
        assert!(modules.contains(name), "module {name} not found: is this test reading src/?");
    }
    match layers(&modules, &uses) {
        Ok(layers) => {
            for (index, layer) in layers.iter().enumerate() {
                println!("layer {index}: {}", layer.join(", "));
            }
        }
        Err(stuck) => {
            let mut message =
                format!("these modules depend on each other in a cycle (or on one that does): {stuck:?}\n");
            for ((from, to), places) in &uses {
                if stuck.contains(from) && stuck.contains(to) {
                    message.push_str(&format!("  {from} -> {to}: {}\n", places.join(", ")));
                }
            }
            panic!("{message}");
        }
    }
}

#[test]
fn the_reader_sees_grouped_and_inline_paths() {
    assert_eq!(used_modules("use crate::config::{AssetConfig, Report};"), ["config"]);
    assert_eq!(used_modules("use crate::{probe::ProbeSpec, report::{Bound, Report}};"), ["probe", "report"]);
    assert_eq!(used_modules("    let x = crate::redact::url(&a); // crate::api is not used"), ["redact"]);
    assert_eq!(used_modules("let v = crate::VERSION;"), Vec::<String>::new());
    let modules: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
    let mut uses: Uses = BTreeMap::new();
    uses.insert(("a".into(), "b".into()), vec![]);
    uses.insert(("b".into(), "c".into()), vec![]);
    assert_eq!(layers(&modules, &uses), Ok(vec![vec!["c".to_string()], vec!["b".to_string()], vec!["a".to_string()]]));
    uses.insert(("c".into(), "a".into()), vec![]);
    assert!(layers(&modules, &uses).is_err(), "a cycle is found");
}
