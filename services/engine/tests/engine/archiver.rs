//! Cairn's archiver against rustic's: the same trees and blobs from the same source, every
//! repository it writes checked by the stock restic (`check --read-data`) and restored
//! bit-identically by restic and by the engine, over generated trees; interrupted backups.

use std::fs;
use std::io::{Seek, SeekFrom, Write as _};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cairn_engine::{
    Archiver, BackupOptions, BackupOutcome, CancelToken, Engine, Error, NoProgress, Overwrite, Phase,
    RestoreOptions, SnapshotSel, Source, Store,
};

use crate::common::*;

fn engine(a: Archiver) -> Engine {
    Engine::new().with_archiver(a)
}

fn opts(full: bool) -> BackupOptions {
    BackupOptions {
        tags: vec!["cairn-task=t".into()],
        host: Some("h".into()),
        full,
        ..BackupOptions::default()
    }
}

fn backup(a: Archiver, src: &Path, store: &Store, full: bool) -> BackupOutcome {
    engine(a).backup(&Source::paths([src]), store, &opts(full), &NoProgress, &CancelToken::new()).unwrap()
}

fn restic(repo: &Path, args: &[&str]) -> std::process::Output {
    Command::new("restic")
        .arg("--no-cache")
        .arg("-r")
        .arg(repo)
        .args(args)
        .env("RESTIC_PASSWORD", "test-password-123")
        .output()
        .unwrap()
}

/// The root tree id of a snapshot, as restic reports it.
fn tree_of(repo: &Path, snapshot: &str) -> String {
    let out = restic(repo, &["cat", "snapshot", snapshot]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["tree"].as_str().unwrap().to_string()
}

fn restic_check(repo: &Path) {
    let out = restic(repo, &["check", "--read-data"]);
    assert!(
        out.status.success(),
        "restic check --read-data: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Restores `snapshot` with the stock restic and with the engine; both must equal `expected`.
fn restores_equal(tmp: &Path, store: &Store, repo: &Path, snapshot: &str, src: &Path, expected: &Path) {
    let by_restic = tmp.join(format!("restic-{snapshot}"));
    let out = restic(repo, &["restore", snapshot, "--target", by_restic.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_same_tree(expected, &restored(&by_restic, src));
    let by_engine = tmp.join(format!("engine-{snapshot}"));
    let r = RestoreOptions {
        snapshot: SnapshotSel::Id(snapshot.to_string()),
        include_paths: Vec::new(),
        overwrite: Overwrite::Always,
    };
    Engine::new().restore(store, &r, &by_engine, &NoProgress, &CancelToken::new()).unwrap();
    assert_same_tree(expected, &restored(&by_engine, src));
}

#[test]
fn both_archivers_cut_and_serialise_alike() {
    if !have_tool("restic", &["version"], "archiver equivalence") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    gen_tree(&src, 2, 11 << 20);
    let repo = tmp.path().join("repo");
    let store = local_store(&repo);
    let by_rustic = backup(Archiver::Rustic, &src, &store, true);
    let by_cairn = backup(Archiver::Cairn, &src, &store, true);
    // Same chunks, same node serialisation, same tree bytes: the same root tree, and nothing
    // new to store the second time.
    assert_eq!(tree_of(&repo, &by_rustic.snapshot_id), tree_of(&repo, &by_cairn.snapshot_id));
    assert_eq!(by_cairn.stats.bytes_added, 0, "{:?}", by_cairn.stats);
    assert_eq!(by_cairn.stats.files_new, by_rustic.stats.files_new);
    assert_eq!(by_cairn.stats.bytes_processed, by_rustic.stats.bytes_processed);
    assert_eq!(by_cairn.stats.dirs_new, by_rustic.stats.dirs_new);
    restic_check(&repo);
}

#[test]
fn cairn_repositories_pass_restic_check_and_restore_identically() {
    if !have_tool("restic", &["version"], "cairn archiver interop") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    gen_tree(&src, 2, 9 << 20);
    let repo = tmp.path().join("repo");
    let store = local_store(&repo);
    let rec = Recorder::default();
    let first = engine(Archiver::Cairn)
        .backup(&Source::paths([&src]), &store, &opts(false), &rec, &CancelToken::new())
        .unwrap();
    assert!(first.stats.files_new >= 47 && first.stats.bytes_added > 0, "{:?}", first.stats);
    assert!(rec.phases.lock().unwrap().contains(&Phase::BackingUp));
    let last = rec.updates.lock().unwrap().last().cloned().unwrap();
    assert!(last.bytes_done >= 18 << 20 && last.files_total.is_some(), "{last:?}");
    restic_check(&repo);
    restores_equal(tmp.path(), &store, &repo, &first.snapshot_id, &src, &src);

    // Unchanged: nothing read, nothing added, every directory unmodified.
    let second = backup(Archiver::Cairn, &src, &store, false);
    assert_eq!(second.parent.as_deref(), Some(first.snapshot_id.as_str()));
    assert_eq!(second.stats.files_new + second.stats.files_changed, 0, "{:?}", second.stats);
    assert_eq!(second.stats.bytes_added, 0, "{:?}", second.stats);
    assert_eq!(second.stats.dirs_new + second.stats.dirs_changed, 0, "{:?}", second.stats);

    // One file changed, one added: only they are read; rustic would make the same tree.
    write(&src.join("d1/s2/f3.dat"), b"changed content");
    write(&src.join("d2/new.txt"), b"new file");
    let third = backup(Archiver::Cairn, &src, &store, false);
    assert_eq!((third.stats.files_changed, third.stats.files_new), (1, 1), "{:?}", third.stats);
    let fourth = backup(Archiver::Rustic, &src, &store, false);
    assert_eq!(tree_of(&repo, &third.snapshot_id), tree_of(&repo, &fourth.snapshot_id));
    restic_check(&repo);
    restores_equal(tmp.path(), &store, &repo, &third.snapshot_id, &src, &src);
}

/// A tree of the shapes a backup meets: sparse files, empty files and directories, a file
/// over the largest chunk, many small files, unicode names, symlinks (one dangling), and
/// content that repeats within and across files.
fn awkward_tree(root: &Path, seed: u64) {
    fs::create_dir_all(root.join("empty-dir/nested-empty")).unwrap();
    write(&root.join("empty"), b"");
    let mut sparse = fs::File::create(root.join("sparse.img")).unwrap();
    sparse.seek(SeekFrom::Start(20 << 20)).unwrap();
    sparse.write_all(&random_bytes(seed, 4096)).unwrap();
    sparse.seek(SeekFrom::Start(37 << 20)).unwrap();
    sparse.write_all(b"tail").unwrap();
    write(&root.join("huge.bin"), &random_bytes(seed + 1, (17 << 20) + 12_345));
    let block = random_bytes(seed + 2, 700 << 10);
    let mut repeated = Vec::new();
    for _ in 0..6 {
        repeated.extend_from_slice(&block);
    }
    write(&root.join("repeats.bin"), &repeated);
    write(&root.join("copy-of-repeats.bin"), &repeated);
    for i in 0..1500_usize {
        let data = if i % 3 == 0 {
            format!("line {i}\n").repeat(i % 50 + 1).into_bytes()
        } else {
            random_bytes(seed + i as u64, (i * 7) % 3000)
        };
        write(&root.join(format!("many/{:02}/{i:04}.txt", i % 17)), &data);
    }
    for name in ["Grüße.txt", "日本語ファイル", "emoji-🦀.rs", "spaces in name", "tab\tand\u{7f}"]
    {
        write(&root.join("unicode").join(name), name.as_bytes());
    }
    std::os::unix::fs::symlink("../huge.bin", root.join("unicode/link-up")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("dangling")).unwrap();
}

#[test]
fn generated_trees_round_trip_through_restic_and_the_engine() {
    if !have_tool("restic", &["version"], "generated trees") {
        return;
    }
    for seed in [1_u64, 2] {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        awkward_tree(&src, seed);
        let repo = tmp.path().join("repo");
        let store = local_store(&repo);
        let out = backup(Archiver::Cairn, &src, &store, false);
        // The repeated 700 KiB block and the copied file are stored once.
        assert!(out.stats.bytes_added < 80 << 20, "{:?}", out.stats);
        restic_check(&repo);
        restores_equal(tmp.path(), &store, &repo, &out.snapshot_id, &src, &src);
        let rustic = backup(Archiver::Rustic, &src, &store, true);
        assert_eq!(tree_of(&repo, &out.snapshot_id), tree_of(&repo, &rustic.snapshot_id), "seed {seed}");
    }
}

#[test]
fn files_changing_during_the_backup_leave_a_consistent_snapshot() {
    if !have_tool("restic", &["version"], "changing files") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    for i in 0..40 {
        write(&src.join(format!("grow/{i}.log")), &random_bytes(i, 300 << 10));
    }
    let repo = tmp.path().join("repo");
    let store = local_store(&repo);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = std::thread::spawn({
        let (src, stop) = (src.clone(), stop.clone());
        move || {
            let mut n = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                let path = src.join(format!("grow/{}.log", n % 40));
                if let Ok(mut f) = fs::OpenOptions::new().append(true).open(&path) {
                    let _ = f.write_all(&random_bytes(n + 100, 64 << 10));
                }
                if n.is_multiple_of(7) {
                    let _ = fs::write(src.join(format!("grow/{}.log", (n + 3) % 40)), b"truncated");
                }
                n += 1;
            }
        }
    });
    let out = backup(Archiver::Cairn, &src, &store, false);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    // Whatever each file held when read is what the snapshot holds: restic agrees with the
    // sizes recorded, and both restores give the same bytes.
    restic_check(&repo);
    let by_restic = tmp.path().join("by-restic");
    let r = restic(&repo, &["restore", &out.snapshot_id, "--target", by_restic.to_str().unwrap()]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let by_engine = tmp.path().join("by-engine");
    let opts = RestoreOptions {
        snapshot: SnapshotSel::Id(out.snapshot_id.clone()),
        include_paths: Vec::new(),
        overwrite: Overwrite::Always,
    };
    Engine::new().restore(&store, &opts, &by_engine, &NoProgress, &CancelToken::new()).unwrap();
    assert_same_tree(&restored(&by_restic, &src), &restored(&by_engine, &src));
}

#[test]
fn a_cancelled_backup_indexes_what_it_uploaded_and_the_next_reuses_it() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    for i in 0..12 {
        write(&src.join(format!("big{i}.bin")), &random_bytes(50 + i, 12 << 20));
    }
    let repo = tmp.path().join("repo");
    let store = local_store(&repo);
    let cairn = engine(Archiver::Cairn);
    let cancel = CancelToken::new();
    let rec = Recorder {
        on_update: Some(Box::new({
            let cancel = cancel.clone();
            move |u| {
                if u.phase == Some(Phase::BackingUp) && u.bytes_done > 100 << 20 {
                    cancel.cancel();
                }
            }
        })),
        ..Recorder::default()
    };
    let err = cairn.backup(&Source::paths([&src]), &store, &opts(false), &rec, &cancel).unwrap_err();
    assert_eq!(err, Error::Cancelled);
    assert!(cairn.list_snapshots(&store).unwrap().is_empty(), "a cancelled backup left a snapshot");
    if have_tool("restic", &["version"], "cancelled backup check") {
        restic_check(&repo);
    }
    let next = backup(Archiver::Cairn, &src, &store, false);
    let total = 12 * (12 << 20);
    assert!(
        next.stats.bytes_added < total - (48 << 20),
        "the next backup stored {} of {total} bytes again",
        next.stats.bytes_added
    );
    assert_eq!(next.stats.bytes_processed, total);
}

/// Set in the child process of the SIGKILL test: its source and repository.
const KILL_SRC: &str = "CAIRN_TEST_KILLED_BACKUP_SOURCE";
const KILL_REPO: &str = "CAIRN_TEST_KILLED_BACKUP_REPOSITORY";

#[test]
fn a_killed_backup_leaves_a_checkable_repository_and_the_next_reuses_its_blobs() {
    // The child: this same test in a process of its own, backing up until it is killed.
    if let (Ok(src), Ok(repo)) = (std::env::var(KILL_SRC), std::env::var(KILL_REPO)) {
        let _ = backup(Archiver::Cairn, Path::new(&src), &local_store(Path::new(&repo)), false);
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    for i in 0..24 {
        write(&src.join(format!("big{i:02}.bin")), &random_bytes(900 + i, 12 << 20));
    }
    let total: u64 = 24 * (12 << 20);
    // Small packs, so an index file is written (every 64 packs) early in the backup.
    let repo = tmp.path().join("repo");
    let backends = rustic_backend::BackendOptions::default()
        .repository(format!("local:{}", repo.display()))
        .to_backends()
        .unwrap();
    let config = rustic_core::ConfigOptions::default()
        .set_datapack_size(Some(bytesize::ByteSize::kib(512)))
        .set_datapack_growfactor(Some(0));
    rustic_core::Repository::new(&rustic_core::RepositoryOptions::default(), &backends)
        .unwrap()
        .init(&rustic_core::Credentials::password("test-password-123"), &Default::default(), &config)
        .unwrap();

    let test = "archiver::a_killed_backup_leaves_a_checkable_repository_and_the_next_reuses_its_blobs";
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture"])
        .env(KILL_SRC, &src)
        .env(KILL_REPO, &repo)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let count = |dir: &str| walk_count(&repo.join(dir));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    // Killed once an index file exists and more packs were written after it.
    while !(count("index") >= 1 && count("data") >= 100) {
        assert!(std::time::Instant::now() < deadline, "the child wrote no index file");
        assert!(child.try_wait().unwrap().is_none(), "the child backup ended before it was killed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let store = local_store(&repo);
    assert!(
        engine(Archiver::Cairn).list_snapshots(&store).unwrap().is_empty(),
        "a killed backup left a snapshot"
    );
    if have_tool("restic", &["version"], "killed backup check") {
        restic_check(&repo);
    }
    let next = backup(Archiver::Cairn, &src, &store, false);
    assert_eq!(next.stats.bytes_processed, total);
    assert!(
        next.stats.bytes_added <= total - (32 << 20),
        "the next backup stored {} of {total} bytes again",
        next.stats.bytes_added
    );
    if have_tool("restic", &["version"], "killed backup check") {
        restic_check(&repo);
    }
}

/// Files below `dir`, recursively (0 when it does not exist yet).
fn walk_count(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    entries.flatten().map(|e| if e.path().is_dir() { walk_count(&e.path()) } else { 1 }).sum()
}
