//! Bakes the commit into the binary (`GET /api/version`, `statusd_build_info`): from
//! `STATUSD_COMMIT` when the build sets it (the Dockerfile's build argument, since images are
//! built without `.git`), else from git when building in a checkout. And links the binaries with
//! their relocations packed where the C library can read them (`pack_relative_relocations`).

use std::process::Command;

fn main() {
    pack_relative_relocations();
    bake_commit();
}

/// `STATUSD_COMMIT` for the crate: the build's own, else git's short HEAD, else none.
fn bake_commit() {
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

/// Links the binaries with their relative relocations packed (`-z pack-relative-relocs`, the
/// DT_RELR format of glibc 2.36 and later). statusd is position-independent, so each of the
/// ≈ 63,000 pointers in its read-only data needs a relocation when it starts; as 24-byte RELA
/// entries they are 1.5 MB of the binary that the loader reads and that then stays resident
/// (README, Benchmarks: "Packed relocations"); packed, they are 29 KB. A binary linked so
/// names the version `GLIBC_ABI_DT_RELR`, which an older glibc refuses to start, so it is done
/// only for a native build on a glibc that has it (the build host's C library is the one the
/// binary will meet): elsewhere the binary is linked as before.
fn pack_relative_relocations() {
    let env = |key: &str| std::env::var(key).unwrap_or_default();
    let native = env("HOST") == env("TARGET");
    if !native || env("CARGO_CFG_TARGET_OS") != "linux" || env("CARGO_CFG_TARGET_ENV") != "gnu" {
        return;
    }
    // `glibc 2.36`: POSIX getconf, with the variable glibc's own getconf answers.
    let version = Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| {
            let (major, minor) = text.trim().strip_prefix("glibc ")?.split_once('.')?;
            Some((major.parse::<u32>().ok()?, minor.split('.').next()?.parse::<u32>().ok()?))
        });
    if version.is_some_and(|version| version >= (2, 36)) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
