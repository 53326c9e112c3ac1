//! The shape of the source, held by a test: one folder per provider, one
//! registry, and configuration loading that the providers do not depend on.
//!
//! - No file under `src/` names a provider outside that provider's folder
//!   (`src/providers/<name>/`) and the registry (`src/providers/mod.rs`):
//!   adding a provider is its folder plus its lines in the registry.
//! - No file under `src/providers/` imports `crate::config`, which imports
//!   the registry: no cycle between the two.
//! - The registry dispatches on kinds with exhaustive matches: no `_ =>`.

use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The providers with a name of their own: every folder under
/// `src/providers/` but the generic kinds (`http` is your own API, `mock`
/// the bundled carrier), whose names are ordinary words.
fn named_providers() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(Path::new(SRC).join("providers"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|n| n != "http" && n != "mock")
        .collect();
    names.sort();
    names
}

#[test]
fn no_file_names_a_provider_outside_its_folder_and_the_registry() {
    let providers = named_providers();
    assert!(
        providers.len() >= 2,
        "expected provider folders under src/providers, found {providers:?}"
    );
    let registry = Path::new(SRC).join("providers").join("mod.rs");
    let mut files = Vec::new();
    rust_files(Path::new(SRC), &mut files);
    let mut found = Vec::new();
    for file in &files {
        if *file == registry {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap().to_ascii_lowercase();
        for name in &providers {
            let own = Path::new(SRC).join("providers").join(name);
            if file.starts_with(&own) {
                continue;
            }
            for (n, line) in text.lines().enumerate() {
                if line.contains(name.as_str()) {
                    found.push(format!(
                        "{}:{}: names `{name}`: {}",
                        file.strip_prefix(SRC).unwrap().display(),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "a provider's knowledge belongs in its folder (or one line of the registry):\n{}",
        found.join("\n")
    );
}

#[test]
fn providers_do_not_import_the_config_loader() {
    let mut files = Vec::new();
    rust_files(&Path::new(SRC).join("providers"), &mut files);
    assert!(!files.is_empty());
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if line.contains("crate::config") || line.contains("super::super::config") {
                found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "config depends on the providers' registry, so providers must not depend on config:\n{}",
        found.join("\n")
    );
    // And the other way round it does: the loader dispatches through the registry.
    let load = std::fs::read_to_string(Path::new(SRC).join("config").join("load.rs")).unwrap();
    assert!(load.contains("crate::providers"));
}

#[test]
fn the_registry_matches_exhaustively() {
    let registry =
        std::fs::read_to_string(Path::new(SRC).join("providers").join("mod.rs")).unwrap();
    let fallbacks: Vec<&str> = registry
        .lines()
        .filter(|l| l.trim_start().starts_with("_ =>"))
        .collect();
    assert!(
        fallbacks.is_empty(),
        "a `_ =>` arm would take a new kind for another: {fallbacks:?}"
    );
}
