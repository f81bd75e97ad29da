//! Unary calls end to end through the generated routers and the glue.

mod support;

use bytes::Bytes;
use ringrpc_codegen_tests::*;
use ringrpc_service_api::{CallHead, Code, Metadata};
use support::{encode, run, run_with_head};

#[test]
fn say_hello_answers_and_carries_metadata() {
    let server = helloworld::greeter_server::GreeterServer::new(Greeter);
    let mut head = CallHead::default();
    head.metadata.insert("x-request-id", "r-17").unwrap();
    let outcome = run_with_head(
        &server,
        "SayHello",
        head,
        vec![encode(&helloworld::HelloRequest {
            name: "world".into(),
        })],
    );

    assert_eq!(
        outcome.single::<helloworld::HelloReply>().message,
        "Hello, world!"
    );
    assert_eq!(
        outcome.headers.as_ref().and_then(|h| h.get("x-request-id")),
        Some("r-17")
    );
    let trailers = outcome.result.as_ref().unwrap();
    assert_eq!(trailers.get("x-name-len"), Some("5"));
}

#[test]
fn no_response_headers_unless_the_handler_sets_some() {
    let server = helloworld::greeter_server::GreeterServer::new(Greeter);
    let outcome = run(
        &server,
        "SayHello",
        vec![encode(&helloworld::HelloRequest { name: "x".into() })],
    );
    assert_eq!(outcome.code(), Code::Ok);
    assert!(outcome.headers.is_none());
}

#[test]
fn items_of_two_packages_with_the_same_name() {
    let server = pkg_b::converter_server::ConverterServer::new(Converter);
    let outcome = run(
        &server,
        "Convert",
        vec![encode(&pkg_a::Item {
            name: "widget".into(),
            tag: vec![1],
        })],
    );
    assert_eq!(
        outcome.single::<pkg_b::Item>(),
        pkg_b::Item {
            label: "widget".into(),
            length: 6
        }
    );

    let outcome = run(
        &server,
        "Back",
        vec![encode(&pkg_b::Item {
            label: "gadget".into(),
            length: 0,
        })],
    );
    assert_eq!(
        outcome.single::<pkg_a::Item>(),
        pkg_a::Item {
            name: "gadget".into(),
            tag: Vec::new()
        }
    );
}

#[test]
fn nested_message_types() {
    let server = kinds::calculator_server::CalculatorServer::new(Calculator::default());
    let outcome = run(
        &server,
        "Annotate",
        vec![encode(&kinds::number::Note {
            text: "loud".into(),
        })],
    );
    assert_eq!(outcome.single::<kinds::number::Note>().text, "LOUD");
}

#[test]
fn each_keyword_method_reaches_its_own_handler() {
    let server = keywords::async_server::AsyncServer::new(Keywords);
    for method in [
        "Type", "Match", "Self", "Async", "Loop", "Super", "Crate", "Clone",
    ] {
        let outcome = run(&server, method, vec![encode(&keywords::Thing::default())]);
        assert_eq!(outcome.single::<keywords::Thing>().kind, method);
    }
}

#[test]
fn service_without_a_package() {
    let server = nopackage::bare_server::BareServer::new(Bare);
    let outcome = run(&server, "Ping", vec![encode(&nopackage::Ping { seq: 41 })]);
    assert_eq!(outcome.single::<nopackage::Pong>().seq, 42);
}

#[test]
fn methods_named_like_their_messages() {
    let server = collide::box_server::BoxServer::new(Collide);
    let outcome = run(
        &server,
        "Get",
        vec![encode(&collide::Get { key: "up".into() })],
    );
    assert_eq!(outcome.single::<collide::Status>().state, "up");
    let outcome = run(
        &server,
        "Status",
        vec![encode(&collide::Status { state: "up".into() })],
    );
    assert!(outcome.single::<collide::Result>().ok);
    let outcome = run(
        &server,
        "Option",
        vec![encode(&collide::Option { value: "v".into() })],
    );
    assert_eq!(outcome.single::<collide::Option>().value, "v");
}

#[test]
fn messages_from_an_extern_path() {
    let server = ext_user::relay_server::RelayServer::new(Relay);
    let item = pkg_a::Item {
        name: "parcel".into(),
        tag: b"t".to_vec(),
    };
    let outcome = run(&server, "Forward", vec![encode(&item)]);
    assert_eq!(outcome.single::<pkg_a::Item>(), item);
}

#[test]
fn handler_error_is_the_call_status() {
    let calculator = Calculator::with_table([(1, 100)]);
    let server = kinds::calculator_server::CalculatorServer::new(calculator.clone());

    let found = run(
        &server,
        "Lookup",
        vec![encode(&kinds::Number { value: 1, sign: 0 })],
    );
    assert_eq!(found.single::<kinds::Number>().value, 100);

    let missing = run(
        &server,
        "Lookup",
        vec![encode(&kinds::Number { value: 2, sign: 0 })],
    );
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(missing.status().message(), "no entry for 2");
    assert!(missing.messages.is_empty());
    assert!(missing.headers.is_none());
    assert_eq!(calculator.calls(), 2);
}

#[test]
fn no_request_message_is_unimplemented_and_skips_the_handler() {
    let calculator = Calculator::default();
    let server = kinds::calculator_server::CalculatorServer::new(calculator.clone());
    let outcome = run(&server, "Double", vec![]);
    assert_eq!(outcome.code(), Code::Unimplemented);
    assert!(outcome.messages.is_empty());
    assert_eq!(calculator.calls(), 0);
}

#[test]
fn two_request_messages_are_unimplemented_and_skip_the_handler() {
    let calculator = Calculator::default();
    let server = kinds::calculator_server::CalculatorServer::new(calculator.clone());
    let one = encode(&kinds::Number { value: 1, sign: 0 });
    let outcome = run(&server, "Double", vec![one.clone(), one]);
    assert_eq!(outcome.code(), Code::Unimplemented);
    assert!(outcome.messages.is_empty());
    assert_eq!(calculator.calls(), 0);
}

#[test]
fn undecodable_request_is_internal_and_skips_the_handler() {
    let calculator = Calculator::default();
    let server = kinds::calculator_server::CalculatorServer::new(calculator.clone());
    // Field 1, length-delimited, claims 5 bytes but 1 follows.
    let truncated = Bytes::from_static(&[0x0a, 0x05, b'a']);
    // Field 1 of `Number` is an int64; the wire type here is 7, which does not exist.
    let bad_wire_type = Bytes::from_static(&[0x0f]);
    for (method, request) in [("Annotate", truncated), ("Double", bad_wire_type)] {
        let outcome = run(&server, method, vec![request]);
        assert_eq!(outcome.code(), Code::Internal, "{method}");
        assert!(outcome.messages.is_empty());
    }
    assert_eq!(calculator.calls(), 0);
}

#[test]
fn an_empty_request_message_decodes_as_defaults() {
    let server = kinds::calculator_server::CalculatorServer::new(Calculator::default());
    let outcome = run(&server, "Double", vec![Bytes::new()]);
    assert_eq!(
        outcome.single::<kinds::Number>(),
        kinds::Number {
            value: 0,
            sign: kinds::Sign::Unspecified.into()
        }
    );
    assert_eq!(outcome.result.unwrap(), Metadata::new());
}
