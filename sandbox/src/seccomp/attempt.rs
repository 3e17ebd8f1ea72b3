//! Attempts of system calls the confined profiles deny, with fixed,
//! harmless arguments: how the in-sandbox probe shows a filter at work
//! (`ok` only if the attack worked). Kept beside the policy they test.

#[cfg(target_arch = "x86_64")]
pub use crate::sys::attempt::setrlimit_core_zero_legacy;
pub use crate::sys::attempt::{
    add_key, bpf_map_create, clone3, clone_with_namespace_flags, io_uring_setup,
    keyctl_session_keyring, perf_event_open_self, personality, ptrace_attach, ptrace_traceme,
    userfaultfd,
};
