//! Shared helpers for the criterion benchmarks in `benches/`.
//!
//! The benchmarks measure the server codec the way the engine drives it, so these
//! helpers play the other side: they build the bytes a gRPC client sends (HPACK
//! blocks from a client encoder, HEADERS and DATA frames) and bring a server
//! [`Connection`] to the state a benchmark starts from: past the handshake, with
//! the request headers already in its HPACK table, with flow-control windows that
//! do not run dry however many responses a benchmark writes.
//!
//! Nothing here reads the clock: the connection is driven with one fixed `now`.

#![deny(missing_docs)]
#![warn(unreachable_pub)]

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use ringrpc_codec::frame::{
    flags, FrameHeader, Kind, StreamId, DEFAULT_WINDOW_SIZE, MAX_WINDOW_SIZE, PREFACE,
};
use ringrpc_codec::hpack::{Encoder, Indexing};
use ringrpc_codec::server::{Config, Connection, Event, ResponseStatus};

/// The `:path` of the unary call the benchmarks make (the gRPC hello-world method).
pub const UNARY_PATH: &[u8] = b"/helloworld.Greeter/SayHello";

/// The header fields of a typical unary request from a gRPC client, in the order
/// clients send them.
///
/// `grpc-timeout` is fixed so that the field is indexed after the first request,
/// like the others. A client whose deadlines differ from call to call sends a new
/// literal for it each time instead.
pub const UNARY_REQUEST_FIELDS: [(&[u8], &[u8]); 8] = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", UNARY_PATH),
    (b":authority", b"localhost:50051"),
    (b"content-type", b"application/grpc"),
    (b"user-agent", b"grpc-go/1.66.0"),
    (b"te", b"trailers"),
    (b"grpc-timeout", b"1S"),
];

/// A 20-byte request message: a serialized `HelloRequest { name }`.
pub const REQUEST_MESSAGE: &[u8; 20] = b"\x0a\x12bench-client-0001!";

/// A 20-byte response message: a serialized `HelloReply { message }`.
pub const REPLY_MESSAGE: &[u8; 20] = b"\x0a\x12Hello bench-client";

/// Flow-control credit one request message takes (its 5-byte prefix included),
/// which the application hands back with `release_capacity`.
pub const REQUEST_FLOW_LEN: usize = REQUEST_MESSAGE.len() + 5;

/// Appends one frame (header and payload) to `dst`.
pub fn put_frame(kind: Kind, frame_flags: u8, id: StreamId, payload: &[u8], dst: &mut Vec<u8>) {
    FrameHeader::encode(payload.len(), kind, frame_flags, id, dst);
    dst.extend_from_slice(payload);
}

/// `body` with its gRPC length prefix (uncompressed).
pub fn grpc_message(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(0);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// The request header block in the two forms a server sees.
#[derive(Clone, Debug)]
pub struct RequestBlocks {
    /// The first request on a connection: literals with incremental indexing,
    /// Huffman-coded where that is shorter, except for the fields that are whole in
    /// the static table.
    pub first: Bytes,
    /// Every later request: one indexed octet per field.
    pub warm: Bytes,
}

/// Encodes [`UNARY_REQUEST_FIELDS`] twice with one client HPACK encoder using
/// incremental indexing, as a client does for its first and its later requests.
pub fn unary_request_blocks() -> RequestBlocks {
    let mut encoder = Encoder::new();
    let mut block = || {
        let mut dst = BytesMut::new();
        encoder.begin_block(&mut dst);
        for (name, value) in UNARY_REQUEST_FIELDS {
            encoder.encode_field(name, value, Indexing::Incremental, &mut dst);
        }
        dst.freeze()
    };
    let first = block();
    let warm = block();
    assert_eq!(
        warm.len(),
        UNARY_REQUEST_FIELDS.len(),
        "every field is indexed the second time"
    );
    RequestBlocks { first, warm }
}

/// One unary request as it arrives: a HEADERS frame with a header block, then a
/// DATA frame with one message and END_STREAM. Pre-encoded once; only the stream
/// id changes between copies.
#[derive(Clone, Debug)]
pub struct UnaryRequest {
    bytes: Vec<u8>,
    /// Where the stream id of the DATA frame header starts (the HEADERS frame's is at 5).
    data_id_at: usize,
}

impl UnaryRequest {
    /// The frames for a request with header block `block` and message body `body`.
    pub fn new(block: &[u8], body: &[u8]) -> UnaryRequest {
        let mut bytes = Vec::new();
        put_frame(
            Kind::Headers,
            flags::END_HEADERS,
            StreamId(1),
            block,
            &mut bytes,
        );
        let data_id_at = bytes.len() + 5;
        put_frame(
            Kind::Data,
            flags::END_STREAM,
            StreamId(1),
            &grpc_message(body),
            &mut bytes,
        );
        UnaryRequest { bytes, data_id_at }
    }

    /// Size on the wire in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false: a request has at least its frame headers.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Appends the request on stream `id` to `dst`, as a socket read would.
    pub fn write(&self, id: StreamId, dst: &mut BytesMut) {
        let start = dst.len();
        dst.extend_from_slice(&self.bytes);
        let id = id.0.to_be_bytes();
        dst[start + 5..start + 9].copy_from_slice(&id);
        dst[start + self.data_id_at..start + self.data_id_at + 4].copy_from_slice(&id);
    }
}

/// A server [`Connection`] with the buffers the engine would keep for it, and the
/// client's side of the bookkeeping (stream ids, the connection send window).
pub struct Server {
    /// The connection under test.
    pub conn: Connection,
    /// The one instant the connection is driven with.
    pub now: Instant,
    /// The read buffer, reused for every `recv`.
    pub read_buf: BytesMut,
    /// The write buffer, reused for every `poll_transmit`.
    pub write_buf: BytesMut,
    /// The steady-state request (indexed header block).
    pub request: UnaryRequest,
    config: Config,
    next_id: u32,
    /// Response bytes that consumed the connection send window since the client
    /// last returned credit for them.
    unacked_data: u64,
}

/// Return send-window credit once this much is used: far from both ends of the window.
const REFILL_AT: u64 = 1 << 30;

/// The largest stream id (§5.1.1: 31 bits).
const MAX_STREAM_ID: u32 = (1 << 31) - 1;

impl Server {
    /// A connection past the preface and SETTINGS exchange, whose client opened the
    /// connection window to the maximum, with the server's output drained.
    pub fn connected(config: Config) -> Server {
        let now = Instant::now();
        let mut server = Server {
            conn: Connection::new(config.clone(), now),
            now,
            read_buf: BytesMut::with_capacity(64 * 1024),
            write_buf: BytesMut::with_capacity(64 * 1024),
            request: UnaryRequest::new(&unary_request_blocks().warm, REQUEST_MESSAGE),
            config,
            next_id: 1,
            unacked_data: 0,
        };
        let mut hello = PREFACE.to_vec();
        put_frame(Kind::Settings, 0, StreamId::ZERO, &[], &mut hello);
        put_frame(Kind::Settings, flags::ACK, StreamId::ZERO, &[], &mut hello);
        let increment = MAX_WINDOW_SIZE - DEFAULT_WINDOW_SIZE;
        put_frame(
            Kind::WindowUpdate,
            0,
            StreamId::ZERO,
            &increment.to_be_bytes(),
            &mut hello,
        );
        server.read_buf.extend_from_slice(&hello);
        server.recv();
        assert!(
            server.conn.poll_event().is_none(),
            "the handshake raises no event"
        );
        assert!(server.transmit() > 0, "the server preface is written");
        assert!(!server.conn.is_closed());
        server
    }

    /// [`Server::connected`] plus one complete unary call whose header block was the
    /// first-time literal form: the HPACK tables of both sides now hold the request
    /// headers, and [`Server::request`] is the indexed form.
    pub fn warm_unary(config: Config) -> Server {
        let mut server = Server::connected(config);
        let first = UnaryRequest::new(&unary_request_blocks().first, REQUEST_MESSAGE);
        let id = server.take_ids(1);
        first.write(id, &mut server.read_buf);
        server.recv();
        assert_eq!(
            server.drain_unary_events(),
            1,
            "the first request is accepted"
        );
        server.finish_unary(id);
        server.transmit();
        assert_eq!(server.conn.active_streams(), 0);
        server
    }

    /// Reserves `n` new client stream ids and returns the first; the others follow
    /// two apart (see [`nth_id`]). Call it outside the timed part: when the ids or the
    /// send window of this connection are about to run out, it starts over on a new
    /// connection, or returns credit for the responses written so far.
    pub fn take_ids(&mut self, n: u32) -> StreamId {
        if self.next_id >= MAX_STREAM_ID - 2 * n {
            *self = Server::warm_unary(self.config.clone());
        }
        if self.unacked_data >= REFILL_AT {
            let mut frame = Vec::new();
            let increment = self.unacked_data as u32;
            put_frame(
                Kind::WindowUpdate,
                0,
                StreamId::ZERO,
                &increment.to_be_bytes(),
                &mut frame,
            );
            self.read_buf.extend_from_slice(&frame);
            self.recv();
            self.unacked_data = 0;
        }
        let first = StreamId(self.next_id);
        self.next_id += 2 * n;
        first
    }

    /// Appends the steady-state request on stream `id` to the read buffer.
    pub fn write_request(&mut self, id: StreamId) {
        self.request.write(id, &mut self.read_buf);
    }

    /// Hands the read buffer to the connection.
    pub fn recv(&mut self) {
        self.conn.recv(self.now, &mut self.read_buf);
    }

    /// Clears the write buffer and fills it with `poll_transmit`; returns its length.
    pub fn transmit(&mut self) -> usize {
        self.write_buf.clear();
        self.conn.poll_transmit(self.now, &mut self.write_buf)
    }

    /// Drains the events of unary requests, dropping them, and returns how many
    /// requests arrived whole. Panics on any event a well-formed unary call on a
    /// healthy connection does not raise, so a benchmark cannot quietly measure an
    /// error path.
    pub fn drain_unary_events(&mut self) -> usize {
        let mut complete = 0;
        while let Some(event) = self.conn.poll_event() {
            match event {
                Event::Request { .. } | Event::Message { .. } => {}
                Event::EndOfStream { .. } => complete += 1,
                other => panic!("unexpected event in a unary benchmark: {other:?}"),
            }
        }
        complete
    }

    /// Queues the response to a unary call on `id` (one message and status OK), and
    /// ends the handler: what a unary handler does once it returns.
    pub fn respond(&mut self, id: StreamId, reply: &Bytes) {
        self.conn
            .send_message(id, reply.clone(), false)
            .expect("stream open");
        self.conn
            .send_trailers(id, ResponseStatus::OK, [])
            .expect("stream open");
        self.conn.release_stream(id);
        self.unacked_data += reply.len() as u64 + 5;
    }

    /// The least that frees a request's stream: release its message's credit, answer
    /// with a Trailers-Only OK, end the handler. Call [`Server::transmit`] after.
    pub fn finish_unary(&mut self, id: StreamId) {
        self.conn.release_capacity(id, REQUEST_FLOW_LEN);
        self.conn
            .send_trailers(id, ResponseStatus::OK, [])
            .expect("stream open");
        self.conn.release_stream(id);
    }
}

/// The `k`-th stream id of a range reserved with [`Server::take_ids`].
pub fn nth_id(first: StreamId, k: u32) -> StreamId {
    StreamId(first.0 + 2 * k)
}

/// A gRPC message of `len` bytes (zeros) with its prefix, cut into DATA frame
/// payloads of `frame` bytes, the last one shorter: the frames of one large
/// message as the reassembler receives them.
pub fn message_frames(len: usize, frame: usize) -> Vec<Bytes> {
    let whole = Bytes::from(grpc_message(&vec![0; len]));
    (0..whole.len())
        .step_by(frame)
        .map(|at| whole.slice(at..(at + frame).min(whole.len())))
        .collect()
}

#[cfg(test)]
mod tests {
    use ringrpc_codec::hpack;

    use super::*;

    #[test]
    fn warm_request_is_indexed_and_smaller() {
        let blocks = unary_request_blocks();
        assert!(blocks.first.len() > 4 * blocks.warm.len(), "{blocks:?}");
        assert!(
            blocks.warm.iter().all(|&b| b & 0x80 != 0),
            "all indexed: {:?}",
            blocks.warm
        );
    }

    #[test]
    fn requests_on_a_warm_connection_complete_and_free_their_streams() {
        let mut server = Server::warm_unary(Config::default());
        let first = server.take_ids(3);
        for k in 0..3 {
            server.write_request(nth_id(first, k));
        }
        server.recv();
        assert!(server.read_buf.is_empty());
        assert_eq!(server.drain_unary_events(), 3);
        let reply = Bytes::from_static(REPLY_MESSAGE);
        for k in 0..3 {
            server
                .conn
                .release_capacity(nth_id(first, k), REQUEST_FLOW_LEN);
            server.respond(nth_id(first, k), &reply);
        }
        // Per call: HEADERS, DATA with the prefixed reply, HEADERS with the trailers.
        let per_call = 9
            + hpack::RESPONSE_HEADERS_GRPC.len()
            + 9
            + 5
            + REPLY_MESSAGE.len()
            + 9
            + hpack::TRAILERS_OK.len();
        assert_eq!(server.transmit(), 3 * per_call);
        assert_eq!(server.conn.active_streams(), 0);
    }

    #[test]
    fn message_frames_cover_the_message() {
        let frames = message_frames(100, 16);
        assert_eq!(frames.len(), 7);
        assert_eq!(frames.iter().map(Bytes::len).sum::<usize>(), 105);
        assert_eq!(&frames[0][..5], &[0, 0, 0, 0, 100]);
    }
}
