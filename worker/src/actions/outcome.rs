//! The explicit outcome every action returns, and what a job's templates read beyond
//! its own row.

use std::time::Duration;

use docket::template::{EventContext, ParentContext};

/// How one run of an action ended.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionOutcome {
    /// Done; `result` is what the target said, for actions that capture it.
    Succeeded { result: Option<serde_json::Value> },
    /// Worth another attempt; `retry_after` is the target's own wish, if it said one.
    Retryable { error: String, retry_after: Option<Duration> },
    /// The target pushed back (429, or 503 with `Retry-After`): not a failure. The job
    /// waits as asked without spending an attempt, and so does its action.
    Throttled { error: String, retry_after: Option<Duration> },
    /// Not worth another attempt.
    Permanent { error: String },
    /// Ran longer than the action's timeout.
    TimedOut,
}

/// What a job's templates read beyond its own row: a follow-up's parent, and the
/// Workfront event that started its chain.
#[derive(Debug, Clone, Default)]
pub struct Lineage {
    pub parent: Option<ParentContext>,
    pub event: Option<EventContext>,
}
