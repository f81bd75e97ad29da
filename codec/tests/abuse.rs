//! Abuse defences added on top of the limits in limits.rs: refused streams drawing
//! on the reset budget, a GOAWAY answering the client's error GOAWAY, the
//! CONTINUATION limit following a raised header list limit, and the send-stall
//! timeout for streams whose client keeps its window shut.

mod support;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ringrpc_codec::error::Initiator;
use ringrpc_codec::frame::{flags, StreamId};
use ringrpc_codec::hpack::Indexing;
use ringrpc_codec::server::{min_continuation_frames, Config, Event, ResponseStatus};
use ringrpc_codec::Reason;
use support::*;

// ----- REFUSED_STREAM draws on max_peer_resets -----

#[test]
fn refused_streams_past_the_reset_budget_get_enhance_your_calm() {
    let mut c = Client::connected(Config {
        max_concurrent_streams: 1,
        max_peer_resets: 3,
        ..Config::default()
    });
    // Stream 1 holds the only slot; its handler never finishes.
    c.request(1, "/a.B/C", true);
    assert_eq!(c.events().len(), 2);
    for id in [3, 5, 7] {
        c.request(id, "/a.B/C", true);
        c.expect_reset(id, Reason::REFUSED_STREAM);
    }
    c.request(9, "/a.B/C", true);
    c.expect_goaway(Reason::ENHANCE_YOUR_CALM);
}

#[test]
fn served_calls_restore_the_refusal_budget() {
    let mut c = Client::connected(Config {
        max_concurrent_streams: 1,
        max_peer_resets: 2,
        ..Config::default()
    });
    // A client that overshoots the limit now and then, while its calls complete,
    // is never cut off.
    for round in 0..20u32 {
        let served = 1 + 4 * round;
        let refused = served + 2;
        c.request(served, "/a.B/C", true);
        c.request(refused, "/a.B/C", true);
        assert_eq!(
            reset_reason(&c.transmit(), refused),
            Some(Reason::REFUSED_STREAM)
        );
        c.events();
        c.respond(served, b"ok");
        let out = c.transmit();
        assert_eq!(goaway_reason(&out), None, "round {round}: {}", brief(&out));
    }
    c.assert_serves(81);
}

// ----- a GOAWAY for the client's error GOAWAY -----

#[test]
fn a_client_goaway_with_an_error_is_answered_with_goaway() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", false);
    c.events();
    c.send_bytes(&go_away(0, Reason::PROTOCOL_ERROR));
    let events = c.events();
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::Closed { error, initiator: Initiator::Remote }
                if error.reason() == Reason::PROTOCOL_ERROR
        )),
        "{events:?}"
    );
    let out = c.transmit();
    // The last stream we took in is named, so the client knows what may have run.
    assert!(
        matches!(
            &out[..],
            [Out::GoAway {
                last: 1,
                reason: Reason::NO_ERROR
            }]
        ),
        "{}",
        brief(&out)
    );
    assert!(c.conn.is_closed());
    assert!(c.transmit().is_empty(), "one GOAWAY only");
}

#[test]
fn a_client_goaway_without_error_is_not_answered() {
    let mut c = Client::connected(Config::default());
    c.send_bytes(&go_away(0, Reason::NO_ERROR));
    let events = c.events();
    assert!(matches!(&events[..], [Event::GoAway { .. }]), "{events:?}");
    assert!(c.transmit().is_empty());
    assert!(!c.conn.is_closed());
}

// ----- max_continuation_frames follows max_header_list_size -----

#[test]
fn the_continuation_limit_is_raised_with_the_header_list_limit() {
    let config = Config {
        max_header_list_size: 1024 * 1024,
        ..Config::default()
    };
    assert_eq!(config.max_continuation_frames, 5, "the default, unscaled");
    assert_eq!(config.validated().max_continuation_frames, 64);
    assert_eq!(min_continuation_frames(1024 * 1024), 64);
    // An explicit value that covers the header list limit is kept.
    let config = Config {
        max_continuation_frames: 2,
        ..Config::default()
    };
    assert_eq!(config.validated().max_continuation_frames, 2);
}

#[test]
fn a_large_header_list_in_full_frames_passes_a_raised_limit() {
    let limit = 1024 * 1024;
    let mut c = Client::connected(Config {
        max_header_list_size: limit,
        ..Config::default()
    });
    // Just under the limit in fields that do not compress: 1000-octet values of
    // distinct bytes, literal and unindexed, no Huffman.
    let value: String = (0..1000).map(|i| (b'!' + (i % 90) as u8) as char).collect();
    let mut block = BytesMut::new();
    let encoder = c.encoder();
    encoder.set_huffman(false);
    encoder.begin_block(&mut block);
    let mut size = 0;
    for (name, value) in grpc_request("/a.B/Large") {
        encoder.encode_field(name.as_bytes(), value.as_bytes(), Indexing::No, &mut block);
        size += name.len() + value.len() + 32;
    }
    let mut i = 0;
    while size + 1100 < limit as usize {
        let name = format!("x-pad-{i:05}");
        encoder.encode_field(name.as_bytes(), value.as_bytes(), Indexing::No, &mut block);
        size += name.len() + value.len() + 32;
        i += 1;
    }
    let chunks: Vec<&[u8]> = block.chunks(16_384).collect();
    assert!(
        chunks.len() > 6,
        "more frames than the unscaled default allows"
    );
    c.send_bytes(&headers_frame(1, chunks[0], flags::END_STREAM));
    for (n, chunk) in chunks[1..].iter().enumerate() {
        c.send_bytes(&continuation(1, chunk, n == chunks.len() - 2));
    }
    let events = c.events();
    let Some(Event::Request { head, .. }) = events.first() else {
        panic!("request not accepted: {events:?}")
    };
    assert_eq!(head.metadata.len(), i);
    assert!(!c.conn.is_closed());
}

// ----- send_stall_timeout -----

const STALL: Duration = Duration::from_secs(10);

/// A connected client whose streams start with a send window of zero, and a call
/// on stream 1 with `messages` of 1000 bytes queued that cannot be sent.
fn stalled_call(messages: usize) -> Client {
    let mut c = Client::connected_with(
        Config {
            send_stall_timeout: STALL,
            ..Config::default()
        },
        &[(INITIAL_WINDOW_SIZE, 0)],
    );
    assert_eq!(c.conn.send_stall_deadline(), None, "nothing waits yet");
    c.request(1, "/a.B/Stream", true);
    c.events();
    for _ in 0..messages {
        c.conn
            .send_message(StreamId(1), Bytes::from(vec![7; 1000]), false)
            .unwrap();
    }
    let out = c.transmit();
    assert_eq!(data_len(&out, 1), 0, "no window, no data: {}", brief(&out));
    c
}

#[test]
fn a_stream_the_client_gives_no_window_is_reset_after_the_stall_timeout() {
    let mut c = stalled_call(3);
    let start = c.now;
    assert_eq!(c.conn.send_stall_deadline(), Some(start + STALL));
    // Not before its time.
    c.advance(STALL - Duration::from_millis(1));
    c.conn.reset_stalled_streams(c.now);
    c.expect_silence();
    c.advance(Duration::from_millis(1));
    c.conn.reset_stalled_streams(c.now);
    assert_eq!(
        c.events(),
        [Event::Reset {
            id: StreamId(1),
            reason: Reason::CANCEL,
            initiator: Initiator::Local
        }]
    );
    c.expect_reset(1, Reason::CANCEL);
    assert_eq!(c.conn.send_stall_deadline(), None);
    assert_eq!(c.conn.queued_send_bytes(StreamId(1)), 0, "queue dropped");
    c.conn.release_stream(StreamId(1));
    assert_eq!(c.conn.active_streams(), 0);
    // The connection goes on once the client opens its windows.
    c.send_bytes(&settings(&[(INITIAL_WINDOW_SIZE, 65_535)]));
    let _ = c.transmit();
    c.assert_serves(3);
}

#[test]
fn a_slow_reader_that_keeps_granting_window_is_not_reset() {
    let mut c = stalled_call(20);
    // A byte-sized window now and then, each within the timeout: every grant
    // restarts the clock.
    for _ in 0..12 {
        c.advance(STALL - Duration::from_secs(1));
        c.conn.reset_stalled_streams(c.now);
        assert!(c.events().is_empty());
        c.send_bytes(&window_update(1, 100));
        let out = c.transmit();
        assert_eq!(data_len(&out, 1), 100, "{}", brief(&out));
        assert_eq!(reset_reason(&out, 1), None);
        assert_eq!(c.conn.send_stall_deadline().map(|d| d > c.now), Some(true));
    }
    // Twelve grants stretched the call over 108 s, twice the default timeout.
    assert!(c.conn.queued_send_bytes(StreamId(1)) > 0);
}

#[test]
fn a_finished_response_stuck_behind_a_shut_window_is_dropped_too() {
    let mut c = stalled_call(1);
    c.conn
        .send_trailers(StreamId(1), ResponseStatus::OK, [])
        .unwrap();
    // The handler is done; only the codec still holds the response.
    c.conn.release_stream(StreamId(1));
    assert!(c.transmit().is_empty(), "trailers wait behind the data");
    assert_eq!(c.conn.active_streams(), 1);
    c.advance(STALL);
    c.conn.reset_stalled_streams(c.now);
    assert!(c.events().is_empty(), "no handler to tell");
    c.expect_reset(1, Reason::CANCEL);
    assert_eq!(c.conn.active_streams(), 0);
}

#[test]
fn no_stall_deadline_while_responses_flow() {
    let mut c = Client::connected(Config {
        send_stall_timeout: STALL,
        ..Config::default()
    });
    for id in [1, 3, 5] {
        c.assert_serves(id);
        assert_eq!(c.conn.send_stall_deadline(), None);
    }
}
