//! The deployment artifacts agree with the binaries they run. docker-compose.yml, the
//! Dockerfile and the Kubernetes manifests under deploy/k8s are parsed (no Docker, kustomize
//! or cluster needed), and every command, variable, port, probe, URL and binary name is
//! checked against the real flag parsers (`cli::Flags`), the `Config` structs and their
//! validation, and the workspace's `[[bin]]` targets. Renaming a flag, changing a default
//! port or dropping a configuration key breaks these tests until the manifests follow.

mod compose;
mod image;
mod k8s;
mod support;
mod up;
