//! The catalog's client of the scheduler's internal service (connection tests, task
//! deletions). Calls carry the cluster token and the caller's trace context.

use std::time::Duration;

use cairn_api::{
    names::{Kind, ProjectId},
    v1::{
        ConnectionTest, Connector, ForgetProjectRequest, ForgetProjectResponse, ForgetTaskRequest,
        RunConnectionTestRequest, scheduler_internal_service_client::SchedulerInternalServiceClient,
    },
};
use cairn_runtime::{grpc::ClientInterceptor, time::to_duration};
use tonic::{Code, codegen::InterceptedService, transport::Channel};

use crate::error::{Error, Result};

type Inner = SchedulerInternalServiceClient<InterceptedService<Channel, ClientInterceptor>>;

/// A cheap-to-clone client.
#[derive(Clone, Debug)]
pub struct SchedulerClient {
    inner: Inner,
}

impl SchedulerClient {
    /// A client of the scheduler at `url` (connects lazily).
    pub fn new(
        url: &str,
        token: Option<&str>,
        tls: &cairn_runtime::tls::ClientTls,
    ) -> std::result::Result<Self, String> {
        let channel = cairn_runtime::grpc::channel_with(url, tls)?;
        Ok(SchedulerClient {
            inner: SchedulerInternalServiceClient::with_interceptor(channel, ClientInterceptor::new(token)),
        })
    }

    /// Runs a connection test through a worker and waits up to `wait`.
    pub async fn run_connection_test(&self, connector: Connector, wait: Duration) -> Result<ConnectionTest> {
        let mut req = tonic::Request::new(RunConnectionTestRequest {
            connector: Some(connector),
            timeout: Some(to_duration(wait)),
        });
        req.set_timeout(wait + Duration::from_secs(5));
        match self.inner.clone().run_connection_test(req).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) if s.code() == Code::Unavailable => Err(Error::Unavailable("the scheduler".into())),
            Err(s) if s.code() == Code::DeadlineExceeded || s.code() == Code::Cancelled => {
                Err(Error::DeadlineExceeded(format!(
                    "no worker matching the connector's selector answered within {}s; the test job stays queued \
                     and its verdict will be recorded when a worker runs it",
                    wait.as_secs()
                )))
            }
            Err(s) => Err(s.into()),
        }
    }

    /// Tells the scheduler a task is gone.
    pub async fn forget_task(
        &self,
        project: &ProjectId,
        id: cairn_api::ids::TaskId,
    ) -> std::result::Result<(), tonic::Status> {
        let mut req = tonic::Request::new(ForgetTaskRequest { task: Kind::Task.name(project, id) });
        req.set_timeout(Duration::from_secs(5));
        self.inner.clone().forget_task(req).await.map(|_| ())
    }

    /// The scheduler's audit events of an authorised query. A scheduler that cannot be
    /// reached makes the list UNAVAILABLE rather than silently incomplete.
    pub async fn audit_events(&self, q: cairn_api::v1::AuditQuery) -> Result<Vec<cairn_api::v1::AuditEvent>> {
        let mut req = tonic::Request::new(q);
        req.set_timeout(Duration::from_secs(30));
        match self.inner.clone().list_audit_events(req).await {
            Ok(r) => Ok(r.into_inner().events),
            Err(s) if matches!(s.code(), Code::Unavailable | Code::DeadlineExceeded | Code::Unknown) => {
                Err(Error::Unavailable("the scheduler (its part of the audit log)".into()))
            }
            Err(s) => Err(s.into()),
        }
    }

    /// Counts (and with `delete`, deletes) what the scheduler keeps of a project.
    pub async fn forget_project(&self, project: &ProjectId, delete: bool) -> Result<ForgetProjectResponse> {
        let mut req = tonic::Request::new(ForgetProjectRequest { project: project.name(), delete });
        req.set_timeout(Duration::from_secs(60));
        match self.inner.clone().forget_project(req).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) if matches!(s.code(), Code::Unavailable | Code::DeadlineExceeded | Code::Unknown) => {
                tracing::warn!(error = %s.message(), "scheduler not reachable for a project deletion");
                Err(Error::Unavailable("the scheduler".into()))
            }
            Err(s) => Err(s.into()),
        }
    }
}
