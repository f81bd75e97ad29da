//! What ringrpc users write against: [`Status`] and [`Code`], [`Metadata`],
//! [`Request`] and [`Response`], the four RPC kinds with backpressure
//! ([`Streaming`] in, [`ResponseSink`] out), the [`server::Service`] seam the
//! engine routes to, and code generation from `.proto` files (feature `codegen`).
//!
//! # Layout
//!
//! - `code`, `status`: gRPC status codes and the `Status` a call ends with.
//! - `metadata`: custom metadata, ASCII and binary (`-bin`) values kept apart.
//! - `request`: `Request`, `Response`, the per-call context and extensions.
//! - `streaming`: request streams and response sinks.
//! - [`intercept`]: interceptors, run before handlers (auth, tagging).
//! - [`call`]: the seam the engine implements for each RPC.
//! - [`server`]: the router seam and the glue generated code calls.
//! - `codegen` (feature): `.proto` → message types (prost) + a handler trait and
//!   router glue per service.
//!
//! Compression is the engine's job: request messages arrive decompressed, and
//! responses are compressed as the engine and the client agreed. Handlers see
//! how each request message arrived ([`Request::compressed`],
//! [`Streaming::message_with_info`]) and can send a single response uncompressed
//! ([`ResponseSink::send_uncompressed`], [`Response::disable_compression`]), the
//! way tonic lets a handler opt one message out.
//!
//! The wire rules (metadata keys and values, `grpc-message` percent-encoding,
//! `-bin` base64) come from `ringrpc-codec`, which has no runtime dependencies, so
//! `Status::to_trailers`/`from_trailers` and the codec agree by construction.
//!
//! # Design, and how it differs from tonic
//!
//! The nouns are tonic's, so switching is mostly renaming imports. Three
//! differences are deliberate:
//!
//! - **Handlers need not be `Send`.** Each worker core runs its own copy of every
//!   service (cloned, or built by a factory, once per worker), and a call never
//!   leaves the core that accepted its connection. Per-core state can be `Rc` and
//!   `RefCell`; nothing is locked per call.
//! - **Streaming responses are a sink.** A server-streaming or bidi handler gets a
//!   [`ResponseSink`] and `await`s `send`, which waits while the client's flow
//!   control window or the connection's outbound buffer is full. Backpressure is
//!   visible where the handler produces, not hidden in a stream the server polls.
//! - **Cancellation drops the handler.** A client reset, a lost connection or an
//!   expired deadline drops the handler's future; [`CallContext`] lets work
//!   outside it find out too.

#![deny(missing_docs)]
#![warn(unreachable_pub)]

pub mod call;
mod code;
#[cfg(feature = "codegen")]
pub mod codegen;
pub mod intercept;
mod metadata;
mod request;
pub mod server;
mod slot;
mod status;
mod streaming;

pub use call::{Call, CallHead, CallIo};
pub use code::Code;
pub use intercept::{Intercept, InterceptRequest, Interceptor};
pub use metadata::{InvalidMetadata, Metadata, MetadataValue};
pub use request::{CallContext, Extensions, PeerCertificates, Request, Response};
pub use status::Status;
pub use streaming::{MessageInfo, ResponseSink, Streaming};

/// Re-exports for generated code, so user crates need not depend on them directly.
#[doc(hidden)]
pub mod __codegen {
    pub use bytes;
    pub use prost;
}
