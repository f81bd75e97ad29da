//! Generates the ringrpc servers of the protos the bench server answers.

fn main() -> std::io::Result<()> {
    // `bytes` fields as `Bytes`: StreamDown sends reference-counted clones of
    // one payload and PingPong echoes received payloads without a copy.
    ringrpc_service_api::codegen::configure()
        .bytes(["."])
        .compile(
            &[
                "../../examples/proto/helloworld.proto",
                "../proto/bench.proto",
            ],
            &["../../examples/proto", "../proto"],
        )
}
