//! Following a job live: a progress bar (bytes, rate, ETA) with the log streaming above it on
//! a terminal, plain lines otherwise, one JSON event per line with `--output json`. The exit
//! code is the job's: 0 when it succeeded, 1 otherwise.

use std::io::IsTerminal as _;

use cairn_api::v1::{
    GetJobRequest, Job, JobProgress, JobState, ListJobLogsRequest, LogLevel, LogLine, TaskType,
    WatchJobRequest, watch_job_event::Event,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::{
    client::Clients,
    error::{CliError, Result},
    output::{self, Printer},
};

/// A log line for people: `12:03:04 INFO  message`.
pub fn log_line(l: &LogLine) -> String {
    let time = l
        .time
        .as_ref()
        .and_then(cairn_runtime::time::from_timestamp)
        .map(|t| t.format("%H:%M:%S").to_string())
        .unwrap_or_default();
    let level = match l.level() {
        LogLevel::Debug => "DEBUG",
        LogLevel::Warn => "WARN ",
        LogLevel::Error => "ERROR",
        _ => "INFO ",
    };
    format!("{time} {level} {}", l.message)
}

/// Progress for people: `backing up 42% (1.2 GiB of 2.9 GiB) /srv/x`.
pub fn progress_text(p: &JobProgress) -> String {
    let mut s = p.phase.clone();
    if p.bytes_total > 0 {
        s.push_str(&format!(
            " {:.0}% ({} of {})",
            p.percent,
            output::bytes(p.bytes_done),
            output::bytes(p.bytes_total)
        ));
    } else if p.bytes_done > 0 {
        s.push_str(&format!(" {}", output::bytes(p.bytes_done)));
    }
    if p.files_total > 0 {
        s.push_str(&format!(", {}/{} files", p.files_done, p.files_total));
    }
    s
}

fn ended(j: &Job) -> bool {
    matches!(j.state(), JobState::Succeeded | JobState::Failed | JobState::Cancelled | JobState::Skipped)
}

/// Waits for a job, optionally showing progress and log; returns the exit code.
pub async fn watch(c: &Clients, p: &Printer, name: &str, follow: bool) -> Result {
    let mut stream = c
        .jobs()
        .watch_job(WatchJobRequest {
            name: c.name(cairn_api::names::Kind::Job, name),
            from_seq: if follow { 0 } else { -1 },
        })
        .await
        .map_err(c.scheduler_err())?
        .into_inner();
    let tty = std::io::stderr().is_terminal() && !p.json();
    let bar = (follow && tty).then(|| {
        let pb = ProgressBar::new(0);
        pb.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg:20} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        pb.enable_steady_tick(std::time::Duration::from_millis(200));
        pb
    });
    let mut last: Option<Job> = None;
    let mut last_phase = String::new();
    while let Some(ev) = stream.message().await.map_err(c.scheduler_err())? {
        if p.json() {
            if follow {
                p.line(&ev);
            }
            if let Some(Event::Job(j)) = ev.event {
                last = Some(j);
            }
            continue;
        }
        match ev.event {
            Some(Event::Job(j)) => {
                if let (Some(pb), Some(pr)) = (&bar, &j.progress) {
                    pb.set_length(pr.bytes_total.max(0) as u64);
                    pb.set_position(pr.bytes_done.max(0) as u64);
                    pb.set_message(pr.phase.clone());
                } else if follow
                    && let Some(pr) = &j.progress
                    && pr.phase != last_phase
                {
                    last_phase = pr.phase.clone();
                    println!("-- {}", progress_text(pr));
                }
                if follow && last.as_ref().is_none_or(|l| l.state != j.state) {
                    let msg = format!(
                        "-- job {} {}",
                        output::id(&j.name),
                        output::enum_name(j.state().as_str_name(), "JOB_STATE_")
                    );
                    match &bar {
                        Some(pb) => pb.println(msg),
                        None => println!("{msg}"),
                    }
                }
                last = Some(j);
            }
            Some(Event::LogLine(l)) if follow => match &bar {
                Some(pb) => pb.println(log_line(&l)),
                None => println!("{}", log_line(&l)),
            },
            _ => {}
        }
    }
    if let Some(pb) = bar {
        pb.finish_and_clear();
    }
    let job = match last {
        Some(j) if ended(&j) => j,
        _ => c
            .jobs()
            .get_job(GetJobRequest { name: c.name(cairn_api::names::Kind::Job, name), view: 1 })
            .await
            .map_err(c.scheduler_err())?
            .into_inner(),
    };
    if p.json() {
        if !follow {
            p.message(&job);
        }
    } else {
        summary(&job);
    }
    Ok(if job.state() == JobState::Succeeded { 0 } else { 1 })
}

fn summary(j: &Job) {
    let state = output::enum_name(j.state().as_str_name(), "JOB_STATE_");
    let mut line = format!("Job {} {state}", output::id(&j.name));
    if let Some(s) = &j.stats
        && let Some(d) = &s.duration
    {
        line.push_str(&format!(" in {}", output::duration(&Some(*d))));
    }
    if !j.snapshot.is_empty() {
        line.push_str(&format!(", snapshot {}", output::short(&j.snapshot)));
    }
    if let Some(s) = &j.stats
        && (s.bytes_processed > 0 || s.bytes_added > 0)
    {
        if j.r#type() == TaskType::Restore {
            line.push_str(&format!(
                " ({} files restored, {} unchanged, {} written)",
                s.files_restored,
                s.files_unmodified,
                output::bytes(s.bytes_processed)
            ));
        } else {
            line.push_str(&format!(
                " ({} processed, {} added)",
                output::bytes(s.bytes_processed),
                output::bytes(s.bytes_added)
            ));
        }
    }
    println!("{line}.");
    if !j.error.is_empty() {
        println!("{}", j.error);
    }
}

/// `job logs --follow`: every line until the job ends.
pub async fn follow_logs(c: &Clients, p: &Printer, name: &str) -> Result {
    let mut stream = c
        .jobs()
        .watch_job(WatchJobRequest { name: c.name(cairn_api::names::Kind::Job, name), from_seq: 0 })
        .await
        .map_err(c.scheduler_err())?
        .into_inner();
    let mut state = JobState::Unspecified;
    while let Some(ev) = stream.message().await.map_err(c.scheduler_err())? {
        match ev.event {
            Some(Event::LogLine(l)) => {
                if p.json() {
                    p.line(&l);
                } else {
                    println!("{}", log_line(&l));
                }
            }
            Some(Event::Job(j)) => state = j.state(),
            None => {}
        }
    }
    if state == JobState::Unspecified {
        // The stream ended before any state: ask once.
        let page = c
            .jobs()
            .list_job_logs(ListJobLogsRequest {
                name: c.name(cairn_api::names::Kind::Job, name),
                after_seq: 0,
                page_size: 1,
            })
            .await
            .map_err(c.scheduler_err())?
            .into_inner();
        if !page.done {
            return Err(CliError::Failed("the log stream ended before the job".into()));
        }
    }
    Ok(0)
}
