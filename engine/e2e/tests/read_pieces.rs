//! Requests that arrive in pieces, with pauses between them, on both backends.
//!
//! The reader relies on what a short read tells it. On epoll a read that fills
//! less than its buffer clears the socket's readiness, so the next piece must
//! come as a new event; on io_uring an idle connection waits with a small
//! buffer, and a frame begun there moves into a full-size one. Either way,
//! every later piece has to be picked up and every call answered whole.

mod support;

use std::time::Duration;

use prost::Message as _;
use ringrpc_engine_e2e::client::Payload;
use ringrpc_engine_e2e::{runtime, start, BACKENDS};
use support::*;

/// The bytes of a unary call on stream `id` whose request carries `body_len`
/// bytes and a header of `padding` bytes, and the DATA bytes its echo answers with.
fn unary_call(c: &mut RawClient, id: u32, body_len: usize, padding: usize) -> (Vec<u8>, usize) {
    let message = Payload {
        body: vec![0x5a; body_len].into(),
    }
    .encode_to_vec();
    let pad = "p".repeat(padding);
    let mut extra = Vec::new();
    if padding > 0 {
        extra.push(("x-padding", pad.as_str()));
    }
    let mut bytes = c.request_frame(id, UNARY, &extra, false);
    bytes.extend(data(id, &grpc_message(&message), true));
    (bytes, message.len() + 5)
}

async fn answered(c: &mut RawClient, id: u32, expected_data: usize, what: &str) {
    let outcome = c.outcome(id, PROMPTLY).await;
    assert_eq!(
        outcome.grpc_status.as_deref(),
        Some("0"),
        "{what}: {outcome:?}"
    );
    assert_eq!(outcome.data, expected_data, "{what}: {outcome:?}");
}

#[test]
fn requests_written_in_pieces_are_all_answered() {
    for backend in BACKENDS {
        let server = start(backend, 1);
        let backend = server.backend();
        let addr = server.local_addr();
        runtime().block_on(async {
            let mut c = RawClient::handshake(addr, &[]).await;

            // A 3 KiB request with a 600-byte header, 97 bytes at a time: every
            // read is short, and most end inside a frame.
            let (bytes, expected) = unary_call(&mut c, 1, 3 * 1024, 600);
            for piece in bytes.chunks(97) {
                assert!(c.send(piece).await, "{backend:?}: connection open");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            answered(&mut c, 1, expected, &format!("{backend:?}, 97-byte pieces")).await;

            // Idle long enough for the reader to wait with what it keeps for idle
            // connections; then a header block larger than io_uring's small idle
            // buffer, in one write.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let (bytes, expected) = unary_call(&mut c, 3, 100, 2 * 1024);
            assert!(c.send(&bytes).await);
            answered(&mut c, 3, expected, &format!("{backend:?}, 2 KiB header")).await;

            // Two halves split inside the DATA frame's header, with a pause.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let (bytes, expected) = unary_call(&mut c, 5, 1024, 0);
            let data_start = bytes.len() - (9 + expected);
            let (first, second) = bytes.split_at(data_start + 4);
            assert!(c.send(first).await);
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(c.send(second).await);
            answered(
                &mut c,
                5,
                expected,
                &format!("{backend:?}, split DATA header"),
            )
            .await;
        });
        server.shutdown_and_wait();
    }
}
