//! RFC 9113 §8: HTTP message framing, field validity and pseudo-header fields.

mod support;

use ringrpc_codec::error::Initiator;
use ringrpc_codec::frame::StreamId;
use ringrpc_codec::server::{Config, Event};
use ringrpc_codec::Reason;
use support::*;

/// Sends a request made of `fields` on stream 1 and checks it is treated as malformed:
/// "Malformed requests or responses that are detected MUST be treated as a stream error
/// (Section 5.4.2) of type PROTOCOL_ERROR." The engine never hears of it and the next
/// request on the connection is served.
fn assert_malformed(fields: &[(&str, &str)]) {
    let mut c = Client::connected(Config::default());
    c.headers(1, fields, true);
    let events = c.events();
    assert!(
        events.is_empty(),
        "{fields:?} reached the engine: {events:?}"
    );
    let out = c.expect_reset(1, Reason::PROTOCOL_ERROR);
    assert_eq!(frames_on(&out, 1).len(), 1, "only the RST_STREAM: {out:?}");
    c.assert_serves(3);
}

/// A well-formed gRPC request with `extra` fields appended.
fn request_with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut fields = grpc_request("/a.B/C");
    fields.extend_from_slice(extra);
    fields
}

// ----- §8.1 HTTP Message Framing -----

/// "An endpoint that receives a HEADERS frame without the END_STREAM flag set after
/// receiving the HEADERS frame that opens a request or after receiving a final
/// (non-informational) status code MUST treat the corresponding request or response as
/// malformed (Section 8.1.1)."
#[test]
fn trailers_without_end_stream_is_stream_protocol_error() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", false);
    c.message(1, b"m", false);
    let _ = c.events();
    c.headers(1, &[("x-trailer", "v")], false);
    assert_eq!(
        c.events(),
        [Event::Reset {
            id: StreamId(1),
            reason: Reason::PROTOCOL_ERROR,
            initiator: Initiator::Local
        }]
    );
    c.expect_reset(1, Reason::PROTOCOL_ERROR);
    c.conn.release_stream(StreamId(1));
    c.assert_serves(3);
}

/// "Trailers MUST NOT include pseudo-header fields (Section 8.3).  An endpoint that
/// receives pseudo-header fields in trailers MUST treat the request or response as
/// malformed (Section 8.1.1)."
#[test]
fn pseudo_header_in_trailers_is_stream_protocol_error() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", false);
    let _ = c.events();
    c.headers(1, &[(":path", "/a.B/Other")], true);
    assert!(matches!(
        &c.events()[..],
        [Event::Reset {
            reason: Reason::PROTOCOL_ERROR,
            ..
        }]
    ));
    c.expect_reset(1, Reason::PROTOCOL_ERROR);
    c.conn.release_stream(StreamId(1));
    c.assert_serves(3);
}

/// "Trailer fields are carried in a field block that also terminates the stream." —
/// trailers end the request like END_STREAM on DATA.
#[test]
fn trailers_end_the_request() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", false);
    c.message(1, b"body", false);
    c.headers(1, &[("x-checksum", "abc")], true);
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
    c.respond(1, b"ok");
    let out = c.transmit();
    assert_eq!(
        reset_reason(&out, 1),
        None,
        "the client finished: no RST_STREAM after the response"
    );
}

/// "A request or response is also malformed if the value of a content-length header
/// field does not equal the sum of the DATA frame payload lengths that form the
/// content" — fewer bytes than declared.
#[test]
fn content_length_above_the_data_sent_is_stream_protocol_error() {
    let mut c = Client::connected(Config::default());
    c.headers(1, &request_with(&[("content-length", "10")]), false);
    c.message(1, b"abc", true);
    let events = c.events();
    assert!(
        matches!(
            events.last(),
            Some(Event::Reset {
                reason: Reason::PROTOCOL_ERROR,
                initiator: Initiator::Local,
                ..
            })
        ),
        "{events:?}"
    );
    assert!(!events
        .iter()
        .any(|e| matches!(e, Event::EndOfStream { .. })));
    c.expect_reset(1, Reason::PROTOCOL_ERROR);
    c.conn.release_stream(StreamId(1));
    c.assert_serves(3);
}

/// As above, more bytes than declared: detected as soon as they arrive.
#[test]
fn content_length_below_the_data_sent_is_stream_protocol_error() {
    let mut c = Client::connected(Config::default());
    c.headers(1, &request_with(&[("content-length", "3")]), false);
    c.message(1, b"abc", false);
    let events = c.events();
    assert!(
        !events.iter().any(|e| matches!(e, Event::Message { .. })),
        "{events:?}"
    );
    c.expect_reset(1, Reason::PROTOCOL_ERROR);
}

/// As above, for a request whose HEADERS frame ends the stream: the content is empty.
#[test]
fn content_length_on_a_request_without_data_is_stream_protocol_error() {
    assert_malformed(&request_with(&[("content-length", "5")]));
}

/// As above, for a request ended by trailers.
#[test]
fn content_length_checked_when_trailers_end_the_request() {
    let mut c = Client::connected(Config::default());
    c.headers(1, &request_with(&[("content-length", "100")]), false);
    c.message(1, b"short", false);
    c.headers(1, &[("x-trailer", "v")], true);
    let events = c.events();
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::EndOfStream { .. })),
        "{events:?}"
    );
    c.expect_reset(1, Reason::PROTOCOL_ERROR);
}

/// A content-length equal to the DATA received is fine, whichever frame ends the
/// request.
#[test]
fn matching_content_length_is_accepted() {
    let mut c = Client::connected(Config::default());
    c.headers(1, &request_with(&[("content-length", "8")]), false);
    c.message(1, b"abc", true);
    c.headers(3, &request_with(&[("content-length", "0")]), true);
    c.headers(5, &request_with(&[("content-length", "6")]), false);
    c.message(5, b"x", false);
    c.headers(5, &[("x-trailer", "v")], true);
    let ends = c
        .events()
        .iter()
        .filter(|e| matches!(e, Event::EndOfStream { .. }))
        .count();
    assert_eq!(ends, 3);
    assert!(c.transmit().is_empty());
}

/// A content-length that is not a number, or given twice, cannot be checked: the
/// request is malformed.
#[test]
fn invalid_content_length_is_stream_protocol_error() {
    assert_malformed(&request_with(&[("content-length", "ten")]));
    assert_malformed(&request_with(&[
        ("content-length", "5"),
        ("content-length", "5"),
    ]));
}

// ----- §8.2.1 Field Validity -----

/// "A field name MUST NOT contain characters in the ranges 0x00-0x20, 0x41-0x5a, or
/// 0x7f-0xff (all ranges inclusive)." and "A request or response that contains a field
/// that violates any of these conditions MUST be treated as malformed (Section
/// 8.1.1)."
#[test]
fn uppercase_header_name_is_stream_protocol_error() {
    assert_malformed(&request_with(&[("X-Custom", "v")]));
    assert_malformed(&request_with(&[("Content-Type", "application/grpc")]));
}

/// "A field name MUST NOT contain characters in the ranges 0x00-0x20, 0x41-0x5a, or
/// 0x7f-0xff (all ranges inclusive)."
#[test]
fn header_name_with_space_control_or_non_ascii_is_stream_protocol_error() {
    assert_malformed(&request_with(&[("x custom", "v")]));
    assert_malformed(&request_with(&[("x-\u{1}", "v")]));
    assert_malformed(&request_with(&[("x-caf\u{e9}", "v")]));
    assert_malformed(&request_with(&[("x-\u{7f}", "v")]));
    assert_malformed(&request_with(&[("", "v")]));
}

/// "With the exception of pseudo-header fields (Section 8.3), which have a name that
/// starts with a single colon, field names MUST NOT include a colon (ASCII COLON,
/// 0x3a)."
#[test]
fn colon_inside_header_name_is_stream_protocol_error() {
    assert_malformed(&request_with(&[("x:custom", "v")]));
    assert_malformed(&request_with(&[("x-custom:", "v")]));
}

/// "A field value MUST NOT contain the zero value (ASCII NUL, 0x00), line feed (ASCII
/// LF, 0x0a), or carriage return (ASCII CR, 0x0d) at any position."
#[test]
fn header_value_with_nul_cr_or_lf_is_stream_protocol_error() {
    assert_malformed(&request_with(&[("x-custom", "a\0b")]));
    assert_malformed(&request_with(&[("x-custom", "a\rb")]));
    assert_malformed(&request_with(&[("x-custom", "a\nb")]));
}

/// "A field value MUST NOT start or end with an ASCII whitespace character (ASCII SP or
/// HTAB, 0x20 or 0x09)."
#[test]
fn header_value_with_surrounding_whitespace_is_stream_protocol_error() {
    assert_malformed(&request_with(&[("x-custom", " v")]));
    assert_malformed(&request_with(&[("x-custom", "v\t")]));
}

// ----- §8.2.2 Connection-Specific Header Fields -----

/// "Any message containing connection-specific header fields MUST be treated as
/// malformed (Section 8.1.1)."
#[test]
fn connection_specific_header_is_stream_protocol_error() {
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
    ] {
        assert_malformed(&request_with(&[(name, "x")]));
    }
}

/// "The only exception to this is the TE header field, which MAY be present in an
/// HTTP/2 request; when it is, it MUST NOT contain any value other than "trailers"."
#[test]
fn te_other_than_trailers_is_stream_protocol_error() {
    let mut fields = grpc_request("/a.B/C");
    fields.retain(|(n, _)| *n != "te");
    fields.push(("te", "gzip"));
    assert_malformed(&fields);
    fields.pop();
    fields.push(("te", "trailers, gzip"));
    assert_malformed(&fields);
}

/// "The only exception to this is the TE header field, which MAY be present in an
/// HTTP/2 request" — with "trailers", or not at all.
#[test]
fn te_trailers_or_no_te_is_accepted() {
    let mut c = Client::connected(Config::default());
    let mut fields = grpc_request("/a.B/C");
    c.headers(1, &fields, true);
    fields.retain(|(n, _)| *n != "te");
    c.headers(3, &fields, true);
    assert_eq!(
        c.events()
            .iter()
            .filter(|e| matches!(e, Event::Request { .. }))
            .count(),
        2
    );
}

// ----- §8.3 HTTP Control Data -----

/// "All pseudo-header fields MUST appear in a field block before all regular field
/// lines.  Any request or response that contains a pseudo-header field that appears in
/// a field block after a regular field line MUST be treated as malformed (Section
/// 8.1.1)."
#[test]
fn pseudo_header_after_regular_header_is_stream_protocol_error() {
    assert_malformed(&[
        (":method", "POST"),
        (":scheme", "http"),
        ("content-type", "application/grpc"),
        (":path", "/a.B/C"),
    ]);
}

/// "The same pseudo-header field name MUST NOT appear more than once in a field block.
/// A field block for an HTTP request or response that contains a repeated
/// pseudo-header field name MUST be treated as malformed (Section 8.1.1)."
#[test]
fn duplicate_pseudo_header_is_stream_protocol_error() {
    for name in [":method", ":scheme", ":path", ":authority"] {
        let mut fields = grpc_request("/a.B/C");
        let value = fields.iter().find(|(n, _)| *n == name).unwrap().1;
        fields.insert(1, (name, value));
        assert_malformed(&fields);
    }
}

/// "Endpoints MUST treat a request or response that contains undefined or invalid
/// pseudo-header fields as malformed (Section 8.1.1)."
#[test]
fn unknown_pseudo_header_is_stream_protocol_error() {
    let mut fields = grpc_request("/a.B/C");
    fields.insert(0, (":custom", "x"));
    assert_malformed(&fields);
}

/// "Pseudo-header fields defined for responses MUST NOT appear in requests."
#[test]
fn response_pseudo_header_in_request_is_stream_protocol_error() {
    let mut fields = grpc_request("/a.B/C");
    fields.insert(0, (":status", "200"));
    assert_malformed(&fields);
}

/// "All HTTP/2 requests MUST include exactly one valid value for the ":method",
/// ":scheme", and ":path" pseudo-header fields, unless they are CONNECT requests
/// (Section 8.5).  An HTTP request that omits mandatory pseudo-header fields is
/// malformed (Section 8.1.1)."
#[test]
fn missing_mandatory_pseudo_header_is_stream_protocol_error() {
    for name in [":method", ":scheme", ":path"] {
        let mut fields = grpc_request("/a.B/C");
        fields.retain(|(n, _)| *n != name);
        assert_malformed(&fields);
    }
}

/// "This pseudo-header field MUST NOT be empty for "http" or "https" URIs"
#[test]
fn empty_path_is_stream_protocol_error() {
    assert_malformed(&grpc_request(""));
}

/// "Clients that generate HTTP/2 requests directly MUST use the ":authority"
/// pseudo-header field to convey authority information, unless there is no authority
/// information to convey (in which case it MUST NOT generate ":authority")." A request
/// without it is valid, with or without a Host field.
#[test]
fn request_without_authority_is_accepted() {
    let mut c = Client::connected(Config::default());
    let mut fields = grpc_request("/a.B/C");
    fields.retain(|(n, _)| *n != ":authority");
    c.headers(1, &fields, true);
    fields.push(("host", "example.com"));
    c.headers(3, &fields, true);
    let started: Vec<u32> = c
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Request { id, head } => {
                assert_eq!(&head.path[..], b"/a.B/C");
                Some(id.0)
            }
            _ => None,
        })
        .collect();
    assert_eq!(started, [1, 3]);
}
