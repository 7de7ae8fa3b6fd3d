//! The scheduler's notion of now. Firing and lease times never come from workers: production
//! uses [`DbClock`], the local clock corrected by its measured offset from Postgres' clock
//! (so replicas on different hosts agree); tests inject a [`ManualClock`].

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::Notify;

/// A source of time with a way to wait on it.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
    /// Waits until `now() >= at` (or a little earlier: callers re-check).
    fn sleep_until(&self, at: DateTime<Utc>) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// Shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// Local time plus the offset to Postgres' `clock_timestamp()`, re-measured every minute.
#[derive(Debug, Default)]
pub struct DbClock {
    offset_us: AtomicI64,
}

impl DbClock {
    /// A clock with no correction yet.
    pub fn new() -> Arc<Self> {
        Arc::new(DbClock::default())
    }

    /// Measures the offset once (midpoint of the round trip).
    pub async fn sync(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        let before = Utc::now();
        let db = crate::store::clock_timestamp(pool).await?;
        let after = Utc::now();
        let mid = before + (after - before) / 2;
        let offset = (db - mid).num_microseconds().unwrap_or(0);
        self.offset_us.store(offset, Ordering::Relaxed);
        Ok(())
    }

    /// Keeps the offset fresh until `shutdown`.
    pub async fn keep_synced(self: Arc<Self>, pool: PgPool, shutdown: tokio_util::sync::CancellationToken) {
        loop {
            if let Err(e) = self.sync(&pool).await {
                tracing::debug!(error = %e, "clock sync failed");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            }
        }
    }
}

impl Clock for DbClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::microseconds(self.offset_us.load(Ordering::Relaxed))
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let d = (at - self.now()).to_std().unwrap_or_default();
        Box::pin(tokio::time::sleep(d))
    }
}

/// A clock that moves only when told (tests).
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
    moved: Notify,
}

impl ManualClock {
    /// A clock showing `at`.
    pub fn new(at: DateTime<Utc>) -> Arc<Self> {
        Arc::new(ManualClock { now: Mutex::new(at), moved: Notify::new() })
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let by = chrono::Duration::from_std(by).unwrap_or_default();
        if let Ok(mut now) = self.now.lock() {
            *now += by;
        }
        self.moved.notify_waiters();
    }

    /// Sets the clock.
    pub fn set(&self, at: DateTime<Utc>) {
        if let Ok(mut now) = self.now.lock() {
            *now = at;
        }
        self.moved.notify_waiters();
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.now.lock().map(|n| *n).unwrap_or_else(|e| *e.into_inner())
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            if self.now() >= at {
                return;
            }
            // Wake on a move, or re-check soon so callers can observe other changes.
            let _ = tokio::time::timeout(Duration::from_millis(50), self.moved.notified()).await;
        })
    }
}
