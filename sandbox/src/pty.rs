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

/// The receiving end of an OCI console socket (runc's `--console-socket`
/// protocol): one message carrying the pty master as SCM_RIGHTS. For
/// callers that start containers with a terminal (an engine's shim, the
/// tests).
pub fn recv_master(sock: BorrowedFd<'_>) -> Result<std::os::fd::OwnedFd, Errno> {
    let mut buf = [0u8; 4096];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let (_, fds) = crate::sys::recv_with_fds(sock, &mut buf, &mut cmsg)?;
    fds.into_iter().next().ok_or(Errno::EBADMSG)
}
