//! Docket's shared library: the domain types, the action catalog, the retry policy
//! and the database layer that both binaries (`docket-api`, `docket-worker`) use.
//!
//! Invariant: only [`db`] issues SQL.

pub mod catalog;
pub mod db;
pub mod domain;
pub mod duration;
pub mod events;
pub mod metrics;
pub mod otlp;
pub mod retry;
pub mod secret;
pub mod shutdown;
pub mod telemetry;
pub mod template;
pub mod trace;

/// The Postgres channel on which the api announces new jobs to workers.
pub const JOBS_CHANNEL: &str = "docket_jobs";

/// The Postgres channel on which the api asks workers to stop a running job; the
/// payload is the job id.
pub const CANCEL_CHANNEL: &str = "docket_cancel";

/// Docket's version, reported by `/serviceInfo` and in worker registrations.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
