use bytes::BufMut;

use super::{
    flags, require_connection, FrameHeader, Kind, StreamId, MAX_MAX_FRAME_SIZE, MAX_WINDOW_SIZE,
};
use crate::error::{Error, Reason};
use crate::frame::DEFAULT_MAX_FRAME_SIZE;

/// A SETTINGS parameter identifier (§6.5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    /// 0x1 SETTINGS_HEADER_TABLE_SIZE
    HeaderTableSize,
    /// 0x2 SETTINGS_ENABLE_PUSH
    EnablePush,
    /// 0x3 SETTINGS_MAX_CONCURRENT_STREAMS
    MaxConcurrentStreams,
    /// 0x4 SETTINGS_INITIAL_WINDOW_SIZE
    InitialWindowSize,
    /// 0x5 SETTINGS_MAX_FRAME_SIZE
    MaxFrameSize,
    /// 0x6 SETTINGS_MAX_HEADER_LIST_SIZE
    MaxHeaderListSize,
}

impl Setting {
    fn from_id(id: u16) -> Option<Setting> {
        Some(match id {
            1 => Setting::HeaderTableSize,
            2 => Setting::EnablePush,
            3 => Setting::MaxConcurrentStreams,
            4 => Setting::InitialWindowSize,
            5 => Setting::MaxFrameSize,
            6 => Setting::MaxHeaderListSize,
            // "An endpoint that receives a SETTINGS frame with any unknown or
            // unsupported identifier MUST ignore that setting."
            _ => return None,
        })
    }

    fn id(self) -> u16 {
        self as u16 + 1
    }
}

/// A SETTINGS frame (§6.5). Each parameter is `None` when the frame did not carry it;
/// when a frame carries one twice, the later value wins, as processing in order implies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// ACK flag: this acknowledges our SETTINGS and carries no parameters.
    pub ack: bool,
    /// SETTINGS_HEADER_TABLE_SIZE.
    pub header_table_size: Option<u32>,
    /// SETTINGS_ENABLE_PUSH (validated; a server never pushes anyway).
    pub enable_push: Option<bool>,
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    pub max_concurrent_streams: Option<u32>,
    /// SETTINGS_INITIAL_WINDOW_SIZE.
    pub initial_window_size: Option<u32>,
    /// SETTINGS_MAX_FRAME_SIZE.
    pub max_frame_size: Option<u32>,
    /// SETTINGS_MAX_HEADER_LIST_SIZE.
    pub max_header_list_size: Option<u32>,
}

impl Settings {
    /// An acknowledgement.
    pub const ACK: Settings = Settings {
        ack: true,
        header_table_size: None,
        enable_push: None,
        max_concurrent_streams: None,
        initial_window_size: None,
        max_frame_size: None,
        max_header_list_size: None,
    };

    pub(super) fn parse(head: FrameHeader, payload: &[u8]) -> Result<Settings, Error> {
        // "If an endpoint receives a SETTINGS frame whose Stream Identifier field is
        // anything other than 0x00, the endpoint MUST respond with a connection error
        // of type PROTOCOL_ERROR."
        require_connection(&head, "SETTINGS on a stream")?;
        if head.has(flags::ACK) {
            // "Receipt of a SETTINGS frame with the ACK flag set and a length field value
            // other than 0 MUST be treated as a connection error of type FRAME_SIZE_ERROR."
            if !payload.is_empty() {
                return Err(Error::connection(
                    Reason::FRAME_SIZE_ERROR,
                    "SETTINGS ACK with payload",
                ));
            }
            return Ok(Settings::ACK);
        }
        // "A SETTINGS frame with a length other than a multiple of 6 octets MUST be
        // treated as a connection error of type FRAME_SIZE_ERROR."
        if !payload.len().is_multiple_of(6) {
            return Err(Error::connection(
                Reason::FRAME_SIZE_ERROR,
                "SETTINGS length not a multiple of 6",
            ));
        }
        let mut settings = Settings::default();
        for entry in payload.chunks_exact(6) {
            let id = u16::from_be_bytes([entry[0], entry[1]]);
            let value = u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]);
            let Some(setting) = Setting::from_id(id) else {
                continue;
            };
            settings.set(setting, value)?;
        }
        Ok(settings)
    }

    /// Sets one parameter after checking its value against §6.5.2.
    pub fn set(&mut self, setting: Setting, value: u32) -> Result<(), Error> {
        match setting {
            Setting::HeaderTableSize => self.header_table_size = Some(value),
            Setting::EnablePush => {
                // "Any value other than 0 or 1 MUST be treated as a connection error of
                // type PROTOCOL_ERROR."
                if value > 1 {
                    return Err(Error::connection(
                        Reason::PROTOCOL_ERROR,
                        "SETTINGS_ENABLE_PUSH not 0 or 1",
                    ));
                }
                self.enable_push = Some(value == 1);
            }
            Setting::MaxConcurrentStreams => self.max_concurrent_streams = Some(value),
            Setting::InitialWindowSize => {
                // "Values above the maximum flow-control window size of 2^31-1 MUST be
                // treated as a connection error of type FLOW_CONTROL_ERROR."
                if value > MAX_WINDOW_SIZE {
                    return Err(Error::connection(
                        Reason::FLOW_CONTROL_ERROR,
                        "SETTINGS_INITIAL_WINDOW_SIZE too large",
                    ));
                }
                self.initial_window_size = Some(value);
            }
            Setting::MaxFrameSize => {
                // "Values outside this range MUST be treated as a connection error of type
                // PROTOCOL_ERROR."
                if !(DEFAULT_MAX_FRAME_SIZE..=MAX_MAX_FRAME_SIZE).contains(&value) {
                    return Err(Error::connection(
                        Reason::PROTOCOL_ERROR,
                        "SETTINGS_MAX_FRAME_SIZE out of range",
                    ));
                }
                self.max_frame_size = Some(value);
            }
            Setting::MaxHeaderListSize => self.max_header_list_size = Some(value),
        }
        Ok(())
    }

    fn entries(&self) -> impl Iterator<Item = (Setting, u32)> {
        [
            (Setting::HeaderTableSize, self.header_table_size),
            (Setting::EnablePush, self.enable_push.map(u32::from)),
            (Setting::MaxConcurrentStreams, self.max_concurrent_streams),
            (Setting::InitialWindowSize, self.initial_window_size),
            (Setting::MaxFrameSize, self.max_frame_size),
            (Setting::MaxHeaderListSize, self.max_header_list_size),
        ]
        .into_iter()
        .filter_map(|(s, v)| Some((s, v?)))
    }

    /// Writes the whole frame.
    pub fn encode(&self, dst: &mut impl BufMut) {
        let f = if self.ack { flags::ACK } else { 0 };
        FrameHeader::encode(
            6 * self.entries().count(),
            Kind::Settings,
            f,
            StreamId::ZERO,
            dst,
        );
        for (setting, value) in self.entries() {
            dst.put_u16(setting.id());
            dst.put_u32(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame;
    use bytes::Bytes;

    fn parse(flags: u8, payload: &'static [u8]) -> Result<Frame, Error> {
        let head = FrameHeader {
            len: payload.len() as u32,
            kind: Kind::Settings,
            flags,
            stream_id: StreamId(0),
        };
        Frame::parse(head, Bytes::from_static(payload))
    }

    #[test]
    fn round_trip_skips_unknown_and_last_value_wins() {
        let sent = Settings {
            max_concurrent_streams: Some(100),
            initial_window_size: Some(1 << 20),
            ..Settings::default()
        };
        let mut out = Vec::new();
        sent.encode(&mut out);
        // Append an unknown id 0x99 and a second MAX_CONCURRENT_STREAMS by hand.
        out.extend_from_slice(&[0, 0x99, 0, 0, 0, 1, 0, 3, 0, 0, 0, 7]);
        let len = (out.len() - 9) as u32;
        out[2] = len as u8;
        let head = FrameHeader::parse(&out).unwrap();
        let Frame::Settings(got) = Frame::parse(head, Bytes::copy_from_slice(&out[9..])).unwrap()
        else {
            panic!()
        };
        assert_eq!(got.max_concurrent_streams, Some(7));
        assert_eq!(got.initial_window_size, Some(1 << 20));
    }

    #[test]
    fn invalid_values_have_their_codes() {
        let code = |r: Result<Frame, Error>| r.unwrap_err().reason();
        assert_eq!(code(parse(0, b"\0\x02\0\0\0\x02")), Reason::PROTOCOL_ERROR);
        assert_eq!(
            code(parse(0, b"\0\x04\x80\0\0\0")),
            Reason::FLOW_CONTROL_ERROR
        );
        assert_eq!(
            code(parse(0, b"\0\x05\0\0\x3f\xff")),
            Reason::PROTOCOL_ERROR
        );
        assert_eq!(code(parse(0, b"\0\x05\x01\0\0\0")), Reason::PROTOCOL_ERROR);
        assert_eq!(code(parse(0, b"\0\x05\0\0\x40")), Reason::FRAME_SIZE_ERROR);
        assert_eq!(
            code(parse(flags::ACK, b"\0\x05\0\0\x40\0")),
            Reason::FRAME_SIZE_ERROR
        );
        assert_eq!(
            parse(flags::ACK, b"").unwrap(),
            Frame::Settings(Settings::ACK)
        );
    }
}
