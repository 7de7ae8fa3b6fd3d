//! BACKUP: read a [`Source`], write a snapshot into a [`Store`].
//!
//! The parent snapshot (INCREMENTAL mode) is chosen here, not by rustic: the latest snapshot
//! with the same host, the same set of paths and the same set of tags. FULL mode uses no
//! parent and re-reads every file. Tags are stored verbatim (`cairn-task=<id>` included), so
//! `restic snapshots --tag cairn-task=<id>` finds them.
//!
//! Cancellation and command failures stop the source and make the final snapshot write fail,
//! so an unsuccessful backup never leaves a snapshot behind.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rustic_core::repofile::SnapshotFile;
use rustic_core::{
    Excludes, LocalSource, LocalSourceFilterOptions, LocalSourceSaveOptions, ParentOptions, PathList,
    SnapshotOptions, StringList,
};

use crate::cancel::{CancelToken, Guard};
use crate::progress::Level;
use crate::progress::{Phase, Progress, Reporter};
use crate::readahead::ReadAhead;
use crate::snapshots::{SnapshotStats, short_id, to_chrono};
use crate::source::{CommandSource, GuardedSource};
use crate::store::{Archiver, OpenOptions, Opened, open};
use crate::{Engine, Error, Source, Store};

/// Options of one backup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupOptions {
    /// Snapshot tags: the task's labels plus `cairn-task=<task id>`. No commas.
    pub tags: Vec<String>,
    /// Host name recorded in the snapshot; `None` uses the machine's host name.
    pub host: Option<String>,
    /// FULL: no parent, every file is read again. Otherwise INCREMENTAL (parent-based).
    pub full: bool,
    /// Parallelism (threads for rustic's rayon work); 0 = the engine's default.
    pub concurrency: usize,
}

/// What a successful backup produced.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupOutcome {
    /// Full hex id of the new snapshot.
    pub snapshot_id: String,
    /// Full hex id of the parent snapshot, if one was used.
    pub parent: Option<String>,
    /// Snapshot time.
    pub time: chrono::DateTime<chrono::Utc>,
    /// File, directory and byte counts.
    pub stats: SnapshotStats,
    /// Wall time of the whole operation (open, index, backup, commit).
    pub duration: Duration,
}

pub(crate) fn validate_tags(tags: &[String]) -> Result<(), Error> {
    for tag in tags {
        if tag.is_empty() || tag.contains(',') || tag.trim() != tag {
            return Err(Error::InvalidInput(format!(
                "tag `{tag}` is empty, has surrounding spaces or contains a comma"
            )));
        }
    }
    Ok(())
}

/// A rustic tag list holding exactly `tags` (rustic's own parser would split on commas).
pub(crate) fn string_list(tags: &[String]) -> StringList {
    let mut list = StringList::default();
    for tag in tags {
        list.add(tag.clone());
    }
    list
}

fn set_of(list: &StringList) -> BTreeSet<String> {
    list.iter().cloned().collect()
}

pub(crate) fn with_pool<T>(
    concurrency: usize,
    f: impl FnOnce() -> Result<T, Error> + Send,
) -> Result<T, Error>
where
    T: Send,
{
    if concurrency == 0 {
        return f();
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(concurrency)
        .build()
        .map_err(|e| Error::Internal(format!("thread pool: {e}")))?;
    pool.install(f)
}

impl Engine {
    /// Backs up `source` into `store`. Blocks; run it on a dedicated thread.
    ///
    /// # Errors
    /// [`Error::Cancelled`] when `cancel` fired (no snapshot written),
    /// [`Error::CommandFailed`] for a failing command source (no snapshot written), and the
    /// store/repository errors of [`Error`].
    pub fn backup(
        &self,
        source: &Source,
        store: &Store,
        opts: &BackupOptions,
        progress: &dyn Progress,
        cancel: &CancelToken,
    ) -> Result<BackupOutcome, Error> {
        source.validate()?;
        validate_tags(&opts.tags)?;
        Reporter::run(progress, |reporter| {
            with_pool(opts.concurrency, || self.backup_inner(source, store, opts, reporter, cancel))
        })
    }

    fn backup_inner(
        &self,
        source: &Source,
        store: &Store,
        opts: &BackupOptions,
        reporter: &Reporter,
        cancel: &CancelToken,
    ) -> Result<BackupOutcome, Error> {
        let started = Instant::now();
        reporter.phase(Phase::Scanning);
        reporter.info(format!(
            "backup of {} into {} ({} mode)",
            describe_source(source),
            store.describe(),
            if opts.full { "FULL" } else { "INCREMENTAL" }
        ));
        let guard = Guard::new(cancel);
        let opened = open(
            store,
            &OpenOptions {
                engine: self,
                guard: guard.clone(),
                reporter,
                fail_reads: true,
                allow_create: true,
            },
        )
        .map_err(|e| guard.stop_reason().unwrap_or(e))?;
        let redactor = opened.redactor.clone();
        let rustic = |e: Box<rustic_core::RusticError>| redactor.rustic(&e);
        cancel.check()?;

        let mut snap_opts = SnapshotOptions::default().command("cairn backup".to_string());
        if let Some(host) = &opts.host {
            snap_opts = snap_opts.host(host.clone());
        }
        let mut snap = snap_opts.to_snapshot().map_err(rustic)?;
        snap.tags = string_list(&opts.tags);

        let (paths, command) = match source {
            Source::LocalPath { paths, .. } => {
                let list = PathList::from_iter(paths.iter().cloned())
                    .sanitize()
                    .map_err(|e| Error::InvalidInput(format!("source.paths: {e}")))?;
                (list.paths(), None)
            }
            Source::Command { argv, file_name } => {
                let cmd = CommandSource::spawn(argv, file_name, guard.clone())?;
                (vec![cmd.path().to_path_buf()], Some(cmd))
            }
        };

        let parent = if opts.full || command.is_some() {
            None
        } else {
            find_parent(&opened.repo, &snap, &paths).map_err(rustic)?
        };
        match &parent {
            Some(p) => reporter.info(format!(
                "using parent snapshot {} of {}",
                short_id(&p.id.to_hex()),
                to_chrono(&p.time).to_rfc3339()
            )),
            None if opts.full => reporter.info("FULL mode: no parent, reading every file"),
            None => reporter.info("no parent snapshot: reading every file"),
        }
        let threads = if opts.concurrency > 0 {
            opts.concurrency
        } else {
            std::thread::available_parallelism().map_or(2, |n| n.get().max(2))
        };
        let writer = match self.archiver {
            Archiver::Cairn => {
                reporter.log(Level::Debug, format!("cairn archiver, {threads} workers"));
                Writer::Cairn { opened, guard: &guard, reporter, threads, parent: parent.as_ref() }
            }
            Archiver::Rustic => {
                let repo = opened
                    .repo
                    .to_indexed_ids()
                    .map_err(|e| guard.stop_reason().unwrap_or_else(|| rustic(e)))?;
                let parent_opts = ParentOptions::default()
                    .force(parent.is_none())
                    .parents(parent.as_ref().map(|p| vec![p.id.to_hex().to_string()]).unwrap_or_default());
                Writer::Rustic { repo, opts: rustic_core::BackupOptions::default().parent_opts(parent_opts) }
            }
        };
        cancel.check()?;

        reporter.phase(Phase::BackingUp);
        let stop = |e: Error| guard.stop_reason().unwrap_or(e);
        let result = match (source, command) {
            (_, Some(cmd)) => {
                let src = GuardedSource::new(cmd.clone(), guard.clone(), reporter.clone()).without_scan();
                let result = writer.write(&src, snap, &paths, false, &redactor);
                // `finish` joins the stderr reader, so its error carries the complete tail.
                let failure = cmd.finish().map(|f| if cancel.is_cancelled() { Error::Cancelled } else { f });
                match (result, failure) {
                    (Ok(snap), Some(failure)) => {
                        // The command failed after its output was complete: undo the snapshot.
                        writer.delete(snap.id);
                        Err(failure)
                    }
                    (Err(_), Some(failure)) => Err(failure),
                    (result, None) => result.map_err(stop),
                }
            }
            (
                Source::LocalPath {
                    include_globs, exclude_globs, exclude_if_present, one_file_system, ..
                },
                None,
            ) => {
                let mut globs = include_globs.clone();
                globs.extend(exclude_globs.iter().map(|g| format!("!{g}")));
                let excludes = Excludes::default().globs(globs);
                let filter = LocalSourceFilterOptions::default()
                    .exclude_if_present(exclude_if_present.clone())
                    .one_file_system(*one_file_system);
                let local = LocalSource::new(LocalSourceSaveOptions::default(), &excludes, &filter, &paths)
                    .map_err(|e| Error::InvalidInput(redactor.clean(&e.display_log())))?;
                let src = GuardedSource::new(local, guard.clone(), reporter.clone());
                // Read-ahead pays off when rustic reads files (one at a time); with a parent most
                // files are unchanged and never opened, and the cairn archiver reads in parallel.
                if parent.is_none() && matches!(writer, Writer::Rustic { .. }) {
                    writer.write(&ReadAhead::new(src, threads, guard.clone()), snap, &paths, true, &redactor)
                } else {
                    writer.write(&src, snap, &paths, true, &redactor)
                }
                .map_err(stop)
            }
            (Source::Command { .. }, None) => Err(Error::Internal("command source without a process".into())),
        };
        // A cancel racing with the commit: if the snapshot was written, it stands.
        let snap = result?;
        let stats = snap.summary.as_ref().map(SnapshotStats::from_summary).unwrap_or_default();
        let outcome = BackupOutcome {
            snapshot_id: snap.id.to_hex().to_string(),
            parent: snap.parent.map(|p| p.to_hex().to_string()),
            time: to_chrono(&snap.time),
            stats,
            duration: started.elapsed(),
        };
        reporter.info(format!(
            "snapshot {} saved: files new {}, changed {}, unmodified {}; dirs new {}, changed {}, unmodified {}; {} bytes processed, {} bytes added ({} stored) in {:.1}s",
            short_id(&outcome.snapshot_id),
            outcome.stats.files_new,
            outcome.stats.files_changed,
            outcome.stats.files_unmodified,
            outcome.stats.dirs_new,
            outcome.stats.dirs_changed,
            outcome.stats.dirs_unmodified,
            outcome.stats.bytes_processed,
            outcome.stats.bytes_added,
            outcome.stats.bytes_added_packed,
            outcome.duration.as_secs_f64()
        ));
        Ok(outcome)
    }
}

/// Where a backup's snapshot is written: by rustic's archiver or by Cairn's. One lives per
/// backup, on the stack, so the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Writer<'a> {
    Rustic {
        repo: rustic_core::Repository<rustic_core::IndexedIdsStatus>,
        opts: rustic_core::BackupOptions,
    },
    Cairn {
        opened: Opened,
        guard: &'a std::sync::Arc<crate::cancel::Guard>,
        reporter: &'a Reporter,
        threads: usize,
        parent: Option<&'a SnapshotFile>,
    },
}

impl Writer<'_> {
    /// Removes a snapshot written after all (its command failed late).
    fn delete(&self, id: rustic_core::repofile::SnapshotId) {
        let _ = match self {
            Self::Rustic { repo, .. } => repo.delete_snapshots(&[id]),
            Self::Cairn { opened, .. } => opened.repo.delete_snapshots(&[id]),
        };
    }

    fn write<S>(
        &self,
        src: &S,
        snap: SnapshotFile,
        paths: &[PathBuf],
        scan: bool,
        redactor: &crate::error::Redactor,
    ) -> Result<SnapshotFile, Error>
    where
        S: rustic_core::ReadSource + 'static,
        S::Open: Send + 'static,
        S::Iter: Send,
    {
        match self {
            Self::Rustic { repo, opts } => {
                repo.archive(opts, src, snap, paths).map_err(|e| redactor.rustic(&e))
            }
            Self::Cairn { opened, guard, reporter, threads, parent } => {
                let target = crate::archive::Target {
                    repo: &opened.repo,
                    guarded: opened.guarded.clone(),
                    raw: opened.raw.clone(),
                    redactor,
                    reporter,
                    guard,
                    threads: *threads,
                };
                crate::archive::backup(&target, src, snap, paths, *parent, scan)
            }
        }
    }
}

fn describe_source(source: &Source) -> String {
    match source {
        Source::LocalPath { paths, .. } => {
            paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        }
        Source::Command { argv, file_name } => {
            format!("command `{}` as {file_name}", argv.first().map_or("", String::as_str))
        }
    }
}

/// The latest snapshot with the same host, paths and tags.
fn find_parent<S: rustic_core::Open>(
    repo: &rustic_core::Repository<S>,
    snap: &SnapshotFile,
    paths: &[PathBuf],
) -> rustic_core::RusticResult<Option<SnapshotFile>> {
    let want_paths: BTreeSet<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let want_tags = set_of(&snap.tags);
    let candidates = repo.get_matching_snapshots(|sn| {
        sn.hostname == snap.hostname && set_of(&sn.paths) == want_paths && set_of(&sn.tags) == want_tags
    })?;
    Ok(candidates.into_iter().max_by(|a, b| a.time.cmp(&b.time)))
}
