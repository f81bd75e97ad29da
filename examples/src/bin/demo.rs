//! Starts a route_guide server on ringrpc (one worker per core, a free port) and
//! drives a tonic client through all four RPC kinds against it.

use ringrpc_engine::Server;
use ringrpc_examples::route_guide::RouteGuideService;
use ringrpc_examples::server::routeguide::route_guide_server::RouteGuideServer;
use ringrpc_examples::Flags;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut flags = Flags::parse();
    flags.port = 0;
    let server = Server::builder()
        .config(flags.engine_config())
        .add_service(|| RouteGuideServer::new(RouteGuideService::new()))
        .serve(flags.addr())?;
    println!(
        "ringrpc route_guide listening on {} ({:?} backend)",
        server.local_addr(),
        server.backend()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(ringrpc_examples::route_guide_client::exercise(
        server.local_addr(),
    ))?;
    server.shutdown_and_wait();
    println!("done: all four RPC kinds answered");
    Ok(())
}
