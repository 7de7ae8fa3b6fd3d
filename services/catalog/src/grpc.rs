//! Thin gRPC handlers: decode the request, call the operation, encode the answer.

use cairn_api::v1::{
    ConnectionTest, Connector, CreateConnectorRequest, CreateProjectRequest, CreateTaskRequest,
    DeleteConnectorRequest, DeleteProjectRequest, DeleteTaskRequest, GetConnectorRequest, GetProjectRequest,
    GetTaskRequest, ListConnectorsRequest, ListConnectorsResponse, ListProjectsRequest, ListProjectsResponse,
    ListTasksRequest, ListTasksResponse, Project, RecordConnectionTestRequest, ResolveConnectorRequest,
    ResolveTasksRequest, ResolveTasksResponse, ResolvedConnector, Task, TestConnectorRequest,
    UpdateConnectorRequest, UpdateProjectRequest, UpdateTaskRequest,
    catalog_internal_service_server::CatalogInternalService, catalog_service_server::CatalogService,
};
use cairn_runtime::status::Violations;
use tonic::{Request, Response, Status};

use crate::{State, connectors, error::Error, projects, tasks};

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

#[tonic::async_trait]
impl CatalogService for Public {
    async fn create_project(&self, req: Request<CreateProjectRequest>) -> R<Project> {
        ok(projects::create(&self.0, req.into_inner()).await)
    }
    async fn get_project(&self, req: Request<GetProjectRequest>) -> R<Project> {
        ok(projects::get(&self.0, &req.into_inner().name).await)
    }
    async fn list_projects(&self, req: Request<ListProjectsRequest>) -> R<ListProjectsResponse> {
        ok(projects::list(&self.0, req.into_inner()).await)
    }
    async fn update_project(&self, req: Request<UpdateProjectRequest>) -> R<Project> {
        ok(projects::update(&self.0, req.into_inner()).await)
    }
    async fn delete_project(&self, req: Request<DeleteProjectRequest>) -> R<()> {
        ok(projects::delete(&self.0, req.into_inner()).await)
    }
    async fn create_connector(&self, req: Request<CreateConnectorRequest>) -> R<Connector> {
        ok(connectors::create(&self.0, req.into_inner()).await)
    }
    async fn get_connector(&self, req: Request<GetConnectorRequest>) -> R<Connector> {
        ok(connectors::get(&self.0, &req.into_inner().name).await)
    }
    async fn list_connectors(&self, req: Request<ListConnectorsRequest>) -> R<ListConnectorsResponse> {
        ok(connectors::list(&self.0, req.into_inner()).await)
    }
    async fn update_connector(&self, req: Request<UpdateConnectorRequest>) -> R<Connector> {
        ok(connectors::update(&self.0, req.into_inner()).await)
    }
    async fn delete_connector(&self, req: Request<DeleteConnectorRequest>) -> R<()> {
        ok(connectors::delete(&self.0, req.into_inner()).await)
    }
    async fn test_connector(&self, req: Request<TestConnectorRequest>) -> R<ConnectionTest> {
        ok(connectors::test(&self.0, req.into_inner()).await)
    }
    async fn create_task(&self, req: Request<CreateTaskRequest>) -> R<Task> {
        ok(tasks::create(&self.0, req.into_inner()).await)
    }
    async fn get_task(&self, req: Request<GetTaskRequest>) -> R<Task> {
        ok(tasks::get(&self.0, &req.into_inner().name).await)
    }
    async fn list_tasks(&self, req: Request<ListTasksRequest>) -> R<ListTasksResponse> {
        ok(tasks::list(&self.0, req.into_inner()).await)
    }
    async fn update_task(&self, req: Request<UpdateTaskRequest>) -> R<Task> {
        ok(tasks::update(&self.0, req.into_inner()).await)
    }
    async fn delete_task(&self, req: Request<DeleteTaskRequest>) -> R<()> {
        ok(tasks::delete(&self.0, req.into_inner()).await)
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
        let req = req.into_inner();
        let state = &self.0;
        ok(async {
            let mut conn = state.pool.acquire().await?;
            let row = connectors::find(&mut conn, "name", &req.name, false).await?;
            tasks::resolved_connector(state, &row, req.with_secrets)
        }
        .await)
    }

    async fn record_connection_test(&self, req: Request<RecordConnectionTestRequest>) -> R<()> {
        let req = req.into_inner();
        let state = &self.0;
        ok(async {
            let Some(result) = req.result else {
                let mut v = Violations::default();
                v.add("result", "is required");
                return Err(v.into());
            };
            let mut conn = state.pool.acquire().await?;
            let row = connectors::find(&mut conn, "connector", &req.connector, false).await?;
            connectors::record_test(state, &row.project_id, row.id, &result).await
        }
        .await)
    }
}
