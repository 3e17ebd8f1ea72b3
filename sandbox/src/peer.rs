//! Credentials of a Unix socket's peer as the kernel recorded them at
//! connect(2): what the daemon's socket authorises by.

use std::os::fd::BorrowedFd;

use nix::errno::Errno;

/// The peer's supplementary groups (`SO_PEERGROUPS`, Linux 4.13), the
/// companion of `SO_PEERCRED`'s uid and gid. They cannot change afterwards
/// nor be answered by another process reusing the pid.
pub fn peer_groups(sock: BorrowedFd<'_>) -> Result<Vec<u32>, Errno> {
    crate::sys::peer_groups(sock)
}
