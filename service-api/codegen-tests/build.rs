use std::io;
use std::path::PathBuf;

use ringrpc_service_api::codegen;

fn main() -> io::Result<()> {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));

    // The one-line entry point.
    codegen::compile_protos(&["proto/helloworld.proto"], &["proto"])?;

    // The awkward cases, with the descriptor set kept for reflection.
    codegen::configure()
        .bytes([".blobs"])
        .file_descriptor_set_path(out_dir.join("descriptors.bin"))
        .compile(
            &[
                "proto/pkg_a.proto",
                "proto/pkg_b.proto",
                "proto/kinds.proto",
                "proto/keywords.proto",
                "proto/nopackage.proto",
                "proto/empty.proto",
                "proto/collide.proto",
                "proto/blobs.proto",
            ],
            &["proto"],
        )?;

    // Messages only.
    codegen::configure()
        .build_server(false)
        .out_dir(out_dir.join("messages_only"))
        .compile(&["proto/helloworld.proto"], &["proto"])?;

    // Types of another package taken from elsewhere in the crate.
    codegen::configure()
        .extern_path(".pkg_a", "crate::pkg_a")
        .out_dir(out_dir.join("extern"))
        .compile(&["proto/ext_user.proto"], &["proto"])?;

    // `google.protobuf.Empty` generated as a message of our own.
    codegen::configure()
        .compile_well_known_types()
        .out_dir(out_dir.join("wkt"))
        .compile(&["proto/empty.proto"], &["proto"])?;

    Ok(())
}
