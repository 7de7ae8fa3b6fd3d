//! The browser journeys (e2e/journeys.mjs): playwright-core driving Debian's chromium against
//! the real stack. Skips, saying why, when node, chromium or e2e/node_modules are missing
//! (`.ci/run` installs them); CAIRN_SCREENSHOTS=docs/console keeps the screenshots.

mod common;

use common::*;

#[tokio::test]
async fn journeys_in_a_real_browser() {
    let e2e = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let missing: Vec<&str> = [
        (std::process::Command::new("node").arg("--version").output().is_err(), "node"),
        (!std::path::Path::new(&chromium).exists(), "chromium"),
        (
            !e2e.join("node_modules/playwright-core").exists(),
            "e2e/node_modules (npm ci --prefix services/console/e2e)",
        ),
    ]
    .into_iter()
    .filter_map(|(absent, what)| absent.then_some(what))
    .collect();
    if !missing.is_empty() {
        eprintln!("SKIP browser journeys: {} missing (.ci/run installs them)", missing.join(", "));
        return;
    }
    let s = stack().await;
    let mut identity = admin(&s.catalog);
    identity
        .create_user(cairn_api::v1::CreateUserRequest {
            user_id: "vera".into(),
            user: Some(cairn_api::v1::User { display_name: "Vera Viewer".into(), ..Default::default() }),
            password: "vera's password".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    identity
        .set_member(cairn_api::v1::SetMemberRequest {
            parent: "projects/default".into(),
            user: "vera".into(),
            role: cairn_api::v1::Role::Viewer as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    // Enough data for the backup to take several seconds on an idle machine (progress is
    // reported once a second), so progress is seen moving: 512 MB that does not deduplicate,
    // one random block with a different byte in every 4 KiB of each file.
    let data = s.dirs.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("hello.txt"), "hello from the browser").unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let block: Vec<u8> = (0..4 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    for i in 0..128u8 {
        let mut chunk = block.clone();
        for at in (0..chunk.len()).step_by(4096) {
            chunk[at] ^= i.wrapping_add(1);
        }
        std::fs::write(data.join(format!("blob-{i:03}.bin")), chunk).unwrap();
    }
    let shots = match std::env::var("CAIRN_SCREENSHOTS") {
        Ok(dir) => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(dir),
        Err(_) => s.dirs.path().join("screenshots"),
    };
    let out = tokio::process::Command::new("node")
        .arg(e2e.join("journeys.mjs"))
        .env("CONSOLE_URL", &s.console)
        .env("SCREENSHOTS", &shots)
        .env("DATA_DIR", &data)
        .env("REPO_DIR", s.dirs.path().join("repo"))
        .env("RESTORE_DIR", s.dirs.path().join("restored"))
        .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("VIEWER_PASSWORD", "vera's password")
        .env("CHROMIUM", &chromium)
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "browser journeys failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("all journeys passed"));
}
