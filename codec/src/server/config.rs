//! Limits and windows of a server connection, each with its default and the reason for it.

use std::time::Duration;

use crate::frame::{
    DEFAULT_MAX_FRAME_SIZE, DEFAULT_WINDOW_SIZE, MAX_MAX_FRAME_SIZE, MAX_WINDOW_SIZE,
};
use crate::grpc::PREFIX_LEN;

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
    /// [`Config::validated`] never lets it fall below what a header list of
    /// `max_header_list_size` needs in 16 KiB frames (the smallest maximum frame
    /// size a client may use), so raising the header list limit alone keeps
    /// large, legitimate header lists acceptable.
    pub max_continuation_frames: u32,
    /// Largest gRPC message we accept, checked from its length prefix before anything
    /// is buffered (RESOURCE_EXHAUSTED beyond it). Default 4 MiB, like every gRPC
    /// implementation.
    pub max_message_size: u32,
    /// Most bytes one connection may hold, summed over its streams, in request
    /// messages received in part: bytes of a message whose length prefix promised
    /// more than has arrived yet. Flow-control credit for such bytes is returned as
    /// they arrive, so that a message larger than the window can complete; without
    /// this limit a client could hold `max_concurrent_streams` × `max_message_size`
    /// (1 GiB by default) by sending all but the last byte of a large message on
    /// every stream. The stream whose DATA would cross it is failed with
    /// RESOURCE_EXHAUSTED; the connection and its other streams carry on.
    ///
    /// Default 32 MiB: eight messages of the default `max_message_size` arriving
    /// at once, far more than a client uploading large messages in parallel needs,
    /// while a message that arrives within one DATA frame holds nothing here.
    /// [`Config::validated`] never lets it fall below what one message of
    /// `max_message_size` holds, so the largest message a client may send can
    /// always be received on an otherwise idle connection.
    pub max_partial_message_bytes: usize,
    /// Streams the peer may reset before their response completed, net of calls the
    /// engine answered in full (requests the codec answers by itself, such as HTTP
    /// 415, do not count), before GOAWAY ENHANCE_YOUR_CALM. Streams refused with
    /// REFUSED_STREAM because the concurrency limit was reached count too: each
    /// costs us a frame, and a client that keeps opening streams past the limit
    /// it was told is hammering, not multiplexing. Default 100
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
    ///
    /// One deadline, counted from accept, bounds the whole handshake: a client that
    /// has not completed its preface and SETTINGS by then gets GOAWAY
    /// PROTOCOL_ERROR; one that did but has not acknowledged our SETTINGS gets
    /// GOAWAY SETTINGS_TIMEOUT (RFC 9113 §6.5.3). Our SETTINGS go out with the
    /// first write after accept, so both clocks start together. Input does not
    /// push the deadline back: trickling the preface a byte at a time buys nothing.
    pub handshake_timeout: Duration,
    /// Time without receiving anything from the client after which we send a PING
    /// to learn whether it is still there (gRPC's server `keepalive_time`). `None`
    /// never pings.
    ///
    /// Default 2 h, what gRPC servers use: a peer that vanished without a FIN or RST
    /// (a crashed host, a NAT that dropped the mapping) otherwise holds the
    /// connection and its memory for as long as the kernel's own keepalive takes,
    /// which is off by default. Shorter values find dead peers sooner at the cost
    /// of a PING per idle connection per period; gRPC clients accept server PINGs
    /// at any rate.
    pub keepalive_time: Option<Duration>,
    /// How long our keepalive PING may go unacknowledged before GOAWAY and close
    /// (gRPC's `keepalive_timeout`). Default 20 s, gRPC's default: several round
    /// trips on any network that still works.
    ///
    /// It also bounds the wait for the PING of a graceful drain
    /// ([`Connection::go_away`](super::Connection::go_away)): without its ACK by
    /// then, the final GOAWAY goes out anyway.
    pub keepalive_timeout: Duration,
    /// The shortest interval between two client PINGs that does not earn a strike
    /// while streams are open (or at any time with `permit_ping_without_stream`);
    /// gRPC's enforcement policy `MinTime`.
    ///
    /// Default 5 min, grpc-go's: a gRPC client configured with a shorter keepalive
    /// is asked to back off (`too_many_pings`), which is how gRPC keeps thousands
    /// of clients from pinging one server continually. A PING that follows a
    /// HEADERS or DATA frame we sent never earns a strike and clears the count:
    /// clients measure the bandwidth-delay product with PINGs answering our data.
    pub min_ping_interval: Duration,
    /// Whether clients may keep a connection without streams alive with PINGs at
    /// `min_ping_interval`. Default false, as in gRPC: without streams a PING
    /// sooner than 2 h (or `min_ping_interval`, if longer) after the previous one
    /// earns a strike, since a client with nothing in flight has no reason to
    /// probe more often than our own keepalive does.
    pub permit_ping_without_stream: bool,
    /// PINGs breaking the policy above that are tolerated; the next one gets
    /// GOAWAY ENHANCE_YOUR_CALM with debug data `too_many_pings`, which gRPC
    /// clients answer by doubling their keepalive interval. Default 2, gRPC's.
    ///
    /// This is a rate limit over time. `max_pending_control_frames` is a different
    /// defence: it bounds PING and SETTINGS replies we could not write yet, so it
    /// stops a flood within one read even where the policy allows each PING (a
    /// PING after our data is always allowed), and it covers SETTINGS too.
    pub max_ping_strikes: u32,
    /// Time without open streams after which the connection gets a graceful
    /// GOAWAY (gRPC's `MaxConnectionIdle`). Default `None`, as in gRPC: clients
    /// reconnect when they next need a connection, so closing idle ones only pays
    /// where connections are scarce (many clients behind one proxy).
    pub max_connection_idle: Option<Duration>,
    /// Age at which the connection gets a graceful GOAWAY, so that clients
    /// reconnect and a load balancer can spread them over servers added since
    /// (gRPC's `MaxConnectionAge`). Default `None`, as in gRPC.
    ///
    /// The codec uses the value it is given; the engine spreads it by ±10% per
    /// connection so that clients connected together do not reconnect together.
    pub max_connection_age: Option<Duration>,
    /// How long in-flight calls may still run after the `max_connection_age`
    /// GOAWAY before the connection is closed at once (gRPC's
    /// `MaxConnectionAgeGrace`). Default `None`, as in gRPC: the connection closes
    /// when its last call ends, however long that takes.
    pub max_connection_age_grace: Option<Duration>,
    /// How long a stream may have response data queued without sending any of it,
    /// because the client keeps its flow-control window (the stream's or the
    /// connection's) at zero, before the stream is reset with RST_STREAM(CANCEL)
    /// and its handler cancelled. The clock restarts with every byte sent.
    ///
    /// Default 60 s, nginx's `send_timeout`: a client that reads at all, however
    /// slowly, never meets it, while one that opened streams and stopped reading
    /// cannot hold their handlers and queued messages for ever. The engine applies
    /// the same bound to a socket that accepts no bytes at all.
    pub send_stall_timeout: Duration,
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
            max_partial_message_bytes: 32 * 1024 * 1024,
            max_peer_resets: 100,
            max_error_resets: 1024,
            max_pending_control_frames: 64,
            max_empty_frames: 100,
            max_new_streams_per_recv: 2 * max_concurrent_streams,
            handshake_timeout: Duration::from_secs(10),
            keepalive_time: Some(Duration::from_secs(2 * 60 * 60)),
            keepalive_timeout: Duration::from_secs(20),
            min_ping_interval: Duration::from_secs(5 * 60),
            permit_ping_without_stream: false,
            max_ping_strikes: 2,
            max_connection_idle: None,
            max_connection_age: None,
            max_connection_age_grace: None,
            send_stall_timeout: Duration::from_secs(60),
        }
    }
}

/// max(5, 1.25 × header list size / frame size), rounded up.
pub fn default_max_continuation_frames(max_header_list_size: u32, max_frame_size: u32) -> u32 {
    let frames = (max_header_list_size as u64 * 5).div_ceil(max_frame_size as u64 * 4);
    frames.max(5) as u32
}

/// The fewest CONTINUATION frames that carry any header list within
/// `max_header_list_size` when a client splits it into 16 KiB frames, plus one
/// frame of slack. An encoded header block is never longer than its list size
/// as RFC 9113 counts it (the 32 octets per field exceed any literal's framing),
/// so `ceil(size / 16 KiB)` frames after the HEADERS frame always suffice.
pub fn min_continuation_frames(max_header_list_size: u32) -> u32 {
    max_header_list_size.div_ceil(DEFAULT_MAX_FRAME_SIZE)
}

impl Config {
    /// The config with every value moved into the range the RFC allows: windows
    /// between 65,535 and 2^31 - 1, frame size between 16,384 and 2^24 - 1, at
    /// least one of each counter, enough CONTINUATION frames for the header
    /// list limit ([`min_continuation_frames`]), and room for one message of
    /// `max_message_size` in `max_partial_message_bytes`.
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
        self.max_continuation_frames = self
            .max_continuation_frames
            .max(min_continuation_frames(self.max_header_list_size))
            .max(1);
        self.max_pending_control_frames = self.max_pending_control_frames.max(1);
        // Below one whole message (prefix included) the largest message a client
        // may send could never be received when it arrives in pieces, even alone
        // on the connection: raise the budget rather than make the size limit a lie.
        self.max_partial_message_bytes = self
            .max_partial_message_bytes
            .max(self.max_message_size as usize + PREFIX_LEN);
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

    #[test]
    fn validated_leaves_room_for_one_whole_message() {
        let c = Config {
            max_message_size: 1 << 20,
            max_partial_message_bytes: 1000,
            ..Config::default()
        }
        .validated();
        assert_eq!(c.max_partial_message_bytes, (1 << 20) + PREFIX_LEN);
        let d = Config::default().validated();
        assert_eq!(d.max_partial_message_bytes, 32 * 1024 * 1024);
    }
}
