//! Next-fire throughput: Cairn (calendar and cron forms) against croner 4 on equivalent cron
//! expressions, in UTC and in Europe/Berlin. Run with `cargo bench -p cairn-schedule`; it
//! prints ns per next-fire computation, computations per second, and the ratio to croner.
//! A benchmark, not a test: it asserts nothing about speed.

use std::hint::black_box;
use std::str::FromStr;
use std::time::{Duration, Instant};

use cairn_schedule::{Recurrence, Schedule};
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;

/// (calendar event, equivalent cron expression)
const MIX: [(&str, &str); 10] = [
    ("*-*-* 02:00:00", "0 2 * * *"),
    ("*:0/15", "*/15 * * * *"),
    ("Mon..Fri 18:30", "30 18 * * 1-5"),
    ("*-*-01 03:00", "0 3 1 * *"),
    ("Sun 00:00", "0 0 * * 0"),
    ("Mon..Fri 09..17/2:00", "0 9-17/2 * * 1-5"),
    ("yearly", "0 0 1 1 *"),
    ("*-02-29 04:00", "0 4 29 2 *"),
    ("*-*-* 00,12:30", "30 0,12 * * *"),
    ("hourly", "0 * * * *"),
];

/// Base instants spread over 2024–2026 (a fixed LCG, so every run measures the same work).
fn bases(n: usize) -> Vec<DateTime<Utc>> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let secs = 1_704_067_200 + (x >> 33) as i64 % (3 * 365 * 86_400);
            Utc.timestamp_opt(secs, 0).single().expect("base")
        })
        .collect()
}

/// Runs `f` over every base until at least `budget` has passed; returns ns per call.
fn measure(bases: &[DateTime<Utc>], budget: Duration, mut f: impl FnMut(DateTime<Utc>) -> i64) -> f64 {
    let mut calls = 0u64;
    let mut sink = 0i64;
    let start = Instant::now();
    while start.elapsed() < budget {
        for &b in bases {
            sink = sink.wrapping_add(f(black_box(b)));
        }
        calls += bases.len() as u64;
    }
    black_box(sink);
    start.elapsed().as_nanos() as f64 / calls as f64
}

fn main() {
    let bases = bases(2_000);
    let budget = Duration::from_millis(
        std::env::var("CAIRN_BENCH_MS").ok().and_then(|s| s.parse().ok()).unwrap_or(300),
    );
    println!(
        "{:<24} {:<18} {:>10} {:>10} {:>10} {:>8}",
        "calendar", "zone", "cal ns", "cron ns", "croner ns", "croner/cal"
    );
    let mut totals = [0f64; 3];
    let mut rows = 0f64;
    for tz in [Tz::UTC, chrono_tz::Europe::Berlin] {
        for (cal, cron) in MIX {
            let calendar =
                Schedule::new(Recurrence::calendar(cal).expect("calendar"), tz, None).expect("schedule");
            let cairn_cron =
                Schedule::new(Recurrence::cron(cron).expect("cron"), tz, None).expect("schedule");
            let croner = Cron::from_str(cron).expect("croner parses");
            // Same answers first, so the race is fair.
            for &b in bases.iter().take(200) {
                let ours = calendar.next_after(b);
                let theirs = croner
                    .find_next_occurrence(&b.with_timezone(&tz), false)
                    .ok()
                    .map(|t| t.with_timezone(&Utc));
                assert_eq!(ours, theirs, "{cal} vs croner {cron} after {b}");
                assert_eq!(cairn_cron.next_after(b), ours, "{cal} vs cron {cron}");
            }
            let cal_ns = measure(&bases, budget, |b| calendar.next_after(b).map_or(0, |t| t.timestamp()));
            let cron_ns = measure(&bases, budget, |b| cairn_cron.next_after(b).map_or(0, |t| t.timestamp()));
            let croner_ns = measure(&bases, budget, |b| {
                croner.find_next_occurrence(&b.with_timezone(&tz), false).map_or(0, |t| t.timestamp())
            });
            println!(
                "{:<24} {:<18} {:>10.0} {:>10.0} {:>10.0} {:>8.1}x",
                cal,
                tz.name(),
                cal_ns,
                cron_ns,
                croner_ns,
                croner_ns / cal_ns
            );
            totals[0] += cal_ns;
            totals[1] += cron_ns;
            totals[2] += croner_ns;
            rows += 1.0;
        }
    }
    let [cal, cron, croner] = totals.map(|t| t / rows);
    println!();
    println!(
        "mean: Cairn calendar {cal:.0} ns ({:.2} M/s), Cairn cron {cron:.0} ns ({:.2} M/s), \
         croner {croner:.0} ns ({:.2} M/s)",
        1e3 / cal,
        1e3 / cron,
        1e3 / croner
    );
    println!("ratio: croner/Cairn calendar {:.1}x, croner/Cairn cron {:.1}x", croner / cal, croner / cron);
}
