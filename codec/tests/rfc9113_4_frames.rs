//! RFC 9113 §4: frame format, frame size, and field block compression state.

mod support;

use bytes::Bytes;
use ringrpc_codec::frame::{flags, Kind, StreamId};
use ringrpc_codec::server::{Config, Event, RequestHead};
use ringrpc_codec::Reason;
use support::*;

// ----- §4.1 Frame Format -----

/// "Implementations MUST ignore and discard frames of unknown types."
#[test]
fn unknown_frame_types_are_ignored() {
    let mut c = Client::connected(Config::default());
    c.send_bytes(&raw(Kind::Unknown(0xfa), 0xff, 0, b"on the connection"));
    c.send_bytes(&raw(Kind::Unknown(0x0b), 0, 7, b"on an idle stream"));
    c.send_bytes(&raw(Kind::Unknown(0xff), 0, 2, b""));
    c.expect_silence();
    c.request(1, "/a.B/C", false);
    c.send_bytes(&raw(Kind::Unknown(0x10), 0, 1, b"on an open stream"));
    c.message(1, b"x", true);
    let events = c.events();
    assert!(
        matches!(
            &events[..],
            [
                Event::Request { .. },
                Event::Message { .. },
                Event::EndOfStream { .. }
            ]
        ),
        "{events:?}"
    );
    c.respond(1, b"y");
    let _ = c.transmit();
    c.assert_serves(3);
}

/// "However, extension frames that appear in the middle of a field block (Section
/// 4.3) are not permitted; these MUST be treated as a connection error (Section
/// 5.4.1) of type PROTOCOL_ERROR." (§5.5)
#[test]
fn unknown_frame_inside_header_block_is_connection_protocol_error() {
    let mut c = Client::connected(Config::default());
    let block = c.block(&grpc_request("/a.B/C"));
    let (first, rest) = block.split_at(4);
    c.send_bytes(&headers_frame(1, first, flags::END_STREAM));
    c.send_bytes(&raw(Kind::Unknown(0xfa), 0, 0, b"ext"));
    c.send_bytes(&continuation(1, rest, true));
    c.expect_goaway(Reason::PROTOCOL_ERROR);
}

/// "Unused flags MUST be ignored on receipt and MUST be left unset (0x00) when
/// sending."
#[test]
fn unused_flags_are_ignored() {
    let mut c = Client::connected(Config::default());
    let block = c.block(&grpc_request("/a.B/C"));
    // HEADERS defines 0x01, 0x04, 0x08, 0x20; DATA 0x01, 0x08; PING 0x01.
    c.send_bytes(&headers_frame(1, &block, flags::END_HEADERS | 0xd2));
    c.send_bytes(&raw(
        Kind::Data,
        flags::END_STREAM | 0xf6,
        1,
        &grpc_message(b"hi"),
    ));
    c.send_bytes(&raw(Kind::Ping, 0xfe, 0, b"flagsxyz"));
    let events = c.events();
    assert!(
        matches!(
            &events[..],
            [
                Event::Request { .. },
                Event::Message { .. },
                Event::EndOfStream { .. }
            ]
        ),
        "{events:?}"
    );
    let out = c.transmit();
    assert!(
        out.contains(&Out::Ping(ringrpc_codec::frame::Ping {
            ack: true,
            payload: *b"flagsxyz"
        })),
        "{out:?}"
    );
    c.respond(1, b"ok");
    for (head, _) in std::mem::take(&mut c.raw_output) {
        let allowed = match head.kind {
            Kind::Headers => flags::END_STREAM | flags::END_HEADERS,
            Kind::Data => flags::END_STREAM,
            Kind::Ping | Kind::Settings => flags::ACK,
            _ => 0,
        };
        assert_eq!(
            head.flags & !allowed,
            0,
            "server set an unused flag on {head:?}"
        );
    }
}

/// "Reserved: A reserved 1-bit field.  The semantics of this bit are undefined, and
/// the bit MUST remain unset (0x00) when sending and MUST be ignored when
/// receiving."
#[test]
fn reserved_bit_in_stream_identifier_is_ignored() {
    let mut c = Client::connected(Config::default());
    let block = c.block(&grpc_request("/a.B/C"));
    c.send_bytes(&raw_with_length(
        block.len() as u32,
        Kind::Headers,
        flags::END_HEADERS,
        0x8000_0001,
        &block,
    ));
    let body = grpc_message(b"r");
    c.send_bytes(&raw_with_length(
        body.len() as u32,
        Kind::Data,
        flags::END_STREAM,
        0x8000_0001,
        &body,
    ));
    let events = c.events();
    let [Event::Request { id, .. }, Event::Message { .. }, Event::EndOfStream { .. }] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!(*id, StreamId(1));
    // The reserved bit of WINDOW_UPDATE's increment field is ignored as well (§6.9).
    c.send_bytes(&raw(
        Kind::WindowUpdate,
        0,
        0,
        &0x8000_0001u32.to_be_bytes(),
    ));
    c.respond(1, b"r");
    let out = c.transmit();
    assert_eq!(frames_on(&out, 1).len(), 3, "{out:?}");
    for (head, _) in &c.raw_output {
        assert_eq!(head.stream_id.0 & 0x8000_0000, 0);
    }
}

/// "All frames begin with a fixed 9-octet header followed by a variable-length frame
/// payload." Where the transport cuts the byte stream must not matter.
#[test]
fn frames_split_at_every_byte_boundary_are_reassembled() {
    let mut template = Client::connected(Config::default());
    let mut bytes = Vec::new();
    bytes.extend(headers_frame(
        1,
        &template.block(&grpc_request("/a.B/C")),
        flags::END_HEADERS,
    ));
    bytes.extend(data(1, &grpc_message(b"first"), false));
    bytes.extend(data(1, &[0, 0, 0], false));
    bytes.extend(data(1, &[0, 6, b'p', b'r', b'e'], false));
    bytes.extend(padded_data(1, b"fix", 4, true));
    bytes.extend(ping(*b"pingpong"));
    bytes.extend(window_update(0, 1000));

    let run = |cuts: &[usize]| {
        let mut c = Client::connected(Config::default());
        let mut start = 0;
        for &cut in cuts.iter().chain(std::iter::once(&bytes.len())) {
            c.send_bytes(&bytes[start..cut]);
            start = cut;
        }
        assert_eq!(c.unconsumed(), 0);
        (c.events(), c.transmit())
    };
    let (events, out) = run(&[]);
    let messages: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Message { message, .. } => Some(message.data.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        messages,
        [Bytes::from_static(b"first"), Bytes::from_static(b"prefix")]
    );
    assert!(
        matches!(events.last(), Some(Event::EndOfStream { .. })),
        "{events:?}"
    );
    assert!(
        out.iter().any(|f| matches!(f, Out::Ping(p) if p.ack)),
        "{out:?}"
    );
    for cut in 1..bytes.len() {
        assert_eq!(
            run(&[cut]),
            (events.clone(), out.clone()),
            "cut at byte {cut}"
        );
    }
    let every_byte: Vec<usize> = (1..bytes.len()).collect();
    assert_eq!(run(&every_byte), (events, out), "one byte per read");
}

// ----- §4.2 Frame Size -----

/// "An endpoint MUST send an error code of FRAME_SIZE_ERROR if a frame exceeds the
/// size defined in SETTINGS_MAX_FRAME_SIZE" — decided from the frame header alone,
/// so nothing of the oversized payload is waited for or buffered.
#[test]
fn frame_larger_than_max_frame_size_is_connection_frame_size_error() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", false);
    let _ = c.events();
    c.send_bytes(&raw_with_length(16_385, Kind::Data, 0, 1, &[]));
    assert_eq!(c.expect_goaway(Reason::FRAME_SIZE_ERROR), 1);
    assert_eq!(c.unconsumed(), 0);
}

/// "A frame size error in a frame that could alter the state of the entire
/// connection MUST be treated as a connection error (Section 5.4.1); this includes
/// any frame carrying a field block (Section 4.3)"
#[test]
fn headers_larger_than_max_frame_size_is_connection_frame_size_error() {
    let mut c = Client::connected(Config::default());
    c.send_bytes(&raw_with_length(
        16_385,
        Kind::Headers,
        flags::END_HEADERS,
        1,
        &[0; 100],
    ));
    c.expect_goaway(Reason::FRAME_SIZE_ERROR);
}

/// "All implementations MUST be capable of receiving and minimally processing frames
/// up to 2^14 octets in length, plus the 9-octet frame header (Section 4.1)."
#[test]
fn frame_of_exactly_max_frame_size_is_accepted() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", false);
    let body = vec![7u8; 16_384 - 5];
    c.message(1, &body, true);
    let events = c.events();
    let [Event::Request { .. }, Event::Message { message, .. }, Event::EndOfStream { .. }] =
        &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!(message.data.len(), 16_379);
    c.send_bytes(&raw(Kind::Unknown(0xfa), 0, 0, &[0; 16_384]));
    c.send_bytes(&ping(*b"stillok!"));
    assert!(c
        .transmit()
        .iter()
        .any(|f| matches!(f, Out::Ping(p) if p.ack)));
}

/// "An endpoint MUST send an error code of FRAME_SIZE_ERROR if a frame ... is too
/// small to contain mandatory frame data": a padded DATA frame without room for its
/// Pad Length.
#[test]
fn padded_data_without_pad_length_is_frame_size_error() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", false);
    c.send_bytes(&raw(Kind::Data, flags::PADDED, 1, &[]));
    c.expect_goaway(Reason::FRAME_SIZE_ERROR);
}

// ----- §4.3 Field Section Compression and Decompression -----

/// "A decoding error in a field block MUST be treated as a connection error (Section
/// 5.4.1) of type COMPRESSION_ERROR."
#[test]
fn invalid_hpack_index_is_connection_compression_error() {
    let mut c = Client::connected(Config::default());
    // Indexed field 62: the first dynamic entry, of an empty table.
    c.send_bytes(&headers_frame(
        1,
        &[0x82, 0xbe],
        flags::END_HEADERS | flags::END_STREAM,
    ));
    assert_eq!(c.expect_goaway(Reason::COMPRESSION_ERROR), 1);
}

/// "A decoding error in a field block MUST be treated as a connection error (Section
/// 5.4.1) of type COMPRESSION_ERROR."
#[test]
fn truncated_hpack_literal_is_connection_compression_error() {
    let mut c = Client::connected(Config::default());
    // Literal without indexing, new name of length 10 with only 3 octets present.
    c.send_bytes(&headers_frame(
        1,
        &[0x00, 0x0a, b'a', b'b', b'c'],
        flags::END_HEADERS | flags::END_STREAM,
    ));
    c.expect_goaway(Reason::COMPRESSION_ERROR);
}

/// "A decoding error in a field block MUST be treated as a connection error (Section
/// 5.4.1) of type COMPRESSION_ERROR." — also for a block the server would discard.
#[test]
fn invalid_hpack_on_a_refused_stream_is_connection_compression_error() {
    let mut c = Client::connected(Config {
        max_concurrent_streams: 1,
        ..Config::default()
    });
    c.request(1, "/a.B/C", false);
    // Index 0 is never valid (RFC 7541 §6.1).
    c.send_bytes(&headers_frame(
        3,
        &[0x80],
        flags::END_HEADERS | flags::END_STREAM,
    ));
    c.expect_goaway(Reason::COMPRESSION_ERROR);
}

/// Fields a follow-up request takes from the dynamic table: encoded with incremental
/// indexing the first time, as one-octet references afterwards.
const SHARED: [(&str, &str); 2] = [
    ("x-tenant", "blue-team"),
    ("x-trace-id", "0af7651916cd43dd8448eb211c80319c"),
];

fn with_shared(path: &'static str) -> Vec<(&'static str, &'static str)> {
    let mut fields = grpc_request(path);
    fields.extend_from_slice(&SHARED);
    fields
}

/// The next request reuses every entry the rejected block added; it must decode to
/// the same fields.
fn assert_shared_fields_decode(c: &mut Client, id: u32) -> RequestHead {
    let block = c.block(&with_shared("/a.B/Shared"));
    // Literally, the shared fields alone take over 45 octets.
    assert!(
        block.len() < 30,
        "the shared fields are table references: {block:?}"
    );
    c.send_bytes(&headers_frame(
        id,
        &block,
        flags::END_HEADERS | flags::END_STREAM,
    ));
    let events: Vec<_> = c
        .events()
        .into_iter()
        .filter(|e| event_stream(e) == Some(StreamId(id)))
        .collect();
    let [Event::Request { head, .. }, Event::EndOfStream { .. }] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(&head.path[..], b"/a.B/Shared");
    for (name, value) in SHARED {
        assert!(
            head.metadata.iter().any(|(n, v)| n == name && v == value),
            "{name} in {:?}",
            head.metadata
        );
    }
    head.clone()
}

/// "An endpoint receiving HEADERS, PUSH_PROMISE, or CONTINUATION frames needs to
/// reassemble field blocks and perform decompression even if the frames are to be
/// discarded.  A receiver MUST terminate the connection with a connection error
/// (Section 5.4.1) of type COMPRESSION_ERROR if it does not decompress a field
/// block." — a block refused for concurrency is still decompressed.
#[test]
fn hpack_state_kept_after_refused_stream() {
    let mut c = Client::connected(Config {
        max_concurrent_streams: 1,
        ..Config::default()
    });
    c.request(1, "/a.B/C", true);
    let _ = c.events();
    let block = c.block(&with_shared("/a.B/Shared"));
    c.send_bytes(&headers_frame(
        3,
        &block,
        flags::END_HEADERS | flags::END_STREAM,
    ));
    c.expect_reset(3, Reason::REFUSED_STREAM);
    c.respond(1, b"done");
    let _ = c.transmit();
    assert_shared_fields_decode(&mut c, 5);
}

/// "An endpoint receiving HEADERS, PUSH_PROMISE, or CONTINUATION frames needs to
/// reassemble field blocks and perform decompression even if the frames are to be
/// discarded." — a malformed request's block, split over CONTINUATION frames.
#[test]
fn hpack_state_kept_after_malformed_request() {
    let mut c = Client::connected(Config::default());
    let mut fields = with_shared("/a.B/Shared");
    fields.insert(4, ("X-Upper", "case"));
    let block = c.block(&fields);
    let (a, b) = block.split_at(block.len() / 2);
    c.send_bytes(&headers_frame(1, a, flags::END_STREAM));
    c.send_bytes(&continuation(1, b, true));
    c.expect_reset(1, Reason::PROTOCOL_ERROR);
    assert!(
        c.events().is_empty(),
        "a malformed request never reaches the engine"
    );
    assert_shared_fields_decode(&mut c, 3);
}

/// "An endpoint MUST minimally process and then discard any frames it receives in
/// this state.  This means updating header compression state for HEADERS and
/// PUSH_PROMISE frames." (§5.1, closed after sending RST_STREAM)
#[test]
fn hpack_state_kept_after_trailers_on_a_stream_we_reset() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", false);
    let _ = c.events();
    c.conn.reset(StreamId(1), Reason::CANCEL).unwrap();
    c.conn.release_stream(StreamId(1));
    c.expect_reset(1, Reason::CANCEL);
    let trailers = c.block(&SHARED);
    c.send_bytes(&headers_frame(
        1,
        &trailers,
        flags::END_HEADERS | flags::END_STREAM,
    ));
    c.expect_silence();
    assert_shared_fields_decode(&mut c, 3);
}

/// "An endpoint receiving HEADERS ... needs to ... perform decompression even if the
/// frames are to be discarded" — a header list over our limit is decoded in full.
#[test]
fn hpack_state_kept_after_oversized_header_list() {
    let mut c = Client::connected(Config {
        max_header_list_size: 500,
        ..Config::default()
    });
    let mut fields = with_shared("/a.B/Shared");
    let big = "v".repeat(300);
    fields.push(("x-big", &big));
    let block = c.block(&fields);
    c.send_bytes(&headers_frame(
        1,
        &block,
        flags::END_HEADERS | flags::END_STREAM,
    ));
    let out = c.transmit();
    let [Out::Headers {
        id: 1,
        fields,
        end_stream: true,
    }] = &out[..]
    else {
        panic!("{out:?}")
    };
    assert_eq!(field(fields, "grpc-status"), Some("8"));
    assert_shared_fields_decode(&mut c, 3);
}

/// "An endpoint receiving HEADERS ... needs to ... perform decompression even if the
/// frames are to be discarded." RFC 7540 made a HEADERS frame whose priority block
/// names its own stream a stream error; the block it carries still has to be
/// decoded.
#[test]
fn hpack_state_kept_after_headers_depending_on_itself() {
    let mut c = Client::connected(Config::default());
    let block = c.block(&with_shared("/a.B/Shared"));
    let mut payload = vec![0, 0, 0, 1, 15];
    payload.extend_from_slice(&block);
    c.send_bytes(&headers_frame(
        1,
        &payload,
        flags::END_HEADERS | flags::END_STREAM | flags::PRIORITY,
    ));
    c.expect_reset(1, Reason::PROTOCOL_ERROR);
    assert_shared_fields_decode(&mut c, 3);
}
