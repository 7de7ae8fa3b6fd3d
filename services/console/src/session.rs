//! Sessions: the signed-in user's access and refresh tokens live in a cookie sealed with
//! XChaCha20-Poly1305 (the browser can neither read nor alter them), `HttpOnly` and
//! `SameSite=Lax`, `Secure` behind https. Every form carries the session's CSRF token, checked
//! before the body is looked at (see `form::Posted`).

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use chacha20poly1305::{
    XChaCha20Poly1305, XNonce,
    aead::{Aead, KeyInit},
};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};

/// The session cookie's name.
pub const COOKIE: &str = "cairn_session";
/// The cookie of the sign-in form's CSRF token (before there is a session).
pub const LOGIN_COOKIE: &str = "cairn_login";

/// A signed-in user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    /// User id.
    pub user: String,
    /// Bearer token for the APIs.
    pub access: String,
    /// Unix time the access token expires.
    pub access_expires: i64,
    /// Rotating refresh token.
    pub refresh: String,
    /// Unix time the refresh token expires (the cookie's lifetime).
    pub refresh_expires: i64,
    /// Token every form must send back.
    pub csrf: String,
}

/// Seals and opens cookies.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl Sealer {
    /// With a fixed key, or a random one (sessions end when the process does).
    pub fn new(key: Option<[u8; 32]>) -> Sealer {
        let key = key.unwrap_or_else(|| {
            let mut k = [0u8; 32];
            rand::rng().fill_bytes(&mut k);
            k
        });
        Sealer { cipher: XChaCha20Poly1305::new(&key.into()) }
    }

    /// The cookie value of `value`.
    pub fn seal<T: Serialize>(&self, value: &T) -> String {
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let plain = serde_json::to_vec(value).expect("sessions serialise");
        let mut out = nonce.to_vec();
        out.extend(
            self.cipher
                .encrypt(XNonce::from_slice(&nonce), plain.as_slice())
                .expect("encryption cannot fail"),
        );
        B64.encode(out)
    }

    /// The value of a cookie this sealer made; None for anything else.
    pub fn open<T: for<'de> Deserialize<'de>>(&self, cookie: &str) -> Option<T> {
        let raw = B64.decode(cookie).ok()?;
        if raw.len() < 24 {
            return None;
        }
        let (nonce, sealed) = raw.split_at(24);
        let plain = self.cipher.decrypt(XNonce::from_slice(nonce), sealed).ok()?;
        serde_json::from_slice(&plain).ok()
    }
}

/// A random token (CSRF).
pub fn token() -> String {
    let mut b = [0u8; 24];
    rand::rng().fill_bytes(&mut b);
    B64.encode(b)
}

/// A cookie named `name` from a request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value; `max_age` None deletes the cookie.
pub fn set_cookie(name: &str, value: &str, max_age: Option<i64>, secure: bool) -> String {
    let age = max_age.map_or("Max-Age=0".to_owned(), |s| format!("Max-Age={}", s.max(0)));
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; {age}{secure}")
}

/// Compares tokens without an early exit.
pub fn same(a: &str, b: &str) -> bool {
    cairn_runtime::grpc::constant_time_eq(a.as_bytes(), b.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_cookies_open_only_with_their_key_and_unaltered() {
        let a = Sealer::new(Some([1; 32]));
        let b = Sealer::new(Some([2; 32]));
        let sealed = a.seal(&"secret".to_owned());
        assert_eq!(a.open::<String>(&sealed).as_deref(), Some("secret"));
        assert!(!sealed.contains("secret"));
        assert_eq!(b.open::<String>(&sealed), None);
        let mut altered = sealed.into_bytes();
        let last = altered.len() - 2;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(a.open::<String>(std::str::from_utf8(&altered).unwrap()), None);
        assert_eq!(a.open::<String>("not a cookie"), None);
    }
}
