//! The catalog's one error type and its single mapping to `tonic::Status`. Unexpected errors
//! are logged here, once, and reach the client as a generic INTERNAL.

use cairn_runtime::{
    db,
    status::{self, Violations, reason},
};
use tonic::{Code, Status};

use crate::secrets::SecretError;

/// Everything a catalog operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input, field by field.
    #[error("invalid request")]
    Invalid(Violations),
    /// No such resource.
    #[error("{0} not found")]
    NotFound(String),
    /// A display name or request id is taken.
    #[error("{0}")]
    AlreadyExists(String),
    /// Stale etag.
    #[error("stale etag for {0}")]
    Etag(String),
    /// Still used by other resources.
    #[error("{0}")]
    InUse(String),
    /// The operation does not apply now (the last platform admin, a non-session logout).
    #[error("{0}")]
    FailedPrecondition(String),
    /// A dependency is down.
    #[error("{0} is unavailable")]
    Unavailable(String),
    /// A bounded wait ran out.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// Database failure.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// Sealed secrets could not be opened.
    #[error("secrets: {0}")]
    Secrets(#[from] SecretError),
    /// A bug or corrupt record.
    #[error("{0}")]
    Internal(String),
    /// A ready-made status from a shared helper (page tokens, page sizes).
    #[error("{0}")]
    Status(Box<Status>),
}

impl From<Status> for Error {
    fn from(s: Status) -> Self {
        Error::Status(Box::new(s))
    }
}

impl From<Violations> for Error {
    fn from(v: Violations) -> Self {
        Error::Invalid(v)
    }
}

impl Error {
    /// INVALID_ARGUMENT on one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Error {
        let mut v = Violations::default();
        v.add(field, message);
        Error::Invalid(v)
    }
}

/// Result of catalog operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        match e {
            Error::Invalid(v) => v.into_status(),
            Error::NotFound(what) => status::not_found(what),
            Error::AlreadyExists(m) => status::already_exists(m),
            Error::Etag(what) => status::etag_mismatch(what),
            Error::InUse(m) => status::with_reason(Code::FailedPrecondition, reason::IN_USE, m),
            Error::FailedPrecondition(m) => {
                status::with_reason(Code::FailedPrecondition, reason::WRONG_STATE, m)
            }
            Error::Unavailable(what) => status::unavailable(what),
            Error::DeadlineExceeded(m) => status::with_reason(Code::DeadlineExceeded, reason::TIMEOUT, m),
            Error::Db(err) => db::to_status(&err),
            Error::Secrets(err) => {
                tracing::error!(error = %err, "secrets could not be opened");
                status::internal()
            }
            Error::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                status::internal()
            }
            Error::Status(s) => *s,
        }
    }
}
