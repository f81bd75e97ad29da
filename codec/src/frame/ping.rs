use bytes::BufMut;

use super::{flags, require_connection, FrameHeader, Kind, StreamId};
use crate::error::{Error, Reason};

/// A PING frame (§6.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ping {
    /// ACK flag: this answers one of our PINGs.
    pub ack: bool,
    /// Opaque data, echoed in the answer.
    pub payload: [u8; 8],
}

impl Ping {
    /// Length of the payload.
    pub const LEN: usize = 8;

    pub(super) fn parse(head: FrameHeader, payload: &[u8]) -> Result<Ping, Error> {
        // "If a PING frame is received with a Stream Identifier field value other
        // than 0x00, the recipient MUST respond with a connection error of type
        // PROTOCOL_ERROR."
        require_connection(&head, "PING on a stream")?;
        // "Receipt of a PING frame with a length field value other than 8 MUST be
        // treated as a connection error of type FRAME_SIZE_ERROR."
        let payload = payload
            .try_into()
            .map_err(|_| Error::connection(Reason::FRAME_SIZE_ERROR, "PING length is not 8"))?;
        Ok(Ping {
            ack: head.has(flags::ACK),
            payload,
        })
    }

    /// Writes the whole frame.
    pub fn encode(&self, dst: &mut impl BufMut) {
        let f = if self.ack { flags::ACK } else { 0 };
        FrameHeader::encode(Self::LEN, Kind::Ping, f, StreamId::ZERO, dst);
        dst.put_slice(&self.payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame;
    use bytes::Bytes;

    #[test]
    fn ping_rules() {
        let head = FrameHeader {
            len: 8,
            kind: Kind::Ping,
            flags: flags::ACK,
            stream_id: StreamId(0),
        };
        let ok = Frame::parse(head, Bytes::from_static(b"12345678")).unwrap();
        assert_eq!(
            ok,
            Frame::Ping(Ping {
                ack: true,
                payload: *b"12345678"
            })
        );
        let on_stream = FrameHeader {
            stream_id: StreamId(1),
            ..head
        };
        assert!(matches!(
            Frame::parse(on_stream, Bytes::from_static(b"12345678")),
            Err(Error::Connection {
                reason: Reason::PROTOCOL_ERROR,
                ..
            })
        ));
        let short = FrameHeader { len: 7, ..head };
        assert!(matches!(
            Frame::parse(short, Bytes::from_static(b"1234567")),
            Err(Error::Connection {
                reason: Reason::FRAME_SIZE_ERROR,
                ..
            })
        ));
    }
}
