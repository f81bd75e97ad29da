//! `ringrpc-bench [--duration S]`: the one-command benchmark.
//!
//! Starts a ringrpc server in this process (one worker, pinned to CPU 0 when
//! there are two CPUs or more), drives it from a load-generator thread pinned
//! to CPU 1 through the same scenarios `ringrpc-load` runs, and prints a
//! markdown table: unary throughput at saturation with the server's CPU time
//! per RPC, unary and ping-pong latency, server-streaming throughput. The
//! server's CPU time is the worker thread's utime + stime over each measured
//! window. About 30 s with the default 4 s per scenario.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ringrpc_engine::{Backend, EngineConfig};
use ringrpc_loadgen::scenario::{FlowLoad, Scenario, Timing, UnaryLoad};
use ringrpc_loadgen::{run_observed, server, sys, Event, Report, Target};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str =
    "usage: ringrpc-bench [--duration S]   (seconds measured per scenario, default 4)";

/// One row of the table: a scenario and what was measured.
struct Row {
    label: &'static str,
    report: Report,
    /// Worker CPU time over the measured window.
    server_cpu: Option<Duration>,
}

fn main() {
    let duration = parse_duration();
    let warmup = (duration / 4).min(Duration::from_secs(1));
    let timing = Timing { warmup, duration };

    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let pinned = cores.len() >= 2;
    let worker_tid = Arc::new(AtomicI32::new(0));
    let config = EngineConfig {
        workers: 1,
        pin_workers: pinned,
        cores: if pinned {
            vec![cores[0].id]
        } else {
            Vec::new()
        },
        ..EngineConfig::default()
    };
    let server = {
        let worker_tid = worker_tid.clone();
        // The factory runs on the worker thread: record which thread that is.
        server::builder_with_worker_hook(move || {
            worker_tid.store(sys::current_thread_id(), Ordering::Relaxed)
        })
        .config(config)
        .serve("127.0.0.1:0".parse().expect("loopback address"))
    };
    let server = match server {
        Ok(server) => server,
        Err(error) => {
            eprintln!("could not start the server: {error}");
            std::process::exit(1);
        }
    };
    let tid = worker_tid.load(Ordering::Relaxed);
    let target = Target::at(server.local_addr());
    let backend = server.backend();

    let scenarios: Vec<(&'static str, Scenario)> = vec![
        (
            "unary SayHello, 16 conns × 64 streams",
            Scenario::Unary(UnaryLoad {
                conns: 16,
                streams: 64,
                rate: None,
                timing,
            }),
        ),
        (
            "unary SayHello, 1 conn × 1 stream",
            Scenario::Unary(UnaryLoad {
                conns: 1,
                streams: 1,
                rate: None,
                timing,
            }),
        ),
        (
            "bidi PingPong, 64 B, 1 conn",
            Scenario::PingPong(FlowLoad {
                conns: 1,
                message_size: 64,
                timing,
            }),
        ),
        (
            "server streaming, 1 KiB messages, 1 conn",
            Scenario::Stream(FlowLoad {
                conns: 1,
                message_size: 1024,
                timing,
            }),
        ),
        (
            "server streaming, 64 KiB messages, 1 conn",
            Scenario::Stream(FlowLoad {
                conns: 1,
                message_size: 64 * 1024,
                timing,
            }),
        ),
    ];

    let client_core = pinned.then(|| cores[1]);
    let total = scenarios.len();
    let rows = std::thread::spawn(move || {
        if let Some(core) = client_core {
            core_affinity::set_for_current(core);
        }
        let mut rows = Vec::with_capacity(total);
        for (i, (label, scenario)) in scenarios.into_iter().enumerate() {
            eprintln!("[{}/{total}] {label} ...", i + 1);
            let mut cpu_start = None;
            let mut server_cpu = None;
            let report = run_observed(&target, 1, &scenario, &mut |event| match event {
                Event::MeasureStart => cpu_start = sys::thread_cpu_time(tid).ok(),
                Event::MeasureEnd => {
                    server_cpu = match (cpu_start, sys::thread_cpu_time(tid)) {
                        (Some(start), Ok(end)) => end.checked_sub(start),
                        _ => None,
                    }
                }
                Event::Ready(_) => {}
            });
            rows.push(Row {
                label,
                report,
                server_cpu,
            });
        }
        rows
    })
    .join()
    .expect("load generator thread");
    server.shutdown_and_wait();

    println!();
    println!("{}", describe_setup(pinned, backend, timing));
    println!();
    println!("| scenario | throughput | p50 latency | p99 latency | server CPU-µs per RPC or message | errors |");
    println!("|---|---|---|---|---|---|");
    for row in &rows {
        let r = &row.report;
        let throughput = match r.mb_per_s() {
            Some(mb) => format!("{} MB/s ({} msg/s)", grouped(mb), grouped(r.rate())),
            None => format!(
                "{} {}",
                grouped(r.rate()),
                if r.scenario == "unary" {
                    "req/s"
                } else {
                    "msg/s"
                }
            ),
        };
        let (p50, p99) = match r.latency {
            Some(l) => (micros(l.p50_us), micros(l.p99_us)),
            None => ("—".to_owned(), "—".to_owned()),
        };
        let cpu = match row.server_cpu {
            Some(cpu) if r.count > 0 => format!("{:.2}", cpu.as_secs_f64() * 1e6 / r.count as f64),
            _ => "—".to_owned(),
        };
        println!(
            "| {} | {throughput} | {p50} | {p99} | {cpu} | {} |",
            row.label, r.errors
        );
    }
    println!();
    println!(
        "Side by side with tonic's server and both ringrpc backends, same machine: `perf/compare`."
    );
    let failed: Vec<&Row> = rows
        .iter()
        .filter(|row| row.report.errors > 0 || !row.report.succeeded())
        .collect();
    for row in &failed {
        eprintln!(
            "{}: {} errors, {} completed; first error: {}",
            row.label,
            row.report.errors,
            row.report.count,
            row.report.first_error.as_deref().unwrap_or("none")
        );
    }
    if !failed.is_empty() {
        std::process::exit(1);
    }
}

fn parse_duration() -> Duration {
    let mut args = std::env::args().skip(1);
    let mut duration = Duration::from_secs(4);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--duration" => {
                let value = args.next().unwrap_or_default();
                duration = value
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e6)
                    .map(Duration::from_secs_f64)
                    .unwrap_or_else(|| {
                        eprintln!("--duration: {value:?} is not a positive number\n{USAGE}");
                        std::process::exit(2)
                    });
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0)
            }
            _ => {
                eprintln!("unknown argument {arg}\n{USAGE}");
                std::process::exit(2)
            }
        }
    }
    duration
}

fn describe_setup(pinned: bool, backend: Backend, timing: Timing) -> String {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let backend = match backend {
        Backend::Uring => "io_uring",
        Backend::Epoll => "epoll",
    };
    let placement = if pinned {
        "server: 1 worker pinned to CPU 0; load generator (h2 client, 1 thread) pinned to CPU 1"
    } else {
        "one CPU: server worker and load generator share it, so the numbers are of both"
    };
    format!(
        "ringrpc {backend} on {cpus} CPUs ({model}); {placement}; {:.1} s measured per scenario after {:.2} s of warm-up.",
        timing.duration.as_secs_f64(),
        timing.warmup.as_secs_f64()
    )
}

/// A latency in µs, or in ms from 1 ms up.
fn micros(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.1} µs")
    }
}

/// A rate with thousands separators and no decimals (one below 100).
fn grouped(value: f64) -> String {
    if value < 100.0 {
        return format!("{value:.1}");
    }
    let digits = format!("{value:.0}");
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
