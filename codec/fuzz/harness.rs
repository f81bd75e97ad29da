//! The checks behind the fuzz targets, shared with `tests/fuzz_regressions.rs` so that
//! every committed seed and regression input goes through exactly the same logic in an
//! ordinary `cargo test` as under libFuzzer.
//!
//! Each entry point takes the raw input and panics when an invariant breaks. Inputs are
//! decoded with [`Input`], which reads zeros once the data runs out: every byte string
//! is a valid input, so mutations stay meaningful and minimised inputs stay readable.
//!
//! The structured target (`connection_ops`) decodes its operations with [`Op::read`]
//! rather than the `arbitrary` crate: the codec's own tests have to replay the same
//! files, and they cannot depend on the fuzz crate's dependencies.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use ringrpc_codec::error::Error;
use ringrpc_codec::frame::{
    flags, Continuation, Data, Frame, FrameHeader, GoAway, Headers, Kind, Ping, Reset, Settings,
    StreamId, WindowUpdate, DEFAULT_MAX_FRAME_SIZE, DEFAULT_WINDOW_SIZE, HEADER_LEN, PREFACE,
};
use ringrpc_codec::grpc::{Message, MessageDecoder, MessageError, PREFIX_LEN};
use ringrpc_codec::hpack::{self, Decoder, Encoder, Header, Indexing};
use ringrpc_codec::server::{Config, Connection, Event, ResponseStatus};
use ringrpc_codec::Reason;

// ----- input decoding -----

/// Reads fuzzer bytes as typed values; past the end every read yields zero.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Input<'a> {
        Input { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn u8(&mut self) -> u8 {
        let Some((&b, rest)) = self.data.split_first() else {
            return 0;
        };
        self.data = rest;
        b
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) << 32 | u64::from(self.u32())
    }

    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        taken
    }

    /// Bytes behind a one-byte length.
    pub fn short_bytes(&mut self) -> Vec<u8> {
        let n = usize::from(self.u8());
        self.take(n).to_vec()
    }

    /// Bytes behind a two-byte length.
    pub fn long_bytes(&mut self) -> Vec<u8> {
        let n = usize::from(self.u16());
        self.take(n).to_vec()
    }

    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.data.len())
    }

    fn list<T>(&mut self, max: u8, mut item: impl FnMut(&mut Self) -> T) -> Vec<T> {
        let n = self.u8() % (max + 1);
        (0..n).map(|_| item(self)).collect()
    }

    fn option<T>(&mut self, item: impl FnOnce(&mut Self) -> T) -> Option<T> {
        if self.bool() {
            Some(item(self))
        } else {
            None
        }
    }
}

/// The inverse of [`Input`], for building seed inputs.
#[derive(Default)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(u8::from(v))
    }

    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }

    pub fn short_bytes(&mut self, v: &[u8]) -> &mut Self {
        let n = u8::try_from(v.len()).expect("short bytes fit a one-byte length");
        self.u8(n).bytes(v)
    }

    pub fn long_bytes(&mut self, v: &[u8]) -> &mut Self {
        let n = u16::try_from(v.len()).expect("long bytes fit a two-byte length");
        self.u16(n).bytes(v)
    }

    fn list<T>(&mut self, items: &[T], mut item: impl FnMut(&mut Self, &T)) -> &mut Self {
        self.u8(u8::try_from(items.len()).expect("short list"));
        for i in items {
            item(self, i);
        }
        self
    }

    fn option<T>(&mut self, v: &Option<T>, item: impl FnOnce(&mut Self, &T)) -> &mut Self {
        self.bool(v.is_some());
        if let Some(v) = v {
            item(self, v);
        }
        self
    }
}

/// A small deterministic generator for choices that need not be fuzzer-visible
/// (chunk sizes, response shapes), seeded from the input so runs replay exactly.
struct Rng(u64);

impl Rng {
    fn new(seed: u32) -> Rng {
        Rng(u64::from(seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
}

// ----- frame_parser -----

/// Parses `data` as a run of frames. Each frame's payload is what its header announces,
/// or whatever is left, with the header's length rewritten to match, since
/// `Frame::parse` expects exactly the announced payload.
pub fn frame_parser(data: &[u8]) {
    let mut rest = data;
    loop {
        let Some(mut head) = FrameHeader::parse(rest) else {
            assert!(rest.len() < HEADER_LEN, "a nine-byte header must parse");
            return;
        };
        let len = (head.len as usize).min(rest.len() - HEADER_LEN);
        head.len = len as u32;
        let payload = Bytes::copy_from_slice(&rest[HEADER_LEN..HEADER_LEN + len]);
        rest = &rest[HEADER_LEN + len..];

        let mut encoded = Vec::new();
        FrameHeader::encode(len, head.kind, head.flags, head.stream_id, &mut encoded);
        assert_eq!(
            FrameHeader::parse(&encoded),
            Some(head),
            "frame header round trip"
        );

        check_frame(head, payload);
    }
}

fn check_frame(head: FrameHeader, payload: Bytes) {
    let frame = match Frame::parse(head, payload.clone()) {
        Ok(frame) => frame,
        Err(Error::Stream { id, .. }) => {
            // A stream error names the stream the frame was on; stream 0 cannot be reset.
            assert_eq!(id, head.stream_id, "stream error on another stream");
            assert!(!id.is_zero(), "stream error on stream 0");
            return;
        }
        Err(Error::Connection { .. }) => return,
    };
    let mut out = BytesMut::new();
    let expected = match &frame {
        Frame::Data(d) => {
            assert_eq!(d.stream_id, head.stream_id);
            assert_eq!(
                d.flow_len, head.len,
                "flow control counts the whole payload"
            );
            assert!(d.payload.len() <= payload.len());
            if !head.has(flags::PADDED) {
                assert_eq!(d.payload, payload);
            }
            Data::encode_header(d.stream_id, d.payload.len(), d.end_stream, &mut out);
            out.put_slice(&d.payload);
            Some(Frame::Data(Data {
                flow_len: d.payload.len() as u32,
                ..d.clone()
            }))
        }
        Frame::Headers(h) => {
            assert_eq!(h.priority.is_some(), head.has(flags::PRIORITY));
            assert!(h.fragment.len() <= payload.len());
            Headers::encode_header(
                h.stream_id,
                h.fragment.len(),
                h.end_stream,
                h.end_headers,
                &mut out,
            );
            out.put_slice(&h.fragment);
            Some(Frame::Headers(Headers {
                priority: None,
                ..h.clone()
            }))
        }
        Frame::Continuation(c) => {
            assert_eq!(c.fragment, payload);
            Continuation::encode_header(c.stream_id, c.fragment.len(), c.end_headers, &mut out);
            out.put_slice(&c.fragment);
            Some(frame.clone())
        }
        Frame::Settings(s) => {
            if s.ack {
                assert_eq!(*s, Settings::ACK);
            }
            s.encode(&mut out);
            Some(frame.clone())
        }
        Frame::Ping(p) => {
            p.encode(&mut out);
            Some(frame.clone())
        }
        Frame::Reset(r) => {
            r.encode(&mut out);
            Some(frame.clone())
        }
        Frame::GoAway(g) => {
            GoAway::encode(g.last_stream_id, g.reason, &g.debug, &mut out);
            Some(frame.clone())
        }
        Frame::WindowUpdate(w) => {
            assert!(w.increment > 0 && w.increment <= 0x7fff_ffff);
            w.encode(&mut out);
            Some(frame.clone())
        }
        Frame::Priority(p) => {
            assert_ne!(p.spec.dependency, p.stream_id);
            None
        }
        Frame::PushPromise { stream_id } => {
            assert_eq!(*stream_id, head.stream_id);
            None
        }
        Frame::Unknown { kind } => {
            assert_eq!(Kind::Unknown(*kind), head.kind);
            None
        }
    };
    if let Some(expected) = expected {
        let again = FrameHeader::parse(&out).expect("encoded frame has a header");
        assert_eq!(
            again.len as usize,
            out.len() - HEADER_LEN,
            "encoded length field"
        );
        let payload = out.split_off(HEADER_LEN).freeze();
        let reparsed = Frame::parse(again, payload).expect("an encoded frame parses");
        assert_eq!(
            reparsed, expected,
            "re-encoded frame parses to the same value"
        );
    }
}

// ----- hpack_decoder -----

/// Runs header blocks through one decoder, with changes of the table size limit in
/// between, and re-encodes every decoded list with our encoder for a second decoder.
///
/// Input: a sequence of commands. A command byte with its low three bits clear sets
/// the limit from the next two bytes (times 16 when bit 3 is set); any other command
/// byte is followed by a block length (one byte, or two when bit 3 is set) and the
/// block. Bit 4 turns Huffman coding on for the re-encoding.
pub fn hpack_decoder(data: &[u8]) {
    let mut input = Input::new(data);
    let mut decoder = Decoder::new(hpack::DEFAULT_TABLE_SIZE);
    let mut limit = hpack::DEFAULT_TABLE_SIZE;
    let mut encoder = Encoder::new();
    let mut mirror = Decoder::new(hpack::DEFAULT_TABLE_SIZE);
    for block_no in 0..64usize {
        if input.is_empty() {
            break;
        }
        let command = input.u8();
        if command & 0x7 == 0 {
            let size = usize::from(input.u16()) * if command & 0x8 != 0 { 16 } else { 1 };
            decoder.set_max_table_size(size);
            limit = size;
            // The re-encoding pair goes through the same change, as a connection's would.
            encoder.update_max_size(size);
            mirror.set_max_table_size(size);
            continue;
        }
        let len = if command & 0x8 != 0 {
            usize::from(input.u16())
        } else {
            usize::from(input.u8())
        };
        let block = Bytes::copy_from_slice(input.take(len));
        let mut fields = Vec::new();
        if decoder.decode(&block, |h| fields.push(h)).is_err() {
            // The decoder may not be used after an error: the connection is closed.
            return;
        }
        // An empty block carries no size update and no field, so a table above a
        // just-lowered limit survives it until the next block must shrink it.
        if !block.is_empty() {
            assert!(
                decoder.table_size() <= limit,
                "table size {} above the limit {limit}",
                decoder.table_size()
            );
        }

        encoder.set_huffman(command & 0x10 != 0);
        let mut encoded = BytesMut::new();
        encoder.begin_block(&mut encoded);
        for (i, h) in fields.iter().enumerate() {
            let indexing = if h.sensitive {
                Indexing::Never
            } else if (usize::from(command >> 5) + i + block_no) % 3 == 0 {
                Indexing::No
            } else {
                Indexing::Incremental
            };
            encoder.encode_field(&h.name, &h.value, indexing, &mut encoded);
        }
        let mut again = Vec::new();
        mirror
            .decode(&encoded.freeze(), |h| again.push(h))
            .expect("a block we encoded decodes");
        assert_eq!(
            again, fields,
            "decode, re-encode, decode gives the same list"
        );
        assert_eq!(
            encoder.table_size(),
            mirror.table_size(),
            "encoder and decoder tables agree"
        );
    }
}

// ----- grpc_message -----

/// Feeds a byte stream to a [`MessageDecoder`] in chunks and compares everything it
/// reports with [`reference_messages`] over the stream so far.
///
/// Input: one byte choosing the size limit (64 KiB or a small one), one byte with
/// the number of cuts, a byte per cut with the chunk length, then the stream; what
/// the cuts leave over is the last chunk.
pub fn grpc_message(data: &[u8]) {
    let mut input = Input::new(data);
    let limit = input.u8();
    // Small limits, so that both sides of every limit are reached; the decoder
    // reserves a message's whole announced length, so no limit here is large.
    let max_len = if limit & 3 == 0 {
        1 << 16
    } else {
        u32::from(limit >> 2) * 3
    };
    let cuts = input.u8() % 32;
    let sizes: Vec<usize> = (0..cuts).map(|_| usize::from(input.u8())).collect();
    let stream = input.rest();
    let mut bounds = Vec::new();
    let mut at = 0;
    for size in sizes {
        let end = (at + size).min(stream.len());
        bounds.push((at, end));
        at = end;
    }
    bounds.push((at, stream.len()));

    let mut decoder = MessageDecoder::new();
    let mut got = Vec::new();
    for (start, end) in bounds {
        let chunk = Bytes::copy_from_slice(&stream[start..end]);
        let result = decoder.push(chunk, max_len, |m| got.push(m));
        let want = reference_messages(&stream[..end], max_len);
        assert_eq!(got, want.messages, "messages after {end} bytes");
        match want.error {
            Some(error) => {
                assert_eq!(result, Err(error));
                assert_eq!(
                    decoder.finish(),
                    Err(error),
                    "a failed decoder keeps its error"
                );
            }
            None => {
                let open = want.open.map(|(from, _)| from);
                let incomplete = open.map_or(0, |from| end - from.max(start));
                assert_eq!(
                    result,
                    Ok(incomplete),
                    "bytes of the open message in the chunk {start}..{end}"
                );
                assert_eq!(decoder.buffered(), open.map_or(0, |from| end - from));
                let finish = want.open.map_or(Ok(()), |(_, missing)| {
                    Err(MessageError::Truncated { missing })
                });
                assert_eq!(decoder.finish(), finish);
            }
        }
    }
}

/// What a decoder must have reported after seeing `stream`.
pub struct Reference {
    pub messages: Vec<Message>,
    /// The first framing error, once its prefix is complete.
    pub error: Option<MessageError>,
    /// Where the incomplete message at the end starts, and how many bytes it misses
    /// (of the prefix while the prefix is incomplete, of the body after).
    pub open: Option<(usize, usize)>,
}

/// gRPC message framing read the slow, obvious way.
pub fn reference_messages(stream: &[u8], max_len: u32) -> Reference {
    let mut messages = Vec::new();
    let mut at = 0;
    loop {
        let rest = &stream[at..];
        if rest.is_empty() {
            return Reference {
                messages,
                error: None,
                open: None,
            };
        }
        if rest.len() < PREFIX_LEN {
            return Reference {
                messages,
                error: None,
                open: Some((at, PREFIX_LEN - rest.len())),
            };
        }
        let flag = rest[0];
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]);
        let error = if flag > 1 {
            Some(MessageError::InvalidFlag(flag))
        } else if len > max_len {
            Some(MessageError::TooLarge { len, max: max_len })
        } else {
            None
        };
        if error.is_some() {
            return Reference {
                messages,
                error,
                open: None,
            };
        }
        let body = &rest[PREFIX_LEN..];
        let len = len as usize;
        if body.len() < len {
            return Reference {
                messages,
                error: None,
                open: Some((at, len - body.len())),
            };
        }
        messages.push(Message {
            compressed: flag == 1,
            data: Bytes::copy_from_slice(&body[..len]),
        });
        at += PREFIX_LEN + len;
    }
}

// ----- what the server writes -----

/// RFC 9113 §8.2.1: a field name is lowercase, with no controls, space, DEL or
/// non-ASCII octets, and a colon only to open a pseudo-header.
fn valid_field_name(name: &[u8]) -> bool {
    let body = name.strip_prefix(b":").unwrap_or(name);
    !body.is_empty()
        && body
            .iter()
            .all(|&b| (0x21..0x7f).contains(&b) && !b.is_ascii_uppercase() && b != b':')
}

/// RFC 9113 §8.2.1: no NUL, CR or LF, and no leading or trailing space or tab.
fn valid_field_value(value: &[u8]) -> bool {
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    !value.first().is_some_and(blank)
        && !value.last().is_some_and(blank)
        && !value.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n')
}

/// Fields a response must not carry: connection-specific ones (§8.2.2) and the
/// ones the codec writes itself.
const RESERVED: &[&[u8]] = &[
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"transfer-encoding",
    b"upgrade",
    b"te",
    b"content-type",
    b"grpc-status",
    b"grpc-message",
    b"grpc-status-details-bin",
];

/// Custom metadata a gRPC response may carry: a gRPC key that is not reserved, and
/// for a non-binary key a printable ASCII value that is a valid field value.
fn valid_custom_metadata(name: &[u8], value: &[u8]) -> bool {
    let key_ok = !name.is_empty()
        && name
            .iter()
            .all(|&b| matches!(b, b'0'..=b'9' | b'a'..=b'z' | b'_' | b'-' | b'.'));
    let value_ok = name.ends_with(b"-bin")
        || (value.iter().all(|b| (0x20..0x7f).contains(b)) && valid_field_value(value));
    key_ok && value_ok && !RESERVED.contains(&name)
}

/// The client's flow-control windows for what the server sends, as the server must
/// honour them (RFC 9113 §6.9).
pub struct SendModel {
    conn: i64,
    /// SETTINGS_INITIAL_WINDOW_SIZE in force; it moves every stream's window (§6.9.2).
    initial: i64,
    /// Per stream: WINDOW_UPDATE increments minus DATA sent.
    streams: HashMap<u32, i64>,
}

impl SendModel {
    fn new() -> SendModel {
        SendModel {
            conn: i64::from(DEFAULT_WINDOW_SIZE),
            initial: i64::from(DEFAULT_WINDOW_SIZE),
            streams: HashMap::new(),
        }
    }
}

#[derive(Default)]
struct OutStream {
    blocks: u8,
    ended: bool,
    reset: bool,
    /// Message bytes (prefixes included) the engine queued, in order.
    expected: Vec<u8>,
    /// How many of them DATA frames carried so far.
    seen: usize,
}

/// Reads the server's output the way a strict client would and checks every frame.
pub struct OutputChecker {
    decoder: Decoder,
    started: bool,
    partial: Option<(StreamId, bool, BytesMut)>,
    streams: HashMap<u32, OutStream>,
    last_goaway: Option<StreamId>,
    /// The client's SETTINGS_MAX_FRAME_SIZE in force, when the harness knows it.
    max_frame: Option<u32>,
    flow: Option<SendModel>,
    data_written: usize,
    strict: Strict,
}

impl OutputChecker {
    fn new(max_frame: Option<u32>, flow: Option<SendModel>, strict: Strict) -> OutputChecker {
        let mut decoder = Decoder::new(hpack::DEFAULT_TABLE_SIZE);
        // The server's encoder may use any size the client allowed; this client
        // allows anything, which only makes its decoder more lenient about updates.
        decoder.set_max_table_size(u32::MAX as usize);
        OutputChecker {
            decoder,
            started: false,
            partial: None,
            streams: HashMap::new(),
            last_goaway: None,
            max_frame,
            flow,
            data_written: 0,
            strict,
        }
    }

    /// The engine queued a message on `id`: DATA on it must carry these bytes next.
    fn queued(&mut self, id: StreamId, compressed: bool, data: &[u8]) {
        let s = self.streams.entry(id.0).or_default();
        s.expected.push(u8::from(compressed));
        s.expected
            .extend_from_slice(&(data.len() as u32).to_be_bytes());
        s.expected.extend_from_slice(data);
    }

    /// Checks one `poll_transmit` output, which must be whole frames; returns them.
    fn check(&mut self, mut out: BytesMut) -> Vec<Frame> {
        let mut frames = Vec::new();
        while !out.is_empty() {
            let head = FrameHeader::parse(&out).expect("output ends inside a frame header");
            let total = HEADER_LEN + head.len as usize;
            assert!(out.len() >= total, "output ends inside a frame: {head:?}");
            if let Some(max) = self.max_frame {
                assert!(
                    head.len <= max,
                    "{head:?} is larger than the client's SETTINGS_MAX_FRAME_SIZE {max}"
                );
            }
            let payload = out.split_to(total).split_off(HEADER_LEN).freeze();
            let frame = Frame::parse(head, payload)
                .unwrap_or_else(|e| panic!("server wrote an invalid frame {head:?}: {e}"));
            self.frame(&frame);
            frames.push(frame);
        }
        assert!(
            self.partial.is_none(),
            "a header block is split across writes"
        );
        frames
    }

    fn frame(&mut self, frame: &Frame) {
        if !self.started {
            assert!(
                matches!(frame, Frame::Settings(s) if !s.ack),
                "the server preface is SETTINGS, got {frame:?}"
            );
            self.started = true;
        }
        if let Some((id, _, _)) = &self.partial {
            assert!(
                matches!(frame, Frame::Continuation(c) if c.stream_id == *id),
                "only CONTINUATION may follow an open header block, got {frame:?}"
            );
        }
        match frame {
            Frame::Settings(_) | Frame::Ping(_) | Frame::WindowUpdate(_) => {}
            Frame::Headers(h) => {
                assert!(h.priority.is_none() && !h.stream_id.is_zero());
                if h.end_headers {
                    self.header_block(h.stream_id, h.end_stream, h.fragment.clone());
                } else {
                    self.partial =
                        Some((h.stream_id, h.end_stream, BytesMut::from(&h.fragment[..])));
                }
            }
            Frame::Continuation(c) => {
                let (id, end_stream, mut block) =
                    self.partial.take().expect("CONTINUATION without HEADERS");
                block.extend_from_slice(&c.fragment);
                if c.end_headers {
                    self.header_block(id, end_stream, block.freeze());
                } else {
                    self.partial = Some((id, end_stream, block));
                }
            }
            Frame::Data(d) => self.data(d),
            Frame::Reset(r) => {
                let s = self.streams.entry(r.stream_id.0).or_default();
                // Without the strict check, a reset before any response is tolerated:
                // the stream may still be opened and answered afterwards.
                s.reset |= s.blocks > 0 || self.strict.nothing_after_early_reset;
            }
            Frame::GoAway(g) => {
                // §6.8: "Endpoints MUST NOT increase the value they send in the last stream identifier".
                if let (Some(last), true) = (self.last_goaway, self.strict.goaway_never_increases) {
                    assert!(
                        g.last_stream_id <= last,
                        "GOAWAY last stream id went up: {last:?} then {g:?}"
                    );
                }
                self.last_goaway = Some(g.last_stream_id);
            }
            other => panic!("a server does not send {other:?}"),
        }
    }

    fn header_block(&mut self, id: StreamId, end_stream: bool, block: Bytes) {
        let mut fields: Vec<Header> = Vec::new();
        self.decoder
            .decode(&block, |h| fields.push(h))
            .expect("the server's header block decodes");
        assert!(
            id.is_client_initiated(),
            "a response on {id:?}, which no client opened"
        );
        for h in &fields {
            assert!(
                valid_field_name(&h.name) && valid_field_value(&h.value),
                "malformed field in a response: {h:?}"
            );
            assert!(
                !h.name.starts_with(b":") || &h.name[..] == b":status",
                "request pseudo-header in a response: {h:?}"
            );
            assert!(
                !RESERVED[..6].contains(&&h.name[..]),
                "connection-specific field in a response: {h:?}"
            );
        }
        let pseudo = fields
            .iter()
            .take_while(|h| h.name.starts_with(b":"))
            .count();
        assert!(pseudo <= 1, "more than one :status: {fields:?}");
        assert!(
            fields[pseudo..].iter().all(|h| !h.name.starts_with(b":")),
            "pseudo-header after a regular field: {fields:?}"
        );
        let value = |name: &[u8]| {
            fields
                .iter()
                .find(|h| h.name == name)
                .map(|h| h.value.clone())
        };
        let s = self.streams.entry(id.0).or_default();
        assert!(
            !s.ended && !s.reset,
            "HEADERS on {id:?} after its response ended"
        );
        s.blocks += 1;
        if s.blocks == 1 {
            let status = value(b":status").expect("response headers carry :status");
            if !end_stream {
                assert_eq!(&status[..], b"200", "only a 200 response has a body");
                assert_eq!(
                    value(b"content-type").as_deref(),
                    Some(&b"application/grpc"[..])
                );
            }
        } else {
            assert!(
                s.blocks == 2 && end_stream,
                "a response is headers, DATA, then trailers ending the stream"
            );
            assert_eq!(pseudo, 0, "trailers carry no pseudo-headers");
        }
        if end_stream {
            assert!(
                value(b"grpc-status").is_some(),
                "a gRPC response ends with grpc-status: {fields:?}"
            );
            s.ended = true;
        }
    }

    fn data(&mut self, d: &Data) {
        let id = d.stream_id;
        let s = self.streams.entry(id.0).or_default();
        assert!(
            s.blocks == 1 && !s.ended && !s.reset,
            "DATA on {id:?} outside a response body"
        );
        assert!(!d.end_stream, "responses end with trailers, not DATA");
        let end = s.seen + d.payload.len();
        assert!(
            end <= s.expected.len(),
            "DATA on {id:?} beyond the messages queued"
        );
        assert_eq!(
            &s.expected[s.seen..end],
            &d.payload[..],
            "DATA on {id:?} is not the queued messages"
        );
        s.seen = end;
        self.data_written += d.payload.len();
        if let Some(flow) = &mut self.flow {
            let len = i64::from(d.flow_len);
            let stream = flow.streams.entry(id.0).or_default();
            let window = flow.initial + *stream;
            assert!(
                len <= flow.conn,
                "DATA of {len} beyond the connection window {}",
                flow.conn
            );
            assert!(
                len <= window,
                "DATA of {len} on {id:?} beyond its window {window}"
            );
            flow.conn -= len;
            *stream -= len;
        }
    }
}

// ----- the engine side -----

/// Book-keeping of a well-behaved engine, and the event-order promises it relies on.
#[derive(Default)]
struct Engine {
    strict: Strict,
    /// Every stream an `Event::Request` named, in order.
    requested: Vec<StreamId>,
    /// Handlers running: requested, not yet released.
    live: Vec<StreamId>,
    /// Streams whose handler was released.
    released: HashSet<u32>,
    ended: HashSet<u32>,
    reset: HashSet<u32>,
    /// Credit of delivered messages not yet released, per stream.
    held: HashMap<u32, usize>,
    closed: bool,
    /// Message bytes queued with `send_message`, prefixes included.
    queued_total: usize,
}

impl Engine {
    fn drain(&mut self, conn: &mut Connection) {
        while let Some(event) = conn.poll_event() {
            self.event(conn, event);
        }
    }

    fn event(&mut self, conn: &mut Connection, event: Event) {
        let known = |engine: &Engine, id: StreamId| engine.requested.contains(&id);
        match event {
            Event::Request { id, head } => {
                assert!(id.is_client_initiated());
                assert!(!known(self, id), "a second Request for {id:?}");
                assert!(
                    !head.path.is_empty(),
                    "a request without :path was accepted"
                );
                self.requested.push(id);
                // A command may name a stream before its Request is polled; once
                // released, it is no handler's any more.
                if !self.released.contains(&id.0) {
                    self.live.push(id);
                }
            }
            Event::Message { id, message } => {
                assert!(known(self, id), "Message on {id:?} before its Request");
                assert!(
                    !self.ended.contains(&id.0),
                    "Message on {id:?} after EndOfStream"
                );
                assert!(!self.reset.contains(&id.0), "Message on {id:?} after Reset");
                assert!(message.data.len() <= conn.config().max_message_size as usize);
                let credit = message.data.len() + PREFIX_LEN;
                if self.released.contains(&id.0) {
                    // No handler is left to take it: hand the credit straight back.
                    conn.release_capacity(id, credit);
                } else {
                    *self.held.entry(id.0).or_default() += credit;
                }
            }
            Event::EndOfStream { id } => {
                assert!(known(self, id), "EndOfStream on {id:?} before its Request");
                assert!(
                    !self.reset.contains(&id.0),
                    "EndOfStream on {id:?} after Reset"
                );
                assert!(self.ended.insert(id.0), "EndOfStream twice on {id:?}");
            }
            Event::Reset { id, .. } => {
                assert!(
                    known(self, id),
                    "Reset of {id:?}, which the engine never saw"
                );
                let first = self.reset.insert(id.0);
                assert!(
                    first || !self.strict.reset_reported_once,
                    "Reset twice on {id:?}"
                );
            }
            Event::GoAway { .. } => {}
            Event::Closed { .. } => {
                assert!(
                    conn.is_closed(),
                    "Closed reported while the connection goes on"
                );
                assert!(!self.closed, "Closed reported twice");
                self.closed = true;
            }
        }
    }

    fn send_message(
        &mut self,
        conn: &mut Connection,
        checker: &mut OutputChecker,
        id: StreamId,
        data: Bytes,
        compressed: bool,
    ) {
        let len = data.len();
        if conn.send_message(id, data.clone(), compressed).is_ok() {
            checker.queued(id, compressed, &data);
            self.queued_total += len + PREFIX_LEN;
        }
    }

    /// The handler finished: what it still held is dropped, and so released, first.
    fn release_stream(&mut self, conn: &mut Connection, id: StreamId) {
        if let Some(credit) = self.held.remove(&id.0) {
            conn.release_capacity(id, credit);
        }
        conn.release_stream(id);
        self.live.retain(|&s| s != id);
        self.released.insert(id.0);
    }

    fn release_all_capacity(&mut self, conn: &mut Connection) {
        for (id, credit) in self.held.drain() {
            conn.release_capacity(StreamId(id), credit);
        }
    }
}

/// A config with the defaults, or one with every limit small so that the fuzzer
/// reaches them in a few frames.
pub fn fuzz_config(choice: u8) -> Config {
    if choice & 1 == 0 {
        return Config::default().validated();
    }
    Config {
        max_concurrent_streams: 1 + u32::from(choice >> 1 & 3),
        initial_stream_window: DEFAULT_WINDOW_SIZE,
        initial_connection_window: DEFAULT_WINDOW_SIZE * (1 + u32::from(choice >> 3 & 1)),
        max_message_size: if choice & 0x10 != 0 { 64 } else { 1024 },
        max_header_list_size: if choice & 0x20 != 0 { 512 } else { 4096 },
        header_table_size: if choice & 0x40 != 0 { 0 } else { 256 },
        max_frame_size: if choice & 0x80 != 0 {
            2 * DEFAULT_MAX_FRAME_SIZE
        } else {
            DEFAULT_MAX_FRAME_SIZE
        },
        max_continuation_frames: 2,
        max_peer_resets: 3,
        max_error_resets: 8,
        max_pending_control_frames: 4,
        max_empty_frames: 4,
        max_new_streams_per_recv: 4,
        ..Config::default()
    }
    .validated()
}

/// The most one `poll_transmit` may write: the engine's own queued messages, plus a
/// generous allowance for answers to what the client sent since the last write. A
/// peer must not be able to make the server write much more than it sends.
fn output_bound(fed: usize, unsent_messages: usize) -> usize {
    64 * 1024 + 64 * fed + unsent_messages
}

// ----- connection_bytes -----

/// A server connection fed arbitrary bytes in arbitrary chunks, with an engine that
/// answers requests.
///
/// Input: a mode byte (bit 0: prepend the preface and an empty SETTINGS; bit 1: also
/// a SETTINGS ACK; the next byte picks the config), a four-byte seed for chunk sizes
/// and engine choices, then the bytes.
pub fn connection_bytes(data: &[u8]) {
    connection_bytes_with(data, Strict::ALL);
}

pub fn connection_bytes_with(data: &[u8], strict: Strict) {
    let mut input = Input::new(data);
    let mode = input.u8();
    let config = fuzz_config(input.u8());
    let mut rng = Rng::new(input.u32());
    let mut stream = Vec::new();
    if mode & 1 != 0 {
        stream.extend_from_slice(PREFACE);
        Settings::default().encode(&mut stream);
        if mode & 2 != 0 {
            Settings::ACK.encode(&mut stream);
        }
    }
    stream.extend_from_slice(input.rest());

    let mut now = Instant::now();
    let mut conn = Connection::new(config.clone(), now);
    let mut checker = OutputChecker::new(None, None, strict);
    let mut engine = Engine {
        strict,
        ..Engine::default()
    };
    let mut inbox = BytesMut::new();
    let mut fed = 0;
    let mut at = 0;
    let mut steps = 0;
    while at < stream.len() || steps < 2 {
        steps += 1;
        let left = stream.len() - at;
        let n = if rng.one_in(3) {
            rng.below(16)
        } else {
            rng.below(2048)
        }
        .min(left);
        inbox.extend_from_slice(&stream[at..at + n]);
        at += n;
        fed += n;
        conn.recv(now, &mut inbox);
        assert!(
            inbox.len() <= HEADER_LEN + config.max_frame_size as usize,
            "recv keeps {} bytes: more than one incomplete frame",
            inbox.len()
        );
        engine.drain(&mut conn);
        respond(&mut rng, &mut conn, &mut engine, &mut checker);
        assert!(conn.active_streams() <= config.max_concurrent_streams as usize);
        assert!(
            conn.active_streams() >= engine.live.len(),
            "a stream went away while its handler runs"
        );
        if rng.one_in(2) || at == stream.len() {
            transmit(&mut conn, now, &mut checker, &engine, &mut fed);
        }
        if rng.one_in(8) {
            now += Duration::from_millis(rng.below(4000) as u64);
            conn.handle_timeout(now);
        }
    }
    // The end: the handshake deadline passes, every handler finishes.
    now += Duration::from_secs(11);
    conn.handle_timeout(now);
    for _ in 0..3 {
        engine.drain(&mut conn);
        engine.release_all_capacity(&mut conn);
        for id in engine.live.clone() {
            let _ = conn.send_trailers(id, ResponseStatus::OK, []);
            engine.release_stream(&mut conn, id);
        }
        transmit(&mut conn, now, &mut checker, &engine, &mut fed);
    }
}

thread_local! {
    static VECTORED_TURN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn transmit(
    conn: &mut Connection,
    now: Instant,
    checker: &mut OutputChecker,
    engine: &Engine,
    fed: &mut usize,
) -> Vec<Frame> {
    let mut out = BytesMut::new();
    let unsent = engine.queued_total - checker.data_written;
    // Every other turn the vectored form, whose buffer and runs put together
    // must be what the copying form would have written; the checks below see
    // the assembled bytes. A minimum of 1 splices every payload run.
    let vectored = VECTORED_TURN.with(|turn| {
        turn.set(!turn.get());
        turn.get()
    });
    if vectored {
        let mut spliced = Vec::new();
        let min = if fed.is_multiple_of(2) { 1 } else { 64 };
        let n = conn.poll_transmit_vectored(now, &mut out, &mut spliced, min);
        let mut whole = BytesMut::with_capacity(n);
        let mut from = 0;
        for (at, run) in &spliced {
            assert!(*at >= from && *at <= out.len(), "splice positions in order");
            assert!(run.len() >= min, "a run shorter than the minimum");
            whole.extend_from_slice(&out[from..*at]);
            whole.extend_from_slice(run);
            from = *at;
        }
        whole.extend_from_slice(&out[from..]);
        assert_eq!(
            n,
            whole.len(),
            "poll_transmit_vectored reports what it wrote"
        );
        out = whole;
    } else {
        let n = conn.poll_transmit(now, &mut out);
        assert_eq!(n, out.len(), "poll_transmit reports what it wrote");
    }
    let bound = output_bound(*fed, unsent);
    assert!(
        out.len() <= bound,
        "one write of {} bytes after {} bytes in",
        out.len(),
        *fed
    );
    *fed = 0;
    checker.check(out)
}

/// Answers some requests at random: a whole response, a cancellation, or nothing yet.
fn respond(rng: &mut Rng, conn: &mut Connection, engine: &mut Engine, checker: &mut OutputChecker) {
    if rng.one_in(2) {
        engine.release_all_capacity(conn);
    }
    for id in engine.live.clone() {
        match rng.below(4) {
            0 => {}
            1 => engine.release_stream(conn, id),
            _ => {
                if rng.one_in(2) {
                    let _ = conn.send_headers(
                        id,
                        [(Bytes::from_static(b"x-meta"), Bytes::from_static(b"v"))],
                    );
                }
                for _ in 0..rng.below(3) {
                    let len = if rng.one_in(4) {
                        rng.below(40_000)
                    } else {
                        rng.below(64)
                    };
                    let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
                    engine.send_message(conn, checker, id, Bytes::from(body), rng.one_in(4));
                }
                let status = match rng.below(3) {
                    0 => ResponseStatus::OK,
                    1 => ResponseStatus::new(5, "not found: 100% \u{e9}\n"),
                    _ => ResponseStatus {
                        code: 13,
                        message: Bytes::new(),
                        details: Some(Bytes::from_static(b"\x08\x0d\xff")),
                    },
                };
                let metadata = [(
                    Bytes::from_static(b"x-trailer-bin"),
                    Bytes::from_static(b"\x00\x01"),
                )];
                let _ = conn.send_trailers(id, status, metadata);
                engine.release_stream(conn, id);
            }
        }
    }
}

// ----- connection_ops -----

/// Header names the fuzzer picks by index; the ones a gRPC request uses and the
/// ones RFC 9113 §8 forbids or restricts.
const NAMES: &[&[u8]] = &[
    b":method",
    b":scheme",
    b":path",
    b":authority",
    b"content-type",
    b"te",
    b"grpc-timeout",
    b"grpc-encoding",
    b"grpc-accept-encoding",
    b"user-agent",
    b"content-length",
    b"x-meta",
    b"x-meta-bin",
    b"connection",
    b"host",
    b":status",
    b"grpc-status",
    b"grpc-message",
    b"Upper-Case",
    b":protocol",
    b"grpc-status-details-bin",
    b"cookie",
];

const VALUES: &[&[u8]] = &[
    b"POST",
    b"GET",
    b"http",
    b"https",
    b"/a.B/C",
    b"/helloworld.Greeter/SayHello",
    b"localhost",
    b"application/grpc",
    b"application/grpc+proto",
    b"text/plain",
    b"trailers",
    b"1S",
    b"100m",
    b"99999999H",
    b"gzip",
    b"identity",
    b"0",
    b"5",
    b"AAEC",
    b"AAEC=",
    b"x",
    b"",
    b"10",
    b"a\0b",
    b" padded ",
    b"*",
];

/// A header name or value: an index into a dictionary, or raw bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Str {
    Known(u8),
    Raw(Vec<u8>),
}

impl Str {
    fn read(input: &mut Input) -> Str {
        let b = input.u8();
        if b & 0x80 == 0 {
            Str::Known(b)
        } else {
            Str::Raw(input.short_bytes())
        }
    }

    fn write(&self, w: &mut Writer) {
        match self {
            Str::Known(i) => w.u8(i & 0x7f),
            Str::Raw(v) => w.u8(0x80).short_bytes(v),
        };
    }

    fn get<'a>(&'a self, dictionary: &[&'a [u8]]) -> &'a [u8] {
        match self {
            Str::Known(i) => dictionary[usize::from(*i) % dictionary.len()],
            Str::Raw(v) => v,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: Str,
    pub value: Str,
    /// 0 incremental, 1 without indexing, 2 never indexed.
    pub indexing: u8,
}

impl Field {
    pub fn known(name: u8, value: u8) -> Field {
        Field {
            name: Str::Known(name),
            value: Str::Known(value),
            indexing: 0,
        }
    }

    fn read(input: &mut Input) -> Field {
        Field {
            name: Str::read(input),
            value: Str::read(input),
            indexing: input.u8() % 3,
        }
    }

    fn write(&self, w: &mut Writer) {
        self.name.write(w);
        self.value.write(w);
        w.u8(self.indexing);
    }
}

/// One step of a `connection_ops` run. Stream fields are selectors, resolved by
/// [`OpsHarness::client_stream`] and [`OpsHarness::engine_stream`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// A well-formed gRPC request head plus `extra` fields, in one HEADERS frame.
    Request {
        stream: u8,
        end_stream: bool,
        extra: Vec<Field>,
    },
    Headers {
        stream: u8,
        fields: Vec<Field>,
        end_stream: bool,
        end_headers: bool,
        pad: Option<u8>,
        priority: Option<(u8, u8)>,
    },
    Continuation {
        stream: u8,
        fields: Vec<Field>,
        end_headers: bool,
    },
    /// gRPC messages (flag byte, body length), cut into DATA frames of `frame_len` (0: one frame).
    Messages {
        stream: u8,
        messages: Vec<(u8, u16)>,
        end_stream: bool,
        pad: Option<u8>,
        frame_len: u16,
    },
    Data {
        stream: u8,
        payload: Vec<u8>,
        end_stream: bool,
        pad: Option<u8>,
    },
    Reset {
        stream: u8,
        reason: u32,
    },
    Settings {
        params: Vec<(u16, u32)>,
    },
    SettingsAck,
    Ping {
        ack: bool,
        payload: u64,
    },
    WindowUpdate {
        stream: u8,
        increment: u32,
    },
    GoAway {
        last: u8,
        reason: u32,
    },
    Priority {
        stream: u8,
        dependency: u8,
        weight: u8,
    },
    /// Any frame, correctly framed.
    Frame {
        kind: u8,
        flags: u8,
        stream: u8,
        payload: Vec<u8>,
    },
    /// Bytes outside any framing: the harness stops tracking the peer's state.
    Garbage(Vec<u8>),
    /// Hands `len` of the bytes built so far to `recv` (0: all of them).
    Deliver {
        len: u16,
    },
    SendHeaders {
        stream: u8,
        metadata: Vec<Field>,
    },
    SendMessage {
        stream: u8,
        len: u16,
        compressed: bool,
    },
    SendTrailers {
        stream: u8,
        code: u8,
        message: Vec<u8>,
        details: bool,
        metadata: Vec<Field>,
    },
    ResetStream {
        stream: u8,
        reason: u32,
    },
    /// Releases `len` of the credit the engine holds on the stream (0: all).
    ReleaseCapacity {
        stream: u8,
        len: u32,
    },
    ReleaseStream {
        stream: u8,
    },
    GoAwayCmd,
    Abort,
    Advance {
        millis: u16,
    },
    Transmit,
    Events,
}

const OP_KINDS: u8 = 27;

impl Op {
    pub fn read(input: &mut Input) -> Op {
        let fields = |i: &mut Input| i.list(8, Field::read);
        let pad = |i: &mut Input| i.option(Input::u8);
        match input.u8() % OP_KINDS {
            0 => Op::Request {
                stream: input.u8(),
                end_stream: input.bool(),
                extra: fields(input),
            },
            1 => Op::Headers {
                stream: input.u8(),
                fields: fields(input),
                end_stream: input.bool(),
                end_headers: input.bool(),
                pad: pad(input),
                priority: input.option(|i| (i.u8(), i.u8())),
            },
            2 => Op::Continuation {
                stream: input.u8(),
                fields: fields(input),
                end_headers: input.bool(),
            },
            3 => Op::Messages {
                stream: input.u8(),
                messages: input.list(8, |i| (i.u8(), i.u16())),
                end_stream: input.bool(),
                pad: pad(input),
                frame_len: input.u16(),
            },
            4 => Op::Data {
                stream: input.u8(),
                payload: input.long_bytes(),
                end_stream: input.bool(),
                pad: pad(input),
            },
            5 => Op::Reset {
                stream: input.u8(),
                reason: input.u32(),
            },
            6 => Op::Settings {
                params: input.list(8, |i| (i.u16(), i.u32())),
            },
            7 => Op::SettingsAck,
            8 => Op::Ping {
                ack: input.bool(),
                payload: input.u64(),
            },
            9 => Op::WindowUpdate {
                stream: input.u8(),
                increment: input.u32(),
            },
            10 => Op::GoAway {
                last: input.u8(),
                reason: input.u32(),
            },
            11 => Op::Priority {
                stream: input.u8(),
                dependency: input.u8(),
                weight: input.u8(),
            },
            12 => Op::Frame {
                kind: input.u8(),
                flags: input.u8(),
                stream: input.u8(),
                payload: input.long_bytes(),
            },
            13 => Op::Garbage(input.short_bytes()),
            14 => Op::Deliver { len: input.u16() },
            15 => Op::SendHeaders {
                stream: input.u8(),
                metadata: fields(input),
            },
            16 => Op::SendMessage {
                stream: input.u8(),
                len: input.u16(),
                compressed: input.bool(),
            },
            17 => Op::SendTrailers {
                stream: input.u8(),
                code: input.u8(),
                message: input.short_bytes(),
                details: input.bool(),
                metadata: fields(input),
            },
            18 => Op::ResetStream {
                stream: input.u8(),
                reason: input.u32(),
            },
            19 => Op::ReleaseCapacity {
                stream: input.u8(),
                len: input.u32(),
            },
            20 => Op::ReleaseStream { stream: input.u8() },
            21 => Op::GoAwayCmd,
            22 => Op::Abort,
            23 => Op::Advance {
                millis: input.u16(),
            },
            24 => Op::Transmit,
            25 => Op::Events,
            _ => Op::Deliver { len: 0 },
        }
    }

    pub fn write(&self, w: &mut Writer) {
        let fields = |w: &mut Writer, f: &[Field]| {
            w.list(f, |w, f| f.write(w));
        };
        let pad = |w: &mut Writer, p: &Option<u8>| {
            w.option(p, |w, p| {
                w.u8(*p);
            });
        };
        match self {
            Op::Request {
                stream,
                end_stream,
                extra,
            } => {
                w.u8(0).u8(*stream).bool(*end_stream);
                fields(w, extra);
            }
            Op::Headers {
                stream,
                fields: f,
                end_stream,
                end_headers,
                pad: p,
                priority,
            } => {
                w.u8(1).u8(*stream);
                fields(w, f);
                w.bool(*end_stream).bool(*end_headers);
                pad(w, p);
                w.option(priority, |w, (d, weight)| {
                    w.u8(*d).u8(*weight);
                });
            }
            Op::Continuation {
                stream,
                fields: f,
                end_headers,
            } => {
                w.u8(2).u8(*stream);
                fields(w, f);
                w.bool(*end_headers);
            }
            Op::Messages {
                stream,
                messages,
                end_stream,
                pad: p,
                frame_len,
            } => {
                w.u8(3).u8(*stream).list(messages, |w, (flag, len)| {
                    w.u8(*flag).u16(*len);
                });
                w.bool(*end_stream);
                pad(w, p);
                w.u16(*frame_len);
            }
            Op::Data {
                stream,
                payload,
                end_stream,
                pad: p,
            } => {
                w.u8(4).u8(*stream).long_bytes(payload).bool(*end_stream);
                pad(w, p);
            }
            Op::Reset { stream, reason } => {
                w.u8(5).u8(*stream).u32(*reason);
            }
            Op::Settings { params } => {
                w.u8(6).list(params, |w, (id, value)| {
                    w.u16(*id).u32(*value);
                });
            }
            Op::SettingsAck => {
                w.u8(7);
            }
            Op::Ping { ack, payload } => {
                w.u8(8).bool(*ack).u64(*payload);
            }
            Op::WindowUpdate { stream, increment } => {
                w.u8(9).u8(*stream).u32(*increment);
            }
            Op::GoAway { last, reason } => {
                w.u8(10).u8(*last).u32(*reason);
            }
            Op::Priority {
                stream,
                dependency,
                weight,
            } => {
                w.u8(11).u8(*stream).u8(*dependency).u8(*weight);
            }
            Op::Frame {
                kind,
                flags,
                stream,
                payload,
            } => {
                w.u8(12)
                    .u8(*kind)
                    .u8(*flags)
                    .u8(*stream)
                    .long_bytes(payload);
            }
            Op::Garbage(bytes) => {
                w.u8(13).short_bytes(bytes);
            }
            Op::Deliver { len } => {
                w.u8(14).u16(*len);
            }
            Op::SendHeaders { stream, metadata } => {
                w.u8(15).u8(*stream);
                fields(w, metadata);
            }
            Op::SendMessage {
                stream,
                len,
                compressed,
            } => {
                w.u8(16).u8(*stream).u16(*len).bool(*compressed);
            }
            Op::SendTrailers {
                stream,
                code,
                message,
                details,
                metadata,
            } => {
                w.u8(17)
                    .u8(*stream)
                    .u8(*code)
                    .short_bytes(message)
                    .bool(*details);
                fields(w, metadata);
            }
            Op::ResetStream { stream, reason } => {
                w.u8(18).u8(*stream).u32(*reason);
            }
            Op::ReleaseCapacity { stream, len } => {
                w.u8(19).u8(*stream).u32(*len);
            }
            Op::ReleaseStream { stream } => {
                w.u8(20).u8(*stream);
            }
            Op::GoAwayCmd => {
                w.u8(21);
            }
            Op::Abort => {
                w.u8(22);
            }
            Op::Advance { millis } => {
                w.u8(23).u16(*millis);
            }
            Op::Transmit => {
                w.u8(24);
            }
            Op::Events => {
                w.u8(25);
            }
        }
    }
}

/// Writes a `connection_ops` input: the config choice, then the operations.
pub fn ops_input(config: u8, ops: &[Op]) -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(config);
    for op in ops {
        op.write(&mut w);
    }
    w.0
}

/// Checks that can be switched off one by one (`FUZZ_STRICT`), so that fuzzing can
/// go on past a known bug to find the next one while it is being fixed. All are on
/// by default ([`Strict::ALL`]): the bugs that first showed them are fixed, and the
/// regression tests in `tests/fuzz_regressions.rs` replay their inputs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Strict {
    /// A later GOAWAY never names a higher last stream id (RFC 9113 §6.8).
    pub goaway_never_increases: bool,
    /// `Event::Reset` comes at most once per stream.
    pub reset_reported_once: bool,
    /// Once the server resets a stream it sends nothing more on it, even when the
    /// RST_STREAM came before any response (for a stream still idle).
    pub nothing_after_early_reset: bool,
    /// The engine hands metadata to `send_headers`/`send_trailers` unfiltered, and
    /// what the server writes must still be a well-formed response (§8.2.1, §8.3):
    /// the codec drops or rejects keys and values that would make it malformed.
    pub metadata_checked_by_codec: bool,
    /// A status message starting or ending with a space still goes out as a valid
    /// field value (§8.2.1 forbids leading and trailing whitespace), which takes
    /// percent-encoding those spaces.
    pub status_message_spaces_encoded: bool,
}

impl Strict {
    /// Every check on: the bugs these guarded against are fixed, so the fuzz
    /// targets and the regression tests run with all of them.
    pub const ALL: Strict = Strict {
        goaway_never_increases: true,
        reset_reported_once: true,
        nothing_after_early_reset: true,
        metadata_checked_by_codec: true,
        status_message_spaces_encoded: true,
    };

    /// Turns on the checks named in a comma-separated list, or all of them for "all";
    /// the fuzz targets read the list from `FUZZ_STRICT`.
    pub fn parse(names: &str) -> Strict {
        let mut strict = Strict::default();
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let all = name == "all";
            let mut known = all;
            for (flag, field) in [
                ("goaway_never_increases", &mut strict.goaway_never_increases),
                ("reset_reported_once", &mut strict.reset_reported_once),
                (
                    "nothing_after_early_reset",
                    &mut strict.nothing_after_early_reset,
                ),
                (
                    "metadata_checked_by_codec",
                    &mut strict.metadata_checked_by_codec,
                ),
                (
                    "status_message_spaces_encoded",
                    &mut strict.status_message_spaces_encoded,
                ),
            ] {
                if all || flag == name {
                    *field = true;
                    known = true;
                }
            }
            assert!(known, "unknown strict check {name:?}");
        }
        strict
    }
}

const MAX_OPS: usize = 2000;

/// Runs a sequence of client frames and engine commands against a server connection.
///
/// Input: a config choice byte (see [`fuzz_config`]), then operations ([`Op::read`]).
pub fn connection_ops(data: &[u8]) {
    connection_ops_with(data, Strict::ALL);
}

pub fn connection_ops_with(data: &[u8], strict: Strict) {
    let mut input = Input::new(data);
    let config = fuzz_config(input.u8());
    let mut harness = OpsHarness::new(config, strict);
    let mut ops = 0;
    while !input.is_empty() && ops < MAX_OPS {
        let op = Op::read(&mut input);
        harness.apply(&op);
        harness.invariants();
        ops += 1;
    }
    harness.quiesce();
}

/// A frame the client built and the server has not yet received all of.
struct InFlight {
    /// Offset just past the frame in the client's byte stream.
    end: usize,
    frame: Option<Frame>,
}

pub struct OpsHarness {
    config: Config,
    strict: Strict,
    conn: Connection,
    now: Instant,
    engine: Engine,
    checker: OutputChecker,

    // The client.
    encoder: Encoder,
    /// Built and not yet delivered.
    pending: Vec<u8>,
    built: usize,
    delivered: usize,
    in_flight: VecDeque<InFlight>,
    inbox: BytesMut,
    /// Garbage went out: frame boundaries, and so the peer's settings and windows,
    /// are unknown from here on.
    desynced: bool,
    last_opened: u32,
    /// The client's send window towards the server, as the server must see it:
    /// WINDOW_UPDATEs it wrote minus DATA the client sent (connection, per stream).
    recv_conn: i64,
    recv_streams: HashMap<u32, i64>,
    fed_since_transmit: usize,
}

impl OpsHarness {
    fn new(config: Config, strict: Strict) -> OpsHarness {
        let now = Instant::now();
        let mut harness = OpsHarness {
            conn: Connection::new(config.clone(), now),
            config,
            strict,
            now,
            engine: Engine {
                strict,
                ..Engine::default()
            },
            checker: OutputChecker::new(
                Some(DEFAULT_MAX_FRAME_SIZE),
                Some(SendModel::new()),
                strict,
            ),
            encoder: Encoder::new(),
            pending: Vec::new(),
            built: 0,
            delivered: 0,
            in_flight: VecDeque::new(),
            inbox: BytesMut::new(),
            desynced: false,
            last_opened: 0,
            recv_conn: i64::from(DEFAULT_WINDOW_SIZE),
            recv_streams: HashMap::new(),
            fed_since_transmit: 0,
        };
        harness.push_bytes(PREFACE);
        harness
    }

    /// Stream ids the client uses: 0..=127 fixed odd ids; 128..=191 a fresh id above
    /// every one used; 192..=223 the last one opened; then even ids, 0 and huge ones.
    fn client_stream(&mut self, sel: u8) -> u32 {
        match sel {
            0..=127 => 2 * u32::from(sel % 64) + 1,
            128..=191 => {
                self.last_opened = (self.last_opened + 1) | 1;
                self.last_opened
            }
            192..=223 => self.last_opened.max(1),
            224..=239 => 2 * u32::from(sel - 224) + 2,
            240..=247 => 0,
            _ => 0x7fff_ffff - 2 * u32::from(sel - 248),
        }
    }

    /// Streams for engine commands: mostly ones the engine was told about.
    fn engine_stream(&mut self, sel: u8) -> StreamId {
        if sel < 192 && !self.engine.requested.is_empty() {
            return self.engine.requested[usize::from(sel) % self.engine.requested.len()];
        }
        StreamId(self.client_stream(sel))
    }

    fn push_bytes(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        self.built += bytes.len();
    }

    fn push_frame(&mut self, kind: Kind, flags: u8, id: u32, payload: &[u8]) {
        let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
        FrameHeader::encode(payload.len(), kind, flags, StreamId(id), &mut bytes);
        bytes.extend_from_slice(payload);
        let head = FrameHeader::parse(&bytes).expect("nine bytes");
        // What the frame means for the windows and settings the harness tracks.
        let frame = Frame::parse(head, Bytes::copy_from_slice(payload)).ok();
        self.push_bytes(&bytes);
        self.in_flight.push_back(InFlight {
            end: self.built,
            frame,
        });
    }

    fn padded(payload: &[u8], pad: Option<u8>) -> (u8, Vec<u8>) {
        match pad {
            None => (0, payload.to_vec()),
            Some(p) => {
                let mut v = vec![p];
                v.extend_from_slice(payload);
                v.extend(std::iter::repeat_n(0, usize::from(p)));
                (flags::PADDED, v)
            }
        }
    }

    fn encode_fields(&mut self, fields: &[Field], begin: bool) -> BytesMut {
        let mut block = BytesMut::new();
        if begin {
            self.encoder.begin_block(&mut block);
        }
        for f in fields {
            let indexing =
                [Indexing::Incremental, Indexing::No, Indexing::Never][usize::from(f.indexing % 3)];
            self.encoder
                .encode_field(f.name.get(NAMES), f.value.get(VALUES), indexing, &mut block);
        }
        block
    }

    fn headers_frame(
        &mut self,
        id: u32,
        block: &[u8],
        end_stream: bool,
        end_headers: bool,
        pad: Option<u8>,
        priority: Option<(u8, u8)>,
    ) {
        let mut payload = Vec::new();
        let mut f = 0;
        if let Some((dependency, weight)) = priority {
            f |= flags::PRIORITY;
            let dependency = self.client_stream(dependency);
            payload.extend_from_slice(&dependency.to_be_bytes());
            payload.push(weight);
        }
        payload.extend_from_slice(block);
        // The pad length comes first, then the priority block and the fragment (§6.2).
        let (pad_flag, payload) = Self::padded(&payload, pad);
        f |= pad_flag;
        if end_stream {
            f |= flags::END_STREAM;
        }
        if end_headers {
            f |= flags::END_HEADERS;
        }
        self.push_frame(Kind::Headers, f, id, &payload);
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Request {
                stream,
                end_stream,
                extra,
            } => {
                let id = self.client_stream(*stream);
                let mut fields = vec![
                    Field::known(0, 0),  // :method POST
                    Field::known(1, 2),  // :scheme http
                    Field::known(2, 4),  // :path /a.B/C
                    Field::known(3, 6),  // :authority localhost
                    Field::known(4, 7),  // content-type application/grpc
                    Field::known(5, 10), // te trailers
                ];
                fields.extend(extra.iter().cloned());
                let block = self.encode_fields(&fields, true);
                self.headers_frame(id, &block, *end_stream, true, None, None);
            }
            Op::Headers {
                stream,
                fields,
                end_stream,
                end_headers,
                pad,
                priority,
            } => {
                let id = self.client_stream(*stream);
                let block = self.encode_fields(fields, true);
                self.headers_frame(id, &block, *end_stream, *end_headers, *pad, *priority);
            }
            Op::Continuation {
                stream,
                fields,
                end_headers,
            } => {
                let id = self.client_stream(*stream);
                // A continued block: no size update, which may only open a block.
                let block = self.encode_fields(fields, false);
                let f = if *end_headers { flags::END_HEADERS } else { 0 };
                self.push_frame(Kind::Continuation, f, id, &block);
            }
            Op::Messages {
                stream,
                messages,
                end_stream,
                pad,
                frame_len,
            } => {
                let id = self.client_stream(*stream);
                let mut body = Vec::new();
                for (n, (flag, len)) in messages.iter().enumerate() {
                    let len = usize::from(*len) % 4097;
                    body.push(*flag);
                    body.extend_from_slice(&(len as u32).to_be_bytes());
                    body.extend((0..len).map(|i| (i + n) as u8));
                }
                let frame_len = if *frame_len == 0 {
                    body.len().max(1)
                } else {
                    usize::from(*frame_len)
                };
                let mut chunks: Vec<&[u8]> = body.chunks(frame_len).collect();
                if chunks.is_empty() {
                    chunks.push(&[]);
                }
                let last = chunks.len() - 1;
                for (i, chunk) in chunks.into_iter().enumerate() {
                    let (pad_flag, payload) = Self::padded(chunk, *pad);
                    let end = if *end_stream && i == last {
                        flags::END_STREAM
                    } else {
                        0
                    };
                    self.push_frame(Kind::Data, pad_flag | end, id, &payload);
                }
            }
            Op::Data {
                stream,
                payload,
                end_stream,
                pad,
            } => {
                let id = self.client_stream(*stream);
                let (pad_flag, payload) = Self::padded(payload, *pad);
                let end = if *end_stream { flags::END_STREAM } else { 0 };
                self.push_frame(Kind::Data, pad_flag | end, id, &payload);
            }
            Op::Reset { stream, reason } => {
                let id = self.client_stream(*stream);
                self.push_frame(Kind::Reset, 0, id, &reason.to_be_bytes());
            }
            Op::Settings { params } => {
                let mut payload = Vec::new();
                for (id, value) in params {
                    payload.extend_from_slice(&id.to_be_bytes());
                    payload.extend_from_slice(&value.to_be_bytes());
                }
                self.push_frame(Kind::Settings, 0, 0, &payload);
            }
            Op::SettingsAck => {
                // A client acknowledges our SETTINGS after adopting them: its encoder now
                // keeps within our SETTINGS_HEADER_TABLE_SIZE.
                self.encoder
                    .update_max_size(self.config.header_table_size as usize);
                self.push_frame(Kind::Settings, flags::ACK, 0, &[]);
            }
            Op::Ping { ack, payload } => {
                self.push_frame(
                    Kind::Ping,
                    if *ack { flags::ACK } else { 0 },
                    0,
                    &payload.to_be_bytes(),
                );
            }
            Op::WindowUpdate { stream, increment } => {
                let id = self.client_stream(*stream);
                self.push_frame(Kind::WindowUpdate, 0, id, &increment.to_be_bytes());
            }
            Op::GoAway { last, reason } => {
                let last = self.client_stream(*last);
                let mut payload = last.to_be_bytes().to_vec();
                payload.extend_from_slice(&reason.to_be_bytes());
                payload.extend_from_slice(b"bye");
                self.push_frame(Kind::GoAway, 0, 0, &payload);
            }
            Op::Priority {
                stream,
                dependency,
                weight,
            } => {
                let id = self.client_stream(*stream);
                let mut payload = self.client_stream(*dependency).to_be_bytes().to_vec();
                payload.push(*weight);
                self.push_frame(Kind::Priority, 0, id, &payload);
            }
            Op::Frame {
                kind,
                flags: f,
                stream,
                payload,
            } => {
                let id = self.client_stream(*stream);
                self.push_frame(Kind::from_u8(*kind), *f, id, payload);
            }
            Op::Garbage(bytes) => {
                self.desynced = true;
                self.checker.max_frame = None;
                self.checker.flow = None;
                self.push_bytes(bytes);
            }
            Op::Deliver { len } => self.deliver(usize::from(*len)),
            Op::SendHeaders { stream, metadata } => {
                let id = self.engine_stream(*stream);
                let metadata = self.metadata(metadata);
                let _ = self.conn.send_headers(id, metadata);
            }
            Op::SendMessage {
                stream,
                len,
                compressed,
            } => {
                let id = self.engine_stream(*stream);
                let body: Vec<u8> = (0..usize::from(*len)).map(|i| (i % 253) as u8).collect();
                self.engine.send_message(
                    &mut self.conn,
                    &mut self.checker,
                    id,
                    Bytes::from(body),
                    *compressed,
                );
            }
            Op::SendTrailers {
                stream,
                code,
                message,
                details,
                metadata,
            } => {
                let id = self.engine_stream(*stream);
                let mut message = &message[..];
                if !self.strict.status_message_spaces_encoded {
                    // What an engine would do while the codec sends such spaces raw.
                    while let Some(rest) = message
                        .strip_prefix(b" ")
                        .or_else(|| message.strip_suffix(b" "))
                    {
                        message = rest;
                    }
                }
                let message = message.to_vec();
                let status = ResponseStatus {
                    code: u32::from(*code % 20),
                    message: Bytes::from(message),
                    details: details.then(|| Bytes::from_static(b"\x08\x05\x12\x01x")),
                };
                let metadata = self.metadata(metadata);
                let _ = self.conn.send_trailers(id, status, metadata);
            }
            Op::ResetStream { stream, reason } => {
                let id = self.engine_stream(*stream);
                let _ = self.conn.reset(id, Reason(*reason));
            }
            Op::ReleaseCapacity { stream, len } => {
                let id = self.engine_stream(*stream);
                if let Some(held) = self.engine.held.get_mut(&id.0) {
                    let len = if *len == 0 {
                        *held
                    } else {
                        (*len as usize).min(*held)
                    };
                    *held -= len;
                    self.conn.release_capacity(id, len);
                }
            }
            Op::ReleaseStream { stream } => {
                let id = self.engine_stream(*stream);
                self.engine.release_stream(&mut self.conn, id);
            }
            Op::GoAwayCmd => self.conn.go_away(),
            Op::Abort => self.conn.abort(Reason::INTERNAL_ERROR, "engine abort"),
            Op::Advance { millis } => {
                self.now += Duration::from_millis(u64::from(*millis));
                if millis % 2 == 1 || self.conn.poll_timeout().is_some_and(|t| t <= self.now) {
                    self.conn.handle_timeout(self.now);
                }
            }
            Op::Transmit => self.transmit(),
            Op::Events => self.engine.drain(&mut self.conn),
        }
    }

    /// Response metadata as the engine passes it on: filtered to valid custom metadata,
    /// as an engine validating its handlers' metadata would, unless the strict check
    /// leaves that to the codec.
    fn metadata(&self, fields: &[Field]) -> Vec<(Bytes, Bytes)> {
        fields
            .iter()
            .map(|f| (f.name.get(NAMES), f.value.get(VALUES)))
            .filter(|(name, value)| {
                self.strict.metadata_checked_by_codec || valid_custom_metadata(name, value)
            })
            .map(|(name, value)| (Bytes::copy_from_slice(name), Bytes::copy_from_slice(value)))
            .collect()
    }

    fn deliver(&mut self, len: usize) {
        let n = if len == 0 {
            self.pending.len()
        } else {
            len.min(self.pending.len())
        };
        self.inbox.extend_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        self.delivered += n;
        self.fed_since_transmit += n;
        self.conn.recv(self.now, &mut self.inbox);
        assert!(
            self.inbox.len() <= HEADER_LEN + self.config.max_frame_size as usize,
            "recv keeps {} bytes: more than one incomplete frame",
            self.inbox.len()
        );
        // Every frame now wholly delivered has been processed, in order.
        while self
            .in_flight
            .front()
            .is_some_and(|f| f.end <= self.delivered)
        {
            let Some(InFlight {
                frame: Some(frame), ..
            }) = self.in_flight.pop_front()
            else {
                continue;
            };
            self.client_frame_processed(&frame);
        }
    }

    /// Tracks what a frame the server has read does to the windows and settings.
    /// Frames the server rejects are tracked too: a rejected SETTINGS or an overflowing
    /// WINDOW_UPDATE closes the connection, after which nothing is checked against them,
    /// and DATA the server ignores only makes the tracked windows smaller than the real ones.
    fn client_frame_processed(&mut self, frame: &Frame) {
        match frame {
            Frame::Settings(s) if !s.ack => {
                if let Some(size) = s.max_frame_size {
                    self.checker.max_frame = self.checker.max_frame.map(|_| size);
                }
                if let (Some(window), Some(flow)) = (s.initial_window_size, &mut self.checker.flow)
                {
                    flow.initial = i64::from(window);
                }
            }
            Frame::WindowUpdate(w) => {
                if let Some(flow) = &mut self.checker.flow {
                    let increment = i64::from(w.increment);
                    if w.stream_id.is_zero() {
                        flow.conn += increment;
                    } else {
                        *flow.streams.entry(w.stream_id.0).or_default() += increment;
                    }
                }
            }
            Frame::Data(d) => {
                let len = i64::from(d.flow_len);
                self.recv_conn -= len;
                *self.recv_streams.entry(d.stream_id.0).or_default() -= len;
            }
            _ => {}
        }
    }

    fn transmit(&mut self) {
        let mut fed = self.fed_since_transmit;
        let frames = transmit(
            &mut self.conn,
            self.now,
            &mut self.checker,
            &self.engine,
            &mut fed,
        );
        self.fed_since_transmit = 0;
        for frame in frames {
            let Frame::WindowUpdate(w) = frame else {
                continue;
            };
            let increment = i64::from(w.increment);
            if w.stream_id.is_zero() {
                self.recv_conn += increment;
                if !self.desynced {
                    let target = i64::from(self.config.initial_connection_window);
                    assert!(
                        self.recv_conn <= target,
                        "connection credit {} beyond the window {target}",
                        self.recv_conn
                    );
                }
            } else {
                let delta = self.recv_streams.entry(w.stream_id.0).or_default();
                *delta += increment;
                if !self.desynced {
                    assert!(
                        *delta <= 0,
                        "{:?} got {delta} more credit than it used",
                        w.stream_id
                    );
                }
            }
        }
    }

    fn invariants(&self) {
        // Partly received messages stay within the connection's budget (a
        // frame may cross it; the stream it belongs to is then failed).
        let validated = self.conn.config();
        let partial = self.conn.partial_message_bytes();
        assert!(
            partial <= validated.max_partial_message_bytes + validated.max_frame_size as usize,
            "{partial} bytes of partly received messages, budget {}",
            validated.max_partial_message_bytes
        );
        let active = self.conn.active_streams();
        assert!(
            active <= self.config.max_concurrent_streams as usize,
            "{active} streams above the limit"
        );
        assert!(
            active >= self.engine.live.len(),
            "a stream went away while its handler runs"
        );
        // "A handler that stops reading stops its client": what the engine holds on a
        // stream stays within the stream's receive window plus the message being read.
        let bound = self.config.initial_stream_window as usize
            + self.config.max_message_size as usize
            + PREFIX_LEN;
        for (id, held) in &self.engine.held {
            let window = i64::from(self.config.initial_stream_window)
                + self.recv_streams.get(id).copied().unwrap_or(0);
            assert!(*held <= bound, "the engine holds {held} bytes on stream {id}, and the client may still send {window}");
        }
    }

    /// Delivers everything, lets every handler finish and release what it holds, and
    /// checks that the client got back all of its connection window.
    fn quiesce(&mut self) {
        self.deliver(0);
        for _ in 0..6 {
            self.engine.drain(&mut self.conn);
            self.engine.release_all_capacity(&mut self.conn);
            for id in self.engine.live.clone() {
                let _ = self.conn.send_trailers(id, ResponseStatus::OK, []);
                self.engine.release_stream(&mut self.conn, id);
            }
            self.invariants();
            self.transmit();
        }
        if self.conn.active_streams() == 0 {
            assert_eq!(
                self.conn.partial_message_bytes(),
                0,
                "partly received bytes counted with no stream left"
            );
        }
        if !self.desynced && !self.conn.is_closed() && !self.conn.wants_transmit() {
            // Nothing is held any more, so at most half the window may be unannounced.
            let target = i64::from(self.config.initial_connection_window);
            assert!(
                self.recv_conn >= target / 2,
                "connection credit leaked: the client may send {} of {target}",
                self.recv_conn
            );
        }
    }
}

// ----- seeds -----

fn frame_bytes(kind: Kind, f: u8, id: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    FrameHeader::encode(payload.len(), kind, f, StreamId(id), &mut v);
    v.extend_from_slice(payload);
    v
}

fn request_block(encoder: &mut Encoder, path: &[u8]) -> Vec<u8> {
    let mut block = BytesMut::new();
    encoder.begin_block(&mut block);
    for (name, value) in [
        (&b":method"[..], &b"POST"[..]),
        (b":scheme", b"http"),
        (b":path", path),
        (b":authority", b"localhost"),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
        (b"grpc-timeout", b"100m"),
    ] {
        encoder.encode_field(name, value, Indexing::Incremental, &mut block);
    }
    block.to_vec()
}

fn grpc_framed(messages: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    for m in messages {
        v.push(0);
        v.extend_from_slice(&(m.len() as u32).to_be_bytes());
        v.extend_from_slice(m);
    }
    v
}

/// Small valid inputs for every target, written to `seeds/<target>/<name>` by the
/// `make_seeds` binary and replayed by the codec's tests.
pub fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let mut seeds = Vec::new();

    // frame_parser: one of each frame type, then a unary request's frames.
    let mut encoder = Encoder::new();
    let block = request_block(&mut encoder, b"/helloworld.Greeter/SayHello");
    let mut each = Vec::new();
    Settings {
        max_concurrent_streams: Some(100),
        initial_window_size: Some(1 << 20),
        ..Settings::default()
    }
    .encode(&mut each);
    Settings::ACK.encode(&mut each);
    Ping {
        ack: false,
        payload: *b"12345678",
    }
    .encode(&mut each);
    GoAway::encode(StreamId(7), Reason::ENHANCE_YOUR_CALM, b"calm", &mut each);
    WindowUpdate {
        stream_id: StreamId(1),
        increment: 1000,
    }
    .encode(&mut each);
    Reset {
        stream_id: StreamId(3),
        reason: Reason::CANCEL,
    }
    .encode(&mut each);
    each.extend(frame_bytes(
        Kind::Data,
        flags::PADDED | flags::END_STREAM,
        1,
        b"\x03helloPPP",
    ));
    each.extend(frame_bytes(
        Kind::Headers,
        flags::PADDED | flags::PRIORITY,
        5,
        b"\x02\x80\x00\x00\x03\x0fab\x00\x00",
    ));
    each.extend(frame_bytes(
        Kind::Continuation,
        flags::END_HEADERS,
        5,
        b"cd",
    ));
    each.extend(frame_bytes(Kind::Priority, 0, 9, b"\x00\x00\x00\x01\x10"));
    each.extend(frame_bytes(
        Kind::PushPromise,
        flags::END_HEADERS,
        2,
        b"\x00\x00\x00\x04",
    ));
    each.extend(frame_bytes(Kind::Unknown(0xfa), 0xff, 9, b"ext"));
    seeds.push(("frame_parser", "each_type", each));
    let mut unary = Vec::new();
    unary.extend(frame_bytes(Kind::Headers, flags::END_HEADERS, 1, &block));
    unary.extend(frame_bytes(
        Kind::Data,
        flags::END_STREAM,
        1,
        &grpc_framed(&[b"\x0a\x05world"]),
    ));
    seeds.push(("frame_parser", "unary_request", unary));

    // hpack_decoder: blocks from an encoder with a dynamic table in use, a limit change,
    // and a block opening with the size update it requires.
    let mut hp = Writer::default();
    let mut encoder = Encoder::new();
    for path in [&b"/a.B/C"[..], b"/a.B/D", b"/helloworld.Greeter/SayHello"] {
        let block = request_block(&mut encoder, path);
        hp.u8(0x11).short_bytes(&block);
    }
    hp.u8(0x00).u16(256);
    let mut block = BytesMut::new();
    encoder.update_max_size(256);
    encoder.begin_block(&mut block);
    encoder.encode_field(b"x-meta", b"value", Indexing::Incremental, &mut block);
    encoder.encode_field(b"x-secret", b"token", Indexing::Never, &mut block);
    hp.u8(0x01).short_bytes(&block);
    seeds.push(("hpack_decoder", "requests_and_resize", hp.0));

    // grpc_message: messages cut at awkward places, with and without a small limit.
    let stream = grpc_framed(&[b"", b"hello", &[7; 40], b"x"]);
    let mut gm = Writer::default();
    gm.u8(0).u8(4).u8(3).u8(1).u8(9).u8(30).bytes(&stream);
    seeds.push(("grpc_message", "cut_messages", gm.0));
    let mut gm = Writer::default();
    let mut stream = grpc_framed(&[b"small", &[1; 100]]);
    stream[PREFIX_LEN + 5] = 1;
    gm.u8(0x21).u8(1).u8(7).bytes(&stream);
    seeds.push(("grpc_message", "over_limit", gm.0));

    // connection_bytes: a unary call and a streaming call with control frames.
    let mut encoder = Encoder::new();
    let mut cb = Writer::default();
    cb.u8(3).u8(0).u32(1);
    cb.bytes(&frame_bytes(
        Kind::Headers,
        flags::END_HEADERS,
        1,
        &request_block(&mut encoder, b"/a.B/C"),
    ));
    cb.bytes(&frame_bytes(
        Kind::Data,
        flags::END_STREAM,
        1,
        &grpc_framed(&[b"\x0a\x05world"]),
    ));
    seeds.push(("connection_bytes", "unary", cb.0));
    let mut encoder = Encoder::new();
    let mut cb = Writer::default();
    cb.u8(1).u8(1).u32(7);
    cb.bytes(&frame_bytes(
        Kind::Headers,
        0,
        3,
        &request_block(&mut encoder, b"/a.B/Stream"),
    ));
    cb.bytes(&frame_bytes(Kind::Continuation, flags::END_HEADERS, 3, &[]));
    cb.bytes(&frame_bytes(
        Kind::Data,
        0,
        3,
        &grpc_framed(&[b"one", b"two"])[..7],
    ));
    cb.bytes(&frame_bytes(Kind::Ping, 0, 0, b"pingpong"));
    cb.bytes(&frame_bytes(
        Kind::Data,
        0,
        3,
        &grpc_framed(&[b"one", b"two"])[7..],
    ));
    cb.bytes(&frame_bytes(
        Kind::WindowUpdate,
        0,
        0,
        &100_000u32.to_be_bytes(),
    ));
    cb.bytes(&frame_bytes(Kind::Settings, flags::ACK, 0, &[]));
    cb.bytes(&frame_bytes(
        Kind::Reset,
        0,
        3,
        &Reason::CANCEL.0.to_be_bytes(),
    ));
    seeds.push(("connection_bytes", "stream_then_reset", cb.0));

    // connection_ops: whole exchanges.
    let handshake = [
        Op::Settings { params: vec![] },
        Op::Deliver { len: 0 },
        Op::Transmit,
        Op::SettingsAck,
        Op::Deliver { len: 0 },
    ];
    let unary = [
        &handshake[..],
        &[
            Op::Request {
                stream: 1,
                end_stream: false,
                extra: vec![],
            },
            Op::Messages {
                stream: 1,
                messages: vec![(0, 10)],
                end_stream: true,
                pad: None,
                frame_len: 0,
            },
            Op::Deliver { len: 0 },
            Op::Events,
            Op::SendHeaders {
                stream: 0,
                metadata: vec![Field::known(11, 20)],
            },
            Op::SendMessage {
                stream: 0,
                len: 12,
                compressed: false,
            },
            Op::SendTrailers {
                stream: 0,
                code: 0,
                message: vec![],
                details: false,
                metadata: vec![],
            },
            Op::ReleaseCapacity { stream: 0, len: 0 },
            Op::ReleaseStream { stream: 0 },
            Op::Transmit,
        ],
    ]
    .concat();
    seeds.push(("connection_ops", "unary", ops_input(0, &unary)));
    let flow = [
        &handshake[..],
        &[
            Op::Settings {
                params: vec![(4, 100), (5, 20_000)],
            },
            Op::Request {
                stream: 128,
                end_stream: false,
                extra: vec![Field::known(7, 14)],
            },
            Op::Deliver { len: 7 },
            Op::Deliver { len: 0 },
            Op::Events,
            Op::SendMessage {
                stream: 0,
                len: 1000,
                compressed: false,
            },
            Op::Transmit,
            Op::WindowUpdate {
                stream: 192,
                increment: 2000,
            },
            Op::WindowUpdate {
                stream: 244,
                increment: 2000,
            },
            Op::Messages {
                stream: 192,
                messages: vec![(1, 300), (0, 5)],
                end_stream: false,
                pad: Some(3),
                frame_len: 100,
            },
            Op::Deliver { len: 0 },
            Op::Events,
            Op::Transmit,
            Op::SendTrailers {
                stream: 0,
                code: 3,
                message: b"bad \xff".to_vec(),
                details: true,
                metadata: vec![Field::known(12, 18)],
            },
            Op::Transmit,
            Op::Ping {
                ack: false,
                payload: 9,
            },
            Op::Priority {
                stream: 5,
                dependency: 1,
                weight: 7,
            },
            Op::Deliver { len: 0 },
            Op::Transmit,
        ],
    ]
    .concat();
    seeds.push(("connection_ops", "flow_control", ops_input(0, &flow)));
    let shutdown = [
        &handshake[..],
        &[
            Op::Headers {
                stream: 3,
                fields: vec![Field::known(0, 0), Field::known(1, 2)],
                end_stream: true,
                end_headers: false,
                pad: None,
                priority: None,
            },
            Op::Continuation {
                stream: 3,
                fields: vec![Field::known(2, 5), Field::known(4, 8)],
                end_headers: true,
            },
            Op::Request {
                stream: 5,
                end_stream: false,
                extra: vec![],
            },
            Op::Deliver { len: 0 },
            Op::Events,
            Op::GoAwayCmd,
            Op::Transmit,
            Op::Ping {
                ack: true,
                payload: u64::from_be_bytes(*b"ringdrn\0"),
            },
            Op::Reset {
                stream: 5,
                reason: Reason::CANCEL.0,
            },
            Op::Request {
                stream: 7,
                end_stream: true,
                extra: vec![],
            },
            Op::Deliver { len: 0 },
            Op::Events,
            Op::Advance { millis: 20_000 },
            Op::Transmit,
        ],
    ]
    .concat();
    seeds.push((
        "connection_ops",
        "continuation_and_shutdown",
        ops_input(1, &shutdown),
    ));
    seeds
}

/// Inputs for bugs found while writing the harness rather than by the fuzzer, kept as
/// regressions; written to `regressions/<target>/<name>` by `make_seeds`.
pub fn constructed_regressions() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let handshake = [
        Op::Settings { params: vec![] },
        Op::Deliver { len: 0 },
        Op::Transmit,
        Op::SettingsAck,
        Op::Deliver { len: 0 },
    ];
    let mut found = Vec::new();

    // A graceful shutdown announces stream 1 as the last; a stream the client opens
    // after that is ignored, yet a connection error then names it in a second GOAWAY.
    let goaway = [
        &handshake[..],
        &[
            Op::Request {
                stream: 128,
                end_stream: false,
                extra: vec![],
            },
            Op::Deliver { len: 0 },
            Op::Events,
            Op::GoAwayCmd,
            Op::Transmit,
            Op::Ping {
                ack: true,
                payload: u64::from_be_bytes(*b"ringdrn\0"),
            },
            Op::Deliver { len: 0 },
            Op::Transmit,
            Op::Request {
                stream: 128,
                end_stream: false,
                extra: vec![],
            },
            Op::Deliver { len: 0 },
            Op::Abort,
            Op::Transmit,
        ],
    ]
    .concat();
    found.push((
        "connection_ops",
        "goaway_last_stream_id_increases",
        ops_input(0, &goaway),
    ));

    // A handler that never releases its messages: messages that straddle DATA frames
    // hold only their last frame's share of the window, so the client never stalls.
    let mut held = handshake.to_vec();
    held.extend([
        Op::Request {
            stream: 0,
            end_stream: false,
            extra: vec![],
        },
        Op::Deliver { len: 0 },
        Op::Events,
    ]);
    for _ in 0..12 {
        held.extend([
            Op::Messages {
                stream: 0,
                messages: vec![(0, 1000); 8],
                end_stream: false,
                pad: None,
                frame_len: 700,
            },
            Op::Deliver { len: 0 },
            Op::Events,
            Op::Transmit,
        ]);
    }
    found.push((
        "connection_ops",
        "straddling_messages_escape_the_window",
        ops_input(1, &held),
    ));
    found
}
