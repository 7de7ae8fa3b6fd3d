//! The engine's one error type, and the classification of rustic_core errors into it.
//!
//! Callers decide retries from [`Error::is_retryable`]: backend (network, object store, REST)
//! failures are retryable; wrong passwords, missing repositories, invalid input, refused
//! restores and corrupt data are permanent; [`Error::Cancelled`] is neither a success nor a
//! failure and is reported as such.
//!
//! Every message that leaves the engine goes through [`Redactor`], which blanks the secrets of
//! the stores involved, so a message is safe to log and to show.

use rustic_core::RusticError;

/// Everything an engine operation can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The caller's [`crate::CancelToken`] was triggered; nothing was committed (no snapshot).
    #[error("operation cancelled")]
    Cancelled,
    /// The request or a connector's configuration is invalid (names the field or value).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The store's password opens no key of the repository.
    #[error("wrong repository password")]
    WrongPassword,
    /// The store holds no repository and `create_if_missing` is off.
    #[error("no repository at {0} (not initialised)")]
    RepositoryNotFound(String),
    /// A snapshot, path or other named thing does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A path that must be a directory is not one.
    #[error("not a directory: {0}")]
    NotADirectory(String),
    /// A path that must be a regular file is not one.
    #[error("not a regular file: {0}")]
    NotAFile(String),
    /// A file is larger than the caller allows.
    #[error("{path} is {size} bytes, over the limit of {max} bytes")]
    TooLarge {
        /// The file.
        path: String,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A restore would have written outside its destination, or over something unsafe.
    #[error("restore refused: {0}")]
    RestoreRefused(String),
    /// A command source exited unsuccessfully; no snapshot was written.
    #[error("command failed ({status}); stderr tail: {stderr_tail}")]
    CommandFailed {
        /// Exit status as text ("exit status: 3", "signal: 9", ...).
        status: String,
        /// The last bytes of the command's standard error.
        stderr_tail: String,
    },
    /// The storage backend failed (network, object store, REST server): worth retrying.
    #[error("storage backend error: {0}")]
    Backend(String),
    /// A local file system operation failed (source, destination, cache).
    #[error("I/O error: {0}")]
    Io(String),
    /// The repository is inconsistent, corrupt or unsupported.
    #[error("repository error: {0}")]
    Repository(String),
    /// A bug or an unexpected state inside the engine or rustic_core.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Whether running the same operation again later may succeed.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Backend(_) | Self::CommandFailed { .. })
    }

    /// Whether this is a cancellation rather than a failure.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Self::Cancelled)
    }
}

/// Removes known secrets from messages.
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

impl Redactor {
    pub(crate) fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| s.len() >= 3).collect();
        // Longest first, so a secret containing another is blanked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Self { secrets }
    }

    pub(crate) fn merge(&self, other: &Self) -> Self {
        Self::new(self.secrets.iter().chain(&other.secrets).cloned())
    }

    pub(crate) fn clean(&self, message: &str) -> String {
        let mut out = message.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }

    /// Classifies a rustic_core error and redacts its message.
    pub(crate) fn rustic(&self, err: &RusticError) -> Error {
        if err.is_incorrect_password() {
            return Error::WrongPassword;
        }
        let message = self.clean(&err.display_log());
        let message = message.strip_prefix("Error: ").unwrap_or(&message).to_string();
        match rustic_kind(err).as_str() {
            "Backend" => Error::Backend(message),
            "InputOutput" => Error::Io(message),
            "Key" | "Credentials" => Error::WrongPassword,
            "InvalidInput" | "MissingInput" | "Configuration" | "Unsupported" | "AppendOnly" => {
                Error::InvalidInput(message)
            }
            "Cryptography" | "Verification" | "Repository" => Error::Repository(message),
            _ => Error::Internal(message),
        }
    }

    pub(crate) fn io(&self, context: &str, err: &std::io::Error) -> Error {
        Error::Io(self.clean(&format!("{context}: {err}")))
    }
}

/// rustic_core keeps the kind private; its `Debug` output starts with it.
fn rustic_kind(err: &RusticError) -> String {
    let debug = format!("{err:?}");
    debug
        .split_once("kind: ")
        .map(|(_, rest)| rest.chars().take_while(char::is_ascii_alphanumeric).collect::<String>())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustic_core::ErrorKind;

    #[test]
    fn classifies_rustic_kinds() {
        let r = Redactor::default();
        let backend = RusticError::new(ErrorKind::Backend, "connection reset");
        assert!(matches!(r.rustic(&backend), Error::Backend(_)));
        assert!(r.rustic(&backend).is_retryable());
        let input = RusticError::new(ErrorKind::InvalidInput, "bad");
        assert!(!r.rustic(&input).is_retryable());
        let key = RusticError::new(ErrorKind::Key, "no key");
        assert_eq!(r.rustic(&key), Error::WrongPassword);
    }

    #[test]
    fn redacts_secrets() {
        let r = Redactor::new(["hunter22".to_string(), "AKIASECRET".to_string()]);
        let err = RusticError::new(ErrorKind::Backend, "failed with key AKIASECRET/hunter22");
        let text = r.rustic(&err).to_string();
        assert!(!text.contains("hunter22") && !text.contains("AKIASECRET"), "{text}");
    }

    #[test]
    fn cancelled_is_not_retryable() {
        assert!(!Error::Cancelled.is_retryable());
        assert!(Error::Cancelled.is_cancelled());
    }
}
