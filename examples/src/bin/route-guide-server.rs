//! routeguide.RouteGuide on ringrpc: all four RPC kinds.

use ringrpc_engine::Server;
use ringrpc_examples::route_guide::RouteGuideService;
use ringrpc_examples::server::routeguide::route_guide_server::RouteGuideServer;
use ringrpc_examples::{serve_until_signal, Flags};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::io::Result<()> {
    let flags = Flags::parse();
    serve_until_signal(
        Server::builder().add_service(|| RouteGuideServer::new(RouteGuideService::new())),
        &flags,
    )
}
