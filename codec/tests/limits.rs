//! Every `Config` knob: its default is the documented one, and changing it changes
//! what the connection does. The abuse limits are driven with the attack they defend
//! against (HPACK bomb, CONTINUATION flood, Rapid Reset, PING/SETTINGS floods, empty
//! frames, slow handshakes).

mod support;

use std::time::Duration;

use ringrpc_codec::error::Initiator;
use ringrpc_codec::frame::{flags, Kind, StreamId, PREFACE};
use ringrpc_codec::grpc::status;
use ringrpc_codec::server::{default_max_continuation_frames, Config, Event};
use ringrpc_codec::Reason;
use support::*;

#[test]
fn defaults_are_the_documented_values() {
    let c = Config::default();
    assert_eq!(c.max_concurrent_streams, 256);
    assert_eq!(c.initial_stream_window, 1024 * 1024);
    assert_eq!(c.initial_connection_window, 4 * 1024 * 1024);
    assert_eq!(c.max_frame_size, 16_384);
    assert_eq!(c.max_header_list_size, 16 * 1024);
    assert_eq!(c.header_table_size, 4_096);
    assert_eq!(c.max_continuation_frames, 5);
    assert_eq!(
        c.max_continuation_frames,
        default_max_continuation_frames(16 * 1024, 16_384)
    );
    assert_eq!(default_max_continuation_frames(1024 * 1024, 16_384), 80);
    assert_eq!(c.max_message_size, 4 * 1024 * 1024);
    assert_eq!(c.max_partial_message_bytes, 32 * 1024 * 1024);
    assert_eq!(c.max_peer_resets, 100);
    assert_eq!(c.max_error_resets, 1_024);
    assert_eq!(c.max_pending_control_frames, 64);
    assert_eq!(c.max_empty_frames, 100);
    assert_eq!(c.max_new_streams_per_recv, 512);
    assert_eq!(c.handshake_timeout, Duration::from_secs(10));
    assert_eq!(c.clone().validated(), c, "the defaults are in range");
}

/// The SETTINGS frame the server opens with.
fn server_settings(config: Config) -> ringrpc_codec::frame::Settings {
    let mut c = Client::new(config);
    match c.transmit().first() {
        Some(Out::Settings(s)) => *s,
        other => panic!("{other:?}"),
    }
}

/// One gRPC message filling a frame of `frame` bytes.
fn full_frame(id: u32, frame: usize) -> Vec<u8> {
    data(id, &grpc_message(&vec![0; frame - 5]), false)
}

// ----- max_concurrent_streams -----

fn open_streams(c: &mut Client, count: u32) -> Vec<u32> {
    for i in 0..count {
        c.request(1 + 2 * i, "/a.B/C", true);
    }
    c.events()
        .into_iter()
        .filter_map(|e| {
            if let Event::Request { id, .. } = e {
                Some(id.0)
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn max_concurrent_streams_default_admits_256() {
    assert_eq!(
        server_settings(Config::default()).max_concurrent_streams,
        Some(256)
    );
    let mut c = Client::connected(Config::default());
    assert_eq!(open_streams(&mut c, 257).len(), 256);
    c.expect_reset(513, Reason::REFUSED_STREAM);
}

#[test]
fn max_concurrent_streams_changed_refuses_sooner() {
    let config = Config {
        max_concurrent_streams: 3,
        ..Config::default()
    };
    assert_eq!(
        server_settings(config.clone()).max_concurrent_streams,
        Some(3)
    );
    let mut c = Client::connected(config);
    assert_eq!(open_streams(&mut c, 4), [1, 3, 5]);
    c.expect_reset(7, Reason::REFUSED_STREAM);
}

// ----- initial_stream_window -----

/// Fills stream `id` with held messages up to `window`, then sends one byte more.
fn overrun_stream_window(config: Config, window: usize) {
    let mut c = Client::connected(config);
    c.request(1, "/a.B/C", false);
    let frame = full_frame(1, 16_384);
    for _ in 0..window / 16_384 {
        c.send_bytes(&frame);
    }
    if !window.is_multiple_of(16_384) {
        c.send_bytes(&full_frame(1, window % 16_384));
    }
    let out = c.transmit();
    assert_eq!(goaway_reason(&out), None);
    assert_eq!(reset_reason(&out, 1), None, "the window is exactly full");
    c.send_bytes(&data(1, &[0], false));
    c.expect_reset(1, Reason::FLOW_CONTROL_ERROR);
}

#[test]
fn initial_stream_window_default_is_one_mib() {
    assert_eq!(
        server_settings(Config::default()).initial_window_size,
        Some(1 << 20)
    );
    overrun_stream_window(Config::default(), 1 << 20);
}

#[test]
fn initial_stream_window_changed_is_advertised_and_enforced() {
    let config = Config {
        initial_stream_window: 100_000,
        ..Config::default()
    };
    assert_eq!(
        server_settings(config.clone()).initial_window_size,
        Some(100_000)
    );
    overrun_stream_window(config, 100_000);
    // Below the RFC's initial window it would be unusable: clamped to 65,535, which
    // needs no setting at all.
    let config = Config {
        initial_stream_window: 1_000,
        ..Config::default()
    };
    assert_eq!(server_settings(config.clone()).initial_window_size, None);
    overrun_stream_window(config, 65_535);
}

// ----- initial_connection_window -----

#[test]
fn initial_connection_window_default_is_four_mib() {
    let mut c = Client::new(Config::default());
    c.send_bytes(PREFACE);
    c.send_bytes(&settings(&[]));
    let out = c.transmit();
    assert!(
        out.contains(&Out::WindowUpdate {
            id: 0,
            increment: (4 << 20) - 65_535
        }),
        "{out:?}"
    );
    c.send_bytes(&settings_ack());
    // Four streams fill their 1 MiB windows: the connection's 4 MiB are used up.
    let frame: Vec<Vec<u8>> = (0..5).map(|i| full_frame(1 + 2 * i, 16_384)).collect();
    for i in 0..4 {
        c.request(1 + 2 * i, "/a.B/C", false);
        for _ in 0..64 {
            c.send_bytes(&frame[i as usize]);
        }
        let _ = c.events();
    }
    c.request(9, "/a.B/C", false);
    assert!(!c.conn.is_closed());
    c.send_bytes(&data(9, &[0], false));
    c.expect_goaway(Reason::FLOW_CONTROL_ERROR);
}

#[test]
fn initial_connection_window_changed_limits_all_streams() {
    let mut c = Client::new(Config {
        initial_connection_window: 100_000,
        ..Config::default()
    });
    c.send_bytes(PREFACE);
    c.send_bytes(&settings(&[]));
    assert!(c.transmit().contains(&Out::WindowUpdate {
        id: 0,
        increment: 100_000 - 65_535
    }));
    c.send_bytes(&settings_ack());
    c.request(1, "/a.B/C", false);
    c.request(3, "/a.B/C", false);
    for _ in 0..3 {
        c.send_bytes(&full_frame(1, 16_384));
        c.send_bytes(&full_frame(3, 16_384));
    }
    c.send_bytes(&full_frame(3, 100_000 - 6 * 16_384));
    assert!(!c.conn.is_closed());
    c.send_bytes(&data(1, &[0], false));
    c.expect_goaway(Reason::FLOW_CONTROL_ERROR);
    // At the RFC's initial size the window needs no WINDOW_UPDATE at all.
    let mut c = Client::new(Config {
        initial_connection_window: 65_535,
        ..Config::default()
    });
    c.send_bytes(PREFACE);
    c.send_bytes(&settings(&[]));
    assert!(!c
        .transmit()
        .iter()
        .any(|f| matches!(f, Out::WindowUpdate { .. })));
}

// ----- max_frame_size -----

#[test]
fn max_frame_size_default_is_16_kib() {
    assert_eq!(
        server_settings(Config::default()).max_frame_size,
        None,
        "the RFC default needs no setting"
    );
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", false);
    c.send_bytes(&full_frame(1, 16_384));
    c.send_bytes(&raw_with_length(16_385, Kind::Data, 0, 1, &[]));
    c.expect_goaway(Reason::FRAME_SIZE_ERROR);
}

#[test]
fn max_frame_size_changed_admits_larger_frames() {
    let config = Config {
        max_frame_size: 32_768,
        ..Config::default()
    };
    assert_eq!(server_settings(config.clone()).max_frame_size, Some(32_768));
    let mut c = Client::connected(config);
    c.request(1, "/a.B/C", false);
    c.send_bytes(&full_frame(1, 32_768));
    assert!(
        matches!(&c.events()[..], [Event::Request { .. }, Event::Message { message, .. }] if message.data.len() == 32_763)
    );
    c.send_bytes(&raw_with_length(32_769, Kind::Data, 0, 1, &[]));
    c.expect_goaway(Reason::FRAME_SIZE_ERROR);
}

// ----- max_header_list_size -----

/// Size of a header list as RFC 9113 §6.5.2 counts it.
fn list_size(fields: &[(&str, &str)]) -> usize {
    fields.iter().map(|(n, v)| n.len() + v.len() + 32).sum()
}

/// A request whose decoded header list is exactly `size` octets.
fn request_of_size(size: usize, filler: &mut String) -> Vec<(&'static str, String)> {
    let base = grpc_request("/a.B/C");
    let fixed = list_size(&base) + "x-fill".len() + 32;
    *filler = "f".repeat(size - fixed);
    base.into_iter()
        .map(|(n, v)| (n, v.to_string()))
        .chain([("x-fill", filler.clone())])
        .collect()
}

fn send_request_of_size(c: &mut Client, id: u32, size: usize) {
    let mut filler = String::new();
    let fields = request_of_size(size, &mut filler);
    let fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
    assert_eq!(list_size(&fields), size);
    c.headers(id, &fields, true);
}

/// "The value is based on the uncompressed size of field lines, including the length
/// of the name and value in units of octets plus an overhead of 32 octets for each
/// field line." A list over the limit fails the call with RESOURCE_EXHAUSTED.
fn assert_header_list_limit(config: Config, limit: usize) {
    let mut c = Client::connected(config);
    send_request_of_size(&mut c, 1, limit);
    assert!(
        matches!(
            &c.events()[..],
            [Event::Request { .. }, Event::EndOfStream { .. }]
        ),
        "exactly at the limit"
    );
    send_request_of_size(&mut c, 3, limit + 1);
    assert!(c.events().is_empty(), "one octet over");
    let out = c.transmit();
    let [Out::Headers {
        id: 3,
        fields,
        end_stream: true,
    }] = &out[..]
    else {
        panic!("{}", brief(&out))
    };
    assert_eq!(
        field(fields, "grpc-status"),
        Some(status::RESOURCE_EXHAUSTED.to_string().as_str())
    );
    c.assert_serves(5);
}

#[test]
fn max_header_list_size_default_is_16_kib() {
    assert_eq!(
        server_settings(Config::default()).max_header_list_size,
        Some(16 * 1024)
    );
    assert_header_list_limit(Config::default(), 16 * 1024);
}

#[test]
fn max_header_list_size_changed_is_advertised_and_enforced() {
    let config = Config {
        max_header_list_size: 1_000,
        ..Config::default()
    };
    assert_eq!(
        server_settings(config.clone()).max_header_list_size,
        Some(1_000)
    );
    assert_header_list_limit(config, 1_000);
}

/// HPACK bomb: a small block that references one large dynamic-table entry thousands
/// of times decodes to megabytes. The limit is on the decoded size, so the request is
/// refused after work proportional to the block, and the connection goes on.
#[test]
fn hpack_bomb_is_refused_with_resource_exhausted() {
    let mut c = Client::connected(Config::default());
    let big = "b".repeat(2_000);
    let mut fields = grpc_request("/a.B/C");
    fields.push(("x-big", &big));
    c.headers(1, &fields, true);
    assert!(matches!(
        &c.events()[..],
        [Event::Request { .. }, Event::EndOfStream { .. }]
    ));
    c.respond(1, b"ok");
    let _ = c.transmit();

    let mut bomb = c.block(&grpc_request("/a.B/Bomb")).to_vec();
    let reference = c.block(&[("x-big", &big)]);
    assert_eq!(reference.len(), 1, "an indexed field: {reference:?}");
    // 10,000 one-octet references to a 2,037-octet entry: about 10 KB on the wire
    // that decode to over 20 MB.
    bomb.resize(bomb.len() + 10_000, reference[0]);
    assert!(bomb.len() < 16_384, "one frame");
    c.send_bytes(&headers_frame(
        3,
        &bomb,
        flags::END_HEADERS | flags::END_STREAM,
    ));
    assert!(c.events().is_empty());
    let out = c.transmit();
    let [Out::Headers {
        id: 3,
        fields,
        end_stream: true,
    }] = &out[..]
    else {
        panic!("{}", brief(&out))
    };
    assert_eq!(field(fields, ":status"), Some("200"));
    assert_eq!(field(fields, "grpc-status"), Some("8"));
    c.assert_serves(5);
}

// ----- header_table_size -----

/// The dynamic table the client's encoder may use: "The encoder can select any size
/// equal to or less than this value by using signaling specific to the compression
/// format inside a field block".
#[test]
fn header_table_size_default_is_4096() {
    assert_eq!(
        server_settings(Config::default()).header_table_size,
        None,
        "the RFC default needs no setting"
    );
    let mut c = Client::connected(Config::default());
    // Size update to 4,096 (0x3f 0xe1 0x1f), then :method POST.
    c.send_bytes(&headers_frame(
        1,
        &[0x3f, 0xe1, 0x1f, 0x83],
        flags::END_HEADERS | flags::END_STREAM,
    ));
    c.expect_reset(1, Reason::PROTOCOL_ERROR);
    // One octet more than allowed.
    c.send_bytes(&headers_frame(
        3,
        &[0x3f, 0xe2, 0x1f, 0x83],
        flags::END_HEADERS | flags::END_STREAM,
    ));
    c.expect_goaway(Reason::COMPRESSION_ERROR);
}

/// "An endpoint MUST treat a field block that follows an acknowledgment of the
/// reduction to the maximum dynamic table size as a connection error (Section 5.4.1) of
/// type COMPRESSION_ERROR if it does not start with a conformant Dynamic Table Size
/// Update instruction." (RFC 9113 §4.3.1)
#[test]
fn header_table_size_changed_binds_the_client_after_its_ack() {
    let config = Config {
        header_table_size: 256,
        ..Config::default()
    };
    assert_eq!(server_settings(config.clone()).header_table_size, Some(256));
    let mut c = Client::connected(config.clone());
    c.request(1, "/a.B/C", true);
    c.expect_goaway(Reason::COMPRESSION_ERROR);

    let mut c = Client::connected(config.clone());
    c.encoder().update_max_size(256);
    c.assert_serves(1);
    c.assert_serves(3);

    // Before the client acknowledges, the old size is still in force.
    let mut c = Client::new(config);
    c.send_bytes(PREFACE);
    c.send_bytes(&settings(&[]));
    let _ = c.transmit();
    c.assert_serves(1);
}

// ----- max_continuation_frames -----

/// Opens a header block on stream 1 and follows it with `count` CONTINUATION frames
/// that do not end it.
fn continuation_flood(c: &mut Client, count: usize) {
    let block = c.block(&grpc_request("/a.B/C"));
    c.send_bytes(&headers_frame(1, &block[..1], flags::END_STREAM));
    for _ in 0..count {
        c.send_bytes(&continuation(1, &[0x82; 100], false));
    }
}

/// CONTINUATION flood: a header block that never ends must not be buffered for ever.
#[test]
fn max_continuation_frames_default_stops_a_continuation_flood() {
    let mut c = Client::connected(Config::default());
    continuation_flood(&mut c, 5);
    assert!(!c.conn.is_closed());
    c.send_bytes(&continuation(1, &[0x82; 100], false));
    c.expect_goaway(Reason::ENHANCE_YOUR_CALM);
}

#[test]
fn max_continuation_frames_changed() {
    let mut c = Client::connected(Config {
        max_continuation_frames: 2,
        ..Config::default()
    });
    continuation_flood(&mut c, 2);
    assert!(!c.conn.is_closed());
    c.send_bytes(&continuation(1, &[0x82], true));
    c.expect_goaway(Reason::ENHANCE_YOUR_CALM);
}

// ----- max_message_size -----

/// Sends a message prefix announcing `len` bytes and nothing of the body.
fn announce_message(c: &mut Client, id: u32, len: u32) {
    let mut prefix = vec![0];
    prefix.extend_from_slice(&len.to_be_bytes());
    c.send_bytes(&data(id, &prefix, false));
}

fn assert_message_limit(config: Config, limit: u32) {
    let mut c = Client::connected(config);
    c.request(1, "/a.B/C", false);
    announce_message(&mut c, 1, limit);
    assert!(
        matches!(&c.events()[..], [Event::Request { .. }]),
        "a message of exactly the limit is awaited"
    );
    assert!(c.transmit().is_empty());
    c.request(3, "/a.B/C", false);
    announce_message(&mut c, 3, limit + 1);
    assert!(matches!(
        &c.events()[..],
        [
            Event::Request { .. },
            Event::Reset {
                id: StreamId(3),
                ..
            }
        ]
    ));
    let out = c.transmit();
    assert!(
        matches!(&frames_on(&out, 3)[..], [Out::Headers { fields, .. }, Out::Reset { .. }] if field(fields, "grpc-status") == Some("8")),
        "{}",
        brief(&out)
    );
}

#[test]
fn max_message_size_default_is_four_mib() {
    assert_message_limit(Config::default(), 4 << 20);
}

#[test]
fn max_message_size_changed() {
    assert_message_limit(
        Config {
            max_message_size: 10,
            ..Config::default()
        },
        10,
    );
}

// ----- max_partial_message_bytes -----

/// Messages up to 32 KiB and a 64 KiB budget: two nearly complete messages fill it.
fn partial_budget() -> Config {
    Config {
        max_message_size: 32 * 1024,
        max_partial_message_bytes: 64 * 1024,
        ..Config::default()
    }
}

/// Sends the prefix of a message of `len` bytes and its first `body` bytes in
/// frames of 16 KiB, transmitting now and then so the windows keep opening: the
/// connection then holds `5 + body` bytes for the message.
fn send_partial(c: &mut Client, id: u32, len: u32, body: usize) {
    let mut wire = vec![0];
    wire.extend_from_slice(&len.to_be_bytes());
    wire.resize(5 + body, 0x5a);
    for (i, chunk) in wire.chunks(16_384).enumerate() {
        c.send_bytes(&data(id, chunk, false));
        if i % 32 == 31 {
            c.transmit();
        }
    }
}

/// Sends the last `rest` body bytes of a message and ends the stream.
fn finish_partial(c: &mut Client, id: u32, rest: usize) {
    c.send_bytes(&data(id, &vec![0x5a; rest], true));
}

/// Checks that `events` completed a message of `len` bytes on each of `ids`, then
/// let the engine take them.
fn assert_completed(c: &mut Client, events: &[Event], ids: &[u32], len: usize) {
    for &id in ids {
        let got: Vec<usize> = events
            .iter()
            .filter_map(|e| match e {
                Event::Message { id: i, message } if i.0 == id => Some(message.data.len()),
                _ => None,
            })
            .collect();
        assert_eq!(got, [len], "stream {id} completes its message: {events:?}");
        c.conn.release_capacity(StreamId(id), len + 5);
    }
}

/// Checks that nothing in `events` and `out` failed a stream.
fn assert_no_stream_failed(events: &[Event], out: &[Out]) {
    assert!(
        !events.iter().any(|e| matches!(e, Event::Reset { .. })),
        "{events:?}"
    );
    assert!(
        !out.iter().any(|f| matches!(f, Out::Reset { .. })),
        "{}",
        brief(out)
    );
}

/// Checks that stream `id` was answered with RESOURCE_EXHAUSTED naming the budget,
/// then reset, and that its handler was told.
fn assert_over_budget(events: &[Event], out: &[Out], id: u32, budget: usize) {
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::Reset { id: i, initiator: Initiator::Local, .. } if i.0 == id
        )),
        "{events:?}"
    );
    let mine = frames_on(out, id);
    let [Out::Headers { fields, .. }, Out::Reset { .. }] = &mine[..] else {
        panic!("stream {id}: {}", brief(out))
    };
    assert_eq!(field(fields, "grpc-status"), Some("8"));
    let message = field(fields, "grpc-message").unwrap_or_default();
    assert!(message.contains(&budget.to_string()), "{message}");
    assert_eq!(goaway_reason(out), None);
}

#[test]
fn max_partial_message_bytes_default_holds_eight_messages() {
    let mut c = Client::connected(Config::default());
    let len = 4 << 20;
    // Eight messages of the default maximum size, each one byte short of
    // complete but for its prefix: 32 MiB held, exactly the budget.
    let held = 4 << 20;
    for i in 0..8 {
        c.request(1 + 2 * i, "/a.B/C", false);
        send_partial(&mut c, 1 + 2 * i, len, held - 5);
    }
    assert_eq!(c.conn.partial_message_bytes(), 32 << 20);
    let events = c.events();
    let out = c.transmit();
    assert_no_stream_failed(&events, &out);
    // The ninth stream's first body byte crosses it.
    c.request(17, "/a.B/C", false);
    send_partial(&mut c, 17, len, 1);
    let events = c.events();
    let out = c.transmit();
    assert_over_budget(&events, &out, 17, 32 << 20);
    assert_eq!(c.conn.partial_message_bytes(), 32 << 20);
}

#[test]
fn max_partial_message_bytes_at_limit_passes() {
    let mut c = Client::connected(partial_budget());
    c.request(1, "/a.B/C", false);
    c.request(3, "/a.B/C", false);
    send_partial(&mut c, 1, 32 * 1024, 32 * 1024 - 1);
    send_partial(&mut c, 3, 32 * 1024, 32 * 1024 - 9);
    assert_eq!(
        c.conn.partial_message_bytes(),
        64 * 1024,
        "exactly the budget"
    );
    // A message that arrives within one frame holds nothing, budget full or not.
    c.request(5, "/a.B/C", false);
    c.message(5, &[1; 16_000], true);
    assert_eq!(c.conn.partial_message_bytes(), 64 * 1024);
    finish_partial(&mut c, 1, 1);
    finish_partial(&mut c, 3, 9);
    let events = c.events();
    let out = c.transmit();
    assert_no_stream_failed(&events, &out);
    assert_completed(&mut c, &events, &[1, 3], 32 * 1024);
    assert_completed(&mut c, &events, &[5], 16_000);
    assert_eq!(c.conn.partial_message_bytes(), 0);
    for id in [1, 3, 5] {
        c.respond(id, b"ok");
    }
    c.transmit();
    assert_eq!(c.conn.active_streams(), 0);
    assert_eq!(c.conn.partial_message_bytes(), 0);
}

#[test]
fn max_partial_message_bytes_over_limit_fails_only_the_stream_crossing_it() {
    let mut c = Client::connected(partial_budget());
    c.request(1, "/a.B/C", false);
    c.request(3, "/a.B/C", false);
    send_partial(&mut c, 1, 32 * 1024, 32 * 1024 - 1);
    send_partial(&mut c, 3, 32 * 1024, 32 * 1024 - 9);
    c.events();
    c.transmit();
    // Stream 5 starts a message: its prefix alone takes the total over.
    c.request(5, "/a.B/C", false);
    send_partial(&mut c, 5, 100, 0);
    let events = c.events();
    let out = c.transmit();
    assert_over_budget(&events, &out, 5, 64 * 1024);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Reset { id, .. } if id.0 != 5)),
        "{events:?}"
    );
    assert_eq!(
        c.conn.partial_message_bytes(),
        64 * 1024,
        "stream 5's bytes are discarded"
    );
    c.conn.release_stream(StreamId(5));
    // What stream 5 goes on sending is discarded, not counted.
    c.send_bytes(&data(5, &[0x5a; 95], true));
    assert_eq!(c.conn.partial_message_bytes(), 64 * 1024);
    // The others complete, and the connection serves new calls.
    finish_partial(&mut c, 1, 1);
    finish_partial(&mut c, 3, 9);
    let events = c.events();
    let out = c.transmit();
    assert_no_stream_failed(&events, &out);
    assert_completed(&mut c, &events, &[1, 3], 32 * 1024);
    assert_eq!(c.conn.partial_message_bytes(), 0);
    c.assert_serves(7);
}

#[test]
fn max_partial_message_bytes_counts_only_messages_still_arriving() {
    let mut c = Client::connected(partial_budget());
    let mut events = Vec::new();
    let mut out = Vec::new();
    c.request(1, "/a.B/C", false);
    c.request(3, "/a.B/C", false);
    send_partial(&mut c, 1, 32 * 1024, 32 * 1024 - 1);
    send_partial(&mut c, 3, 32 * 1024, 32 * 1024 - 9);
    events.extend(c.events());

    // A completed message no longer counts: stream 5 fits in its place.
    finish_partial(&mut c, 1, 1);
    let completed = c.events();
    assert_completed(&mut c, &completed, &[1], 32 * 1024);
    assert_eq!(c.conn.partial_message_bytes(), 32 * 1024 - 4);
    c.request(5, "/a.B/C", false);
    send_partial(&mut c, 5, 32 * 1024, 32 * 1024 - 1);
    assert_eq!(c.conn.partial_message_bytes(), 64 * 1024);
    events.extend(c.events());
    out.extend(c.transmit());

    // Nor does the message of a stream the client reset: stream 7 fits.
    c.send_bytes(&rst(3, Reason::CANCEL));
    assert_eq!(
        c.conn.partial_message_bytes(),
        32 * 1024 + 4,
        "freed at the reset, before the handler lets go"
    );
    c.conn.release_stream(StreamId(3));
    assert_eq!(c.conn.partial_message_bytes(), 32 * 1024 + 4);
    c.request(7, "/a.B/C", false);
    send_partial(&mut c, 7, 32 * 1024, 32 * 1024 - 9);
    assert_eq!(c.conn.partial_message_bytes(), 64 * 1024);

    // Nor that of a stream whose handler answered and let go while the client
    // was still sending: stream 9 fits.
    c.respond(5, b"enough");
    assert_eq!(c.conn.partial_message_bytes(), 32 * 1024 - 4);
    c.request(9, "/a.B/C", false);
    send_partial(&mut c, 9, 32 * 1024, 32 * 1024 - 1);
    assert_eq!(c.conn.partial_message_bytes(), 64 * 1024);

    // Nor that of a stream the codec failed (it ended inside its message).
    c.send_bytes(&data(7, &[], true));
    assert_eq!(c.conn.partial_message_bytes(), 32 * 1024 + 4);
    c.request(11, "/a.B/C", false);
    send_partial(&mut c, 11, 32 * 1024, 32 * 1024 - 9);
    assert_eq!(c.conn.partial_message_bytes(), 64 * 1024);
    events.extend(c.events());
    out.extend(c.transmit());
    assert!(
        !out.iter().any(|f| matches!(f, Out::Headers { fields, .. } if field(fields, "grpc-status") == Some("8"))),
        "nothing exceeded the budget: {}",
        brief(&out)
    );
    assert!(
        !events.iter().any(|e| matches!(
            e,
            Event::Reset { id, .. } if [1, 5, 9, 11].contains(&id.0)
        )),
        "{events:?}"
    );

    // The budget still holds: one more byte on a new stream crosses it.
    c.request(13, "/a.B/C", false);
    send_partial(&mut c, 13, 32 * 1024, 0);
    let events = c.events();
    let out = c.transmit();
    assert_over_budget(&events, &out, 13, 64 * 1024);

    // Once every stream is done, nothing is held.
    finish_partial(&mut c, 9, 1);
    finish_partial(&mut c, 11, 9);
    let events = c.events();
    assert_completed(&mut c, &events, &[9, 11], 32 * 1024);
    for id in [7, 13] {
        c.conn.release_stream(StreamId(id));
    }
    for id in [1, 9, 11] {
        c.respond(id, b"ok");
    }
    c.transmit();
    assert_eq!(c.conn.active_streams(), 0);
    assert_eq!(c.conn.partial_message_bytes(), 0);
}

#[test]
fn max_partial_message_bytes_counter_is_zero_after_the_connection_closes() {
    let mut c = Client::connected(partial_budget());
    for id in [1, 3] {
        c.request(id, "/a.B/C", false);
        send_partial(&mut c, id, 32 * 1024, 20_000);
    }
    assert_eq!(c.conn.partial_message_bytes(), 2 * 20_005);
    c.conn.abort(Reason::NO_ERROR, "shutting down");
    assert!(c.conn.is_closed());
    assert_eq!(c.conn.partial_message_bytes(), 0);
}

// ----- max_peer_resets -----

/// Rapid Reset (CVE-2023-44487): open a stream and reset it at once, again and again.
/// The engine lets each reset stream go, so the concurrency limit never bites; the
/// reset count does.
fn rapid_reset(c: &mut Client, first_id: u32, count: u32) {
    for i in 0..count {
        let id = first_id + 2 * i;
        c.request(id, "/a.B/C", false);
        c.send_bytes(&rst(id, Reason::CANCEL));
        for event in c.events() {
            if let Event::Reset {
                id,
                initiator: Initiator::Remote,
                ..
            } = event
            {
                c.conn.release_stream(id);
            }
        }
    }
}

#[test]
fn max_peer_resets_default_stops_rapid_reset() {
    let mut c = Client::connected(Config::default());
    rapid_reset(&mut c, 1, 100);
    assert!(!c.conn.is_closed());
    assert!(c.transmit().is_empty());
    assert_eq!(c.conn.active_streams(), 0);
    c.request(201, "/a.B/C", false);
    c.send_bytes(&rst(201, Reason::CANCEL));
    c.expect_goaway(Reason::ENHANCE_YOUR_CALM);
}

/// The same attack written in one go, before the engine can react: streams still
/// count against the concurrency limit, and the reset count ends it.
#[test]
fn max_peer_resets_default_stops_pipelined_rapid_reset() {
    let mut c = Client::connected(Config::default());
    let mut bytes = Vec::new();
    for i in 0..101 {
        bytes.extend(headers_frame(
            1 + 2 * i,
            &c.block(&grpc_request("/a.B/C")),
            flags::END_HEADERS,
        ));
        bytes.extend(rst(1 + 2 * i, Reason::CANCEL));
    }
    c.send_bytes(&bytes);
    c.expect_goaway(Reason::ENHANCE_YOUR_CALM);
}

/// "... a client cancelling its calls now and then never gets close": resets are
/// counted net of calls that completed.
#[test]
fn max_peer_resets_spares_a_client_that_cancels_now_and_then() {
    let mut c = Client::connected(Config::default());
    for i in 0..1_000 {
        let id = 1 + 2 * i;
        if i % 3 == 0 {
            rapid_reset(&mut c, id, 1);
        } else {
            c.assert_serves(id);
        }
    }
    assert!(!c.conn.is_closed());
}

/// Completed calls restore the budget but do not bank credit for later.
#[test]
fn max_peer_resets_changed_and_not_banked() {
    let mut c = Client::connected(Config {
        max_peer_resets: 5,
        ..Config::default()
    });
    for i in 0..50 {
        c.assert_serves(1 + 2 * i);
    }
    rapid_reset(&mut c, 101, 5);
    assert!(!c.conn.is_closed());
    c.request(111, "/a.B/C", false);
    c.send_bytes(&rst(111, Reason::CANCEL));
    c.expect_goaway(Reason::ENHANCE_YOUR_CALM);
}

/// Only calls the engine served count against resets: requests the codec answers by
/// itself (here with HTTP 415) cost the client nothing and must not buy it resets.
#[test]
fn max_peer_resets_not_restored_by_requests_the_codec_answers() {
    let mut c = Client::connected(Config {
        max_peer_resets: 5,
        ..Config::default()
    });
    let mut not_grpc = grpc_request("/a.B/C");
    not_grpc[4].1 = "text/plain";
    for i in 0..5 {
        let id = 1 + 4 * i;
        c.headers(id, &not_grpc, true);
        let _ = c.transmit();
        rapid_reset(&mut c, id + 2, 1);
    }
    assert!(!c.conn.is_closed());
    c.headers(21, &not_grpc, true);
    let _ = c.transmit();
    c.request(23, "/a.B/C", false);
    c.send_bytes(&rst(23, Reason::CANCEL));
    c.expect_goaway(Reason::ENHANCE_YOUR_CALM);
}

// ----- max_error_resets -----

/// Malformed requests cost the client nothing but a HEADERS frame; each costs the
/// server an RST_STREAM.
fn malformed_requests(c: &mut Client, first_id: u32, count: u32) {
    for i in 0..count {
        c.headers(
            first_id + 2 * i,
            &[(":method", "POST"), ("X-Bad", "1")],
            true,
        );
        let _ = c.transmit();
    }
}

#[test]
fn max_error_resets_default_is_1024() {
    let mut c = Client::connected(Config::default());
    malformed_requests(&mut c, 1, 1_024);
    assert!(!c.conn.is_closed());
    c.headers(2_049, &[(":method", "POST"), ("X-Bad", "1")], true);
    c.expect_goaway(Reason::ENHANCE_YOUR_CALM);
}

#[test]
fn max_error_resets_changed() {
    let mut c = Client::connected(Config {
        max_error_resets: 3,
        ..Config::default()
    });
    malformed_requests(&mut c, 1, 3);
    c.headers(7, &[(":method", "POST"), ("X-Bad", "1")], true);
    c.expect_goaway(Reason::ENHANCE_YOUR_CALM);
}

// ----- max_pending_control_frames -----

#[test]
fn max_pending_control_frames_default_stops_a_ping_flood() {
    // The PING rate policy (tested in lifecycle.rs) would stop this flood sooner.
    let mut c = Client::connected(Config {
        max_ping_strikes: u32::MAX,
        ..Config::default()
    });
    for i in 0..64u64 {
        c.send_bytes(&ping(i.to_be_bytes()));
    }
    assert!(!c.conn.is_closed());
    c.send_bytes(&ping(*b"one more"));
    let last = c.expect_goaway(Reason::ENHANCE_YOUR_CALM);
    assert_eq!(last, 0);
}

#[test]
fn max_pending_control_frames_default_stops_a_settings_flood() {
    let mut c = Client::connected(Config::default());
    for _ in 0..64 {
        c.send_bytes(&settings(&[(INITIAL_WINDOW_SIZE, 65_535)]));
    }
    assert!(!c.conn.is_closed());
    c.send_bytes(&settings(&[]));
    c.expect_goaway(Reason::ENHANCE_YOUR_CALM);
}

/// A client whose PINGs are answered (its replies written) between PINGs is never
/// cut off, however many it sends.
#[test]
fn max_pending_control_frames_spares_pings_that_are_answered() {
    let mut c = Client::connected(Config {
        max_pending_control_frames: 2,
        max_ping_strikes: u32::MAX,
        ..Config::default()
    });
    for i in 0..1_000u64 {
        c.send_bytes(&ping(i.to_be_bytes()));
        c.send_bytes(&settings(&[]));
        assert_eq!(c.transmit().len(), 2);
    }
    c.send_bytes(&ping(*b"firstone"));
    c.send_bytes(&ping(*b"secondon"));
    assert!(!c.conn.is_closed());
    c.send_bytes(&ping(*b"thirdone"));
    c.expect_goaway(Reason::ENHANCE_YOUR_CALM);
}

// ----- max_empty_frames -----

#[test]
fn max_empty_frames_default_stops_an_empty_data_flood() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", false);
    for _ in 0..100 {
        c.send_bytes(&data(1, &[], false));
    }
    assert!(!c.conn.is_closed());
    c.send_bytes(&data(1, &[], false));
    c.expect_goaway(Reason::ENHANCE_YOUR_CALM);
}

/// Empty header block fragments count too; an empty DATA frame that ends the stream
/// is how a request ends and does not.
#[test]
fn max_empty_frames_changed() {
    let mut c = Client::connected(Config {
        max_empty_frames: 3,
        ..Config::default()
    });
    for i in 0..10 {
        c.request(1 + 2 * i, "/a.B/C", false);
        c.send_bytes(&data(1 + 2 * i, &[], true));
    }
    c.request(21, "/a.B/C", false);
    c.send_bytes(&data(21, &[], false));
    let block = c.block(&grpc_request("/a.B/C"));
    c.send_bytes(&headers_frame(23, &[], flags::END_STREAM));
    c.send_bytes(&continuation(23, &[], false));
    assert!(!c.conn.is_closed());
    c.send_bytes(&continuation(23, &block, false));
    assert!(!c.conn.is_closed(), "a fragment with content is not empty");
    c.send_bytes(&continuation(23, &[], false));
    c.expect_goaway(Reason::ENHANCE_YOUR_CALM);
}

// ----- max_new_streams_per_recv -----

fn open_in_one_read(c: &mut Client, first_id: u32, count: u32) {
    let mut bytes = Vec::new();
    for i in 0..count {
        let id = first_id + 2 * i;
        bytes.extend(headers_frame(
            id,
            &c.block(&grpc_request("/a.B/C")),
            flags::END_HEADERS | flags::END_STREAM,
        ));
        bytes.extend(rst(id, Reason::CANCEL));
    }
    c.send_bytes(&bytes);
}

#[test]
fn max_new_streams_per_recv_default_is_512() {
    let mut c = Client::connected(Config {
        max_peer_resets: 10_000,
        ..Config::default()
    });
    open_in_one_read(&mut c, 1, 512);
    assert!(!c.conn.is_closed(), "{:?}", closed_error(&c.events()));
    let mut c = Client::connected(Config {
        max_peer_resets: 10_000,
        ..Config::default()
    });
    open_in_one_read(&mut c, 1, 513);
    c.expect_goaway(Reason::ENHANCE_YOUR_CALM);
}

#[test]
fn max_new_streams_per_recv_changed_counts_per_read() {
    let mut c = Client::connected(Config {
        max_new_streams_per_recv: 4,
        ..Config::default()
    });
    open_in_one_read(&mut c, 1, 4);
    open_in_one_read(&mut c, 9, 4);
    assert!(!c.conn.is_closed(), "the count starts again with each read");
    open_in_one_read(&mut c, 17, 5);
    c.expect_goaway(Reason::ENHANCE_YOUR_CALM);
}

// ----- handshake_timeout -----

#[test]
fn handshake_timeout_default_is_ten_seconds() {
    let mut c = Client::new(Config::default());
    assert_eq!(c.conn.poll_timeout(), Some(c.now + Duration::from_secs(10)));
    c.send_bytes(PREFACE);
    let deadline = c.now + Duration::from_secs(10);
    c.conn.handle_timeout(deadline - Duration::from_nanos(1));
    assert!(!c.conn.is_closed());
    c.conn.handle_timeout(deadline);
    c.expect_goaway(Reason::PROTOCOL_ERROR);
}

#[test]
fn handshake_timeout_changed() {
    let mut c = Client::new(Config {
        handshake_timeout: Duration::from_millis(500),
        ..Config::default()
    });
    assert_eq!(
        c.conn.poll_timeout(),
        Some(c.now + Duration::from_millis(500))
    );
    c.send_bytes(PREFACE);
    c.send_bytes(&settings(&[]));
    let _ = c.transmit();
    let deadline = c.now + Duration::from_millis(500);
    c.conn.handle_timeout(deadline);
    c.expect_goaway(Reason::SETTINGS_TIMEOUT);
}
