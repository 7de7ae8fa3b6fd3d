//! proto3 JSON mapping of any `cairn.v1` message, through the descriptor set (so enums print
//! as names, timestamps as RFC 3339, field names in lowerCamelCase — exactly what other
//! clients and `grpcurl` see).

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

use crate::FILE_DESCRIPTOR_SET;

/// The descriptor pool of the contract, decoded once.
pub fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(FILE_DESCRIPTOR_SET).expect("descriptor set compiled by build.rs is valid")
    })
}

/// Errors of the JSON mapping.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The message type is not part of the contract.
    #[error("unknown message type {0}")]
    UnknownType(String),
    /// The bytes or the JSON did not match the type.
    #[error("{0}")]
    Invalid(String),
}

/// Renders a message in the proto3 JSON mapping (default values omitted).
pub fn to_json<M: prost::Message + prost::Name>(msg: &M) -> Result<serde_json::Value, JsonError> {
    let desc =
        pool().get_message_by_name(&M::full_name()).ok_or_else(|| JsonError::UnknownType(M::full_name()))?;
    let dynamic = DynamicMessage::decode(desc, msg.encode_to_vec().as_slice())
        .map_err(|e| JsonError::Invalid(e.to_string()))?;
    let opts = SerializeOptions::new().skip_default_fields(true);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &opts)
        .map_err(|e| JsonError::Invalid(e.to_string()))
}

/// Parses a message from the proto3 JSON mapping.
pub fn from_json<M: prost::Message + prost::Name + Default>(json: &str) -> Result<M, JsonError> {
    let desc =
        pool().get_message_by_name(&M::full_name()).ok_or_else(|| JsonError::UnknownType(M::full_name()))?;
    let mut de = serde_json::Deserializer::from_str(json);
    let dynamic =
        DynamicMessage::deserialize(desc, &mut de).map_err(|e| JsonError::Invalid(e.to_string()))?;
    dynamic.transcode_to::<M>().map_err(|e| JsonError::Invalid(e.to_string()))
}
