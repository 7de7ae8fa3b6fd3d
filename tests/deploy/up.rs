//! docker-compose.yml run for real: a Docker engine (started here when none runs, stopped
//! again), base images built locally (no registry is reachable: `debian:bookworm-slim` from
//! debootstrap, a stand-in for `postgres:15-bookworm` from images/postgres.Dockerfile, each
//! only when missing), Cairn's image from deploy/docker/Dockerfile with this build's binaries
//! (`BINARIES=prebuilt`), and the compose file brought up as a user does: `.env` filled in
//! from deploy/compose.env.example, host directories mounted into the workers by an override
//! file. Then, from the host, with the `cairn` CLI: the README's first backup and restore, the
//! stock `restic` reading the repository, a worker container killed mid-backup, `restart`,
//! and `down` + `up` with the volumes kept.
//!
//! Without Docker (or root to start it) it skips, unless `CAIRN_CI` is set: then it fails.

use std::{
    collections::BTreeMap,
    io::{Read as _, Write as _},
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value as Json;

use crate::support::*;

/// The compose project: container, network and volume names start with it.
const PROJECT: &str = "cairn-compose-test";
/// The image the test builds (CAIRN_IMAGE).
const IMAGE: &str = "cairn:compose-test";
const CATALOG: &str = "http://127.0.0.1:50051";
const SCHEDULER: &str = "http://127.0.0.1:50052";

/// A line in the test's output even when the harness captures it (CI shows the timings).
fn say(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "compose: {line}");
}

/// Runs `cmd` to the end within `limit`, with its output.
fn run_for(cmd: &mut Command, limit: Duration) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    // Drain both pipes on threads so a chatty command cannot block on a full pipe.
    let drain = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} took longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Output { status, stdout: out.join().unwrap(), stderr: err.join().unwrap() }
}

/// Runs `cmd`, which must succeed; its standard output.
fn ok(cmd: &mut Command, limit: Duration) -> String {
    let what = format!("{cmd:?}");
    let out = run_for(cmd, limit);
    assert!(
        out.status.success(),
        "{what}: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// The Docker engine: the one running, or one started here (stopped at drop).
struct Engine {
    docker: PathBuf,
    started: Option<Child>,
}

impl Engine {
    fn docker(&self) -> Command {
        let mut c = Command::new(&self.docker);
        c.env("DOCKER_BUILDKIT", "1");
        c
    }

    fn answers(docker: &Path) -> bool {
        Command::new(docker)
            .arg("info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Err: why there is no engine.
    fn get(scratch: &Path) -> Result<Engine, String> {
        // Debian's client matches Debian's engine (and builds with its built-in BuildKit); a
        // newer client elsewhere on PATH may want a buildx plugin the machine lacks.
        let docker = [PathBuf::from("/usr/bin/docker")]
            .into_iter()
            .find(|p| p.is_file())
            .or_else(|| on_path("docker"))
            .ok_or("no docker client (Debian: apt install docker.io docker-compose)")?;
        on_path("docker-compose").ok_or("no docker-compose (Debian: apt install docker-compose)")?;
        if Self::answers(&docker) {
            return Ok(Engine { docker, started: None });
        }
        let dockerd = on_path("dockerd").ok_or("no Docker engine runs and there is no dockerd")?;
        if !is_root() {
            return Err("no Docker engine runs and only root can start one".into());
        }
        let log = std::fs::File::create(scratch.join("dockerd.log")).unwrap();
        let child = Command::new(dockerd)
            .args(["--storage-driver=vfs", "--iptables=false", "--ip-masq=false"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("dockerd: {e}"))?;
        let engine = Engine { docker, started: Some(child) };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !Self::answers(&engine.docker) {
            assert!(Instant::now() < deadline, "the dockerd started here did not answer within a minute");
            std::thread::sleep(Duration::from_millis(500));
        }
        say("started a Docker engine (stopped at the end)");
        Ok(engine)
    }

    fn has_image(&self, image: &str) -> bool {
        self.docker()
            .args(["image", "inspect", image])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// `debian:bookworm-slim` from a debootstrapped root, when the machine has none.
    fn base_image(&self, scratch: &Path) {
        if self.has_image("debian:bookworm-slim") {
            return;
        }
        let rootfs = scratch.join("rootfs");
        ok(
            Command::new("debootstrap")
                .args(["--variant=minbase", "bookworm"])
                .arg(&rootfs)
                .arg("http://deb.debian.org/debian"),
            Duration::from_secs(900),
        );
        let tar = scratch.join("rootfs.tar");
        ok(
            Command::new("tar").arg("-C").arg(&rootfs).arg("-cf").arg(&tar).arg("."),
            Duration::from_secs(300),
        );
        ok(self.docker().arg("import").arg(&tar).arg("debian:bookworm-slim"), Duration::from_secs(600));
        let _ = std::fs::remove_file(&tar);
        let _ = std::fs::remove_dir_all(&rootfs);
    }

    /// Drops the build cache no image uses. On the vfs driver each cached layer is a whole
    /// copy: left behind, one run's 1.5 GB piled up run after run until a CI machine's disk
    /// was full. Done before building too, for a run that was killed before its clean-up.
    fn prune_build_cache(&self) {
        let _ = self.docker().args(["builder", "prune", "-f"]).output();
    }

    /// Builds `tag` with the host's network (package downloads; the engine gives containers
    /// none of their own).
    fn build(&self, dockerfile: &Path, context: &Path, args: &[&str], tag: &str) {
        ok(
            self.docker()
                .args(["build", "--network", "host", "-q", "-f"])
                .arg(dockerfile)
                .args(args.iter().flat_map(|a| ["--build-arg", a]))
                .args(["-t", tag])
                .arg(context),
            Duration::from_secs(900),
        );
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(mut child) = self.started.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(200));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// This build's binaries (target/<profile>), the test binary being target/<profile>/deps/….
fn built_binaries() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).expect("target/<profile>/deps").to_path_buf()
}

/// 32 random bytes, hex or base64, as the env example tells users to make them.
fn openssl_rand(format: &str) -> String {
    ok(Command::new("openssl").args(["rand", format, "32"]), Duration::from_secs(10)).trim().to_owned()
}

/// The compose project on the host, torn down (volumes too) at drop.
struct Stack<'e> {
    engine: &'e Engine,
    dir: PathBuf,
    token: String,
}

impl Stack<'_> {
    fn compose(&self) -> Command {
        let mut c = Command::new("docker-compose");
        c.arg("-p").arg(PROJECT);
        c.arg("--env-file").arg(self.dir.join("env"));
        c.arg("-f").arg(root().join("docker-compose.yml"));
        c.arg("-f").arg(self.dir.join("override.yml"));
        c.env("DOCKER_HOST", "unix:///var/run/docker.sock");
        c
    }

    fn compose_ok(&self, args: &[&str]) {
        ok(self.compose().args(args), Duration::from_secs(600));
    }

    fn cairn(&self, args: &[&str]) -> Command {
        let mut c = Command::new(built_binaries().join("cairn"));
        c.args(args)
            .env("CAIRN_CATALOG_URL", CATALOG)
            .env("CAIRN_SCHEDULER_URL", SCHEDULER)
            .env("CAIRN_TOKEN", &self.token)
            .env_remove("CAIRN_PROJECT");
        c
    }

    fn cairn_ok(&self, args: &[&str]) -> String {
        ok(&mut self.cairn(args), Duration::from_secs(300))
    }

    fn json(&self, args: &[&str]) -> Json {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        serde_json::from_str(&self.cairn_ok(&all)).expect("the CLI prints JSON")
    }

    /// Waits until the catalog, the scheduler and the console answer on the published ports.
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(240);
        for url in [CATALOG, SCHEDULER] {
            while !run_for(&mut self.cairn(&["health", url]), Duration::from_secs(30)).status.success() {
                assert!(Instant::now() < deadline, "{url} did not become healthy");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        while http_get("127.0.0.1:8080", "/health").is_none_or(|r| !r.contains(" 200 ")) {
            assert!(Instant::now() < deadline, "the console did not answer on :8080");
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    fn volume_path(&self, volume: &str) -> PathBuf {
        let name = format!("{PROJECT}_{volume}");
        PathBuf::from(
            ok(
                self.engine.docker().args(["volume", "inspect", "-f", "{{.Mountpoint}}", &name]),
                Duration::from_secs(30),
            )
            .trim(),
        )
    }

    fn job(&self, name: &str) -> Json {
        self.json(&["job", "show", name])
    }

    /// Waits for `name` to be final; the job.
    fn finished(&self, name: &str, limit: Duration) -> Json {
        let deadline = Instant::now() + limit;
        loop {
            let j = self.job(name);
            let state = j["state"].as_str().unwrap_or_default().to_owned();
            if ["SUCCEEDED", "FAILED", "CANCELLED", "SKIPPED"].iter().any(|s| state.ends_with(s)) {
                return j;
            }
            assert!(Instant::now() < deadline, "job {name} still {state} after {limit:?}: {j}");
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// What must survive a restart: every resource by name, the job history, and the stored
    /// repository password (a new backup opens the repository with it).
    fn everything_kept(&self, jobs_before: usize) {
        let connectors = self.cairn_ok(&["connector", "list"]);
        for c in ["data", "nas", "restore-area", "slow"] {
            assert!(connectors.contains(c), "connector {c} is gone:\n{connectors}");
        }
        let tasks = self.cairn_ok(&["task", "list"]);
        assert!(tasks.contains("data-nightly") && tasks.contains("data-restore"), "{tasks}");
        let schedules = self.cairn_ok(&["schedule", "list"]);
        assert!(schedules.contains("nightly"), "the schedule is gone:\n{schedules}");
        let jobs = self.json(&["job", "list", "--limit", "100"]);
        let jobs = jobs["jobs"].as_array().map_or(0, Vec::len);
        assert!(jobs >= jobs_before, "{jobs} jobs after the restart, {jobs_before} before");
        let out = run_for(&mut self.cairn(&["run", "data-nightly", "--wait"]), Duration::from_secs(300));
        assert!(
            out.status.success(),
            "a backup after the restart: {}",
            String::from_utf8_lossy(&[out.stdout, out.stderr].concat())
        );
    }

    fn job_count(&self) -> usize {
        self.json(&["job", "list", "--limit", "100"])["jobs"].as_array().map_or(0, Vec::len)
    }
}

impl Drop for Stack<'_> {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Ok(out) = self.compose().args(["logs", "--no-color", "--tail", "60"]).output()
        {
            say(&String::from_utf8_lossy(&out.stdout));
        }
        let _ = run_for(
            self.compose().args(["down", "-v", "--remove-orphans", "-t", "5"]),
            Duration::from_secs(300),
        );
        let _ = self.engine.docker().args(["rmi", IMAGE]).output();
        self.engine.prune_build_cache();
        if let Ok(out) = self.engine.docker().args(["system", "df"]).output() {
            say(&format!("the engine's disk use after the test:\n{}", String::from_utf8_lossy(&out.stdout)));
        }
    }
}

/// One HTTP/1.0 GET on loopback: the response, or None when nothing answers.
fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// Every regular file under `root`, by relative path, with its contents.
fn tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(p.strip_prefix(root).unwrap().to_path_buf(), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// A small tree of files with varied sizes and contents.
fn make_source(dir: &Path) {
    for d in 0..4 {
        let sub = dir.join(format!("dir-{d}"));
        std::fs::create_dir_all(&sub).unwrap();
        for f in 0..25 {
            let n = (d * 25 + f) as u64;
            let body: Vec<u8> = (0..(n * 997 % 70_000)).map(|i| ((i * 31 + n * 7) % 251) as u8).collect();
            std::fs::write(sub.join(format!("file-{f}.bin")), body).unwrap();
        }
    }
    std::fs::write(dir.join("README"), "the compose test's source\n").unwrap();
}

#[test]
fn docker_compose_runs_backs_up_restores_and_keeps_its_state() {
    let t0 = Instant::now();
    let scratch = tempfile::tempdir().unwrap();
    // The containers' user (10001) reads the source and writes the restores through the mounts.
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let engine = match Engine::get(scratch.path()) {
        Ok(e) => e,
        Err(why) if std::env::var_os("CAIRN_CI").is_none() => {
            eprintln!("SKIP: {why}");
            return;
        }
        Err(why) => panic!("CAIRN_CI is set and {why}"),
    };

    // Images: the two public ones stood in for when missing, then Cairn's from this build.
    let phase = Instant::now();
    engine.base_image(scratch.path());
    if !engine.has_image("postgres:15-bookworm") {
        let images = root().join("tests/deploy/images");
        engine.build(&images.join("postgres.Dockerfile"), &images, &[], "postgres:15-bookworm");
    }
    let context = scratch.path().join("context");
    std::fs::create_dir_all(context.join("bin")).unwrap();
    for bin in image().bins {
        let built = built_binaries().join(&bin);
        assert!(
            built.is_file(),
            "{} is missing: build the binaries first (cargo build --bins)",
            built.display()
        );
        // Without debug info: the image is copied once per container on the vfs driver.
        ok(
            Command::new("objcopy").arg("--strip-debug").arg(&built).arg(context.join("bin").join(&bin)),
            Duration::from_secs(120),
        );
    }
    engine.prune_build_cache();
    engine.build(&root().join("deploy/docker/Dockerfile"), &context, &["BINARIES=prebuilt"], IMAGE);
    say(&format!("images ready in {:.0?}", phase.elapsed()));

    // `.env` as the quick start makes it, plus a known admin token for the CLI.
    let dir = scratch.path().to_path_buf();
    let token = format!("pat-{}", openssl_rand("-hex"));
    let mut env = String::new();
    for line in read("deploy/compose.env.example").lines() {
        let value = match line.split_once('=').map(|(k, _)| k) {
            Some("POSTGRES_PASSWORD" | "CAIRN_CLUSTER_TOKEN" | "CAIRN_WORKER_TOKEN") => {
                Some(openssl_rand("-hex"))
            }
            Some("CAIRN_SECRET_KEY" | "CAIRN_SESSION_KEY") => Some(openssl_rand("-base64")),
            Some("CAIRN_BOOTSTRAP_TOKEN") => Some(token.clone()),
            Some("CAIRN_IMAGE") => Some(IMAGE.to_owned()),
            _ => None,
        };
        match value {
            Some(v) => env.push_str(&format!("{}={v}\n", line.split_once('=').unwrap().0)),
            None => env.push_str(&format!("{line}\n")),
        }
    }
    std::fs::write(dir.join("env"), env).unwrap();

    // Host directories in the workers, the way the compose file's comment says to.
    let src = dir.join("data");
    let restores = dir.join("restores");
    make_source(&src);
    std::fs::create_dir_all(&restores).unwrap();
    ok(Command::new("chown").args(["10001:10001"]).arg(&restores), Duration::from_secs(10));
    let mounts =
        format!("      - {}:/srv/data:ro\n      - {}:/srv/restore\n", src.display(), restores.display());
    std::fs::write(
        dir.join("override.yml"),
        format!("services:\n  worker-a:\n    volumes:\n{mounts}  worker-b:\n    volumes:\n{mounts}"),
    )
    .unwrap();

    let stack = Stack { engine: &engine, dir: dir.clone(), token };
    let phase = Instant::now();
    stack.compose_ok(&["up", "-d", "--no-build"]);
    stack.wait_ready();
    say(&format!("up and healthy in {:.0?}", phase.elapsed()));

    // The README's first backup.
    let phase = Instant::now();
    let pass = dir.join("repo.pass");
    std::fs::write(&pass, "a long repository password\n").unwrap();
    let pass_arg = pass.display().to_string();
    stack.cairn_ok(&["connector", "create", "local-path", "data", "--path", "/srv/data"]);
    stack.cairn_ok(&[
        "connector",
        "create",
        "local-store",
        "nas",
        "--path",
        "/var/lib/cairn/repos/nas",
        "--password-file",
        &pass_arg,
        "--create-if-missing",
    ]);
    stack.cairn_ok(&["connector", "create", "destination", "restore-area", "--path", "/srv/restore"]);
    stack.cairn_ok(&[
        "task",
        "create",
        "backup",
        "data-nightly",
        "--source",
        "data",
        "--store",
        "nas",
        "--keep-daily",
        "7",
    ]);
    stack.cairn_ok(&["schedule", "add", "nightly", "--task", "data-nightly", "--calendar", "Mon..Fri 18:00"]);
    stack.cairn_ok(&["run", "data-nightly", "--wait"]);
    stack.cairn_ok(&[
        "task",
        "create",
        "restore",
        "data-restore",
        "--store",
        "nas",
        "--destination",
        "restore-area",
    ]);
    stack.cairn_ok(&["run", "data-restore", "--wait"]);
    let original = tree(&src);
    assert_eq!(tree(&restores.join("srv/data")), original, "the restore differs from the source");

    // The stock restic reads the repository in the `repos` volume.
    let repo = stack.volume_path("repos").join("nas");
    let restic = |args: &[&str]| {
        ok(
            Command::new("restic")
                .arg("-r")
                .arg(&repo)
                .arg("--password-file")
                .arg(&pass)
                .args(["--no-lock", "--no-cache"])
                .args(args),
            Duration::from_secs(120),
        )
    };
    let snapshots: Json = serde_json::from_str(&restic(&["snapshots", "--json"])).unwrap();
    assert_eq!(snapshots.as_array().map(Vec::len), Some(1), "{snapshots}");
    let by_restic = dir.join("by-restic");
    restic(&["restore", "latest", "--target", &by_restic.display().to_string()]);
    assert_eq!(tree(&by_restic.join("srv/data")), original, "restic restores something else");
    say(&format!("first backup, restore and restic in {:.0?}", phase.elapsed()));

    // A worker container killed mid-backup: the job finishes on the other worker. The first
    // attempt streams 8 MB and stalls; later attempts (the marker exists) finish at once.
    let phase = Instant::now();
    let marker = "/var/lib/cairn/repos/.slow-started";
    let script = format!(
        "if [ -e {marker} ]; then head -c 2000000 /dev/zero; else touch {marker}; head -c 8000000 /dev/urandom; exec sleep 600; fi"
    );
    stack.cairn_ok(&[
        "connector",
        "create",
        "command",
        "slow",
        "--file-name",
        "slow.bin",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    stack.cairn_ok(&["task", "create", "backup", "slow", "--source", "slow", "--store", "nas"]);
    let job = stack.json(&["run", "slow"]);
    let name = job["name"].as_str().expect("the job's name").to_owned();
    let deadline = Instant::now() + Duration::from_secs(120);
    let victim = loop {
        let j = stack.job(&name);
        let bytes = j["progress"]["bytesDone"].as_str().and_then(|b| b.parse::<u64>().ok()).unwrap_or(0);
        if j["state"].as_str().is_some_and(|s| s.ends_with("RUNNING")) && bytes > 0 {
            break j["worker"].as_str().unwrap_or_default().to_owned();
        }
        assert!(Instant::now() < deadline, "the slow backup never ran: {j}");
        std::thread::sleep(Duration::from_millis(500));
    };
    // Worker ids are `<host name>-<pid>`; the compose file names the hosts after the services.
    let service = ["worker-a", "worker-b"]
        .into_iter()
        .find(|s| victim.starts_with(&format!("{s}-")))
        .unwrap_or_else(|| panic!("job held by {victim:?}, not a compose worker"));
    stack.compose_ok(&["kill", service]);
    let done = stack.finished(&name, Duration::from_secs(240));
    assert!(done["state"].as_str().is_some_and(|s| s.ends_with("SUCCEEDED")), "{done}");
    let rescuer = done["worker"].as_str().unwrap_or_default();
    assert!(!rescuer.starts_with(&format!("{service}-")), "the job ended on the killed {service}: {done}");
    assert!(done["attempt"].as_i64() >= Some(2), "{done}");
    stack.compose_ok(&["up", "-d", "--no-build"]);
    say(&format!("worker killed mid-backup, job finished on the other in {:.0?}", phase.elapsed()));

    // `restart`, then `down` + `up` with the volumes kept: everything is still there.
    let phase = Instant::now();
    let before = stack.job_count();
    stack.compose_ok(&["restart"]);
    stack.wait_ready();
    stack.everything_kept(before);
    say(&format!("restart kept everything ({:.0?})", phase.elapsed()));
    let phase = Instant::now();
    let before = stack.job_count();
    stack.compose_ok(&["down"]);
    stack.compose_ok(&["up", "-d", "--no-build"]);
    stack.wait_ready();
    stack.everything_kept(before);
    // The backup made after `down` + `up` is in the repository, for restic too.
    let latest = stack.json(&["job", "list", "--task", "data-nightly", "--limit", "1"]);
    let made = latest["jobs"][0]["snapshot"].as_str().unwrap_or_default().to_owned();
    let snapshots: Json = serde_json::from_str(&restic(&["snapshots", "--json"])).unwrap();
    let listed = snapshots
        .as_array()
        .into_iter()
        .flatten()
        .any(|s| s["id"].as_str().is_some_and(|id| id.starts_with(&made)));
    assert!(
        !made.is_empty() && listed,
        "the last backup's snapshot {made:?} is not in the repository: {snapshots}"
    );
    say(&format!("down + up kept everything ({:.0?})", phase.elapsed()));
    drop(stack);
    say(&format!("the compose test took {:.0?}", t0.elapsed()));
}
