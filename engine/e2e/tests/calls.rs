//! The four RPC kinds, metadata, statuses and routing, with tonic's client, on
//! both I/O backends.

use bytes::Bytes;
use ringrpc_engine_e2e::client::{Payload, StreamRequest};
use ringrpc_engine_e2e::{client, runtime, start, BACKENDS};
use tonic::metadata::{BinaryMetadataValue, MetadataValue};

fn payload(body: &'static [u8]) -> Payload {
    Payload {
        body: Bytes::from_static(body),
    }
}

fn stream_of(items: Vec<Payload>) -> impl futures_core::Stream<Item = Payload> + Send + 'static {
    struct Iter(std::vec::IntoIter<Payload>);
    impl futures_core::Stream for Iter {
        type Item = Payload;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Payload>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    Iter(items.into_iter())
}

#[test]
fn all_four_kinds() {
    for backend in BACKENDS {
        let server = start(backend, 2);
        runtime().block_on(async {
            let mut c = client(server.local_addr()).await;
            let reply = c.unary(payload(b"ping")).await.unwrap().into_inner();
            assert_eq!(&reply.body[..], b"ping", "{backend:?}");

            let mut stream = c
                .server_stream(StreamRequest {
                    count: 100,
                    size: 1000,
                })
                .await
                .unwrap()
                .into_inner();
            let mut got = 0;
            while let Some(p) = stream.message().await.unwrap() {
                assert_eq!(p.body.len(), 1000);
                got += 1;
            }
            assert_eq!(got, 100, "{backend:?}");

            let summary = c
                .client_stream(stream_of((0..50).map(|_| payload(b"0123456789")).collect()))
                .await
                .unwrap()
                .into_inner();
            assert_eq!((summary.count, summary.bytes), (50, 500), "{backend:?}");

            let notes: Vec<Payload> = (0..20u8)
                .map(|i| Payload {
                    body: Bytes::from(vec![i; 3]),
                })
                .collect();
            let mut echoes = c.bidi(stream_of(notes)).await.unwrap().into_inner();
            let mut i = 0u8;
            while let Some(p) = echoes.message().await.unwrap() {
                assert_eq!(&p.body[..], &[i; 3]);
                i += 1;
            }
            assert_eq!(i, 20, "{backend:?}");
        });
        server.shutdown_and_wait();
    }
}

#[test]
fn metadata_in_and_out_ascii_and_binary_and_trailers() {
    for backend in BACKENDS {
        let server = start(backend, 1);
        runtime().block_on(async {
            let mut c = client(server.local_addr()).await;
            let mut request = tonic::Request::new(payload(b"m"));
            request
                .metadata_mut()
                .insert("x-echo-user", MetadataValue::from_static("alice"));
            request.metadata_mut().insert_bin(
                "x-echo-id-bin",
                BinaryMetadataValue::from_bytes(&[0, 1, 2, 254, 255]),
            );
            request
                .metadata_mut()
                .insert("x-trailer-done", MetadataValue::from_static("yes"));
            let response = c.unary(request).await.unwrap();
            assert_eq!(response.metadata().get("x-echo-user").unwrap(), "alice");
            let id = response
                .metadata()
                .get_bin("x-echo-id-bin")
                .unwrap()
                .to_bytes()
                .unwrap();
            assert_eq!(&id[..], &[0, 1, 2, 254, 255]);
            assert!(response
                .metadata()
                .get("x-worker")
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("ringrpc-worker-"));

            // Trailers only reach tonic's unary API through a streaming response.
            let mut request = tonic::Request::new(StreamRequest { count: 1, size: 1 });
            request
                .metadata_mut()
                .insert("x-trailer-done", MetadataValue::from_static("yes"));
            let mut stream = c.server_stream(request).await.unwrap().into_inner();
            while stream.message().await.unwrap().is_some() {}
            let trailers = stream.trailers().await.unwrap().unwrap();
            assert_eq!(
                trailers.get("x-trailer-done").unwrap(),
                "yes",
                "{backend:?}"
            );
        });
        server.shutdown_and_wait();
    }
}

#[test]
fn every_status_code_round_trips_with_message_and_details() {
    let server = start(ringrpc_engine::Backend::Uring, 1);
    runtime().block_on(async {
        let mut c = client(server.local_addr()).await;
        for code in 1..=16 {
            let mut request = tonic::Request::new(payload(b""));
            request
                .metadata_mut()
                .insert("x-status", code.to_string().parse().unwrap());
            request.metadata_mut().insert(
                "x-message",
                MetadataValue::try_from(format!("failure {code}")).unwrap(),
            );
            request.metadata_mut().insert_bin(
                "x-details-bin",
                BinaryMetadataValue::from_bytes(&[8, code as u8]),
            );
            request
                .metadata_mut()
                .insert("x-trailer-status", MetadataValue::from_static("extra"));
            let status = c.unary(request).await.unwrap_err();
            assert_eq!(status.code() as i32, code);
            assert_eq!(status.message(), format!("failure {code}"));
            assert_eq!(status.details(), &[8, code as u8]);
            assert_eq!(status.metadata().get("x-trailer-status").unwrap(), "extra");
        }
    });
    server.shutdown_and_wait();
}

/// The interop suite's special status message: whitespace, BMP and non-BMP
/// characters must survive percent-encoding on the wire.
#[test]
fn special_status_message_survives_percent_encoding() {
    let special = "\t\ntest with whitespace\r\nand Unicode BMP \u{263a} and non-BMP \u{1f608}\t\n";
    let server = start(ringrpc_engine::Backend::Uring, 1);
    runtime().block_on(async {
        let mut c = client(server.local_addr()).await;
        for message in [special, "100% wrong, %41 stays"] {
            let mut request = tonic::Request::new(payload(b""));
            request
                .metadata_mut()
                .insert("x-status", MetadataValue::from_static("2"));
            request.metadata_mut().insert_bin(
                "x-message-bin",
                BinaryMetadataValue::from_bytes(message.as_bytes()),
            );
            let status = c.unary(request).await.unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unknown);
            assert_eq!(status.message(), message);
        }
    });
    server.shutdown_and_wait();
}

#[test]
fn unknown_service_and_method_are_unimplemented() {
    let server = start(ringrpc_engine::Backend::Uring, 1);
    runtime().block_on(async {
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{}", server.local_addr()))
                .unwrap()
                .connect()
                .await
                .unwrap();
        let mut grpc = tonic::client::Grpc::new(channel);
        for path in ["/ringrpc.test.TestService/Nope", "/no.Such/Service"] {
            grpc.ready().await.unwrap();
            let codec = tonic_prost::ProstCodec::<Payload, Payload>::default();
            let status = grpc
                .unary(
                    tonic::Request::new(payload(b"")),
                    http::uri::PathAndQuery::from_static(path),
                    codec,
                )
                .await
                .unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unimplemented, "{path}");
        }
    });
    server.shutdown_and_wait();
}

#[test]
fn handler_panic_is_unknown_and_the_worker_keeps_serving() {
    for backend in BACKENDS {
        let server = start(backend, 1);
        runtime().block_on(async {
            let mut c = client(server.local_addr()).await;
            let mut request = tonic::Request::new(payload(b""));
            request
                .metadata_mut()
                .insert("x-panic", MetadataValue::from_static("1"));
            let status = c.unary(request).await.unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unknown, "{backend:?}");
            // Same connection, same single worker: still serving.
            assert_eq!(
                &c.unary(payload(b"after")).await.unwrap().into_inner().body[..],
                b"after"
            );
            // And a panic after a pending await (inside a spawned task).
            let mut request = tonic::Request::new(payload(b""));
            request
                .metadata_mut()
                .insert("x-panic", MetadataValue::from_static("1"));
            request
                .metadata_mut()
                .insert("x-sleep-ms", MetadataValue::from_static("10"));
            assert_eq!(
                c.unary(request).await.unwrap_err().code(),
                tonic::Code::Unknown
            );
            assert_eq!(
                &c.unary(payload(b"again")).await.unwrap().into_inner().body[..],
                b"again"
            );
        });
        server.shutdown_and_wait();
    }
}
