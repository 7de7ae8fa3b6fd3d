//! Building `tonic::Status` the same way everywhere: a small code set, an `ErrorInfo` reason
//! (domain [`DOMAIN`]) on every error, `BadRequest` field violations for bad input. The
//! message always names the field first (`recurrence.calendar: "25:00": hour 25 out of range
//! 0..23`), so a human reading only the message knows what to fix. Never put SQL, host names
//! or secrets in a message.
//!
//! For programs, `ErrorInfo.metadata` names what the error is about: `field` (the first bad
//! field of INVALID_ARGUMENT), `resource` (what was not found, or is stale, or still in use),
//! `dependency` (what is unavailable). UNAVAILABLE and RESOURCE_EXHAUSTED carry a `RetryInfo`
//! with the delay after which a retry makes sense.

use std::collections::HashMap;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt as _};

/// ErrorInfo domain of every Cairn error.
pub const DOMAIN: &str = "cairn.dev";

/// ErrorInfo reasons used across services.
pub mod reason {
    /// A request field is invalid (with BadRequest details).
    pub const INVALID_FIELD: &str = "INVALID_FIELD";
    /// The resource does not exist.
    pub const NOT_FOUND: &str = "NOT_FOUND";
    /// The display name (or request id) is taken.
    pub const ALREADY_EXISTS: &str = "ALREADY_EXISTS";
    /// The etag sent does not match.
    pub const ETAG_MISMATCH: &str = "ETAG_MISMATCH";
    /// The resource is still used by others.
    pub const IN_USE: &str = "IN_USE";
    /// The operation does not apply in the resource's state.
    pub const WRONG_STATE: &str = "WRONG_STATE";
    /// The lease is no longer current (expired, re-leased, completed).
    pub const LEASE_LOST: &str = "LEASE_LOST";
    /// The asker of a snapshot query gave up: stop answering it.
    pub const QUERY_GONE: &str = "QUERY_GONE";
    /// A dependency (database, another service) is unreachable.
    pub const UNAVAILABLE: &str = "UNAVAILABLE";
    /// A wait ran out.
    pub const TIMEOUT: &str = "TIMEOUT";
    /// Missing or wrong cluster token.
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    /// Something unexpected; details are in the server log.
    pub const INTERNAL: &str = "INTERNAL";
}

/// How long a client should wait before retrying an UNAVAILABLE or RESOURCE_EXHAUSTED call.
pub const RETRY_DELAY: Duration = Duration::from_secs(1);

/// A status with an ErrorInfo reason.
pub fn with_reason(code: Code, reason: &str, message: impl Into<String>) -> Status {
    with_metadata(code, reason, message, &[])
}

/// A status with an ErrorInfo reason and metadata (`resource`, `field`, `dependency`); the
/// codes worth retrying get a RetryInfo.
pub fn with_metadata(
    code: Code,
    reason: &str,
    message: impl Into<String>,
    metadata: &[(&str, String)],
) -> Status {
    let mut details = ErrorDetails::new();
    let metadata: HashMap<String, String> =
        metadata.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
    details.set_error_info(reason, DOMAIN, metadata);
    if matches!(code, Code::Unavailable | Code::ResourceExhausted) {
        details.set_retry_info(Some(RETRY_DELAY));
    }
    Status::with_error_details(code, message, details)
}

/// INVALID_ARGUMENT for one field.
pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Status {
    let mut v = Violations::default();
    v.add(field, description);
    v.into_status()
}

/// ALREADY_EXISTS; a message of the form `field: why` names the field in the metadata.
pub fn already_exists(message: impl Into<String>) -> Status {
    let message = message.into();
    let field = message
        .split_once(": ")
        .map(|(f, _)| f)
        .filter(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_alphanumeric() || "._[]".contains(c)))
        .map(|f| vec![("field", f.to_owned())])
        .unwrap_or_default();
    with_metadata(Code::AlreadyExists, reason::ALREADY_EXISTS, message, &field)
}

/// NOT_FOUND naming what was looked for.
pub fn not_found(what: impl std::fmt::Display) -> Status {
    let what = what.to_string();
    with_metadata(Code::NotFound, reason::NOT_FOUND, format!("{what} not found"), &[("resource", what)])
}

/// ABORTED because the etag is stale.
pub fn etag_mismatch(what: impl std::fmt::Display) -> Status {
    let what = what.to_string();
    with_metadata(
        Code::Aborted,
        reason::ETAG_MISMATCH,
        format!("etag: {what} was changed by someone else; get it again and retry"),
        &[("resource", what), ("field", "etag".into())],
    )
}

/// INTERNAL with a generic message; log the cause where it happened.
pub fn internal() -> Status {
    with_reason(Code::Internal, reason::INTERNAL, "internal error; see the server log")
}

/// UNAVAILABLE naming the dependency (with a RetryInfo).
pub fn unavailable(what: impl std::fmt::Display) -> Status {
    let what = what.to_string();
    with_metadata(
        Code::Unavailable,
        reason::UNAVAILABLE,
        format!("{what} is unavailable; retry later"),
        &[("dependency", what)],
    )
}

/// RESOURCE_EXHAUSTED naming the limit reached (with a RetryInfo).
pub fn exhausted(reason: &str, what: impl std::fmt::Display) -> Status {
    with_metadata(Code::ResourceExhausted, reason, format!("{what}; retry later"), &[])
}

/// The ErrorInfo reason of a status, if it carries one.
pub fn reason_of(status: &Status) -> Option<String> {
    status.get_details_error_info().map(|i| i.reason)
}

/// The fields named in a status's BadRequest details.
pub fn fields_of(status: &Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// Collects every field violation of a request, so one answer lists them all.
#[derive(Debug, Default, Clone)]
pub struct Violations {
    items: Vec<(String, String)>,
}

impl Violations {
    /// Records a bad field.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.items.push((field.into(), description.into()));
    }

    /// Records the violations of a nested message, prefixing their fields.
    pub fn extend_prefixed(&mut self, prefix: &str, other: Violations) {
        for (f, d) in other.items {
            self.items.push((format!("{prefix}.{f}"), d));
        }
    }

    /// True when nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The violations as (field, description).
    pub fn items(&self) -> &[(String, String)] {
        &self.items
    }

    /// `Ok(())` when empty, else the INVALID_ARGUMENT status.
    pub fn check(self) -> Result<(), Status> {
        if self.is_empty() { Ok(()) } else { Err(self.into_status()) }
    }

    /// INVALID_ARGUMENT whose message is the first violation (and a count of the others) and
    /// whose details list all of them.
    pub fn into_status(self) -> Status {
        let message = match self.items.as_slice() {
            [] => "invalid request".to_owned(),
            [(f, d)] => format!("{f}: {d}"),
            [(f, d), rest @ ..] => format!("{f}: {d} (and {} more invalid field(s))", rest.len()),
        };
        let mut details = ErrorDetails::new();
        let first: HashMap<String, String> =
            self.items.first().map(|(f, _)| ("field".to_owned(), f.clone())).into_iter().collect();
        details.set_error_info(reason::INVALID_FIELD, DOMAIN, first);
        details.set_bad_request(
            self.items.into_iter().map(|(f, d)| FieldViolation::new(f, d)).collect::<Vec<_>>(),
        );
        Status::with_error_details(Code::InvalidArgument, message, details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_name_fields() {
        let mut v = Violations::default();
        v.add("connector.display_name", "is required");
        v.add("connector.s3_store.bucket", "must be 3..=63 characters");
        let s = v.into_status();
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(s.message(), "connector.display_name: is required (and 1 more invalid field(s))");
        assert_eq!(fields_of(&s), vec!["connector.display_name", "connector.s3_store.bucket"]);
        assert_eq!(reason_of(&s).as_deref(), Some(reason::INVALID_FIELD));
    }

    #[test]
    fn metadata_names_the_field_the_resource_and_when_to_retry() {
        let mut v = Violations::default();
        v.add("task.store", "does not exist");
        v.add("task.source", "is required");
        let s = v.into_status();
        let info = s.get_details_error_info().unwrap();
        assert_eq!(info.metadata.get("field").map(String::as_str), Some("task.store"));
        let s = not_found("projects/p/tasks/x");
        let info = s.get_details_error_info().unwrap();
        assert_eq!(info.metadata.get("resource").map(String::as_str), Some("projects/p/tasks/x"));
        assert!(s.get_details_retry_info().is_none());
        let s = unavailable("the catalog");
        assert_eq!(s.get_details_retry_info().and_then(|r| r.retry_delay), Some(RETRY_DELAY));
        assert_eq!(
            s.get_details_error_info().unwrap().metadata.get("dependency").map(String::as_str),
            Some("the catalog")
        );
        assert!(exhausted("TOO_MANY", "too many streams").get_details_retry_info().is_some());
        let s = already_exists("schedule.display_name: a schedule named \"x\" already exists");
        assert_eq!(
            s.get_details_error_info().unwrap().metadata.get("field").map(String::as_str),
            Some("schedule.display_name")
        );
    }

    #[test]
    fn reasons_survive() {
        let s = etag_mismatch("tasks/x");
        assert_eq!(s.code(), Code::Aborted);
        assert_eq!(reason_of(&s).as_deref(), Some(reason::ETAG_MISMATCH));
    }
}
