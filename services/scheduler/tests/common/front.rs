//! The real catalog and scheduler with authentication on (the front-door tests).

use cairn_runtime::CancellationToken;

use super::KEY;

/// The services' cluster token.
pub const CLUSTER: &str = "a-cluster-token-for-tests";
/// The platform admin's bootstrap API token.
pub const ADMIN: &str = "bootstrap-token-of-the-auth-tests-0001";
/// The platform admin's password.
pub const ADMIN_PASSWORD: &str = "the admin password";

pub struct Front {
    pub db: cairn_testkit::TestDatabase,
    pub catalog: String,
    pub scheduler: String,
    pub stop: CancellationToken,
}

impl Drop for Front {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Both services on port 0, authentication on; `tweak` adjusts the catalog's configuration.
pub async fn front_with(tweak: impl FnOnce(&mut cairn_catalog::Config)) -> Front {
    let db = cairn_testkit::database().await;
    let cl = cairn_runtime::grpc::bind(([127, 0, 0, 1], 0).into()).await.unwrap();
    let sl = cairn_runtime::grpc::bind(([127, 0, 0, 1], 0).into()).await.unwrap();
    let catalog = format!("http://{}", cl.local_addr().unwrap());
    let scheduler = format!("http://{}", sl.local_addr().unwrap());
    let stop = CancellationToken::new();
    let mut c = cairn_catalog::Config {
        database_url: Some(db.url().to_owned()),
        secret_key: Some(KEY.into()),
        scheduler_url: scheduler.clone(),
        cluster_token: Some(CLUSTER.into()),
        bootstrap_token: Some(ADMIN.into()),
        bootstrap_admin_password: Some(ADMIN_PASSWORD.into()),
        ..Default::default()
    };
    tweak(&mut c);
    let s = cairn_scheduler::Config {
        database_url: Some(db.url().to_owned()),
        catalog_url: catalog.clone(),
        cluster_token: Some(CLUSTER.into()),
        ..Default::default()
    };
    tokio::spawn(cairn_catalog::run(c, cl, stop.clone()));
    tokio::spawn(cairn_scheduler::run(s, sl, stop.clone()));
    cairn_testkit::wait_serving(&catalog, "cairn.v1.CatalogService").await;
    cairn_testkit::wait_serving(&scheduler, "cairn.v1.JobService").await;
    Front { db, catalog, scheduler, stop }
}
