//! The request head: validating a decoded header list against RFC 9113 §8 and gRPC's
//! PROTOCOL-HTTP2, and keeping what the engine needs as cheap `Bytes` handles.

use std::time::Duration;

use bytes::Bytes;

use crate::grpc::{metadata, status, timeout};
use crate::hpack::FieldRef;

/// What a client asked for: the validated head of a gRPC request.
///
/// Every field is a `Bytes` handle into the HPACK decoder's storage or the read
/// buffer; building a head allocates only for custom metadata. `:authority`,
/// `host`, `content-type` (checked to be gRPC's) and `user-agent` are validated
/// but not kept: nothing downstream reads them, and each kept value costs a
/// reference count per call and bytes in every move of the head.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestHead {
    /// `:path`, e.g. `/helloworld.Greeter/SayHello`.
    pub path: Bytes,
    /// `grpc-timeout`, when the client set a deadline.
    pub timeout: Option<Duration>,
    /// `grpc-encoding` of the request messages; `None` for absent or `identity`.
    pub encoding: Option<Bytes>,
    /// `grpc-accept-encoding`: the encodings the client accepts for responses.
    pub accept_encoding: Option<Bytes>,
    /// Custom metadata in arrival order. Values of `-bin` keys are base64-decoded.
    pub metadata: Vec<(Bytes, Bytes)>,
}

impl RequestHead {
    /// The service part of a well-formed gRPC path `/service/method`, or empty.
    pub fn service(&self) -> &[u8] {
        self.split_path().map_or(&[], |(service, _)| service)
    }

    /// The method part of a well-formed gRPC path `/service/method`, or empty.
    pub fn method(&self) -> &[u8] {
        self.split_path().map_or(&[], |(_, method)| method)
    }

    fn split_path(&self) -> Option<(&[u8], &[u8])> {
        let rest = self.path.strip_prefix(b"/")?;
        let slash = rest.iter().position(|&b| b == b'/')?;
        Some((&rest[..slash], &rest[slash + 1..]))
    }
}

/// How a header block ended up, decided after the whole block was decoded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A valid gRPC request.
    Accept,
    /// Malformed as HTTP/2 (§8.1.1): stream error PROTOCOL_ERROR.
    Malformed,
    /// Valid HTTP/2 but not something a gRPC server answers with status 200: answer
    /// with this HTTP status (405 method, 415 content type).
    HttpStatus(u16),
    /// A gRPC request we answer at once with this status (Trailers-Only).
    GrpcStatus(u32, &'static str),
}

/// Folds decoded fields into a [`RequestHead`], checking each as it comes, and keeps
/// counting the list size after the limit is crossed so the HPACK decoder can finish
/// the block (the dynamic table must stay in sync even for a rejected request).
pub(crate) struct HeadBuilder {
    head: RequestHead,
    list_size: usize,
    max_list_size: usize,
    trailers: bool,
    seen_regular: bool,
    method_post: Option<bool>,
    has_scheme: bool,
    has_path: bool,
    has_authority: bool,
    /// The (last) `content-type` is gRPC's: checked as it arrives rather than
    /// kept, since nothing after the check needs it.
    grpc_content_type: bool,
    malformed: bool,
    bad_grpc: Option<&'static str>,
    content_length: Option<u64>,
}

impl HeadBuilder {
    pub(crate) fn new(max_list_size: usize, trailers: bool) -> HeadBuilder {
        HeadBuilder {
            head: RequestHead::default(),
            list_size: 0,
            max_list_size,
            trailers,
            seen_regular: false,
            method_post: None,
            has_scheme: false,
            has_path: false,
            has_authority: false,
            grpc_content_type: false,
            malformed: false,
            bad_grpc: None,
            content_length: None,
        }
    }

    pub(crate) fn field(&mut self, field: FieldRef<'_>) {
        // RFC 9113 §6.5.2: "the uncompressed size of field lists ... the length of
        // the name and value in octets plus an overhead of 32 octets for each field".
        self.list_size += field.name.len() + field.value.len() + 32;
        if self.malformed || self.list_size > self.max_list_size {
            return;
        }
        if !field.known_valid && !crate::field::is_valid(field.name, field.value) {
            self.malformed = true;
            return;
        }
        if field.name.first() == Some(&b':') {
            self.pseudo(field);
        } else {
            self.seen_regular = true;
            self.regular(field);
        }
    }

    fn pseudo(&mut self, field: FieldRef<'_>) {
        // §8.3: pseudo-header fields MUST come before regular fields, MUST NOT repeat,
        // MUST NOT appear in trailers, and only the defined ones are allowed.
        if self.seen_regular || self.trailers {
            self.malformed = true;
            return;
        }
        let seen = match &field.name[..] {
            b":method" => {
                let seen = self.method_post.is_some();
                self.method_post = Some(&field.value[..] == b"POST");
                seen
            }
            b":scheme" => std::mem::replace(&mut self.has_scheme, true),
            b":path" => {
                // "This pseudo-header field MUST NOT be empty for "http" or "https" URIs."
                if field.value.is_empty() {
                    self.malformed = true;
                }
                self.head.path = field.value.clone();
                std::mem::replace(&mut self.has_path, true)
            }
            b":authority" => std::mem::replace(&mut self.has_authority, true),
            _ => true,
        };
        if seen {
            self.malformed = true;
        }
    }

    fn regular(&mut self, field: FieldRef<'_>) {
        match &field.name[..] {
            // §8.2.2: connection-specific fields make a message malformed; `te` may
            // only carry "trailers".
            b"connection" | b"keep-alive" | b"proxy-connection" | b"transfer-encoding"
            | b"upgrade" => self.malformed = true,
            b"te" => {
                if &field.value[..] != b"trailers" {
                    self.malformed = true;
                }
            }
            b"content-length" => match (parse_content_length(field.value), self.content_length) {
                (Some(len), None) => self.content_length = Some(len),
                _ => self.malformed = true,
            },
            _ if self.trailers => {}
            b"content-type" => self.grpc_content_type = is_grpc_content_type(field.value),
            b"grpc-timeout" => match timeout::parse(field.value) {
                Ok(t) => self.head.timeout = Some(t),
                Err(_) => self.bad_grpc = Some("malformed grpc-timeout"),
            },
            b"grpc-encoding" => {
                self.head.encoding = (&field.value[..] != b"identity").then(|| field.value.clone());
            }
            b"grpc-accept-encoding" => self.head.accept_encoding = Some(field.value.clone()),
            // `host`, `user-agent`: HTTP/2 fields gRPC does not read, and not
            // custom metadata either; the engine has no use for them per call.
            b"host" | b"user-agent" => {}
            name if metadata::is_binary_key(name) => match metadata::decode_binary(field.value) {
                Ok(value) => self
                    .head
                    .metadata
                    .push((field.name.clone(), Bytes::from(value))),
                Err(_) => self.bad_grpc = Some("malformed base64 in binary metadata"),
            },
            _ => self
                .head
                .metadata
                .push((field.name.clone(), field.value.clone())),
        }
    }

    /// The size the list had, for limits checked by the caller.
    pub(crate) fn over_limit(&self) -> bool {
        self.list_size > self.max_list_size
    }

    /// The declared `content-length`, which DATA frames must add up to (§8.1.1).
    pub(crate) fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// Whether trailers were well-formed.
    pub(crate) fn trailers_verdict(&self) -> Verdict {
        if self.malformed {
            Verdict::Malformed
        } else if self.over_limit() {
            Verdict::GrpcStatus(status::RESOURCE_EXHAUSTED, "header list too large")
        } else {
            Verdict::Accept
        }
    }

    /// Decides what to do with a request head.
    pub(crate) fn finish(self) -> (Verdict, RequestHead) {
        let verdict = if self.malformed {
            Verdict::Malformed
        } else if self.over_limit() {
            Verdict::GrpcStatus(status::RESOURCE_EXHAUSTED, "header list too large")
        } else if self.method_post.is_none() || !self.has_scheme || !self.has_path {
            // §8.3.1: all HTTP/2 requests MUST include exactly one valid value for the
            // ":method", ":scheme", and ":path" pseudo-header fields (CONNECT aside,
            // which a gRPC server does not offer).
            Verdict::Malformed
        } else if self.method_post == Some(false) {
            Verdict::HttpStatus(405)
        } else if !self.grpc_content_type {
            Verdict::HttpStatus(415)
        } else if let Some(why) = self.bad_grpc {
            Verdict::GrpcStatus(status::INTERNAL, why)
        } else {
            Verdict::Accept
        };
        (verdict, self.head)
    }
}

/// `application/grpc`, optionally followed by `+subtype` or `;parameters`.
fn is_grpc_content_type(value: &[u8]) -> bool {
    match value.strip_prefix(b"application/grpc") {
        Some(rest) => rest.is_empty() || rest[0] == b'+' || rest[0] == b';',
        None => false,
    }
}

/// A `content-length` value: ASCII digits only (RFC 9110 §8.6: `1*DIGIT`),
/// within a `u64`. Matched directly: going through `str` would check UTF-8
/// first, on every request that carries one.
fn parse_content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field<'a>(name: &'a Bytes, value: &'a Bytes) -> FieldRef<'a> {
        FieldRef {
            name,
            value,
            sensitive: false,
            known_valid: false,
        }
    }

    fn build(fields: &[(&'static str, &'static str)]) -> (Verdict, RequestHead) {
        let mut b = HeadBuilder::new(16 * 1024, false);
        for (n, v) in fields {
            b.field(field(
                &Bytes::from_static(n.as_bytes()),
                &Bytes::from_static(v.as_bytes()),
            ));
        }
        b.finish()
    }

    const GOOD: [(&str, &str); 5] = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/pkg.Svc/Do"),
        (":authority", "localhost"),
        ("content-type", "application/grpc+proto"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> (Verdict, RequestHead) {
        let mut all = GOOD.to_vec();
        all.extend_from_slice(extra);
        build(&all)
    }

    #[test]
    fn content_length_is_digits_within_a_u64() {
        assert_eq!(parse_content_length(b"0"), Some(0));
        assert_eq!(parse_content_length(b"1234"), Some(1234));
        assert_eq!(
            parse_content_length(b"18446744073709551615"),
            Some(u64::MAX)
        );
        for bad in [
            &b""[..],
            b"18446744073709551616",
            b"+5",
            b"-1",
            b" 5",
            b"5 ",
            b"0x10",
            b"\xd9\xa5",
        ] {
            assert_eq!(parse_content_length(bad), None, "{:?}", bad);
        }
    }

    #[test]
    fn accepts_a_grpc_request_and_splits_the_path() {
        let (v, head) = with(&[
            ("te", "trailers"),
            ("grpc-timeout", "5S"),
            ("x-user", "a"),
            ("x-id-bin", "AAE"),
        ]);
        assert_eq!(v, Verdict::Accept);
        assert_eq!(head.service(), b"pkg.Svc");
        assert_eq!(head.method(), b"Do");
        assert_eq!(head.timeout, Some(Duration::from_secs(5)));
        assert_eq!(
            head.metadata[0],
            (Bytes::from_static(b"x-user"), Bytes::from_static(b"a"))
        );
        assert_eq!(&head.metadata[1].1[..], &[0, 1]);
    }

    #[test]
    fn http_level_violations_are_malformed() {
        assert_eq!(with(&[("te", "gzip")]).0, Verdict::Malformed);
        assert_eq!(with(&[("connection", "close")]).0, Verdict::Malformed);
        assert_eq!(with(&[("X-Upper", "a")]).0, Verdict::Malformed);
        assert_eq!(with(&[(":path", "/again")]).0, Verdict::Malformed);
        assert_eq!(with(&[("x-bad", " leading space")]).0, Verdict::Malformed);
        assert_eq!(
            build(&[
                (":method", "POST"),
                (":path", "/a/b"),
                ("content-type", "application/grpc")
            ])
            .0,
            Verdict::Malformed
        );
        assert_eq!(
            build(&[("content-type", "application/grpc"), (":method", "POST")]).0,
            Verdict::Malformed
        );
        assert_eq!(with(&[(":protocol", "websocket")]).0, Verdict::Malformed);
    }

    #[test]
    fn grpc_level_answers() {
        let mut get = GOOD;
        get[0] = (":method", "GET");
        assert_eq!(build(&get).0, Verdict::HttpStatus(405));
        let mut json = GOOD;
        json[4] = ("content-type", "application/json");
        assert_eq!(build(&json).0, Verdict::HttpStatus(415));
        let mut grpcish = GOOD;
        grpcish[4] = ("content-type", "application/grpcx");
        assert_eq!(build(&grpcish).0, Verdict::HttpStatus(415));
        assert!(matches!(
            with(&[("grpc-timeout", "123456789S")]).0,
            Verdict::GrpcStatus(status::INTERNAL, _)
        ));
        assert!(matches!(
            with(&[("x-bin", "!!!")]).0,
            Verdict::GrpcStatus(status::INTERNAL, _)
        ));
    }

    #[test]
    fn header_list_size_counts_32_per_field() {
        let mut b = HeadBuilder::new(
            GOOD.iter().map(|(n, v)| n.len() + v.len() + 32).sum(),
            false,
        );
        for (n, v) in GOOD {
            b.field(field(
                &Bytes::from_static(n.as_bytes()),
                &Bytes::from_static(v.as_bytes()),
            ));
        }
        assert!(!b.over_limit());
        b.field(field(&Bytes::from_static(b"a"), &Bytes::new()));
        assert!(b.over_limit());
        assert!(matches!(
            b.finish().0,
            Verdict::GrpcStatus(status::RESOURCE_EXHAUSTED, _)
        ));
    }
}
