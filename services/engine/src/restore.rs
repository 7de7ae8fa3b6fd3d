//! RESTORE: write (part of) a snapshot into a destination directory, never outside it.
//!
//! rustic_core's restore follows symlinks already present in the destination and trusts node
//! names from the repository, so this module validates the whole plan before writing a byte:
//!
//! - include paths are snapshot paths (`/home/x` and `home/x` are the same); `..` and other
//!   non-plain components are rejected;
//! - every node path must be made of plain components, equal its node's name, come in strict
//!   order, and sit directly below a directory node (a symlink or file node with children,
//!   as a crafted tree could have, is refused);
//! - every destination entry on the way must be a real directory: a pre-existing symlink where
//!   the snapshot has a file or directory is refused (it would be written through), and type
//!   conflicts are refused rather than guessed;
//! - the destination root is canonicalised once; symlinks inside the snapshot are recreated
//!   as symlinks after all file contents are written, and never followed.
//!
//! Files are restored in batches of bounded size so cancellation is honoured between batches
//! (rustic's restore has no cancellation and panics on read failures, so the backend is not
//! made to fail reads here). Directory metadata is applied last.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use rustic_core::repofile::{Node, SnapshotFile};
use rustic_core::{IndexedFull, LocalDestination, LsOptions, Repository};

use crate::cancel::{CancelToken, Guard};
use crate::error::Redactor;
use crate::progress::{Phase, Progress, Reporter};
use crate::snapshots::short_id;
use crate::store::{OpenOptions, open};
use crate::{Engine, Error, Store};

/// Which snapshot to restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotSel {
    /// A full id or a unique prefix of one (hex).
    Id(String),
    /// The newest snapshot carrying ALL of these tags (empty = newest of all).
    Latest {
        /// Required tags.
        tags: Vec<String>,
    },
}

/// What to do with files that already exist in the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overwrite {
    /// Existing files end up identical to the snapshot; their content is verified and only
    /// differing parts are rewritten.
    #[default]
    Always,
    /// Existing files with the snapshot's size and modification time are trusted and kept;
    /// others are rewritten.
    IfChanged,
    /// Existing files (and symlinks, special files) are left untouched.
    Never,
}

/// Options of one restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreOptions {
    /// The snapshot.
    pub snapshot: SnapshotSel,
    /// Snapshot paths to restore (with everything below them); empty = everything. Restored
    /// at their full snapshot path below the destination, like `restic restore --include`.
    pub include_paths: Vec<String>,
    /// Policy for existing files.
    pub overwrite: Overwrite,
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RestoreOutcome {
    /// Full id of the restored snapshot.
    pub snapshot_id: String,
    /// Files written (new or rewritten).
    pub files_restored: u64,
    /// Files already identical in the destination.
    pub files_unchanged: u64,
    /// Existing entries left alone because of [`Overwrite::Never`].
    pub skipped: u64,
    /// Directories in the restored set.
    pub dirs: u64,
    /// Symlinks and special files recreated.
    pub others: u64,
    /// Bytes of file content in the restored set.
    pub bytes_total: u64,
    /// Bytes actually written.
    pub bytes_written: u64,
    /// Wall time.
    pub duration: Duration,
}

/// Upper bound of content bytes restored between two cancellation checks.
const BATCH_BYTES: u64 = 256 << 20;
/// Upper bound of entries restored between two cancellation checks.
const BATCH_ENTRIES: usize = 20_000;

type Entry = (PathBuf, Node);

/// The validated work list.
#[derive(Default)]
struct Plan {
    dirs: Vec<Entry>,
    others: Vec<Entry>,
    remove_first: Vec<PathBuf>,
    skipped: u64,
    bytes_total: u64,
}

impl Engine {
    /// Restores a snapshot of `store` into `dest` (created when missing). Blocks.
    ///
    /// # Errors
    /// [`Error::RestoreRefused`] when the restore would escape `dest`, [`Error::InvalidInput`]
    /// for bad include paths, [`Error::NotFound`] for an unknown snapshot or include path,
    /// [`Error::Cancelled`], and store/repository/I/O errors.
    pub fn restore(
        &self,
        store: &Store,
        opts: &RestoreOptions,
        dest: &Path,
        progress: &dyn Progress,
        cancel: &CancelToken,
    ) -> Result<RestoreOutcome, Error> {
        let includes = normalize_includes(&opts.include_paths)?;
        if let SnapshotSel::Id(id) = &opts.snapshot
            && (id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(Error::InvalidInput(format!("snapshot id `{id}` is not a hex id or prefix")));
        }
        Reporter::run(progress, |reporter| self.restore_inner(store, opts, &includes, dest, reporter, cancel))
    }

    fn restore_inner(
        &self,
        store: &Store,
        opts: &RestoreOptions,
        includes: &[PathBuf],
        dest: &Path,
        reporter: &Reporter,
        cancel: &CancelToken,
    ) -> Result<RestoreOutcome, Error> {
        let started = Instant::now();
        reporter.phase(Phase::Scanning);
        let dest = prepare_destination(dest)?;
        let guard = Guard::new(cancel);
        let opened = open(
            store,
            &OpenOptions { engine: self, guard, reporter, fail_reads: false, allow_create: false },
        )?;
        let redactor = opened.redactor.clone();
        let rustic = |e: Box<rustic_core::RusticError>| redactor.rustic(&e);
        cancel.check()?;
        let repo = opened.repo.to_indexed().map_err(rustic)?;
        cancel.check()?;
        let snap = select_snapshot(&repo, &opts.snapshot, &redactor)?;
        let snap_id = snap.id.to_hex().to_string();
        reporter.info(format!(
            "restoring snapshot {} ({}) into {}",
            short_id(&snap_id),
            snap.paths.iter().cloned().collect::<Vec<_>>().join(", "),
            dest.display()
        ));

        let root = repo.node_from_snapshot_and_path(&snap, "").map_err(rustic)?;
        let nodes = repo.ls(&root, &LsOptions::default()).map_err(rustic)?;
        let plan = build_plan(nodes, includes, &dest, opts.overwrite, cancel, &redactor)?;
        for path in &plan.remove_first {
            fs::remove_file(path).map_err(|e| redactor.io("removing stale entry", &e))?;
        }
        cancel.check()?;

        let local = LocalDestination::new(&dest.to_string_lossy(), false, false).map_err(rustic)?;
        let ropts =
            rustic_core::RestoreOptions::default().verify_existing(opts.overwrite == Overwrite::Always);
        let mut outcome = RestoreOutcome {
            snapshot_id: snap_id,
            skipped: plan.skipped,
            dirs: plan.dirs.len() as u64,
            bytes_total: plan.bytes_total,
            ..RestoreOutcome::default()
        };

        reporter.phase(Phase::Restoring);
        reporter.own_bytes_total(plan.bytes_total);
        let file_count = plan.others.iter().filter(|(_, n)| n.is_file()).count() as u64;
        reporter.set_files_total(file_count);
        // Directories first (rustic creates missing ones while planning).
        run_rustic(|| repo.prepare_restore(&ropts, ok_iter(&plan.dirs), &local, false))
            .map_err(|e| into_error(e, &redactor))?;

        for batch in batches(&plan.others) {
            cancel.check()?;
            if let Some((path, _)) = batch.first() {
                reporter.set_current_path(path);
            }
            let restore = repo_restore(&repo, &ropts, batch, &local);
            let stats = restore.map_err(|e| into_error(e, &redactor))?;
            outcome.files_restored += stats.files.restore + stats.files.modify;
            outcome.files_unchanged += stats.files.unchanged + stats.files.verified;
            outcome.bytes_written += stats.written;
            outcome.others += batch.iter().filter(|(_, n)| !n.is_file()).count() as u64;
            reporter.add_files(batch.iter().filter(|(_, n)| n.is_file()).count() as u64);
        }

        cancel.check()?;
        // Directory metadata last, so writing files does not disturb their times.
        repo_restore(&repo, &ropts, &plan.dirs, &local).map_err(|e| into_error(e, &redactor))?;
        outcome.duration = started.elapsed();
        reporter.info(format!(
            "restored {} files ({} unchanged, {} skipped), {} dirs, {} other entries; {} of {} bytes written in {:.1}s",
            outcome.files_restored,
            outcome.files_unchanged,
            outcome.skipped,
            outcome.dirs,
            outcome.others,
            outcome.bytes_written,
            outcome.bytes_total,
            outcome.duration.as_secs_f64()
        ));
        Ok(outcome)
    }
}

fn ok_iter(entries: &[Entry]) -> impl Iterator<Item = rustic_core::RusticResult<Entry>> + '_ {
    entries.iter().cloned().map(Ok)
}

struct BatchStats {
    files: rustic_core::FileDirStats,
    written: u64,
}

/// Plans and restores one sorted batch of entries.
fn repo_restore<S: IndexedFull>(
    repo: &Repository<S>,
    ropts: &rustic_core::RestoreOptions,
    batch: &[Entry],
    local: &LocalDestination,
) -> Result<BatchStats, Failure> {
    let plan = run_rustic(|| repo.prepare_restore(ropts, ok_iter(batch), local, false))?;
    let stats =
        BatchStats { files: plan.stats.files, written: plan.restore_size.saturating_sub(plan.matched_size) };
    run_rustic(|| repo.restore(plan, ropts, ok_iter(batch), local))?;
    Ok(stats)
}

enum Failure {
    Rustic(Box<rustic_core::RusticError>),
    Panic(String),
}

/// rustic's restore unwraps I/O results internally (e.g. disk full): keep a panic there from
/// taking the worker down and report it as an I/O failure.
fn run_rustic<T>(f: impl FnOnce() -> rustic_core::RusticResult<T>) -> Result<T, Failure> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Failure::Rustic(e)),
        Err(panic) => {
            let text = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(Failure::Panic(text))
        }
    }
}

fn into_error(f: Failure, redactor: &Redactor) -> Error {
    match f {
        Failure::Rustic(e) => redactor.rustic(&e),
        Failure::Panic(text) => {
            Error::Io(redactor.clean(&format!("restore aborted while writing the destination: {text}")))
        }
    }
}

fn batches(entries: &[Entry]) -> Vec<&[Entry]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0_u64);
    for (i, (_, node)) in entries.iter().enumerate() {
        if node.is_file() {
            bytes += node.meta.size;
        }
        if bytes >= BATCH_BYTES || i + 1 - start >= BATCH_ENTRIES {
            out.push(&entries[start..=i]);
            start = i + 1;
            bytes = 0;
        }
    }
    if start < entries.len() {
        out.push(&entries[start..]);
    }
    out
}

/// Creates `dest` when missing and returns its canonical path; it must be a directory.
fn prepare_destination(dest: &Path) -> Result<PathBuf, Error> {
    if dest.as_os_str().is_empty() {
        return Err(Error::InvalidInput("destination path is empty".into()));
    }
    fs::create_dir_all(dest)
        .map_err(|e| Error::Io(format!("creating destination {}: {e}", dest.display())))?;
    let canonical = fs::canonicalize(dest)
        .map_err(|e| Error::Io(format!("resolving destination {}: {e}", dest.display())))?;
    if !canonical.is_dir() {
        return Err(Error::InvalidInput(format!("destination {} is not a directory", dest.display())));
    }
    if canonical.to_str().is_none() {
        return Err(Error::InvalidInput("destination path is not valid UTF-8".into()));
    }
    Ok(canonical)
}

/// Turns include paths into relative snapshot paths; rejects anything but plain components.
pub(crate) fn normalize_includes(includes: &[String]) -> Result<Vec<PathBuf>, Error> {
    includes
        .iter()
        .map(|inc| {
            let mut out = PathBuf::new();
            for c in Path::new(inc).components() {
                match c {
                    Component::RootDir | Component::CurDir => {}
                    Component::Normal(part) => out.push(part),
                    Component::ParentDir | Component::Prefix(_) => {
                        return Err(Error::InvalidInput(format!(
                            "include path `{inc}` must not contain `..`"
                        )));
                    }
                }
            }
            if out.as_os_str().is_empty() {
                return Err(Error::InvalidInput(format!(
                    "include path `{inc}` names no path (use an empty list to restore everything)"
                )));
            }
            Ok(out)
        })
        .collect()
}

fn select_snapshot<S: IndexedFull>(
    repo: &Repository<S>,
    sel: &SnapshotSel,
    redactor: &Redactor,
) -> Result<SnapshotFile, Error> {
    match sel {
        SnapshotSel::Id(id) => repo
            .get_snapshot_from_str(id, |_| true)
            .map_err(|e| Error::NotFound(format!("snapshot {id}: {}", redactor.clean(&e.display_log())))),
        SnapshotSel::Latest { tags } => {
            let snaps = repo
                .get_matching_snapshots(|sn| tags.iter().all(|t| sn.tags.contains(t)))
                .map_err(|e| redactor.rustic(&e))?;
            snaps
                .into_iter()
                .max_by(|a, b| a.time.cmp(&b.time))
                .ok_or_else(|| Error::NotFound(format!("no snapshot carries all tags {tags:?}")))
        }
    }
}

fn refuse(path: &Path, why: &str) -> Error {
    Error::RestoreRefused(format!("{}: {why}", path.display()))
}

/// Validates every node and the destination entries they would touch.
fn build_plan(
    nodes: impl Iterator<Item = rustic_core::RusticResult<Entry>>,
    includes: &[PathBuf],
    dest: &Path,
    overwrite: Overwrite,
    cancel: &CancelToken,
    redactor: &Redactor,
) -> Result<Plan, Error> {
    let mut plan = Plan::default();
    let mut dirs: HashSet<PathBuf> = HashSet::new();
    let mut matched = vec![false; includes.len()];
    let mut last: Option<PathBuf> = None;
    for (count, item) in nodes.enumerate() {
        if count % 1024 == 0 {
            cancel.check()?;
        }
        let (path, node) = item.map_err(|e| redactor.rustic(&e))?;
        validate_node_path(&path, &node)?;
        if last.as_ref().is_some_and(|l| path <= *l) {
            return Err(refuse(&path, "snapshot entries out of order or duplicated"));
        }
        last = Some(path.clone());
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
            && !dirs.contains(parent)
        {
            // Either filtered out by includes (then skip quietly) or a crafted tree.
            if includes.is_empty() {
                return Err(refuse(&path, "entry below something that is not a directory"));
            }
            continue;
        }
        if !includes.is_empty() {
            let mut keep = false;
            for (i, inc) in includes.iter().enumerate() {
                if path.starts_with(inc) {
                    matched[i] = true;
                    keep = true;
                } else if node.is_dir() && inc.starts_with(&path) {
                    keep = true;
                }
            }
            if !keep {
                continue;
            }
        }
        let target = dest.join(&path);
        let existing = match fs::symlink_metadata(&target) {
            Ok(meta) => Some(meta.file_type()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(redactor.io("inspecting destination", &e)),
        };
        let never = overwrite == Overwrite::Never;
        if node.is_dir() {
            match existing {
                None => {}
                Some(t) if t.is_dir() => {}
                Some(t) if t.is_symlink() => {
                    return Err(refuse(&path, "is a symbolic link in the destination"));
                }
                Some(_) => {
                    return Err(refuse(&path, "exists in the destination and is not a directory"));
                }
            }
            dirs.insert(path.clone());
            plan.dirs.push((path, node));
            continue;
        }
        match existing {
            None => {}
            Some(_) if never => {
                plan.skipped += 1;
                continue;
            }
            Some(t) if t.is_dir() => {
                return Err(refuse(&path, "is a directory in the destination"));
            }
            Some(t) if t.is_symlink() && node.is_file() => {
                return Err(refuse(&path, "is a symbolic link in the destination"));
            }
            // A file is rewritten in place; anything else is replaced (never followed).
            Some(t) if t.is_file() && node.is_file() => {}
            Some(_) => plan.remove_first.push(target),
        }
        if node.is_file() {
            plan.bytes_total += node.meta.size;
        }
        plan.others.push((path, node));
    }
    if let Some(i) = matched.iter().position(|m| !m) {
        return Err(Error::NotFound(format!(
            "include path `/{}` is not in the snapshot",
            includes[i].display()
        )));
    }
    Ok(plan)
}

fn validate_node_path(path: &Path, node: &Node) -> Result<(), Error> {
    if !path.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(refuse(path, "snapshot entry name is not a plain path"));
    }
    if path.file_name() != Some(node.name().as_ref()) {
        return Err(refuse(path, "snapshot entry name contains a path separator"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_paths_are_normalised_or_refused() {
        let ok = normalize_includes(&["/home/x".into(), "a/b/".into(), "./c".into()]).unwrap();
        assert_eq!(ok, vec![PathBuf::from("home/x"), PathBuf::from("a/b"), PathBuf::from("c")]);
        for bad in ["../etc", "/a/../../etc", "a/..", "/", ""] {
            assert!(normalize_includes(&[bad.to_string()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn batches_split_by_bytes() {
        use rustic_core::repofile::{Metadata, NodeType};
        let file = |name: &str, size: u64| {
            let meta = Metadata { size, ..Metadata::default() };
            (PathBuf::from(name), Node::new_node(std::ffi::OsStr::new(name), NodeType::File, meta))
        };
        let entries = vec![file("a", BATCH_BYTES), file("b", 1), file("c", 1), file("d", BATCH_BYTES)];
        let b = batches(&entries);
        assert_eq!(b.iter().map(|b| b.len()).collect::<Vec<_>>(), vec![1, 3]);
    }
}
