//! Principals: who a credential stands for, with roles per project.

use cairn_api::{names::ProjectId, v1};
use sha2::{Digest as _, Sha256};

/// A project role; each includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// No access.
    None,
    /// Read resources, history and logs.
    Viewer,
    /// + run, cancel, pause/resume, test connections.
    Operator,
    /// + tasks and schedules.
    Editor,
    /// + connectors, secrets, members, service accounts, tokens, audit.
    Admin,
}

impl Role {
    /// Every role that grants something, lowest first.
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Operator, Role::Editor, Role::Admin];

    /// The stored and displayed word.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::None => "none",
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

    /// From the stored word.
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "viewer" => Role::Viewer,
            "operator" => Role::Operator,
            "editor" => Role::Editor,
            "admin" => Role::Admin,
            _ => return None,
        })
    }

    /// From the API enum.
    pub fn from_proto(r: i32) -> Role {
        match v1::Role::try_from(r) {
            Ok(v1::Role::Viewer) => Role::Viewer,
            Ok(v1::Role::Operator) => Role::Operator,
            Ok(v1::Role::Editor) => Role::Editor,
            Ok(v1::Role::Admin) => Role::Admin,
            _ => Role::None,
        }
    }

    /// To the API enum.
    pub fn to_proto(self) -> v1::Role {
        match self {
            Role::None => v1::Role::Unspecified,
            Role::Viewer => v1::Role::Viewer,
            Role::Operator => v1::Role::Operator,
            Role::Editor => v1::Role::Editor,
            Role::Admin => v1::Role::Admin,
        }
    }
}

/// What kind of principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A person (local or from the identity provider).
    User,
    /// A project's service account.
    ServiceAccount,
    /// A worker of a pool.
    Worker,
    /// Another Cairn service.
    Internal,
    /// Anyone, with enforcement off.
    Anonymous,
    /// Nobody: no credential was checked.
    Nobody,
}

/// A principal: the API message, with the checks done on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal(pub v1::Principal);

impl Principal {
    /// The internal principal of Cairn's own services.
    pub fn internal(method: &str) -> Principal {
        Principal(v1::Principal {
            name: "services/internal".into(),
            auth_method: method.into(),
            display_name: "Cairn services".into(),
            ..Default::default()
        })
    }

    /// Everyone, everything (enforcement off).
    pub fn anonymous() -> Principal {
        Principal(v1::Principal {
            name: "anonymous".into(),
            auth_method: "none".into(),
            platform_admin: true,
            ..Default::default()
        })
    }

    /// No one.
    pub fn nobody() -> Principal {
        Principal(v1::Principal { name: String::new(), auth_method: "none".into(), ..Default::default() })
    }

    /// The kind, from the name.
    pub fn kind(&self) -> Kind {
        let n = self.0.name.as_str();
        if n.starts_with("users/") {
            Kind::User
        } else if n.starts_with("projects/") && n.contains("/serviceAccounts/") {
            Kind::ServiceAccount
        } else if n.starts_with("workerPools/") {
            Kind::Worker
        } else if n.starts_with("services/") {
            Kind::Internal
        } else if n == "anonymous" {
            Kind::Anonymous
        } else {
            Kind::Nobody
        }
    }

    /// `users/alice`.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Platform admin (anonymous too: enforcement is off).
    pub fn platform_admin(&self) -> bool {
        self.0.platform_admin
    }

    /// The role in a project; platform admins are admins everywhere.
    pub fn role_in(&self, project: &ProjectId) -> Role {
        if self.0.platform_admin {
            return Role::Admin;
        }
        self.0.roles.get(project.as_str()).map_or(Role::None, |r| Role::from_proto(*r))
    }

    /// Projects where the role is at least `role`, sorted.
    pub fn projects_with(&self, role: Role) -> Vec<ProjectId> {
        let mut v: Vec<ProjectId> = self
            .0
            .roles
            .iter()
            .filter(|(_, r)| Role::from_proto(**r) >= role)
            .filter_map(|(p, _)| ProjectId::parse(p).ok())
            .collect();
        v.sort();
        v
    }

    /// Worker pools: whether the pool may lease jobs of `project`.
    pub fn may_lease_from(&self, project: &str) -> bool {
        self.0.worker_projects.iter().any(|p| p == "*" || p == project)
    }

    /// Worker pools: the first label the pool does not allow, if any.
    pub fn disallowed_label<'a>(
        &self,
        labels: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Option<(&'a String, &'a String)> {
        let allowed = &self.0.worker_labels;
        if allowed.get("*").is_some_and(|v| v == "*") {
            return None;
        }
        labels.into_iter().find(|(k, v)| !allowed.get(*k).is_some_and(|a| a == "*" || a == *v))
    }
}

/// A new random secret: `cairn_<kind>_` and 256 random bits (base64url), so leaked tokens are
/// recognisable by secret scanners and their kind is visible at a glance.
pub fn mint(kind: &str) -> String {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("cairn_{kind}_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// SHA-256 of a credential: how tokens are stored and cached (they are 256-bit random
/// strings, so a fast hash is enough; passwords use argon2id).
pub fn credential_hash(credential: &str) -> Vec<u8> {
    Sha256::digest(credential.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(roles: &[(&str, v1::Role)]) -> Principal {
        Principal(v1::Principal {
            name: "users/alice".into(),
            roles: roles.iter().map(|(k, r)| ((*k).into(), *r as i32)).collect(),
            ..Default::default()
        })
    }

    #[test]
    fn roles_are_per_project_and_ordered() {
        let a = p(&[("team-a", v1::Role::Editor), ("team-b", v1::Role::Viewer)]);
        let ta = ProjectId::parse("team-a").unwrap();
        let tb = ProjectId::parse("team-b").unwrap();
        let tc = ProjectId::parse("team-c").unwrap();
        assert_eq!(a.role_in(&ta), Role::Editor);
        assert!(a.role_in(&ta) >= Role::Operator);
        assert_eq!(a.role_in(&tb), Role::Viewer);
        assert_eq!(a.role_in(&tc), Role::None);
        assert_eq!(a.projects_with(Role::Operator), vec![ta.clone()]);
        assert_eq!(a.projects_with(Role::Viewer), vec![ta, tb]);
        assert_eq!(a.kind(), Kind::User);
    }

    #[test]
    fn worker_labels_must_be_allowed() {
        let w = Principal(v1::Principal {
            name: "workerPools/eu".into(),
            worker_projects: vec!["team-a".into()],
            worker_labels: [("zone".to_owned(), "eu".to_owned()), ("host".to_owned(), "*".to_owned())].into(),
            ..Default::default()
        });
        let ok: std::collections::HashMap<String, String> =
            [("zone".into(), "eu".into()), ("host".into(), "db1".into())].into();
        assert_eq!(w.disallowed_label(&ok), None);
        let bad: std::collections::HashMap<String, String> = [("zone".into(), "us".into())].into();
        assert!(w.disallowed_label(&bad).is_some());
        assert!(w.may_lease_from("team-a"));
        assert!(!w.may_lease_from("team-b"));
        assert_eq!(w.kind(), Kind::Worker);
    }
}
