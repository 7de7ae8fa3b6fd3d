//! restic's authenticated encryption of everything in a repository: a random 16-byte IV, the
//! data under AES-256-CTR, then a Poly1305-AES tag over the ciphertext (restic's design
//! document, "Encryption"). Sealing appends in place to the caller's buffer, so a blob goes
//! straight into its pack without an allocation of its own.
//!
//! [`Sealer::verify`] recomputes a tag from the ciphertext alone (Poly1305 keyed with `r` and
//! AES-128 of the IV under `k`), without decrypting: the check run on every finished pack.

use aes::Aes128;
use aes::cipher::{BlockEncrypt as _, KeyInit as _};
use aes256ctr_poly1305aes::aead::AeadInPlace as _;
use aes256ctr_poly1305aes::{Aes256CtrPoly1305Aes, Key, Nonce};
use poly1305::Poly1305;
use rand::RngCore as _;
use rustic_core::repofile::MasterKey;

use crate::Error;

/// IV bytes before, tag bytes after every sealed text.
pub(crate) const OVERHEAD: usize = 32;

/// Seals and verifies with one repository's master key; cheap to clone.
#[derive(Clone)]
pub(crate) struct Sealer {
    aead: Aes256CtrPoly1305Aes,
    mac_k: Aes128,
    mac_r: [u8; 16],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(***)")
    }
}

impl Sealer {
    /// The sealer of a repository's master key.
    pub(crate) fn new(key: &MasterKey) -> Result<Self, Error> {
        if key.encrypt.len() != 32 || key.mac.k.len() != 16 || key.mac.r.len() != 16 {
            return Err(Error::Repository("the master key has the wrong length".into()));
        }
        let mut full = Key::default();
        full[..32].copy_from_slice(&key.encrypt);
        full[32..48].copy_from_slice(&key.mac.k);
        full[48..].copy_from_slice(&key.mac.r);
        let mut mac_r = [0; 16];
        mac_r.copy_from_slice(&key.mac.r);
        Ok(Self {
            aead: Aes256CtrPoly1305Aes::new(&full),
            mac_k: Aes128::new_from_slice(&key.mac.k)
                .map_err(|_| Error::Repository("the master key has the wrong length".into()))?,
            mac_r,
        })
    }

    /// Appends `plain`, sealed, to `out`; returns the sealed length (`plain.len() + 32`).
    pub(crate) fn seal_into(&self, out: &mut Vec<u8>, plain: &[u8]) -> Result<usize, Error> {
        let mut nonce = Nonce::default();
        rand::rng().fill_bytes(&mut nonce);
        let start = out.len();
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let tag = self
            .aead
            .encrypt_in_place_detached(&nonce, &[], &mut out[start + 16..])
            .map_err(|_| Error::Internal("encryption failed".into()))?;
        out.extend_from_slice(&tag);
        Ok(out.len() - start)
    }

    /// Whether `sealed` (IV, ciphertext, tag) carries a valid tag.
    pub(crate) fn verify(&self, sealed: &[u8]) -> bool {
        if sealed.len() < OVERHEAD {
            return false;
        }
        let (iv, rest) = sealed.split_at(16);
        let (text, tag) = rest.split_at(rest.len() - 16);
        let mut s = aes::Block::clone_from_slice(iv);
        self.mac_k.encrypt_block(&mut s);
        let mut key = poly1305::Key::default();
        key[..16].copy_from_slice(&self.mac_r);
        key[16..].copy_from_slice(&s);
        let expected = Poly1305::new(&key).compute_unpadded(text);
        // Not secret-dependent timing: both values are known to the writer checking itself.
        expected.as_slice() == tag
    }

    /// Opens a sealed text (restic's decryption), for reading trees back.
    pub(crate) fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, Error> {
        if sealed.len() < OVERHEAD {
            return Err(Error::Repository("sealed data is too short".into()));
        }
        let nonce = Nonce::clone_from_slice(&sealed[..16]);
        let mut text = sealed[16..sealed.len() - 16].to_vec();
        let tag = aes256ctr_poly1305aes::Tag::clone_from_slice(&sealed[sealed.len() - 16..]);
        self.aead
            .decrypt_in_place_detached(&nonce, &[], &mut text, &tag)
            .map_err(|_| Error::Repository("MAC check failed: the data is corrupt".into()))?;
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_verifies_and_opens_like_rustic() {
        let key = MasterKey::new();
        let sealer = Sealer::new(&key).expect("sealer");
        let mut out = b"prefix".to_vec();
        let n = sealer.seal_into(&mut out, b"hello, repository").expect("seal");
        assert_eq!(n, 17 + OVERHEAD);
        let sealed = &out[6..];
        assert!(sealer.verify(sealed));
        assert_eq!(sealer.open(sealed).expect("open"), b"hello, repository");
        // A flipped bit anywhere fails both.
        for i in [0, 16, sealed.len() - 1] {
            let mut bad = sealed.to_vec();
            bad[i] ^= 1;
            assert!(!sealer.verify(&bad), "bit {i}");
            assert!(sealer.open(&bad).is_err());
        }
        assert!(!sealer.verify(&[0; 10]));
    }
}
