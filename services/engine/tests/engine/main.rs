//! Engine tests against real repositories on disk (and a real S3 server when available).

mod archiver;
mod backup;
mod common;
mod interop;
mod maintenance;
mod restore;
