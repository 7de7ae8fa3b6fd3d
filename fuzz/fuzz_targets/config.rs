//! Fuzzes every service's configuration file: arbitrary TOML text through the same layering,
//! parser and type checks the binaries use (`cairn_runtime::config::load_str`), then each
//! service's `validate`. Nothing reachable from a config file may panic, and the redacted form
//! `--print-config` shows never carries a secret the file set.
#![no_main]

use cairn_runtime::config::{REDACTED, load_str, render};
use libfuzzer_sys::fuzz_target;
use serde::{Serialize, de::DeserializeOwned};

/// No flags: the file alone (the environment has no `CAIRN_*` here).
#[derive(Serialize)]
struct NoFlags {}

fn load<C: Serialize + DeserializeOwned>(defaults: &C, text: &str) -> Option<C> {
    match load_str(defaults, text, &NoFlags {}) {
        Ok(c) => Some(c),
        Err(e) => {
            let _ = e.to_string();
            None
        }
    }
}

/// A secret that was set is shown as the redaction marker, never as itself.
fn hidden(original: &Option<String>, redacted: &Option<String>, key: &str) {
    if let Some(v) = original {
        assert_eq!(redacted.as_deref(), Some(REDACTED), "{key} is not redacted (was {v:?})");
    }
}

/// A URL's password never survives redaction of that URL: the redacted text holds it only
/// where the URL held it outside its password (a user name may share characters with it).
/// Checked on the field itself: another setting may legitimately hold the same characters.
fn url_hidden(original: &Option<String>, redacted: &Option<String>) {
    let shown = redacted.as_deref().unwrap_or_default();
    let Some(raw) = original else { return };
    let Some((scheme, rest)) = raw.split_once("://") else { return };
    let Some((userinfo, host)) = rest.rsplit_once('@') else { return };
    let Some((user, password)) = userinfo.split_once(':') else { return };
    // Too short to tell apart, or made of the markers redaction writes.
    if password.len() < 6 || REDACTED.contains(password) || password.contains(['*', '<', '>']) {
        return;
    }
    let elsewhere = format!("{scheme}://{user}:@{host}");
    if !elsewhere.contains(password) {
        assert!(!shown.contains(password), "a URL's password is shown: {shown}");
    }
}

fuzz_target!(|input: (u8, &str)| {
    let (which, text) = input;
    match which % 4 {
        0 => {
            let Some(c) = load(&cairn_catalog::Config::default(), text) else { return };
            let _ = c.validate().map_err(|e| e.to_string());
            let r = c.redacted();
            for (k, a, b) in [
                ("secret_key", &c.secret_key, &r.secret_key),
                ("secret_key_previous", &c.secret_key_previous, &r.secret_key_previous),
                ("cluster_token", &c.cluster_token, &r.cluster_token),
                ("bootstrap_admin_password", &c.bootstrap_admin_password, &r.bootstrap_admin_password),
                ("bootstrap_token", &c.bootstrap_token, &r.bootstrap_token),
                ("bootstrap_worker_token", &c.bootstrap_worker_token, &r.bootstrap_worker_token),
            ] {
                hidden(a, b, k);
            }
            url_hidden(&c.database_url, &r.database_url);
            url_hidden(&Some(c.scheduler_url.clone()), &Some(r.scheduler_url.clone()));
            url_hidden(&c.otel_exporter_otlp_endpoint, &r.otel_exporter_otlp_endpoint);
            let _ = render(&r);
        }
        1 => {
            let Some(c) = load(&cairn_scheduler::Config::default(), text) else { return };
            let _ = c.validate().map_err(|e| e.to_string());
            let r = c.redacted();
            hidden(&c.cluster_token, &r.cluster_token, "cluster_token");
            hidden(&c.smtp_password, &r.smtp_password, "smtp_password");
            url_hidden(&c.database_url, &r.database_url);
            url_hidden(&c.smtp_url, &r.smtp_url);
            url_hidden(&Some(c.catalog_url.clone()), &Some(r.catalog_url.clone()));
            url_hidden(&c.console_url, &r.console_url);
            url_hidden(&c.otel_exporter_otlp_endpoint, &r.otel_exporter_otlp_endpoint);
            let _ = render(&r);
        }
        2 => {
            let Some(c) = load(&cairn_worker::Config::default(), text) else { return };
            let _ = c.validate().map_err(|e| e.to_string());
            let r = c.redacted();
            hidden(&c.cluster_token, &r.cluster_token, "cluster_token");
            hidden(&c.worker_token, &r.worker_token, "worker_token");
            url_hidden(&Some(c.scheduler_url.clone()), &Some(r.scheduler_url.clone()));
            url_hidden(&c.otel_exporter_otlp_endpoint, &r.otel_exporter_otlp_endpoint);
            let _ = render(&r);
        }
        _ => {
            let Some(c) = load(&cairn_console::Config::default(), text) else { return };
            let _ = c.validate().map_err(|e| e.to_string());
            let r = c.redacted();
            hidden(&c.session_key, &r.session_key, "session_key");
            hidden(&c.oidc.oidc_client_secret, &r.oidc.oidc_client_secret, "oidc_client_secret");
            for (a, b) in [(&c.catalog_url, &r.catalog_url), (&c.scheduler_url, &r.scheduler_url)] {
                url_hidden(&Some(a.clone()), &Some(b.clone()));
            }
            url_hidden(&c.public_url, &r.public_url);
            url_hidden(&c.otel_exporter_otlp_endpoint, &r.otel_exporter_otlp_endpoint);
            let _ = render(&r);
        }
    }
});
