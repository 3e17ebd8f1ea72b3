//! libFuzzer entry point; the body and its invariants are
//! `runtimed_fuzz::reference::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| runtimed_fuzz::reference::check(data));
