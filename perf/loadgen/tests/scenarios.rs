//! Every load scenario, briefly, against the ringrpc bench server and the tonic
//! peer, both in-process on 127.0.0.1: work gets done, nothing fails, and the
//! replies are what was asked for.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use prost::Message as _;
use ringrpc_engine::{EngineConfig, ServerHandle};
use ringrpc_loadgen::client::{connect, ready, Target};
use ringrpc_loadgen::grpc::{self, check_head, check_status, RequestHead};
use ringrpc_loadgen::proto::ringrpc::bench::Chunk;
use ringrpc_loadgen::scenario::{
    run, run_observed, Event, FlowLoad, Hold, IdleLoad, Scenario, Timing, UnaryLoad,
};
use ringrpc_loadgen::server;

const RUN: Timing = Timing {
    warmup: Duration::from_millis(50),
    duration: Duration::from_millis(300),
};

fn ringrpc_server() -> ServerHandle {
    server::builder()
        .config(EngineConfig {
            workers: 1,
            pin_workers: false,
            ..EngineConfig::default()
        })
        .serve("127.0.0.1:0".parse().unwrap())
        .expect("start the ringrpc bench server")
}

/// The tonic peer on its own thread and runtime, stopped on drop.
struct TonicPeer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TonicPeer {
    fn start() -> TonicPeer {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let incoming =
                    tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap())
                        .unwrap()
                        .with_nodelay(Some(true));
                addr_tx.send(incoming.local_addr().unwrap()).unwrap();
                ringrpc_perf_tonic_peer::serve(incoming, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            });
        });
        TonicPeer {
            addr: addr_rx.recv().expect("tonic peer address"),
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for TonicPeer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn assert_clean(report: &ringrpc_loadgen::Report) {
    assert!(report.count > 0, "no work done: {report:?}");
    assert_eq!(report.errors, 0, "errors: {report:?}");
}

fn unary_closed(target: &Target) {
    let mut events = Vec::new();
    let report = run_observed(
        target,
        1,
        &Scenario::Unary(UnaryLoad {
            conns: 2,
            streams: 4,
            rate: None,
            timing: RUN,
        }),
        &mut |event| events.push(format!("{event:?}")),
    );
    assert_clean(&report);
    assert_eq!(events, ["MeasureStart", "MeasureEnd"]);
    let latency = report.latency.expect("latency percentiles");
    assert!(latency.p50_us > 0.0 && latency.p50_us <= latency.max_us);
    assert_eq!(report.bytes, None);
}

fn unary_open(target: &Target) {
    // 1000 req/s for 0.3 s: 300 requests intended in the window, and never
    // more; fewer complete in it only when the server falls behind.
    let report = run(
        target,
        2,
        &Scenario::Unary(UnaryLoad {
            conns: 2,
            streams: 8,
            rate: Some(1000.0),
            timing: Timing {
                warmup: Duration::ZERO,
                duration: Duration::from_millis(300),
            },
        }),
    );
    assert_clean(&report);
    assert!(
        (60..=302).contains(&report.count),
        "the open loop must keep to its rate: {report:?}"
    );
}

fn stream(target: &Target) {
    let report = run(
        target,
        1,
        &Scenario::Stream(FlowLoad {
            conns: 2,
            message_size: 1000,
            timing: RUN,
        }),
    );
    assert_clean(&report);
    assert_eq!(report.bytes, Some(report.count * 1000));
    assert!(report.mb_per_s().unwrap() > 0.0);
}

fn pingpong(target: &Target) {
    let report = run(
        target,
        1,
        &Scenario::PingPong(FlowLoad {
            conns: 2,
            message_size: 100,
            timing: RUN,
        }),
    );
    assert_clean(&report);
    assert!(report.latency.is_some());
}

fn up(target: &Target) {
    // Each call ends by checking the server's byte and message counts against
    // what was sent; a mismatch would be an error. 100-byte messages go many
    // to a DATA frame, 10 000-byte ones one each.
    for message_size in [100, 10_000] {
        let report = run(
            target,
            2,
            &Scenario::Up(FlowLoad {
                conns: 2,
                message_size,
                timing: RUN,
            }),
        );
        assert_clean(&report);
        assert_eq!(report.bytes, Some(report.count * u64::from(message_size)));
    }
}

fn idle(target: &Target) {
    let mut ready = None;
    let report = run_observed(
        target,
        2,
        &Scenario::Idle(IdleLoad {
            conns: 20,
            hold: Hold::For(Duration::from_millis(200)),
        }),
        &mut |event| {
            if let Event::Ready(report) = event {
                ready = Some(report.count);
            }
        },
    );
    assert_eq!(ready, Some(20));
    assert_eq!(report.count, 20);
    assert_eq!(report.errors, 0, "{report:?}");
}

/// StreamDown(count = 3, message_size = 777), decoded with prost rather than
/// with the load generator's own scanner.
fn stream_down_sizes(target: &Target) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let mut connection = connect(target).await.unwrap();
        ready(&mut connection.send).await.unwrap();
        let head = RequestHead::new(&target.authority, grpc::STREAM_DOWN).unwrap();
        let (response, mut body) = connection.send.send_request(head.request(), false).unwrap();
        body.send_data(grpc::framed(&grpc::stream_down_request(777, 3)), true)
            .unwrap();
        let (head, mut body) = response.await.unwrap().into_parts();
        assert!(!check_head(&head).unwrap());
        let mut received = BytesMut::new();
        while let Some(data) = body.data().await {
            let data = data.unwrap();
            body.flow_control().release_capacity(data.len()).unwrap();
            received.extend_from_slice(&data);
        }
        check_status(&body.trailers().await.unwrap().unwrap()).unwrap();
        let mut sizes = Vec::new();
        while received.has_remaining() {
            assert_eq!(received.get_u8(), 0, "uncompressed");
            let len = received.get_u32() as usize;
            let chunk = Chunk::decode(received.split_to(len).freeze()).unwrap();
            sizes.push(chunk.payload.len());
        }
        assert_eq!(sizes, [777, 777, 777]);
    });
}

fn every_scenario(target: &Target) {
    stream_down_sizes(target);
    unary_closed(target);
    unary_open(target);
    stream(target);
    pingpong(target);
    up(target);
    idle(target);
}

#[test]
fn ringrpc_server_serves_every_scenario() {
    let server = ringrpc_server();
    every_scenario(&Target::at(server.local_addr()));
    server.shutdown_and_wait();
}

#[test]
fn tonic_peer_serves_every_scenario() {
    let peer = TonicPeer::start();
    every_scenario(&Target::at(peer.addr));
}

#[test]
fn failures_are_counted_not_fatal() {
    let server = ringrpc_server();
    let target = Target::at(server.local_addr());
    // Above the largest payload: both servers answer INVALID_ARGUMENT.
    let started = std::time::Instant::now();
    let report = run(
        &target,
        1,
        &Scenario::Stream(FlowLoad {
            conns: 2,
            message_size: server::MAX_PAYLOAD + 1,
            // The run ends as soon as both calls have failed.
            timing: Timing {
                warmup: Duration::ZERO,
                duration: Duration::from_secs(10),
            },
        }),
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(report.count, 0);
    assert_eq!(report.errors, 2, "{report:?}");
    assert!(!report.succeeded());
    let error = report.first_error.unwrap();
    assert!(error.starts_with("grpc-status 3"), "{error}");
    server.shutdown_and_wait();

    // Nobody listening any more: every connection fails.
    let report = run(
        &target,
        1,
        &Scenario::Unary(UnaryLoad {
            conns: 3,
            streams: 1,
            rate: None,
            timing: Timing {
                warmup: Duration::ZERO,
                duration: Duration::from_millis(50),
            },
        }),
    );
    assert_eq!((report.count, report.errors), (0, 3), "{report:?}");
}
