//! Building `tonic::Status` the same way everywhere: a small code set, an `ErrorInfo` reason
//! (domain [`DOMAIN`]) on every error, `BadRequest` field violations for bad input. The
//! message always names the field first (`recurrence.calendar: "25:00": hour 25 out of range
//! 0..23`), so a human reading only the message knows what to fix. Never put SQL, host names
//! or secrets in a message.

use std::collections::HashMap;

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

/// A status with an ErrorInfo reason.
pub fn with_reason(code: Code, reason: &str, message: impl Into<String>) -> Status {
    let mut details = ErrorDetails::new();
    details.set_error_info(reason, DOMAIN, HashMap::new());
    Status::with_error_details(code, message, details)
}

/// INVALID_ARGUMENT for one field.
pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Status {
    let mut v = Violations::default();
    v.add(field, description);
    v.into_status()
}

/// NOT_FOUND naming what was looked for.
pub fn not_found(what: impl std::fmt::Display) -> Status {
    with_reason(Code::NotFound, reason::NOT_FOUND, format!("{what} not found"))
}

/// ABORTED because the etag is stale.
pub fn etag_mismatch(what: impl std::fmt::Display) -> Status {
    with_reason(
        Code::Aborted,
        reason::ETAG_MISMATCH,
        format!("etag: {what} was changed by someone else; get it again and retry"),
    )
}

/// INTERNAL with a generic message; log the cause where it happened.
pub fn internal() -> Status {
    with_reason(Code::Internal, reason::INTERNAL, "internal error; see the server log")
}

/// UNAVAILABLE naming the dependency.
pub fn unavailable(what: impl std::fmt::Display) -> Status {
    with_reason(Code::Unavailable, reason::UNAVAILABLE, format!("{what} is unavailable; retry later"))
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
        details.set_error_info(reason::INVALID_FIELD, DOMAIN, HashMap::new());
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
    fn reasons_survive() {
        let s = etag_mismatch("tasks/x");
        assert_eq!(s.code(), Code::Aborted);
        assert_eq!(reason_of(&s).as_deref(), Some(reason::ETAG_MISMATCH));
    }
}
