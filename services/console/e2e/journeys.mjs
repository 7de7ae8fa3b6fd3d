// Browser journeys of the Cairn console against a running stack (started by
// services/console/tests/browser.rs): sign in, connectors with a field error then fixed, Test
// Connection, a backup task with a schedule while the preview shows the next runs, Save and
// run once with the log and progress live, SUCCEEDED with the snapshot link, a restore, a
// cancelled job, a paused schedule, the heatmap, and a viewer offered no Delete whose forged
// POST is refused. Screenshots of every screen go to $SCREENSHOTS.
import { chromium } from "playwright-core";
import fs from "node:fs";
import path from "node:path";
import assert from "node:assert/strict";

const env = (k) => { const v = process.env[k]; if (!v) throw new Error(`${k} is not set`); return v; };
const BASE = env("CONSOLE_URL");
const SHOTS = env("SCREENSHOTS");
const DATA = env("DATA_DIR");
const REPO = env("REPO_DIR");
const RESTORE = env("RESTORE_DIR");
const ADMIN_PASSWORD = env("ADMIN_PASSWORD");
const VIEWER_PASSWORD = env("VIEWER_PASSWORD");
fs.mkdirSync(SHOTS, { recursive: true });

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
const tid = (id) => `[data-testid="${id}"]`;
let step = "start";
const log = (s) => { step = s; console.log(`• ${s}`); };

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

async function signIn(page, user, password) {
  await page.goto(`${BASE}/`);
  await page.waitForURL(/\/login/);
  await page.fill(tid("login-user"), user);
  await page.fill(tid("login-password"), password);
  await page.click(tid("login-submit"));
  await page.waitForURL(/\/projects\/default$/);
}

let current = null;
try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 }, colorScheme: "light" });
  const page = await ctx.newPage();
  current = page;
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));

  log("sign in");
  await page.goto(`${BASE}/login`);
  await shot(page, "sign-in");
  await signIn(page, "admin", ADMIN_PASSWORD);
  await assert.doesNotReject(page.locator(tid("user")).waitFor());

  log("a store with a field error, then fixed");
  await page.click(tid("nav-connectors"));
  await page.click(tid("new-local"));
  await page.fill(tid("field-display_name"), "repo");
  await page.fill(tid("field-local_store.path"), "relative/repo");
  await page.fill(tid("field-repository_password"), "a repository password");
  await page.click(tid("save-connector"));
  const err = page.locator(tid("error-local_store.path"));
  await err.waitFor();
  assert.match(await err.innerText(), /absolute|path/i);
  await shot(page, "connector-form-error");
  await page.fill(tid("field-local_store.path"), REPO);
  await page.fill(tid("field-repository_password"), "a repository password");
  await page.click(tid("save-connector"));
  await page.waitForURL(/\/connectors\/[0-9a-f-]{36}$/);

  log("test the connection");
  await page.click(tid("test-connection"));
  await page.locator(tid("verdict")).waitFor();
  assert.match(await page.locator(tid("last-test")).innerText(), /OK.*writable yes/s);
  await shot(page, "connector-dashboard");

  log("a source and a destination");
  for (const [kind, fields] of [["local_path", { "display_name": "data", "local_path_source.paths": DATA }], ["local_path_destination", { "display_name": "restore-here", "local_path_destination.path": RESTORE }]]) {
    await page.goto(`${BASE}/projects/default/connectors/new?type=${kind}`);
    for (const [k, v] of Object.entries(fields)) await page.fill(tid(`field-${k}`), v);
    await page.click(tid("save-connector"));
    await page.waitForURL(/\/connectors\/[0-9a-f-]{36}$/);
  }
  await page.goto(`${BASE}/projects/default/connectors`);
  assert.equal(await page.locator(tid("connector-row")).count(), 3);
  await shot(page, "connectors");

  log("a backup task with a schedule, previewed while typing");
  await page.goto(`${BASE}/projects/default/tasks`);
  await page.click(tid("new-task-backup"));
  await page.fill(tid("field-display_name"), "nightly-data");
  await page.selectOption(tid("field-source"), { label: "data (local_path)" });
  await page.selectOption(tid("field-store"), { label: "repo (local)" });
  await page.fill(tid("field-keep_last"), "2");
  await page.check(tid("s0_on"));
  await page.selectOption(tid("field-s0_kind"), "calendar");
  await page.fill(tid("field-s0_expr"), "Mon..Fri 25:00");
  await page.locator(`${tid("s0_schedule-preview")} ${tid("preview-error")}`).waitFor();
  await page.fill(tid("field-s0_expr"), "Mon..Fri 02:00");
  await page.fill(tid("field-s0_time_zone"), "Europe/Paris");
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="s0_schedule-preview"] [data-testid="preview-runs"] li').length === 5);
  const first = await page.locator(`${tid("s0_schedule-preview")} ${tid("preview-runs")} li`).first().innerText();
  assert.match(first, /^(Mon|Tue|Wed|Thu|Fri) .* 02:00 CES?T$/);
  // A second schedule in the same flow, with its own preview.
  await page.click(tid("add-schedule"));
  await page.locator(tid("field-s1_kind")).waitFor();
  assert.equal(await page.inputValue(tid("field-s0_expr")), "Mon..Fri 02:00", "the first schedule is kept");
  await page.selectOption(tid("field-s1_kind"), "calendar");
  await page.fill(tid("field-s1_expr"), "Sat 03:00");
  await page.waitForFunction(() => document.querySelector('[data-testid="s1_schedule-preview"] [data-testid="preview-normalized"]')?.textContent === "Sat *-*-* 03:00:00");
  assert.equal(await page.locator(`${tid("s1_schedule-preview")} ${tid("preview-runs")} li`).count(), 5);
  assert.match(await page.locator(`${tid("s0_schedule-preview")} ${tid("preview-normalized")}`).innerText(), /02:00/, "the first preview is its own");
  await page.locator(tid("prune-summary")).waitFor({ state: "detached" }).catch(() => {});
  await shot(page, "task-form");
  await page.click(tid("save-and-run"));
  await page.waitForURL(/\/jobs\/[0-9a-f-]{36}$/);

  log("the log grows live and the progress bar moves, then SUCCEEDED");
  const linesAtLoad = await page.locator("#job-log .line").count();
  const progress = new Set();
  const started = Date.now();
  while (!(await page.locator("#job-log[data-ended]").count())) {
    const p = page.locator(tid("job-progress"));
    if (await p.count()) progress.add(await p.getAttribute("value"));
    assert.ok(Date.now() - started < 120000, "the backup ends within two minutes");
    await page.waitForTimeout(100);
  }
  const linesAtEnd = await page.locator("#job-log .line").count();
  assert.ok(linesAtEnd > linesAtLoad, `lines arrived live (${linesAtLoad} → ${linesAtEnd})`);
  console.log(`  progress values seen: ${[...progress].join(", ") || "none"}`);
  assert.ok(progress.size >= 2, "the progress bar moved while the page was open");
  assert.equal(await page.locator(`${tid("job-summary")} ${tid("job-state")}`).innerText(), "SUCCEEDED");
  await page.locator(tid("job-snapshot")).waitFor();
  await shot(page, "job-details");
  await page.click(tid("job-snapshot"));
  await page.waitForURL(/\/snapshots\?task=[0-9a-f-]{36}&snapshot=/);
  assert.equal(await page.locator(`${tid("snapshot-task")} option:checked`).innerText(), "nightly-data");
  assert.equal(await page.locator(`${tid("snapshot-row")}.highlight`).count(), 1);
  await shot(page, "snapshots");

  log("a restore");
  await page.goto(`${BASE}/projects/default/tasks/new?type=restore`);
  await page.fill(tid("field-display_name"), "restore-data");
  await page.selectOption(tid("field-store"), { label: "repo (local)" });
  await page.selectOption(tid("field-destination"), { label: "restore-here (local_path)" });
  await page.click(tid("save-and-run"));
  await page.waitForURL(/\/jobs\/[0-9a-f-]{36}$/);
  await page.locator("#job-log[data-ended]").waitFor({ timeout: 120000 });
  assert.equal(await page.locator(`${tid("job-summary")} ${tid("job-state")}`).innerText(), "SUCCEEDED");
  const restored = fs.readdirSync(RESTORE, { recursive: true }).map(String);
  assert.ok(restored.some((f) => f.endsWith("hello.txt")), `hello.txt was restored: ${restored.slice(0, 10)}`);

  log("browse the snapshot: download a file, restore one picked entry");
  await page.goto(`${BASE}/projects/default/snapshots`);
  await page.click(`${tid("snapshot-row")} ${tid("browse")}`);
  await page.waitForURL(/\/connectors\/[0-9a-f-]{36}\/snapshots\/[0-9a-f]{64}$/);
  await page.locator(tid("entry")).first().waitFor();
  const hello = page.locator(tid("entry"), { hasText: "hello.txt" });
  const [download] = await Promise.all([page.waitForEvent("download"), hello.locator(tid("download")).click()]);
  assert.equal(download.suggestedFilename(), "hello.txt");
  assert.equal(fs.readFileSync(await download.path(), "utf8"), fs.readFileSync(`${DATA}/hello.txt`, "utf8"));
  await hello.locator(tid("pick")).check();
  await shot(page, "snapshot-browser");
  await page.click(tid("restore-picked-submit"));
  await page.waitForURL(/\/jobs\/[0-9a-f-]{36}$/);
  await page.locator("#job-log[data-ended]").waitFor({ timeout: 120000 });
  assert.equal(await page.locator(`${tid("job-summary")} ${tid("job-state")}`).innerText(), "SUCCEEDED");
  assert.match(await page.locator(tid("job-overrides")).innerText(), /hello\.txt/);

  log("cancel a running job");
  await page.goto(`${BASE}/projects/default/connectors/new?type=command`);
  await page.fill(tid("field-display_name"), "slow");
  await page.fill(tid("field-command_source.command"), "sleep 120");
  await page.fill(tid("field-command_source.file_name"), "slow.out");
  await page.click(tid("save-connector"));
  await page.waitForURL(/\/connectors\/[0-9a-f-]{36}$/);
  await page.goto(`${BASE}/projects/default/tasks/new?type=backup`);
  await page.fill(tid("field-display_name"), "slow-backup");
  await page.selectOption(tid("field-source"), { label: "slow (command)" });
  await page.selectOption(tid("field-store"), { label: "repo (local)" });
  await page.click(tid("save-and-run"));
  await page.waitForURL(/\/jobs\/[0-9a-f-]{36}$/);
  await page.waitForFunction(() => document.querySelector('[data-testid="job-summary"] [data-testid="job-state"]')?.textContent === "RUNNING", null, { timeout: 60000 });
  page.once("dialog", (d) => d.accept());
  await page.click(tid("cancel-job"));
  await page.waitForFunction(() => document.querySelector('[data-testid="job-summary"] [data-testid="job-state"]')?.textContent === "CANCELLED", null, { timeout: 60000 });

  log("job history, filtered");
  await page.goto(`${BASE}/projects/default/jobs`);
  assert.ok((await page.locator(tid("job-row")).count()) >= 3);
  await page.selectOption(tid("filter-state"), "cancelled");
  await page.click('form.filters button[type="submit"]');
  await page.waitForURL(/state=cancelled/);
  assert.equal(await page.locator(tid("job-row")).count(), 1);
  await page.goto(`${BASE}/projects/default/jobs`);
  await shot(page, "job-history");

  log("pause a schedule");
  await page.click(tid("nav-schedules"));
  await page.locator(`${tid("schedule-row")}[data-name="nightly-data-calendar-2"]`).waitFor();
  const row = page.locator(`${tid("schedule-row")}[data-name="nightly-data-calendar"]`);
  await row.locator(tid("pause")).click();
  await page.waitForURL(/\/schedules$/);
  await row.locator(tid("paused")).waitFor();
  await row.locator(tid("resume")).click();
  await page.waitForURL(/\/schedules$/);
  assert.equal(await row.locator(tid("paused")).count(), 0);
  await shot(page, "schedules");

  log("the heatmap shows the runs");
  await page.click(tid("nav-heatmap"));
  const hot = await page.locator(`${tid("heat-cell")}:not([data-value="0.00"])`).count();
  assert.ok(hot >= 5, `weekday 02:00 runs are shaded (${hot} cells)`);
  assert.ok((await page.locator(`${tid("forecast-runs")} tbody tr`).count()) >= 5);
  await shot(page, "heatmap");

  log("overview and administration");
  await page.click(tid("nav-overview"));
  await page.locator(tid("source-protection")).waitFor();
  await shot(page, "overview");
  await page.click(tid("nav-administration"));
  await shot(page, "administration");

  log("dark mode and a narrow screen");
  const dark = await browser.newContext({ viewport: { width: 420, height: 900 }, colorScheme: "dark" });
  const dp = await dark.newPage();
  await signIn(dp, "admin", ADMIN_PASSWORD);
  const bg = await dp.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.notEqual(bg, "rgb(255, 255, 255)", "dark mode follows the system setting");
  await shot(dp, "overview-dark-narrow");
  await dark.close();

  log("a viewer sees no Delete, and a forged POST is refused");
  const vctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const vp = await vctx.newPage();
  await signIn(vp, "vera", VIEWER_PASSWORD);
  await vp.goto(`${BASE}/projects/default/schedules`);
  await vp.locator(tid("schedule-row")).first().waitFor();
  assert.equal(await vp.locator(tid("delete")).count(), 0);
  assert.equal(await vp.locator(tid("run-now")).count(), 0);
  await page.goto(`${BASE}/projects/default/schedules`);
  const target = await page.locator(`${tid("schedule-row")} form[action$="/delete"]`).first().getAttribute("action");
  const status = await vp.evaluate(async (action) => {
    const csrf = document.querySelector('input[name="_csrf"]').value;
    const r = await fetch(action, { method: "POST", body: new URLSearchParams({ _csrf: csrf }), redirect: "manual" });
    return r.status;
  }, target);
  assert.equal(status, 403);
  await page.goto(`${BASE}/projects/default/schedules`);
  assert.ok((await page.locator(tid("schedule-row")).count()) >= 1, "the schedule is still there");
  await vctx.close();

  assert.deepEqual(errors, [], "no script errors");
  console.log("all journeys passed");
} catch (e) {
  console.error(`FAILED at step "${step}": ${e.stack || e}`);
  if (current) {
    // What the page showed, for whoever reads the CI log.
    await shot(current, "failure").catch(() => {});
    const text = await current.locator("body").innerText().catch(() => "");
    console.error(`page at failure: ${current.url()}\n${text.slice(0, 3000)}`);
  }
  process.exitCode = 1;
} finally {
  await browser.close();
}
