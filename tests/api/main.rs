//! The contract as other systems see it: `scripts/api-check` (buf lint, buf breaking against
//! proto/baseline.json) refuses a change that breaks clients, and the example clients under
//! `examples/` (Python over gRPC, TypeScript over gRPC-web) do the first-backup walkthrough
//! against a running stack with an API token.
//!
//! The tools come from `.ci/run` (npm packages, the venv's grpcio); without them these tests say
//! SKIP, or fail when `CAIRN_CI` is set.

#[path = "../journeys/harness.rs"]
mod harness;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use cairn_api::v1::JobState;
use harness::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `false` (after saying SKIP) when `what` is missing outside CI; a failure in CI.
fn available(ok: bool, what: &str) -> bool {
    if !ok {
        assert!(
            std::env::var_os("CAIRN_CI").is_none(),
            "{what} is missing, and CAIRN_CI is set (.ci/run installs it)"
        );
        eprintln!("SKIP: {what} is missing");
    }
    ok
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    eprintln!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

/// A copy of the contract (buf.yaml and proto/) after `edit`, checked by scripts/api-check.
fn api_check_after(edit: impl FnOnce(&Path)) -> Output {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(repo().join("buf.yaml"), dir.path().join("buf.yaml")).unwrap();
    let copy = Command::new("cp").arg("-r").arg(repo().join("proto")).arg(dir.path()).status().unwrap();
    assert!(copy.success());
    edit(&dir.path().join("proto/cairn/v1"));
    run(Command::new(repo().join("scripts/api-check")).arg("--root").arg(dir.path()))
}

fn rewrite(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains(from), "{} has no {from:?}", file.display());
    std::fs::write(file, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn the_api_check_refuses_changes_that_break_clients() {
    if !available(repo().join("node_modules/.bin/buf").exists(), "buf (npm ci at the repository root)") {
        return;
    }
    let same = api_check_after(|_| {});
    assert!(same.status.success(), "the contract as committed passes");
    // An added field breaks nobody.
    let added = api_check_after(|d| {
        rewrite(
            &d.join("schedule.proto"),
            "  string description = 3;",
            "  string description = 3;\n  // A colour for the console.\n  string colour = 99;",
        )
    });
    assert!(added.status.success(), "adding a field is not a break");
    for (what, file, from, to, says) in [
        (
            "a removed field",
            "schedule.proto",
            "  string description = 3;\n",
            "",
            r#"field "3" with name "description""#,
        ),
        (
            "a renumbered field",
            "task.proto",
            "  repeated string labels = 9;",
            "  repeated string labels = 90;",
            r#"field "9" with name "labels""#,
        ),
        ("a changed type", "job.proto", "  int32 attempt = 13;", "  int64 attempt = 13;", r#""attempt""#),
        (
            "a removed RPC",
            "job_service.proto",
            "  rpc CancelJob(CancelJobRequest) returns (Job);\n",
            "",
            "CancelJob",
        ),
    ] {
        let out = api_check_after(|d| rewrite(&d.join(file), from, to));
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{what} passed the check");
        assert!(said.contains(says), "{what}: buf's message names it: {said}");
    }
}

/// The stack with a worker, a directory to back up, and the walkthrough's environment.
async fn walkthrough_stack() -> (Stack, Vec<(&'static str, String)>) {
    let mut s = stack().await;
    s.worker("w1", "");
    let data = s.path("data");
    generate_tree(&data, 20, 7);
    let env = vec![
        ("CAIRN_CATALOG_URL", s.catalog_url.clone()),
        ("CAIRN_SCHEDULER_URL", s.scheduler_url.clone()),
        ("CAIRN_TOKEN", ADMIN.to_owned()),
        ("CAIRN_SOURCE_PATH", data.display().to_string()),
        ("CAIRN_REPOSITORY_PATH", s.path("repo").display().to_string()),
        ("CAIRN_REPOSITORY_PASSWORD", PASSWORD.to_owned()),
    ];
    (s, env)
}

/// What a walkthrough left: one successful backup job and its snapshot, seen from Rust.
async fn check_walkthrough(s: &mut Stack, prefix: &str, out: &Output) {
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the {prefix} walkthrough failed");
    assert!(said.contains("job SUCCEEDED"), "WatchJob followed the job to its end: {said}");
    let snaps = s.snapshots(&format!("{prefix}-repo")).await;
    assert_eq!(snaps.len(), 1);
    assert!(said.contains(&format!("snapshot {}", snaps[0].short_id)), "{said}");
    let jobs = s
        .jobs
        .list_jobs(cairn_api::v1::ListJobsRequest {
            parent: DEFAULT.into(),
            filter: format!(r#"task = "{prefix}-backup""#),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].state(), JobState::Succeeded);
}

/// Python with grpcio: the venv `.ci/run` makes, else python3.
fn python() -> PathBuf {
    let venv = std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/cairn/venv/bin/python"));
    venv.filter(|p| p.exists()).unwrap_or_else(|| "python3".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_does_the_first_backup() {
    let py = python();
    let has_tools = Command::new(&py).args(["-c", "import grpc, grpc_tools, google.api"]).status();
    if !available(
        has_tools.is_ok_and(|s| s.success()),
        "grpcio and grpcio-tools (examples/python/requirements.txt)",
    ) {
        return;
    }
    let dir = repo().join("examples/python");
    let generated = run(Command::new(dir.join("generate.sh")).env("PYTHON", &py));
    assert!(generated.status.success(), "stubs generated");
    let (mut s, env) = walkthrough_stack().await;
    let out = tokio::task::spawn_blocking(move || {
        run(Command::new(&py).arg(dir.join("walkthrough.py")).envs(env).env("CAIRN_NAME_PREFIX", "py"))
    });
    let out = tokio::time::timeout(Duration::from_secs(180), out).await.expect("within 3 minutes").unwrap();
    check_walkthrough(&mut s, "py", &out).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_client_does_the_first_backup_over_grpc_web() {
    let dir = repo().join("examples/typescript");
    let ready = dir.join("node_modules/.bin/tsx").exists() && repo().join("node_modules/.bin/buf").exists();
    if !available(ready, "examples/typescript's packages (npm ci --prefix examples/typescript)") {
        return;
    }
    let generated = run(Command::new("npm").args(["run", "--silent", "generate"]).current_dir(&dir));
    assert!(generated.status.success(), "messages and services generated");
    let (mut s, env) = walkthrough_stack().await;
    let out = tokio::task::spawn_blocking(move || {
        run(Command::new(dir.join("node_modules/.bin/tsx"))
            .arg("walkthrough.ts")
            .current_dir(&dir)
            .envs(env)
            .env("CAIRN_NAME_PREFIX", "ts"))
    });
    let out = tokio::time::timeout(Duration::from_secs(180), out).await.expect("within 3 minutes").unwrap();
    check_walkthrough(&mut s, "ts", &out).await;
}
