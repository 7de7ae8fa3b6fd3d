//! Browsing snapshots: one directory's entries, the changes between two snapshots (`restic
//! diff`'s semantics and order) and one file's contents.
//!
//! A [`Browser`] keeps the last few repositories it opened, with their index loaded, so a
//! person clicking through a tree pays the open (key, index) once, not per click. An entry is
//! found only by the digest of the store's location and password, is dropped after
//! [`IDLE`] unused, and re-reads the index when a snapshot names a tree the loaded index does
//! not know (a backup ran since). Listings and diffs are memoised by tree ids, which name
//! content, so a memo is never stale.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rustic_core::repofile::{Node, NodeType, SnapshotFile};
use rustic_core::{IndexedFullStatus, Repository, TreeId};
use sha2::{Digest as _, Sha256};

use crate::cancel::{CancelToken, Guard};
use crate::error::Redactor;
use crate::progress::{NoProgress, Reporter};
use crate::store::{OpenOptions, open};
use crate::{Engine, Error, Store};

/// How long an unused repository stays open.
pub const IDLE: Duration = Duration::from_secs(15 * 60);
/// Directories and diffs remembered per repository.
const MEMO: usize = 32;

/// The kind of a snapshot entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Block device.
    Device,
    /// Character device.
    CharDevice,
    /// Named pipe.
    Fifo,
    /// Unix socket.
    Socket,
}

/// One entry of a snapshot's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// File name.
    pub name: String,
    /// Absolute path inside the snapshot.
    pub path: String,
    /// Kind.
    pub kind: EntryKind,
    /// Size (regular files).
    pub size: u64,
    /// Mode as recorded (Go `os.FileMode` bits, as restic writes them).
    pub mode: u32,
    /// Modification time.
    pub mtime: Option<chrono::DateTime<chrono::Utc>>,
    /// Symlink target.
    pub link_target: String,
    /// Owner id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Owner name.
    pub user: String,
    /// Group name.
    pub group: String,
}

/// A page of one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The snapshot's full id.
    pub snapshot: String,
    /// The directory, normalised.
    pub path: String,
    /// Entries in the directory.
    pub total: usize,
    /// The page.
    pub entries: Vec<Entry>,
}

/// One changed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Absolute path, directories ending in `/`.
    pub path: String,
    /// `+`, `-`, or any of `T`, `M`, `U`.
    pub modifier: String,
    /// The entry's kind (the newer one, the older one when removed).
    pub kind: EntryKind,
}

/// A page of a diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    /// Full id of the older snapshot.
    pub a: String,
    /// Full id of the newer snapshot.
    pub b: String,
    /// Changes in all.
    pub total: usize,
    /// Paths added.
    pub added: usize,
    /// Paths removed.
    pub removed: usize,
    /// Paths changed.
    pub modified: usize,
    /// The page.
    pub changes: Vec<Change>,
}

/// Repositories opened (or re-indexed) for browsing by every [`Browser`] of this process.
static OPENS: AtomicU64 = AtomicU64::new(0);

/// How many times this process opened a repository (or re-read its index) for browsing:
/// browsing a tree of one snapshot must not move it after the first call.
#[must_use]
pub fn repository_opens() -> u64 {
    OPENS.load(Ordering::Relaxed)
}

/// Where [`Browser::read`] sends a file.
pub trait FileSink {
    /// The file's entry, before any data.
    ///
    /// # Errors
    /// Any error stops the read.
    fn entry(&mut self, entry: &Entry) -> Result<(), Error>;
    /// The next bytes.
    ///
    /// # Errors
    /// Any error stops the read.
    fn data(&mut self, bytes: &[u8]) -> Result<(), Error>;
}

/// Open repositories shared by the queries of one worker.
#[derive(Debug)]
pub struct Browser {
    engine: Engine,
    capacity: usize,
    open: Mutex<Vec<Arc<Cached>>>,
}

struct Cached {
    slot: [u8; 32],
    repo: Arc<Repository<IndexedFullStatus>>,
    redactor: Redactor,
    used: Mutex<Instant>,
    dirs: Memo<TreeId, Arc<Vec<Node>>>,
    diffs: Memo<(TreeId, TreeId, bool), Arc<Vec<Change>>>,
}

impl std::fmt::Debug for Cached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cached(..)")
    }
}

/// A small map that forgets the oldest entry beyond [`MEMO`].
struct Memo<K, V>(Mutex<(HashMap<K, V>, VecDeque<K>)>);

impl<K: std::hash::Hash + Eq + Clone, V: Clone> Memo<K, V> {
    fn new() -> Self {
        Self(Mutex::new((HashMap::new(), VecDeque::new())))
    }

    fn get_or(&self, key: K, make: impl FnOnce() -> Result<V, Error>) -> Result<V, Error> {
        if let Some(v) = self.0.lock().unwrap_or_else(PoisonError::into_inner).0.get(&key) {
            return Ok(v.clone());
        }
        let v = make()?;
        let mut g = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if g.0.insert(key.clone(), v.clone()).is_none() {
            g.1.push_back(key);
            if g.1.len() > MEMO
                && let Some(old) = g.1.pop_front()
            {
                g.0.remove(&old);
            }
        }
        Ok(v)
    }
}

impl Browser {
    /// A browser keeping at most `capacity` repositories open.
    #[must_use]
    pub fn new(engine: Engine, capacity: usize) -> Self {
        Self { engine, capacity: capacity.max(1), open: Mutex::new(Vec::new()) }
    }

    /// One page of the directory `path` of `snapshot`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad snapshot id or path, [`Error::NotFound`] for an
    /// unknown snapshot or path, [`Error::NotADirectory`], and store errors.
    pub fn list(
        &self,
        store: &Store,
        snapshot: &str,
        path: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Listing, Error> {
        let components = components(path)?;
        let (repo, snap) = self.snapshot(store, snapshot)?;
        let dir = normalised(&components);
        let node = repo.node(snap.tree, &components)?;
        let tree = match (&node.node_type, node.subtree) {
            (NodeType::Dir, Some(tree)) => tree,
            _ => return Err(Error::NotADirectory(dir)),
        };
        let nodes = repo.nodes(tree)?;
        let entries = nodes.iter().skip(offset).take(limit).map(|n| entry(&dir, n)).collect();
        Ok(Listing { snapshot: snap.id.to_hex().to_string(), path: dir, total: nodes.len(), entries })
    }

    /// One page of the changes from snapshot `a` to snapshot `b` of one store.
    ///
    /// # Errors
    /// As [`Browser::list`].
    pub fn diff(
        &self,
        store: &Store,
        a: &str,
        b: &str,
        metadata: bool,
        offset: usize,
        limit: usize,
    ) -> Result<Diff, Error> {
        let (repo, snap_a) = self.snapshot(store, a)?;
        let (repo_b, snap_b) = self.snapshot(store, b)?;
        // Both lookups may have re-read the index; use the newer repository for both.
        let repo = if Arc::ptr_eq(&repo, &repo_b) { repo } else { repo_b };
        let key = (snap_a.tree, snap_b.tree, metadata);
        let changes = repo.diffs.get_or(key, || {
            let mut out = Vec::new();
            repo.diff_tree("", snap_a.tree, snap_b.tree, metadata, &mut out)?;
            Ok(Arc::new(out))
        })?;
        let count = |f: fn(&str) -> bool| changes.iter().filter(|c| f(&c.modifier)).count();
        Ok(Diff {
            a: snap_a.id.to_hex().to_string(),
            b: snap_b.id.to_hex().to_string(),
            total: changes.len(),
            added: count(|m| m == "+"),
            removed: count(|m| m == "-"),
            modified: count(|m| m != "+" && m != "-"),
            changes: changes.iter().skip(offset).take(limit).cloned().collect(),
        })
    }

    /// Streams the regular file `path` of `snapshot` to `sink`: its entry, then its contents
    /// in chunks of at most `chunk` bytes. An error from `sink` stops the read.
    ///
    /// # Errors
    /// As [`Browser::list`], [`Error::NotAFile`], [`Error::TooLarge`] for a file over
    /// `max_bytes`, and whatever `sink` returns.
    pub fn read(
        &self,
        store: &Store,
        snapshot: &str,
        path: &str,
        limits: (u64, usize),
        sink: &mut dyn FileSink,
    ) -> Result<Entry, Error> {
        let (max_bytes, chunk) = limits;
        let components = components(path)?;
        if components.is_empty() {
            return Err(Error::NotAFile("/".into()));
        }
        let (repo, snap) = self.snapshot(store, snapshot)?;
        let node = repo.node(snap.tree, &components)?;
        let parent = normalised(&components[..components.len() - 1]);
        let found = entry(&parent, &node);
        if !node.is_file() {
            return Err(Error::NotAFile(found.path));
        }
        if found.size > max_bytes {
            return Err(Error::TooLarge { path: found.path, size: found.size, max: max_bytes });
        }
        sink.entry(&found)?;
        let rustic = |e: Box<rustic_core::RusticError>| repo.redactor.rustic(&e);
        let file = repo.repo.open_file(&node).map_err(rustic)?;
        let chunk = chunk.clamp(1, 1 << 20);
        let mut offset = 0_usize;
        while (offset as u64) < found.size {
            let bytes = repo.repo.read_file_at(&file, offset, chunk).map_err(rustic)?;
            if bytes.is_empty() {
                return Err(Error::Repository(format!(
                    "{} ends at byte {offset} of {}",
                    found.path, found.size
                )));
            }
            sink.data(&bytes)?;
            offset += bytes.len();
        }
        Ok(found)
    }

    /// The open repository of `store` holding `snapshot`, opening or re-indexing as needed.
    fn snapshot(&self, store: &Store, snapshot: &str) -> Result<(Arc<Cached>, SnapshotFile), Error> {
        if snapshot.len() < 8 || snapshot.len() > 64 || !snapshot.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::InvalidInput(format!(
                "snapshot `{snapshot}` is not a snapshot id (8 to 64 hex digits)"
            )));
        }
        let slot = slot(store);
        let mut fresh = false;
        let cached = match self.cached(&slot) {
            Some(c) => c,
            None => {
                fresh = true;
                self.load(store, slot)?
            }
        };
        let snap = cached.repo.get_snapshot_from_str(snapshot, |_| true).map_err(|e| {
            Error::NotFound(format!("snapshot {snapshot}: {}", cached.redactor.clean(&e.display_log())))
        })?;
        // A tree the loaded index does not know was written since: read the index again.
        if fresh || cached.nodes(snap.tree).is_ok() {
            return Ok((cached, snap));
        }
        let reloaded = self.load(store, slot)?;
        Ok((reloaded, snap))
    }

    fn cached(&self, slot: &[u8; 32]) -> Option<Arc<Cached>> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.retain(|c| c.used.lock().unwrap_or_else(PoisonError::into_inner).elapsed() < IDLE);
        let found = open.iter().find(|c| &c.slot == slot).cloned()?;
        *found.used.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
        Some(found)
    }

    fn load(&self, store: &Store, slot: [u8; 32]) -> Result<Arc<Cached>, Error> {
        let cancel = CancelToken::new();
        let progress = NoProgress;
        let repo = Reporter::run(&progress, |reporter| {
            let opened = open(
                store,
                &OpenOptions {
                    engine: &self.engine,
                    guard: Guard::new(&cancel),
                    reporter,
                    fail_reads: false,
                    allow_create: false,
                },
            )?;
            let redactor = opened.redactor.clone();
            let repo = opened.repo.to_indexed().map_err(|e| redactor.rustic(&e))?;
            Ok((repo, redactor))
        })?;
        OPENS.fetch_add(1, Ordering::Relaxed);
        let cached = Arc::new(Cached {
            slot,
            repo: Arc::new(repo.0),
            redactor: repo.1,
            used: Mutex::new(Instant::now()),
            dirs: Memo::new(),
            diffs: Memo::new(),
        });
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.retain(|c| c.slot != slot);
        open.push(cached.clone());
        if open.len() > self.capacity {
            // The least recently used goes.
            let oldest = open
                .iter()
                .enumerate()
                .min_by_key(|(_, c)| *c.used.lock().unwrap_or_else(PoisonError::into_inner))
                .map(|(i, _)| i);
            if let Some(i) = oldest {
                open.remove(i);
            }
        }
        Ok(cached)
    }
}

impl Cached {
    /// The nodes of a tree, memoised.
    fn nodes(&self, tree: TreeId) -> Result<Arc<Vec<Node>>, Error> {
        self.dirs.get_or(tree, || {
            let t = self.repo.get_tree(&tree).map_err(|e| self.redactor.rustic(&e))?;
            Ok(Arc::new(t.nodes))
        })
    }

    /// The node at `components` below the root tree.
    fn node(&self, root: TreeId, components: &[String]) -> Result<Node, Error> {
        let mut node = Node::new_node(
            std::ffi::OsStr::new(""),
            NodeType::Dir,
            rustic_core::repofile::Metadata::default(),
        );
        node.subtree = Some(root);
        for (depth, name) in components.iter().enumerate() {
            let here = normalised(&components[..=depth]);
            let Some(tree) = node.subtree.filter(|_| node.is_dir()) else {
                return Err(Error::NotFound(format!(
                    "path {here}: {} is not a directory",
                    normalised(&components[..depth])
                )));
            };
            let nodes = self.nodes(tree)?;
            node = nodes
                .iter()
                .find(|n| n.name().to_string_lossy() == name.as_str())
                .cloned()
                .ok_or_else(|| Error::NotFound(format!("path {here} is not in the snapshot")))?;
        }
        Ok(node)
    }

    /// restic diff of two trees below `prefix`, appended to `out` in restic's order.
    fn diff_tree(
        &self,
        prefix: &str,
        a: TreeId,
        b: TreeId,
        metadata: bool,
        out: &mut Vec<Change>,
    ) -> Result<(), Error> {
        let (na, nb) = (self.nodes(a)?, self.nodes(b)?);
        let by_name = |nodes: &[Node]| -> HashMap<String, Node> {
            nodes.iter().map(|n| (n.name().to_string_lossy().into_owned(), n.clone())).collect()
        };
        let (ma, mb) = (by_name(&na), by_name(&nb));
        let names: BTreeSet<&String> = ma.keys().chain(mb.keys()).collect();
        for name in names {
            let path = format!("{prefix}/{name}");
            match (ma.get(name), mb.get(name)) {
                (Some(n), None) => self.print_all("-", &path, n, out)?,
                (None, Some(n)) => self.print_all("+", &path, n, out)?,
                (Some(n1), Some(n2)) => {
                    let mut modifier = String::new();
                    if kind(n1) != kind(n2) {
                        modifier.push('T');
                    }
                    if n1.is_file() && n2.is_file() && n1.content != n2.content {
                        modifier.push('M');
                        let (mut c1, mut c2) = (n1.clone(), n2.clone());
                        c1.content = None;
                        c2.content = None;
                        if metadata && c1 != c2 {
                            modifier.push('U');
                        }
                    } else if metadata && n1 != n2 {
                        modifier.push('U');
                    }
                    if !modifier.is_empty() {
                        let shown = if n2.is_dir() { format!("{path}/") } else { path.clone() };
                        out.push(Change { path: shown, modifier, kind: kind(n2) });
                    }
                    if let (true, true, Some(s1), Some(s2)) =
                        (n1.is_dir(), n2.is_dir(), n1.subtree, n2.subtree)
                        && s1 != s2
                    {
                        self.diff_tree(&path, s1, s2, metadata, out)?;
                    }
                }
                (None, None) => {}
            }
        }
        Ok(())
    }

    /// An added or removed node and, for a directory, everything below it.
    fn print_all(&self, modifier: &str, path: &str, node: &Node, out: &mut Vec<Change>) -> Result<(), Error> {
        let shown = if node.is_dir() { format!("{path}/") } else { path.to_owned() };
        out.push(Change { path: shown, modifier: modifier.to_owned(), kind: kind(node) });
        if let (true, Some(tree)) = (node.is_dir(), node.subtree) {
            for child in self.nodes(tree)?.iter() {
                self.print_all(modifier, &format!("{path}/{}", child.name().to_string_lossy()), child, out)?;
            }
        }
        Ok(())
    }
}

/// The key of a store's open repository: its location and password, hashed.
fn slot(store: &Store) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"browse\0");
    h.update(store.describe());
    h.update([0]);
    h.update(&store.password);
    h.finalize().into()
}

/// The components of an absolute path inside a snapshot (`""` and `/` are the root).
fn components(path: &str) -> Result<Vec<String>, Error> {
    if !path.is_empty() && !path.starts_with('/') {
        return Err(Error::InvalidInput(format!("path `{path}` must be absolute (start with /)")));
    }
    let mut out = Vec::new();
    for c in path.split('/').filter(|c| !c.is_empty()) {
        if c == "." || c == ".." {
            return Err(Error::InvalidInput(format!("path `{path}` must not contain `.` or `..`")));
        }
        out.push(c.to_owned());
    }
    Ok(out)
}

fn normalised(components: &[String]) -> String {
    if components.is_empty() { "/".into() } else { format!("/{}", components.join("/")) }
}

fn kind(n: &Node) -> EntryKind {
    match n.node_type {
        NodeType::File => EntryKind::File,
        NodeType::Dir => EntryKind::Dir,
        NodeType::Symlink { .. } => EntryKind::Symlink,
        NodeType::Dev { .. } => EntryKind::Device,
        NodeType::Chardev { .. } => EntryKind::CharDevice,
        NodeType::Fifo => EntryKind::Fifo,
        NodeType::Socket => EntryKind::Socket,
    }
}

fn entry(dir: &str, n: &Node) -> Entry {
    let name = n.name().to_string_lossy().into_owned();
    let path = if dir == "/" { format!("/{name}") } else { format!("{dir}/{name}") };
    let m = &n.meta;
    Entry {
        path,
        kind: kind(n),
        size: if n.is_file() { m.size } else { 0 },
        mode: m.mode.unwrap_or(0),
        mtime: m.mtime.as_ref().and_then(|t| {
            chrono::DateTime::from_timestamp(t.as_second(), u32::try_from(t.subsec_nanosecond()).unwrap_or(0))
        }),
        link_target: if n.is_symlink() {
            n.node_type.to_link().to_string_lossy().into_owned()
        } else {
            String::new()
        },
        uid: m.uid.unwrap_or(0),
        gid: m.gid.unwrap_or(0),
        user: m.user.clone().unwrap_or_default(),
        group: m.group.clone().unwrap_or_default(),
        name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_absolute_without_dot_segments() {
        assert_eq!(components("").unwrap(), Vec::<String>::new());
        assert_eq!(components("/").unwrap(), Vec::<String>::new());
        assert_eq!(components("/srv//www/").unwrap(), vec!["srv", "www"]);
        assert!(components("srv").is_err());
        assert!(components("/srv/../etc").is_err());
        assert_eq!(normalised(&components("/a/b/").unwrap()), "/a/b");
    }
}
