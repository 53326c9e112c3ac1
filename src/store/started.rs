//! Runs written ahead: a run is stored as *started* before its message is
//! sent, and the row is replaced by the recorded run in the transaction
//! that records it. A started row that outlives its process (found by
//! [`super::holder::recover_crashed`]) becomes an interrupted run, so a
//! crash at any moment leaves every message sent with exactly one run.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{TransactionBehavior, params};

use super::{Store, StoreError, duration_ms, millis};

/// Why a recovered run ended: stored as its reason, shown by `history`.
pub const CRASH_REASON: &str =
    "interrupted: the process running it stopped before the run ended (crash or kill)";

/// A run about to send its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedRun {
    pub probe: String,
    pub correlation_id: String,
    /// The sms-canary instance running it.
    pub instance: String,
    /// The process running it (see [`super::Holder`]).
    pub holder: String,
    pub started_at: DateTime<Utc>,
    pub threshold: Duration,
    pub timeout: Duration,
}

impl Store {
    /// Writes a run ahead, before its message is sent. Idempotent.
    pub fn start_run(&self, run: &StartedRun) -> Result<(), StoreError> {
        self.with("write run ahead", |conn| {
            conn.execute(
                "INSERT INTO started_runs (correlation_id, probe, instance, holder, started_at,
                     threshold_ms, timeout_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (correlation_id) DO NOTHING",
                params![
                    run.correlation_id,
                    run.probe,
                    run.instance,
                    run.holder,
                    millis(run.started_at),
                    duration_ms(run.threshold),
                    duration_ms(run.timeout),
                ],
            )?;
            Ok(())
        })
    }

    /// Correlation ids of the runs started and not yet recorded, oldest first.
    pub fn started_runs(&self) -> Result<Vec<String>, StoreError> {
        self.with("read started runs", |conn| {
            let mut stmt =
                conn.prepare("SELECT correlation_id FROM started_runs ORDER BY started_at")?;
            let ids = stmt
                .query_map([], |row| row.get(0))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(ids)
        })
    }

    /// The holders with runs started and not yet recorded.
    pub(crate) fn started_run_holders(&self) -> Result<Vec<String>, StoreError> {
        self.with("read started run holders", |conn| {
            let mut stmt = conn.prepare("SELECT DISTINCT holder FROM started_runs")?;
            let holders = stmt
                .query_map([], |row| row.get(0))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(holders)
        })
    }

    /// For a holder whose process is gone: records each of its started runs
    /// as an interrupted `error` run (no alert state change: it says nothing
    /// about the pipeline) and frees its leases, in one transaction. Returns
    /// the correlation ids recorded.
    pub(crate) fn recover_holder(&self, holder: &str) -> Result<Vec<String>, StoreError> {
        self.with("recover interrupted runs", |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let ids = {
                let mut stmt = tx.prepare(
                    "SELECT correlation_id FROM started_runs WHERE holder = ?1 ORDER BY started_at",
                )?;
                stmt.query_map([holder], |row| row.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?
            };
            // A run recorded already (it cannot be, as recording deletes the
            // started row, but a hand-edited file may) keeps its record.
            tx.execute(
                "INSERT INTO runs (probe, correlation_id, instance, started_at, outcome, reason,
                     threshold_ms, timeout_ms, attempts, findings, interrupted)
                 SELECT probe, correlation_id, instance, started_at, 'error', ?2,
                     threshold_ms, timeout_ms, 0, '[]', 1
                 FROM started_runs WHERE holder = ?1
                 ON CONFLICT (correlation_id) DO NOTHING",
                params![holder, CRASH_REASON],
            )?;
            tx.execute("DELETE FROM started_runs WHERE holder = ?1", [holder])?;
            tx.execute("DELETE FROM leases WHERE holder = ?1", [holder])?;
            tx.commit()?;
            Ok(ids)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::alert::AlertState;
    use crate::probe::Outcome;

    fn started(id: &str, holder: &str, at: DateTime<Utc>) -> StartedRun {
        StartedRun {
            probe: "p".into(),
            correlation_id: id.into(),
            instance: "i".into(),
            holder: holder.into(),
            started_at: at,
            threshold: Duration::from_secs(5),
            timeout: Duration::from_secs(60),
        }
    }

    #[test]
    fn recording_a_run_replaces_its_started_row() {
        let (_dir, store) = store();
        store.start_run(&started("a", "h1", t(0))).unwrap();
        store.start_run(&started("a", "h1", t(0))).unwrap();
        store.start_run(&started("b", "h1", t(1))).unwrap();
        assert_eq!(store.started_runs().unwrap(), ["a", "b"]);
        let r = run("p", "a", t(0), Outcome::Ok);
        store
            .record_run(&r, "i", false, &AlertState::default(), &[], t(2))
            .unwrap();
        assert_eq!(store.started_runs().unwrap(), ["b"]);
    }

    #[test]
    fn recovering_a_holder_records_its_runs_as_interrupted_and_frees_its_leases() {
        let (_dir, store) = store();
        store.start_run(&started("a", "dead", t(0))).unwrap();
        store.start_run(&started("b", "alive", t(1))).unwrap();
        let ttl = std::time::Duration::from_secs(600);
        assert!(store.acquire_lease("p", "dead", ttl, t(0)).unwrap());
        assert!(store.acquire_lease("q", "alive", ttl, t(0)).unwrap());
        let before = store.alert_state("p").unwrap();

        assert_eq!(store.recover_holder("dead").unwrap(), ["a"]);
        assert_eq!(store.started_runs().unwrap(), ["b"]);
        let runs = store.recent_runs(None, 10).unwrap();
        assert_eq!(runs.len(), 1);
        let a = &runs[0];
        assert_eq!(
            (a.correlation_id.as_str(), a.outcome, a.interrupted),
            ("a", Outcome::Error, true)
        );
        assert_eq!(a.reason.as_deref(), Some(CRASH_REASON));
        assert_eq!((a.started_at, a.timeout), (t(0), Duration::from_secs(60)));
        assert_eq!(store.alert_state("p").unwrap(), before, "nothing counted");
        // Its lease is free at once; the live holder's is not.
        assert!(store.acquire_lease("p", "next", ttl, t(1)).unwrap());
        assert!(!store.acquire_lease("q", "next", ttl, t(1)).unwrap());
        // Again: nothing left to do.
        assert!(store.recover_holder("dead").unwrap().is_empty());
        assert_eq!(store.recent_runs(None, 10).unwrap().len(), 1);
        store.integrity_check().unwrap();
    }
}
