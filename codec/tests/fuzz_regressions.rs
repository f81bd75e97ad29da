//! Replays the fuzz targets' committed inputs as ordinary tests.
//!
//! Every file under `fuzz/seeds/<target>/` and `fuzz/regressions/<target>/` runs
//! through the same harness as the libFuzzer target of that name (`fuzz/harness.rs`
//! is compiled into both), so a crash once found and saved stays fixed without
//! nightly or libFuzzer. An input that still fails is listed in [`OPEN`] (a panic in
//! the codec) or needs a `harness::Strict` check the targets leave off (a broken
//! protocol property); either way it has its own ignored test below, the one to run
//! while fixing it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

#[path = "../fuzz/harness.rs"]
mod harness;

/// `<target>/<file>` of regression inputs that still fail, skipped by the sweeps.
const OPEN: &[&str] = &[];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files(kind: &str, target: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(fuzz_dir().join(kind).join(target)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str, check: fn(&[u8])) {
    let seeds = files("seeds", target);
    assert!(
        !seeds.is_empty(),
        "no seeds for {target}: run the make_seeds binary of the fuzz crate"
    );
    let mut failed = Vec::new();
    for path in seeds.iter().chain(&files("regressions", target)) {
        let name = format!("{target}/{}", path.file_name().unwrap().to_string_lossy());
        if OPEN.contains(&name.as_str()) {
            continue;
        }
        let bytes = std::fs::read(path).expect("readable input");
        if catch_unwind(AssertUnwindSafe(|| check(&bytes))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(failed.is_empty(), "inputs failing {target}: {failed:#?}");
}

fn regression(target: &str, name: &str) -> Vec<u8> {
    std::fs::read(fuzz_dir().join("regressions").join(target).join(name))
        .expect("regression input present")
}

#[test]
fn frame_parser_inputs() {
    replay("frame_parser", harness::frame_parser);
}

#[test]
fn hpack_decoder_inputs() {
    replay("hpack_decoder", harness::hpack_decoder);
}

#[test]
fn grpc_message_inputs() {
    replay("grpc_message", harness::grpc_message);
}

#[test]
fn connection_bytes_inputs() {
    replay("connection_bytes", harness::connection_bytes);
}

#[test]
fn connection_ops_inputs() {
    replay("connection_ops", harness::connection_ops);
}

/// The committed seed files are the ones `harness::seeds` defines, so a change to an
/// input format cannot leave stale seeds that no longer mean what they were made for.
#[test]
fn seed_files_match_their_definitions() {
    for (target, name, bytes) in harness::seeds() {
        let path = fuzz_dir().join("seeds").join(target).join(name);
        let on_disk = std::fs::read(&path)
            .unwrap_or_else(|_| panic!("{} missing: run make_seeds", path.display()));
        assert!(
            on_disk == bytes,
            "{} is stale: run make_seeds",
            path.display()
        );
    }
}

/// The committed constructed regression inputs are the ones the harness defines.
#[test]
fn constructed_regression_files_match_their_definitions() {
    for (target, name, bytes) in harness::constructed_regressions() {
        assert!(
            regression(target, name) == bytes,
            "regressions/{target}/{name} is stale: run make_seeds"
        );
    }
}

/// RFC 9113 §6.8: "Endpoints MUST NOT increase the value they send in the last stream
/// identifier". After a graceful shutdown announced stream 1 as the last, the client
/// opens stream 3 (ignored, as it should be), and a connection error then sends
/// GOAWAY with last stream id 3.
#[test]

fn goaway_last_stream_id_never_increases() {
    let strict = harness::Strict::parse("goaway_never_increases");
    harness::connection_ops_with(
        &regression("connection_ops", "goaway_last_stream_id_increases"),
        strict,
    );
}

/// The codec resets a stream at most once, so the engine hears of it once. Here the
/// client's second HEADERS on a half-closed stream is answered with a stream error
/// (STREAM_CLOSED) and a PRIORITY frame making the stream depend on itself with
/// another (PROTOCOL_ERROR): each goes through `stream_error` to `close_stream`,
/// which pushes `Event::Reset` again for a stream already reset.
#[test]

fn reset_is_reported_once() {
    harness::connection_ops_with(
        &regression("connection_ops", "reset_event_twice"),
        harness::Strict::parse("reset_reported_once"),
    );
}

/// RFC 9113 §6.4: "RST_STREAM frames MUST NOT be sent for a stream in the idle state."
/// A PRIORITY frame making idle stream 1 depend on itself is answered with
/// RST_STREAM(1, PROTOCOL_ERROR); the client then opens stream 1 and the server
/// serves it, after the client was told it was reset.
#[test]

fn nothing_follows_a_reset_of_an_idle_stream() {
    let input = regression("connection_ops", "reset_idle_stream_then_serve_it");
    harness::connection_ops_with(&input, harness::Strict::parse("nothing_after_early_reset"));
}

/// Metadata handed to `send_headers` goes out as is: a handler's `:method` entry
/// becomes a request pseudo-header after `content-type` in the response, which RFC
/// 9113 §8.3 makes malformed. Likewise upper-case names, `connection`, values with
/// NUL or leading spaces, or a second `grpc-status`.
#[test]

fn unchecked_metadata_never_makes_a_malformed_response() {
    let input = regression("connection_ops", "metadata_pseudo_header_written");
    harness::connection_ops_with(&input, harness::Strict::parse("metadata_checked_by_codec"));
}

/// RFC 9113 §8.2.1: a field value must not start or end with whitespace, and strict
/// HTTP/2 implementations reject the response. gRPC's percent-encoding leaves spaces
/// as they are, so a status message " " becomes `grpc-message: " "`; encoding a
/// leading or trailing space as %20 keeps the message and makes the field valid.
#[test]

fn status_message_spaces_are_encoded() {
    let input = regression("connection_ops", "status_message_space_sent_raw");
    harness::connection_ops_with(
        &input,
        harness::Strict::parse("status_message_spaces_encoded"),
    );
}

/// Operations survive writing and reading back, so seeds say what they were built as.
#[test]
fn ops_round_trip_through_their_encoding() {
    for (target, name, bytes) in harness::seeds() {
        if target != "connection_ops" {
            continue;
        }
        let mut input = harness::Input::new(&bytes[1..]);
        let mut ops = Vec::new();
        while !input.is_empty() {
            ops.push(harness::Op::read(&mut input));
        }
        assert_eq!(harness::ops_input(bytes[0], &ops), bytes, "{name}");
    }
}
