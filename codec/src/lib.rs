//! Sans-IO HTTP/2, HPACK and gRPC message framing for the server side of gRPC.
//!
//! This crate is the whole wire protocol of a ringrpc server with no sockets, no
//! async, no clock reads and no runtime. The engine feeds it the bytes it read and
//! the time, and takes back events and the bytes to write.
//!
//! # Layout
//!
//! The module tree follows a request's path through the codec:
//!
//! - [`frame`]: the nine-byte frame header and one file per frame type (RFC 9113 §4, §6).
//! - [`hpack`]: header compression, decoder and encoder (RFC 7541).
//! - [`grpc`]: gRPC's length-prefixed messages, `grpc-timeout`, `grpc-message`
//!   percent-encoding and `-bin` metadata (gRPC PROTOCOL-HTTP2).
//! - [`server`]: the server-role connection state machine tying these together.
//!
//! # Design
//!
//! See [`server::Connection`] for the driving loop. Errors carry the HTTP/2 error
//! code they will be answered with ([`Reason`]) and whether they end a stream or the
//! whole connection.

#![deny(missing_docs)]
#![warn(unreachable_pub)]

pub mod error;
mod field;
pub mod frame;
pub mod grpc;
pub mod hpack;
pub mod server;

pub use error::Reason;
