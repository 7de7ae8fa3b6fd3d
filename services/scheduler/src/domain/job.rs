//! Job lifecycle rules: which states are final, retry backoff, what an overlap policy does
//! when a job of the same task is still queued or running, and what a job becomes when an
//! attempt ends ([`next`]).

use std::time::Duration;

use cairn_api::{
    ids::{JobId, Stored as _},
    names::ProjectId,
    v1::{JobState, OverlapPolicy},
};

/// Whether a state is final.
pub fn is_final(s: JobState) -> bool {
    matches!(s, JobState::Succeeded | JobState::Failed | JobState::Cancelled | JobState::Skipped)
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
    pub id: JobId,
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
        cancel: Vec<JobId>,
    },
    /// Record it as SKIPPED with this reason.
    Skip(String),
}

/// Applies an overlap policy.
pub fn overlap(policy: OverlapPolicy, project: &ProjectId, active: &[Active]) -> Overlap {
    let describe = |a: &Active| format!("{} is still {}", a.id.name(project), a.state.stored());
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

/// How an attempt ended, as its worker reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// The work is done.
    Succeeded,
    /// The worker stopped because cancellation was asked for.
    Cancelled {
        /// The worker's words.
        message: String,
    },
    /// The work failed.
    Failed {
        /// Why.
        error: String,
        /// Whether another attempt may succeed.
        retryable: bool,
    },
}

/// What the decision needs to know of the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// This attempt's number (1 = first).
    pub attempt: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// The scheduler stopped it for running past its timeout.
    pub timed_out: bool,
    /// Its timeout (for the message).
    pub timeout: Duration,
    /// Someone asked to cancel it.
    pub cancel_requested: bool,
    /// Why (empty = no reason given).
    pub cancel_reason: String,
    /// First retry delay.
    pub initial_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
}

/// What a job becomes when an attempt ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// It ends in `state` (a final one) with `error` (empty on success).
    End {
        /// The final state.
        state: JobState,
        /// Why, for anything but success.
        error: String,
    },
    /// It goes back to the queue for another attempt after `delay`.
    Retry {
        /// The backoff.
        delay: Duration,
        /// The failed attempt's error.
        error: String,
        /// What the queued job shows while it waits.
        wait_reason: String,
    },
}

/// Decides the next state of a job whose attempt ended (CompleteJob). A timeout always ends
/// FAILED; a requested cancellation ends CANCELLED even when the worker reports a failure; a
/// retryable failure is retried with exponential backoff while attempts remain.
pub fn next(report: &Report, a: &Attempt) -> Next {
    let timed_out = || format!("timed out after {}", humantime::format_duration(a.timeout));
    let end = |state, error| Next::End { state, error };
    match report {
        Report::Succeeded => end(JobState::Succeeded, String::new()),
        Report::Cancelled { .. } if a.timed_out => end(JobState::Failed, timed_out()),
        Report::Cancelled { message } => end(
            JobState::Cancelled,
            if a.cancel_reason.is_empty() { message.clone() } else { a.cancel_reason.clone() },
        ),
        Report::Failed { error, .. } if a.timed_out => {
            end(JobState::Failed, format!("{}: {error}", timed_out()))
        }
        Report::Failed { .. } if a.cancel_requested => end(JobState::Cancelled, a.cancel_reason.clone()),
        Report::Failed { error, retryable: true } if a.attempt < a.max_attempts => {
            let delay = backoff(a.attempt + 1, a.initial_backoff, a.max_backoff);
            Next::Retry {
                delay,
                error: error.clone(),
                wait_reason: format!(
                    "retry {}/{} after {} backoff (attempt {} failed: {error})",
                    a.attempt + 1,
                    a.max_attempts,
                    humantime::format_duration(delay),
                    a.attempt
                ),
            }
        }
        Report::Failed { error, retryable: true } => {
            end(JobState::Failed, format!("{error} (gave up after {} attempts)", a.attempt))
        }
        Report::Failed { error, retryable: false } => end(JobState::Failed, error.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let running = Active { id: JobId::new(), state: JobState::Running };
        let queued = Active { id: JobId::new(), state: JobState::Queued };
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

    fn attempt() -> Attempt {
        Attempt {
            attempt: 1,
            max_attempts: 3,
            timed_out: false,
            timeout: Duration::from_secs(60),
            cancel_requested: false,
            cancel_reason: String::new(),
            initial_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(600),
        }
    }

    #[test]
    fn completion_examples() {
        let failed = |retryable| Report::Failed { error: "disk full".into(), retryable };
        assert_eq!(
            next(&Report::Succeeded, &attempt()),
            Next::End { state: JobState::Succeeded, error: "".into() }
        );
        assert_eq!(
            next(&failed(true), &attempt()),
            Next::Retry {
                delay: Duration::from_secs(10),
                error: "disk full".into(),
                wait_reason: "retry 2/3 after 10s backoff (attempt 1 failed: disk full)".into()
            }
        );
        assert_eq!(
            next(&failed(true), &Attempt { attempt: 3, ..attempt() }),
            Next::End { state: JobState::Failed, error: "disk full (gave up after 3 attempts)".into() }
        );
        assert_eq!(
            next(&failed(false), &attempt()),
            Next::End { state: JobState::Failed, error: "disk full".into() }
        );
        assert_eq!(
            next(&failed(true), &Attempt { timed_out: true, ..attempt() }),
            Next::End { state: JobState::Failed, error: "timed out after 1m: disk full".into() }
        );
        let cancelled = Attempt { cancel_requested: true, cancel_reason: "operator".into(), ..attempt() };
        assert_eq!(
            next(&failed(true), &cancelled),
            Next::End { state: JobState::Cancelled, error: "operator".into() }
        );
        assert_eq!(
            next(&Report::Cancelled { message: "stopped".into() }, &attempt()),
            Next::End { state: JobState::Cancelled, error: "stopped".into() }
        );
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        fn reports() -> impl Strategy<Value = Report> {
            prop_oneof![
                Just(Report::Succeeded),
                ".{0,20}".prop_map(|message| Report::Cancelled { message }),
                (".{0,20}", any::<bool>()).prop_map(|(error, retryable)| Report::Failed { error, retryable }),
            ]
        }

        fn attempts() -> impl Strategy<Value = Attempt> {
            (
                1..20i32,
                1..20i32,
                any::<bool>(),
                any::<bool>(),
                ".{0,10}",
                0..3_600u64,
                0..7_200u64,
                0..100_000u64,
            )
                .prop_map(
                    |(attempt, max_attempts, timed_out, cancel_requested, cancel_reason, t, i, m)| Attempt {
                        attempt,
                        max_attempts,
                        timed_out,
                        timeout: Duration::from_secs(t),
                        cancel_requested,
                        cancel_reason,
                        initial_backoff: Duration::from_secs(i),
                        max_backoff: Duration::from_secs(m),
                    },
                )
        }

        proptest! {
            #[test]
            fn ends_are_final_and_retries_only_follow_retryable_failures(r in reports(), a in attempts()) {
                match next(&r, &a) {
                    Next::End { state, error } => {
                        prop_assert!(is_final(state));
                        prop_assert_eq!(state == JobState::Succeeded, r == Report::Succeeded);
                        if state == JobState::Succeeded {
                            prop_assert!(error.is_empty());
                        }
                    }
                    Next::Retry { delay, .. } => {
                        let retryable_failure = matches!(r, Report::Failed { retryable: true, .. });
                        prop_assert!(retryable_failure);
                        prop_assert!(a.attempt < a.max_attempts, "no retry past max_attempts");
                        prop_assert!(!a.timed_out && !a.cancel_requested, "timeouts and cancellations never retry");
                        prop_assert!(delay <= a.max_backoff);
                        prop_assert!(delay >= a.initial_backoff.min(a.max_backoff));
                    }
                }
            }

            #[test]
            fn timeouts_always_fail(r in reports(), a in attempts()) {
                let a = Attempt { timed_out: true, ..a };
                if r != Report::Succeeded {
                    let failed = matches!(next(&r, &a), Next::End { state: JobState::Failed, error } if error.starts_with("timed out after"));
                    prop_assert!(failed);
                }
            }
        }
    }
}
