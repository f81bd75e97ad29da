//! Serving on a Unix domain socket, on both backends, with the `h2` client over
//! a `UnixStream`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use prost::Message;
use ringrpc_engine::{Backend, EngineConfig, Server, ServerHandle};
use ringrpc_engine_e2e::client::{Payload, StreamRequest};
use ringrpc_engine_e2e::server::test_service_server::TestServiceServer;
use ringrpc_engine_e2e::{frame, runtime, unframe, Tester, BACKENDS};

/// A socket path of its own for each test, removed first in case an earlier
/// run left it.
fn socket_path(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("ringrpc-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

fn serve_unix(backend: Backend, workers: usize, path: &Path) -> std::io::Result<ServerHandle> {
    Server::builder()
        .config(EngineConfig {
            backend,
            workers,
            shutdown_grace: Duration::from_secs(5),
            ..EngineConfig::default()
        })
        .add_service(|| TestServiceServer::new(Tester))
        .serve_unix(path)
}

/// One call on its own connection: (grpc-status, response messages).
async fn call(path: &Path, method: &str, message: &[u8]) -> (String, Vec<Vec<u8>>) {
    let stream = tokio::net::UnixStream::connect(path).await.unwrap();
    let (mut client, connection) = h2::client::handshake(stream).await.unwrap();
    tokio::spawn(connection);
    let request = http::Request::post(format!(
        "http://localhost/ringrpc.test.TestService/{method}"
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(())
    .unwrap();
    let (response, mut send) = client.send_request(request, false).unwrap();
    send.send_data(frame(false, message).into(), true).unwrap();
    let (head, mut body) = response.await.unwrap().into_parts();
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        body.flow_control().release_capacity(chunk.len()).unwrap();
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.unwrap();
    let status = trailers
        .as_ref()
        .unwrap_or(&head.headers)
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let messages = unframe(&data).into_iter().map(|(_, m)| m).collect();
    (status, messages)
}

#[test]
fn calls_over_a_unix_socket_and_shutdown_removes_the_file() {
    for backend in BACKENDS {
        let path = socket_path(&format!("calls-{backend:?}"));
        let server = serve_unix(backend, 2, &path).unwrap();
        assert_eq!(server.unix_path(), Some(path.as_path()));
        runtime().block_on(async {
            let ping = Payload {
                body: Bytes::from_static(b"over a unix socket"),
            };
            // Several connections at once, spread over both workers' accepts.
            let calls: Vec<_> = (0..8)
                .map(|_| {
                    let path = path.clone();
                    let ping = ping.encode_to_vec();
                    tokio::spawn(async move { call(&path, "Unary", &ping).await })
                })
                .collect();
            for handle in calls {
                let (status, messages) = handle.await.unwrap();
                assert_eq!(status, "0", "{backend:?}");
                assert_eq!(messages.len(), 1);
                assert_eq!(Payload::decode(&messages[0][..]).unwrap(), ping);
            }

            let stream = StreamRequest {
                count: 50,
                size: 4000,
            };
            let (status, messages) = call(&path, "ServerStream", &stream.encode_to_vec()).await;
            assert_eq!(status, "0", "{backend:?}");
            assert_eq!(messages.len(), 50);
            assert!(messages
                .iter()
                .all(|m| Payload::decode(&m[..]).unwrap().body.len() == 4000));
        });
        server.shutdown_and_wait();
        assert!(
            !path.exists(),
            "{backend:?}: shutdown leaves {}",
            path.display()
        );
    }
}

#[test]
fn a_stale_socket_file_is_replaced() {
    let path = socket_path("stale");
    // A listener that went away without unlinking its file, as after a crash.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let server = serve_unix(Backend::Epoll, 1, &path).unwrap();
    runtime().block_on(async {
        let (status, _) = call(&path, "Unary", &[]).await;
        assert_eq!(status, "0");
    });
    server.shutdown_and_wait();
    assert!(!path.exists());
}

#[test]
fn a_live_socket_or_another_file_is_left_alone() {
    let path = socket_path("taken");
    let first = serve_unix(Backend::Epoll, 1, &path).unwrap();
    let error = serve_unix(Backend::Epoll, 1, &path).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse);
    // The first server still serves on its file.
    runtime().block_on(async {
        let (status, _) = call(&path, "Unary", &[]).await;
        assert_eq!(status, "0");
    });
    first.shutdown_and_wait();

    let path = socket_path("regular-file");
    std::fs::write(&path, b"not a socket").unwrap();
    let error = serve_unix(Backend::Epoll, 1, &path).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read(&path).unwrap(), b"not a socket");
    std::fs::remove_file(&path).unwrap();
}
