//! Real third-party servers some tests need, started from installed tools: an SMTP server
//! (aiosmtpd, storing mail in a maildir) and an S3-compatible server (moto). When a tool is
//! missing the starter returns `None` and the caller prints a skip note (`.ci/run` installs
//! both).

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

/// Finds an executable on PATH or in `~/.cache/cairn/venv/bin`.
pub fn tool(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cache/cairn/venv/bin"));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

/// A child process killed on drop.
pub struct Server {
    child: Child,
    /// Its port.
    pub port: u16,
    /// For SMTP: the maildir.
    pub dir: Option<tempfile_dir::Dir>,
}

mod tempfile_dir {
    /// A directory removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_port(port: u16) -> bool {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

impl Server {
    /// An SMTP server writing every message into a maildir; `None` without aiosmtpd.
    pub async fn smtp() -> Option<Server> {
        let bin = tool("aiosmtpd")?;
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("cairn-maildir-{port}-{}", std::process::id()));
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(dir.join(sub)).ok()?;
        }
        let child = Command::new(bin)
            .args(["-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let s = Server { child, port, dir: Some(tempfile_dir::Dir(dir)) };
        wait_port(port).await.then_some(s)
    }

    /// Messages received so far (raw RFC 5322 text).
    pub fn mails(&self) -> Vec<String> {
        let Some(dir) = &self.dir else { return vec![] };
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(dir.0.join(sub)) {
                for e in entries.flatten() {
                    if let Ok(text) = std::fs::read_to_string(e.path()) {
                        out.push(text);
                    }
                }
            }
        }
        out
    }

    /// An S3-compatible server (moto); `None` without moto_server.
    pub async fn s3() -> Option<Server> {
        let bin = tool("moto_server")?;
        let port = free_port();
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let s = Server { child, port, dir: None };
        wait_port(port).await.then_some(s)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}
