//! The command line of `ringrpc-load`.

use std::time::Duration;

use crate::scenario::{FlowLoad, Hold, IdleLoad, Scenario, Timing, UnaryLoad};
use crate::server::MAX_PAYLOAD;

/// Usage text.
pub const USAGE: &str = "\
usage: ringrpc-load <scenario> --addr HOST:PORT [options] [--threads T] [--json]

scenarios:
  unary    --conns C --streams M --duration S [--warmup S] [--rate R]
           SayHello(name=\"world\"). Closed loop with M streams per connection,
           or with --rate an open loop at R requests/s in total, latency from
           each request's intended send time, at most M outstanding per
           connection (requests that had to wait for one count as late)
  stream   --conns C --message-size B --duration S [--warmup S]
           one StreamDown(count=0) per connection; payload MB/s and messages/s
  pingpong --conns C --message-size B --duration S [--warmup S]
           one PingPong per connection, one message in flight; round-trip latency
  up       --conns C --message-size B --duration S [--warmup S]
           one StreamUp per connection; payload MB/s (messages smaller than
           16 KiB go several to a DATA frame, as gRPC clients send them)
  idle     --conns N --hold S
           N connections, each completes the handshake and one SayHello; prints
           `ready N`, holds them idle S seconds (0: until stdin closes), exits.
           With --json the ready line is the JSON object: requests = connections
           ready, seconds = time to set them all up, latency = per connection
           (TCP connect, HTTP/2 handshake, SayHello)

defaults: --conns 1 (idle 1000), --streams 1, --duration 5, --warmup 0,
          --message-size 1024, --hold 10, --threads 1
--threads T   client threads, each a current-thread runtime owning every T-th connection
--json        one JSON object line: scenario, requests|messages, errors, seconds,
              rps, mb_per_s, p50_us, p90_us, p99_us, p999_us, max_us, late
";

/// A parsed `ringrpc-load` command line.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadArgs {
    /// What to run.
    pub scenario: Scenario,
    /// `HOST:PORT` of the server.
    pub addr: String,
    /// Client threads.
    pub threads: usize,
    /// Print JSON instead of a human-readable line.
    pub json: bool,
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<LoadArgs, String> {
    let mut args = args.into_iter();
    let name = args.next().ok_or("missing scenario")?;
    let allowed: &[&str] = match name.as_str() {
        "unary" => &["--conns", "--streams", "--duration", "--warmup", "--rate"],
        "stream" | "pingpong" | "up" => &["--conns", "--message-size", "--duration", "--warmup"],
        "idle" => &["--conns", "--hold"],
        "-h" | "--help" => return Err(String::new()),
        other => return Err(format!("unknown scenario {other:?}")),
    };
    let mut addr = None;
    let mut threads = 1;
    let mut json = false;
    let mut values: Vec<(String, String)> = Vec::new();
    while let Some(arg) = args.next() {
        if arg == "--json" {
            json = true;
            continue;
        }
        let (flag, value) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), value.to_owned()),
            _ => {
                let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
                (arg, value)
            }
        };
        match flag.as_str() {
            "--addr" => addr = Some(value),
            "--threads" => threads = positive(&flag, &value)?,
            f if allowed.contains(&f) => values.push((flag, value)),
            _ => return Err(format!("{name} does not take {flag}")),
        }
    }
    let addr = addr.ok_or("--addr HOST:PORT is required")?;
    let get = |flag: &str| {
        values
            .iter()
            .rev()
            .find(|(f, _)| f == flag)
            .map(|(_, v)| v.as_str())
    };
    let conns = |default: usize| get("--conns").map_or(Ok(default), |v| positive("--conns", v));
    let timing = || -> Result<Timing, String> {
        Ok(Timing {
            duration: get("--duration").map_or(Ok(Duration::from_secs(5)), |v| {
                seconds("--duration", v, false)
            })?,
            warmup: get("--warmup").map_or(Ok(Duration::ZERO), |v| seconds("--warmup", v, true))?,
        })
    };
    let flow = || -> Result<FlowLoad, String> {
        let message_size = match get("--message-size") {
            None => 1024,
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|size| *size <= MAX_PAYLOAD)
                .ok_or_else(|| format!("--message-size: {v:?} is not 0..={MAX_PAYLOAD}"))?,
        };
        Ok(FlowLoad {
            conns: conns(1)?,
            message_size,
            timing: timing()?,
        })
    };
    let scenario = match name.as_str() {
        "unary" => Scenario::Unary(UnaryLoad {
            conns: conns(1)?,
            streams: get("--streams").map_or(Ok(1), |v| positive("--streams", v))?,
            rate: get("--rate")
                .map(|v| {
                    v.parse::<f64>()
                        .ok()
                        .filter(|r| r.is_finite() && *r > 0.0)
                        .ok_or_else(|| format!("--rate: {v:?} is not a positive number"))
                })
                .transpose()?,
            timing: timing()?,
        }),
        "stream" => Scenario::Stream(flow()?),
        "pingpong" => Scenario::PingPong(flow()?),
        "up" => Scenario::Up(flow()?),
        _ => Scenario::Idle(IdleLoad {
            conns: conns(1000)?,
            hold: match get("--hold") {
                None => Hold::For(Duration::from_secs(10)),
                Some(v) => match seconds("--hold", v, true)? {
                    Duration::ZERO => Hold::UntilStdinCloses,
                    d => Hold::For(d),
                },
            },
        }),
    };
    Ok(LoadArgs {
        scenario,
        addr,
        threads,
        json,
    })
}

fn positive(flag: &str, value: &str) -> Result<usize, String> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{flag}: {value:?} is not a positive integer"))
}

fn seconds(flag: &str, value: &str, zero_ok: bool) -> Result<Duration, String> {
    value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && (*s > 0.0 || (zero_ok && *s == 0.0)) && *s < 1e9)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{flag}: {value:?} is not a valid number of seconds"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(line: &str) -> Result<LoadArgs, String> {
        parse(line.split_whitespace().map(String::from))
    }

    #[test]
    fn parses_every_scenario() {
        let args = parse_str(
            "unary --addr 127.0.0.1:1 --conns 16 --streams 64 --duration 2.5 --warmup 1 --json",
        )
        .unwrap();
        assert!(args.json);
        assert_eq!(args.threads, 1);
        assert_eq!(
            args.scenario,
            Scenario::Unary(UnaryLoad {
                conns: 16,
                streams: 64,
                rate: None,
                timing: Timing {
                    warmup: Duration::from_secs(1),
                    duration: Duration::from_millis(2500)
                },
            })
        );
        let args = parse_str("unary --addr h:1 --rate=1000 --threads 2").unwrap();
        assert_eq!(args.threads, 2);
        assert!(
            matches!(args.scenario, Scenario::Unary(UnaryLoad { rate: Some(r), .. }) if r == 1000.0)
        );
        let args = parse_str("stream --addr h:1 --message-size 65536 --conns 2").unwrap();
        assert!(matches!(
            args.scenario,
            Scenario::Stream(FlowLoad {
                conns: 2,
                message_size: 65536,
                ..
            })
        ));
        assert!(matches!(
            parse_str("pingpong --addr h:1").unwrap().scenario,
            Scenario::PingPong(FlowLoad {
                conns: 1,
                message_size: 1024,
                ..
            })
        ));
        assert!(matches!(
            parse_str("up --addr h:1 --duration 0.3").unwrap().scenario,
            Scenario::Up(_)
        ));
        assert_eq!(
            parse_str("idle --addr h:1 --conns 5 --hold 0")
                .unwrap()
                .scenario,
            Scenario::Idle(IdleLoad {
                conns: 5,
                hold: Hold::UntilStdinCloses
            })
        );
    }

    #[test]
    fn rejects_bad_command_lines() {
        for line in [
            "",
            "bogus --addr h:1",
            "unary",
            "unary --addr h:1 --message-size 10",
            "stream --addr h:1 --streams 2",
            "idle --addr h:1 --duration 1",
            "unary --addr h:1 --conns 0",
            "unary --addr h:1 --duration 0",
            "unary --addr h:1 --rate -5",
            "stream --addr h:1 --message-size 99999999",
            "unary --addr h:1 --conns",
        ] {
            assert!(parse_str(line).is_err(), "{line:?} was accepted");
        }
    }
}
