//! Helpers for Docket's end-to-end tests: a fresh database per test, the real
//! binaries as child processes, a scriptable HTTP target (and an HTTPS one), a TCP proxy that can cut
//! the database off, and polling with generous deadlines.

pub mod cluster;
pub mod db;
pub mod inprocess;
pub mod pooler;
pub mod process;
pub mod proxy;
pub mod target;
pub mod tls;
pub mod wait;
pub mod webdriver;
pub mod workfront;

pub use db::TestDb;
pub use process::{Api, Worker};
pub use target::{Reply, Target};
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
