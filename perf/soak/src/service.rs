//! The services the soak calls: `helloworld.Greeter` for unary calls and
//! `ringrpc.bench.Bench` for the three streaming kinds, each of whose handlers
//! first sleeps for `x-sleep-ms` milliseconds when the request asks, so that
//! deadlines expire and cancellations and disconnects find handlers mid-call.

use std::time::Duration;

use bytes::Bytes;
use ringrpc_service_api::{Metadata, Request, Response, ResponseSink, Status, Streaming};

#[allow(missing_docs, clippy::all)]
pub mod helloworld {
    include!(concat!(env!("OUT_DIR"), "/helloworld.rs"));
}

#[allow(missing_docs, clippy::all)]
pub mod ringrpc {
    pub mod bench {
        include!(concat!(env!("OUT_DIR"), "/ringrpc.bench.rs"));
    }
}

use helloworld::greeter_server::Greeter;
use helloworld::{HelloReply, HelloRequest};
use ringrpc::bench::bench_server::Bench;
use ringrpc::bench::{Chunk, StreamDownRequest, UpSummary};

/// Request metadata asking the handler to sleep this many milliseconds first.
pub const SLEEP_HEADER: &str = "x-sleep-ms";

/// Largest `StreamDown` message the service builds.
pub const MAX_MESSAGE_SIZE: u32 = 64 * 1024;

async fn sleep_as_asked(metadata: &Metadata) {
    let millis = metadata
        .get(SLEEP_HEADER)
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(millis) = millis {
        tokio::time::sleep(Duration::from_millis(millis)).await;
    }
}

/// `helloworld.Greeter`: `SayHello` answers "Hello {name}!".
pub struct Greetings;

impl Greeter for Greetings {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        sleep_as_asked(request.metadata()).await;
        let name = request.into_inner().name;
        Ok(Response::new(HelloReply {
            message: format!("Hello {name}!"),
        }))
    }
}

/// `ringrpc.bench.Bench` as perf/proto/bench.proto specifies it.
pub struct BenchHandlers;

impl Bench for BenchHandlers {
    async fn stream_down(
        &self,
        request: Request<StreamDownRequest>,
        mut responses: ResponseSink<Chunk>,
    ) -> Result<(), Status> {
        sleep_as_asked(request.metadata()).await;
        let StreamDownRequest {
            message_size,
            count,
        } = request.into_inner();
        if message_size > MAX_MESSAGE_SIZE {
            return Err(Status::invalid_argument("message_size is over 64 KiB"));
        }
        let payload = Bytes::from(vec![0x5a; message_size as usize]);
        let mut sent = 0u64;
        // count = 0 streams until the client goes away, which fails the send.
        while count == 0 || sent < count {
            responses
                .send(Chunk {
                    payload: payload.clone(),
                })
                .await?;
            sent += 1;
        }
        Ok(())
    }

    async fn ping_pong(
        &self,
        request: Request<Streaming<Chunk>>,
        mut responses: ResponseSink<Chunk>,
    ) -> Result<(), Status> {
        sleep_as_asked(request.metadata()).await;
        let mut requests = request.into_inner();
        while let Some(chunk) = requests.message().await? {
            responses.send(chunk).await?;
        }
        Ok(())
    }

    async fn stream_up(
        &self,
        request: Request<Streaming<Chunk>>,
    ) -> Result<Response<UpSummary>, Status> {
        sleep_as_asked(request.metadata()).await;
        let mut requests = request.into_inner();
        let mut summary = UpSummary::default();
        while let Some(chunk) = requests.message().await? {
            summary.bytes += chunk.payload.len() as u64;
            summary.messages += 1;
        }
        Ok(Response::new(summary))
    }
}
