//! Generates tonic's Greeter server from the examples' proto, so both servers
//! under comparison answer exactly the same service.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = "../../examples/proto";
    let proto = "../../examples/proto/helloworld.proto";
    println!("cargo:rerun-if-changed={proto}");
    // protox keeps protoc out of the build.
    let descriptors = protox::compile([proto], [proto_dir])?;
    tonic_prost_build::configure()
        .build_client(false)
        .compile_fds(descriptors)?;
    Ok(())
}
