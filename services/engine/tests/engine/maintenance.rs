//! SYNC, CHECK, PRUNE, FORGET, listing and connection tests.

use std::fs;
use std::time::Duration;

use cairn_engine::{
    BackupOptions, CancelToken, CheckOptions, Engine, Error, NoProgress, Overwrite, RestoreOptions,
    SnapshotFilter, SnapshotSel, Source, Store,
};

use crate::common::*;

fn backup(engine: &Engine, store: &Store, src: &std::path::Path, tags: &[&str]) -> String {
    let opts =
        BackupOptions { tags: tags.iter().map(|t| (*t).to_string()).collect(), ..BackupOptions::default() };
    engine.backup(&Source::paths([src]), store, &opts, &NoProgress, &CancelToken::new()).unwrap().snapshot_id
}

#[test]
fn sync_copies_once_and_the_copy_restores() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    gen_tree(&src, 1, 1 << 20);
    let from = local_store(&tmp.path().join("repo-a"));
    let to = Store::local(tmp.path().join("repo-b"), "another-password").create_if_missing(true);
    let engine = Engine::new();
    let wanted = backup(&engine, &from, &src, &["keep", "cairn-task=9"]);
    backup(&engine, &from, &src, &["other"]);

    let filter = SnapshotFilter { tags: vec!["keep".into()], window: Some(Duration::from_secs(3600)) };
    let first = engine.sync(&from, &to, &filter, &NoProgress, &CancelToken::new()).unwrap();
    assert_eq!(first.copied, vec![wanted.clone()]);
    let second = engine.sync(&from, &to, &filter, &NoProgress, &CancelToken::new()).unwrap();
    assert!(second.copied.is_empty(), "{second:?}");
    assert_eq!(second.already_present, 1);

    let copies = engine.list_snapshots(&to).unwrap();
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0].original.as_deref(), Some(wanted.as_str()));
    assert!(copies[0].tags.contains(&"cairn-task=9".to_string()));

    let dest = tmp.path().join("dest");
    let opts = RestoreOptions {
        snapshot: SnapshotSel::Id(copies[0].id.clone()),
        include_paths: vec![],
        overwrite: Overwrite::Always,
    };
    engine.restore(&to, &opts, &dest, &NoProgress, &CancelToken::new()).unwrap();
    assert_same_tree(&src, &restored(&dest, &src));

    // A window that excludes everything copies nothing.
    let old = SnapshotFilter { tags: vec![], window: Some(Duration::from_nanos(1)) };
    std::thread::sleep(Duration::from_millis(5));
    let none = engine.sync(&from, &to, &old, &NoProgress, &CancelToken::new()).unwrap();
    assert!(none.copied.is_empty() && none.already_present == 0, "{none:?}");
    let check = engine
        .check(
            &to,
            &CheckOptions { read_data_percent: 100.0, ..Default::default() },
            &NoProgress,
            &CancelToken::new(),
        )
        .unwrap();
    assert!(check.ok, "{check:?}");
}

#[test]
fn check_detects_a_corrupted_pack() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    gen_tree(&src, 1, 2 << 20);
    let repo = tmp.path().join("repo");
    let store = local_store(&repo);
    let engine = Engine::new();
    backup(&engine, &store, &src, &[]);
    let clean = engine
        .check(
            &store,
            &CheckOptions { read_data_percent: 100.0, ..Default::default() },
            &NoProgress,
            &CancelToken::new(),
        )
        .unwrap();
    assert!(clean.ok && clean.errors.is_empty(), "{clean:?}");

    // Flip bytes in the middle of the largest pack (data, not header).
    let pack = pack_files(&repo).into_iter().max_by_key(|p| fs::metadata(p).unwrap().len()).unwrap();
    let mut bytes = fs::read(&pack).unwrap();
    let mid = bytes.len() / 3;
    for b in &mut bytes[mid..mid + 16] {
        *b ^= 0xff;
    }
    let mut perms = fs::metadata(&pack).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    fs::set_permissions(&pack, perms).unwrap();
    fs::write(&pack, &bytes).unwrap();

    let structural =
        engine.check(&store, &CheckOptions::default(), &NoProgress, &CancelToken::new()).unwrap();
    eprintln!("structure-only check after corruption: ok={}", structural.ok);
    let rec = Recorder::default();
    let full = engine
        .check(
            &store,
            &CheckOptions { read_data_percent: 100.0, ..Default::default() },
            &rec,
            &CancelToken::new(),
        )
        .unwrap();
    assert!(!full.ok, "corruption not detected: {full:?}");
    assert!(!full.errors.is_empty());
    assert!(rec.log_text().contains("FAILED"), "{}", rec.log_text());
}

#[test]
fn forget_then_prune_reclaims_space() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write(&src.join("keep.txt"), b"keep");
    let repo = tmp.path().join("repo");
    let store = local_store(&repo);
    let engine = Engine::new();
    let keep = backup(&engine, &store, &src, &["t"]);
    write(&src.join("big.bin"), &random_bytes(3, 8 << 20));
    let drop = backup(&engine, &store, &src, &["t"]);
    let before = dir_size(&repo);
    let out = engine.forget(&store, &[drop[..10].to_string()], &NoProgress, &CancelToken::new()).unwrap();
    assert_eq!(out.removed, vec![drop.clone()]);
    let ids: Vec<_> = engine.list_snapshots(&store).unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(ids, vec![keep]);
    assert!(engine.forget(&store, &["deadbeef".into()], &NoProgress, &CancelToken::new()).is_err());
    let pruned = engine
        .prune(
            &store,
            &cairn_engine::PruneOptions { max_unused_percent: 0.0 },
            &NoProgress,
            &CancelToken::new(),
        )
        .unwrap();
    assert!(pruned.packs_removed > 0, "{pruned:?}");
    let after = dir_size(&repo);
    assert!(after + (7 << 20) < before, "{before} -> {after}");
    let check = engine
        .check(
            &store,
            &CheckOptions { read_data_percent: 100.0, ..Default::default() },
            &NoProgress,
            &CancelToken::new(),
        )
        .unwrap();
    assert!(check.ok, "{check:?}");
}

#[test]
fn verdicts_and_store_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let repo = tmp.path().join("repo");

    let missing = Store::local(&repo, "pw-123456");
    let v = engine.test_store(&missing);
    assert!(!v.initialized && !v.readable, "{v:?}");
    let err = engine.list_snapshots(&missing).unwrap_err();
    assert!(matches!(err, Error::RepositoryNotFound(_)) && !err.is_retryable(), "{err:?}");

    let created = engine.test_store(&missing.clone().create_if_missing(true));
    assert!(created.reachable && created.initialized && created.readable && created.writable, "{created:?}");
    let again = engine.test_store(&missing);
    assert!(again.initialized && again.readable && again.writable, "{again:?}");

    let wrong = Store::local(&repo, "wrong-password");
    let v = engine.test_store(&wrong);
    assert!(v.reachable && v.initialized && !v.readable, "{v:?}");
    assert!(!v.message.contains("wrong-password"));
    let err = engine.list_snapshots(&wrong).unwrap_err();
    assert_eq!(err, Error::WrongPassword);
    assert!(!err.is_retryable());

    let src = tmp.path().join("src");
    write(&src.join("a"), b"a");
    assert!(engine.test_source(&Source::paths([&src])).readable);
    assert!(!engine.test_source(&Source::paths([tmp.path().join("nope")])).reachable);
    let cmd = |p: &str| Source::Command { argv: vec![p.into()], file_name: "x".into() };
    assert!(engine.test_source(&cmd("sh")).reachable);
    assert!(!engine.test_source(&cmd("no-such-program-xyz")).reachable);

    let d = engine.test_destination(&tmp.path().join("new/dest"));
    assert!(d.reachable && d.writable, "{d:?}");
    let file = tmp.path().join("file");
    fs::write(&file, b"").unwrap();
    assert!(!engine.test_destination(&file).writable);
}

#[test]
fn derived_keys_are_reused_only_while_their_key_file_exists() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let repo = tmp.path().join("repo");
    let store = Store::local(&repo, "pw-123456").create_if_missing(true);
    assert!(engine.test_store(&store).writable);
    assert!(engine.list_snapshots(&store).unwrap().is_empty(), "the password derives the key");
    let key_file = fs::read_dir(repo.join("keys")).unwrap().next().unwrap().unwrap().path();
    let original = fs::read(&key_file).unwrap();

    // With the key file's content unreadable, only the cached key can open the repository.
    fs::write(&key_file, b"{}").unwrap();
    assert!(engine.list_snapshots(&store).is_ok(), "the cached key is used");
    assert!(Engine::new().list_snapshots(&store).is_err(), "a fresh engine derives and fails");
    let wrong = Store::local(&repo, "wrong-password");
    assert_eq!(engine.list_snapshots(&wrong).unwrap_err(), Error::WrongPassword);

    // Removing the key file revokes the password, cached or not.
    fs::write(&key_file, &original).unwrap();
    let moved = repo.join("moved-key");
    fs::rename(&key_file, &moved).unwrap();
    assert!(engine.list_snapshots(&store).is_err(), "a removed key file no longer opens");
    fs::rename(&moved, &key_file).unwrap();
    assert!(engine.list_snapshots(&store).is_ok());
}
