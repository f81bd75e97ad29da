//! The seam between handlers and the engine: one [`Call`] per RPC.
//!
//! The engine implements [`CallIo`] for its streams; the glue in [`crate::server`]
//! turns a `Call` into the typed `Request`, `Streaming` and `ResponseSink` values
//! a handler sees. Nothing here knows about HTTP/2 or sockets.

use std::net::SocketAddr;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::{Extensions, Metadata, PeerCertificates, Status};

/// What a call needs from the engine. All methods take `&self`: a call's parts
/// (request stream, response sink, context) share one `Rc<dyn CallIo>`, and
/// everything runs on the core that owns the connection, so interior mutability
/// is a `RefCell`, not a lock.
pub trait CallIo {
    /// The next request message, already decompressed; `Ok(None)` once the client
    /// half-closed. Handing out a message returns its flow-control credit to the
    /// client: this is where receive backpressure is released.
    fn poll_message(&self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Status>>;

    /// Ready when one more response message may be queued: the stream's send
    /// window and the connection's outbound buffer have room.
    fn poll_send_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), Status>>;

    /// Queues the response headers with custom metadata (at most once, before the
    /// first message; without it the first message sends plain headers).
    fn send_headers(&self, metadata: Metadata) -> Result<(), Status>;

    /// Sends the response headers now unless headers or a message were already
    /// queued. Streaming calls do this when their handler first waits, because
    /// some clients (tonic among them) wait for the headers before they hand the
    /// response stream to the caller.
    fn flush_headers(&self);

    /// Queues one response message of `len` bytes, written by `encode` into the
    /// engine's send buffer (so encoding needs no allocation of its own). The
    /// engine compresses it when the call's responses are compressed.
    fn send_message(&self, len: usize, encode: &mut dyn FnMut(&mut BytesMut))
        -> Result<(), Status>;

    /// Whether the message the last `poll_message` handed out arrived compressed
    /// (its compressed flag was set; it was decompressed before being handed out).
    /// Default: false, for an implementation that never receives compressed
    /// messages.
    fn last_message_compressed(&self) -> bool {
        false
    }

    /// Like [`CallIo::send_message`], but the message goes out uncompressed even
    /// when the call's responses are compressed. Default: `send_message`, for an
    /// implementation that never compresses.
    fn send_message_uncompressed(
        &self,
        len: usize,
        encode: &mut dyn FnMut(&mut BytesMut),
    ) -> Result<(), Status> {
        self.send_message(len, encode)
    }

    /// Metadata to send with the trailers when the call ends successfully.
    fn set_trailers(&self, metadata: Metadata);

    /// Ends the call: `Ok` with trailer metadata for status OK, or the error.
    fn finish(&self, result: Result<Metadata, Status>);

    /// Ready once the call is cancelled: the client reset the stream, the
    /// connection went away, or the deadline passed.
    fn poll_cancelled(&self, cx: &mut Context<'_>) -> Poll<()>;

    /// Whether the call is cancelled.
    fn is_cancelled(&self) -> bool;
}

/// The request head as the engine hands it over.
#[derive(Debug, Default)]
pub struct CallHead {
    /// Custom request metadata.
    pub metadata: Metadata,
    /// When the client gives up (from `grpc-timeout`).
    pub deadline: Option<Instant>,
    /// The client's address.
    pub remote_addr: Option<SocketAddr>,
    /// The certificate chain the client presented over TLS, if any.
    pub peer_certificates: Option<PeerCertificates>,
    /// Values attached by interceptors or the engine.
    pub extensions: Extensions,
}

/// One RPC as the engine starts it: the head, and the handle to its stream.
pub struct Call {
    pub(crate) io: Rc<dyn CallIo>,
    pub(crate) head: CallHead,
}

impl Call {
    /// Made by the engine for each accepted request.
    pub fn new(io: Rc<dyn CallIo>, head: CallHead) -> Call {
        Call { io, head }
    }

    /// The request head.
    pub fn head(&self) -> &CallHead {
        &self.head
    }

    /// The request head, mutable (interceptors attach extensions here).
    pub fn head_mut(&mut self) -> &mut CallHead {
        &mut self.head
    }
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}
