//! Error codes and the two scopes an HTTP/2 error can have.

use std::fmt;

use crate::frame::StreamId;

/// An HTTP/2 error code (RFC 9113 §7), as carried by RST_STREAM and GOAWAY.
///
/// Kept as a `u32` newtype rather than an enum because a peer may send codes we do
/// not know, and those must be passed on unchanged (§7: unknown codes "MUST NOT
/// trigger any special behavior").
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reason(pub u32);

impl Reason {
    /// Graceful shutdown, or a stream no longer needed.
    pub const NO_ERROR: Reason = Reason(0x0);
    /// An unspecific protocol violation.
    pub const PROTOCOL_ERROR: Reason = Reason(0x1);
    /// An unexpected internal error.
    pub const INTERNAL_ERROR: Reason = Reason(0x2);
    /// The peer violated flow control.
    pub const FLOW_CONTROL_ERROR: Reason = Reason(0x3);
    /// A SETTINGS frame was not acknowledged in time.
    pub const SETTINGS_TIMEOUT: Reason = Reason(0x4);
    /// A frame arrived after the stream was half-closed.
    pub const STREAM_CLOSED: Reason = Reason(0x5);
    /// A frame had an invalid size.
    pub const FRAME_SIZE_ERROR: Reason = Reason(0x6);
    /// The stream was refused before any processing; the request is safe to retry.
    pub const REFUSED_STREAM: Reason = Reason(0x7);
    /// The stream is no longer needed.
    pub const CANCEL: Reason = Reason(0x8);
    /// The header compression context can no longer be maintained.
    pub const COMPRESSION_ERROR: Reason = Reason(0x9);
    /// A CONNECT tunnel failed.
    pub const CONNECT_ERROR: Reason = Reason(0xa);
    /// The peer behaves in a way that may be generating excessive load.
    pub const ENHANCE_YOUR_CALM: Reason = Reason(0xb);
    /// The transport does not meet minimum security requirements.
    pub const INADEQUATE_SECURITY: Reason = Reason(0xc);
    /// The peer must use HTTP/1.1 for this request.
    pub const HTTP_1_1_REQUIRED: Reason = Reason(0xd);

    /// The name the RFC gives this code, if it is one of the defined ones.
    pub fn name(self) -> Option<&'static str> {
        const NAMES: [&str; 14] = [
            "NO_ERROR",
            "PROTOCOL_ERROR",
            "INTERNAL_ERROR",
            "FLOW_CONTROL_ERROR",
            "SETTINGS_TIMEOUT",
            "STREAM_CLOSED",
            "FRAME_SIZE_ERROR",
            "REFUSED_STREAM",
            "CANCEL",
            "COMPRESSION_ERROR",
            "CONNECT_ERROR",
            "ENHANCE_YOUR_CALM",
            "INADEQUATE_SECURITY",
            "HTTP_1_1_REQUIRED",
        ];
        NAMES.get(self.0 as usize).copied()
    }
}

impl fmt::Debug for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "Reason({:#x})", self.0),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A protocol error and its scope (RFC 9113 §5.4).
///
/// A stream error ends one stream with RST_STREAM; a connection error ends the
/// connection with GOAWAY. The message is for logs and the GOAWAY debug data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Answer with RST_STREAM on this stream; the connection goes on.
    Stream {
        /// The stream to reset.
        id: StreamId,
        /// The code to send.
        reason: Reason,
    },
    /// Answer with GOAWAY and close the connection.
    Connection {
        /// The code to send.
        reason: Reason,
        /// Why, in a few words; sent as GOAWAY debug data.
        debug: &'static str,
    },
}

impl Error {
    /// A connection error.
    pub const fn connection(reason: Reason, debug: &'static str) -> Error {
        Error::Connection { reason, debug }
    }

    /// A stream error.
    pub const fn stream(id: StreamId, reason: Reason) -> Error {
        Error::Stream { id, reason }
    }

    /// The HTTP/2 code this error is answered with.
    pub fn reason(&self) -> Reason {
        match *self {
            Error::Stream { reason, .. } | Error::Connection { reason, .. } => reason,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Stream { id, reason } => write!(f, "stream error on {id:?}: {reason}"),
            Error::Connection { reason, debug } => write!(f, "connection error {reason}: {debug}"),
        }
    }
}

impl std::error::Error for Error {}

/// Who ended a stream or a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Initiator {
    /// We did (a command of the engine, or a protocol error we detected).
    Local,
    /// The peer did, with RST_STREAM or GOAWAY.
    Remote,
}
