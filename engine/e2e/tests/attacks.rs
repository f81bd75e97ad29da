//! Attack resistance end to end: hand-built HTTP/2 frames against a real server
//! on 127.0.0.1, on the backend `RINGRPC_BACKEND` selects (run the file once per
//! backend).
//!
//! Every attack is checked three ways: the protocol reaction on the wire (the
//! GOAWAY or RST_STREAM code, or the gRPC status), a tonic client on another
//! connection that keeps being served during the attack and a new one after it,
//! and bounded cost: the attacking connection is closed (or its streams reset)
//! within a bounded time, the server lets go of every call it started, and where
//! memory is the point the worker thread's live heap is measured.
//!
//! The worker's heap is counted by a global allocator that only counts on the
//! server's worker threads, so the test clients do not blur it. Tests that read
//! it run alone (the `MEMORY` lock); the others share the process.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashSet;
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use prost::Message as _;
use ringrpc_codec::hpack::Indexing;
use ringrpc_engine::{Counters, EngineConfig, ServerHandle};
use ringrpc_engine_e2e::client::{Payload, StreamRequest};
use ringrpc_engine_e2e::{client, frame, h2_call_framed, runtime, start_with};
use ringrpc_service_api::Code;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KIB: i64 = 1024;
const MIB: i64 = 1024 * 1024;

// ----- the worker's heap -----

/// Counts live heap bytes allocated and freed on the server's worker threads.
struct WorkerHeap;

static LIVE: AtomicI64 = AtomicI64::new(0);
static PEAK: AtomicI64 = AtomicI64::new(0);

thread_local! {
    /// 0: not looked at yet, 1: a worker, 2: another thread, 3: looking (the
    /// lookup may allocate; those allocations are not counted).
    static ROLE: Cell<u8> = const { Cell::new(0) };
}

fn on_worker() -> bool {
    ROLE.try_with(|role| match role.get() {
        1 => true,
        0 => {
            role.set(3);
            let worker = std::thread::current()
                .name()
                .is_some_and(|name| name.starts_with("ringrpc-worker"));
            role.set(if worker { 1 } else { 2 });
            worker
        }
        _ => false,
    })
    .unwrap_or(false)
}

fn count(delta: i64) {
    let live = LIVE.fetch_add(delta, Ordering::Relaxed) + delta;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for WorkerHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if on_worker() {
            count(layout.size() as i64);
        }
        // Safety: forwarding the caller's layout to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if on_worker() {
            count(-(layout.size() as i64));
        }
        // Safety: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if on_worker() {
            count(new_size as i64 - layout.size() as i64);
        }
        // Safety: as for `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: WorkerHeap = WorkerHeap;

/// Live heap on worker threads now, and the peak from now on.
fn heap_mark() -> i64 {
    let live = LIVE.load(Ordering::Relaxed);
    PEAK.store(live, Ordering::Relaxed);
    live
}

/// How far the worker heap rose above `mark` since [`heap_mark`].
fn heap_peak_since(mark: i64) -> i64 {
    PEAK.load(Ordering::Relaxed) - mark
}

/// Memory is per process: tests that measure it run alone, the others together.
static MEMORY: RwLock<()> = RwLock::new(());

fn together() -> RwLockReadGuard<'static, ()> {
    MEMORY.read().unwrap_or_else(|e| e.into_inner())
}

fn alone() -> RwLockWriteGuard<'static, ()> {
    MEMORY.write().unwrap_or_else(|e| e.into_inner())
}

// ----- the server, the bystander, and what must hold after an attack -----

/// A one-worker server (attacker and bystander share its core) with `tune`
/// applied to the default configuration.
fn serve(tune: impl FnOnce(&mut EngineConfig)) -> ServerHandle {
    let mut config = EngineConfig {
        workers: 1,
        // Tests run in parallel: pinning every server to the first core would
        // make them queue behind each other.
        pin_workers: false,
        shutdown_grace: Duration::from_secs(2),
        ..EngineConfig::default()
    };
    tune(&mut config);
    start_with(config)
}

/// A tonic client making unary calls on its own connection for as long as an
/// attack lasts; every one of them must succeed.
struct Bystander {
    stop: Arc<AtomicBool>,
    calls: tokio::task::JoinHandle<Result<u64, String>>,
}

impl Bystander {
    async fn start(addr: SocketAddr) -> Bystander {
        let mut c = client(addr).await;
        let body = Bytes::from_static(b"bystander");
        c.unary(Payload { body: body.clone() })
            .await
            .expect("bystander served before the attack");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let calls = tokio::spawn(async move {
            let mut served = 0;
            loop {
                match c.unary(Payload { body: body.clone() }).await {
                    Ok(reply) if reply.get_ref().body == body => served += 1,
                    Ok(reply) => return Err(format!("wrong reply {reply:?}")),
                    Err(status) => return Err(format!("after {served} calls: {status:?}")),
                }
                if stopped.load(Ordering::Relaxed) {
                    return Ok(served);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        Bystander { stop, calls }
    }

    async fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        let served = self.calls.await.expect("bystander task");
        if let Err(e) = served {
            panic!("bystander not served during the attack: {e}");
        }
    }
}

/// Runs `attack` with a bystander on another connection, then checks that a new
/// client is served and that the server lets go of everything: no connection
/// and no call left once the clients are gone.
fn under_attack<'a, F, Fut>(server: &'a ServerHandle, attack: F)
where
    F: FnOnce(SocketAddr) -> Fut,
    Fut: Future<Output = ()> + 'a,
{
    let addr = server.local_addr();
    runtime().block_on(async {
        let bystander = Bystander::start(addr).await;
        attack(addr).await;
        bystander.finish().await;
        let mut c = client(addr).await;
        let reply = c
            .unary(Payload {
                body: Bytes::from_static(b"after"),
            })
            .await
            .expect("a new client is served after the attack");
        assert_eq!(&reply.get_ref().body[..], b"after");
    });
    settles(server, 0);
}

/// Waits until the server holds at most `connections` connections and no call.
fn settles(server: &ServerHandle, connections: u64) -> Counters {
    let deadline = Instant::now() + PROMPTLY;
    loop {
        let total = server.stats().total;
        if total.active_connections <= connections && total.active_streams == 0 {
            return total;
        }
        assert!(
            Instant::now() < deadline,
            "{:?}: the server still holds {} connections and {} calls",
            server.backend(),
            total.active_connections,
            total.active_streams
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How much a flood may write before the test gives up on an answer.
const FLOOD_BYTES: usize = 16 * 1024 * 1024;

/// The most the server may read of a flood it cuts off: the few reads (16 KiB
/// each) up to the offending frame, where the attacker writes megabytes.
const CUT_OFF: u64 = 512 * 1024;

/// Writes `frame` over and over, `per_write` copies at a time, until the server
/// hangs up or [`FLOOD_BYTES`] are out; returns the bytes written.
async fn flood(c: &mut RawClient, frame: &[u8], per_write: usize) -> usize {
    let batch = frame.repeat(per_write);
    let mut sent = 0;
    while sent < FLOOD_BYTES && !c.hung_up() {
        if !c.send(&batch).await {
            break;
        }
        sent += batch.len();
    }
    sent
}

/// Floods with `frame` and checks the answer: GOAWAY ENHANCE_YOUR_CALM, the
/// connection closed, and no more than [`CUT_OFF`] bytes read meanwhile. Returns
/// the frames the server sent before its GOAWAY.
async fn flood_is_cut_off(
    server: &ServerHandle,
    c: &mut RawClient,
    frame: &[u8],
    per_write: usize,
) -> Vec<Frame> {
    let before = server.stats().total.bytes_read;
    let sent = flood(c, frame, per_write).await;
    let (_, frames) = c.expect_goaway(Reason::ENHANCE_YOUR_CALM).await;
    let read = server.stats().total.bytes_read - before;
    assert!(
        read < CUT_OFF,
        "the server read {read} bytes of a flood ({sent} bytes written)"
    );
    frames
}

fn resets_with(frames: &[Frame], reason: Reason) -> usize {
    frames
        .iter()
        .filter(|f| matches!(f, Frame::Reset { reason: r, .. } if *r == reason))
        .count()
}

// ----- Rapid Reset, RST_STREAM and other floods -----

/// CVE-2023-44487: open a stream and reset it at once, again and again. The
/// budget of resets (net of served calls) ends it with ENHANCE_YOUR_CALM, after
/// at most that many streams.
#[test]
fn rapid_reset_gets_enhance_your_calm_after_the_budget() {
    let _together = together();
    let server = serve(|_| {});
    let budget = EngineConfig::default().codec.max_peer_resets;
    under_attack(&server, |addr| async move {
        let mut c = RawClient::handshake(addr, &[]).await;
        let mut id = 1;
        while id < 40_000 && !c.hung_up() {
            let mut batch = Vec::new();
            for _ in 0..10 {
                batch.extend(c.request_frame(id, UNARY, &[], false));
                batch.extend(rst(id, Reason::CANCEL));
                id += 2;
            }
            if !c.send(&batch).await {
                break;
            }
        }
        let (last, _) = c.expect_goaway(Reason::ENHANCE_YOUR_CALM).await;
        assert!(
            last <= 2 * budget + 1,
            "the server took {} streams for a budget of {budget}",
            last.div_ceil(2)
        );
    });
    server.shutdown_and_wait();
}

/// RST_STREAM for streams whose calls are running draws on the same budget; for
/// streams long closed it is ignored, costing nothing but the read.
#[test]
fn rst_stream_floods() {
    let _together = together();
    let server = serve(|_| {});
    under_attack(&server, |addr| async move {
        // Open 150 calls, then reset them all in one write.
        let mut c = RawClient::handshake(addr, &[]).await;
        let ids: Vec<u32> = (0..150).map(|i| 1 + 2 * i).collect();
        let mut opens = Vec::new();
        for &id in &ids {
            opens.extend(c.request_frame(id, UNARY, &[], false));
        }
        assert!(c.send(&opens).await);
        c.ping_pong(*b"allopen!").await;
        let resets: Vec<u8> = ids.iter().flat_map(|&id| rst(id, Reason::CANCEL)).collect();
        c.send(&resets).await;
        c.expect_goaway(Reason::ENHANCE_YOUR_CALM).await;

        // Resets of a stream that is over are dropped without an answer.
        let mut c = RawClient::handshake(addr, &[]).await;
        c.assert_serves(1).await;
        assert!(c.send(&rst(1, Reason::CANCEL).repeat(5_000)).await);
        let answered = c.ping_pong(*b"ignored?").await;
        assert!(answered.is_empty(), "answers to stale resets: {answered:?}");
        c.assert_serves(3).await;
    });
    server.shutdown_and_wait();
}

/// SETTINGS and PING floods: replies that cannot be written at once are bounded,
/// and a flood is answered with one GOAWAY ENHANCE_YOUR_CALM, not a queue.
#[test]
fn settings_and_ping_floods_get_enhance_your_calm() {
    let _together = together();
    let server = serve(|_| {});
    let pending_limit = EngineConfig::default().codec.max_pending_control_frames as usize;
    let server_ref = &server;
    under_attack(&server, |addr| async move {
        let mut c = RawClient::handshake(addr, &[]).await;
        flood_is_cut_off(server_ref, &mut c, &settings(&[]), 1_000).await;

        let mut c = RawClient::handshake(addr, &[]).await;
        let before = flood_is_cut_off(server_ref, &mut c, &ping(*b"flooding"), 1_000).await;
        let acks = before
            .iter()
            .filter(|f| matches!(f, Frame::Ping { ack: true, .. }))
            .count();
        assert!(
            acks <= pending_limit,
            "{acks} PING ACKs for a flood; the bound is {pending_limit}"
        );
    });
    server.shutdown_and_wait();
}

/// Frames that carry nothing: empty DATA, and header blocks made of empty
/// fragments, each cost a frame's processing for no progress (CVE-2019-9518).
#[test]
fn empty_frame_floods_get_enhance_your_calm() {
    let _together = together();
    let server = serve(|_| {});
    let server_ref = &server;
    under_attack(&server, |addr| async move {
        // Empty DATA on an open call.
        let mut c = RawClient::handshake(addr, &[]).await;
        assert!(c.request(1, UNARY, &[], false).await);
        flood_is_cut_off(server_ref, &mut c, &data(1, &[], false), 100).await;

        // An empty HEADERS fragment, then empty CONTINUATION frames.
        let mut c = RawClient::handshake(addr, &[]).await;
        assert!(c.send(&headers(1, &[], flag::END_STREAM)).await);
        flood_is_cut_off(server_ref, &mut c, &continuation(1, &[], false), 100).await;

        // Complete but empty header blocks, each on a new stream: each is a
        // malformed request answered with RST_STREAM, up to the budget of
        // resets the server sends.
        let mut c = RawClient::handshake(addr, &[]).await;
        let mut id = 1;
        while id < 1_000_000 && !c.hung_up() {
            let batch: Vec<u8> = (0..100)
                .flat_map(|i| headers(id + 2 * i, &[], flag::END_HEADERS | flag::END_STREAM))
                .collect();
            id += 200;
            if !c.send(&batch).await {
                break;
            }
        }
        let (_, before) = c.expect_goaway(Reason::ENHANCE_YOUR_CALM).await;
        let resets = resets_with(&before, Reason::PROTOCOL_ERROR);
        let budget = EngineConfig::default().codec.max_error_resets as usize;
        assert!(resets <= budget, "{resets} resets for a budget of {budget}");
    });
    server.shutdown_and_wait();
}

// ----- CONTINUATION floods and header list limits -----

/// A header block that never ends: endless full-size CONTINUATION frames, and
/// endless tiny ones. Neither is buffered past the CONTINUATION limit.
#[test]
fn continuation_floods_are_cut_off() {
    let _together = together();
    let server = serve(|_| {});
    let server_ref = &server;
    under_attack(&server, |addr| async move {
        let mut c = RawClient::handshake(addr, &[]).await;
        let block = c.request_block(UNARY, &[]);
        assert!(c.send(&headers(1, &block[..1], flag::END_STREAM)).await);
        let full = continuation(1, &[0x82; 16_384], false);
        flood_is_cut_off(server_ref, &mut c, &full, 4).await;

        let mut c = RawClient::handshake(addr, &[]).await;
        assert!(c.send(&headers(1, &[0x82], flag::END_STREAM)).await);
        let tiny = continuation(1, &[0x84], false);
        flood_is_cut_off(server_ref, &mut c, &tiny, 1_000).await;
    });
    server.shutdown_and_wait();
}

/// With `max_header_list_size` raised (and `max_continuation_frames` left at its
/// default), a legitimately large header list split into full frames is served,
/// and a CONTINUATION flood is still cut off.
#[test]
fn a_raised_header_list_limit_admits_large_lists_in_many_frames() {
    let _together = together();
    let limit = 1024 * 1024;
    let server = serve(|c| c.codec.max_header_list_size = limit);
    let server_ref = &server;
    under_attack(&server, |addr| async move {
        let mut c = RawClient::handshake(addr, &[]).await;
        assert_eq!(c.server_settings.unwrap().max_header_list_size, Some(limit));
        // 600 fields of 1000 octets, plain literals: about 600 KiB in 37 frames,
        // where the unscaled default allows 6.
        let value = "v".repeat(1000);
        let mut fields = grpc_request(UNARY);
        let names: Vec<String> = (0..600).map(|i| format!("x-pad-{i:04}")).collect();
        fields.extend(names.iter().map(|n| (n.as_str(), value.as_str())));
        let mut frames = header_block_frames(1, &plain_block(&fields), false);
        frames.extend(data(1, &grpc_message(&[]), true));
        assert!(c.send(&frames).await);
        let outcome = c.outcome(1, PROMPTLY).await;
        assert_eq!(outcome.grpc_status.as_deref(), Some("0"), "{outcome:?}");

        let mut c = RawClient::handshake(addr, &[]).await;
        assert!(c.send(&headers(1, &[0x82], flag::END_STREAM)).await);
        let tiny = continuation(1, &[0x84], false);
        flood_is_cut_off(server_ref, &mut c, &tiny, 1_000).await;
    });
    server.shutdown_and_wait();
}

/// The HPACK bomb: one 4,000-octet dynamic-table entry referenced 10,000 times
/// is 12 KB on the wire and 40 MB decoded. The decoded size is what counts, so
/// the call fails with RESOURCE_EXHAUSTED after work proportional to the block,
/// and the connection goes on with its HPACK state in sync. Header lists over
/// the limit by plain size or by field count fail the same way.
#[test]
fn hpack_bombs_and_oversized_header_lists_fail_the_call_only() {
    let _together = together();
    let server = serve(|_| {});
    under_attack(&server, |addr| async move {
        let mut c = RawClient::handshake(addr, &[]).await;
        let mut block = BytesMut::new();
        let encoder = c.encoder();
        encoder.begin_block(&mut block);
        for (name, value) in grpc_request(UNARY) {
            encoder.encode_field(
                name.as_bytes(),
                value.as_bytes(),
                Indexing::Incremental,
                &mut block,
            );
        }
        encoder.encode_field(b"x-bomb", &[b'a'; 4000], Indexing::Incremental, &mut block);
        // Indexed field 62: the newest dynamic entry, the bomb.
        block.extend_from_slice(&[0x80 | 62; 10_000]);
        assert!(block.len() <= 16_384);
        assert!(
            c.send(&headers(1, &block, flag::END_HEADERS | flag::END_STREAM))
                .await
        );
        let outcome = c.outcome(1, PROMPTLY).await;
        assert_eq!(
            (
                outcome.http_status.as_deref(),
                outcome.grpc_status.as_deref()
            ),
            (Some("200"), Some("8")),
            "{outcome:?}"
        );
        c.assert_serves(3).await;

        // One 20,000-octet value, over HEADERS and CONTINUATION.
        let big = "b".repeat(20_000);
        let block = c.request_block(UNARY, &[("x-big", &big)]);
        assert!(c.send(&header_block_frames(5, &block, true)).await);
        let outcome = c.outcome(5, PROMPTLY).await;
        assert_eq!(outcome.grpc_status.as_deref(), Some("8"), "{outcome:?}");
        c.assert_serves(7).await;

        // 600 tiny fields: the 32 octets counted per field put them over.
        let names: Vec<String> = (0..600).map(|i| format!("x-{i}")).collect();
        let extra: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
        let block = c.request_block(UNARY, &extra);
        assert!(c.send(&header_block_frames(9, &block, true)).await);
        let outcome = c.outcome(9, PROMPTLY).await;
        assert_eq!(outcome.grpc_status.as_deref(), Some("8"), "{outcome:?}");
        c.assert_serves(11).await;
    });
    server.shutdown_and_wait();
}

// ----- slow readers -----

/// A client that opens server-streaming calls and gives them no window: each
/// handler stops at the stream's send high-water mark (nothing is sent, nothing
/// piles up), and after `send_stall_timeout` the streams are reset with CANCEL
/// and their handlers cancelled. The connection itself is fine.
#[test]
fn streams_given_no_window_stay_bounded_and_are_reset_after_the_stall_timeout() {
    let _alone = alone();
    let stall = Duration::from_secs(1);
    let server = serve(|c| c.codec.send_stall_timeout = stall);
    let cancelled_before = server.stats().total.finished(Code::Cancelled);
    let calls = 8;
    under_attack(&server, |addr| async move {
        let mut c = RawClient::handshake(addr, &[(setting::INITIAL_WINDOW_SIZE, 0)]).await;
        let request = StreamRequest {
            count: 1_000_000,
            size: 1024,
        }
        .encode_to_vec();
        let ids: Vec<u32> = (0..calls).map(|i| 1 + 2 * i).collect();
        let mut frames = Vec::new();
        for &id in &ids {
            frames.extend(c.request_frame(id, SERVER_STREAM, &[], false));
            frames.extend(data(id, &grpc_message(&request), true));
        }
        let mark = heap_mark();
        let started = Instant::now();
        assert!(c.send(&frames).await);
        let mut reset = HashSet::new();
        while reset.len() < ids.len() {
            match c.next(PROMPTLY + stall).await {
                Next::Frame(Frame::Data { id, .. }) => panic!("DATA on {id} without window"),
                Next::Frame(Frame::Reset { id, reason }) => {
                    assert_eq!(reason, Reason::CANCEL, "stream {id}");
                    reset.insert(id);
                }
                Next::Frame(frame @ Frame::GoAway { .. }) => panic!("{frame:?}"),
                Next::Frame(_) => {}
                other => panic!("streams not reset: {other:?}"),
            }
        }
        let elapsed = started.elapsed();
        assert!(
            elapsed >= stall,
            "reset after {elapsed:?}, sooner than {stall:?}"
        );
        // Each handler holds at most the 64 KiB high-water mark plus the message
        // that crossed it; without backpressure a million 1 KiB messages each.
        let peak = heap_peak_since(mark);
        assert!(
            peak < 4 * MIB,
            "worker heap rose {} KiB for {calls} stalled streams",
            peak / KIB
        );
        // With a window, the same connection serves.
        assert!(
            c.send(&settings(&[(setting::INITIAL_WINDOW_SIZE, 65_535)]))
                .await
        );
        c.assert_serves(101).await;
    });
    let total = server.stats().total;
    assert!(
        total.finished(Code::Cancelled) >= cancelled_before + calls as u64,
        "handlers of stalled streams cancelled: {total:?}"
    );
    server.shutdown_and_wait();
}

/// A client that grants every window and then stops reading its socket: the
/// server writes until the kernel buffers are full, holds at most a batch and
/// the streams' high-water marks, and drops the connection once a write has
/// made no progress for `send_stall_timeout`.
#[test]
fn a_client_that_stops_reading_its_socket_is_disconnected() {
    let _alone = alone();
    let stall = Duration::from_secs(1);
    let server = serve(|c| c.codec.send_stall_timeout = stall);
    let written_before = server.stats().total.bytes_written;
    let calls = 8;
    let server_ref = &server;
    under_attack(&server, |addr| async move {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let max_window = (1u32 << 31) - 1;
        let mut hello = PREFACE.to_vec();
        hello.extend(settings(&[(setting::INITIAL_WINDOW_SIZE, max_window)]));
        hello.extend(window_update(0, max_window - 65_535));
        tcp.write_all(&hello).await.unwrap();
        // Read just the server's SETTINGS, to acknowledge them.
        let mut head = [0; 9];
        tcp.read_exact(&mut head).await.unwrap();
        assert_eq!(head[3], kind::SETTINGS);
        let mut payload = vec![0; u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize];
        tcp.read_exact(&mut payload).await.unwrap();
        let request = StreamRequest {
            count: 1_000_000,
            size: 16 * 1024,
        }
        .encode_to_vec();
        let mut frames = settings_ack();
        for i in 0..calls {
            let id = 1 + 2 * i;
            let block = plain_block(&grpc_request(SERVER_STREAM));
            frames.extend(headers(id, &block, flag::END_HEADERS));
            frames.extend(data(id, &grpc_message(&request), true));
        }
        let mark = heap_mark();
        tcp.write_all(&frames).await.unwrap();
        // Never read again. Once the calls run, wait for the server to let go:
        // the bystander's connection is the only one to stay.
        let started = Instant::now();
        while server_ref.stats().total.active_streams < calls as u64 {
            assert!(started.elapsed() < PROMPTLY, "the calls never started");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        while server_ref.stats().total.active_connections > 1 {
            assert!(
                started.elapsed() < PROMPTLY + stall,
                "the connection of a client that reads nothing is still open"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let peak = heap_peak_since(mark);
        assert!(
            peak < 16 * MIB,
            "worker heap rose {} MiB for a client that reads nothing",
            peak / MIB
        );
        // Reading now drains what the kernels buffered, then the end.
        let mut sink = vec![0; 1 << 20];
        let drained = tokio::time::timeout(PROMPTLY, async {
            let mut total = 0;
            while let Ok(n @ 1..) = tcp.read(&mut sink).await {
                total += n;
            }
            total
        })
        .await
        .expect("the server closed the connection");
        // What the kernels hold: a few MiB each way. Streaming on would be GiBs.
        assert!(drained < 64 * MIB as usize, "{drained} bytes were sent");
    });
    let written = server.stats().total.bytes_written - written_before;
    assert!(written < 64 * MIB as u64, "{written} bytes written");
    server.shutdown_and_wait();
}

/// Slowloris: connections that trickle the preface a byte at a time, send
/// nothing, or never acknowledge our SETTINGS are each closed by the handshake
/// timeout with a GOAWAY, while a real client is served.
#[test]
fn slowloris_connections_are_closed_by_the_handshake_timeout() {
    let _together = together();
    let server = serve(|c| c.codec.handshake_timeout = Duration::from_secs(1));
    under_attack(&server, |addr| async move {
        let started = Instant::now();
        let attackers: Vec<_> = (0..30)
            .map(|i| {
                tokio::spawn(async move {
                    let mut c = RawClient::connect(addr).await;
                    let expected = match i % 3 {
                        0 => {
                            for byte in PREFACE {
                                if c.hung_up() || !c.send(&[*byte]).await {
                                    break;
                                }
                                tokio::time::sleep(Duration::from_millis(150)).await;
                            }
                            Reason::PROTOCOL_ERROR
                        }
                        1 => Reason::PROTOCOL_ERROR,
                        _ => {
                            let mut hello = PREFACE.to_vec();
                            hello.extend(settings(&[]));
                            assert!(c.send(&hello).await);
                            Reason::SETTINGS_TIMEOUT
                        }
                    };
                    c.expect_goaway(expected).await;
                })
            })
            .collect();
        for attacker in attackers {
            attacker.await.unwrap();
        }
        assert!(started.elapsed() < PROMPTLY);
    });
    server.shutdown_and_wait();
}

// ----- concurrency, message size, compression -----

/// Streams past MAX_CONCURRENT_STREAMS are refused with REFUSED_STREAM (safe to
/// retry), and a client that keeps opening them gets a bounded number of those
/// answers, then GOAWAY ENHANCE_YOUR_CALM.
#[test]
fn streams_past_the_limit_are_refused_and_refusals_are_budgeted() {
    let _together = together();
    let budget = 20;
    let server = serve(|c| {
        c.codec.max_concurrent_streams = 4;
        c.codec.max_peer_resets = budget;
        // Keep the per-read rule out of the way: this is about refusals.
        c.codec.max_new_streams_per_recv = 100_000;
    });
    under_attack(&server, |addr| async move {
        let mut c = RawClient::handshake(addr, &[]).await;
        assert_eq!(c.server_settings.unwrap().max_concurrent_streams, Some(4));
        // Four calls whose handlers wait for a message that never comes.
        let mut opens = Vec::new();
        for id in [1, 3, 5, 7] {
            opens.extend(c.request_frame(id, UNARY, &[], false));
        }
        assert!(c.send(&opens).await);
        c.ping_pong(*b"fouropen").await;
        let fifth = c.request_frame(9, UNARY, &[], true);
        assert!(c.send(&fifth).await);
        assert_eq!(
            c.outcome(9, PROMPTLY).await.reset,
            Some(Reason::REFUSED_STREAM)
        );
        let mut id = 11;
        while id < 20_000 && !c.hung_up() {
            let mut batch = Vec::new();
            for _ in 0..10 {
                batch.extend(c.request_frame(id, UNARY, &[], true));
                id += 2;
            }
            if !c.send(&batch).await {
                break;
            }
        }
        let (_, before) = c.expect_goaway(Reason::ENHANCE_YOUR_CALM).await;
        let refused = 1 + resets_with(&before, Reason::REFUSED_STREAM);
        assert!(
            refused <= budget as usize + 1,
            "{refused} REFUSED_STREAM answers for a budget of {budget}"
        );
    });
    server.shutdown_and_wait();
}

/// A length prefix of 4 GiB is refused from the prefix alone; prefixes that
/// announce the largest message allowed and then send a trickle hold only what
/// arrived, not what they announced.
#[test]
fn announced_message_sizes_reserve_nothing_up_front() {
    let _alone = alone();
    let server = serve(|_| {});
    let limit = EngineConfig::default().codec.max_message_size;
    under_attack(&server, |addr| async move {
        let response = h2_call_framed(addr, UNARY, &[], vec![0, 0xff, 0xff, 0xff, 0xff]).await;
        assert_eq!(response.grpc_status(), Some("8"), "{response:?}");

        let mut c = RawClient::handshake(addr, &[]).await;
        let streams = 64u32;
        let mut frames = Vec::new();
        for i in 0..streams {
            let id = 1 + 2 * i;
            frames.extend(c.request_frame(id, UNARY, &[], false));
            let mut body = vec![0];
            body.extend(limit.to_be_bytes());
            body.extend([7; 1000]);
            frames.extend(data(id, &body, false));
        }
        let mark = heap_mark();
        assert!(c.send(&frames).await);
        c.ping_pong(*b"received").await;
        // One 64 KiB step per stream at most; reserving what was announced
        // would be 64 × 4 MiB.
        let peak = heap_peak_since(mark);
        assert!(
            peak < 16 * MIB,
            "worker heap rose {} MiB for {streams} announced messages",
            peak / MIB
        );
        // The 4 GiB prefix on this connection too: refused, nothing allocated.
        let id = 1 + 2 * streams;
        let mut frames = c.request_frame(id, UNARY, &[], false);
        frames.extend(data(id, &[0, 0xff, 0xff, 0xff, 0xff], false));
        assert!(c.send(&frames).await);
        let outcome = c.outcome(id, PROMPTLY).await;
        assert_eq!(outcome.grpc_status.as_deref(), Some("8"), "{outcome:?}");
        assert!(heap_peak_since(mark) < 16 * MIB);
    });
    server.shutdown_and_wait();
}

/// A gzip bomb: 16 MiB of zeros in 16 KiB, against a 1 MiB receive limit. It is
/// inflated only up to the limit and answered RESOURCE_EXHAUSTED.
#[test]
fn a_decompression_bomb_is_refused_within_the_limit() {
    let _alone = alone();
    let limit = 1024 * 1024;
    let server = serve(|c| c.codec.max_message_size = limit);
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1024 * 1024];
    for _ in 0..16 {
        gzip.write_all(&zeros).unwrap();
    }
    let bomb = gzip.finish().unwrap();
    assert!(bomb.len() < 64 * 1024, "{} bytes", bomb.len());
    under_attack(&server, |addr| async move {
        let mark = heap_mark();
        let response = h2_call_framed(
            addr,
            UNARY,
            &[("grpc-encoding", "gzip")],
            frame(true, &bomb),
        )
        .await;
        assert_eq!(response.grpc_status(), Some("8"), "{response:?}");
        let peak = heap_peak_since(mark);
        assert!(
            peak < 8 * MIB,
            "worker heap rose {} MiB inflating a bomb against a 1 MiB limit",
            peak / MIB
        );
    });
    server.shutdown_and_wait();
}

// ----- the client's GOAWAY -----

/// A client closing with an error GOAWAY gets our GOAWAY naming the last stream
/// we took in (RFC 9113 §6.8), and its calls are cancelled.
#[test]
fn a_client_error_goaway_is_answered_with_goaway() {
    let _together = together();
    let server = serve(|_| {});
    under_attack(&server, |addr| async move {
        let mut c = RawClient::handshake(addr, &[]).await;
        assert!(c.request(1, UNARY, &[], false).await);
        c.ping_pong(*b"inflight").await;
        assert!(c.send(&go_away(0, Reason::PROTOCOL_ERROR)).await);
        match c.next(PROMPTLY).await {
            Next::Frame(Frame::GoAway { last, reason, .. }) => {
                assert_eq!((last, reason), (1, Reason::NO_ERROR))
            }
            other => panic!("no GOAWAY: {other:?}"),
        }
        c.expect_closed(PROMPTLY).await;
    });
    server.shutdown_and_wait();
}

// ----- malformed input, table-driven -----

/// What a stream or connection is in before the malformed input.
#[derive(Clone, Copy, Debug)]
enum Setup {
    /// Nothing but the handshake.
    Fresh,
    /// Stream 1 open, its handler waiting for a message.
    Open,
    /// Stream 1 served and closed.
    Served,
}

/// The answer the server owes.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Connection error: GOAWAY with this code, then the connection closes.
    GoAway(Reason),
    /// Stream error: RST_STREAM on this stream; the connection goes on.
    Reset(u32, Reason),
    /// Nothing: the input is ignored and the connection goes on.
    Ignored,
    /// The call on stream 3 ends with this `grpc-status`.
    Grpc(&'static str),
    /// The request on stream 3 is answered with this HTTP status.
    Http(&'static str),
}

struct Case {
    name: &'static str,
    setup: Setup,
    input: fn(&mut RawClient) -> Vec<u8>,
    expect: Expect,
}

/// A request on stream 3 with `fields` (already complete) in one HEADERS frame.
fn request_with(c: &mut RawClient, fields: &[(&str, &str)]) -> Vec<u8> {
    let block = c.block(fields);
    headers(3, &block, flag::END_HEADERS | flag::END_STREAM)
}

/// The standard request with `extra` fields added, on stream 3.
fn request_plus(c: &mut RawClient, extra: &[(&str, &str)]) -> Vec<u8> {
    c.request_frame(3, UNARY, extra, true)
}

/// A request on stream 3 with a raw header block.
fn raw_block(block: &[u8]) -> Vec<u8> {
    headers(3, block, flag::END_HEADERS | flag::END_STREAM)
}

/// A call on stream 3 whose one DATA frame carries `payload`.
fn call_with_body(c: &mut RawClient, payload: &[u8]) -> Vec<u8> {
    let mut frames = c.request_frame(3, UNARY, &[], false);
    frames.extend(data(3, payload, true));
    frames
}

use Expect::{GoAway, Grpc, Http, Ignored, Reset};
use Setup::{Fresh, Open, Served};

const PROTOCOL: Reason = Reason::PROTOCOL_ERROR;
const FRAME_SIZE: Reason = Reason::FRAME_SIZE_ERROR;
const COMPRESSION: Reason = Reason::COMPRESSION_ERROR;
const FLOW: Reason = Reason::FLOW_CONTROL_ERROR;

fn cases() -> Vec<Case> {
    vec![
        // Frame sizes (RFC 9113 §4.2, §6).
        Case {
            name: "DATA longer than SETTINGS_MAX_FRAME_SIZE",
            setup: Open,
            input: |_| raw(kind::DATA, 0, 1, &[0; 16_385]),
            expect: GoAway(FRAME_SIZE),
        },
        Case {
            name: "SETTINGS length not a multiple of 6",
            setup: Fresh,
            input: |_| raw(kind::SETTINGS, 0, 0, &[0; 5]),
            expect: GoAway(FRAME_SIZE),
        },
        Case {
            name: "SETTINGS ACK with a payload",
            setup: Fresh,
            input: |_| raw(kind::SETTINGS, flag::ACK, 0, &[0; 6]),
            expect: GoAway(FRAME_SIZE),
        },
        Case {
            name: "PING of 7 octets",
            setup: Fresh,
            input: |_| raw(kind::PING, 0, 0, &[0; 7]),
            expect: GoAway(FRAME_SIZE),
        },
        Case {
            name: "RST_STREAM of 3 octets",
            setup: Open,
            input: |_| raw(kind::RST_STREAM, 0, 1, &[0; 3]),
            expect: GoAway(FRAME_SIZE),
        },
        Case {
            name: "WINDOW_UPDATE of 3 octets",
            setup: Fresh,
            input: |_| raw(kind::WINDOW_UPDATE, 0, 0, &[0, 0, 1]),
            expect: GoAway(FRAME_SIZE),
        },
        Case {
            name: "PRIORITY of 4 octets on an open stream",
            setup: Open,
            input: |_| raw(kind::PRIORITY, 0, 1, &[0; 4]),
            expect: Reset(1, FRAME_SIZE),
        },
        Case {
            name: "padding as long as the DATA payload",
            setup: Open,
            input: |_| raw(kind::DATA, flag::PADDED, 1, &[6, 0, 0, 0, 0, 0]),
            expect: GoAway(PROTOCOL),
        },
        // Frames on the wrong stream (§6).
        Case {
            name: "HEADERS on stream 0",
            setup: Fresh,
            input: |c| {
                let block = c.request_block(UNARY, &[]);
                headers(0, &block, flag::END_HEADERS)
            },
            expect: GoAway(PROTOCOL),
        },
        Case {
            name: "DATA on stream 0",
            setup: Fresh,
            input: |_| data(0, &grpc_message(&[]), false),
            expect: GoAway(PROTOCOL),
        },
        Case {
            name: "RST_STREAM on stream 0",
            setup: Fresh,
            input: |_| rst(0, Reason::CANCEL),
            expect: GoAway(PROTOCOL),
        },
        Case {
            name: "SETTINGS on stream 1",
            setup: Open,
            input: |_| raw(kind::SETTINGS, 0, 1, &[]),
            expect: GoAway(PROTOCOL),
        },
        Case {
            name: "PING on stream 1",
            setup: Open,
            input: |_| raw(kind::PING, 0, 1, &[0; 8]),
            expect: GoAway(PROTOCOL),
        },
        Case {
            name: "GOAWAY on stream 1",
            setup: Open,
            input: |_| raw(kind::GOAWAY, 0, 1, &[0; 8]),
            expect: GoAway(PROTOCOL),
        },
        Case {
            name: "WINDOW_UPDATE of 0 on the connection",
            setup: Fresh,
            input: |_| window_update(0, 0),
            expect: GoAway(PROTOCOL),
        },
        Case {
            name: "even stream id from a client",
            setup: Fresh,
            input: |c| c.request_frame(2, UNARY, &[], true),
            expect: GoAway(PROTOCOL),
        },
        Case {
            name: "PUSH_PROMISE from a client",
            setup: Open,
            input: |_| {
                raw(
                    kind::PUSH_PROMISE,
                    flag::END_HEADERS,
                    1,
                    &[0, 0, 0, 2, 0x82],
                )
            },
            expect: GoAway(PROTOCOL),
        },
        Case {
            name: "CONTINUATION without HEADERS",
            setup: Open,
            input: |_| continuation(1, &[0x82], true),
            expect: GoAway(PROTOCOL),
        },
        Case {
            name: "another frame inside a header block",
            setup: Fresh,
            input: |c| {
                let block = c.request_block(UNARY, &[]);
                let mut frames = headers(3, &block[..2], flag::END_STREAM);
                frames.extend(ping(*b"between!"));
                frames
            },
            expect: GoAway(PROTOCOL),
        },
        // Stream states (§5.1).
        Case {
            name: "DATA on an idle stream",
            setup: Fresh,
            input: |_| data(5, &grpc_message(&[]), true),
            expect: GoAway(PROTOCOL),
        },
        Case {
            name: "RST_STREAM on an idle stream",
            setup: Fresh,
            input: |_| rst(5, Reason::CANCEL),
            expect: GoAway(PROTOCOL),
        },
        Case {
            name: "DATA on a closed stream",
            setup: Served,
            input: |_| data(1, &grpc_message(&[]), true),
            expect: Reset(1, Reason::STREAM_CLOSED),
        },
        Case {
            name: "HEADERS reopening a closed stream",
            setup: Served,
            input: |c| c.request_frame(1, UNARY, &[], true),
            expect: GoAway(Reason::STREAM_CLOSED),
        },
        Case {
            name: "trailers without END_STREAM",
            setup: Open,
            input: |c| {
                let block = c.block(&[("x-trailer", "a")]);
                headers(1, &block, flag::END_HEADERS)
            },
            expect: Reset(1, PROTOCOL),
        },
        // Flow control (§6.9).
        Case {
            name: "WINDOW_UPDATE of 0 on a stream",
            setup: Open,
            input: |_| window_update(1, 0),
            expect: Reset(1, PROTOCOL),
        },
        Case {
            name: "WINDOW_UPDATE overflowing the connection window",
            setup: Fresh,
            input: |_| window_update(0, (1 << 31) - 1),
            expect: GoAway(FLOW),
        },
        Case {
            name: "WINDOW_UPDATE overflowing a stream window",
            setup: Open,
            input: |_| window_update(1, (1 << 31) - 1),
            expect: Reset(1, FLOW),
        },
        // Priority (RFC 7540 §5.3.1: a stream cannot depend on itself).
        Case {
            name: "PRIORITY depending on itself, open stream",
            setup: Open,
            input: |_| priority(1, 1, 16),
            expect: Reset(1, PROTOCOL),
        },
        Case {
            name: "PRIORITY depending on itself, idle stream",
            setup: Fresh,
            input: |_| priority(5, 5, 16),
            expect: GoAway(PROTOCOL),
        },
        Case {
            name: "HEADERS depending on itself",
            setup: Fresh,
            input: |c| {
                let mut payload = vec![0, 0, 0, 3, 16];
                payload.extend_from_slice(&c.request_block(UNARY, &[]));
                headers(
                    3,
                    &payload,
                    flag::END_HEADERS | flag::END_STREAM | flag::PRIORITY,
                )
            },
            expect: Reset(3, PROTOCOL),
        },
        Case {
            name: "PRIORITY for an idle stream",
            setup: Fresh,
            input: |_| priority(5, 0, 16),
            expect: Ignored,
        },
        // Extensions and settings (§5.5, §6.5.2).
        Case {
            name: "unknown frame type on stream 0",
            setup: Fresh,
            input: |_| raw(0xfa, 0xff, 0, b"extension"),
            expect: Ignored,
        },
        Case {
            name: "unknown frame type on an idle stream",
            setup: Fresh,
            input: |_| raw(0xfa, 0, 99, b"x"),
            expect: Ignored,
        },
        Case {
            name: "unknown SETTINGS parameter",
            setup: Fresh,
            input: |_| settings(&[(0x99, 7)]),
            expect: Ignored,
        },
        Case {
            name: "SETTINGS_ENABLE_PUSH of 2",
            setup: Fresh,
            input: |_| settings(&[(setting::ENABLE_PUSH, 2)]),
            expect: GoAway(PROTOCOL),
        },
        Case {
            name: "SETTINGS_INITIAL_WINDOW_SIZE over 2^31 - 1",
            setup: Fresh,
            input: |_| settings(&[(setting::INITIAL_WINDOW_SIZE, 1 << 31)]),
            expect: GoAway(FLOW),
        },
        Case {
            name: "SETTINGS_MAX_FRAME_SIZE below 16384",
            setup: Fresh,
            input: |_| settings(&[(setting::MAX_FRAME_SIZE, 100)]),
            expect: GoAway(PROTOCOL),
        },
        // HPACK (RFC 7541): the compression context is lost, so the connection.
        Case {
            name: "HPACK index 0",
            setup: Fresh,
            input: |_| raw_block(&[0x80]),
            expect: GoAway(COMPRESSION),
        },
        Case {
            name: "HPACK index past both tables",
            setup: Fresh,
            input: |_| raw_block(&[0x80 | 126]),
            expect: GoAway(COMPRESSION),
        },
        Case {
            name: "HPACK Huffman string containing EOS",
            setup: Fresh,
            input: |_| raw_block(&[0x00, 0x84, 0xff, 0xff, 0xff, 0xff, 0x01, b'a']),
            expect: GoAway(COMPRESSION),
        },
        Case {
            name: "HPACK table size update after a field",
            setup: Fresh,
            input: |_| raw_block(&[0x83, 0x20]),
            expect: GoAway(COMPRESSION),
        },
        Case {
            name: "HPACK table size update above SETTINGS_HEADER_TABLE_SIZE",
            setup: Fresh,
            input: |_| {
                let mut block = Vec::new();
                hpack_int(4097, 5, 0x20, &mut block);
                block.push(0x83);
                raw_block(&block)
            },
            expect: GoAway(COMPRESSION),
        },
        Case {
            name: "HPACK integer overflow",
            setup: Fresh,
            input: |_| raw_block(&[0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]),
            expect: GoAway(COMPRESSION),
        },
        Case {
            name: "HPACK string longer than the block",
            setup: Fresh,
            input: |_| raw_block(&[0x00, 0x0a, b'a']),
            expect: GoAway(COMPRESSION),
        },
        // Malformed requests (§8.2, §8.3): the stream, not the connection.
        Case {
            name: "uppercase field name",
            setup: Fresh,
            input: |c| request_plus(c, &[("X-Upper", "a")]),
            expect: Reset(3, PROTOCOL),
        },
        Case {
            name: "connection-specific field",
            setup: Fresh,
            input: |c| request_plus(c, &[("connection", "keep-alive")]),
            expect: Reset(3, PROTOCOL),
        },
        Case {
            name: "te other than trailers",
            setup: Fresh,
            input: |c| request_plus(c, &[("te", "gzip")]),
            expect: Reset(3, PROTOCOL),
        },
        Case {
            name: "field value with a NUL",
            setup: Fresh,
            input: |c| request_plus(c, &[("x-bad", "a\0b")]),
            expect: Reset(3, PROTOCOL),
        },
        Case {
            name: "pseudo-header after a regular field",
            setup: Fresh,
            input: |c| {
                request_with(
                    c,
                    &[
                        (":method", "POST"),
                        (":scheme", "http"),
                        ("content-type", "application/grpc"),
                        (":path", UNARY),
                    ],
                )
            },
            expect: Reset(3, PROTOCOL),
        },
        Case {
            name: "missing :path",
            setup: Fresh,
            input: |c| {
                request_with(
                    c,
                    &[
                        (":method", "POST"),
                        (":scheme", "http"),
                        ("content-type", "application/grpc"),
                    ],
                )
            },
            expect: Reset(3, PROTOCOL),
        },
        Case {
            name: "duplicate :path",
            setup: Fresh,
            input: |c| request_plus(c, &[(":path", UNARY)]),
            expect: Reset(3, PROTOCOL),
        },
        Case {
            name: "unknown pseudo-header",
            setup: Fresh,
            input: |c| {
                request_with(
                    c,
                    &[
                        (":method", "POST"),
                        (":scheme", "http"),
                        (":path", UNARY),
                        (":protocol", "websocket"),
                    ],
                )
            },
            expect: Reset(3, PROTOCOL),
        },
        Case {
            name: "content-length other than the body",
            setup: Fresh,
            input: |c| request_plus(c, &[("content-length", "100")]),
            expect: Reset(3, PROTOCOL),
        },
        // Valid HTTP/2 that a gRPC server answers with HTTP or gRPC statuses.
        Case {
            name: "content-type not gRPC",
            setup: Fresh,
            input: |c| {
                request_with(
                    c,
                    &[
                        (":method", "POST"),
                        (":scheme", "http"),
                        (":path", UNARY),
                        ("content-type", "application/json"),
                    ],
                )
            },
            expect: Http("415"),
        },
        Case {
            name: "method GET",
            setup: Fresh,
            input: |c| {
                request_with(
                    c,
                    &[
                        (":method", "GET"),
                        (":scheme", "http"),
                        (":path", UNARY),
                        ("content-type", "application/grpc"),
                    ],
                )
            },
            expect: Http("405"),
        },
        Case {
            name: "malformed grpc-timeout",
            setup: Fresh,
            input: |c| request_plus(c, &[("grpc-timeout", "123456789S")]),
            expect: Grpc("13"),
        },
        Case {
            name: "unknown method",
            setup: Fresh,
            input: |c| c.request_frame(3, "/ringrpc.test.TestService/Nope", &[], true),
            expect: Grpc("12"),
        },
        Case {
            name: "unknown service",
            setup: Fresh,
            input: |c| c.request_frame(3, "/nope.Nope/Nope", &[], true),
            expect: Grpc("12"),
        },
        Case {
            name: "unsupported grpc-encoding",
            setup: Fresh,
            input: |c| request_plus(c, &[("grpc-encoding", "br")]),
            expect: Grpc("12"),
        },
        Case {
            name: "compressed flag without grpc-encoding",
            setup: Fresh,
            input: |c| call_with_body(c, &[1, 0, 0, 0, 1, 0]),
            expect: Grpc("13"),
        },
        Case {
            name: "compressed flag of 2",
            setup: Fresh,
            input: |c| call_with_body(c, &[2, 0, 0, 0, 0]),
            expect: Grpc("13"),
        },
        Case {
            name: "message prefix of 4 GiB",
            setup: Fresh,
            input: |c| call_with_body(c, &[0, 0xff, 0xff, 0xff, 0xff]),
            expect: Grpc("8"),
        },
        Case {
            name: "request ending inside a message",
            setup: Fresh,
            input: |c| call_with_body(c, &[0, 0, 0, 0, 10, 1, 2]),
            expect: Grpc("13"),
        },
    ]
}

/// Each malformed input gets its answer on the wire, never a panic or a hang,
/// and the server goes on serving: the same connection after a stream error,
/// other connections always.
#[test]
fn malformed_input_gets_a_clean_answer() {
    let _together = together();
    let server = serve(|_| {});
    under_attack(&server, |addr| async move {
        for case in cases() {
            let name = case.name;
            let mut c = RawClient::handshake(addr, &[]).await;
            match case.setup {
                Fresh => {}
                Open => {
                    assert!(c.request(1, UNARY, &[], false).await);
                    c.ping_pong(*b"setup-ok").await;
                }
                Served => c.assert_serves(1).await,
            }
            let input = (case.input)(&mut c);
            assert!(c.send(&input).await, "{name}: input written");
            match case.expect {
                GoAway(reason) => {
                    loop {
                        match c.next(PROMPTLY).await {
                            Next::Frame(Frame::GoAway { reason: got, .. }) => {
                                assert_eq!(got, reason, "{name}");
                                break;
                            }
                            Next::Frame(Frame::Reset { id, reason }) => {
                                panic!("{name}: RST_STREAM {reason:?} on {id} instead of GOAWAY")
                            }
                            Next::Frame(_) => {}
                            other => panic!("{name}: {other:?} instead of GOAWAY {reason:?}"),
                        }
                    }
                    c.expect_closed(PROMPTLY).await;
                    continue;
                }
                Reset(id, reason) => loop {
                    match c.next(PROMPTLY).await {
                        Next::Frame(Frame::Reset {
                            id: on,
                            reason: got,
                        }) if on == id => {
                            assert_eq!(got, reason, "{name}");
                            break;
                        }
                        Next::Frame(frame @ (Frame::GoAway { .. } | Frame::Reset { .. })) => {
                            panic!("{name}: {frame:?} instead of RST_STREAM {reason:?}")
                        }
                        Next::Frame(_) => {}
                        other => panic!("{name}: {other:?} instead of RST_STREAM {reason:?}"),
                    }
                },
                Ignored => {
                    let answered = c.ping_pong(*b"ignored?").await;
                    // What the handshake still owes (our SETTINGS acknowledged, the
                    // connection window opened) may come first; nothing else.
                    assert!(
                        answered.iter().all(|f| matches!(
                            f,
                            Frame::Settings(s) if s.ack
                        ) || matches!(
                            f,
                            Frame::WindowUpdate { id: 0, .. }
                        )),
                        "{name}: answered {answered:?}"
                    );
                }
                Grpc(code) => {
                    let outcome = c.outcome(3, PROMPTLY).await;
                    assert_eq!(
                        outcome.grpc_status.as_deref(),
                        Some(code),
                        "{name}: {outcome:?}"
                    );
                    assert_eq!(outcome.http_status.as_deref(), Some("200"), "{name}");
                }
                Http(code) => {
                    let outcome = c.outcome(3, PROMPTLY).await;
                    assert_eq!(
                        outcome.http_status.as_deref(),
                        Some(code),
                        "{name}: {outcome:?}"
                    );
                }
            }
            c.assert_serves(101).await;
        }
    });
    server.shutdown_and_wait();
}

// ----- partly received messages -----

/// Messages sent all but their last bytes on several streams hold the
/// connection's reassembly budget: the stream whose DATA would take the total
/// over `max_partial_message_bytes` gets RESOURCE_EXHAUSTED, the streams within
/// it complete, and the connection and the server go on serving.
#[test]
fn partly_received_messages_over_the_connection_budget_fail_that_stream() {
    let _together = together();
    let budget = 128 * 1024;
    let server = serve(|c| {
        c.codec.max_message_size = 64 * 1024;
        c.codec.max_partial_message_bytes = budget;
    });
    under_attack(&server, |addr| async move {
        let payload = Payload {
            body: Bytes::from(vec![7; 60_000]),
        };
        let message = grpc_message(&payload.encode_to_vec());
        // All but the last 8 bytes: about 60 KB held per stream.
        let (most, rest) = message.split_at(message.len() - 8);
        // Windows for the two 60 KB echoes (SETTINGS_INITIAL_WINDOW_SIZE and the
        // connection's), so the answers do not wait on the client.
        let mut c = RawClient::handshake(addr, &[(0x4, 1 << 20)]).await;
        let mut frames = window_update(0, 1 << 20);
        for id in [1, 3] {
            frames.extend(c.request_frame(id, UNARY, &[], false));
            for chunk in most.chunks(16 * 1024) {
                frames.extend(data(id, chunk, false));
            }
        }
        // Stream 5's first 16 KiB takes the two 60 KB messages over 128 KiB.
        frames.extend(c.request_frame(5, UNARY, &[], false));
        frames.extend(data(5, &most[..16 * 1024], false));
        assert!(c.send(&frames).await);
        let outcome = c.outcome(5, PROMPTLY).await;
        assert_eq!(outcome.grpc_status.as_deref(), Some("8"), "{outcome:?}");
        let why = outcome.grpc_message.unwrap_or_default();
        assert!(why.contains(&budget.to_string()), "{why}");
        assert_eq!(outcome.goaway, None);

        // The streams within the budget complete and are answered in full.
        for id in [1, 3] {
            assert!(c.send(&data(id, rest, true)).await);
            let outcome = c.outcome(id, PROMPTLY).await;
            assert_eq!(outcome.grpc_status.as_deref(), Some("0"), "{outcome:?}");
            assert!(outcome.data >= 60_000, "{outcome:?}");
        }
        c.assert_serves(7).await;
    });
    server.shutdown_and_wait();
}
