//! The watchdog: exits the process when the scheduler stops ticking.
//!
//! A stalled scheduler (a deadlock, a runaway task starving the runtime) looks
//! alive to a supervisor but probes nothing, which is the very failure this
//! tool exists to catch. A plain OS thread, outside the async runtime, checks
//! the scheduler's last tick and exits non-zero so systemd or Kubernetes
//! restarts the daemon.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

/// Exit status when the scheduler stalled (EX_SOFTWARE).
pub const STALLED_EXIT: i32 = 70;

/// Shared between the scheduler (writes) and the watchdog and /healthz (read).
#[derive(Debug, Default)]
pub struct Heartbeat {
    last_tick_ms: AtomicI64,
    stopping: AtomicBool,
}

impl Heartbeat {
    pub fn tick(&self) {
        self.last_tick_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// How long ago the scheduler last ticked.
    pub fn since_tick(&self) -> Duration {
        let last = self.last_tick_ms.load(Ordering::Relaxed);
        Duration::from_millis(now_ms().saturating_sub(last).max(0) as u64)
    }

    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }
}

fn now_ms() -> i64 {
    // Real time on purpose: the watchdog judges the process, not tokio's clock.
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Starts the watchdog thread: exits with [`STALLED_EXIT`] if the scheduler has
/// not ticked for `limit`.
pub fn spawn(heartbeat: Arc<Heartbeat>, limit: Duration) {
    heartbeat.tick();
    let spawned = std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(1).min(limit));
                if heartbeat.stopping.load(Ordering::Relaxed) {
                    return;
                }
                let since = heartbeat.since_tick();
                if since > limit {
                    tracing::error!(
                        stalled_s = since.as_secs(),
                        "scheduler stalled: exiting so a supervisor restarts us"
                    );
                    eprintln!(
                        "sms-canary: scheduler stalled for {}s; exiting",
                        since.as_secs()
                    );
                    std::process::exit(STALLED_EXIT);
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the watchdog: {e}");
    }
}
