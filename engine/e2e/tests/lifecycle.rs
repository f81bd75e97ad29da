//! Deadlines, cancellation, graceful shutdown, scale and large messages.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringrpc_engine_e2e::client::Payload;
use ringrpc_engine_e2e::{client, h2_call, observed_for, runtime, start, token, BACKENDS};
use tonic::metadata::MetadataValue;

fn request(
    body: Bytes,
    token: &str,
    extra: &[(&'static str, &'static str)],
) -> tonic::Request<Payload> {
    let mut request = tonic::Request::new(Payload { body });
    request
        .metadata_mut()
        .insert("x-token", token.parse().unwrap());
    for (k, v) in extra {
        request
            .metadata_mut()
            .insert(*k, MetadataValue::from_static(v));
    }
    request
}

/// Polls `check` for up to two seconds.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(2);
    while !check() {
        assert!(Instant::now() < until, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn deadline_expiry_cancels_the_handler_and_answers_deadline_exceeded() {
    for backend in BACKENDS {
        let server = start(backend, 1);
        runtime().block_on(async {
            let t = token("deadline");
            let started = Instant::now();
            let headers = [
                ("grpc-timeout", "200m"),
                ("x-sleep-ms", "10000"),
                ("x-token", t.as_str()),
            ];
            let response = h2_call(
                server.local_addr(),
                "/ringrpc.test.TestService/Unary",
                &headers,
                b"",
            )
            .await;
            assert_eq!(
                response.grpc_status(),
                Some("4"),
                "{backend:?}: {response:?}"
            );
            let elapsed = started.elapsed();
            assert!(
                elapsed >= Duration::from_millis(190) && elapsed < Duration::from_secs(5),
                "answered in {elapsed:?}"
            );
            eventually("handler dropped", || observed_for(&t).dropped).await;
            assert!(!observed_for(&t).completed);
        });
        server.shutdown_and_wait();
    }
}

#[test]
fn client_cancellation_is_observed_by_the_handler() {
    for backend in BACKENDS {
        let server = start(backend, 1);
        runtime().block_on(async {
            let mut c = client(server.local_addr()).await;
            let t = token("cancel");
            let call = c.unary(request(Bytes::new(), &t, &[("x-wait-cancel", "1")]));
            // Give the call time to reach the handler, then drop it: tonic resets
            // the stream with CANCEL.
            let _ = tokio::time::timeout(Duration::from_millis(300), call).await;
            eventually("handler saw cancellation", || observed_for(&t).saw_cancel).await;
            eventually("handler future dropped", || observed_for(&t).dropped).await;
            // The connection is fine afterwards.
            assert_eq!(
                &c.unary(Payload {
                    body: Bytes::from_static(b"ok")
                })
                .await
                .unwrap()
                .into_inner()
                .body[..],
                b"ok"
            );
        });
        server.shutdown_and_wait();
    }
}

#[test]
fn four_mib_messages_both_ways() {
    for backend in BACKENDS {
        let server = start(backend, 1);
        runtime().block_on(async {
            let mut c = client(server.local_addr()).await;
            // 4 MiB on the wire: the protobuf body plus its 5-byte field header.
            let body: Bytes = (0..4 * 1024 * 1024 - 5)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<u8>>()
                .into();
            let reply = c
                .unary(Payload { body: body.clone() })
                .await
                .unwrap()
                .into_inner();
            assert!(reply.body == body, "{backend:?}: 4 MiB echo differs");
            // One byte more than the limit is refused before it is buffered.
            let too_big: Bytes = vec![0u8; 4 * 1024 * 1024].into();
            let status = c.unary(Payload { body: too_big }).await.unwrap_err();
            assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{backend:?}");
        });
        server.shutdown_and_wait();
    }
}

#[test]
fn thousand_concurrent_calls_on_one_connection() {
    let server = start(ringrpc_engine::Backend::Uring, 1);
    runtime().block_on(async {
        let c = client(server.local_addr()).await;
        let mut calls = Vec::new();
        for i in 0..1000u32 {
            let mut c = c.clone();
            calls.push(tokio::spawn(async move {
                let mut req = tonic::Request::new(Payload {
                    body: Bytes::from(i.to_be_bytes().to_vec()),
                });
                // Some calls wait a little so many are in flight at once.
                if i % 2 == 0 {
                    req.metadata_mut()
                        .insert("x-sleep-ms", MetadataValue::from_static("20"));
                }
                c.unary(req).await.map(|r| r.into_inner().body)
            }));
        }
        for (i, call) in calls.into_iter().enumerate() {
            let body = call.await.unwrap().unwrap();
            assert_eq!(&body[..], &(i as u32).to_be_bytes());
        }
    });
    server.shutdown_and_wait();
}

#[test]
fn sixty_four_connections_spread_over_two_workers() {
    let server = start(ringrpc_engine::Backend::Uring, 2);
    runtime().block_on(async {
        let mut workers = HashSet::new();
        for _ in 0..64 {
            let mut c = client(server.local_addr()).await;
            let response = c
                .unary(Payload {
                    body: Bytes::from_static(b"w"),
                })
                .await
                .unwrap();
            workers.insert(
                response
                    .metadata()
                    .get("x-worker")
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        assert_eq!(workers.len(), 2, "connections landed on {workers:?}");
    });
    server.shutdown_and_wait();
}

#[test]
fn graceful_shutdown_with_calls_in_flight_loses_none() {
    for backend in BACKENDS {
        let server = start(backend, 2);
        let addr = server.local_addr();
        runtime().block_on(async {
            let mut calls = Vec::new();
            for i in 0..20u8 {
                let mut c = client(addr).await;
                calls.push(tokio::spawn(async move {
                    let mut req = tonic::Request::new(Payload {
                        body: Bytes::from(vec![i]),
                    });
                    req.metadata_mut()
                        .insert("x-sleep-ms", MetadataValue::from_static("500"));
                    c.unary(req).await.map(|r| r.into_inner().body)
                }));
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
            let started = Instant::now();
            let shutdown = std::thread::spawn(move || server.shutdown_and_wait());
            for (i, call) in calls.into_iter().enumerate() {
                let body = call
                    .await
                    .unwrap()
                    .expect("in-flight call completes during drain");
                assert_eq!(&body[..], &[i as u8]);
            }
            tokio::task::spawn_blocking(move || shutdown.join().unwrap())
                .await
                .unwrap();
            assert!(
                started.elapsed() < Duration::from_secs(4),
                "drain took {:?}",
                started.elapsed()
            );
            // After shutdown nobody listens any more.
            assert!(
                tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                    .unwrap()
                    .connect()
                    .await
                    .is_err()
            );
        });
    }
}
