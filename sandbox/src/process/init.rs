//! The child side: the sandbox's PID 1 runs a flat list of named setup steps,
//! forks the program (which runs its own short list of steps and execs), then
//! stays as a minimal init that reaps zombies and forwards signals.
//!
//! This code runs in a child cloned from a single-threaded process (the
//! `runtimed run` CLI or the zygote), so allocation is safe here; it never
//! logs: failures go to the parent as `{step, errno, message}`.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::channel::{
    Channel, ChildMessage, GoFds, ParentMessage, SpawnFds, WriteFilesFds, WriteOutcome,
};
use super::StepError;
use crate::helper::SingleThreaded;
use crate::report::Step;
use crate::seccomp::SeccompFilter;
use crate::spec::plan::{MountKind, Plan, RootPlan};
use crate::sys::ops::{Linux, Syscalls};
use crate::{mounts, sys};

/// What the child gets from the parent (all computed before clone).
pub struct ChildContext<'a> {
    /// PID 1 is a clone of a single-threaded caller: the proof its own
    /// children (the program, a writer) are forked under.
    pub single: SingleThreaded,
    pub plan: &'a Plan,
    pub channel: &'a Channel,
    pub staging: &'a Path,
    pub seccomp: Option<&'a SeccompFilter>,
    pub landlock: bool,
    /// fds the program gets as 0, 1, 2 (unused in terminal mode).
    pub stdio: [BorrowedFd<'a>; 3],
    /// cgroup v1: open `tasks` files of the sandbox's cgroups; the child
    /// moves itself in, then makes its cgroup namespace (on v2 it was born
    /// in its cgroup and in a new cgroup namespace).
    pub join_cgroup: &'a [BorrowedFd<'a>],
    /// The binds of caller paths as detached mount trees (destination, fd),
    /// prepared by the parent.
    pub bind_trees: &'a [(std::path::PathBuf, RawFd)],
    /// A layered root's idmapped layer trees, prepared by the parent.
    pub layer_trees: mounts::LayerTrees<'a>,
    /// Join a fresh session keyring: only needed when the seccomp profile
    /// lets keyctl through (creating one costs ~0.4 ms).
    pub new_keyring: bool,
    /// Session mode: no program of its own; PID 1 serves spawn requests
    /// over the channel until the supervisor goes away.
    pub session: bool,
    /// Files to write before the program starts, and the fd of their
    /// bytes ([`crate::seed`]).
    pub seed: Option<(&'a crate::seed::Manifest, BorrowedFd<'a>)>,
    /// Container mode ([`crate::options::ContainerMode`]): the exec
    /// FIFO (an `O_PATH` fd). PID 1 reports ready, blocks opening it for
    /// writing until `start` opens it, then becomes the program.
    pub container_fifo: Option<BorrowedFd<'a>>,
}

/// What the program steps take from their sandbox: the plan (identity,
/// rlimits, capabilities), the compiled seccomp filter and whether to add
/// Landlock. A run's PID 1, a session's spawns and an `exec` into a
/// running container (`super::join`) share these steps.
pub(crate) struct ProgramCtx<'a> {
    pub plan: &'a Plan,
    pub seccomp: Option<&'a SeccompFilter>,
    pub landlock: bool,
}

impl<'a> ChildContext<'a> {
    fn program_ctx(&self) -> ProgramCtx<'a> {
        ProgramCtx {
            plan: self.plan,
            seccomp: self.seccomp,
            landlock: self.landlock,
        }
    }
}

fn e(step: Step, errno: Errno, msg: impl Into<String>) -> StepError {
    StepError::new(step, Some(errno), msg.into())
}

/// Sends a step failure to the parent. Paths below the staging directory are
/// shown as the sandbox will see them (`/usr/x`, not `<staging>/usr/x`).
fn report(ctx: &ChildContext<'_>, err: &StepError) {
    let staging = ctx.staging.to_string_lossy();
    let message = err
        .message
        .replace(&format!("{staging}/"), "/")
        .replace(staging.as_ref(), "/");
    let _ = ctx.channel.send_child(
        &ChildMessage::StepFailed {
            step: err.step,
            errno: err.errno,
            message,
        },
        None,
    );
}

/// Entry point of the cloned child (PID 1 of the new pid namespace).
pub fn run(ctx: ChildContext<'_>) -> ! {
    let started = setup(&mut Linux, &ctx).and_then(|pty| {
        if ctx.session {
            return Ok(None);
        }
        if let Some(fifo) = ctx.container_fifo {
            return Err(become_program(&ctx, pty, fifo));
        }
        start_program(&ctx, pty).map(Some)
    });
    let code = match started {
        Ok(None) => session_loop(&ctx),
        Ok(Some((program, master, start_ns))) => {
            drop(master);
            init_loop(&ctx, program, start_ns)
        }
        Err(err) if ctx.container_fifo.is_some() => {
            // Before `Ready` the parent (create) reads this; after it,
            // nobody is left to: the container's stderr is where its
            // engine looks.
            report(&ctx, &err);
            let line = format!("runtimed-runc: {}: {}\n", err.step.as_str(), err.message);
            let _ = nix::unistd::write(std::io::stderr(), line.as_bytes());
            failed_status(&err)
        }
        Err(err) => {
            report(&ctx, &err);
            1
        }
    };
    sys::exit_now(code)
}

/// Container mode, after setup: PID 1 reports ready (its `create` then
/// exits), waits for `start` and becomes the program through the same
/// program steps as a run's program child (the capabilities, identity,
/// no_new_privs, seccomp of the config; seccomp last). Returns only on
/// failure.
fn become_program(
    ctx: &ChildContext<'_>,
    pty: Option<(OwnedFd, OwnedFd)>,
    fifo: BorrowedFd<'_>,
) -> StepError {
    use nix::fcntl::{open, OFlag};
    // find_program: a missing program fails `create` with its name (the
    // engine shows it to its user, as runc's check does) rather than a
    // container that dies at start; exec still reports the real errno.
    if let Some(err) = missing_program(ctx.plan) {
        return err;
    }
    if let Err(er) = ctx.channel.send_child(&ChildMessage::Ready, None) {
        return e(Step::SpawnProgram, er, "report ready");
    }
    // wait_for_start: opening a FIFO for writing blocks until a reader
    // opens it (fifo(7)): `start` does. Reopened through /proc/self/fd,
    // as the FIFO's path is the host's, outside our new root; the O_PATH
    // fd itself cannot be written.
    let path = format!("/proc/self/fd/{}", fifo.as_raw_fd());
    let writer = loop {
        match open(
            path.as_str(),
            OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Err(Errno::EINTR) => continue,
            Err(er) => return e(Step::SpawnProgram, er, "wait for start on the exec fifo"),
            Ok(fd) => break fd,
        }
    };
    if let Err(er) = nix::unistd::write(&writer, b"0") {
        return e(Step::SpawnProgram, er, "write the exec fifo");
    }
    drop(writer);
    let launch = Launch::of_run(ctx);
    let slave = pty.as_ref().map(|(_, s)| s.as_fd());
    program(&mut Linux, &ctx.program_ctx(), slave, &launch)
}

/// What a program child needs beyond the plan: argv, environment, cwd and
/// stdio (the plan's for the one program of a run; a spawn request's in a
/// session).
pub(crate) struct Launch<'a> {
    pub args: &'a [CString],
    pub env: &'a [CString],
    pub path_dirs: &'a [String],
    pub cwd: &'a Path,
    /// fds the program gets as 0, 1, 2 (unused in terminal mode).
    pub stdio: [BorrowedFd<'a>; 3],
    /// Session mode: the OOM score the program starts with. PID 1 is
    /// unkillable by the OOM killer (-1000, set by the supervisor after
    /// start-up) and its children inherit that; a memcg whose tasks are
    /// all unkillable loops in OOM instead of killing the program.
    pub reset_oom_score: bool,
    /// Session mode: the fds of the process's own child cgroup (an
    /// exec's), joined as the first step.
    pub join_cgroup: &'a [BorrowedFd<'a>],
}

impl<'a> Launch<'a> {
    /// The one program of a run: the plan's argv, environment, cwd and
    /// stdio.
    fn of_run(ctx: &'a ChildContext<'a>) -> Launch<'a> {
        let plan = ctx.plan;
        Launch {
            args: &plan.args,
            env: &plan.env,
            path_dirs: &plan.path_dirs,
            cwd: &plan.cwd,
            stdio: ctx.stdio,
            reset_oom_score: false,
            // PID 1 joined the run's cgroup (v1) or was born in it (v2).
            join_cgroup: &[],
        }
    }
}

/// The exit status of a program child that failed before exec.
pub(crate) fn failed_status(err: &StepError) -> i32 {
    crate::report::failure_status(err.step, err.errno)
}

/// The setup steps, in order. Each line names the step and why it is here.
/// Returns the pty (master, slave) in terminal mode. Every system call
/// goes through `ops` (the real ones, or a recording fake in the tests).
fn setup(
    ops: &mut dyn Syscalls,
    ctx: &ChildContext<'_>,
) -> Result<Option<(OwnedFd, OwnedFd)>, StepError> {
    let plan = ctx.plan;
    // close_fds: first, so no caller fd (a directory fd would lead out of
    // the new root) survives into the sandbox.
    let mut keep = vec![ctx.channel.raw_fd()];
    keep.extend(
        ctx.stdio
            .iter()
            .map(|fd| fd.as_raw_fd())
            .filter(|fd| *fd >= 3),
    );
    keep.extend(ctx.seed.map(|(_, fd)| fd.as_raw_fd()));
    keep.extend(ctx.container_fifo.map(|fd| fd.as_raw_fd()));
    let keep_while_mounting: Vec<RawFd> = keep
        .iter()
        .copied()
        .chain(ctx.bind_trees.iter().map(|(_, fd)| *fd))
        .chain(ctx.layer_trees.lowers.iter().copied())
        .chain(ctx.layer_trees.upper)
        .collect();
    let keep_while_joining: Vec<RawFd> = keep_while_mounting
        .iter()
        .copied()
        .chain(ctx.join_cgroup.iter().map(|fd| fd.as_raw_fd()))
        .collect();
    ops.close_fds_except(3, &keep_while_joining)
        .map_err(|er| e(Step::CloseFds, er, "close inherited fds"))?;
    // join_cgroup (v1): before any other work, so all of it is accounted and
    // limited, and while our euid is still global root (the kernel's
    // permission check for the move). Then the cgroup namespace, rooted at
    // the sandbox's own cgroup.
    if !ctx.join_cgroup.is_empty() {
        for fd in ctx.join_cgroup {
            ops.join_cgroup(*fd)
                .map_err(|er| e(Step::JoinCgroup, er, "move into the sandbox's cgroup"))?;
        }
        ops.close_fds_except(3, &keep_while_mounting)
            .map_err(|er| e(Step::JoinCgroup, er, "close the tasks files"))?;
        ops.unshare_cgroup_namespace()
            .map_err(|er| e(Step::CgroupNamespace, er, "unshare cgroup namespace"))?;
    }
    // scrub_caller: PID 1 is a copy of the caller; its argv and environment
    // (host paths, the caller's secrets) would show in /proc/1/cmdline and
    // /proc/1/environ inside. Overwrite them, then turn off dumpability so
    // nothing inside can read or trace PID 1's memory.
    ops.scrub_caller().map_err(|er| {
        e(
            Step::ScrubCaller,
            er,
            "overwrite the caller's argv and environment",
        )
    })?;
    // wait_for_parent: the id maps must be written before we act as root in
    // the namespace (user_namespaces(7)).
    // With a layered root, the go carries its trees (idmapped with this
    // namespace once its maps exist): the layers, bottom first, then a
    // host upper dir's.
    let layer_fds = match ctx.channel.recv_parent_fds() {
        Ok(Some((ParentMessage::Go, fds))) => fds,
        Ok(None | Some(_)) => {
            return Err(StepError::new(
                Step::WaitForParent,
                None,
                "the parent went away or sent no go".into(),
            ))
        }
        Err(er) => return Err(e(Step::WaitForParent, er, "read from parent")),
    };
    // become_root: after the maps exist, become uid/gid 0 of the namespace,
    // or files we create would have an unmapped owner (EOVERFLOW).
    ops.setresgid(0)
        .map_err(|er| e(Step::BecomeRoot, er, "setresgid 0"))?;
    ops.setresuid(0)
        .map_err(|er| e(Step::BecomeRoot, er, "setresuid 0"))?;
    // parent_death: if the supervisor dies (even by SIGKILL), PID 1 gets
    // SIGKILL and the kernel kills the whole pid namespace. After
    // become_root: changing credentials clears the setting (prctl(2)). A
    // supervisor that died before this line shows as a hung-up channel.
    // Not for a container: it outlives its `create` by design.
    if ctx.container_fifo.is_none() {
        ops.set_parent_death_signal()
            .map_err(|er| e(Step::ParentDeath, er, "prctl(PR_SET_PDEATHSIG)"))?;
    }
    if ctx.channel.hung_up() {
        return Err(StepError::new(
            Step::ParentDeath,
            None,
            "the supervisor is gone".into(),
        ));
    }
    // hostname: in the new UTS namespace (a joined one keeps its own).
    if plan.set_hostname {
        ops.sethostname(&plan.hostname)
            .map_err(|er| e(Step::Hostname, er, format!("sethostname {}", plan.hostname)))?;
    }
    // mount_propagation, mount_root, layout, dev, proc, extra mounts: build
    // the root below the staging dir; proc before the old root goes away.
    mounts::make_private(ops)?;
    let layers = match &plan.root {
        RootPlan::Layers(l) => l.layers.len(),
        // A container's root: one tree (its bundle root, idmapped, or the
        // overlay rebuilt from its idmapped layers).
        RootPlan::Bundle { .. } => 1,
        _ => 0,
    };
    let go = GoFds::from_received(layer_fds, layers).map_err(|er| {
        e(
            Step::WaitForParent,
            er,
            "the go's fds are not the root's layer trees",
        )
    })?;
    let lowers_raw: Vec<RawFd> = go.lowers.iter().map(|f| f.as_raw_fd()).collect();
    let trees = if lowers_raw.is_empty() {
        ctx.layer_trees
    } else {
        mounts::LayerTrees {
            lowers: &lowers_raw,
            upper: go.upper.as_ref().map(|f| f.as_raw_fd()),
        }
    };
    mounts::mount_root(ops, plan, ctx.staging, trees)?;
    drop(go);
    if let RootPlan::Host(layout) = &plan.root {
        mounts::mount_host_layout(ops, plan, layout, ctx.staging)?;
    }
    mounts::mount_dev(ops, plan, ctx.staging)?;
    mounts::mount_proc(ops, ctx.staging)?;
    mounts::mount_extra(ops, plan, ctx.staging, ctx.bind_trees)?;
    if keep_while_mounting.len() > keep.len() {
        ops.close_fds_except(3, &keep)
            .map_err(|er| e(Step::MountExtra, er, "close the mount fds"))?;
    }
    // pivot_root: the old root is detached; only what we mounted is left.
    mounts::pivot(ops, ctx.staging)?;
    // sysctl: after pivot_root, through the sandbox's own /proc (so only
    // its namespaces' copies are reached), before mask_paths makes
    // /proc/sys read-only. As root of the user namespace: the parameters
    // of namespaces it owns are its to set.
    for (key, value) in &plan.sysctl {
        ops.write_sysctl(key, value.as_bytes())
            .map_err(|er| e(Step::Sysctl, er, format!("set {key}")))?;
    }
    // mask_paths: after pivot_root, on the sandbox's own /proc.
    mounts::mask_paths(ops, plan)?;
    // readonly_root: last change to the root mount.
    mounts::readonly_root(ops, plan)?;
    // loopback: `lo` up, the only interface of the new network namespace
    // (none with the host's network: a build step fetching packages; none
    // in a namespace made ahead, whose `lo` its maker brought up).
    if !plan.host_network && !plan.joined_network {
        ops.loopback_up()
            .map_err(|er| e(Step::Loopback, er, "bring lo up"))?;
    }
    // write_files: after every mount is final (the files land in the
    // sandbox's own /workspace, looked up from inside its root, never
    // from the host's) and before the program exists; as the program's
    // user, so its permissions apply and it owns what is made; the pages
    // are charged to the sandbox (we are in its cgroup). The source fd
    // goes right after: the program must not inherit it.
    if let Some((manifest, fd)) = ctx.seed {
        let written = crate::seed::write(manifest, fd, plan.uid, plan.gid);
        // Nothing uses the borrow after this (the parent's copy is its own).
        let _ = nix::unistd::close(fd.as_raw_fd());
        written?;
    }
    // session_keyring: a fresh anonymous session keyring (keyctl is also
    // blocked by seccomp; this covers the unconfined profile).
    if ctx.new_keyring {
        ops.join_new_session_keyring()
            .map_err(|er| e(Step::SessionKeyring, er, "join a new session keyring"))?;
    }
    // open_pty: the pty comes from the sandbox's own devpts instance so that
    // ttyname() works inside; the master goes to the parent (as crun's
    // console socket does).
    let pty = if plan.terminal {
        Some(open_pty(ctx)?)
    } else {
        None
    };
    // block_signals: before fork, so no SIGCHLD/forwarded signal is lost
    // between fork and the init loop.
    ops.block_signals()
        .map_err(|er| e(Step::BlockSignals, er, "sigprocmask"))?;
    Ok(pty)
}

/// spawn_program: a vfork-style child (shared memory, PID 1 suspended
/// until the program execs or exits, as posix_spawn does): no page tables
/// are copied. The child runs the program steps and execs.
fn start_program(
    ctx: &ChildContext<'_>,
    pty: Option<(OwnedFd, OwnedFd)>,
) -> Result<(Pid, Option<OwnedFd>, u64), StepError> {
    let launch = Launch::of_run(ctx);
    let slave = pty.as_ref().map(|(_, s)| s.as_fd());
    let mut stack = sys::ChildStack::new(PROGRAM_STACK)
        .map_err(|er| e(Step::SpawnProgram, er, "map the program's stack"))?;
    let mut child = || {
        let err = program(&mut Linux, &ctx.program_ctx(), slave, &launch);
        report(ctx, &err);
        failed_status(&err)
    };
    let pid = sys::spawn_shared_vm(&ctx.single, &mut stack, &mut child)
        .map_err(|er| e(Step::SpawnProgram, er, "clone"))?;
    // We resume when the program has exec'd (vfork): its start.
    let start_ns = sys::monotonic_ns();
    Ok((Pid::from_raw(pid), pty.map(|(m, _)| m), start_ns))
}

/// Stack of the program's pre-exec steps (they run on their own stack
/// while sharing PID 1's memory); far more than they use.
const PROGRAM_STACK: usize = 256 * 1024;

/// A new pty pair from the sandbox's devpts (`/dev/ptmx` inside).
pub(crate) fn new_pty(size: Option<sys::WinSize>) -> Result<(OwnedFd, OwnedFd), StepError> {
    use nix::fcntl::{open, OFlag};
    let master = open(
        "/dev/ptmx",
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|er| e(Step::OpenPty, er, "open /dev/ptmx"))?;
    sys::unlock_pty(master.as_fd()).map_err(|er| e(Step::OpenPty, er, "unlockpt"))?;
    if let Some(size) = size {
        sys::set_winsize(master.as_fd(), size)
            .map_err(|er| e(Step::OpenPty, er, "set window size"))?;
    }
    let slave =
        sys::open_pty_peer(master.as_fd()).map_err(|er| e(Step::OpenPty, er, "open pty peer"))?;
    Ok((master, slave))
}

fn open_pty(ctx: &ChildContext<'_>) -> Result<(OwnedFd, OwnedFd), StepError> {
    let (master, slave) = new_pty(ctx.plan.tty_size)?;
    ctx.channel
        .send_child(&ChildMessage::PtyMaster, Some(master.as_fd()))
        .map_err(|er| e(Step::OpenPty, er, "send pty master"))?;
    Ok((master, slave))
}

/// PID 1 after the program started: reap every child, forward signals to
/// the program, report the program's end and exit (the kernel then kills
/// whatever is left in the pid namespace).
fn init_loop(ctx: &ChildContext<'_>, program: Pid, start_ns: u64) -> i32 {
    let _ = ctx.channel.send_child(
        &ChildMessage::Started {
            pid: program.as_raw(),
            start_ns,
        },
        None,
    );
    // Nothing but the channel stays open in PID 1.
    let _ = sys::close_fds_except(0, &[ctx.channel.raw_fd()]);
    let mut set = SigSet::all();
    set.remove(Signal::SIGKILL);
    set.remove(Signal::SIGSTOP);
    loop {
        let sig = match set.wait() {
            Ok(s) => s,
            Err(_) => continue,
        };
        if sig != Signal::SIGCHLD {
            let _ = kill(program, sig);
            continue;
        }
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == program => {
                    let _ = ctx.channel.send_child(
                        &ChildMessage::Exited {
                            code: Some(code),
                            signal: None,
                        },
                        None,
                    );
                    return 0;
                }
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == program => {
                    let _ = ctx.channel.send_child(
                        &ChildMessage::Exited {
                            code: None,
                            signal: Some(sig as i32),
                        },
                        None,
                    );
                    return 0;
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }
}

/// The program's steps after fork, ending in execve. Returns only on failure.
pub(crate) fn program(
    ops: &mut dyn Syscalls,
    ctx: &ProgramCtx<'_>,
    slave: Option<BorrowedFd<'_>>,
    launch: &Launch<'_>,
) -> StepError {
    match program_steps(ops, ctx, slave, launch) {
        Ok(never) => match never {},
        Err(err) => err,
    }
}

enum Never {}

fn program_steps(
    ops: &mut dyn Syscalls,
    ctx: &ProgramCtx<'_>,
    slave: Option<BorrowedFd<'_>>,
    launch: &Launch<'_>,
) -> Result<Never, StepError> {
    let plan = ctx.plan;
    // join_cgroup (an exec's own cgroup): first, before anything runs that
    // could fork or use resources, so every process and CPU cycle of the
    // exec is counted there. Still single-threaded, so writing "0"
    // moves the whole process (on v1 through `tasks`, without the global
    // lock); the fds were opened by the daemon as root, whose credentials
    // the kernel checks (see `Cgroup::join_fds`).
    for fd in launch.join_cgroup {
        ops.join_cgroup(*fd)
            .map_err(|er| e(Step::JoinCgroup, er, "move into the exec's cgroup"))?;
    }
    // reset_signals: default dispositions (the Rust runtime ignores SIGPIPE,
    // and ignored signals survive exec) and an empty mask.
    ops.reset_signals()
        .map_err(|er| e(Step::ResetSignals, er, "sigprocmask"))?;
    // oom_score_adj: back to the default for a session's process, written
    // by this vfork child itself so it is in place before exec (the
    // program never runs unkillable). The kernel gives a vfork child its
    // own value rather than propagating it to every process sharing the mm
    // (fs/proc/base.c, __set_oom_adj). Our /proc/self files belong to the
    // global root while the mm (PID 1's, made outside the user namespace)
    // is not dumpable, so we are dumpable for the one write: PID 1 is
    // suspended meanwhile (vfork), and nothing in the sandbox (uid 1000, no
    // capabilities) could attach to a uid 0 process anyway.
    if launch.reset_oom_score {
        ops.set_dumpable(true)
            .map_err(|er| e(Step::OomScoreAdj, er, "prctl(PR_SET_DUMPABLE)"))?;
        let score = ctx.plan.oom_score_adj.unwrap_or(0).to_string();
        let written = ops.write_proc_self("oom_score_adj", score.as_bytes());
        ops.set_dumpable(false)
            .map_err(|er| e(Step::OomScoreAdj, er, "prctl(PR_SET_DUMPABLE)"))?;
        written.map_err(|er| e(Step::OomScoreAdj, er, "reset oom_score_adj"))?;
    }
    // new_session: the program never shares the caller's session, so it
    // cannot push input into the caller's terminal (TIOCSTI, CVE-2017-5226).
    ops.setsid()
        .map_err(|er| e(Step::NewSession, er, "setsid"))?;
    // stdio: the pty slave as controlling terminal, or the planned fds.
    match slave {
        Some(s) => {
            ops.set_controlling_tty(s)
                .map_err(|er| e(Step::Stdio, er, "TIOCSCTTY"))?;
            for target in 0..3 {
                dup_to(ops, s, target)?;
            }
        }
        None => {
            for (target, fd) in launch.stdio.iter().enumerate() {
                if fd.as_raw_fd() != target as RawFd {
                    dup_to(ops, *fd, target as RawFd)?;
                }
            }
        }
    }
    // chdir: before dropping ids, so a cwd only root may enter still fails
    // later for the program (as it would outside).
    ops.chdir(launch.cwd)
        .map_err(|er| e(Step::Chdir, er, format!("chdir {}", launch.cwd.display())))?;
    // rlimits: while still privileged in the namespace (raising hard limits
    // needs CAP_SYS_RESOURCE).
    for r in &plan.rlimits {
        ops.set_rlimit(r.resource, r.soft, r.hard).map_err(|er| {
            e(
                Step::Rlimits,
                er,
                format!("setrlimit {} to {}", r.resource, r.soft),
            )
        })?;
    }
    if let Some(m) = plan.umask {
        ops.umask(m);
    }
    // drop_bounding_set: needs CAP_SETPCAP, so before changing uid. A build
    // step keeps its planned capabilities (in the user namespace only).
    let caps = &plan.capabilities;
    ops.drop_bounding_set_except(caps.bounding)
        .map_err(|er| e(Step::Capabilities, er, "drop the bounding set"))?;
    // keep_capabilities: a non-root program whose spec lists capabilities
    // keeps its permitted set through setresuid (capabilities(7)).
    if plan.uid != 0 && !caps.is_empty() {
        ops.keep_capabilities()
            .map_err(|er| e(Step::Capabilities, er, "prctl(PR_SET_KEEPCAPS)"))?;
    }
    // identity: groups, gid, uid (setgroups before setresgid before setresuid,
    // each needs the privilege the next one drops).
    ops.setgroups(&plan.additional_gids)
        .map_err(|er| e(Step::Identity, er, "setgroups"))?;
    ops.setresgid(plan.gid)
        .map_err(|er| e(Step::Identity, er, format!("setresgid {}", plan.gid)))?;
    ops.setresuid(plan.uid)
        .map_err(|er| e(Step::Identity, er, format!("setresuid {}", plan.uid)))?;
    // capabilities: exactly the planned sets (all empty unless the spec
    // lists some): a uid 0 program would keep everything otherwise.
    ops.set_capabilities(caps)
        .map_err(|er| e(Step::Capabilities, er, "set the capability sets"))?;
    // no_new_privs: required by Landlock and seccomp for unprivileged use.
    ops.set_no_new_privs()
        .map_err(|er| e(Step::NoNewPrivs, er, "prctl"))?;
    // landlock: an extra layer; best effort where the kernel lacks it.
    if ctx.landlock {
        landlock_layer(ops, plan)?;
    }
    // fds: everything above 2 closes on exec (the channel stays usable to
    // report an exec failure).
    ops.cloexec_from(3)
        .map_err(|er| e(Step::Fds, er, "close_range"))?;
    // seccomp: last before exec, so the steps above are not filtered.
    if let Some(f) = ctx.seccomp {
        ops.apply_seccomp(f)
            .map_err(|er| StepError::new(Step::Seccomp, None, er))?;
    }
    Err(exec(ops, launch))
}

fn dup_to(ops: &mut dyn Syscalls, fd: BorrowedFd<'_>, target: RawFd) -> Result<(), StepError> {
    ops.dup_onto_std(fd, target).map_err(|er| {
        let fd = fd.as_raw_fd();
        e(Step::Stdio, er, format!("dup2 {fd} to {target}"))
    })
}

/// Container mode: `None` when the plan's program is an executable file
/// by its path, or by a directory of its PATH (looked up in the
/// container's root, relative paths from its cwd).
fn missing_program(plan: &Plan) -> Option<StepError> {
    use nix::unistd::{access, AccessFlags};
    let Some(prog) = plan.args.first() else {
        return Some(StepError::new(
            Step::SpawnProgram,
            Some(Errno::ENOENT),
            "empty argv".into(),
        ));
    };
    let name = prog.to_string_lossy().into_owned();
    let found = if name.contains('/') {
        access(plan.cwd.join(&name).as_path(), AccessFlags::X_OK).is_ok()
    } else {
        plan.path_dirs
            .iter()
            .any(|d| access(Path::new(d).join(&name).as_path(), AccessFlags::X_OK).is_ok())
    };
    (!found).then(|| {
        StepError::new(
            Step::SpawnProgram,
            Some(Errno::ENOENT),
            // runc's lower-case words, which dockerd turns into exit 127.
            format!(
                "the program {name} is not an executable file in the container \
                 (no such file or directory)"
            ),
        )
    })
}

fn exec(ops: &mut dyn Syscalls, launch: &Launch<'_>) -> StepError {
    let Some(prog) = launch.args.first() else {
        return StepError::new(Step::Exec, Some(Errno::ENOENT), "empty argv".into());
    };
    let name = prog.to_string_lossy().into_owned();
    if prog.as_bytes().contains(&b'/') {
        let er = ops.execve(prog, launch.args, launch.env);
        return e(Step::Exec, er, name);
    }
    let mut seen = Errno::ENOENT;
    for dir in launch.path_dirs {
        let Ok(candidate) = CString::new(format!("{dir}/{name}")) else {
            continue;
        };
        match ops.execve(&candidate, launch.args, launch.env) {
            Errno::ENOENT | Errno::ENOTDIR => continue,
            Errno::EACCES => seen = Errno::EACCES,
            er => return e(Step::Exec, er, candidate.to_string_lossy().into_owned()),
        }
    }
    e(Step::Exec, seen, name)
}

fn landlock_layer(ops: &mut dyn Syscalls, plan: &Plan) -> Result<(), StepError> {
    // One rule per distinct writable tree (each rule costs an open, an
    // add_rule and a close).
    let mut writable: std::collections::BTreeSet<&Path> = [
        Path::new("/tmp"),
        Path::new("/dev"),
        Path::new("/workspace"),
    ]
    .into();
    for m in &plan.mounts {
        if !m.readonly || matches!(m.kind, MountKind::Tmpfs { .. }) {
            writable.insert(&m.destination);
        }
    }
    // An image root with a writable upper layer is writable throughout.
    if matches!(&plan.root, RootPlan::Layers(l) if !l.readonly)
        || matches!(
            &plan.root,
            RootPlan::Bundle {
                readonly: false,
                ..
            }
        )
    {
        writable.insert(Path::new("/"));
    }
    let writable: Vec<&Path> = writable.into_iter().collect();
    ops.restrict_landlock(&writable)
        .map_err(|er| StepError::new(Step::Landlock, None, er))
}

/// Session mode: PID 1 reports `Ready`, then serves the channel: each
/// `Spawn` forks a program child (the same program steps as a run's one
/// program, with the request's argv, environment, cwd and stdio), each
/// ended child is reported with its rusage, `Signal` reaches a process's
/// group, `WriteFiles` forks a writer (see [`start_writer`]). Returns when the supervisor closes the channel (its death also
/// kills us: parent_death).
fn session_loop(ctx: &ChildContext<'_>) -> i32 {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    if ctx.channel.send_child(&ChildMessage::Ready, None).is_err() {
        return 1;
    }
    let _ = sys::close_fds_except(0, &[ctx.channel.raw_fd()]);
    // /dev/null on 0, 1 and 2, so that fds received later never get those
    // numbers (a child's dup2 onto 0..2 would clobber one it still needs).
    let mut null = Vec::new();
    for _ in 0..3 {
        if let Ok(fd) = nix::fcntl::open(
            "/dev/null",
            nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            null.push(fd);
        }
    }
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    let Ok(sfd) = SignalFd::with_flags(&chld, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
    else {
        return 1;
    };
    // (pid inside, request id) of the processes still running, and of the
    // writers of `WriteFiles` requests.
    let mut procs: Vec<(i32, u64)> = Vec::new();
    let mut writers: Vec<(i32, u64)> = Vec::new();
    loop {
        let mut fds = [
            PollFd::new(ctx.channel.as_fd(), PollFlags::POLLIN),
            PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(_) => return 1,
        }
        let channel_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        let child_ready = fds[1].revents().is_some_and(|r| !r.is_empty());
        if channel_ready {
            match ctx.channel.recv_parent_fds() {
                Ok(None) => return 0,
                Err(Errno::EINTR | Errno::EAGAIN) => {}
                Err(Errno::EBADMSG | Errno::EMSGSIZE) => {}
                Err(_) => return 1,
                Ok(Some((ParentMessage::Spawn(req), stdio))) => {
                    if let Some(pid) = spawn_one(ctx, &req, stdio) {
                        procs.push((pid, req.id));
                    }
                }
                Ok(Some((ParentMessage::Signal { id, signal }, _))) => {
                    if let (Some((pid, _)), Ok(sig)) = (
                        procs.iter().find(|(_, i)| *i == id),
                        Signal::try_from(signal),
                    ) {
                        // The program is a session leader (new_session), so
                        // its pid is its process group.
                        let _ = kill(Pid::from_raw(-pid), sig);
                        let _ = kill(Pid::from_raw(*pid), sig);
                    }
                }
                Ok(Some((ParentMessage::WriteFiles { id, lengths }, fds))) => {
                    // Our copies of the pipe and the files close when the
                    // request is done: the writer holds its own.
                    match start_writer(&ctx.single, &lengths, fds) {
                        Ok(pid) => writers.push((pid, id)),
                        Err(er) => {
                            let outcome = WriteOutcome::Failed { errno: er as i32 };
                            let msg = ChildMessage::Written { id, outcome };
                            let _ = ctx.channel.send_child(&msg, None);
                        }
                    }
                }
                Ok(Some((ParentMessage::Go, _))) => {}
            }
        }
        if child_ready {
            while let Ok(Some(_)) = sfd.read_signal() {}
            while let Ok(Some(r)) = sys::reap_any() {
                if let Some(pos) = writers.iter().position(|(p, _)| *p == r.pid) {
                    let (_, id) = writers.swap_remove(pos);
                    let outcome = match (r.code, r.signal) {
                        (Some(0), _) => WriteOutcome::Done,
                        (Some(errno), _) => WriteOutcome::Failed { errno },
                        (None, signal) => WriteOutcome::Killed {
                            signal: signal.unwrap_or(0),
                        },
                    };
                    let msg = ChildMessage::Written { id, outcome };
                    let _ = ctx.channel.send_child(&msg, None);
                    continue;
                }
                let Some(pos) = procs.iter().position(|(p, _)| *p == r.pid) else {
                    continue;
                };
                let (_, id) = procs.swap_remove(pos);
                let _ = ctx.channel.send_child(
                    &ChildMessage::ProcessExited {
                        id,
                        code: r.code,
                        signal: r.signal,
                        cpu_user_us: r.user_us,
                        cpu_system_us: r.system_us,
                        max_rss_kb: r.max_rss_kb,
                    },
                    None,
                );
            }
        }
    }
}

/// Starts the writer of a `WriteFiles` request and returns its pid: a
/// forked child of ours, hence in the session's cgroup, so the tmpfs pages
/// it fills are charged to the session's memory, not the daemon's (a page
/// is charged to the cgroup of the task that allocates it). A child rather
/// than this loop, which must never wait on a write. It only copies bytes
/// into files the daemon opened, and reports by its exit status: 0, or
/// the errno that stopped it.
fn start_writer(single: &SingleThreaded, lengths: &[u64], fds: Vec<OwnedFd>) -> Result<i32, Errno> {
    check_writer_request(lengths, &fds)?;
    let fds = WriteFilesFds::from_received(fds, lengths.len())?;
    // PID 1 is single-threaded (the token): the child may allocate.
    match sys::fork_single(single)? {
        crate::helper::Forked::Parent(pid) => Ok(pid),
        crate::helper::Forked::Child(_) => sys::exit_now(write_files(lengths, &fds)),
    }
}

/// A `WriteFiles` request carries the pipe, then one file per length.
fn check_writer_request(lengths: &[u64], fds: &[OwnedFd]) -> Result<(), Errno> {
    if fds.len() != lengths.len() + 1 {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// The writer child: returns its exit status.
fn write_files(lengths: &[u64], fds: &WriteFilesFds<OwnedFd>) -> i32 {
    let raw: Vec<RawFd> = fds.fds().iter().map(|f| f.as_raw_fd()).collect();
    // Nothing but the pipe and the files: not the channel (the daemon sees
    // PID 1's end close only when every copy is closed), nor the fds of
    // other requests.
    if let Err(er) = sys::close_fds_except(3, &raw) {
        return er as i32;
    }
    // oom_score_adj 1000: a copy that meets the session's memory limit
    // makes the OOM killer take this process first, not the session's
    // programs (PID 1's -1000, inherited, would make it the last). The
    // write needs our /proc files to be ours: dumpable for that moment,
    // as in program_steps.
    if nix::sys::prctl::set_dumpable(true).is_ok() {
        let _ = std::fs::write("/proc/self/oom_score_adj", b"1000");
        let _ = nix::sys::prctl::set_dumpable(false);
    }
    let mut buf = vec![0u8; 64 * 1024];
    for (file, len) in fds.files.iter().zip(lengths) {
        if let Err(er) = copy_exactly(&fds.source, file, *len, &mut buf) {
            return er as i32;
        }
    }
    0
}

/// Copies `len` bytes from `from` (a pipe) to `to`; EPIPE when the pipe
/// ends early (the daemon gave up).
fn copy_exactly(from: &OwnedFd, to: &OwnedFd, len: u64, buf: &mut [u8]) -> Result<(), Errno> {
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match nix::unistd::read(from, &mut buf[..want]) {
            Ok(0) => return Err(Errno::EPIPE),
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(er) => return Err(er),
        };
        let mut done = 0;
        while done < n {
            match nix::unistd::write(to, &buf[done..n]) {
                Ok(0) => return Err(Errno::ENOSPC),
                Ok(w) => done += w,
                Err(Errno::EINTR) => continue,
                Err(er) => return Err(er),
            }
        }
        left -= n as u64;
    }
    Ok(())
}

/// Starts one requested process; its pid on success. Failures go back to
/// the supervisor as `SpawnFailed`, never as a log line.
fn spawn_one(
    ctx: &ChildContext<'_>,
    req: &super::channel::SpawnRequest,
    stdio: Vec<OwnedFd>,
) -> Option<i32> {
    let fail = |err: StepError| {
        let _ = ctx.channel.send_child(
            &ChildMessage::SpawnFailed {
                id: req.id,
                step: err.step,
                errno: err.errno,
                message: err.message,
            },
            None,
        );
        None
    };
    let cstrings = |items: &[String], what: &str| -> Result<Vec<CString>, StepError> {
        items
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<Result<_, _>>()
            .map_err(|_| StepError::new(Step::Validate, None, format!("{what} holds a NUL byte")))
    };
    let (args, env) = match (cstrings(&req.args, "argv"), cstrings(&req.env, "env")) {
        (Ok(a), Ok(e)) if !a.is_empty() => (a, e),
        (Err(er), _) | (_, Err(er)) => return fail(er),
        _ => return fail(StepError::new(Step::Validate, None, "empty argv".into())),
    };
    let path = req
        .env
        .iter()
        .find_map(|v| v.strip_prefix("PATH="))
        .unwrap_or(crate::options::defaults::PATH);
    let path_dirs: Vec<String> = path
        .split(':')
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .collect();
    let pty = match req.terminal {
        Some((rows, cols)) => match new_pty(Some(sys::WinSize { rows, cols })) {
            Ok(p) => Some(p),
            Err(er) => return fail(er),
        },
        None => None,
    };
    // By name: stdin, stdout, stderr (none in terminal mode, where the pty
    // slave is the program's stdio), then the cgroup's.
    let n = stdio.len();
    let SpawnFds { stdio, join_cgroup } = match SpawnFds::from_received(stdio, req) {
        Ok(fds) => fds,
        Err(_) => {
            let stdio_n = if req.terminal.is_some() { 0 } else { 3 };
            return fail(StepError::new(
                Step::Stdio,
                None,
                format!(
                    "expected {stdio_n} stdio fds (stdin, stdout, stderr) and {} of a cgroup, got {n}",
                    req.cgroup_fds
                ),
            ));
        }
    };
    let join: Vec<BorrowedFd<'_>> = join_cgroup.iter().map(|f| f.as_fd()).collect();
    let raw = match &stdio {
        Some(s) => s.fds(),
        None => sys::std_fds(),
    };
    let cwd = Path::new(&req.cwd);
    let launch = Launch {
        args: &args,
        env: &env,
        path_dirs: &path_dirs,
        cwd,
        stdio: raw,
        reset_oom_score: true,
        join_cgroup: &join,
    };
    let slave = pty.as_ref().map(|(_, s)| s.as_fd());
    let mut stack = match sys::ChildStack::new(PROGRAM_STACK) {
        Ok(s) => s,
        Err(er) => return fail(e(Step::SpawnProgram, er, "map the program's stack")),
    };
    // Written by the child (it shares our memory and we are suspended until
    // it execs or exits, as posix_spawn reports its errors).
    let mut failure: Option<StepError> = None;
    let mut child = || {
        let err = program(&mut Linux, &ctx.program_ctx(), slave, &launch);
        let status = failed_status(&err);
        failure = Some(err);
        status
    };
    let spawned = sys::spawn_shared_vm(&ctx.single, &mut stack, &mut child);
    drop(stdio);
    drop(join);
    drop(join_cgroup);
    let pid = match spawned {
        Ok(pid) => pid,
        Err(er) => return fail(e(Step::SpawnProgram, er, "clone")),
    };
    if let Some(err) = failure {
        // The child has exited; SIGCHLD reaps it (it is not in `procs`).
        return fail(err);
    }
    let master = pty.map(|(m, _)| m);
    let _ = ctx.channel.send_child(
        &ChildMessage::Spawned { id: req.id, pid },
        master.as_ref().map(|m| m.as_fd()),
    );
    Some(pid)
}

#[cfg(test)]
mod tests {
    //! The writer of `WriteFiles` requests, on plain pipes and files.
    use super::*;

    fn memfd(name: &std::ffi::CStr) -> OwnedFd {
        nix::sys::memfd::memfd_create(name, nix::sys::memfd::MFdFlags::MFD_CLOEXEC).unwrap()
    }

    fn contents(fd: &OwnedFd) -> Vec<u8> {
        use std::io::{Read, Seek};
        let mut f = std::fs::File::from(fd.try_clone().unwrap());
        f.rewind().unwrap();
        let mut out = Vec::new();
        f.read_to_end(&mut out).unwrap();
        out
    }

    /// PID 1's setup steps and the program's steps against the recording
    /// fake, with a confined profile, Landlock and a new keyring: the calls
    /// in the order they were made (the step strings a failure reports are
    /// checked by the end-to-end tests).
    fn recorded_steps(fail_on: Option<(&str, Errno)>) -> (Vec<String>, StepError) {
        use crate::helper::SingleThreaded;
        use crate::options::RunOptions;
        use crate::spec::plan;
        use crate::sys::ops::Recorder;
        let plan = plan(
            &crate::request::Request::builder(vec!["/bin/true".into()])
                .build()
                .unwrap()
                .spec,
            &RunOptions::default(),
        )
        .unwrap();
        let filter = crate::seccomp::compile(crate::SeccompProfile::Default)
            .unwrap()
            .unwrap();
        let (parent, child) = Channel::pair().unwrap();
        // The go PID 1 waits for (wait_for_parent).
        parent.send_json(&ParentMessage::Go, &[]).unwrap();
        let ctx = ChildContext {
            single: SingleThreaded::for_steps_that_fork_nothing(),
            plan: &plan,
            channel: &child,
            staging: Path::new("/run/runtimed/root"),
            seccomp: Some(&filter),
            landlock: true,
            stdio: sys::std_fds(),
            join_cgroup: &[],
            bind_trees: &[],
            layer_trees: mounts::LayerTrees::default(),
            new_keyring: true,
            session: false,
            seed: None,
            container_fifo: None,
        };
        let mut ops = Recorder {
            fail_on: fail_on.map(|(n, e)| (n.to_string(), e)),
            ..Recorder::default()
        };
        let pty = setup(&mut ops, &ctx).unwrap();
        assert!(pty.is_none());
        let setup_calls = ops.calls.len();
        let launch = Launch::of_run(&ctx);
        let err = program(&mut ops, &ctx.program_ctx(), None, &launch);
        // The setup ends with the signals blocked; the program's steps
        // follow.
        assert_eq!(ops.calls[setup_calls - 1], "sigprocmask SIG_BLOCK all");
        drop(parent);
        (ops.calls, err)
    }

    fn at(calls: &[String], needle: &str) -> usize {
        calls
            .iter()
            .position(|c| c.starts_with(needle))
            .unwrap_or_else(|| panic!("no call {needle:?} in {calls:#?}"))
    }

    /// Each pair: the first call must come before the second (the reason
    /// is the comment on the step in `setup`/`program_steps`). Moving a
    /// step (seccomp before capset, say) fails this test.
    #[test]
    fn an_exec_joins_its_own_cgroup_before_any_other_step() {
        use crate::helper::SingleThreaded;
        use crate::options::RunOptions;
        use crate::spec::{base_spec, plan};
        use crate::sys::ops::Recorder;
        let plan = plan(&base_spec(vec!["/bin/true".into()]), &RunOptions::default()).unwrap();
        let (_parent, child) = Channel::pair().unwrap();
        let ctx = ChildContext {
            single: SingleThreaded::for_steps_that_fork_nothing(),
            plan: &plan,
            channel: &child,
            staging: Path::new("/run/runtimed/root"),
            seccomp: None,
            landlock: false,
            stdio: sys::std_fds(),
            join_cgroup: &[],
            bind_trees: &[],
            layer_trees: mounts::LayerTrees::default(),
            new_keyring: false,
            session: true,
            seed: None,
            container_fifo: None,
        };
        let (a, b) = (memfd(c"a"), memfd(c"b"));
        let fds = [a.as_fd(), b.as_fd()];
        let launch = Launch {
            join_cgroup: &fds,
            ..Launch::of_run(&ctx)
        };
        let mut ops = Recorder::default();
        let err = program(&mut ops, &ctx.program_ctx(), None, &launch);
        assert_eq!((err.step, err.errno), (Step::Exec, Some(Errno::ENOENT)));
        let joins = [
            format!("join_cgroup fd {}", a.as_raw_fd()),
            format!("join_cgroup fd {}", b.as_raw_fd()),
        ];
        assert_eq!(ops.calls[..2], joins, "{:#?}", ops.calls);
        // A join that fails stops the exec before anything else ran.
        let mut ops = Recorder {
            fail_on: Some(("join_cgroup".into(), Errno::EACCES)),
            ..Recorder::default()
        };
        let err = program(&mut ops, &ctx.program_ctx(), None, &launch);
        assert_eq!(
            (err.step, err.errno),
            (Step::JoinCgroup, Some(Errno::EACCES))
        );
        assert_eq!(ops.calls.len(), 1, "{:#?}", ops.calls);
    }

    #[test]
    fn pid1_and_program_steps_run_in_their_documented_order() {
        let (c, err) = recorded_steps(None);
        // The fake exec fails with ENOENT: the steps ran to their end.
        assert_eq!((err.step, err.errno), (Step::Exec, Some(Errno::ENOENT)));
        assert!(c[0].starts_with("close_fds_except 3 "), "{}", c[0]);
        let pivot = at(&c, "pivot_root");
        let order = [
            ("close_fds_except", "scrub_caller"),
            ("scrub_caller", "setresgid 0"),
            ("setresgid 0", "setresuid 0"),
            ("setresuid 0", "prctl PR_SET_PDEATHSIG"),
            ("prctl PR_SET_PDEATHSIG", "sethostname"),
            ("sethostname", "mount"),
            ("pivot_root", "loopback_up"),
            ("loopback_up", "keyctl JOIN_SESSION_KEYRING"),
            ("keyctl JOIN_SESSION_KEYRING", "sigprocmask SIG_BLOCK"),
            ("sigprocmask SIG_BLOCK", "reset_signals"),
            ("reset_signals", "setsid"),
            ("setsid", "chdir /workspace"),
            ("chdir /workspace", "setrlimit"),
            ("setrlimit", "drop_bounding_set"),
            ("drop_bounding_set", "setgroups"),
            ("setgroups", "setresgid 1000"),
            ("setresgid 1000", "setresuid 1000"),
            ("setresuid 1000", "capset 0x0"),
            ("capset 0x0", "prctl PR_SET_NO_NEW_PRIVS"),
            ("prctl PR_SET_NO_NEW_PRIVS", "landlock"),
            ("landlock", "close_range 3 CLOEXEC"),
            ("close_range 3 CLOEXEC", "seccomp"),
        ];
        for (first, then) in order {
            assert!(
                at(&c, first) < at(&c, then),
                "{first:?} must come before {then:?}: {c:#?}"
            );
        }
        // Every mount of the new root happens before pivot_root.
        let staging_calls: Vec<usize> = c
            .iter()
            .enumerate()
            .filter(|(_, l)| l.contains("/run/runtimed/root") && !l.starts_with("pivot_root"))
            .map(|(i, _)| i)
            .collect();
        assert!(!staging_calls.is_empty());
        assert!(staging_calls.iter().all(|i| *i < pivot), "{c:#?}");
        // seccomp is the last step: the very next call is execve, and
        // nothing but execve follows.
        let seccomp = at(&c, "seccomp");
        assert!(
            c[seccomp + 1..].iter().all(|l| l.starts_with("execve ")),
            "{c:#?}"
        );
        assert_eq!(c.len(), seccomp + 2, "{c:#?}");
    }

    /// A failing step stops the sequence there: a seccomp filter that
    /// cannot be applied never falls through to exec, and a failed
    /// identity change never reaches capabilities or seccomp.
    #[test]
    fn a_failing_step_runs_nothing_after_it() {
        let (c, err) = recorded_steps(Some(("seccomp", Errno::EINVAL)));
        assert_eq!(err.step, Step::Seccomp);
        assert!(c.last().is_some_and(|l| l == "seccomp"), "{c:#?}");
        let (c, err) = recorded_steps(Some(("setresuid 1000", Errno::EPERM)));
        assert_eq!((err.step, err.errno), (Step::Identity, Some(Errno::EPERM)));
        assert!(c.last().is_some_and(|l| l == "setresuid 1000"), "{c:#?}");
    }

    #[test]
    fn each_file_gets_exactly_its_length_from_the_pipe() {
        let (r, w) = nix::unistd::pipe().unwrap();
        nix::unistd::write(&w, b"abcdefghij").unwrap();
        drop(w);
        let (a, b) = (memfd(c"a"), memfd(c"b"));
        let mut buf = [0u8; 3];
        copy_exactly(&r, &a, 4, &mut buf).unwrap();
        copy_exactly(&r, &b, 5, &mut buf).unwrap();
        assert_eq!(contents(&a), b"abcd");
        assert_eq!(contents(&b), b"efghi");
        // The pipe ends before the length: the daemon gave up.
        assert_eq!(copy_exactly(&r, &a, 2, &mut buf), Err(Errno::EPIPE));
    }

    #[test]
    fn a_request_whose_fds_do_not_match_its_lengths_starts_nothing() {
        let (r, _w) = nix::unistd::pipe().unwrap();
        let fds = vec![r, memfd(c"a")];
        assert_eq!(check_writer_request(&[1, 2], &fds), Err(Errno::EINVAL));
        assert_eq!(check_writer_request(&[], &[]), Err(Errno::EINVAL));
    }
}
