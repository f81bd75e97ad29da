//! A connection's life after the handshake, driven with explicit `now` values:
//! keepalive PINGs and their ACK deadline, the client PING policy (gRFC A8), the
//! idle and age limits with their graceful GOAWAY, and the deadline of a drain's
//! PING.

mod support;

use std::time::{Duration, Instant};

use ringrpc_codec::error::Initiator;
use ringrpc_codec::frame::{Kind, StreamId};
use ringrpc_codec::server::{Config, Event, ResponseStatus};
use ringrpc_codec::Reason;
use support::*;

const SEC: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// Runs the timers at `c.now`.
fn tick(c: &mut Client) {
    let now = c.now;
    c.conn.handle_timeout(now);
}

/// Advances the clock to `at` and runs the timers.
fn tick_at(c: &mut Client, at: Instant) {
    c.now = at;
    tick(c);
}

/// The PINGs (not ACKs) in `out`, by payload.
fn pings(out: &[Out]) -> Vec<[u8; 8]> {
    out.iter()
        .filter_map(|f| match f {
            Out::Ping(p) if !p.ack => Some(p.payload),
            _ => None,
        })
        .collect()
}

/// The PING ACKs in `out`.
fn ping_acks(out: &[Out]) -> usize {
    out.iter()
        .filter(|f| matches!(f, Out::Ping(p) if p.ack))
        .count()
}

/// The GOAWAY frames of `out` as (last stream id, reason).
fn goaways(out: &[Out]) -> Vec<(u32, Reason)> {
    out.iter()
        .filter_map(|f| match f {
            Out::GoAway { last, reason } => Some((*last, *reason)),
            _ => None,
        })
        .collect()
}

/// The debug data of the most recent GOAWAY the server wrote.
fn last_goaway_debug(c: &Client) -> String {
    let (_, payload) = c
        .raw_output
        .iter()
        .rev()
        .find(|(head, _)| head.kind == Kind::GoAway)
        .expect("a GOAWAY was written");
    String::from_utf8(payload[8..].to_vec()).unwrap()
}

/// Opens stream `id` with a request the engine accepts, leaving it open.
fn open_call(c: &mut Client, id: u32) {
    c.request(id, "/test.Echo/Stream", false);
    let events = c.events();
    assert!(
        matches!(events.first(), Some(Event::Request { .. })),
        "{events:?}"
    );
}

/// Ends stream `id` the way a handler does, and writes its response.
fn finish_call(c: &mut Client, id: u32) -> Vec<Out> {
    c.message(id, b"", true);
    let _ = c.events();
    let id = StreamId(id);
    c.conn.send_trailers(id, ResponseStatus::OK, []).unwrap();
    c.conn.release_stream(id);
    c.transmit()
}

#[test]
fn defaults_are_the_documented_values() {
    let c = Config::default();
    assert_eq!(c.keepalive_time, Some(2 * HOUR));
    assert_eq!(c.keepalive_timeout, 20 * SEC);
    assert_eq!(c.min_ping_interval, 5 * MINUTE);
    assert!(!c.permit_ping_without_stream);
    assert_eq!(c.max_ping_strikes, 2);
    assert_eq!(c.max_connection_idle, None);
    assert_eq!(c.max_connection_age, None);
    assert_eq!(c.max_connection_age_grace, None);
    assert_eq!(c.handshake_timeout, 10 * SEC);
}

// ----- keepalive -----

fn keepalive(time: Duration, timeout: Duration) -> Config {
    Config {
        keepalive_time: Some(time),
        keepalive_timeout: timeout,
        ..Config::default()
    }
}

#[test]
fn keepalive_pings_after_keepalive_time_without_input() {
    let mut c = Client::connected(keepalive(30 * SEC, 2 * SEC));
    let start = c.now;
    assert_eq!(c.conn.poll_timeout(), Some(start + 30 * SEC));
    tick_at(&mut c, start + 30 * SEC - Duration::from_nanos(1));
    c.expect_silence();
    tick_at(&mut c, start + 30 * SEC);
    let out = c.transmit();
    let [payload] = pings(&out)[..] else {
        panic!("one keepalive PING: {out:?}")
    };
    assert_eq!(
        c.conn.poll_timeout(),
        Some(start + 32 * SEC),
        "the ACK is due keepalive_timeout later"
    );
    // The ACK comes: the connection lives on, and the next PING is due
    // keepalive_time after this input.
    c.advance(SEC);
    c.send_bytes(&ping_ack(payload));
    assert!(!c.conn.is_closed());
    assert_eq!(c.conn.poll_timeout(), Some(start + 61 * SEC));
    tick_at(&mut c, start + 32 * SEC);
    c.expect_silence();
    c.assert_serves(1);
}

#[test]
fn keepalive_without_ack_closes_with_goaway_and_cancels_calls() {
    let mut c = Client::connected(keepalive(30 * SEC, 2 * SEC));
    let start = c.now;
    open_call(&mut c, 1);
    // Streams or not, the server probes a silent client.
    tick_at(&mut c, start + 30 * SEC);
    assert_eq!(pings(&c.transmit()).len(), 1);
    tick_at(&mut c, start + 32 * SEC - Duration::from_nanos(1));
    assert!(!c.conn.is_closed());
    tick_at(&mut c, start + 32 * SEC);
    let last = c.expect_goaway(Reason::NO_ERROR);
    assert_eq!(last, 1, "the open stream may have been processed");
    assert_eq!(last_goaway_debug(&c), "keepalive ping not acknowledged");
    assert_eq!(c.conn.poll_timeout(), None);
}

/// Only the ACK answers the keepalive: other frames show the client is sending,
/// not that it reads what we send.
#[test]
fn keepalive_needs_the_ack_itself() {
    let mut c = Client::connected(keepalive(30 * SEC, 2 * SEC));
    let start = c.now;
    tick_at(&mut c, start + 30 * SEC);
    assert_eq!(pings(&c.transmit()).len(), 1);
    c.advance(SEC);
    c.send_bytes(&window_update(0, 1));
    c.send_bytes(&ping_ack(*b"notours!"));
    tick_at(&mut c, start + 32 * SEC);
    c.expect_goaway(Reason::NO_ERROR);
}

#[test]
fn input_pushes_the_keepalive_back() {
    let mut c = Client::connected(keepalive(30 * SEC, 2 * SEC));
    let start = c.now;
    c.advance(29 * SEC);
    c.send_bytes(&window_update(0, 1));
    // The engine may still wake at the old deadline: nothing is due then.
    tick_at(&mut c, start + 30 * SEC);
    c.expect_silence();
    assert_eq!(c.conn.poll_timeout(), Some(start + 59 * SEC));
    tick_at(&mut c, start + 59 * SEC);
    assert_eq!(pings(&c.transmit()).len(), 1);
}

#[test]
fn keepalive_off_never_pings() {
    let mut c = Client::connected(Config {
        keepalive_time: None,
        ..Config::default()
    });
    assert_eq!(c.conn.poll_timeout(), None);
    c.advance(24 * 365 * HOUR);
    tick(&mut c);
    c.expect_silence();
    c.assert_serves(1);
}

/// The handshake has its own deadline; keepalive starts once the client's preface
/// and SETTINGS are in.
#[test]
fn keepalive_waits_for_the_handshake() {
    let mut c = Client::new(Config {
        handshake_timeout: 10 * SEC,
        ..keepalive(SEC, SEC)
    });
    let start = c.now;
    assert_eq!(c.conn.poll_timeout(), Some(start + 10 * SEC));
    tick_at(&mut c, start + 5 * SEC);
    assert!(pings(&c.transmit()).is_empty());
    assert!(!c.conn.is_closed());
}

// ----- the client PING policy -----

/// Sends a PING at `c.now` and returns whether the connection is still open.
fn client_ping(c: &mut Client) -> bool {
    c.send_bytes(&ping(*b"clientpg"));
    !c.conn.is_closed()
}

#[test]
fn pings_at_min_ping_interval_during_a_call_are_fine() {
    let mut c = Client::connected(Config::default());
    open_call(&mut c, 1);
    for _ in 0..20 {
        assert!(client_ping(&mut c));
        assert_eq!(ping_acks(&c.transmit()), 1);
        c.advance(5 * MINUTE);
    }
}

#[test]
fn third_strike_gets_too_many_pings() {
    let mut c = Client::connected(Config::default());
    open_call(&mut c, 1);
    assert!(client_ping(&mut c), "the first PING is never a strike");
    c.advance(MINUTE);
    assert!(client_ping(&mut c), "strike one");
    c.advance(MINUTE);
    assert!(client_ping(&mut c), "strike two");
    let _ = c.transmit();
    c.advance(MINUTE);
    assert!(!client_ping(&mut c), "strike three");
    assert_eq!(c.expect_goaway(Reason::ENHANCE_YOUR_CALM), 1);
    assert_eq!(last_goaway_debug(&c), "too_many_pings");
}

#[test]
fn max_ping_strikes_changed() {
    let mut c = Client::connected(Config {
        max_ping_strikes: 0,
        min_ping_interval: 10 * SEC,
        ..Config::default()
    });
    open_call(&mut c, 1);
    assert!(client_ping(&mut c));
    c.advance(10 * SEC);
    assert!(client_ping(&mut c), "at the interval: no strike");
    c.advance(9 * SEC);
    assert!(!client_ping(&mut c));
    c.expect_goaway(Reason::ENHANCE_YOUR_CALM);
}

/// Clients probe bandwidth with a PING when our data arrives (grpc-go's BDP
/// estimator): a PING after HEADERS or DATA from us costs nothing and clears the
/// strikes.
#[test]
fn a_ping_answering_our_data_clears_the_strikes() {
    let mut c = Client::connected(Config::default());
    open_call(&mut c, 1);
    for round in 0..10 {
        assert!(client_ping(&mut c), "round {round}");
        c.advance(SEC);
        assert!(client_ping(&mut c), "strike one, round {round}");
        c.advance(SEC);
        assert!(client_ping(&mut c), "strike two, round {round}");
        c.conn
            .send_message(StreamId(1), bytes::Bytes::from_static(b"data"), false)
            .unwrap();
        let out = c.transmit();
        assert_eq!(data_len(&out, 1), 9, "{out:?}");
        c.advance(SEC);
    }
    assert!(client_ping(&mut c), "free");
    for strike in 0..2 {
        c.advance(SEC);
        assert!(client_ping(&mut c), "strike {strike}");
    }
    c.advance(SEC);
    assert!(
        !client_ping(&mut c),
        "strikes count again after a free PING"
    );
}

#[test]
fn without_streams_pings_need_two_hours() {
    let mut c = Client::connected(Config::default());
    for _ in 0..5 {
        c.advance(2 * HOUR);
        assert!(client_ping(&mut c));
        let _ = c.transmit();
    }
    // Five minutes is enough during a call, not without one.
    for strike in 0..2 {
        c.advance(5 * MINUTE);
        assert!(client_ping(&mut c), "strike {strike}");
    }
    c.advance(5 * MINUTE);
    assert!(!client_ping(&mut c));
    c.expect_goaway(Reason::ENHANCE_YOUR_CALM);
    assert_eq!(last_goaway_debug(&c), "too_many_pings");
}

#[test]
fn permit_ping_without_stream_applies_min_ping_interval() {
    let mut c = Client::connected(Config {
        permit_ping_without_stream: true,
        min_ping_interval: 10 * SEC,
        ..Config::default()
    });
    for _ in 0..20 {
        c.advance(10 * SEC);
        assert!(client_ping(&mut c));
        let _ = c.transmit();
    }
    for _ in 0..2 {
        c.advance(SEC);
        assert!(client_ping(&mut c));
    }
    c.advance(SEC);
    assert!(!client_ping(&mut c));
    c.expect_goaway(Reason::ENHANCE_YOUR_CALM);
}

#[test]
fn ping_acks_are_not_pings() {
    let mut c = Client::connected(Config::default());
    for i in 0..100u64 {
        c.send_bytes(&ping_ack(i.to_be_bytes()));
    }
    c.expect_silence();
}

/// The two PING defences differ: the policy limits the rate over time, while
/// `max_pending_control_frames` bounds replies we could not write yet, so a
/// flood in one read is stopped even when the policy would let each PING pass.
#[test]
fn a_flood_the_policy_allows_meets_the_pending_reply_limit() {
    let mut c = Client::connected(Config {
        permit_ping_without_stream: true,
        min_ping_interval: Duration::ZERO,
        max_pending_control_frames: 8,
        ..Config::default()
    });
    for _ in 0..8 {
        assert!(client_ping(&mut c));
    }
    assert!(!client_ping(&mut c));
    c.expect_goaway(Reason::ENHANCE_YOUR_CALM);
    assert_eq!(last_goaway_debug(&c), "too many unanswered PING/SETTINGS");
}

// ----- max_connection_idle -----

/// Checks `out` holds the first step of a graceful drain with `debug`, answers
/// its PING, and returns what the server wrote then (the final GOAWAY).
fn ack_drain(c: &mut Client, out: &[Out], debug: &str) -> Vec<Out> {
    assert_eq!(
        goaways(out),
        [(i32::MAX as u32, Reason::NO_ERROR)],
        "GOAWAY(2^31 - 1) first: {out:?}"
    );
    assert_eq!(last_goaway_debug(c), debug);
    let [payload] = pings(out)[..] else {
        panic!("a PING follows the GOAWAY: {out:?}")
    };
    c.send_bytes(&ping_ack(payload));
    c.transmit()
}

#[test]
fn idle_connection_gets_a_graceful_goaway() {
    let mut c = Client::connected(Config {
        max_connection_idle: Some(30 * SEC),
        ..Config::default()
    });
    let start = c.now;
    assert_eq!(c.conn.poll_timeout(), Some(start + 30 * SEC));
    tick_at(&mut c, start + 30 * SEC);
    let out = c.transmit();
    let last = ack_drain(&mut c, &out, "max_idle");
    assert_eq!(goaways(&last), [(0, Reason::NO_ERROR)]);
    assert!(c.conn.is_closed());
    assert!(
        c.events().is_empty(),
        "a graceful close is no connection error"
    );
}

#[test]
fn idle_time_counts_from_the_last_stream() {
    let mut c = Client::connected(Config {
        max_connection_idle: Some(30 * SEC),
        ..Config::default()
    });
    let start = c.now;
    c.advance(20 * SEC);
    open_call(&mut c, 1);
    tick_at(&mut c, start + 30 * SEC);
    tick_at(&mut c, start + 10 * MINUTE);
    c.expect_silence();
    assert_ne!(c.conn.poll_timeout(), Some(start + 30 * SEC));
    let finished = c.now;
    let out = finish_call(&mut c, 1);
    assert_eq!(goaways(&out), []);
    assert_eq!(c.conn.poll_timeout(), Some(finished + 30 * SEC));
    tick_at(&mut c, finished + 30 * SEC - Duration::from_nanos(1));
    c.expect_silence();
    tick_at(&mut c, finished + 30 * SEC);
    let out = c.transmit();
    let last = ack_drain(&mut c, &out, "max_idle");
    assert_eq!(goaways(&last), [(1, Reason::NO_ERROR)]);
    assert!(c.conn.is_closed());
}

#[test]
fn idle_limit_off_by_default() {
    let mut c = Client::connected(Config {
        keepalive_time: None,
        ..Config::default()
    });
    c.advance(1000 * HOUR);
    tick(&mut c);
    c.expect_silence();
}

// ----- the drain PING -----

#[test]
fn drain_without_ping_ack_sends_the_final_goaway_after_keepalive_timeout() {
    let mut c = Client::connected(keepalive(HOUR, 5 * SEC));
    open_call(&mut c, 1);
    c.conn.go_away();
    let written = c.now;
    let out = c.transmit();
    assert_eq!(goaways(&out), [(i32::MAX as u32, Reason::NO_ERROR)]);
    assert_eq!(pings(&out).len(), 1);
    assert_eq!(c.conn.poll_timeout(), Some(written + 5 * SEC));
    tick_at(&mut c, written + 5 * SEC);
    let out = c.transmit();
    assert_eq!(goaways(&out), [(1, Reason::NO_ERROR)], "{out:?}");
    // Streams above the final last-stream-id are ignored; stream 1 completes.
    c.request(3, "/test.Echo/Unary", true);
    assert!(c.events().is_empty());
    let out = finish_call(&mut c, 1);
    assert!(frames_on(&out, 3).is_empty(), "{out:?}");
    assert!(c.conn.is_closed());
}

// ----- max_connection_age and its grace -----

fn aged(age: Duration, grace: Option<Duration>) -> Config {
    Config {
        max_connection_age: Some(age),
        max_connection_age_grace: grace,
        keepalive_time: None,
        ..Config::default()
    }
}

#[test]
fn max_age_drains_gracefully_and_calls_finish() {
    let mut c = Client::connected(aged(HOUR, None));
    let start = c.now;
    assert_eq!(
        c.conn.poll_timeout(),
        Some(start + HOUR),
        "the codec takes the age as given (the engine adds jitter)"
    );
    open_call(&mut c, 1);
    tick_at(&mut c, start + HOUR);
    let out = c.transmit();
    let last = ack_drain(&mut c, &out, "max_age");
    assert_eq!(goaways(&last), [(1, Reason::NO_ERROR)]);
    assert_eq!(last_goaway_debug(&c), "max_age");
    // Without a grace period the call may take as long as it takes.
    tick_at(&mut c, start + 100 * HOUR);
    assert!(!c.conn.is_closed());
    assert!(c.events().is_empty());
    let out = finish_call(&mut c, 1);
    assert_eq!(
        field_of_last_headers(&out, 1).as_deref(),
        Some("0"),
        "the call completes: {out:?}"
    );
    assert!(c.conn.is_closed());
}

#[test]
fn max_age_grace_closes_calls_still_running() {
    let mut c = Client::connected(aged(HOUR, Some(10 * SEC)));
    let start = c.now;
    open_call(&mut c, 1);
    tick_at(&mut c, start + HOUR);
    let out = c.transmit();
    let _ = ack_drain(&mut c, &out, "max_age");
    assert_eq!(c.conn.poll_timeout(), Some(start + HOUR + 10 * SEC));
    tick_at(&mut c, start + HOUR + 10 * SEC - Duration::from_nanos(1));
    assert!(!c.conn.is_closed());
    tick_at(&mut c, start + HOUR + 10 * SEC);
    let events = c.events();
    assert!(
        matches!(
            &events[..],
            [Event::Closed {
                initiator: Initiator::Local,
                ..
            }]
        ),
        "the engine cancels the calls: {events:?}"
    );
    let out = c.transmit();
    assert_eq!(goaways(&out), [(1, Reason::NO_ERROR)]);
    assert_eq!(last_goaway_debug(&c), "max_age grace period over");
    assert!(c.conn.is_closed());
    assert_eq!(c.conn.poll_timeout(), None);
}

/// The grace runs from the first GOAWAY: a client that never acknowledges the
/// drain PING cannot stretch it.
#[test]
fn max_age_grace_holds_without_ping_ack() {
    let mut c = Client::connected(aged(HOUR, Some(10 * SEC)));
    let start = c.now;
    open_call(&mut c, 1);
    tick_at(&mut c, start + HOUR);
    let _ = c.transmit();
    tick_at(&mut c, start + HOUR + 10 * SEC);
    assert!(c.conn.is_closed());
}

#[test]
fn call_ending_within_the_grace_closes_the_connection_cleanly() {
    let mut c = Client::connected(aged(HOUR, Some(10 * SEC)));
    let start = c.now;
    open_call(&mut c, 1);
    tick_at(&mut c, start + HOUR);
    let out = c.transmit();
    let _ = ack_drain(&mut c, &out, "max_age");
    c.advance(SEC);
    let out = finish_call(&mut c, 1);
    assert_eq!(field_of_last_headers(&out, 1).as_deref(), Some("0"));
    assert!(c.conn.is_closed());
    assert!(c.events().is_empty(), "no connection error");
}

/// `grpc-status` of the last header block on stream `id` in `out`.
fn field_of_last_headers(out: &[Out], id: u32) -> Option<String> {
    out.iter().rev().find_map(|f| match f {
        Out::Headers { id: i, fields, .. } if *i == id => {
            field(fields, "grpc-status").map(str::to_owned)
        }
        _ => None,
    })
}
