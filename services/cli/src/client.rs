//! gRPC clients of the two public endpoints (trace context on every call), and the project
//! every command works in.

use cairn_api::{
    names::{Kind, ProjectId},
    v1::{
        audit_service_client::AuditServiceClient, catalog_service_client::CatalogServiceClient,
        identity_service_client::IdentityServiceClient, job_service_client::JobServiceClient,
        schedule_service_client::ScheduleServiceClient,
    },
};
use cairn_runtime::grpc::ClientInterceptor;
use tonic::{codegen::InterceptedService, transport::Channel};

use crate::error::{CliError, Result};

type Intercepted = InterceptedService<Channel, ClientInterceptor>;

/// Connections to Cairn.
#[derive(Clone)]
pub struct Clients {
    /// Catalog URL.
    pub catalog_url: String,
    /// Scheduler URL.
    pub scheduler_url: String,
    /// The project commands work in (`--project`).
    pub project: ProjectId,
    catalog: Channel,
    scheduler: Channel,
    auth: ClientInterceptor,
    /// `--yes`: do not ask before deleting or cancelling.
    pub assume_yes: bool,
    /// Sent as `request_id` on the command's mutating call.
    pub request_id: String,
}

/// Refuses to send a credential in plaintext to anything but this machine.
fn check_plaintext(flag: &str, url: &str, token: Option<&str>) -> Result<()> {
    if token.is_none_or(str::is_empty) {
        return Ok(());
    }
    let uri: http::Uri = url.parse().map_err(|e| CliError::Usage(format!("{flag}: {e}")))?;
    let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if uri.scheme_str() == Some("http") && !loopback {
        return Err(CliError::Usage(format!(
            "{flag}: refusing to send a credential in plaintext to {url}: use an https:// URL (TLS), or a \
             loopback address"
        )));
    }
    Ok(())
}

impl Clients {
    /// Lazy channels (nothing connects until a call).
    pub fn new(
        catalog_url: &str,
        scheduler_url: &str,
        project: &str,
        token: Option<&str>,
        tls: &cairn_runtime::tls::ClientTls,
    ) -> Result<Clients> {
        check_plaintext("--catalog-url", catalog_url, token)?;
        check_plaintext("--scheduler-url", scheduler_url, token)?;
        let project = ProjectId::parse(project).map_err(|e| CliError::Usage(format!("--project: {e}")))?;
        let catalog = cairn_runtime::grpc::channel_with(catalog_url, tls)
            .map_err(|e| CliError::Usage(format!("--catalog-url: {e}")))?;
        let scheduler = cairn_runtime::grpc::channel_with(scheduler_url, tls)
            .map_err(|e| CliError::Usage(format!("--scheduler-url: {e}")))?;
        Ok(Clients {
            catalog_url: catalog_url.to_owned(),
            scheduler_url: scheduler_url.to_owned(),
            project,
            catalog,
            scheduler,
            auth: ClientInterceptor::new(token),
            assume_yes: false,
            request_id: uuid::Uuid::now_v7().to_string(),
        })
    }

    /// The project's name, the parent of creates and lists.
    pub fn parent(&self) -> String {
        self.project.name()
    }

    /// The resource name of what the user typed: a display name or id within the project,
    /// or a full name as it is.
    pub fn name(&self, kind: Kind, raw: &str) -> String {
        if raw.contains('/') {
            raw.to_owned()
        } else {
            format!("{}/{}/{}", self.parent(), kind.collection(), raw.trim())
        }
    }

    /// CatalogService.
    pub fn catalog(&self) -> CatalogServiceClient<Intercepted> {
        CatalogServiceClient::with_interceptor(self.catalog.clone(), self.auth.clone())
    }

    /// The `request_id` of this invocation (`--request-id`, else a fresh UUID): the servers
    /// return the first result when a mutating call is retried with it.
    pub fn request_id(&self) -> String {
        self.request_id.clone()
    }

    /// IdentityService (on the catalog).
    pub fn identity(&self) -> IdentityServiceClient<Intercepted> {
        IdentityServiceClient::with_interceptor(self.catalog.clone(), self.auth.clone())
    }

    /// AuditService (on the catalog).
    pub fn audit(&self) -> AuditServiceClient<Intercepted> {
        AuditServiceClient::with_interceptor(self.catalog.clone(), self.auth.clone())
    }

    /// Asks before a deletion or cancellation: `--yes` goes ahead, a terminal is asked, and
    /// without either the command stops (exit 2) so a script never deletes by accident.
    pub fn confirm(&self, what: &str) -> Result<()> {
        use std::io::{IsTerminal as _, Write as _};
        if self.assume_yes {
            return Ok(());
        }
        if !std::io::stdin().is_terminal() {
            return Err(CliError::Usage(format!(
                "about to {what}: pass --yes to confirm (no terminal to ask)"
            )));
        }
        eprint!("{}? [y/N] ", what[..1].to_uppercase() + &what[1..]);
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer).map_err(|e| CliError::Failed(e.to_string()))?;
        if matches!(answer.trim(), "y" | "Y" | "yes") {
            Ok(())
        } else {
            Err(CliError::Failed("not confirmed".into()))
        }
    }

    /// JobService.
    pub fn jobs(&self) -> JobServiceClient<Intercepted> {
        JobServiceClient::with_interceptor(self.scheduler.clone(), self.auth.clone())
    }

    /// ScheduleService.
    pub fn schedules(&self) -> ScheduleServiceClient<Intercepted> {
        ScheduleServiceClient::with_interceptor(self.scheduler.clone(), self.auth.clone())
    }

    /// Maps a catalog error.
    pub fn catalog_err(&self) -> impl Fn(tonic::Status) -> CliError + '_ {
        move |s| CliError::status(s, &format!("the catalog at {}", self.catalog_url))
    }

    /// Maps a scheduler error.
    pub fn scheduler_err(&self) -> impl Fn(tonic::Status) -> CliError + '_ {
        move |s| CliError::status(s, &format!("the scheduler at {}", self.scheduler_url))
    }
}

/// Every item of a paged list: `page(token)` fetches one page and returns its items and the
/// next page token (empty at the end).
pub async fn all_pages<T, F, Fut>(mut page: F) -> Result<Vec<T>>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, String)>>,
{
    let (mut all, mut token) = page(String::new()).await?;
    while !token.is_empty() {
        let (items, next) = page(token).await?;
        all.extend(items);
        token = next;
    }
    Ok(all)
}
