//! Heap allocations on the worker thread per unary RPC, counted by a global
//! allocator that only counts on threads that opted in (the worker does, from its
//! service factory). The client runs on other threads and is not counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use ringrpc_engine::{Backend, EngineConfig, Server};
use std::pin::Pin;

use ringrpc_service_api::server::{unary, CallSlot, Service};
use ringrpc_service_api::{Call, Request, Response, Status};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNT_HERE: Cell<bool> = const { Cell::new(false) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNT_HERE.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // Safety: forwarding the caller's layout to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // Safety: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNT_HERE.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
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

/// An echo whose own code allocates nothing: the request body is a slice of the
/// read buffer and goes back as is.
struct Echo;

impl Service for Echo {
    fn name(&self) -> &'static str {
        "alloc.Echo"
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

fn per_call(backend: Backend) -> f64 {
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
    let addr = server.local_addr();
    let rt = ringrpc_engine_e2e::runtime();
    let message = b"\x0a\x14twenty bytes of body";
    let per_call = rt.block_on(async {
        // One connection, calls one after another, as a latency-bound client does.
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (client, connection) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(connection);
        let call = |client: h2::client::SendRequest<Bytes>| async move {
            let mut client = client.ready().await.unwrap();
            let request = http::Request::post(format!("http://{addr}/alloc.Echo/Echo"))
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
            client
        };
        let mut client = client;
        for _ in 0..300 {
            client = call(client).await;
        }
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        let calls = 2000;
        for _ in 0..calls {
            client = call(client).await;
        }
        (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / calls as f64
    });
    server.shutdown_and_wait();
    per_call
}

/// The engine's own work per unary call allocates nothing: call state, inbox and
/// the slot the handler's future runs in are pooled per connection, the request
/// head and messages are slices of the read buffer, responses are carved from a
/// shared encode buffer, and the codec allocates nothing. What remains is
/// amortised (a new encode or read buffer now and then), well under one per call.
#[test]
fn unary_calls_allocate_nothing_per_call() {
    for backend in [Backend::Uring, Backend::Epoll] {
        let per_call = per_call(backend);
        eprintln!("{backend:?}: {per_call:.3} allocations per unary call on the worker");
        assert!(
            per_call <= 1.05,
            "{backend:?}: {per_call:.3} allocations per call"
        );
    }
}
