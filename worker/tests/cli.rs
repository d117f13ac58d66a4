//! The `docket-worker` binary's command line: documented settings, refusals at
//! start-up. (Also makes `cargo test` build the binary the end-to-end tests start.)

use std::process::Command;

fn worker() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_docket-worker"));
    command.env_clear();
    command
}

#[test]
fn help_documents_every_setting() {
    let output = worker().arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for variable in [
        "DATABASE_URL",
        "DOCKET_LISTEN_DATABASE_URL",
        "DOCKET_ACTIONS",
        "DOCKET_WORKER_CONCURRENCY",
        "DOCKET_WORKER_PREFETCH",
        "DOCKET_WORKER_ID",
        "DOCKET_WORKER_LEASE",
        "DOCKET_WORKER_POLL_INTERVAL",
        "DOCKET_WORKER_RESCUE_INTERVAL",
        "DOCKET_WORKER_SHUTDOWN_GRACE",
        "DOCKET_WORKER_HEARTBEAT",
        "DOCKET_RETENTION_SUCCEEDED",
        "DOCKET_RETENTION_FAILED",
        "DOCKET_RETENTION_INTERVAL",
        "DOCKET_DB_TEST_BEFORE_ACQUIRE",
        "DOCKET_WORKER_DB_CONNECTIONS",
        "DOCKET_DB_STATEMENT_CACHE",
    ] {
        assert!(help.contains(variable), "--help does not mention {variable}");
    }
}

#[test]
fn refuses_out_of_range_and_malformed_settings() {
    for (variable, value, expected) in [
        ("DOCKET_WORKER_LEASE", "100ms", "at least 500ms"),
        ("DOCKET_WORKER_CONCURRENCY", "0", "not in 1..=10000"),
        ("DOCKET_WORKER_PREFETCH", "-1", "not in 0..=40000"),
        ("DOCKET_WORKER_PREFETCH", "some", "invalid digit"),
        ("DOCKET_WORKER_PREFETCH", "40001", "not in 0..=40000"),
        ("DOCKET_WORKER_POLL_INTERVAL", "often", "is not a duration"),
    ] {
        let output =
            worker().env("DATABASE_URL", "postgres://x@127.0.0.1:1/none").env(variable, value).output().unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{variable}={value}: {stderr}");
    }
}

#[test]
fn a_bad_catalog_is_named_at_start_up() {
    let dir = std::env::temp_dir().join(format!("docket-worker-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let catalog = dir.join("dupes.toml");
    std::fs::write(&catalog, "[[action]]\nname = \"a\"\nkind = \"noop\"\n[[action]]\nname = \"a\"\nkind = \"noop\"\n")
        .unwrap();
    let output =
        worker().env("DATABASE_URL", "postgres://x@127.0.0.1:1/none").env("DOCKET_ACTIONS", &catalog).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("dupes.toml") && stderr.contains("defined twice"), "{stderr}");
}
