//! Interceptors: server-wide, per service and per method, sync and async, with
//! tonic's client (and raw h2 for paths tonic's client has no method for), on
//! both I/O backends.

use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use ringrpc_engine::{EngineConfig, Server, ServerBuilder, ServerHandle, ServiceOptions};
use ringrpc_engine_e2e::client::{Payload, StreamRequest};
use ringrpc_engine_e2e::server::test_service_server::{TestService, TestServiceServer};
use ringrpc_engine_e2e::server::{self as api, Summary};
use ringrpc_engine_e2e::{client, h2_call, runtime, BACKENDS};
use ringrpc_service_api::intercept::{async_interceptor, for_methods};
use ringrpc_service_api::server::{CallSlot, Service};
use ringrpc_service_api::{
    Call, Code, InterceptRequest, Request, Response, ResponseSink, Status, Streaming,
};
use tonic::metadata::MetadataValue;

/// Who the call was authenticated as, attached by an interceptor.
#[derive(Clone)]
struct Principal(String);

/// The interceptors a call passed, in order.
#[derive(Default)]
struct Trail(Vec<&'static str>);

/// Echoes the request and reports, in response headers, what interceptors left
/// for it: `x-principal`, `x-trail` and the `x-added` metadata.
struct Probe;

impl TestService for Probe {
    async fn unary(
        &self,
        request: Request<api::Payload>,
    ) -> Result<Response<api::Payload>, Status> {
        let principal = request.extensions().get::<Principal>().map(|p| p.0.clone());
        let trail = request.extensions().get::<Trail>().map(|t| t.0.join(","));
        let added = request.metadata().get("x-added").map(str::to_owned);
        let mut response = Response::new(request.into_inner());
        let headers = response.metadata_mut();
        headers
            .insert("x-principal", principal.unwrap_or_else(|| "none".into()))
            .unwrap();
        headers
            .insert("x-trail", trail.unwrap_or_else(|| "none".into()))
            .unwrap();
        headers
            .insert("x-added", added.unwrap_or_else(|| "none".into()))
            .unwrap();
        Ok(response)
    }

    async fn server_stream(
        &self,
        _: Request<api::StreamRequest>,
        mut responses: ResponseSink<api::Payload>,
    ) -> Result<(), Status> {
        responses
            .send(api::Payload {
                body: Bytes::from_static(b"streamed"),
            })
            .await
    }

    async fn client_stream(
        &self,
        _: Request<Streaming<api::Payload>>,
    ) -> Result<Response<Summary>, Status> {
        Err(Status::unimplemented("not used"))
    }

    async fn bidi(
        &self,
        _: Request<Streaming<api::Payload>>,
        _: ResponseSink<api::Payload>,
    ) -> Result<(), Status> {
        Err(Status::unimplemented("not used"))
    }
}

/// The same service under another name, to have a second service.
struct Renamed<S>(S);

const OTHER: &str = "ringrpc.test.Other";

impl<S: Service> Service for Renamed<S> {
    fn name(&self) -> &'static str {
        OTHER
    }

    fn call(&self, method: &[u8], call: Call, slot: Pin<&mut CallSlot>) -> bool {
        self.0.call(method, call, slot)
    }
}

fn builder(backend: ringrpc_engine::Backend) -> ServerBuilder {
    Server::builder().config(EngineConfig {
        backend,
        workers: 1,
        shutdown_grace: Duration::from_secs(5),
        ..EngineConfig::default()
    })
}

fn serve(builder: ServerBuilder) -> ServerHandle {
    builder
        .serve("127.0.0.1:0".parse().unwrap())
        .expect("server starts")
}

/// Accepts `authorization: Bearer secret` and attaches the principal.
fn bearer(mut request: InterceptRequest) -> Result<InterceptRequest, Status> {
    match request.metadata().get("authorization") {
        Some("Bearer secret") => {
            request.extensions_mut().insert(Principal("alice".into()));
            request
                .metadata_mut()
                .insert("x-added", "by-interceptor")
                .unwrap();
            Ok(request)
        }
        Some(_) => {
            let mut status = Status::with_details(
                Code::Unauthenticated,
                "bad token",
                Bytes::from_static(b"\x08\x10"),
            );
            status.metadata_mut().insert("x-why", "token").unwrap();
            Err(status)
        }
        None => Err(Status::unauthenticated("missing token")),
    }
}

fn mark(name: &'static str) -> impl Fn(InterceptRequest) -> Result<InterceptRequest, Status> {
    move |mut request: InterceptRequest| {
        match request.extensions_mut().get_mut::<Trail>() {
            Some(trail) => trail.0.push(name),
            None => {
                request.extensions_mut().insert(Trail(vec![name]));
            }
        }
        Ok(request)
    }
}

fn payload(body: &'static [u8]) -> Payload {
    Payload {
        body: Bytes::from_static(body),
    }
}

fn with_auth(value: &'static str) -> tonic::Request<Payload> {
    let mut request = tonic::Request::new(payload(b"hi"));
    request
        .metadata_mut()
        .insert("authorization", MetadataValue::from_static(value));
    request
}

fn header<'a>(response: &'a tonic::Response<Payload>, name: &str) -> &'a str {
    response.metadata().get(name).unwrap().to_str().unwrap()
}

#[test]
fn a_server_wide_interceptor_rejects_or_attaches_values_for_the_handler() {
    for backend in BACKENDS {
        let server = serve(
            builder(backend)
                .interceptor(|| bearer)
                .add_service(|| TestServiceServer::new(Probe)),
        );
        runtime().block_on(async {
            let mut c = client(server.local_addr()).await;

            let status = c.unary(payload(b"hi")).await.unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{backend:?}");
            assert_eq!(status.message(), "missing token");

            // A rejection keeps its details and metadata.
            let status = c.unary(with_auth("Bearer wrong")).await.unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{backend:?}");
            assert_eq!(status.message(), "bad token");
            assert_eq!(status.details(), b"\x08\x10");
            assert_eq!(status.metadata().get("x-why").unwrap(), "token");

            let response = c.unary(with_auth("Bearer secret")).await.unwrap();
            assert_eq!(header(&response, "x-principal"), "alice", "{backend:?}");
            assert_eq!(header(&response, "x-added"), "by-interceptor");
            assert_eq!(&response.into_inner().body[..], b"hi");

            // Streaming calls pass the same gate.
            let status = c
                .server_stream(StreamRequest { count: 1, size: 1 })
                .await
                .unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{backend:?}");
        });
        server.shutdown_and_wait();
    }
}

#[test]
fn server_wide_interceptors_also_guard_unknown_services_and_methods() {
    for backend in BACKENDS {
        let server = serve(
            builder(backend)
                .interceptor(|| bearer)
                .add_service(|| TestServiceServer::new(Probe)),
        );
        runtime().block_on(async {
            let addr = server.local_addr();
            let body = payload(b"x").encode_to_vec();
            for path in ["/no.Such/Thing", "/ringrpc.test.TestService/NoSuch"] {
                let r = h2_call(addr, path, &[], &body).await;
                assert_eq!(r.grpc_status(), Some("16"), "{backend:?} {path}");
                let r = h2_call(addr, path, &[("authorization", "Bearer secret")], &body).await;
                assert_eq!(r.grpc_status(), Some("12"), "{backend:?} {path}");
            }
        });
        server.shutdown_and_wait();
    }
}

#[test]
fn async_interceptors_may_wait_before_deciding() {
    for backend in BACKENDS {
        let server = serve(
            builder(backend)
                .interceptor(|| {
                    async_interceptor(|mut request: InterceptRequest| async move {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        if request.metadata().get("authorization") != Some("Bearer secret") {
                            return Err(Status::unauthenticated("checked slowly"));
                        }
                        request
                            .extensions_mut()
                            .insert(Principal("slow-alice".into()));
                        Ok(request)
                    })
                })
                .interceptor(|| mark("after-async"))
                .add_service(|| TestServiceServer::new(Probe)),
        );
        runtime().block_on(async {
            let mut c = client(server.local_addr()).await;
            let started = Instant::now();
            let status = c.unary(payload(b"hi")).await.unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{backend:?}");
            assert_eq!(status.message(), "checked slowly");
            assert!(started.elapsed() >= Duration::from_millis(50));

            let started = Instant::now();
            let response = c.unary(with_auth("Bearer secret")).await.unwrap();
            assert!(started.elapsed() >= Duration::from_millis(50));
            assert_eq!(
                header(&response, "x-principal"),
                "slow-alice",
                "{backend:?}"
            );
            // The interceptor after the async one ran once it had decided.
            assert_eq!(header(&response, "x-trail"), "after-async");
            assert_eq!(&response.into_inner().body[..], b"hi");
        });
        server.shutdown_and_wait();
    }
}

#[test]
fn a_slow_async_interceptor_is_bounded_by_the_deadline() {
    for backend in BACKENDS {
        let server = serve(
            builder(backend)
                .interceptor(|| {
                    async_interceptor(|request: InterceptRequest| async move {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        Ok(request)
                    })
                })
                .add_service(|| TestServiceServer::new(Probe)),
        );
        runtime().block_on(async {
            let started = Instant::now();
            let body = payload(b"x").encode_to_vec();
            let r = h2_call(
                server.local_addr(),
                "/ringrpc.test.TestService/Unary",
                &[("grpc-timeout", "100m")],
                &body,
            )
            .await;
            assert_eq!(r.grpc_status(), Some("4"), "{backend:?}");
            assert!(started.elapsed() < Duration::from_secs(10));
        });
        server.shutdown_and_wait();
    }
}

#[test]
fn per_service_interceptors_only_run_for_their_service() {
    for backend in BACKENDS {
        let server = serve(
            builder(backend)
                .add_service_with(
                    || TestServiceServer::new(Probe),
                    ServiceOptions::new().interceptor(|| bearer),
                )
                .add_service(|| Renamed(TestServiceServer::new(Probe))),
        );
        runtime().block_on(async {
            let mut c = client(server.local_addr()).await;
            let status = c.unary(payload(b"hi")).await.unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{backend:?}");
            let response = c.unary(with_auth("Bearer secret")).await.unwrap();
            assert_eq!(header(&response, "x-principal"), "alice");

            let body = payload(b"x").encode_to_vec();
            let r = h2_call(server.local_addr(), &format!("/{OTHER}/Unary"), &[], &body).await;
            assert_eq!(r.grpc_status(), Some("0"), "{backend:?}");
            assert_eq!(r.head.headers.get("x-principal").unwrap(), "none");
        });
        server.shutdown_and_wait();
    }
}

#[test]
fn per_method_interceptors_only_run_for_their_methods() {
    for backend in BACKENDS {
        let server = serve(builder(backend).add_service_with(
            || TestServiceServer::new(Probe),
            ServiceOptions::new().interceptor(|| for_methods(&["ServerStream"], bearer)),
        ));
        runtime().block_on(async {
            let mut c = client(server.local_addr()).await;
            let response = c.unary(payload(b"hi")).await.unwrap();
            assert_eq!(header(&response, "x-principal"), "none", "{backend:?}");
            let status = c
                .server_stream(StreamRequest { count: 1, size: 1 })
                .await
                .unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{backend:?}");
            let mut request = tonic::Request::new(StreamRequest { count: 1, size: 1 });
            request
                .metadata_mut()
                .insert("authorization", MetadataValue::from_static("Bearer secret"));
            let mut stream = c.server_stream(request).await.unwrap().into_inner();
            assert_eq!(
                &stream.message().await.unwrap().unwrap().body[..],
                b"streamed"
            );
        });
        server.shutdown_and_wait();
    }
}

#[test]
fn server_wide_interceptors_run_before_per_service_ones_in_the_order_added() {
    for backend in BACKENDS {
        let server = serve(
            builder(backend)
                .interceptor(|| mark("server-1"))
                .add_service_with(
                    || TestServiceServer::new(Probe),
                    ServiceOptions::new()
                        .interceptor(|| mark("service-1"))
                        .interceptor(|| for_methods(&["Unary"], mark("method"))),
                )
                // Added after the service, still runs before the service's own.
                .interceptor(|| mark("server-2")),
        );
        runtime().block_on(async {
            let mut c = client(server.local_addr()).await;
            let response = c.unary(payload(b"hi")).await.unwrap();
            assert_eq!(
                header(&response, "x-trail"),
                "server-1,server-2,service-1,method",
                "{backend:?}"
            );
        });
        server.shutdown_and_wait();
    }
}

#[test]
fn without_interceptors_requests_reach_the_handler_unchanged() {
    for backend in BACKENDS {
        let server = serve(builder(backend).add_service(|| TestServiceServer::new(Probe)));
        runtime().block_on(async {
            let mut c = client(server.local_addr()).await;
            let mut request = with_auth("Bearer secret");
            request
                .metadata_mut()
                .insert("x-added", MetadataValue::from_static("by-client"));
            let response = c.unary(request).await.unwrap();
            assert_eq!(header(&response, "x-principal"), "none", "{backend:?}");
            assert_eq!(header(&response, "x-trail"), "none");
            assert_eq!(header(&response, "x-added"), "by-client");
        });
        server.shutdown_and_wait();
    }
}

#[test]
fn interceptors_are_built_once_per_worker() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let built = Arc::new(AtomicUsize::new(0));
    let counter = built.clone();
    let server = serve(
        Server::builder()
            .config(EngineConfig {
                workers: 3,
                shutdown_grace: Duration::from_secs(5),
                ..EngineConfig::default()
            })
            .interceptor(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                mark("server")
            })
            .add_service(|| TestServiceServer::new(Probe))
            .add_service(|| Renamed(TestServiceServer::new(Probe))),
    );
    assert_eq!(built.load(Ordering::SeqCst), 3);
    server.shutdown_and_wait();
}
