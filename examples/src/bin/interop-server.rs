//! grpc.testing.TestService on ringrpc, for gRPC's interoperability test clients.

use ringrpc_engine::Server;
use ringrpc_examples::interop::{engine_config, InteropService};
use ringrpc_examples::{serve_with_config_until_signal, Flags};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::io::Result<()> {
    let flags = Flags::parse();
    let config = engine_config(flags.engine_config());
    serve_with_config_until_signal(
        Server::builder().add_service(InteropService::server),
        &flags,
        config,
    )
}
