//! Calls helloworld.Greeter/SayHello with tonic's client.
//!
//! `greeter-client --port 50051 [--name NAME] [--count N]`

use ringrpc_examples::client::helloworld::greeter_client::GreeterClient;
use ringrpc_examples::client::helloworld::HelloRequest;
use ringrpc_examples::Flags;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let flags = Flags::parse();
    let name = flags.get("--name").unwrap_or("world").to_owned();
    let count: usize = flags.get("--count").map_or(Ok(1), str::parse)?;
    let mut client = GreeterClient::connect(format!("http://{}", flags.addr())).await?;
    for _ in 0..count {
        let reply = client
            .say_hello(HelloRequest { name: name.clone() })
            .await?;
        println!("{}", reply.into_inner().message);
    }
    Ok(())
}
