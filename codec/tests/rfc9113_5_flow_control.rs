//! RFC 9113 §5.2 and §6.9: flow control, in both directions.

mod support;

use bytes::Bytes;
use ringrpc_codec::error::Initiator;
use ringrpc_codec::frame::{Kind, StreamId, MAX_WINDOW_SIZE};
use ringrpc_codec::server::{Config, Event, ResponseStatus};
use ringrpc_codec::Reason;
use support::*;

/// Windows of the RFC's initial size on our side, so limits are reached quickly.
fn small_windows() -> Config {
    Config {
        initial_stream_window: 65_535,
        initial_connection_window: 65_535,
        ..Config::default()
    }
}

/// Sends `total` bytes on `id` as complete gRPC messages of at most one frame each,
/// which the engine then holds (it never releases them).
fn send_messages(c: &mut Client, id: u32, mut total: usize) {
    while total > 0 {
        let frame = total.min(16_384);
        assert!(frame >= 5, "a message needs its prefix");
        c.message(id, &vec![1; frame - 5], false);
        total -= frame;
    }
}

// ----- receiving -----

/// "The sender MUST NOT send a flow-controlled frame with a length that exceeds the
/// space available in either of the flow-control windows advertised by the
/// receiver." The receiver answers a stream overrun with a stream error of type
/// FLOW_CONTROL_ERROR (§5.4.2, §7).
#[test]
fn data_beyond_stream_window_is_stream_flow_control_error() {
    let mut c = Client::connected(Config {
        initial_stream_window: 65_535,
        ..Config::default()
    });
    c.request(1, "/a.B/C", false);
    send_messages(&mut c, 1, 65_535);
    let out = c.transmit();
    assert_eq!(
        window_increment(&out, 1),
        0,
        "held messages re-open nothing: {out:?}"
    );
    assert!(!c.events().iter().any(|e| matches!(e, Event::Reset { .. })));
    c.send_bytes(&data(1, &[0], false));
    let events = c.events();
    assert_eq!(
        events,
        [Event::Reset {
            id: StreamId(1),
            reason: Reason::FLOW_CONTROL_ERROR,
            initiator: Initiator::Local
        }]
    );
    c.expect_reset(1, Reason::FLOW_CONTROL_ERROR);
    c.conn.release_stream(StreamId(1));
    c.assert_serves(3);
}

/// "The sender MUST NOT send a flow-controlled frame with a length that exceeds the
/// space available in either of the flow-control windows advertised by the
/// receiver." An overrun of the connection window is a connection error.
#[test]
fn data_beyond_connection_window_is_connection_flow_control_error() {
    let mut c = Client::connected(small_windows());
    c.request(1, "/a.B/C", false);
    c.request(3, "/a.B/C", false);
    send_messages(&mut c, 1, 40_000);
    send_messages(&mut c, 3, 25_535);
    assert!(!c.conn.is_closed());
    c.send_bytes(&data(3, &[0], false));
    assert_eq!(c.expect_goaway(Reason::FLOW_CONTROL_ERROR), 3);
}

/// "The entire DATA frame payload is included in flow control, including the Pad
/// Length and Padding fields if present." (§6.1)
#[test]
fn padding_counts_toward_the_stream_window() {
    let mut c = Client::connected(Config {
        initial_stream_window: 65_535,
        ..Config::default()
    });
    c.request(1, "/a.B/C", false);
    send_messages(&mut c, 1, 60_435);
    // 5,000 bytes of data fit the 5,100 left; with 256 bytes of padding they do not.
    let message = grpc_message(&[2; 4_995]);
    c.send_bytes(&padded_data(1, &message, 255, false));
    c.expect_reset(1, Reason::FLOW_CONTROL_ERROR);
}

/// "The entire DATA frame payload is included in flow control, including the Pad
/// Length and Padding fields if present." Padding is never handed to the engine, so
/// its credit comes back without waiting for the engine.
#[test]
fn padding_is_credited_back_without_the_engine() {
    let mut c = Client::connected(Config {
        initial_stream_window: 65_535,
        ..Config::default()
    });
    c.request(1, "/a.B/C", false);
    let message = grpc_message(&[3; 16_123]);
    for _ in 0..2 {
        c.send_bytes(&padded_data(1, &message, 255, false));
        assert_eq!(
            window_increment(&c.transmit(), 1),
            0,
            "half the window is still open"
        );
    }
    c.send_bytes(&padded_data(1, &message, 255, false));
    let events = c.events();
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::Message { .. }))
            .count(),
        3,
        "{events:?}"
    );
    let out = c.transmit();
    assert_eq!(
        out,
        [Out::WindowUpdate {
            id: 1,
            increment: 3 * 256
        }],
        "only the padding, as the engine holds every message"
    );
}

// ----- WINDOW_UPDATE -----

/// "A sender MUST NOT allow a flow-control window to exceed 2^31-1 octets.  If a
/// sender receives a WINDOW_UPDATE that causes a flow-control window to exceed this
/// maximum, it MUST terminate either the stream or the connection, as appropriate.
/// For streams, the sender sends a RST_STREAM with an error code of
/// FLOW_CONTROL_ERROR"
#[test]
fn window_update_overflowing_stream_window_is_stream_flow_control_error() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", true);
    let _ = c.events();
    c.send_bytes(&window_update(1, MAX_WINDOW_SIZE - 65_535));
    c.expect_silence();
    c.send_bytes(&window_update(1, 1));
    assert_eq!(
        c.events(),
        [Event::Reset {
            id: StreamId(1),
            reason: Reason::FLOW_CONTROL_ERROR,
            initiator: Initiator::Local
        }]
    );
    c.expect_reset(1, Reason::FLOW_CONTROL_ERROR);
    c.conn.release_stream(StreamId(1));
    c.assert_serves(3);
}

/// "... for the connection, a GOAWAY frame with an error code of FLOW_CONTROL_ERROR is
/// sent."
#[test]
fn window_update_overflowing_connection_window_is_connection_flow_control_error() {
    let mut c = Client::connected(Config::default());
    c.send_bytes(&window_update(0, MAX_WINDOW_SIZE - 65_535));
    c.expect_silence();
    c.send_bytes(&window_update(0, 1));
    c.expect_goaway(Reason::FLOW_CONTROL_ERROR);
}

/// "A receiver MUST treat the receipt of a WINDOW_UPDATE frame with a flow-control
/// window increment of 0 as a stream error (Section 5.4.2) of type PROTOCOL_ERROR"
#[test]
fn window_update_with_zero_increment_on_stream_is_stream_protocol_error() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", false);
    let _ = c.events();
    c.send_bytes(&window_update(1, 0));
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

/// "... errors on the connection flow-control window MUST be treated as a connection
/// error (Section 5.4.1)."
#[test]
fn window_update_with_zero_increment_on_connection_is_connection_protocol_error() {
    let mut c = Client::connected(Config::default());
    c.send_bytes(&window_update(0, 0));
    c.expect_goaway(Reason::PROTOCOL_ERROR);
}

/// "A WINDOW_UPDATE frame with a length other than 4 octets MUST be treated as a
/// connection error (Section 5.4.1) of type FRAME_SIZE_ERROR."
#[test]
fn window_update_with_wrong_length_is_connection_frame_size_error() {
    for payload in [&[0, 0, 1][..], &[0, 0, 0, 1, 0]] {
        let mut c = Client::connected(Config::default());
        c.request(1, "/a.B/C", false);
        c.send_bytes(&raw(Kind::WindowUpdate, 0, 1, payload));
        c.expect_goaway(Reason::FRAME_SIZE_ERROR);
    }
}

// ----- sending -----

/// Answers stream `id` with one message of `len` bytes (prefix included) and OK.
fn respond_with(c: &mut Client, id: u32, len: usize) {
    c.conn
        .send_message(StreamId(id), Bytes::from(vec![9u8; len - 5]), false)
        .unwrap();
    c.conn
        .send_trailers(StreamId(id), ResponseStatus::OK, [])
        .unwrap();
    c.conn.release_stream(StreamId(id));
}

/// "A sender MUST respect flow-control limits imposed by a receiver." (§5.2.1) The
/// stream window of 65,535 stalls a larger response, in frames of at most the
/// default SETTINGS_MAX_FRAME_SIZE; trailers wait behind the data.
#[test]
fn response_larger_than_stream_window_is_split_and_stalls() {
    let mut c = Client::connected(Config::default());
    c.send_bytes(&window_update(0, 1 << 20));
    c.request(1, "/a.B/C", true);
    let _ = c.events();
    respond_with(&mut c, 1, 100_000);
    let out = c.transmit();
    assert_eq!(data_len(&out, 1), 65_535);
    assert!(out
        .iter()
        .all(|f| !matches!(f, Out::Data { payload, .. } if payload.len() > 16_384)));
    assert!(
        !out.iter().any(|f| matches!(
            f,
            Out::Headers {
                end_stream: true,
                ..
            }
        )),
        "trailers wait: {out:?}"
    );
    assert_eq!(c.conn.queued_send_bytes(StreamId(1)), 100_000 - 65_535);
    assert!(
        !c.conn.wants_transmit(),
        "nothing can be written until the window opens"
    );
    c.send_bytes(&window_update(1, 10_000));
    let out = c.transmit();
    assert_eq!(data_len(&out, 1), 10_000);
    c.send_bytes(&window_update(1, 100_000));
    let out = c.transmit();
    assert_eq!(data_len(&out, 1), 100_000 - 75_535);
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
    assert_eq!(c.conn.active_streams(), 0);
}

/// "The sender MUST NOT send a flow-controlled frame with a length that exceeds the
/// space available in either of the flow-control windows advertised by the
/// receiver." The connection window is shared by all streams.
#[test]
fn responses_share_the_connection_window() {
    let mut c = Client::connected_with(Config::default(), &[(INITIAL_WINDOW_SIZE, 1 << 20)]);
    for id in [1, 3, 5] {
        c.request(id, "/a.B/C", true);
    }
    let _ = c.events();
    for id in [1, 3, 5] {
        respond_with(&mut c, id, 30_000);
    }
    let first = c.transmit();
    assert_eq!(
        data_len(&first, 1) + data_len(&first, 3) + data_len(&first, 5),
        65_535
    );
    assert!(
        !c.conn.wants_transmit(),
        "stalled on the connection window, nothing to write"
    );
    assert!(c.transmit().is_empty());
    c.send_bytes(&window_update(0, 24_464));
    assert!(c.conn.wants_transmit());
    let second = c.transmit();
    assert_eq!(
        data_len(&second, 1) + data_len(&second, 3) + data_len(&second, 5),
        24_464
    );
    assert_eq!(c.conn.active_streams(), 1, "one byte short");
    c.send_bytes(&window_update(0, 1));
    let third = c.transmit();
    let ended = |out: &[Out]| {
        out.iter()
            .filter(|f| {
                matches!(
                    f,
                    Out::Headers {
                        end_stream: true,
                        ..
                    }
                )
            })
            .count()
    };
    assert_eq!(ended(&first) + ended(&second), 2, "{}", brief(&second));
    assert_eq!(ended(&third), 1, "{}", brief(&third));
    assert_eq!(c.conn.active_streams(), 0);
}

/// A stream waiting for the connection window that the client resets goes away
/// without the window ever opening: it stops counting against the concurrency limit.
#[test]
fn stream_stalled_on_connection_window_can_be_reset() {
    let mut c = Client::connected_with(
        Config {
            max_concurrent_streams: 1,
            ..Config::default()
        },
        &[(INITIAL_WINDOW_SIZE, 1 << 20)],
    );
    c.request(1, "/a.B/C", true);
    let _ = c.events();
    respond_with(&mut c, 1, 100_000);
    assert_eq!(data_len(&c.transmit(), 1), 65_535);
    c.send_bytes(&rst(1, Reason::CANCEL));
    assert!(c.transmit().is_empty());
    assert_eq!(c.conn.active_streams(), 0);
    c.send_bytes(&window_update(0, 1 << 20));
    c.assert_serves(3);
}

/// "When the value of SETTINGS_INITIAL_WINDOW_SIZE changes, a receiver MUST adjust the
/// size of all stream flow-control windows that it maintains by the difference
/// between the new value and the old value." and "A sender MUST track the negative
/// flow-control window and MUST NOT send new flow-controlled frames until it receives
/// WINDOW_UPDATE frames that cause the flow-control window to become positive." (§6.9.2)
#[test]
fn initial_window_size_reduction_makes_send_window_negative_until_window_update() {
    let mut c = Client::connected(Config::default());
    c.send_bytes(&window_update(0, 1 << 20));
    c.request(1, "/a.B/C", true);
    let _ = c.events();
    c.conn
        .send_message(StreamId(1), Bytes::from(vec![1u8; 59_995]), false)
        .unwrap();
    assert_eq!(data_len(&c.transmit(), 1), 60_000);
    // 16,384 - 65,535 + 5,535 = -43,616.
    c.send_bytes(&settings(&[(INITIAL_WINDOW_SIZE, 16_384)]));
    c.conn
        .send_message(StreamId(1), Bytes::from(vec![2u8; 995]), false)
        .unwrap();
    let out = c.transmit();
    assert!(out.iter().any(|f| matches!(f, Out::Settings(s) if s.ack)));
    assert_eq!(data_len(&out, 1), 0, "{out:?}");
    c.send_bytes(&window_update(1, 43_616));
    assert_eq!(
        data_len(&c.transmit(), 1),
        0,
        "a window of zero is not positive"
    );
    c.send_bytes(&window_update(1, 1));
    let out = c.transmit();
    assert_eq!(
        out,
        [Out::Data {
            id: 1,
            payload: Bytes::from_static(&[0]),
            end_stream: false
        }]
    );
    assert_eq!(c.conn.queued_send_bytes(StreamId(1)), 999);
    c.send_bytes(&window_update(1, 5_000));
    assert_eq!(data_len(&c.transmit(), 1), 999);
}

/// "When the value of SETTINGS_INITIAL_WINDOW_SIZE changes, a receiver MUST adjust the
/// size of all stream flow-control windows that it maintains by the difference" — an
/// increase resumes stalled streams without any WINDOW_UPDATE.
#[test]
fn initial_window_size_increase_resumes_stalled_streams() {
    let mut c = Client::connected(Config::default());
    c.send_bytes(&window_update(0, 1 << 20));
    c.request(1, "/a.B/C", true);
    let _ = c.events();
    respond_with(&mut c, 1, 100_000);
    assert_eq!(data_len(&c.transmit(), 1), 65_535);
    c.send_bytes(&settings(&[(INITIAL_WINDOW_SIZE, 100_000)]));
    let out = c.transmit();
    assert_eq!(data_len(&out, 1), 100_000 - 65_535);
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
}

/// "An endpoint MUST treat a change to SETTINGS_INITIAL_WINDOW_SIZE that causes any
/// flow-control window to exceed the maximum size as a connection error (Section
/// 5.4.1) of type FLOW_CONTROL_ERROR."
#[test]
fn initial_window_size_change_overflowing_a_stream_window_is_connection_flow_control_error() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", true);
    c.send_bytes(&window_update(1, MAX_WINDOW_SIZE - 65_535));
    c.send_bytes(&settings(&[(INITIAL_WINDOW_SIZE, 65_536)]));
    c.expect_goaway(Reason::FLOW_CONTROL_ERROR);
}

/// "A SETTINGS frame cannot alter the connection flow-control window."
#[test]
fn initial_window_size_does_not_change_the_connection_window() {
    let mut c = Client::connected(Config::default());
    c.send_bytes(&settings(&[(INITIAL_WINDOW_SIZE, 1 << 20)]));
    c.request(1, "/a.B/C", true);
    let _ = c.events();
    respond_with(&mut c, 1, 100_000);
    assert_eq!(
        data_len(&c.transmit(), 1),
        65_535,
        "still the connection's 65,535"
    );
}

/// "Values greater than 2^14 (16,384) MUST NOT be sent unless the receiver has set a
/// larger value for SETTINGS_MAX_FRAME_SIZE." (§4.1) and, once it has, larger frames
/// may be used.
#[test]
fn data_frames_follow_the_client_max_frame_size() {
    let mut c = Client::connected_with(
        Config::default(),
        &[(INITIAL_WINDOW_SIZE, 1 << 20), (MAX_FRAME_SIZE, 20_000)],
    );
    c.send_bytes(&window_update(0, 1 << 20));
    c.request(1, "/a.B/C", true);
    let _ = c.events();
    respond_with(&mut c, 1, 50_000);
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

/// "Values greater than 2^14 (16,384) MUST NOT be sent unless the receiver has set a
/// larger value for SETTINGS_MAX_FRAME_SIZE." A header block larger than that goes
/// out as HEADERS plus CONTINUATION frames.
#[test]
fn large_response_header_block_is_split_into_continuations() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", true);
    let _ = c.events();
    let big: String = (0..40_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    c.conn
        .send_headers(
            StreamId(1),
            [(Bytes::from_static(b"x-big"), Bytes::from(big.clone()))],
        )
        .unwrap();
    c.respond(1, b"body");
    let out = c.transmit();
    let Some(Out::Headers {
        fields,
        end_stream: false,
        ..
    }) = out.first()
    else {
        panic!("{out:?}")
    };
    assert_eq!(field(fields, "x-big"), Some(big.as_str()));
    let kinds: Vec<Kind> = c.raw_output.iter().map(|(h, _)| h.kind).collect();
    assert!(kinds.contains(&Kind::Continuation), "{kinds:?}");
    assert!(c.raw_output.iter().all(|(h, _)| h.len <= 16_384));
}
