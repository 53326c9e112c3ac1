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

use super::{Silence, Store, StoreError};

/// A state store, whichever database holds it.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Where the store lives, for messages: the SQLite file's path, or the
    /// PostgreSQL DSN without its password.
    fn location(&self) -> String;

    /// A trivial write, for `/healthz`: the store takes writes.
    fn touch(&self, now: DateTime<Utc>) -> Result<(), StoreError>;

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
}

impl Backend for Store {
    fn location(&self) -> String {
        self.path().display().to_string()
    }

    fn touch(&self, now: DateTime<Utc>) -> Result<(), StoreError> {
        Store::touch(self, now)
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
}
