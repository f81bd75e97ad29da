//! A ringrpc server with a small echo service, health checking and reflection
//! (v1 and v1alpha), for interoperability tests with other gRPC stacks.
//!
//! `reflection-demo-server [--port N]` (default 0: a free port) prints
//! `listening on ADDR` once serving, and shuts down gracefully on SIGTERM or
//! SIGINT.

use std::io::Write;
use std::net::SocketAddr;

use ringrpc_engine::Server;
use ringrpc_health::HealthReporter;
use ringrpc_service_api::{Request, Response, Status};

#[allow(missing_docs, clippy::all)]
mod ringrpc {
    pub mod demo {
        include!(concat!(env!("OUT_DIR"), "/demo/ringrpc.demo.rs"));
        pub mod common {
            include!(concat!(env!("OUT_DIR"), "/demo/ringrpc.demo.common.rs"));
        }
    }
}

use ringrpc::demo::echo_server::{Echo, EchoServer};
use ringrpc::demo::{EchoReply, EchoRequest};

struct Echoer;

impl Echo for Echoer {
    async fn say(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        let request = request.into_inner();
        let shout = request.options.is_some_and(|o| o.shout);
        let text = if shout {
            request.text.to_uppercase()
        } else {
            request.text
        };
        Ok(Response::new(EchoReply { text }))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut port = 0u16;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => port = args.next().ok_or("--port needs a value")?.parse()?,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }

    let reporter = HealthReporter::new();
    reporter.set_serving(ringrpc::demo::echo_server::SERVICE_NAME);
    let reflection = ringrpc_reflection::Builder::new()
        .register(ringrpc::demo::FILE_DESCRIPTOR_SET)?
        .register(ringrpc_health::FILE_DESCRIPTOR_SET)?
        .build();

    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let server = Server::builder()
        .workers(2)
        .add_service(|| EchoServer::new(Echoer))
        .add_service(ringrpc_health::service(&reporter))
        .add_service(reflection.v1())
        .add_service(reflection.v1alpha())
        .on_shutdown(reporter.shutdown_hook())
        .serve(addr)?;
    println!("listening on {}", server.local_addr());
    std::io::stdout().flush()?;

    wait_for_signal();
    server.shutdown_and_wait();
    Ok(())
}

/// Blocks until SIGTERM or SIGINT.
fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("signal runtime");
    runtime.block_on(async {
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    });
}
