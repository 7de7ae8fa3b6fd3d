//! Notifications of finished jobs, and of sources violating and recovering their recovery
//! point objective, through an outbox in Postgres.
//!
//! The transaction that finishes a job writes one outbox row for it (event `job.finished`,
//! channel `*`); the one that marks a source VIOLATED, or ends that with a success, writes one
//! for that event (`source.rpo_violated`, `source.rpo_recovered`) on a job of the pair. The
//! dispatcher, on every replica, then (1) expands that row into one row per channel the
//! task's settings ask for (mode ALWAYS: every finished job; ERRORS: FAILED jobs; NEVER:
//! none; protection events go to every channel of a task whose mode is not NEVER), and (2)
//! delivers each channel row: it claims the row with a short lease committed before sending
//! (so two replicas never send the same row), sends, and marks it DELIVERED —
//! or schedules a retry with backoff, up to [`MAX_ATTEMPTS`]. A crash between sending and
//! marking can repeat a delivery once; every delivery carries a stable `X-Cairn-Delivery` id
//! receivers can use to drop the repeat.
//!
//! Webhooks: JSON POST, `X-Cairn-Signature: sha256=<hex HMAC-SHA256 of the body>` keyed by the
//! webhook's secret. Email: SMTP from the scheduler's configuration (`smtp_url`).

use std::time::Duration;

use cairn_api::{
    names::Kind,
    v1::{JobState, NotificationMode},
};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use sqlx::PgConnection;
use tokio_util::sync::CancellationToken;

use crate::{
    State,
    catalog::TaskKey,
    domain::job::is_final,
    error::{Error, Result},
    store::{
        jobs::{self as job_rows, Row},
        notifications::{self as rows, ANY_CHANNEL, JOB_FINISHED, Pending, RPO_VIOLATED},
    },
};

/// Deliveries tried per channel before giving up.
pub const MAX_ATTEMPTS: i32 = 10;
/// How long a claimed delivery is reserved for the replica sending it.
const CLAIM: Duration = Duration::from_secs(60);
/// The dispatcher's pace when idle.
const EVERY: Duration = Duration::from_millis(500);

/// Records that a finished job must be considered for notification (in the finishing
/// transaction).
pub async fn enqueue(conn: &mut PgConnection, job: &Row) -> Result<()> {
    if job.task_id.is_none() || !wants(job.notify, job.state) {
        return Ok(());
    }
    let now: DateTime<Utc> = job.end_time.unwrap_or(job.create_time);
    rows::insert(conn, job.id, JOB_FINISHED, ANY_CHANNEL, None, now).await
}

/// Runs the dispatcher until `shutdown`.
pub async fn run(state: State, shutdown: CancellationToken) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default();
    loop {
        if let Err(e) = expand(&state).await {
            tracing::warn!(error = %e, "expanding notifications failed");
        }
        match deliver(&state, &http).await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "delivering notifications failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}

/// Expands `*` rows into one row per channel the task wants.
async fn expand(state: &State) -> Result<usize> {
    let now = state.clock.now();
    let mut tx = state.pool.begin().await?;
    let pending = rows::claim_unexpanded(&mut tx, now, 50).await?;
    if pending.is_empty() {
        return Ok(0);
    }
    let all: Vec<&Pending> = pending.iter().collect();
    let mut jobs = std::collections::HashMap::new();
    for p in &pending {
        if !jobs.contains_key(&p.job_id)
            && let Some(j) = job_rows::get(&mut tx, None, p.job_id).await?
        {
            jobs.insert(p.job_id, j);
        }
    }
    let tasks: Vec<TaskKey> =
        jobs.values().filter_map(|j| j.task_id.map(|t| (j.project_id.clone(), t))).collect();
    let plans = match state.catalog.plans(&tasks).await {
        Ok(p) => p,
        Err(e) => {
            // Try again a little later; nothing is lost.
            rows::postpone_unexpanded(&mut tx, &all, now + chrono::Duration::seconds(5)).await?;
            tx.commit().await?;
            return Err(e);
        }
    };
    for p in &pending {
        let Some(job) = jobs.get(&p.job_id) else { continue };
        let plan = job.task_id.and_then(|t| plans.get(&(job.project_id.clone(), t)).cloned().flatten());
        let wanted = |mode: NotificationMode| match p.event.as_str() {
            JOB_FINISHED => wants(mode, job.state),
            _ => matches!(mode, NotificationMode::Always | NotificationMode::Errors),
        };
        let channels = match &plan {
            Some(plan) if wanted(plan.notification.mode()) => {
                let mut c: Vec<String> =
                    plan.notification.webhooks.iter().map(|w| format!("webhook:{}", w.url)).collect();
                c.extend(plan.notification.emails.iter().map(|e| format!("email:{e}")));
                c
            }
            _ => vec![],
        };
        for ch in channels {
            rows::insert(&mut tx, job.id, &p.event, &ch, p.detail.as_ref(), now).await?;
        }
    }
    rows::mark_expanded(&mut tx, &all).await?;
    tx.commit().await?;
    Ok(pending.len())
}

/// Whether a mode notifies a job that ended in `state`.
pub fn wants(mode: NotificationMode, state: JobState) -> bool {
    match mode {
        NotificationMode::Always => is_final(state),
        NotificationMode::Errors => state == JobState::Failed,
        NotificationMode::Never | NotificationMode::Unspecified => false,
    }
}

/// Claims due channel rows and delivers them; returns how many were attempted.
async fn deliver(state: &State, http: &reqwest::Client) -> Result<usize> {
    let now = state.clock.now();
    let claimed = {
        let mut conn = state.pool.acquire().await?;
        rows::claim_due(&mut conn, now, now + chrono::Duration::from_std(CLAIM).unwrap_or_default(), 20)
            .await?
    };
    for c in &claimed {
        let result = send(state, http, c).await;
        let later = state.clock.now();
        let mut conn = state.pool.acquire().await?;
        match result {
            Ok(()) => {
                rows::delivered(&mut conn, c, later).await?;
                metrics::counter!("cairn_scheduler_notifications_total", "channel" => kind(&c.channel), "result" => "delivered").increment(1);
                tracing::info!(job.id = %c.job_id, event = %c.event, channel = %redact_channel(&c.channel), "notification delivered");
            }
            Err(e) => {
                let give_up = c.attempts >= MAX_ATTEMPTS;
                let delay =
                    Duration::from_secs(1u64 << c.attempts.clamp(0, 9) as u32).min(Duration::from_secs(600));
                let next = later + chrono::Duration::from_std(delay).unwrap_or_default();
                rows::failed(&mut conn, c, give_up, &e.to_string(), next).await?;
                metrics::counter!("cairn_scheduler_notification_failures_total", "channel" => kind(&c.channel)).increment(1);
                tracing::warn!(job.id = %c.job_id, event = %c.event, channel = %redact_channel(&c.channel), attempt = c.attempts, give_up, error = %e, "notification not delivered");
            }
        }
    }
    Ok(claimed.len())
}

fn kind(channel: &str) -> &'static str {
    if channel.starts_with("webhook:") { "webhook" } else { "email" }
}

/// Channels for logs (no query strings, which may carry tokens).
fn redact_channel(channel: &str) -> String {
    channel.split('?').next().unwrap_or(channel).to_owned()
}

async fn send(state: &State, http: &reqwest::Client, c: &Pending) -> Result<()> {
    let mut conn = state.pool.acquire().await?;
    let row = job_rows::get(&mut conn, None, c.job_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("job {}", c.job_id)))?;
    drop(conn);
    let body = payload(state, &row, c)?;
    if let Some(url) = c.channel.strip_prefix("webhook:") {
        let task =
            row.task_id.ok_or_else(|| Error::Internal("notification for a job without task".into()))?;
        let key = (row.project_id.clone(), task);
        let resolved = state.catalog.resolved(std::slice::from_ref(&key)).await?;
        let secret = resolved
            .get(&key)
            .cloned()
            .flatten()
            .and_then(|r| r.secrets.get(&format!("webhook:{url}")).cloned())
            .ok_or_else(|| Error::Internal("the webhook's signing secret is gone (task changed)".into()))?;
        let bytes = serde_json::to_vec(&body).map_err(|e| Error::Internal(e.to_string()))?;
        let resp = http
            .post(url)
            .header("content-type", "application/json")
            .header("x-cairn-signature", signature(&secret, &bytes))
            .header("x-cairn-delivery", delivery(c))
            .header("x-cairn-event", &c.event)
            .body(bytes)
            .send()
            .await
            .map_err(|e| Error::Unavailable(format!("webhook ({})", e.without_url())))?;
        if !resp.status().is_success() {
            return Err(Error::Unavailable(format!("webhook answered {}", resp.status())));
        }
        Ok(())
    } else if let Some(to) = c.channel.strip_prefix("email:") {
        send_email(state, to, &row, c, &body).await
    } else {
        Err(Error::Internal(format!("unknown channel {}", c.channel)))
    }
}

/// `sha256=<hex>` of the body under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The stable id of a delivery (`X-Cairn-Delivery`).
fn delivery(c: &Pending) -> String {
    match c.event.as_str() {
        JOB_FINISHED => format!("{}/{}", c.job_id, c.channel),
        event => format!("{}/{event}/{}", c.job_id, c.channel),
    }
}

fn payload(state: &State, row: &Row, c: &Pending) -> Result<serde_json::Value> {
    let job = crate::convert::job(row)?;
    let job_json = cairn_api::json::to_json(&job).map_err(|e| Error::Internal(e.to_string()))?;
    let duration = match (row.start_time, row.end_time) {
        (Some(s), Some(e)) => Some((e - s).num_milliseconds() as f64 / 1000.0),
        _ => None,
    };
    let job_link = match &state.config.console_url {
        // The console's job details page is at `/` + the job's resource name.
        Some(base) => format!("{}/{}", base.trim_end_matches('/'), Kind::Job.name(&row.project_id, row.id)),
        None => format!("cairn job show {}", row.id),
    };
    let task = serde_json::json!({ "name": row.task_id.map(|t| Kind::Task.name(&row.project_id, t)), "display_name": row.task_display_name });
    if c.event != JOB_FINISHED {
        let status_link = match &state.config.console_url {
            Some(base) => format!("{}/projects/{}", base.trim_end_matches('/'), row.project_id),
            None => "cairn status".to_owned(),
        };
        let mut body = c.detail.clone().unwrap_or_else(|| serde_json::json!({}));
        body["event"] = c.event.clone().into();
        body["delivery"] = delivery(c).into();
        body["task"] = task;
        body["job"] = job_json;
        body["links"] = serde_json::json!({ "job": job_link, "status": status_link });
        return Ok(body);
    }
    Ok(serde_json::json!({
        "event": JOB_FINISHED,
        "delivery": delivery(c),
        "job": job_json,
        "task": task,
        "state": job.state().as_str_name().trim_start_matches("JOB_STATE_"),
        "error": row.error,
        "snapshot": row.snapshot,
        "duration_seconds": duration,
        "links": { "job": job_link },
    }))
}

/// The subject and text of an email.
fn email_text(row: &Row, c: &Pending, body: &serde_json::Value) -> (String, String) {
    let link = body["links"]["job"].as_str().unwrap_or_default();
    if c.event != JOB_FINISHED {
        let source = body["source"]["display_name"].as_str().unwrap_or_default();
        let rpo = body["rpo"].as_str().unwrap_or_default();
        let last = body["last_success_time"].as_str().unwrap_or("never");
        let (subject, what) = if c.event == RPO_VIOLATED {
            (
                format!("[Cairn] {source} violated its RPO of {rpo}"),
                format!(
                    "The last successful backup of {source} by task {} is older than its recovery point objective of {rpo}.",
                    row.task_display_name
                ),
            )
        } else {
            (
                format!("[Cairn] {source} is within its RPO again"),
                format!(
                    "Task {} backed {source} up successfully again (recovery point objective {rpo}).",
                    row.task_display_name
                ),
            )
        };
        let text = format!(
            "{what}\n\nLast successful backup: {last}\nLatest job: {link}\nStatus: {}\n",
            body["links"]["status"].as_str().unwrap_or_default()
        );
        return (subject, text);
    }
    let state_name = body["state"].as_str().unwrap_or("FINISHED");
    let mut text = format!(
        "Job {} of task {} ended {state_name}.\n\n",
        Kind::Job.name(&row.project_id, row.id),
        row.task_display_name
    );
    if !row.error.is_empty() {
        text.push_str(&format!("Error: {}\n", row.error));
    }
    if !row.snapshot.is_empty() {
        text.push_str(&format!("Snapshot: {}\n", row.snapshot));
    }
    if let Some(d) = body["duration_seconds"].as_f64() {
        text.push_str(&format!("Duration: {d:.1}s\n"));
    }
    text.push_str(&format!("\nDetails: {link}\n"));
    (format!("[Cairn] {} {state_name}", row.task_display_name), text)
}

async fn send_email(state: &State, to: &str, row: &Row, c: &Pending, body: &serde_json::Value) -> Result<()> {
    use lettre::{
        AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor, message::header::ContentType,
    };
    let Some(url) = &state.config.smtp_url else {
        return Err(Error::Unavailable("email: no SMTP server configured (smtp_url)".into()));
    };
    let (subject, text) = email_text(row, c, body);
    let message = Message::builder()
        .from(state.config.smtp_from.parse().map_err(|e| Error::Internal(format!("smtp_from: {e}")))?)
        .to(to.parse().map_err(|e| Error::Internal(format!("email {to:?}: {e}")))?)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(text)
        .map_err(|e| Error::Internal(e.to_string()))?;
    let mut transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .map_err(|e| Error::Internal(format!("smtp_url: {e}")))?
        .timeout(Some(Duration::from_secs(15)));
    let password = match (&state.config.smtp_password, &state.config.smtp_password_file) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(f)) => Some(
            std::fs::read_to_string(f)
                .map_err(|e| Error::Internal(format!("smtp_password_file: {e}")))?
                .trim()
                .to_owned(),
        ),
        (None, None) => None,
    };
    if let (Some(user), Some(pw)) = (&state.config.smtp_username, password) {
        transport = transport
            .credentials(lettre::transport::smtp::authentication::Credentials::new(user.clone(), pw));
    }
    transport.build().send(message).await.map_err(|e| Error::Unavailable(format!("email: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert!(wants(NotificationMode::Always, JobState::Succeeded));
        assert!(wants(NotificationMode::Always, JobState::Skipped));
        assert!(!wants(NotificationMode::Always, JobState::Running));
        assert!(wants(NotificationMode::Errors, JobState::Failed));
        assert!(!wants(NotificationMode::Errors, JobState::Succeeded));
        assert!(!wants(NotificationMode::Never, JobState::Failed));
    }

    #[test]
    fn signatures_match_hmac_sha256() {
        // RFC 4231 test case 2.
        let sig = signature("Jefe", b"what do ya want for nothing?");
        assert_eq!(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
