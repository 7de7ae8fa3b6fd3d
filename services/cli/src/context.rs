//! Contexts: named sets of server URLs, CA, project and credential, kept in
//! `~/.config/cairn/config.toml` (`$CAIRN_CONFIG_DIR` or `$XDG_CONFIG_HOME/cairn` when set),
//! written 0600 because it holds tokens. Flags and `CAIRN_*` variables override the context.

use std::{collections::BTreeMap, path::PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{CliError, Result};

/// One context.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Context {
    /// Catalog URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog_url: Option<String>,
    /// Scheduler URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduler_url: Option<String>,
    /// Project id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// CA bundle for https:// servers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Bearer token: an API token, or a login's access token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// When the access token of a login expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_expire_time: Option<DateTime<Utc>>,
    /// The login's refresh token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Who logged in (`users/alice`), for `cairn context list`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Contexts {
    /// The context used when `--context` is not given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// By name.
    pub contexts: BTreeMap<String, Context>,
}

/// Where the file lives.
pub fn path() -> PathBuf {
    let dir = std::env::var_os("CAIRN_CONFIG_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CONFIG_HOME").map(|d| PathBuf::from(d).join("cairn")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/cairn")))
        .unwrap_or_else(|| PathBuf::from(".cairn"));
    dir.join("config.toml")
}

impl Contexts {
    /// The file, or an empty set when there is none.
    pub fn load() -> Result<Contexts> {
        let p = path();
        match std::fs::read_to_string(&p) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| CliError::Usage(format!("{}: {}", p.display(), e.message()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Contexts::default()),
            Err(e) => Err(CliError::Failed(format!("cannot read {}: {e}", p.display()))),
        }
    }

    /// Writes the file (0600).
    pub fn save(&self) -> Result<()> {
        use std::io::Write as _;
        #[cfg(unix)]
        use std::os::unix::fs::OpenOptionsExt as _;
        let p = path();
        let fail = |e: std::io::Error| CliError::Failed(format!("cannot write {}: {e}", p.display()));
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let text = toml::to_string_pretty(self).map_err(|e| CliError::Failed(e.to_string()))?;
        let tmp = p.with_extension("toml.tmp");
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        opts.mode(0o600);
        let mut f = opts.open(&tmp).map_err(fail)?;
        f.write_all(text.as_bytes()).map_err(fail)?;
        std::fs::rename(&tmp, &p).map_err(fail)
    }

    /// The name of the context in use: `--context`, else `current`, else `default`.
    pub fn chosen(&self, flag: Option<&str>) -> String {
        flag.map(str::to_owned).or_else(|| self.current.clone()).unwrap_or_else(|| "default".into())
    }

    /// A context by name (empty when unknown and not asked for explicitly).
    pub fn get(&self, name: &str, explicit: bool) -> Result<Context> {
        match self.contexts.get(name) {
            Some(c) => Ok(c.clone()),
            None if explicit => Err(CliError::Usage(format!(
                "--context: no context {name:?} in {} (cairn context list)",
                path().display()
            ))),
            None => Ok(Context::default()),
        }
    }
}
