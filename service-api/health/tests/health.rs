//! tonic's client (an independent gRPC implementation) against the health
//! service on a ringrpc server. tonic's generic client carries the crate's own
//! prost messages, so the paths are spelled out here as a client would.

use std::time::Duration;

use ringrpc_engine::{Server, ServerHandle};
use ringrpc_health::{HealthReporter, ServingStatus};
use tonic::transport::Channel;
use tonic::Code;

use ringrpc_health::pb::{
    HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse,
};
use ringrpc_health::ServingStatus as Wire;
use tonic::codegen::http::uri::PathAndQuery;
use tonic_prost::ProstCodec;

/// A health client on tonic's generic gRPC client.
struct HealthClient(tonic::client::Grpc<Channel>);

impl HealthClient {
    async fn ready(&mut self) -> Result<(), tonic::Status> {
        self.0
            .ready()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))
    }

    async fn check(
        &mut self,
        request: HealthCheckRequest,
    ) -> Result<tonic::Response<HealthCheckResponse>, tonic::Status> {
        self.ready().await?;
        let path = PathAndQuery::from_static("/grpc.health.v1.Health/Check");
        self.0
            .unary(tonic::Request::new(request), path, ProstCodec::default())
            .await
    }

    async fn list(
        &mut self,
        request: HealthListRequest,
    ) -> Result<tonic::Response<HealthListResponse>, tonic::Status> {
        self.ready().await?;
        let path = PathAndQuery::from_static("/grpc.health.v1.Health/List");
        self.0
            .unary(tonic::Request::new(request), path, ProstCodec::default())
            .await
    }

    async fn watch(
        &mut self,
        request: HealthCheckRequest,
    ) -> Result<tonic::Response<tonic::Streaming<HealthCheckResponse>>, tonic::Status> {
        self.ready().await?;
        let path = PathAndQuery::from_static("/grpc.health.v1.Health/Watch");
        self.0
            .server_streaming(tonic::Request::new(request), path, ProstCodec::default())
            .await
    }
}

fn start(reporter: &HealthReporter) -> ServerHandle {
    Server::builder()
        .workers(2)
        .add_service(ringrpc_health::service(reporter))
        .on_shutdown(reporter.shutdown_hook())
        .serve("127.0.0.1:0".parse().unwrap())
        .expect("server starts")
}

async fn connect(server: &ServerHandle) -> HealthClient {
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", server.local_addr()))
            .unwrap()
            .connect()
            .await
            .unwrap();
    HealthClient(tonic::client::Grpc::new(channel))
}

fn request(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.to_owned(),
    }
}

async fn next_status(stream: &mut tonic::Streaming<HealthCheckResponse>) -> Option<Wire> {
    let message = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("a status within 5 s")
        .expect("the stream does not fail")?;
    Some(message.status())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_answers_server_known_and_unknown_services() {
    let reporter = HealthReporter::new();
    reporter.set_serving("demo.Up");
    reporter.set_not_serving("demo.Down");
    let server = start(&reporter);
    let mut client = connect(&server).await;

    let whole = client.check(request("")).await.unwrap().into_inner();
    assert_eq!(whole.status(), Wire::Serving);
    let up = client.check(request("demo.Up")).await.unwrap().into_inner();
    assert_eq!(up.status(), Wire::Serving);
    let down = client
        .check(request("demo.Down"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(down.status(), Wire::NotServing);

    let unknown = client.check(request("demo.Missing")).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");

    reporter.clear("demo.Up");
    let cleared = client.check(request("demo.Up")).await.unwrap_err();
    assert_eq!(cleared.code(), Code::NotFound, "{cleared:?}");
    server.shutdown_and_wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_answers_every_status() {
    let reporter = HealthReporter::new();
    reporter.set_serving("demo.Up");
    reporter.set_not_serving("demo.Down");
    let server = start(&reporter);
    let mut client = connect(&server).await;

    let list = client
        .list(HealthListRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut statuses: Vec<(String, Wire)> = list
        .statuses
        .into_iter()
        .map(|(name, response)| (name, response.status()))
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [
            (String::new(), Wire::Serving),
            ("demo.Down".to_owned(), Wire::NotServing),
            ("demo.Up".to_owned(), Wire::Serving),
        ]
    );
    server.shutdown_and_wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_changes_made_on_other_threads() {
    let reporter = HealthReporter::new();
    let server = start(&reporter);
    let mut client = connect(&server).await;

    let mut stream = client
        .watch(request("demo.Later"))
        .await
        .unwrap()
        .into_inner();
    // Unknown is a status here, not an error.
    assert_eq!(next_status(&mut stream).await, Some(Wire::ServiceUnknown));

    let remote = reporter.clone();
    std::thread::spawn(move || remote.set_serving("demo.Later"))
        .join()
        .unwrap();
    assert_eq!(next_status(&mut stream).await, Some(Wire::Serving));

    // Setting the same status again is not a change.
    reporter.set_serving("demo.Later");
    let remote = reporter.clone();
    std::thread::spawn(move || remote.set_not_serving("demo.Later"))
        .join()
        .unwrap();
    assert_eq!(next_status(&mut stream).await, Some(Wire::NotServing));

    reporter.clear("demo.Later");
    assert_eq!(next_status(&mut stream).await, Some(Wire::ServiceUnknown));
    drop(stream);
    server.shutdown_and_wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_reports_not_serving_to_open_watches() {
    let reporter = HealthReporter::new();
    reporter.set_serving("demo.Up");
    let server = start(&reporter);
    let mut client = connect(&server).await;

    let mut whole = client.watch(request("")).await.unwrap().into_inner();
    let mut service = client.watch(request("demo.Up")).await.unwrap().into_inner();
    assert_eq!(next_status(&mut whole).await, Some(Wire::Serving));
    assert_eq!(next_status(&mut service).await, Some(Wire::Serving));

    server.shutdown();
    // The hook runs before the workers stop: the open calls still get the news.
    assert_eq!(next_status(&mut whole).await, Some(Wire::NotServing));
    assert_eq!(next_status(&mut service).await, Some(Wire::NotServing));

    // A server going down stays down.
    reporter.set_serving("");
    assert_eq!(reporter.status(""), Some(ServingStatus::NotServing));
    drop((whole, service));
    server.wait();
}

#[test]
fn dropping_the_handle_runs_the_hook() {
    let reporter = HealthReporter::new();
    let server = start(&reporter);
    assert_eq!(reporter.status(""), Some(ServingStatus::Serving));
    drop(server);
    assert_eq!(reporter.status(""), Some(ServingStatus::NotServing));
}
