//! `ringrpc-bench-server [--host H] [--port P] [--workers N] [--no-pin]`:
//! helloworld.Greeter and ringrpc.bench.Bench on ringrpc, for load generators.
//!
//! `--port 0` picks a free port; `--workers` defaults to 1; `--no-pin` leaves
//! workers unpinned. Everything else is `EngineConfig::default()` (the backend
//! follows `RINGRPC_BACKEND`). Prints `listening on ADDR` once it accepts
//! connections, serves until SIGTERM or SIGINT, then drains gracefully.

use ringrpc_engine::EngineConfig;
use ringrpc_loadgen::{server, sys};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: ringrpc-bench-server [--host H] [--port P] [--workers N] [--no-pin]";

fn usage(problem: &str) -> ! {
    eprintln!("{problem}\n{USAGE}");
    std::process::exit(2)
}

fn main() -> std::io::Result<()> {
    let mut host = "127.0.0.1".to_owned();
    let mut port: u16 = 50051;
    let mut workers: usize = 1;
    let mut pin = true;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "--host" => host = value(),
            "--port" => {
                let v = value();
                port = v
                    .parse()
                    .unwrap_or_else(|_| usage(&format!("--port: {v:?}")));
            }
            "--workers" => {
                let v = value();
                workers = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .unwrap_or_else(|| usage(&format!("--workers: {v:?}")));
            }
            "--no-pin" => pin = false,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            _ => usage(&format!("unknown flag {arg}")),
        }
    }
    let addr = format!("{host}:{port}")
        .parse()
        .unwrap_or_else(|e| usage(&format!("bad address {host}:{port}: {e}")));
    if let Err(error) = sys::raise_fd_limit() {
        eprintln!("note: could not raise the open-file limit: {error}");
    }
    let config = EngineConfig {
        workers,
        pin_workers: pin,
        ..EngineConfig::default()
    };
    let server = server::builder().config(config).serve(addr)?;
    println!("listening on {}", server.local_addr());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        Ok::<(), std::io::Error>(())
    })?;
    eprintln!("shutting down: draining in-flight calls");
    server.shutdown_and_wait();
    Ok(())
}
