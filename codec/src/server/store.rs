//! Stream records in a slab, found by stream id.
//!
//! Records are reused rather than freed so that the allocations inside them (the
//! send queue, response metadata) survive from one RPC to the next: a steady stream
//! of unary RPCs allocates nothing here.
//!
//! Every connection that made a call keeps its records while it idles, so they are
//! kept small: the slab and a record's send queue start with room for one (a
//! connection making one call at a time never needs more), and the free list
//! runs through the records themselves.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use bytes::Bytes;

use super::flow::{RecvWindow, SendWindow};
use crate::frame::StreamId;
use crate::grpc::MessageDecoder;

/// Index of a stream record in the slab.
pub(crate) type Key = usize;

/// What is queued or done for the response head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeadState {
    /// Nothing queued yet.
    Idle,
    /// `:status 200` + content-type (+ response metadata) waiting to be written.
    Queued,
    /// A non-200 HTTP status waiting to be written, ending the stream.
    QueuedHttp(u16),
    /// Written.
    Sent,
}

/// A message queued for sending: its 5-byte prefix is written with the first chunk.
#[derive(Debug)]
pub(crate) struct OutMessage {
    pub(crate) prefix: [u8; 5],
    pub(crate) data: Bytes,
}

impl OutMessage {
    pub(crate) fn len(&self) -> usize {
        self.prefix.len() + self.data.len()
    }
}

/// The gRPC status the response ends with.
#[derive(Debug, Default)]
pub(crate) struct OutTrailers {
    pub(crate) code: u32,
    pub(crate) message: Bytes,
    pub(crate) details: Option<Bytes>,
}

#[derive(Debug)]
pub(crate) struct Stream {
    pub(crate) id: StreamId,

    // Receive side.
    /// END_STREAM arrived, or the stream was reset: no more frames are expected.
    pub(crate) recv_closed: bool,
    pub(crate) recv_window: RecvWindow,
    /// Flow-control credit the peer used and we have not returned yet.
    pub(crate) held: u32,
    /// Wire bytes of delivered messages the application has not released yet.
    pub(crate) pending_app: u32,
    pub(crate) decoder: MessageDecoder,
    /// Bytes of DATA the request's `content-length` still allows; `None` without one.
    pub(crate) content_remaining: Option<u64>,
    /// The request declared a `grpc-encoding`, so compressed messages are allowed.
    pub(crate) compressed_allowed: bool,

    // Send side.
    pub(crate) send_window: SendWindow,
    pub(crate) head: HeadState,
    pub(crate) head_metadata: Vec<(Bytes, Bytes)>,
    /// `grpc-encoding` of the response messages, written with the headers.
    pub(crate) response_encoding: Option<Bytes>,
    /// `grpc-accept-encoding` to advertise with the headers (or Trailers-Only).
    pub(crate) accept_encoding: Option<Bytes>,
    pub(crate) out: VecDeque<OutMessage>,
    /// Bytes of `out.front()` already written.
    pub(crate) out_offset: usize,
    /// Unwritten message bytes in `out`.
    pub(crate) queued: usize,
    pub(crate) trailers: Option<OutTrailers>,
    pub(crate) trailer_metadata: Vec<(Bytes, Bytes)>,
    /// END_STREAM written, or the stream reset: nothing more will be sent.
    pub(crate) send_closed: bool,
    /// Since when queued data has waited for flow-control window without a byte
    /// of it sent (the send-stall clock); `None` while nothing waits.
    pub(crate) stalled_since: Option<std::time::Instant>,

    // Lifecycle.
    /// Reset by either side: frames for it are ignored from now on.
    pub(crate) reset: bool,
    /// The engine was told about this stream and has not released it: it counts
    /// against the concurrency limit even when closed.
    pub(crate) handler_active: bool,
    /// The request reached the engine (as opposed to one the codec answered by
    /// itself): only such a call, answered in full, offsets a reset by the peer.
    pub(crate) served: bool,
    /// In the connection's queue of streams with something to write.
    pub(crate) scheduled: bool,

    // Slab bookkeeping, in the record so that it costs no allocation of its own.
    /// The record holds a stream (not a free slot).
    live: bool,
    /// The next free record after this one, while this one is free.
    next_free: SlotIndex,
}

impl Stream {
    fn blank() -> Stream {
        Stream {
            id: StreamId::ZERO,
            recv_closed: false,
            recv_window: RecvWindow::new(0),
            held: 0,
            pending_app: 0,
            decoder: MessageDecoder::new(),
            content_remaining: None,
            compressed_allowed: false,
            send_window: SendWindow::new(0),
            head: HeadState::Idle,
            head_metadata: Vec::new(),
            response_encoding: None,
            accept_encoding: None,
            out: VecDeque::new(),
            out_offset: 0,
            queued: 0,
            trailers: None,
            trailer_metadata: Vec::new(),
            send_closed: false,
            stalled_since: None,
            reset: false,
            handler_active: false,
            served: false,
            scheduled: false,
            live: false,
            next_free: NO_SLOT,
        }
    }

    /// Resets the record for a new stream, keeping the capacity of its buffers.
    fn reuse(&mut self, id: StreamId, recv_window: u32, send_window: u32) {
        let head_metadata = std::mem::take(&mut self.head_metadata);
        let trailer_metadata = std::mem::take(&mut self.trailer_metadata);
        let out = std::mem::take(&mut self.out);
        *self = Stream {
            head_metadata,
            trailer_metadata,
            out,
            live: true,
            ..Stream::blank()
        };
        self.head_metadata.clear();
        self.trailer_metadata.clear();
        self.out.clear();
        self.id = id;
        self.recv_window = RecvWindow::new(recv_window);
        self.send_window = SendWindow::new(send_window);
    }

    /// Queues a message for sending. The first one gets a queue of exactly one
    /// slot, which unary responses never outgrow; a streaming response grows it
    /// once or twice in the record's lifetime.
    pub(crate) fn push_out(&mut self, message: OutMessage) {
        if self.out.capacity() == 0 {
            self.out.reserve_exact(1);
        }
        self.queued += message.len();
        self.out.push_back(message);
    }

    /// Drops everything queued for sending, as after a reset.
    pub(crate) fn clear_send(&mut self) {
        self.out.clear();
        self.out_offset = 0;
        self.queued = 0;
        self.trailers = None;
        self.head_metadata.clear();
        self.trailer_metadata.clear();
        if matches!(self.head, HeadState::Queued | HeadState::QueuedHttp(_)) {
            self.head = HeadState::Idle;
        }
        self.send_closed = true;
    }

    /// Everything is said in both directions and the engine let go: the record may go.
    pub(crate) fn is_done(&self) -> bool {
        self.recv_closed && self.send_closed && !self.handler_active
    }

    /// Has something `poll_transmit` could write now or later.
    pub(crate) fn has_output(&self) -> bool {
        !self.send_closed
            && (matches!(self.head, HeadState::Queued | HeadState::QueuedHttp(_))
                || !self.out.is_empty()
                || self.trailers.is_some())
    }

    /// Data credit to hand back to the connection when the stream goes away
    /// without the application releasing what it held.
    pub(crate) fn take_held(&mut self) -> u32 {
        std::mem::take(&mut self.held)
    }
}

/// Hashes stream ids, which are already well spread small integers, with one multiply
/// instead of SipHash on every frame.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A record's index as the slab keeps it: streams are bounded by
/// `max_concurrent_streams`, a `u32`, so indexes fit and the map's entries halve.
type SlotIndex = u32;

/// Ends the free list.
const NO_SLOT: SlotIndex = SlotIndex::MAX;

pub(crate) struct Store {
    slots: Vec<Stream>,
    /// The first free record; the rest follow through `Stream::next_free`.
    free: SlotIndex,
    ids: HashMap<u32, SlotIndex, BuildHasherDefault<IdHasher>>,
}

impl Store {
    pub(crate) fn new() -> Store {
        Store {
            slots: Vec::new(),
            free: NO_SLOT,
            ids: HashMap::default(),
        }
    }

    /// Streams held: open, closing, or waiting for their handler to finish.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn find(&self, id: StreamId) -> Option<Key> {
        self.ids.get(&id.0).map(|&slot| slot as Key)
    }

    pub(crate) fn insert(&mut self, id: StreamId, recv_window: u32, send_window: u32) -> Key {
        let key = if self.free != NO_SLOT {
            let key = self.free as Key;
            self.free = self.slots[key].next_free;
            key
        } else {
            if self.slots.capacity() == 0 {
                // Room for one: a connection that makes one call at a time (and
                // then idles) needs no more; more concurrent streams double it.
                self.slots.reserve_exact(1);
            }
            self.slots.push(Stream::blank());
            self.slots.len() - 1
        };
        self.slots[key].reuse(id, recv_window, send_window);
        // Below `max_concurrent_streams` (a u32) records, so the index fits.
        self.ids.insert(id.0, key as SlotIndex);
        key
    }

    pub(crate) fn remove(&mut self, key: Key) {
        let slot = &mut self.slots[key];
        if std::mem::replace(&mut slot.live, false) {
            self.ids.remove(&slot.id.0);
            // Drop message payloads now so they don't pin read buffers while the slot
            // waits for reuse; the queue's own capacity is kept.
            slot.clear_send();
            slot.next_free = self.free;
            self.free = key as SlotIndex;
        }
    }

    pub(crate) fn get(&mut self, key: Key) -> &mut Stream {
        debug_assert!(self.slots[key].live);
        &mut self.slots[key]
    }

    pub(crate) fn peek(&self, key: Key) -> &Stream {
        debug_assert!(self.slots[key].live);
        &self.slots[key]
    }

    /// Calls `f` on every live stream.
    pub(crate) fn for_each(&mut self, mut f: impl FnMut(Key, &mut Stream)) {
        for (key, slot) in self.slots.iter_mut().enumerate() {
            if slot.live {
                f(key, slot);
            }
        }
    }
}

/// The last few streams we reset, so that frames the peer sent before it saw our
/// RST_STREAM are ignored (§5.1, "closed") instead of treated as errors. The
/// ring is allocated at the first reset: most connections never reset a
/// stream, and every idle one would otherwise carry it.
pub(crate) struct RecentlyReset {
    ids: Option<Box<[u32; 32]>>,
    next: u8,
}

impl RecentlyReset {
    pub(crate) fn new() -> RecentlyReset {
        RecentlyReset { ids: None, next: 0 }
    }

    pub(crate) fn push(&mut self, id: StreamId) {
        let ids = self.ids.get_or_insert_with(|| Box::new([0; 32]));
        ids[usize::from(self.next)] = id.0;
        self.next = (self.next + 1) % ids.len() as u8;
    }

    pub(crate) fn contains(&self, id: StreamId) -> bool {
        id.0 != 0 && self.ids.as_ref().is_some_and(|ids| ids.contains(&id.0))
    }
}
