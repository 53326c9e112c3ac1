//! The configuration reference against the loader, and what is generated from
//! it: `docs/configuration.md`, the man page's CONFIGURATION section and the
//! JSON Schema.
//!
//! The loader says which keys it accepts: a table given a key it does not know
//! is refused with "unknown field `x`, expected one of ..." (serde lists every
//! field). So for each table of the reference a config is built that reaches
//! that table with an unknown key, and the list in the error must be the
//! reference's keys, exactly. Every documented example then loads, and the
//! shipped configs validate against the schema with the `jsonschema` package.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value as Json;
use sms_canary::config::reference::{self, Key, MAIN, PROBE, Presence, Table, Type, tables};
use sms_canary::config::{AlertConfig, Config, GatewayConfig, ReceiverConfig};
use toml::Value;

const BIN: &str = env!("CARGO_BIN_EXE_sms-canary");
const UNKNOWN: &str = "zz_not_a_key";

fn literal(text: &str) -> Value {
    let doc: toml::Table = toml::from_str(&format!("v = {text}"))
        .unwrap_or_else(|e| panic!("`{text}` is not a TOML value: {e}"));
    doc["v"].clone()
}

/// What every `${VAR}` an example names expands to: a URL for `..._URL`,
/// else "1", a valid boolean, token and URL part alike.
fn env(name: &str) -> Option<String> {
    Some(if name.ends_with("_URL") {
        "https://hooks.example.com/x".to_string()
    } else {
        "1".to_string()
    })
}

/// The world every generated config lives in: the names the examples refer to.
fn world() -> toml::Table {
    toml::from_str(
        r#"
[canary]
listen = "127.0.0.1:0"
state_dir = "state"
[gateways.sandbox]
kind = "mock"
[receivers.inbox]
kind = "webhook"
gateway = "sandbox"
[gateways.smsc]
kind = "smpp"
address = "127.0.0.1:2775"
system_id = "sms-canary"
password = "mock-pw"
[alerts.ops-slack]
kind = "slack"
webhook_url = "https://hooks.example.com/x"
"#,
    )
    .unwrap()
}

/// A minimal probe file of the world.
fn probe_file() -> toml::Table {
    toml::from_str(
        "name = \"p\"\ngateway = \"sandbox\"\nreceiver = \"inbox\"\nfrom = \"+15005550006\"\nto = \"+15005550100\"\n",
    )
    .unwrap()
}

/// The path of (table, key) steps from a root down to the table `target`.
fn path_to(from: &'static Table, target: &str) -> Option<Vec<(&'static Table, &'static Key)>> {
    for key in from.keys {
        for id in key.ty.tables() {
            if id == target {
                return Some(vec![(from, key)]);
            }
            if let Some(mut rest) = path_to(reference::table(id), target) {
                rest.insert(0, (from, key));
                return Some(rest);
            }
        }
    }
    None
}

/// A table holding `inner` as the value of a key of type `ty` that leads to table `child`.
fn wrap(ty: &Type, child: &str, inner: toml::Table) -> Value {
    match ty {
        Type::Table(_) | Type::Either(..) => Value::Table(inner),
        Type::List(_) => Value::Array(vec![Value::Table(inner)]),
        Type::PhoneMap(_) => Value::Table(toml::Table::from_iter([(
            "+15005550100".to_string(),
            Value::Table(inner),
        )])),
        Type::Kinds(_) => Value::Table(toml::Table::from_iter([(
            format!("generated-{}", child.replace('.', "-")),
            Value::Table(inner),
        )])),
        other => panic!("{other:?} holds no table"),
    }
}

/// The required keys of `table` (and its `kind`), with their examples.
fn required(table: &Table) -> toml::Table {
    let mut out = toml::Table::new();
    if let Some((_, kind)) = table.kind {
        out.insert("kind".into(), Value::String(kind.into()));
    }
    for key in table.keys {
        if matches!(key.presence, Presence::Required) {
            out.insert(key.name.into(), literal(key.example.unwrap()));
        }
    }
    out
}

/// A main file and a probe file in which `instance` stands for the table `id`.
fn place(id: &str, instance: toml::Table) -> (toml::Table, toml::Table) {
    if id == MAIN {
        return (merge(world(), instance), probe_file());
    }
    if id == PROBE {
        return (world(), instance);
    }
    let (root, path) = [MAIN, PROBE]
        .iter()
        .find_map(|root| path_to(reference::table(root), id).map(|p| (*root, p)))
        .unwrap_or_else(|| panic!("table `{id}` cannot be reached from a root"));
    let mut value = instance;
    let mut child = id;
    for (table, key) in path.iter().rev() {
        let mut parent = if table.id == MAIN || table.id == PROBE {
            toml::Table::new()
        } else {
            required(table)
        };
        parent.insert(key.name.into(), wrap(&key.ty, child, value));
        value = parent;
        child = table.id;
    }
    if root == MAIN {
        (merge(world(), value), probe_file())
    } else {
        (world(), merge(probe_file(), value))
    }
}

/// `b` laid over `a`, tables merged key by key.
fn merge(mut a: toml::Table, b: toml::Table) -> toml::Table {
    for (k, v) in b {
        match (a.get_mut(&k), v) {
            (Some(Value::Table(x)), Value::Table(y)) => {
                let merged = merge(std::mem::take(x), y);
                *x = merged;
            }
            (_, v) => {
                a.insert(k, v);
            }
        }
    }
    a
}

/// Writes the pair of files and loads them through the real loader.
fn load(main: &toml::Table, probe: &toml::Table) -> Result<Config, String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("probes")).unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        toml::to_string(main).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("probes/p.toml"),
        toml::to_string(probe).unwrap(),
    )
    .unwrap();
    Config::load_with_env(&dir.path().join("config.toml"), &env).map_err(|e| e.to_string())
}

/// The names in serde's "expected ..." list: "one of `a`, `b`", "`a` or `b`", "`a`".
fn expected_names(error: &str) -> BTreeSet<String> {
    let rest = error
        .split_once(&format!("`{UNKNOWN}`, expected "))
        .unwrap_or_else(|| panic!("not an unknown-key error: {error}"))
        .1;
    let rest = rest.lines().next().unwrap_or_default();
    rest.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The keys the loader accepts in the table `id`, as it says itself.
fn accepted_keys(table: &Table) -> BTreeSet<String> {
    let mut instance = required(table);
    if table.id == "latency" {
        // The table forms of a latency are variants: an unknown one is refused as such.
        instance = toml::Table::new();
    }
    instance.insert(UNKNOWN.into(), Value::Integer(1));
    let (main, probe) = place(table.id, instance);
    let error = load(&main, &probe).expect_err("an unknown key must be refused");
    let mut names = expected_names(&error);
    if table.id == MAIN {
        // These three are taken apart by hand before the rest is read.
        names.extend(["gateways", "receivers", "alerts"].map(String::from));
    }
    names
}

#[test]
fn the_reference_names_exactly_the_keys_the_loader_accepts() {
    let mut problems = Vec::new();
    for table in tables() {
        let accepted = accepted_keys(table);
        let documented: BTreeSet<String> = table.keys.iter().map(|k| k.name.to_string()).collect();
        for missing in accepted.difference(&documented) {
            problems.push(format!(
                "{}: the loader accepts `{missing}`, the reference does not name it",
                table.title
            ));
        }
        for extra in documented.difference(&accepted) {
            problems.push(format!(
                "{}: the reference names `{extra}`, the loader refuses it",
                table.title
            ));
        }
    }
    for (section, kinds) in [
        ("gateways", GatewayConfig::KINDS),
        ("receivers", ReceiverConfig::KINDS),
        ("alerts", AlertConfig::KINDS),
    ] {
        let documented: BTreeSet<&str> = reference::kinds(section)
            .filter_map(|t| t.kind.map(|(_, k)| k))
            .collect();
        let loaded: BTreeSet<&str> = kinds.iter().copied().collect();
        if documented != loaded {
            problems.push(format!(
                "[{section}.NAME] kinds: the loader takes {loaded:?}, the reference has {documented:?}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every table with all of its keys set to their examples (or defaults): one
/// variant per key that excludes others, so that each is tried.
fn full_instances(table: &Table) -> Vec<toml::Table> {
    let excluded = |key: &str| -> Vec<&str> {
        table
            .exclusive
            .iter()
            .filter_map(|(a, b)| {
                if *a == key {
                    Some(*b)
                } else if *b == key {
                    Some(*a)
                } else {
                    None
                }
            })
            .collect()
    };
    let pivots: Vec<&str> = table
        .keys
        .iter()
        .map(|k| k.name)
        .filter(|k| !excluded(k).is_empty())
        .collect();
    let variants: Vec<Vec<&str>> = if pivots.is_empty() {
        vec![Vec::new()]
    } else {
        pivots.iter().map(|p| excluded(p)).collect()
    };
    variants
        .into_iter()
        .map(|drop| {
            let mut out = required(table);
            for key in table.keys {
                if drop.contains(&key.name) {
                    continue;
                }
                if let Some(value) = full_value(key) {
                    out.insert(key.name.into(), value);
                }
            }
            out
        })
        .collect()
}

fn full_value(key: &Key) -> Option<Value> {
    if let Some(sample) = key.sample() {
        return Some(literal(&sample));
    }
    match &key.ty {
        Type::Kinds(_) => None,
        ty => {
            let id = *ty.tables().first()?;
            let instance = full_instances(reference::table(id)).remove(0);
            Some(wrap(ty, id, instance))
        }
    }
}

/// Every documented table, fully set, placed in a config pair.
fn documented_configs() -> Vec<(String, toml::Table, toml::Table)> {
    let mut out = Vec::new();
    for table in tables() {
        for (i, instance) in full_instances(table).into_iter().enumerate() {
            let (main, probe) = place(table.id, instance);
            out.push((format!("{} #{i}", table.id), main, probe));
        }
    }
    out
}

#[test]
fn every_documented_example_and_default_loads() {
    let mut problems = Vec::new();
    for (name, main, probe) in documented_configs() {
        if let Err(e) = load(&main, &probe) {
            problems.push(format!(
                "{name}:\n{e}\n--- config.toml\n{}--- probes/p.toml\n{}",
                toml::to_string(&main).unwrap(),
                toml::to_string(&probe).unwrap()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn docs_configuration_md_is_what_the_binary_prints() {
    let out = Command::new(BIN)
        .args(["config-schema", "--markdown"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == printed,
        "docs/configuration.md is out of date with src/config/reference.rs; regenerate it:\n  \
         cargo run -- config-schema --markdown > docs/configuration.md"
    );
    for table in tables() {
        assert!(printed.contains(&format!("<a id=\"{}\"></a>", table.id)));
        for key in table.keys {
            assert!(
                printed.contains(&format!("| `{}` |", key.name)),
                "{}: {}",
                table.id,
                key.name
            );
        }
    }
}

// ---------------------------------------------------------------------------
// The man page

/// The lines of the man page's section `name`, up to the next section.
fn man_section(page: &str, name: &str) -> String {
    let start = page
        .find(&format!(".SH {name}\n"))
        .unwrap_or_else(|| panic!("no section {name}"));
    let rest = &page[start + 4..];
    let end = rest.find("\n.SH ").map_or(rest.len(), |i| i + 1);
    rest[..end].to_string()
}

#[test]
fn the_man_page_has_the_reference_sections() {
    let out = Command::new(BIN).arg("man").output().unwrap();
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    let configuration = man_section(&page, "CONFIGURATION");
    for table in tables() {
        for key in table.keys {
            let entry = format!(".TP\n\\fB{}\\fR \\fI", reference::roff_escape(key.name));
            assert!(
                configuration.contains(&entry),
                "CONFIGURATION lacks {}.{}",
                table.id,
                key.name
            );
        }
    }
    assert!(
        configuration.contains("default 127.0.0.1:9187")
            || configuration.contains("default \"127.0.0.1:9187\"")
    );
    let exit = man_section(&page, "\"EXIT STATUS\"");
    for command in ["check", "drill", "doctor", "daemon"] {
        assert!(exit.contains(&format!("\\fB{command}\\fR")), "{exit}");
    }
    let environment = man_section(&page, "ENVIRONMENT");
    for var in [
        "SMS_CANARY_CONFIG",
        "RUST_LOG",
        "NO_COLOR",
        "SMS_CANARY_MOCK_AUTH_TOKEN",
    ] {
        assert!(
            environment.contains(&reference::roff_escape(var)),
            "{var}: {environment}"
        );
    }
    let files = man_section(&page, "FILES");
    for file in ["config.toml", "state.db", "holders/"] {
        assert!(files.contains(file), "{file}: {files}");
    }
    assert!(man_section(&page, "SIGNALS").contains("SIGHUP"));
    assert!(man_section(&page, "EXAMPLES").contains("sms\\-canary check"));
    // The sections come in the conventional order, VERSION last.
    let order: Vec<usize> = [
        "OPTIONS",
        "CONFIGURATION",
        "\"EXIT STATUS\"",
        "ENVIRONMENT",
        "FILES",
        "SIGNALS",
        "EXAMPLES",
        "VERSION",
    ]
    .iter()
    .map(|s| page.find(&format!(".SH {s}\n")).unwrap())
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");

    // groff's own opinion: no warnings at the strictest level.
    let Some(groff) = crate::peers::require_peer("groff") else {
        return;
    };
    let mut child = Command::new(groff)
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "groff: {said}"
    );
}

// ---------------------------------------------------------------------------
// The JSON Schema, through a real validator

/// A Python with the `jsonschema` package (and a TOML parser).
pub(crate) fn python() -> std::path::PathBuf {
    let jsonschema = crate::python::Package {
        pip: "jsonschema==4.26.0",
        check: "import importlib.metadata as m, sys; sys.exit(m.version('jsonschema') != '4.26.0')",
    };
    let tomli = crate::python::Package {
        pip: "tomli==2.2.1; python_version < \"3.11\"",
        check: "import sys; sys.version_info >= (3, 11) or __import__('tomli')",
    };
    crate::python::with("jsonschema-4.26.0", &[jsonschema, tomli])
}

fn schema(args: &[&str]) -> Json {
    let out = Command::new(BIN)
        .arg("config-schema")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).expect("the schema is JSON")
}

/// Validates each `(name, "main" | "probe", toml)`; the errors by name.
fn validate(docs: &[(String, &str, String)]) -> BTreeMap<String, Vec<String>> {
    let request = serde_json::json!({
        "schemas": { "main": schema(&[]), "probe": schema(&["--probe"]) },
        "docs": docs.iter().map(|(name, schema, toml)| {
            serde_json::json!({ "name": name, "schema": schema, "toml": toml })
        }).collect::<Vec<_>>(),
    });
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/config_schema.py");
    let mut child = Command::new(python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the validator failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A TOML file of a config: the main file is `config.toml` (or the shipped
/// example); anything else is a probe.
fn kind_of(name: &str) -> &'static str {
    if name.ends_with("config.toml") || name.ends_with("config.example.toml") {
        "main"
    } else {
        "probe"
    }
}

/// Every config the project ships: the example, its probes, and those
/// embedded in the deployment examples.
fn shipped() -> Vec<(String, &'static str, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut docs = vec![(
        "config.example.toml".to_string(),
        "main",
        read(&root.join("config.example.toml")),
    )];
    for entry in std::fs::read_dir(root.join("probes")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let name = format!("probes/{}", path.file_name().unwrap().to_string_lossy());
            docs.push((name, "probe", read(&path)));
        }
    }
    for manifest in ["kubernetes/cronjob.yaml", "kubernetes/deployment.yaml"] {
        for doc in crate::examples::yaml_docs(manifest) {
            if doc["kind"] != "ConfigMap" {
                continue;
            }
            for (file, text) in doc["data"].as_object().unwrap() {
                if file.ends_with(".toml") {
                    let name = format!("examples/{manifest}: {file}");
                    docs.push((name, kind_of(file), text.as_str().unwrap().to_string()));
                }
            }
        }
    }
    let workflow = read(&root.join("examples/github-actions/sms-canary-smoke.yml"));
    for (file, text) in crate::examples::heredocs(&workflow) {
        if file.ends_with(".toml") {
            let name = format!("examples/github-actions/sms-canary-smoke.yml: {file}");
            docs.push((name, kind_of(&file), text));
        }
    }
    docs
}

/// Fixtures the loader refuses for a reason the schema can see too.
const SCHEMA_REFUSES: &[&str] = &[
    "bad-duration",
    "bad-e164-no-plus",
    "bad-http-method",
    "bad-listen-address",
    "bad-vonage-signature-method",
    "missing-gateway-field",
    "missing-kind",
    "missing-probe-field",
    "mock-bad-fault-rate",
    "negative-count",
    "retry-factor-below-one",
    "retry-zero-attempts",
    "unknown-alert-kind",
    "unknown-gateway-kind",
    "unknown-key-alert",
    "unknown-key-canary",
    "unknown-key-defaults",
    "unknown-key-gateway",
    "unknown-key-probe",
    "unknown-key-receiver",
    "unknown-key-retry",
    "unknown-receiver-kind",
    "unknown-section",
    "wrong-type",
];

#[test]
fn shipped_configs_and_documented_examples_validate_against_the_schema() {
    let mut docs = shipped();
    assert!(
        docs.len() >= 7,
        "the example, its probe and the deployment examples' configs: {docs:?}"
    );
    for (name, main, probe) in documented_configs() {
        docs.push((
            format!("{name} config.toml"),
            "main",
            toml::to_string(&main).unwrap(),
        ));
        docs.push((
            format!("{name} probes/p.toml"),
            "probe",
            toml::to_string(&probe).unwrap(),
        ));
    }
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad-config");
    for fixture in SCHEMA_REFUSES {
        let dir = fixtures.join(fixture);
        docs.push((
            format!("fixture {fixture}: config.toml"),
            "main",
            read(&dir.join("config.toml")),
        ));
        if let Ok(entries) = std::fs::read_dir(dir.join("probes")) {
            for entry in entries {
                let path = entry.unwrap().path();
                let name = format!(
                    "fixture {fixture}: probes/{}",
                    path.file_name().unwrap().to_string_lossy()
                );
                docs.push((name, "probe", read(&path)));
            }
        }
    }
    let results = validate(&docs);
    let mut problems = Vec::new();
    for (name, _, _) in &docs {
        let errors = &results[name];
        if !name.starts_with("fixture ") && !errors.is_empty() {
            problems.push(format!("{name} is valid, but the schema says: {errors:?}"));
        }
    }
    for fixture in SCHEMA_REFUSES {
        let prefix = format!("fixture {fixture}: ");
        let refused = results
            .iter()
            .any(|(name, errors)| name.starts_with(&prefix) && !errors.is_empty());
        if !refused {
            problems.push(format!(
                "tests/fixtures/bad-config/{fixture} is refused by the loader but passes the schema"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_schema_is_complete_for_every_table() {
    let main = schema(&[]);
    let probe = schema(&["--probe"]);
    assert_eq!(main["$schema"], "http://json-schema.org/draft-07/schema#");
    let definitions = main["definitions"].as_object().unwrap();
    for table in tables() {
        let def = match table.id {
            MAIN => &main,
            PROBE => &probe,
            id => &definitions[id],
        };
        assert_eq!(def["additionalProperties"], false, "{}", table.id);
        for key in table.keys {
            let property = &def["properties"][key.name];
            assert!(
                property["description"]
                    .as_str()
                    .is_some_and(|d| d.starts_with(key.doc)),
                "{}.{}: {property}",
                table.id,
                key.name
            );
            if let Some(default) = key.default_value() {
                assert_eq!(
                    property["default"],
                    reference::toml_value(&default).unwrap(),
                    "{}.{}",
                    table.id,
                    key.name
                );
            }
        }
    }
}
