//! helloworld.Greeter on ringrpc.

use ringrpc_engine::Server;
use ringrpc_examples::server::helloworld::greeter_server::{Greeter, GreeterServer};
use ringrpc_examples::server::helloworld::{HelloReply, HelloRequest};
use ringrpc_examples::{serve_until_signal, Flags};
use ringrpc_service_api::{Request, Response, Status};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Default)]
struct MyGreeter;

impl Greeter for MyGreeter {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let name = request.into_inner().name;
        Ok(Response::new(HelloReply {
            message: format!("Hello {name}!"),
        }))
    }
}

fn main() -> std::io::Result<()> {
    let flags = Flags::parse();
    serve_until_signal(
        Server::builder().add_service(|| GreeterServer::new(MyGreeter)),
        &flags,
    )
}
