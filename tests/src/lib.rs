//! Helpers for Docket's end-to-end tests: a fresh database per test, the real
//! binaries as child processes, a scriptable HTTP target (and an HTTPS one), a TCP proxy that can cut
//! the database off, and polling with generous deadlines.

pub mod cluster;
pub mod collector;
pub mod deliveries;
pub mod inprocess;
pub mod proxy;
pub mod subscriptions;
pub mod target;
pub mod tls;
pub mod traced;
pub mod webdriver;
pub mod workfront;

// The helpers the benchmark shares live in docket-harness; the tests use them from here.
pub use docket_harness::{catalog, catalog_path, db, pooler, process, wait, ADMIN_TOKEN, API_KEY, EVENT_TOKEN};
pub use docket_harness::{wait_until, Api, TestDb, Worker};
pub use target::{Reply, Target};
