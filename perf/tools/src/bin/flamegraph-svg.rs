//! Turns `perf script` output into a flame graph SVG and lists the functions
//! with the most self time.
//!
//! `flamegraph-svg [--title T] [--top N] [--folded FILE] --out FILE.svg [PERF_SCRIPT]`
//!
//! Reads `perf script` text from PERF_SCRIPT, or standard input when it is
//! absent or `-`. Kernel frames get a `_[k]` suffix and their own colour.
//! `--folded` also keeps the collapsed stacks (one `frame;frame;... count`
//! line per distinct stack) for diffing or re-rendering. `--top N` (default
//! 15, 0 for none) prints the N leaf functions that hold the most sampled time,
//! which is what `perf report --no-children` calls self time.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::process::ExitCode;

use inferno::collapse::perf::{Folder, Options as CollapseOptions};
use inferno::collapse::Collapse;
use inferno::flamegraph::{self, color::MultiPalette, Options as FlameOptions, Palette};

struct Flags {
    title: String,
    top: usize,
    folded: Option<String>,
    out: String,
    input: Option<String>,
}

fn parse_flags() -> Result<Flags, String> {
    let mut title = "ringrpc server".to_string();
    let mut top = 15;
    let mut folded = None;
    let mut out = None;
    let mut input = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--title" => title = value("--title")?,
            "--top" => {
                top = value("--top")?
                    .parse()
                    .map_err(|_| "--top: not a number".to_string())?
            }
            "--folded" => folded = Some(value("--folded")?),
            "--out" => out = Some(value("--out")?),
            "-h" | "--help" => return Err(String::new()),
            _ if input.is_none() && (arg == "-" || !arg.starts_with('-')) => input = Some(arg),
            _ => return Err(format!("unknown argument {arg}")),
        }
    }
    Ok(Flags {
        title,
        top,
        folded,
        out: out.ok_or("--out is required")?,
        input: input.filter(|i| i != "-"),
    })
}

/// Collapses `perf script` text into folded stacks, one line per distinct stack.
fn collapse(input: impl Read) -> io::Result<String> {
    let mut options = CollapseOptions::default();
    options.annotate_kernel = true;
    let mut folded = Vec::new();
    Folder::from(options).collapse(BufReader::new(input), &mut folded)?;
    String::from_utf8(folded).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Weight per leaf frame, descending, with the total weight. A stack's weight is
/// its sample count, or the summed sample periods when `perf script` shows them.
fn self_time(folded: &str) -> (Vec<(&str, u64)>, u64) {
    let mut per_leaf: HashMap<&str, u64> = HashMap::new();
    let mut total = 0;
    for line in folded.lines() {
        let Some((stack, count)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(count) = count.parse::<u64>() else {
            continue;
        };
        let leaf = stack.rsplit(';').next().unwrap_or(stack);
        *per_leaf.entry(leaf).or_default() += count;
        total += count;
    }
    let mut leaves: Vec<_> = per_leaf.into_iter().collect();
    leaves.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    (leaves, total)
}

fn run(flags: &Flags) -> io::Result<()> {
    let folded = match &flags.input {
        Some(path) => collapse(File::open(path)?)?,
        None => collapse(io::stdin().lock())?,
    };
    if folded.trim().is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no stacks in the input (was `perf record` given -g or --call-graph?)",
        ));
    }
    if let Some(path) = &flags.folded {
        std::fs::write(path, &folded)?;
    }

    let mut options = FlameOptions::default();
    options.title = flags.title.clone();
    options.colors = Palette::Multi(MultiPalette::Java);
    // A stable colour per name makes two graphs of the same server comparable.
    options.hash = true;
    let mut svg = BufWriter::new(File::create(&flags.out)?);
    flamegraph::from_lines(&mut options, folded.lines(), &mut svg)?;
    svg.flush()?;

    if flags.top > 0 {
        let (leaves, total) = self_time(&folded);
        println!("top self-time functions (share of sampled time; _[k] = kernel):");
        for (name, count) in leaves.iter().take(flags.top) {
            println!("{:6.2}%  {name}", 100.0 * *count as f64 / total as f64);
        }
        let kernel: u64 = leaves
            .iter()
            .filter(|(name, _)| name.ends_with("_[k]"))
            .map(|(_, count)| count)
            .sum();
        println!(
            "kernel share of samples: {:.1}%",
            100.0 * kernel as f64 / total as f64
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let flags = match parse_flags() {
        Ok(flags) => flags,
        Err(problem) => {
            if !problem.is_empty() {
                eprintln!("{problem}");
            }
            eprintln!(
                "usage: flamegraph-svg [--title T] [--top N] [--folded FILE] --out FILE.svg [PERF_SCRIPT|-]"
            );
            return ExitCode::from(2);
        }
    };
    match run(&flags) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flamegraph-svg: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_time_counts_leaf_frames_only() {
        let folded = "main;a;b 3\nmain;a 2\nmain;c;b 5\n";
        let (leaves, total) = self_time(folded);
        assert_eq!(total, 10);
        assert_eq!(leaves, vec![("b", 8), ("a", 2)]);
    }

    #[test]
    fn collapses_perf_script_stacks() {
        let script = "\
server 1234 100.000: 250000 cpu-clock:
\tffffffff81000001 tcp_sendmsg+0x1 ([kernel.kallsyms])
\t0000555555550001 write_all+0x10 (/bin/server)
\t0000555555550002 main+0x20 (/bin/server)

server 1234 100.001: 250000 cpu-clock:
\t0000555555550001 write_all+0x10 (/bin/server)
\t0000555555550002 main+0x20 (/bin/server)

";
        let folded = collapse(script.as_bytes()).unwrap();
        let (leaves, total) = self_time(&folded);
        // Each sample weighs its period (250000 ns of cpu-clock here).
        assert_eq!(total, 500_000);
        assert!(leaves.contains(&("tcp_sendmsg_[k]", 250_000)), "{folded}");
        assert!(leaves.contains(&("write_all", 250_000)), "{folded}");
    }
}
