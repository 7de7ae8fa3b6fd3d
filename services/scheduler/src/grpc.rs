//! Thin gRPC handlers of the scheduler's four services.

use std::pin::Pin;

use cairn_api::v1::{
    AcquireLeaseRequest, AcquireLeaseResponse, AcquireQueriesRequest, AcquireQueriesResponse,
    AnswerQueryRequest, AppendLogRequest, AuditQuery, BatchCompleteJobsRequest, BatchCompleteJobsResponse,
    CancelJobRequest, CompleteJobRequest, CompleteJobResponse, ConnectionTest, CreateScheduleRequest,
    DeleteScheduleRequest, DiffSnapshotsRequest, DiffSnapshotsResponse, ForecastRequest, ForecastResponse,
    ForgetProjectRequest, ForgetProjectResponse, ForgetTaskRequest, GetJobRequest, GetScheduleRequest,
    HeartbeatRequest, HeartbeatResponse, Job, ListAuditEventsResponse, ListJobLogsRequest,
    ListJobLogsResponse, ListJobsRequest, ListJobsResponse, ListSchedulesRequest, ListSchedulesResponse,
    ListSnapshotEntriesRequest, ListSnapshotEntriesResponse, ListSnapshotsRequest, ListSnapshotsResponse,
    PauseScheduleRequest, PreviewScheduleRequest, PreviewScheduleResponse, ReadSnapshotFileRequest,
    ResumeScheduleRequest, RunConnectionTestRequest, RunTaskRequest, Schedule, SimulateRetentionRequest,
    SimulateRetentionResponse, UpdateScheduleRequest, WatchJobEvent, WatchJobRequest,
    job_service_server::JobService, lease_service_server::LeaseService,
    schedule_service_server::ScheduleService, scheduler_internal_service_server::SchedulerInternalService,
};
use cairn_runtime::auth::Caller;
use futures::Stream;
use tonic::{Request, Response, Status};

use crate::{State, error::Error, forecast, internal, jobs, leases, queries, schedules, snapshots};

/// All four services share the state.
#[derive(Clone)]
pub struct Handlers(pub State);

type R<T> = Result<Response<T>, Status>;

fn ok<T>(r: Result<T, Error>) -> R<T> {
    r.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl ScheduleService for Handlers {
    async fn create_schedule(&self, req: Request<CreateScheduleRequest>) -> R<Schedule> {
        ok(schedules::create(&self.0, &Caller::of(&req), req.into_inner()).await)
    }
    async fn get_schedule(&self, req: Request<GetScheduleRequest>) -> R<Schedule> {
        ok(schedules::get(&self.0, &Caller::of(&req), &req.into_inner().name).await)
    }
    async fn list_schedules(&self, req: Request<ListSchedulesRequest>) -> R<ListSchedulesResponse> {
        ok(schedules::list(&self.0, &Caller::of(&req), req.into_inner()).await)
    }
    async fn update_schedule(&self, req: Request<UpdateScheduleRequest>) -> R<Schedule> {
        ok(schedules::update(&self.0, &Caller::of(&req), req.into_inner()).await)
    }
    async fn delete_schedule(&self, req: Request<DeleteScheduleRequest>) -> R<()> {
        ok(schedules::delete(&self.0, &Caller::of(&req), req.into_inner()).await)
    }
    async fn pause_schedule(&self, req: Request<PauseScheduleRequest>) -> R<Schedule> {
        ok(schedules::pause(&self.0, &Caller::of(&req), req.into_inner()).await)
    }
    async fn resume_schedule(&self, req: Request<ResumeScheduleRequest>) -> R<Schedule> {
        ok(schedules::resume(&self.0, &Caller::of(&req), req.into_inner()).await)
    }
    async fn preview_schedule(&self, req: Request<PreviewScheduleRequest>) -> R<PreviewScheduleResponse> {
        ok(schedules::preview(self.0.clock.now(), &req.into_inner()))
    }
    async fn forecast(&self, req: Request<ForecastRequest>) -> R<ForecastResponse> {
        ok(forecast::forecast(&self.0, &Caller::of(&req), req.into_inner()).await)
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchJobEvent, Status>> + Send>>;

#[tonic::async_trait]
impl JobService for Handlers {
    async fn list_protection_status(
        &self,
        req: Request<cairn_api::v1::ListProtectionStatusRequest>,
    ) -> R<cairn_api::v1::ListProtectionStatusResponse> {
        ok(crate::protection::list(&self.0, &Caller::of(&req), req.into_inner()).await)
    }
    async fn run_task(&self, req: Request<RunTaskRequest>) -> R<Job> {
        ok(jobs::run_task(&self.0, &Caller::of(&req), req.into_inner()).await)
    }
    async fn get_job(&self, req: Request<GetJobRequest>) -> R<Job> {
        ok(jobs::get(&self.0, &Caller::of(&req), req.into_inner()).await)
    }
    async fn list_jobs(&self, req: Request<ListJobsRequest>) -> R<ListJobsResponse> {
        ok(jobs::list(&self.0, &Caller::of(&req), req.into_inner()).await)
    }
    async fn list_job_logs(&self, req: Request<ListJobLogsRequest>) -> R<ListJobLogsResponse> {
        ok(jobs::list_logs(&self.0, &Caller::of(&req), req.into_inner()).await)
    }
    async fn cancel_job(&self, req: Request<CancelJobRequest>) -> R<Job> {
        ok(jobs::cancel(&self.0, &Caller::of(&req), req.into_inner()).await)
    }
    type WatchJobStream = WatchStream;
    async fn watch_job(&self, req: Request<WatchJobRequest>) -> R<WatchStream> {
        ok(jobs::watch(&self.0, &Caller::of(&req), req.into_inner()).await)
    }
    async fn list_snapshots(&self, req: Request<ListSnapshotsRequest>) -> R<ListSnapshotsResponse> {
        ok(snapshots::list(&self.0, &Caller::of(&req), req.into_inner()).await)
    }
    async fn simulate_retention(
        &self,
        req: Request<SimulateRetentionRequest>,
    ) -> R<SimulateRetentionResponse> {
        ok(snapshots::simulate(&self.0, &Caller::of(&req), req.into_inner()).await)
    }
    async fn list_snapshot_entries(
        &self,
        req: Request<ListSnapshotEntriesRequest>,
    ) -> R<ListSnapshotEntriesResponse> {
        ok(queries::list_entries(&self.0, &Caller::of(&req), req.into_inner()).await)
    }
    async fn diff_snapshots(&self, req: Request<DiffSnapshotsRequest>) -> R<DiffSnapshotsResponse> {
        ok(queries::diff(&self.0, &Caller::of(&req), req.into_inner()).await)
    }
    type ReadSnapshotFileStream = queries::FileStream;
    async fn read_snapshot_file(&self, req: Request<ReadSnapshotFileRequest>) -> R<queries::FileStream> {
        ok(queries::read_file(&self.0, &Caller::of(&req), req.into_inner()).await)
    }
}

#[tonic::async_trait]
impl LeaseService for Handlers {
    async fn acquire_lease(&self, req: Request<AcquireLeaseRequest>) -> R<AcquireLeaseResponse> {
        ok(leases::acquire(&self.0, &Caller::of(&req), req.into_inner()).await)
    }
    async fn heartbeat(&self, req: Request<HeartbeatRequest>) -> R<HeartbeatResponse> {
        ok(leases::heartbeat(&self.0, &Caller::of(&req), req.into_inner()).await)
    }
    async fn append_log(&self, req: Request<AppendLogRequest>) -> R<()> {
        ok(leases::append_log(&self.0, &Caller::of(&req), req.into_inner()).await)
    }
    async fn complete_job(&self, req: Request<CompleteJobRequest>) -> R<CompleteJobResponse> {
        ok(leases::complete(&self.0, &Caller::of(&req), req.into_inner()).await)
    }
    async fn batch_complete_jobs(
        &self,
        req: Request<BatchCompleteJobsRequest>,
    ) -> R<BatchCompleteJobsResponse> {
        ok(leases::batch_complete(&self.0, &Caller::of(&req), req.into_inner()).await)
    }
    async fn acquire_queries(&self, req: Request<AcquireQueriesRequest>) -> R<AcquireQueriesResponse> {
        ok(queries::acquire(&self.0, &Caller::of(&req), req.into_inner()).await)
    }
    async fn answer_query(&self, req: Request<AnswerQueryRequest>) -> R<()> {
        ok(queries::answer(&self.0, &Caller::of(&req), req.into_inner()).await)
    }
}

#[tonic::async_trait]
impl SchedulerInternalService for Handlers {
    async fn run_connection_test(&self, req: Request<RunConnectionTestRequest>) -> R<ConnectionTest> {
        ok(internal::run_connection_test(&self.0, req.into_inner()).await)
    }
    async fn forget_task(&self, req: Request<ForgetTaskRequest>) -> R<()> {
        ok(internal::forget_task(&self.0, req.into_inner()).await)
    }
    async fn forget_project(&self, req: Request<ForgetProjectRequest>) -> R<ForgetProjectResponse> {
        ok(internal::forget_project(&self.0, req.into_inner()).await)
    }
    async fn list_audit_events(&self, req: Request<AuditQuery>) -> R<ListAuditEventsResponse> {
        ok(internal::audit_events(&self.0, req.into_inner()).await)
    }
}
