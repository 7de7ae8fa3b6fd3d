//! Cancellation: the caller's [`CancelToken`], and the backend wrapper that makes rustic_core
//! (which has no cancellation of its own) stop writing once the token fires.
//!
//! The wrapper refuses every write and delete after the token is set (and, where the caller
//! of rustic tolerates read errors, every read too). Combined with the source wrapper in
//! [`crate::source`], whose entry iterator ends and whose readers fail once cancelled, a
//! backup unwinds within milliseconds and its final snapshot write is refused, so a cancelled
//! backup never leaves a snapshot: only unreferenced pack files, which PRUNE removes.
//!
//! The same [`Guard`] also stops writes when a command source failed, for the same reason.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use rustic_core::{BytesList, ErrorKind, FileType, Id, ReadBackend, RusticError, RusticResult, WriteBackend};

use crate::Error;

/// Cooperative cancellation flag shared between the caller and a running operation.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not cancelled.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests cancellation; the operation stops at its next checkpoint.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether cancellation was requested.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// `Err(Cancelled)` once cancelled: the checkpoint between steps.
    pub(crate) fn check(&self) -> Result<(), Error> {
        if self.is_cancelled() { Err(Error::Cancelled) } else { Ok(()) }
    }
}

/// Per-operation stop state: cancelled by the caller, or failed by a source.
#[derive(Debug, Default)]
pub(crate) struct Guard {
    token: CancelToken,
    failure: Mutex<Option<Error>>,
}

impl Guard {
    pub(crate) fn new(token: &CancelToken) -> Arc<Self> {
        Arc::new(Self { token: token.clone(), failure: Mutex::new(None) })
    }

    pub(crate) fn stopped(&self) -> bool {
        self.token.is_cancelled() || self.failure().is_some()
    }

    pub(crate) fn cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Records the first failure; later writes are refused.
    pub(crate) fn fail(&self, err: Error) {
        let mut failure = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        if failure.is_none() {
            *failure = Some(err);
        }
    }

    pub(crate) fn failure(&self) -> Option<Error> {
        self.failure.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The error to report for a rustic failure that happened while stopping.
    pub(crate) fn stop_reason(&self) -> Option<Error> {
        if let Some(failure) = self.failure() {
            Some(failure)
        } else if self.cancelled() {
            Some(Error::Cancelled)
        } else {
            None
        }
    }

    fn refuse(&self) -> RusticResult<()> {
        if self.stopped() {
            Err(RusticError::new(
                ErrorKind::Other,
                "Operation stopped by Cairn (cancelled or source failed).",
            ))
        } else {
            Ok(())
        }
    }
}

/// A repository backend that refuses writes (and optionally reads) once its guard stops.
#[derive(Debug, Clone)]
pub(crate) struct GuardedBackend {
    inner: Arc<dyn WriteBackend>,
    guard: Arc<Guard>,
    fail_reads: bool,
}

impl GuardedBackend {
    /// `fail_reads` must stay false where rustic unwraps read results (restore).
    pub(crate) fn new(inner: Arc<dyn WriteBackend>, guard: Arc<Guard>, fail_reads: bool) -> Self {
        Self { inner, guard, fail_reads }
    }

    fn read_gate(&self) -> RusticResult<()> {
        if self.fail_reads { self.guard.refuse() } else { Ok(()) }
    }
}

impl ReadBackend for GuardedBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn list_with_size(&self, tpe: FileType) -> RusticResult<Vec<(Id, u32)>> {
        self.read_gate()?;
        self.inner.list_with_size(tpe)
    }

    fn list(&self, tpe: FileType) -> RusticResult<Vec<Id>> {
        self.read_gate()?;
        self.inner.list(tpe)
    }

    fn read_full(&self, tpe: FileType, id: &Id) -> RusticResult<Bytes> {
        self.read_gate()?;
        self.inner.read_full(tpe, id)
    }

    fn read_partial(
        &self,
        tpe: FileType,
        id: &Id,
        cacheable: bool,
        offset: u32,
        length: u32,
    ) -> RusticResult<Bytes> {
        self.read_gate()?;
        self.inner.read_partial(tpe, id, cacheable, offset, length)
    }

    fn warmup_path(&self, tpe: FileType, id: &Id) -> String {
        self.inner.warmup_path(tpe, id)
    }

    fn needs_warm_up(&self) -> bool {
        self.inner.needs_warm_up()
    }

    fn warm_up(&self, tpe: FileType, id: &Id) -> RusticResult<()> {
        self.inner.warm_up(tpe, id)
    }
}

impl WriteBackend for GuardedBackend {
    fn create(&self) -> RusticResult<()> {
        self.guard.refuse()?;
        self.inner.create()
    }

    fn write_bytes(&self, tpe: FileType, id: &Id, cacheable: bool, content: BytesList) -> RusticResult<()> {
        self.guard.refuse()?;
        self.inner.write_bytes(tpe, id, cacheable, content)
    }

    fn remove(&self, tpe: FileType, id: &Id, cacheable: bool) -> RusticResult<()> {
        self.guard.refuse()?;
        self.inner.remove(tpe, id, cacheable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_shared_between_clones() {
        let token = CancelToken::new();
        let other = token.clone();
        assert!(token.check().is_ok());
        other.cancel();
        assert_eq!(token.check(), Err(Error::Cancelled));
    }

    #[test]
    fn guard_reports_first_failure() {
        let guard = Guard::new(&CancelToken::new());
        assert!(!guard.stopped());
        guard.fail(Error::Io("first".into()));
        guard.fail(Error::Io("second".into()));
        assert_eq!(guard.stop_reason(), Some(Error::Io("first".into())));
    }
}
