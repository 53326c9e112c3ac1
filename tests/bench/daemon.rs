//! Daemon benchmarks: many probes through the real daemon engine (scheduler,
//! leases, cost guard, runs, SQLite store, webhook server) against the
//! in-process mock carrier, on the real clock.
//!
//! Run: `cargo bench --bench daemon -- scale` or `-- lag`.
//! - `scale`: `BENCH_PROBES` (10000) probes on `every 20s`, so the schedule
//!   spreads their starts over 20 s, against an injected latency of
//!   `BENCH_LATENCY_MS` (30000): every probe's first run is in flight at once.
//!   Prints how many completed, |measured − injected| of each run, the most
//!   runs in flight at one time, and the process's peak RSS (which includes
//!   the in-process mock carrier).
//! - `lag`: `BENCH_PROBES` (10000) probes on `every 1m` for `BENCH_SECONDS`
//!   (75) seconds; the lag of each run is its recorded start minus the slot
//!   its schedule gave it.
//! - `prune-lag`: `lag` for `BENCH_SECONDS` (150) seconds over a store that
//!   also holds 30 days of runs of `BENCH_PRUNE_PROBES` (100) probes, one
//!   every 5 minutes, all older than the retention (30 days): the daemon's
//!   retention loop prunes them from its first minute on, and the lag of the
//!   runs that started while it did is reported on its own.
//!
//! Figures come from the runs the daemon stored, not from inside the engine.
//! Logs go to a file at the daemon's default level, as a deployment's would.
//! The last line is `RESULT key=value …` for `bench/run`; nothing is asserted.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use sms_canary::daemon::{self, Clock, Control, DaemonOptions};
use sms_canary::schedule::Schedule;

#[path = "common.rs"]
mod common;
#[path = "seed.rs"]
mod seed;
use common::{knob, percentile};

fn main() {
    let mode = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_else(|| "scale".to_string());
    let dir = tempfile::tempdir().expect("temp dir");
    let log = std::fs::File::create(dir.path().join("daemon.log")).expect("log file");
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(std::sync::Mutex::new(log))
        .with_ansi(false)
        .init();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    match mode.as_str() {
        "scale" => runtime.block_on(scale(dir.path())),
        "lag" => runtime.block_on(lag(dir.path(), false)),
        "prune-lag" => runtime.block_on(lag(dir.path(), true)),
        other => eprintln!("unknown mode `{other}`: use `scale`, `lag` or `prune-lag`"),
    }
}

/// Writes a config with `probes` probes on `schedule` against a mock with a
/// fixed `latency_ms`, and returns its path.
fn write_config(dir: &Path, probes: usize, schedule: &str, latency_ms: u64) -> PathBuf {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[canary]\nstate_dir = \"state\"\nlisten = \"127.0.0.1:0\"\nconcurrency = {probes}\n\n\
             [defaults]\nmax_messages_per_day = {}\n\n\
             [gateways.sandbox]\nkind = \"mock\"\nlatency = \"{latency_ms}ms\"\n\n\
             [receivers.inbox]\nkind = \"webhook\"\ngateway = \"sandbox\"\n",
            probes * 100
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("probes")).unwrap();
    let timeout = Duration::from_millis(latency_ms) + Duration::from_secs(60);
    for i in 0..probes {
        std::fs::write(
            dir.join(format!("probes/p{i:05}.toml")),
            format!(
                "name = \"p{i:05}\"\ngateway = \"sandbox\"\nreceiver = \"inbox\"\n\
                 from = \"+15005550006\"\nto = \"+15005550100\"\nschedule = \"{schedule}\"\n\
                 threshold = \"{t}s\"\ntimeout = \"{t}s\"\n",
                t = timeout.as_secs()
            ),
        )
        .unwrap();
    }
    config
}

/// One stored run.
struct Run {
    probe: String,
    started_at: DateTime<Utc>,
    outcome: String,
    latency_ms: Option<f64>,
}

fn stored_runs(dir: &Path) -> Vec<Run> {
    let Ok(conn) = rusqlite::Connection::open_with_flags(
        dir.join("state/state.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    ) else {
        return Vec::new();
    };
    let _ = conn.busy_timeout(Duration::from_secs(5));
    let Ok(mut stmt) =
        conn.prepare("SELECT probe, started_at, outcome, latency_ms FROM runs ORDER BY started_at")
    else {
        return Vec::new();
    };
    stmt.query_map([], |row| {
        Ok(Run {
            probe: row.get(0)?,
            started_at: Utc
                .timestamp_millis_opt(row.get(1)?)
                .single()
                .unwrap_or_default(),
            outcome: row.get(2)?,
            latency_ms: row.get(3)?,
        })
    })
    .map(|rows| rows.filter_map(Result::ok).collect())
    .unwrap_or_default()
}

/// Starts the daemon on `config`; returns its control channel and task.
fn start_daemon(
    config: PathBuf,
) -> (
    tokio::sync::mpsc::Sender<Control>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let options = DaemonOptions {
        listen: None,
        // Any free port: the default 9188 may be a running daemon's.
        admin_listen: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        preflight: false,
        grace: Duration::from_secs(2),
        stall_limit: Duration::from_secs(600),
        ..DaemonOptions::default()
    };
    let control = tx.clone();
    let task = tokio::spawn(async move {
        if let Err(e) = daemon::run(config, options, Arc::new(Clock::system()), rx, tx).await {
            eprintln!("daemon failed: {e}");
        }
    });
    (control, task)
}

/// Peak and current resident set size of this process, in MB.
fn rss_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

static PEAK_THREADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Samples this process's thread count (runtime workers plus the blocking
/// pool, which grows when store calls queue up) every 100 ms.
async fn sample_threads() {
    loop {
        let n = std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count());
        PEAK_THREADS.fetch_max(n, std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The first run of each probe (later slots may have started before shutdown).
fn first_runs(runs: Vec<Run>) -> Vec<Run> {
    let mut seen = std::collections::HashSet::new();
    runs.into_iter()
        .filter(|r| seen.insert(r.probe.clone()))
        .collect()
}

async fn scale(dir: &Path) {
    let probes = knob("BENCH_PROBES", 10_000) as usize;
    let latency_ms = knob("BENCH_LATENCY_MS", 30_000);
    let period = knob("BENCH_PERIOD_S", 20);
    let config = write_config(dir, probes, &format!("every {period}s"), latency_ms);
    let wall = Instant::now();
    let sampler = tokio::spawn(sample_threads());
    let (control, task) = start_daemon(config);
    // Every probe's first slot comes within one period, and its run takes the
    // injected latency; allow a generous margin before giving up.
    let give_up = wall + Duration::from_secs(period) + Duration::from_millis(latency_ms) * 2;
    let mut done = 0;
    while Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let runs = first_runs(stored_runs(dir));
        done = runs.iter().filter(|r| r.outcome != "interrupted").count();
        if done >= probes {
            break;
        }
    }
    let elapsed = wall.elapsed();
    let _ = control.send(Control::Shutdown).await;
    let _ = task.await;
    sampler.abort();
    let (peak_rss, _) = rss_mb();
    let peak_threads = PEAK_THREADS.load(std::sync::atomic::Ordering::Relaxed);

    let runs = first_runs(stored_runs(dir));
    let ok: Vec<&Run> = runs.iter().filter(|r| r.outcome == "ok").collect();
    let mut errors_ms: Vec<f64> = ok
        .iter()
        .filter_map(|r| r.latency_ms)
        .map(|l| (l - latency_ms as f64).abs())
        .collect();
    errors_ms.sort_by(f64::total_cmp);
    // Most runs in flight at one time: a sweep over [start, start + latency].
    let mut edges: Vec<(i64, i32)> = Vec::new();
    for r in &runs {
        let start = r.started_at.timestamp_millis();
        let end = start + r.latency_ms.unwrap_or(0.0) as i64;
        edges.push((start, 1));
        edges.push((end, -1));
    }
    edges.sort();
    let (mut now, mut peak) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        peak = peak.max(now);
    }
    let mut outcomes = std::collections::BTreeMap::<&str, usize>::new();
    for r in &runs {
        *outcomes.entry(r.outcome.as_str()).or_default() += 1;
    }
    let lags = lags_ms(
        &runs,
        &Schedule::parse(&format!("every {period}s")).unwrap(),
    );
    println!(
        "scale: {probes} probes on `every {period}s`, injected latency {latency_ms} ms, \
         concurrency {probes}"
    );
    println!(
        "  completed ok: {} of {probes} ({outcomes:?}; {done} recorded before the wait ended, {:.0} s)",
        ok.len(),
        elapsed.as_secs_f64()
    );
    println!("  most runs in flight at once: {peak}");
    println!(
        "  |measured - injected|: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms   (target p99 <= 10 ms)",
        percentile(&errors_ms, 0.5),
        percentile(&errors_ms, 0.99),
        percentile(&errors_ms, 1.0)
    );
    println!(
        "  schedule lag of these starts: p50 {:.0} ms  p99 {:.0} ms  max {:.0} ms",
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        percentile(&lags, 1.0)
    );
    println!("  most threads at once: {peak_threads}");
    println!(
        "  peak RSS: {peak_rss:.0} MB (target <= 200 MB; includes the in-process mock carrier)"
    );
    println!(
        "RESULT mode=scale probes={probes} ok={} in_flight_peak={peak} err_p50_ms={:.3} err_p99_ms={:.3} err_max_ms={:.3} peak_rss_mb={peak_rss:.1} lag_p99_ms={:.1} peak_threads={peak_threads}",
        ok.len(),
        percentile(&errors_ms, 0.5),
        percentile(&errors_ms, 0.99),
        percentile(&errors_ms, 1.0),
        percentile(&lags, 0.99),
    );
}

/// Start minus scheduled slot of each run, in ms, sorted. The slot is the
/// latest one at or before the start: `next_after(start − period)`, valid
/// while the lag is shorter than the period.
fn lags_ms(runs: &[Run], schedule: &Schedule) -> Vec<f64> {
    let Schedule::Every(period) = schedule else {
        return Vec::new();
    };
    let period = chrono::Duration::from_std(*period).unwrap();
    let mut lags: Vec<f64> = runs
        .iter()
        .filter(|r| r.outcome != "interrupted")
        .filter_map(|r| {
            let slot = schedule.next_after(r.started_at - period, &r.probe)?;
            Some((r.started_at - slot).num_microseconds()? as f64 / 1e3)
        })
        .collect();
    lags.sort_by(f64::total_cmp);
    lags
}

async fn lag(dir: &Path, prune: bool) {
    let probes = knob("BENCH_PROBES", 10_000) as usize;
    let seconds = knob("BENCH_SECONDS", if prune { 150 } else { 75 });
    let latency_ms = knob("BENCH_LATENCY_MS", 200);
    let schedule = "every 1m";
    let config = write_config(dir, probes, schedule, latency_ms);
    let old = prune.then(|| seed_old_runs(dir, probes));
    let watch = old.map(|(seeded, cutoff)| {
        let db = dir.join("state/state.db");
        (
            seeded,
            std::thread::spawn(move || watch_pruning(&db, cutoff, seeded)),
        )
    });
    let wall = Utc::now();
    let (control, task) = start_daemon(config);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let _ = control.send(Control::Shutdown).await;
    let _ = task.await;
    let runs = stored_runs(dir);
    let runs: Vec<Run> = runs.into_iter().filter(|r| r.started_at >= wall).collect();
    let every = Schedule::parse(schedule).unwrap();
    let lags = lags_ms(&runs, &every);
    let ok = runs.iter().filter(|r| r.outcome == "ok").count();
    println!(
        "schedule lag: {probes} probes on `{schedule}` for {seconds} s, injected latency {latency_ms} ms"
    );
    println!(
        "  runs: {} started, {ok} ok; start - scheduled: p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms   (target p99 <= 50 ms)",
        lags.len(),
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        percentile(&lags, 1.0)
    );
    let mut result = format!(
        "RESULT mode={} probes={probes} runs={} lag_p50_ms={:.2} lag_p99_ms={:.2} lag_max_ms={:.2}",
        if prune { "prune-lag" } else { "lag" },
        lags.len(),
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        percentile(&lags, 1.0)
    );
    if let Some((seeded, watch)) = watch {
        let pruning = watch.join().unwrap();
        let (from, to, left) = (pruning.first, pruning.last, pruning.left);
        let during: Vec<Run> = match (from, to) {
            (Some(from), Some(to)) => runs
                .into_iter()
                .filter(|r| r.started_at >= from && r.started_at <= to)
                .collect(),
            _ => Vec::new(),
        };
        let during = lags_ms(&during, &every);
        let span = match (from, to) {
            (Some(from), Some(to)) => (to - from).num_milliseconds() as f64 / 1e3,
            _ => f64::NAN,
        };
        println!(
            "  pruning {} of {seeded} old runs took {span:.1} s; {} runs started meanwhile: lag p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
            seeded - left,
            during.len(),
            percentile(&during, 0.5),
            percentile(&during, 0.99),
            percentile(&during, 1.0)
        );
        result += &format!(
            " old_runs={seeded} pruned={} prune_s={span:.1} runs_while_pruning={} prune_lag_p50_ms={:.2} prune_lag_p99_ms={:.2} prune_lag_max_ms={:.2}",
            seeded - left,
            during.len(),
            percentile(&during, 0.5),
            percentile(&during, 0.99),
            percentile(&during, 1.0)
        );
    }
    println!("{result}");
}

/// Seeds the store with 30 days of runs of the first `BENCH_PRUNE_PROBES`
/// probes, every 5 minutes, ending a day past the 30-day retention. Returns
/// how many and the time they all start before.
fn seed_old_runs(dir: &Path, probes: usize) -> (u64, DateTime<Utc>) {
    let count = (knob("BENCH_PRUNE_PROBES", 100) as usize).clamp(1, probes);
    let store = sms_canary::store::Store::open(&dir.join("state")).expect("store");
    let cutoff = Utc::now() - chrono::Duration::days(31);
    let from = cutoff - chrono::Duration::days(30);
    let mut seeded = seed::record(&store, "p00000", from, cutoff, chrono::Duration::minutes(5));
    let others: Vec<String> = (1..count).map(|i| format!("p{i:05}")).collect();
    seeded += seed::copy_probe(store.path(), "p00000", &others);
    (seeded, cutoff)
}

/// When the daemon's pruning of the runs before `cutoff` was first and last
/// seen under way, and how many were left at the end.
struct Pruning {
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
    left: u64,
}

/// Counts the runs before `cutoff` every 250 ms until none are left or 5
/// minutes passed; the store is read on a connection of its own, as any
/// reader's would be.
fn watch_pruning(db: &Path, cutoff: DateTime<Utc>, seeded: u64) -> Pruning {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the store to watch");
    let _ = conn.busy_timeout(Duration::from_secs(5));
    let mut pruning = Pruning {
        first: None,
        last: None,
        left: seeded,
    };
    let give_up = Instant::now() + Duration::from_secs(300);
    while Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(250));
        let Ok(left) = conn.query_row(
            "SELECT count(*) FROM runs WHERE started_at < ?1",
            [cutoff.timestamp_millis()],
            |r| r.get::<_, i64>(0),
        ) else {
            continue;
        };
        let left = left as u64;
        if left < pruning.left {
            pruning.first.get_or_insert_with(Utc::now);
            pruning.last = Some(Utc::now());
        }
        pruning.left = left;
        if left == 0 {
            break;
        }
    }
    pruning
}
