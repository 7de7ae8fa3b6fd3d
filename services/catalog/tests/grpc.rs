//! The catalog over real gRPC against a real Postgres database (fresh per test).

use std::time::Duration;

use cairn_api::v1::{
    CommandSource, Connector, ConnectorRole, CreateConnectorRequest, CreateTaskRequest,
    DeleteConnectorRequest, DeleteTaskRequest, GetConnectorRequest, GetTaskRequest, ListConnectorsRequest,
    ListTasksRequest, LocalPathDestination, LocalPathSource, LocalStore, RestStore, S3Store, SftpStore, Task,
    TaskType, TestConnectorRequest, UpdateConnectorRequest, UpdateTaskRequest,
    catalog_service_client::CatalogServiceClient, connector::Config as Cfg,
};
use cairn_catalog::Config;
use cairn_runtime::{CancellationToken, status};
use cairn_testkit::{TestDatabase, dynamic::DynamicClient};
use sqlx::PgPool;
use tonic::{Code, transport::Channel};

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const DEFAULT: &str = "projects/default";

/// A connector's full name in the default project.
fn cn(name: &str) -> String {
    format!("{DEFAULT}/connectors/{name}")
}

/// A task's full name in the default project.
fn tn(name: &str) -> String {
    format!("{DEFAULT}/tasks/{name}")
}

struct Catalog {
    url: String,
    client: CatalogServiceClient<Channel>,
    pool: PgPool,
    shutdown: CancellationToken,
    _db: TestDatabase,
}

impl Drop for Catalog {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start() -> Catalog {
    start_with(|_| {}).await
}

async fn start_with(tweak: impl FnOnce(&mut Config)) -> Catalog {
    cairn_testkit::logs::capture();
    let db = cairn_testkit::database().await;
    let listener = cairn_runtime::grpc::bind(([127, 0, 0, 1], 0).into()).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = Config {
        database_url: Some(db.url().to_owned()),
        secret_key: Some(KEY.into()),
        auth_disabled: true,
        scheduler_url: "http://127.0.0.1:9".into(),
        ..Config::default()
    };
    let mut config = config;
    tweak(&mut config);
    let shutdown = CancellationToken::new();
    tokio::spawn(cairn_catalog::run(config, listener, shutdown.clone()));
    cairn_testkit::wait_serving(&url, "cairn.v1.CatalogService").await;
    let client = CatalogServiceClient::connect(url.clone()).await.unwrap();
    let pool = PgPool::connect(db.url()).await.unwrap();
    Catalog { url, client, pool, shutdown, _db: db }
}

fn local_store(name: &str, pw: &str) -> Connector {
    Connector {
        display_name: name.into(),
        config: Some(Cfg::LocalStore(LocalStore { path: format!("/srv/{name}") })),
        repository_password: pw.into(),
        ..Default::default()
    }
}

fn source(name: &str) -> Connector {
    Connector {
        display_name: name.into(),
        config: Some(Cfg::LocalPathSource(LocalPathSource {
            paths: vec!["/data".into()],
            ..Default::default()
        })),
        ..Default::default()
    }
}

async fn create(c: &mut Catalog, connector: Connector) -> Result<Connector, tonic::Status> {
    c.client
        .create_connector(CreateConnectorRequest {
            parent: DEFAULT.into(),
            connector: Some(connector),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM catalog.{table}")))
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn reflection_can_be_switched_off() {
    let c = start_with(|c| c.reflection_disabled = true).await;
    assert!(DynamicClient::connect(&c.url).await.is_err(), "reflection still served");
    // Health stays open.
    cairn_testkit::wait_serving(&c.url, "cairn.v1.CatalogService").await;
}

#[tokio::test]
async fn reflection_exposes_the_contract_and_json_calls_work() {
    let c = start().await;
    let dynamic = DynamicClient::connect(&c.url).await.unwrap();
    for svc in ["cairn.v1.CatalogService", "grpc.health.v1.Health", "cairn.v1.CatalogInternalService"] {
        assert!(dynamic.services().iter().any(|s| s == svc), "{svc} not listed: {:?}", dynamic.services());
    }
    // The descriptors served cover the whole cairn.v1 package, not only the catalog's files.
    for msg in [
        "cairn.v1.Job",
        "cairn.v1.PreviewScheduleRequest",
        "cairn.v1.SimulateRetentionRequest",
        "cairn.v1.Lease",
    ] {
        assert!(dynamic.pool().get_message_by_name(msg).is_some(), "{msg} not served");
    }
    let svc = "cairn.v1.CatalogService";
    let created = dynamic
        .call(
            svc,
            "CreateConnector",
            r#"{"parent": "projects/default", "connector": {"displayName": "nas", "localStore": {"path": "/srv/repo"}, "repositoryPassword": "pw-json-1"}}"#,
        )
        .await
        .unwrap();
    assert_eq!(created["role"], "CONNECTOR_ROLE_STORE");
    assert_eq!(created["repositoryPasswordSet"], true);
    assert!(created.get("repositoryPassword").is_none());
    let name = created["name"].as_str().unwrap().to_owned();
    dynamic
        .call(
            svc,
            "CreateConnector",
            r#"{"parent": "projects/default", "connector": {"displayName": "src", "localPathSource": {"paths": ["/data"]}}}"#,
        )
        .await
        .unwrap();
    dynamic
        .call(
            svc,
            "CreateConnector",
            r#"{"parent": "projects/default", "connector": {"displayName": "dst", "localPathDestination": {"path": "/restore"}}}"#,
        )
        .await
        .unwrap();
    let got = dynamic.call(svc, "GetConnector", &format!(r#"{{"name": "{name}"}}"#)).await.unwrap();
    assert_eq!(got["displayName"], "nas");
    let listed = dynamic
        .call(svc, "ListConnectors", r#"{"parent": "projects/default", "role": "CONNECTOR_ROLE_STORE"}"#)
        .await
        .unwrap();
    assert_eq!(listed["connectors"].as_array().unwrap().len(), 1);
    let updated = dynamic
        .call(
            svc,
            "UpdateConnector",
            r#"{"connector": {"name": "projects/default/connectors/nas", "description": "the NAS"}, "updateMask": "description"}"#,
        )
        .await
        .unwrap();
    assert_eq!(updated["description"], "the NAS");
    let task = dynamic
        .call(
            svc,
            "CreateTask",
            r#"{"parent": "projects/default", "task": {"displayName": "nightly", "type": "TASK_TYPE_BACKUP", "source": "src", "store": "nas",
                "backup": {"mode": "BACKUP_MODE_FULL", "retention": {"keepDaily": 7}}}}"#,
        )
        .await
        .unwrap();
    assert_eq!(task["backup"]["mode"], "BACKUP_MODE_FULL");
    assert!(task["store"].as_str().unwrap().starts_with("projects/default/connectors/"));
    dynamic.call(svc, "GetTask", r#"{"name": "projects/default/tasks/nightly"}"#).await.unwrap();
    let tasks = dynamic
        .call(svc, "ListTasks", r#"{"parent": "projects/default", "connector": "nas"}"#)
        .await
        .unwrap();
    assert_eq!(tasks["tasks"].as_array().unwrap().len(), 1);
    dynamic
        .call(
            svc,
            "UpdateTask",
            r#"{"task": {"name": "projects/default/tasks/nightly", "labels": ["prod"]}, "updateMask": "labels"}"#,
        )
        .await
        .unwrap();
    // No scheduler runs in this test: the test call reports it instead of hanging.
    let err = dynamic
        .call(svc, "TestConnector", r#"{"name": "projects/default/connectors/nas", "timeout": "1s"}"#)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    dynamic.call(svc, "DeleteTask", r#"{"name": "projects/default/tasks/nightly"}"#).await.unwrap();
    dynamic.call(svc, "DeleteConnector", r#"{"name": "projects/default/connectors/dst"}"#).await.unwrap();
    let health = dynamic.call("grpc.health.v1.Health", "Check", "{}").await.unwrap();
    assert_eq!(health["status"], "SERVING");
}

#[tokio::test]
async fn every_connector_type_round_trips() {
    let mut c = start().await;
    let configs = vec![
        source("src"),
        Connector {
            display_name: "pgdump".into(),
            config: Some(Cfg::CommandSource(CommandSource {
                command: vec!["pg_dump".into(), "app".into()],
                file_name: "app.sql".into(),
            })),
            worker_selector: [("host".to_owned(), "db1".to_owned())].into(),
            ..Default::default()
        },
        local_store("local", "pw"),
        Connector {
            display_name: "s3".into(),
            config: Some(Cfg::S3Store(S3Store {
                endpoint: "http://minio:9000".into(),
                bucket: "backups".into(),
                prefix: "cairn".into(),
                access_key_id: "AKIA".into(),
                secret_access_key: "s3-secret-value".into(),
                ..Default::default()
            })),
            repository_password: "pw".into(),
            max_concurrent_jobs: 2,
            create_if_missing: true,
            ..Default::default()
        },
        Connector {
            display_name: "sftp".into(),
            config: Some(Cfg::SftpStore(SftpStore {
                host: "backup.example.com".into(),
                user: "cairn".into(),
                path: "/srv/repo".into(),
                ..Default::default()
            })),
            repository_password: "pw".into(),
            ..Default::default()
        },
        Connector {
            display_name: "rest".into(),
            config: Some(Cfg::RestStore(RestStore {
                url: "https://rest.example.com/repo".into(),
                username: "u".into(),
                password: "rest-secret".into(),
                ..Default::default()
            })),
            repository_password: "pw".into(),
            ..Default::default()
        },
        Connector {
            display_name: "dst".into(),
            config: Some(Cfg::LocalPathDestination(LocalPathDestination { path: "/restore".into() })),
            ..Default::default()
        },
    ];
    for input in configs {
        let made = create(&mut c, input.clone()).await.unwrap();
        assert!(made.name.starts_with("projects/default/connectors/"));
        assert!(!made.etag.is_empty());
        let got = c
            .client
            .get_connector(GetConnectorRequest { name: made.name.clone() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got, made);
        let by_name = c
            .client
            .get_connector(GetConnectorRequest { name: cn(&input.display_name) })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(by_name.name, made.name);
        assert_eq!(
            got.config.as_ref().map(std::mem::discriminant),
            input.config.as_ref().map(std::mem::discriminant)
        );
    }
    let s3 = c.client.get_connector(GetConnectorRequest { name: cn("s3") }).await.unwrap().into_inner();
    assert_eq!(s3.max_concurrent_jobs, 2);
    assert!(s3.create_if_missing);
    let Some(Cfg::S3Store(cfg)) = &s3.config else { panic!() };
    assert!(cfg.secret_access_key.is_empty() && cfg.secret_access_key_set);
    let local = c.client.get_connector(GetConnectorRequest { name: cn("local") }).await.unwrap().into_inner();
    assert_eq!(local.max_concurrent_jobs, 4, "stores default to 4 concurrent jobs");
    let src = c.client.get_connector(GetConnectorRequest { name: cn("src") }).await.unwrap().into_inner();
    assert_eq!(src.role, ConnectorRole::Source as i32);
    assert_eq!(src.r#type, "local_path");
}

#[tokio::test]
async fn secrets_never_leave_in_clear() {
    let mut c = start().await;
    let secret = "correct-horse-battery-staple-42";
    let s3_secret = "s3-key-very-secret-77";
    let made = create(&mut c, local_store("vault", secret)).await.unwrap();
    let s3 = create(
        &mut c,
        Connector {
            display_name: "bucket".into(),
            config: Some(Cfg::S3Store(S3Store {
                endpoint: "https://s3.example.com".into(),
                bucket: "b-1".into(),
                access_key_id: "AK".into(),
                secret_access_key: s3_secret.into(),
                ..Default::default()
            })),
            repository_password: secret.into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(made.repository_password.is_empty() && made.repository_password_set);
    let list = c
        .client
        .list_connectors(ListConnectorsRequest { parent: DEFAULT.into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let shown = format!("{list:?}{made:?}{s3:?}");
    assert!(!shown.contains(secret) && !shown.contains(s3_secret));
    // Updating something else keeps the password; updating the password replaces it.
    let mut patch = made.clone();
    patch.description = "x".into();
    let kept = c
        .client
        .update_connector(UpdateConnectorRequest {
            connector: Some(patch),
            update_mask: Some(prost_types::FieldMask { paths: vec!["description".into()] }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(kept.repository_password_set);
    // The database holds no plaintext anywhere in the row.
    let rows: Vec<String> = sqlx::query_scalar("SELECT row_to_json(c)::text FROM catalog.connectors c")
        .fetch_all(&c.pool)
        .await
        .unwrap();
    let raw: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT secrets FROM catalog.connectors WHERE secrets IS NOT NULL")
            .fetch_all(&c.pool)
            .await
            .unwrap();
    assert_eq!(raw.len(), 2);
    for r in rows.iter().map(String::as_bytes).chain(raw.iter().map(Vec::as_slice)) {
        for s in [secret, s3_secret] {
            assert!(!r.windows(s.len()).any(|w| w == s.as_bytes()), "plaintext secret in the database");
        }
    }
    // Nor in anything logged by this process.
    let logs = cairn_testkit::logs::captured();
    assert!(logs.contains("connector created"), "logs were not captured");
    assert!(!logs.contains(secret) && !logs.contains(s3_secret), "secret found in logs");
}

#[tokio::test]
async fn invalid_input_names_the_field_and_writes_nothing() {
    let mut c = start().await;
    let cases: Vec<(Connector, &str)> = vec![
        (Connector { display_name: "".into(), ..local_store("x", "pw") }, "connector.display_name"),
        (
            Connector {
                config: Some(Cfg::LocalStore(LocalStore { path: "relative".into() })),
                ..local_store("a", "pw")
            },
            "connector.local_store.path",
        ),
        (local_store("nopw", ""), "connector.repository_password"),
        (
            Connector {
                config: Some(Cfg::S3Store(S3Store {
                    endpoint: "http://x".into(),
                    bucket: "UPPER".into(),
                    access_key_id: "a".into(),
                    secret_access_key: "b".into(),
                    ..Default::default()
                })),
                ..local_store("s3bad", "pw")
            },
            "connector.s3_store.bucket",
        ),
        (
            Connector {
                config: Some(Cfg::LocalPathSource(LocalPathSource {
                    paths: vec!["/d".into()],
                    include: vec!["".into()],
                    ..Default::default()
                })),
                ..source("globs")
            },
            "connector.local_path_source.include[0]",
        ),
        (Connector { config: None, ..source("none") }, "connector.config"),
        (Connector { role: ConnectorRole::Destination as i32, ..source("role") }, "connector.role"),
        (Connector { max_concurrent_jobs: 3, ..source("mcj") }, "connector.max_concurrent_jobs"),
        (
            Connector { worker_selector: [("bad key".to_owned(), "v".to_owned())].into(), ..source("sel") },
            "connector.worker_selector[\"bad key\"]",
        ),
    ];
    for (input, field) in cases {
        let err = create(&mut c, input).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().starts_with(field), "{} should name {field}", err.message());
        assert!(status::fields_of(&err).iter().any(|f| f == field));
    }
    assert_eq!(count(&c.pool, "connectors").await, 0, "nothing is written on error");

    // Tasks: a wrong role names the field and the expected role; nothing written.
    create(&mut c, source("src")).await.unwrap();
    create(&mut c, local_store("nas", "pw")).await.unwrap();
    let bad_task = Task {
        display_name: "t".into(),
        r#type: TaskType::Backup as i32,
        source: "nas".into(),
        store: "src".into(),
        ..Default::default()
    };
    let err = c
        .client
        .create_task(CreateTaskRequest { parent: DEFAULT.into(), task: Some(bad_task), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().starts_with("task.source: connector nas is a STORE connector"),
        "{}",
        err.message()
    );
    assert!(err.message().contains("needs a SOURCE connector"), "{}", err.message());
    assert_eq!(status::fields_of(&err), vec!["task.source", "task.store"]);
    assert_eq!(count(&c.pool, "tasks").await, 0);
    // Duplicate names.
    let dup = create(&mut c, local_store("nas", "pw")).await.unwrap_err();
    assert_eq!(dup.code(), Code::AlreadyExists);
    assert_eq!(count(&c.pool, "connectors").await, 2);
    // Bad page token.
    let err = c
        .client
        .list_connectors(ListConnectorsRequest {
            parent: DEFAULT.into(),
            page_token: "garbage".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status::fields_of(&err), vec!["page_token"]);
}

#[tokio::test]
async fn pagination_covers_everything_once() {
    let mut c = start().await;
    for i in 0..250 {
        create(&mut c, source(&format!("src-{i:03}"))).await.unwrap();
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut pages = 0;
    let mut token = String::new();
    loop {
        let page = c
            .client
            .list_connectors(ListConnectorsRequest {
                parent: DEFAULT.into(),
                page_size: 100,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        for conn in page.connectors {
            assert!(seen.insert(conn.name), "duplicate across pages");
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 250);
    // A token is bound to its filters.
    let first = c
        .client
        .list_connectors(ListConnectorsRequest {
            parent: DEFAULT.into(),
            page_size: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let err = c
        .client
        .list_connectors(ListConnectorsRequest {
            parent: DEFAULT.into(),
            page_size: 10,
            page_token: first.next_page_token,
            role: ConnectorRole::Store as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn request_ids_make_creates_idempotent() {
    let mut c = start().await;
    let rid = "0193f3a2-6b1c-7cc0-8a5e-3b0c1d2e3f40".to_owned();
    let req = CreateConnectorRequest {
        parent: DEFAULT.into(),
        connector: Some(source("once")),
        request_id: rid.clone(),
        ..Default::default()
    };
    let a = c.client.create_connector(req.clone()).await.unwrap().into_inner();
    let b = c.client.create_connector(req).await.unwrap().into_inner();
    assert_eq!(a.name, b.name);
    assert_eq!(count(&c.pool, "connectors").await, 1);
    let bad = CreateConnectorRequest {
        parent: DEFAULT.into(),
        connector: Some(source("x")),
        request_id: "nope".into(),
        ..Default::default()
    };
    let err = c.client.create_connector(bad).await.unwrap_err();
    assert_eq!(status::fields_of(&err), vec!["request_id"]);
    // validate_only writes nothing.
    let v = CreateConnectorRequest {
        parent: DEFAULT.into(),
        connector: Some(source("dry")),
        validate_only: true,
        ..Default::default()
    };
    c.client.create_connector(v).await.unwrap();
    assert_eq!(count(&c.pool, "connectors").await, 1);
}

#[tokio::test]
async fn updates_use_masks_and_etags() {
    let mut c = start().await;
    let made = create(&mut c, local_store("nas", "pw")).await.unwrap();
    let mut patch = Connector { name: made.name.clone(), etag: made.etag.clone(), ..Default::default() };
    patch.max_concurrent_jobs = 9;
    patch.description = "ignored: not in the mask".into();
    let mask =
        |p: &[&str]| Some(prost_types::FieldMask { paths: p.iter().map(|s| (*s).to_owned()).collect() });
    let updated = c
        .client
        .update_connector(UpdateConnectorRequest {
            connector: Some(patch.clone()),
            update_mask: mask(&["max_concurrent_jobs"]),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.max_concurrent_jobs, 9);
    assert_eq!(updated.description, "");
    assert_ne!(updated.etag, made.etag);
    // The old etag is stale now.
    let err = c
        .client
        .update_connector(UpdateConnectorRequest {
            connector: Some(patch),
            update_mask: mask(&["max_concurrent_jobs"]),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    assert_eq!(status::reason_of(&err).as_deref(), Some(status::reason::ETAG_MISMATCH));
    // Nested paths, and the type cannot change.
    let nested = Connector {
        name: cn("nas"),
        config: Some(Cfg::LocalStore(LocalStore { path: "/srv/other".into() })),
        ..Default::default()
    };
    let got = c
        .client
        .update_connector(UpdateConnectorRequest {
            connector: Some(nested),
            update_mask: mask(&["local_store.path"]),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(got.config, Some(Cfg::LocalStore(ref l)) if l.path == "/srv/other"));
    let switch = Connector { name: cn("nas"), ..source("nas") };
    let err = c
        .client
        .update_connector(UpdateConnectorRequest {
            connector: Some(switch),
            update_mask: mask(&["local_path_source"]),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(status::fields_of(&err), vec!["update_mask"]);
    let err = c
        .client
        .update_connector(UpdateConnectorRequest {
            connector: Some(Connector { name: cn("nas"), ..Default::default() }),
            update_mask: mask(&["create_time"]),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.message().starts_with("update_mask"), "{}", err.message());
    // Tasks: type is immutable, connectors re-checked.
    create(&mut c, source("src")).await.unwrap();
    let task = c
        .client
        .create_task(CreateTaskRequest {
            parent: DEFAULT.into(),
            task: Some(Task {
                display_name: "nightly".into(),
                r#type: TaskType::Backup as i32,
                source: "src".into(),
                store: "nas".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let err = c
        .client
        .update_task(UpdateTaskRequest {
            task: Some(Task {
                name: task.name.clone(),
                r#type: TaskType::Prune as i32,
                ..Default::default()
            }),
            update_mask: mask(&["type"]),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status::fields_of(&err), vec!["update_mask"]);
    let err = c
        .client
        .update_task(UpdateTaskRequest {
            task: Some(Task { name: task.name.clone(), store: "src".into(), ..Default::default() }),
            update_mask: mask(&["store"]),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status::fields_of(&err), vec!["task.store"]);
    // A connector's selector may not contradict another connector of one of its tasks.
    c.client
        .update_connector(UpdateConnectorRequest {
            connector: Some(Connector {
                name: cn("src"),
                worker_selector: [("host".to_owned(), "db1".to_owned())].into(),
                ..Default::default()
            }),
            update_mask: mask(&["worker_selector"]),
            ..Default::default()
        })
        .await
        .unwrap();
    let err = c
        .client
        .update_connector(UpdateConnectorRequest {
            connector: Some(Connector {
                name: cn("nas"),
                worker_selector: [("host".to_owned(), "db2".to_owned())].into(),
                ..Default::default()
            }),
            update_mask: mask(&["worker_selector"]),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status::fields_of(&err), vec!["connector.worker_selector"]);
    assert!(err.message().contains("nightly"), "{}", err.message());
    let t = c.client.get_task(GetTaskRequest { name: tn("nightly") }).await.unwrap().into_inner();
    assert_eq!(t.worker_selector.get("host").map(String::as_str), Some("db1"));
}

#[tokio::test]
async fn connectors_in_use_cannot_be_deleted() {
    let mut c = start().await;
    create(&mut c, source("src")).await.unwrap();
    create(&mut c, local_store("nas", "pw")).await.unwrap();
    for name in ["nightly", "weekly"] {
        c.client
            .create_task(CreateTaskRequest {
                parent: DEFAULT.into(),
                task: Some(Task {
                    display_name: name.into(),
                    r#type: TaskType::Backup as i32,
                    source: "src".into(),
                    store: "nas".into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let err = c
        .client
        .delete_connector(DeleteConnectorRequest { name: cn("nas"), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("nightly") && err.message().contains("weekly"), "{}", err.message());
    let listed = c
        .client
        .list_tasks(ListTasksRequest {
            parent: DEFAULT.into(),
            connector: "nas".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.tasks.len(), 2);
    for name in ["nightly", "weekly"] {
        c.client.delete_task(DeleteTaskRequest { name: tn(name), ..Default::default() }).await.unwrap();
    }
    c.client
        .delete_connector(DeleteConnectorRequest { name: cn("nas"), ..Default::default() })
        .await
        .unwrap();
    let err = c.client.get_connector(GetConnectorRequest { name: cn("nas") }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = c
        .client
        .test_connector(TestConnectorRequest {
            name: cn("src"),
            timeout: Some(prost_types::Duration { seconds: 1, nanos: 0 }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    tokio::time::sleep(Duration::from_millis(1)).await;
}

#[tokio::test]
async fn the_binary_serves_health_and_prometheus_metrics() {
    let db = cairn_testkit::database().await;
    let (grpc, metrics) = (cairn_testkit::free_port(), cairn_testkit::free_port());
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_cairn-catalog"))
        .env("DATABASE_URL", db.url())
        .env("CAIRN_SECRET_KEY", KEY)
        .env("CAIRN_AUTH_DISABLED", "true")
        .env("CAIRN_LISTEN", format!("127.0.0.1:{grpc}"))
        .env("CAIRN_METRICS_LISTEN", format!("127.0.0.1:{metrics}"))
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let _p = cairn_testkit::Process(child);
    let url = format!("http://127.0.0.1:{grpc}");
    cairn_testkit::wait_serving(&url, "cairn.v1.CatalogService").await;
    let mut client = CatalogServiceClient::connect(url).await.unwrap();
    client
        .list_connectors(ListConnectorsRequest { parent: DEFAULT.into(), ..Default::default() })
        .await
        .unwrap();
    let _ = client.get_connector(GetConnectorRequest { name: cn("nope") }).await;
    let body = cairn_testkit::eventually(Duration::from_secs(20), "metrics", || async {
        let (status, body) = cairn_testkit::http_get(&format!("http://127.0.0.1:{metrics}/metrics")).await?;
        (status == 200 && body.contains("cairn_catalog_db_pool_connections")).then_some(body)
    })
    .await;
    for name in [
        "cairn_catalog_grpc_requests_total{method=\"ListConnectors\",code=\"OK\"}",
        "cairn_catalog_grpc_requests_total{method=\"GetConnector\",code=\"NOT_FOUND\"}",
        "cairn_catalog_grpc_request_duration_seconds",
        "cairn_catalog_db_pool_connections{state=\"max\"}",
    ] {
        assert!(body.contains(name), "{name} missing from:\n{body}");
    }
}

async fn project(c: &mut Catalog, id: &str) -> Result<cairn_api::v1::Project, tonic::Status> {
    c.client
        .create_project(cairn_api::v1::CreateProjectRequest {
            project: Some(cairn_api::v1::Project {
                display_name: format!("Team {id}"),
                ..Default::default()
            }),
            project_id: id.into(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

async fn create_in(c: &mut Catalog, parent: &str, connector: Connector) -> Result<Connector, tonic::Status> {
    c.client
        .create_connector(CreateConnectorRequest {
            parent: parent.into(),
            connector: Some(connector),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

async fn task_in(
    c: &mut Catalog,
    parent: &str,
    name: &str,
    source: &str,
    store: &str,
) -> Result<Task, tonic::Status> {
    c.client
        .create_task(CreateTaskRequest {
            parent: parent.into(),
            task: Some(Task {
                display_name: name.into(),
                r#type: TaskType::Backup as i32,
                source: source.into(),
                store: store.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn projects_have_ids_unique_names_and_the_default_always_exists() {
    use cairn_api::v1::{
        DeleteProjectRequest, GetProjectRequest, ListProjectsRequest, Project, UpdateProjectRequest,
    };
    let mut c = start().await;
    let default =
        c.client.get_project(GetProjectRequest { name: DEFAULT.into() }).await.unwrap().into_inner();
    assert_eq!(default.name, DEFAULT);
    let a = project(&mut c, "team-a").await.unwrap();
    assert_eq!(a.name, "projects/team-a");
    assert_eq!(a.display_name, "Team team-a");
    assert!(!a.etag.is_empty() && a.create_time.is_some());
    // Ids and display names are unique; bad ones name the field and write nothing.
    let err = project(&mut c, "team-a").await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    for (id, field) in [("Team-A", "project_id"), ("-x", "project_id"), ("a_b", "project_id")] {
        let err = project(&mut c, id).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(status::fields_of(&err), vec![field], "{id}: {}", err.message());
    }
    let err = c
        .client
        .create_project(cairn_api::v1::CreateProjectRequest {
            project: Some(Project { display_name: "Team team-a".into(), ..Default::default() }),
            project_id: "other".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert!(err.message().starts_with("project.display_name"), "{}", err.message());
    let err = c
        .client
        .create_project(cairn_api::v1::CreateProjectRequest {
            project: Some(Project {
                display_name: "x".into(),
                labels: [("Bad Key".to_owned(), "v".to_owned())].into(),
                ..Default::default()
            }),
            project_id: "labelled".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status::fields_of(&err), vec!["project.labels[\"Bad Key\"]"]);
    assert_eq!(count(&c.pool, "projects").await, 2, "nothing is written on error");
    let listed = c.client.list_projects(ListProjectsRequest::default()).await.unwrap().into_inner();
    let ids: Vec<&str> = listed.projects.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(ids, ["projects/default", "projects/team-a"]);
    // Update with a mask and an etag.
    let updated = c
        .client
        .update_project(UpdateProjectRequest {
            project: Some(Project {
                name: a.name.clone(),
                etag: a.etag.clone(),
                description: "the web team".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["description".into()] }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.description, "the web team");
    let err = c
        .client
        .update_project(UpdateProjectRequest {
            project: Some(Project { name: a.name.clone(), etag: a.etag.clone(), ..Default::default() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["description".into()] }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    // The default project cannot go; a missing one is NOT_FOUND.
    let err = c
        .client
        .delete_project(DeleteProjectRequest { name: DEFAULT.into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = c.client.get_project(GetProjectRequest { name: "projects/nope".into() }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // Creating into a project that does not exist is NOT_FOUND, like any missing resource.
    let err = create_in(&mut c, "projects/nope", source("src")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = create_in(&mut c, "", source("src")).await.unwrap_err();
    assert_eq!(status::fields_of(&err), vec!["parent"]);
}

#[tokio::test]
async fn names_from_another_project_answer_like_missing_ones() {
    use cairn_api::v1::{GetProjectRequest, UpdateTaskRequest};
    let mut c = start().await;
    project(&mut c, "team-a").await.unwrap();
    let a = "projects/team-a";
    // The same display names in two projects.
    let src_d = create(&mut c, source("src")).await.unwrap();
    let nas_d = create(&mut c, local_store("nas", "pw-default")).await.unwrap();
    let src_a = create_in(&mut c, a, source("src")).await.unwrap();
    let nas_a = create_in(&mut c, a, local_store("nas", "pw-a")).await.unwrap();
    assert_ne!(nas_d.name, nas_a.name);
    assert!(nas_a.name.starts_with("projects/team-a/connectors/"), "{}", nas_a.name);
    let t_d = task_in(&mut c, DEFAULT, "nightly", "src", "nas").await.unwrap();
    let t_a = task_in(&mut c, a, "nightly", "src", "nas").await.unwrap();
    assert_eq!(t_a.source, src_a.name, "bare names resolve within the task's project");
    assert_eq!(t_d.store, nas_d.name);
    // Lists of one project never show the other's; projects/- shows both.
    for (parent, want) in [(DEFAULT, vec![&src_d.name, &nas_d.name]), (a, vec![&src_a.name, &nas_a.name])] {
        let got = c
            .client
            .list_connectors(ListConnectorsRequest { parent: parent.into(), ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        let names: Vec<&String> = got.connectors.iter().map(|x| &x.name).collect();
        assert_eq!(names, want, "{parent}");
        let tasks = c
            .client
            .list_tasks(ListTasksRequest { parent: parent.into(), ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(tasks.tasks.len(), 1);
    }
    let all = c
        .client
        .list_connectors(ListConnectorsRequest { parent: "projects/-".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.connectors.len(), 4);
    // A task of team-a naming default's connectors, by full name or by id, is refused exactly
    // like a connector that does not exist.
    let missing = task_in(&mut c, a, "bad", "src", "ghost").await.unwrap_err();
    let id_of = |n: &str| n.rsplit('/').next().unwrap().to_owned();
    for store in [nas_d.name.clone(), id_of(&nas_d.name), "projects/default/connectors/nas".into()] {
        let err = task_in(&mut c, a, "bad", "src", &store).await.unwrap_err();
        assert_eq!(err.code(), missing.code(), "{store}");
        assert_eq!(status::fields_of(&err), vec!["task.store"], "{store}");
        assert!(err.message().contains("does not exist"), "{store}: {}", err.message());
    }
    let err = c
        .client
        .update_task(UpdateTaskRequest {
            task: Some(Task { name: t_a.name.clone(), store: nas_d.name.clone(), ..Default::default() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["store".into()] }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status::fields_of(&err), vec!["task.store"]);
    // Every RPC that takes a name: default's resources named under team-a are NOT_FOUND.
    let wrong_connector = format!("{a}/connectors/{}", id_of(&nas_d.name));
    let wrong_task = format!("{a}/tasks/{}", id_of(&t_d.name));
    let codes = [
        (
            "GetConnector",
            c.client.get_connector(GetConnectorRequest { name: wrong_connector.clone() }).await.map(|_| ()),
        ),
        (
            "UpdateConnector",
            c.client
                .update_connector(UpdateConnectorRequest {
                    connector: Some(Connector {
                        name: wrong_connector.clone(),
                        description: "x".into(),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask { paths: vec!["description".into()] }),
                    ..Default::default()
                })
                .await
                .map(|_| ()),
        ),
        (
            "DeleteConnector",
            c.client
                .delete_connector(DeleteConnectorRequest {
                    name: wrong_connector.clone(),
                    ..Default::default()
                })
                .await
                .map(|_| ()),
        ),
        (
            "TestConnector",
            c.client
                .test_connector(TestConnectorRequest {
                    name: wrong_connector.clone(),
                    timeout: None,
                    ..Default::default()
                })
                .await
                .map(|_| ()),
        ),
        ("GetTask", c.client.get_task(GetTaskRequest { name: wrong_task.clone() }).await.map(|_| ())),
        (
            "UpdateTask",
            c.client
                .update_task(UpdateTaskRequest {
                    task: Some(Task {
                        name: wrong_task.clone(),
                        description: "x".into(),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask { paths: vec!["description".into()] }),
                    ..Default::default()
                })
                .await
                .map(|_| ()),
        ),
        (
            "DeleteTask",
            c.client
                .delete_task(DeleteTaskRequest { name: wrong_task.clone(), ..Default::default() })
                .await
                .map(|_| ()),
        ),
        (
            "ListTasks",
            c.client
                .list_tasks(ListTasksRequest {
                    parent: a.into(),
                    connector: nas_d.name.clone(),
                    ..Default::default()
                })
                .await
                .map(|_| ()),
        ),
        (
            "GetProject",
            c.client.get_project(GetProjectRequest { name: "projects/team-b".into() }).await.map(|_| ()),
        ),
    ];
    for (rpc, r) in codes {
        let err = r.expect_err(rpc);
        assert_eq!(err.code(), Code::NotFound, "{rpc}: {err:?}");
    }
    // Nothing of default's was touched.
    let still =
        c.client.get_connector(GetConnectorRequest { name: nas_d.name.clone() }).await.unwrap().into_inner();
    assert_eq!(still, nas_d);
    // First-release flat names are refused with the new form.
    let err =
        c.client.get_connector(GetConnectorRequest { name: "connectors/nas".into() }).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("projects/default/connectors/nas"), "{}", err.message());
    // The database refuses a cross-project reference by itself.
    let err = sqlx::query(
        "INSERT INTO catalog.tasks (id, project_id, display_name, type, source_id, store_id, spec)
         VALUES (gen_random_uuid(), 'team-a', 'sneaky', 'BACKUP', $1::uuid, $2::uuid, '{}')",
    )
    .bind(id_of(&src_a.name))
    .bind(id_of(&nas_d.name))
    .execute(&c.pool)
    .await
    .unwrap_err();
    assert_eq!(err.as_database_error().and_then(|e| e.constraint()), Some("tasks_store_fkey"), "{err}");
}

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask { paths: paths.iter().map(|s| (*s).to_owned()).collect() })
}

#[tokio::test]
async fn request_ids_make_every_mutation_idempotent() {
    use cairn_api::v1::{
        CreateUserRequest, DeleteUserRequest, User, identity_service_client::IdentityServiceClient,
    };
    let mut c = start().await;
    let made = create(&mut c, local_store("nas", "pw")).await.unwrap();
    let rid = |n: u8| format!("0193f3a2-6b1c-7cc0-8a5e-3b0c1d2e3f{n:02}");
    // An update retried with its request id: the first answer, applied once — even though the
    // retry's etag is stale by then.
    let update = UpdateConnectorRequest {
        connector: Some(Connector {
            name: made.name.clone(),
            etag: made.etag.clone(),
            description: "first".into(),
            ..Default::default()
        }),
        update_mask: mask(&["description"]),
        request_id: rid(1),
        ..Default::default()
    };
    let first = c.client.update_connector(update.clone()).await.unwrap().into_inner();
    let again = c.client.update_connector(update.clone()).await.unwrap().into_inner();
    assert_eq!(first, again);
    let now =
        c.client.get_connector(GetConnectorRequest { name: made.name.clone() }).await.unwrap().into_inner();
    assert_eq!(now.etag, first.etag, "the retry changed the connector again");
    // Without the request id the same request is a new call, refused for its stale etag.
    let stale = UpdateConnectorRequest { request_id: String::new(), ..update.clone() };
    assert_eq!(c.client.update_connector(stale).await.unwrap_err().code(), Code::Aborted);
    // The id belongs to that call: another method or resource with it is refused, naming it.
    let err = c
        .client
        .delete_connector(DeleteConnectorRequest {
            name: made.name.clone(),
            request_id: rid(1),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(status::fields_of(&err), vec!["request_id"]);
    // A first call that failed stored nothing: its retry does the work.
    let bad_etag = UpdateConnectorRequest {
        connector: Some(Connector {
            name: made.name.clone(),
            etag: made.etag.clone(),
            description: "second".into(),
            ..Default::default()
        }),
        update_mask: mask(&["description"]),
        request_id: rid(2),
        ..Default::default()
    };
    assert_eq!(c.client.update_connector(bad_etag.clone()).await.unwrap_err().code(), Code::Aborted);
    let mut fixed = bad_etag;
    fixed.connector.as_mut().unwrap().etag = first.etag.clone();
    assert_eq!(c.client.update_connector(fixed).await.unwrap().into_inner().description, "second");
    // A delete retried answers OK, not NOT_FOUND; without an id the second delete is NOT_FOUND.
    let delete = DeleteConnectorRequest { name: made.name.clone(), request_id: rid(3), ..Default::default() };
    c.client.delete_connector(delete.clone()).await.unwrap();
    c.client.delete_connector(delete).await.unwrap();
    let err = c
        .client
        .delete_connector(DeleteConnectorRequest { name: made.name.clone(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // The same for identity (DeleteProject, which asks the scheduler, in tests/journeys).
    let mut identity = IdentityServiceClient::connect(c.url.clone()).await.unwrap();
    let create_user = CreateUserRequest {
        user_id: "ana".into(),
        user: Some(User { display_name: "Ana".into(), ..Default::default() }),
        request_id: rid(4),
        ..Default::default()
    };
    let a = identity.create_user(create_user.clone()).await.unwrap().into_inner();
    let b = identity.create_user(create_user).await.unwrap().into_inner();
    assert_eq!(a, b, "a retried create answers the first result, not ALREADY_EXISTS");
    let delete_user = DeleteUserRequest { name: "users/ana".into(), request_id: rid(5) };
    identity.delete_user(delete_user.clone()).await.unwrap();
    identity.delete_user(delete_user).await.unwrap();
    assert_eq!(count(&c.pool, "request_ids").await, 5);
}

#[tokio::test]
async fn validate_only_updates_answer_without_changing_anything() {
    use cairn_api::v1::{GetProjectRequest, Project, UpdateProjectRequest};
    let mut c = start().await;
    let made = create(&mut c, local_store("nas", "pw")).await.unwrap();
    let dry = c
        .client
        .update_connector(UpdateConnectorRequest {
            connector: Some(Connector {
                name: made.name.clone(),
                description: "maybe".into(),
                ..Default::default()
            }),
            update_mask: mask(&["description"]),
            validate_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(dry.description, "maybe");
    let now =
        c.client.get_connector(GetConnectorRequest { name: made.name.clone() }).await.unwrap().into_inner();
    assert_eq!(now, made);
    // Bad input is still refused.
    let err = c
        .client
        .update_connector(UpdateConnectorRequest {
            connector: Some(Connector {
                name: made.name.clone(),
                max_concurrent_jobs: -1,
                ..Default::default()
            }),
            update_mask: mask(&["max_concurrent_jobs"]),
            validate_only: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status::fields_of(&err), vec!["connector.max_concurrent_jobs"]);
    let before = c.client.get_project(GetProjectRequest { name: DEFAULT.into() }).await.unwrap().into_inner();
    let dry = c
        .client
        .update_project(UpdateProjectRequest {
            project: Some(Project {
                name: DEFAULT.into(),
                description: "maybe".into(),
                ..Default::default()
            }),
            update_mask: mask(&["description"]),
            validate_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(dry.description, "maybe");
    let after = c.client.get_project(GetProjectRequest { name: DEFAULT.into() }).await.unwrap().into_inner();
    assert_eq!(before, after);
    let task = task_in(&mut c, DEFAULT, "nightly", &made.name, &made.name).await;
    // (a store is not a source: the task is refused, which is all this line needs)
    assert!(task.is_err());
}

/// OUTPUT_ONLY fields sent in a create or update are ignored (docs/api.md): the answer carries
/// what the server computed, never what the client sent.
#[tokio::test]
async fn output_only_fields_sent_by_a_client_are_ignored() {
    use cairn_api::v1::{ConnectionTest, CreateProjectRequest, Project};
    let mut c = start().await;
    let long_ago = Some(prost_types::Timestamp { seconds: 1_000_000_000, nanos: 0 });
    let forged = |mut con: Connector| {
        con.r#type = "forged".into();
        con.create_time = long_ago;
        con.update_time = long_ago;
        con.repository_password_set = true;
        con.last_test = Some(ConnectionTest { ok: true, message: "forged".into(), ..Default::default() });
        con
    };
    for validate_only in [true, false] {
        let src = c
            .client
            .create_connector(CreateConnectorRequest {
                parent: DEFAULT.into(),
                connector: Some(forged(source(&format!("src-{validate_only}")))),
                validate_only,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(src.r#type, "local_path", "validate_only={validate_only}");
        assert!(!src.repository_password_set, "validate_only={validate_only}");
        assert_eq!(src.last_test, None, "validate_only={validate_only}");
        assert_ne!(src.create_time, long_ago, "validate_only={validate_only}");
        assert_ne!(src.update_time, long_ago, "validate_only={validate_only}");
        let p = c
            .client
            .create_project(CreateProjectRequest {
                project_id: format!("p-{validate_only}"),
                project: Some(Project {
                    display_name: format!("P {validate_only}"),
                    create_time: long_ago,
                    update_time: long_ago,
                    ..Default::default()
                }),
                validate_only,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_ne!(p.create_time, long_ago, "validate_only={validate_only}");
        assert_ne!(p.update_time, long_ago, "validate_only={validate_only}");
    }
    let store = create(&mut c, local_store("nas", "pw")).await.unwrap();
    let mut t = Task {
        display_name: "nightly".into(),
        r#type: TaskType::Backup as i32,
        source: cn("src-false"),
        store: store.name.clone(),
        create_time: long_ago,
        ..Default::default()
    };
    t.worker_selector.insert("forged".into(), "yes".into());
    for validate_only in [true, false] {
        let made = c
            .client
            .create_task(CreateTaskRequest {
                parent: DEFAULT.into(),
                task: Some(t.clone()),
                validate_only,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(made.worker_selector.is_empty(), "validate_only={validate_only}: {:?}", made.worker_selector);
        assert_ne!(made.create_time, long_ago, "validate_only={validate_only}");
    }
    // An update whose patch carries output-only values changes none of them.
    let src =
        c.client.get_connector(GetConnectorRequest { name: cn("src-false") }).await.unwrap().into_inner();
    let patch = Connector { description: "new".into(), ..forged(src.clone()) };
    let updated = c
        .client
        .update_connector(UpdateConnectorRequest {
            connector: Some(patch),
            update_mask: mask(&["description"]),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((updated.r#type.as_str(), updated.create_time), (src.r#type.as_str(), src.create_time));
    assert_eq!(updated.last_test, None);
}
