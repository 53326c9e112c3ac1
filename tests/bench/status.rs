//! The status page's and history's figures over a store of a year: how long
//! the overview, a probe page with a 90-day chart and `history --since 365d`
//! take, and how big the store is.
//!
//! Run: `cargo bench --bench status`. It seeds `BENCH_PROBES` (100) probes:
//! a run every `BENCH_RAW_EVERY_MIN` (5) minutes for the last
//! `BENCH_RAW_DAYS` (30) days, and one an hour for the rest of `BENCH_DAYS`
//! (365), those older than the retention then pruned as the daemon prunes
//! them, so the old days live in the rollups only, as in a store a year old.
//! The first probe's runs go through the store's recording path, the others
//! are copies of its rows (see `seed.rs`). Then it renders each page
//! `BENCH_ROUNDS` (50) times. The last line is `RESULT key=value …` for
//! `bench/run`; nothing is asserted.

use std::time::{Duration, Instant};

use chrono::Utc;
use sms_canary::config::Config;
use sms_canary::report;
use sms_canary::store::Store;

#[path = "common.rs"]
mod common;
#[path = "seed.rs"]
mod seed;
use common::{knob, percentile};

fn main() {
    let probes = knob("BENCH_PROBES", 100) as usize;
    let days = knob("BENCH_DAYS", 365) as i64;
    let raw_days = knob("BENCH_RAW_DAYS", 30) as i64;
    let raw_every = knob("BENCH_RAW_EVERY_MIN", 5) as i64;
    let rounds = knob("BENCH_ROUNDS", 50) as usize;
    let dir = tempfile::tempdir().expect("temp dir");
    let config_path = write_config(dir.path(), probes, raw_days);
    let config = Config::load(&config_path).expect("bench config");
    let store = Store::open(&config.canary.state_dir).expect("store");
    let now = Utc::now();
    let ago = |d: i64| now - chrono::Duration::days(d);

    let seeding = Instant::now();
    let mut seeded = seed::record(
        &store,
        "p000",
        ago(days),
        ago(raw_days),
        chrono::Duration::hours(1),
    );
    seeded += seed::record(
        &store,
        "p000",
        ago(raw_days),
        now,
        chrono::Duration::minutes(raw_every),
    );
    let seeded_s = seeding.elapsed().as_secs_f64();
    let pruning = Instant::now();
    let before = ago(raw_days);
    let rollups_before = ago(days + 35);
    let mut pruned = 0;
    let mut longest_batch = Duration::ZERO;
    loop {
        let batch = Instant::now();
        let p = store.prune(before, rollups_before).expect("prune");
        longest_batch = longest_batch.max(batch.elapsed());
        if p.is_empty() {
            break;
        }
        pruned += p.runs;
    }
    let pruned_s = pruning.elapsed().as_secs_f64();
    let copying = Instant::now();
    let others: Vec<String> = (1..probes).map(|p| format!("p{p:03}")).collect();
    let copied = seed::copy_probe(store.path(), "p000", &others);
    let copy_s = copying.elapsed().as_secs_f64();
    let size_mb = store.size_bytes() as f64 / 1e6;

    let time = |f: &mut dyn FnMut()| {
        let mut ms = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let t = Instant::now();
            f();
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        ms.sort_by(f64::total_cmp);
        ms
    };
    let overview = time(&mut || {
        let page =
            report::html::overview(&config, &store, now, report::html::Links::Served).unwrap();
        assert!(page.contains("p000"));
    });
    let probe = time(&mut || {
        let page = report::html::probe_page(
            &config,
            &store,
            "p042",
            Duration::from_secs(90 * 86_400),
            now,
            report::html::Links::Served,
        )
        .unwrap();
        assert!(page.contains("<svg"));
    });
    let history = time(&mut || {
        let h = report::history::load(&store, &config, None, Duration::from_secs(365 * 86_400), 20)
            .unwrap();
        assert_eq!(h.probes.len(), probes);
        let _ = report::history::render(&h);
    });
    println!(
        "RESULT probes={probes} days={days} raw_days={raw_days} seeded_runs={seeded} seed_s={seeded_s:.1} \
         pruned_runs={pruned} prune_s={pruned_s:.1} longest_prune_batch_ms={:.2} copied_runs={copied} \
         copy_s={copy_s:.1} store_mb={size_mb:.1} \
         overview_p50_ms={:.2} overview_p99_ms={:.2} probe90_p50_ms={:.2} probe90_p99_ms={:.2} \
         history365_p50_ms={:.2} history365_p99_ms={:.2}",
        longest_batch.as_secs_f64() * 1e3,
        percentile(&overview, 0.5),
        percentile(&overview, 0.99),
        percentile(&probe, 0.5),
        percentile(&probe, 0.99),
        percentile(&history, 0.5),
        percentile(&history, 0.99),
    );
}

fn write_config(dir: &std::path::Path, probes: usize, raw_days: i64) -> std::path::PathBuf {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[canary]\nstate_dir = \"state\"\nlisten = \"127.0.0.1:0\"\nretention = \"{raw_days}d\"\n\n\
             [gateways.sandbox]\nkind = \"mock\"\n\n[receivers.inbox]\nkind = \"webhook\"\ngateway = \"sandbox\"\n"
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("probes")).unwrap();
    for i in 0..probes {
        std::fs::write(
            dir.join(format!("probes/p{i:03}.toml")),
            format!(
                "name = \"p{i:03}\"\ngateway = \"sandbox\"\nreceiver = \"inbox\"\nfrom = \"+15005550006\"\n\
                 to = \"+15005550100\"\nschedule = \"every 5m\"\nalerts = []\n"
            ),
        )
        .unwrap();
    }
    config
}
