//! gRPC over HTTP/2 (grpc/grpc doc/PROTOCOL-HTTP2.md): what the codec answers on its
//! own, what it hands the engine, and how responses are framed.

mod support;

use std::time::Duration;

use bytes::Bytes;
use ringrpc_codec::error::Initiator;
use ringrpc_codec::frame::{flags, Kind, StreamId};
use ringrpc_codec::grpc::status;
use ringrpc_codec::server::{Config, Event, ResponseStatus};
use ringrpc_codec::Reason;
use support::*;

fn request_with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut fields = grpc_request("/a.B/C");
    fields.extend_from_slice(extra);
    fields
}

/// Sets `name` to `value` in place, so pseudo-header fields stay in front.
fn replace(fields: &mut [(&'static str, &'static str)], name: &'static str, value: &'static str) {
    fields
        .iter_mut()
        .find(|(n, _)| *n == name)
        .expect("field present")
        .1 = value;
}

/// The single HEADERS frame that answers `id`, with END_STREAM; its fields.
fn single_response(out: &[Out], id: u32) -> Vec<(String, String)> {
    match &frames_on(out, id)[..] {
        [Out::Headers {
            fields,
            end_stream: true,
            ..
        }]
        | [Out::Headers {
            fields,
            end_stream: true,
            ..
        }, Out::Reset {
            reason: Reason::NO_ERROR,
            ..
        }] => fields.clone(),
        other => panic!(
            "one HEADERS frame ending stream {id} expected: {}",
            brief(other)
        ),
    }
}

/// A Trailers-Only response: "HTTP-Status Content-Type Trailers" in one HEADERS frame.
fn assert_trailers_only(out: &[Out], id: u32, code: u32) -> Vec<(String, String)> {
    let fields = single_response(out, id);
    assert_eq!(field(&fields, ":status"), Some("200"), "{fields:?}");
    assert_eq!(
        field(&fields, "content-type"),
        Some("application/grpc"),
        "{fields:?}"
    );
    assert_eq!(
        field(&fields, "grpc-status"),
        Some(code.to_string().as_str()),
        "{fields:?}"
    );
    fields
}

// ----- requests the codec answers itself -----

/// "Method → ":method POST"" — anything else is not a gRPC call; the server answers
/// with an HTTP status (405) and never involves the engine.
#[test]
fn non_post_method_is_http_405() {
    let mut c = Client::connected(Config::default());
    let mut fields = grpc_request("/a.B/C");
    replace(&mut fields, ":method", "GET");
    c.headers(1, &fields, true);
    assert!(c.events().is_empty());
    let out = c.transmit();
    let fields = single_response(&out, 1);
    assert_eq!(field(&fields, ":status"), Some("405"));
    assert_eq!(reset_reason(&out, 1), None, "the request was complete");
    assert_eq!(c.conn.active_streams(), 0);
    c.assert_serves(3);
}

/// "If Content-Type does not begin with "application/grpc", gRPC servers SHOULD
/// respond with HTTP status of 415 (Unsupported Media Type)." A client still sending
/// is told to stop with RST_STREAM(NO_ERROR), and what it sent meanwhile is dropped.
#[test]
fn content_type_not_grpc_is_http_415() {
    for content_type in ["application/json", "application/grpcx", "text/plain", ""] {
        let mut c = Client::connected(Config::default());
        let mut fields = grpc_request("/a.B/C");
        replace(&mut fields, "content-type", content_type);
        c.headers(1, &fields, false);
        c.message(1, b"not for the engine", false);
        assert!(c.events().is_empty(), "{content_type}");
        let out = c.transmit();
        assert_eq!(
            field(&single_response(&out, 1), ":status"),
            Some("415"),
            "{content_type}"
        );
        assert_eq!(reset_reason(&out, 1), Some(Reason::NO_ERROR));
        c.message(1, b"late", true);
        assert!(c.events().is_empty());
        assert!(c
            .transmit()
            .iter()
            .all(|f| matches!(f, Out::WindowUpdate { .. })));
        c.assert_serves(3);
    }
    let mut c = Client::connected(Config::default());
    let mut fields = grpc_request("/a.B/C");
    fields.retain(|(n, _)| *n != "content-type");
    c.headers(1, &fields, true);
    assert_eq!(
        field(&single_response(&c.transmit(), 1), ":status"),
        Some("415"),
        "missing content-type"
    );
}

/// "Content-Type → "content-type" "application/grpc" [("+proto" / "+json" /
/// {_custom_})]" — parameters are allowed too.
#[test]
fn grpc_content_type_variants_are_accepted() {
    let mut c = Client::connected(Config::default());
    let types = [
        "application/grpc",
        "application/grpc+proto",
        "application/grpc+json",
        "application/grpc;charset=utf-8",
    ];
    for (i, content_type) in types.iter().enumerate() {
        let mut fields = grpc_request("/a.B/C");
        replace(&mut fields, "content-type", content_type);
        c.headers(1 + 2 * i as u32, &fields, true);
    }
    let started: Vec<u32> = c
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Request { id, .. } => Some(id.0),
            _ => None,
        })
        .collect();
    assert_eq!(started, [1, 3, 5, 7], "every variant starts a call");
}

/// "Timeout → "grpc-timeout" TimeoutValue TimeoutUnit" with "TimeoutValue → {positive
/// integer as ASCII string of at most 8 digits}". A malformed one fails the call at
/// once with INTERNAL, as a Trailers-Only response.
#[test]
fn malformed_grpc_timeout_is_trailers_only_internal() {
    for timeout in ["123456789S", "10X", "S", "1.5S", "-1S"] {
        let mut c = Client::connected(Config::default());
        c.headers(1, &request_with(&[("grpc-timeout", timeout)]), false);
        assert!(c.events().is_empty(), "{timeout}");
        let out = c.transmit();
        assert_trailers_only(&out, 1, status::INTERNAL);
        assert_eq!(reset_reason(&out, 1), Some(Reason::NO_ERROR), "{timeout}");
        c.assert_serves(3);
    }
}

/// "TimeoutUnit → Hour / Minute / Second / Millisecond / Microsecond / Nanosecond"
#[test]
fn grpc_timeout_reaches_the_engine_as_a_duration() {
    let mut c = Client::connected(Config::default());
    let cases = [
        ("5S", Duration::from_secs(5)),
        ("100m", Duration::from_millis(100)),
        ("2H", Duration::from_secs(7200)),
        ("99999999n", Duration::from_nanos(99_999_999)),
    ];
    for (i, (value, _)) in cases.iter().enumerate() {
        c.headers(
            1 + 2 * i as u32,
            &request_with(&[("grpc-timeout", value)]),
            true,
        );
    }
    c.headers(9, &grpc_request("/a.B/C"), true);
    let timeouts: Vec<Option<Duration>> = c
        .events()
        .into_iter()
        .filter_map(|e| {
            if let Event::Request { head, .. } = e {
                Some(head.timeout)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(
        timeouts,
        [
            Some(cases[0].1),
            Some(cases[1].1),
            Some(cases[2].1),
            Some(cases[3].1),
            None
        ]
    );
}

/// "Implementations MUST accept padded and un-padded values and should emit un-padded
/// values." (Binary-Header)
#[test]
fn binary_metadata_padded_and_unpadded_are_decoded() {
    let mut c = Client::connected(Config::default());
    c.headers(
        1,
        &request_with(&[
            ("x-padded-bin", "AAEC/w=="),
            ("x-unpadded-bin", "AAEC/w"),
            ("x-ascii", "plain text"),
        ]),
        true,
    );
    let events = c.events();
    let [Event::Request { head, .. }, Event::EndOfStream { .. }] = &events[..] else {
        panic!("{events:?}")
    };
    let expected: [(Bytes, Bytes); 3] = [
        (
            Bytes::from_static(b"x-padded-bin"),
            Bytes::from_static(&[0, 1, 2, 0xff]),
        ),
        (
            Bytes::from_static(b"x-unpadded-bin"),
            Bytes::from_static(&[0, 1, 2, 0xff]),
        ),
        (
            Bytes::from_static(b"x-ascii"),
            Bytes::from_static(b"plain text"),
        ),
    ];
    assert_eq!(head.metadata, expected);
}

/// "Binary-Header → {Header-Name "-bin" } {_base64 encoded value_}" — a value that is
/// not base64 fails the call with INTERNAL.
#[test]
fn invalid_binary_metadata_is_trailers_only_internal() {
    let mut c = Client::connected(Config::default());
    c.headers(1, &request_with(&[("x-data-bin", "not base64!")]), true);
    assert!(c.events().is_empty());
    let out = c.transmit();
    assert_trailers_only(&out, 1, status::INTERNAL);
    assert_eq!(reset_reason(&out, 1), None);
}

// ----- request messages -----

/// A message longer than the receive limit fails the call with RESOURCE_EXHAUSTED as
/// soon as its length prefix is read: nothing of the body is awaited or buffered. The
/// engine's handler is cancelled, and the client, still sending, is told to stop with
/// RST_STREAM(NO_ERROR).
#[test]
fn message_over_max_message_size_is_resource_exhausted_before_the_body() {
    let mut c = Client::connected(Config {
        max_message_size: 100,
        ..Config::default()
    });
    c.request(1, "/a.B/C", false);
    assert!(matches!(&c.events()[..], [Event::Request { .. }]));
    // The prefix alone, split across two frames.
    c.send_bytes(&data(1, &[0, 0, 0], false));
    c.send_bytes(&data(1, &[0, 101], false));
    assert_eq!(
        c.events(),
        [Event::Reset {
            id: StreamId(1),
            reason: Reason::CANCEL,
            initiator: Initiator::Local
        }]
    );
    let out = c.transmit();
    let fields = assert_trailers_only(&out, 1, status::RESOURCE_EXHAUSTED);
    assert!(field(&fields, "grpc-message").is_some());
    assert_eq!(
        frames_on(&out, 1).last(),
        Some(&Out::Reset {
            id: 1,
            reason: Reason::NO_ERROR
        })
    );
    c.send_bytes(&data(1, &[7; 101], true));
    assert!(c.events().is_empty(), "the body is dropped");
    assert!(c
        .conn
        .send_message(StreamId(1), Bytes::from_static(b"x"), false)
        .is_err());
    c.conn.release_stream(StreamId(1));
    assert_eq!(c.conn.active_streams(), 0);
    c.assert_serves(3);
}

/// As above when the response headers are already out: the status follows as
/// trailers.
#[test]
fn message_over_max_message_size_after_response_headers_ends_with_trailers() {
    let mut c = Client::connected(Config {
        max_message_size: 100,
        ..Config::default()
    });
    c.request(1, "/a.B/C", false);
    let _ = c.events();
    c.conn.send_headers(StreamId(1), []).unwrap();
    let _ = c.transmit();
    c.message(1, &[0; 101], false);
    let out = c.transmit();
    let [Out::Headers {
        fields,
        end_stream: true,
        ..
    }, Out::Reset {
        reason: Reason::NO_ERROR,
        ..
    }] = &frames_on(&out, 1)[..]
    else {
        panic!("{}", brief(&out))
    };
    assert_eq!(
        field(fields, ":status"),
        None,
        "trailers, not a second response head"
    );
    assert_eq!(field(fields, "grpc-status"), Some("8"));
}

/// "If the Message-Encoding header is omitted then the Compressed-Flag must be 0." A
/// compressed message without it fails the call with INTERNAL.
#[test]
fn compressed_flag_without_grpc_encoding_is_internal() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", false);
    let mut message = grpc_message(b"zzz");
    message[0] = 1;
    c.send_bytes(&data(1, &message, true));
    let events = c.events();
    assert!(
        matches!(
            &events[..],
            [
                Event::Request { .. },
                Event::Reset {
                    reason: Reason::CANCEL,
                    initiator: Initiator::Local,
                    ..
                }
            ]
        ),
        "{events:?}"
    );
    let out = c.transmit();
    assert_trailers_only(&out, 1, status::INTERNAL);
    assert_eq!(
        reset_reason(&out, 1),
        None,
        "the client had finished: no RST_STREAM"
    );
    c.conn.release_stream(StreamId(1));
    c.assert_serves(3);
}

/// "A Compressed-Flag value of 1 indicates that the binary octet sequence of Message is
/// compressed using the mechanism declared by the Message-Encoding header."
#[test]
fn compressed_flag_with_grpc_encoding_is_passed_on() {
    let mut c = Client::connected(Config::default());
    c.headers(1, &request_with(&[("grpc-encoding", "gzip")]), false);
    let mut message = grpc_message(b"gz");
    message[0] = 1;
    c.send_bytes(&data(1, &message, true));
    let events = c.events();
    let [Event::Request { head, .. }, Event::Message { message, .. }, Event::EndOfStream { .. }] =
        &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!(head.encoding.as_deref(), Some(&b"gzip"[..]));
    assert!(message.compressed);
}

/// "Compressed-Flag → 0 / 1   # encoded as 1 byte unsigned integer" — any other value
/// fails the call with INTERNAL.
#[test]
fn invalid_compressed_flag_is_internal() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", false);
    let mut message = grpc_message(b"x");
    message[0] = 2;
    c.send_bytes(&data(1, &message, false));
    let out = c.transmit();
    assert_trailers_only(&out, 1, status::INTERNAL);
    assert_eq!(
        reset_reason(&out, 1),
        Some(Reason::NO_ERROR),
        "the client was still sending"
    );
}

/// "For requests, EOS (end-of-stream) is indicated by the presence of the END_STREAM
/// flag on the last received DATA frame." A stream ending inside a message fails the
/// call with INTERNAL; the client is done, so no RST_STREAM follows.
#[test]
fn truncated_message_at_end_stream_is_internal() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", false);
    c.message(1, b"whole", false);
    c.send_bytes(&data(1, &[0, 0, 0, 0, 10, b'h', b'a', b'l', b'f'], true));
    let events = c.events();
    assert!(
        matches!(
            &events[..],
            [
                Event::Request { .. },
                Event::Message { .. },
                Event::Reset {
                    reason: Reason::CANCEL,
                    ..
                }
            ]
        ),
        "{events:?}"
    );
    let out = c.transmit();
    assert_trailers_only(&out, 1, status::INTERNAL);
    assert_eq!(
        frames_on(&out, 1).len(),
        1,
        "no RST_STREAM on a stream closed both ways: {}",
        brief(&out)
    );
    c.conn.release_stream(StreamId(1));
    assert_eq!(c.conn.active_streams(), 0);
    c.assert_serves(3);
}

/// As above, when trailers end the request in the middle of a message.
#[test]
fn truncated_message_before_trailers_is_internal() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", false);
    c.send_bytes(&data(1, &[0, 0, 0], false));
    c.headers(1, &[("x-trailer", "v")], true);
    let events = c.events();
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::EndOfStream { .. })),
        "{events:?}"
    );
    let out = c.transmit();
    assert_trailers_only(&out, 1, status::INTERNAL);
    assert_eq!(reset_reason(&out, 1), None);
}

/// A message that exceeds the limit in the frame that also ends the stream: the
/// client is done, so the status goes out without RST_STREAM.
#[test]
fn message_over_max_message_size_in_final_frame_has_no_rst_stream() {
    let mut c = Client::connected(Config {
        max_message_size: 10,
        ..Config::default()
    });
    c.request(1, "/a.B/C", false);
    c.message(1, &[0; 11], true);
    let out = c.transmit();
    assert_trailers_only(&out, 1, status::RESOURCE_EXHAUSTED);
    assert_eq!(reset_reason(&out, 1), None, "{}", brief(&out));
}

/// "DATA frame boundaries have no relation to Length-Prefixed-Message boundaries and
/// implementations should make no assumptions about their alignment."
#[test]
fn request_messages_are_reassembled_across_data_frames() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", false);
    let mut stream = grpc_message(&[1; 40_000]);
    stream.extend(grpc_message(b"second"));
    stream.extend(grpc_message(b""));
    for chunk in stream.chunks(7_000) {
        c.send_bytes(&data(1, chunk, false));
    }
    c.send_bytes(&data(1, &[], true));
    let messages: Vec<usize> = c
        .events()
        .into_iter()
        .filter_map(|e| {
            if let Event::Message { message, .. } = e {
                Some(message.data.len())
            } else {
                None
            }
        })
        .collect();
    assert_eq!(messages, [40_000, 6, 0]);
}

// ----- responses -----

/// "If a server responds with Trailers before the client's END_STREAM, then the server
/// should send RST_STREAM with NO_ERROR error code immediately following that HEADERS
/// frame"
#[test]
fn trailers_before_client_half_close_are_followed_by_rst_stream_no_error() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", false);
    let _ = c.events();
    c.respond(1, b"early");
    let out = c.transmit();
    let frames = frames_on(&out, 1);
    assert!(
        matches!(
            &frames[..],
            [
                Out::Headers { .. },
                Out::Data { .. },
                Out::Headers {
                    end_stream: true,
                    ..
                },
                Out::Reset {
                    reason: Reason::NO_ERROR,
                    ..
                }
            ]
        ),
        "{}",
        brief(&out)
    );
    c.message(1, b"late", true);
    assert!(
        c.events().is_empty(),
        "what the client sent meanwhile is dropped"
    );
    assert!(c
        .transmit()
        .iter()
        .all(|f| matches!(f, Out::WindowUpdate { .. })));
}

/// "Response → (Response-Headers *Length-Prefixed-Message Trailers) / Trailers-Only" —
/// with custom metadata in both; "-bin" values go out base64-encoded without padding.
#[test]
fn response_headers_and_trailers_carry_ascii_and_binary_metadata() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", true);
    let _ = c.events();
    let head_md = [
        (
            Bytes::from_static(b"x-ascii"),
            Bytes::from_static(b"hello world"),
        ),
        (
            Bytes::from_static(b"x-data-bin"),
            Bytes::from_static(&[0, 1, 2, 0xff]),
        ),
    ];
    c.conn.send_headers(StreamId(1), head_md).unwrap();
    c.conn
        .send_message(StreamId(1), Bytes::from_static(b"reply"), false)
        .unwrap();
    let status = ResponseStatus {
        code: status::NOT_FOUND,
        message: Bytes::from_static("caf\u{e9} 100%".as_bytes()),
        details: Some(Bytes::from_static(&[8, 5])),
    };
    c.conn
        .send_trailers(
            StreamId(1),
            status,
            [(
                Bytes::from_static(b"x-trailer-bin"),
                Bytes::from_static(b"\xfe"),
            )],
        )
        .unwrap();
    c.conn.release_stream(StreamId(1));
    let out = c.transmit();
    let [Out::Headers {
        fields: head,
        end_stream: false,
        ..
    }, Out::Data { payload, .. }, Out::Headers {
        fields: trailers,
        end_stream: true,
        ..
    }] = &out[..]
    else {
        panic!("{}", brief(&out))
    };
    assert_eq!(field(head, ":status"), Some("200"));
    assert_eq!(field(head, "content-type"), Some("application/grpc"));
    assert_eq!(field(head, "x-ascii"), Some("hello world"));
    assert_eq!(field(head, "x-data-bin"), Some("AAEC/w"));
    assert_eq!(&payload[..], &grpc_message(b"reply")[..]);
    assert_eq!(field(trailers, ":status"), None);
    assert_eq!(field(trailers, "grpc-status"), Some("5"));
    assert_eq!(field(trailers, "grpc-message"), Some("caf%C3%A9 100%25"));
    assert_eq!(field(trailers, "grpc-status-details-bin"), Some("CAU"));
    assert_eq!(field(trailers, "x-trailer-bin"), Some("/g"));
}

/// "Trailers-Only is permitted for calls that produce an immediate error." — trailers
/// without headers or messages before them become one HEADERS frame.
#[test]
fn immediate_error_is_a_trailers_only_response() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", true);
    let _ = c.events();
    c.conn
        .send_trailers(
            StreamId(1),
            ResponseStatus::new(status::UNIMPLEMENTED, "unknown method"),
            [],
        )
        .unwrap();
    c.conn.release_stream(StreamId(1));
    let out = c.transmit();
    let fields = assert_trailers_only(&out, 1, status::UNIMPLEMENTED);
    assert_eq!(field(&fields, "grpc-message"), Some("unknown method"));
    assert_eq!(out.len(), 1);
}

/// "Status must be sent in Trailers even if the status code is OK." — also for a call
/// that sends headers only.
#[test]
fn ok_status_is_always_sent() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", true);
    let _ = c.events();
    c.conn.send_headers(StreamId(1), []).unwrap();
    c.conn
        .send_trailers(StreamId(1), ResponseStatus::OK, [])
        .unwrap();
    let out = c.transmit();
    let [Out::Headers {
        end_stream: false, ..
    }, Out::Headers {
        fields,
        end_stream: true,
        ..
    }] = &out[..]
    else {
        panic!("{out:?}")
    };
    assert_eq!(fields, &[("grpc-status".to_string(), "0".to_string())]);
}

/// "DATA frame boundaries have no relation to Length-Prefixed-Message boundaries" — a
/// large response message spans several DATA frames, and small ones share one.
#[test]
fn response_messages_are_framed_independently_of_data_frames() {
    let mut c = Client::connected_with(Config::default(), &[(INITIAL_WINDOW_SIZE, 1 << 20)]);
    c.send_bytes(&window_update(0, 1 << 20));
    c.request(1, "/a.B/C", true);
    let _ = c.events();
    let big: Bytes = (0..40_000u32).map(|i| i as u8).collect::<Vec<u8>>().into();
    c.conn
        .send_message(StreamId(1), big.clone(), false)
        .unwrap();
    c.conn
        .send_message(StreamId(1), Bytes::from_static(b"one"), false)
        .unwrap();
    c.conn
        .send_message(StreamId(1), Bytes::from_static(b"two"), true)
        .unwrap();
    c.conn
        .send_trailers(StreamId(1), ResponseStatus::OK, [])
        .unwrap();
    let out = c.transmit();
    let payloads: Vec<Bytes> = out
        .iter()
        .filter_map(|f| {
            if let Out::Data { payload, .. } = f {
                Some(payload.clone())
            } else {
                None
            }
        })
        .collect();
    assert_eq!(
        payloads.iter().map(Bytes::len).collect::<Vec<_>>(),
        [16_384, 16_384, 40_005 + 8 + 8 - 32_768]
    );
    let mut expected = grpc_message(&big);
    expected.extend(grpc_message(b"one"));
    let mut two = grpc_message(b"two");
    two[0] = 1;
    expected.extend(two);
    assert_eq!(payloads.concat(), expected);
}

/// One `poll_transmit` carries the frames of every stream that has something to say,
/// so one write serves many calls.
#[test]
fn many_streams_are_answered_in_one_transmit() {
    let mut c = Client::connected(Config::default());
    let ids: Vec<u32> = (0..64).map(|i| 1 + 2 * i).collect();
    let mut bytes = Vec::new();
    for &id in &ids {
        bytes.extend(headers_frame(
            id,
            &c.block(&grpc_request("/a.B/C")),
            flags::END_HEADERS,
        ));
        bytes.extend(data(id, &grpc_message(b"req"), true));
    }
    c.send_bytes(&bytes);
    let events = c.events();
    assert_eq!(events.len(), 3 * ids.len());
    for &id in &ids {
        c.conn.release_capacity(StreamId(id), 8);
        c.respond(id, b"resp");
    }
    let out = c.transmit();
    for &id in &ids {
        assert_eq!(frames_on(&out, id).len(), 3, "stream {id}");
    }
    assert_eq!(c.conn.active_streams(), 0);
    assert!(!c.conn.wants_transmit());
}

/// HEADERS, DATA and trailers of one stream keep their order, and a stream's frames
/// are never written after its END_STREAM.
#[test]
fn nothing_is_sent_after_the_trailers() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", true);
    let _ = c.events();
    c.conn
        .send_trailers(StreamId(1), ResponseStatus::OK, [])
        .unwrap();
    assert!(c
        .conn
        .send_message(StreamId(1), Bytes::from_static(b"late"), false)
        .is_err());
    assert!(c.conn.send_headers(StreamId(1), []).is_err());
    assert!(c
        .conn
        .send_trailers(StreamId(1), ResponseStatus::OK, [])
        .is_err());
    c.conn.release_stream(StreamId(1));
    assert_eq!(c.transmit().len(), 1);
    for (head, _) in &c.raw_output {
        assert_ne!(head.kind, Kind::Data);
    }
}

/// A client that resets the stream before the codec's error status went out gets
/// nothing more on it: "After receiving a RST_STREAM on a stream, the receiver MUST NOT
/// send additional frames for that stream" (RFC 9113 §6.4).
#[test]
fn codec_status_is_dropped_when_the_client_resets_first() {
    let mut c = Client::connected(Config {
        max_message_size: 10,
        ..Config::default()
    });
    c.request(1, "/a.B/C", false);
    c.message(1, &[0; 11], false);
    c.send_bytes(&rst(1, Reason::CANCEL));
    let events = c.events();
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::Reset { .. }))
            .count(),
        1,
        "the engine hears of the end once: {events:?}"
    );
    let out = c.transmit();
    assert!(frames_on(&out, 1).is_empty(), "{}", brief(&out));
    c.conn.release_stream(StreamId(1));
    assert_eq!(c.conn.active_streams(), 0);
}

/// Trailers of a request are limited like its head ("Servers may limit the size of
/// Request-Headers"): over the limit, the call fails with RESOURCE_EXHAUSTED.
#[test]
fn request_trailers_over_the_header_list_limit_are_resource_exhausted() {
    let mut c = Client::connected(Config {
        max_header_list_size: 1_000,
        ..Config::default()
    });
    c.request(1, "/a.B/C", false);
    let _ = c.events();
    let big = "t".repeat(1_000);
    c.headers(1, &[("x-trailer", &big)], true);
    assert!(matches!(
        &c.events()[..],
        [Event::Reset {
            reason: Reason::CANCEL,
            initiator: Initiator::Local,
            ..
        }]
    ));
    let out = c.transmit();
    assert_trailers_only(&out, 1, status::RESOURCE_EXHAUSTED);
    assert_eq!(reset_reason(&out, 1), None, "the request was over");
}
