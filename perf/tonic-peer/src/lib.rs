//! helloworld.Greeter and ringrpc.bench.Bench on tonic's server, with the same
//! handler logic as the ringrpc bench server (`ringrpc-loadgen`), so a
//! side-by-side measurement compares the servers and not the services.
//!
//! The binary `tonic-greeter-server` serves them; tests start [`serve`] in-process.

#![deny(missing_docs)]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

/// Generated tonic code for `examples/proto/helloworld.proto`.
pub mod helloworld {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("helloworld");
}

/// Generated tonic code for `perf/proto/bench.proto`.
pub mod bench {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("ringrpc.bench");
}

use bench::bench_server::{Bench, BenchServer};
use bench::{Chunk, StreamDownRequest, UpSummary};
use helloworld::greeter_server::{Greeter, GreeterServer};
use helloworld::{HelloReply, HelloRequest};

/// Largest payload StreamDown sends: its `Chunk` then still fits the 4 MiB
/// message limit gRPC clients apply by default.
pub const MAX_PAYLOAD: u32 = 4 * 1024 * 1024 - 8;

/// `SayHello` answers "Hello {name}!".
#[derive(Debug, Default)]
pub struct MyGreeter;

#[tonic::async_trait]
impl Greeter for MyGreeter {
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

/// The Bench service: StreamDown repeats one pre-built payload, PingPong echoes,
/// StreamUp sums payload bytes.
#[derive(Debug, Default)]
pub struct BenchService;

#[tonic::async_trait]
impl Bench for BenchService {
    type StreamDownStream = RepeatChunk;

    async fn stream_down(
        &self,
        request: Request<StreamDownRequest>,
    ) -> Result<Response<RepeatChunk>, Status> {
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
        Ok(Response::new(RepeatChunk {
            chunk,
            remaining: (request.count != 0).then_some(request.count),
        }))
    }

    type PingPongStream = Echo;

    async fn ping_pong(
        &self,
        request: Request<Streaming<Chunk>>,
    ) -> Result<Response<Echo>, Status> {
        Ok(Response::new(Echo {
            incoming: request.into_inner(),
        }))
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

/// StreamDown's response stream: the same chunk `remaining` more times, or
/// forever when `None`. Always ready; tonic polls it as flow control allows.
#[derive(Debug)]
pub struct RepeatChunk {
    chunk: Chunk,
    remaining: Option<u64>,
}

impl Stream for RepeatChunk {
    type Item = Result<Chunk, Status>;

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match &mut self.remaining {
            Some(0) => return Poll::Ready(None),
            Some(n) => *n -= 1,
            None => {}
        }
        Poll::Ready(Some(Ok(self.chunk.clone())))
    }
}

/// PingPong's response stream: every received message, in order.
pub struct Echo {
    incoming: Streaming<Chunk>,
}

impl Stream for Echo {
    type Item = Result<Chunk, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.incoming).poll_next(cx)
    }
}

impl std::fmt::Debug for Echo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Echo").finish_non_exhaustive()
    }
}

/// Serves Greeter and Bench on `incoming` until `shutdown` completes, then lets
/// in-flight calls finish (tonic's graceful shutdown).
pub async fn serve(
    incoming: TcpIncoming,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .add_service(GreeterServer::new(MyGreeter))
        .add_service(BenchServer::new(BenchService))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

/// Raises the soft limit on open files to the hard limit, so a connection-count
/// test is limited by the server and not by a conservative default of 1024.
pub fn raise_fd_limit() -> std::io::Result<libc::rlim_t> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(limit.rlim_cur)
}
