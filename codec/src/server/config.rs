//! Limits and windows of a server connection, each with its default and the reason for it.

use std::time::Duration;

use crate::frame::{
    DEFAULT_MAX_FRAME_SIZE, DEFAULT_WINDOW_SIZE, MAX_MAX_FRAME_SIZE, MAX_WINDOW_SIZE,
};

/// Every knob of a server connection.
///
/// Defaults are chosen for a gRPC server on the open internet: generous enough that
/// no well-behaved gRPC client (tonic, grpc-go, gRPC C-core, grpc-java) ever meets
/// them, tight enough that one connection cannot hold more than a few MiB or make the
/// server do unbounded work. [`Config::validated`] clamps values into the ranges the
/// RFC allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// SETTINGS_MAX_CONCURRENT_STREAMS we advertise and enforce with REFUSED_STREAM.
    ///
    /// Default 256: a gRPC channel multiplexes all of a client's calls on one
    /// connection, so this is per client, and 256 in-flight calls is far beyond what a
    /// client needs before opening a second connection. A stream counts until its
    /// handler finishes, not until the peer resets it (Rapid Reset).
    pub max_concurrent_streams: u32,
    /// SETTINGS_INITIAL_WINDOW_SIZE we advertise: how much a client may send on one
    /// stream before the handler consumes it.
    ///
    /// Default 1 MiB: the HTTP/2 default of 64 KiB caps one stream at 64 KiB per round
    /// trip, which throttles large messages; 1 MiB fills a fast link at LAN latency
    /// while bounding what one slow handler holds. Never below 65,535.
    pub initial_stream_window: u32,
    /// The connection-level receive window we open right after the preface.
    ///
    /// Default 4 MiB: the sum over all streams of unconsumed data a client may have
    /// in flight; this is the per-connection memory bound for received messages.
    pub initial_connection_window: u32,
    /// SETTINGS_MAX_FRAME_SIZE we advertise and enforce. Default 16,384 (the RFC
    /// default): larger frames save a few headers per MiB but let one frame hold the
    /// connection longer.
    pub max_frame_size: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE: the decoded size of a request's header list,
    /// counted as name + value + 32 per field (RFC 9113 §6.5.2).
    ///
    /// Default 16 KiB, hyper's choice and gRPC C-core's soft limit; the HPACK-bomb
    /// defence, since it bounds the decoded size, not the encoded one.
    pub max_header_list_size: u32,
    /// SETTINGS_HEADER_TABLE_SIZE: the HPACK dynamic table we keep for the client.
    /// Default 4,096 (the RFC default).
    pub header_table_size: u32,
    /// Most CONTINUATION frames after one HEADERS frame.
    ///
    /// Default: max(5, 1.25 × header list size / frame size), enough for any list that
    /// fits the header list limit in full frames; the CONTINUATION-flood defence.
    pub max_continuation_frames: u32,
    /// Largest gRPC message we accept, checked from its length prefix before anything
    /// is buffered (RESOURCE_EXHAUSTED beyond it). Default 4 MiB, like every gRPC
    /// implementation.
    pub max_message_size: u32,
    /// Streams the peer may reset before their response completed, net of calls the
    /// engine answered in full (requests the codec answers by itself, such as HTTP
    /// 415, do not count), before GOAWAY ENHANCE_YOUR_CALM. Default 100
    /// (Rapid Reset, CVE-2023-44487: a client cancelling its calls now and then never
    /// gets close; a client that only opens and resets does at once).
    pub max_peer_resets: u32,
    /// RST_STREAM frames we may send for the peer's protocol errors before GOAWAY
    /// ENHANCE_YOUR_CALM. Default 1,024 (h2's choice): errors that cost the peer
    /// nothing must not cost us a frame each forever.
    pub max_error_resets: u32,
    /// Replies to the peer's PING and SETTINGS frames that may wait unwritten before
    /// GOAWAY ENHANCE_YOUR_CALM. Default 64: a client never needs more than one
    /// outstanding, and a flood is answered with one GOAWAY, not a queue.
    pub max_pending_control_frames: u32,
    /// Frames that carry nothing (empty DATA without END_STREAM, empty header block
    /// fragments) before GOAWAY ENHANCE_YOUR_CALM. Default 100 (CVE-2019-9518).
    pub max_empty_frames: u32,
    /// New streams the peer may open within one `recv` call before GOAWAY
    /// ENHANCE_YOUR_CALM. Default 2 × max_concurrent_streams (nginx's rule): more than
    /// that in one read means streams are being opened and reset faster than served.
    pub max_new_streams_per_recv: u32,
    /// How long a new connection has to send its preface and first SETTINGS, and we
    /// wait for the ACK of ours, before the connection is closed. Default 10 s: the
    /// slowloris defence.
    pub handshake_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        let max_concurrent_streams = 256;
        let max_frame_size = DEFAULT_MAX_FRAME_SIZE;
        let max_header_list_size = 16 * 1024;
        Config {
            max_concurrent_streams,
            initial_stream_window: 1024 * 1024,
            initial_connection_window: 4 * 1024 * 1024,
            max_frame_size,
            max_header_list_size,
            header_table_size: 4096,
            max_continuation_frames: default_max_continuation_frames(
                max_header_list_size,
                max_frame_size,
            ),
            max_message_size: 4 * 1024 * 1024,
            max_peer_resets: 100,
            max_error_resets: 1024,
            max_pending_control_frames: 64,
            max_empty_frames: 100,
            max_new_streams_per_recv: 2 * max_concurrent_streams,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// max(5, 1.25 × header list size / frame size), rounded up.
pub fn default_max_continuation_frames(max_header_list_size: u32, max_frame_size: u32) -> u32 {
    let frames = (max_header_list_size as u64 * 5).div_ceil(max_frame_size as u64 * 4);
    frames.max(5) as u32
}

impl Config {
    /// The config with every value moved into the range the RFC allows: windows
    /// between 65,535 and 2^31 - 1, frame size between 16,384 and 2^24 - 1, and at
    /// least one of each counter.
    pub fn validated(mut self) -> Config {
        self.initial_stream_window = self
            .initial_stream_window
            .clamp(DEFAULT_WINDOW_SIZE, MAX_WINDOW_SIZE);
        self.initial_connection_window = self
            .initial_connection_window
            .clamp(DEFAULT_WINDOW_SIZE, MAX_WINDOW_SIZE);
        self.max_frame_size = self
            .max_frame_size
            .clamp(DEFAULT_MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE);
        self.max_continuation_frames = self.max_continuation_frames.max(1);
        self.max_pending_control_frames = self.max_pending_control_frames.max(1);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_default_follows_the_formula() {
        assert_eq!(default_max_continuation_frames(16 * 1024, 16 * 1024), 5);
        assert_eq!(default_max_continuation_frames(1024 * 1024, 16 * 1024), 80);
    }

    #[test]
    fn validated_clamps_into_rfc_ranges() {
        let c = Config {
            initial_stream_window: 10,
            max_frame_size: 1 << 30,
            ..Config::default()
        }
        .validated();
        assert_eq!(c.initial_stream_window, DEFAULT_WINDOW_SIZE);
        assert_eq!(c.max_frame_size, MAX_MAX_FRAME_SIZE);
    }
}
