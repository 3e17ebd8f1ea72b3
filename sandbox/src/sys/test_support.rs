//! The unit tests' ways to fork and make raw system calls from libtest's
//! threads, compiled only for `cargo test` of this crate.
//!
//! libtest runs tests on threads, so no [`SingleThreaded`] token exists
//! there. These children run short test code and `_exit`; glibc's fork
//! resets its own locks (malloc's included) in the child, and a test that
//! deadlocked on another lock would hang, not corrupt memory. That is a
//! weaker argument than a token, which is why none of this is reachable
//! outside the crate's tests.
//!
//! [`SingleThreaded`]: crate::helper::SingleThreaded

use std::os::fd::BorrowedFd;

use nix::errno::Errno;

use super::CloneResult;

/// `fork(2)`; `Ok(None)` in the child.
pub fn fork() -> Result<Option<i32>, Errno> {
    // SAFETY: test-only; the children run short test code and `_exit`
    // (module doc).
    unsafe { super::fork() }
}

/// Runs `f` in a forked child; its wait status.
pub fn run_in_child(f: impl FnOnce() -> i32) -> Result<nix::sys::wait::WaitStatus, Errno> {
    match fork()? {
        None => super::exit_now(f()),
        Some(pid) => nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None),
    }
}

/// [`super::raw_syscall3`] for the seccomp tests: each call site passes
/// integers, NULL or pointers to live locals, and runs in a forked child
/// under the filter being tested.
pub fn raw_syscall3(nr: libc::c_long, a: usize, b: usize, c: usize) -> (libc::c_long, Errno) {
    // SAFETY: test-only, arguments as described above.
    unsafe { super::raw_syscall3(nr, a, b, c) }
}

/// [`super::clone3`] for the cgroup tests (CLONE_INTO_CGROUP, no other
/// flag), from a test thread.
pub fn clone3(flags: u64, cgroup: Option<BorrowedFd<'_>>) -> Result<CloneResult, Errno> {
    // SAFETY: test-only; no flag shares memory (only 0 is passed by the
    // tests) and the child `_exit`s at once (module doc).
    unsafe { super::clone3(flags, false, cgroup) }
}
