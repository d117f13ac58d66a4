//! What Docket's end-to-end tests and its benchmark share: a fresh database per run
//! ([`db`]), the real `docket-api` and `docket-worker` binaries as child processes
//! ([`process`]), a PgBouncer of its own ([`pooler`]), and polling with generous
//! deadlines ([`wait`]). Kept apart from the tests crate so that `docket-bench` does
//! not build the api, the TLS and browser helpers, or the test targets.

pub mod db;
pub mod pooler;
pub mod process;
pub mod wait;

pub use db::TestDb;
pub use process::{Api, Worker};
pub use wait::wait_until;

/// Writes a catalog file into a fresh temporary directory.
pub fn catalog(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("actions.toml"), text).expect("write catalog");
    dir
}

/// The catalog path inside a directory made by [`catalog`].
pub fn catalog_path(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("actions.toml")
}

/// The API key the tests configure.
pub const API_KEY: &str = "test-key-0123456789abcdef";

/// The event token the tests configure (`DOCKET_EVENT_TOKENS`): Workfront's
/// deliveries carry it in `Authorization`.
pub const EVENT_TOKEN: &str = "event-token-for-tests-0123456789";

/// The admin token the tests configure, labelled `tester`.
pub const ADMIN_TOKEN: &str = "ops-token-for-tests-0123456789";
