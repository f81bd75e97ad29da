//! `ringrpc-load <scenario> --addr HOST:PORT [options] [--threads T] [--json]`:
//! drives a gRPC server with one of the load scenarios and prints one line
//! (human-readable, or one JSON object with `--json`). Exits 1 when nothing
//! succeeded, 2 on a malformed command line.

use ringrpc_loadgen::cli::{self, USAGE};
use ringrpc_loadgen::scenario::{run_observed, Event, Scenario};
use ringrpc_loadgen::{sys, Report, Target};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args = match cli::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(problem) => {
            if problem.is_empty() {
                print!("{USAGE}");
                std::process::exit(0);
            }
            eprint!("{problem}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let target = match Target::resolve(&args.addr) {
        Ok(target) => target,
        Err(error) => {
            eprintln!("--addr {}: {error}", args.addr);
            std::process::exit(2);
        }
    };
    if let Err(error) = sys::raise_fd_limit() {
        eprintln!("note: could not raise the open-file limit: {error}");
    }
    let json = args.json;
    let print = |report: &Report| {
        if json {
            println!("{}", report.to_json());
        } else {
            println!("{}", report.to_human());
        }
    };
    let idle = matches!(args.scenario, Scenario::Idle(_));
    let mut ready_errors = 0;
    let report = run_observed(&target, args.threads, &args.scenario, &mut |event| {
        if let Event::Ready(report) = event {
            ready_errors = report.errors;
            if json {
                println!("{}", report.to_json());
            } else {
                println!("ready {}", report.count);
                eprintln!("{}", report.to_human());
            }
            if let Some(error) = &report.first_error {
                eprintln!("first error: {error}");
            }
        }
    });
    if idle {
        if report.errors > ready_errors {
            if let Some(error) = &report.first_error {
                eprintln!("note: {error}");
            }
        }
    } else {
        print(&report);
        if let Some(error) = &report.first_error {
            eprintln!("first error: {error}");
        }
    }
    if !report.succeeded() {
        std::process::exit(1);
    }
}
