//! `poll_transmit_vectored`: the same bytes as `poll_transmit`, with long DATA
//! payload runs left in the messages they came from.

mod support;

use bytes::{Bytes, BytesMut};
use ringrpc_codec::frame::StreamId;
use ringrpc_codec::server::{Config, ResponseStatus};
use support::*;

/// Two connections in the same state: requests on streams 1 and 3, and each
/// answering with `messages` (sizes) on both streams, then status OK.
fn answered(messages: &[usize]) -> (Client, Client) {
    let mut pair = (Vec::new(), Vec::new());
    for client in [&mut pair.0, &mut pair.1] {
        // Windows large enough that every message goes out in this turn.
        let mut c = Client::connected_with(
            Config::default(),
            &[(0x4, 16 << 20)], // SETTINGS_INITIAL_WINDOW_SIZE
        );
        c.send_bytes(&window_update(0, 64 << 20));
        for id in [1, 3] {
            c.request(id, "/a.B/C", false);
            c.message(id, b"x", true);
        }
        c.events();
        c.transmit();
        for id in [1, 3] {
            for (i, &size) in messages.iter().enumerate() {
                let body: Vec<u8> = (0..size).map(|b| (b * 7 + i + id as usize) as u8).collect();
                c.conn
                    .send_message(StreamId(id), Bytes::from(body), false)
                    .unwrap();
            }
            c.conn
                .send_trailers(StreamId(id), ResponseStatus::OK, [])
                .unwrap();
            c.conn.release_stream(StreamId(id));
        }
        client.push(c);
    }
    (pair.0.pop().unwrap(), pair.1.pop().unwrap())
}

/// `out` with the runs inserted where they belong.
fn assemble(out: &[u8], spliced: &[(usize, Bytes)]) -> Vec<u8> {
    let mut whole = Vec::new();
    let mut from = 0;
    for (at, run) in spliced {
        assert!(*at >= from, "positions do not decrease");
        whole.extend_from_slice(&out[from..*at]);
        whole.extend_from_slice(run);
        from = *at;
    }
    whole.extend_from_slice(&out[from..]);
    whole
}

#[test]
fn vectored_output_is_the_copied_output_with_long_runs_left_in_place() {
    let sizes = [10, 5000, 70_000, 3, 16_384 - 5, 200_000];
    let (mut copied, mut vectored) = answered(&sizes);
    let now = copied.now;

    let mut flat = BytesMut::new();
    let written = copied.conn.poll_transmit(now, &mut flat);

    let mut out = BytesMut::new();
    let mut spliced = Vec::new();
    let min = 4096;
    let added = vectored
        .conn
        .poll_transmit_vectored(now, &mut out, &mut spliced, min);

    let whole = assemble(&out, &spliced);
    assert_eq!(whole.len(), written);
    assert_eq!(added, written, "reports out and runs together");
    assert!(whole == flat[..], "same bytes, in the same order");
    assert!(!spliced.is_empty());
    assert!(spliced.iter().all(|(_, run)| run.len() >= min));
    let in_runs: usize = spliced.iter().map(|(_, run)| run.len()).sum();
    assert!(
        out.len() + in_runs == written && in_runs > 500_000,
        "the large messages' payload is not copied: {} of {written} bytes in runs",
        in_runs
    );
    // And the client reads it as the same frames.
    let frames = vectored.parse_output(BytesMut::from(&whole[..]));
    for id in [1, 3] {
        let expected: usize = sizes.iter().map(|s| s + 5).sum();
        assert_eq!(data_len(&frames, id), expected);
    }
}

#[test]
fn nothing_is_spliced_below_the_minimum() {
    let (mut copied, mut vectored) = answered(&[10, 3000, 4000]);
    let now = copied.now;
    let mut flat = BytesMut::new();
    copied.conn.poll_transmit(now, &mut flat);
    let mut out = BytesMut::new();
    let mut spliced = Vec::new();
    vectored
        .conn
        .poll_transmit_vectored(now, &mut out, &mut spliced, 4096);
    assert!(spliced.is_empty());
    assert_eq!(out, flat);
}
