//! The engine's counters (`ServerHandle::stats`), on both backends, driven by
//! the `h2` client so each connection's life is under the test's control.

use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::client::SendRequest;
use ringrpc_engine::{Counters, ServerHandle, Stats};
use ringrpc_engine_e2e::{frame, runtime, start, BACKENDS};
use ringrpc_service_api::Code;

/// A client, and the task driving its connection (aborting it drops the socket).
async fn connect(server: &ServerHandle) -> (SendRequest<Bytes>, tokio::task::JoinHandle<()>) {
    let tcp = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    (client, driver)
}

fn request(path: &str, headers: &[(&str, &str)]) -> http::Request<()> {
    let mut request = http::Request::post(format!("http://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(()).unwrap()
}

/// One unary call with a small message; its grpc-status.
async fn unary(client: &SendRequest<Bytes>, path: &str, headers: &[(&str, &str)]) -> String {
    let mut client = client.clone().ready().await.unwrap();
    let (response, mut send) = client.send_request(request(path, headers), false).unwrap();
    send.send_data(frame(false, b"\x0a\x05hello").into(), true)
        .unwrap();
    let (head, mut body) = response.await.unwrap().into_parts();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        body.flow_control().release_capacity(chunk.len()).unwrap();
    }
    let trailers = body.trailers().await.unwrap();
    let headers = trailers.as_ref().unwrap_or(&head.headers);
    headers["grpc-status"].to_str().unwrap().to_owned()
}

/// Polls the stats until `done` holds for the total (counters of connections
/// that just closed may take a moment to settle on the server).
fn stats_until(server: &ServerHandle, done: impl Fn(&Counters) -> bool) -> Stats {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = server.stats();
        if done(&stats.total) {
            return stats;
        }
        assert!(Instant::now() < deadline, "stats never settled: {stats:#?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

const UNARY: &str = "/ringrpc.test.TestService/Unary";

#[test]
fn counts_calls_by_code_bytes_and_live_connections_and_streams() {
    for backend in BACKENDS {
        let server = start(backend, 2);
        let before = server.stats();
        assert_eq!(before.workers.len(), 2);
        assert_eq!(before.total, Counters::default(), "{backend:?}");
        runtime().block_on(async {
            let (client, _driver) = connect(&server).await;
            for _ in 0..10 {
                assert_eq!(unary(&client, UNARY, &[]).await, "0");
            }
            for _ in 0..3 {
                assert_eq!(unary(&client, UNARY, &[("x-status", "5")]).await, "5");
            }

            // A call in flight: one live stream on the one live connection.
            let mut ready = client.clone().ready().await.unwrap();
            let (response, mut send) = ready
                .send_request(request(UNARY, &[("x-wait-cancel", "1")]), false)
                .unwrap();
            send.send_data(frame(false, b"").into(), true).unwrap();
            let stats = stats_until(&server, |c| c.active_streams == 1);
            assert_eq!(stats.total.active_connections, 1, "{backend:?}");
            assert_eq!(stats.total.rpcs_started, 14, "{backend:?}");
            assert_eq!(stats.total.finished_total(), 13, "{backend:?}");

            // The client gives up on it: CANCELLED, and no stream left.
            send.send_reset(h2::Reason::CANCEL);
            drop(response);
            stats_until(&server, |c| c.finished(Code::Cancelled) == 1);
            drop((client, ready));
        });

        let stats = stats_until(&server, |c| c.active_connections == 0);
        let total = &stats.total;
        assert_eq!(total.active_streams, 0, "{backend:?}");
        assert_eq!(total.connections_accepted, 1, "{backend:?}");
        assert_eq!(total.rpcs_started, 14, "{backend:?}");
        assert_eq!(total.finished(Code::Ok), 10, "{backend:?}");
        assert_eq!(total.finished(Code::NotFound), 3, "{backend:?}");
        assert_eq!(total.finished(Code::Cancelled), 1, "{backend:?}");
        assert_eq!(total.finished_total(), 14, "{backend:?}");
        // At least the requests' HEADERS and DATA frames and the responses'.
        assert!(total.bytes_read > 14 * 20, "{backend:?}: {total:?}");
        assert!(total.bytes_written > 14 * 20, "{backend:?}: {total:?}");
        // The one connection lived on one worker, which did all the counting.
        assert!(
            stats.workers.iter().any(|w| w == total),
            "{backend:?}: {stats:#?}"
        );
        server.shutdown_and_wait();
    }
}

#[test]
fn calls_cut_short_by_a_closed_connection_are_unavailable() {
    let server = start(ringrpc_engine::Backend::Uring, 1);
    runtime().block_on(async {
        let (client, driver) = connect(&server).await;
        let mut ready = client.clone().ready().await.unwrap();
        let (response, mut send) = ready
            .send_request(request(UNARY, &[("x-wait-cancel", "1")]), false)
            .unwrap();
        send.send_data(frame(false, b"").into(), true).unwrap();
        stats_until(&server, |c| c.active_streams == 1);
        // Gone without a word: the TCP connection just closes.
        driver.abort();
        let _ = driver.await;
        drop((client, ready, response, send));
    });
    let stats = stats_until(&server, |c| c.active_connections == 0);
    assert_eq!(stats.total.finished(Code::Unavailable), 1, "{stats:#?}");
    assert_eq!(stats.total.active_streams, 0);
    server.shutdown_and_wait();
}

/// Requests answered before any handler runs (here UNIMPLEMENTED for an
/// unknown method) count as finished with their code.
#[test]
fn refused_calls_count_as_finished() {
    let server = start(ringrpc_engine::Backend::Epoll, 1);
    runtime().block_on(async {
        let (client, _driver) = connect(&server).await;
        assert_eq!(unary(&client, UNARY, &[]).await, "0");
        let status = unary(&client, "/ringrpc.test.TestService/Nope", &[]).await;
        assert_eq!(status, "12");
        let status = unary(&client, "/no.Such/Service", &[]).await;
        assert_eq!(status, "12");
    });
    let stats = stats_until(&server, |c| c.active_connections == 0);
    assert_eq!(stats.total.rpcs_started, 3);
    assert_eq!(stats.total.finished(Code::Ok), 1);
    assert_eq!(stats.total.finished(Code::Unimplemented), 2);
    assert_eq!(stats.total.active_streams, 0);
    server.shutdown_and_wait();
}
