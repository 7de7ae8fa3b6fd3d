//! The `cairn.v1` contract: generated messages, clients and servers, the descriptor set
//! served by reflection, proto3 JSON rendering, and resource-name helpers.
//!
//! This is the only crate that compiles `proto/`. It holds no behaviour beyond naming and
//! the source selector's matching rule ([`fleet`]), which the catalog and the scheduler share.

pub mod fleet;
pub mod ids;
pub mod json;
pub mod names;

/// Generated code of package `cairn.v1`.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("cairn.v1");
}

/// Encoded `FileDescriptorSet` of every file under `proto/` (well-known types included).
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/cairn_descriptor.bin"));
