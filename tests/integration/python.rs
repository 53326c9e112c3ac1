//! A Python for the tests that drive real Python peers (Twilio's SDK, an SMTP
//! server, a YAML parser, a JSON Schema validator): the one
//! `SMS_CANARY_TEST_PYTHON` names (CI sets it to a venv it installed), or a
//! venv built once under the target dir.
//!
//! Building that venv is the one time the tests need the network: pip fetches
//! the packages from PyPI (or the index pip is configured with). Unlike the
//! system peers of `peers.rs`, these are never skipped: a test that cannot get
//! its package fails, with a sentence that says why and what to do.

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

/// What pip prints when it got no answer from the index: a connection error
/// (without `--quiet`), or no versions at all of a package that has many.
const UNREACHABLE: &[&str] = &[
    "from versions: none",
    "NewConnectionError",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "ConnectTimeoutError",
    "ProxyError",
];

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
    // One builder per process; other processes are handled by the rename in `build`.
    static BUILDING: Mutex<()> = Mutex::new(());
    let _guard = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    build(&root, venv, packages, &[]).unwrap_or_else(|e| panic!("{e}"))
}

/// The venv `venv` under `root` with `packages`, built if it is missing or
/// lacks one; `pip_env` is added to pip's environment.
pub fn build(
    root: &Path,
    venv: &str,
    packages: &[Package],
    pip_env: &[(&str, &str)],
) -> Result<PathBuf, String> {
    let wanted: Vec<&str> = packages.iter().map(|p| p.pip).collect();
    let dir = root.join(venv);
    let python = dir.join("bin").join("python");
    if has(&python, packages) {
        return Ok(python);
    }
    // Build in a private directory and move it into place whole, so a
    // concurrent run never sees a half-installed venv.
    let building = root.join(format!("{venv}.building-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&building);
    std::fs::create_dir_all(root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    let venv_out = Command::new("python3")
        .arg("-m")
        .arg("venv")
        .arg(&building)
        .output()
        .map_err(|e| {
            format!("these tests need python3 (with its venv module) on PATH to build a venv for {wanted:?}, and running it failed: {e}")
        })?;
    if !venv_out.status.success() {
        let _ = std::fs::remove_dir_all(&building);
        return Err(format!(
            "`python3 -m venv` could not create a venv for the tests' Python packages {wanted:?} \
             (on Debian/Ubuntu install the `python3-venv` package). It said:\n{}",
            String::from_utf8_lossy(&venv_out.stderr)
        ));
    }
    let mut pip = Command::new(building.join("bin").join("python"));
    pip.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ])
    .args(&wanted);
    for (key, value) in pip_env {
        pip.env(key, value);
    }
    let pip_out = pip
        .output()
        .map_err(|e| format!("cannot run pip in the new venv: {e}"))?;
    if !pip_out.status.success() {
        let _ = std::fs::remove_dir_all(&building);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&pip_out.stdout),
            String::from_utf8_lossy(&pip_out.stderr)
        );
        let why = if UNREACHABLE.iter().any(|m| said.contains(m)) {
            "pip cannot reach the package index (PyPI, or the index pip is configured with): is there no network access?"
        } else {
            "pip install failed"
        };
        return Err(format!(
            "{why} The tests install their Python packages {wanted:?} into a venv under {} on their first run, \
             and need the network only for that. Allow access to PyPI once, or set SMS_CANARY_TEST_PYTHON \
             to a python3 that has these packages. pip said:\n{said}",
            root.display()
        ));
    }
    if std::fs::rename(&building, &dir).is_err() {
        // Someone else finished first (or left a broken one behind).
        if has(&python, packages) {
            let _ = std::fs::remove_dir_all(&building);
            return Ok(python);
        }
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&building, &dir)
            .map_err(|e| format!("cannot move the new venv into place: {e}"))?;
    }
    if has(&python, packages) {
        Ok(python)
    } else {
        Err(format!(
            "the venv at {} lacks {wanted:?} although pip installed them",
            dir.display()
        ))
    }
}

/// Without the network, the first run says so in words a person can act on,
/// not with pip's traceback alone.
#[test]
fn without_network_the_venv_build_says_what_to_do() {
    let root = tempfile::tempdir().unwrap();
    let package = Package {
        pip: "jsonschema==4.26.0",
        check: "import jsonschema",
    };
    // An index on a port nothing listens on: what pip sees with no network.
    let err = build(
        root.path(),
        "offline",
        &[package],
        &[
            ("PIP_INDEX_URL", "http://127.0.0.1:1/simple/"),
            ("PIP_RETRIES", "0"),
            ("PIP_TIMEOUT", "2"),
            ("PIP_NO_CACHE_DIR", "1"),
            ("PIP_CONFIG_FILE", "/dev/null"),
        ],
    )
    .unwrap_err();
    assert!(
        err.starts_with("pip cannot reach the package index"),
        "{err}"
    );
    assert!(err.contains("SMS_CANARY_TEST_PYTHON"), "{err}");
    assert!(err.contains("jsonschema==4.26.0"), "{err}");
    assert!(
        !root.path().join("offline").exists(),
        "no half-built venv is left in place"
    );
}
