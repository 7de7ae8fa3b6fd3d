//! Stores (restic-format repositories) and how the engine opens them.
//!
//! A [`Store`] is a plain description: where the repository lives, its password and whether
//! to initialise it on first use. [`Engine`] holds the settings shared by every operation of a
//! worker (the local cache directory, the keys it has derived). Opening turns a store into a rustic `Repository`
//! wrapped in a [`GuardedBackend`], with the operation's progress bars attached; it is the
//! only place that maps store kinds to rustic_backend addresses and options.
//!
//! Supported: local directories, S3-compatible object stores (through rustic_backend's
//! opendal backend), restic REST servers, and SFTP (opendal, through the system `ssh` client,
//! key authentication only). Secrets never appear in `Debug` output or error messages.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use rustic_backend::BackendOptions;
use rustic_core::repofile::MasterKey;
use rustic_core::{
    ConfigOptions, Credentials, FileType, Id, KeyOptions, OpenStatus, Repository, RepositoryBackends,
    RepositoryOptions, WriteBackend,
};
use sha2::{Digest as _, Sha256};

use crate::Error;
use crate::cancel::{Guard, GuardedBackend};
use crate::error::Redactor;
use crate::progress::Reporter;

/// Settings shared by all operations of one worker. Clones share the derived keys.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    /// Local cache of repository metadata (snapshots, index, tree packs); `None` disables it.
    /// A cache makes remote stores much faster to open; it is safe to delete at any time.
    pub cache_dir: Option<PathBuf>,
    /// Which archiver writes backups.
    pub archiver: Archiver,
    keys: KeyCache,
}

/// The archiver that writes backups; both write the same restic-format repositories, with
/// the same chunks, trees and blob ids (ADR 0016).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Archiver {
    /// Cairn's own pipelined archiver (`archive`).
    #[default]
    Cairn,
    /// rustic_core's archiver.
    Rustic,
}

impl std::str::FromStr for Archiver {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cairn" => Ok(Self::Cairn),
            "rustic" => Ok(Self::Rustic),
            other => Err(format!("{other:?} is not an archiver (cairn or rustic)")),
        }
    }
}

impl Archiver {
    /// Its name in configuration (`cairn`, `rustic`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cairn => "cairn",
            Self::Rustic => "rustic",
        }
    }
}

/// Master keys this engine derived from passwords, so that later operations on the same
/// repository skip the key derivation (scrypt: about 0.4 s per open on a small machine, paid
/// again by every backup, retention pass and snapshot listing). An entry is found only by the
/// digest of the store's location and the password, so a different password still goes
/// through (and fails) the real check; it is used only while the key file it was derived from
/// is still in the repository, so removing that key revokes the password at once.
#[derive(Clone, Default)]
struct KeyCache(Arc<Mutex<HashMap<Slot, (Id, MasterKey)>>>);

/// SHA-256 of a store's location and a password.
type Slot = [u8; 32];

impl fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.lock().unwrap_or_else(PoisonError::into_inner).len();
        write!(f, "KeyCache({n} keys)")
    }
}

impl KeyCache {
    fn slot(store: &Store) -> Slot {
        let mut h = Sha256::new();
        h.update(store.describe());
        h.update([0]);
        h.update(&store.password);
        h.finalize().into()
    }

    /// The cached key for this repository and password, if its key file still exists.
    fn get(&self, slot: &Slot, backend: &dyn WriteBackend) -> Option<MasterKey> {
        let (key_id, key) = self.0.lock().unwrap_or_else(PoisonError::into_inner).get(slot).cloned()?;
        let present = backend.list(FileType::Key).is_ok_and(|keys| keys.contains(&key_id));
        if !present {
            self.forget(slot);
        }
        present.then_some(key)
    }

    fn remember(&self, slot: Slot, repo: &Repository<OpenStatus>) {
        if let Some(key_id) = repo.key_id() {
            self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(slot, (**key_id, repo.key()));
        }
    }

    fn forget(&self, slot: &Slot) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(slot);
    }
}

impl Engine {
    /// An engine without a local cache.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An engine caching repository metadata under `dir`.
    #[must_use]
    pub fn with_cache_dir(dir: impl Into<PathBuf>) -> Self {
        Self { cache_dir: Some(dir.into()), ..Self::default() }
    }

    /// The same engine writing backups with `archiver`.
    #[must_use]
    pub fn with_archiver(mut self, archiver: Archiver) -> Self {
        self.archiver = archiver;
        self
    }
}

/// A restic-format repository and how to reach it.
#[derive(Clone, PartialEq, Eq)]
pub struct Store {
    /// Where the repository lives.
    pub kind: StoreKind,
    /// The repository password (a secret).
    pub password: String,
    /// Initialise the repository when none exists yet.
    pub create_if_missing: bool,
}

/// The kinds of storage the engine reaches.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreKind {
    /// A directory on the worker host (or a shared file system).
    Local {
        /// Repository directory.
        path: PathBuf,
    },
    /// Any S3-compatible object store (path-style addressing).
    S3 {
        /// Service URL, e.g. `https://s3.eu-west-1.amazonaws.com` or `http://127.0.0.1:9000`.
        endpoint: String,
        /// Bucket name (must exist).
        bucket: String,
        /// Key prefix inside the bucket; empty for the bucket root.
        prefix: String,
        /// Region; empty defaults to `us-east-1`.
        region: String,
        /// Access key id.
        access_key_id: String,
        /// Secret access key (a secret).
        secret_access_key: String,
    },
    /// A restic REST server (`rest-server`), e.g. `http://host:8000/repo`.
    /// Credentials may be embedded in the URL; they are treated as secrets.
    Rest {
        /// Base URL of the repository.
        url: String,
    },
    /// SFTP via the system `ssh` client, public-key authentication only.
    Sftp {
        /// `host` or `host:port`.
        endpoint: String,
        /// Remote user.
        user: String,
        /// Repository directory on the server.
        path: String,
        /// Private key file; `None` uses the ssh client's defaults / agent.
        key_file: Option<PathBuf>,
    },
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("kind", &self.kind)
            .field("password", &"***")
            .field("create_if_missing", &self.create_if_missing)
            .finish()
    }
}

impl fmt::Debug for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local { path } => f.debug_struct("Local").field("path", path).finish(),
            Self::S3 { endpoint, bucket, prefix, region, access_key_id, .. } => f
                .debug_struct("S3")
                .field("endpoint", endpoint)
                .field("bucket", bucket)
                .field("prefix", prefix)
                .field("region", region)
                .field("access_key_id", access_key_id)
                .field("secret_access_key", &"***")
                .finish(),
            Self::Rest { url } => f.debug_struct("Rest").field("url", &redact_url(url)).finish(),
            Self::Sftp { endpoint, user, path, key_file } => f
                .debug_struct("Sftp")
                .field("endpoint", endpoint)
                .field("user", user)
                .field("path", path)
                .field("key_file", key_file)
                .finish(),
        }
    }
}

/// Replaces the password of `scheme://user:password@host/...` with `***`, in its own place
/// (the same characters earlier in the URL, e.g. a user name, are not the password).
fn redact_url(url: &str) -> String {
    url_password(url)
        .map_or_else(|| url.to_string(), |at| format!("{}***{}", &url[..at.start], &url[at.end..]))
}

/// Where the password of `scheme://user:password@host/...` is in `url`.
fn url_password(url: &str) -> Option<std::ops::Range<usize>> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (user, password) = userinfo.split_once(':')?;
    let start = scheme.len() + "://".len() + user.len() + 1;
    (!password.is_empty()).then_some(start..start + password.len())
}

impl Store {
    /// A local repository at `path`.
    #[must_use]
    pub fn local(path: impl Into<PathBuf>, password: impl Into<String>) -> Self {
        Self {
            kind: StoreKind::Local { path: path.into() },
            password: password.into(),
            create_if_missing: false,
        }
    }

    /// The same store with `create_if_missing` set.
    #[must_use]
    pub fn create_if_missing(mut self, create: bool) -> Self {
        self.create_if_missing = create;
        self
    }

    /// A human description without secrets, for logs.
    #[must_use]
    pub fn describe(&self) -> String {
        match &self.kind {
            StoreKind::Local { path } => format!("local:{}", path.display()),
            StoreKind::S3 { endpoint, bucket, prefix, .. } => format!("s3:{endpoint}/{bucket}/{prefix}"),
            StoreKind::Rest { url } => format!("rest:{}", redact_url(url)),
            StoreKind::Sftp { endpoint, user, path, .. } => format!("sftp:{user}@{endpoint}:{path}"),
        }
    }

    pub(crate) fn redactor(&self) -> Redactor {
        let mut secrets = vec![self.password.clone()];
        match &self.kind {
            StoreKind::S3 { secret_access_key, .. } => secrets.push(secret_access_key.clone()),
            StoreKind::Rest { url } => {
                if let Some(at) = url_password(url) {
                    secrets.push(url[at].to_string());
                }
            }
            StoreKind::Local { .. } | StoreKind::Sftp { .. } => {}
        }
        Redactor::new(secrets)
    }

    fn backend_options(&self) -> Result<BackendOptions, Error> {
        let mut options = BTreeMap::new();
        let repository = match &self.kind {
            StoreKind::Local { path } => {
                let path = path
                    .to_str()
                    .ok_or_else(|| Error::InvalidInput("local store path is not valid UTF-8".into()))?;
                if path.is_empty() {
                    return Err(Error::InvalidInput("local store path is empty".into()));
                }
                // The explicit scheme keeps paths containing ':' local.
                format!("local:{path}")
            }
            StoreKind::S3 { endpoint, bucket, prefix, region, access_key_id, secret_access_key } => {
                if bucket.is_empty() {
                    return Err(Error::InvalidInput("s3 store: bucket is empty".into()));
                }
                let region = if region.is_empty() { "us-east-1" } else { region };
                let mut set = |k: &str, v: &str| {
                    options.insert(k.to_string(), v.to_string());
                };
                set("bucket", bucket);
                if !endpoint.is_empty() {
                    set("endpoint", endpoint);
                }
                set("region", region);
                set("root", &format!("/{}", prefix.trim_matches('/')));
                set("access_key_id", access_key_id);
                set("secret_access_key", secret_access_key);
                // Only the configured credentials: no environment, profile or instance metadata.
                set("disable_config_load", "true");
                set("disable_ec2_metadata", "true");
                "opendal:s3".to_string()
            }
            StoreKind::Rest { url } => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(Error::InvalidInput(
                        "rest store: url must start with http:// or https://".into(),
                    ));
                }
                format!("rest:{url}")
            }
            StoreKind::Sftp { endpoint, user, path, key_file } => {
                options.insert("endpoint".into(), format!("ssh://{endpoint}"));
                options.insert("user".into(), user.clone());
                options.insert("root".into(), path.clone());
                if let Some(key) = key_file {
                    let key = key.to_str().ok_or_else(|| {
                        Error::InvalidInput("sftp store: key file path is not valid UTF-8".into())
                    })?;
                    options.insert("key".into(), key.to_string());
                }
                "opendal:sftp".to_string()
            }
        };
        Ok(BackendOptions::default().repository(repository).options(options))
    }

    /// The raw (unguarded) backend.
    pub(crate) fn backend(&self) -> Result<Arc<dyn WriteBackend>, Error> {
        let backends = self.backend_options()?.to_backends().map_err(|e| self.redactor().rustic(&e))?;
        Ok(backends.repository())
    }
}

/// What an operation needs to talk to one store.
pub(crate) struct Opened {
    pub(crate) repo: Repository<OpenStatus>,
    /// The repository's backend behind the operation's guard.
    pub(crate) guarded: Arc<dyn WriteBackend>,
    /// The same backend without the guard.
    pub(crate) raw: Arc<dyn WriteBackend>,
    pub(crate) redactor: Redactor,
    /// True when this call initialised the repository.
    pub(crate) created: bool,
}

/// Options for [`open`].
pub(crate) struct OpenOptions<'a> {
    pub(crate) engine: &'a Engine,
    pub(crate) guard: Arc<Guard>,
    pub(crate) reporter: &'a Reporter,
    /// Fail reads once stopped (not for restore: rustic unwraps its reads there).
    pub(crate) fail_reads: bool,
    /// Initialise a missing repository when the store allows it.
    pub(crate) allow_create: bool,
}

/// Opens (and when allowed, initialises) the repository of `store`.
pub(crate) fn open(store: &Store, opts: &OpenOptions<'_>) -> Result<Opened, Error> {
    let redactor = store.redactor();
    let rustic = |e: Box<rustic_core::RusticError>| redactor.rustic(&e);
    let inner = store.backend()?;
    let guarded: Arc<dyn WriteBackend> =
        Arc::new(GuardedBackend::new(inner.clone(), opts.guard.clone(), opts.fail_reads));
    let backends = RepositoryBackends::new(guarded.clone(), None);
    let opened = |repo, created| Opened {
        repo,
        guarded: guarded.clone(),
        raw: inner.clone(),
        redactor: redactor.clone(),
        created,
    };
    let repo_opts = match &opts.engine.cache_dir {
        Some(dir) => RepositoryOptions::default().cache_dir(dir.clone()),
        None => RepositoryOptions::default().no_cache(true),
    };
    let repo = Repository::new_with_progress(&repo_opts, &backends, opts.reporter.bars()).map_err(rustic)?;
    let credentials = Credentials::password(&store.password);
    let keys = &opts.engine.keys;
    let slot = KeyCache::slot(store);
    if repo.config_id().map_err(rustic)?.is_some() {
        if let Some(key) = keys.get(&slot, inner.as_ref()) {
            match repo.clone().open(&Credentials::Masterkey(key)) {
                Ok(repo) => return Ok(opened(repo, false)),
                Err(_) => keys.forget(&slot),
            }
        }
        let repo = repo.open(&credentials).map_err(rustic)?;
        keys.remember(slot, &repo);
        return Ok(opened(repo, false));
    }
    if !(store.create_if_missing && opts.allow_create) {
        return Err(Error::RepositoryNotFound(store.describe()));
    }
    if store.password.is_empty() {
        return Err(Error::InvalidInput("store password is empty; refusing to initialise".into()));
    }
    let repo = repo.init(&credentials, &KeyOptions::default(), &ConfigOptions::default()).map_err(rustic)?;
    keys.remember(slot, &repo);
    opts.reporter.info(format!("initialised repository {}", store.describe()));
    Ok(opened(repo, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_describe_hide_secrets() {
        let store = Store {
            kind: StoreKind::S3 {
                endpoint: "http://127.0.0.1:9000".into(),
                bucket: "b".into(),
                prefix: "p".into(),
                region: String::new(),
                access_key_id: "AKIA".into(),
                secret_access_key: "topsecretkey".into(),
            },
            password: "repo-password".into(),
            create_if_missing: false,
        };
        let shown = format!("{store:?} {}", store.describe());
        assert!(!shown.contains("topsecretkey") && !shown.contains("repo-password"));

        let rest = Store {
            kind: StoreKind::Rest { url: "https://alice:s3cr3t@host:8000/repo".into() },
            password: "pw1234".into(),
            create_if_missing: false,
        };
        let shown = format!("{rest:?} {}", rest.describe());
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(rest.redactor().clean("x s3cr3t y").contains("***"));

        // A user name made of the password's characters: the password is the one hidden.
        let rest = Store {
            kind: StoreKind::Rest { url: "https://s3cr3t:s3cr3t@host:8000/repo".into() },
            password: "pw1234".into(),
            create_if_missing: false,
        };
        assert_eq!(rest.describe(), "rest:https://s3cr3t:***@host:8000/repo");
    }
}
