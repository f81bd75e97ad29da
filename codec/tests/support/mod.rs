//! A frame-level test client for driving the sans-IO server `Connection` with
//! hand-built frames, and reading back what it writes as parsed frames.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use ringrpc_codec::frame::{self, flags, Frame, FrameHeader, Kind, StreamId, PREFACE};
use ringrpc_codec::hpack::{self, Encoder, Header, Indexing};
use ringrpc_codec::server::{Config, Connection, Event};
use ringrpc_codec::Reason;

/// A frame the server wrote, with header blocks decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    Settings(frame::Settings),
    Headers { id: u32, fields: Vec<(String, String)>, end_stream: bool },
    Data { id: u32, payload: Bytes, end_stream: bool },
    Reset { id: u32, reason: Reason },
    Ping(frame::Ping),
    GoAway { last: u32, reason: Reason },
    WindowUpdate { id: u32, increment: u32 },
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
}

impl Client {
    pub fn new(config: Config) -> Client {
        Client {
            conn: Connection::new(config, Instant::now()),
            now: Instant::now(),
            encoder: Encoder::new(),
            decoder: hpack::Decoder::new(hpack::DEFAULT_TABLE_SIZE),
            inbox: BytesMut::new(),
            partial: None,
        }
    }

    /// A client past the preface and SETTINGS exchange, with the server's output drained.
    pub fn connected(config: Config) -> Client {
        let mut client = Client::new(config);
        client.send_bytes(PREFACE);
        client.send_bytes(&settings(&[]));
        client.send_bytes(&settings_ack());
        let out = client.transmit();
        assert!(matches!(out.first(), Some(Out::Settings(s)) if !s.ack), "server preface first: {out:?}");
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

    /// Encodes a request header block with the client's HPACK encoder.
    pub fn block(&mut self, fields: &[(&str, &str)]) -> Bytes {
        let mut dst = BytesMut::new();
        self.encoder.begin_block(&mut dst);
        for (name, value) in fields {
            self.encoder.encode_field(name.as_bytes(), value.as_bytes(), Indexing::Incremental, &mut dst);
        }
        dst.freeze()
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
        self.conn.poll_transmit(now, &mut out);
        self.parse_output(out)
    }

    pub fn parse_output(&mut self, mut out: BytesMut) -> Vec<Out> {
        let mut frames = Vec::new();
        while let Some(head) = FrameHeader::parse(&out) {
            let total = 9 + head.len as usize;
            assert!(out.len() >= total, "server wrote a truncated frame");
            let mut bytes = out.split_to(total);
            let payload = bytes.split_off(9).freeze();
            let frame = Frame::parse(head, payload).expect("server wrote an invalid frame");
            match frame {
                Frame::Settings(s) => frames.push(Out::Settings(s)),
                Frame::Headers(h) => {
                    assert!(self.partial.is_none(), "HEADERS inside a header block");
                    if h.end_headers {
                        let fields = self.decode(&h.fragment);
                        frames.push(Out::Headers { id: h.stream_id.0, fields, end_stream: h.end_stream });
                    } else {
                        self.partial = Some((h.stream_id.0, h.end_stream, BytesMut::from(&h.fragment[..])));
                    }
                }
                Frame::Continuation(c) => {
                    let (id, end_stream, mut block) = self.partial.take().expect("CONTINUATION without HEADERS");
                    assert_eq!(id, c.stream_id.0);
                    block.extend_from_slice(&c.fragment);
                    if c.end_headers {
                        let fields = self.decode(&block.freeze());
                        frames.push(Out::Headers { id, fields, end_stream });
                    } else {
                        self.partial = Some((id, end_stream, block));
                    }
                }
                Frame::Data(d) => frames.push(Out::Data { id: d.stream_id.0, payload: d.payload, end_stream: d.end_stream }),
                Frame::Reset(r) => frames.push(Out::Reset { id: r.stream_id.0, reason: r.reason }),
                Frame::Ping(p) => frames.push(Out::Ping(p)),
                Frame::GoAway(g) => frames.push(Out::GoAway { last: g.last_stream_id.0, reason: g.reason }),
                Frame::WindowUpdate(w) => frames.push(Out::WindowUpdate { id: w.stream_id.0, increment: w.increment }),
                other => panic!("a server does not send {other:?}"),
            }
        }
        assert!(out.is_empty());
        frames
    }

    fn decode(&mut self, block: &Bytes) -> Vec<(String, String)> {
        let mut fields = Vec::new();
        self.decoder
            .decode(block, |h: Header| {
                fields.push((String::from_utf8(h.name.to_vec()).unwrap(), String::from_utf8(h.value.to_vec()).unwrap()))
            })
            .expect("server header block decodes");
        fields
    }
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

/// Like `raw` with a 32-bit raw stream id field (to set the reserved bit).
pub fn raw_with_length(len: u32, kind: Kind, flags: u8, id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind.as_u8(), flags];
    out.put_u32(id);
    out.extend_from_slice(payload);
    out
}

pub fn data(id: u32, payload: &[u8], end_stream: bool) -> Vec<u8> {
    raw(Kind::Data, if end_stream { flags::END_STREAM } else { 0 }, id, payload)
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

/// Header fields of a frame list's HEADERS for stream `id`, all blocks concatenated.
pub fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
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
