//! Secrets at rest: every connector's (and task's) secrets are one JSON map sealed with
//! XChaCha20-Poly1305 under `CAIRN_SECRET_KEY`. The associated data is the owner's resource
//! name, so a sealed blob copied onto another row does not open. A blob records which key
//! sealed it (first 8 bytes of the key's SHA-256), so keys can be rotated: previous keys still
//! open old blobs, and start-up re-seals them with the current key.
//!
//! Nothing here logs, and `Debug` never shows key material or plaintext.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::{
    KeyInit as _, XChaCha20Poly1305, XNonce,
    aead::{Aead as _, AeadCore as _, OsRng, Payload},
};
use sha2::{Digest as _, Sha256};

const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 24;

/// Secret values by field name (`repository_password`, `secret_access_key`, `password`,
/// `webhook:<url>`).
pub type SecretMap = BTreeMap<String, String>;

/// Errors of sealing and opening.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The key given in configuration is unusable.
    #[error("secret key: {0}")]
    BadKey(String),
    /// A blob was sealed by a key that is not configured.
    #[error("secrets were sealed with key {0}, which is not configured (set CAIRN_SECRET_KEY_PREVIOUS)")]
    UnknownKey(String),
    /// A blob is damaged or belongs to another resource.
    #[error("sealed secrets failed authentication")]
    Corrupt,
}

/// One 32-byte key.
#[derive(Clone)]
pub struct Key {
    cipher: XChaCha20Poly1305,
    id: [u8; KEY_ID_LEN],
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", hex(&self.id))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Key {
    /// Reads a key written as base64 (44 characters) or hex (64 characters) of 32 bytes.
    pub fn parse(text: &str) -> Result<Key, SecretError> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<_>, _>>()
                .ok()
        } else {
            STANDARD.decode(text).ok()
        };
        match bytes {
            Some(b) if b.len() == 32 => Ok(Key::from_bytes(&b)),
            Some(b) => Err(SecretError::BadKey(format!("must be 32 bytes, got {}", b.len()))),
            None => Err(SecretError::BadKey(
                "must be 32 bytes in base64 or hex (e.g. `openssl rand -base64 32`)".into(),
            )),
        }
    }

    /// A random key (dev mode only).
    pub fn generate() -> Key {
        let k = XChaCha20Poly1305::generate_key(&mut OsRng);
        Key::from_bytes(k.as_slice())
    }

    fn from_bytes(bytes: &[u8]) -> Key {
        let digest = Sha256::digest(bytes);
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        Key { cipher: XChaCha20Poly1305::new_from_slice(bytes).expect("32-byte key"), id }
    }

    /// Short public identifier of the key (safe to log).
    pub fn id(&self) -> String {
        hex(&self.id)
    }
}

/// The current key plus previous ones still accepted for opening.
#[derive(Debug, Clone)]
pub struct Keyring {
    current: Key,
    previous: Vec<Key>,
}

impl Keyring {
    /// A keyring sealing with `current`.
    pub fn new(current: Key, previous: Vec<Key>) -> Keyring {
        Keyring { current, previous }
    }

    /// The id of the sealing key.
    pub fn current_id(&self) -> String {
        self.current.id()
    }

    /// What a record stores for its secrets: the sealed blob (none when there are no secrets)
    /// and the secrets' names, which responses show instead of the values.
    pub fn seal_record(&self, owner: &str, secrets: &SecretMap) -> (Option<Vec<u8>>, Vec<String>) {
        if secrets.is_empty() {
            return (None, Vec::new());
        }
        (Some(self.seal(owner, secrets)), secrets.keys().cloned().collect())
    }

    /// Seals `secrets` for the resource `owner` (e.g. `connectors/{id}`).
    pub fn seal(&self, owner: &str, secrets: &SecretMap) -> Vec<u8> {
        let plaintext = serde_json::to_vec(secrets).expect("a string map serialises");
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .current
            .cipher
            .encrypt(&nonce, Payload { msg: &plaintext, aad: owner.as_bytes() })
            .expect("encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(1 + KEY_ID_LEN + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&self.current.id);
        out.extend_from_slice(nonce.as_slice());
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens a blob sealed for `owner`; also says whether it should be re-sealed (old key).
    pub fn open(&self, owner: &str, blob: &[u8]) -> Result<(SecretMap, bool), SecretError> {
        if blob.len() < 1 + KEY_ID_LEN + NONCE_LEN || blob[0] != VERSION {
            return Err(SecretError::Corrupt);
        }
        let id = &blob[1..1 + KEY_ID_LEN];
        let nonce = XNonce::from_slice(&blob[1 + KEY_ID_LEN..1 + KEY_ID_LEN + NONCE_LEN]);
        let body = &blob[1 + KEY_ID_LEN + NONCE_LEN..];
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
            .ok_or_else(|| SecretError::UnknownKey(hex(id)))?;
        let plain = key
            .cipher
            .decrypt(nonce, Payload { msg: body, aad: owner.as_bytes() })
            .map_err(|_| SecretError::Corrupt)?;
        let map = serde_json::from_slice(&plain).map_err(|_| SecretError::Corrupt)?;
        Ok((map, key.id != self.current.id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pw: &str) -> SecretMap {
        SecretMap::from([("repository_password".to_owned(), pw.to_owned())])
    }

    #[test]
    fn seal_open_round_trip_and_binding() {
        let ring = Keyring::new(Key::generate(), vec![]);
        let blob = ring.seal("connectors/a", &map("hunter2"));
        assert!(!blob.windows(7).any(|w| w == b"hunter2"), "plaintext must not appear");
        let (opened, stale) = ring.open("connectors/a", &blob).unwrap();
        assert_eq!(opened, map("hunter2"));
        assert!(!stale);
        assert!(matches!(ring.open("connectors/b", &blob), Err(SecretError::Corrupt)));
        let mut tampered = blob.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(matches!(ring.open("connectors/a", &tampered), Err(SecretError::Corrupt)));
    }

    #[test]
    fn rotation_opens_old_blobs() {
        let old = Key::generate();
        let blob = Keyring::new(old.clone(), vec![]).seal("o", &map("x"));
        let rotated = Keyring::new(Key::generate(), vec![old]);
        let (m, stale) = rotated.open("o", &blob).unwrap();
        assert_eq!(m, map("x"));
        assert!(stale);
        let without = Keyring::new(Key::generate(), vec![]);
        assert!(matches!(without.open("o", &blob), Err(SecretError::UnknownKey(_))));
    }

    #[test]
    fn keys_parse_from_base64_and_hex() {
        let b64 = STANDARD.encode([7u8; 32]);
        let hexed = hex(&[7u8; 32]);
        assert_eq!(Key::parse(&b64).unwrap().id(), Key::parse(&hexed).unwrap().id());
        assert!(Key::parse("short").is_err());
        assert!(Key::parse(&STANDARD.encode([1u8; 16])).is_err());
        assert!(!format!("{:?}", Key::parse(&b64).unwrap()).contains(&b64));
    }
}
