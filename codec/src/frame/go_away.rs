use bytes::{Buf, BufMut, Bytes};

use super::{require_connection, FrameHeader, Kind, StreamId};
use crate::error::{Error, Reason};

/// A GOAWAY frame (§6.8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoAway {
    /// The highest stream id the sender may have processed.
    pub last_stream_id: StreamId,
    /// Why the connection ends.
    pub reason: Reason,
    /// Opaque diagnostic data.
    pub debug: Bytes,
}

impl GoAway {
    pub(super) fn parse(head: FrameHeader, mut payload: Bytes) -> Result<GoAway, Error> {
        // "An endpoint MUST treat a GOAWAY frame with a stream identifier other than
        // 0x00 as a connection error of type PROTOCOL_ERROR."
        require_connection(&head, "GOAWAY on a stream")?;
        if payload.len() < 8 {
            return Err(Error::connection(
                Reason::FRAME_SIZE_ERROR,
                "GOAWAY shorter than 8",
            ));
        }
        let last_stream_id = StreamId::from_wire(payload.get_u32());
        let reason = Reason(payload.get_u32());
        Ok(GoAway {
            last_stream_id,
            reason,
            debug: payload,
        })
    }

    /// Writes the whole frame.
    pub fn encode(last_stream_id: StreamId, reason: Reason, debug: &[u8], dst: &mut impl BufMut) {
        FrameHeader::encode(8 + debug.len(), Kind::GoAway, 0, StreamId::ZERO, dst);
        dst.put_u32(last_stream_id.0);
        dst.put_u32(reason.0);
        dst.put_slice(debug);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame;

    #[test]
    fn round_trip() {
        let mut out = Vec::new();
        GoAway::encode(StreamId(7), Reason::ENHANCE_YOUR_CALM, b"calm", &mut out);
        let head = FrameHeader::parse(&out).unwrap();
        let frame = Frame::parse(head, Bytes::copy_from_slice(&out[9..])).unwrap();
        let expected = GoAway {
            last_stream_id: StreamId(7),
            reason: Reason::ENHANCE_YOUR_CALM,
            debug: Bytes::from_static(b"calm"),
        };
        assert_eq!(frame, Frame::GoAway(expected));
    }
}
