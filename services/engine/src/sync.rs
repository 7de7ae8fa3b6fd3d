//! SYNC: copy snapshots from one store to another (restic `copy` semantics).
//!
//! Snapshots are selected with a [`SnapshotFilter`]; those already present in the destination
//! (same content, as rustic compares them) are skipped, so running SYNC twice copies nothing
//! the second time. Only blobs missing from the destination are transferred. The destination
//! is initialised when its store allows it.
//!
//! Cancellation: checked between steps; once set, both backends refuse further work, so the
//! copy stops at the next pack and no snapshot file is written.

use std::time::{Duration, Instant};

use crate::cancel::{CancelToken, Guard};
use crate::progress::{Phase, Progress, Reporter};
use crate::snapshots::{SnapshotFilter, short_id};
use crate::store::{OpenOptions, open};
use crate::{Engine, Error, Store};

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncOutcome {
    /// Source ids of the snapshots copied by this run.
    pub copied: Vec<String>,
    /// Matching snapshots that the destination already had.
    pub already_present: u64,
    /// Wall time.
    pub duration: Duration,
}

impl Engine {
    /// Copies the snapshots of `from` matching `filter` into `to`. Blocks.
    ///
    /// # Errors
    /// [`Error::Cancelled`], and store/repository errors of either side.
    pub fn sync(
        &self,
        from: &Store,
        to: &Store,
        filter: &SnapshotFilter,
        progress: &dyn Progress,
        cancel: &CancelToken,
    ) -> Result<SyncOutcome, Error> {
        crate::backup::validate_tags(&filter.tags)?;
        let matches = filter.matcher()?;
        Reporter::run(progress, |reporter| {
            let started = Instant::now();
            reporter.phase(Phase::Scanning);
            reporter.info(format!("sync from {} to {}", from.describe(), to.describe()));
            let guard = Guard::new(cancel);
            let open_opts = |allow_create| OpenOptions {
                engine: self,
                guard: guard.clone(),
                reporter,
                fail_reads: true,
                allow_create,
            };
            let src = open(from, &open_opts(false))?;
            let dst = open(to, &open_opts(true))?;
            let redactor = src.redactor.merge(&dst.redactor);
            let rustic =
                |e: Box<rustic_core::RusticError>| guard.stop_reason().unwrap_or_else(|| redactor.rustic(&e));
            cancel.check()?;
            let snaps = src.repo.get_matching_snapshots(&matches).map_err(rustic)?;
            let candidates = dst.repo.relevant_copy_snapshots(|_| true, &snaps).map_err(rustic)?;
            let (todo, present): (Vec<_>, Vec<_>) = candidates.into_iter().partition(|c| c.relevant);
            reporter.info(format!(
                "{} matching snapshot(s): {} to copy, {} already present",
                snaps.len(),
                todo.len(),
                present.len()
            ));
            let mut outcome = SyncOutcome { already_present: present.len() as u64, ..SyncOutcome::default() };
            if !todo.is_empty() {
                cancel.check()?;
                let src_repo = src.repo.to_indexed().map_err(rustic)?;
                cancel.check()?;
                let dst_repo = dst.repo.to_indexed_ids().map_err(rustic)?;
                cancel.check()?;
                reporter.phase(Phase::Copying);
                src_repo.copy(&dst_repo, todo.iter().map(|c| &c.sn)).map_err(rustic)?;
                outcome.copied = todo.iter().map(|c| c.sn.id.to_hex().to_string()).collect();
                for id in &outcome.copied {
                    reporter.info(format!("copied snapshot {}", short_id(id)));
                }
            }
            outcome.duration = started.elapsed();
            Ok(outcome)
        })
    }
}
