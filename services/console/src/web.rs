//! Request plumbing: the session layer (opens the cookie, refreshes the access token), the
//! signed-in caller (`Ctx`), API clients carrying the caller's token, and errors as pages.

use axum::{
    extract::{FromRequestParts, Request, State},
    http::{HeaderValue, StatusCode, header, request::Parts},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use cairn_api::v1::{
    self, Role, audit_service_client::AuditServiceClient, catalog_service_client::CatalogServiceClient,
    identity_service_client::IdentityServiceClient, job_service_client::JobServiceClient,
    schedule_service_client::ScheduleServiceClient,
};
use cairn_runtime::grpc::ClientInterceptor;
use tonic::{Code, service::interceptor::InterceptedService, transport::Channel};

use crate::{
    App,
    session::{self, Session},
};

type Intercepted = InterceptedService<Channel, ClientInterceptor>;

/// Refresh the access token when it has less than this left (seconds).
const REFRESH_MARGIN: i64 = 60;

/// The session, refreshed, in the request's extensions; a refreshed cookie goes back out.
pub async fn session_layer(State(app): State<App>, mut req: Request, next: Next) -> Response {
    let opened = session::cookie(req.headers(), session::COOKIE).and_then(|c| app.sealer.open::<Session>(c));
    let mut set_cookie = None;
    if let Some(mut s) = opened {
        let now = chrono::Utc::now().timestamp();
        if s.access_expires - now < REFRESH_MARGIN && s.refresh.is_empty() {
            // A provider's ID token: no refresh; sign in again once it expires.
            if s.access_expires <= now {
                set_cookie =
                    Some(session::set_cookie(session::COOKIE, "", None, app.config.secure_cookies()));
            } else {
                req.extensions_mut().insert(s);
            }
        } else if s.access_expires - now < REFRESH_MARGIN {
            let mut identity = IdentityServiceClient::new(InterceptedService::new(
                app.catalog.clone(),
                ClientInterceptor::new(None),
            ));
            match identity.refresh_login(v1::RefreshLoginRequest { refresh_token: s.refresh.clone() }).await {
                Ok(r) => {
                    let r = r.into_inner();
                    s.access = r.access_token;
                    s.access_expires = r.expire_time.map_or(now, |t| t.seconds);
                    s.refresh = r.refresh_token;
                    s.refresh_expires = r.refresh_expire_time.map_or(now, |t| t.seconds);
                    set_cookie = Some(cookie_for(&app, &s));
                    req.extensions_mut().insert(s);
                }
                // Refresh tokens rotate: of two requests refreshing at once, one loses; it goes
                // on with the access token while that is valid, and the winner's cookie stays.
                Err(_) if s.access_expires > now => {
                    req.extensions_mut().insert(s);
                }
                Err(e) => {
                    tracing::debug!(code = ?e.code(), "session could not be refreshed");
                    set_cookie =
                        Some(session::set_cookie(session::COOKIE, "", None, app.config.secure_cookies()));
                }
            }
        } else {
            req.extensions_mut().insert(s);
        }
    }
    let mut resp = next.run(req).await;
    if let Some(c) = set_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    secure_headers(resp.headers_mut());
    resp
}

/// Headers every answer carries: no framing, no inline scripts, no sniffing, no caching of
/// pages with personal data.
fn secure_headers(h: &mut axum::http::HeaderMap) {
    let fixed = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    for (k, v) in fixed {
        h.insert(k, HeaderValue::from_static(v));
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// The cookie holding `s`.
pub fn cookie_for(app: &App, s: &Session) -> String {
    let age = s.refresh_expires - chrono::Utc::now().timestamp();
    session::set_cookie(session::COOKIE, &app.sealer.seal(s), Some(age), app.config.secure_cookies())
}

/// A signed-in request: the session and API clients carrying its token. Enough for
/// fragments (previews) that render no frame, so they cost no GetCaller or ListProjects.
pub struct Api {
    pub app: App,
    pub session: Session,
}

impl FromRequestParts<App> for Api {
    type Rejection = Fail;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Api, Fail> {
        match parts.extensions.get::<Session>().cloned() {
            Some(session) => Ok(Api { app: app.clone(), session }),
            None => {
                let uri = parts.uri.path_and_query().map_or("/".to_owned(), |p| p.as_str().to_owned());
                Err(Fail::SignIn(uri))
            }
        }
    }
}

/// The signed-in caller of a page: who they are and the projects of the frame.
pub struct Ctx {
    pub api: Api,
    pub principal: v1::Principal,
    pub projects: Vec<v1::Project>,
}

impl std::ops::Deref for Ctx {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl FromRequestParts<App> for Ctx {
    type Rejection = Fail;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Ctx, Fail> {
        let api = Api::from_request_parts(parts, app).await?;
        let principal = api.identity().get_caller(v1::GetCallerRequest {}).await?.into_inner();
        let mut catalog = api.catalog();
        let (mut projects, mut token) = (Vec::new(), String::new());
        loop {
            let r = catalog
                .list_projects(v1::ListProjectsRequest { page_size: 200, page_token: token })
                .await?
                .into_inner();
            projects.extend(r.projects);
            if r.next_page_token.is_empty() {
                break;
            }
            token = r.next_page_token;
        }
        Ok(Ctx { api, principal, projects })
    }
}

impl Api {
    fn auth(&self) -> ClientInterceptor {
        ClientInterceptor::new(Some(&self.session.access))
    }
    pub fn catalog(&self) -> CatalogServiceClient<Intercepted> {
        CatalogServiceClient::new(InterceptedService::new(self.app.catalog.clone(), self.auth()))
    }
    pub fn identity(&self) -> IdentityServiceClient<Intercepted> {
        IdentityServiceClient::new(InterceptedService::new(self.app.catalog.clone(), self.auth()))
    }
    pub fn audit(&self) -> AuditServiceClient<Intercepted> {
        AuditServiceClient::new(InterceptedService::new(self.app.catalog.clone(), self.auth()))
    }
    pub fn jobs(&self) -> JobServiceClient<Intercepted> {
        JobServiceClient::new(InterceptedService::new(self.app.scheduler.clone(), self.auth()))
    }
    pub fn schedules(&self) -> ScheduleServiceClient<Intercepted> {
        ScheduleServiceClient::new(InterceptedService::new(self.app.scheduler.clone(), self.auth()))
    }

    /// Every connector of a project with `role` (`Unspecified` = all), every page.
    pub async fn connectors(
        &self,
        project: &str,
        role: v1::ConnectorRole,
    ) -> Result<Vec<v1::Connector>, Fail> {
        let (mut out, mut token) = (Vec::new(), String::new());
        loop {
            let r = self
                .catalog()
                .list_connectors(v1::ListConnectorsRequest {
                    parent: format!("projects/{project}"),
                    page_size: 500,
                    page_token: token,
                    role: role as i32,
                    ..Default::default()
                })
                .await?
                .into_inner();
            out.extend(r.connectors);
            if r.next_page_token.is_empty() {
                return Ok(out);
            }
            token = r.next_page_token;
        }
    }

    /// Every task of a project (involving `connector`, when not empty), every page.
    pub async fn tasks(&self, project: &str, connector: &str) -> Result<Vec<v1::Task>, Fail> {
        let (mut out, mut token) = (Vec::new(), String::new());
        loop {
            let r = self
                .catalog()
                .list_tasks(v1::ListTasksRequest {
                    parent: format!("projects/{project}"),
                    page_size: 500,
                    page_token: token,
                    connector: connector.to_owned(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            out.extend(r.tasks);
            if r.next_page_token.is_empty() {
                return Ok(out);
            }
            token = r.next_page_token;
        }
    }

    /// The CSRF token forms carry.
    pub fn csrf(&self) -> &str {
        &self.session.csrf
    }
}

impl Ctx {
    /// The caller's role in `project` (platform admins are admins everywhere).
    pub fn role(&self, project: &str) -> Role {
        if self.principal.platform_admin {
            return Role::Admin;
        }
        self.principal.roles.get(project).and_then(|r| Role::try_from(*r).ok()).unwrap_or(Role::Unspecified)
    }

    /// Whether the caller holds at least `role` in `project` (what the servers will allow).
    pub fn can(&self, project: &str, role: Role) -> bool {
        self.role(project) as i32 >= role as i32
    }
}

/// A request that ends in something other than its page.
#[derive(Debug)]
pub enum Fail {
    /// Not signed in: to the sign-in page, then back to this path.
    SignIn(String),
    /// A call failed.
    Status(tonic::Status),
    /// The form's CSRF token is missing or wrong, or it came from another site.
    Forged,
    /// No such page.
    NotFound(String),
    /// Bad request parameters.
    Bad(String),
}

impl From<tonic::Status> for Fail {
    fn from(s: tonic::Status) -> Fail {
        if s.code() == Code::Unauthenticated { Fail::SignIn("/".into()) } else { Fail::Status(s) }
    }
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        let (code, title, detail) = match self {
            Fail::SignIn(next) => {
                let to = format!("/login?next={}", url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>());
                return Redirect::to(&to).into_response();
            }
            Fail::Forged => (
                StatusCode::FORBIDDEN,
                "Request refused",
                "The form was not sent from this console's own page (missing or stale CSRF token). Reload the page and try again.".to_owned(),
            ),
            Fail::NotFound(what) => (StatusCode::NOT_FOUND, "Not found", format!("{what} was not found.")),
            Fail::Bad(why) => (StatusCode::BAD_REQUEST, "Bad request", why),
            Fail::Status(s) => {
                let code = match s.code() {
                    Code::PermissionDenied => StatusCode::FORBIDDEN,
                    Code::NotFound => StatusCode::NOT_FOUND,
                    Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => StatusCode::BAD_REQUEST,
                    Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
                    Code::Unavailable | Code::DeadlineExceeded => StatusCode::SERVICE_UNAVAILABLE,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                };
                let title = match code {
                    StatusCode::FORBIDDEN => "Not allowed",
                    StatusCode::NOT_FOUND => "Not found",
                    StatusCode::SERVICE_UNAVAILABLE => "Cairn is unavailable",
                    _ => "Something went wrong",
                };
                (code, title, s.message().to_owned())
            }
        };
        (code, crate::ui::bare(title, maud::html! { h1 { (title) } p.error { (detail) } p { a href="/" { "Back to the console" } } }))
            .into_response()
    }
}

/// A page or an early answer.
pub type Page = Result<Response, Fail>;
