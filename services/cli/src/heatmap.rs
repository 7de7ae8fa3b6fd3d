//! Drawing the forecast heatmap in a terminal: 7 weekday rows × 24 hour columns, shaded by
//! the most runs active at once in that hour (ANSI colours on a terminal, characters
//! otherwise).

use cairn_api::v1::HeatmapRow;

const SHADES: [&str; 5] = [" .", " ░", " ▒", " ▓", " █"];

/// The heatmap as text.
pub fn render(rows: &[HeatmapRow], color: bool) -> String {
    let max = rows.iter().flat_map(|r| r.hours.iter().copied()).fold(0.0f64, f64::max);
    let mut out = String::from("     ");
    for h in 0..24 {
        out.push_str(&format!("{h:>2}"));
    }
    out.push('\n');
    for r in rows {
        out.push_str(&format!("{:<4} ", r.weekday));
        for &v in &r.hours {
            let level = if v <= 0.0 || max <= 0.0 { 0 } else { ((v / max) * 3.0).ceil() as usize + 1 }.min(4);
            if color && level > 0 {
                // Green → yellow → red as concurrency grows.
                let code = [0, 34, 142, 214, 196][level];
                out.push_str(&format!("\x1b[38;5;{code}m{}\x1b[0m", SHADES[level]));
            } else {
                out.push_str(SHADES[level]);
            }
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "     legend: ' .' none  ' ░' low  ' ▒'  ' ▓'  ' █' {} concurrent run(s) at the busiest\n",
        max as i64
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shades_scale_to_the_maximum() {
        let mut rows: Vec<HeatmapRow> = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
            .iter()
            .map(|d| HeatmapRow { weekday: (*d).into(), hours: vec![0.0; 24] })
            .collect();
        rows[0].hours[2] = 4.0;
        rows[0].hours[3] = 1.0;
        let text = render(&rows, false);
        let mon = text.lines().nth(1).unwrap();
        assert!(mon.starts_with("Mon "));
        assert!(mon.contains(" █"), "{mon}");
        assert!(mon.contains(" ▒"), "{mon}");
        assert_eq!(text.lines().count(), 9);
        assert!(render(&rows, true).contains("\x1b[38;5;196m"));
    }
}
