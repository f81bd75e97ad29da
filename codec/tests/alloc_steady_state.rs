//! Heap allocations per call once a connection is warm.
//!
//! A counting global allocator, switched on only on the test's own thread and only
//! around the engine's side of each turn (read-buffer append, `recv`, events,
//! commands, `poll_transmit`), counts what the codec allocates while serving unary
//! calls. The client's side (building request frames, checking the response) runs
//! with counting off.
//!
//! Setting `ALLOC_TRACE=1` prints a backtrace for the first allocation of each
//! size seen while counting, which names the allocation site.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use ringrpc_codec::frame::{
    flags, Frame, FrameHeader, Kind, StreamId, WindowUpdate, HEADER_LEN, PREFACE,
};
use ringrpc_codec::hpack::{self, Encoder, Indexing};
use ringrpc_codec::server::{Config, Connection, Event, ResponseStatus};

// ----- the counting allocator -----

/// Distinct allocation sizes remembered per measurement; further sizes share the
/// last slot.
const SIZE_SLOTS: usize = 16;

thread_local! {
    // `const` initialisers with `Copy` contents: accessing these never allocates and
    // registers no destructor, so the allocator may use them at any time.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static BY_SIZE: Cell<[(usize, u64); SIZE_SLOTS]> = const { Cell::new([(0, 0); SIZE_SLOTS]) };
}

static TRACE: AtomicBool = AtomicBool::new(false);

struct Counting;

fn note(size: usize) {
    let _ = COUNTING.try_with(|counting| {
        if !counting.get() {
            return;
        }
        ALLOCS.with(|n| n.set(n.get() + 1));
        let mut sizes = BY_SIZE.with(Cell::get);
        let slot = sizes
            .iter()
            .position(|&(s, n)| s == size || n == 0)
            .unwrap_or(SIZE_SLOTS - 1);
        let first_of_size = sizes[slot].1 == 0;
        sizes[slot] = (size, sizes[slot].1 + 1);
        BY_SIZE.with(|b| b.set(sizes));
        if first_of_size && TRACE.load(Ordering::Relaxed) {
            // Capturing and printing allocate: not to be counted, nor to recurse.
            counting.set(false);
            eprintln!(
                "allocation of {size} bytes:\n{}",
                std::backtrace::Backtrace::force_capture()
            );
            counting.set(true);
        }
    });
}

// Safety: every call is forwarded unchanged to the system allocator; counting only
// touches thread-local cells.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // Safety: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // Safety: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // Safety: `ptr` and `layout` come from this allocator, which is `System`'s.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // Safety: as for `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations made on this thread while counting was on.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    total: u64,
    by_size: [(usize, u64); SIZE_SLOTS],
}

impl Counts {
    fn take() -> Counts {
        Counts {
            total: ALLOCS.with(|n| n.replace(0)),
            by_size: BY_SIZE.with(|b| b.replace([(0, 0); SIZE_SLOTS])),
        }
    }

    fn sizes(&self) -> Vec<(usize, u64)> {
        self.by_size
            .iter()
            .copied()
            .filter(|&(_, n)| n > 0)
            .collect()
    }
}

/// Runs `f` with counting on; the counts accumulate until `Counts::take`.
fn counted<R>(f: impl FnOnce() -> R) -> R {
    COUNTING.with(|c| c.set(true));
    let r = f();
    COUNTING.with(|c| c.set(false));
    r
}

// ----- client and engine -----

const PATH: &str = "/helloworld.Greeter/SayHello";
const REQUEST_MESSAGE: &[u8; 20] = b"\x0a\x12twenty byte hello!";
const RESPONSE_MESSAGE: &[u8; 20] = b"\x0a\x12twenty byte reply!";

/// How the client sets `grpc-timeout`.
#[derive(Clone, Copy)]
enum Deadline {
    /// The same value on every call: after the first, every field is indexed.
    Fixed,
    /// A new value on every call, as a client computing the time left does; each is
    /// a literal with incremental indexing, which pushes older entries out of the
    /// table, so the stable fields are periodically sent as literals again.
    Changing,
}

/// What the engine's side of a turn saw, checked after counting stops.
#[derive(Default)]
struct Seen {
    requests: u32,
    messages: u32,
    ends: u32,
    path_ok: bool,
    timeout: Option<Duration>,
}

struct Bench {
    conn: Connection,
    now: Instant,
    deadline: Deadline,
    client: Encoder,
    client_decoder: hpack::Decoder,
    next_id: u32,
    /// What the client writes for one call (reused, not counted).
    request: BytesMut,
    /// The engine's read buffer and write buffer, both reused across turns.
    inbox: BytesMut,
    out: BytesMut,
}

impl Bench {
    fn new(deadline: Deadline) -> Bench {
        let now = Instant::now();
        let mut bench = Bench {
            conn: Connection::new(Config::default(), now),
            now,
            deadline,
            client: Encoder::new(),
            client_decoder: hpack::Decoder::new(hpack::DEFAULT_TABLE_SIZE),
            next_id: 1,
            request: BytesMut::new(),
            inbox: BytesMut::with_capacity(64 * 1024),
            out: BytesMut::with_capacity(64 * 1024),
        };
        // Preface, empty SETTINGS, and the ACK of the server's SETTINGS.
        bench.inbox.extend_from_slice(PREFACE);
        FrameHeader::encode(0, Kind::Settings, 0, StreamId::ZERO, &mut bench.inbox);
        FrameHeader::encode(
            0,
            Kind::Settings,
            flags::ACK,
            StreamId::ZERO,
            &mut bench.inbox,
        );
        bench.conn.recv(now, &mut bench.inbox);
        assert!(bench.conn.poll_event().is_none());
        bench.conn.poll_transmit(now, &mut bench.out);
        bench.out.clear();
        bench
    }

    fn timeout_value(&self, id: u32) -> (String, Duration) {
        match self.deadline {
            Deadline::Fixed => ("1S".to_string(), Duration::from_secs(1)),
            Deadline::Changing => {
                let nanos = 99_999_999 - u64::from(id) * 7_919;
                (format!("{nanos}n"), Duration::from_nanos(nanos))
            }
        }
    }

    /// The client's bytes for one unary call, plus the connection WINDOW_UPDATE a
    /// client sends for the response data it consumed.
    fn write_request(&mut self, id: u32) -> Duration {
        let (timeout, expected) = self.timeout_value(id);
        let fields = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", PATH),
            (":authority", "localhost:50051"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("grpc-timeout", timeout.as_str()),
            ("user-agent", "grpc-rust/0.1"),
            ("grpc-accept-encoding", "identity, gzip"),
        ];
        let mut block = BytesMut::new();
        self.client.begin_block(&mut block);
        for (name, value) in fields {
            self.client.encode_field(
                name.as_bytes(),
                value.as_bytes(),
                Indexing::Incremental,
                &mut block,
            );
        }
        self.request.clear();
        if id > 1 {
            WindowUpdate {
                stream_id: StreamId::ZERO,
                increment: (5 + RESPONSE_MESSAGE.len()) as u32,
            }
            .encode(&mut self.request);
        }
        FrameHeader::encode(
            block.len(),
            Kind::Headers,
            flags::END_HEADERS,
            StreamId(id),
            &mut self.request,
        );
        self.request.extend_from_slice(&block);
        FrameHeader::encode(
            5 + REQUEST_MESSAGE.len(),
            Kind::Data,
            flags::END_STREAM,
            StreamId(id),
            &mut self.request,
        );
        self.request.put_u8(0);
        self.request.put_u32(REQUEST_MESSAGE.len() as u32);
        self.request.extend_from_slice(REQUEST_MESSAGE);
        expected
    }

    /// The engine's turn: what an engine does after a read, and nothing else.
    fn serve(&mut self) -> Seen {
        let Bench {
            conn,
            now,
            request,
            inbox,
            out,
            ..
        } = self;
        let now = *now;
        let mut seen = Seen::default();
        inbox.extend_from_slice(request);
        conn.recv(now, inbox);
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Request { head, .. } => {
                    seen.requests += 1;
                    seen.path_ok = head.path == PATH.as_bytes();
                    seen.timeout = head.timeout;
                }
                Event::Message { id, message } => {
                    seen.messages += 1;
                    conn.release_capacity(id, message.data.len() + 5);
                    conn.send_message(id, Bytes::from_static(RESPONSE_MESSAGE), false)
                        .unwrap();
                }
                Event::EndOfStream { id } => {
                    seen.ends += 1;
                    conn.send_trailers(id, ResponseStatus::OK, []).unwrap();
                    conn.release_stream(id);
                }
                other => panic!("unexpected event {other:?}"),
            }
        }
        conn.poll_transmit(now, out);
        seen
    }

    /// Checks the response the server wrote for stream `id`, then empties `out`.
    fn check_response(&mut self, id: u32) {
        // Parsed from a copy: the buffer itself is kept, with its capacity, as an
        // engine reuses its send buffer.
        let mut out = Bytes::copy_from_slice(&self.out);
        self.out.clear();
        let mut frames = Vec::new();
        while let Some(head) = FrameHeader::parse(&out) {
            let payload = out.slice(HEADER_LEN..HEADER_LEN + head.len as usize);
            frames.push(Frame::parse(head, payload).expect("valid frame"));
            out = out.slice(HEADER_LEN + head.len as usize..);
        }
        assert!(out.is_empty(), "a whole number of frames");
        let mut fields = Vec::new();
        let mut data = Vec::new();
        for frame in frames {
            match frame {
                Frame::Headers(h) => {
                    assert_eq!(h.stream_id, StreamId(id));
                    assert!(h.end_headers);
                    let mut block = Vec::new();
                    self.client_decoder
                        .decode(&h.fragment, |f| block.push((f.name, f.value)))
                        .expect("server header block decodes");
                    fields.push((h.end_stream, block));
                }
                Frame::Data(d) => {
                    assert_eq!(d.stream_id, StreamId(id));
                    data.extend_from_slice(&d.payload);
                }
                Frame::WindowUpdate(w) => assert_eq!(w.stream_id, StreamId::ZERO),
                other => panic!("unexpected frame {other:?}"),
            }
        }
        let [(false, head), (true, trailers)] = &fields[..] else {
            panic!("head and trailers: {fields:?}")
        };
        assert!(head.contains(&(Bytes::from_static(b":status"), Bytes::from_static(b"200"))));
        assert_eq!(
            trailers[..],
            [(Bytes::from_static(b"grpc-status"), Bytes::from_static(b"0"))]
        );
        assert_eq!(data[..5], [0, 0, 0, 0, RESPONSE_MESSAGE.len() as u8]);
        assert_eq!(&data[5..], RESPONSE_MESSAGE);
    }

    /// One call, with only the engine's side counted.
    fn call(&mut self) {
        let id = self.next_id;
        self.next_id += 2;
        let timeout = self.write_request(id);
        let seen = counted(|| self.serve());
        assert_eq!(
            (seen.requests, seen.messages, seen.ends),
            (1, 1, 1),
            "events of call {id}"
        );
        assert!(seen.path_ok);
        assert_eq!(seen.timeout, Some(timeout));
        self.check_response(id);
        assert_eq!(self.conn.active_streams(), 0);
        assert!(self.inbox.is_empty());
    }

    /// Warms up, then returns what `calls` further calls allocated.
    fn measure(deadline: Deadline, warm_up: u32, calls: u32) -> Counts {
        TRACE.store(std::env::var_os("ALLOC_TRACE").is_some(), Ordering::Relaxed);
        let mut bench = Bench::new(deadline);
        for _ in 0..warm_up {
            bench.call();
        }
        Counts::take();
        for _ in 0..calls {
            bench.call();
        }
        let counts = Counts::take();
        assert!(!bench.conn.is_closed());
        counts
    }
}

/// Every request field indexed: a steady stream of unary calls allocates nothing.
#[test]
fn indexed_unary_calls_allocate_nothing() {
    let calls = 1000;
    let counts = Bench::measure(Deadline::Fixed, 100, calls);
    eprintln!(
        "indexed headers: {} allocations in {calls} calls, by size {:?}",
        counts.total,
        counts.sizes()
    );
    assert_eq!(
        counts.total,
        0,
        "allocations in steady state: {:?}",
        counts.sizes()
    );
}

/// A new `grpc-timeout` on every call: decoded strings are carved from the HPACK
/// decoder's shared chunks, so they cost an allocation only when a chunk fills.
#[test]
fn changing_deadline_allocates_only_amortised_hpack_chunks() {
    let calls = 1000;
    let counts = Bench::measure(Deadline::Changing, 100, calls);
    eprintln!(
        "changing grpc-timeout: {} allocations in {calls} calls, by size {:?}",
        counts.total,
        counts.sizes()
    );
    assert!(
        (counts.total as f64) / f64::from(calls) < 0.01,
        "{} allocations in {calls} calls: {:?}",
        counts.total,
        counts.sizes()
    );
}
