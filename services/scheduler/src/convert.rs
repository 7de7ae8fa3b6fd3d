//! Stored rows → API messages, in one place: every module that answers with a job, a log
//! line, a schedule or a snapshot converts here, so none needs another's operations (this is
//! what keeps `jobs`, `notifications` and `schedules` free of import cycles). Names are always
//! built from the row's own project.

use cairn_api::v1::{ConnectionTest, Job, JobProgress, JobState, JobStats, LogLine, Schedule, Snapshot};
use cairn_runtime::time::{opt_timestamp, to_timestamp};

use crate::{
    domain::{job::is_final, recurrence},
    error::Result,
    store::{self, jobs, logs, schedules, snapshots},
};

/// A stored job.
pub fn job(r: &jobs::Row) -> Result<Job> {
    let mut progress: Option<JobProgress> = match &r.progress {
        Some(v) => Some(store::decode(v)?),
        None => None,
    };
    if let Some(p) = progress.as_mut()
        && p.percent == 0.0
        && p.bytes_total > 0
    {
        p.percent = (p.bytes_done as f64 / p.bytes_total as f64 * 100.0).clamp(0.0, 100.0);
    }
    let p = &r.project_id;
    Ok(Job {
        name: r.id.name(p),
        task: r.task_id.map(|id| id.name(p)).unwrap_or_default(),
        task_display_name: r.task_display_name.clone(),
        r#type: r.r#type as i32,
        schedule: r.schedule_id.map(|id| id.name(p)).unwrap_or_default(),
        trigger: r.trigger as i32,
        connectors: r.connector_ids.iter().map(|id| id.name(p)).collect(),
        scheduled_time: Some(to_timestamp(r.scheduled_time)),
        create_time: Some(to_timestamp(r.create_time)),
        start_time: opt_timestamp(r.start_time),
        end_time: opt_timestamp(r.end_time),
        state: r.state as i32,
        attempt: r.attempt,
        max_attempts: r.max_attempts,
        worker: r.worker.clone(),
        progress,
        snapshot: r.snapshot.clone(),
        stats: match &r.stats {
            Some(v) => Some(store::decode::<JobStats>(v)?),
            None => None,
        },
        error: r.error.clone(),
        wait_reason: if r.state == JobState::Queued { r.wait_reason.clone() } else { String::new() },
        missed_occurrences: r.missed_occurrences,
        cancel_requested: r.cancel_requested && !is_final(r.state),
        connection_test: match &r.connection_test {
            Some(v) => {
                let mut t: ConnectionTest = store::decode(v)?;
                t.job = r.id.name(p);
                Some(t)
            }
            None => None,
        },
        trace_parent: r.trace_parent.clone(),
        overrides: r.overrides.as_ref().map(store::decode).transpose()?,
        run: r.run_id.map(|id| id.to_string()).unwrap_or_default(),
        source: r.source_id.map(|id| id.name(p)).unwrap_or_default(),
        log: vec![],
    })
}

/// A stored log line.
pub fn line(l: &logs::Row) -> LogLine {
    LogLine {
        seq: l.seq,
        time: Some(to_timestamp(l.time)),
        level: i32::from(l.level),
        message: l.message.clone(),
        attempt: l.attempt,
    }
}

/// A stored schedule.
pub fn schedule(r: &schedules::Row) -> Result<Schedule> {
    let p = &r.project_id;
    let mut s: Schedule = store::decode(&r.spec)?;
    s.name = r.id.name(p);
    s.display_name = r.display_name.clone();
    s.task = r.task_id.name(p);
    s.enabled = Some(r.enabled);
    s.journalised = r.journalised;
    s.next_run_time = if r.enabled { opt_timestamp(r.next_run_time) } else { None };
    s.last_job = r.last_job_id.map(|id| id.name(p)).unwrap_or_default();
    s.last_job_state = r.last_job_state.unwrap_or_default() as i32;
    s.missed_runs = r.missed_runs;
    s.normalized_recurrence = recurrence::parse(s.recurrence.as_ref(), "recurrence")
        .map(|rec| recurrence::normalized(&rec))
        .unwrap_or_default();
    s.create_time = Some(to_timestamp(r.create_time));
    s.update_time = Some(to_timestamp(r.update_time));
    s.etag = store::etag(r.version);
    Ok(s)
}

/// An indexed snapshot.
pub fn snapshot(r: &snapshots::Row) -> Snapshot {
    let p = &r.project_id;
    let store = r.store_id.name(p);
    Snapshot {
        name: format!("{store}/snapshots/{}", r.id),
        id: r.id.clone(),
        short_id: r.id.chars().take(8).collect(),
        store,
        task: r.task_id.map(|t| t.name(p)).unwrap_or_default(),
        time: Some(to_timestamp(r.time)),
        labels: r.labels.clone(),
        paths: r.paths.clone(),
        hostname: r.hostname.clone(),
        parent: r.parent.clone(),
        total_files: r.total_files,
        total_bytes: r.total_bytes,
        bytes_added: r.bytes_added,
        job: r.job_id.map(|j| j.name(p)).unwrap_or_default(),
    }
}
