//! Seeding a benchmark's store with months of runs in seconds. One probe's
//! runs go through the store's own recording path (which keeps the rollups),
//! then the other probes get copies of its rows in one SQL transaction:
//! recording 1.7 M runs one at a time would take minutes and measure nothing
//! the benchmarks are about.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sms_canary::probe::{Outcome, Phases, RunResult};
use sms_canary::store::Store;

/// Records one run of `probe` every `step` from `from` to before `to`
/// through [`Store::record_run`]; a lost one now and then, so there are
/// incidents to find. Returns how many it recorded.
pub fn record(
    store: &Store,
    probe: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step: chrono::Duration,
) -> u64 {
    let state = Default::default();
    let mut n = 0u64;
    let mut at = from;
    while at < to {
        let outcome = if n.is_multiple_of(97) {
            Outcome::Lost
        } else {
            Outcome::Ok
        };
        store
            .record_run(&run(probe, n, at, outcome), "bench", false, &state, &[], at)
            .expect("record a seeded run");
        n += 1;
        at += step;
    }
    n
}

/// Copies every run and rollup row of `from` to each probe of `to`, in one
/// transaction on the store file `db`. Returns how many runs it wrote.
pub fn copy_probe(db: &Path, from: &str, to: &[String]) -> u64 {
    let mut conn = rusqlite::Connection::open(db).expect("open the seeded store");
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    let tx = conn.transaction().unwrap();
    let mut copied = 0;
    for table in ["runs", "rollups", "daily_rollups"] {
        // The columns as the schema has them now, so a new column is copied too.
        let columns: Vec<String> = tx
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let columns: Vec<&String> = columns.iter().filter(|c| *c != "id").collect();
        let values: Vec<String> = columns
            .iter()
            .map(|c| match c.as_str() {
                "probe" => "?2".to_string(),
                // Unique per run: the copy's id names its probe.
                "correlation_id" => "?2 || '-' || correlation_id".to_string(),
                other => other.to_string(),
            })
            .collect();
        let names: Vec<&str> = columns.iter().map(|c| c.as_str()).collect();
        let sql = format!(
            "INSERT INTO {table} ({}) SELECT {} FROM {table} WHERE probe = ?1",
            names.join(", "),
            values.join(", ")
        );
        for probe in to {
            let n = tx.execute(&sql, rusqlite::params![from, probe]).unwrap();
            if table == "runs" {
                copied += n as u64;
            }
        }
    }
    tx.commit().unwrap();
    copied
}

fn run(probe: &str, n: u64, at: DateTime<Utc>, outcome: Outcome) -> RunResult {
    let ok = outcome == Outcome::Ok;
    let latency = Duration::from_millis(500 + (n * 37) % 2000);
    RunResult {
        probe: probe.into(),
        gateway: "sandbox".into(),
        receiver: "inbox".into(),
        correlation_id: format!("{probe}-{}", at.timestamp_millis()),
        started_at: at,
        outcome,
        reason: (!ok).then(|| "sent by the carrier, but nothing arrived within 2m".into()),
        code: None,
        latency: ok.then_some(latency),
        threshold: Duration::from_secs(30),
        timeout: Duration::from_secs(120),
        phases: Phases {
            submit: Some(Duration::from_millis(80)),
            sent: Some(Duration::from_millis(300)),
            delivered: ok.then_some(latency - Duration::from_millis(20)),
            received: ok.then_some(latency),
        },
        message_id: Some(format!("SM{n:032}")),
        attempts: 1,
        findings: vec![],
        gateway_errors: vec![],
    }
}
