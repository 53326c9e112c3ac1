//! The configuration reference: every table and key the loader accepts, with
//! its type, default and meaning, written once here.
//!
//! Three documents are generated from it, so they cannot disagree: the
//! markdown reference (`docs/configuration.md`, `config-schema --markdown`),
//! the CONFIGURATION section of the man page, and the JSON Schema editors use
//! (`config-schema`, `config-schema --probe`). Defaults are not copied into it
//! but computed from the code's own defaults. Tests hold it to the loader:
//! the keys of each table are exactly those the loader accepts, every example
//! value loads, and the shipped configs validate against the schema.

use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use super::{Canary, Defaults, RetryPolicy};
pub use crate::settings::{Key, Presence, Table, Type};
use crate::settings::{RATE, U32, U64, toml_duration, toml_string};

/// The roots: the main file and a probe file.
pub const MAIN: &str = "main";
pub const PROBE: &str = "probe";

fn toml_retry(r: RetryPolicy) -> String {
    format!(
        "{{ attempts = {}, initial = {}, factor = {:?} }}",
        r.attempts,
        toml_duration(r.initial),
        r.factor
    )
}

fn toml_strings(list: &[String]) -> String {
    let items: Vec<String> = list.iter().map(toml_string).collect();
    format!("[{}]", items.join(", "))
}

fn canary() -> Canary {
    Canary::default()
}

fn defaults() -> Defaults {
    Defaults::default()
}

fn mock() -> crate::mock_carrier::MockConfig {
    crate::mock_carrier::MockConfig::default()
}

/// Every table, in the order the reference presents them.
/// The loader's own tables, before the providers' (see [`tables`]).
const CORE: &[Table] = &[
    Table {
        id: MAIN,
        title: "The main file",
        kind: None,
        doc: "The main configuration file holds these tables; probes live in files of their own (see [canary] probes).",
        keys: &[
            Key {
                name: "canary",
                ty: Type::Table("canary"),
                presence: Presence::Unset("every key of [canary] takes its default"),
                doc: "Settings of this sms-canary instance.",
                example: None,
            },
            Key {
                name: "defaults",
                ty: Type::Table("defaults"),
                presence: Presence::Unset("every key of [defaults] takes its default"),
                doc: "What a probe gets for every setting it leaves out.",
                example: None,
            },
            Key {
                name: "gateways",
                ty: Type::Kinds("gateways"),
                presence: Presence::Unset("no gateways"),
                doc: "Where probes submit messages: `[gateways.NAME]` with a `kind`.",
                example: None,
            },
            Key {
                name: "receivers",
                ty: Type::Kinds("receivers"),
                presence: Presence::Unset("no receivers"),
                doc: "Where probes see their messages arrive: `[receivers.NAME]` with a `kind`.",
                example: None,
            },
            Key {
                name: "alerts",
                ty: Type::Kinds("alerts"),
                presence: Presence::Unset("no alert channels"),
                doc: "Where notifications go: `[alerts.NAME]` with a `kind`.",
                example: None,
            },
        ],
        exclusive: &[],
    },
    Table {
        id: "canary",
        title: "[canary]",
        kind: None,
        doc: "Settings of this sms-canary instance.",
        keys: &[
            Key {
                name: "state_dir",
                ty: Type::String,
                presence: Presence::Default(|| toml_string(canary().state_dir.display())),
                doc: "Directory of the state store (`state.db`, SQLite, and `holders/`), shared by cron runs and the daemon. Relative to the config file's directory.",
                example: Some(r#""/var/lib/sms-canary""#),
            },
            Key {
                name: "store",
                ty: Type::Secret,
                presence: Presence::Unset("the SQLite store in `state_dir`"),
                doc: "A PostgreSQL store for a fleet of daemons: `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`, with `${VAR}` for the password (never printed: messages show the DSN without it). Parameters: `sslmode` (`disable`; `prefer`, the default: TLS when the server offers it, unverified, as libpq; `require`: TLS with the certificate verified against the system's roots), `connect_timeout` (seconds, default 10), `application_name`, `options`. For example `\"postgres://canary:${PGPASSWORD}@db.internal/canary?sslmode=require\"`. Not complete yet: this version refuses it, naming what the PostgreSQL store does not keep yet.",
                // None while the store is refused: every example must load.
                example: None,
            },
            Key {
                name: "listen",
                ty: Type::Address,
                presence: Presence::Default(|| toml_string(canary().listen)),
                doc: "The public listener: the webhook routes under /hooks/ and nothing else, the one address meant to be reachable from the internet. `check --listen` and `daemon --listen` override it.",
                example: Some(r#""0.0.0.0:9187""#),
            },
            Key {
                name: "admin_listen",
                ty: Type::Address,
                presence: Presence::Default(|| toml_string(canary().admin_listen)),
                doc: "Daemon: the admin listener, serving /metrics, /healthz, /readyz and the run API. Keep it on loopback or a private network.",
                example: Some(r#""127.0.0.1:9188""#),
            },
            Key {
                name: "admin_hosts",
                ty: Type::List(&Type::String),
                presence: Presence::Unset("IP addresses and `localhost` only"),
                doc: "Host names (with or without a port) the run API answers to besides IP addresses and `localhost`, e.g. the name a reverse proxy forwards.",
                example: Some(r#"["canary-admin.internal"]"#),
            },
            Key {
                name: "public_url",
                ty: Type::Url,
                presence: Presence::Unset("`http://` and the address the listener bound"),
                doc: "How providers reach the webhooks: the base of every callback URL given to a provider.",
                example: Some(r#""https://canary.example.com""#),
            },
            Key {
                name: "status_url",
                ty: Type::Url,
                presence: Presence::Unset(
                    "alerts carry no status page link (the admin listener is usually loopback only)",
                ),
                doc: "Where operators reach the daemon's status page (the admin listener, e.g. through an internal proxy); every alert then links to the probe's page there, `{status_url}/probes/NAME`.",
                example: Some(r#""https://ops.example.com/sms-canary/""#),
            },
            Key {
                name: "instance",
                ty: Type::String,
                presence: Presence::Unset("the machine's host name, else `local`"),
                doc: "Label on metrics and alerts, so that several instances can share one Alertmanager.",
                example: Some(r#""eu-1""#),
            },
            Key {
                name: "probes",
                ty: Type::List(&Type::String),
                presence: Presence::Default(|| toml_strings(&canary().probes)),
                doc: "Globs of probe files, relative to the config file's directory; one probe a file.",
                example: Some(r#"["probes/*.toml"]"#),
            },
            Key {
                name: "heartbeat_url",
                ty: Type::Secret,
                presence: Presence::Unset("no heartbeat"),
                doc: "Dead-man's switch: the daemon GETs this URL each time every enabled probe has had a good run since the last ping.",
                example: Some(r#""https://hc-ping.com/${HEARTBEAT_UUID}""#),
            },
            Key {
                name: "concurrency",
                ty: Type::Int {
                    min: 0,
                    max: u32::MAX as u64,
                },
                presence: Presence::Default(|| canary().concurrency.to_string()),
                doc: "Daemon: runs in flight at most (0 counts as 1).",
                example: None,
            },
            Key {
                name: "api_token",
                ty: Type::Secret,
                presence: Presence::Unset("the run API is off (403)"),
                doc: "Daemon: the bearer token every call to the run API (`POST /probes/{name}/run`, `GET /runs/{id}`) must carry; `sms-canary trigger` reads it from the config. An empty value is an error.",
                example: Some(r#""${SMS_CANARY_API_TOKEN}""#),
            },
            Key {
                name: "alerts",
                ty: Type::List(&Type::String),
                presence: Presence::Unset("every channel an enabled probe notifies"),
                doc: "Alert channels (names of `[alerts.NAME]` tables) for the canary's own alerts: the cost guard's budget spent, and the like.",
                example: Some(r#"["ops-slack"]"#),
            },
            Key {
                name: "notify_retry",
                ty: Type::Table("retry"),
                presence: Presence::Default(|| toml_retry(canary().notify_retry)),
                doc: "Retries of alert notifications before they become dead letters (listed by `history`).",
                example: None,
            },
            Key {
                name: "retention",
                ty: Type::Duration,
                presence: Presence::Default(|| toml_duration(canary().retention)),
                doc: "How long raw runs are kept (the recent runs listed, incidents, correlation ids); older ones are pruned in small batches and live on in the hourly rollups. At least a day: the cost guard counts the last 24 hours. Runs a pending notice or a firing alert needs are kept whatever their age.",
                example: Some(r#""90d""#),
            },
            Key {
                name: "rollup_retention",
                ty: Type::Duration,
                presence: Presence::Default(|| toml_duration(canary().rollup_retention)),
                doc: "How long the hourly rollups (runs by outcome, latency histograms) are kept: the reach of `history --since`, the status page and `report`.",
                example: Some(r#""800d""#),
            },
        ],
        exclusive: &[],
    },
    Table {
        id: "defaults",
        title: "[defaults]",
        kind: None,
        doc: "What a probe gets for every setting it leaves out. A probe's own value replaces the default whole (a probe's `retry` table replaces the default one).",
        keys: &[
            Key {
                name: "schedule",
                ty: Type::Schedule,
                presence: Presence::Default(|| toml_string(defaults().schedule)),
                doc: "When the daemon runs a probe: `every 5m` (spread across the interval per probe), a crontab line such as `*/5 * * * *`, or six fields with seconds first. At least 1s apart.",
                example: Some(r#""*/5 * * * *""#),
            },
            Key {
                name: "timeout",
                ty: Type::Duration,
                presence: Presence::Default(|| toml_duration(defaults().timeout)),
                doc: "How long a run waits for its message: no arrival by then is `lost`. Greater than 0.",
                example: None,
            },
            Key {
                name: "threshold",
                ty: Type::Duration,
                presence: Presence::Default(|| toml_duration(defaults().threshold)),
                doc: "Latency above this is `slow` (a warning). At most the timeout.",
                example: None,
            },
            Key {
                name: "retry",
                ty: Type::Table("retry"),
                presence: Presence::Default(|| toml_retry(defaults().retry)),
                doc: "Retries of transient submit errors (5xx, 429, timeouts), within the run's timeout.",
                example: None,
            },
            Key {
                name: "failure_threshold",
                ty: U32,
                presence: Presence::Default(|| defaults().failure_threshold.to_string()),
                doc: "Consecutive failed runs before an alert fires.",
                example: None,
            },
            Key {
                name: "success_threshold",
                ty: U32,
                presence: Presence::Default(|| defaults().success_threshold.to_string()),
                doc: "Consecutive good runs before a firing alert resolves.",
                example: None,
            },
            Key {
                name: "reminder",
                ty: Type::Duration,
                presence: Presence::Default(|| toml_duration(defaults().reminder)),
                doc: "Re-notify this often while an alert fires; \"0s\" never.",
                example: None,
            },
            Key {
                name: "max_messages_per_day",
                ty: U32,
                presence: Presence::Default(|| defaults().max_messages_per_day.to_string()),
                doc: "Cost guard: messages a day across all probes; past it, runs are skipped (UNKNOWN), not sent.",
                example: None,
            },
            Key {
                name: "body",
                ty: Type::String,
                presence: Presence::Default(|| toml_string(defaults().body)),
                doc: "SMS body template: `{probe}`, `{token}` (required: it is how the receiver recognises the message) and `{correlation_id}`.",
                example: Some(r#""canary {probe} {token}""#),
            },
            Key {
                name: "alerts",
                ty: Type::List(&Type::String),
                presence: Presence::Default(|| toml_strings(&defaults().alerts)),
                doc: "Alert channels (names of `[alerts.NAME]` tables) of probes that name none. A probe left with no channel at all is warned about by `validate` and fails `doctor`, unless its file says `alerts = []`.",
                example: Some(r#"["ops-slack"]"#),
            },
            Key {
                name: "alert_on_permanent",
                ty: Type::Bool,
                presence: Presence::Default(|| defaults().alert_on_permanent.to_string()),
                doc: "A permanent gateway refusal (`rejected`: no credit, blocked number) fires at once, whatever the failure_threshold.",
                example: None,
            },
            Key {
                name: "runbook_url",
                ty: Type::Url,
                presence: Presence::Unset("no runbook link"),
                doc: "A link every alert carries (a button in Slack, a link in mail), to what to do: a template that may use `{probe}` and `{correlation_id}`, URL-encoded.",
                example: Some(r#""https://wiki.example.com/runbooks/sms-canary#{probe}""#),
            },
            Key {
                name: "dashboard_url",
                ty: Type::Url,
                presence: Presence::Unset("no dashboard link"),
                doc: "A link every alert carries to the probe's dashboard; a template like `runbook_url`.",
                example: Some(r#""https://grafana.example.com/d/sms-canary?var-probe={probe}""#),
            },
        ],
        exclusive: &[],
    },
    Table {
        id: "retry",
        title: "retry = { … }",
        kind: None,
        doc: "Exponential backoff: `[defaults] retry`, a probe's `retry`, and `[canary] notify_retry`. The wait before attempt n+1 is initial × factor^(n-1).",
        keys: &[
            Key {
                name: "attempts",
                ty: Type::Int {
                    min: 1,
                    max: u32::MAX as u64,
                },
                presence: Presence::Default(|| RetryPolicy::default().attempts.to_string()),
                doc: "Attempts in all, the first one included; at least 1.",
                example: None,
            },
            Key {
                name: "initial",
                ty: Type::Duration,
                presence: Presence::Default(|| toml_duration(RetryPolicy::default().initial)),
                doc: "Wait before the second attempt.",
                example: None,
            },
            Key {
                name: "factor",
                ty: Type::Float {
                    min: 1.0,
                    max: None,
                },
                presence: Presence::Default(|| format!("{:?}", RetryPolicy::default().factor)),
                doc: "Each further wait is the previous one times this; at least 1.0.",
                example: None,
            },
        ],
        exclusive: &[],
    },
    Table {
        id: "gateways.mock",
        title: "[gateways.NAME] kind = \"mock\"",
        kind: Some(("gateways", "mock")),
        doc: "The bundled mock carrier, run in-process on a loopback port. It speaks a real provider's API and delivers to the probe's receiver, so a probe runs offline with no account, through the same client, webhooks and signatures as a real one.",
        keys: &[
            Key {
                name: "account_sid",
                ty: Type::String,
                presence: Presence::Default(|| toml_string(mock().account_sid)),
                doc: "The account the mock answers to (letters and digits).",
                example: None,
            },
            Key {
                name: "auth_token",
                ty: Type::Secret,
                presence: Presence::Default(|| toml_string(mock().auth_token.expose())),
                doc: "The token the mock's callbacks are signed with.",
                example: None,
            },
            Key {
                name: "latency",
                ty: Type::Either(&Type::Duration, &Type::Table("latency")),
                presence: Presence::Default(|| toml_string(mock().latency)),
                doc: "Delivery latency: a duration, or a table `{ fixed = … }`, `{ uniform = [MIN, MAX] }`, `{ lognormal = { median = …, sigma = … } }`.",
                example: Some(r#"{ uniform = ["500ms", "2s"] }"#),
            },
            Key {
                name: "seed",
                ty: U64,
                presence: Presence::Default(|| mock().seed.to_string()),
                doc: "Seed of the latency model and the fault rates, so runs are reproducible.",
                example: Some("42"),
            },
            Key {
                name: "numbers",
                ty: Type::PhoneMap(&Type::Table("gateways.mock.numbers")),
                presence: Presence::Unset("every number behaves the same"),
                doc: "Per-number behaviour: `[gateways.NAME.numbers.\"+15005550191\"]`.",
                example: None,
            },
            Key {
                name: "faults",
                ty: Type::Table("gateways.mock.faults"),
                presence: Presence::Unset("no faults"),
                doc: "Injected failures, for chaos drills and tests.",
                example: None,
            },
            Key {
                name: "api",
                ty: Type::Choice(crate::providers::MockApi::NAMES),
                presence: Presence::Default(|| toml_string(crate::providers::MockApi::NAMES[0])),
                doc: "How probes reach it: through its HTTP API, the first choice (receipts and inbound messages by signed webhook), or as an SMSC bound over TCP (receipts and inbound messages as `deliver_sm` on the bind; the probe's receiver is then of that kind too).",
                example: None,
            },
        ],
        exclusive: &[],
    },
    Table {
        id: "gateways.mock.numbers",
        title: "[gateways.NAME.numbers.\"+NUMBER\"]",
        kind: None,
        doc: "How the mock treats messages to one number.",
        keys: &[
            Key {
                name: "latency",
                ty: Type::Either(&Type::Duration, &Type::Table("latency")),
                presence: Presence::Unset("the gateway's latency"),
                doc: "Delivery latency of messages to this number.",
                example: Some(r#""8s""#),
            },
            Key {
                name: "drop",
                ty: Type::Bool,
                presence: Presence::Default(|| "false".into()),
                doc: "Accepted and sent, then silence: no receipt, no arrival (`lost`).",
                example: None,
            },
            Key {
                name: "fail",
                ty: U32,
                presence: Presence::Unset("delivered"),
                doc: "After the latency the receipt says `undelivered` with this error code (e.g. 30003), and nothing arrives.",
                example: Some("30003"),
            },
            Key {
                name: "owned",
                ty: Type::Bool,
                presence: Presence::Default(|| "false".into()),
                doc: "Messages to this number also arrive as inbound messages (listable by a poll receiver).",
                example: None,
            },
            Key {
                name: "inbound_url",
                ty: Type::Url,
                presence: Presence::Unset("the webhook of the probe's receiver, when it has one"),
                doc: "Where to POST the signed inbound-message webhook; implies `owned`.",
                example: Some(r#""http://127.0.0.1:9187/hooks/json/inbox""#),
            },
            Key {
                name: "inbound_format",
                ty: Type::Choice(crate::providers::InboundFormat::NAMES),
                presence: Presence::Unset("the API the message was sent through"),
                doc: "The inbound webhook's format: that of one of the providers the mock speaks.",
                example: None,
            },
            Key {
                name: "fake_dlr",
                ty: Type::Bool,
                presence: Presence::Default(|| "false".into()),
                doc: "The receipt says delivered, but the message never arrives (a fake DLR).",
                example: None,
            },
            Key {
                name: "duplicates",
                ty: U32,
                presence: Presence::Default(|| "0".into()),
                doc: "Extra copies of each delivered message the number receives.",
                example: Some("1"),
            },
            Key {
                name: "redeliveries",
                ty: U32,
                presence: Presence::Default(|| "0".into()),
                doc: "Extra deliveries of each inbound webhook, unchanged (the same event, the same id), as a provider re-sends an event whose answer it did not see.",
                example: Some("2"),
            },
        ],
        exclusive: &[],
    },
    Table {
        id: "latency",
        title: "latency = { … }",
        kind: None,
        doc: "The table forms of a mock latency; set exactly one key.",
        keys: &[
            Key {
                name: "fixed",
                ty: Type::Duration,
                presence: Presence::Unset("set one of fixed, uniform, lognormal"),
                doc: "Always this long.",
                example: Some(r#""800ms""#),
            },
            Key {
                name: "uniform",
                ty: Type::Pair(&Type::Duration),
                presence: Presence::Unset("set one of fixed, uniform, lognormal"),
                doc: "Uniformly between the two durations (min, max).",
                example: Some(r#"["500ms", "2s"]"#),
            },
            Key {
                name: "lognormal",
                ty: Type::Table("latency.lognormal"),
                presence: Presence::Unset("set one of fixed, uniform, lognormal"),
                doc: "Log-normal around a median: a long tail, as real carriers have.",
                example: None,
            },
        ],
        exclusive: &[
            ("fixed", "uniform"),
            ("fixed", "lognormal"),
            ("uniform", "lognormal"),
        ],
    },
    Table {
        id: "latency.lognormal",
        title: "lognormal = { … }",
        kind: None,
        doc: "A log-normal latency.",
        keys: &[
            Key {
                name: "median",
                ty: Type::Duration,
                presence: Presence::Required,
                doc: "Half the messages are faster than this.",
                example: Some(r#""1s""#),
            },
            Key {
                name: "sigma",
                ty: Type::Float {
                    min: 0.0,
                    max: None,
                },
                presence: Presence::Required,
                doc: "Spread (standard deviation of the logarithm); 0.5 is a moderate tail.",
                example: Some("0.5"),
            },
        ],
        exclusive: &[],
    },
    Table {
        id: "gateways.mock.faults",
        title: "[gateways.NAME.faults]",
        kind: None,
        doc: "Faults the mock injects; every one off by default. The same settings are taken at run time by the standalone mock's admin API (`POST /_mock/faults`).",
        keys: &[
            Key {
                name: "drop_rate",
                ty: RATE,
                presence: Presence::Default(|| "0.0".into()),
                doc: "Share of accepted messages that are never delivered (no receipt, no arrival), 0 to 1.",
                example: Some("0.1"),
            },
            Key {
                name: "duplicate_rate",
                ty: RATE,
                presence: Presence::Default(|| "0.0".into()),
                doc: "Share of delivered messages that arrive twice, 0 to 1.",
                example: Some("0.05"),
            },
            Key {
                name: "fake_dlr_rate",
                ty: RATE,
                presence: Presence::Default(|| "0.0".into()),
                doc: "Share of messages whose receipt says delivered while nothing arrives, 0 to 1.",
                example: Some("0.01"),
            },
            Key {
                name: "errors",
                ty: Type::Table("gateways.mock.faults.errors"),
                presence: Presence::Unset("none"),
                doc: "The next `count` submits fail with an HTTP error status.",
                example: None,
            },
            Key {
                name: "rate_limit",
                ty: Type::Table("gateways.mock.faults.rate_limit"),
                presence: Presence::Unset("none"),
                doc: "The next `count` submits are throttled: 429 with Retry-After.",
                example: None,
            },
            Key {
                name: "outage",
                ty: Type::Table("gateways.mock.faults.outage"),
                presence: Presence::Unset("none"),
                doc: "Every submit fails with 503 for a while, counted from when the faults are set.",
                example: None,
            },
            Key {
                name: "error_code",
                ty: Type::Table("gateways.mock.faults.error_code"),
                presence: Presence::Unset("none"),
                doc: "Submits fail with a provider error code.",
                example: None,
            },
            Key {
                name: "seed",
                ty: U64,
                presence: Presence::Unset("the gateway's seed"),
                doc: "Seed of the fault rates.",
                example: Some("7"),
            },
        ],
        exclusive: &[],
    },
    Table {
        id: "gateways.mock.faults.errors",
        title: "errors = { … }",
        kind: None,
        doc: "A burst of HTTP errors.",
        keys: &[
            Key {
                name: "status",
                ty: Type::Int { min: 400, max: 599 },
                presence: Presence::Required,
                doc: "The HTTP status, from 400 to 599 (e.g. 500 or 503).",
                example: Some("503"),
            },
            Key {
                name: "count",
                ty: U32,
                presence: Presence::Required,
                doc: "How many submits fail.",
                example: Some("3"),
            },
        ],
        exclusive: &[],
    },
    Table {
        id: "gateways.mock.faults.rate_limit",
        title: "rate_limit = { … }",
        kind: None,
        doc: "Throttled submits.",
        keys: &[
            Key {
                name: "count",
                ty: U32,
                presence: Presence::Required,
                doc: "How many submits are throttled.",
                example: Some("1"),
            },
            Key {
                name: "retry_after",
                ty: Type::Duration,
                presence: Presence::Required,
                doc: "Sent as `Retry-After` in whole seconds, rounded up.",
                example: Some(r#""5s""#),
            },
        ],
        exclusive: &[],
    },
    Table {
        id: "gateways.mock.faults.outage",
        title: "outage = { … }",
        kind: None,
        doc: "An outage window.",
        keys: &[Key {
            name: "for",
            ty: Type::Duration,
            presence: Presence::Required,
            doc: "How long the outage lasts.",
            example: Some(r#""2m""#),
        }],
        exclusive: &[],
    },
    Table {
        id: "gateways.mock.faults.error_code",
        title: "error_code = { … }",
        kind: None,
        doc: "A provider error code on submit.",
        keys: &[
            Key {
                name: "code",
                ty: Type::Int {
                    min: 1,
                    max: u32::MAX as u64,
                },
                presence: Presence::Required,
                doc: "A provider error code (e.g. 21610 or 9); each API the mock speaks translates another's codes to its nearest own one.",
                example: Some("21610"),
            },
            Key {
                name: "count",
                ty: U32,
                presence: Presence::Default(|| "0".into()),
                doc: "How many submits fail; 0 means every submit until the faults are reset.",
                example: None,
            },
        ],
        exclusive: &[],
    },
    Table {
        id: "receivers.webhook",
        title: "[receivers.NAME] kind = \"webhook\"",
        kind: Some(("receivers", "webhook")),
        doc: "Inbound messages posted to us: by the provider of its gateway, at its route under `{public_url}/hooks/` (`validate` prints the URL to configure), or by your own system to `POST {public_url}/hooks/json/NAME`.",
        keys: &[
            Key {
                name: "gateway",
                ty: Type::String,
                presence: Presence::Unset("any configured gateway's credentials are accepted"),
                doc: "The gateway (a name) whose account owns the receiving number; its credentials check inbound signatures.",
                example: Some(r#""sandbox""#),
            },
            Key {
                name: "verify_signatures",
                ty: Type::Bool,
                presence: Presence::Default(|| "true".into()),
                doc: "Refuse unsigned or badly signed webhooks (403). Turn off on a trusted network only.",
                example: None,
            },
            Key {
                name: "json_secret",
                ty: Type::Secret,
                presence: Presence::Unset(
                    "with verify_signatures on, the JSON route refuses every request (403)",
                ),
                doc: "Key of the JSON route's HMAC-SHA256 signature.",
                example: Some(r#""${INBOUND_SECRET}""#),
            },
            Key {
                name: "json_signature_header",
                ty: Type::String,
                presence: Presence::Default(|| {
                    toml_string(crate::providers::json_signature_header())
                }),
                doc: "Header carrying the JSON route's signature, `sha256=<hex>`.",
                example: None,
            },
            Key {
                name: "json_body",
                ty: Type::JsonPath,
                presence: Presence::Default(|| {
                    toml_string(crate::providers::json_body_path().source)
                }),
                doc: "Where the message text is in a JSON webhook body.",
                example: None,
            },
        ],
        exclusive: &[],
    },
    Table {
        id: "alerts.slack",
        title: "[alerts.NAME] kind = \"slack\"",
        kind: Some(("alerts", "slack")),
        doc: "Slack: an incoming webhook (`webhook_url`), or a bot token and a channel, with which a reminder or resolve threads under the message that told the firing.",
        keys: &[
            Key {
                name: "webhook_url",
                ty: Type::Secret,
                presence: Presence::Unset(
                    "`bot_token` and `channel` instead (one of the two is required)",
                ),
                doc: "The incoming-webhook URL (it embeds a credential, so it is a secret). Each notice is a new message.",
                example: Some(r#""${SLACK_WEBHOOK_URL}""#),
            },
            Key {
                name: "bot_token",
                ty: Type::Secret,
                presence: Presence::Unset("`webhook_url` instead"),
                doc: "A bot token (`xoxb-…`, scope `chat:write`): messages go through `chat.postMessage`, and a reminder or resolve is posted in the thread of the firing notice.",
                example: Some(r#""${SLACK_BOT_TOKEN}""#),
            },
            Key {
                name: "channel",
                ty: Type::String,
                presence: Presence::Unset("required with `bot_token`"),
                doc: "With `bot_token`: the channel to post to, by name or id.",
                example: Some(r##""#sms-alerts""##),
            },
            Key {
                name: "api_url",
                ty: Type::Url,
                presence: Presence::Default(|| "\"https://slack.com/api/\"".to_string()),
                doc: "Slack's Web API base URL, for `bot_token`.",
                example: None,
            },
        ],
        exclusive: &[("webhook_url", "bot_token")],
    },
    Table {
        id: "alerts.email",
        title: "[alerts.NAME] kind = \"email\"",
        kind: Some(("alerts", "email")),
        doc: "Mail over SMTP.",
        keys: &[
            Key {
                name: "smtp_url",
                ty: Type::Secret,
                presence: Presence::Required,
                doc: "`smtp://host:port` (plain, or STARTTLS with `?tls=required`) or `smtps://host:port` (TLS); credentials as `user:password@`.",
                example: Some(r#""smtps://canary:${SMTP_PASSWORD}@smtp.example.com""#),
            },
            Key {
                name: "from",
                ty: Type::String,
                presence: Presence::Required,
                doc: "The sender address.",
                example: Some(r#""canary@example.com""#),
            },
            Key {
                name: "to",
                ty: Type::List(&Type::String),
                presence: Presence::Required,
                doc: "The recipients.",
                example: Some(r#"["oncall@example.com"]"#),
            },
            Key {
                name: "subject_prefix",
                ty: Type::String,
                presence: Presence::Default(|| toml_string(super::schema::subject_prefix())),
                doc: "Put before every subject.",
                example: None,
            },
        ],
        exclusive: &[],
    },
    Table {
        id: "alerts.webhook",
        title: "[alerts.NAME] kind = \"webhook\"",
        kind: Some(("alerts", "webhook")),
        doc: "A JSON POST of each notification.",
        keys: &[
            Key {
                name: "url",
                ty: Type::Url,
                presence: Presence::Required,
                doc: "Where to POST.",
                example: Some(r#""https://ops.example.com/canary""#),
            },
            Key {
                name: "secret",
                ty: Type::Secret,
                presence: Presence::Unset("unsigned"),
                doc: "Signs the body: header `X-Signature-256: sha256=<hex>`.",
                example: Some(r#""${ALERT_HOOK_SECRET}""#),
            },
            Key {
                name: "headers",
                ty: Type::Map(&Type::Secret),
                presence: Presence::Unset("no extra headers"),
                doc: "Request headers, treated as secrets.",
                example: Some(r#"{ Authorization = "Bearer ${OPS_TOKEN}" }"#),
            },
        ],
        exclusive: &[],
    },
    Table {
        id: "alerts.alertmanager",
        title: "[alerts.NAME] kind = \"alertmanager\"",
        kind: Some(("alerts", "alertmanager")),
        doc: "Prometheus Alertmanager's API v2; a resolved alert is sent with its `endsAt`.",
        keys: &[
            Key {
                name: "url",
                ty: Type::Url,
                presence: Presence::Required,
                doc: "Alertmanager's base URL.",
                example: Some(r#""http://127.0.0.1:9093""#),
            },
            Key {
                name: "labels",
                ty: Type::Map(&Type::String),
                presence: Presence::Unset("none"),
                doc: "Extra labels on every alert.",
                example: Some(r#"{ team = "sms" }"#),
            },
        ],
        exclusive: &[],
    },
    Table {
        id: PROBE,
        title: "A probe file",
        kind: None,
        doc: "One probe a file, found by the globs of [canary] probes. Every key that is not required falls back to [defaults].",
        keys: &[
            Key {
                name: "name",
                ty: Type::String,
                presence: Presence::Required,
                doc: "1 to 64 of a-z, 0-9, `-` and `_`: it appears in URLs and metric labels. Unique.",
                example: Some(r#""sandbox-roundtrip""#),
            },
            Key {
                name: "gateway",
                ty: Type::String,
                presence: Presence::Required,
                doc: "The gateway (a name) that submits the message.",
                example: Some(r#""sandbox""#),
            },
            Key {
                name: "receiver",
                ty: Type::String,
                presence: Presence::Required,
                doc: "The receiver (a name) that sees it arrive.",
                example: Some(r#""inbox""#),
            },
            Key {
                name: "from",
                ty: Type::Phone,
                presence: Presence::Required,
                doc: "The sending number.",
                example: Some(r#""+15005550006""#),
            },
            Key {
                name: "to",
                ty: Type::Phone,
                presence: Presence::Required,
                doc: "The receiving number; not the same as `from`.",
                example: Some(r#""+15005550100""#),
            },
            Key {
                name: "enabled",
                ty: Type::FlexBool,
                presence: Presence::Default(|| "true".into()),
                doc: "A feature flag: a disabled probe is left out of `check` and the daemon unless named on the command line.",
                example: Some(r#""${SANDBOX_PROBE_ENABLED:-true}""#),
            },
            Key {
                name: "schedule",
                ty: Type::Schedule,
                presence: Presence::Unset("[defaults] schedule"),
                doc: "When the daemon runs it.",
                example: Some(r#""every 1m""#),
            },
            Key {
                name: "timeout",
                ty: Type::Duration,
                presence: Presence::Unset("[defaults] timeout"),
                doc: "No arrival by then is `lost`.",
                example: Some(r#""30s""#),
            },
            Key {
                name: "threshold",
                ty: Type::Duration,
                presence: Presence::Unset("[defaults] threshold"),
                doc: "Latency above this is `slow`.",
                example: Some(r#""5s""#),
            },
            Key {
                name: "retry",
                ty: Type::Table("retry"),
                presence: Presence::Unset("[defaults] retry"),
                doc: "Retries of transient submit errors.",
                example: None,
            },
            Key {
                name: "failure_threshold",
                ty: U32,
                presence: Presence::Unset("[defaults] failure_threshold"),
                doc: "Consecutive failed runs before an alert fires.",
                example: Some("3"),
            },
            Key {
                name: "success_threshold",
                ty: U32,
                presence: Presence::Unset("[defaults] success_threshold"),
                doc: "Consecutive good runs before it resolves.",
                example: Some("2"),
            },
            Key {
                name: "reminder",
                ty: Type::Duration,
                presence: Presence::Unset("[defaults] reminder"),
                doc: "Re-notify this often while firing; \"0s\" never.",
                example: Some(r#""30m""#),
            },
            Key {
                name: "body",
                ty: Type::String,
                presence: Presence::Unset("[defaults] body"),
                doc: "SMS body template; must contain `{token}`.",
                example: Some(r#""probe {probe}: {token}""#),
            },
            Key {
                name: "alerts",
                ty: Type::List(&Type::String),
                presence: Presence::Unset("[defaults] alerts"),
                doc: "Alert channels to notify (names of `[alerts.NAME]` tables); replaces the default list. `alerts = []` says that the probe notifies nobody on purpose.",
                example: Some(r#"["ops-slack"]"#),
            },
            Key {
                name: "alert_on_permanent",
                ty: Type::Bool,
                presence: Presence::Unset("[defaults] alert_on_permanent"),
                doc: "A permanent gateway refusal fires at once.",
                example: Some("false"),
            },
            Key {
                name: "runbook_url",
                ty: Type::Url,
                presence: Presence::Unset("[defaults] runbook_url"),
                doc: "The link to what to do about this probe's alerts (`{probe}`, `{correlation_id}`).",
                example: Some(r#""https://wiki.example.com/runbooks/checkout-sms""#),
            },
            Key {
                name: "dashboard_url",
                ty: Type::Url,
                presence: Presence::Unset("[defaults] dashboard_url"),
                doc: "The link to this probe's dashboard (`{probe}`, `{correlation_id}`).",
                example: Some(r#""https://grafana.example.com/d/sms-canary?var-probe={probe}""#),
            },
            Key {
                name: "labels",
                ty: Type::Map(&Type::String),
                presence: Presence::Unset("no labels: the probe is listed ungrouped"),
                doc: "What the probe stands for, e.g. its country and carrier: the status page groups probes by their labels. At most 8; names are lower-case letters, digits and `_` (not `probe`, `gateway`, `receiver` or another name the metrics use); values 1 to 64 printable characters.",
                example: Some(r#"{ country = "DE", carrier = "Telekom" }"#),
            },
        ],
        exclusive: &[],
    },
];

/// Every table, in the order the reference presents them: the loader's,
/// with each provider's (from the registry) among the kinds of its section.
pub fn tables() -> &'static [&'static Table] {
    static TABLES: std::sync::LazyLock<Vec<&'static Table>> = std::sync::LazyLock::new(|| {
        let providers: Vec<&'static Table> = crate::providers::TABLES
            .iter()
            .flat_map(|tables| tables.iter())
            .collect();
        let section = |t: &Table| t.kind.map(|(s, _)| s);
        let mut all = Vec::new();
        for core in CORE {
            // A section's provider tables go before its first loader table
            // that is not a gateway (receivers after `webhook`).
            if core.id == "receivers.webhook" {
                all.extend(providers.iter().filter(|t| section(t) == Some("gateways")));
                all.extend(providers.iter().filter(|t| section(t).is_none()));
                all.push(core);
                all.extend(providers.iter().filter(|t| section(t) == Some("receivers")));
            } else {
                all.push(core);
            }
        }
        all
    });
    &TABLES
}

/// The table with this id.
pub fn table(id: &str) -> &'static Table {
    tables()
        .iter()
        .find(|t| t.id == id)
        .copied()
        .unwrap_or_else(|| panic!("no table `{id}` in the configuration reference"))
}

/// The tables a `Kinds(section)` chooses from.
pub fn kinds(section: &str) -> impl Iterator<Item = &'static Table> + '_ {
    tables()
        .iter()
        .copied()
        .filter(move |t| t.kind.is_some_and(|(s, _)| s == section))
}

impl Key {
    /// The default as a TOML value, when it has a fixed one.
    pub fn default_value(&self) -> Option<String> {
        match self.presence {
            Presence::Default(f) => Some(f()),
            _ => None,
        }
    }

    /// A value that loads: the example, else the default.
    pub fn sample(&self) -> Option<String> {
        self.example
            .map(str::to_string)
            .or_else(|| self.default_value())
    }
}

impl Type {
    /// Tables this type refers to, directly or inside a list or map.
    pub fn tables(&self) -> Vec<&'static str> {
        match self {
            Type::List(t) | Type::Pair(t) | Type::Map(t) | Type::PhoneMap(t) => t.tables(),
            Type::Either(a, b) => [a.tables(), b.tables()].concat(),
            Type::Table(id) => vec![id],
            Type::Kinds(section) => kinds(section).map(|t| t.id).collect(),
            _ => Vec::new(),
        }
    }

    /// How the type reads in the reference.
    pub fn describe(&self) -> String {
        match self {
            Type::String => "string".into(),
            Type::Secret => "string (secret)".into(),
            Type::Url => "URL".into(),
            Type::Address => "address (host:port)".into(),
            Type::Duration => "duration".into(),
            Type::Schedule => "schedule".into(),
            Type::Phone => "phone number (E.164)".into(),
            Type::JsonPath => "JSONPath".into(),
            Type::Bool => "boolean".into(),
            Type::FlexBool => "boolean, or a string that expands to one".into(),
            Type::Int { min, max } if *max == u32::MAX as u64 || *max == u64::MAX => {
                if *min == 0 {
                    "integer ≥ 0".into()
                } else {
                    format!("integer ≥ {min}")
                }
            }
            Type::Int { min, max } => format!("integer {min}–{max}"),
            Type::Float {
                min,
                max: Some(max),
            } => format!("number {min}–{max}"),
            Type::Float { min, max: None } => format!("number ≥ {min}"),
            Type::Choice(options) => {
                let quoted: Vec<String> = options.iter().map(|o| format!("\"{o}\"")).collect();
                format!("one of {}", quoted.join(", "))
            }
            Type::Any => "any value".into(),
            Type::List(t) => format!("list of {}", plural(&t.describe())),
            Type::Pair(t) => format!("two {}", plural(&t.describe())),
            Type::Map(t) => format!("table of {}", plural(&t.describe())),
            Type::PhoneMap(t) => format!("table of {} by number", plural(&t.describe())),
            Type::Either(a, b) => format!("{} or {}", a.describe(), b.describe()),
            Type::Table(id) => format!("table ({})", table(id).title),
            Type::Kinds(section) => format!("tables [{section}.NAME], by kind"),
        }
    }
}

fn plural(what: &str) -> String {
    match what.split_once(' ') {
        Some((first, rest)) if first.ends_with('s') => format!("{first} {rest}"),
        Some((first, rest)) => format!("{first}s {rest}"),
        None if what.ends_with('s') => what.to_string(),
        None => format!("{what}s"),
    }
}

/// What a reader is told about a key's presence.
fn presence_text(key: &Key) -> String {
    match &key.presence {
        Presence::Required => "required".into(),
        Presence::Default(f) => format!("`{}`", f()),
        Presence::Unset(what) => format!("unset: {what}"),
    }
}

// ---------------------------------------------------------------------------
// Markdown

/// What every reader needs before the tables.
pub const SYNTAX: &[(&str, &str)] = &[
    (
        "Files",
        "One main TOML file plus one file per probe. The main file is `--config PATH`, else `$SMS_CANARY_CONFIG`, else `config.toml` in the working directory, else `config.example.toml` there. Paths in it (`state_dir`, `probes`) are relative to its directory.",
    ),
    (
        "Unknown keys",
        "are errors, as are missing required keys and values of the wrong type. Every error names its file, line and column; `sms-canary validate` lists them all.",
    ),
    (
        "Variables",
        "Every string may use `${VAR}` and `${VAR:-default}`; a variable that is not set and has no default is an error naming it. `$${` is a literal `${`. Comments are never expanded. Numbers and booleans cannot come from variables, except `enabled`, which also takes a string.",
    ),
    (
        "Durations",
        "are humantime strings: `\"500ms\"`, `\"90s\"`, `\"2m\"`, `\"1h 30m\"`.",
    ),
    (
        "Phone numbers",
        "are E.164: `+` and 7 to 15 digits, no spaces. Logs and alerts show only their last three digits.",
    ),
    (
        "Secrets",
        "(keys of type secret) never appear in output, logs or alerts; take them from the environment with `${VAR}`.",
    ),
];

fn md_escape(text: &str) -> String {
    text.replace('|', "\\|")
}

/// The whole reference in markdown: what `docs/configuration.md` holds.
pub fn markdown() -> String {
    let mut out = String::new();
    out.push_str("# Configuration reference\n\n");
    out.push_str("<!-- Generated by `sms-canary config-schema --markdown` from src/config/reference.rs; a test keeps it up to date. -->\n\n");
    out.push_str("Every key sms-canary reads, with its type, default and meaning. The same reference is in `sms-canary man` (CONFIGURATION), and `sms-canary config-schema` prints it as a JSON Schema for editors.\n\n");
    for (term, text) in SYNTAX {
        let _ = writeln!(out, "- **{term}** {text}");
    }
    out.push('\n');
    for t in tables() {
        let depth = if t.id == MAIN || t.id == PROBE {
            "##"
        } else {
            "###"
        };
        let _ = writeln!(out, "<a id=\"{}\"></a>\n", t.id);
        let _ = writeln!(out, "{depth} {}\n", md_escape(t.title));
        let _ = writeln!(out, "{}\n", t.doc);
        if let Some((section, kind)) = t.kind {
            let _ = writeln!(
                out,
                "`kind = \"{kind}\"` in a `[{section}.NAME]` table; the other keys:\n"
            );
        }
        out.push_str("| key | type | default | meaning |\n|---|---|---|---|\n");
        for k in t.keys {
            let mut meaning = k.doc.to_string();
            if let Some(example) = k.example
                && k.default_value().as_deref() != Some(example)
            {
                let _ = write!(meaning, " Example: `{example}`.");
            }
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} |",
                k.name,
                md_escape(&type_md(&k.ty)),
                md_escape(&presence_text(k)),
                md_escape(&meaning)
            );
        }
        out.push('\n');
    }
    out
}

/// A type, with links to the tables it refers to.
fn type_md(ty: &Type) -> String {
    let mut text = ty.describe();
    for id in ty.tables() {
        let title = table(id).title;
        if let Some(at) = text.find(title) {
            text.replace_range(at..at + title.len(), &format!("[{title}](#{id})"));
        }
    }
    if let Type::Kinds(section) = ty {
        let links: Vec<String> = kinds(section)
            .map(|t| format!("[{}](#{})", t.kind.map_or("", |(_, k)| k), t.id))
            .collect();
        text = format!("tables `[{section}.NAME]`: {}", links.join(", "));
    }
    text
}

// ---------------------------------------------------------------------------
// Man page

pub fn roff_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            '`' => {}
            c if c.is_ascii() => out.push(c),
            // Input is read as Latin-1 unless told otherwise: name the character.
            c => {
                let _ = write!(out, "\\[u{:04X}]", c as u32);
            }
        }
    }
    // A line starting with `.` or `'` would be read as a request.
    if out.starts_with('.') || out.starts_with('\'') {
        out.insert_str(0, "\\&");
    }
    out
}

/// The CONFIGURATION section of the man page, in roff.
pub fn roff() -> String {
    let mut out = String::from(".SH CONFIGURATION\n");
    for (term, text) in SYNTAX {
        let _ = writeln!(
            out,
            ".TP\n\\fB{}\\fR\n{}",
            roff_escape(term),
            roff_escape(text)
        );
    }
    for t in tables() {
        let _ = writeln!(out, ".SS \"{}\"", roff_escape(t.title).replace('"', "\"\""));
        let _ = writeln!(out, "{}", roff_escape(t.doc));
        if let Some((section, kind)) = t.kind {
            let _ = writeln!(
                out,
                ".br\n{}",
                roff_escape(&format!("kind = \"{kind}\" in a [{section}.NAME] table."))
            );
        }
        for k in t.keys {
            let presence = match &k.presence {
                Presence::Required => "required".to_string(),
                Presence::Default(f) => format!("default {}", f()),
                Presence::Unset(what) => format!("unset: {what}"),
            };
            let _ = writeln!(
                out,
                ".TP\n\\fB{}\\fR \\fI{}\\fR; {}\n{}",
                roff_escape(k.name),
                roff_escape(&k.ty.describe()),
                roff_escape(&presence),
                roff_escape(k.doc)
            );
        }
    }
    out
}

// ---------------------------------------------------------------------------
// JSON Schema

/// Matches a string that holds a `${VAR}`: its value is only known after expansion.
const VARIABLE: &str = r".*\$\{.*";

/// The units humantime reads.
const DURATION_UNITS: &str = "nanos|nsec|ns|usec|us|µs|millis|msec|ms|seconds|second|secs|sec|s|\
     minutes|minute|mins|min|m|hours|hour|hrs|hr|h|days|day|d|weeks|week|wks|wk|w|\
     months|month|M|years|year|yrs|yr|y";

fn pattern(body: &str) -> String {
    format!("^(?:{body}|{VARIABLE})$")
}

fn type_schema(ty: &Type) -> Value {
    match ty {
        Type::String | Type::Secret | Type::Url => json!({ "type": "string" }),
        Type::Address => json!({
            "type": "string",
            "pattern": pattern(r"(?:\[[0-9A-Fa-f:.]+\]|[0-9.]+):[0-9]{1,5}"),
        }),
        Type::Duration => json!({
            "type": "string",
            "pattern": pattern(&format!(r"\s*(?:[0-9]+(?:\.[0-9]+)?\s*(?:{DURATION_UNITS})\s*)+")),
        }),
        Type::Schedule => json!({ "type": "string", "minLength": 1 }),
        Type::Phone => json!({ "type": "string", "pattern": pattern(r"\+[1-9][0-9]{6,14}") }),
        Type::JsonPath => json!({ "type": "string", "pattern": "^\\$" }),
        Type::Bool => json!({ "type": "boolean" }),
        Type::FlexBool => json!({ "type": ["boolean", "string"] }),
        Type::Int { min, max } => json!({ "type": "integer", "minimum": min, "maximum": max }),
        Type::Float { min, max } => {
            let mut s = json!({ "type": "number", "minimum": min });
            if let Some(max) = max {
                s["maximum"] = json!(max);
            }
            s
        }
        Type::Choice(options) => json!({
            "anyOf": [
                { "type": "string", "enum": options },
                { "type": "string", "pattern": r"\$\{" },
            ]
        }),
        Type::Any => json!({}),
        Type::List(t) => json!({ "type": "array", "items": type_schema(t) }),
        Type::Pair(t) => json!({
            "type": "array", "items": type_schema(t), "minItems": 2, "maxItems": 2,
        }),
        Type::Map(t) => json!({ "type": "object", "additionalProperties": type_schema(t) }),
        Type::PhoneMap(t) => json!({
            "type": "object",
            "propertyNames": { "pattern": r"^\+?[1-9][0-9]{6,14}$" },
            "additionalProperties": type_schema(t),
        }),
        Type::Either(a, b) => json!({ "anyOf": [type_schema(a), type_schema(b)] }),
        Type::Table(id) => json!({ "$ref": format!("#/definitions/{id}") }),
        Type::Kinds(section) => json!({
            "type": "object",
            "additionalProperties": { "$ref": format!("#/definitions/{section}") },
        }),
    }
}

fn key_schema(key: &Key) -> Value {
    let mut schema = type_schema(&key.ty);
    // Draft-07 ignores what stands next to a `$ref`: wrap it, so the
    // description and default below count.
    if schema.get("$ref").is_some() {
        schema = json!({ "allOf": [schema] });
    }
    let mut description = key.doc.to_string();
    match &key.presence {
        Presence::Default(f) => {
            let literal = f();
            let _ = write!(description, " Default: {literal}.");
            if let Ok(value) = toml_value(&literal) {
                schema["default"] = value;
            }
        }
        Presence::Unset(what) => {
            let _ = write!(description, " Unset: {what}.");
        }
        _ => {}
    }
    if let Some(example) = key.example
        && let Ok(value) = toml_value(example)
    {
        schema["examples"] = json!([value]);
    }
    if let Value::Object(map) = &mut schema {
        map.insert("description".into(), Value::String(description));
    }
    schema
}

/// A TOML value as JSON.
pub fn toml_value(literal: &str) -> Result<Value, String> {
    let doc: toml::Table =
        toml::from_str(&format!("v = {literal}")).map_err(|e| format!("`{literal}`: {e}"))?;
    serde_json::to_value(&doc["v"]).map_err(|e| e.to_string())
}

fn table_schema(t: &Table) -> Value {
    let mut properties = Map::new();
    if let Some((_, kind)) = t.kind {
        properties.insert("kind".into(), json!({ "const": kind }));
    }
    for k in t.keys {
        properties.insert(k.name.into(), key_schema(k));
    }
    let required: Vec<&str> = t
        .kind
        .map(|_| "kind")
        .into_iter()
        .chain(
            t.keys
                .iter()
                .filter(|k| matches!(k.presence, Presence::Required))
                .map(|k| k.name),
        )
        .collect();
    let mut schema = json!({
        "type": "object",
        "description": t.doc,
        "properties": properties,
        "additionalProperties": false,
    });
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    if t.id == "latency" {
        schema["minProperties"] = json!(1);
        schema["maxProperties"] = json!(1);
    }
    let exclusive: Vec<Value> = t
        .exclusive
        .iter()
        .map(|(a, b)| json!({ "not": { "required": [a, b] } }))
        .collect();
    if !exclusive.is_empty() {
        schema["allOf"] = json!(exclusive);
    }
    schema
}

fn kinds_schema(section: &str) -> Value {
    let names: Vec<&str> = kinds(section)
        .filter_map(|t| t.kind.map(|(_, k)| k))
        .collect();
    let cases: Vec<Value> = kinds(section)
        .filter_map(|t| {
            t.kind.map(|(_, kind)| {
                json!({
                    "if": { "properties": { "kind": { "const": kind } }, "required": ["kind"] },
                    "then": { "$ref": format!("#/definitions/{}", t.id) },
                })
            })
        })
        .collect();
    json!({
        "type": "object",
        "required": ["kind"],
        "properties": { "kind": { "enum": names } },
        "allOf": cases,
    })
}

/// The JSON Schema (draft-07) of the main file, or of a probe file with
/// `probe` true.
pub fn schema(probe: bool) -> Value {
    let root = table(if probe { PROBE } else { MAIN });
    // Every table and kind section reachable from the root.
    let mut definitions = Map::new();
    let mut todo: Vec<&Type> = root.keys.iter().map(|k| &k.ty).collect();
    while let Some(ty) = todo.pop() {
        if let Type::Kinds(section) = ty
            && !definitions.contains_key(*section)
        {
            definitions.insert(section.to_string(), kinds_schema(section));
        }
        for id in ty.tables() {
            if !definitions.contains_key(id) {
                let t = table(id);
                definitions.insert(id.to_string(), table_schema(t));
                todo.extend(t.keys.iter().map(|k| &k.ty));
            }
        }
    }
    let mut schema = table_schema(root);
    schema["$schema"] = json!("http://json-schema.org/draft-07/schema#");
    schema["title"] = json!(if probe {
        "sms-canary probe file"
    } else {
        "sms-canary configuration"
    });
    schema["definitions"] = Value::Object(definitions);
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_referenced_table_exists_and_ids_are_unique() {
        let mut ids = std::collections::BTreeSet::new();
        for t in tables() {
            assert!(ids.insert(t.id), "table `{}` twice", t.id);
            for k in t.keys {
                for id in k.ty.tables() {
                    table(id);
                }
                if matches!(k.presence, Presence::Required) {
                    assert!(k.example.is_some(), "{}.{} needs an example", t.id, k.name);
                }
            }
        }
    }

    #[test]
    fn every_default_and_example_is_a_toml_value() {
        for t in tables() {
            for k in t.keys {
                for literal in k
                    .default_value()
                    .into_iter()
                    .chain(k.example.map(String::from))
                {
                    toml_value(&literal).unwrap_or_else(|e| panic!("{}.{}: {e}", t.id, k.name));
                }
            }
        }
    }

    #[test]
    fn defaults_come_from_the_code() {
        let listen = table("canary")
            .keys
            .iter()
            .find(|k| k.name == "listen")
            .unwrap();
        assert_eq!(
            listen.default_value().unwrap(),
            format!("\"{}\"", Canary::default().listen)
        );
    }
}
