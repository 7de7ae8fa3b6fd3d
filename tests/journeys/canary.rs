//! A canary repository password and a canary API token go through a whole backup → restore
//! journey with authentication on; neither may ever appear in a log line (every level, every
//! service of this process), a Status message, an audit event, a job log or a Get/List
//! response.

use std::time::Duration;

use cairn_api::v1::{
    self, Connector, CreateApiTokenRequest, CreateConnectorRequest, CreateServiceAccountRequest,
    CreateTaskRequest, GetJobRequest, JobState, ListAuditEventsRequest, LocalStore, RunTaskRequest,
    ServiceAccount, Task, TaskType, audit_service_client::AuditServiceClient,
    catalog_service_client::CatalogServiceClient, connector::Config as Cfg,
    identity_service_client::IdentityServiceClient, job_service_client::JobServiceClient,
};
use cairn_runtime::grpc::ClientInterceptor;
use tonic::codegen::InterceptedService;

use crate::{harness::*, trace};

const CANARY_PASSWORD: &str = "canary-repository-password-6d1f0b";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_secrets_never_leave_a_lease() {
    trace::install();
    let mut s = stack().await;
    s.worker("w1", "");
    // A service account of the default project with its API token: the canary token.
    let mut identity = IdentityServiceClient::new(authed(&s.catalog_url));
    identity
        .create_service_account(CreateServiceAccountRequest {
            parent: DEFAULT.into(),
            service_account_id: "ci".into(),
            service_account: Some(ServiceAccount { role: v1::Role::Admin as i32, ..Default::default() }),
            ..Default::default()
        })
        .await
        .unwrap();
    let token = identity
        .create_api_token(CreateApiTokenRequest {
            parent: format!("{DEFAULT}/serviceAccounts/ci"),
            token: Some(Default::default()),
        })
        .await
        .unwrap()
        .into_inner()
        .secret;
    let with_token = |url: &str| {
        InterceptedService::new(
            cairn_runtime::grpc::channel(url).unwrap(),
            ClientInterceptor::new(Some(&token)),
        )
    };
    let mut catalog = CatalogServiceClient::new(with_token(&s.catalog_url));
    let mut jobs = JobServiceClient::new(with_token(&s.scheduler_url));
    let mut seen: Vec<String> = Vec::new();

    // Everything through the canary token: connectors (one with the canary password), tasks,
    // a backup and a restore.
    let src = s.path("data");
    generate_tree(&src, 20, 7);
    let repo = s.path("repos/canary");
    let (dest_conn, dest) = s.destination("out").await;
    seen.push(format!("{dest_conn:?}"));
    for c in [
        Connector {
            display_name: "src".into(),
            config: Some(Cfg::LocalPathSource(v1::LocalPathSource {
                paths: vec![src.display().to_string()],
                ..Default::default()
            })),
            ..Default::default()
        },
        Connector {
            display_name: "nas".into(),
            config: Some(Cfg::LocalStore(LocalStore { path: repo.display().to_string() })),
            repository_password: CANARY_PASSWORD.into(),
            create_if_missing: true,
            ..Default::default()
        },
    ] {
        let made = catalog
            .create_connector(CreateConnectorRequest {
                parent: DEFAULT.into(),
                connector: Some(c),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        seen.push(format!("{made:?}"));
    }
    for t in [
        Task {
            display_name: "b".into(),
            r#type: TaskType::Backup as i32,
            source: "src".into(),
            store: "nas".into(),
            ..Default::default()
        },
        Task {
            display_name: "r".into(),
            r#type: TaskType::Restore as i32,
            store: "nas".into(),
            destination: "out".into(),
            ..Default::default()
        },
    ] {
        let made = catalog
            .create_task(CreateTaskRequest { parent: DEFAULT.into(), task: Some(t), ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        seen.push(format!("{made:?}"));
    }
    for task in ["b", "r"] {
        let job = jobs
            .run_task(RunTaskRequest { task: full("tasks", task), ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        let done = s.finished(&job.name, Duration::from_secs(120)).await;
        assert_eq!(done.state(), JobState::Succeeded, "{}", log_text(&done));
        let full_view =
            jobs.get_job(GetJobRequest { name: job.name.clone(), view: 2 }).await.unwrap().into_inner();
        seen.push(format!("{full_view:?}"));
    }
    assert_eq!(
        read_tree(&dest.join(src.strip_prefix("/").unwrap())),
        read_tree(&src),
        "restored tree differs"
    );

    // Every Get/List the operator would look at.
    seen.push(format!(
        "{:?}",
        catalog
            .list_connectors(v1::ListConnectorsRequest { parent: DEFAULT.into(), ..Default::default() })
            .await
            .unwrap()
    ));
    seen.push(format!(
        "{:?}",
        catalog.get_connector(v1::GetConnectorRequest { name: full("connectors", "nas") }).await.unwrap()
    ));
    seen.push(format!(
        "{:?}",
        catalog
            .list_tasks(v1::ListTasksRequest { parent: DEFAULT.into(), ..Default::default() })
            .await
            .unwrap()
    ));
    seen.push(format!(
        "{:?}",
        jobs.list_jobs(v1::ListJobsRequest { parent: DEFAULT.into(), ..Default::default() }).await.unwrap()
    ));
    seen.push(format!(
        "{:?}",
        jobs.list_snapshots(v1::ListSnapshotsRequest { parent: DEFAULT.into(), ..Default::default() })
            .await
            .unwrap()
    ));
    seen.push(format!(
        "{:?}",
        identity
            .list_api_tokens(v1::ListApiTokensRequest {
                parent: format!("{DEFAULT}/serviceAccounts/ci"),
                ..Default::default()
            })
            .await
            .unwrap()
    ));
    // Refusals: the token on another project, a bad request, a wrong token.
    let errors = [
        catalog
            .list_tasks(v1::ListTasksRequest { parent: "projects/nowhere".into(), ..Default::default() })
            .await
            .unwrap_err(),
        catalog
            .get_connector(v1::GetConnectorRequest { name: "connectors/not-a-full-name".into() })
            .await
            .unwrap_err(),
        CatalogServiceClient::new(InterceptedService::new(
            cairn_runtime::grpc::channel(&s.catalog_url).unwrap(),
            ClientInterceptor::new(Some(&format!("{token}-tampered"))),
        ))
        .list_tasks(v1::ListTasksRequest { parent: DEFAULT.into(), ..Default::default() })
        .await
        .unwrap_err(),
    ];
    seen.extend(errors.iter().map(|e| format!("{} {:?}", e.message(), e.details())));
    let audit = AuditServiceClient::new(authed(&s.catalog_url))
        .list_audit_events(ListAuditEventsRequest {
            parent: "projects/-".into(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        audit.events.iter().any(|e| e.detail.starts_with("released the decrypted secrets")),
        "releases audited"
    );
    seen.push(format!("{audit:?}"));
    seen.push(cairn_testkit::logs::captured());
    assert!(seen.last().is_some_and(|l| l.contains("job")), "the log capture is working");
    for (i, text) in seen.iter().enumerate() {
        assert!(!text.contains(CANARY_PASSWORD), "the canary password leaked in #{i}:\n{text}");
        assert!(!text.contains(&token), "the canary token leaked in #{i}:\n{text}");
    }
}
