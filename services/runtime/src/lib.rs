//! What every Cairn binary does the same way, so services differ only in their domain.
//!
//! Layout: [`auth`] (the policy table, authentication, authorisation and audit of every
//! call), [`config`] (defaults → file → `CAIRN_*` env → flags → validate), [`telemetry`]
//! (tracing + optional OTLP export, W3C propagation), [`shutdown`] (SIGINT/SIGTERM → one
//! cancellation token), [`grpc`] (server with health, reflection and request spans; client
//! channels that carry trace context and the cluster token), [`status`] (the error →
//! `tonic::Status` helpers with `ErrorInfo` and `BadRequest`), [`db`] (Postgres pools and
//! per-schema migrations), [`tls`] (rustls servers that follow their certificate files, verified
//! clients), [`pagination`] (opaque page tokens), [`metrics`] (Prometheus), [`filter`] (the
//! AIP-160 filters of List methods, as SQL), [`idempotency`] (request ids of mutating calls).
//!
//! Nothing here knows about connectors, tasks or jobs.

pub mod auth;
pub mod backoff;
pub mod config;
pub mod db;
pub mod filter;
pub mod grpc;
pub mod idempotency;
pub mod metrics;
pub mod pagination;
pub mod shutdown;
pub mod status;
pub mod telemetry;
pub mod time;
pub mod tls;

pub use tokio_util::sync::CancellationToken;
