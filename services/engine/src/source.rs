//! Backup sources: what gets read, and the `ReadSource` wrappers handed to rustic's archiver.
//!
//! [`GuardedSource`] wraps any rustic source so that (1) its entry iterator ends as soon as
//! the operation is cancelled and its open files fail their next read, (2) walk and read
//! errors become warnings in the job log (rustic itself only skips them), and (3) progress
//! learns the current path, files seen and the totals of the size scan.
//!
//! [`CommandSource`] runs a command and streams its standard output as a single file. A
//! non-zero exit fails the operation through the shared [`Guard`], which makes the final
//! snapshot write fail: a failed command never produces a snapshot.
//!
//! This module reads; it never writes to a repository.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::unix::process::CommandExt as _;
use std::path::{Component, Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rustic_core::repofile::{Metadata, Node, NodeType};
use rustic_core::{ErrorKind, ReadSource, ReadSourceEntry, ReadSourceOpen, RusticError};

use crate::Error;
use crate::cancel::Guard;
use crate::progress::Reporter;

/// What a backup reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Files and directories on the worker host.
    LocalPath {
        /// One or more paths (absolute, or relative to the worker's working directory).
        paths: Vec<PathBuf>,
        /// When non-empty, only files matching one of these globs are backed up
        /// (directories are always traversed). gitignore syntax.
        include_globs: Vec<String>,
        /// Files and directories matching these globs are skipped. gitignore syntax.
        exclude_globs: Vec<String>,
        /// Directories containing a file with one of these names are skipped entirely.
        exclude_if_present: Vec<String>,
        /// Do not cross file system boundaries below the given paths.
        one_file_system: bool,
    },
    /// A command whose standard output is backed up as one file.
    Command {
        /// Program and arguments (no shell involved; use `sh -c` explicitly if needed).
        argv: Vec<String>,
        /// Name of the file in the snapshot (a single path component, e.g. `db.sql`).
        file_name: String,
    },
}

impl Source {
    /// Local paths without filters.
    #[must_use]
    pub fn paths(paths: impl IntoIterator<Item = impl Into<PathBuf>>) -> Self {
        Self::LocalPath {
            paths: paths.into_iter().map(Into::into).collect(),
            include_globs: Vec::new(),
            exclude_globs: Vec::new(),
            exclude_if_present: Vec::new(),
            one_file_system: false,
        }
    }

    /// Validates the source description (not whether its paths exist).
    pub(crate) fn validate(&self) -> Result<(), Error> {
        match self {
            Self::LocalPath { paths, include_globs, exclude_globs, exclude_if_present, .. } => {
                if paths.is_empty() {
                    return Err(Error::InvalidInput("source.paths is empty".into()));
                }
                if paths.iter().any(|p| p.as_os_str().is_empty()) {
                    return Err(Error::InvalidInput("source.paths has an empty path".into()));
                }
                if paths.iter().any(|p| p.to_str().is_none()) {
                    return Err(Error::InvalidInput("source.paths must be valid UTF-8".into()));
                }
                for glob in include_globs.iter().chain(exclude_globs) {
                    if glob.trim().is_empty() || glob.starts_with('!') {
                        return Err(Error::InvalidInput(format!(
                            "source glob `{glob}` is empty or starts with `!`"
                        )));
                    }
                }
                for marker in exclude_if_present {
                    if !is_single_component(marker) {
                        return Err(Error::InvalidInput(format!(
                            "source.exclude_if_present `{marker}` must be a plain file name"
                        )));
                    }
                }
                Ok(())
            }
            Self::Command { argv, file_name } => {
                if argv.first().is_none_or(String::is_empty) {
                    return Err(Error::InvalidInput("source.argv is empty".into()));
                }
                if !is_single_component(file_name) {
                    return Err(Error::InvalidInput(format!(
                        "source.file_name `{file_name}` must be a plain file name"
                    )));
                }
                Ok(())
            }
        }
    }
}

pub(crate) fn is_single_component(name: &str) -> bool {
    let mut components = Path::new(name).components();
    matches!(components.next(), Some(Component::Normal(_))) && components.next().is_none()
}

/// Wraps a rustic source with cancellation, warnings and progress.
#[derive(Debug)]
pub(crate) struct GuardedSource<S> {
    inner: S,
    guard: Arc<Guard>,
    reporter: Reporter,
    /// Count files in the size scan (needs a second, independent `entries()` walk).
    scan: bool,
}

impl<S> GuardedSource<S> {
    pub(crate) fn new(inner: S, guard: Arc<Guard>, reporter: Reporter) -> Self {
        Self { inner, guard, reporter, scan: true }
    }

    /// For sources whose entries can be listed only once (a command's output).
    pub(crate) fn without_scan(mut self) -> Self {
        self.scan = false;
        self
    }
}

impl<S> ReadSource for GuardedSource<S>
where
    S: ReadSource,
    S::Open: Send + 'static,
{
    type Open = GuardedOpen<S::Open>;
    type Iter = GuardedIter<S::Iter>;

    /// Counts files and bytes by walking the same entries the backup will see; runs in
    /// parallel to the backup (rustic starts it) and stops early when cancelled.
    fn size(&self) -> rustic_core::RusticResult<Option<u64>> {
        if !self.scan {
            return self.inner.size();
        }
        let (mut files, mut bytes) = (0_u64, 0_u64);
        for entry in self.inner.entries() {
            if self.guard.stopped() {
                return Ok(None);
            }
            if let Ok(entry) = entry
                && !entry.node.is_dir()
            {
                files += 1;
                bytes += entry.node.meta.size;
            }
        }
        self.reporter.set_files_total(files);
        Ok(Some(bytes))
    }

    fn entries(&self) -> Self::Iter {
        GuardedIter {
            inner: self.inner.entries(),
            guard: self.guard.clone(),
            reporter: self.reporter.clone(),
        }
    }
}

/// Entry iterator that ends when the operation stops.
pub(crate) struct GuardedIter<I> {
    inner: I,
    guard: Arc<Guard>,
    reporter: Reporter,
}

impl<I, O> Iterator for GuardedIter<I>
where
    I: Iterator<Item = rustic_core::RusticResult<ReadSourceEntry<O>>>,
{
    type Item = rustic_core::RusticResult<ReadSourceEntry<GuardedOpen<O>>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.guard.stopped() {
                return None;
            }
            match self.inner.next()? {
                Err(err) => {
                    self.reporter.warn(format!("skipped unreadable entry: {}", err.display_log()));
                }
                Ok(entry) => {
                    if !entry.node.is_dir() {
                        self.reporter.add_files(1);
                    }
                    self.reporter.set_current_path(&entry.path);
                    let open = entry.open.map(|inner| GuardedOpen {
                        inner,
                        path: entry.path.clone(),
                        guard: self.guard.clone(),
                        reporter: self.reporter.clone(),
                    });
                    return Some(Ok(ReadSourceEntry { path: entry.path, node: entry.node, open }));
                }
            }
        }
    }
}

/// Opens a file lazily, reporting failures as warnings.
#[derive(Debug)]
pub(crate) struct GuardedOpen<O> {
    inner: O,
    path: PathBuf,
    guard: Arc<Guard>,
    reporter: Reporter,
}

fn stopped_error() -> Box<RusticError> {
    RusticError::new(ErrorKind::Other, "Operation stopped by Cairn.")
}

impl<O: ReadSourceOpen> ReadSourceOpen for GuardedOpen<O> {
    type Reader = GuardedReader<O::Reader>;

    fn open(self) -> rustic_core::RusticResult<Self::Reader> {
        if self.guard.stopped() {
            return Err(stopped_error());
        }
        match self.inner.open() {
            Ok(inner) => {
                Ok(GuardedReader { inner, path: self.path, guard: self.guard, reporter: self.reporter })
            }
            Err(err) => {
                self.reporter.warn(format!(
                    "skipped unreadable file {}: {}",
                    self.path.display(),
                    err.display_log()
                ));
                Err(err)
            }
        }
    }
}

/// A reader that fails once the operation stops, so large files do not delay cancellation.
pub(crate) struct GuardedReader<R> {
    inner: R,
    path: PathBuf,
    guard: Arc<Guard>,
    reporter: Reporter,
}

impl<R: Read> Read for GuardedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.guard.stopped() {
            return Err(io::Error::other("operation stopped (cancelled)"));
        }
        self.inner.read(buf).inspect_err(|err| {
            if !self.guard.stopped() {
                self.reporter.warn(format!("skipped file {}: read failed: {err}", self.path.display()));
            }
        })
    }
}

const STDERR_TAIL: usize = 4096;

/// Runs a command and exposes its standard output as one file entry. Cheap to clone: the
/// archiver needs an owned source while the backup keeps a handle to finish the process.
#[derive(Clone)]
pub(crate) struct CommandSource(Arc<Process>);

struct Process {
    path: PathBuf,
    child: Arc<Mutex<Child>>,
    stdout: Mutex<Option<ChildStdout>>,
    stderr_tail: Arc<Mutex<VecDeque<u8>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    finished: AtomicBool,
    state: Arc<Mutex<CommandState>>,
    guard: Arc<Guard>,
}

#[derive(Debug, Default)]
struct CommandState {
    /// Set once the exit status was collected.
    exit: Option<std::process::ExitStatus>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Kills the command's process group (it leads one), falling back to the child alone.
fn kill_group(child: &mut std::process::Child) {
    let group = rustix::process::Pid::from_raw(child.id() as i32);
    let killed =
        group.is_some_and(|g| rustix::process::kill_process_group(g, rustix::process::Signal::KILL).is_ok());
    if !killed {
        let _ = child.kill();
    }
}

impl CommandSource {
    /// Starts the command. `file_name` must have been validated.
    pub(crate) fn spawn(argv: &[String], file_name: &str, guard: Arc<Guard>) -> Result<Self, Error> {
        let (program, args) =
            argv.split_first().ok_or_else(|| Error::InvalidInput("source.argv is empty".into()))?;
        // Its own process group, so cancelling kills the whole pipeline (`sh -c 'a | b'`),
        // not only the shell while a grandchild keeps stdout open.
        let mut child = Command::new(program)
            .args(args)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Io(format!("cannot start command `{program}`: {e}")))?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let stderr_tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL)));
        let stderr_thread = stderr.map(|mut stderr| {
            let tail = stderr_tail.clone();
            std::thread::spawn(move || {
                let mut buf = [0_u8; 4096];
                while let Ok(n) = stderr.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let mut tail = lock(&tail);
                    tail.extend(&buf[..n]);
                    let excess = tail.len().saturating_sub(STDERR_TAIL);
                    tail.drain(..excess);
                }
            })
        });
        let child = Arc::new(Mutex::new(child));
        let state = Arc::new(Mutex::new(CommandState::default()));
        // Kills the command when the operation is cancelled, even while a read is blocked.
        let watcher = {
            let (child, state, guard) = (child.clone(), state.clone(), guard.clone());
            std::thread::spawn(move || {
                while lock(&state).exit.is_none() {
                    if guard.cancelled() {
                        let mut child = lock(&child);
                        if matches!(child.try_wait(), Ok(None)) {
                            kill_group(&mut child);
                        }
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        let mut threads = vec![watcher];
        threads.extend(stderr_thread);
        Ok(Self(Arc::new(Process {
            path: Path::new("/").join(file_name),
            child,
            stdout: Mutex::new(stdout),
            stderr_tail,
            threads: Mutex::new(threads),
            finished: AtomicBool::new(false),
            state,
            guard,
        })))
    }

    /// The snapshot path of the produced file.
    pub(crate) fn path(&self) -> &Path {
        &self.0.path
    }

    /// Waits for the command (killing it if it still runs) and returns the failure, if any.
    pub(crate) fn finish(&self) -> Option<Error> {
        self.0.finish()
    }
}

impl Process {
    fn finish(&self) -> Option<Error> {
        self.finished.store(true, Ordering::SeqCst);
        let status = {
            let mut child = lock(&self.child);
            // Still running means nobody reads its output any more: stop it.
            if matches!(child.try_wait(), Ok(None)) {
                kill_group(&mut child);
            }
            child.wait()
        };
        // Unblocks the watcher even when waiting failed.
        lock(&self.state).exit = Some(status.as_ref().map_or_else(|_| exit_unknown(), |s| *s));
        for t in std::mem::take(&mut *lock(&self.threads)) {
            let _ = t.join();
        }
        match status {
            Ok(status) if status.success() => None,
            Ok(status) => Some(command_failed(status, &self.stderr_tail)),
            Err(e) => Some(Error::Io(format!("waiting for command: {e}"))),
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if !self.finished.load(Ordering::SeqCst) {
            // Not finished normally (an earlier error): never leave the command running.
            let _ = self.finish();
        }
    }
}

#[cfg(unix)]
fn exit_unknown() -> std::process::ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    std::process::ExitStatus::from_raw(255 << 8)
}

fn command_failed(status: std::process::ExitStatus, tail: &Mutex<VecDeque<u8>>) -> Error {
    let tail: Vec<u8> = lock(tail).iter().copied().collect();
    Error::CommandFailed {
        status: status.to_string(),
        stderr_tail: String::from_utf8_lossy(&tail).trim().to_string(),
    }
}

impl ReadSource for CommandSource {
    type Open = CommandOpen;
    type Iter = std::option::IntoIter<rustic_core::RusticResult<ReadSourceEntry<CommandOpen>>>;

    fn size(&self) -> rustic_core::RusticResult<Option<u64>> {
        Ok(None)
    }

    fn entries(&self) -> Self::Iter {
        let p = &self.0;
        let stdout = lock(&p.stdout).take();
        let name = p.path.file_name().unwrap_or(OsStr::new("stdout"));
        let meta = Metadata {
            mode: Some(0o644),
            mtime: Some(rustic_core::jiff::Timestamp::now()),
            ..Metadata::default()
        };
        let node = Node::new_node(name, NodeType::File, meta);
        let open = stdout.map(|stdout| CommandOpen {
            stdout,
            child: p.child.clone(),
            state: p.state.clone(),
            tail: p.stderr_tail.clone(),
            guard: p.guard.clone(),
        });
        Some(Ok(ReadSourceEntry { path: p.path.clone(), node, open })).into_iter()
    }
}

/// The command's standard output, not yet read.
pub(crate) struct CommandOpen {
    stdout: ChildStdout,
    child: Arc<Mutex<Child>>,
    state: Arc<Mutex<CommandState>>,
    tail: Arc<Mutex<VecDeque<u8>>>,
    guard: Arc<Guard>,
}

impl ReadSourceOpen for CommandOpen {
    type Reader = CommandReader;

    fn open(self) -> rustic_core::RusticResult<Self::Reader> {
        Ok(CommandReader { open: self })
    }
}

/// Reads standard output; at end of file checks the exit status and fails the guard on error.
pub(crate) struct CommandReader {
    open: CommandOpen,
}

impl Read for CommandReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let o = &mut self.open;
        if o.guard.stopped() {
            return Err(io::Error::other("operation stopped (cancelled)"));
        }
        let n = o.stdout.read(buf)?;
        if n > 0 {
            return Ok(n);
        }
        let status = lock(&o.child).wait()?;
        lock(&o.state).exit = Some(status);
        if status.success() {
            Ok(0)
        } else {
            if !o.guard.cancelled() {
                o.guard.fail(command_failed(status, &o.tail));
            }
            Err(io::Error::other("command failed"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_sources() {
        assert!(Source::paths(["/tmp"]).validate().is_ok());
        assert!(Source::paths(Vec::<PathBuf>::new()).validate().is_err());
        let cmd = |name: &str| Source::Command { argv: vec!["true".into()], file_name: name.into() };
        assert!(cmd("db.sql").validate().is_ok());
        for bad in ["", "../x", "a/b", "/abs", "."] {
            assert!(cmd(bad).validate().is_err(), "{bad}");
        }
    }
}
