//! Console page time with a long history: job history (first page, a filtered page, the
//! 50th page) and job details (a job with 2,000 log lines), measured as whole requests
//! through the console, the scheduler and Postgres, p50/p99 over ITERS requests each.
//! JOBS (100000) jobs are seeded in bulk after one real RunTask.
//!
//!   cargo bench -p cairn-console --bench render        # JOBS=100000 ITERS=200

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use cairn_api::v1::{
    self, catalog_service_client::CatalogServiceClient, job_service_client::JobServiceClient,
};
use cairn_runtime::grpc::ClientInterceptor;

fn env<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let jobs: i64 = env("JOBS", 100_000);
    let iters: usize = env("ITERS", 200);
    let s = common::stack().await;
    let channel = |url: &str| cairn_runtime::grpc::channel(url).expect("url");
    let mut catalog = CatalogServiceClient::with_interceptor(
        channel(&s.catalog),
        ClientInterceptor::new(Some(common::ADMIN)),
    );
    catalog
        .create_connector(v1::CreateConnectorRequest {
            parent: "projects/default".into(),
            connector: Some(v1::Connector {
                display_name: "store".into(),
                config: Some(v1::connector::Config::LocalStore(v1::LocalStore {
                    path: "/srv/bench-repo".into(),
                })),
                repository_password: "a repository password".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?;
    let task = catalog
        .create_task(v1::CreateTaskRequest {
            parent: "projects/default".into(),
            task: Some(v1::Task {
                display_name: "nightly".into(),
                r#type: v1::TaskType::Check as i32,
                store: "store".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut jobs_api = JobServiceClient::with_interceptor(
        channel(&s.scheduler),
        ClientInterceptor::new(Some(common::ADMIN)),
    );
    let real = jobs_api
        .run_task(v1::RunTaskRequest { task: task.name.clone(), ..Default::default() })
        .await?
        .into_inner();
    s.stop_worker();
    let db = cairn_scheduler::schema_pool(s.db_url())?;
    // Finished jobs spread over the last 100 days; UUIDv7 ids in creation order.
    let now = chrono::Utc::now();
    let mut ids = Vec::with_capacity(jobs as usize);
    let mut times = Vec::with_capacity(jobs as usize);
    for i in 0..jobs {
        let t = now - chrono::Duration::seconds(100 * 86_400 * (jobs - i) / jobs);
        let ts =
            uuid::Timestamp::from_unix(uuid::NoContext, t.timestamp() as u64, t.timestamp_subsec_nanos());
        ids.push(uuid::Uuid::new_v7(ts));
        times.push(t);
    }
    let task_id: uuid::Uuid = task.name.rsplit('/').next().unwrap().parse()?;
    let t0 = Instant::now();
    sqlx::query(
        "INSERT INTO jobs (id, task_id, task_display_name, type, trigger, state, scheduled_time, run_after, create_time,
                           start_time, end_time, attempt, max_attempts, worker, project_id, store_ids, connector_ids,
                           stats, snapshot, error)
         SELECT j.id, $1, 'nightly', 'CHECK', CASE WHEN n % 7 = 0 THEN 'MANUAL' ELSE 'SCHEDULE' END,
                CASE WHEN n % 20 = 0 THEN 'FAILED' ELSE 'SUCCEEDED' END, j.t, j.t, j.t, j.t,
                j.t + interval '90 seconds', 1, 3, 'worker-1', 'default', s.ids, s.ids,
                '{\"bytesProcessed\": \"1048576\", \"filesNew\": \"10\"}'::jsonb, '',
                CASE WHEN n % 20 = 0 THEN 'repository is locked' ELSE '' END
         FROM unnest($2::uuid[], $3::timestamptz[]) WITH ORDINALITY AS j(id, t, n),
              (SELECT ARRAY(SELECT id FROM stores) AS ids) s",
    )
    .bind(task_id)
    .bind(&ids)
    .bind(&times)
    .execute(&db)
    .await?;
    let real_id: uuid::Uuid = real.name.rsplit('/').next().unwrap().parse()?;
    sqlx::query(
        "INSERT INTO job_logs (job_id, seq, time, level, message, attempt, worker_seq)
         SELECT $1, n, now(), 2, 'checked pack ' || n || ' of 2000: ok', 1, n FROM generate_series(1, 2000) n",
    )
    .bind(real_id)
    .execute(&db)
    .await?;
    sqlx::query("UPDATE jobs SET log_seq = 2000 WHERE id = $1").bind(real_id).execute(&db).await?;
    sqlx::query("ANALYZE jobs").execute(&db).await?;
    println!(
        "# cairn console render benchmark: {jobs} jobs in history (seeded in {:.1?}), {iters} requests per page, nproc {}",
        t0.elapsed(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );

    let http =
        reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build()?;
    let login = http.get(format!("{}/login", s.console)).send().await?.text().await?;
    let csrf = login
        .split("name=\"_csrf\" value=\"")
        .nth(1)
        .and_then(|x| x.split('"').next())
        .unwrap_or_default()
        .to_owned();
    let r = http
        .post(format!("{}/login", s.console))
        .form(&[("user", "admin"), ("password", common::ADMIN_PASSWORD), ("next", "/"), ("_csrf", &csrf)])
        .send()
        .await?;
    anyhow::ensure!(r.status().as_u16() == 303, "sign-in failed: {}", r.status());
    // The 50th page: follow next-page links.
    let mut deep = "/projects/default/jobs".to_owned();
    for _ in 0..49 {
        let body = http.get(format!("{}{deep}", s.console)).send().await?.text().await?;
        let next = body
            .split("data-testid=\"next-page\"")
            .next()
            .and_then(|b| b.rsplit("href=\"").next())
            .map(|h| h.split('"').next().unwrap_or_default().replace("&amp;", "&"));
        match next {
            Some(n) if n.starts_with('?') => deep = format!("/projects/default/jobs{n}"),
            _ => anyhow::bail!("no next page after {deep}"),
        }
    }
    let pages = [
        ("job history, first page", "/projects/default/jobs".to_owned()),
        ("job history, failed only", "/projects/default/jobs?state=failed".to_owned()),
        ("job history, 50th page", deep),
        ("job details, 2000 log lines", format!("/{}", real.name)),
    ];
    println!("{:<30} {:>9} {:>9} {:>9}", "page", "p50 ms", "p99 ms", "KiB");
    for (what, path) in pages {
        let mut took = Vec::with_capacity(iters);
        let mut size = 0;
        for _ in 0..iters {
            let t = Instant::now();
            let r = http.get(format!("{}{path}", s.console)).send().await?;
            anyhow::ensure!(r.status().is_success(), "{path}: {}", r.status());
            size = r.bytes().await?.len();
            took.push(t.elapsed());
        }
        took.sort();
        println!(
            "{what:<30} {:>9.2} {:>9.2} {:>9.1}",
            pct(&took, 0.5),
            pct(&took, 0.99),
            size as f64 / 1024.0
        );
    }
    Ok(())
}
