//! RESTORE: selection, overwrite policies, and attempts to write outside the destination.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use cairn_engine::{
    BackupOptions, CancelToken, Engine, Error, NoProgress, Overwrite, RestoreOptions, SnapshotSel, Source,
    Store,
};

use crate::common::*;

fn backup(engine: &Engine, store: &Store, src: &Path, tags: &[&str]) -> String {
    let opts =
        BackupOptions { tags: tags.iter().map(|t| (*t).to_string()).collect(), ..BackupOptions::default() };
    engine.backup(&Source::paths([src]), store, &opts, &NoProgress, &CancelToken::new()).unwrap().snapshot_id
}

fn restore(
    engine: &Engine,
    store: &Store,
    sel: SnapshotSel,
    includes: &[&str],
    overwrite: Overwrite,
    dest: &Path,
) -> Result<cairn_engine::RestoreOutcome, Error> {
    let opts = RestoreOptions {
        snapshot: sel,
        include_paths: includes.iter().map(|s| (*s).to_string()).collect(),
        overwrite,
    };
    engine.restore(store, &opts, dest, &NoProgress, &CancelToken::new())
}

fn id(s: &str) -> SnapshotSel {
    SnapshotSel::Id(s.to_string())
}

#[test]
fn latest_by_tags_and_include_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write(&src.join("a/one.txt"), b"one");
    write(&src.join("b/two.txt"), b"two");
    let store = local_store(&tmp.path().join("repo"));
    let engine = Engine::new();
    backup(&engine, &store, &src, &["x", "cairn-task=1"]);
    write(&src.join("a/one.txt"), b"one v2");
    let second = backup(&engine, &store, &src, &["x", "cairn-task=1"]);
    backup(&engine, &store, &src, &["y"]);

    let dest = tmp.path().join("dest");
    let inc = format!("{}/a", src.display());
    let out = restore(
        &engine,
        &store,
        SnapshotSel::Latest { tags: vec!["x".into(), "cairn-task=1".into()] },
        &[&inc],
        Overwrite::Always,
        &dest,
    )
    .unwrap();
    assert_eq!(out.snapshot_id, second);
    let base = restored(&dest, &src);
    assert_eq!(fs::read(base.join("a/one.txt")).unwrap(), b"one v2");
    assert!(!base.join("b").exists(), "include path not honoured");

    let none = restore(
        &engine,
        &store,
        SnapshotSel::Latest { tags: vec!["x".into(), "nope".into()] },
        &[],
        Overwrite::Always,
        &dest,
    );
    assert!(matches!(none, Err(Error::NotFound(_))), "{none:?}");
    let missing_inc = restore(&engine, &store, id(&second), &["/no/such/path"], Overwrite::Always, &dest);
    assert!(matches!(missing_inc, Err(Error::NotFound(_))), "{missing_inc:?}");
    let bad_id = restore(&engine, &store, id("zz"), &[], Overwrite::Always, &dest);
    assert!(matches!(bad_id, Err(Error::InvalidInput(_))));
}

#[test]
fn overwrite_policies() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write(&src.join("f.txt"), b"original");
    let store = local_store(&tmp.path().join("repo"));
    let engine = Engine::new();
    let snap = backup(&engine, &store, &src, &[]);
    let dest = tmp.path().join("dest");
    restore(&engine, &store, id(&snap), &[], Overwrite::Always, &dest).unwrap();
    let f = restored(&dest, &src).join("f.txt");
    let mtime = fs::metadata(&f).unwrap().modified().unwrap();
    let tamper = |content: &[u8]| {
        fs::write(&f, content).unwrap();
        fs::File::options().write(true).open(&f).unwrap().set_modified(mtime).unwrap();
    };

    // Same size and mtime: IfChanged trusts it, Always verifies content and repairs it.
    tamper(b"TAMPERED");
    restore(&engine, &store, id(&snap), &[], Overwrite::IfChanged, &dest).unwrap();
    assert_eq!(fs::read(&f).unwrap(), b"TAMPERED");
    restore(&engine, &store, id(&snap), &[], Overwrite::Always, &dest).unwrap();
    assert_eq!(fs::read(&f).unwrap(), b"original");

    // Different size: IfChanged rewrites; Never leaves it.
    fs::write(&f, b"longer tampered content").unwrap();
    let out = restore(&engine, &store, id(&snap), &[], Overwrite::Never, &dest).unwrap();
    assert_eq!(out.skipped, 1);
    assert_eq!(fs::read(&f).unwrap(), b"longer tampered content");
    restore(&engine, &store, id(&snap), &[], Overwrite::IfChanged, &dest).unwrap();
    assert_eq!(fs::read(&f).unwrap(), b"original");
}

#[test]
fn include_paths_cannot_escape() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write(&src.join("a.txt"), b"a");
    let store = local_store(&tmp.path().join("repo"));
    let engine = Engine::new();
    let snap = backup(&engine, &store, &src, &[]);
    let dest = tmp.path().join("dest");
    for bad in ["../../etc", "/../etc/passwd", "a/../../b"] {
        let r = restore(&engine, &store, id(&snap), &[bad], Overwrite::Always, &dest);
        assert!(matches!(r, Err(Error::InvalidInput(_))), "{bad}: {r:?}");
    }
    // An absolute include is a snapshot path: it lands inside the destination.
    let inc = format!("{}/a.txt", src.display());
    restore(&engine, &store, id(&snap), &[&inc], Overwrite::Always, &dest).unwrap();
    assert!(restored(&dest, &src).join("a.txt").exists());
}

#[test]
fn preexisting_symlinks_in_destination_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write(&src.join("dir/file.txt"), b"payload");
    let store = local_store(&tmp.path().join("repo"));
    let engine = Engine::new();
    let snap = backup(&engine, &store, &src, &[]);
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&outside).unwrap();

    // 1. A directory on the way is a symlink to outside.
    let dest = tmp.path().join("dest1");
    let base = restored(&dest, &src);
    fs::create_dir_all(&base).unwrap();
    symlink(&outside, base.join("dir")).unwrap();
    let r = restore(&engine, &store, id(&snap), &[], Overwrite::Always, &dest);
    assert!(matches!(r, Err(Error::RestoreRefused(_))), "{r:?}");
    assert!(fs::read_dir(&outside).unwrap().next().is_none(), "wrote outside the destination");

    // 2. The file itself is a symlink to a victim file outside.
    let victim = outside.join("victim");
    fs::write(&victim, b"precious").unwrap();
    let dest = tmp.path().join("dest2");
    let base = restored(&dest, &src);
    fs::create_dir_all(base.join("dir")).unwrap();
    symlink(&victim, base.join("dir/file.txt")).unwrap();
    for policy in [Overwrite::Always, Overwrite::IfChanged] {
        let r = restore(&engine, &store, id(&snap), &[], policy, &dest);
        assert!(matches!(r, Err(Error::RestoreRefused(_))), "{policy:?}: {r:?}");
    }
    // Never leaves the existing link alone and writes nothing through it.
    restore(&engine, &store, id(&snap), &[], Overwrite::Never, &dest).unwrap();
    assert_eq!(fs::read(&victim).unwrap(), b"precious");

    // 3. The top of the destination path is a symlink out.
    let dest = tmp.path().join("dest3");
    fs::create_dir_all(&dest).unwrap();
    let first = src.components().nth(1).unwrap();
    symlink(&outside, dest.join(first)).unwrap();
    let r = restore(&engine, &store, id(&snap), &[], Overwrite::Always, &dest);
    assert!(matches!(r, Err(Error::RestoreRefused(_))), "{r:?}");
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 1, "only the victim file is allowed outside");
}

#[test]
fn snapshot_symlinks_are_recreated_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("victim"), b"precious").unwrap();
    let store = local_store(&tmp.path().join("repo"));
    let engine = Engine::new();

    // Snapshot A: `escape` is a symlink pointing outside; `victim-link` points at a file outside.
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    symlink(&outside, src.join("escape")).unwrap();
    symlink(outside.join("victim"), src.join("victim-link")).unwrap();
    let a = backup(&engine, &store, &src, &["a"]);
    // Snapshot B (same path): `escape` is a real directory and `victim-link` a regular file.
    fs::remove_file(src.join("escape")).unwrap();
    fs::remove_file(src.join("victim-link")).unwrap();
    write(&src.join("escape/pwned.txt"), b"pwned");
    write(&src.join("victim-link"), b"overwritten");
    let b = backup(&engine, &store, &src, &["b"]);

    let dest = tmp.path().join("dest");
    restore(&engine, &store, id(&a), &[], Overwrite::Always, &dest).unwrap();
    let base = restored(&dest, &src);
    assert_eq!(fs::read_link(base.join("escape")).unwrap(), outside);
    assert!(fs::symlink_metadata(base.join("victim-link")).unwrap().file_type().is_symlink());
    assert_eq!(fs::read(outside.join("victim")).unwrap(), b"precious");

    // Restoring B over A's result would write through A's symlinks: refused.
    for policy in [Overwrite::Always, Overwrite::IfChanged] {
        let r = restore(&engine, &store, id(&b), &[], policy, &dest);
        assert!(matches!(r, Err(Error::RestoreRefused(_))), "{policy:?}: {r:?}");
    }
    assert!(!outside.join("pwned.txt").exists(), "restore followed a snapshot symlink");
    assert_eq!(fs::read(outside.join("victim")).unwrap(), b"precious");
    // Into a fresh destination B restores fine.
    let fresh = tmp.path().join("fresh");
    restore(&engine, &store, id(&b), &[], Overwrite::Always, &fresh).unwrap();
    assert_eq!(fs::read(restored(&fresh, &src).join("escape/pwned.txt")).unwrap(), b"pwned");
}
