//! The chat example: broadcast across worker cores, and the slow-reader policy.

use std::time::Duration;

use ringrpc_engine::{EngineConfig, Server};
use ringrpc_examples::chat::{Hub, CLIENT_QUEUE};
use ringrpc_examples::client::chat::chat_client::ChatClient;
use ringrpc_examples::client::chat::ChatMessage;
use tokio::sync::mpsc;

struct Outgoing(mpsc::UnboundedReceiver<ChatMessage>);

impl futures_core::Stream for Outgoing {
    type Item = ChatMessage;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<ChatMessage>> {
        self.0.poll_recv(cx)
    }
}

fn message(from: &str, text: impl Into<String>) -> ChatMessage {
    ChatMessage {
        from: from.into(),
        text: text.into(),
    }
}

fn start() -> ringrpc_engine::ServerHandle {
    let hub = Hub::new();
    let config = EngineConfig {
        workers: 2,
        shutdown_grace: Duration::from_secs(1),
        ..EngineConfig::default()
    };
    Server::builder()
        .config(config)
        .add_service(hub.service_factory())
        .serve("127.0.0.1:0".parse().unwrap())
        .unwrap()
}

#[test]
fn every_message_reaches_every_client_across_workers() {
    let server = start();
    let addr = server.local_addr();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut members = Vec::new();
        for i in 0..6 {
            let name = format!("c{i}");
            let (tx, rx) = mpsc::unbounded_channel();
            let mut client = ChatClient::connect(format!("http://{addr}")).await.unwrap();
            tx.send(message(&name, "hello")).unwrap();
            let mut incoming = client.join(Outgoing(rx)).await.unwrap().into_inner();
            // Our own hello coming back proves we are registered in the room.
            loop {
                let m = incoming.message().await.unwrap().unwrap();
                if m.from == name && m.text == "hello" {
                    break;
                }
            }
            members.push((name, tx, incoming));
        }
        for (name, tx, _) in &members {
            tx.send(message(name, format!("message from {name}")))
                .unwrap();
        }
        for (name, _, incoming) in &mut members {
            let mut seen = Vec::new();
            while seen.len() < 6 {
                let m = tokio::time::timeout(Duration::from_secs(5), incoming.message())
                    .await
                    .unwrap()
                    .unwrap()
                    .unwrap();
                if m.text.starts_with("message from") {
                    seen.push(m.from);
                }
            }
            seen.sort();
            assert_eq!(
                seen,
                ["c0", "c1", "c2", "c3", "c4", "c5"],
                "{name} saw {seen:?}"
            );
        }
    });
    server.shutdown_and_wait();
}

#[test]
fn a_client_that_stops_reading_is_disconnected_not_buffered() {
    let server = start();
    let addr = server.local_addr();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // The slow client joins, proves it is registered, then stops reading.
        let (slow_tx, slow_rx) = mpsc::unbounded_channel();
        let mut slow = ChatClient::connect(format!("http://{addr}")).await.unwrap();
        slow_tx.send(message("slow", "hello")).unwrap();
        let mut slow_in = slow.join(Outgoing(slow_rx)).await.unwrap().into_inner();
        assert_eq!(slow_in.message().await.unwrap().unwrap().text, "hello");

        // A busy client sends 20,000 messages in batches of 100, reading its own
        // echoes between batches so that it never falls behind itself.
        let (tx, rx) = mpsc::unbounded_channel();
        let mut fast = ChatClient::connect(format!("http://{addr}")).await.unwrap();
        let mut fast_in = fast.join(Outgoing(rx)).await.unwrap().into_inner();
        let text = "x".repeat(1024);
        let total = 20_000;
        for _ in 0..total / 100 {
            for _ in 0..100 {
                tx.send(message("fast", text.clone())).unwrap();
            }
            let mut got = 0;
            while got < 100 {
                let next = tokio::time::timeout(Duration::from_secs(10), fast_in.message())
                    .await
                    .unwrap();
                match next {
                    Ok(Some(m)) if m.from == "fast" => got += 1,
                    Ok(Some(_)) => {}
                    other => panic!("the busy client lost its stream: {other:?}"),
                }
            }
        }

        // The slow client finds a bounded backlog, then the disconnection.
        let mut backlog = 0;
        let status = loop {
            match tokio::time::timeout(Duration::from_secs(10), slow_in.message())
                .await
                .unwrap()
            {
                Ok(Some(_)) => backlog += 1,
                Ok(None) => panic!("stream ended without an error after {backlog} messages"),
                Err(status) => break status,
            }
        };
        assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
        assert!(
            backlog < total,
            "the slow client was sent everything ({backlog})"
        );
        assert!(backlog >= CLIENT_QUEUE.min(total) / 2, "backlog {backlog}");
    });
    server.shutdown_and_wait();
}
