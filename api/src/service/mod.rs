//! What operators can do, whoever asks: list and inspect jobs, retry and cancel them
//! (one, a selection, every failed job of an action), pause and resume actions, close
//! circuits, read the figures and the audit trail, revoke dashboard sessions. The ops
//! JSON API ([`crate::ops`]'s `api`, `flow`, `sessions`) and the dashboard are two thin
//! adapters over these functions: typed inputs and outputs, no HTTP here. Each change
//! is recorded in `operator_actions` in the transaction that makes it.

mod error;
pub mod explain;
pub mod flow;
pub mod jobs;
pub mod sessions;
pub mod stats;

pub use error::OpsError;
