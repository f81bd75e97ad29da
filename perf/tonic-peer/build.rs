//! Generates tonic's servers for helloworld.Greeter (the examples' proto) and
//! ringrpc.bench.Bench, so both servers under comparison answer exactly the
//! same services.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "../../examples/proto/helloworld.proto",
        "../proto/bench.proto",
    ];
    let includes = ["../../examples/proto", "../proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    // protox keeps protoc out of the build.
    let descriptors = protox::compile(protos, includes)?;
    // `bytes` fields as `Bytes`: payloads are cloned by reference count and
    // echoed without a copy, as on the ringrpc side.
    tonic_prost_build::configure()
        .build_client(false)
        .bytes(".")
        .compile_fds(descriptors)?;
    Ok(())
}
