//! gRPC's own layer on top of HTTP/2 (gRPC PROTOCOL-HTTP2).
//!
//! Everything here is stateless except [`MessageDecoder`], which only has to
//! remember where it is inside the current message because DATA frame boundaries
//! have no relation to message boundaries.
//!
//! - [`message`]: the 5-byte length prefix and reassembly of messages from DATA payloads.
//! - [`timeout`]: the `grpc-timeout` header.
//! - [`percent`]: the percent-encoding of `grpc-message`.
//! - [`metadata`]: custom metadata keys and values, base64 for `-bin` keys.
//! - [`status`]: the numeric status codes the codec produces itself.

pub mod message;
pub mod metadata;
pub mod percent;
pub mod status;
pub mod timeout;

pub use message::{encode_prefix, Message, MessageDecoder, MessageError, PREFIX_LEN};
