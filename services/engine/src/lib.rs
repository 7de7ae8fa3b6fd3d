//! Cairn's backup engine: a synchronous API over `rustic_core` with its own plain types.
//!
//! Workers call [`Engine`] methods on a blocking thread; nothing here needs tokio, gRPC or a
//! database. Every operation takes a [`Progress`] to report phases, counters and log lines,
//! and a [`CancelToken`] to stop it; results and errors are plain values ([`Error`] says
//! whether a failure is worth retrying). Repositories are restic-format, so the stock
//! `restic` CLI can list, check and restore everything the engine writes.
//!
//! # Layout
//! | module | role |
//! | --- | --- |
//! | `store` | [`Store`] kinds, opening/initialising repositories, [`Engine`] settings |
//! | `source` | [`Source`] kinds and the guarded/command sources fed to rustic's archiver |
//! | `readahead` | parallel read-ahead of small files for the archiver |
//! | `backup` | BACKUP: parent selection, tags, snapshot commit, the archiver chosen |
//! | `archive` | Cairn's own pipelined archiver (parallel readers, chunk → hash → dedupe → zstd → seal → pack) |
//! | `restore` | RESTORE: snapshot selection, path safety, batched restore |
//! | `sync` | SYNC: copying snapshots between stores |
//! | `check` | CHECK: structure and data verification |
//! | `prune` | PRUNE: instant space reclamation |
//! | `snapshots` | listing, filters, FORGET |
//! | `browse` | [`Browser`]: directory listings, diffs and file reads on repositories kept open |
//! | `verdict` | connection tests of stores, sources and destinations |
//! | `cancel` | [`CancelToken`] and the backend wrapper that makes rustic stop |
//! | `progress` | the [`Progress`] trait and the bridge from rustic's progress bars |
//! | `error` | [`Error`], classification of rustic errors, secret redaction |
//!
//! This crate must not know about jobs, leases or schedules: it runs one operation at a time
//! against the stores it is given.

mod archive;
mod backup;
mod browse;
mod cancel;
mod check;
mod error;
mod progress;
mod prune;
mod readahead;
mod restore;
mod snapshots;
mod source;
mod store;
mod sync;
mod verdict;

pub use backup::{BackupOptions, BackupOutcome};
pub use browse::{Browser, Change, Diff, Entry, EntryKind, FileSink, Listing, repository_opens};
pub use cancel::CancelToken;
pub use check::{CheckOptions, CheckOutcome};
pub use error::Error;
pub use progress::{Level, NoProgress, Phase, Progress, Update};
pub use prune::{PruneOptions, PruneOutcome};
pub use restore::{Overwrite, RestoreOptions, RestoreOutcome, SnapshotSel};
pub use snapshots::{ForgetOutcome, SnapshotFilter, SnapshotInfo, SnapshotStats};
pub use source::Source;
pub use store::{Archiver, Engine, Store, StoreKind};
pub use sync::SyncOutcome;
pub use verdict::Verdict;
