//! Fuzzes the public request messages through their validation, structure-aware: each input
//! builds a message of the API's own shape from the descriptor set the servers serve (fields
//! present or not, oneofs, lists, maps, enums mostly valid, strings from the API's vocabulary
//! or arbitrary, timestamps and durations out of range), encodes it as a client would and
//! decodes it as the server does. Then the checks that need no database run on it:
//! connectors and tasks (catalog), schedules, previews and lease asks (scheduler), retention
//! policies, every resource name, and the List methods' `filter` (AIP-160) and `order_by`.
//! Nothing may panic, a connector or task that passes keeps no secret in the record that
//! would be stored, and a filter's SQL never carries the filter's text (values are bound).
#![no_main]

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use cairn_api::names::{self, Kind as NameKind};
use cairn_api::v1;
use cairn_catalog::domain::task::{ConnectorInfo, Slot, Slots};
use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, Kind, MapKey, MessageDescriptor, Value};

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(cairn_api::FILE_DESCRIPTOR_SET).expect("descriptor set"))
}

/// Words the API uses, so the fuzzer reaches past "not a name".
const WORDS: &[&str] = &[
    "",
    "default",
    "projects/default",
    "projects/-",
    "projects/team-a/tasks/nightly",
    "projects/default/connectors/0190a5b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b",
    "connectors/nas",
    "tasks/x",
    "nas",
    "/srv/data",
    "relative/path",
    "Mon..Fri 18:00",
    "*-*-* 02:00:00",
    "*:0/15",
    "0 2 * * *",
    "@daily",
    "Europe/Berlin",
    "Not/AZone",
    "7d",
    "1y2m3d4h",
    "http://127.0.0.1:9000",
    "https://s3.amazonaws.com",
    "rest:http://u:p@host/repo",
    "host=db1",
    "cairn-task=x",
    "a,b",
    "\u{0}",
    "ü∂ß",
    "0190a5b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b",
];

fn string(u: &mut Unstructured) -> arbitrary::Result<String> {
    Ok(match u.int_in_range(0..=3u8)? {
        0 => String::arbitrary(u)?,
        1 => "x".repeat(u.int_in_range(0..=5000usize)?),
        _ => (*u.choose(WORDS)?).to_owned(),
    })
}

fn int(u: &mut Unstructured) -> arbitrary::Result<i64> {
    Ok(match u.int_in_range(0..=2u8)? {
        0 => i64::arbitrary(u)?,
        1 => {
            *u.choose(&[0, 1, -1, 1000, 1001, i64::from(i32::MAX), i64::from(i32::MIN), i64::MAX, i64::MIN])?
        }
        _ => i64::from(u.int_in_range(-2..=100i8)?),
    })
}

fn scalar(u: &mut Unstructured, kind: &Kind, depth: u32) -> arbitrary::Result<Value> {
    Ok(match kind {
        Kind::Double => Value::F64(f64::arbitrary(u)?),
        Kind::Float => Value::F32(f32::arbitrary(u)?),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(int(u)? as i32),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(int(u)?),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(int(u)? as u32),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(int(u)? as u64),
        Kind::Bool => Value::Bool(bool::arbitrary(u)?),
        Kind::String => Value::String(string(u)?),
        Kind::Bytes => Value::Bytes(Vec::<u8>::arbitrary(u)?.into()),
        Kind::Enum(e) => {
            let values: Vec<i32> = e.values().map(|v| v.number()).collect();
            if u.ratio(1, 8)? {
                Value::EnumNumber(i32::arbitrary(u)?)
            } else {
                Value::EnumNumber(*u.choose(&values)?)
            }
        }
        Kind::Message(m) => Value::Message(message(u, m, depth + 1)?),
    })
}

fn map_key(v: Value) -> Option<MapKey> {
    Some(match v {
        Value::String(s) => MapKey::String(s),
        Value::Bool(b) => MapKey::Bool(b),
        Value::I32(i) => MapKey::I32(i),
        Value::I64(i) => MapKey::I64(i),
        Value::U32(i) => MapKey::U32(i),
        Value::U64(i) => MapKey::U64(i),
        _ => return None,
    })
}

/// A message of `desc`'s shape, fields chosen by the input.
fn message(u: &mut Unstructured, desc: &MessageDescriptor, depth: u32) -> arbitrary::Result<DynamicMessage> {
    let mut m = DynamicMessage::new(desc.clone());
    if depth > 5 {
        return Ok(m);
    }
    for field in desc.fields() {
        if u.is_empty() || !u.ratio(2, 3)? {
            continue;
        }
        let kind = field.kind();
        let value = if field.is_map() {
            let Kind::Message(entry) = &kind else { continue };
            let (k, v) = (entry.map_entry_key_field().kind(), entry.map_entry_value_field().kind());
            let mut map = HashMap::new();
            for _ in 0..u.int_in_range(0..=4u8)? {
                if let Some(key) = map_key(scalar(u, &k, depth)?) {
                    map.insert(key, scalar(u, &v, depth)?);
                }
            }
            Value::Map(map)
        } else if field.is_list() {
            let n = u.int_in_range(0..=4u8)?;
            Value::List((0..n).map(|_| scalar(u, &kind, depth)).collect::<arbitrary::Result<_>>()?)
        } else {
            scalar(u, &kind, depth)?
        };
        m.set_field(&field, value);
    }
    Ok(m)
}

/// A concrete request of type `T`, built from its descriptor and decoded like a server would.
fn build<T: prost::Message + prost::Name + Default>(u: &mut Unstructured) -> arbitrary::Result<T> {
    let desc = pool().get_message_by_name(&T::full_name()).ok_or(arbitrary::Error::IncorrectFormat)?;
    let bytes = message(u, &desc, 0)?.encode_to_vec();
    T::decode(bytes.as_slice()).map_err(|_| arbitrary::Error::IncorrectFormat)
}

fn now(u: &mut Unstructured) -> arbitrary::Result<DateTime<Utc>> {
    let secs = u.int_in_range(0..=4_102_444_800i64)?;
    Ok(DateTime::from_timestamp(secs, 0).unwrap_or_default())
}

/// No secret survives into the stored record of a connector.
fn connector_keeps_no_secret(c: &v1::Connector) {
    assert!(c.repository_password.is_empty(), "repository password stored");
    if let Some(v1::connector::Config::S3Store(s)) = &c.config {
        assert!(s.secret_access_key.is_empty(), "secret access key stored");
    }
}

fn slot(u: &mut Unstructured) -> arbitrary::Result<Slot> {
    Ok(match u.int_in_range(0..=4u8)? {
        0 => Slot::Empty,
        1 => Slot::Unknown(string(u)?),
        n => Slot::Found(ConnectorInfo {
            project: names::ProjectId::parse(if u.arbitrary()? { "default" } else { "other" })
                .map_err(|_| arbitrary::Error::IncorrectFormat)?,
            id: cairn_api::ids::ConnectorId::new(),
            display_name: string(u)?,
            role: match n {
                2 => v1::ConnectorRole::Source,
                3 => v1::ConnectorRole::Store,
                _ => v1::ConnectorRole::Destination,
            },
            selector: HashMap::arbitrary(u)?,
        }),
    })
}

/// Tokens of the filter language, so most inputs get past the first word.
const FILTER_WORDS: &[&str] = &[
    "AND",
    "OR",
    "NOT",
    "-",
    "(",
    ")",
    "=",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    ":",
    "\"",
    " ",
    "state",
    "task",
    "labels",
    "time",
    "create_time",
    "display_name",
    "enabled",
    "error",
    "FAILED",
    "JOB_STATE_QUEUED",
    "true",
    "maybe",
    "\"2026-01-30T00:00:00Z\"",
    "\"env=prod\"",
    "\"nightly\"",
    "'",
    "\\",
    "%",
    "_",
    "ü",
    "\u{0}",
];

/// A List filter and order: parsed against each list's fields; what parses compiles to SQL
/// that binds every value.
fn list_filter(u: &mut Unstructured) -> arbitrary::Result<()> {
    use cairn_runtime::{filter::Filter, pagination};
    use cairn_scheduler::store;
    let text = if u.arbitrary()? {
        string(u)?
    } else {
        let n = u.int_in_range(0..=40usize)?;
        let mut t = String::new();
        for _ in 0..n {
            if u.ratio(1, 8)? {
                t.push_str(&string(u)?);
            } else {
                t.push_str(u.choose(FILTER_WORDS)?);
            }
            if u.arbitrary()? {
                t.push(' ');
            }
        }
        t
    };
    let (fields, orders) = *u.choose(&[
        (store::jobs::FILTER_FIELDS, store::jobs::ORDER_FIELDS),
        (store::schedules::FILTER_FIELDS, store::schedules::ORDER_FIELDS),
        (store::snapshots::FILTER_FIELDS, store::snapshots::ORDER_FIELDS),
    ])?;
    let default = pagination::OrderBy { field: orders[0], desc: false };
    let _ = pagination::order_by(&text, orders, default);
    let filter = match Filter::parse(&text, fields) {
        Ok(f) => f,
        Err(e) => {
            assert!(e.position <= text.len(), "error position past the end");
            return Ok(());
        }
    };
    let mut resolved = HashMap::new();
    for r in filter.references() {
        if u.arbitrary()? {
            resolved.insert(r, uuid::Uuid::nil());
        }
    }
    let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new("SELECT 1 WHERE ");
    filter.push_sql(&mut q, &resolved);
    // Without the columns (one is `COALESCE(s.spec->>'timeZone', '')`) and LIKE's escape
    // clause, no quote is left: every value went in as a bind parameter.
    let mut sql = q.sql().as_str().replace("ESCAPE '\\'", "");
    for f in fields {
        sql = sql.replace(f.column, "");
    }
    assert!(!sql.contains('\'') && !sql.contains('"'), "a value reached the SQL text: {sql}");
    assert_eq!(sql.matches('(').count(), sql.matches(')').count(), "unbalanced: {sql}");
    Ok(())
}

fn run(u: &mut Unstructured) -> arbitrary::Result<()> {
    let stored: BTreeSet<String> =
        if u.arbitrary()? { BTreeSet::new() } else { ["repository_password".to_owned()].into() };
    match u.int_in_range(0..=9u8)? {
        0 => {
            let req: v1::CreateConnectorRequest = build(u)?;
            if let Some(c) = &req.connector
                && let Ok(n) = cairn_catalog::domain::connector::normalize(c, &stored)
            {
                connector_keeps_no_secret(&n.connector);
            }
        }
        1 => {
            let req: v1::UpdateConnectorRequest = build(u)?;
            let base: v1::Connector = build(u)?;
            let (Some(patch), Some(mask)) = (&req.connector, &req.update_mask) else { return Ok(()) };
            if let Ok(merged) = cairn_catalog::domain::mask::apply(
                &base,
                patch,
                &mask.paths,
                cairn_catalog::connectors::UPDATABLE,
            ) && let Ok(n) = cairn_catalog::domain::connector::normalize(&merged, &stored)
            {
                connector_keeps_no_secret(&n.connector);
            }
        }
        2 => {
            let req: v1::CreateTaskRequest = build(u)?;
            let slots =
                Slots { source: slot(u)?, store: slot(u)?, destination: slot(u)?, target_store: slot(u)? };
            if let Some(t) = &req.task
                && let Ok(n) = cairn_catalog::domain::task::normalize(t, &slots, &stored)
                && let Some(notification) = &n.task.notification
            {
                for w in &notification.webhooks {
                    assert!(w.secret.is_empty(), "webhook secret stored");
                }
            }
        }
        3 => {
            let req: v1::CreateScheduleRequest = build(u)?;
            if let Some(s) = &req.schedule {
                let _ = cairn_scheduler::schedules::validate(s, now(u)?);
            }
        }
        4 => {
            let req: v1::PreviewScheduleRequest = build(u)?;
            if let Ok(r) = cairn_scheduler::schedules::preview(now(u)?, &req) {
                assert!(r.fire_times.len() <= 1000);
                let times: Vec<_> = r.fire_times.iter().map(|t| (t.seconds, t.nanos)).collect();
                assert!(times.windows(2).all(|w| w[0] < w[1]), "fire times increase");
            }
        }
        5 => {
            let req: v1::AcquireLeaseRequest = build(u)?;
            let _ = cairn_scheduler::leases::validate(&req);
        }
        6 => {
            let req: v1::SimulateRetentionRequest = build(u)?;
            if let Some(p) = &req.policy {
                let raw = cairn_retention::RawPolicy::from(p);
                if let Ok(policy) = cairn_retention::Policy::from_raw(&raw) {
                    assert_eq!(cairn_retention::Policy::from_raw(&policy.to_raw()).ok(), Some(policy));
                }
            }
        }
        7 => {
            let req: v1::RunTaskRequest = build(u)?;
            let _ = names::parse_one(NameKind::Task, &req.task);
            if let Some(o) = &req.overrides {
                let _ = cairn_scheduler::resolve::snapshot_id("overrides.snapshot", &o.snapshot);
            }
        }
        8 => list_filter(u)?,
        _ => {
            let raw = string(u)?;
            for kind in [NameKind::Connector, NameKind::Task, NameKind::Schedule, NameKind::Job] {
                let _ = names::parse_name(kind, &raw, true);
                let _ = names::parse_one(kind, &raw);
                let _ = names::parse_id_name(kind, &raw, true);
                if let Ok((project, id)) = names::parse_canonical(kind, &raw) {
                    let again = kind.name(&project, id);
                    assert_eq!(names::parse_canonical(kind, &again).ok(), Some((project, id)));
                }
            }
            let _ = names::parse_parent(&raw, true);
            let _ = names::parse_project(&raw);
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
