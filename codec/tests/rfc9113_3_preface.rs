//! RFC 9113 §3.4: the connection preface, and the handshake deadline around it.

mod support;

use std::time::Duration;

use ringrpc_codec::frame::{Kind, PREFACE};
use ringrpc_codec::server::{Config, Event};
use ringrpc_codec::Reason;
use support::*;

/// "Clients and servers MUST treat an invalid connection preface as a connection
/// error (Section 5.4.1) of type PROTOCOL_ERROR."
#[test]
fn http1_request_instead_of_preface_is_connection_protocol_error() {
    let mut c = Client::new(Config::default());
    c.send_bytes(b"POST /a.B/C HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(
        c.expect_goaway(Reason::PROTOCOL_ERROR),
        0,
        "no stream was processed"
    );
    assert_eq!(
        c.unconsumed(),
        0,
        "nothing of a non-HTTP/2 peer is buffered"
    );
}

/// "Clients and servers MUST treat an invalid connection preface as a connection
/// error (Section 5.4.1) of type PROTOCOL_ERROR."
#[test]
fn preface_diverging_in_its_last_byte_is_connection_protocol_error() {
    let mut c = Client::new(Config::default());
    let mut bad = *PREFACE;
    bad[23] = b'X';
    c.send_bytes(&bad[..23]);
    assert!(c.events().is_empty());
    c.send_bytes(&bad[23..]);
    assert_eq!(c.expect_goaway(Reason::PROTOCOL_ERROR), 0);
}

/// "That is, the connection preface starts with the string
/// "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".  This sequence MUST be followed by a SETTINGS
/// frame" — however the bytes are cut by the transport.
#[test]
fn preface_and_settings_delivered_byte_by_byte_work() {
    let mut c = Client::new(Config::default());
    let mut bytes = PREFACE.to_vec();
    bytes.extend(settings(&[(INITIAL_WINDOW_SIZE, 100_000)]));
    for b in &bytes {
        c.send_bytes(std::slice::from_ref(b));
        assert!(!c.conn.is_closed());
        assert!(c.events().is_empty());
    }
    let out = c.transmit();
    assert!(
        matches!(&out[..], [Out::Settings(s), Out::Settings(ack), ..] if !s.ack && ack.ack),
        "{out:?}"
    );
    c.send_bytes(&settings_ack());
    assert_eq!(c.conn.poll_timeout(), keepalive_deadline(&c));
    c.assert_serves(1);
}

/// "This sequence MUST be followed by a SETTINGS frame (Section 6.5), which MAY be
/// empty."
#[test]
fn ping_as_first_frame_is_connection_protocol_error() {
    let mut c = Client::new(Config::default());
    c.send_bytes(PREFACE);
    c.send_bytes(&ping(*b"12345678"));
    assert_eq!(c.expect_goaway(Reason::PROTOCOL_ERROR), 0);
    let out = c.transmit();
    assert!(
        out.is_empty(),
        "the PING of a failed preface is not answered: {out:?}"
    );
}

/// "This sequence MUST be followed by a SETTINGS frame (Section 6.5), which MAY be
/// empty."
#[test]
fn headers_as_first_frame_is_connection_protocol_error() {
    let mut c = Client::new(Config::default());
    c.send_bytes(PREFACE);
    c.request(1, "/a.B/C", true);
    c.expect_goaway(Reason::PROTOCOL_ERROR);
    assert!(!c
        .events()
        .iter()
        .any(|e| matches!(e, Event::Request { .. })));
}

/// "This sequence MUST be followed by a SETTINGS frame (Section 6.5)": an
/// acknowledgement is not the client's SETTINGS.
#[test]
fn settings_ack_as_first_frame_is_connection_protocol_error() {
    let mut c = Client::new(Config::default());
    c.send_bytes(PREFACE);
    c.send_bytes(&settings_ack());
    c.expect_goaway(Reason::PROTOCOL_ERROR);
}

/// "This sequence MUST be followed by a SETTINGS frame (Section 6.5)": frames of
/// unknown type are not exempt from the rule.
#[test]
fn unknown_frame_as_first_frame_is_connection_protocol_error() {
    let mut c = Client::new(Config::default());
    c.send_bytes(PREFACE);
    c.send_bytes(&raw(Kind::Unknown(0xfa), 0, 0, b"ext"));
    c.expect_goaway(Reason::PROTOCOL_ERROR);
}

/// "The server connection preface consists of a potentially empty SETTINGS frame
/// (Section 6.5) that MUST be the first frame the server sends in the HTTP/2
/// connection."
#[test]
fn server_settings_is_the_first_frame_written_before_any_input() {
    let mut c = Client::new(Config::default());
    assert!(c.conn.wants_transmit());
    let out = c.transmit();
    let Some(Out::Settings(s)) = out.first() else {
        panic!("{out:?}")
    };
    assert!(!s.ack);
    assert_eq!(s.max_concurrent_streams, Some(256));
    assert_eq!(s.initial_window_size, Some(1024 * 1024));
    assert_eq!(s.max_header_list_size, Some(16 * 1024));
    assert_eq!(
        s.enable_push, None,
        "a server may omit SETTINGS_ENABLE_PUSH"
    );
    assert!(!c.conn.wants_transmit());
}

/// "The server connection preface consists of a potentially empty SETTINGS frame
/// (Section 6.5) that MUST be the first frame the server sends in the HTTP/2
/// connection." — even when the first thing to say is an error.
#[test]
fn server_settings_precedes_goaway_for_an_invalid_preface() {
    let mut c = Client::new(Config::default());
    c.send_bytes(b"GET / HTTP/1.1\r\n\r\n");
    let out = c.transmit();
    assert!(
        matches!(&out[..], [Out::Settings(s), Out::GoAway { reason: Reason::PROTOCOL_ERROR, .. }] if !s.ack),
        "{out:?}"
    );
}

/// "The SETTINGS frames received from a peer as part of the connection preface MUST
/// be acknowledged (see Section 6.5.3) after sending the connection preface."
#[test]
fn client_settings_are_acknowledged_after_the_server_preface() {
    let mut c = Client::new(Config::default());
    c.send_bytes(PREFACE);
    c.send_bytes(&settings(&[]));
    let out = c.transmit();
    assert!(
        matches!(&out[..], [Out::Settings(s), Out::Settings(ack), ..] if !s.ack && ack.ack),
        "{out:?}"
    );
}

/// "If the sender of a SETTINGS frame does not receive an acknowledgment within a
/// reasonable amount of time, it MAY issue a connection error (Section 5.4.1) of type
/// SETTINGS_TIMEOUT."
#[test]
fn settings_never_acknowledged_is_settings_timeout() {
    let mut c = Client::new(Config::default());
    let start = c.now;
    c.send_bytes(PREFACE);
    c.send_bytes(&settings(&[]));
    let _ = c.transmit();
    c.request(1, "/a.B/C", true);
    assert_eq!(c.conn.poll_timeout(), Some(start + Duration::from_secs(10)));
    c.advance(Duration::from_secs(10));
    let now = c.now;
    c.conn.handle_timeout(now);
    let last = c.expect_goaway(Reason::SETTINGS_TIMEOUT);
    assert_eq!(
        last, 1,
        "the stream received before the timeout may have been processed"
    );
    assert_eq!(c.conn.poll_timeout(), None);
}

/// A connection that never sends the preface is closed when the handshake deadline
/// passes (a connection error, §5.4.1, with GOAWAY).
#[test]
fn preface_never_sent_times_out_with_goaway() {
    let mut c = Client::new(Config::default());
    let deadline = c
        .conn
        .poll_timeout()
        .expect("handshake deadline armed at accept");
    c.conn.handle_timeout(deadline - Duration::from_millis(1));
    assert!(!c.conn.is_closed(), "not before the deadline");
    c.conn.handle_timeout(deadline);
    assert_eq!(c.expect_goaway(Reason::PROTOCOL_ERROR), 0);
}

/// A slow client trickling the preface gets no more time than one that sends nothing.
#[test]
fn partial_preface_times_out_with_goaway() {
    let mut c = Client::new(Config::default());
    let deadline = c.conn.poll_timeout().unwrap();
    for b in &PREFACE[..20] {
        c.advance(Duration::from_millis(400));
        c.send_bytes(std::slice::from_ref(b));
    }
    assert_eq!(
        c.conn.poll_timeout(),
        Some(deadline),
        "input does not push the deadline back"
    );
    c.conn.handle_timeout(deadline);
    c.expect_goaway(Reason::PROTOCOL_ERROR);
}

/// The preface without the SETTINGS that "MUST" follow it is not a finished handshake.
#[test]
fn preface_without_client_settings_times_out_with_goaway() {
    let mut c = Client::new(Config::default());
    c.send_bytes(PREFACE);
    let _ = c.transmit();
    let deadline = c
        .conn
        .poll_timeout()
        .expect("still waiting for the client SETTINGS");
    c.conn.handle_timeout(deadline);
    c.expect_goaway(Reason::PROTOCOL_ERROR);
}

/// Once both SETTINGS are exchanged and acknowledged there is no deadline left.
#[test]
fn completed_handshake_disarms_the_timer() {
    let mut c = Client::connected(Config::default());
    assert_eq!(c.conn.poll_timeout(), keepalive_deadline(&c));
    c.advance(Duration::from_secs(3600));
    let now = c.now;
    c.conn.handle_timeout(now);
    c.assert_serves(1);
}

/// An ACK for SETTINGS the server has not sent yet acknowledges nothing: the server
/// keeps waiting for the real one.
#[test]
fn settings_ack_before_server_settings_does_not_complete_the_handshake() {
    let mut c = Client::new(Config::default());
    c.send_bytes(PREFACE);
    c.send_bytes(&settings(&[]));
    c.send_bytes(&settings_ack());
    let _ = c.transmit();
    let deadline = c
        .conn
        .poll_timeout()
        .expect("our SETTINGS are not acknowledged yet");
    c.send_bytes(&settings_ack());
    assert_eq!(c.conn.poll_timeout(), keepalive_deadline(&c));
    c.conn.handle_timeout(deadline);
    c.assert_serves(1);
}

/// After the handshake the only timer left is the keepalive PING, due
/// `keepalive_time` after the last input.
fn keepalive_deadline(c: &Client) -> Option<std::time::Instant> {
    c.conn.config().keepalive_time.map(|time| c.now + time)
}
