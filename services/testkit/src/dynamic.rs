//! A gRPC client that learns the API from server reflection only, then calls any method with
//! proto3 JSON in and out — the acceptance view of an outside system.

use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, MethodDescriptor, SerializeOptions};
use tonic::{
    Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    transport::Channel,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

/// A reflection-driven client.
pub struct DynamicClient {
    channel: Channel,
    pool: DescriptorPool,
    services: Vec<String>,
}

impl DynamicClient {
    /// Connects and loads every service's descriptors through reflection.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let channel = tonic::transport::Endpoint::from_shared(url.to_owned())?.connect().await?;
        let mut reflection = ServerReflectionClient::new(channel.clone());
        let list = reflect(&mut reflection, MessageRequest::ListServices(String::new())).await?;
        let Some(MessageResponse::ListServicesResponse(list)) = list.first().cloned() else {
            anyhow::bail!("reflection did not list services");
        };
        let services: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        // Like grpcurl: the file of each service, then every dependency by file name.
        let mut files = std::collections::BTreeMap::new();
        let mut wanted: Vec<MessageRequest> =
            services.iter().map(|s| MessageRequest::FileContainingSymbol(s.clone())).collect();
        while let Some(req) = wanted.pop() {
            for resp in reflect(&mut reflection, req).await? {
                if let MessageResponse::FileDescriptorResponse(fd) = resp {
                    for bytes in fd.file_descriptor_proto {
                        let file = prost_types::FileDescriptorProto::decode(bytes.as_slice())?;
                        for dep in &file.dependency {
                            if !files.contains_key(dep) {
                                wanted.push(MessageRequest::FileByFilename(dep.clone()));
                            }
                        }
                        files.insert(file.name().to_owned(), file);
                    }
                }
            }
        }
        // Add files after their dependencies.
        let mut pool = DescriptorPool::new();
        let mut pending: Vec<prost_types::FileDescriptorProto> = files.into_values().collect();
        while !pending.is_empty() {
            let before = pending.len();
            let mut rest = Vec::new();
            for f in pending {
                if f.dependency.iter().all(|d| pool.get_file_by_name(d).is_some()) {
                    pool.add_file_descriptor_proto(f)?;
                } else {
                    rest.push(f);
                }
            }
            if rest.len() == before {
                let missing: Vec<String> = rest
                    .iter()
                    .flat_map(|f| f.dependency.iter().filter(|d| pool.get_file_by_name(d).is_none()).cloned())
                    .collect();
                anyhow::bail!("reflection returned files with missing dependencies: {missing:?}");
            }
            pending = rest;
        }
        Ok(DynamicClient { channel, pool, services })
    }

    /// Services the server listed.
    pub fn services(&self) -> &[String] {
        &self.services
    }

    /// The descriptors learnt.
    pub fn pool(&self) -> &DescriptorPool {
        &self.pool
    }

    /// Calls `service/method` (full service name) with a JSON request; returns the JSON response.
    pub async fn call(&self, service: &str, method: &str, json: &str) -> Result<serde_json::Value, Status> {
        let m = self.method(service, method)?;
        let mut de = serde_json::Deserializer::from_str(json);
        let request = DynamicMessage::deserialize(m.input(), &mut de)
            .map_err(|e| Status::invalid_argument(format!("client-side JSON: {e}")))?;
        let path = format!("/{}/{}", service, m.name()).parse().map_err(|_| Status::internal("bad path"))?;
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
        let response =
            grpc.unary(tonic::Request::new(request), path, DynCodec(m.output())).await?.into_inner();
        let opts = SerializeOptions::new().skip_default_fields(true);
        response
            .serialize_with_options(serde_json::value::Serializer, &opts)
            .map_err(|e| Status::internal(e.to_string()))
    }

    fn method(&self, service: &str, method: &str) -> Result<MethodDescriptor, Status> {
        let svc = self
            .pool
            .get_service_by_name(service)
            .ok_or_else(|| Status::unimplemented(format!("{service} not in reflection")))?;
        svc.methods()
            .find(|m| m.name() == method)
            .ok_or_else(|| Status::unimplemented(format!("{service}/{method} not in reflection")))
    }
}

async fn reflect(
    client: &mut ServerReflectionClient<Channel>,
    req: MessageRequest,
) -> anyhow::Result<Vec<MessageResponse>> {
    let request = ServerReflectionRequest { host: String::new(), message_request: Some(req) };
    let mut stream = client.server_reflection_info(tokio_stream::once(request)).await?.into_inner();
    let mut out = Vec::new();
    while let Some(r) = stream.message().await? {
        if let Some(m) = r.message_response {
            out.push(m);
        }
    }
    Ok(out)
}

struct DynCodec(MessageDescriptor);
struct DynEncoder;
struct DynDecoder(MessageDescriptor);

impl Codec for DynCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynEncoder;
    type Decoder = DynDecoder;
    fn encoder(&mut self) -> DynEncoder {
        DynEncoder
    }
    fn decoder(&mut self) -> DynDecoder {
        DynDecoder(self.0.clone())
    }
}

impl Encoder for DynEncoder {
    type Item = DynamicMessage;
    type Error = Status;
    fn encode(&mut self, item: DynamicMessage, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst).map_err(|e| Status::internal(e.to_string()))
    }
}

impl Decoder for DynDecoder {
    type Item = DynamicMessage;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<DynamicMessage>, Status> {
        DynamicMessage::decode(self.0.clone(), src).map(Some).map_err(|e| Status::internal(e.to_string()))
    }
}
