//! The io_uring backend: one ring per worker thread, driven from inside the
//! worker's tokio current-thread runtime so that timers, `tokio::net` and
//! `tokio::sync` keep working for handlers exactly as on the epoll backend.
//!
//! # Why not tokio-uring's driver
//!
//! tokio-uring submits from tokio's park hook and learns of completions from
//! tokio's epoll: every turn of a busy worker costs an `io_uring_enter` and an
//! `epoll_wait`, and the hook submits even when nothing is queued. Here a
//! *turn* is one runtime task ([`Turn`]) that runs the worker's ready tasks and
//! then makes at most one `io_uring_enter`, which submits what they queued and
//! collects what completed. While completions keep coming the task stays
//! scheduled and tokio never blocks in epoll; only when a turn finds nothing
//! does the worker park in `epoll_wait`, on the ring's descriptor among
//! tokio's others. With `IORING_SETUP_TASKRUN_FLAG` the kernel tells us in
//! shared memory whether completion work is waiting, so a turn with nothing
//! to submit and nothing pending makes no syscall at all.
//!
//! The worker's own tasks live in a [`LocalSet`] that the turn task polls, so
//! a completion waking one of them costs a queue push, not a wake-up of the
//! runtime (tokio wakes a `block_on` future through an eventfd write).
//!
//! # Buffers
//!
//! An operation owns its buffers until the kernel is done with them: an
//! [`Op`] dropped before its completion (a connection closed mid-read) parks
//! its buffers in the operation's slot and asks the kernel to cancel; the
//! completion frees them.

use std::any::Any;
use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes, BytesMut};
use io_uring::{opcode, squeue, types, IoUring};
use tokio::io::unix::AsyncFd;
use tokio::task::LocalSet;

use crate::config::EngineConfig;

/// Runtime ticks between tokio's looks at its timers and its epoll set while
/// the ring keeps the turn task busy (tokio's default is 61). A tick here is a
/// whole turn, dozens of tasks: at unary saturation on a 2-vCPU VM about 4,400
/// turns a second with the core 60% busy, so 61 of them could hold a timer back
/// by 8 ms and 16 by about 2, at the cost of one `epoll_wait(0)` per 16 turns.
const EVENT_INTERVAL: u32 = 16;

/// `io_uring_enter` flag: process completions (the io-uring crate keeps its
/// copy private).
const IORING_ENTER_GETEVENTS: u32 = 1;

/// `user_data` of cancellation requests, whose completions are not waited for.
const CANCEL: u64 = u64::MAX;

thread_local! {
    /// This thread's ring, while a [`Runtime`] runs on it.
    static DRIVER: RefCell<Option<Rc<Driver>>> = const { RefCell::new(None) };
    /// The worker's tasks, polled by the turn task.
    static LOCAL: RefCell<Option<LocalSet>> = const { RefCell::new(None) };
}

/// The state of one operation.
enum Slot {
    /// Not in use; the index is on the free list.
    Free,
    /// Submitted (or queued for submission); the waker of the future awaiting it.
    Waiting(Option<Waker>),
    /// Completed with this result, not yet collected by its future.
    Done(i32),
    /// Its future was dropped: the buffers the kernel may still be using,
    /// freed by the completion.
    Orphaned(#[allow(dead_code)] Box<dyn Any>),
}

/// Operations by index (the index is the submission's `user_data`).
#[derive(Default)]
struct Slots {
    slots: Vec<Slot>,
    free: Vec<u32>,
}

impl Slots {
    fn insert(&mut self) -> u32 {
        match self.free.pop() {
            Some(index) => {
                self.slots[index as usize] = Slot::Waiting(None);
                index
            }
            None => {
                self.slots.push(Slot::Waiting(None));
                (self.slots.len() - 1) as u32
            }
        }
    }

    fn release(&mut self, index: u32) {
        self.slots[index as usize] = Slot::Free;
        self.free.push(index);
    }

    fn in_flight(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

/// One worker's ring and the operations in flight on it.
pub(crate) struct Driver {
    ring: RefCell<IoUring>,
    slots: RefCell<Slots>,
    /// Wakers of completed operations, collected under the borrows and called
    /// after them (kept to reuse its allocation).
    completed: RefCell<Vec<Waker>>,
    sqpoll: bool,
}

impl Driver {
    fn new(ring: IoUring) -> Driver {
        Driver {
            sqpoll: ring.params().is_setup_sqpoll(),
            ring: RefCell::new(ring),
            slots: RefCell::new(Slots::default()),
            completed: RefCell::new(Vec::new()),
        }
    }

    /// This thread's driver. Panics off a ring worker: only the io_uring
    /// backend creates ring sockets.
    fn current() -> Rc<Driver> {
        DRIVER.with_borrow(|driver| {
            driver
                .clone()
                .expect("ring socket used outside an io_uring worker")
        })
    }

    /// Queues `sqe` for the next submission, keeping `data` (what its pointers
    /// point into) until it completes.
    fn start<T: 'static>(self: &Rc<Self>, sqe: squeue::Entry, data: T) -> Op<T> {
        let index = self.slots.borrow_mut().insert();
        self.push(sqe.user_data(u64::from(index)));
        Op {
            driver: self.clone(),
            index,
            data: Some(data),
        }
    }

    fn push(&self, sqe: squeue::Entry) {
        let mut ring = self.ring.borrow_mut();
        // SAFETY: every pointer in `sqe` points into data an `Op` (or an
        // orphaned slot) keeps alive until the completion arrives.
        while unsafe { ring.submission().push(&sqe) }.is_err() {
            // Full: hand the queue to the kernel to make room. A refusal
            // (completion queue overflowing) is cured by reaping.
            if ring.submit().is_err() {
                drop(ring);
                self.reap();
                ring = self.ring.borrow_mut();
            }
        }
    }

    /// Submits what is queued and collects completions, waking their futures:
    /// the number woken. At most one `io_uring_enter`, and none when nothing is
    /// queued and the kernel has no completion work waiting for this thread.
    fn turn(&self) -> usize {
        {
            let mut ring = self.ring.borrow_mut();
            let (queued, pending) = {
                let sq = ring.submission();
                (sq.len(), sq.taskrun() || sq.cq_overflow())
            };
            if self.sqpoll {
                if queued > 0 || pending {
                    let _ = ring.submit();
                }
            } else if queued > 0 || pending {
                // GETEVENTS with no minimum: run the completion work the
                // kernel deferred to us (COOP_TASKRUN), never wait.
                // SAFETY: plain io_uring_enter arguments, no extended argument.
                let _ = unsafe {
                    ring.submitter().enter::<libc::sigset_t>(
                        queued as u32,
                        0,
                        IORING_ENTER_GETEVENTS,
                        None,
                    )
                };
            }
        }
        self.reap()
    }

    /// Collects the completions in the queue and wakes their futures.
    fn reap(&self) -> usize {
        let mut completed = self.completed.borrow_mut();
        {
            let mut ring = self.ring.borrow_mut();
            let mut slots = self.slots.borrow_mut();
            for cqe in ring.completion() {
                let index = cqe.user_data();
                if index == CANCEL {
                    continue;
                }
                let index = index as u32;
                match &mut slots.slots[index as usize] {
                    Slot::Waiting(waker) => {
                        if let Some(waker) = waker.take() {
                            completed.push(waker);
                        }
                        slots.slots[index as usize] = Slot::Done(cqe.result());
                    }
                    Slot::Orphaned(_) => slots.release(index),
                    Slot::Done(_) | Slot::Free => {
                        debug_assert!(false, "a completion for slot {index} that has none")
                    }
                }
            }
        }
        let woken = completed.len();
        // Waking only queues the tasks: nothing here re-enters the driver.
        for waker in completed.drain(..) {
            waker.wake();
        }
        woken
    }

    /// Submits whatever is queued, without looking for completions: before the
    /// thread parks, so nothing waits in the queue while it sleeps.
    fn flush(&self) {
        let mut ring = self.ring.borrow_mut();
        if !ring.submission().is_empty() {
            let _ = ring.submit();
        }
    }

    /// Cancels what is still in flight and waits (briefly) for the kernel to
    /// let go of its buffers. Whatever it still holds after that is leaked
    /// rather than freed under the kernel.
    fn shut_down(&self) {
        let in_flight: Vec<u32> = {
            let slots = self.slots.borrow();
            (0..slots.slots.len() as u32)
                .filter(|&i| !matches!(slots.slots[i as usize], Slot::Free))
                .collect()
        };
        for index in in_flight {
            self.push(
                opcode::AsyncCancel::new(u64::from(index))
                    .build()
                    .user_data(CANCEL),
            );
        }
        let wait = types::Timespec::new().nsec(10_000_000);
        for _ in 0..100 {
            // Every future is gone by now, so what is in flight is orphaned.
            if self.slots.borrow().in_flight() == 0 {
                return;
            }
            let args = types::SubmitArgs::new().timespec(&wait);
            let _ = self.ring.borrow().submitter().submit_with_args(1, &args);
            self.reap();
        }
        std::mem::forget(std::mem::take(&mut self.slots.borrow_mut().slots));
    }
}

/// An operation in flight: resolves to the kernel's result (a negative errno
/// on failure) and the data it kept alive.
pub(crate) struct Op<T: 'static> {
    driver: Rc<Driver>,
    index: u32,
    data: Option<T>,
}

impl<T: Unpin + 'static> Future for Op<T> {
    type Output = (i32, T);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<(i32, T)> {
        let mut slots = self.driver.slots.borrow_mut();
        match &mut slots.slots[self.index as usize] {
            Slot::Done(result) => {
                let result = *result;
                slots.release(self.index);
                drop(slots);
                let data = self
                    .data
                    .take()
                    .expect("an operation polled after it completed");
                Poll::Ready((result, data))
            }
            Slot::Waiting(waker) => {
                match waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            Slot::Free | Slot::Orphaned(_) => unreachable!("an operation's slot was taken"),
        }
    }
}

impl<T: 'static> Drop for Op<T> {
    fn drop(&mut self) {
        let Some(data) = self.data.take() else {
            return;
        };
        let mut slots = self.driver.slots.borrow_mut();
        match slots.slots[self.index as usize] {
            Slot::Done(_) => slots.release(self.index),
            _ => {
                slots.slots[self.index as usize] = Slot::Orphaned(Box::new(data));
                drop(slots);
                self.driver.push(
                    opcode::AsyncCancel::new(u64::from(self.index))
                        .build()
                        .user_data(CANCEL),
                );
            }
        }
    }
}

fn result(res: i32) -> io::Result<usize> {
    if res < 0 {
        Err(io::Error::from_raw_os_error(-res))
    } else {
        Ok(res as usize)
    }
}

/// A connected stream socket (TCP or Unix) whose reads and writes go through
/// this worker's ring. The descriptor is in blocking mode: the ring retries on
/// readiness itself, and a non-blocking descriptor could hand it EAGAIN.
pub(crate) struct RingStream {
    fd: OwnedFd,
    driver: Rc<Driver>,
}

/// What a vectored write keeps alive: the pieces, the iovecs pointing into
/// them, and the message header pointing at those.
struct Vectored {
    pieces: Vec<Bytes>,
    iovecs: Vec<libc::iovec>,
    header: Box<libc::msghdr>,
}

impl RingStream {
    /// Adopts a connected socket, on a ring worker's thread.
    pub(crate) fn new(fd: OwnedFd) -> io::Result<RingStream> {
        set_blocking(fd.as_raw_fd())?;
        Ok(RingStream {
            fd,
            driver: Driver::current(),
        })
    }

    fn fd(&self) -> types::Fd {
        types::Fd(self.fd.as_raw_fd())
    }

    /// Receives into the spare capacity of `buf`, growing it by what arrived.
    pub(crate) async fn read(&self, mut buf: BytesMut) -> (io::Result<usize>, BytesMut) {
        let spare = buf.spare_capacity_mut();
        let (ptr, room) = (spare.as_mut_ptr().cast::<u8>(), spare.len());
        let sqe = opcode::Recv::new(self.fd(), ptr, room.min(u32::MAX as usize) as u32).build();
        let (res, mut buf) = self.driver.start(sqe, buf).await;
        let result = result(res);
        if let Ok(n) = result {
            // SAFETY: the kernel wrote `n` bytes into the spare capacity.
            unsafe { buf.set_len(buf.len() + n) };
        }
        (result, buf)
    }

    /// Sends all of `buf`, one send at a time; gives it back for reuse.
    pub(crate) async fn write_all(&self, mut buf: BytesMut) -> (io::Result<()>, BytesMut) {
        let mut written = 0;
        while written < buf.len() {
            let rest = &buf[written..];
            let sqe = opcode::Send::new(
                self.fd(),
                rest.as_ptr(),
                rest.len().min(u32::MAX as usize) as u32,
            )
            .flags(libc::MSG_NOSIGNAL)
            .build();
            let (res, back) = self.driver.start(sqe, buf).await;
            buf = back;
            match result(res) {
                Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    /// Sends all of `pieces` in order, as few vectored sends as the kernel
    /// allows (at most `max_iovecs` pieces each).
    pub(crate) async fn write_pieces(
        &self,
        pieces: Vec<Bytes>,
        max_iovecs: usize,
    ) -> io::Result<()> {
        let mut vectored = Vectored {
            pieces,
            iovecs: Vec::new(),
            // SAFETY: an all-zero msghdr is a valid empty one.
            header: Box::new(unsafe { std::mem::zeroed() }),
        };
        while !vectored.pieces.is_empty() {
            vectored.iovecs.clear();
            vectored.iovecs.extend(
                vectored
                    .pieces
                    .iter()
                    .take(max_iovecs)
                    .map(|p| libc::iovec {
                        iov_base: p.as_ptr() as *mut libc::c_void,
                        iov_len: p.len(),
                    }),
            );
            vectored.header.msg_iov = vectored.iovecs.as_mut_ptr();
            vectored.header.msg_iovlen = vectored.iovecs.len() as _;
            let sqe = opcode::SendMsg::new(self.fd(), &*vectored.header)
                .flags(libc::MSG_NOSIGNAL as u32)
                .build();
            let (res, back) = self.driver.start(sqe, vectored).await;
            vectored = back;
            match result(res) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(mut n) => {
                    let mut whole = 0;
                    while whole < vectored.pieces.len() && vectored.pieces[whole].len() <= n {
                        n -= vectored.pieces[whole].len();
                        whole += 1;
                    }
                    vectored.pieces.drain(..whole);
                    if n > 0 {
                        vectored.pieces[0].advance(n);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Shuts the socket down both ways; a read pending on it completes.
    pub(crate) fn shutdown(&self) {
        let _ = socket2::SockRef::from(&self.fd).shutdown(std::net::Shutdown::Both);
    }
}

fn set_blocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own, with integer arguments.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The runtime task that turns the ring (see the module documentation).
struct Turn {
    ring: AsyncFd<RawFd>,
}

impl Future for Turn {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(driver) = DRIVER.with_borrow(|driver| driver.clone()) else {
            return Poll::Ready(());
        };
        // Run the worker's ready tasks. If more are ready than one tick runs,
        // the set wakes this task again.
        let running = LOCAL.with_borrow_mut(|local| match local {
            Some(local) => {
                let _ = Pin::new(local).poll(cx);
                true
            }
            None => false,
        });
        if !running {
            return Poll::Ready(());
        }
        // Submit what they queued and collect completions: woken tasks wake
        // this one through the set.
        if driver.turn() > 0 {
            return Poll::Pending;
        }
        // Nothing completed: sleep until the ring's descriptor says something
        // has (tokio's park submits anything queued before it blocks).
        loop {
            match self.ring.poll_read_ready(cx) {
                Poll::Ready(Ok(mut ready)) => {
                    ready.clear_ready();
                    if driver.reap() > 0 {
                        return Poll::Pending;
                    }
                }
                Poll::Ready(Err(_)) | Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// A worker's runtime on the io_uring backend.
pub(crate) struct Runtime {
    tokio: tokio::runtime::Runtime,
    driver: Rc<Driver>,
}

impl Runtime {
    /// Sets up the ring with the configured flags, falling back to a plain
    /// ring when the kernel refuses them; `Err` when io_uring is unavailable.
    pub(crate) fn new(config: &EngineConfig) -> io::Result<Runtime> {
        let ring = build_ring(config)?;
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .event_interval(EVENT_INTERVAL)
            .on_thread_park(|| {
                DRIVER.with_borrow(|driver| {
                    if let Some(driver) = driver {
                        driver.flush();
                    }
                })
            })
            .build()?;
        Ok(Runtime {
            tokio,
            driver: Rc::new(Driver::new(ring)),
        })
    }

    /// Runs `main` and every task it spawns (`tokio::task::spawn_local`) on
    /// this thread until `main` returns.
    pub(crate) fn block_on(self, main: impl Future<Output = ()> + 'static) {
        let Runtime { tokio, driver } = self;
        DRIVER.set(Some(driver.clone()));
        let local = LocalSet::new();
        let (done, finished) = tokio::sync::oneshot::channel::<()>();
        local.spawn_local(async move {
            main.await;
            let _ = done.send(());
        });
        LOCAL.set(Some(local));
        let ring_fd = driver.ring.borrow().as_raw_fd();
        tokio.block_on(async move {
            // SAFETY: the ring's descriptor outlives this registration: the
            // driver that owns it is dropped after the runtime.
            match unsafe { AsyncFd::register_with_interest(ring_fd, tokio::io::Interest::READABLE) }
            {
                Ok(ring) => {
                    let turn = tokio::spawn(Turn { ring });
                    let _ = finished.await;
                    turn.abort();
                }
                Err(error) => {
                    let error = io::Error::from(error);
                    tracing::error!(%error, "cannot watch the io_uring descriptor")
                }
            }
        });
        {
            // Tasks still in the set drop their operations (and sockets) here,
            // inside the runtime their timers belong to.
            let _enter = tokio.enter();
            LOCAL.take();
        }
        driver.shut_down();
        DRIVER.take();
        drop(tokio);
    }
}

/// Ring setup flags, in the order they are tried before a plain ring.
#[derive(Clone, Copy, Debug)]
enum RingFlags {
    /// A kernel thread polls the submission queue. The kernel refuses the
    /// task-run flags beside it (they are about interrupting the submitter,
    /// which is that thread now), so they are not combined.
    SubmissionPolling,
    /// COOP_TASKRUN + TASKRUN_FLAG + SINGLE_ISSUER (see `EngineConfig`).
    CooperativeTaskRun,
}

fn build_ring(config: &EngineConfig) -> io::Result<IoUring> {
    let mut wanted = Vec::with_capacity(3);
    if config.ring_sqpoll_idle.is_some() {
        wanted.push(RingFlags::SubmissionPolling);
    }
    if config.ring_coop_taskrun {
        wanted.push(RingFlags::CooperativeTaskRun);
    }
    for flags in wanted {
        let mut builder = IoUring::builder();
        match flags {
            RingFlags::SubmissionPolling => {
                let idle = config.ring_sqpoll_idle.unwrap_or_default();
                builder.setup_sqpoll(idle.as_millis().min(u32::MAX as u128) as u32);
            }
            RingFlags::CooperativeTaskRun => {
                builder
                    .setup_coop_taskrun()
                    .setup_taskrun_flag()
                    .setup_single_issuer();
            }
        }
        match builder.build(config.ring_entries) {
            Ok(ring) => return Ok(ring),
            // Kernels before 6.0 reject COOP_TASKRUN and SINGLE_ISSUER, and
            // SQPOLL needs privileges before 5.11: try the next set.
            Err(error) => tracing::info!(%error, ?flags, "io_uring setup flags refused"),
        }
    }
    IoUring::new(config.ring_entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::time::{Duration, Instant};

    /// How long a test waits for something that should happen at once.
    const PATIENCE: Duration = Duration::from_secs(10);

    fn config() -> EngineConfig {
        EngineConfig::default()
    }

    /// Runs `body` on a ring runtime on this thread.
    fn on_ring(body: impl Future<Output = ()> + 'static) {
        let runtime = match Runtime::new(&config()) {
            Ok(runtime) => runtime,
            Err(error) => panic!("io_uring unavailable: {error}"),
        };
        runtime.block_on(async move {
            tokio::time::timeout(PATIENCE, body)
                .await
                .expect("the ring made no progress");
        });
    }

    #[test]
    fn reads_and_writes_go_through_the_ring() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let peer = std::thread::spawn(move || {
            let mut got = [0u8; 5];
            theirs.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"hello");
            theirs.write_all(b"world!").unwrap();
            let mut rest = Vec::new();
            theirs.read_to_end(&mut rest).unwrap();
            rest
        });
        on_ring(async move {
            let stream = RingStream::new(OwnedFd::from(ours)).unwrap();
            let (written, _) = stream.write_all(BytesMut::from(&b"hello"[..])).await;
            written.unwrap();
            let mut buf = BytesMut::with_capacity(64);
            buf.extend_from_slice(b">");
            let mut read = 0;
            while read < 6 {
                let (n, back) = stream.read(buf).await;
                buf = back;
                read += n.unwrap();
            }
            assert_eq!(
                &buf[..],
                b">world!",
                "a read appends after what the buffer holds"
            );
            let pieces = vec![
                Bytes::from_static(b"ab"),
                Bytes::from_static(b"cde"),
                Bytes::from_static(b"f"),
            ];
            // Two pieces per send: three sends, in order.
            stream.write_pieces(pieces, 2).await.unwrap();
            stream.shutdown();
        });
        assert_eq!(peer.join().unwrap(), b"abcdef");
    }

    #[test]
    fn a_read_dropped_in_flight_is_cancelled_and_its_buffer_kept_until_then() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        on_ring(async move {
            let stream = RingStream::new(OwnedFd::from(ours)).unwrap();
            let read = stream.read(BytesMut::with_capacity(64));
            // Started, then abandoned: nothing will ever arrive for it.
            let abandoned = tokio::time::timeout(Duration::from_millis(20), Box::pin(read)).await;
            assert!(abandoned.is_err(), "a read completed with nothing sent");
            let driver = Driver::current();
            let deadline = tokio::time::Instant::now() + PATIENCE;
            // The cancellation completes the read, which frees its slot.
            while driver.slots.borrow().in_flight() > 0 {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the read was never cancelled"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            // And the socket still works for the next read.
            theirs.write_all(b"next").unwrap();
            let (n, buf) = stream.read(BytesMut::with_capacity(64)).await;
            assert_eq!(n.unwrap(), 4);
            assert_eq!(&buf[..], b"next");
        });
    }

    /// Echoes what arrives on each of `peers` until it closes.
    fn echo_peers(peers: Vec<UnixStream>) {
        for mut peer in peers {
            std::thread::spawn(move || {
                let mut buf = [0u8; 256];
                while let Ok(n @ 1..) = peer.read(&mut buf) {
                    if peer.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    }

    /// Sends `i`'s label on each stream and reads it back, all at once.
    async fn round_trips_at_once(streams: Vec<Rc<RingStream>>) {
        let tasks: Vec<_> = streams
            .into_iter()
            .enumerate()
            .map(|(i, stream)| {
                tokio::task::spawn_local(async move {
                    let label = format!("stream {i:03}");
                    let (sent, _) = stream.write_all(BytesMut::from(label.as_bytes())).await;
                    sent.unwrap();
                    let mut buf = BytesMut::with_capacity(64);
                    while buf.len() < label.len() {
                        let (n, back) = stream.read(buf).await;
                        buf = back;
                        assert!(n.unwrap() > 0, "stream {i} ended early");
                    }
                    assert_eq!(&buf[..], label.as_bytes());
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    }

    #[test]
    fn more_operations_than_the_ring_holds_all_complete() {
        // 4 submission and 8 completion entries for 64 reads and 64 sends at
        // once: submitting must make room, and completions overflow the queue.
        let config = EngineConfig {
            ring_entries: 4,
            ..EngineConfig::default()
        };
        let (ours, theirs): (Vec<_>, Vec<_>) = (0..64).map(|_| UnixStream::pair().unwrap()).unzip();
        echo_peers(theirs);
        let runtime = Runtime::new(&config).expect("io_uring unavailable");
        runtime.block_on(async move {
            let streams = ours
                .into_iter()
                .map(|s| Rc::new(RingStream::new(OwnedFd::from(s)).unwrap()))
                .collect();
            tokio::time::timeout(PATIENCE, round_trips_at_once(streams))
                .await
                .expect("operations were lost");
        });
    }

    #[test]
    fn a_submission_polling_ring_serves_reads_and_writes() {
        let config = EngineConfig {
            ring_sqpoll_idle: Some(Duration::from_millis(1)),
            ..EngineConfig::default()
        };
        let (ours, theirs): (Vec<_>, Vec<_>) = (0..8).map(|_| UnixStream::pair().unwrap()).unzip();
        echo_peers(theirs);
        let runtime = Runtime::new(&config).expect("io_uring unavailable");
        // SQPOLL needs no privilege since Linux 5.11; a refusal would fall back
        // to a plain ring and make this test prove nothing.
        assert!(
            runtime.driver.sqpoll,
            "the kernel refused IORING_SETUP_SQPOLL"
        );
        runtime.block_on(async move {
            let streams: Vec<_> = ours
                .into_iter()
                .map(|s| Rc::new(RingStream::new(OwnedFd::from(s)).unwrap()))
                .collect();
            // Twice, the second time after the poller has gone to sleep.
            tokio::time::timeout(PATIENCE, round_trips_at_once(streams.clone()))
                .await
                .expect("no progress with a polling kernel thread");
            tokio::time::sleep(Duration::from_millis(20)).await;
            tokio::time::timeout(PATIENCE, round_trips_at_once(streams))
                .await
                .expect("no progress after the polling thread slept");
        });
    }

    #[test]
    fn timers_fire_while_the_ring_is_idle_and_while_it_is_busy() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        // If timers starved, the test's own timeout could not fire either:
        // a watchdog thread ends the busy loop instead.
        let watchdog_end = ours.try_clone().unwrap();
        let watchdog = std::thread::spawn(move || {
            std::thread::sleep(PATIENCE);
            let _ = watchdog_end.shutdown(std::net::Shutdown::Both);
        });
        echo_peers(vec![theirs]);
        let runtime = Runtime::new(&config()).expect("io_uring unavailable");
        runtime.block_on(async move {
            // Idle ring: the worker parks in epoll and the timer wakes it.
            let started = Instant::now();
            tokio::time::sleep(Duration::from_millis(5)).await;
            let slept = started.elapsed();
            assert!(
                slept < Duration::from_secs(2),
                "a 5 ms timer took {slept:?} on an idle ring"
            );

            // Busy ring: a task keeps completions coming while another sleeps.
            let stream = Rc::new(RingStream::new(OwnedFd::from(ours)).unwrap());
            let busy = {
                let stream = stream.clone();
                tokio::task::spawn_local(async move {
                    let mut buf = BytesMut::with_capacity(64);
                    let mut round_trips = 0u64;
                    loop {
                        let (sent, _) = stream.write_all(BytesMut::from(&b"x"[..])).await;
                        if sent.is_err() {
                            return round_trips;
                        }
                        buf.clear();
                        let (n, back) = stream.read(buf).await;
                        buf = back;
                        if !matches!(n, Ok(1..)) {
                            return round_trips;
                        }
                        round_trips += 1;
                    }
                })
            };
            let started = Instant::now();
            tokio::time::sleep(Duration::from_millis(50)).await;
            let slept = started.elapsed();
            stream.shutdown();
            let round_trips = busy.await.unwrap();
            assert!(round_trips > 0, "the echo never ran");
            assert!(
                slept < Duration::from_secs(2),
                "a 50 ms timer took {slept:?} while the ring was busy"
            );
        });
        drop(watchdog);
    }
}
