//! Generates the ringrpc servers and the tonic clients of the example protos.

use std::path::PathBuf;

const PROTOS: [&str; 4] = [
    "proto/helloworld.proto",
    "proto/route_guide.proto",
    "proto/chat.proto",
    "proto/grpc/testing/test.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let server_out = out.join("server");
    let client_out = out.join("client");
    std::fs::create_dir_all(&server_out)?;
    std::fs::create_dir_all(&client_out)?;
    ringrpc_service_api::codegen::configure()
        .out_dir(&server_out)
        .compile(&PROTOS, &["proto"])?;
    // The clients are tonic's, an independent gRPC implementation; protox keeps
    // protoc out of the build for them too.
    let descriptors = protox::compile(PROTOS, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(false)
        .out_dir(&client_out)
        .compile_fds(descriptors)?;
    Ok(())
}
