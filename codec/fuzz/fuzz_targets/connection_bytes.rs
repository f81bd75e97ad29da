#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../harness.rs"]
mod harness;

/// Every check is on unless FUZZ_STRICT names the ones to keep (see harness::Strict).
fn strict() -> harness::Strict {
    static STRICT: OnceLock<harness::Strict> = OnceLock::new();
    *STRICT
        .get_or_init(|| std::env::var("FUZZ_STRICT").map_or(harness::Strict::ALL, |v| harness::Strict::parse(&v)))
}

fuzz_target!(|data: &[u8]| harness::connection_bytes_with(data, strict()));
