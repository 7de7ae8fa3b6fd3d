//! Browsing snapshots through JobService, compared with the stock restic CLI on the same
//! repository: directory listings (unicode names, symlinks, empty directories, a directory
//! of 10,000 entries, paged), diffs after a scripted sequence of changes, and file reads.

use std::{os::unix::fs::PermissionsExt as _, path::Path, process::Command, time::Instant};

use cairn_api::v1::{
    BackupOptions, DiffSnapshotsRequest, EntryType, ListAuditEventsRequest, ListSnapshotEntriesRequest,
    ReadSnapshotFileRequest, SnapshotEntry, Task, TaskType, audit_service_client::AuditServiceClient,
    read_snapshot_file_response::Part, task::Options as TaskOptions,
};
use tonic::Code;

use crate::harness::*;

const BIG_DIR: usize = 10_000;

fn build_tree(root: &Path) {
    let big = root.join("big");
    std::fs::create_dir_all(&big).unwrap();
    for i in 0..BIG_DIR {
        std::fs::write(big.join(format!("f{i:05}")), format!("{i}\n")).unwrap();
    }
    let uni = root.join("naïve café");
    std::fs::create_dir_all(&uni).unwrap();
    std::fs::write(uni.join("日本語.txt"), "こんにちは\n").unwrap();
    std::fs::write(uni.join("emoji-🎉.md"), "# party\n").unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::create_dir_all(root.join("nested-empty/inner")).unwrap();
    std::fs::write(root.join("README"), "first\n").unwrap();
    std::os::unix::fs::symlink("README", root.join("link-to-readme")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("dangling")).unwrap();
    std::os::unix::fs::symlink("naïve café", root.join("dir-link")).unwrap();
    std::fs::write(root.join("kind-change"), "a file, then a directory\n").unwrap();
    std::fs::write(root.join("chmod-me"), "same content\n").unwrap();
    std::fs::create_dir_all(root.join("removed-dir/sub")).unwrap();
    std::fs::write(root.join("removed-dir/sub/gone.txt"), "bye\n").unwrap();
    let blob: Vec<u8> = (0..3_000_000_u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(root.join("blob.bin"), blob).unwrap();
    std::fs::write(root.join("too-big.bin"), vec![7_u8; 5 << 20]).unwrap();
}

/// The scripted changes between the two snapshots.
fn change_tree(root: &Path) {
    std::fs::write(root.join("README"), "second, longer\n").unwrap();
    std::fs::write(root.join("new-file.txt"), "new\n").unwrap();
    std::fs::create_dir_all(root.join("new-dir/sub")).unwrap();
    std::fs::write(root.join("new-dir/sub/file"), "deep\n").unwrap();
    std::fs::remove_file(root.join("big/f00017")).unwrap();
    std::fs::write(root.join("big/f00042"), "changed\n").unwrap();
    std::fs::remove_dir_all(root.join("removed-dir")).unwrap();
    std::fs::remove_file(root.join("kind-change")).unwrap();
    std::fs::create_dir_all(root.join("kind-change")).unwrap();
    std::fs::write(root.join("kind-change/child"), "inside\n").unwrap();
    std::fs::set_permissions(root.join("chmod-me"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::remove_dir(root.join("empty")).unwrap();
}

fn restic_json(repo: &Path, args: &[&str]) -> Vec<serde_json::Value> {
    let restic = restic().expect("restic");
    let out = Command::new(restic)
        .args(["-r", repo.to_str().unwrap(), "--no-cache", "--json"])
        .args(args)
        .env("RESTIC_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(out.status.success(), "restic {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// What restic's `ls` shows of one entry, in the fields both sides have.
fn restic_view(v: &serde_json::Value) -> String {
    let mtime = chrono::DateTime::parse_from_rfc3339(v["mtime"].as_str().unwrap()).unwrap().to_utc();
    let size = if v["type"] == "file" { v["size"].as_u64().unwrap_or(0) } else { 0 };
    format!(
        "{} {} {} size={size} mode={} uid={} gid={} mtime={}",
        v["type"].as_str().unwrap(),
        v["path"].as_str().unwrap(),
        v["name"].as_str().unwrap(),
        v["mode"],
        v["uid"],
        v["gid"],
        mtime.timestamp_nanos_opt().unwrap()
    )
}

fn our_view(e: &SnapshotEntry) -> String {
    let kind = match e.r#type() {
        EntryType::File => "file",
        EntryType::Dir => "dir",
        EntryType::Symlink => "symlink",
        other => other.as_str_name(),
    };
    let t = e.mtime.unwrap();
    let nanos = t.seconds * 1_000_000_000 + i64::from(t.nanos);
    format!(
        "{kind} {} {} size={} mode={} uid={} gid={} mtime={nanos}",
        e.path, e.name, e.size, e.mode, e.uid, e.gid
    )
}

impl Stack {
    /// Every entry of one directory, page by page.
    async fn ls_all(&mut self, snapshot: &str, path: &str, page_size: i32) -> (Vec<SnapshotEntry>, usize) {
        let mut req = ListSnapshotEntriesRequest {
            parent: DEFAULT.into(),
            store: "nas".into(),
            snapshot: snapshot.into(),
            path: path.into(),
            page_size,
            ..Default::default()
        };
        let (mut out, mut pages) = (Vec::new(), 0);
        loop {
            let page = self.jobs.list_snapshot_entries(req.clone()).await.unwrap().into_inner();
            pages += 1;
            out.extend(page.entries);
            if page.next_page_token.is_empty() {
                assert_eq!(page.total_size as usize, out.len(), "total_size of {path}");
                return (out, pages);
            }
            req.page_token = page.next_page_token;
        }
    }

    async fn read(
        &mut self,
        snapshot: &str,
        path: &str,
    ) -> Result<(SnapshotEntry, Vec<u8>, usize), tonic::Status> {
        let req = ReadSnapshotFileRequest {
            parent: DEFAULT.into(),
            store: "nas".into(),
            snapshot: snapshot.into(),
            path: path.into(),
            ..Default::default()
        };
        let mut stream = self.jobs.read_snapshot_file(req).await?.into_inner();
        let (mut entry, mut data, mut chunks) = (None, Vec::new(), 0);
        while let Some(m) = stream.message().await? {
            match m.part {
                Some(Part::Entry(e)) => entry = Some(e),
                Some(Part::Data(d)) => {
                    assert!(d.len() <= 256 * 1024, "a chunk of {} bytes", d.len());
                    chunks += 1;
                    data.extend(d);
                }
                None => {}
            }
        }
        Ok((entry.expect("the entry comes first"), data, chunks))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsing_a_snapshot_agrees_with_restic_ls_diff_and_the_original_bytes() {
    let Some(_) = restic() else {
        eprintln!("SKIP snapshot browsing: restic is not on PATH");
        return;
    };
    let mut s = stack_with(Options { snapshot_read_max_bytes: 4 << 20, ..Options::default() }).await;
    s.worker("w1", "");
    let src = s.path("tree");
    build_tree(&src);
    s.path_source("tree", &src).await;
    let (_, repo) = s.local_store("nas").await;
    s.task(Task {
        display_name: "backup".into(),
        r#type: TaskType::Backup as i32,
        source: "tree".into(),
        store: "nas".into(),
        options: Some(TaskOptions::Backup(BackupOptions::default())),
        ..Default::default()
    })
    .await;
    let a = s.run_ok("backup").await.snapshot;
    let root = src.display().to_string();

    // Listings: exactly restic's, directory by directory (restic prints the directory itself
    // and its entries; the entries are compared).
    let opens_before = cairn_engine::repository_opens();
    let t = Instant::now();
    let (big, pages) = s.ls_all(&a[..8], &format!("{root}/big"), 1000).await;
    let first = t.elapsed();
    assert_eq!(big.len(), BIG_DIR);
    assert_eq!(pages, 10, "10,000 entries in pages of 1,000");
    for dir in [
        root.clone(),
        format!("{root}/big"),
        format!("{root}/naïve café"),
        format!("{root}/empty"),
        format!("{root}/nested-empty"),
    ] {
        let (ours, _) = s.ls_all(&a, &dir, 0).await;
        let theirs: Vec<String> = restic_json(&repo, &["ls", &a, &dir])
            .iter()
            .filter(|v| v["struct_type"] == "node" && v["path"] != dir.as_str())
            .map(restic_view)
            .collect();
        let ours: Vec<String> = ours.iter().map(our_view).collect();
        assert_eq!(ours, theirs, "listing of {dir}");
    }
    let (top, _) = s.ls_all(&a, &root, 0).await;
    let link = top.iter().find(|e| e.name == "link-to-readme").unwrap();
    assert_eq!((link.r#type(), link.link_target.as_str()), (EntryType::Symlink, "README"));
    let dangling = top.iter().find(|e| e.name == "dangling").unwrap();
    assert_eq!(dangling.link_target, "/nonexistent/target");
    let (empty, _) = s.ls_all(&a, &format!("{root}/empty"), 0).await;
    assert!(empty.is_empty());

    // The worker kept the repository open: the same directory again opens nothing.
    let opened = cairn_engine::repository_opens() - opens_before;
    assert_eq!(opened, 1, "one open for the whole browse");
    let t = Instant::now();
    let (again, _) = s.ls_all(&a[..8], &format!("{root}/big"), 1000).await;
    let second = t.elapsed();
    assert_eq!(again, big);
    assert_eq!(
        cairn_engine::repository_opens() - opens_before,
        1,
        "the second listing reopened the repository"
    );
    eprintln!(
        "BENCH browse: 10,000 entries in 10 pages: first listing (opens the repository) {:.0} ms, again {:.0} ms",
        first.as_secs_f64() * 1e3,
        second.as_secs_f64() * 1e3
    );

    // Errors name what is wrong and change nothing.
    let bad = |path: &str| ListSnapshotEntriesRequest {
        parent: DEFAULT.into(),
        store: "nas".into(),
        snapshot: a.clone(),
        path: path.into(),
        ..Default::default()
    };
    let e = s.jobs.list_snapshot_entries(bad(&format!("{root}/README"))).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    let e = s.jobs.list_snapshot_entries(bad(&format!("{root}/no-such-dir"))).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let e = s.jobs.list_snapshot_entries(bad("relative/path")).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(cairn_runtime::status::fields_of(&e), vec!["path"]);
    let e = s
        .jobs
        .list_snapshot_entries(ListSnapshotEntriesRequest { snapshot: "deadbeefdeadbeef".into(), ..bad("/") })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let e = s
        .jobs
        .list_snapshot_entries(ListSnapshotEntriesRequest { store: "tree".into(), ..bad("/") })
        .await
        .unwrap_err();
    assert_eq!(cairn_runtime::status::fields_of(&e), vec!["store"], "a source is not a store: {e:?}");

    // Files: byte-identical, in bounded chunks, under the cap, audited.
    let (entry, data, chunks) = s.read(&a, &format!("{root}/blob.bin")).await.unwrap();
    assert_eq!(entry.size, 3_000_000);
    assert!(data == std::fs::read(src.join("blob.bin")).unwrap(), "blob.bin differs");
    assert!(chunks >= 12, "3 MB in chunks of at most 256 KiB: {chunks}");
    let (_, data, _) = s.read(&a, &format!("{root}/naïve café/日本語.txt")).await.unwrap();
    assert_eq!(data, "こんにちは\n".as_bytes());
    let e = s.read(&a, &format!("{root}/too-big.bin")).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("5242880 bytes, over the limit of 4194304"), "{}", e.message());
    let e = s.read(&a, &format!("{root}/big")).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    let audit = AuditServiceClient::new(authed(&s.catalog_url))
        .list_audit_events(ListAuditEventsRequest {
            parent: DEFAULT.into(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        audit.events.iter().any(|e| e.method.ends_with("/ReadSnapshotFile")
            && e.detail.contains("blob.bin")
            && e.resource.ends_with(&format!("/snapshots/{a}"))),
        "reads are audited"
    );

    // Diffs: exactly restic's after the scripted changes.
    change_tree(&src);
    let b = s.run_ok("backup").await.snapshot;
    let mut req = DiffSnapshotsRequest {
        parent: DEFAULT.into(),
        store: "nas".into(),
        snapshot_a: a.clone(),
        snapshot_b: b.clone(),
        page_size: 3,
        ..Default::default()
    };
    let mut ours = Vec::new();
    let mut counts;
    loop {
        let page = s.jobs.diff_snapshots(req.clone()).await.unwrap().into_inner();
        counts = Some((page.added, page.removed, page.modified, page.total_size));
        ours.extend(page.changes.iter().map(|c| format!("{} {}", c.modifier, c.path)));
        if page.next_page_token.is_empty() {
            break;
        }
        req.page_token = page.next_page_token;
    }
    let theirs: Vec<String> = restic_json(&repo, &["diff", &a, &b])
        .iter()
        .filter(|v| v["message_type"] == "change")
        .map(|v| format!("{} {}", v["modifier"].as_str().unwrap(), v["path"].as_str().unwrap()))
        .collect();
    assert_eq!(ours, theirs, "diff of {a} → {b}");
    let (added, removed, modified, total) = counts.unwrap();
    assert_eq!(total as usize, ours.len());
    assert_eq!((added + removed + modified) as usize, ours.len());
    assert!(ours.contains(&format!("T {root}/kind-change/")), "{ours:#?}");
    assert!(ours.contains(&format!("- {root}/removed-dir/sub/gone.txt")), "{ours:#?}");
    assert!(!ours.iter().any(|c| c.ends_with("/chmod-me")), "a metadata change is not shown by default");
    // With metadata, the chmod shows as U.
    let meta = s
        .jobs
        .diff_snapshots(DiffSnapshotsRequest {
            metadata: true,
            page_size: 1000,
            page_token: String::new(),
            ..req.clone()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        meta.changes.iter().any(|c| c.modifier == "U" && c.path == format!("{root}/chmod-me")),
        "{meta:#?}"
    );
    // A page token is bound to its diff.
    let e = s
        .jobs
        .diff_snapshots(DiffSnapshotsRequest { snapshot_b: a.clone(), ..req.clone() })
        .await
        .unwrap_err();
    assert_eq!(cairn_runtime::status::fields_of(&e), vec!["page_token"]);
    // The diff re-read the index for the new snapshot's trees; browsing it opens nothing more.
    assert_eq!(cairn_engine::repository_opens() - opens_before, 2);
    let (top_b, _) = s.ls_all(&b, &root, 0).await;
    assert!(top_b.iter().any(|e| e.name == "new-file.txt"));
    assert_eq!(cairn_engine::repository_opens() - opens_before, 2);
}
