//! The bridge from the engine's synchronous progress callbacks to the async pump: the engine
//! thread only records (latest counters, log lines with the worker's own sequence numbers);
//! the pump sends them to the scheduler at its own pace, so a slow network never slows a
//! backup.

use std::sync::{
    Mutex,
    atomic::{AtomicBool, AtomicI64, Ordering},
};

use cairn_api::v1::{JobProgress, LogLevel, LogLine};
use cairn_engine::{Level, Phase, Progress, Update};
use cairn_runtime::time::to_timestamp;

/// What the engine reported, waiting to be sent.
#[derive(Debug, Default)]
pub struct Reporter {
    /// The engine's span; each phase is a child span of it (for traces).
    span: Mutex<Option<tracing::Span>>,
    phase_span: Mutex<Option<tracing::Span>>,
    progress: Mutex<JobProgress>,
    changed: AtomicBool,
    lines: Mutex<Vec<LogLine>>,
    seq: AtomicI64,
}

impl Reporter {
    /// Phases become child spans of `span`.
    pub fn set_span(&self, span: tracing::Span) {
        if let Ok(mut s) = self.span.lock() {
            *s = Some(span);
        }
    }

    /// Ends the current phase span.
    pub fn end_phase(&self) {
        if let Ok(mut p) = self.phase_span.lock() {
            p.take();
        }
    }

    /// Records a line (also used by the worker itself: start, completion).
    pub fn line(&self, level: LogLevel, message: impl Into<String>) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let line = LogLine {
            seq,
            time: Some(to_timestamp(chrono::Utc::now())),
            level: level as i32,
            message: message.into(),
            attempt: 0,
        };
        if let Ok(mut l) = self.lines.lock() {
            l.push(line);
        }
    }

    /// Progress to send, if it changed since the last call.
    pub fn take_progress(&self) -> Option<JobProgress> {
        if !self.changed.swap(false, Ordering::AcqRel) {
            return None;
        }
        self.progress.lock().ok().map(|p| p.clone())
    }

    /// The latest progress, changed or not.
    pub fn progress(&self) -> JobProgress {
        self.progress.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Lines waiting to be sent (they stay until [`Reporter::sent`]).
    pub fn pending(&self, max: usize) -> Vec<LogLine> {
        self.lines.lock().map(|l| l.iter().take(max).cloned().collect()).unwrap_or_default()
    }

    /// Drops lines up to `seq` (acknowledged by the scheduler).
    pub fn sent(&self, seq: i64) {
        if let Ok(mut l) = self.lines.lock() {
            l.retain(|x| x.seq > seq);
        }
    }
}

impl Progress for Reporter {
    fn phase(&self, phase: Phase) {
        if let (Ok(parent), Ok(mut current)) = (self.span.lock(), self.phase_span.lock()) {
            current.take();
            if let Some(parent) = parent.as_ref() {
                *current = Some(
                    tracing::info_span!(parent: parent, "engine.phase", otel.name = %format!("engine.{}", phase.as_str()), phase = phase.as_str()),
                );
            }
        }
        if let Ok(mut p) = self.progress.lock() {
            *p = JobProgress { phase: phase.as_str().to_owned(), ..Default::default() };
        }
        self.changed.store(true, Ordering::Release);
    }

    fn update(&self, u: &Update) {
        if let Ok(mut p) = self.progress.lock() {
            if let Some(ph) = u.phase {
                p.phase = ph.as_str().to_owned();
            }
            p.bytes_done = u.bytes_done as i64;
            p.bytes_total = u.bytes_total.unwrap_or(0) as i64;
            p.files_done = u.files_done as i64;
            p.files_total = u.files_total.unwrap_or(0) as i64;
            p.percent = u.percent().unwrap_or(0.0);
            if let Some(c) = &u.current_path {
                p.current_path = c.clone();
            }
        }
        self.changed.store(true, Ordering::Release);
    }

    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        self.line(level, message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_numbered_and_kept_until_acknowledged() {
        let r = Reporter::default();
        r.log(Level::Info, "a");
        r.log(Level::Warn, "b");
        let p = r.pending(10);
        assert_eq!(p.iter().map(|l| l.seq).collect::<Vec<_>>(), vec![1, 2]);
        r.sent(1);
        assert_eq!(r.pending(10)[0].message, "b");
        assert!(r.take_progress().is_none());
        r.update(&Update {
            phase: Some(Phase::BackingUp),
            bytes_done: 5,
            bytes_total: Some(10),
            ..Default::default()
        });
        let p = r.take_progress().unwrap();
        assert_eq!((p.phase.as_str(), p.percent), ("backing up", 50.0));
        assert!(r.take_progress().is_none(), "only changes are sent");
    }
}
