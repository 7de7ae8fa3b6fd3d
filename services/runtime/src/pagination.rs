//! Opaque page tokens: base64 of the last key seen plus a fingerprint of the filters, so a
//! token reused with other filters is refused instead of returning a wrong page.

use std::hash::{DefaultHasher, Hash, Hasher};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tonic::Status;

use crate::status;

/// Default page size when the request says 0.
pub const DEFAULT_PAGE_SIZE: i64 = 50;
/// Largest page size; larger requests are clamped.
pub const MAX_PAGE_SIZE: i64 = 1000;

/// The effective page size of a request (`page_size` must not be negative).
pub fn page_size(requested: i32) -> Result<i64, Status> {
    match requested {
        n if n < 0 => Err(status::invalid("page_size", format!("{n} is negative"))),
        0 => Ok(DEFAULT_PAGE_SIZE),
        n => Ok(i64::from(n).min(MAX_PAGE_SIZE)),
    }
}

/// A list's order (AIP-132): one field and its direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OrderBy {
    /// The field (one of the list's sortable fields).
    pub field: &'static str,
    /// Descending.
    pub desc: bool,
}

/// Parses `order_by` (`field` or `field desc`/`field asc`) against the list's sortable
/// `fields`; empty = `default`. Cairn orders by one field (and the resource id after it, so
/// pages never skip or repeat); INVALID_ARGUMENT on `order_by` names what is wrong.
pub fn order_by(raw: &str, fields: &[&'static str], default: OrderBy) -> Result<OrderBy, Status> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(default);
    }
    if raw.contains(',') {
        return Err(status::invalid("order_by", format!("{raw:?}: lists are ordered by one field")));
    }
    let mut words = raw.split_whitespace();
    let name = words.next().unwrap_or_default();
    let desc = match words.next() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(w) => {
            return Err(status::invalid("order_by", format!("{w:?}: expected `asc` or `desc` after {name}")));
        }
    };
    if let Some(extra) = words.next() {
        return Err(status::invalid(
            "order_by",
            format!("{extra:?}: unexpected after `{name} {}`", if desc { "desc" } else { "asc" }),
        ));
    }
    let field = fields.iter().find(|f| **f == name).ok_or_else(|| {
        status::invalid(
            "order_by",
            format!("{name:?} is not sortable; sortable fields: {}", fields.join(", ")),
        )
    })?;
    Ok(OrderBy { field, desc })
}

#[derive(Serialize, Deserialize)]
struct Token<K> {
    k: K,
    f: u64,
}

/// A fingerprint of the filters of a list request (stable within one binary version).
pub fn fingerprint(filters: &impl Hash) -> u64 {
    // DefaultHasher::new() uses fixed keys, so the value is stable across processes of one
    // build; tokens do not need to survive upgrades.
    let mut h = DefaultHasher::new();
    filters.hash(&mut h);
    h.finish()
}

/// Encodes the key of the last item of a page.
pub fn encode<K: Serialize>(key: &K, filters: u64) -> String {
    let json = serde_json::to_vec(&Token { k: key, f: filters }).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

/// Decodes a page token; empty = first page. INVALID_ARGUMENT on `page_token` when it is
/// malformed or was issued for other filters.
pub fn decode<K: DeserializeOwned>(token: &str, filters: u64) -> Result<Option<K>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || status::invalid("page_token", "is not a token returned by this list");
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let t: Token<K> = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if t.f != filters {
        return Err(status::invalid("page_token", "was issued for different filters"));
    }
    Ok(Some(t.k))
}

/// Ends a page fetched with `limit + 1` rows: drops the extra row and returns the token of
/// the next page (empty when there is none), keyed by `key` of the last row kept.
pub fn next_page<T, K: Serialize>(
    items: &mut Vec<T>,
    limit: i64,
    filters: u64,
    key: impl Fn(&T) -> K,
) -> String {
    if items.len() as i64 <= limit {
        return String::new();
    }
    items.truncate(limit as usize);
    items.last().map(|t| encode(&key(t), filters)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_by_takes_one_sortable_field_and_a_direction() {
        let fields = ["create_time", "display_name"];
        let d = OrderBy { field: "create_time", desc: true };
        assert_eq!(order_by("", &fields, d).unwrap(), d);
        assert_eq!(
            order_by(" display_name ", &fields, d).unwrap(),
            OrderBy { field: "display_name", desc: false }
        );
        assert_eq!(
            order_by("create_time asc", &fields, d).unwrap(),
            OrderBy { field: "create_time", desc: false }
        );
        assert_eq!(order_by("create_time desc", &fields, d).unwrap(), d);
        for (bad, word) in [
            ("state", "not sortable"),
            ("create_time up", "expected `asc` or `desc`"),
            ("create_time desc x", "unexpected"),
            ("create_time, display_name", "one field"),
        ] {
            let e = order_by(bad, &fields, d).unwrap_err();
            assert!(
                e.message().starts_with("order_by: ") && e.message().contains(word),
                "{bad}: {}",
                e.message()
            );
        }
    }

    #[test]
    fn tokens_round_trip_and_bind_filters() {
        let f = fingerprint(&("STORE", "s3"));
        let t = encode(&("2024-01-01", 7), f);
        assert_eq!(decode::<(String, i32)>(&t, f).unwrap(), Some(("2024-01-01".into(), 7)));
        assert!(decode::<(String, i32)>(&t, fingerprint(&"other")).is_err());
        assert!(decode::<(String, i32)>("!!", f).is_err());
        assert_eq!(decode::<(String, i32)>("", f).unwrap(), None);
        assert!(page_size(-1).is_err());
        assert_eq!(page_size(0).unwrap(), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(5000).unwrap(), MAX_PAGE_SIZE);
    }
}
