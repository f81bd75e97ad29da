//! `Status`: how a call ends.

use std::fmt;

use bytes::{Bytes, BytesMut};
use ringrpc_codec::grpc::{metadata as wire_metadata, percent};

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

impl Status {
    /// The trailer fields this status is sent as, in order: `grpc-status`,
    /// `grpc-message` (percent-encoded, when not empty), `grpc-status-details-bin`
    /// (base64 without padding, when there are details), then its metadata
    /// (binary values base64-encoded).
    pub fn to_trailers(&self) -> Vec<(Bytes, Bytes)> {
        let mut fields = Vec::with_capacity(3 + self.metadata.len());
        fields.push((
            Bytes::from_static(b"grpc-status"),
            Bytes::from(self.code.as_i32().to_string()),
        ));
        if !self.message.is_empty() {
            let mut encoded = BytesMut::new();
            percent::encode(&self.message, &mut encoded);
            fields.push((Bytes::from_static(b"grpc-message"), encoded.freeze()));
        }
        if !self.details.is_empty() {
            let mut encoded = BytesMut::new();
            wire_metadata::encode_binary(&self.details, &mut encoded);
            fields.push((
                Bytes::from_static(b"grpc-status-details-bin"),
                encoded.freeze(),
            ));
        }
        for (name, value) in self.metadata.clone().into_raw() {
            if wire_metadata::is_binary_key(&name) {
                let mut encoded = BytesMut::new();
                wire_metadata::encode_binary(&value, &mut encoded);
                fields.push((name, encoded.freeze()));
            } else {
                fields.push((name, value));
            }
        }
        fields
    }

    /// Reads a status from trailer fields (or a Trailers-Only header block), as a
    /// client or a proxy sees them on the wire. A missing or unparsable
    /// `grpc-status` is UNKNOWN; a malformed `grpc-message` is decoded as far as it
    /// goes (never an error); other valid custom fields become the metadata.
    pub fn from_trailers<'a>(fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Status {
        let mut code = None;
        let mut message = String::new();
        let mut details = Bytes::new();
        let mut metadata = Vec::new();
        for (name, value) in fields {
            match name {
                b"grpc-status" => code = Some(Code::from_ascii(value)),
                b"grpc-message" => message = percent::decode(value).into_owned(),
                b"grpc-status-details-bin" => {
                    details = wire_metadata::decode_binary(value)
                        .map(Bytes::from)
                        .unwrap_or_default();
                }
                _ if !wire_metadata::is_sendable_custom(name, value) => {}
                _ if wire_metadata::is_binary_key(name) => {
                    if let Ok(decoded) = wire_metadata::decode_binary(value) {
                        metadata.push((Bytes::copy_from_slice(name), Bytes::from(decoded)));
                    }
                }
                _ => metadata.push((Bytes::copy_from_slice(name), Bytes::copy_from_slice(value))),
            }
        }
        Status {
            code: code.unwrap_or(Code::Unknown),
            message,
            details,
            metadata: Metadata::from_raw(metadata),
        }
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

    #[test]
    fn every_code_round_trips_through_trailers() {
        let special =
            "\t\ntest with whitespace\r\nand Unicode BMP \u{263a} and non-BMP \u{1f608}\t\n";
        for code in Code::ALL {
            let mut status = Status::with_details(
                code,
                format!("{special} 100% {code}"),
                Bytes::from_static(b"\x08\x01\xff"),
            );
            status.metadata_mut().insert("x-retry", "later").unwrap();
            status
                .metadata_mut()
                .insert_bin("x-trace-bin", Bytes::from_static(&[0, 255, 7]))
                .unwrap();
            let fields = status.to_trailers();
            for (name, value) in &fields {
                assert!(
                    value.iter().all(|b| (0x20..0x7f).contains(b)),
                    "{name:?} is not printable ASCII"
                );
            }
            let back = Status::from_trailers(fields.iter().map(|(n, v)| (&n[..], &v[..])));
            assert_eq!(back, status);
        }
    }

    /// `google.protobuf.Any`, as in any.proto.
    #[derive(Clone, PartialEq, prost::Message)]
    struct Any {
        #[prost(string, tag = "1")]
        type_url: String,
        #[prost(bytes = "vec", tag = "2")]
        value: Vec<u8>,
    }

    /// `google.rpc.Status`, as in google/rpc/status.proto: what rich error
    /// models carry in `grpc-status-details-bin`.
    #[derive(Clone, PartialEq, prost::Message)]
    struct RpcStatus {
        #[prost(int32, tag = "1")]
        code: i32,
        #[prost(string, tag = "2")]
        message: String,
        #[prost(message, repeated, tag = "3")]
        details: Vec<Any>,
    }

    /// `google.rpc.BadRequest.FieldViolation` (error_details.proto).
    #[derive(Clone, PartialEq, prost::Message)]
    struct FieldViolation {
        #[prost(string, tag = "1")]
        field: String,
        #[prost(string, tag = "2")]
        description: String,
    }

    #[test]
    fn a_google_rpc_status_in_the_details_round_trips_through_trailers() {
        use prost::Message;
        let violation = FieldViolation {
            field: "name".into(),
            description: "must not be empty \u{263a}".into(),
        };
        let rich = RpcStatus {
            code: Code::InvalidArgument.as_i32(),
            message: "bad name".into(),
            details: vec![Any {
                type_url: "type.googleapis.com/google.rpc.BadRequest.FieldViolation".into(),
                value: violation.encode_to_vec(),
            }],
        };
        let status = Status::with_details(
            Code::InvalidArgument,
            "bad name",
            Bytes::from(rich.encode_to_vec()),
        );
        let fields = status.to_trailers();
        let back = Status::from_trailers(fields.iter().map(|(n, v)| (&n[..], &v[..])));
        assert_eq!(back.code(), Code::InvalidArgument);
        let decoded = RpcStatus::decode(back.details().clone()).unwrap();
        assert_eq!(decoded, rich);
        assert_eq!(
            FieldViolation::decode(&decoded.details[0].value[..]).unwrap(),
            violation
        );
    }

    #[test]
    fn missing_or_bad_fields_never_fail() {
        let none = Status::from_trailers([]);
        assert_eq!(none.code(), Code::Unknown);
        let bad = Status::from_trailers([
            (&b"grpc-status"[..], &b"x9"[..]),
            (b"grpc-message", b"%zz%4"),
        ]);
        assert_eq!((bad.code(), bad.message()), (Code::Unknown, "%zz%4"));
        let out_of_range = Status::from_trailers([(&b"grpc-status"[..], &b"17"[..])]);
        assert_eq!(out_of_range.code(), Code::Unknown);
    }
}
