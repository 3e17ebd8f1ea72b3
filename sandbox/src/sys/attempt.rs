//! System calls a sandbox must not reach, tried once with fixed, harmless
//! arguments: the in-sandbox probe's attacks (tests/src/bin/probe.rs) and
//! `doctor`-style self checks. Each returns what the kernel (or the
//! seccomp filter in front of it) answered; an fd a call returns is closed.
//! The arguments are chosen here, not by the caller, which is what makes
//! these safe to offer outside the crate.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

use crate::helper::SingleThreaded;

fn result(ret: libc::c_long, errno: Errno) -> Result<libc::c_long, Errno> {
    if ret < 0 {
        Err(errno)
    } else {
        Ok(ret)
    }
}

/// A call that returns a new fd on success: close it.
fn closing(ret: libc::c_long, errno: Errno) -> Result<(), Errno> {
    let fd = result(ret, errno)?;
    // SAFETY: the kernel just returned this new fd; nothing else owns it.
    drop(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
    Ok(())
}

/// `ptrace(PTRACE_TRACEME)`: the caller becomes traceable by its parent
/// (changes no memory of ours).
pub fn ptrace_traceme() -> Result<(), Errno> {
    // SAFETY: integer arguments; addr and data are ignored for TRACEME.
    let (ret, errno) =
        unsafe { super::raw_syscall3(libc::SYS_ptrace, libc::PTRACE_TRACEME as usize, 0, 0) };
    result(ret, errno).map(drop)
}

/// `ptrace(PTRACE_ATTACH, pid)`: stops and traces another process (its
/// memory, not ours, becomes reachable).
pub fn ptrace_attach(pid: i32) -> Result<(), Errno> {
    // SAFETY: integer arguments; addr and data are ignored for ATTACH.
    let (ret, errno) = unsafe {
        super::raw_syscall3(
            libc::SYS_ptrace,
            libc::PTRACE_ATTACH as usize,
            pid as usize,
            0,
        )
    };
    result(ret, errno).map(drop)
}

/// `bpf(BPF_MAP_CREATE)` of a one-entry array map.
pub fn bpf_map_create() -> Result<(), Errno> {
    const BPF_MAP_CREATE: usize = 0;
    const BPF_MAP_TYPE_ARRAY: u32 = 2;
    let mut attr = [0u32; 32];
    attr[0] = BPF_MAP_TYPE_ARRAY;
    attr[1] = 4; // key_size
    attr[2] = 4; // value_size
    attr[3] = 1; // max_entries
                 // SAFETY: `attr` is live for the call; the kernel reads at most `size`
                 // bytes of it.
    let (ret, errno) = unsafe {
        super::raw_syscall3(
            libc::SYS_bpf,
            BPF_MAP_CREATE,
            attr.as_ptr() as usize,
            std::mem::size_of_val(&attr),
        )
    };
    closing(ret, errno)
}

/// `perf_event_open` of a software CPU-clock counter on ourselves, user
/// space only (allowed at perf_event_paranoid <= 2). group_fd and flags are
/// 0 (three arguments only): on the host this may fail with EBADF, but a
/// seccomp filter decides on the number before any argument is read.
pub fn perf_event_open_self() -> Result<(), Errno> {
    let mut attr = [0u64; 16];
    attr[0] = 1 | ((std::mem::size_of_val(&attr) as u64) << 32); // PERF_TYPE_SOFTWARE, size
    attr[1] = 0; // PERF_COUNT_SW_CPU_CLOCK
    attr[5] = 1 | (1 << 5) | (1 << 6); // disabled, exclude_kernel, exclude_hv
                                       // SAFETY: `attr` is live for the call and as large as it says; pid 0
                                       // (ourselves), cpu -1.
    let (ret, errno) = unsafe {
        super::raw_syscall3(
            libc::SYS_perf_event_open,
            attr.as_ptr() as usize,
            0,
            usize::MAX,
        )
    };
    closing(ret, errno)
}

/// `keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, create)`.
pub fn keyctl_session_keyring() -> Result<(), Errno> {
    const KEYCTL_GET_KEYRING_ID: usize = 0;
    const KEY_SPEC_SESSION_KEYRING: i32 = -3;
    // SAFETY: integer arguments only.
    let (ret, errno) = unsafe {
        super::raw_syscall3(
            libc::SYS_keyctl,
            KEYCTL_GET_KEYRING_ID,
            KEY_SPEC_SESSION_KEYRING as isize as usize,
            1,
        )
    };
    result(ret, errno).map(drop)
}

/// `add_key("user", "runtimed-probe", NULL, 0, 0)`: no payload, no
/// keyring (EINVAL past a filter that lets it through).
pub fn add_key() -> Result<(), Errno> {
    let (key_type, description) = (c"user", c"runtimed-probe");
    // SAFETY: two live NUL-terminated strings; payload NULL, length 0.
    let (ret, errno) = unsafe {
        super::raw_syscall3(
            libc::SYS_add_key,
            key_type.as_ptr() as usize,
            description.as_ptr() as usize,
            0,
        )
    };
    result(ret, errno).map(drop)
}

/// `io_uring_setup(4, &params)` with default parameters.
pub fn io_uring_setup() -> Result<(), Errno> {
    // struct io_uring_params is 120 bytes; all zero asks for defaults.
    let mut params = [0u32; 30];
    // SAFETY: `params` is live and 120 bytes, as the kernel reads and
    // writes it.
    let (ret, errno) = unsafe {
        super::raw_syscall3(libc::SYS_io_uring_setup, 4, params.as_mut_ptr() as usize, 0)
    };
    closing(ret, errno)
}

/// `userfaultfd(O_CLOEXEC | O_NONBLOCK)`.
pub fn userfaultfd() -> Result<(), Errno> {
    let flags = (libc::O_CLOEXEC | libc::O_NONBLOCK) as usize;
    // SAFETY: integer arguments only; the fd is closed.
    let (ret, errno) = unsafe { super::raw_syscall3(libc::SYS_userfaultfd, flags, 0, 0) };
    closing(ret, errno)
}

/// A fork-like `clone3` whose child leaves at once; the parent reaps it.
pub fn clone3(single: &SingleThreaded) -> Result<(), Errno> {
    match super::clone_namespaces(single, 0, false, None)? {
        super::CloneResult::Child(_) => super::exit_now(0),
        super::CloneResult::Parent { pid, .. } => {
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            Ok(())
        }
    }
}

/// The old `setrlimit(RLIMIT_CORE, {0, 0})` system call (x86_64 has it
/// beside prlimit64, which glibc's setrlimit uses): lowering the core
/// limit is what a confined profile answers with success and ignores.
#[cfg(target_arch = "x86_64")]
pub fn setrlimit_core_zero_legacy() -> Result<(), Errno> {
    let lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a live rlimit the kernel only reads; lowering a
    // limit changes no memory.
    let (ret, errno) = unsafe {
        super::raw_syscall3(
            libc::SYS_setrlimit,
            libc::RLIMIT_CORE as usize,
            std::ptr::addr_of!(lim) as usize,
            0,
        )
    };
    result(ret, errno).map(drop)
}

/// `personality(value)`, then back to the previous persona: how a probe
/// sees a filter on the argument (Docker allows a few values only).
pub fn personality(value: u32) -> Result<(), Errno> {
    // SAFETY: integer arguments only; a persona changes no memory of ours.
    let (ret, errno) = unsafe { super::raw_syscall3(libc::SYS_personality, value as usize, 0, 0) };
    let old = result(ret, errno)?;
    // SAFETY: as above; restores what the first call returned.
    let _ = unsafe { super::raw_syscall3(libc::SYS_personality, old as usize, 0, 0) };
    Ok(())
}

/// A fork-like `clone(flags | SIGCHLD)` whose child leaves at once; the
/// parent reaps it. Only namespace flags are passed (others are masked
/// off): how a probe sees a filter on clone's flags.
pub fn clone_with_namespace_flags(_single: &SingleThreaded, flags: u32) -> Result<(), Errno> {
    let ns = (libc::CLONE_NEWNS
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUSER
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWCGROUP) as u32;
    let flags = (flags & ns) as usize | libc::SIGCHLD as usize;
    // SAFETY: without CLONE_VM and a stack the child gets a copy of our
    // memory, as with fork; the token proves we are single-threaded, so
    // the copy holds no lock another thread had; the child only exits.
    let (ret, errno) = unsafe { super::raw_syscall3(libc::SYS_clone, flags, 0, 0) };
    match result(ret, errno)? {
        0 => super::exit_now(0),
        pid => {
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid as i32), None);
            Ok(())
        }
    }
}
