//! What the repository already holds, read once from its index files: the ids of its data
//! blobs (a backup stores only what is missing), where each tree blob lives (to read the parent
//! snapshot's trees), and how many bytes each blob type fills (pack sizes grow with it).
//!
//! [`Parent`] walks the parent snapshot's trees beside the source, deciding for each entry
//! whether it is unchanged, changed or new, with the rustic engine's rule: same type, size and
//! modification time, and the same change time where both have one. Packs of trees are read
//! whole and the last few kept, so a parent costs a handful of reads even on object stores.
//!
//! Reads only; never writes to the repository.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::OsStr;

use bytes::Bytes;
use rustic_core::repofile::{BlobType, IndexFile, Node, NodeType, Tree};
use rustic_core::{FileType, Id, OpenStatus, ReadBackend, Repository};

use super::seal::Sealer;
use crate::Error;
use crate::error::Redactor;

/// Where a tree blob is stored.
#[derive(Debug, Clone, Copy)]
struct TreeLocation {
    pack: Id,
    offset: u32,
    length: u32,
    compressed: bool,
}

/// The repository's blobs, as its index files list them.
#[derive(Debug, Default)]
pub(crate) struct Known {
    data: HashSet<Id>,
    trees: HashMap<Id, TreeLocation>,
    /// Bytes in packs of each type (for pack sizes).
    pub(crate) data_bytes: u64,
    pub(crate) tree_bytes: u64,
}

impl Known {
    /// Reads every index file of `repo` (in parallel, as rustic streams them).
    pub(crate) fn load(repo: &Repository<OpenStatus>, redactor: &Redactor) -> Result<Self, Error> {
        let mut known = Self::default();
        let files = repo.stream_files::<IndexFile>().map_err(|e| redactor.rustic(&e))?;
        for file in files {
            let (_, index) = file.map_err(|e| redactor.rustic(&e))?;
            // Packs a pending prune marked for deletion do not count: their blobs may go.
            for pack in index.packs {
                let size = u64::from(pack.pack_size());
                let pack_id = *pack.id;
                match pack.blob_type() {
                    BlobType::Data => known.data_bytes += size,
                    BlobType::Tree => known.tree_bytes += size,
                }
                for blob in &pack.blobs {
                    match blob.tpe {
                        BlobType::Data => {
                            known.data.insert(*blob.id);
                        }
                        BlobType::Tree => {
                            known.trees.insert(
                                *blob.id,
                                TreeLocation {
                                    pack: pack_id,
                                    offset: blob.location.offset,
                                    length: blob.location.length,
                                    compressed: blob.location.uncompressed_length.is_some(),
                                },
                            );
                        }
                    }
                }
            }
        }
        Ok(known)
    }

    pub(crate) fn has_data(&self, id: &Id) -> bool {
        self.data.contains(id)
    }

    pub(crate) fn has_tree(&self, id: &Id) -> bool {
        self.trees.contains_key(id)
    }
}

/// Packs of trees kept in memory at most, in bytes.
const TREE_PACK_CACHE: usize = 64 << 20;

/// Reads trees by id, through whole-pack reads kept in a small cache.
pub(crate) struct Trees<'a> {
    known: &'a Known,
    backend: &'a dyn ReadBackend,
    sealer: &'a Sealer,
    packs: VecDeque<(Id, Bytes)>,
}

impl<'a> Trees<'a> {
    pub(crate) fn new(known: &'a Known, backend: &'a dyn ReadBackend, sealer: &'a Sealer) -> Self {
        Self { known, backend, sealer, packs: VecDeque::new() }
    }

    fn pack(&mut self, id: Id) -> Result<Bytes, Error> {
        if let Some((_, bytes)) = self.packs.iter().find(|(p, _)| *p == id) {
            return Ok(bytes.clone());
        }
        let bytes = self.backend.read_full(FileType::Pack, &id).map_err(|e| {
            Error::Backend(format!("reading pack {}: {}", id.to_hex().as_str(), e.display_log()))
        })?;
        self.packs.push_front((id, bytes.clone()));
        while self.packs.iter().map(|(_, b)| b.len()).sum::<usize>() > TREE_PACK_CACHE && self.packs.len() > 1
        {
            self.packs.pop_back();
        }
        Ok(bytes)
    }

    /// The tree `id`.
    pub(crate) fn get(&mut self, id: Id) -> Result<Tree, Error> {
        let loc =
            *self.known.trees.get(&id).ok_or_else(|| {
                Error::Repository(format!("tree {} is not in the index", id.to_hex().as_str()))
            })?;
        let pack = self.pack(loc.pack)?;
        let (start, end) = (loc.offset as usize, loc.offset as usize + loc.length as usize);
        let sealed = pack.get(start..end).ok_or_else(|| {
            Error::Repository(format!("tree {} lies outside its pack", id.to_hex().as_str()))
        })?;
        let plain = self.sealer.open(sealed)?;
        let json = if loc.compressed {
            zstd::decode_all(plain.as_slice())
                .map_err(|e| Error::Repository(format!("tree {}: {e}", id.to_hex().as_str())))?
        } else {
            plain
        };
        serde_json::from_slice(&json)
            .map_err(|e| Error::Repository(format!("tree {}: {e}", id.to_hex().as_str())))
    }
}

/// How an entry compares with the parent snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Match<T> {
    /// Present and unchanged.
    Same(T),
    /// Present, changed.
    Changed,
    /// Not in the parent.
    New,
}

/// The parent snapshot's trees, walked beside the source.
pub(crate) struct Parent {
    /// The parent directory's tree and a cursor into its (sorted) nodes.
    current: Option<(Tree, usize)>,
    stack: Vec<Option<(Tree, usize)>>,
}

impl Parent {
    /// Starts at the root tree of the parent snapshot, if any (an unreadable one counts as
    /// none, with a warning).
    pub(crate) fn new(trees: &mut Trees<'_>, root: Option<Id>, warn: &dyn Fn(String)) -> Self {
        let current = root.and_then(|id| match trees.get(id) {
            Ok(tree) => Some((tree, 0)),
            Err(e) => {
                warn(format!("ignoring the parent snapshot's tree: {e}"));
                None
            }
        });
        Self { current, stack: Vec::new() }
    }

    /// The parent's node named `name` in the current directory (names are sorted).
    fn find(&mut self, name: &OsStr) -> Option<&Node> {
        let (tree, cursor) = self.current.as_mut()?;
        while let Some(node) = tree.nodes.get(*cursor) {
            match (*node.name()).cmp(name) {
                std::cmp::Ordering::Less => *cursor += 1,
                std::cmp::Ordering::Equal => return tree.nodes.get(*cursor),
                std::cmp::Ordering::Greater => return None,
            }
        }
        None
    }

    /// Compares `node` with the parent's node of the same name.
    pub(crate) fn compare(&mut self, node: &Node) -> Match<&Node> {
        let Some(p) = self.find(&node.name()) else { return Match::New };
        let (a, b) = (&p.meta, &node.meta);
        let ctime = a.ctime.as_ref().zip(b.ctime.as_ref()).is_none_or(|(x, y)| x == y);
        if p.node_type == node.node_type && a.size == b.size && a.mtime == b.mtime && ctime {
            Match::Same(p)
        } else {
            Match::Changed
        }
    }

    /// Enters the directory `name`: its parent tree becomes current.
    pub(crate) fn enter(&mut self, trees: &mut Trees<'_>, name: &OsStr, warn: &dyn Fn(String)) {
        let subtree = self.find(name).filter(|n| n.node_type == NodeType::Dir).and_then(|n| n.subtree);
        let next = subtree.and_then(|id| match trees.get(*id) {
            Ok(tree) => Some((tree, 0)),
            Err(e) => {
                warn(format!("ignoring a parent tree: {e}"));
                None
            }
        });
        self.stack.push(std::mem::replace(&mut self.current, next));
    }

    /// Leaves the current directory.
    pub(crate) fn leave(&mut self) {
        self.current = self.stack.pop().flatten();
    }
}
