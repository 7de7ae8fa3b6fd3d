//! TEST_CONNECTION: quick, side-effect-light probes of a store, a source or a destination.
//!
//! A probe never fails with an error: it returns a [`Verdict`] whose booleans say how far it
//! got and whose message says why it stopped (without secrets). The store probe initialises
//! the repository when `create_if_missing` is set, and checks writability by adding and
//! removing an extra key for the same password (the only repository file that is harmless
//! even if its removal fails).

use std::fs;
use std::path::Path;

use rustic_core::KeyOptions;

use crate::cancel::{CancelToken, Guard};
use crate::progress::{NoProgress, Reporter};
use crate::store::{OpenOptions, open};
use crate::{Engine, Error, Source, Store};

/// The result of a connection test.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The store, source or destination was reached at all.
    pub reachable: bool,
    /// Stores: a repository exists (or was just created). Others: always false.
    pub initialized: bool,
    /// Data can be read (stores: the password opens the repository).
    pub readable: bool,
    /// Data can be written.
    pub writable: bool,
    /// What was found, for operators.
    pub message: String,
}

impl Verdict {
    fn fail(mut self, err: &Error) -> Self {
        self.message = err.to_string();
        self
    }
}

impl Engine {
    /// Probes a store: reachable, initialised (initialising it when allowed), readable with
    /// the password, writable.
    #[must_use]
    pub fn test_store(&self, store: &Store) -> Verdict {
        let mut v = Verdict::default();
        let backend = match store.backend() {
            Ok(b) => b,
            Err(e) => return v.fail(&e),
        };
        if let Err(e) = backend.list(rustic_core::FileType::Config) {
            return v.fail(&store.redactor().rustic(&e));
        }
        v.reachable = true;
        Reporter::run(&NoProgress, |reporter| {
            let opened = match open(
                store,
                &OpenOptions {
                    engine: self,
                    guard: Guard::new(&CancelToken::new()),
                    reporter,
                    fail_reads: false,
                    allow_create: true,
                },
            ) {
                Ok(o) => o,
                Err(e @ Error::WrongPassword) => {
                    v.initialized = true;
                    return v.fail(&e);
                }
                Err(e) => return v.fail(&e),
            };
            v.initialized = true;
            let snapshots = match opened.repo.get_all_snapshots() {
                Ok(s) => s.len(),
                Err(e) => return v.fail(&opened.redactor.rustic(&e)),
            };
            v.readable = true;
            let probe = opened
                .repo
                .add_key(&store.password, &KeyOptions::default())
                .and_then(|id| opened.repo.delete_key(&id));
            if let Err(e) = probe {
                return v.fail(&opened.redactor.rustic(&e));
            }
            v.writable = true;
            v.message = format!(
                "{} repository at {}, {snapshots} snapshot(s), readable and writable",
                if opened.created { "created" } else { "found" },
                store.describe()
            );
            v
        })
    }

    /// Probes a source: local paths exist and are readable; a command's program is found.
    /// The command itself is not run.
    #[must_use]
    pub fn test_source(&self, source: &Source) -> Verdict {
        let mut v = Verdict::default();
        if let Err(e) = source.validate() {
            return v.fail(&e);
        }
        match source {
            Source::LocalPath { paths, .. } => {
                for path in paths {
                    let meta = match fs::metadata(path) {
                        Ok(m) => m,
                        Err(e) => {
                            v.message = format!("{}: {e}", path.display());
                            return v;
                        }
                    };
                    v.reachable = true;
                    let readable = if meta.is_dir() {
                        fs::read_dir(path).map(|_| ())
                    } else {
                        fs::File::open(path).map(|_| ())
                    };
                    if let Err(e) = readable {
                        v.readable = false;
                        v.message = format!("{}: {e}", path.display());
                        return v;
                    }
                }
                v.reachable = true;
                v.readable = true;
                v.message = format!("{} path(s) readable", paths.len());
            }
            Source::Command { argv, .. } => {
                let program = argv.first().map_or("", String::as_str);
                match find_program(program) {
                    Some(found) => {
                        v.reachable = true;
                        v.readable = true;
                        v.message = format!("command found at {}", found.display());
                    }
                    None => v.message = format!("command `{program}` not found or not executable"),
                }
            }
        }
        v
    }

    /// Probes a restore destination: the directory exists or can be created, and is writable.
    #[must_use]
    pub fn test_destination(&self, path: &Path) -> Verdict {
        let mut v = Verdict::default();
        if path.as_os_str().is_empty() {
            v.message = "destination path is empty".into();
            return v;
        }
        if let Err(e) = fs::create_dir_all(path) {
            v.message = format!("{}: {e}", path.display());
            return v;
        }
        if !path.is_dir() {
            v.message = format!("{} is not a directory", path.display());
            return v;
        }
        v.reachable = true;
        v.readable = fs::read_dir(path).is_ok();
        let probe = path.join(format!(".cairn-probe-{}", std::process::id()));
        match fs::write(&probe, b"probe").and_then(|()| fs::remove_file(&probe)) {
            Ok(()) => {
                v.writable = true;
                v.message = format!("{} is a writable directory", path.display());
            }
            Err(e) => v.message = format!("{} is not writable: {e}", path.display()),
        }
        v
    }
}

fn find_program(program: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable =
        |p: &Path| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if program.contains('/') {
        let p = Path::new(program);
        return executable(p).then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| executable(candidate))
}
