//! Prometheus metrics: the names of DESIGN's "Metrics" section, prefix
//! `sms_canary_`, every series labelled with the `instance`.
//!
//! The daemon serves them on `/metrics`; a one-shot `check` can push them to a
//! Pushgateway or write them as a node_exporter textfile. Latency buckets span
//! what SMS delivery takes: a fraction of a second on a good day, minutes on a
//! bad one.

use std::collections::HashMap;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::net::ErrorClass;
use crate::probe::{Outcome, RunResult};

/// Seconds: sub-second to ten minutes.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0,
    180.0, 300.0, 600.0,
];

pub use crate::cli::REVISION;

/// Every metric sms-canary exports.
pub struct Metrics {
    registry: Registry,
    latency: HistogramVec,
    runs: IntCounterVec,
    up: IntGaugeVec,
    last_success: prometheus::GaugeVec,
    gateway_errors: IntCounterVec,
    alerts_sent: IntCounterVec,
    outbox_pending: IntGauge,
    outbox_dead_letters: IntGauge,
    /// Dead letters handled by hand, by action (`requeued`, `purged`).
    outbox_by_hand: IntCounterVec,
    webhook_requests: IntCounterVec,
    skipped: IntCounterVec,
    store_errors: IntCounterVec,
    store_up: IntGauge,
    reload_ok: IntGauge,
    reload_success_time: prometheus::Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new(instance: &str) -> Metrics {
        let labels = HashMap::from([("instance".to_string(), instance.to_string())]);
        // Only fails on an invalid prefix or label name, which are constants here.
        let registry =
            Registry::new_custom(Some("sms_canary".into()), Some(labels)).expect("valid registry");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "probe_latency_seconds",
                "Time from the submit request to each phase of a run.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["probe", "phase"],
        )
        .expect("valid metric");
        let runs = IntCounterVec::new(
            Opts::new("probe_runs_total", "Probe runs by outcome."),
            &["probe", "outcome"],
        )
        .expect("valid metric");
        let up = IntGaugeVec::new(
            Opts::new("probe_up", "1 if the probe's last run was ok, else 0."),
            &["probe"],
        )
        .expect("valid metric");
        let last_success = prometheus::GaugeVec::new(
            Opts::new(
                "probe_last_success_timestamp_seconds",
                "Unix time of the probe's last ok run.",
            ),
            &["probe"],
        )
        .expect("valid metric");
        let gateway_errors = IntCounterVec::new(
            Opts::new(
                "gateway_errors_total",
                "Errors from gateways at submit, retried or not.",
            ),
            &["gateway", "class", "code"],
        )
        .expect("valid metric");
        let alerts_sent = IntCounterVec::new(
            Opts::new(
                "alerts_sent_total",
                "Notification deliveries by channel and result.",
            ),
            &["channel", "result"],
        )
        .expect("valid metric");
        let outbox_pending =
            IntGauge::new("outbox_pending", "Notifications waiting in the outbox.")
                .expect("valid metric");
        let outbox_dead_letters = IntGauge::new(
            "outbox_dead_letters",
            "Notifications that ran out of retries, kept in the outbox (`history` lists them).",
        )
        .expect("valid metric");
        let outbox_by_hand = IntCounterVec::new(
            Opts::new(
                "outbox_by_hand_total",
                "Dead letters re-queued (`outbox retry`) or purged (`outbox purge`) by hand, \
                 by any process sharing the store.",
            ),
            &["action"],
        )
        .expect("valid metric");
        let webhook_requests = IntCounterVec::new(
            Opts::new(
                "webhook_requests_total",
                "Webhook requests by route and result.",
            ),
            &["route", "result"],
        )
        .expect("valid metric");
        let skipped = IntCounterVec::new(
            Opts::new(
                "probe_skipped_total",
                "Scheduled or requested runs not started, by reason (cost_guard, lease_held, store_error).",
            ),
            &["probe", "reason"],
        )
        .expect("valid metric");
        let store_errors = IntCounterVec::new(
            Opts::new(
                "store_errors_total",
                "Failed state-store operations, by operation (a corrupt or read-only store, a lock held too long).",
            ),
            &["op"],
        )
        .expect("valid metric");
        let store_up = IntGauge::new(
            "store_up",
            "1 if the state store had no failure in the last minute, else 0.",
        )
        .expect("valid metric");
        let reload_ok = IntGauge::new(
            "config_last_reload_successful",
            "1 if the last config load (start or SIGHUP) succeeded, else 0 (the old config runs on).",
        )
        .expect("valid metric");
        let reload_success_time = prometheus::Gauge::new(
            "config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful config load.",
        )
        .expect("valid metric");
        let build_info = IntGaugeVec::new(
            Opts::new(
                "build_info",
                "Always 1; the version and revision of this build.",
            ),
            &["version", "revision"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), REVISION])
            .set(1);
        for c in [
            Box::new(latency.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(runs.clone()),
            Box::new(up.clone()),
            Box::new(last_success.clone()),
            Box::new(gateway_errors.clone()),
            Box::new(alerts_sent.clone()),
            Box::new(outbox_pending.clone()),
            Box::new(outbox_dead_letters.clone()),
            Box::new(outbox_by_hand.clone()),
            Box::new(webhook_requests.clone()),
            Box::new(skipped.clone()),
            Box::new(store_errors.clone()),
            Box::new(store_up.clone()),
            Box::new(reload_ok.clone()),
            Box::new(reload_success_time.clone()),
            Box::new(build_info),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Metrics {
            registry,
            latency,
            runs,
            up,
            last_success,
            gateway_errors,
            alerts_sent,
            outbox_pending,
            outbox_dead_letters,
            outbox_by_hand,
            webhook_requests,
            skipped,
            store_errors,
            store_up,
            reload_ok,
            reload_success_time,
        }
    }

    /// Records a config load (the daemon's start, a SIGHUP): whether it
    /// worked, and when it last did.
    pub fn config_loaded(&self, ok: bool, at: chrono::DateTime<chrono::Utc>) {
        self.reload_ok.set(i64::from(ok));
        if ok {
            self.reload_success_time
                .set(at.timestamp_millis() as f64 / 1e3);
        }
    }

    /// Gives every enabled probe its `probe_up` from the start, from its
    /// last recorded outcome (0 without one): a probe that never reports
    /// must show, not be missing from the metrics.
    pub fn seed_probes(&self, last_ok: &[(String, bool)]) {
        for (probe, ok) in last_ok {
            self.up
                .with_label_values(&[probe.as_str()])
                .set(i64::from(*ok));
        }
    }

    /// Brings the store's error counts and `store_up` up to date.
    pub fn observe_store(&self, store: &crate::store::Store) {
        for (op, n) in store.error_counts() {
            let counter = self.store_errors.with_label_values(&[op]);
            counter.inc_by(n.saturating_sub(counter.get()));
        }
        let failing = store.failed_within(crate::store::HEALTH_WINDOW).is_some();
        self.store_up.set(i64::from(!failing));
    }

    /// Counts a run that was not started. A probe the canary cannot run
    /// (the cost guard, a broken store) is not known to be up, so its
    /// `probe_up` drops to 0; one another process is running keeps its value.
    pub fn probe_skipped(&self, probe: &str, reason: &str) {
        self.skipped.with_label_values(&[probe, reason]).inc();
        if reason != "lease_held" {
            self.up.with_label_values(&[probe]).set(0);
        }
    }

    /// Counts a finished run: outcome, phases, up, last success, gateway errors.
    pub fn observe_run(&self, run: &RunResult) {
        let p = &run.probe;
        self.runs
            .with_label_values(&[p.as_str(), run.outcome.as_str()])
            .inc();
        for (phase, d) in run.phases.named() {
            if let Some(d) = d {
                self.latency
                    .with_label_values(&[p.as_str(), phase])
                    .observe(d.as_secs_f64());
            }
        }
        let ok = run.outcome == Outcome::Ok;
        self.up.with_label_values(&[p.as_str()]).set(i64::from(ok));
        if ok {
            let end = run.started_at
                + chrono::Duration::from_std(run.latency.unwrap_or_default()).unwrap_or_default();
            self.last_success
                .with_label_values(&[p.as_str()])
                .set(end.timestamp_millis() as f64 / 1e3);
        }
        for (class, code) in &run.gateway_errors {
            let class = match class {
                ErrorClass::Transient => "transient",
                ErrorClass::Permanent => "permanent",
            };
            self.gateway_errors
                .with_label_values(&[run.gateway.as_str(), class, code.as_deref().unwrap_or("")])
                .inc();
        }
    }

    pub fn alert_sent(&self, channel: &str, delivered: bool) {
        let result = if delivered { "ok" } else { "error" };
        self.alerts_sent.with_label_values(&[channel, result]).inc();
    }

    pub fn set_outbox_pending(&self, n: u64) {
        self.outbox_pending.set(n.min(i64::MAX as u64) as i64);
    }

    pub fn set_outbox_dead_letters(&self, n: u64) {
        self.outbox_dead_letters.set(n.min(i64::MAX as u64) as i64);
    }

    /// Brings the by-hand counts up to what the store has counted (they only
    /// grow, so the counter follows by the difference).
    pub fn set_outbox_actions(&self, actions: crate::store::OutboxActions) {
        for (action, total) in [("requeued", actions.requeued), ("purged", actions.purged)] {
            let counter = self.outbox_by_hand.with_label_values(&[action]);
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }

    pub fn webhook_request(&self, route: &str, result: &str) {
        self.webhook_requests
            .with_label_values(&[route, result])
            .inc();
    }

    /// PUTs the metrics to a Pushgateway as job `sms-canary`, grouped by
    /// instance (a PUT replaces the group: the last run's values, not a sum).
    pub async fn push(&self, gateway: &url::Url, instance: &str) -> Result<(), String> {
        let mut url = gateway.clone();
        url.path_segments_mut()
            .map_err(|_| {
                format!(
                    "{} cannot be a Pushgateway base URL",
                    crate::redact::redact_url(gateway.as_str())
                )
            })?
            .pop_if_empty()
            .extend(["metrics", "job", "sms-canary", "instance", instance]);
        let response = reqwest::Client::new()
            .put(url)
            .timeout(std::time::Duration::from_secs(10))
            .header("Content-Type", "text/plain; version=0.0.4")
            .body(self.render())
            .send()
            .await
            .map_err(|e| format!("Pushgateway unreachable: {}", e.without_url()))?;
        if response.status().is_success() {
            Ok(())
        } else {
            let status = response.status();
            let body = crate::net::read_body(response, 64 * 1024).await;
            Err(format!(
                "Pushgateway refused the push (HTTP {status}): {}",
                crate::net::snippet(&body.bytes).trim()
            ))
        }
    }

    /// Writes a node_exporter textfile atomically: a temporary file beside it,
    /// then a rename, so the collector never reads half a file.
    pub fn write_textfile(&self, path: &std::path::Path) -> std::io::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".{}.tmp", std::process::id()));
        let tmp = std::path::PathBuf::from(tmp);
        std::fs::write(&tmp, self.render())?;
        std::fs::rename(&tmp, path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }

    /// The Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
