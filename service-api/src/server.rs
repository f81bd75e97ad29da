//! The router seam and the glue generated code uses to run the four RPC kinds.
//!
//! A generated `FooServer<T>` implements [`Service`]: given a method name and a
//! [`Call`], it stores in a [`CallSlot`] the future that runs the user's handler
//! through one of
//! [`unary`], [`server_streaming`], [`client_streaming`] or [`bidi_streaming`].
//! These decode the request, run the handler, encode the response and end the
//! call with the right status, so the engine only moves bytes.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;

use bytes::Bytes;
use prost::Message;

use crate::call::{Call, CallIo};
use crate::request::CallContext;
use crate::{Metadata, Request, Response, ResponseSink, Status, Streaming};

pub use crate::slot::{CallSlot, INLINE_CAPACITY};

/// A gRPC service as the engine's router sees it.
pub trait Service: 'static {
    /// Fully-qualified service name, e.g. `helloworld.Greeter`.
    fn name(&self) -> &'static str;

    /// Starts `method` for `call`: puts the future that runs it into `slot` and
    /// returns true, or returns false when the service has no such method (the
    /// engine answers UNIMPLEMENTED). The future is not `Send`: it stays on its
    /// core, in storage the engine reuses, so starting a call allocates nothing.
    fn call(&self, method: &[u8], call: Call, slot: Pin<&mut CallSlot>) -> bool;
}

fn split<T>(call: Call, message: T) -> (Rc<dyn CallIo>, Request<T>) {
    let Call { io, head } = call;
    let context = CallContext::new(
        io.clone(),
        head.deadline,
        head.remote_addr,
        head.peer_certificates,
    );
    (
        io.clone(),
        Request::from_parts(head.metadata, message, context, head.extensions),
    )
}

async fn next_message(io: &dyn CallIo) -> Result<Option<Bytes>, Status> {
    poll_fn(|cx| io.poll_message(cx)).await
}

/// Unary and server-streaming methods take exactly one request message; anything
/// else is UNIMPLEMENTED, as gRPC's status code table asks.
/// Returns the message and whether it arrived compressed.
async fn single_message<T: Message + Default>(io: &dyn CallIo) -> Result<(T, bool), Status> {
    let Some(bytes) = next_message(io).await? else {
        return Err(Status::unimplemented(
            "expected one request message, got none",
        ));
    };
    let compressed = io.last_message_compressed();
    if next_message(io).await?.is_some() {
        return Err(Status::unimplemented(
            "expected one request message, got more",
        ));
    }
    Ok((T::decode(bytes)?, compressed))
}

fn send_response<T: Message>(io: &dyn CallIo, response: Response<T>) -> Result<Metadata, Status> {
    let uncompressed = response.compression_disabled();
    let (metadata, message, trailers) = response.into_parts();
    if !metadata.is_empty() {
        io.send_headers(metadata)?;
    }
    let mut encode = |buf: &mut bytes::BytesMut| message.encode_raw(buf);
    if uncompressed {
        io.send_message_uncompressed(message.encoded_len(), &mut encode)?;
    } else {
        io.send_message(message.encoded_len(), &mut encode)?;
    }
    Ok(trailers)
}

/// Runs a unary method.
pub async fn unary<Req, Resp, F, Fut>(call: Call, handler: F)
where
    Req: Message + Default,
    Resp: Message,
    F: FnOnce(Request<Req>) -> Fut,
    Fut: Future<Output = Result<Response<Resp>, Status>>,
{
    let io = call.io.clone();
    let result = async {
        let (message, compressed) = single_message::<Req>(&*io).await?;
        let (io, mut request) = split(call, message);
        request.set_compressed(compressed);
        let response = handler(request).await?;
        send_response(&*io, response)
    }
    .await;
    io.finish(result);
}

/// Runs `future`, sending the response headers the first time it waits (see
/// [`CallIo::flush_headers`]); a handler with header metadata to send calls
/// `ResponseSink::send_metadata` before its first `await`.
async fn with_eager_headers<T>(io: &dyn CallIo, future: impl Future<Output = T>) -> T {
    let mut future = std::pin::pin!(future);
    let mut flushed = false;
    poll_fn(|cx| {
        let poll = future.as_mut().poll(cx);
        if poll.is_pending() && !flushed {
            flushed = true;
            io.flush_headers();
        }
        poll
    })
    .await
}

/// Runs a server-streaming method.
pub async fn server_streaming<Req, Resp, F, Fut>(call: Call, handler: F)
where
    Req: Message + Default,
    Resp: Message,
    F: FnOnce(Request<Req>, ResponseSink<Resp>) -> Fut,
    Fut: Future<Output = Result<(), Status>>,
{
    let io = call.io.clone();
    let result = async {
        let (message, compressed) = single_message::<Req>(&*io).await?;
        let (io, mut request) = split(call, message);
        request.set_compressed(compressed);
        with_eager_headers(&*io.clone(), handler(request, ResponseSink::new(io))).await
    }
    .await;
    io.finish(result.map(|()| Metadata::new()));
}

/// Runs a client-streaming method.
pub async fn client_streaming<Req, Resp, F, Fut>(call: Call, handler: F)
where
    Req: Message + Default,
    Resp: Message,
    F: FnOnce(Request<Streaming<Req>>) -> Fut,
    Fut: Future<Output = Result<Response<Resp>, Status>>,
{
    let io = call.io.clone();
    let stream = Streaming::new(io.clone());
    let (_, request) = split(call, stream);
    let result = async { send_response(&*io, handler(request).await?) }.await;
    io.finish(result);
}

/// Runs a bidirectional-streaming method.
pub async fn bidi_streaming<Req, Resp, F, Fut>(call: Call, handler: F)
where
    Req: Message + Default,
    Resp: Message,
    F: FnOnce(Request<Streaming<Req>>, ResponseSink<Resp>) -> Fut,
    Fut: Future<Output = Result<(), Status>>,
{
    let io = call.io.clone();
    let stream = Streaming::new(io.clone());
    let (io2, request) = split(call, stream);
    let result = with_eager_headers(&*io, handler(request, ResponseSink::new(io2))).await;
    io.finish(result.map(|()| Metadata::new()));
}
