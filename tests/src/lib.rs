//! Whole-system journeys live in `journeys/` and the fault suite in `faults/` (one test binary
//! each); `src/bin/worker.rs` and `src/bin/scheduler.rs` are processes they can kill. This
//! library is empty on purpose.
