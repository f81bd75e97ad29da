//! A raw HTTP/2 client for attack tests: frames built by hand and written to a
//! TCP socket as they are, whatever the protocol says, and the server's frames
//! read back with their header blocks decoded.
//!
//! Header blocks are encoded with the codec's HPACK encoder, or written byte by
//! byte where a test needs a broken one. A task reads the socket the whole time,
//! so a test can write a flood without the server's answers backing up into a
//! deadlock; [`RawClient::next`] hands those answers out in order.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ringrpc_codec::frame::{self, FrameHeader};
use ringrpc_codec::hpack::{Decoder, Encoder, Header, Indexing, DEFAULT_TABLE_SIZE};
pub use ringrpc_codec::Reason;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Frame type codes (RFC 9113 §6).
pub mod kind {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const PRIORITY: u8 = 0x2;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PUSH_PROMISE: u8 = 0x5;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags.
pub mod flag {
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

/// SETTINGS parameters (RFC 9113 §6.5.2).
pub mod setting {
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    pub const ENABLE_PUSH: u16 = 0x2;
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
}

/// The client connection preface.
pub const PREFACE: &[u8] = frame::PREFACE;

/// The test service's paths.
pub const UNARY: &str = "/ringrpc.test.TestService/Unary";
pub const SERVER_STREAM: &str = "/ringrpc.test.TestService/ServerStream";

/// How long to wait for an answer the server owes at once. Generous: the machine
/// may be busy with other tests; nothing here measures speed.
pub const PROMPTLY: Duration = Duration::from_secs(10);

/// A frame the server wrote, header blocks decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Settings(frame::Settings),
    Headers {
        id: u32,
        fields: Vec<(String, String)>,
        end_stream: bool,
    },
    Data {
        id: u32,
        payload: Bytes,
        end_stream: bool,
    },
    Reset {
        id: u32,
        reason: Reason,
    },
    Ping {
        ack: bool,
        payload: [u8; 8],
    },
    GoAway {
        last: u32,
        reason: Reason,
        debug: String,
    },
    WindowUpdate {
        id: u32,
        increment: u32,
    },
}

/// What [`RawClient::next`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Frame(Frame),
    /// The server closed the connection (FIN or RST).
    Closed,
    /// Nothing within the wait.
    TimedOut,
}

/// How a stream ended, as the client saw it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `:status` of the response head.
    pub http_status: Option<String>,
    /// `grpc-status`, from trailers or a Trailers-Only response.
    pub grpc_status: Option<String>,
    pub grpc_message: Option<String>,
    /// The stream was reset with this code.
    pub reset: Option<Reason>,
    /// Message bytes received (DATA payloads).
    pub data: usize,
    /// The connection ended first, with this GOAWAY code if one came.
    pub goaway: Option<Reason>,
    pub closed: bool,
}

/// One end of a raw HTTP/2 connection. See the module docs.
pub struct RawClient {
    write: OwnedWriteHalf,
    frames: mpsc::UnboundedReceiver<Next>,
    /// Frames taken off the channel by [`RawClient::hung_up`], not yet handed out.
    pending: VecDeque<Next>,
    /// The server closed the connection: every later read says so.
    closed: bool,
    encoder: Encoder,
    /// The server's SETTINGS frame, once seen.
    pub server_settings: Option<frame::Settings>,
}

impl RawClient {
    /// A TCP connection with nothing sent yet.
    pub async fn connect(addr: SocketAddr) -> RawClient {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.set_nodelay(true).unwrap();
        let (read, write) = tcp.into_split();
        let (tx, frames) = mpsc::unbounded_channel();
        tokio::spawn(read_frames(read, tx));
        RawClient {
            write,
            frames,
            pending: VecDeque::new(),
            closed: false,
            encoder: Encoder::new(),
            server_settings: None,
        }
    }

    /// Connects and completes the handshake: preface, our SETTINGS with `params`,
    /// the server's SETTINGS read and acknowledged.
    pub async fn handshake(addr: SocketAddr, params: &[(u16, u32)]) -> RawClient {
        let mut c = RawClient::connect(addr).await;
        let mut hello = PREFACE.to_vec();
        hello.extend(settings(params));
        assert!(c.send(&hello).await, "preface written");
        loop {
            match c.next(PROMPTLY).await {
                Next::Frame(Frame::Settings(s)) if !s.ack => {
                    c.server_settings = Some(s);
                    break;
                }
                Next::Frame(_) => {}
                other => panic!("no server SETTINGS: {other:?}"),
            }
        }
        assert!(c.send(&settings_ack()).await);
        c
    }

    /// Writes `bytes`; false once the server has closed the connection.
    pub async fn send(&mut self, bytes: &[u8]) -> bool {
        self.write.write_all(bytes).await.is_ok()
    }

    /// The next frame the server wrote, waiting at most `within`.
    pub async fn next(&mut self, within: Duration) -> Next {
        if self.closed {
            return Next::Closed;
        }
        let next = match self.pending.pop_front() {
            Some(next) => next,
            None => match tokio::time::timeout(within, self.frames.recv()).await {
                Err(_) => return Next::TimedOut,
                Ok(next) => next.unwrap_or(Next::Closed),
            },
        };
        self.closed = next == Next::Closed;
        next
    }

    /// Whether the server has sent GOAWAY or closed the connection, from what
    /// has arrived so far (nothing is consumed): the signal for a flood to stop.
    pub fn hung_up(&mut self) -> bool {
        while let Ok(next) = self.frames.try_recv() {
            self.pending.push_back(next);
        }
        self.closed
            || self
                .pending
                .iter()
                .any(|next| matches!(next, Next::Closed | Next::Frame(Frame::GoAway { .. })))
    }

    /// Sends a PING and waits for its ACK: everything written before it has been
    /// processed by then. Returns the frames that came first.
    pub async fn ping_pong(&mut self, payload: [u8; 8]) -> Vec<Frame> {
        assert!(self.send(&ping(payload)).await, "connection open");
        let mut before = Vec::new();
        loop {
            match self.next(PROMPTLY).await {
                Next::Frame(Frame::Ping {
                    ack: true,
                    payload: got,
                }) if got == payload => return before,
                Next::Frame(frame @ Frame::GoAway { .. }) => {
                    panic!("{frame:?} before the PING ACK; before: {before:?}")
                }
                Next::Frame(frame) => before.push(frame),
                other => panic!("no PING ACK: {other:?}; before: {before:?}"),
            }
        }
    }

    /// The client's HPACK encoder, for blocks shaped by hand.
    pub fn encoder(&mut self) -> &mut Encoder {
        &mut self.encoder
    }

    /// A header block with `fields`, indexed so that repeated requests are small.
    pub fn block(&mut self, fields: &[(&str, &str)]) -> Bytes {
        let mut dst = BytesMut::new();
        self.encoder.begin_block(&mut dst);
        for (name, value) in fields {
            self.encoder.encode_field(
                name.as_bytes(),
                value.as_bytes(),
                Indexing::Incremental,
                &mut dst,
            );
        }
        dst.freeze()
    }

    /// The block of a gRPC request to `path` with `extra` fields after the
    /// standard ones.
    pub fn request_block(&mut self, path: &str, extra: &[(&str, &str)]) -> Bytes {
        let mut fields = grpc_request(path);
        fields.extend_from_slice(extra);
        self.block(&fields)
    }

    /// A HEADERS frame opening a gRPC call to `path`.
    pub fn request_frame(
        &mut self,
        id: u32,
        path: &str,
        extra: &[(&str, &str)],
        end_stream: bool,
    ) -> Vec<u8> {
        let block = self.request_block(path, extra);
        let flags = flag::END_HEADERS | if end_stream { flag::END_STREAM } else { 0 };
        raw(kind::HEADERS, flags, id, &block)
    }

    /// Opens a gRPC call to `path`.
    pub async fn request(
        &mut self,
        id: u32,
        path: &str,
        extra: &[(&str, &str)],
        end_stream: bool,
    ) -> bool {
        let frame = self.request_frame(id, path, extra, end_stream);
        self.send(&frame).await
    }

    /// Reads until stream `id` ends (END_STREAM or RST_STREAM) or the connection
    /// does; frames of other streams are skipped.
    pub async fn outcome(&mut self, id: u32, within: Duration) -> Outcome {
        let mut outcome = Outcome::default();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Next::Frame(Frame::Headers {
                    id: on,
                    fields,
                    end_stream,
                }) if on == id => {
                    for (name, value) in fields {
                        match name.as_str() {
                            ":status" => outcome.http_status = Some(value),
                            "grpc-status" => outcome.grpc_status = Some(value),
                            "grpc-message" => outcome.grpc_message = Some(value),
                            _ => {}
                        }
                    }
                    if end_stream {
                        return outcome;
                    }
                }
                Next::Frame(Frame::Data {
                    id: on,
                    payload,
                    end_stream,
                }) if on == id => {
                    outcome.data += payload.len();
                    if end_stream {
                        return outcome;
                    }
                }
                Next::Frame(Frame::Reset { id: on, reason }) if on == id => {
                    outcome.reset = Some(reason);
                    return outcome;
                }
                Next::Frame(Frame::GoAway { reason, .. }) => {
                    outcome.goaway = Some(reason);
                    return outcome;
                }
                Next::Frame(_) => {}
                Next::Closed => {
                    outcome.closed = true;
                    return outcome;
                }
                Next::TimedOut => panic!("stream {id} not answered within {within:?}: {outcome:?}"),
            }
        }
    }

    /// A complete unary call on `id` on this connection, which must succeed: the
    /// proof that the connection still works after whatever came before.
    pub async fn assert_serves(&mut self, id: u32) {
        let mut frames = self.request_frame(id, UNARY, &[], false);
        // An empty Payload message.
        frames.extend(data(id, &grpc_message(&[]), true));
        assert!(self.send(&frames).await, "connection open for stream {id}");
        let outcome = self.outcome(id, PROMPTLY).await;
        assert_eq!(
            (
                outcome.http_status.as_deref(),
                outcome.grpc_status.as_deref()
            ),
            (Some("200"), Some("0")),
            "stream {id} served normally: {outcome:?}"
        );
        assert_eq!(outcome.reset, None);
    }

    /// Reads until a GOAWAY (failing on anything that ends the wait first), then
    /// until the server closes the connection. Returns the GOAWAY's last stream
    /// id and the frames that came before it.
    pub async fn expect_goaway(&mut self, reason: Reason) -> (u32, Vec<Frame>) {
        let mut before = Vec::new();
        loop {
            match self.next(PROMPTLY).await {
                Next::Frame(Frame::GoAway {
                    last,
                    reason: got,
                    debug,
                }) => {
                    assert_eq!(got, reason, "GOAWAY reason (debug data {debug:?})");
                    self.expect_closed(PROMPTLY).await;
                    return (last, before);
                }
                Next::Frame(frame) => before.push(frame),
                other => panic!(
                    "expected GOAWAY {reason:?}, got {other:?} after {} frames: {:?}",
                    before.len(),
                    before.iter().rev().take(5).collect::<Vec<_>>()
                ),
            }
        }
    }

    /// Reads (and drops) everything until the server closes the connection.
    pub async fn expect_closed(&mut self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Next::Closed => return,
                Next::TimedOut => panic!("connection still open after {within:?}"),
                Next::Frame(_) => {}
            }
        }
    }

    /// Reads what the server sends within `within`, which must be no GOAWAY and no
    /// close; returns it.
    pub async fn quiet_for(&mut self, within: Duration) -> Vec<Frame> {
        let deadline = tokio::time::Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Next::TimedOut => return seen,
                Next::Closed => panic!("connection closed; before: {seen:?}"),
                Next::Frame(frame @ Frame::GoAway { .. }) => {
                    panic!("unexpected {frame:?}; before: {seen:?}")
                }
                Next::Frame(frame) => seen.push(frame),
            }
        }
    }
}

/// The reading task: frames in, decoded, out to the channel; `Closed` at the end.
async fn read_frames(mut read: tokio::net::tcp::OwnedReadHalf, tx: mpsc::UnboundedSender<Next>) {
    let mut decoder = Decoder::new(DEFAULT_TABLE_SIZE);
    let mut inbox = BytesMut::with_capacity(64 * 1024);
    // A header block arriving in pieces: stream, END_STREAM, fragments so far.
    let mut partial: Option<(u32, bool, BytesMut)> = None;
    loop {
        while let Some(head) = FrameHeader::parse(&inbox) {
            let total = frame::HEADER_LEN + head.len as usize;
            if inbox.len() < total {
                break;
            }
            let mut bytes = inbox.split_to(total);
            let payload = bytes.split_off(frame::HEADER_LEN).freeze();
            let parsed =
                frame::Frame::parse(head, payload).expect("the server writes valid frames");
            let out = match parsed {
                frame::Frame::Settings(s) => Some(Frame::Settings(s)),
                frame::Frame::Headers(h) => {
                    assert!(partial.is_none(), "HEADERS inside a header block");
                    if h.end_headers {
                        Some(Frame::Headers {
                            id: h.stream_id.0,
                            fields: decode(&mut decoder, &h.fragment),
                            end_stream: h.end_stream,
                        })
                    } else {
                        partial =
                            Some((h.stream_id.0, h.end_stream, BytesMut::from(&h.fragment[..])));
                        None
                    }
                }
                frame::Frame::Continuation(c) => {
                    let (id, end_stream, mut block) =
                        partial.take().expect("CONTINUATION after HEADERS");
                    assert_eq!(id, c.stream_id.0);
                    block.extend_from_slice(&c.fragment);
                    if c.end_headers {
                        Some(Frame::Headers {
                            id,
                            fields: decode(&mut decoder, &block.freeze()),
                            end_stream,
                        })
                    } else {
                        partial = Some((id, end_stream, block));
                        None
                    }
                }
                frame::Frame::Data(d) => Some(Frame::Data {
                    id: d.stream_id.0,
                    payload: d.payload,
                    end_stream: d.end_stream,
                }),
                frame::Frame::Reset(r) => Some(Frame::Reset {
                    id: r.stream_id.0,
                    reason: r.reason,
                }),
                frame::Frame::Ping(p) => Some(Frame::Ping {
                    ack: p.ack,
                    payload: p.payload,
                }),
                frame::Frame::GoAway(g) => Some(Frame::GoAway {
                    last: g.last_stream_id.0,
                    reason: g.reason,
                    debug: String::from_utf8_lossy(&g.debug).into_owned(),
                }),
                frame::Frame::WindowUpdate(w) => Some(Frame::WindowUpdate {
                    id: w.stream_id.0,
                    increment: w.increment,
                }),
                other => panic!("a server does not send {other:?}"),
            };
            if let Some(out) = out {
                if tx.send(Next::Frame(out)).is_err() {
                    return;
                }
            }
        }
        inbox.reserve(64 * 1024);
        match read.read_buf(&mut inbox).await {
            Ok(0) | Err(_) => {
                let _ = tx.send(Next::Closed);
                return;
            }
            Ok(_) => {}
        }
    }
}

fn decode(decoder: &mut Decoder, block: &Bytes) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    decoder
        .decode(block, |h: Header| {
            fields.push((
                String::from_utf8_lossy(&h.name).into_owned(),
                String::from_utf8_lossy(&h.value).into_owned(),
            ))
        })
        .expect("the server's header blocks decode");
    fields
}

// ----- frames, byte by byte -----

/// Any frame: the 9-octet header, then `payload`.
pub fn raw(kind: u8, flags: u8, id: u32, payload: &[u8]) -> Vec<u8> {
    raw_with_length(payload.len() as u32, kind, flags, id, payload)
}

/// A frame whose length field says `len`, whatever the payload is.
pub fn raw_with_length(len: u32, kind: u8, flags: u8, id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

pub fn settings(params: &[(u16, u32)]) -> Vec<u8> {
    let mut payload = Vec::new();
    for (id, value) in params {
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&value.to_be_bytes());
    }
    raw(kind::SETTINGS, 0, 0, &payload)
}

pub fn settings_ack() -> Vec<u8> {
    raw(kind::SETTINGS, flag::ACK, 0, &[])
}

pub fn ping(payload: [u8; 8]) -> Vec<u8> {
    raw(kind::PING, 0, 0, &payload)
}

pub fn data(id: u32, payload: &[u8], end_stream: bool) -> Vec<u8> {
    raw(
        kind::DATA,
        if end_stream { flag::END_STREAM } else { 0 },
        id,
        payload,
    )
}

pub fn headers(id: u32, fragment: &[u8], flags: u8) -> Vec<u8> {
    raw(kind::HEADERS, flags, id, fragment)
}

pub fn continuation(id: u32, fragment: &[u8], end_headers: bool) -> Vec<u8> {
    raw(
        kind::CONTINUATION,
        if end_headers { flag::END_HEADERS } else { 0 },
        id,
        fragment,
    )
}

pub fn rst(id: u32, reason: Reason) -> Vec<u8> {
    raw(kind::RST_STREAM, 0, id, &reason.0.to_be_bytes())
}

pub fn window_update(id: u32, increment: u32) -> Vec<u8> {
    raw(kind::WINDOW_UPDATE, 0, id, &increment.to_be_bytes())
}

pub fn go_away(last: u32, reason: Reason) -> Vec<u8> {
    let mut payload = last.to_be_bytes().to_vec();
    payload.extend_from_slice(&reason.0.to_be_bytes());
    raw(kind::GOAWAY, 0, 0, &payload)
}

/// PRIORITY on `id` depending on `dependency` (not exclusive).
pub fn priority(id: u32, dependency: u32, weight: u8) -> Vec<u8> {
    let mut payload = dependency.to_be_bytes().to_vec();
    payload.push(weight);
    raw(kind::PRIORITY, 0, id, &payload)
}

/// A header block as HEADERS plus CONTINUATION frames of at most 16 KiB each.
pub fn header_block_frames(id: u32, block: &[u8], end_stream: bool) -> Vec<u8> {
    let chunks: Vec<&[u8]> = block.chunks(16_384).collect();
    let last = chunks.len().saturating_sub(1);
    let mut out = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let end_headers = if i == last { flag::END_HEADERS } else { 0 };
        if i == 0 {
            let end_stream = if end_stream { flag::END_STREAM } else { 0 };
            out.extend(headers(id, chunk, end_headers | end_stream));
        } else {
            out.extend(continuation(id, chunk, i == last));
        }
    }
    out
}

/// The fields of a well-formed gRPC request.
pub fn grpc_request(path: &str) -> Vec<(&str, &str)> {
    vec![
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "localhost"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]
}

/// A gRPC length-prefixed message.
pub fn grpc_message(body: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A header block of literals without indexing and without Huffman: exactly as
/// long as its fields, and it leaves the server's dynamic table alone.
pub fn plain_block(fields: &[(&str, &str)]) -> Vec<u8> {
    fields
        .iter()
        .flat_map(|(name, value)| literal(name, value.as_bytes()))
        .collect()
}

/// An HPACK literal field without indexing, new name, no Huffman (RFC 7541
/// §6.2.2), for blocks written by hand.
pub fn literal(name: &str, value: &[u8]) -> Vec<u8> {
    let mut out = vec![0x00];
    hpack_string(name.as_bytes(), &mut out);
    hpack_string(value, &mut out);
    out
}

/// An HPACK string literal without Huffman: 7-bit prefix length, then the octets.
pub fn hpack_string(value: &[u8], out: &mut Vec<u8>) {
    hpack_int(value.len(), 7, 0x00, out);
    out.extend_from_slice(value);
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541 §5.1) in a first octet
/// whose other bits are `high`.
pub fn hpack_int(mut value: usize, n: u8, high: u8, out: &mut Vec<u8>) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(high | value as u8);
        return;
    }
    out.push(high | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}
