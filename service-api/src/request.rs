//! `Request`, `Response`, the per-call context and extensions.

use std::any::{Any, TypeId};
use std::fmt;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;

use crate::call::CallIo;
use crate::Metadata;

/// Per-call facts and signals a handler may consult: deadline, peer, cancellation.
///
/// Cancellation also drops the handler's future, so most handlers never look;
/// this is for work the handler hands elsewhere (a spawned task, a queue) that
/// should stop too.
#[derive(Clone, Default)]
pub struct CallContext {
    io: Option<Rc<dyn CallIo>>,
    deadline: Option<Instant>,
    remote_addr: Option<SocketAddr>,
    peer_certificates: Option<PeerCertificates>,
}

impl CallContext {
    pub(crate) fn new(
        io: Rc<dyn CallIo>,
        deadline: Option<Instant>,
        remote_addr: Option<SocketAddr>,
        peer_certificates: Option<PeerCertificates>,
    ) -> CallContext {
        CallContext {
            io: Some(io),
            deadline,
            remote_addr,
            peer_certificates,
        }
    }

    /// When the client gives up, if it set a deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The client's address.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.remote_addr
    }

    /// The certificate chain the client presented over TLS, DER-encoded, its
    /// own certificate first; `None` on a plaintext connection or when the
    /// client sent no certificate (a server that requires one never runs a
    /// handler without it).
    pub fn peer_certificates(&self) -> Option<&[Bytes]> {
        self.peer_certificates.as_deref()
    }

    /// Whether the call was cancelled (client reset, connection lost, deadline).
    pub fn is_cancelled(&self) -> bool {
        self.io.as_ref().is_some_and(|io| io.is_cancelled())
    }

    /// Completes when the call is cancelled; never, for a context made in a test.
    pub async fn cancelled(&self) {
        match &self.io {
            Some(io) => poll_fn(|cx| io.poll_cancelled(cx)).await,
            None => std::future::pending().await,
        }
    }
}

impl fmt::Debug for CallContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallContext")
            .field("deadline", &self.deadline)
            .field("remote_addr", &self.remote_addr)
            .field("peer_certificates", &self.peer_certificates)
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// The certificate chain a TLS client presented: DER-encoded certificates, the
/// client's own first. Every call of a connection shares one chain, so cloning
/// it is a reference-count increment, not a copy.
#[derive(Clone, PartialEq, Eq)]
pub struct PeerCertificates(Rc<[Bytes]>);

impl PeerCertificates {
    /// A chain of DER-encoded certificates, the peer's own first. Made by the
    /// engine once per connection; public for tests of interceptors.
    pub fn new(chain: impl Into<Rc<[Bytes]>>) -> PeerCertificates {
        PeerCertificates(chain.into())
    }
}

impl std::ops::Deref for PeerCertificates {
    type Target = [Bytes];

    fn deref(&self) -> &[Bytes] {
        &self.0
    }
}

impl fmt::Debug for PeerCertificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Sizes, not bytes: a chain is kilobytes of DER nobody reads in a log.
        f.debug_list()
            .entries(self.0.iter().map(|der| der.len()))
            .finish()
    }
}

/// Typed values attached to a request by interceptors or the engine. Values need
/// not be `Send`: a request never leaves its core.
///
/// A request carries a handful of these at most, so they are a list searched by
/// type: 24 bytes and nothing allocated or hashed while empty (a `HashMap`
/// would be 48 bytes, moved with every call, and seed a hasher per request).
#[derive(Default)]
pub struct Extensions {
    entries: Vec<(TypeId, Box<dyn Any>)>,
}

impl Extensions {
    /// No values (does not allocate).
    pub fn new() -> Extensions {
        Extensions::default()
    }

    fn position<T: 'static>(&self) -> Option<usize> {
        let id = TypeId::of::<T>();
        self.entries.iter().position(|(key, _)| *key == id)
    }

    /// Stores `value`, returning the previous value of its type.
    pub fn insert<T: 'static>(&mut self, value: T) -> Option<T> {
        match self.position::<T>() {
            Some(i) => {
                let old = std::mem::replace(&mut self.entries[i].1, Box::new(value));
                old.downcast().ok().map(|b| *b)
            }
            None => {
                self.entries.push((TypeId::of::<T>(), Box::new(value)));
                None
            }
        }
    }

    /// The value of type `T`.
    pub fn get<T: 'static>(&self) -> Option<&T> {
        let i = self.position::<T>()?;
        self.entries[i].1.downcast_ref()
    }

    /// The value of type `T`, mutable.
    pub fn get_mut<T: 'static>(&mut self) -> Option<&mut T> {
        let i = self.position::<T>()?;
        self.entries[i].1.downcast_mut()
    }

    /// Removes and returns the value of type `T`.
    pub fn remove<T: 'static>(&mut self) -> Option<T> {
        let i = self.position::<T>()?;
        let (_, value) = self.entries.swap_remove(i);
        value.downcast().ok().map(|b| *b)
    }
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extensions")
            .field("len", &self.entries.len())
            .finish()
    }
}

/// A request: metadata, the message (or a [`crate::Streaming`] of them), and the
/// call's context and extensions.
#[derive(Debug)]
pub struct Request<T> {
    metadata: Metadata,
    message: T,
    compressed: bool,
    context: CallContext,
    extensions: Extensions,
}

impl<T> Request<T> {
    /// A request with no metadata, for tests and direct calls of a handler.
    pub fn new(message: T) -> Request<T> {
        Request {
            metadata: Metadata::new(),
            message,
            compressed: false,
            context: CallContext::default(),
            extensions: Extensions::new(),
        }
    }

    pub(crate) fn from_parts(
        metadata: Metadata,
        message: T,
        context: CallContext,
        extensions: Extensions,
    ) -> Request<T> {
        Request {
            metadata,
            message,
            compressed: false,
            context,
            extensions,
        }
    }

    /// Custom metadata sent by the client.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Mutable metadata.
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.metadata
    }

    /// The message.
    pub fn get_ref(&self) -> &T {
        &self.message
    }

    /// The message, mutable.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.message
    }

    /// Takes the message out.
    pub fn into_inner(self) -> T {
        self.message
    }

    /// Whether the request message arrived compressed (unary and
    /// server-streaming calls; for a stream of requests, see
    /// [`crate::Streaming::message_with_info`]). It is decompressed already;
    /// this is for services that must check how a client sent it.
    pub fn compressed(&self) -> bool {
        self.compressed
    }

    pub(crate) fn set_compressed(&mut self, compressed: bool) {
        self.compressed = compressed;
    }

    /// The deadline the client set, if any.
    pub fn deadline(&self) -> Option<Instant> {
        self.context.deadline()
    }

    /// The client's address.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.context.remote_addr()
    }

    /// The certificate chain the client presented over TLS
    /// ([`CallContext::peer_certificates`]).
    pub fn peer_certificates(&self) -> Option<&[Bytes]> {
        self.context.peer_certificates()
    }

    /// Deadline, peer and cancellation of the call.
    pub fn context(&self) -> &CallContext {
        &self.context
    }

    /// Values attached by interceptors.
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// Values attached by interceptors, mutable.
    pub fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.extensions
    }
}

/// A unary or client-streaming response: metadata for the headers, the message,
/// and metadata for the trailers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response<T> {
    metadata: Metadata,
    message: T,
    trailers: Metadata,
    uncompressed: bool,
}

impl<T> Response<T> {
    /// A response carrying `message` and no metadata.
    pub fn new(message: T) -> Response<T> {
        Response {
            metadata: Metadata::new(),
            message,
            trailers: Metadata::new(),
            uncompressed: false,
        }
    }

    /// Sends this message uncompressed even when the call's responses are
    /// compressed (the response encoding is chosen per call from the server's
    /// configuration and the client's `grpc-accept-encoding`). Useful for data
    /// that does not compress, or that must not share a compression context with
    /// secrets.
    pub fn disable_compression(&mut self) {
        self.uncompressed = true;
    }

    /// Whether [`Response::disable_compression`] was called.
    pub fn compression_disabled(&self) -> bool {
        self.uncompressed
    }

    /// Metadata sent in the response headers.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Metadata sent in the response headers, mutable.
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.metadata
    }

    /// Metadata sent in the trailers.
    pub fn trailers(&self) -> &Metadata {
        &self.trailers
    }

    /// Metadata sent in the trailers, mutable.
    pub fn trailers_mut(&mut self) -> &mut Metadata {
        &mut self.trailers
    }

    /// The message.
    pub fn get_ref(&self) -> &T {
        &self.message
    }

    /// Takes the message out.
    pub fn into_inner(self) -> T {
        self.message
    }

    /// Header metadata, message, trailer metadata.
    pub fn into_parts(self) -> (Metadata, T, Metadata) {
        (self.metadata, self.message, self.trailers)
    }
}

#[cfg(test)]
mod tests {
    use super::Extensions;

    #[derive(Debug, PartialEq)]
    struct Tenant(&'static str);

    #[test]
    fn extensions_keep_one_value_per_type() {
        let mut ext = Extensions::new();
        assert_eq!(ext.get::<u32>(), None);
        assert_eq!(ext.insert(7u32), None);
        assert_eq!(ext.insert(Tenant("a")), None);
        assert_eq!(ext.insert(9u32), Some(7));
        assert_eq!(ext.get::<u32>(), Some(&9));
        *ext.get_mut::<Tenant>().unwrap() = Tenant("b");
        assert_eq!(ext.remove::<Tenant>(), Some(Tenant("b")));
        assert_eq!(ext.remove::<Tenant>(), None);
        assert_eq!(ext.get::<u32>(), Some(&9));
        assert_eq!(ext.get::<u64>(), None);
    }

    #[test]
    fn empty_extensions_are_small() {
        assert_eq!(std::mem::size_of::<Extensions>(), 24);
    }
}
