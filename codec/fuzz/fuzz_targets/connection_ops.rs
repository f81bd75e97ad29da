#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../harness.rs"]
mod harness;

/// Checks of known open bugs stay off unless named in FUZZ_STRICT (see harness::Strict).
fn strict() -> harness::Strict {
    static STRICT: OnceLock<harness::Strict> = OnceLock::new();
    *STRICT
        .get_or_init(|| harness::Strict::parse(&std::env::var("FUZZ_STRICT").unwrap_or_default()))
}

fuzz_target!(|data: &[u8]| harness::connection_ops_with(data, strict()));
