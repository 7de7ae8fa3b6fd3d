//! Postgres pools and per-service migrations. Each service owns one schema (`catalog`,
//! `scheduler`) and keeps its own migrations table inside it, so services migrate
//! independently against one database. SQLSTATEs are classified here, once.

use std::time::Duration;

use sqlx::{
    PgPool,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
};

/// Pool settings shared by services.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Maximum connections.
    pub max_connections: u32,
    /// How long to wait for a free connection.
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings { max_connections: 16, acquire_timeout: Duration::from_secs(10) }
    }
}

/// Connection options for `url` with `search_path` set to the service's schema.
pub fn options(url: &str, schema: &str) -> Result<PgConnectOptions, sqlx::Error> {
    let opts: PgConnectOptions = url.parse()?;
    Ok(opts.options([("search_path", schema)]).application_name(&format!("cairn-{schema}")))
}

/// A pool whose connections see `schema` first. Does not connect until first use.
pub fn pool(url: &str, schema: &str, settings: &PoolSettings) -> Result<PgPool, sqlx::Error> {
    let opts = options(url, schema)?;
    Ok(PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .connect_lazy_with(opts))
}

/// Applies `migrator` inside `schema` (created if missing), tracking applied migrations in
/// `{schema}._sqlx_migrations`. Safe to run from several replicas at once (advisory lock).
pub async fn migrate(pool: &PgPool, migrator: &Migrator, schema: &'static str) -> Result<(), sqlx::Error> {
    let mut m = Migrator { migrations: migrator.migrations.clone(), ..Migrator::DEFAULT };
    m.create_schema(schema);
    m.dangerous_set_table_name(format!("{schema}._sqlx_migrations"));
    m.run(pool).await.map_err(|e| sqlx::Error::Migrate(Box::new(e)))
}

/// What a database error means to a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbErrorKind {
    /// A unique constraint (SQLSTATE 23505).
    UniqueViolation,
    /// A foreign key (23503).
    ForeignKeyViolation,
    /// A check constraint (23514).
    CheckViolation,
    /// Serialization failure or deadlock (40001, 40P01): retry.
    Conflict,
    /// The server is unreachable, shutting down or out of connections.
    Unavailable,
    /// Anything else.
    Other,
}

/// Classifies a sqlx error by SQLSTATE (or connection failure).
pub fn classify(err: &sqlx::Error) -> DbErrorKind {
    match err {
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("23505") => DbErrorKind::UniqueViolation,
            Some("23503") => DbErrorKind::ForeignKeyViolation,
            Some("23514") => DbErrorKind::CheckViolation,
            Some("40001" | "40P01") => DbErrorKind::Conflict,
            Some(c) if c.starts_with("08") || c.starts_with("57P") || c == "53300" => {
                DbErrorKind::Unavailable
            }
            _ => DbErrorKind::Other,
        },
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => {
            DbErrorKind::Unavailable
        }
        _ => DbErrorKind::Other,
    }
}

/// The status a client gets for a database error it cannot do anything about: UNAVAILABLE
/// while the database is unreachable, ABORTED for a serialisation conflict or deadlock (retry),
/// INTERNAL otherwise. The error itself is logged, never sent.
pub fn to_status(err: &sqlx::Error) -> tonic::Status {
    use crate::status::{self, reason};
    match classify(err) {
        DbErrorKind::Unavailable => {
            tracing::warn!(error = %err, "database unavailable");
            status::unavailable("the database")
        }
        DbErrorKind::Conflict => {
            status::with_reason(tonic::Code::Aborted, reason::UNAVAILABLE, "concurrent update; retry")
        }
        _ => {
            tracing::error!(error = %err, "database error");
            status::internal()
        }
    }
}

/// The constraint a database error names, if any.
pub fn constraint(err: &sqlx::Error) -> Option<String> {
    match err {
        sqlx::Error::Database(db) => db.constraint().map(str::to_owned),
        _ => None,
    }
}
