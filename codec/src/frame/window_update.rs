use bytes::BufMut;

use super::{FrameHeader, Kind, StreamId};
use crate::error::{Error, Reason};

/// A WINDOW_UPDATE frame (§6.9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowUpdate {
    /// The stream, or 0 for the connection window.
    pub stream_id: StreamId,
    /// Window size increment, 1 to 2^31 - 1.
    pub increment: u32,
}

impl WindowUpdate {
    /// Length of the payload.
    pub const LEN: usize = 4;

    pub(super) fn parse(head: FrameHeader, payload: &[u8]) -> Result<WindowUpdate, Error> {
        // "A WINDOW_UPDATE frame with a length other than 4 octets MUST be treated as
        // a connection error of type FRAME_SIZE_ERROR."
        let raw: [u8; 4] = payload.try_into().map_err(|_| {
            Error::connection(Reason::FRAME_SIZE_ERROR, "WINDOW_UPDATE length is not 4")
        })?;
        let increment = u32::from_be_bytes(raw) & super::MAX_WINDOW_SIZE;
        // "A receiver MUST treat the receipt of a WINDOW_UPDATE frame with a flow-control
        // window increment of 0 as a stream error of type PROTOCOL_ERROR; errors on the
        // connection flow-control window MUST be treated as a connection error."
        if increment == 0 {
            return Err(if head.stream_id.is_zero() {
                Error::connection(Reason::PROTOCOL_ERROR, "WINDOW_UPDATE increment of 0")
            } else {
                Error::stream(head.stream_id, Reason::PROTOCOL_ERROR)
            });
        }
        Ok(WindowUpdate {
            stream_id: head.stream_id,
            increment,
        })
    }

    /// Writes the whole frame.
    pub fn encode(&self, dst: &mut impl BufMut) {
        FrameHeader::encode(Self::LEN, Kind::WindowUpdate, 0, self.stream_id, dst);
        dst.put_u32(self.increment);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame;
    use bytes::Bytes;

    #[test]
    fn zero_increment_scope_depends_on_stream() {
        let head = FrameHeader {
            len: 4,
            kind: Kind::WindowUpdate,
            flags: 0,
            stream_id: StreamId(3),
        };
        let zero = Bytes::from_static(b"\0\0\0\0");
        assert_eq!(
            Frame::parse(head, zero.clone()),
            Err(Error::stream(StreamId(3), Reason::PROTOCOL_ERROR))
        );
        let conn = FrameHeader {
            stream_id: StreamId(0),
            ..head
        };
        assert!(matches!(
            Frame::parse(conn, zero),
            Err(Error::Connection { .. })
        ));
    }

    #[test]
    fn round_trip() {
        let mut out = Vec::new();
        WindowUpdate {
            stream_id: StreamId(0),
            increment: 1 << 20,
        }
        .encode(&mut out);
        let head = FrameHeader::parse(&out).unwrap();
        let frame = Frame::parse(head, Bytes::copy_from_slice(&out[9..])).unwrap();
        assert_eq!(
            frame,
            Frame::WindowUpdate(WindowUpdate {
                stream_id: StreamId(0),
                increment: 1 << 20
            })
        );
    }
}
