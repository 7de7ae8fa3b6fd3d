//! The scheduler's one error type and its single mapping to `tonic::Status`.

use cairn_runtime::{
    db,
    status::{self, Violations, reason},
};
use tonic::{Code, Status};

/// Everything a scheduler operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input, field by field.
    #[error("invalid request")]
    Invalid(Violations),
    /// No such resource.
    #[error("{0} not found")]
    NotFound(String),
    /// A display name is taken.
    #[error("{0}")]
    AlreadyExists(String),
    /// Stale etag.
    #[error("stale etag for {0}")]
    Etag(String),
    /// The lease is no longer current.
    #[error("{0}")]
    LeaseLost(String),
    /// The operation does not apply in this state.
    #[error("{0}")]
    WrongState(String),
    /// A dependency (the catalog) is unreachable.
    #[error("{0} is unavailable")]
    Unavailable(String),
    /// A bounded wait ran out.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// Database failure.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A bug or corrupt record.
    #[error("{0}")]
    Internal(String),
    /// A ready-made status (from shared helpers or the catalog).
    #[error("{0}")]
    Status(Box<Status>),
}

impl From<Violations> for Error {
    fn from(v: Violations) -> Self {
        Error::Invalid(v)
    }
}

impl From<Status> for Error {
    fn from(s: Status) -> Self {
        Error::Status(Box::new(s))
    }
}

impl Error {
    /// One invalid field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        let mut v = Violations::default();
        v.add(field, description);
        Error::Invalid(v)
    }
}

/// Result of scheduler operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        match e {
            Error::Invalid(v) => v.into_status(),
            Error::NotFound(what) => status::not_found(what),
            Error::AlreadyExists(m) => status::already_exists(m),
            Error::Etag(what) => status::etag_mismatch(what),
            Error::LeaseLost(m) => status::with_reason(Code::Aborted, reason::LEASE_LOST, m),
            Error::WrongState(m) => status::with_reason(Code::FailedPrecondition, reason::WRONG_STATE, m),
            Error::Unavailable(what) => status::unavailable(what),
            Error::DeadlineExceeded(m) => status::with_reason(Code::DeadlineExceeded, reason::TIMEOUT, m),
            Error::Db(err) => db::to_status(&err),
            Error::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                status::internal()
            }
            Error::Status(s) => *s,
        }
    }
}
