//! ringrpc server and tonic client code for the test service.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let (server, client) = (out.join("server"), out.join("client"));
    std::fs::create_dir_all(&server)?;
    std::fs::create_dir_all(&client)?;
    ringrpc_service_api::codegen::configure()
        .bytes(["."])
        .out_dir(&server)
        .compile(&["proto/test.proto"], &["proto"])?;
    let descriptors = protox::compile(["proto/test.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(false)
        .bytes(".")
        .out_dir(&client)
        .compile_fds(descriptors)?;
    Ok(())
}
