//! Server glue for grpc.health.v1.

fn main() -> std::io::Result<()> {
    ringrpc_service_api::codegen::compile_protos(&["proto/grpc/health/v1/health.proto"], &["proto"])
}
