//! A global allocator that counts what threads that opted in allocate: calls,
//! and net live bytes. Tests that measure the engine's heap install it with
//! `#[global_allocator] static GLOBAL: Counting = Counting;` and opt the worker
//! thread in from their service factory ([`count_this_thread`]), so the client's
//! threads in the same process do not count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use std::time::Duration;

use bytes::Bytes;
use ringrpc_engine::{Backend, EngineConfig, Server, ServerHandle};
use ringrpc_service_api::server::{unary, CallSlot, Service};
use ringrpc_service_api::{Call, Request, Response, Status};

/// The counting allocator (the system allocator underneath).
pub struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);

thread_local! {
    static COUNT_HERE: Cell<bool> = const { Cell::new(false) };
}

/// From now on, what this thread allocates and frees counts.
pub fn count_this_thread() {
    COUNT_HERE.with(|c| c.set(true));
}

/// Allocations (and reallocations) made by counted threads so far.
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Bytes allocated minus bytes freed by counted threads so far.
pub fn live_bytes() -> i64 {
    LIVE_BYTES.load(Ordering::Relaxed)
}

fn count(calls: u64, bytes: i64) {
    if COUNT_HERE.with(Cell::get) {
        ALLOCATIONS.fetch_add(calls, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed);
    }
}

// Safety: every method forwards to the system allocator with the caller's
// arguments; counting touches only atomics and a const-initialised
// thread-local, neither of which allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(1, layout.size() as i64);
        // Safety: forwarding the caller's layout to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(0, -(layout.size() as i64));
        // Safety: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(1, new_size as i64 - layout.size() as i64);
        // Safety: as for `alloc`/`dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[derive(Clone, PartialEq, prost::Message)]
struct Blob {
    #[prost(bytes = "bytes", tag = "1")]
    body: Bytes,
}

/// `counted.Echo/Echo`: a unary echo whose own code allocates nothing (its
/// `bytes` field is a slice of the read buffer and goes back as is). Building
/// it opts the building thread, the worker, in to counting.
pub struct Echo;

impl Echo {
    /// The service, for `add_service`; counts the worker thread from now on.
    pub fn counted() -> Echo {
        count_this_thread();
        Echo
    }
}

impl Service for Echo {
    fn name(&self) -> &'static str {
        "counted.Echo"
    }

    fn call(&self, method: &[u8], call: Call, slot: Pin<&mut CallSlot>) -> bool {
        if method != b"Echo" {
            return false;
        }
        slot.put(unary(call, |request: Request<Blob>| async move {
            Ok::<_, Status>(Response::new(request.into_inner()))
        }));
        true
    }
}

/// A one-worker server of [`Echo`] on 127.0.0.1, its worker thread counted.
/// `RINGRPC_BACKEND` wins over `backend`: see `ServerHandle::backend`.
pub fn echo_server(backend: Backend) -> ServerHandle {
    let config = EngineConfig {
        backend,
        workers: 1,
        shutdown_grace: Duration::from_secs(1),
        ..EngineConfig::default()
    };
    Server::builder()
        .config(config)
        .add_service(Echo::counted)
        .serve("127.0.0.1:0".parse().unwrap())
        .unwrap()
}

/// One `counted.Echo/Echo` call of a 20-byte message over `client`, checked
/// for status OK; gives the client back for the next call.
pub async fn echo_call(
    client: h2::client::SendRequest<Bytes>,
    addr: SocketAddr,
) -> h2::client::SendRequest<Bytes> {
    const MESSAGE: &[u8] = b"\x0a\x14twenty bytes of body";
    let mut client = client.ready().await.unwrap();
    let request = http::Request::post(format!("http://{addr}/counted.Echo/Echo"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut stream) = client.send_request(request, false).unwrap();
    stream
        .send_data(crate::frame(false, MESSAGE).into(), true)
        .unwrap();
    let mut recv = response.await.unwrap().into_body();
    while let Some(chunk) = recv.data().await {
        let chunk = chunk.unwrap();
        recv.flow_control().release_capacity(chunk.len()).unwrap();
    }
    let trailers = recv.trailers().await.unwrap().unwrap();
    assert_eq!(trailers.get("grpc-status").unwrap(), "0");
    client
}
