//! The worker's only link to Cairn: the scheduler's LeaseService. The [`LeaseClient`] trait
//! is the seam tests script; [`GrpcLeaseClient`] is the real one (cluster token and trace
//! context on every call).

use std::{collections::HashMap, sync::Arc, time::Duration};

use cairn_api::v1::{
    AcquireLeaseRequest, AcquireQueriesRequest, AnswerQueryRequest, AppendLogRequest, CompleteJobRequest,
    HeartbeatRequest, HeartbeatResponse, JobProgress, Lease, LogLine, SnapshotQuery,
    lease_service_client::LeaseServiceClient,
};
use cairn_runtime::{grpc::ClientInterceptor, time::to_duration};
use tonic::{Status, codegen::InterceptedService, transport::Channel};

/// What the worker needs from the scheduler.
#[tonic::async_trait]
pub trait LeaseClient: Send + Sync + 'static {
    /// Long-polls for up to `capacity` leases.
    async fn acquire(
        &self,
        worker_id: &str,
        labels: &HashMap<String, String>,
        projects: &[String],
        capacity: i32,
        wait: Duration,
    ) -> Result<Vec<Lease>, Status>;
    /// Extends a lease and reports progress.
    async fn heartbeat(
        &self,
        lease: &Lease,
        progress: Option<JobProgress>,
    ) -> Result<HeartbeatResponse, Status>;
    /// Appends log lines (idempotent by the lines' sequence numbers).
    async fn append_log(&self, lease: &Lease, lines: Vec<LogLine>) -> Result<(), Status>;
    /// Finishes the attempt.
    async fn complete(&self, req: CompleteJobRequest) -> Result<(), Status>;
    /// Long-polls for up to `capacity` snapshot queries. A client without them (a scripted
    /// test seam) answers UNIMPLEMENTED, which stops the query loop.
    async fn acquire_queries(
        &self,
        _worker_id: &str,
        _labels: &HashMap<String, String>,
        _projects: &[String],
        _capacity: i32,
        _wait: Duration,
    ) -> Result<Vec<SnapshotQuery>, Status> {
        Err(Status::unimplemented("snapshot queries"))
    }
    /// Sends one part of a query's answer.
    async fn answer(&self, _req: AnswerQueryRequest) -> Result<(), Status> {
        Err(Status::unimplemented("snapshot queries"))
    }
}

/// Shared client handle.
pub type SharedClient = Arc<dyn LeaseClient>;

type Inner = LeaseServiceClient<InterceptedService<Channel, ClientInterceptor>>;

/// The real client.
#[derive(Clone, Debug)]
pub struct GrpcLeaseClient {
    inner: Inner,
}

impl GrpcLeaseClient {
    /// A client of the scheduler at `url` (connects lazily).
    pub fn new(url: &str, token: Option<&str>, tls: &cairn_runtime::tls::ClientTls) -> Result<Self, String> {
        let channel = cairn_runtime::grpc::channel_with(url, tls)?;
        Ok(GrpcLeaseClient {
            inner: LeaseServiceClient::with_interceptor(channel, ClientInterceptor::new(token))
                .max_decoding_message_size(64 << 20),
        })
    }
}

#[tonic::async_trait]
impl LeaseClient for GrpcLeaseClient {
    async fn acquire(
        &self,
        worker_id: &str,
        labels: &HashMap<String, String>,
        projects: &[String],
        capacity: i32,
        wait: Duration,
    ) -> Result<Vec<Lease>, Status> {
        let mut req = tonic::Request::new(AcquireLeaseRequest {
            worker_id: worker_id.to_owned(),
            labels: labels.clone(),
            capacity,
            wait: Some(to_duration(wait)),
            projects: projects.to_vec(),
        });
        req.set_timeout(wait + Duration::from_secs(15));
        Ok(self.inner.clone().acquire_lease(req).await?.into_inner().leases)
    }

    async fn heartbeat(
        &self,
        lease: &Lease,
        progress: Option<JobProgress>,
    ) -> Result<HeartbeatResponse, Status> {
        let mut req = tonic::Request::new(HeartbeatRequest {
            lease: lease.name.clone(),
            generation: lease.generation,
            progress,
            lease_token: lease.token.clone(),
        });
        req.set_timeout(Duration::from_secs(10));
        Ok(self.inner.clone().heartbeat(req).await?.into_inner())
    }

    async fn append_log(&self, lease: &Lease, lines: Vec<LogLine>) -> Result<(), Status> {
        let mut req = tonic::Request::new(AppendLogRequest {
            lease: lease.name.clone(),
            generation: lease.generation,
            lines,
            lease_token: lease.token.clone(),
        });
        req.set_timeout(Duration::from_secs(10));
        self.inner.clone().append_log(req).await.map(|_| ())
    }

    async fn complete(&self, req: CompleteJobRequest) -> Result<(), Status> {
        let mut req = tonic::Request::new(req);
        req.set_timeout(Duration::from_secs(30));
        self.inner.clone().complete_job(req).await.map(|_| ())
    }

    async fn acquire_queries(
        &self,
        worker_id: &str,
        labels: &HashMap<String, String>,
        projects: &[String],
        capacity: i32,
        wait: Duration,
    ) -> Result<Vec<SnapshotQuery>, Status> {
        let mut req = tonic::Request::new(AcquireQueriesRequest {
            worker_id: worker_id.to_owned(),
            labels: labels.clone(),
            capacity,
            wait: Some(to_duration(wait)),
            projects: projects.to_vec(),
        });
        req.set_timeout(wait + Duration::from_secs(15));
        Ok(self.inner.clone().acquire_queries(req).await?.into_inner().queries)
    }

    async fn answer(&self, req: AnswerQueryRequest) -> Result<(), Status> {
        // A part may wait up to a minute for the asker to read earlier ones.
        let mut req = tonic::Request::new(req);
        req.set_timeout(Duration::from_secs(75));
        self.inner.clone().answer_query(req).await.map(|_| ())
    }
}
