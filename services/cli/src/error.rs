//! Errors of the CLI and how they reach the user: one line on stderr naming what is wrong
//! (the server's field message), every field violation below it, and the exit code.

use tonic::Code;
use tonic_types::StatusExt as _;

/// A failed command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The server said no.
    #[error("{message}")]
    Status {
        /// The status.
        status: Box<tonic::Status>,
        /// Which endpoint, for unreachable servers.
        endpoint: String,
        /// The message to show.
        message: String,
    },
    /// Bad command-line input the parser could not catch (exit 2).
    #[error("{0}")]
    Usage(String),
    /// Anything else (exit 1).
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    /// A status from a call to `endpoint`.
    pub fn status(status: tonic::Status, endpoint: &str) -> CliError {
        let message = match status.code() {
            Code::Unavailable | Code::Unknown if unreachable(&status) => {
                format!(
                    "cannot reach {endpoint} ({}); is Cairn running? (see --catalog-url / --scheduler-url)",
                    status.message()
                )
            }
            _ => status.message().to_owned(),
        };
        CliError::Status { status: Box::new(status), endpoint: endpoint.to_owned(), message }
    }

    /// Prints the error and returns the exit code.
    pub fn report(&self) -> i32 {
        eprintln!("error: {self}");
        match self {
            CliError::Status { status, .. } => {
                if let Some(bad) = status.get_details_bad_request()
                    && bad.field_violations.len() > 1
                {
                    for v in &bad.field_violations {
                        eprintln!("  - {}: {}", v.field, v.description);
                    }
                }
                exit_code(status)
            }
            CliError::Usage(_) => 2,
            CliError::Failed(_) => 1,
        }
    }
}

/// The documented exit code of a refusal: 2 bad input, 3 not found, 4 not authenticated or
/// not allowed, 5 unreachable, 1 anything else.
fn exit_code(status: &tonic::Status) -> i32 {
    match status.code() {
        Code::InvalidArgument | Code::OutOfRange => 2,
        Code::NotFound => 3,
        Code::PermissionDenied | Code::Unauthenticated => 4,
        Code::Unavailable => 5,
        Code::Unknown if unreachable(status) => 5,
        _ => 1,
    }
}

fn unreachable(status: &tonic::Status) -> bool {
    status.message().contains("connect") || status.message().contains("transport")
}

/// Result of commands: the exit code.
pub type Result<T = i32> = std::result::Result<T, CliError>;
