//! The `cairn` binary against a real stack (catalog, scheduler, one worker, fresh Postgres):
//! a scripted session through every command, golden outputs (insta, with ids and times
//! redacted), JSON outputs parsed back as the API's messages, and exit codes.

use std::{path::Path, process::Command, time::Duration};

use cairn_runtime::CancellationToken;

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

struct Stack {
    catalog_url: String,
    scheduler_url: String,
    dir: tempfile::TempDir,
    shutdown: CancellationToken,
    _db: cairn_testkit::TestDatabase,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn stack() -> Stack {
    stack_with(false).await
}

const CLUSTER: &str = "cli-test-cluster-token-0123";
const ADMIN_PASSWORD: &str = "the admin's long password";

/// The real catalog, scheduler and a worker; `auth` turns authentication on (the platform
/// admin `admin` has [`ADMIN_PASSWORD`]).
async fn stack_with(auth: bool) -> Stack {
    let db = cairn_testkit::database().await;
    let cl = cairn_runtime::grpc::bind(([127, 0, 0, 1], 0).into()).await.unwrap();
    let sl = cairn_runtime::grpc::bind(([127, 0, 0, 1], 0).into()).await.unwrap();
    let catalog_url = format!("http://{}", cl.local_addr().unwrap());
    let scheduler_url = format!("http://{}", sl.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    tokio::spawn(cairn_catalog::run(
        cairn_catalog::Config {
            auth_disabled: !auth,
            cluster_token: Some(CLUSTER.into()),
            bootstrap_admin_password: Some(ADMIN_PASSWORD.into()),
            database_url: Some(db.url().into()),
            secret_key: Some(KEY.into()),
            scheduler_url: scheduler_url.clone(),
            ..Default::default()
        },
        cl,
        shutdown.clone(),
    ));
    tokio::spawn(cairn_scheduler::run(
        cairn_scheduler::Config {
            auth_disabled: !auth,
            cluster_token: Some(CLUSTER.into()),
            database_url: Some(db.url().into()),
            catalog_url: catalog_url.clone(),
            catalog_cache_ms: 0,
            ..Default::default()
        },
        sl,
        shutdown.clone(),
    ));
    cairn_testkit::wait_serving(&catalog_url, "").await;
    cairn_testkit::wait_serving(&scheduler_url, "").await;
    tokio::spawn(cairn_worker::run(
        cairn_worker::Config {
            scheduler_url: scheduler_url.clone(),
            worker_id: "cli-worker".into(),
            worker_labels: "host=testhost".into(),
            poll_wait_secs: 1,
            ..Default::default()
        },
        shutdown.clone(),
    ));
    Stack { catalog_url, scheduler_url, dir: tempfile::tempdir().unwrap(), shutdown, _db: db }
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Stack {
    async fn cairn(&self, args: &[&str]) -> Out {
        self.cairn_with(args, &[], None).await
    }

    /// `cairn` with extra environment and, optionally, text on standard input. Contexts live
    /// in the stack's own directory.
    async fn cairn_with(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Out {
        use std::io::Write as _;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
        cmd.args(args)
            .env("CAIRN_CATALOG_URL", &self.catalog_url)
            .env("CAIRN_SCHEDULER_URL", &self.scheduler_url)
            .env("CAIRN_CONFIG_DIR", self.dir.path().join("config"))
            .env("TZ", "UTC")
            .env("NO_COLOR", "1")
            .env_remove("CAIRN_TOKEN")
            .env_remove("CAIRN_CONTEXT")
            .env_remove("CAIRN_PROJECT")
            .env_remove("CAIRN_REPOSITORY_PASSWORD")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let input = stdin.unwrap_or_default().to_owned();
        let out = tokio::task::spawn_blocking(move || {
            let mut child = cmd.spawn()?;
            child.stdin.take().expect("stdin").write_all(input.as_bytes())?;
            child.wait_with_output()
        })
        .await
        .unwrap()
        .unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs and requires exit 0.
    async fn ok(&self, args: &[&str]) -> String {
        let o = self.cairn(args).await;
        assert_eq!(o.code, 0, "cairn {args:?} failed:\n{}\n{}", o.stdout, o.stderr);
        o.stdout
    }

    /// Runs with `--output json` and parses the output as message `M` (the API's JSON mapping).
    async fn json<M: prost::Message + prost::Name + Default>(&self, args: &[&str]) -> M {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let text = self.ok(&all).await;
        cairn_api::json::from_json::<M>(&text)
            .unwrap_or_else(|e| panic!("cairn {args:?}: not a {}: {e}\n{text}", M::full_name()))
    }

    fn path(&self, rel: &str) -> String {
        self.dir.path().join(rel).display().to_string()
    }
}

/// Redacts ids, times and machine-specific bits, and collapses table padding.
fn settings(dir: &Path) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(&regex::escape(&dir.display().to_string()), "[TMP]");
    s.add_filter(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "[ID]");
    s.add_filter(r"\b[0-9a-f]{64}\b", "[SNAPSHOT]");
    s.add_filter(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?Z", "[TIME]");
    s.add_filter(r"\((now|in [^)]*|[^()]* ago)\)", "([REL])");
    s.add_filter(r"\b\d+(ms|s|m \d+s)\b", "[DUR]");
    s.add_filter(r"\b[0-9a-f]{8}\b", "[SHORT]");
    s.add_filter(r#""etag": "\\"\d+\\"""#, r#""etag": "[ETAG]""#);
    s.add_filter(r"(?m)  (in \d[0-9dhms ]*|\d[0-9dhms ]* ago)$", "  [REL]");
    s.add_filter(r" {2,}", "  ");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_session_through_every_command() {
    let s = stack().await;
    let src = s.path("src");
    std::fs::create_dir_all(format!("{src}/docs")).unwrap();
    std::fs::write(format!("{src}/docs/readme.txt"), "hello cairn\n").unwrap();
    std::fs::write(format!("{src}/data.bin"), vec![42u8; 200_000]).unwrap();
    std::fs::write(s.path("pass"), "repo-pass\n").unwrap();
    let (repo, dest) = (s.path("repo"), s.path("restore"));
    std::fs::create_dir_all(&dest).unwrap();
    let settings = settings(s.dir.path());
    let _guard = settings.bind_to_scope();

    // Connectors of every type.
    let out =
        s.ok(&["connector", "create", "local-path", "docs", "--path", &src, "--exclude", "*.tmp"]).await;
    insta::assert_snapshot!("connector_create_local_path", out);
    s.ok(&[
        "connector",
        "create",
        "command",
        "dump",
        "--file-name",
        "dump.txt",
        "--",
        "sh",
        "-c",
        "echo dumped",
    ])
    .await;
    let pass = s.path("pass");
    let store: cairn_api::v1::Connector = s
        .json(&[
            "connector",
            "create",
            "local-store",
            "nas",
            "--path",
            &repo,
            "--password-file",
            &pass,
            "--create-if-missing",
        ])
        .await;
    assert!(store.repository_password_set && store.repository_password.is_empty());
    std::fs::write(s.path("s3.key"), "s3-secret").unwrap();
    let s3key = s.path("s3.key");
    s.ok(&[
        "connector",
        "create",
        "s3-store",
        "offsite",
        "--endpoint",
        "http://127.0.0.1:1",
        "--bucket",
        "cairn-test",
        "--access-key-id",
        "AK",
        "--secret-access-key-file",
        &s3key,
        "--password-file",
        &pass,
    ])
    .await;
    s.ok(&[
        "connector",
        "create",
        "sftp-store",
        "vault",
        "--host",
        "backup.example.com",
        "--user",
        "cairn",
        "--path",
        "/srv/repo",
        "--password-file",
        &pass,
    ])
    .await;
    s.ok(&[
        "connector",
        "create",
        "rest-store",
        "rest",
        "--url",
        "https://rest.example.com/repo",
        "--password-file",
        &pass,
    ])
    .await;
    s.ok(&["connector", "create", "destination", "restore-area", "--path", &dest]).await;
    insta::assert_snapshot!("connector_list", s.ok(&["connector", "list"]).await);
    let listed: cairn_api::v1::ListConnectorsResponse =
        s.json(&["connector", "list", "--role", "store"]).await;
    assert_eq!(listed.connectors.len(), 4);
    insta::assert_snapshot!("connector_get_store", s.ok(&["connector", "get", "nas"]).await);
    s.ok(&["connector", "update", "nas", "--max-concurrent-jobs", "2", "--description", "the NAS"]).await;
    let nas: cairn_api::v1::Connector = s.json(&["connector", "get", "nas"]).await;
    assert_eq!((nas.max_concurrent_jobs, nas.description.as_str()), (2, "the NAS"));
    let verdict: cairn_api::v1::ConnectionTest =
        s.json(&["connector", "test", "nas", "--timeout", "60s"]).await;
    assert!(verdict.ok && verdict.initialized, "{verdict:?}");

    // Tasks of every type.
    s.ok(&[
        "task",
        "create",
        "backup",
        "docs-nightly",
        "--source",
        "docs",
        "--store",
        "nas",
        "--label",
        "docs",
        "--keep-last",
        "3",
        "--host",
        "testhost",
    ])
    .await;
    s.ok(&[
        "task",
        "create",
        "backup",
        "dump-hourly",
        "--source",
        "dump",
        "--store",
        "nas",
        "--overlap",
        "queue-one",
    ])
    .await;
    s.ok(&[
        "task",
        "create",
        "restore",
        "docs-restore",
        "--store",
        "nas",
        "--destination",
        "restore-area",
        "--label",
        "docs",
    ])
    .await;
    s.ok(&["task", "create", "sync", "docs-offsite", "--from", "nas", "--to", "offsite", "--window", "7d"])
        .await;
    s.ok(&["task", "create", "check", "nas-check", "--store", "nas", "--read-data", "100"]).await;
    s.ok(&["task", "create", "prune", "nas-prune", "--store", "nas"]).await;
    insta::assert_snapshot!("task_list", s.ok(&["task", "list"]).await);
    insta::assert_snapshot!(
        "task_get_json",
        s.ok(&["task", "get", "docs-nightly", "--output", "json"]).await
    );
    s.ok(&["task", "update", "docs-nightly", "--keep-last", "5", "--timeout", "1h"]).await;
    let t: cairn_api::v1::Task = s.json(&["task", "get", "docs-nightly"]).await;
    assert_eq!(t.timeout.unwrap().seconds, 3600);
    let listed: cairn_api::v1::ListTasksResponse =
        s.json(&["task", "list", "--connector", "nas", "--type", "backup"]).await;
    assert_eq!(listed.tasks.len(), 2);

    // Schedules with every recurrence kind.
    s.ok(&[
        "schedule",
        "add",
        "weeknights",
        "--task",
        "docs-nightly",
        "--calendar",
        "Mon..Fri 18:00",
        "--tz",
        "Europe/Berlin",
    ])
    .await;
    s.ok(&["schedule", "add", "cron-2am", "--task", "docs-nightly", "--cron", "0 2 * * *"]).await;
    s.ok(&[
        "schedule",
        "add",
        "six-hourly",
        "--task",
        "dump-hourly",
        "--every",
        "6h",
        "--journalised",
        "--jitter",
        "5m",
        "--start",
        "2030-01-01T00:00:00Z",
    ])
    .await;
    s.ok(&["schedule", "add", "monthly", "--task", "nas-check", "--preset", "every-30-days", "--paused"])
        .await;
    insta::assert_snapshot!(
        "schedule_preview",
        s.ok(&[
            "schedule",
            "preview",
            "--calendar",
            "Mon..Fri 18:00",
            "--tz",
            "Europe/Berlin",
            "--after",
            "2024-01-30T10:15:00Z",
            "--count",
            "4"
        ])
        .await
    );
    let preview: cairn_api::v1::PreviewScheduleResponse = s
        .json(&[
            "schedule",
            "preview",
            "--cron",
            "*/15 9-17 * * 1-5",
            "--after",
            "2024-01-30T10:15:00Z",
            "--count",
            "3",
        ])
        .await;
    assert_eq!(preview.fire_times.len(), 3);
    let sl: cairn_api::v1::ListSchedulesResponse = s.json(&["schedule", "list", "--paused"]).await;
    assert_eq!(sl.schedules.len(), 1);
    s.ok(&["schedule", "list", "--connector", "nas"]).await;
    s.ok(&["schedule", "pause", "weeknights"]).await;
    s.ok(&["schedule", "resume", "weeknights"]).await;
    s.ok(&["schedule", "update", "weeknights", "--calendar", "Mon..Fri 19:30"]).await;
    let sched: cairn_api::v1::Schedule = s.json(&["schedule", "get", "weeknights"]).await;
    assert_eq!(sched.normalized_recurrence, "Mon..Fri *-*-* 19:30:00");
    s.ok(&["schedule", "delete", "cron-2am", "--yes"]).await;

    // Run with a live follow, then restore, history, logs, snapshots.
    let out = s.ok(&["run", "docs-nightly", "--wait", "--follow"]).await;
    assert!(out.contains("SUCCEEDED") && out.contains("finished successfully"), "{out}");
    let events: Vec<serde_json::Value> = s
        .ok(&["run", "docs-nightly", "--follow", "--output", "json"])
        .await
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events.iter().any(|e| e.get("logLine").is_some()));
    assert!(events.iter().any(|e| e["job"]["state"] == "JOB_STATE_SUCCEEDED"), "{events:?}");
    let out = s.ok(&["run", "docs-restore", "--wait"]).await;
    assert!(out.contains("files restored, 0 unchanged,") && out.contains("written)"), "{out}");
    let restored = std::fs::read_to_string(format!("{dest}{src}/docs/readme.txt")).unwrap();
    assert_eq!(restored, "hello cairn\n");
    // Once, one path, elsewhere: `cairn restore` leaves the task as it is.
    let scratch = s.path("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    s.ok(&["connector", "create", "destination", "scratch", "--path", &scratch]).await;
    let one = format!("{src}/docs");
    let out = s.ok(&["restore", "docs-restore", "--path", &one, "--destination", "scratch"]).await;
    assert!(out.contains("SUCCEEDED"), "{out}");
    assert!(std::path::Path::new(&format!("{scratch}{src}/docs/readme.txt")).exists());
    assert!(!std::path::Path::new(&format!("{scratch}{src}/data.bin")).exists(), "only the chosen path");
    let o = s.cairn(&["restore", "docs-restore", "--path", "../etc"]).await;
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("overrides.include_paths[0]"), "{}", o.stderr);
    // Protection: docs has an objective now and a fresh backup; dump was never backed up.
    s.ok(&["task", "update", "docs-nightly", "--rpo", "26h"]).await;
    let o = s.cairn(&["task", "update", "docs-nightly", "--rpo", "10s"]).await;
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("task.backup.rpo: must be between 1 minute and 3660 days"), "{}", o.stderr);
    let st: cairn_api::v1::ListProtectionStatusResponse = s.json(&["status"]).await;
    let of = |name: &str| st.statuses.iter().find(|x| x.source_display_name == name).unwrap().clone();
    assert_eq!(of("docs").state(), cairn_api::v1::ProtectionState::Ok, "{st:?}");
    assert_eq!(of("docs").rpo.as_ref().map(|d| d.seconds), Some(26 * 3600));
    assert_eq!(of("dump").state(), cairn_api::v1::ProtectionState::NeverBackedUp);
    let table = s.ok(&["status"]).await;
    let lines: Vec<&str> = table.lines().map(str::trim_start).collect();
    assert!(lines[0].starts_with("SOURCE") && lines[0].contains("LAST SUCCESS"), "{table}");
    assert!(lines[1].starts_with("dump") && lines[1].contains("NEVER_BACKED_UP"), "worst first:\n{table}");
    assert!(
        lines.iter().any(|l| l.starts_with("docs") && l.contains("docs-nightly") && l.contains(" OK ")),
        "{table}"
    );
    assert_eq!(s.cairn(&["status", "--fail-on-violation"]).await.code, 1, "dump is unprotected");
    let ok_only = s.cairn(&["status", "--state", "ok", "--fail-on-violation"]).await;
    assert_eq!(ok_only.code, 0, "{}", ok_only.stderr);
    assert!(!ok_only.stdout.contains("dump"), "{}", ok_only.stdout);
    // A fleet task: every source labelled fleet=docs but the excluded one, one job each.
    for name in ["fleet-a", "fleet-b", "fleet-skip"] {
        s.ok(&["connector", "create", "local-path", name, "--path", &src, "--label", "fleet=docs"]).await;
    }
    let o = s
        .cairn(&["connector", "create", "local-path", "bad-label", "--path", &src, "--label", "fleet"])
        .await;
    assert_eq!(o.code, 2, "{}", o.stderr);
    let o = s
        .cairn(&[
            "task",
            "create",
            "backup",
            "both",
            "--source",
            "docs",
            "--sources",
            "fleet=docs",
            "--store",
            "nas",
        ])
        .await;
    assert_eq!(o.code, 2, "--source and --sources exclude each other: {}", o.stderr);
    s.ok(&[
        "task",
        "create",
        "backup",
        "docs-fleet",
        "--sources",
        "fleet=docs",
        "--exclude",
        "fleet-skip",
        "--store",
        "nas",
    ])
    .await;
    let out = s.ok(&["run", "docs-fleet", "--wait"]).await;
    assert!(out.contains("Run ") && out.contains(": 2 jobs, one per source."), "{out}");
    assert_eq!(out.matches("SUCCEEDED").count(), 2, "{out}");
    let fleet: cairn_api::v1::ListJobsResponse = s.json(&["job", "list", "--task", "docs-fleet"]).await;
    assert_eq!(fleet.jobs.len(), 2);
    assert!(fleet.jobs.iter().all(|j| j.run == fleet.jobs[0].run && !j.source.is_empty()));
    let jobs: cairn_api::v1::ListJobsResponse =
        s.json(&["job", "list", "--task", "docs-nightly", "--state", "succeeded"]).await;
    assert_eq!(jobs.jobs.len(), 2);
    let job = &jobs.jobs[0].name;
    insta::assert_snapshot!(
        "job_list",
        s.ok(&["job", "list", "--task", "docs-nightly", "--since", "1h"]).await
    );
    let shown = s.ok(&["job", "show", job]).await;
    assert!(shown.contains("SUCCEEDED") && shown.contains("last log lines"), "{shown}");
    let logs = s.ok(&["job", "logs", job]).await;
    assert!(logs.contains("finished successfully"));
    let follow = s.ok(&["job", "logs", job, "--follow"]).await;
    assert_eq!(follow, logs, "following an ended job prints the whole log once");
    insta::assert_snapshot!(
        "snapshot_list",
        s.ok(&["snapshot", "list", "--store", "nas", "--label", "docs"]).await
    );
    let snaps: cairn_api::v1::ListSnapshotsResponse =
        s.json(&["snapshot", "list", "--task", "docs-nightly"]).await;
    assert_eq!(snaps.snapshots.len(), 2);
    // Browse them: a directory, one file's bytes, what changed between the two.
    let (newer, older) = (snaps.snapshots[0].id.clone(), snaps.snapshots[1].id.clone());
    let out = s.ok(&["snapshot", "ls", "nas", &newer[..8], &src]).await;
    assert!(out.lines().any(|l| l == "docs/") && out.lines().any(|l| l == "data.bin"), "{out}");
    let out = s.ok(&["snapshot", "ls", "nas", &newer, &format!("{src}/docs"), "--long"]).await;
    assert!(out.lines().any(|l| l.starts_with("-rw") && l.ends_with(" readme.txt")), "{out}");
    let listed: cairn_api::v1::ListSnapshotEntriesResponse =
        s.json(&["snapshot", "ls", "nas", &newer, &format!("{src}/docs")]).await;
    assert_eq!(listed.entries.len(), listed.total_size as usize);
    let file = format!("{src}/docs/readme.txt");
    assert_eq!(s.ok(&["snapshot", "cat", "nas", &newer, &file]).await, "hello cairn\n");
    let copy = s.path("readme.copy");
    s.ok(&["snapshot", "cat", "nas", &newer, &file, "--to", &copy]).await;
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), "hello cairn\n");
    let o = s.cairn(&["snapshot", "cat", "nas", &newer, &file, "--to", &copy]).await;
    assert_eq!(o.code, 2, "an existing file is not overwritten: {}", o.stderr);
    let out = s.ok(&["snapshot", "diff", "nas", &older, &newer]).await;
    assert!(out.starts_with("comparing snapshot") && out.contains("added,"), "{out}");
    let o = s.cairn(&["snapshot", "ls", "nas", "xyz"]).await;
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("snapshot"), "{}", o.stderr);
    let o = s.cairn(&["snapshot", "ls", "nas", &newer, &format!("{src}/nope")]).await;
    assert_eq!(o.code, 3, "{}", o.stderr);
    let o = s.cairn(&["snapshot", "cat", "nas", &newer, &format!("{src}/docs")]).await;
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("not a regular file"), "{}", o.stderr);
    let sim = s
        .ok(&["retention", "simulate", "--store", "nas", "--task", "docs-nightly", "--keep-last", "1"])
        .await;
    assert!(sim.contains("1 kept, 1 removed"), "{sim}");
    std::fs::write(
        s.path("snaps.json"),
        r#"[{"id": "a", "time": "2026-01-01T02:00:00Z"}, {"id": "b", "time": "2026-01-02T02:00:00Z"}, {"id": "c", "time": "2026-01-02T03:00:00Z"}]"#,
    )
    .unwrap();
    let snaps_file = s.path("snaps.json");
    let sim: cairn_api::v1::SimulateRetentionResponse =
        s.json(&["retention", "simulate", "--snapshots", &snaps_file, "--keep-daily", "5"]).await;
    let kept: Vec<_> = sim.decisions.iter().filter(|d| d.keep).map(|d| d.snapshot_id.as_str()).collect();
    assert_eq!(kept, vec!["c", "a"]);

    // Cancel a queued job: with the store selecting a worker that does not exist, it waits.
    s.ok(&["connector", "update", "nas", "--selector", "zone=nowhere"]).await;
    let queued: cairn_api::v1::Job = s.json(&["run", "nas-prune"]).await;
    let cancel = s.cairn(&["job", "cancel", &queued.name, "--reason", "not now", "-y"]).await;
    assert_eq!(cancel.code, 0, "{}", cancel.stderr);
    let watched = s.cairn(&["job", "watch", &queued.name]).await;
    assert!(watched.stdout.contains("CANCELLED"), "{}", watched.stdout);
    s.ok(&["connector", "update", "nas", "--clear-selector"]).await;

    // Forecast, health, completions.
    let fc = s.ok(&["forecast", "--horizon", "7d", "--runs"]).await;
    assert!(fc.contains("Mon") && fc.contains("legend"), "{fc}");
    let fcj: cairn_api::v1::ForecastResponse = s.json(&["forecast"]).await;
    assert_eq!(fcj.heatmap.len(), 7);
    assert_eq!(s.cairn(&["health", &s.catalog_url]).await.code, 0);
    assert_eq!(s.cairn(&["health", &s.scheduler_url, "--service", "cairn.v1.LeaseService"]).await.code, 0);
    assert!(s.ok(&["completions", "bash"]).await.contains("cairn"));

    // Deleting.
    s.ok(&["task", "delete", "nas-prune", "--yes"]).await;
    let err = s.cairn(&["connector", "delete", "nas", "--yes"]).await;
    assert_eq!(err.code, 1);
    assert!(err.stderr.contains("is used by task"), "{}", err.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_problem_with_exit_codes() {
    let s = stack().await;
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["connector", "get", "nope"], 3, "not found"),
        (vec!["task", "run", "nope"], 2, "task: task \"projects/default/tasks/nope\" does not exist"),
        (
            vec!["schedule", "preview", "--calendar", "25:00"],
            2,
            "recurrence.calendar: \"25:00\": hour 25 out of range",
        ),
        (vec!["schedule", "preview", "--calendar", "daily", "--tz", "Mars/Base"], 2, "time_zone"),
        (vec!["schedule", "preview", "--every", "soon"], 2, "--every"),
        (vec!["schedule", "preview", "--calendar", "daily", "--cron", "* * * * *"], 2, "cannot be used with"),
        (vec!["connector", "create", "local-store", "x", "--path", "/srv/x"], 2, "repository password"),
        (
            vec!["connector", "create", "local-path", "x", "--path", "relative"],
            2,
            "connector.local_path_source.paths[0]",
        ),
        (vec!["job", "show", "not-an-id"], 2, "does not end in an id"),
        (vec!["--project", "Bad_Project", "task", "list"], 2, "--project"),
        (vec!["--project", "nope", "task", "list"], 3, "projects/nope"),
        (vec!["job", "show", "jobs/0193f3a2-6b1c-7cc0-8a5e-3b0c1d2e3f40"], 2, "projects/default/jobs/"),
        (vec!["frobnicate"], 2, "unrecognized subcommand"),
        (vec!["--scheduler-url", "http://127.0.0.1:9", "job", "list"], 5, "cannot reach the scheduler"),
        (vec!["task", "delete", "anything"], 2, "pass --yes"),
    ];
    for (args, code, needle) in cases {
        let o = s.cairn(&args).await;
        assert_eq!(o.code, code, "cairn {args:?}: {}{}", o.stdout, o.stderr);
        assert!(o.stderr.contains(needle), "cairn {args:?}: stderr lacks {needle:?}:\n{}", o.stderr);
    }
    // Several bad fields are all listed.
    let o = s
        .cairn(&[
            "connector",
            "create",
            "s3-store",
            "Bad Name",
            "--endpoint",
            "ftp://x",
            "--bucket",
            "B",
            "--access-key-id",
            "a",
            "--secret-access-key",
            "k",
            "--password",
            "p",
        ])
        .await;
    assert_eq!(o.code, 2);
    for f in ["connector.display_name", "connector.s3_store.endpoint", "connector.s3_store.bucket"] {
        assert!(o.stderr.contains(f), "{f} missing:\n{}", o.stderr);
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
}

#[test]
fn a_reader_that_stops_early_ends_cairn_quietly() {
    use std::{io::Read as _, process::Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read a little, then close the pipe like `| head -1` does.
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let status = child.wait().unwrap();
    assert!(!stderr.contains("panicked"), "cairn panicked on a closed pipe:\n{stderr}");
    assert_ne!(status.code(), Some(101), "exit code of a panic");
}

#[test]
fn every_command_has_help_with_examples() {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn")).arg("--help").output().unwrap();
    let root = String::from_utf8_lossy(&out.stdout);
    assert!(root.contains("Examples:") && root.contains("cairn schedule add"));
    for path in [
        vec!["connector", "create", "local-path"],
        vec!["connector", "create", "local-store"],
        vec!["connector", "create", "s3-store"],
        vec!["connector", "list"],
        vec!["connector", "test"],
        vec!["task", "create", "backup"],
        vec!["task", "create", "restore"],
        vec!["task", "create", "sync"],
        vec!["task", "create", "check"],
        vec!["task", "create", "prune"],
        vec!["schedule", "add"],
        vec!["schedule", "preview"],
        vec!["job", "list"],
        vec!["job", "logs"],
        vec!["snapshot", "list"],
        vec!["retention", "simulate"],
        vec!["forecast"],
        vec!["run"],
    ] {
        let mut args = path.clone();
        args.push("--help");
        let out = Command::new(env!("CARGO_BIN_EXE_cairn")).args(&args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("Examples:"),
            "{path:?} --help has no examples:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_keep_teams_apart() {
    let s = stack().await;
    let src = s.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(format!("{src}/a.txt"), "team data\n").unwrap();
    std::fs::write(s.path("pass"), "repo-pass\n").unwrap();
    let pass = s.path("pass");
    let made: cairn_api::v1::Project = s
        .json(&["project", "create", "team-a", "--display-name", "Team A", "--label", "cost-center=42"])
        .await;
    assert_eq!((made.name.as_str(), made.display_name.as_str()), ("projects/team-a", "Team A"));
    let listed = s.ok(&["project", "list"]).await;
    assert!(listed.contains("default") && listed.contains("Team A"), "{listed}");
    // The same display names in both projects; every command works inside its project.
    for project in ["default", "team-a"] {
        let repo = s.path(&format!("repo-{project}"));
        s.ok(&["--project", project, "connector", "create", "local-path", "docs", "--path", &src]).await;
        s.ok(&[
            "--project",
            project,
            "connector",
            "create",
            "local-store",
            "nas",
            "--path",
            &repo,
            "--password-file",
            &pass,
            "--create-if-missing",
        ])
        .await;
        s.ok(&[
            "--project",
            project,
            "task",
            "create",
            "backup",
            "nightly",
            "--source",
            "docs",
            "--store",
            "nas",
        ])
        .await;
        s.ok(&["--project", project, "schedule", "add", "daily", "--task", "nightly", "--calendar", "02:00"])
            .await;
    }
    let job: cairn_api::v1::Job = s.json(&["--project", "team-a", "run", "nightly", "--wait"]).await;
    assert!(job.name.starts_with("projects/team-a/jobs/"), "{}", job.name);
    assert_eq!(job.state(), cairn_api::v1::JobState::Succeeded, "{job:?}");
    let a_tasks: cairn_api::v1::ListTasksResponse = s.json(&["--project", "team-a", "task", "list"]).await;
    assert_eq!(a_tasks.tasks.len(), 1);
    assert!(a_tasks.tasks[0].name.starts_with("projects/team-a/tasks/"));
    let d_jobs: cairn_api::v1::ListJobsResponse = s.json(&["job", "list"]).await;
    assert!(d_jobs.jobs.is_empty(), "the default project ran nothing: {d_jobs:?}");
    let all_jobs: cairn_api::v1::ListJobsResponse = s.json(&["job", "list", "--all-projects"]).await;
    assert_eq!(all_jobs.jobs.len(), 1);
    let snaps = s.ok(&["--project", "team-a", "snapshot", "list", "--store", "nas"]).await;
    assert!(snaps.contains("docs") || snaps.contains(&src), "{snaps}");
    let d_snaps = s.ok(&["snapshot", "list", "--store", "nas"]).await;
    assert!(!d_snaps.contains(&src), "{d_snaps}");
    // A job id from team-a is not found from the default project.
    let id = job.name.rsplit('/').next().unwrap();
    let o = s.cairn(&["job", "show", id]).await;
    assert_eq!(o.code, 3, "{}", o.stderr);
    assert!(o.stderr.contains("not found"), "{}", o.stderr);
    s.ok(&["--project", "team-a", "job", "show", id]).await;
    // Updating and deleting projects.
    let up: cairn_api::v1::Project =
        s.json(&["project", "update", "team-a", "--description", "the web team"]).await;
    assert_eq!(up.description, "the web team");
    let o = s.cairn(&["project", "delete", "team-a", "--yes"]).await;
    assert_eq!(o.code, 1);
    for needle in ["nightly", "docs", "nas", "1 schedule(s)", "job(s) in history", "force"] {
        assert!(o.stderr.contains(needle), "{needle}: {}", o.stderr);
    }
    s.ok(&["project", "delete", "team-a", "--force", "--yes"]).await;
    let o = s.cairn(&["--project", "team-a", "task", "list"]).await;
    assert_eq!(o.code, 3);
    assert!(o.stderr.contains("projects/team-a"), "{}", o.stderr);
    let all_jobs: cairn_api::v1::ListJobsResponse = s.json(&["job", "list", "--all-projects"]).await;
    assert!(all_jobs.jobs.is_empty(), "the deleted project's history is gone: {all_jobs:?}");
    // The default project is untouched.
    let d_tasks: cairn_api::v1::ListTasksResponse = s.json(&["task", "list"]).await;
    assert_eq!(d_tasks.tasks.len(), 1);
    let o = s.cairn(&["project", "delete", "default", "--force", "--yes"]).await;
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("cannot be deleted"), "{}", o.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_log_in_and_manage_who_may_do_what() {
    let s = stack_with(true).await;
    // Nothing without a credential: exit 4.
    let o = s.cairn(&["task", "list"]).await;
    assert_eq!(o.code, 4, "{}", o.stderr);
    assert!(o.stderr.contains("missing credential"), "{}", o.stderr);
    // A wrong password, then the right one; the tokens land in the context file, 0600.
    let o = s.cairn_with(&["login", "admin", "--password-stdin"], &[], Some("not the password\n")).await;
    assert_eq!(o.code, 4, "{}", o.stderr);
    let o = s
        .cairn_with(&["login", "admin", "--password-stdin"], &[], Some(&format!("{ADMIN_PASSWORD}\n")))
        .await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("logged in as users/admin"), "{}", o.stdout);
    let file = s.dir.path().join("config/config.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("cairn_at_") && text.contains("cairn_rt_") && !text.contains(ADMIN_PASSWORD),
        "{text}"
    );
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // The admin sets up a team: a project, a user with a role, a service account and its token.
    s.ok(&["project", "create", "team-a"]).await;
    let alice_pw = "alice's long password";
    let o = s.cairn_with(&["user", "create", "alice", "--password-stdin"], &[], Some(alice_pw)).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    s.ok(&["--project", "team-a", "member", "set", "alice", "viewer"]).await;
    assert!(s.ok(&["--project", "team-a", "member", "list"]).await.contains("users/alice"));
    s.ok(&["--project", "team-a", "service-account", "create", "ci", "--role", "operator"]).await;
    let secret = s
        .ok(&["--project", "team-a", "token", "create", "ci", "--name", "pipeline", "--expires-in", "30d"])
        .await;
    let secret = secret.trim().to_owned();
    assert!(secret.starts_with("cairn_pat_"), "{secret}");
    let listed = s.ok(&["--project", "team-a", "token", "list", "ci"]).await;
    assert!(listed.contains("pipeline") && !listed.contains(&secret), "{listed}");
    // The token works in its project only.
    let as_ci = [("CAIRN_TOKEN", secret.as_str())];
    assert_eq!(s.cairn_with(&["--project", "team-a", "task", "list"], &as_ci, None).await.code, 0);
    let o = s.cairn_with(&["task", "list"], &as_ci, None).await;
    assert_eq!(o.code, 4, "{}", o.stderr);
    // A worker pool's enrolment token is printed once.
    let pool = s.ok(&["worker-pool", "create", "eu", "--projects", "team-a", "--label", "zone=eu"]).await;
    assert!(pool.trim().starts_with("cairn_wp_"), "{pool}");
    assert!(s.ok(&["worker-pool", "list"]).await.contains("team-a"));
    // A second context as alice, who may read team-a but not delete in it.
    let o = s
        .cairn_with(&["--context", "alice", "login", "alice", "--password-stdin"], &[], Some(alice_pw))
        .await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let contexts = s.ok(&["context", "list"]).await;
    assert!(contexts.contains("users/admin") && contexts.contains("users/alice"), "{contexts}");
    s.ok(&["context", "use", "alice"]).await;
    s.ok(&["--project", "team-a", "task", "list"]).await;
    let o = s.cairn(&["--project", "team-a", "connector", "delete", "nas", "--yes"]).await;
    assert_eq!(o.code, 4, "{}", o.stderr);
    // An expired access token is renewed with the refresh token, and the context saved.
    let before = std::fs::read_to_string(&file).unwrap();
    let mut doc: toml::Table = toml::from_str(&before).unwrap();
    doc["contexts"]["alice"]
        .as_table_mut()
        .unwrap()
        .insert("token_expire_time".into(), toml::Value::String("2000-01-01T00:00:00Z".into()));
    std::fs::write(&file, toml::to_string(&doc).unwrap()).unwrap();
    s.ok(&["--project", "team-a", "task", "list"]).await;
    let after: toml::Table = toml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let old: toml::Table = toml::from_str(&before).unwrap();
    assert_ne!(after["contexts"]["alice"]["token"], old["contexts"]["alice"]["token"], "a new access token");
    // Logout ends the session at once.
    s.ok(&["logout"]).await;
    assert_eq!(s.cairn(&["--project", "team-a", "task", "list"]).await.code, 4);
    s.ok(&["context", "use", "default"]).await;
    // The audit log holds the session, and never a secret.
    let events: cairn_api::v1::ListAuditEventsResponse =
        s.json(&["audit", "list", "--all-projects", "--limit", "500"]).await;
    let methods: Vec<&str> =
        events.events.iter().map(|e| e.method.rsplit('/').next().unwrap_or_default()).collect();
    for m in [
        "Login",
        "CreateProject",
        "CreateUser",
        "SetMember",
        "CreateServiceAccount",
        "CreateApiToken",
        "CreateWorkerPool",
        "Logout",
    ] {
        assert!(methods.contains(&m), "{m} not audited: {methods:?}");
    }
    let text = format!("{events:?}");
    assert!(
        !text.contains(&secret) && !text.contains(ADMIN_PASSWORD) && !text.contains(alice_pw),
        "a secret in the audit log"
    );
    let denied = s.ok(&["audit", "list", "--all-projects", "--denied"]).await;
    assert!(denied.contains("DeleteConnector") && denied.contains("users/alice"), "{denied}");
    // A credential is never sent in plaintext beyond loopback.
    let o = s
        .cairn_with(
            &["--catalog-url", "http://10.1.2.3:50051", "task", "list"],
            &[("CAIRN_TOKEN", "cairn_pat_x")],
            None,
        )
        .await;
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("plaintext"), "{}", o.stderr);
}
