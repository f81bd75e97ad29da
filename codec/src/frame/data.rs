use bytes::{BufMut, Bytes};

use super::{flags, require_stream, strip_padding, FrameHeader, Kind, StreamId};
use crate::error::Error;

/// A DATA frame (§6.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Data {
    /// The stream it belongs to (never 0).
    pub stream_id: StreamId,
    /// The payload with padding removed.
    pub payload: Bytes,
    /// The whole frame payload length, padding included: what flow control counts (§6.9).
    pub flow_len: u32,
    /// END_STREAM flag.
    pub end_stream: bool,
}

impl Data {
    pub(super) fn parse(head: FrameHeader, payload: Bytes) -> Result<Data, Error> {
        // "If a DATA frame is received whose Stream Identifier field is 0x00, the
        // recipient MUST respond with a connection error of type PROTOCOL_ERROR."
        require_stream(&head, "DATA on stream 0")?;
        Ok(Data {
            stream_id: head.stream_id,
            flow_len: head.len,
            payload: strip_padding(&head, payload)?,
            end_stream: head.has(flags::END_STREAM),
        })
    }

    /// Writes the header of an unpadded DATA frame whose `len` payload bytes the caller writes next.
    pub fn encode_header(stream_id: StreamId, len: usize, end_stream: bool, dst: &mut impl BufMut) {
        let flags = if end_stream { flags::END_STREAM } else { 0 };
        FrameHeader::encode(len, Kind::Data, flags, stream_id, dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Reason;
    use crate::frame::Frame;

    fn head(len: usize, flags: u8, id: u32) -> FrameHeader {
        FrameHeader {
            len: len as u32,
            kind: Kind::Data,
            flags,
            stream_id: StreamId(id),
        }
    }

    #[test]
    fn padded_data_strips_padding_but_counts_it_for_flow_control() {
        let payload = Bytes::from_static(b"\x03helloPPP");
        let frame = Frame::parse(head(9, flags::PADDED | flags::END_STREAM, 1), payload).unwrap();
        let Frame::Data(data) = frame else {
            panic!("{frame:?}")
        };
        assert_eq!(&data.payload[..], b"hello");
        assert_eq!(data.flow_len, 9);
        assert!(data.end_stream);
    }

    #[test]
    fn padding_as_long_as_payload_is_protocol_error() {
        let err =
            Frame::parse(head(4, flags::PADDED, 1), Bytes::from_static(b"\x04abc")).unwrap_err();
        assert_eq!(
            err,
            Error::connection(Reason::PROTOCOL_ERROR, "padding longer than payload")
        );
        // Exactly filling the rest is fine: an empty, fully padded frame.
        let ok = Frame::parse(head(4, flags::PADDED, 1), Bytes::from_static(b"\x03abc")).unwrap();
        assert!(matches!(ok, Frame::Data(d) if d.payload.is_empty()));
    }

    #[test]
    fn data_on_stream_zero_is_connection_error() {
        let err = Frame::parse(head(1, 0, 0), Bytes::from_static(b"x")).unwrap_err();
        assert!(matches!(
            err,
            Error::Connection {
                reason: Reason::PROTOCOL_ERROR,
                ..
            }
        ));
    }

    #[test]
    fn encode_header() {
        let mut out = Vec::new();
        Data::encode_header(StreamId(3), 5, true, &mut out);
        assert_eq!(out, [0, 0, 5, 0, 1, 0, 0, 0, 3]);
    }
}
