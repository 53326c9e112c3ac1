//! `[canary] store = "postgres://..."` through the real binary: the DSN's
//! password comes from a variable and never shows in what `validate`
//! prints, whatever it says about the DSN.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_sms-canary");

const SECRET: &str = "hunter2-secret";

fn validate(store: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[canary]\nlisten = \"127.0.0.1:0\"\ninstance = \"t\"\nstore = \"{store}\"\n\n\
             [gateways.sandbox]\nkind = \"mock\"\n\n[receivers.inbox]\nkind = \"webhook\"\ngateway = \"sandbox\"\n"
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["validate", "--config"])
        .arg(&config)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn the_store_password_comes_from_a_variable_and_is_never_printed() {
    // Unset, the variable is named.
    let (code, text) = validate("postgres://canary:${PG_PASSWORD}@db.internal/canary", &[]);
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("PG_PASSWORD"), "{text}");
    // Set, it is expanded and never shown, whatever is said about the DSN.
    for store in [
        "postgres://canary:${PG_PASSWORD}@db.internal/canary",
        "postgres://canary:${PG_PASSWORD}@db.internal/canary?sslmode=verify-full",
        "postgres://canary:${PG_PASSWORD}@db.internal/canary?nonsense=1",
        "postgres://canary:${PG_PASSWORD}@/canary",
        "mysql://canary:${PG_PASSWORD}@db.internal/canary",
    ] {
        let (code, text) = validate(store, &[("PG_PASSWORD", SECRET)]);
        assert_eq!(code, Some(3), "{store}: {text}");
        assert!(!text.contains(SECRET), "{store}: {text}");
        assert!(text.contains("config.toml:4:9"), "{store}: {text}");
    }
    let (_, text) = validate(
        "postgres://canary:${PG_PASSWORD}@db.internal/canary",
        &[("PG_PASSWORD", SECRET)],
    );
    assert!(
        text.contains("postgres://canary@db.internal/canary"),
        "{text}"
    );
}
