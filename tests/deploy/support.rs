//! What every check shares: reading repository files, YAML as JSON values, the three service
//! binaries with their real flag parsers and `Config` structs, and a problem list that
//! reports every disagreement at once.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Display,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use clap::Parser as _;
use serde::Deserialize as _;
use serde_json::Value as Json;

/// A valid 32-byte key (bytes 0..32, base64) standing in for placeholders, so the catalog's
/// configuration can be validated. Not a key anyone uses.
pub const TEST_SECRET_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Marker of a placeholder value in committed templates.
pub const PLACEHOLDER: &str = "REPLACE_ME";

/// Binaries the image ships that no workspace member builds yet (none today). A name listed
/// here while it is also a real target fails the image check, so the list cannot go stale.
pub const PENDING_BINS: &[&str] = &[];

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ lives in the repository").to_path_buf()
}

/// A repository file's text.
pub fn read(rel: impl AsRef<Path>) -> String {
    let path = root().join(rel.as_ref());
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every document of a YAML file, as JSON values with `<<` merge keys applied.
pub fn yaml_docs(rel: impl AsRef<Path>) -> Vec<Json> {
    let rel = rel.as_ref();
    parse_yaml_docs(&read(rel), &rel.display().to_string())
}

/// Every document of YAML text (`what` names it in errors), as `yaml_docs` reads a file.
pub fn parse_yaml_docs(text: &str, what: &str) -> Vec<Json> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| {
            let mut v = Json::deserialize(doc).unwrap_or_else(|e| panic!("{what}: {e}"));
            apply_merge(&mut v);
            v
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// The single document of a YAML file.
pub fn yaml(rel: impl AsRef<Path>) -> Json {
    let rel = rel.as_ref();
    let mut docs = yaml_docs(rel);
    assert_eq!(docs.len(), 1, "{} should hold one YAML document", rel.display());
    docs.remove(0)
}

/// YAML merge keys (`<<: *anchor`, `<<: [*a, *b]`), including merged maps that merge in turn
/// (serde_norway's `apply_merge` leaves those behind). Keys written out win over merged ones;
/// earlier maps of a list win over later ones.
fn apply_merge(v: &mut Json) {
    match v {
        Json::Object(map) => {
            while let Some(merged) = map.remove("<<") {
                let sources = match merged {
                    Json::Array(items) => items,
                    other => vec![other],
                };
                for source in sources {
                    let Json::Object(source) = source else { panic!("`<<` merges a non-mapping") };
                    for (k, val) in source {
                        map.entry(k).or_insert(val);
                    }
                }
            }
            map.values_mut().for_each(apply_merge);
        }
        Json::Array(items) => items.iter_mut().for_each(apply_merge),
        _ => {}
    }
}

/// A scalar as text (YAML lets numbers and booleans stand where strings are meant).
pub fn scalar(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `v[key]` as a string slice.
pub fn str_at<'a>(v: &'a Json, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Json::as_str)
}

/// Disagreements found so far; the test fails listing all of them.
#[derive(Default)]
pub struct Problems(Vec<String>);

impl Problems {
    /// Records `message` unless `ok`.
    pub fn check(&mut self, ok: bool, message: impl FnOnce() -> String) {
        if !ok {
            self.0.push(message());
        }
    }

    /// Records a problem.
    pub fn push(&mut self, message: impl Display) {
        self.0.push(message.to_string());
    }

    /// Records the error of `r`, if any, and returns its value.
    pub fn ok<T, E: Display>(&mut self, context: impl Display, r: Result<T, E>) -> Option<T> {
        r.map_err(|e| self.push(format!("{context}: {e}"))).ok()
    }

    /// Fails the test when anything was recorded.
    #[track_caller]
    pub fn assert_none(self, what: &str) {
        assert!(self.0.is_empty(), "{what}: {} problem(s):\n  - {}", self.0.len(), self.0.join("\n  - "));
    }
}

/// A Cairn service binary whose flags and configuration the manifests must match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Binary {
    Catalog,
    Scheduler,
    Worker,
    /// The web console: HTTP on `listen`, no gRPC.
    Console,
}

impl Binary {
    pub const ALL: [Binary; 4] = [Binary::Catalog, Binary::Scheduler, Binary::Worker, Binary::Console];

    /// The executable's name.
    pub fn name(self) -> &'static str {
        match self {
            Binary::Catalog => "cairn-catalog",
            Binary::Scheduler => "cairn-scheduler",
            Binary::Worker => "cairn-worker",
            Binary::Console => "cairn-console",
        }
    }

    /// The binary an executable name runs, if it is a service.
    pub fn from_name(name: &str) -> Option<Binary> {
        Binary::ALL.into_iter().find(|b| b.name() == name)
    }

    /// The service a `<service>_url` key points at (`catalog_url` → catalog).
    pub fn from_url_key(key: &str) -> Option<Binary> {
        let service = key.strip_suffix("_url")?;
        Binary::from_name(&format!("cairn-{service}"))
    }

    /// `Config::default()` as JSON.
    pub fn defaults(self) -> Json {
        let v = match self {
            Binary::Catalog => serde_json::to_value(cairn_catalog::Config::default()),
            Binary::Scheduler => serde_json::to_value(cairn_scheduler::Config::default()),
            Binary::Worker => serde_json::to_value(cairn_worker::Config::default()),
            Binary::Console => serde_json::to_value(cairn_console::Config::default()),
        };
        v.expect("configs serialize")
    }

    /// The configuration keys (`Config`'s field names).
    pub fn keys(self) -> BTreeSet<String> {
        self.defaults().as_object().expect("Config is a struct").keys().cloned().collect()
    }

    /// Whether it serves gRPC (has a `listen` key and is no console). Workers only dial out.
    pub fn serves_grpc(self) -> bool {
        self != Binary::Console && self.keys().contains("listen")
    }

    /// The default `(grpc, metrics)` ports.
    pub fn default_ports(self) -> (Option<u16>, u16) {
        let d = Effective { config: self.defaults() };
        (d.addr("listen").map(|a| a.port()), d.metrics().port())
    }

    /// Loads the effective configuration exactly as the binary does, from `argv` (argv[0] is
    /// the program) and an environment holding only `env`, then validates it.
    #[allow(clippy::result_large_err)] // figment::Jail's closure signature
    pub fn load(self, argv: &[String], env: &BTreeMap<String, String>) -> Result<Effective, String> {
        fn finish<C: serde::Serialize>(c: C, valid: Result<(), impl Display>) -> Result<Json, String> {
            valid.map_err(|e| e.to_string())?;
            serde_json::to_value(c).map_err(|e| e.to_string())
        }
        let mut out = None;
        figment::Jail::try_with(|jail| {
            jail.clear_env();
            for (k, v) in env {
                jail.set_env(k, v);
            }
            let config = match self {
                Binary::Catalog => {
                    let flags = cairn_catalog::cli::Flags::try_parse_from(argv).map_err(|e| e.to_string())?;
                    let c = flags.config().map_err(|e| e.to_string())?;
                    let valid = c.validate();
                    finish(c, valid)
                }
                Binary::Scheduler => {
                    let flags =
                        cairn_scheduler::cli::Flags::try_parse_from(argv).map_err(|e| e.to_string())?;
                    let c = flags.config().map_err(|e| e.to_string())?;
                    let valid = c.validate();
                    finish(c, valid)
                }
                Binary::Worker => {
                    let flags = cairn_worker::cli::Flags::try_parse_from(argv).map_err(|e| e.to_string())?;
                    let c = flags.config().map_err(|e| e.to_string())?;
                    let valid = c.validate();
                    finish(c, valid)
                }
                Binary::Console => {
                    let flags = cairn_console::Flags::try_parse_from(argv).map_err(|e| e.to_string())?;
                    let c = flags.config().map_err(|e| e.to_string())?;
                    let valid = c.validate();
                    finish(c, valid)
                }
            };
            out = Some(config?);
            Ok(())
        })
        .map_err(|e| e.to_string())?;
        Ok(Effective { config: out.expect("the jail ran") })
    }

    /// Variables in `env` that the binary would not read: a `CAIRN_*` name that is no
    /// configuration key, or a standard name (`DATABASE_URL`, `OTEL_EXPORTER_OTLP_ENDPOINT`)
    /// whose key this binary lacks. `helpers` are variables other values refer to
    /// (Kubernetes `$(NODE_NAME)`).
    pub fn unknown_vars<'a>(
        self,
        env: impl IntoIterator<Item = &'a String>,
        helpers: &BTreeSet<String>,
    ) -> Vec<String> {
        const READ_BY_CONFIG: &[&str] = &["DATABASE_URL", "OTEL_EXPORTER_OTLP_ENDPOINT"];
        const READ_ELSEWHERE: &[&str] = &["RUST_LOG", "RUST_BACKTRACE", "CAIRN_CONFIG"];
        let keys = self.keys();
        env.into_iter()
            .filter(|name| {
                let name = name.as_str();
                if READ_ELSEWHERE.contains(&name) {
                    return false;
                }
                if let Some(key) = name.strip_prefix("CAIRN_") {
                    return !keys.contains(&key.to_ascii_lowercase());
                }
                if READ_BY_CONFIG.contains(&name) {
                    return !keys.contains(&name.to_ascii_lowercase());
                }
                !helpers.contains(name)
            })
            .cloned()
            .collect()
    }
}

/// An effective configuration, as JSON.
#[derive(Debug, Clone)]
pub struct Effective {
    pub config: Json,
}

impl Effective {
    /// A socket-address key.
    pub fn addr(&self, key: &str) -> Option<SocketAddr> {
        self.config.get(key)?.as_str()?.parse().ok()
    }

    /// The gRPC listen address (servers only).
    pub fn listen(&self) -> Option<SocketAddr> {
        self.addr("listen")
    }

    /// The metrics listen address.
    pub fn metrics(&self) -> SocketAddr {
        self.addr("metrics_listen").expect("every binary has metrics_listen")
    }

    /// A string key (None when unset).
    pub fn string(&self, key: &str) -> Option<String> {
        self.config.get(key)?.as_str().map(str::to_owned)
    }

    /// A number key.
    pub fn number(&self, key: &str) -> u64 {
        self.config.get(key).and_then(Json::as_u64).unwrap_or_else(|| panic!("{key} is a number"))
    }

    /// `<service>_url` keys with the gRPC service they must reach (`console_url` and
    /// `public_url` are where browsers go, not service addresses).
    pub fn service_urls(&self) -> Vec<(String, Binary, String)> {
        let obj = self.config.as_object().expect("Config is a struct");
        obj.iter()
            .filter_map(|(k, v)| Some((k.clone(), Binary::from_url_key(k)?, v.as_str()?.to_owned())))
            .filter(|(_, b, _)| b.serves_grpc())
            .collect()
    }
}

/// Host and port of a URL (`http://scheduler:50052`).
pub fn host_port(url: &str) -> Result<(String, u16), String> {
    let u = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    let host = u.host_str().ok_or_else(|| format!("{url}: no host"))?.to_owned();
    let port = u.port_or_known_default().ok_or_else(|| format!("{url}: no port"))?;
    Ok((host, port))
}

/// Every binary target of the workspace: explicit `[[bin]]` names, plus the implicit ones
/// (`src/main.rs` named after the package, `src/bin/*.rs`).
pub fn workspace_bins() -> BTreeSet<String> {
    let manifest: toml::Table = read("Cargo.toml").parse().expect("Cargo.toml parses");
    let members = manifest["workspace"]["members"].as_array().expect("workspace.members");
    let mut dirs = Vec::new();
    for m in members {
        let m = m.as_str().expect("member paths are strings");
        match m.strip_suffix("/*") {
            Some(parent) => {
                for e in std::fs::read_dir(root().join(parent)).expect("member parent exists") {
                    let p = e.expect("readable directory").path();
                    if p.join("Cargo.toml").exists() {
                        dirs.push(p);
                    }
                }
            }
            None => dirs.push(root().join(m)),
        }
    }
    let mut bins = BTreeSet::new();
    for dir in dirs {
        let text = std::fs::read_to_string(dir.join("Cargo.toml")).expect("member manifest");
        let pkg: toml::Table = text.parse().expect("member manifest parses");
        let explicit: Vec<(String, Option<String>)> = pkg
            .get("bin")
            .and_then(|b| b.as_array())
            .map(|bins| {
                bins.iter()
                    .map(|b| {
                        let name = b["name"].as_str().expect("[[bin]] name").to_owned();
                        (name, b.get("path").and_then(|p| p.as_str()).map(str::to_owned))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let paths: BTreeSet<&str> = explicit.iter().filter_map(|(_, p)| p.as_deref()).collect();
        bins.extend(explicit.iter().map(|(n, _)| n.clone()));
        let auto =
            pkg.get("package").and_then(|p| p.get("autobins")).and_then(|a| a.as_bool()) != Some(false);
        if dir.join("src/main.rs").exists() && !paths.contains("src/main.rs") && auto {
            bins.insert(pkg["package"]["name"].as_str().expect("package name").to_owned());
        }
        if auto && let Ok(entries) = std::fs::read_dir(dir.join("src/bin")) {
            for e in entries.flatten() {
                let p = e.path();
                let rel = format!("src/bin/{}", p.file_name().unwrap_or_default().to_string_lossy());
                if p.extension().is_some_and(|x| x == "rs") && !paths.contains(rel.as_str()) {
                    bins.insert(p.file_stem().unwrap_or_default().to_string_lossy().into_owned());
                }
            }
        }
    }
    bins
}

/// The parsed Dockerfile facts other checks rely on.
pub struct Image {
    /// Binaries built and copied into the image.
    pub bins: BTreeSet<String>,
    /// The runtime user id.
    pub uid: u32,
    /// Directories created in the runtime image (owned by the runtime user).
    pub dirs: BTreeSet<String>,
}

/// Reads deploy/docker/Dockerfile.
pub fn image() -> Image {
    let text = read("deploy/docker/Dockerfile");
    let joined = text.replace("\\\n", " ");
    let words: Vec<&str> = joined.split_whitespace().collect();
    let built: BTreeSet<String> =
        words.windows(2).filter(|w| w[0] == "--bin").map(|w| w[1].to_owned()).collect();
    let copied: BTreeSet<String> =
        words.iter().filter_map(|w| w.strip_prefix("target/release/")).map(str::to_owned).collect();
    assert_eq!(built, copied, "the Dockerfile copies exactly the binaries it builds");
    let user = joined
        .lines()
        .filter_map(|l| l.trim().strip_prefix("USER "))
        .next_back()
        .expect("the runtime stage sets USER");
    let uid = user.split(':').next().unwrap_or_default().trim().parse().expect("USER is a numeric uid");
    let dirs = joined
        .lines()
        .flat_map(|l| l.split("&&"))
        .filter(|command| command.trim_start().starts_with("install -d"))
        .flat_map(|command| command.split_whitespace().filter(|w| w.starts_with('/')).map(str::to_owned))
        .collect();
    Image { bins: built, uid, dirs }
}
