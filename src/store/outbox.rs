//! The notification outbox: notices are written with the run that caused
//! them and then delivered at least once. A sender takes the due entries,
//! tries each channel, and marks it delivered or failed; a failure either
//! schedules a retry or, once the retry budget is spent, leaves a dead letter
//! that stays listed until someone looks. Nothing is silently dropped.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, TransactionBehavior, params};

use super::error::Failure;
use super::{
    OutboxEntry, OutboxItem, Store, StoreError, count, decode, encode, millis, small, sql_limit,
    timestamp,
};

/// The columns [`raw_entry`] reads, in its order.
pub(super) const ENTRY_COLUMNS: &str =
    "notification_id, channel, payload, attempts, last_error, created_at, next_attempt_at, dead";

/// Not yet delivered and not given up on.
const PENDING: &str = "delivered_at IS NULL AND dead = 0";

/// The counter names of [`Store::outbox_actions`].
pub(super) const REQUEUED: &str = "outbox_requeued";
pub(super) const PURGED: &str = "outbox_purged";

/// What operators did to dead letters by hand, counted since the store began.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxActions {
    pub requeued: u64,
    pub purged: u64,
}

/// Adds `n` to the counter `name`, in the caller's transaction.
fn count_action(tx: &rusqlite::Transaction<'_>, name: &str, n: usize) -> Result<(), Failure> {
    if n > 0 {
        tx.execute(
            "INSERT INTO counters (name, value) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            params![name, i64::try_from(n).unwrap_or(i64::MAX)],
        )?;
    }
    Ok(())
}

impl Store {
    /// Entries to send now: pending, with `next_attempt_at <= now`, oldest first.
    pub fn due_notifications(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        self.with("read due notifications", |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {ENTRY_COLUMNS} FROM outbox WHERE {PENDING} AND next_attempt_at <= ?1
                 ORDER BY created_at, rowid LIMIT ?2"
            ))?;
            let raws = stmt
                .query_map(params![millis(now), sql_limit(limit)], raw_entry)?
                .collect::<Result<Vec<_>, _>>()?;
            raws.into_iter().map(RawEntry::decode).collect()
        })
    }

    /// Takes the oldest entry due at `now` that no other sender holds, for
    /// `claimer`, until `now + hold`: while the claim lasts no other sender
    /// (a daemon, a cron check sharing the file) is given it. Delivering or
    /// failing the entry ends the claim; a claim that expires (its sender
    /// died mid-send) makes the entry due again. `None` when nothing is due.
    pub fn claim_next(
        &self,
        claimer: &str,
        now: DateTime<Utc>,
        hold: std::time::Duration,
    ) -> Result<Option<OutboxEntry>, StoreError> {
        self.with("claim a notification", |conn| {
            let until = millis(now).saturating_add(i64::try_from(hold.as_millis()).unwrap_or(i64::MAX));
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let raw = tx
                .query_row(
                    &format!(
                        "SELECT {ENTRY_COLUMNS} FROM outbox WHERE {PENDING} AND next_attempt_at <= ?1
                           AND (claimed_until IS NULL OR claimed_until <= ?1)
                         ORDER BY created_at, rowid LIMIT 1"
                    ),
                    [millis(now)],
                    raw_entry,
                )
                .optional()?;
            let Some(raw) = raw else {
                return Ok(None);
            };
            tx.execute(
                "UPDATE outbox SET claimed_by = ?3, claimed_until = ?4
                 WHERE notification_id = ?1 AND channel = ?2",
                params![raw.notification_id, raw.channel, claimer, until],
            )?;
            tx.commit()?;
            raw.decode().map(Some)
        })
    }

    /// Takes notification `notification_id`'s entry for `channel` for
    /// `claimer`, as [`Store::claim_next`] takes the oldest due one: `None`
    /// when it is delivered, dead, or held by another sender.
    pub fn claim(
        &self,
        notification_id: &str,
        channel: &str,
        claimer: &str,
        now: DateTime<Utc>,
        hold: std::time::Duration,
    ) -> Result<Option<OutboxEntry>, StoreError> {
        self.with("claim a notification", |conn| {
            let until =
                millis(now).saturating_add(i64::try_from(hold.as_millis()).unwrap_or(i64::MAX));
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let raw = tx
                .query_row(
                    &format!(
                        "SELECT {ENTRY_COLUMNS} FROM outbox
                         WHERE notification_id = ?1 AND channel = ?2 AND {PENDING}
                           AND (claimed_until IS NULL OR claimed_until <= ?3)"
                    ),
                    params![notification_id, channel, millis(now)],
                    raw_entry,
                )
                .optional()?;
            let Some(raw) = raw else {
                return Ok(None);
            };
            tx.execute(
                "UPDATE outbox SET claimed_by = ?3, claimed_until = ?4
                 WHERE notification_id = ?1 AND channel = ?2",
                params![notification_id, channel, claimer, until],
            )?;
            tx.commit()?;
            raw.decode().map(Some)
        })
    }

    /// Queues notices that belong to no run (the canary's own tests) to be
    /// sent now.
    pub fn queue(&self, outbox: &[OutboxItem], now: DateTime<Utc>) -> Result<(), StoreError> {
        self.with("queue notifications", |conn| {
            let payloads = outbox
                .iter()
                .map(|item| encode("notification", &item.notification))
                .collect::<Result<Vec<_>, _>>()?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            super::runs::insert_outbox(&tx, outbox, &payloads, None, now)?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Pending and dead-lettered entries, oldest first, at most `limit`:
    /// what `sms-canary outbox` lists.
    pub fn undelivered(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.with("read the outbox", |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {ENTRY_COLUMNS} FROM outbox WHERE delivered_at IS NULL
                 ORDER BY created_at, rowid LIMIT ?1"
            ))?;
            let raws = stmt
                .query_map([sql_limit(limit)], raw_entry)?
                .collect::<Result<Vec<_>, _>>()?;
            raws.into_iter().map(RawEntry::decode).collect()
        })
    }

    /// Puts dead letters back in the queue, due at `now` with a fresh retry
    /// budget: `id` names one notification (every channel of it), `None`
    /// all of them. Returns how many entries were re-queued.
    pub fn retry_dead(&self, id: Option<&str>, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.with("re-queue dead letters", |conn| {
            let tx = conn.transaction()?;
            let changed = tx.execute(
                "UPDATE outbox SET dead = 0, attempts = 0, next_attempt_at = ?1,
                     claimed_by = NULL, claimed_until = NULL
                 WHERE delivered_at IS NULL AND dead = 1
                   AND (?2 IS NULL OR notification_id = ?2)",
                params![millis(now), id],
            )?;
            count_action(&tx, REQUEUED, changed)?;
            tx.commit()?;
            Ok(changed as u64)
        })
    }

    /// Drops dead letters: `id` names one notification, else those created
    /// before `before` (every dead letter with `None`). Pending entries are
    /// never dropped: they are still being delivered. Returns how many went.
    pub fn purge_dead(
        &self,
        id: Option<&str>,
        before: Option<DateTime<Utc>>,
    ) -> Result<u64, StoreError> {
        self.with("purge dead letters", |conn| {
            let tx = conn.transaction()?;
            let changed = tx.execute(
                "DELETE FROM outbox WHERE delivered_at IS NULL AND dead = 1
                   AND (?1 IS NULL OR notification_id = ?1)
                   AND (?2 IS NULL OR created_at < ?2)",
                params![id, before.map(millis)],
            )?;
            count_action(&tx, PURGED, changed)?;
            tx.commit()?;
            Ok(changed as u64)
        })
    }

    /// How many dead letters were re-queued and purged by hand, ever, by
    /// any process sharing this store.
    pub fn outbox_actions(&self) -> Result<OutboxActions, StoreError> {
        self.with("read outbox action counts", |conn| {
            let read = |name: &str| -> Result<u64, Failure> {
                let n: Option<i64> = conn
                    .query_row("SELECT value FROM counters WHERE name = ?1", [name], |r| {
                        r.get(0)
                    })
                    .optional()?;
                count(n.unwrap_or(0))
            };
            Ok(OutboxActions {
                requeued: read(REQUEUED)?,
                purged: read(PURGED)?,
            })
        })
    }

    /// Records a successful delivery with the reference the channel gave
    /// the message (see [`Store::delivered_ref`]); never sent again.
    pub fn mark_delivered_as(
        &self,
        notification_id: &str,
        channel: &str,
        reference: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.with("mark notification delivered", |conn| {
            let changed = conn.execute(
                "UPDATE outbox SET delivered_at = ?3, attempts = attempts + 1, last_error = NULL,
                     claimed_by = NULL, claimed_until = NULL, delivered_ref = ?4
                 WHERE notification_id = ?1 AND channel = ?2",
                params![notification_id, channel, millis(now), reference],
            )?;
            found(changed, notification_id, channel)
        })
    }

    /// The reference `channel` gave notification `notification_id` when it
    /// delivered it (Slack's message `ts`), if it gave one.
    pub fn delivered_ref(
        &self,
        notification_id: &str,
        channel: &str,
    ) -> Result<Option<String>, StoreError> {
        self.with("read a delivery reference", |conn| {
            Ok(conn
                .query_row(
                    "SELECT delivered_ref FROM outbox WHERE notification_id = ?1 AND channel = ?2",
                    [notification_id, channel],
                    |row| row.get::<_, Option<String>>(0),
                )
                .optional()?
                .flatten())
        })
    }

    /// Records a successful delivery; the entry is never sent again.
    pub fn mark_delivered(
        &self,
        notification_id: &str,
        channel: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.mark_delivered_as(notification_id, channel, None, now)
    }

    /// Records a failed attempt: retried at `retry_at`, or, with `None`,
    /// kept as a dead letter.
    pub fn mark_failed(
        &self,
        notification_id: &str,
        channel: &str,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.with("mark notification failed", |conn| {
            // A dead letter keeps the time of its last attempt as next_attempt_at.
            let next = millis(retry_at.unwrap_or(now));
            let changed = conn.execute(
                "UPDATE outbox
                 SET attempts = attempts + 1, last_error = ?3, next_attempt_at = ?4, dead = ?5,
                     claimed_by = NULL, claimed_until = NULL
                 WHERE notification_id = ?1 AND channel = ?2",
                params![notification_id, channel, error, next, retry_at.is_none()],
            )?;
            found(changed, notification_id, channel)
        })
    }

    /// Entries still to be delivered, due now or later (dead letters excluded).
    pub fn pending_notifications(&self) -> Result<u64, StoreError> {
        self.with("count pending notifications", |conn| {
            let n: i64 = conn.query_row(
                &format!("SELECT COUNT(*) FROM outbox WHERE {PENDING}"),
                [],
                |row| row.get(0),
            )?;
            count(n)
        })
    }

    /// How many notifications ran out of retries and are kept as dead letters.
    pub fn dead_letter_count(&self) -> Result<u64, StoreError> {
        self.with("count dead letters", |conn| {
            let n: i64 = conn.query_row(
                "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL AND dead = 1",
                [],
                |row| row.get(0),
            )?;
            count(n)
        })
    }

    /// Notifications that ran out of retries, newest first.
    pub fn dead_letters(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.with("read dead letters", |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {ENTRY_COLUMNS} FROM outbox WHERE delivered_at IS NULL AND dead = 1
                 ORDER BY created_at DESC, rowid DESC LIMIT ?1"
            ))?;
            let raws = stmt
                .query_map([sql_limit(limit)], raw_entry)?
                .collect::<Result<Vec<_>, _>>()?;
            raws.into_iter().map(RawEntry::decode).collect()
        })
    }

    /// When the earliest pending entry is due, so a sender can sleep until
    /// then; `None` when nothing is pending.
    pub fn next_notification_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.with("read next notification due", |conn| {
            let next: Option<i64> = conn
                .query_row(
                    &format!("SELECT MIN(next_attempt_at) FROM outbox WHERE {PENDING}"),
                    [],
                    |row| row.get(0),
                )
                .optional()?
                .flatten();
            next.map(timestamp).transpose()
        })
    }
}

fn found(changed: usize, notification_id: &str, channel: &str) -> Result<(), Failure> {
    if changed == 0 {
        Err(Failure::UnknownNotification {
            notification_id: notification_id.to_string(),
            channel: channel.to_string(),
        })
    } else {
        Ok(())
    }
}

/// An `outbox` row as SQLite types; decoded outside the row callback.
pub(super) struct RawEntry {
    pub(super) notification_id: String,
    pub(super) channel: String,
    pub(super) payload: String,
    pub(super) attempts: i64,
    pub(super) last_error: Option<String>,
    pub(super) created_at: i64,
    pub(super) next_attempt_at: i64,
    pub(super) dead: bool,
}

fn raw_entry(row: &Row<'_>) -> rusqlite::Result<RawEntry> {
    Ok(RawEntry {
        notification_id: row.get(0)?,
        channel: row.get(1)?,
        payload: row.get(2)?,
        attempts: row.get(3)?,
        last_error: row.get(4)?,
        created_at: row.get(5)?,
        next_attempt_at: row.get(6)?,
        dead: row.get(7)?,
    })
}

impl RawEntry {
    pub(super) fn decode(self) -> Result<OutboxEntry, Failure> {
        let context = format!("outbox entry {} for {}", self.notification_id, self.channel);
        self.decode_fields().map_err(|e| e.context(&context))
    }

    fn decode_fields(self) -> Result<OutboxEntry, Failure> {
        Ok(OutboxEntry {
            notification: decode("payload", &self.payload)?,
            channel: self.channel,
            attempts: small(self.attempts, "attempts")?,
            last_error: self.last_error,
            created_at: timestamp(self.created_at)?,
            next_attempt_at: timestamp(self.next_attempt_at)?,
            dead: self.dead,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::alert::AlertState;
    use crate::probe::Outcome;
    use crate::store::OutboxItem;

    /// Records one run with notices on `channels`, created at `at`.
    fn queue(store: &Store, id: &str, channels: &[&str], at: DateTime<Utc>) -> String {
        let r = run("p", id, at, Outcome::Lost);
        // One notice, fanned out to every channel under the same id.
        let notice = notice(&r, at);
        let items: Vec<_> = channels
            .iter()
            .map(|c| OutboxItem {
                channel: c.to_string(),
                notification: notice.clone(),
            })
            .collect();
        store
            .record_run(&r, "i", false, &AlertState::default(), &items, at)
            .unwrap();
        items[0].notification.id.clone()
    }

    #[test]
    fn a_corrupt_payload_is_an_error() {
        let (_dir, store) = store();
        queue(&store, "1", &["slack"], t(0));
        store
            .with("test", |conn| {
                Ok(conn.execute("UPDATE outbox SET payload = '{\"id\": 1}'", [])?)
            })
            .unwrap();
        let err = store.due_notifications(t(0), 10).unwrap_err().to_string();
        assert!(
            err.contains("outbox entry") && err.contains("payload"),
            "{err}"
        );
    }
}
