//! Joins the chat room: sends each `--say TEXT` (or each line of stdin when none
//! is given) and prints every message of the room as it arrives, concurrently.
//!
//! `chat-client --port 50051 --name alice [--say hello ...] [--expect N]`
//! exits after receiving N messages when `--expect` is given.

use ringrpc_examples::client::chat::chat_client::ChatClient;
use ringrpc_examples::client::chat::ChatMessage;
use ringrpc_examples::Flags;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let flags = Flags::parse();
    let name = flags.get("--name").unwrap_or("anonymous").to_owned();
    let expect: Option<usize> = flags.get("--expect").map(str::parse).transpose()?;
    let says: Vec<String> = flags
        .rest
        .windows(2)
        .filter(|w| w[0] == "--say")
        .map(|w| w[1].clone())
        .collect();

    let (tx, rx) = mpsc::channel::<ChatMessage>(16);
    let outgoing = ReceiverStream(rx);
    let mut client = ChatClient::connect(format!("http://{}", flags.addr())).await?;
    let sender = tokio::spawn(async move {
        if says.is_empty() {
            let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if tx
                    .send(ChatMessage {
                        from: name.clone(),
                        text: line,
                    })
                    .await
                    .is_err()
                {
                    break;
                }
            }
        } else {
            for text in says {
                let _ = tx
                    .send(ChatMessage {
                        from: name.clone(),
                        text,
                    })
                    .await;
            }
            // Keep the request stream open so replies keep coming.
            std::future::pending::<()>().await;
        }
    });
    let mut incoming = client.join(outgoing).await?.into_inner();
    let mut received = 0;
    while let Some(message) = incoming.message().await? {
        println!("{}: {}", message.from, message.text);
        received += 1;
        if expect.is_some_and(|n| received >= n) {
            break;
        }
    }
    sender.abort();
    Ok(())
}

struct ReceiverStream(mpsc::Receiver<ChatMessage>);

impl futures_core::Stream for ReceiverStream {
    type Item = ChatMessage;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<ChatMessage>> {
        self.0.poll_recv(cx)
    }
}
