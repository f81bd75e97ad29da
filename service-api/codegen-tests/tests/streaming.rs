//! Server-streaming, client-streaming and bidirectional calls end to end.

mod support;

use bytes::Bytes;
use ringrpc_codegen_tests::kinds::calculator_server::CalculatorServer;
use ringrpc_codegen_tests::kinds::{Number, Sign};
use ringrpc_codegen_tests::Calculator;
use ringrpc_service_api::Code;
use support::{encode, run};

fn num(value: i64) -> Bytes {
    encode(&Number { value, sign: 0 })
}

fn values(messages: Vec<Number>) -> Vec<i64> {
    messages.into_iter().map(|n| n.value).collect()
}

#[test]
fn server_streaming_sends_n_messages_then_ok() {
    let server = CalculatorServer::new(Calculator::default());
    let outcome = run(&server, "CountTo", vec![num(5)]);
    assert_eq!(outcome.code(), Code::Ok);
    let messages = outcome.decode::<Number>();
    assert!(messages.iter().all(|n| n.sign() == Sign::Positive));
    assert_eq!(values(messages), [1, 2, 3, 4, 5]);
    assert_eq!(
        outcome.trailers.as_ref().and_then(|t| t.get("x-sent")),
        Some("5")
    );
}

#[test]
fn server_streaming_with_zero_messages() {
    let server = CalculatorServer::new(Calculator::default());
    let outcome = run(&server, "CountTo", vec![num(0)]);
    assert_eq!(outcome.code(), Code::Ok);
    assert!(outcome.messages.is_empty());
}

#[test]
fn server_streaming_handler_error() {
    let server = CalculatorServer::new(Calculator::default());
    let outcome = run(&server, "CountTo", vec![num(-1)]);
    assert_eq!(outcome.code(), Code::InvalidArgument);
    assert!(outcome.messages.is_empty());
}

#[test]
fn server_streaming_needs_exactly_one_request() {
    let calculator = Calculator::default();
    let server = CalculatorServer::new(calculator.clone());
    assert_eq!(run(&server, "CountTo", vec![]).code(), Code::Unimplemented);
    assert_eq!(
        run(&server, "CountTo", vec![num(1), num(2)]).code(),
        Code::Unimplemented
    );
    assert_eq!(calculator.calls(), 0);
}

#[test]
fn client_streaming_sums_every_message() {
    let server = CalculatorServer::new(Calculator::default());
    let requests: Vec<Bytes> = (1..=10).map(num).collect();
    let outcome = run(&server, "Sum", requests);
    assert_eq!(outcome.single::<Number>().value, 55);
    assert_eq!(outcome.unread, 0);
}

#[test]
fn client_streaming_with_no_messages() {
    let server = CalculatorServer::new(Calculator::default());
    let outcome = run(&server, "Sum", vec![]);
    assert_eq!(outcome.single::<Number>().value, 0);
}

#[test]
fn client_streaming_undecodable_message_is_internal() {
    let server = CalculatorServer::new(Calculator::default());
    let outcome = run(
        &server,
        "Sum",
        vec![num(1), Bytes::from_static(&[0x0f]), num(2)],
    );
    assert_eq!(outcome.code(), Code::Internal);
    assert!(outcome.messages.is_empty());
}

#[test]
fn bidi_echoes_in_order() {
    let server = CalculatorServer::new(Calculator::default());
    let outcome = run(
        &server,
        "Echo",
        vec![num(3), num(-7), num(0), num(i64::MAX)],
    );
    assert_eq!(outcome.code(), Code::Ok);
    assert_eq!(values(outcome.decode()), [3, -7, 0, i64::MAX]);
}

#[test]
fn bidi_undecodable_message_ends_the_call_after_the_echoes_so_far() {
    let server = CalculatorServer::new(Calculator::default());
    let outcome = run(
        &server,
        "Echo",
        vec![num(1), num(2), Bytes::from_static(&[0x0a, 0x05]), num(3)],
    );
    assert_eq!(outcome.code(), Code::Internal);
    assert_eq!(values(outcome.decode()), [1, 2]);
}
