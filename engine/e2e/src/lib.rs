//! The test service and helpers for the engine's end-to-end tests: tonic clients
//! (an independent gRPC implementation) against ringrpc servers on 127.0.0.1.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use ringrpc_engine::{Backend, EngineConfig, Server, ServerHandle};
use ringrpc_service_api::{
    Code, Metadata, MetadataValue, Request, Response, ResponseSink, Status, Streaming,
};

#[allow(missing_docs, clippy::all)]
pub mod server {
    include!(concat!(env!("OUT_DIR"), "/server/ringrpc.test.rs"));
}

#[allow(missing_docs, clippy::all)]
pub mod client {
    include!(concat!(env!("OUT_DIR"), "/client/ringrpc.test.rs"));
}

pub mod counting;

use server::test_service_server::{TestService, TestServiceServer};
use server::{Payload, StreamRequest, Summary};

/// What handlers observed, per test token (`x-token` metadata), so tests running
/// in parallel in one process do not see each other's calls.
#[derive(Debug, Default, Clone)]
pub struct Observed {
    /// A task the handler spawned saw `CallContext::cancelled()` complete.
    pub saw_cancel: bool,
    /// The handler's future was dropped before it finished.
    pub dropped: bool,
    /// The handler ran to completion.
    pub completed: bool,
}

fn observed() -> &'static Mutex<HashMap<String, Observed>> {
    static OBSERVED: OnceLock<Mutex<HashMap<String, Observed>>> = OnceLock::new();
    OBSERVED.get_or_init(Default::default)
}

/// What was observed for `token` so far.
pub fn observed_for(token: &str) -> Observed {
    observed()
        .lock()
        .unwrap()
        .get(token)
        .cloned()
        .unwrap_or_default()
}

fn record(token: &Option<String>, f: impl FnOnce(&mut Observed)) {
    if let Some(token) = token {
        f(observed().lock().unwrap().entry(token.clone()).or_default());
    }
}

/// Records `dropped` unless disarmed: proves cancellation dropped the handler.
struct DropGuard(Option<String>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        if self.0.is_some() {
            record(&self.0, |o| o.dropped = true);
        }
    }
}

/// Behaviour steered by request metadata:
/// `x-status` / `x-message` (or `x-message-bin`, UTF-8) / `x-details-bin`: fail
/// with that status;
/// `x-sleep-ms`: sleep first; `x-panic`: panic; `x-wait-cancel`: wait until
/// cancelled; `x-echo-*` (and `x-echo-*-bin`): echoed in response headers;
/// `x-trailer-*`: echoed in trailers; `x-dont-read`: a streaming handler never
/// reads its requests. Every response carries `x-worker`, the worker thread.
#[derive(Default)]
pub struct Tester;

fn steer(metadata: &Metadata) -> (Option<String>, Response<()>) {
    let token = metadata.get("x-token").map(str::to_owned);
    let mut response = Response::new(());
    let worker = std::thread::current().name().unwrap_or("?").to_owned();
    response.metadata_mut().insert("x-worker", worker).unwrap();
    for (key, value) in metadata.iter() {
        match value {
            MetadataValue::Ascii(v) if key.starts_with("x-echo-") => {
                response.metadata_mut().append(key, v).unwrap()
            }
            MetadataValue::Binary(v) if key.starts_with("x-echo-") => response
                .metadata_mut()
                .append_bin(key, Bytes::copy_from_slice(v))
                .unwrap(),
            MetadataValue::Ascii(v) if key.starts_with("x-trailer-") => {
                response.trailers_mut().append(key, v).unwrap()
            }
            _ => {}
        }
    }
    (token, response)
}

async fn behave(
    metadata: &Metadata,
    token: &Option<String>,
    context: &ringrpc_service_api::CallContext,
) -> Result<(), Status> {
    if let Some(ms) = metadata.get("x-sleep-ms").and_then(|v| v.parse().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if metadata.get("x-panic").is_some() {
        panic!("handler asked to panic");
    }
    if metadata.get("x-wait-cancel").is_some() {
        // Work handed elsewhere learns of the cancellation through the context;
        // the handler itself is simply dropped.
        let (context, token) = (context.clone(), token.clone());
        tokio::task::spawn_local(async move {
            context.cancelled().await;
            record(&token, |o| o.saw_cancel = true);
        });
        std::future::pending::<()>().await;
    }
    if let Some(code) = metadata.get("x-status").and_then(|v| v.parse::<i32>().ok()) {
        // `x-message-bin` carries any UTF-8, which ASCII metadata cannot.
        let message = match metadata.get_bin("x-message-bin") {
            Some(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            None => metadata.get("x-message").unwrap_or("").to_owned(),
        };
        let details = metadata
            .get_bin("x-details-bin")
            .map(Bytes::copy_from_slice)
            .unwrap_or_default();
        let mut status = Status::with_details(Code::from_i32(code), message, details);
        if let Some(v) = metadata.get("x-trailer-status") {
            status.metadata_mut().insert("x-trailer-status", v).unwrap();
        }
        return Err(status);
    }
    Ok(())
}

impl TestService for Tester {
    async fn unary(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        let (token, shell) = steer(request.metadata());
        let mut guard = DropGuard(token.clone());
        behave(request.metadata(), &token, request.context()).await?;
        let (mut metadata, (), trailers) = shell.into_parts();
        // How the request arrived and, on request, an uncompressed reply: for the
        // compression tests.
        let compressed = if request.compressed() {
            "true"
        } else {
            "false"
        };
        metadata.insert("x-request-compressed", compressed).unwrap();
        let uncompressed = request.metadata().get("x-uncompressed").is_some();
        let mut response = Response::new(request.into_inner());
        *response.metadata_mut() = metadata;
        *response.trailers_mut() = trailers;
        if uncompressed {
            response.disable_compression();
        }
        record(&token, |o| o.completed = true);
        guard.0 = None;
        Ok(response)
    }

    async fn server_stream(
        &self,
        request: Request<StreamRequest>,
        mut responses: ResponseSink<Payload>,
    ) -> Result<(), Status> {
        let (token, shell) = steer(request.metadata());
        let mut guard = DropGuard(token.clone());
        behave(request.metadata(), &token, request.context()).await?;
        responses.send_metadata(shell.metadata().clone())?;
        let alternate = request.metadata().get("x-alternate-compression").is_some();
        let StreamRequest { count, size } = request.into_inner();
        let body = Bytes::from(vec![7u8; size as usize]);
        for i in 0..count {
            let payload = Payload { body: body.clone() };
            if alternate && i % 2 == 1 {
                responses.send_uncompressed(payload).await?;
            } else {
                responses.send(payload).await?;
            }
        }
        responses.set_trailers(shell.trailers().clone());
        record(&token, |o| o.completed = true);
        guard.0 = None;
        Ok(())
    }

    async fn client_stream(
        &self,
        request: Request<Streaming<Payload>>,
    ) -> Result<Response<Summary>, Status> {
        let (token, _) = steer(request.metadata());
        let mut guard = DropGuard(token.clone());
        behave(request.metadata(), &token, request.context()).await?;
        if request.metadata().get("x-dont-read").is_some() {
            // Never read: the client must stall on flow control.
            return std::future::pending().await;
        }
        let mut stream = request.into_inner();
        let mut summary = Summary::default();
        let mut compressed = 0;
        while let Some((payload, info)) = stream.message_with_info().await? {
            summary.bytes += payload.body.len() as u64;
            summary.count += 1;
            compressed += u32::from(info.compressed);
        }
        record(&token, |o| o.completed = true);
        guard.0 = None;
        let mut response = Response::new(summary);
        response
            .metadata_mut()
            .insert("x-compressed-messages", compressed.to_string())
            .unwrap();
        Ok(response)
    }

    async fn bidi(
        &self,
        request: Request<Streaming<Payload>>,
        mut responses: ResponseSink<Payload>,
    ) -> Result<(), Status> {
        let (token, _) = steer(request.metadata());
        behave(request.metadata(), &token, request.context()).await?;
        let mut stream = request.into_inner();
        while let Some(payload) = stream.message().await? {
            responses.send(payload).await?;
        }
        Ok(())
    }
}

/// A ringrpc server with the test service on a free port.
pub fn start(backend: Backend, workers: usize) -> ServerHandle {
    start_with(EngineConfig {
        backend,
        workers,
        shutdown_grace: Duration::from_secs(5),
        ..EngineConfig::default()
    })
}

/// A ringrpc server with the test service and `config`.
pub fn start_with(config: EngineConfig) -> ServerHandle {
    Server::builder()
        .config(config)
        .add_service(|| TestServiceServer::new(Tester))
        .serve("127.0.0.1:0".parse().unwrap())
        .expect("server starts")
}

/// Both backends, for tests that must pass on each.
pub const BACKENDS: [Backend; 2] = [Backend::Uring, Backend::Epoll];

/// A tonic client of the test service connected to `addr`.
pub async fn client(
    addr: SocketAddr,
) -> client::test_service_client::TestServiceClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    client::test_service_client::TestServiceClient::new(channel)
        .max_decoding_message_size(8 * 1024 * 1024)
        .max_encoding_message_size(8 * 1024 * 1024)
}

/// A multi-threaded tokio runtime for the client side.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Current resident set size of this process in bytes (Linux).
pub fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// A unique token for steering and observing one test's calls.
pub fn token(name: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{name}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// What a raw HTTP/2 gRPC call got back.
#[derive(Debug)]
pub struct RawResponse {
    /// The response head.
    pub head: http::response::Parts,
    /// The DATA payload, all frames joined.
    pub body: Bytes,
    /// The trailers (None for a Trailers-Only response, whose fields are in `head`).
    pub trailers: Option<http::HeaderMap>,
}

impl RawResponse {
    /// `grpc-status`, from the trailers or a Trailers-Only head.
    pub fn grpc_status(&self) -> Option<&str> {
        fn status(headers: &http::HeaderMap) -> Option<&str> {
            headers.get("grpc-status").and_then(|v| v.to_str().ok())
        }
        self.trailers
            .as_ref()
            .and_then(status)
            .or_else(|| status(&self.head.headers))
    }
}

/// One gRPC call with the `h2` crate's client, with full control of the headers
/// (tonic enforces deadlines client-side, which would hide the server's).
pub async fn h2_call(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    message: &[u8],
) -> RawResponse {
    h2_call_framed(addr, path, headers, frame(false, message)).await
}

/// `message` with its 5-byte gRPC prefix (compressed flag and length).
pub fn frame(compressed: bool, message: &[u8]) -> Vec<u8> {
    let mut body = vec![u8::from(compressed)];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(message);
    body
}

/// The messages of a response body: (compressed flag, payload) each.
pub fn unframe(mut body: &[u8]) -> Vec<(bool, Vec<u8>)> {
    let mut messages = Vec::new();
    while body.len() >= 5 {
        let len = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
        messages.push((body[0] == 1, body[5..5 + len].to_vec()));
        body = &body[5 + len..];
    }
    assert!(body.is_empty(), "trailing bytes after the last message");
    messages
}

/// Like [`h2_call`], with the request body given as is (already framed).
pub async fn h2_call_framed(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> RawResponse {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut request = http::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let (response, mut stream) = client
        .send_request(request.body(()).unwrap(), false)
        .unwrap();
    stream.send_data(body.into(), true).unwrap();
    let (head, mut recv) = response.await.unwrap().into_parts();
    let mut data = Vec::new();
    while let Some(chunk) = recv.data().await {
        let chunk = chunk.unwrap();
        recv.flow_control().release_capacity(chunk.len()).unwrap();
        data.extend_from_slice(&chunk);
    }
    let trailers = recv.trailers().await.unwrap();
    RawResponse {
        head,
        body: data.into(),
        trailers,
    }
}
