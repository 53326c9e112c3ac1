//! Finding the probe files the `[canary] probes` globs name.
//!
//! A glob library follows symbolic links as it descends, so `probes/**` over
//! two links that point at each other never ends (and holds every path it
//! built). This walk follows links too, but remembers each directory it is
//! in by device and inode: a link back to one of them is reported as a loop
//! and not entered. It also bounds what one config may make it read: the
//! number of entries looked at, of probe files, and their total size. Only
//! regular files are probe files: a FIFO or a device would block or never end.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use glob::{MatchOptions, Pattern};

/// Probe files one config may have: far above the thousands one daemon runs.
pub const MAX_FILES: usize = 100_000;
/// Largest probe file read: a probe is a dozen lines.
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// All probe files together.
pub const MAX_TOTAL_BYTES: u64 = 256 << 20;
/// Directory entries a walk may look at before it gives up.
const MAX_ENTRIES: usize = 1_000_000;

/// Why a walk reported a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkError {
    pub path: PathBuf,
    pub message: String,
}

/// What the globs found: the probe files, and what stood in the way.
#[derive(Debug, Default)]
pub struct Found {
    pub files: Vec<PathBuf>,
    pub errors: Vec<WalkError>,
    /// Bytes of the files found, by their metadata.
    pub bytes: u64,
    /// [`MAX_FILES`] was reached: further matches are not loaded.
    capped: bool,
}

/// How `*` and `?` match: never across a `/`, like a shell (`**` does).
const OPTIONS: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// The files `pattern` matches, added to `found`. `Err` for a pattern that
/// is not a glob.
pub fn find(pattern: &str, found: &mut Found) -> Result<(), glob::PatternError> {
    let compiled = Pattern::new(pattern)?;
    let path = Path::new(pattern);
    let mut root = PathBuf::new();
    let mut rest: Vec<String> = Vec::new();
    for component in path.components() {
        let text = component.as_os_str().to_string_lossy();
        let literal = rest.is_empty() && !text.contains(['*', '?', '[']);
        if literal {
            root.push(component);
        } else {
            rest.push(text.into_owned());
        }
    }
    if rest.is_empty() {
        // No wildcard: the pattern names one file (or nothing).
        if std::fs::metadata(&root).is_ok() {
            add_file(&root, found);
        }
        return Ok(());
    }
    let depth = if rest.iter().any(|c| c.contains("**")) {
        None
    } else {
        Some(rest.len())
    };
    let mut walk = Walk {
        pattern: compiled,
        found,
        entries: 0,
        ancestors: Vec::new(),
        visited: HashSet::new(),
    };
    let start = if root.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        root.clone()
    };
    let Ok(meta) = std::fs::metadata(&start) else {
        return Ok(());
    };
    if meta.is_dir() {
        walk.dir(&start, &root, &meta, depth);
    }
    Ok(())
}

struct Walk<'a> {
    pattern: Pattern,
    found: &'a mut Found,
    entries: usize,
    /// The directories being walked, outermost first: (device, inode, path).
    ancestors: Vec<(u64, u64, PathBuf)>,
    /// Every directory entered, so one reached twice is walked once.
    visited: HashSet<(u64, u64)>,
}

impl Walk<'_> {
    /// Walks directory `dir` (shown as `shown`: the pattern's own spelling,
    /// `""` for the current directory). `depth` is how many more levels the
    /// pattern reaches down, `None` under a `**`.
    fn dir(&mut self, dir: &Path, shown: &Path, meta: &std::fs::Metadata, depth: Option<usize>) {
        let id = (meta.dev(), meta.ino());
        if let Some((_, _, ancestor)) = self
            .ancestors
            .iter()
            .find(|(dev, ino, _)| (*dev, *ino) == id)
        {
            let message = format!(
                "a symlink loop: it leads back to {}, which the probes glob is already inside; not followed",
                display(ancestor)
            );
            self.error(shown, message);
            return;
        }
        if depth == Some(0) || !self.visited.insert(id) {
            return;
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                self.error(shown, format!("cannot read: {e}"));
                return;
            }
        };
        let mut names: Vec<std::ffi::OsString> = Vec::new();
        for entry in entries {
            self.entries += 1;
            if self.entries > MAX_ENTRIES {
                let message = format!(
                    "the probes glob looked at {MAX_ENTRIES} directory entries without finishing; narrow it"
                );
                self.error(shown, message);
                return;
            }
            match entry {
                Ok(entry) => names.push(entry.file_name()),
                Err(e) => self.error(shown, format!("cannot read: {e}")),
            }
        }
        names.sort();
        self.ancestors.push((id.0, id.1, shown.to_path_buf()));
        for name in names {
            if self.stopped() {
                break;
            }
            let path = dir.join(&name);
            let shown = shown.join(&name);
            let Ok(meta) = std::fs::metadata(&path) else {
                // A dangling link, or gone since the listing: nothing to load.
                continue;
            };
            if meta.is_dir() {
                self.dir(&path, &shown, &meta, depth.map(|d| d - 1));
            } else if depth.is_none_or(|d| d == 1)
                && self.pattern.matches_path_with(&shown, OPTIONS)
            {
                add_file(&shown, self.found);
            }
        }
        self.ancestors.pop();
    }

    fn stopped(&self) -> bool {
        self.entries > MAX_ENTRIES || self.found.capped
    }

    fn error(&mut self, path: &Path, message: String) {
        self.found.errors.push(WalkError {
            path: path.to_path_buf(),
            message,
        });
    }
}

/// Adds one matched path, if it is a regular file within the bounds.
fn add_file(path: &Path, found: &mut Found) {
    let refuse = |found: &mut Found, message: String| {
        found.errors.push(WalkError {
            path: path.to_path_buf(),
            message,
        })
    };
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) => return refuse(found, format!("cannot read: {e}")),
    };
    if !meta.is_file() {
        if !meta.is_dir() {
            refuse(
                found,
                "not a regular file (a FIFO, socket or device cannot be a probe file)".into(),
            );
        }
        return;
    }
    if found.files.len() >= MAX_FILES {
        if !found.capped {
            found.capped = true;
            refuse(
                found,
                format!("more than {MAX_FILES} probe files: this one and the rest are not loaded"),
            );
        }
        return;
    }
    if meta.len() > MAX_FILE_BYTES {
        return refuse(
            found,
            format!(
                "{} bytes: a probe file may have at most {MAX_FILE_BYTES}",
                meta.len()
            ),
        );
    }
    found.bytes += meta.len();
    if found.bytes > MAX_TOTAL_BYTES {
        return refuse(
            found,
            format!("the probe files come to more than {MAX_TOTAL_BYTES} bytes: not loaded"),
        );
    }
    found.files.push(path.to_path_buf());
}

fn display(path: &Path) -> String {
    if path.as_os_str().is_empty() || path.components().all(|c| c == Component::CurDir) {
        ".".to_string()
    } else {
        path.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(found: &Found, base: &Path) -> Vec<String> {
        found
            .files
            .iter()
            .map(|f| f.strip_prefix(base).unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn matches_like_a_shell_glob() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        std::fs::create_dir_all(base.join("probes/eu/deep")).unwrap();
        for f in [
            "probes/a.toml",
            "probes/b.txt",
            "probes/eu/c.toml",
            "probes/eu/deep/d.toml",
        ] {
            std::fs::write(base.join(f), "x").unwrap();
        }
        let mut found = Found::default();
        find(&format!("{}/probes/*.toml", base.display()), &mut found).unwrap();
        assert_eq!(names(&found, base), ["probes/a.toml"]);
        let mut found = Found::default();
        find(&format!("{}/probes/**/*.toml", base.display()), &mut found).unwrap();
        assert_eq!(
            names(&found, base),
            ["probes/a.toml", "probes/eu/c.toml", "probes/eu/deep/d.toml"]
        );
        let mut found = Found::default();
        find(&format!("{}/probes/*/*.toml", base.display()), &mut found).unwrap();
        assert_eq!(names(&found, base), ["probes/eu/c.toml"]);
        let mut found = Found::default();
        find(&format!("{}/probes/a.toml", base.display()), &mut found).unwrap();
        assert_eq!(names(&found, base), ["probes/a.toml"]);
        assert!(found.errors.is_empty(), "{:?}", found.errors);
    }

    #[test]
    fn a_symlink_loop_is_reported_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        std::fs::create_dir_all(base.join("probes/a")).unwrap();
        std::fs::create_dir_all(base.join("probes/b")).unwrap();
        std::fs::write(base.join("probes/a/p.toml"), "x").unwrap();
        std::os::unix::fs::symlink("../b", base.join("probes/a/to-b")).unwrap();
        std::os::unix::fs::symlink("../a", base.join("probes/b/to-a")).unwrap();
        let mut found = Found::default();
        find(&format!("{}/probes/**/*.toml", base.display()), &mut found).unwrap();
        assert!(names(&found, base).contains(&"probes/a/p.toml".to_string()));
        assert!(!found.errors.is_empty());
        assert!(
            found
                .errors
                .iter()
                .all(|e| e.message.contains("symlink loop")),
            "{:?}",
            found.errors
        );
    }

    #[test]
    fn only_regular_files_are_probe_files() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("p.toml");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let mut found = Found::default();
        find(&format!("{}/*.toml", dir.path().display()), &mut found).unwrap();
        assert!(found.files.is_empty());
        assert!(found.errors[0].message.contains("not a regular file"));
    }

    #[test]
    fn a_walk_reads_bounded_bytes_and_files() {
        // Sparse files: their size is what counts, no disk is used.
        let dir = tempfile::tempdir().unwrap();
        let sized = |name: &str, len: u64| {
            let f = std::fs::File::create(dir.path().join(name)).unwrap();
            f.set_len(len).unwrap();
        };
        sized("big.toml", MAX_FILE_BYTES + 1);
        let count = MAX_TOTAL_BYTES / MAX_FILE_BYTES;
        for i in 0..=count {
            sized(&format!("p{i:04}.toml"), MAX_FILE_BYTES);
        }
        let mut found = Found::default();
        find(&format!("{}/*.toml", dir.path().display()), &mut found).unwrap();
        let said = |needle: &str| {
            found
                .errors
                .iter()
                .filter(|e| e.message.contains(needle))
                .map(|e| e.path.file_name().unwrap().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            said("a probe file may have at most"),
            ["big.toml"],
            "{:?}",
            found.errors
        );
        // Up to the total, then the one over it is refused, naming itself.
        assert_eq!(found.files.len() as u64, count);
        assert_eq!(
            said("more than 268435456 bytes").len(),
            1,
            "{:?}",
            found.errors
        );
        assert!(found.bytes > MAX_TOTAL_BYTES);

        // At MAX_FILES, the next match is refused once, and the rest quietly.
        let mut found = Found {
            files: vec![PathBuf::from("x"); MAX_FILES],
            ..Found::default()
        };
        let small = tempfile::tempdir().unwrap();
        for name in ["a.toml", "b.toml"] {
            std::fs::write(small.path().join(name), "x").unwrap();
        }
        find(&format!("{}/*.toml", small.path().display()), &mut found).unwrap();
        assert_eq!(found.files.len(), MAX_FILES);
        assert_eq!(found.errors.len(), 1, "{:?}", found.errors);
        assert!(
            found.errors[0]
                .message
                .contains("more than 100000 probe files")
        );
    }
}
