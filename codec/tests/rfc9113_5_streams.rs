//! RFC 9113 §5.1, §5.4 and §5.5: stream states, identifiers, concurrency, and how
//! errors are answered.

mod support;

use ringrpc_codec::error::{Error, Initiator};
use ringrpc_codec::frame::{flags, StreamId};
use ringrpc_codec::server::{Config, Event};
use ringrpc_codec::Reason;
use support::*;

// ----- §5.1 idle -----

/// "Receiving any frame other than HEADERS or PRIORITY on a stream in this state MUST
/// be treated as a connection error (Section 5.4.1) of type PROTOCOL_ERROR."
#[test]
fn data_on_idle_stream_is_connection_protocol_error() {
    let mut c = Client::connected(Config::default());
    c.send_bytes(&data(1, &grpc_message(b"x"), true));
    assert_eq!(c.expect_goaway(Reason::PROTOCOL_ERROR), 0);
}

/// "Receiving any frame other than HEADERS or PRIORITY on a stream in this state MUST
/// be treated as a connection error (Section 5.4.1) of type PROTOCOL_ERROR." —
/// idle because it lies above every stream opened so far.
#[test]
fn data_on_stream_above_the_highest_opened_is_connection_protocol_error() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", false);
    c.send_bytes(&data(3, &grpc_message(b"x"), false));
    assert_eq!(c.expect_goaway(Reason::PROTOCOL_ERROR), 1);
}

/// "RST_STREAM frames MUST NOT be sent for a stream in the "idle" state.  If a
/// RST_STREAM frame identifying an idle stream is received, the recipient MUST treat
/// this as a connection error (Section 5.4.1) of type PROTOCOL_ERROR." (§6.4)
#[test]
fn rst_stream_on_idle_stream_is_connection_protocol_error() {
    let mut c = Client::connected(Config::default());
    c.send_bytes(&rst(1, Reason::CANCEL));
    c.expect_goaway(Reason::PROTOCOL_ERROR);
}

/// "Receiving any frame other than HEADERS or PRIORITY on a stream in this state MUST
/// be treated as a connection error (Section 5.4.1) of type PROTOCOL_ERROR."
#[test]
fn window_update_on_idle_stream_is_connection_protocol_error() {
    let mut c = Client::connected(Config::default());
    c.send_bytes(&window_update(1, 100));
    c.expect_goaway(Reason::PROTOCOL_ERROR);
}

/// "Note that PRIORITY can be sent and received in any stream state." — including
/// idle, where it opens nothing.
#[test]
fn priority_on_idle_stream_is_ignored() {
    let mut c = Client::connected(Config::default());
    c.send_bytes(&priority(5, 0, 16));
    c.expect_silence();
    c.assert_serves(3);
}

/// Streams initiated by the server use even identifiers; a server that pushes
/// nothing has every even stream "idle", so "Receiving any frame other than HEADERS
/// or PRIORITY on a stream in this state MUST be treated as a connection error
/// (Section 5.4.1) of type PROTOCOL_ERROR."
#[test]
fn data_on_server_initiated_stream_is_connection_protocol_error() {
    let mut c = Client::connected(Config::default());
    c.request(5, "/a.B/C", false);
    c.send_bytes(&data(2, &grpc_message(b"x"), false));
    assert_eq!(c.expect_goaway(Reason::PROTOCOL_ERROR), 5);
}

/// As above, for RST_STREAM and WINDOW_UPDATE on an even stream below the highest
/// client stream.
#[test]
fn rst_and_window_update_on_server_initiated_streams_are_connection_protocol_errors() {
    for frame in [rst(2, Reason::CANCEL), window_update(4, 10)] {
        let mut c = Client::connected(Config::default());
        c.request(7, "/a.B/C", false);
        c.send_bytes(&frame);
        c.expect_goaway(Reason::PROTOCOL_ERROR);
    }
}

// ----- §5.1.1 Stream Identifiers -----

/// "Streams initiated by a client MUST use odd-numbered stream identifiers" and "An
/// endpoint that receives an unexpected stream identifier MUST respond with a
/// connection error (Section 5.4.1) of type PROTOCOL_ERROR."
#[test]
fn headers_on_even_stream_id_is_connection_protocol_error() {
    let mut c = Client::connected(Config::default());
    c.request(2, "/a.B/C", true);
    assert_eq!(c.expect_goaway(Reason::PROTOCOL_ERROR), 0);
    assert!(!c
        .events()
        .iter()
        .any(|e| matches!(e, Event::Request { .. })));
}

/// "Stream identifiers cannot be reused." Reopening a stream that completed is
/// HEADERS on a closed stream, which "An endpoint MAY treat ... as a connection error
/// (Section 5.4.1) of type STREAM_CLOSED".
#[test]
fn stream_id_reused_after_completion_is_connection_error() {
    let mut c = Client::connected(Config::default());
    c.assert_serves(1);
    c.request(1, "/a.B/C", true);
    assert_eq!(c.expect_goaway(Reason::STREAM_CLOSED), 1);
}

/// "The identifier of a newly established stream MUST be numerically greater than
/// all streams that the initiating endpoint has opened or reserved." A lower one is
/// a closed stream (skipped ones close when a higher one opens) and is answered with
/// a connection error.
#[test]
fn stream_id_going_backwards_is_connection_error() {
    let mut c = Client::connected(Config::default());
    c.request(5, "/a.B/C", false);
    let _ = c.events();
    c.request(3, "/a.B/C", false);
    assert_eq!(c.expect_goaway(Reason::STREAM_CLOSED), 5);
    assert!(!c.events().iter().any(|e| matches!(
        e,
        Event::Request {
            id: StreamId(3),
            ..
        }
    )));
}

/// "That is, an endpoint may skip a stream identifier, with the effect being that the
/// skipped stream is immediately closed." DATA on such a stream is answered as on any
/// closed stream: "the recipient MUST respond with a stream error (Section 5.4.2) of
/// type STREAM_CLOSED" (§6.1).
#[test]
fn data_on_skipped_stream_is_stream_closed_error() {
    let mut c = Client::connected(Config::default());
    c.request(7, "/a.B/C", false);
    let _ = c.events();
    c.send_bytes(&data(3, &grpc_message(b"x"), false));
    c.expect_reset(3, Reason::STREAM_CLOSED);
    c.message(7, b"still open", true);
    let events = c.events();
    assert!(
        matches!(
            &events[..],
            [
                Event::Message {
                    id: StreamId(7),
                    ..
                },
                Event::EndOfStream { .. }
            ]
        ),
        "{events:?}"
    );
}

// ----- §5.1 half-closed (remote) and closed -----

/// "If an endpoint receives additional frames, other than WINDOW_UPDATE, PRIORITY, or
/// RST_STREAM, for a stream that is in this state, it MUST respond with a stream
/// error (Section 5.4.2) of type STREAM_CLOSED."
#[test]
fn data_on_half_closed_remote_stream_is_stream_closed_error() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", true);
    let _ = c.events();
    c.message(1, b"late", false);
    let events = c.events();
    assert_eq!(
        events,
        [Event::Reset {
            id: StreamId(1),
            reason: Reason::STREAM_CLOSED,
            initiator: Initiator::Local
        }],
        "the handler is cancelled"
    );
    c.expect_reset(1, Reason::STREAM_CLOSED);
    assert_eq!(
        c.conn
            .send_message(StreamId(1), bytes::Bytes::from_static(b"x"), false),
        Err(ringrpc_codec::server::StreamClosed(StreamId(1)))
    );
    c.conn.release_stream(StreamId(1));
    assert!(c.transmit().is_empty(), "one RST_STREAM per stream");
    c.assert_serves(3);
}

/// "If an endpoint receives additional frames, other than WINDOW_UPDATE, PRIORITY, or
/// RST_STREAM, for a stream that is in this state, it MUST respond with a stream
/// error (Section 5.4.2) of type STREAM_CLOSED."
#[test]
fn headers_on_half_closed_remote_stream_is_stream_closed_error() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", false);
    c.message(1, b"req", true);
    let _ = c.events();
    c.headers(1, &[("x-trailer", "late")], true);
    c.expect_reset(1, Reason::STREAM_CLOSED);
    c.conn.release_stream(StreamId(1));
    c.assert_serves(3);
}

/// "If an endpoint receives additional frames, other than WINDOW_UPDATE, PRIORITY, or
/// RST_STREAM, for a stream that is in this state" — those three are fine.
#[test]
fn window_update_priority_and_rst_on_half_closed_remote_stream_are_accepted() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", true);
    let _ = c.events();
    c.send_bytes(&window_update(1, 1000));
    c.send_bytes(&priority(1, 0, 200));
    c.expect_silence();
    c.send_bytes(&rst(1, Reason::CANCEL));
    let events = c.events();
    assert_eq!(
        events,
        [Event::Reset {
            id: StreamId(1),
            reason: Reason::CANCEL,
            initiator: Initiator::Remote
        }]
    );
    let out = c.transmit();
    assert!(out.is_empty(), "RST_STREAM is not answered: {out:?}");
}

/// "An endpoint that sends a RST_STREAM frame on a stream that is in the "open" or
/// "half-closed (local)" state could receive any type of frame. ... An endpoint MUST
/// minimally process and then discard any frames it receives in this state." —
/// and "the content of DATA frames counts toward the connection flow-control window".
#[test]
fn data_after_our_rst_stream_is_ignored_but_counted() {
    let mut c = Client::connected(Config {
        initial_connection_window: 65_535,
        ..Config::default()
    });
    c.request(1, "/a.B/C", false);
    let _ = c.events();
    c.conn.reset(StreamId(1), Reason::CANCEL).unwrap();
    c.expect_reset(1, Reason::CANCEL);
    for _ in 0..3 {
        c.send_bytes(&data(1, &[0; 16_000], false));
    }
    let events = c.events();
    assert!(events.is_empty(), "{events:?}");
    let out = c.transmit();
    assert_eq!(
        out,
        [Out::WindowUpdate {
            id: 0,
            increment: 48_000
        }],
        "discarded DATA is credited back"
    );
    c.conn.release_stream(StreamId(1));
    c.send_bytes(&data(1, &[0; 16_000], true));
    c.send_bytes(&rst(1, Reason::CANCEL));
    c.send_bytes(&window_update(1, 5));
    assert!(c.events().is_empty());
    assert!(c
        .transmit()
        .iter()
        .all(|f| matches!(f, Out::WindowUpdate { id: 0, .. })));
    c.assert_serves(3);
}

/// "An endpoint that sends a frame with the END_STREAM flag set or a RST_STREAM frame
/// might receive a WINDOW_UPDATE or RST_STREAM frame from its peer in the time before
/// the peer receives and processes the frame that closes the stream."
#[test]
fn window_update_and_rst_on_completed_stream_are_ignored() {
    let mut c = Client::connected(Config::default());
    c.assert_serves(1);
    c.send_bytes(&window_update(1, 100));
    c.send_bytes(&rst(1, Reason::CANCEL));
    c.expect_silence();
    c.assert_serves(3);
}

// ----- §5.1.2 Stream Concurrency -----

/// "An endpoint that receives a HEADERS frame that causes its advertised concurrent
/// stream limit to be exceeded MUST treat this as a stream error (Section 5.4.2) of
/// type PROTOCOL_ERROR or REFUSED_STREAM."
#[test]
fn stream_beyond_max_concurrent_streams_is_refused_stream() {
    let mut c = Client::connected(Config {
        max_concurrent_streams: 2,
        ..Config::default()
    });
    c.request(1, "/a.B/C", true);
    c.request(3, "/a.B/C", true);
    c.request(5, "/a.B/C", true);
    let requests: Vec<_> = c
        .events()
        .into_iter()
        .filter_map(|e| {
            if let Event::Request { id, .. } = e {
                Some(id.0)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(
        requests,
        [1, 3],
        "the refused stream never reaches the engine"
    );
    c.expect_reset(5, Reason::REFUSED_STREAM);
    assert_eq!(c.conn.active_streams(), 2);
    c.respond(1, b"one");
    let _ = c.transmit();
    assert_eq!(c.conn.active_streams(), 1);
    c.assert_serves(7);
}

/// "Streams that are in the "open" state or in either of the "half-closed" states
/// count toward the maximum number of streams" — and a stream the client reset keeps
/// counting until its handler has finished, or resetting would free capacity the
/// server is still spending (Rapid Reset, CVE-2023-44487).
#[test]
fn peer_reset_stream_counts_until_release_stream() {
    let mut c = Client::connected(Config {
        max_concurrent_streams: 1,
        ..Config::default()
    });
    c.request(1, "/a.B/C", false);
    c.send_bytes(&rst(1, Reason::CANCEL));
    let events = c.events();
    assert!(
        matches!(
            &events[..],
            [
                Event::Request { .. },
                Event::Reset {
                    reason: Reason::CANCEL,
                    initiator: Initiator::Remote,
                    ..
                }
            ]
        ),
        "{events:?}"
    );
    assert_eq!(c.conn.active_streams(), 1);
    c.request(3, "/a.B/C", true);
    c.expect_reset(3, Reason::REFUSED_STREAM);
    c.conn.release_stream(StreamId(1));
    assert_eq!(c.conn.active_streams(), 0);
    assert!(
        c.transmit().is_empty(),
        "no RST_STREAM for a stream the client reset"
    );
    c.assert_serves(5);
}

/// A stream the server answered while the client was still sending stops counting
/// once the answer and RST_STREAM(NO_ERROR) are out and the handler is done.
#[test]
fn early_answered_stream_stops_counting_after_release() {
    let mut c = Client::connected(Config {
        max_concurrent_streams: 1,
        ..Config::default()
    });
    c.request(1, "/a.B/C", false);
    let _ = c.events();
    c.respond(1, b"early");
    let out = c.transmit();
    assert_eq!(reset_reason(&out, 1), Some(Reason::NO_ERROR), "{out:?}");
    assert_eq!(c.conn.active_streams(), 0);
    c.assert_serves(3);
}

// ----- §5.4 Error Handling -----

/// "An endpoint that encounters a connection error SHOULD first send a GOAWAY frame
/// (Section 6.8) with the stream identifier of the last stream that it successfully
/// received from its peer. ... After sending the GOAWAY frame for an error condition,
/// the endpoint MUST close the TCP connection."
#[test]
fn connection_error_names_the_last_stream_and_ends_processing() {
    let mut c = Client::connected(Config::default());
    c.assert_serves(1);
    c.request(3, "/a.B/C", false);
    c.send_bytes(&raw(ringrpc_codec::frame::Kind::Ping, 0, 3, b"onstream"));
    let events = c.events();
    assert!(
        matches!(
            closed_error(&events),
            Some(Error::Connection {
                reason: Reason::PROTOCOL_ERROR,
                ..
            })
        ),
        "{events:?}"
    );
    assert_eq!(expect_goaway(&c.transmit(), Reason::PROTOCOL_ERROR), 3);
    assert!(c.conn.is_closed());
    c.request(5, "/a.B/C", true);
    c.send_bytes(&ping(*b"ignored!"));
    assert!(
        c.events().is_empty(),
        "nothing is processed after a connection error"
    );
    assert!(c.transmit().is_empty());
}

/// "To avoid looping, an endpoint MUST NOT send a RST_STREAM in response to a
/// RST_STREAM frame."
#[test]
fn rst_stream_is_not_answered_with_rst_stream() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", false);
    let _ = c.events();
    c.conn
        .send_message(StreamId(1), bytes::Bytes::from_static(b"partial"), false)
        .unwrap();
    c.send_bytes(&rst(1, Reason::INTERNAL_ERROR));
    c.conn.release_stream(StreamId(1));
    let out = c.transmit();
    assert!(
        out.is_empty(),
        "nothing more on a stream the client reset: {out:?}"
    );
}

/// "The first stream error reported for a given stream prevents any other errors on
/// that stream from being reported."
#[test]
fn one_rst_stream_per_stream_error() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", true);
    c.message(1, b"late", false);
    c.message(1, b"later", false);
    c.headers(1, &[("x", "y")], true);
    let out = c.transmit();
    assert_eq!(
        frames_on(&out, 1),
        [Out::Reset {
            id: 1,
            reason: Reason::STREAM_CLOSED
        }],
        "{out:?}"
    );
}

// ----- §5.5 Extending HTTP/2 -----

/// "Implementations MUST ignore unknown or unsupported values in all extensible
/// protocol elements." An unknown error code in RST_STREAM reaches the engine as is.
#[test]
fn unknown_error_code_in_rst_stream_is_passed_on() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", false);
    let _ = c.events();
    c.send_bytes(&rst(1, Reason(0xdead)));
    assert_eq!(
        c.events(),
        [Event::Reset {
            id: StreamId(1),
            reason: Reason(0xdead),
            initiator: Initiator::Remote
        }]
    );
    c.conn.release_stream(StreamId(1));
    c.assert_serves(3);
}

/// A HEADERS frame on an open stream that carries END_STREAM is the request's
/// trailers, not a new stream; PRIORITY flags on it are parsed and ignored.
#[test]
fn headers_with_priority_on_open_stream_are_trailers() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", false);
    let block = c.block(&[("x-checksum", "abc")]);
    let mut payload = vec![0, 0, 0, 0, 15];
    payload.extend_from_slice(&block);
    c.send_bytes(&headers_frame(
        1,
        &payload,
        flags::END_HEADERS | flags::END_STREAM | flags::PRIORITY,
    ));
    let events = c.events();
    assert!(
        matches!(
            &events[..],
            [Event::Request { .. }, Event::EndOfStream { .. }]
        ),
        "{events:?}"
    );
}
