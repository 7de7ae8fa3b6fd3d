//! Progress reporting: the [`Progress`] trait the caller implements, and the bridge that feeds
//! it from rustic_core's progress bars and from the engine's own source and restore wrappers.
//!
//! rustic_core calls its progress bars from many threads, often once per chunk. Those calls
//! only bump atomics in a shared [`Reporter`]; a small pump thread (scoped to the operation)
//! forwards phase changes and log lines in order and coalesced counter updates at most ten
//! times a second. The caller's [`Progress`] is therefore only ever called from that pump
//! thread, never from rustic's worker threads, and may be slow without slowing the engine.
//!
//! This module must not decide anything about the operation: it only carries numbers and text.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use rustic_core::{Progress as RusticBar, ProgressBars, ProgressType, RusticProgress};

/// The step an operation is in; shown to operators as `as_str()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Opening the repository, reading its index, sizing the source.
    Scanning,
    /// Reading the source and writing new data.
    BackingUp,
    /// Writing snapshot content into the destination.
    Restoring,
    /// Verifying repository structure and (optionally) pack data.
    Checking,
    /// Planning and executing a prune.
    Pruning,
    /// Copying snapshots between repositories.
    Copying,
    /// Removing snapshot files.
    Forgetting,
}

impl Phase {
    /// The operator-facing name: "scanning", "backing up", ...
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scanning => "scanning",
            Self::BackingUp => "backing up",
            Self::Restoring => "restoring",
            Self::Checking => "checking",
            Self::Pruning => "pruning",
            Self::Copying => "copying",
            Self::Forgetting => "forgetting",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Detail useful when diagnosing (rustic's own step titles).
    Debug,
    /// Normal milestones: start, parent snapshot, per-phase summaries, final stats.
    Info,
    /// Something was skipped or degraded but the operation goes on (unreadable file, ...).
    Warn,
    /// Something failed.
    Error,
}

impl Level {
    /// Lower-case name ("debug", "info", "warn", "error").
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// A coalesced view of the counters of the current phase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    /// The phase these counters belong to.
    pub phase: Option<Phase>,
    /// Bytes processed so far in this phase.
    pub bytes_done: u64,
    /// Total bytes of this phase, when known.
    pub bytes_total: Option<u64>,
    /// Files processed so far in this phase (where the engine can count them).
    pub files_done: u64,
    /// Total files of this phase, when known.
    pub files_total: Option<u64>,
    /// The path being worked on, when meaningful.
    pub current_path: Option<String>,
}

impl Update {
    /// Completion in percent from bytes (or files when bytes are unknown), if computable.
    #[must_use]
    pub fn percent(&self) -> Option<f64> {
        #[allow(clippy::cast_precision_loss)]
        let ratio = |done: u64, total: u64| (done.min(total) as f64) * 100.0 / (total as f64);
        match (self.bytes_total, self.files_total) {
            (Some(total), _) if total > 0 => Some(ratio(self.bytes_done, total)),
            (_, Some(total)) if total > 0 => Some(ratio(self.files_done, total)),
            _ => None,
        }
    }
}

/// What the caller implements to watch an operation. All methods default to doing nothing.
///
/// Calls come from one engine-owned thread, in order: a `phase` call precedes the updates and
/// log lines of that phase. Implementations must not block for long (they delay later reports,
/// not the engine).
pub trait Progress: Send + Sync {
    /// The operation entered a new phase; counters restart from zero.
    fn phase(&self, _phase: Phase) {}
    /// Counters changed (coalesced, at most about ten calls a second).
    fn update(&self, _update: &Update) {}
    /// A log line for the job's history. Never contains secrets.
    fn log(&self, _level: Level, _message: &str) {}
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

const UNKNOWN: u64 = u64::MAX;
const TICK: Duration = Duration::from_millis(100);

enum Event {
    Phase(Phase),
    Log(Level, String),
}

#[derive(Default)]
struct Queue {
    events: VecDeque<Event>,
    finished: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    phase: Mutex<Option<Phase>>,
    current_path: Mutex<Option<String>>,
    bytes_done: AtomicU64,
    bytes_total: AtomicU64,
    files_done: AtomicU64,
    files_total: AtomicU64,
    /// When set, byte totals come from the engine and rustic's bars only add to `bytes_done`.
    bytes_owned: AtomicBool,
    dirty: AtomicBool,
}

/// Cheap-to-clone handle the engine and its wrappers report into.
#[derive(Clone)]
pub(crate) struct Reporter {
    shared: Arc<Shared>,
}

impl fmt::Debug for Reporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reporter").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Reporter {
    fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue::default()),
                wake: Condvar::new(),
                phase: Mutex::new(None),
                current_path: Mutex::new(None),
                bytes_done: AtomicU64::new(0),
                bytes_total: AtomicU64::new(UNKNOWN),
                files_done: AtomicU64::new(0),
                files_total: AtomicU64::new(UNKNOWN),
                bytes_owned: AtomicBool::new(false),
                dirty: AtomicBool::new(false),
            }),
        }
    }

    /// Runs `f` with a reporter whose reports reach `progress` through a scoped pump thread.
    pub(crate) fn run<T>(progress: &dyn Progress, f: impl FnOnce(&Self) -> T) -> T {
        let reporter = Self::new();
        std::thread::scope(|scope| {
            let pump = reporter.clone();
            let handle = scope.spawn(move || pump.pump(progress));
            // Finish the pump even if `f` unwinds, so the scope can end.
            let finisher = Finisher(&reporter);
            let out = f(&reporter);
            drop(finisher);
            // A panicking caller `Progress` only loses reports; it must not fail the operation.
            let _ = handle.join();
            out
        })
    }

    fn finish(&self) {
        lock(&self.shared.queue).finished = true;
        self.shared.wake.notify_all();
    }

    fn pump(&self, progress: &dyn Progress) {
        let mut last = Update::default();
        loop {
            let (events, finished) = {
                let mut queue = lock(&self.shared.queue);
                if queue.events.is_empty() && !queue.finished {
                    queue =
                        self.shared.wake.wait_timeout(queue, TICK).unwrap_or_else(PoisonError::into_inner).0;
                }
                (std::mem::take(&mut queue.events), queue.finished)
            };
            for event in events {
                match event {
                    Event::Phase(phase) => progress.phase(phase),
                    Event::Log(level, message) => progress.log(level, &message),
                }
            }
            if self.shared.dirty.swap(false, Ordering::AcqRel) {
                let update = self.snapshot();
                if update != last {
                    progress.update(&update);
                    last = update;
                }
            }
            if finished {
                return;
            }
        }
    }

    fn snapshot(&self) -> Update {
        let known = |v: u64| (v != UNKNOWN).then_some(v);
        let s = &self.shared;
        Update {
            phase: *lock(&s.phase),
            bytes_done: s.bytes_done.load(Ordering::Relaxed),
            bytes_total: known(s.bytes_total.load(Ordering::Relaxed)),
            files_done: s.files_done.load(Ordering::Relaxed),
            files_total: known(s.files_total.load(Ordering::Relaxed)),
            current_path: lock(&s.current_path).clone(),
        }
    }

    fn push(&self, event: Event) {
        lock(&self.shared.queue).events.push_back(event);
        self.shared.wake.notify_all();
    }

    /// Enters `phase` and resets the counters.
    pub(crate) fn phase(&self, phase: Phase) {
        let s = &self.shared;
        *lock(&s.phase) = Some(phase);
        *lock(&s.current_path) = None;
        s.bytes_done.store(0, Ordering::Relaxed);
        s.bytes_total.store(UNKNOWN, Ordering::Relaxed);
        s.files_done.store(0, Ordering::Relaxed);
        s.files_total.store(UNKNOWN, Ordering::Relaxed);
        s.bytes_owned.store(false, Ordering::Relaxed);
        s.dirty.store(true, Ordering::Release);
        self.push(Event::Phase(phase));
    }

    pub(crate) fn log(&self, level: Level, message: impl Into<String>) {
        self.push(Event::Log(level, message.into()));
    }

    pub(crate) fn info(&self, message: impl Into<String>) {
        self.log(Level::Info, message);
    }

    pub(crate) fn warn(&self, message: impl Into<String>) {
        self.log(Level::Warn, message);
    }

    /// Fixes the byte total of the phase; rustic's bars then only advance `bytes_done`.
    pub(crate) fn own_bytes_total(&self, total: u64) {
        self.shared.bytes_total.store(total, Ordering::Relaxed);
        self.shared.bytes_owned.store(true, Ordering::Relaxed);
        self.shared.dirty.store(true, Ordering::Release);
    }

    pub(crate) fn set_files_total(&self, total: u64) {
        self.shared.files_total.store(total, Ordering::Relaxed);
        self.shared.dirty.store(true, Ordering::Release);
    }

    pub(crate) fn add_files(&self, n: u64) {
        self.shared.files_done.fetch_add(n, Ordering::Relaxed);
        self.shared.dirty.store(true, Ordering::Release);
    }

    pub(crate) fn set_current_path(&self, path: &std::path::Path) {
        *lock(&self.shared.current_path) = Some(path.display().to_string());
        self.shared.dirty.store(true, Ordering::Release);
    }

    /// Sets the byte total of the phase (the engine's own archiver).
    pub(crate) fn set_bytes_total(&self, total: u64) {
        self.bar_length(total);
    }

    /// Adds processed bytes (the engine's own archiver).
    pub(crate) fn add_bytes(&self, n: u64) {
        self.bar_inc(n);
    }

    fn bar_started(&self) {
        if !self.shared.bytes_owned.load(Ordering::Relaxed) {
            self.shared.bytes_done.store(0, Ordering::Relaxed);
            self.shared.bytes_total.store(UNKNOWN, Ordering::Relaxed);
            self.shared.dirty.store(true, Ordering::Release);
        }
    }

    fn bar_length(&self, len: u64) {
        if !self.shared.bytes_owned.load(Ordering::Relaxed) {
            self.shared.bytes_total.store(len, Ordering::Relaxed);
            self.shared.dirty.store(true, Ordering::Release);
        }
    }

    fn bar_inc(&self, n: u64) {
        self.shared.bytes_done.fetch_add(n, Ordering::Relaxed);
        self.shared.dirty.store(true, Ordering::Release);
    }

    /// The rustic `ProgressBars` implementation feeding this reporter.
    pub(crate) fn bars(&self) -> Bars {
        Bars { reporter: self.clone() }
    }
}

struct Finisher<'a>(&'a Reporter);

impl Drop for Finisher<'_> {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// rustic_core's progress seam: byte bars feed the byte counters, titles become debug lines.
#[derive(Debug, Clone)]
pub(crate) struct Bars {
    reporter: Reporter,
}

impl ProgressBars for Bars {
    fn progress(&self, progress_type: ProgressType, prefix: &str) -> RusticBar {
        let bytes = matches!(progress_type, ProgressType::Bytes);
        if bytes {
            self.reporter.bar_started();
        }
        let prefix = prefix.trim();
        if !prefix.is_empty() {
            self.reporter.log(Level::Debug, prefix.trim_end_matches("...").to_string());
        }
        RusticBar::new(Bar { reporter: self.reporter.clone(), bytes })
    }
}

#[derive(Debug)]
struct Bar {
    reporter: Reporter,
    bytes: bool,
}

impl RusticProgress for Bar {
    // Must be false: rustic skips the backup size scan for hidden bars.
    fn is_hidden(&self) -> bool {
        false
    }

    fn set_length(&self, len: u64) {
        if self.bytes {
            self.reporter.bar_length(len);
        }
    }

    fn set_title(&self, title: &str) {
        self.reporter.log(Level::Debug, title.to_string());
    }

    fn inc(&self, inc: u64) {
        if self.bytes {
            self.reporter.bar_inc(inc);
        }
    }

    fn finish(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder {
        seen: Mutex<Vec<String>>,
    }

    impl Progress for Recorder {
        fn phase(&self, phase: Phase) {
            lock(&self.seen).push(format!("phase {phase}"));
        }
        fn update(&self, update: &Update) {
            lock(&self.seen).push(format!("bytes {}", update.bytes_done));
        }
        fn log(&self, level: Level, message: &str) {
            lock(&self.seen).push(format!("{} {message}", level.as_str()));
        }
    }

    #[test]
    fn pump_delivers_in_order_and_flushes_at_end() {
        let recorder = Recorder::default();
        Reporter::run(&recorder, |r| {
            r.phase(Phase::BackingUp);
            r.info("start");
            r.bar_inc(10);
            r.bar_inc(5);
        });
        let seen = lock(&recorder.seen).clone();
        assert_eq!(seen[0], "phase backing up");
        assert!(seen.contains(&"info start".to_string()), "{seen:?}");
        assert_eq!(seen.last().map(String::as_str), Some("bytes 15"));
    }

    #[test]
    fn percent_prefers_bytes() {
        let u = Update {
            bytes_done: 50,
            bytes_total: Some(200),
            files_done: 1,
            files_total: Some(2),
            ..Update::default()
        };
        assert_eq!(u.percent(), Some(25.0));
    }
}
