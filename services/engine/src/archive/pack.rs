//! Pack files and the repository files that name them, in restic's format (design document,
//! "Pack Format" and "Indexing").
//!
//! A [`Pack`] is one growing buffer: each blob is sealed straight into it, and its header entry
//! (type, stored length, uncompressed length when compressed, id) is kept beside. Finishing
//! seals the header after the blobs, appends its length, checks every blob's and the header's
//! tag in the final bytes (what will be uploaded is what was sealed) and names the pack by the
//! SHA-256 of those bytes. [`Uploads`] writes finished packs on its own thread and records
//! them in index files every [`INDEX_EVERY`] packs, so an interrupted backup leaves its blobs
//! findable by the next one. [`save_unpacked`] writes an index or snapshot file: JSON,
//! compressed in version-2 repositories, sealed, named by its hash.
//!
//! Nothing here decides what to store; callers hand in blobs already deduplicated.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use rustic_core::repofile::BlobType;
use rustic_core::{FileType, Id, WriteBackend};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::seal::{OVERHEAD, Sealer};
use crate::Error;

/// Packs recorded per index file written during a backup.
pub(crate) const INDEX_EVERY: usize = 64;
/// Most blobs in one pack (restic and rustic use the same bound).
pub(crate) const MAX_BLOBS: usize = 10_000;

/// One header entry's worth of facts about a stored blob.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub(crate) id: [u8; 32],
    pub(crate) offset: u32,
    /// Stored (sealed) length.
    pub(crate) length: u32,
    /// Length before compression, when compressed.
    pub(crate) uncompressed: Option<NonZeroU32>,
}

/// A pack being filled with blobs of one type.
#[derive(Debug)]
pub(crate) struct Pack {
    tpe: BlobType,
    buf: Vec<u8>,
    entries: Vec<Entry>,
    /// Bytes of plaintext added (before compression) and stored, for the snapshot summary.
    pub(crate) plain_bytes: u64,
}

/// A finished pack, ready to upload.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) id: Id,
    pub(crate) tpe: BlobType,
    pub(crate) bytes: Vec<u8>,
    pub(crate) entries: Vec<Entry>,
}

/// Header bytes per entry: type, length, id; compressed entries add the uncompressed length.
fn entry_len(e: &Entry) -> usize {
    if e.uncompressed.is_some() { 41 } else { 37 }
}

impl Pack {
    pub(crate) fn new(tpe: BlobType, capacity: usize) -> Self {
        Self { tpe, buf: Vec::with_capacity(capacity), entries: Vec::new(), plain_bytes: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes the pack would have if finished now.
    pub(crate) fn size(&self) -> usize {
        self.buf.len() + self.entries.iter().map(entry_len).sum::<usize>() + OVERHEAD + 4
    }

    pub(crate) fn blobs(&self) -> usize {
        self.entries.len()
    }

    /// Seals `stored` (the blob, compressed when `uncompressed` is set) into the pack; returns
    /// the stored length.
    pub(crate) fn add(
        &mut self,
        sealer: &Sealer,
        id: [u8; 32],
        stored: &[u8],
        uncompressed: Option<usize>,
    ) -> Result<u32, Error> {
        let offset = u32::try_from(self.buf.len()).map_err(|_| Error::Internal("pack over 4 GiB".into()))?;
        let length = sealer.seal_into(&mut self.buf, stored)?;
        let length = u32::try_from(length).map_err(|_| Error::Internal("blob over 4 GiB".into()))?;
        let uncompressed = uncompressed.and_then(|n| u32::try_from(n).ok()).and_then(NonZeroU32::new);
        self.plain_bytes += uncompressed.map_or(stored.len() as u64, |n| u64::from(n.get()));
        self.entries.push(Entry { id, offset, length, uncompressed });
        Ok(length)
    }

    /// Appends the sealed header and its length, verifies every tag in the final bytes and
    /// names the pack.
    pub(crate) fn finish(self, sealer: &Sealer) -> Result<Finished, Error> {
        let Self { tpe, mut buf, entries, .. } = self;
        let mut header = Vec::with_capacity(entries.iter().map(entry_len).sum());
        for e in &entries {
            let kind: u8 = match (tpe, e.uncompressed.is_some()) {
                (BlobType::Data, false) => 0,
                (BlobType::Tree, false) => 1,
                (BlobType::Data, true) => 2,
                (BlobType::Tree, true) => 3,
            };
            header.push(kind);
            header.extend_from_slice(&e.length.to_le_bytes());
            if let Some(n) = e.uncompressed {
                header.extend_from_slice(&n.get().to_le_bytes());
            }
            header.extend_from_slice(&e.id);
        }
        let header_start = buf.len();
        let sealed = sealer.seal_into(&mut buf, &header)?;
        buf.extend_from_slice(&(sealed as u32).to_le_bytes());
        // The check: every blob and the header as they will be uploaded.
        for e in &entries {
            let (start, end) = (e.offset as usize, e.offset as usize + e.length as usize);
            if !sealer.verify(&buf[start..end]) {
                return Err(Error::Internal(format!(
                    "blob {} failed its check after sealing",
                    hex::encode(e.id)
                )));
            }
        }
        if !sealer.verify(&buf[header_start..header_start + sealed]) {
            return Err(Error::Internal("a pack header failed its check after sealing".into()));
        }
        let id = Id::new(Sha256::digest(&buf).into());
        Ok(Finished { id, tpe, bytes: buf, entries })
    }
}

/// An index file (restic's JSON).
#[derive(Debug, Default, Serialize)]
struct IndexJson {
    packs: Vec<PackJson>,
}

#[derive(Debug, Serialize)]
struct PackJson {
    id: String,
    blobs: Vec<BlobJson>,
}

#[derive(Debug, Serialize)]
struct BlobJson {
    id: String,
    #[serde(rename = "type")]
    tpe: &'static str,
    offset: u32,
    length: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    uncompressed_length: Option<NonZeroU32>,
}

/// How an unpacked file (index, snapshot) is stored: compressed in version-2 repositories.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unpacked {
    /// zstd level; `None` in version-1 repositories.
    pub(crate) zstd: Option<i32>,
}

/// Writes an unpacked repository file (its JSON given) and returns its id.
pub(crate) fn save_unpacked(
    backend: &dyn WriteBackend,
    sealer: &Sealer,
    how: Unpacked,
    tpe: FileType,
    json: &[u8],
) -> Result<Id, Error> {
    let plain = match how.zstd {
        Some(level) => {
            // Version byte 2: zstd-compressed JSON follows.
            let mut v = vec![2];
            v.extend(zstd::bulk::compress(json, level).map_err(|e| Error::Internal(format!("zstd: {e}")))?);
            v
        }
        None => json.to_vec(),
    };
    let mut sealed = Vec::with_capacity(plain.len() + OVERHEAD);
    sealer.seal_into(&mut sealed, &plain)?;
    let id = Id::new(Sha256::digest(&sealed).into());
    backend
        .write_bytes(tpe, &id, true, Bytes::from(sealed).into())
        .map_err(|e| Error::Backend(e.display_log()))?;
    Ok(id)
}

/// Writes finished packs and the index files that record them.
pub(crate) struct Uploads {
    backend: Arc<dyn WriteBackend>,
    sealer: Sealer,
    how: Unpacked,
    pending: Mutex<IndexJson>,
}

impl std::fmt::Debug for Uploads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploads").finish_non_exhaustive()
    }
}

impl Uploads {
    pub(crate) fn new(backend: Arc<dyn WriteBackend>, sealer: Sealer, how: Unpacked) -> Self {
        Self { backend, sealer, how, pending: Mutex::new(IndexJson::default()) }
    }

    /// Uploads one pack, then records it (writing an index file every [`INDEX_EVERY`] packs).
    pub(crate) fn upload(&self, pack: Finished) -> Result<(), Error> {
        let tpe = match pack.tpe {
            BlobType::Data => "data",
            BlobType::Tree => "tree",
        };
        let blobs = pack
            .entries
            .iter()
            .map(|e| BlobJson {
                id: hex::encode(e.id),
                tpe,
                offset: e.offset,
                length: e.length,
                uncompressed_length: e.uncompressed,
            })
            .collect();
        self.backend
            .write_bytes(FileType::Pack, &pack.id, pack.tpe == BlobType::Tree, Bytes::from(pack.bytes).into())
            .map_err(|e| Error::Backend(e.display_log()))?;
        let full = {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            pending.packs.push(PackJson { id: pack.id.to_hex().as_str().to_owned(), blobs });
            (pending.packs.len() >= INDEX_EVERY).then(|| std::mem::take(&mut *pending))
        };
        if let Some(index) = full {
            let json = serde_json::to_vec(&index).map_err(|e| Error::Internal(format!("index: {e}")))?;
            save_unpacked(self.backend.as_ref(), &self.sealer, self.how, FileType::Index, &json)?;
        }
        Ok(())
    }

    /// Writes the index file of the packs not yet recorded.
    pub(crate) fn flush(&self) -> Result<(), Error> {
        self.flush_via(self.backend.as_ref())
    }

    /// As [`Uploads::flush`], through another backend (the unguarded one, after a stop).
    pub(crate) fn flush_via(&self, backend: &dyn WriteBackend) -> Result<(), Error> {
        let index = std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        if index.packs.is_empty() {
            return Ok(());
        }
        let json = serde_json::to_vec(&index).map_err(|e| Error::Internal(format!("index: {e}")))?;
        save_unpacked(backend, &self.sealer, self.how, FileType::Index, &json).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustic_core::repofile::MasterKey;

    #[test]
    fn a_pack_ends_with_its_sealed_header_and_its_length() {
        let sealer = Sealer::new(&MasterKey::new()).expect("sealer");
        let mut pack = Pack::new(BlobType::Data, 1024);
        let (a, b) = ([1; 32], [2; 32]);
        pack.add(&sealer, a, b"first", None).expect("add");
        pack.add(&sealer, b, b"zz", Some(100)).expect("add");
        let predicted = pack.size();
        let done = pack.finish(&sealer).expect("finish");
        assert_eq!(done.bytes.len(), predicted);
        assert_eq!(done.id, Id::new(Sha256::digest(&done.bytes).into()));
        let n = done.bytes.len();
        let header_len = u32::from_le_bytes(done.bytes[n - 4..].try_into().expect("4")) as usize;
        let header = sealer.open(&done.bytes[n - 4 - header_len..n - 4]).expect("header opens");
        assert_eq!(header.len(), 37 + 41);
        assert_eq!(header[0], 0);
        assert_eq!(&header[5..37], &[1; 32]);
        assert_eq!(header[37], 2);
        assert_eq!(u32::from_le_bytes(header[42..46].try_into().expect("4")), 100);
        let first = &done.entries[0];
        let blob = &done.bytes[first.offset as usize..(first.offset + first.length) as usize];
        assert_eq!(sealer.open(blob).expect("blob opens"), b"first");
    }
}
