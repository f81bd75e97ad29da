//! RFC 9113 §6: the rules of each frame type.

mod support;

use bytes::Bytes;
use ringrpc_codec::error::{Error, Initiator};
use ringrpc_codec::frame::{flags, Kind, Ping, StreamId};
use ringrpc_codec::server::{Config, Event};
use ringrpc_codec::Reason;
use support::*;

// ----- §6.1 DATA -----

/// "If a DATA frame is received whose Stream Identifier field is 0x00, the recipient
/// MUST respond with a connection error (Section 5.4.1) of type PROTOCOL_ERROR."
#[test]
fn data_on_stream_zero_is_connection_protocol_error() {
    let mut c = Client::connected(Config::default());
    c.send_bytes(&data(0, b"zero", false));
    c.expect_goaway(Reason::PROTOCOL_ERROR);
}

/// "If the length of the padding is the length of the frame payload or greater, the
/// recipient MUST treat this as a connection error (Section 5.4.1) of type
/// PROTOCOL_ERROR."
#[test]
fn data_padding_as_long_as_the_payload_is_connection_protocol_error() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", false);
    // Payload of 4 octets: Pad Length 4 and three more, so the padding would be 4.
    c.send_bytes(&raw(Kind::Data, flags::PADDED, 1, &[4, 0, 0, 0]));
    assert_eq!(c.expect_goaway(Reason::PROTOCOL_ERROR), 1);
}

/// "Padding octets MUST be set to zero when sending. A receiver is not obligated to
/// verify padding" — and never delivers it: the data is what remains.
#[test]
fn padded_data_is_delivered_without_its_padding() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", false);
    c.send_bytes(&padded_data(1, &grpc_message(b"padded"), 200, false));
    // The whole payload padding: legal, carries nothing.
    c.send_bytes(&raw(
        Kind::Data,
        flags::PADDED | flags::END_STREAM,
        1,
        &[3, 0, 0, 0],
    ));
    let events = c.events();
    let [Event::Request { .. }, Event::Message { message, .. }, Event::EndOfStream { .. }] =
        &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!(&message.data[..], b"padded");
}

// ----- §6.2 HEADERS -----

/// "If a HEADERS frame is received whose Stream Identifier field is 0x00, the
/// recipient MUST respond with a connection error (Section 5.4.1) of type
/// PROTOCOL_ERROR."
#[test]
fn headers_on_stream_zero_is_connection_protocol_error() {
    let mut c = Client::connected(Config::default());
    let block = c.block(&grpc_request("/a.B/C"));
    c.send_bytes(&headers_frame(0, &block, flags::END_HEADERS));
    c.expect_goaway(Reason::PROTOCOL_ERROR);
}

/// "If the length of the padding is the length of the frame payload or greater, the
/// recipient MUST treat this as a connection error (Section 5.4.1) of type
/// PROTOCOL_ERROR."
#[test]
fn headers_padding_longer_than_payload_is_connection_protocol_error() {
    let mut c = Client::connected(Config::default());
    let block = c.block(&grpc_request("/a.B/C"));
    let mut payload = vec![(block.len() + 1) as u8];
    payload.extend_from_slice(&block);
    c.send_bytes(&headers_frame(
        1,
        &payload,
        flags::END_HEADERS | flags::PADDED,
    ));
    c.expect_goaway(Reason::PROTOCOL_ERROR);
}

/// "PADDED (0x08): When set, the PADDED flag indicates that the Pad Length field and
/// any padding that it describes are present." and "PRIORITY (0x20): When set, the
/// PRIORITY flag indicates that the Exclusive, Stream Dependency, and Weight fields are
/// present." Both are stripped before the field block is decoded.
#[test]
fn padded_headers_with_priority_are_decoded() {
    let mut c = Client::connected(Config::default());
    let block = c.block(&grpc_request("/pkg.Svc/Padded"));
    let mut payload = vec![10, 0x80, 0, 0, 0, 255];
    payload.extend_from_slice(&block);
    payload.extend_from_slice(&[0; 10]);
    c.send_bytes(&headers_frame(
        1,
        &payload,
        flags::END_HEADERS | flags::END_STREAM | flags::PADDED | flags::PRIORITY,
    ));
    let events = c.events();
    let [Event::Request { head, .. }, Event::EndOfStream { .. }] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(&head.path[..], b"/pkg.Svc/Padded");
}

/// "An endpoint MUST send an error code of FRAME_SIZE_ERROR if a frame ... is too
/// small to contain mandatory frame data" (§4.2), with "a generic error code (such as
/// PROTOCOL_ERROR ...)" allowed in its place (§5.4); for a frame carrying a field
/// block it is a connection error.
#[test]
fn headers_too_short_for_its_priority_block_is_connection_error() {
    let mut c = Client::connected(Config::default());
    c.send_bytes(&headers_frame(
        1,
        &[0, 0, 0],
        flags::END_HEADERS | flags::PRIORITY,
    ));
    let out = c.transmit();
    assert!(
        matches!(
            goaway_reason(&out),
            Some(Reason::FRAME_SIZE_ERROR | Reason::PROTOCOL_ERROR)
        ),
        "{out:?}"
    );
    assert!(c.conn.is_closed());
}

// ----- §6.3 PRIORITY -----

/// "If a PRIORITY frame is received with a stream identifier of 0x00, the recipient
/// MUST respond with a connection error (Section 5.4.1) of type PROTOCOL_ERROR."
#[test]
fn priority_on_stream_zero_is_connection_protocol_error() {
    let mut c = Client::connected(Config::default());
    c.send_bytes(&priority(0, 1, 16));
    c.expect_goaway(Reason::PROTOCOL_ERROR);
}

/// "A PRIORITY frame with a length other than 5 octets MUST be treated as a stream
/// error (Section 5.4.2) of type FRAME_SIZE_ERROR."
#[test]
fn priority_with_wrong_length_is_stream_frame_size_error() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", false);
    let _ = c.events();
    c.send_bytes(&raw(Kind::Priority, 0, 1, &[0, 0, 0, 3]));
    assert_eq!(
        c.events(),
        [Event::Reset {
            id: StreamId(1),
            reason: Reason::FRAME_SIZE_ERROR,
            initiator: Initiator::Local
        }]
    );
    c.expect_reset(1, Reason::FRAME_SIZE_ERROR);
    c.conn.release_stream(StreamId(1));
    c.assert_serves(3);
}

/// "Sending or receiving a PRIORITY frame does not affect the state of any stream
/// (Section 5.1)."
#[test]
fn priority_on_open_stream_changes_nothing() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", false);
    let _ = c.events();
    c.send_bytes(&priority(1, 0, 255));
    c.send_bytes(&priority(1, 0x8000_0003, 1));
    c.expect_silence();
    c.message(1, b"still open", true);
    assert_eq!(c.events().len(), 2);
}

/// "A PRIORITY frame cannot be sent between consecutive frames that comprise a single
/// field block (Section 4.3)." — "A receiver MUST treat the receipt of any other type
/// of frame or a frame on a different stream as a connection error (Section 5.4.1) of
/// type PROTOCOL_ERROR." (§6.2)
#[test]
fn priority_inside_header_block_is_connection_protocol_error() {
    let mut c = Client::connected(Config::default());
    let block = c.block(&grpc_request("/a.B/C"));
    let (a, b) = block.split_at(3);
    c.send_bytes(&headers_frame(1, a, 0));
    c.send_bytes(&priority(1, 0, 16));
    c.send_bytes(&continuation(1, b, true));
    c.expect_goaway(Reason::PROTOCOL_ERROR);
}

// ----- §6.4 RST_STREAM -----

/// "If a RST_STREAM frame is received with a stream identifier of 0x00, the recipient
/// MUST treat this as a connection error (Section 5.4.1) of type PROTOCOL_ERROR."
#[test]
fn rst_stream_on_stream_zero_is_connection_protocol_error() {
    let mut c = Client::connected(Config::default());
    c.send_bytes(&rst(0, Reason::CANCEL));
    c.expect_goaway(Reason::PROTOCOL_ERROR);
}

/// "A RST_STREAM frame with a length other than 4 octets MUST be treated as a
/// connection error (Section 5.4.1) of type FRAME_SIZE_ERROR."
#[test]
fn rst_stream_with_wrong_length_is_connection_frame_size_error() {
    for payload in [&[0, 0, 8][..], &[0, 0, 0, 8, 0]] {
        let mut c = Client::connected(Config::default());
        c.request(1, "/a.B/C", false);
        c.send_bytes(&raw(Kind::Reset, 0, 1, payload));
        c.expect_goaway(Reason::FRAME_SIZE_ERROR);
    }
}

/// "The RST_STREAM frame fully terminates the referenced stream and causes it to enter
/// the "closed" state.  After receiving a RST_STREAM on a stream, the receiver MUST NOT
/// send additional frames for that stream, except for PRIORITY."
#[test]
fn rst_stream_from_client_cancels_the_call_and_silences_the_stream() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", false);
    let _ = c.events();
    c.conn.send_headers(StreamId(1), []).unwrap();
    c.conn
        .send_message(StreamId(1), Bytes::from_static(b"queued"), false)
        .unwrap();
    c.send_bytes(&rst(1, Reason::CANCEL));
    assert_eq!(
        c.events(),
        [Event::Reset {
            id: StreamId(1),
            reason: Reason::CANCEL,
            initiator: Initiator::Remote
        }]
    );
    assert!(c
        .conn
        .send_message(StreamId(1), Bytes::from_static(b"more"), false)
        .is_err());
    assert!(
        c.conn.reset(StreamId(1), Reason::CANCEL).is_err(),
        "no RST_STREAM in answer to RST_STREAM"
    );
    c.conn.release_stream(StreamId(1));
    let out = c.transmit();
    assert!(out.is_empty(), "{out:?}");
}

// ----- §6.5 SETTINGS -----

/// "If an endpoint receives a SETTINGS frame whose Stream Identifier field is anything
/// other than 0x00, the endpoint MUST respond with a connection error (Section 5.4.1)
/// of type PROTOCOL_ERROR."
#[test]
fn settings_on_a_stream_is_connection_protocol_error() {
    let mut c = Client::connected(Config::default());
    c.send_bytes(&raw(Kind::Settings, 0, 1, &[]));
    c.expect_goaway(Reason::PROTOCOL_ERROR);
}

/// "A SETTINGS frame with a length other than a multiple of 6 octets MUST be treated
/// as a connection error (Section 5.4.1) of type FRAME_SIZE_ERROR."
#[test]
fn settings_length_not_multiple_of_6_is_connection_frame_size_error() {
    let mut c = Client::connected(Config::default());
    c.send_bytes(&raw(Kind::Settings, 0, 0, &[0, 3, 0, 0, 0, 100, 0]));
    c.expect_goaway(Reason::FRAME_SIZE_ERROR);
}

/// "Receipt of a SETTINGS frame with the ACK flag set and a length field value other
/// than 0 MUST be treated as a connection error (Section 5.4.1) of type
/// FRAME_SIZE_ERROR."
#[test]
fn settings_ack_with_payload_is_connection_frame_size_error() {
    let mut c = Client::connected(Config::default());
    c.send_bytes(&raw(Kind::Settings, flags::ACK, 0, &[0, 3, 0, 0, 0, 100]));
    c.expect_goaway(Reason::FRAME_SIZE_ERROR);
}

/// "Once all values have been processed, the recipient MUST immediately emit a
/// SETTINGS frame with the ACK flag set." and "An endpoint that receives a SETTINGS
/// frame with any unknown or unsupported identifier MUST ignore that setting."
#[test]
fn settings_are_acknowledged_and_unknown_ones_ignored() {
    let mut c = Client::connected(Config::default());
    c.send_bytes(&settings(&[
        (0x99, 12345),
        (MAX_CONCURRENT_STREAMS, 0),
        (ENABLE_PUSH, 0),
        (MAX_HEADER_LIST_SIZE, 100),
    ]));
    let out = c.transmit();
    assert!(matches!(&out[..], [Out::Settings(s)] if s.ack), "{out:?}");
    c.send_bytes(&settings(&[]));
    c.send_bytes(&settings(&[(ENABLE_PUSH, 1)]));
    let out = c.transmit();
    assert_eq!(
        out.iter()
            .filter(|f| matches!(f, Out::Settings(s) if s.ack))
            .count(),
        2,
        "{out:?}"
    );
    c.assert_serves(1);
}

/// "Any value other than 0 or 1 MUST be treated as a connection error (Section 5.4.1)
/// of type PROTOCOL_ERROR." (SETTINGS_ENABLE_PUSH)
#[test]
fn settings_enable_push_above_one_is_connection_protocol_error() {
    let mut c = Client::connected(Config::default());
    c.send_bytes(&settings(&[(ENABLE_PUSH, 2)]));
    c.expect_goaway(Reason::PROTOCOL_ERROR);
}

/// "Values above the maximum flow-control window size of 2^31-1 MUST be treated as a
/// connection error (Section 5.4.1) of type FLOW_CONTROL_ERROR."
#[test]
fn settings_initial_window_size_above_max_is_connection_flow_control_error() {
    let mut c = Client::connected(Config::default());
    c.send_bytes(&settings(&[(INITIAL_WINDOW_SIZE, 1 << 31)]));
    c.expect_goaway(Reason::FLOW_CONTROL_ERROR);
}

/// "The value advertised by an endpoint MUST be between this initial value and the
/// maximum allowed frame size (2^24-1 or 16,777,215 octets), inclusive.  Values
/// outside this range MUST be treated as a connection error (Section 5.4.1) of type
/// PROTOCOL_ERROR."
#[test]
fn settings_max_frame_size_out_of_range_is_connection_protocol_error() {
    for value in [16_383, 1 << 24, 0] {
        let mut c = Client::connected(Config::default());
        c.send_bytes(&settings(&[(MAX_FRAME_SIZE, value)]));
        c.expect_goaway(Reason::PROTOCOL_ERROR);
    }
    let mut c = Client::connected(Config::default());
    c.send_bytes(&settings(&[
        (MAX_FRAME_SIZE, 16_384),
        (MAX_FRAME_SIZE, (1 << 24) - 1),
    ]));
    assert!(matches!(&c.transmit()[..], [Out::Settings(s)] if s.ack));
}

/// "The values in the SETTINGS frame MUST be processed in the order they appear, with
/// no other frame processing between values." The last value of a setting wins.
#[test]
fn settings_values_are_processed_in_order() {
    let mut c = Client::connected(Config::default());
    c.send_bytes(&settings(&[
        (INITIAL_WINDOW_SIZE, 100_000),
        (MAX_FRAME_SIZE, 30_000),
        (MAX_FRAME_SIZE, 20_000),
        (INITIAL_WINDOW_SIZE, 50_000),
    ]));
    let _ = c.transmit();
    c.send_bytes(&window_update(0, 1 << 20));
    c.request(1, "/a.B/C", true);
    let _ = c.events();
    c.conn
        .send_message(StreamId(1), Bytes::from(vec![0; 99_995]), false)
        .unwrap();
    let out = c.transmit();
    let sizes: Vec<usize> = out
        .iter()
        .filter_map(|f| {
            if let Out::Data { payload, .. } = f {
                Some(payload.len())
            } else {
                None
            }
        })
        .collect();
    assert_eq!(sizes, [20_000, 20_000, 10_000]);
}

/// "SETTINGS_HEADER_TABLE_SIZE (0x01): This setting allows the sender to inform the
/// remote endpoint of the maximum size of the compression table used to decode field
/// blocks" — the server's encoder obeys it, announcing the new size at the start of
/// its next field block (§4.3.1).
#[test]
fn client_header_table_size_limits_the_server_encoder() {
    let mut c = Client::connected_with(Config::default(), &[(HEADER_TABLE_SIZE, 0)]);
    c.request(1, "/a.B/C", true);
    let _ = c.events();
    c.conn
        .send_headers(
            StreamId(1),
            [(
                Bytes::from_static(b"x-repeat"),
                Bytes::from_static(b"same value"),
            )],
        )
        .unwrap();
    c.respond(1, b"x");
    let out = c.transmit();
    assert!(
        matches!(out.first(), Some(Out::Headers { fields, .. }) if field(fields, "x-repeat") == Some("same value")),
        "{out:?}"
    );
    let (_, first_block) = c
        .raw_output
        .iter()
        .find(|(h, _)| h.kind == Kind::Headers)
        .unwrap();
    assert_eq!(
        first_block[0], 0x20,
        "dynamic table size update to 0 opens the block"
    );
}

// ----- §6.6 PUSH_PROMISE -----

/// "A client cannot push.  Thus, servers MUST treat the receipt of a PUSH_PROMISE
/// frame as a connection error (Section 5.4.1) of type PROTOCOL_ERROR." (§8.4)
#[test]
fn push_promise_from_client_is_connection_protocol_error() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", false);
    let mut payload = 2u32.to_be_bytes().to_vec();
    payload.extend_from_slice(&c.block(&grpc_request("/a.B/Pushed")));
    c.send_bytes(&raw(Kind::PushPromise, flags::END_HEADERS, 1, &payload));
    assert_eq!(c.expect_goaway(Reason::PROTOCOL_ERROR), 1);
}

// ----- §6.7 PING -----

/// "Receivers of a PING frame that does not include an ACK flag MUST send a PING frame
/// with the ACK flag set in response, with an identical frame payload."
#[test]
fn ping_is_answered_with_ack_and_the_same_payload() {
    let mut c = Client::connected(Config::default());
    c.send_bytes(&ping(*b"\x00\xffopaque"));
    assert_eq!(
        c.transmit(),
        [Out::Ping(Ping {
            ack: true,
            payload: *b"\x00\xffopaque"
        })]
    );
}

/// "An endpoint MUST NOT respond to PING frames containing this flag."
#[test]
fn ping_ack_is_not_answered() {
    let mut c = Client::connected(Config::default());
    c.send_bytes(&ping_ack(*b"unasked!"));
    c.expect_silence();
}

/// "PING responses SHOULD be given higher priority than any other frame."
#[test]
fn ping_answer_goes_out_before_queued_data() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", true);
    let _ = c.events();
    c.respond(1, b"response");
    c.send_bytes(&ping(*b"priority"));
    let out = c.transmit();
    assert!(
        matches!(out.first(), Some(Out::Ping(p)) if p.ack),
        "{out:?}"
    );
}

/// "If a PING frame is received with a Stream Identifier field value other than 0x00,
/// the recipient MUST respond with a connection error (Section 5.4.1) of type
/// PROTOCOL_ERROR."
#[test]
fn ping_on_a_stream_is_connection_protocol_error() {
    let mut c = Client::connected(Config::default());
    c.send_bytes(&raw(Kind::Ping, 0, 1, b"onstream"));
    c.expect_goaway(Reason::PROTOCOL_ERROR);
}

/// "Receipt of a PING frame with a length field value other than 8 MUST be treated as
/// a connection error (Section 5.4.1) of type FRAME_SIZE_ERROR."
#[test]
fn ping_with_wrong_length_is_connection_frame_size_error() {
    for payload in [&b"seven!!"[..], b"nine!!!!!", b""] {
        let mut c = Client::connected(Config::default());
        c.send_bytes(&raw(Kind::Ping, 0, 0, payload));
        c.expect_goaway(Reason::FRAME_SIZE_ERROR);
    }
}

// ----- §6.8 GOAWAY -----

/// "An endpoint MUST treat a GOAWAY frame with a stream identifier other than 0x00 as
/// a connection error (Section 5.4.1) of type PROTOCOL_ERROR."
#[test]
fn goaway_on_a_stream_is_connection_protocol_error() {
    let mut c = Client::connected(Config::default());
    c.send_bytes(&raw(Kind::GoAway, 0, 1, &[0; 8]));
    c.expect_goaway(Reason::PROTOCOL_ERROR);
}

/// "An endpoint MUST send an error code of FRAME_SIZE_ERROR if a frame ... is too
/// small to contain mandatory frame data" (§4.2): GOAWAY carries at least 8 octets.
#[test]
fn goaway_shorter_than_8_octets_is_connection_frame_size_error() {
    let mut c = Client::connected(Config::default());
    c.send_bytes(&raw(Kind::GoAway, 0, 0, &[0; 7]));
    c.expect_goaway(Reason::FRAME_SIZE_ERROR);
}

/// "Activity on streams numbered lower than or equal to the last stream identifier
/// might still complete successfully." A client's graceful GOAWAY lets its calls
/// finish.
#[test]
fn client_goaway_with_no_error_lets_calls_finish() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", true);
    let _ = c.events();
    let mut frame = go_away(0, Reason::NO_ERROR);
    frame.extend_from_slice(b"bye");
    frame[2] += 3;
    c.send_bytes(&frame);
    assert_eq!(
        c.events(),
        [Event::GoAway {
            last_stream_id: StreamId(0),
            reason: Reason::NO_ERROR,
            debug: Bytes::from_static(b"bye")
        }]
    );
    c.respond(1, b"finished");
    let out = c.transmit();
    assert!(
        matches!(
            out.last(),
            Some(Out::Headers {
                id: 1,
                end_stream: true,
                ..
            })
        ),
        "{out:?}"
    );
    assert!(!c.conn.is_closed());
}

/// "The GOAWAY frame also contains a 32-bit error code (Section 7) that contains the
/// reason for closing the connection." A client closing with an error ends every call.
#[test]
fn client_goaway_with_error_closes_the_connection() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", false);
    let _ = c.events();
    c.send_bytes(&go_away(1, Reason::INTERNAL_ERROR));
    let events = c.events();
    assert!(
        matches!(
            &events[..],
            [Event::Closed {
                error: Error::Connection {
                    reason: Reason::INTERNAL_ERROR,
                    ..
                },
                initiator: Initiator::Remote
            }]
        ),
        "{events:?}"
    );
    assert!(c.conn.is_closed());
    assert_eq!(c.conn.poll_timeout(), None);
    c.message(1, b"ignored", true);
    assert!(c.events().is_empty());
    assert!(c
        .conn
        .send_message(StreamId(1), Bytes::from_static(b"x"), false)
        .is_err());
}

/// "A server that is attempting to gracefully shut down a connection SHOULD send an
/// initial GOAWAY frame with the last stream identifier set to 2^31-1 and a NO_ERROR
/// code. ... After allowing time for any in-flight stream creation (at least one
/// round-trip time), the server MAY send another GOAWAY frame with an updated last
/// stream identifier." Streams above it are ignored, "HEADERS, PUSH_PROMISE, and
/// CONTINUATION frames MUST be minimally processed ... DATA frames MUST be counted
/// toward the connection flow-control window."
#[test]
fn graceful_shutdown_announces_then_names_the_last_stream() {
    let mut c = Client::connected(Config {
        initial_connection_window: 65_535,
        ..Config::default()
    });
    c.request(1, "/a.B/C", true);
    let _ = c.events();
    c.conn.go_away();
    let out = c.transmit();
    let [Out::GoAway {
        last: 0x7fff_ffff,
        reason: Reason::NO_ERROR,
    }, Out::Ping(drain)] = &out[..]
    else {
        panic!("{out:?}")
    };
    assert!(!drain.ack);
    // In flight before the client saw the GOAWAY: still served.
    c.request(3, "/a.B/C", true);
    assert!(matches!(
        &c.events()[..],
        [
            Event::Request {
                id: StreamId(3),
                ..
            },
            Event::EndOfStream { .. }
        ]
    ));
    c.send_bytes(&ping_ack(drain.payload));
    assert_eq!(
        c.transmit(),
        [Out::GoAway {
            last: 3,
            reason: Reason::NO_ERROR
        }]
    );
    c.conn.go_away();
    assert!(c.transmit().is_empty(), "a second go_away changes nothing");
    // Above the last stream id: ignored, but decoded and counted.
    let block = c.block(&[(":method", "POST"), ("x-new", "entry")]);
    c.send_bytes(&headers_frame(5, &block, flags::END_HEADERS));
    for _ in 0..4 {
        c.send_bytes(&data(5, &[0; 16_000], false));
    }
    let events = c.events();
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(
        c.transmit(),
        [Out::WindowUpdate {
            id: 0,
            increment: 64_000
        }]
    );
    c.respond(1, b"one");
    c.respond(3, b"three");
    let out = c.transmit();
    assert_eq!(
        out.iter()
            .filter(|f| matches!(
                f,
                Out::Headers {
                    end_stream: true,
                    ..
                }
            ))
            .count(),
        2,
        "{}",
        brief(&out)
    );
    assert!(c.conn.is_closed(), "closed once the last stream is done");
}

// ----- §6.10 CONTINUATION -----

/// "A CONTINUATION frame MUST be preceded by a HEADERS, PUSH_PROMISE or CONTINUATION
/// frame without the END_HEADERS flag set.  A recipient that observes violation of this
/// rule MUST respond with a connection error (Section 5.4.1) of type PROTOCOL_ERROR."
#[test]
fn continuation_without_headers_is_connection_protocol_error() {
    let mut c = Client::connected(Config::default());
    let block = c.block(&grpc_request("/a.B/C"));
    c.send_bytes(&continuation(1, &block, true));
    c.expect_goaway(Reason::PROTOCOL_ERROR);
}

/// "A CONTINUATION frame MUST be preceded by a HEADERS, PUSH_PROMISE or CONTINUATION
/// frame without the END_HEADERS flag set."
#[test]
fn continuation_after_end_headers_is_connection_protocol_error() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", false);
    c.send_bytes(&continuation(1, &[0x82], true));
    assert_eq!(c.expect_goaway(Reason::PROTOCOL_ERROR), 1);
}

/// "A HEADERS frame without the END_HEADERS flag set MUST be followed by a
/// CONTINUATION frame for the same stream.  A receiver MUST treat the receipt of any
/// other type of frame or a frame on a different stream as a connection error (Section
/// 5.4.1) of type PROTOCOL_ERROR."
#[test]
fn frame_interleaved_in_header_block_is_connection_protocol_error() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", false);
    let block = c.block(&grpc_request("/a.B/C"));
    let (a, b) = block.split_at(3);
    c.send_bytes(&headers_frame(3, a, 0));
    c.send_bytes(&data(1, &grpc_message(b"x"), false));
    c.send_bytes(&continuation(3, b, true));
    c.expect_goaway(Reason::PROTOCOL_ERROR);
}

/// "If the END_HEADERS flag is not set, this frame MUST be followed by another
/// CONTINUATION frame.  A receiver MUST treat the receipt of any other type of frame or
/// a frame on a different stream as a connection error (Section 5.4.1) of type
/// PROTOCOL_ERROR."
#[test]
fn continuation_on_another_stream_is_connection_protocol_error() {
    let mut c = Client::connected(Config::default());
    let block = c.block(&grpc_request("/a.B/C"));
    let (a, rest) = block.split_at(2);
    let (b, d) = rest.split_at(2);
    c.send_bytes(&headers_frame(1, a, 0));
    c.send_bytes(&continuation(1, b, false));
    c.send_bytes(&continuation(3, d, true));
    c.expect_goaway(Reason::PROTOCOL_ERROR);
}

/// "CONTINUATION frames MUST be associated with a stream.  If a CONTINUATION frame is
/// received with a Stream Identifier field of 0x00, the recipient MUST respond with a
/// connection error (Section 5.4.1) of type PROTOCOL_ERROR."
#[test]
fn continuation_on_stream_zero_is_connection_protocol_error() {
    let mut c = Client::connected(Config::default());
    c.send_bytes(&continuation(0, &[0x82], true));
    c.expect_goaway(Reason::PROTOCOL_ERROR);
}

/// "Any number of CONTINUATION frames can be sent, as long as the preceding frame is on
/// the same stream and is a HEADERS, PUSH_PROMISE, or CONTINUATION frame without the
/// END_HEADERS flag set." — the block is decoded as a whole, and END_STREAM on the
/// HEADERS frame takes effect at its end.
#[test]
fn header_block_over_many_continuations_is_decoded() {
    let mut c = Client::connected(Config {
        max_continuation_frames: 200,
        ..Config::default()
    });
    let mut fields = grpc_request("/pkg.Svc/Continued");
    fields.push(("x-spread", "over one-octet fragments"));
    let block = c.block(&fields);
    assert!(block.len() < 200);
    c.send_bytes(&headers_frame(1, &block[..1], flags::END_STREAM));
    for (i, octet) in block[1..].iter().enumerate() {
        assert!(c.events().is_empty(), "nothing before the block ends");
        c.send_bytes(&continuation(
            1,
            std::slice::from_ref(octet),
            i == block.len() - 2,
        ));
    }
    let events = c.events();
    let [Event::Request { head, .. }, Event::EndOfStream { .. }] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(&head.path[..], b"/pkg.Svc/Continued");
    assert_eq!(
        head.metadata,
        [(
            Bytes::from_static(b"x-spread"),
            Bytes::from_static(b"over one-octet fragments")
        )]
    );
}

/// With the default limits a block split at the frame size into the allowed number of
/// CONTINUATION frames is decoded.
#[test]
fn header_block_in_five_continuations_is_decoded_by_default() {
    let mut c = Client::connected(Config::default());
    let block = c.block(&grpc_request("/a.B/Five"));
    let chunks: Vec<&[u8]> = block.chunks(block.len().div_ceil(6)).collect();
    assert_eq!(chunks.len(), 6);
    c.send_bytes(&headers_frame(1, chunks[0], flags::END_STREAM));
    for (i, chunk) in chunks[1..].iter().enumerate() {
        c.send_bytes(&continuation(1, chunk, i == 4));
    }
    assert!(
        matches!(&c.events()[..], [Event::Request { head, .. }, Event::EndOfStream { .. }] if &head.path[..] == b"/a.B/Five")
    );
}
