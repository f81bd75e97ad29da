//! A frame-level test client for driving the sans-IO server `Connection` with
//! hand-built frames, and reading back what it writes as parsed frames.
//!
//! The client also plays the engine's part where a test needs it: it reads the
//! connection's events and issues commands (`send_message`, `send_trailers`,
//! `release_stream`, ...) directly on `conn`.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use ringrpc_codec::error::{Error, Initiator};
use ringrpc_codec::frame::{self, flags, Frame, FrameHeader, Kind, StreamId, PREFACE};
use ringrpc_codec::hpack::{self, Encoder, Header, Indexing};
use ringrpc_codec::server::{Config, Connection, Event, ResponseStatus};
use ringrpc_codec::Reason;

/// SETTINGS parameter identifiers (RFC 9113 §6.5.2).
pub const HEADER_TABLE_SIZE: u16 = 0x1;
pub const ENABLE_PUSH: u16 = 0x2;
pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
pub const MAX_FRAME_SIZE: u16 = 0x5;
pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;

/// A frame the server wrote, with header blocks decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
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
    Ping(frame::Ping),
    GoAway {
        last: u32,
        reason: Reason,
    },
    WindowUpdate {
        id: u32,
        increment: u32,
    },
}

pub struct Client {
    pub conn: Connection,
    pub now: Instant,
    encoder: Encoder,
    decoder: hpack::Decoder,
    /// Bytes not yet consumed by the server (an incomplete frame).
    inbox: BytesMut,
    /// Header block being reassembled from the server's CONTINUATION frames.
    partial: Option<(u32, bool, BytesMut)>,
    /// Raw bytes of every frame the server wrote, for tests that look at encodings.
    pub raw_output: Vec<(FrameHeader, Bytes)>,
}

impl Client {
    /// A client that has not sent anything yet.
    pub fn new(config: Config) -> Client {
        let now = Instant::now();
        Client {
            conn: Connection::new(config, now),
            now,
            encoder: Encoder::new(),
            decoder: hpack::Decoder::new(hpack::DEFAULT_TABLE_SIZE),
            inbox: BytesMut::new(),
            partial: None,
            raw_output: Vec::new(),
        }
    }

    /// A client past the preface and SETTINGS exchange (empty client SETTINGS), with
    /// the server's output drained.
    pub fn connected(config: Config) -> Client {
        Client::connected_with(config, &[])
    }

    /// Like [`Client::connected`] with the given client SETTINGS. The client
    /// acknowledges the server's SETTINGS only after it has read them, as a real
    /// client must.
    pub fn connected_with(config: Config, params: &[(u16, u32)]) -> Client {
        let mut client = Client::new(config);
        client.send_bytes(PREFACE);
        client.send_bytes(&settings(params));
        let out = client.transmit();
        assert!(
            matches!(out.first(), Some(Out::Settings(s)) if !s.ack),
            "server preface first: {out:?}"
        );
        assert!(
            out.iter().any(|f| matches!(f, Out::Settings(s) if s.ack)),
            "client SETTINGS acknowledged: {out:?}"
        );
        client.send_bytes(&settings_ack());
        // Lifecycle timers (keepalive, idle, age) may remain; the handshake's not.
        let handshake_deadline = client.now + client.conn.config().handshake_timeout;
        assert_ne!(
            client.conn.poll_timeout(),
            Some(handshake_deadline),
            "handshake complete"
        );
        assert!(client.transmit().is_empty());
        client
    }

    pub fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    /// Feeds bytes to the server as if read from the socket.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.inbox.extend_from_slice(bytes);
        let now = self.now;
        self.conn.recv(now, &mut self.inbox);
    }

    /// Feeds several frames to the server in one read.
    pub fn send_all(&mut self, frames: &[Vec<u8>]) {
        let bytes: Vec<u8> = frames.concat();
        self.send_bytes(&bytes);
    }

    /// Bytes the server left unconsumed (the start of an incomplete frame).
    pub fn unconsumed(&self) -> usize {
        self.inbox.len()
    }

    /// Encodes a request header block with the client's HPACK encoder.
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

    /// The client's HPACK encoder, for tests that shape blocks by hand.
    pub fn encoder(&mut self) -> &mut Encoder {
        &mut self.encoder
    }

    /// Sends a HEADERS frame carrying `fields` in one block.
    pub fn headers(&mut self, id: u32, fields: &[(&str, &str)], end_stream: bool) {
        let block = self.block(fields);
        let f = flags::END_HEADERS | if end_stream { flags::END_STREAM } else { 0 };
        self.send_bytes(&raw(Kind::Headers, f, id, &block));
    }

    /// Opens a gRPC call to `path`.
    pub fn request(&mut self, id: u32, path: &str, end_stream: bool) {
        self.headers(id, &grpc_request(path), end_stream);
    }

    /// Sends one gRPC message in one DATA frame.
    pub fn message(&mut self, id: u32, body: &[u8], end_stream: bool) {
        self.send_bytes(&data(id, &grpc_message(body), end_stream));
    }

    pub fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.conn.poll_event()).collect()
    }

    /// Everything the server wants to write now, parsed.
    pub fn transmit(&mut self) -> Vec<Out> {
        let mut out = BytesMut::new();
        let now = self.now;
        let written = self.conn.poll_transmit(now, &mut out);
        assert_eq!(written, out.len(), "poll_transmit reports what it wrote");
        self.parse_output(out)
    }

    pub fn parse_output(&mut self, mut out: BytesMut) -> Vec<Out> {
        let mut frames = Vec::new();
        while let Some(head) = FrameHeader::parse(&out) {
            let total = 9 + head.len as usize;
            assert!(out.len() >= total, "server wrote a truncated frame");
            let mut bytes = out.split_to(total);
            let payload = bytes.split_off(9).freeze();
            self.raw_output.push((head, payload.clone()));
            let frame = Frame::parse(head, payload).expect("server wrote an invalid frame");
            match frame {
                Frame::Settings(s) => frames.push(Out::Settings(s)),
                Frame::Headers(h) => {
                    assert!(self.partial.is_none(), "HEADERS inside a header block");
                    if h.end_headers {
                        let fields = self.decode(&h.fragment);
                        frames.push(Out::Headers {
                            id: h.stream_id.0,
                            fields,
                            end_stream: h.end_stream,
                        });
                    } else {
                        self.partial =
                            Some((h.stream_id.0, h.end_stream, BytesMut::from(&h.fragment[..])));
                    }
                }
                Frame::Continuation(c) => {
                    let (id, end_stream, mut block) =
                        self.partial.take().expect("CONTINUATION without HEADERS");
                    assert_eq!(id, c.stream_id.0);
                    block.extend_from_slice(&c.fragment);
                    if c.end_headers {
                        let fields = self.decode(&block.freeze());
                        frames.push(Out::Headers {
                            id,
                            fields,
                            end_stream,
                        });
                    } else {
                        self.partial = Some((id, end_stream, block));
                    }
                }
                Frame::Data(d) => frames.push(Out::Data {
                    id: d.stream_id.0,
                    payload: d.payload,
                    end_stream: d.end_stream,
                }),
                Frame::Reset(r) => frames.push(Out::Reset {
                    id: r.stream_id.0,
                    reason: r.reason,
                }),
                Frame::Ping(p) => frames.push(Out::Ping(p)),
                Frame::GoAway(g) => frames.push(Out::GoAway {
                    last: g.last_stream_id.0,
                    reason: g.reason,
                }),
                Frame::WindowUpdate(w) => frames.push(Out::WindowUpdate {
                    id: w.stream_id.0,
                    increment: w.increment,
                }),
                other => panic!("a server does not send {other:?}"),
            }
        }
        assert!(out.is_empty());
        assert!(
            self.partial.is_none(),
            "server left a header block open at the end of a write"
        );
        frames
    }

    fn decode(&mut self, block: &Bytes) -> Vec<(String, String)> {
        let mut fields = Vec::new();
        self.decoder
            .decode(block, |h: Header| {
                fields.push((
                    String::from_utf8(h.name.to_vec()).unwrap(),
                    String::from_utf8(h.value.to_vec()).unwrap(),
                ))
            })
            .expect("server header block decodes");
        fields
    }

    // ----- the engine's side -----

    /// Answers `id` the way a handler would: one response message and status OK,
    /// then lets the stream go.
    pub fn respond(&mut self, id: u32, body: &'static [u8]) {
        let id = StreamId(id);
        self.conn
            .send_message(id, Bytes::from_static(body), false)
            .expect("stream open for sending");
        self.conn
            .send_trailers(id, ResponseStatus::OK, [])
            .expect("stream open for trailers");
        self.conn.release_stream(id);
    }

    /// Runs a complete unary call on `id` and checks the response: the proof that the
    /// connection still works after whatever a test did before. Events of other
    /// streams are ignored.
    pub fn assert_serves(&mut self, id: u32) {
        self.request(id, "/test.Echo/Unary", false);
        self.message(id, b"ping", true);
        let events: Vec<Event> = self
            .events()
            .into_iter()
            .filter(|e| event_stream(e) == Some(StreamId(id)))
            .collect();
        let [Event::Request { .. }, Event::Message { message, .. }, Event::EndOfStream { .. }] =
            &events[..]
        else {
            panic!("stream {id} not served normally: {events:?}")
        };
        assert_eq!(&message.data[..], b"ping");
        self.conn
            .release_capacity(StreamId(id), message.data.len() + 5);
        self.respond(id, b"pong");
        let out = self.transmit();
        let mine = frames_on(&out, id);
        let [Out::Headers {
            fields: head,
            end_stream: false,
            ..
        }, Out::Data {
            payload,
            end_stream: false,
            ..
        }, Out::Headers {
            fields: trailers,
            end_stream: true,
            ..
        }] = &mine[..]
        else {
            panic!("stream {id} response: {out:?}")
        };
        assert_eq!(field(head, ":status"), Some("200"));
        assert_eq!(&payload[..], &grpc_message(b"pong")[..]);
        assert_eq!(field(trailers, "grpc-status"), Some("0"));
        assert!(!self.conn.is_closed());
    }

    /// Transmits and expects a GOAWAY with `reason`; returns its last-stream-id. Also
    /// checks the connection is closed and the engine was told.
    pub fn expect_goaway(&mut self, reason: Reason) -> u32 {
        let events = self.events();
        let out = self.transmit();
        let last = expect_goaway(&out, reason);
        assert!(
            self.conn.is_closed(),
            "connection closed after GOAWAY {reason:?}"
        );
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::Closed { error, initiator: Initiator::Local } if error.reason() == reason)),
            "engine told of the connection error: {events:?}"
        );
        last
    }

    /// Transmits and expects RST_STREAM(`reason`) on `id` and no GOAWAY.
    pub fn expect_reset(&mut self, id: u32, reason: Reason) -> Vec<Out> {
        let out = self.transmit();
        assert_eq!(
            reset_reason(&out, id),
            Some(reason),
            "RST_STREAM on {id}: {out:?}"
        );
        assert_eq!(goaway_reason(&out), None, "no connection error: {out:?}");
        assert!(!self.conn.is_closed());
        out
    }

    /// Drains events and output and checks there was nothing.
    pub fn expect_silence(&mut self) {
        let events = self.events();
        assert!(events.is_empty(), "no events expected: {events:?}");
        let out = self.transmit();
        assert!(out.is_empty(), "no output expected: {out:?}");
        assert!(!self.conn.is_closed());
    }
}

/// `out` for assertion messages, with DATA payloads shown as lengths.
pub fn brief(out: &[Out]) -> String {
    let frames: Vec<String> = out
        .iter()
        .map(|f| match f {
            Out::Data {
                id,
                payload,
                end_stream,
            } => {
                format!(
                    "Data {{ id: {id}, len: {}, end_stream: {end_stream} }}",
                    payload.len()
                )
            }
            Out::Headers {
                id,
                fields,
                end_stream,
            } => {
                let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
                format!("Headers {{ id: {id}, fields: {names:?}, end_stream: {end_stream} }}")
            }
            other => format!("{other:?}"),
        })
        .collect();
    format!("[{}]", frames.join(", "))
}

/// The stream an event is about, if any.
pub fn event_stream(event: &Event) -> Option<StreamId> {
    match event {
        Event::Request { id, .. }
        | Event::Message { id, .. }
        | Event::EndOfStream { id }
        | Event::Reset { id, .. } => Some(*id),
        Event::GoAway { .. } | Event::Closed { .. } => None,
    }
}

/// The connection error the engine was told of, if any.
pub fn closed_error(events: &[Event]) -> Option<Error> {
    events.iter().find_map(|e| match e {
        Event::Closed { error, .. } => Some(*error),
        _ => None,
    })
}

/// The frames of `out` on stream `id`.
pub fn frames_on(out: &[Out], id: u32) -> Vec<Out> {
    out.iter()
        .filter(|f| match f {
            Out::Headers { id: i, .. } | Out::Data { id: i, .. } | Out::Reset { id: i, .. } => {
                *i == id
            }
            Out::WindowUpdate { .. } | Out::Settings(_) | Out::Ping(_) | Out::GoAway { .. } => {
                false
            }
        })
        .cloned()
        .collect()
}

/// Total DATA payload bytes written on `id`.
pub fn data_len(out: &[Out], id: u32) -> usize {
    out.iter()
        .map(|f| match f {
            Out::Data { id: i, payload, .. } if *i == id => payload.len(),
            _ => 0,
        })
        .sum()
}

/// The WINDOW_UPDATE increment for `id` in `out`, summed over frames.
pub fn window_increment(out: &[Out], id: u32) -> u32 {
    out.iter()
        .map(|f| match f {
            Out::WindowUpdate { id: i, increment } if *i == id => *increment,
            _ => 0,
        })
        .sum()
}

/// The single GOAWAY in `out`, with `reason`; returns its last-stream-id.
pub fn expect_goaway(out: &[Out], reason: Reason) -> u32 {
    let goaways: Vec<_> = out
        .iter()
        .filter(|f| matches!(f, Out::GoAway { .. }))
        .collect();
    let [Out::GoAway { last, reason: got }] = &goaways[..] else {
        panic!("one GOAWAY expected: {out:?}")
    };
    assert_eq!(*got, reason, "GOAWAY reason: {out:?}");
    *last
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

/// Any frame, byte by byte.
pub fn raw(kind: Kind, flags: u8, id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    FrameHeader::encode(payload.len(), kind, flags, StreamId(id), &mut out);
    out.extend_from_slice(payload);
    out
}

/// A frame whose header is written field by field: any length field (it need not
/// match the payload) and a raw 32-bit stream id field (to set the reserved bit).
pub fn raw_with_length(len: u32, kind: Kind, flags: u8, id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![
        (len >> 16) as u8,
        (len >> 8) as u8,
        len as u8,
        kind.as_u8(),
        flags,
    ];
    out.put_u32(id);
    out.extend_from_slice(payload);
    out
}

pub fn data(id: u32, payload: &[u8], end_stream: bool) -> Vec<u8> {
    raw(
        Kind::Data,
        if end_stream { flags::END_STREAM } else { 0 },
        id,
        payload,
    )
}

/// A DATA frame with `pad` bytes of padding (plus the pad length byte).
pub fn padded_data(id: u32, payload: &[u8], pad: u8, end_stream: bool) -> Vec<u8> {
    let mut body = vec![pad];
    body.extend_from_slice(payload);
    body.resize(body.len() + pad as usize, 0);
    raw(
        Kind::Data,
        flags::PADDED | if end_stream { flags::END_STREAM } else { 0 },
        id,
        &body,
    )
}

/// A HEADERS frame carrying `fragment` with exactly the given flags.
pub fn headers_frame(id: u32, fragment: &[u8], flags: u8) -> Vec<u8> {
    raw(Kind::Headers, flags, id, fragment)
}

pub fn continuation(id: u32, fragment: &[u8], end_headers: bool) -> Vec<u8> {
    raw(
        Kind::Continuation,
        if end_headers { flags::END_HEADERS } else { 0 },
        id,
        fragment,
    )
}

/// A PRIORITY frame: `id` depends on `dependency` with `weight`.
pub fn priority(id: u32, dependency: u32, weight: u8) -> Vec<u8> {
    let mut payload = dependency.to_be_bytes().to_vec();
    payload.push(weight);
    raw(Kind::Priority, 0, id, &payload)
}

pub fn settings(params: &[(u16, u32)]) -> Vec<u8> {
    let mut payload = Vec::new();
    for (id, value) in params {
        payload.put_u16(*id);
        payload.put_u32(*value);
    }
    raw(Kind::Settings, 0, 0, &payload)
}

pub fn settings_ack() -> Vec<u8> {
    raw(Kind::Settings, flags::ACK, 0, &[])
}

pub fn ping(payload: [u8; 8]) -> Vec<u8> {
    raw(Kind::Ping, 0, 0, &payload)
}

pub fn ping_ack(payload: [u8; 8]) -> Vec<u8> {
    raw(Kind::Ping, flags::ACK, 0, &payload)
}

pub fn rst(id: u32, reason: Reason) -> Vec<u8> {
    raw(Kind::Reset, 0, id, &reason.0.to_be_bytes())
}

pub fn window_update(id: u32, increment: u32) -> Vec<u8> {
    raw(Kind::WindowUpdate, 0, id, &increment.to_be_bytes())
}

pub fn go_away(last: u32, reason: Reason) -> Vec<u8> {
    let mut payload = last.to_be_bytes().to_vec();
    payload.extend_from_slice(&reason.0.to_be_bytes());
    raw(Kind::GoAway, 0, 0, &payload)
}

/// The value of header `name` in a decoded block.
pub fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The connection-level GOAWAY in `out`, if any.
pub fn goaway_reason(out: &[Out]) -> Option<Reason> {
    out.iter().find_map(|f| match f {
        Out::GoAway { reason, .. } => Some(*reason),
        _ => None,
    })
}

/// The RST_STREAM reason for `id` in `out`, if any.
pub fn reset_reason(out: &[Out], id: u32) -> Option<Reason> {
    out.iter().find_map(|f| match f {
        Out::Reset { id: i, reason } if *i == id => Some(*reason),
        _ => None,
    })
}
