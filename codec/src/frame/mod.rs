//! HTTP/2 frames (RFC 9113 §4 and §6): the nine-byte header and one module per type.
//!
//! Parsing takes the header and the complete payload as `Bytes` (a slice of the
//! read buffer) so DATA payloads and header block fragments stay zero-copy. Every
//! size and stream-id rule of §6 that can be checked on one frame alone is checked
//! here and answered with the scope the RFC asks for; rules that need connection
//! state (stream states, windows, CONTINUATION sequencing) live in `server`.
//!
//! Encoding writes straight into the caller's `BufMut`.

use std::fmt;

use bytes::{Buf, BufMut, Bytes};

use crate::error::{Error, Reason};

mod data;
mod go_away;
mod headers;
mod ping;
mod priority;
mod reset;
mod settings;
mod window_update;

pub use data::Data;
pub use go_away::GoAway;
pub use headers::{Continuation, Headers, PrioritySpec};
pub use ping::Ping;
pub use priority::Priority;
pub use reset::Reset;
pub use settings::{Setting, Settings};
pub use window_update::WindowUpdate;

/// Length of the frame header (§4.1).
pub const HEADER_LEN: usize = 9;

/// The initial and smallest allowed SETTINGS_MAX_FRAME_SIZE (§4.2, §6.5.2).
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;

/// The largest allowed SETTINGS_MAX_FRAME_SIZE, 2^24 - 1 (§6.5.2).
pub const MAX_MAX_FRAME_SIZE: u32 = (1 << 24) - 1;

/// The largest flow-control window, 2^31 - 1 (§6.9.1).
pub const MAX_WINDOW_SIZE: u32 = (1 << 31) - 1;

/// The initial flow-control window of every stream and of the connection (§6.9.2).
pub const DEFAULT_WINDOW_SIZE: u32 = 65_535;

/// The connection preface a client sends first (§3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Flag bits (§6). Their meaning depends on the frame type.
pub mod flags {
    /// DATA, HEADERS: the last frame the sender sends on this stream.
    pub const END_STREAM: u8 = 0x1;
    /// SETTINGS, PING: this frame acknowledges the peer's.
    pub const ACK: u8 = 0x1;
    /// HEADERS, CONTINUATION: the field block ends in this frame.
    pub const END_HEADERS: u8 = 0x4;
    /// DATA, HEADERS: a pad length byte and padding are present.
    pub const PADDED: u8 = 0x8;
    /// HEADERS: a priority block (exclusive bit, dependency, weight) is present.
    pub const PRIORITY: u8 = 0x20;
}

/// A stream identifier: 31 bits, the reserved high bit cleared (§5.1.1).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId(pub u32);

impl StreamId {
    /// Stream 0: frames about the whole connection.
    pub const ZERO: StreamId = StreamId(0);
    /// The largest possible stream id; GOAWAY with it announces a graceful shutdown.
    pub const MAX: StreamId = StreamId(MAX_WINDOW_SIZE);

    /// Reads a 32-bit field and drops the reserved bit, which receivers MUST ignore (§4.1).
    pub fn from_wire(raw: u32) -> StreamId {
        StreamId(raw & MAX_WINDOW_SIZE)
    }

    /// Stream 0 refers to the connection.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Client-initiated streams have odd ids (§5.1.1).
    pub fn is_client_initiated(self) -> bool {
        self.0 & 1 == 1
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamId({})", self.0)
    }
}

/// Frame types (§6, and §5.5 for unknown ones, which are ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// 0x0
    Data,
    /// 0x1
    Headers,
    /// 0x2
    Priority,
    /// 0x3
    Reset,
    /// 0x4
    Settings,
    /// 0x5
    PushPromise,
    /// 0x6
    Ping,
    /// 0x7
    GoAway,
    /// 0x8
    WindowUpdate,
    /// 0x9
    Continuation,
    /// Any other type: extension frames we do not implement.
    Unknown(u8),
}

impl Kind {
    /// The type byte of the wire format.
    pub fn from_u8(ty: u8) -> Kind {
        match ty {
            0 => Kind::Data,
            1 => Kind::Headers,
            2 => Kind::Priority,
            3 => Kind::Reset,
            4 => Kind::Settings,
            5 => Kind::PushPromise,
            6 => Kind::Ping,
            7 => Kind::GoAway,
            8 => Kind::WindowUpdate,
            9 => Kind::Continuation,
            other => Kind::Unknown(other),
        }
    }

    /// The type byte of the wire format.
    pub fn as_u8(self) -> u8 {
        match self {
            Kind::Data => 0,
            Kind::Headers => 1,
            Kind::Priority => 2,
            Kind::Reset => 3,
            Kind::Settings => 4,
            Kind::PushPromise => 5,
            Kind::Ping => 6,
            Kind::GoAway => 7,
            Kind::WindowUpdate => 8,
            Kind::Continuation => 9,
            Kind::Unknown(ty) => ty,
        }
    }
}

/// The nine-byte frame header (§4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload length (24 bits).
    pub len: u32,
    /// Frame type.
    pub kind: Kind,
    /// Type-specific flags.
    pub flags: u8,
    /// The stream the frame belongs to, 0 for the connection.
    pub stream_id: StreamId,
}

impl FrameHeader {
    /// Parses the header from the first nine bytes of `src`, or `None` if fewer are there.
    pub fn parse(src: &[u8]) -> Option<FrameHeader> {
        let head: &[u8; HEADER_LEN] = src.get(..HEADER_LEN)?.try_into().ok()?;
        Some(FrameHeader {
            len: u32::from_be_bytes([0, head[0], head[1], head[2]]),
            kind: Kind::from_u8(head[3]),
            flags: head[4],
            stream_id: StreamId::from_wire(u32::from_be_bytes([
                head[5], head[6], head[7], head[8],
            ])),
        })
    }

    /// Writes a header. `len` must fit in 24 bits; callers size payloads by the peer's
    /// SETTINGS_MAX_FRAME_SIZE, which cannot exceed that.
    pub fn encode(len: usize, kind: Kind, flags: u8, stream_id: StreamId, dst: &mut impl BufMut) {
        debug_assert!(len <= MAX_MAX_FRAME_SIZE as usize);
        let len = len as u32;
        dst.put_slice(&[
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            kind.as_u8(),
            flags,
        ]);
        dst.put_u32(stream_id.0);
    }

    /// Whether `flag` is set.
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag == flag
    }
}

/// A parsed frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// DATA (§6.1).
    Data(Data),
    /// HEADERS (§6.2).
    Headers(Headers),
    /// PRIORITY (§6.3): parsed for validation, otherwise ignored (§5.3.2).
    Priority(Priority),
    /// RST_STREAM (§6.4).
    Reset(Reset),
    /// SETTINGS (§6.5).
    Settings(Settings),
    /// PUSH_PROMISE (§6.6): only servers send it, so from a client it is always an error.
    PushPromise {
        /// The stream it was sent on.
        stream_id: StreamId,
    },
    /// PING (§6.7).
    Ping(Ping),
    /// GOAWAY (§6.8).
    GoAway(GoAway),
    /// WINDOW_UPDATE (§6.9).
    WindowUpdate(WindowUpdate),
    /// CONTINUATION (§6.10).
    Continuation(Continuation),
    /// An extension frame type we ignore (§5.5).
    Unknown {
        /// The type byte.
        kind: u8,
    },
}

impl Frame {
    /// Parses one frame from its header and complete payload (`payload.len() == head.len`).
    pub fn parse(head: FrameHeader, payload: Bytes) -> Result<Frame, Error> {
        debug_assert_eq!(payload.len(), head.len as usize);
        Ok(match head.kind {
            Kind::Data => Frame::Data(Data::parse(head, payload)?),
            Kind::Headers => Frame::Headers(Headers::parse(head, payload)?),
            Kind::Priority => Frame::Priority(Priority::parse(head, &payload)?),
            Kind::Reset => Frame::Reset(Reset::parse(head, &payload)?),
            Kind::Settings => Frame::Settings(Settings::parse(head, &payload)?),
            Kind::PushPromise => Frame::PushPromise {
                stream_id: head.stream_id,
            },
            Kind::Ping => Frame::Ping(Ping::parse(head, &payload)?),
            Kind::GoAway => Frame::GoAway(GoAway::parse(head, payload)?),
            Kind::WindowUpdate => Frame::WindowUpdate(WindowUpdate::parse(head, &payload)?),
            Kind::Continuation => Frame::Continuation(Continuation::parse(head, payload)?),
            Kind::Unknown(kind) => Frame::Unknown { kind },
        })
    }
}

/// Strips padding from a DATA or HEADERS payload (§6.1, §6.2).
///
/// "If the length of the padding is the length of the frame payload or greater,
/// the recipient MUST treat this as a connection error of type PROTOCOL_ERROR."
fn strip_padding(head: &FrameHeader, mut payload: Bytes) -> Result<Bytes, Error> {
    if !head.has(flags::PADDED) {
        return Ok(payload);
    }
    if payload.is_empty() {
        return Err(Error::connection(
            Reason::FRAME_SIZE_ERROR,
            "padded frame without pad length",
        ));
    }
    let pad = payload.get_u8() as usize;
    if pad > payload.len() {
        return Err(Error::connection(
            Reason::PROTOCOL_ERROR,
            "padding longer than payload",
        ));
    }
    payload.truncate(payload.len() - pad);
    Ok(payload)
}

fn require_stream(head: &FrameHeader, what: &'static str) -> Result<(), Error> {
    if head.stream_id.is_zero() {
        return Err(Error::connection(Reason::PROTOCOL_ERROR, what));
    }
    Ok(())
}

fn require_connection(head: &FrameHeader, what: &'static str) -> Result<(), Error> {
    if !head.stream_id.is_zero() {
        return Err(Error::connection(Reason::PROTOCOL_ERROR, what));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_reserved_bit_ignored() {
        let mut buf = Vec::new();
        FrameHeader::encode(0x01_02_03, Kind::Headers, 0x25, StreamId(7), &mut buf);
        assert_eq!(buf, [1, 2, 3, 1, 0x25, 0, 0, 0, 7]);
        buf[5] |= 0x80; // reserved bit set by a sloppy peer
        let head = FrameHeader::parse(&buf).unwrap();
        assert_eq!(head.len, 0x01_02_03);
        assert_eq!(head.kind, Kind::Headers);
        assert_eq!(head.stream_id, StreamId(7));
        assert!(head.has(flags::END_HEADERS | flags::END_STREAM));
        assert!(FrameHeader::parse(&buf[..8]).is_none());
    }

    #[test]
    fn unknown_type_is_kept_not_rejected() {
        assert_eq!(Kind::from_u8(0xfa), Kind::Unknown(0xfa));
        let head = FrameHeader {
            len: 3,
            kind: Kind::Unknown(0xfa),
            flags: 0xff,
            stream_id: StreamId(9),
        };
        assert_eq!(
            Frame::parse(head, Bytes::from_static(b"abc")),
            Ok(Frame::Unknown { kind: 0xfa })
        );
    }
}
