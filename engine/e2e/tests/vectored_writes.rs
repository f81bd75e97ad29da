//! Large response payloads leave in vectored writes straight from the messages.
//! A client with wide-open windows and hundreds of server-streaming calls makes
//! one write batch hold thousands of payload runs: more pieces than one
//! `writev` takes (IOV_MAX, 1,024 on Linux). Every byte must still arrive, in
//! order, on both backends.

use bytes::Bytes;
use ringrpc_engine_e2e::{frame, start, unframe, BACKENDS};

/// Concurrent calls, below the default `max_concurrent_streams` of 256.
const CALLS: usize = 250;
/// Messages per call and their size: each message is one spliced run.
const COUNT: u32 = 8;
const SIZE: u32 = 8192;

async fn stream_call(mut client: h2::client::SendRequest<Bytes>, addr: std::net::SocketAddr) {
    // StreamRequest { count: 8, size: 8192 }
    let request_message = [0x08, COUNT as u8, 0x10, 0x80, 0x40];
    client = client.ready().await.unwrap();
    let request = http::Request::post(format!(
        "http://{addr}/ringrpc.test.TestService/ServerStream"
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(())
    .unwrap();
    let (response, mut body) = client.send_request(request, false).unwrap();
    body.send_data(frame(false, &request_message).into(), true)
        .unwrap();
    let mut recv = response.await.unwrap().into_body();
    let mut received = Vec::new();
    while let Some(chunk) = recv.data().await {
        let chunk = chunk.unwrap();
        recv.flow_control().release_capacity(chunk.len()).unwrap();
        received.extend_from_slice(&chunk);
    }
    let trailers = recv.trailers().await.unwrap().unwrap();
    assert_eq!(trailers.get("grpc-status").unwrap(), "0");
    let messages = unframe(&received);
    assert_eq!(messages.len(), COUNT as usize);
    for (compressed, message) in messages {
        assert!(!compressed);
        // Payload { body: [7; 8192] }: tag, two-byte length, body.
        assert_eq!(&message[..3], &[0x0a, 0x80, 0x40]);
        assert_eq!(message.len(), 3 + SIZE as usize);
        assert!(message[3..].iter().all(|&b| b == 7));
    }
}

#[test]
fn write_batches_of_more_runs_than_one_writev_takes_arrive_whole() {
    for backend in BACKENDS {
        let server = start(backend, 1);
        let addr = server.local_addr();
        let rt = ringrpc_engine_e2e::runtime();
        rt.block_on(async {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (client, connection) = h2::client::Builder::new()
                .initial_window_size(1 << 20)
                .initial_connection_window_size(1 << 28)
                .max_concurrent_streams(CALLS as u32)
                .handshake(tcp)
                .await
                .unwrap();
            tokio::spawn(connection);
            let calls: Vec<_> = (0..CALLS)
                .map(|_| tokio::spawn(stream_call(client.clone(), addr)))
                .collect();
            for call in calls {
                call.await.unwrap();
            }
        });
        server.shutdown_and_wait();
    }
}
