//! A short soak: the full mix of calls, cancellations, expired deadlines and
//! dropped connections, after which the server must hold nothing, every RPC
//! must be accounted for, and once the server has shut down the heap must be
//! back where it was. (The RSS bound needs a long run; see README.md.)

use std::sync::Mutex;
use std::time::Duration;

use ringrpc_engine::Backend;
use ringrpc_service_api::Code;
use ringrpc_soak::heap::{live_heap_bytes, CountingAllocator};
use ringrpc_soak::{Mix, SoakConfig};

#[global_allocator]
static ALLOC: CountingAllocator<std::alloc::System> = CountingAllocator(std::alloc::System);

/// The heap is the process's: the soaks take turns so each sees only its own.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Heap a finished soak may leave behind: what the runtime keeps once per
/// process (thread-local and lazily made statics). A connection whose state
/// outlived it holds tens of KiB, and this soak drops dozens of them.
const HEAP_SLACK: u64 = 256 * 1024;

fn short_soak(backend: Backend) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let config = SoakConfig {
        rpcs: 20_000,
        conns: 8,
        streams: 16,
        client_threads: 2,
        workers: 2,
        backend,
        max_duration: Duration::from_secs(120),
        mix: Mix::default(),
        seed: 7,
        progress: false,
        release_free_memory: None,
    };
    let heap_before = live_heap_bytes().expect("counted");
    let report = ringrpc_soak::run(&config).expect("the server starts");
    // The server has shut down and every client thread is gone.
    let heap_after = live_heap_bytes().expect("counted");
    eprintln!("{report}\nheap before {heap_before} B, after {heap_after} B");
    let client = &report.client;
    let total = &report.stats.total;
    assert_eq!(client.issued, 20_000, "the time cap was not reached");
    assert_eq!(client.unexpected, 0, "{:?}", client.samples);
    assert_eq!(
        client.ok + client.cancelled + client.deadline_exceeded + client.disconnected,
        client.issued,
        "every call has one outcome"
    );
    // Every kind of ending happened, so the checks below cover them.
    assert!(
        client.cancelled > 0 && client.deadline_exceeded > 0,
        "{client:?}"
    );
    assert!(client.dropped_fin + client.dropped_rst > 0, "{client:?}");
    assert!(client.disconnected > 0, "{client:?}");
    assert!(total.finished(Code::Cancelled) > 0, "{total:?}");
    assert!(total.finished(Code::DeadlineExceeded) > 0, "{total:?}");
    assert!(total.finished(Code::Unavailable) > 0, "{total:?}");

    assert_eq!(total.active_connections, 0, "{total:?}");
    assert_eq!(total.active_streams, 0, "{total:?}");
    assert_eq!(total.rpcs_started, total.finished_total(), "{total:?}");
    assert_eq!(total.connections_accepted, client.connections, "{total:?}");
    assert!(
        total.rpcs_started >= client.issued - client.disconnected,
        "{total:?}"
    );
    assert!(
        heap_after <= heap_before + HEAP_SLACK,
        "{} KiB of heap outlived the server",
        (heap_after - heap_before) / 1024
    );
}

#[test]
fn short_soak_leaves_nothing_active_on_io_uring() {
    short_soak(Backend::Uring);
}

#[test]
fn short_soak_leaves_nothing_active_on_epoll() {
    short_soak(Backend::Epoll);
}
