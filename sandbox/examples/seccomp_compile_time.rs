//! Prints how long `sandbox::seccomp::compile` takes: the first call in a
//! fresh process (what a one-shot `runtimed run` pays) and a cached call
//! (what the daemon pays per sandbox). Figures go to `docs/seccomp.md`.
//!
//! `cargo run --release -p sandbox --example seccomp_compile_time`
#![forbid(unsafe_code)]

use std::time::Instant;

use sandbox::seccomp::{compile, SeccompProfile};

fn main() -> Result<(), sandbox::seccomp::SeccompError> {
    for profile in [SeccompProfile::Default, SeccompProfile::Judge] {
        let start = Instant::now();
        let filter = compile(profile)?;
        let cold = start.elapsed();

        const CACHED_RUNS: u32 = 1000;
        let start = Instant::now();
        for _ in 0..CACHED_RUNS {
            std::hint::black_box(compile(profile)?);
        }
        let cached = start.elapsed() / CACHED_RUNS;

        let instructions = filter.map_or(0, |f| f.instructions());
        println!(
            "{profile}: first compile {} us, cached {} ns, {instructions} BPF instructions",
            cold.as_micros(),
            cached.as_nanos()
        );
    }
    Ok(())
}
