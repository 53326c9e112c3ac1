//! The container image, without a container engine: the `Dockerfile` is read
//! and held to the code (the binary it builds and runs, its user, ports and
//! healthcheck), every file it copies must exist and pass `.dockerignore`,
//! and the files of its final stage alone run a `check` on the example. That
//! last run uses the binary `SMS_CANARY_IMAGE_BINARY` names (CI builds the
//! release binary the image holds and names it), else the debug binary of
//! this build: a release build inside the suite would take minutes, and both
//! come from the same source.
//!
//! `sms-canary healthcheck`, the image's HEALTHCHECK, is tried against a real
//! daemon.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sms_canary::cli::{Cli, Command as CliCommand};
use sms_canary::config::{Canary, Config};
use sms_canary::daemon::{Control, DaemonOptions};

const BIN: &str = env!("CARGO_BIN_EXE_sms-canary");

/// The binary the image's files run: the release one when CI names it.
fn image_binary() -> PathBuf {
    match std::env::var_os("SMS_CANARY_IMAGE_BINARY") {
        Some(path) => {
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "SMS_CANARY_IMAGE_BINARY names no file: {}",
                path.display()
            );
            path
        }
        None => PathBuf::from(BIN),
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The ports the image exposes: the code's default listeners.
fn expected_ports() -> BTreeSet<u16> {
    BTreeSet::from([Canary::default().listen.port()])
}

// ---------------------------------------------------------------------------
// Reading a Dockerfile

#[derive(Debug, Clone)]
struct Instruction {
    /// Upper case: FROM, COPY, RUN, ...
    op: String,
    /// `--name=value` flags.
    flags: Vec<(String, String)>,
    /// The rest, as written.
    args: String,
}

impl Instruction {
    fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The arguments in exec form (a JSON array), or `None` in shell form.
    fn exec(&self) -> Option<Vec<String>> {
        serde_json::from_str(self.args.trim()).ok()
    }

    fn words(&self) -> Vec<&str> {
        self.args.split_whitespace().collect()
    }
}

#[derive(Debug)]
struct Stage {
    image: String,
    name: Option<String>,
    instructions: Vec<Instruction>,
}

impl Stage {
    fn all(&self, op: &str) -> Vec<&Instruction> {
        self.instructions.iter().filter(|i| i.op == op).collect()
    }

    fn one(&self, op: &str) -> &Instruction {
        let all = self.all(op);
        assert_eq!(all.len(), 1, "{op} in stage {}: {all:?}", self.image);
        all[0]
    }
}

/// Splits off leading `--name=value` flags.
fn flags(mut rest: &str) -> (Vec<(String, String)>, String) {
    let mut flags = Vec::new();
    loop {
        rest = rest.trim_start();
        let Some(flag) = rest.strip_prefix("--") else {
            break;
        };
        let end = flag.find(char::is_whitespace).unwrap_or(flag.len());
        let (name, value) = flag[..end].split_once('=').unwrap_or((&flag[..end], ""));
        flags.push((name.to_string(), value.to_string()));
        rest = &flag[end..];
    }
    (flags, rest.to_string())
}

fn parse_dockerfile(text: &str) -> Vec<Stage> {
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stages: Vec<Stage> = Vec::new();
    for line in logical {
        let (op, rest) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let op = op.to_ascii_uppercase();
        let (flags, args) = flags(rest);
        if op == "FROM" {
            let words: Vec<&str> = args.split_whitespace().collect();
            let name = match words.as_slice() {
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some(name.to_string()),
                [_] => None,
                other => panic!("FROM {other:?}"),
            };
            stages.push(Stage {
                image: words[0].to_string(),
                name,
                instructions: Vec::new(),
            });
            continue;
        }
        stages
            .last_mut()
            .expect("an instruction before FROM")
            .instructions
            .push(Instruction { op, flags, args });
    }
    stages
}

/// `.dockerignore` as Docker reads it: patterns in order, `!` re-includes, a
/// path is excluded when it or a parent directory matches the last pattern
/// that says anything about it.
struct DockerIgnore(Vec<(bool, Vec<String>)>);

impl DockerIgnore {
    fn parse(text: &str) -> DockerIgnore {
        DockerIgnore(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| {
                    let (include, pattern) = match l.strip_prefix('!') {
                        Some(p) => (true, p),
                        None => (false, l),
                    };
                    let parts = pattern
                        .trim_matches('/')
                        .split('/')
                        .filter(|p| !p.is_empty() && *p != ".")
                        .map(str::to_string)
                        .collect();
                    (include, parts)
                })
                .collect(),
        )
    }

    fn excluded(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let mut excluded = false;
        for (include, pattern) in &self.0 {
            let hit = (1..=parts.len()).any(|n| glob(pattern, &parts[..n]));
            if hit {
                excluded = !include;
            }
        }
        excluded
    }
}

/// Path components against pattern components: `*` and `?` within one, `**` across any.
fn glob(pattern: &[String], path: &[&str]) -> bool {
    match (pattern.first(), path.first()) {
        (None, None) => true,
        (Some(p), _) if p == "**" => {
            glob(&pattern[1..], path) || (!path.is_empty() && glob(pattern, &path[1..]))
        }
        (Some(p), Some(c)) => {
            component(p.as_bytes(), c.as_bytes()) && glob(&pattern[1..], &path[1..])
        }
        _ => false,
    }
}

fn component(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => component(&p[1..], s) || (!s.is_empty() && component(p, &s[1..])),
        (Some(b'?'), Some(_)) => component(&p[1..], &s[1..]),
        (Some(a), Some(b)) => a == b && component(&p[1..], &s[1..]),
        _ => false,
    }
}

fn dockerfile() -> Vec<Stage> {
    let text = std::fs::read_to_string(root().join("Dockerfile")).expect("a Dockerfile");
    parse_dockerfile(&text)
}

fn dockerignore() -> DockerIgnore {
    DockerIgnore::parse(
        &std::fs::read_to_string(root().join(".dockerignore")).expect("a .dockerignore"),
    )
}

/// Every file under `path` (itself, if it is a file), relative to the repository.
fn files_under(path: &Path) -> Vec<String> {
    if path.is_file() {
        return vec![
            path.strip_prefix(root())
                .unwrap()
                .to_string_lossy()
                .into_owned(),
        ];
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path).unwrap() {
        out.extend(files_under(&entry.unwrap().path()));
    }
    out
}

/// A COPY from the build context: its sources and destination.
fn copy_parts(copy: &Instruction) -> (Vec<String>, String) {
    let words = copy.words();
    let (dest, sources) = words.split_last().expect("COPY SRC... DEST");
    (
        sources.iter().map(|s| s.to_string()).collect(),
        dest.to_string(),
    )
}

/// Where `dest` lands, given the stage's WORKDIR before it.
fn resolve(workdir: &str, dest: &str, source: &str) -> String {
    let base = if dest.starts_with('/') {
        dest.to_string()
    } else {
        format!(
            "{}/{}",
            workdir.trim_end_matches('/'),
            dest.trim_start_matches("./")
        )
    };
    if dest.ends_with('/') || dest == "./" || dest == "." {
        let name = Path::new(source)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        format!(
            "{}/{}",
            base.trim_end_matches('/').trim_end_matches("/."),
            name
        )
    } else {
        base
    }
}

/// The stage's instructions in order, with the WORKDIR in force at each.
fn with_workdir(stage: &Stage) -> Vec<(String, &Instruction)> {
    let mut workdir = "/".to_string();
    let mut out = Vec::new();
    for i in &stage.instructions {
        if i.op == "WORKDIR" {
            workdir = i.args.trim().to_string();
        }
        out.push((workdir.clone(), i));
    }
    out
}

// ---------------------------------------------------------------------------
// The Dockerfile against the code

#[test]
fn every_file_the_dockerfile_copies_exists_and_is_in_the_build_context() {
    let ignore = dockerignore();
    let mut copied = 0;
    for stage in dockerfile() {
        for copy in stage.all("COPY").into_iter().chain(stage.all("ADD")) {
            if copy.flag("from").is_some() {
                continue;
            }
            let (sources, _) = copy_parts(copy);
            for source in sources {
                let path = root().join(&source);
                assert!(
                    path.exists(),
                    "the Dockerfile copies `{source}`, which does not exist"
                );
                for file in files_under(&path) {
                    assert!(
                        !ignore.excluded(&file),
                        "the Dockerfile copies `{file}`, which .dockerignore leaves out of the build context"
                    );
                    copied += 1;
                }
            }
        }
    }
    assert!(copied > 10, "{copied} files");
    // What the build needs: the manifest, the lock, the build script and the
    // sources of the binary, and nothing outside them pulled in by a macro.
    let build = &dockerfile()[0];
    let sources: BTreeSet<String> = build
        .all("COPY")
        .iter()
        .flat_map(|c| copy_parts(c).0)
        .collect();
    for needed in ["Cargo.toml", "Cargo.lock", "build.rs", "src"] {
        assert!(
            sources.contains(needed),
            "the build stage does not copy {needed}"
        );
    }
    for file in files_under(&root().join("src")) {
        let text = std::fs::read_to_string(root().join(&file)).unwrap();
        for macro_ in ["include_str!(", "include_bytes!("] {
            assert!(
                !text.contains(macro_),
                "{file} includes a file at build time: the build stage must copy it"
            );
        }
    }
    // Big, private or irrelevant: never sent to the engine.
    for path in [
        "target/debug/sms-canary",
        ".git/config",
        ".sms-canary/state.db",
        "config.toml",
        "fuzz/Cargo.toml",
    ] {
        assert!(
            ignore.excluded(path),
            ".dockerignore lets {path} into the build context"
        );
    }
}

#[test]
fn the_dockerfile_builds_the_binary_and_runs_it_as_the_code_expects() {
    let stages = dockerfile();
    assert_eq!(stages.len(), 2, "a build stage and a runtime stage");
    let (build, run) = (&stages[0], &stages[1]);

    // The toolchain is new enough, and the two stages share a Debian release
    // (so the binary finds the glibc it was linked against).
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(root().join("Cargo.toml")).unwrap()).unwrap();
    let msrv = manifest["package"]["rust-version"].as_str().unwrap();
    let (tag_version, suite) = build
        .image
        .strip_prefix("rust:")
        .and_then(|t| t.split_once('-'))
        .unwrap_or_else(|| panic!("build from rust:VERSION-SUITE, not {}", build.image));
    let version = |v: &str| -> Vec<u32> { v.split('.').map(|n| n.parse().unwrap()).collect() };
    assert!(
        version(tag_version) >= version(msrv),
        "rust {tag_version} < rust-version {msrv}"
    );
    let debian = match suite {
        "bookworm" => "debian12",
        "trixie" => "debian13",
        other => panic!("unknown Debian suite {other}"),
    };
    assert!(
        run.image.contains(debian),
        "{} does not match {suite}",
        run.image
    );

    // The binary: built under the build stage's WORKDIR, copied to where the
    // entrypoint and the healthcheck run it.
    let bin_name = Path::new(BIN)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let builds = build.all("RUN");
    assert!(
        builds
            .iter()
            .any(|r| r.args.contains("cargo build --release --locked")
                && r.args.contains(&format!("--bin {bin_name}"))),
        "{builds:?}"
    );
    let build_dir = build.one("WORKDIR").args.trim().to_string();
    let name = build.name.as_deref().expect("a named build stage");
    let binary_copy = run
        .all("COPY")
        .into_iter()
        .find(|c| c.flag("from") == Some(name) && c.args.contains("target/release"))
        .expect("the runtime stage copies the binary from the build stage");
    let (sources, binary) = copy_parts(binary_copy);
    assert_eq!(sources, [format!("{build_dir}/target/release/{bin_name}")]);
    assert!(binary.starts_with('/'), "{binary}");

    // No shell at run time: nothing runs in the last stage, and what starts
    // the container is in exec form.
    assert!(
        run.all("RUN").is_empty(),
        "the runtime stage runs no commands"
    );
    let entrypoint = run
        .one("ENTRYPOINT")
        .exec()
        .expect("ENTRYPOINT in exec form");
    let cmd = run.one("CMD").exec().expect("CMD in exec form");
    assert_eq!(entrypoint, std::slice::from_ref(&binary));
    let argv: Vec<String> = entrypoint.iter().chain(&cmd).cloned().collect();
    let cli = Cli::parse_from_args(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    assert!(matches!(cli.command, CliCommand::Daemon(_)), "{argv:?}");

    // The healthcheck asks the daemon's /healthz with the binary itself.
    let healthcheck = run.one("HEALTHCHECK");
    let probe = healthcheck
        .args
        .trim()
        .strip_prefix("CMD")
        .expect("HEALTHCHECK ... CMD [...]");
    let probe: Vec<String> =
        serde_json::from_str(probe.trim()).expect("HEALTHCHECK CMD in exec form");
    assert_eq!(probe[0], binary);
    let cli = Cli::parse_from_args(&probe).unwrap_or_else(|e| panic!("{probe:?}: {e}"));
    let CliCommand::Healthcheck(args) = cli.command else {
        panic!("HEALTHCHECK does not run `healthcheck`: {probe:?}");
    };
    assert!(
        args.url.is_none(),
        "the healthcheck follows the config's listen address"
    );
    let interval = humantime::parse_duration(healthcheck.flag("interval").unwrap()).unwrap();
    let timeout = humantime::parse_duration(healthcheck.flag("timeout").unwrap()).unwrap();
    assert!(
        timeout > args.timeout && timeout <= interval,
        "{timeout:?} {interval:?}"
    );

    // A user that is not root, owning the state directory.
    let user = run.one("USER").args.trim().to_string();
    let uid = user.split(':').next().unwrap();
    assert!(
        uid.parse::<u32>().is_ok_and(|u| u != 0),
        "USER {user}: a numeric non-root uid"
    );
    let state_copy = run
        .all("COPY")
        .into_iter()
        .find(|c| c.flag("chown").is_some())
        .expect("the state directory is copied in owned by the user");
    assert_eq!(state_copy.flag("chown"), Some(user.as_str()));

    // The ports: the code's defaults, which the healthcheck asks too.
    let exposed: BTreeSet<u16> = run
        .all("EXPOSE")
        .iter()
        .flat_map(|e| {
            e.words()
                .into_iter()
                .map(|p| p.trim_end_matches("/tcp").parse::<u16>().unwrap())
        })
        .collect();
    assert_eq!(exposed, expected_ports());
    // The healthcheck runs inside the container, so it asks the admin
    // listener on loopback, which is never published.
    let asked = sms_canary::daemon::healthcheck::url(&Canary::default());
    assert_eq!(asked.host_str(), Some("127.0.0.1"), "{asked}");
    assert_eq!(asked.port(), Some(Canary::default().admin_listen.port()));
    assert!(!exposed.contains(&asked.port().unwrap()), "{asked}");
    assert_eq!(asked.path(), "/healthz");
}

/// Lays out the runtime stage's files under `image` as the image would hold
/// them (the binary being this build's), and returns its WORKDIR there.
fn image_files(image: &Path) -> PathBuf {
    let stages = dockerfile();
    let run = &stages[1];
    let build_name = stages[0].name.clone().unwrap();
    let mut workdir = "/".to_string();
    for (dir, instruction) in with_workdir(run) {
        workdir = dir.clone();
        if instruction.op == "WORKDIR" {
            std::fs::create_dir_all(image.join(dir.trim_start_matches('/'))).unwrap();
        }
        if instruction.op != "COPY" {
            continue;
        }
        let (sources, dest) = copy_parts(instruction);
        for source in sources {
            let target = image.join(resolve(&dir, &dest, &source).trim_start_matches('/'));
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            match instruction.flag("from") {
                Some(from) if from == build_name && source.contains("target/release") => {
                    std::fs::copy(image_binary(), &target).unwrap();
                }
                // Made in the build stage: an empty directory.
                Some(_) => std::fs::create_dir_all(&target).unwrap(),
                None => copy_tree(&root().join(&source), &target),
            }
        }
    }
    image.join(workdir.trim_start_matches('/'))
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_file() {
        std::fs::copy(from, to).unwrap();
        return;
    }
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        copy_tree(&entry.path(), &to.join(entry.file_name()));
    }
}

#[test]
fn the_files_the_image_holds_run_a_check_on_the_example() {
    let image = tempfile::tempdir().unwrap();
    let home = image_files(image.path());
    let stages = dockerfile();
    let entrypoint = stages[1].one("ENTRYPOINT").exec().unwrap();
    let binary = image.path().join(entrypoint[0].trim_start_matches('/'));
    assert!(binary.is_file(), "{}", binary.display());

    // The config the image finds is the example, and its state goes to the
    // directory the image prepared for a volume.
    let config = Config::load(&home.join("config.example.toml")).unwrap();
    let prepared = home.join(".sms-canary");
    assert!(prepared.is_dir());
    assert_eq!(config.canary.state_dir, prepared);

    // As the container would run it, with no environment to lean on; the
    // port is any free one, as the example's could be taken on this machine.
    let out = Command::new(&binary)
        .args(["check", "--listen", "127.0.0.1:0"])
        .current_dir(&home)
        .env_clear()
        .env("HOME", &home)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("OK - 1 probe: 1 ok"), "{stdout}");
    assert!(
        prepared.join(sms_canary::store::DB_FILE).is_file(),
        "the run was recorded in the prepared state directory"
    );
    let entries: BTreeSet<String> = std::fs::read_dir(&home)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        entries,
        BTreeSet::from([".sms-canary", "config.example.toml", "probes"].map(String::from)),
        "nothing else is needed, nothing else is written"
    );
}

// ---------------------------------------------------------------------------
// healthcheck

fn healthcheck(config: Option<&Path>, url: Option<&str>) -> (Option<i32>, String) {
    let mut cmd = Command::new(BIN);
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    cmd.arg("healthcheck");
    if let Some(url) = url {
        cmd.args(["--url", url]);
    }
    let out = cmd.env_remove("SMS_CANARY_CONFIG").output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), said)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_says_whether_the_daemon_is_healthy() {
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (public, port) = (free(), free());
    let dir = tempfile::tempdir().unwrap();
    // The admin listener on every interface: the healthcheck asks on loopback.
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[canary]\nlisten = \"127.0.0.1:{public}\"\nadmin_listen = \"0.0.0.0:{port}\"\nstate_dir = \"state\"\n[gateways.sandbox]\nkind = \"mock\"\n[receivers.inbox]\nkind = \"webhook\"\ngateway = \"sandbox\"\n"
        ),
    )
    .unwrap();
    let check = {
        let config = config.clone();
        move |url: Option<String>| {
            let config = config.clone();
            tokio::task::spawn_blocking(move || healthcheck(Some(&config), url.as_deref()))
        }
    };

    let (code, said) = check(None).await.unwrap();
    assert_eq!(code, Some(1), "no daemon yet: {said}");
    assert!(
        said.contains(&format!(
            "unhealthy: cannot reach http://127.0.0.1:{port}/healthz"
        )),
        "{said}"
    );

    let (tx, daemon) = crate::daemon::spawn_daemon(
        config.clone(),
        DaemonOptions {
            preflight: false,
            // The config's, as the healthcheck reads it.
            admin_listen: Some(SocketAddr::from(([0, 0, 0, 0], port))),
            ..DaemonOptions::default()
        },
    );
    let mut up = false;
    for _ in 0..100 {
        let got = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await;
        if got.is_ok_and(|r| r.status().is_success()) {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the daemon did not come up");
    let (code, said) = check(None).await.unwrap();
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains(&format!(
            "healthy: http://127.0.0.1:{port}/healthz answered ok"
        )),
        "{said}"
    );
    // Anything but 200 is unhealthy.
    let (code, said) = check(Some(format!("http://127.0.0.1:{port}/nowhere")))
        .await
        .unwrap();
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("answered 404"), "{said}");

    tx.send(Control::Shutdown).await.unwrap();
    daemon.await.unwrap().unwrap();
    let (code, said) = check(None).await.unwrap();
    assert_eq!(code, Some(1), "after the daemon stopped: {said}");

    // A config it cannot read is unhealthy too, not an exit status a
    // container engine reserves.
    let (code, said) = tokio::task::spawn_blocking(move || {
        healthcheck(Some(Path::new("/nonexistent/config.toml")), None)
    })
    .await
    .unwrap();
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("/nonexistent/config.toml"), "{said}");
}

#[test]
fn dockerignore_follows_docker_rules() {
    let ignore = DockerIgnore::parse("*\n!src/\n**/*.bak\n!keep/**/x.txt\n");
    assert!(ignore.excluded("target/debug/x"));
    assert!(ignore.excluded("README.md"));
    assert!(!ignore.excluded("src/main.rs"));
    assert!(!ignore.excluded("src/a/b.rs"));
    assert!(ignore.excluded("src/a/b.bak"));
    assert!(!ignore.excluded("keep/deep/er/x.txt"));
}
