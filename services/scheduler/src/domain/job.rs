//! Job lifecycle rules: state, trigger and type names as stored, retry backoff, and what an
//! overlap policy does when a job of the same task is still queued or running.

use std::time::Duration;

use cairn_api::{
    names::{Kind, ProjectId},
    v1::{JobState, JobTrigger, OverlapPolicy, TaskType},
};
use uuid::Uuid;

/// Stored name of a state.
pub fn state_name(s: JobState) -> &'static str {
    match s {
        JobState::Unspecified => "UNSPECIFIED",
        JobState::Queued => "QUEUED",
        JobState::Running => "RUNNING",
        JobState::Succeeded => "SUCCEEDED",
        JobState::Failed => "FAILED",
        JobState::Cancelled => "CANCELLED",
        JobState::Skipped => "SKIPPED",
    }
}

/// A stored state name.
pub fn parse_state(s: &str) -> JobState {
    JobState::from_str_name(&format!("JOB_STATE_{s}")).unwrap_or_default()
}

/// Whether a state is final.
pub fn is_final(s: JobState) -> bool {
    matches!(s, JobState::Succeeded | JobState::Failed | JobState::Cancelled | JobState::Skipped)
}

/// Stored name of a trigger.
pub fn trigger_name(t: JobTrigger) -> &'static str {
    match t {
        JobTrigger::Unspecified => "UNSPECIFIED",
        JobTrigger::Schedule => "SCHEDULE",
        JobTrigger::Manual => "MANUAL",
        JobTrigger::CatchUp => "CATCH_UP",
        JobTrigger::Retry => "RETRY",
        JobTrigger::System => "SYSTEM",
    }
}

/// A stored trigger name.
pub fn parse_trigger(s: &str) -> JobTrigger {
    JobTrigger::from_str_name(&format!("JOB_TRIGGER_{s}")).unwrap_or_default()
}

/// Stored name of a job type.
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

/// A stored type name.
pub fn parse_type(s: &str) -> TaskType {
    TaskType::from_str_name(&format!("TASK_TYPE_{s}")).unwrap_or_default()
}

/// Delay before attempt `next_attempt` (2, 3, ...): `initial × 2^(next_attempt − 2)`, at most
/// `max`.
pub fn backoff(next_attempt: i32, initial: Duration, max: Duration) -> Duration {
    let exp = u32::try_from(next_attempt.saturating_sub(2)).unwrap_or(0).min(30);
    initial.saturating_mul(1u32 << exp).min(max)
}

/// A job of the same task that is not finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Active {
    /// Its id.
    pub id: Uuid,
    /// QUEUED or RUNNING.
    pub state: JobState,
}

/// What to do with a new job of a task that may already have active jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlap {
    /// Queue it; `serial` jobs never run beside another job of their task.
    Queue {
        /// Wait for the task's running job(s).
        serial: bool,
        /// Active jobs to cancel first (CANCEL_RUNNING).
        cancel: Vec<Uuid>,
    },
    /// Record it as SKIPPED with this reason.
    Skip(String),
}

/// Applies an overlap policy.
pub fn overlap(policy: OverlapPolicy, project: &ProjectId, active: &[Active]) -> Overlap {
    let describe = |a: &Active| format!("{} is still {}", Kind::Job.name(project, a.id), state_name(a.state));
    match policy {
        OverlapPolicy::Allow => Overlap::Queue { serial: false, cancel: vec![] },
        OverlapPolicy::CancelRunning => {
            Overlap::Queue { serial: true, cancel: active.iter().map(|a| a.id).collect() }
        }
        OverlapPolicy::QueueOne => match active.iter().find(|a| a.state == JobState::Queued) {
            Some(waiting) => Overlap::Skip(format!(
                "skipped by overlap policy QUEUE_ONE: {} (at most one waits)",
                describe(waiting)
            )),
            None => Overlap::Queue { serial: true, cancel: vec![] },
        },
        OverlapPolicy::Skip | OverlapPolicy::Unspecified => match active.first() {
            Some(a) => Overlap::Skip(format!("skipped by overlap policy SKIP: {}", describe(a))),
            None => Overlap::Queue { serial: true, cancel: vec![] },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in [JobState::Queued, JobState::Running, JobState::Succeeded, JobState::Skipped] {
            assert_eq!(parse_state(state_name(s)), s);
        }
        for t in [JobTrigger::Schedule, JobTrigger::CatchUp, JobTrigger::Manual] {
            assert_eq!(parse_trigger(trigger_name(t)), t);
        }
        for t in [TaskType::Backup, TaskType::TestConnection, TaskType::Prune] {
            assert_eq!(parse_type(type_name(t)), t);
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let (i, m) = (Duration::from_secs(10), Duration::from_secs(60));
        assert_eq!(backoff(2, i, m), Duration::from_secs(10));
        assert_eq!(backoff(3, i, m), Duration::from_secs(20));
        assert_eq!(backoff(4, i, m), Duration::from_secs(40));
        assert_eq!(backoff(5, i, m), Duration::from_secs(60));
        assert_eq!(backoff(500, i, m), Duration::from_secs(60));
    }

    #[test]
    fn overlap_policies() {
        let running = Active { id: Uuid::now_v7(), state: JobState::Running };
        let queued = Active { id: Uuid::now_v7(), state: JobState::Queued };
        assert_eq!(
            overlap(OverlapPolicy::Skip, &ProjectId::default_project(), &[]),
            Overlap::Queue { serial: true, cancel: vec![] }
        );
        assert!(
            matches!(overlap(OverlapPolicy::Skip, &ProjectId::default_project(), std::slice::from_ref(&running)), Overlap::Skip(r) if r.contains("RUNNING"))
        );
        assert_eq!(
            overlap(OverlapPolicy::QueueOne, &ProjectId::default_project(), std::slice::from_ref(&running)),
            Overlap::Queue { serial: true, cancel: vec![] }
        );
        assert!(matches!(
            overlap(
                OverlapPolicy::QueueOne,
                &ProjectId::default_project(),
                &[running.clone(), queued.clone()]
            ),
            Overlap::Skip(_)
        ));
        assert_eq!(
            overlap(OverlapPolicy::Allow, &ProjectId::default_project(), std::slice::from_ref(&running)),
            Overlap::Queue { serial: false, cancel: vec![] }
        );
        assert_eq!(
            overlap(
                OverlapPolicy::CancelRunning,
                &ProjectId::default_project(),
                &[running.clone(), queued.clone()]
            ),
            Overlap::Queue { serial: true, cancel: vec![running.id, queued.id] }
        );
    }
}
