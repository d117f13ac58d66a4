//! The one error type of the operators' operations: what went wrong, in words an
//! operator can act on. The adapters turn it into a JSON error ([`crate::ops::error`])
//! or a page ([`crate::ops::ui`]).

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("missing or wrong admin token")]
    Unauthorized,
    #[error("{0}")]
    BadRequest(String),
    #[error("no job with id {0}")]
    NotFound(String),
    /// Something other than a job is missing; the sentence says what.
    #[error("{0}")]
    Missing(String),
    #[error("no action named {0:?} in the catalog")]
    UnknownAction(String),
    #[error("{0}")]
    Conflict(String),
    #[error("too many failed sign-ins from this address; try again in {} s", .0.as_secs().max(1))]
    TooManyFailures(std::time::Duration),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}
