//! White-box checks of invariants the public API cannot show: flow-control credit is
//! neither lost nor returned twice, whatever path a stream ends by, and no stream
//! record or queue entry outlives its stream.

use super::*;
use crate::frame::{flags, FrameHeader, Kind};

const INITIAL: u32 = 65_535;

struct Peer {
    conn: Connection,
    now: Instant,
    encoder: hpack::Encoder,
    inbox: BytesMut,
}

impl Peer {
    fn connected() -> Peer {
        let now = Instant::now();
        let config = Config {
            initial_stream_window: INITIAL,
            initial_connection_window: INITIAL,
            max_message_size: 1_000,
            ..Config::default()
        };
        let mut peer = Peer {
            conn: Connection::new(config, now),
            now,
            encoder: hpack::Encoder::new(),
            inbox: BytesMut::new(),
        };
        peer.send(PREFACE);
        peer.frame(Kind::Settings, 0, 0, &[]);
        peer.drain();
        peer.frame(Kind::Settings, flags::ACK, 0, &[]);
        peer
    }

    fn send(&mut self, bytes: &[u8]) {
        self.inbox.extend_from_slice(bytes);
        self.conn.recv(self.now, &mut self.inbox);
    }

    fn frame(&mut self, kind: Kind, flags: u8, id: u32, payload: &[u8]) {
        let mut bytes = Vec::new();
        FrameHeader::encode(payload.len(), kind, flags, StreamId(id), &mut bytes);
        bytes.extend_from_slice(payload);
        self.send(&bytes);
    }

    fn request(&mut self, id: u32, content_type: &str) {
        let mut block = BytesMut::new();
        self.encoder.begin_block(&mut block);
        for (name, value) in [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/a.B/C"),
            ("content-type", content_type),
        ] {
            self.encoder.encode_field(
                name.as_bytes(),
                value.as_bytes(),
                hpack::Indexing::Incremental,
                &mut block,
            );
        }
        self.frame(Kind::Headers, flags::END_HEADERS, id, &block);
    }

    /// A padded DATA frame with `pad` octets of padding.
    fn data(&mut self, id: u32, payload: &[u8], pad: u8, end_stream: bool) {
        let mut body = vec![pad];
        body.extend_from_slice(payload);
        body.resize(body.len() + pad as usize, 0);
        let f = flags::PADDED | if end_stream { flags::END_STREAM } else { 0 };
        self.frame(Kind::Data, f, id, &body);
    }

    /// Plays the engine: releases every message it is given and every stream that
    /// ends, and writes out whatever the connection has.
    fn drain(&mut self) {
        while let Some(event) = self.conn.poll_event() {
            match event {
                Event::Message { id, message } => {
                    self.conn.release_capacity(id, message.data.len() + 5)
                }
                Event::Reset { id, .. } => self.conn.release_stream(id),
                Event::EndOfStream { id } => {
                    let _ = self.conn.send_trailers(id, ResponseStatus::OK, []);
                    self.conn.release_stream(id);
                }
                _ => {}
            }
        }
        let mut out = BytesMut::new();
        let _ = self.conn.poll_transmit(self.now, &mut out);
    }

    /// Every stream is gone and the connection window holds its full credit again.
    fn assert_settled(&mut self) {
        self.drain();
        assert!(!self.conn.is_closed());
        assert_eq!(self.conn.active_streams(), 0, "stream records left behind");
        assert!(
            self.conn.ready.is_empty() && self.conn.conn_blocked.is_empty(),
            "queue entries left behind"
        );
        assert_eq!(
            self.conn.conn_recv.credit(),
            INITIAL as u64,
            "connection credit lost or returned twice"
        );
    }
}

fn message(len: usize) -> Vec<u8> {
    let mut m = vec![0];
    m.extend_from_slice(&(len as u32).to_be_bytes());
    m.resize(5 + len, 7);
    m
}

#[test]
fn credit_is_conserved_for_a_normal_call() {
    let mut p = Peer::connected();
    p.request(1, "application/grpc");
    p.data(1, &message(100), 10, false);
    p.data(1, &message(200)[..50], 0, false);
    p.data(1, &message(200)[50..], 3, true);
    p.assert_settled();
}

#[test]
fn credit_is_conserved_when_a_message_is_too_large() {
    let mut p = Peer::connected();
    p.request(1, "application/grpc");
    p.data(1, &message(100), 20, false);
    p.data(1, &message(5_000)[..2_000], 30, false);
    p.data(1, &[1; 3_000], 40, true);
    p.assert_settled();
}

#[test]
fn credit_is_conserved_when_the_compressed_flag_is_wrong() {
    let mut p = Peer::connected();
    p.request(1, "application/grpc");
    let mut both = message(10);
    let mut compressed = message(20);
    compressed[0] = 1;
    both.extend(compressed);
    both.extend(message(30));
    p.data(1, &both, 50, false);
    p.assert_settled();
}

#[test]
fn credit_is_conserved_when_the_request_ends_inside_a_message() {
    let mut p = Peer::connected();
    p.request(1, "application/grpc");
    p.data(1, &message(500)[..300], 7, true);
    p.assert_settled();
}

#[test]
fn credit_is_conserved_when_the_codec_answers_the_request() {
    let mut p = Peer::connected();
    p.request(1, "application/json");
    p.data(1, &message(500), 9, false);
    p.drain();
    p.data(1, &message(500), 9, true);
    p.assert_settled();
}

#[test]
fn credit_is_conserved_when_the_client_resets_with_messages_held() {
    let mut p = Peer::connected();
    p.request(1, "application/grpc");
    p.data(1, &message(400), 0, false);
    p.data(1, &message(800)[..100], 0, false);
    // The engine has not taken the message yet when the reset comes; it releases it
    // afterwards, which must not count twice.
    p.frame(Kind::Reset, 0, 1, &Reason::CANCEL.0.to_be_bytes());
    p.assert_settled();
}

#[test]
fn credit_is_conserved_for_data_after_our_reset() {
    let mut p = Peer::connected();
    p.request(1, "application/grpc");
    p.drain();
    p.conn.reset(StreamId(1), Reason::CANCEL).unwrap();
    p.data(1, &message(100), 5, false);
    p.conn.release_stream(StreamId(1));
    p.data(1, &message(100), 5, true);
    p.assert_settled();
}

#[test]
fn records_of_streams_stalled_on_the_connection_window_are_freed_by_a_reset() {
    let mut p = Peer::connected();
    for id in [1, 3] {
        p.request(id, "application/grpc");
        p.data(id, &[], 0, true);
    }
    while let Some(event) = p.conn.poll_event() {
        if let Event::EndOfStream { id } = event {
            p.conn
                .send_message(id, Bytes::from(vec![0; 40_000]), false)
                .unwrap();
        }
    }
    p.drain();
    assert_eq!(
        p.conn.conn_blocked.len(),
        1,
        "the second stream waits for the connection window"
    );
    assert!(!p.conn.wants_transmit());
    for id in [1, 3] {
        p.frame(Kind::Reset, 0, id, &Reason::CANCEL.0.to_be_bytes());
    }
    p.assert_settled();
}

#[test]
fn recently_reset_forgets_the_oldest_after_32() {
    let mut ring = store::RecentlyReset::new();
    for id in (1..=65).step_by(2) {
        ring.push(StreamId(id));
    }
    assert!(!ring.contains(StreamId(1)));
    assert!((3..=65).step_by(2).all(|id| ring.contains(StreamId(id))));
    assert!(!ring.contains(StreamId(0)));
}
