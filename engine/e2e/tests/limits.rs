//! Message size limits: the server-wide send limit and its default, and
//! per-service receive and send limits (also after decompression), with tonic's
//! client on both I/O backends. The server-wide receive limit
//! (`codec.max_message_size`) is covered in lifecycle.rs.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use prost::Message;
use ringrpc_engine::{EngineConfig, Server, ServerBuilder, ServerHandle, ServiceOptions};
use ringrpc_engine_e2e::client::{Payload, StreamRequest};
use ringrpc_engine_e2e::server::test_service_server::TestServiceServer;
use ringrpc_engine_e2e::{client, h2_call, runtime, Tester, BACKENDS};
use ringrpc_service_api::server::{CallSlot, Service};
use ringrpc_service_api::Call;
use tonic::codec::CompressionEncoding;

const MIB: usize = 1024 * 1024;

/// The test service under another name, to have a second service without the
/// first one's options.
struct Renamed<S>(S);

const OTHER: &str = "ringrpc.test.Other";

impl<S: Service> Service for Renamed<S> {
    fn name(&self) -> &'static str {
        OTHER
    }

    fn call(&self, method: &[u8], call: Call, slot: Pin<&mut CallSlot>) -> bool {
        self.0.call(method, call, slot)
    }
}

fn config(backend: ringrpc_engine::Backend) -> EngineConfig {
    EngineConfig {
        backend,
        workers: 1,
        shutdown_grace: Duration::from_secs(5),
        ..EngineConfig::default()
    }
}

fn serve(builder: ServerBuilder) -> ServerHandle {
    builder
        .serve("127.0.0.1:0".parse().unwrap())
        .expect("server starts")
}

fn body(len: usize) -> Payload {
    Payload {
        body: Bytes::from(vec![0u8; len]),
    }
}

/// Receives the whole response stream; the status it ended with.
async fn stream_status(
    c: &mut ringrpc_engine_e2e::client::test_service_client::TestServiceClient<
        tonic::transport::Channel,
    >,
    count: u32,
    size: u32,
) -> (usize, Result<(), tonic::Status>) {
    let mut stream = match c.server_stream(StreamRequest { count, size }).await {
        Ok(response) => response.into_inner(),
        Err(status) => return (0, Err(status)),
    };
    let mut received = 0;
    loop {
        match stream.message().await {
            Ok(Some(_)) => received += 1,
            Ok(None) => return (received, Ok(())),
            Err(status) => return (received, Err(status)),
        }
    }
}

#[test]
fn the_send_limit_defaults_to_4_mib() {
    assert_eq!(EngineConfig::default().max_send_message_size, 4 * MIB);
    for backend in BACKENDS {
        let server = serve(
            Server::builder()
                .config(config(backend))
                .add_service(|| TestServiceServer::new(Tester)),
        );
        runtime().block_on(async {
            let mut c = client(server.local_addr()).await;
            // A 4 MiB - 64 byte body encodes to just under 4 MiB.
            let (received, status) = stream_status(&mut c, 1, (4 * MIB - 64) as u32).await;
            assert_eq!(
                (received, status.map_err(|s| s.code())),
                (1, Ok(())),
                "{backend:?}"
            );
            // A 4 MiB body plus its field header is over.
            let (received, status) = stream_status(&mut c, 1, (4 * MIB) as u32).await;
            assert_eq!(received, 0, "{backend:?}");
            let status = status.unwrap_err();
            assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{backend:?}");
            assert!(
                status.message().contains("larger than max"),
                "{}",
                status.message()
            );
        });
        server.shutdown_and_wait();
    }
}

#[test]
fn the_server_wide_send_limit_is_configurable() {
    for backend in BACKENDS {
        let server = serve(
            Server::builder()
                .config(EngineConfig {
                    max_send_message_size: 1000,
                    ..config(backend)
                })
                .add_service(|| TestServiceServer::new(Tester)),
        );
        runtime().block_on(async {
            let mut c = client(server.local_addr()).await;
            let reply = c.unary(body(900)).await.unwrap().into_inner();
            assert_eq!(reply.body.len(), 900, "{backend:?}");
            let status = c.unary(body(1000)).await.unwrap_err();
            assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{backend:?}");

            // A stream ends at its first message over the limit.
            let mut stream = c
                .server_stream(StreamRequest {
                    count: 3,
                    size: 2000,
                })
                .await
                .map(|r| r.into_inner());
            let status = match &mut stream {
                Ok(stream) => stream.message().await.unwrap_err(),
                Err(status) => status.clone(),
            };
            assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{backend:?}");
            let (received, status) = stream_status(&mut c, 3, 10).await;
            assert_eq!((received, status.map_err(|s| s.code())), (3, Ok(())));
        });
        server.shutdown_and_wait();
    }
}

#[test]
fn a_service_may_lower_its_receive_limit_checked_after_decompression() {
    for backend in BACKENDS {
        let server = serve(
            Server::builder()
                .config(config(backend))
                .add_service_with(
                    || TestServiceServer::new(Tester),
                    ServiceOptions::new().max_receive_message_size(1000),
                )
                .add_service(|| Renamed(TestServiceServer::new(Tester))),
        );
        runtime().block_on(async {
            let mut c = client(server.local_addr()).await;
            let reply = c.unary(body(900)).await.unwrap().into_inner();
            assert_eq!(reply.body.len(), 900, "{backend:?}");
            let status = c.unary(body(2000)).await.unwrap_err();
            assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{backend:?}");
            assert!(
                status.message().contains("larger than max"),
                "{}",
                status.message()
            );

            // 2000 zero bytes gzip to a few dozen: the limit applies to what
            // they decompress to.
            let mut gz = c.clone().send_compressed(CompressionEncoding::Gzip);
            let status = gz.unary(body(2000)).await.unwrap_err();
            assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{backend:?}");
            assert_eq!(
                gz.unary(body(900)).await.unwrap().into_inner().body.len(),
                900
            );

            // Other services keep the server's limit.
            let message = body(2000).encode_to_vec();
            let r = h2_call(
                server.local_addr(),
                &format!("/{OTHER}/Unary"),
                &[],
                &message,
            )
            .await;
            assert_eq!(r.grpc_status(), Some("0"), "{backend:?}");
        });
        server.shutdown_and_wait();
    }
}

#[test]
fn a_service_may_raise_or_lower_its_send_limit() {
    for backend in BACKENDS {
        let server = serve(
            Server::builder()
                .config(EngineConfig {
                    max_send_message_size: 1000,
                    ..config(backend)
                })
                .add_service_with(
                    || TestServiceServer::new(Tester),
                    ServiceOptions::new().max_send_message_size(MIB),
                )
                .add_service(|| Renamed(TestServiceServer::new(Tester))),
        );
        runtime().block_on(async {
            let mut c = client(server.local_addr()).await;
            let reply = c.unary(body(5000)).await.unwrap().into_inner();
            assert_eq!(reply.body.len(), 5000, "{backend:?}");

            let message = body(5000).encode_to_vec();
            let r = h2_call(
                server.local_addr(),
                &format!("/{OTHER}/Unary"),
                &[],
                &message,
            )
            .await;
            assert_eq!(r.grpc_status(), Some("8"), "{backend:?}");
            assert!(r.body.is_empty(), "nothing of the message was sent");
        });
        server.shutdown_and_wait();
    }
}
