//! Bakes the commit into the binary (`GET /api/version`, `statusd_build_info`): from
//! `STATUSD_COMMIT` when the build sets it (the Dockerfile's build argument, since images are
//! built without `.git`), else from git when building in a checkout.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=STATUSD_COMMIT");
    if std::env::var("STATUSD_COMMIT").is_ok_and(|commit| !commit.is_empty()) {
        return;
    }
    // A new commit moves the branch HEAD points to; HEAD itself moves on checkout. Cargo reruns
    // a build script whose watched file is missing on every build, so only existing ones count.
    let mut watched = vec!["build.rs".to_string(), ".git/HEAD".to_string(), ".git/packed-refs".to_string()];
    if let Some(branch) = std::fs::read_to_string(".git/HEAD")
        .ok()
        .and_then(|head| head.strip_prefix("ref: ").map(|r| r.trim().to_string()))
    {
        watched.push(format!(".git/{branch}"));
    }
    for path in watched.iter().filter(|path| std::path::Path::new(path).is_file()) {
        println!("cargo:rerun-if-changed={path}");
    }
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map(|commit| commit.trim().to_string())
        .filter(|commit| !commit.is_empty());
    if let Some(commit) = commit {
        println!("cargo:rustc-env=STATUSD_COMMIT={commit}");
    }
}
