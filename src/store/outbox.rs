//! The notification outbox: notices are written with the run that caused
//! them and then delivered at least once. A sender takes the due entries,
//! tries each channel, and marks it delivered or failed; a failure either
//! schedules a retry or, once the retry budget is spent, leaves a dead letter
//! that stays listed until someone looks. Nothing is silently dropped.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};

use super::error::Failure;
use super::{OutboxEntry, Store, StoreError, count, decode, millis, small, sql_limit, timestamp};

/// The columns [`raw_entry`] reads, in its order.
const ENTRY_COLUMNS: &str =
    "notification_id, channel, payload, attempts, last_error, created_at, next_attempt_at, dead";

/// Not yet delivered and not given up on.
const PENDING: &str = "delivered_at IS NULL AND dead = 0";

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

    /// Records a successful delivery; the entry is never sent again.
    pub fn mark_delivered(
        &self,
        notification_id: &str,
        channel: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.with("mark notification delivered", |conn| {
            let changed = conn.execute(
                "UPDATE outbox SET delivered_at = ?3, attempts = attempts + 1, last_error = NULL
                 WHERE notification_id = ?1 AND channel = ?2",
                params![notification_id, channel, millis(now)],
            )?;
            found(changed, notification_id, channel)
        })
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
                 SET attempts = attempts + 1, last_error = ?3, next_attempt_at = ?4, dead = ?5
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
struct RawEntry {
    notification_id: String,
    channel: String,
    payload: String,
    attempts: i64,
    last_error: Option<String>,
    created_at: i64,
    next_attempt_at: i64,
    dead: bool,
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
    fn decode(self) -> Result<OutboxEntry, Failure> {
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
