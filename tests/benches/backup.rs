//! Backup benchmark: one dataset backed up through the whole Cairn stack (RunTask → SUCCEEDED,
//! observed with WatchJob), by the engine called directly, and by the stock `restic` CLI, in the
//! same run. Initial backup, no-change incremental and full restore: MB/s for each, Cairn/restic
//! speed ratios, and Cairn's control-plane overhead over the engine.
//!
//! Warm page cache (the dataset is read before each step), like
//! `shared/peers/backup/bench_restic.sh`. The stack runs in this process: catalog, scheduler and
//! one worker on a fresh database (`DATABASE_URL` or a throwaway cluster).
//!
//! Contenders: `engine` (the engine called directly with Cairn's archiver), `rustic` (the
//! engine with rustic_core's archiver), `cairn` (the whole stack; its worker's default
//! archiver) and `restic` (the CLI). Each runs in the given order and then in the reverse
//! order, on two datasets: `mixed` (60 % text-like, 35 % random small files and 32 MiB random
//! files) and `text` (everything text-like, so compression matters). For every step it prints
//! wall time, MB/s and CPU time per byte (this process's CPU for in-process contenders, the
//! child's for restic).
//!
//! Env: `DATA` (a dataset directory instead of the generated ones), `WORK` (scratch directory;
//! a temp dir when unset), `SCALE` (fraction of the ~1 GiB / 50,000-file dataset, default
//! 1.0), `SEED` (default 42), `ORDER` (contenders in running order, default
//! `engine,rustic,cairn,restic`), `DATASETS` (default `mixed,text`), `REVERSE=0` (one order).
//! Run: `cargo bench -p cairn-tests --bench backup`.

#[path = "../journeys/harness.rs"]
mod harness;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cairn_api::v1::{
    Connector, JobState, LocalPathDestination, LocalStore, Task, TaskType, WatchJobRequest,
    connector::Config as Cfg, watch_job_event::Event,
};
use cairn_engine::{
    Archiver, BackupOptions, CancelToken, Engine, NoProgress, Overwrite, RestoreOptions, SnapshotSel, Source,
    Store,
};

const PASSWORD: &str = "bench-password";

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
/// 5% duplicates) in 100-file directories, plus 32 MiB random large files. The `text`
/// variant makes every file text-like (95% text, 5% duplicates), the large ones too.
fn generate(out: &Path, scale: f64, seed: u64, text: bool) -> std::io::Result<()> {
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
        let kind = if text { rng.unit().min(0.6) } else { rng.unit() };
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
            if text {
                // 1 MiB of the corpus from a random place: compresses like logs or dumps.
                let off = rng.below((corpus.len() - (1 << 20) - 1) as u64) as usize;
                f.write_all(&corpus[off..off + (1 << 20)])?;
            } else {
                f.write_all(&rng.bytes(1 << 20))?;
            }
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

/// Before each step: the dataset in the page cache, earlier steps' writes on disk.
fn warm(dir: &Path) {
    walk(dir, &mut |p, _| {
        let _ = fs::read(p);
    });
    let _ = Command::new("sync").status();
}

/// Wall seconds and CPU seconds of one step.
#[derive(Clone, Copy, Default)]
struct Step {
    wall: f64,
    cpu: f64,
}

/// The three steps of a contender.
#[derive(Clone, Copy, Default)]
struct Steps {
    initial: Step,
    nochange: Step,
    restore: Step,
}

/// CPU seconds of this process and of its waited-for children, from /proc/self/stat.
fn cpu_now() -> (f64, f64) {
    let stat = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().map(|f| f.parse().unwrap_or(0.0)).collect())
        .unwrap_or_default();
    // utime, stime, cutime, cstime are fields 14..17 of proc(5): 11..14 after the command.
    let at = |i: usize| fields.get(i).copied().unwrap_or(0.0) / 100.0;
    (at(11) + at(12), at(13) + at(14))
}

/// Runs `f`, timing wall clock and CPU (this process's, or its children's for `children`).
fn measured<T>(what: &str, children: bool, f: impl FnOnce() -> T) -> (T, Step) {
    let (self0, kids0) = cpu_now();
    let start = Instant::now();
    let out = f();
    let wall = start.elapsed().as_secs_f64();
    let (self1, kids1) = cpu_now();
    let cpu = if children { kids1 - kids0 } else { self1 - self0 };
    eprintln!("  {what}: {wall:.2}s wall, {cpu:.2}s CPU");
    (out, Step { wall, cpu })
}

fn engine(work: &Path, data: &Path, archiver: Archiver) -> Steps {
    let name = format!("engine-{}", archiver.as_str());
    eprintln!("engine called directly, {} archiver:", archiver.as_str());
    let engine = Engine::with_cache_dir(work.join(format!("{name}-cache"))).with_archiver(archiver);
    let store = Store::local(work.join(format!("{name}-repo")), PASSWORD).create_if_missing(true);
    let source = Source::paths([data]);
    let opts = BackupOptions { host: Some("bench".into()), ..BackupOptions::default() };
    let cancel = CancelToken::new();
    warm(data);
    let (first, initial) =
        measured("initial backup", false, || engine.backup(&source, &store, &opts, &NoProgress, &cancel));
    let first = first.expect("engine backup");
    warm(data);
    let (second, nochange) =
        measured("no-change backup", false, || engine.backup(&source, &store, &opts, &NoProgress, &cancel));
    let second = second.expect("engine incremental");
    assert_eq!(second.parent.as_deref(), Some(first.snapshot_id.as_str()));
    let restore_opts = RestoreOptions {
        snapshot: SnapshotSel::Id(second.snapshot_id.clone()),
        include_paths: Vec::new(),
        // What a restore task does by default.
        overwrite: Overwrite::IfChanged,
    };
    let dest = work.join(format!("{name}-restore"));
    warm(data);
    let (restored, restore) =
        measured("restore", false, || engine.restore(&store, &restore_opts, &dest, &NoProgress, &cancel));
    restored.expect("engine restore");
    let _ = fs::remove_dir_all(&dest);
    Steps { initial, nochange, restore }
}

/// Runs a task and follows it with WatchJob until it ends: wall time from RunTask to
/// SUCCEEDED, and the part of it outside the worker's attempt (queued until leased, and from
/// the worker's completion until the watcher saw it).
async fn run_task(s: &mut harness::Stack, task: &str, what: &str) -> (Step, f64) {
    let (cpu0, _) = cpu_now();
    let start = Instant::now();
    let job = s.run(task).await;
    let mut events = s
        .jobs
        .watch_job(WatchJobRequest { name: job.name.clone(), from_seq: -1 })
        .await
        .expect("WatchJob")
        .into_inner();
    let mut last = job;
    while !matches!(
        last.state(),
        JobState::Succeeded | JobState::Failed | JobState::Cancelled | JobState::Skipped
    ) {
        match events.message().await.expect("WatchJob stream") {
            Some(ev) => {
                if let Some(Event::Job(j)) = ev.event {
                    last = j;
                }
            }
            None => break,
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_now().0 - cpu0;
    let done = s.job(&last.name).await;
    assert_eq!(done.state(), JobState::Succeeded, "{task}: {}\n{}", done.error, harness::log_text(&done));
    #[allow(clippy::cast_precision_loss)]
    let secs = |seconds: i64, nanos: i32| seconds as f64 + f64::from(nanos) / 1e9;
    let at = |t: Option<&prost_types::Timestamp>| t.map_or(0.0, |t| secs(t.seconds, t.nanos));
    let engine = done.stats.as_ref().and_then(|st| st.duration).map_or(0.0, |d| secs(d.seconds, d.nanos));
    let (created, started, ended) =
        (at(done.create_time.as_ref()), at(done.start_time.as_ref()), at(done.end_time.as_ref()));
    eprintln!(
        "  {what}: {wall:.2}s = queued {:.3}s + running {:.3}s (engine summary {engine:.3}s) + rest {:.3}s; {cpu:.2}s CPU",
        started - created,
        ended - started,
        wall - (ended - created)
    );
    (Step { wall, cpu }, wall - (ended - started))
}

async fn cairn(work: &Path, data: &Path) -> Steps {
    eprintln!("cairn (RunTask -> SUCCEEDED through catalog, scheduler and a worker):");
    let mut s = harness::stack().await;
    let config =
        cairn_worker::Config { cache_dir: Some(work.join("cairn-cache")), ..s.worker_config("bench") };
    s.worker_with(config);
    s.path_source("data", data).await;
    s.connector(Connector {
        display_name: "repo".into(),
        config: Some(Cfg::LocalStore(LocalStore { path: work.join("cairn-repo").display().to_string() })),
        repository_password: PASSWORD.into(),
        create_if_missing: true,
        ..Default::default()
    })
    .await;
    let dest = work.join("cairn-restore");
    fs::create_dir_all(&dest).expect("restore directory");
    s.connector(Connector {
        display_name: "restore-here".into(),
        config: Some(Cfg::LocalPathDestination(LocalPathDestination { path: dest.display().to_string() })),
        ..Default::default()
    })
    .await;
    for (name, kind) in [("backup", TaskType::Backup), ("restore", TaskType::Restore)] {
        let backup = kind == TaskType::Backup;
        s.task(Task {
            display_name: name.into(),
            r#type: kind as i32,
            source: if backup { "data".into() } else { String::new() },
            destination: if backup { String::new() } else { "restore-here".into() },
            store: "repo".into(),
            ..Default::default()
        })
        .await;
    }
    warm(data);
    let (initial, p1) = run_task(&mut s, "backup", "initial backup").await;
    warm(data);
    let (nochange, p2) = run_task(&mut s, "backup", "no-change backup").await;
    warm(data);
    let (restore, p3) = run_task(&mut s, "restore", "restore").await;
    let _ = fs::remove_dir_all(&dest);
    println!(
        "CONTROL_PLANE initial_ms={:.1} nochange_ms={:.1} restore_ms={:.1} (RunTask until leased, plus completion until WatchJob saw it)",
        p1 * 1e3,
        p2 * 1e3,
        p3 * 1e3
    );
    Steps { initial, nochange, restore }
}

fn restic(work: &Path, what: &str, args: &[&str]) -> Step {
    let (out, step) = measured(what, true, || {
        Command::new("restic")
            .arg("-r")
            .arg(work.join("restic-repo"))
            .args(args)
            .env("RESTIC_PASSWORD", PASSWORD)
            .env("RESTIC_CACHE_DIR", work.join("restic-cache"))
            .output()
            .expect("running restic")
    });
    assert!(out.status.success(), "restic {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    step
}

fn restic_steps(work: &Path, data: &Path) -> Steps {
    eprintln!("restic CLI:");
    restic(work, "init", &["init"]);
    let data_s = data.to_str().expect("utf-8 data path");
    warm(data);
    let initial = restic(work, "initial backup", &["backup", "--host", "bench", data_s]);
    warm(data);
    let nochange = restic(work, "no-change backup", &["backup", "--host", "bench", data_s]);
    let dest = work.join("restic-restore");
    warm(data);
    let restore = restic(work, "restore", &["restore", "latest", "--target", dest.to_str().expect("utf-8")]);
    let _ = fs::remove_dir_all(&dest);
    Steps { initial, nochange, restore }
}

fn main() {
    let scale: f64 = std::env::var("SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let seed: u64 = std::env::var("SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(42);
    let tmp = tempfile::tempdir().expect("temp dir");
    let work = std::env::var_os("WORK").map_or_else(|| tmp.path().to_path_buf(), PathBuf::from);
    let datasets: Vec<(String, PathBuf)> = match std::env::var_os("DATA") {
        Some(d) => vec![("given".into(), PathBuf::from(d))],
        None => std::env::var("DATASETS")
            .unwrap_or_else(|_| "mixed,text".into())
            .split(',')
            .map(|variant| {
                let variant = variant.trim().to_owned();
                assert!(
                    variant == "mixed" || variant == "text",
                    "DATASETS: {variant:?} is not mixed or text"
                );
                let d = work.join(format!("data-{variant}"));
                if !d.exists() {
                    eprintln!("generating the {variant} dataset (scale {scale}) in {}", d.display());
                    generate(&d, scale, seed, variant == "text").expect("generating dataset");
                }
                (variant, d)
            })
            .collect(),
    };
    let order: Vec<String> = std::env::var("ORDER")
        .unwrap_or_else(|_| "engine,rustic,cairn,restic".into())
        .split(',')
        .map(|s| s.trim().to_owned())
        .collect();
    let reverse = std::env::var("REVERSE").map_or(true, |v| v != "0");
    let have_restic = Command::new("restic").arg("version").output().is_ok_and(|o| o.status.success());
    println!("# nproc={}", std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
    for (variant, data) in &datasets {
        let (files, bytes) = dataset_stats(data);
        #[allow(clippy::cast_precision_loss)]
        let (mb, files_f) = (bytes as f64 / 1e6, files as f64);
        println!("# dataset {variant}: {} files={files} bytes={bytes}", data.display());
        let mut orders = vec![order.clone()];
        if reverse {
            orders.push(order.iter().rev().cloned().collect());
        }
        for (round, order) in orders.iter().enumerate() {
            println!("# order {}", order.join(","));
            let mut results: Vec<(String, Steps)> = Vec::new();
            for who in order {
                for sub in ["engine-cairn", "engine-rustic", "cairn", "restic"] {
                    for what in ["repo", "cache", "restore"] {
                        let _ = fs::remove_dir_all(work.join(format!("{sub}-{what}")));
                    }
                }
                let steps = match who.as_str() {
                    "engine" => engine(&work, data, Archiver::Cairn),
                    "rustic" => engine(&work, data, Archiver::Rustic),
                    "cairn" => {
                        let rt = tokio::runtime::Builder::new_multi_thread()
                            .enable_all()
                            .build()
                            .expect("tokio runtime");
                        let steps = rt.block_on(cairn(&work, data));
                        rt.shutdown_timeout(Duration::from_secs(5));
                        steps
                    }
                    "restic" if have_restic => restic_steps(&work, data),
                    "restic" => {
                        println!("# restic not on PATH: no comparison");
                        continue;
                    }
                    other => panic!("ORDER: unknown contender {other:?} (engine, rustic, cairn, restic)"),
                };
                results.push((who.clone(), steps));
            }
            for (name, steps) in &results {
                for (step, m) in [
                    ("backup_initial", steps.initial),
                    ("backup_nochange", steps.nochange),
                    ("restore", steps.restore),
                ] {
                    println!(
                        "RESULT dataset={variant} round={round} name={name}_{step} wall_s={:.2} MB_per_s={:.1} \
                         files_per_s={:.0} cpu_s={:.2} cpu_ns_per_byte={:.2}",
                        m.wall,
                        mb / m.wall,
                        files_f / m.wall,
                        m.cpu,
                        m.cpu * 1e9 / bytes.max(1) as f64
                    );
                }
            }
            let find = |n: &str| results.iter().find(|(name, _)| name == n).map(|(_, s)| *s);
            if let (Some(c), Some(e)) = (find("cairn"), find("engine")) {
                let overhead = |c: Step, e: Step| (c.wall / e.wall - 1.0) * 100.0;
                println!(
                    "OVERHEAD dataset={variant} round={round} cairn_vs_engine initial={:+.1}% nochange={:+.1}% \
                     restore={:+.1}% (wall time; target <= 5%)",
                    overhead(c.initial, e.initial),
                    overhead(c.nochange, e.nochange),
                    overhead(c.restore, e.restore)
                );
            }
            let Some(stock) = find("restic") else { continue };
            for name in ["engine", "rustic", "cairn"] {
                let Some(ours) = find(name) else { continue };
                println!(
                    "RATIO dataset={variant} round={round} {name}_vs_restic initial={:.2}x nochange={:.2}x \
                     restore={:.2}x (speed; >1 = faster than restic)",
                    stock.initial.wall / ours.initial.wall,
                    stock.nochange.wall / ours.nochange.wall,
                    stock.restore.wall / ours.restore.wall
                );
            }
        }
    }
}
