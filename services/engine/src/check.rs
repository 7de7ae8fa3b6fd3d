//! CHECK: verify a repository's structure and, optionally, a share of its pack data.
//!
//! Index, pack headers and pack list are always checked for the whole repository. Trees are
//! checked for the snapshots selected by the [`SnapshotFilter`] (all of them when it is
//! empty), and `read_data_percent` of the packs those snapshots use are downloaded and
//! verified blob by blob, which is what detects bit rot in pack files.
//!
//! Cancellation makes the backend fail further reads, so a running data read stops quickly.

use std::time::{Duration, Instant};

use rustic_core::{CheckOptions as RusticCheckOptions, ReadSubsetOption};

use crate::cancel::{CancelToken, Guard};
use crate::progress::{Level, Phase, Progress, Reporter};
use crate::snapshots::SnapshotFilter;
use crate::store::{OpenOptions, open};
use crate::{Engine, Error, Store};

/// Options of one check.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckOptions {
    /// Share of pack data to read and verify, 0..=100 (0 = structure only).
    pub read_data_percent: f64,
    /// Which snapshots' trees and data to verify.
    pub filter: SnapshotFilter,
}

/// The verdict of a check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckOutcome {
    /// No error was found.
    pub ok: bool,
    /// Problems that make data unreadable or the repository inconsistent.
    pub errors: Vec<String>,
    /// Problems that do not endanger data (e.g. unused blobs).
    pub warnings: Vec<String>,
    /// Snapshots whose trees were checked.
    pub snapshots_checked: u64,
    /// Wall time.
    pub duration: Duration,
}

impl Engine {
    /// Checks `store`. Findings are returned, not raised: an `Ok` outcome may have `ok == false`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a percentage outside 0..=100, [`Error::Cancelled`], and
    /// errors that prevent checking at all (unreachable store, wrong password, ...).
    pub fn check(
        &self,
        store: &Store,
        opts: &CheckOptions,
        progress: &dyn Progress,
        cancel: &CancelToken,
    ) -> Result<CheckOutcome, Error> {
        let pct = opts.read_data_percent;
        if !(0.0..=100.0).contains(&pct) || pct.is_nan() {
            return Err(Error::InvalidInput(format!("read_data_percent {pct} is outside 0..=100")));
        }
        crate::backup::validate_tags(&opts.filter.tags)?;
        let matches = opts.filter.matcher()?;
        Reporter::run(progress, |reporter| {
            let started = Instant::now();
            reporter.phase(Phase::Checking);
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
            let rustic = |e: Box<rustic_core::RusticError>| {
                guard.stop_reason().unwrap_or_else(|| opened.redactor.rustic(&e))
            };
            cancel.check()?;
            let snaps = opened.repo.get_matching_snapshots(&matches).map_err(rustic)?;
            let trees = snaps.iter().map(|s| s.tree).collect();
            let mut check_opts = RusticCheckOptions::default();
            if pct > 0.0 {
                check_opts = check_opts.read_data(true);
                if pct < 100.0 {
                    check_opts = check_opts.read_data_subset(ReadSubsetOption::Percentage(pct));
                }
            }
            reporter.info(format!(
                "checking {} ({} snapshot(s), reading {pct}% of their data)",
                store.describe(),
                snaps.len()
            ));
            let results = opened.repo.check_with_trees(check_opts, trees).map_err(rustic)?;
            cancel.check()?;
            let mut outcome =
                CheckOutcome { snapshots_checked: snaps.len() as u64, ..CheckOutcome::default() };
            for (level, finding) in &results.0 {
                let text = opened.redactor.clean(&finding.to_string());
                if format!("{level:?}") == "Error" {
                    reporter.log(Level::Error, text.clone());
                    outcome.errors.push(text);
                } else {
                    reporter.log(Level::Warn, text.clone());
                    outcome.warnings.push(text);
                }
            }
            outcome.ok = outcome.errors.is_empty();
            outcome.duration = started.elapsed();
            reporter.info(format!(
                "check {}: {} error(s), {} warning(s) in {:.1}s",
                if outcome.ok { "passed" } else { "FAILED" },
                outcome.errors.len(),
                outcome.warnings.len(),
                outcome.duration.as_secs_f64()
            ));
            Ok(outcome)
        })
    }
}
