//! Backup benchmark: the engine against the stock `restic` CLI on the same data, same run.
//!
//! Measures initial backup, no-change incremental backup and full restore, prints MB/s for
//! both and the engine/restic ratios. Warm page cache (the dataset is read before each step),
//! like `shared/peers/backup/bench_restic.sh`.
//!
//! Env: `DATA` (dataset directory; generated when unset), `WORK` (scratch directory; a temp
//! dir when unset), `SCALE` (fraction of the ~1 GiB / 50,000-file dataset, default 1.0),
//! `SEED` (default 42). Run: `cargo bench -p cairn-engine --bench backup`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use cairn_engine::{
    BackupOptions, CancelToken, Engine, NoProgress, Overwrite, RestoreOptions, SnapshotSel, Source, Store,
};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let x = (self.next() >> 11) as f64 / (1_u64 << 53) as f64;
        x
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(len);
        v
    }
}

/// Same shape as gen_dataset.py: log-uniform 1..64 KiB small files (60% text, 35% random,
/// 5% duplicates) in 100-file directories, plus 32 MiB random large files.
fn generate(out: &Path, scale: f64, seed: u64) -> std::io::Result<()> {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let (n_small, n_large) =
        (((50_000.0 * scale) as usize).max(100), ((10.0 * scale).round() as usize).max(1));
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let vocab: Vec<String> = (0..5000)
        .map(|_| {
            let len = 2 + rng.below(9) as usize;
            (0..len).map(|_| char::from(b'a' + rng.below(26) as u8)).collect()
        })
        .collect();
    let mut corpus = Vec::new();
    for i in 0..800_000 {
        // Zipf-like: favour low indices.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let idx = ((vocab.len() as f64).powf(rng.unit()) as usize).saturating_sub(1);
        corpus.extend_from_slice(vocab[idx.min(vocab.len() - 1)].as_bytes());
        corpus.push(if i % 15 == 14 { b'\n' } else { b' ' });
    }
    let mut written: Vec<Vec<u8>> = Vec::new();
    for i in 0..n_small {
        let dir = out.join(format!("small/d{:02}/s{:02}", i / 10_000, (i / 100) % 100));
        if i % 100 == 0 {
            fs::create_dir_all(&dir)?;
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let size = (1024.0 * (rng.unit() * 64_f64.ln()).exp()) as usize;
        let kind = rng.unit();
        let data = if kind < 0.05 && !written.is_empty() {
            written[rng.below(written.len() as u64) as usize].clone()
        } else if kind < 0.65 {
            let off = rng.below((corpus.len() - size - 1) as u64) as usize;
            let mut d = format!("file {i} seed {seed}\n").into_bytes();
            d.extend_from_slice(&corpus[off..off + size]);
            d.truncate(size);
            d
        } else {
            rng.bytes(size)
        };
        let ext = if kind < 0.65 { "txt" } else { "bin" };
        fs::write(dir.join(format!("f{i:05}.{ext}")), &data)?;
        if written.len() < 2000 {
            written.push(data);
        }
    }
    fs::create_dir_all(out.join("large"))?;
    for j in 0..n_large {
        let mut f = fs::File::create(out.join(format!("large/big{j:02}.bin")))?;
        for _ in 0..32 {
            f.write_all(&rng.bytes(1 << 20))?;
        }
    }
    Ok(())
}

fn walk(dir: &Path, f: &mut impl FnMut(&Path, &fs::Metadata)) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            walk(&path, f);
        } else {
            f(&path, &meta);
        }
    }
}

fn dataset_stats(dir: &Path) -> (u64, u64) {
    let (mut files, mut bytes) = (0, 0);
    walk(dir, &mut |_, m| {
        files += 1;
        bytes += m.len();
    });
    (files, bytes)
}

fn warm(dir: &Path) {
    walk(dir, &mut |p, _| {
        let _ = fs::read(p);
    });
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> (T, f64) {
    let start = Instant::now();
    let out = f();
    let secs = start.elapsed().as_secs_f64();
    eprintln!("  {what}: {secs:.2}s");
    (out, secs)
}

fn restic(work: &Path, args: &[&str]) -> f64 {
    let repo = work.join("restic-repo");
    let start = Instant::now();
    let out = Command::new("restic")
        .arg("-r")
        .arg(&repo)
        .args(args)
        .env("RESTIC_PASSWORD", "bench-password")
        .env("RESTIC_CACHE_DIR", work.join("restic-cache"))
        .output()
        .expect("running restic");
    let secs = start.elapsed().as_secs_f64();
    assert!(out.status.success(), "restic {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    secs
}

fn main() {
    let scale: f64 = std::env::var("SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let seed: u64 = std::env::var("SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(42);
    let tmp = tempfile::tempdir().expect("temp dir");
    let work = std::env::var_os("WORK").map_or_else(|| tmp.path().to_path_buf(), PathBuf::from);
    let data = match std::env::var_os("DATA") {
        Some(d) => PathBuf::from(d),
        None => {
            let d = work.join("data");
            if !d.exists() {
                eprintln!("generating dataset (scale {scale}) in {}", d.display());
                generate(&d, scale, seed).expect("generating dataset");
            }
            d
        }
    };
    for sub in
        ["engine-repo", "engine-cache", "engine-restore", "restic-repo", "restic-cache", "restic-restore"]
    {
        let _ = fs::remove_dir_all(work.join(sub));
    }
    let (files, bytes) = dataset_stats(&data);
    #[allow(clippy::cast_precision_loss)]
    let mb = bytes as f64 / 1e6;
    println!(
        "# dataset {} files={files} bytes={bytes} nproc={}",
        data.display(),
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    );

    let engine = Engine::with_cache_dir(work.join("engine-cache"));
    let store = Store::local(work.join("engine-repo"), "bench-password").create_if_missing(true);
    let source = Source::paths([&data]);
    let opts = BackupOptions { host: Some("bench".into()), ..BackupOptions::default() };
    let cancel = CancelToken::new();
    eprintln!("engine:");
    warm(&data);
    let (first, e_init) =
        timed("initial backup", || engine.backup(&source, &store, &opts, &NoProgress, &cancel));
    let first = first.expect("engine backup");
    warm(&data);
    let (second, e_incr) =
        timed("no-change backup", || engine.backup(&source, &store, &opts, &NoProgress, &cancel));
    let second = second.expect("engine incremental");
    assert_eq!(second.parent.as_deref(), Some(first.snapshot_id.as_str()));
    let restore_opts = RestoreOptions {
        snapshot: SnapshotSel::Id(second.snapshot_id.clone()),
        include_paths: Vec::new(),
        overwrite: Overwrite::Always,
    };
    let dest = work.join("engine-restore");
    let (restored, e_rest) =
        timed("restore", || engine.restore(&store, &restore_opts, &dest, &NoProgress, &cancel));
    restored.expect("engine restore");
    let _ = fs::remove_dir_all(&dest);

    let report = |name: &str, secs: f64| {
        println!(
            "RESULT name={name} wall_s={secs:.2} MB_per_s={:.1} files_per_s={:.0}",
            mb / secs,
            files as f64 / secs
        );
    };
    report("engine_backup_initial", e_init);
    report("engine_backup_nochange", e_incr);
    report("engine_restore", e_rest);

    let have_restic = Command::new("restic").arg("version").output().is_ok_and(|o| o.status.success());
    if !have_restic {
        println!("# restic not on PATH: no comparison");
        return;
    }
    eprintln!("restic:");
    restic(&work, &["init"]);
    let data_s = data.to_str().expect("utf-8 data path");
    warm(&data);
    let r_init = restic(&work, &["backup", "--host", "bench", data_s]);
    eprintln!("  initial backup: {r_init:.2}s");
    warm(&data);
    let r_incr = restic(&work, &["backup", "--host", "bench", data_s]);
    eprintln!("  no-change backup: {r_incr:.2}s");
    let rdest = work.join("restic-restore");
    let r_rest = restic(&work, &["restore", "latest", "--target", rdest.to_str().expect("utf-8")]);
    eprintln!("  restore: {r_rest:.2}s");
    let _ = fs::remove_dir_all(&rdest);
    report("restic_backup_initial", r_init);
    report("restic_backup_nochange", r_incr);
    report("restic_restore", r_rest);
    println!(
        "RATIO engine_vs_restic initial={:.2}x nochange={:.2}x restore={:.2}x (speed; >1 = engine faster)",
        r_init / e_init,
        r_incr / e_incr,
        r_rest / e_rest
    );
}
