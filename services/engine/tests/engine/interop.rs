//! Interoperability: the stock restic CLI reads what the engine writes; S3 through opendal.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_engine::{
    BackupOptions, CancelToken, Engine, NoProgress, Overwrite, RestoreOptions, SnapshotSel, Source, Store,
    StoreKind,
};

use crate::common::*;

fn restic(repo: &Path, password: &str, args: &[&str]) -> std::process::Output {
    Command::new("restic")
        .arg("--no-cache")
        .arg("-r")
        .arg(repo)
        .args(args)
        .env("RESTIC_PASSWORD", password)
        .output()
        .unwrap()
}

#[test]
fn restic_cli_lists_checks_and_restores_engine_snapshots() {
    if !have_tool("restic", &["version"], "restic interop") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    gen_tree(&src, 1, 2 << 20);
    let repo = tmp.path().join("repo");
    let store = local_store(&repo);
    let engine = Engine::new();
    let opts = BackupOptions {
        tags: vec!["env=prod".into(), "cairn-task=0192abcd".into()],
        host: Some("db1".into()),
        ..BackupOptions::default()
    };
    let snap =
        engine.backup(&Source::paths([&src]), &store, &opts, &NoProgress, &CancelToken::new()).unwrap();
    // A second, untagged snapshot must not match the tag filter.
    engine
        .backup(&Source::paths([&src]), &store, &BackupOptions::default(), &NoProgress, &CancelToken::new())
        .unwrap();

    let out = restic(&repo, &store.password, &["snapshots", "--json", "--tag", "cairn-task=0192abcd"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json = String::from_utf8(out.stdout).unwrap();
    assert_eq!(json.matches("\"id\":").count(), 1, "{json}");
    assert!(json.contains(&snap.snapshot_id), "{json}");
    assert!(json.contains("\"env=prod\"") && json.contains("\"db1\""), "{json}");

    let out = restic(&repo, &store.password, &["check", "--read-data"]);
    assert!(
        out.status.success(),
        "restic check: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let dest = tmp.path().join("restic-restore");
    let out =
        restic(&repo, &store.password, &["restore", &snap.snapshot_id, "--target", dest.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_same_tree(&src, &restored(&dest, &src));
}

#[test]
fn engine_reads_a_restic_cli_repository() {
    if !have_tool("restic", &["version"], "restic reverse interop") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    gen_tree(&src, 0, 0);
    let repo = tmp.path().join("repo");
    let pw = "restic-made-it";
    assert!(restic(&repo, pw, &["init"]).status.success());
    let out = restic(&repo, pw, &["backup", "--tag", "cairn-task=x", src.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let store = Store::local(&repo, pw);
    let engine = Engine::new();
    let snaps = engine.list_snapshots(&store).unwrap();
    assert_eq!(snaps.len(), 1);
    let dest = tmp.path().join("dest");
    let opts = RestoreOptions {
        snapshot: SnapshotSel::Latest { tags: vec!["cairn-task=x".into()] },
        include_paths: vec![],
        overwrite: Overwrite::Always,
    };
    engine.restore(&store, &opts, &dest, &NoProgress, &CancelToken::new()).unwrap();
    assert_same_tree(&src, &restored(&dest, &src));
}

/// A moto S3 server on a free local port, stopped on drop.
struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_moto() -> Option<Moto> {
    let port = TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
    let port_s = port.to_string();
    let candidates: [(&str, Vec<&str>); 2] = [
        ("moto_server", vec!["-H", "127.0.0.1", "-p", &port_s]),
        ("python3", vec!["-m", "moto.server", "-H", "127.0.0.1", "-p", &port_s]),
    ];
    for (program, args) in candidates {
        let Ok(child) = Command::new(program).args(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn()
        else {
            continue;
        };
        let mut moto = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if matches!(moto.child.try_wait(), Ok(Some(_))) {
                break;
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(moto);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = moto.child.kill();
    }
    None
}

fn http(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn s3_backup_and_restore_through_opendal() {
    let Some(moto) = start_moto() else {
        eprintln!("SKIP s3 test: moto_server (pip install 'moto[server]') not found");
        return;
    };
    let resp = http(
        moto.port,
        &format!(
            "PUT /cairn-bucket HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            moto.port
        ),
    );
    assert!(resp.starts_with("HTTP/1.1 200") || resp.starts_with("HTTP/1.0 200"), "create bucket: {resp}");

    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    gen_tree(&src, 1, 3 << 20);
    let store = Store {
        kind: StoreKind::S3 {
            endpoint: format!("http://127.0.0.1:{}", moto.port),
            bucket: "cairn-bucket".into(),
            prefix: "team/repo1".into(),
            region: String::new(),
            access_key_id: "testing-key-id".into(),
            secret_access_key: "testing-secret-key".into(),
        },
        password: "s3-password".into(),
        create_if_missing: true,
    };
    let engine = Engine::with_cache_dir(tmp.path().join("cache"));
    let v = engine.test_store(&store);
    assert!(v.reachable && v.initialized && v.readable && v.writable, "{v:?}");
    let first = engine
        .backup(&Source::paths([&src]), &store, &BackupOptions::default(), &NoProgress, &CancelToken::new())
        .unwrap();
    write(&src.join("d0/new.txt"), b"new");
    let second = engine
        .backup(&Source::paths([&src]), &store, &BackupOptions::default(), &NoProgress, &CancelToken::new())
        .unwrap();
    assert_eq!(second.parent.as_deref(), Some(first.snapshot_id.as_str()));
    let dest = tmp.path().join("dest");
    let opts = RestoreOptions {
        snapshot: SnapshotSel::Id(second.snapshot_id.clone()),
        include_paths: vec![],
        overwrite: Overwrite::Always,
    };
    engine.restore(&store, &opts, &dest, &NoProgress, &CancelToken::new()).unwrap();
    assert_same_tree(&src, &restored(&dest, &src));
    // The repository lives under the prefix.
    let listing = http(
        moto.port,
        &format!(
            "GET /cairn-bucket?list-type=2&prefix=team/repo1/config HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            moto.port
        ),
    );
    assert!(listing.contains("team/repo1/config"), "{listing}");
    assert!(fs::read_dir(tmp.path().join("cache")).is_ok());
}
