//! The console over HTTP against the real catalog, scheduler and a worker (authentication
//! on, a fresh database per test): every screen renders, forms show the API's field errors and
//! change nothing when refused, CSRF and cross-site posts are refused, a viewer is offered no
//! action it lacks and a forged post of one is refused by the servers, and a backup runs from
//! the task form to a snapshot with its log streamed live.

use std::time::Duration;

use cairn_api::v1;
use cairn_testkit::eventually;

mod common;

use common::*;

/// A browser without JavaScript: cookies, no automatic redirects, the last page's CSRF token.
struct Browser {
    http: reqwest::Client,
    base: String,
    csrf: String,
}

struct Answer {
    status: u16,
    location: String,
    body: String,
}

fn csrf_of(body: &str) -> Option<String> {
    let at = body.find("name=\"_csrf\" value=\"")? + "name=\"_csrf\" value=\"".len();
    Some(body[at..].split('"').next()?.to_owned())
}

impl Browser {
    fn new(base: &str) -> Browser {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Browser { http, base: base.to_owned(), csrf: String::new() }
    }

    async fn answer(&mut self, r: reqwest::RequestBuilder) -> Answer {
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        let location =
            r.headers().get("location").and_then(|l| l.to_str().ok()).unwrap_or_default().to_owned();
        let body = r.text().await.unwrap();
        if let Some(t) = csrf_of(&body) {
            self.csrf = t;
        }
        Answer { status, location, body }
    }

    async fn get(&mut self, path: &str) -> Answer {
        let r = self.http.get(format!("{}{path}", self.base));
        self.answer(r).await
    }

    /// Posts a form with the last page's CSRF token.
    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        let csrf = self.csrf.clone();
        all.push(("_csrf", &csrf));
        let r = self.http.post(format!("{}{path}", self.base)).form(&all);
        self.answer(r).await
    }

    async fn post_raw(&mut self, path: &str, fields: &[(&str, &str)], origin: Option<&str>) -> Answer {
        let mut r = self.http.post(format!("{}{path}", self.base)).form(fields);
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        self.answer(r).await
    }

    async fn sign_in(&mut self, user: &str, password: &str) -> Answer {
        let page = self.get("/login?next=/").await;
        assert_eq!(page.status, 200);
        self.post("/login", &[("user", user), ("password", password), ("next", "/")]).await
    }
}

/// Every file under a directory.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

/// `/projects/default/connectors/<id>` → the id.
fn last(path: &str) -> String {
    path.rsplit('/').next().unwrap().to_owned()
}

/// The page of a job once it ended (SUCCEEDED or FAILED).
async fn ended(b: &Browser, job: &str) -> Answer {
    eventually(Duration::from_secs(60), "the job to end", || {
        let mut b2 = Browser { http: b.http.clone(), base: b.base.clone(), csrf: String::new() };
        let job = job.to_owned();
        async move {
            let p = b2.get(&job).await;
            (p.body.contains("SUCCEEDED") || p.body.contains("FAILED")).then_some(p)
        }
    })
    .await
}

#[tokio::test]
async fn signing_in_out_and_every_screen() {
    let s = stack().await;
    let mut b = Browser::new(&s.console);
    // Not signed in: every page sends to the sign-in page, coming back afterwards.
    let a = b.get("/projects/default/jobs?state=failed").await;
    assert_eq!(a.status, 303);
    assert_eq!(a.location, "/login?next=%2Fprojects%2Fdefault%2Fjobs%3Fstate%3Dfailed");
    // A wrong password says so and signs nobody in.
    let a = b.sign_in("admin", "not the password").await;
    assert_eq!(a.status, 401);
    assert!(a.body.contains("Wrong user or password."), "{}", a.body);
    assert_eq!(b.get("/").await.status, 303);
    // A sign-in form without its CSRF cookie's token is refused.
    let a = b
        .post_raw("/login", &[("user", "admin"), ("password", ADMIN_PASSWORD), ("_csrf", "forged")], None)
        .await;
    assert_eq!(a.status, 403);
    // Signed in: back where they were going.
    let a = b.sign_in("admin", ADMIN_PASSWORD).await;
    assert_eq!((a.status, a.location.as_str()), (303, "/"), "{}", a.body);
    let a = b.get("/").await;
    assert_eq!(a.location, "/projects/default");
    for (path, marker) in [
        ("/projects/default", "<h1>Overview</h1>"),
        ("/projects/default/connectors", "<h1>Connectors</h1>"),
        ("/projects/default/tasks", "<h1>Tasks</h1>"),
        ("/projects/default/schedules", "<h1>Schedules</h1>"),
        ("/projects/default/heatmap", "<h1>Heatmap</h1>"),
        ("/projects/default/jobs", "<h1>Job History</h1>"),
        ("/projects/default/snapshots", "<h1>Snapshots</h1>"),
        ("/projects/default/admin", "<h1>Administration</h1>"),
        ("/projects/default/connectors/new?type=s3", "New Store: S3-compatible"),
        ("/projects/default/tasks/new?type=backup", "New backup task"),
        ("/projects/default/schedules/new", "New schedule"),
    ] {
        let a = b.get(path).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        assert!(a.body.contains(marker), "{path} lacks {marker}");
        assert!(a.body.contains("data-testid=\"sign-out\""), "{path} has the frame");
    }
    // Bad parameters name the field.
    let a = b.get("/projects/default/jobs?state=bogus").await;
    assert_eq!(a.status, 400);
    assert!(a.body.contains("state: &quot;bogus&quot; is not a job state"), "{}", a.body);
    let a = b.get("/projects/default/jobs?from=yesterday").await;
    assert_eq!(a.status, 400);
    assert!(a.body.contains("from:"), "{}", a.body);
    assert_eq!(b.get("/projects/nowhere").await.status, 404);
    assert_eq!(b.get("/no/such/page").await.status, 404);
    // The live schedule preview: next runs in the zone, errors inline.
    let a = b
        .get("/projects/default/schedules/preview?kind=calendar&expr=Mon..Fri+02:00&time_zone=Europe/Paris")
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body.matches("<li>").count(), 5, "{}", a.body);
    assert!(a.body.contains("CET") || a.body.contains("CEST"), "{}", a.body);
    let a =
        b.get("/projects/default/schedules/preview?kind=calendar&expr=Mon..Fri+25:00&time_zone=UTC").await;
    assert!(a.body.contains("preview-error"), "{}", a.body);
    // Sign out: the refresh token is revoked and the cookie gone.
    let a = b.post("/logout", &[]).await;
    assert_eq!((a.status, a.location.as_str()), (303, "/login"));
    assert_eq!(b.get("/projects/default").await.status, 303);
}

#[tokio::test]
async fn forms_are_refused_without_their_token_or_from_another_site_and_change_nothing() {
    let s = stack().await;
    let mut b = Browser::new(&s.console);
    b.sign_in("admin", ADMIN_PASSWORD).await;
    b.get("/projects/default/connectors/new?type=local").await;
    let form = [
        ("type", "local"),
        ("display_name", "forged"),
        ("local_store.path", "/tmp/forged"),
        ("repository_password", "pw-123456789"),
    ];
    let a = b.post_raw("/projects/default/connectors", &form, None).await;
    assert_eq!(a.status, 403, "no token");
    let mut with_token: Vec<(&str, &str)> = form.to_vec();
    let csrf = b.csrf.clone();
    with_token.push(("_csrf", &csrf));
    let a = b.post_raw("/projects/default/connectors", &with_token, Some("https://evil.example")).await;
    assert_eq!(a.status, 403, "another site");
    // Another session's token does not work here.
    let mut other = Browser::new(&s.console);
    other.sign_in("admin", ADMIN_PASSWORD).await;
    other.get("/projects/default").await;
    let mut stolen: Vec<(&str, &str)> = form.to_vec();
    let theirs = other.csrf.clone();
    stolen.push(("_csrf", &theirs));
    assert_ne!(theirs, csrf);
    assert_eq!(b.post_raw("/projects/default/connectors", &stolen, None).await.status, 403);
    let a = b.get("/projects/default/connectors").await;
    assert!(!a.body.contains("forged"), "nothing was created");
    // The real form works.
    let a = b.post_raw("/projects/default/connectors", &with_token, None).await;
    assert_eq!(a.status, 303, "{}", a.body);
}

#[tokio::test]
async fn a_backup_from_the_forms_to_its_snapshot_with_the_log_live() {
    let s = stack().await;
    let data = s.dirs.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("hello.txt"), "hello from the console").unwrap();
    std::fs::create_dir_all(data.join("keep")).unwrap();
    std::fs::write(data.join("keep/one.txt"), "one").unwrap();
    std::fs::write(data.join("keep/two.txt"), "two").unwrap();
    let repo = s.dirs.path().join("repo");
    let mut b = Browser::new(&s.console);
    b.sign_in("admin", ADMIN_PASSWORD).await;

    // A field error next to its field, then fixed.
    b.get("/projects/default/connectors/new?type=local").await;
    let bad = b
        .post(
            "/projects/default/connectors",
            &[
                ("type", "local"),
                ("display_name", "repo"),
                ("local_store.path", "relative/path"),
                ("repository_password", "a repository password"),
                ("create_if_missing", "1"),
            ],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("data-testid=\"error-local_store.path\""), "{}", bad.body);
    assert!(!bad.body.contains("a repository password"), "secrets are not echoed into the form");
    let store = b
        .post(
            "/projects/default/connectors",
            &[
                ("type", "local"),
                ("display_name", "repo"),
                ("local_store.path", repo.to_str().unwrap()),
                ("repository_password", "a repository password"),
                ("create_if_missing", "1"),
            ],
        )
        .await;
    assert_eq!(store.status, 303, "{}", store.body);
    let store_id = last(&store.location);
    b.get("/projects/default/connectors/new?type=local_path").await;
    let source = b
        .post(
            "/projects/default/connectors",
            &[
                ("type", "local_path"),
                ("display_name", "data"),
                ("local_path_source.paths", data.to_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(source.status, 303, "{}", source.body);
    let source_id = last(&source.location);

    // Editing: the form shows the connector (never its password); a bad value is refused
    // next to its field and changes nothing; a good one is saved, the password kept.
    let edit = b.get(&format!("{}/edit", store.location)).await;
    assert_eq!(edit.status, 200, "{}", edit.body);
    assert!(edit.body.contains(repo.to_str().unwrap()) && !edit.body.contains("a repository password"));
    let etag =
        edit.body.split("name=\"etag\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    // As a browser reads the attribute.
    let etag = etag.replace("&quot;", "\"");
    let bad = b
        .post(
            &store.location,
            &[("display_name", "repo"), ("local_store.path", "again/relative"), ("etag", &etag)],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("data-testid=\"error-local_store.path\""), "{}", bad.body);
    let saved = b
        .post(
            &store.location,
            &[
                ("display_name", "repo"),
                ("description", "the main repository"),
                ("local_store.path", repo.to_str().unwrap()),
                ("create_if_missing", "1"),
                ("etag", &etag),
            ],
        )
        .await;
    assert_eq!((saved.status, saved.location.as_str()), (303, store.location.as_str()), "{}", saved.body);
    assert!(b.get(&store.location).await.body.contains("the main repository"));

    // Test Connection on the store: the verdict, the worker.
    let page = b.get(&store.location).await;
    assert!(page.body.contains("never tested"));
    let a = b.post(&format!("{}/test", store.location), &[]).await;
    assert_eq!(a.status, 303, "{}", a.body);
    let page = b.get(&store.location).await;
    assert!(page.body.contains("data-testid=\"verdict\""), "{}", page.body);
    assert!(page.body.contains("writable yes"), "{}", page.body);

    // A backup task with a schedule: a bad expression changes nothing.
    b.get("/projects/default/tasks/new?type=backup").await;
    let task_form = |expr: &'static str| {
        vec![
            ("type", "backup"),
            ("display_name", "nightly-data"),
            ("source", source_id.clone().leak() as &str),
            ("store", store_id.clone().leak() as &str),
            ("keep_last", "3"),
            ("schedules", "2"),
            ("s0_on", "1"),
            ("s0_schedule_name", "nightly"),
            ("s0_kind", "calendar"),
            ("s0_expr", "*-*-* 02:00"),
            ("s0_time_zone", "UTC"),
            ("s1_on", "1"),
            ("s1_kind", "cron"),
            ("s1_expr", expr),
            ("s1_time_zone", "Europe/Paris"),
            ("then", "run"),
        ]
    };
    // "Add another schedule" is a plain submit: one more slot, ticked, and nothing created.
    let mut one: Vec<_> = task_form("")
        .into_iter()
        .filter(|(k, _)| !k.starts_with("s1_") && !["schedules", "then"].contains(k))
        .collect();
    one.push(("then", "add_schedule"));
    let more = b.post("/projects/default/tasks", &one).await;
    assert_eq!(more.status, 200, "{}", more.body);
    assert_eq!(more.body.matches("data-testid=\"schedule-slot\"").count(), 2, "{}", more.body);
    assert!(more.body.contains("name=\"s1_on\" value=\"1\" checked"), "{}", more.body);
    assert!(more.body.contains("value=\"nightly\""), "the first slot keeps its values: {}", more.body);
    // A bad second schedule is shown next to its own field, and nothing is created.
    let a = b.post("/projects/default/tasks", &task_form("0 2 * * 8")).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("data-testid=\"error-s1_expr\""), "{}", a.body);
    assert!(!a.body.contains("data-testid=\"error-s0_expr\""), "{}", a.body);
    assert!(a.body.contains("Schedule 2 is not valid."), "{}", a.body);
    assert!(!b.get("/projects/default/tasks").await.body.contains("nightly-data"), "no task was created");
    assert!(!b.get("/projects/default/schedules").await.body.contains("nightly"), "no schedule was created");
    let a = b.post("/projects/default/tasks", &task_form("0 5 * * 1-5")).await;
    assert_eq!(a.status, 303, "{}", a.body);
    let job = a.location.clone();
    assert!(job.starts_with("/projects/default/jobs/"), "save and run once opens the job: {job}");
    let schedules = b.get("/projects/default/schedules").await;
    assert!(
        schedules.body.contains("nightly") && schedules.body.contains("*-*-* 02:00:00"),
        "{}",
        schedules.body
    );
    // Both schedules were attached; the unnamed one is named after the task.
    assert!(
        schedules.body.contains("nightly-data-cron") && schedules.body.contains("0 5 * * 1-5"),
        "{}",
        schedules.body
    );
    assert!(schedules.body.contains("Europe/Paris"), "{}", schedules.body);

    // The job's events stream while it runs; the page ends SUCCEEDED with the snapshot link.
    let page = eventually(Duration::from_secs(60), "the backup to succeed", || {
        let mut b2 = Browser { http: b.http.clone(), base: b.base.clone(), csrf: String::new() };
        let job = job.clone();
        async move {
            let p = b2.get(&job).await;
            p.body.contains("SUCCEEDED").then_some(p)
        }
    })
    .await;
    assert!(page.body.contains("data-testid=\"job-snapshot\""), "{}", page.body);
    assert!(page.body.contains("class=\"line info\""), "the log is on the page");
    let events = b.http.get(format!("{}{job}/events?from=1", s.console)).send().await.unwrap();
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let text = tokio::time::timeout(Duration::from_secs(10), events.text())
        .await
        .expect("the stream ends with the job")
        .unwrap();
    assert!(text.contains("event: log") && text.contains("event: end"), "{text}");
    let snaps = b.get(&format!("/projects/default/snapshots?store={store_id}")).await;
    assert_eq!(snaps.body.matches("data-testid=\"snapshot-row\"").count(), 1, "{}", snaps.body);
    // The job's snapshot link names its task; the page picks the task's store and lists the
    // task's snapshots with the task selected.
    let link =
        page.body.split("data-testid=\"job-snapshot\" href=\"").nth(1).unwrap().split('"').next().unwrap();
    let of_task = b.get(&link.replace("&amp;", "&")).await;
    assert_eq!(
        of_task.body.matches("class=\"highlight\" data-testid=\"snapshot-row\"").count(),
        1,
        "{}",
        of_task.body
    );
    assert!(of_task.body.contains(&format!("<option value=\"{store_id}\" selected>")), "{}", of_task.body);
    assert!(of_task.body.contains("selected>nightly-data</option>"), "{}", of_task.body);
    // Each snapshot names the job that made it.
    assert!(of_task.body.contains(&format!("<a href=\"{job}\">job</a>")), "{job}: {}", of_task.body);
    // Editing the task: the form holds its values; a bad rule is refused next to its field;
    // a good one is saved.
    let tasks = b.get("/projects/default/tasks").await;
    let edit_path = tasks
        .body
        .split("href=\"")
        .filter_map(|x| x.split('"').next())
        .find(|h| h.ends_with("/edit"))
        .unwrap()
        .to_owned();
    let edit = b.get(&edit_path).await;
    assert!(edit.body.contains("name=\"keep_last\" value=\"3\""), "{}", edit.body);
    assert!(!edit.body.contains("s0_on"), "schedules are edited on their own page");
    let etag = edit
        .body
        .split("name=\"etag\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .replace("&quot;", "\"");
    let task_path = edit_path.trim_end_matches("/edit").to_owned();
    let base = [
        ("display_name", "nightly-data"),
        ("source", source_id.as_str()),
        ("store", store_id.as_str()),
        ("etag", etag.as_str()),
        ("then", "save"),
    ];
    let mut bad: Vec<(&str, &str)> = base.to_vec();
    bad.push(("keep_within", "7x"));
    let a = b.post(&task_path, &bad).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("data-testid=\"error-keep_within\""), "{}", a.body);
    // An RPO that is not a duration is refused by the console, one out of range by the API;
    // both next to the field, and nothing is saved.
    for rpo in ["soon", "10s"] {
        let mut bad: Vec<(&str, &str)> = base.to_vec();
        bad.push(("rpo", rpo));
        let a = b.post(&task_path, &bad).await;
        assert_eq!(a.status, 400, "{}", a.body);
        assert!(a.body.contains("data-testid=\"error-rpo\""), "{rpo}: {}", a.body);
    }
    let mut good: Vec<(&str, &str)> = base.to_vec();
    good.extend([("keep_last", "5"), ("rpo", "26h")]);
    assert_eq!(b.post(&task_path, &good).await.status, 303);
    let edited = b.get(&edit_path).await.body;
    assert!(edited.contains("name=\"keep_last\" value=\"5\""), "{edited}");
    assert!(edited.contains("name=\"rpo\" value=\"1day 2h\""), "{edited}");
    // The restore form offers the index's snapshots.
    let restore = b.get("/projects/default/tasks/new?type=restore").await;
    assert!(restore.body.contains("<datalist id=\"snapshot-choices\"><option value=\""), "{}", restore.body);

    // Restoring the job's snapshot from the snapshots page: two chosen paths, into another
    // destination than the task's, this once; exactly those paths are written.
    let (dest, scratch) = (s.dirs.path().join("dest"), s.dirs.path().join("scratch"));
    let mut dest_ids = Vec::new();
    for (name, dir) in [("dest", &dest), ("scratch", &scratch)] {
        std::fs::create_dir_all(dir).unwrap();
        let a = b
            .post(
                "/projects/default/connectors",
                &[
                    ("type", "local_path_destination"),
                    ("display_name", name),
                    ("local_path_destination.path", dir.to_str().unwrap()),
                ],
            )
            .await;
        assert_eq!(a.status, 303, "{}", a.body);
        dest_ids.push(last(&a.location));
    }
    let a = b
        .post(
            "/projects/default/tasks",
            &[
                ("type", "restore"),
                ("display_name", "restore-data"),
                ("store", &store_id),
                ("destination", &dest_ids[0]),
                ("then", "save"),
            ],
        )
        .await;
    assert_eq!(a.status, 303, "{}", a.body);
    let snapshot_id = link.rsplit("snapshot=").next().unwrap().to_owned();
    let chosen = b.get(&format!("/projects/default/snapshots?store={store_id}&snapshot={snapshot_id}")).await;
    assert!(chosen.body.contains("data-testid=\"restore-form\""), "{}", chosen.body);
    assert!(
        chosen.body.contains(">restore-data</option>") && chosen.body.contains(">scratch</option>"),
        "{}",
        chosen.body
    );
    let paths = format!("{}/hello.txt\n{}/keep/one.txt", data.display(), data.display());
    let a = b
        .post(
            "/projects/default/snapshots/restore",
            &[
                ("task", "restore-data"),
                ("snapshot", &snapshot_id),
                ("include_paths", &paths),
                ("destination", &format!("projects/default/connectors/{}", dest_ids[1])),
            ],
        )
        .await;
    assert_eq!(a.status, 303, "{}", a.body);
    let restore_job = a.location.clone();
    let done = ended(&b, &restore_job).await;
    assert!(done.body.contains("SUCCEEDED"), "{}", done.body);
    assert!(done.body.contains("data-testid=\"job-overrides\""), "{}", done.body);
    let mut written: Vec<String> =
        walk(&scratch).into_iter().map(|p| p.strip_prefix(&scratch).unwrap().display().to_string()).collect();
    written.sort();
    let inside = data.strip_prefix("/").unwrap().display().to_string();
    assert_eq!(written, [format!("{inside}/hello.txt"), format!("{inside}/keep/one.txt")]);
    assert!(walk(&dest).is_empty(), "the task's own destination is untouched");
    // The task itself was not changed.
    let task = b.get("/projects/default/tasks").await;
    assert!(task.body.contains("restore-data"));

    // The job's "Browse files" opens the snapshot's tree at its path; a directory opens by
    // its link; a file downloads byte for byte; ticking entries restores exactly those.
    let job_page = b.get(&job).await;
    let browse = job_page
        .body
        .split("data-testid=\"browse-snapshot\" href=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let found = b.get(&browse.replace("&amp;", "&")).await;
    assert_eq!(found.status, 303, "{}", found.body);
    assert_eq!(found.location, format!("/projects/default/connectors/{store_id}/snapshots/{snapshot_id}"));
    let tree = b.get(&found.location).await;
    assert_eq!(tree.status, 200, "{}", tree.body);
    assert_eq!(tree.body.matches("data-testid=\"entry\"").count(), 2, "hello.txt and keep/: {}", tree.body);
    assert!(tree.body.contains(">keep/</a>") && tree.body.contains("hello.txt"), "{}", tree.body);
    let keep = tree
        .body
        .split("data-testid=\"dir\"")
        .next()
        .unwrap()
        .rsplit("href=\"")
        .next()
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let keep = b.get(&keep.replace("&amp;", "&")).await;
    assert!(keep.body.contains("one.txt") && keep.body.contains("two.txt"), "{}", keep.body);
    assert!(keep.body.contains("data-testid=\"up\""), "{}", keep.body);
    let download = tree
        .body
        .split("data-testid=\"download\"")
        .next()
        .unwrap()
        .rsplit("href=\"")
        .next()
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let file = b.http.get(format!("{}{}", b.base, download.replace("&amp;", "&"))).send().await.unwrap();
    assert_eq!(file.status(), 200);
    assert!(
        file.headers()["content-disposition"].to_str().unwrap().contains("filename*=UTF-8''hello.txt"),
        "{:?}",
        file.headers()
    );
    assert_eq!(file.bytes().await.unwrap().as_ref(), b"hello from the console");
    let missing =
        b.get(&format!("/projects/default/connectors/{store_id}/snapshots/{snapshot_id}?path=/nope")).await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    let picked = s.dirs.path().join("picked");
    std::fs::create_dir_all(&picked).unwrap();
    let a = b
        .post(
            "/projects/default/connectors",
            &[
                ("type", "local_path_destination"),
                ("display_name", "picked"),
                ("local_path_destination.path", picked.to_str().unwrap()),
            ],
        )
        .await;
    let picked_id = last(&a.location);
    let (one, two) = (format!("{}/keep/one.txt", data.display()), format!("{}/hello.txt", data.display()));
    let a = b
        .post(
            "/projects/default/snapshots/restore",
            &[
                ("task", "restore-data"),
                ("snapshot", &snapshot_id),
                ("include_path", &one),
                ("include_path", &two),
                ("destination", &format!("projects/default/connectors/{picked_id}")),
            ],
        )
        .await;
    assert_eq!(a.status, 303, "{}", a.body);
    let restore_job = a.location.clone();
    let done = ended(&b, &restore_job).await;
    assert!(done.body.contains("SUCCEEDED"), "{}", done.body);
    let mut written: Vec<String> =
        walk(&picked).into_iter().map(|p| p.strip_prefix(&picked).unwrap().display().to_string()).collect();
    written.sort();
    assert_eq!(written, [format!("{inside}/hello.txt"), format!("{inside}/keep/one.txt")]);

    // The prune simulator on the store's real snapshot.
    let sim = b.get(&format!("/projects/default/tasks/simulate?store={store_id}&keep_last=1")).await;
    assert!(sim.body.contains("1 kept, 0 removed of 1 snapshots"), "{}", sim.body);
    // The overview: the source's last successful backup, within the task's 26 h.
    let o = b.get("/projects/default").await;
    assert!(
        o.body.contains("data-testid=\"source-protection\"") && !o.body.contains(">never<"),
        "{}",
        o.body
    );
    assert!(o.body.contains("data-state=\"OK\""), "{}", o.body);
    // The source's own page shows it too.
    let src = b.get(&format!("/projects/default/connectors/{source_id}")).await;
    assert!(
        src.body.contains("<h2>Protection</h2>") && src.body.contains("data-state=\"OK\""),
        "{}",
        src.body
    );
    // The heatmap forecasts the nightly run.
    let h = b.get("/projects/default/heatmap").await;
    assert!(h.body.contains("nightly"), "{}", h.body);
    // A cell lists its runs: the nightly run is at 02:00 UTC every day.
    let link = h
        .body
        .split("data-testid=\"heat-link\"")
        .next()
        .and_then(|x| x.rsplit("href=\"").next())
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    assert!(link.ends_with("-02"), "{link}");
    let cell = b.get(&format!("/projects/default/heatmap{link}")).await;
    let runs = cell
        .body
        .split("data-testid=\"cell-runs\"")
        .nth(1)
        .unwrap()
        .split("</section>")
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(runs.matches("<li>").count(), 1, "{runs}");
    assert!(runs.contains("nightly"), "{runs}");

    // The source's own objective from its edit form, and "Run FULL once" from the task list.
    let src_path = format!("/projects/default/connectors/{source_id}");
    let edit = b.get(&format!("{src_path}/edit")).await;
    let etag = edit.body.split("name=\"etag\" value=\"").nth(1).unwrap().split('"').next().unwrap();
    let etag = etag.replace("&quot;", "\"");
    let data_path = data.to_str().unwrap();
    let form = |rpo: &'static str| {
        vec![
            ("display_name", "data"),
            ("local_path_source.paths", data_path),
            ("rpo", rpo),
            ("etag", etag.as_str()),
        ]
    };
    let a = b.post(&src_path, &form("whenever")).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("data-testid=\"error-rpo\""), "{}", a.body);
    assert_eq!(b.post(&src_path, &form("2h")).await.status, 303);
    assert!(b.get(&format!("{src_path}/edit")).await.body.contains("name=\"rpo\" value=\"2h\""));
    let tasks = b.get("/projects/default/tasks").await;
    let full_action = tasks
        .body
        .split("data-testid=\"run-full\"")
        .next()
        .and_then(|x| x.rsplit("action=\"").next())
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let a = b.post(&full_action, &[("full", "1")]).await;
    assert_eq!(a.status, 303, "{}", a.body);
    let full_job = b.get(&a.location).await;
    assert!(full_job.body.contains("FULL backup (every file re-read)"), "{}", full_job.body);
    // A fleet from the forms: a labelled source, a task that selects by label; one run makes
    // one job per source, and the history shows the run.
    let a = b
        .post(
            "/projects/default/connectors",
            &[
                ("type", "local_path"),
                ("display_name", "fleet-a"),
                ("local_path_source.paths", data.to_str().unwrap()),
                ("labels", "fleet=web"),
            ],
        )
        .await;
    assert_eq!(a.status, 303, "{}", a.body);
    let shown = b.get(&format!("{}/edit", a.location)).await;
    assert!(shown.body.contains("name=\"labels\" value=\"fleet=web\""), "{}", shown.body);
    let fleet_form = |labels: &'static str, then: &'static str| {
        [
            ("type", "backup"),
            ("display_name", "web-fleet"),
            ("store", store_id.as_str()),
            ("fleet_labels", labels),
            ("then", then),
        ]
    };
    let bad = b.post("/projects/default/tasks", &fleet_form("bad key=web", "save")).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("data-testid=\"error-fleet_labels\""), "{}", bad.body);
    let a = b.post("/projects/default/tasks", &fleet_form("fleet=web", "run")).await;
    assert_eq!(a.status, 303, "{}", a.body);
    let fleet_job = ended(&b, &a.location).await;
    assert!(
        fleet_job.body.contains("SUCCEEDED") && fleet_job.body.contains("data-testid=\"job-run\""),
        "{}",
        fleet_job.body
    );
    let run_link = fleet_job
        .body
        .split("data-testid=\"job-run\"")
        .next()
        .unwrap()
        .rsplit("href=\"")
        .next()
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let run_page = b.get(&run_link.replace("&amp;", "&")).await;
    assert_eq!(
        run_page.body.matches("data-testid=\"job-row\"").count(),
        1,
        "one labelled source, one job: {}",
        run_page.body
    );
    assert!(run_page.body.contains("data-testid=\"run-filter\""), "{}", run_page.body);
}

#[tokio::test]
async fn a_viewer_is_offered_no_action_and_a_forged_post_is_refused() {
    let s = stack().await;
    let mut identity = admin(&s.catalog);
    identity
        .create_user(v1::CreateUserRequest {
            user_id: "vera".into(),
            user: Some(v1::User { display_name: "Vera".into(), ..Default::default() }),
            password: "vera's password".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    identity
        .set_member(v1::SetMemberRequest {
            parent: "projects/default".into(),
            user: "vera".into(),
            role: v1::Role::Viewer as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    // The admin makes a task and a schedule.
    let mut a = Browser::new(&s.console);
    a.sign_in("admin", ADMIN_PASSWORD).await;
    a.get("/projects/default/connectors/new?type=local").await;
    let store = a
        .post(
            "/projects/default/connectors",
            &[
                ("type", "local"),
                ("display_name", "repo"),
                ("local_store.path", "/tmp/console-viewer-repo"),
                ("repository_password", "a repository password"),
            ],
        )
        .await;
    a.get("/projects/default/tasks/new?type=check").await;
    let t = a
        .post(
            "/projects/default/tasks",
            &[
                ("type", "check"),
                ("display_name", "weekly-check"),
                ("store", &last(&store.location)),
                ("s0_on", "1"),
                ("s0_kind", "preset"),
                ("s0_expr", "weekly"),
                ("s0_time_zone", "UTC"),
                ("then", "save"),
            ],
        )
        .await;
    assert_eq!(t.status, 303, "{}", t.body);
    let admin_view = a.get("/projects/default/schedules").await;
    assert!(admin_view.body.contains("data-testid=\"delete\""));
    let delete_path = admin_view
        .body
        .split("action=\"")
        .filter_map(|x| x.split('"').next())
        .find(|p| p.ends_with("/delete"))
        .unwrap()
        .to_owned();

    let mut v = Browser::new(&s.console);
    let signed = v.sign_in("vera", "vera's password").await;
    assert_eq!(signed.status, 303);
    let page = v.get("/projects/default/schedules").await;
    assert!(page.body.contains("weekly-check") || page.body.contains("preset"), "{}", page.body);
    for absent in [
        "data-testid=\"delete\"",
        "data-testid=\"run-now\"",
        "data-testid=\"pause\"",
        "data-testid=\"new-schedule\"",
    ] {
        assert!(!page.body.contains(absent), "a viewer is offered {absent}");
    }
    assert!(!v.get("/projects/default").await.body.contains("nav-administration"));
    // A forged POST with the viewer's own valid token: the scheduler refuses it.
    let a2 = v.post(&delete_path, &[]).await;
    assert_eq!(a2.status, 403, "{}", a2.body);
    assert!(
        a.get("/projects/default/schedules").await.body.contains("data-testid=\"schedule-row\""),
        "the schedule is still there"
    );
    // Administration is the admins'.
    assert_eq!(v.get("/projects/default/admin").await.status, 403);
}

#[tokio::test]
async fn administration_shows_a_token_secret_once() {
    let s = stack().await;
    let mut b = Browser::new(&s.console);
    b.sign_in("admin", ADMIN_PASSWORD).await;
    b.get("/projects/default/admin").await;
    assert_eq!(
        b.post("/projects/default/admin/accounts", &[("display_name", "ci"), ("role", "operator")])
            .await
            .status,
        303
    );
    let page = b.get("/projects/default/admin").await;
    let account =
        page.body.split("name=\"account\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let made =
        b.post("/projects/default/admin/tokens", &[("account", &account), ("display_name", "deploys")]).await;
    assert_eq!(made.status, 200, "{}", made.body);
    let secret = made
        .body
        .split("data-testid=\"new-token-secret\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_owned();
    assert!(secret.len() > 20, "{secret}");
    let again = b.get("/projects/default/admin").await;
    assert!(!again.body.contains(&secret), "the secret is shown once");
    assert!(again.body.contains("deploys"));
    // The audit log lists the token's creation.
    assert!(again.body.contains("CreateApiToken"), "{}", again.body);
    // A platform admin creates a project (and lands in its administration) and a worker pool
    // (its enrolment token shown once).
    b.get("/projects/default/admin").await;
    let a = b
        .post("/projects/default/admin/projects", &[("project_id", "team-a"), ("display_name", "Team A")])
        .await;
    assert_eq!((a.status, a.location.as_str()), (303, "/projects/team-a/admin"), "{}", a.body);
    assert!(b.get("/projects/team-a").await.body.contains("Team A"), "the switcher offers it");
    let a = b
        .post(
            "/projects/team-a/admin/pools",
            &[("pool", "eu"), ("projects", "team-a"), ("labels", "zone=eu")],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let pool_token = a
        .body
        .split("data-testid=\"new-token-secret\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_owned();
    assert!(pool_token.len() > 20);
    let again = b.get("/projects/team-a/admin").await;
    assert!(again.body.contains("zone=eu") && !again.body.contains(&pool_token));
    let a = b.post("/projects/team-a/admin/pools", &[("pool", "bad"), ("labels", "zone")]).await;
    assert_eq!(a.status, 400);
    assert!(a.body.contains("labels: &quot;zone&quot; is not key=value"), "{}", a.body);

    // Members: a bad role names the field and changes nothing.
    let a = b.post("/projects/default/admin/members", &[("user", "admin"), ("role", "owner")]).await;
    assert_eq!(a.status, 400);
    assert!(a.body.contains("role: &quot;owner&quot;"), "{}", a.body);
}

#[tokio::test]
async fn an_expiring_session_is_refreshed_and_a_revoked_one_ends() {
    const KEY32: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let s = stack_with(|_| {}, |u| u.session_key = Some(KEY32.into())).await;
    let sealer = cairn_console::session::Sealer::new(Some(std::array::from_fn(|i| i as u8)));
    // A real login, then a session whose access token is about to expire.
    let mut identity = cairn_api::v1::identity_service_client::IdentityServiceClient::new(
        cairn_runtime::grpc::channel(&s.catalog).unwrap(),
    );
    let login = identity
        .login(v1::LoginRequest { user: "admin".into(), password: ADMIN_PASSWORD.into() })
        .await
        .unwrap()
        .into_inner();
    let now = chrono::Utc::now().timestamp();
    let session = |refresh: &str| cairn_console::session::Session {
        user: "admin".into(),
        access: login.access_token.clone(),
        access_expires: now + 10,
        refresh: refresh.to_owned(),
        refresh_expires: now + 3600,
        csrf: "csrf-token-of-the-test".into(),
    };
    let get = |cookie: String| {
        let url = format!("{}/projects/default", s.console);
        async move {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap()
                .get(url)
                .header("cookie", format!("{}={cookie}", cairn_console::session::COOKIE))
                .send()
                .await
                .unwrap()
        }
    };
    let r = get(sealer.seal(&session(&login.refresh_token))).await;
    assert_eq!(r.status(), 200);
    let renewed = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let value = renewed.split(';').next().unwrap().split_once('=').unwrap().1.to_owned();
    let fresh: cairn_console::session::Session = sealer.open(&value).expect("a renewed session");
    assert_ne!(fresh.access, login.access_token, "a new access token");
    assert_ne!(fresh.refresh, login.refresh_token, "the refresh token rotated");
    assert!(fresh.access_expires > now + 60);
    // The renewed session works; a session whose refresh token was already used (rotated away)
    // ends once its access token has expired.
    assert_eq!(get(value).await.status(), 200);
    let mut dead = session(&login.refresh_token);
    dead.access_expires = now - 1;
    let r = get(sealer.seal(&dead)).await;
    assert_eq!(r.status(), 303, "back to sign-in");
    assert!(r.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"), "the cookie is cleared");
}
