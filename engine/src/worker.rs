//! One worker: a thread pinned to a core, running its own runtime, its own
//! listener and every connection that listener accepts.

use std::cell::{Cell, RefCell};
use std::io;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use ringrpc_codec::server::Config as CodecConfig;
use ringrpc_service_api::server::CallSlot;
use tokio::sync::{watch, Notify};

use crate::config::{Backend, EngineConfig};
use crate::conn::{self, Shared};
use crate::io::{Bound, Listener};
use crate::ring;
use crate::router::Router;
use crate::server::ServiceFactory;
use crate::stats::{StatsCell, WorkerStats};
use crate::tls;

/// What every connection of a worker shares.
pub(crate) struct WorkerContext {
    pub(crate) config: EngineConfig,
    pub(crate) router: Router,
    connections: RefCell<Vec<Weak<Shared>>>,
    live: Cell<usize>,
    all_closed: Notify,
    /// Read and write buffers of closed connections, for the next ones.
    buffers: RefCell<Vec<BytesMut>>,
    /// Write buffers grown past twice the read size by large batches, kept for
    /// the next large batch within `LARGE_BUFFER_BUDGET` bytes in all.
    large_buffers: RefCell<Vec<BytesMut>>,
    /// Bytes of capacity in `large_buffers`.
    large_pooled: Cell<usize>,
    /// Small buffers an idle connection's io_uring read waits with.
    small_buffers: RefCell<Vec<BytesMut>>,
    /// Handler slots, lent to calls while they run (1 KiB each).
    slots: RefCell<Vec<Pin<Box<CallSlot>>>>,
    /// Response messages of all connections are encoded here and split off as
    /// `Bytes`, so small responses share allocations and an idle connection
    /// holds none.
    pub(crate) encode_buf: RefCell<BytesMut>,
    /// This worker's counters.
    pub(crate) stats: WorkerStats,
    /// Connections served at once before new ones are refused.
    max_connections: usize,
    /// State of the generator that spreads connection ages (splitmix64).
    age_jitter: Cell<u64>,
}

/// Buffers kept per worker: enough for a burst of new connections without
/// holding much memory when connections are few (at 16 KiB, 4 MiB).
const BUFFER_POOL: usize = 256;

/// Bytes of large write buffers kept per worker: a streaming connection's
/// writer gives its buffer back whenever it runs out of things to write and
/// finds it again on its next turn, instead of growing a new one each time.
const LARGE_BUFFER_BUDGET: usize = 4 * 1024 * 1024;

/// What an idle connection's read waits with on io_uring, where a read holds
/// its buffer until data comes: room for a small request or two (a unary call
/// with indexed headers is 60-150 bytes), 1/32 of a full-size read buffer. A
/// read that fills it is followed by full-size ones, so a burst costs one
/// extra read at most.
pub(crate) const IDLE_READ_SIZE: usize = 512;

/// Small buffers kept per worker (at 1 KiB, 1 MiB).
const SMALL_BUFFER_POOL: usize = 1024;

/// Handler slots kept per worker: one per call running at once, up to here.
const SLOT_POOL: usize = 1024;

impl WorkerContext {
    /// A buffer with room for one read, from the pool when it has one.
    pub(crate) fn take_buffer(&self) -> BytesMut {
        let size = self.config.read_buffer_size;
        self.buffers
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| BytesMut::with_capacity(size))
    }

    /// A buffer for one write batch: a large one a streaming connection gave
    /// back if there is one, else as [`take_buffer`](Self::take_buffer).
    pub(crate) fn take_write_buffer(&self) -> BytesMut {
        match self.large_buffers.borrow_mut().pop() {
            Some(buf) => {
                self.large_pooled
                    .set(self.large_pooled.get() - buf.capacity());
                buf
            }
            None => self.take_buffer(),
        }
    }

    /// A small buffer for an idle connection's read (see [`IDLE_READ_SIZE`]).
    pub(crate) fn take_small_buffer(&self) -> BytesMut {
        self.small_buffers
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| BytesMut::with_capacity(IDLE_READ_SIZE))
    }

    /// An empty handler slot.
    pub(crate) fn take_slot(&self) -> Pin<Box<CallSlot>> {
        self.slots
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Box::pin(CallSlot::new()))
    }

    /// Returns a slot whose handler was dropped.
    pub(crate) fn give_back_slot(&self, slot: Pin<Box<CallSlot>>) {
        let mut slots = self.slots.borrow_mut();
        if slots.len() < SLOT_POOL {
            slots.push(slot);
        }
    }

    /// The codec configuration of a new connection: the engine's, with
    /// `max_connection_age` spread by ±10% so that clients connected together
    /// (a deploy, a load balancer adding this server) do not all reconnect
    /// together. Costs a clone of the config, which `Connection::new` takes by
    /// value anyway.
    pub(crate) fn connection_config(&self) -> CodecConfig {
        let mut config = self.config.codec.clone();
        if let Some(age) = config.max_connection_age {
            config.max_connection_age = Some(spread_age(age, self.next_random()));
        }
        config
    }

    /// splitmix64: statistically fine for jitter, two multiplications.
    fn next_random(&self) -> u64 {
        let state = self.age_jitter.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        self.age_jitter.set(state);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Returns a buffer to the pool, if its memory is ours alone again (no message
    /// slices of it are still alive) and the pool has room.
    pub(crate) fn give_back_buffer(&self, mut buf: BytesMut) {
        buf.clear();
        let capacity = buf.capacity();
        if capacity > 2 * self.config.read_buffer_size {
            // Grown by a large write batch (whose bytes are never split off, so
            // the memory is the buffer's alone): kept in a pool of its own within
            // a byte budget, so the shared pool does not creep up to BUFFER_POOL
            // times the largest write ever made.
            let pooled = self.large_pooled.get() + capacity;
            if pooled <= LARGE_BUFFER_BUDGET {
                self.large_pooled.set(pooled);
                self.large_buffers.borrow_mut().push(buf);
            }
            return;
        }
        let mut pool = self.buffers.borrow_mut();
        // A read buffer whose earlier contents live on as message slices is
        // reclaimed only once nothing else holds them.
        if pool.len() < BUFFER_POOL && buf.try_reclaim(self.config.read_buffer_size) {
            pool.push(buf);
        }
    }

    /// Returns a small read buffer, if nothing else holds its memory.
    pub(crate) fn give_back_small(&self, mut buf: BytesMut) {
        buf.clear();
        let mut pool = self.small_buffers.borrow_mut();
        if pool.len() < SMALL_BUFFER_POOL && buf.try_reclaim(IDLE_READ_SIZE) {
            pool.push(buf);
        }
    }
}

/// One listening socket of a worker, and how its connections talk.
pub(crate) struct Endpoint {
    pub(crate) socket: Bound,
    /// TLS settings; `None` for plaintext HTTP/2 (h2c).
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
}

/// Everything a worker thread starts from.
pub(crate) struct WorkerSetup {
    pub(crate) index: usize,
    pub(crate) config: EngineConfig,
    pub(crate) listeners: Vec<Endpoint>,
    pub(crate) factories: Arc<Vec<ServiceFactory>>,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) ready: crossbeam_channel::Sender<io::Result<Backend>>,
    /// Where this worker publishes its counters.
    pub(crate) stats: Arc<StatsCell>,
}

/// The body of a worker thread.
pub(crate) fn run(setup: WorkerSetup) {
    if setup.config.pin_workers {
        pin(setup.index, &setup.config.cores);
    }
    if setup.config.backend == Backend::Uring {
        match ring::Runtime::new(&setup.config) {
            Ok(runtime) => {
                runtime.block_on(worker_main(setup, true));
                return;
            }
            Err(error) => {
                eprintln!(
                    "ringrpc: worker {}: io_uring unavailable ({error}); using epoll",
                    setup.index
                );
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = setup.ready.send(Err(error));
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, worker_main(setup, false));
}

fn pin(index: usize, cores: &[usize]) {
    let Some(available) = core_affinity::get_core_ids() else {
        return;
    };
    if available.is_empty() {
        return;
    }
    let core = if cores.is_empty() {
        available[index % available.len()]
    } else {
        let wanted = cores[index % cores.len()];
        match available.iter().find(|c| c.id == wanted) {
            Some(core) => *core,
            None => return,
        }
    };
    core_affinity::set_for_current(core);
}

async fn worker_main(setup: WorkerSetup, uring: bool) {
    let WorkerSetup {
        config,
        listeners: endpoints,
        factories,
        shutdown,
        ready,
        stats,
        ..
    } = setup;
    let mut listeners = Vec::with_capacity(endpoints.len());
    for endpoint in endpoints {
        match Listener::new(endpoint.socket, uring) {
            Ok(listener) => listeners.push((listener, endpoint.tls)),
            Err(error) => {
                let _ = ready.send(Err(error));
                return;
            }
        }
    }
    let mut router = Router::default();
    for factory in factories.iter() {
        router.add(factory());
    }
    let grace = config.shutdown_grace;
    let max_connections = connection_cap(&config);
    let ctx = Rc::new(WorkerContext {
        config,
        router,
        connections: RefCell::new(Vec::new()),
        live: Cell::new(0),
        all_closed: Notify::new(),
        buffers: RefCell::new(Vec::new()),
        large_buffers: RefCell::new(Vec::new()),
        large_pooled: Cell::new(0),
        small_buffers: RefCell::new(Vec::new()),
        slots: RefCell::new(Vec::new()),
        encode_buf: RefCell::new(BytesMut::new()),
        stats: WorkerStats::default(),
        max_connections,
        age_jitter: Cell::new(std::hash::BuildHasher::hash_one(
            &std::hash::RandomState::new(),
            std::thread::current().id(),
        )),
    });
    let answer_stats = {
        let ctx = ctx.clone();
        let stats = stats.clone();
        tokio::task::spawn_local(async move { stats.serve(&ctx.stats).await })
    };
    let _ = ready.send(Ok(if uring {
        Backend::Uring
    } else {
        Backend::Epoll
    }));
    drop(ready);

    let accepting: Vec<_> = listeners
        .into_iter()
        .map(|(listener, tls)| {
            let accept = accept_loop(listener, tls, ctx.clone(), shutdown.clone());
            tokio::task::spawn_local(accept)
        })
        .collect();
    drop(shutdown);
    // Each loop drops its listener when shutdown begins.
    for task in accepting {
        let _ = task.await;
    }
    drain(&ctx, grace).await;
    answer_stats.abort();
    stats.publish_final(&ctx.stats);
}

/// Accepts connections on one listener until shutdown begins; each runs in its
/// own task, over TLS when `tls` is set.
async fn accept_loop(
    listener: Listener,
    tls: Option<Arc<rustls::ServerConfig>>,
    ctx: Rc<WorkerContext>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) if ctx.live.get() >= ctx.max_connections => {
                    // Closed at once, without a GOAWAY (see
                    // `EngineConfig::max_connections_per_worker` for why).
                    ctx.stats.connection_refused();
                    drop(socket);
                }
                Ok((socket, addr)) => {
                    ctx.stats.connection_opened();
                    let shared = Shared::new(addr, ctx.clone());
                    let mut connections = ctx.connections.borrow_mut();
                    // Forget closed connections now and then so the list tracks the live ones.
                    if connections.len() > 2 * ctx.live.get() + 64 {
                        connections.retain(|c| c.strong_count() > 0);
                    }
                    connections.push(Rc::downgrade(&shared));
                    drop(connections);
                    ctx.live.set(ctx.live.get() + 1);
                    let ctx = ctx.clone();
                    let tls = tls.clone();
                    tokio::task::spawn_local(async move {
                        match tls {
                            None => conn::serve(socket, shared).await,
                            // Boxed: the handshake's state would otherwise make
                            // every plaintext connection's task as large as a
                            // TLS one's.
                            Some(tls) => {
                                Box::pin(tls::serve(socket, tls, shared, ctx.clone(), addr)).await
                            }
                        }
                        ctx.stats.connection_closed();
                        ctx.live.set(ctx.live.get() - 1);
                        ctx.all_closed.notify_waiters();
                    });
                }
                // Out of file descriptors or a connection aborted before accept:
                // back off briefly instead of spinning, and keep serving.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
}

/// `age` times a factor in [0.9, 1.1) picked by `random`; `age` itself when
/// the product cannot be represented.
fn spread_age(age: Duration, random: u64) -> Duration {
    // In nanoseconds, exactly: 0.9 × age plus 0.2 × age × (the top 32 bits of
    // `random` as a fraction of 2^32).
    let nanos = age.as_nanos();
    let fraction = u128::from(random >> 32);
    let spread = nanos * 9 / 10 + ((nanos * 2 * fraction) >> 32) / 10;
    let secs = u64::try_from(spread / 1_000_000_000);
    secs.map_or(age, |secs| {
        Duration::new(secs, (spread % 1_000_000_000) as u32)
    })
}

/// `max_connections_per_worker`, or by default this worker's share of seven
/// eighths of the soft descriptor limit (unbounded when the limit is).
fn connection_cap(config: &EngineConfig) -> usize {
    let cap = config.max_connections_per_worker.unwrap_or_else(|| {
        descriptor_limit().map_or(usize::MAX, |limit| {
            (limit - limit / 8) / config.workers.max(1)
        })
    });
    cap.max(1)
}

/// The soft `RLIMIT_NOFILE`; `None` when unlimited or unknown.
fn descriptor_limit() -> Option<usize> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given, which lives here.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    if limit.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    usize::try_from(limit.rlim_cur).ok()
}

/// Graceful shutdown of this worker's connections: GOAWAY to all, wait for their
/// calls within the grace period, then close whatever is left.
async fn drain(ctx: &Rc<WorkerContext>, grace: Duration) {
    let connections: Vec<Rc<Shared>> = ctx
        .connections
        .borrow()
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    for connection in &connections {
        connection.go_away();
    }
    drop(connections);
    let deadline = tokio::time::Instant::now() + grace;
    while ctx.live.get() > 0 {
        if tokio::time::timeout_at(deadline, ctx.all_closed.notified())
            .await
            .is_err()
        {
            break;
        }
    }
    let connections: Vec<Rc<Shared>> = ctx
        .connections
        .borrow()
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    for connection in connections.iter().filter(|c| !c.is_closed()) {
        connection.abort();
    }
    drop(connections);
    // Aborted connections close as soon as their GOAWAY is written.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while ctx.live.get() > 0 {
        if tokio::time::timeout_at(deadline, ctx.all_closed.notified())
            .await
            .is_err()
        {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_spread_over_ten_percent_either_way() {
        let age = Duration::from_secs(1000);
        assert_eq!(spread_age(age, 0), Duration::from_secs(900));
        assert!(spread_age(age, u64::MAX) < Duration::from_secs(1100));
        assert!(spread_age(age, u64::MAX) > Duration::from_secs(1099));
        assert_eq!(spread_age(age, 1 << 63), Duration::from_secs(1000));
        assert_eq!(spread_age(Duration::MAX, u64::MAX), Duration::MAX);
    }

    #[test]
    fn generated_ages_cover_the_range() {
        let ctx = WorkerContext {
            config: EngineConfig {
                codec: CodecConfig {
                    max_connection_age: Some(Duration::from_secs(100)),
                    ..CodecConfig::default()
                },
                ..EngineConfig::default()
            },
            router: Router::default(),
            connections: RefCell::new(Vec::new()),
            live: Cell::new(0),
            all_closed: Notify::new(),
            buffers: RefCell::new(Vec::new()),
            large_buffers: RefCell::new(Vec::new()),
            large_pooled: Cell::new(0),
            small_buffers: RefCell::new(Vec::new()),
            slots: RefCell::new(Vec::new()),
            encode_buf: RefCell::new(BytesMut::new()),
            stats: WorkerStats::default(),
            max_connections: 1,
            age_jitter: Cell::new(7),
        };
        let ages: Vec<Duration> = (0..1000)
            .map(|_| ctx.connection_config().max_connection_age.unwrap())
            .collect();
        let (low, high) = (Duration::from_secs(90), Duration::from_secs(110));
        assert!(ages.iter().all(|age| (low..high).contains(age)));
        // Every tenth of the range gets some: no lockstep.
        for decile in 0..10 {
            let from = low + Duration::from_secs(2 * decile);
            let to = from + Duration::from_secs(2);
            assert!(
                ages.iter().any(|age| (from..to).contains(age)),
                "nothing in {from:?}..{to:?}"
            );
        }
    }

    #[test]
    fn connection_cap_defaults_to_a_share_of_the_descriptor_limit() {
        let config = EngineConfig {
            workers: 4,
            ..EngineConfig::default()
        };
        match descriptor_limit() {
            Some(limit) => assert_eq!(connection_cap(&config), (limit - limit / 8) / 4),
            None => assert_eq!(connection_cap(&config), usize::MAX),
        }
        let set = EngineConfig {
            max_connections_per_worker: Some(10),
            ..config
        };
        assert_eq!(connection_cap(&set), 10);
        let zero = EngineConfig {
            max_connections_per_worker: Some(0),
            ..set
        };
        assert_eq!(connection_cap(&zero), 1);
    }
}
