//! Connector rules: the role implied by each config type, field-by-field validation, defaults,
//! and taking secrets out of the message before it is stored.

use std::collections::BTreeSet;

use cairn_api::v1::{Connector, ConnectorRole, connector::Config};
use cairn_runtime::status::Violations;

use super::fields;
use crate::secrets::SecretMap;

/// Default `max_concurrent_jobs` of a store.
pub const DEFAULT_MAX_CONCURRENT_JOBS: i32 = 4;

/// Secret names.
pub mod secret {
    /// Every store's repository password.
    pub const REPOSITORY_PASSWORD: &str = "repository_password";
    /// S3 secret access key.
    pub const SECRET_ACCESS_KEY: &str = "secret_access_key";
    /// REST server password.
    pub const PASSWORD: &str = "password";
}

/// The role and type name a config implies.
pub fn role_and_type(config: &Config) -> (ConnectorRole, &'static str) {
    match config {
        Config::LocalPathSource(_) => (ConnectorRole::Source, "local_path"),
        Config::CommandSource(_) => (ConnectorRole::Source, "command"),
        Config::LocalStore(_) => (ConnectorRole::Store, "local"),
        Config::S3Store(_) => (ConnectorRole::Store, "s3"),
        Config::SftpStore(_) => (ConnectorRole::Store, "sftp"),
        Config::RestStore(_) => (ConnectorRole::Store, "rest"),
        Config::LocalPathDestination(_) => (ConnectorRole::Destination, "local_path"),
    }
}

/// Every type name, for filters.
pub const TYPE_NAMES: &[&str] = &["local_path", "command", "local", "s3", "sftp", "rest"];

/// Human name of a role (`SOURCE`).
pub fn role_name(role: ConnectorRole) -> &'static str {
    match role {
        ConnectorRole::Unspecified => "UNSPECIFIED",
        ConnectorRole::Source => "SOURCE",
        ConnectorRole::Store => "STORE",
        ConnectorRole::Destination => "DESTINATION",
    }
}

/// A connector ready to store: output-only fields cleared, secret fields emptied, role, type
/// and defaults filled; plus the secret values the request carried.
#[derive(Debug)]
pub struct Normalized {
    /// The sanitised message.
    pub connector: Connector,
    /// Secrets given in the request (non-empty values only).
    pub secrets: SecretMap,
}

/// Validates `c` and takes its secrets out. `stored` names the secrets already stored (empty on
/// create): a required secret may come from either.
pub fn normalize(c: &Connector, stored: &BTreeSet<String>) -> Result<Normalized, Violations> {
    let mut v = Violations::default();
    let mut out = c.clone();
    let mut secrets = SecretMap::new();
    let f = |name: &str| format!("connector.{name}");

    if let Err(e) = fields::display_name(&c.display_name) {
        v.add(f("display_name"), e);
    }
    if let Err(e) = fields::description(&c.description) {
        v.add(f("description"), e);
    }
    fields::selector(&f("worker_selector"), &c.worker_selector, &mut v);
    fields::selector(&f("labels"), &c.labels, &mut v);

    let Some(config) = &c.config else {
        v.add(
            f("config"),
            "one of local_path_source, command_source, local_store, s3_store, sftp_store, rest_store, \
             local_path_destination is required",
        );
        return Err(v);
    };
    let (role, type_name) = role_and_type(config);
    let given_role = ConnectorRole::try_from(c.role).unwrap_or(ConnectorRole::Unspecified);
    if c.role != 0 && given_role != role {
        v.add(
            f("role"),
            format!(
                "{} does not match the config, which makes a {} connector",
                role_name(given_role),
                role_name(role)
            ),
        );
    }
    out.role = role as i32;
    out.r#type = type_name.to_owned();

    match config {
        Config::LocalPathSource(s) => {
            if s.paths.is_empty() {
                v.add(f("local_path_source.paths"), "at least one path is required");
            }
            for (i, p) in s.paths.iter().enumerate() {
                if let Err(e) = fields::absolute_path(p) {
                    v.add(f(&format!("local_path_source.paths[{i}]")), e);
                }
            }
            for (name, list) in [("include", &s.include), ("exclude", &s.exclude)] {
                for (i, g) in list.iter().enumerate() {
                    if let Err(e) = fields::glob(g) {
                        v.add(f(&format!("local_path_source.{name}[{i}]")), e);
                    }
                }
            }
            for (i, n) in s.exclude_if_present.iter().enumerate() {
                if let Err(e) = fields::file_name(n) {
                    v.add(f(&format!("local_path_source.exclude_if_present[{i}]")), e);
                }
            }
        }
        Config::CommandSource(s) => {
            match s.command.first() {
                None => v.add(f("command_source.command"), "a program is required"),
                Some(p) if p.trim().is_empty() => {
                    v.add(f("command_source.command[0]"), "the program is empty")
                }
                _ => {}
            }
            if let Some(i) = s.command.iter().position(|a| a.contains('\0')) {
                v.add(f(&format!("command_source.command[{i}]")), "contains a NUL byte");
            }
            if let Err(e) = fields::file_name(&s.file_name) {
                v.add(f("command_source.file_name"), e);
            }
        }
        Config::LocalStore(s) => {
            if let Err(e) = fields::absolute_path(&s.path) {
                v.add(f("local_store.path"), e);
            }
        }
        Config::S3Store(s) => {
            if let Err(e) = fields::http_url(&s.endpoint) {
                v.add(f("s3_store.endpoint"), e);
            }
            if let Err(e) = fields::s3_bucket(&s.bucket) {
                v.add(f("s3_store.bucket"), e);
            }
            if s.prefix.starts_with('/') || s.prefix.contains("//") || s.prefix.contains('\0') {
                v.add(
                    f("s3_store.prefix"),
                    format!("{:?} must be a relative key prefix (no leading '/')", s.prefix),
                );
            }
            if !s.region.is_empty() && !s.region.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                v.add(f("s3_store.region"), format!("{:?} is not a region name", s.region));
            }
            if s.access_key_id.trim().is_empty() {
                v.add(f("s3_store.access_key_id"), "is required");
            }
            take_secret(&mut secrets, secret::SECRET_ACCESS_KEY, &s.secret_access_key);
            if !secrets.contains_key(secret::SECRET_ACCESS_KEY) && !stored.contains(secret::SECRET_ACCESS_KEY)
            {
                v.add(f("s3_store.secret_access_key"), "is required");
            }
        }
        Config::SftpStore(s) => {
            if s.host.trim().is_empty() || s.host.contains(['/', ' ', '@']) {
                v.add(f("sftp_store.host"), format!("{:?} is not a host name", s.host));
            }
            if !(0..=65535).contains(&s.port) {
                v.add(f("sftp_store.port"), format!("{} is not a port (1..=65535)", s.port));
            }
            if s.user.trim().is_empty() || s.user.contains(['@', ' ', '/']) {
                v.add(f("sftp_store.user"), format!("{:?} is not a user name", s.user));
            }
            if let Err(e) = fields::absolute_path(&s.path) {
                v.add(f("sftp_store.path"), e);
            }
        }
        Config::RestStore(s) => {
            match fields::http_url(&s.url) {
                Err(e) => v.add(f("rest_store.url"), e),
                Ok(u) if !u.username().is_empty() || u.password().is_some() => {
                    v.add(f("rest_store.url"), "must not contain credentials; use username and password")
                }
                Ok(_) => {}
            }
            take_secret(&mut secrets, secret::PASSWORD, &s.password);
        }
        Config::LocalPathDestination(d) => match fields::absolute_path(&d.path) {
            Err(e) => v.add(f("local_path_destination.path"), e),
            Ok(()) if d.path == "/" => {
                v.add(f("local_path_destination.path"), "must not be the root directory")
            }
            Ok(()) => {}
        },
    }

    match (&c.rpo, role) {
        (Some(d), ConnectorRole::Source) => {
            if let Err(e) = fields::rpo(d) {
                v.add(f("rpo"), e);
            }
        }
        (Some(_), _) => v.add(f("rpo"), "applies to SOURCE connectors only"),
        (None, _) => {}
    }
    if role == ConnectorRole::Store {
        match c.max_concurrent_jobs {
            0 => out.max_concurrent_jobs = DEFAULT_MAX_CONCURRENT_JOBS,
            1..=1000 => {}
            n => v.add(f("max_concurrent_jobs"), format!("{n} is out of range 1..=1000 (0 = default 4)")),
        }
        take_secret(&mut secrets, secret::REPOSITORY_PASSWORD, &c.repository_password);
        if !secrets.contains_key(secret::REPOSITORY_PASSWORD) && !stored.contains(secret::REPOSITORY_PASSWORD)
        {
            v.add(f("repository_password"), "is required for a STORE connector");
        }
    } else {
        if c.max_concurrent_jobs != 0 {
            v.add(f("max_concurrent_jobs"), "applies to STORE connectors only");
        }
        if c.create_if_missing {
            v.add(f("create_if_missing"), "applies to STORE connectors only");
        }
        if !c.repository_password.is_empty() {
            v.add(f("repository_password"), "applies to STORE connectors only");
        }
    }

    clear_secrets_and_outputs(&mut out);
    if v.is_empty() { Ok(Normalized { connector: out, secrets }) } else { Err(v) }
}

fn take_secret(into: &mut SecretMap, name: &str, value: &str) {
    if !value.is_empty() {
        into.insert(name.to_owned(), value.to_owned());
    }
}

/// Empties every secret and output-only field (what is stored, and the base of what is shown).
pub fn clear_secrets_and_outputs(c: &mut Connector) {
    c.repository_password.clear();
    c.repository_password_set = false;
    match &mut c.config {
        Some(Config::S3Store(s)) => {
            s.secret_access_key.clear();
            s.secret_access_key_set = false;
        }
        Some(Config::RestStore(s)) => {
            s.password.clear();
            s.password_set = false;
        }
        _ => {}
    }
    c.name.clear();
    c.last_test = None;
    c.create_time = None;
    c.update_time = None;
    c.etag.clear();
}

/// Fills the `*_set` flags from the names of stored secrets.
pub fn mark_secrets(c: &mut Connector, stored: &BTreeSet<String>) {
    c.repository_password_set = stored.contains(secret::REPOSITORY_PASSWORD);
    match &mut c.config {
        Some(Config::S3Store(s)) => s.secret_access_key_set = stored.contains(secret::SECRET_ACCESS_KEY),
        Some(Config::RestStore(s)) => s.password_set = stored.contains(secret::PASSWORD),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_api::v1::{LocalPathSource, LocalStore, S3Store};

    fn store() -> Connector {
        Connector {
            display_name: "nas".into(),
            config: Some(Config::LocalStore(LocalStore { path: "/srv/repo".into() })),
            repository_password: "pw".into(),
            ..Default::default()
        }
    }

    fn fields_of(v: Violations) -> Vec<String> {
        v.items().iter().map(|(f, _)| f.clone()).collect()
    }

    #[test]
    fn store_gets_defaults_and_loses_secrets() {
        let n = normalize(&store(), &BTreeSet::new()).unwrap();
        assert_eq!(n.connector.role, ConnectorRole::Store as i32);
        assert_eq!(n.connector.r#type, "local");
        assert_eq!(n.connector.max_concurrent_jobs, DEFAULT_MAX_CONCURRENT_JOBS);
        assert!(n.connector.repository_password.is_empty());
        assert_eq!(n.secrets.get(secret::REPOSITORY_PASSWORD).map(String::as_str), Some("pw"));
    }

    #[test]
    fn password_required_unless_stored() {
        let mut c = store();
        c.repository_password.clear();
        assert_eq!(
            fields_of(normalize(&c, &BTreeSet::new()).unwrap_err()),
            vec!["connector.repository_password"]
        );
        let stored = BTreeSet::from([secret::REPOSITORY_PASSWORD.to_owned()]);
        assert!(normalize(&c, &stored).is_ok());
    }

    #[test]
    fn every_bad_field_is_named() {
        let c = Connector {
            display_name: "bad name".into(),
            role: ConnectorRole::Source as i32,
            config: Some(Config::S3Store(S3Store {
                endpoint: "ftp://x".into(),
                bucket: "Bad_Bucket".into(),
                access_key_id: "".into(),
                ..Default::default()
            })),
            max_concurrent_jobs: 5000,
            ..Default::default()
        };
        let got = fields_of(normalize(&c, &BTreeSet::new()).unwrap_err());
        for want in [
            "connector.display_name",
            "connector.role",
            "connector.s3_store.endpoint",
            "connector.s3_store.bucket",
            "connector.s3_store.access_key_id",
            "connector.s3_store.secret_access_key",
            "connector.max_concurrent_jobs",
            "connector.repository_password",
        ] {
            assert!(got.iter().any(|g| g == want), "{want} missing from {got:?}");
        }
    }

    #[test]
    fn sources_reject_store_only_fields() {
        let c = Connector {
            display_name: "src".into(),
            config: Some(Config::LocalPathSource(LocalPathSource {
                paths: vec!["/data".into(), "rel".into()],
                exclude: vec!["a[".into()],
                ..Default::default()
            })),
            create_if_missing: true,
            ..Default::default()
        };
        let got = fields_of(normalize(&c, &BTreeSet::new()).unwrap_err());
        assert_eq!(
            got,
            vec![
                "connector.local_path_source.paths[1]",
                "connector.local_path_source.exclude[0]",
                "connector.create_if_missing"
            ]
        );
    }
}
