//! The catalog's rules, with no I/O: what makes a connector or a task valid, how a field mask
//! merges an update, and the worker-selector union of a task.
//!
//! Records are the API messages themselves (`cairn.v1.Connector`, `cairn.v1.Task`): the
//! functions here validate them field by field, normalise them (defaults, canonical names,
//! secrets taken out) and report every violation with its field path.

pub mod connector;
pub mod fields;
pub mod mask;
pub mod task;
