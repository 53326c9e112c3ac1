//! The store's interface, implemented by the embedded SQLite store
//! ([`super::Store`]) and the PostgreSQL store ([`super::PgStore`]). Every
//! method blocks: async callers run it inside `spawn_blocking`, whichever
//! backend is behind it. One behavioural test suite (`backend_suite`) runs
//! against both, so they cannot drift.
//!
//! It holds the operations both backends implement today; the rest of the
//! SQLite store's API joins it as the PostgreSQL store gains them (see
//! [`super::postgres::NOT_YET_PORTED`]).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{
    BeginRun, Begun, Lease, OutboxActions, OutboxEntry, OutboxItem, Percentiles, Pruned, Silence,
    StartedRun, Store, StoreError, StoredRun, Tally,
};
use crate::alert::AlertState;
use crate::probe::{Outcome, RunResult};

/// A state store, whichever database holds it.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Where the store lives, for messages: the SQLite file's path, or the
    /// PostgreSQL DSN without its password.
    fn location(&self) -> String;

    /// A trivial write, for `/healthz`: the store takes writes.
    fn touch(&self, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// Notes a sign of life from receiver `receiver` at `at` (kept if
    /// later than the one known).
    fn note_heard(&self, receiver: &str, at: DateTime<Utc>) -> Result<(), StoreError>;

    /// When receiver `receiver` last gave a sign of life, if ever.
    fn last_heard(&self, receiver: &str) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Silences `probe` until `until`, replacing any silence it had.
    fn silence(
        &self,
        probe: &str,
        until: DateTime<Utc>,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Lifts a probe's silence; `false` if it had none (expired ones count as had).
    fn unsilence(&self, probe: &str) -> Result<bool, StoreError>;

    /// The probe's silence if one is in force at `now`.
    fn silenced(&self, probe: &str, now: DateTime<Utc>) -> Result<Option<Silence>, StoreError>;

    /// When the next silence in force at `now` ends, if any.
    fn next_silence_end(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Every silence in force at `now`, by probe name (byte order).
    fn silences(&self, now: DateTime<Utc>) -> Result<Vec<Silence>, StoreError>;

    /// Takes the probe's lease for `ttl`: true if `holder` now holds it
    /// (free, expired, or its own, renewed), false if another's is live.
    fn acquire_lease(
        &self,
        probe: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Gives back every lease `holder` has but for the probes in `keep`.
    fn release_leases_except(&self, holder: &str, keep: &[String]) -> Result<u64, StoreError>;

    /// Gives the lease back if `holder` has it; someone else's is left alone.
    fn release_lease(&self, probe: &str, holder: &str) -> Result<(), StoreError>;

    /// The leases live at `now`, by probe.
    fn live_leases(&self, now: DateTime<Utc>) -> Result<Vec<Lease>, StoreError>;

    /// Records a run with the probe's new alert state and the notices it caused,
    /// in one transaction; `Ok(false)` if the run was recorded already.
    fn record_run(
        &self,
        run: &RunResult,
        instance: &str,
        interrupted: bool,
        state: &AlertState,
        outbox: &[OutboxItem],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Stores an alert state that changed without a run, with its notices.
    fn record_alert(
        &self,
        key: &str,
        state: &AlertState,
        outbox: &[OutboxItem],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// A probe's alert state; the default for a probe never recorded.
    fn alert_state(&self, probe: &str) -> Result<AlertState, StoreError>;

    /// Every probe's alert state, by probe name (byte order).
    fn alert_states(&self) -> Result<Vec<(String, AlertState)>, StoreError>;

    /// The alert states firing or holding a notice a silence held back.
    fn alert_states_to_reconcile(&self) -> Result<Vec<(String, AlertState)>, StoreError>;

    /// The latest runs, newest first, of one probe or of all.
    fn recent_runs(&self, probe: Option<&str>, limit: usize) -> Result<Vec<StoredRun>, StoreError>;

    /// A probe's runs started since `since`, oldest first, at most `limit` (the newest).
    fn runs_since(
        &self,
        probe: &str,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<StoredRun>, StoreError>;

    /// The correlation ids of a probe's latest runs, newest first.
    fn recent_correlation_ids(&self, probe: &str, limit: usize) -> Result<Vec<String>, StoreError>;

    /// Whether each probe's latest run was `ok` (`false` without one).
    fn last_ok_flags(&self, probes: &[String]) -> Result<Vec<(String, bool)>, StoreError>;

    /// The probes with runs started since `since`, by name (byte order).
    fn probes_run_since(&self, since: DateTime<Utc>) -> Result<Vec<String>, StoreError>;

    /// When the probe's last `ok` run started, and its correlation id.
    fn last_ok_run(&self, probe: &str) -> Result<Option<(DateTime<Utc>, String)>, StoreError>;

    /// Runs by outcome since `since`, of one probe or all, in `Outcome::ALL` order.
    fn outcome_counts(
        &self,
        probe: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<Vec<(Outcome, u64)>, StoreError>;

    /// Nearest-rank latency percentiles of the runs that arrived since `since`.
    fn latency_percentiles(
        &self,
        probe: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<Option<Percentiles>, StoreError>;

    /// Messages submitted (or maybe submitted) since `since`, across all probes:
    /// what the cost guard counts.
    fn messages_since(&self, since: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Notifications queued and not yet delivered nor dead.
    fn pending_notifications(&self) -> Result<u64, StoreError>;

    /// Entries to send now: pending and due at `now`, oldest first.
    fn due_notifications(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError>;

    /// Takes the oldest due entry no other sender holds, for `claimer`, until
    /// `now + hold`; `None` when nothing is due.
    fn claim_next(
        &self,
        claimer: &str,
        now: DateTime<Utc>,
        hold: Duration,
    ) -> Result<Option<OutboxEntry>, StoreError>;

    /// Takes one notification's entry for `channel`, as `claim_next` takes the
    /// oldest; `None` when it is delivered, dead, or held by another sender.
    fn claim(
        &self,
        notification_id: &str,
        channel: &str,
        claimer: &str,
        now: DateTime<Utc>,
        hold: Duration,
    ) -> Result<Option<OutboxEntry>, StoreError>;

    /// Queues notices that belong to no run, to be sent now.
    fn queue(&self, outbox: &[OutboxItem], now: DateTime<Utc>) -> Result<(), StoreError>;

    /// Pending and dead-lettered entries, oldest first, at most `limit`.
    fn undelivered(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError>;

    /// Puts dead letters (one notification's, or all) back in the queue.
    fn retry_dead(&self, id: Option<&str>, now: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Drops dead letters: one notification's, or those created before `before`.
    fn purge_dead(
        &self,
        id: Option<&str>,
        before: Option<DateTime<Utc>>,
    ) -> Result<u64, StoreError>;

    /// Records a delivery with the reference the channel gave the message.
    fn mark_delivered_as(
        &self,
        notification_id: &str,
        channel: &str,
        reference: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Records a delivery; the entry is never sent again.
    fn mark_delivered(
        &self,
        notification_id: &str,
        channel: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.mark_delivered_as(notification_id, channel, None, now)
    }

    /// The reference a channel gave a delivered notification, if any.
    fn delivered_ref(
        &self,
        notification_id: &str,
        channel: &str,
    ) -> Result<Option<String>, StoreError>;

    /// Records a failed attempt: retried at `retry_at`, or a dead letter.
    fn mark_failed(
        &self,
        notification_id: &str,
        channel: &str,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// How many notifications are kept as dead letters.
    fn dead_letter_count(&self) -> Result<u64, StoreError>;

    /// Dead letters, newest first.
    fn dead_letters(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError>;

    /// When the earliest pending entry is due; `None` when nothing is pending.
    fn next_notification_due(&self) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Starts a run: the cost guard, the probe's lease and the write-ahead, in
    /// one transaction.
    fn begin_run(&self, begin: &BeginRun) -> Result<Begun, StoreError>;

    /// Records a started run that will not finish as interrupted and frees its
    /// lease; `false` if it was recorded already or never started.
    fn interrupt_run(&self, correlation_id: &str, reason: &str) -> Result<bool, StoreError>;

    /// Writes a run ahead, before its message is sent. Idempotent.
    fn start_run(&self, run: &StartedRun) -> Result<(), StoreError>;

    /// Correlation ids of the runs started and not yet recorded, oldest first.
    fn started_runs(&self) -> Result<Vec<String>, StoreError>;

    /// The holders with runs started and not yet recorded, or leases taken.
    fn holders_in_store(&self) -> Result<Vec<String>, StoreError>;

    /// Records a dead holder's started runs as interrupted and frees its leases.
    fn recover_holder(&self, holder: &str) -> Result<Vec<String>, StoreError>;

    /// One probe's tally over the hours from the one `since` falls in to now.
    fn tally(&self, probe: &str, since: DateTime<Utc>) -> Result<Tally, StoreError>;

    /// One probe's hours since `since`, each with its tally, oldest first.
    fn hourly(
        &self,
        probe: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, Tally)>, StoreError>;

    /// The probes with a run counted since `since` (to the hour), by name.
    fn counted_probes(&self, since: DateTime<Utc>) -> Result<Vec<String>, StoreError>;

    /// Deletes up to `PRUNE_BATCH` old runs and rollups in one transaction,
    /// keeping what is still needed; call until it prunes nothing.
    fn prune(
        &self,
        runs_before: DateTime<Utc>,
        rollups_before: DateTime<Utc>,
    ) -> Result<Pruned, StoreError>;

    /// The store's size on disk in bytes (0 when it cannot be told).
    fn size_bytes(&self) -> u64;

    /// Checks the store's structure and that no run is both written ahead
    /// and recorded; `Ok` when clean, else every problem found.
    fn integrity_check(&self) -> Result<(), StoreError>;

    /// A quick check that the store is readable (SQLite: the pages'
    /// structure; PostgreSQL: the server answers), for `doctor` and the daemon.
    fn quick_check(&self) -> Result<(), StoreError>;

    /// Failed operations since the store was opened, by operation.
    fn error_counts(&self) -> Vec<(&'static str, u64)>;

    /// The latest failure, if it happened within `window`.
    fn failed_within(&self, window: Duration) -> Option<String>;

    /// How many dead letters were re-queued and purged by hand, ever.
    fn outbox_actions(&self) -> Result<OutboxActions, StoreError>;

    /// One probe's counts (runs, outcomes, first run) over a window, as
    /// `tally` without its histograms.
    fn counts(&self, probe: &str, since: DateTime<Utc>) -> Result<Tally, StoreError>;

    /// A probe's failed runs since `since` (the newest `limit`), with the
    /// run that ended each, oldest first: what incidents are read from.
    fn incident_runs(
        &self,
        probe: &str,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<StoredRun>, StoreError>;
}

impl Backend for Store {
    fn location(&self) -> String {
        self.path().display().to_string()
    }

    fn touch(&self, now: DateTime<Utc>) -> Result<(), StoreError> {
        Store::touch(self, now)
    }

    fn note_heard(&self, receiver: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        Store::note_heard(self, receiver, at)
    }

    fn last_heard(&self, receiver: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Store::last_heard(self, receiver)
    }

    fn silence(
        &self,
        probe: &str,
        until: DateTime<Utc>,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        Store::silence(self, probe, until, reason, now)
    }

    fn unsilence(&self, probe: &str) -> Result<bool, StoreError> {
        Store::unsilence(self, probe)
    }

    fn silenced(&self, probe: &str, now: DateTime<Utc>) -> Result<Option<Silence>, StoreError> {
        Store::silenced(self, probe, now)
    }

    fn next_silence_end(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, StoreError> {
        Store::next_silence_end(self, now)
    }

    fn silences(&self, now: DateTime<Utc>) -> Result<Vec<Silence>, StoreError> {
        Store::silences(self, now)
    }

    fn acquire_lease(
        &self,
        probe: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        Store::acquire_lease(self, probe, holder, ttl, now)
    }

    fn release_leases_except(&self, holder: &str, keep: &[String]) -> Result<u64, StoreError> {
        Store::release_leases_except(self, holder, keep)
    }

    fn release_lease(&self, probe: &str, holder: &str) -> Result<(), StoreError> {
        Store::release_lease(self, probe, holder)
    }

    fn live_leases(&self, now: DateTime<Utc>) -> Result<Vec<Lease>, StoreError> {
        Store::live_leases(self, now)
    }

    fn record_run(
        &self,
        run: &RunResult,
        instance: &str,
        interrupted: bool,
        state: &AlertState,
        outbox: &[OutboxItem],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        Store::record_run(self, run, instance, interrupted, state, outbox, now)
    }

    fn record_alert(
        &self,
        key: &str,
        state: &AlertState,
        outbox: &[OutboxItem],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        Store::record_alert(self, key, state, outbox, now)
    }

    fn alert_state(&self, probe: &str) -> Result<AlertState, StoreError> {
        Store::alert_state(self, probe)
    }

    fn alert_states(&self) -> Result<Vec<(String, AlertState)>, StoreError> {
        Store::alert_states(self)
    }

    fn alert_states_to_reconcile(&self) -> Result<Vec<(String, AlertState)>, StoreError> {
        Store::alert_states_to_reconcile(self)
    }

    fn recent_runs(&self, probe: Option<&str>, limit: usize) -> Result<Vec<StoredRun>, StoreError> {
        Store::recent_runs(self, probe, limit)
    }

    fn runs_since(
        &self,
        probe: &str,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<StoredRun>, StoreError> {
        Store::runs_since(self, probe, since, limit)
    }

    fn recent_correlation_ids(&self, probe: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        Store::recent_correlation_ids(self, probe, limit)
    }

    fn last_ok_flags(&self, probes: &[String]) -> Result<Vec<(String, bool)>, StoreError> {
        Store::last_ok_flags(self, probes)
    }

    fn probes_run_since(&self, since: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
        Store::probes_run_since(self, since)
    }

    fn last_ok_run(&self, probe: &str) -> Result<Option<(DateTime<Utc>, String)>, StoreError> {
        Store::last_ok_run(self, probe)
    }

    fn outcome_counts(
        &self,
        probe: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<Vec<(Outcome, u64)>, StoreError> {
        Store::outcome_counts(self, probe, since)
    }

    fn latency_percentiles(
        &self,
        probe: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<Option<Percentiles>, StoreError> {
        Store::latency_percentiles(self, probe, since)
    }

    fn messages_since(&self, since: DateTime<Utc>) -> Result<u64, StoreError> {
        Store::messages_since(self, since)
    }

    fn pending_notifications(&self) -> Result<u64, StoreError> {
        Store::pending_notifications(self)
    }

    fn due_notifications(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        Store::due_notifications(self, now, limit)
    }

    fn claim_next(
        &self,
        claimer: &str,
        now: DateTime<Utc>,
        hold: Duration,
    ) -> Result<Option<OutboxEntry>, StoreError> {
        Store::claim_next(self, claimer, now, hold)
    }

    fn claim(
        &self,
        notification_id: &str,
        channel: &str,
        claimer: &str,
        now: DateTime<Utc>,
        hold: Duration,
    ) -> Result<Option<OutboxEntry>, StoreError> {
        Store::claim(self, notification_id, channel, claimer, now, hold)
    }

    fn queue(&self, outbox: &[OutboxItem], now: DateTime<Utc>) -> Result<(), StoreError> {
        Store::queue(self, outbox, now)
    }

    fn undelivered(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        Store::undelivered(self, limit)
    }

    fn retry_dead(&self, id: Option<&str>, now: DateTime<Utc>) -> Result<u64, StoreError> {
        Store::retry_dead(self, id, now)
    }

    fn purge_dead(
        &self,
        id: Option<&str>,
        before: Option<DateTime<Utc>>,
    ) -> Result<u64, StoreError> {
        Store::purge_dead(self, id, before)
    }

    fn mark_delivered_as(
        &self,
        notification_id: &str,
        channel: &str,
        reference: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        Store::mark_delivered_as(self, notification_id, channel, reference, now)
    }

    fn delivered_ref(
        &self,
        notification_id: &str,
        channel: &str,
    ) -> Result<Option<String>, StoreError> {
        Store::delivered_ref(self, notification_id, channel)
    }

    fn mark_failed(
        &self,
        notification_id: &str,
        channel: &str,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        Store::mark_failed(self, notification_id, channel, error, retry_at, now)
    }

    fn dead_letter_count(&self) -> Result<u64, StoreError> {
        Store::dead_letter_count(self)
    }

    fn dead_letters(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        Store::dead_letters(self, limit)
    }

    fn next_notification_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Store::next_notification_due(self)
    }

    fn begin_run(&self, begin: &BeginRun) -> Result<Begun, StoreError> {
        Store::begin_run(self, begin)
    }

    fn interrupt_run(&self, correlation_id: &str, reason: &str) -> Result<bool, StoreError> {
        Store::interrupt_run(self, correlation_id, reason)
    }

    fn start_run(&self, run: &StartedRun) -> Result<(), StoreError> {
        Store::start_run(self, run)
    }

    fn started_runs(&self) -> Result<Vec<String>, StoreError> {
        Store::started_runs(self)
    }

    fn holders_in_store(&self) -> Result<Vec<String>, StoreError> {
        Store::holders_in_store(self)
    }

    fn recover_holder(&self, holder: &str) -> Result<Vec<String>, StoreError> {
        Store::recover_holder(self, holder)
    }

    fn tally(&self, probe: &str, since: DateTime<Utc>) -> Result<Tally, StoreError> {
        Store::tally(self, probe, since)
    }

    fn hourly(
        &self,
        probe: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, Tally)>, StoreError> {
        Store::hourly(self, probe, since)
    }

    fn counted_probes(&self, since: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
        Store::counted_probes(self, since)
    }

    fn prune(
        &self,
        runs_before: DateTime<Utc>,
        rollups_before: DateTime<Utc>,
    ) -> Result<Pruned, StoreError> {
        Store::prune(self, runs_before, rollups_before)
    }

    fn size_bytes(&self) -> u64 {
        Store::size_bytes(self)
    }

    fn integrity_check(&self) -> Result<(), StoreError> {
        Store::integrity_check(self)
    }

    fn quick_check(&self) -> Result<(), StoreError> {
        Store::quick_check(self)
    }

    fn error_counts(&self) -> Vec<(&'static str, u64)> {
        Store::error_counts(self)
    }

    fn failed_within(&self, window: Duration) -> Option<String> {
        Store::failed_within(self, window)
    }

    fn outbox_actions(&self) -> Result<OutboxActions, StoreError> {
        Store::outbox_actions(self)
    }

    fn counts(&self, probe: &str, since: DateTime<Utc>) -> Result<Tally, StoreError> {
        Store::counts(self, probe, since)
    }

    fn incident_runs(
        &self,
        probe: &str,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<StoredRun>, StoreError> {
        Store::incident_runs(self, probe, since, limit)
    }
}
