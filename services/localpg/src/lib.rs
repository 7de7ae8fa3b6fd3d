//! Throwaway Postgres for the one-process dev stack and for tests.
//!
//! [`Cluster::start`] runs `initdb` + `pg_ctl start` from local binaries (on `PATH` or under
//! `/usr/lib/postgresql/*/bin`) in a temporary directory, on a free port, with `fsync=off`.
//! Postgres refuses to run as root, so as root the binaries run through `runuser -u
//! postgres`. A watchdog process stops the cluster and removes its directory when the owning
//! process exits, even if it is killed, so nothing is left running.
//!
//! [`fresh_database`] gives each test its own database: on the server named by
//! `DATABASE_URL` when set, else on one cluster shared by the whole test process.
//!
//! [`Cluster::open`] keeps a cluster in a given directory instead (the single-node stack):
//! initialised once, durable settings, stopped but never removed.
//!
//! This crate never touches a database it did not create.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
};

use sqlx::{AssertSqlSafe, Connection as _, Executor as _, PgConnection};

/// Why a cluster or database could not be provided.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No Postgres binaries were found.
    #[error("no Postgres binaries found: install PostgreSQL (initdb, pg_ctl) or set DATABASE_URL")]
    NoBinaries,
    /// A command failed.
    #[error("{command} failed: {output}")]
    Command {
        /// What ran.
        command: String,
        /// Its output (tail).
        output: String,
    },
    /// Filesystem trouble.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// SQL trouble.
    #[error("{0}")]
    Sql(#[from] sqlx::Error),
}

/// A running throwaway cluster.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
    /// A kept cluster ([`Cluster::open`]) is stopped, never removed.
    keep: bool,
    /// The server's options (port included), for [`Cluster::resume`].
    opts: String,
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false)
}

/// Finds the directory holding `initdb` and `pg_ctl`, preferring `PATH`, then the highest
/// `/usr/lib/postgresql/<version>/bin`.
pub fn find_binaries() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
                return Some(dir);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, b)| b)
}

fn free_port() -> Result<u16, Error> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Cluster {
    /// Starts a new cluster that lives until [`Cluster::stop`], drop, or the death of this
    /// process (watchdog).
    pub fn start() -> Result<Cluster, Error> {
        Cluster::start_with(&[])
    }

    /// [`Cluster::start`] with extra server settings (`ssl=on`, `ssl_cert_file=...`). Files
    /// the settings name must be readable by the server (the `postgres` user when root).
    pub fn start_with(settings: &[(&str, &str)]) -> Result<Cluster, Error> {
        let bin = find_binaries().ok_or(Error::NoBinaries)?;
        let as_postgres = is_root();
        let dir = tempfile::Builder::new().prefix("cairn-pg-").tempdir()?.keep();
        if as_postgres {
            run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir))?;
        }
        let cluster = Cluster { dir, bin, port: 0, as_postgres, keep: false, opts: String::new() };
        cluster.init(&["--no-sync"])?;
        let throwaway = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off";
        cluster.launch(throwaway, settings)
    }

    /// Opens the cluster kept in `dir` (its `data` directory), initialising it on first use,
    /// with durable settings; it is stopped, never removed, at drop or when this process dies.
    /// As root the server runs as `postgres`, which must be able to reach `dir`.
    pub fn open(dir: &Path) -> Result<Cluster, Error> {
        let bin = find_binaries().ok_or(Error::NoBinaries)?;
        let as_postgres = is_root();
        std::fs::create_dir_all(dir)?;
        if as_postgres {
            run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir))?;
        }
        let cluster =
            Cluster { dir: dir.to_path_buf(), bin, port: 0, as_postgres, keep: true, opts: String::new() };
        if !dir.join("data").join("PG_VERSION").is_file() {
            cluster.init(&[])?;
        }
        // A server left behind by a killed process holds the data directory: stop it first.
        let _ = cluster
            .pg_command("pg_ctl")
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-m", "fast", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        cluster.launch("", &[])
    }

    fn init(&self, extra: &[&str]) -> Result<(), Error> {
        run(self
            .pg_command("initdb")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C"])
            .args(extra))
    }

    /// Starts the server on a free port (retrying a port taken meanwhile).
    fn launch(mut self, options: &str, settings: &[(&str, &str)]) -> Result<Cluster, Error> {
        let data = self.dir.join("data");
        let cluster = &mut self;
        // A throwaway cluster's directory is its own: watched from before the start, so a
        // process dying mid-start leaves nothing behind.
        if !cluster.keep {
            cluster.spawn_watchdog(None)?;
        }
        let mut last = None;
        for _ in 0..5 {
            cluster.port = free_port()?;
            let opts = format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 {options} -c max_connections=500 -c shared_buffers=128MB{}",
                cluster.port,
                cluster.dir.display(),
                settings.iter().map(|(k, v)| format!(" -c {k}={v}")).collect::<String>()
            );
            cluster.opts = opts;
            match cluster.pg_start() {
                Ok(()) => {
                    if cluster.keep {
                        // A kept directory outlives this process, and the next process may start
                        // its own server there before this watchdog wakes: it stops only the
                        // server started here.
                        let pid = std::fs::read_to_string(data.join("postmaster.pid"))?;
                        let pid = pid.lines().next().unwrap_or_default().trim().to_owned();
                        cluster.spawn_watchdog(Some(&pid))?;
                    }
                    return Ok(self);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(Error::NoBinaries))
    }

    fn pg_start(&self) -> Result<(), Error> {
        run(self
            .pg_command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-o", &self.opts, "-l"])
            .arg(self.dir.join("postgres.log"))
            .args(["-w", "-t", "60", "start"]))
    }

    /// Stops the server (fast shutdown: clients are disconnected) and keeps the cluster, for
    /// tests of what happens while the database is away; [`Cluster::resume`] starts it again.
    pub fn pause(&self) -> Result<(), Error> {
        run(self.pg_command("pg_ctl").arg("-D").arg(self.dir.join("data")).args(["-m", "fast", "-w", "stop"]))
    }

    /// Starts a [`Cluster::pause`]d server again, on the same port.
    pub fn resume(&self) -> Result<(), Error> {
        self.pg_start()
    }

    /// Whether the server runs as the `postgres` user (files it reads must be theirs).
    pub fn runs_as_postgres(&self) -> bool {
        self.as_postgres
    }

    /// `postgres://postgres@127.0.0.1:{port}/{db}`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's directory (data, log, socket).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops the cluster now and removes its directory (a kept cluster: stops it cleanly).
    pub fn stop(&self) {
        let _ = self
            .pg_command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", if self.keep { "fast" } else { "immediate" }, "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn pg_command(&self, program: &str) -> Command {
        use std::os::unix::process::CommandExt as _;
        let exe = self.bin.join(program);
        let mut c = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        // A process group of its own: Ctrl-C in the terminal reaches this process, which
        // drains and then stops the server, not the server first.
        c.process_group(0);
        c
    }

    /// A detached shell that waits for this process to die, then stops the server when this process is gone (a kept cluster's only when `server` still
    /// runs there: its postmaster's pid), and removes a throwaway cluster's directory.
    fn spawn_watchdog(&self, server: Option<&str>) -> Result<(), Error> {
        let pg_ctl = self.bin.join("pg_ctl");
        let runas = if self.as_postgres { "runuser -u postgres -- " } else { "" };
        let data = self.dir.join("data");
        let (mode, remove) = if self.keep {
            ("fast", String::new())
        } else {
            ("immediate", format!("; rm -rf '{}'", self.dir.display()))
        };
        let guard = match server {
            Some(pid) => format!(
                "[ \"$(head -n1 '{}' 2>/dev/null)\" = '{pid}' ] && ",
                data.join("postmaster.pid").display()
            ),
            None => String::new(),
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             {guard}{runas}'{pg_ctl}' -D '{data}' -m {mode} -w stop >/dev/null 2>&1{remove}",
            pid = std::process::id(),
            pg_ctl = pg_ctl.display(),
            data = data.display(),
        );
        Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(cmd: &mut Command) -> Result<(), Error> {
    let out = cmd.stdin(Stdio::null()).output()?;
    if out.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    let tail: String = text.chars().rev().take(2000).collect::<Vec<_>>().into_iter().rev().collect();
    Err(Error::Command { command: format!("{cmd:?}"), output: tail })
}

/// The server for tests: `DATABASE_URL` (its database is the admin database) or the process's
/// shared throwaway cluster (its `postgres` database).
fn admin_url() -> Result<String, Error> {
    if let Ok(url) = std::env::var("DATABASE_URL")
        && !url.is_empty()
    {
        return Ok(url);
    }
    static SHARED: OnceLock<Result<Cluster, String>> = OnceLock::new();
    match SHARED.get_or_init(|| Cluster::start().map_err(|e| e.to_string())) {
        Ok(c) => Ok(c.url("postgres")),
        Err(e) => Err(Error::Command { command: "start throwaway Postgres".into(), output: e.clone() }),
    }
}

fn with_database(url: &str, db: &str) -> String {
    // Replace the path of the URL (the database) keeping any query string.
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let prefix = match base.find("://").map(|i| i + 3) {
        Some(start) => match base[start..].find('/') {
            Some(slash) => &base[..start + slash],
            None => base,
        },
        None => base,
    };
    match query {
        Some(q) => format!("{prefix}/{db}?{q}"),
        None => format!("{prefix}/{db}"),
    }
}

/// A database created for one test; dropped (with its connections) when this is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    admin: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Drop may run inside an async runtime: do the blocking work on its own thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let mut conn = PgConnection::connect(&admin).await.ok()?;
                let sql = format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#);
                conn.execute(sqlx::raw_sql(AssertSqlSafe(sql))).await.ok().map(|_| ())
            })
        })
        .join();
    }
}

/// Creates a fresh, empty database for one test.
pub async fn fresh_database() -> Result<TestDatabase, Error> {
    let admin = tokio::task::spawn_blocking(admin_url).await.map_err(std::io::Error::other)??;
    let name = format!("cairn_test_{}", uuid::Uuid::now_v7().simple());
    let mut conn = PgConnection::connect(&admin).await?;
    conn.execute(sqlx::raw_sql(AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))).await?;
    conn.close().await?;
    let url = with_database(&admin, &name);
    Ok(TestDatabase { admin, name, url })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_in_url_is_replaced() {
        assert_eq!(with_database("postgres://u@h:5/postgres", "x"), "postgres://u@h:5/x");
        assert_eq!(with_database("postgres://u@h:5", "x"), "postgres://u@h:5/x");
        assert_eq!(
            with_database("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
    }

    #[tokio::test]
    async fn fresh_databases_are_isolated() {
        let a = fresh_database().await.expect("database");
        let b = fresh_database().await.expect("database");
        assert_ne!(a.url(), b.url());
        let mut ca = PgConnection::connect(a.url()).await.unwrap();
        ca.execute("CREATE TABLE t (x int)").await.unwrap();
        let mut cb = PgConnection::connect(b.url()).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE tablename = 't'")
            .fetch_one(&mut cb)
            .await
            .unwrap();
        assert_eq!(n, 0);
    }
}
