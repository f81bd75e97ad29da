//! The ringrpc engine: a gRPC server runtime with one pinned io_uring runtime per
//! CPU core.
//!
//! ```ignore
//! let server = Server::builder()
//!     .add_service(|| GreeterServer::new(MyGreeter))
//!     .serve("127.0.0.1:50051".parse()?)?;
//! server.wait();
//! ```
//!
//! # Layout
//!
//! - `config`: [`EngineConfig`] and [`Backend`].
//! - `profile`: tuning profiles ([`Profile`], `perf/profiles/*.toml`) applied
//!   on top of a configuration, from code, a path or `RINGRPC_PROFILE`.
//! - `server`: [`Server`], [`ServerBuilder`], [`ServerHandle`]; binds one
//!   `SO_REUSEPORT` listener per worker (or one Unix domain socket they all
//!   accept from) and starts the worker threads.
//! - `stats`: per-worker counters, read through [`ServerHandle::stats`], and
//!   the per-RPC `rpc` tracing span (made only when a subscriber wants it).
//! - `worker`: a pinned thread with its own runtime (tokio's current-thread
//!   runtime with an io_uring ring, or with its epoll reactor alone), its router
//!   and its connections; graceful drain.
//! - `ring`: the io_uring driver: one ring per worker, submitted and reaped in
//!   one `io_uring_enter` per turn, and the sockets whose I/O goes through it.
//! - `io`: the I/O seam both backends implement (accept, read into an owned
//!   buffer, write an owned buffer).
//! - `tls`: [`TlsConfig`] and TLS connections: rustls driven over the same
//!   owned-buffer reads and writes, on both backends.
//! - `conn`: the per-connection pump between the socket and the sans-IO codec,
//!   and each call's [`ringrpc_service_api::CallIo`].
//! - `router`: `:path` → service, built once per worker, with the
//!   interceptors and message size limits around each service ([`ServiceOptions`]).
//! - `compression`: gzip and zstd for messages ([`Encoding`]), bounded
//!   decompression, and the choice of a call's response encoding.
//!
//! # Design
//!
//! A connection lives and dies on the core that accepted it: no locks and no
//! cross-core wakeups on the request path. All protocol logic is in
//! `ringrpc-codec`; the engine owns sockets, buffers, tasks and time. See
//! DESIGN.md in the repository for one RPC's path end to end.

#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod compression;
mod config;
mod conn;
mod io;
mod profile;
mod ring;
mod router;
mod server;
mod stats;
mod tls;
mod worker;

pub use compression::Encoding;
pub use config::{Backend, EngineConfig};
pub use profile::{Profile, ProfileError, PROFILE_ENV};
pub use ringrpc_codec::server::Config as CodecConfig;
pub use router::ServiceOptions;
/// The rustls this engine is built with, for [`TlsConfig::from_rustls`] and
/// certificate types.
pub use rustls;
pub use server::{Server, ServerBuilder, ServerHandle};
pub use stats::{Counters, Stats, STATS_WAIT};
pub use tls::{ClientAuth, TlsConfig, TlsError};
