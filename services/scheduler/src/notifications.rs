//! Notifications of finished jobs through an outbox in Postgres.
//!
//! The transaction that finishes a job writes one outbox row for it (channel `*`). The
//! dispatcher, on every replica, then (1) expands that row into one row per channel the
//! task's settings ask for (mode ALWAYS: every finished job; ERRORS: FAILED jobs; NEVER:
//! none), and (2) delivers each channel row: it claims the row with a short lease committed
//! before sending (so two replicas never send the same row), sends, and marks it DELIVERED —
//! or schedules a retry with backoff, up to [`MAX_ATTEMPTS`]. A crash between sending and
//! marking can repeat a delivery once; every delivery carries a stable `X-Cairn-Delivery` id
//! receivers can use to drop the repeat.
//!
//! Webhooks: JSON POST, `X-Cairn-Signature: sha256=<hex HMAC-SHA256 of the body>` keyed by the
//! webhook's secret. Email: SMTP from the scheduler's configuration (`smtp_url`).

use std::time::Duration;

use cairn_api::ids::JobId;
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
        notifications::{self as rows, ANY_CHANNEL, Pending},
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
    rows::insert(conn, job.id, ANY_CHANNEL, now).await
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
    let job_ids: Vec<JobId> = pending.iter().map(|p| p.job_id).collect();
    let mut jobs = Vec::with_capacity(pending.len());
    for id in &job_ids {
        if let Some(j) = job_rows::get(&mut tx, None, *id).await? {
            jobs.push(j);
        }
    }
    let tasks: Vec<TaskKey> =
        jobs.iter().filter_map(|j| j.task_id.map(|t| (j.project_id.clone(), t))).collect();
    let plans = match state.catalog.plans(&tasks).await {
        Ok(p) => p,
        Err(e) => {
            // Try again a little later; nothing is lost.
            rows::postpone_unexpanded(&mut tx, &job_ids, now + chrono::Duration::seconds(5)).await?;
            tx.commit().await?;
            return Err(e);
        }
    };
    for job in &jobs {
        let plan = job.task_id.and_then(|t| plans.get(&(job.project_id.clone(), t)).cloned().flatten());
        let channels = match &plan {
            Some(plan) if wants(plan.notification.mode(), job.state) => {
                let mut c: Vec<String> =
                    plan.notification.webhooks.iter().map(|w| format!("webhook:{}", w.url)).collect();
                c.extend(plan.notification.emails.iter().map(|e| format!("email:{e}")));
                c
            }
            _ => vec![],
        };
        for ch in channels {
            rows::insert(&mut tx, job.id, &ch, now).await?;
        }
    }
    rows::mark_expanded(&mut tx, &job_ids).await?;
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
                rows::delivered(&mut conn, c.job_id, &c.channel, later).await?;
                metrics::counter!("cairn_scheduler_notifications_total", "channel" => kind(&c.channel), "result" => "delivered").increment(1);
                tracing::info!(job.id = %c.job_id, channel = %redact_channel(&c.channel), "notification delivered");
            }
            Err(e) => {
                let give_up = c.attempts >= MAX_ATTEMPTS;
                let delay =
                    Duration::from_secs(1u64 << c.attempts.clamp(0, 9) as u32).min(Duration::from_secs(600));
                let next = later + chrono::Duration::from_std(delay).unwrap_or_default();
                rows::failed(&mut conn, c.job_id, &c.channel, give_up, &e.to_string(), next).await?;
                metrics::counter!("cairn_scheduler_notification_failures_total", "channel" => kind(&c.channel)).increment(1);
                tracing::warn!(job.id = %c.job_id, channel = %redact_channel(&c.channel), attempt = c.attempts, give_up, error = %e, "notification not delivered");
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
    let body = payload(state, &row, &c.channel)?;
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
            .header("x-cairn-delivery", format!("{}/{}", c.job_id, c.channel))
            .header("x-cairn-event", "job.finished")
            .body(bytes)
            .send()
            .await
            .map_err(|e| Error::Unavailable(format!("webhook ({})", e.without_url())))?;
        if !resp.status().is_success() {
            return Err(Error::Unavailable(format!("webhook answered {}", resp.status())));
        }
        Ok(())
    } else if let Some(to) = c.channel.strip_prefix("email:") {
        send_email(state, to, &row, &body).await
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

fn payload(state: &State, row: &Row, channel: &str) -> Result<serde_json::Value> {
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
    Ok(serde_json::json!({
        "event": "job.finished",
        "delivery": format!("{}/{}", row.id, channel),
        "job": job_json,
        "task": { "name": row.task_id.map(|t| Kind::Task.name(&row.project_id, t)), "display_name": row.task_display_name },
        "state": job.state().as_str_name().trim_start_matches("JOB_STATE_"),
        "error": row.error,
        "snapshot": row.snapshot,
        "duration_seconds": duration,
        "links": { "job": job_link },
    }))
}

async fn send_email(state: &State, to: &str, row: &Row, body: &serde_json::Value) -> Result<()> {
    use lettre::{
        AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor, message::header::ContentType,
    };
    let Some(url) = &state.config.smtp_url else {
        return Err(Error::Unavailable("email: no SMTP server configured (smtp_url)".into()));
    };
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
    text.push_str(&format!("\nDetails: {}\n", body["links"]["job"].as_str().unwrap_or_default()));
    let message = Message::builder()
        .from(state.config.smtp_from.parse().map_err(|e| Error::Internal(format!("smtp_from: {e}")))?)
        .to(to.parse().map_err(|e| Error::Internal(format!("email {to:?}: {e}")))?)
        .subject(format!("[Cairn] {} {state_name}", row.task_display_name))
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
