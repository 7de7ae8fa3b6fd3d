//! Compiles `proto/cairn/v1/*.proto` in pure Rust (protox: no protoc needed) and writes the
//! descriptor set next to the generated code for gRPC reflection and JSON mapping.

use std::{env, fs, path::PathBuf};

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest.join("../../proto");
    // The Google API annotations the contract imports (field_behavior, resource), fetched from
    // PyPI's googleapis-common-protos by scripts/googleapis; not committed.
    let googleapis = manifest.join("../../.cache/googleapis");
    if !googleapis.join(".version").exists() {
        let status = std::process::Command::new(manifest.join("../../scripts/googleapis")).status()?;
        if !status.success() {
            return Err("scripts/googleapis could not fetch the Google API protos (python3 with pip and \
                        network access to PyPI are needed once)"
                .into());
        }
    }
    println!("cargo:rerun-if-changed={}", googleapis.join(".version").display());
    let dir = root.join("cairn/v1");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "proto"))
        .collect();
    files.sort();
    println!("cargo:rerun-if-changed={}", dir.display());
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let fds = protox::compile(&files, [&root, &googleapis])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("cairn_descriptor.bin"), fds.encode_to_vec())?;
    let mut config = tonic_prost_build::Config::new();
    // `prost::Name` on every message: the JSON mapping looks descriptors up by full name.
    config.enable_type_names();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds_with_config(fds, config)?;
    Ok(())
}
