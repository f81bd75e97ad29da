//! Backpressure measured, not assumed: a slow reader and a handler that does not
//! read must not grow server memory beyond the windows and high-water marks.
//!
//! Server and client share this process, so RSS covers both; the client's own
//! buffering is bounded by its HTTP/2 windows (a few MiB), which the limits
//! below allow for. Each scenario is compared with what it would cost without
//! backpressure (hundreds of MiB).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringrpc_engine_e2e::client::{Payload, StreamRequest};
use ringrpc_engine_e2e::{client, rss_bytes, runtime, start, BACKENDS};
use tonic::metadata::MetadataValue;

const MIB: usize = 1024 * 1024;

/// RSS is per process: the scenarios must not run at the same time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn slow_reader_of_a_one_gib_stream_keeps_server_memory_flat() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for backend in BACKENDS {
        let server = start(backend, 1);
        runtime().block_on(async {
            let mut c = client(server.local_addr()).await;
            // 16,384 × 64 KiB = 1 GiB offered by the handler.
            let mut stream = c
                .server_stream(StreamRequest {
                    count: 16_384,
                    size: 64 * 1024,
                })
                .await
                .unwrap()
                .into_inner();
            // Warm up: allocator pools and buffers reach their working size.
            for _ in 0..64 {
                stream.message().await.unwrap().unwrap();
            }
            let baseline = rss_bytes();
            let mut peak = baseline;
            let mut received = 0usize;
            let until = Instant::now() + Duration::from_millis(1500);
            while Instant::now() < until {
                let message = stream.message().await.unwrap().unwrap();
                received += message.body.len();
                // A slow reader: about 20 MiB/s.
                tokio::time::sleep(Duration::from_millis(3)).await;
                peak = peak.max(rss_bytes());
            }
            let growth = peak.saturating_sub(baseline);
            eprintln!(
                "{backend:?}: read {} MiB slowly, RSS grew {} KiB",
                received / MIB,
                growth / 1024
            );
            assert!(
                received < 256 * MIB,
                "{backend:?}: the reader was not slow ({received} bytes)"
            );
            assert!(
                growth < 8 * MIB,
                "{backend:?}: RSS grew {} MiB while streaming to a slow reader",
                growth / MIB
            );
        });
        server.shutdown_and_wait();
    }
}

#[test]
fn client_sending_to_a_handler_that_does_not_read_stalls_on_flow_control() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for backend in BACKENDS {
        let server = start(backend, 1);
        runtime().block_on(async {
            let mut c = client(server.local_addr()).await;
            let produced = Arc::new(AtomicUsize::new(0));
            let counter = produced.clone();
            let body = Bytes::from(vec![1u8; 64 * 1024]);
            // An endless request stream that counts what the transport pulled.
            let requests = Endless {
                body,
                produced: counter,
            };
            let mut request = tonic::Request::new(requests);
            request
                .metadata_mut()
                .insert("x-dont-read", MetadataValue::from_static("1"));
            let baseline = rss_bytes();
            let call = tokio::spawn(async move { c.client_stream(request).await });
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let pulled = produced.load(Ordering::Relaxed) * 64 * 1024;
            let growth = rss_bytes().saturating_sub(baseline);
            call.abort();
            eprintln!(
                "{backend:?}: client pushed {} KiB, RSS grew {} KiB",
                pulled / 1024,
                growth / 1024
            );
            // The server's stream window is 1 MiB and its connection window 4 MiB;
            // the client buffers a little more on its side. Unthrottled, 1.5 s on
            // loopback would move gigabytes.
            assert!(
                pulled < 4 * MIB,
                "{backend:?}: client pushed {} MiB into a handler that never reads",
                pulled / MIB
            );
            assert!(
                growth < 8 * MIB,
                "{backend:?}: RSS grew {} MiB",
                growth / MIB
            );
        });
        server.shutdown_and_wait();
    }
}

struct Endless {
    body: Bytes,
    produced: Arc<AtomicUsize>,
}

impl futures_core::Stream for Endless {
    type Item = Payload;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Payload>> {
        self.produced.fetch_add(1, Ordering::Relaxed);
        std::task::Poll::Ready(Some(Payload {
            body: self.body.clone(),
        }))
    }
}
