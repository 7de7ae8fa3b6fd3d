//! A snapshot's file tree (`/projects/{p}/connectors/{store}/snapshots/{id}?path=`): one
//! directory at a time with breadcrumbs and paging, read from the store by a worker
//! (ListSnapshotEntries); tick entries to restore just those with one of the store's RESTORE
//! tasks, or download one file (ReadSnapshotFile, streamed straight through).

use axum::{
    body::Body,
    extract::{Path, Query},
    http::header,
    response::IntoResponse,
};
use cairn_api::v1::{self, Role, read_snapshot_file_response::Part};
use futures::StreamExt as _;
use maud::{Markup, html};

use crate::{
    ui::{self, Nav},
    web::{Ctx, Fail, Page},
};

#[derive(serde::Deserialize, Default)]
pub struct Where {
    #[serde(default)]
    path: String,
    #[serde(default)]
    page_token: String,
}

fn page_url(p: &str, store: &str, id: &str, path: &str) -> String {
    let q: String = url::form_urlencoded::Serializer::new(String::new()).append_pair("path", path).finish();
    format!("/projects/{p}/connectors/{store}/snapshots/{id}?{q}")
}

/// Links to each ancestor of `path`.
fn breadcrumbs(p: &str, store: &str, id: &str, path: &str) -> Markup {
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    html! {
        nav.breadcrumbs data-testid="breadcrumbs" {
            a href=(page_url(p, store, id, "/")) { "/" }
            @for (i, part) in parts.iter().enumerate() {
                @let to = format!("/{}", parts[..=i].join("/"));
                @if i + 1 == parts.len() { span { (part) } } @else { a href=(page_url(p, store, id, &to)) { (part) } " / " }
            }
        }
    }
}

fn kind(e: &v1::SnapshotEntry) -> &'static str {
    match e.r#type() {
        v1::EntryType::Dir => "directory",
        v1::EntryType::Symlink => "symlink",
        v1::EntryType::File => "file",
        v1::EntryType::Device | v1::EntryType::CharDevice => "device",
        v1::EntryType::Fifo => "pipe",
        v1::EntryType::Socket => "socket",
        v1::EntryType::Unspecified => "?",
    }
}

pub async fn page(
    ctx: Ctx,
    Path((p, store, id)): Path<(String, String, String)>,
    Query(w): Query<Where>,
) -> Page {
    let parent = format!("projects/{p}");
    let store_name = format!("{parent}/connectors/{store}");
    let snap = ctx
        .jobs()
        .list_snapshots(v1::ListSnapshotsRequest {
            parent: parent.clone(),
            store: store_name.clone(),
            snapshot: id.clone(),
            page_size: 1,
            ..Default::default()
        })
        .await?
        .into_inner()
        .snapshots
        .into_iter()
        .next()
        .ok_or_else(|| Fail::NotFound(format!("snapshot {id} in the index of this store")))?;
    // The first path of a one-path snapshot is where people want to start.
    let path =
        if w.path.is_empty() && snap.paths.len() == 1 { snap.paths[0].clone() } else { w.path.clone() };
    let listed = ctx
        .jobs()
        .list_snapshot_entries(v1::ListSnapshotEntriesRequest {
            parent: parent.clone(),
            store: store_name.clone(),
            snapshot: snap.id.clone(),
            path: path.clone(),
            page_size: 200,
            page_token: w.page_token.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let operator = ctx.can(&p, Role::Operator);
    let (restores, destinations) = if operator {
        let tasks = ctx.tasks(&p, &store_name).await?;
        let restores: Vec<v1::Task> =
            tasks.into_iter().filter(|t| t.r#type() == v1::TaskType::Restore).collect();
        (restores, ctx.connectors(&p, v1::ConnectorRole::Destination).await?)
    } else {
        (vec![], vec![])
    };
    let dir = listed.path.clone();
    let up =
        dir.rsplit_once('/').map(|(head, _)| if head.is_empty() { "/" } else { head }).filter(|_| dir != "/");
    let download = |e: &v1::SnapshotEntry| {
        let q: String =
            url::form_urlencoded::Serializer::new(String::new()).append_pair("path", &e.path).finish();
        format!("/projects/{p}/connectors/{store}/snapshots/{}/download?{q}", snap.id)
    };
    let body = html! {
        h1 { "Snapshot " code { (snap.short_id) } }
        p.hint {
            (ui::time(snap.time.as_ref())) " · " (snap.hostname) " · " (snap.paths.join(", "))
            " · " a href=(format!("/projects/{p}/snapshots?store={store}&snapshot={}", snap.id)) { "all snapshots of this store" }
        }
        (breadcrumbs(&p, &store, &snap.id, &dir))
        form method="post" action=(format!("/projects/{p}/snapshots/restore")) data-testid="browse-form" {
            (ui::csrf(&ctx))
            input type="hidden" name="snapshot" value=(snap.id);
            table data-testid="entries" {
                thead { tr {
                    @if operator { th { span.visually-hidden { "Restore" } } }
                    th { "Name" } th { "Type" } th { "Size" } th { "Mode" } th { "Modified" } @if operator { th {} }
                } }
                tbody {
                    @if let Some(up) = up {
                        tr { @if operator { td {} } td { a href=(page_url(&p, &store, &snap.id, up)) data-testid="up" { ".." } } td {} td {} td {} td {} @if operator { td {} } }
                    }
                    @for e in &listed.entries {
                        tr data-testid="entry" {
                            @if operator { td { input type="checkbox" name="include_path" value=(e.path) aria-label=(format!("restore {}", e.name)) data-testid="pick"; } }
                            td {
                                @if e.r#type() == v1::EntryType::Dir {
                                    a href=(page_url(&p, &store, &snap.id, &e.path)) data-testid="dir" { (e.name) "/" }
                                } @else { (e.name) }
                                @if !e.link_target.is_empty() { " → " code { (e.link_target) } }
                            }
                            td { (kind(e)) }
                            td { @if e.r#type() == v1::EntryType::File { (ui::bytes(i64::try_from(e.size).unwrap_or(i64::MAX))) } }
                            td { code { (e.permissions) } }
                            td { (ui::time(e.mtime.as_ref())) }
                            @if operator { td { @if e.r#type() == v1::EntryType::File { a href=(download(e)) download data-testid="download" { "Download" } } } }
                        }
                    }
                }
            }
            @if listed.entries.is_empty() { p.empty { "This directory is empty." } }
            @if !listed.next_page_token.is_empty() {
                @let q: String = url::form_urlencoded::Serializer::new(String::new()).append_pair("path", &dir).append_pair("page_token", &listed.next_page_token).finish();
                p { a href=(format!("/projects/{p}/connectors/{store}/snapshots/{}?{q}", snap.id)) data-testid="next-page" { "Next " (listed.entries.len()) " of " (listed.total_size) " →" } }
            }
            @if operator {
                section.card data-testid="restore-picked" {
                    h2 { "Restore the ticked entries" }
                    @if restores.is_empty() {
                        p.hint { "No RESTORE task reads this store yet: " a href=(format!("/projects/{p}/tasks/new?type=restore&store={store}")) { "create one" } ", then restore from here." }
                    } @else {
                        div.field { label for="restore-task" { "With task" }
                            select id="restore-task" name="task" data-testid="restore-task" {
                                @for t in &restores { option value=(ui::id(&t.name)) { (t.display_name) } }
                            }
                            p.hint { "This run only: the task keeps its own snapshot, paths and destination. Nothing ticked restores the whole snapshot." }
                        }
                        div.field { label for="destination" { "Into" }
                            select id="destination" name="destination" data-testid="restore-destination" {
                                option value="" { "the task's destination" }
                                @for d in &destinations { option value=(d.name) { (d.display_name) } }
                            }
                        }
                        button.primary type="submit" data-testid="restore-picked-submit" { "Restore these paths" }
                    }
                }
            }
        }
    };
    Ok(ui::page(&ctx, Some(&p), Nav::Snapshots, &format!("Snapshot {}", snap.short_id), body))
}

#[derive(serde::Deserialize, Default)]
pub struct Find {
    #[serde(default)]
    snapshot: String,
}

/// A job's snapshot, found in the index, opened in its store's file tree.
pub async fn find(ctx: Ctx, Path(p): Path<String>, Query(f): Query<Find>) -> Page {
    if f.snapshot.is_empty() {
        return Err(Fail::Bad("snapshot: which snapshot to browse".into()));
    }
    let s = ctx
        .jobs()
        .list_snapshots(v1::ListSnapshotsRequest {
            parent: format!("projects/{p}"),
            snapshot: f.snapshot.clone(),
            page_size: 1,
            ..Default::default()
        })
        .await?
        .into_inner()
        .snapshots
        .into_iter()
        .next()
        .ok_or_else(|| Fail::NotFound(format!("snapshot {} in the index", f.snapshot)))?;
    Ok(axum::response::Redirect::to(&format!("/{}/snapshots/{}", s.store, s.id)).into_response())
}

/// Streams one file of a snapshot as a download; nothing is buffered beyond one chunk.
pub async fn download(
    ctx: Ctx,
    Path((p, store, id)): Path<(String, String, String)>,
    Query(w): Query<Where>,
) -> Page {
    let mut stream = ctx
        .jobs()
        .read_snapshot_file(v1::ReadSnapshotFileRequest {
            parent: format!("projects/{p}"),
            store: format!("projects/{p}/connectors/{store}"),
            snapshot: id,
            path: w.path,
            ..Default::default()
        })
        .await?
        .into_inner();
    let entry = match stream.message().await? {
        Some(v1::ReadSnapshotFileResponse { part: Some(Part::Entry(e)) }) => e,
        _ => return Err(Fail::Bad("the file's description did not come first".into())),
    };
    let data = stream.filter_map(|m| async move {
        match m {
            Ok(v1::ReadSnapshotFileResponse { part: Some(Part::Data(d)) }) => Some(Ok(d)),
            Ok(_) => None,
            Err(s) => Some(Err(std::io::Error::other(s.message().to_owned()))),
        }
    });
    let encoded: String =
        url::form_urlencoded::byte_serialize(entry.name.as_bytes()).collect::<String>().replace('+', "%20");
    let ascii: String = entry
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || ".-_".contains(c) { c } else { '_' })
        .collect();
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, entry.size.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Body::from_stream(data),
    )
        .into_response())
}
