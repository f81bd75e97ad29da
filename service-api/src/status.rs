//! `Status`: how a call ends.

use std::fmt;

use bytes::Bytes;

use crate::{Code, Metadata};

/// The outcome of a call: a code, a message for humans, optional rich details
/// (a serialized `google.rpc.Status`, sent as `grpc-status-details-bin`) and
/// metadata sent with it in the trailers.
///
/// Handlers return `Err(Status)` to fail a call; the engine sends it as trailers
/// (or as a Trailers-Only response when nothing was sent yet).
#[derive(Clone, PartialEq, Eq)]
pub struct Status {
    code: Code,
    message: String,
    details: Bytes,
    metadata: Metadata,
}

macro_rules! constructors {
    ($($(#[$doc:meta])* $name:ident => $code:ident,)*) => {
        $(
            $(#[$doc])*
            pub fn $name(message: impl Into<String>) -> Status {
                Status::new(Code::$code, message)
            }
        )*
    };
}

impl Status {
    /// A status with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> Status {
        Status {
            code,
            message: message.into(),
            details: Bytes::new(),
            metadata: Metadata::new(),
        }
    }

    /// A status with rich error details: `details` is a serialized `google.rpc.Status`.
    pub fn with_details(code: Code, message: impl Into<String>, details: Bytes) -> Status {
        Status {
            details,
            ..Status::new(code, message)
        }
    }

    constructors! {
        /// [`Code::Ok`]: success.
        ok => Ok,
        /// [`Code::Cancelled`].
        cancelled => Cancelled,
        /// [`Code::Unknown`].
        unknown => Unknown,
        /// [`Code::InvalidArgument`].
        invalid_argument => InvalidArgument,
        /// [`Code::DeadlineExceeded`].
        deadline_exceeded => DeadlineExceeded,
        /// [`Code::NotFound`].
        not_found => NotFound,
        /// [`Code::AlreadyExists`].
        already_exists => AlreadyExists,
        /// [`Code::PermissionDenied`].
        permission_denied => PermissionDenied,
        /// [`Code::ResourceExhausted`].
        resource_exhausted => ResourceExhausted,
        /// [`Code::FailedPrecondition`].
        failed_precondition => FailedPrecondition,
        /// [`Code::Aborted`].
        aborted => Aborted,
        /// [`Code::OutOfRange`].
        out_of_range => OutOfRange,
        /// [`Code::Unimplemented`].
        unimplemented => Unimplemented,
        /// [`Code::Internal`].
        internal => Internal,
        /// [`Code::Unavailable`].
        unavailable => Unavailable,
        /// [`Code::DataLoss`].
        data_loss => DataLoss,
        /// [`Code::Unauthenticated`].
        unauthenticated => Unauthenticated,
    }

    /// The code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The message (plain UTF-8; percent-encoding happens on the wire).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The serialized `google.rpc.Status` details, empty when none.
    pub fn details(&self) -> &Bytes {
        &self.details
    }

    /// Metadata sent in the trailers with this status.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Mutable access to the trailer metadata.
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.metadata
    }

    /// Takes the parts apart: code, message, details, metadata.
    pub fn into_parts(self) -> (Code, String, Bytes, Metadata) {
        (self.code, self.message, self.details, self.metadata)
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Status");
        d.field("code", &self.code);
        if !self.message.is_empty() {
            d.field("message", &self.message);
        }
        if !self.details.is_empty() {
            d.field("details", &self.details);
        }
        if !self.metadata.is_empty() {
            d.field("metadata", &self.metadata);
        }
        d.finish()
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Status {}

impl From<prost::DecodeError> for Status {
    /// A request message that does not parse: INTERNAL, as gRPC's status code
    /// table lists for "error parsing request proto".
    fn from(error: prost::DecodeError) -> Status {
        Status::internal(format!("failed to decode message: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_set_their_codes() {
        assert_eq!(Status::not_found("x").code(), Code::NotFound);
        assert_eq!(Status::unauthenticated("x").code(), Code::Unauthenticated);
        let s = Status::with_details(Code::Aborted, "m", Bytes::from_static(b"\x08\x0a"));
        assert_eq!(s.details().as_ref(), b"\x08\x0a");
        assert_eq!(s.to_string(), "ABORTED: m");
    }
}
