//! Wake-ups across scheduler replicas through Postgres LISTEN/NOTIFY: new work for waiting
//! `AcquireLease` calls, schedule changes for the firing loop, and job changes for
//! `WatchJob` streams. Notifications are hints, never the only path: every waiter also
//! re-checks on a timer, so a lost notification only delays, never loses.

use std::{sync::Arc, time::Duration};

use cairn_api::ids::JobId;
use sqlx::{PgConnection, PgPool, postgres::PgListener};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

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

/// A job-change event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEvent {
    /// This job changed.
    Job(JobId),
    /// Anything may have changed (listener reconnected, payload too large).
    Any,
}

/// The process-wide hub; cheap to clone.
#[derive(Debug, Clone)]
pub struct Events {
    work: Arc<Notify>,
    schedules: Arc<Notify>,
    jobs: broadcast::Sender<JobEvent>,
    queries: Arc<Notify>,
    parts: Arc<Notify>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            work: Arc::new(Notify::new()),
            schedules: Arc::new(Notify::new()),
            jobs: broadcast::channel(4096).0,
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

    /// A subscription to job changes.
    pub fn subscribe_jobs(&self) -> broadcast::Receiver<JobEvent> {
        self.jobs.subscribe()
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
                    let _ = self.jobs.send(JobEvent::Any);
                }
                for id in payload.split(',').filter_map(|s| s.parse::<JobId>().ok()) {
                    let _ = self.jobs.send(JobEvent::Job(id));
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
        let _ = self.jobs.send(JobEvent::Any);
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
