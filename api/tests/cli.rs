//! The `docket-api` binary's command line: documented settings, refusals at start-up.
//! (Also makes `cargo test` build the binary that the end-to-end tests start.)

use std::process::Command;

fn api() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_docket-api"));
    command.env_clear();
    command
}

#[test]
fn help_documents_every_setting() {
    let output = api().arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for variable in [
        "DATABASE_URL",
        "DOCKET_API_ADDR",
        "DOCKET_ACTIONS",
        "DOCKET_API_KEYS",
        "DOCKET_INSECURE_DISABLE_AUTH",
        "DOCKET_API_DB_CONNECTIONS",
        "DOCKET_API_DB_ACQUIRE_TIMEOUT",
        "DOCKET_DB_STATEMENT_CACHE",
        "DOCKET_API_REQUEST_TIMEOUT",
        "DOCKET_API_MAX_CONNECTIONS",
        "DOCKET_API_RATE_LIMIT",
        "DOCKET_API_HEADER_TIMEOUT",
        "DOCKET_API_INSERT_BATCH",
        "DOCKET_ADMIN_TOKEN",
        "DOCKET_DB_TEST_BEFORE_ACQUIRE",
    ] {
        assert!(help.contains(variable), "--help does not mention {variable}");
    }
}

#[test]
fn help_never_shows_secret_values() {
    let output = api()
        .arg("--help")
        .env("DOCKET_API_KEYS", "super-secret-key-value-123")
        .env("DATABASE_URL", "postgres://user:db-password-456@h/db")
        .output()
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(!help.contains("super-secret-key-value-123") && !help.contains("db-password-456"));
}

#[test]
fn refuses_to_start_without_api_keys() {
    let dir = std::env::temp_dir().join(format!("docket-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let catalog = dir.join("actions.toml");
    std::fs::write(&catalog, "[[action]]\nname = \"a\"\nkind = \"noop\"\n").unwrap();
    let output = api()
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")
        .env("DOCKET_ACTIONS", &catalog)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no API key configured") && stderr.contains("DOCKET_INSECURE_DISABLE_AUTH"), "{stderr}");
}

#[test]
fn a_bad_catalog_is_named_at_start_up() {
    let dir = std::env::temp_dir().join(format!("docket-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let catalog = dir.join("broken.toml");
    std::fs::write(&catalog, "[[action]]\nname = \"archive\"\nkind = \"http\"\n").unwrap();
    let output = api()
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")
        .env("DOCKET_ACTIONS", &catalog)
        .env("DOCKET_API_KEYS", "0123456789abcdef0123")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("broken.toml") && stderr.contains("\"archive\"") && stderr.contains("`url`"), "{stderr}");
}
