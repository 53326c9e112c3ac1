//! The contract a new user relies on: a fresh clone, on a machine without the
//! Prometheus packages, passes the README's test command. Here: a `git clone`
//! of this checkout's HEAD into a temporary directory, a `PATH` without
//! promtool and the Pushgateway, an environment without this process's
//! variables, and the command the README gives, run there. Its peer tests
//! must say they skip, and everything else must pass.
//!
//! It runs the whole suite a second time, so it is `#[ignore]`d in the suite
//! and run on its own by `.ci/run` (`cargo test --test integration fresh_clone
//! -- --ignored`): next to the other tests it would double the load on a
//! two-core machine, and its build replaces `target/debug/sms-canary`, the
//! binary the other tests run. It shares this build's target directory, so
//! only the crate itself is compiled again. The inner run sees
//! `SMS_CANARY_IN_FRESH_CLONE` and does not start another clone.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Set in the inner run, so that it never clones again.
const GUARD: &str = "SMS_CANARY_IN_FRESH_CLONE";
/// What a machine without the Prometheus packages lacks.
const ABSENT: &[&str] = &["promtool", "prometheus-pushgateway"];
/// Variables a user's shell would have that the inner run needs; everything
/// else this process was given (by cargo, by CI) is left behind.
const KEPT: &[&str] = &[
    "HOME",
    "USER",
    "LANG",
    "TMPDIR",
    "CARGO_HOME",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
];

fn say(line: &str) {
    // Uncaptured, like a skip: this test takes minutes and should say why.
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The README's test command: the `cargo test` line of its set-up block.
fn readme_test_command(readme: &str) -> Vec<String> {
    let setup = readme
        .split("## Set-up")
        .nth(1)
        .expect("the README has a Set-up section");
    let line = setup
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("cargo test"))
        .expect("the Set-up section gives the test command");
    let command = line.split('#').next().unwrap();
    command.split_whitespace().map(str::to_string).collect()
}

/// `PATH` with every directory that holds one of `absent` replaced by a copy
/// (of symlinks, under `shims`) that lacks it.
fn path_without(absent: &[&str], path: &OsString, shims: &Path) -> OsString {
    let dirs: Vec<PathBuf> = std::env::split_paths(path)
        .enumerate()
        .map(|(i, dir)| {
            if !absent.iter().any(|name| dir.join(name).exists()) {
                return dir;
            }
            let shim = shims.join(format!("path-{i}"));
            std::fs::create_dir_all(&shim).unwrap();
            for entry in std::fs::read_dir(&dir).unwrap() {
                let entry = entry.unwrap();
                let name = entry.file_name();
                if !absent.iter().any(|a| name == *a) {
                    let _ = std::os::unix::fs::symlink(entry.path(), shim.join(&name));
                }
            }
            shim
        })
        .collect();
    std::env::join_paths(dirs).unwrap()
}

fn git(args: &[&str], dir: &Path) -> Result<String, String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[test]
#[ignore = "runs the whole suite again in a fresh clone; .ci/run runs it alone"]
fn a_fresh_clone_without_the_prometheus_tools_passes_the_readme_test_command() {
    if std::env::var_os(GUARD).is_some() {
        say("fresh_clone: already inside a fresh clone; not cloning again");
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let head = git(&["rev-parse", "HEAD"], repo)
        .map_err(|e| format!("{} is not a git checkout ({e})", repo.display()));
    let Some(head) = crate::peers::require("git", head) else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let clone = scratch.path().join("sms-canary");
    git(
        &[
            "clone",
            "--quiet",
            repo.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
        scratch.path(),
    )
    .unwrap();
    git(&["checkout", "--quiet", "--detach", &head], &clone).unwrap();

    let path = path_without(
        ABSENT,
        &std::env::var_os("PATH").unwrap_or_default(),
        &scratch.path().join("bin"),
    );
    for tool in ABSENT {
        assert!(
            crate::peers::find_program(tool, Some(path.as_os_str())).is_err(),
            "{tool} is still on the stripped PATH"
        );
    }
    let readme = std::fs::read_to_string(clone.join("README.md")).unwrap();
    let command = readme_test_command(&readme);
    // This build's target directory (CARGO_TARGET_TMPDIR is its `tmp`).
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();

    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..])
        .current_dir(&clone)
        .env_clear()
        .envs(
            KEPT.iter()
                .filter_map(|k| std::env::var_os(k).map(|v| (k, v))),
        )
        .envs(std::env::vars_os().filter(|(k, _)| k.to_string_lossy().starts_with("PIP_")))
        .env("PATH", &path)
        .env("CARGO_TARGET_DIR", target)
        .env(GUARD, "1");
    say(&format!(
        "fresh_clone: running `{}` in a clone of {head} without {ABSENT:?} on PATH…",
        command.join(" ")
    ));
    let started = Instant::now();
    let out = cmd.output().unwrap();
    let took = started.elapsed();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let tail: Vec<&str> = said.lines().rev().take(150).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    assert!(
        out.status.success(),
        "`{}` failed in the fresh clone after {took:?}:\n{}",
        command.join(" "),
        tail.join("\n")
    );
    for (test, peer) in [
        (
            "metrics::a_push_lands_in_a_real_pushgateway",
            "prometheus-pushgateway",
        ),
        ("examples::prometheus_rules_pass_promtool", "promtool"),
        ("metrics::the_daemon_exposition_passes_promtool", "promtool"),
    ] {
        assert!(
            said.contains(&format!(
                "skipped: {test} needs {peer} (`{peer}` is not on PATH)"
            )),
            "{test} did not say it skipped:\n{}",
            tail.join("\n")
        );
    }
    let results: Vec<&str> = said
        .lines()
        .filter(|l| l.starts_with("test result:"))
        .collect();
    assert!(
        !results.is_empty() && results.iter().all(|l| l.starts_with("test result: ok.")),
        "{results:?}"
    );
    say(&format!(
        "fresh_clone: passed in {}s: {}",
        took.as_secs(),
        results.join(" / ")
    ));
}

#[test]
fn the_readme_test_command_is_read_from_its_set_up_block() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    assert_eq!(readme_test_command(&readme), ["cargo", "test"]);
}

#[test]
fn the_stripped_path_lacks_only_the_tools_named() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for name in ["promtool", "git"] {
        std::fs::write(bin.join(name), "").unwrap();
        let mut perms = std::fs::metadata(bin.join(name)).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(bin.join(name), perms).unwrap();
    }
    let path = path_without(
        &["promtool"],
        &bin.clone().into_os_string(),
        &dir.path().join("shims"),
    );
    assert!(crate::peers::find_program("promtool", Some(path.as_os_str())).is_err());
    assert!(crate::peers::find_program("git", Some(path.as_os_str())).is_ok());
}
