//! helloworld.Greeter behind a bearer-token check.
//!
//! An interceptor runs before every call: without `authorization: Bearer
//! <token>` (the `--token` flag, default `secret`) the call ends with
//! UNAUTHENTICATED and the handler never runs; with it, the interceptor attaches
//! the authenticated [`Principal`] to the request, and the handler greets it.
//!
//! ```text
//! cargo run --release --bin auth-server -- --token s3cret
//! grpcurl -plaintext -H 'authorization: Bearer s3cret' -d '{"name":"x"}' \
//!     127.0.0.1:50051 helloworld.Greeter/SayHello
//! ```

use std::sync::Arc;

use ringrpc_engine::Server;
use ringrpc_examples::server::helloworld::greeter_server::{Greeter, GreeterServer};
use ringrpc_examples::server::helloworld::{HelloReply, HelloRequest};
use ringrpc_examples::{serve_until_signal, Flags};
use ringrpc_service_api::{InterceptRequest, Request, Response, Status};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Who a call was authenticated as; set by the interceptor, read by handlers.
#[derive(Debug, Clone)]
struct Principal(String);

/// Accepts calls that present `token`. A real server would look the token up
/// (possibly asynchronously, see `ringrpc_service_api::intercept::async_interceptor`)
/// to find who it belongs to.
fn check_bearer(token: Arc<str>) -> impl Fn(InterceptRequest) -> Result<InterceptRequest, Status> {
    move |mut request: InterceptRequest| {
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.strip_prefix("Bearer "));
        match presented {
            Some(presented) if constant_time_eq(presented.as_bytes(), token.as_bytes()) => {
                request
                    .extensions_mut()
                    .insert(Principal("token-holder".to_owned()));
                Ok(request)
            }
            Some(_) => Err(Status::unauthenticated("invalid bearer token")),
            None => Err(Status::unauthenticated("missing bearer token")),
        }
    }
}

/// Compares without stopping at the first difference, so the time taken does
/// not tell an attacker how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Default)]
struct MyGreeter;

impl Greeter for MyGreeter {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        // The interceptor rejects calls it did not authenticate, so this is
        // always set; failing closed keeps it safe if the wiring changes.
        let Some(Principal(who)) = request.extensions().get::<Principal>().cloned() else {
            return Err(Status::unauthenticated("not authenticated"));
        };
        let name = request.into_inner().name;
        Ok(Response::new(HelloReply {
            message: format!("Hello {name} (authenticated as {who})!"),
        }))
    }
}

fn main() -> std::io::Result<()> {
    let flags = Flags::parse();
    let token: Arc<str> = match flags.rest.iter().position(|arg| arg == "--token") {
        Some(i) => match flags.rest.get(i + 1) {
            Some(token) => token.as_str().into(),
            None => {
                eprintln!("--token needs a value");
                std::process::exit(2)
            }
        },
        None => "secret".into(),
    };
    serve_until_signal(
        Server::builder()
            .interceptor(move || check_bearer(token.clone()))
            .add_service(|| GreeterServer::new(MyGreeter)),
        &flags,
    )
}
