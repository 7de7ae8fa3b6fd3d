//! The scheduler's internal service for the catalog: connection tests (a TEST_CONNECTION job
//! waited on), task deletions and project deletions.

use std::time::Duration;

use cairn_api::{
    ids::{ConnectorId, JobId, Stored as _, TaskId},
    names::{self, Kind},
    v1::{
        ConnectionTest, ConnectorRole, ForgetProjectRequest, ForgetProjectResponse, ForgetTaskRequest,
        JobState, JobTrigger, RunConnectionTestRequest, TaskType,
    },
};
use cairn_runtime::time::{from_duration, to_timestamp};

use crate::{
    State,
    domain::job::is_final,
    error::{Error, Result},
    events,
    store::{jobs as rows, schedules},
};

/// RunConnectionTest: queue a TEST_CONNECTION job for a worker matching the connector, wait.
pub async fn run_connection_test(state: &State, req: RunConnectionTestRequest) -> Result<ConnectionTest> {
    let connector = req.connector.ok_or_else(|| Error::invalid("connector", "is required"))?;
    let (project, id) = names::parse_canonical(Kind::Connector, &connector.name)
        .map_err(|e| Error::invalid("connector.name", e.to_string()))?;
    let id = ConnectorId::from_uuid(id);
    let wait = req
        .timeout
        .as_ref()
        .and_then(from_duration)
        .unwrap_or(Duration::from_secs(30))
        .min(Duration::from_secs(600));
    let now = state.clock.now();
    let job = rows::New {
        project_id: project.clone(),
        id: JobId::new(),
        task_id: None,
        task_display_name: format!("test {}", connector.display_name),
        r#type: TaskType::TestConnection,
        trigger: JobTrigger::System,
        connector_ids: vec![id],
        selector: connector.worker_selector.clone(),
        test_connector_id: Some(id),
        state: JobState::Queued,
        scheduled_time: now,
        create_time: now,
        max_attempts: 1,
        initial_backoff_ms: 1000,
        max_backoff_ms: 1000,
        timeout_ms: Some(120_000),
        trace_parent: cairn_runtime::grpc::current_traceparent(),
        schedule_id: None,
        occurrence: None,
        store_ids: vec![],
        exclusive: false,
        serial: false,
        end_time: None,
        error: String::new(),
        missed_occurrences: 0,
        request_id: None,
        notify: cairn_api::v1::NotificationMode::Never,
        source_id: None,
        overrides: None,
        run_id: None,
    };
    let mut changes = state.events.watch_job(job.id);
    let mut tx = state.pool.begin().await?;
    rows::insert(&mut tx, &job).await?;
    events::notify(&mut tx, events::WORK, "").await?;
    tx.commit().await?;
    state.events.wake_work();
    let role = ConnectorRole::try_from(connector.role).unwrap_or_default();
    tracing::info!(job.id = %job.id, connector.id = %id, ?role, "connection test queued");
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let mut conn = state.pool.acquire().await?;
        let row = rows::get(&mut conn, Some(&project), job.id)
            .await?
            .ok_or_else(|| Error::Internal("test job vanished".into()))?;
        drop(conn);
        let st = row.state;
        if is_final(st) {
            let j = crate::convert::job(&row)?;
            return Ok(j.connection_test.unwrap_or_else(|| ConnectionTest {
                time: row.end_time.map(to_timestamp),
                ok: false,
                message: if j.error.is_empty() {
                    format!("the test job ended {}", st.stored())
                } else {
                    j.error
                },
                worker: row.worker.clone(),
                job: Kind::Job.name(&project, row.id),
                ..Default::default()
            }));
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                return Err(Error::DeadlineExceeded(format!(
                    "no worker finished the connection test ({}) within {}s",
                    Kind::Job.name(&project, job.id),
                    wait.as_secs()
                )));
            }
            _ = changes.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// ForgetTask: drop the schedules of a deleted task.
pub async fn forget_task(state: &State, req: ForgetTaskRequest) -> Result<()> {
    let (project, id) =
        names::parse_canonical(Kind::Task, &req.task).map_err(|e| Error::invalid("task", e.to_string()))?;
    let id = TaskId::from_uuid(id);
    let mut conn = state.pool.acquire().await?;
    let n = schedules::delete_of_task(&mut conn, &project, id).await?;
    crate::store::protection::delete_of_task(&mut conn, &project, id).await?;
    state.catalog.forget(&(project, id));
    tracing::info!(task.id = %id, schedules = n, "task deleted in the catalog; its schedules are gone");
    Ok(())
}

/// ForgetProject: count, or delete, what the scheduler keeps of a project.
pub async fn forget_project(state: &State, req: ForgetProjectRequest) -> Result<ForgetProjectResponse> {
    let project = names::parse_project(&req.project).map_err(|e| Error::invalid("project", e.to_string()))?;
    let mut tx = state.pool.begin().await?;
    let out = ForgetProjectResponse {
        schedules: schedules::count_of_project(&mut tx, &project).await?,
        jobs: rows::count_of_project(&mut tx, &project).await?,
    };
    if req.delete {
        schedules::delete_of_project(&mut tx, &project).await?;
        rows::delete_of_project(&mut tx, &project).await?;
        crate::store::snapshots::delete_of_project(&mut tx, &project).await?;
        crate::store::protection::delete_of_project(&mut tx, &project).await?;
        crate::store::queries::delete_of_project(&mut tx, &project).await?;
        rows::delete_stores_of_project(&mut tx, &project).await?;
        events::notify(&mut tx, events::SCHEDULES, "").await?;
    }
    tx.commit().await?;
    if req.delete {
        tracing::info!(project.id = %project, schedules = out.schedules, jobs = out.jobs, "project deleted in the catalog; its schedules and history are gone");
    }
    Ok(out)
}

/// ListAuditEvents (internal): the scheduler's own events of a query the catalog authorised.
pub async fn audit_events(
    state: &State,
    q: cairn_api::v1::AuditQuery,
) -> Result<cairn_api::v1::ListAuditEventsResponse> {
    let (filter, cursor, limit) = cairn_runtime::auth::audit::Filter::from_query(&q);
    let mut conn = state.pool.acquire().await?;
    let events = cairn_runtime::auth::audit::list(&mut conn, &filter, cursor, limit).await?;
    Ok(cairn_api::v1::ListAuditEventsResponse {
        events: events.into_iter().map(|e| e.event).collect(),
        next_page_token: String::new(),
    })
}
