//! `cairn project ...`.

use cairn_api::v1::{
    CreateProjectRequest, DeleteProjectRequest, GetProjectRequest, ListProjectsRequest, ListProjectsResponse,
    Project, UpdateProjectRequest,
};

use super::pairs;
use crate::{
    cli::ProjectCmd,
    client::{Clients, all_pages},
    error::{CliError, Result},
    output::{self, Printer},
};

/// `projects/{id}` of what the user typed (an id or a full name).
fn name(raw: &str) -> String {
    if raw.starts_with("projects/") { raw.to_owned() } else { format!("projects/{}", raw.trim()) }
}

pub async fn run(c: &Clients, p: &Printer, cmd: ProjectCmd) -> Result {
    match cmd {
        ProjectCmd::Create { id, display_name, description, labels } => {
            let project = Project {
                display_name: display_name.unwrap_or_else(|| id.clone()),
                description,
                labels: pairs(&labels, "--label")?,
                ..Default::default()
            };
            let made = c
                .catalog()
                .create_project(CreateProjectRequest {
                    project: Some(project),
                    project_id: id,
                    request_id: c.request_id(),
                    ..Default::default()
                })
                .await
                .map_err(c.catalog_err())?
                .into_inner();
            show(p, &made, "created");
        }
        ProjectCmd::List => {
            let all = all_pages(|page_token| async {
                let page = c
                    .catalog()
                    .list_projects(ListProjectsRequest { page_size: 1000, page_token })
                    .await
                    .map_err(c.catalog_err())?
                    .into_inner();
                Ok((page.projects, page.next_page_token))
            })
            .await?;
            if p.json() {
                p.message(&ListProjectsResponse { projects: all, next_page_token: String::new() });
            } else {
                let mut t = output::table(&["ID", "NAME", "LABELS", "CREATED", "DESCRIPTION"]);
                for x in &all {
                    t.add_row(vec![
                        output::id(&x.name).to_owned(),
                        x.display_name.clone(),
                        output::labels(&x.labels),
                        p.time(&x.create_time),
                        x.description.clone(),
                    ]);
                }
                output::print_table(t, "No projects.");
            }
        }
        ProjectCmd::Get(n) => {
            let x = c
                .catalog()
                .get_project(GetProjectRequest { name: name(&n.name) })
                .await
                .map_err(c.catalog_err())?
                .into_inner();
            show(p, &x, "");
        }
        ProjectCmd::Update { name: n, display_name, description, labels } => {
            let mut patch = Project { name: name(&n), ..Default::default() };
            let mut paths = Vec::new();
            if let Some(d) = display_name {
                patch.display_name = d;
                paths.push("display_name".to_owned());
            }
            if let Some(d) = description {
                patch.description = d;
                paths.push("description".to_owned());
            }
            if let Some(l) = labels {
                let l: Vec<String> = l.into_iter().filter(|s| !s.is_empty()).collect();
                patch.labels = pairs(&l, "--label")?;
                paths.push("labels".to_owned());
            }
            if paths.is_empty() {
                return Err(CliError::Usage(
                    "nothing to change: give --display-name, --description or --label".into(),
                ));
            }
            let x = c
                .catalog()
                .update_project(UpdateProjectRequest {
                    project: Some(patch),
                    update_mask: Some(prost_types::FieldMask { paths }),
                    request_id: c.request_id(),
                    ..Default::default()
                })
                .await
                .map_err(c.catalog_err())?
                .into_inner();
            show(p, &x, "updated");
        }
        ProjectCmd::Delete { name: n, force } => {
            c.confirm(&if force {
                format!("delete {} and everything it holds", name(&n))
            } else {
                format!("delete {}", name(&n))
            })?;
            c.catalog()
                .delete_project(DeleteProjectRequest {
                    name: name(&n),
                    etag: String::new(),
                    force,
                    request_id: c.request_id(),
                })
                .await
                .map_err(c.catalog_err())?;
            p.deleted(&format!("Deleted project {}.", name(&n)));
        }
    }
    Ok(0)
}

fn show(p: &Printer, x: &Project, verb: &str) {
    if p.json() {
        p.message(x);
        return;
    }
    if !verb.is_empty() {
        println!("Project {} {verb}.", output::id(&x.name));
    }
    output::fields(&[
        ("name", x.name.clone()),
        ("display name", x.display_name.clone()),
        ("description", x.description.clone()),
        ("labels", output::labels(&x.labels)),
        ("created", p.time_abs(&x.create_time)),
        ("updated", p.time_abs(&x.update_time)),
        ("etag", x.etag.clone()),
    ]);
}
