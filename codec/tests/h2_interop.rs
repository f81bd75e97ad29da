//! The server `Connection` against an independent HTTP/2 client, the `h2` crate,
//! over an in-memory pipe.
//!
//! The server side is a minimal pump (read, `recv`, drain events into a small test
//! service, `poll_transmit`, write) so that every byte h2 sees comes from the codec
//! and every byte the codec sees comes from h2. The pump also taps both directions
//! of the wire and parses the frames, so tests can check what was actually sent
//! (WINDOW_UPDATE cycles, the two GOAWAY frames of a graceful shutdown) rather than
//! only what h2 chose to report.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use h2::client::{ResponseFuture, SendRequest};
use h2::{RecvStream, SendStream};
use http::{HeaderMap, Method, Request, StatusCode};
use ringrpc_codec::error::Initiator;
use ringrpc_codec::frame::{Frame, FrameHeader, StreamId, HEADER_LEN, PREFACE};
use ringrpc_codec::grpc::status;
use ringrpc_codec::server::{Config, Connection, Event, ResponseStatus};
use ringrpc_codec::Reason;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::task::JoinHandle;

/// Upper bound for one test; they take milliseconds, this only turns a hang into
/// a failure.
const TEST_TIMEOUT: Duration = Duration::from_secs(20);

// ----- what the pump saw -----

/// A frame on the wire, reduced to what the tests look at.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Settings {
        ack: bool,
    },
    Headers {
        id: u32,
        end_stream: bool,
    },
    Continuation {
        id: u32,
    },
    Data {
        id: u32,
        len: usize,
        end_stream: bool,
    },
    Reset {
        id: u32,
        reason: Reason,
    },
    Ping {
        ack: bool,
    },
    GoAway {
        last: u32,
        reason: Reason,
    },
    WindowUpdate {
        id: u32,
        increment: u32,
    },
    Other,
}

/// Everything observed by the server side, shared with the test body.
#[derive(Debug, Default)]
struct Log {
    /// Frames the codec wrote.
    from_server: Vec<Seen>,
    /// Frames h2 wrote.
    from_client: Vec<Seen>,
    /// `Event::Reset` as (stream, reason, initiator).
    resets: Vec<(u32, Reason, Initiator)>,
    /// `Event::GoAway` and `Event::Closed`, which no test here expects, and any
    /// event the service could not place.
    unexpected: Vec<String>,
    /// Paths of the requests the service was given.
    paths: Vec<String>,
    /// Most streams active at once.
    peak_streams: usize,
}

type SharedLog = Arc<Mutex<Log>>;

/// Splits a byte stream into frames as it arrives, skipping the client preface.
struct Tap {
    buf: BytesMut,
    skip: usize,
}

impl Tap {
    fn new(skip: usize) -> Tap {
        Tap {
            buf: BytesMut::new(),
            skip,
        }
    }

    fn feed(&mut self, mut bytes: &[u8], into: &mut Vec<Seen>) {
        let skip = self.skip.min(bytes.len());
        bytes = &bytes[skip..];
        self.skip -= skip;
        self.buf.extend_from_slice(bytes);
        while let Some(head) = FrameHeader::parse(&self.buf) {
            let total = HEADER_LEN + head.len as usize;
            if self.buf.len() < total {
                break;
            }
            let payload = self.buf.split_to(total).split_off(HEADER_LEN).freeze();
            let frame = Frame::parse(head, payload).expect("a valid frame on the wire");
            into.push(match frame {
                Frame::Settings(s) => Seen::Settings { ack: s.ack },
                Frame::Headers(h) => Seen::Headers {
                    id: h.stream_id.0,
                    end_stream: h.end_stream,
                },
                Frame::Continuation(c) => Seen::Continuation { id: c.stream_id.0 },
                Frame::Data(d) => Seen::Data {
                    id: d.stream_id.0,
                    len: d.payload.len(),
                    end_stream: d.end_stream,
                },
                Frame::Reset(r) => Seen::Reset {
                    id: r.stream_id.0,
                    reason: r.reason,
                },
                Frame::Ping(p) => Seen::Ping { ack: p.ack },
                Frame::GoAway(g) => Seen::GoAway {
                    last: g.last_stream_id.0,
                    reason: g.reason,
                },
                Frame::WindowUpdate(w) => Seen::WindowUpdate {
                    id: w.stream_id.0,
                    increment: w.increment,
                },
                _ => Seen::Other,
            });
        }
    }
}

// ----- the server: a pump around `Connection` and a test service -----

/// What a call is doing, by its path.
enum Call {
    /// Answer every message with itself, end with OK when the client ends.
    Echo,
    /// One request message `count: u32, size: u32`; at its end, `count` messages of
    /// `size` bytes, each starting with its index.
    ServerStream { request: Option<Bytes> },
    /// Count messages and bytes; at the end, one message `bytes: u64, count: u32`.
    Sum { messages: u32, bytes: u64 },
    /// Trailers-Only with `FAIL_STATUS`.
    Fail,
    /// Answer OK, and start a graceful shutdown of the connection.
    Shutdown,
}

const FAIL_CODE: u32 = status::FAILED_PRECONDITION;
const FAIL_MESSAGE: &str = "caf\u{e9} 100% \u{2713} \u{65e5}\u{672c}\u{8a9e}\nline two";
const FAIL_DETAILS: &[u8] = b"\x08\x09\x12\x03abc\xff\x00";

struct Service {
    calls: HashMap<StreamId, Call>,
    /// Every stream announced with `Event::Request`. Events already queued for a
    /// call the service has ended are normal; events for a stream never announced
    /// are not.
    announced: HashSet<StreamId>,
    log: SharedLog,
}

impl Service {
    fn stray(&self, id: StreamId, what: &str) {
        if !self.announced.contains(&id) {
            self.log
                .lock()
                .unwrap()
                .unexpected
                .push(format!("{what} on unannounced {id:?}"));
        }
    }
}

impl Service {
    fn handle(&mut self, conn: &mut Connection, event: Event) {
        match event {
            Event::Request { id, head } => {
                self.announced.insert(id);
                let path = String::from_utf8(head.path.to_vec()).expect("UTF-8 path");
                self.log.lock().unwrap().paths.push(path.clone());
                let call = match path.as_str() {
                    "/test.Echo/Unary" => {
                        // Reflects what h2 put in the request head, so the client can
                        // check the codec parsed it.
                        let metadata = [(Bytes::from_static(b"x-path"), head.path.clone())];
                        conn.send_headers(id, metadata).expect("open stream");
                        Call::Echo
                    }
                    "/test.Echo/Bidi" => Call::Echo,
                    "/test.Echo/ServerStream" => Call::ServerStream { request: None },
                    "/test.Echo/ClientStream" => Call::Sum {
                        messages: 0,
                        bytes: 0,
                    },
                    "/test.Echo/Fail" => Call::Fail,
                    "/test.Admin/Shutdown" => Call::Shutdown,
                    _ => {
                        conn.send_trailers(
                            id,
                            ResponseStatus::new(status::UNIMPLEMENTED, "no such method"),
                            [],
                        )
                        .expect("open stream");
                        conn.release_stream(id);
                        return;
                    }
                };
                self.calls.insert(id, call);
            }
            Event::Message { id, message } => {
                conn.release_capacity(id, message.data.len() + 5);
                let Some(call) = self.calls.get_mut(&id) else {
                    return self.stray(id, "message");
                };
                match call {
                    Call::Echo => conn
                        .send_message(id, message.data, false)
                        .expect("open stream"),
                    Call::ServerStream { request } => *request = Some(message.data),
                    Call::Sum { messages, bytes } => {
                        *messages += 1;
                        *bytes += message.data.len() as u64;
                    }
                    Call::Fail | Call::Shutdown => {}
                }
            }
            Event::EndOfStream { id } => {
                let Some(call) = self.calls.remove(&id) else {
                    return self.stray(id, "end of stream");
                };
                let status = match call {
                    Call::Echo => ResponseStatus::OK,
                    Call::ServerStream { request } => {
                        let mut request = request.expect("a request message");
                        let (count, size) = (request.get_u32(), request.get_u32() as usize);
                        for i in 0..count {
                            let mut message = BytesMut::with_capacity(size);
                            message.put_u32(i);
                            message.resize(size, (i % 251) as u8);
                            conn.send_message(id, message.freeze(), false)
                                .expect("open stream");
                        }
                        ResponseStatus::OK
                    }
                    Call::Sum { messages, bytes } => {
                        let mut reply = BytesMut::new();
                        reply.put_u64(bytes);
                        reply.put_u32(messages);
                        conn.send_message(id, reply.freeze(), false)
                            .expect("open stream");
                        ResponseStatus::OK
                    }
                    Call::Fail => ResponseStatus {
                        code: FAIL_CODE,
                        message: Bytes::from_static(FAIL_MESSAGE.as_bytes()),
                        details: Some(Bytes::from_static(FAIL_DETAILS)),
                    },
                    Call::Shutdown => {
                        conn.go_away();
                        ResponseStatus::OK
                    }
                };
                conn.send_trailers(id, status, []).expect("open stream");
                conn.release_stream(id);
            }
            Event::Reset {
                id,
                reason,
                initiator,
            } => {
                self.stray(id, "reset");
                self.calls.remove(&id);
                self.log
                    .lock()
                    .unwrap()
                    .resets
                    .push((id.0, reason, initiator));
                conn.release_stream(id);
            }
            other => self
                .log
                .lock()
                .unwrap()
                .unexpected
                .push(format!("{other:?}")),
        }
    }
}

/// Runs the server side of one connection until it closes or the client goes away.
async fn serve(io: DuplexStream, config: Config, log: SharedLog) {
    let (mut rd, mut wr) = tokio::io::split(io);
    let mut conn = Connection::new(config, Instant::now());
    let mut service = Service {
        calls: HashMap::new(),
        announced: HashSet::new(),
        log: log.clone(),
    };
    let mut inbox = BytesMut::new();
    let mut out = BytesMut::new();
    let mut tap_in = Tap::new(PREFACE.len());
    let mut tap_out = Tap::new(0);
    loop {
        while let Some(event) = conn.poll_event() {
            service.handle(&mut conn, event);
        }
        let before = out.len();
        conn.poll_transmit(Instant::now(), &mut out);
        {
            let mut log = log.lock().unwrap();
            tap_out.feed(&out[before..], &mut log.from_server);
            log.peak_streams = log.peak_streams.max(conn.active_streams());
        }
        if out.is_empty() && conn.is_closed() {
            break;
        }
        // Read while writing: both peers may have a full pipe's worth to say, and a
        // pump that only reads once its write is done could wait on h2 forever.
        inbox.reserve(16 * 1024);
        let filled = inbox.len();
        let read = tokio::select! {
            n = rd.read_buf(&mut inbox) => n,
            written = wr.write_buf(&mut out), if !out.is_empty() => {
                if written.is_err() {
                    break;
                }
                continue;
            }
        };
        match read {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                tap_in.feed(&inbox[filled..], &mut log.lock().unwrap().from_client);
                conn.recv(Instant::now(), &mut inbox);
            }
        }
    }
    let _ = wr.write_all(&out).await;
    let _ = wr.shutdown().await;
}

// ----- the client side -----

struct Harness {
    send: SendRequest<Bytes>,
    log: SharedLog,
    server: JoinHandle<()>,
    client: JoinHandle<Result<(), h2::Error>>,
}

async fn connect(builder: &h2::client::Builder) -> Harness {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let log = SharedLog::default();
    let server = tokio::spawn(serve(server_io, Config::default(), log.clone()));
    let (send, connection) = builder
        .handshake::<_, Bytes>(client_io)
        .await
        .expect("h2 handshake");
    let client = tokio::spawn(connection);
    Harness {
        send,
        log,
        server,
        client,
    }
}

async fn connect_default() -> Harness {
    connect(&h2::client::Builder::new()).await
}

fn request(path: &str, content_type: &str) -> Request<()> {
    Request::builder()
        .method(Method::POST)
        .uri(format!("http://localhost{path}"))
        .header("content-type", content_type)
        .header("te", "trailers")
        .header("user-agent", "h2-interop-test")
        .body(())
        .unwrap()
}

/// A gRPC length-prefixed message.
fn framed(body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(body.len() + 5);
    out.put_u8(0);
    out.put_u32(body.len() as u32);
    out.put_slice(body);
    out.freeze()
}

/// A deterministic body of `len` bytes, different for each `seed`.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(seed as u32) as u8 ^ (i >> 12) as u8)
        .collect()
}

impl Harness {
    async fn open(
        &mut self,
        path: &str,
        content_type: &str,
    ) -> (ResponseFuture, SendStream<Bytes>) {
        let send = self
            .send
            .clone()
            .ready()
            .await
            .expect("h2 ready for a new stream");
        self.send = send;
        self.send
            .send_request(request(path, content_type), false)
            .expect("h2 sends the request")
    }

    /// A unary call: one message, then the whole response.
    async fn unary(&mut self, path: &str, body: &[u8]) -> Reply {
        let (response, mut stream) = self.open(path, "application/grpc").await;
        stream.send_data(framed(body), true).unwrap();
        Reply::read(response).await
    }

    /// Waits until `done` holds for the log, yielding so the pump can run.
    async fn wait_for(&self, what: &str, done: impl Fn(&Log) -> bool) {
        for _ in 0..10_000 {
            if done(&self.log.lock().unwrap()) {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!(
            "gave up waiting for {what}: {:#?}",
            self.log.lock().unwrap()
        );
    }

    fn assert_healthy(&self) {
        let log = self.log.lock().unwrap();
        assert!(
            log.unexpected.is_empty(),
            "unexpected events: {:?}",
            log.unexpected
        );
        assert!(
            !log.from_server
                .iter()
                .any(|f| matches!(f, Seen::GoAway { .. })),
            "the server sent GOAWAY: {:?}",
            log.from_server
        );
    }
}

/// Reads gRPC messages off a response body, returning flow-control credit as the
/// application would.
struct Messages {
    body: RecvStream,
    buf: BytesMut,
}

impl Messages {
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if self.buf.len() >= 5 {
                assert_eq!(self.buf[0], 0, "uncompressed response");
                let len = u32::from_be_bytes(self.buf[1..5].try_into().unwrap()) as usize;
                if self.buf.len() >= 5 + len {
                    self.buf.advance(5);
                    return Some(self.buf.split_to(len).freeze());
                }
            }
            match self.body.data().await {
                Some(chunk) => {
                    let chunk = chunk.expect("response body");
                    self.body
                        .flow_control()
                        .release_capacity(chunk.len())
                        .unwrap();
                    self.buf.extend_from_slice(&chunk);
                }
                None => {
                    assert!(
                        self.buf.is_empty(),
                        "body ended inside a message: {} bytes left",
                        self.buf.len()
                    );
                    return None;
                }
            }
        }
    }

    async fn trailers(mut self) -> Option<HeaderMap> {
        assert!(self.next().await.is_none(), "no message after the last");
        self.body.trailers().await.expect("trailers")
    }
}

/// A whole response.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    messages: Vec<Bytes>,
    /// `None` for a Trailers-Only response, whose status is in `headers`.
    trailers: Option<HeaderMap>,
}

impl Reply {
    async fn start(response: ResponseFuture) -> (StatusCode, HeaderMap, Messages) {
        let response = response.await.expect("response head");
        let (parts, body) = response.into_parts();
        (
            parts.status,
            parts.headers,
            Messages {
                body,
                buf: BytesMut::new(),
            },
        )
    }

    async fn read(response: ResponseFuture) -> Reply {
        let (status, headers, mut body) = Reply::start(response).await;
        let mut messages = Vec::new();
        while let Some(message) = body.next().await {
            messages.push(message);
        }
        let trailers = body.trailers().await;
        Reply {
            status,
            headers,
            messages,
            trailers,
        }
    }

    /// Checks a successful gRPC response: 200, gRPC content type, status OK in trailers.
    fn assert_ok(&self) {
        assert_eq!(self.status, StatusCode::OK);
        assert_eq!(self.headers["content-type"], "application/grpc");
        let trailers = self.trailers.as_ref().expect("trailers after the messages");
        assert_eq!(trailers["grpc-status"], "0", "{trailers:?}");
    }
}

/// Percent-decoding of `grpc-message`, written from the gRPC spec for this test so
/// the codec's own encoder is checked against something independent.
fn percent_decode(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < value.len() {
        if value[i] == b'%' && i + 2 < value.len() {
            let hex = std::str::from_utf8(&value[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).expect("two hex digits after %"));
            i += 3;
        } else {
            out.push(value[i]);
            i += 1;
        }
    }
    out
}

/// Standard base64, padded or not, written for this test (see `percent_decode`).
fn base64_decode(value: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for &c in value.iter().take_while(|&&c| c != b'=') {
        let v = ALPHABET
            .iter()
            .position(|&a| a == c)
            .expect("base64 alphabet") as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

async fn run(body: impl Future<Output = ()>) {
    tokio::time::timeout(TEST_TIMEOUT, body)
        .await
        .expect("test timed out");
}

// ----- tests -----

#[tokio::test(flavor = "current_thread")]
async fn unary_call() {
    run(async {
        let mut h = connect_default().await;
        let reply = h.unary("/test.Echo/Unary", b"\x0a\x05hello").await;
        reply.assert_ok();
        assert_eq!(reply.messages, [Bytes::from_static(b"\x0a\x05hello")]);
        assert_eq!(reply.headers["x-path"], "/test.Echo/Unary");
        // An unknown method is answered by the service, on the same connection.
        let reply = h.unary("/test.Echo/Nope", b"").await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(
            reply.messages.is_empty() && reply.trailers.is_none(),
            "Trailers-Only: {reply:?}"
        );
        assert_eq!(reply.headers["grpc-status"], "12");
        assert_eq!(reply.headers["grpc-message"], "no such method");
        h.assert_healthy();
        assert_eq!(
            h.log.lock().unwrap().paths,
            ["/test.Echo/Unary", "/test.Echo/Nope"]
        );
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn hundred_concurrent_unary_calls() {
    run(async {
        let mut h = connect_default().await;
        // Every request is queued in h2 before the pump runs, so they reach the
        // server together and are in flight at once.
        let mut pending = Vec::new();
        for i in 0..100u8 {
            let (response, mut stream) = h.open("/test.Echo/Unary", "application/grpc").await;
            let body = pattern(10 + i as usize * 7, i);
            stream.send_data(framed(&body), true).unwrap();
            pending.push((body, response));
        }
        for (body, response) in pending {
            let reply = Reply::read(response).await;
            reply.assert_ok();
            assert_eq!(reply.messages, [Bytes::from(body)]);
        }
        h.assert_healthy();
        let log = h.log.lock().unwrap();
        assert_eq!(log.paths.len(), 100);
        assert!(
            log.peak_streams > 1,
            "calls were not concurrent (peak {})",
            log.peak_streams
        );
        let streams: std::collections::HashSet<u32> = log
            .from_server
            .iter()
            .filter_map(|f| match f {
                Seen::Headers {
                    id,
                    end_stream: true,
                } => Some(*id),
                _ => None,
            })
            .collect();
        assert_eq!(streams.len(), 100, "one trailers block per call");
    })
    .await;
}

/// 4 MiB up and 4 MiB back, the largest message the default config accepts. h2
/// sends with the 1 MiB stream window we advertise; we send into h2's windows.
async fn four_mib_echo(builder: h2::client::Builder) -> Harness {
    let mut h = connect(&builder).await;
    let body = pattern(4 * 1024 * 1024, 7);
    let reply = h.unary("/test.Echo/Unary", &body).await;
    reply.assert_ok();
    assert_eq!(reply.messages.len(), 1);
    assert!(reply.messages[0] == body[..], "echo differs");
    h.assert_healthy();
    {
        let log = h.log.lock().unwrap();
        let sent: usize = log
            .from_server
            .iter()
            .map(|f| match f {
                Seen::Data { id: 1, len, .. } => *len,
                _ => 0,
            })
            .sum();
        assert_eq!(sent, body.len() + 5);
        // The request outgrows both of our initial windows, so it only got through
        // because the codec reopened them.
        assert!(log
            .from_server
            .iter()
            .any(|f| matches!(f, Seen::WindowUpdate { id: 1, .. })));
        assert!(log
            .from_server
            .iter()
            .any(|f| matches!(f, Seen::WindowUpdate { id: 0, .. })));
    }
    h
}

#[tokio::test(flavor = "current_thread")]
async fn four_mib_request_and_response() {
    run(async {
        let h = four_mib_echo(h2::client::Builder::new()).await;
        let log = h.log.lock().unwrap();
        // h2's default 64 KiB windows: the response needed its WINDOW_UPDATEs.
        let updates = log
            .from_client
            .iter()
            .filter(|f| matches!(f, Seen::WindowUpdate { id: 1, .. }))
            .count();
        assert!(
            updates >= 4 * 1024 / 64 / 2,
            "{updates} stream WINDOW_UPDATEs from h2"
        );
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn four_mib_through_small_client_windows() {
    run(async {
        let mut builder = h2::client::Builder::new();
        builder
            .initial_window_size(4096)
            .initial_connection_window_size(65_535)
            .max_frame_size(16_384);
        let h = four_mib_echo(builder).await;
        let log = h.log.lock().unwrap();
        // No DATA frame may exceed what a 4 KiB stream window allows.
        let largest = log
            .from_server
            .iter()
            .filter_map(|f| {
                if let Seen::Data { len, .. } = f {
                    Some(*len)
                } else {
                    None
                }
            })
            .max();
        assert_eq!(largest, Some(4096));
        let updates = log
            .from_client
            .iter()
            .filter(|f| matches!(f, Seen::WindowUpdate { id: 1, .. }))
            .count();
        assert!(
            updates >= 4 * 1024 * 1024 / 4096 / 2,
            "{updates} stream WINDOW_UPDATEs from h2"
        );
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn server_streaming_thousand_messages() {
    run(async {
        let mut h = connect_default().await;
        let (count, size) = (1000u32, 100u32);
        let mut request = Vec::new();
        request.extend_from_slice(&count.to_be_bytes());
        request.extend_from_slice(&size.to_be_bytes());
        let reply = h.unary("/test.Echo/ServerStream", &request).await;
        reply.assert_ok();
        assert_eq!(reply.messages.len(), count as usize);
        for (i, message) in reply.messages.iter().enumerate() {
            assert_eq!(message.len(), size as usize);
            assert_eq!(
                u32::from_be_bytes(message[..4].try_into().unwrap()),
                i as u32,
                "order"
            );
            assert!(message[4..].iter().all(|&b| b == (i % 251) as u8));
        }
        h.assert_healthy();
        // 105,000 bytes do not fit h2's 65,535-byte windows: sent across updates.
        let log = h.log.lock().unwrap();
        assert!(log
            .from_client
            .iter()
            .any(|f| matches!(f, Seen::WindowUpdate { id: 1, .. })));
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn client_streaming() {
    run(async {
        let mut h = connect_default().await;
        let (response, mut stream) = h.open("/test.Echo/ClientStream", "application/grpc").await;
        let mut total = 0u64;
        for i in 0..200usize {
            stream
                .send_data(framed(&pattern(i * 13, i as u8)), false)
                .unwrap();
            total += (i * 13) as u64;
        }
        // One message split across DATA frames, prefix included, to make the server
        // reassemble it.
        let big = framed(&pattern(40_000, 1));
        stream.send_data(big.slice(..3), false).unwrap();
        stream.send_data(big.slice(3..20_000), false).unwrap();
        stream.send_data(big.slice(20_000..), true).unwrap();
        total += 40_000;
        let reply = Reply::read(response).await;
        reply.assert_ok();
        let mut sum = reply.messages[0].clone();
        assert_eq!((sum.get_u64(), sum.get_u32()), (total, 201));
        h.assert_healthy();
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn bidi_ping_pong() {
    run(async {
        let mut h = connect_default().await;
        let (response, mut stream) = h.open("/test.Echo/Bidi", "application/grpc").await;
        // The response head goes out with the first echo, so it is awaited only
        // after the first message is sent.
        let mut response = Some(response);
        let mut messages = None;
        for i in 0..100u8 {
            let body = pattern(1 + i as usize * 3, i);
            stream.send_data(framed(&body), false).unwrap();
            if let Some(response) = response.take() {
                let (status, headers, body) = Reply::start(response).await;
                assert_eq!(status, StatusCode::OK);
                assert_eq!(headers["content-type"], "application/grpc");
                messages = Some(body);
            }
            let echo = messages
                .as_mut()
                .unwrap()
                .next()
                .await
                .expect("an echo before the next message");
            assert_eq!(echo, body);
        }
        let messages = messages.unwrap();
        stream.send_data(Bytes::new(), true).unwrap();
        let trailers = messages.trailers().await.expect("trailers");
        assert_eq!(trailers["grpc-status"], "0");
        h.assert_healthy();
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn error_status_is_trailers_only_with_encoded_message_and_details() {
    run(async {
        let mut h = connect_default().await;
        let reply = h.unary("/test.Echo/Fail", b"x").await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(
            reply.messages.is_empty() && reply.trailers.is_none(),
            "Trailers-Only: {reply:?}"
        );
        let head = &reply.headers;
        assert_eq!(head["content-type"], "application/grpc");
        assert_eq!(head["grpc-status"], FAIL_CODE.to_string().as_str());
        let message = head["grpc-message"].as_bytes();
        assert!(
            message.iter().all(|b| (0x20..=0x7e).contains(b)),
            "printable ASCII on the wire: {message:?}"
        );
        assert_eq!(
            String::from_utf8(percent_decode(message)).unwrap(),
            FAIL_MESSAGE
        );
        assert_eq!(
            base64_decode(head["grpc-status-details-bin"].as_bytes()),
            FAIL_DETAILS
        );
        // Trailers-Only is one HEADERS frame ending the stream.
        let log = h.log.lock().unwrap();
        let frames: Vec<_> = log
            .from_server
            .iter()
            .filter(|f| matches!(f, Seen::Headers { id: 1, .. } | Seen::Data { id: 1, .. }))
            .collect();
        assert_eq!(
            frames,
            [&Seen::Headers {
                id: 1,
                end_stream: true
            }]
        );
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn client_reset_mid_call_leaves_other_calls_alone() {
    run(async {
        let mut h = connect_default().await;
        // A second call stays open across the reset of the first.
        let (other_response, mut other) = h.open("/test.Echo/Bidi", "application/grpc").await;
        let (response, mut stream) = h.open("/test.Echo/Bidi", "application/grpc").await;
        let cancelled = stream.stream_id().as_u32();
        stream.send_data(framed(b"first"), false).unwrap();
        let (_, _, mut messages) = Reply::start(response).await;
        assert_eq!(messages.next().await.unwrap(), "first");
        stream.send_reset(h2::Reason::CANCEL);
        h.wait_for("the server to see the reset", |log| !log.resets.is_empty())
            .await;
        assert_eq!(
            h.log.lock().unwrap().resets,
            [(cancelled, Reason::CANCEL, Initiator::Remote)]
        );

        // The open call still works, and so do new ones.
        other.send_data(framed(b"still here"), true).unwrap();
        let reply = Reply::read(other_response).await;
        reply.assert_ok();
        assert_eq!(reply.messages, ["still here"]);
        let reply = h.unary("/test.Echo/Unary", b"after").await;
        reply.assert_ok();
        assert_eq!(reply.messages, ["after"]);
        h.assert_healthy();
        // A client's RST_STREAM ends the stream on both sides: the server does not
        // answer it with one of its own.
        let log = h.log.lock().unwrap();
        assert!(log.from_client.contains(&Seen::Reset {
            id: cancelled,
            reason: Reason::CANCEL
        }));
        assert!(!log
            .from_server
            .iter()
            .any(|f| matches!(f, Seen::Reset { id, .. } if *id == cancelled)));
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn unknown_content_type_is_415_without_body() {
    run(async {
        let mut h = connect_default().await;
        let (response, _stream) = {
            let send = h.send.clone().ready().await.unwrap();
            h.send = send;
            h.send
                .send_request(request("/test.Echo/Unary", "application/json"), true)
                .unwrap()
        };
        let reply = Reply::read(response).await;
        assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(reply.messages.is_empty() && reply.trailers.is_none());
        // gRPC clients map a non-200 status themselves, but a grpc-status helps.
        assert_eq!(reply.headers["grpc-status"], "13");
        assert!(
            h.log.lock().unwrap().paths.is_empty(),
            "never reaches the service"
        );
        // And the connection goes on.
        h.unary("/test.Echo/Unary", b"ok").await.assert_ok();
        h.assert_healthy();
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn rejected_requests_with_a_body_reach_no_handler() {
    run(async {
        let mut h = connect_default().await;
        // Each body is sent with its headers, before the server has answered: it must
        // be dropped by the codec, not delivered for a stream the service never saw.
        let (response, mut stream) = h.open("/test.Echo/Unary", "application/json").await;
        stream.send_data(framed(b"{}"), true).unwrap();
        let reply = Reply::read(response).await;
        assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

        let mut bad_timeout = request("/test.Echo/Unary", "application/grpc");
        bad_timeout
            .headers_mut()
            .insert("grpc-timeout", "123456789S".parse().unwrap());
        h.send = h.send.clone().ready().await.unwrap();
        let (response, mut stream) = h.send.send_request(bad_timeout, false).unwrap();
        stream.send_data(framed(b"x"), true).unwrap();
        let reply = Reply::read(response).await;
        assert_eq!(reply.headers["grpc-status"], "13", "{reply:?}");

        h.unary("/test.Echo/Unary", b"ok").await.assert_ok();
        let log = h.log.lock().unwrap();
        assert!(log.unexpected.is_empty(), "{:?}", log.unexpected);
        assert_eq!(log.paths, ["/test.Echo/Unary"]);
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn graceful_shutdown_completes_in_flight_calls() {
    run(async {
        let mut h = connect_default().await;
        // An in-flight call that outlives the shutdown request.
        let (response, mut stream) = h.open("/test.Echo/Bidi", "application/grpc").await;
        let in_flight = stream.stream_id().as_u32();
        stream.send_data(framed(b"one"), false).unwrap();
        let (_, _, mut messages) = Reply::start(response).await;
        assert_eq!(messages.next().await.unwrap(), "one");

        let reply = h.unary("/test.Admin/Shutdown", b"").await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.headers["grpc-status"], "0", "Trailers-Only OK");
        // GOAWAY(2^31 - 1), PING, h2's PING ACK, then the final GOAWAY naming the
        // last stream the server took.
        h.wait_for("the final GOAWAY", |log| {
            log.from_server
                .iter()
                .filter(|f| matches!(f, Seen::GoAway { .. }))
                .count()
                == 2
        })
        .await;
        {
            let log = h.log.lock().unwrap();
            let go_aways: Vec<_> = log
                .from_server
                .iter()
                .filter(|f| matches!(f, Seen::GoAway { .. }))
                .collect();
            assert_eq!(
                go_aways,
                [
                    &Seen::GoAway {
                        last: (1 << 31) - 1,
                        reason: Reason::NO_ERROR
                    },
                    &Seen::GoAway {
                        last: 3,
                        reason: Reason::NO_ERROR
                    },
                ]
            );
            assert!(log.from_client.contains(&Seen::Ping { ack: true }));
        }

        // h2 refuses to open new streams on a connection going away.
        let refused = h.send.clone().ready().await.and_then(|mut send| {
            send.send_request(request("/test.Echo/Unary", "application/grpc"), true)
        });
        let error = refused.expect_err("no new stream after GOAWAY");
        assert!(error.is_go_away() && error.is_remote(), "{error:?}");

        // The in-flight call still completes.
        stream.send_data(framed(b"two"), false).unwrap();
        assert_eq!(messages.next().await.unwrap(), "two");
        stream.send_data(Bytes::new(), true).unwrap();
        let trailers = messages.trailers().await.expect("trailers");
        assert_eq!(trailers["grpc-status"], "0");
        assert_eq!(in_flight, 1);

        // With nothing left, the server closes the connection, and h2 ends cleanly.
        let Harness {
            server,
            client,
            log,
            ..
        } = h;
        server.await.expect("server pump");
        client
            .await
            .expect("h2 task")
            .expect("h2 connection ends without error");
        let log = log.lock().unwrap();
        assert!(
            log.unexpected.iter().all(|e| e.starts_with("GoAway")),
            "{:?}",
            log.unexpected
        );
        assert_eq!(log.paths, ["/test.Echo/Bidi", "/test.Admin/Shutdown"]);
    })
    .await;
}
