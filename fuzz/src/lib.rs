//! The fuzz targets' bodies and the invariants they assert, as a library so
//! that the same code runs under libFuzzer (`fuzz_targets/`, through
//! `cargo fuzz`) and as plain tests that replay the seed corpus and every
//! input a fuzzer ever found (`tests/`, `cargo test`).
//!
//! Each `check_*` takes the raw fuzz input and panics when an invariant is
//! broken; "no panic" alone is never the whole check: an unpack leaves
//! nothing outside its directory and no setuid file or device, an import
//! leaves a store whose every blob verifies and whose names all resolve, a
//! parse either fails or yields a value that survives a round trip.

#![forbid(unsafe_code)]

pub mod framing;
pub mod import;
pub mod manifest;
pub mod reference;
pub mod unpack;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// A scratch directory for one input, removed on drop. On tmpfs
/// (`/dev/shm`) when there is one: the store fsyncs what it writes.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static N: AtomicU64 = AtomicU64::new(0);
        let base = std::env::var_os("FUZZ_SCRATCH")
            .map(PathBuf::from)
            .or_else(|| {
                let shm = PathBuf::from("/dev/shm");
                shm.is_dir().then_some(shm)
            })
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!(
            "runtimed-fuzz-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a scratch directory");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // std's remove_dir_all does not follow symlinks.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
