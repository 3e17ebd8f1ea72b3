//! The parent ↔ child channel: a SOCK_SEQPACKET socketpair (one message per
//! send, no framing needed) carrying small JSON messages and, for the PTY
//! master, an fd via SCM_RIGHTS. Child failures travel here as data
//! `{step, errno, message}`, never as log lines from inside.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use serde::{Deserialize, Serialize};

/// Messages from the sandbox's PID 1 (or the program before exec) to the
/// supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChildMessage {
    /// A setup step failed; the child exits after sending this.
    StepFailed {
        step: String,
        errno: Option<i32>,
        message: String,
    },
    /// The PTY master travels with this message (SCM_RIGHTS).
    PtyMaster,
    /// Setup is done and the program was forked (pid inside the sandbox).
    Started { pid: i32 },
    /// The program ended.
    Exited {
        code: Option<i32>,
        signal: Option<i32>,
    },
}

/// Messages from the supervisor to the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParentMessage {
    /// Id maps written: go on with setup.
    Go,
}

/// One end of the channel.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

/// A message's bytes and the fd that came with it, if any.
type Received = (Vec<u8>, Option<OwnedFd>);

/// Largest message we send (a step failure with a path fits easily).
const MAX_MSG: usize = 4096;

impl Channel {
    /// A connected pair (both ends close-on-exec).
    pub fn pair() -> Result<(Channel, Channel), Errno> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        Ok((Channel { fd: a }, Channel { fd: b }))
    }

    /// Whether the other end is closed (its process is gone).
    pub fn hung_up(&self) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::empty())];
        matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
            && fds[0]
                .revents()
                .is_some_and(|r| r.contains(PollFlags::POLLHUP))
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn send_bytes(&self, bytes: &[u8], fd: Option<RawFd>) -> Result<(), Errno> {
        let iov = [IoSlice::new(bytes)];
        let fds;
        let cmsgs: &[ControlMessage] = match fd {
            Some(f) => {
                fds = [f];
                &[ControlMessage::ScmRights(&fds)]
            }
            None => &[],
        };
        loop {
            match sendmsg::<()>(
                self.fd.as_raw_fd(),
                &iov,
                cmsgs,
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
                Ok(_) => return Ok(()),
            }
        }
    }

    pub fn send_child(&self, msg: &ChildMessage, fd: Option<BorrowedFd<'_>>) -> Result<(), Errno> {
        let mut bytes = serde_json::to_vec(msg).map_err(|_| Errno::EINVAL)?;
        bytes.truncate(MAX_MSG);
        self.send_bytes(&bytes, fd.map(|f| f.as_raw_fd()))
    }

    pub fn send_parent(&self, msg: ParentMessage) -> Result<(), Errno> {
        let bytes = serde_json::to_vec(&msg).map_err(|_| Errno::EINVAL)?;
        self.send_bytes(&bytes, None)
    }

    /// Receives one message; `Ok(None)` on EOF (the other end is gone).
    fn recv_bytes(&self) -> Result<Option<Received>, Errno> {
        let mut buf = vec![0u8; MAX_MSG];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let r = recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC,
            );
            match r {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
                Ok(msg) => {
                    let n = msg.bytes;
                    let mut fd = None;
                    for c in msg.cmsgs()? {
                        if let ControlMessageOwned::ScmRights(fds) = c {
                            for f in fds {
                                // Ownership of a received raw fd is taken in sys.
                                let owned = crate::sys::own_received_fd(f);
                                if fd.is_none() {
                                    fd = Some(owned);
                                }
                            }
                        }
                    }
                    if n == 0 {
                        return Ok(None);
                    }
                    buf.truncate(n);
                    return Ok(Some((buf, fd)));
                }
            }
        }
    }

    pub fn recv_child(&self) -> Result<Option<(ChildMessage, Option<OwnedFd>)>, Errno> {
        match self.recv_bytes()? {
            None => Ok(None),
            Some((b, fd)) => {
                let m = serde_json::from_slice(&b).map_err(|_| Errno::EBADMSG)?;
                Ok(Some((m, fd)))
            }
        }
    }

    pub fn recv_parent(&self) -> Result<Option<ParentMessage>, Errno> {
        match self.recv_bytes()? {
            None => Ok(None),
            Some((b, _)) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|_| Errno::EBADMSG),
        }
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
