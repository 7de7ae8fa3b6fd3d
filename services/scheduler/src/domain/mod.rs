//! The scheduler's rules, with no I/O: recurrences and their occurrences (firing, catch-up
//! and missed-run decisions), job states and retries, overlap policies, and lease placement
//! (worker labels, store limits, exclusive and serial jobs), and protection verdicts (a
//! source's last success against its recovery point objective).

pub mod forecast;
pub mod job;
pub mod placement;
pub mod protection;
pub mod recurrence;
