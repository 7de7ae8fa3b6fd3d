//! `cairn task ...` and `cairn run`.

use cairn_api::{
    names::Kind,
    v1::{
        BackupMode, BackupOptions, CheckOptions, CreateTaskRequest, DeleteTaskRequest, GetTaskRequest,
        LabelSet, ListTasksRequest, Notification, NotificationMode, OverlapPolicy, OverwritePolicy,
        PruneOptions, RestoreOptions, RetentionPolicy, RunTaskRequest, SourceSelector, SyncOptions, Task,
        TaskType, UpdateTaskRequest, WebhookChannel, task::Options,
    },
};

use super::pb_duration;
use crate::{
    cli::{CreateTask, Notify, Overlap, Overwrite, RetentionFlags, RunArgs, TaskCmd, TaskCommon, TaskKind},
    client::{Clients, all_pages},
    error::{CliError, Result},
    output::{self, Printer},
    watch,
};

pub async fn run(c: &Clients, p: &Printer, cmd: TaskCmd) -> Result {
    match cmd {
        TaskCmd::Create(create) => {
            let task = build(create)?;
            let made = c
                .catalog()
                .create_task(CreateTaskRequest {
                    parent: c.parent(),
                    task: Some(task),
                    request_id: c.request_id(),
                    ..Default::default()
                })
                .await
                .map_err(c.catalog_err())?
                .into_inner();
            show(p, &made, "created");
        }
        TaskCmd::List(args) => {
            let all = all_pages(|page_token| async {
                let page = c
                    .catalog()
                    .list_tasks(ListTasksRequest {
                        parent: c.parent(),
                        page_size: 1000,
                        page_token,
                        connector: args.connector.clone().unwrap_or_default(),
                        r#type: args.kind.map(task_type).unwrap_or(TaskType::Unspecified) as i32,
                    })
                    .await
                    .map_err(c.catalog_err())?
                    .into_inner();
                Ok((page.tasks, page.next_page_token))
            })
            .await?;
            if p.json() {
                p.message(&cairn_api::v1::ListTasksResponse { tasks: all, next_page_token: String::new() });
                return Ok(0);
            }
            // Connector ids → names for the table.
            let names = connector_names(c).await?;
            let name = |n: &str| {
                if n.is_empty() {
                    String::new()
                } else {
                    names.get(n).cloned().unwrap_or_else(|| n.to_owned())
                }
            };
            let mut t = output::table(&["NAME", "TYPE", "CONNECTORS", "LABELS", "OVERLAP", "RETENTION"]);
            for x in &all {
                let flow = [name(&x.source), name(&x.store), name(&x.destination), name(&x.target_store)]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" -> ");
                t.add_row(vec![
                    x.display_name.clone(),
                    output::enum_name(x.r#type().as_str_name(), "TASK_TYPE_"),
                    flow,
                    if x.labels.is_empty() { "-".into() } else { x.labels.join(",") },
                    output::enum_name(x.overlap_policy().as_str_name(), "OVERLAP_POLICY_"),
                    retention_text(x),
                ]);
            }
            output::print_table(t, "No tasks yet. Create one with `cairn task create --help`.");
        }
        TaskCmd::Get(n) => {
            let x = c
                .catalog()
                .get_task(GetTaskRequest { name: c.name(Kind::Task, &n.name) })
                .await
                .map_err(c.catalog_err())?
                .into_inner();
            show(p, &x, "");
        }
        TaskCmd::Update(u) => {
            let current = c
                .catalog()
                .get_task(GetTaskRequest { name: c.name(Kind::Task, &u.name) })
                .await
                .map_err(c.catalog_err())?
                .into_inner();
            let mut patch = Task { name: current.name.clone(), ..Default::default() };
            let mut paths = Vec::new();
            if let Some(n) = u.rename {
                patch.display_name = n;
                paths.push("display_name".to_owned());
            }
            if let Some(d) = u.description {
                patch.description = d;
                paths.push("description".to_owned());
            }
            if !u.labels.is_empty() {
                patch.labels = u.labels;
                paths.push("labels".to_owned());
            }
            if let Some(o) = u.overlap {
                patch.overlap_policy = overlap(o) as i32;
                paths.push("overlap_policy".to_owned());
            }
            if let Some(t) = u.timeout {
                patch.timeout = Some(pb_duration(t));
                paths.push("timeout".to_owned());
            }
            if let Some(m) = u.max_attempts {
                patch.max_attempts = m;
                paths.push("max_attempts".to_owned());
            }
            if let Some(n) = u.notify {
                patch.notification = Some(Notification {
                    mode: notify(n) as i32,
                    ..current.notification.clone().unwrap_or_default()
                });
                paths.push("notification.mode".to_owned());
            }
            if let Some(d) = u.rpo {
                if current.r#type() != TaskType::Backup {
                    return Err(CliError::Usage("--rpo applies to BACKUP tasks only".into()));
                }
                let mut b = match &patch.options {
                    Some(Options::Backup(b)) => b.clone(),
                    _ => BackupOptions::default(),
                };
                b.rpo = (!d.is_zero()).then(|| pb_duration(d));
                patch.options = Some(Options::Backup(b));
                paths.push("backup.rpo".to_owned());
            }
            if let Some(policy) = retention(&u.retention)? {
                match current.r#type() {
                    TaskType::Backup => {
                        let mut b = match &patch.options {
                            Some(Options::Backup(b)) => b.clone(),
                            _ => BackupOptions::default(),
                        };
                        b.retention = Some(policy);
                        patch.options = Some(Options::Backup(b));
                        paths.push("backup.retention".to_owned());
                    }
                    TaskType::Sync => {
                        patch.options = Some(Options::Sync(SyncOptions {
                            retention: Some(policy),
                            ..Default::default()
                        }));
                        paths.push("sync.retention".to_owned());
                    }
                    _ => {
                        return Err(CliError::Usage(
                            "retention flags apply to BACKUP and SYNC tasks only".into(),
                        ));
                    }
                }
            }
            if paths.is_empty() {
                return Err(CliError::Usage("nothing to change: give at least one flag (see --help)".into()));
            }
            let updated = c
                .catalog()
                .update_task(UpdateTaskRequest {
                    task: Some(patch),
                    update_mask: Some(prost_types::FieldMask { paths }),
                    request_id: c.request_id(),
                    ..Default::default()
                })
                .await
                .map_err(c.catalog_err())?
                .into_inner();
            show(p, &updated, "updated");
        }
        TaskCmd::Delete(n) => {
            c.confirm(&format!("delete {} and its schedules", c.name(Kind::Task, &n.name)))?;
            c.catalog()
                .delete_task(DeleteTaskRequest {
                    name: c.name(Kind::Task, &n.name),
                    etag: String::new(),
                    request_id: c.request_id(),
                })
                .await
                .map_err(c.catalog_err())?;
            p.deleted(&format!("Deleted task {} and its schedules (its jobs stay in history).", n.name));
        }
        TaskCmd::Run(args) => return run_now(c, p, args).await,
    }
    Ok(0)
}

async fn connector_names(c: &Clients) -> Result<std::collections::HashMap<String, String>> {
    let list = c
        .catalog()
        .list_connectors(cairn_api::v1::ListConnectorsRequest {
            parent: c.parent(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .map_err(c.catalog_err())?
        .into_inner();
    Ok(list.connectors.into_iter().map(|x| (x.name, x.display_name)).collect())
}

/// `cairn run TASK [--wait] [--follow]`.
pub async fn run_now(c: &Clients, p: &Printer, args: RunArgs) -> Result {
    let o = &args.overrides;
    let overrides = cairn_api::v1::RunOverrides {
        snapshot: o.snapshot.clone().unwrap_or_default(),
        include_paths: o.paths.clone(),
        destination: o.destination.as_deref().map(|d| c.name(Kind::Connector, d)).unwrap_or_default(),
        full: o.full,
    };
    let req = RunTaskRequest {
        task: c.name(Kind::Task, &args.task),
        request_id: c.request_id(),
        overrides: (overrides != Default::default()).then_some(overrides),
    };
    let job = c.jobs().run_task(req).await.map_err(c.scheduler_err())?.into_inner();
    if !job.run.is_empty() {
        return fleet_run(c, p, &job, args.wait || args.follow).await;
    }
    if !(args.wait || args.follow) {
        if p.json() {
            p.message(&job);
        } else {
            let state = output::enum_name(job.state().as_str_name(), "JOB_STATE_");
            println!("Job {} {state}.", output::id(&job.name));
            if !job.error.is_empty() {
                println!("{}", job.error);
            }
            println!("Follow it with: cairn job watch {}", output::id(&job.name));
        }
        return Ok(0);
    }
    watch::watch(c, p, &job.name, args.follow).await
}

/// A fleet task's run: its jobs (one per source), each waited for in turn when asked; the
/// exit code is the worst of them.
async fn fleet_run(c: &Clients, p: &Printer, first: &cairn_api::v1::Job, wait: bool) -> Result {
    let parent = first.name.split("/jobs/").next().unwrap_or_default().to_owned();
    let req = cairn_api::v1::ListJobsRequest {
        parent,
        run: first.run.clone(),
        page_size: 1000,
        ..Default::default()
    };
    let jobs = c.jobs().list_jobs(req).await.map_err(c.scheduler_err())?.into_inner().jobs;
    if p.json() && !wait {
        p.message(&cairn_api::v1::ListJobsResponse { jobs, next_page_token: String::new() });
        return Ok(0);
    }
    println!("Run {} of {}: {} jobs, one per source.", first.run, first.task_display_name, jobs.len());
    if !wait {
        println!("See them with: cairn job list --task {}", output::id(&first.task));
        return Ok(0);
    }
    let mut worst = 0;
    for j in &jobs {
        worst = worst.max(watch::watch(c, p, &j.name, false).await?);
    }
    Ok(worst)
}

pub fn task_type(k: TaskKind) -> TaskType {
    match k {
        TaskKind::Backup => TaskType::Backup,
        TaskKind::Restore => TaskType::Restore,
        TaskKind::Sync => TaskType::Sync,
        TaskKind::Check => TaskType::Check,
        TaskKind::Prune => TaskType::Prune,
        TaskKind::TestConnection => TaskType::TestConnection,
    }
}

fn overlap(o: Overlap) -> OverlapPolicy {
    match o {
        Overlap::Skip => OverlapPolicy::Skip,
        Overlap::QueueOne => OverlapPolicy::QueueOne,
        Overlap::Allow => OverlapPolicy::Allow,
        Overlap::CancelRunning => OverlapPolicy::CancelRunning,
    }
}

fn notify(n: Notify) -> NotificationMode {
    match n {
        Notify::Always => NotificationMode::Always,
        Notify::Errors => NotificationMode::Errors,
        Notify::Never => NotificationMode::Never,
    }
}

/// The policy the flags describe; `None` when no flag is given.
pub fn retention(f: &RetentionFlags) -> Result<Option<RetentionPolicy>> {
    let s = |o: &Option<String>| o.clone().unwrap_or_default();
    let policy = RetentionPolicy {
        keep_last: f.keep_last.unwrap_or(0),
        keep_hourly: f.keep_hourly.unwrap_or(0),
        keep_daily: f.keep_daily.unwrap_or(0),
        keep_weekly: f.keep_weekly.unwrap_or(0),
        keep_monthly: f.keep_monthly.unwrap_or(0),
        keep_yearly: f.keep_yearly.unwrap_or(0),
        keep_within: s(&f.keep_within),
        keep_within_hourly: s(&f.keep_within_hourly),
        keep_within_daily: s(&f.keep_within_daily),
        keep_within_weekly: s(&f.keep_within_weekly),
        keep_within_monthly: s(&f.keep_within_monthly),
        keep_within_yearly: s(&f.keep_within_yearly),
        keep_tags: f
            .keep_tags
            .iter()
            .map(|t| LabelSet {
                labels: t.split(',').map(|l| l.trim().to_owned()).filter(|l| !l.is_empty()).collect(),
            })
            .collect(),
        time_zone: s(&f.retention_tz),
    };
    Ok(if policy == RetentionPolicy::default() { None } else { Some(policy) })
}

fn common(t: &mut Task, c: TaskCommon) -> Result<()> {
    t.description = c.description;
    t.labels = c.labels;
    t.concurrency = c.concurrency;
    t.timeout = c.timeout.map(pb_duration);
    t.max_attempts = c.max_attempts.unwrap_or(0);
    t.overlap_policy = c.overlap.map(overlap).unwrap_or(OverlapPolicy::Unspecified) as i32;
    if !c.webhooks.is_empty() && c.webhook_secret.is_none() {
        return Err(CliError::Usage("--webhook needs --webhook-secret (or CAIRN_WEBHOOK_SECRET)".into()));
    }
    let webhooks = c
        .webhooks
        .into_iter()
        .map(|url| WebhookChannel {
            url,
            secret: c.webhook_secret.clone().unwrap_or_default(),
            secret_set: false,
        })
        .collect();
    let mode = c.notify.map(notify).unwrap_or(if c.emails.is_empty() && c.webhook_secret.is_none() {
        NotificationMode::Unspecified
    } else {
        NotificationMode::Errors
    });
    t.notification = Some(Notification { mode: mode as i32, webhooks, emails: c.emails });
    Ok(())
}

fn build(create: CreateTask) -> Result<Task> {
    let mut t = Task::default();
    match create {
        CreateTask::Backup {
            name,
            source,
            sources,
            include,
            exclude,
            store,
            full,
            host,
            rpo,
            retention: r,
            common: c,
        } => {
            t.display_name = name;
            t.r#type = TaskType::Backup as i32;
            let fleet = source.is_none().then(|| -> Result<SourceSelector> {
                Ok(SourceSelector { labels: super::pairs(&sources, "--sources")?, include, exclude })
            });
            t.source = source.unwrap_or_default();
            t.store = store;
            t.options = Some(Options::Backup(BackupOptions {
                mode: if full { BackupMode::Full } else { BackupMode::Incremental } as i32,
                retention: retention(&r)?,
                host: host.unwrap_or_default(),
                rpo: rpo.map(pb_duration),
                sources: fleet.transpose()?,
            }));
            common(&mut t, c)?;
        }
        CreateTask::Restore { name, store, destination, snapshot, includes, overwrite, common: c } => {
            t.display_name = name;
            t.r#type = TaskType::Restore as i32;
            t.store = store;
            t.destination = destination;
            t.options = Some(Options::Restore(RestoreOptions {
                snapshot: snapshot.unwrap_or_default(),
                include_paths: includes,
                overwrite: match overwrite {
                    Overwrite::IfChanged => OverwritePolicy::IfChanged,
                    Overwrite::Always => OverwritePolicy::Always,
                    Overwrite::Never => OverwritePolicy::Never,
                } as i32,
            }));
            common(&mut t, c)?;
        }
        CreateTask::Sync { name, from, to, window, retention: r, common: c } => {
            t.display_name = name;
            t.r#type = TaskType::Sync as i32;
            t.store = from;
            t.target_store = to;
            t.options = Some(Options::Sync(SyncOptions {
                window: window.unwrap_or_default(),
                retention: retention(&r)?,
            }));
            common(&mut t, c)?;
        }
        CreateTask::Check { name, store, window, read_data, common: c } => {
            t.display_name = name;
            t.r#type = TaskType::Check as i32;
            t.store = store;
            t.options = Some(Options::Check(CheckOptions {
                window: window.unwrap_or_default(),
                read_data_percent: read_data,
            }));
            common(&mut t, c)?;
        }
        CreateTask::Prune { name, store, max_unused, common: c } => {
            t.display_name = name;
            t.r#type = TaskType::Prune as i32;
            t.store = store;
            t.options = Some(Options::Prune(PruneOptions { max_unused_percent: max_unused }));
            common(&mut t, c)?;
        }
    }
    Ok(t)
}

fn retention_text(t: &Task) -> String {
    let policy = match &t.options {
        Some(Options::Backup(b)) => b.retention.as_ref(),
        Some(Options::Sync(s)) => s.retention.as_ref(),
        _ => None,
    };
    let Some(r) = policy else { return "-".into() };
    let mut parts = Vec::new();
    for (n, v) in [
        ("last", r.keep_last),
        ("hourly", r.keep_hourly),
        ("daily", r.keep_daily),
        ("weekly", r.keep_weekly),
        ("monthly", r.keep_monthly),
        ("yearly", r.keep_yearly),
    ] {
        if v != 0 {
            parts.push(format!("{n}={}", if v < 0 { "all".into() } else { v.to_string() }));
        }
    }
    for (n, v) in [
        ("within", &r.keep_within),
        ("within-hourly", &r.keep_within_hourly),
        ("within-daily", &r.keep_within_daily),
        ("within-weekly", &r.keep_within_weekly),
        ("within-monthly", &r.keep_within_monthly),
        ("within-yearly", &r.keep_within_yearly),
    ] {
        if !v.is_empty() {
            parts.push(format!("{n}={v}"));
        }
    }
    for s in &r.keep_tags {
        parts.push(format!("tags={}", s.labels.join(",")));
    }
    parts.join(" ")
}

fn show(p: &Printer, x: &Task, verb: &str) {
    if p.json() {
        p.message(x);
        return;
    }
    if !verb.is_empty() {
        println!("Task {} {verb}.", x.display_name);
    }
    let mut rows = vec![
        ("name", x.name.clone()),
        ("display name", x.display_name.clone()),
        ("type", output::enum_name(x.r#type().as_str_name(), "TASK_TYPE_")),
    ];
    for (k, v) in [
        ("source", &x.source),
        ("store", &x.store),
        ("destination", &x.destination),
        ("target store", &x.target_store),
    ] {
        if !v.is_empty() {
            rows.push((k, v.clone()));
        }
    }
    rows.push(("labels", if x.labels.is_empty() { "-".into() } else { x.labels.join(",") }));
    match &x.options {
        Some(Options::Backup(b)) => {
            rows.push(("mode", output::enum_name(b.mode().as_str_name(), "BACKUP_MODE_")));
            if b.rpo.is_some() {
                rows.push(("rpo", output::duration(&b.rpo)));
            }
        }
        Some(Options::Restore(r)) => {
            rows.push((
                "snapshot",
                if r.snapshot.is_empty() { "latest matching labels".into() } else { r.snapshot.clone() },
            ));
            rows.push(("overwrite", output::enum_name(r.overwrite().as_str_name(), "OVERWRITE_POLICY_")));
            if !r.include_paths.is_empty() {
                rows.push(("include", r.include_paths.join(", ")));
            }
        }
        Some(Options::Sync(s)) => {
            rows.push(("window", if s.window.is_empty() { "all".into() } else { s.window.clone() }))
        }
        Some(Options::Check(ch)) => {
            rows.push(("window", if ch.window.is_empty() { "all".into() } else { ch.window.clone() }));
            rows.push(("read data", format!("{}%", ch.read_data_percent)));
        }
        Some(Options::Prune(pr)) => rows.push(("max unused", format!("{}%", pr.max_unused_percent))),
        None => {}
    }
    rows.push(("retention", retention_text(x)));
    rows.push(("overlap", output::enum_name(x.overlap_policy().as_str_name(), "OVERLAP_POLICY_")));
    rows.push(("attempts", x.max_attempts.to_string()));
    rows.push(("timeout", output::duration(&x.timeout)));
    rows.push(("worker selector", output::labels(&x.worker_selector)));
    if let Some(n) = &x.notification {
        rows.push(("notify", output::enum_name(n.mode().as_str_name(), "NOTIFICATION_MODE_")));
        for w in &n.webhooks {
            rows.push((
                "webhook",
                format!("{} (secret {})", w.url, if w.secret_set { "set" } else { "unset" }),
            ));
        }
        for e in &n.emails {
            rows.push(("email", e.clone()));
        }
    }
    rows.push(("etag", x.etag.clone()));
    output::fields(&rows);
}
