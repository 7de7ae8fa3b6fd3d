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
            Err(NameError::WrongCollection { given: raw.trim().to_owned(), expected: kind.collection() })
        }
    }
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
}
