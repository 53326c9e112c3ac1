//! Which processes sharing the store are still alive, and what to do about
//! the ones that are not.
//!
//! Every process that runs probes (the daemon, a cron `check`) claims a
//! *holder*: a unique name under which it takes leases and writes runs ahead
//! (see [`Store::start_run`]), and an exclusive OS lock on a file of that
//! name in `<state_dir>/holders/`. The operating system drops the lock when
//! the process ends, however it ends — exit, panic, kill -9, power loss — so
//! a lock file that can be locked belongs to a dead process. That is exact,
//! unlike a timeout: the next process to start finds the runs a crashed one
//! had in flight at once, records them as interrupted (so every message
//! sent maps to exactly one recorded run) and frees its leases (so its
//! probes are not locked out until the leases expire).

use std::fs::{File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

use tracing::warn;

use super::{Store, StoreError};

/// Where the lock files live, inside the state dir.
const HOLDERS_DIR: &str = "holders";
const LOCK_EXT: &str = "lock";
const TMP_EXT: &str = "tmp";
/// A claim is renamed into place within milliseconds; a temporary file this
/// old and unlocked was left by a process that died while claiming.
const ABANDONED_CLAIM: std::time::Duration = std::time::Duration::from_secs(60);

/// This process's claim on the store; dropping it gives the claim up.
pub struct Holder {
    name: String,
    path: PathBuf,
    /// Kept open for the lock, which lives as long as the open file.
    _file: File,
}

impl std::fmt::Debug for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Holder").field("name", &self.name).finish()
    }
}

impl Holder {
    /// Claims a fresh holder named `<kind>-<pid>-<ulid>`.
    pub fn claim(store: &Store, kind: &str) -> Result<Holder, StoreError> {
        let dir = holders_dir(store);
        let name = format!("{kind}-{}-{}", std::process::id(), ulid::Ulid::generate());
        let path = dir.join(format!("{name}.{LOCK_EXT}"));
        let fail = |source| StoreError::Holder {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(fail)?;
        // Locked under a name recovery ignores, then renamed into place: a
        // recovering process must never see the file before it is locked,
        // or it would take a live holder for a dead one.
        let tmp = dir.join(format!("{name}.{TMP_EXT}"));
        let file = File::create(&tmp).map_err(fail)?;
        file.lock().map_err(fail)?;
        std::fs::rename(&tmp, &path).map_err(fail)?;
        Ok(Holder {
            name,
            path,
            _file: file,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        // Removed while still locked; the lock goes with the file handle.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What [`recover_crashed`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Holders found dead.
    pub holders: Vec<String>,
    /// Correlation ids of their runs in flight, now recorded as interrupted.
    pub runs: Vec<String>,
}

/// Finds holders whose process has ended without finishing its runs, records
/// those runs as interrupted, frees their leases and removes their lock files.
/// Holders that are alive (their file is locked) are left alone.
pub fn recover_crashed(store: &Store) -> Result<Recovered, StoreError> {
    let dir = holders_dir(store);
    let mut candidates = store.holders_in_store()?;
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == LOCK_EXT)
                    && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
                {
                    candidates.push(stem.to_string());
                } else if path.extension().is_some_and(|e| e == TMP_EXT) {
                    remove_abandoned_claim(&path);
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(StoreError::Holder { path: dir, source }),
    }
    candidates.sort();
    candidates.dedup();
    let mut recovered = Recovered::default();
    for holder in candidates {
        if let Some(runs) = recover_if_dead(store, &holder)? {
            recovered.holders.push(holder);
            recovered.runs.extend(runs);
        }
    }
    Ok(recovered)
}

/// If `holder`'s process has ended, records its runs in flight as
/// interrupted, frees its leases and removes its lock file, returning the
/// runs; a live holder (or one whose state cannot be told) is left alone
/// (`None`). Used when a lease is found taken, so a dead process's lease is
/// freed the moment someone needs it, not when it expires.
pub fn recover_if_dead(store: &Store, holder: &str) -> Result<Option<Vec<String>>, StoreError> {
    let path = holders_dir(store).join(format!("{holder}.{LOCK_EXT}"));
    // Held while recovering, so two recovering processes cannot both act.
    let lock = match File::open(&path) {
        Ok(file) => match file.try_lock() {
            Ok(()) => Some(file),
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => {
                warn!(%holder, "cannot tell whether this process is alive: {e}");
                return Ok(None);
            }
        },
        // No lock file: a holder with runs written ahead or leases taken
        // always had one (it is claimed before either), so its process
        // has ended and removed it, or another cleaned up after it.
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => {
            warn!(%holder, "cannot tell whether this process is alive: {e}");
            return Ok(None);
        }
    };
    let runs = store.recover_holder(holder)?;
    if lock.is_some() {
        let _ = std::fs::remove_file(&path);
    }
    Ok(Some(runs))
}

fn remove_abandoned_claim(path: &Path) {
    let old = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > ABANDONED_CLAIM);
    if old
        && let Ok(file) = File::open(path)
        && file.try_lock().is_ok()
    {
        let _ = std::fs::remove_file(path);
    }
}

fn holders_dir(store: &Store) -> PathBuf {
    store
        .path()
        .parent()
        .unwrap_or(Path::new("."))
        .join(HOLDERS_DIR)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::testing::*;
    use super::*;
    use crate::store::StartedRun;

    fn start(store: &Store, id: &str, holder: &str) {
        store
            .start_run(&StartedRun {
                probe: "p".into(),
                correlation_id: id.into(),
                instance: "i".into(),
                holder: holder.into(),
                started_at: t(0),
                threshold: Duration::from_secs(5),
                timeout: Duration::from_secs(60),
            })
            .unwrap();
    }

    #[test]
    fn a_live_holder_is_left_alone_and_a_dead_one_recovered() {
        let (_dir, store) = store();
        let alive = Holder::claim(&store, "daemon").unwrap();
        assert!(alive.name().starts_with("daemon-"));
        start(&store, "mine", alive.name());
        // Dead: its lock file is there, but nobody holds the lock (as after kill -9).
        let dir = holders_dir(&store);
        std::fs::write(dir.join("daemon-1-dead.lock"), b"").unwrap();
        start(&store, "cut", "daemon-1-dead");
        // Dead and already cleaned up after: no file at all.
        start(&store, "gone", "check-2-gone");

        let recovered = recover_crashed(&store).unwrap();
        assert_eq!(recovered.holders, ["check-2-gone", "daemon-1-dead"]);
        assert_eq!(recovered.runs, ["gone", "cut"]);
        assert_eq!(store.started_runs().unwrap(), ["mine"]);
        assert!(!dir.join("daemon-1-dead.lock").exists());
        assert!(dir.join(format!("{}.lock", alive.name())).exists());
        assert_eq!(recover_crashed(&store).unwrap(), Recovered::default());

        // Given up: its file goes, and with it the claim.
        let name = alive.name().to_string();
        drop(alive);
        assert!(!dir.join(format!("{name}.lock")).exists());
        assert_eq!(recover_crashed(&store).unwrap().runs, ["mine"]);
        assert!(store.started_runs().unwrap().is_empty());
    }

    #[test]
    fn a_dead_holder_without_runs_only_loses_its_file() {
        let (_dir, store) = store();
        let dir = holders_dir(&store);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("daemon-3-idle.lock"), b"").unwrap();
        std::fs::write(dir.join("daemon-4-new.tmp"), b"").unwrap();
        let recovered = recover_crashed(&store).unwrap();
        assert_eq!(recovered.holders, ["daemon-3-idle"]);
        assert!(recovered.runs.is_empty());
        assert!(!dir.join("daemon-3-idle.lock").exists());
        assert!(
            dir.join("daemon-4-new.tmp").exists(),
            "a claim in progress is never touched"
        );
    }
}
