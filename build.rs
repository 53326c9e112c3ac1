//! Build script: records the git commit the binary is built from as the
//! `SMS_CANARY_REVISION` environment variable of the compile, for `--version`
//! and the `build_info` metric.
//!
//! Outside a git checkout (a crates.io tarball, a vendored copy) or without
//! git installed the revision is `unknown` and the build goes on: a missing
//! hash must never stop anyone from building.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let revision = revision(&manifest_dir).unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=SMS_CANARY_REVISION={revision}");
}

/// The short hash of HEAD, and rerun-if-changed lines for what moves it.
fn revision(dir: &Path) -> Option<String> {
    // Only our own checkout counts: without this check, a copy unpacked inside
    // some other repository would report that repository's commit.
    // (`.git` is a directory in a clone and a file in a worktree.)
    if !dir.join(".git").exists() {
        return None;
    }
    let hash = git(dir, &["rev-parse", "--short=12", "HEAD"])?;
    if hash.is_empty() || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    // HEAD lives in the worktree's own git dir; the branch it points to lives
    // in the common dir (the same directory in a plain clone).
    if let Some(git_dir) = git(dir, &["rev-parse", "--git-dir"]) {
        watch(&dir.join(git_dir).join("HEAD"));
    }
    if let (Some(common), Some(head_ref)) = (
        git(dir, &["rev-parse", "--git-common-dir"]),
        git(dir, &["symbolic-ref", "-q", "HEAD"]),
    ) {
        let common = dir.join(common);
        watch(&common.join(&head_ref));
        // A ref may be packed instead of (or as well as) being a loose file.
        watch(&common.join("packed-refs"));
    }
    Some(hash)
}

/// Reruns the build script when `path` changes. Only for files that exist:
/// cargo treats a missing one as always changed and would rerun every build.
fn watch(path: &Path) {
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// One line of git's output, or `None` if git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    Some(text.trim().to_string())
}
