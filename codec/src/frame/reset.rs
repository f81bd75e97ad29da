use bytes::BufMut;

use super::{require_stream, FrameHeader, Kind, StreamId};
use crate::error::{Error, Reason};

/// An RST_STREAM frame (§6.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reset {
    /// The stream to end (never 0).
    pub stream_id: StreamId,
    /// Why.
    pub reason: Reason,
}

impl Reset {
    /// Length of the payload.
    pub const LEN: usize = 4;

    pub(super) fn parse(head: FrameHeader, payload: &[u8]) -> Result<Reset, Error> {
        require_stream(&head, "RST_STREAM on stream 0")?;
        // "An RST_STREAM frame with a length other than 4 octets MUST be treated as a
        // connection error of type FRAME_SIZE_ERROR."
        let code: [u8; 4] = payload.try_into().map_err(|_| {
            Error::connection(Reason::FRAME_SIZE_ERROR, "RST_STREAM length is not 4")
        })?;
        Ok(Reset {
            stream_id: head.stream_id,
            reason: Reason(u32::from_be_bytes(code)),
        })
    }

    /// Writes the whole frame.
    pub fn encode(&self, dst: &mut impl BufMut) {
        FrameHeader::encode(Self::LEN, Kind::Reset, 0, self.stream_id, dst);
        dst.put_u32(self.reason.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame;
    use bytes::Bytes;

    #[test]
    fn round_trip_and_bad_length() {
        let mut out = Vec::new();
        Reset {
            stream_id: StreamId(1),
            reason: Reason::CANCEL,
        }
        .encode(&mut out);
        let head = FrameHeader::parse(&out).unwrap();
        let frame = Frame::parse(head, Bytes::copy_from_slice(&out[9..])).unwrap();
        assert_eq!(
            frame,
            Frame::Reset(Reset {
                stream_id: StreamId(1),
                reason: Reason::CANCEL
            })
        );
        let short = FrameHeader { len: 3, ..head };
        assert!(matches!(
            Frame::parse(short, Bytes::from_static(b"\0\0\0")),
            Err(Error::Connection {
                reason: Reason::FRAME_SIZE_ERROR,
                ..
            })
        ));
    }
}
