//! Content-defined chunking with the repository's Rabin polynomial, cutting exactly where the
//! rustic engine (and restic) cut: a chunk is at least `min` bytes; from there the rolling
//! hash over the last 64 bytes is tested before each further byte, and a chunk ends where its
//! low bits are all zero, or at `max` bytes, or at the end of the file. Equal cuts mean equal
//! blob ids, so data the rustic engine stored deduplicates against ours and back.
//!
//! The polynomial's tables are computed once per backup ([`Chunker::new`]) and cloned into each
//! worker; rustic recomputes them for every file. This module only finds boundaries.

use rustic_cdc::{Rabin64, RollingHash64};
use rustic_core::repofile::ConfigFile;

use crate::Error;

/// Bytes of the rolling hash's window (2^6).
const WINDOW_BITS: u32 = 6;
const WINDOW: usize = 1 << WINDOW_BITS;

/// Finds chunk boundaries; cheap to clone (one per worker thread). It scans a chunk as its
/// bytes arrive: [`Chunker::find`] resumes where the last call stopped, so a slow stream (a
/// command's output) is cut and stored without waiting for `max` bytes.
#[derive(Clone)]
pub(crate) struct Chunker {
    rabin: Rabin64,
    min: usize,
    max: usize,
    mask: u64,
    /// Bytes of the current chunk already slid through the hash (0: not started).
    scanned: usize,
}

impl std::fmt::Debug for Chunker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunker").field("min", &self.min).field("max", &self.max).finish_non_exhaustive()
    }
}

impl Chunker {
    /// The chunker of a repository (its polynomial and sizes).
    pub(crate) fn new(config: &ConfigFile) -> Result<Self, Error> {
        if config.chunker() != rustic_core::repofile::Chunker::Rabin {
            return Err(Error::Repository(
                "the cairn engine writes only repositories with the Rabin chunker (restic's)".into(),
            ));
        }
        let poly = config.poly().map_err(|e| Error::Internal(format!("chunker polynomial: {e}")))?;
        Self::with_sizes(poly, config.chunk_size(), config.chunk_min_size(), config.chunk_max_size())
    }

    /// A chunker with explicit parameters (`size` is the average: a power of two).
    pub(crate) fn with_sizes(poly: u64, size: usize, min: usize, max: usize) -> Result<Self, Error> {
        if !size.is_power_of_two() || min < WINDOW || min > size || max < size {
            return Err(Error::Repository(format!(
                "chunk sizes min {min}, average {size}, max {max} are not usable (power-of-two average, \
                 {WINDOW} <= min <= average <= max)"
            )));
        }
        Ok(Self {
            rabin: Rabin64::new_with_polynom(WINDOW_BITS, &poly),
            min,
            max,
            mask: size as u64 - 1,
            scanned: 0,
        })
    }

    /// The longest chunk.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Where the chunk starting at `chunk[0]` ends, if its bytes so far (`chunk`, all of the
    /// file's rest when `eof`) decide it; `None` asks for more bytes of the same chunk.
    pub(crate) fn find(&mut self, chunk: &[u8], eof: bool) -> Option<usize> {
        if chunk.len() < self.min || (chunk.len() == self.min && eof) {
            self.scanned = 0;
            return (eof && !chunk.is_empty()).then_some(chunk.len());
        }
        if self.scanned == 0 {
            // The window is filled from the 64 bytes before `min` (the call reads 63 of them),
            // as the rustic engine does; then the hash is tested before each next byte.
            self.rabin.reset_and_prefill_window(&mut chunk[self.min - WINDOW..self.min].iter().copied());
            self.scanned = self.min;
        }
        let end = chunk.len().min(self.max);
        let mut i = self.scanned;
        while i < end {
            if self.rabin.hash & self.mask == 0 {
                self.scanned = 0;
                return Some(i);
            }
            self.rabin.slide(chunk[i]);
            i += 1;
        }
        if end == self.max || eof {
            // At `max`, or at the end of the file (where a last test changes nothing).
            self.scanned = 0;
            return Some(end);
        }
        self.scanned = i;
        None
    }

    /// Forgets a chunk in progress (before the next file).
    pub(crate) fn reset(&mut self) {
        self.scanned = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// restic's default polynomial-free parameters at a small scale: min 512, avg 1 KiB, max 4 KiB.
    fn small() -> Chunker {
        Chunker::with_sizes(0x3DA3358B4DC173, 1024, 512, 4096).expect("chunker")
    }

    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Cuts `data` arriving `step` bytes at a time.
    fn chunks_by(c: &mut Chunker, data: &[u8], step: usize) -> Vec<usize> {
        let (mut out, mut start, mut have) = (Vec::new(), 0, 0);
        loop {
            have = (have + step).min(data.len());
            let eof = have == data.len();
            while let Some(n) = c.find(&data[start..have], eof) {
                out.push(n);
                start += n;
            }
            if eof {
                return out;
            }
        }
    }

    fn chunks(c: &mut Chunker, data: &[u8]) -> Vec<usize> {
        chunks_by(c, data, data.len())
    }

    #[test]
    fn chunks_cover_the_data_within_bounds() {
        let data = noise(200_000, 7);
        let mut c = small();
        let sizes = chunks(&mut c, &data);
        assert_eq!(sizes.iter().sum::<usize>(), data.len());
        for (i, s) in sizes.iter().enumerate() {
            assert!(*s <= 4096, "{s}");
            if i + 1 < sizes.len() {
                assert!(*s >= 512, "{s}");
            }
        }
        // Content-defined: about the average size, not all at the maximum.
        assert!(sizes.len() > 200_000 / 4096 * 2, "{}", sizes.len());
    }

    #[test]
    fn boundaries_follow_content_not_offsets() {
        let data = noise(100_000, 9);
        let mut shifted = noise(333, 3);
        shifted.extend_from_slice(&data);
        let mut c = small();
        let ends = |sizes: Vec<usize>, skip: usize| -> Vec<usize> {
            sizes
                .iter()
                .scan(0, |acc, s| {
                    *acc += s;
                    Some(*acc)
                })
                .filter(|e| *e > skip)
                .map(|e| e - skip)
                .collect()
        };
        let a = ends(chunks(&mut c, &data), 0);
        let b = ends(chunks(&mut c, &shifted), 333);
        // After resynchronising, the cut points agree.
        let common = a.iter().filter(|e| b.contains(e)).count();
        assert!(common * 10 >= a.len() * 8, "{common} of {}", a.len());
    }

    #[test]
    fn a_trickle_cuts_where_the_whole_does() {
        let data = noise(300_000, 11);
        let mut c = small();
        let whole = chunks(&mut c, &data);
        for step in [1, 63, 700, 4096, 5000] {
            assert_eq!(chunks_by(&mut c, &data, step), whole, "step {step}");
        }
    }

    #[test]
    fn short_and_empty_rests() {
        let mut c = small();
        assert_eq!(c.find(&[], true), None);
        assert_eq!(c.find(&[1, 2, 3], true), Some(3));
        assert_eq!(c.find(&[1, 2, 3], false), None);
        assert!(c.find(&noise(600, 1)[..], true).is_some_and(|n| n <= 600));
        assert_eq!(chunks(&mut c, &noise(512, 2)), [512]);
        assert!(Chunker::with_sizes(0x3DA3358B4DC173, 1000, 512, 4096).is_err());
    }
}
