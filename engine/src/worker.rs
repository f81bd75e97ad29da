//! One worker: a thread pinned to a core, running its own runtime, its own
//! listener and every connection that listener accepts.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::sync::{watch, Notify};

use crate::config::{Backend, EngineConfig};
use crate::conn::{self, Shared};
use crate::io::{Bound, Listener};
use crate::router::Router;
use crate::server::ServiceFactory;
use crate::stats::{StatsCell, WorkerStats};

/// What every connection of a worker shares.
pub(crate) struct WorkerContext {
    pub(crate) config: EngineConfig,
    pub(crate) router: Router,
    connections: RefCell<Vec<Weak<Shared>>>,
    live: Cell<usize>,
    all_closed: Notify,
    /// Read and write buffers of closed connections, for the next ones.
    buffers: RefCell<Vec<BytesMut>>,
    /// This worker's counters.
    pub(crate) stats: WorkerStats,
}

/// Buffers kept per worker: enough for a burst of new connections without
/// holding much memory when connections are few (at 16 KiB, 4 MiB).
const BUFFER_POOL: usize = 256;

impl WorkerContext {
    /// A buffer with room for one read, from the pool when it has one.
    pub(crate) fn take_buffer(&self) -> BytesMut {
        let size = self.config.read_buffer_size;
        self.buffers
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| BytesMut::with_capacity(size))
    }

    /// Returns a buffer to the pool, if its memory is ours alone again (no message
    /// slices of it are still alive) and the pool has room.
    pub(crate) fn give_back_buffer(&self, mut buf: BytesMut) {
        buf.clear();
        let mut pool = self.buffers.borrow_mut();
        if pool.len() < BUFFER_POOL && buf.try_reclaim(self.config.read_buffer_size) {
            pool.push(buf);
        }
    }
}

/// Everything a worker thread starts from.
pub(crate) struct WorkerSetup {
    pub(crate) index: usize,
    pub(crate) config: EngineConfig,
    pub(crate) listener: Bound,
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
        match uring_runtime(&setup.config) {
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

fn uring_runtime(config: &EngineConfig) -> io::Result<tokio_uring::Runtime> {
    let mut builder = tokio_uring::builder();
    builder.entries(config.ring_entries);
    if config.ring_coop_taskrun || config.ring_sqpoll_idle.is_some() {
        let mut ring = tokio_uring::uring_builder();
        if config.ring_coop_taskrun {
            ring.setup_coop_taskrun().setup_single_issuer();
        }
        if let Some(idle) = config.ring_sqpoll_idle {
            ring.setup_sqpoll(idle.as_millis().min(u32::MAX as u128) as u32);
        }
        builder.uring_builder(&ring);
        // Kernels before 6.0 reject COOP_TASKRUN and SINGLE_ISSUER, and SQPOLL
        // needs privileges on older ones: retry with a plain ring.
        match tokio_uring::Runtime::new(&builder) {
            Ok(runtime) => return Ok(runtime),
            Err(error) => tracing::info!(%error, "io_uring setup flags refused; using a plain ring"),
        }
        builder.uring_builder(&tokio_uring::uring_builder());
    }
    tokio_uring::Runtime::new(&builder)
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
        listener,
        factories,
        mut shutdown,
        ready,
        stats,
        ..
    } = setup;
    let listener = match Listener::new(listener, uring) {
        Ok(listener) => listener,
        Err(error) => {
            let _ = ready.send(Err(error));
            return;
        }
    };
    let mut router = Router::default();
    for factory in factories.iter() {
        router.add(factory());
    }
    let grace = config.shutdown_grace;
    let ctx = Rc::new(WorkerContext {
        config,
        router,
        connections: RefCell::new(Vec::new()),
        live: Cell::new(0),
        all_closed: Notify::new(),
        buffers: RefCell::new(Vec::new()),
        stats: WorkerStats::default(),
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

    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
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
                    tokio::task::spawn_local(async move {
                        conn::serve(socket, shared).await;
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
    drop(listener);
    drain(&ctx, grace).await;
    answer_stats.abort();
    stats.publish_final(&ctx.stats);
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
