//! Resource names and the references users type. Every resource lives in a project, so names
//! are hierarchical (AIP-122): `projects/{project}/connectors/{id}`, `.../tasks/{id}`,
//! `.../schedules/{id}`, `.../jobs/{id}`. A project id is chosen at creation and never changes;
//! the other ids are UUIDv7, and a display name (unique per kind within its project) is accepted
//! wherever an id is. `projects/-` stands for every project where a method allows it (AIP-159).
//!
//! The first release's flat names (`connectors/{id}`) are refused with the new form in the
//! message. Parsing only; lookups live in the services.

use std::fmt;

use uuid::Uuid;

/// The project every install starts with, and where the first release's resources moved.
pub const DEFAULT_PROJECT: &str = "default";

/// The wildcard project segment (AIP-159): every project the method may see.
pub const ANY_PROJECT: &str = "-";

/// A project id: 1..=63 of `[a-z0-9-]`, starting with a letter, not ending with `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct ProjectId(String);

impl ProjectId {
    /// Checks a project id; the error says what is wrong.
    pub fn parse(raw: &str) -> Result<ProjectId, String> {
        if raw.is_empty() {
            return Err("is required".into());
        }
        if raw.len() > 63 {
            return Err(format!("{raw:?} is longer than 63 characters"));
        }
        if !raw.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(format!("{raw:?} must start with a lowercase letter"));
        }
        if let Some(c) = raw.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
            return Err(format!("{raw:?} contains {c:?}; project ids use lowercase letters, digits and '-'"));
        }
        if raw.ends_with('-') {
            return Err(format!("{raw:?} must not end with '-'"));
        }
        Ok(ProjectId(raw.to_owned()))
    }

    /// The `default` project.
    pub fn default_project() -> ProjectId {
        ProjectId(DEFAULT_PROJECT.to_owned())
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `projects/{id}`.
    pub fn name(&self) -> String {
        format!("projects/{}", self.0)
    }

    /// Whether this is the `default` project.
    pub fn is_default(&self) -> bool {
        self.0 == DEFAULT_PROJECT
    }
}

impl fmt::Display for ProjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl sqlx::Type<sqlx::Postgres> for ProjectId {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <String as sqlx::Type<sqlx::Postgres>>::type_info()
    }
}

impl sqlx::Encode<'_, sqlx::Postgres> for ProjectId {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <&str as sqlx::Encode<sqlx::Postgres>>::encode(self.0.as_str(), buf)
    }
}

impl sqlx::Decode<'_, sqlx::Postgres> for ProjectId {
    fn decode(value: sqlx::postgres::PgValueRef<'_>) -> Result<Self, sqlx::error::BoxDynError> {
        Ok(ProjectId(<String as sqlx::Decode<sqlx::Postgres>>::decode(value)?))
    }
}

impl sqlx::postgres::PgHasArrayType for ProjectId {
    fn array_type_info() -> sqlx::postgres::PgTypeInfo {
        <String as sqlx::postgres::PgHasArrayType>::array_type_info()
    }
}

/// The collections of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `projects/{p}/connectors/{id}`
    Connector,
    /// `projects/{p}/tasks/{id}`
    Task,
    /// `projects/{p}/schedules/{id}`
    Schedule,
    /// `projects/{p}/jobs/{id}`
    Job,
}

impl Kind {
    /// The collection segment.
    pub fn collection(self) -> &'static str {
        match self {
            Kind::Connector => "connectors",
            Kind::Task => "tasks",
            Kind::Schedule => "schedules",
            Kind::Job => "jobs",
        }
    }

    /// The resource name of an id in a project.
    pub fn name(self, project: &ProjectId, id: impl Into<Uuid>) -> String {
        format!("projects/{}/{}/{}", project.0, self.collection(), id.into())
    }

    /// The project-free form of the first release (`connectors/{id}`). Ids are unique across
    /// projects, so this still names one record: it is the associated data sealed secrets
    /// were bound to, and must stay so for them to open.
    pub fn flat_name(self, id: impl Into<Uuid>) -> String {
        format!("{}/{}", self.collection(), id.into())
    }
}

/// What a user meant by a reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    /// A resource id.
    Id(Uuid),
    /// A display name.
    DisplayName(String),
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Id(id) => write!(f, "{id}"),
            Reference::DisplayName(n) => f.write_str(n),
        }
    }
}

/// A parsed resource name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    /// The project; `None` for `projects/-` where the method allows it.
    pub project: Option<ProjectId>,
    /// The resource within it.
    pub reference: Reference,
}

impl Name {
    /// The id, when the name carries one.
    pub fn id(&self) -> Option<Uuid> {
        match self.reference {
            Reference::Id(id) => Some(id),
            Reference::DisplayName(_) => None,
        }
    }
}

/// Why a name could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing was given.
    #[error("is required")]
    Empty,
    /// A first-release name without a project.
    #[error(
        "{given:?} has no project: resources live in projects now (existing ones in \"default\"); use \
         {suggestion:?}"
    )]
    Flat {
        /// What was given.
        given: String,
        /// The same resource in the default project.
        suggestion: String,
    },
    /// Not a name of the expected collection.
    #[error(
        "{given:?} is not a {expected} name (want projects/{{project}}/{expected}/{{id or display name}})"
    )]
    WrongCollection {
        /// What was given.
        given: String,
        /// The collection expected.
        expected: &'static str,
    },
    /// An id was required (jobs have no display names).
    #[error("{given:?} does not end in an id (want projects/{{project}}/{expected}/{{id}})")]
    NotAnId {
        /// What was given.
        given: String,
        /// The collection expected.
        expected: &'static str,
    },
    /// A bad project segment.
    #[error("{given:?}: project {why}")]
    Project {
        /// What was given.
        given: String,
        /// What is wrong with the project id.
        why: String,
    },
    /// `projects/-` where one project is needed.
    #[error("{given:?}: this method needs one project, not projects/-")]
    Wildcard {
        /// What was given.
        given: String,
    },
    /// Not a parent (`projects/{project}`).
    #[error("{given:?} is not a project name (want projects/{{project}})")]
    NotAParent {
        /// What was given.
        given: String,
    },
}

fn reference_of(rest: &str) -> Reference {
    match Uuid::parse_str(rest) {
        Ok(id) => Reference::Id(id),
        Err(_) => Reference::DisplayName(rest.to_owned()),
    }
}

fn project_segment(raw: &str, segment: &str, allow_any: bool) -> Result<Option<ProjectId>, NameError> {
    if segment == ANY_PROJECT {
        return if allow_any { Ok(None) } else { Err(NameError::Wildcard { given: raw.to_owned() }) };
    }
    ProjectId::parse(segment).map(Some).map_err(|why| NameError::Project { given: raw.to_owned(), why })
}

/// Reads `projects/{project}/{collection}/{id or display name}`; `allow_any` accepts
/// `projects/-/...` (the project is then `None`).
pub fn parse_name(kind: Kind, raw: &str, allow_any: bool) -> Result<Name, NameError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(NameError::Empty);
    }
    let parts: Vec<&str> = raw.split('/').collect();
    match parts.as_slice() {
        ["projects", project, collection, rest] if *collection == kind.collection() && !rest.is_empty() => {
            Ok(Name { project: project_segment(raw, project, allow_any)?, reference: reference_of(rest) })
        }
        [collection, rest] if *collection == kind.collection() && !rest.is_empty() => Err(NameError::Flat {
            given: raw.to_owned(),
            suggestion: format!("projects/{DEFAULT_PROJECT}/{collection}/{rest}"),
        }),
        _ => Err(NameError::WrongCollection { given: raw.to_owned(), expected: kind.collection() }),
    }
}

/// Reads a name of one project, `projects/{project}/{collection}/{id or display name}`
/// (`projects/-` refused).
pub fn parse_one(kind: Kind, raw: &str) -> Result<(ProjectId, Reference), NameError> {
    let n = parse_name(kind, raw, false)?;
    match n.project {
        Some(p) => Ok((p, n.reference)),
        None => Err(NameError::Wildcard { given: raw.trim().to_owned() }),
    }
}

/// Reads a reference inside a request about `parent` (a task's `source`, a schedule's `task`,
/// a list filter; `None` = `projects/-`): a full name, or with one parent also a bare id or
/// display name, resolved within it. `Ok(None)` when it names a project other than `parent`:
/// the caller answers that exactly like a missing resource.
pub fn parse_within(
    kind: Kind,
    parent: Option<&ProjectId>,
    raw: &str,
) -> Result<Option<(ProjectId, Reference)>, NameError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(NameError::Empty);
    }
    let (project, reference) = match parent {
        Some(p) if !trimmed.contains('/') => (p.clone(), reference_of(trimmed)),
        // Across projects a bare display name would be ambiguous: only full names.
        _ => parse_one(kind, trimmed)?,
    };
    Ok(match parent {
        Some(p) if *p != project => None,
        _ => Some((project, reference)),
    })
}

/// Reads a name that must end in an id (`projects/{p}/jobs/{id}`).
pub fn parse_id_name(kind: Kind, raw: &str, allow_any: bool) -> Result<(Option<ProjectId>, Uuid), NameError> {
    let n = parse_name(kind, raw, allow_any)?;
    match n.reference {
        Reference::Id(id) => Ok((n.project, id)),
        Reference::DisplayName(_) => {
            Err(NameError::NotAnId { given: raw.trim().to_owned(), expected: kind.collection() })
        }
    }
}

/// Reads a name that the services themselves wrote: one project, one id.
pub fn parse_canonical(kind: Kind, raw: &str) -> Result<(ProjectId, Uuid), NameError> {
    match parse_one(kind, raw)? {
        (p, Reference::Id(id)) => Ok((p, id)),
        (_, Reference::DisplayName(_)) => {
            Err(NameError::NotAnId { given: raw.trim().to_owned(), expected: kind.collection() })
        }
    }
}

/// Reads a parent, `projects/{project}`; `allow_any` accepts `projects/-` (then `None`).
pub fn parse_parent(raw: &str, allow_any: bool) -> Result<Option<ProjectId>, NameError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(NameError::Empty);
    }
    match raw.split('/').collect::<Vec<_>>().as_slice() {
        ["projects", project] => project_segment(raw, project, allow_any),
        _ => Err(NameError::NotAParent { given: raw.to_owned() }),
    }
}

/// Reads a project's own name, `projects/{project}` (the id; display names are for people).
pub fn parse_project(raw: &str) -> Result<ProjectId, NameError> {
    match parse_parent(raw, false)? {
        Some(p) => Ok(p),
        None => Err(NameError::Wildcard { given: raw.to_owned() }),
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

/// Labels of a resource: keys of 1..=63 of `[a-z0-9._/-]` starting with a letter or digit,
/// values of 0..=63 printable characters; at most 64 of them. Returns (key, what is wrong).
pub fn check_labels<'a>(
    labels: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Result<(), (String, String)> {
    for (i, (k, v)) in labels.into_iter().enumerate() {
        if i >= 64 {
            return Err((k.clone(), "at most 64 labels".into()));
        }
        let key_ok = !k.is_empty()
            && k.len() <= 63
            && k.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && k.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '/' | '-'));
        if !key_ok {
            return Err((
                k.clone(),
                "keys are 1..=63 of lowercase letters, digits, '.', '_', '/' and '-'".into(),
            ));
        }
        if v.len() > 63 || v.chars().any(char::is_control) {
            return Err((k.clone(), "values are 0..=63 printable characters".into()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ProjectId {
        ProjectId::parse(s).unwrap()
    }

    #[test]
    fn project_ids() {
        for ok in ["default", "team-a", "a", "a1-b2"] {
            assert!(ProjectId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-", "Team", "1a", "a-", "a_b", "a.b", &"a".repeat(64)] {
            assert!(ProjectId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names() {
        let id = Uuid::now_v7();
        let full = Kind::Task.name(&p("team-a"), id);
        assert_eq!(full, format!("projects/team-a/tasks/{id}"));
        assert_eq!(
            parse_name(Kind::Task, &full, false),
            Ok(Name { project: Some(p("team-a")), reference: Reference::Id(id) })
        );
        assert_eq!(
            parse_name(Kind::Task, "projects/default/tasks/nightly", false).unwrap().reference,
            Reference::DisplayName("nightly".into())
        );
        assert_eq!(parse_id_name(Kind::Job, &Kind::Job.name(&p("x"), id), false), Ok((Some(p("x")), id)));
        assert!(matches!(
            parse_id_name(Kind::Job, "projects/x/jobs/nightly", false),
            Err(NameError::NotAnId { .. })
        ));
        assert_eq!(parse_id_name(Kind::Job, &format!("projects/-/jobs/{id}"), true), Ok((None, id)));
        assert!(matches!(
            parse_id_name(Kind::Job, &format!("projects/-/jobs/{id}"), false),
            Err(NameError::Wildcard { .. })
        ));
        assert!(matches!(
            parse_name(Kind::Task, "projects/default/connectors/x", false),
            Err(NameError::WrongCollection { .. })
        ));
        assert!(matches!(
            parse_name(Kind::Task, "projects/Bad/tasks/x", false),
            Err(NameError::Project { .. })
        ));
        assert!(matches!(
            parse_name(Kind::Task, "projects/a/tasks/x/y", false),
            Err(NameError::WrongCollection { .. })
        ));
        assert_eq!(parse_name(Kind::Task, "  ", false), Err(NameError::Empty));
    }

    #[test]
    fn flat_names_are_refused_with_the_new_form() {
        let id = Uuid::now_v7();
        let e = parse_name(Kind::Connector, &format!("connectors/{id}"), false).unwrap_err();
        assert_eq!(
            e,
            NameError::Flat {
                given: format!("connectors/{id}"),
                suggestion: format!("projects/default/connectors/{id}")
            }
        );
        assert!(e.to_string().contains(&format!("projects/default/connectors/{id}")));
        assert!(matches!(
            parse_within(Kind::Connector, Some(&p("a")), "connectors/nas"),
            Err(NameError::Flat { .. })
        ));
    }

    #[test]
    fn references_resolve_within_the_parent() {
        let a = p("a");
        let nas = Reference::DisplayName("nas".into());
        assert_eq!(parse_within(Kind::Connector, Some(&a), "nas"), Ok(Some((a.clone(), nas.clone()))));
        assert_eq!(
            parse_within(Kind::Connector, Some(&a), "projects/a/connectors/nas"),
            Ok(Some((a.clone(), nas.clone())))
        );
        assert_eq!(parse_within(Kind::Connector, Some(&a), "projects/b/connectors/nas"), Ok(None));
        assert_eq!(parse_within(Kind::Connector, None, "projects/b/connectors/nas"), Ok(Some((p("b"), nas))));
        assert!(parse_within(Kind::Connector, None, "nas").is_err(), "bare names need one project");
        assert!(parse_within(Kind::Connector, Some(&a), "projects/-/connectors/nas").is_err());
        assert_eq!(parse_within(Kind::Connector, Some(&a), " "), Err(NameError::Empty));
        assert!(matches!(parse_one(Kind::Task, "projects/-/tasks/x"), Err(NameError::Wildcard { .. })));
    }

    #[test]
    fn parents() {
        assert_eq!(parse_parent("projects/a", false), Ok(Some(p("a"))));
        assert_eq!(parse_parent("projects/-", true), Ok(None));
        assert!(parse_parent("projects/-", false).is_err());
        assert!(matches!(parse_parent("projects", false), Err(NameError::NotAParent { .. })));
        assert!(matches!(parse_parent("projects/a/tasks", false), Err(NameError::NotAParent { .. })));
        assert_eq!(parse_parent("", false), Err(NameError::Empty));
        assert_eq!(parse_project("projects/a"), Ok(p("a")));
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

    #[test]
    fn labels() {
        let ok: std::collections::HashMap<String, String> = [("team".into(), "web".into())].into();
        assert!(check_labels(&ok).is_ok());
        let bad: std::collections::HashMap<String, String> = [("Team".into(), "web".into())].into();
        assert_eq!(check_labels(&bad).unwrap_err().0, "Team");
    }
}
