//! Server glue for the soak's services: `helloworld.Greeter` (unary) and
//! `ringrpc.bench.Bench` (the three streaming kinds).

fn main() -> std::io::Result<()> {
    ringrpc_service_api::codegen::configure()
        .bytes([".ringrpc.bench"])
        .compile(
            &[
                "../../examples/proto/helloworld.proto",
                "../proto/bench.proto",
            ],
            &["../../examples/proto", "../proto"],
        )
}
