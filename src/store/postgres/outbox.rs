//! The notification outbox on PostgreSQL. Several members send from one
//! outbox: an entry is claimed in one statement, and `claim_next` skips the
//! rows another member is claiming this instant (`FOR UPDATE SKIP LOCKED`)
//! instead of queueing behind it, so each notification goes to one sender
//! at a time and senders never wait on each other.

use std::time::Duration;

use chrono::{DateTime, Utc};
use postgres::{Row, Transaction};

use super::{PgFailure, PgStore};
use crate::store::outbox::{ENTRY_COLUMNS, PURGED, REQUEUED, RawEntry};
use crate::store::{
    OutboxActions, OutboxEntry, OutboxItem, StoreError, count, millis, sql_limit, timestamp,
};

/// Not yet delivered and not given up on.
const PENDING: &str = "delivered_at IS NULL AND NOT dead";

impl PgStore {
    pub(super) fn pg_due_notifications(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        self.with("read due notifications", |client| {
            let rows = client.query(
                &format!(
                    "SELECT {ENTRY_COLUMNS} FROM outbox WHERE {PENDING} AND next_attempt_at <= $1
                     ORDER BY created_at, seq LIMIT $2"
                ),
                &[&millis(now), &sql_limit(limit)],
            )?;
            decode_entries(&rows)
        })
    }

    pub(super) fn pg_claim_next(
        &self,
        claimer: &str,
        now: DateTime<Utc>,
        hold: Duration,
    ) -> Result<Option<OutboxEntry>, StoreError> {
        self.with("claim a notification", |client| {
            let until = claim_until(now, hold);
            let row = client.query_opt(
                &format!(
                    "UPDATE outbox SET claimed_by = $2, claimed_until = $3
                     WHERE (notification_id, channel) = (
                         SELECT notification_id, channel FROM outbox
                         WHERE {PENDING} AND next_attempt_at <= $1
                           AND (claimed_until IS NULL OR claimed_until <= $1)
                         ORDER BY created_at, seq LIMIT 1
                         FOR UPDATE SKIP LOCKED)
                     RETURNING {ENTRY_COLUMNS}"
                ),
                &[&millis(now), &claimer, &until],
            )?;
            row.map(|row| decode_entry(&row)).transpose()
        })
    }

    pub(super) fn pg_claim(
        &self,
        notification_id: &str,
        channel: &str,
        claimer: &str,
        now: DateTime<Utc>,
        hold: Duration,
    ) -> Result<Option<OutboxEntry>, StoreError> {
        self.with("claim a notification", |client| {
            let until = claim_until(now, hold);
            // A concurrent claimer waits for the row and re-checks the
            // condition, so of two only one gets it.
            let row = client.query_opt(
                &format!(
                    "UPDATE outbox SET claimed_by = $4, claimed_until = $5
                     WHERE notification_id = $1 AND channel = $2 AND {PENDING}
                       AND (claimed_until IS NULL OR claimed_until <= $3)
                     RETURNING {ENTRY_COLUMNS}"
                ),
                &[&notification_id, &channel, &millis(now), &claimer, &until],
            )?;
            row.map(|row| decode_entry(&row)).transpose()
        })
    }

    pub(super) fn pg_queue(
        &self,
        outbox: &[OutboxItem],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.with("queue notifications", |client| {
            let payloads = super::runs::payloads(outbox)?;
            let mut tx = client.transaction()?;
            super::runs::insert_outbox(&mut tx, outbox, &payloads, None, now)?;
            tx.commit()?;
            Ok(())
        })
    }

    pub(super) fn pg_undelivered(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.with("read the outbox", |client| {
            let rows = client.query(
                &format!(
                    "SELECT {ENTRY_COLUMNS} FROM outbox WHERE delivered_at IS NULL
                     ORDER BY created_at, seq LIMIT $1"
                ),
                &[&sql_limit(limit)],
            )?;
            decode_entries(&rows)
        })
    }

    pub(super) fn pg_retry_dead(
        &self,
        id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.with("re-queue dead letters", |client| {
            let mut tx = client.transaction()?;
            let changed = tx.execute(
                "UPDATE outbox SET dead = FALSE, attempts = 0, next_attempt_at = $1,
                     claimed_by = NULL, claimed_until = NULL
                 WHERE delivered_at IS NULL AND dead
                   AND ($2::TEXT IS NULL OR notification_id = $2)",
                &[&millis(now), &id],
            )?;
            count_action(&mut tx, REQUEUED, changed)?;
            tx.commit()?;
            Ok(changed)
        })
    }

    pub(super) fn pg_purge_dead(
        &self,
        id: Option<&str>,
        before: Option<DateTime<Utc>>,
    ) -> Result<u64, StoreError> {
        self.with("purge dead letters", |client| {
            let mut tx = client.transaction()?;
            let changed = tx.execute(
                "DELETE FROM outbox WHERE delivered_at IS NULL AND dead
                   AND ($1::TEXT IS NULL OR notification_id = $1)
                   AND ($2::BIGINT IS NULL OR created_at < $2)",
                &[&id, &before.map(millis)],
            )?;
            count_action(&mut tx, PURGED, changed)?;
            tx.commit()?;
            Ok(changed)
        })
    }

    pub(super) fn pg_mark_delivered_as(
        &self,
        notification_id: &str,
        channel: &str,
        reference: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.with("mark notification delivered", |client| {
            let changed = client.execute(
                "UPDATE outbox SET delivered_at = $3, attempts = attempts + 1, last_error = NULL,
                     claimed_by = NULL, claimed_until = NULL, delivered_ref = $4
                 WHERE notification_id = $1 AND channel = $2",
                &[&notification_id, &channel, &millis(now), &reference],
            )?;
            found(changed, notification_id, channel)
        })
    }

    pub(super) fn pg_delivered_ref(
        &self,
        notification_id: &str,
        channel: &str,
    ) -> Result<Option<String>, StoreError> {
        self.with("read a delivery reference", |client| {
            let row = client.query_opt(
                "SELECT delivered_ref FROM outbox WHERE notification_id = $1 AND channel = $2",
                &[&notification_id, &channel],
            )?;
            Ok(row
                .map(|row| row.try_get::<_, Option<String>>(0))
                .transpose()?
                .flatten())
        })
    }

    pub(super) fn pg_mark_failed(
        &self,
        notification_id: &str,
        channel: &str,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.with("mark notification failed", |client| {
            // A dead letter keeps the time of its last attempt as next_attempt_at.
            let next = millis(retry_at.unwrap_or(now));
            let changed = client.execute(
                "UPDATE outbox
                 SET attempts = attempts + 1, last_error = $3, next_attempt_at = $4, dead = $5,
                     claimed_by = NULL, claimed_until = NULL
                 WHERE notification_id = $1 AND channel = $2",
                &[
                    &notification_id,
                    &channel,
                    &error,
                    &next,
                    &retry_at.is_none(),
                ],
            )?;
            found(changed, notification_id, channel)
        })
    }

    pub(super) fn pg_dead_letter_count(&self) -> Result<u64, StoreError> {
        self.with("count dead letters", |client| {
            let n: i64 = client
                .query_one(
                    "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL AND dead",
                    &[],
                )?
                .try_get(0)?;
            Ok(count(n)?)
        })
    }

    pub(super) fn pg_dead_letters(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.with("read dead letters", |client| {
            let rows = client.query(
                &format!(
                    "SELECT {ENTRY_COLUMNS} FROM outbox WHERE delivered_at IS NULL AND dead
                     ORDER BY created_at DESC, seq DESC LIMIT $1"
                ),
                &[&sql_limit(limit)],
            )?;
            decode_entries(&rows)
        })
    }

    pub(super) fn pg_next_notification_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.with("read next notification due", |client| {
            let next: Option<i64> = client
                .query_one(
                    &format!("SELECT MIN(next_attempt_at) FROM outbox WHERE {PENDING}"),
                    &[],
                )?
                .try_get(0)?;
            Ok(next.map(timestamp).transpose()?)
        })
    }
}

impl PgStore {
    pub(super) fn pg_outbox_actions(&self) -> Result<OutboxActions, StoreError> {
        self.with("read outbox action counts", |client| {
            let mut read = |name: &str| -> Result<u64, PgFailure> {
                let n: Option<i64> = client
                    .query_opt("SELECT value FROM counters WHERE name = $1", &[&name])?
                    .map(|r| r.try_get(0))
                    .transpose()?;
                Ok(count(n.unwrap_or(0))?)
            };
            Ok(OutboxActions {
                requeued: read(REQUEUED)?,
                purged: read(PURGED)?,
            })
        })
    }
}

/// Adds `n` to the counter `name`, in the caller's transaction.
fn count_action(tx: &mut Transaction<'_>, name: &str, n: u64) -> Result<(), PgFailure> {
    if n > 0 {
        tx.execute(
            "INSERT INTO counters (name, value) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value",
            &[&name, &i64::try_from(n).unwrap_or(i64::MAX)],
        )?;
    }
    Ok(())
}

fn claim_until(now: DateTime<Utc>, hold: Duration) -> i64 {
    millis(now).saturating_add(i64::try_from(hold.as_millis()).unwrap_or(i64::MAX))
}

fn found(changed: u64, notification_id: &str, channel: &str) -> Result<(), PgFailure> {
    if changed == 0 {
        Err(PgFailure::UnknownNotification {
            notification_id: notification_id.to_string(),
            channel: channel.to_string(),
        })
    } else {
        Ok(())
    }
}

fn decode_entries(rows: &[Row]) -> Result<Vec<OutboxEntry>, PgFailure> {
    rows.iter().map(decode_entry).collect()
}

fn decode_entry(row: &Row) -> Result<OutboxEntry, PgFailure> {
    let raw = RawEntry {
        notification_id: row.try_get(0)?,
        channel: row.try_get(1)?,
        payload: row.try_get(2)?,
        attempts: row.try_get(3)?,
        last_error: row.try_get(4)?,
        created_at: row.try_get(5)?,
        next_attempt_at: row.try_get(6)?,
        dead: row.try_get(7)?,
    };
    Ok(raw.decode()?)
}
