//! Signals and children of the processes around a sandbox (the CLI's
//! supervisor, the zygote, a helper): masks, SIG_DFL/SIG_IGN dispositions,
//! signals through pidfds, reaping with resource usage.

use std::os::fd::BorrowedFd;

use nix::errno::Errno;
use nix::sys::signal::{SigAction, SigSet, SigmaskHow, Signal};

pub use crate::sys::Reaped;

/// Sets the signal mask of the calling thread.
pub fn set_sigmask(how: SigmaskHow, set: &SigSet) -> Result<(), Errno> {
    crate::sys::set_sigmask(how, set)
}

/// Installs `action` for `sig`: SIG_DFL or SIG_IGN only (a handler is
/// EINVAL: no Rust code runs in a signal context).
pub fn set_default_signal(sig: Signal, action: &SigAction) -> Result<(), Errno> {
    crate::sys::set_default_signal(sig, action)
}

/// `pidfd_open(2)`: an fd naming process `pid` from now on, so a signal
/// sent through it never reaches a later process that reuses the number.
pub fn pidfd_open(pid: i32) -> Result<std::os::fd::OwnedFd, Errno> {
    crate::sys::pidfd_open(pid)
}

/// `pidfd_send_signal(2)`; signal 0 checks that the process still exists.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> Result<(), Errno> {
    crate::sys::pidfd_send_signal(pidfd, sig)
}

/// `wait4(-1, WNOHANG)`: `Ok(None)` when no child has ended (or none is
/// left).
pub fn reap_any() -> Result<Option<Reaped>, Errno> {
    crate::sys::reap_any()
}
