//! How fast `rep movsb` copies 16 KiB as a function of where the destination
//! lies relative to the source, modulo 4 KiB.
//!
//! `copy-distance` (x86_64 only; pin it to a core, e.g. `taskset -c 0`)
//!
//! glibc's `memcpy` and the kernel's copies to and from user memory use
//! `rep movsb` for large copies on CPUs with ERMS/FSRM. On some of them it
//! slows down sharply when the destination is a few bytes past the source
//! modulo 4 KiB; this prints GB/s for a grid of source offsets and distances,
//! which is how perf/RESULTS.md's figures for that were taken.

#[cfg(target_arch = "x86_64")]
fn main() {
    use std::time::Instant;

    const LEN: usize = 16 * 1024;
    const ROUNDS: usize = 20_000;
    const SOURCE_OFFSETS: [usize; 7] = [0, 4, 8, 32, 68, 100, 2048];
    const DISTANCES: [usize; 18] = [
        0, 1, 4, 8, 9, 14, 16, 17, 32, 63, 64, 65, 100, 128, 512, 2048, 4000, 4090,
    ];

    /// Storage written once so every page is mapped, and the index of its
    /// first page-aligned byte.
    fn buffer() -> (Vec<u8>, usize) {
        let v = vec![1u8; 64 * 1024 + 4096];
        let aligned = v.as_ptr().align_offset(4096);
        (v, aligned)
    }

    fn rep_movsb(dst: *mut u8, src: *const u8, len: usize) {
        // Safety: the caller passes ranges inside live, non-overlapping buffers.
        unsafe {
            std::arch::asm!(
                "rep movsb",
                inout("rdi") dst => _,
                inout("rsi") src => _,
                inout("rcx") len => _,
                options(nostack, preserves_flags)
            );
        }
    }

    let (src, src_page) = buffer();
    let (mut dst, dst_page) = buffer();
    print!("{:>12}", "src \\ dst-src");
    for d in DISTANCES {
        print!("{d:>6}");
    }
    println!("   (GB/s)");
    for s in SOURCE_OFFSETS {
        print!("{s:>12}");
        for d in DISTANCES {
            let at = (s + d) % 4096;
            // 8 KiB in, so the copy never starts on a buffer's first page.
            let from = src[src_page + 8192 + s..].as_ptr();
            let to = dst[dst_page + 8192 + at..].as_mut_ptr();
            let start = Instant::now();
            for _ in 0..ROUNDS {
                rep_movsb(to, from, LEN);
            }
            let seconds = start.elapsed().as_secs_f64();
            print!("{:>6.0}", (LEN * ROUNDS) as f64 / seconds / 1e9);
        }
        println!();
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    eprintln!("copy-distance measures x86's rep movsb: nothing to do on this architecture");
}
