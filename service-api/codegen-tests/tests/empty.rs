//! `google.protobuf.Empty` as request and response, both as prost's `()` and as
//! a generated message.

mod support;

use bytes::Bytes;
use ringrpc_codegen_tests::{empty_io, wkt, Pinger};
use ringrpc_service_api::server::Service;
use ringrpc_service_api::Code;
use support::run;

fn check(server: &dyn Service) {
    let outcome = run(server, "Ping", vec![Bytes::new()]);
    assert_eq!(outcome.code(), Code::Ok);
    assert_eq!(outcome.messages, [Bytes::new()]);

    let outcome = run(server, "Ticks", vec![Bytes::new()]);
    assert_eq!(outcome.code(), Code::Ok);
    assert_eq!(outcome.messages, [Bytes::new(), Bytes::new(), Bytes::new()]);

    // Unknown fields in an `Empty` are skipped, not an error.
    let outcome = run(server, "Ping", vec![Bytes::from_static(&[0x08, 0x01])]);
    assert_eq!(outcome.code(), Code::Ok);
}

#[test]
fn empty_as_unit() {
    check(&empty_io::pinger_server::PingerServer::new(Pinger));
}

#[test]
fn empty_as_generated_message() {
    check(&wkt::empty_io::pinger_server::PingerServer::new(Pinger));
}
