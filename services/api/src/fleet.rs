//! Which SOURCE connectors a fleet BACKUP task's `SourceSelector` selects: the one rule the
//! catalog (resolving tasks) and the scheduler (protection coverage) both apply.

use crate::v1::{Connector, ConnectorRole, SourceSelector};

/// Whether `sel` selects `c`: a SOURCE carrying all of `sel.labels`, matching one `include`
/// entry when there are any, and no `exclude` entry.
#[must_use]
pub fn selects(sel: &SourceSelector, c: &Connector) -> bool {
    c.role == ConnectorRole::Source as i32
        && sel.labels.iter().all(|(k, v)| c.labels.get(k) == Some(v))
        && (sel.include.is_empty() || sel.include.iter().any(|e| entry_matches(e, c)))
        && !sel.exclude.iter().any(|e| entry_matches(e, c))
}

/// An include/exclude entry: `key=value` (a label) or a display name pattern with `*`.
fn entry_matches(entry: &str, c: &Connector) -> bool {
    match entry.split_once('=') {
        Some((k, v)) => c.labels.get(k.trim()).is_some_and(|have| have == v.trim()),
        None => glob(entry.trim(), &c.display_name),
    }
}

/// `*` matches any run of characters (none included); everything else matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(name: &str, labels: &[(&str, &str)]) -> Connector {
        Connector {
            display_name: name.into(),
            role: ConnectorRole::Source as i32,
            labels: labels.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn labels_include_and_exclude_decide() {
        let web1 = source("web-1", &[("fleet", "web"), ("zone", "eu")]);
        let web2 = source("web-2", &[("fleet", "web"), ("zone", "us")]);
        let db = source("db-1", &[("fleet", "db")]);
        let sel = |labels: &[(&str, &str)], include: &[&str], exclude: &[&str]| SourceSelector {
            labels: labels.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
            include: include.iter().map(|s| (*s).into()).collect(),
            exclude: exclude.iter().map(|s| (*s).into()).collect(),
        };
        let all = sel(&[("fleet", "web")], &[], &[]);
        assert!(selects(&all, &web1) && selects(&all, &web2) && !selects(&all, &db));
        assert!(!selects(&sel(&[("fleet", "web")], &[], &["web-2"]), &web2));
        assert!(!selects(&sel(&[], &[], &["zone=us"]), &web2));
        assert!(selects(&sel(&[], &["zone=eu", "db-*"], &[]), &web1));
        assert!(selects(&sel(&[], &["zone=eu", "db-*"], &[]), &db));
        assert!(!selects(&sel(&[], &["zone=eu", "db-*"], &[]), &web2));
        let store = Connector { role: ConnectorRole::Store as i32, ..web1.clone() };
        assert!(!selects(&all, &store), "only sources");
    }

    #[test]
    fn globs_match_runs_of_characters() {
        assert!(glob("web-*", "web-1") && glob("*", "") && glob("a*b*c", "aXbYc") && glob("a*b*c", "abc"));
        assert!(!glob("web-*", "db-1") && !glob("a*b*c", "acb") && !glob("ab*ba", "aba"));
        assert!(glob("exact", "exact") && !glob("exact", "exact2"));
    }
}
