//! gRPC length-prefixed messages: `Compressed-Flag (1) | Message-Length (4, BE) | Message`.
//!
//! [`MessageDecoder`] turns the payloads of a stream's DATA frames into whole
//! messages. Messages that arrive inside one frame are handed out as slices of
//! that frame (no copy); only messages that straddle frames are copied, into a
//! buffer that grows with the bytes actually received (doubling, from 64 KiB,
//! never past the announced length), so a prefix announcing a large message
//! that never comes costs nothing up front.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::status;

/// Size of the prefix in front of every message: one flag byte and a big-endian `u32` length.
pub const PREFIX_LEN: usize = 5;

/// One complete gRPC message as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The sender set the compressed flag: `data` is encoded with the stream's `grpc-encoding`.
    pub compressed: bool,
    /// The message body, without the prefix.
    pub data: Bytes,
}

/// A stream's message framing is broken; the stream has to end with the mapped gRPC status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageError {
    /// The prefix announced a message longer than the receive limit.
    ///
    /// Maps to [`RESOURCE_EXHAUSTED`](status::RESOURCE_EXHAUSTED). Detected from the
    /// prefix alone, so nothing of the body has been buffered.
    TooLarge {
        /// Length announced by the prefix.
        len: u32,
        /// The limit that was in force.
        max: u32,
    },
    /// The compressed-flag byte was neither 0 nor 1. Maps to [`INTERNAL`](status::INTERNAL).
    InvalidFlag(u8),
    /// The stream ended in the middle of a message. Maps to [`INTERNAL`](status::INTERNAL).
    Truncated {
        /// Bytes known to be missing. While only part of the prefix has arrived the
        /// body length is unknown, so this counts only the rest of the prefix.
        missing: usize,
    },
}

impl MessageError {
    /// The gRPC status code the stream should be failed with.
    pub fn grpc_status(&self) -> u32 {
        match self {
            MessageError::TooLarge { .. } => status::RESOURCE_EXHAUSTED,
            MessageError::InvalidFlag(_) | MessageError::Truncated { .. } => status::INTERNAL,
        }
    }
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageError::TooLarge { len, max } => write!(
                f,
                "received message of {len} bytes exceeds the limit of {max} bytes"
            ),
            MessageError::InvalidFlag(flag) => {
                write!(f, "invalid compressed flag {flag:#04x} in message prefix")
            }
            MessageError::Truncated { missing } => write!(
                f,
                "stream ended inside a message with at least {missing} bytes missing"
            ),
        }
    }
}

impl std::error::Error for MessageError {}

/// Writes the 5-byte prefix for a message of `len` bytes.
pub fn encode_prefix(compressed: bool, len: u32, dst: &mut impl BufMut) {
    dst.put_u8(u8::from(compressed));
    dst.put_u32(len);
}

enum State {
    /// Between messages (`have == 0`) or inside a prefix split across frames.
    Prefix { buf: [u8; PREFIX_LEN], have: u8 },
    /// Prefix known, body not yet complete. `buf` is empty and unallocated until
    /// the first body byte, then grows with what arrives (see [`grow_for`]).
    Body {
        compressed: bool,
        /// The announced length: a `u32` on the wire, kept as one so that the
        /// state, which every stream record carries, stays at 40 bytes.
        len: u32,
        buf: BytesMut,
    },
    /// A framing error was seen; the stream is unusable from here on.
    Failed(MessageError),
}

impl State {
    const IDLE: State = State::Prefix {
        buf: [0; PREFIX_LEN],
        have: 0,
    };
}

/// Reassembles gRPC messages from the DATA frame payloads of one stream.
pub struct MessageDecoder {
    state: State,
}

impl Default for MessageDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MessageDecoder {
    // Hand-written so a multi-megabyte partial body is not dumped into logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("MessageDecoder");
        match &self.state {
            State::Prefix { have, .. } => d.field("prefix_bytes", have),
            State::Body {
                compressed,
                len,
                buf,
            } => d
                .field("compressed", compressed)
                .field("len", len)
                .field("received", &buf.len()),
            State::Failed(e) => d.field("failed", e),
        };
        d.finish()
    }
}

/// Validates a complete prefix, returning the compressed flag and body length.
fn parse_prefix(prefix: [u8; PREFIX_LEN], max_len: u32) -> Result<(bool, usize), MessageError> {
    let compressed = match prefix[0] {
        0 => false,
        1 => true,
        flag => return Err(MessageError::InvalidFlag(flag)),
    };
    let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]);
    if len > max_len {
        return Err(MessageError::TooLarge { len, max: max_len });
    }
    // Only a 16-bit target could fail here, and there the message could not be held anyway.
    let body_len =
        usize::try_from(len).map_err(|_| MessageError::TooLarge { len, max: max_len })?;
    Ok((compressed, body_len))
}

/// The first allocation for a message body spanning frames, and the smallest
/// growth step after it.
const BODY_GROWTH_STEP: usize = 64 * 1024;

/// Makes room in `buf` for `incoming` more bytes of a body announced as `len`.
///
/// The announced length is the peer's claim, not bytes on hand: reserving it at
/// once would let a 5-byte prefix pin `max_message_size` per stream. The buffer
/// doubles instead (so the copying stays linear in the message size), starts at
/// one step, and never exceeds `len`: memory stays within twice what was received
/// (or one step).
fn grow_for(buf: &mut BytesMut, len: usize, incoming: usize) {
    let needed = buf.len() + incoming;
    if needed <= buf.capacity() {
        return;
    }
    let capacity = needed.max(buf.len() * 2).max(BODY_GROWTH_STEP).min(len);
    let mut grown = BytesMut::with_capacity(capacity);
    grown.extend_from_slice(buf);
    *buf = grown;
}

impl MessageDecoder {
    /// A decoder positioned at the start of a message. Does not allocate.
    pub fn new() -> Self {
        MessageDecoder { state: State::IDLE }
    }

    /// Feeds the payload of one DATA frame (padding already stripped).
    ///
    /// Calls `out` for each message completed, in order. A message lying entirely
    /// inside `data` is handed out as a slice of `data` (zero copy). A message
    /// spanning frames is copied into a buffer that grows with the bytes received,
    /// after its length has been checked against `max_len`.
    ///
    /// Returns how many bytes of `data` went into a message that is still
    /// incomplete (prefix bytes included). The connection releases flow-control
    /// credit for those itself; the bytes of completed messages are released by
    /// the application.
    ///
    /// On error, messages completed earlier in `data` have already been passed to
    /// `out`, and the decoder is poisoned: every later call returns the same error.
    pub fn push(
        &mut self,
        mut data: Bytes,
        max_len: u32,
        mut out: impl FnMut(Message),
    ) -> Result<usize, MessageError> {
        let total = data.len();
        // Offset in `data` where the message that is open at return time began; a
        // message continued from an earlier frame began at 0 as far as `data` is concerned.
        let mut open_from = 0;
        loop {
            match &mut self.state {
                State::Failed(e) => return Err(*e),
                State::Body {
                    compressed,
                    len,
                    buf,
                } => {
                    let len = *len as usize;
                    if buf.is_empty() {
                        // Only the prefix arrived earlier: the body may still be whole in this frame.
                        if data.len() >= len {
                            let msg = Message {
                                compressed: *compressed,
                                data: data.split_to(len),
                            };
                            self.state = State::IDLE;
                            out(msg);
                            continue;
                        }
                        if data.is_empty() {
                            return Ok(0);
                        }
                    }
                    let take = (len - buf.len()).min(data.len());
                    grow_for(buf, len, take);
                    buf.extend_from_slice(&data[..take]);
                    data.advance(take);
                    if buf.len() < len {
                        return Ok(total - open_from);
                    }
                    let msg = Message {
                        compressed: *compressed,
                        data: std::mem::take(buf).freeze(),
                    };
                    self.state = State::IDLE;
                    out(msg);
                }
                State::Prefix { buf, have } => {
                    if data.is_empty() {
                        return Ok(if *have == 0 { 0 } else { total - open_from });
                    }
                    if *have == 0 {
                        open_from = total - data.len();
                    }
                    let prefix = if *have == 0 && data.len() >= PREFIX_LEN {
                        // Common case: the whole prefix is in this frame, skip the staging copy.
                        let mut p = [0; PREFIX_LEN];
                        p.copy_from_slice(&data[..PREFIX_LEN]);
                        data.advance(PREFIX_LEN);
                        p
                    } else {
                        let have_us = usize::from(*have);
                        let take = (PREFIX_LEN - have_us).min(data.len());
                        buf[have_us..have_us + take].copy_from_slice(&data[..take]);
                        data.advance(take);
                        *have += take as u8;
                        if usize::from(*have) < PREFIX_LEN {
                            return Ok(total - open_from);
                        }
                        *buf
                    };
                    let (compressed, len) = match parse_prefix(prefix, max_len) {
                        Ok(v) => v,
                        Err(e) => {
                            self.state = State::Failed(e);
                            return Err(e);
                        }
                    };
                    if len == 0 {
                        // Not a slice of `data`, so an empty message does not pin the frame's memory.
                        *have = 0;
                        out(Message {
                            compressed,
                            data: Bytes::new(),
                        });
                    } else if data.len() >= len {
                        *have = 0;
                        out(Message {
                            compressed,
                            data: data.split_to(len),
                        });
                    } else {
                        // An empty buffer defers the allocation: if the prefix ended this
                        // frame, the next frame may hold the whole body and be sliced instead.
                        let mut body = BytesMut::new();
                        if !data.is_empty() {
                            grow_for(&mut body, len, data.len());
                            body.extend_from_slice(&data);
                            data.clear();
                        }
                        self.state = State::Body {
                            compressed,
                            // Read from the prefix's u32: lossless.
                            len: len as u32,
                            buf: body,
                        };
                        return Ok(total - open_from);
                    }
                }
            }
        }
    }

    /// The peer ended the stream: `Err(Truncated)` if a message is partially received.
    ///
    /// A poisoned decoder reports its original error instead.
    pub fn finish(&self) -> Result<(), MessageError> {
        match &self.state {
            State::Prefix { have: 0, .. } => Ok(()),
            State::Prefix { have, .. } => Err(MessageError::Truncated {
                missing: PREFIX_LEN - usize::from(*have),
            }),
            State::Body { len, buf, .. } => Err(MessageError::Truncated {
                missing: *len as usize - buf.len(),
            }),
            State::Failed(e) => Err(*e),
        }
    }

    /// Bytes held for an incomplete message (prefix bytes plus body so far).
    pub fn buffered(&self) -> usize {
        match &self.state {
            State::Prefix { have, .. } => usize::from(*have),
            State::Body { buf, .. } => PREFIX_LEN + buf.len(),
            State::Failed(_) => 0,
        }
    }

    /// Drops the incomplete message, freeing its buffer, and returns how many bytes
    /// it held (what [`MessageDecoder::buffered`] said just before). For a stream
    /// that will read no more: the decoder is back between messages, or stays
    /// poisoned if it was.
    pub fn discard(&mut self) -> usize {
        let freed = self.buffered();
        if !matches!(self.state, State::Failed(_)) {
            self.state = State::IDLE;
        }
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(msgs: &[(bool, &[u8])]) -> Vec<u8> {
        let mut v = Vec::new();
        for (c, m) in msgs {
            encode_prefix(*c, m.len() as u32, &mut v);
            v.extend_from_slice(m);
        }
        v
    }

    fn push_all(dec: &mut MessageDecoder, chunk: &[u8]) -> (Vec<Message>, usize) {
        let mut got = Vec::new();
        let n = dec
            .push(Bytes::copy_from_slice(chunk), u32::MAX, |m| got.push(m))
            .unwrap();
        (got, n)
    }

    #[test]
    fn prefix_layout() {
        let mut v = Vec::new();
        encode_prefix(true, 0x0102_0304, &mut v);
        assert_eq!(v, [1, 1, 2, 3, 4]);
        v.clear();
        encode_prefix(false, 7, &mut v);
        assert_eq!(v, [0, 0, 0, 0, 7]);
    }

    #[test]
    fn whole_messages_in_one_frame() {
        let wire = framed(&[(false, b"abc"), (true, b""), (false, b"x")]);
        let mut dec = MessageDecoder::new();
        let (got, n) = push_all(&mut dec, &wire);
        assert_eq!(n, 0);
        assert_eq!(got.len(), 3);
        assert_eq!(&got[0].data[..], b"abc");
        assert!(got[1].compressed && got[1].data.is_empty());
        assert_eq!(&got[2].data[..], b"x");
        assert_eq!(dec.buffered(), 0);
        dec.finish().unwrap();
    }

    #[test]
    fn prefix_split_byte_by_byte() {
        let wire = framed(&[(true, b"hello")]);
        let mut dec = MessageDecoder::new();
        for (i, b) in wire.iter().enumerate() {
            let (got, n) = push_all(&mut dec, &[*b]);
            if i + 1 < wire.len() {
                assert!(got.is_empty());
                assert_eq!(n, 1);
                assert_eq!(dec.buffered(), i + 1);
                assert!(dec.finish().is_err());
            } else {
                assert_eq!(n, 0);
                assert_eq!(
                    got,
                    [Message {
                        compressed: true,
                        data: Bytes::from_static(b"hello")
                    }]
                );
            }
        }
        dec.finish().unwrap();
    }

    #[test]
    fn spanning_body_memory_follows_the_bytes_received() {
        let body: Vec<u8> = (0..1_000_000).map(|i| (i % 251) as u8).collect();
        let wire = framed(&[(false, &body)]);
        let mut dec = MessageDecoder::new();
        // The prefix alone first: no body byte yet, so nothing may be allocated.
        assert_eq!(push_all(&mut dec, &wire[..PREFIX_LEN]).1, PREFIX_LEN);
        assert!(matches!(&dec.state, State::Body { buf, .. } if buf.capacity() == 0));
        let mut reallocations = 0;
        let mut last_capacity = 0;
        for chunk in wire[PREFIX_LEN..].chunks(16_384) {
            let (got, _) = push_all(&mut dec, chunk);
            if let State::Body { buf, len, .. } = &dec.state {
                let received = buf.len();
                assert!(
                    buf.capacity() <= *len as usize,
                    "never past the announced length"
                );
                assert!(
                    buf.capacity() <= (2 * received).max(BODY_GROWTH_STEP),
                    "{} bytes reserved for {received} received",
                    buf.capacity()
                );
                reallocations += usize::from(buf.capacity() != last_capacity);
                last_capacity = buf.capacity();
            } else {
                assert_eq!(got.len(), 1);
                assert!(got[0].data == body);
            }
        }
        // Doubling from 64 KiB to 1 MB: a handful of copies, not one per frame.
        assert!(reallocations <= 6, "{reallocations} reallocations");
    }

    #[test]
    fn a_large_announced_message_reserves_only_what_arrived() {
        let mut dec = MessageDecoder::new();
        let mut prefix = Vec::new();
        encode_prefix(false, 4 * 1024 * 1024, &mut prefix);
        prefix.extend_from_slice(&[1; 100]);
        push_all(&mut dec, &prefix);
        let State::Body { buf, len, .. } = &dec.state else {
            panic!("inside the body")
        };
        assert_eq!((*len as usize, buf.len()), (4 * 1024 * 1024, 100));
        assert_eq!(buf.capacity(), BODY_GROWTH_STEP);
        // A small message announced is never over-reserved either.
        let mut dec = MessageDecoder::new();
        push_all(&mut dec, &framed(&[(false, &[2; 300])])[..50]);
        let State::Body { buf, .. } = &dec.state else {
            panic!("inside the body")
        };
        assert_eq!(buf.capacity(), 300);
    }

    #[test]
    fn body_after_a_prefix_only_frame_is_sliced() {
        let wire = Bytes::from(framed(&[(true, b"payload")]));
        let mut dec = MessageDecoder::new();
        assert_eq!(dec.push(wire.slice(..5), 100, |_| panic!()).unwrap(), 5);
        assert_eq!(dec.buffered(), PREFIX_LEN);
        let body = wire.slice(5..);
        let mut got = None;
        assert_eq!(dec.push(body.clone(), 100, |m| got = Some(m)).unwrap(), 0);
        let got = got.unwrap();
        assert_eq!(got.data.as_ptr(), body.as_ptr());
        assert!(got.compressed);
    }

    #[test]
    fn too_large_is_seen_from_the_prefix_alone() {
        let mut prefix = Vec::new();
        encode_prefix(false, 1001, &mut prefix);
        let mut dec = MessageDecoder::new();
        let err = dec
            .push(Bytes::from(prefix), 1000, |_| panic!("no message"))
            .unwrap_err();
        assert_eq!(
            err,
            MessageError::TooLarge {
                len: 1001,
                max: 1000
            }
        );
        assert_eq!(err.grpc_status(), status::RESOURCE_EXHAUSTED);
        assert_eq!(dec.buffered(), 0);
        // Poisoned: even valid input now fails the same way.
        let again = dec.push(Bytes::from(framed(&[(false, b"")])), 1000, |_| {
            panic!("no message")
        });
        assert_eq!(again, Err(err));
        assert_eq!(dec.finish(), Err(err));
    }

    #[test]
    fn limit_is_inclusive() {
        let wire = framed(&[(false, &[0; 10])]);
        let mut dec = MessageDecoder::new();
        let mut n = 0;
        dec.push(Bytes::from(wire), 10, |_| n += 1).unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn invalid_flag() {
        let mut dec = MessageDecoder::new();
        let err = dec
            .push(Bytes::from_static(&[2, 0, 0, 0, 0]), 100, |_| {})
            .unwrap_err();
        assert_eq!(err, MessageError::InvalidFlag(2));
        assert_eq!(err.grpc_status(), status::INTERNAL);
    }

    #[test]
    fn messages_before_an_error_are_delivered() {
        let mut wire = framed(&[(false, b"ok")]);
        wire.extend_from_slice(&[9, 0, 0, 0, 0]);
        let mut got = Vec::new();
        let err = MessageDecoder::new()
            .push(Bytes::from(wire), 100, |m| got.push(m))
            .unwrap_err();
        assert_eq!(err, MessageError::InvalidFlag(9));
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn truncated() {
        let mut dec = MessageDecoder::new();
        push_all(&mut dec, &[0, 0]);
        assert_eq!(dec.finish(), Err(MessageError::Truncated { missing: 3 }));
        push_all(&mut dec, &[0, 0, 10, 1, 2]);
        assert_eq!(dec.buffered(), 7);
        let err = dec.finish().unwrap_err();
        assert_eq!(err, MessageError::Truncated { missing: 8 });
        assert_eq!(err.grpc_status(), status::INTERNAL);
    }

    #[test]
    fn incomplete_count_excludes_completed_messages() {
        // 3 complete bytes of message one's tail, a whole message, then 4 bytes of the next.
        let wire = framed(&[(false, b"abcdef"), (false, b"gh"), (false, b"ijk")]);
        let mut dec = MessageDecoder::new();
        let (_, n) = push_all(&mut dec, &wire[..8]);
        assert_eq!(n, 8);
        let (got, n) = push_all(&mut dec, &wire[8..22]);
        assert_eq!(got.len(), 2);
        assert_eq!(n, 4);
        assert_eq!(dec.buffered(), 4);
        let (got, n) = push_all(&mut dec, &wire[22..]);
        assert_eq!((got.len(), n), (1, 0));
    }

    #[test]
    fn empty_push_is_a_no_op() {
        let mut dec = MessageDecoder::new();
        assert_eq!(push_all(&mut dec, &[]).1, 0);
        push_all(&mut dec, &[0, 0, 0]);
        assert_eq!(push_all(&mut dec, &[]).1, 0);
        assert_eq!(dec.buffered(), 3);
    }

    #[test]
    fn discard_drops_the_partial_message_and_reports_its_size() {
        let wire = framed(&[(false, &[7; 100]), (false, b"next")]);
        let mut dec = MessageDecoder::new();
        push_all(&mut dec, &wire[..40]);
        assert_eq!(dec.buffered(), 40);
        assert_eq!(dec.discard(), 40);
        assert_eq!(dec.buffered(), 0);
        dec.finish().unwrap();
        // Back between messages: a fresh message decodes.
        let (got, _) = push_all(&mut dec, &wire[105..]);
        assert_eq!(&got[0].data[..], b"next");

        let mut poisoned = MessageDecoder::new();
        assert!(poisoned
            .push(Bytes::from_static(&[9, 0, 0, 0, 1]), u32::MAX, |_| {})
            .is_err());
        assert_eq!(poisoned.discard(), 0);
        assert_eq!(poisoned.finish(), Err(MessageError::InvalidFlag(9)));
    }

    #[test]
    fn display_and_debug_are_terse() {
        let e = MessageError::TooLarge { len: 5, max: 4 };
        assert!(e.to_string().contains('5'));
        let mut dec = MessageDecoder::default();
        push_all(&mut dec, &framed(&[(false, &[0; 4096])])[..1000]);
        assert!(format!("{dec:?}").len() < 200);
    }
}
