//! Server glue for both reflection versions, and a demo package for the tests
//! and the demo server.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The demo package is small; compiling it always keeps the tests and the
    // demo binary free of a build script of their own.
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let protos = [
        "proto/grpc/reflection/v1/reflection.proto",
        "proto/grpc/reflection/v1alpha/reflection.proto",
    ];
    ringrpc_service_api::codegen::compile_protos(&protos, &["proto"])?;

    let demo = out.join("demo");
    ringrpc_service_api::codegen::configure()
        .out_dir(&demo)
        .compile(&["demo/demo.proto"], &["demo"])?;
    Ok(())
}
