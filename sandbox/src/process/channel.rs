//! The parent ↔ child channel: a SOCK_SEQPACKET socketpair (one message per
//! send, no framing needed) carrying small JSON messages and, for the PTY
//! master, an fd via SCM_RIGHTS. Child failures travel here as data
//! `{step, errno, message}`, never as log lines from inside.
//!
//! In session mode (`RunOptions::session`) the channel stays open for the
//! sandbox's life: the daemon asks PID 1 to spawn processes inside
//! ([`ParentMessage::Spawn`], the process's stdio fds attached) and PID 1
//! reports their start and end, and copies the bytes of files the daemon
//! writes into the session ([`ParentMessage::WriteFiles`]). The same
//! framing serves the daemon's control socket to its `sandbox-host`
//! helpers ([`Channel::send_json`]).

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    sendmsg, socketpair, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType,
};
use serde::de::DeserializeOwned;
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
    /// `start_ns`: CLOCK_MONOTONIC when the program had exec'd (the wall
    /// clock of the run starts there, not when this message arrives).
    Started { pid: i32, start_ns: u64 },
    /// The program ended.
    Exited {
        code: Option<i32>,
        signal: Option<i32>,
    },
    /// Session mode: setup is done, PID 1 waits for spawn requests.
    Ready,
    /// A spawned process runs (host-invisible pid inside the sandbox); in
    /// terminal mode its pty master travels with this message.
    Spawned { id: u64, pid: i32 },
    /// A spawn request failed before or at exec (`step` as in the program
    /// steps; `exec` with ENOENT: not found).
    SpawnFailed {
        id: u64,
        step: String,
        errno: Option<i32>,
        message: String,
    },
    /// A [`ParentMessage::WriteFiles`] request is over.
    Written { id: u64, outcome: WriteOutcome },
    /// A spawned process ended; rusage of it and its reaped descendants.
    ProcessExited {
        id: u64,
        code: Option<i32>,
        signal: Option<i32>,
        cpu_user_us: u64,
        cpu_system_us: u64,
        max_rss_kb: u64,
    },
}

/// How a [`ParentMessage::WriteFiles`] request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteOutcome {
    /// Every file got all of its bytes.
    Done,
    /// The writer stopped at this errno (ENOSPC, ENOMEM, EFBIG...), or
    /// could not be started (EAGAIN: the session's pids limit).
    Failed { errno: i32 },
    /// The writer was killed (SIGKILL: the OOM killer, by the session's
    /// memory limit).
    Killed { signal: i32 },
}

/// A process to start inside a session sandbox. Without `terminal`, the
/// message carries three fds: its stdin, stdout and stderr.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpawnRequest {
    /// Chosen by the caller; names the process in later messages.
    pub id: u64,
    pub args: Vec<String>,
    /// The whole environment (`K=V`); `PATH` in it drives the search for
    /// `args[0]`.
    pub env: Vec<String>,
    pub cwd: String,
    /// A new pty of the sandbox's devpts with this size (rows, cols) as the
    /// process's controlling terminal.
    pub terminal: Option<(u16, u16)>,
}

/// Messages from the supervisor to the child.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParentMessage {
    /// Id maps written: go on with setup.
    Go,
    /// Session mode: start a process.
    Spawn(SpawnRequest),
    /// Session mode: send `signal` to the process group of process `id`.
    Signal { id: u64, signal: i32 },
    /// Session mode: copy bytes into files the daemon opened, from a
    /// process of the session, so the pages they take in the session's
    /// tmpfs are charged to the session's memory cgroup, not the
    /// daemon's. The message carries a pipe's read end, then one fd per
    /// length: `lengths[i]` bytes from the pipe go to the i-th file, in
    /// order. Answered by [`ChildMessage::Written`] with the same `id`.
    WriteFiles { id: u64, lengths: Vec<u64> },
}

/// One end of the channel.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

/// A message's bytes and the fds that came with it.
type Received = (Vec<u8>, Vec<OwnedFd>);

/// Largest message: a spawn request's argv and environment (the daemon
/// refuses larger ones before they get here).
pub const MAX_MSG: usize = 128 * 1024;

/// Most fds one message carries (a spawned process's stdio).
/// Fds per message: a layered root's trees travel in one (the kernel's
/// SCM_MAX_FD is 253).
const MAX_FDS: usize = 253;

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

    /// Wraps a connected SOCK_SEQPACKET socket (e.g. one inherited by a
    /// helper process, or a sandbox's channel handed over with SCM_RIGHTS).
    pub fn from_fd(fd: OwnedFd) -> Channel {
        Channel { fd }
    }

    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// Sends any serde message with up to four fds.
    pub fn send_json<T: Serialize>(&self, msg: &T, fds: &[BorrowedFd<'_>]) -> Result<(), Errno> {
        let bytes = serde_json::to_vec(msg).map_err(|_| Errno::EINVAL)?;
        if bytes.len() > MAX_MSG || fds.len() > MAX_FDS {
            return Err(Errno::EMSGSIZE);
        }
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        self.send_raw(&bytes, &raw)
    }

    /// Receives one serde message and its fds; `Ok(None)` on EOF. EAGAIN
    /// on a non-blocking socket with nothing to read.
    pub fn recv_json<T: DeserializeOwned>(&self) -> Result<Option<(T, Vec<OwnedFd>)>, Errno> {
        match self.recv_bytes()? {
            None => Ok(None),
            Some((b, fds)) => {
                let m = serde_json::from_slice(&b).map_err(|_| Errno::EBADMSG)?;
                Ok(Some((m, fds)))
            }
        }
    }

    fn send_bytes(&self, bytes: &[u8], fd: Option<RawFd>) -> Result<(), Errno> {
        match fd {
            Some(f) => self.send_raw(bytes, &[f]),
            None => self.send_raw(bytes, &[]),
        }
    }

    fn send_raw(&self, bytes: &[u8], fds: &[RawFd]) -> Result<(), Errno> {
        let iov = [IoSlice::new(bytes)];
        let cmsg = [ControlMessage::ScmRights(fds)];
        let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
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
        // One receive buffer per thread, reused: a fresh zeroed 128 KiB
        // buffer per message (most are a few dozen bytes) was a measurable
        // part of the daemon's CPU per request (bench/README.md).
        thread_local! {
            static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        BUF.with(|b| {
            let mut buf = b.borrow_mut();
            if buf.len() < MAX_MSG {
                buf.resize(MAX_MSG, 0);
            }
            self.recv_into(&mut buf)
        })
    }

    fn recv_into(&self, buf: &mut [u8]) -> Result<Option<Received>, Errno> {
        let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS]);
        loop {
            // The fds that came along are owned from the receive on (sys).
            match crate::sys::recv_with_fds(self.fd.as_fd(), buf, &mut cmsg) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
                Ok((0, fds)) if fds.is_empty() => return Ok(None),
                Ok((n, fds)) => return Ok(Some((buf[..n].to_vec(), fds))),
            }
        }
    }

    pub fn recv_child(&self) -> Result<Option<(ChildMessage, Option<OwnedFd>)>, Errno> {
        Ok(self
            .recv_json::<ChildMessage>()?
            .map(|(m, fds)| (m, fds.into_iter().next())))
    }

    pub fn recv_parent(&self) -> Result<Option<ParentMessage>, Errno> {
        Ok(self.recv_json::<ParentMessage>()?.map(|(m, _)| m))
    }

    /// A parent message and the fds that came with it (session mode).
    pub fn recv_parent_fds(&self) -> Result<Option<(ParentMessage, Vec<OwnedFd>)>, Errno> {
        self.recv_json::<ParentMessage>()
    }
}

impl AsRawFd for Channel {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
