//! The fault suite: the real catalog, scheduler and workers against real Postgres and real
//! repositories while things break (Postgres stopped and started again, the network between a
//! worker and the scheduler partitioned, slowed or cut). Every case ends by checking that
//! nothing was lost: each schedule occurrence accounted for exactly once (a job, or a skip
//! record counting it), each job ended once, each successful backup's snapshot in the index,
//! and `restic check` passing on every repository.

#[path = "../journeys/harness.rs"]
mod harness;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use cairn_api::v1::{Job, JobState, ListJobsRequest, PauseScheduleRequest, Task, TaskType};
use cairn_testkit::proxy::{Fault, FaultProxy};
use harness::*;
use tokio::time::Instant;

/// `restic check` passes on the repository (skipped, saying so, without restic).
fn restic_check(repo: &Path) {
    let Some(restic) = restic() else {
        eprintln!("SKIP restic check: no restic on PATH");
        return;
    };
    let out = std::process::Command::new(restic)
        .arg("-r")
        .arg(repo)
        .args(["--no-cache", "check", "--read-data"])
        .env("RESTIC_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "restic check failed on {}:\n{}{}",
        repo.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn jobs_of(s: &mut Stack, task: &str) -> Vec<Job> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let r = s
            .jobs
            .list_jobs(ListJobsRequest {
                parent: DEFAULT.into(),
                task: full("tasks", task),
                page_size: 500,
                page_token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        all.extend(r.jobs);
        if r.next_page_token.is_empty() {
            return all;
        }
        page_token = r.next_page_token;
    }
}

fn ended(j: &Job) -> bool {
    matches!(j.state(), JobState::Succeeded | JobState::Failed | JobState::Cancelled | JobState::Skipped)
}

/// Every successful backup's snapshot is in the index.
async fn indexed(s: &mut Stack, store: &str, jobs: &[Job]) {
    let snapshots = s.snapshots(store).await;
    for j in jobs.iter().filter(|j| j.state() == JobState::Succeeded) {
        assert!(
            snapshots
                .iter()
                .any(|snap| snap.name.ends_with(&format!("/{}", j.snapshot)) || snap.id == j.snapshot),
            "job {} made snapshot {} but the index lacks it",
            j.name,
            j.snapshot
        );
    }
}

/// Each occurrence of a schedule firing every `period` seconds, between the first and the
/// last one fired, is accounted for exactly once: fired once, or counted by a skip record.
fn accounted(jobs: &[Job], period: i64) {
    let mut fired: BTreeMap<i64, usize> = BTreeMap::new();
    let mut skipped = 0i64;
    for j in jobs {
        if j.missed_occurrences > 0 {
            skipped += j.missed_occurrences;
        } else {
            *fired.entry(j.scheduled_time.as_ref().unwrap().seconds).or_default() += 1;
        }
    }
    let twice: Vec<_> = fired.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "occurrences fired twice: {twice:?}");
    let (first, last) = (*fired.keys().next().unwrap(), *fired.keys().next_back().unwrap());
    let expected = (last - first) / period + 1;
    assert_eq!(fired.len() as i64 + skipped, expected, "occurrences from {first} to {last}: {jobs:#?}");
}

/// Pauses the schedule and waits for every job of `task` to end; the jobs.
async fn settle(s: &mut Stack, schedule: &str, task: &str) -> Vec<Job> {
    s.schedules
        .pause_schedule(PauseScheduleRequest { name: full("schedules", schedule), ..Default::default() })
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let jobs = jobs_of(s, task).await;
        if jobs.iter().all(ended) {
            return jobs;
        }
        assert!(Instant::now() < deadline, "jobs still open: {jobs:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the server answers its health check with `serving`, at most until `deadline`;
/// how long after `since` that was.
async fn until_health(url: &str, serving: bool, since: Instant, deadline: Duration) -> Duration {
    while cairn_testkit::serving(url).await != Some(serving) {
        assert!(since.elapsed() < deadline, "{url} did not report serving={serving} within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    since.elapsed()
}

/// A BACKUP task `often` of a generated tree (`files`, `seed`) into the local store `nas`,
/// fired by the schedule `name` on `calendar`; the repository.
async fn often(s: &mut Stack, name: &str, calendar: &str, files: usize, seed: u64) -> PathBuf {
    let src = s.path("data");
    generate_tree(&src, files, seed);
    s.path_source("data", &src).await;
    let (_, repo) = s.local_store("nas").await;
    s.task(Task {
        display_name: "often".into(),
        r#type: TaskType::Backup as i32,
        source: "data".into(),
        store: "nas".into(),
        ..Default::default()
    })
    .await;
    s.schedule(name, "often", calendar).await;
    repo
}

/// A BACKUP task `slow` into `nas` whose source streams 3 MB, pauses `pause` seconds, then
/// ends: a job that is running while something breaks.
async fn slow_backup(s: &mut Stack, pause: u32) {
    let script = format!("head -c 3000000 /dev/urandom; sleep {pause}; head -c 1000 /dev/zero");
    s.command_source("slow", &script, "slow.bin").await;
    s.task(Task {
        display_name: "slow".into(),
        r#type: TaskType::Backup as i32,
        source: "slow".into(),
        store: "nas".into(),
        ..Default::default()
    })
    .await;
}

/// Waits until `n` jobs of `task` made at or after `since` (Unix seconds) have succeeded,
/// failing with `what` after `within`.
async fn successes_since(s: &mut Stack, task: &str, since: i64, n: usize, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    loop {
        let jobs = jobs_of(s, task).await;
        let made = |j: &&Job| j.create_time.as_ref().is_some_and(|t| t.seconds >= since);
        if jobs.iter().filter(made).filter(|j| j.state() == JobState::Succeeded).count() >= n {
            return;
        }
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopping_and_starting_loses_nothing_and_every_service_comes_back() {
    let cluster =
        tokio::task::spawn_blocking(cairn_testkit::Cluster::start).await.unwrap().expect("a cluster");
    let mut s =
        stack_with(Options { database_url: Some(cluster.url("postgres")), ..Default::default() }).await;
    s.worker("w1", "");
    let repo = often(&mut s, "every-2s", "*:*:0/2", 20, 7).await;
    // A backup that is running while the database is away, and finishes after.
    slow_backup(&mut s, 12).await;
    // Firing and backing up before the outage.
    successes_since(&mut s, "often", 0, 2, Duration::from_secs(60), "the schedule never fired twice").await;
    let slow = s.run("slow").await;
    s.job_until(&slow.name, Duration::from_secs(60), "the slow backup running", |j| {
        j.state() == JobState::Running && j.progress.as_ref().is_some_and(|p| p.bytes_done > 0)
    })
    .await;

    // Postgres goes away for 8 seconds: both servers say so on their health service.
    let down = Instant::now();
    cluster.pause().expect("stop Postgres");
    until_health(&s.catalog_url, false, down, Duration::from_secs(15)).await;
    until_health(&s.scheduler_url, false, down, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_secs(8).saturating_sub(down.elapsed())).await;
    cluster.resume().expect("start Postgres again");
    let (back, resumed) = (chrono::Utc::now().timestamp(), Instant::now());
    // Every service reconnects by itself within 10 s.
    let catalog_back = until_health(&s.catalog_url, true, resumed, Duration::from_secs(10)).await;
    let scheduler_back = until_health(&s.scheduler_url, true, resumed, Duration::from_secs(10)).await;
    eprintln!("catalog SERVING {catalog_back:?} and scheduler {scheduler_back:?} after Postgres came back");

    // The running backup ends once, successfully; firing goes on and the worker takes it.
    let slow = s.finished(&slow.name, Duration::from_secs(120)).await;
    assert_eq!(slow.state(), JobState::Succeeded, "{}\n{}", slow.error, log_text(&slow));
    assert_eq!(slow.attempt, 1, "the outage was shorter than the lease: no retry");
    let what = "no scheduled backups succeeded within 15 s of Postgres coming back";
    successes_since(
        &mut s,
        "often",
        back,
        2,
        Duration::from_secs(15).saturating_sub(resumed.elapsed()),
        what,
    )
    .await;
    // Stop firing, let the last jobs end, then count.
    let jobs = settle(&mut s, "every-2s", "often").await;
    accounted(&jobs, 2);
    assert!(jobs.iter().all(|j| j.state() != JobState::Failed), "{jobs:#?}");
    indexed(&mut s, "nas", &jobs).await;
    indexed(&mut s, "nas", std::slice::from_ref(&slow)).await;
    restic_check(&repo);
    drop(s);
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_longer_than_the_lease_moves_the_job_and_the_stale_worker_is_refused() {
    let mut s = stack_with(Options { lease_ttl_secs: 3, ..Default::default() }).await;
    let (_stall, repo) = s.stalling_backup(4_000_000).await;
    // The victim reaches the scheduler only through the proxy.
    let upstream = s.scheduler_url.trim_start_matches("http://").parse().unwrap();
    let proxy = FaultProxy::start(upstream).await;
    let victim =
        s.worker_with(cairn_worker::Config { scheduler_url: proxy.url(), ..s.worker_config("victim") });
    let job = s.run("dump").await;
    s.job_until(&job.name, Duration::from_secs(60), "the victim mid-backup", |j| {
        j.state() == JobState::Running
            && j.worker == "victim"
            && j.progress.as_ref().is_some_and(|p| p.bytes_done > 0)
    })
    .await;
    proxy.set(Fault::Partition);
    s.worker("rescuer", "");
    let done = s.finished(&job.name, Duration::from_secs(60)).await;
    assert_eq!(done.state(), JobState::Succeeded, "{}\n{}", done.error, log_text(&done));
    assert_eq!((done.attempt, done.worker.as_str()), (2, "rescuer"));
    assert!(log_text(&done).contains("victim stopped heartbeating"), "{}", log_text(&done));
    // The partition heals: the victim's reports for its lost attempt are refused, it gives the
    // attempt up, and the job stays ended once, by the rescuer.
    proxy.set(Fault::None);
    tokio::time::sleep(Duration::from_secs(8)).await;
    let after = s.job(&job.name).await;
    assert_eq!(
        (after.state(), after.attempt, after.worker.as_str()),
        (JobState::Succeeded, 2, "rescuer"),
        "{after:?}"
    );
    assert_eq!(after.snapshot, done.snapshot);
    let snapshots = s.snapshots("nas").await;
    assert_eq!(snapshots.len(), 1, "one snapshot for one job: {snapshots:?}");
    restic_check(&repo);
    victim.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_cut_connections_and_refusals_slow_a_backup_but_it_ends_once() {
    let mut s = stack().await;
    let (_, repo) = s.local_store("nas").await;
    slow_backup(&mut s, 10).await;
    let upstream = s.scheduler_url.trim_start_matches("http://").parse().unwrap();
    let proxy = FaultProxy::start(upstream).await;
    s.worker_with(cairn_worker::Config { scheduler_url: proxy.url(), ..s.worker_config("w1") });
    // 500 ms each way on every byte, for the whole job.
    proxy.set(Fault::Latency(Duration::from_millis(500)));
    let job = s.run("slow").await;
    // The worker has its lease and reports progress through the slow link.
    s.job_until(&job.name, Duration::from_secs(60), "progress through the slow link", |j| {
        j.state() == JobState::Running && j.progress.as_ref().is_some_and(|p| p.bytes_done > 0)
    })
    .await;
    // Cut every connection, refuse new ones for 3 s (shorter than the lease), then let them in.
    proxy.reset_all();
    proxy.set(Fault::Refuse);
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.set(Fault::Latency(Duration::from_millis(500)));
    let done = s.finished(&job.name, Duration::from_secs(120)).await;
    assert_eq!(done.state(), JobState::Succeeded, "{}\n{}", done.error, log_text(&done));
    assert_eq!(done.attempt, 1, "the worker came back within its lease: {}", log_text(&done));
    assert!(proxy.connections() >= 2, "the worker reconnected through the proxy");
    let snapshots = s.snapshots("nas").await;
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    restic_check(&repo);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_away_for_a_minute_delays_firing_visibly_and_drops_nothing() {
    // The scheduler reaches the catalog (plans, authentication) through the proxy only.
    let mut s = stack_with(Options { catalog_proxy: true, ..Default::default() }).await;
    let proxy = s.catalog_proxy.take().expect("the stack's catalog proxy");
    s.worker("w1", "");
    let repo = often(&mut s, "every-5s", "*:*:0/5", 10, 3).await;
    successes_since(&mut s, "often", 0, 2, Duration::from_secs(60), "the schedule never fired twice").await;
    proxy.set(Fault::Refuse);
    proxy.reset_all();
    let away = Instant::now();
    // While it is away the scheduler waits, visibly: no job is made from a plan it cannot
    // read, the schedule's next run stays overdue, and the API says why (it cannot
    // authenticate callers without the catalog once its 10-s cache has lapsed). Checked in
    // the database, since no caller can be authenticated.
    let db = sqlx::PgPool::connect(&s.db_url).await.unwrap();
    let count = || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM scheduler.jobs").fetch_one(&db).await.unwrap();
        n
    };
    let before = count().await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    let refused = s.jobs.list_jobs(ListJobsRequest { parent: DEFAULT.into(), ..Default::default() }).await;
    let refused = refused.expect_err("no caller is authenticated without the catalog");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("catalog"), "{refused:?}");
    let overdue: bool = sqlx::query_scalar(
        "SELECT next_run_time < now() - interval '10 seconds' FROM scheduler.schedules WHERE display_name = 'every-5s'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert!(overdue, "the schedule's next run is shown overdue");
    tokio::time::sleep(Duration::from_secs(40)).await;
    assert!(count().await <= before + 1, "jobs were made without the catalog");
    proxy.set(Fault::None);
    eprintln!("catalog back after {:?}", away.elapsed());
    // It catches up: new occurrences fire and succeed again.
    let back = chrono::Utc::now().timestamp();
    let what = "firing did not resume after the catalog came back";
    successes_since(&mut s, "often", back, 2, Duration::from_secs(60), what).await;
    let jobs = settle(&mut s, "every-5s", "often").await;
    accounted(&jobs, 5);
    assert!(
        jobs.iter().any(|j| j.missed_occurrences > 0),
        "the outage's occurrences are recorded as missed: {jobs:#?}"
    );
    let failed: Vec<_> = jobs.iter().filter(|j| j.state() == JobState::Failed).collect();
    assert!(failed.iter().all(|j| !j.error.is_empty()), "a job failed without saying why: {failed:#?}");
    indexed(&mut s, "nas", &jobs).await;
    restic_check(&repo);
}

/// Waits until a scheduler connection is blocked on a lock in a statement starting with
/// `statement` (the test holds the lock: the scheduler is inside that transaction).
async fn until_blocked(db: &sqlx::PgPool, statement: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'cairn-scheduler' \
             AND wait_event_type = 'Lock' AND ltrim(query) ILIKE $1",
        )
        .bind(format!("{statement}%"))
        .fetch_one(db)
        .await
        .unwrap();
        if n > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "no scheduler statement {statement}… waited on the lock");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Holds `LOCK TABLE <table> IN SHARE MODE` (reads go on, writes wait) until committed.
async fn hold_lock(db: &sqlx::PgPool, table: &'static str) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut tx = db.begin().await.unwrap();
    let sql = format!("LOCK TABLE scheduler.{table} IN SHARE MODE");
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *tx).await.unwrap();
    tx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_killed_inside_a_firing_and_inside_a_complete_job_loses_nothing() {
    let mut s = stack_with(Options { scheduler_process: true, ..Default::default() }).await;
    let db = sqlx::PgPool::connect(&s.db_url).await.unwrap();
    s.worker("w1", "");
    let repo = often(&mut s, "every-2s", "*:*:0/2", 10, 5).await;
    successes_since(&mut s, "often", 0, 2, Duration::from_secs(60), "the schedule never fired twice").await;

    // Inside a firing: the schedule row is claimed and advanced, the job's insert waits.
    let lock = hold_lock(&db, "jobs").await;
    until_blocked(&db, "INSERT INTO jobs").await;
    s.kill_scheduler();
    lock.commit().await.unwrap();
    s.start_scheduler().await;

    // Inside a CompleteJob: the job row is locked, the store's snapshot index update waits.
    let lock = hold_lock(&db, "snapshots").await;
    until_blocked(&db, "DELETE FROM snapshots").await;
    s.kill_scheduler();
    lock.commit().await.unwrap();
    s.start_scheduler().await;

    // Firing goes on after each restart.
    let back = chrono::Utc::now().timestamp();
    let what = "no scheduled backups succeeded after the restarts";
    successes_since(&mut s, "often", back, 2, Duration::from_secs(30), what).await;
    let jobs = settle(&mut s, "every-2s", "often").await;
    accounted(&jobs, 2);
    // The worker retried the completion the killed scheduler never committed: the job ended
    // in its first attempt, with its snapshot indexed once.
    for j in &jobs {
        assert!(j.state() != JobState::Failed, "{j:#?}");
        assert_eq!(j.attempt.max(1), 1, "a job ran twice: {j:#?}\n{}", log_text(j));
    }
    indexed(&mut s, "nas", &jobs).await;
    let snapshots = s.snapshots("nas").await;
    let succeeded = jobs.iter().filter(|j| j.state() == JobState::Succeeded).count();
    assert_eq!(snapshots.len(), succeeded, "one index entry per successful backup");
    restic_check(&repo);
}

/// A tmpfs of `size` mounted at `at`, unmounted when dropped; None (saying why) when this
/// machine cannot mount one and CI did not ask for it.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .expect("run mount");
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(std::env::var_os("CAIRN_CI").is_none(), "CI must be able to mount a tmpfs: {why}");
            eprintln!("SKIP out-of-space case: cannot mount a tmpfs here: {why}");
            return None;
        }
        Some(SmallDisk(at.to_owned()))
    }

    fn resize(&self, size: &str) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_runs_out_of_space_fails_the_backup_clearly_and_stays_consistent() {
    let mut s = stack().await;
    let Some(disk) = SmallDisk::mount(&s.path("small-disk"), "16m") else { return };
    let repo = disk.0.join("repo");
    s.connector(cairn_api::v1::Connector {
        display_name: "small".into(),
        config: Some(cairn_api::v1::connector::Config::LocalStore(cairn_api::v1::LocalStore {
            path: repo.display().to_string(),
        })),
        repository_password: PASSWORD.into(),
        create_if_missing: true,
        ..Default::default()
    })
    .await;
    s.worker("w1", "");
    let src = s.path("data");
    generate_tree(&src, 10, 9);
    s.path_source("data", &src).await;
    // 40 MB that does not compress, on a 16 MB disk.
    let big = s.path("big");
    std::fs::create_dir_all(&big).unwrap();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..40u32 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(big.join("noise.bin"), noise).unwrap();
    s.path_source("big", &big).await;
    for (name, source) in [("small", "data"), ("big", "big")] {
        s.task(Task {
            display_name: name.into(),
            r#type: TaskType::Backup as i32,
            source: source.into(),
            store: "small".into(),
            max_attempts: 1,
            ..Default::default()
        })
        .await;
    }
    let first = s.run_ok("small").await;
    let job = s.run("big").await;
    let failed = s.finished(&job.name, Duration::from_secs(120)).await;
    assert_eq!(failed.state(), JobState::Failed, "{failed:#?}");
    assert!(
        failed.error.to_lowercase().contains("no space left on device"),
        "the error says the store is full: {}",
        failed.error
    );
    // The repository is consistent and keeps what it had.
    restic_check(&repo);
    let ids: Vec<String> = s.snapshots("small").await.into_iter().map(|s| s.id).collect();
    assert_eq!(ids, std::slice::from_ref(&first.snapshot));
    // Given room, the same backup succeeds into the same repository.
    disk.resize("128m");
    let done = s.run_ok("big").await;
    assert_eq!(s.snapshots("small").await.len(), 2, "{done:?}");
    restic_check(&repo);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_whose_clocks_differ_by_five_seconds_fire_each_occurrence_once_and_on_time() {
    let skew: &[&str] = &["env", "FAKETIME_DONT_FAKE_MONOTONIC=1", "faketime", "-f", "+5s"];
    // The wrapper really moves a process's clock.
    let Ok(out) = std::process::Command::new(skew[0]).args(&skew[1..]).args(["date", "+%s"]).output() else {
        panic!("cannot run env")
    };
    let seen: Option<i64> = String::from_utf8_lossy(&out.stdout).trim().parse().ok();
    let Some(seen) = seen.filter(|_| out.status.success()) else {
        assert!(std::env::var_os("CAIRN_CI").is_none(), "CI installs faketime");
        eprintln!("SKIP clock skew case: faketime is not installed");
        return;
    };
    let offset = seen - chrono::Utc::now().timestamp();
    assert!((4..=6).contains(&offset), "faketime moved the clock by {offset} s, not 5");

    let mut s = stack_with(Options { scheduler_process: true, ..Default::default() }).await;
    let ahead = s.scheduler_replica(skew).await;
    s.worker("w1", "");
    s.worker_with(cairn_worker::Config { scheduler_url: ahead, ..s.worker_config("w2") });
    let repo = often(&mut s, "every-2s", "*:*:0/2", 5, 2).await;
    // When each job was first seen, by this machine's (true) clock.
    let mut first_seen: BTreeMap<String, f64> = BTreeMap::new();
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
        for j in jobs_of(&mut s, "often").await {
            first_seen.entry(j.name).or_insert(now);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let jobs = settle(&mut s, "every-2s", "often").await;
    accounted(&jobs, 2);
    assert!(jobs.len() >= 8, "20 s of a 2-s schedule: {}", jobs.len());
    // No replica fired early: each job appeared at or after its time (by the true clock).
    for j in &jobs {
        let Some(seen) = first_seen.get(&j.name) else { continue };
        let due = j.scheduled_time.as_ref().unwrap();
        let due = due.seconds as f64 + f64::from(due.nanos) / 1e9;
        assert!(*seen >= due - 0.5, "{} appeared {:.1} s before its time", j.name, due - seen);
    }
    let by_worker = |w: &str| jobs.iter().filter(|j| j.worker == w).count();
    eprintln!("jobs: {} (w1 {}, w2 via the skewed replica {})", jobs.len(), by_worker("w1"), by_worker("w2"));
    indexed(&mut s, "nas", &jobs).await;
    restic_check(&repo);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_backup_and_mid_prune_leaves_a_consistent_repository() {
    let Some(s3) = cairn_testkit::servers::Server::s3().await else {
        assert!(std::env::var_os("CAIRN_CI").is_none(), "CI installs moto_server");
        eprintln!("SKIP mid-prune case: moto_server is not installed");
        return;
    };
    let put = cairn_testkit::http_request("PUT", &format!("{}/faults", s3.url())).await;
    assert!(put.as_ref().is_some_and(|(status, _)| *status == 200), "could not create the bucket: {put:?}");
    // Workers reach the store through the proxy, slowed down so a prune takes long enough to
    // be killed in the middle.
    let upstream = s3.url().trim_start_matches("http://").parse().unwrap();
    let proxy = FaultProxy::start(upstream).await;
    let mut s = stack_with(Options { lease_ttl_secs: 6, ..Default::default() }).await;
    let bucket = s.s3_store("bucket", &proxy.url(), "faults", "repo").await;
    // Room for several jobs at once: what holds a backup back is the prune's exclusivity.
    s.catalog
        .update_connector(cairn_api::v1::UpdateConnectorRequest {
            connector: Some(cairn_api::v1::Connector { max_concurrent_jobs: 4, ..bucket }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["max_concurrent_jobs".into()] }),
            ..Default::default()
        })
        .await
        .unwrap();
    let src = s.path("data");
    s.path_source("data", &src).await;
    s.task(Task {
        display_name: "keep1".into(),
        r#type: TaskType::Backup as i32,
        source: "data".into(),
        store: "bucket".into(),
        options: Some(cairn_api::v1::task::Options::Backup(cairn_api::v1::BackupOptions {
            retention: Some(cairn_api::v1::RetentionPolicy { keep_last: 1, ..Default::default() }),
            ..Default::default()
        })),
        ..Default::default()
    })
    .await;
    s.task(Task {
        display_name: "prune".into(),
        r#type: TaskType::Prune as i32,
        store: "bucket".into(),
        options: Some(cairn_api::v1::task::Options::Prune(cairn_api::v1::PruneOptions {
            max_unused_percent: 0.0,
        })),
        initial_backoff: Some(prost_types::Duration { seconds: 1, nanos: 0 }),
        ..Default::default()
    })
    .await;
    let victim = s.worker_process("victim");
    // Three generations of different data: the first two are forgotten, their packs unused.
    for seed in [1, 2] {
        let _ = std::fs::remove_dir_all(&src);
        generate_tree(&src, 40, seed);
        s.run_ok("keep1").await;
    }
    // Killed mid-backup: the next attempt (another worker) finishes it.
    let _ = std::fs::remove_dir_all(&src);
    generate_tree(&src, 40, 3);
    proxy.set(Fault::Latency(Duration::from_millis(150)));
    let backup = s.run("keep1").await;
    s.job_until(&backup.name, Duration::from_secs(60), "the victim mid-backup", |j| {
        j.state() == JobState::Running
            && j.worker == "victim"
            && j.progress.as_ref().is_some_and(|p| p.bytes_done > 0)
    })
    .await;
    kill9(victim);
    let rescuer = s.worker_process("rescuer");
    let backup = s.finished(&backup.name, Duration::from_secs(120)).await;
    assert_eq!(backup.state(), JobState::Succeeded, "{}\n{}", backup.error, log_text(&backup));
    assert_eq!((backup.attempt, backup.worker.as_str()), (2, "rescuer"));
    kill9(rescuer);

    // Killed mid-prune.
    proxy.set(Fault::Latency(Duration::from_millis(400)));
    let victim = s.worker_process("victim2");
    let prune = s.run("prune").await;
    let running = s
        .job_until(&prune.name, Duration::from_secs(60), "the prune running", |j| {
            j.state() == JobState::Running && j.worker == "victim2"
        })
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(s.job(&prune.name).await.state(), JobState::Running, "the prune ended too soon to be killed");
    kill9(victim);
    let killed = chrono::Utc::now();
    // The prune holds the store alone until its lease expires: a backup waits.
    s.worker("rescuer2", "");
    std::fs::write(src.join("README"), b"after the prune\n").unwrap();
    let after = s.run("keep1").await;
    let prune = s.finished(&prune.name, Duration::from_secs(180)).await;
    assert_eq!(prune.state(), JobState::Succeeded, "{}\n{}", prune.error, log_text(&prune));
    assert_eq!((prune.attempt, prune.worker.as_str()), (2, "rescuer2"), "{running:?}");
    assert!(log_text(&prune).contains("victim2 stopped heartbeating"), "{}", log_text(&prune));
    let after = s.finished(&after.name, Duration::from_secs(120)).await;
    assert_eq!(after.state(), JobState::Succeeded, "{}\n{}", after.error, log_text(&after));
    let started = after.start_time.as_ref().unwrap();
    let started = chrono::DateTime::from_timestamp(started.seconds, started.nanos as u32).unwrap();
    assert!(
        started >= killed + chrono::Duration::seconds(2),
        "the backup started {} ms after the prune's worker died, while its lease still held the store",
        (started - killed).num_milliseconds()
    );
    proxy.set(Fault::None);
    // The stock restic reads the whole repository.
    let Some(restic) = restic() else { return };
    let out = std::process::Command::new(restic)
        .args(["-r", &format!("s3:{}/faults/repo", s3.url()), "--no-cache", "check", "--read-data"])
        .env("RESTIC_PASSWORD", PASSWORD)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "restic check failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn kill9(pid: u32) {
    let ok = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    assert!(ok.success(), "kill -9 {pid}");
}
