//! Cairn's archiver: writes a snapshot of a source into a restic-format repository with a
//! pipeline sized to the machine, where `rustic_core` (which still opens the repository and
//! does every other operation) processes one file at a time and rebuilds its chunker per file.
//!
//! ```text
//!  walker (this thread) ── events ──────────────────────────────► assembler ── tree packs ─┐
//!   │ parent trees beside the source                                ▲ (trees, summary)       │
//!   └─ batches of files ─► workers ×N ── (seq, content ids) ────────┘                         ▼
//!        read → chunk → SHA-256 → dedupe → zstd → verify → seal into own pack ── packs ► uploaders
//! ```
//!
//! - The **walker** reads the source's entries in order, compares each with the parent
//!   snapshot ([`known::Parent`]): unchanged files take the parent's content without being
//!   opened; the others go to the workers, small files in batches, large ones alone.
//! - Each **worker** owns its buffers, its chunker (polynomial table computed once), its zstd
//!   contexts and its own data pack, so a blob is read, cut, hashed, compressed, checked and
//!   sealed without a lock or a thread hand-off; only the set of blobs in flight is shared.
//!   A full pack goes to the uploaders: one hand-off per pack.
//! - The **assembler** rebuilds directories in order as the files' content ids come back,
//!   serialises each tree exactly as the rustic engine does (same bytes, same id), counts the
//!   snapshot summary and packs the new trees.
//! - The **uploaders** write packs and an index file every few packs or seconds, so a killed
//!   backup leaves its uploaded blobs findable by the next one; a cancelled one flushes the
//!   index of what it uploaded. The snapshot is written last, only when everything succeeded.
//!
//! Verification (ADR 0016): every compressed blob is decompressed and compared with the data
//! whose SHA-256 is its id, and every blob's and header's MAC is checked in the final pack
//! bytes before upload. Cut points, tree bytes and blob ids equal the rustic engine's, so both
//! engines deduplicate against each other in one repository.

mod chunker;
mod known;
mod pack;
mod seal;

use std::collections::{HashMap, HashSet};
use std::io::Read as _;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded, unbounded};
use rustic_core::jiff::Zoned;
use rustic_core::repofile::{BlobType, Metadata, Node, NodeType, SnapshotFile, SnapshotSummary, Tree};
use rustic_core::{
    DataId, FileType, Id, OpenStatus, ReadBackend, ReadSource, ReadSourceEntry, ReadSourceOpen, Repository,
    TreeId, WriteBackend,
};
use sha2::{Digest as _, Sha256};

use self::chunker::Chunker;
use self::known::{Known, Match, Parent, Trees};
use self::pack::{Finished, MAX_BLOBS, Pack, Unpacked, Uploads, save_unpacked};
use self::seal::Sealer;
use crate::Error;
use crate::cancel::Guard;
use crate::error::Redactor;
use crate::progress::Reporter;

/// Files below this size are sent to workers in batches.
const SMALL_FILE: u64 = 1 << 20;
/// A batch closes at this many files or bytes.
const BATCH_FILES: usize = 64;
const BATCH_BYTES: u64 = 8 << 20;
/// Events the walker may be ahead of the assembler.
const EVENTS: usize = 16 * 1024;
/// Bytes read from a file at a time, at most.
const READ: usize = 4 << 20;
/// An index file is also written when the last one is this old.
const INDEX_AGE: Duration = Duration::from_secs(60);

/// Where and how a backup writes.
pub(crate) struct Target<'a> {
    /// The open repository (config, key, index files, snapshots).
    pub(crate) repo: &'a Repository<OpenStatus>,
    /// Its backend behind the operation's guard (refuses writes once stopped).
    pub(crate) guarded: Arc<dyn WriteBackend>,
    /// Its backend without the guard, for the index of what a stopped backup uploaded.
    pub(crate) raw: Arc<dyn WriteBackend>,
    pub(crate) redactor: &'a Redactor,
    pub(crate) reporter: &'a Reporter,
    pub(crate) guard: &'a Arc<Guard>,
    /// Worker threads.
    pub(crate) threads: usize,
}

/// Ids of blobs stored by this backup so far (each stored once across workers).
struct Seen(Vec<Mutex<HashSet<[u8; 32]>>>);

impl Seen {
    fn new() -> Self {
        Self((0..32).map(|_| Mutex::default()).collect())
    }

    /// True the first time `id` is claimed.
    fn claim(&self, id: &[u8; 32]) -> bool {
        self.0[usize::from(id[0]) % self.0.len()].lock().unwrap_or_else(PoisonError::into_inner).insert(*id)
    }
}

/// Byte and blob counts of what was added, per blob type.
#[derive(Debug, Default)]
struct Added {
    blobs: AtomicU64,
    plain: AtomicU64,
    packed: AtomicU64,
}

impl Added {
    fn add(&self, plain: u64, packed: u64) {
        self.blobs.fetch_add(1, Ordering::Relaxed);
        self.plain.fetch_add(plain, Ordering::Relaxed);
        self.packed.fetch_add(packed, Ordering::Relaxed);
    }
}

/// What every thread of one backup reads.
struct Shared<'a> {
    sealer: Sealer,
    known: Known,
    seen: Seen,
    zstd: Option<i32>,
    reporter: &'a Reporter,
    guard: &'a Arc<Guard>,
    data_target: usize,
    tree_target: usize,
    data: Added,
    trees: Added,
}

impl Shared<'_> {
    /// Records the first failure and stops the backup.
    fn fail(&self, e: Error) {
        self.guard.fail(e);
    }
}

/// The pack size rustic would choose for `tpe` in a repository already holding `current`
/// bytes of it: the configured size, grown with the square root of the repository's.
fn pack_target(config: &rustic_core::repofile::ConfigFile, tpe: BlobType, current: u64) -> usize {
    let (size, grow, limit) = config.packsize(tpe);
    let size =
        if grow == 0 { size } else { (current.isqrt() as u32).saturating_mul(grow).saturating_add(size) };
    size.min(limit).min(4076 << 20) as usize
}

/// Backs up `src` as `snap` (its tags, host and time set) with `parent`'s trees as the
/// reference; writes the snapshot and returns it with its id and summary.
pub(crate) fn backup<R>(
    target: &Target<'_>,
    src: &R,
    mut snap: SnapshotFile,
    paths: &[PathBuf],
    parent: Option<&SnapshotFile>,
    scan: bool,
) -> Result<SnapshotFile, Error>
where
    R: ReadSource,
    R::Open: Send + 'static,
{
    let repo = target.repo;
    let config = repo.config();
    let zstd = config.zstd().map_err(|e| target.redactor.rustic(&e))?;
    let known = Known::load(repo, target.redactor)?;
    let shared = Shared {
        sealer: Sealer::new(&repo.key())?,
        seen: Seen::new(),
        zstd,
        reporter: target.reporter,
        guard: target.guard,
        data_target: pack_target(config, BlobType::Data, known.data_bytes),
        tree_target: pack_target(config, BlobType::Tree, known.tree_bytes),
        data: Added::default(),
        trees: Added::default(),
        known,
    };
    let chunker = Chunker::new(config)?;
    let how = Unpacked { zstd };
    let uploads = Uploads::new(target.guarded.clone(), shared.sealer.clone(), how);
    let mut summary = snap.summary.take().unwrap_or_default();
    summary.backup_start = Zoned::now();
    for p in paths {
        let p =
            p.to_str().ok_or_else(|| Error::InvalidInput(format!("path {} is not UTF-8", p.display())))?;
        snap.paths.add(p.to_owned());
    }
    if let Some(p) = parent {
        snap.parent = Some(p.id);
        snap.parents = vec![p.id];
    }

    let threads = target.threads.max(1);
    let walked = std::thread::scope(|s| -> Result<(TreeId, SnapshotSummary), Error> {
        let (packs_tx, packs_rx) = bounded::<Finished>(threads * 2);
        let (jobs_tx, jobs_rx) = bounded::<Vec<FileJob<R::Open>>>(threads * 2);
        let (events_tx, events_rx) = bounded::<Event>(EVENTS);
        let (done_tx, done_rx) = unbounded::<(u64, Option<FileDone>)>();
        if scan {
            let reporter = shared.reporter;
            s.spawn(move || match src.size() {
                Ok(Some(bytes)) => reporter.set_bytes_total(bytes),
                Ok(None) => {}
                Err(e) => {
                    reporter.log(crate::Level::Debug, format!("sizing the source: {}", e.display_log()))
                }
            });
        }
        for _ in 0..2 {
            let (rx, uploads, shared) = (packs_rx.clone(), &uploads, &shared);
            s.spawn(move || upload_loop(&rx, uploads, shared));
        }
        drop(packs_rx);
        for _ in 0..threads {
            let (jobs, done, packs) = (jobs_rx.clone(), done_tx.clone(), packs_tx.clone());
            let mut worker = Worker::new(&shared, chunker.clone(), packs)?;
            s.spawn(move || worker.run(&jobs, &done));
        }
        drop((jobs_rx, done_tx));
        // The root compares with the parent snapshot's root tree.
        let root_parent = parent.map_or(Match::New, |p| Match::Same(Some(*p.tree)));
        let assembler = {
            let (shared, packs) = (&shared, packs_tx.clone());
            let assembler = Assembler::new(shared, packs, done_rx, root_parent)?;
            s.spawn(move || assembler.run(&events_rx))
        };
        drop(packs_tx);
        let mut trees =
            Trees::new(&shared.known, target.guarded.as_ref() as &dyn ReadBackend, &shared.sealer);
        let warn = |m: String| shared.reporter.warn(m);
        let parent_tree = parent.map(|p| *p.tree);
        let mut walker = Walker {
            shared: &shared,
            parent: Parent::new(&mut trees, parent_tree, &warn),
            trees,
            events: events_tx,
            jobs: jobs_tx,
            batch: Vec::new(),
            batch_bytes: 0,
            seq: 0,
        };
        let walked = walker.walk(src);
        drop(walker);
        if let Err(e) = walked {
            shared.fail(e);
        }
        assembler.join().map_err(|_| Error::Internal("the tree assembler panicked".into()))?
    });
    // Whatever was uploaded is indexed, even when the backup stopped.
    if let Some(reason) = target.guard.stop_reason() {
        if let Err(e) = uploads.flush_via(target.raw.as_ref()) {
            target.reporter.warn(format!("could not index the data uploaded before stopping: {e}"));
        }
        return Err(reason);
    }
    let (root, part) = walked?;
    uploads.flush()?;
    merge(&mut summary, &part);
    let (data, trees) = (&shared.data, &shared.trees);
    summary.data_blobs = data.blobs.load(Ordering::Relaxed);
    summary.tree_blobs = trees.blobs.load(Ordering::Relaxed);
    summary.data_added_files = data.plain.load(Ordering::Relaxed);
    summary.data_added_files_packed = data.packed.load(Ordering::Relaxed);
    summary.data_added_trees = trees.plain.load(Ordering::Relaxed);
    summary.data_added_trees_packed = trees.packed.load(Ordering::Relaxed);
    summary.data_added = summary.data_added_files + summary.data_added_trees;
    summary.data_added_packed = summary.data_added_files_packed + summary.data_added_trees_packed;
    let end = Zoned::now();
    let secs =
        |from: &Zoned| (end.timestamp().as_nanosecond() - from.timestamp().as_nanosecond()) as f64 / 1e9;
    summary.backup_duration = secs(&summary.backup_start);
    summary.total_duration = secs(&snap.time);
    summary.backup_end = end;
    snap.tree = root;
    snap.summary = Some(summary);
    let json = serde_json::to_vec(&snap).map_err(|e| Error::Internal(format!("snapshot: {e}")))?;
    let id = save_unpacked(target.guarded.as_ref(), &shared.sealer, how, FileType::Snapshot, &json)
        .map_err(|e| target.guard.stop_reason().unwrap_or(e))?;
    snap.id = id.into();
    Ok(snap)
}

/// The counts the assembler made, into the summary.
fn merge(summary: &mut SnapshotSummary, part: &SnapshotSummary) {
    summary.files_new = part.files_new;
    summary.files_changed = part.files_changed;
    summary.files_unmodified = part.files_unmodified;
    summary.total_files_processed = part.total_files_processed;
    summary.total_bytes_processed = part.total_bytes_processed;
    summary.dirs_new = part.dirs_new;
    summary.dirs_changed = part.dirs_changed;
    summary.dirs_unmodified = part.dirs_unmodified;
    summary.total_dirs_processed = part.total_dirs_processed;
    summary.total_dirsize_processed = part.total_dirsize_processed;
}

fn upload_loop(rx: &Receiver<Finished>, uploads: &Uploads, shared: &Shared<'_>) {
    let mut last_index = Instant::now();
    for pack in rx {
        if shared.guard.stopped() {
            continue;
        }
        if let Err(e) = uploads.upload(pack) {
            shared.fail(shared.guard.stop_reason().unwrap_or(e));
            continue;
        }
        if last_index.elapsed() >= INDEX_AGE {
            last_index = Instant::now();
            if let Err(e) = uploads.flush() {
                shared.fail(e);
            }
        }
    }
}

/// A file for a worker: its place in the walk, and how to open it.
struct FileJob<O> {
    seq: u64,
    open: O,
}

/// A worker's answer: the file's content ids and the bytes read (`None`: skipped, warned).
struct FileDone {
    content: Vec<DataId>,
    size: u64,
}

/// What the walker tells the assembler, in source order.
enum Event {
    /// A directory starts (its node; how it compares with the parent, with the parent's tree).
    Enter { path: PathBuf, node: Node, parent: Match<Option<Id>> },
    /// The current directory ends.
    Leave,
    /// An entry of the current directory; `pending` names the worker's answer to wait for.
    Item { node: Node, parent: Match<()>, pending: Option<u64> },
}

struct Walker<'s, 'a, O> {
    shared: &'s Shared<'a>,
    parent: Parent,
    trees: Trees<'s>,
    events: Sender<Event>,
    jobs: Sender<Vec<FileJob<O>>>,
    batch: Vec<FileJob<O>>,
    batch_bytes: u64,
    seq: u64,
}

fn gone() -> Error {
    Error::Internal("the backup pipeline ended early".into())
}

impl<O: ReadSourceOpen> Walker<'_, '_, O> {
    fn flush(&mut self) -> Result<(), Error> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.batch_bytes = 0;
        self.jobs.send(std::mem::take(&mut self.batch)).map_err(|_| gone())
    }

    /// Sends an event; when the assembler is far behind, hands the open batch to the workers
    /// first (the assembler may be waiting for it).
    fn emit(&mut self, ev: Event) -> Result<(), Error> {
        match self.events.try_send(ev) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(ev)) => {
                self.flush()?;
                self.events.send(ev).map_err(|_| gone())
            }
            Err(TrySendError::Disconnected(_)) => Err(gone()),
        }
    }

    fn enter(&mut self, path: &Path, node: Node) -> Result<(), Error> {
        let parent = match self.parent.compare(&node) {
            Match::Same(p) => Match::Same(p.subtree.map(|t| *t)),
            Match::Changed => Match::Changed,
            Match::New => Match::New,
        };
        let warn = |m: String| self.shared.reporter.warn(m);
        self.parent.enter(&mut self.trees, &node.name(), &warn);
        self.emit(Event::Enter { path: path.to_path_buf(), node, parent })
    }

    fn leave(&mut self) -> Result<(), Error> {
        self.parent.leave();
        self.emit(Event::Leave)
    }

    fn item(&mut self, path: &Path, mut node: Node, open: Option<O>) -> Result<(), Error> {
        let parent = match self.parent.compare(&node) {
            Match::Same(p) => {
                let known = p.content.iter().flatten().all(|id| self.shared.known.has_data(id));
                if known {
                    node.content.clone_from(&p.content);
                    Match::Same(())
                } else {
                    self.shared.reporter.warn(format!(
                        "blobs of unchanged file {} are missing from the index; reading it again",
                        path.display()
                    ));
                    Match::New
                }
            }
            Match::Changed => Match::Changed,
            Match::New => Match::New,
        };
        let pending = if parent != Match::Same(()) && node.node_type == NodeType::File {
            let Some(open) = open else {
                self.shared.reporter.warn(format!("skipped {}: it cannot be opened", path.display()));
                return Ok(());
            };
            self.seq += 1;
            let job = FileJob { seq: self.seq, open };
            if node.meta.size >= SMALL_FILE {
                self.flush()?;
                self.jobs.send(vec![job]).map_err(|_| gone())?;
            } else {
                self.batch.push(job);
                self.batch_bytes += node.meta.size;
                if self.batch.len() >= BATCH_FILES || self.batch_bytes >= BATCH_BYTES {
                    self.flush()?;
                }
            }
            Some(self.seq)
        } else {
            if parent == Match::Same(()) {
                self.shared.reporter.add_bytes(node.meta.size);
            }
            None
        };
        self.emit(Event::Item { node, parent, pending })
    }

    /// Walks the source: directories are entered and left as the sorted paths require (path
    /// components above the backed-up paths become directories of mode 755, as rustic makes
    /// them), every entry becomes an item of its directory.
    fn walk<R: ReadSource<Open = O>>(&mut self, src: &R) -> Result<(), Error> {
        let mut cur = PathBuf::new();
        // Per component of `cur`: whether it is a directory of the snapshot (a normal name).
        let mut named: Vec<bool> = Vec::new();
        for entry in src.entries() {
            // Unreadable entries were reported by the guarded source.
            let Ok(ReadSourceEntry { path, node, open }) = entry else { continue };
            let dir = if node.is_dir() {
                path.clone()
            } else {
                match path.parent() {
                    Some(p) => p.to_path_buf(),
                    None => continue,
                }
            };
            while !dir.starts_with(&cur) {
                let Some(was_named) = named.pop() else { break };
                cur.pop();
                if was_named {
                    self.leave()?;
                }
            }
            let missing: Vec<Component<'_>> =
                dir.strip_prefix(&cur).map(|rest| rest.components().collect()).unwrap_or_default();
            let mut node = Some(node);
            for comp in missing {
                cur.push(comp);
                let Component::Normal(name) = comp else {
                    named.push(false);
                    continue;
                };
                named.push(true);
                if cur == dir && node.as_ref().is_some_and(Node::is_dir) {
                    let own = node.take().unwrap_or_default();
                    self.enter(&path, own)?;
                } else {
                    let meta = Metadata { mode: Some(0o755), ..Metadata::default() };
                    self.enter(&cur.clone(), Node::new_node(name, NodeType::Dir, meta))?;
                }
            }
            if let Some(node) = node {
                self.item(&path, node, open)?;
            }
        }
        self.flush()?;
        while let Some(was_named) = named.pop() {
            if was_named {
                self.leave()?;
            }
        }
        Ok(())
    }
}

/// One worker thread's state: everything a blob passes through, reused for every blob.
struct Worker<'s, 'a> {
    shared: &'s Shared<'a>,
    chunker: Chunker,
    compress: Option<zstd::bulk::Compressor<'static>>,
    decompress: zstd::bulk::Decompressor<'static>,
    buf: Vec<u8>,
    zbuf: Vec<u8>,
    check: Vec<u8>,
    pack: Pack,
    packs: Sender<Finished>,
}

impl<'s, 'a> Worker<'s, 'a> {
    fn new(shared: &'s Shared<'a>, chunker: Chunker, packs: Sender<Finished>) -> Result<Self, Error> {
        let zstd = |e: std::io::Error| Error::Internal(format!("zstd: {e}"));
        let max = chunker.max();
        Ok(Self {
            shared,
            compress: shared
                .zstd
                .map(|level| zstd::bulk::Compressor::new(level).map_err(zstd))
                .transpose()?,
            decompress: zstd::bulk::Decompressor::new().map_err(zstd)?,
            buf: vec![0; max + READ],
            zbuf: Vec::with_capacity(zstd::zstd_safe::compress_bound(max)),
            check: Vec::with_capacity(max),
            pack: Pack::new(BlobType::Data, shared.data_target + max),
            chunker,
            packs,
        })
    }

    fn run<O: ReadSourceOpen>(
        &mut self,
        jobs: &Receiver<Vec<FileJob<O>>>,
        done: &Sender<(u64, Option<FileDone>)>,
    ) {
        for batch in jobs {
            for job in batch {
                let result = if self.shared.guard.stopped() { None } else { self.file(job.open) };
                if done.send((job.seq, result)).is_err() {
                    return;
                }
            }
        }
        if !self.pack.is_empty()
            && let Err(e) = self.ship()
        {
            self.shared.fail(e);
        }
    }

    /// Reads one file through the pipeline; `None` when it could not be read (warned).
    /// Chunks are cut and stored as the bytes arrive, so a slow stream makes progress.
    fn file<O: ReadSourceOpen>(&mut self, open: O) -> Option<FileDone> {
        let mut reader = open.open().ok()?;
        self.chunker.reset();
        let mut content = Vec::new();
        let mut size = 0_u64;
        // `buf[start..filled]` holds the current chunk's bytes so far (fewer than `max`).
        let (mut start, mut filled, mut eof) = (0, 0, false);
        let cap = self.buf.len();
        while !eof {
            if cap - filled < READ {
                self.buf.copy_within(start..filled, 0);
                filled -= start;
                start = 0;
            }
            // One read call: whatever the source has now (a file: all it can; a pipe: what is there).
            let n = loop {
                match reader.read(&mut self.buf[filled..(filled + READ).min(cap)]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => return None,
                }
            };
            filled += n;
            eof = n == 0;
            // Progress counts bytes as they are read: a slow stream shows them before its first
            // chunk is cut, which may be up to the chunker's maximum (8 MiB) later.
            self.shared.reporter.add_bytes(n as u64);
            while let Some(n) = self.chunker.find(&self.buf[start..filled], eof) {
                if let Err(e) = self.blob(start, n, &mut content) {
                    self.shared.fail(e);
                    return None;
                }
                start += n;
                size += n as u64;
            }
        }
        Some(FileDone { content, size })
    }

    /// Hashes the chunk `buf[start..start + n]`; stores it unless the repository or this
    /// backup already has it.
    fn blob(&mut self, start: usize, n: usize, content: &mut Vec<DataId>) -> Result<(), Error> {
        let chunk = &self.buf[start..start + n];
        let id: [u8; 32] = Sha256::digest(chunk).into();
        content.push(DataId::from(Id::new(id)));
        if self.shared.known.has_data(&Id::new(id)) || !self.shared.seen.claim(&id) {
            return Ok(());
        }
        let stored = store(
            &mut self.compress,
            &mut self.decompress,
            &mut self.zbuf,
            &mut self.check,
            &self.shared.sealer,
            &mut self.pack,
            id,
            chunk,
        )?;
        self.shared.data.add(n as u64, u64::from(stored));
        if self.pack.size() >= self.shared.data_target || self.pack.blobs() >= MAX_BLOBS {
            self.ship()?;
        }
        Ok(())
    }

    /// Finishes the current pack and hands it to the uploaders.
    fn ship(&mut self) -> Result<(), Error> {
        let capacity = self.shared.data_target + self.chunker.max();
        let pack = std::mem::replace(&mut self.pack, Pack::new(BlobType::Data, capacity));
        let finished = pack.finish(&self.shared.sealer)?;
        self.packs.send(finished).map_err(|_| gone())
    }
}

/// Compresses `plain` (when the repository compresses and it helps), checks that the
/// compressed form gives `plain` back, and seals the result into `pack`; returns the stored
/// length.
#[allow(clippy::too_many_arguments)]
fn store(
    compress: &mut Option<zstd::bulk::Compressor<'static>>,
    decompress: &mut zstd::bulk::Decompressor<'static>,
    zbuf: &mut Vec<u8>,
    check: &mut Vec<u8>,
    sealer: &Sealer,
    pack: &mut Pack,
    id: [u8; 32],
    plain: &[u8],
) -> Result<u32, Error> {
    if let Some(c) = compress.as_mut() {
        zbuf.clear();
        zbuf.reserve(zstd::zstd_safe::compress_bound(plain.len()));
        c.compress_to_buffer(plain, zbuf).map_err(|e| Error::Internal(format!("zstd: {e}")))?;
        if zbuf.len() < plain.len() {
            check.clear();
            check.reserve(plain.len());
            let n = decompress
                .decompress_to_buffer(zbuf.as_slice(), check)
                .map_err(|e| Error::Internal(format!("compressed blob does not decompress: {e}")))?;
            if n != plain.len() || check.as_slice() != plain {
                return Err(Error::Internal(format!(
                    "blob {} does not decompress to its data (memory or compressor fault)",
                    hex::encode(id)
                )));
            }
            return pack.add(sealer, id, zbuf, Some(plain.len()));
        }
    }
    pack.add(sealer, id, plain, None)
}

/// A directory being rebuilt.
struct Dir {
    path: PathBuf,
    node: Option<Node>,
    parent: Match<Option<Id>>,
    tree: Tree,
}

struct Assembler<'s, 'a> {
    shared: &'s Shared<'a>,
    packs: Sender<Finished>,
    done: Receiver<(u64, Option<FileDone>)>,
    early: HashMap<u64, Option<FileDone>>,
    stack: Vec<Dir>,
    current: Dir,
    pack: Pack,
    seen: HashSet<[u8; 32]>,
    compress: Option<zstd::bulk::Compressor<'static>>,
    decompress: zstd::bulk::Decompressor<'static>,
    zbuf: Vec<u8>,
    check: Vec<u8>,
    summary: SnapshotSummary,
}

impl<'s, 'a> Assembler<'s, 'a> {
    fn new(
        shared: &'s Shared<'a>,
        packs: Sender<Finished>,
        done: Receiver<(u64, Option<FileDone>)>,
        root_parent: Match<Option<Id>>,
    ) -> Result<Self, Error> {
        let zstd = |e: std::io::Error| Error::Internal(format!("zstd: {e}"));
        Ok(Self {
            shared,
            packs,
            done,
            early: HashMap::new(),
            stack: Vec::new(),
            current: Dir { path: PathBuf::new(), node: None, parent: root_parent, tree: Tree::default() },
            pack: Pack::new(BlobType::Tree, shared.tree_target),
            seen: HashSet::new(),
            compress: shared
                .zstd
                .map(|level| zstd::bulk::Compressor::new(level).map_err(zstd))
                .transpose()?,
            decompress: zstd::bulk::Decompressor::new().map_err(zstd)?,
            zbuf: Vec::new(),
            check: Vec::new(),
            summary: SnapshotSummary::default(),
        })
    }

    /// Consumes the walker's events; returns the root tree and the counts.
    fn run(mut self, events: &Receiver<Event>) -> Result<(TreeId, SnapshotSummary), Error> {
        let result = self.consume(events);
        if let Err(e) = &result {
            self.shared.fail(e.clone());
        }
        result
    }

    fn consume(&mut self, events: &Receiver<Event>) -> Result<(TreeId, SnapshotSummary), Error> {
        for ev in events {
            match ev {
                Event::Enter { path, node, parent } => {
                    let next = Dir { path, node: Some(node), parent, tree: Tree::default() };
                    self.stack.push(std::mem::replace(&mut self.current, next));
                }
                Event::Leave => {
                    let up = self.stack.pop().ok_or_else(|| Error::Internal("left the root".into()))?;
                    let dir = std::mem::replace(&mut self.current, up);
                    let id = self.save_tree(&dir)?;
                    let mut node =
                        dir.node.ok_or_else(|| Error::Internal("a directory without node".into()))?;
                    node.subtree = Some(id);
                    self.current.tree.nodes.push(node);
                }
                Event::Item { mut node, parent, pending } => {
                    let size = match pending {
                        None if parent == Match::Same(()) => node.meta.size,
                        None => 0,
                        Some(seq) => match self.answer(seq) {
                            Some(done) => {
                                node.content = Some(done.content);
                                node.meta.size = done.size;
                                done.size
                            }
                            None => continue,
                        },
                    };
                    let s = &mut self.summary;
                    match parent {
                        Match::Same(()) => s.files_unmodified += 1,
                        Match::Changed => s.files_changed += 1,
                        Match::New => s.files_new += 1,
                    }
                    s.total_files_processed += 1;
                    s.total_bytes_processed += size;
                    self.current.tree.nodes.push(node);
                }
            }
        }
        if self.shared.guard.stopped() {
            return Err(self.shared.guard.stop_reason().unwrap_or(Error::Cancelled));
        }
        if !self.stack.is_empty() {
            return Err(Error::Internal("the walk ended inside a directory".into()));
        }
        let root = std::mem::replace(
            &mut self.current,
            Dir { path: PathBuf::new(), node: None, parent: Match::New, tree: Tree::default() },
        );
        let id = self.save_tree(&root)?;
        if !self.pack.is_empty() {
            let pack = std::mem::replace(&mut self.pack, Pack::new(BlobType::Tree, 0));
            self.packs.send(pack.finish(&self.shared.sealer)?).map_err(|_| gone())?;
        }
        Ok((id, std::mem::take(&mut self.summary)))
    }

    /// The worker's answer for file `seq` (answers arrive out of order).
    fn answer(&mut self, seq: u64) -> Option<FileDone> {
        if let Some(done) = self.early.remove(&seq) {
            return done;
        }
        for (s, done) in &self.done {
            if s == seq {
                return done;
            }
            self.early.insert(s, done);
        }
        None
    }

    /// Serialises a directory's tree as rustic does, counts it, stores it when new.
    fn save_tree(&mut self, dir: &Dir) -> Result<TreeId, Error> {
        let (bytes, _) = dir
            .tree
            .serialize()
            .map_err(|e| Error::Internal(format!("serialising the tree of {}: {e:?}", dir.path.display())))?;
        let raw: [u8; 32] = Sha256::digest(&bytes).into();
        let id = Id::new(raw);
        let s = &mut self.summary;
        s.total_dirs_processed += 1;
        s.total_dirsize_processed += bytes.len() as u64;
        match &dir.parent {
            Match::Same(Some(p)) if *p == id => {
                s.dirs_unmodified += 1;
                return Ok(TreeId::from(id));
            }
            Match::New => s.dirs_new += 1,
            _ => s.dirs_changed += 1,
        }
        if !self.shared.known.has_tree(&id) && self.seen.insert(raw) {
            let stored = store(
                &mut self.compress,
                &mut self.decompress,
                &mut self.zbuf,
                &mut self.check,
                &self.shared.sealer,
                &mut self.pack,
                raw,
                &bytes,
            )?;
            self.shared.trees.add(bytes.len() as u64, u64::from(stored));
            if self.pack.size() >= self.shared.tree_target || self.pack.blobs() >= MAX_BLOBS {
                let pack =
                    std::mem::replace(&mut self.pack, Pack::new(BlobType::Tree, self.shared.tree_target));
                self.packs.send(pack.finish(&self.shared.sealer)?).map_err(|_| gone())?;
            }
        }
        Ok(TreeId::from(id))
    }
}
