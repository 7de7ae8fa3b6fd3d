//! Differential test against the real `systemd-analyze calendar` when systemd 252 is installed.
//!
//! Fresh expressions each run of the generator below (seeded, so failures reproduce; set
//! `CAIRN_SYSTEMD_LIVE_SEED` and `CAIRN_SYSTEMD_LIVE_N` to explore): random grammar-shaped
//! expressions and single-character mutations of known ones, from random bases, in UTC and
//! in DST zones. Acceptance, the normalised form and the next five fire times must agree —
//! except fire times past a DST change (Cairn's rule differs on purpose) and #40260 cases,
//! which must then match systemd 252's exact walk. Without systemd 252 the test prints a note
//! and passes.

use std::process::Command;

use cairn_schedule::{CalendarEvent, Recurrence, Schedule, compat, parse_time_zone};
use chrono::{DateTime, Duration, NaiveDateTime, SubsecRound, TimeZone, Utc};
use chrono_tz::Tz;

const ITERATIONS: usize = 5;

/// xorshift64*: tiny, seeded, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const NAMES: [&str; 14] = [
    "Mon",
    "Tue",
    "Wed",
    "Thu",
    "Fri",
    "Sat",
    "Sun",
    "Monday",
    "friday",
    "SUNDAY",
    "sat",
    "Wednesday",
    "thu",
    "TUE",
];

fn value(r: &mut Rng, lo: i64, hi: i64, usec: bool) -> String {
    let v = if r.chance(0.9) { r.range(lo, hi + 1) } else { r.range(0, hi + 30) };
    let mut s = if r.chance(0.3) { format!("{v:02}") } else { v.to_string() };
    if usec && r.chance(0.25) {
        let digits = r.range(1, 7) as usize;
        let frac = r.range(0, 9_999_999).to_string();
        s.push('.');
        s.push_str(&frac[..digits.min(frac.len())]);
    }
    s
}

fn component(r: &mut Rng, lo: i64, hi: i64, usec: bool) -> String {
    let span = (hi - lo).max(1);
    match r.below(10) {
        0..=4 => value(r, lo, hi, usec),
        5 | 6 => format!("{}..{}", value(r, lo, hi, usec), value(r, lo, hi, usec)),
        7 | 8 => format!("{}/{}", value(r, lo, hi, usec), r.range(1, span / 2 + 3)),
        _ => format!("{}..{}/{}", value(r, lo, hi, usec), value(r, lo, hi, usec), r.range(1, span / 3 + 2)),
    }
}

fn chain(r: &mut Rng, lo: i64, hi: i64, usec: bool, star: f64) -> String {
    if r.chance(star) {
        return "*".into();
    }
    let n = [1, 1, 1, 2, 3][r.below(5) as usize];
    (0..n).map(|_| component(r, lo, hi, usec)).collect::<Vec<_>>().join(",")
}

fn random_expr(r: &mut Rng) -> String {
    let mut parts: Vec<String> = Vec::new();
    if r.chance(0.3) {
        let mut items = Vec::new();
        for _ in 0..r.range(1, 2) {
            let a = r.pick(&NAMES);
            if r.chance(0.4) {
                let sep = r.pick(&["..", "..", "-"]);
                items.push(format!("{a}{sep}{}", r.pick(&NAMES)));
            } else {
                items.push(a.to_owned());
            }
        }
        parts.push(items.join(","));
    }
    if r.chance(0.6) {
        let day = chain(r, 1, 31, false, 0.4);
        let month = chain(r, 1, 12, false, 0.5);
        let sep = if r.chance(0.2) { "~" } else { "-" };
        if r.chance(0.5) {
            let year =
                if r.chance(0.3) { chain(r, 20, 35, false, 0.0) } else { chain(r, 2023, 2030, false, 0.6) };
            parts.push(format!("{year}-{month}{sep}{day}"));
        } else {
            parts.push(format!("{month}{sep}{day}"));
        }
    }
    if r.chance(0.85) || parts.is_empty() {
        let hour = chain(r, 0, 23, false, 0.3);
        let minute = chain(r, 0, 59, false, 0.3);
        if r.chance(0.35) {
            parts.push(format!("{hour}:{minute}:{}", chain(r, 0, 59, true, 0.3)));
        } else {
            parts.push(format!("{hour}:{minute}"));
        }
    }
    let mut expr = parts.join(" ");
    if r.chance(0.1) {
        expr.push(' ');
        expr.push_str(r.pick(&["UTC", "utc", "Europe/Berlin", "Asia/Kolkata", "Nowhere/Zone"]));
    }
    expr
}

const SEEDS: [&str; 12] = [
    "Mon..Fri 18:00",
    "*-*~01 23:00",
    "*-*-1/11 23:00",
    "*:0/15",
    "Sat,Sun *-*-* 04:30:00",
    "2024-02-29 12:00",
    "*:*:0/0.5",
    "@1700000000",
    "quarterly",
    "Mon *-05~07/1",
    "8..17/2:00",
    "12:00 Europe/Berlin",
];

/// One random edit: insert, delete or replace a character with a grammar-relevant one.
fn mutate(r: &mut Rng, s: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789*-~:.,/ @MonSuUTC";
    let mut b = s.as_bytes().to_vec();
    let at = r.below(b.len() as u64 + 1) as usize;
    let c = ALPHABET[r.below(ALPHABET.len() as u64) as usize];
    match r.below(3) {
        0 => b.insert(at, c),
        1 if at < b.len() => {
            b.remove(at);
        }
        _ if at < b.len() => b[at] = c,
        _ => b.push(c),
    }
    String::from_utf8_lossy(&b).into_owned()
}

struct Systemd {
    normalized: String,
    next: Vec<DateTime<Utc>>,
}

/// `None` when systemd rejects the expression (or gives up on it).
fn systemd(expr: &str, tz: &str, after: DateTime<Utc>) -> Option<Systemd> {
    let base = after.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    let out = Command::new("systemd-analyze")
        .args(["calendar", &format!("--iterations={ITERATIONS}")])
        .arg(format!("--base-time={base}"))
        .args(["--", expr])
        .env("TZ", tz)
        .env("LC_ALL", "C")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut normalized = String::new();
    let mut next = Vec::new();
    let mut pending: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if let Some(n) = line.strip_prefix("Normalized form: ") {
            normalized = n.to_owned();
        } else if line.starts_with("Next elapse: ") || line.starts_with("Iter. #") {
            let value = line.split_once(": ").map(|x| x.1).unwrap_or_default();
            if value == "never" {
                continue;
            }
            next.extend(pending.replace(value.to_owned()));
        } else if let Some(v) = line.strip_prefix("(in UTC): ") {
            pending = Some(v.to_owned());
        }
    }
    next.extend(pending);
    let next = next
        .iter()
        .map(|t| {
            // "Tue 2024-01-30 12:00:00 UTC"
            let fields: Vec<&str> = t.split(' ').collect();
            assert_eq!(fields.get(3), Some(&"UTC"), "unexpected time {t:?}");
            let naive =
                NaiveDateTime::parse_from_str(&format!("{} {}", fields[1], fields[2]), "%Y-%m-%d %H:%M:%S")
                    .expect("systemd time");
            naive.and_utc()
        })
        .collect();
    Some(Systemd { normalized, next })
}

fn systemd_252() -> bool {
    match Command::new("systemd-analyze").arg("--version").output() {
        Ok(out) if String::from_utf8_lossy(&out.stdout).starts_with("systemd 252 ") => true,
        Ok(out) => {
            println!(
                "note: skipping live systemd comparison, need systemd 252, found {:?}",
                String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or("")
            );
            false
        }
        Err(e) => {
            println!("note: skipping live systemd comparison, no systemd-analyze ({e})");
            false
        }
    }
}

/// 3 h before the first offset change of `tz` in `(after, until]`, found in 30-minute steps.
fn cut(tz: Tz, after: DateTime<Utc>, until: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let offset = |t: DateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc());
    let mut t = after;
    while t <= until {
        let next = t + Duration::minutes(30);
        if offset(next) != offset(t) {
            return Some(t - Duration::hours(3));
        }
        t = next;
    }
    None
}

/// Whether `tz` changes its UTC offset within `days` after `from` (30-minute steps).
///
/// systemd normalises intermediate candidates with `mktime` and carries their DST flag back,
/// so near a change (up to a month ahead: a day or month carry can cross it) its answers
/// shift by the DST delta even before the change. Cairn does not; such differences are
/// counted, not failed.
fn offset_changes_within(tz: Tz, from: DateTime<Utc>, days: i64) -> bool {
    let offset = |t: DateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc());
    let first = offset(from);
    let mut t = from;
    while t <= from + Duration::days(days) {
        if offset(t) != first {
            return true;
        }
        t += Duration::minutes(30);
    }
    false
}

#[test]
fn agrees_with_live_systemd_analyze() {
    if !systemd_252() {
        return;
    }
    let seed: u64 =
        std::env::var("CAIRN_SYSTEMD_LIVE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_cafe);
    let n: usize = std::env::var("CAIRN_SYSTEMD_LIVE_N").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    let mut r = Rng(seed | 1);
    let zones = ["UTC", "UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"];
    let mut failures = Vec::new();
    let (mut accepted, mut rejected, mut bug_40260, mut dst_artifacts) = (0, 0, 0, 0);
    for i in 0..n {
        let expr = if i % 3 == 2 {
            let seed_expr = r.pick(&SEEDS);
            mutate(&mut r, seed_expr)
        } else {
            random_expr(&mut r)
        };
        let zone = r.pick(&zones);
        let tz = parse_time_zone(zone).expect("zone");
        // Bases between 2023 and 2027, on whole seconds.
        let after = Utc.timestamp_opt(r.range(1_672_531_200, 1_798_761_600), 0).single().expect("base");
        let ours = CalendarEvent::parse(&expr);
        let theirs = systemd(&expr, zone, after);
        match (&ours, &theirs) {
            (Err(_), None) => rejected += 1,
            (Ok(c), None) => {
                // systemd may also give up computing across a DST change ("Infinite loop").
                let again = systemd(&expr, "UTC", after);
                if again.is_none() {
                    failures.push(format!("{expr:?}: Cairn accepts ({}), systemd rejects", c.normalized()));
                }
            }
            (Err(e), Some(_)) => failures.push(format!("{expr:?}: systemd accepts, Cairn rejects: {e}")),
            (Ok(event), Some(s)) => {
                accepted += 1;
                if event.normalized() != s.normalized {
                    failures.push(format!(
                        "{expr:?}: normalised {:?}, systemd {:?}",
                        event.normalized(),
                        s.normalized
                    ));
                    continue;
                }
                let schedule =
                    Schedule::new(Recurrence::Calendar(event.clone()), tz, None).expect("schedule");
                let got: Vec<_> = schedule.iter_after(after).take(ITERATIONS).collect();
                let zone_of = event.time_zone().unwrap_or(tz);
                let until = got.iter().chain(&s.next).max().copied().unwrap_or(after) + Duration::days(1);
                let cut = cut(zone_of, after, until);
                let keep = |ts: &[DateTime<Utc>]| -> Vec<DateTime<Utc>> {
                    ts.iter().map(|t| t.trunc_subsecs(0)).filter(|t| cut.is_none_or(|c| *t < c)).collect()
                };
                if keep(&got) == keep(&s.next) {
                    continue;
                }
                let compat: Vec<_> =
                    std::iter::successors(compat::calendar_next_after_systemd_252(event, tz, after), |&t| {
                        compat::calendar_next_after_systemd_252(event, tz, t)
                    })
                    .take(ITERATIONS)
                    .collect();
                if keep(&compat) == keep(&s.next) {
                    bug_40260 += 1;
                    continue;
                }
                if offset_changes_within(zone_of, after, 62) {
                    dst_artifacts += 1;
                    println!(
                        "DST artifact: {expr:?} in {zone} after {after}: systemd {:?}, Cairn {:?}",
                        keep(&s.next),
                        keep(&got)
                    );
                    continue;
                }
                failures.push(format!(
                    "{expr:?} in {zone} after {after}: systemd {:?}, Cairn {:?}",
                    keep(&s.next),
                    keep(&got)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "seed {seed}: {} differences:\n{}", failures.len(), failures.join("\n"));
    println!(
        "live systemd-analyze: {accepted} accepted and {rejected} rejected expressions agree \
         ({bug_40260} differ only by the #40260 fix, {dst_artifacts} by systemd's DST carry)"
    );
}
