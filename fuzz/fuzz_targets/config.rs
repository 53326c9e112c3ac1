//! The config loader: a main file and one probe file, through the real
//! loader (TOML, `${VAR}` expansion, defaults, validation). Any text loads or
//! is refused with errors that name one of the two files and a line in it.
//!
//! Input: the main file, then optionally `\n---probe---\n` and the probe file.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sms_canary::config::{Config, ConfigError};

const SEPARATOR: &[u8] = b"\n---probe---\n";

struct Files {
    _dir: tempfile::TempDir,
    main: PathBuf,
    probe: PathBuf,
}

fn files() -> &'static Files {
    static FILES: OnceLock<Files> = OnceLock::new();
    FILES.get_or_init(|| {
        // Every input is written to disk: on tmpfs that costs no disk journal.
        let dir = tempfile::Builder::new()
            .prefix("sms-canary-fuzz")
            .tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .expect("temp dir");
        std::fs::create_dir(dir.path().join("probes")).expect("probes dir");
        Files {
            main: dir.path().join("sms-canary.toml"),
            probe: dir.path().join("probes").join("fuzz.toml"),
            _dir: dir,
        }
    })
}

fn env(name: &str) -> Option<String> {
    match name {
        "TOKEN" => Some("s3cret-token".into()),
        "NUMBER" => Some("+15005550006".into()),
        "URL" => Some("http://127.0.0.1:9/hook".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

/// Probe globs are the user's own choice of files to read: keep them inside
/// the scratch directory, so that the fuzzer does not walk the whole disk.
fn globs_stay_local(main: &str) -> bool {
    let Ok(table) = main.parse::<toml::Table>() else {
        return true;
    };
    let Some(probes) = table
        .get("canary")
        .and_then(|c| c.get("probes"))
        .and_then(|p| p.as_array())
    else {
        return true;
    };
    probes
        .iter()
        .filter_map(|p| p.as_str())
        .all(|p| !p.starts_with('/') && !p.contains("..") && !p.contains("**") && !p.contains('$'))
}

fuzz_target!(|data: &[u8]| {
    let (main, probe) = match data.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
        Some(at) => (&data[..at], Some(&data[at + SEPARATOR.len()..])),
        None => (data, None),
    };
    if !globs_stay_local(&String::from_utf8_lossy(main)) {
        return;
    }
    let files = files();
    std::fs::write(&files.main, main).expect("write main file");
    match probe {
        Some(probe) => std::fs::write(&files.probe, probe).expect("write probe file"),
        None => {
            let _ = std::fs::remove_file(&files.probe);
        }
    }

    let Err(errors) = Config::load_with_env(&files.main, &env) else {
        return;
    };
    assert!(!errors.0.is_empty(), "a refused config says why");
    let _ = errors.to_string();
    for error in &errors.0 {
        if let ConfigError::At {
            file, line, column, ..
        } = error
        {
            let text = if *file == files.main {
                main
            } else {
                assert_eq!(*file, files.probe, "an error names one of the files");
                probe.unwrap_or_default()
            };
            let lines = text.split(|b| *b == b'\n').count();
            assert!(
                (1..=lines).contains(line) && *column >= 1,
                "{error}: position outside the file ({lines} lines)"
            );
        }
    }
});
