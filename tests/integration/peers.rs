//! Peers that are system packages, which a test cannot install by itself
//! (promtool, the Pushgateway, and later PostgreSQL or Chromium): each is
//! registered in [`PEERS`] with where it comes from, and a test asks for it
//! through [`require_peer`] (a program on `PATH`) or [`require`] (anything
//! else: a server URL in a variable, a socket).
//!
//! On a machine without the peer, the test (or the step that needs it) is
//! skipped with a line on the terminal that says what is missing and how to
//! get it; `cargo test` still passes there. With `SMS_CANARY_REQUIRE_PEERS=1`
//! (CI sets it, after installing every peer) a missing peer fails the test
//! instead, so nothing is ever skipped in CI without anyone noticing.
//!
//! Python peers are different: the tests install them into a venv of their
//! own (see `python.rs`), so they are never skipped.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The variable that turns a missing peer into a failure.
pub const REQUIRE_PEERS: &str = "SMS_CANARY_REQUIRE_PEERS";

/// A peer from the system's packages.
pub struct Peer {
    /// The name tests ask for: the program's name for a program.
    pub name: &'static str,
    /// Where it comes from, and how to install it.
    pub install: &'static str,
}

/// Every system peer of the test suite. The README's table of peers lists
/// each of them, with the tests that use it (a test keeps them in step).
pub const PEERS: &[Peer] = &[
    Peer {
        name: "promtool",
        install: "Debian/Ubuntu package `prometheus` (apt-get install prometheus)",
    },
    Peer {
        name: "prometheus-pushgateway",
        install: "Debian/Ubuntu package `prometheus-pushgateway` (apt-get install prometheus-pushgateway)",
    },
    Peer {
        name: "script",
        install: "util-linux's `script`, Debian/Ubuntu package `bsdutils` (installed by default)",
    },
    Peer {
        name: "systemd-analyze",
        install: "Debian/Ubuntu package `systemd` (apt-get install systemd)",
    },
    Peer {
        name: "groff",
        install: "Debian/Ubuntu package `groff-base` (installed by default)",
    },
    Peer {
        name: "chromium",
        install: "Debian/Ubuntu package `chromium` (apt-get install chromium chromium-driver)",
    },
    Peer {
        name: "chromedriver",
        install: "Debian/Ubuntu package `chromium-driver` (apt-get install chromium chromium-driver)",
    },
    Peer {
        name: "Net::SMPP",
        install: "Debian/Ubuntu package `libnet-smpp-perl` (apt-get install libnet-smpp-perl)",
    },
    Peer {
        name: "git",
        install: "Debian/Ubuntu package `git` (apt-get install git), and a git checkout of the repository",
    },
];

fn registered(name: &str) -> &'static Peer {
    PEERS.iter().find(|p| p.name == name).unwrap_or_else(|| {
        panic!("peer `{name}` is not registered in tests/integration/peers.rs: add it to PEERS and to the README's table")
    })
}

/// Whether a missing peer fails the test (CI) rather than skips it.
pub fn peers_required() -> bool {
    std::env::var(REQUIRE_PEERS).is_ok_and(|v| !matches!(v.trim(), "" | "0"))
}

/// The program `name` found on `PATH`, or `None` when it is missing and the
/// test should skip what needs it (having said so). Panics when it is missing
/// and peers are required.
pub fn require_peer(name: &str) -> Option<PathBuf> {
    require(
        name,
        find_program(name, std::env::var_os("PATH").as_deref()),
    )
}

/// The general form: `found` is the result of looking for peer `name` (its
/// `Err` says why it is not there). `Some` to go on; `None` after printing
/// why the test skips; a panic when peers are required.
pub fn require<T>(name: &str, found: Result<T, String>) -> Option<T> {
    let peer = registered(name);
    let why = match found {
        Ok(value) => return Some(value),
        Err(why) => why,
    };
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    if peers_required() {
        panic!(
            "{test} needs {name}, which is missing: {why}. Install it: {}. ({REQUIRE_PEERS} is set, so a missing peer is a failure, not a skip.)",
            peer.install
        );
    }
    // Straight to the terminal: the test harness captures what `eprintln!`
    // says in a passing test, and a skip nobody sees is a silent one.
    let _ = writeln!(
        std::io::stderr(),
        "skipped: {test} needs {name} ({why}); install it: {}. Set {REQUIRE_PEERS}=1 to make this a failure.",
        peer.install
    );
    None
}

/// `name` as the shell would find it on `path`.
pub fn find_program(name: &str, path: Option<&std::ffi::OsStr>) -> Result<PathBuf, String> {
    let path = path.ok_or_else(|| "PATH is not set".to_string())?;
    std::env::split_paths(path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| format!("`{name}` is not on PATH"))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The two sides of the convention, through real peer tests run in a child
/// process whose `PATH` has no peer on it: skipped with a line that says
/// what is missing, or failed when peers are required.
#[test]
fn a_missing_peer_is_a_skip_that_says_so_or_a_failure_when_required() {
    let empty = tempfile::tempdir().unwrap();
    let tests = [
        "metrics::a_push_lands_in_a_real_pushgateway",
        "examples::prometheus_rules_pass_promtool",
    ];
    let run = |require: Option<&str>| {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.arg("--exact")
            .args(tests)
            .env("PATH", empty.path())
            .env_remove(REQUIRE_PEERS);
        if let Some(value) = require {
            cmd.env(REQUIRE_PEERS, value);
        }
        let out = cmd.output().unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), said)
    };
    for require in [None, Some("0")] {
        let (passed, said) = run(require);
        assert!(passed, "{require:?}: {said}");
        assert!(said.contains("2 passed"), "{said}");
        for (test, peer) in tests.iter().zip(["prometheus-pushgateway", "promtool"]) {
            let line =
                format!("skipped: {test} needs {peer} (`{peer}` is not on PATH); install it: ");
            assert!(said.contains(&line), "no skip line for {test}: {said}");
        }
    }
    let (passed, said) = run(Some("1"));
    assert!(!passed, "{said}");
    assert!(said.contains("2 failed"), "{said}");
    assert!(
        said.contains("needs promtool, which is missing: `promtool` is not on PATH. Install it: Debian/Ubuntu package `prometheus`"),
        "{said}"
    );
    assert!(!said.contains("skipped:"), "{said}");
}

/// The test functions of a test module's source, with their bodies.
fn test_functions(source: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find("\nfn ").or_else(|| rest.find("\nasync fn ")) {
        let head = &rest[..at];
        let is_test = head
            .lines()
            .rev()
            .take_while(|l| l.trim_start().starts_with("#[") || l.trim_start().starts_with("///"))
            .any(|l| l.contains("test]") || l.contains("test(") || l.contains("::test"));
        let tail = &rest[at + 1..];
        let name_at = tail.find("fn ").unwrap() + 3;
        let name: String = tail[name_at..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let body_end = tail.find("\n}").map_or(tail.len(), |i| i + 2);
        out.push((
            if is_test {
                name
            } else {
                format!("helper:{name}")
            },
            tail[..body_end].to_string(),
        ));
        rest = &tail[body_end..];
    }
    out
}

/// Every test that asks for `peer`, directly or through a helper of its module.
fn tests_needing(peer: &str) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration");
    let calls = [
        format!("require_peer(\"{peer}\")"),
        format!("require(\n        \"{peer}\""),
        format!("require(\"{peer}\""),
    ];
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") || path.ends_with("peers.rs") {
            continue;
        }
        let module = path.file_stem().unwrap().to_string_lossy().into_owned();
        let source = std::fs::read_to_string(&path).unwrap();
        let functions = test_functions(&source);
        for (name, body) in &functions {
            if !calls.iter().any(|c| body.contains(c.as_str())) {
                continue;
            }
            match name.strip_prefix("helper:") {
                None => found.push(format!("{module}::{name}")),
                Some(helper) => found.extend(
                    functions
                        .iter()
                        .filter(|(n, b)| {
                            !n.starts_with("helper:") && b.contains(&format!("{helper}("))
                        })
                        .map(|(n, _)| format!("{module}::{n}")),
                ),
            }
        }
    }
    found.sort();
    found
}

#[test]
fn the_readme_lists_every_peer_with_the_tests_that_need_it() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let mut problems = Vec::new();
    for peer in PEERS {
        let Some(row) = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", peer.name)))
        else {
            problems.push(format!(
                "the README's table of peers has no row for `{}`",
                peer.name
            ));
            continue;
        };
        let tests = tests_needing(peer.name);
        if tests.is_empty() {
            problems.push(format!(
                "no test asks for `{}`: drop it from PEERS",
                peer.name
            ));
        }
        for test in tests {
            if !row.contains(&format!("`{test}`")) {
                problems.push(format!(
                    "the README's row for `{}` does not name `{test}`",
                    peer.name
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
