//! The server side of an HTTP/2 connection carrying gRPC, as a sans-IO state machine.
//!
//! [`Connection`] never touches a socket or a clock. Its methods come in four groups,
//! in the manner of quinn-proto:
//!
//! - **inputs**: [`Connection::recv`] with the bytes read from the socket,
//!   [`Connection::handle_timeout`] when the deadline of [`Connection::poll_timeout`]
//!   has passed, and [`Connection::reset_stalled_streams`] when the deadline of
//!   [`Connection::send_stall_deadline`] has (the transmitting side's timer);
//! - **outputs**: [`Connection::poll_event`] for what the engine must act on (a new
//!   request, a message, the end of a request, a reset) and
//!   [`Connection::poll_transmit`] for the bytes to write;
//! - **commands** from the engine: [`Connection::send_headers`],
//!   [`Connection::send_message`], [`Connection::send_trailers`],
//!   [`Connection::reset`], [`Connection::release_capacity`],
//!   [`Connection::release_stream`], [`Connection::go_away`];
//! - **getters**: [`Connection::is_closed`], [`Connection::queued_send_bytes`], ...
//!
//! The driving loop: after reading, call `recv`, then drain `poll_event` until it
//! returns `None` (running handlers, which issue commands), then call
//! `poll_transmit` once and write everything it produced in one write. Repeat.
//!
//! # Backpressure
//!
//! Received messages hold flow-control credit until the engine calls
//! `release_capacity` for them, which is how a handler that stops reading stops its
//! client. Bytes of a message still being reassembled are credited back at once,
//! otherwise a message larger than the window could never complete; the reassembly
//! buffers are bounded instead, per message by `max_message_size` and per
//! connection by `max_partial_message_bytes` (the stream that would cross it gets
//! RESOURCE_EXHAUSTED). Outgoing messages wait in
//! the stream's queue until both windows allow them; the engine reads
//! [`Connection::queued_send_bytes`] to hold its senders. A stream whose queue the
//! client's windows keep shut for `send_stall_timeout` is reset with CANCEL.

mod config;
mod flow;
mod lifecycle;
mod request;
mod store;
mod transmit;

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

pub use config::{default_max_continuation_frames, min_continuation_frames, Config};
pub use request::RequestHead;

use crate::error::{Error, Initiator, Reason};
use crate::frame::{
    Continuation, Data, Frame, FrameHeader, GoAway, Headers, Ping, Reset, Settings, StreamId,
    WindowUpdate, DEFAULT_MAX_FRAME_SIZE, DEFAULT_WINDOW_SIZE, HEADER_LEN, PREFACE,
};
use crate::grpc::{status, Message, MessageError};
use crate::hpack;
use flow::{RecvWindow, SendWindow};
use lifecycle::Lifecycle;
use request::{HeadBuilder, Verdict};
use store::{HeadState, Key, OutMessage, OutTrailers, RecentlyReset, Store};

/// Whether `value` may go out as `grpc-encoding` / `grpc-accept-encoding`.
fn is_sendable_encoding(value: &Bytes) -> bool {
    !value.is_empty()
        && crate::grpc::metadata::is_valid_ascii_value(value)
        && crate::grpc::metadata::is_valid_field_value(value)
}

/// Something the engine must act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A new gRPC request: route it and start its handler. The stream counts against
    /// the concurrency limit until [`Connection::release_stream`].
    Request {
        /// The stream carrying the call.
        id: StreamId,
        /// Path, deadline and metadata.
        head: RequestHead,
    },
    /// A complete request message. Its `data.len() + 5` bytes of flow-control credit
    /// come back when the engine calls [`Connection::release_capacity`].
    Message {
        /// The stream.
        id: StreamId,
        /// The message, usually a zero-copy slice of the read buffer.
        message: Message,
    },
    /// The client half-closed: no more messages will come on this stream.
    EndOfStream {
        /// The stream.
        id: StreamId,
    },
    /// The stream ended before its response did: cancel the handler, then call
    /// [`Connection::release_stream`].
    Reset {
        /// The stream.
        id: StreamId,
        /// The code the stream was reset with (CANCEL from a client cancelling).
        reason: Reason,
        /// Whether the client reset it, or the codec did after answering a protocol
        /// or gRPC error on it (for example a message over the size limit).
        initiator: Initiator,
    },
    /// The client sent GOAWAY: it will open no more streams.
    GoAway {
        /// The last stream the client says it may have processed.
        last_stream_id: StreamId,
        /// Its reason.
        reason: Reason,
        /// Its debug data.
        debug: Bytes,
    },
    /// The connection failed. A GOAWAY is queued: call `poll_transmit`, write, close.
    /// Every handler of this connection should be cancelled.
    Closed {
        /// What went wrong, and who said so.
        error: Error,
        /// Remote if the client sent a GOAWAY with an error, Local if we detected it.
        initiator: Initiator,
    },
}

/// An [`Event`] waiting for [`Connection::poll_event`]. A request's head waits
/// apart, in `Connection::request_heads`, so that the queue's slots are sized for
/// the small events (40 bytes, not the head's 136): the queue keeps its capacity
/// while the connection idles, and one unary call fills four slots.
#[derive(Debug)]
enum QueuedEvent {
    /// [`Event::Request`]; its head is the next in `request_heads`.
    Request {
        id: StreamId,
    },
    /// [`Event::Message`], flattened so the flag shares the id's padding.
    Message {
        id: StreamId,
        compressed: bool,
        data: Bytes,
    },
    EndOfStream {
        id: StreamId,
    },
    Reset {
        id: StreamId,
        reason: Reason,
        initiator: Initiator,
    },
    /// Boxed: its two codes beside the debug data would make every slot 48
    /// bytes, for a frame a client sends once.
    GoAway(Box<GoAway>),
    Closed {
        error: Error,
        initiator: Initiator,
    },
}

/// The gRPC status a response ends with, as the engine hands it to
/// [`Connection::send_trailers`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponseStatus {
    /// The gRPC status code (see [`crate::grpc::status`]).
    pub code: u32,
    /// A human-readable message, UTF-8; the codec percent-encodes it.
    pub message: Bytes,
    /// Serialized `google.rpc.Status`, sent as `grpc-status-details-bin`.
    pub details: Option<Bytes>,
}

impl ResponseStatus {
    /// Status OK with no message.
    pub const OK: ResponseStatus = ResponseStatus {
        code: status::OK,
        message: Bytes::new(),
        details: None,
    };

    /// A status with a static message.
    pub fn new(code: u32, message: &'static str) -> ResponseStatus {
        ResponseStatus {
            code,
            message: Bytes::from_static(message.as_bytes()),
            details: None,
        }
    }
}

/// A command named a stream that is gone or can no longer send: it was reset, its
/// response already ended, or it never existed. The handler should stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamClosed(pub StreamId);

impl std::fmt::Display for StreamClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} is closed", self.0)
    }
}

impl std::error::Error for StreamClosed {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the client preface; `matched` bytes of it seen so far.
    Preface {
        matched: u8,
    },
    /// The preface arrived; the next frame must be SETTINGS (§3.4).
    FirstSettings,
    Open,
    /// We sent GOAWAY(2^31 - 1) and a PING; at its ACK we send the real GOAWAY.
    DrainAnnounced,
    /// GOAWAY with a final last-stream-id sent: streams above it are ignored,
    /// the rest run to completion.
    Draining,
    /// Nothing more will be processed; flush and close.
    Closed,
}

/// Control frames waiting to be written, in order.
#[derive(Clone, Debug)]
enum Control {
    SettingsAck,
    PingAck([u8; 8]),
    Ping([u8; 8]),
    Reset(StreamId, Reason),
    WindowUpdate(StreamId, u32),
    GoAway(StreamId, Reason, &'static str),
}

/// The payload of the PING that follows GOAWAY(2^31 - 1) in a graceful shutdown.
const DRAIN_PING: [u8; 8] = *b"ringdrn\0";

/// A header block split over HEADERS and CONTINUATION frames, being collected.
struct PartialBlock {
    stream_id: StreamId,
    end_stream: bool,
    /// The HEADERS frame's priority named its own stream (reset after decoding).
    self_dependent: bool,
    fragments: BytesMut,
    continuations: u32,
}

/// What a header block is for, decided when its HEADERS frame arrives.
#[derive(Clone, Copy, Debug)]
enum BlockTarget {
    /// A new request stream.
    Open,
    /// Trailers on an open request stream.
    Trailers(Key),
    /// Decode for HPACK state only, then answer with this reset (if any).
    Discard(Option<Reason>),
}

/// The server side of one HTTP/2 connection. See the [module docs](self).
pub struct Connection {
    config: Config,
    phase: Phase,
    decoder: hpack::Decoder,
    encoder: hpack::Encoder,

    streams: Store,
    /// Highest client stream id seen; ids up to it are no longer idle (§5.1.1).
    max_client_id: StreamId,
    /// The last-stream-id of the final GOAWAY we sent (2^31 - 1 before that): frames
    /// on streams above it are ignored (§6.8).
    go_away_last_id: StreamId,
    recently_reset: RecentlyReset,
    /// Boxed: only a header block split over CONTINUATION frames needs it, and
    /// gRPC clients send request heads in one HEADERS frame.
    partial: Option<Box<PartialBlock>>,

    // Flow control and peer settings.
    conn_recv: RecvWindow,
    conn_send: SendWindow,
    peer_initial_window: u32,
    peer_max_frame_size: u32,

    // Our SETTINGS: sent at the first transmit, in force once acknowledged.
    settings_sent: bool,
    settings_acked: bool,
    handshake_deadline: Option<Instant>,
    /// Keepalive, PING policy, idle and age timers (see `lifecycle.rs`).
    lifecycle: Lifecycle,

    /// When [`Connection::reset_stalled_streams`] must next look for streams that
    /// could not send for `send_stall_timeout`; `None` while none waits for window.
    stall_check: Option<Instant>,

    // Output.
    control: VecDeque<Control>,
    pending_control_replies: u32,
    ready: VecDeque<Key>,
    /// Streams with data to send and room in their own window that wait for the
    /// connection window. Kept apart from `ready` so that a connection stalled on
    /// the client's window has nothing to transmit until a WINDOW_UPDATE comes.
    conn_blocked: VecDeque<Key>,
    /// A stream in `conn_blocked` was reset or failed and may have something to say
    /// (or be done) without the connection window: look at them all again.
    recheck_blocked: bool,
    events: VecDeque<QueuedEvent>,
    /// The heads of the `QueuedEvent::Request`s in `events`, in the same order.
    request_heads: VecDeque<RequestHead>,
    /// Header blocks are HPACK-encoded here before framing (reused).
    scratch: BytesMut,
    /// Values are base64- or percent-encoded here before HPACK (reused).
    value_scratch: BytesMut,
    /// `grpc-accept-encoding` for responses whose stream sets none.
    accept_encoding: Option<Bytes>,

    /// Bytes held in the decoders of all streams for messages received in part:
    /// the sum of their [`MessageDecoder::buffered`](crate::grpc::MessageDecoder::buffered),
    /// kept exact by adjusting it around every `push` and at every discard.
    partial_message_bytes: usize,

    // Abuse counters (see Config).
    peer_resets: u32,
    error_resets: u32,
    empty_frames: u32,
    new_streams_this_recv: u32,
}

impl Connection {
    /// A connection just accepted at `now`.
    pub fn new(config: Config, now: Instant) -> Connection {
        let config = config.validated();
        Connection {
            phase: Phase::Preface { matched: 0 },
            decoder: hpack::Decoder::new(hpack::DEFAULT_TABLE_SIZE),
            encoder: hpack::Encoder::new(),
            streams: Store::new(),
            max_client_id: StreamId::ZERO,
            go_away_last_id: StreamId::MAX,
            recently_reset: RecentlyReset::new(),
            partial: None,
            conn_recv: RecvWindow::growing_from(
                DEFAULT_WINDOW_SIZE,
                config.initial_connection_window,
            ),
            conn_send: SendWindow::new(DEFAULT_WINDOW_SIZE),
            peer_initial_window: DEFAULT_WINDOW_SIZE,
            peer_max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            settings_sent: false,
            settings_acked: false,
            handshake_deadline: Some(now + config.handshake_timeout),
            lifecycle: Lifecycle::new(now, config.max_connection_age),
            stall_check: None,
            control: VecDeque::new(),
            pending_control_replies: 0,
            ready: VecDeque::new(),
            conn_blocked: VecDeque::new(),
            recheck_blocked: false,
            events: VecDeque::new(),
            request_heads: VecDeque::new(),
            scratch: BytesMut::new(),
            value_scratch: BytesMut::new(),
            accept_encoding: None,
            partial_message_bytes: 0,
            peer_resets: 0,
            error_resets: 0,
            empty_frames: 0,
            new_streams_this_recv: 0,
            config,
        }
    }

    // ----- getters -----

    /// The configuration in force (after [`Config::validated`]).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Nothing more will be received; once `poll_transmit` has nothing left to
    /// write, the engine closes the socket.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Streams currently counted against the concurrency limit.
    pub fn active_streams(&self) -> usize {
        self.streams.len()
    }

    /// Bytes the connection holds in request messages received in part, over all
    /// its streams (prefix bytes included); at most `max_partial_message_bytes`
    /// between calls. A message that arrives within one DATA frame holds nothing.
    pub fn partial_message_bytes(&self) -> usize {
        self.partial_message_bytes
    }

    /// Bytes of messages queued on `id` and not yet written (0 for a gone stream).
    /// The engine holds a stream's sender while this is above its high-water mark.
    pub fn queued_send_bytes(&self, id: StreamId) -> usize {
        self.streams
            .find(id)
            .map_or(0, |key| self.streams.peek(key).queued)
    }

    /// When [`Connection::reset_stalled_streams`] must next be called: a stream has
    /// had response data queued and no flow-control window to send any of it since
    /// `send_stall_timeout` before this instant. `None` while no stream waits.
    ///
    /// A deadline of its own, apart from [`Connection::poll_timeout`], because it is
    /// about output: it arms in `poll_transmit`, so the loop that transmits is the
    /// one to watch it, and its expiry ends streams, never the connection.
    #[must_use]
    pub fn send_stall_deadline(&self) -> Option<Instant> {
        self.stall_check
    }

    /// Resets with RST_STREAM(CANCEL) every stream that has had response data
    /// queued for `send_stall_timeout` without sending a byte of it (the client
    /// keeps its window at zero); the engine hears [`Event::Reset`] for those whose
    /// handler runs. Costs a pass over the streams, only when the deadline of
    /// [`Connection::send_stall_deadline`] has passed.
    pub fn reset_stalled_streams(&mut self, now: Instant) {
        if self.stall_check.is_none_or(|check| now < check) {
            return;
        }
        self.stall_check = None;
        if self.phase == Phase::Closed {
            return;
        }
        let timeout = self.config.send_stall_timeout;
        let mut next: Option<Instant> = None;
        let mut stalled = Vec::new();
        self.streams.for_each(|key, stream| {
            let Some(since) = stream.stalled_since else {
                return;
            };
            if stream.send_closed || stream.queued == 0 {
                stream.stalled_since = None;
                return;
            }
            // A timeout too large to add never expires.
            if let Some(deadline) = since.checked_add(timeout) {
                if deadline <= now {
                    stalled.push(key);
                } else {
                    next = Some(next.map_or(deadline, |n| n.min(deadline)));
                }
            }
        });
        self.stall_check = next;
        for key in stalled {
            let id = self.streams.get(key).id;
            self.close_stream(key, Reason::CANCEL, Some(Initiator::Local));
            self.queue_reset(id, Reason::CANCEL);
        }
    }

    /// Notes after writing `key`'s frames whether its queued data made progress;
    /// arms the stall deadline for a stream that starts waiting for window.
    fn track_stall(&mut self, key: Key, queued_before: usize, now: Instant) {
        let timeout = self.config.send_stall_timeout;
        let stream = self.streams.get(key);
        if stream.send_closed || stream.queued == 0 {
            stream.stalled_since = None;
        } else if stream.queued < queued_before || stream.stalled_since.is_none() {
            stream.stalled_since = Some(now);
            if self.stall_check.is_none() {
                self.stall_check = now.checked_add(timeout);
            }
        }
    }

    /// Whether `poll_transmit` would write anything.
    pub fn wants_transmit(&self) -> bool {
        !self.settings_sent
            || !self.control.is_empty()
            || !self.ready.is_empty()
            || (!self.conn_blocked.is_empty()
                && (self.recheck_blocked || self.conn_send.available() > 0))
            || self.conn_recv_update_due()
    }

    /// When [`Connection::handle_timeout`] must next be called: the handshake
    /// deadline, the keepalive PING or its ACK, the idle and age limits, the drain
    /// PING's ACK. The deadline may move later without notice (input pushes the
    /// keepalive back); waking at an old one is harmless. It moves earlier only
    /// after `poll_transmit` (the idle clock starts when the last stream's frames
    /// are out, a drain PING's deadline when it is written) or `recv`.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        lifecycle::earliest(self.handshake_deadline, self.lifecycle_deadline())
    }

    // ----- inputs -----

    /// Processes the bytes read from the socket: every complete frame at the front of
    /// `buf` is consumed (split off, so messages can be zero-copy slices of it); an
    /// incomplete frame is left in `buf` for the next read to complete.
    pub fn recv(&mut self, now: Instant, buf: &mut BytesMut) {
        self.new_streams_this_recv = 0;
        self.note_recv(now);
        if let Phase::Preface { matched } = self.phase {
            let matched = usize::from(matched);
            let take = buf.len().min(PREFACE.len() - matched);
            if buf[..take] != PREFACE[matched..matched + take] {
                // §3.4: an invalid preface is a connection error of type PROTOCOL_ERROR.
                self.connection_error(Error::connection(
                    Reason::PROTOCOL_ERROR,
                    "invalid connection preface",
                ));
                buf.clear();
                return;
            }
            let _ = buf.split_to(take);
            self.phase = if matched + take == PREFACE.len() {
                Phase::FirstSettings
            } else {
                Phase::Preface {
                    // Below the preface's 24 bytes.
                    matched: (matched + take) as u8,
                }
            };
            if matches!(self.phase, Phase::Preface { .. }) {
                return;
            }
        }
        while self.phase != Phase::Closed {
            let Some(head) = FrameHeader::parse(buf) else {
                break;
            };
            // §4.2: a frame larger than our SETTINGS_MAX_FRAME_SIZE is a FRAME_SIZE_ERROR;
            // checked before waiting for its payload so a huge length buffers nothing.
            if head.len > self.config.max_frame_size {
                self.connection_error(Error::connection(
                    Reason::FRAME_SIZE_ERROR,
                    "frame larger than SETTINGS_MAX_FRAME_SIZE",
                ));
                break;
            }
            let total = HEADER_LEN + head.len as usize;
            if buf.len() < total {
                // Make room for the rest of this frame in one piece.
                buf.reserve(total - buf.len());
                break;
            }
            let mut frame = buf.split_to(total);
            let payload = frame.split_off(HEADER_LEN).freeze();
            if let Err(error) = self.handle_frame(head, payload) {
                self.handle_error(error);
            }
        }
        if self.phase == Phase::Closed {
            buf.clear();
        }
        self.track_idle(now);
    }

    /// Call when the deadline of [`Connection::poll_timeout`] has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self
            .handshake_deadline
            .is_some_and(|deadline| now >= deadline)
        {
            self.handshake_deadline = None;
            let error = if matches!(self.phase, Phase::Preface { .. } | Phase::FirstSettings) {
                Error::connection(Reason::PROTOCOL_ERROR, "no preface and SETTINGS in time")
            } else {
                Error::connection(
                    Reason::SETTINGS_TIMEOUT,
                    "SETTINGS not acknowledged in time",
                )
            };
            self.connection_error(error);
        }
        self.lifecycle_timeout(now);
        self.track_idle(now);
    }

    fn handle_error(&mut self, error: Error) {
        match error {
            Error::Connection { .. } => self.connection_error(error),
            // RST_STREAM may not be sent on an idle stream (§6.4), so an error
            // about one (a bad WINDOW_UPDATE or PRIORITY) ends the connection.
            Error::Stream { id, .. } if id > self.max_client_id => self.connection_error(
                Error::connection(Reason::PROTOCOL_ERROR, "stream error on an idle stream"),
            ),
            Error::Stream { id, reason } => self.stream_error(id, reason),
        }
    }

    fn handle_frame(&mut self, head: FrameHeader, payload: Bytes) -> Result<(), Error> {
        // §6.10: while a header block is open, only its CONTINUATION frames may come.
        if let Some(partial) = &self.partial {
            if head.kind != crate::frame::Kind::Continuation || head.stream_id != partial.stream_id
            {
                return Err(Error::connection(
                    Reason::PROTOCOL_ERROR,
                    "expected CONTINUATION",
                ));
            }
        }
        let frame = Frame::parse(head, payload)?;
        if self.phase == Phase::FirstSettings {
            // §3.4: the client preface is followed by a SETTINGS frame.
            if !matches!(&frame, Frame::Settings(s) if !s.ack) {
                return Err(Error::connection(
                    Reason::PROTOCOL_ERROR,
                    "first frame is not SETTINGS",
                ));
            }
            self.phase = Phase::Open;
            if self.settings_acked {
                self.handshake_deadline = None;
            }
        }
        match frame {
            Frame::Data(data) => self.on_data(data),
            Frame::Headers(headers) => self.on_headers(headers),
            Frame::Continuation(cont) => self.on_continuation(cont),
            Frame::Priority(_) | Frame::Unknown { .. } => Ok(()),
            Frame::Reset(reset) => self.on_reset(reset),
            Frame::Settings(settings) => self.on_settings(settings),
            // §8.4: "A client cannot push ... a server MUST treat the receipt of a
            // PUSH_PROMISE frame as a connection error of type PROTOCOL_ERROR."
            Frame::PushPromise { .. } => Err(Error::connection(
                Reason::PROTOCOL_ERROR,
                "PUSH_PROMISE from a client",
            )),
            Frame::Ping(ping) => self.on_ping(ping),
            Frame::GoAway(go_away) => self.on_go_away(go_away),
            Frame::WindowUpdate(update) => self.on_window_update(update),
        }
    }

    /// §5.1: a stream no frame has opened yet. That is a client stream above every one
    /// opened so far, and every server-initiated (even) stream, since this server
    /// never opens one.
    fn is_idle(&self, id: StreamId) -> bool {
        !id.is_client_initiated() || id > self.max_client_id
    }

    fn count_empty_frame(&mut self) -> Result<(), Error> {
        self.empty_frames += 1;
        if self.empty_frames > self.config.max_empty_frames {
            return Err(Error::connection(
                Reason::ENHANCE_YOUR_CALM,
                "too many empty frames",
            ));
        }
        Ok(())
    }

    // ----- HEADERS and CONTINUATION -----

    fn on_headers(&mut self, headers: Headers) -> Result<(), Error> {
        let id = headers.stream_id;
        // §5.1.1: "Streams initiated by a client MUST use odd-numbered stream identifiers".
        if !id.is_client_initiated() {
            return Err(Error::connection(
                Reason::PROTOCOL_ERROR,
                "even stream id from client",
            ));
        }
        if headers.fragment.is_empty() && !headers.end_headers {
            self.count_empty_frame()?;
        }
        let self_dependent = headers.priority.is_some_and(|p| p.depends_on_itself(id));
        if headers.end_headers {
            self.header_block(id, headers.fragment, headers.end_stream, self_dependent)
        } else {
            let mut fragments = std::mem::take(&mut self.scratch);
            fragments.clear();
            fragments.extend_from_slice(&headers.fragment);
            self.partial = Some(Box::new(PartialBlock {
                stream_id: id,
                end_stream: headers.end_stream,
                self_dependent,
                fragments,
                continuations: 0,
            }));
            Ok(())
        }
    }

    fn on_continuation(&mut self, cont: Continuation) -> Result<(), Error> {
        let Some(partial) = &mut self.partial else {
            // §6.10: CONTINUATION not preceded by HEADERS/CONTINUATION without END_HEADERS.
            return Err(Error::connection(
                Reason::PROTOCOL_ERROR,
                "unexpected CONTINUATION",
            ));
        };
        partial.continuations += 1;
        if partial.continuations > self.config.max_continuation_frames {
            return Err(Error::connection(
                Reason::ENHANCE_YOUR_CALM,
                "too many CONTINUATION frames",
            ));
        }
        partial.fragments.extend_from_slice(&cont.fragment);
        if !cont.end_headers {
            if cont.fragment.is_empty() {
                self.count_empty_frame()?;
            }
            return Ok(());
        }
        let partial = *self.partial.take().expect("checked above");
        let mut fragments = partial.fragments;
        let block = fragments.split().freeze();
        self.scratch = fragments;
        self.header_block(
            partial.stream_id,
            block,
            partial.end_stream,
            partial.self_dependent,
        )
    }

    /// Classifies a complete header block by the state of its stream (§5.1), then
    /// decodes it: every block is decoded, even one we reject, to keep HPACK in sync.
    fn header_block(
        &mut self,
        id: StreamId,
        block: Bytes,
        end_stream: bool,
        self_dependent: bool,
    ) -> Result<(), Error> {
        let target = if let Some(key) = self.streams.find(id) {
            let stream = self.streams.get(key);
            if stream.reset || stream.recv_closed {
                if stream.reset {
                    BlockTarget::Discard(None)
                } else {
                    // §5.1 half-closed (remote): frames other than WINDOW_UPDATE,
                    // PRIORITY and RST_STREAM are a stream error STREAM_CLOSED.
                    BlockTarget::Discard(Some(Reason::STREAM_CLOSED))
                }
            } else if !end_stream {
                // §8.1: a second HEADERS (trailers) must end the stream.
                BlockTarget::Discard(Some(Reason::PROTOCOL_ERROR))
            } else {
                BlockTarget::Trailers(key)
            }
        } else if id <= self.max_client_id {
            if self.recently_reset.contains(id) {
                BlockTarget::Discard(None)
            } else {
                // §5.1 closed: HEADERS on a closed stream is STREAM_CLOSED; a client
                // cannot reopen a stream (§5.1.1).
                self.decode_discard(&block)?;
                return Err(Error::connection(
                    Reason::STREAM_CLOSED,
                    "HEADERS on a closed stream",
                ));
            }
        } else {
            self.max_client_id = id;
            self.new_streams_this_recv += 1;
            if self.new_streams_this_recv > self.config.max_new_streams_per_recv {
                return Err(Error::connection(
                    Reason::ENHANCE_YOUR_CALM,
                    "too many new streams at once",
                ));
            }
            if matches!(self.phase, Phase::Draining | Phase::Closed) {
                // Above the last stream id we announced: ignored (§6.8).
                BlockTarget::Discard(None)
            } else if self.streams.len() >= self.config.max_concurrent_streams as usize {
                BlockTarget::Discard(Some(Reason::REFUSED_STREAM))
            } else {
                BlockTarget::Open
            }
        };
        let target = match target {
            // A stream depending on itself is a stream error (RFC 7540 §5.3.1); the
            // block is still decoded first so HPACK stays in sync.
            BlockTarget::Open | BlockTarget::Trailers(_) if self_dependent => {
                BlockTarget::Discard(Some(Reason::PROTOCOL_ERROR))
            }
            target => target,
        };
        match target {
            BlockTarget::Open => self.open_stream(id, block, end_stream),
            BlockTarget::Trailers(key) => {
                let mut builder = HeadBuilder::new(self.config.max_header_list_size as usize, true);
                self.decoder
                    .decode_fields(&block, |h| builder.field(h))
                    .map_err(compression_error)?;
                match builder.trailers_verdict() {
                    Verdict::Accept => self.finish_request(key),
                    Verdict::GrpcStatus(code, why) => {
                        // Trailers over the header list limit fail the call the way
                        // an oversized request head does; the request is over.
                        let stream = self.streams.get(key);
                        stream.recv_closed = true;
                        if stream.handler_active {
                            self.grpc_stream_error(key, ResponseStatus::new(code, why))
                        } else {
                            self.end_of_request(key)
                        }
                    }
                    Verdict::Malformed | Verdict::HttpStatus(_) => {
                        Err(Error::stream(id, Reason::PROTOCOL_ERROR))
                    }
                }
            }
            BlockTarget::Discard(reset) => {
                self.decode_discard(&block)?;
                match reset {
                    Some(Reason::REFUSED_STREAM) => {
                        self.queue_reset(id, Reason::REFUSED_STREAM);
                        // A refusal costs us a frame like a reset stream costs us
                        // work: both draw on the budget served calls replenish.
                        self.peer_resets += 1;
                        if self.peer_resets > self.config.max_peer_resets {
                            return Err(Error::connection(
                                Reason::ENHANCE_YOUR_CALM,
                                "too many streams refused",
                            ));
                        }
                        Ok(())
                    }
                    Some(reason) => Err(Error::stream(id, reason)),
                    None => Ok(()),
                }
            }
        }
    }

    fn decode_discard(&mut self, block: &Bytes) -> Result<(), Error> {
        self.decoder
            .decode_fields(block, |_| {})
            .map_err(compression_error)
    }

    fn open_stream(&mut self, id: StreamId, block: Bytes, end_stream: bool) -> Result<(), Error> {
        let mut builder = HeadBuilder::new(self.config.max_header_list_size as usize, false);
        self.decoder
            .decode_fields(&block, |h| builder.field(h))
            .map_err(compression_error)?;
        let content_length = builder.content_length();
        let (verdict, head) = builder.finish();
        // A request ended by its HEADERS frame has no content, so a content-length
        // other than 0 cannot match it (§8.1.1).
        let empty_mismatch = end_stream && content_length.is_some_and(|len| len != 0);
        if verdict == Verdict::Malformed || empty_mismatch {
            // §8.1.1: malformed requests are a stream error of type PROTOCOL_ERROR.
            return Err(Error::stream(id, Reason::PROTOCOL_ERROR));
        }
        let key = self.streams.insert(
            id,
            self.config.initial_stream_window,
            self.peer_initial_window,
        );
        let stream = self.streams.get(key);
        stream.recv_closed = end_stream;
        stream.content_remaining = content_length;
        stream.compressed_allowed = head.encoding.is_some();
        match verdict {
            Verdict::Accept => {
                stream.handler_active = true;
                stream.served = true;
                if self.request_heads.capacity() == 0 {
                    // One head at a time is the usual case, and a head is large:
                    // the first allocation holds one; concurrent requests grow it.
                    self.request_heads.reserve_exact(1);
                }
                self.request_heads.push_back(head);
                self.events.push_back(QueuedEvent::Request { id });
                if end_stream {
                    self.events.push_back(QueuedEvent::EndOfStream { id });
                }
            }
            Verdict::HttpStatus(code) => {
                stream.head = HeadState::QueuedHttp(code);
                self.schedule(key);
            }
            Verdict::GrpcStatus(code, why) => {
                stream.trailers = Some(OutTrailers {
                    code,
                    message: Bytes::from_static(why.as_bytes()),
                    details: None,
                });
                self.schedule(key);
            }
            Verdict::Malformed => unreachable!("answered above"),
        }
        Ok(())
    }

    // ----- DATA -----

    fn on_data(&mut self, data: Data) -> Result<(), Error> {
        let id = data.stream_id;
        // Connection flow control counts every DATA frame, whatever its stream (§6.9).
        if self.conn_recv.consume(data.flow_len).is_err() {
            return Err(Error::connection(
                Reason::FLOW_CONTROL_ERROR,
                "connection window exceeded",
            ));
        }
        if data.payload.is_empty() && !data.end_stream {
            self.count_empty_frame()?;
        }
        let Some(key) = self.streams.find(id) else {
            self.conn_recv.release(data.flow_len);
            if self.is_idle(id) {
                // §5.1 idle: only HEADERS and PRIORITY may be received.
                return Err(Error::connection(
                    Reason::PROTOCOL_ERROR,
                    "DATA on an idle stream",
                ));
            }
            // Frames the client sent before it saw our RST_STREAM or GOAWAY.
            if self.recently_reset.contains(id) || id > self.go_away_last_id {
                return Ok(());
            }
            return Err(Error::stream(id, Reason::STREAM_CLOSED));
        };
        let max_message_size = self.config.max_message_size;
        let stream = self.streams.get(key);
        if stream.reset || stream.recv_closed {
            self.conn_recv.release(data.flow_len);
            return if stream.reset {
                Ok(())
            } else {
                Err(Error::stream(id, Reason::STREAM_CLOSED))
            };
        }
        if stream.recv_window.consume(data.flow_len).is_err() {
            self.conn_recv.release(data.flow_len);
            return Err(Error::stream(id, Reason::FLOW_CONTROL_ERROR));
        }
        if let Some(remaining) = &mut stream.content_remaining {
            let Some(left) = remaining.checked_sub(data.payload.len() as u64) else {
                // More DATA than the request's content-length declared (§8.1.1).
                self.conn_recv.release(data.flow_len);
                return Err(Error::stream(id, Reason::PROTOCOL_ERROR));
            };
            *remaining = left;
        }
        if !stream.handler_active {
            // Nobody reads this stream (the codec answered it, or its handler is
            // done): discard the data and hand its credit straight back.
            self.conn_recv.release(data.flow_len);
            return if data.end_stream {
                self.end_of_request(key)
            } else {
                Ok(())
            };
        }
        // Padding is never delivered: credit it back now.
        let mut release_now = data.flow_len - data.payload.len() as u32;
        stream.held += data.payload.len() as u32;
        let compressed_allowed = stream.compressed_allowed;
        let mut bad_compression = false;
        let events = &mut self.events;
        let pending_app = &mut stream.pending_app;
        let buffered_before = stream.decoder.buffered();
        let result = stream
            .decoder
            .push(data.payload, max_message_size, |message| {
                if message.compressed && !compressed_allowed {
                    bad_compression = true;
                }
                if !bad_compression {
                    *pending_app = pending_app.saturating_add(message.data.len() as u32 + 5);
                    events.push_back(QueuedEvent::Message {
                        id,
                        compressed: message.compressed,
                        data: message.data,
                    });
                }
            });
        // O(1): the change in this stream's partial message is the change in the
        // connection's total (a poisoned decoder holds nothing).
        let buffered_after = stream.decoder.buffered();
        self.partial_message_bytes = self.partial_message_bytes - buffered_before + buffered_after;
        if let Err(error) = result {
            self.conn_recv.release(release_now);
            stream.recv_closed |= data.end_stream;
            return self.grpc_stream_error(key, message_status(error));
        }
        // Only a stream whose partial message grew can cross the budget, so a
        // stream completing messages is never failed for what others hold. The
        // frame's bytes are already copied: the budget may be overshot by at most
        // one frame's payload, for as long as it takes to discard it below.
        let max_partial = self.config.max_partial_message_bytes;
        if buffered_after > buffered_before && self.partial_message_bytes > max_partial {
            self.conn_recv.release(release_now);
            stream.recv_closed |= data.end_stream;
            let why = format!("connection's partly received messages exceed {max_partial} bytes");
            return self.grpc_stream_error(
                key,
                ResponseStatus {
                    code: status::RESOURCE_EXHAUSTED,
                    message: Bytes::from(why),
                    details: None,
                },
            );
        }
        // When the application has taken every message delivered so far, what is
        // buffered is part of the message it waits for; that is bounded by the
        // message size limit and the connection's `max_partial_message_bytes`
        // (checked above), and holding its credit could deadlock a message
        // larger than the window. Otherwise the credit waits for consumption.
        if stream.pending_app == 0 {
            release_now += stream.take_held();
        }
        if bad_compression {
            self.conn_recv.release(release_now);
            stream.recv_closed |= data.end_stream;
            return self.grpc_stream_error(
                key,
                ResponseStatus::new(status::INTERNAL, "compressed message without grpc-encoding"),
            );
        }
        if release_now > 0 {
            stream.recv_window.release(release_now);
            self.conn_recv.release(release_now);
            if let Some(increment) = stream.recv_window.take_update() {
                if !data.end_stream {
                    self.control.push_back(Control::WindowUpdate(id, increment));
                }
            }
        }
        if data.end_stream {
            return self.finish_request(key);
        }
        Ok(())
    }

    /// The client ended the request, with END_STREAM on DATA or with trailers: what
    /// it declared and what is buffered must add up.
    fn finish_request(&mut self, key: Key) -> Result<(), Error> {
        let stream = self.streams.get(key);
        // §8.1.1: "malformed if the value of a content-length header field does not
        // equal the sum of the DATA frame payload lengths".
        if stream.content_remaining.is_some_and(|left| left != 0) {
            return Err(Error::stream(stream.id, Reason::PROTOCOL_ERROR));
        }
        if stream.handler_active {
            if let Err(error) = stream.decoder.finish() {
                // The client is done sending: the status alone ends the stream.
                stream.recv_closed = true;
                return self.grpc_stream_error(key, message_status(error));
            }
        }
        self.end_of_request(key)
    }

    fn end_of_request(&mut self, key: Key) -> Result<(), Error> {
        let stream = self.streams.get(key);
        stream.recv_closed = true;
        let id = stream.id;
        if stream.handler_active {
            self.events.push_back(QueuedEvent::EndOfStream { id });
        }
        self.maybe_remove(key);
        Ok(())
    }

    // ----- RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE -----

    fn on_reset(&mut self, reset: Reset) -> Result<(), Error> {
        let id = reset.stream_id;
        let Some(key) = self.streams.find(id) else {
            if self.is_idle(id) {
                // §6.4: RST_STREAM on an idle stream is a connection error PROTOCOL_ERROR.
                return Err(Error::connection(
                    Reason::PROTOCOL_ERROR,
                    "RST_STREAM on an idle stream",
                ));
            }
            return Ok(());
        };
        let stream = self.streams.get(key);
        if stream.reset {
            // Ended on our side already, possibly with a status still queued, which
            // must not follow the client's RST_STREAM (§6.4).
            if !stream.send_closed {
                self.close_stream(key, reset.reason, None);
            }
            return Ok(());
        }
        let unfinished = !stream.send_closed;
        self.close_stream(key, reset.reason, Some(Initiator::Remote));
        if unfinished {
            self.peer_resets += 1;
            if self.peer_resets > self.config.max_peer_resets {
                return Err(Error::connection(
                    Reason::ENHANCE_YOUR_CALM,
                    "too many streams reset by the client",
                ));
            }
        }
        Ok(())
    }

    fn on_settings(&mut self, settings: Settings) -> Result<(), Error> {
        if settings.ack {
            if !self.settings_sent || self.settings_acked {
                // An ACK for SETTINGS we never sent: a confused peer; ignore it rather
                // than fail, there is no state it could corrupt.
                return Ok(());
            }
            self.settings_acked = true;
            // Our smaller table size (if configured) binds the client from now on.
            self.decoder
                .set_max_table_size(self.config.header_table_size as usize);
            if self.phase != Phase::FirstSettings {
                self.handshake_deadline = None;
            }
            return Ok(());
        }
        if let Some(size) = settings.header_table_size {
            self.encoder.update_max_size(size as usize);
        }
        if let Some(size) = settings.max_frame_size {
            self.peer_max_frame_size = size;
        }
        if let Some(window) = settings.initial_window_size {
            // §6.9.2: the change applies to every stream's send window, possibly
            // making it negative; one exceeding 2^31 - 1 is a FLOW_CONTROL_ERROR.
            let delta = window as i64 - self.peer_initial_window as i64;
            self.peer_initial_window = window;
            let mut overflow = false;
            let ready = &mut self.ready;
            self.streams.for_each(|key, stream| {
                overflow |= stream.send_window.adjust(delta).is_err();
                if delta > 0 && stream.has_output() && !stream.scheduled {
                    stream.scheduled = true;
                    ready.push_back(key);
                }
            });
            if overflow {
                return Err(Error::connection(
                    Reason::FLOW_CONTROL_ERROR,
                    "SETTINGS_INITIAL_WINDOW_SIZE overflows a window",
                ));
            }
        }
        self.queue_control_reply(Control::SettingsAck)
    }

    fn on_ping(&mut self, ping: Ping) -> Result<(), Error> {
        if ping.ack {
            if ping.payload == DRAIN_PING && self.phase == Phase::DrainAnnounced {
                self.announce_last_stream();
            }
            self.note_ping_ack(ping.payload);
            return Ok(());
        }
        self.check_ping_policy()?;
        self.queue_control_reply(Control::PingAck(ping.payload))
    }

    fn on_go_away(&mut self, go_away: GoAway) -> Result<(), Error> {
        if go_away.reason != Reason::NO_ERROR {
            // §6.8: "Endpoints SHOULD always send a GOAWAY frame before closing a
            // connection so that the remote peer can know whether a stream has been
            // partially processed or not."
            if self.phase != Phase::Closed {
                let last = self.max_client_id.min(self.go_away_last_id);
                self.control
                    .push_back(Control::GoAway(last, Reason::NO_ERROR, ""));
            }
            self.events.push_back(QueuedEvent::Closed {
                error: Error::connection(go_away.reason, "GOAWAY from client"),
                initiator: Initiator::Remote,
            });
            self.cancel_all(go_away.reason);
            self.phase = Phase::Closed;
            self.handshake_deadline = None;
            return Ok(());
        }
        self.events
            .push_back(QueuedEvent::GoAway(Box::new(go_away)));
        Ok(())
    }

    fn on_window_update(&mut self, update: WindowUpdate) -> Result<(), Error> {
        if update.stream_id.is_zero() {
            if self.conn_send.adjust(update.increment as i64).is_err() {
                return Err(Error::connection(
                    Reason::FLOW_CONTROL_ERROR,
                    "connection send window overflow",
                ));
            }
            return Ok(());
        }
        let Some(key) = self.streams.find(update.stream_id) else {
            if self.is_idle(update.stream_id) {
                return Err(Error::connection(
                    Reason::PROTOCOL_ERROR,
                    "WINDOW_UPDATE on an idle stream",
                ));
            }
            return Ok(());
        };
        let stream = self.streams.get(key);
        if stream.send_window.adjust(update.increment as i64).is_err() {
            // §6.9.1: a stream window above 2^31 - 1 is a stream error FLOW_CONTROL_ERROR.
            return Err(Error::stream(update.stream_id, Reason::FLOW_CONTROL_ERROR));
        }
        if stream.has_output() {
            self.schedule(key);
        }
        Ok(())
    }

    fn queue_control_reply(&mut self, reply: Control) -> Result<(), Error> {
        self.pending_control_replies += 1;
        if self.pending_control_replies > self.config.max_pending_control_frames {
            return Err(Error::connection(
                Reason::ENHANCE_YOUR_CALM,
                "too many unanswered PING/SETTINGS",
            ));
        }
        self.control.push_back(reply);
        Ok(())
    }

    // ----- errors and closing -----

    /// A stream error detected by the codec: RST_STREAM, and the engine hears of it.
    fn stream_error(&mut self, id: StreamId, reason: Reason) {
        self.error_resets += 1;
        if self.error_resets > self.config.max_error_resets {
            self.connection_error(Error::connection(
                Reason::ENHANCE_YOUR_CALM,
                "too many stream errors",
            ));
            return;
        }
        if let Some(key) = self.streams.find(id) {
            // A stream already reset was answered once; frames the peer sent
            // before it saw that are not new errors (§5.1, "closed").
            if self.streams.get(key).reset {
                return;
            }
            self.close_stream(key, reason, Some(Initiator::Local));
        }
        self.queue_reset(id, reason);
    }

    /// Answers a stream with a gRPC error status of the codec's own (message too
    /// large, bad compression flag, truncated message): trailers, then RST_STREAM
    /// (NO_ERROR) since the client has not finished sending.
    fn grpc_stream_error(&mut self, key: Key, status: ResponseStatus) -> Result<(), Error> {
        self.discard_partial(key);
        let stream = self.streams.get(key);
        let id = stream.id;
        stream.out.clear();
        stream.out_offset = 0;
        stream.queued = 0;
        stream.trailers = Some(OutTrailers {
            code: status.code,
            message: status.message,
            details: status.details,
        });
        // Stop reading the request: whatever else arrives is discarded, and the
        // trailers will be followed by RST_STREAM(NO_ERROR).
        stream.reset = true;
        let held = stream.take_held();
        let handler_active = stream.handler_active;
        self.conn_recv.release(held);
        self.recently_reset.push(id);
        if handler_active {
            self.events.push_back(QueuedEvent::Reset {
                id,
                reason: Reason::CANCEL,
                initiator: Initiator::Local,
            });
        }
        // The trailers are not flow-controlled: they must not wait in `conn_blocked`.
        self.recheck_blocked = true;
        self.schedule(key);
        Ok(())
    }

    /// Ends a stream in both directions without a response (reset by either side).
    /// `notify` says whether the engine must hear of it, and who reset the stream.
    fn close_stream(&mut self, key: Key, reason: Reason, notify: Option<Initiator>) {
        self.discard_partial(key);
        let stream = self.streams.get(key);
        let id = stream.id;
        stream.clear_send();
        stream.recv_closed = true;
        stream.reset = true;
        let held = stream.take_held();
        let handler_active = stream.handler_active;
        // A scheduled stream is removed by `poll_transmit`; it may sit in `conn_blocked`.
        self.recheck_blocked |= stream.scheduled;
        self.conn_recv.release(held);
        self.recently_reset.push(id);
        if let (true, Some(initiator)) = (handler_active, notify) {
            self.events.push_back(QueuedEvent::Reset {
                id,
                reason,
                initiator,
            });
        }
        self.maybe_remove(key);
    }

    fn queue_reset(&mut self, id: StreamId, reason: Reason) {
        self.recently_reset.push(id);
        self.control.push_back(Control::Reset(id, reason));
    }

    fn connection_error(&mut self, error: Error) {
        if self.phase == Phase::Closed {
            return;
        }
        let Error::Connection { reason, debug } = error else {
            unreachable!("connection errors only")
        };
        // §6.8: "Endpoints MUST NOT increase the value they send in the last stream
        // identifier", so a drain's final GOAWAY caps this one.
        let last = self.max_client_id.min(self.go_away_last_id);
        self.control.push_back(Control::GoAway(last, reason, debug));
        self.events.push_back(QueuedEvent::Closed {
            error,
            initiator: Initiator::Local,
        });
        self.cancel_all(reason);
        self.phase = Phase::Closed;
        self.handshake_deadline = None;
    }

    /// Drops every stream's pending output; handlers are cancelled by the engine on
    /// the `Closed` event.
    fn cancel_all(&mut self, _reason: Reason) {
        let mut freed = 0;
        self.streams.for_each(|_, stream| {
            stream.clear_send();
            stream.recv_closed = true;
            stream.reset = true;
            freed += stream.decoder.discard();
        });
        debug_assert_eq!(freed, self.partial_message_bytes);
        self.partial_message_bytes -= freed.min(self.partial_message_bytes);
        self.ready.clear();
        self.conn_blocked.clear();
    }

    /// Forgets a stream whose exchange is over in both directions and whose
    /// handler has finished.
    fn maybe_remove(&mut self, key: Key) {
        let stream = self.streams.get(key);
        if stream.is_done() && !stream.scheduled {
            let held = stream.take_held();
            self.conn_recv.release(held);
            // The record is reused, not dropped: its decoder must not keep a partial
            // message (or its count) past the stream.
            self.discard_partial(key);
            self.streams.remove(key);
        }
    }

    /// Frees the message `key` was receiving in part and takes its bytes off the
    /// connection's total: for every path after which the stream reads no more.
    fn discard_partial(&mut self, key: Key) {
        let freed = self.streams.get(key).decoder.discard();
        debug_assert!(freed <= self.partial_message_bytes);
        self.partial_message_bytes -= freed.min(self.partial_message_bytes);
    }

    fn schedule(&mut self, key: Key) {
        let stream = self.streams.get(key);
        if !stream.scheduled {
            stream.scheduled = true;
            self.ready.push_back(key);
        }
    }

    fn conn_recv_update_due(&self) -> bool {
        let mut window = self.conn_recv;
        window.take_update().is_some()
    }

    // ----- commands -----

    fn sendable(&mut self, id: StreamId) -> Result<Key, StreamClosed> {
        let key = self.streams.find(id).ok_or(StreamClosed(id))?;
        let stream = self.streams.get(key);
        if stream.send_closed || stream.trailers.is_some() || self.phase == Phase::Closed {
            return Err(StreamClosed(id));
        }
        Ok(key)
    }

    /// Queues the response headers (`:status 200`, `content-type: application/grpc`)
    /// with custom metadata. Optional: the first message or the trailers send them
    /// when they were not sent explicitly.
    pub fn send_headers(
        &mut self,
        id: StreamId,
        metadata: impl IntoIterator<Item = (Bytes, Bytes)>,
    ) -> Result<(), StreamClosed> {
        let key = self.sendable(id)?;
        let stream = self.streams.get(key);
        if stream.head != HeadState::Idle {
            return Err(StreamClosed(id));
        }
        stream.head_metadata.extend(metadata);
        stream.head = HeadState::Queued;
        self.schedule(key);
        Ok(())
    }

    /// Sets the encodings the response headers declare: `encoding` becomes
    /// `grpc-encoding` (the compression of messages sent with `compressed`), and
    /// `accept_encoding` becomes `grpc-accept-encoding` (also in a Trailers-Only
    /// response, which is where an UNIMPLEMENTED answer to an unsupported
    /// `grpc-encoding` lists what the server takes). These are header fields gRPC
    /// reserves, so they cannot go in as custom metadata. Values that are not
    /// printable ASCII are left out. Takes effect only before the headers are
    /// written.
    pub fn set_encodings(
        &mut self,
        id: StreamId,
        encoding: Option<Bytes>,
        accept_encoding: Option<Bytes>,
    ) -> Result<(), StreamClosed> {
        let key = self.sendable(id)?;
        let stream = self.streams.get(key);
        stream.response_encoding = encoding.filter(is_sendable_encoding);
        stream.accept_encoding = accept_encoding.filter(is_sendable_encoding);
        Ok(())
    }

    /// Sets the `grpc-accept-encoding` of every response whose stream sets none
    /// with [`set_encodings`](Self::set_encodings). What a server accepts is the
    /// same for every call, so it is checked once here rather than per
    /// response. A value that is not printable ASCII is left out.
    pub fn set_accept_encoding(&mut self, accept_encoding: Option<Bytes>) {
        self.accept_encoding = accept_encoding.filter(is_sendable_encoding);
    }

    /// Queues one response message (without its 5-byte prefix, which the codec adds).
    /// `compressed` says `data` is already compressed with the response encoding.
    pub fn send_message(
        &mut self,
        id: StreamId,
        data: Bytes,
        compressed: bool,
    ) -> Result<(), StreamClosed> {
        let key = self.sendable(id)?;
        let len = u32::try_from(data.len()).map_err(|_| StreamClosed(id))?;
        let stream = self.streams.get(key);
        if stream.head == HeadState::Idle {
            stream.head = HeadState::Queued;
        }
        let mut prefix = [0; 5];
        prefix[0] = compressed as u8;
        prefix[1..].copy_from_slice(&len.to_be_bytes());
        stream.push_out(OutMessage { prefix, data });
        self.schedule(key);
        Ok(())
    }

    /// Queues the trailers that end the response. Without headers sent or queued
    /// before, this becomes a Trailers-Only response (one HEADERS frame). When the
    /// client has not finished sending, an RST_STREAM(NO_ERROR) follows.
    pub fn send_trailers(
        &mut self,
        id: StreamId,
        status: ResponseStatus,
        metadata: impl IntoIterator<Item = (Bytes, Bytes)>,
    ) -> Result<(), StreamClosed> {
        let key = self.sendable(id)?;
        let stream = self.streams.get(key);
        stream.trailer_metadata.extend(metadata);
        stream.trailers = Some(OutTrailers {
            code: status.code,
            message: status.message,
            details: status.details,
        });
        self.schedule(key);
        Ok(())
    }

    /// Resets a stream (RST_STREAM with `reason`), dropping whatever was queued.
    pub fn reset(&mut self, id: StreamId, reason: Reason) -> Result<(), StreamClosed> {
        let key = self.streams.find(id).ok_or(StreamClosed(id))?;
        if self.streams.get(key).reset {
            return Err(StreamClosed(id));
        }
        self.close_stream(key, reason, None);
        self.queue_reset(id, reason);
        Ok(())
    }

    /// The application consumed `len` bytes of received messages on `id` (a message
    /// counts `data.len() + 5`): the client may send that much more.
    pub fn release_capacity(&mut self, id: StreamId, len: usize) {
        let Some(key) = self.streams.find(id) else {
            return;
        };
        let stream = self.streams.get(key);
        let len = len.min(u32::MAX as usize) as u32;
        stream.pending_app = stream.pending_app.saturating_sub(len);
        // Everything delivered is consumed: the rest held is a partial message the
        // application is waiting for (see `on_data`), so release it all.
        let len = if stream.pending_app == 0 {
            stream.held
        } else {
            len.min(stream.held)
        };
        if len == 0 {
            return;
        }
        stream.held -= len;
        stream.recv_window.release(len);
        let update = if stream.recv_closed {
            None
        } else {
            stream.recv_window.take_update()
        };
        self.conn_recv.release(len);
        if let Some(increment) = update {
            self.control.push_back(Control::WindowUpdate(id, increment));
        }
    }

    /// The handler of `id` finished (or was cancelled and dropped): the stream stops
    /// counting against the concurrency limit once its frames are out. If the
    /// response was not ended, the stream is reset with CANCEL.
    pub fn release_stream(&mut self, id: StreamId) {
        let Some(key) = self.streams.find(id) else {
            return;
        };
        // Nobody reads the stream any more: later DATA is discarded unparsed
        // (`on_data`), so the message it was receiving never completes.
        self.discard_partial(key);
        let stream = self.streams.get(key);
        stream.handler_active = false;
        if !stream.send_closed && stream.trailers.is_none() {
            self.close_stream(key, Reason::CANCEL, None);
            self.queue_reset(id, Reason::CANCEL);
            return;
        }
        self.maybe_remove(key);
    }

    /// Starts a graceful shutdown the way gRPC servers do: GOAWAY(2^31 - 1) and a
    /// PING now; when the PING is acknowledged, a GOAWAY with the last stream id
    /// actually received, after which new streams are ignored and the connection
    /// closes once the streams it has are done. Calling it again does nothing.
    /// Without the PING's ACK within `keepalive_timeout` of writing it, the final
    /// GOAWAY goes out anyway.
    pub fn go_away(&mut self) {
        self.start_drain("");
    }

    /// Ends the connection at once with GOAWAY(`reason`), for a forced close after the
    /// drain grace period or an engine-level error. Handlers should be cancelled.
    pub fn abort(&mut self, reason: Reason, debug: &'static str) {
        self.connection_error(Error::connection(reason, debug));
    }

    // ----- outputs -----

    /// The next thing the engine must act on.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        Some(match self.events.pop_front()? {
            QueuedEvent::Request { id } => {
                let head = self.request_heads.pop_front();
                debug_assert!(head.is_some(), "a head for every queued request");
                Event::Request {
                    id,
                    head: head.unwrap_or_default(),
                }
            }
            QueuedEvent::Message {
                id,
                compressed,
                data,
            } => Event::Message {
                id,
                message: Message { compressed, data },
            },
            QueuedEvent::EndOfStream { id } => Event::EndOfStream { id },
            QueuedEvent::Reset {
                id,
                reason,
                initiator,
            } => Event::Reset {
                id,
                reason,
                initiator,
            },
            QueuedEvent::GoAway(go_away) => {
                let GoAway {
                    last_stream_id,
                    reason,
                    debug,
                } = *go_away;
                Event::GoAway {
                    last_stream_id,
                    reason,
                    debug,
                }
            }
            QueuedEvent::Closed { error, initiator } => Event::Closed { error, initiator },
        })
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("phase", &self.phase)
            .field("streams", &self.streams.len())
            .field("max_client_id", &self.max_client_id)
            .finish_non_exhaustive()
    }
}

fn compression_error(_: hpack::DecoderError) -> Error {
    Error::connection(Reason::COMPRESSION_ERROR, "invalid header block")
}

fn message_status(error: MessageError) -> ResponseStatus {
    let message = match error {
        MessageError::TooLarge { .. } => "message larger than the server's limit",
        MessageError::InvalidFlag(_) => "invalid compressed flag",
        MessageError::Truncated { .. } => "stream ended inside a message",
    };
    ResponseStatus::new(error.grpc_status(), message)
}

#[cfg(test)]
mod tests;
