//! A Python for the tests that drive real Python peers (Twilio's SDK, an SMTP
//! server, a YAML parser): the one `SMS_CANARY_TEST_PYTHON` names (CI sets it
//! to a venv it installed), or a venv built once under the target dir.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// A package a test needs: how pip names it, and a Python line that exits 0
/// when it is importable in the wanted version.
pub struct Package {
    pub pip: &'static str,
    pub check: &'static str,
}

fn has(python: &Path, packages: &[Package]) -> bool {
    packages.iter().all(|p| {
        Command::new(python)
            .args(["-c", p.check])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn run(cmd: &mut Command, what: &str) {
    let output = cmd.output().unwrap_or_else(|e| {
        panic!("{what}: cannot run {cmd:?}: {e}. These tests need python3 with venv and pip.")
    });
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A Python with `packages`; `venv` names the fallback venv under the target dir.
pub fn with(venv: &str, packages: &[Package]) -> PathBuf {
    let wanted: Vec<&str> = packages.iter().map(|p| p.pip).collect();
    if let Some(python) = std::env::var_os("SMS_CANARY_TEST_PYTHON") {
        let python = PathBuf::from(python);
        assert!(
            has(&python, packages),
            "SMS_CANARY_TEST_PYTHON={} lacks some of {wanted:?}; pip install them there or unset the variable",
            python.display()
        );
        return python;
    }
    // One builder per process; other processes are handled by the rename below.
    static BUILDING: Mutex<()> = Mutex::new(());
    let _guard = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dir = root.join(venv);
    let python = dir.join("bin").join("python");
    if has(&python, packages) {
        return python;
    }
    // Build in a private directory and move it into place whole, so a
    // concurrent run never sees a half-installed venv.
    let building = root.join(format!("{venv}.building-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&building);
    std::fs::create_dir_all(&root).expect("create the target tmp dir");
    run(
        Command::new("python3").arg("-m").arg("venv").arg(&building),
        "creating a venv with python3 -m venv",
    );
    run(
        Command::new(building.join("bin").join("python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(&wanted),
        "installing the test's Python packages with pip",
    );
    if std::fs::rename(&building, &dir).is_err() {
        // Someone else finished first (or left a broken one behind).
        if has(&python, packages) {
            let _ = std::fs::remove_dir_all(&building);
            return python;
        }
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&building, &dir).expect("move the new venv into place");
    }
    assert!(
        has(&python, packages),
        "the venv at {} lacks {wanted:?}",
        dir.display()
    );
    python
}
