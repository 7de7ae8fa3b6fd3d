//! Snapshots as the engine shows them: listing, selection filters (tags, window) and FORGET.
//!
//! [`SnapshotInfo`] is the plain view the scheduler indexes; [`SnapshotFilter`] is the one
//! rule used by SYNC and CHECK to pick snapshots ("carries ALL these tags, created within the
//! window before now"). FORGET only removes snapshot files; space comes back with PRUNE.

use std::collections::BTreeSet;
use std::time::Duration;

use rustic_core::jiff::{Timestamp, Zoned};
use rustic_core::repofile::{SnapshotFile, SnapshotId, SnapshotSummary};

use crate::cancel::{CancelToken, Guard};
use crate::progress::{Phase, Progress, Reporter};
use crate::store::{OpenOptions, open};
use crate::{Engine, Error, Store};

/// Counts recorded in a snapshot's summary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SnapshotStats {
    /// Files not present in the parent.
    pub files_new: u64,
    /// Files present in the parent but changed.
    pub files_changed: u64,
    /// Files identical to the parent (not re-read).
    pub files_unmodified: u64,
    /// All files in the snapshot.
    pub files_total: u64,
    /// Directories not present in the parent.
    pub dirs_new: u64,
    /// Directories changed.
    pub dirs_changed: u64,
    /// Directories unchanged.
    pub dirs_unmodified: u64,
    /// Size of all files in the snapshot.
    pub bytes_processed: u64,
    /// Uncompressed bytes of new blobs (data and trees) added to the repository.
    pub bytes_added: u64,
    /// Bytes actually stored for the new blobs (after compression and encryption).
    pub bytes_added_packed: u64,
    /// Backup duration in seconds, as recorded by the engine that made the snapshot.
    pub duration_secs: f64,
}

impl SnapshotStats {
    pub(crate) fn from_summary(s: &SnapshotSummary) -> Self {
        Self {
            files_new: s.files_new,
            files_changed: s.files_changed,
            files_unmodified: s.files_unmodified,
            files_total: s.total_files_processed,
            dirs_new: s.dirs_new,
            dirs_changed: s.dirs_changed,
            dirs_unmodified: s.dirs_unmodified,
            bytes_processed: s.total_bytes_processed,
            bytes_added: s.data_added,
            bytes_added_packed: s.data_added_packed,
            duration_secs: s.backup_duration,
        }
    }
}

/// One snapshot of a repository.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotInfo {
    /// Full hex id.
    pub id: String,
    /// Creation time.
    pub time: chrono::DateTime<chrono::Utc>,
    /// Tags (labels and `cairn-task=<id>`).
    pub tags: Vec<String>,
    /// Backed-up paths.
    pub paths: Vec<String>,
    /// Host that made it.
    pub hostname: String,
    /// Parent snapshot id, if any.
    pub parent: Option<String>,
    /// Id of the snapshot this one was copied from (SYNC), if any.
    pub original: Option<String>,
    /// Summary statistics, when the snapshot has them.
    pub summary: Option<SnapshotStats>,
}

impl SnapshotInfo {
    pub(crate) fn from_file(sn: &SnapshotFile) -> Self {
        Self {
            id: sn.id.to_hex().to_string(),
            time: to_chrono(&sn.time),
            tags: sn.tags.iter().cloned().collect(),
            paths: sn.paths.iter().cloned().collect(),
            hostname: sn.hostname.clone(),
            parent: sn.parent.map(|p| p.to_hex().to_string()),
            original: sn.original.map(|p| p.to_hex().to_string()),
            summary: sn.summary.as_ref().map(SnapshotStats::from_summary),
        }
    }
}

/// Which snapshots an operation considers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotFilter {
    /// A snapshot must carry ALL of these tags (empty = any snapshot).
    pub tags: Vec<String>,
    /// Only snapshots created within this duration before now (`None` = all).
    pub window: Option<Duration>,
}

impl SnapshotFilter {
    /// Compiles the filter against the current time.
    pub(crate) fn matcher(&self) -> Result<impl Fn(&SnapshotFile) -> bool + use<>, Error> {
        let tags: BTreeSet<String> = self.tags.iter().cloned().collect();
        let cutoff = match self.window {
            None => None,
            Some(window) => {
                let span = rustic_core::jiff::SignedDuration::try_from(window)
                    .map_err(|e| Error::InvalidInput(format!("window: {e}")))?;
                Some(
                    Timestamp::now()
                        .checked_sub(span)
                        .map_err(|e| Error::InvalidInput(format!("window: {e}")))?,
                )
            }
        };
        Ok(move |sn: &SnapshotFile| {
            tags.iter().all(|t| sn.tags.contains(t)) && cutoff.is_none_or(|c| sn.time.timestamp() >= c)
        })
    }
}

/// What FORGET removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForgetOutcome {
    /// Full ids of the removed snapshots.
    pub removed: Vec<String>,
}

pub(crate) fn to_chrono(time: &Zoned) -> chrono::DateTime<chrono::Utc> {
    let ts = time.timestamp();
    let nanos = u32::try_from(ts.subsec_nanosecond()).unwrap_or(0);
    chrono::DateTime::from_timestamp(ts.as_second(), nanos).unwrap_or_default()
}

pub(crate) fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

impl Engine {
    /// Lists every snapshot of `store`, oldest first.
    ///
    /// # Errors
    /// Store and repository errors.
    pub fn list_snapshots(&self, store: &Store) -> Result<Vec<SnapshotInfo>, Error> {
        let reporter_progress = crate::progress::NoProgress;
        Reporter::run(&reporter_progress, |reporter| {
            let guard = Guard::new(&CancelToken::new());
            let opened = open(
                store,
                &OpenOptions { engine: self, guard, reporter, fail_reads: false, allow_create: false },
            )?;
            let mut snaps = opened.repo.get_all_snapshots().map_err(|e| opened.redactor.rustic(&e))?;
            snaps.sort_by(|a, b| a.time.cmp(&b.time));
            Ok(snaps.iter().map(SnapshotInfo::from_file).collect())
        })
    }

    /// Removes the snapshots with these ids (full ids or unique prefixes). Data stays until
    /// PRUNE. Unknown ids fail the whole call before anything is removed.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown or ambiguous id; store and repository errors.
    pub fn forget(
        &self,
        store: &Store,
        ids: &[String],
        progress: &dyn Progress,
        cancel: &CancelToken,
    ) -> Result<ForgetOutcome, Error> {
        if ids.is_empty() {
            return Ok(ForgetOutcome::default());
        }
        Reporter::run(progress, |reporter| {
            reporter.phase(Phase::Forgetting);
            let guard = Guard::new(cancel);
            let opened = open(
                store,
                &OpenOptions {
                    engine: self,
                    guard: guard.clone(),
                    reporter,
                    fail_reads: true,
                    allow_create: false,
                },
            )?;
            let snaps = opened
                .repo
                .get_snapshots(ids)
                .map_err(|e| Error::NotFound(opened.redactor.clean(&e.display_log())))?;
            cancel.check()?;
            let remove: Vec<SnapshotId> = snaps.iter().map(|s| s.id).collect();
            opened
                .repo
                .delete_snapshots(&remove)
                .map_err(|e| guard.stop_reason().unwrap_or_else(|| opened.redactor.rustic(&e)))?;
            let removed: Vec<String> = remove.iter().map(|i| i.to_hex().to_string()).collect();
            reporter.info(format!("forgot {} snapshot(s)", removed.len()));
            Ok(ForgetOutcome { removed })
        })
    }
}
