//! One fixture per invalid-config rule, run through the real binary.
//!
//! Each directory under `tests/fixtures/bad-config/` holds a `config.toml`
//! (and `probes/*.toml` where the rule is about probe files) that breaks
//! exactly one rule, and an `expect` file:
//!
//! ```toml
//! # what the rule is
//! at = "probes/p.toml:5:6"   # file:line:column the error must name
//! message = '''must be E.164'''
//! ```
//!
//! `sms-canary validate` must exit 3 (UNKNOWN), print exactly one error, and
//! that error must start with the file, line and column and contain the
//! message. A rule that can have no line (a missing file) gives `at` as the
//! file alone.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

const BIN: &str = env!("CARGO_BIN_EXE_sms-canary");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    at: String,
    message: String,
}

fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad-config");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    dirs.sort();
    dirs
}

/// Runs `validate` on one fixture; returns what went wrong, if anything.
fn check(dir: &Path) -> Result<(), String> {
    let expect_path = dir.join("expect");
    let text = std::fs::read_to_string(&expect_path)
        .map_err(|e| format!("no readable `expect` file ({e}): every fixture needs one"))?;
    let expect: Expect = toml::from_str(&text).map_err(|e| format!("bad `expect` file: {e}"))?;
    // The binary prints paths as it was given them, joined with the probe globs.
    let config = dir.join("config.toml");
    let scratch = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("validate")
        .arg("--config")
        .arg(&config)
        .current_dir(scratch.path())
        .env_clear()
        .output()
        .map_err(|e| format!("cannot run the binary: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let show = || format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    if stderr.contains("panicked") || stderr.contains("RUST_BACKTRACE") {
        return Err(format!("the binary panicked\n{}", show()));
    }
    if out.status.code() != Some(3) {
        return Err(format!(
            "exit code {:?}, want 3\n{}",
            out.status.code(),
            show()
        ));
    }
    if !stderr.contains("has 1 error\n") {
        return Err(format!(
            "want exactly one error (a fixture breaks one rule)\n{}",
            show()
        ));
    }
    let location = format!("{}:", dir.join(&expect.at).display());
    let found = stderr
        .lines()
        .any(|l| l.starts_with(&location) && l.contains(&expect.message));
    if !found {
        return Err(format!(
            "want a line starting `{location}` containing `{}`\n{}",
            expect.message,
            show()
        ));
    }
    Ok(())
}

#[test]
fn every_bad_config_fixture_is_refused_with_its_file_line_and_message() {
    let dirs = fixtures();
    assert!(dirs.len() >= 50, "fixtures went missing: {}", dirs.len());
    let failures: Vec<String> = dirs
        .iter()
        .filter_map(|dir| {
            check(dir)
                .err()
                .map(|why| format!("{}: {why}", dir.file_name().unwrap().to_string_lossy()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} fixtures failed:\n\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n\n")
    );
}

#[test]
fn a_fixture_without_an_expect_file_fails_the_walk() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), "[canary]\nlisten = 1\n").unwrap();
    let why = check(dir.path()).unwrap_err();
    assert!(why.contains("needs one"), "{why}");
}

#[test]
fn a_fixture_whose_error_is_elsewhere_fails_the_walk() {
    // Guards the walker itself: the right message on the wrong line is a failure.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        "[canary]\nlisten_adress = \"x\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("expect"),
        "at = \"config.toml:1:1\"\nmessage = 'unknown field `listen_adress`'\n",
    )
    .unwrap();
    let why = check(dir.path()).unwrap_err();
    assert!(why.contains("want a line starting"), "{why}");
    std::fs::write(
        dir.path().join("expect"),
        "at = \"config.toml:2:1\"\nmessage = 'unknown field `listen_adress`'\n",
    )
    .unwrap();
    check(dir.path()).unwrap();
}
