//! Codec micro-benchmarks: the cost of one unary RPC through the sans-IO server
//! connection, split into its request and response halves, and of the pieces
//! underneath (HPACK decoding, message reassembly).
//!
//! Every benchmark drives the public API the way the engine does: bytes go in with
//! `recv` from a reused read buffer, events come out of `poll_event`, commands go
//! in, and bytes come out of `poll_transmit` into a reused write buffer. Copying the
//! request bytes into the read buffer stands in for the kernel's copy on a read and
//! is timed with the decode; it is about 50 bytes per request.
//!
//! Where only one half of an RPC is timed, the other half still runs (a stream has
//! to be opened before it can answer, and answered before it is freed), outside
//! the timed region: `iter_custom` runs the iterations in chunks of [`CHUNK`]
//! requests, timing the half under test for a whole chunk and then doing the rest
//! of the chunk's work untimed. A chunk reads the clock twice, about 1 ns per
//! iteration.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ringrpc_benches::{
    message_frames, nth_id, unary_request_blocks, Server, REPLY_MESSAGE, REQUEST_FLOW_LEN,
};
use ringrpc_codec::frame::StreamId;
use ringrpc_codec::grpc::MessageDecoder;
use ringrpc_codec::hpack::{Decoder, DEFAULT_TABLE_SIZE};
use ringrpc_codec::server::Config;

/// The allocator ringrpc's binaries use, so allocation costs match theirs.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Requests per timed chunk. Open streams peak at this many in the one-sided
/// benchmarks, well below the default concurrency limit.
const CHUNK: u64 = 32;

/// Streams in the batched benchmark: requests read in one `recv`, responses written
/// in one `poll_transmit`.
const BATCH: u32 = 64;

/// Runs `iters` iterations as chunks of at most [`CHUNK`] stream ids and returns the
/// time spent in `timed`. `untimed_before` and `untimed_after` get the same chunk.
fn chunked(
    server: &mut Server,
    iters: u64,
    mut untimed_before: impl FnMut(&mut Server, &[StreamId]),
    mut timed: impl FnMut(&mut Server, &[StreamId]),
    mut untimed_after: impl FnMut(&mut Server, &[StreamId]),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    let mut ids = Vec::with_capacity(CHUNK as usize);
    while left > 0 {
        let n = left.min(CHUNK) as u32;
        let first = server.take_ids(n);
        ids.clear();
        ids.extend((0..n).map(|k| nth_id(first, k)));
        untimed_before(server, &ids);
        let start = Instant::now();
        timed(server, &ids);
        total += start.elapsed();
        untimed_after(server, &ids);
        left -= u64::from(n);
    }
    total
}

/// `request_decode_unary_warm`: one unary request on a warm connection, from bytes
/// to events.
///
/// Timed, per request: copy HEADERS (8 indexed fields) + DATA (20-byte message,
/// END_STREAM) into the read buffer, `recv` (frame parsing, HPACK decoding, request
/// validation, stream creation, reassembly), and drain the three events (request
/// head, message, end of stream), dropping them.
///
/// Untimed: returning the message's flow-control credit, the Trailers-Only OK
/// answer, `release_stream` and the `poll_transmit` that frees the streams.
fn request_decode_unary_warm(c: &mut Criterion) {
    let mut server = Server::warm_unary(Config::default());
    c.bench_function("request_decode_unary_warm", |b| {
        b.iter_custom(|iters| {
            chunked(
                &mut server,
                iters,
                |_, _| {},
                |server, ids| {
                    for &id in ids {
                        server.write_request(id);
                        server.recv();
                        black_box(server.drain_unary_events());
                    }
                },
                |server, ids| {
                    for &id in ids {
                        server.finish_unary(id);
                    }
                    server.transmit();
                    assert_eq!(server.conn.active_streams(), 0);
                },
            )
        })
    });
}

/// `response_encode_unary`: the response to one unary request, from commands to
/// bytes.
///
/// Timed, per response: `send_message` (20-byte `Bytes`), `send_trailers(OK)`,
/// `release_stream` (the handler returned), and one `poll_transmit` into the
/// cleared write buffer, which writes HEADERS, DATA and the trailers' HEADERS (79
/// bytes) and frees the stream.
///
/// Untimed: reading and decoding the requests, returning their credit, and a
/// `poll_transmit` that writes whatever window update that causes, so the timed
/// transmits write only the responses.
fn response_encode_unary(c: &mut Criterion) {
    let mut server = Server::warm_unary(Config::default());
    let reply = Bytes::from_static(REPLY_MESSAGE);
    c.bench_function("response_encode_unary", |b| {
        b.iter_custom(|iters| {
            chunked(
                &mut server,
                iters,
                |server, ids| {
                    for &id in ids {
                        server.write_request(id);
                    }
                    server.recv();
                    assert_eq!(server.drain_unary_events(), ids.len());
                    for &id in ids {
                        server.conn.release_capacity(id, REQUEST_FLOW_LEN);
                    }
                    server.transmit();
                },
                |server, ids| {
                    for &id in ids {
                        server.respond(id, &reply);
                        black_box(server.transmit());
                    }
                },
                |server, _| assert_eq!(server.conn.active_streams(), 0),
            )
        })
    });
}

/// `unary_1stream_roundtrip`: both halves of one unary RPC on a warm connection,
/// one request per `recv` and one response per `poll_transmit`: the unbatched
/// baseline for `unary_64streams_batch`.
fn unary_1stream_roundtrip(c: &mut Criterion) {
    let mut server = Server::warm_unary(Config::default());
    let reply = Bytes::from_static(REPLY_MESSAGE);
    c.bench_function("unary_1stream_roundtrip", |b| {
        b.iter_custom(|iters| {
            chunked(
                &mut server,
                iters,
                |_, _| {},
                |server, ids| {
                    for &id in ids {
                        server.write_request(id);
                        server.recv();
                        black_box(server.drain_unary_events());
                        server.conn.release_capacity(id, REQUEST_FLOW_LEN);
                        server.respond(id, &reply);
                        black_box(server.transmit());
                    }
                },
                |server, _| assert_eq!(server.conn.active_streams(), 0),
            )
        })
    });
}

/// `unary_64streams_batch`: 64 unary RPCs whose requests arrive in one read and
/// whose responses leave in one write. Timed: copying the 64 requests into the read
/// buffer, one `recv`, draining the events, and for each request returning its
/// credit and queueing the response (as [`response_encode_unary`] does), then one
/// `poll_transmit`. Throughput is in RPCs; the time per RPC is the time / 64.
fn unary_64streams_batch(c: &mut Criterion) {
    let mut server = Server::warm_unary(Config::default());
    let reply = Bytes::from_static(REPLY_MESSAGE);
    let mut group = c.benchmark_group("unary_64streams_batch");
    group.throughput(Throughput::Elements(u64::from(BATCH)));
    group.bench_function("batch", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let first = server.take_ids(BATCH);
                let start = Instant::now();
                for k in 0..BATCH {
                    server.write_request(nth_id(first, k));
                }
                server.recv();
                black_box(server.drain_unary_events());
                for k in 0..BATCH {
                    let id = nth_id(first, k);
                    server.conn.release_capacity(id, REQUEST_FLOW_LEN);
                    server.respond(id, &reply);
                }
                black_box(server.transmit());
                total += start.elapsed();
                assert_eq!(server.conn.active_streams(), 0);
            }
            total
        })
    });
    group.finish();
}

/// `hpack_decode_request_block`: the request's header block through the HPACK
/// decoder alone, each field handed to a callback that drops it.
///
/// - `indexed`: the steady-state block (8 one-octet indexed fields) on a decoder
///   whose table holds them; decoding it leaves the table as it was.
/// - `first_literal_huffman`: the first-time block (literals with incremental
///   indexing, Huffman-coded) on a fresh decoder per iteration, made in untimed
///   setup and dropped untimed; timed are the Huffman decoding, the first
///   allocation of the decoder's string arena and the six insertions into the
///   dynamic table.
fn hpack_decode_request_block(c: &mut Criterion) {
    let blocks = unary_request_blocks();
    let mut group = c.benchmark_group("hpack_decode_request_block");
    let mut warm = Decoder::new(DEFAULT_TABLE_SIZE);
    warm.decode(&blocks.first, |_| {}).expect("valid block");
    group.bench_function("indexed", |b| {
        b.iter(|| {
            warm.decode(black_box(&blocks.warm), |h| {
                black_box(h);
            })
        })
    });
    group.bench_function("first_literal_huffman", |b| {
        b.iter_batched(
            || Decoder::new(DEFAULT_TABLE_SIZE),
            |mut decoder| {
                decoder
                    .decode(black_box(&blocks.first), |h| {
                        black_box(h);
                    })
                    .expect("valid block");
                decoder
            },
            // Few decoders at a time: their 4 KiB string arenas are freed between
            // batches and reused, where a large batch would keep thousands alive and
            // time the kernel's page faults for fresh heap instead.
            BatchSize::NumIterations(16),
        )
    });
    group.finish();
}

/// `grpc_reassembly_1mib_16kib_frames`: a 1 MiB message arriving in 16 KiB DATA
/// payloads (65 pushes, the first one starting with the 5-byte prefix) through a
/// new `MessageDecoder`. Timed: the pushes, which reserve the message buffer once
/// and copy each payload into it, and dropping the finished message.
fn grpc_reassembly_1mib_16kib_frames(c: &mut Criterion) {
    const MESSAGE: usize = 1 << 20;
    const MAX_MESSAGE: u32 = 4 << 20;
    let frames = message_frames(MESSAGE, 16 * 1024);
    let mut group = c.benchmark_group("grpc_reassembly_1mib_16kib_frames");
    group.throughput(Throughput::Bytes(
        frames.iter().map(|f| f.len() as u64).sum(),
    ));
    group.bench_function("push", |b| {
        b.iter(|| {
            let mut decoder = MessageDecoder::new();
            let mut received = 0;
            for frame in &frames {
                decoder
                    .push(frame.clone(), MAX_MESSAGE, |m| received += m.data.len())
                    .expect("valid message");
            }
            assert_eq!(received, MESSAGE);
        })
    });
    group.finish();
}

criterion_group! {
    name = codec;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .without_plots();
    targets =
        request_decode_unary_warm,
        response_encode_unary,
        unary_1stream_roundtrip,
        unary_64streams_batch,
        hpack_decode_request_block,
        grpc_reassembly_1mib_16kib_frames,
}
criterion_main!(codec);
