//! A hand-written service served by the engine, called by tonic's client.

use std::time::Duration;

use ringrpc_engine::{EngineConfig, Server};
use std::pin::Pin;

use ringrpc_service_api::server::{unary, CallSlot, Service};
use ringrpc_service_api::{Call, Request, Response, Status};

#[derive(Clone, PartialEq, prost::Message)]
struct HelloRequest {
    #[prost(string, tag = "1")]
    name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HelloReply {
    #[prost(string, tag = "1")]
    message: String,
}

struct Greeter;

impl Service for Greeter {
    fn name(&self) -> &'static str {
        "helloworld.Greeter"
    }

    fn call(&self, method: &[u8], call: Call, slot: Pin<&mut CallSlot>) -> bool {
        if method != b"SayHello" {
            return false;
        }
        slot.put(unary(call, |req: Request<HelloRequest>| async move {
            if req.get_ref().name == "fail" {
                return Err(Status::not_found("no such name"));
            }
            Ok(Response::new(HelloReply {
                message: format!("Hello {}!", req.into_inner().name),
            }))
        }));
        true
    }
}

async fn say_hello(
    client: &mut tonic::client::Grpc<tonic::transport::Channel>,
    name: &str,
) -> Result<HelloReply, tonic::Status> {
    client.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static("/helloworld.Greeter/SayHello");
    let codec = tonic_prost::ProstCodec::<HelloRequest, HelloReply>::default();
    let request = tonic::Request::new(HelloRequest { name: name.into() });
    client
        .unary(request, path, codec)
        .await
        .map(|r| r.into_inner())
}

#[test]
fn tonic_unary_against_engine() {
    let config = EngineConfig {
        workers: 2,
        shutdown_grace: Duration::from_secs(1),
        ..EngineConfig::default()
    };
    let server = Server::builder()
        .config(config)
        .add_service(|| Greeter)
        .serve("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let addr = server.local_addr();
    eprintln!("backend {:?} on {addr}", server.backend());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = tonic::client::Grpc::new(channel);
        let reply = say_hello(&mut client, "world").await.unwrap();
        assert_eq!(reply.message, "Hello world!");
        let err = say_hello(&mut client, "fail").await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
        assert_eq!(err.message(), "no such name");
        for i in 0..100 {
            let reply = say_hello(&mut client, &format!("n{i}")).await.unwrap();
            assert_eq!(reply.message, format!("Hello n{i}!"));
        }
    });
    server.shutdown_and_wait();
}
