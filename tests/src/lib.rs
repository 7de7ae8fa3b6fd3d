//! Whole-system journeys live in `journeys/` (one test binary); `src/bin/worker.rs` is a
//! worker process they can kill. This library is empty on purpose.
