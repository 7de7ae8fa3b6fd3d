//! `cairn schedule ...`.

use cairn_api::{
    names::Kind as Name,
    v1::{
        CreateScheduleRequest, DeleteScheduleRequest, GetScheduleRequest, Interval, ListSchedulesRequest,
        PauseScheduleRequest, Preset, PreviewScheduleRequest, Recurrence, ResumeScheduleRequest, Schedule,
        UpdateScheduleRequest, recurrence::Kind,
    },
};

use super::{pb_duration, rfc3339};
use crate::{
    cli::{PresetArg, RecurrenceFlags, ScheduleCmd},
    client::{Clients, all_pages},
    error::{CliError, Result},
    output::{self, Printer},
};

pub async fn run(c: &Clients, p: &Printer, cmd: ScheduleCmd) -> Result {
    match cmd {
        ScheduleCmd::Add(a) => {
            let recurrence = recurrence(&a.recurrence)?.ok_or_else(|| {
                CliError::Usage("give one of --calendar, --cron, --every or --preset".into())
            })?;
            let s = Schedule {
                display_name: a.name,
                description: a.description,
                task: a.task,
                recurrence: Some(recurrence),
                start_time: a.start.as_deref().map(|s| rfc3339(s, "--start")).transpose()?,
                time_zone: a.tz.unwrap_or_default(),
                journalised: a.journalised,
                enabled: Some(!a.paused),
                jitter: a.jitter.map(pb_duration),
                ..Default::default()
            };
            let made = c
                .schedules()
                .create_schedule(CreateScheduleRequest {
                    parent: c.parent(),
                    schedule: Some(s),
                    request_id: c.request_id(),
                    ..Default::default()
                })
                .await
                .map_err(c.scheduler_err())?
                .into_inner();
            show(p, &made, "added");
        }
        ScheduleCmd::List(args) => {
            let all = all_pages(|page_token| async {
                let page = c
                    .schedules()
                    .list_schedules(ListSchedulesRequest {
                        parent: c.parent(),
                        page_size: 1000,
                        page_token,
                        task: args.task.clone().unwrap_or_default(),
                        connector: args.connector.clone().unwrap_or_default(),
                        enabled: if args.enabled {
                            Some(true)
                        } else if args.paused {
                            Some(false)
                        } else {
                            None
                        },
                        ..Default::default()
                    })
                    .await
                    .map_err(c.scheduler_err())?
                    .into_inner();
                Ok((page.schedules, page.next_page_token))
            })
            .await?;
            if p.json() {
                p.message(&cairn_api::v1::ListSchedulesResponse {
                    schedules: all,
                    next_page_token: String::new(),
                    ..Default::default()
                });
                return Ok(0);
            }
            let tasks = task_names(c).await?;
            let mut t =
                output::table(&["NAME", "TASK", "WHEN", "TZ", "NEXT RUN", "LAST JOB", "STATE", "MISSED"]);
            for s in &all {
                t.add_row(vec![
                    s.display_name.clone(),
                    tasks.get(&s.task).cloned().unwrap_or_else(|| s.task.clone()),
                    when(s),
                    if s.time_zone.is_empty() { "UTC".into() } else { s.time_zone.clone() },
                    if s.enabled == Some(false) { "-".into() } else { p.time(&s.next_run_time) },
                    if s.last_job.is_empty() {
                        "-".into()
                    } else {
                        output::enum_name(s.last_job_state().as_str_name(), "JOB_STATE_")
                    },
                    if s.enabled == Some(false) { "paused".into() } else { "enabled".into() },
                    s.missed_runs.to_string(),
                ]);
            }
            output::print_table(t, "No schedules yet. Add one with `cairn schedule add --help`.");
        }
        ScheduleCmd::Get(n) => {
            let s = c
                .schedules()
                .get_schedule(GetScheduleRequest { name: c.name(Name::Schedule, &n.name) })
                .await
                .map_err(c.scheduler_err())?
                .into_inner();
            show(p, &s, "");
        }
        ScheduleCmd::Update(u) => {
            let mut patch = Schedule { name: c.name(Name::Schedule, &u.name), ..Default::default() };
            let mut paths = Vec::new();
            if let Some(r) = recurrence(&u.recurrence)? {
                patch.recurrence = Some(r);
                paths.push("recurrence".to_owned());
            }
            if let Some(tz) = u.tz {
                patch.time_zone = tz;
                paths.push("time_zone".to_owned());
            }
            if let Some(s) = u.start {
                patch.start_time = Some(rfc3339(&s, "--start")?);
                paths.push("start_time".to_owned());
            }
            if let Some(j) = u.journalised {
                patch.journalised = j;
                paths.push("journalised".to_owned());
            }
            if let Some(j) = u.jitter {
                patch.jitter = Some(pb_duration(j));
                paths.push("jitter".to_owned());
            }
            if let Some(n) = u.rename {
                patch.display_name = n;
                paths.push("display_name".to_owned());
            }
            if let Some(d) = u.description {
                patch.description = d;
                paths.push("description".to_owned());
            }
            if paths.is_empty() {
                return Err(CliError::Usage("nothing to change: give at least one flag (see --help)".into()));
            }
            let s = c
                .schedules()
                .update_schedule(UpdateScheduleRequest {
                    schedule: Some(patch),
                    update_mask: Some(prost_types::FieldMask { paths }),
                    request_id: c.request_id(),
                    ..Default::default()
                })
                .await
                .map_err(c.scheduler_err())?
                .into_inner();
            show(p, &s, "updated");
        }
        ScheduleCmd::Pause(n) => {
            let s = c
                .schedules()
                .pause_schedule(PauseScheduleRequest {
                    name: c.name(Name::Schedule, &n.name),
                    request_id: c.request_id(),
                })
                .await
                .map_err(c.scheduler_err())?
                .into_inner();
            show(p, &s, "paused");
        }
        ScheduleCmd::Resume(n) => {
            let s = c
                .schedules()
                .resume_schedule(ResumeScheduleRequest {
                    name: c.name(Name::Schedule, &n.name),
                    request_id: c.request_id(),
                })
                .await
                .map_err(c.scheduler_err())?
                .into_inner();
            show(p, &s, "resumed");
        }
        ScheduleCmd::Delete(n) => {
            c.confirm(&format!("delete {}", c.name(Name::Schedule, &n.name)))?;
            c.schedules()
                .delete_schedule(DeleteScheduleRequest {
                    name: c.name(Name::Schedule, &n.name),
                    etag: String::new(),
                    request_id: c.request_id(),
                })
                .await
                .map_err(c.scheduler_err())?;
            p.deleted(&format!("Deleted schedule {} (its jobs stay in history).", n.name));
        }
        ScheduleCmd::Preview(a) => {
            let r = recurrence(&a.recurrence)?.ok_or_else(|| {
                CliError::Usage("give one of --calendar, --cron, --every or --preset".into())
            })?;
            let resp = c
                .schedules()
                .preview_schedule(PreviewScheduleRequest {
                    recurrence: Some(r),
                    time_zone: a.tz.clone().unwrap_or_default(),
                    start_time: a.start.as_deref().map(|s| rfc3339(s, "--start")).transpose()?,
                    after: a.after.as_deref().map(|s| rfc3339(s, "--after")).transpose()?,
                    count: a.count,
                })
                .await
                .map_err(c.scheduler_err())?
                .into_inner();
            if p.json() {
                p.message(&resp);
                return Ok(0);
            }
            if !resp.normalized.is_empty() {
                println!("Normalized: {}", resp.normalized);
            }
            let tz: Option<chrono_tz::Tz> = a.tz.as_deref().and_then(|z| z.parse().ok());
            let mut t = output::table(&["#", "UTC", "LOCAL", "FROM NOW"]);
            for (i, ts) in resp.fire_times.iter().enumerate() {
                let utc = cairn_runtime::time::from_timestamp(ts).unwrap_or_default();
                let local = match tz {
                    Some(z) => utc.with_timezone(&z).format("%a %Y-%m-%d %H:%M:%S %Z").to_string(),
                    None => utc.format("%a %Y-%m-%d %H:%M:%S UTC").to_string(),
                };
                t.add_row(vec![
                    (i + 1).to_string(),
                    utc.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    local,
                    output::relative(utc - p.now),
                ]);
            }
            output::print_table(t, "This recurrence never fires (again).");
        }
    }
    Ok(0)
}

async fn task_names(c: &Clients) -> Result<std::collections::HashMap<String, String>> {
    let list = c
        .catalog()
        .list_tasks(cairn_api::v1::ListTasksRequest {
            parent: c.parent(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .map_err(c.catalog_err())?
        .into_inner();
    Ok(list.tasks.into_iter().map(|t| (t.name, t.display_name)).collect())
}

/// The recurrence the flags describe (clap keeps them mutually exclusive).
pub fn recurrence(f: &RecurrenceFlags) -> Result<Option<Recurrence>> {
    let kind = if let Some(e) = &f.calendar {
        Kind::Calendar(e.clone())
    } else if let Some(e) = &f.cron {
        Kind::Cron(e.clone())
    } else if let Some(e) = &f.every {
        Kind::Interval(interval(e)?)
    } else if let Some(pr) = f.preset {
        Kind::Preset(match pr {
            PresetArg::TwiceDaily => Preset::TwiceDaily,
            PresetArg::Daily => Preset::Daily,
            PresetArg::Weekly => Preset::Weekly,
            PresetArg::Every30Days => Preset::Every30Days,
        } as i32)
    } else {
        return Ok(None);
    };
    Ok(Some(Recurrence { kind: Some(kind) }))
}

/// `1d12h30m` → an Interval (days, hours, minutes).
pub fn interval(s: &str) -> Result<Interval> {
    let mut out = Interval::default();
    let mut num = String::new();
    let bad = || CliError::Usage(format!("--every: {s:?} is not an interval like 1d, 6h, 1d12h or 90m"));
    for ch in s.trim().chars() {
        if ch.is_ascii_digit() {
            num.push(ch);
            continue;
        }
        let n: i32 = num.parse().map_err(|_| bad())?;
        num.clear();
        match ch {
            'd' => out.days += n,
            'h' => out.hours += n,
            'm' => out.minutes += n,
            'w' => out.days += 7 * n,
            _ => return Err(bad()),
        }
    }
    if !num.is_empty() || s.trim().is_empty() {
        return Err(bad());
    }
    Ok(out)
}

fn when(s: &Schedule) -> String {
    match s.recurrence.as_ref().and_then(|r| r.kind.as_ref()) {
        Some(Kind::Calendar(e)) => e.clone(),
        Some(Kind::Cron(e)) => format!("cron {e}"),
        Some(Kind::Interval(_)) | Some(Kind::Preset(_)) => s.normalized_recurrence.clone(),
        None => "-".into(),
    }
}

fn show(p: &Printer, s: &Schedule, verb: &str) {
    if p.json() {
        p.message(s);
        return;
    }
    if !verb.is_empty() {
        println!("Schedule {} {verb}.", s.display_name);
    }
    let mut rows = vec![
        ("name", s.name.clone()),
        ("display name", s.display_name.clone()),
        ("task", s.task.clone()),
        ("when", when(s)),
        ("normalized", s.normalized_recurrence.clone()),
        ("time zone", if s.time_zone.is_empty() { "UTC".into() } else { s.time_zone.clone() }),
        ("start", p.time_abs(&s.start_time)),
        ("journalised", s.journalised.to_string()),
        ("jitter", output::duration(&s.jitter)),
        ("enabled", s.enabled.unwrap_or(true).to_string()),
        ("next run", if s.enabled == Some(false) { "- (paused)".into() } else { p.time(&s.next_run_time) }),
        (
            "last job",
            if s.last_job.is_empty() {
                "-".into()
            } else {
                format!(
                    "{} ({})",
                    output::id(&s.last_job),
                    output::enum_name(s.last_job_state().as_str_name(), "JOB_STATE_")
                )
            },
        ),
        ("missed runs", s.missed_runs.to_string()),
    ];
    if !s.description.is_empty() {
        rows.push(("description", s.description.clone()));
    }
    rows.push(("etag", s.etag.clone()));
    output::fields(&rows);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        let i = interval("1d12h30m").unwrap();
        assert_eq!((i.days, i.hours, i.minutes), (1, 12, 30));
        assert_eq!(interval("2w").unwrap().days, 14);
        for bad in ["", "12", "1x", "d"] {
            assert!(interval(bad).is_err(), "{bad}");
        }
    }
}
