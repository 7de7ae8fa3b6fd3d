//! Bearer JWTs from an external identity provider: signatures verified against the
//! provider's JWKS (fetched at start, refreshed every few minutes in the background and at
//! once, rate-limited, when a token names an unknown `kid`), issuer and audience checked,
//! only the configured algorithms accepted (never `none`, never an HMAC with a public key),
//! `exp`/`nbf` with a small leeway. The groups claim maps to project roles through the
//! configured role map (`group=project:role`, `group=*:platform-admin`).

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use cairn_api::{names::ProjectId, v1};
use cairn_runtime::{
    CancellationToken,
    auth::{Principal, Role, unauthenticated},
    config::ConfigError,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use serde::{Deserialize, Serialize};
use tonic::Status;

/// Allowed clock skew for `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;
/// Background refresh of the key set.
const REFRESH_EVERY: Duration = Duration::from_secs(300);
/// Fastest re-fetch for an unknown `kid`.
const REFETCH_AFTER: Duration = Duration::from_secs(10);

/// The provider's settings (keys of the catalog's configuration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OidcConfig {
    /// Expected `iss`; setting it turns JWT authentication on.
    pub oidc_issuer: Option<String>,
    /// Expected `aud`.
    pub oidc_audience: Option<String>,
    /// The JWKS URL (https, or http on loopback for tests).
    pub oidc_jwks_url: Option<String>,
    /// Accepted algorithms, comma-separated.
    pub oidc_algorithms: String,
    /// The claim holding the caller's groups (a string or a list of strings).
    pub oidc_groups_claim: String,
    /// `group=project:role` pairs, comma-separated; `group=*:platform-admin` makes platform
    /// admins. Roles: viewer, operator, editor, admin.
    pub oidc_role_map: Option<String>,
}

impl Default for OidcConfig {
    fn default() -> Self {
        OidcConfig {
            oidc_issuer: None,
            oidc_audience: None,
            oidc_jwks_url: None,
            oidc_algorithms: "RS256,ES256".into(),
            oidc_groups_claim: "groups".into(),
            oidc_role_map: None,
        }
    }
}

/// What a group grants.
#[derive(Debug, Clone, PartialEq)]
enum Grant {
    Project(ProjectId, Role),
    Platform,
}

/// Parsed settings.
#[derive(Debug, Clone)]
struct Settings {
    issuer: String,
    audience: String,
    jwks_url: String,
    algorithms: Vec<Algorithm>,
    groups_claim: String,
    grants: Vec<(String, Grant)>,
}

impl OidcConfig {
    /// Whether JWTs are accepted.
    pub fn enabled(&self) -> bool {
        self.oidc_issuer.as_deref().is_some_and(|s| !s.is_empty())
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.enabled() { self.settings().map(|_| ()) } else { Ok(()) }
    }

    fn settings(&self) -> Result<Settings, ConfigError> {
        let need = |v: &Option<String>, key: &'static str| {
            v.clone()
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(|| ConfigError::invalid(key, "is required with oidc_issuer"))
        };
        let jwks_url = need(&self.oidc_jwks_url, "oidc_jwks_url")?;
        let url: http::Uri =
            jwks_url.parse().map_err(|e| ConfigError::invalid("oidc_jwks_url", format!("{e}")))?;
        let host = url.host().unwrap_or_default();
        let loopback =
            host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if url.scheme_str() != Some("https") && !(url.scheme_str() == Some("http") && loopback) {
            return Err(ConfigError::invalid("oidc_jwks_url", "must be https:// (http:// only on loopback)"));
        }
        let mut algorithms = Vec::new();
        for a in self.oidc_algorithms.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            let alg: Algorithm = a.parse().map_err(|_| {
                ConfigError::invalid("oidc_algorithms", format!("{a:?} is not a JWT algorithm"))
            })?;
            if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
                return Err(ConfigError::invalid(
                    "oidc_algorithms",
                    "HMAC algorithms are not accepted from a JWKS",
                ));
            }
            algorithms.push(alg);
        }
        if algorithms.is_empty() {
            return Err(ConfigError::invalid(
                "oidc_algorithms",
                "name at least one algorithm (RS256, ES256, ...)",
            ));
        }
        let mut grants = Vec::new();
        for pair in self
            .oidc_role_map
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let bad = || ConfigError::invalid("oidc_role_map", format!("{pair:?} is not group=project:role"));
            let (group, target) = pair.split_once('=').ok_or_else(bad)?;
            let (project, role) = target.split_once(':').ok_or_else(bad)?;
            let grant = match (project.trim(), role.trim()) {
                ("*", "platform-admin") => Grant::Platform,
                (p, r) => Grant::Project(
                    ProjectId::parse(p)
                        .map_err(|e| ConfigError::invalid("oidc_role_map", format!("{pair:?}: {e}")))?,
                    Role::parse(r).ok_or_else(bad)?,
                ),
            };
            grants.push((group.trim().to_owned(), grant));
        }
        Ok(Settings {
            issuer: need(&self.oidc_issuer, "oidc_issuer")?,
            audience: need(&self.oidc_audience, "oidc_audience")?,
            jwks_url,
            algorithms,
            groups_claim: self.oidc_groups_claim.clone(),
            grants,
        })
    }
}

/// A verifier with its cached key set.
#[derive(Debug)]
pub struct Verifier {
    settings: Settings,
    keys: RwLock<JwkSet>,
    fetched: Mutex<Option<Instant>>,
    http: reqwest::Client,
}

fn refuse(why: impl std::fmt::Display) -> Status {
    unauthenticated(format!("invalid credential: {why}"))
}

/// Whether a credential has the shape of a JWT (three base64url parts, a JSON header).
pub fn looks_like_jwt(credential: &str) -> bool {
    credential.starts_with("eyJ") && credential.split('.').count() == 3
}

impl Verifier {
    /// Fetches the key set once (a failure leaves it empty and is retried on first use) and
    /// keeps it fresh until `shutdown`.
    pub async fn start(
        config: &OidcConfig,
        shutdown: CancellationToken,
    ) -> Result<Arc<Verifier>, ConfigError> {
        let settings = config.settings()?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ConfigError::invalid("oidc_jwks_url", e.to_string()))?;
        let v = Arc::new(Verifier {
            settings,
            keys: RwLock::new(JwkSet { keys: vec![] }),
            fetched: Mutex::new(None),
            http,
        });
        if let Err(e) = v.refresh().await {
            tracing::warn!(error = %e, "the identity provider's JWKS could not be fetched; retrying on first use");
        }
        let bg = v.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(REFRESH_EVERY) => {}
                }
                if let Err(e) = bg.refresh().await {
                    tracing::warn!(error = %e, "JWKS refresh failed; keeping the keys we have");
                }
            }
        });
        Ok(v)
    }

    async fn refresh(&self) -> Result<(), String> {
        if let Ok(mut f) = self.fetched.lock() {
            *f = Some(Instant::now());
        }
        let set: JwkSet = self
            .http
            .get(&self.settings.jwks_url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        tracing::debug!(keys = set.keys.len(), "JWKS fetched");
        if let Ok(mut k) = self.keys.write() {
            *k = set;
        }
        Ok(())
    }

    fn key(&self, kid: &str) -> Option<DecodingKey> {
        let keys = self.keys.read().ok()?;
        keys.find(kid).and_then(|jwk| DecodingKey::from_jwk(jwk).ok())
    }

    /// The principal of a JWT, or UNAUTHENTICATED naming what is wrong.
    pub async fn verify(&self, token: &str) -> Result<Principal, Status> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| refuse("malformed JWT"))?;
        if !self.settings.algorithms.contains(&header.alg) {
            return Err(refuse(format!("JWT algorithm {:?} is not accepted", header.alg)));
        }
        let kid = header.kid.ok_or_else(|| refuse("the JWT names no key (kid)"))?;
        let key = match self.key(&kid) {
            Some(k) => k,
            None => {
                // A rotated key: fetch again, at most every few seconds.
                let due =
                    self.fetched.lock().ok().and_then(|f| *f).is_none_or(|t| t.elapsed() >= REFETCH_AFTER);
                if due && let Err(e) = self.refresh().await {
                    tracing::warn!(error = %e, "JWKS re-fetch for an unknown key failed");
                }
                self.key(&kid).ok_or_else(|| refuse("the JWT's key is not in the provider's key set"))?
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data =
            jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, &key, &validation)
                .map_err(|e| {
                    use jsonwebtoken::errors::ErrorKind as K;
                    refuse(match e.kind() {
                        K::ExpiredSignature => "the JWT expired",
                        K::ImmatureSignature => "the JWT is not valid yet (nbf)",
                        K::InvalidIssuer => "the JWT's issuer is not the configured one",
                        K::InvalidAudience => "the JWT is not for this audience",
                        K::InvalidSignature => "the JWT's signature does not verify",
                        K::MissingRequiredClaim(_) => "the JWT lacks a required claim (exp, iss, aud, sub)",
                        _ => "the JWT does not verify",
                    })
                })?;
        Ok(self.principal(&data.claims))
    }

    fn principal(&self, claims: &serde_json::Map<String, serde_json::Value>) -> Principal {
        let sub = claims.get("sub").and_then(|v| v.as_str()).unwrap_or_default();
        let groups: Vec<&str> = match claims.get(&self.settings.groups_claim) {
            Some(serde_json::Value::String(g)) => vec![g.as_str()],
            Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_str()).collect(),
            _ => vec![],
        };
        let mut roles: BTreeMap<String, Role> = BTreeMap::new();
        let mut platform_admin = false;
        for (group, grant) in &self.settings.grants {
            if !groups.contains(&group.as_str()) {
                continue;
            }
            match grant {
                Grant::Platform => platform_admin = true,
                Grant::Project(p, r) => {
                    let e = roles.entry(p.as_str().to_owned()).or_insert(*r);
                    *e = (*e).max(*r);
                }
            }
        }
        let display = ["name", "email", "preferred_username"]
            .iter()
            .find_map(|k| claims.get(*k).and_then(|v| v.as_str()))
            .unwrap_or(sub);
        Principal(v1::Principal {
            name: format!("users/{sub}"),
            display_name: display.to_owned(),
            auth_method: "jwt".into(),
            platform_admin,
            roles: roles.into_iter().map(|(p, r)| (p, r.to_proto() as i32)).collect(),
            ..Default::default()
        })
    }
}
