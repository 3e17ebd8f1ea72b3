//! Helper processes: what a single-threaded process may do that a
//! threaded one may not. `runtimed`'s `main` proves it is single-threaded
//! once ([`SingleThreaded::check`]), before any runtime or thread exists,
//! and passes the proof down to what forks: `Sandbox::create` (whose child
//! runs Rust setup code on a copy of the caller), the daemon's zygote and
//! its helpers, `doctor`'s probes.
//!
//! Why a proof and not a comment: a child forked (or cloned) from a
//! process with other threads inherits their locks held forever (malloc's,
//! stdio's, the allocator's arenas with raw `clone3`), so the Rust code it
//! runs can deadlock or, with no atfork handlers run, corrupt the heap.
//! House style (docs/process-model.md): never run Rust setup code in a
//! child forked from a tokio thread.

use std::marker::PhantomData;
use std::os::fd::{OwnedFd, RawFd};

use nix::errno::Errno;

use crate::sys;

/// Proof that this process had exactly one thread when it was made, held by
/// that thread. Not `Clone`, `Copy`, `Send` nor `Sync`: it cannot reach a
/// thread spawned later (a tokio worker never holds one). A process that
/// starts threads after making it could still use it on the main thread;
/// [`SingleThreaded::recheck`] (which `Sandbox::create` calls) catches
/// that at the point where it matters.
#[derive(Debug)]
pub struct SingleThreaded {
    _not_send: PhantomData<*const ()>,
}

/// This process has more than one thread (or the count is unreadable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotSingleThreaded {
    #[error("this process has {threads} threads; sandboxes and helpers are forked from a single-threaded process only")]
    Threads { threads: u64 },
    #[error("cannot count this process's threads: {0}")]
    Unreadable(String),
}

impl SingleThreaded {
    /// Checks that the process has one thread now (`/proc/self/stat`,
    /// field 20 `num_threads`).
    pub fn check() -> Result<SingleThreaded, NotSingleThreaded> {
        match thread_count()? {
            1 => Ok(SingleThreaded::in_new_child()),
            threads => Err(NotSingleThreaded::Threads { threads }),
        }
    }

    /// Checks again that nothing started a thread since the token was made.
    pub fn recheck(&self) -> Result<(), NotSingleThreaded> {
        match thread_count()? {
            1 => Ok(()),
            threads => Err(NotSingleThreaded::Threads { threads }),
        }
    }

    /// The token of a child just forked or cloned (without CLONE_THREAD)
    /// by a single-threaded process: the kernel copies only the calling
    /// thread, so the child has exactly one.
    pub(crate) fn in_new_child() -> SingleThreaded {
        SingleThreaded {
            _not_send: PhantomData,
        }
    }

    /// A token for the unit tests that run PID 1's steps against the
    /// recording fake: they carry it in a `ChildContext` but fork nothing.
    #[cfg(test)]
    pub(crate) fn for_steps_that_fork_nothing() -> SingleThreaded {
        SingleThreaded::in_new_child()
    }
}

/// `num_threads` of `/proc/self/stat` (field 20; after the `)` that ends
/// the command name, which may itself hold spaces and parentheses).
fn thread_count() -> Result<u64, NotSingleThreaded> {
    let unreadable = |why: String| NotSingleThreaded::Unreadable(why);
    let stat = std::fs::read_to_string("/proc/self/stat").map_err(|e| unreadable(e.to_string()))?;
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| unreadable("no ')' in /proc/self/stat".into()))?;
    // `rest` starts at field 3 (state): field 20 is its 18th word.
    rest.split_whitespace()
        .nth(17)
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| unreadable("no thread count in /proc/self/stat".into()))
}

/// What [`fork`] returns on each side.
#[derive(Debug)]
pub enum Forked {
    /// We are the parent; the child has this pid.
    Parent(i32),
    /// We are the child, single-threaded like the parent was.
    Child(SingleThreaded),
}

/// `fork(2)` of a single-threaded process.
pub fn fork(single: &SingleThreaded) -> Result<Forked, Errno> {
    sys::fork_single(single)
}

/// Runs `f` in a forked child and returns its wait status: irreversible
/// process state (a namespace, seccomp) tried without touching the caller.
pub fn run_in_child(
    single: &SingleThreaded,
    f: impl FnOnce() -> i32,
) -> Result<nix::sys::wait::WaitStatus, Errno> {
    sys::run_in_child(single, f)
}

/// `_exit(2)`: leave without running destructors or atexit handlers (the
/// right exit for a forked child).
pub fn exit_now(code: i32) -> ! {
    sys::exit_now(code)
}

/// Takes ownership of an fd this process inherited at a fixed number (a
/// helper's control socket as fd 3): EBADF when nothing is open there,
/// EBUSY when it was taken before.
pub fn take_inherited_fd(single: &SingleThreaded, fd: RawFd) -> Result<OwnedFd, Errno> {
    sys::take_inherited_fd(single, fd)
}

/// Makes `fd` appear as `target` in the program `cmd` starts (a helper's
/// control socket); `cmd` keeps `fd` open until it is dropped.
pub fn pass_fd_to_command(cmd: &mut std::process::Command, fd: OwnedFd, target: RawFd) {
    sys::pass_fd_to_command(cmd, fd, target)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// libtest runs this on one of its threads, beside its main thread:
    /// the check must refuse. (Breaking `check` to accept any count makes
    /// this fail.)
    #[test]
    fn the_check_refuses_a_process_with_threads() {
        // A thread of our own, so the count is > 1 even with
        // --test-threads=1 (where libtest may run tests on the main thread).
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            let _ = rx.recv();
        });
        match SingleThreaded::check() {
            Err(NotSingleThreaded::Threads { threads }) => assert!(threads >= 2, "{threads}"),
            other => panic!("check accepted a threaded process: {other:?}"),
        }
        drop(tx);
        t.join().unwrap();
    }

    /// In a forked child of this (threaded) test process only one thread
    /// exists: the check accepts there, and a token's recheck refuses once
    /// a thread was started after it.
    #[test]
    fn the_check_accepts_a_single_thread_and_recheck_sees_a_new_one() {
        let status = sys::test_support::run_in_child(|| {
            let Ok(token) = SingleThreaded::check() else {
                return 1;
            };
            if token.recheck().is_err() {
                return 2;
            }
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let t = std::thread::spawn(move || {
                let _ = rx.recv();
            });
            let refused = matches!(
                token.recheck(),
                Err(NotSingleThreaded::Threads { threads: 2 })
            );
            drop(tx);
            let _ = t.join();
            if refused {
                0
            } else {
                3
            }
        })
        .unwrap();
        assert!(
            matches!(status, nix::sys::wait::WaitStatus::Exited(_, 0)),
            "{status:?}"
        );
    }

    /// `Sandbox::create` checks the token again: a thread started after
    /// the token was made is refused before anything is made (no lock
    /// file, no cgroup). (Removing the recheck from `create` fails this.)
    #[test]
    fn create_refuses_once_a_thread_was_started() {
        let run_dir = std::env::temp_dir().join(format!("rtd-single-{}", std::process::id()));
        let status = sys::test_support::run_in_child(|| {
            let Ok(token) = SingleThreaded::check() else {
                return 1;
            };
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let t = std::thread::spawn(move || {
                let _ = rx.recv();
            });
            let opts = crate::RunOptions {
                run_dir: run_dir.clone(),
                ..crate::RunOptions::default()
            };
            let spec = crate::spec::base_spec(vec!["/bin/true".into()]);
            let res = crate::Sandbox::create(&spec, opts, &token);
            drop(tx);
            let _ = t.join();
            match res {
                Err(crate::SandboxError::NotSingleThreaded(NotSingleThreaded::Threads {
                    threads: 2,
                })) => {}
                // Not root: refused even earlier, nothing to see here.
                Err(crate::SandboxError::NotRoot) => return 0,
                _ => return 2,
            }
            // Nothing was made in the run dir.
            if run_dir.join("sandboxes").exists() || run_dir.join("uidpool").exists() {
                return 3;
            }
            0
        })
        .unwrap();
        let _ = std::fs::remove_dir_all(&run_dir);
        assert!(
            matches!(status, nix::sys::wait::WaitStatus::Exited(_, 0)),
            "{status:?}"
        );
    }

    /// The safe clone takes namespace flags only: CLONE_VM (a child on
    /// our memory with no stack of its own) or CLONE_FILES is EINVAL.
    #[test]
    fn clone_refuses_flags_that_share_memory_or_fds() {
        let status = sys::test_support::run_in_child(|| {
            let Ok(token) = SingleThreaded::check() else {
                return 1;
            };
            for flag in [
                libc::CLONE_VM,
                libc::CLONE_FILES,
                libc::CLONE_THREAD,
                libc::CLONE_SETTLS,
            ] {
                match sys::clone_namespaces(&token, flag as u64, false, None) {
                    Err(Errno::EINVAL) => {}
                    Ok(sys::CloneResult::Child(_)) => exit_now(9),
                    _ => return 2,
                }
            }
            0
        })
        .unwrap();
        assert!(
            matches!(status, nix::sys::wait::WaitStatus::Exited(_, 0)),
            "{status:?}"
        );
    }

    /// Only a standard fd can be replaced by `dup_onto_std`: an fd another
    /// owner holds is never closed under it.
    #[test]
    fn dup_onto_std_refuses_other_targets() {
        let f = std::fs::File::open("/dev/null").unwrap();
        let target = std::os::fd::AsRawFd::as_raw_fd(&f);
        let src = std::io::stdin();
        assert_eq!(
            sys::dup_onto_std(std::os::fd::AsFd::as_fd(&src), target),
            Err(Errno::EBADF)
        );
        // `f` is still open and still /dev/null.
        assert!(nix::sys::stat::fstat(&f).is_ok());
    }

    #[test]
    fn an_inherited_fd_is_taken_once() {
        let status = sys::test_support::run_in_child(|| {
            let Ok(token) = SingleThreaded::check() else {
                return 1;
            };
            // An unowned fd number (as a parent leaves one): a dup of
            // /dev/null at 40 or above, whose number nothing owns.
            let Ok(f) = std::fs::File::open("/dev/null") else {
                return 2;
            };
            let Ok(n) = nix::fcntl::fcntl(&f, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(40)) else {
                return 3;
            };
            let first = take_inherited_fd(&token, n);
            let second = take_inherited_fd(&token, n);
            let closed = take_inherited_fd(&token, n + 1);
            match (first, second, closed) {
                (Ok(_), Err(Errno::EBUSY), Err(Errno::EBADF)) => 0,
                _ => 4,
            }
        })
        .unwrap();
        assert!(
            matches!(status, nix::sys::wait::WaitStatus::Exited(_, 0)),
            "{status:?}"
        );
    }
}
