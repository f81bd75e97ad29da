//! Heap allocations on the worker thread per unary RPC, counted by a global
//! allocator that only counts on threads that opted in (the worker does, from its
//! service factory). The client runs on other threads and is not counted.

use ringrpc_engine::Backend;
use ringrpc_engine_e2e::counting::{self, echo_call, echo_server, Counting};

#[global_allocator]
static GLOBAL: Counting = Counting;

fn per_call(backend: Backend) -> f64 {
    let server = echo_server(backend);
    let addr = server.local_addr();
    let rt = ringrpc_engine_e2e::runtime();
    let per_call = rt.block_on(async {
        // One connection, calls one after another, as a latency-bound client does.
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut client, connection) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(connection);
        for _ in 0..300 {
            client = echo_call(client, addr).await;
        }
        let before = counting::allocations();
        let calls = 2000;
        for _ in 0..calls {
            client = echo_call(client, addr).await;
        }
        (counting::allocations() - before) as f64 / calls as f64
    });
    server.shutdown_and_wait();
    per_call
}

/// The engine's own work per unary call allocates nothing: call state and inbox
/// are pooled per connection, the slot the handler's future runs in per worker,
/// the request head and messages are slices of the read buffer, responses are
/// carved from the worker's encode buffer, and the codec allocates nothing. What
/// remains is amortised (a new encode or read buffer now and then): one
/// allocation per call, or even one per four, fails this.
#[test]
fn unary_calls_allocate_nothing_per_call() {
    for backend in [Backend::Uring, Backend::Epoll] {
        let per_call = per_call(backend);
        eprintln!("{backend:?}: {per_call:.3} allocations per unary call on the worker");
        assert!(
            per_call <= 0.25,
            "{backend:?}: {per_call:.3} allocations per call"
        );
    }
}
