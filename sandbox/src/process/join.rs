//! A new process in a running container (`runtimed oci exec`): it joins
//! what the container's init is in and then goes through the same program
//! steps as the container's own program (`init::program`): identity,
//! rlimits, capabilities, no_new_privs, Landlock, the container's seccomp
//! filter last before `execve`.
//!
//! The order, parent side then child side:
//! - parent: plan the process (the container's config with the exec's
//!   `process`, planned as `create` planned it), compile the same seccomp
//!   filter, open the cgroup's `cgroup.procs` files, pick the namespaces
//!   that differ from ours; all before any fork, so the child only makes
//!   system calls.
//! - child ("joiner"): not dumpable first (from the moment it is in the
//!   container's user namespace, a process of the container with
//!   CAP_SYS_PTRACE there could otherwise attach to a process that still
//!   holds the runtime's fds and host root's view; runc's nsexec does the
//!   same); joins the cgroup while still host root (the kernel's check for
//!   a move, and so the process is accounted and limited before it runs
//!   anything of its own); then one `setns` on the init's pidfd with every
//!   namespace flag (user first is the kernel's own order for a pidfd, and
//!   a pidfd cannot name a recycled pid); becomes root inside; forks.
//! - grandchild: born in the container's pid namespace (setns of a pid
//!   namespace only affects children); opens its terminal in the
//!   container's devpts; the program steps; execve.
//! - the joiner reports the grandchild's host pid and exits: nothing of
//!   runtimed stays in the container (the caller, as subreaper, or the
//!   engine's shim reaps the process).
//!
//! Failures come back as [`ChildMessage::StepFailed`] on a channel whose
//! ends close on exec: EOF after the pid means the program runs.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::sched::CloneFlags;
use oci_spec::runtime::Spec;

use super::channel::{Channel, ChildMessage};
use super::init::{self, Launch, ProgramCtx};
use super::StepError;
use crate::helper::{self, Forked, SingleThreaded};
use crate::report::{Step, StepFailure};
use crate::seccomp::{self, SeccompError};
use crate::spec::{plan, SpecError};
use crate::sys::ops::{Linux, Syscalls};
use crate::RunOptions;

/// Errors of joining a container.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    #[error(transparent)]
    NotSingleThreaded(#[from] crate::helper::NotSingleThreaded),
    #[error("{what}: {source}")]
    Sys { what: String, source: Errno },
    /// A step of the joining child failed.
    #[error("{0}")]
    Step(StepFailure),
    #[error("the joining child broke the protocol: {0}")]
    Protocol(String),
}

impl JoinError {
    /// The exit status `exec` returns for this failure (127 for a program
    /// that does not exist, 126 for one that cannot be executed, as a
    /// shell and runc do).
    pub fn exit_status(&self) -> i32 {
        match self {
            JoinError::Step(f) => crate::report::failure_status(f.step, f.errno),
            _ => crate::report::failure_status(Step::Setup, None),
        }
    }
}

fn sys_err(what: impl Into<String>) -> impl FnOnce(Errno) -> JoinError {
    let what = what.into();
    move |source| JoinError::Sys { what, source }
}

/// The container to join.
#[derive(Debug)]
pub struct Target<'a> {
    /// Host pid of the container's init (the namespaces' source).
    pub init_pid: i32,
    /// A pidfd of that init, opened after checking its identity: the
    /// namespaces are entered through it, never through a pid number.
    pub init_pidfd: BorrowedFd<'a>,
    /// The container's cgroup directories, one per hierarchy.
    pub cgroup_paths: &'a [PathBuf],
}

/// The process that runs.
#[derive(Debug)]
pub struct Joined {
    /// Its host pid.
    pub pid: i32,
    /// The master of its terminal (opened in the container) when the
    /// spec's process asks for one.
    pub pty_master: Option<OwnedFd>,
}

/// The namespace kinds an exec joins, in `/proc/<pid>/ns` names, with
/// their `setns` flags. The time namespace is left out: runtimed does not
/// make one.
const NAMESPACES: [(&str, CloneFlags); 7] = [
    ("user", CloneFlags::CLONE_NEWUSER),
    ("mnt", CloneFlags::CLONE_NEWNS),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("net", CloneFlags::CLONE_NEWNET),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
];

/// Which of the init's namespaces differ from ours: joining one's own
/// user namespace is EINVAL, and a container may share the host's net
/// namespace (host networking).
fn namespaces_to_join(init_pid: i32) -> Result<CloneFlags, JoinError> {
    use std::os::unix::fs::MetadataExt;
    let mut flags = CloneFlags::empty();
    for (kind, flag) in NAMESPACES {
        let theirs = std::fs::metadata(format!("/proc/{init_pid}/ns/{kind}"))
            .map_err(|e| sys_err(format!("the container's {kind} namespace"))(io_errno(&e)))?;
        let ours = std::fs::metadata(format!("/proc/self/ns/{kind}"))
            .map_err(|e| sys_err(format!("our {kind} namespace"))(io_errno(&e)))?;
        if (theirs.dev(), theirs.ino()) != (ours.dev(), ours.ino()) {
            flags |= flag;
        }
    }
    Ok(flags)
}

fn io_errno(e: &std::io::Error) -> Errno {
    e.raw_os_error().map_or(Errno::EIO, Errno::from_raw)
}

/// Starts `spec`'s process in the container `target`. `spec` is the
/// container's config with the exec's `process`; `opts` are the options
/// the container was created with (the same plan rules and seccomp
/// profile). Returns once the program was exec'd (or failed to be).
pub fn exec(
    target: &Target<'_>,
    spec: &Spec,
    opts: &RunOptions,
    single: &SingleThreaded,
) -> Result<Joined, JoinError> {
    single.recheck()?;
    let plan = plan(spec, opts)?;
    // The filter `create` gave the container: the config's `linux.seccomp`
    // or the named profile (spawn::claim's choice, one function).
    let filter = seccomp::compile_for_spec(spec, opts.seccomp, opts.build_capabilities)?;
    let procs = target
        .cgroup_paths
        .iter()
        .map(|dir| {
            let p = dir.join("cgroup.procs");
            nix::fcntl::open(
                &p,
                nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(sys_err("open the container's cgroup"))
        })
        .collect::<Result<Vec<OwnedFd>, _>>()?;
    let flags = namespaces_to_join(target.init_pid)?;
    let (parent_ch, child_ch) = Channel::pair().map_err(sys_err("socketpair"))?;
    let joiner = match helper::fork(single).map_err(sys_err("fork"))? {
        Forked::Child(single) => {
            drop(parent_ch);
            let ctx = ProgramCtx {
                plan: &plan,
                seccomp: filter.as_ref(),
                landlock: opts.landlock,
            };
            let code = joiner(&mut Linux, &single, &ctx, target, flags, &procs, &child_ch);
            helper::exit_now(code)
        }
        Forked::Parent(pid) => pid,
    };
    drop(child_ch);
    drop(procs);
    let outcome = collect(&parent_ch);
    // The joiner exits right after reporting the pid (or a failure).
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(joiner), None);
    outcome
}

/// Reads the children's messages until both ends closed (the joiner
/// exited, the program exec'd): the pid, the pty, or a failure.
fn collect(ch: &Channel) -> Result<Joined, JoinError> {
    let mut pid = None;
    let mut pty_master = None;
    loop {
        match ch.recv_child().map_err(sys_err("read the joining child"))? {
            None => break,
            Some((ChildMessage::Started { pid: p, .. }, _)) => pid = Some(p),
            Some((ChildMessage::PtyMaster, Some(fd))) => pty_master = Some(fd),
            Some((
                ChildMessage::StepFailed {
                    step,
                    errno,
                    message,
                },
                _,
            )) => {
                return Err(JoinError::Step(StepFailure {
                    step,
                    errno,
                    message,
                }))
            }
            Some((other, _)) => return Err(JoinError::Protocol(format!("{other:?}"))),
        }
    }
    match pid {
        Some(pid) => Ok(Joined { pid, pty_master }),
        None => Err(JoinError::Protocol(
            "the joining child exited without a pid".into(),
        )),
    }
}

fn report(ch: &Channel, err: &StepError) {
    let _ = ch.send_child(
        &ChildMessage::StepFailed {
            step: err.step,
            errno: err.errno,
            message: err.message.clone(),
        },
        None,
    );
}

/// The joiner's steps; returns its exit status.
fn joiner(
    ops: &mut dyn Syscalls,
    single: &SingleThreaded,
    ctx: &ProgramCtx<'_>,
    target: &Target<'_>,
    flags: CloneFlags,
    procs: &[OwnedFd],
    ch: &Channel,
) -> i32 {
    match enter(ops, target, flags, procs) {
        Ok(()) => {}
        Err(err) => {
            report(ch, &err);
            return 1;
        }
    }
    // fork: setns(CLONE_NEWPID) put only our children in the container's
    // pid namespace (pid_namespaces(7)).
    match helper::fork(single) {
        Err(er) => {
            report(
                ch,
                &StepError::new(Step::JoinNamespaces, Some(er), "fork".into()),
            );
            1
        }
        Ok(Forked::Parent(pid)) => {
            // The fork's return is the pid in our (the host's) namespace.
            let _ = ch.send_child(&ChildMessage::Started { pid, start_ns: 0 }, None);
            0
        }
        Ok(Forked::Child(_)) => {
            let err = program(ops, ctx, ch);
            report(ch, &err);
            init::failed_status(&err)
        }
    }
}

/// dumpable off, cgroup, namespaces, root inside.
fn enter(
    ops: &mut dyn Syscalls,
    target: &Target<'_>,
    flags: CloneFlags,
    procs: &[OwnedFd],
) -> Result<(), StepError> {
    let fail = |step, er, what: &str| StepError::new(step, Some(er), what.into());
    // not_dumpable: before we are in the container's user namespace (see
    // the module doc); execve sets it back for the program.
    ops.set_dumpable(false)
        .map_err(|er| fail(Step::JoinNamespaces, er, "prctl(PR_SET_DUMPABLE)"))?;
    // join_cgroup: while host root, before anything else runs.
    for fd in procs {
        ops.join_cgroup(fd.as_fd())
            .map_err(|er| fail(Step::JoinCgroup, er, "join the container's cgroup"))?;
    }
    // setns through the pidfd: every namespace at once, the kernel enters
    // the user namespace first so the others are checked against it.
    nix::sched::setns(target.init_pidfd, flags)
        .map_err(|er| fail(Step::JoinNamespaces, er, "setns to the container's init"))?;
    // become_root: uid/gid 0 of the container (host root is unmapped
    // there); the program steps then take the process's own ids.
    if flags.contains(CloneFlags::CLONE_NEWUSER) {
        ops.setresgid(0)
            .map_err(|er| fail(Step::BecomeRoot, er, "setresgid 0"))?;
        ops.setresuid(0)
            .map_err(|er| fail(Step::BecomeRoot, er, "setresuid 0"))?;
    }
    Ok(())
}

/// The grandchild: terminal, then the program steps. Returns only on
/// failure.
fn program(ops: &mut dyn Syscalls, ctx: &ProgramCtx<'_>, ch: &Channel) -> StepError {
    let pty = if ctx.plan.terminal {
        // In the container's mount namespace: the terminal is the
        // container's devpts's, as its own program's is.
        match init::new_pty(ctx.plan.tty_size) {
            Ok(pair) => Some(pair),
            Err(err) => return err,
        }
    } else {
        None
    };
    if let Some((master, _)) = &pty {
        if let Err(er) = ch.send_child(&ChildMessage::PtyMaster, Some(master.as_fd())) {
            return StepError::new(Step::OpenPty, Some(er), "send the pty master".into());
        }
    }
    let (stdin, stdout, stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    let launch = Launch {
        args: &ctx.plan.args,
        env: &ctx.plan.env,
        path_dirs: &ctx.plan.path_dirs,
        cwd: &ctx.plan.cwd,
        stdio: [stdin.as_fd(), stdout.as_fd(), stderr.as_fd()],
        reset_oom_score: false,
        // The joiner put the process in the container's cgroup already.
        join_cgroup: &[],
    };
    // The master stays open until exec (CLOEXEC): the caller has its copy.
    let slave = pty.as_ref().map(|(_, s)| s.as_fd());
    init::program(ops, ctx, slave, &launch)
}
