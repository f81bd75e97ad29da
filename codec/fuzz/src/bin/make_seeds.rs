//! Writes the seed inputs defined in `harness.rs` to `seeds/<target>/<name>`, and the
//! constructed regression inputs to `regressions/<target>/<name>`.
//!
//! Run from anywhere: `cargo run --manifest-path codec/fuzz/Cargo.toml --bin make_seeds`.

use std::path::Path;

#[allow(dead_code)]
#[path = "../../harness.rs"]
mod harness;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let seeds = harness::seeds().into_iter().map(|s| ("seeds", s));
    let regressions = harness::constructed_regressions()
        .into_iter()
        .map(|r| ("regressions", r));
    for (kind, (target, name, bytes)) in seeds.chain(regressions) {
        let dir = root.join(kind).join(target);
        std::fs::create_dir_all(&dir).expect("create the seed directory");
        std::fs::write(dir.join(name), &bytes).expect("write a seed");
        println!("{kind}/{target}/{name}: {} bytes", bytes.len());
    }
}
