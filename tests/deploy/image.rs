//! deploy/docker/Dockerfile and .dockerignore against the workspace: the binaries it builds
//! exist, the toolchain is new enough, the runtime image has what the services need.

use std::collections::BTreeSet;

use crate::support::*;

const DOCKERFILE: &str = "deploy/docker/Dockerfile";

/// `ARG NAME=value` of the Dockerfile.
fn arg(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|l| l.trim().strip_prefix(&format!("ARG {name}=")).map(|v| v.trim().to_owned()))
}

fn version(v: &str) -> Vec<u32> {
    v.split('.').map(|p| p.parse().unwrap_or_else(|_| panic!("{v} is not a version"))).collect()
}

#[test]
fn image_ships_workspace_binaries() {
    let image = image();
    let workspace = workspace_bins();
    let mut p = Problems::default();
    for b in Binary::ALL {
        p.check(image.bins.contains(b.name()), || format!("the image lacks {}", b.name()));
    }
    p.check(image.bins.contains("cairn"), || "the image lacks the cairn CLI (health checks run it)".into());
    for bin in &image.bins {
        let pending = PENDING_BINS.contains(&bin.as_str());
        if workspace.contains(bin) {
            p.check(!pending, || format!("{bin} is a workspace target now: remove it from PENDING_BINS"));
        } else {
            p.check(pending, || format!("{DOCKERFILE} builds {bin}, which is no [[bin]] of the workspace"));
        }
    }
    p.check(!image.bins.contains("cairn-test-worker"), || "test helpers stay out of the image".into());
    p.assert_none(DOCKERFILE);
}

#[test]
fn image_toolchain_runtime_and_user() {
    let text = read(DOCKERFILE);
    let mut p = Problems::default();
    let image = image();

    // Builder: the pinned Rust on Debian bookworm, at least the workspace's rust-version.
    let rust = arg(&text, "RUST_VERSION").expect("ARG RUST_VERSION");
    let debian = arg(&text, "DEBIAN_RELEASE").expect("ARG DEBIAN_RELEASE");
    let manifest: toml::Table = read("Cargo.toml").parse().expect("Cargo.toml parses");
    let msrv = manifest["workspace"]["package"]["rust-version"].as_str().expect("workspace rust-version");
    p.check(version(&rust) >= version(msrv), || {
        format!("RUST_VERSION {rust} is older than rust-version {msrv}")
    });
    p.check(rust == "1.95", || format!("the builder is Rust 1.95, not {rust}"));
    p.check(debian == "bookworm", || format!("Debian bookworm, not {debian}"));
    let froms: Vec<&str> = text.lines().filter_map(|l| l.trim().strip_prefix("FROM ")).collect();
    p.check(froms.first().is_some_and(|f| f.starts_with("rust:${RUST_VERSION}-${DEBIAN_RELEASE}")), || {
        format!("the first stage builds on rust:${{RUST_VERSION}}-${{DEBIAN_RELEASE}}, got {froms:?}")
    });
    p.check(froms.last() == Some(&"debian:${DEBIAN_RELEASE}-slim"), || {
        format!("the runtime is debian slim, got {froms:?}")
    });
    let build = text.replace("\\\n", " ");
    p.check(build.contains("cargo build --release --locked"), || "cargo build --release --locked".into());

    // Runtime: certificates, ssh for sftp stores, tini as PID 1, a fixed unprivileged user.
    let install = build.lines().find(|l| l.contains("apt-get install")).unwrap_or_default();
    for pkg in ["ca-certificates", "openssh-client", "tini"] {
        p.check(install.split_whitespace().any(|w| w == pkg), || format!("the runtime installs {pkg}"));
    }
    p.check(text.lines().any(|l| l.trim() == r#"ENTRYPOINT ["/usr/bin/tini", "--"]"#), || {
        "ENTRYPOINT is tini, so manifests pass the binary as the command's first word".into()
    });
    p.check(image.uid >= 1000, || format!("USER {} is not an unprivileged uid", image.uid));
    p.check(build.contains(&format!("--uid {}", image.uid)), || {
        format!("the cairn user has uid {}", image.uid)
    });

    // EXPOSE documents exactly the default ports.
    let exposed: BTreeSet<u16> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("EXPOSE "))
        .flat_map(|l| l.split_whitespace().map(|p| p.parse().expect("EXPOSE numbers")))
        .collect();
    let defaults: BTreeSet<u16> = Binary::ALL
        .into_iter()
        .flat_map(|b| {
            let (grpc, metrics) = b.default_ports();
            grpc.into_iter().chain([metrics])
        })
        .collect();
    p.check(exposed == defaults, || {
        format!("EXPOSE {exposed:?}, the binaries' default ports are {defaults:?}")
    });
    p.assert_none(DOCKERFILE);
}

#[test]
fn build_context_is_an_allow_list() {
    let patterns: Vec<String> = read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    let mut p = Problems::default();
    p.check(patterns.first().map(String::as_str) == Some("*"), || {
        ".dockerignore starts by excluding everything".into()
    });
    let allowed: BTreeSet<&str> =
        patterns.iter().filter_map(|l| l.strip_prefix('!')).map(|l| l.trim_end_matches('/')).collect();
    // What cargo reads: the manifests, the lock file and every workspace member.
    let manifest: toml::Table = read("Cargo.toml").parse().expect("Cargo.toml parses");
    let members = manifest["workspace"]["members"].as_array().expect("members");
    let mut needed = vec![
        "Cargo.toml".to_owned(),
        "Cargo.lock".to_owned(),
        "proto".to_owned(),
        // services/api/build.rs compiles proto/ against these (scripts/googleapis fetches them).
        "scripts/googleapis".to_owned(),
        ".cache/googleapis".to_owned(),
    ];
    needed.extend(
        members.iter().filter_map(|m| m.as_str()).map(|m| m.split('/').next().unwrap_or(m).to_owned()),
    );
    for n in &needed {
        p.check(allowed.contains(n.as_str()), || format!(".dockerignore must let {n} in"));
    }
    for secret_or_cache in [".env", ".git", "target", "rust-toolchain.toml"] {
        p.check(!allowed.contains(secret_or_cache), || format!(".dockerignore lets {secret_or_cache} in"));
    }
    for never in ["**/target/", "**/.env"] {
        p.check(patterns.iter().any(|l| l == never), || {
            format!(".dockerignore should exclude {never} inside allowed directories")
        });
    }
    p.assert_none(".dockerignore");
}
