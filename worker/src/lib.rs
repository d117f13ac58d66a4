//! The worker: claims due jobs from Postgres, runs their actions with timeouts, leases
//! and retries, and records every attempt.
//!
//! Invariant: a job's row changes only through fenced statements (owner + attempt),
//! so a worker that lost its lease can never overwrite another worker's result.

pub mod actions;
mod claim_loop;
mod completer;
pub mod config;
mod due;
mod execute;
mod health;
mod hold;
mod lease;
mod listener;
mod pace;
pub mod runner;
mod upkeep;

pub use runner::Worker;
