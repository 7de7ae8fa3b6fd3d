//! Layered configuration: compiled-in defaults, then an optional TOML file, then `CAIRN_*`
//! environment variables (plus the standard `DATABASE_URL` and `OTEL_EXPORTER_OTLP_ENDPOINT`),
//! then command-line flags; the caller validates the result. Keys are the config struct's
//! field names (`CAIRN_LISTEN` → `listen`).

use std::path::Path;

use figment::{
    Figment,
    providers::{Env, Format as _, Serialized, Toml},
};
use serde::{Serialize, de::DeserializeOwned};

/// A configuration that could not be loaded or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A source could not be read or a value has the wrong type.
    #[error("configuration: {0}")]
    Load(String),
    /// A value is present but unacceptable; names the key.
    #[error("configuration: {key}: {message}")]
    Invalid {
        /// The key (`listen`, `secret_key_file`, ...).
        key: &'static str,
        /// Why.
        message: String,
    },
}

impl ConfigError {
    /// An invalid value of `key`.
    pub fn invalid(key: &'static str, message: impl Into<String>) -> Self {
        ConfigError::Invalid { key, message: message.into() }
    }
}

/// Environment variables read without the `CAIRN_` prefix.
const STANDARD_ENV: &[&str] = &["DATABASE_URL", "OTEL_EXPORTER_OTLP_ENDPOINT"];

/// Loads `C`: `defaults` → `file` (when given) → env → `flags` (only the fields that are
/// `Some`, so serialize flags with `skip_serializing_if = "Option::is_none"`).
pub fn load<C, F>(defaults: &C, file: Option<&Path>, flags: &F) -> Result<C, ConfigError>
where
    C: Serialize + DeserializeOwned,
    F: Serialize,
{
    let mut figment = Figment::from(Serialized::defaults(defaults));
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError::Load(format!("config file {} does not exist", path.display())));
        }
        figment = figment.merge(Toml::file(path));
    }
    extract(figment, flags)
}

/// As [`load`], with the file's text given instead of its path (what the config fuzz target
/// feeds: the same layering, parser and type checks).
pub fn load_str<C, F>(defaults: &C, toml: &str, flags: &F) -> Result<C, ConfigError>
where
    C: Serialize + DeserializeOwned,
    F: Serialize,
{
    extract(Figment::from(Serialized::defaults(defaults)).merge(Toml::string(toml)), flags)
}

fn extract<C, F>(figment: Figment, flags: &F) -> Result<C, ConfigError>
where
    C: DeserializeOwned,
    F: Serialize,
{
    figment
        .merge(Env::raw().only(STANDARD_ENV).map(|k| k.as_str().to_ascii_lowercase().into()))
        .merge(Env::prefixed("CAIRN_").ignore(&["CONFIG"]))
        .merge(Serialized::defaults(flags))
        .extract()
        .map_err(|e| ConfigError::Load(e.to_string()))
}

/// Replaces the password of a URL (`postgres://u:secret@h/db`) by `***`. Something that
/// looks like credentials but not like a URL (no valid scheme before `://`) is hidden whole:
/// the password could be anywhere in it.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let Some((userinfo, host)) = rest.rsplit_once('@') else { return url.to_owned() };
    let valid_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !valid_scheme {
        return REDACTED.to_owned();
    }
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// Marker shown instead of a secret.
pub const REDACTED: &str = "<redacted>";

/// Renders a config for `--print-config` (TOML, the same keys a file accepts).
pub fn render<C: Serialize>(config: &C) -> String {
    toml_render(config).unwrap_or_else(|e| format!("# could not render configuration: {e}"))
}

fn toml_render<C: Serialize>(config: &C) -> Result<String, String> {
    let value = serde_json::to_value(config).map_err(|e| e.to_string())?;
    let serde_json::Value::Object(map) = value else { return Err("not a table".into()) };
    let mut out = String::new();
    for (k, v) in map {
        match v {
            serde_json::Value::Null => out.push_str(&format!("# {k} = (unset)\n")),
            other => out.push_str(&format!("{k} = {other}\n")),
        }
    }
    Ok(out)
}

/// A secret given inline or as a file (`<key>_file`, Kubernetes/Docker secrets); not both.
/// A file's trailing newline is dropped.
pub fn secret(
    key: &'static str,
    inline: Option<&str>,
    file: Option<&Path>,
) -> Result<Option<String>, ConfigError> {
    match (inline.filter(|s| !s.is_empty()), file) {
        (Some(_), Some(_)) => Err(ConfigError::invalid(key, "set it inline or as a file, not both")),
        (Some(s), None) => Ok(Some(s.to_owned())),
        (None, Some(p)) => std::fs::read_to_string(p)
            .map(|s| Some(s.trim_end_matches(['\r', '\n']).to_owned()))
            .map_err(|e| ConfigError::invalid(key, format!("cannot read {}: {e}", p.display()))),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct C {
        listen: String,
        database_url: Option<String>,
        workers: u32,
    }

    #[derive(Serialize)]
    struct Flags {
        #[serde(skip_serializing_if = "Option::is_none")]
        workers: Option<u32>,
    }

    #[test]
    fn layers_apply_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "listen = \"file:1\"\nworkers = 2\n")?;
            jail.set_env("CAIRN_WORKERS", "3");
            jail.set_env("DATABASE_URL", "postgres://x");
            let d = C { listen: "default".into(), database_url: None, workers: 1 };
            let c: C =
                load(&d, Some(Path::new("c.toml")), &Flags { workers: None }).map_err(|e| e.to_string())?;
            assert_eq!(
                c,
                C { listen: "file:1".into(), database_url: Some("postgres://x".into()), workers: 3 }
            );
            let c: C = load(&d, Some(Path::new("c.toml")), &Flags { workers: Some(9) })
                .map_err(|e| e.to_string())?;
            assert_eq!(c.workers, 9);
            Ok(())
        });
    }

    #[test]
    fn bad_values_are_errors() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CAIRN_WORKERS", "many");
            let d = C { listen: "d".into(), database_url: None, workers: 1 };
            let err = load::<C, _>(&d, None, &Flags { workers: None }).unwrap_err().to_string();
            assert!(err.to_lowercase().contains("workers") && err.contains("CAIRN_"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn text_is_layered_like_a_file() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CAIRN_WORKERS", "3");
            let d = C { listen: "d".into(), database_url: None, workers: 1 };
            let c: C = load_str(&d, "listen = \"text:1\"\nworkers = 2\n", &Flags { workers: None })
                .map_err(|e| e.to_string())?;
            assert_eq!(c, C { listen: "text:1".into(), database_url: None, workers: 3 });
            let err = load_str::<C, _>(&d, "listen = [", &Flags { workers: None }).unwrap_err();
            assert!(matches!(err, ConfigError::Load(_)), "{err}");
            Ok(())
        });
    }

    #[test]
    fn url_passwords_are_redacted() {
        assert_eq!(redact_url("postgres://u:pw@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
        // Found by fuzz/config: a "scheme" holding the password again.
        assert_eq!(redact_url("x/u:ab:cd@db/y(://w:ab:cd@h:1"), REDACTED);
        assert_eq!(redact_url("postgres+ssl://u:pw@h"), "postgres+ssl://u:***@h");
    }
}
