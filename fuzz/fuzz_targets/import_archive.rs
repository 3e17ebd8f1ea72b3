//! libFuzzer entry point; the body and its invariants are
//! `runtimed_fuzz::import::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| runtimed_fuzz::import::check(data));
