//! Per-worker counters and the snapshot API ([`ServerHandle::stats`]).
//!
//! Each worker counts in plain `Cell`s on its own thread: counting an RPC costs
//! an increment, no atomics, no locks. Other threads never read those cells.
//! [`ServerHandle::stats`] asks every worker for a copy instead: it raises the
//! worker's request flag and wakes its stats task, which copies the counters into
//! a mutex-guarded snapshot the next time the worker's runtime gets to it. The
//! caller waits at most [`STATS_WAIT`] for all workers together; a worker busy for
//! longer (a handler blocking its thread) contributes the last snapshot it
//! published. A stopped worker's final counts stay readable.
//!
//! [`ServerHandle::stats`]: crate::ServerHandle::stats

use std::cell::Cell;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use ringrpc_service_api::Code;
use tokio::sync::Notify;

/// How long [`crate::ServerHandle::stats`] waits for busy workers before it
/// settles for their previous snapshots.
pub const STATS_WAIT: Duration = Duration::from_millis(100);

/// gRPC status codes, 0 (OK) to 16 (UNAUTHENTICATED).
const CODES: usize = 17;

/// Counters of one worker, or of all of them added up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Requests received (every HEADERS that opened a gRPC call, including those
    /// answered at once because nothing serves them).
    pub rpcs_started: u64,
    /// RPCs that ended, by the status code they ended with, indexed by code
    /// (`rpcs_finished[Code::NotFound as usize]`). A call cancelled by its client
    /// counts as CANCELLED; one cut short by its connection closing or by the
    /// server shutting down counts as UNAVAILABLE.
    pub rpcs_finished: [u64; CODES],
    /// Bytes read from client sockets.
    pub bytes_read: u64,
    /// Bytes written to client sockets.
    pub bytes_written: u64,
    /// Connections accepted.
    pub connections_accepted: u64,
    /// Connections open now.
    pub active_connections: u64,
    /// Connections closed right after accept because their worker already
    /// served `max_connections_per_worker` (not in `connections_accepted`).
    pub connections_refused: u64,
    /// Calls whose handler is running (or whose stream is not yet released) now.
    pub active_streams: u64,
    /// TLS connections closed before their handshake completed: timed out,
    /// not TLS, a certificate refused, no `h2` negotiated.
    pub tls_handshake_failures: u64,
}

impl Counters {
    /// RPCs that ended with `code`.
    pub fn finished(&self, code: Code) -> u64 {
        self.rpcs_finished
            .get(code.as_i32() as usize)
            .copied()
            .unwrap_or(0)
    }

    /// RPCs that ended, whatever their status.
    pub fn finished_total(&self) -> u64 {
        self.rpcs_finished.iter().sum()
    }

    fn add(&mut self, other: &Counters) {
        self.rpcs_started += other.rpcs_started;
        for (sum, n) in self.rpcs_finished.iter_mut().zip(other.rpcs_finished) {
            *sum += n;
        }
        self.bytes_read += other.bytes_read;
        self.bytes_written += other.bytes_written;
        self.connections_accepted += other.connections_accepted;
        self.active_connections += other.active_connections;
        self.connections_refused += other.connections_refused;
        self.active_streams += other.active_streams;
        self.tls_handshake_failures += other.tls_handshake_failures;
    }
}

/// A snapshot of the server's counters: per worker, and their sum.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// All workers added up.
    pub total: Counters,
    /// Worker `i`'s counters at index `i`.
    pub workers: Vec<Counters>,
}

/// The counters a worker increments; lives in its context, on its thread.
#[derive(Default)]
pub(crate) struct WorkerStats {
    rpcs_started: Cell<u64>,
    rpcs_finished: [Cell<u64>; CODES],
    bytes_read: Cell<u64>,
    bytes_written: Cell<u64>,
    connections_accepted: Cell<u64>,
    active_connections: Cell<u64>,
    connections_refused: Cell<u64>,
    active_streams: Cell<u64>,
    tls_handshake_failures: Cell<u64>,
}

fn bump(cell: &Cell<u64>, n: u64) {
    cell.set(cell.get().wrapping_add(n));
}

impl WorkerStats {
    pub(crate) fn rpc_started(&self) {
        bump(&self.rpcs_started, 1);
    }

    /// An RPC ended with status `code`; codes past 16 count as UNKNOWN, as a
    /// client would read them.
    pub(crate) fn rpc_finished(&self, code: u32) {
        let index = if (code as usize) < CODES {
            code as usize
        } else {
            Code::Unknown as usize
        };
        bump(&self.rpcs_finished[index], 1);
    }

    pub(crate) fn bytes_read(&self, n: usize) {
        bump(&self.bytes_read, n as u64);
    }

    pub(crate) fn bytes_written(&self, n: usize) {
        bump(&self.bytes_written, n as u64);
    }

    pub(crate) fn connection_opened(&self) {
        bump(&self.connections_accepted, 1);
        bump(&self.active_connections, 1);
    }

    pub(crate) fn connection_refused(&self) {
        bump(&self.connections_refused, 1);
    }

    pub(crate) fn connection_closed(&self) {
        let n = &self.active_connections;
        n.set(n.get().saturating_sub(1));
    }

    pub(crate) fn tls_handshake_failed(&self) {
        bump(&self.tls_handshake_failures, 1);
    }

    pub(crate) fn stream_opened(&self) {
        bump(&self.active_streams, 1);
    }

    pub(crate) fn stream_closed(&self) {
        let n = &self.active_streams;
        n.set(n.get().saturating_sub(1));
    }

    fn snapshot(&self) -> Counters {
        let mut finished = [0; CODES];
        for (out, cell) in finished.iter_mut().zip(&self.rpcs_finished) {
            *out = cell.get();
        }
        Counters {
            rpcs_started: self.rpcs_started.get(),
            rpcs_finished: finished,
            bytes_read: self.bytes_read.get(),
            bytes_written: self.bytes_written.get(),
            connections_accepted: self.connections_accepted.get(),
            active_connections: self.active_connections.get(),
            connections_refused: self.connections_refused.get(),
            active_streams: self.active_streams.get(),
            tls_handshake_failures: self.tls_handshake_failures.get(),
        }
    }
}

/// Where one worker publishes its counters for other threads.
#[derive(Default)]
pub(crate) struct StatsCell {
    published: Mutex<Published>,
    changed: Condvar,
    /// Wakes the worker's stats task.
    wanted: Notify,
}

#[derive(Default)]
struct Published {
    counters: Counters,
    /// The request this snapshot answers.
    generation: u64,
    /// Requests made so far.
    requested: u64,
    /// The worker has stopped; nothing newer will come.
    stopped: bool,
}

fn lock(cell: &StatsCell) -> std::sync::MutexGuard<'_, Published> {
    cell.published
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl StatsCell {
    /// Run by the worker for its whole life: answers each request with a copy of
    /// `stats` (the worker leaves its final counts with `publish_final`).
    pub(crate) async fn serve(&self, stats: &WorkerStats) {
        loop {
            self.wanted.notified().await;
            self.publish(stats, false);
        }
    }

    fn publish(&self, stats: &WorkerStats, stopped: bool) {
        let counters = stats.snapshot();
        let mut published = lock(self);
        published.counters = counters;
        published.generation = published.requested;
        published.stopped |= stopped;
        drop(published);
        self.changed.notify_all();
    }

    /// The worker is exiting: its last counts, for good.
    pub(crate) fn publish_final(&self, stats: &WorkerStats) {
        self.publish(stats, true);
    }

    /// Asks the worker for a fresh snapshot; returns the generation to wait for.
    fn request(&self) -> u64 {
        let mut published = lock(self);
        published.requested += 1;
        let wanted = published.requested;
        drop(published);
        self.wanted.notify_one();
        wanted
    }

    /// The snapshot answering `generation`, or the latest if `deadline` passes.
    fn collect(&self, generation: u64, deadline: Instant) -> Counters {
        let mut published = lock(self);
        while published.generation < generation && !published.stopped {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            published = self
                .changed
                .wait_timeout(published, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        published.counters.clone()
    }
}

/// Asks every worker, then gathers their answers.
pub(crate) fn gather(cells: &[std::sync::Arc<StatsCell>]) -> Stats {
    let generations: Vec<u64> = cells.iter().map(|cell| cell.request()).collect();
    let deadline = Instant::now() + STATS_WAIT;
    let workers: Vec<Counters> = cells
        .iter()
        .zip(generations)
        .map(|(cell, generation)| cell.collect(generation, deadline))
        .collect();
    let mut total = Counters::default();
    for worker in &workers {
        total.add(worker);
    }
    Stats { total, workers }
}

/// The `rpc` tracing span of one call: fields `method` (the request path),
/// `status` (the gRPC code it ended with) and `duration_us` (from the request
/// head to the status). Made only when a subscriber is interested in it, so
/// without one a call pays a level check and nothing else.
pub(crate) struct RpcSpan {
    span: tracing::Span,
    start: Instant,
}

impl RpcSpan {
    pub(crate) fn start(path: &[u8]) -> Option<RpcSpan> {
        let span = tracing::info_span!(
            "rpc",
            method = std::str::from_utf8(path).unwrap_or("<not UTF-8>"),
            status = tracing::field::Empty,
            duration_us = tracing::field::Empty,
        );
        if span.is_disabled() {
            return None;
        }
        Some(RpcSpan {
            span,
            start: Instant::now(),
        })
    }

    pub(crate) fn span(&self) -> tracing::Span {
        self.span.clone()
    }

    /// Records the outcome (when known) and closes the span.
    pub(crate) fn end(span: Option<RpcSpan>, code: Option<u32>) {
        let Some(RpcSpan { span, start }) = span else {
            return;
        };
        if let Some(code) = code {
            span.record("status", code);
        }
        let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        span.record("duration_us", micros);
    }
}
