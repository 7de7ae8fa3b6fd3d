//! Shared helpers: generated source trees, tree comparison, a recording `Progress`, tools.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use cairn_engine::{Level, Phase, Progress, Store, Update};

/// Deterministic incompressible bytes (xorshift).
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn write(path: &Path, data: &[u8]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::File::create(path).unwrap().write_all(data).unwrap();
}

/// A tree with nested dirs, small/empty/large files and a relative symlink.
pub fn gen_tree(root: &Path, large_files: usize, large_size: usize) {
    for d in 0..3 {
        for s in 0..3 {
            for f in 0..5 {
                let i = d * 100 + s * 10 + f;
                let data = if i % 4 == 0 {
                    format!("text file {i}\n").repeat(i + 1).into_bytes()
                } else {
                    random_bytes(i as u64, 100 + i * 37)
                };
                write(&root.join(format!("d{d}/s{s}/f{f}.dat")), &data);
            }
        }
    }
    write(&root.join("empty.txt"), b"");
    write(&root.join("d0/empty-too"), b"");
    fs::create_dir_all(root.join("d1/empty-dir")).unwrap();
    for l in 0..large_files {
        write(&root.join(format!("large/big{l}.bin")), &random_bytes(1000 + l as u64, large_size));
    }
    std::os::unix::fs::symlink("d0/s0/f0.dat", root.join("link-to-f0")).unwrap();
}

#[derive(Debug, PartialEq, Eq)]
pub enum Entry {
    Dir,
    File(Vec<u8>),
    Link(PathBuf),
}

/// Relative path -> entry, symlinks not followed.
pub fn read_tree(root: &Path) -> BTreeMap<PathBuf, Entry> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let path = e.path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let t = fs::symlink_metadata(&path).unwrap().file_type();
            if t.is_symlink() {
                out.insert(rel, Entry::Link(fs::read_link(&path).unwrap()));
            } else if t.is_dir() {
                out.insert(rel, Entry::Dir);
                walk(root, &path, out);
            } else {
                out.insert(rel, Entry::File(fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Asserts both trees are identical (names, types, bytes, link targets).
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    let a = read_tree(expected);
    let b = read_tree(actual);
    let ka: Vec<_> = a.keys().collect();
    let kb: Vec<_> = b.keys().collect();
    assert_eq!(ka, kb, "entry names differ between {expected:?} and {actual:?}");
    for (k, v) in &a {
        assert!(b[k] == *v, "entry {k:?} differs");
    }
}

/// Where a restore of absolute source `src` lands below `dest`.
pub fn restored(dest: &Path, src: &Path) -> PathBuf {
    dest.join(src.strip_prefix("/").unwrap())
}

pub fn local_store(dir: &Path) -> Store {
    Store::local(dir, "test-password-123").create_if_missing(true)
}

/// Hook run on each update (e.g. to cancel at a given point).
pub type OnUpdate = Box<dyn Fn(&Update) + Send + Sync>;

/// A `Progress` that records everything.
#[derive(Default)]
pub struct Recorder {
    pub phases: Mutex<Vec<Phase>>,
    pub updates: Mutex<Vec<Update>>,
    pub logs: Mutex<Vec<(Level, String)>>,
    pub on_update: Option<OnUpdate>,
}

impl Progress for Recorder {
    fn phase(&self, phase: Phase) {
        self.phases.lock().unwrap().push(phase);
    }
    fn update(&self, update: &Update) {
        if let Some(f) = &self.on_update {
            f(update);
        }
        self.updates.lock().unwrap().push(update.clone());
    }
    fn log(&self, level: Level, message: &str) {
        self.logs.lock().unwrap().push((level, message.to_string()));
    }
}

impl Recorder {
    pub fn log_text(&self) -> String {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .map(|(l, m)| format!("[{}] {m}", l.as_str()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// True if `tool --version`-like probe runs; otherwise prints a skip note.
pub fn have_tool(tool: &str, probe: &[&str], test: &str) -> bool {
    let ok = Command::new(tool).args(probe).output().is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP {test}: `{tool}` not found on PATH");
    }
    ok
}

/// Total size of the files below `dir`.
pub fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = fs::symlink_metadata(e.path()).unwrap();
        total += if m.is_dir() { dir_size(&e.path()) } else { m.len() };
    }
    total
}

pub fn pack_files(repo: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in fs::read_dir(repo.join("data")).unwrap() {
        for f in fs::read_dir(sub.unwrap().path()).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out.sort();
    out
}
