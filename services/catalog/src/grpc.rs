//! Thin gRPC handlers: decode the request, take its [`Caller`] (authenticated by the guard),
//! call the operation, encode the answer.

use cairn_api::v1::{
    ApiToken, ChangePasswordRequest, ConnectionTest, Connector, CreateApiTokenRequest,
    CreateApiTokenResponse, CreateConnectorRequest, CreateProjectRequest, CreateServiceAccountRequest,
    CreateTaskRequest, CreateUserRequest, CreateWorkerPoolRequest, CreateWorkerPoolResponse,
    DeleteConnectorRequest, DeleteMemberRequest, DeleteProjectRequest, DeleteServiceAccountRequest,
    DeleteTaskRequest, DeleteUserRequest, DeleteWorkerPoolRequest, GetCallerRequest, GetConnectorRequest,
    GetProjectRequest, GetTaskRequest, GetUserRequest, ListApiTokensRequest, ListApiTokensResponse,
    ListAuditEventsRequest, ListAuditEventsResponse, ListConnectorsRequest, ListConnectorsResponse,
    ListMembersRequest, ListMembersResponse, ListProjectsRequest, ListProjectsResponse,
    ListServiceAccountsRequest, ListServiceAccountsResponse, ListTasksRequest, ListTasksResponse,
    ListUsersRequest, ListUsersResponse, ListWorkerPoolsRequest, ListWorkerPoolsResponse, LoginRequest,
    LoginResponse, LogoutRequest, Member, Principal, Project, RecordConnectionTestRequest,
    RefreshLoginRequest, ResolveConnectorRequest, ResolveTasksRequest, ResolveTasksResponse,
    ResolvedConnector, RevokeApiTokenRequest, ServiceAccount, SetMemberRequest, SetPasswordRequest, Task,
    TestConnectorRequest, UpdateConnectorRequest, UpdateProjectRequest, UpdateTaskRequest, UpdateUserRequest,
    User, audit_service_server::AuditService, catalog_internal_service_server::CatalogInternalService,
    catalog_service_server::CatalogService, identity_service_server::IdentityService,
};
use cairn_runtime::{auth::Caller, status::Violations};
use tonic::{Request, Response, Status};

use crate::{State, audit, auth, connectors, error::Error, identity, projects, tasks};

/// The public CatalogService.
#[derive(Clone)]
pub struct Public(pub State);

/// The internal CatalogInternalService (scheduler only).
#[derive(Clone)]
pub struct Internal(pub State);

type R<T> = Result<Response<T>, Status>;

fn ok<T>(r: Result<T, Error>) -> R<T> {
    r.map(Response::new).map_err(Status::from)
}

fn split<T>(req: Request<T>) -> (Caller, T) {
    (Caller::of(&req), req.into_inner())
}

#[tonic::async_trait]
impl CatalogService for Public {
    async fn create_project(&self, req: Request<CreateProjectRequest>) -> R<Project> {
        let (c, req) = split(req);
        ok(projects::create(&self.0, &c, req).await)
    }
    async fn get_project(&self, req: Request<GetProjectRequest>) -> R<Project> {
        let (c, req) = split(req);
        ok(projects::get(&self.0, &c, &req.name).await)
    }
    async fn list_projects(&self, req: Request<ListProjectsRequest>) -> R<ListProjectsResponse> {
        let (c, req) = split(req);
        ok(projects::list(&self.0, &c, req).await)
    }
    async fn update_project(&self, req: Request<UpdateProjectRequest>) -> R<Project> {
        let (c, req) = split(req);
        ok(projects::update(&self.0, &c, req).await)
    }
    async fn delete_project(&self, req: Request<DeleteProjectRequest>) -> R<()> {
        let (c, req) = split(req);
        ok(projects::delete(&self.0, &c, req).await)
    }
    async fn create_connector(&self, req: Request<CreateConnectorRequest>) -> R<Connector> {
        let (c, req) = split(req);
        ok(connectors::create(&self.0, &c, req).await)
    }
    async fn get_connector(&self, req: Request<GetConnectorRequest>) -> R<Connector> {
        let (c, req) = split(req);
        ok(connectors::get(&self.0, &c, &req.name).await)
    }
    async fn list_connectors(&self, req: Request<ListConnectorsRequest>) -> R<ListConnectorsResponse> {
        let (c, req) = split(req);
        ok(connectors::list(&self.0, &c, req).await)
    }
    async fn update_connector(&self, req: Request<UpdateConnectorRequest>) -> R<Connector> {
        let (c, req) = split(req);
        ok(connectors::update(&self.0, &c, req).await)
    }
    async fn delete_connector(&self, req: Request<DeleteConnectorRequest>) -> R<()> {
        let (c, req) = split(req);
        ok(connectors::delete(&self.0, &c, req).await)
    }
    async fn test_connector(&self, req: Request<TestConnectorRequest>) -> R<ConnectionTest> {
        let (c, req) = split(req);
        ok(connectors::test(&self.0, &c, req).await)
    }
    async fn create_task(&self, req: Request<CreateTaskRequest>) -> R<Task> {
        let (c, req) = split(req);
        ok(tasks::create(&self.0, &c, req).await)
    }
    async fn get_task(&self, req: Request<GetTaskRequest>) -> R<Task> {
        let (c, req) = split(req);
        ok(tasks::get(&self.0, &c, &req.name).await)
    }
    async fn list_tasks(&self, req: Request<ListTasksRequest>) -> R<ListTasksResponse> {
        let (c, req) = split(req);
        ok(tasks::list(&self.0, &c, req).await)
    }
    async fn update_task(&self, req: Request<UpdateTaskRequest>) -> R<Task> {
        let (c, req) = split(req);
        ok(tasks::update(&self.0, &c, req).await)
    }
    async fn delete_task(&self, req: Request<DeleteTaskRequest>) -> R<()> {
        let (c, req) = split(req);
        ok(tasks::delete(&self.0, &c, req).await)
    }
}

#[tonic::async_trait]
impl IdentityService for Public {
    async fn login(&self, req: Request<LoginRequest>) -> R<LoginResponse> {
        let (c, req) = split(req);
        ok(auth::login(&self.0.pool, &c, &req.user, &req.password).await)
    }
    async fn refresh_login(&self, req: Request<RefreshLoginRequest>) -> R<LoginResponse> {
        let (c, req) = split(req);
        ok(auth::refresh(&self.0.pool, &c, &req.refresh_token).await)
    }
    async fn logout(&self, req: Request<LogoutRequest>) -> R<()> {
        let (c, _) = split(req);
        ok(auth::logout(&self.0.pool, &c).await)
    }
    async fn get_caller(&self, req: Request<GetCallerRequest>) -> R<Principal> {
        let (c, _) = split(req);
        Ok(Response::new(c.principal().0.clone()))
    }
    async fn change_password(&self, req: Request<ChangePasswordRequest>) -> R<()> {
        let (c, req) = split(req);
        ok(auth::change_password(&self.0.pool, &c, req).await)
    }
    async fn create_user(&self, req: Request<CreateUserRequest>) -> R<User> {
        let (c, req) = split(req);
        ok(identity::create_user(&self.0, &c, req).await)
    }
    async fn get_user(&self, req: Request<GetUserRequest>) -> R<User> {
        ok(identity::get_user(&self.0, &req.into_inner().name).await)
    }
    async fn list_users(&self, req: Request<ListUsersRequest>) -> R<ListUsersResponse> {
        ok(identity::list_users(&self.0, req.into_inner()).await)
    }
    async fn update_user(&self, req: Request<UpdateUserRequest>) -> R<User> {
        let (c, req) = split(req);
        ok(identity::update_user(&self.0, &c, req).await)
    }
    async fn set_password(&self, req: Request<SetPasswordRequest>) -> R<()> {
        let (c, req) = split(req);
        ok(identity::set_password(&self.0, &c, req).await)
    }
    async fn delete_user(&self, req: Request<DeleteUserRequest>) -> R<()> {
        let (c, req) = split(req);
        ok(identity::delete_user(&self.0, &c, req).await)
    }
    async fn set_member(&self, req: Request<SetMemberRequest>) -> R<Member> {
        let (c, req) = split(req);
        ok(identity::set_member(&self.0, &c, req).await)
    }
    async fn list_members(&self, req: Request<ListMembersRequest>) -> R<ListMembersResponse> {
        let (c, req) = split(req);
        ok(identity::list_members(&self.0, &c, req).await)
    }
    async fn delete_member(&self, req: Request<DeleteMemberRequest>) -> R<()> {
        let (c, req) = split(req);
        ok(identity::delete_member(&self.0, &c, req).await)
    }
    async fn create_service_account(&self, req: Request<CreateServiceAccountRequest>) -> R<ServiceAccount> {
        let (c, req) = split(req);
        ok(identity::create_service_account(&self.0, &c, req).await)
    }
    async fn list_service_accounts(
        &self,
        req: Request<ListServiceAccountsRequest>,
    ) -> R<ListServiceAccountsResponse> {
        let (c, req) = split(req);
        ok(identity::list_service_accounts(&self.0, &c, req).await)
    }
    async fn delete_service_account(&self, req: Request<DeleteServiceAccountRequest>) -> R<()> {
        let (c, req) = split(req);
        ok(identity::delete_service_account(&self.0, &c, req).await)
    }
    async fn create_api_token(&self, req: Request<CreateApiTokenRequest>) -> R<CreateApiTokenResponse> {
        let (c, req) = split(req);
        ok(identity::create_token(&self.0, &c, req).await)
    }
    async fn list_api_tokens(&self, req: Request<ListApiTokensRequest>) -> R<ListApiTokensResponse> {
        let (c, req) = split(req);
        ok(identity::list_tokens(&self.0, &c, req).await)
    }
    async fn revoke_api_token(&self, req: Request<RevokeApiTokenRequest>) -> R<ApiToken> {
        let (c, req) = split(req);
        ok(identity::revoke_token(&self.0, &c, req).await)
    }
    async fn create_worker_pool(&self, req: Request<CreateWorkerPoolRequest>) -> R<CreateWorkerPoolResponse> {
        let (c, req) = split(req);
        ok(identity::create_pool(&self.0, &c, req).await)
    }
    async fn list_worker_pools(&self, req: Request<ListWorkerPoolsRequest>) -> R<ListWorkerPoolsResponse> {
        ok(identity::list_pools(&self.0, req.into_inner()).await)
    }
    async fn delete_worker_pool(&self, req: Request<DeleteWorkerPoolRequest>) -> R<()> {
        let (c, req) = split(req);
        ok(identity::delete_pool(&self.0, &c, req).await)
    }
}

#[tonic::async_trait]
impl AuditService for Public {
    async fn list_audit_events(&self, req: Request<ListAuditEventsRequest>) -> R<ListAuditEventsResponse> {
        let (c, req) = split(req);
        ok(audit::list(&self.0, &c, req).await)
    }
}

#[tonic::async_trait]
impl CatalogInternalService for Internal {
    async fn resolve_tasks(&self, req: Request<ResolveTasksRequest>) -> R<ResolveTasksResponse> {
        let req = req.into_inner();
        ok(tasks::resolve(&self.0, &req.names, req.with_secrets)
            .await
            .map(|(tasks, missing)| ResolveTasksResponse { tasks, missing }))
    }

    async fn resolve_connector(&self, req: Request<ResolveConnectorRequest>) -> R<ResolvedConnector> {
        let (caller, req) = split(req);
        let state = &self.0;
        ok(async {
            let mut conn = state.pool.acquire().await?;
            let row = connectors::find(&mut conn, &caller, "name", &req.name, false).await?;
            tasks::resolved_connector(state, &row, req.with_secrets)
        }
        .await)
    }

    async fn record_connection_test(&self, req: Request<RecordConnectionTestRequest>) -> R<()> {
        let (caller, req) = split(req);
        let state = &self.0;
        ok(async {
            let Some(result) = req.result else {
                let mut v = Violations::default();
                v.add("result", "is required");
                return Err(v.into());
            };
            let mut conn = state.pool.acquire().await?;
            let row = connectors::find(&mut conn, &caller, "connector", &req.connector, false).await?;
            connectors::record_test(state, &row.project_id, row.id, &result).await
        }
        .await)
    }

    async fn list_backup_coverage(
        &self,
        req: Request<cairn_api::v1::ListBackupCoverageRequest>,
    ) -> R<cairn_api::v1::ListBackupCoverageResponse> {
        let (caller, req) = split(req);
        ok(tasks::backup_coverage(&self.0, &caller, req).await)
    }
    async fn authenticate(&self, req: Request<cairn_api::v1::AuthenticateRequest>) -> R<Principal> {
        let req = req.into_inner();
        use cairn_runtime::auth::Authenticator as _;
        self.0.auth.authenticate(&req.credential).await.map(|p| Response::new(p.0))
    }
}
