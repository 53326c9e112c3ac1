//! Operator and coordination state: maintenance silences, the leases that
//! keep two overlapping cron runs from probing the same probe at once
//! (which would send two messages and double-count failures), and when each
//! receiving phone was last heard from (the daemon hears, `doctor` reads).

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};

use super::error::Failure;
use super::{Lease, Silence, Store, StoreError, millis, timestamp};

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

    /// The leases live at `now`, by probe: who is running what.
    pub fn live_leases(&self, now: DateTime<Utc>) -> Result<Vec<Lease>, StoreError> {
        self.with("read leases", |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT probe, holder, expires_at FROM leases WHERE expires_at > ?1 ORDER BY probe",
            )?;
            let rows = stmt
                .query_map([millis(now)], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(probe, holder, at)| {
                    Ok(Lease {
                        probe,
                        holder,
                        expires_at: timestamp(at)?,
                    })
                })
                .collect()
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

/// A silence row as both backends read it, before its times are checked.
pub(super) struct RawSilence {
    pub(super) probe: String,
    pub(super) until: i64,
    pub(super) reason: Option<String>,
    pub(super) created_at: i64,
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
    pub(super) fn decode(self) -> Result<Silence, Failure> {
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
