//! The deployment examples under `examples/` are checked here, so that an
//! example that no longer matches the tool (a renamed metric, a flag or config
//! key that changed, a broken manifest) fails the build instead of a user.
//!
//! YAML is parsed with PyYAML: the interpreter is `SMS_CANARY_TEST_PYTHON` when
//! set (it must have `yaml` installed), otherwise a venv built once under the
//! target directory. The alert rules go through `promtool check rules` and the
//! systemd unit through `systemd-analyze verify`, where installed (`peers.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use sms_canary::cli::{Cli, Command as CliCommand};
use sms_canary::config::{Config, GatewayConfig};
use sms_canary::schedule::Schedule;

const BIN: &str = env!("CARGO_BIN_EXE_sms-canary");

fn example(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(example(path))
        .unwrap_or_else(|e| panic!("examples/{path}: cannot read: {e}"))
}

// ---------------------------------------------------------------------------
// Metric names

/// Every metric sms-canary exports, without the `sms_canary_` prefix.
const METRICS: &[&str] = &[
    "probe_latency_seconds",
    "probe_runs_total",
    "probe_up",
    "probe_last_success_timestamp_seconds",
    "gateway_errors_total",
    "alerts_sent_total",
    "outbox_pending",
    "outbox_dead_letters",
    "outbox_by_hand_total",
    "webhook_requests_total",
    "probe_skipped_total",
    "store_errors_total",
    "store_up",
    "config_last_reload_successful",
    "config_last_reload_success_timestamp_seconds",
    "build_info",
];
/// The histograms among them, whose series carry a suffix.
const HISTOGRAMS: &[&str] = &["probe_latency_seconds"];
const HISTOGRAM_SUFFIXES: &[&str] = &["_bucket", "_sum", "_count"];
const OUTCOMES: &[&str] = &["ok", "slow", "lost", "undelivered", "rejected", "error"];
const PHASES: &[&str] = &["submit", "sent", "delivered", "received"];

/// Every `sms_canary_[a-z_]+` name in `text`.
fn metric_names(text: &str) -> Vec<String> {
    const PREFIX: &str = "sms_canary_";
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(PREFIX) {
        let tail = &rest[at + PREFIX.len()..];
        let len = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        names.push(format!("{PREFIX}{}", &tail[..len]));
        rest = &tail[len..];
    }
    names
}

fn is_known_metric(name: &str) -> bool {
    let Some(bare) = name.strip_prefix("sms_canary_") else {
        return false;
    };
    METRICS.contains(&bare)
        || HISTOGRAMS.iter().any(|h| {
            HISTOGRAM_SUFFIXES
                .iter()
                .any(|s| bare.strip_suffix(s) == Some(h))
        })
}

/// Asserts `text` names at least one metric and only known ones; returns them.
fn assert_known_metrics(what: &str, text: &str) -> Vec<String> {
    let names = metric_names(text);
    assert!(!names.is_empty(), "{what}: names no sms_canary_ metric");
    for name in &names {
        assert!(
            is_known_metric(name),
            "{what}: unknown metric `{name}` (known: {METRICS:?}, histograms also with {HISTOGRAM_SUFFIXES:?})"
        );
    }
    names
}

/// The values a PromQL selector matches `label` against (`="a"` or `=~"a|b"`).
fn label_values(expr: &str, label: &str) -> Vec<String> {
    let mut values = Vec::new();
    for op in ["=\"", "=~\"", "!=\"", "!~\""] {
        let needle = format!("{label}{op}");
        let mut rest = expr;
        while let Some(at) = rest.find(&needle) {
            let tail = &rest[at + needle.len()..];
            let end = tail.find('"').expect("a closed label value");
            values.extend(tail[..end].split('|').map(str::to_string));
            rest = &tail[end..];
        }
    }
    values
}

fn assert_known_labels(what: &str, expr: &str) {
    for outcome in label_values(expr, "outcome") {
        assert!(
            OUTCOMES.contains(&outcome.as_str()),
            "{what}: unknown outcome `{outcome}` in {expr}"
        );
    }
    for phase in label_values(expr, "phase") {
        assert!(
            PHASES.contains(&phase.as_str()),
            "{what}: unknown phase `{phase}` in {expr}"
        );
    }
}

#[test]
fn metric_name_extraction() {
    assert_eq!(
        metric_names(
            "rate(sms_canary_probe_latency_seconds_bucket{phase=\"received\"}[5m]) / sms_canary_up"
        ),
        ["sms_canary_probe_latency_seconds_bucket", "sms_canary_up"]
    );
    assert!(is_known_metric("sms_canary_probe_latency_seconds_count"));
    assert!(!is_known_metric("sms_canary_probe_runs_total_bucket"));
    assert!(!is_known_metric("sms_canary_up"));
    assert_eq!(
        label_values(r#"x{outcome=~"lost|error", phase="sent"}"#, "outcome"),
        ["lost", "error"]
    );
}

// ---------------------------------------------------------------------------
// Grafana

#[test]
fn grafana_dashboard_queries_only_known_metrics() {
    let text = read("grafana/dashboard.json");
    let dash: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("examples/grafana/dashboard.json is not JSON: {e}"));
    assert!(
        dash["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
        "schemaVersion"
    );

    let vars = dash["templating"]["list"].as_array().expect("templating");
    let var = |name: &str| {
        vars.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no `{name}` template variable"))
    };
    assert_eq!(var("datasource")["type"], "datasource");
    assert_eq!(var("datasource")["query"], "prometheus");
    let probe = var("probe");
    assert_eq!(probe["type"], "query");
    assert_eq!(
        probe["query"]["query"],
        "label_values(sms_canary_probe_runs_total, probe)"
    );
    assert_known_metrics("the probe variable", probe["definition"].as_str().unwrap());

    let panels = dash["panels"].as_array().expect("panels");
    assert!(!panels.is_empty(), "the dashboard has no panels");
    let mut ids = BTreeSet::new();
    let mut used = BTreeSet::new();
    let mut exprs = Vec::new();
    for panel in panels {
        let title = panel["title"].as_str().expect("every panel has a title");
        assert!(
            ids.insert(panel["id"].as_u64().expect("a numeric panel id")),
            "duplicate panel id in {title}"
        );
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{title}: not on the datasource variable"
        );
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        for target in targets {
            let expr = target["expr"].as_str().expect("a PromQL expr");
            let what = format!("panel `{title}`");
            used.extend(assert_known_metrics(&what, expr));
            assert_known_labels(&what, expr);
            exprs.push(expr.to_string());
        }
    }
    // What the dashboard is for: every metric of a probe run has a panel.
    for metric in [
        "probe_latency_seconds_bucket",
        "probe_runs_total",
        "probe_up",
        "gateway_errors_total",
        "alerts_sent_total",
        "outbox_pending",
        "webhook_requests_total",
        "probe_skipped_total",
        "config_last_reload_successful",
        "store_up",
    ] {
        assert!(
            used.contains(&format!("sms_canary_{metric}")),
            "no panel shows sms_canary_{metric}"
        );
    }
    for q in ["0.5", "0.95", "0.99"] {
        assert!(
            exprs
                .iter()
                .any(|e| e.contains(&format!("histogram_quantile({q},"))
                    && e.contains("phase=\"received\"")),
            "no end-to-end p{q} latency panel"
        );
    }
}

// ---------------------------------------------------------------------------
// Python with PyYAML

/// A Python with PyYAML.
fn python() -> PathBuf {
    let yaml = crate::python::Package {
        pip: "pyyaml",
        check: "import yaml",
    };
    crate::python::with("pyyaml", &[yaml])
}

/// Every document of a YAML example, as JSON.
pub(crate) fn yaml_docs(path: &str) -> Vec<Value> {
    let out = Command::new(python())
        .args([
            "-c",
            "import json, sys, yaml\n\
             with open(sys.argv[1]) as f:\n    docs = list(yaml.safe_load_all(f))\n\
             print(json.dumps(docs, default=str))",
        ])
        .arg(example(path))
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "examples/{path} is not valid YAML:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let docs: Vec<Value> = docs.into_iter().filter(|d| !d.is_null()).collect();
    assert!(!docs.is_empty(), "examples/{path} is empty");
    docs
}

// ---------------------------------------------------------------------------
// Prometheus rules

#[test]
fn prometheus_rules_pass_promtool() {
    let Some(promtool) = crate::peers::require_peer("promtool") else {
        return;
    };
    let path = example("prometheus/alerts.yml");
    let out = Command::new(promtool)
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool check rules examples/prometheus/alerts.yml:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn prometheus_rules_use_known_metrics_and_watch_the_canary_itself() {
    assert_known_metrics(
        "examples/prometheus/alerts.yml",
        &read("prometheus/alerts.yml"),
    );

    let docs = yaml_docs("prometheus/alerts.yml");
    let rules: Vec<&Value> = docs[0]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules"))
        .collect();
    assert!(!rules.is_empty());
    let mut exprs = BTreeMap::new();
    for rule in &rules {
        let name = rule["alert"].as_str().expect("alerting rules only");
        let expr = rule["expr"].as_str().expect("expr");
        assert_known_labels(name, expr);
        let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
        assert!(
            ["warning", "critical"].contains(&severity),
            "{name}: severity `{severity}`"
        );
        let summary = rule["annotations"]["summary"].as_str().unwrap_or_default();
        let description = rule["annotations"]["description"]
            .as_str()
            .unwrap_or_default();
        assert!(
            !summary.is_empty() && !description.is_empty(),
            "{name}: needs summary and description annotations"
        );
        // A rule about probes names the probe it fires for.
        let per_probe = metric_names(expr)
            .iter()
            .any(|m| m.starts_with("sms_canary_probe_"))
            && !expr.contains("absent(");
        if per_probe {
            assert!(
                summary.contains("$labels.probe") || description.contains("$labels.probe"),
                "{name}: annotations do not name $labels.probe"
            );
        }
        exprs.insert(name.to_string(), expr.replace(char::is_whitespace, ""));
    }
    let has = |what: &str, needle: &str| {
        assert!(
            exprs.values().any(|e| e.contains(needle)),
            "no rule for {what} (an expr containing `{needle}`)"
        );
    };
    // The canary itself stopped reporting.
    has("a vanished canary", "absent(sms_canary_build_info)");
    has(
        "a canary that cannot be scraped",
        "up{job=\"sms-canary\"}==0",
    );
    has(
        "no success lately (a stuck scheduler)",
        "time()-sms_canary_probe_last_success_timestamp_seconds>",
    );
    // The probes.
    has("a failing probe", "sms_canary_probe_up==0");
    has("p95 latency", "histogram_quantile(0.95,sum");
    has("a high loss ratio", "increase(sms_canary_probe_runs_total");
    has("an outbox backlog", "sms_canary_outbox_pending>0");
    // The canary's own trouble.
    has(
        "a failed reload",
        "sms_canary_config_last_reload_successful==0",
    );
    has(
        "a probe not running",
        "increase(sms_canary_probe_skipped_total",
    );
    has("a failing store", "sms_canary_store_up==0");
}

// ---------------------------------------------------------------------------
// Kubernetes

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in the manifest"))
}

/// A fake value for every `${VAR}` the example configs use.
fn fake_env(name: &str) -> Option<String> {
    Some(if name.ends_with("ACCOUNT_SID") {
        format!("AC{}", "0".repeat(32))
    } else if name.ends_with("_URL") {
        "https://hooks.example.com/x".to_string()
    } else {
        "not-a-secret".to_string()
    })
}

/// Writes a ConfigMap's files to a temp dir and loads its config.toml.
fn load_configmap(what: &str, configmap: &Value) -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    let data = configmap["data"].as_object().expect("ConfigMap data");
    for (name, text) in data {
        std::fs::write(dir.path().join(name), text.as_str().unwrap()).unwrap();
    }
    let config = Config::load_with_env(&dir.path().join("config.toml"), &fake_env)
        .unwrap_or_else(|e| panic!("{what}: the ConfigMap's config does not load:\n{e}"));
    assert!(
        !config.probes.is_empty(),
        "{what}: the ConfigMap has no probe"
    );
    (dir, config)
}

/// Checks what both manifests share: config from the ConfigMap at the path
/// SMS_CANARY_CONFIG names, secrets from a Secret, state on the PVC, non-root.
fn check_pod(what: &str, docs: &[Value], pod: &Value) -> Config {
    assert!(
        !docs.iter().any(|d| d["kind"] == "Secret"),
        "{what}: secrets must not be written into the example"
    );
    let (_dir, config) = load_configmap(what, of_kind(docs, "ConfigMap"));
    let container = &pod["containers"][0];
    let env = container["env"].as_array().expect("env");
    let config_path = env
        .iter()
        .find(|e| e["name"] == "SMS_CANARY_CONFIG")
        .and_then(|e| e["value"].as_str())
        .expect("SMS_CANARY_CONFIG");
    assert!(
        container["envFrom"]
            .as_array()
            .is_some_and(|e| e.iter().any(|s| s["secretRef"]["name"].is_string())),
        "{what}: secrets come from a Secret through envFrom"
    );
    let mounts = container["volumeMounts"].as_array().expect("volumeMounts");
    let volumes = pod["volumes"].as_array().expect("volumes");
    let volume_of = |mount_path: &str| {
        let mount = mounts
            .iter()
            .find(|m| m["mountPath"] == mount_path)
            .unwrap_or_else(|| panic!("{what}: nothing mounted at {mount_path}"));
        volumes
            .iter()
            .find(|v| v["name"] == mount["name"])
            .unwrap_or_else(|| panic!("{what}: no volume {}", mount["name"]))
    };
    let config_dir = Path::new(config_path).parent().unwrap().to_str().unwrap();
    let configmap_name = &of_kind(docs, "ConfigMap")["metadata"]["name"];
    assert_eq!(
        &volume_of(config_dir)["configMap"]["name"],
        configmap_name,
        "{what}: the ConfigMap is mounted where SMS_CANARY_CONFIG points"
    );
    let state_dir = config.canary.state_dir.to_str().unwrap();
    let claim = volume_of(state_dir)["persistentVolumeClaim"]["claimName"].clone();
    assert_eq!(
        claim,
        of_kind(docs, "PersistentVolumeClaim")["metadata"]["name"],
        "{what}: state_dir {state_dir} is on the PVC"
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{what}");
    assert_eq!(
        container["securityContext"]["readOnlyRootFilesystem"], true,
        "{what}"
    );
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"], false,
        "{what}"
    );
    config
}

fn args_of(container: &Value) -> Vec<String> {
    container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string args").to_string())
        .collect()
}

/// Parses `sms-canary ARGS` as the binary would.
fn parse_cli(what: &str, args: &[String]) -> Cli {
    let argv = std::iter::once("sms-canary".to_string()).chain(args.iter().cloned());
    Cli::parse_from_args(argv).unwrap_or_else(|e| panic!("{what}: `{}`: {e}", args.join(" ")))
}

#[test]
fn kubernetes_cronjob_runs_check_every_five_minutes_without_overlap() {
    let docs = yaml_docs("kubernetes/cronjob.yaml");
    let cron = of_kind(&docs, "CronJob");
    let spec = &cron["spec"];
    assert_eq!(spec["concurrencyPolicy"], "Forbid");
    let schedule = spec["schedule"].as_str().expect("schedule");
    let parsed = Schedule::parse(schedule).unwrap_or_else(|e| panic!("{schedule}: {e}"));
    assert_eq!(parsed.runs_per_day(), 288.0, "every 5 minutes");
    let job = &spec["jobTemplate"]["spec"];
    assert_eq!(job["backoffLimit"], 0, "a failed check is not retried");
    let pod = &job["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");

    let config = check_pod("cronjob.yaml", &docs, pod);
    let args = args_of(&pod["containers"][0]);
    let joined = args.join(" ");
    assert!(joined.starts_with("check --all"), "{joined}");
    assert!(
        joined.contains("--push-gateway http://pushgateway:9091"),
        "{joined}"
    );
    let CliCommand::Check(check) = parse_cli("cronjob.yaml", &args).command else {
        panic!("not a check: {joined}");
    };
    assert!(check.all && !check.no_state);
    // Nothing reaches a Job's pod: its probes must not wait for webhooks.
    for probe in &config.probes {
        assert!(
            !config.receivers[&probe.receiver].is_webhook(),
            "cronjob.yaml: probe {} waits for webhooks nothing can send",
            probe.name
        );
    }
}

#[test]
fn kubernetes_deployment_serves_probes_and_metrics() {
    let docs = yaml_docs("kubernetes/deployment.yaml");
    let deployment = of_kind(&docs, "Deployment");
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(
        spec["strategy"]["type"], "Recreate",
        "one SQLite store: never two pods at once"
    );
    let template = &spec["template"];
    let pod = &template["spec"];
    let config = check_pod("deployment.yaml", &docs, pod);
    let container = &pod["containers"][0];
    let args = args_of(container);
    let cli = parse_cli("deployment.yaml", &args);
    let CliCommand::Daemon(daemon) = cli.command else {
        panic!("not the daemon: {args:?}");
    };
    assert!(
        pod["terminationGracePeriodSeconds"]
            .as_u64()
            .is_some_and(|t| Duration::from_secs(t) > daemon.grace),
        "terminationGracePeriodSeconds must exceed --grace {:?}",
        daemon.grace
    );

    // Two ports: the public one (webhooks) and the admin one (the rest).
    let ports = container["ports"].as_array().expect("ports");
    let declared = |addr: std::net::SocketAddr, what: &str| {
        assert!(
            addr.ip().is_unspecified(),
            "{what} on all interfaces in a pod"
        );
        ports
            .iter()
            .find(|p| p["containerPort"] == addr.port())
            .unwrap_or_else(|| panic!("container port {addr} (the config's {what}) not declared"))
            .clone()
    };
    let public = declared(config.canary.listen, "listen");
    let admin = declared(config.canary.admin_listen, "admin_listen");
    let admin_port = config.canary.admin_listen.port();
    let probe_path = |which: &str| {
        let probe = &container[which]["httpGet"];
        assert!(
            probe["port"] == admin["name"] || probe["port"] == admin_port,
            "{which} on the admin port {admin_port}"
        );
        probe["path"].as_str().unwrap_or_default().to_string()
    };
    assert_eq!(probe_path("livenessProbe"), "/healthz");
    assert_eq!(probe_path("readinessProbe"), "/readyz");
    let annotations = &template["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
    assert_eq!(
        annotations["prometheus.io/port"],
        admin_port.to_string(),
        "metrics are scraped on the admin port"
    );
    assert!(
        config.canary.api_token.is_some(),
        "the run API has a token, from the Secret"
    );
    let resources = &container["resources"];
    assert!(
        resources["requests"]["memory"].is_string() && resources["limits"]["memory"].is_string()
    );

    let service = of_kind(&docs, "Service");
    assert_eq!(
        service["spec"]["selector"], spec["selector"]["matchLabels"],
        "the Service selects the Deployment's pods"
    );
    let exposed = service["spec"]["ports"].as_array().expect("Service ports");
    assert_eq!(
        exposed.len(),
        1,
        "the Service, meant for an Ingress, exposes the public port only: {exposed:?}"
    );
    assert!(
        exposed[0]["targetPort"] == public["name"]
            || exposed[0]["targetPort"] == config.canary.listen.port(),
        "the Service targets the public port: {exposed:?}"
    );
    assert!(
        docs.iter().filter(|d| d["kind"] == "Service").count() == 1,
        "no Service for the admin port"
    );
}

#[test]
fn kubernetes_pod_monitor_scrapes_the_admin_port() {
    let docs = yaml_docs("kubernetes/deployment.yaml");
    let deployment = of_kind(&docs, "Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let monitor = yaml_docs("kubernetes/monitoring.yaml");
    let monitor = of_kind(&monitor, "PodMonitor");
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"], deployment["spec"]["selector"]["matchLabels"],
        "the PodMonitor selects the Deployment's pods"
    );
    let endpoint = &monitor["spec"]["podMetricsEndpoints"][0];
    assert_eq!(endpoint["path"], "/metrics");
    assert_eq!(endpoint["honorLabels"], true);
    let port = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == endpoint["port"])
        .unwrap_or_else(|| panic!("no container port named {}", endpoint["port"]));
    let (_dir, config) = load_configmap("deployment.yaml", of_kind(&docs, "ConfigMap"));
    assert_eq!(
        port["containerPort"],
        config.canary.admin_listen.port(),
        "the PodMonitor scrapes the admin port"
    );
}

// ---------------------------------------------------------------------------
// Prometheus scrape job

#[test]
fn prometheus_scrape_job_targets_the_admin_listener() {
    let docs = yaml_docs("prometheus/scrape.yml");
    let job = &docs[0]["scrape_configs"][0];
    assert_eq!(
        job["job_name"], "sms-canary",
        "alerts.yml expects this job name"
    );
    assert_eq!(job["honor_labels"], true);
    let default = Config::load_with_env(&example("../config.example.toml"), &|_| None)
        .expect("the example config loads");
    assert_eq!(
        job["static_configs"][0]["targets"][0],
        default.canary.admin_listen.to_string(),
        "scraped where the example config's admin_listen is"
    );
    // promtool is a system package: skipped (said on the terminal) where it
    // is missing, a failure where peers are required.
    let Some(promtool) = crate::peers::require_peer("promtool") else {
        return;
    };
    let out = Command::new(promtool)
        .args(["check", "config"])
        .arg(example("prometheus/scrape.yml"))
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool check config examples/prometheus/scrape.yml:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------
// systemd

#[test]
fn systemd_unit_is_hardened_and_runs_the_daemon() {
    let text = read("sms-canary.service");
    let mut keys: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with('[') {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not key=value: {line}"));
        keys.entry(key).or_default().push(value);
    }
    let one = |key: &str| -> &str {
        match keys.get(key).map(Vec::as_slice) {
            Some([value]) => value,
            other => panic!("{key}: expected once, found {other:?}"),
        }
    };
    for (key, value) in [
        ("Restart", "on-failure"),
        ("DynamicUser", "yes"),
        ("StateDirectory", "sms-canary"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("SystemCallFilter", "@system-service"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("EnvironmentFile", "-/etc/sms-canary/env"),
    ] {
        assert_eq!(one(key), value, "{key}");
    }
    let families: BTreeSet<&str> = one("RestrictAddressFamilies").split_whitespace().collect();
    assert_eq!(
        families,
        BTreeSet::from(["AF_INET", "AF_INET6", "AF_UNIX"]),
        "RestrictAddressFamilies"
    );
    assert!(
        !keys.contains_key("WatchdogSec"),
        "the daemon's own watchdog exits 70; no WatchdogSec"
    );
    assert!(
        text.contains("state_dir = \"/var/lib/sms-canary\""),
        "the comment shows state_dir in StateDirectory"
    );

    let exec: Vec<String> = one("ExecStart")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert!(
        exec[0].ends_with("/sms-canary"),
        "ExecStart runs sms-canary"
    );
    let CliCommand::Daemon(daemon) = parse_cli("ExecStart", &exec[1..]).command else {
        panic!("ExecStart does not run `sms-canary daemon`");
    };
    let stop = humantime::parse_duration(one("TimeoutStopSec")).expect("TimeoutStopSec");
    assert!(
        stop > daemon.grace,
        "TimeoutStopSec {stop:?} must exceed the daemon's grace {:?}",
        daemon.grace
    );

    // systemd's own opinion.
    if let Some(systemd_analyze) = crate::peers::require_peer("systemd-analyze") {
        let dir = tempfile::tempdir().unwrap();
        let unit = dir.path().join("sms-canary.service");
        // The unit's binary path must exist for verify: use the one just built.
        std::fs::write(&unit, text.replace(&exec[0], BIN)).unwrap();
        let out = Command::new(systemd_analyze)
            .args(["verify", "--man=no"])
            .arg(&unit)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let about_unit: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("sms-canary.service"))
            .collect();
        assert!(
            out.status.success() && about_unit.is_empty(),
            "systemd-analyze verify ({}):\n{stderr}",
            out.status
        );
    }
}

// ---------------------------------------------------------------------------
// cron

#[test]
fn crontab_runs_check_all_every_five_minutes_under_flock() {
    let text = read("crontab");
    let mut env = BTreeMap::new();
    let mut jobs = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let first = line.split_whitespace().next().unwrap();
        match first.split_once('=') {
            Some((name, value)) if name.chars().all(|c| c.is_ascii_uppercase() || c == '_') => {
                env.insert(name, value.trim_matches('"'));
            }
            _ => jobs.push(line),
        }
    }
    assert_eq!(jobs.len(), 1, "one job line: {jobs:?}");
    assert!(
        env.get("SMS_CANARY_CONFIG")
            .is_some_and(|p| p.ends_with(".toml")),
        "SMS_CANARY_CONFIG names the config"
    );
    let fields: Vec<&str> = jobs[0].split_whitespace().collect();
    let schedule = fields[..5].join(" ");
    assert!(
        fields[..5]
            .iter()
            .all(|f| f.chars().all(|c| c.is_ascii_digit() || "*/,-".contains(c))),
        "five schedule fields: {schedule}"
    );
    let parsed = Schedule::parse(&schedule).unwrap_or_else(|e| panic!("{schedule}: {e}"));
    assert_eq!(parsed.runs_per_day(), 288.0, "every 5 minutes");
    assert!(
        !fields[5]
            .chars()
            .all(|c| c.is_ascii_digit() || "*/,-".contains(c)),
        "a sixth schedule field (a user column) does not belong in a user crontab"
    );

    let command = &fields[5..];
    let flock = command
        .iter()
        .position(|w| *w == "flock")
        .expect("wrapped in flock");
    assert_eq!(command[flock + 1], "-n", "flock -n: skip, do not queue");
    let at = command
        .iter()
        .position(|w| *w == "sms-canary")
        .expect("runs sms-canary");
    assert!(at > flock, "sms-canary runs under flock");
    let args: Vec<String> = command[at + 1..]
        .iter()
        .take_while(|w| !w.starts_with('>') && !w.starts_with("2>"))
        .map(|w| w.to_string())
        .collect();
    assert_eq!(args[..2], ["check", "--all"]);
    let textfile = args
        .iter()
        .skip_while(|a| *a != "--textfile")
        .nth(1)
        .expect("--textfile PATH");
    assert!(
        textfile.ends_with(".prom"),
        "node_exporter reads *.prom: {textfile}"
    );
    let CliCommand::Check(check) = parse_cli("crontab", &args).command else {
        unreachable!()
    };
    assert!(check.all && !check.no_state, "cron runs keep their state");
    assert!(jobs[0].contains(">> "), "output appended to a log");
}

// ---------------------------------------------------------------------------
// GitHub Actions

/// The files a shell script writes with `cat > PATH <<'EOF'` … `EOF`.
pub(crate) fn heredocs(script: &str) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut lines = script.lines();
    while let Some(line) = lines.next() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("cat > ") else {
            continue;
        };
        let (path, marker) = rest
            .split_once(" <<")
            .unwrap_or_else(|| panic!("a heredoc: {line}"));
        let marker = marker.trim_matches(|c| c == '\'' || c == '"' || c == '-');
        let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != marker).collect();
        files.push((path.to_string(), body.join("\n") + "\n"));
    }
    files
}

/// A shell command line, `\`-continuations joined, cut before any redirection.
fn command_words(script: &str, program: &str) -> Vec<String> {
    let joined = script.replace("\\\n", " ");
    let line = joined
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{program} ")))
        .unwrap_or_else(|| panic!("no `{program}` line in:\n{script}"));
    line.split_whitespace()
        .skip(1)
        .take_while(|w| !w.starts_with('>') && !w.starts_with("2>") && *w != "&")
        .map(str::to_string)
        .collect()
}

fn value_after<'a>(words: &'a [String], flag: &str) -> &'a str {
    words
        .iter()
        .skip_while(|w| *w != flag)
        .nth(1)
        .unwrap_or_else(|| panic!("no {flag} in {words:?}"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn github_workflow_config_loads_and_round_trips_through_the_mock() {
    let docs = yaml_docs("github-actions/sms-canary-smoke.yml");
    let workflow = &docs[0];
    // PyYAML reads the bare `on:` key as a boolean.
    assert!(
        workflow.get("on").or(workflow.get("true")).is_some(),
        "triggers"
    );
    let jobs = workflow["jobs"].as_object().expect("jobs");
    let steps: Vec<&Value> = jobs
        .values()
        .flat_map(|j| j["steps"].as_array().expect("steps"))
        .collect();
    let script = |needle: &str| -> String {
        steps
            .iter()
            .filter_map(|s| s["run"].as_str())
            .find(|r| r.contains(needle))
            .unwrap_or_else(|| panic!("no step runs `{needle}`"))
            .to_string()
    };
    let uses = |action: &str| -> &Value {
        steps
            .iter()
            .find(|s| s["uses"].as_str().is_some_and(|u| u.starts_with(action)))
            .unwrap_or_else(|| panic!("no step uses {action}"))
    };

    let mock_script = script("sms-canary mock-carrier");
    let mock = command_words(&mock_script, "sms-canary");
    assert!(
        mock_script.contains("&\n"),
        "the mock runs in the background"
    );
    let check_script = script("sms-canary --config");
    assert!(check_script.contains("> result.json"), "{check_script}");
    let check = command_words(&check_script, "sms-canary");
    let CliCommand::Check(check_args) = parse_cli("the workflow's check", &check).command else {
        panic!("not a check: {check:?}");
    };
    assert!(check_args.no_state, "CI keeps no state");
    assert_eq!(value_after(&check, "--format"), "json");
    assert!(
        check.contains(&"--junit".to_string()),
        "JUnit for the report"
    );
    let upload = uses("actions/upload-artifact");
    assert_eq!(upload["if"], "always()", "results are kept on failure too");
    assert!(
        upload["with"]["path"]
            .as_str()
            .unwrap()
            .contains("result.json")
    );
    assert_eq!(uses("dorny/test-reporter")["if"], "always()");

    // The inline config loads, as the config format evolves.
    let files = heredocs(&script("<<'EOF'"));
    let config_path = value_after(&check, "--config").to_string();
    assert!(
        files.iter().any(|(p, _)| *p == config_path),
        "the check's --config {config_path} is written by the workflow: {files:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let write_files = |replace: &dyn Fn(&str) -> String| {
        for (path, text) in &files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, replace(text)).unwrap();
        }
    };
    write_files(&|t| t.to_string());
    let config = Config::load_with_env(&dir.path().join(&config_path), &|_| None)
        .unwrap_or_else(|e| panic!("the workflow's config does not load:\n{e}"));
    assert_eq!(config.probes.len(), 1, "one probe");
    let probe = &config.probes[0];

    // It fits the mock the workflow starts.
    assert_eq!(mock[0], "mock-carrier");
    let mock_listen = value_after(&mock, "--listen");
    let GatewayConfig::Twilio(gateway) = &config.gateways[&probe.gateway] else {
        panic!("the probe's gateway is not a twilio one pointed at the mock");
    };
    assert_eq!(
        gateway.base_url.as_str().trim_end_matches('/'),
        format!("http://{mock_listen}")
    );
    assert_eq!(
        value_after(&mock, "--owned"),
        format!(
            "{}=http://{}/hooks/twilio/inbound/{}",
            probe.to.as_str(),
            config.canary.listen,
            probe.receiver
        ),
        "the mock posts the probe's message to the check's webhook"
    );

    // And it works: the same commands, on free ports.
    let hooks = config.canary.listen.to_string();
    let mock_addr = format!("127.0.0.1:{}", free_port());
    let hooks_addr = format!("127.0.0.1:{}", free_port());
    let remap = |s: &str| {
        s.replace(mock_listen, &mock_addr)
            .replace(&hooks, &hooks_addr)
    };
    write_files(&|t| remap(t));
    let mut child = Command::new(BIN)
        .args(mock.iter().map(|w| remap(w)))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _mock = Reap(child);
    assert!(line.contains(&mock_addr), "the mock listens: {line}");
    let check: Vec<String> = check.iter().map(|w| remap(w)).collect();
    let out: Output = Command::new(BIN)
        .args(&check)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_str(&stdout).expect("JSON on stdout");
    assert_eq!(result["runs"][0]["outcome"], "ok", "{result}");
}
