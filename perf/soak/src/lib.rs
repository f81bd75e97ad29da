//! A soak run of the ringrpc engine: millions of RPCs of all four kinds against
//! an in-process server, with client cancellations, expired deadlines and
//! dropped connections mixed in, checking afterwards that the server holds no
//! call, stream or connection and that the process did not grow.
//!
//! [`run`] starts the server (the engine on 127.0.0.1, port 0), drives it from
//! client threads (the `h2` crate on current-thread tokio runtimes, see
//! `client`), samples the process's resident set size throughout, and returns
//! a [`Report`]. The `ringrpc-soak` binary prints it and fails when
//! [`Report::failures`] is not empty.

#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod client;
pub mod heap;
mod rng;
pub mod service;

use std::fmt;
use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use client::{Client, Tally};
pub use client::{ClientCounts, Mix};
use ringrpc_engine::{Backend, EngineConfig, Server, Stats};
use ringrpc_service_api::Code;
use rng::Rng;
use service::helloworld::greeter_server::GreeterServer;
use service::ringrpc::bench::bench_server::BenchServer;
use service::{BenchHandlers, Greetings};

/// What to run.
#[derive(Clone, Debug)]
pub struct SoakConfig {
    /// RPCs to issue. Default 5,000,000.
    pub rpcs: u64,
    /// Connections open at once (each replaced by a new one when it ends).
    /// Default 64.
    pub conns: usize,
    /// Most calls in flight on one connection; each connection runs a random
    /// number of call loops up to this. Default 16.
    pub streams: u64,
    /// Client threads, each a current-thread runtime with its share of the
    /// connections. Default 2.
    pub client_threads: usize,
    /// Server workers. Default 2.
    pub workers: usize,
    /// The server's I/O backend. Default io_uring, or `RINGRPC_BACKEND`.
    pub backend: Backend,
    /// Stop issuing RPCs after this long even if fewer than `rpcs` were issued.
    /// Default 30 minutes.
    pub max_duration: Duration,
    /// How calls end.
    pub mix: Mix,
    /// Seeds every connection's choices. Default 1.
    pub seed: u64,
    /// Print progress to stderr every 10 seconds. Default false.
    pub progress: bool,
    /// Asks the global allocator to return the memory it keeps free to the
    /// system; run right before the two RSS samples that are compared, so
    /// that they measure what the program holds rather than what the
    /// allocator caches. Default none.
    pub release_free_memory: Option<fn()>,
}

impl Default for SoakConfig {
    fn default() -> Self {
        SoakConfig {
            rpcs: 5_000_000,
            conns: 64,
            streams: 16,
            client_threads: 2,
            workers: 2,
            backend: Backend::from_env().unwrap_or_default(),
            max_duration: Duration::from_secs(30 * 60),
            mix: Mix::default(),
            seed: 1,
            progress: false,
            release_free_memory: None,
        }
    }
}

/// The share of the RPCs after which the warm-up RSS is taken: by then every
/// pool, buffer and table has reached its working size.
const WARM_UP_FRACTION: u64 = 10;

/// How often the monitor samples RSS.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// How long the server gets to notice that every client left.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// Quiet time before the final RSS sample, so that timers and deferred frees
/// have run (mimalloc returns freed pages to the system after 1 s by default).
const SETTLE: Duration = Duration::from_secs(2);

/// Most RSS growth from warm-up to the end that passes, in percent.
pub const MAX_RSS_GROWTH_PERCENT: f64 = 5.0;

/// The result of a soak run.
#[derive(Clone, Debug)]
pub struct Report {
    /// What ran.
    pub config: SoakConfig,
    /// The backend the server's workers ran.
    pub backend: Backend,
    /// What the clients saw.
    pub client: ClientCounts,
    /// From the first RPC until every client thread had finished.
    pub elapsed: Duration,
    /// The time cap stopped the run before all RPCs were issued.
    pub capped: bool,
    /// RSS in bytes once [`WARM_UP_FRACTION`] of the RPCs had completed; `None`
    /// if the run ended before a sample was taken then.
    pub rss_warm_up: Option<u64>,
    /// Highest RSS sampled.
    pub rss_peak: u64,
    /// RSS after the clients were gone and the server had settled.
    pub rss_end: u64,
    /// Live heap bytes when `rss_warm_up` was taken and at the end, when the
    /// binary counts them ([`heap::CountingAllocator`]).
    pub heap_warm_up: Option<u64>,
    /// See `heap_warm_up`.
    pub heap_end: Option<u64>,
    /// The server's counters at the end, before shutdown.
    pub stats: Stats,
}

impl Report {
    /// No connection, stream or call is left on the server.
    pub fn nothing_active(&self) -> bool {
        self.stats.total.active_connections == 0 && self.stats.total.active_streams == 0
    }

    /// Every RPC the server started ended with exactly one status.
    pub fn every_rpc_finished(&self) -> bool {
        self.stats.total.rpcs_started == self.stats.total.finished_total()
    }

    /// RSS at the end against after warm-up, in percent.
    pub fn rss_growth_percent(&self) -> Option<f64> {
        let warm = self.rss_warm_up? as f64;
        Some((self.rss_end as f64 - warm) / warm * 100.0)
    }

    /// Why the run failed; empty when it passed.
    pub fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        let total = &self.stats.total;
        if total.active_connections != 0 {
            failures.push(format!(
                "{} connections still active",
                total.active_connections
            ));
        }
        if total.active_streams != 0 {
            failures.push(format!("{} streams still active", total.active_streams));
        }
        if !self.every_rpc_finished() {
            failures.push(format!(
                "the server started {} RPCs and finished {}",
                total.rpcs_started,
                total.finished_total()
            ));
        }
        if self.client.unexpected != 0 {
            failures.push(format!("{} unexpected results", self.client.unexpected));
        }
        match self.rss_growth_percent() {
            None => failures.push("no RSS sample after warm-up".into()),
            Some(growth) if growth > MAX_RSS_GROWTH_PERCENT => failures.push(format!(
                "RSS grew {growth:.1}% after warm-up (limit {MAX_RSS_GROWTH_PERCENT}%)"
            )),
            Some(_) => {}
        }
        failures
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = &self.config;
        let client = &self.client;
        let total = &self.stats.total;
        let secs = self.elapsed.as_secs_f64();
        let mix = &config.mix;
        writeln!(
            f,
            "ringrpc soak: {} RPCs over {} connections at a time (up to {} calls each) from {} client threads; server: {} workers, {:?}; seed {}",
            config.rpcs, config.conns, config.streams, config.client_threads, config.workers, self.backend, config.seed
        )?;
        writeln!(
            f,
            "mix per 1000 calls: {} cancel, {} deadline, {} disconnect",
            mix.cancel, mix.deadline, mix.disconnect
        )?;
        writeln!(
            f,
            "issued {} RPCs in {secs:.1} s ({:.0} RPC/s){}",
            client.issued,
            client.issued as f64 / secs.max(1e-9),
            if self.capped {
                ", stopped by the time cap"
            } else {
                ""
            }
        )?;
        let [normal, cancel, deadline, disconnect] = client.planned;
        writeln!(
            f,
            "planned: {normal} normal, {cancel} cancel, {deadline} deadline, {disconnect} disconnect"
        )?;
        writeln!(f, "client outcomes:")?;
        for (name, n) in [
            ("OK", client.ok),
            ("CANCELLED", client.cancelled),
            ("DEADLINE_EXCEEDED", client.deadline_exceeded),
            ("disconnected", client.disconnected),
            ("unexpected", client.unexpected),
        ] {
            writeln!(f, "  {name:<18} {n:>10}")?;
        }
        for sample in &client.samples {
            writeln!(f, "    e.g. {sample}")?;
        }
        writeln!(
            f,
            "connections: {} opened, {} dropped abruptly ({} with FIN, {} with RST)",
            client.connections,
            client.dropped_fin + client.dropped_rst,
            client.dropped_fin,
            client.dropped_rst
        )?;
        writeln!(f, "server stats at the end:")?;
        writeln!(
            f,
            "  rpcs started {}, finished {}",
            total.rpcs_started,
            total.finished_total()
        )?;
        for (code, &n) in total.rpcs_finished.iter().enumerate() {
            if n > 0 {
                let name = format!("{:?}", Code::from_i32(code as i32));
                writeln!(f, "    {name:<18} {n:>10}")?;
            }
        }
        writeln!(
            f,
            "  connections accepted {}, bytes read {}, written {}",
            total.connections_accepted, total.bytes_read, total.bytes_written
        )?;
        writeln!(
            f,
            "  active connections {}, active streams {}",
            total.active_connections, total.active_streams
        )?;
        let warm = self.rss_warm_up.map_or("not sampled".into(), mib);
        let growth = self
            .rss_growth_percent()
            .map_or("-".into(), |g| format!("{g:+.1}%"));
        writeln!(
            f,
            "RSS: after warm-up {warm}, peak {}, end {} (growth {growth})",
            mib(self.rss_peak),
            mib(self.rss_end)
        )?;
        if let (Some(warm), Some(end)) = (self.heap_warm_up, self.heap_end) {
            writeln!(
                f,
                "live heap: after warm-up {}, end {}",
                mib(warm),
                mib(end)
            )?;
        }
        let failures = self.failures();
        if failures.is_empty() {
            write!(f, "result: PASS")
        } else {
            write!(f, "result: FAIL: {}", failures.join("; "))
        }
    }
}

/// This process's resident set size in bytes (`VmRSS` in /proc/self/status).
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// What the monitor thread saw.
struct Samples {
    warm_up: Option<u64>,
    heap_warm_up: Option<u64>,
    peak: u64,
}

/// Samples RSS until `done`: the peak, and the value once the warm-up share of
/// the RPCs completed. Also stops the clients at the time cap.
fn monitor(tally: &Tally, config: &SoakConfig, start: Instant, done: &AtomicBool) -> Samples {
    let warm_up_at = config.rpcs / WARM_UP_FRACTION;
    let mut samples = Samples {
        warm_up: None,
        heap_warm_up: None,
        peak: 0,
    };
    let mut next_progress = start + Duration::from_secs(10);
    let mut capped_reported = false;
    while !done.load(Ordering::Relaxed) {
        let rss = rss_bytes();
        samples.peak = samples.peak.max(rss);
        let completed = tally.completed.load(Ordering::Relaxed);
        if samples.warm_up.is_none() && completed >= warm_up_at {
            if let Some(release) = config.release_free_memory {
                release();
            }
            samples.warm_up = Some(rss_bytes());
            samples.heap_warm_up = heap::live_heap_bytes();
        }
        let now = Instant::now();
        if now.duration_since(start) >= config.max_duration && !capped_reported {
            tally.stop.store(true, Ordering::Relaxed);
            capped_reported = true;
        }
        if config.progress && now >= next_progress {
            let secs = now.duration_since(start).as_secs_f64();
            let heap =
                heap::live_heap_bytes().map_or(String::new(), |h| format!(", heap {}", mib(h)));
            eprintln!(
                "[{secs:5.0} s] {completed} RPCs done ({:.0}/s), RSS {}{heap}",
                completed as f64 / secs,
                mib(rss)
            );
            next_progress += Duration::from_secs(10);
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
    samples
}

/// One client thread: `conns` connection drivers on a current-thread runtime.
fn client_thread(client: Client, conns: usize, seed: u64) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let client = Rc::new(client);
        let mut rng = Rng::new(seed);
        let drivers: Vec<_> = (0..conns)
            .map(|_| tokio::task::spawn_local(client::drive(client.clone(), rng.fork())))
            .collect();
        for driver in drivers {
            if let Err(error) = driver.await {
                std::panic::resume_unwind(error.into_panic());
            }
        }
    });
}

/// Runs the soak: starts a server, drives it with `config.rpcs` RPCs, waits for
/// it to settle, and reports. Errors only if the server cannot start; a client
/// thread's panic is passed on.
pub fn run(config: &SoakConfig) -> io::Result<Report> {
    let engine = EngineConfig {
        workers: config.workers.max(1),
        backend: config.backend,
        shutdown_grace: Duration::from_secs(2),
        ..EngineConfig::default()
    };
    let server = Server::builder()
        .config(engine)
        .add_service(|| GreeterServer::new(Greetings))
        .add_service(|| BenchServer::new(BenchHandlers))
        .serve("127.0.0.1:0".parse().expect("an address"))?;
    let addr = server.local_addr();
    let tally = Arc::new(Tally::new(config.rpcs));
    let start = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let monitor = {
        let (tally, config, done) = (tally.clone(), config.clone(), done.clone());
        std::thread::Builder::new()
            .name("soak-monitor".into())
            .spawn(move || monitor(&tally, &config, start, &done))?
    };

    let threads = config.client_threads.max(1);
    let conns = config.conns.max(1);
    let mut seeds = Rng::new(config.seed);
    let mut clients = Vec::with_capacity(threads);
    for t in 0..threads {
        let share = conns / threads + usize::from(t < conns % threads);
        let client = Client::new(addr, tally.clone(), config.streams.max(1), config.mix);
        let seed = seeds.next();
        clients.push(
            std::thread::Builder::new()
                .name(format!("soak-client-{t}"))
                .spawn(move || client_thread(client, share, seed))?,
        );
    }
    let mut panic = None;
    for thread in clients {
        if let Err(payload) = thread.join() {
            panic.get_or_insert(payload);
        }
    }
    let elapsed = start.elapsed();
    if let Some(payload) = panic {
        done.store(true, Ordering::Relaxed);
        std::panic::resume_unwind(payload);
    }

    // Every client socket is closed; the server closes its side as it reads EOF.
    let waited = Instant::now();
    loop {
        let stats = server.stats();
        let idle = stats.total.active_connections == 0 && stats.total.active_streams == 0;
        if idle || waited.elapsed() >= CLOSE_WAIT {
            break;
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
    std::thread::sleep(SETTLE);
    if let Some(release) = config.release_free_memory {
        release();
    }
    let rss_end = rss_bytes();
    let heap_end = heap::live_heap_bytes();
    let stats = server.stats();
    done.store(true, Ordering::Relaxed);
    let samples = monitor.join().expect("the monitor does not panic");
    let backend = server.backend();
    server.shutdown_and_wait();
    let client = tally.counts();
    Ok(Report {
        config: config.clone(),
        backend,
        capped: client.issued < config.rpcs,
        client,
        elapsed,
        rss_warm_up: samples.warm_up,
        rss_peak: samples.peak.max(rss_end),
        rss_end,
        heap_warm_up: samples.heap_warm_up,
        heap_end,
        stats,
    })
}
