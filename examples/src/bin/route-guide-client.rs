//! Exercises all four route_guide RPC kinds with tonic's client.
//!
//! `route-guide-client --port 50051`

use ringrpc_examples::Flags;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    ringrpc_examples::route_guide_client::exercise(Flags::parse().addr()).await
}
