//! Everything printed: tables for people, proto3 JSON for programs, errors on stderr, and the
//! human units (sizes, durations, times).

use std::io::IsTerminal as _;

use cairn_runtime::time::{from_duration, from_timestamp};
use chrono::{DateTime, Utc};
use comfy_table::{Cell, ContentArrangement, Table, presets::NOTHING};

use crate::cli::Output;

/// How to print.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    /// Tables or JSON.
    pub format: Output,
    /// ANSI colours allowed.
    pub color: bool,
    /// "Now", for relative times.
    pub now: DateTime<Utc>,
}

impl Printer {
    /// A printer for stdout.
    pub fn new(format: Output, no_color: bool) -> Printer {
        let color = !no_color && std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal();
        Printer { format, color, now: Utc::now() }
    }

    /// True for JSON output.
    pub fn json(&self) -> bool {
        self.format == Output::Json
    }

    /// Prints a message in the proto3 JSON mapping (pretty).
    pub fn message<M: prost::Message + prost::Name>(&self, msg: &M) {
        match cairn_api::json::to_json(msg) {
            Ok(v) => println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default()),
            Err(e) => eprintln!("error: cannot render {}: {e}", M::full_name()),
        }
    }

    /// After a delete: `{}` (the RPC's Empty) for programs, `said` for people.
    pub fn deleted(&self, said: &str) {
        if self.json() {
            println!("{{}}");
        } else {
            println!("{said}");
        }
    }

    /// Prints a message as one JSON line (streams).
    pub fn line<M: prost::Message + prost::Name>(&self, msg: &M) {
        match cairn_api::json::to_json(msg) {
            Ok(v) => println!("{}", serde_json::to_string(&v).unwrap_or_default()),
            Err(e) => eprintln!("error: cannot render {}: {e}", M::full_name()),
        }
    }

    /// A timestamp for people: `2026-11-21 23:15:31Z (in 3h 5m)`.
    pub fn time(&self, t: &Option<prost_types::Timestamp>) -> String {
        match t.as_ref().and_then(from_timestamp) {
            None => "-".into(),
            Some(t) => format!("{} ({})", t.format("%Y-%m-%d %H:%M:%SZ"), relative(t - self.now)),
        }
    }

    /// A timestamp without the relative part.
    pub fn time_abs(&self, t: &Option<prost_types::Timestamp>) -> String {
        t.as_ref()
            .and_then(from_timestamp)
            .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
            .unwrap_or_else(|| "-".into())
    }
}

/// `in 3h 5m` / `5m ago` / `now`.
pub fn relative(d: chrono::Duration) -> String {
    let secs = d.num_seconds();
    if secs.abs() < 1 {
        return "now".into();
    }
    let text = short_duration(std::time::Duration::from_secs(secs.unsigned_abs()));
    if secs > 0 { format!("in {text}") } else { format!("{text} ago") }
}

/// `1d 2h`, `3h 5m`, `4m 10s`, `12s`: the two largest units.
pub fn short_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins, secs) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (days, hours, mins) {
        (0, 0, 0) if d.as_millis() < 1000 && d.as_millis() > 0 => format!("{}ms", d.as_millis()),
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => {
            if secs > 0 {
                format!("{m}m {secs}s")
            } else {
                format!("{m}m")
            }
        }
        (0, h, m) => {
            if m > 0 {
                format!("{h}h {m}m")
            } else {
                format!("{h}h")
            }
        }
        (d, h, _) => {
            if h > 0 {
                format!("{d}d {h}h")
            } else {
                format!("{d}d")
            }
        }
    }
}

/// A protobuf duration for people.
pub fn duration(d: &Option<prost_types::Duration>) -> String {
    d.as_ref().and_then(from_duration).map(short_duration).unwrap_or_else(|| "-".into())
}

/// Bytes for people: `1.5 GiB`.
pub fn bytes(n: i64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n.max(0) as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

/// The id part of a resource name (`jobs/abc` → `abc`).
pub fn id(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// A short snapshot id.
pub fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// An enum's name without its prefix (`JOB_STATE_FAILED` → `FAILED`).
pub fn enum_name(full: &str, prefix: &str) -> String {
    full.strip_prefix(prefix).unwrap_or(full).to_owned()
}

/// A table with headers, no borders, wrapping disabled (pipes and tests see whole cells).
pub fn table(headers: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(NOTHING).set_content_arrangement(ContentArrangement::Disabled);
    t.set_header(headers.iter().map(Cell::new));
    t
}

/// Prints a table, or a note when it is empty.
pub fn print_table(t: Table, empty: &str) {
    if t.row_count() == 0 {
        println!("{empty}");
    } else {
        let text = t.to_string();
        for line in text.lines() {
            println!("{}", line.trim_end());
        }
    }
}

/// `key=value,...` of a map, sorted.
pub fn labels(m: &std::collections::HashMap<String, String>) -> String {
    let mut v: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
    v.sort();
    if v.is_empty() { "-".into() } else { v.join(",") }
}

/// Prints `key: value` lines aligned.
pub fn fields(rows: &[(&str, String)]) {
    let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        println!("{k:<w$}  {v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(short_duration(std::time::Duration::from_secs(3 * 3600 + 300)), "3h 5m");
        assert_eq!(short_duration(std::time::Duration::from_secs(90)), "1m 30s");
        assert_eq!(short_duration(std::time::Duration::from_secs(2 * 86_400 + 3600)), "2d 1h");
        assert_eq!(short_duration(std::time::Duration::from_millis(250)), "250ms");
        assert_eq!(relative(chrono::Duration::seconds(-300)), "5m ago");
        assert_eq!(relative(chrono::Duration::seconds(7200)), "in 2h");
        assert_eq!(enum_name("JOB_STATE_FAILED", "JOB_STATE_"), "FAILED");
        assert_eq!(id("jobs/abc"), "abc");
    }
}
