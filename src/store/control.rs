//! Operator and coordination state: maintenance silences, the leases that
//! keep two overlapping cron runs from probing the same probe at once
//! (which would send two messages and double-count failures), and when each
//! receiving phone was last heard from (the daemon hears, `doctor` reads).

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};

use super::error::Failure;
use super::{Silence, Store, StoreError, millis, timestamp};

impl Store {
    /// Notes that receiver `receiver` gave a sign of life at `at` (an
    /// earlier time than the one kept changes nothing).
    pub fn note_heard(&self, receiver: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.with("note a receiver heard", |conn| {
            conn.execute(
                "INSERT INTO receiver_heard (receiver, heard_at) VALUES (?1, ?2)
                 ON CONFLICT (receiver) DO UPDATE SET heard_at = max(heard_at, excluded.heard_at)",
                params![receiver, millis(at)],
            )?;
            Ok(())
        })
    }

    /// When receiver `receiver` last gave a sign of life, if ever.
    pub fn last_heard(&self, receiver: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.with("read when a receiver was heard", |conn| {
            let ms: Option<i64> = conn
                .query_row(
                    "SELECT heard_at FROM receiver_heard WHERE receiver = ?1",
                    [receiver],
                    |row| row.get(0),
                )
                .optional()?;
            ms.map(timestamp).transpose()
        })
    }

    /// Silences `probe` until `until`, replacing any silence it had.
    pub fn silence(
        &self,
        probe: &str,
        until: DateTime<Utc>,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.with("silence probe", |conn| {
            conn.execute(
                "INSERT INTO silences (probe, until, reason, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (probe) DO UPDATE SET until = excluded.until,
                     reason = excluded.reason, created_at = excluded.created_at",
                params![probe, millis(until), reason, millis(now)],
            )?;
            Ok(())
        })
    }

    /// Lifts a probe's silence; `false` if it had none (expired ones count as had).
    pub fn unsilence(&self, probe: &str) -> Result<bool, StoreError> {
        self.with("unsilence probe", |conn| {
            Ok(conn.execute("DELETE FROM silences WHERE probe = ?1", [probe])? > 0)
        })
    }

    /// The probe's silence if one is in force at `now`.
    pub fn silenced(&self, probe: &str, now: DateTime<Utc>) -> Result<Option<Silence>, StoreError> {
        self.with("read silence", |conn| {
            let raw = conn
                .query_row(
                    "SELECT probe, until, reason, created_at FROM silences
                     WHERE probe = ?1 AND until > ?2",
                    params![probe, millis(now)],
                    raw_silence,
                )
                .optional()?;
            raw.map(RawSilence::decode).transpose()
        })
    }

    /// When the next silence in force at `now` ends, if any: the daemon
    /// tells what it held back then.
    pub fn next_silence_end(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.with("read silences", |conn| {
            let until: Option<i64> = conn.query_row(
                "SELECT MIN(until) FROM silences WHERE until > ?1",
                [millis(now)],
                |row| row.get(0),
            )?;
            until.map(timestamp).transpose()
        })
    }

    /// Every silence in force at `now`, by probe name.
    pub fn silences(&self, now: DateTime<Utc>) -> Result<Vec<Silence>, StoreError> {
        self.with("read silences", |conn| {
            let mut stmt = conn.prepare(
                "SELECT probe, until, reason, created_at FROM silences WHERE until > ?1
                 ORDER BY probe",
            )?;
            let raws = stmt
                .query_map([millis(now)], raw_silence)?
                .collect::<Result<Vec<_>, _>>()?;
            raws.into_iter().map(RawSilence::decode).collect()
        })
    }

    /// Takes the probe's lease for `ttl`. True if `holder` now holds it (it
    /// was free, expired, or already its own: renewed); false if another
    /// holder's lease is live. One statement, so two processes racing for a
    /// free lease cannot both win.
    pub fn acquire_lease(
        &self,
        probe: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.with("acquire lease", |conn| {
            let tx = conn.transaction()?;
            let held_by_another = super::started::take_lease(&tx, probe, holder, ttl, now)?;
            tx.commit()?;
            Ok(held_by_another.is_none())
        })
    }

    /// Gives back every lease `holder` has but for the probes in `keep`:
    /// what a live process holds for probes it is no longer running.
    pub fn release_leases_except(&self, holder: &str, keep: &[String]) -> Result<u64, StoreError> {
        self.with("release stale leases", |conn| {
            let tx = conn.transaction()?;
            let mut freed = 0;
            let held: Vec<String> = {
                let mut stmt = tx.prepare("SELECT probe FROM leases WHERE holder = ?1")?;
                stmt.query_map([holder], |row| row.get(0))?
                    .collect::<Result<_, _>>()?
            };
            for probe in held.iter().filter(|p| !keep.contains(p)) {
                freed += tx.execute(
                    "DELETE FROM leases WHERE probe = ?1 AND holder = ?2",
                    [probe, holder],
                )? as u64;
            }
            tx.commit()?;
            Ok(freed)
        })
    }

    /// Gives the lease back if `holder` has it; someone else's lease is left alone.
    pub fn release_lease(&self, probe: &str, holder: &str) -> Result<(), StoreError> {
        self.with("release lease", |conn| {
            conn.execute(
                "DELETE FROM leases WHERE probe = ?1 AND holder = ?2",
                [probe, holder],
            )?;
            Ok(())
        })
    }
}

struct RawSilence {
    probe: String,
    until: i64,
    reason: Option<String>,
    created_at: i64,
}

fn raw_silence(row: &Row<'_>) -> rusqlite::Result<RawSilence> {
    Ok(RawSilence {
        probe: row.get(0)?,
        until: row.get(1)?,
        reason: row.get(2)?,
        created_at: row.get(3)?,
    })
}

impl RawSilence {
    fn decode(self) -> Result<Silence, Failure> {
        let context = format!("silence of {}", self.probe);
        let times = (|| Ok((timestamp(self.until)?, timestamp(self.created_at)?)))();
        let (until, created_at) = times.map_err(|e: Failure| e.context(&context))?;
        Ok(Silence {
            probe: self.probe,
            until,
            reason: self.reason,
            created_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn a_receiver_is_heard_at_its_latest_sign_of_life() {
        let (_dir, store) = store();
        assert_eq!(store.last_heard("phone").unwrap(), None);
        store.note_heard("phone", t(60)).unwrap();
        store.note_heard("phone", t(30)).unwrap();
        assert_eq!(store.last_heard("phone").unwrap(), Some(t(60)));
        store.note_heard("phone", t(90)).unwrap();
        assert_eq!(store.last_heard("phone").unwrap(), Some(t(90)));
        assert_eq!(store.last_heard("other").unwrap(), None);
    }

    #[test]
    fn silences_replace_expire_and_lift() {
        let (_dir, store) = store();
        assert_eq!(store.silenced("p", t(0)).unwrap(), None);
        store
            .silence("p", t(60), Some("maintenance"), t(0))
            .unwrap();
        store.silence("q", t(30), None, t(0)).unwrap();
        let s = store.silenced("p", t(59)).unwrap().unwrap();
        assert_eq!(
            s,
            Silence {
                probe: "p".into(),
                until: t(60),
                reason: Some("maintenance".into()),
                created_at: t(0),
            }
        );
        assert_eq!(
            store.silenced("p", t(60)).unwrap(),
            None,
            "expired at `until`"
        );
        let live = |now| -> Vec<String> {
            store
                .silences(now)
                .unwrap()
                .into_iter()
                .map(|s| s.probe)
                .collect()
        };
        assert_eq!(live(t(10)), ["p", "q"]);
        assert_eq!(live(t(30)), ["p"]);
        // Extending replaces the old silence.
        store.silence("p", t(120), None, t(50)).unwrap();
        assert_eq!(store.silenced("p", t(100)).unwrap().unwrap().reason, None);
        assert!(store.unsilence("p").unwrap());
        assert!(!store.unsilence("p").unwrap());
        assert_eq!(store.silenced("p", t(100)).unwrap(), None);
    }

    #[test]
    fn a_lease_keeps_others_out_until_it_expires_or_is_released() {
        let (_dir, store) = store();
        let ttl = Duration::from_secs(60);
        assert!(store.acquire_lease("p", "cron-1", ttl, t(0)).unwrap());
        assert!(!store.acquire_lease("p", "cron-2", ttl, t(59)).unwrap());
        assert!(
            store.acquire_lease("q", "cron-2", ttl, t(59)).unwrap(),
            "per probe"
        );
        // Renewing its own lease pushes the expiry out.
        assert!(store.acquire_lease("p", "cron-1", ttl, t(30)).unwrap());
        assert!(!store.acquire_lease("p", "cron-2", ttl, t(89)).unwrap());
        assert!(
            store.acquire_lease("p", "cron-2", ttl, t(90)).unwrap(),
            "expired"
        );
        // Releasing someone else's lease does nothing; one's own frees it.
        store.release_lease("p", "cron-1").unwrap();
        assert!(!store.acquire_lease("p", "cron-1", ttl, t(91)).unwrap());
        store.release_lease("p", "cron-2").unwrap();
        assert!(store.acquire_lease("p", "cron-1", ttl, t(91)).unwrap());
        // A ttl too large to represent saturates instead of failing.
        assert!(store.acquire_lease("r", "x", Duration::MAX, t(0)).unwrap());
        assert!(!store.acquire_lease("r", "y", ttl, t(1_000_000)).unwrap());
    }
}
