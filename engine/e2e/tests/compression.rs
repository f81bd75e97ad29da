//! Message compression: gzip and zstd in both directions with tonic's client, the
//! choice of the response encoding, per-message opt-out, and the error cases on
//! the raw wire (unknown encoding, flag without encoding, corrupt data, bombs).

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use prost::Message;
use ringrpc_engine::{Encoding, EngineConfig};
use ringrpc_engine_e2e::client::{Payload, StreamRequest};
use ringrpc_engine_e2e::{
    client, frame, h2_call, h2_call_framed, runtime, start, start_with, unframe,
};
use tonic::codec::CompressionEncoding;

const UNARY: &str = "/ringrpc.test.TestService/Unary";
const SERVER_STREAM: &str = "/ringrpc.test.TestService/ServerStream";

/// The process's peak resident set size (`VmHWM`), in bytes.
fn peak_rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(data), &mut out).unwrap();
    out
}

/// Compressible: repeats, but not a single byte.
fn body(len: usize) -> Bytes {
    (0..len).map(|i| b"compress me "[i % 12]).collect()
}

fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[test]
fn gzip_and_zstd_both_ways() {
    let server = start(ringrpc_engine::Backend::Epoll, 1);
    runtime().block_on(async {
        for encoding in [CompressionEncoding::Gzip, CompressionEncoding::Zstd] {
            let mut c = client(server.local_addr())
                .await
                .send_compressed(encoding)
                .accept_compressed(encoding);
            let sent = body(100_000);
            let reply = c.unary(Payload { body: sent.clone() }).await.unwrap();
            assert_eq!(
                reply.metadata().get("x-request-compressed").unwrap(),
                "true",
                "{encoding:?}"
            );
            assert_eq!(reply.into_inner().body, sent, "{encoding:?}");

            let request = StreamRequest {
                count: 10,
                size: 50_000,
            };
            let mut stream = c.server_stream(request).await.unwrap().into_inner();
            let mut got = 0;
            while let Some(p) = stream.message().await.unwrap() {
                assert_eq!(p.body.len(), 50_000);
                got += 1;
            }
            assert_eq!(got, 10, "{encoding:?}");

            let messages: Vec<Payload> = (0..5).map(|_| Payload { body: body(30_000) }).collect();
            let summary = c.client_stream(tokio_stream(messages)).await.unwrap();
            assert_eq!(
                summary.metadata().get("x-compressed-messages").unwrap(),
                "5",
                "{encoding:?}"
            );
            let summary = summary.into_inner();
            assert_eq!((summary.count, summary.bytes), (5, 150_000));
        }
    });
    server.shutdown_and_wait();
}

fn tokio_stream(items: Vec<Payload>) -> impl futures_core::Stream<Item = Payload> + Send + 'static {
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
fn responses_mirror_the_request_encoding_on_the_wire() {
    let server = start(ringrpc_engine::Backend::Epoll, 1);
    runtime().block_on(async {
        let sent = body(10_000);
        let request = Payload { body: sent.clone() }.encode_to_vec();
        let compressed = frame(true, &gzip(&request));
        let headers = [
            ("grpc-encoding", "gzip"),
            ("grpc-accept-encoding", "identity,gzip"),
        ];
        let r = h2_call_framed(server.local_addr(), UNARY, &headers, compressed.clone()).await;
        assert_eq!(r.grpc_status(), Some("0"));
        assert_eq!(header(&r.head.headers, "grpc-encoding"), Some("gzip"));
        let accept = header(&r.head.headers, "grpc-accept-encoding").unwrap();
        assert!(accept.contains("zstd"), "{accept}");
        let messages = unframe(&r.body);
        assert_eq!(messages.len(), 1);
        assert!(messages[0].0, "the response is compressed");
        assert!(
            messages[0].1.len() < 1000,
            "and small: {}",
            messages[0].1.len()
        );
        assert_eq!(gunzip(&messages[0].1), request);

        // A client that compresses but does not accept compression gets plain
        // responses.
        let headers = [("grpc-encoding", "gzip")];
        let r = h2_call_framed(server.local_addr(), UNARY, &headers, compressed).await;
        assert_eq!(r.grpc_status(), Some("0"));
        assert_eq!(header(&r.head.headers, "grpc-encoding"), None);
        assert_eq!(unframe(&r.body), vec![(false, request.clone())]);

        // Uncompressed requests get uncompressed responses by default.
        let headers = [("grpc-accept-encoding", "gzip,zstd")];
        let r = h2_call(server.local_addr(), UNARY, &headers, &request).await;
        assert_eq!(header(&r.head.headers, "grpc-encoding"), None);
        assert_eq!(unframe(&r.body), vec![(false, request)]);
    });
    server.shutdown_and_wait();
}

#[test]
fn tonic_without_accept_gets_plain_responses() {
    let server = start(ringrpc_engine::Backend::Epoll, 1);
    runtime().block_on(async {
        // tonic fails a compressed response it did not ask for, so success here
        // means the server answered uncompressed.
        let mut c = client(server.local_addr())
            .await
            .send_compressed(CompressionEncoding::Gzip);
        let sent = body(20_000);
        let reply = c.unary(Payload { body: sent.clone() }).await.unwrap();
        assert_eq!(reply.into_inner().body, sent);
    });
    server.shutdown_and_wait();
}

#[test]
fn configured_response_compression_and_per_message_opt_out() {
    let server = start_with(EngineConfig {
        workers: 1,
        response_compression: Some(Encoding::Zstd),
        shutdown_grace: Duration::from_secs(5),
        ..EngineConfig::default()
    });
    runtime().block_on(async {
        let addr = server.local_addr();
        let request = Payload { body: body(5_000) }.encode_to_vec();
        let accept = [("grpc-accept-encoding", "gzip,zstd")];
        let r = h2_call(addr, UNARY, &accept, &request).await;
        assert_eq!(header(&r.head.headers, "grpc-encoding"), Some("zstd"));
        let messages = unframe(&r.body);
        assert!(messages[0].0);
        assert_eq!(zstd::decode_all(&messages[0].1[..]).unwrap(), request);

        // The client's list decides: only gzip accepted → gzip.
        let r = h2_call(addr, UNARY, &[("grpc-accept-encoding", "gzip")], &request).await;
        assert_eq!(header(&r.head.headers, "grpc-encoding"), Some("gzip"));
        assert_eq!(gunzip(&unframe(&r.body)[0].1), request);

        // Nothing we have accepted → identity.
        let r = h2_call(addr, UNARY, &[("grpc-accept-encoding", "snappy")], &request).await;
        assert_eq!(header(&r.head.headers, "grpc-encoding"), None);
        assert_eq!(unframe(&r.body), vec![(false, request.clone())]);

        // A unary handler opting out.
        let headers = [accept[0], ("x-uncompressed", "1")];
        let r = h2_call(addr, UNARY, &headers, &request).await;
        assert_eq!(unframe(&r.body), vec![(false, request.clone())]);

        // A streaming handler opting out for every other message.
        let stream_request = StreamRequest {
            count: 4,
            size: 3000,
        }
        .encode_to_vec();
        let headers = [accept[0], ("x-alternate-compression", "1")];
        let r = h2_call(addr, SERVER_STREAM, &headers, &stream_request).await;
        assert_eq!(r.grpc_status(), Some("0"));
        let flags: Vec<bool> = unframe(&r.body).iter().map(|m| m.0).collect();
        assert_eq!(flags, [true, false, true, false]);
        for (compressed, data) in unframe(&r.body) {
            let data = if compressed {
                zstd::decode_all(&data[..]).unwrap()
            } else {
                data
            };
            assert_eq!(Payload::decode(&data[..]).unwrap().body.len(), 3000);
        }

        // tonic reads the mixed stream too.
        let mut c = client(addr)
            .await
            .accept_compressed(CompressionEncoding::Zstd);
        let mut request = tonic::Request::new(StreamRequest {
            count: 6,
            size: 1000,
        });
        request
            .metadata_mut()
            .insert("x-alternate-compression", "1".parse().unwrap());
        let mut stream = c.server_stream(request).await.unwrap().into_inner();
        let mut got = 0;
        while let Some(p) = stream.message().await.unwrap() {
            assert_eq!(p.body.len(), 1000);
            got += 1;
        }
        assert_eq!(got, 6);
    });
    server.shutdown_and_wait();
}

#[test]
fn unknown_encoding_is_unimplemented_with_our_list() {
    let server = start(ringrpc_engine::Backend::Epoll, 1);
    runtime().block_on(async {
        let headers = [("grpc-encoding", "snappy")];
        let r = h2_call(server.local_addr(), UNARY, &headers, b"").await;
        assert_eq!(r.grpc_status(), Some("12"));
        assert_eq!(
            header(&r.head.headers, "grpc-accept-encoding"),
            Some("gzip,zstd,identity")
        );
    });
    server.shutdown_and_wait();
}

#[test]
fn compressed_flag_without_encoding_is_internal() {
    let server = start(ringrpc_engine::Backend::Epoll, 1);
    runtime().block_on(async {
        let request = gzip(&Payload { body: body(100) }.encode_to_vec());
        let r = h2_call_framed(server.local_addr(), UNARY, &[], frame(true, &request)).await;
        assert_eq!(r.grpc_status(), Some("13"));
    });
    server.shutdown_and_wait();
}

#[test]
fn corrupt_compressed_data_is_internal() {
    let server = start(ringrpc_engine::Backend::Epoll, 1);
    runtime().block_on(async {
        for encoding in ["gzip", "zstd"] {
            let headers = [("grpc-encoding", encoding)];
            let junk = frame(true, b"this is not compressed data at all");
            let r = h2_call_framed(server.local_addr(), UNARY, &headers, junk).await;
            assert_eq!(r.grpc_status(), Some("13"), "{encoding}");
        }
        // In a stream, a good message then a corrupt one: the call fails.
        let good = gzip(&Payload { body: body(100) }.encode_to_vec());
        let mut stream = frame(true, &good);
        stream.extend(frame(true, b"corrupt"));
        let path = "/ringrpc.test.TestService/ClientStream";
        let r = h2_call_framed(
            server.local_addr(),
            path,
            &[("grpc-encoding", "gzip")],
            stream,
        )
        .await;
        assert_eq!(r.grpc_status(), Some("13"));
    });
    server.shutdown_and_wait();
}

#[test]
fn decompression_bomb_is_resource_exhausted() {
    let server = start(ringrpc_engine::Backend::Epoll, 1);
    // 64 MiB of zeros in ~64 KiB of gzip, 16 times the 4 MiB receive limit.
    let claimed = 64 << 20;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..claimed >> 20 {
        encoder.write_all(&zeros).unwrap();
    }
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < 1 << 20);
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    for _ in 0..claimed >> 20 {
        encoder.write_all(&zeros).unwrap();
    }
    let zstd_bomb = encoder.finish().unwrap();
    drop(zeros);
    runtime().block_on(async {
        let before = peak_rss_bytes();
        for _ in 0..4 {
            for (encoding, data) in [("gzip", &bomb), ("zstd", &zstd_bomb)] {
                let headers = [("grpc-encoding", encoding)];
                let r =
                    h2_call_framed(server.local_addr(), UNARY, &headers, frame(true, data)).await;
                assert_eq!(r.grpc_status(), Some("8"), "{encoding}");
            }
        }
        // Decompression stops at the limit: the server never holds the claimed
        // 64 MiB, so the process's peak memory barely moves (tests running
        // alongside use a few MiB).
        let grown = peak_rss_bytes().saturating_sub(before);
        assert!(grown < 40 << 20, "peak RSS grew by {grown} bytes");
    });
    server.shutdown_and_wait();
}
