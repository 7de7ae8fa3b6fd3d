//! deploy/k8s without a cluster: every kustomization's references exist, and the workloads
//! its files declare agree with the binaries: args, variables (resolved from ConfigMaps and
//! Secrets the way the kubelet does), ports, probes, Services, URLs, disruption budgets,
//! shutdown timing, security settings and network policies. The builds are made here, by
//! `build`; where kustomize (`kubectl kustomize`) and `kubernetes-validate` are installed, two
//! tests also check that kustomize renders the same objects and that the API's schemas accept
//! them (without them those tests say SKIP, or fail when CAIRN_CI is set).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use serde_json::Value as Json;
use sqlx::{
    ConnectOptions as _,
    postgres::{PgConnectOptions, PgSslMode},
};

use crate::support::*;

const K8S: &str = "deploy/k8s";

/// The API version of CloudNativePG's `Cluster`.
const CNPG: &str = "postgresql.cnpg.io/v1";

/// A password as the CloudNativePG operator makes them (letters and digits), standing in for
/// the one it generates.
const OPERATOR_PASSWORD: &str = "OperatorMadeThis0Password0Of0LettersAndDigits";

/// A resource read from a file listed by a kustomization, or one an operator makes from them.
struct Object {
    file: String,
    doc: Json,
    /// Made by an operator in the cluster (not in the repository, not applied by kustomize).
    generated: bool,
}

impl Object {
    fn kind(&self) -> &str {
        str_at(&self.doc, "/kind").unwrap_or_default()
    }
    fn name(&self) -> &str {
        str_at(&self.doc, "/metadata/name").unwrap_or_default()
    }
}

/// Every `kustomization.yaml` under deploy/k8s, by directory (relative to the root).
fn kustomizations() -> BTreeMap<PathBuf, Json> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Json>) {
        for e in std::fs::read_dir(root().join(dir)).expect("readable directory").flatten() {
            let rel = dir.join(e.file_name());
            if e.path().is_dir() {
                walk(&rel, out);
            } else if e.file_name() == "kustomization.yaml" {
                out.insert(dir.to_path_buf(), yaml(&rel));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(Path::new(K8S), &mut out);
    out
}

/// `dir/entry`, normalised and relative to the root; None when it leaves the repository.
fn join(dir: &Path, entry: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in dir.join(entry).components() {
        match c {
            std::path::Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    Some(out)
}

fn strings(v: &Json) -> Vec<String> {
    v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_owned)).collect()
}

/// Checks every kustomization's references and returns every file they list (resources and
/// patches).
fn listed_files(p: &mut Problems) -> BTreeSet<PathBuf> {
    let mut files = BTreeSet::new();
    for (dir, k) in kustomizations() {
        let ctx = dir.join("kustomization.yaml").display().to_string();
        p.check(str_at(&k, "/kind") == Some("Kustomization"), || format!("{ctx}: kind Kustomization"));
        p.check(k.get("components").is_none() && k.get("patchesStrategicMerge").is_none(), || {
            format!("{ctx}: components and patchesStrategicMerge are not evaluated by this test")
        });
        let mut referenced = strings(&k["resources"]);
        for patch in k["patches"].as_array().into_iter().flatten() {
            match patch["path"].as_str() {
                Some(path) if patch.get("target").is_none() => referenced.push(path.to_owned()),
                _ => p.push(format!("{ctx}: only patch files without a target are evaluated: {patch}")),
            }
        }
        for entry in referenced {
            let Some(path) = join(&dir, &entry) else {
                p.push(format!("{ctx}: {entry} leaves the repository"));
                continue;
            };
            let abs = root().join(&path);
            if abs.is_dir() {
                p.check(abs.join("kustomization.yaml").exists(), || {
                    format!("{ctx}: {entry} has no kustomization.yaml")
                });
            } else if abs.is_file() {
                files.insert(path);
            } else {
                p.push(format!("{ctx}: {entry} does not exist"));
            }
        }
    }
    files
}

/// What `kubectl apply -k dir` would apply: the resources (files, and directories built in
/// turn), then the kustomization's strategic merge patches.
fn build(dir: &Path, p: &mut Problems) -> Vec<Object> {
    let k = yaml(dir.join("kustomization.yaml"));
    let mut objects = Vec::new();
    for entry in strings(&k["resources"]) {
        let Some(path) = join(dir, &entry) else { continue };
        if root().join(&path).is_dir() {
            objects.extend(build(&path, p));
            continue;
        }
        if !root().join(&path).is_file() {
            continue;
        }
        for doc in yaml_docs(&path) {
            let o = Object { file: path.display().to_string(), doc, generated: false };
            p.check(
                !o.kind().is_empty() && !o.name().is_empty() && o.doc.get("apiVersion").is_some(),
                || format!("{}: every resource has apiVersion, kind and metadata.name", o.file),
            );
            objects.push(o);
        }
    }
    for file in k["patches"].as_array().into_iter().flatten().filter_map(|x| x["path"].as_str()) {
        let Some(path) = join(dir, file).filter(|f| root().join(f).is_file()) else { continue };
        for patch in yaml_docs(&path) {
            let (kind, name) = (str_at(&patch, "/kind"), str_at(&patch, "/metadata/name"));
            match objects.iter_mut().find(|o| Some(o.kind()) == kind && Some(o.name()) == name) {
                Some(o) => {
                    strategic_merge(&mut o.doc, &patch);
                    o.file = format!("{} patched by {}", o.file, path.display());
                }
                None => {
                    p.push(format!("{}: patches {kind:?} {name:?}, which is not a resource", path.display()))
                }
            }
        }
    }
    objects
}

/// The merge key of the lists Cairn's manifests patch (Kubernetes' `patchMergeKey`); other
/// lists are replaced whole.
fn merge_key(field: &str, items: &[Json]) -> Option<&'static str> {
    match field {
        "containers" | "initContainers" | "env" | "volumes" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "ports" if items.iter().any(|i| i.get("containerPort").is_some()) => Some("containerPort"),
        "ports" => Some("port"),
        _ => None,
    }
}

/// A strategic merge patch: maps merge, lists with a merge key merge item by item (in
/// kustomize's order: the patch's items, merged into the items they match, in the patch's
/// order, then the other items; the kubelet's `$(NAME)` expansion depends on it), a null
/// deletes the field, anything else replaces.
fn strategic_merge(target: &mut Json, patch: &Json) {
    let (Json::Object(t), Json::Object(patch)) = (&mut *target, patch) else {
        *target = patch.clone();
        return;
    };
    for (k, v) in patch {
        assert!(!k.starts_with("$patch"), "$patch directives are not evaluated by this test");
        if v.is_null() {
            t.remove(k);
            continue;
        }
        match (t.get_mut(k), v) {
            (Some(Json::Array(items)), Json::Array(patched)) => match merge_key(k, patched) {
                Some(key) => {
                    let mut rest = std::mem::take(items);
                    for item in patched {
                        let matching =
                            rest.iter().position(|i| i.get(key).is_some() && i.get(key) == item.get(key));
                        let mut merged = match matching {
                            Some(at) => rest.remove(at),
                            None => Json::Object(Default::default()),
                        };
                        strategic_merge(&mut merged, item);
                        items.push(merged);
                    }
                    items.extend(rest);
                }
                None => *items = patched.clone(),
            },
            (Some(existing), _) if existing.is_object() && v.is_object() => strategic_merge(existing, v),
            _ => {
                t.insert(k.clone(), v.clone());
            }
        }
    }
}

/// One `kubectl apply -k` target: a kustomization no other one builds on.
struct Build {
    dir: PathBuf,
    objects: Vec<Object>,
    workloads: Vec<Workload>,
}

/// The kustomizations no other one builds on: what `kubectl apply -k` is pointed at.
fn targets(ks: &BTreeMap<PathBuf, Json>) -> Vec<PathBuf> {
    let bases: BTreeSet<PathBuf> = ks
        .iter()
        .flat_map(|(dir, k)| strings(&k["resources"]).into_iter().filter_map(|r| join(dir, &r)))
        .collect();
    ks.keys().filter(|dir| !bases.contains(*dir)).cloned().collect()
}

/// Every target built, with what operators make from its custom resources.
fn builds(p: &mut Problems) -> Vec<Build> {
    targets(&kustomizations())
        .into_iter()
        .map(|dir| {
            let mut objects = build(&dir, p);
            let made = operator_objects(&objects);
            objects.extend(made);
            let workloads = workloads(&objects, &dir, p);
            Build { dir, objects, workloads }
        })
        .collect()
}

/// CloudNativePG `Cluster`s.
fn cnpg_clusters(objects: &[Object]) -> impl Iterator<Item = &Object> {
    objects.iter().filter(|o| o.kind() == "Cluster" && str_at(&o.doc, "/apiVersion") == Some(CNPG))
}

/// What the CloudNativePG operator makes for each `Cluster` N that Cairn's pods use: the
/// Secret N-app (the owner of the initdb database: username, password, ...) and N-ca (the CA
/// of the server certificate: ca.crt, and its key ca.key). Its Services (N-rw, N-ro, N-r) are
/// not modelled: they select the instance pods, which no manifest here declares.
fn operator_objects(objects: &[Object]) -> Vec<Object> {
    let mut out = Vec::new();
    for cluster in cnpg_clusters(objects) {
        let name = cluster.name();
        let initdb = &cluster.doc["spec"]["bootstrap"]["initdb"];
        let database = initdb["database"].as_str().unwrap_or("app");
        let owner = initdb["owner"].as_str().unwrap_or(database);
        let secret = |suffix: &str, data: Json| Object {
            file: format!("made by the CloudNativePG operator for Cluster {name}"),
            doc: serde_json::json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": format!("{name}{suffix}")},
                "stringData": data,
            }),
            generated: true,
        };
        out.push(secret(
            "-app",
            serde_json::json!({
                "username": owner, "user": owner, "password": OPERATOR_PASSWORD, "dbname": database,
                "host": format!("{name}-rw"), "port": "5432",
            }),
        ));
        out.push(secret("-ca", serde_json::json!({"ca.crt": "PEM", "ca.key": "PEM"})));
    }
    out
}

/// Runs `check` on every build; fails with every problem found.
fn each_build(check: impl Fn(&[Object], &[Workload], &mut Problems)) {
    let mut p = Problems::default();
    for b in builds(&mut p) {
        check(&b.objects, &b.workloads, &mut p);
    }
    p.assert_none(K8S);
}

fn labels(v: Option<&Json>) -> BTreeMap<String, String> {
    v.and_then(Json::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), scalar(v)?)))
        .collect()
}

/// Whether a label selector (`matchLabels` only; an empty selector matches everything)
/// selects `l`.
fn selects(selector: &Json, l: &BTreeMap<String, String>) -> bool {
    assert!(selector.get("matchExpressions").is_none(), "matchExpressions are not evaluated by this test");
    let wanted = match selector.get("matchLabels") {
        Some(m) => labels(Some(m)),
        None => labels(Some(selector)).into_iter().filter(|(k, _)| k != "matchLabels").collect(),
    };
    wanted.iter().all(|(k, v)| l.get(k) == Some(v))
}

/// A Deployment or DaemonSet running one Cairn binary, with its configuration loaded.
struct Workload {
    /// The kustomization it is built by.
    build: String,
    kind: String,
    name: String,
    file: String,
    spec: Json,
    pod: Json,
    labels: BTreeMap<String, String>,
    container: Json,
    binary: Binary,
    argv: Vec<String>,
    env: BTreeMap<String, String>,
    /// Where each variable comes from: `value`, `configmap:<name>/<key>`, `secret:<name>/<key>`,
    /// `field:<path>`, or `value of <origins>` for a value built from other variables.
    origin: BTreeMap<String, String>,
    /// Variables other values refer to as `$(NAME)`.
    helpers: BTreeSet<String>,
    effective: Result<Effective, String>,
}

impl Workload {
    fn ctx(&self) -> String {
        format!("{} {} ({}, built by {})", self.kind, self.name, self.file, self.build)
    }

    /// A container port by number or name.
    fn port(&self, port: &Json) -> Option<u16> {
        match port {
            Json::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
            Json::String(name) => self.ports().get(name).copied(),
            _ => None,
        }
    }

    /// Named container ports.
    fn ports(&self) -> BTreeMap<String, u16> {
        self.container["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                Some((p["name"].as_str()?.to_owned(), u16::try_from(p["containerPort"].as_u64()?).ok()?))
            })
            .collect()
    }

    fn is(&self, b: Binary) -> bool {
        self.binary == b
    }
}

fn object<'a>(objects: &'a [Object], kind: &str, name: &str) -> Option<&'a Object> {
    objects.iter().find(|o| o.kind() == kind && o.name() == name)
}

/// A Secret's value; the placeholder key is replaced by a valid one so the catalog's
/// configuration validates.
fn secret_value(secret: &Object, key: &str) -> Option<String> {
    let v = scalar(secret.doc.pointer(&format!("/stringData/{key}"))?)?;
    Some(match () {
        _ if v.contains(PLACEHOLDER) && (key.ends_with("SECRET_KEY") || key.ends_with("SESSION_KEY")) => {
            TEST_SECRET_KEY.to_owned()
        }
        _ if v.contains(PLACEHOLDER) && key.ends_with("TOKEN") => {
            "a-placeholder-token-0123456789abcdef".to_owned()
        }
        _ => v,
    })
}

/// Expands `$(NAME)` with the variables defined so far, as the kubelet does: `$$` is a `$`,
/// an undefined name stays as written. Returns the value and the names it refers to.
fn expand(value: &str, env: &BTreeMap<String, String>) -> (String, Vec<String>) {
    let (mut out, mut names) = (String::new(), Vec::new());
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some((name, tail)) = after.strip_prefix('(').and_then(|a| a.split_once(')')) {
            match env.get(name) {
                Some(v) => out.push_str(v),
                None => out.push_str(&format!("$({name})")),
            }
            names.push(name.to_owned());
            rest = tail;
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    (out, names)
}

/// A sample value for a downward-API field.
fn field_sample(path: &str) -> String {
    match path {
        "spec.nodeName" => "node-1".into(),
        "metadata.name" => "pod-1".into(),
        "metadata.namespace" => "cairn".into(),
        "status.podIP" => "10.0.0.7".into(),
        other => other.replace('.', "-"),
    }
}

/// Every Deployment and DaemonSet with its container's configuration resolved.
fn workloads(objects: &[Object], build: &Path, p: &mut Problems) -> Vec<Workload> {
    let mut out = Vec::new();
    for o in objects.iter().filter(|o| matches!(o.kind(), "Deployment" | "DaemonSet" | "StatefulSet")) {
        let ctx = format!("{} {} ({})", o.kind(), o.name(), o.file);
        let spec = o.doc["spec"].clone();
        let pod = spec["template"].clone();
        let containers =
            pod.pointer("/spec/containers").and_then(Json::as_array).cloned().unwrap_or_default();
        p.check(containers.len() == 1, || format!("{ctx}: one container"));
        let Some(container) = containers.into_iter().next() else { continue };
        p.check(container.get("command").is_none(), || {
            format!("{ctx}: set args, not command (command replaces tini)")
        });
        let argv = strings(&container["args"]);
        let Some(binary) = argv.first().and_then(|b| Binary::from_name(b)) else {
            p.push(format!("{ctx}: args {argv:?} do not start with a Cairn service binary"));
            continue;
        };

        let mut env = BTreeMap::new();
        let mut origin = BTreeMap::new();
        let mut helpers = BTreeSet::new();
        for from in container["envFrom"].as_array().into_iter().flatten() {
            let optional = |r: &Json| r["optional"].as_bool() == Some(true);
            if let Some(r) = from.get("configMapRef") {
                let name = r["name"].as_str().unwrap_or_default();
                match object(objects, "ConfigMap", name) {
                    Some(cm) => {
                        for (k, v) in cm.doc["data"].as_object().into_iter().flatten() {
                            env.insert(k.clone(), scalar(v).unwrap_or_default());
                            origin.insert(k.clone(), format!("configmap:{name}/{k}"));
                        }
                    }
                    None => {
                        p.check(optional(r), || format!("{ctx}: envFrom ConfigMap {name} does not exist"))
                    }
                }
            } else if let Some(r) = from.get("secretRef") {
                let name = r["name"].as_str().unwrap_or_default();
                match object(objects, "Secret", name) {
                    Some(s) => {
                        for k in s.doc["stringData"].as_object().into_iter().flatten().map(|(k, _)| k) {
                            env.insert(k.clone(), secret_value(s, k).unwrap_or_default());
                            origin.insert(k.clone(), format!("secret:{name}/{k}"));
                        }
                    }
                    None => p.check(optional(r), || format!("{ctx}: envFrom Secret {name} does not exist")),
                }
            }
        }
        for e in container["env"].as_array().into_iter().flatten() {
            let name = e["name"].as_str().unwrap_or_default().to_owned();
            p.check(e.get("value").is_none() || e.get("valueFrom").is_none(), || {
                format!("{ctx}: {name} has both value and valueFrom (refused; a patch setting one nulls the other)")
            });
            if let Some(v) = e.get("value") {
                let (v, refs) = expand(&scalar(v).unwrap_or_default(), &env);
                for r in &refs {
                    p.check(env.contains_key(r), || {
                        format!("{ctx}: {name} refers to $({r}), which no variable before it defines")
                    });
                }
                let from: Vec<String> = refs.iter().filter_map(|r| origin.get(r).cloned()).collect();
                helpers.extend(refs);
                env.insert(name.clone(), v);
                origin.insert(
                    name,
                    if from.is_empty() { "value".into() } else { format!("value of {}", from.join(", ")) },
                );
                continue;
            }
            let from = &e["valueFrom"];
            let keyed = |kind: &str, r: &Json| -> (Option<String>, String, bool) {
                let (obj, key) =
                    (r["name"].as_str().unwrap_or_default(), r["key"].as_str().unwrap_or_default());
                let value = object(objects, kind, obj).and_then(|o| match kind {
                    "Secret" => secret_value(o, key),
                    _ => o.doc.pointer(&format!("/data/{key}")).and_then(scalar),
                });
                let tag = if kind == "Secret" { "secret" } else { "configmap" };
                (value, format!("{tag}:{obj}/{key}"), r["optional"].as_bool() == Some(true))
            };
            let (value, source, optional) = if let Some(r) = from.get("secretKeyRef") {
                keyed("Secret", r)
            } else if let Some(r) = from.get("configMapKeyRef") {
                keyed("ConfigMap", r)
            } else if let Some(path) = from.pointer("/fieldRef/fieldPath").and_then(Json::as_str) {
                (Some(field_sample(path)), format!("field:{path}"), false)
            } else {
                p.push(format!("{ctx}: {name}: unsupported env source {from}"));
                continue;
            };
            match value {
                Some(v) => {
                    env.insert(name.clone(), v);
                    origin.insert(name, source);
                }
                None => p.check(optional, || format!("{ctx}: {name} refers to missing {source}")),
            }
        }
        out.push(Workload {
            build: build.display().to_string(),
            kind: o.kind().to_owned(),
            name: o.name().to_owned(),
            file: o.file.clone(),
            labels: labels(pod.pointer("/metadata/labels")),
            spec,
            pod,
            container,
            binary,
            argv,
            env,
            origin,
            helpers,
            effective: Err(String::new()),
        });
        let w = out.last_mut().expect("just pushed");
        w.effective = w.binary.load(&w.argv, &kubelet_files(w, objects));
    }
    out
}

/// The dev CA's certificates (deploy/tls/dev-ca.sh), standing in for placeholder Secret files.
fn dev_ca() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temporary directory");
        let ok = std::process::Command::new("bash")
            .arg(root().join("deploy/tls/dev-ca.sh"))
            .arg(dir.path())
            .args(["localhost", "cairn-catalog", "cairn-scheduler"])
            .output()
            .expect("deploy/tls/dev-ca.sh runs (it needs openssl)");
        assert!(ok.status.success(), "deploy/tls/dev-ca.sh failed: {}", String::from_utf8_lossy(&ok.stderr));
        dir
    })
    .path()
}

/// The container's variables with every path to a Secret-mounted file replaced by a real file
/// holding what the kubelet would put there (the dev CA's files for placeholders), so the
/// binaries' loaders read actual certificates.
fn kubelet_files(w: &Workload, objects: &[Object]) -> BTreeMap<String, String> {
    let mut env = w.env.clone();
    for v in env.values_mut() {
        let Ok(m) = mounted(w, objects, v) else { continue };
        let value = object(objects, "Secret", &m.secret)
            .and_then(|s| scalar(s.doc.pointer(&format!("/stringData/{}", m.key))?));
        let file = match value {
            Some(text) if !text.contains(PLACEHOLDER) => {
                let file = dev_ca().join(format!("{}-{}", m.secret, m.key));
                std::fs::write(&file, text).expect("writable temporary directory");
                file
            }
            _ => dev_ca().join(match m.key.as_str() {
                "tls.crt" => "server.pem",
                "tls.key" => "server.key",
                "ca.crt" => "ca.pem",
                other => panic!("no stand-in for the placeholder Secret key {other}"),
            }),
        };
        *v = file.display().to_string();
    }
    env
}

/// The variable that sets a configuration key.
fn var_of(key: &str) -> String {
    format!("CAIRN_{}", key.to_uppercase())
}

/// Workloads whose configuration loaded; the others are problems.
fn loaded<'a>(ws: &'a [Workload], p: &mut Problems) -> Vec<(&'a Workload, Effective)> {
    ws.iter().filter_map(|w| Some((w, p.ok(w.ctx(), w.effective.clone())?))).collect()
}

#[test]
fn kustomizations_reference_existing_files() {
    let mut p = Problems::default();
    let ks = kustomizations();
    p.check(ks.contains_key(Path::new(K8S)), || format!("{K8S}/kustomization.yaml is the entry point"));
    // Every YAML file under deploy/k8s is listed somewhere (nothing silently left out).
    let listed: BTreeSet<String> = listed_files(&mut p).iter().map(|f| f.display().to_string()).collect();
    fn yaml_files(dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(root().join(dir)).expect("readable").flatten() {
            let rel = dir.join(e.file_name());
            if e.path().is_dir() {
                yaml_files(&rel, out);
            } else if rel.extension().is_some_and(|x| x == "yaml") && e.file_name() != "kustomization.yaml" {
                out.push(rel.display().to_string());
            }
        }
    }
    let mut files = Vec::new();
    yaml_files(Path::new(K8S), &mut files);
    for f in files {
        p.check(listed.contains(&f), || format!("{f} is listed by no kustomization"));
    }
    // One namespace and one image everywhere resources are rewritten.
    let namespaces: BTreeSet<&str> = ks.values().filter_map(|k| str_at(k, "/namespace")).collect();
    p.check(namespaces.len() == 1, || format!("kustomizations disagree on the namespace: {namespaces:?}"));
    let images: BTreeSet<String> = ks.values().filter_map(|k| k.get("images")).map(Json::to_string).collect();
    p.check(images.len() == 1, || format!("kustomizations disagree on the image: {images:?}"));
    let image_names: BTreeSet<String> = ks
        .values()
        .flat_map(|k| k["images"].as_array().cloned().unwrap_or_default())
        .filter_map(|i| i["name"].as_str().map(str::to_owned))
        .collect();
    for w in builds(&mut p).iter().flat_map(|b| &b.workloads) {
        let image = w.container["image"].as_str().unwrap_or_default();
        p.check(image_names.contains(image), || {
            format!("{}: image {image} is not rewritten by `images:`", w.ctx())
        });
    }
    p.assert_none(K8S);
}

#[test]
fn workloads_run_real_commands_with_known_settings() {
    let mut p = Problems::default();
    let all: Vec<Workload> = builds(&mut p).into_iter().flat_map(|b| b.workloads).collect();
    p.check(all.iter().any(|w| w.is(Binary::Worker) && w.kind == "DaemonSet"), || {
        "a DaemonSet variant runs node workers".into()
    });
    p.assert_none(K8S);
    let image = image();
    each_build(|_, ws, p| {
        for b in Binary::ALL {
            p.check(ws.iter().any(|w| w.is(b) && w.kind == "Deployment"), || {
                format!("a Deployment runs {}", b.name())
            });
        }
        for w in ws {
            p.check(image.bins.contains(w.binary.name()), || {
                format!("{}: the image lacks {}", w.ctx(), w.binary.name())
            });
            let unknown = w.binary.unknown_vars(w.env.keys(), &w.helpers);
            p.check(unknown.is_empty(), || {
                format!("{}: {} reads none of {unknown:?}", w.ctx(), w.binary.name())
            });
            p.ok(format!("{} {:?}", w.ctx(), w.argv), w.effective.clone());
        }
    });
}

#[test]
fn ports_probes_and_services_match_the_effective_config() {
    each_build(|objects, ws, p| {
        for (w, e) in loaded(ws, p) {
            let ctx = w.ctx();
            let ports = w.ports();
            let (default_grpc, default_metrics) = w.binary.default_ports();
            p.check(e.metrics().ip().is_unspecified(), || format!("{ctx}: metrics must listen on 0.0.0.0"));
            p.check(ports.get("metrics") == Some(&e.metrics().port()), || {
                format!(
                    "{ctx}: container port `metrics` {:?} != metrics_listen {}",
                    ports.get("metrics"),
                    e.metrics()
                )
            });
            p.check(e.metrics().port() == default_metrics, || {
                format!("{ctx}: metrics port differs from the default {default_metrics}")
            });
            let annotated = str_at(&w.pod, "/metadata/annotations/prometheus.io~1port")
                .and_then(|v| v.parse::<u16>().ok());
            p.check(annotated == Some(e.metrics().port()), || {
                format!("{ctx}: prometheus.io/port {annotated:?}")
            });
            let probe_port = |kind: &str, field: &str| -> Option<u16> {
                w.container.get(kind).and_then(|pr| pr.pointer(field)).and_then(|port| w.port(port))
            };
            match e.listen() {
                Some(listen) if w.is(Binary::Console) => {
                    p.check(listen.ip().is_unspecified(), || format!("{ctx}: HTTP must listen on 0.0.0.0"));
                    p.check(ports.get("http") == Some(&listen.port()), || {
                        format!("{ctx}: container port `http` {:?} != listen {listen}", ports.get("http"))
                    });
                    for kind in ["readinessProbe", "livenessProbe"] {
                        let port = probe_port(kind, "/httpGet/port");
                        let path =
                            w.container.pointer(&format!("/{kind}/httpGet/path")).and_then(Json::as_str);
                        p.check(port == Some(listen.port()) && path == Some("/health"), || {
                            format!("{ctx}: {kind} must GET /health on {}", listen.port())
                        });
                    }
                    p.check(e.string("public_url").is_some_and(|u| u.starts_with("https://")), || {
                        format!("{ctx}: set CAIRN_PUBLIC_URL to the https address browsers use")
                    });
                }
                Some(listen) => {
                    p.check(listen.ip().is_unspecified(), || format!("{ctx}: gRPC must listen on 0.0.0.0"));
                    p.check(Some(listen.port()) == default_grpc, || {
                        format!("{ctx}: gRPC port differs from the default {default_grpc:?}")
                    });
                    p.check(ports.get("grpc") == Some(&listen.port()), || {
                        format!("{ctx}: container port `grpc` {:?} != listen {listen}", ports.get("grpc"))
                    });
                    for kind in ["readinessProbe", "livenessProbe", "startupProbe"] {
                        let required = kind != "startupProbe";
                        let present = w.container.get(kind).is_some();
                        p.check(present || !required, || format!("{ctx}: {kind} is required"));
                        // Over TLS the probes run `cairn health` (tls_files_come_from_secrets...).
                        if present && e.string("tls_cert_file").is_none() {
                            let port = probe_port(kind, "/grpc/port");
                            p.check(port == Some(listen.port()), || {
                                format!("{ctx}: {kind} must be grpc on {}, got {port:?}", listen.port())
                            });
                        }
                    }
                }
                None => {
                    p.check(!ports.contains_key("grpc"), || format!("{ctx}: a worker serves no gRPC"));
                    let port = probe_port("livenessProbe", "/httpGet/port");
                    let path = w.container.pointer("/livenessProbe/httpGet/path").and_then(Json::as_str);
                    p.check(port == Some(e.metrics().port()) && path == Some("/health"), || {
                        format!("{ctx}: livenessProbe must GET /health on the metrics port")
                    });
                }
            }
            // The selector selects the template's pods.
            let selector = w.spec.get("selector").cloned().unwrap_or_default();
            p.check(selects(&selector, &w.labels), || {
                format!("{ctx}: spec.selector does not select its pod template")
            });
        }

        // Services: select workloads, and every port reaches a container port of each of them.
        for svc in objects.iter().filter(|o| o.kind() == "Service") {
            let selector = svc.doc.pointer("/spec/selector").cloned().unwrap_or_default();
            let backends: Vec<&Workload> = ws.iter().filter(|w| selects(&selector, &w.labels)).collect();
            p.check(!backends.is_empty(), || format!("Service {} selects no workload", svc.name()));
            for port in svc.doc.pointer("/spec/ports").and_then(Json::as_array).into_iter().flatten() {
                let target = port.get("targetPort").unwrap_or(&port["port"]);
                for w in &backends {
                    let resolved = w.port(target);
                    let exposed = w.container["ports"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| c["containerPort"].as_u64().map(|n| n as u16) == resolved);
                    p.check(resolved.is_some() && exposed, || {
                        format!("Service {} port {port}: no such port on {}", svc.name(), w.ctx())
                    });
                    let tls = w.effective.as_ref().is_ok_and(|e| e.string("tls_cert_file").is_some());
                    p.check(!(tls && port["appProtocol"] == "kubernetes.io/h2c"), || {
                        format!("Service {} port {port}: {} serves TLS, not h2c", svc.name(), w.ctx())
                    });
                }
            }
        }
    });
}

/// The Service named by a URL's host (`cairn-scheduler`, `cairn-scheduler.cairn.svc...`).
fn service_for<'a>(objects: &'a [Object], host: &str) -> Option<&'a Object> {
    let name = host.split('.').next().unwrap_or(host);
    object(objects, "Service", name)
}

#[test]
fn urls_name_services_that_reach_the_right_binary() {
    each_build(|objects, ws, p| {
        let mut token_sources = BTreeSet::new();
        for (w, e) in loaded(ws, p) {
            for (key, want, url) in e.service_urls() {
                let ctx = format!("{}: {key} = {url}", w.ctx());
                let (host, port) = match host_port(&url) {
                    Ok(hp) => hp,
                    Err(err) => {
                        p.push(format!("{ctx}: {err}"));
                        continue;
                    }
                };
                let Some(svc) = service_for(objects, &host) else {
                    p.push(format!("{ctx}: no Service {host}"));
                    continue;
                };
                let selector = svc.doc.pointer("/spec/selector").cloned().unwrap_or_default();
                let backends: Vec<&Workload> = ws.iter().filter(|b| selects(&selector, &b.labels)).collect();
                p.check(!backends.is_empty() && backends.iter().all(|b| b.is(want)), || {
                    format!("{ctx}: Service {host} must select only {} pods", want.name())
                });
                let svc_port = svc
                    .doc
                    .pointer("/spec/ports")
                    .and_then(Json::as_array)
                    .into_iter()
                    .flatten()
                    .find(|sp| sp["port"].as_u64() == Some(u64::from(port)));
                let Some(svc_port) = svc_port else {
                    p.push(format!("{ctx}: Service {host} has no port {port}"));
                    continue;
                };
                let target = svc_port.get("targetPort").unwrap_or(&svc_port["port"]);
                for b in backends {
                    let tls = b.effective.as_ref().is_ok_and(|e| e.string("tls_cert_file").is_some());
                    let scheme = url.split("://").next().unwrap_or_default();
                    p.check(scheme == if tls { "https" } else { "http" }, || {
                        format!("{ctx}: {} serves {}", b.ctx(), if tls { "TLS" } else { "plaintext" })
                    });
                    p.check(!tls || e.string("tls_ca_file").is_some(), || {
                        format!("{ctx}: set CAIRN_TLS_CA_FILE to verify {}", b.ctx())
                    });
                    let listen = b.effective.as_ref().ok().and_then(Effective::listen).map(|a| a.port());
                    p.check(b.port(target).is_some() && b.port(target) == listen, || {
                        format!(
                            "{ctx}: Service port {port} reaches {:?} on {}, which listens on {listen:?}",
                            b.port(target),
                            b.ctx()
                        )
                    });
                }
            }
            // Workers enrol with their pool's token instead; the services share the cluster token;
            // the console has none (it calls with each user's token).
            let token = match w.binary {
                Binary::Worker => "CAIRN_WORKER_TOKEN",
                Binary::Console => {
                    p.check(!w.env.contains_key("CAIRN_CLUSTER_TOKEN"), || {
                        format!("{}: the console must not hold the cluster token", w.ctx())
                    });
                    continue;
                }
                _ => "CAIRN_CLUSTER_TOKEN",
            };
            token_sources.insert(format!("{token}={}", w.origin.get(token).cloned().unwrap_or_default()));
        }
        p.check(token_sources.len() == 2 && token_sources.iter().all(|s| s.contains("=secret:")), || {
        format!(
            "services must take CAIRN_CLUSTER_TOKEN, workers CAIRN_WORKER_TOKEN, each from one Secret key, got \
             {token_sources:?}"
        )
    });
    });
}

/// Variables that must come from a Secret.
fn is_secret_var(name: &str) -> bool {
    name == "DATABASE_URL"
        || name.contains("SECRET_KEY")
        || name.contains("TOKEN")
        || name.contains("PASSWORD")
}

#[test]
fn secrets_are_placeholders_and_config_maps_hold_none() {
    each_build(|objects, ws, p| {
        let secrets: Vec<&Object> = objects.iter().filter(|o| o.kind() == "Secret").collect();
        p.check(!secrets.is_empty(), || "a Secret template".into());
        for s in secrets.iter().filter(|s| !s.generated) {
            p.check(s.doc.get("data").is_none(), || {
                format!("Secret {}: use stringData (readable placeholders)", s.name())
            });
            for (k, v) in s.doc["stringData"].as_object().into_iter().flatten() {
                let v = scalar(v).unwrap_or_default();
                p.check(v.is_empty() || v.contains(PLACEHOLDER), || {
                    format!("Secret {} {k}: {v:?} is not a {PLACEHOLDER} placeholder", s.name())
                });
            }
        }
        for cm in objects.iter().filter(|o| o.kind() == "ConfigMap") {
            for k in cm.doc["data"].as_object().into_iter().flatten().map(|(k, _)| k) {
                p.check(!is_secret_var(k), || format!("ConfigMap {}: {k} belongs in the Secret", cm.name()));
            }
        }
        for w in ws {
            for (name, origin) in &w.origin {
                let from_secret = origin.starts_with("secret:") || built_from_secrets(w, name);
                p.check(!is_secret_var(name) || from_secret, || {
                    format!("{}: {name} must come from a Secret", w.ctx())
                });
            }
        }
    });
}

/// Whether the variable `name` is a value built with `$(NAME)` whose secret part comes from
/// Secrets: in a URL the password is one reference to a Secret's key; otherwise every
/// reference is one.
fn built_from_secrets(w: &Workload, name: &str) -> bool {
    let env = w.container["env"].as_array().cloned().unwrap_or_default();
    let Some(raw) = env.iter().find(|e| e["name"] == name).and_then(|e| e["value"].as_str()) else {
        return false;
    };
    let secret = |r: &str| w.origin.get(r).is_some_and(|o| o.starts_with("secret:"));
    match url::Url::parse(raw).ok().as_ref().and_then(url::Url::password) {
        Some(password) => password.strip_prefix("$(").and_then(|r| r.strip_suffix(')')).is_some_and(secret),
        None => {
            let (_, refs) = expand(raw, &BTreeMap::new());
            !refs.is_empty() && refs.iter().all(|r| secret(r))
        }
    }
}

#[test]
fn disruption_budgets_and_shutdown_timing() {
    each_build(|objects, ws, p| {
        let loaded = loaded(ws, p);
        let longest_poll = loaded
            .iter()
            .filter(|(w, _)| w.is(Binary::Worker))
            .map(|(_, e)| e.number("poll_wait_secs"))
            .max()
            .unwrap_or(0);
        let pdbs: Vec<&Object> = objects.iter().filter(|o| o.kind() == "PodDisruptionBudget").collect();
        for (w, e) in &loaded {
            let ctx = w.ctx();
            let grace_secs =
                w.pod.pointer("/spec/terminationGracePeriodSeconds").and_then(Json::as_u64).unwrap_or(30);
            if w.binary.serves_grpc() || w.is(Binary::Console) {
                let replicas = w.spec["replicas"].as_u64().unwrap_or(1);
                p.check(replicas >= 2, || format!("{ctx}: at least 2 replicas"));
                let budgets: Vec<&&Object> = pdbs
                    .iter()
                    .filter(|b| b.doc.pointer("/spec/selector").is_some_and(|s| selects(s, &w.labels)))
                    .collect();
                p.check(budgets.len() == 1, || format!("{ctx}: one PodDisruptionBudget"));
                for b in budgets {
                    let max_unavailable = b.doc.pointer("/spec/maxUnavailable").and_then(Json::as_u64);
                    let min_available = b.doc.pointer("/spec/minAvailable").and_then(Json::as_u64);
                    let ok = max_unavailable.is_some_and(|m| m >= 1)
                        || min_available.is_some_and(|m| m < replicas);
                    p.check(ok, || {
                        format!("PodDisruptionBudget {}: must allow one disruption (drains)", b.name())
                    });
                }
                if w.binary.serves_grpc() {
                    let drain = e.number("drain_delay_ms");
                    p.check(drain > 0, || {
                        format!(
                            "{ctx}: set CAIRN_DRAIN_DELAY_MS so endpoints update before the listener closes"
                        )
                    });
                    let needed = drain + longest_poll * 1000;
                    p.check(grace_secs * 1000 > needed, || {
                        format!(
                            "{ctx}: terminationGracePeriodSeconds {grace_secs} must exceed the drain delay plus \
                             a lease long poll ({needed} ms)"
                        )
                    });
                }
            } else {
                let grace = e.number("grace_period_secs");
                p.check(grace_secs >= grace + 10, || {
                format!(
                    "{ctx}: terminationGracePeriodSeconds {grace_secs} must exceed CAIRN_GRACE_PERIOD_SECS \
                     {grace} (+10 s to report cancelled jobs)"
                )
            });
            }
        }
        p.check(
            pdbs.iter().all(|b| ws.iter().any(|w| selects(&b.doc["spec"]["selector"], &w.labels))),
            || "a PodDisruptionBudget selects nothing".into(),
        );
    });
}

#[test]
fn pods_are_locked_down_and_sized() {
    each_build(|_, ws, p| {
        let image = image();
        for (w, e) in loaded(ws, p) {
            let ctx = w.ctx();
            let c = &w.container;
            for path in [
                "/resources/requests/cpu",
                "/resources/requests/memory",
                "/resources/limits/cpu",
                "/resources/limits/memory",
            ] {
                p.check(c.pointer(path).is_some(), || format!("{ctx}: {path}"));
            }
            p.check(w.pod.pointer("/spec/automountServiceAccountToken") == Some(&Json::Bool(false)), || {
                format!("{ctx}: automountServiceAccountToken: false (Cairn never calls the API server)")
            });
            p.check(
                c.pointer("/securityContext/allowPrivilegeEscalation") == Some(&Json::Bool(false)),
                || format!("{ctx}: allowPrivilegeEscalation: false"),
            );
            p.check(
                strings(&c.pointer("/securityContext/capabilities/drop").cloned().unwrap_or_default())
                    .contains(&"ALL".into()),
                || format!("{ctx}: drop ALL capabilities"),
            );
            let read_only = c.pointer("/securityContext/readOnlyRootFilesystem") == Some(&Json::Bool(true));
            p.check(read_only, || format!("{ctx}: readOnlyRootFilesystem"));
            let mounts: BTreeMap<String, Json> = c["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| Some((m["mountPath"].as_str()?.to_owned(), m.clone())))
                .collect();
            if w.is(Binary::Worker) {
                match e.string("cache_dir") {
                    Some(cache) => p.check(mounts.contains_key(&cache), || {
                        format!("{ctx}: cache_dir {cache} is on no volume (read-only root)")
                    }),
                    None => p.push(format!("{ctx}: set CAIRN_CACHE_DIR")),
                }
                p.check(mounts.contains_key("/tmp"), || format!("{ctx}: a writable /tmp (read-only root)"));
            }
            let uid = w.pod.pointer("/spec/securityContext/runAsUser").and_then(Json::as_u64);
            if w.kind == "DaemonSet" {
                // Node workers read host data as root, with read-only host mounts (the cache aside).
                let volumes =
                    w.pod.pointer("/spec/volumes").and_then(Json::as_array).cloned().unwrap_or_default();
                for v in volumes.iter().filter(|v| v.get("hostPath").is_some()) {
                    let name = v["name"].as_str().unwrap_or_default();
                    let mount = mounts.values().find(|m| m["name"] == name);
                    let is_cache =
                        mount.and_then(|m| m["mountPath"].as_str()) == e.string("cache_dir").as_deref();
                    p.check(is_cache || mount.is_some_and(|m| m["readOnly"] == Json::Bool(true)), || {
                        format!("{ctx}: hostPath volume {name} must be mounted read-only")
                    });
                }
            } else {
                p.check(
                    w.pod.pointer("/spec/securityContext/runAsNonRoot") == Some(&Json::Bool(true)),
                    || format!("{ctx}: runAsNonRoot"),
                );
                p.check(uid == Some(u64::from(image.uid)), || {
                    format!("{ctx}: runAsUser {uid:?}, the image's user is {}", image.uid)
                });
            }
        }
    });
}

/// A pod trying to connect: its labels, whether it runs in Cairn's namespace and the labels of
/// its namespace.
struct Peer<'a> {
    what: String,
    labels: BTreeMap<String, String>,
    same_namespace: bool,
    namespace: BTreeMap<String, String>,
    workload: Option<&'a Workload>,
}

/// The labels Kubernetes gives a namespace.
fn namespace_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("kubernetes.io/metadata.name".to_owned(), name.to_owned())])
}

/// Whether NetworkPolicies admit `peer` to `port` of the pods labelled `target`, whose named
/// ports `port_of` resolves (ingress; ipBlock peers are treated as not matching).
fn admitted(
    policies: &[&Object],
    target: &BTreeMap<String, String>,
    port_of: impl Fn(&Json) -> Option<u16>,
    port: u16,
    peer: &Peer,
) -> bool {
    let selecting: Vec<&&Object> = policies
        .iter()
        .filter(|np| selects(&np.doc["spec"]["podSelector"], target))
        .filter(|np| {
            let types = strings(&np.doc["spec"]["policyTypes"]);
            types.is_empty() || types.iter().any(|t| t == "Ingress")
        })
        .collect();
    if selecting.is_empty() {
        return true;
    }
    selecting.iter().any(|np| {
        np.doc["spec"]["ingress"].as_array().into_iter().flatten().any(|rule| {
            let ports_ok = match rule["ports"].as_array() {
                None => true,
                Some(ports) => ports.iter().any(|rp| rp.get("port").is_none_or(|x| port_of(x) == Some(port))),
            };
            let from_ok = match rule["from"].as_array() {
                None => true,
                Some(peers) => peers.iter().any(|f| {
                    if f.get("ipBlock").is_some() {
                        return false;
                    }
                    let ns_ok = match f.get("namespaceSelector") {
                        None => peer.same_namespace,
                        Some(ns) => selects(ns, &peer.namespace),
                    };
                    let pod_ok = f.get("podSelector").is_none_or(|s| selects(s, &peer.labels));
                    ns_ok && pod_ok
                }),
            };
            ports_ok && from_ok
        })
    })
}

#[test]
fn network_policies_let_only_the_right_pods_in() {
    each_build(|objects, ws, p| {
        let policies: Vec<&Object> = objects.iter().filter(|o| o.kind() == "NetworkPolicy").collect();
        let outside = |what: &str, k: &str| Peer {
            what: what.into(),
            labels: BTreeMap::from([(k.to_owned(), "true".to_owned())]),
            same_namespace: false,
            namespace: namespace_labels("elsewhere"),
            workload: None,
        };
        let api_client = outside("an API client", "cairn.dev/api-client");
        let scraper = outside("a metrics scraper", "cairn.dev/metrics-scraper");
        let stranger = Peer {
            what: "an unlabelled pod".into(),
            labels: BTreeMap::from([("app".to_owned(), "other".to_owned())]),
            same_namespace: true,
            namespace: namespace_labels("cairn"),
            workload: None,
        };
        let pods: Vec<Peer> = ws.iter().map(peer_of).collect();
        let of = |b: Binary| pods.iter().filter(move |peer| peer.workload.is_some_and(|w| w.is(b)));

        for (target, e) in loaded(ws, p) {
            let mut expect = |peer: &Peer, port: u16, allowed: bool| {
                let got = admitted(&policies, &target.labels, |x| target.port(x), port, peer);
                p.check(got == allowed, || {
                    format!(
                        "{} -> {}:{port}: {} but should be {}",
                        peer.what,
                        target.ctx(),
                        verdict(got),
                        verdict(allowed)
                    )
                });
            };
            let metrics = e.metrics().port();
            expect(&scraper, metrics, true);
            expect(&stranger, metrics, false);
            of(Binary::Worker).for_each(|s| expect(s, metrics, false));
            match (target.binary, e.listen().map(|a| a.port())) {
                (Binary::Console, Some(http)) => {
                    // The front door: browsers arrive through an Ingress controller's pods.
                    expect(&stranger, http, true);
                    expect(&api_client, http, true);
                }
                (Binary::Catalog, Some(grpc)) => {
                    of(Binary::Console).for_each(|s| expect(s, grpc, true));
                    of(Binary::Scheduler).for_each(|s| expect(s, grpc, true));
                    of(Binary::Worker).for_each(|s| expect(s, grpc, false));
                    expect(&api_client, grpc, true);
                    expect(&stranger, grpc, false);
                }
                (Binary::Scheduler, Some(grpc)) => {
                    of(Binary::Console).for_each(|s| expect(s, grpc, true));
                    of(Binary::Worker).for_each(|s| expect(s, grpc, true));
                    of(Binary::Catalog).for_each(|s| expect(s, grpc, true));
                    expect(&api_client, grpc, true);
                    expect(&stranger, grpc, false);
                }
                _ => {
                    for peer in pods.iter().chain([&api_client, &stranger]) {
                        expect(peer, metrics, false);
                    }
                }
            }
            // Every rule's named port exists on the pods it applies to.
            for np in policies.iter().filter(|np| selects(&np.doc["spec"]["podSelector"], &target.labels)) {
                for rule in np.doc["spec"]["ingress"].as_array().into_iter().flatten() {
                    for rp in rule["ports"].as_array().into_iter().flatten() {
                        p.check(rp.get("port").is_none_or(|x| target.port(x).is_some()), || {
                            format!(
                                "NetworkPolicy {}: port {} does not exist on {}",
                                np.name(),
                                rp["port"],
                                target.ctx()
                            )
                        });
                    }
                }
            }
        }
    });
}

/// A workload's pods as a peer.
fn peer_of(w: &Workload) -> Peer<'_> {
    Peer {
        what: w.ctx(),
        labels: w.labels.clone(),
        same_namespace: true,
        namespace: namespace_labels("cairn"),
        workload: Some(w),
    }
}

fn verdict(allowed: bool) -> &'static str {
    if allowed { "admitted" } else { "refused" }
}

/// Settings that name files a binary reads: certificates, keys and CAs.
const TLS_FILES: [&str; 6] = [
    "tls_cert_file",
    "tls_key_file",
    "tls_client_ca_file",
    "tls_ca_file",
    "tls_client_cert_file",
    "tls_client_key_file",
];

/// A file a container reads from a Secret volume.
struct Mounted {
    secret: String,
    key: String,
    mode: u64,
}

/// Where `path` comes from in `w`'s container: a Secret key mounted by a volume.
fn mounted(w: &Workload, objects: &[Object], path: &str) -> Result<Mounted, String> {
    let mounts = w.container["volumeMounts"].as_array().cloned().unwrap_or_default();
    let (mount, rel) = mounts
        .iter()
        .find_map(|m| {
            let rel = path.strip_prefix(m["mountPath"].as_str()?)?.strip_prefix('/')?;
            Some((m, rel.to_owned()))
        })
        .ok_or_else(|| format!("{path} is on no volume"))?;
    let volumes = w.pod.pointer("/spec/volumes").and_then(Json::as_array).cloned().unwrap_or_default();
    let volume = volumes
        .iter()
        .find(|v| v["name"] == mount["name"])
        .ok_or_else(|| format!("{path}: volume {} is not declared", mount["name"]))?;
    let source = volume.get("secret").ok_or_else(|| format!("{path} is not on a Secret volume"))?;
    let secret = source["secretName"].as_str().unwrap_or_default().to_owned();
    let keys = object(objects, "Secret", &secret)
        .map(|s| s.doc["stringData"].as_object().cloned().unwrap_or_default())
        .ok_or_else(|| format!("{path}: Secret {secret} does not exist"))?;
    let default_mode = source["defaultMode"].as_u64().unwrap_or(0o644);
    let (key, mode) = match source["items"].as_array() {
        Some(items) => {
            let item = items
                .iter()
                .find(|i| i["path"] == rel.as_str())
                .ok_or_else(|| format!("{path}: Secret {secret}'s items do not mount {rel}"))?;
            (
                item["key"].as_str().unwrap_or_default().to_owned(),
                item["mode"].as_u64().unwrap_or(default_mode),
            )
        }
        None => (rel, default_mode),
    };
    if !keys.contains_key(&key) {
        return Err(format!("{path}: Secret {secret} has no key {key}"));
    }
    Ok(Mounted { secret, key, mode })
}

/// The Secret keys a container mounts.
fn mounted_keys(w: &Workload, objects: &[Object]) -> BTreeSet<String> {
    let volumes = w.pod.pointer("/spec/volumes").and_then(Json::as_array).cloned().unwrap_or_default();
    let mut out = BTreeSet::new();
    for m in w.container["volumeMounts"].as_array().into_iter().flatten() {
        let Some(source) = volumes.iter().find(|v| v["name"] == m["name"]).and_then(|v| v.get("secret"))
        else {
            continue;
        };
        let secret = source["secretName"].as_str().unwrap_or_default();
        let keys: Vec<String> = match source["items"].as_array() {
            Some(items) => items.iter().filter_map(|i| i["key"].as_str().map(str::to_owned)).collect(),
            None => object(objects, "Secret", secret)
                .map(|s| {
                    s.doc["stringData"].as_object().cloned().unwrap_or_default().keys().cloned().collect()
                })
                .unwrap_or_default(),
        };
        out.extend(keys.into_iter().map(|k| format!("{secret}/{k}")));
    }
    out
}

/// The CA file a Postgres URL verifies the server with (`sslrootcert`), if it names one.
fn root_cert(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    url.query_pairs().find(|(k, _)| k == "sslrootcert").map(|(_, v)| v.into_owned())
}

/// Whether the container's user can read a Secret file (owned by root, group fsGroup).
fn readable(w: &Workload, mode: u64) -> bool {
    let ctx = |k: &str| w.pod.pointer(&format!("/spec/securityContext/{k}")).and_then(Json::as_u64);
    let (uid, gid, fs_group) = (ctx("runAsUser"), ctx("runAsGroup"), ctx("fsGroup"));
    uid == Some(0) || mode & 0o004 != 0 || (fs_group.is_some() && fs_group == gid && mode & 0o040 != 0)
}

/// The URL and CA file of a `cairn [--ca-file CA] health [flags] URL` exec probe.
fn health_probe(probe: &Json) -> Result<(String, Option<String>), String> {
    if probe.get("grpc").is_some() {
        return Err("a native gRPC probe speaks plaintext only".into());
    }
    let argv = strings(&probe.pointer("/exec/command").cloned().unwrap_or_default());
    let ok = argv.first().map(String::as_str) == Some("cairn") && argv.iter().any(|a| a == "health");
    let url = argv.last().filter(|_| ok).ok_or_else(|| format!("{argv:?} is not `cairn health URL`"))?;
    let ca = argv.iter().position(|a| a == "--ca-file").and_then(|i| argv.get(i + 1)).cloned();
    Ok((url.clone(), ca))
}

#[test]
fn tls_files_come_from_secrets_and_probes_verify_them() {
    let mut p = Problems::default();
    let mut tls_builds = BTreeSet::new();
    let image = image();
    for b in builds(&mut p) {
        for (w, e) in loaded(&b.workloads, &mut p) {
            let ctx = w.ctx();
            let mut named = BTreeSet::new();
            let mut check_file = |p: &mut Problems, what: &str, path: &str, secret_key: bool| match mounted(
                w, &b.objects, path,
            ) {
                Ok(m) => {
                    p.check(readable(w, m.mode), || {
                        format!("{ctx}: {what} {path} (mode {:o}) is unreadable by the pod's user", m.mode)
                    });
                    p.check(!secret_key || m.mode & 0o007 == 0, || {
                        format!("{ctx}: {what} {path} is readable by others (mode {:o})", m.mode)
                    });
                    named.insert(format!("{}/{}", m.secret, m.key));
                }
                Err(err) => p.push(format!("{ctx}: {what}: {err}")),
            };
            for key in TLS_FILES {
                if let (Some(_), Some(path)) = (e.string(key), w.env.get(&var_of(key))) {
                    check_file(&mut p, key, path, key.ends_with("key_file"));
                }
            }
            if let Some(ca) = w.env.get("DATABASE_URL").and_then(|url| root_cert(url)) {
                check_file(&mut p, "DATABASE_URL's sslrootcert", &ca, false);
            }
            if let (Some(listen), Some(_)) = (e.listen(), e.string("tls_cert_file")) {
                tls_builds.insert(b.dir.clone());
                for kind in ["readinessProbe", "livenessProbe", "startupProbe"] {
                    let Some(probe) = w.container.get(kind) else { continue };
                    match health_probe(probe) {
                        Ok((url, ca)) => {
                            let hp = url::Url::parse(&url)
                                .ok()
                                .map(|u| (u.scheme().to_owned(), u.host_str().map(str::to_owned), u.port()));
                            p.check(
                                hp == Some(("https".into(), Some("localhost".into()), Some(listen.port()))),
                                || {
                                    format!(
                                        "{ctx}: {kind} must check https://localhost:{}, not {url}",
                                        listen.port()
                                    )
                                },
                            );
                            match ca {
                                Some(ca) => check_file(&mut p, kind, &ca, false),
                                None => p.push(format!("{ctx}: {kind} must verify with --ca-file")),
                            }
                        }
                        Err(err) => p.push(format!("{ctx}: {kind}: {err}")),
                    }
                }
                p.check(image.bins.contains("cairn"), || {
                    format!("{ctx}: the image lacks the cairn CLI its probes run")
                });
            }
            // A pod mounts only the Secret files it reads (workers never get the servers' key).
            let extra: Vec<String> = mounted_keys(w, &b.objects).difference(&named).cloned().collect();
            p.check(extra.is_empty(), || format!("{ctx}: mounts {extra:?}, which it never reads"));
        }
    }
    p.check(!tls_builds.is_empty(), || "a variant serves TLS".into());
    p.assert_none(K8S);
}

#[test]
fn strategic_merge_patches_merge_lists_by_key_and_delete_nulls() {
    let mut doc = serde_json::json!({
        "containers": [{"name": "a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}],
                        "probe": {"grpc": {"port": 1}, "periodSeconds": 5}, "args": ["one", "two"]}],
        "ports": [{"port": 1, "appProtocol": "h2c", "targetPort": "grpc"}],
    });
    strategic_merge(
        &mut doc,
        &serde_json::json!({
            "containers": [{"name": "a", "env": [{"name": "Y", "value": "3"}, {"name": "Z", "value": "4"}],
                            "probe": {"grpc": null, "exec": {"command": ["x"]}}, "args": ["three"]},
                           {"name": "b"}],
            "ports": [{"port": 1, "appProtocol": null}],
        }),
    );
    assert_eq!(
        doc,
        serde_json::json!({
            "containers": [{"name": "a",
                            "env": [{"name": "Y", "value": "3"}, {"name": "Z", "value": "4"}, {"name": "X", "value": "1"}],
                            "probe": {"exec": {"command": ["x"]}, "periodSeconds": 5}, "args": ["three"]},
                           {"name": "b"}],
            "ports": [{"port": 1, "targetPort": "grpc"}],
        })
    );
}

#[test]
fn variables_expand_like_the_kubelet() {
    let env = BTreeMap::from([("A".to_owned(), "1".to_owned()), ("B".to_owned(), "two".to_owned())]);
    assert_eq!(
        expand("x=$(A),y=$(B),z=$(C),$$(A),$5,$(", &env),
        ("x=1,y=two,z=$(C),$(A),$5,$(".to_owned(), vec!["A".to_owned(), "B".to_owned(), "C".to_owned()])
    );
}

/// The Postgres instance pods of a CloudNativePG Cluster (the labels and named ports the
/// operator gives them).
fn instance_labels(cluster: &str, role: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("cnpg.io/cluster".to_owned(), cluster.to_owned()),
        ("cnpg.io/podRole".to_owned(), "instance".to_owned()),
        ("cnpg.io/instanceRole".to_owned(), role.to_owned()),
    ])
}

fn instance_port(port: &Json) -> Option<u16> {
    match port {
        Json::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Json::String(name) => match name.as_str() {
            "postgresql" => Some(5432),
            "status" => Some(8000),
            "metrics" => Some(9187),
            _ => None,
        },
        _ => None,
    }
}

/// A Deployment's pods during a rollout: replicas plus `maxSurge` (a number, else the default
/// 25% rounded up).
fn rollout_pods(w: &Workload) -> u64 {
    let replicas = w.spec["replicas"].as_u64().unwrap_or(1);
    let surge = w.spec.pointer("/strategy/rollingUpdate/maxSurge").and_then(Json::as_u64);
    replicas + surge.unwrap_or(replicas.div_ceil(4))
}

#[test]
fn operator_run_postgres_is_verified_and_reached_by_the_servers_only() {
    let mut p = Problems::default();
    let ks = kustomizations();
    let mut clusters = 0;
    for b in builds(&mut p) {
        let namespace = inherited(&ks, &b.dir, "namespace").and_then(Json::as_str).unwrap_or("default");
        for c in cnpg_clusters(&b.objects) {
            clusters += 1;
            operator_cluster(&b, c, namespace, &mut p);
        }
    }
    p.check(clusters > 0, || "a variant runs Postgres with the CloudNativePG operator".into());
    p.assert_none(K8S);
}

/// One CloudNativePG Cluster of a build: its shape, how the servers reach it, and that nothing
/// else does.
fn operator_cluster(b: &Build, c: &Object, namespace: &str, p: &mut Problems) {
    let name = c.name();
    let ctx = format!("Cluster {name} ({}, built by {})", c.file, b.dir.display());
    let spec = &c.doc["spec"];
    p.check(spec["instances"].as_u64() == Some(3), || {
        format!("{ctx}: 3 instances (a primary and two replicas), got {}", spec["instances"])
    });
    let major = spec["imageName"]
        .as_str()
        .and_then(|i| i.split('@').next()?.rsplit_once(':'))
        .and_then(|(_, tag)| tag.split(['.', '-']).next()?.parse::<u32>().ok());
    p.check(major.is_some_and(|m| m >= 15), || {
        format!("{ctx}: imageName must name Postgres 15 or newer, got {}", spec["imageName"])
    });
    let initdb = &spec["bootstrap"]["initdb"];
    let (Some(database), Some(owner)) = (initdb["database"].as_str(), initdb["owner"].as_str()) else {
        p.push(format!("{ctx}: bootstrap.initdb names the database and its owner"));
        return;
    };
    for path in
        ["/storage/size", "/resources/requests/cpu", "/resources/requests/memory", "/resources/limits/memory"]
    {
        p.check(spec.pointer(path).is_some(), || format!("{ctx}: spec{}", path.replace('/', ".")));
    }
    let instance = instance_labels(name, "primary");
    p.check(
        !b.objects
            .iter()
            .any(|o| o.kind() == "PodDisruptionBudget" && selects(&o.doc["spec"]["selector"], &instance)),
        || format!("{ctx}: the operator makes the instances' PodDisruptionBudgets; do not add one"),
    );

    // The servers connect to the primary's Service as the owner, verifying the certificate
    // with the operator's CA; nothing else gets database settings.
    let (app, ca) = (format!("{name}-app"), format!("{name}-ca"));
    let rw = format!("{name}-rw.{namespace}.svc");
    let mut connecting = BTreeSet::new();
    let mut connections = 0;
    for (w, e) in loaded(&b.workloads, p) {
        let ctx = w.ctx();
        let db_vars: Vec<&String> = w
            .origin
            .iter()
            .filter(|(k, o)| *k == "DATABASE_URL" || o.contains(&format!("secret:{app}/")))
            .map(|(k, _)| k)
            .collect();
        let ca_files: Vec<String> =
            mounted_keys(w, &b.objects).into_iter().filter(|k| k.starts_with(&format!("{ca}/"))).collect();
        p.check(!ca_files.contains(&format!("{ca}/ca.key")), || {
            format!("{ctx}: mounts the CA's key {ca}/ca.key")
        });
        if !w.binary.keys().contains("database_url") {
            p.check(db_vars.is_empty() && ca_files.is_empty(), || {
                format!("{ctx}: never touches Postgres, yet gets {db_vars:?} {ca_files:?}")
            });
            continue;
        }
        connecting.insert(w.binary);
        connections += rollout_pods(w) * e.number("db_max_connections");
        let Some(url) = w.env.get("DATABASE_URL") else {
            p.push(format!("{ctx}: no DATABASE_URL"));
            continue;
        };
        let Some(opts) = p.ok(format!("{ctx}: DATABASE_URL"), url.parse::<PgConnectOptions>()) else {
            continue;
        };
        p.check(opts.get_host() == rw && opts.get_port() == 5432, || {
            format!(
                "{ctx}: DATABASE_URL must reach the primary at {rw}:5432, not {}:{}",
                opts.get_host(),
                opts.get_port()
            )
        });
        p.check(opts.get_database() == Some(database) && opts.get_username() == owner, || {
            format!("{ctx}: DATABASE_URL must connect to {database} as {owner}")
        });
        p.check(matches!(opts.get_ssl_mode(), PgSslMode::VerifyFull), || {
            format!("{ctx}: DATABASE_URL must verify the server (sslmode=verify-full)")
        });
        // What sqlx will use, after the kubelet expanded the operator's username and password.
        let used = opts.to_url_lossy();
        let origin = w.origin.get("DATABASE_URL").cloned().unwrap_or_default();
        p.check(
            used.password() == Some(OPERATOR_PASSWORD)
                && origin.contains(&format!("secret:{app}/username"))
                && origin.contains(&format!("secret:{app}/password")),
            || format!("{ctx}: DATABASE_URL must take username and password from {app}, got {origin}"),
        );
        // sqlx writes a CA it reads from a file as `file: <path>`.
        let root = used.query_pairs().find(|(k, _)| k == "sslrootcert").map(|(_, v)| v.into_owned());
        match root
            .map(|v| v.strip_prefix("file: ").map(str::to_owned).unwrap_or(v))
            .map(|path| (mounted(w, &b.objects, &path), path))
        {
            Some((Ok(m), _)) if m.secret == ca && m.key == "ca.crt" => {}
            Some((Ok(m), path)) => {
                p.push(format!("{ctx}: sslrootcert {path} is {}/{}, not {ca}/ca.crt", m.secret, m.key))
            }
            Some((Err(err), _)) => p.push(format!("{ctx}: sslrootcert: {err}")),
            None => p.push(format!("{ctx}: DATABASE_URL names no sslrootcert")),
        }
    }
    p.check(connecting == BTreeSet::from([Binary::Catalog, Binary::Scheduler]), || {
        format!("{ctx}: the catalog and the scheduler connect, got {connecting:?}")
    });
    for s in b.objects.iter().filter(|o| o.kind() == "Secret" && !o.generated) {
        p.check(s.doc.pointer("/stringData/DATABASE_URL").is_none(), || {
            format!(
                "Secret {} ({}): DATABASE_URL is built from {app}; drop it from the template",
                s.name(),
                s.file
            )
        });
    }
    // Connections during a rollout, plus the 3 reserved for superusers, fit max_connections.
    let max = spec
        .pointer("/postgresql/parameters/max_connections")
        .and_then(scalar)
        .map_or(Some(100), |m| m.parse::<u64>().ok());
    p.check(max.is_some_and(|m| m >= connections + 3), || {
        format!("{ctx}: max_connections {max:?} is below {connections} (during a rollout) + 3 reserved")
    });

    // Network: Postgres from the servers, the other instances and the operator only.
    let policies: Vec<&Object> = b.objects.iter().filter(|o| o.kind() == "NetworkPolicy").collect();
    let mut expect = |peer: &Peer, port: u16, allowed: bool| {
        let got = admitted(&policies, &instance, instance_port, port, peer);
        p.check(got == allowed, || {
            format!("{} -> {ctx} :{port}: {} but should be {}", peer.what, verdict(got), verdict(allowed))
        });
    };
    for w in &b.workloads {
        expect(&peer_of(w), 5432, w.binary.keys().contains("database_url"));
        expect(&peer_of(w), 8000, false);
    }
    let other = |what: &str, labels: BTreeMap<String, String>, ns: &str| Peer {
        what: what.into(),
        labels,
        same_namespace: ns == namespace,
        namespace: namespace_labels(ns),
        workload: None,
    };
    let label = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
    let operator = other("the operator", label("app.kubernetes.io/name", "cloudnative-pg"), "cnpg-system");
    let replica = other("a replica", instance_labels(name, "replica"), namespace);
    let stranger = other("an unlabelled pod", label("app", "other"), namespace);
    let api_client = other("an API client", label("cairn.dev/api-client", "true"), "elsewhere");
    let scraper = other("a metrics scraper", label("cairn.dev/metrics-scraper", "true"), "monitoring");
    for port in [5432, 8000] {
        expect(&operator, port, true);
        expect(&replica, port, true);
        expect(&stranger, port, false);
        expect(&api_client, port, false);
        expect(&scraper, port, false);
    }
    expect(&scraper, 9187, true);
    expect(&stranger, 9187, false);
}

/// A tool on PATH (the first of `names` found), else at `fallback`. None, after printing
/// SKIP, when there is none; a failure instead when CAIRN_CI is set.
fn tool(names: &[&str], fallback: Option<PathBuf>) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = names
        .iter()
        .find_map(|n| std::env::split_paths(&path).map(|dir| dir.join(n)).find(|f| f.is_file()))
        .or(fallback.filter(|f| f.is_file()));
    if found.is_none() {
        let what = names.join(" or ");
        assert!(std::env::var_os("CAIRN_CI").is_none(), "{what} is not installed, and CAIRN_CI is set");
        eprintln!("SKIP: {what} is not installed");
    }
    found
}

/// kubectl (its built-in kustomize) or kustomize.
fn kustomize() -> Option<PathBuf> {
    tool(&["kubectl", "kustomize"], None)
}

/// kubernetes-validate (PyPI), on PATH or in the venv .ci/run makes.
fn kubernetes_validate() -> Option<PathBuf> {
    let venv =
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/cairn/venv/bin/kubernetes-validate"));
    tool(&["kubernetes-validate"], venv)
}

/// What `kubectl apply -k dir` would apply, rendered by kustomize.
fn render(kustomize: &Path, dir: &Path) -> String {
    let build: &[&str] = if kustomize.ends_with("kustomize") { &["build"] } else { &["kustomize"] };
    let out = std::process::Command::new(kustomize)
        .args(build)
        .arg(root().join(dir))
        .output()
        .unwrap_or_else(|e| panic!("{} runs: {e}", kustomize.display()));
    assert!(
        out.status.success(),
        "{} {build:?} {}: {}",
        kustomize.display(),
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("kustomize writes UTF-8")
}

fn identity(doc: &Json) -> (String, String) {
    let at = |p: &str| str_at(doc, p).unwrap_or_default().to_owned();
    (at("/kind"), at("/metadata/name"))
}

/// A kustomization's `field`, else the first one set by the kustomizations it builds on.
fn inherited<'a>(ks: &'a BTreeMap<PathBuf, Json>, dir: &Path, field: &str) -> Option<&'a Json> {
    let k = ks.get(dir)?;
    k.get(field).or_else(|| {
        strings(&k["resources"])
            .iter()
            .filter_map(|r| join(dir, r))
            .find_map(|base| inherited(ks, &base, field))
    })
}

/// `doc` with what kustomize adds to every build here: the namespace and the image tags.
fn as_kustomize_writes(doc: &Json, ks: &BTreeMap<PathBuf, Json>, dir: &Path) -> Json {
    let mut doc = doc.clone();
    let namespace = inherited(ks, dir, "namespace").and_then(Json::as_str);
    if let Some(ns) = namespace.filter(|_| doc["kind"] != "Namespace") {
        doc["metadata"]["namespace"] = Json::String(ns.to_owned());
    }
    let images = inherited(ks, dir, "images").cloned().unwrap_or_default();
    let tags: BTreeMap<&str, &str> = images
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| Some((i["name"].as_str()?, i["newTag"].as_str()?)))
        .collect();
    for list in ["containers", "initContainers"] {
        let pointer = format!("/spec/template/spec/{list}");
        for c in doc.pointer_mut(&pointer).and_then(Json::as_array_mut).into_iter().flatten() {
            if let Some(image) = c["image"].as_str().and_then(|i| Some(format!("{i}:{}", tags.get(i)?))) {
                c["image"] = Json::String(image);
            }
        }
    }
    doc
}

/// Where `a` and `b` first differ, as a JSON pointer with both values.
fn difference(a: &Json, b: &Json, at: &str) -> Option<String> {
    match (a, b) {
        (Json::Object(x), Json::Object(y)) => x.keys().chain(y.keys()).find_map(|k| {
            difference(x.get(k).unwrap_or(&Json::Null), y.get(k).unwrap_or(&Json::Null), &format!("{at}/{k}"))
        }),
        (Json::Array(x), Json::Array(y)) if x.len() == y.len() => {
            x.iter().zip(y).enumerate().find_map(|(i, (x, y))| difference(x, y, &format!("{at}/{i}")))
        }
        _ if a == b => None,
        _ => Some(format!("{at}: {a} here, {b} from kustomize")),
    }
}

#[test]
fn kustomize_renders_what_this_test_builds() {
    let Some(kustomize) = kustomize() else { return };
    let mut p = Problems::default();
    let ks = kustomizations();
    for dir in targets(&ks) {
        let ctx = dir.display().to_string();
        let rendered = parse_yaml_docs(&render(&kustomize, &dir), &format!("kustomize {ctx}"));
        // Whether the files are right is for the other tests: here, whether they are read right.
        let built = build(&dir, &mut Problems::default());
        let theirs: BTreeSet<(String, String)> = rendered.iter().map(identity).collect();
        let ours: BTreeSet<(String, String)> = built.iter().map(|o| identity(&o.doc)).collect();
        p.check(theirs == ours, || {
            format!(
                "{ctx}: kustomize renders {:?} too, and not {:?}",
                theirs.difference(&ours).collect::<Vec<_>>(),
                ours.difference(&theirs).collect::<Vec<_>>()
            )
        });
        for doc in &rendered {
            let Some(o) = built.iter().find(|o| identity(&o.doc) == identity(doc)) else { continue };
            if let Some(d) = difference(&as_kustomize_writes(&o.doc, &ks, &dir), doc, "") {
                p.push(format!("{ctx}: {} {} ({}) differs at {d}", o.kind(), o.name(), o.file));
            }
        }
    }
    p.assert_none(K8S);
}

/// Runs `kubernetes-validate --strict file`: whether it passed, and what it printed.
fn validate(validator: &Path, file: &Path) -> (bool, String) {
    let out = std::process::Command::new(validator)
        .arg("--strict")
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("{} runs: {e}", validator.display()));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn rendered_manifests_pass_kubernetes_validate() {
    let (Some(kustomize), Some(validator)) = (kustomize(), kubernetes_validate()) else { return };
    let tmp = tempfile::tempdir().expect("temporary directory");
    let mut p = Problems::default();
    let mut deployment = None;
    for dir in targets(&kustomizations()) {
        let ctx = dir.display().to_string();
        let text = render(&kustomize, &dir);
        let file = tmp.path().join(format!("{}.yaml", ctx.replace('/', "_")));
        std::fs::write(&file, &text).expect("writable temporary directory");
        let (ok, out) = validate(&validator, &file);
        eprintln!("kubernetes-validate --strict {ctx}:\n{out}");
        p.check(ok, || format!("{ctx}: kubernetes-validate --strict failed:\n{out}"));
        // Every object was checked against its schema; only the operator's custom resources,
        // whose schemas it does not have, are merely warned about.
        for doc in parse_yaml_docs(&text, &ctx) {
            let (kind, name) = identity(&doc);
            let passed = out.contains(&format!("passed for resource {}/{name} ", kind.to_lowercase()));
            let custom = str_at(&doc, "/apiVersion") == Some(CNPG)
                && out.contains(&format!("Couldn't find schema for kind {kind} with api version {CNPG}"));
            p.check(passed || custom, || {
                format!("{ctx}: kubernetes-validate did not check {kind} {name}:\n{out}")
            });
            if kind == "Deployment" && deployment.is_none() {
                deployment = Some(doc);
            }
        }
    }
    // A broken manifest fails, so the passes above mean something.
    let mut broken = deployment.expect("a Deployment is rendered");
    let port = broken
        .pointer_mut("/spec/template/spec/containers/0/ports/0")
        .and_then(Json::as_object_mut)
        .expect("the first container declares ports");
    port.remove("containerPort");
    let file = tmp.path().join("broken.yaml");
    std::fs::write(&file, serde_json::to_string_pretty(&broken).expect("JSON"))
        .expect("writable temporary directory");
    let (ok, out) = validate(&validator, &file);
    p.check(!ok && out.contains("containerPort"), || {
        format!("kubernetes-validate --strict accepts a Deployment without containerPort:\n{out}")
    });
    p.assert_none(K8S);
}
