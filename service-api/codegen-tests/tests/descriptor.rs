//! The encoded `FileDescriptorSet` written by `file_descriptor_set_path`.

mod support;

use std::collections::BTreeMap;

use prost::Message;
use prost_types::FileDescriptorSet;
use ringrpc_codegen_tests::services;
use ringrpc_service_api::{Call, CallHead};
use support::FakeIo;

fn descriptors() -> FileDescriptorSet {
    FileDescriptorSet::decode(&include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"))[..])
        .unwrap()
}

/// Service full name → method names, from the descriptor set.
fn described_services() -> BTreeMap<String, Vec<String>> {
    let mut found = BTreeMap::new();
    for file in descriptors().file {
        for service in &file.service {
            let name = match file.package() {
                "" => service.name().to_owned(),
                package => format!("{package}.{}", service.name()),
            };
            found.insert(
                name,
                service.method.iter().map(|m| m.name().to_owned()).collect(),
            );
        }
    }
    found
}

#[test]
fn holds_the_compiled_services() {
    let names: Vec<String> = described_services().into_keys().collect();
    assert_eq!(
        names,
        [
            "Bare",
            "blobs.BlobStore",
            "collide.Box",
            "empty_io.Pinger",
            "keywords.Async",
            "kinds.Calculator",
            "kinds.Idle",
            "pkg_b.Converter"
        ]
    );
}

#[test]
fn holds_imports_and_comments() {
    let set = descriptors();
    let files: Vec<&str> = set.file.iter().map(|f| f.name()).collect();
    assert!(files.contains(&"google/protobuf/empty.proto"), "{files:?}");
    assert!(files.contains(&"pkg_a.proto"), "{files:?}");

    let kinds = set.file.iter().find(|f| f.name() == "kinds.proto").unwrap();
    let comments: Vec<&str> = kinds
        .source_code_info
        .as_ref()
        .expect("source info kept")
        .location
        .iter()
        .filter_map(|l| l.leading_comments.as_deref())
        .collect();
    assert!(
        comments.iter().any(|c| c.contains("All four kinds")),
        "{comments:?}"
    );
}

#[test]
fn every_described_method_routes_and_matches_the_kind() {
    let described = described_services();
    for service in services() {
        let Some(methods) = described.get(service.name()) else {
            // Compiled in another run, without this descriptor set.
            assert!(
                ["helloworld.Greeter", "ext_user.Relay"].contains(&service.name()),
                "{}",
                service.name()
            );
            continue;
        };
        for method in methods {
            let call = Call::new(FakeIo::new([]), CallHead::default());
            assert!(
                service.call(
                    method.as_bytes(),
                    call,
                    Box::pin(ringrpc_service_api::server::CallSlot::new()).as_mut()
                ),
                "{}/{method}",
                service.name()
            );
        }
    }

    let set = descriptors();
    let calculator = set
        .file
        .iter()
        .flat_map(|f| &f.service)
        .find(|s| s.name() == "Calculator")
        .unwrap();
    let kinds: Vec<(&str, bool, bool)> = calculator
        .method
        .iter()
        .map(|m| (m.name(), m.client_streaming(), m.server_streaming()))
        .collect();
    assert_eq!(
        &kinds[..4],
        [
            ("Double", false, false),
            ("CountTo", false, true),
            ("Sum", true, false),
            ("Echo", true, true)
        ]
    );
}
