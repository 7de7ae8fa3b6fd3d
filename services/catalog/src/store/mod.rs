//! SQL of the catalog (schema `catalog`). Functions take `&mut PgConnection` so callers choose
//! the transaction. Rows carry the stored API message as proto3 JSON; [`decode`] and
//! [`encode`] convert. No validation here: the domain has already accepted what is written.

pub mod connectors;
pub mod identity;
pub mod projects;
pub mod tasks;

use crate::error::{Error, Result};

/// A record's sealed secrets (start-up re-sealing after a key rotation).
#[derive(Debug, sqlx::FromRow)]
pub struct Sealed<Id> {
    /// The record.
    pub id: Id,
    /// The sealed blob.
    pub secrets: Vec<u8>,
}

/// Stored proto3 JSON → message.
pub fn decode<M: prost::Message + prost::Name + Default>(value: &serde_json::Value) -> Result<M> {
    cairn_api::json::from_json(&value.to_string()).map_err(|e| Error::Internal(format!("stored record: {e}")))
}

/// Message → proto3 JSON for storage.
pub fn encode<M: prost::Message + prost::Name>(msg: &M) -> Result<serde_json::Value> {
    cairn_api::json::to_json(msg).map_err(|e| Error::Internal(format!("encoding record: {e}")))
}

/// The etag of a version.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// Checks a client etag against the stored version (empty = no check).
pub fn check_etag(given: &str, version: i64, what: &str) -> Result<()> {
    if given.is_empty() || given == etag(version) { Ok(()) } else { Err(Error::Etag(what.to_owned())) }
}
