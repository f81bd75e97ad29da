//! Tuning profiles reach a running server: from code, and from the
//! `RINGRPC_PROFILE` environment variable an operator sets. One test, because
//! the environment is shared by every thread of the test process.

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use prost::Message;
use ringrpc_engine::{Backend, EngineConfig, Profile, Server, PROFILE_ENV};
use ringrpc_engine_e2e::client::Payload;
use ringrpc_engine_e2e::server::test_service_server::TestServiceServer;
use ringrpc_engine_e2e::{h2_call, runtime, Tester};

/// Waits up to 5 s for `condition`.
fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn serve(config: EngineConfig) -> std::io::Result<ringrpc_engine::ServerHandle> {
    Server::builder()
        .config(config)
        .add_service(|| TestServiceServer::new(Tester))
        .serve("127.0.0.1:0".parse().unwrap())
}

/// grpc-status of a unary call carrying `size` payload bytes.
fn unary_status(addr: std::net::SocketAddr, size: usize) -> String {
    let message = Payload {
        body: vec![7; size].into(),
    }
    .encode_to_vec();
    runtime().block_on(async {
        let response = h2_call(addr, "/ringrpc.test.TestService/Unary", &[], &message).await;
        response.grpc_status().unwrap_or("none").to_owned()
    })
}

#[test]
fn profiles_from_code_and_from_the_environment_reach_the_server() {
    std::env::remove_var("RINGRPC_BACKEND");
    std::env::remove_var(PROFILE_ENV);
    let dir = std::env::temp_dir().join(format!("ringrpc-profiles-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let small = dir.join("small.toml");
    std::fs::write(
        &small,
        "[engine]\nbackend = \"epoll\"\nworkers = 1\n[http2]\nmax_message_size = 1000\n",
    )
    .unwrap();

    // From code: the built-in latency profile picks the epoll backend.
    let server = Server::builder()
        .config(EngineConfig {
            backend: Backend::Uring,
            workers: 1,
            ..EngineConfig::default()
        })
        .profile(Profile::Latency)
        .add_service(|| TestServiceServer::new(Tester))
        .serve("127.0.0.1:0".parse().unwrap())
        .unwrap();
    assert_eq!(server.backend(), Backend::Epoll);
    assert_eq!(unary_status(server.local_addr(), 2000), "0");
    server.shutdown_and_wait();

    // From the environment, by path: it wins over what the code configured.
    std::env::set_var(PROFILE_ENV, &small);
    let server = serve(EngineConfig {
        backend: Backend::Uring,
        workers: 2,
        ..EngineConfig::default()
    })
    .unwrap();
    assert_eq!(server.backend(), Backend::Epoll);
    assert_eq!(server.stats().workers.len(), 1);
    assert_eq!(unary_status(server.local_addr(), 500), "0");
    // RESOURCE_EXHAUSTED: the profile's receive limit is in force.
    assert_eq!(unary_status(server.local_addr(), 2000), "8");
    server.shutdown_and_wait();

    // RINGRPC_BACKEND is more specific than a profile and beats it.
    std::env::set_var("RINGRPC_BACKEND", "uring");
    let server = serve(EngineConfig::default()).unwrap();
    assert_eq!(server.stats().workers.len(), 1);
    // The kernel may refuse io_uring, in which case the engine falls back.
    let _ = server.backend();
    std::env::remove_var("RINGRPC_BACKEND");
    server.shutdown_and_wait();

    // By name.
    std::env::set_var(PROFILE_ENV, "many-connections");
    let server = serve(EngineConfig {
        workers: 1,
        ..EngineConfig::default()
    })
    .unwrap();
    assert_eq!(unary_status(server.local_addr(), 2000), "0");
    server.shutdown_and_wait();

    // Lifecycle keys reach the workers too: with a cap of one connection, a
    // second is accepted and closed at once while the first stays served.
    let capped = dir.join("capped.toml");
    std::fs::write(
        &capped,
        "[engine]\nworkers = 1\n[lifecycle]\nmax_connections_per_worker = 1\n",
    )
    .unwrap();
    std::env::set_var(PROFILE_ENV, &capped);
    let server = serve(EngineConfig::default()).unwrap();
    let first = TcpStream::connect(server.local_addr()).unwrap();
    eventually("the first connection is accepted", || {
        server.stats().total.active_connections == 1
    });
    let mut second = TcpStream::connect(server.local_addr()).unwrap();
    second
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    match second.read(&mut [0; 64]) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("a connection beyond the cap was not closed: {other:?}"),
    }
    eventually("the refusal is counted", || {
        server.stats().total.connections_refused == 1
    });
    assert_eq!(server.stats().total.active_connections, 1);
    drop(first);
    server.shutdown_and_wait();

    // A broken profile stops the server from starting, naming the problem.
    let broken = dir.join("broken.toml");
    std::fs::write(&broken, "[buffers]\nread_bufer_size = 1\n").unwrap();
    std::env::set_var(PROFILE_ENV, &broken);
    let error = serve(EngineConfig::default()).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    assert!(
        error.to_string().contains("buffers.read_bufer_size"),
        "{error}"
    );
    std::env::set_var(PROFILE_ENV, dir.join("missing.toml"));
    assert!(serve(EngineConfig::default()).is_err());

    std::env::remove_var(PROFILE_ENV);
    let _ = std::fs::remove_dir_all(&dir);
}
