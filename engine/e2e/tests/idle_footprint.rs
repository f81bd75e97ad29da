//! Heap held by the worker per idle connection: a connection that made one call
//! and then sends nothing should cost a few KiB, not its buffers.
//!
//! A counting global allocator keeps the net bytes allocated on threads that
//! opted in (the worker does, from its service factory). Two batches of
//! connections are opened one after the other, each connection making one unary
//! call and then staying open and idle; the figure is the growth from the first
//! batch to the second divided by its size, so pools the worker fills once (read
//! and write buffers, handler slots, the encode buffer) do not count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use ringrpc_engine::{Backend, EngineConfig, Server};
use ringrpc_service_api::server::{unary, CallSlot, Service};
use ringrpc_service_api::{Call, Request, Response, Status};

struct Counting;

static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);

thread_local! {
    static COUNT_HERE: Cell<bool> = const { Cell::new(false) };
}

fn counted(delta: i64) {
    if COUNT_HERE.with(Cell::get) {
        LIVE_BYTES.fetch_add(delta, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        counted(layout.size() as i64);
        // Safety: forwarding the caller's layout to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        counted(-(layout.size() as i64));
        // Safety: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        counted(new_size as i64 - layout.size() as i64);
        // Safety: as for `alloc`/`dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[derive(Clone, PartialEq, prost::Message)]
struct Blob {
    #[prost(bytes = "bytes", tag = "1")]
    body: Bytes,
}

struct Echo;

impl Service for Echo {
    fn name(&self) -> &'static str {
        "idle.Echo"
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

/// Connections per batch.
const BATCH: usize = 250;

/// Heap per idle connection the engine may hold: about 8 KiB today (7 on
/// epoll), of which the codec's connection with its HPACK tables and one reused
/// stream record are about 3 KiB, the reader's and writer's tasks 1.8 KiB and,
/// on io_uring, the small buffer the pending read waits with 1 KiB. A full-size
/// read or write buffer held while idle (16 KiB) fails this.
const BUDGET: i64 = 10 * 1024;

/// Opens `BATCH` connections, each making one call, and returns their request
/// handles (dropping them would close the connections).
async fn open_batch(addr: std::net::SocketAddr) -> Vec<h2::client::SendRequest<Bytes>> {
    let message = b"\x0a\x14twenty bytes of body";
    let mut clients = Vec::with_capacity(BATCH);
    for _ in 0..BATCH {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (client, connection) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(connection);
        let mut client = client.ready().await.unwrap();
        let request = http::Request::post(format!("http://{addr}/idle.Echo/Echo"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let (response, mut stream) = client.send_request(request, false).unwrap();
        let mut body = vec![0u8];
        body.extend_from_slice(&(message.len() as u32).to_be_bytes());
        body.extend_from_slice(message);
        stream.send_data(body.into(), true).unwrap();
        let mut recv = response.await.unwrap().into_body();
        while let Some(chunk) = recv.data().await {
            let chunk = chunk.unwrap();
            recv.flow_control().release_capacity(chunk.len()).unwrap();
        }
        let trailers = recv.trailers().await.unwrap().unwrap();
        assert_eq!(trailers.get("grpc-status").unwrap(), "0");
        clients.push(client);
    }
    clients
}

/// The worker's live heap once it has stopped changing (the last calls'
/// buffers given back, the connections' reads parked).
async fn settled_live_bytes() -> i64 {
    let mut last = LIVE_BYTES.load(Ordering::Relaxed);
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = LIVE_BYTES.load(Ordering::Relaxed);
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

/// The backend the server ran (`RINGRPC_BACKEND` wins over the config) and its
/// heap per idle connection.
fn per_idle_connection(backend: Backend) -> (Backend, i64) {
    let config = EngineConfig {
        backend,
        workers: 1,
        shutdown_grace: Duration::from_secs(1),
        ..EngineConfig::default()
    };
    let server = Server::builder()
        .config(config)
        .add_service(|| {
            COUNT_HERE.with(|c| c.set(true));
            Echo
        })
        .serve("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let backend = server.backend();
    let addr = server.local_addr();
    let rt = ringrpc_engine_e2e::runtime();
    let per_connection = rt.block_on(async {
        let first = open_batch(addr).await;
        let after_first = settled_live_bytes().await;
        let second = open_batch(addr).await;
        let after_second = settled_live_bytes().await;
        drop((first, second));
        (after_second - after_first) / BATCH as i64
    });
    server.shutdown_and_wait();
    (backend, per_connection)
}

#[test]
fn an_idle_connection_holds_a_few_kib() {
    for backend in [Backend::Uring, Backend::Epoll] {
        let (backend, per_connection) = per_idle_connection(backend);
        eprintln!("{backend:?}: {per_connection} bytes of heap per idle connection");
        assert!(
            per_connection > 0,
            "{backend:?}: the counter saw no connection state ({per_connection})"
        );
        assert!(
            per_connection <= BUDGET,
            "{backend:?}: {per_connection} bytes per idle connection (budget {BUDGET})"
        );
    }
}
