//! `cairn forecast`: the heatmap, the busiest runs and the overlaps with a staggering hint.

use cairn_api::v1::ForecastRequest;

use super::{pb_duration, rfc3339};
use crate::{
    cli::ForecastArgs,
    client::Clients,
    error::Result,
    heatmap,
    output::{self, Printer},
};

pub async fn run(c: &Clients, p: &Printer, a: ForecastArgs) -> Result {
    let resp = c
        .schedules()
        .forecast(ForecastRequest {
            parent: if a.all_projects { "projects/-".into() } else { c.parent() },
            from: a.from.as_deref().map(|s| rfc3339(s, "--from")).transpose()?,
            horizon: Some(pb_duration(a.horizon)),
            time_zone: a.tz.clone().unwrap_or_default(),
        })
        .await
        .map_err(c.scheduler_err())?
        .into_inner();
    if p.json() {
        p.message(&resp);
        return Ok(0);
    }
    let tz = a.tz.as_deref().unwrap_or("UTC");
    println!(
        "{} run(s) in the next {} (hours in {tz}; unknown durations assumed {}){}",
        resp.runs.len(),
        output::short_duration(a.horizon),
        output::duration(&resp.default_duration),
        if resp.truncated { "; very frequent schedules were cut at 2,000 runs each" } else { "" }
    );
    println!();
    print!("{}", heatmap::render(&resp.heatmap, p.color));
    if a.runs {
        println!();
        let mut t = output::table(&["START", "SCHEDULE", "TASK", "ESTIMATE", "STORES", "POOL"]);
        for r in &resp.runs {
            t.add_row(vec![
                p.time_abs(&r.start_time),
                r.schedule_display_name.clone(),
                r.task_display_name.clone(),
                format!(
                    "{}{}",
                    output::duration(&r.estimated_duration),
                    if r.estimate_is_default { " (default)" } else { "" }
                ),
                r.stores.len().to_string(),
                if r.worker_pool.is_empty() { "any".into() } else { r.worker_pool.clone() },
            ]);
        }
        output::print_table(t, "No runs.");
    }
    println!();
    if resp.overlaps.is_empty() {
        println!("No overlapping runs share a store or a worker pool.");
        return Ok(0);
    }
    println!("{} overlapping pair(s):", resp.overlaps.len());
    for o in resp.overlaps.iter().take(20) {
        let (Some(a1), Some(b1)) = (resp.runs.get(o.first as usize), resp.runs.get(o.second as usize)) else {
            continue;
        };
        let first_end = a1
            .start_time
            .as_ref()
            .and_then(cairn_runtime::time::from_timestamp)
            .zip(a1.estimated_duration.as_ref().and_then(cairn_runtime::time::from_duration))
            .map(|(s, d)| s + chrono::Duration::from_std(d).unwrap_or_default());
        let hint = first_end
            .map(|end| {
                // Round up to the next quarter hour.
                let secs = end.timestamp();
                let rounded = chrono::DateTime::from_timestamp((secs + 899) / 900 * 900, 0).unwrap_or(end);
                format!(
                    "; stagger: start {} at {} or later",
                    b1.schedule_display_name,
                    rounded.format("%H:%M UTC")
                )
            })
            .unwrap_or_default();
        println!(
            "  {} {} and {} {} share {} for {}{hint}",
            p.time_abs(&a1.start_time),
            a1.schedule_display_name,
            p.time_abs(&b1.start_time),
            b1.schedule_display_name,
            o.shared,
            output::duration(&o.overlap),
        );
    }
    if resp.overlaps.len() > 20 {
        println!("  … and {} more (see --output json)", resp.overlaps.len() - 20);
    }
    Ok(0)
}
