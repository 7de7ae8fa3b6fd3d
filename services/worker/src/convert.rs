//! From the lease's API messages to the engine's plain types. Secrets come from the resolved
//! connectors' `secrets` map and go straight into engine values (whose `Debug` hides them).

use std::{path::PathBuf, time::Duration};

use cairn_api::v1::{Connector, ResolvedConnector, connector::Config};
use cairn_engine::{Source, Store, StoreKind};

/// A lease that cannot be run as given (never retryable).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn connector(
    c: &Option<ResolvedConnector>,
    what: &str,
) -> Result<(Connector, std::collections::HashMap<String, String>), Invalid> {
    let r = c.as_ref().ok_or_else(|| Invalid(format!("the task has no {what} connector")))?;
    let conn = r.connector.clone().ok_or_else(|| Invalid(format!("the {what} connector is empty")))?;
    Ok((conn, r.secrets.clone()))
}

/// A STORE connector as an engine store.
pub fn store(c: &Option<ResolvedConnector>, what: &str) -> Result<Store, Invalid> {
    let (conn, secrets) = connector(c, what)?;
    store_of(&conn, &secrets)
}

/// A STORE connector (already unwrapped) as an engine store.
pub fn store_of(
    conn: &Connector,
    secrets: &std::collections::HashMap<String, String>,
) -> Result<Store, Invalid> {
    let secret = |k: &str| secrets.get(k).cloned().unwrap_or_default();
    let kind = match &conn.config {
        Some(Config::LocalStore(s)) => StoreKind::Local { path: PathBuf::from(&s.path) },
        Some(Config::S3Store(s)) => StoreKind::S3 {
            endpoint: s.endpoint.clone(),
            bucket: s.bucket.clone(),
            prefix: s.prefix.clone(),
            region: if s.region.is_empty() { "us-east-1".into() } else { s.region.clone() },
            access_key_id: s.access_key_id.clone(),
            secret_access_key: secret("secret_access_key"),
        },
        Some(Config::RestStore(s)) => {
            let mut url = s.url.clone();
            if !s.username.is_empty()
                && let Some((scheme, rest)) = url.split_once("://")
            {
                let pw = secret("password");
                url = format!("{scheme}://{}:{}@{rest}", s.username, pw);
            }
            StoreKind::Rest { url }
        }
        Some(Config::SftpStore(s)) => StoreKind::Sftp {
            endpoint: format!("{}:{}", s.host, if s.port == 0 { 22 } else { s.port }),
            user: s.user.clone(),
            path: s.path.clone(),
            key_file: None,
        },
        _ => return Err(Invalid(format!("connector {} is not a store", conn.display_name))),
    };
    let password = secret("repository_password");
    if password.is_empty() {
        return Err(Invalid(format!("store {} has no repository password", conn.display_name)));
    }
    Ok(Store { kind, password, create_if_missing: conn.create_if_missing })
}

/// A SOURCE connector as an engine source.
pub fn source(c: &Option<ResolvedConnector>) -> Result<Source, Invalid> {
    let (conn, _) = connector(c, "source")?;
    source_of(&conn)
}

/// A SOURCE connector (unwrapped) as an engine source.
pub fn source_of(conn: &Connector) -> Result<Source, Invalid> {
    match &conn.config {
        Some(Config::LocalPathSource(s)) => Ok(Source::LocalPath {
            paths: s.paths.iter().map(PathBuf::from).collect(),
            include_globs: s.include.clone(),
            exclude_globs: s.exclude.clone(),
            exclude_if_present: s.exclude_if_present.clone(),
            one_file_system: s.one_file_system,
        }),
        Some(Config::CommandSource(s)) => {
            Ok(Source::Command { argv: s.command.clone(), file_name: s.file_name.clone() })
        }
        _ => Err(Invalid(format!("connector {} is not a source", conn.display_name))),
    }
}

/// A DESTINATION connector's directory.
pub fn destination(c: &Option<ResolvedConnector>) -> Result<PathBuf, Invalid> {
    let (conn, _) = connector(c, "destination")?;
    destination_of(&conn)
}

/// A DESTINATION connector (unwrapped) as its directory.
pub fn destination_of(conn: &Connector) -> Result<PathBuf, Invalid> {
    match &conn.config {
        Some(Config::LocalPathDestination(d)) => Ok(PathBuf::from(&d.path)),
        _ => Err(Invalid(format!("connector {} is not a destination", conn.display_name))),
    }
}

/// A window (`7d`, `12h`); empty = none.
pub fn window(w: &str, field: &str) -> Result<Option<Duration>, Invalid> {
    if w.trim().is_empty() {
        return Ok(None);
    }
    humantime::parse_duration(w)
        .map(Some)
        .map_err(|e| Invalid(format!("{field}: {w:?} is not a duration: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_api::v1::{LocalStore, RestStore};

    #[test]
    fn stores_take_their_secrets() {
        let conn = Connector {
            display_name: "nas".into(),
            config: Some(Config::LocalStore(LocalStore { path: "/srv/r".into() })),
            create_if_missing: true,
            ..Default::default()
        };
        let secrets = [("repository_password".to_owned(), "pw".to_owned())].into();
        let s = store_of(&conn, &secrets).unwrap();
        assert_eq!(s.password, "pw");
        assert!(s.create_if_missing);
        assert!(!format!("{s:?}").contains("pw\""), "debug hides the password");
        assert!(store_of(&conn, &Default::default()).is_err());
        let rest = Connector {
            display_name: "r".into(),
            config: Some(Config::RestStore(RestStore {
                url: "https://h/repo".into(),
                username: "u".into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let secrets =
            [("repository_password".to_owned(), "pw".to_owned()), ("password".to_owned(), "p2".to_owned())]
                .into();
        let StoreKind::Rest { url } = store_of(&rest, &secrets).unwrap().kind else { panic!() };
        assert_eq!(url, "https://u:p2@h/repo");
    }

    #[test]
    fn windows() {
        assert_eq!(window("", "w").unwrap(), None);
        assert_eq!(window("7d", "w").unwrap(), Some(Duration::from_secs(7 * 86400)));
        assert!(window("soon", "w").is_err());
    }
}
