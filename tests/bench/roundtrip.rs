//! Accuracy benchmark: round trips through the in-process mock carrier at a
//! fixed injected latency, printing how far the measured end-to-end latency is
//! from the injected one (p50 / p99 / max of |measured − injected|).
//!
//! Run: `cargo bench --bench roundtrip`. It makes two passes: one run at a
//! time (the accuracy target, p99 ≤ 1 ms), then `BENCH_CONCURRENCY` (10) runs
//! in flight, to show what contention for the 2 cores adds. Other knobs:
//! `BENCH_RUNS` (1000), `BENCH_LATENCY_MS` (20). Prints figures, asserts nothing;
//! each pass ends with a `RESULT key=value …` line for `bench/run`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sms_canary::config::Config;
use sms_canary::probe::{self, Outcome};
use sms_canary::providers as mock;
use sms_canary::receiver::Inbox;
use sms_canary::receiver::webhook::{Hooks, router};

#[path = "common.rs"]
mod common;
use common::{knob, percentile};

fn main() {
    let runs = knob("BENCH_RUNS", 1000) as usize;
    let latency_ms = knob("BENCH_LATENCY_MS", 20);
    let concurrency = knob("BENCH_CONCURRENCY", 10).max(1) as usize;
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    for c in [1, concurrency] {
        runtime.block_on(bench(runs, latency_ms, c));
    }
}

async fn bench(runs: usize, latency_ms: u64, concurrency: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("config.toml"),
        format!(
            "[gateways.sandbox]\nkind = \"mock\"\nlatency = \"{latency_ms}ms\"\n\n\
             [receivers.inbox]\nkind = \"webhook\"\ngateway = \"sandbox\"\n"
        ),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("probes")).unwrap();
    std::fs::write(
        dir.path().join("probes/bench.toml"),
        "name = \"bench\"\ngateway = \"sandbox\"\nreceiver = \"inbox\"\n\
         from = \"+15005550006\"\nto = \"+15005550100\"\nthreshold = \"5s\"\ntimeout = \"10s\"\n",
    )
    .unwrap();
    let config = Config::load_with_env(&dir.path().join("config.toml"), &|_| None).expect("config");
    let probe = config.probes[0].clone();

    let inbox = Inbox::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public = url::Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let hooks = Hooks::new(&config, Arc::clone(&inbox), public.clone());
    tokio::spawn(axum::serve(listener, router(Arc::clone(&hooks))).into_future());
    let sms_canary::config::GatewayConfig::Mock(mock_config) = &config.gateways["sandbox"] else {
        unreachable!("the bench config has a mock gateway")
    };
    let inbound = [(
        probe.to.as_str().to_string(),
        Some(hooks.url_for("/hooks/twilio/inbound/inbox")),
    )];
    let started = mock::start_mock(
        "sandbox",
        mock_config,
        inbound,
        &mock::Links {
            inbox: &inbox,
            receivers: &config.receivers,
        },
    )
    .await
    .expect("mock carrier");
    let gateway: Arc<dyn sms_canary::gateway::Gateway> = Arc::from(started.gateway);

    let injected = Duration::from_millis(latency_ms);
    let wall = Instant::now();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = Vec::with_capacity(runs);
    for _ in 0..runs {
        let permit = Arc::clone(&semaphore).acquire_owned().await.unwrap();
        let (probe, gateway, inbox, public) = (
            probe.clone(),
            Arc::clone(&gateway),
            Arc::clone(&inbox),
            public.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let wiring = probe::Wiring {
                gateway: gateway.as_ref(),
                inbox: &inbox,
                callback_base: Some(&public),
                poller: None,
            };
            let result = probe::run(&probe, wiring).await;
            drop(permit);
            result
        }));
    }
    let mut errors_us: Vec<f64> = Vec::with_capacity(runs);
    let mut signed_min = f64::MAX;
    let mut failed = 0;
    for task in tasks {
        let result = task.await.unwrap();
        match (result.outcome, result.latency) {
            (Outcome::Ok, Some(measured)) => {
                let delta = measured.as_secs_f64() - injected.as_secs_f64();
                signed_min = signed_min.min(delta);
                errors_us.push(delta.abs() * 1e6);
            }
            _ => failed += 1,
        }
    }
    let elapsed = wall.elapsed();
    started.carrier.shutdown().await;
    errors_us.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| percentile(&errors_us, p);
    println!(
        "accuracy: {runs} round trips, injected latency {latency_ms} ms, concurrency {concurrency}"
    );
    if errors_us.is_empty() {
        println!("  no successful runs ({failed} failed)");
        return;
    }
    println!(
        "  |measured - injected|: p50 {:.0} us  p99 {:.0} us  max {:.0} us   (target p99 <= 1000 us)",
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
    println!(
        "  never early: min(measured - injected) = {:.0} us; failed runs: {failed}; wall {:.1} s",
        signed_min * 1e6,
        elapsed.as_secs_f64()
    );
    println!(
        "RESULT mode=accuracy concurrency={concurrency} runs={runs} ok={} err_p50_ms={:.3} err_p99_ms={:.3} err_max_ms={:.3} min_signed_ms={:.3}",
        errors_us.len(),
        pct(0.50) / 1e3,
        pct(0.99) / 1e3,
        pct(1.0) / 1e3,
        signed_min * 1e3
    );
}
