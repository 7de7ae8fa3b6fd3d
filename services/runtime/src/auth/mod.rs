//! Authentication and authorisation of every gRPC call, the same way in every service.
//!
//! A tower layer ([`Guard`]) sits in front of all routes. It looks the method up in the one
//! [`policy`] table (a method without an entry is denied), authenticates the bearer credential
//! through the service's [`Authenticator`] (the cluster token is recognised here), checks the
//! kind of principal the rule wants, and hands the handler a [`Caller`] in the request
//! extensions. Project rules are finished by the handler, which knows the project only after
//! parsing the request: `caller.require(&project)`. A handler that answers OK to a project
//! rule without ever naming a project is turned into PERMISSION_DENIED here (fail closed).
//! After the call the layer writes the audit event of every mutation and every denial
//! through the service's [`AuditSink`]. Secrets never reach an event, a log or a message.

pub mod audit;
pub mod policy;
mod principal;

use std::sync::{Arc, Mutex};

use cairn_api::names::ProjectId;
use tonic::{Code, Status};

pub use audit::{AuditRecord, AuditSink};
pub use policy::{Entry, Rule};
pub use principal::{Kind, Principal, Role, credential_hash, mint};

use crate::status::{self, with_reason};

/// How lease tokens start (`mint("lt")`): never a bearer credential.
pub const LEASE_TOKEN_PREFIX: &str = "cairn_lt_";

/// ErrorInfo reason of PERMISSION_DENIED.
pub const PERMISSION_DENIED: &str = "PERMISSION_DENIED";

/// UNAUTHENTICATED with a message that never repeats the credential.
pub fn unauthenticated(message: impl Into<String>) -> Status {
    with_reason(Code::Unauthenticated, status::reason::UNAUTHENTICATED, message)
}

/// PERMISSION_DENIED.
pub fn denied(message: impl Into<String>) -> Status {
    with_reason(Code::PermissionDenied, PERMISSION_DENIED, message)
}

/// Refuses to serve beyond loopback with neither TLS nor authentication, unless `insecure`
/// (then it says so loudly, once, at start).
pub fn check_exposure(
    listen: std::net::SocketAddr,
    auth: bool,
    tls: bool,
    insecure: bool,
) -> Result<(), crate::config::ConfigError> {
    if auth || tls || listen.ip().is_loopback() {
        return Ok(());
    }
    if insecure {
        tracing::warn!(
            listen = %listen,
            "INSECURE: serving beyond loopback without TLS and without authentication; anyone who can reach \
             this port can read and change everything"
        );
        return Ok(());
    }
    Err(crate::config::ConfigError::invalid(
        "listen",
        format!(
            "{listen} is not a loopback address, and neither TLS nor authentication is on: turn authentication on \
             (drop auth_disabled), or pass --insecure to accept the risk"
        ),
    ))
}

/// Turns a bearer credential into a principal. Implemented by each service: the catalog
/// looks credentials up in its tables, the scheduler asks the catalog (with a short cache).
#[tonic::async_trait]
pub trait Authenticator: Send + Sync + 'static {
    /// The principal, or UNAUTHENTICATED.
    async fn authenticate(&self, credential: &str) -> Result<Principal, Status>;
}

/// How a server authenticates.
#[derive(Clone)]
pub struct Settings {
    /// Enforce the policy table. Off only for loopback development and tests of other things:
    /// every caller is then an unrestricted anonymous principal.
    pub enabled: bool,
    /// The cluster token other Cairn services present.
    pub cluster_token: Option<String>,
    /// Looks credentials up.
    pub authenticator: Arc<dyn Authenticator>,
    /// Writes audit events.
    pub audit: Arc<dyn AuditSink>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings").field("enabled", &self.enabled).finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct Notes {
    checked: bool,
    project: Option<ProjectId>,
    resource: String,
    request_id: String,
    denial: Option<String>,
    detail: String,
    acting: Option<Principal>,
}

/// The authenticated caller of one request, with what the handler learnt for the audit log.
/// Cheap to clone; handlers take it from the request with [`Caller::of`].
#[derive(Debug, Clone)]
pub struct Caller {
    principal: Arc<Principal>,
    entry: &'static Entry,
    enforce: bool,
    notes: Arc<Mutex<Notes>>,
}

impl Caller {
    /// The caller of a request that went through the [`Guard`]. Without one (a handler called
    /// directly) the caller is nobody, and every project rule refuses it.
    pub fn of<T>(req: &tonic::Request<T>) -> Caller {
        req.extensions().get::<Caller>().cloned().unwrap_or_else(Caller::unguarded)
    }

    fn unguarded() -> Caller {
        static NONE: Entry = Entry { method: "", rule: Rule::Internal, mutates: false };
        Caller {
            principal: Arc::new(Principal::nobody()),
            entry: &NONE,
            enforce: true,
            notes: Arc::default(),
        }
    }

    /// Who is calling.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The full gRPC method being called (`/cairn.v1.CatalogService/UpdateTask`).
    pub fn method(&self) -> &'static str {
        self.entry.method
    }

    fn note(&self, f: impl FnOnce(&mut Notes)) {
        if let Ok(mut n) = self.notes.lock() {
            f(&mut n);
        }
    }

    /// Allows the call if the caller holds the method's role in `project`; else
    /// PERMISSION_DENIED (audited). Call it as soon as the request names its project, before
    /// reading or validating anything of it.
    pub fn require(&self, project: &ProjectId) -> Result<(), Status> {
        match self.entry.rule {
            Rule::Project(needed) => self.require_role(project, needed),
            // Other rules were decided by the guard.
            _ => {
                self.note(|n| {
                    n.checked = true;
                    n.project.get_or_insert_with(|| project.clone());
                });
                Ok(())
            }
        }
    }

    /// Like [`Caller::require`] with an explicit role (a method whose variants need more).
    pub fn require_role(&self, project: &ProjectId, needed: Role) -> Result<(), Status> {
        self.note(|n| {
            n.checked = true;
            n.project.get_or_insert_with(|| project.clone());
        });
        if !self.enforce || self.principal.role_in(project) >= needed {
            return Ok(());
        }
        let why = format!(
            "{} needs the {} role in project {} (or above)",
            method_short(self.entry.method),
            needed.as_str(),
            project.as_str()
        );
        self.note(|n| n.denial = Some(why.clone()));
        Err(denied(format!("permission denied: {why}")))
    }

    /// The projects a list over every project (`projects/-`) may show: those where the caller
    /// holds the method's role; `None` = every project.
    pub fn visible(&self) -> Option<Vec<ProjectId>> {
        self.note(|n| n.checked = true);
        let needed = match self.entry.rule {
            Rule::Project(r) => r,
            _ => Role::Viewer,
        };
        if !self.enforce || self.principal.platform_admin() {
            return None;
        }
        Some(self.principal.projects_with(needed))
    }

    /// Whether the caller may see `project` in a cross-project answer.
    pub fn sees(&self, project: &ProjectId) -> bool {
        self.visible().is_none_or(|ps| ps.contains(project))
    }

    /// Records the resource a call is about (audit).
    pub fn resource(&self, name: impl Into<String>) {
        let name = name.into();
        self.note(|n| n.resource = name);
    }

    /// Records the request's `request_id` (audit).
    pub fn request_id(&self, id: &str) {
        let id = id.to_owned();
        self.note(|n| n.request_id = id);
    }

    /// Records a detail for the audit event (what was done, never a secret).
    pub fn detail(&self, detail: impl Into<String>) {
        let d = detail.into();
        self.note(|n| n.detail = d);
    }

    /// For handlers of open methods (Login): the principal the audit event is about.
    pub fn acting_as(&self, principal: &Principal) {
        let p = principal.clone();
        self.note(|n| n.acting = Some(p));
    }

    /// A refusal decided by the handler (a role above the caller's own, say).
    pub fn deny(&self, why: impl Into<String>) -> Status {
        let why = why.into();
        self.note(|n| {
            n.checked = true;
            n.denial = Some(why.clone());
        });
        denied(format!("permission denied: {why}"))
    }
}

fn method_short(method: &str) -> &str {
    method.rsplit('/').next().unwrap_or(method)
}

pub(crate) mod layer;
pub use layer::{Guard, GuardLayer};
