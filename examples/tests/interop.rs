//! gRPC's interoperability test cases (grpc/grpc `doc/interop-test-descriptions.md`),
//! run with tonic's client against the interop server in this process.
//!
//! Where tonic cannot express a step, the case says so and checks what tonic can:
//!
//! - tonic compresses every request message of a client or none, so
//!   `client_compressed_streaming` sends its second message compressed too
//!   (flagged `expect_compressed: false`, which the server accepts either way).
//! - tonic does not show a response message's compressed flag, so the server
//!   compression cases check the response's `grpc-encoding` header and the
//!   payloads; the flags on the wire (including per-message opt-out) are checked
//!   by the engine's end-to-end compression tests with a raw HTTP/2 client.
//! - tonic cancels a call by dropping it, so the cancellation cases cannot read a
//!   CANCELLED status; they check the call was in flight when dropped and that
//!   the server keeps serving the connection.
//! - tonic enforces deadlines client-side as well and reports its own expiry as
//!   CANCELLED ("Timeout expired"), so `timeout_on_sleeping_server` accepts that
//!   or the server's DEADLINE_EXCEEDED, whichever arrives first.

use std::time::Duration;

use ringrpc_engine::{EngineConfig, Server, ServerHandle};
use ringrpc_examples::client::grpc_testing::test_service_client::TestServiceClient;
use ringrpc_examples::client::grpc_testing::unimplemented_service_client::UnimplementedServiceClient;
use ringrpc_examples::client::grpc_testing::{
    BoolValue, EchoStatus, Empty, Payload, ResponseParameters, SimpleRequest,
    StreamingInputCallRequest, StreamingOutputCallRequest, StreamingOutputCallResponse,
};
use ringrpc_examples::interop::{engine_config, InteropService};
use tokio::sync::mpsc;
use tonic::codec::CompressionEncoding;
use tonic::transport::Channel;
use tonic::Code;

type Client = TestServiceClient<Channel>;

fn start() -> ServerHandle {
    let config = engine_config(EngineConfig {
        workers: 2,
        shutdown_grace: Duration::from_secs(1),
        ..EngineConfig::default()
    });
    Server::builder()
        .config(config)
        .add_service(InteropService::server)
        .serve("127.0.0.1:0".parse().unwrap())
        .unwrap()
}

/// Runs `case` with a fresh server and a client connected to it.
fn run<F, Fut>(case: F)
where
    F: FnOnce(Client, Channel) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let server = start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{}", server.local_addr()))
                .unwrap()
                .connect()
                .await
                .unwrap();
        case(TestServiceClient::new(channel.clone()), channel).await;
    });
    drop(runtime);
    server.shutdown_and_wait();
}

fn zeros(len: usize) -> Option<Payload> {
    Some(Payload {
        r#type: 0,
        body: vec![0; len],
    })
}

fn flag(value: bool) -> Option<BoolValue> {
    Some(BoolValue { value })
}

fn body_len(payload: &Option<Payload>) -> usize {
    let body = &payload.as_ref().expect("a payload").body;
    assert!(body.iter().all(|&b| b == 0), "payload is zeros");
    body.len()
}

fn large_request() -> SimpleRequest {
    SimpleRequest {
        response_size: 314_159,
        payload: zeros(271_828),
        ..SimpleRequest::default()
    }
}

/// Requests fed to a streaming call from a channel, so a case decides when each
/// one goes out (and when the stream ends: when the sender is dropped).
struct Outgoing<T>(mpsc::UnboundedReceiver<T>);

impl<T> futures_core::Stream for Outgoing<T> {
    type Item = T;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}

fn outgoing<T>() -> (mpsc::UnboundedSender<T>, Outgoing<T>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (tx, Outgoing(rx))
}

fn output_request(sizes: &[i32], payload: usize) -> StreamingOutputCallRequest {
    StreamingOutputCallRequest {
        response_parameters: sizes
            .iter()
            .map(|&size| ResponseParameters {
                size,
                ..ResponseParameters::default()
            })
            .collect(),
        payload: (payload > 0).then(|| zeros(payload)).flatten(),
        ..StreamingOutputCallRequest::default()
    }
}

async fn collect(mut stream: tonic::Streaming<StreamingOutputCallResponse>) -> Vec<usize> {
    let mut sizes = Vec::new();
    while let Some(response) = stream.message().await.unwrap() {
        sizes.push(body_len(&response.payload));
    }
    sizes
}

/// After a cancelled call the connection still serves calls.
async fn still_serving(client: &mut Client) {
    client.empty_call(Empty {}).await.unwrap();
}

#[test]
fn empty_unary() {
    run(|mut client, _| async move {
        let response = client.empty_call(Empty {}).await.unwrap();
        assert_eq!(response.into_inner(), Empty {});
    });
}

#[test]
fn large_unary() {
    run(|mut client, _| async move {
        let response = client
            .unary_call(large_request())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(body_len(&response.payload), 314_159);
    });
}

#[test]
fn client_compressed_unary() {
    run(|mut client, channel| async move {
        // Probe: the server must notice an uncompressed message it was told to
        // expect compressed.
        let probe = SimpleRequest {
            expect_compressed: flag(true),
            ..large_request()
        };
        let err = client.unary_call(probe.clone()).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

        let mut compressing =
            TestServiceClient::new(channel).send_compressed(CompressionEncoding::Gzip);
        let response = compressing.unary_call(probe).await.unwrap().into_inner();
        assert_eq!(body_len(&response.payload), 314_159);

        let plain = SimpleRequest {
            expect_compressed: flag(false),
            ..large_request()
        };
        let response = client.unary_call(plain).await.unwrap().into_inner();
        assert_eq!(body_len(&response.payload), 314_159);
    });
}

#[test]
fn server_compressed_unary() {
    run(|client, _| async move {
        let mut client = client.accept_compressed(CompressionEncoding::Gzip);
        for compressed in [true, false] {
            let request = SimpleRequest {
                response_compressed: flag(compressed),
                ..large_request()
            };
            let response = client.unary_call(request).await.unwrap();
            // The call's encoding; the per-message flag is not visible in tonic.
            assert_eq!(
                response.metadata().get("grpc-encoding").unwrap(),
                "gzip",
                "compressed: {compressed}"
            );
            assert_eq!(body_len(&response.into_inner().payload), 314_159);
        }
    });
}

#[test]
fn client_streaming() {
    run(|mut client, _| async move {
        let (tx, stream) = outgoing();
        for size in [27_182, 8, 1_828, 45_904] {
            tx.send(StreamingInputCallRequest {
                payload: zeros(size),
                ..StreamingInputCallRequest::default()
            })
            .unwrap();
        }
        drop(tx);
        let response = client.streaming_input_call(stream).await.unwrap();
        assert_eq!(response.into_inner().aggregated_payload_size, 74_922);
    });
}

#[test]
fn client_compressed_streaming() {
    run(|mut client, channel| async move {
        let (tx, stream) = outgoing();
        tx.send(StreamingInputCallRequest {
            payload: zeros(27_182),
            expect_compressed: flag(true),
        })
        .unwrap();
        drop(tx);
        let err = client.streaming_input_call(stream).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

        let mut compressing =
            TestServiceClient::new(channel).send_compressed(CompressionEncoding::Gzip);
        let (tx, stream) = outgoing();
        tx.send(StreamingInputCallRequest {
            payload: zeros(27_182),
            expect_compressed: flag(true),
        })
        .unwrap();
        // Meant to go out uncompressed; tonic compresses it anyway (see above).
        tx.send(StreamingInputCallRequest {
            payload: zeros(45_904),
            expect_compressed: flag(false),
        })
        .unwrap();
        drop(tx);
        let response = compressing.streaming_input_call(stream).await.unwrap();
        assert_eq!(response.into_inner().aggregated_payload_size, 73_086);
    });
}

#[test]
fn server_streaming() {
    run(|mut client, _| async move {
        let sizes = [31_415, 9, 2_653, 58_979];
        let request = output_request(&sizes, 0);
        let stream = client.streaming_output_call(request).await.unwrap();
        assert_eq!(
            collect(stream.into_inner()).await,
            [31_415, 9, 2_653, 58_979]
        );
    });
}

#[test]
fn server_compressed_streaming() {
    run(|client, _| async move {
        let mut client = client.accept_compressed(CompressionEncoding::Gzip);
        let mut request = output_request(&[31_415, 92_653], 0);
        request.response_parameters[0].compressed = flag(true);
        request.response_parameters[1].compressed = flag(false);
        let response = client.streaming_output_call(request).await.unwrap();
        assert_eq!(response.metadata().get("grpc-encoding").unwrap(), "gzip");
        assert_eq!(collect(response.into_inner()).await, [31_415, 92_653]);
    });
}

#[test]
fn ping_pong() {
    run(|mut client, _| async move {
        let (tx, stream) = outgoing();
        let requests = [(31_415, 27_182), (9, 8), (2_653, 1_828), (58_979, 45_904)];
        tx.send(output_request(&[requests[0].0], requests[0].1))
            .unwrap();
        let mut responses = client.full_duplex_call(stream).await.unwrap().into_inner();
        for (i, &(size, _)) in requests.iter().enumerate() {
            if i > 0 {
                tx.send(output_request(&[size], requests[i].1)).unwrap();
            }
            let response = responses.message().await.unwrap().expect("a response");
            assert_eq!(body_len(&response.payload), size as usize);
        }
        drop(tx);
        assert!(responses.message().await.unwrap().is_none());
    });
}

#[test]
fn empty_stream() {
    run(|mut client, _| async move {
        let (tx, stream) = outgoing::<StreamingOutputCallRequest>();
        drop(tx);
        let responses = client.full_duplex_call(stream).await.unwrap().into_inner();
        assert!(collect(responses).await.is_empty());
    });
}

#[test]
fn custom_metadata() {
    const INITIAL: &str = "x-grpc-test-echo-initial";
    const TRAILING: &str = "x-grpc-test-echo-trailing-bin";
    let with_metadata = |request: &mut tonic::metadata::MetadataMap| {
        request.insert(INITIAL, "test_initial_metadata_value".parse().unwrap());
        request.insert_bin(
            TRAILING,
            tonic::metadata::BinaryMetadataValue::from_bytes(&[0xab, 0xab, 0xab]),
        );
    };
    run(|mut client, _| async move {
        let mut request = tonic::Request::new(SimpleRequest {
            response_size: 314_159,
            payload: zeros(271_828),
            ..SimpleRequest::default()
        });
        with_metadata(request.metadata_mut());
        let response = client.unary_call(request).await.unwrap();
        // tonic merges a unary call's trailers into the response metadata.
        let metadata = response.metadata();
        assert_eq!(
            metadata.get(INITIAL).unwrap(),
            "test_initial_metadata_value"
        );
        assert_eq!(
            metadata.get_bin(TRAILING).unwrap().to_bytes().unwrap(),
            &[0xab, 0xab, 0xab][..]
        );

        let (tx, stream) = outgoing();
        tx.send(output_request(&[314_159], 271_828)).unwrap();
        drop(tx);
        let mut request = tonic::Request::new(stream);
        with_metadata(request.metadata_mut());
        let response = client.full_duplex_call(request).await.unwrap();
        assert_eq!(
            response.metadata().get(INITIAL).unwrap(),
            "test_initial_metadata_value"
        );
        let mut responses = response.into_inner();
        let first = responses.message().await.unwrap().expect("a response");
        assert_eq!(body_len(&first.payload), 314_159);
        assert!(responses.message().await.unwrap().is_none());
        let trailers = responses.trailers().await.unwrap().expect("trailers");
        assert_eq!(
            trailers.get_bin(TRAILING).unwrap().to_bytes().unwrap(),
            &[0xab, 0xab, 0xab][..]
        );
    });
}

async fn check_status_echo(client: &mut Client, message: &str) {
    let status = EchoStatus {
        code: 2,
        message: message.to_owned(),
    };
    let request = SimpleRequest {
        response_status: Some(status.clone()),
        ..SimpleRequest::default()
    };
    let err = client.unary_call(request).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::Unknown, message));

    let (tx, stream) = outgoing();
    tx.send(StreamingOutputCallRequest {
        response_status: Some(status),
        ..StreamingOutputCallRequest::default()
    })
    .unwrap();
    drop(tx);
    let err = match client.full_duplex_call(stream).await {
        Err(err) => err,
        Ok(response) => response.into_inner().message().await.unwrap_err(),
    };
    assert_eq!((err.code(), err.message()), (Code::Unknown, message));
}

#[test]
fn status_code_and_message() {
    run(|mut client, _| async move {
        check_status_echo(&mut client, "test status message").await;
    });
}

#[test]
fn special_status_message() {
    run(|mut client, _| async move {
        let message =
            "\t\ntest with whitespace\r\nand Unicode BMP \u{263A} and non-BMP \u{1F608}\t\n";
        check_status_echo(&mut client, message).await;
    });
}

#[test]
fn unimplemented_method() {
    run(|mut client, _| async move {
        let err = client.unimplemented_method(Empty {}).await.unwrap_err();
        assert_eq!(err.code(), Code::Unimplemented);
    });
}

#[test]
fn unimplemented_service() {
    run(|_, channel| async move {
        let mut client = UnimplementedServiceClient::new(channel);
        let err = client.unimplemented_call(Empty {}).await.unwrap_err();
        assert_eq!(err.code(), Code::Unimplemented);
    });
}

#[test]
fn cancel_after_begin() {
    run(|mut client, _| async move {
        let (tx, stream) = outgoing::<StreamingInputCallRequest>();
        let mut caller = client.clone();
        let call = caller.streaming_input_call(stream);
        // The server waits for requests that never come; dropping the call after
        // it began resets the stream.
        let timed_out = tokio::time::timeout(Duration::from_millis(100), call).await;
        assert!(timed_out.is_err(), "the call was still in flight");
        drop(tx);
        still_serving(&mut client).await;
    });
}

#[test]
fn cancel_after_first_response() {
    run(|mut client, _| async move {
        let (tx, stream) = outgoing();
        tx.send(output_request(&[31_415], 27_182)).unwrap();
        let mut responses = client
            .clone()
            .full_duplex_call(stream)
            .await
            .unwrap()
            .into_inner();
        let first = responses.message().await.unwrap().expect("a response");
        assert_eq!(body_len(&first.payload), 31_415);
        drop(responses);
        drop(tx);
        still_serving(&mut client).await;
    });
}

#[test]
fn timeout_on_sleeping_server() {
    run(|mut client, _| async move {
        let (tx, stream) = outgoing();
        tx.send(output_request(&[], 27_182)).unwrap();
        let mut request = tonic::Request::new(stream);
        request.set_timeout(Duration::from_millis(1));
        let err = match client.full_duplex_call(request).await {
            Err(err) => err,
            Ok(response) => {
                let mut responses = response.into_inner();
                loop {
                    match responses.message().await {
                        Ok(Some(_)) => continue,
                        Ok(None) => panic!("the call ended without an error"),
                        Err(err) => break err,
                    }
                }
            }
        };
        let tonic_own = err.code() == Code::Cancelled && err.message().contains("Timeout");
        assert!(err.code() == Code::DeadlineExceeded || tonic_own, "{err:?}");
        drop(tx);
        still_serving(&mut client).await;
    });
}
