//! RunTask's overrides: one run of a RESTORE with another snapshot, paths or destination, or
//! of a BACKUP in FULL mode, without editing the task. They are checked when the job is
//! created (each against the task's type), stored on the job, and applied to the task the
//! lease carries, so the worker runs them like any task.

use std::collections::HashMap;

use cairn_api::{
    ids::ConnectorId,
    names::{self, Kind, Reference},
    v1::{BackupMode, ConnectorRole, ResolvedTask, RunOverrides, TaskType, task::Options},
};

use crate::{
    State,
    catalog::TaskPlan,
    error::{Error, Result},
    resolve,
};

fn invalid(field: &str, msg: impl Into<String>) -> Error {
    Error::invalid(format!("overrides.{field}"), msg)
}

/// Whether nothing is overridden.
pub fn is_empty(o: &RunOverrides) -> bool {
    o == &RunOverrides::default()
}

/// Checks `o` against the task of `plan` and returns the plan of this run (the destination's
/// connector and worker selector swapped in) with the overrides as stored (the destination
/// by its full name).
pub async fn check(state: &State, plan: &TaskPlan, o: &RunOverrides) -> Result<(TaskPlan, RunOverrides)> {
    let restore = plan.task_type == TaskType::Restore;
    let only = |field: &str, what: &str| invalid(field, format!("applies to {what} tasks only"));
    let mut out = o.clone();
    if !o.snapshot.is_empty() {
        if !restore {
            return Err(only("snapshot", "RESTORE"));
        }
        out.snapshot = resolve::snapshot_id("overrides.snapshot", &o.snapshot)?;
    }
    for (i, p) in o.include_paths.iter().enumerate() {
        if !restore {
            return Err(only("include_paths", "RESTORE"));
        }
        if p.trim().is_empty() || p.contains('\0') || p.split('/').any(|part| part == "..") {
            return Err(invalid(
                &format!("include_paths[{i}]"),
                format!("{p:?} is not a path inside a snapshot"),
            ));
        }
    }
    if o.full && plan.task_type != TaskType::Backup {
        return Err(only("full", "BACKUP"));
    }
    let mut plan = plan.clone();
    if !o.destination.trim().is_empty() {
        if !restore {
            return Err(only("destination", "RESTORE"));
        }
        let field = "overrides.destination";
        let missing = || Error::invalid(field, resolve::missing("connector", &o.destination));
        let (project, reference) =
            resolve::within(Kind::Connector, field, Some(&plan.project), &o.destination)?
                .ok_or_else(missing)?;
        let resolved = state.catalog.connector(&project, &reference, false).await?.ok_or_else(missing)?;
        let c = resolved.connector.ok_or_else(missing)?;
        if c.role() != ConnectorRole::Destination {
            let role = c.role().as_str_name().trim_start_matches("CONNECTOR_ROLE_");
            return Err(Error::invalid(
                field,
                format!(
                    "connector {} is a {role} connector; a RESTORE needs a DESTINATION connector",
                    c.display_name
                ),
            ));
        }
        let id = names::parse_canonical(Kind::Connector, &c.name)
            .map(|(_, id)| ConnectorId::from_uuid(id))
            .map_err(|e| Error::Internal(format!("connector name: {e}")))?;
        // The run's connectors and selector: the task's, with this destination instead.
        let old = plan.destination;
        plan.connector_ids.retain(|c| Some(*c) != old);
        plan.connector_ids.push(id);
        plan.selectors.retain(|(c, _)| Some(*c) != old);
        plan.selectors.push((id, c.worker_selector.clone()));
        plan.selector = union(&plan.selectors).map_err(|(k, a, b)| {
            Error::invalid(
                field,
                format!("its worker selector {k}={b} conflicts with {k}={a} of the task's other connectors"),
            )
        })?;
        plan.destination = Some(id);
        out.destination = c.name;
    }
    Ok((plan, out))
}

/// The union of worker selectors, or the first key two of them disagree on.
fn union(
    selectors: &[(ConnectorId, HashMap<String, String>)],
) -> std::result::Result<HashMap<String, String>, (String, String, String)> {
    let mut out: HashMap<String, String> = HashMap::new();
    for (_, sel) in selectors {
        for (k, v) in sel {
            match out.get(k) {
                Some(a) if a != v => return Err((k.clone(), a.clone(), v.clone())),
                _ => {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
    }
    Ok(out)
}

/// Applies a job's overrides to the task its lease carries. `Err` with a reason when the
/// overriding destination is gone.
pub async fn apply(
    state: &State,
    project: &names::ProjectId,
    o: &RunOverrides,
    t: &mut ResolvedTask,
) -> Result<std::result::Result<(), String>> {
    if let Some(task) = t.task.as_mut() {
        match task.options.as_mut() {
            Some(Options::Restore(r)) => {
                if !o.snapshot.is_empty() {
                    r.snapshot = o.snapshot.clone();
                }
                if !o.include_paths.is_empty() {
                    r.include_paths = o.include_paths.clone();
                }
            }
            Some(Options::Backup(b)) if o.full => b.mode = BackupMode::Full as i32,
            _ => {}
        }
    }
    if !o.destination.is_empty() {
        let id = names::parse_canonical(Kind::Connector, &o.destination).map(|(_, id)| id);
        let found = match id {
            Ok(id) => state.catalog.connector(project, &Reference::Id(id), true).await?,
            Err(_) => None,
        };
        match found {
            Some(c) => {
                if let Some(task) = t.task.as_mut() {
                    task.destination = o.destination.clone();
                }
                t.destination = Some(c);
            }
            None => return Ok(Err("the overriding destination was deleted before the job ran".into())),
        }
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_unite_unless_they_disagree() {
        let id = ConnectorId::new;
        let sel = |kv: &[(&str, &str)]| kv.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let ok =
            union(&[(id(), sel(&[("zone", "a")])), (id(), sel(&[("host", "db1"), ("zone", "a")]))]).unwrap();
        assert_eq!(ok.len(), 2);
        let bad = union(&[(id(), sel(&[("host", "db1")])), (id(), sel(&[("host", "db2")]))]).unwrap_err();
        assert_eq!(bad, ("host".into(), "db1".into(), "db2".into()));
    }
}
