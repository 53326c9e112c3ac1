//! A reload that takes its time never stops probing: the config is loaded
//! off the scheduler's task, the old one runs meanwhile, and the new one is
//! swapped in when it is ready.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sms_canary::daemon::{Control, DaemonOptions};
use sms_canary::store::Store;

fn config() -> String {
    "[canary]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
     [defaults]\nschedule = \"* * * * * *\"\ntimeout = \"2s\"\nthreshold = \"1s\"\n\
     [gateways.sandbox]\nkind = \"mock\"\nlatency = \"10ms\"\n\
     [receivers.inbox]\nkind = \"webhook\"\ngateway = \"sandbox\"\n"
        .to_string()
}

fn probe(name: &str, to: &str) -> String {
    format!(
        "name = \"{name}\"\ngateway = \"sandbox\"\nreceiver = \"inbox\"\nfrom = \"+15005550006\"\nto = \"{to}\"\n"
    )
}

/// Writes the config into the FIFO the reload is blocked on, once: by
/// `feed`, or on drop, so a failing test does not leave a thread blocked
/// forever.
struct Fifo {
    path: PathBuf,
    fed: bool,
}

impl Fifo {
    fn feed(mut self, text: &str) {
        self.write(text);
    }

    fn write(&mut self, text: &str) {
        if std::mem::replace(&mut self.fed, true) {
            return;
        }
        // Non-blocking: with nobody reading, there is nothing to unblock.
        if let Ok(mut pipe) = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc_nonblock())
            .open(&self.path)
        {
            let _ = pipe.write_all(text.as_bytes());
        }
    }
}

impl Drop for Fifo {
    fn drop(&mut self) {
        self.write(&config());
    }
}

/// `O_NONBLOCK` on Linux.
fn libc_nonblock() -> i32 {
    0o4000
}

fn runs(state: &Path, probe: &str) -> usize {
    Store::open(state)
        .unwrap()
        .recent_runs(Some(probe), 100_000)
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reload_does_not_stop_probing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config()).unwrap();
    std::fs::create_dir(dir.path().join("probes")).unwrap();
    std::fs::write(dir.path().join("probes/p.toml"), probe("p", "+15005550100")).unwrap();
    let (tx, daemon) = crate::daemon::spawn_daemon(
        path.clone(),
        DaemonOptions {
            preflight: false,
            grace: Duration::from_secs(2),
            ..DaemonOptions::default()
        },
    );
    let state = dir.path().join(".sms-canary");
    let wait_for = |probe: &'static str, more_than: usize| {
        let state = state.clone();
        async move {
            for _ in 0..100 {
                if state.join("state.db").exists() && runs(&state, probe) > more_than {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("no run of {probe} past {more_than} within 10s");
        }
    };
    wait_for("p", 0).await;

    // The config becomes a pipe nobody writes to yet: the reload blocks on it.
    std::fs::remove_file(&path).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap();
    assert!(made.success());
    let fifo = Fifo {
        path: path.clone(),
        fed: false,
    };
    tx.send(Control::Reload).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = runs(&state, "p");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = runs(&state, "p");
    assert!(
        during >= before + 2,
        "probing stopped while the reload waited: {before} runs, then {during}"
    );

    // The new config arrives: it is swapped in, with its new probe.
    std::fs::write(dir.path().join("probes/q.toml"), probe("q", "+15005550101")).unwrap();
    let feeding = tokio::task::spawn_blocking(move || fifo.feed(&config()));
    feeding.await.unwrap();
    wait_for("q", 0).await;
    wait_for("p", during).await;

    tx.send(Control::Shutdown).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), daemon)
        .await
        .expect("stops")
        .unwrap()
        .unwrap();
}
