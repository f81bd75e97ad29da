//! Builder options that change what is generated.

use ringrpc_codegen_tests::messages_only;

const MESSAGES_ONLY: &str = include_str!(concat!(env!("OUT_DIR"), "/messages_only/helloworld.rs"));
const WITH_SERVER: &str = include_str!(concat!(env!("OUT_DIR"), "/helloworld.rs"));

#[test]
fn build_server_false_generates_messages_only() {
    assert!(WITH_SERVER.contains("pub mod greeter_server"));
    assert!(!MESSAGES_ONLY.contains("greeter_server"));
    assert!(!MESSAGES_ONLY.contains("ringrpc_service_api::server"));
    let request = messages_only::helloworld::HelloRequest { name: "n".into() };
    assert_eq!(request.name, "n");
}

#[test]
fn messages_reach_prost_through_the_service_api() {
    // The user crate needs no prost dependency of its own.
    let through_api = "::ringrpc_service_api::__codegen::prost::";
    assert!(WITH_SERVER.contains(through_api));
    assert!(!WITH_SERVER.replace(through_api, "").contains("prost::"));
}

#[test]
fn extern_path_types_are_used_as_given() {
    let generated = include_str!(concat!(env!("OUT_DIR"), "/extern/ext_user.rs"));
    assert!(generated.contains("crate::pkg_a::Item"));
    assert!(!generated.contains("super::crate"));
    // No copy of `pkg_a` was generated next to it.
    assert!(!generated.contains("pub struct Item"));
}

#[test]
fn bytes_option_is_per_path() {
    let blobs = include_str!(concat!(env!("OUT_DIR"), "/blobs.rs"));
    assert!(blobs.contains("bytes::Bytes"));
    // Only `.blobs` was configured; fields elsewhere stay `Vec<u8>`.
    let data: bytes::Bytes = ringrpc_codegen_tests::blobs::Blob::default().data;
    let tag: Vec<u8> = ringrpc_codegen_tests::pkg_a::Item::default().tag;
    assert!(data.is_empty() && tag.is_empty());
}
