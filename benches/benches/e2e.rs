//! End-to-end benchmarks: whole RPCs through a ringrpc server over loopback TCP,
//! in one process.
//!
//! The server is the engine with one worker (its own pinned thread, io_uring
//! unless `RINGRPC_BACKEND=epoll`) on 127.0.0.1, serving `helloworld.Greeter` and
//! `ringrpc.bench.Bench`. The client is the `h2` crate on a current-thread tokio
//! runtime on the benchmark's own thread, over one HTTP/2 connection. A bare HTTP/2
//! client does less per call than a full gRPC client (no codec stack, no
//! interceptors, no per-call task), so the times are mostly the server's and the
//! kernel's; they still include the client's share, and the two threads share
//! the machine's cores.
//!
//! Every call is checked: a 200 head, `grpc-status: 0` trailers, and the exact
//! reply bytes (unary) or body length (streams), so a benchmark cannot quietly
//! time an error path.
//!
//! Benchmarks (`e2e/<name>`):
//!
//! - `unary_20b_1stream`: one `SayHello` round trip (20-byte request message),
//!   the next one sent after the previous one's trailers arrived.
//! - `unary_20b_64streams`: 64 `SayHello` calls in flight on the one connection:
//!   all 64 requests are queued, then the 64 responses read. One iteration is the
//!   batch; throughput counts calls.
//! - `server_stream_1kib`: one `StreamDown` call of 1,024 messages of 1 KiB.
//! - `server_stream_64kib`: one `StreamDown` call of 64 messages of 64 KiB.
//!
//! Stream throughput counts payload bytes (not the protobuf and gRPC framing).

use std::cell::RefCell;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use h2::client::{ResponseFuture, SendRequest};
use http::header::{CONTENT_TYPE, TE};
use http::{HeaderValue, Method, Uri};
use prost::Message;
use ringrpc_engine::{EngineConfig, Server, ServerHandle};
use ringrpc_service_api::{Request, Response, ResponseSink, Status, Streaming};

/// The allocator ringrpc's binaries use, so allocation costs match theirs.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[allow(dead_code, missing_docs, clippy::all)]
mod helloworld {
    include!(concat!(env!("OUT_DIR"), "/helloworld.rs"));
}

#[allow(dead_code, missing_docs, clippy::all)]
mod ringrpc {
    pub mod bench {
        include!(concat!(env!("OUT_DIR"), "/ringrpc.bench.rs"));
    }
}

use helloworld::greeter_server::{Greeter, GreeterServer};
use helloworld::{HelloReply, HelloRequest};
use ringrpc::bench::bench_server::{Bench, BenchServer};
use ringrpc::bench::{Chunk, StreamDownRequest, UpSummary};

/// Calls in flight in `unary_20b_64streams`.
const BATCH: usize = 64;

/// Largest `StreamDown` message the service builds: the engine's default send limit.
const MAX_MESSAGE_SIZE: u32 = 4 * 1024 * 1024;

/// The name in every `SayHello` request: with its protobuf tag and length, a
/// 20-byte message, like the codec benchmarks' request.
const CLIENT_NAME: &str = "bench-client-0001!";

/// The client's HTTP/2 receive windows: hyper's defaults for its HTTP/2 client
/// (2 MiB per stream, 5 MiB per connection). With the RFC's 64 KiB, a 64 KiB
/// stream would wait a round trip for credit after every message.
const CLIENT_STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const CLIENT_CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;

/// `helloworld.Greeter` with the handler every server in perf/ runs.
struct Greetings;

impl Greeter for Greetings {
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

/// `ringrpc.bench.Bench` as perf/proto/bench.proto specifies it.
#[derive(Default)]
struct BenchHandlers {
    /// The payload of the size asked for last; a benchmark asks for one size, so
    /// after the first call every message is a clone of this buffer.
    payload: RefCell<Bytes>,
}

impl BenchHandlers {
    fn payload(&self, size: usize) -> Bytes {
        let mut payload = self.payload.borrow_mut();
        if payload.len() != size {
            *payload = Bytes::from(vec![0xa5; size]);
        }
        payload.clone()
    }
}

impl Bench for BenchHandlers {
    async fn stream_down(
        &self,
        request: Request<StreamDownRequest>,
        mut responses: ResponseSink<Chunk>,
    ) -> Result<(), Status> {
        let StreamDownRequest {
            message_size,
            count,
        } = request.into_inner();
        if message_size > MAX_MESSAGE_SIZE {
            return Err(Status::invalid_argument("message_size is over 4 MiB"));
        }
        let payload = self.payload(message_size as usize);
        let mut sent = 0u64;
        // count = 0 streams until the client cancels, which fails the send.
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
        let mut requests = request.into_inner();
        let mut summary = UpSummary::default();
        while let Some(chunk) = requests.message().await? {
            summary.bytes += chunk.payload.len() as u64;
            summary.messages += 1;
        }
        Ok(Response::new(summary))
    }
}

/// `message` encoded with its 5-byte gRPC prefix (uncompressed).
fn grpc_frame(message: &impl Message) -> Bytes {
    let len = message.encoded_len();
    let mut out = Vec::with_capacity(5 + len);
    out.push(0);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    message.encode(&mut out).expect("a Vec grows");
    out.into()
}

/// The h2 side of the benchmarks: one connection, pre-encoded request bodies.
struct Client {
    send: SendRequest<Bytes>,
    say_hello: Uri,
    stream_down: Uri,
    /// `SayHello` request body, framed.
    hello: Bytes,
    /// The exact response body `SayHello` must produce.
    hello_reply: Bytes,
    /// Responses of a batch, kept for their capacity.
    pending: Vec<ResponseFuture>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connect to the server");
        tcp.set_nodelay(true).expect("TCP_NODELAY");
        let (send, connection) = h2::client::Builder::new()
            .initial_window_size(CLIENT_STREAM_WINDOW)
            .initial_connection_window_size(CLIENT_CONNECTION_WINDOW)
            .handshake(tcp)
            .await
            .expect("HTTP/2 handshake");
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                panic!("client connection failed: {error}");
            }
        });
        let uri =
            |path: &str| -> Uri { format!("http://{addr}{path}").parse().expect("a valid URI") };
        Client {
            send,
            say_hello: uri("/helloworld.Greeter/SayHello"),
            stream_down: uri("/ringrpc.bench.Bench/StreamDown"),
            hello: grpc_frame(&HelloRequest {
                name: CLIENT_NAME.to_owned(),
            }),
            hello_reply: grpc_frame(&HelloReply {
                message: format!("Hello {CLIENT_NAME}!"),
            }),
            pending: Vec::with_capacity(BATCH),
        }
    }

    /// Opens a call to `uri` and sends `body` as its whole request stream.
    async fn start(&mut self, uri: Uri, body: Bytes) -> ResponseFuture {
        poll_fn(|cx| self.send.poll_ready(cx))
            .await
            .expect("connection open");
        let mut request = http::Request::new(());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(TE, HeaderValue::from_static("trailers"));
        let (response, mut stream) = self
            .send
            .send_request(request, false)
            .expect("stream opens");
        stream.send_data(body, true).expect("request body queued");
        response
    }

    /// One `SayHello`, checked.
    async fn say_hello(&mut self) {
        let response = self.start(self.say_hello.clone(), self.hello.clone()).await;
        self.check_hello(response).await;
    }

    async fn check_hello(&self, response: ResponseFuture) {
        let expected = &self.hello_reply;
        let mut at = 0;
        read_ok(response, |chunk| {
            assert_eq!(
                expected.get(at..at + chunk.len()),
                Some(&chunk[..]),
                "SayHello reply"
            );
            at += chunk.len();
        })
        .await;
        assert_eq!(at, expected.len(), "SayHello reply length");
    }

    /// [`BATCH`] `SayHello` calls: every request is queued before any response is
    /// awaited, so they leave in a burst and are in flight together.
    async fn say_hello_batch(&mut self) {
        let mut pending = std::mem::take(&mut self.pending);
        for _ in 0..BATCH {
            let response = self.start(self.say_hello.clone(), self.hello.clone()).await;
            pending.push(response);
        }
        for response in pending.drain(..) {
            self.check_hello(response).await;
        }
        self.pending = pending;
    }

    /// One `StreamDown` call, read to the end.
    async fn stream_down(&mut self, call: &StreamDownCall) {
        let response = self
            .start(self.stream_down.clone(), call.body.clone())
            .await;
        let mut received = 0;
        read_ok(response, |chunk| received += chunk.len()).await;
        assert_eq!(received, call.response_len, "StreamDown body length");
    }
}

/// Reads a response to its end, handing every DATA payload to `each` and
/// returning its credit, and checks that the call ended with status OK.
async fn read_ok(response: ResponseFuture, mut each: impl FnMut(&Bytes)) {
    let response = response.await.expect("response head");
    let (head, mut body) = response.into_parts();
    assert_eq!(head.status, http::StatusCode::OK, "HTTP status");
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("response body");
        body.flow_control()
            .release_capacity(chunk.len())
            .expect("credit returned");
        each(&chunk);
    }
    let trailers = body.trailers().await.expect("response trailers");
    let Some(trailers) = trailers else {
        // Trailers-Only: the status is in the head.
        panic!("the call failed: {:?}", head.headers);
    };
    assert_eq!(
        trailers.get("grpc-status").map(HeaderValue::as_bytes),
        Some(&b"0"[..]),
        "the call ended with {trailers:?}"
    );
}

/// A server-streaming benchmark's call: its request body and the length of the
/// response body it must produce.
struct StreamDownCall {
    body: Bytes,
    response_len: usize,
}

impl StreamDownCall {
    fn new(message_size: u32, count: u64) -> StreamDownCall {
        let message = Chunk {
            payload: vec![0; message_size as usize].into(),
        };
        StreamDownCall {
            body: grpc_frame(&StreamDownRequest {
                message_size,
                count,
            }),
            response_len: count as usize * (5 + message.encoded_len()),
        }
    }
}

fn start_server() -> ServerHandle {
    let config = EngineConfig {
        workers: 1,
        // The client's connection is closed before shutdown; nothing to drain.
        shutdown_grace: Duration::from_secs(1),
        ..EngineConfig::default()
    };
    Server::builder()
        .config(config)
        .add_service(|| GreeterServer::new(Greetings))
        .add_service(|| BenchServer::new(BenchHandlers::default()))
        .serve("127.0.0.1:0".parse().expect("an address"))
        .expect("the server starts")
}

fn e2e(c: &mut Criterion) {
    let server = start_server();
    eprintln!(
        "e2e: ringrpc server on {}, 1 worker, backend {:?}",
        server.local_addr(),
        server.backend()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let mut client = runtime.block_on(async {
        let mut client = Client::connect(server.local_addr()).await;
        // The first call settles SETTINGS and fills both HPACK tables.
        client.say_hello().await;
        client
    });

    let mut group = c.benchmark_group("e2e");

    group.throughput(Throughput::Elements(1));
    group.bench_function("unary_20b_1stream", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    client.say_hello().await;
                }
                start.elapsed()
            })
        })
    });

    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("unary_20b_64streams", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    client.say_hello_batch().await;
                }
                start.elapsed()
            })
        })
    });

    // Milliseconds per iteration: equal-sized samples, fewer of them.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(30);
    for (name, message_size, count) in [
        ("server_stream_1kib", 1024, 1024),
        ("server_stream_64kib", 64 * 1024, 64),
    ] {
        let call = StreamDownCall::new(message_size, count);
        group.throughput(Throughput::Bytes(u64::from(message_size) * count));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        client.stream_down(&call).await;
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();

    // Closing the client first lets the server's drain finish at once.
    drop(client);
    drop(runtime);
    server.shutdown_and_wait();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5))
        .without_plots();
    targets = e2e
}
criterion_main!(benches);
