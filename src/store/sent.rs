//! The cost guard's count of messages sent since a time, kept up to date
//! incrementally instead of counted afresh on every run.
//!
//! `SELECT COUNT(*)` over the last 24 hours of runs visits every one of them,
//! and the daemon asks before each run: at 10,000 probes a minute that is
//! millions of rows a run, under the store's lock, and every run's start waits
//! for it (it was most of the daemon's schedule lag). Instead the store keeps
//! per-second counts of the runs it has seen and, on each call, folds in only
//! the rows added since the last one (`runs.id` only grows: rows are inserted,
//! never updated; pruning deletes only runs older than the retention, which
//! the loader holds to at least a day, so never one of the window's). Rows
//! written by other processes sharing the file
//! (cron checks, a crash recovery) are counted the same way, since they are
//! read from the file, not from this process's own writes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::error::Failure;
use super::{count, millis};

/// Which runs sent (or may have sent) a message: the cost guard counts them.
pub(super) const SENT: &str = "(message_id IS NOT NULL OR interrupted = 1)";

/// Seconds of counts kept below the latest `since`: concurrent runs ask with
/// times a little out of order, and a step back within this margin must not
/// cost a full recount.
const MARGIN_SECS: i64 = 60;

/// Per-second counts of sent runs from `floor` on.
#[derive(Debug, Default)]
pub(super) struct SentWindow {
    /// Counts exist for the seconds from here on; `None` before the first call.
    floor: Option<i64>,
    /// The highest `runs.id` folded in.
    seen: i64,
    by_second: BTreeMap<i64, u64>,
    total: u64,
}

impl SentWindow {
    /// Sent runs started at or after `since`, exactly as
    /// `COUNT(*) … WHERE started_at >= since` would count them.
    pub(super) fn count_since(
        &mut self,
        conn: &mut Connection,
        since: DateTime<Utc>,
    ) -> Result<u64, Failure> {
        let since_ms = millis(since);
        let second = since_ms.div_euclid(1000);
        match self.floor {
            Some(floor) if floor <= second => self.fold_new(conn)?,
            _ => self.rebuild(conn, second.saturating_sub(MARGIN_SECS))?,
        }
        self.drop_below(second.saturating_sub(MARGIN_SECS));
        let below: u64 = self.by_second.range(..second).map(|(_, n)| n).sum();
        let at = self.by_second.get(&second).copied().unwrap_or(0);
        // Only the second `since` falls in is split: count it from the file.
        let partial = if since_ms.rem_euclid(1000) == 0 || at == 0 {
            at
        } else {
            let n: i64 = conn.query_row(
                &format!(
                    "SELECT COUNT(*) FROM runs WHERE started_at >= ?1 AND started_at < ?2 AND {SENT}"
                ),
                params![since_ms, second.saturating_add(1).saturating_mul(1000)],
                |row| row.get(0),
            )?;
            count(n)?
        };
        Ok(self.total - below - at + partial)
    }

    /// Counts afresh from the file, keeping the seconds from `floor` on.
    fn rebuild(&mut self, conn: &mut Connection, floor: i64) -> Result<(), Failure> {
        // One read transaction: the highest id and the counts come from the
        // same snapshot, so no row is counted twice or missed by later folds.
        let tx = conn.transaction()?;
        let seen: i64 = tx.query_row("SELECT COALESCE(MAX(id), 0) FROM runs", [], |row| {
            row.get(0)
        })?;
        let mut by_second = BTreeMap::new();
        let mut total = 0;
        {
            let mut stmt = tx.prepare(&format!(
                "SELECT (started_at - ((started_at % 1000) + 1000) % 1000) / 1000 AS second,
                        COUNT(*)
                 FROM runs WHERE started_at >= ?1 AND id <= ?2 AND {SENT}
                 GROUP BY second"
            ))?;
            let rows = stmt.query_map(params![floor.saturating_mul(1000), seen], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
            })?;
            for row in rows {
                let (second, n) = row?;
                let n = count(n)?;
                by_second.insert(second, n);
                total += n;
            }
        }
        tx.commit()?;
        *self = SentWindow {
            floor: Some(floor),
            seen,
            by_second,
            total,
        };
        Ok(())
    }

    /// Adds the runs recorded since the last call.
    fn fold_new(&mut self, conn: &mut Connection) -> Result<(), Failure> {
        let floor = self.floor.unwrap_or(i64::MIN);
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT id, started_at, {SENT} FROM runs WHERE id > ?1 ORDER BY id"
        ))?;
        let rows = stmt.query_map([self.seen], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, bool>(2)?,
            ))
        })?;
        for row in rows {
            let (id, started_at, sent) = row?;
            self.seen = self.seen.max(id);
            let second = started_at.div_euclid(1000);
            if sent && second >= floor {
                *self.by_second.entry(second).or_default() += 1;
                self.total += 1;
            }
        }
        Ok(())
    }

    /// Forgets the seconds before `floor`: no later call asks for them.
    fn drop_below(&mut self, floor: i64) {
        if self.floor.is_some_and(|f| f >= floor) {
            return;
        }
        while let Some(entry) = self.by_second.first_entry() {
            if *entry.key() >= floor {
                break;
            }
            self.total -= entry.remove();
        }
        self.floor = Some(floor);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{run, store, t};
    use crate::alert::AlertState;
    use crate::probe::Outcome;

    /// The plain count the window must always agree with.
    fn counted(store: &super::super::Store, since: chrono::DateTime<chrono::Utc>) -> u64 {
        store
            .with("test count", |conn| {
                let n: i64 = conn.query_row(
                    &format!(
                        "SELECT COUNT(*) FROM runs WHERE started_at >= ?1 AND {}",
                        super::SENT
                    ),
                    [super::millis(since)],
                    |row| row.get(0),
                )?;
                Ok(n as u64)
            })
            .unwrap()
    }

    #[test]
    fn agrees_with_a_full_count_as_runs_arrive_and_the_window_slides() {
        let (_dir, store) = store();
        let ms = |ms: i64| t(0) + chrono::Duration::milliseconds(ms);
        let mut id = 0;
        // Runs every 350 ms, a third without a message; some recorded late
        // (older than the runs before them), as a long run or a recovered
        // one is; the window slides forward and sometimes a little back.
        for step in 0..400i64 {
            for late in [0, 45_000] {
                if late > 0 && step % 7 != 0 {
                    continue;
                }
                id += 1;
                let mut r = run("a", &id.to_string(), ms(step * 350 - late), Outcome::Ok);
                if id % 3 == 0 {
                    r.message_id = None;
                }
                store
                    .record_run(&r, "i", false, &AlertState::default(), &[], ms(step * 350))
                    .unwrap();
            }
            let since = ms(step * 350 - 30_000 - (step % 5) * 777);
            assert_eq!(
                store.messages_since(since).unwrap(),
                counted(&store, since),
                "step {step}, since {since}"
            );
        }
        // A big step back recounts from the file.
        assert_eq!(
            store.messages_since(t(-1000)).unwrap(),
            counted(&store, t(-1000))
        );
        assert_eq!(
            store.messages_since(t(100)).unwrap(),
            counted(&store, t(100))
        );
    }

    #[test]
    fn counts_runs_written_by_another_process() {
        let (dir, store) = store();
        let r = run("a", "1", t(10), Outcome::Ok);
        store
            .record_run(&r, "i", false, &AlertState::default(), &[], t(10))
            .unwrap();
        assert_eq!(store.messages_since(t(0)).unwrap(), 1);
        let other = super::super::Store::open(&dir.path().join("state")).unwrap();
        let r = run("b", "2", t(20), Outcome::Ok);
        other
            .record_run(&r, "cron", false, &AlertState::default(), &[], t(20))
            .unwrap();
        assert_eq!(store.messages_since(t(0)).unwrap(), 2);
        assert_eq!(store.messages_since(t(15)).unwrap(), 1);
    }
}
