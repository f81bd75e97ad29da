use bytes::{Buf, BufMut, Bytes};

use super::{flags, require_stream, strip_padding, FrameHeader, Kind, StreamId};
use crate::error::{Error, Reason};

/// The priority block of a HEADERS frame (§6.2); parsed so it can be skipped and
/// checked, otherwise ignored as RFC 9113 deprecates the priority scheme (§5.3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrioritySpec {
    /// The stream this one depends on.
    pub dependency: StreamId,
    /// Exclusive flag.
    pub exclusive: bool,
    /// Weight minus one.
    pub weight: u8,
}

impl PrioritySpec {
    /// Parses the five bytes of a priority block.
    pub(super) fn parse(src: &[u8; 5]) -> PrioritySpec {
        let raw = u32::from_be_bytes([src[0], src[1], src[2], src[3]]);
        PrioritySpec {
            dependency: StreamId::from_wire(raw),
            exclusive: raw & 0x8000_0000 != 0,
            weight: src[4],
        }
    }

    /// "A stream cannot depend on itself. An endpoint MUST treat this as a stream
    /// error of type PROTOCOL_ERROR." (RFC 7540 §5.3.1.) For HEADERS the server
    /// checks this only after decoding the field block, which HPACK requires.
    pub fn depends_on_itself(&self, stream_id: StreamId) -> bool {
        self.dependency == stream_id
    }
}

/// A HEADERS frame (§6.2): the first fragment of a field block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Headers {
    /// The stream it opens or belongs to (never 0).
    pub stream_id: StreamId,
    /// The field block fragment, padding and priority removed.
    pub fragment: Bytes,
    /// END_STREAM flag.
    pub end_stream: bool,
    /// END_HEADERS flag: no CONTINUATION follows.
    pub end_headers: bool,
    /// The priority block, when the PRIORITY flag was set.
    pub priority: Option<PrioritySpec>,
}

impl Headers {
    pub(super) fn parse(head: FrameHeader, payload: Bytes) -> Result<Headers, Error> {
        require_stream(&head, "HEADERS on stream 0")?;
        let mut fragment = strip_padding(&head, payload)?;
        let priority = if head.has(flags::PRIORITY) {
            let Some(block) = fragment.get(..5) else {
                return Err(Error::connection(
                    Reason::PROTOCOL_ERROR,
                    "HEADERS too short for priority",
                ));
            };
            let spec = PrioritySpec::parse(block.try_into().expect("five bytes"));
            fragment.advance(5);
            Some(spec)
        } else {
            None
        };
        Ok(Headers {
            stream_id: head.stream_id,
            fragment,
            end_stream: head.has(flags::END_STREAM),
            end_headers: head.has(flags::END_HEADERS),
            priority,
        })
    }

    /// Writes the header of a HEADERS frame whose `len` fragment bytes the caller writes next.
    pub fn encode_header(
        stream_id: StreamId,
        len: usize,
        end_stream: bool,
        end_headers: bool,
        dst: &mut impl BufMut,
    ) {
        let mut f = 0;
        if end_stream {
            f |= flags::END_STREAM;
        }
        if end_headers {
            f |= flags::END_HEADERS;
        }
        FrameHeader::encode(len, Kind::Headers, f, stream_id, dst);
    }
}

/// A CONTINUATION frame (§6.10): a further fragment of a field block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Continuation {
    /// The stream of the HEADERS it continues.
    pub stream_id: StreamId,
    /// The fragment.
    pub fragment: Bytes,
    /// END_HEADERS flag.
    pub end_headers: bool,
}

impl Continuation {
    pub(super) fn parse(head: FrameHeader, payload: Bytes) -> Result<Continuation, Error> {
        require_stream(&head, "CONTINUATION on stream 0")?;
        Ok(Continuation {
            stream_id: head.stream_id,
            fragment: payload,
            end_headers: head.has(flags::END_HEADERS),
        })
    }

    /// Writes the header of a CONTINUATION frame whose `len` fragment bytes follow.
    pub fn encode_header(
        stream_id: StreamId,
        len: usize,
        end_headers: bool,
        dst: &mut impl BufMut,
    ) {
        let f = if end_headers { flags::END_HEADERS } else { 0 };
        FrameHeader::encode(len, Kind::Continuation, f, stream_id, dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame;

    fn head(len: usize, flags: u8, id: u32) -> FrameHeader {
        FrameHeader {
            len: len as u32,
            kind: Kind::Headers,
            flags,
            stream_id: StreamId(id),
        }
    }

    #[test]
    fn padded_headers_with_priority() {
        // pad=2, priority: exclusive, depends on 3, weight 15; fragment "ab"; padding "00".
        let payload = Bytes::from_static(b"\x02\x80\x00\x00\x03\x0fab\x00\x00");
        let flags = flags::PADDED | flags::PRIORITY | flags::END_HEADERS;
        let Frame::Headers(h) = Frame::parse(head(payload.len(), flags, 5), payload).unwrap()
        else {
            panic!()
        };
        assert_eq!(&h.fragment[..], b"ab");
        assert!(h.end_headers && !h.end_stream);
        assert_eq!(
            h.priority,
            Some(PrioritySpec {
                dependency: StreamId(3),
                exclusive: true,
                weight: 15
            })
        );
    }

    #[test]
    fn self_dependency_is_left_to_the_server_so_the_block_still_gets_decoded() {
        let payload = Bytes::from_static(b"\x00\x00\x00\x05\x0f\x82");
        let Frame::Headers(h) = Frame::parse(head(6, flags::PRIORITY, 5), payload).unwrap() else {
            panic!()
        };
        assert!(h.priority.unwrap().depends_on_itself(StreamId(5)));
        assert_eq!(&h.fragment[..], b"\x82");
    }

    #[test]
    fn padding_covering_priority_block_is_rejected() {
        let payload = Bytes::from_static(b"\x04\x00\x00\x00\x03\x0f");
        let err = Frame::parse(
            head(payload.len(), flags::PADDED | flags::PRIORITY, 5),
            payload,
        )
        .unwrap_err();
        assert!(matches!(err, Error::Connection { .. }));
    }

    #[test]
    fn continuation_on_stream_zero_is_connection_error() {
        let h = FrameHeader {
            len: 0,
            kind: Kind::Continuation,
            flags: 0,
            stream_id: StreamId(0),
        };
        assert!(matches!(
            Frame::parse(h, Bytes::new()),
            Err(Error::Connection {
                reason: Reason::PROTOCOL_ERROR,
                ..
            })
        ));
    }
}
