//! Starting a server: `Server::builder().add_service(...).serve(addr)`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use ringrpc_service_api::server::Service;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::watch;

use crate::config::{Backend, EngineConfig};
use crate::worker::{self, WorkerSetup};

/// Builds one worker's instance of a service.
pub(crate) type ServiceFactory = Box<dyn Fn() -> Box<dyn Service> + Send + Sync>;

/// Entry point: `Server::builder()`.
#[derive(Debug)]
pub struct Server;

impl Server {
    /// A builder with the default [`EngineConfig`].
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            config: EngineConfig::default(),
            factories: Vec::new(),
            on_shutdown: Vec::new(),
        }
    }
}

/// Runs when graceful shutdown begins.
type ShutdownHook = Box<dyn Fn() + Send + Sync>;

/// Collects services and configuration, then starts the workers.
pub struct ServerBuilder {
    config: EngineConfig,
    factories: Vec<ServiceFactory>,
    on_shutdown: Vec<ShutdownHook>,
}

impl ServerBuilder {
    /// Replaces the whole configuration.
    pub fn config(mut self, config: EngineConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets the number of workers.
    pub fn workers(mut self, workers: usize) -> Self {
        self.config.workers = workers.max(1);
        self
    }

    /// Adds a service. `factory` runs once on each worker thread, so the service
    /// (and the handler state inside it) may be `!Send`: `Rc`, `RefCell` and
    /// per-core caches work. Share across cores explicitly (an `Arc` captured by
    /// the factory) when you need to.
    ///
    /// ```ignore
    /// Server::builder().add_service(|| GreeterServer::new(MyGreeter::default()))
    /// ```
    pub fn add_service<S, F>(mut self, factory: F) -> Self
    where
        S: Service,
        F: Fn() -> S + Send + Sync + 'static,
    {
        self.factories.push(Box::new(move || Box::new(factory())));
        self
    }

    /// Runs `hook` once when graceful shutdown begins ([`ServerHandle::shutdown`],
    /// or dropping the handle), before the workers are told to stop: connections
    /// are still open, so e.g. a health service can report NOT_SERVING to its
    /// watchers while in-flight calls drain. Hooks run in the order added.
    pub fn on_shutdown(mut self, hook: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_shutdown.push(Box::new(hook));
        self
    }

    /// Binds `addr` on every worker (`SO_REUSEPORT`: the kernel spreads new
    /// connections over them) and starts serving. Returns once every worker is
    /// accepting. Port 0 picks a free port, shared by all workers.
    pub fn serve(self, addr: SocketAddr) -> io::Result<ServerHandle> {
        let ServerBuilder {
            config,
            factories,
            on_shutdown,
        } = self;
        let workers = config.workers.max(1);
        let first = bind(addr, config.backlog)?;
        let local_addr = first.local_addr()?;
        let mut listeners = vec![first];
        for _ in 1..workers {
            listeners.push(bind(local_addr, config.backlog)?);
        }
        let factories = Arc::new(factories);
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(workers);
        let mut threads = Vec::with_capacity(workers);
        for (index, listener) in listeners.into_iter().enumerate() {
            let setup = WorkerSetup {
                index,
                config: config.clone(),
                listener,
                factories: factories.clone(),
                shutdown: shutdown_rx.clone(),
                ready: ready_tx.clone(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("ringrpc-worker-{index}"))
                .spawn(move || worker::run(setup))?;
            threads.push(thread);
        }
        drop(ready_tx);
        let mut backends = Vec::with_capacity(workers);
        for _ in 0..workers {
            match ready_rx.recv() {
                Ok(Ok(backend)) => backends.push(backend),
                Ok(Err(error)) => {
                    let _ = shutdown_tx.send(true);
                    return Err(error);
                }
                Err(_) => {
                    let _ = shutdown_tx.send(true);
                    return Err(io::Error::other("a worker thread died while starting"));
                }
            }
        }
        let backend = if backends.iter().all(|b| *b == Backend::Uring) {
            Backend::Uring
        } else {
            Backend::Epoll
        };
        Ok(ServerHandle {
            local_addr,
            backend,
            shutdown: shutdown_tx,
            threads,
            on_shutdown: std::sync::Mutex::new(Some(on_shutdown)),
        })
    }
}

fn bind(addr: SocketAddr, backlog: i32) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// A running server.
pub struct ServerHandle {
    local_addr: SocketAddr,
    backend: Backend,
    shutdown: watch::Sender<bool>,
    threads: Vec<JoinHandle<()>>,
    /// Taken by the first shutdown, so hooks run once.
    on_shutdown: std::sync::Mutex<Option<Vec<ShutdownHook>>>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.local_addr)
            .field("backend", &self.backend)
            .field("workers", &self.threads.len())
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// The address the workers listen on (with the port chosen for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The backend the workers run (epoll if io_uring could not be set up).
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Begins graceful shutdown: stop accepting, GOAWAY every connection, let
    /// in-flight calls finish within `shutdown_grace`, then close.
    pub fn shutdown(&self) {
        self.run_shutdown_hooks();
        let _ = self.shutdown.send(true);
    }

    fn run_shutdown_hooks(&self) {
        let hooks = match self.on_shutdown.lock() {
            Ok(mut hooks) => hooks.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        for hook in hooks.into_iter().flatten() {
            hook();
        }
    }

    /// Waits for every worker to finish (after [`ServerHandle::shutdown`]).
    pub fn wait(mut self) {
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }

    /// Shuts down gracefully and waits.
    pub fn shutdown_and_wait(self) {
        self.shutdown();
        self.wait();
    }
}

impl Drop for ServerHandle {
    /// Dropping the handle starts a graceful shutdown; it does not wait for it.
    fn drop(&mut self) {
        self.run_shutdown_hooks();
        let _ = self.shutdown.send(true);
    }
}
