//! `EngineConfig`: every knob of the engine, with its default and the reason for it.

use std::time::Duration;

use ringrpc_codec::server::Config as CodecConfig;

use crate::Encoding;

/// Which I/O implementation the workers run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// io_uring: a ring per worker under a tokio current-thread runtime, turned
    /// with one `io_uring_enter` per busy turn; falls back to epoll (with a log
    /// line) when the kernel or a seccomp profile refuses io_uring.
    #[default]
    Uring,
    /// tokio's epoll reactor on a current-thread runtime per core. Same codec and
    /// dispatch; on some workloads cheaper per round trip (see DESIGN.md).
    Epoll,
}

impl Backend {
    /// Reads `RINGRPC_BACKEND` (`uring` or `epoll`); `None` when unset or unknown.
    pub fn from_env() -> Option<Backend> {
        match std::env::var("RINGRPC_BACKEND").ok()?.as_str() {
            "uring" | "io_uring" => Some(Backend::Uring),
            "epoll" => Some(Backend::Epoll),
            _ => None,
        }
    }
}

/// Engine configuration. `EngineConfig::default()` suits a server with one worker
/// per core; every field documents its default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// Worker threads, one runtime each. Default: the number of CPUs available to
    /// the process.
    pub workers: usize,
    /// CPU ids to pin workers to, worker `i` on `cores[i % len]`. Default: empty,
    /// meaning "pin worker `i` to the `i`-th core the process may use". Pinning keeps
    /// a connection's data in one core's caches.
    pub cores: Vec<usize>,
    /// Pin workers at all. Default true; turn off when sharing the machine with
    /// other pinned processes.
    pub pin_workers: bool,
    /// I/O backend. Default io_uring (overridden by `RINGRPC_BACKEND`).
    pub backend: Backend,
    /// io_uring submission queue entries per worker. Default 256: enough for a read
    /// and a write in flight on a hundred busy connections per turn.
    pub ring_entries: u32,
    /// Set up rings with COOP_TASKRUN, TASKRUN_FLAG and SINGLE_ISSUER. Default
    /// true: completion work waits for the worker's next `io_uring_enter` instead
    /// of interrupting it, and the flag tells a turn with nothing to submit
    /// whether it needs the syscall at all. Kernels before 6.0 refuse the flags;
    /// the ring is then set up without them.
    pub ring_coop_taskrun: bool,
    /// Run a kernel thread that polls each worker's submission queue
    /// (IORING_SETUP_SQPOLL), going to sleep after this much idle time. Default
    /// `None`: the poller costs a whole core's worth of spinning while busy,
    /// which only pays off with spare cores and a latency budget measured in
    /// microseconds; on a machine with one worker per core it steals from the
    /// workers. Takes the place of `ring_coop_taskrun`'s flags, which the kernel
    /// refuses beside it; falls back to those, then to an ordinary ring, when the
    /// kernel refuses SQPOLL.
    pub ring_sqpoll_idle: Option<Duration>,
    /// Bytes of spare room each read asks the kernel to fill. Default 16 KiB: one
    /// full-size HTTP/2 frame, and dozens of small requests per read.
    pub read_buffer_size: usize,
    /// Outbound bytes being written on a connection above which its reader stops
    /// reading until the socket drains. Default 1 MiB: a client that never reads
    /// cannot make us queue replies without bound.
    pub write_high_water: usize,
    /// Unsent bytes queued on one stream above which its `ResponseSink::send`
    /// waits. Default 64 KiB: enough to keep a window's worth in flight without
    /// letting one stream buffer a large response.
    pub stream_send_high_water: usize,
    /// How long graceful shutdown lets in-flight calls finish before closing.
    /// Default 30 s, like Kubernetes' termination grace period.
    pub shutdown_grace: Duration,
    /// Listen backlog. Default 1024.
    pub backlog: i32,
    /// Connections one worker serves at once; beyond it, new connections are
    /// accepted and closed at once (counted in `Counters::connections_refused`)
    /// while the existing ones are served as before.
    ///
    /// Default `None`: derived at start from the process's file descriptor limit
    /// (soft `RLIMIT_NOFILE`), seven eighths of it shared out over the workers,
    /// the rest left for listeners, rings and the files handlers open. Beyond
    /// the descriptor limit `accept` fails and new connections wait unanswered
    /// in the backlog until their clients give up; below it, a refused client
    /// learns at once and can try another server. Refused connections get no
    /// GOAWAY: the client's preface may already be in our receive buffer, and
    /// closing over unread data sends a reset that can destroy the GOAWAY before
    /// the client reads it, so writing one would cost a syscall per refusal,
    /// exactly when overloaded, for a frame that may never arrive. gRPC clients
    /// treat the closed connection as UNAVAILABLE and retry with backoff.
    pub max_connections_per_worker: Option<usize>,
    /// How responses are compressed when the request was not. Default `None`:
    /// like grpc-go without a configured compressor, a call's responses are
    /// compressed only when its request was compressed, with the same encoding,
    /// and only if the client's `grpc-accept-encoding` lists it. `Some(e)`
    /// compresses every call's responses with `e` when the client accepts it
    /// (else with another encoding it accepts, else not at all); a request's own
    /// encoding still wins when accepted. Handlers can send single messages
    /// uncompressed either way (`ResponseSink::send_uncompressed`,
    /// `Response::disable_compression`). Compressed requests (gzip, zstd) are
    /// always accepted; their decompressed size is bounded by
    /// `codec.max_message_size`.
    pub response_compression: Option<Encoding>,
    /// Largest response message a call may send, in bytes before compression;
    /// a larger one ends the call with RESOURCE_EXHAUSTED and nothing of it is
    /// sent. Default 4 MiB: what grpc-go and tonic clients accept by default, so
    /// a larger message would fail on their side anyway. (grpc-go's own server
    /// default is 2^31-1.) Per service: `ServiceOptions::max_send_message_size`.
    /// The receive limit is `codec.max_message_size`.
    pub max_send_message_size: usize,
    /// HTTP/2 and gRPC limits of each connection.
    pub codec: CodecConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cores: Vec::new(),
            pin_workers: true,
            backend: Backend::from_env().unwrap_or_default(),
            ring_entries: 256,
            ring_coop_taskrun: true,
            ring_sqpoll_idle: None,
            read_buffer_size: 16 * 1024,
            write_high_water: 1024 * 1024,
            stream_send_high_water: 64 * 1024,
            shutdown_grace: Duration::from_secs(30),
            backlog: 1024,
            max_connections_per_worker: None,
            response_compression: None,
            max_send_message_size: 4 * 1024 * 1024,
            codec: CodecConfig::default(),
        }
    }
}
