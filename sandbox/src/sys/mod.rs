//! The only module of the workspace allowed to hold `unsafe`: thin, documented
//! wrappers around the raw system calls that `nix` does not cover safely
//! (clone3, pidfds, close_range, a few ioctls, keyctl). Everything above this
//! module is safe Rust.
//!
//! The module is private to the crate: other crates get narrow, safe APIs
//! named after their concept (`helper`, `pty`, `peer`,
//! `process::signals`, `seccomp::attempt`). A function whose soundness
//! depends on its caller is an `unsafe fn` with a `# Safety` section; its
//! safe wrapper here takes the proof as a type: a [`SingleThreaded`] token,
//! an owned or borrowed fd, a flag set checked at run time.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

use crate::helper::{Forked, SingleThreaded};

pub mod attempt;
pub mod ops;
#[cfg(test)]
pub mod test_support;

/// Result of a `clone3` call as seen by the caller.
pub enum CloneResult {
    /// We are the parent; the child has this pid and (when asked) pidfd.
    Parent { pid: i32, pidfd: Option<OwnedFd> },
    /// We are the new child: a copy of the single thread that cloned.
    Child(SingleThreaded),
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// `CLONE_INTO_CGROUP` (linux/sched.h, 5.7+); not in every libc release.
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The flags [`clone_namespaces`] accepts: new namespaces only. Anything
/// that shares memory, files or the stack with the child (CLONE_VM,
/// CLONE_FILES, CLONE_THREAD, CLONE_SETTLS, ...) would break the fork-like
/// copy the child runs on, so it is refused rather than trusted.
const NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

/// A fork-like `clone3` into new namespaces (`flags`, a subset of the
/// `CLONE_NEW*` flags; anything else is EINVAL), with an optional pidfd and
/// target cgroup. Sound because the process is single-threaded (the token)
/// and the flags keep the child on a private copy of memory.
pub fn clone_namespaces(
    _single: &SingleThreaded,
    flags: u64,
    want_pidfd: bool,
    cgroup: Option<BorrowedFd<'_>>,
) -> Result<CloneResult, Errno> {
    if flags & !NAMESPACE_FLAGS != 0 {
        return Err(Errno::EINVAL);
    }
    // SAFETY: the caller is single-threaded (its token proves it) and the
    // flags hold only CLONE_NEW* bits (checked above): no shared memory,
    // stack or fd table.
    unsafe { clone3(flags, want_pidfd, cgroup) }
}

/// fork-like `clone3`: no new stack, `SIGCHLD` as exit signal, optional
/// pidfd (`CLONE_PIDFD`) and target cgroup (`CLONE_INTO_CGROUP`).
///
/// # Safety
/// The calling process must be single-threaded: the child continues on a
/// copy of the caller's stack and heap with no atfork handlers run, so a
/// lock held by another thread (malloc's) would stay held forever. `flags`
/// must not ask for shared memory, stack or thread state (CLONE_VM,
/// CLONE_THREAD, CLONE_SETTLS, CLONE_SIGHAND...): no stack is passed.
pub unsafe fn clone3(
    flags: u64,
    want_pidfd: bool,
    cgroup: Option<BorrowedFd<'_>>,
) -> Result<CloneResult, Errno> {
    let mut pidfd: RawFd = -1;
    let mut args = CloneArgs {
        flags,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if want_pidfd {
        args.flags |= libc::CLONE_PIDFD as u64;
        args.pidfd = std::ptr::addr_of_mut!(pidfd) as u64;
    }
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: `args` is a valid, fully initialised clone_args of the size we
    // pass; no stack is given so the child runs fork-like on a private copy of
    // this address space. `pidfd` outlives the call. The caller guarantees the
    // process is single-threaded and the flags share nothing (# Safety).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            std::ptr::addr_of_mut!(args),
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(CloneResult::Child(SingleThreaded::in_new_child())),
        pid => {
            let pidfd = if want_pidfd && pidfd >= 0 {
                // SAFETY: the kernel just returned this fd to us via CLONE_PIDFD; we own it.
                Some(unsafe { OwnedFd::from_raw_fd(pidfd) })
            } else {
                None
            };
            Ok(CloneResult::Parent {
                pid: pid as i32,
                pidfd,
            })
        }
    }
}

/// `fork(2)` of a single-threaded process; the child gets its own token
/// (it is a copy of the one thread).
pub fn fork_single(_single: &SingleThreaded) -> Result<Forked, Errno> {
    // SAFETY: the process is single-threaded (the token), so no lock can be
    // held by a thread that does not exist in the child.
    Ok(match unsafe { fork() }? {
        Some(pid) => Forked::Parent(pid),
        None => Forked::Child(SingleThreaded::in_new_child()),
    })
}

/// Plain `fork(2)` through libc (atfork handlers run, so the child may
/// allocate).
///
/// # Safety
/// When the process has other threads, the child may only run
/// async-signal-safe code (then `_exit` or exec): locks those threads held
/// stay held in the child. A single-threaded caller uses [`fork_single`].
pub unsafe fn fork() -> Result<Option<i32>, Errno> {
    // SAFETY: fork has no memory-safety preconditions of its own; the
    // caller restricts the child to code that is sound after fork (# Safety).
    let ret = unsafe { libc::fork() };
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(None),
        pid => Ok(Some(pid)),
    }
}

/// Runs `f` in a forked child and returns its exit status as `waitpid`
/// reports it: irreversible process state (seccomp, capabilities, a
/// namespace) tried without touching the caller.
pub fn run_in_child(
    single: &SingleThreaded,
    f: impl FnOnce() -> i32,
) -> Result<nix::sys::wait::WaitStatus, Errno> {
    match fork_single(single)? {
        Forked::Child(_) => {
            let code = f();
            exit_now(code)
        }
        Forked::Parent(pid) => nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None),
    }
}

/// `_exit(2)`: leave without running destructors or atexit handlers (the
/// right exit for a forked child).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and has no preconditions.
    unsafe { libc::_exit(code) }
}

/// `pidfd_open(2)`.
pub fn pidfd_open(pid: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: plain syscall with integer arguments.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if ret < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel returned a new fd that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

/// `pidfd_send_signal(2)`.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> Result<(), Errno> {
    // SAFETY: plain syscall; the info pointer is NULL as documented.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// The supplementary groups of a Unix socket's peer as the kernel recorded
/// them at connect(2) (`SO_PEERGROUPS`, Linux 4.13), the companion of
/// `SO_PEERCRED`'s uid and gid. Unlike `/proc/<pid>/status` they cannot
/// change afterwards nor be answered by another process reusing the pid.
pub fn peer_groups(sock: BorrowedFd<'_>) -> Result<Vec<u32>, Errno> {
    // Sized for the common case; the kernel says how much it needs
    // (ERANGE with `len` set) when a peer has more groups.
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = libc::socklen_t::try_from(groups.len() * std::mem::size_of::<libc::gid_t>())
            .map_err(|_| Errno::ERANGE)?;
        // SAFETY: the buffer is valid for `len` bytes and lives across the
        // call; the kernel writes at most `len` bytes and updates `len`.
        let ret = unsafe {
            libc::getsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let n = len as usize / std::mem::size_of::<libc::gid_t>();
        if ret == 0 {
            groups.truncate(n);
            return Ok(groups);
        }
        let e = Errno::last();
        // NGROUPS_MAX is 65536: a larger answer is not a real peer's.
        if e != Errno::ERANGE || n <= groups.len() || n > 65536 {
            return Err(e);
        }
        groups.resize(n, 0);
    }
}

/// `close_range(first, u32::MAX, CLOSE_RANGE_CLOEXEC)`: marks every fd from
/// `first` up close-on-exec without closing it yet.
pub fn cloexec_from(first: u32) -> Result<(), Errno> {
    // SAFETY: plain syscall with integer arguments; marks fds CLOEXEC only.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// Closes every fd at or above `first` except those in `keep`.
///
/// Used by the sandbox's PID 1 right after clone: it must not hold the
/// caller's fds (a directory fd would be a way out of the new root).
pub fn close_fds_except(first: RawFd, keep: &[RawFd]) -> Result<(), Errno> {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|&fd| fd >= first).collect();
    keep.sort_unstable();
    let mut lo = first;
    for &k in &keep {
        if k > lo {
            close_range(lo as u32, (k - 1) as u32)?;
        }
        lo = k + 1;
    }
    close_range(lo as u32, u32::MAX)
}

fn close_range(lo: u32, hi: u32) -> Result<(), Errno> {
    // SAFETY: closing fds we are about to forget: callers pass ranges holding
    // no fd still owned by live Rust objects (the child's owned fds are kept).
    let ret = unsafe { libc::syscall(libc::SYS_close_range, lo, hi, 0) };
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// Makes `fd` (a terminal) the controlling terminal of this session.
pub fn set_controlling_tty(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: TIOCSCTTY takes an int argument (0: do not steal).
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) };
    Errno::result(ret).map(drop)
}

/// Window size of a terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WinSize {
    pub rows: u16,
    pub cols: u16,
}

/// `TIOCSWINSZ` on a pty master or slave.
pub fn set_winsize(fd: BorrowedFd<'_>, size: WinSize) -> Result<(), Errno> {
    let ws = libc::winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a struct winsize from the pointer, which is valid.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    Errno::result(ret).map(drop)
}

/// `TIOCGWINSZ`.
pub fn get_winsize(fd: BorrowedFd<'_>) -> Result<WinSize, Errno> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a struct winsize to the pointer, which is valid.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    Errno::result(ret)?;
    Ok(WinSize {
        rows: ws.ws_row,
        cols: ws.ws_col,
    })
}

/// `TIOCGPTPEER`: opens the slave side of a pty master without a path
/// lookup (race-free, works across mount namespaces).
pub fn open_pty_peer(master: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    // SAFETY: TIOCGPTPEER takes open flags and returns a new fd.
    let ret = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    Errno::result(ret)?;
    // SAFETY: the kernel returned a new fd that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret) })
}

/// `unlockpt` on a pty master (allows opening its peer).
pub fn unlock_pty(master: BorrowedFd<'_>) -> Result<(), Errno> {
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int from the pointer, which is valid.
    let ret = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) };
    Errno::result(ret).map(drop)
}

/// The `CLONE_NEW*` type of the namespace `fd` refers to
/// (`ioctl(NS_GET_NSTYPE)`, ioctl_ns(2)); ENOTTY for a file that is not a
/// namespace.
pub fn namespace_type(fd: BorrowedFd<'_>) -> Result<i32, Errno> {
    // _IO(0xb7, 0x3), linux/nsfs.h.
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the fd, which
    // the borrow keeps open for the call.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE as _) };
    Errno::result(r)
}

/// Brings network interface `name` up (`SIOCGIFFLAGS` + `SIOCSIFFLAGS`).
pub fn interface_up(sock: BorrowedFd<'_>, name: &CStr) -> Result<(), Errno> {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.to_bytes();
    if bytes.len() >= req.ifr_name.len() {
        return Err(Errno::EINVAL);
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS fills the flags field of a valid ifreq.
    Errno::result(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
    // SAFETY: ifr_ifru is a union; SIOCGIFFLAGS just initialised the flags member.
    unsafe {
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    }
    // SAFETY: SIOCSIFFLAGS reads a valid ifreq.
    Errno::result(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) }).map(drop)
}

/// Brings `lo` up in the current network namespace (through a datagram
/// socket of its own, closed on return).
pub fn loopback_up() -> Result<(), Errno> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    interface_up(std::os::fd::AsFd::as_fd(&sock), c"lo")
}

/// `keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)`: a fresh anonymous session
/// keyring, so nothing of the caller's keys is reachable.
pub fn join_new_session_keyring() -> Result<(), Errno> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: a NULL name asks for a new anonymous keyring.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// Landlock ABI version (0 when the kernel has no Landlock or it is off).
pub fn landlock_abi() -> i32 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with this flag the kernel ignores attr/size and returns the ABI.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if ret < 0 {
        0
    } else {
        ret as i32
    }
}

/// Executes a raw system call with up to three arguments (the fourth to
/// sixth are 0, not whatever the registers held) and returns its raw
/// result and errno: the seccomp tests' and `seccomp::attempt`'s way to
/// reach system calls libc lacks.
///
/// # Safety
/// The call must not change memory or state this process relies on:
/// pointer arguments point to live memory of the size the system call
/// reads or writes, and the system call is not one that unmaps, remaps,
/// shares or frees memory, nor one that creates a thread or a process
/// sharing this one's memory (clone with CLONE_VM).
pub unsafe fn raw_syscall3(
    nr: libc::c_long,
    a: usize,
    b: usize,
    c: usize,
) -> (libc::c_long, Errno) {
    // SAFETY: the caller upholds the argument rules (# Safety); the rest
    // are 0 (no flags, NULL); a failing call only sets errno.
    let ret = unsafe { libc::syscall(nr, a, b, c, 0usize, 0usize, 0usize) };
    (
        ret,
        if ret < 0 {
            Errno::last()
        } else {
            Errno::UnknownErrno
        },
    )
}

/// Sets the signal mask of the calling thread (for the supervisor's signalfd
/// and for restoring an empty mask in the child before exec).
pub fn set_sigmask(
    how: nix::sys::signal::SigmaskHow,
    set: &nix::sys::signal::SigSet,
) -> Result<(), Errno> {
    nix::sys::signal::sigprocmask(how, Some(set), None)
}

/// `recvmsg(2)` of one datagram into `buf`, with the fds it carried
/// (SCM_RIGHTS, installed close-on-exec) as owned fds. `cmsg` is the
/// control buffer (`nix::cmsg_space!`). Returns the byte count.
// A `Vec`, not a slice: nix's recvmsg sizes the control buffer by its
// capacity.
#[allow(clippy::ptr_arg)]
pub fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    cmsg: &mut Vec<u8>,
) -> Result<(usize, Vec<OwnedFd>), Errno> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    // The kernel cut a datagram longer than the buffer (or its fds): the
    // fds that did arrive are owned below and closed as they drop.
    let cut = msg
        .flags
        .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC);
    let mut fds = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            // SAFETY: the kernel installed these fds in our table for this
            // message, just now: nothing else refers to them.
            fds.extend(
                raw.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    if cut {
        return Err(Errno::EMSGSIZE);
    }
    Ok((msg.bytes, fds))
}

/// Takes ownership of one of the standard fds (0, 1, 2) by duplicating it
/// (close-on-exec), so the original stays open.
pub fn dup_std_fd(fd: RawFd) -> Result<OwnedFd, Errno> {
    // SAFETY: fd 0/1/2 are open for the life of the process (or the call
    // fails with EBADF); we only borrow it for the duration of the dup.
    let b = unsafe { BorrowedFd::borrow_raw(fd) };
    nix::fcntl::fcntl(b, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3)).map(|n| {
        // SAFETY: F_DUPFD_CLOEXEC returned a new fd that we own.
        unsafe { OwnedFd::from_raw_fd(n) }
    })
}

/// The standard fds 0, 1 and 2, borrowed: what a program child gets as its
/// stdio when the caller's own are passed on.
pub fn std_fds() -> [BorrowedFd<'static>; 3] {
    // SAFETY: fds 0-2 belong to the process, not to an OwnedFd, and stay
    // open for its life (the Rust runtime reopens missing ones on
    // /dev/null at start-up). This crate closes them only in PID 1's
    // init and session loops, after the last use of these borrows.
    unsafe {
        [
            BorrowedFd::borrow_raw(0),
            BorrowedFd::borrow_raw(1),
            BorrowedFd::borrow_raw(2),
        ]
    }
}

/// Borrows a raw fd number for the duration of `f`.
///
/// # Safety
/// `fd` must be open, and stay open while `f` runs (owned by an `OwnedFd`
/// that outlives the call, or a standard fd).
pub unsafe fn with_borrowed<R>(fd: RawFd, f: impl FnOnce(BorrowedFd<'_>) -> R) -> R {
    // SAFETY: the caller keeps `fd` open while `f` runs (# Safety).
    let b = unsafe { BorrowedFd::borrow_raw(fd) };
    f(b)
}

/// Installs `action` (SIG_DFL or SIG_IGN only) for `sig`.
pub fn set_default_signal(
    sig: nix::sys::signal::Signal,
    action: &nix::sys::signal::SigAction,
) -> Result<(), Errno> {
    if matches!(
        action.handler(),
        nix::sys::signal::SigHandler::Handler(_) | nix::sys::signal::SigHandler::SigAction(_)
    ) {
        return Err(Errno::EINVAL);
    }
    // SAFETY: only SIG_DFL/SIG_IGN are installed (checked above), so no
    // handler code can run in an async-signal context.
    unsafe { nix::sys::signal::sigaction(sig, action) }.map(drop)
}

/// `setrlimit(2)` with a raw resource number.
pub fn set_rlimit(resource: i32, soft: u64, hard: u64) -> Result<(), Errno> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: the pointer refers to a valid rlimit for the duration of the call.
    let ret = unsafe { libc::setrlimit(resource as _, &lim) };
    Errno::result(ret).map(drop)
}

/// `dup2(fd, target)` onto a standard fd (0, 1 or 2; anything else is
/// EBADF): the program child's stdio wiring. The standard fds belong to
/// the process rather than to an `OwnedFd`, so replacing one closes
/// nothing another owner still counts on. `fd == target` is left as is.
pub fn dup_onto_std(fd: BorrowedFd<'_>, target: RawFd) -> Result<(), Errno> {
    if !(0..=2).contains(&target) {
        return Err(Errno::EBADF);
    }
    if fd.as_raw_fd() == target {
        return Ok(());
    }
    // SAFETY: dup2 only changes the fd table; `fd` is borrowed (open) and
    // `target` is a standard fd (checked above), owned by no OwnedFd.
    let ret = unsafe { libc::dup2(fd.as_raw_fd(), target) };
    Errno::result(ret).map(drop)
}

/// The stack of a [`spawn_shared_vm`] child: an anonymous mapping with an
/// inaccessible guard page below it, so a child that outgrows it faults
/// instead of writing over the caller's memory.
pub struct ChildStack {
    base: *mut libc::c_void,
    len: usize,
}

impl ChildStack {
    /// `size` bytes of stack (rounded up to pages) plus the guard page.
    pub fn new(size: usize) -> Result<ChildStack, Errno> {
        const PAGE: usize = 4096;
        let len = size.div_ceil(PAGE).max(1) * PAGE + PAGE;
        // SAFETY: a new private anonymous mapping; no existing memory is
        // touched.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        let stack = ChildStack { base, len };
        // SAFETY: the lowest page of the mapping we own and nobody uses yet.
        Errno::result(unsafe { libc::mprotect(base, PAGE, libc::PROT_NONE) })?;
        Ok(stack)
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unused by now (a child that ran on it
        // had exec'd or exited before spawn_shared_vm returned).
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// Runs `f` in a new child process that shares this process's memory
/// (`CLONE_VM | CLONE_VFORK`) on `stack`, the way posix_spawn starts a
/// program: the caller is suspended until the child execs or exits, so no
/// page tables are copied. Returns the child's pid. Memory the child
/// allocates stays allocated in the caller.
///
/// Sound because the caller is single-threaded (the token: no lock can be
/// held by another thread while the child runs), `f` either execs or
/// returns an exit code (the child then `_exit`s; it never returns into the
/// caller's frames), and the stack is guarded ([`ChildStack`]).
pub fn spawn_shared_vm(
    _single: &SingleThreaded,
    stack: &mut ChildStack,
    f: &mut dyn FnMut() -> i32,
) -> Result<i32, Errno> {
    extern "C" fn trampoline(arg: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `arg` points at the `&mut dyn FnMut` below, which lives on
        // the caller's stack; the caller is suspended (CLONE_VFORK) until we
        // exec or exit, so the reference stays valid and unaliased.
        let f = unsafe { &mut *(arg as *mut &mut dyn FnMut() -> i32) };
        let code = f();
        exit_now(code)
    }
    let mut f: &mut dyn FnMut() -> i32 = f;
    let top = (stack.base as usize + stack.len) & !0xf;
    // SAFETY: `top` is the 16-byte aligned end of a writable mapping owned
    // by the caller and alive until the child execs or exits (the caller is
    // suspended until then, and single-threaded: the token); below it is a
    // guard page; the trampoline never returns. Flags: shared
    // memory and vfork semantics, a separate signal table (no CLONE_SIGHAND),
    // SIGCHLD on exit like fork.
    let pid = unsafe {
        libc::clone(
            trampoline,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            std::ptr::addr_of_mut!(f) as *mut libc::c_void,
        )
    };
    if pid < 0 {
        Err(Errno::last())
    } else {
        Ok(pid)
    }
}

/// Drops every capability from the bounding set (`PR_CAPBSET_DROP` from 0
/// up until the kernel says EINVAL: past its last capability) but those
/// whose bits are set in `keep`. Needs CAP_SETPCAP in the current user
/// namespace.
pub fn drop_bounding_set_except(keep: u64) -> Result<(), Errno> {
    for cap in 0..=63 {
        if keep & (1 << cap) != 0 {
            continue;
        }
        // SAFETY: prctl with integer arguments only.
        let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if ret < 0 {
            return match Errno::last() {
                Errno::EINVAL if cap > 0 => Ok(()),
                e => Err(e),
            };
        }
    }
    Ok(())
}

/// Sets the effective, permitted and inheritable sets, then the ambient
/// set to exactly `sets.ambient` (cleared, then each raised).
pub fn set_capabilities(sets: &crate::capabilities::CapabilitySets) -> Result<(), Errno> {
    // linux/capability.h: _LINUX_CAPABILITY_VERSION_3, two u32 words per set.
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let word = |bits: u64, hi: bool| if hi { (bits >> 32) as u32 } else { bits as u32 };
    let data = [false, true].map(|hi| Data {
        effective: word(sets.effective, hi),
        permitted: word(sets.permitted, hi),
        inheritable: word(sets.inheritable, hi),
    });
    // SAFETY: header and data are valid for the v3 layout (one header, two
    // data structs) for the duration of the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_capset,
            std::ptr::addr_of_mut!(header),
            data.as_ptr(),
        )
    };
    if ret < 0 {
        return Err(Errno::last());
    }
    // SAFETY: prctl with integer arguments only.
    let ret = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    Errno::result(ret)?;
    for cap in (0..64u64).filter(|c| sets.ambient & (1 << c) != 0) {
        // SAFETY: prctl with integer arguments only.
        let ret = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                cap as libc::c_ulong,
                0,
                0,
            )
        };
        Errno::result(ret)?;
    }
    Ok(())
}

/// `PR_SET_KEEPCAPS`: the permitted set survives the change from uid 0 to
/// another uid (capabilities(7)), so a non-root program can hold the
/// capabilities its spec lists.
pub fn keep_capabilities() -> Result<(), Errno> {
    // SAFETY: prctl with integer arguments only.
    let ret = unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
    Errno::result(ret).map(drop)
}

// linux/mount.h, linux/fcntl.h (not in every libc release).
const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
/// `MOUNT_ATTR_*` bits for [`mount_setattr`].
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR_IDMAP: u64 = 0x10_0000;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn path_cstring(p: &std::path::Path) -> Result<std::ffi::CString, Errno> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)
}

/// `open_tree(OPEN_TREE_CLONE [| AT_RECURSIVE])`: a detached copy of the
/// mount at `path` (with its submounts when `recursive`), as an fd
/// (close-on-exec).
pub fn open_tree_clone(path: &std::path::Path, recursive: bool) -> Result<OwnedFd, Errno> {
    let c = path_cstring(path)?;
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c.as_ptr(),
            OPEN_TREE_CLONE
                | libc::O_CLOEXEC as libc::c_uint
                | if recursive { AT_RECURSIVE } else { 0 },
        )
    };
    if ret < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel returned a new fd that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

/// Sets the access-time behaviour of a detached tree (`MS_NOATIME`,
/// `MS_RELATIME`, `MS_STRICTATIME`, `MS_NODIRATIME` bits) with
/// mount_setattr(2): the atime mode needs its whole field cleared.
pub fn mount_setattr_atime(fd: BorrowedFd<'_>, ms: u64) -> Result<(), Errno> {
    const MOUNT_ATTR_NOATIME: u64 = 0x10;
    const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
    const MOUNT_ATTR__ATIME: u64 = 0x70;
    const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
    let mode = if ms & libc::MS_NOATIME != 0 {
        Some(MOUNT_ATTR_NOATIME)
    } else if ms & libc::MS_STRICTATIME != 0 {
        Some(MOUNT_ATTR_STRICTATIME)
    } else if ms & libc::MS_RELATIME != 0 {
        Some(0)
    } else {
        None
    };
    let attr = MountAttr {
        attr_set: mode.unwrap_or(0)
            | if ms & libc::MS_NODIRATIME != 0 {
                MOUNT_ATTR_NODIRATIME
            } else {
                0
            },
        attr_clr: if mode.is_some() { MOUNT_ATTR__ATIME } else { 0 },
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: the empty path and `attr` are valid for the call; the size
    // passed is the size of the struct (MOUNT_ATTR_SIZE_VER0).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint | AT_RECURSIVE,
            std::ptr::addr_of!(attr),
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(ret).map(drop)
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE)` setting `attr_set`
/// (`MOUNT_ATTR_*`); with `userns`, the mount is idmapped through it.
pub fn mount_setattr(
    fd: BorrowedFd<'_>,
    attr_set: u64,
    userns: Option<BorrowedFd<'_>>,
) -> Result<(), Errno> {
    let attr = MountAttr {
        attr_set: attr_set
            | if userns.is_some() {
                MOUNT_ATTR_IDMAP
            } else {
                0
            },
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.map_or(0, |u| u.as_raw_fd() as u64),
    };
    // SAFETY: the empty path and `attr` are valid for the call; the size
    // passed is the size of the struct (MOUNT_ATTR_SIZE_VER0).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint | AT_RECURSIVE,
            std::ptr::addr_of!(attr),
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// `move_mount(tree, "", target, "", F_EMPTY_PATH | T_EMPTY_PATH)`:
/// attaches a detached mount tree on the directory `target` refers to.
pub fn move_mount_onto(tree: BorrowedFd<'_>, target: BorrowedFd<'_>) -> Result<(), Errno> {
    const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
    // SAFETY: both paths are empty NUL-terminated strings; the fds are
    // borrowed for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// `fsopen(fstype, FSOPEN_CLOEXEC)`: a filesystem context to configure
/// with the `fsconfig_*` calls and turn into a mount with [`fsmount`].
pub fn fsopen(fstype: &CStr) -> Result<OwnedFd, Errno> {
    const FSOPEN_CLOEXEC: libc::c_uint = 0x1;
    // SAFETY: `fstype` is a valid NUL-terminated string for the call.
    let ret = unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) };
    if ret < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel returned a new fd that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

// linux/mount.h `enum fsconfig_command`.
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;

fn fsconfig(
    fs: BorrowedFd<'_>,
    cmd: libc::c_uint,
    key: Option<&CStr>,
    value: Option<&CStr>,
    aux: libc::c_int,
) -> Result<(), Errno> {
    // SAFETY: `key` and `value` are NUL-terminated strings (or null, which
    // the commands used here accept where they are absent), valid for the
    // call; `fs` is borrowed for it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            cmd,
            key.map_or(std::ptr::null(), |k| k.as_ptr()),
            value.map_or(std::ptr::null(), |v| v.as_ptr()),
            aux,
        )
    };
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// `fsconfig(FSCONFIG_SET_FLAG, key)`: a bare option such as `ro`.
pub fn fsconfig_set_flag(fs: BorrowedFd<'_>, key: &CStr) -> Result<(), Errno> {
    fsconfig(fs, FSCONFIG_SET_FLAG, Some(key), None, 0)
}

/// `fsconfig(FSCONFIG_SET_STRING, key, value)`: a `key=value` option.
pub fn fsconfig_set_string(fs: BorrowedFd<'_>, key: &CStr, value: &CStr) -> Result<(), Errno> {
    fsconfig(fs, FSCONFIG_SET_STRING, Some(key), Some(value), 0)
}

/// `fsconfig(FSCONFIG_CMD_CREATE)`: makes the superblock.
pub fn fsconfig_create(fs: BorrowedFd<'_>) -> Result<(), Errno> {
    fsconfig(fs, FSCONFIG_CMD_CREATE, None, None, 0)
}

/// `fsmount(fs, FSMOUNT_CLOEXEC, attrs)`: a detached mount of the created
/// superblock, with `MOUNT_ATTR_*` flags.
pub fn fsmount(fs: BorrowedFd<'_>, attrs: u64) -> Result<OwnedFd, Errno> {
    const FSMOUNT_CLOEXEC: libc::c_uint = 0x1;
    // SAFETY: plain integer arguments; `fs` is borrowed for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            attrs as libc::c_uint,
        )
    };
    if ret < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel returned a new fd that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

/// `move_mount(fd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH)`: attaches
/// a detached mount tree at `target`.
pub fn move_mount_to(fd: BorrowedFd<'_>, target: &std::path::Path) -> Result<(), Errno> {
    let c = path_cstring(target)?;
    // SAFETY: both paths are valid NUL-terminated strings for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            c.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// Takes ownership of an fd this process inherited at a fixed number (a
/// helper's control socket, passed by its parent as fd 3). Fails with EBADF
/// when nothing is open there (or the number is not in 3..=63), EBUSY when
/// that number was taken before.
///
/// Sound as far as an inherited fd can be: the token says we are still in
/// the single-threaded start of `main` (nothing of ours opened that number
/// yet, no other thread could), and each number is taken at most once, so
/// no second `OwnedFd` of it is made here.
pub fn take_inherited_fd(_single: &SingleThreaded, fd: RawFd) -> Result<OwnedFd, Errno> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static TAKEN: AtomicU64 = AtomicU64::new(0);
    let bit = match u32::try_from(fd) {
        Ok(n @ 3..=63) => 1u64 << n,
        _ => return Err(Errno::EBADF),
    };
    if TAKEN.fetch_or(bit, Ordering::SeqCst) & bit != 0 {
        return Err(Errno::EBUSY);
    }
    nix::fcntl::fcntl(
        // SAFETY: we only borrow `fd` for this F_GETFD probe; EBADF when closed.
        unsafe { BorrowedFd::borrow_raw(fd) },
        nix::fcntl::FcntlArg::F_GETFD,
    )?;
    // SAFETY: the fd is open (checked above) and was handed to this process
    // for it to own; no other OwnedFd refers to it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// One reaped child with its resource usage (that of the child and of the
/// descendants it waited for).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reaped {
    pub pid: i32,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub user_us: u64,
    pub system_us: u64,
    pub max_rss_kb: u64,
}

/// `wait4(-1, WNOHANG)`: `Ok(None)` when no child has ended (or none is left).
pub fn reap_any() -> Result<Option<Reaped>, Errno> {
    let mut status: libc::c_int = 0;
    // SAFETY: all-zero is a valid `rusage` (plain integers and timevals).
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers refer to live locals for the duration of the call.
    let pid = unsafe { libc::wait4(-1, &mut status, libc::WNOHANG, &mut ru) };
    if pid < 0 {
        let e = Errno::last();
        return if e == Errno::ECHILD { Ok(None) } else { Err(e) };
    }
    if pid == 0 {
        return Ok(None);
    }
    let us = |tv: libc::timeval| (tv.tv_sec as u64) * 1_000_000 + tv.tv_usec as u64;
    let (code, signal) = if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else if libc::WIFSIGNALED(status) {
        (None, Some(libc::WTERMSIG(status)))
    } else {
        (None, None)
    };
    Ok(Some(Reaped {
        pid,
        code,
        signal,
        user_us: us(ru.ru_utime),
        system_us: us(ru.ru_stime),
        max_rss_kb: ru.ru_maxrss.max(0) as u64,
    }))
}

/// Makes `fd` appear as `target` (without close-on-exec) in the program a
/// `Command` starts: how the daemon hands a helper its control socket. The
/// command keeps `fd` open until it is dropped, so the number the child
/// dup2s from is always this fd, never a later one that reused it.
pub fn pass_fd_to_command(cmd: &mut std::process::Command, fd: OwnedFd, target: RawFd) {
    use std::os::unix::process::CommandExt;
    let keep = fd;
    // SAFETY: the closure runs in the forked child before exec and only
    // makes async-signal-safe calls (dup2, fcntl) on fd numbers; it
    // allocates nothing and touches no lock. `keep`, moved in, holds the
    // fd open for as long as the command exists.
    unsafe {
        cmd.pre_exec(move || {
            let fd = keep.as_raw_fd();
            if fd == target {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, target) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// CLOCK_MONOTONIC in nanoseconds (the clock `Instant` uses), comparable
/// across processes.
pub fn monotonic_ns() -> u64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(ts) => (ts.tv_sec() as u64) * 1_000_000_000 + ts.tv_nsec() as u64,
        Err(_) => 0,
    }
}
