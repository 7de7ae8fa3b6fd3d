//! Parallel read-ahead for backup sources with many small files.
//!
//! rustic's archiver opens and reads each file on its own worker threads, right when it
//! processes it; with tens of thousands of small files the per-file open/read latency is on
//! the critical path. [`ReadAhead`] keeps a window of upcoming entries and reads small files
//! fully on helper threads before the archiver asks for them; large files are left to the
//! archiver, which streams them. Order, metadata and error handling are unchanged: a file
//! that fails to read yields the same kind of error at `open()` as before.
//!
//! Memory is bounded by the window's byte budget. This module does no I/O beyond reading
//! source files and owns no policy: cancellation comes from the wrapped guarded source.

use std::collections::VecDeque;
use std::io::{self, Cursor, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use rustic_core::{ErrorKind, ReadSource, ReadSourceEntry, ReadSourceOpen, RusticError, RusticResult};

use crate::cancel::Guard;

/// Files up to this size are read ahead.
const SMALL_FILE: u64 = 1 << 20;
/// Bytes of prefetched content held at most.
const WINDOW_BYTES: u64 = 64 << 20;
/// Entries held ahead at most.
const WINDOW_ENTRIES: usize = 512;

/// Wraps a source so small files are read ahead on `threads` helper threads.
pub(crate) struct ReadAhead<S> {
    inner: S,
    threads: usize,
    guard: Arc<Guard>,
}

impl<S> ReadAhead<S> {
    pub(crate) fn new(inner: S, threads: usize, guard: Arc<Guard>) -> Self {
        Self { inner, threads: threads.max(1), guard }
    }
}

type Job<O> = (O, SyncSender<io::Result<Vec<u8>>>);

impl<S> ReadSource for ReadAhead<S>
where
    S: ReadSource,
    S::Open: Send + 'static,
{
    type Open = Prefetched<S::Open>;
    type Iter = ReadAheadIter<S::Iter, S::Open>;

    fn size(&self) -> RusticResult<Option<u64>> {
        self.inner.size()
    }

    fn entries(&self) -> Self::Iter {
        let (jobs, rx) = sync_channel::<Job<S::Open>>(WINDOW_ENTRIES);
        let rx = Arc::new(Mutex::new(rx));
        let workers = (0..self.threads)
            .map(|_| {
                let rx = rx.clone();
                std::thread::spawn(move || worker(&rx))
            })
            .collect();
        ReadAheadIter {
            inner: self.inner.entries(),
            pending: VecDeque::new(),
            pending_bytes: 0,
            jobs: Some(jobs),
            workers,
            guard: self.guard.clone(),
            exhausted: false,
        }
    }
}

fn worker<O: ReadSourceOpen>(rx: &Mutex<Receiver<Job<O>>>) {
    loop {
        let job = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok((open, reply)) = job else {
            return;
        };
        let result = open.open().map_err(|e| io::Error::other(e.display_log())).and_then(|mut reader| {
            let mut buf = Vec::new();
            reader.read_to_end(&mut buf).map(|_| buf)
        });
        // The entry may have been dropped (cancelled): nobody waits for the result then.
        let _ = reply.send(result);
    }
}

/// Entry iterator keeping a window of prefetched entries.
pub(crate) struct ReadAheadIter<I, O> {
    inner: I,
    pending: VecDeque<(RusticResult<ReadSourceEntry<Prefetched<O>>>, u64)>,
    pending_bytes: u64,
    jobs: Option<SyncSender<Job<O>>>,
    workers: Vec<JoinHandle<()>>,
    guard: Arc<Guard>,
    exhausted: bool,
}

impl<I, O> ReadAheadIter<I, O>
where
    I: Iterator<Item = RusticResult<ReadSourceEntry<O>>>,
    O: ReadSourceOpen + Send + 'static,
{
    fn fill(&mut self) {
        while !self.exhausted && self.pending.len() < WINDOW_ENTRIES && self.pending_bytes < WINDOW_BYTES {
            let Some(item) = self.inner.next() else {
                self.exhausted = true;
                return;
            };
            let (item, bytes) = match item {
                Err(e) => (Err(e), 0),
                Ok(entry) => {
                    let size = entry.node.meta.size;
                    let small = entry.node.is_file() && size <= SMALL_FILE;
                    let (open, bytes) = match (entry.open, small, &self.jobs) {
                        (Some(open), true, Some(jobs)) => {
                            let (tx, rx) = sync_channel(1);
                            match jobs.send((open, tx)) {
                                Ok(()) => (Some(Prefetched::Ready(rx)), size),
                                Err(err) => (Some(Prefetched::Lazy(err.0.0)), 0),
                            }
                        }
                        (open, _, _) => (open.map(Prefetched::Lazy), 0),
                    };
                    (Ok(ReadSourceEntry { path: entry.path, node: entry.node, open }), bytes)
                }
            };
            self.pending_bytes += bytes;
            self.pending.push_back((item, bytes));
        }
    }
}

impl<I, O> Iterator for ReadAheadIter<I, O>
where
    I: Iterator<Item = RusticResult<ReadSourceEntry<O>>>,
    O: ReadSourceOpen + Send + 'static,
{
    type Item = RusticResult<ReadSourceEntry<Prefetched<O>>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.guard.stopped() {
            self.pending.clear();
            return None;
        }
        self.fill();
        let (item, bytes) = self.pending.pop_front()?;
        self.pending_bytes -= bytes;
        Some(item)
    }
}

impl<I, O> Drop for ReadAheadIter<I, O> {
    fn drop(&mut self) {
        self.pending.clear();
        // Closing the job channel ends the workers once the queued reads are done.
        self.jobs = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// A file whose content is being (or was) read ahead, or one left to be opened lazily.
pub(crate) enum Prefetched<O> {
    Ready(Receiver<io::Result<Vec<u8>>>),
    Lazy(O),
}

impl<O: ReadSourceOpen> ReadSourceOpen for Prefetched<O> {
    type Reader = Either<O::Reader>;

    fn open(self) -> RusticResult<Self::Reader> {
        match self {
            Self::Lazy(open) => open.open().map(Either::Lazy),
            Self::Ready(rx) => match rx.recv() {
                Ok(Ok(buf)) => Ok(Either::Ready(Cursor::new(buf))),
                Ok(Err(e)) => {
                    Err(RusticError::with_source(ErrorKind::InputOutput, "Failed to read file ahead.", e))
                }
                Err(e) => {
                    Err(RusticError::with_source(ErrorKind::Internal, "Read-ahead worker ended early.", e))
                }
            },
        }
    }
}

/// Reader over prefetched bytes or a lazily opened file.
pub(crate) enum Either<R> {
    Ready(Cursor<Vec<u8>>),
    Lazy(R),
}

impl<R: Read> Read for Either<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Ready(c) => c.read(buf),
            Self::Lazy(r) => r.read(buf),
        }
    }
}
