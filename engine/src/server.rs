//! Starting a server: `Server::builder().add_service(...).serve(addr)`.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use ringrpc_service_api::server::Service;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::watch;

use crate::config::{Backend, EngineConfig};
use crate::io::Bound;
use crate::profile::Profile;
use crate::router::{InterceptorFactory, Route, ServiceOptions};
use crate::stats::{self, Stats, StatsCell};
use crate::tls::TlsConfig;
use crate::worker::{self, Endpoint, WorkerSetup};

/// Builds one worker's instance of a service, with its interceptors.
pub(crate) type ServiceFactory = Box<dyn Fn() -> Route + Send + Sync>;

/// Entry point: `Server::builder()`.
#[derive(Debug)]
pub struct Server;

impl Server {
    /// A builder with the default [`EngineConfig`].
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            config: EngineConfig::default(),
            factories: Vec::new(),
            interceptors: Vec::new(),
            on_shutdown: Vec::new(),
            listeners: Vec::new(),
        }
    }
}

/// Runs when graceful shutdown begins.
type ShutdownHook = Box<dyn Fn() + Send + Sync>;

/// Collects services and configuration, then starts the workers.
pub struct ServerBuilder {
    config: EngineConfig,
    factories: Vec<ServiceFactory>,
    interceptors: Vec<InterceptorFactory>,
    on_shutdown: Vec<ShutdownHook>,
    /// TCP listeners to bind when the server starts.
    listeners: Vec<ListenSpec>,
}

/// A TCP listener to bind on every worker.
struct ListenSpec {
    addr: SocketAddr,
    /// `None` for plaintext HTTP/2 (h2c).
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl ServerBuilder {
    /// Replaces the whole configuration.
    pub fn config(mut self, config: EngineConfig) -> Self {
        self.config = config;
        self
    }

    /// Applies a built-in tuning profile on top of the configuration so far
    /// (see [`Profile`]; for a file of your own use
    /// [`EngineConfig::apply_profile_path`] and [`ServerBuilder::config`]).
    pub fn profile(mut self, profile: Profile) -> Self {
        self.config = self.config.with_profile(profile);
        self
    }

    /// The operator's overrides, applied last so a deployed binary can be
    /// retuned without rebuilding: the profile `RINGRPC_PROFILE` names, then
    /// the backend `RINGRPC_BACKEND` names.
    fn apply_env_profile(&mut self) -> io::Result<()> {
        match self.config.apply_profile_env() {
            Ok(Some(profile)) => {
                tracing::info!(%profile, "applied tuning profile from the environment")
            }
            Ok(None) => {}
            Err(error) => return Err(io::Error::new(io::ErrorKind::InvalidInput, error)),
        }
        if let Some(backend) = Backend::from_env() {
            self.config.backend = backend;
        }
        Ok(())
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
    pub fn add_service<S, F>(self, factory: F) -> Self
    where
        S: Service,
        F: Fn() -> S + Send + Sync + 'static,
    {
        self.add_service_with(factory, ServiceOptions::new())
    }

    /// Adds a service like [`ServerBuilder::add_service`], with its own
    /// interceptors and message size limits ([`ServiceOptions`]).
    pub fn add_service_with<S, F>(mut self, factory: F, options: ServiceOptions) -> Self
    where
        S: Service,
        F: Fn() -> S + Send + Sync + 'static,
    {
        let no_server_interceptors: Arc<[InterceptorFactory]> = Arc::new([]);
        self.factories.push(Box::new(move || Route {
            service: Box::new(factory()),
            interceptors: options.interceptors.iter().map(|f| f()).collect(),
            max_receive_message_size: options.max_receive_message_size,
            max_send_message_size: options.max_send_message_size,
            server_interceptors: no_server_interceptors.clone(),
        }));
        self
    }

    /// Adds an interceptor that runs for every call, before the service's own
    /// interceptors and before the service is looked up (so an auth check also
    /// answers calls to services that do not exist). `factory` runs once per
    /// worker, so the interceptor may hold per-core state; interceptors run in
    /// the order added. See [`ringrpc_service_api::intercept`].
    ///
    /// ```ignore
    /// Server::builder()
    ///     .interceptor(|| |request: InterceptRequest| {
    ///         match request.metadata().get("authorization") { ... }
    ///     })
    /// ```
    pub fn interceptor<I, F>(mut self, factory: F) -> Self
    where
        I: ringrpc_service_api::Interceptor,
        F: Fn() -> I + Send + Sync + 'static,
    {
        self.interceptors.push(Arc::new(move || {
            Box::new(factory()) as Box<dyn ringrpc_service_api::Interceptor>
        }));
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
    /// connections over them) and starts serving plaintext HTTP/2 (h2c), along
    /// with any listeners added before ([`ServerBuilder::listen_tls`]). Returns
    /// once every worker is accepting. Port 0 picks a free port, shared by all
    /// workers.
    pub fn serve(self, addr: SocketAddr) -> io::Result<ServerHandle> {
        self.listen(addr).start()
    }

    /// Like [`ServerBuilder::serve`], over TLS: the handshake must negotiate
    /// `h2` with ALPN, and with a client CA in `tls` clients authenticate with
    /// certificates (mutual TLS), which handlers see as
    /// `CallContext::peer_certificates`.
    pub fn serve_tls(self, addr: SocketAddr, tls: TlsConfig) -> io::Result<ServerHandle> {
        self.listen_tls(addr, tls).start()
    }

    /// Adds a plaintext (h2c) TCP listener at `addr`, bound on every worker by
    /// [`ServerBuilder::start`] (or `serve*`). One server can serve several
    /// listeners with the same workers and services, e.g. TLS for remote clients
    /// and plaintext on loopback for a local sidecar:
    ///
    /// ```ignore
    /// let server = Server::builder()
    ///     .add_service(|| GreeterServer::new(MyGreeter))
    ///     .listen_tls("0.0.0.0:50443".parse()?, tls)
    ///     .listen("127.0.0.1:50051".parse()?)
    ///     .start()?;
    /// let [tls_addr, plain_addr] = server.local_addrs() else { unreachable!() };
    /// ```
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listeners.push(ListenSpec { addr, tls: None });
        self
    }

    /// Adds a TLS listener at `addr` (see [`ServerBuilder::listen`] and
    /// [`ServerBuilder::serve_tls`]).
    pub fn listen_tls(mut self, addr: SocketAddr, tls: TlsConfig) -> Self {
        self.listeners.push(ListenSpec {
            addr,
            tls: Some(tls.server_config().clone()),
        });
        self
    }

    /// Binds every listener added with [`ServerBuilder::listen`] and
    /// [`ServerBuilder::listen_tls`] and starts serving; their addresses are
    /// [`ServerHandle::local_addrs`], in the order added. Returns once every
    /// worker is accepting.
    pub fn start(mut self) -> io::Result<ServerHandle> {
        if self.listeners.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no listener: add one with listen or listen_tls",
            ));
        }
        self.apply_env_profile()?;
        let workers = self.config.workers.max(1);
        let (endpoints, local_addrs) =
            bind_listeners(&self.listeners, workers, self.config.backlog)?;
        self.launch(endpoints, local_addrs, None)
    }

    /// Listens on the Unix domain socket at `path` (e.g. behind a sidecar proxy)
    /// and starts serving, like [`ServerBuilder::serve`] with the same connection
    /// handling on either backend. All workers accept from the one socket.
    ///
    /// A socket file left at `path` by an earlier server that is gone is
    /// replaced; any other file there, or a socket a live server still accepts
    /// on, is an error. Graceful shutdown removes the socket file. Calls on such
    /// a server see no remote address (`Request::remote_addr()` is `None`).
    /// TCP listeners added before ([`ServerBuilder::listen`]) are served too.
    pub fn serve_unix(mut self, path: impl AsRef<Path>) -> io::Result<ServerHandle> {
        self.apply_env_profile()?;
        let path = path.as_ref();
        let workers = self.config.workers.max(1);
        let (mut endpoints, local_addrs) =
            bind_listeners(&self.listeners, workers, self.config.backlog)?;
        let (first, file) = bind_unix(path, self.config.backlog)?;
        for endpoints in &mut endpoints[1..] {
            match first.try_clone() {
                Ok(listener) => endpoints.push(Endpoint {
                    socket: Bound::Unix(listener),
                    tls: None,
                }),
                Err(error) => {
                    file.remove();
                    return Err(error);
                }
            }
        }
        endpoints[0].push(Endpoint {
            socket: Bound::Unix(first),
            tls: None,
        });
        self.launch(endpoints, local_addrs, Some(file))
    }

    /// Starts one worker per list of listeners and waits until all of them
    /// accept.
    fn launch(
        self,
        endpoints: Vec<Vec<Endpoint>>,
        local_addrs: Vec<SocketAddr>,
        socket_file: Option<SocketFile>,
    ) -> io::Result<ServerHandle> {
        let ServerBuilder {
            config,
            factories,
            interceptors,
            on_shutdown,
            ..
        } = self;
        let factories = with_server_interceptors(factories, interceptors);
        let workers = endpoints.len();
        let stats: Vec<Arc<StatsCell>> = (0..workers).map(|_| Arc::default()).collect();
        let factories = Arc::new(factories);
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(workers);
        let mut threads = Vec::with_capacity(workers);
        for (index, listeners) in endpoints.into_iter().enumerate() {
            let setup = WorkerSetup {
                index,
                config: config.clone(),
                listeners,
                factories: factories.clone(),
                shutdown: shutdown_rx.clone(),
                ready: ready_tx.clone(),
                stats: stats[index].clone(),
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
                    if let Some(file) = socket_file {
                        file.remove();
                    }
                    return Err(error);
                }
                Err(_) => {
                    let _ = shutdown_tx.send(true);
                    if let Some(file) = socket_file {
                        file.remove();
                    }
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
            local_addrs,
            unix_path: socket_file.as_ref().map(|file| file.path.clone()),
            socket_file: std::sync::Mutex::new(socket_file),
            backend,
            shutdown: shutdown_tx,
            threads,
            on_shutdown: std::sync::Mutex::new(Some(on_shutdown)),
            stats,
        })
    }
}

/// Hands the server-wide interceptors to each service's routes, so each worker's
/// router builds them once. Without any, the factories stay as they are.
fn with_server_interceptors(
    factories: Vec<ServiceFactory>,
    interceptors: Vec<InterceptorFactory>,
) -> Vec<ServiceFactory> {
    if interceptors.is_empty() {
        return factories;
    }
    let interceptors: Arc<[InterceptorFactory]> = interceptors.into();
    factories
        .into_iter()
        .map(|factory| -> ServiceFactory {
            let interceptors = interceptors.clone();
            Box::new(move || Route {
                server_interceptors: interceptors.clone(),
                ..factory()
            })
        })
        .collect()
}

/// Binds each TCP listener once per worker (port 0 resolved by the first bind):
/// worker `w` serves `endpoints[w]`. Also returns each listener's address.
fn bind_listeners(
    listeners: &[ListenSpec],
    workers: usize,
    backlog: i32,
) -> io::Result<(Vec<Vec<Endpoint>>, Vec<SocketAddr>)> {
    let mut endpoints: Vec<Vec<Endpoint>> = (0..workers).map(|_| Vec::new()).collect();
    let mut local_addrs = Vec::with_capacity(listeners.len());
    for spec in listeners {
        let first = bind(spec.addr, backlog)?;
        let local_addr = first.local_addr()?;
        local_addrs.push(local_addr);
        endpoints[0].push(Endpoint {
            socket: Bound::Tcp(first),
            tls: spec.tls.clone(),
        });
        for worker in &mut endpoints[1..] {
            worker.push(Endpoint {
                socket: Bound::Tcp(bind(local_addr, backlog)?),
                tls: spec.tls.clone(),
            });
        }
    }
    Ok((endpoints, local_addrs))
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

/// Binds a Unix listener at `path`, replacing a stale socket file.
fn bind_unix(
    path: &Path,
    backlog: i32,
) -> io::Result<(std::os::unix::net::UnixListener, SocketFile)> {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(metadata) = std::fs::symlink_metadata(path) {
        if !metadata.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        // A socket that still takes connections belongs to a live server.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("a server is listening on {}", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.bind(&socket2::SockAddr::unix(path)?)?;
    let file = SocketFile::of(path)?;
    socket.listen(backlog)?;
    socket.set_nonblocking(true)?;
    Ok((socket.into(), file))
}

/// The socket file a Unix listener created, to remove at shutdown.
struct SocketFile {
    path: PathBuf,
    /// Device and inode at bind time: a file put there since is not ours.
    id: (u64, u64),
}

impl SocketFile {
    fn of(path: &Path) -> io::Result<SocketFile> {
        use std::os::unix::fs::MetadataExt;
        let metadata = std::fs::symlink_metadata(path)?;
        Ok(SocketFile {
            path: path.to_owned(),
            id: (metadata.dev(), metadata.ino()),
        })
    }

    fn remove(self) {
        use std::os::unix::fs::MetadataExt;
        if let Ok(metadata) = std::fs::symlink_metadata(&self.path) {
            if (metadata.dev(), metadata.ino()) == self.id {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// A running server.
pub struct ServerHandle {
    /// The TCP listeners' addresses, in the order added (none when serving only
    /// a Unix socket).
    local_addrs: Vec<SocketAddr>,
    unix_path: Option<PathBuf>,
    /// Taken by the first shutdown, which removes the file.
    socket_file: std::sync::Mutex<Option<SocketFile>>,
    /// One per worker.
    stats: Vec<Arc<StatsCell>>,
    backend: Backend,
    shutdown: watch::Sender<bool>,
    threads: Vec<JoinHandle<()>>,
    /// Taken by the first shutdown, so hooks run once.
    on_shutdown: std::sync::Mutex<Option<Vec<ShutdownHook>>>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addrs", &self.local_addrs)
            .field("unix_path", &self.unix_path)
            .field("backend", &self.backend)
            .field("workers", &self.threads.len())
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// The address the workers listen on (with the port chosen for port 0): the
    /// first TCP listener's, when there are several ([`ServerHandle::local_addrs`]).
    ///
    /// # Panics
    ///
    /// On a server started with [`ServerBuilder::serve_unix`] and no TCP
    /// listener; see [`ServerHandle::unix_path`].
    pub fn local_addr(&self) -> SocketAddr {
        *self
            .local_addrs
            .first()
            .expect("the server listens on a Unix socket; see ServerHandle::unix_path")
    }

    /// Every TCP listener's address, in the order the listeners were added.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The socket path of a server started with [`ServerBuilder::serve_unix`].
    pub fn unix_path(&self) -> Option<&Path> {
        self.unix_path.as_deref()
    }

    /// The workers' counters: per worker and in total. Each worker copies its
    /// counters when asked, between two of its tasks; one that stays busy for
    /// longer than [`crate::STATS_WAIT`] (a handler blocking its thread)
    /// contributes the copy it made for the previous call instead. After
    /// shutdown, the final counts.
    pub fn stats(&self) -> Stats {
        stats::gather(&self.stats)
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
        self.remove_socket_file();
    }

    /// New clients find no socket file from now on; connected ones drain.
    fn remove_socket_file(&self) {
        let file = match self.socket_file.lock() {
            Ok(mut file) => file.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(file) = file {
            file.remove();
        }
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
        self.remove_socket_file();
    }
}
