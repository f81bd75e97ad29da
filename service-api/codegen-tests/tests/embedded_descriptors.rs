//! The `FILE_DESCRIPTOR_SET` constant generated into package modules.

use prost::Message;
use prost_types::FileDescriptorSet;
use ringrpc_codegen_tests::{helloworld, kinds, messages_only, nopackage, pkg_b};

fn service_names(encoded: &[u8]) -> Vec<String> {
    let set = FileDescriptorSet::decode(encoded).unwrap();
    let mut names = Vec::new();
    for file in &set.file {
        for service in &file.service {
            names.push(match file.package() {
                "" => service.name().to_owned(),
                package => format!("{package}.{}", service.name()),
            });
        }
    }
    names.sort();
    names
}

#[test]
fn holds_the_package_services() {
    assert_eq!(
        service_names(helloworld::FILE_DESCRIPTOR_SET),
        ["helloworld.Greeter"]
    );
    let names = service_names(kinds::FILE_DESCRIPTOR_SET);
    assert!(names.contains(&"kinds.Calculator".to_owned()), "{names:?}");
    assert!(names.contains(&"kinds.Idle".to_owned()), "{names:?}");
    assert!(names.contains(&"Bare".to_owned()), "{names:?}");
}

#[test]
fn holds_imports() {
    let set = FileDescriptorSet::decode(pkg_b::FILE_DESCRIPTOR_SET).unwrap();
    let files: Vec<&str> = set.file.iter().map(|f| f.name()).collect();
    assert!(files.contains(&"pkg_a.proto"), "{files:?}");
    assert!(files.contains(&"pkg_b.proto"), "{files:?}");
    // Imports come before the files importing them, as reflection clients expect.
    let a = files.iter().position(|f| *f == "pkg_a.proto").unwrap();
    let b = files.iter().position(|f| *f == "pkg_b.proto").unwrap();
    assert!(a < b, "{files:?}");
}

#[test]
fn is_generated_without_server_glue_too() {
    assert_eq!(
        messages_only::helloworld::FILE_DESCRIPTOR_SET,
        helloworld::FILE_DESCRIPTOR_SET
    );
}

#[test]
fn is_generated_for_files_without_a_package() {
    assert!(service_names(nopackage::FILE_DESCRIPTOR_SET).contains(&"Bare".to_owned()));
}
