//! Who is calling the scheduler. The scheduler keeps no identities: it asks the catalog
//! (`CatalogInternalService.Authenticate`) and keeps each answer for [`CACHE_TTL`], so the
//! lease path costs a hash and a map lookup. A revoked token or a disabled user therefore
//! stops working here within [`CACHE_TTL`]. Lease tokens are checked by the reports themselves
//! (the fenced writes of `leases`).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use cairn_runtime::auth::{Authenticator, Principal, credential_hash};
use tonic::Status;

use crate::catalog::Catalog;

/// How long an answer of the catalog is trusted.
pub const CACHE_TTL: Duration = Duration::from_secs(10);
/// Most cached answers (the cache is emptied when full).
const CACHE_MAX: usize = 10_000;

/// The scheduler's authenticator.
#[derive(Debug)]
pub struct SchedulerAuth {
    catalog: Catalog,
    cache: Mutex<HashMap<Vec<u8>, (Instant, Principal)>>,
}

impl SchedulerAuth {
    /// Asking `catalog`.
    pub fn new(catalog: Catalog) -> Arc<SchedulerAuth> {
        Arc::new(SchedulerAuth { catalog, cache: Mutex::default() })
    }
}

#[tonic::async_trait]
impl Authenticator for SchedulerAuth {
    async fn authenticate(&self, credential: &str) -> Result<Principal, Status> {
        let key = credential_hash(credential);
        if let Ok(cache) = self.cache.lock()
            && let Some((at, p)) = cache.get(&key)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(p.clone());
        }
        let p = self.catalog.authenticate(credential).await?;
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(key, (Instant::now(), p.clone()));
        }
        Ok(p)
    }
}
