//! What a run counts while it runs ([`Tally`], one per client thread) and what
//! it reports ([`Report`]: one human-readable line or one JSON object).

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::grpc::CallError;

/// Highest latency the histogram tells apart; longer ones count as this.
const MAX_LATENCY: Duration = Duration::from_secs(60);

/// Counters and the latency histogram of one client thread. Shared by the
/// thread's tasks through an `Rc<RefCell<..>>`, so recording is a borrow flag,
/// a few additions and one histogram increment.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Calls or messages completed inside the measured window.
    pub completed: u64,
    /// Payload bytes moved inside the measured window.
    pub bytes: u64,
    /// Failed calls, over the whole run.
    pub errors: u64,
    /// Open-loop requests that could not be sent at their intended time.
    pub late: u64,
    /// Latencies in nanoseconds, inside the measured window.
    pub latency: Histogram<u64>,
    /// The first error, for diagnostics.
    pub first_error: Option<String>,
}

impl Default for Tally {
    fn default() -> Tally {
        Tally {
            completed: 0,
            bytes: 0,
            errors: 0,
            late: 0,
            // Three significant digits from 1 ns to a minute: about 200 KiB.
            latency: Histogram::new_with_bounds(1, MAX_LATENCY.as_nanos() as u64, 3)
                .expect("valid histogram bounds"),
            first_error: None,
        }
    }
}

impl Tally {
    /// Records one completion with its latency.
    pub fn record(&mut self, latency: Duration) {
        self.completed += 1;
        self.latency
            .saturating_record(latency.as_nanos().min(u128::from(u64::MAX)) as u64);
    }

    /// Counts a failed call.
    pub fn error(&mut self, error: &CallError) {
        self.error_message(|| error.to_string());
    }

    /// Counts a failure described by `message`.
    pub fn error_message(&mut self, message: impl FnOnce() -> String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(message());
        }
    }

    /// Adds another thread's tally to this one.
    pub fn merge(&mut self, other: &Tally) {
        self.completed += other.completed;
        self.bytes += other.bytes;
        self.errors += other.errors;
        self.late += other.late;
        self.latency
            .add(&other.latency)
            .expect("histograms with the same bounds");
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest.
    pub max_us: f64,
}

impl Latency {
    /// Percentiles of a histogram of nanoseconds; `None` when it is empty.
    pub fn of(histogram: &Histogram<u64>) -> Option<Latency> {
        if histogram.is_empty() {
            return None;
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Some(Latency {
            p50_us: us(histogram.value_at_quantile(0.5)),
            p90_us: us(histogram.value_at_quantile(0.9)),
            p99_us: us(histogram.value_at_quantile(0.99)),
            p999_us: us(histogram.value_at_quantile(0.999)),
            max_us: us(histogram.max()),
        })
    }
}

/// What a run's count counts, which names its JSON key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Calls (`"requests"`): unary, idle.
    Requests,
    /// Stream messages (`"messages"`): stream, pingpong (round trips), up.
    Messages,
}

/// The outcome of one scenario run.
#[derive(Debug, Clone)]
pub struct Report {
    /// Scenario name as given on the command line.
    pub scenario: &'static str,
    /// What `count` counts.
    pub unit: Unit,
    /// Calls or messages completed in the measured window.
    pub count: u64,
    /// Failed calls (non-OK grpc-status, resets, wrong replies, failed connections).
    pub errors: u64,
    /// Length of the measured window.
    pub seconds: f64,
    /// Payload bytes moved in the window, for throughput scenarios.
    pub bytes: Option<u64>,
    /// Latency percentiles, for latency scenarios.
    pub latency: Option<Latency>,
    /// Open-loop requests not sent at their intended time.
    pub late: u64,
    /// The first error, for diagnostics.
    pub first_error: Option<String>,
}

impl Report {
    /// Builds a report from the merged tally.
    pub fn new(
        scenario: &'static str,
        unit: Unit,
        tally: &Tally,
        seconds: f64,
        throughput: bool,
        latency: bool,
    ) -> Report {
        Report {
            scenario,
            unit,
            count: tally.completed,
            errors: tally.errors,
            seconds,
            bytes: throughput.then_some(tally.bytes),
            latency: if latency {
                Latency::of(&tally.latency)
            } else {
                None
            },
            late: tally.late,
            first_error: tally.first_error.clone(),
        }
    }

    /// Completions per second.
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.count as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// Payload megabytes (10^6 bytes) per second, for throughput scenarios.
    pub fn mb_per_s(&self) -> Option<f64> {
        let bytes = self.bytes?;
        Some(if self.seconds > 0.0 {
            bytes as f64 / self.seconds / 1e6
        } else {
            0.0
        })
    }

    /// Whether anything succeeded: a run where nothing did is a failed run.
    pub fn succeeded(&self) -> bool {
        self.count > 0
    }

    /// One JSON object, without a newline:
    /// `{"scenario":..,"requests"|"messages":..,"errors":..,"seconds":..,"rps":..,
    /// "mb_per_s":..|null,"p50_us":..|null,"p90_us","p99_us","p999_us","max_us","late":..}`.
    pub fn to_json(&self) -> String {
        fn number(out: &mut String, value: Option<f64>, decimals: usize) {
            match value {
                Some(v) if v.is_finite() => {
                    let _ = write!(out, "{v:.decimals$}");
                }
                _ => out.push_str("null"),
            }
        }
        let mut out = String::with_capacity(256);
        let count_key = match self.unit {
            Unit::Requests => "requests",
            Unit::Messages => "messages",
        };
        let _ = write!(
            out,
            "{{\"scenario\":\"{}\",\"{count_key}\":{},\"errors\":{},\"seconds\":",
            self.scenario, self.count, self.errors
        );
        number(&mut out, Some(self.seconds), 3);
        out.push_str(",\"rps\":");
        number(&mut out, Some(self.rate()), 1);
        out.push_str(",\"mb_per_s\":");
        number(&mut out, self.mb_per_s(), 2);
        let l = self.latency;
        for (key, value) in [
            ("p50_us", l.map(|l| l.p50_us)),
            ("p90_us", l.map(|l| l.p90_us)),
            ("p99_us", l.map(|l| l.p99_us)),
            ("p999_us", l.map(|l| l.p999_us)),
            ("max_us", l.map(|l| l.max_us)),
        ] {
            let _ = write!(out, ",\"{key}\":");
            number(&mut out, value, 1);
        }
        let _ = write!(out, ",\"late\":{}}}", self.late);
        out
    }

    /// One human-readable line, without a newline.
    pub fn to_human(&self) -> String {
        let mut out = String::with_capacity(160);
        let (noun, per) = match self.unit {
            Unit::Requests => ("requests", "req/s"),
            Unit::Messages => ("messages", "msg/s"),
        };
        let _ = write!(
            out,
            "{}: {} {noun} in {:.3} s, {} errors: {:.1} {per}",
            self.scenario,
            self.count,
            self.seconds,
            self.errors,
            self.rate()
        );
        if let Some(mb) = self.mb_per_s() {
            let _ = write!(out, ", {mb:.2} MB/s");
        }
        if let Some(l) = self.latency {
            let _ = write!(
                out,
                "; latency us p50 {:.1} p90 {:.1} p99 {:.1} p99.9 {:.1} max {:.1}",
                l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us
            );
        }
        if self.late > 0 {
            let _ = write!(out, "; {} late", self.late);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_every_key_in_order() {
        let mut tally = Tally::default();
        for us in 1..=1000u64 {
            tally.record(Duration::from_micros(us));
        }
        tally.late = 3;
        let report = Report::new("unary", Unit::Requests, &tally, 2.0, false, true);
        let json = report.to_json();
        assert!(
            json.starts_with(
                "{\"scenario\":\"unary\",\"requests\":1000,\"errors\":0,\"seconds\":2.000,\"rps\":500.0,\"mb_per_s\":null,\"p50_us\":"
            ),
            "{json}"
        );
        assert!(json.ends_with(",\"late\":3}"), "{json}");
        let keys = ["p50_us", "p90_us", "p99_us", "p999_us", "max_us"];
        let positions: Vec<usize> = keys
            .iter()
            .map(|k| json.find(&format!("\"{k}\":")).unwrap())
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]));
        let latency = report.latency.unwrap();
        assert!((499.0..=501.0).contains(&latency.p50_us), "{latency:?}");
        assert!((999.0..=1001.0).contains(&latency.max_us), "{latency:?}");
    }

    #[test]
    fn throughput_reports_have_mb_and_no_latency() {
        let tally = Tally {
            completed: 10,
            bytes: 3_000_000,
            ..Tally::default()
        };
        let report = Report::new("stream", Unit::Messages, &tally, 1.5, true, false);
        assert_eq!(
            report.to_json(),
            "{\"scenario\":\"stream\",\"messages\":10,\"errors\":0,\"seconds\":1.500,\"rps\":6.7,\"mb_per_s\":2.00,\"p50_us\":null,\"p90_us\":null,\"p99_us\":null,\"p999_us\":null,\"max_us\":null,\"late\":0}"
        );
        assert!(report.to_human().contains("2.00 MB/s"));
    }

    #[test]
    fn merge_adds_counts_and_histograms() {
        let mut a = Tally::default();
        a.record(Duration::from_micros(10));
        let mut b = Tally::default();
        b.record(Duration::from_micros(20));
        b.errors = 2;
        b.first_error = Some("x".into());
        a.merge(&b);
        assert_eq!(a.completed, 2);
        assert_eq!(a.errors, 2);
        assert_eq!(a.latency.len(), 2);
        assert_eq!(a.first_error.as_deref(), Some("x"));
    }
}
