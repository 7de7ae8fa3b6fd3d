//! Task rules: which connectors (and roles) each type takes, options that match the type,
//! defaults, the worker-selector union of the connectors (contradictions rejected), and the
//! webhook signing secrets taken out of the message.

use std::collections::{BTreeSet, HashMap};

use cairn_api::v1::{
    BackupMode, BackupOptions, CheckOptions, ConnectorRole, NotificationMode, OverlapPolicy, OverwritePolicy,
    PruneOptions, RestoreOptions, RetentionPolicy, SyncOptions, Task, TaskType, task::Options,
};
use cairn_runtime::{status::Violations, time::from_duration};

use super::{connector::role_name, fields};
use crate::secrets::SecretMap;

/// Default attempts of a run.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 3;
/// Default first retry delay.
pub const DEFAULT_INITIAL_BACKOFF_S: i64 = 10;
/// Default longest retry delay.
pub const DEFAULT_MAX_BACKOFF_S: i64 = 600;
/// Default tolerated unused space of PRUNE.
pub const DEFAULT_MAX_UNUSED_PERCENT: f64 = 5.0;

/// What the catalog knows of a connector referenced by a task.
#[derive(Debug, Clone)]
pub struct ConnectorInfo {
    /// Its project.
    pub project: cairn_api::names::ProjectId,
    /// Its id.
    pub id: cairn_api::ids::ConnectorId,
    /// Its display name.
    pub display_name: String,
    /// Its role.
    pub role: ConnectorRole,
    /// Its worker selector.
    pub selector: HashMap<String, String>,
}

/// A connector field of a task after lookup.
#[derive(Debug, Clone, Default)]
pub enum Slot {
    /// Nothing given.
    #[default]
    Empty,
    /// Given but no such connector.
    Unknown(String),
    /// Found.
    Found(ConnectorInfo),
}

impl Slot {
    fn info(&self) -> Option<&ConnectorInfo> {
        match self {
            Slot::Found(i) => Some(i),
            _ => None,
        }
    }
}

/// The four connector fields of a task, looked up.
#[derive(Debug, Clone, Default)]
pub struct Slots {
    /// `source`.
    pub source: Slot,
    /// `store`.
    pub store: Slot,
    /// `destination`.
    pub destination: Slot,
    /// `target_store`.
    pub target_store: Slot,
}

/// A task ready to store.
#[derive(Debug)]
pub struct Normalized {
    /// The message: connectors as `connectors/{id}`, defaults and the selector union filled,
    /// output-only fields and secrets cleared.
    pub task: Task,
    /// Webhook signing secrets given in the request, keyed `webhook:<url>`.
    pub secrets: SecretMap,
}

/// The key of a webhook's signing secret.
pub fn webhook_secret_key(url: &str) -> String {
    format!("webhook:{url}")
}

/// Human name of a task type (`BACKUP`).
pub fn type_name(t: TaskType) -> &'static str {
    match t {
        TaskType::Unspecified => "UNSPECIFIED",
        TaskType::Backup => "BACKUP",
        TaskType::Restore => "RESTORE",
        TaskType::Sync => "SYNC",
        TaskType::Check => "CHECK",
        TaskType::Prune => "PRUNE",
        TaskType::TestConnection => "TEST_CONNECTION",
    }
}

/// Validates `t` against its looked-up connectors. `stored` names secrets already stored.
pub fn normalize(t: &Task, slots: &Slots, stored: &BTreeSet<String>) -> Result<Normalized, Violations> {
    let mut v = Violations::default();
    let f = |name: &str| format!("task.{name}");
    let mut out = t.clone();

    if let Err(e) = fields::display_name(&t.display_name) {
        v.add(f("display_name"), e);
    }
    if let Err(e) = fields::description(&t.description) {
        v.add(f("description"), e);
    }
    let ty = match TaskType::try_from(t.r#type) {
        Ok(TaskType::Unspecified) => {
            v.add(f("type"), "is required (BACKUP, RESTORE, SYNC, CHECK or PRUNE)");
            return Err(v);
        }
        Ok(TaskType::TestConnection) => {
            v.add(f("type"), "TEST_CONNECTION jobs are made by TestConnector, not by tasks");
            return Err(v);
        }
        Ok(ty) => ty,
        Err(_) => {
            v.add(f("type"), format!("{} is not a task type", t.r#type));
            return Err(v);
        }
    };

    // Which connector fields the type takes, and the role each must have.
    use ConnectorRole::{Destination, Source, Store};
    // A fleet BACKUP names its sources by selector, not one `source`.
    let fleet = matches!(&t.options, Some(Options::Backup(b)) if b.sources.is_some());
    if fleet && !matches!(slots.source, Slot::Empty) {
        v.add(f("source"), "must be empty: a fleet task backs up the sources `backup.sources` selects");
    }
    let wanted: [(&str, &Slot, Option<ConnectorRole>); 4] = match ty {
        TaskType::Backup if fleet => [
            ("source", &Slot::Empty, None),
            ("store", &slots.store, Some(Store)),
            ("destination", &slots.destination, None),
            ("target_store", &slots.target_store, None),
        ],
        TaskType::Backup => [
            ("source", &slots.source, Some(Source)),
            ("store", &slots.store, Some(Store)),
            ("destination", &slots.destination, None),
            ("target_store", &slots.target_store, None),
        ],
        TaskType::Restore => [
            ("source", &slots.source, None),
            ("store", &slots.store, Some(Store)),
            ("destination", &slots.destination, Some(Destination)),
            ("target_store", &slots.target_store, None),
        ],
        TaskType::Sync => [
            ("source", &slots.source, None),
            ("store", &slots.store, Some(Store)),
            ("destination", &slots.destination, None),
            ("target_store", &slots.target_store, Some(Store)),
        ],
        _ => [
            ("source", &slots.source, None),
            ("store", &slots.store, Some(Store)),
            ("destination", &slots.destination, None),
            ("target_store", &slots.target_store, None),
        ],
    };
    let tn = type_name(ty);
    for (field, slot, role) in wanted {
        match (slot, role) {
            (Slot::Empty, Some(role)) => v.add(
                f(field),
                format!("is required: a {tn} task needs a {} connector here", role_name(role)),
            ),
            (Slot::Empty, None) => {}
            (_, None) => {
                v.add(f(field), format!("must be empty: a {tn} task does not take a {field} connector"))
            }
            (Slot::Unknown(given), Some(_)) => v.add(f(field), format!("connector {given:?} does not exist")),
            (Slot::Found(info), Some(role)) if info.role != role => v.add(
                f(field),
                format!(
                    "connector {} is a {} connector; a {tn} task needs a {} connector here",
                    info.display_name,
                    role_name(info.role),
                    role_name(role)
                ),
            ),
            (Slot::Found(_), Some(_)) => {}
        }
    }
    if ty == TaskType::Sync
        && let (Some(a), Some(b)) = (slots.store.info(), slots.target_store.info())
        && a.id == b.id
    {
        v.add(f("target_store"), "must differ from store: a SYNC copies from one store to another");
    }
    let name_of = |s: &Slot| {
        s.info().map(|i| cairn_api::names::Kind::Connector.name(&i.project, i.id)).unwrap_or_default()
    };
    out.source = name_of(&slots.source);
    out.store = name_of(&slots.store);
    out.destination = name_of(&slots.destination);
    out.target_store = name_of(&slots.target_store);

    // The union of the connectors' selectors; two connectors wanting different values of one
    // label can never be placed.
    let mut union: HashMap<String, String> = HashMap::new();
    let mut owner: HashMap<String, String> = HashMap::new();
    for (field, slot) in [
        ("source", &slots.source),
        ("store", &slots.store),
        ("destination", &slots.destination),
        ("target_store", &slots.target_store),
    ] {
        let Some(info) = slot.info() else { continue };
        let mut keys: Vec<_> = info.selector.keys().collect();
        keys.sort();
        for k in keys {
            let val = &info.selector[k];
            match union.get(k) {
                Some(existing) if existing != val => v.add(
                    f(field),
                    format!(
                        "worker selectors contradict: connector {} requires {k}={val} but {} requires {k}={existing}",
                        info.display_name, owner[k]
                    ),
                ),
                Some(_) => {}
                None => {
                    union.insert(k.clone(), val.clone());
                    owner.insert(k.clone(), format!("connector {}", info.display_name));
                }
            }
        }
    }
    out.worker_selector = union;

    for (i, l) in t.labels.iter().enumerate() {
        if let Err(e) = fields::snapshot_label(l) {
            v.add(f(&format!("labels[{i}]")), e);
        }
    }
    let mut seen = BTreeSet::new();
    out.labels.retain(|l| seen.insert(l.clone()));

    out.options = Some(options(ty, t.options.as_ref(), &mut v));

    if !(0..=64).contains(&t.concurrency) {
        v.add(f("concurrency"), format!("{} is out of range 0..=64 (0 = recommended)", t.concurrency));
    }
    if let Some(d) = &t.timeout {
        match from_duration(d) {
            Some(d) if d.as_secs() >= 1 => {}
            _ => v.add(f("timeout"), "must be at least 1s (leave unset for no limit)"),
        }
    }
    match t.max_attempts {
        0 => out.max_attempts = DEFAULT_MAX_ATTEMPTS,
        1..=100 => {}
        n => v.add(f("max_attempts"), format!("{n} is out of range 1..=100 (0 = 3)")),
    }
    let initial = positive_duration(&t.initial_backoff, DEFAULT_INITIAL_BACKOFF_S, "initial_backoff", &mut v);
    let max = positive_duration(&t.max_backoff, DEFAULT_MAX_BACKOFF_S, "max_backoff", &mut v);
    if initial > max {
        v.add(f("initial_backoff"), "must not exceed max_backoff");
    }
    out.initial_backoff = Some(prost_types::Duration { seconds: initial, nanos: 0 });
    out.max_backoff = Some(prost_types::Duration { seconds: max, nanos: 0 });
    match OverlapPolicy::try_from(t.overlap_policy) {
        Ok(OverlapPolicy::Unspecified) => out.overlap_policy = OverlapPolicy::Skip as i32,
        Ok(_) => {}
        Err(_) => v.add(f("overlap_policy"), format!("{} is not an overlap policy", t.overlap_policy)),
    }

    let mut secrets = SecretMap::new();
    let mut notification = t.notification.clone().unwrap_or_default();
    match NotificationMode::try_from(notification.mode) {
        Ok(NotificationMode::Unspecified) => notification.mode = NotificationMode::Never as i32,
        Ok(_) => {}
        Err(_) => v.add(f("notification.mode"), format!("{} is not a notification mode", notification.mode)),
    }
    let mut urls = BTreeSet::new();
    for (i, w) in notification.webhooks.iter_mut().enumerate() {
        let field = f(&format!("notification.webhooks[{i}]"));
        if let Err(e) = fields::http_url(&w.url) {
            v.add(format!("{field}.url"), e);
        }
        if !urls.insert(w.url.clone()) {
            v.add(format!("{field}.url"), format!("{:?} is listed twice", w.url));
        }
        let key = webhook_secret_key(&w.url);
        if !w.secret.is_empty() {
            secrets.insert(key.clone(), std::mem::take(&mut w.secret));
        }
        if !secrets.contains_key(&key) && !stored.contains(&key) {
            v.add(format!("{field}.secret"), "is required: every webhook is signed (X-Cairn-Signature)");
        }
        w.secret_set = false;
    }
    for (i, e) in notification.emails.iter().enumerate() {
        if let Err(err) = fields::email(e) {
            v.add(f(&format!("notification.emails[{i}]")), err);
        }
    }
    out.notification = Some(notification);

    out.name.clear();
    out.create_time = None;
    out.update_time = None;
    out.etag.clear();
    if v.is_empty() { Ok(Normalized { task: out, secrets }) } else { Err(v) }
}

fn positive_duration(
    d: &Option<prost_types::Duration>,
    default: i64,
    field: &str,
    v: &mut Violations,
) -> i64 {
    match d {
        None => default,
        Some(d) => match from_duration(d) {
            Some(d) if d.as_secs() >= 1 && d.as_secs() <= 86_400 => d.as_secs() as i64,
            _ => {
                v.add(format!("task.{field}"), "must be between 1s and 24h");
                default
            }
        },
    }
}

fn options(ty: TaskType, given: Option<&Options>, v: &mut Violations) -> Options {
    let mismatch = |v: &mut Violations, which: &str| {
        v.add(format!("task.{which}"), format!("does not apply to a {} task", type_name(ty)))
    };
    match (ty, given) {
        (ty, None) => default_options(ty),
        (TaskType::Backup, Some(Options::Backup(b))) => {
            let mut b = b.clone();
            match BackupMode::try_from(b.mode) {
                Ok(BackupMode::Unspecified) => b.mode = BackupMode::Incremental as i32,
                Ok(_) => {}
                Err(_) => v.add("task.backup.mode", format!("{} is not a backup mode", b.mode)),
            }
            retention(b.retention.as_ref(), "task.backup.retention", v);
            if !b.host.is_empty()
                && (b.host.len() > 253 || b.host.contains(|c: char| c.is_whitespace() || c == '/'))
            {
                v.add("task.backup.host", format!("{:?} is not a host name", b.host));
            }
            if let Some(Err(e)) = b.rpo.as_ref().map(super::fields::rpo) {
                v.add("task.backup.rpo", e);
            }
            if let Some(sel) = &b.sources {
                fields::selector("task.backup.sources.labels", &sel.labels, v);
                for (list, entries) in [("include", &sel.include), ("exclude", &sel.exclude)] {
                    for (i, e) in entries.iter().enumerate() {
                        if let Err(m) = fields::selector_entry(e) {
                            v.add(format!("task.backup.sources.{list}[{i}]"), m);
                        }
                    }
                }
            }
            Options::Backup(b)
        }
        (TaskType::Restore, Some(Options::Restore(r))) => {
            let mut r = r.clone();
            if !r.snapshot.is_empty()
                && let Err(e) = fields::snapshot_id(&r.snapshot)
            {
                v.add("task.restore.snapshot", e);
            }
            for (i, p) in r.include_paths.iter().enumerate() {
                if let Err(e) = fields::snapshot_path(p) {
                    v.add(format!("task.restore.include_paths[{i}]"), e);
                }
            }
            match OverwritePolicy::try_from(r.overwrite) {
                Ok(OverwritePolicy::Unspecified) => r.overwrite = OverwritePolicy::IfChanged as i32,
                Ok(_) => {}
                Err(_) => {
                    v.add("task.restore.overwrite", format!("{} is not an overwrite policy", r.overwrite))
                }
            }
            Options::Restore(r)
        }
        (TaskType::Sync, Some(Options::Sync(s))) => {
            if !s.window.is_empty()
                && let Err(e) = fields::window(&s.window)
            {
                v.add("task.sync.window", e);
            }
            retention(s.retention.as_ref(), "task.sync.retention", v);
            Options::Sync(s.clone())
        }
        (TaskType::Check, Some(Options::Check(c))) => {
            if !c.window.is_empty()
                && let Err(e) = fields::window(&c.window)
            {
                v.add("task.check.window", e);
            }
            if !(0.0..=100.0).contains(&c.read_data_percent) {
                v.add(
                    "task.check.read_data_percent",
                    format!("{} is out of range 0..=100", c.read_data_percent),
                );
            }
            Options::Check(c.clone())
        }
        (TaskType::Prune, Some(Options::Prune(p))) => {
            let mut p = *p;
            if !(0.0..=100.0).contains(&p.max_unused_percent) {
                v.add(
                    "task.prune.max_unused_percent",
                    format!("{} is out of range 0..=100", p.max_unused_percent),
                );
            } else if p.max_unused_percent == 0.0 {
                p.max_unused_percent = DEFAULT_MAX_UNUSED_PERCENT;
            }
            Options::Prune(p)
        }
        (_, Some(other)) => {
            let which = match other {
                Options::Backup(_) => "backup",
                Options::Restore(_) => "restore",
                Options::Sync(_) => "sync",
                Options::Check(_) => "check",
                Options::Prune(_) => "prune",
            };
            mismatch(v, which);
            default_options(ty)
        }
    }
}

fn default_options(ty: TaskType) -> Options {
    match ty {
        TaskType::Backup => {
            Options::Backup(BackupOptions { mode: BackupMode::Incremental as i32, ..Default::default() })
        }
        TaskType::Restore => Options::Restore(RestoreOptions {
            overwrite: OverwritePolicy::IfChanged as i32,
            ..Default::default()
        }),
        TaskType::Sync => Options::Sync(SyncOptions::default()),
        TaskType::Prune => Options::Prune(PruneOptions { max_unused_percent: DEFAULT_MAX_UNUSED_PERCENT }),
        _ => Options::Check(CheckOptions::default()),
    }
}

fn retention(p: Option<&RetentionPolicy>, prefix: &str, v: &mut Violations) {
    let Some(p) = p else { return };
    if let Err(e) = cairn_retention::Policy::from_raw(&p.into()) {
        let field = e.field().map(|f| format!("{prefix}.{f}")).unwrap_or_else(|| prefix.to_owned());
        v.add(field, e.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_api::v1::WebhookChannel;

    fn info(name: &str, role: ConnectorRole, sel: &[(&str, &str)]) -> Slot {
        Slot::Found(ConnectorInfo {
            project: cairn_api::names::ProjectId::default_project(),
            id: cairn_api::ids::ConnectorId::new(),
            display_name: name.into(),
            role,
            selector: sel.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
        })
    }

    fn backup() -> Task {
        Task { display_name: "nightly".into(), r#type: TaskType::Backup as i32, ..Default::default() }
    }

    fn fields_of(v: Violations) -> Vec<(String, String)> {
        v.items().to_vec()
    }

    #[test]
    fn backup_gets_defaults_and_selector_union() {
        let slots = Slots {
            source: info("src", ConnectorRole::Source, &[("host", "db1")]),
            store: info("nas", ConnectorRole::Store, &[("zone", "eu")]),
            ..Default::default()
        };
        let n = normalize(&backup(), &slots, &BTreeSet::new()).unwrap();
        assert_eq!(n.task.max_attempts, DEFAULT_MAX_ATTEMPTS);
        assert_eq!(n.task.overlap_policy, OverlapPolicy::Skip as i32);
        assert_eq!(n.task.worker_selector.len(), 2);
        assert!(n.task.source.starts_with("projects/default/connectors/"));
        assert!(
            matches!(n.task.options, Some(Options::Backup(ref b)) if b.mode == BackupMode::Incremental as i32)
        );
    }

    #[test]
    fn a_fleet_backup_takes_a_selector_instead_of_a_source() {
        let fleet = |sel: cairn_api::v1::SourceSelector| Task {
            options: Some(Options::Backup(BackupOptions { sources: Some(sel), ..Default::default() })),
            ..backup()
        };
        let store_only =
            Slots { store: info("nas", ConnectorRole::Store, &[("zone", "eu")]), ..Default::default() };
        let good = cairn_api::v1::SourceSelector {
            labels: [("fleet".to_owned(), "web".to_owned())].into(),
            include: vec!["web-*".into(), "tier=front".into()],
            exclude: vec!["web-test".into()],
        };
        let n = normalize(&fleet(good.clone()), &store_only, &BTreeSet::new()).unwrap();
        assert!(n.task.source.is_empty());
        assert_eq!(n.task.worker_selector.len(), 1, "the store's; each source adds its own per job");
        // A source as well is refused, naming the field.
        let both = Slots { source: info("src", ConnectorRole::Source, &[]), ..store_only.clone() };
        let got = fields_of(normalize(&fleet(good), &both, &BTreeSet::new()).unwrap_err());
        assert_eq!(got[0].0, "task.source", "{got:?}");
        // Bad labels and entries name their place.
        let bad = cairn_api::v1::SourceSelector {
            labels: [("bad key".to_owned(), "web".to_owned())].into(),
            include: vec![" ".into()],
            exclude: vec!["k=".into()],
        };
        let got: Vec<String> = fields_of(normalize(&fleet(bad), &store_only, &BTreeSet::new()).unwrap_err())
            .into_iter()
            .map(|f| f.0)
            .collect();
        assert_eq!(
            got,
            [
                "task.backup.sources.labels[\"bad key\"]",
                "task.backup.sources.include[0]",
                "task.backup.sources.exclude[0]"
            ]
        );
        // Without a selector, a BACKUP still needs its source.
        let got = fields_of(normalize(&backup(), &store_only, &BTreeSet::new()).unwrap_err());
        assert_eq!(got[0].0, "task.source");
    }

    #[test]
    fn wrong_role_names_field_and_expected_role() {
        let slots = Slots {
            source: info("nas", ConnectorRole::Store, &[]),
            store: info("nas2", ConnectorRole::Store, &[]),
            ..Default::default()
        };
        let got = fields_of(normalize(&backup(), &slots, &BTreeSet::new()).unwrap_err());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "task.source");
        assert!(got[0].1.contains("needs a SOURCE connector"), "{}", got[0].1);
    }

    #[test]
    fn contradictory_selectors_are_rejected() {
        let slots = Slots {
            source: info("src", ConnectorRole::Source, &[("host", "db1")]),
            store: info("nas", ConnectorRole::Store, &[("host", "db2")]),
            ..Default::default()
        };
        let got = fields_of(normalize(&backup(), &slots, &BTreeSet::new()).unwrap_err());
        assert_eq!(got[0].0, "task.store");
        assert!(got[0].1.contains("host=db2") && got[0].1.contains("host=db1"), "{}", got[0].1);
    }

    #[test]
    fn options_must_match_type_and_retention_is_checked() {
        let mut t = backup();
        t.options = Some(Options::Prune(PruneOptions::default()));
        let slots = Slots {
            source: info("src", ConnectorRole::Source, &[]),
            store: info("nas", ConnectorRole::Store, &[]),
            ..Default::default()
        };
        assert_eq!(fields_of(normalize(&t, &slots, &BTreeSet::new()).unwrap_err())[0].0, "task.prune");
        t.options = Some(Options::Backup(BackupOptions {
            retention: Some(RetentionPolicy { keep_within: "7x".into(), ..Default::default() }),
            ..Default::default()
        }));
        let got = fields_of(normalize(&t, &slots, &BTreeSet::new()).unwrap_err());
        assert_eq!(got[0].0, "task.backup.retention.keep_within");
        t.options = Some(Options::Backup(BackupOptions {
            retention: Some(RetentionPolicy::default()),
            ..Default::default()
        }));
        assert_eq!(
            fields_of(normalize(&t, &slots, &BTreeSet::new()).unwrap_err())[0].0,
            "task.backup.retention"
        );
    }

    #[test]
    fn missing_and_extra_connectors() {
        let slots = Slots {
            store: info("nas", ConnectorRole::Store, &[]),
            destination: Slot::Unknown("nope".into()),
            ..Default::default()
        };
        let got = fields_of(normalize(&backup(), &slots, &BTreeSet::new()).unwrap_err());
        let names: Vec<_> = got.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(names, vec!["task.source", "task.destination"]);
    }

    #[test]
    fn webhook_secrets_are_taken_out_and_required() {
        let mut t = backup();
        t.notification = Some(cairn_api::v1::Notification {
            mode: NotificationMode::Errors as i32,
            webhooks: vec![WebhookChannel {
                url: "https://hooks.example.com/x".into(),
                secret: "k".into(),
                ..Default::default()
            }],
            emails: vec!["ops@example.com".into()],
        });
        let slots = Slots {
            source: info("src", ConnectorRole::Source, &[]),
            store: info("nas", ConnectorRole::Store, &[]),
            ..Default::default()
        };
        let n = normalize(&t, &slots, &BTreeSet::new()).unwrap();
        assert_eq!(n.secrets.get("webhook:https://hooks.example.com/x").map(String::as_str), Some("k"));
        assert!(n.task.notification.unwrap().webhooks[0].secret.is_empty());
        t.notification.as_mut().unwrap().webhooks[0].secret.clear();
        assert!(normalize(&t, &slots, &BTreeSet::new()).is_err());
        let stored = BTreeSet::from(["webhook:https://hooks.example.com/x".to_owned()]);
        assert!(normalize(&t, &slots, &stored).is_ok());
    }
}
