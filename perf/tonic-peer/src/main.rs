//! helloworld.Greeter and ringrpc.bench.Bench on tonic's server, with the same
//! handlers as the ringrpc bench server, so a side-by-side measurement compares
//! the servers and not the services.
//!
//! `tonic-greeter-server [--host H] [--port N] [--threads T]`
//!
//! `--port 0` picks a free port; `--threads 1` runs tokio's current-thread
//! runtime (the fairest match for one ringrpc worker), more runs the
//! multi-thread runtime with that many workers. Prints `listening on ADDR`
//! once the socket is bound, then serves until SIGTERM or SIGINT.

use std::net::SocketAddr;

use tonic::transport::server::TcpIncoming;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Flags {
    host: String,
    port: u16,
    threads: usize,
}

fn parse_flags() -> Flags {
    let mut flags = Flags {
        host: "127.0.0.1".into(),
        port: 50051,
        threads: 1,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| usage(&format!("{arg} needs a value")));
        match arg.as_str() {
            "--host" => flags.host = value,
            "--port" => flags.port = parse_or_exit(&value, "--port"),
            "--threads" => flags.threads = parse_or_exit::<usize>(&value, "--threads").max(1),
            _ => usage(&format!("unknown flag {arg}")),
        }
    }
    flags
}

fn parse_or_exit<T: std::str::FromStr>(value: &str, name: &str) -> T {
    value
        .parse()
        .unwrap_or_else(|_| usage(&format!("{name}: invalid value {value:?}")))
}

fn usage(problem: &str) -> ! {
    eprintln!("{problem}\nusage: tonic-greeter-server [--host H] [--port N] [--threads T]");
    std::process::exit(2)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let flags = parse_flags();
    if let Err(error) = ringrpc_perf_tonic_peer::raise_fd_limit() {
        eprintln!("could not raise the open-file limit: {error}");
    }
    let addr: SocketAddr = format!("{}:{}", flags.host, flags.port)
        .parse()
        .unwrap_or_else(|e| usage(&format!("bad address {}:{}: {e}", flags.host, flags.port)));
    let runtime = if flags.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(flags.threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(async move {
        // Binding inside the runtime registers the listener with its reactor.
        // tonic's own `serve(addr)` sets TCP_NODELAY; keep that default here.
        let incoming = TcpIncoming::bind(addr)?.with_nodelay(Some(true));
        println!("listening on {}", incoming.local_addr()?);
        let shutdown = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("install SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        ringrpc_perf_tonic_peer::serve(incoming, shutdown).await?;
        Ok(())
    })
}
