//! The codec is sans-IO: no sockets, files, threads or clock reads, and no dependency
//! that brings them. The engine owns all of that; keeping it out of the codec is what
//! lets every protocol test run in memory on a simulated clock.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Crates that only exist to do I/O or talk to the OS.
const IO_CRATES: &[&str] = &[
    "tokio",
    "mio",
    "libc",
    "io-uring",
    "tokio-uring",
    "socket2",
    "nix",
];

/// What the codec's own code must not use. `Instant` as a type is fine (time comes in
/// as an argument); reading the clock is not.
const FORBIDDEN: &[&str] = &[
    "std::net",
    "std::fs",
    "std::thread",
    "Instant::now",
    "SystemTime",
];

fn codec_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn workspace_manifest() -> PathBuf {
    codec_dir()
        .parent()
        .expect("the codec sits in the workspace")
        .join("Cargo.toml")
}

#[test]
fn no_io_crate_among_normal_dependencies() {
    let output = Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            "ringrpc-codec",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--manifest-path",
        ])
        .arg(workspace_manifest())
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8(output.stdout).expect("UTF-8 output");
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert!(
        crates.contains(&"ringrpc-codec") && crates.contains(&"bytes"),
        "unexpected cargo tree output:\n{tree}"
    );
    for name in IO_CRATES {
        assert!(
            !crates.contains(name),
            "{name} is a normal dependency of the codec:\n{tree}"
        );
    }
}

/// Rust files under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source directory") {
        let path = entry.expect("readable entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn sources_do_no_io_and_read_no_clock() {
    let mut files = Vec::new();
    rust_files(&codec_dir().join("src"), &mut files);
    assert!(files.len() > 10, "found only {files:?}");
    let mut found = Vec::new();
    for path in &files {
        // Unit tests may read the clock to make up times; they are not part of the codec.
        if path.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(path).expect("readable source");
        let shipped = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (n, line) in shipped.lines().enumerate() {
            for word in FORBIDDEN {
                if line.contains(word) {
                    found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "the codec does I/O or reads the clock:\n{}",
        found.join("\n")
    );
}

/// A target without an operating system is the strongest proof: anything reaching
/// for sockets, files or threads fails to build there. The wasm32-unknown-unknown
/// standard library cannot be installed on every machine that runs these tests (it
/// comes from rustup's servers, not from a package registry), so the build runs
/// only where `rustup target list --installed` shows it; elsewhere the two tests
/// above stand in for it.
#[test]
fn builds_for_wasm32_where_the_target_is_installed() {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    let Ok(installed) = installed else {
        eprintln!("rustup not found: wasm32 build skipped");
        return;
    };
    if !String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|t| t.trim() == "wasm32-unknown-unknown")
    {
        eprintln!("wasm32-unknown-unknown not installed: wasm32 build skipped");
        return;
    }
    let target_dir = codec_dir()
        .parent()
        .expect("workspace")
        .join("target")
        .join("no-io-wasm32");
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "-p",
            "ringrpc-codec",
            "--lib",
            "--target",
            "wasm32-unknown-unknown",
            "--manifest-path",
        ])
        .arg(workspace_manifest())
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .expect("cargo runs");
    assert!(
        status.success(),
        "the codec does not build for wasm32-unknown-unknown"
    );
}
