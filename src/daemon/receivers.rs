//! The receiving phones' health: a receiver that reports its own signs of
//! life (a phone's `system:ping`, its messages) and stays silent for longer
//! than its limit is offline. The daemon raises that as its own alert
//! ("receiving phone offline since …"), resolved when the phone is heard
//! again, instead of leaving it to every probe to go `lost`; the runs that
//! miss their message meanwhile end in `error`, saying so (see the run
//! engine). Signs of life are written to the store, so `doctor` can tell
//! and a restarted daemon starts from the last one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use tracing::warn;

use super::Shared;
use crate::config::Config;
use crate::monitor::Monitor;
use crate::receiver::Inbox;
use crate::store::Store;

/// How often the receivers' silence is looked at.
pub(crate) const TICK: Duration = Duration::from_secs(15);

/// Watches every receiver that reports its health, until aborted.
pub(crate) async fn watch(shared: Arc<Shared>) {
    seed(&shared).await;
    let mut noted = HashMap::new();
    loop {
        check(&shared, &mut noted).await;
        tokio::time::sleep(TICK).await;
    }
}

/// Starts from what the store last heard, so a restart does not forget a
/// phone that pinged just before it (nor pretend one silent for hours is new).
async fn seed(shared: &Shared) {
    let config = shared.config();
    let now = shared.clock.now();
    for (name, receiver) in &config.receivers {
        let Some(limit) = receiver.silence_limit() else {
            continue;
        };
        shared.inbox.watch_receiver(name, limit);
        let (store, who) = (shared.store.clone(), name.clone());
        let Ok(Ok(Some(heard))) = tokio::task::spawn_blocking(move || store.last_heard(&who)).await
        else {
            continue;
        };
        let ago = (now - heard).to_std().unwrap_or_default();
        if let Some(at) = Instant::now().checked_sub(ago) {
            shared.inbox.heard_from(name, at);
        }
    }
}

/// One look of the daemon's.
async fn check(shared: &Shared, noted: &mut HashMap<String, Instant>) {
    let now = shared.clock.now();
    let config = shared.config();
    let monitor = shared.monitor();
    if look(&config, &shared.inbox, &shared.store, &monitor, now, noted).await {
        shared.outbox_kick.notify_one();
    }
}

/// One look at `now`: notes new signs of life in the store, and feeds each
/// receiver's silence (or its end) into the canary's own alerts. True when
/// a receiver is silent (its alert may have queued a notice).
pub(crate) async fn look(
    config: &Config,
    inbox: &Inbox,
    store: &Store,
    monitor: &Monitor,
    now: DateTime<Utc>,
    noted: &mut HashMap<String, Instant>,
) -> bool {
    let mut silent_any = false;
    for (name, receiver) in &config.receivers {
        let Some(limit) = receiver.silence_limit() else {
            continue;
        };
        inbox.watch_receiver(name, limit);
        if let Some(at) = inbox.last_heard(name)
            && noted.get(name) != Some(&at)
        {
            let ago = chrono::Duration::from_std(at.elapsed()).unwrap_or_default();
            let (store, who) = (store.clone(), name.clone());
            match tokio::task::spawn_blocking(move || store.note_heard(&who, now - ago)).await {
                Ok(Ok(())) => {
                    noted.insert(name.clone(), at);
                }
                Ok(Err(e)) => {
                    warn!(receiver = %name, "cannot record when the phone was last heard: {e}")
                }
                Err(e) => {
                    warn!(receiver = %name, "cannot record when the phone was last heard: {e}")
                }
            }
        }
        let silent = inbox.silence(name).map(|s| {
            let since = now - chrono::Duration::from_std(s.silent_for).unwrap_or_default();
            s.describe(name, Some(since))
        });
        silent_any |= silent.is_some();
        monitor.receiver_health(name, silent, now).await;
    }
    silent_any
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Paused time: a phone that pings stays quiet in the alerts; one
    /// silent past its `ping_timeout` fires the canary's own alert, with
    /// when it went quiet, and resolves once heard again.
    #[tokio::test(start_paused = true)]
    async fn a_phone_silent_past_its_timeout_fires_the_canarys_alert_until_heard() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            format!(
                "[canary]\nstate_dir = \"{}\"\nprobes = []\nalerts = [\"hook\"]\n\
                 [receivers.phone]\n{}\
                 [alerts.hook]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\n",
                dir.path().join("state").display(),
                crate::providers::SELF_REPORTING_RECEIVER
            ),
        )
        .unwrap();
        let config = Config::load_with_env(&path, &|_| None).unwrap();
        let store = Store::open(&config.canary.state_dir).unwrap();
        let monitor = Monitor::new(&config, store.clone(), None).unwrap();
        let inbox = Inbox::new();
        let start = DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut noted = HashMap::new();
        let key = crate::monitor::receiver_key("phone");
        let at = |elapsed: Duration| start + chrono::Duration::from_std(elapsed).unwrap();
        let firing = |store: &Store| store.alert_state(&key).unwrap().firing.is_some();

        assert!(!look(&config, &inbox, &store, &monitor, start, &mut noted).await);
        // A ping after 4 minutes; 10 minutes later it is still within its limit.
        tokio::time::advance(Duration::from_secs(240)).await;
        inbox.heard_from("phone", Instant::now());
        tokio::time::advance(Duration::from_secs(600)).await;
        let now = at(Duration::from_secs(840));
        assert!(!look(&config, &inbox, &store, &monitor, now, &mut noted).await);
        assert!(!firing(&store));
        assert_eq!(
            store.last_heard("phone").unwrap(),
            Some(at(Duration::from_secs(240))),
            "the sign of life is in the store, for doctor"
        );
        // One second more: offline, since the ping.
        tokio::time::advance(Duration::from_secs(1)).await;
        let now = at(Duration::from_secs(841));
        assert!(look(&config, &inbox, &store, &monitor, now, &mut noted).await);
        assert!(firing(&store));
        let queued = store.undelivered(10).unwrap();
        assert_eq!(queued.len(), 1);
        let reason = queued[0].notification.reason.clone().unwrap();
        assert!(
            reason.starts_with("receiving phone `phone` offline since 2026-11-28T12:04:00Z"),
            "{reason}"
        );
        // Still silent: no second notice (reminders follow `reminder`).
        tokio::time::advance(TICK).await;
        look(&config, &inbox, &store, &monitor, now, &mut noted).await;
        assert_eq!(store.undelivered(10).unwrap().len(), 1);
        // Heard again: resolved.
        inbox.heard_from("phone", Instant::now());
        assert!(!look(&config, &inbox, &store, &monitor, now, &mut noted).await);
        assert!(!firing(&store));
        assert_eq!(
            store.undelivered(10).unwrap().len(),
            2,
            "the resolve notice"
        );
    }
}
