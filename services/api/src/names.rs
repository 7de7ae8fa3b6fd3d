//! Resource names (`connectors/{id}`, `tasks/{id}`, ...) and the references users type: a
//! full name, a bare id, or a display name. Parsing only; lookups live in the services.

use uuid::Uuid;

/// The collections of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `connectors/{id}`
    Connector,
    /// `tasks/{id}`
    Task,
    /// `schedules/{id}`
    Schedule,
    /// `jobs/{id}`
    Job,
    /// `leases/{id}`
    Lease,
}

impl Kind {
    /// The collection segment.
    pub fn collection(self) -> &'static str {
        match self {
            Kind::Connector => "connectors",
            Kind::Task => "tasks",
            Kind::Schedule => "schedules",
            Kind::Job => "jobs",
            Kind::Lease => "leases",
        }
    }

    /// The resource name of an id.
    pub fn name(self, id: Uuid) -> String {
        format!("{}/{}", self.collection(), id)
    }
}

/// What a user meant by a reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// A resource id.
    Id(Uuid),
    /// A display name.
    DisplayName(String),
}

/// Why a reference could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing was given.
    #[error("is required")]
    Empty,
    /// `tasks/..` given where a connector was expected, or a nested path.
    #[error("{given:?} is not a {expected} name (want {expected}/{{id}} or a display name)")]
    WrongCollection {
        /// What was given.
        given: String,
        /// The collection expected.
        expected: &'static str,
    },
    /// An id was required (jobs have no display names).
    #[error("{given:?} is not an id (want {expected}/{{id}} or the bare id)")]
    NotAnId {
        /// What was given.
        given: String,
        /// The collection expected.
        expected: &'static str,
    },
}

/// Reads `collection/{id}`, `collection/{display_name}`, a bare id or a bare display name.
pub fn parse_reference(kind: Kind, raw: &str) -> Result<Reference, NameError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(NameError::Empty);
    }
    let rest = match raw.split_once('/') {
        Some((collection, rest))
            if collection == kind.collection() && !rest.is_empty() && !rest.contains('/') =>
        {
            rest
        }
        Some(_) => {
            return Err(NameError::WrongCollection { given: raw.to_owned(), expected: kind.collection() });
        }
        None => raw,
    };
    Ok(match Uuid::parse_str(rest) {
        Ok(id) => Reference::Id(id),
        Err(_) => Reference::DisplayName(rest.to_owned()),
    })
}

/// Reads a name that must carry an id (`jobs/{id}`, or a bare id).
pub fn parse_id(kind: Kind, raw: &str) -> Result<Uuid, NameError> {
    match parse_reference(kind, raw)? {
        Reference::Id(id) => Ok(id),
        Reference::DisplayName(_) => {
            Err(NameError::NotAnId { given: raw.trim().to_owned(), expected: kind.collection() })
        }
    }
}

/// Display names: 1..=63 of `[A-Za-z0-9._-]`, starting with a letter or digit, not a UUID (so a
/// reference is never ambiguous). Returns what is wrong.
pub fn check_display_name(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err("is required".into());
    }
    if v.len() > 63 {
        return Err(format!("{v:?} is longer than 63 characters"));
    }
    if !v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric()) {
        return Err(format!("{v:?} must start with a letter or a digit"));
    }
    if let Some(c) = v.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(format!("{v:?} contains {c:?}; use letters, digits, '.', '_' and '-'"));
    }
    if Uuid::parse_str(v).is_ok() {
        return Err(format!("{v:?} looks like an id; display names must not be UUIDs"));
    }
    Ok(())
}

/// Free text: at most 1024 characters, no control characters other than newlines and tabs.
pub fn check_description(v: &str) -> Result<(), String> {
    if v.chars().count() > 1024 {
        return Err("is longer than 1024 characters".into());
    }
    if v.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err("contains control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let id = Uuid::now_v7();
        assert_eq!(parse_reference(Kind::Task, &format!("tasks/{id}")), Ok(Reference::Id(id)));
        assert_eq!(parse_reference(Kind::Task, &id.to_string()), Ok(Reference::Id(id)));
        assert_eq!(parse_reference(Kind::Task, "nightly"), Ok(Reference::DisplayName("nightly".into())));
        assert_eq!(
            parse_reference(Kind::Task, "tasks/nightly"),
            Ok(Reference::DisplayName("nightly".into()))
        );
        assert!(matches!(
            parse_reference(Kind::Task, "connectors/x"),
            Err(NameError::WrongCollection { .. })
        ));
        assert!(matches!(parse_reference(Kind::Task, "tasks/a/b"), Err(NameError::WrongCollection { .. })));
        assert_eq!(parse_reference(Kind::Task, "  "), Err(NameError::Empty));
        assert!(parse_id(Kind::Job, "jobs/nightly").is_err());
        assert_eq!(parse_id(Kind::Job, &Kind::Job.name(id)), Ok(id));
    }

    #[test]
    fn display_names() {
        assert!(check_display_name("nas-1.prod").is_ok());
        for bad in ["", "-x", "a b", "0193f3a2-6b1c-7cc0-8a5e-3b0c1d2e3f40"] {
            assert!(check_display_name(bad).is_err(), "{bad}");
        }
        assert!(check_display_name(&"x".repeat(64)).is_err());
        assert!(check_description("line\nline").is_ok());
        assert!(check_description("bell\u{7}").is_err());
    }
}
