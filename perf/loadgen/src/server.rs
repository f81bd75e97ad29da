//! The ringrpc side of the benchmarks: helloworld.Greeter and
//! ringrpc.bench.Bench, with the same handler logic as the tonic peer
//! (`perf/tonic-peer`), so a measured difference is the servers'.

use bytes::Bytes;
use ringrpc_engine::{Server, ServerBuilder};
use ringrpc_service_api::{Request, Response, ResponseSink, Status, Streaming};

use crate::proto::helloworld::greeter_server::{Greeter, GreeterServer};
use crate::proto::helloworld::{HelloReply, HelloRequest};
use crate::proto::ringrpc::bench::bench_server::{Bench, BenchServer};
use crate::proto::ringrpc::bench::{Chunk, StreamDownRequest, UpSummary};

/// Largest payload StreamDown sends: its `Chunk` then still fits the 4 MiB
/// message limit gRPC clients apply by default.
pub const MAX_PAYLOAD: u32 = 4 * 1024 * 1024 - 8;

/// `SayHello` answers "Hello {name}!".
#[derive(Debug, Default)]
pub struct BenchGreeter;

impl Greeter for BenchGreeter {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let name = request.into_inner().name;
        Ok(Response::new(HelloReply {
            message: format!("Hello {name}!"),
        }))
    }
}

/// StreamDown repeats one pre-built payload, PingPong echoes, StreamUp sums
/// payload bytes.
#[derive(Debug, Default)]
pub struct BenchHandlers;

impl Bench for BenchHandlers {
    async fn stream_down(
        &self,
        request: Request<StreamDownRequest>,
        mut responses: ResponseSink<Chunk>,
    ) -> Result<(), Status> {
        let request = request.into_inner();
        if request.message_size > MAX_PAYLOAD {
            return Err(Status::invalid_argument(format!(
                "message_size {} is above {MAX_PAYLOAD}",
                request.message_size
            )));
        }
        // Built once per call; every message is a reference-counted clone.
        let chunk = Chunk {
            payload: Bytes::from(vec![0u8; request.message_size as usize]),
        };
        if request.count == 0 {
            // Until the client cancels: `send` then fails, or the call is dropped.
            loop {
                responses.send(chunk.clone()).await?;
            }
        }
        for _ in 0..request.count {
            responses.send(chunk.clone()).await?;
        }
        Ok(())
    }

    async fn ping_pong(
        &self,
        request: Request<Streaming<Chunk>>,
        mut responses: ResponseSink<Chunk>,
    ) -> Result<(), Status> {
        let mut incoming = request.into_inner();
        while let Some(chunk) = incoming.message().await? {
            responses.send(chunk).await?;
        }
        Ok(())
    }

    async fn stream_up(
        &self,
        request: Request<Streaming<Chunk>>,
    ) -> Result<Response<UpSummary>, Status> {
        let mut incoming = request.into_inner();
        let mut summary = UpSummary::default();
        while let Some(chunk) = incoming.message().await? {
            summary.bytes += chunk.payload.len() as u64;
            summary.messages += 1;
        }
        Ok(Response::new(summary))
    }
}

/// A server builder with Greeter and Bench (and nothing else) added.
pub fn builder() -> ServerBuilder {
    builder_with_worker_hook(|| {})
}

/// Like [`builder`], calling `on_worker_start` on each worker thread as it
/// builds its services (before the server accepts connections).
pub fn builder_with_worker_hook(
    on_worker_start: impl Fn() + Send + Sync + 'static,
) -> ServerBuilder {
    Server::builder()
        .add_service(move || {
            on_worker_start();
            GreeterServer::new(BenchGreeter)
        })
        .add_service(|| BenchServer::new(BenchHandlers))
}
