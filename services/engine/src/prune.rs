//! PRUNE: reclaim the space of forgotten snapshots and of interrupted backups, now.
//!
//! Deletion is instant (no 23-hour grace period): packs that are unused or not referenced by
//! any index (for example those left by a cancelled or killed backup) are removed at once.
//! Because rustic_core takes no repository lock, this is only safe while no other job writes
//! to the store: the scheduler gives PRUNE exclusive use of its store (SPEC §3.4).
//!
//! Cancellation is honoured before the plan is executed; once executing, the backend refuses
//! further writes and deletes, which leaves at worst extra unreferenced packs for next time.

use std::time::{Duration, Instant};

use rustic_core::{LimitOption, PruneOptions as RusticPruneOptions, PrunePlan};

use crate::cancel::{CancelToken, Guard};
use crate::progress::{Phase, Progress, Reporter};
use crate::store::{OpenOptions, open};
use crate::{Engine, Error, Store};

/// Options of one prune.
#[derive(Debug, Clone, PartialEq)]
pub struct PruneOptions {
    /// Tolerated unused space after pruning, in percent of the repository (0..=100); partly
    /// used packs are repacked until below it. 100 = never repack for space.
    pub max_unused_percent: f64,
}

impl Default for PruneOptions {
    fn default() -> Self {
        Self { max_unused_percent: 5.0 }
    }
}

/// What a prune did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneOutcome {
    /// Pack files deleted (unused, repacked or unreferenced).
    pub packs_removed: u64,
    /// Pack files whose used blobs were repacked.
    pub packs_repacked: u64,
    /// Pack files not referenced by any index (interrupted backups), included in removals.
    pub unreferenced_packs: u64,
    /// Bytes of unreferenced packs.
    pub unreferenced_bytes: u64,
    /// Bytes freed (unused blobs removed and repacked, plus unreferenced packs).
    pub bytes_freed: u64,
    /// Bytes still in use.
    pub bytes_used: u64,
    /// Wall time.
    pub duration: Duration,
}

impl PruneOutcome {
    fn from_plan(plan: &PrunePlan) -> Self {
        let s = &plan.stats;
        let size = s.size_sum();
        Self {
            packs_removed: s.packs.unused + s.packs.repack + s.packs_unref,
            packs_repacked: s.packs.repack,
            unreferenced_packs: s.packs_unref,
            unreferenced_bytes: s.size_unref,
            bytes_freed: size.remove + size.repackrm + s.size_unref,
            bytes_used: size.used,
            duration: Duration::ZERO,
        }
    }
}

impl Engine {
    /// Prunes `store`. Blocks.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a percentage outside 0..=100, [`Error::Cancelled`], and
    /// store/repository errors.
    pub fn prune(
        &self,
        store: &Store,
        opts: &PruneOptions,
        progress: &dyn Progress,
        cancel: &CancelToken,
    ) -> Result<PruneOutcome, Error> {
        let pct = opts.max_unused_percent;
        if !(0.0..=100.0).contains(&pct) || pct.is_nan() {
            return Err(Error::InvalidInput(format!("max_unused_percent {pct} is outside 0..=100")));
        }
        let max_unused = if pct >= 100.0 {
            LimitOption::Unlimited
        } else {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            LimitOption::Percentage(pct.round() as u64)
        };
        Reporter::run(progress, |reporter| {
            let started = Instant::now();
            reporter.phase(Phase::Pruning);
            let guard = Guard::new(cancel);
            let opened = open(
                store,
                &OpenOptions {
                    engine: self,
                    guard: guard.clone(),
                    reporter,
                    fail_reads: false,
                    allow_create: false,
                },
            )?;
            let rustic = |e: Box<rustic_core::RusticError>| {
                guard.stop_reason().unwrap_or_else(|| opened.redactor.rustic(&e))
            };
            let prune_opts = RusticPruneOptions::default().instant_delete(true).max_unused(max_unused);
            cancel.check()?;
            let plan = opened.repo.prune_plan(&prune_opts).map_err(rustic)?;
            let mut outcome = PruneOutcome::from_plan(&plan);
            reporter.info(format!(
                "prune plan: remove {} pack(s) ({} unreferenced), repack {}, free {} bytes",
                outcome.packs_removed,
                outcome.unreferenced_packs,
                outcome.packs_repacked,
                outcome.bytes_freed
            ));
            cancel.check()?;
            opened.repo.prune(&prune_opts, plan).map_err(rustic)?;
            outcome.duration = started.elapsed();
            reporter.info(format!("prune done in {:.1}s", outcome.duration.as_secs_f64()));
            Ok(outcome)
        })
    }
}
