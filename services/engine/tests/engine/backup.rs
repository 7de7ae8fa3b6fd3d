//! BACKUP: round trips, parents, filters, command sources, cancellation.

use std::fs;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_engine::{
    BackupOptions, CancelToken, Engine, Error, NoProgress, Overwrite, Phase, RestoreOptions, SnapshotSel,
    Source,
};

use crate::common::*;

fn opts(tags: &[&str]) -> BackupOptions {
    BackupOptions {
        tags: tags.iter().map(|t| (*t).to_string()).collect(),
        host: Some("test-host".into()),
        ..BackupOptions::default()
    }
}

fn restore_all(id: &str) -> RestoreOptions {
    RestoreOptions {
        snapshot: SnapshotSel::Id(id.to_string()),
        include_paths: Vec::new(),
        overwrite: Overwrite::Always,
    }
}

#[test]
fn backup_then_restore_is_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    gen_tree(&src, 2, 3 << 20);
    let store = local_store(&tmp.path().join("repo"));
    let engine = Engine::new();
    let rec = Recorder::default();
    let out = engine
        .backup(
            &Source::paths([&src]),
            &store,
            &opts(&["app=web", "cairn-task=t1"]),
            &rec,
            &CancelToken::new(),
        )
        .unwrap();
    assert_eq!(out.snapshot_id.len(), 64);
    assert_eq!(out.parent, None);
    assert!(out.stats.files_new >= 47, "{:?}", out.stats);
    assert!(out.stats.bytes_processed > 6 << 20);
    assert!(rec.phases.lock().unwrap().contains(&Phase::BackingUp));
    assert!(rec.log_text().contains("saved"), "{}", rec.log_text());
    let last = rec.updates.lock().unwrap().last().cloned().unwrap();
    assert!(last.bytes_done > 0 && last.files_total.is_some(), "{last:?}");

    let snaps = engine.list_snapshots(&store).unwrap();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0].id, out.snapshot_id);
    assert!(snaps[0].tags.contains(&"cairn-task=t1".to_string()));
    assert_eq!(snaps[0].hostname, "test-host");
    assert!(snaps[0].summary.is_some());

    let dest = tmp.path().join("dest");
    let rec = Recorder::default();
    let r = engine
        .restore(&store, &restore_all(&out.snapshot_id[..8]), &dest, &rec, &CancelToken::new())
        .unwrap();
    assert_eq!(r.snapshot_id, out.snapshot_id);
    assert!(r.files_restored >= 47);
    assert!(rec.phases.lock().unwrap().contains(&Phase::Restoring));
    assert_same_tree(&src, &restored(&dest, &src));

    // Restoring again over the result changes nothing and still matches.
    let again = engine
        .restore(&store, &restore_all(&out.snapshot_id), &dest, &NoProgress, &CancelToken::new())
        .unwrap();
    assert_eq!(again.files_restored, 0, "{again:?}");
    assert_same_tree(&src, &restored(&dest, &src));
}

#[test]
fn incremental_uses_parent_and_full_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    gen_tree(&src, 0, 0);
    let store = local_store(&tmp.path().join("repo"));
    let engine = Engine::new();
    let cancel = CancelToken::new();
    let first = engine.backup(&Source::paths([&src]), &store, &opts(&["t"]), &NoProgress, &cancel).unwrap();

    // Change one file, add one.
    std::thread::sleep(Duration::from_millis(20));
    write(&src.join("d0/s0/f1.dat"), b"changed content");
    write(&src.join("new.txt"), b"new");
    let rec = Recorder::default();
    let second = engine.backup(&Source::paths([&src]), &store, &opts(&["t"]), &rec, &cancel).unwrap();
    assert_eq!(second.parent.as_deref(), Some(first.snapshot_id.as_str()));
    assert_eq!(second.stats.files_changed, 1, "{:?}", second.stats);
    assert_eq!(second.stats.files_new, 1, "{:?}", second.stats);
    assert!(second.stats.files_unmodified >= 40);
    assert!(rec.log_text().contains("using parent snapshot"), "{}", rec.log_text());

    // Different tags: a different group, so no parent.
    let other =
        engine.backup(&Source::paths([&src]), &store, &opts(&["other"]), &NoProgress, &cancel).unwrap();
    assert_eq!(other.parent, None);

    // FULL: no parent, everything re-read.
    let full = engine
        .backup(
            &Source::paths([&src]),
            &store,
            &BackupOptions { full: true, ..opts(&["t"]) },
            &NoProgress,
            &cancel,
        )
        .unwrap();
    assert_eq!(full.parent, None);
    assert_eq!(full.stats.files_unmodified, 0);
    assert_eq!(engine.list_snapshots(&store).unwrap().len(), 4);
}

#[test]
fn include_exclude_and_marker_filters() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write(&src.join("keep/a.txt"), b"a");
    write(&src.join("keep/b.log"), b"b");
    write(&src.join("cache/c.txt"), b"c");
    write(&src.join("marked/.nobackup"), b"");
    write(&src.join("marked/d.txt"), b"d");
    let store = local_store(&tmp.path().join("repo"));
    let engine = Engine::new();
    let source = Source::LocalPath {
        paths: vec![src.clone()],
        include_globs: vec!["*.txt".into()],
        exclude_globs: vec!["cache".into()],
        exclude_if_present: vec![".nobackup".into()],
        one_file_system: true,
    };
    let out = engine.backup(&source, &store, &opts(&[]), &NoProgress, &CancelToken::new()).unwrap();
    let dest = tmp.path().join("dest");
    engine.restore(&store, &restore_all(&out.snapshot_id), &dest, &NoProgress, &CancelToken::new()).unwrap();
    let base = restored(&dest, &src);
    assert!(base.join("keep/a.txt").exists());
    assert!(!base.join("keep/b.log").exists(), "include glob ignored");
    assert!(!base.join("cache").exists(), "exclude glob ignored");
    assert!(!base.join("marked").exists(), "exclude-if-present ignored");
}

#[test]
fn command_source_is_backed_up_as_one_file() {
    let tmp = tempfile::tempdir().unwrap();
    let store = local_store(&tmp.path().join("repo"));
    let engine = Engine::new();
    let source = Source::Command {
        argv: vec!["sh".into(), "-c".into(), "echo hello; echo world".into()],
        file_name: "dump.sql".into(),
    };
    let out = engine.backup(&source, &store, &opts(&["db"]), &NoProgress, &CancelToken::new()).unwrap();
    let snaps = engine.list_snapshots(&store).unwrap();
    assert_eq!(snaps[0].paths, vec!["/dump.sql".to_string()]);
    let dest = tmp.path().join("dest");
    engine.restore(&store, &restore_all(&out.snapshot_id), &dest, &NoProgress, &CancelToken::new()).unwrap();
    assert_eq!(fs::read(dest.join("dump.sql")).unwrap(), b"hello\nworld\n");
}

#[test]
fn failing_command_fails_without_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let store = local_store(&tmp.path().join("repo"));
    let engine = Engine::new();
    let source = Source::Command {
        argv: vec![
            "sh".into(),
            "-c".into(),
            "echo partial; echo 'pg_dump: connection refused' >&2; exit 3".into(),
        ],
        file_name: "dump.sql".into(),
    };
    let err = engine.backup(&source, &store, &opts(&[]), &NoProgress, &CancelToken::new()).unwrap_err();
    match &err {
        Error::CommandFailed { status, stderr_tail } => {
            assert!(status.contains('3'), "{status}");
            assert!(stderr_tail.contains("connection refused"), "{stderr_tail}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(engine.list_snapshots(&store).unwrap().is_empty());

    let missing = Source::Command { argv: vec!["/nonexistent/cmd".into()], file_name: "x".into() };
    assert!(engine.backup(&missing, &store, &opts(&[]), &NoProgress, &CancelToken::new()).is_err());
}

#[test]
fn cancel_mid_backup_writes_no_snapshot_and_prune_reclaims() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write(&src.join("small.txt"), b"small");
    let repo = tmp.path().join("repo");
    let store = local_store(&repo);
    let engine = Engine::new();
    engine.backup(&Source::paths([&src]), &store, &opts(&[]), &NoProgress, &CancelToken::new()).unwrap();
    let baseline = dir_size(&repo);

    write(&src.join("big.bin"), &random_bytes(7, 160 << 20));
    let cancel = CancelToken::new();
    let cancelled_at = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let rec = Recorder {
        on_update: Some(Box::new({
            let cancel = cancel.clone();
            let at = cancelled_at.clone();
            move |u| {
                // Cancel once a few packs must have been written.
                if u.phase == Some(Phase::BackingUp) && u.bytes_done > 48 << 20 && !cancel.is_cancelled() {
                    *at.lock().unwrap() = Some(Instant::now());
                    cancel.cancel();
                }
            }
        })),
        ..Recorder::default()
    };
    let err = engine.backup(&Source::paths([&src]), &store, &opts(&[]), &rec, &cancel).unwrap_err();
    let latency = cancelled_at.lock().unwrap().map(|t| t.elapsed());
    assert_eq!(err, Error::Cancelled);
    eprintln!("cancel latency (cancel -> backup returned): {latency:?}");
    assert_eq!(engine.list_snapshots(&store).unwrap().len(), 1, "a cancelled backup left a snapshot");
    let after_cancel = dir_size(&repo);
    assert!(after_cancel > baseline + (16 << 20), "expected leftover packs: {baseline} -> {after_cancel}");

    let pruned = engine.prune(&store, &Default::default(), &NoProgress, &CancelToken::new()).unwrap();
    // rustic's archiver leaves unindexed packs; Cairn's indexes what it uploaded (so the next
    // backup can reuse it) and prune removes those packs as unused.
    assert!(pruned.unreferenced_packs + pruned.packs_removed > 0, "{pruned:?}");
    let after_prune = dir_size(&repo);
    eprintln!("repo size: baseline {baseline}, after cancel {after_cancel}, after prune {after_prune}");
    assert!(after_prune < after_cancel / 4, "{after_prune} vs {after_cancel}");
    let check = engine
        .check(
            &store,
            &cairn_engine::CheckOptions { read_data_percent: 100.0, ..Default::default() },
            &NoProgress,
            &CancelToken::new(),
        )
        .unwrap();
    assert!(check.ok, "{check:?}");
    if have_tool("restic", &["version"], "cancel/prune restic check") {
        let out = std::process::Command::new("restic")
            .args(["--no-cache", "-r"])
            .arg(&repo)
            .args(["check", "--read-data"])
            .env("RESTIC_PASSWORD", &store.password)
            .output()
            .unwrap();
        assert!(out.status.success(), "restic check: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn cancelled_before_start_and_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write(&src.join("a"), b"a");
    let store = local_store(&tmp.path().join("repo"));
    let engine = Engine::new();
    let cancel = CancelToken::new();
    cancel.cancel();
    assert_eq!(
        engine.backup(&Source::paths([&src]), &store, &opts(&[]), &NoProgress, &cancel).unwrap_err(),
        Error::Cancelled
    );
    let bad = engine
        .backup(&Source::paths([&src]), &store, &opts(&["a,b"]), &NoProgress, &CancelToken::new())
        .unwrap_err();
    assert!(matches!(bad, Error::InvalidInput(_)) && !bad.is_retryable());
}
