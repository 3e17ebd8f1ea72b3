//! Terminal window sizes: what the CLI reads from its terminal and the
//! daemon sets on a sandbox's pty master (the pty itself is opened by the
//! sandbox's PID 1, see `process::init`).

use std::os::fd::{AsFd, BorrowedFd};

use nix::errno::Errno;

pub use crate::sys::WinSize;

/// `TIOCSWINSZ` on a pty master or slave.
pub fn set_winsize(fd: BorrowedFd<'_>, size: WinSize) -> Result<(), Errno> {
    crate::sys::set_winsize(fd, size)
}

/// `TIOCGWINSZ`.
pub fn get_winsize(fd: BorrowedFd<'_>) -> Result<WinSize, Errno> {
    crate::sys::get_winsize(fd)
}

/// The window size of this process's standard input, when it is a
/// terminal.
pub fn stdin_winsize() -> Result<WinSize, Errno> {
    get_winsize(std::io::stdin().as_fd())
}
