//! Producing bytes: control frames first, then every stream with something to say,
//! all into one buffer so that one write carries the frames of many RPCs.

use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};

use super::store::{HeadState, OutTrailers, Stream};
use super::{Connection, Control, Phase};
use crate::error::Reason;
use crate::frame::{
    Continuation, Data, GoAway, Headers, Ping, Reset, Settings, StreamId, WindowUpdate,
    DEFAULT_MAX_FRAME_SIZE, DEFAULT_WINDOW_SIZE,
};
use crate::grpc::{metadata, percent, status};
use crate::hpack::{self, Encoder, Indexing};

impl Connection {
    /// Writes every frame that can be sent now, for all streams, into `out`, and
    /// returns how many bytes it added. Call it once per loop turn after handling
    /// events, and write the result in one go.
    ///
    /// What is written is bounded: DATA by the flow-control windows, control replies
    /// by `max_pending_control_frames`, header blocks by the streams that exist.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut BytesMut) -> usize {
        self.transmit(now, out, None)
    }

    /// [`poll_transmit`](Self::poll_transmit) for vectored writes: runs of DATA
    /// payload of at least `min_splice` bytes are not copied into `out` but
    /// pushed to `spliced` as `(position in out, slice of the message)`, so a
    /// large message is written from where the application encoded it. What to
    /// write is `out[..at₀]`, `data₀`, `out[at₀..at₁]`, `data₁`, …, `out[atₙ..]`;
    /// positions do not decrease. Returns the bytes added to both.
    ///
    /// Costs a `Bytes` clone (a reference count) and a vector entry per spliced
    /// run instead of copying it; below a few KiB copying is cheaper than the
    /// extra iovec and the reference count.
    pub fn poll_transmit_vectored(
        &mut self,
        now: Instant,
        out: &mut BytesMut,
        spliced: &mut Vec<(usize, Bytes)>,
        min_splice: usize,
    ) -> usize {
        let listed = spliced.len();
        let added = self.transmit(
            now,
            out,
            Some(Splice {
                list: spliced,
                min: min_splice.max(1),
            }),
        );
        added
            + spliced[listed..]
                .iter()
                .map(|(_, data)| data.len())
                .sum::<usize>()
    }

    fn transmit(
        &mut self,
        now: Instant,
        out: &mut BytesMut,
        mut splice: Option<Splice<'_>>,
    ) -> usize {
        let start = out.len();
        let preface = !self.settings_sent;
        if preface {
            // §3.4: the server preface is a SETTINGS frame, the first frame we send.
            self.our_settings().encode(out);
            self.settings_sent = true;
        }
        while let Some(control) = self.control.pop_front() {
            match control {
                Control::SettingsAck => Settings::ACK.encode(out),
                Control::PingAck(payload) => Ping { ack: true, payload }.encode(out),
                Control::Ping(payload) => {
                    Ping {
                        ack: false,
                        payload,
                    }
                    .encode(out);
                    self.note_ping_sent(payload, now);
                }
                Control::Reset(stream_id, reason) => Reset { stream_id, reason }.encode(out),
                Control::WindowUpdate(stream_id, increment) => WindowUpdate {
                    stream_id,
                    increment,
                }
                .encode(out),
                Control::GoAway(last, reason, debug) => {
                    GoAway::encode(last, reason, debug.as_bytes(), out)
                }
            }
        }
        self.pending_control_replies = 0;
        if self.phase == Phase::Closed {
            self.ready.clear();
            self.conn_blocked.clear();
            return out.len() - start;
        }
        // The connection window can only grow by WINDOW_UPDATE (§6.9.2): with the
        // preface it is opened to its configured size, however small the step.
        let update = if preface {
            self.conn_recv.take_all()
        } else {
            self.conn_recv.take_update()
        };
        if let Some(increment) = update {
            WindowUpdate {
                stream_id: StreamId::ZERO,
                increment,
            }
            .encode(out);
        }
        if std::mem::take(&mut self.recheck_blocked) || self.conn_send.available() > 0 {
            self.ready.extend(self.conn_blocked.drain(..));
        }
        let streams_start = out.len();
        for _ in 0..self.ready.len() {
            let Some(key) = self.ready.pop_front() else {
                break;
            };
            let Connection {
                streams,
                encoder,
                scratch,
                value_scratch,
                conn_send,
                peer_max_frame_size,
                accept_encoding,
                ..
            } = self;
            let stream = streams.get(key);
            stream.scheduled = false;
            let queued_before = stream.queued;
            let mut writer = StreamWriter {
                encoder,
                scratch,
                value_scratch,
                default_accept: accept_encoding.as_ref(),
                conn_window: conn_send,
                max_frame: *peer_max_frame_size as usize,
                out,
                splice: splice.as_mut(),
            };
            let completed = writer.write(stream);
            self.track_stall(key, queued_before, now);
            let stream = self.streams.get(key);
            if completed {
                if stream.reset {
                    self.recently_reset.push(stream.id);
                }
                // A call the engine answered in full restores the budget a reset
                // took; one the codec answered alone cost the client nothing.
                if stream.served {
                    self.peer_resets = self.peer_resets.saturating_sub(1);
                }
            }
            // Still has data with its own window open: it waits for the connection
            // window, keeping its place in line for when that opens.
            if stream.has_output() && stream.send_window.available() > 0 && !stream.out.is_empty() {
                stream.scheduled = true;
                self.conn_blocked.push_back(key);
            }
            self.maybe_remove(key);
        }
        if out.len() > streams_start {
            self.note_stream_frames_sent();
        }
        if self.phase == Phase::Draining && self.streams.len() == 0 {
            self.phase = Phase::Closed;
        }
        self.track_idle(now);
        out.len() - start
    }

    fn our_settings(&self) -> Settings {
        let c = &self.config;
        Settings {
            max_concurrent_streams: Some(c.max_concurrent_streams),
            initial_window_size: (c.initial_stream_window != DEFAULT_WINDOW_SIZE)
                .then_some(c.initial_stream_window),
            max_frame_size: (c.max_frame_size != DEFAULT_MAX_FRAME_SIZE)
                .then_some(c.max_frame_size),
            max_header_list_size: Some(c.max_header_list_size),
            header_table_size: (c.header_table_size as usize != hpack::DEFAULT_TABLE_SIZE)
                .then_some(c.header_table_size),
            ..Settings::default()
        }
    }
}

/// The parts of the connection that writing one stream's frames needs.
/// Where DATA payload runs go instead of the output buffer, and from what size.
struct Splice<'a> {
    list: &'a mut Vec<(usize, Bytes)>,
    min: usize,
}

struct StreamWriter<'a, 'b> {
    encoder: &'a mut Encoder,
    scratch: &'a mut BytesMut,
    value_scratch: &'a mut BytesMut,
    /// The connection's `grpc-accept-encoding`, for streams that set none.
    default_accept: Option<&'a Bytes>,
    conn_window: &'a mut super::flow::SendWindow,
    max_frame: usize,
    out: &'a mut BytesMut,
    splice: Option<&'a mut Splice<'b>>,
}

impl StreamWriter<'_, '_> {
    /// Writes what `stream` may send now; returns true when this ended its response.
    fn write(&mut self, stream: &mut Stream) -> bool {
        if stream.send_closed {
            return false;
        }
        match stream.head {
            HeadState::QueuedHttp(code) => {
                self.http_status(stream.id, code);
                return self.finish(stream);
            }
            HeadState::Queued => {
                self.header_block(stream.id, false, |w| {
                    w.scratch.extend_from_slice(hpack::RESPONSE_HEADERS_GRPC);
                    w.encoding_fields(stream, true);
                    for (name, value) in stream.head_metadata.drain(..) {
                        w.metadata_field(&name, &value);
                    }
                });
                stream.head = HeadState::Sent;
            }
            HeadState::Idle | HeadState::Sent => {}
        }
        self.data(stream);
        if stream.out.is_empty() {
            if let Some(trailers) = stream.trailers.take() {
                let trailers_only = stream.head == HeadState::Idle;
                let metadata = std::mem::take(&mut stream.trailer_metadata);
                self.header_block(stream.id, true, |w| {
                    if trailers_only {
                        w.scratch.extend_from_slice(hpack::RESPONSE_HEADERS_GRPC);
                        // No messages follow, so only what we accept is worth saying.
                        w.encoding_fields(stream, false);
                    }
                    w.status_fields(&trailers);
                    for (name, value) in &metadata {
                        w.metadata_field(name, value);
                    }
                });
                stream.trailer_metadata = metadata;
                stream.trailer_metadata.clear();
                stream.head = HeadState::Sent;
                return self.finish(stream);
            }
        }
        false
    }

    /// END_STREAM is written. If the client is still sending, tell it to stop:
    /// "RST_STREAM(NO_ERROR)" after a complete response (RFC 9113 §8.1).
    fn finish(&mut self, stream: &mut Stream) -> bool {
        stream.send_closed = true;
        if !stream.recv_closed {
            Reset {
                stream_id: stream.id,
                reason: Reason::NO_ERROR,
            }
            .encode(self.out);
            stream.recv_closed = true;
            stream.reset = true;
        }
        true
    }

    /// DATA frames for as much of the queue as both windows allow; several small
    /// messages share a frame.
    fn data(&mut self, stream: &mut Stream) {
        while stream.queued > 0 {
            let window = stream
                .send_window
                .available()
                .min(self.conn_window.available())
                .min(self.max_frame);
            if window == 0 {
                return;
            }
            let len = window.min(stream.queued);
            Data::encode_header(stream.id, len, false, self.out);
            let mut left = len;
            while left > 0 {
                let message = stream.out.front().expect("queued bytes imply a message");
                let offset = stream.out_offset;
                let take = left.min(message.len() - offset);
                // The prefix and the payload are written from where they are: a
                // copy into the send buffer, or for a long run none at all.
                let prefix = &message.prefix[offset.min(5)..(offset + take).min(5)];
                self.out.put_slice(prefix);
                let body_start = offset.saturating_sub(5);
                let body_end = (offset + take).saturating_sub(5);
                match self.splice.as_deref_mut() {
                    Some(splice) if body_end - body_start >= splice.min => {
                        let run = message.data.slice(body_start..body_end);
                        splice.list.push((self.out.len(), run));
                    }
                    _ => self.out.put_slice(&message.data[body_start..body_end]),
                }
                left -= take;
                if offset + take == message.len() {
                    stream.out.pop_front();
                    stream.out_offset = 0;
                } else {
                    stream.out_offset = offset + take;
                }
            }
            stream.queued -= len;
            stream.send_window.consume(len);
            self.conn_window.consume(len);
        }
    }

    /// HPACK-encodes a block with `fields` and frames it as HEADERS plus as many
    /// CONTINUATION frames as the peer's frame size needs.
    fn header_block(&mut self, id: StreamId, end_stream: bool, fields: impl FnOnce(&mut Self)) {
        self.scratch.clear();
        self.encoder.begin_block(self.scratch);
        fields(self);
        let block = &self.scratch[..];
        let mut chunks = block.chunks(self.max_frame);
        let first = chunks.next().unwrap_or(&[]);
        Headers::encode_header(
            id,
            first.len(),
            end_stream,
            first.len() == block.len(),
            self.out,
        );
        self.out.put_slice(first);
        let mut written = first.len();
        for chunk in chunks {
            written += chunk.len();
            Continuation::encode_header(id, chunk.len(), written == block.len(), self.out);
            self.out.put_slice(chunk);
        }
    }

    /// A non-200 answer to a request that is not gRPC (RFC 9113 §8.1 response with
    /// END_STREAM), with a gRPC status too for gRPC clients behind such a path.
    fn http_status(&mut self, id: StreamId, code: u16) {
        let why: &[u8] = match code {
            405 => b"method must be POST",
            415 => b"content-type must be application/grpc",
            _ => b"request rejected",
        };
        self.header_block(id, true, |w| {
            w.encoder
                .encode_field(b":status", &itoa3(code), Indexing::No, w.scratch);
            let mut grpc = itoa3(status::INTERNAL as u16);
            w.encoder.encode_field(
                b"grpc-status",
                trim_leading_zeros(&mut grpc),
                Indexing::No,
                w.scratch,
            );
            w.encoder
                .encode_field(b"grpc-message", why, Indexing::No, w.scratch);
        });
    }

    fn status_fields(&mut self, trailers: &OutTrailers) {
        if trailers.code == status::OK && trailers.message.is_empty() && trailers.details.is_none()
        {
            self.scratch.extend_from_slice(hpack::TRAILERS_OK);
            return;
        }
        let mut buf = itoa3(trailers.code.min(999) as u16);
        let digits = trim_leading_zeros(&mut buf);
        // Error codes repeat, so indexing them makes later ones a single byte.
        self.encoder
            .encode_field(b"grpc-status", digits, Indexing::Incremental, self.scratch);
        if !trailers.message.is_empty() {
            self.value_scratch.clear();
            let message = String::from_utf8_lossy(&trailers.message);
            percent::encode(&message, self.value_scratch);
            self.encoder.encode_field(
                b"grpc-message",
                self.value_scratch,
                Indexing::No,
                self.scratch,
            );
        }
        if let Some(details) = &trailers.details {
            self.value_scratch.clear();
            metadata::encode_binary(details, self.value_scratch);
            self.encoder.encode_field(
                b"grpc-status-details-bin",
                self.value_scratch,
                Indexing::No,
                self.scratch,
            );
        }
    }

    /// `grpc-encoding` (with messages to follow) and `grpc-accept-encoding`, as set
    /// by `Connection::set_encodings`, or the connection's accept-encoding
    /// (`Connection::set_accept_encoding`). Indexed: they repeat on every response.
    fn encoding_fields(&mut self, stream: &Stream, with_encoding: bool) {
        if with_encoding {
            if let Some(encoding) = &stream.response_encoding {
                self.encoder.encode_field(
                    b"grpc-encoding",
                    encoding,
                    Indexing::Incremental,
                    self.scratch,
                );
            }
        }
        if let Some(accept) = stream.accept_encoding.as_ref().or(self.default_accept) {
            self.encoder.encode_field(
                b"grpc-accept-encoding",
                accept,
                Indexing::Incremental,
                self.scratch,
            );
        }
    }

    /// Custom metadata: `-bin` values go out base64-encoded (unpadded). Indexed,
    /// since response metadata tends to repeat across calls.
    fn metadata_field(&mut self, name: &[u8], value: &[u8]) {
        // Whatever the engine hands over, the response stays well-formed: fields
        // that are not valid custom metadata, or that gRPC and HTTP/2 reserve,
        // are left out rather than written.
        if !metadata::is_sendable_custom(name, value) {
            return;
        }
        if metadata::is_binary_key(name) {
            self.value_scratch.clear();
            metadata::encode_binary(value, self.value_scratch);
            self.encoder.encode_field(
                name,
                self.value_scratch,
                Indexing::Incremental,
                self.scratch,
            );
        } else {
            self.encoder
                .encode_field(name, value, Indexing::Incremental, self.scratch);
        }
    }
}

/// Three ASCII digits of `n` (< 1000), zero-padded.
fn itoa3(n: u16) -> [u8; 3] {
    [
        b'0' + (n / 100 % 10) as u8,
        b'0' + (n / 10 % 10) as u8,
        b'0' + (n % 10) as u8,
    ]
}

fn trim_leading_zeros(digits: &mut [u8; 3]) -> &[u8] {
    let skip = digits.iter().take(2).take_while(|&&d| d == b'0').count();
    &digits[skip..]
}
