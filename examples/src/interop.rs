//! `grpc.testing.TestService`, the service of gRPC's cross-implementation
//! interoperability tests, so that any implementation's interop client can run
//! its cases against a ringrpc server.
//!
//! Behaviour follows the published test descriptions: payloads of the requested
//! sizes (zeros), `response_status` echoed as the call's status,
//! `x-grpc-test-echo-initial` echoed in the response headers and
//! `x-grpc-test-echo-trailing-bin` in the trailers, `expect_compressed` checked
//! against how each request message arrived, and `response_compressed` /
//! `ResponseParameters.compressed` honoured per message. The server is meant to
//! run with [`EngineConfig::response_compression`] set (see [`engine_config`]),
//! so responses are compressed whenever the client accepts it, and a message
//! that must not be is sent uncompressed. `UnimplementedMethod` answers
//! UNIMPLEMENTED, and `grpc.testing.UnimplementedService` is not registered.
//! Deadlines and cancellation need nothing here: the engine drops the handler.

use std::time::Duration;

use bytes::Bytes;
use ringrpc_engine::{Encoding, EngineConfig};
use ringrpc_service_api::{Code, Metadata, Request, Response, ResponseSink, Status, Streaming};

use crate::server::grpc_testing::test_service_server::{TestService, TestServiceServer};
use crate::server::grpc_testing::{
    BoolValue, EchoStatus, Empty, Payload, ResponseParameters, SimpleRequest, SimpleResponse,
    StreamingInputCallRequest, StreamingInputCallResponse, StreamingOutputCallRequest,
    StreamingOutputCallResponse,
};

const ECHO_INITIAL: &str = "x-grpc-test-echo-initial";
const ECHO_TRAILING: &str = "x-grpc-test-echo-trailing-bin";

/// Largest payload a request may ask for, so a client cannot make the server
/// allocate without bound (the test cases ask for at most ~300 KB).
pub const MAX_PAYLOAD: usize = 4 * 1024 * 1024;

/// The interop test service (stateless; one per worker).
#[derive(Debug, Default, Clone, Copy)]
pub struct InteropService;

impl InteropService {
    /// The service for `Server::add_service`.
    pub fn server() -> TestServiceServer<InteropService> {
        TestServiceServer::new(InteropService)
    }
}

/// The engine configuration the interop server runs with: `base` with gzip
/// response compression, so `response_compressed` can be honoured.
pub fn engine_config(base: EngineConfig) -> EngineConfig {
    EngineConfig {
        response_compression: Some(Encoding::Gzip),
        ..base
    }
}

fn payload(size: i32) -> Result<Payload, Status> {
    let size = usize::try_from(size)
        .ok()
        .filter(|&s| s <= MAX_PAYLOAD)
        .ok_or_else(|| Status::invalid_argument(format!("bad payload size {size}")))?;
    Ok(Payload {
        r#type: 0,
        body: vec![0u8; size],
    })
}

/// The status a request asks to end with, if any (code 0 means none).
fn echo_status(status: &Option<EchoStatus>, request: &Metadata) -> Result<(), Status> {
    match status {
        Some(EchoStatus { code, message }) if *code != 0 => {
            let mut status = Status::new(Code::from_i32(*code), message.clone());
            echo_trailing(request, status.metadata_mut());
            Err(status)
        }
        _ => Ok(()),
    }
}

fn echo_initial(request: &Metadata, into: &mut Metadata) {
    if let Some(value) = request.get(ECHO_INITIAL) {
        let _ = into.insert(ECHO_INITIAL, value);
    }
}

fn echo_trailing(request: &Metadata, into: &mut Metadata) {
    if let Some(value) = request.get_bin(ECHO_TRAILING) {
        let _ = into.insert_bin(ECHO_TRAILING, Bytes::copy_from_slice(value));
    }
}

fn wants(flag: &Option<BoolValue>) -> Option<bool> {
    flag.as_ref().map(|b| b.value)
}

fn check_compressed(expect: &Option<BoolValue>, compressed: bool) -> Result<(), Status> {
    if wants(expect) == Some(true) && !compressed {
        return Err(Status::invalid_argument(
            "expected a compressed request message",
        ));
    }
    Ok(())
}

/// Sends the responses `parameters` describe, honouring per-message compression
/// and pacing.
async fn send_responses(
    parameters: &[ResponseParameters],
    responses: &mut ResponseSink<StreamingOutputCallResponse>,
) -> Result<(), Status> {
    for p in parameters {
        if p.interval_us > 0 {
            tokio::time::sleep(Duration::from_micros(p.interval_us as u64)).await;
        }
        let message = StreamingOutputCallResponse {
            payload: Some(payload(p.size)?),
        };
        if wants(&p.compressed) == Some(false) {
            responses.send_uncompressed(message).await?;
        } else {
            responses.send(message).await?;
        }
    }
    Ok(())
}

/// Header and trailer echoes of a streaming response.
fn start_stream<T: prost::Message>(
    request: &Metadata,
    responses: &mut ResponseSink<T>,
) -> Result<(), Status> {
    let mut headers = Metadata::new();
    echo_initial(request, &mut headers);
    if !headers.is_empty() {
        responses.send_metadata(headers)?;
    }
    let mut trailers = Metadata::new();
    echo_trailing(request, &mut trailers);
    responses.set_trailers(trailers);
    Ok(())
}

impl TestService for InteropService {
    async fn empty_call(&self, _request: Request<Empty>) -> Result<Response<Empty>, Status> {
        Ok(Response::new(Empty {}))
    }

    async fn unary_call(
        &self,
        request: Request<SimpleRequest>,
    ) -> Result<Response<SimpleResponse>, Status> {
        check_compressed(&request.get_ref().expect_compressed, request.compressed())?;
        echo_status(&request.get_ref().response_status, request.metadata())?;
        let message = request.get_ref();
        let mut response = Response::new(SimpleResponse {
            payload: Some(payload(message.response_size)?),
            ..SimpleResponse::default()
        });
        if wants(&message.response_compressed) == Some(false) {
            response.disable_compression();
        }
        echo_initial(request.metadata(), response.metadata_mut());
        echo_trailing(request.metadata(), response.trailers_mut());
        Ok(response)
    }

    async fn streaming_output_call(
        &self,
        request: Request<StreamingOutputCallRequest>,
        mut responses: ResponseSink<StreamingOutputCallResponse>,
    ) -> Result<(), Status> {
        start_stream(request.metadata(), &mut responses)?;
        let message = request.get_ref();
        send_responses(&message.response_parameters, &mut responses).await?;
        echo_status(&message.response_status, request.metadata())
    }

    async fn streaming_input_call(
        &self,
        request: Request<Streaming<StreamingInputCallRequest>>,
    ) -> Result<Response<StreamingInputCallResponse>, Status> {
        let mut echo = Metadata::new();
        echo_initial(request.metadata(), &mut echo);
        let mut trailers = Metadata::new();
        echo_trailing(request.metadata(), &mut trailers);
        let mut stream = request.into_inner();
        let mut total = 0usize;
        while let Some((message, info)) = stream.message_with_info().await? {
            check_compressed(&message.expect_compressed, info.compressed)?;
            total += message.payload.map_or(0, |p| p.body.len());
        }
        let mut response = Response::new(StreamingInputCallResponse {
            aggregated_payload_size: i32::try_from(total).unwrap_or(i32::MAX),
        });
        *response.metadata_mut() = echo;
        *response.trailers_mut() = trailers;
        Ok(response)
    }

    async fn full_duplex_call(
        &self,
        request: Request<Streaming<StreamingOutputCallRequest>>,
        mut responses: ResponseSink<StreamingOutputCallResponse>,
    ) -> Result<(), Status> {
        start_stream(request.metadata(), &mut responses)?;
        let metadata = request.metadata().clone();
        let mut stream = request.into_inner();
        while let Some(message) = stream.message().await? {
            echo_status(&message.response_status, &metadata)?;
            send_responses(&message.response_parameters, &mut responses).await?;
        }
        Ok(())
    }

    async fn half_duplex_call(
        &self,
        request: Request<Streaming<StreamingOutputCallRequest>>,
        mut responses: ResponseSink<StreamingOutputCallResponse>,
    ) -> Result<(), Status> {
        start_stream(request.metadata(), &mut responses)?;
        let metadata = request.metadata().clone();
        let mut stream = request.into_inner();
        let mut requests = Vec::new();
        while let Some(message) = stream.message().await? {
            requests.push(message);
        }
        for message in &requests {
            echo_status(&message.response_status, &metadata)?;
            send_responses(&message.response_parameters, &mut responses).await?;
        }
        Ok(())
    }

    async fn unimplemented_method(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<Empty>, Status> {
        Err(Status::unimplemented(
            "grpc.testing.TestService/UnimplementedMethod is not implemented",
        ))
    }
}
