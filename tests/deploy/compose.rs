//! docker-compose.yml, read the way `docker compose` reads it (variables from the env
//! example, merge keys), against the binaries: commands, variables, ports, health checks,
//! URLs, start order, volumes, shutdown timing and the observability profile.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value as Json;

use crate::support::*;

const COMPOSE: &str = "docker-compose.yml";
const ENV_EXAMPLE: &str = "deploy/compose.env.example";
const DOCKERFILE: &str = "deploy/docker/Dockerfile";

/// What the quick start generates into `.env`: the example leaves these empty.
const GENERATED: &[(&str, &str)] = &[
    ("POSTGRES_PASSWORD", "test-password"),
    ("CAIRN_SECRET_KEY", TEST_SECRET_KEY),
    ("CAIRN_CLUSTER_TOKEN", "test-cluster-token-0123456789"),
    ("CAIRN_WORKER_TOKEN", "test-worker-token-0123456789abcdef"),
];

/// deploy/compose.env.example: its settings and its commented-out suggestions (`# K=V`).
struct EnvExample {
    values: BTreeMap<String, String>,
    suggested: BTreeMap<String, String>,
}

fn env_example() -> EnvExample {
    let mut values = BTreeMap::new();
    let mut suggested = BTreeMap::new();
    for line in read(ENV_EXAMPLE).lines().map(str::trim) {
        let (target, line) = match line.strip_prefix('#') {
            Some(rest) => (&mut suggested, rest.trim()),
            None => (&mut values, line),
        };
        if let Some((k, v)) = line.split_once('=')
            && !k.is_empty()
            && k.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            target.insert(k.to_owned(), v.to_owned());
        }
    }
    EnvExample { values, suggested }
}

/// A `${NAME...}` reference and whether compose needs a value for it (no default).
#[derive(Debug)]
struct VarRef {
    name: String,
    needs_value: bool,
}

/// Compose interpolation: `$$`, `$NAME`, `${NAME}`, `${NAME:-default}`, `${NAME-default}`,
/// `${NAME:?error}`, `${NAME?error}`, `${NAME:+alt}`, `${NAME+alt}`.
fn interpolate(s: &str, vars: &BTreeMap<String, String>, refs: &mut Vec<VarRef>) -> Result<String, String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = rest.strip_prefix('{') {
            let end = r.find('}').ok_or_else(|| format!("unclosed ${{ in {s:?}"))?;
            let (expr, after) = (&r[..end], &r[end + 1..]);
            rest = after;
            let name_len = expr.find(|c: char| !is_name(c)).unwrap_or(expr.len());
            let (name, op) = expr.split_at(name_len);
            let value = vars.get(name);
            let set = value.is_some();
            let non_empty = value.is_some_and(|v| !v.is_empty());
            let (replacement, needs_value) = match op {
                "" => (value.cloned().unwrap_or_default(), true),
                _ if op.starts_with(":-") => {
                    (if non_empty { value.cloned().unwrap_or_default() } else { op[2..].into() }, false)
                }
                _ if op.starts_with('-') => {
                    (if set { value.cloned().unwrap_or_default() } else { op[1..].into() }, false)
                }
                _ if op.starts_with(":?") => {
                    if !non_empty {
                        return Err(format!("required variable {name} is missing a value: {}", &op[2..]));
                    }
                    (value.cloned().unwrap_or_default(), true)
                }
                _ if op.starts_with('?') => {
                    if !set {
                        return Err(format!("required variable {name} is missing: {}", &op[1..]));
                    }
                    (value.cloned().unwrap_or_default(), true)
                }
                _ if op.starts_with(":+") => (if non_empty { op[2..].into() } else { String::new() }, false),
                _ if op.starts_with('+') => (if set { op[1..].into() } else { String::new() }, false),
                _ => return Err(format!("unsupported interpolation ${{{expr}}}")),
            };
            refs.push(VarRef { name: name.to_owned(), needs_value });
            out.push_str(&replacement);
        } else {
            let name_len = rest.find(|c: char| !is_name(c)).unwrap_or(rest.len());
            let (name, after) = rest.split_at(name_len);
            if name.is_empty() {
                return Err(format!("lone $ in {s:?} (write $$)"));
            }
            refs.push(VarRef { name: name.to_owned(), needs_value: true });
            out.push_str(vars.get(name).map(String::as_str).unwrap_or_default());
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Interpolates every string of `v` in place.
fn interpolate_all(
    v: &mut Json,
    vars: &BTreeMap<String, String>,
    refs: &mut Vec<VarRef>,
) -> Result<(), String> {
    match v {
        Json::String(s) => *s = interpolate(s, vars, refs)?,
        Json::Array(items) => {
            for i in items {
                interpolate_all(i, vars, refs)?;
            }
        }
        Json::Object(map) => {
            for i in map.values_mut() {
                interpolate_all(i, vars, refs)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The compose file as `docker compose` would run it after the quick start: variables from
/// the env example with the generated secrets filled in.
fn compose() -> Json {
    let mut vars = env_example().values;
    for (k, v) in GENERATED {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    let mut doc = yaml(COMPOSE);
    interpolate_all(&mut doc, &vars, &mut Vec::new()).expect("docker-compose.yml interpolates");
    doc
}

/// One service of the compose file that runs a Cairn binary.
struct Service {
    name: String,
    binary: Binary,
    argv: Vec<String>,
    env: BTreeMap<String, String>,
    raw: Json,
}

fn services(doc: &Json) -> BTreeMap<String, Json> {
    doc["services"]
        .as_object()
        .expect("docker-compose.yml has services")
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Whether a compose service runs the image built from the Dockerfile.
fn is_cairn(svc: &Json) -> bool {
    str_at(svc, "/build/dockerfile") == Some(DOCKERFILE)
}

/// The services running Cairn binaries; panics on one whose command is not a service binary.
fn cairn_services(doc: &Json) -> Vec<Service> {
    services(doc)
        .into_iter()
        .filter(|(_, svc)| is_cairn(svc))
        .map(|(name, raw)| {
            let argv: Vec<String> = raw["command"]
                .as_array()
                .unwrap_or_else(|| panic!("{name}: command must be a list (exec form)"))
                .iter()
                .map(|a| scalar(a).unwrap_or_else(|| panic!("{name}: command items are scalars")))
                .collect();
            let binary = argv.first().and_then(|b| Binary::from_name(b)).unwrap_or_else(|| {
                panic!("{name}: command {argv:?} does not start with a Cairn service binary")
            });
            let env = environment(&name, &raw);
            Service { name, binary, argv, env, raw }
        })
        .collect()
}

/// A service's `environment` (mapping or `K=V` list). A name without a value would copy the
/// host's variable: not allowed, the file must be self-contained.
fn environment(name: &str, svc: &Json) -> BTreeMap<String, String> {
    match &svc["environment"] {
        Json::Null => BTreeMap::new(),
        Json::Object(map) => map
            .iter()
            .map(|(k, v)| {
                let v = scalar(v)
                    .unwrap_or_else(|| panic!("{name}: {k} has no value (it would copy the host's)"));
                (k.clone(), v)
            })
            .collect(),
        Json::Array(items) => items
            .iter()
            .map(|i| {
                let i = i.as_str().expect("environment items are strings");
                let (k, v) = i.split_once('=').unwrap_or_else(|| panic!("{name}: {i} has no value"));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        other => panic!("{name}: environment is {other}"),
    }
}

fn effective(s: &Service) -> Result<Effective, String> {
    s.binary.load(&s.argv, &s.env)
}

/// Loads every Cairn service's effective configuration; errors are problems.
fn loaded(doc: &Json, p: &mut Problems) -> Vec<(Service, Effective)> {
    cairn_services(doc)
        .into_iter()
        .filter_map(|s| {
            let e = p.ok(format!("{} ({})", s.name, s.binary.name()), effective(&s))?;
            Some((s, e))
        })
        .collect()
}

/// Seconds of a compose duration (`75s`, `1m30s`).
fn duration_secs(v: &Json) -> Option<u64> {
    humantime::parse_duration(v.as_str()?).ok().map(|d| d.as_secs())
}

/// `(host port, container port)` of a short-syntax port mapping (`127.0.0.1:50051:50051`).
fn port_mapping(v: &Json) -> Option<(Option<u16>, u16)> {
    let s = scalar(v)?;
    let s = s.split('/').next()?;
    let mut parts: Vec<&str> = s.rsplitn(3, ':').collect();
    parts.reverse();
    let container = parts.last()?.parse().ok()?;
    let host = if parts.len() >= 2 { parts[parts.len() - 2].parse().ok() } else { None };
    Some((host, container))
}

/// Named volumes mounted by a service: `(volume, target)`.
fn named_mounts(svc: &Json, declared: &BTreeSet<String>) -> BTreeSet<(String, String)> {
    svc["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| {
            let v = v.as_str()?;
            let mut parts = v.split(':');
            let (source, target) = (parts.next()?, parts.next()?);
            declared.contains(source).then(|| (source.to_owned(), target.to_owned()))
        })
        .collect()
}

#[test]
fn compose_commands_and_variables_are_the_binaries_own() {
    let doc = compose();
    let mut p = Problems::default();
    let services = cairn_services(&doc);
    let count = |b: Binary| services.iter().filter(|s| s.binary == b).count();
    p.check(count(Binary::Catalog) == 1, || "one catalog service".into());
    p.check(count(Binary::Scheduler) == 1, || "one scheduler service".into());
    p.check(count(Binary::Worker) >= 2, || "at least two workers".into());
    let image = image();
    for s in &services {
        p.check(image.bins.contains(s.binary.name()), || {
            format!("{}: the image lacks {}", s.name, s.binary.name())
        });
        let unknown = s.binary.unknown_vars(s.env.keys(), &BTreeSet::new());
        p.check(unknown.is_empty(), || format!("{}: {} reads none of {unknown:?}", s.name, s.binary.name()));
        p.ok(format!("{} ({})", s.name, s.binary.name()), effective(s));
    }
    p.assert_none(COMPOSE);
}

#[test]
fn compose_ports_and_health_checks_match_the_effective_config() {
    let doc = compose();
    let mut p = Problems::default();
    let image = image();
    for (s, e) in loaded(&doc, &mut p) {
        let name = &s.name;
        let (default_grpc, default_metrics) = s.binary.default_ports();
        p.check(e.metrics().ip().is_unspecified(), || format!("{name}: metrics must listen on 0.0.0.0"));
        p.check(
            e.listen().map(|a| a.port()) == default_grpc && e.metrics().port() == default_metrics,
            || {
                format!(
                    "{name}: ports {:?}/{} differ from {}'s defaults {default_grpc:?}/{default_metrics}",
                    e.listen(),
                    e.metrics(),
                    s.binary.name()
                )
            },
        );
        let ports: Vec<_> =
            s.raw["ports"].as_array().into_iter().flatten().map(|v| (v, port_mapping(v))).collect();
        let health = s.raw.pointer("/healthcheck/test").and_then(Json::as_array).cloned().unwrap_or_default();
        let health: Vec<String> = health.iter().filter_map(scalar).collect();
        match e.listen() {
            Some(listen) if s.binary == Binary::Console => {
                // HTTP, published on the host's loopback; the health check GETs /health.
                p.check(listen.ip().is_unspecified(), || format!("{name}: HTTP must listen on 0.0.0.0"));
                let published = ports.iter().any(|(raw, m)| {
                    *m == Some((Some(listen.port()), listen.port()))
                        && scalar(raw).is_some_and(|r| r.starts_with("127.0.0.1:"))
                });
                p.check(published, || format!("{name}: publish HTTP as 127.0.0.1:{0}:{0}", listen.port()));
                let probe = format!("/dev/tcp/127.0.0.1/{} ", listen.port());
                p.check(health.iter().any(|w| w.contains(&probe) && w.contains("GET /health")), || {
                    format!("{name}: healthcheck {health:?} should GET /health on {}", listen.port())
                });
            }
            Some(listen) => {
                p.check(listen.ip().is_unspecified(), || format!("{name}: gRPC must listen on 0.0.0.0"));
                // On the host's loopback only: the public APIs have no authentication of their own.
                let published = ports.iter().any(|(raw, m)| {
                    *m == Some((Some(listen.port()), listen.port()))
                        && scalar(raw).is_some_and(|r| r.starts_with("127.0.0.1:"))
                });
                p.check(published, || format!("{name}: publish gRPC as 127.0.0.1:{0}:{0}", listen.port()));
                for (raw, m) in &ports {
                    p.check(m.is_some_and(|(_, c)| c == listen.port() || c == e.metrics().port()), || {
                        format!("{name}: port mapping {raw} targets no port the service listens on")
                    });
                }
                let expected = ["CMD", "cairn", "health", &format!("http://127.0.0.1:{}", listen.port())];
                p.check(health == expected, || {
                    format!("{name}: healthcheck {health:?}, expected {expected:?}")
                });
                p.check(image.bins.contains("cairn"), || {
                    "the image lacks the cairn CLI the health checks run".into()
                });
            }
            None => {
                p.check(ports.is_empty(), || format!("{name}: a worker publishes no ports"));
                let probe = format!("/dev/tcp/127.0.0.1/{} ", e.metrics().port());
                p.check(
                    health.first().map(String::as_str) == Some("CMD")
                        && health.iter().any(|w| w.contains(&probe)),
                    || {
                        format!(
                            "{name}: healthcheck {health:?} should probe the metrics port {}",
                            e.metrics().port()
                        )
                    },
                );
            }
        }
    }
    p.assert_none(COMPOSE);
}

#[test]
fn compose_urls_reach_the_right_services() {
    let doc = compose();
    let all = services(&doc);
    let mut p = Problems::default();
    let loaded = loaded(&doc, &mut p);
    let listen_of = |host: &str, want: Binary| {
        loaded.iter().find(|(s, _)| s.name == host && s.binary == want).and_then(|(_, e)| e.listen())
    };
    let mut tokens = BTreeSet::new();
    for (s, e) in &loaded {
        let name = &s.name;
        for (key, want, url) in e.service_urls() {
            match host_port(&url) {
                Ok((host, port)) => p.check(listen_of(&host, want).map(|a| a.port()) == Some(port), || {
                    format!("{name}: {key} = {url} is not a {} service listening on {port}", want.name())
                }),
                Err(err) => p.push(format!("{name}: {key}: {err}")),
            }
        }
        if let Some(db) = e.string("database_url") {
            let u = url::Url::parse(&db).expect("DATABASE_URL parses");
            let pg = u.host_str().and_then(|h| all.get(h));
            let ok = pg.is_some_and(|pg| {
                str_at(pg, "/image").is_some_and(|i| i.starts_with("postgres:"))
                    && u.port() == Some(5432)
                    && str_at(pg, "/environment/POSTGRES_USER") == Some(u.username())
                    && str_at(pg, "/environment/POSTGRES_PASSWORD") == u.password()
                    && str_at(pg, "/environment/POSTGRES_DB") == Some(u.path().trim_start_matches('/'))
            });
            p.check(ok, || {
                format!(
                    "{name}: DATABASE_URL must name the postgres service, its port, user, password and db"
                )
            });
        }
        // The console holds no credential of its own: it calls with each user's token.
        if s.binary.keys().contains("cluster_token") {
            tokens.insert(e.string("cluster_token").unwrap_or_default());
        }
    }
    p.check(tokens.len() == 1 && !tokens.contains(""), || {
        "every service must get the same, non-empty cluster token".into()
    });
    p.assert_none(COMPOSE);
}

#[test]
fn compose_start_order_storage_and_shutdown() {
    let doc = compose();
    let all = services(&doc);
    let declared: BTreeSet<String> =
        doc["volumes"].as_object().map(|v| v.keys().cloned().collect()).unwrap_or_default();
    let mut p = Problems::default();
    let image = image();
    let loaded = loaded(&doc, &mut p);
    let by_binary = |b: Binary| loaded.iter().filter(move |(s, _)| s.binary == b);
    let depends_healthy =
        |svc: &Json, on: &str| str_at(svc, &format!("/depends_on/{on}/condition")) == Some("service_healthy");

    // Postgres.
    let postgres: Vec<_> =
        all.iter().filter(|(_, s)| str_at(s, "/image").is_some_and(|i| i.starts_with("postgres:"))).collect();
    p.check(postgres.len() == 1, || "one postgres service".into());
    for (name, pg) in &postgres {
        p.check(str_at(pg, "/image").is_some_and(|i| i.starts_with("postgres:15")), || {
            format!("{name}: Postgres 15")
        });
        let test = pg.pointer("/healthcheck/test").map(Json::to_string).unwrap_or_default();
        p.check(test.contains("pg_isready"), || format!("{name}: healthcheck must run pg_isready"));
        let data = named_mounts(pg, &declared);
        p.check(data.iter().any(|(_, t)| t == "/var/lib/postgresql/data"), || {
            format!("{name}: data on a named volume")
        });
    }

    // Start order: a service waits for what it needs to be healthy, and whatever is waited
    // for has a health check.
    for (s, e) in &loaded {
        if let Some(db) = e.string("database_url") {
            let host =
                url::Url::parse(&db).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default();
            p.check(depends_healthy(&s.raw, &host), || {
                format!("{}: depends_on {host}: service_healthy", s.name)
            });
        }
    }
    for (s, e) in
        by_binary(Binary::Worker).chain(by_binary(Binary::Scheduler)).chain(by_binary(Binary::Console))
    {
        for (_, _, url) in e.service_urls() {
            let host = host_port(&url).map(|(h, _)| h).unwrap_or_default();
            p.check(depends_healthy(&s.raw, &host), || {
                format!("{}: depends_on {host}: service_healthy", s.name)
            });
        }
    }
    for (name, svc) in &all {
        for (dep, cond) in svc["depends_on"].as_object().into_iter().flatten() {
            let healthy = cond.get("condition").and_then(Json::as_str) == Some("service_healthy");
            let has_check = all.get(dep).is_some_and(|d| d.get("healthcheck").is_some());
            p.check(!healthy || has_check, || {
                format!("{name} waits for {dep} to be healthy, which has no healthcheck")
            });
            p.check(all.contains_key(dep), || format!("{name} depends on unknown service {dep}"));
        }
    }

    // Workers: different labels, one shared volume for local repositories, a cache volume.
    let workers: Vec<_> = by_binary(Binary::Worker).collect();
    let labels: BTreeSet<String> =
        workers.iter().map(|(_, e)| e.string("worker_labels").unwrap_or_default()).collect();
    p.check(labels.len() == workers.len(), || format!("workers need different labels, got {labels:?}"));
    let mut shared: Option<BTreeSet<(String, String)>> = None;
    for (s, e) in &workers {
        let mounts = named_mounts(&s.raw, &declared);
        shared = Some(match shared {
            None => mounts.clone(),
            Some(prev) => prev.intersection(&mounts).cloned().collect(),
        });
        match e.string("cache_dir") {
            Some(cache) => {
                p.check(mounts.iter().any(|(_, t)| *t == cache), || {
                    format!("{}: cache_dir {cache} is on no volume", s.name)
                });
                p.check(image.dirs.contains(&cache), || {
                    format!("{}: {cache} is not created (owned by cairn) in the image", s.name)
                });
            }
            None => p.push(format!("{}: set CAIRN_CACHE_DIR", s.name)),
        }
        let grace = e.number("grace_period_secs");
        let stop = duration_secs(&s.raw["stop_grace_period"]).unwrap_or(10);
        p.check(stop > grace, || {
            format!("{}: stop_grace_period {stop}s must exceed grace_period_secs {grace}", s.name)
        });
    }
    let shared = shared.unwrap_or_default();
    p.check(workers.is_empty() || !shared.is_empty(), || {
        "the workers share no named volume for local repositories".into()
    });
    for (volume, target) in &shared {
        p.check(image.dirs.contains(target), || {
            format!("shared volume {volume} at {target}: not a directory the image creates")
        });
    }

    // Servers: compose waits longer than the drain delay before SIGKILL.
    for (s, e) in loaded.iter().filter(|(s, _)| s.binary.serves_grpc()) {
        let stop = duration_secs(&s.raw["stop_grace_period"]).unwrap_or(10) * 1000;
        let drain = e.number("drain_delay_ms");
        p.check(stop > drain, || {
            format!("{}: stop_grace_period must exceed the drain delay {drain} ms", s.name)
        });
    }
    p.assert_none(COMPOSE);
}

#[test]
fn compose_env_example_covers_every_variable_and_holds_no_secret() {
    let example = env_example();
    let mut p = Problems::default();
    let mut refs = Vec::new();
    let mut doc = yaml(COMPOSE);
    let mut vars = example.values.clone();
    for (k, v) in GENERATED {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    p.ok(COMPOSE, interpolate_all(&mut doc, &vars, &mut refs));
    for r in refs.iter().filter(|r| r.needs_value) {
        p.check(example.values.contains_key(&r.name), || {
            format!("${{{}}} has no default and is not in {ENV_EXAMPLE}", r.name)
        });
    }
    for (k, _) in GENERATED {
        p.check(example.values.get(*k).is_some_and(String::is_empty), || {
            format!("{ENV_EXAMPLE}: {k}= must be present and empty (the quick start generates it)")
        });
        p.check(refs.iter().any(|r| r.name == *k), || format!("{COMPOSE} never uses {k}"));
    }
    // An empty secret stops compose with a message instead of starting without it.
    let mut empty = Vec::new();
    let err = interpolate_all(&mut yaml(COMPOSE), &example.values, &mut empty);
    p.check(err.is_err(), || "compose must refuse to start while the generated secrets are empty".into());
    let ignored = read(".gitignore");
    p.check(ignored.lines().any(|l| l.trim() == "/.env" || l.trim() == ".env"), || {
        ".gitignore must list .env".into()
    });
    p.assert_none(ENV_EXAMPLE);
}

#[test]
fn observability_profile_collects_every_service() {
    let doc = compose();
    let all = services(&doc);
    let mut p = Problems::default();
    let in_profile =
        |s: &Json| s["profiles"].as_array().is_some_and(|a| a.iter().any(|x| x == "observability"));
    // The collector is the service mounting a config file from deploy/.
    let collector = all.iter().find_map(|(name, s)| {
        let file = s["volumes"].as_array()?.iter().filter_map(Json::as_str).find_map(|v| {
            let source = v.split(':').next()?;
            source.strip_prefix("./").filter(|f| f.starts_with("deploy/") && f.contains("otel"))
        })?;
        Some((name.clone(), s.clone(), file.to_owned()))
    });
    let Some((collector, svc, file)) = collector else { panic!("no OpenTelemetry collector service") };
    p.check(in_profile(&svc), || format!("{collector} belongs to the observability profile"));
    let config = yaml(&file);

    // It scrapes every Cairn service's metrics port.
    let mut pe = Problems::default();
    let expected: BTreeSet<String> =
        loaded(&doc, &mut pe).iter().map(|(s, e)| format!("{}:{}", s.name, e.metrics().port())).collect();
    let scraped: BTreeSet<String> = config
        .pointer("/receivers/prometheus/config/scrape_configs")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .flat_map(|job| job["static_configs"].as_array().cloned().unwrap_or_default())
        .flat_map(|sc| sc["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect();
    p.check(scraped == expected, || format!("{file}: scrapes {scraped:?}, the services expose {expected:?}"));

    // The suggested OTLP endpoint is this collector's gRPC receiver.
    let suggested = env_example().suggested.get("OTEL_EXPORTER_OTLP_ENDPOINT").cloned().unwrap_or_default();
    let receiver = str_at(&config, "/receivers/otlp/protocols/grpc/endpoint").unwrap_or_default();
    let receiver_port = receiver.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
    match host_port(&suggested) {
        Ok((host, port)) => {
            p.check(host == collector, || {
                format!("{ENV_EXAMPLE} suggests {suggested}, the collector is {collector}")
            });
            p.check(Some(port) == receiver_port, || {
                format!("{ENV_EXAMPLE} suggests {suggested}, the receiver is {receiver}")
            });
        }
        Err(e) => p.push(format!("{ENV_EXAMPLE}: suggested OTEL_EXPORTER_OTLP_ENDPOINT: {e}")),
    }
    p.check(receiver.starts_with("0.0.0.0:"), || format!("{file}: the OTLP receiver must listen on 0.0.0.0"));

    // Spans go to a service of the same profile.
    for (name, exporter) in config["exporters"].as_object().into_iter().flatten() {
        if let Some(endpoint) = exporter["endpoint"].as_str().filter(|_| name.starts_with("otlp")) {
            let host = endpoint.split(':').next().unwrap_or_default();
            p.check(all.get(host).is_some_and(in_profile), || {
                format!("{file}: exporter {name} sends to {host}, not an observability service")
            });
        }
    }
    p.assert_none("observability profile");
}

#[test]
fn the_tls_override_loads_with_certificates_from_the_dev_ca_script() {
    if std::process::Command::new("openssl").arg("version").output().is_err() {
        eprintln!("skipped: openssl is not installed");
        return;
    }
    // The script's certificates, where the override's secrets would be mounted.
    let dir = tempfile::tempdir().unwrap();
    let ok = std::process::Command::new("bash")
        .arg(root().join("deploy/tls/dev-ca.sh"))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(ok.success(), "deploy/tls/dev-ca.sh failed");
    let over = yaml("deploy/compose.tls.yml");
    let secrets: BTreeMap<String, String> = over["secrets"]
        .as_object()
        .expect("the override declares its secrets")
        .iter()
        .map(|(name, s)| {
            let file = str_at(s, "/file").expect("file secrets").to_owned();
            let made = dir.path().join(file.strip_prefix("deploy/tls/dev/").expect("files of the dev CA"));
            assert!(made.is_file(), "the script does not make {file}");
            (format!("/run/secrets/{name}"), made.display().to_string())
        })
        .collect();
    // docker compose merges the override into the base file: environment maps merge by key.
    let mut doc = compose();
    for (name, svc) in over["services"].as_object().expect("services") {
        let base =
            doc["services"].get_mut(name).unwrap_or_else(|| panic!("the override names no service {name}"));
        for (k, v) in svc["environment"].as_object().into_iter().flatten() {
            let v = scalar(v).expect("scalar values");
            let v = secrets.get(&v).cloned().unwrap_or(v);
            base["environment"][k] = Json::String(v);
        }
        for s in svc["secrets"].as_array().into_iter().flatten() {
            let s = s.as_str().expect("secret names");
            assert!(over["secrets"].get(s).is_some(), "{name} uses an undeclared secret {s}");
        }
    }
    let mut p = Problems::default();
    let loaded = loaded(&doc, &mut p);
    for (s, e) in &loaded {
        let unknown = s.binary.unknown_vars(s.env.keys(), &BTreeSet::new());
        p.check(unknown.is_empty(), || format!("{}: {} reads none of {unknown:?}", s.name, s.binary.name()));
        // Every URL to another Cairn service is https once TLS is on.
        for (k, v) in &s.env {
            if k.ends_with("_URL") && v.contains(":5005") {
                p.check(v.starts_with("https://"), || format!("{}: {k}={v} is not https", s.name));
            }
        }
        let _ = e;
    }
    p.check(loaded.len() >= 4, || "catalog, scheduler and the workers load".into());
    p.assert_none("deploy/compose.tls.yml");
}
