//! The tower layer in front of every route (see the module above for the flow).

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tonic::{Code, Status};

use super::{
    AuditRecord, Caller, LEASE_TOKEN_PREFIX, Principal, Rule, Settings, denied, policy, principal::Kind,
    unauthenticated,
};

/// Wraps the routes of a server with [`Guard`].
#[derive(Debug, Clone)]
pub struct GuardLayer {
    settings: Arc<Settings>,
}

impl GuardLayer {
    /// A guard with these settings.
    pub fn new(settings: Settings) -> GuardLayer {
        GuardLayer { settings: Arc::new(settings) }
    }
}

impl<S> tower::Layer<S> for GuardLayer {
    type Service = Guard<S>;
    fn layer(&self, inner: S) -> Guard<S> {
        Guard { inner, settings: self.settings.clone() }
    }
}

/// Authenticates, authorises and audits each call.
#[derive(Debug, Clone)]
pub struct Guard<S> {
    inner: S,
    settings: Arc<Settings>,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B, RB> tower::Service<http::Request<B>> for Guard<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let settings = self.settings.clone();
        // The ready service answers this call; a fresh clone waits for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let method = req.uri().path().to_owned();
        let credential = bearer(req.headers());
        Box::pin(async move {
            let entry = match policy::lookup(&method) {
                Some(e) => e,
                None => {
                    let why = "the method has no entry in the policy table".to_owned();
                    let status = denied(format!("permission denied: {why}"));
                    settings.audit.record(vec![deny(None, &method, &status, why)]).await;
                    return Ok(status.into_http());
                }
            };
            let principal = if entry.rule == Rule::Open {
                Principal::nobody()
            } else if !(settings.enabled || entry.rule == Rule::Internal && settings.cluster_token.is_some())
            {
                // Enforcement off (loopback development): everyone may do everything, except
                // that internal services keep requiring the cluster token when there is one.
                Principal::anonymous()
            } else {
                match authenticate(&settings, credential).await.and_then(|p| admit(entry.rule, p)) {
                    Ok(p) => p,
                    Err(refusal) => {
                        let (p, status) = *refusal;
                        let why = status.message().to_owned();
                        settings.audit.record(vec![deny(p.as_ref(), &method, &status, why)]).await;
                        return Ok(status.into_http());
                    }
                }
            };
            let caller = Caller {
                principal: Arc::new(principal),
                entry,
                enforce: settings.enabled && entry.rule != Rule::Open,
                notes: Arc::default(),
            };
            req.extensions_mut().insert(caller.clone());
            let mut res = inner.call(req).await?;
            let code = code_of(res.headers());
            let notes = std::mem::take(&mut *caller.notes.lock().unwrap_or_else(|p| p.into_inner()));
            let mut denial = notes.denial.clone();
            if matches!(entry.rule, Rule::Project(_)) && code == Code::Ok && !notes.checked && caller.enforce
            {
                tracing::error!(rpc.method = %method, "handler answered without naming its project; refused");
                let why = "the call did not name a project".to_owned();
                res = denied(format!("permission denied: {why}")).into_http();
                denial = Some(why);
            }
            let event = |allowed: bool, code: Code, detail: String| AuditRecord {
                project: notes.project.as_ref().map(|p| p.as_str().to_owned()),
                resource: notes.resource.clone(),
                request_id: notes.request_id.clone(),
                allowed,
                code: code_name(code).to_owned(),
                detail,
                ..AuditRecord::by(
                    notes.acting.as_ref().or(Some(&*caller.principal)).filter(|p| p.kind() != Kind::Nobody),
                    &method,
                )
            };
            if let Some(why) = denial {
                settings.audit.record(vec![event(false, Code::PermissionDenied, why)]).await;
            } else if entry.mutates {
                // A mutation refused by its handler (a wrong password at Login) is a denial too.
                let allowed = !matches!(code, Code::Unauthenticated | Code::PermissionDenied);
                settings.audit.record(vec![event(allowed, code, notes.detail.clone())]).await;
            }
            Ok(res)
        })
    }
}

type Refusal = Box<(Option<Principal>, Status)>;

async fn authenticate(
    settings: &Settings,
    credential: Result<Option<String>, Status>,
) -> Result<Principal, Refusal> {
    let credential = match credential {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Err(Box::new((
                None,
                unauthenticated(
                    "missing credential: send `authorization: Bearer <token>` (cairn login, CAIRN_TOKEN)",
                ),
            )));
        }
        Err(s) => return Err(Box::new((None, s))),
    };
    if let Some(t) = settings.cluster_token.as_deref().filter(|t| !t.is_empty())
        && crate::grpc::constant_time_eq(t.as_bytes(), credential.as_bytes())
    {
        return Ok(Principal::internal("cluster-token"));
    }
    if credential.starts_with(LEASE_TOKEN_PREFIX) {
        return Err(Box::new((
            None,
            unauthenticated(
                "invalid credential: a lease token goes in a report's lease_token field; authenticate with the \
                 worker pool token",
            ),
        )));
    }
    settings.authenticator.authenticate(&credential).await.map_err(|s| Box::new((None, s)))
}

/// Whether the kind of principal fits the rule (roles in projects are checked later).
fn admit(rule: Rule, p: Principal) -> Result<Principal, Refusal> {
    let kind = p.kind();
    let ok = match rule {
        Rule::Open => true,
        Rule::Internal => kind == Kind::Internal,
        Rule::Worker => kind == Kind::Worker,
        Rule::Platform => matches!(kind, Kind::User | Kind::ServiceAccount) && p.platform_admin(),
        Rule::Project(_) | Rule::Authenticated => matches!(kind, Kind::User | Kind::ServiceAccount),
    };
    if ok {
        return Ok(p);
    }
    let why = match (rule, kind) {
        (Rule::Platform, Kind::User | Kind::ServiceAccount) => {
            "this method is for platform admins".to_owned()
        }
        (Rule::Internal, _) => "this method is for Cairn's own services".to_owned(),
        (Rule::Worker, _) => "this method is for workers (a worker pool token)".to_owned(),
        (_, Kind::Worker) => "a worker may only call LeaseService".to_owned(),
        (_, Kind::Internal) => "service credentials may only call internal services".to_owned(),
        _ => "not allowed".to_owned(),
    };
    let status = denied(format!("permission denied: {why}"));
    Err(Box::new((Some(p), status)))
}

fn deny(principal: Option<&Principal>, method: &str, status: &Status, detail: String) -> AuditRecord {
    AuditRecord {
        allowed: false,
        code: code_name(status.code()).to_owned(),
        detail,
        ..AuditRecord::by(principal, method)
    }
}

/// The bearer credential: `None` when absent, UNAUTHENTICATED when malformed.
fn bearer(headers: &http::HeaderMap) -> Result<Option<String>, Status> {
    let Some(v) = headers.get(http::header::AUTHORIZATION) else { return Ok(None) };
    let v = v.to_str().map_err(|_| unauthenticated("malformed authorization header"))?;
    let (scheme, token) = v
        .split_once(' ')
        .ok_or_else(|| unauthenticated("malformed authorization header: expected `Bearer <token>`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(unauthenticated("malformed authorization header: expected `Bearer <token>`"));
    }
    Ok(Some(token.trim().to_owned()))
}

/// The `grpc-status` of response headers or trailers (OK when absent).
pub(crate) fn code_of(headers: &http::HeaderMap) -> Code {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.parse::<i32>().ok())
        .map_or(Code::Ok, Code::from)
}

/// The canonical upper-case name of a code (`INVALID_ARGUMENT`).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
