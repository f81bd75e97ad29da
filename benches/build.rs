//! Server glue for the end-to-end benchmark's services: `helloworld.Greeter` (the
//! unary call load tools make) and `ringrpc.bench.Bench` (the streaming shapes
//! every server measured in perf/ implements).

fn main() -> std::io::Result<()> {
    ringrpc_service_api::codegen::configure()
        // Payloads are sent as clones of one buffer, as the Bench service asks.
        .bytes([".ringrpc.bench"])
        .compile(
            &[
                "../examples/proto/helloworld.proto",
                "../perf/proto/bench.proto",
            ],
            &["../examples/proto", "../perf/proto"],
        )
}
