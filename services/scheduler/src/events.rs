//! Wake-ups across scheduler replicas through Postgres LISTEN/NOTIFY: new work for waiting
//! `AcquireLease` calls, schedule changes for the firing loop, and job changes for
//! `WatchJob` streams. Notifications are hints, never the only path: every waiter also
//! re-checks on a timer, so a lost notification only delays, never loses.
//!
//! A job's watchers ([`JobWatch`]) are woken by that job's changes only, not by every job's.
//! Their re-check is shared: every [`RECHECK`] one query asks whether any watched job's row
//! changed (its `xmin`) and wakes the watchers of those that did, so a thousand idle streams
//! cost one query every two seconds, not a thousand.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use cairn_api::ids::JobId;
use sqlx::{PgConnection, PgPool, postgres::PgListener};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

/// How often the watched jobs are re-checked without a notification.
pub const RECHECK: Duration = Duration::from_secs(2);

/// Channel: work may be available (a job was queued, a store or task slot was freed).
pub const WORK: &str = "cairn_work";
/// Channel: schedules changed (created, updated, resumed).
pub const SCHEDULES: &str = "cairn_schedules";
/// Channel: jobs changed; payload = comma-separated job ids, or empty for "any".
pub const JOBS: &str = "cairn_jobs";

/// Channel: a snapshot query was asked (workers' AcquireQueries wake up).
pub const QUERIES: &str = "cairn_queries";
/// Channel: a query got an answer part, or its asker read some; payload = the query id.
pub const PARTS: &str = "cairn_query_parts";

/// The watchers of each watched job: a change counter they wait on, and how many watch.
type Watched = Arc<Mutex<HashMap<JobId, (watch::Sender<u64>, usize)>>>;

/// The process-wide hub; cheap to clone.
#[derive(Debug, Clone)]
pub struct Events {
    work: Arc<Notify>,
    schedules: Arc<Notify>,
    jobs: Watched,
    queries: Arc<Notify>,
    parts: Arc<Notify>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            work: Arc::new(Notify::new()),
            schedules: Arc::new(Notify::new()),
            jobs: Watched::default(),
            queries: Arc::new(Notify::new()),
            parts: Arc::new(Notify::new()),
        }
    }
}

impl Events {
    /// Waiters for new work.
    pub fn work(&self) -> &Notify {
        &self.work
    }

    /// Waiters for schedule changes.
    pub fn schedules(&self) -> &Notify {
        &self.schedules
    }

    /// Starts watching one job's changes (until the returned handle is dropped).
    pub fn watch_job(&self, id: JobId) -> JobWatch {
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = jobs.entry(id).or_insert_with(|| (watch::channel(0).0, 0));
        entry.1 += 1;
        JobWatch { id, rx: entry.0.subscribe(), jobs: self.jobs.clone() }
    }

    /// Wakes the watchers of `id` (none: nothing happens).
    fn job_changed(&self, id: JobId) {
        if let Some((tx, _)) = self.jobs.lock().unwrap_or_else(PoisonError::into_inner).get(&id) {
            tx.send_modify(|n| *n += 1);
        }
    }

    fn all_jobs_changed(&self) {
        for (tx, _) in self.jobs.lock().unwrap_or_else(PoisonError::into_inner).values() {
            tx.send_modify(|n| *n += 1);
        }
    }

    /// Re-checks the watched jobs every [`RECHECK`] until `shutdown`: one query for all of
    /// them, waking the watchers of the jobs whose rows changed (or vanished) since.
    pub async fn recheck_watched(self, pool: PgPool, shutdown: CancellationToken) {
        let mut seen: HashMap<JobId, String> = HashMap::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(RECHECK) => {}
            }
            let ids: Vec<JobId> =
                self.jobs.lock().unwrap_or_else(PoisonError::into_inner).keys().copied().collect();
            seen.retain(|id, _| ids.contains(id));
            if ids.is_empty() {
                continue;
            }
            let Ok(rows) =
                sqlx::query_as::<_, (JobId, String)>("SELECT id, xmin::text FROM jobs WHERE id = ANY($1)")
                    .bind(&ids)
                    .fetch_all(&pool)
                    .await
            else {
                // The database is away: wake everyone, their own reads will tell.
                self.all_jobs_changed();
                continue;
            };
            let now: HashMap<JobId, String> = rows.into_iter().collect();
            for id in &ids {
                let version = now.get(id);
                if version != seen.get(id) {
                    // Also at a first sighting: the row may have changed since the watcher read it.
                    self.job_changed(*id);
                    match version {
                        Some(v) => seen.insert(*id, v.clone()),
                        None => seen.remove(id),
                    };
                }
            }
        }
    }

    /// Waiters for new snapshot queries.
    pub fn queries(&self) -> &Notify {
        &self.queries
    }

    /// Waiters for answer parts of queries (and for askers reading them).
    pub fn parts(&self) -> &Notify {
        &self.parts
    }

    /// Wakes local waiters directly (same-process changes need no round trip).
    pub fn wake_work(&self) {
        self.work.notify_waiters();
    }

    fn dispatch(&self, channel: &str, payload: &str) {
        match channel {
            WORK => self.work.notify_waiters(),
            SCHEDULES => self.schedules.notify_waiters(),
            QUERIES => self.queries.notify_waiters(),
            PARTS => self.parts.notify_waiters(),
            JOBS => {
                if payload.is_empty() {
                    self.all_jobs_changed();
                }
                for id in payload.split(',').filter_map(|s| s.parse::<JobId>().ok()) {
                    self.job_changed(id);
                }
            }
            _ => {}
        }
    }

    fn everything_may_have_changed(&self) {
        self.work.notify_waiters();
        self.schedules.notify_waiters();
        self.queries.notify_waiters();
        self.parts.notify_waiters();
        self.all_jobs_changed();
    }

    /// Listens until `shutdown`, reconnecting after errors.
    pub async fn listen(self, pool: PgPool, shutdown: CancellationToken) {
        loop {
            match PgListener::connect_with(&pool).await {
                Ok(mut listener) => {
                    if let Err(e) = listener.listen_all([WORK, SCHEDULES, JOBS, QUERIES, PARTS]).await {
                        tracing::warn!(error = %e, "LISTEN failed; retrying");
                    } else {
                        self.everything_may_have_changed();
                        loop {
                            tokio::select! {
                                _ = shutdown.cancelled() => return,
                                n = listener.try_recv() => match n {
                                    Ok(Some(n)) => self.dispatch(n.channel(), n.payload()),
                                    Ok(None) => {
                                        // Connection lost and re-established: notifications may be missing.
                                        self.everything_may_have_changed();
                                    }
                                    Err(e) => {
                                        tracing::warn!(error = %e, "notification listener failed; reconnecting");
                                        break;
                                    }
                                }
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "notification listener cannot connect; retrying"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

/// A watch on one job's changes; dropping it stops watching.
#[derive(Debug)]
pub struct JobWatch {
    id: JobId,
    rx: watch::Receiver<u64>,
    jobs: Watched,
}

impl JobWatch {
    /// Waits until the job may have changed since the last call (or since the watch began).
    pub async fn changed(&mut self) {
        // The sender lives as long as any watch of the job, this one included.
        let _ = self.rx.changed().await;
    }
}

impl Drop for JobWatch {
    fn drop(&mut self) {
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = jobs.get_mut(&self.id) {
            entry.1 -= 1;
            if entry.1 == 0 {
                jobs.remove(&self.id);
            }
        }
    }
}

/// Queues a notification, delivered when the surrounding transaction commits.
pub async fn notify(conn: &mut PgConnection, channel: &str, payload: &str) -> Result<(), sqlx::Error> {
    crate::store::notify(conn, channel, payload).await
}

/// Notifies that these jobs changed (batched into as few notifications as fit).
pub async fn notify_jobs(conn: &mut PgConnection, ids: &[JobId]) -> Result<(), sqlx::Error> {
    // A payload must stay under 8000 bytes; 36 bytes + a comma per id.
    for chunk in ids.chunks(200) {
        let payload = chunk.iter().map(JobId::to_string).collect::<Vec<_>>().join(",");
        notify(conn, JOBS, &payload).await?;
    }
    Ok(())
}
