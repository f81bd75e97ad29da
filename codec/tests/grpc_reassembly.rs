//! Message reassembly from DATA payloads cut at arbitrary points.

use bytes::Bytes;
use proptest::prelude::*;
use ringrpc_codec::grpc::{encode_prefix, Message, MessageDecoder, MessageError, PREFIX_LEN};

/// Deterministic filler so a mis-stitched body cannot compare equal by accident.
fn body(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// The wire bytes, and each message's `(start, end)` offsets on the wire, prefix included.
fn frame(msgs: &[(bool, Vec<u8>)]) -> (Bytes, Vec<(usize, usize)>) {
    let mut wire = Vec::new();
    let mut spans = Vec::new();
    for (c, m) in msgs {
        let start = wire.len();
        encode_prefix(*c, m.len() as u32, &mut wire);
        wire.extend_from_slice(m);
        spans.push((start, wire.len()));
    }
    (Bytes::from(wire), spans)
}

/// What `push` must return for the chunk `[a, b)`: the bytes of it belonging to
/// a message that is still open at `b`.
fn expected_incomplete(spans: &[(usize, usize)], a: usize, b: usize) -> usize {
    spans
        .iter()
        .find(|&&(s, e)| s < b && b < e)
        .map_or(0, |&(s, _)| b - s.max(a))
}

fn within(inner: &Bytes, outer: &Bytes) -> bool {
    let (o, i) = (outer.as_ptr() as usize, inner.as_ptr() as usize);
    i >= o && i + inner.len() <= o + outer.len()
}

/// Feeds `wire` cut at `cuts` and checks everything observable on the way.
fn feed(msgs: &[(bool, Vec<u8>)], wire: &Bytes, spans: &[(usize, usize)], cuts: &[usize]) {
    let mut dec = MessageDecoder::new();
    let mut got: Vec<Message> = Vec::new();
    let mut auto_released = 0;
    let mut a = 0;
    for &b in cuts.iter().chain(std::iter::once(&wire.len())) {
        let chunk = wire.slice(a..b);
        let before = got.len();
        let n = dec.push(chunk.clone(), u32::MAX, |m| got.push(m)).unwrap();
        assert_eq!(n, expected_incomplete(spans, a, b), "chunk {a}..{b}");
        auto_released += n;
        for (i, m) in got.iter().enumerate().skip(before) {
            let (s, _) = spans[i];
            if m.data.is_empty() {
                continue;
            }
            if s + PREFIX_LEN >= a {
                assert!(
                    within(&m.data, &chunk),
                    "message {i} in {a}..{b} was copied"
                );
            } else {
                assert!(
                    !within(&m.data, wire),
                    "spanning message {i} aliases a frame"
                );
            }
        }
        // An open message holds exactly what its frames contributed so far.
        let open = spans.iter().find(|&&(s, e)| s < b && b < e);
        assert_eq!(dec.buffered(), open.map_or(0, |&(s, _)| b - s));
        a = b;
    }
    dec.finish().unwrap();
    assert_eq!(got.len(), msgs.len());
    for (m, (c, data)) in got.iter().zip(msgs) {
        assert_eq!(m.compressed, *c);
        assert_eq!(&m.data[..], &data[..]);
    }
    // Every byte of a spanning message except those in its last frame was auto-released.
    let expected: usize = spans
        .iter()
        .map(|&(s, e)| {
            let last_cut = cuts.iter().rev().find(|&&c| s < c && c < e);
            last_cut.map_or(0, |&c| c - s)
        })
        .sum();
    assert_eq!(auto_released, expected);
}

fn even_cuts(total: usize, size: usize) -> Vec<usize> {
    (1..).map(|k| k * size).take_while(|&c| c < total).collect()
}

#[test]
fn every_chunk_size() {
    let msgs: Vec<(bool, Vec<u8>)> = [0usize, 1, 16_384, 0, 3, 1_000, 4, 5, 2_345, 6]
        .iter()
        .enumerate()
        .map(|(i, &len)| (i % 3 == 1, body(len, i as u32)))
        .collect();
    let (wire, spans) = frame(&msgs);
    for size in 1..=wire.len() + 1 {
        feed(&msgs, &wire, &spans, &even_cuts(wire.len(), size));
    }
}

#[test]
fn four_mib_message() {
    let len = 4 << 20;
    let msgs = vec![
        (false, body(7, 1)),
        (true, body(len, 2)),
        (false, body(16_384, 3)),
    ];
    let (wire, spans) = frame(&msgs);
    for size in [16_384, 1, 7_919, 16_385, 65_535, 1 << 20, wire.len()] {
        if size == 1 {
            // Only the prefixes byte by byte; the body that way would be slow in debug.
            let mut cuts: Vec<usize> = (1..13).collect();
            cuts.extend(
                even_cuts(wire.len(), 16_384)
                    .into_iter()
                    .filter(|&c| c > 13),
            );
            feed(&msgs, &wire, &spans, &cuts);
        } else {
            feed(&msgs, &wire, &spans, &even_cuts(wire.len(), size));
        }
    }
}

#[test]
fn too_large_from_prefix_only() {
    let mut prefix = Vec::new();
    encode_prefix(false, 4 << 20, &mut prefix);
    for split in 1..PREFIX_LEN {
        let mut dec = MessageDecoder::new();
        let n = dec
            .push(Bytes::copy_from_slice(&prefix[..split]), 1 << 20, |_| {})
            .unwrap();
        assert_eq!(n, split);
        let err = dec
            .push(Bytes::copy_from_slice(&prefix[split..]), 1 << 20, |_| {})
            .unwrap_err();
        assert_eq!(
            err,
            MessageError::TooLarge {
                len: 4 << 20,
                max: 1 << 20
            }
        );
        assert_eq!(
            err.grpc_status(),
            ringrpc_codec::grpc::status::RESOURCE_EXHAUSTED
        );
        assert_eq!(dec.buffered(), 0);
        assert_eq!(dec.push(Bytes::new(), u32::MAX, |_| {}), Err(err));
    }
}

#[test]
fn invalid_flag_after_valid_message() {
    let (wire, _) = frame(&[(false, body(10, 0))]);
    let mut wire = wire.to_vec();
    wire.extend_from_slice(&[0x80, 0, 0, 0, 0]);
    let mut got = 0;
    let mut dec = MessageDecoder::new();
    let err = dec
        .push(Bytes::from(wire), u32::MAX, |_| got += 1)
        .unwrap_err();
    assert_eq!((got, err), (1, MessageError::InvalidFlag(0x80)));
    assert_eq!(dec.finish(), Err(err));
}

#[test]
fn truncated_at_every_point() {
    let (wire, _) = frame(&[(true, body(20, 9))]);
    for end in 1..wire.len() {
        let mut dec = MessageDecoder::new();
        dec.push(wire.slice(..end), u32::MAX, |_| panic!("incomplete"))
            .unwrap();
        let missing = if end < PREFIX_LEN {
            PREFIX_LEN - end
        } else {
            wire.len() - end
        };
        assert_eq!(dec.finish(), Err(MessageError::Truncated { missing }));
    }
}

proptest! {
    #[test]
    fn random_messages_random_cuts(
        msgs in prop::collection::vec((any::<bool>(), prop::collection::vec(any::<u8>(), 0..300)), 0..20),
        raw_cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..40),
    ) {
        let (wire, spans) = frame(&msgs);
        let mut cuts: Vec<usize> = raw_cuts.iter().map(|i| i.index(wire.len().max(1))).collect();
        cuts.sort_unstable();
        // Repeated cuts make empty DATA frames, which must be harmless.
        feed(&msgs, &wire, &spans, &cuts);
    }
}
