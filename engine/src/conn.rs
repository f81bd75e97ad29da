//! The connection driver: a thin pump between a socket and the sans-IO codec.
//!
//! Two tasks per connection share one [`Shared`]:
//!
//! - the **reader** reads into the connection's buffer, feeds it to the codec,
//!   turns events into calls (routing, starting handlers, delivering messages,
//!   cancelling), polls new handlers once inline — a unary handler that completes
//!   there never becomes a task — and wakes the writer;
//! - the **writer** takes everything the codec has to say for all streams with
//!   one `poll_transmit` and writes it with one write, then wakes blocked senders.
//!
//! Both are generic over the connection's [`Transport`]: the socket itself, or TLS
//! over it (`crate::tls`), chosen once per connection, so plaintext connections
//! pay nothing for TLS.
//!
//! Handlers talk to the codec through [`CallState`], their [`CallIo`]. Nothing here
//! is shared across cores, so state is `Rc` + `RefCell`; no borrow is held while a
//! handler runs or while awaiting I/O.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use ringrpc_codec::frame::StreamId;
use ringrpc_codec::grpc::status as grpc_status;
use ringrpc_codec::server::{Connection, Event, RequestHead, ResponseStatus};
use ringrpc_codec::Reason;
use ringrpc_service_api::intercept::InterceptFuture;
use ringrpc_service_api::server::CallSlot;
use ringrpc_service_api::{
    Call, CallHead, CallIo, Intercept, InterceptRequest, Interceptor, Metadata, PeerCertificates,
    Status,
};
use rustc_hash::FxHashMap;
use tokio::sync::Notify;

use crate::compression::{self, Encoding};
use crate::io::{IdleWait, Transport};
use crate::stats::RpcSpan;
use crate::worker::{WorkerContext, IDLE_READ_SIZE};

/// Finished call states kept per connection for reuse, so that a steady stream of
/// calls does not allocate one (and its inbox) per RPC.
const CALL_POOL: usize = 64;

/// Smallest chunk the response encode buffer grows by, so that encoding many
/// small messages carves them from one allocation.
const ENCODE_CHUNK: usize = 16 * 1024;

/// Bytes a new response-encode chunk skips at its start, so that copies into it
/// do not run at a few bytes' distance modulo 4 KiB from their source (see
/// `queue_message`). Costs 64 bytes per chunk.
const ALIAS_SKEW: usize = 64;

/// DATA payload runs from this size on are written from the response message
/// itself (a vectored write) rather than copied into the write buffer: above a
/// few KiB the copy costs more than an iovec and a reference count.
const SPLICE_MIN: usize = 4 * 1024;

/// A small read buffer is read into as long as this much of it is left, even
/// while messages from its start are still held: sequential calls whose
/// handlers keep request bytes until the response is written then share one
/// buffer between several reads instead of taking a new one each.
const MIN_SMALL_READ: usize = 256;

/// How long a connection the codec closed on a timer (keepalive, age grace,
/// handshake) waits for its writer to flush the GOAWAY before the socket is shut
/// down anyway: a client that stopped reading would otherwise hold it until the
/// send-stall bound. A healthy client reads a GOAWAY within a round trip.
const CLOSE_LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// State of one connection, shared by its reader, writer and calls.
pub(crate) struct Shared {
    inner: RefCell<Inner>,
    /// Wakes the writer: the codec may have something to send.
    write_wanted: Notify,
    /// Wakes a reader paused because too much output was in flight.
    write_done: Notify,
    /// Bytes handed to the socket and not yet written.
    in_flight: Cell<usize>,
    closed: Cell<bool>,
    /// `None` for Unix socket peers.
    remote_addr: Option<SocketAddr>,
    /// The client's certificate chain, set once a TLS handshake produced one.
    peer_certificates: OnceCell<PeerCertificates>,
    /// Status code of the request just refused by `start_call`, for its span.
    refusal: Cell<Option<u32>>,
    worker: Rc<WorkerContext>,
    /// Call states whose calls ended; reused once nothing else holds them.
    call_pool: RefCell<Vec<Rc<CallState>>>,
    /// Calls started by one batch of events, run after it (kept for its capacity).
    started: RefCell<Vec<Rc<CallState>>>,
    /// Wakes the timer task: the codec's next deadline is now earlier than the
    /// one it sleeps until.
    timer_changed: Notify,
    /// The deadline the timer task sleeps until.
    timer_armed: Cell<Option<Instant>>,
}

struct Inner {
    conn: Connection,
    /// By stream id. FxHash: one lookup per event, and ids are bounded by
    /// `max_concurrent_streams`, so colliding ids cost at most that many probes.
    calls: FxHashMap<u32, Rc<CallState>>,
    /// Senders waiting for room; woken after each write.
    send_waiters: Vec<Waker>,
}

impl Shared {
    pub(crate) fn new(remote_addr: Option<SocketAddr>, worker: Rc<WorkerContext>) -> Rc<Shared> {
        let mut conn = Connection::new(worker.connection_config(), Instant::now());
        // What we accept is the same for every call (and goes on refusals of an
        // unsupported encoding too, as gRPC's compression spec asks).
        conn.set_accept_encoding(Some(Bytes::from_static(compression::ACCEPT_ENCODING)));
        Rc::new(Shared {
            inner: RefCell::new(Inner {
                conn,
                calls: FxHashMap::default(),
                send_waiters: Vec::new(),
            }),
            write_wanted: Notify::new(),
            write_done: Notify::new(),
            in_flight: Cell::new(0),
            closed: Cell::new(false),
            remote_addr,
            refusal: Cell::new(None),
            peer_certificates: OnceCell::new(),
            worker,
            call_pool: RefCell::new(Vec::new()),
            started: RefCell::new(Vec::new()),
            timer_changed: Notify::new(),
            timer_armed: Cell::new(None),
        })
    }

    /// Wakes the timer task when the codec's next deadline moved earlier than
    /// the one it sleeps until (the idle clock started, a drain PING went out).
    /// Deadlines that move later (input postponing the keepalive) need nothing:
    /// the task wakes at the old one, finds nothing due and sleeps again. Costs
    /// the codec's `poll_timeout` (a few comparisons) per call, a wakeup rarely.
    fn check_timer(&self, conn: &Connection) {
        let next = conn.poll_timeout();
        let armed = self.timer_armed.get();
        if next.is_some_and(|next| armed.is_none_or(|armed| next < armed)) {
            self.timer_armed.set(next);
            self.timer_changed.notify_one();
        }
    }

    fn wake_writer(&self) {
        self.write_wanted.notify_one();
    }

    /// Starts a graceful drain of this connection (GOAWAY + PING, then the final
    /// GOAWAY; the connection closes when its calls are done).
    pub(crate) fn go_away(&self) {
        self.inner.borrow_mut().conn.go_away();
        self.wake_writer();
    }

    /// Closes at once: GOAWAY, cancel every call.
    pub(crate) fn abort(&self) {
        self.inner
            .borrow_mut()
            .conn
            .abort(Reason::NO_ERROR, "server shutting down");
        self.cancel_all(Status::unavailable("server shutting down"));
        self.wake_writer();
    }

    fn cancel_all(&self, status: Status) {
        let calls: Vec<Rc<CallState>> = self.inner.borrow_mut().calls.values().cloned().collect();
        for call in calls {
            call.cancel(status.clone());
        }
    }

    /// Every call of this connection sees `certificates` (the TLS client's chain).
    pub(crate) fn set_peer_certificates(&self, certificates: PeerCertificates) {
        let _ = self.peer_certificates.set(certificates);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Accounts for a request answered with `code` before any handler ran
    /// (unknown service or method, unsupported encoding, an interceptor's
    /// rejection): every such answer must pass through here for the counters and
    /// the call's span.
    pub(crate) fn rpc_refused(&self, code: u32) {
        self.worker.stats.rpc_finished(code);
        self.refusal.set(Some(code));
    }
}

/// Runs a connection until it closes.
pub(crate) async fn serve<T: Transport>(socket: T, shared: Rc<Shared>) {
    let socket = Rc::new(socket);
    let writer = tokio::task::spawn_local(write_loop(socket.clone(), shared.clone()));
    let timer = tokio::task::spawn_local(timer_loop(socket.clone(), shared.clone()));
    read_loop(&*socket, &shared).await;
    shared.closed.set(true);
    shared.cancel_all(Status::unavailable("connection closed"));
    shared.wake_writer();
    let _ = writer.await;
    timer.abort();
    // Break the Rc cycles call state → shared so everything is freed.
    shared.inner.borrow_mut().calls.clear();
    shared.call_pool.borrow_mut().clear();
}

async fn read_loop<T: Transport>(socket: &T, shared: &Rc<Shared>) {
    let mut reader = Reader {
        buf: BytesMut::new(),
        small: false,
        last_read: 0,
    };
    read_until_closed(socket, shared, &mut reader).await;
    let buf = std::mem::take(&mut reader.buf);
    if reader.small {
        shared.worker.give_back_small(buf);
    } else if buf.capacity() > 0 {
        shared.worker.give_back_buffer(buf);
    }
}

/// What a connection's reader holds between reads.
struct Reader {
    /// The start of a frame the last read ended in, or nothing; its capacity
    /// is where the next read goes when it is kept.
    buf: BytesMut,
    /// `buf` is one of the worker's small buffers ([`IDLE_READ_SIZE`]).
    small: bool,
    /// Bytes the last read brought.
    last_read: usize,
}

impl Reader {
    /// Picks the buffer for the next read that waits in the kernel (io_uring,
    /// TLS): after a short read, with nothing carried over, a small one, so an
    /// idle connection holds [`IDLE_READ_SIZE`] bytes rather than a full read
    /// buffer; otherwise a full-size one, into which a frame begun in a small
    /// buffer moves (at most that much copied, once per burst).
    fn prepare(&mut self, worker: &WorkerContext, idle_wait: IdleWait) {
        let read_size = worker.config.read_buffer_size;
        let want_small = idle_wait == IdleWait::SmallBuffer
            && self.last_read < IDLE_READ_SIZE
            && self.buf.is_empty();
        if want_small {
            if !self.small {
                let big = std::mem::replace(&mut self.buf, worker.take_small_buffer());
                if big.capacity() > 0 {
                    worker.give_back_buffer(big);
                }
                self.small = true;
            } else if !self.buf.try_reclaim(IDLE_READ_SIZE) && self.buf.capacity() < MIN_SMALL_READ
            {
                // Its bytes live on in messages a handler holds (an echo's
                // response not yet written) and little room is left after them.
                self.buf = worker.take_small_buffer();
            }
            return;
        }
        if self.small {
            let mut big = worker.take_buffer();
            big.extend_from_slice(&self.buf);
            worker.give_back_small(std::mem::replace(&mut self.buf, big));
            self.small = false;
        } else if !self.buf.try_reclaim(read_size) && self.buf.is_empty() {
            // Earlier reads still live on as message slices held by handlers, so
            // this memory cannot be reused yet: continue in a pooled buffer.
            self.buf = worker.take_buffer();
        }
    }
}

async fn read_until_closed<T: Transport>(socket: &T, shared: &Rc<Shared>, reader: &mut Reader) {
    let worker = &*shared.worker;
    let read_size = worker.config.read_buffer_size;
    let idle_wait = socket.idle_wait();
    loop {
        // Backpressure on the whole connection: a client that does not read what
        // we write gets no more of its input processed until the socket drains.
        while shared.in_flight.get() > worker.config.write_high_water && !shared.closed.get() {
            shared.write_done.notified().await;
        }
        // No timeout here: the codec's timers run in `timer_loop`, which ends a
        // connection by shutting the socket down, and that ends this read.
        let result = if idle_wait == IdleWait::Readiness && reader.buf.is_empty() {
            // Wait holding no buffer; take one for the read only. Costs a pool
            // pop and push per read, no syscall beyond the read itself.
            if reader.buf.capacity() > 0 {
                worker.give_back_buffer(std::mem::take(&mut reader.buf));
            }
            if socket.readable().await.is_err() {
                return;
            }
            let mut buf = worker.take_buffer();
            match socket.try_read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    worker.give_back_buffer(buf);
                    continue;
                }
                result => {
                    reader.buf = buf;
                    result
                }
            }
        } else {
            reader.prepare(worker, idle_wait);
            let want = if reader.small {
                // What is left of the small buffer: never more, which would
                // make the read allocate a new one.
                reader.buf.capacity() - reader.buf.len()
            } else {
                read_size
            };
            let (result, returned) = socket.read(std::mem::take(&mut reader.buf), want).await;
            reader.buf = returned;
            result
        };
        match result {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                reader.last_read = n;
                worker.stats.bytes_read(n);
            }
        }
        {
            let mut inner = shared.inner.borrow_mut();
            inner.conn.recv(Instant::now(), &mut reader.buf);
            shared.check_timer(&inner.conn);
        }
        let closed = handle_events(shared);
        shared.wake_writer();
        if closed {
            return;
        }
    }
}

/// Drains the codec's events; returns true when the connection is finished
/// reading (closed by an error, a client GOAWAY with an error, or drained).
fn handle_events(shared: &Rc<Shared>) -> bool {
    let mut started = std::mem::take(&mut *shared.started.borrow_mut());
    loop {
        let event = shared.inner.borrow_mut().conn.poll_event();
        let Some(event) = event else { break };
        match event {
            Event::Request { id, mut head } => {
                shared.worker.stats.rpc_started();
                let span = RpcSpan::start(&head.path);
                if let Some(call) = start_call(shared, id, &mut head) {
                    call.opened(span);
                    started.push(call);
                } else {
                    RpcSpan::end(span, shared.refusal.take());
                }
            }
            Event::Message { id, message } => {
                let call = shared.inner.borrow().calls.get(&id.0).cloned();
                if let Some(call) = call {
                    call.deliver(message.data, message.compressed);
                } else {
                    // A call already answered (e.g. UNIMPLEMENTED): drop the message
                    // and give its credit back.
                    shared
                        .inner
                        .borrow_mut()
                        .conn
                        .release_capacity(id, message.data.len() + 5);
                }
            }
            Event::EndOfStream { id } => {
                let call = shared.inner.borrow().calls.get(&id.0).cloned();
                if let Some(call) = call {
                    call.end_of_stream();
                }
            }
            Event::Reset { id, .. } => {
                let call = shared.inner.borrow().calls.get(&id.0).cloned();
                if let Some(call) = call {
                    call.cancel(Status::cancelled("call cancelled by the client"));
                }
            }
            Event::GoAway { .. } => {}
            Event::Closed { .. } => shared.cancel_all(Status::unavailable("connection closed")),
        }
    }
    // Handlers run after the whole batch is delivered, so a unary call whose
    // HEADERS and DATA came in one read finds its message and completes inline.
    for state in started.drain(..) {
        run_call(state);
    }
    *shared.started.borrow_mut() = started;
    shared.inner.borrow().conn.is_closed()
}

/// Routes a new request; answers it at once when it cannot be served.
/// Takes what it keeps out of `head` (borrowed where the event holds it: a
/// request head is 136 bytes, not worth a move per call).
fn start_call(shared: &Rc<Shared>, id: StreamId, head: &mut RequestHead) -> Option<Rc<CallState>> {
    let refuse = |status: ResponseStatus, metadata: Vec<(Bytes, Bytes)>| {
        shared.rpc_refused(status.code);
        let mut inner = shared.inner.borrow_mut();
        let _ = inner.conn.send_trailers(id, status, metadata);
        inner.conn.release_stream(id);
        None
    };
    let request_encoding = match &head.encoding {
        None => None,
        Some(name) => match Encoding::from_name(name) {
            Some(encoding) => Some(encoding),
            None => {
                // UNIMPLEMENTED with the encodings we do accept, as gRPC's
                // compression spec asks.
                let message = format!(
                    "grpc-encoding {:?} is not supported",
                    String::from_utf8_lossy(name)
                );
                let status = ResponseStatus {
                    code: grpc_status::UNIMPLEMENTED,
                    message: message.into(),
                    details: None,
                };
                return refuse(status, vec![]);
            }
        },
    };
    let response_encoding = compression::response_encoding(
        request_encoding,
        head.accept_encoding.as_deref(),
        shared.worker.config.response_compression,
    );
    let call_head = CallHead {
        metadata: Metadata::from_raw(std::mem::take(&mut head.metadata)),
        deadline: head.timeout.map(|t| Instant::now() + t),
        remote_addr: shared.remote_addr,
        peer_certificates: shared.peer_certificates.get().cloned(),
        extensions: Default::default(),
    };
    let deadline = call_head.deadline;
    let request = InterceptRequest::new(std::mem::take(&mut head.path), call_head);
    let state = CallState::take(shared, id);
    match dispatch(&state, request, Step::Server(0)) {
        Dispatch::Started => {}
        Dispatch::Pending(intercepting) => {
            // The rest runs in the call's task, within its deadline; messages
            // that arrive meanwhile wait in its inbox.
            *state.intercepting.borrow_mut() = Some(intercepting);
        }
        Dispatch::Refused(status) => {
            state.give_back_slot();
            let mut pool = shared.call_pool.borrow_mut();
            if pool.len() < CALL_POOL {
                pool.push(state);
            }
            drop(pool);
            let (code, message, details, metadata) = status.into_parts();
            let status = ResponseStatus {
                code: code as u32,
                message: message.into(),
                details: (!details.is_empty()).then_some(details),
            };
            return refuse(status, metadata.into_raw());
        }
    }
    state.deadline.set(deadline);
    state.request_encoding.set(request_encoding);
    state.response_encoding.set(response_encoding);
    let mut inner = shared.inner.borrow_mut();
    // The headers say which encoding compressed responses use (and, for every
    // call, which encodings we take: set on the connection).
    if let Some(encoding) = response_encoding {
        let _ = inner.conn.set_encodings(
            id,
            Some(Bytes::from_static(encoding.name().as_bytes())),
            None,
        );
    }
    inner.calls.insert(id.0, state.clone());
    drop(inner);
    Some(state)
}

/// Where a call's way through the interceptors resumes.
#[derive(Clone, Copy)]
enum Step {
    /// At this server-wide interceptor.
    Server(usize),
    /// At this interceptor of the call's service.
    Service(usize),
}

/// An async interceptor deciding a call, and where to go on when it has.
pub(crate) struct Intercepting {
    future: InterceptFuture,
    next: Step,
}

enum Dispatch {
    /// The handler's future is in the call's slot.
    Started,
    /// Waiting for an async interceptor.
    Pending(Intercepting),
    /// An interceptor rejected the call, or no service or method matched.
    Refused(Status),
}

/// Runs `chain` from index `first`: the request as the last interceptor passed
/// it on, or where the chain stopped (a refusal, or an interceptor still
/// working, to resume at `step(i + 1)`).
fn run_chain(
    chain: &[Box<dyn Interceptor>],
    first: usize,
    mut request: InterceptRequest,
    step: fn(usize) -> Step,
) -> Result<InterceptRequest, Dispatch> {
    for (i, interceptor) in chain.iter().enumerate().skip(first) {
        match interceptor.intercept(request) {
            Intercept::Ready(Ok(next)) => request = next,
            Intercept::Ready(Err(status)) => return Err(Dispatch::Refused(status)),
            Intercept::Pending(future) => {
                return Err(Dispatch::Pending(Intercepting {
                    future,
                    next: step(i + 1),
                }))
            }
        }
    }
    Ok(request)
}

/// Runs a request through the interceptors from `step` on, then hands it to
/// its service. Without interceptors this is a lookup and `Service::call`.
fn dispatch(state: &Rc<CallState>, mut request: InterceptRequest, step: Step) -> Dispatch {
    let router = &state.shared.worker.router;
    let first = match step {
        Step::Server(first) => {
            request = match run_chain(router.interceptors(), first, request, Step::Server) {
                Ok(request) => request,
                Err(stopped) => return stopped,
            };
            0
        }
        Step::Service(first) => first,
    };
    let Some(route) = router.find(split_path(request.path_bytes()).0) else {
        let path = request.into_parts().0;
        let service = split_path(&path).0;
        return Dispatch::Refused(Status::unimplemented(format!(
            "unknown service {}",
            String::from_utf8_lossy(service)
        )));
    };
    request = match run_chain(&route.interceptors, first, request, Step::Service) {
        Ok(request) => request,
        Err(stopped) => return stopped,
    };
    let config = &state.shared.worker.config;
    state.max_receive.set(
        route
            .max_receive_message_size
            .unwrap_or(config.codec.max_message_size as usize),
    );
    state.max_send.set(
        route
            .max_send_message_size
            .unwrap_or(config.max_send_message_size),
    );
    let (path, head) = request.into_parts();
    let method = split_path(&path).1;
    let call = Call::new(state.clone(), head);
    let mut slot = state.slot.borrow_mut();
    let slot = slot.get_or_insert_with(|| state.shared.worker.take_slot());
    if route.service.call(method, call, slot.as_mut()) {
        Dispatch::Started
    } else {
        Dispatch::Refused(Status::unimplemented(format!(
            "unknown method {}",
            String::from_utf8_lossy(method)
        )))
    }
}

/// `/service/method` → (service, method); empty parts for any other path.
fn split_path(path: &[u8]) -> (&[u8], &[u8]) {
    path.strip_prefix(b"/")
        .and_then(|rest| {
            let slash = rest.iter().position(|&b| b == b'/')?;
            Some((&rest[..slash], &rest[slash + 1..]))
        })
        .unwrap_or((&[], &[]))
}

/// Polls a new call once in place; only if it is not done does it become a task.
fn run_call(state: Rc<CallState>) {
    if let Some(deadline) = state.deadline.get() {
        state.arm_timer(deadline);
    }
    let mut task = CallTask {
        state,
        active: true,
    };
    let mut cx = Context::from_waker(Waker::noop());
    if Pin::new(&mut task).poll(&mut cx).is_pending() {
        tokio::task::spawn_local(task);
    }
}

/// A handler's future (kept in its call state's slot) wrapped with what the
/// engine enforces around it: cancellation, the deadline, panics, and releasing
/// the stream at the end.
struct CallTask {
    state: Rc<CallState>,
    active: bool,
}

impl Future for CallTask {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if !this.active {
            return Poll::Ready(());
        }
        if this.state.is_cancelled() {
            this.finish();
            return Poll::Ready(());
        }
        this.state.register_task(cx.waker());
        if this.state.timer_fired(cx) {
            this.state
                .finish(Err(Status::deadline_exceeded("deadline exceeded")));
            this.finish();
            return Poll::Ready(());
        }
        let _in_span = this.state.span().map(tracing::Span::entered);
        let state = &this.state;
        match std::panic::catch_unwind(AssertUnwindSafe(|| {
            match state.poll_intercepting(cx) {
                Poll::Ready(true) => match state.slot.borrow_mut().as_mut() {
                    Some(slot) => slot.as_mut().poll(cx),
                    None => Poll::Ready(()),
                },
                // Rejected: the status is sent already.
                Poll::Ready(false) => Poll::Ready(()),
                Poll::Pending => Poll::Pending,
            }
        })) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(())) => {
                this.finish();
                Poll::Ready(())
            }
            Err(_) => {
                // A panicking handler fails its own call only.
                this.state.finish(Err(Status::unknown("handler panicked")));
                this.finish();
                Poll::Ready(())
            }
        }
    }
}

impl CallTask {
    /// Drops the handler (cancelling whatever it awaited) and lets the stream go;
    /// the call state goes back to the connection's pool.
    fn finish(&mut self) {
        self.active = false;
        self.state.intercepting.borrow_mut().take();
        self.state.give_back_slot();
        self.state.release();
        let mut pool = self.state.shared.call_pool.borrow_mut();
        // Not after the connection closed: `serve` has emptied the pool for the
        // last time, and a state pushed now would keep the connection alive.
        if pool.len() < CALL_POOL && !self.state.shared.is_closed() {
            pool.push(self.state.clone());
        }
    }
}

impl Drop for CallTask {
    fn drop(&mut self) {
        if self.active {
            // The runtime is shutting down with the call in flight.
            self.active = false;
            self.state.intercepting.borrow_mut().take();
            self.state.give_back_slot();
            self.state.release();
        }
    }
}

/// The engine side of one call: its inbox, its flags, and the commands it sends
/// to the codec. This is the handler's [`CallIo`].
pub(crate) struct CallState {
    id: Cell<StreamId>,
    shared: Rc<Shared>,
    deadline: Cell<Option<Instant>>,
    state: RefCell<CallFlags>,
    /// The handler's future, stored in place; the slot is the worker's, lent
    /// while the call runs, so finished calls kept for reuse hold none.
    slot: RefCell<Option<Pin<Box<CallSlot>>>>,
    /// The deadline timer, made on the first call with a deadline and reset for
    /// later ones.
    timer: RefCell<Option<Pin<Box<tokio::time::Sleep>>>>,
    /// Whether `timer` is set for the current call.
    timer_armed: Cell<bool>,
    /// `grpc-encoding` of the request: how flagged messages are decompressed.
    request_encoding: Cell<Option<Encoding>>,
    /// How response messages are compressed; `None` sends them as they are.
    response_encoding: Cell<Option<Encoding>>,
    /// The message `poll_message` handed out last was compressed.
    last_compressed: Cell<bool>,
    /// An async interceptor still deciding whether the call reaches its handler.
    intercepting: RefCell<Option<Intercepting>>,
    /// Largest request message the call's service takes (after decompression).
    max_receive: Cell<usize>,
    /// Largest response message the call's service sends (before compression).
    max_send: Cell<usize>,
}

#[derive(Default)]
struct CallFlags {
    /// Messages as received, with their compressed flag.
    inbox: VecDeque<(Bytes, bool)>,
    end_of_stream: bool,
    cancelled: Option<Status>,
    finished: bool,
    released: bool,
    trailers: Metadata,
    /// The handler waiting for a message.
    recv_waker: Option<Waker>,
    /// The task running the call (woken on cancellation).
    task_waker: Option<Waker>,
    /// Waiters on `CallContext::cancelled`.
    cancel_wakers: Vec<Waker>,
    /// The call's tracing span, when a subscriber wants one.
    span: Option<RpcSpan>,
}

impl CallFlags {
    /// Back to a new call's state, keeping the inbox's capacity.
    fn reset(&mut self) {
        self.inbox.clear();
        self.end_of_stream = false;
        self.cancelled = None;
        self.finished = false;
        self.released = false;
        self.trailers = Metadata::new();
        self.recv_waker = None;
        self.task_waker = None;
        self.cancel_wakers.clear();
        self.span = None;
    }
}

impl CallState {
    /// A call state for stream `id`: a pooled one nothing else holds any more,
    /// or a new one.
    fn take(shared: &Rc<Shared>, id: StreamId) -> Rc<CallState> {
        let mut pool = shared.call_pool.borrow_mut();
        if let Some(i) = pool.iter().position(|state| Rc::strong_count(state) == 1) {
            let state = pool.swap_remove(i);
            state.id.set(id);
            state.deadline.set(None);
            state.timer_armed.set(false);
            state.request_encoding.set(None);
            state.response_encoding.set(None);
            state.last_compressed.set(false);
            state.state.borrow_mut().reset();
            return state;
        }
        drop(pool);
        Rc::new(CallState {
            id: Cell::new(id),
            shared: shared.clone(),
            deadline: Cell::new(None),
            state: RefCell::new(CallFlags::default()),
            slot: RefCell::new(None),
            timer: RefCell::new(None),
            timer_armed: Cell::new(false),
            request_encoding: Cell::new(None),
            response_encoding: Cell::new(None),
            last_compressed: Cell::new(false),
            intercepting: RefCell::new(None),
            max_receive: Cell::new(0),
            max_send: Cell::new(0),
        })
    }

    /// Drops the handler, if any, and returns its slot to the worker. The
    /// handler is dropped with no borrow held, whatever its drop does.
    fn give_back_slot(&self) {
        let slot = self.slot.borrow_mut().take();
        if let Some(mut slot) = slot {
            slot.as_mut().clear();
            self.shared.worker.give_back_slot(slot);
        }
    }

    /// Drives a pending async interceptor: `Ready(true)` once the handler's
    /// future is in the slot (at once when no interceptor is pending),
    /// `Ready(false)` when the call was refused and its status sent.
    fn poll_intercepting(self: &Rc<Self>, cx: &mut Context<'_>) -> Poll<bool> {
        loop {
            let mut pending = self.intercepting.borrow_mut();
            let Some(intercepting) = pending.as_mut() else {
                return Poll::Ready(true);
            };
            let Poll::Ready(result) = intercepting.future.as_mut().poll(cx) else {
                return Poll::Pending;
            };
            let next = intercepting.next;
            *pending = None;
            drop(pending);
            let dispatched = match result {
                Ok(request) => dispatch(self, request, next),
                Err(status) => Dispatch::Refused(status),
            };
            match dispatched {
                Dispatch::Started => return Poll::Ready(true),
                Dispatch::Pending(more) => *self.intercepting.borrow_mut() = Some(more),
                Dispatch::Refused(status) => {
                    self.finish(Err(status));
                    return Poll::Ready(false);
                }
            }
        }
    }

    /// Starts the deadline timer, reusing the one an earlier call made.
    fn arm_timer(&self, deadline: Instant) {
        let mut timer = self.timer.borrow_mut();
        match timer.as_mut() {
            Some(sleep) => sleep.as_mut().reset(deadline.into()),
            None => *timer = Some(Box::pin(tokio::time::sleep_until(deadline.into()))),
        }
        self.timer_armed.set(true);
    }

    /// Whether the current call's deadline has passed (registering for it if not).
    fn timer_fired(&self, cx: &mut Context<'_>) -> bool {
        if !self.timer_armed.get() {
            return false;
        }
        let mut timer = self.timer.borrow_mut();
        timer
            .as_mut()
            .is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready())
    }

    fn id(&self) -> StreamId {
        self.id.get()
    }

    fn deliver(&self, message: Bytes, compressed: bool) {
        let mut s = self.state.borrow_mut();
        s.inbox.push_back((message, compressed));
        if let Some(w) = s.recv_waker.take() {
            w.wake();
        }
    }

    fn end_of_stream(&self) {
        let mut s = self.state.borrow_mut();
        s.end_of_stream = true;
        if let Some(w) = s.recv_waker.take() {
            w.wake();
        }
    }

    fn cancel(&self, status: Status) {
        if self.state.borrow().finished {
            return;
        }
        self.mark_cancelled(status);
    }

    /// Records `status` as the reason the call stopped and wakes everything
    /// waiting on it, so the handler is dropped at its next poll.
    fn mark_cancelled(&self, status: Status) {
        let mut s = self.state.borrow_mut();
        if s.cancelled.is_some() {
            return;
        }
        // A call whose status went out was accounted for by `finish`.
        let ended = (!s.finished).then(|| (status.code() as u32, s.span.take()));
        s.cancelled = Some(status);
        let wakers = [s.recv_waker.take(), s.task_waker.take()];
        let cancel_wakers = std::mem::take(&mut s.cancel_wakers);
        drop(s);
        if let Some((code, span)) = ended {
            self.ended(code, span);
        }
        wakers
            .into_iter()
            .flatten()
            .chain(cancel_wakers)
            .for_each(Waker::wake);
    }

    fn register_task(&self, waker: &Waker) {
        let mut s = self.state.borrow_mut();
        if !s.task_waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            s.task_waker = Some(waker.clone());
        }
    }

    /// The handler is gone: the stream no longer counts against the limit.
    fn release(&self) {
        let mut s = self.state.borrow_mut();
        if std::mem::replace(&mut s.released, true) {
            return;
        }
        self.shared.worker.stats.stream_closed();
        // Messages nobody will read give their credit back.
        let unread: usize = s.inbox.drain(..).map(|(m, _)| m.len() + 5).sum();
        drop(s);
        let mut inner = self.shared.inner.borrow_mut();
        if unread > 0 {
            inner.conn.release_capacity(self.id(), unread);
        }
        inner.conn.release_stream(self.id());
        inner.calls.remove(&self.id().0);
        drop(inner);
        self.shared.wake_writer();
    }

    /// The call has a handler (or an interceptor deciding it) from now on.
    fn opened(&self, span: Option<RpcSpan>) {
        self.shared.worker.stats.stream_opened();
        self.state.borrow_mut().span = span;
    }

    /// The call's span, entered while its handler runs so that the handler's own
    /// spans and events nest under it.
    fn span(&self) -> Option<tracing::Span> {
        let s = self.state.borrow();
        s.span.as_ref().map(RpcSpan::span)
    }

    /// The call's final status is known: count it and close its span.
    fn ended(&self, code: u32, span: Option<RpcSpan>) {
        self.shared.worker.stats.rpc_finished(code);
        RpcSpan::end(span, Some(code));
    }

    /// Ends the call with `status` on the engine's behalf (the request could not
    /// be read): the trailers go out now, and the handler is dropped at its next
    /// poll, whatever it does with the error.
    fn fail(&self, status: Status) {
        self.finish(Err(status.clone()));
        self.mark_cancelled(status);
    }

    /// Queues one response message, compressed with the call's response encoding
    /// unless `uncompressed`.
    fn queue_message(
        &self,
        len: usize,
        encode: &mut dyn FnMut(&mut BytesMut),
        uncompressed: bool,
    ) -> Result<(), Status> {
        if self.state.borrow().cancelled.is_some() {
            return Err(self.closed_status());
        }
        let max = self.max_send.get();
        if len > max {
            // Checked before encoding, so nothing of the message is sent.
            let status = Status::resource_exhausted(format!(
                "trying to send message larger than max ({len} vs. {max})"
            ));
            self.fail(status.clone());
            return Err(status);
        }
        // Grow only when the message does not fit: asking for a whole chunk of
        // room every time would start a new chunk per message, and each queued
        // small message would pin 16 KiB (a 64 KiB send high-water mark of 1 KiB
        // messages would hold 1 MiB).
        let mut encode_buf = self.shared.worker.encode_buf.borrow_mut();
        if encode_buf.capacity() - encode_buf.len() < len {
            encode_buf.reserve(len.max(ENCODE_CHUNK) + ALIAS_SKEW);
            // A new chunk and a large field's source buffer tend to be blocks of
            // one allocator size class, so they start at the same offset in a
            // page, and the field lands a few bytes (its tag and length) after
            // that offset: a distance at which `memcpy`'s `rep movsb` is about
            // 15 times slower on current x86 cores (3 GB/s against 50 here).
            // Starting the chunk 64 bytes in moves the copy off that distance;
            // streaming 64 KiB messages went from 1.5 to 2.7-3.2 GB/s.
            bytes::BufMut::put_bytes(&mut *encode_buf, 0, ALIAS_SKEW);
            bytes::Buf::advance(&mut *encode_buf, ALIAS_SKEW);
        }
        encode(&mut encode_buf);
        let mut message = encode_buf.split().freeze();
        let encoding = self.response_encoding.get().filter(|_| !uncompressed);
        if let Some(encoding) = encoding {
            if let Err(e) = encoding.compress(&message, &mut encode_buf) {
                encode_buf.clear();
                return Err(Status::internal(format!("cannot compress response: {e}")));
            }
            message = encode_buf.split().freeze();
        }
        drop(encode_buf);
        let mut inner = self.shared.inner.borrow_mut();
        let result = inner
            .conn
            .send_message(self.id(), message, encoding.is_some());
        self.shared.wake_writer();
        result.map_err(|_| self.closed_status())
    }

    fn closed_status(&self) -> Status {
        let s = self.state.borrow();
        s.cancelled
            .clone()
            .unwrap_or_else(|| Status::internal("call already finished"))
    }
}

impl CallIo for CallState {
    fn poll_message(&self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Status>> {
        let mut s = self.state.borrow_mut();
        if let Some(status) = &s.cancelled {
            return Poll::Ready(Err(status.clone()));
        }
        if let Some((message, compressed)) = s.inbox.pop_front() {
            drop(s);
            // Consumption is what re-opens the client's window.
            self.shared
                .inner
                .borrow_mut()
                .conn
                .release_capacity(self.id(), message.len() + 5);
            self.shared.wake_writer();
            self.last_compressed.set(compressed);
            // The codec enforces the server's limit; a service may set a lower one.
            let limit = self.max_receive.get();
            if message.len() > limit {
                let status = Status::resource_exhausted(format!(
                    "received message larger than max ({} vs. {limit})",
                    message.len()
                ));
                self.fail(status.clone());
                return Poll::Ready(Err(status));
            }
            if !compressed {
                return Poll::Ready(Ok(Some(message)));
            }
            // The codec lets the flag through only with a declared encoding, and
            // start_call refused the ones we lack, so `None` cannot happen here.
            let plain = match self.request_encoding.get() {
                Some(encoding) => encoding.decompress(&message, limit),
                None => Err(Status::internal("compressed message without grpc-encoding")),
            };
            return Poll::Ready(match plain {
                Ok(plain) => Ok(Some(Bytes::from(plain))),
                Err(status) => {
                    self.fail(status.clone());
                    Err(status)
                }
            });
        }
        if s.end_of_stream {
            return Poll::Ready(Ok(None));
        }
        s.recv_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn poll_send_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        {
            let s = self.state.borrow();
            if s.cancelled.is_some() || s.finished {
                drop(s);
                return Poll::Ready(Err(self.closed_status()));
            }
        }
        let config = &self.shared.worker.config;
        let mut inner = self.shared.inner.borrow_mut();
        let queued = inner.conn.queued_send_bytes(self.id());
        if queued < config.stream_send_high_water
            && self.shared.in_flight.get() < config.write_high_water
        {
            return Poll::Ready(Ok(()));
        }
        inner.send_waiters.push(cx.waker().clone());
        drop(inner);
        // Whatever is queued must get written for room to appear.
        self.shared.wake_writer();
        Poll::Pending
    }

    fn send_headers(&self, metadata: Metadata) -> Result<(), Status> {
        let result = self
            .shared
            .inner
            .borrow_mut()
            .conn
            .send_headers(self.id(), metadata.into_raw());
        self.shared.wake_writer();
        result.map_err(|_| self.closed_status())
    }

    fn flush_headers(&self) {
        let mut inner = self.shared.inner.borrow_mut();
        if inner.conn.send_headers(self.id(), []).is_ok() {
            drop(inner);
            self.shared.wake_writer();
        }
    }

    fn send_message(
        &self,
        len: usize,
        encode: &mut dyn FnMut(&mut BytesMut),
    ) -> Result<(), Status> {
        self.queue_message(len, encode, false)
    }

    fn send_message_uncompressed(
        &self,
        len: usize,
        encode: &mut dyn FnMut(&mut BytesMut),
    ) -> Result<(), Status> {
        self.queue_message(len, encode, true)
    }

    fn last_message_compressed(&self) -> bool {
        self.last_compressed.get()
    }

    fn set_trailers(&self, metadata: Metadata) {
        self.state.borrow_mut().trailers = metadata;
    }

    fn finish(&self, result: Result<Metadata, Status>) {
        let mut s = self.state.borrow_mut();
        if std::mem::replace(&mut s.finished, true) || s.cancelled.is_some() {
            return;
        }
        let extra = std::mem::take(&mut s.trailers);
        let span = s.span.take();
        drop(s);
        let code = result.as_ref().map_or_else(|e| e.code() as u32, |_| 0);
        self.ended(code, span);
        let (status, mut metadata) = match result {
            Ok(metadata) => (ResponseStatus::OK, metadata),
            Err(status) => {
                let (code, message, details, metadata) = status.into_parts();
                let details = (!details.is_empty()).then_some(details);
                (
                    ResponseStatus {
                        code: code as u32,
                        message: message.into(),
                        details,
                    },
                    metadata,
                )
            }
        };
        metadata.extend(extra);
        let _ = self.shared.inner.borrow_mut().conn.send_trailers(
            self.id(),
            status,
            metadata.into_raw(),
        );
        self.shared.wake_writer();
    }

    fn poll_cancelled(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.state.borrow_mut();
        if s.cancelled.is_some() {
            return Poll::Ready(());
        }
        s.cancel_wakers.push(cx.waker().clone());
        Poll::Pending
    }

    fn is_cancelled(&self) -> bool {
        self.state.borrow().cancelled.is_some()
    }
}

/// Fires the codec's timers at their deadlines (handshake, keepalive and its
/// ACK, idle and age limits, a drain's PING), whatever the reader and writer are
/// waiting for: a read that never completes, or a reader held by write
/// backpressure, does not stop them. When a timer closes the connection, the
/// writer flushes the GOAWAY and shuts the socket down, which ends the read; a
/// writer stuck on a client that reads nothing gets [`CLOSE_LINGER`].
async fn timer_loop<T: Transport>(socket: Rc<T>, shared: Rc<Shared>) {
    loop {
        let deadline = shared.inner.borrow().conn.poll_timeout();
        shared.timer_armed.set(deadline);
        let changed = shared.timer_changed.notified();
        let Some(deadline) = deadline else {
            changed.await;
            continue;
        };
        tokio::select! {
            biased;
            _ = changed => continue,
            _ = tokio::time::sleep_until(deadline.into()) => {}
        }
        // Never earlier than the deadline, so that what was due fires even if
        // the runtime's clock woke us a hair early.
        let now = Instant::now().max(deadline);
        shared.inner.borrow_mut().conn.handle_timeout(now);
        let closed = handle_events(&shared);
        shared.wake_writer();
        if closed {
            break;
        }
    }
    // `serve` ends this task when the connection is gone before then.
    tokio::time::sleep(CLOSE_LINGER).await;
    socket.shutdown();
}

/// Resets the streams whose client has given them no window for
/// `send_stall_timeout`, and cancels their calls.
fn reset_stalled_streams(shared: &Rc<Shared>) {
    shared
        .inner
        .borrow_mut()
        .conn
        .reset_stalled_streams(Instant::now());
    handle_events(shared);
}

/// One write batch (`write_all`, or `write_spliced` with payload runs),
/// abandoned after `limit`: a client that stops reading its socket loses the
/// connection instead of holding it, its calls and this buffer for ever. One
/// batch is what the streams had queued (at most their send high-water mark
/// plus one message each) and the control frames we owe, so a client that reads
/// at all finishes it unless it reads slower than a batch per `limit`. Costs a
/// timer per write that does not complete at once.
///
/// Not an `async fn`: one would keep `write` and the `Timeout` that took it
/// side by side in its state (1 KiB on io_uring), and the writer's task, which
/// every idle connection holds, is as large as its largest await.
fn write_within<F>(write: F, limit: std::time::Duration) -> tokio::time::Timeout<F>
where
    F: Future<Output = (std::io::Result<()>, BytesMut)>,
{
    tokio::time::timeout(limit, write)
}

/// What [`write_within`] came to: the write's own result, or a timeout.
fn written(
    within: Result<(std::io::Result<()>, BytesMut), tokio::time::error::Elapsed>,
) -> (std::io::Result<()>, BytesMut) {
    match within {
        Ok(written) => written,
        // The buffer stays with the abandoned write; the connection closes.
        Err(_) => (Err(std::io::ErrorKind::TimedOut.into()), BytesMut::new()),
    }
}

async fn write_loop<T: Transport>(socket: Rc<T>, shared: Rc<Shared>) {
    let worker = &*shared.worker;
    // A buffer only while there is something to write: a connection with
    // nothing to say holds none (the worker's pool keeps them meanwhile).
    let mut held: Option<BytesMut> = None;
    let mut waiters = Vec::new();
    // Large DATA payloads written from the messages themselves (plaintext
    // sockets; TLS encrypts into a buffer of its own anyway).
    let spliced_writes = socket.writes_spliced();
    let mut spliced: Vec<(usize, Bytes)> = Vec::new();
    loop {
        let stall = shared.inner.borrow().conn.send_stall_deadline();
        if stall.is_some_and(|at| at <= Instant::now()) {
            reset_stalled_streams(&shared);
        }
        let mut out = held.take().unwrap_or_else(|| worker.take_write_buffer());
        out.clear();
        let (closed, done) = {
            let mut inner = shared.inner.borrow_mut();
            if spliced_writes {
                let now = Instant::now();
                inner
                    .conn
                    .poll_transmit_vectored(now, &mut out, &mut spliced, SPLICE_MIN);
            } else {
                inner.conn.poll_transmit(Instant::now(), &mut out);
            }
            shared.check_timer(&inner.conn);
            (inner.conn.is_closed(), shared.closed.get())
        };
        // Encryption, over TLS; nothing on a plaintext connection.
        if socket.seal(&mut out, closed || done).is_err() {
            worker.give_back_buffer(out);
            shared.closed.set(true);
            break;
        }
        if out.is_empty() && spliced.is_empty() {
            worker.give_back_buffer(out);
            if closed || done {
                break;
            }
            // Read into a local: a borrow held across the await below would make
            // every other borrow of the connection panic.
            let stall = shared.inner.borrow().conn.send_stall_deadline();
            match stall {
                None => shared.write_wanted.notified().await,
                // Nothing to write, but a stream waits for window: wake up in time
                // to end it if none comes.
                Some(at) => {
                    let wanted = shared.write_wanted.notified();
                    let _ = tokio::time::timeout_at(at.into(), wanted).await;
                }
            }
            continue;
        }
        let batch = out.len() + spliced.iter().map(|(_, run)| run.len()).sum::<usize>();
        shared.in_flight.set(batch);
        let stall_timeout = worker.config.codec.send_stall_timeout;
        let (result, buf) = written(if spliced.is_empty() {
            write_within(socket.write_all(out), stall_timeout).await
        } else {
            write_within(socket.write_spliced(out, &mut spliced), stall_timeout).await
        });
        // Runs a timed-out write left behind: their messages are not ours any more.
        spliced.clear();
        if result.is_ok() {
            worker.stats.bytes_written(batch);
        }
        // Kept for the next turn, which is likely to follow at once (senders
        // woken below queue more); given back when that turn finds nothing.
        held = Some(buf);
        shared.in_flight.set(0);
        shared.write_done.notify_one();
        // Swap the waiter list with an empty one that has kept its capacity, so
        // waking senders allocates nothing.
        std::mem::swap(&mut waiters, &mut shared.inner.borrow_mut().send_waiters);
        waiters.drain(..).for_each(Waker::wake);
        if result.is_err() {
            shared.closed.set(true);
            break;
        }
    }
    // Everything we had to say is out (a GOAWAY last, if closing): let the client
    // see the end of the stream, and end our pending read too.
    socket.shutdown();
    if let Some(buf) = held {
        worker.give_back_buffer(buf);
    }
    shared.closed.set(true);
}
