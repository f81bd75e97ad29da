//! Load generation for ringrpc's performance suite, on the `h2` crate over
//! plain-text HTTP/2 (prior knowledge), and the ringrpc bench server it is
//! pointed at.
//!
//! - [`scenario`]: unary (closed and open loop), server streaming, ping-pong,
//!   client streaming and idle connections; [`scenario::run`] carries one out.
//! - [`report`]: counters, latency histograms, the human and JSON output.
//! - [`server`]: helloworld.Greeter and ringrpc.bench.Bench on ringrpc, with
//!   the same handlers as the tonic peer in `perf/tonic-peer`.
//! - [`cli`]: the command line of `ringrpc-load`.
//!
//! Binaries: `ringrpc-load` (the load generator), `ringrpc-bench-server`
//! (the server) and `ringrpc-bench` (server and load in one process, printing
//! a results table).

#![deny(missing_docs)]

pub mod cli;
pub mod client;
pub mod grpc;
pub mod pacer;
pub mod report;
pub mod scenario;
pub mod server;
pub mod sys;

/// Messages and ringrpc servers generated from `examples/proto/helloworld.proto`
/// and `perf/proto/bench.proto`.
pub mod proto {
    #![allow(missing_docs, clippy::all)]
    pub mod helloworld {
        include!(concat!(env!("OUT_DIR"), "/helloworld.rs"));
    }
    pub mod ringrpc {
        pub mod bench {
            include!(concat!(env!("OUT_DIR"), "/ringrpc.bench.rs"));
        }
    }
}

pub use client::Target;
pub use report::Report;
pub use scenario::{run, run_observed, Event, Scenario};
