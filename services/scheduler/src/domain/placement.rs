//! Which queued jobs a worker may take now: a job never runs beside another job of its task
//! when it is `serial`, a store never has more than its `max_concurrent_jobs` jobs, and an
//! `exclusive` job (PRUNE) holds its stores alone. Jobs that must wait get a reason people
//! can read. (Worker labels are matched in SQL before this.)

use std::collections::{HashMap, HashSet};

use cairn_api::ids::{ConnectorId, JobId, TaskId};

/// A queued job the worker's labels allow.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Job id.
    pub id: JobId,
    /// Its task.
    pub task_id: Option<TaskId>,
    /// Stores it touches.
    pub store_ids: Vec<ConnectorId>,
    /// Needs its stores alone.
    pub exclusive: bool,
    /// Never beside another job of its task (of its source, for a fleet task's job).
    pub serial: bool,
    /// A fleet task's job: its source (serial per (task, source)); `None` otherwise.
    pub fleet_source: Option<ConnectorId>,
}

/// What `serial` keeps apart: a task, or one source of a fleet task.
pub type SerialKey = (TaskId, Option<ConnectorId>);

/// A store's occupancy.
#[derive(Debug, Clone)]
pub struct StoreLoad {
    /// Display name.
    pub display_name: String,
    /// Limit.
    pub max_concurrent_jobs: i32,
    /// Jobs running on it.
    pub running: i32,
    /// An exclusive job runs on it.
    pub exclusive_running: bool,
}

/// The outcome of placement.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pick {
    /// Jobs to lease now, in order.
    pub accepted: Vec<JobId>,
    /// Jobs that must wait, with why.
    pub waiting: Vec<(JobId, String)>,
}

/// Picks up to `capacity` candidates in order. `stores` and `busy_tasks` (tasks with a running
/// job) are updated as jobs are accepted.
pub fn pick(
    candidates: &[Candidate],
    stores: &mut HashMap<ConnectorId, StoreLoad>,
    busy_tasks: &mut HashSet<SerialKey>,
    capacity: usize,
) -> Pick {
    let mut out = Pick::default();
    for c in candidates {
        if out.accepted.len() >= capacity {
            break;
        }
        if let Some(reason) = blocker(c, stores, busy_tasks) {
            out.waiting.push((c.id, reason));
            continue;
        }
        for s in &c.store_ids {
            if let Some(load) = stores.get_mut(s) {
                load.running += 1;
                load.exclusive_running |= c.exclusive;
            }
        }
        if let Some(t) = c.task_id {
            busy_tasks.insert((t, c.fleet_source));
        }
        out.accepted.push(c.id);
    }
    out
}

fn blocker(
    c: &Candidate,
    stores: &HashMap<ConnectorId, StoreLoad>,
    busy_tasks: &HashSet<SerialKey>,
) -> Option<String> {
    if c.serial && c.task_id.is_some_and(|t| busy_tasks.contains(&(t, c.fleet_source))) {
        return Some("waiting for the running job of the same task to finish (overlap policy)".into());
    }
    for s in &c.store_ids {
        let Some(load) = stores.get(s) else { continue };
        let name = &load.display_name;
        if load.exclusive_running {
            return Some(format!("waiting for store {name}: a PRUNE holds it exclusively"));
        }
        if c.exclusive && load.running > 0 {
            return Some(format!(
                "waiting for store {name}: PRUNE needs it exclusively ({} job(s) running)",
                load.running
            ));
        }
        if load.running >= load.max_concurrent_jobs {
            return Some(format!(
                "waiting for store {name} ({}/{} jobs running)",
                load.running, load.max_concurrent_jobs
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(store: ConnectorId, exclusive: bool) -> Candidate {
        Candidate {
            id: JobId::new(),
            task_id: Some(TaskId::new()),
            store_ids: vec![store],
            exclusive,
            serial: true,
            fleet_source: None,
        }
    }

    fn load(max: i32, running: i32, exclusive: bool) -> StoreLoad {
        StoreLoad {
            display_name: "nas".into(),
            max_concurrent_jobs: max,
            running,
            exclusive_running: exclusive,
        }
    }

    #[test]
    fn store_limit_is_respected() {
        let s = ConnectorId::new();
        let cs: Vec<_> = (0..5).map(|_| cand(s, false)).collect();
        let mut stores = HashMap::from([(s, load(4, 1, false))]);
        let p = pick(&cs, &mut stores, &mut HashSet::new(), 10);
        assert_eq!(p.accepted.len(), 3);
        assert_eq!(p.waiting.len(), 2);
        assert_eq!(p.waiting[0].1, "waiting for store nas (4/4 jobs running)");
    }

    #[test]
    fn prune_is_exclusive_both_ways() {
        let s = ConnectorId::new();
        let mut stores = HashMap::from([(s, load(4, 1, false))]);
        let p = pick(&[cand(s, true)], &mut stores, &mut HashSet::new(), 10);
        assert!(p.accepted.is_empty());
        assert!(p.waiting[0].1.contains("PRUNE needs it exclusively"));
        let mut stores = HashMap::from([(s, load(4, 0, false))]);
        let p = pick(&[cand(s, true), cand(s, false)], &mut stores, &mut HashSet::new(), 10);
        assert_eq!(p.accepted.len(), 1);
        assert!(p.waiting[0].1.contains("holds it exclusively"));
    }

    #[test]
    fn serial_jobs_wait_for_their_task() {
        let s = ConnectorId::new();
        let task = TaskId::new();
        let a = Candidate { task_id: Some(task), ..cand(s, false) };
        let b = Candidate { task_id: Some(task), ..cand(s, false) };
        let c = Candidate { task_id: Some(task), serial: false, ..cand(s, false) };
        let mut stores = HashMap::from([(s, load(4, 0, false))]);
        let p = pick(&[a.clone(), b.clone(), c.clone()], &mut stores, &mut HashSet::new(), 10);
        assert_eq!(p.accepted, vec![a.id, c.id]);
        assert_eq!(p.waiting.len(), 1);
        assert_eq!(p.waiting[0].0, b.id);
    }

    #[test]
    fn a_fleet_task_s_jobs_are_serial_per_source() {
        let s = ConnectorId::new();
        let task = TaskId::new();
        let (src1, src2) = (ConnectorId::new(), ConnectorId::new());
        let of = |src| Candidate { task_id: Some(task), fleet_source: Some(src), ..cand(s, false) };
        let (a, b, again) = (of(src1), of(src2), of(src1));
        let mut stores = HashMap::from([(s, load(10, 0, false))]);
        let p = pick(&[a.clone(), b.clone(), again.clone()], &mut stores, &mut HashSet::new(), 10);
        assert_eq!(p.accepted, vec![a.id, b.id], "two sources at once, not one source twice");
        assert_eq!(p.waiting[0].0, again.id);
    }

    #[test]
    fn capacity_bounds_the_pick() {
        let s = ConnectorId::new();
        let cs: Vec<_> = (0..5).map(|_| cand(s, false)).collect();
        let mut stores = HashMap::from([(s, load(100, 0, false))]);
        assert_eq!(pick(&cs, &mut stores, &mut HashSet::new(), 2).accepted.len(), 2);
    }
}
