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

use crate::report::{errno_name, Step};

/// Messages from the sandbox's PID 1 (or the program before exec) to the
/// supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChildMessage {
    /// A setup step failed; the child exits after sending this.
    StepFailed {
        step: Step,
        #[serde(with = "errno_name")]
        errno: Option<Errno>,
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
        step: Step,
        #[serde(with = "errno_name")]
        errno: Option<Errno>,
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
/// message carries its stdin, stdout and stderr ([`SpawnStdio`]).
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
    /// How many fds of a child cgroup follow the stdio ([`SpawnFds`]):
    /// the process moves itself in through them before anything else, so
    /// all it and its children do is accounted there (an exec's own
    /// cgroup; 0: it stays in the session's).
    #[serde(default)]
    pub cgroup_fds: usize,
}

/// All the fds of a [`ParentMessage::Spawn`], by name: the stdio (none
/// with a terminal), then the `cgroup_fds` fds the process joins its
/// cgroup through ([`crate::cgroup::Cgroup::join_fds`]).
#[derive(Debug)]
pub struct SpawnFds<F> {
    pub stdio: Option<SpawnStdio<F>>,
    pub join_cgroup: Vec<F>,
}

impl<F: AsFd> SpawnFds<F> {
    /// The fds in the order the message carries them.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        let stdio = self.stdio.as_ref().map(SpawnStdio::fds);
        stdio
            .iter()
            .flatten()
            .copied()
            .chain(self.join_cgroup.iter().map(AsFd::as_fd))
            .collect()
    }
}

impl SpawnFds<OwnedFd> {
    /// The fds that came with `req`; EBADMSG (all closed) unless they are
    /// its stdio (without a terminal) and `req.cgroup_fds` more.
    pub fn from_received(fds: Vec<OwnedFd>, req: &SpawnRequest) -> Result<Self, Errno> {
        let stdio_n = if req.terminal.is_some() { 0 } else { 3 };
        if fds.len() != stdio_n + req.cgroup_fds {
            return Err(Errno::EBADMSG);
        }
        let mut fds = fds;
        let join_cgroup = fds.split_off(stdio_n);
        let stdio = if stdio_n == 0 {
            None
        } else {
            Some(SpawnStdio::from_received(fds)?)
        };
        Ok(SpawnFds { stdio, join_cgroup })
    }
}

/// The fds of a [`ParentMessage::Spawn`] without a terminal, by name:
/// built by the sender, taken apart by the receiver, and laid out in the
/// message only here.
#[derive(Debug)]
pub struct SpawnStdio<F> {
    pub stdin: F,
    pub stdout: F,
    pub stderr: F,
}

impl<F: AsFd> SpawnStdio<F> {
    /// The fds in the order the message carries them.
    pub fn fds(&self) -> [BorrowedFd<'_>; 3] {
        [self.stdin.as_fd(), self.stdout.as_fd(), self.stderr.as_fd()]
    }
}

impl SpawnStdio<OwnedFd> {
    /// The fds that came with a `Spawn`; EBADMSG (all closed) unless they
    /// are exactly stdin, stdout and stderr.
    pub fn from_received(fds: Vec<OwnedFd>) -> Result<SpawnStdio<OwnedFd>, Errno> {
        let [stdin, stdout, stderr]: [OwnedFd; 3] = fds.try_into().map_err(|_| Errno::EBADMSG)?;
        Ok(SpawnStdio {
            stdin,
            stdout,
            stderr,
        })
    }
}

/// The fds of a [`ParentMessage::WriteFiles`], by name: the pipe the bytes
/// come through, and the files, in the order of `lengths`.
#[derive(Debug)]
pub struct WriteFilesFds<F> {
    pub source: F,
    pub files: Vec<F>,
}

impl<F: AsFd> WriteFilesFds<F> {
    /// The fds in the order the message carries them.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        std::iter::once(self.source.as_fd())
            .chain(self.files.iter().map(AsFd::as_fd))
            .collect()
    }
}

impl WriteFilesFds<OwnedFd> {
    /// The fds that came with a `WriteFiles` of `files` lengths; EBADMSG
    /// (all closed) unless they are the pipe and one per length.
    pub fn from_received(fds: Vec<OwnedFd>, files: usize) -> Result<WriteFilesFds<OwnedFd>, Errno> {
        if fds.len() != files + 1 {
            return Err(Errno::EBADMSG);
        }
        let mut fds = fds.into_iter();
        let source = fds.next().ok_or(Errno::EBADMSG)?;
        Ok(WriteFilesFds {
            source,
            files: fds.collect(),
        })
    }
}

/// The fds of a [`ParentMessage::Go`], by name: a layered root's detached
/// trees, idmapped by the parent once the child's id maps exist: one per
/// layer, bottom first, then the upper directory's when it is on the host.
/// Empty for any other root.
#[derive(Debug)]
pub struct GoFds<F> {
    pub lowers: Vec<F>,
    pub upper: Option<F>,
}

impl<F: AsFd> GoFds<F> {
    /// The fds in the order the message carries them.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        self.lowers
            .iter()
            .chain(&self.upper)
            .map(AsFd::as_fd)
            .collect()
    }
}

impl GoFds<OwnedFd> {
    /// The fds that came with a `Go` to a child whose root has `layers`
    /// layers; EBADMSG (all closed) unless they are none, one tree per
    /// layer, or those and an upper directory's.
    pub fn from_received(fds: Vec<OwnedFd>, layers: usize) -> Result<GoFds<OwnedFd>, Errno> {
        let mut lowers = fds;
        let upper = match lowers.len() {
            0 => None,
            n if n == layers => None,
            n if layers > 0 && n == layers + 1 => lowers.pop(),
            _ => return Err(Errno::EBADMSG),
        };
        Ok(GoFds { lowers, upper })
    }
}

/// Messages from the supervisor to the child.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParentMessage {
    /// Id maps written: go on with setup ([`GoFds`]).
    Go,
    /// Session mode: start a process.
    Spawn(SpawnRequest),
    /// Session mode: send `signal` to the process group of process `id`.
    Signal { id: u64, signal: i32 },
    /// Session mode: copy bytes into files the daemon opened, from a
    /// process of the session, so the pages they take in the session's
    /// tmpfs are charged to the session's memory cgroup, not the
    /// daemon's. The message carries a pipe's read end and one file per
    /// length ([`WriteFilesFds`]): `lengths[i]` bytes from the pipe go to
    /// the i-th file, in order. Answered by [`ChildMessage::Written`] with
    /// the same `id`.
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
/// refuses larger ones before they get here). Nothing larger is ever sent:
/// a failure's text is shortened to fit ([`Channel::send_child`]), any
/// other message is refused with EMSGSIZE; a larger datagram that arrives
/// anyway (from a peer not built from this code) is received as EMSGSIZE,
/// never cut into JSON that fails to parse.
pub const MAX_MSG: usize = 128 * 1024;

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

    /// Sends any serde message with up to [`MAX_FDS`] fds; EMSGSIZE when
    /// it is larger than [`MAX_MSG`] (nothing is sent).
    pub fn send_json<T: Serialize>(&self, msg: &T, fds: &[BorrowedFd<'_>]) -> Result<(), Errno> {
        let bytes = serde_json::to_vec(msg).map_err(|_| Errno::EINVAL)?;
        if bytes.len() > MAX_MSG || fds.len() > MAX_FDS {
            return Err(Errno::EMSGSIZE);
        }
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        self.send_raw(&bytes, &raw)
    }

    /// Receives one serde message and its fds; `Ok(None)` on EOF. EAGAIN
    /// on a non-blocking socket with nothing to read; EMSGSIZE for a message
    /// larger than [`MAX_MSG`] and EBADMSG for one that is not a `T`: both
    /// consumed whole (its fds closed), so the next message reads cleanly.
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

    /// Sends a child message. A failure whose text would not fit goes
    /// with its text shortened (its id, step and errno intact: the waiter
    /// still learns how its request ended); any other message over
    /// [`MAX_MSG`] is refused with EMSGSIZE.
    pub fn send_child(&self, msg: &ChildMessage, fd: Option<BorrowedFd<'_>>) -> Result<(), Errno> {
        let bytes = encode_child(msg)?;
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

/// A child message's bytes, at most [`MAX_MSG`]: a failure's text is cut
/// (at a character boundary, marked with `…`) until the whole fits.
fn encode_child(msg: &ChildMessage) -> Result<Vec<u8>, Errno> {
    let encode = |m: &ChildMessage| serde_json::to_vec(m).map_err(|_| Errno::EINVAL);
    let bytes = encode(msg)?;
    if bytes.len() <= MAX_MSG {
        return Ok(bytes);
    }
    let mut msg = msg.clone();
    let Some(text) = failure_text(&mut msg) else {
        return Err(Errno::EMSGSIZE);
    };
    let full = std::mem::take(text);
    // The room the text has beside the rest of the message; JSON escapes
    // can make it longer than its bytes, so halve until it fits.
    let mut keep = MAX_MSG
        .saturating_sub(encode(&msg)?.len() + 8)
        .min(full.len());
    loop {
        while !full.is_char_boundary(keep) {
            keep -= 1;
        }
        if let Some(text) = failure_text(&mut msg) {
            *text = format!("{}…", &full[..keep]);
        }
        let bytes = encode(&msg)?;
        if bytes.len() <= MAX_MSG {
            return Ok(bytes);
        }
        if keep == 0 {
            return Err(Errno::EMSGSIZE);
        }
        keep /= 2;
    }
}

/// The free text of a failure message (the only part that can be cut).
fn failure_text(msg: &mut ChildMessage) -> Option<&mut String> {
    match msg {
        ChildMessage::StepFailed { message, .. } | ChildMessage::SpawnFailed { message, .. } => {
            Some(message)
        }
        _ => None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Step;

    /// A failure whose text is larger than a message arrives whole and
    /// parseable (id, step, errno intact, text cut); before, its JSON was
    /// cut at MAX_MSG and the receiver dropped it (the waiter hung).
    #[test]
    fn an_oversized_failure_arrives_shortened() {
        let (a, b) = Channel::pair().unwrap();
        let long = "é\"".repeat(MAX_MSG);
        let msg = ChildMessage::SpawnFailed {
            id: 7,
            step: Step::Exec,
            errno: Some(Errno::E2BIG),
            message: long.clone(),
        };
        a.send_child(&msg, None).unwrap();
        let (got, _) = b.recv_child().unwrap().unwrap();
        let ChildMessage::SpawnFailed {
            id,
            step,
            errno,
            message,
        } = got
        else {
            panic!("{got:?}");
        };
        assert_eq!((id, step, errno), (7, Step::Exec, Some(Errno::E2BIG)));
        assert!(message.ends_with('…') && message.len() < long.len());
        assert!(long.starts_with(message.trim_end_matches('…')));
    }

    /// Any other message over the limit is refused by the sender, never
    /// sent cut.
    #[test]
    fn an_oversized_message_is_refused_by_the_sender() {
        let (a, _b) = Channel::pair().unwrap();
        let req = ParentMessage::Spawn(SpawnRequest {
            id: 1,
            args: vec!["x".repeat(MAX_MSG)],
            env: vec![],
            cwd: "/".into(),
            terminal: None,
            cgroup_fds: 0,
        });
        assert_eq!(a.send_json(&req, &[]), Err(Errno::EMSGSIZE));
    }

    /// The stdio of a spawn arrives by name: what is written to the
    /// received `stdout` comes out of the pipe the sender named `stdout`;
    /// a message with the wrong number of fds is refused.
    #[test]
    fn spawn_stdio_and_write_files_fds_keep_their_names() {
        use std::io::Write;
        let (a, b) = Channel::pair().unwrap();
        // Non-blocking: a byte in the wrong pipe fails the test, never
        // hangs it.
        let flags = nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC;
        let pipes: Vec<(OwnedFd, OwnedFd)> =
            (0..3).map(|_| nix::unistd::pipe2(flags).unwrap()).collect();
        let read3 = |fd: &OwnedFd| {
            let mut buf = [0u8; 3];
            let n = nix::unistd::read(fd.as_fd(), &mut buf).unwrap_or(0);
            buf[..n].to_vec()
        };
        let sent = SpawnStdio {
            stdin: pipes[0].0.as_fd(),
            stdout: pipes[1].1.as_fd(),
            stderr: pipes[2].1.as_fd(),
        };
        let req = ParentMessage::Signal { id: 1, signal: 0 };
        a.send_json(&req, &sent.fds()).unwrap();
        let (_, fds) = b.recv_parent_fds().unwrap().unwrap();
        let got = SpawnStdio::from_received(fds).unwrap();
        for (fd, text, read_end) in [
            (&got.stdout, b"out", &pipes[1].0),
            (&got.stderr, b"err", &pipes[2].0),
        ] {
            std::fs::File::from(fd.try_clone().unwrap())
                .write_all(text)
                .unwrap();
            assert_eq!(read3(read_end), text);
        }
        a.send_json(&req, &sent.fds()[..2]).unwrap();
        let (_, fds) = b.recv_parent_fds().unwrap().unwrap();
        assert_eq!(SpawnStdio::from_received(fds).unwrap_err(), Errno::EBADMSG);

        let files = WriteFilesFds {
            source: pipes[0].0.as_fd(),
            files: vec![pipes[1].1.as_fd(), pipes[2].1.as_fd()],
        };
        a.send_json(&req, &files.fds()).unwrap();
        let (_, fds) = b.recv_parent_fds().unwrap().unwrap();
        assert_eq!(
            WriteFilesFds::from_received(fds, 3).unwrap_err(),
            Errno::EBADMSG
        );
        a.send_json(&req, &files.fds()).unwrap();
        let (_, fds) = b.recv_parent_fds().unwrap().unwrap();
        let got = WriteFilesFds::from_received(fds, 2).unwrap();
        std::fs::File::from(got.files[1].try_clone().unwrap())
            .write_all(b"two")
            .unwrap();
        assert_eq!(read3(&pipes[2].0), b"two");

        // A spawn's cgroup fds follow its stdio and keep their names.
        let spawn = |terminal, cgroup_fds| SpawnRequest {
            id: 1,
            args: vec!["x".into()],
            env: vec![],
            cwd: "/".into(),
            terminal,
            cgroup_fds,
        };
        let all = SpawnFds {
            stdio: Some(SpawnStdio {
                stdin: pipes[0].0.as_fd(),
                stdout: pipes[1].1.as_fd(),
                stderr: pipes[2].1.as_fd(),
            }),
            join_cgroup: vec![pipes[2].1.as_fd()],
        };
        a.send_json(&req, &all.fds()).unwrap();
        let (_, fds) = b.recv_parent_fds().unwrap().unwrap();
        let got = SpawnFds::from_received(fds, &spawn(None, 1)).unwrap();
        std::fs::File::from(got.join_cgroup[0].try_clone().unwrap())
            .write_all(b"cgr")
            .unwrap();
        assert_eq!(read3(&pipes[2].0), b"cgr");
        assert!(got.stdio.is_some());
        // Counts that do not match the request: refused.
        for (terminal, n) in [(None, 0), (None, 2), (Some((1, 1)), 1)] {
            a.send_json(&req, &all.fds()).unwrap();
            let (_, fds) = b.recv_parent_fds().unwrap().unwrap();
            assert_eq!(
                SpawnFds::from_received(fds, &spawn(terminal, n)).unwrap_err(),
                Errno::EBADMSG
            );
        }
        // A terminal's spawn: only the cgroup's fd.
        a.send_json(&req, &all.fds()[3..]).unwrap();
        let (_, fds) = b.recv_parent_fds().unwrap().unwrap();
        let got = SpawnFds::from_received(fds, &spawn(Some((1, 1)), 1)).unwrap();
        assert!(got.stdio.is_none() && got.join_cgroup.len() == 1);

        // A go's layer trees: the lowers in order, the upper last.
        let go = GoFds {
            lowers: vec![pipes[0].1.as_fd(), pipes[1].1.as_fd()],
            upper: Some(pipes[2].1.as_fd()),
        };
        a.send_json(&ParentMessage::Go, &go.fds()).unwrap();
        let (_, fds) = b.recv_parent_fds().unwrap().unwrap();
        let got = GoFds::from_received(fds, 2).unwrap();
        for (fd, text, read_end) in [
            (&got.lowers[1], b"lo1", &pipes[1].0),
            (got.upper.as_ref().unwrap(), b"upp", &pipes[2].0),
        ] {
            std::fs::File::from(fd.try_clone().unwrap())
                .write_all(text)
                .unwrap();
            assert_eq!(read3(read_end), text);
        }
        // Without an upper; none at all; a count that fits no root.
        for (sent, layers, ok) in [(2, 2, true), (0, 2, true), (3, 1, false), (1, 0, false)] {
            a.send_json(&ParentMessage::Go, &go.fds()[..sent]).unwrap();
            let (_, fds) = b.recv_parent_fds().unwrap().unwrap();
            match GoFds::from_received(fds, layers) {
                Ok(got) => {
                    assert!(ok, "{sent} fds for {layers} layers taken");
                    assert_eq!((got.lowers.len(), got.upper.is_some()), (sent, false));
                }
                Err(e) => assert!(!ok && e == Errno::EBADMSG, "{sent}/{layers}: {e}"),
            }
        }
    }

    /// A datagram over the limit (a peer not built from this code) is
    /// received as EMSGSIZE, not as cut JSON, and the channel goes on: the
    /// next message reads cleanly.
    #[test]
    fn an_oversized_datagram_is_a_typed_error_and_the_next_message_reads() {
        let (a, b) = Channel::pair().unwrap();
        let big = serde_json::to_vec(&ChildMessage::Ready)
            .unwrap()
            .into_iter()
            .chain(std::iter::repeat_n(b' ', MAX_MSG))
            .collect::<Vec<u8>>();
        a.send_raw(&big, &[]).unwrap();
        a.send_child(&ChildMessage::Spawned { id: 3, pid: 9 }, None)
            .unwrap();
        assert_eq!(b.recv_child().unwrap_err(), Errno::EMSGSIZE);
        let (next, _) = b.recv_child().unwrap().unwrap();
        assert_eq!(next, ChildMessage::Spawned { id: 3, pid: 9 });
        // Malformed (but whole) messages are EBADMSG, also consumed.
        a.send_raw(b"{not json", &[]).unwrap();
        assert_eq!(b.recv_child().unwrap_err(), Errno::EBADMSG);
    }
}
