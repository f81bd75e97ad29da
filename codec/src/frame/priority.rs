use super::{require_stream, FrameHeader, PrioritySpec, StreamId};
use crate::error::{Error, Reason};

/// A PRIORITY frame (§6.3). Validated, then ignored: RFC 9113 deprecates the
/// priority signalling of RFC 7540 and a server may disregard it (§5.3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Priority {
    /// The stream it is about (may be idle or closed).
    pub stream_id: StreamId,
    /// The priority block.
    pub spec: PrioritySpec,
}

impl Priority {
    pub(super) fn parse(head: FrameHeader, payload: &[u8]) -> Result<Priority, Error> {
        // "If a PRIORITY frame is received with a stream identifier of 0x00, the
        // recipient MUST respond with a connection error of type PROTOCOL_ERROR."
        require_stream(&head, "PRIORITY on stream 0")?;
        // "A PRIORITY frame with a length other than 5 octets MUST be treated as a
        // stream error of type FRAME_SIZE_ERROR."
        let block = payload
            .try_into()
            .map_err(|_| Error::stream(head.stream_id, Reason::FRAME_SIZE_ERROR))?;
        let spec = PrioritySpec::parse(block);
        if spec.depends_on_itself(head.stream_id) {
            return Err(Error::stream(head.stream_id, Reason::PROTOCOL_ERROR));
        }
        Ok(Priority {
            stream_id: head.stream_id,
            spec,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Frame, Kind};
    use bytes::Bytes;

    #[test]
    fn wrong_length_is_stream_frame_size_error() {
        let head = FrameHeader {
            len: 4,
            kind: Kind::Priority,
            flags: 0,
            stream_id: StreamId(3),
        };
        let err = Frame::parse(head, Bytes::from_static(b"\0\0\0\x01")).unwrap_err();
        assert_eq!(err, Error::stream(StreamId(3), Reason::FRAME_SIZE_ERROR));
    }
}
