//! `ringrpc-soak`: runs the soak (see the library docs) and prints its report;
//! exits with status 1 when the server kept anything active, an RPC went
//! unaccounted, a call ended unexpectedly, or RSS grew more than 5% after
//! warm-up.

use std::process::ExitCode;
use std::time::Duration;

use ringrpc_engine::Backend;
use ringrpc_soak::heap::CountingAllocator;
use ringrpc_soak::SoakConfig;

/// The allocator ringrpc's binaries use, so RSS is measured as they would run,
/// counted so the report can tell a leak (live heap growth) from caching.
#[global_allocator]
static ALLOC: CountingAllocator<mimalloc::MiMalloc> = CountingAllocator(mimalloc::MiMalloc);

const USAGE: &str = "usage: ringrpc-soak [--rpcs N] [--conns N] [--streams N] [--client-threads N] [--workers N] [--backend uring|epoll] [--seconds N] [--seed N]
                    [--cancel N] [--deadline N] [--disconnect N] [--quiet]

  --rpcs N            RPCs to issue (default 5_000_000)
  --conns N           connections open at once (default 64)
  --streams N         most calls in flight per connection (default 16)
  --client-threads N  client threads (default 2)
  --workers N         server workers (default 2)
  --backend B         server I/O backend, uring or epoll (default uring, or RINGRPC_BACKEND)
  --seconds N         stop issuing RPCs after N seconds (default 1800)
  --seed N            seed of the call mix (default 1)
  --cancel N          calls per 1000 reset with CANCEL mid-way (default 120)
  --deadline N        calls per 1000 whose deadline expires (default 120)
  --disconnect N      calls per 1000 whose connection is dropped (default 2)
  --quiet             no progress lines on stderr
";

/// Frees what mimalloc caches: its free pages, and the pages of threads that
/// have exited (the client threads are gone by the final sample).
fn release_free_memory() {
    // SAFETY: takes no pointers; mimalloc is this process's allocator.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

fn parse_args() -> Result<SoakConfig, String> {
    let mut config = SoakConfig {
        progress: true,
        release_free_memory: Some(release_free_memory),
        ..SoakConfig::default()
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--quiet" {
            config.progress = false;
            continue;
        }
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        if flag == "--backend" {
            config.backend = match value.as_str() {
                "uring" | "io_uring" => Backend::Uring,
                "epoll" => Backend::Epoll,
                _ => return Err(format!("--backend: uring or epoll, not {value}")),
            };
            continue;
        }
        let n: u64 = value
            .replace('_', "")
            .parse()
            .map_err(|_| format!("{flag}: not a number: {value}"))?;
        let count = || usize::try_from(n.max(1)).unwrap_or(usize::MAX);
        match flag.as_str() {
            "--rpcs" => config.rpcs = n,
            "--conns" => config.conns = count(),
            "--streams" => config.streams = n.max(1),
            "--client-threads" => config.client_threads = count(),
            "--workers" => config.workers = count(),
            "--seconds" => config.max_duration = Duration::from_secs(n),
            "--seed" => config.seed = n,
            "--cancel" => config.mix.cancel = n,
            "--deadline" => config.mix.deadline = n,
            "--disconnect" => config.mix.disconnect = n,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    let mix = config.mix;
    if mix.cancel + mix.deadline + mix.disconnect > 1000 {
        return Err("--cancel + --deadline + --disconnect is over 1000".into());
    }
    Ok(config)
}

fn main() -> ExitCode {
    let config = match parse_args() {
        Ok(config) => config,
        Err(error) => {
            if !error.is_empty() {
                eprintln!("{error}");
            }
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let report = match ringrpc_soak::run(&config) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("ringrpc-soak: cannot start the server: {error}");
            return ExitCode::from(2);
        }
    };
    println!("{report}");
    if report.failures().is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
