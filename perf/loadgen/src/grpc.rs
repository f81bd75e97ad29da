//! gRPC over h2 on the client side: request heads and bodies built once per
//! run, a scanner that checks response messages as they stream in, and the
//! outcome of a call.
//!
//! Messages are encoded by hand: the load generator sends a handful of fixed
//! messages, and checking replies needs only their length and first bytes, so
//! the client does no protobuf decoding per message.

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};

/// Length of the gRPC message prefix: compressed flag and 32-bit big-endian length.
pub const PREFIX_LEN: usize = 5;

/// How many leading bytes of each response message the scanner compares with
/// the expected message: the protobuf tags and lengths, and some payload.
/// Comparing whole payloads would make the client pay a `memcmp` per byte.
pub const CHECKED_PREFIX: usize = 32;

/// Path of `helloworld.Greeter/SayHello`.
pub const SAY_HELLO: &str = "/helloworld.Greeter/SayHello";
/// Path of `ringrpc.bench.Bench/StreamDown`.
pub const STREAM_DOWN: &str = "/ringrpc.bench.Bench/StreamDown";
/// Path of `ringrpc.bench.Bench/PingPong`.
pub const PING_PONG: &str = "/ringrpc.bench.Bench/PingPong";
/// Path of `ringrpc.bench.Bench/StreamUp`.
pub const STREAM_UP: &str = "/ringrpc.bench.Bench/StreamUp";

/// Appends `value` as a protobuf varint.
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads a protobuf varint from the front of `input`, advancing it.
fn take_varint(input: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first()?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

/// Appends a length-delimited field (`bytes` or `string`) with number `field`.
fn put_bytes_field(out: &mut Vec<u8>, field: u32, value: &[u8]) {
    if value.is_empty() {
        // proto3 leaves default values out.
        return;
    }
    put_varint(out, u64::from(field << 3 | 2));
    put_varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

/// `helloworld.HelloRequest { name }`.
pub fn hello_request(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    put_bytes_field(&mut out, 1, name.as_bytes());
    out
}

/// `helloworld.HelloReply` the servers answer `name` with: "Hello {name}!".
pub fn hello_reply(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    put_bytes_field(&mut out, 1, format!("Hello {name}!").as_bytes());
    out
}

/// `ringrpc.bench.Chunk` with `payload_len` zero bytes of payload, the payload
/// the servers send in StreamDown.
pub fn chunk(payload_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_len + 11);
    if payload_len > 0 {
        put_varint(&mut out, 1 << 3 | 2);
        put_varint(&mut out, payload_len as u64);
        out.resize(out.len() + payload_len, 0);
    }
    out
}

/// `ringrpc.bench.StreamDownRequest { message_size, count }`.
pub fn stream_down_request(message_size: u32, count: u64) -> Vec<u8> {
    let mut out = Vec::new();
    if message_size != 0 {
        put_varint(&mut out, 1 << 3);
        put_varint(&mut out, u64::from(message_size));
    }
    if count != 0 {
        put_varint(&mut out, 2 << 3);
        put_varint(&mut out, count);
    }
    out
}

/// A decoded `ringrpc.bench.UpSummary`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpSummary {
    /// Payload bytes the server received.
    pub bytes: u64,
    /// Messages the server received.
    pub messages: u64,
}

impl UpSummary {
    /// Decodes the message; `None` when it is malformed.
    pub fn decode(mut input: &[u8]) -> Option<UpSummary> {
        let mut summary = UpSummary::default();
        while !input.is_empty() {
            let key = take_varint(&mut input)?;
            if key & 7 != 0 {
                return None;
            }
            let value = take_varint(&mut input)?;
            match key >> 3 {
                1 => summary.bytes = value,
                2 => summary.messages = value,
                _ => {}
            }
        }
        Some(summary)
    }
}

/// `message` with its gRPC prefix (uncompressed), ready to send as DATA.
pub fn framed(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(PREFIX_LEN + message.len());
    out.extend_from_slice(&[0]);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out.freeze()
}

/// The request head of one method, built once per run. Each call clones it:
/// the URI shares its bytes, the header map costs two small allocations.
#[derive(Debug, Clone)]
pub struct RequestHead {
    uri: Uri,
    headers: HeaderMap,
}

impl RequestHead {
    /// POST `path` on `authority` (`host:port`) over plain-text HTTP/2.
    pub fn new(authority: &str, path: &str) -> Result<RequestHead, http::Error> {
        let uri = Uri::builder()
            .scheme("http")
            .authority(authority)
            .path_and_query(path)
            .build()?;
        let mut headers = HeaderMap::with_capacity(2);
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
        Ok(RequestHead { uri, headers })
    }

    /// A fresh request with this head.
    pub fn request(&self) -> Request<()> {
        let mut request = Request::new(());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// Why a call did not succeed.
#[derive(Debug)]
pub enum CallError {
    /// The TCP connection could not be opened.
    Connect(std::io::Error),
    /// The connection failed (I/O error, GOAWAY, protocol error): no further
    /// call on it can succeed.
    Connection(h2::Error),
    /// The stream was reset, by the server or by h2, with this HTTP/2 code.
    Reset(h2::Reason),
    /// The response's `:status` was not 200.
    HttpStatus(StatusCode),
    /// The call ended with this non-OK `grpc-status` and `grpc-message`.
    Status {
        /// The gRPC status code.
        code: u32,
        /// The `grpc-message`, as received (percent-encoded).
        message: String,
    },
    /// The response ended without a `grpc-status`.
    MissingStatus,
    /// A response message was not the one expected.
    Message(ScanError),
    /// The call produced a different number of messages than it should.
    MessageCount {
        /// Messages received.
        got: u64,
        /// Messages expected.
        want: u64,
    },
    /// StreamUp's summary disagrees with what was sent.
    Summary {
        /// What the server reported.
        got: UpSummary,
        /// What the client sent.
        sent: UpSummary,
    },
    /// The server ended a stream that should have gone on until cancelled.
    Ended,
    /// The call did not finish in time.
    Timeout,
}

impl CallError {
    /// Whether the connection is unusable after this error.
    pub fn is_connection_error(&self) -> bool {
        matches!(self, CallError::Connect(_) | CallError::Connection(_))
    }
}

impl From<h2::Error> for CallError {
    fn from(error: h2::Error) -> CallError {
        match error.reason() {
            Some(reason) if error.is_reset() => CallError::Reset(reason),
            _ => CallError::Connection(error),
        }
    }
}

impl From<ScanError> for CallError {
    fn from(error: ScanError) -> CallError {
        CallError::Message(error)
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Connect(e) => write!(f, "connect failed: {e}"),
            CallError::Connection(e) => write!(f, "connection error: {e}"),
            CallError::Reset(reason) => write!(f, "stream reset: {reason:?}"),
            CallError::HttpStatus(status) => write!(f, "HTTP status {status}"),
            CallError::Status { code, message } => {
                write!(f, "grpc-status {code}: {message}")
            }
            CallError::MissingStatus => write!(f, "response without grpc-status"),
            CallError::Message(e) => write!(f, "unexpected response message: {e}"),
            CallError::MessageCount { got, want } => {
                write!(f, "{got} response messages, expected {want}")
            }
            CallError::Summary { got, sent } => write!(
                f,
                "server received {} bytes in {} messages, client sent {} in {}",
                got.bytes, got.messages, sent.bytes, sent.messages
            ),
            CallError::Ended => write!(f, "the server ended the stream early"),
            CallError::Timeout => write!(f, "call timed out"),
        }
    }
}

impl std::error::Error for CallError {}

/// Checks a response head: `:status` 200 and, when the head already carries
/// `grpc-status` (a trailers-only response), that status. Returns whether the
/// response is trailers-only.
pub fn check_head(head: &http::response::Parts) -> Result<bool, CallError> {
    if head.status != StatusCode::OK {
        return Err(CallError::HttpStatus(head.status));
    }
    match head.headers.get("grpc-status") {
        Some(_) => check_status(&head.headers).map(|()| true),
        None => Ok(false),
    }
}

/// Checks the `grpc-status` of trailers (or of a trailers-only head).
pub fn check_status(trailers: &HeaderMap) -> Result<(), CallError> {
    let Some(status) = trailers.get("grpc-status") else {
        return Err(CallError::MissingStatus);
    };
    if status.as_bytes() == b"0" {
        return Ok(());
    }
    let code = std::str::from_utf8(status.as_bytes())
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(u32::MAX);
    let message = trailers
        .get("grpc-message")
        .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned())
        .unwrap_or_default();
    Err(CallError::Status { code, message })
}

/// What is wrong with a response message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanError {
    /// The compressed flag was set (the client asked for no compression).
    Compressed,
    /// The message length differs from the expected one.
    Length {
        /// Length received.
        got: u32,
        /// Length expected.
        want: u32,
    },
    /// The message's first bytes differ from the expected message's, at this offset.
    Content {
        /// Offset of the first differing byte.
        offset: usize,
    },
    /// The stream ended in the middle of a message.
    Truncated,
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScanError::Compressed => write!(f, "compressed message"),
            ScanError::Length { got, want } => {
                write!(f, "message of {got} bytes, expected {want}")
            }
            ScanError::Content { offset } => write!(f, "message differs at byte {offset}"),
            ScanError::Truncated => write!(f, "stream ended inside a message"),
        }
    }
}

/// Splits a response body into gRPC messages as DATA arrives, in any
/// fragmentation, and checks each against one expected message: its length
/// and its first [`CHECKED_PREFIX`] bytes.
///
/// Cost: a few branches per DATA chunk plus a comparison of at most
/// `CHECKED_PREFIX` bytes per message; nothing is copied or allocated.
#[derive(Debug, Clone)]
pub struct MessageScanner {
    expected: Bytes,
    prefix: [u8; PREFIX_LEN],
    prefix_filled: usize,
    /// Bytes of the current message received so far.
    offset: usize,
    /// Bytes of the current message still to come.
    remaining: usize,
}

impl MessageScanner {
    /// A scanner expecting every message to equal `expected` (unprefixed).
    pub fn new(expected: impl Into<Bytes>) -> MessageScanner {
        MessageScanner {
            expected: expected.into(),
            prefix: [0; PREFIX_LEN],
            prefix_filled: 0,
            offset: 0,
            remaining: 0,
        }
    }

    /// Consumes one DATA chunk; returns how many messages it completed.
    pub fn push(&mut self, mut data: &[u8]) -> Result<u64, ScanError> {
        let mut completed = 0;
        while !data.is_empty() {
            if self.prefix_filled < PREFIX_LEN {
                let take = (PREFIX_LEN - self.prefix_filled).min(data.len());
                self.prefix[self.prefix_filled..self.prefix_filled + take]
                    .copy_from_slice(&data[..take]);
                self.prefix_filled += take;
                data = &data[take..];
                if self.prefix_filled < PREFIX_LEN {
                    break;
                }
                if self.prefix[0] != 0 {
                    return Err(ScanError::Compressed);
                }
                let length = u32::from_be_bytes([
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ]);
                if length as usize != self.expected.len() {
                    return Err(ScanError::Length {
                        got: length,
                        want: self.expected.len() as u32,
                    });
                }
                self.offset = 0;
                self.remaining = length as usize;
                if self.remaining == 0 {
                    self.prefix_filled = 0;
                    completed += 1;
                }
                continue;
            }
            let take = self.remaining.min(data.len());
            let checked_end = CHECKED_PREFIX.min(self.expected.len());
            if self.offset < checked_end {
                let n = (checked_end - self.offset).min(take);
                let want = &self.expected[self.offset..self.offset + n];
                if let Some(i) = data[..n].iter().zip(want).position(|(a, b)| a != b) {
                    return Err(ScanError::Content {
                        offset: self.offset + i,
                    });
                }
            }
            data = &data[take..];
            self.offset += take;
            self.remaining -= take;
            if self.remaining == 0 {
                self.prefix_filled = 0;
                completed += 1;
            }
        }
        Ok(completed)
    }

    /// Checks that the body ended between messages.
    pub fn finish(&self) -> Result<(), ScanError> {
        if self.prefix_filled == 0 {
            Ok(())
        } else {
            Err(ScanError::Truncated)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(messages: &[&[u8]]) -> Vec<u8> {
        messages.iter().flat_map(|m| framed(m).to_vec()).collect()
    }

    #[test]
    fn scanner_counts_messages_at_every_split() {
        let message = chunk(100);
        let whole = body(&[&message, &message, &message]);
        for split in 0..=whole.len() {
            let mut scanner = MessageScanner::new(message.clone());
            let first = scanner.push(&whole[..split]).unwrap();
            let second = scanner.push(&whole[split..]).unwrap();
            assert_eq!(first + second, 3, "split at {split}");
            scanner.finish().unwrap();
        }
        // One byte at a time.
        let mut scanner = MessageScanner::new(message.clone());
        let total: u64 = whole.iter().map(|b| scanner.push(&[*b]).unwrap()).sum();
        assert_eq!(total, 3);
    }

    #[test]
    fn scanner_rejects_wrong_messages() {
        let expected = chunk(64);
        let mut scanner = MessageScanner::new(expected.clone());
        assert_eq!(
            scanner.push(&body(&[&chunk(63)])),
            Err(ScanError::Length {
                got: chunk(63).len() as u32,
                want: expected.len() as u32
            })
        );
        let mut wrong = expected.clone();
        wrong[5] = 1;
        let mut scanner = MessageScanner::new(expected.clone());
        assert_eq!(
            scanner.push(&body(&[&wrong])),
            Err(ScanError::Content { offset: 5 })
        );
        let mut compressed = body(&[&expected]);
        compressed[0] = 1;
        let mut scanner = MessageScanner::new(expected.clone());
        assert_eq!(scanner.push(&compressed), Err(ScanError::Compressed));
        let mut scanner = MessageScanner::new(expected.clone());
        let whole = body(&[&expected]);
        assert_eq!(scanner.push(&whole[..whole.len() - 1]), Ok(0));
        assert_eq!(scanner.finish(), Err(ScanError::Truncated));
    }

    #[test]
    fn scanner_takes_empty_messages() {
        let mut scanner = MessageScanner::new(Vec::new());
        assert_eq!(scanner.push(&body(&[&[], &[]])), Ok(2));
    }

    #[test]
    fn messages_encode_as_protobuf() {
        assert_eq!(hello_request("world"), b"\x0a\x05world");
        assert_eq!(hello_reply("world"), b"\x0a\x0cHello world!");
        let c = chunk(300);
        assert_eq!(&c[..3], &[0x0a, 0xac, 0x02]);
        assert_eq!(c.len(), 303);
        assert!(chunk(0).is_empty());
        assert_eq!(stream_down_request(1024, 0), vec![0x08, 0x80, 0x08]);
        assert_eq!(stream_down_request(1, 2), vec![0x08, 1, 0x10, 2]);
        assert_eq!(
            UpSummary::decode(&[0x08, 0xac, 0x02, 0x10, 3]),
            Some(UpSummary {
                bytes: 300,
                messages: 3
            })
        );
        assert_eq!(UpSummary::decode(&[]), Some(UpSummary::default()));
        assert_eq!(UpSummary::decode(&[0x08]), None);
        assert_eq!(&framed(b"ab")[..], &[0, 0, 0, 0, 2, b'a', b'b']);
    }
}
