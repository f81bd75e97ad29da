//! Connection lifecycle over real sockets, on both backends: keepalive PINGs and
//! their timeout (also while the reader waits on write backpressure), the client
//! PING policy, the idle and age limits, the handshake deadlines, the per-worker
//! connection cap, and graceful drain (new streams after the final GOAWAY, force
//! close after the grace period, health reporting NOT_SERVING).
//!
//! Knobs are set to a few hundred milliseconds; the assertions leave generous
//! margins, since a busy machine can delay any step by a lot.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use prost::Message as _;
use ringrpc_codec::hpack::{Decoder, Encoder, Header, Indexing};
use ringrpc_engine::{Backend, EngineConfig, Server, ServerHandle};
use ringrpc_engine_e2e::client::StreamRequest;
use ringrpc_engine_e2e::{frame, observed_for, runtime, start_with, token, BACKENDS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// ----- a raw HTTP/2 client, frame by frame -----

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;

const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

const NO_ERROR: u32 = 0x0;
const PROTOCOL_ERROR: u32 = 0x1;
const SETTINGS_TIMEOUT: u32 = 0x4;
const ENHANCE_YOUR_CALM: u32 = 0xb;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const INITIAL_WINDOW_SIZE: u16 = 0x4;
const MAX_WINDOW: u32 = (1 << 31) - 1;

/// Every wait of these tests: far beyond what any step should take.
const PATIENCE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

/// A GOAWAY's fields.
#[derive(Debug, PartialEq, Eq)]
struct GoAway {
    last: u32,
    code: u32,
    debug: String,
}

impl Frame {
    fn go_away(&self) -> Option<GoAway> {
        (self.kind == GOAWAY).then(|| GoAway {
            last: u32::from_be_bytes(self.payload[0..4].try_into().unwrap()) & MAX_WINDOW,
            code: u32::from_be_bytes(self.payload[4..8].try_into().unwrap()),
            debug: String::from_utf8_lossy(&self.payload[8..]).into_owned(),
        })
    }

    fn is_ping(&self) -> bool {
        self.kind == PING && self.flags & ACK == 0
    }

    fn is_ping_ack(&self) -> bool {
        self.kind == PING && self.flags & ACK != 0
    }
}

fn encode_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn settings(params: &[(u16, u32)]) -> Vec<u8> {
    let mut payload = Vec::new();
    for (id, value) in params {
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&value.to_be_bytes());
    }
    encode_frame(SETTINGS, 0, 0, &payload)
}

enum Next {
    Frame(Frame),
    /// The server closed the connection (FIN or reset).
    Closed,
    /// Nothing arrived in time.
    Quiet,
}

struct RawClient {
    tcp: TcpStream,
    inbox: Vec<u8>,
    encoder: Encoder,
    decoder: Decoder,
}

impl RawClient {
    async fn connect(addr: SocketAddr) -> RawClient {
        RawClient {
            tcp: TcpStream::connect(addr).await.unwrap(),
            inbox: Vec::new(),
            encoder: Encoder::new(),
            decoder: Decoder::new(4096),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.tcp.write_all(bytes).await.unwrap();
    }

    /// Preface and SETTINGS with `params`; acknowledges the server's SETTINGS.
    async fn handshake(&mut self, params: &[(u16, u32)]) {
        let mut hello = PREFACE.to_vec();
        hello.extend(settings(params));
        self.send(&hello).await;
        self.expect("the server's SETTINGS", |f| {
            f.kind == SETTINGS && f.flags & ACK == 0
        })
        .await;
        self.send(&encode_frame(SETTINGS, ACK, 0, &[])).await;
    }

    async fn next(&mut self, within: Duration) -> Next {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.inbox.len() >= 9 {
                let len = (usize::from(self.inbox[0]) << 16)
                    | (usize::from(self.inbox[1]) << 8)
                    | usize::from(self.inbox[2]);
                if self.inbox.len() >= 9 + len {
                    let bytes: Vec<u8> = self.inbox.drain(..9 + len).collect();
                    return Next::Frame(Frame {
                        kind: bytes[3],
                        flags: bytes[4],
                        stream: u32::from_be_bytes(bytes[5..9].try_into().unwrap()) & MAX_WINDOW,
                        payload: bytes[9..].to_vec(),
                    });
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            match tokio::time::timeout_at(deadline, self.tcp.read(&mut chunk)).await {
                Err(_) => return Next::Quiet,
                Ok(Ok(0)) | Ok(Err(_)) => return Next::Closed,
                Ok(Ok(n)) => self.inbox.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The next frame matching `wanted`, skipping others; panics at EOF or after
    /// [`PATIENCE`].
    async fn expect(&mut self, what: &str, wanted: impl Fn(&Frame) -> bool) -> Frame {
        loop {
            match self.next(PATIENCE).await {
                Next::Frame(f) if wanted(&f) => return f,
                Next::Frame(_) => {}
                Next::Closed => panic!("connection closed while waiting for {what}"),
                Next::Quiet => panic!("no {what} within {PATIENCE:?}"),
            }
        }
    }

    /// Every frame until the server closes the connection; panics after
    /// [`PATIENCE`].
    async fn until_closed(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        loop {
            match self.next(PATIENCE).await {
                Next::Frame(f) => frames.push(f),
                Next::Closed => return frames,
                Next::Quiet => panic!("still open after {PATIENCE:?}: {frames:?}"),
            }
        }
    }

    /// Opens stream `id` with a gRPC request to `path`; with `message`, sends it
    /// and ends the stream.
    async fn request(
        &mut self,
        id: u32,
        path: &str,
        metadata: &[(&str, &str)],
        message: Option<&[u8]>,
    ) {
        let mut block = BytesMut::new();
        self.encoder.begin_block(&mut block);
        let fields = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "localhost"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ];
        for (name, value) in fields.iter().chain(metadata) {
            self.encoder.encode_field(
                name.as_bytes(),
                value.as_bytes(),
                Indexing::Incremental,
                &mut block,
            );
        }
        let mut bytes = encode_frame(HEADERS, END_HEADERS, id, &block);
        if let Some(message) = message {
            bytes.extend(encode_frame(DATA, END_STREAM, id, &frame(false, message)));
        }
        self.send(&bytes).await;
    }

    /// The fields of a HEADERS frame the server sent (no CONTINUATION here).
    fn fields(&mut self, headers: &Frame) -> Vec<(String, String)> {
        assert_eq!(headers.flags & END_HEADERS, END_HEADERS);
        let mut fields = Vec::new();
        self.decoder
            .decode(&Bytes::copy_from_slice(&headers.payload), |h: Header| {
                fields.push((
                    String::from_utf8_lossy(&h.name).into_owned(),
                    String::from_utf8_lossy(&h.value).into_owned(),
                ))
            })
            .unwrap();
        fields
    }
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn go_aways(frames: &[Frame]) -> Vec<GoAway> {
    frames.iter().filter_map(Frame::go_away).collect()
}

// ----- servers and h2 clients -----

const UNARY: &str = "/ringrpc.test.TestService/Unary";
const SERVER_STREAM: &str = "/ringrpc.test.TestService/ServerStream";

/// A one-worker test server on `backend`, with `tune` applied.
fn server(backend: Backend, tune: impl FnOnce(&mut EngineConfig)) -> ServerHandle {
    let mut config = EngineConfig {
        backend,
        workers: 1,
        shutdown_grace: Duration::from_secs(5),
        ..EngineConfig::default()
    };
    tune(&mut config);
    start_with(config)
}

/// Polls `check` until it holds; panics after [`PATIENCE`].
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let until = Instant::now() + PATIENCE;
    while !check() {
        assert!(Instant::now() < until, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A connection of the `h2` crate's client, which answers PINGs and GOAWAYs as
/// a real client library does.
struct H2 {
    send: h2::client::SendRequest<Bytes>,
    /// Ends when the server closes the connection.
    connection: tokio::task::JoinHandle<Result<(), h2::Error>>,
}

impl H2 {
    async fn connect(addr: SocketAddr) -> H2 {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (send, connection) = h2::client::handshake(tcp).await.unwrap();
        H2 {
            send,
            connection: tokio::spawn(connection),
        }
    }

    /// One gRPC call; `Ok(grpc-status)` or the HTTP/2 error that ended it.
    async fn call(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
        message: &[u8],
    ) -> Result<String, h2::Error> {
        self.call_returning_body(path, headers, message)
            .await
            .map(|(status, _)| status)
    }

    /// Like [`H2::call`], with the response body.
    async fn call_returning_body(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
        message: &[u8],
    ) -> Result<(String, Vec<u8>), h2::Error> {
        let (response, mut stream) = self.open(path, headers).await?;
        stream.send_data(frame(false, message).into(), true)?;
        read_response(response).await
    }

    /// Opens a call and sends its headers only.
    async fn open(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<(h2::client::ResponseFuture, h2::SendStream<Bytes>), h2::Error> {
        let mut request = http::Request::post(format!("http://localhost{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send = self.send.clone().ready().await?;
        self.send.send_request(request.body(()).unwrap(), false)
    }

    /// Waits until the server has closed the connection; panics after
    /// [`PATIENCE`].
    async fn closed(self) {
        tokio::time::timeout(PATIENCE, self.connection)
            .await
            .expect("the server closes the connection")
            .unwrap()
            .ok();
    }
}

async fn read_response(
    response: h2::client::ResponseFuture,
) -> Result<(String, Vec<u8>), h2::Error> {
    let (head, mut body) = response.await?.into_parts();
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await?;
    let status = trailers
        .as_ref()
        .and_then(|t| t.get("grpc-status"))
        .or_else(|| head.headers.get("grpc-status"))
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    Ok((status, data))
}

// ----- keepalive -----

fn keepalive(config: &mut EngineConfig) {
    config.codec.keepalive_time = Some(Duration::from_millis(300));
    config.codec.keepalive_timeout = Duration::from_millis(300);
}

#[test]
fn keepalive_pings_a_silent_client_and_closes_when_unanswered() {
    for backend in BACKENDS {
        let server = server(backend, keepalive);
        runtime().block_on(async {
            let mut c = RawClient::connect(server.local_addr()).await;
            c.handshake(&[]).await;
            let quiet_since = Instant::now();
            c.expect("a keepalive PING", Frame::is_ping).await;
            let pinged = Instant::now();
            assert!(
                pinged - quiet_since >= Duration::from_millis(200),
                "{backend:?}: PING after {:?} of silence",
                pinged - quiet_since
            );
            let frames = c.until_closed().await;
            let closed = pinged.elapsed();
            assert_eq!(
                go_aways(&frames),
                [GoAway {
                    last: 0,
                    code: NO_ERROR,
                    debug: "keepalive ping not acknowledged".into()
                }],
                "{backend:?}"
            );
            assert!(
                closed >= Duration::from_millis(200),
                "{backend:?}: closed {closed:?} after the PING"
            );
        });
        server.shutdown_and_wait();
    }
}

#[test]
fn keepalive_acknowledged_keeps_the_connection() {
    for backend in BACKENDS {
        let server = server(backend, keepalive);
        runtime().block_on(async {
            let mut c = RawClient::connect(server.local_addr()).await;
            c.handshake(&[]).await;
            let until = Instant::now() + Duration::from_millis(1500);
            let mut pings = 0;
            while Instant::now() < until {
                match c.next(until - Instant::now()).await {
                    Next::Frame(f) if f.is_ping() => {
                        pings += 1;
                        c.send(&encode_frame(PING, ACK, 0, &f.payload)).await;
                    }
                    Next::Frame(f) => {
                        assert!(f.go_away().is_none(), "{backend:?}: {f:?}");
                    }
                    Next::Closed => panic!("{backend:?}: closed although every PING was answered"),
                    Next::Quiet => {}
                }
            }
            assert!(pings >= 2, "{backend:?}: {pings} PINGs in 1.5 s");
            // A client library that answers PINGs by itself keeps calling through
            // idle periods many times the keepalive.
            let mut h2 = H2::connect(server.local_addr()).await;
            tokio::time::sleep(Duration::from_millis(1200)).await;
            assert_eq!(h2.call(UNARY, &[], b"").await.unwrap(), "0", "{backend:?}");
        });
        server.shutdown_and_wait();
    }
}

/// The client asks for a large response with a huge window and reads nothing:
/// the server's writer blocks on the full socket and the reader waits on write
/// backpressure. The keepalive still fires, its ACK cannot come, and the
/// connection is closed (its stuck write abandoned after a short linger).
#[test]
fn keepalive_closes_a_client_that_stopped_reading() {
    for backend in BACKENDS {
        let server = server(backend, |config| {
            keepalive(config);
            config.write_high_water = 16 * 1024;
        });
        runtime().block_on(async {
            let mut c = RawClient::connect(server.local_addr()).await;
            c.handshake(&[(INITIAL_WINDOW_SIZE, MAX_WINDOW)]).await;
            c.send(&encode_frame(
                WINDOW_UPDATE,
                0,
                0,
                &(MAX_WINDOW - 65_535).to_be_bytes(),
            ))
            .await;
            let request = StreamRequest {
                count: 4096,
                size: 32 * 1024,
            };
            c.request(1, SERVER_STREAM, &[], Some(&request.encode_to_vec()))
                .await;
            eventually("the response stream started", || {
                server.stats().total.bytes_written > 1024 * 1024
            })
            .await;
            eventually("the connection closed", || {
                server.stats().total.active_connections == 0
            })
            .await;
            let stats = server.stats().total;
            assert!(
                stats.bytes_written < 128 * 1024 * 1024,
                "{backend:?}: the response did not complete: {stats:?}"
            );
        });
        server.shutdown_and_wait();
    }
}

// ----- the client PING policy -----

#[test]
fn client_pinging_too_often_gets_too_many_pings() {
    for backend in BACKENDS {
        let server = server(backend, |_| {});
        runtime().block_on(async {
            let mut c = RawClient::connect(server.local_addr()).await;
            c.handshake(&[]).await;
            let mut pings = Vec::new();
            for i in 0..4u64 {
                pings.extend(encode_frame(PING, 0, 0, &i.to_be_bytes()));
            }
            c.send(&pings).await;
            let frames = c.until_closed().await;
            let acks = frames.iter().filter(|f| f.is_ping_ack()).count();
            assert_eq!(acks, 3, "{backend:?}: the first three are answered");
            assert_eq!(
                go_aways(&frames),
                [GoAway {
                    last: 0,
                    code: ENHANCE_YOUR_CALM,
                    debug: "too_many_pings".into()
                }],
                "{backend:?}"
            );
        });
        server.shutdown_and_wait();
    }
}

// ----- max_connection_idle -----

fn idle(config: &mut EngineConfig) {
    config.codec.max_connection_idle = Some(Duration::from_millis(300));
}

/// GOAWAY(2^31 - 1) and a PING; after the ACK, the final GOAWAY; then close.
async fn expect_graceful_drain(c: &mut RawClient, debug: &str, last: u32) {
    let first = c
        .expect("GOAWAY(2^31 - 1)", |f| f.kind == GOAWAY)
        .await
        .go_away()
        .unwrap();
    assert_eq!(
        first,
        GoAway {
            last: MAX_WINDOW,
            code: NO_ERROR,
            debug: debug.into()
        }
    );
    let ping = c.expect("the drain PING", Frame::is_ping).await;
    c.send(&encode_frame(PING, ACK, 0, &ping.payload)).await;
    let frames = c.until_closed().await;
    assert_eq!(
        go_aways(&frames),
        [GoAway {
            last,
            code: NO_ERROR,
            debug: debug.into()
        }]
    );
}

#[test]
fn idle_connection_is_drained_after_max_connection_idle() {
    for backend in BACKENDS {
        let server = server(backend, idle);
        runtime().block_on(async {
            let mut c = RawClient::connect(server.local_addr()).await;
            let connected = Instant::now();
            c.handshake(&[]).await;
            expect_graceful_drain(&mut c, "max_idle", 0).await;
            assert!(
                connected.elapsed() >= Duration::from_millis(250),
                "{backend:?}: drained after {:?}",
                connected.elapsed()
            );
        });
        server.shutdown_and_wait();
    }
}

#[test]
fn calls_longer_than_max_connection_idle_are_not_idle() {
    for backend in BACKENDS {
        let server = server(backend, idle);
        runtime().block_on(async {
            let mut h2 = H2::connect(server.local_addr()).await;
            let status = h2.call(UNARY, &[("x-sleep-ms", "800")], b"").await;
            assert_eq!(status.unwrap(), "0", "{backend:?}");
            let finished = Instant::now();
            h2.closed().await;
            assert!(
                finished.elapsed() >= Duration::from_millis(200),
                "{backend:?}: idle counts from the end of the last call"
            );
        });
        server.shutdown_and_wait();
    }
}

// ----- max_connection_age and its grace -----

#[test]
fn max_connection_age_drains_within_ten_percent() {
    for backend in BACKENDS {
        let server = server(backend, |config| {
            config.codec.max_connection_age = Some(Duration::from_secs(1));
        });
        runtime().block_on(async {
            let connecting = Instant::now();
            let mut c = RawClient::connect(server.local_addr()).await;
            c.handshake(&[]).await;
            c.expect("GOAWAY(2^31 - 1)", |f| f.kind == GOAWAY).await;
            let age = connecting.elapsed();
            assert!(
                age >= Duration::from_millis(850) && age < Duration::from_secs(3),
                "{backend:?}: GOAWAY at {age:?} for an age of 1 s ± 10%"
            );
        });
        server.shutdown_and_wait();
    }
}

#[test]
fn calls_in_flight_at_max_connection_age_finish_within_the_grace() {
    for backend in BACKENDS {
        let server = server(backend, |config| {
            config.codec.max_connection_age = Some(Duration::from_millis(300));
            config.codec.max_connection_age_grace = Some(Duration::from_secs(5));
        });
        runtime().block_on(async {
            let mut c = RawClient::connect(server.local_addr()).await;
            c.handshake(&[]).await;
            c.request(1, UNARY, &[("x-sleep-ms", "800")], Some(b""))
                .await;
            // The drain runs while the call does; stream 1 is named as processed.
            expect_graceful_drain_with_call(&mut c, backend).await;
        });
        server.shutdown_and_wait();
    }
}

/// Like [`expect_graceful_drain`] (debug `max_age`, last stream 1), where stream
/// 1's response must arrive complete before the connection closes.
async fn expect_graceful_drain_with_call(c: &mut RawClient, backend: Backend) {
    let first = c
        .expect("GOAWAY(2^31 - 1)", |f| f.kind == GOAWAY)
        .await
        .go_away()
        .unwrap();
    assert_eq!((first.last, first.debug.as_str()), (MAX_WINDOW, "max_age"));
    let ping = c.expect("the drain PING", Frame::is_ping).await;
    c.send(&encode_frame(PING, ACK, 0, &ping.payload)).await;
    let frames = c.until_closed().await;
    assert_eq!(
        go_aways(&frames),
        [GoAway {
            last: 1,
            code: NO_ERROR,
            debug: "max_age".into()
        }],
        "{backend:?}"
    );
    let trailers = frames
        .iter()
        .rev()
        .find(|f| f.kind == HEADERS && f.stream == 1)
        .expect("stream 1 answered")
        .clone();
    assert_eq!(trailers.flags & END_STREAM, END_STREAM);
    let fields = c.fields_after(&frames, &trailers);
    assert_eq!(field(&fields, "grpc-status"), Some("0"), "{backend:?}");
}

impl RawClient {
    /// Decodes every header block in `frames` up to `last` (HPACK state is
    /// shared), returning `last`'s fields.
    fn fields_after(&mut self, frames: &[Frame], last: &Frame) -> Vec<(String, String)> {
        let mut fields = Vec::new();
        for f in frames.iter().filter(|f| f.kind == HEADERS) {
            fields = self.fields(f);
            if f.payload == last.payload && f.stream == last.stream {
                break;
            }
        }
        fields
    }
}

#[test]
fn max_connection_age_grace_closes_calls_still_running() {
    for backend in BACKENDS {
        let server = server(backend, |config| {
            config.codec.max_connection_age = Some(Duration::from_millis(200));
            config.codec.max_connection_age_grace = Some(Duration::from_millis(300));
        });
        runtime().block_on(async {
            let started = Instant::now();
            let mut h2 = H2::connect(server.local_addr()).await;
            let t = token("age-grace");
            let result = h2
                .call(
                    UNARY,
                    &[("x-wait-cancel", "1"), ("x-token", t.as_str())],
                    b"",
                )
                .await;
            let ended = started.elapsed();
            assert!(
                result.is_err() || result.as_deref().is_ok_and(|s| s != "0"),
                "{backend:?}: the call cannot succeed: {result:?}"
            );
            assert!(
                ended >= Duration::from_millis(400) && ended < PATIENCE,
                "{backend:?}: ended after {ended:?}, age 200 ms ± 10% + grace 300 ms"
            );
            eventually("the handler dropped", || observed_for(&t).dropped).await;
            h2.closed().await;
        });
        server.shutdown_and_wait();
    }
}

// ----- the handshake -----

fn short_handshake(config: &mut EngineConfig) {
    config.codec.handshake_timeout = Duration::from_millis(300);
}

#[test]
fn silent_connection_is_closed_after_the_handshake_timeout() {
    for backend in BACKENDS {
        let server = server(backend, short_handshake);
        runtime().block_on(async {
            let started = Instant::now();
            let mut c = RawClient::connect(server.local_addr()).await;
            let frames = c.until_closed().await;
            assert!(
                started.elapsed() >= Duration::from_millis(250),
                "{backend:?}: closed after {:?}",
                started.elapsed()
            );
            assert_eq!(frames.first().map(|f| f.kind), Some(SETTINGS));
            let go_aways = go_aways(&frames);
            assert_eq!(go_aways.len(), 1, "{backend:?}: {frames:?}");
            assert_eq!(go_aways[0].code, PROTOCOL_ERROR);
        });
        server.shutdown_and_wait();
    }
}

/// RFC 9113 §6.5.3: SETTINGS not acknowledged in time are a connection error
/// SETTINGS_TIMEOUT.
#[test]
fn unacknowledged_settings_are_a_settings_timeout() {
    for backend in BACKENDS {
        let server = server(backend, short_handshake);
        runtime().block_on(async {
            let mut c = RawClient::connect(server.local_addr()).await;
            let mut hello = PREFACE.to_vec();
            hello.extend(settings(&[]));
            c.send(&hello).await;
            let frames = c.until_closed().await;
            let go_aways = go_aways(&frames);
            assert_eq!(go_aways.len(), 1, "{backend:?}: {frames:?}");
            assert_eq!(go_aways[0].code, SETTINGS_TIMEOUT, "{backend:?}");
        });
        server.shutdown_and_wait();
    }
}

// ----- max_connections_per_worker -----

#[test]
fn connections_beyond_the_cap_are_closed_at_once() {
    for backend in BACKENDS {
        let server = server(backend, |config| {
            config.max_connections_per_worker = Some(2);
        });
        runtime().block_on(async {
            let mut first = H2::connect(server.local_addr()).await;
            let mut second = H2::connect(server.local_addr()).await;
            assert_eq!(first.call(UNARY, &[], b"").await.unwrap(), "0");
            assert_eq!(second.call(UNARY, &[], b"").await.unwrap(), "0");
            let mut refused = RawClient::connect(server.local_addr()).await;
            match refused.next(PATIENCE).await {
                Next::Closed => {}
                Next::Frame(f) => panic!("{backend:?}: a refused connection got {f:?}"),
                Next::Quiet => panic!("{backend:?}: the third connection stays open"),
            }
            let stats = server.stats().total;
            assert_eq!(stats.connections_refused, 1, "{backend:?}");
            assert_eq!(stats.active_connections, 2, "{backend:?}");
            // The connections within the cap are served as before.
            assert_eq!(first.call(UNARY, &[], b"").await.unwrap(), "0");
            assert_eq!(second.call(UNARY, &[], b"").await.unwrap(), "0");
            // A slot that frees up takes a new connection.
            drop(first);
            eventually("the first connection closed", || {
                server.stats().total.active_connections == 1
            })
            .await;
            let mut third = H2::connect(server.local_addr()).await;
            assert_eq!(third.call(UNARY, &[], b"").await.unwrap(), "0");
        });
        server.shutdown_and_wait();
    }
}

// ----- graceful drain (ServerHandle::shutdown) -----

#[test]
fn streams_after_the_final_goaway_are_not_processed() {
    for backend in BACKENDS {
        let server = server(backend, |_| {});
        runtime().block_on(async {
            let mut c = RawClient::connect(server.local_addr()).await;
            c.handshake(&[]).await;
            c.request(1, UNARY, &[("x-sleep-ms", "600")], Some(b""))
                .await;
            eventually("the call started", || {
                server.stats().total.active_streams == 1
            })
            .await;
            server.shutdown();
            let first = c
                .expect("GOAWAY(2^31 - 1)", |f| f.kind == GOAWAY)
                .await
                .go_away()
                .unwrap();
            assert_eq!(first.last, MAX_WINDOW, "{backend:?}");
            let ping = c.expect("the drain PING", Frame::is_ping).await;
            c.send(&encode_frame(PING, ACK, 0, &ping.payload)).await;
            let last = c
                .expect("the final GOAWAY", |f| f.kind == GOAWAY)
                .await
                .go_away()
                .unwrap();
            assert_eq!(last.last, 1, "{backend:?}");
            // Stream 3 is above the last stream id: the server ignores it
            // (RFC 9113 §6.8), and the client knows it was not processed.
            c.request(3, UNARY, &[], Some(b"")).await;
            let frames = c.until_closed().await;
            assert!(
                frames.iter().all(|f| f.stream != 3),
                "{backend:?}: stream 3 got {frames:?}"
            );
            let trailers = frames
                .iter()
                .rev()
                .find(|f| f.kind == HEADERS && f.stream == 1)
                .expect("stream 1 completes during the drain")
                .clone();
            let fields = c.fields_after(&frames, &trailers);
            assert_eq!(field(&fields, "grpc-status"), Some("0"), "{backend:?}");
            assert_eq!(server.stats().total.rpcs_started, 1, "{backend:?}");
        });
        server.wait();
    }
}

#[test]
fn calls_still_running_after_the_shutdown_grace_are_closed() {
    for backend in BACKENDS {
        let server = server(backend, |config| {
            config.shutdown_grace = Duration::from_millis(300);
        });
        runtime().block_on(async {
            let mut h2 = H2::connect(server.local_addr()).await;
            let t = token("drain-grace");
            let headers = [("x-wait-cancel", "1"), ("x-token", t.as_str())];
            let (response, mut stream) = h2.open(UNARY, &headers).await.unwrap();
            stream.send_data(frame(false, b"").into(), true).unwrap();
            eventually("the call started", || {
                server.stats().total.active_streams == 1
            })
            .await;
            let started = Instant::now();
            let stopping = std::thread::spawn(move || server.shutdown_and_wait());
            let result = tokio::time::timeout(PATIENCE, read_response(response))
                .await
                .expect("the call ends");
            let ended = started.elapsed();
            assert!(
                result.as_ref().map_or(true, |(status, _)| status != "0"),
                "{backend:?}: {result:?}"
            );
            assert!(
                ended >= Duration::from_millis(250),
                "{backend:?}: closed {ended:?} into a 300 ms grace"
            );
            eventually("the handler dropped", || observed_for(&t).dropped).await;
            tokio::task::spawn_blocking(move || stopping.join().unwrap())
                .await
                .unwrap();
        });
    }
}

/// A Check that arrives while the server drains answers NOT_SERVING: the health
/// hook runs as shutdown begins, before any connection is told to go away.
#[test]
fn health_reports_not_serving_at_the_start_of_the_drain() {
    for backend in BACKENDS {
        let reporter = ringrpc_health::HealthReporter::new();
        let server = Server::builder()
            .config(EngineConfig {
                backend,
                workers: 1,
                ..EngineConfig::default()
            })
            .add_service(ringrpc_health::service(&reporter))
            .on_shutdown(reporter.shutdown_hook())
            .serve("127.0.0.1:0".parse().unwrap())
            .expect("server starts");
        const CHECK: &str = "/grpc.health.v1.Health/Check";
        // HealthCheckResponse { status: SERVING (1) } and NOT_SERVING (2).
        const SERVING: &[u8] = &[0x08, 0x01];
        const NOT_SERVING: &[u8] = &[0x08, 0x02];
        runtime().block_on(async {
            let mut h2 = H2::connect(server.local_addr()).await;
            // An empty HealthCheckRequest asks about the whole server.
            let (status, body) = h2.call_returning_body(CHECK, &[], b"").await.unwrap();
            assert_eq!(
                (status.as_str(), &body[..]),
                ("0", &frame(false, SERVING)[..])
            );
            // A Check opened before the drain, its request sent after it began.
            let (response, mut stream) = h2.open(CHECK, &[]).await.unwrap();
            eventually("the Check started", || {
                server.stats().total.active_streams == 1
            })
            .await;
            server.shutdown();
            stream.send_data(frame(false, b"").into(), true).unwrap();
            let (status, body) = read_response(response).await.unwrap();
            assert_eq!(
                (status.as_str(), &body[..]),
                ("0", &frame(false, NOT_SERVING)[..]),
                "{backend:?}"
            );
            h2.closed().await;
        });
        server.wait();
    }
}
