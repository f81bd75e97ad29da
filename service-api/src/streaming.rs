//! Streams of messages in both directions, with backpressure.

use std::future::poll_fn;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures_core::Stream;
use prost::Message;

use crate::call::CallIo;
use crate::{Metadata, Status};

/// The request messages of a client-streaming or bidirectional call, in order.
///
/// Reading is what lets the client send more: each message taken hands its
/// HTTP/2 flow-control credit back, so a handler that stops reading stops its
/// client once the stream window is full, and server memory stays bounded.
pub struct Streaming<T> {
    io: Rc<dyn CallIo>,
    done: bool,
    _message: PhantomData<fn() -> T>,
}

impl<T: Message + Default> Streaming<T> {
    pub(crate) fn new(io: Rc<dyn CallIo>) -> Streaming<T> {
        Streaming {
            io,
            done: false,
            _message: PhantomData,
        }
    }

    /// The next message, `Ok(None)` once the client finished sending.
    pub async fn message(&mut self) -> Result<Option<T>, Status> {
        poll_fn(|cx| self.poll_message(cx)).await
    }

    /// The next message with facts about how it arrived (whether it was
    /// compressed), `Ok(None)` once the client finished sending.
    pub async fn message_with_info(&mut self) -> Result<Option<(T, MessageInfo)>, Status> {
        let message = self.message().await?;
        Ok(message.map(|message| {
            let info = MessageInfo {
                compressed: self.io.last_message_compressed(),
            };
            (message, info)
        }))
    }

    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<T>, Status>> {
        if self.done {
            return Poll::Ready(Ok(None));
        }
        match self.io.poll_message(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(Some(bytes))) => {
                Poll::Ready(T::decode(bytes).map(Some).map_err(Status::from))
            }
            Poll::Ready(Ok(None)) => {
                self.done = true;
                Poll::Ready(Ok(None))
            }
            Poll::Ready(Err(status)) => {
                self.done = true;
                Poll::Ready(Err(status))
            }
        }
    }
}

impl<T: Message + Default> Stream for Streaming<T> {
    type Item = Result<T, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // `Streaming` holds no self-references, so it is `Unpin`.
        self.get_mut().poll_message(cx).map(Result::transpose)
    }
}

impl<T> std::fmt::Debug for Streaming<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streaming")
            .field("done", &self.done)
            .finish()
    }
}

/// How one request message arrived, from [`Streaming::message_with_info`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessageInfo {
    /// The message's compressed flag was set (it is decompressed already).
    pub compressed: bool,
}

/// Where a server-streaming or bidirectional handler sends its responses.
///
/// `send(msg).await` completes once the message is queued, and waits first while
/// the stream's send window or the connection's outbound buffer is full: a slow
/// client slows the handler down instead of growing server memory. Unlike
/// tonic, where a handler returns a `Stream` the server polls, the handler drives
/// sending itself, so sending and receiving in a bidi call are just two awaits
/// that may run concurrently (e.g. with `futures::join!` or `select!`).
pub struct ResponseSink<T> {
    io: Rc<dyn CallIo>,
    _message: PhantomData<fn(T)>,
}

impl<T: Message> ResponseSink<T> {
    pub(crate) fn new(io: Rc<dyn CallIo>) -> ResponseSink<T> {
        ResponseSink {
            io,
            _message: PhantomData,
        }
    }

    /// Sends response header metadata now (before the first message); without
    /// it, the first message goes out with plain headers.
    pub fn send_metadata(&mut self, metadata: Metadata) -> Result<(), Status> {
        self.io.send_headers(metadata)
    }

    /// Waits until the stream can take another message, then queues `message`.
    /// An error means the call is over (cancelled or reset): stop sending.
    pub async fn send(&mut self, message: T) -> Result<(), Status> {
        poll_fn(|cx| self.io.poll_send_ready(cx)).await?;
        self.io
            .send_message(message.encoded_len(), &mut |buf| message.encode_raw(buf))
    }

    /// Like [`ResponseSink::send`], but this message goes out uncompressed even
    /// when the call's responses are compressed: for data that does not
    /// compress, or that must not be compressed together with secrets.
    pub async fn send_uncompressed(&mut self, message: T) -> Result<(), Status> {
        poll_fn(|cx| self.io.poll_send_ready(cx)).await?;
        self.io
            .send_message_uncompressed(message.encoded_len(), &mut |buf| message.encode_raw(buf))
    }

    /// Metadata for the trailers sent when the handler returns `Ok`.
    pub fn set_trailers(&mut self, metadata: Metadata) {
        self.io.set_trailers(metadata);
    }

    /// Whether the call was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.io.is_cancelled()
    }
}

impl<T> std::fmt::Debug for ResponseSink<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseSink").finish_non_exhaustive()
    }
}
