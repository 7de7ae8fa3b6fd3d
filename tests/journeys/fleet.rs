//! A fleet BACKUP task: one task over every SOURCE connector carrying a label, minus the
//! excluded ones. Each firing makes one job per source as one run, each placed on a worker
//! matching its source; each snapshot is tagged with its source and reads back its source's
//! bytes; a source labelled later joins at the next firing; the forecast and the protection
//! status count every source.

use std::{collections::HashMap, time::Duration};

use cairn_api::v1::{
    BackupOptions, Connector, ForecastRequest, Job, JobState, ListJobsRequest, ListProtectionStatusRequest,
    LocalPathSource, PauseScheduleRequest, ReadSnapshotFileRequest, RetentionPolicy, RunOverrides,
    RunTaskRequest, SourceSelector, Task, TaskType, connector::Config as Cfg,
    read_snapshot_file_response::Part, schedule_service_client::ScheduleServiceClient, task::Options,
};

use crate::harness::*;

const ZONES: usize = 4;

impl Stack {
    async fn fleet_source(&mut self, name: &str, fleet: &str, zone: usize) -> Connector {
        let dir = self.path(&format!("hosts/{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("hostname"), format!("{name}\n")).unwrap();
        self.connector(Connector {
            display_name: name.into(),
            config: Some(Cfg::LocalPathSource(LocalPathSource {
                paths: vec![dir.display().to_string()],
                ..Default::default()
            })),
            worker_selector: [("zone".to_owned(), format!("z{zone}"))].into(),
            labels: [("fleet".to_owned(), fleet.to_owned())].into(),
            ..Default::default()
        })
        .await
    }

    /// The jobs of the schedule's runs, oldest first, once the first `want` runs (every run
    /// with `usize::MAX`) have ended.
    async fn runs(&mut self, want: usize) -> Vec<Vec<Job>> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
        loop {
            let jobs = self
                .jobs
                .list_jobs(ListJobsRequest {
                    parent: DEFAULT.into(),
                    task: "fleet".into(),
                    page_size: 1000,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .jobs;
            let mut by_run: HashMap<String, Vec<Job>> = HashMap::new();
            for j in jobs {
                by_run.entry(j.run.clone()).or_default().push(j);
            }
            let mut runs: Vec<Vec<Job>> = by_run.into_values().collect();
            runs.sort_by_key(|r| r.iter().map(|j| j.create_time.unwrap().seconds).min());
            let ended =
                |r: &Vec<Job>| r.iter().all(|j| !matches!(j.state(), JobState::Queued | JobState::Running));
            // `usize::MAX`: every run so far.
            let want_now = if want == usize::MAX { runs.len().max(1) } else { want };
            if runs.len() >= want_now && runs[..want_now].iter().all(ended) {
                return runs;
            }
            assert!(tokio::time::Instant::now() < deadline, "{want} runs did not end: {runs:#?}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_task_backs_up_every_matching_source_on_its_own_worker() {
    let mut s = stack().await;
    for z in 0..ZONES {
        s.worker(&format!("worker-z{z}"), &format!("zone=z{z}"));
    }
    let mut sources = HashMap::new();
    for i in 0..20 {
        let c = s.fleet_source(&format!("web-{i:02}"), "web", i % ZONES).await;
        sources.insert(c.name.clone(), (format!("web-{i:02}"), i % ZONES));
    }
    let excluded = s.fleet_source("web-test", "web", 0).await;
    let other = s.fleet_source("db-1", "db", 1).await;
    let (_, repo) = s.local_store("nas").await;
    // The store is new and created on first use: its first job runs alone (concurrent first
    // jobs would each initialise the repository), then the rest side by side.
    s.task(Task {
        display_name: "fleet".into(),
        r#type: TaskType::Backup as i32,
        store: "nas".into(),
        options: Some(Options::Backup(BackupOptions {
            sources: Some(SourceSelector {
                labels: [("fleet".to_owned(), "web".to_owned())].into(),
                include: vec![],
                exclude: vec!["web-test".into()],
            }),
            // Per source: each keeps its own two newest.
            retention: Some(RetentionPolicy { keep_last: 2, ..Default::default() }),
            ..Default::default()
        })),
        ..Default::default()
    })
    .await;
    s.schedule("every-15s", "fleet", "*:*:0/15").await;

    // The first firing: 20 jobs, one run, each on the worker of its source's zone.
    let runs = s.runs(1).await;
    let first = &runs[0];
    assert_eq!(first.len(), 20, "one job per matching source: {first:#?}");
    assert!(!first[0].run.is_empty() && first.iter().all(|j| j.run == first[0].run), "one run");
    let mut seen = std::collections::HashSet::new();
    for j in first {
        assert_eq!(j.state(), JobState::Succeeded, "{}: {}\n{}", j.name, j.error, log_text(j));
        let (name, zone) =
            sources.get(&j.source).unwrap_or_else(|| panic!("{} backed up {:?}", j.name, j.source));
        assert!(seen.insert(j.source.clone()), "{name} twice");
        assert_eq!(
            j.worker.split('/').next(),
            Some(format!("worker-z{zone}").as_str()),
            "{name} ran on {}",
            j.worker
        );
        // Its snapshot is tagged with its source and holds its source's bytes.
        let snap = s.snapshots("nas").await.into_iter().find(|x| x.id == j.snapshot).expect("indexed");
        let source_id = j.source.rsplit('/').next().unwrap();
        assert!(snap.labels.contains(&format!("cairn-source={source_id}")), "{:?}", snap.labels);
        let path = format!("{}/hostname", snap.paths[0]);
        let mut stream = s
            .jobs
            .read_snapshot_file(ReadSnapshotFileRequest {
                parent: DEFAULT.into(),
                store: "nas".into(),
                snapshot: j.snapshot.clone(),
                path,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let mut data = Vec::new();
        while let Some(m) = stream.message().await.unwrap() {
            if let Some(Part::Data(d)) = m.part {
                data.extend(d);
            }
        }
        assert_eq!(String::from_utf8(data).unwrap(), format!("{name}\n"));
    }

    // A RESTORE of one source's snapshot writes that source's tree.
    let (_, dest) = s.destination("restore-here").await;
    s.task(Task {
        display_name: "restore".into(),
        r#type: TaskType::Restore as i32,
        store: "nas".into(),
        destination: "restore-here".into(),
        ..Default::default()
    })
    .await;
    let one = &first[0];
    let restore = s
        .jobs
        .run_task(RunTaskRequest {
            task: "projects/default/tasks/restore".into(),
            overrides: Some(RunOverrides { snapshot: one.snapshot.clone(), ..Default::default() }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let restore = s.finished(&restore.name, Duration::from_secs(120)).await;
    assert_eq!(restore.state(), JobState::Succeeded, "{}", log_text(&restore));
    let (name, _) = &sources[&one.source];
    let host_dir = s.path(&format!("hosts/{name}"));
    assert_eq!(
        std::fs::read_to_string(dest.join(host_dir.strip_prefix("/").unwrap()).join("hostname")).unwrap(),
        format!("{name}\n")
    );

    // A 21st source labelled now joins at the next firing; the excluded and the other fleet's
    // never run.
    let before = s.runs(1).await.len();
    let late = s.fleet_source("web-20", "web", 2).await;
    // The run after the next one was certainly made with web-20 labelled.
    let runs = s.runs(before + 2).await;
    let joined = runs[before..].iter().find(|r| r.iter().any(|j| j.source == late.name));
    let joined = joined.unwrap_or_else(|| {
        let shape: Vec<(usize, String, i64)> =
            runs.iter().map(|r| (r.len(), r[0].run.clone(), r[0].create_time.unwrap().seconds)).collect();
        panic!("web-20 joined no run after the {before} before it: {shape:?}")
    });
    assert_eq!(joined.len(), 21, "{joined:#?}");
    for r in &runs {
        assert!(
            r.iter().all(|j| j.source != excluded.name && j.source != other.name),
            "excluded sources never run"
        );
    }

    // The forecast counts every job of the fan-out, each with its source.
    let forecast = ScheduleServiceClient::new(authed(&s.scheduler_url))
        .forecast(ForecastRequest {
            parent: DEFAULT.into(),
            horizon: Some(prost_types::Duration { seconds: 60, nanos: 0 }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut per_start: HashMap<i64, Vec<String>> = HashMap::new();
    for r in &forecast.runs {
        per_start.entry(r.start_time.unwrap().seconds).or_default().push(r.source_display_name.clone());
    }
    assert!(!per_start.is_empty());
    for names in per_start.values() {
        assert_eq!(names.len(), 21, "{names:?}");
        assert!(names.contains(&"web-20".to_owned()) && !names.contains(&"web-test".to_owned()));
    }
    // Protection: one entry per source the task covers.
    let status = s
        .jobs
        .list_protection_status(ListProtectionStatusRequest {
            parent: DEFAULT.into(),
            task: "fleet".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.total_size, 21, "{status:#?}");
    // Retention kept two snapshots of each source (not two of the task), read from the store.
    s.schedules
        .pause_schedule(PauseScheduleRequest {
            name: "projects/default/schedules/every-15s".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    // Paused: once the last run ended, nothing changes the store.
    let settled = s.runs(usize::MAX).await;
    assert!(settled.iter().flatten().all(|j| !matches!(j.state(), JobState::Queued | JobState::Running)));
    let store = cairn_engine::Store::local(&repo, PASSWORD);
    let mut per_source: HashMap<String, usize> = HashMap::new();
    for snap in cairn_engine::Engine::new().list_snapshots(&store).unwrap() {
        if let Some(tag) = snap.tags.iter().find(|t| t.starts_with("cairn-source=")) {
            *per_source.entry(tag.clone()).or_default() += 1;
        }
    }
    assert_eq!(per_source.len(), 21, "{per_source:?}");
    let mut succeeded: HashMap<String, usize> = HashMap::new();
    for j in settled.iter().flatten().filter(|j| j.state() == JobState::Succeeded) {
        *succeeded.entry(j.source.rsplit('/').next().unwrap().to_owned()).or_default() += 1;
    }
    for (id, n) in &succeeded {
        assert_eq!(
            per_source.get(&format!("cairn-source={id}")),
            Some(&(*n).min(2)),
            "{per_source:?} {succeeded:?}"
        );
    }
    assert!(succeeded.values().filter(|n| **n >= 2).count() >= 20, "{succeeded:?}");
}
