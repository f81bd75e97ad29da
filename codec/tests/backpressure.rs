//! Backpressure in both directions: received messages hold flow-control credit until
//! the engine releases them, so a handler that stops reading stops its client; and
//! responses wait in the stream's queue, visible to the engine, until the client's
//! windows let them out.

mod support;

use bytes::Bytes;
use ringrpc_codec::frame::StreamId;
use ringrpc_codec::server::{Config, Event, ResponseStatus};
use ringrpc_codec::Reason;
use support::*;

fn windows(stream: u32, connection: u32) -> Config {
    Config {
        initial_stream_window: stream,
        initial_connection_window: connection,
        ..Config::default()
    }
}

/// Messages delivered on `id` (their `data.len() + 5`, the credit each holds).
fn delivered(events: &[Event], id: u32) -> Vec<usize> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message { id: i, message } if i.0 == id => Some(message.data.len() + 5),
            _ => None,
        })
        .collect()
}

/// Sends `total` bytes on `id` as complete gRPC messages of at most one frame each.
fn send_messages(c: &mut Client, id: u32, mut total: usize) {
    while total > 0 {
        let frame = total.min(16_384);
        c.message(id, &vec![id as u8; frame - 5], false);
        total -= frame;
    }
}

/// A client that respects the server's windows: it knows what it may still send on
/// each stream and on the connection, and learns more from WINDOW_UPDATE frames.
struct Sender {
    stream: i64,
    connection: i64,
}

impl Sender {
    fn new(stream: u32, connection: u32) -> Sender {
        Sender {
            stream: stream as i64,
            connection: connection as i64,
        }
    }

    fn credit(&mut self, out: &[Out], id: u32) {
        self.stream += window_increment(out, id) as i64;
        self.connection += window_increment(out, 0) as i64;
    }

    /// How much of `len` may go out now, in frames of at most 16,384.
    fn allowance(&self, len: usize) -> usize {
        (self.stream.min(self.connection).max(0) as usize)
            .min(len)
            .min(16_384)
    }

    fn sent(&mut self, n: usize) {
        self.stream -= n as i64;
        self.connection -= n as i64;
    }
}

/// "A receiver MAY choose to set any window size that it desires for each stream and
/// for the entire connection." (RFC 9113 §5.2.1) A handler that does not consume what
/// it received stops its client at exactly the stream window: no WINDOW_UPDATE is sent
/// for the stream, and one more octet is a flow-control error.
#[test]
fn handler_that_does_not_release_stalls_the_client_at_the_stream_window() {
    let mut c = Client::connected(windows(65_535, 1 << 20));
    c.request(1, "/a.B/C", false);
    let mut sent = 0;
    while sent < 65_535 {
        let frame = (65_535 - sent).min(10_000);
        c.message(1, &vec![1; frame - 5], false);
        sent += frame;
        let out = c.transmit();
        assert_eq!(window_increment(&out, 1), 0, "after {sent} bytes: {out:?}");
    }
    let events = c.events();
    assert_eq!(
        delivered(&events, 1).iter().sum::<usize>(),
        65_535,
        "every message reached the engine"
    );
    c.send_bytes(&data(1, &[0], false));
    c.expect_reset(1, Reason::FLOW_CONTROL_ERROR);
}

/// "The receiver of a frame sends a WINDOW_UPDATE frame as it consumes data and frees
/// up space in flow-control windows." (RFC 9113 §6.9.1) — consumption is the engine's
/// `release_capacity`, and only that re-opens the windows.
#[test]
fn releasing_capacity_reopens_stream_and_connection_windows() {
    let mut c = Client::connected(windows(65_535, 65_535));
    c.request(1, "/a.B/C", false);
    send_messages(&mut c, 1, 65_535);
    let sizes = delivered(&c.events(), 1);
    assert_eq!(sizes.iter().sum::<usize>(), 65_535);
    assert!(
        c.transmit().is_empty(),
        "nothing is re-opened before the engine consumes"
    );
    let mut stream = 0;
    let mut connection = 0;
    for size in sizes {
        c.conn.release_capacity(StreamId(1), size);
        let out = c.transmit();
        stream += window_increment(&out, 1);
        connection += window_increment(&out, 0);
    }
    assert_eq!((stream, connection), (65_535, 65_535));
    let message = grpc_message(&[3; 65_530]);
    let chunks: Vec<&[u8]> = message.chunks(16_384).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        c.send_bytes(&data(1, chunk, i == chunks.len() - 1));
    }
    assert!(matches!(
        &c.events()[..],
        [Event::Message { .. }, Event::EndOfStream { .. }]
    ));
}

/// WINDOW_UPDATEs are batched: a small release with most of the window still open is
/// not announced on its own, so a steady stream of small messages does not cost a
/// WINDOW_UPDATE each.
#[test]
fn small_releases_are_announced_in_batches() {
    let mut c = Client::connected(windows(65_535, 1 << 20));
    c.request(1, "/a.B/C", false);
    let mut updates = 0;
    for _ in 0..100 {
        c.message(1, &[4; 995], false);
        let sizes = delivered(&c.events(), 1);
        c.conn.release_capacity(StreamId(1), sizes[0]);
        updates += c
            .transmit()
            .iter()
            .filter(|f| matches!(f, Out::WindowUpdate { id: 1, .. }))
            .count();
    }
    assert!(
        (1..=4).contains(&updates),
        "100,000 bytes through a 65,535 window: {updates} updates"
    );
}

/// "Flow control is used for both individual streams and the connection as a whole."
/// (RFC 9113 §5.2) The connection window bounds what all streams together hold, and
/// one stream's release lets another go on.
#[test]
fn connection_window_bounds_the_sum_over_streams() {
    let mut c = Client::connected(windows(65_535, 100_000));
    c.request(1, "/a.B/C", false);
    c.request(3, "/a.B/C", false);
    send_messages(&mut c, 1, 65_535);
    send_messages(&mut c, 3, 100_000 - 65_535);
    let held = delivered(&c.events(), 1);
    assert!(
        c.transmit().is_empty(),
        "both streams and the connection are full"
    );
    for size in held {
        c.conn.release_capacity(StreamId(1), size);
    }
    let out = c.transmit();
    assert_eq!(
        window_increment(&out, 0),
        65_535,
        "stream 1's release re-opens the connection: {out:?}"
    );
    assert_eq!(window_increment(&out, 3), 0);
    // Stream 3 takes the rest of its own window, which the connection now allows.
    send_messages(&mut c, 3, 65_535 - 34_465);
    assert_eq!(delivered(&c.events(), 3).iter().sum::<usize>(), 31_070);
    assert!(!c.conn.is_closed());
    // Stream 3 could take more by the connection window, but not by its own.
    c.send_bytes(&data(3, &[0], false));
    c.expect_reset(3, Reason::FLOW_CONTROL_ERROR);
}

/// The connection window, not the streams', is what an overrun across streams breaks.
#[test]
fn overrunning_the_connection_window_across_streams_is_a_connection_error() {
    let mut c = Client::connected(windows(65_535, 100_000));
    c.request(1, "/a.B/C", false);
    c.request(3, "/a.B/C", false);
    send_messages(&mut c, 1, 65_535);
    send_messages(&mut c, 3, 100_000 - 65_535);
    c.send_bytes(&data(3, &[0], false));
    c.expect_goaway(Reason::FLOW_CONTROL_ERROR);
}

/// Messages that each span two frames hold their credit like single-frame ones: a
/// client streaming them into a handler that never reads stops after about one window
/// (one message more at most), not never.
#[test]
fn client_stalls_even_when_every_message_spans_frames() {
    let mut c = Client::connected(windows(65_535, 1 << 20));
    c.request(1, "/a.B/C", false);
    let message = grpc_message(&[11; 19_995]);
    let mut sender = Sender::new(65_535, 1 << 20);
    let mut sent = 0;
    'stream: for _ in 0..100 {
        for half in [&message[..10_000], &message[10_000..]] {
            if sender.allowance(half.len()) < half.len() {
                break 'stream;
            }
            c.send_bytes(&data(1, half, false));
            sender.sent(half.len());
            sent += half.len();
            sender.credit(&c.transmit(), 1);
        }
    }
    assert!(
        sent <= 65_535 + 20_000,
        "the client got {sent} bytes into a handler that reads nothing"
    );
    let delivered = delivered(&c.events(), 1).len();
    assert!((3..=4).contains(&delivered), "{delivered} messages");
}

/// A message larger than the stream window still arrives: while the engine has taken
/// everything delivered before it, the part buffered for reassembly does not hold
/// credit (it is bounded by the message size limit instead).
#[test]
fn message_larger_than_the_window_arrives_when_the_engine_keeps_up() {
    let mut c = Client::connected(windows(65_535, 65_535));
    c.request(1, "/a.B/C", false);
    let message = grpc_message(&vec![8; 200_000]);
    let mut sender = Sender::new(65_535, 65_535);
    let mut offset = 0;
    let mut rounds = 0;
    while offset < message.len() {
        let n = sender.allowance(message.len() - offset);
        assert!(n > 0, "stalled at {offset} of {}", message.len());
        c.send_bytes(&data(1, &message[offset..offset + n], false));
        sender.sent(n);
        offset += n;
        let out = c.transmit();
        sender.credit(&out, 1);
        rounds += 1;
    }
    let sizes = delivered(&c.events(), 1);
    assert_eq!(sizes, [200_005]);
    assert!(rounds < 30);
}

/// ... but while the engine still holds an earlier message, the credit of the next
/// one, partial or not, waits for the engine: the client stops until it catches up.
#[test]
fn partial_message_waits_while_the_engine_holds_an_earlier_one() {
    let mut c = Client::connected(windows(65_535, 65_535));
    c.request(1, "/a.B/C", false);
    let first = grpc_message(&[9; 30_000]);
    c.send_bytes(&data(1, &first[..16_384], false));
    c.send_bytes(&data(1, &first[16_384..], false));
    let first = delivered(&c.events(), 1);
    let next = grpc_message(&[10; 100_000]);
    let mut sender = Sender::new(65_535 - 30_005, 65_535 - 30_005);
    let mut offset = 0;
    while sender.allowance(next.len() - offset) > 0 {
        let n = sender.allowance(next.len() - offset);
        c.send_bytes(&data(1, &next[offset..offset + n], false));
        sender.sent(n);
        offset += n;
        sender.credit(&c.transmit(), 1);
    }
    assert_eq!(offset, 65_535 - 30_005, "stalled with the window full");
    c.conn.release_capacity(StreamId(1), first[0]);
    sender.credit(&c.transmit(), 1);
    while offset < next.len() {
        let n = sender.allowance(next.len() - offset);
        assert!(n > 0, "stalled at {offset} after the engine caught up");
        c.send_bytes(&data(1, &next[offset..offset + n], false));
        sender.sent(n);
        offset += n;
        sender.credit(&c.transmit(), 1);
    }
    assert_eq!(delivered(&c.events(), 1), [100_005]);
}

/// A stream whose handler stopped reading does not hold up the others.
#[test]
fn a_stalled_stream_does_not_block_other_streams() {
    let mut c = Client::connected(windows(65_535, 1 << 20));
    c.request(1, "/a.B/C", false);
    send_messages(&mut c, 1, 65_535);
    let _ = c.events();
    for id in (3..40).step_by(2) {
        c.assert_serves(id);
    }
}

// ----- sending -----

/// "A sender MUST respect flow-control limits imposed by a receiver." (RFC 9113
/// §5.2.1) A response larger than the client's window waits in the stream's queue,
/// where the engine sees it (`queued_send_bytes`), and drains exactly as fast as
/// WINDOW_UPDATEs arrive.
#[test]
fn big_response_over_a_small_peer_window_is_queued_and_drained() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", true);
    let _ = c.events();
    assert_eq!(c.conn.queued_send_bytes(StreamId(1)), 0);
    c.conn
        .send_message(StreamId(1), Bytes::from(vec![1u8; 300_000]), false)
        .unwrap();
    c.conn
        .send_trailers(StreamId(1), ResponseStatus::OK, [])
        .unwrap();
    c.conn.release_stream(StreamId(1));
    assert_eq!(c.conn.queued_send_bytes(StreamId(1)), 300_005);
    let out = c.transmit();
    let mut written = data_len(&out, 1);
    assert_eq!(written, 65_535);
    assert_eq!(c.conn.queued_send_bytes(StreamId(1)), 300_005 - 65_535);
    let mut granted = 65_535;
    while written < 300_005 {
        assert!(!c.conn.wants_transmit(), "waiting for the client");
        let step = 50_000;
        c.send_bytes(&window_update(0, step));
        c.send_bytes(&window_update(1, step));
        granted += step as usize;
        let out = c.transmit();
        written += data_len(&out, 1);
        assert_eq!(
            written,
            granted.min(300_005),
            "exactly what the windows allow"
        );
        assert_eq!(c.conn.queued_send_bytes(StreamId(1)), 300_005 - written);
        let ended = matches!(
            out.last(),
            Some(Out::Headers {
                end_stream: true,
                ..
            })
        );
        assert_eq!(
            ended,
            written == 300_005,
            "trailers only after the last byte"
        );
    }
    assert_eq!(c.conn.active_streams(), 0);
    assert_eq!(c.conn.queued_send_bytes(StreamId(1)), 0);
}

/// Either window can be the one that holds a response back: the connection window
/// opening alone does not let a stream exceed its own.
#[test]
fn response_waits_for_both_windows() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", true);
    let _ = c.events();
    c.conn
        .send_message(StreamId(1), Bytes::from(vec![2u8; 100_000]), false)
        .unwrap();
    assert_eq!(data_len(&c.transmit(), 1), 65_535);
    c.send_bytes(&window_update(0, 1 << 20));
    assert!(c.transmit().is_empty(), "the stream window is still closed");
    c.send_bytes(&window_update(1, 1_000));
    assert_eq!(data_len(&c.transmit(), 1), 1_000);
    assert_eq!(c.conn.queued_send_bytes(StreamId(1)), 100_005 - 66_535);
}

/// A reset drops the queue at once: the engine's senders see nothing queued and every
/// command fails.
#[test]
fn reset_drops_the_send_queue() {
    let mut c = Client::connected(Config::default());
    c.request(1, "/a.B/C", true);
    let _ = c.events();
    c.conn
        .send_message(StreamId(1), Bytes::from(vec![3u8; 100_000]), false)
        .unwrap();
    let _ = c.transmit();
    assert!(c.conn.queued_send_bytes(StreamId(1)) > 0);
    c.send_bytes(&rst(1, Reason::CANCEL));
    assert_eq!(c.conn.queued_send_bytes(StreamId(1)), 0);
    assert!(c
        .conn
        .send_message(StreamId(1), Bytes::from_static(b"x"), false)
        .is_err());
    c.send_bytes(&window_update(0, 1 << 20));
    assert!(c.transmit().is_empty());
}
