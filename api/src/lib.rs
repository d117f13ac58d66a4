//! The api: answers Workfront's `/serviceInfo` and `/customAction`, storing each
//! custom action as a job row before it replies.
//!
//! Invariant: the api never runs an action; it only inserts jobs and wakes workers.

pub mod admin;
pub mod auth;
pub mod batches;
pub mod config;
pub mod error;
pub mod event_tokens;
pub mod event_writer;
pub mod inserter;
pub mod notifier;
pub mod ops;
pub mod query;
pub mod rate_limit;
pub mod routes;
pub mod sampler;
pub mod schema;
pub mod server;
pub mod service;
pub mod startup;
pub mod state;
pub mod subscriptions;
pub mod throttle;
