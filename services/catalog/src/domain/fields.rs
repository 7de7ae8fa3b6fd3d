//! Field-level checks shared by connectors and tasks. Each returns a description of what is
//! wrong (the caller adds the field path).

use std::{collections::HashMap, path::Component, path::Path};

/// Display names (the rule shared by every resource).
pub use cairn_api::names::check_display_name as display_name;

/// Free text (the rule shared by every resource).
pub use cairn_api::names::check_description as description;

/// An absolute, normalised path (no `.`/`..` components, no NUL).
pub fn absolute_path(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err("is required".into());
    }
    if v.contains('\0') {
        return Err("contains a NUL byte".into());
    }
    let p = Path::new(v);
    if !p.is_absolute() {
        return Err(format!("{v:?} is not an absolute path"));
    }
    if p.components().any(|c| matches!(c, Component::ParentDir | Component::CurDir)) {
        return Err(format!("{v:?} must not contain '.' or '..' components"));
    }
    Ok(())
}

/// A plain file name (no `/`, not `.`/`..`, no NUL).
pub fn file_name(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err("is required".into());
    }
    if v.contains('/') || v.contains('\0') || v == "." || v == ".." {
        return Err(format!("{v:?} must be a plain file name without '/'"));
    }
    if v.len() > 255 {
        return Err("is longer than 255 bytes".into());
    }
    Ok(())
}

/// A glob pattern as the engine reads them (gitignore-style, `!` negation allowed).
pub fn glob(v: &str) -> Result<(), String> {
    let pattern = v.strip_prefix('!').unwrap_or(v);
    if pattern.trim().is_empty() {
        return Err("is an empty pattern".into());
    }
    globset::Glob::new(pattern).map(|_| ()).map_err(|e| format!("{v:?} is not a valid glob: {}", e.kind()))
}

/// An http(s) URL with a host.
pub fn http_url(v: &str) -> Result<url::Url, String> {
    if v.is_empty() {
        return Err("is required".into());
    }
    let u = url::Url::parse(v).map_err(|e| format!("{v:?} is not a valid URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!("{v:?} must use http or https"));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(format!("{v:?} has no host"));
    }
    Ok(u)
}

/// S3 bucket naming rules (3..=63, lowercase letters, digits, `-`, `.`, alphanumeric ends, no
/// `..`, not an IP address).
pub fn s3_bucket(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err("is required".into());
    }
    if !(3..=63).contains(&v.len()) {
        return Err(format!("{v:?} must be 3 to 63 characters long"));
    }
    if let Some(c) =
        v.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.')))
    {
        return Err(format!("{v:?} contains {c:?}; use lowercase letters, digits, '-' and '.'"));
    }
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !ends_ok(v.chars().next()) || !ends_ok(v.chars().last()) {
        return Err(format!("{v:?} must begin and end with a letter or a digit"));
    }
    if v.contains("..") {
        return Err(format!("{v:?} must not contain two adjacent periods"));
    }
    if v.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err(format!("{v:?} must not be formatted as an IP address"));
    }
    Ok(())
}

/// Selector label keys and values: 1..=63 of `[A-Za-z0-9._/-]`.
pub fn label_part(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err("must not be empty".into());
    }
    if v.len() > 63 {
        return Err(format!("{v:?} is longer than 63 characters"));
    }
    if let Some(c) = v.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))) {
        return Err(format!("{v:?} contains {c:?}; use letters, digits, '.', '_', '-' and '/'"));
    }
    Ok(())
}

/// Checks every entry of a selector, reporting `field[key]` paths.
pub fn selector(field: &str, sel: &HashMap<String, String>, out: &mut cairn_runtime::status::Violations) {
    let mut keys: Vec<&String> = sel.keys().collect();
    keys.sort();
    for k in keys {
        if let Err(e) = label_part(k) {
            out.add(format!("{field}[{k:?}]"), format!("key {e}"));
        } else if let Err(e) = label_part(&sel[k]) {
            out.add(format!("{field}[{k:?}]"), format!("value {e}"));
        }
    }
}

/// A fleet selector's include/exclude entry: `key=value` (a label) or a display name pattern.
pub fn selector_entry(e: &str) -> Result<(), String> {
    match e.split_once('=') {
        Some((k, val)) => label_part(k)
            .map_err(|m| format!("label key {m}"))
            .and_then(|()| label_part(val).map_err(|m| format!("label value {m}"))),
        None if e.trim().is_empty()
            || e.trim() != e
            || e.chars().count() > 128
            || e.chars().any(char::is_control) =>
        {
            Err(format!("{e:?} is neither key=value nor a display name pattern of 1..=128 characters"))
        }
        None => Ok(()),
    }
}

/// Snapshot labels (restic tags): 1..=128 printable characters, no `,` (restic's tag list
/// separator), no surrounding whitespace; `cairn-task=` and `cairn-source=` are reserved.
pub fn snapshot_label(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err("is an empty label".into());
    }
    if v.chars().count() > 128 {
        return Err(format!("{v:?} is longer than 128 characters"));
    }
    if v.contains(',') {
        return Err(format!("{v:?} contains ','; labels are restic tags and cannot contain commas"));
    }
    if v.trim() != v || v.chars().any(char::is_control) {
        return Err(format!("{v:?} has surrounding whitespace or control characters"));
    }
    if let Some(prefix) = ["cairn-task=", "cairn-source="].into_iter().find(|p| v.starts_with(p)) {
        return Err(format!("{v:?} uses the reserved prefix '{prefix}'"));
    }
    Ok(())
}

/// A window (`7d`, `12h`, `90m`, `2w`): a positive humantime duration.
pub fn window(v: &str) -> Result<std::time::Duration, String> {
    let d =
        humantime::parse_duration(v).map_err(|e| format!("{v:?} is not a duration like 7d or 12h: {e}"))?;
    if d.is_zero() {
        return Err(format!("{v:?} must be longer than zero (leave it empty for no window)"));
    }
    Ok(d)
}

/// A restic snapshot id or unique prefix: 8..=64 lowercase hex digits.
pub fn snapshot_id(v: &str) -> Result<(), String> {
    if !(8..=64).contains(&v.len()) || !v.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()) {
        return Err(format!("{v:?} is not a snapshot id (8 to 64 lowercase hex digits)"));
    }
    Ok(())
}

/// A path inside a snapshot: no NUL, no `..` component.
pub fn snapshot_path(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err("is an empty path".into());
    }
    if v.contains('\0') {
        return Err("contains a NUL byte".into());
    }
    if Path::new(v).components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!("{v:?} must not contain '..'"));
    }
    Ok(())
}

/// An email address (`local@domain`, no spaces, one `@`).
pub fn email(v: &str) -> Result<(), String> {
    match v.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !v
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',')) =>
        {
            Ok(())
        }
        _ => Err(format!("{v:?} is not an email address")),
    }
}

/// A recovery point objective: 1 minute ..= 3660 days (unset = none).
pub fn rpo(d: &prost_types::Duration) -> Result<(), String> {
    match cairn_runtime::time::from_duration(d) {
        Some(d) if (60..=3660 * 86_400).contains(&d.as_secs()) => Ok(()),
        _ => Err("must be between 1 minute and 3660 days (leave unset for no objective)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_files() {
        assert!(absolute_path("/srv/data").is_ok());
        assert!(absolute_path("srv").is_err());
        assert!(absolute_path("/srv/../etc").is_err());
        assert!(file_name("db.dump").is_ok());
        assert!(file_name("a/b").is_err());
        assert!(file_name("..").is_err());
        assert!(snapshot_path("/etc/hosts").is_ok());
        assert!(snapshot_path("a/../../b").is_err());
    }

    #[test]
    fn buckets() {
        assert!(s3_bucket("my-backups.eu").is_ok());
        for bad in ["ab", "My-Bucket", "-abc", "abc-", "a..b", "192.168.1.1", "a_b_c"] {
            assert!(s3_bucket(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn misc() {
        assert!(glob("**/*.log").is_ok());
        assert!(glob("!keep.log").is_ok());
        assert!(glob("a[").is_err());
        assert!(glob(" ").is_err());
        assert!(http_url("http://minio:9000").is_ok());
        assert!(http_url("ftp://x").is_err());
        assert!(http_url("not a url").is_err());
        assert_eq!(window("7d").unwrap().as_secs(), 7 * 86400);
        assert!(window("0s").is_err());
        assert!(window("soon").is_err());
        assert!(snapshot_label("prod").is_ok());
        assert!(snapshot_label("a,b").is_err());
        assert!(snapshot_label("cairn-task=x").is_err());
        assert!(snapshot_id("1a2b3c4d").is_ok());
        assert!(snapshot_id("1A2B3C4D").is_err());
        assert!(email("ops@example.com").is_ok());
        assert!(email("ops@localhost").is_err());
        assert!(email("a b@example.com").is_err());
        assert!(label_part("host").is_ok());
        assert!(label_part("a=b").is_err());
    }
}
