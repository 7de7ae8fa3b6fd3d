//! The front door through the real servers (catalog + scheduler, authentication on): the role
//! matrix generated from the served descriptors and the policy table, bad credentials, worker
//! confinement, and the audit log of a scripted session.

use std::time::Duration;

use bytes::{Buf as _, BufMut as _};
use cairn_api::v1::{
    self, AcquireLeaseRequest, CreateApiTokenRequest, CreateServiceAccountRequest, CreateWorkerPoolRequest,
    ListAuditEventsRequest, LoginRequest, ServiceAccount, WorkerPool,
    identity_service_client::IdentityServiceClient,
};
use cairn_runtime::{
    auth::{Role, Rule, policy},
    grpc::ClientInterceptor,
};
use prost::Message as _;
use prost_reflect::{DynamicMessage, Kind, Value};
use tonic::{Code, codec::Codec, transport::Channel};

mod common;
use common::front::{ADMIN, ADMIN_PASSWORD, Front, front_with};

async fn front() -> Front {
    front_with(|_| {}).await
}

fn channel(url: &str) -> Channel {
    cairn_runtime::grpc::channel(url).unwrap()
}

fn identity(
    f: &Front,
    token: &str,
) -> IdentityServiceClient<tonic::codegen::InterceptedService<Channel, ClientInterceptor>> {
    IdentityServiceClient::with_interceptor(channel(&f.catalog), ClientInterceptor::new(Some(token)))
}

async fn project(f: &Front, id: &str) {
    let mut c = v1::catalog_service_client::CatalogServiceClient::with_interceptor(
        channel(&f.catalog),
        ClientInterceptor::new(Some(ADMIN)),
    );
    c.create_project(v1::CreateProjectRequest {
        project_id: id.into(),
        project: Some(v1::Project { display_name: id.into(), ..Default::default() }),
        ..Default::default()
    })
    .await
    .unwrap();
}

/// A service account of `project` with `role`, and a token of it.
async fn account(f: &Front, project: &str, id: &str, role: Role) -> String {
    let mut c = identity(f, ADMIN);
    c.create_service_account(CreateServiceAccountRequest {
        parent: format!("projects/{project}"),
        service_account_id: id.into(),
        service_account: Some(ServiceAccount { role: role.to_proto() as i32, ..Default::default() }),
        ..Default::default()
    })
    .await
    .unwrap();
    c.create_api_token(CreateApiTokenRequest {
        parent: format!("projects/{project}/serviceAccounts/{id}"),
        token: Some(Default::default()),
    })
    .await
    .unwrap()
    .into_inner()
    .secret
}

/// Raw bytes in and out, so any method can be called from its descriptor.
#[derive(Clone, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl tonic::codec::Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, buf: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, buf: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let n = buf.remaining();
        Ok(Some(buf.copy_to_bytes(n).to_vec()))
    }
}

/// A request of `method` naming `project`: its `parent`, `name` or the `name` of its resource
/// field, so authorisation has something to decide on.
fn request_in(method: &prost_reflect::MethodDescriptor, project: &str) -> Vec<u8> {
    let input = method.input();
    let mut msg = DynamicMessage::new(input.clone());
    let collection = match method.name() {
        n if n.contains("Connector") => "connectors",
        n if n.contains("Schedule") || n == "Forecast" => "schedules",
        n if n.contains("Task") && n != "RunTask" => "tasks",
        n if n.contains("Member") => "members",
        n if n.contains("ServiceAccount") || n.contains("ApiToken") => "serviceAccounts",
        _ => "jobs",
    };
    let child = format!("projects/{project}/{collection}/x");
    let id_name = if collection == "jobs" {
        format!("projects/{project}/jobs/{}", uuid::Uuid::now_v7())
    } else if method.name() == "RevokeApiToken" {
        format!("projects/{project}/serviceAccounts/x/tokens/{}", uuid::Uuid::now_v7())
    } else {
        child
    };
    for field in input.fields() {
        match (field.name(), field.kind()) {
            ("parent", Kind::String) if method.name().contains("ApiToken") => {
                msg.set_field(&field, Value::String(format!("projects/{project}/serviceAccounts/x")))
            }
            ("parent", Kind::String) => msg.set_field(&field, Value::String(format!("projects/{project}"))),
            ("name", Kind::String) if method.name().ends_with("Project") => {
                msg.set_field(&field, Value::String(format!("projects/{project}")))
            }
            ("name", Kind::String) => msg.set_field(&field, Value::String(id_name.clone())),
            ("task", Kind::String) => {
                msg.set_field(&field, Value::String(format!("projects/{project}/tasks/x")))
            }
            (_, Kind::Message(m))
                if m.get_field_by_name("name").is_some() && m.full_name().starts_with("cairn.") =>
            {
                let mut inner = DynamicMessage::new(m.clone());
                let name =
                    if m.name() == "Project" { format!("projects/{project}") } else { id_name.clone() };
                inner.set_field_by_name("name", Value::String(name));
                msg.set_field(&field, Value::Message(inner));
            }
            _ => {}
        }
    }
    msg.encode_to_vec()
}

/// The code a call of `method` gets with `token`.
async fn call(url: &str, method: &prost_reflect::MethodDescriptor, token: &str, body: Vec<u8>) -> Code {
    let path = format!("/{}/{}", method.parent_service().full_name(), method.name());
    let mut grpc = tonic::client::Grpc::new(channel(url));
    grpc.ready().await.unwrap();
    let mut req = tonic::Request::new(body);
    req.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    req.set_timeout(Duration::from_secs(20));
    let path = tonic::codegen::http::uri::PathAndQuery::try_from(path).unwrap();
    if method.is_server_streaming() {
        match grpc.server_streaming(req, path, Raw).await {
            Ok(mut s) => match s.get_mut().message().await {
                Ok(_) => Code::Ok,
                Err(e) => e.code(),
            },
            Err(e) => e.code(),
        }
    } else {
        match grpc.unary(req, path, Raw).await {
            Ok(_) => Code::Ok,
            Err(e) => e.code(),
        }
    }
}

fn refused(code: Code) -> bool {
    matches!(code, Code::PermissionDenied | Code::Unauthenticated)
}

#[tokio::test]
async fn every_public_method_allows_exactly_the_roles_the_table_gives() {
    let f = front().await;
    project(&f, "team-a").await;
    project(&f, "team-b").await;
    let mut tokens = Vec::new();
    for role in Role::ALL {
        tokens.push((role, account(&f, "team-a", role.as_str(), role).await));
    }
    let pool = cairn_api::json::pool();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for service in pool.services().filter(|s| s.full_name().starts_with("cairn.v1.")) {
        let url = if ["CatalogService", "IdentityService", "AuditService", "CatalogInternalService"]
            .contains(&service.name())
        {
            &f.catalog
        } else {
            &f.scheduler
        };
        for method in service.methods() {
            let full = format!("/{}/{}", service.full_name(), method.name());
            let entry = policy::lookup(&full).unwrap_or_else(|| panic!("{full} has no policy entry"));
            if entry.rule == Rule::Open {
                continue;
            }
            for (role, token) in &tokens {
                for (project, own) in [("team-a", true), ("team-b", false)] {
                    let code = call(url, &method, token, request_in(&method, project)).await;
                    let allowed = match entry.rule {
                        Rule::Project(needed) => own && *role >= needed,
                        Rule::Authenticated => true,
                        Rule::Platform | Rule::Worker | Rule::Internal | Rule::Open => false,
                    };
                    checked += 1;
                    if allowed == refused(code) {
                        wrong.push(format!("{full} as {} in {project}: {code:?}", role.as_str()));
                    }
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {checked} calls decided against the table:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert!(checked > 400, "only {checked} calls checked");
}

#[tokio::test]
async fn bad_credentials_are_unauthenticated_and_audited() {
    let f = front().await;
    let pool = cairn_api::json::pool();
    let get = pool
        .get_service_by_name("cairn.v1.CatalogService")
        .unwrap()
        .methods()
        .find(|m| m.name() == "ListProjects")
        .unwrap();
    for bad in ["", "nonsense", "cairn_pat_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "cairn_lt_x"] {
        let code = call(&f.catalog, &get, bad, vec![]).await;
        assert_eq!(code, Code::Unauthenticated, "{bad:?}");
    }
    // A revoked token stops working at once on the catalog.
    project(&f, "team-a").await;
    let token = account(&f, "team-a", "ci", Role::Viewer).await;
    assert_eq!(call(&f.catalog, &get, &token, vec![]).await, Code::Ok);
    let mut admin = identity(&f, ADMIN);
    let list = admin
        .list_api_tokens(v1::ListApiTokensRequest {
            parent: "projects/team-a/serviceAccounts/ci".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    admin
        .revoke_api_token(v1::RevokeApiTokenRequest {
            name: list.tokens[0].name.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(call(&f.catalog, &get, &token, vec![]).await, Code::Unauthenticated);
    // Logins: a wrong password is refused and audited; the right one works.
    let mut open = IdentityServiceClient::new(channel(&f.catalog));
    let err = open
        .login(LoginRequest { user: "admin".into(), password: "wrong password!".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(!err.message().contains("wrong password!"));
    let ok =
        open.login(LoginRequest { user: "admin".into(), password: ADMIN_PASSWORD.into() }).await.unwrap();
    let session = ok.into_inner().access_token;
    assert_eq!(call(&f.catalog, &get, &session, vec![]).await, Code::Ok);
    // Exactly one event per mutation, per denial, per login and per first use of a token;
    // reads that were allowed leave none.
    let events = audit_events(&f).await;
    let count = |method: &str, decision: v1::Decision| {
        events
            .iter()
            .filter(|e| e.method.rsplit('/').next() == Some(method) && e.decision == decision as i32)
            .count()
    };
    assert_eq!(count("ListProjects", v1::Decision::Deny), 5, "four bad credentials and one revoked token");
    assert_eq!(count("ListProjects", v1::Decision::Allow), 0);
    for m in ["CreateProject", "CreateServiceAccount", "CreateApiToken", "RevokeApiToken"] {
        assert_eq!(count(m, v1::Decision::Allow), 1, "{m}");
    }
    assert_eq!(count("Login", v1::Decision::Deny), 1);
    assert_eq!(count("Login", v1::Decision::Allow), 1);
    let first_uses = events.iter().filter(|e| e.detail == "first use of this token").count();
    assert_eq!(first_uses, 2, "the bootstrap token and the service account's token");
    assert_eq!(events.len(), 13, "{events:#?}");
    let login = events.iter().find(|e| e.method.ends_with("/Login") && e.code == "OK").unwrap();
    assert_eq!((login.principal.as_str(), login.auth_method.as_str()), ("users/admin", ""));
    for e in &events {
        let text = format!("{e:?}");
        assert!(
            !text.contains(ADMIN)
                && !text.contains(&token)
                && !text.contains(&session)
                && !text.contains(ADMIN_PASSWORD),
            "{text}"
        );
    }
}

async fn audit_events(f: &Front) -> Vec<v1::AuditEvent> {
    let mut c = v1::audit_service_client::AuditServiceClient::with_interceptor(
        channel(&f.catalog),
        ClientInterceptor::new(Some(ADMIN)),
    );
    c.list_audit_events(ListAuditEventsRequest {
        parent: "projects/-".into(),
        page_size: 1000,
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .events
}

#[tokio::test]
async fn workers_are_kept_to_their_pool() {
    let f = front().await;
    project(&f, "team-a").await;
    project(&f, "team-b").await;
    let pool = identity(&f, ADMIN)
        .create_worker_pool(CreateWorkerPoolRequest {
            worker_pool_id: "eu".into(),
            worker_pool: Some(WorkerPool {
                projects: vec!["team-a".into()],
                labels: [("zone".to_owned(), "eu".to_owned())].into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    let mut leases = v1::lease_service_client::LeaseServiceClient::with_interceptor(
        channel(&f.scheduler),
        ClientInterceptor::new(Some(&pool)),
    );
    let ask = |projects: Vec<String>, labels: Vec<(&str, &str)>| AcquireLeaseRequest {
        worker_id: "w1".into(),
        labels: labels.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
        capacity: 1,
        projects,
        ..Default::default()
    };
    assert!(leases.acquire_lease(ask(vec![], vec![("zone", "eu")])).await.is_ok());
    assert!(leases.acquire_lease(ask(vec!["team-a".into()], vec![])).await.is_ok());
    let e = leases.acquire_lease(ask(vec!["team-b".into()], vec![])).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let e = leases.acquire_lease(ask(vec![], vec![("zone", "us")])).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    // A worker token opens nothing but LeaseService.
    let methods = cairn_api::json::pool();
    let list_jobs = methods
        .get_service_by_name("cairn.v1.JobService")
        .unwrap()
        .methods()
        .find(|m| m.name() == "ListJobs")
        .unwrap();
    assert_eq!(
        call(&f.scheduler, &list_jobs, &pool, request_in(&list_jobs, "team-a")).await,
        Code::PermissionDenied
    );
    let list_tasks = methods
        .get_service_by_name("cairn.v1.CatalogService")
        .unwrap()
        .methods()
        .find(|m| m.name() == "ListTasks")
        .unwrap();
    assert_eq!(
        call(&f.catalog, &list_tasks, &pool, request_in(&list_tasks, "team-a")).await,
        Code::PermissionDenied
    );
    // A report with a made-up lease token on a lease that does not exist is simply lost.
    let e = leases
        .heartbeat(v1::HeartbeatRequest {
            lease: format!("leases/{}", uuid::Uuid::now_v7()),
            lease_token: "cairn_lt_x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Aborted, "{e:?}");
}

/// A backup task of team-a whose store has a canary password, run twice.
async fn two_jobs(f: &Front) {
    use v1::{Connector, LocalPathSource, LocalStore, Task, TaskType, connector::Config as Cfg};
    let mut catalog = v1::catalog_service_client::CatalogServiceClient::with_interceptor(
        channel(&f.catalog),
        ClientInterceptor::new(Some(ADMIN)),
    );
    for c in [
        Connector {
            display_name: "src".into(),
            config: Some(Cfg::LocalPathSource(LocalPathSource {
                paths: vec!["/data".into()],
                ..Default::default()
            })),
            ..Default::default()
        },
        Connector {
            display_name: "nas".into(),
            config: Some(Cfg::LocalStore(LocalStore { path: "/srv/nas".into() })),
            repository_password: CANARY.into(),
            ..Default::default()
        },
    ] {
        catalog
            .create_connector(v1::CreateConnectorRequest {
                parent: "projects/team-a".into(),
                connector: Some(c),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let task = Task {
        display_name: "nightly".into(),
        r#type: TaskType::Backup as i32,
        source: "src".into(),
        store: "nas".into(),
        overlap_policy: v1::OverlapPolicy::Allow as i32,
        ..Default::default()
    };
    catalog
        .create_task(v1::CreateTaskRequest {
            parent: "projects/team-a".into(),
            task: Some(task),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut jobs = v1::job_service_client::JobServiceClient::with_interceptor(
        channel(&f.scheduler),
        ClientInterceptor::new(Some(ADMIN)),
    );
    for _ in 0..2 {
        jobs.run_task(v1::RunTaskRequest {
            task: "projects/team-a/tasks/nightly".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
}

const CANARY: &str = "canary-repository-password-7f3a";

#[tokio::test]
async fn a_report_needs_its_own_lease_token() {
    let f = front().await;
    project(&f, "team-a").await;
    two_jobs(&f).await;
    let pool = identity(&f, ADMIN)
        .create_worker_pool(CreateWorkerPoolRequest {
            worker_pool_id: "all".into(),
            worker_pool: Some(WorkerPool { projects: vec!["*".into()], ..Default::default() }),
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    let mut leases = v1::lease_service_client::LeaseServiceClient::with_interceptor(
        channel(&f.scheduler),
        ClientInterceptor::new(Some(&pool)),
    );
    let got = leases
        .acquire_lease(AcquireLeaseRequest {
            worker_id: "w1".into(),
            capacity: 2,
            wait: Some(prost_types::Duration { seconds: 10, nanos: 0 }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .leases;
    assert_eq!(got.len(), 2, "{got:?}");
    let (a, b) = (&got[0], &got[1]);
    assert!(a.token.starts_with("cairn_lt_") && a.token != b.token);
    let beat = |l: &v1::Lease, token: &str, generation: i64| v1::HeartbeatRequest {
        lease: l.name.clone(),
        generation,
        lease_token: token.to_owned(),
        ..Default::default()
    };
    // Another lease's token, or none, is refused; the lease's own works.
    let e = leases.heartbeat(beat(a, &b.token, a.generation)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let e = leases.heartbeat(beat(a, "", a.generation)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    leases.heartbeat(beat(a, &a.token, a.generation)).await.unwrap();
    // A fenced (stale) generation is lost even with the right token.
    let e = leases.heartbeat(beat(a, &a.token, a.generation - 1)).await.unwrap_err();
    assert_eq!(e.code(), Code::Aborted, "{e:?}");
    let e = leases
        .append_log(v1::AppendLogRequest {
            lease: a.name.clone(),
            generation: a.generation,
            lease_token: b.token.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    // A batch: each completion stands on its own token.
    let done = |l: &v1::Lease, token: &str| v1::CompleteJobRequest {
        lease: l.name.clone(),
        generation: l.generation,
        lease_token: token.to_owned(),
        outcome: Some(v1::complete_job_request::Outcome::Succeeded(Default::default())),
        ..Default::default()
    };
    let results = leases
        .batch_complete_jobs(v1::BatchCompleteJobsRequest {
            completions: vec![done(a, &b.token), done(b, &b.token)],
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(results[0].code, Code::PermissionDenied as i32, "{results:?}");
    assert_eq!(results[1].code, 0, "{results:?}");
    leases.complete_job(done(a, &a.token)).await.unwrap();
    // Releases of secrets and the refusals are audited, and no event holds a secret.
    let events = audit_events(&f).await;
    let releases: Vec<_> =
        events.iter().filter(|e| e.detail.starts_with("released the decrypted secrets")).collect();
    assert_eq!(releases.len(), 2, "{releases:#?}");
    assert!(releases.iter().all(|e| e.principal == "workerPools/all" && e.detail.contains("\"w1\"")));
    let refused = events.iter().filter(|e| e.detail.starts_with("lease_token is not the token")).count();
    assert_eq!(refused, 4, "two heartbeats, one log append, one completion");
    for e in &events {
        let text = format!("{e:?}");
        assert!(!text.contains(CANARY) && !text.contains(&a.token) && !text.contains(&pool), "{text}");
    }
}

#[tokio::test]
async fn a_disabled_user_is_refused_everywhere() {
    let f = front().await;
    let mut admin = identity(&f, ADMIN);
    admin
        .create_user(v1::CreateUserRequest {
            user_id: "bob".into(),
            user: Some(v1::User { platform_admin: true, ..Default::default() }),
            password: "bob's long password".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut open = IdentityServiceClient::new(channel(&f.catalog));
    let login = || LoginRequest { user: "bob".into(), password: "bob's long password".into() };
    let session = open.login(login()).await.unwrap().into_inner().access_token;
    let pool = cairn_api::json::pool();
    let list_projects = pool
        .get_service_by_name("cairn.v1.CatalogService")
        .unwrap()
        .methods()
        .find(|m| m.name() == "ListProjects")
        .unwrap();
    let list_jobs = pool
        .get_service_by_name("cairn.v1.JobService")
        .unwrap()
        .methods()
        .find(|m| m.name() == "ListJobs")
        .unwrap();
    assert_eq!(call(&f.catalog, &list_projects, &session, vec![]).await, Code::Ok);
    assert_eq!(call(&f.scheduler, &list_jobs, &session, jobs_in_default()).await, Code::Ok);
    admin
        .update_user(v1::UpdateUserRequest {
            user: Some(v1::User { name: "users/bob".into(), disabled: true, ..Default::default() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["disabled".into()] }),
            ..Default::default()
        })
        .await
        .unwrap();
    // At once on the catalog; on the scheduler once its short cache lets go.
    assert_eq!(call(&f.catalog, &list_projects, &session, vec![]).await, Code::Unauthenticated);
    assert_eq!(open.login(login()).await.unwrap_err().code(), Code::Unauthenticated);
    let deadline = std::time::Instant::now() + cairn_scheduler::auth::CACHE_TTL + Duration::from_secs(5);
    loop {
        let code = call(&f.scheduler, &list_jobs, &session, jobs_in_default()).await;
        if code == Code::Unauthenticated {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the scheduler still accepts a disabled user: {code:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The last enabled platform admin cannot be disabled.
    let e = admin
        .update_user(v1::UpdateUserRequest {
            user: Some(v1::User { name: "users/admin".into(), disabled: true, ..Default::default() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["disabled".into()] }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
}

fn jobs_in_default() -> Vec<u8> {
    v1::ListJobsRequest { parent: "projects/default".into(), ..Default::default() }.encode_to_vec()
}
