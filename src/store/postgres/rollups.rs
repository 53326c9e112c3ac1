//! Reading the hourly and daily rollups on PostgreSQL, and pruning: the
//! same windows (hours up to the first whole day, then days) and the same
//! rules for what pruning keeps as the SQLite store.

use chrono::{DateTime, Utc};
use postgres::Client;

use super::{PgFailure, PgStore};
use crate::store::rollups::{
    Grain, PRUNE_BATCH, Pruned, Tally, counts_tally, hour_of, row_tally, split,
};
use crate::store::{StoreError, millis, sql_limit, timestamp};

impl PgStore {
    pub(super) fn pg_tally(&self, probe: &str, since: DateTime<Utc>) -> Result<Tally, StoreError> {
        self.with("read rollups", |client| {
            let (from, days_from) = split(since);
            let mut all = rows(client, Grain::Hour, probe, from, days_from)?;
            all.extend(rows(client, Grain::Day, probe, days_from, i64::MAX)?);
            let mut t = Tally::default();
            for (at, json) in all {
                t.merge(&row_tally(at, &json)?);
            }
            Ok(t)
        })
    }

    pub(super) fn pg_counts(&self, probe: &str, since: DateTime<Utc>) -> Result<Tally, StoreError> {
        self.with("read rollups", |client| {
            let (from, days_from) = split(since);
            let mut all = rows(client, Grain::Hour, probe, from, days_from)?;
            all.extend(rows(client, Grain::Day, probe, days_from, i64::MAX)?);
            let mut t = Tally::default();
            for (at, json) in all {
                t.merge(&counts_tally(at, &json)?);
            }
            Ok(t)
        })
    }

    pub(super) fn pg_hourly(
        &self,
        probe: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, Tally)>, StoreError> {
        self.with("read rollups", |client| {
            rows(client, Grain::Hour, probe, hour_of(millis(since)), i64::MAX)?
                .into_iter()
                .map(|(hour, json)| Ok((timestamp(hour)?, row_tally(hour, &json)?)))
                .collect()
        })
    }

    pub(super) fn pg_counted_probes(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        self.with("read rollups", |client| {
            let (from, days_from) = split(since);
            let rows = client.query(
                "SELECT probe COLLATE \"C\" FROM rollups WHERE hour >= $1 AND hour < $2
                 UNION SELECT probe COLLATE \"C\" FROM daily_rollups WHERE day >= $2
                 ORDER BY 1",
                &[&from, &days_from],
            )?;
            Ok(rows
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?)
        })
    }

    pub(super) fn pg_prune(
        &self,
        runs_before: DateTime<Utc>,
        rollups_before: DateTime<Utc>,
    ) -> Result<Pruned, StoreError> {
        self.with("prune old runs", |client| {
            let mut tx = client.transaction()?;
            let cutoff = millis(runs_before);
            let batch = sql_limit(PRUNE_BATCH);
            // What goes, as in the SQLite store: old runs of no firing
            // alert with no notice still to deliver, their delivered
            // notices first.
            const PRUNABLE: &str = "started_at < $1
                AND probe NOT IN (
                    SELECT probe FROM alert_state WHERE (state::jsonb ->> 'firing') IS NOT NULL)
                AND correlation_id NOT IN (
                    SELECT correlation_id FROM outbox
                    WHERE delivered_at IS NULL AND correlation_id IS NOT NULL)";
            let notifications = tx.execute(
                &format!(
                    "DELETE FROM outbox WHERE delivered_at IS NOT NULL AND correlation_id IN (
                         SELECT correlation_id FROM runs WHERE {PRUNABLE}
                         ORDER BY started_at LIMIT $2)"
                ),
                &[&cutoff, &batch],
            )?;
            let runs = tx.execute(
                &format!(
                    "DELETE FROM runs WHERE id IN (
                         SELECT id FROM runs WHERE {PRUNABLE}
                           AND correlation_id NOT IN (
                               SELECT correlation_id FROM outbox WHERE correlation_id IS NOT NULL)
                         ORDER BY started_at LIMIT $2)"
                ),
                &[&cutoff, &batch],
            )?;
            let mut rollups = 0;
            for grain in [Grain::Hour, Grain::Day] {
                let (table, key) = (grain.table(), grain.key());
                rollups += tx.execute(
                    &format!(
                        "DELETE FROM {table} WHERE (probe, {key}) IN (
                             SELECT probe, {key} FROM {table} WHERE {key} < $1 LIMIT $2)"
                    ),
                    &[&grain.of(millis(rollups_before)), &batch],
                )?;
            }
            tx.commit()?;
            Ok(Pruned {
                runs,
                rollups,
                notifications,
            })
        })
    }

    /// The store's tables with their indexes and TOAST, in bytes; 0 when the
    /// database cannot say (the figure is a gauge, not worth an error).
    pub(super) fn pg_size_bytes(&self) -> u64 {
        self.with("measure the store", |client| {
            let n: i64 = client
                .query_one(
                    "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::BIGINT
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = current_schema() AND c.relkind = 'r'",
                    &[],
                )?
                .try_get(0)?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .unwrap_or(0)
    }
}

/// A probe's rollup rows of one grain from `from` to before `to`, oldest
/// first: (start, tally JSON).
fn rows(
    client: &mut Client,
    grain: Grain,
    probe: &str,
    from: i64,
    to: i64,
) -> Result<Vec<(i64, String)>, PgFailure> {
    let (table, key) = (grain.table(), grain.key());
    let rows = client.query(
        &format!(
            "SELECT {key}, tally FROM {table} WHERE probe = $1 AND {key} >= $2 AND {key} < $3
             ORDER BY {key}"
        ),
        &[&probe, &from, &to],
    )?;
    Ok(rows
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<Vec<_>, postgres::Error>>()?)
}
