//! Draws the results file of `perf/compare --out FILE` as SVG charts.
//!
//! `plot-results RESULTS.json --out-dir DIR`
//!
//! The results file holds `{"rows": [{"section", "server", "param", "metric",
//! "median", "values"}, ...]}`, one row per measured median. Writes, when the
//! file has the data for it:
//! - `latency-vs-load.svg`: p50, p99 and p99.9 latency of each server against
//!   the offered rate (section `latency`, metric `offered_rps` for x);
//! - `throughput-vs-size.svg`: server-streaming MB/s of each server against the
//!   message size (section `stream`, param = message bytes), with the loopback
//!   TCP ceiling (server `iperf3`) as a flat line;
//! - `unary-saturation.svg`: saturated unary req/s and CPU-µs per RPC per server.
//!
//! Only the SVG backend is used and text is laid out without font files, so
//! it runs on a machine with no fonts installed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::Value;

/// One median from the results file.
#[derive(Debug, Clone)]
struct Row {
    section: String,
    server: String,
    param: Option<f64>,
    metric: String,
    median: f64,
}

fn parse_rows(text: &str) -> Result<Vec<Row>, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let rows = doc
        .get("rows")
        .and_then(Value::as_array)
        .ok_or("no \"rows\" array")?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let text = |key: &str| row.get(key).and_then(Value::as_str).map(str::to_owned);
        // A row without a number (a run that was skipped) has nothing to draw.
        let Some(median) = row.get("median").and_then(Value::as_f64) else {
            continue;
        };
        out.push(Row {
            section: text("section").ok_or("a row has no section")?,
            server: text("server").ok_or("a row has no server")?,
            param: row.get("param").and_then(Value::as_f64),
            metric: text("metric").ok_or("a row has no metric")?,
            median,
        });
    }
    Ok(out)
}

/// The median of `metric` for (section, server, param), if measured.
fn lookup(
    rows: &[Row],
    section: &str,
    server: &str,
    param: Option<f64>,
    metric: &str,
) -> Option<f64> {
    rows.iter()
        .find(|r| {
            r.section == section && r.server == server && r.param == param && r.metric == metric
        })
        .map(|r| r.median)
}

/// Servers of a section in first-seen order, so colours follow the tables.
fn servers(rows: &[Row], section: &str) -> Vec<String> {
    let mut seen = Vec::new();
    for row in rows.iter().filter(|r| r.section == section) {
        if !seen.contains(&row.server) {
            seen.push(row.server.clone());
        }
    }
    seen
}

/// A fixed colour per position; Palette99 would do, but these stay tellable apart in print.
fn colour(index: usize) -> RGBColor {
    const COLOURS: [RGBColor; 10] = [
        RGBColor(0x1f, 0x77, 0xb4),
        RGBColor(0xd6, 0x27, 0x28),
        RGBColor(0x2c, 0xa0, 0x2c),
        RGBColor(0xff, 0x7f, 0x0e),
        RGBColor(0x94, 0x67, 0xbd),
        RGBColor(0x8c, 0x56, 0x4b),
        RGBColor(0xe3, 0x77, 0xc2),
        RGBColor(0x7f, 0x7f, 0x7f),
        RGBColor(0xbc, 0xbd, 0x22),
        RGBColor(0x17, 0xbe, 0xcf),
    ];
    COLOURS[index % COLOURS.len()]
}

type Series = Vec<(String, Vec<(f64, f64)>)>;

/// Bounds for a log axis: a little room either side, never ≤ 0.
fn log_bounds(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| *v > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    (lo.is_finite()).then(|| (lo / 1.5, hi * 1.5))
}

/// Caption and axis descriptions of one chart.
struct Labels<'a> {
    caption: &'a str,
    x: &'a str,
    y: &'a str,
    x_format: fn(f64) -> String,
}

fn draw_series<X, Y>(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    labels: Labels<'_>,
    x_range: X,
    y_range: Y,
    series: &Series,
    flat_lines: &[(String, f64)],
) -> Result<(), Box<dyn std::error::Error>>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(area)
        .caption(labels.caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range, y_range)?;
    chart
        .configure_mesh()
        .x_desc(labels.x)
        .y_desc(labels.y)
        // A log axis across several decades would otherwise label every 2..9 step.
        .x_labels(8)
        .y_labels(6)
        .light_line_style(BLACK.mix(0.04))
        .x_label_formatter(&|v| (labels.x_format)(*v))
        .y_label_formatter(&|v| format_number(*v))
        .draw()?;
    let (x_lo, x_hi) = {
        let xs = series.iter().flat_map(|(_, pts)| pts.iter().map(|p| p.0));
        xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(x), hi.max(x))
        })
    };
    for (index, (name, points)) in series.iter().enumerate() {
        let style = colour(index).stroke_width(2);
        chart
            .draw_series(LineSeries::new(points.iter().copied(), style))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart.draw_series(
            points
                .iter()
                .map(|p| Circle::new(*p, 3, colour(index).filled())),
        )?;
    }
    for (offset, (name, level)) in flat_lines.iter().enumerate() {
        if !x_lo.is_finite() {
            break;
        }
        let style = colour(series.len() + offset).stroke_width(2);
        chart
            .draw_series(DashedLineSeries::new(
                vec![(x_lo, *level), (x_hi, *level)],
                6,
                4,
                style,
            ))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    Ok(())
}

/// Bytes as B / KiB / MiB, the way message sizes are chosen.
fn format_bytes(v: f64) -> String {
    if v >= 1048576.0 {
        format!("{} MiB", v / 1048576.0)
    } else if v >= 1024.0 {
        format!("{} KiB", v / 1024.0)
    } else {
        format!("{v} B")
    }
}

fn format_number(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Latency percentiles against the offered rate: one panel per percentile.
fn plot_latency(rows: &[Row], path: &Path) -> Result<bool, Box<dyn std::error::Error>> {
    let names = servers(rows, "latency");
    let percentiles = [("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9")];
    let mut panels: Vec<(&str, Series)> = Vec::new();
    for (metric, label) in percentiles {
        let mut series = Series::new();
        for name in &names {
            let mut points: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| r.section == "latency" && &r.server == name && r.metric == metric)
                .filter_map(|r| {
                    let offered = lookup(rows, "latency", name, r.param, "offered_rps")?;
                    Some((offered, r.median))
                })
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            if !points.is_empty() {
                series.push((name.clone(), points));
            }
        }
        if !series.is_empty() {
            panels.push((label, series));
        }
    }
    if panels.is_empty() {
        return Ok(false);
    }
    let root = SVGBackend::new(path, (900, 330 * panels.len() as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    for (area, (label, series)) in root.split_evenly((panels.len(), 1)).iter().zip(&panels) {
        let xs = series.iter().flat_map(|(_, p)| p.iter().map(|q| q.0));
        let (x_lo, x_hi) = xs.fold((f64::INFINITY, 0.0f64), |(lo, hi), x| {
            (lo.min(x), hi.max(x))
        });
        let x_pad = ((x_hi - x_lo) * 0.05).max(1.0);
        let Some((y_lo, y_hi)) = log_bounds(series.iter().flat_map(|(_, p)| p.iter().map(|q| q.1)))
        else {
            continue;
        };
        draw_series(
            area,
            Labels {
                caption: &format!("unary {label} latency at a fixed offered rate (open loop)"),
                x: "offered load (req/s)",
                y: &format!("{label} (µs, log)"),
                x_format: format_number,
            },
            (x_lo - x_pad).max(0.0)..x_hi + x_pad,
            (y_lo..y_hi).log_scale(),
            series,
            &[],
        )?;
    }
    root.present()?;
    Ok(true)
}

/// Server-streaming MB/s against message size, with the TCP ceiling.
fn plot_throughput(rows: &[Row], path: &Path) -> Result<bool, Box<dyn std::error::Error>> {
    let mut series = Series::new();
    let mut flat = Vec::new();
    for name in servers(rows, "stream") {
        let mut points: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.section == "stream" && r.server == name && r.metric == "mb_per_s")
            .filter_map(|r| Some((r.param?, r.median)))
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        if !points.is_empty() {
            series.push((name.clone(), points));
        } else if let Some(level) = lookup(rows, "stream", &name, None, "mb_per_s") {
            flat.push((format!("{name} (TCP ceiling)"), level));
        }
    }
    if series.is_empty() {
        return Ok(false);
    }
    let (x_lo, x_hi) = log_bounds(series.iter().flat_map(|(_, p)| p.iter().map(|q| q.0)))
        .ok_or("no positive message size")?;
    // Ticks at the measured sizes: the log axis's own would land between them.
    let mut sizes: Vec<f64> = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.0))
        .collect();
    sizes.sort_by(f64::total_cmp);
    sizes.dedup();
    let y_hi = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.1))
        .chain(flat.iter().map(|f| f.1))
        .fold(0.0f64, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    draw_series(
        &root,
        Labels {
            caption: "server-streaming throughput vs message size",
            x: "message size (bytes, log)",
            y: "MB/s",
            x_format: format_bytes,
        },
        (x_lo..x_hi).log_scale().with_key_points(sizes),
        0.0..y_hi.max(1.0),
        &series,
        &flat,
    )?;
    root.present()?;
    Ok(true)
}

/// Saturated unary req/s and CPU-µs per RPC as horizontal bars, one per server.
fn plot_unary(rows: &[Row], path: &Path) -> Result<bool, Box<dyn std::error::Error>> {
    let names = servers(rows, "unary");
    let metrics = [
        ("rps", "req/s (saturated)"),
        ("cpu_us_per_rpc", "server CPU-µs per request"),
    ];
    let values: Vec<Vec<Option<f64>>> = metrics
        .iter()
        .map(|(m, _)| {
            names
                .iter()
                .map(|n| lookup(rows, "unary", n, None, m))
                .collect()
        })
        .collect();
    if values.iter().flatten().all(Option::is_none) {
        return Ok(false);
    }
    let height = 80 + 34 * names.len() as u32;
    let root = SVGBackend::new(path, (900, 2 * height)).into_drawing_area();
    root.fill(&WHITE)?;
    for (area, ((_, title), column)) in root
        .split_evenly((2, 1))
        .iter()
        .zip(metrics.iter().zip(&values))
    {
        let max = column
            .iter()
            .flatten()
            .fold(0.0f64, |a, b| a.max(*b))
            .max(1e-9)
            * 1.15;
        let mut chart = ChartBuilder::on(area)
            .caption(*title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(160)
            .build_cartesian_2d(0.0..max, (0..names.len()).into_segmented())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(names.len())
            .y_label_formatter(&|seg| match seg {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => names
                    .len()
                    .checked_sub(i + 1)
                    .and_then(|row| names.get(row))
                    .cloned()
                    .unwrap_or_default(),
                SegmentValue::Last => String::new(),
            })
            .x_label_formatter(&|v| format_number(*v))
            .draw()?;
        // Bars run bottom-up, so the first server goes in the top slot.
        let slot = |i: usize| names.len() - 1 - i;
        chart.draw_series(column.iter().enumerate().filter_map(|(i, v)| {
            let v = (*v)?;
            Some(Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(slot(i))),
                    (v, SegmentValue::Exact(slot(i) + 1)),
                ],
                colour(i).mix(0.8).filled(),
            ))
        }))?;
        chart.draw_series(column.iter().enumerate().filter_map(|(i, v)| {
            let v = (*v)?;
            Some(Text::new(
                format!(" {}", format_number(v)),
                (v, SegmentValue::CenterOf(slot(i))),
                ("sans-serif", 13),
            ))
        }))?;
    }
    root.present()?;
    Ok(true)
}

fn run(results: &Path, out_dir: &Path) -> Result<Vec<PathBuf>, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(results)?;
    let rows = parse_rows(&text)?;
    std::fs::create_dir_all(out_dir)?;
    let mut written = Vec::new();
    type Plot = fn(&[Row], &Path) -> Result<bool, Box<dyn std::error::Error>>;
    let plots: BTreeMap<&str, Plot> = [
        ("latency-vs-load.svg", plot_latency as Plot),
        ("throughput-vs-size.svg", plot_throughput as Plot),
        ("unary-saturation.svg", plot_unary as Plot),
    ]
    .into_iter()
    .collect();
    for (file, plot) in plots {
        let path = out_dir.join(file);
        if plot(&rows, &path)? {
            written.push(path);
        }
    }
    Ok(written)
}

fn main() -> ExitCode {
    let mut results = None;
    let mut out_dir = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--out-dir" => out_dir = args.next(),
            _ if results.is_none() && !arg.starts_with('-') => results = Some(arg),
            _ => {
                results = None;
                break;
            }
        }
    }
    let (Some(results), Some(out_dir)) = (results, out_dir) else {
        eprintln!("usage: plot-results RESULTS.json --out-dir DIR");
        return ExitCode::from(2);
    };
    match run(Path::new(&results), Path::new(&out_dir)) {
        Ok(written) if written.is_empty() => {
            eprintln!("plot-results: nothing to plot in {results}");
            ExitCode::FAILURE
        }
        Ok(written) => {
            for path in written {
                println!("wrote {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("plot-results: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{"rows": [
        {"section": "latency", "server": "tonic", "param": 50, "metric": "offered_rps", "median": 5000, "values": [5000]},
        {"section": "latency", "server": "tonic", "param": 50, "metric": "p99_us", "median": 900, "values": [900]},
        {"section": "latency", "server": "tonic", "param": 25, "metric": "offered_rps", "median": 2500, "values": [2500]},
        {"section": "latency", "server": "tonic", "param": 25, "metric": "p99_us", "median": 400, "values": [400]},
        {"section": "stream", "server": "iperf3", "param": null, "metric": "mb_per_s", "median": 4000, "values": [4000]},
        {"section": "stream", "server": "tonic", "param": 1024, "metric": "mb_per_s", "median": 300, "values": [300]},
        {"section": "stream", "server": "tonic", "param": 65536, "metric": "mb_per_s", "median": 1500, "values": [1500]},
        {"section": "unary", "server": "tonic", "param": null, "metric": "rps", "median": 10000, "values": [10000]},
        {"section": "unary", "server": "h2o", "param": null, "metric": "syscalls_per_rpc", "median": null, "values": []}
    ]}"#;

    #[test]
    fn rows_without_a_median_are_dropped() {
        let rows = parse_rows(SAMPLE).unwrap();
        assert_eq!(rows.len(), 8);
        assert_eq!(
            lookup(&rows, "stream", "tonic", Some(1024.0), "mb_per_s"),
            Some(300.0)
        );
        assert_eq!(
            lookup(&rows, "stream", "iperf3", None, "mb_per_s"),
            Some(4000.0)
        );
    }

    #[test]
    fn writes_every_chart_with_its_data() {
        let dir = std::env::temp_dir().join(format!("plot-results-test-{}", std::process::id()));
        let input = dir.join("results.json");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&input, SAMPLE).unwrap();
        let written = run(&input, &dir).unwrap();
        assert_eq!(written.len(), 3, "{written:?}");
        let latency = std::fs::read_to_string(dir.join("latency-vs-load.svg")).unwrap();
        assert!(latency.contains("<svg") && latency.contains("tonic"));
        let throughput = std::fs::read_to_string(dir.join("throughput-vs-size.svg")).unwrap();
        assert!(throughput.contains("iperf3 (TCP ceiling)"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rejects_a_file_without_rows() {
        assert!(parse_rows("{}").is_err());
        assert!(parse_rows("not json").is_err());
    }
}
