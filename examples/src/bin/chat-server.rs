//! chat.Chat on ringrpc: a room shared by every connection on every core.

use ringrpc_engine::Server;
use ringrpc_examples::chat::Hub;
use ringrpc_examples::{serve_until_signal, Flags};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::io::Result<()> {
    let flags = Flags::parse();
    let hub = Hub::new();
    serve_until_signal(Server::builder().add_service(hub.service_factory()), &flags)
}
