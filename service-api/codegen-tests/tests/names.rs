//! Routing: fully-qualified service names and method lookup.

mod support;

use ringrpc_codegen_tests::*;
use ringrpc_service_api::server::Service;
use ringrpc_service_api::{Call, CallHead};
use support::FakeIo;

fn probe(service: &dyn Service, method: &str) -> bool {
    let call = Call::new(FakeIo::new([]), CallHead::default());
    service.call(
        method.as_bytes(),
        call,
        Box::pin(ringrpc_service_api::server::CallSlot::new()).as_mut(),
    )
}

#[test]
fn names_are_package_dot_service() {
    let names: Vec<&str> = services().iter().map(|s| s.name()).collect();
    assert_eq!(
        names,
        [
            "helloworld.Greeter",
            "pkg_b.Converter",
            "kinds.Calculator",
            "kinds.Idle",
            "keywords.Async",
            "Bare",
            "empty_io.Pinger",
            "collide.Box",
            "blobs.BlobStore",
            "ext_user.Relay",
            "empty_io.Pinger",
        ]
    );
}

#[test]
fn service_name_constants_match_the_routers() {
    assert_eq!(
        helloworld::greeter_server::SERVICE_NAME,
        "helloworld.Greeter"
    );
    assert_eq!(nopackage::bare_server::SERVICE_NAME, "Bare");
    assert_eq!(keywords::async_server::SERVICE_NAME, "keywords.Async");
    let greeter = helloworld::greeter_server::GreeterServer::new(Greeter);
    assert_eq!(greeter.name(), helloworld::greeter_server::SERVICE_NAME);
}

#[test]
fn unknown_methods_are_none() {
    let greeter = helloworld::greeter_server::GreeterServer::new(Greeter);
    assert!(probe(&greeter, "SayHello"));
    // Method names are matched exactly, as they appear in the proto.
    for method in [
        "",
        "sayHello",
        "say_hello",
        "SayHello ",
        "SayHelloX",
        "helloworld.Greeter/SayHello",
    ] {
        assert!(!probe(&greeter, method), "{method:?} should not route");
    }
    let keywords = keywords::async_server::AsyncServer::new(Keywords);
    for method in ["type", "r#type", "self_", "Self_"] {
        assert!(!probe(&keywords, method), "{method:?} should not route");
    }
}

#[test]
fn a_method_not_in_any_service_is_none_everywhere() {
    for service in services() {
        assert!(!probe(&*service, "NoSuchMethod"), "{}", service.name());
    }
}
