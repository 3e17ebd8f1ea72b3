//! The parent side of sandbox creation: plan, lease ids, make the cgroup,
//! compile seccomp, clone into new namespaces, write the id maps, release
//! the child, and wait until it reports the program started (or which step
//! failed). Every error path tears down what was made (see `Drop`).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::unistd::{pipe2, Uid};
use oci_spec::runtime::Spec;

use super::channel::{Channel, ChildMessage, GoFds, ParentMessage};
use super::init::{self, ChildContext};
use crate::cgroup::{Cgroup, CgroupError, CgroupManager, CgroupVersion};
use crate::helper::{NotSingleThreaded, SingleThreaded};
use crate::options::{RunOptions, Stdio};
use crate::report::{Step, StepFailure};
use crate::seccomp::{self, SeccompError};
use crate::spec::{plan, SpecError};
use crate::sys::{self, CloneResult};
use crate::userns::{write_id_maps, UidLease, UsernsError};

/// Everything that can stop a sandbox from starting.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("invalid spec: {0}")]
    Spec(#[from] SpecError),
    #[error("invalid options: {0}")]
    Options(String),
    #[error("sandboxes need root (rootless mode is not implemented); run as root")]
    NotRoot,
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    #[error(transparent)]
    Userns(#[from] UsernsError),
    #[error(transparent)]
    NotSingleThreaded(#[from] NotSingleThreaded),
    #[error(transparent)]
    Overlay(#[from] crate::overlay::OverlayError),
    /// A namespace the spec joins by path could not be entered.
    #[error(transparent)]
    Namespace(#[from] crate::namespaces::JoinError),
    #[error("{what}: {source}")]
    Sys { what: String, source: Errno },
    /// A child step failed before the program started.
    #[error("{0}")]
    Setup(StepFailure),
}

impl SandboxError {
    /// The failing step as data (for reports and one-line CLI errors).
    pub fn as_step_failure(&self) -> StepFailure {
        match self {
            SandboxError::Setup(f) => f.clone(),
            SandboxError::Sys { what, source } => StepFailure {
                step: Step::Create,
                errno: Some(*source),
                message: what.clone(),
            },
            other => StepFailure {
                step: match other {
                    SandboxError::Spec(_) | SandboxError::Options(_) => Step::Validate,
                    SandboxError::Cgroup(_) => Step::Cgroup,
                    SandboxError::Seccomp(_) => Step::SeccompCompile,
                    SandboxError::Userns(_) => Step::UidPool,
                    _ => Step::Create,
                },
                errno: None,
                message: with_sources(other),
            },
        }
    }
}

/// An error's message followed by its sources' (`a: b: c`).
fn with_sources(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        cur = s.source();
    }
    text
}

fn sys_err(what: impl Into<String>) -> impl FnOnce(Errno) -> SandboxError {
    let what = what.into();
    move |source| SandboxError::Sys { what, source }
}

/// How long the child may take to set up before it is considered hung.
const SETUP_TIMEOUT: Duration = Duration::from_secs(20);

/// The cgroup manager of this process (see [`crate::cgroup::manager`]).
fn cgroup_manager() -> Result<&'static CgroupManager, SandboxError> {
    crate::cgroup::manager().map_err(|e| SandboxError::Options(e.to_string()))
}

/// The output side of the supervisor.
pub(crate) enum Sink {
    Fd(OwnedFd),
    Buffer(Vec<u8>),
}

/// A started sandbox. Dropping it kills everything in it and removes its
/// cgroup; [`Sandbox::supervise`] waits for the end and returns the report.
pub struct Sandbox {
    pub(crate) id: String,
    pub(crate) init_pid: i32,
    pub(crate) pidfd: OwnedFd,
    pub(crate) channel: Channel,
    pub(crate) cgroup: Option<Cgroup>,
    pub(crate) lease: UidLease,
    pub(crate) pty_master: Option<OwnedFd>,
    /// Read ends of the program's stdout/stderr pipes.
    pub(crate) out_pipes: [Option<OwnedFd>; 2],
    /// Write end of the program's stdin pipe (capture mode) and what to write.
    pub(crate) stdin_pipe: Option<OwnedFd>,
    pub(crate) stdin_data: Vec<u8>,
    /// Where stdout/stderr go.
    pub(crate) sinks: [Option<Sink>; 2],
    /// Terminal input source (forward mode with a terminal).
    pub(crate) tty_input: Option<OwnedFd>,
    pub(crate) started: Instant,
    pub(crate) wall_time: Option<Duration>,
    pub(crate) cpu_time: Option<Duration>,
    pub(crate) output_limit: Option<u64>,
    pub(crate) finished: bool,
    /// The program could not be executed (reported during start-up).
    pub(crate) exec_failure: Option<StepFailure>,
    /// Held for the sandbox's life (see `lock_sandbox`).
    pub(crate) lock: Option<SandboxLock>,
    /// CLOCK_MONOTONIC of the program's exec, from PID 1.
    pub(crate) program_start_ns: Option<u64>,
}

impl Sandbox {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Host pid of the sandbox's PID 1.
    pub fn init_pid(&self) -> i32 {
        self.init_pid
    }

    /// Host uid that uid 0 inside maps to.
    pub fn host_uid_base(&self) -> u32 {
        self.lease.host_base
    }

    pub fn cgroup(&self) -> Option<&Cgroup> {
        self.cgroup.as_ref()
    }

    /// The PTY master (terminal mode), for the caller to read, write and
    /// resize (`sys::set_winsize`).
    pub fn pty_master(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.pty_master.as_ref().map(|f| f.as_fd())
    }

    /// The pidfd of PID 1 (readable when it has exited).
    pub fn pidfd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// The channel to PID 1. In session mode the caller speaks the session
    /// protocol on it (`SpawnRequest`, `ChildMessage::Spawned`, ...).
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Session mode: ends the session. Kills everything in it, reaps PID
    /// 1, reads the cgroup's final accounting and removes the cgroup.
    pub fn end_session(mut self) -> (crate::cgroup::CgroupStats, Result<(), CgroupError>) {
        self.kill();
        let stats = self
            .cgroup
            .as_ref()
            .and_then(|c| c.stats().ok())
            .unwrap_or_default();
        let removed = self.teardown();
        (stats, removed)
    }

    /// SIGKILL to PID 1 (the kernel then kills the whole pid namespace) and
    /// to every task of the cgroup.
    pub fn kill(&self) {
        let _ = sys::pidfd_send_signal(self.pidfd.as_fd(), libc::SIGKILL);
        if let Some(cg) = &self.cgroup {
            let _ = cg.kill_all();
        }
    }

    /// Creates and starts a sandbox running `spec` with `opts`. `single`
    /// proves the caller is single-threaded (the child runs Rust setup code
    /// on a copy of this process, see `helper`); it is checked again here,
    /// as a thread started after the token was made would break it.
    ///
    /// The phases, each a function: `claim` (checks, the id's lock, the
    /// uid slot, the cgroup), `prepare` (what the child is handed: mount
    /// trees, cgroup v1 files, the channel), `wire_stdio`, `clone_child`
    /// and `hand_over` (maps, the go, start-up). Until `hand_over` builds
    /// the `Sandbox`, what a phase made is owned by its return value, whose
    /// drop on an error releases it (the lock file, the slot, the cgroup,
    /// every fd); from then on, `Sandbox`'s drop does.
    pub fn create(
        spec: &Spec,
        mut opts: RunOptions,
        single: &SingleThreaded,
    ) -> Result<Sandbox, SandboxError> {
        if !Uid::effective().is_root() {
            return Err(SandboxError::NotRoot);
        }
        single.recheck()?;
        let mut claimed = claim(spec, &mut opts, single)?;
        let prepared = prepare(&claimed, &opts, single)?;
        // A container's stdio are the caller's own (the engine's pipes
        // or the pty): nothing between them and the program.
        let forward_tty = claimed.plan.terminal && opts.container.is_none();
        let stdio = wire_stdio(
            std::mem::take(&mut opts.stdio),
            forward_tty,
            opts.output_limit.is_some(),
        )?;
        let cloned = clone_child(&mut claimed, &prepared, &stdio, &opts, single)?;
        hand_over(claimed, prepared, stdio, cloned, &opts, single)
    }

    fn wait_started(&mut self) -> Result<(), SandboxError> {
        let deadline = Instant::now() + SETUP_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(SandboxError::Setup(StepFailure {
                    step: Step::Setup,
                    errno: Some(Errno::ETIMEDOUT),
                    message: format!("the sandbox did not finish setup within {SETUP_TIMEOUT:?}"),
                }));
            }
            let mut fds = [PollFd::new(self.channel.as_fd(), PollFlags::POLLIN)];
            let ms = PollTimeout::try_from(left.as_millis().min(60_000) as i32)
                .unwrap_or(PollTimeout::MAX);
            match poll(&mut fds, ms) {
                Err(Errno::EINTR) | Ok(0) => continue,
                Err(e) => {
                    return Err(SandboxError::Sys {
                        what: "poll".into(),
                        source: e,
                    })
                }
                Ok(_) => {}
            }
            match self
                .channel
                .recv_child()
                .map_err(sys_err("read from the child"))?
            {
                Some((ChildMessage::PtyMaster, Some(fd))) => self.pty_master = Some(fd),
                Some((ChildMessage::Started { start_ns, .. }, _)) => {
                    self.program_start_ns = Some(start_ns);
                    return Ok(());
                }
                Some((ChildMessage::Ready, _)) => return Ok(()),
                Some((
                    ChildMessage::StepFailed {
                        step,
                        errno,
                        message,
                    },
                    _,
                )) => {
                    let failure = StepFailure {
                        step,
                        errno,
                        message,
                    };
                    if failure.step != Step::Exec {
                        return Err(SandboxError::Setup(failure));
                    }
                    // The program child runs before PID 1 reports the start
                    // (it shares PID 1's memory until exec): an exec failure
                    // is the run's outcome, reported by `supervise`.
                    self.exec_failure = Some(failure);
                }
                Some((other, _)) => {
                    return Err(SandboxError::Setup(StepFailure {
                        step: Step::Setup,
                        errno: None,
                        message: format!("unexpected message from the child: {other:?}"),
                    }))
                }
                None => {
                    return Err(SandboxError::Setup(StepFailure {
                        step: Step::Setup,
                        errno: None,
                        message: "the sandbox's init exited during setup".into(),
                    }))
                }
            }
        }
    }

    /// Kills what is left, reaps PID 1 and removes the cgroup. Idempotent.
    pub(crate) fn teardown(&mut self) -> Result<(), CgroupError> {
        if !self.finished {
            self.kill();
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(self.init_pid), None);
            self.finished = true;
        }
        let removed = match self.cgroup.take() {
            Some(cg) => cg.remove(),
            None => Ok(()),
        };
        // Only when everything is gone: an unlocked lock file is what tells
        // a later start that there is something left to remove.
        if let (Err(_), Some(lock)) = (&removed, self.lock.as_mut()) {
            lock.keep = true;
        }
        self.lock = None;
        removed
    }
}

/// What [`claim`] reserved for one sandbox: released by drop on any later
/// error (the lock file is removed, the uid slot freed, the cgroup killed
/// and removed).
struct Claimed {
    id: String,
    plan: crate::spec::Plan,
    lock: SandboxLock,
    seccomp: Option<crate::seccomp::SeccompFilter>,
    lease: UidLease,
    cgroup: Cgroup,
    v2: bool,
}

/// Phase 1, claim: the plan and every check that needs no resource, then
/// the id's lock, the compiled seccomp program, the uid slot and the
/// cgroup, in that order (each later one is named by or sized from an
/// earlier one).
fn claim(
    spec: &Spec,
    opts: &mut RunOptions,
    _single: &SingleThreaded,
) -> Result<Claimed, SandboxError> {
    let mut plan = plan(spec, opts)?;
    let id = match opts.sandbox_id.take() {
        Some(id) => crate::id::check(&id)
            .map(|()| id)
            .map_err(SandboxError::Options)?,
        None => crate::id::generate(),
    };
    if let Some(seed) = &opts.seed {
        if opts.session {
            return Err(SandboxError::Options(
                "files to write before the program are for one-shot runs".into(),
            ));
        }
        seed.manifest
            .validate()
            .map_err(|e| SandboxError::Options(e.to_string()))?;
    }
    if opts.output_limit == Some(0) {
        return Err(SandboxError::Options(
            "output limit must be positive".into(),
        ));
    }
    if opts.container.is_some()
        && (opts.session
            || opts.seed.is_some()
            || opts.output_limit.is_some()
            || !matches!(opts.stdio, Stdio::Inherit))
    {
        return Err(SandboxError::Options(
            "a container takes its caller's stdio and no run limits, seed or session".into(),
        ));
    }
    let lock = lock_sandbox(&opts.run_dir, &id)?;
    // An engine's `linux.seccomp` replaces the named profile.
    let seccomp = seccomp::compile_for_spec(spec, opts.seccomp, opts.build_capabilities)?;
    settle_core_limit(&mut plan)?;
    let lease = match &opts.container {
        Some(c) if c.host_ids => UidLease::host_ids(),
        _ => opts.uid_pool.acquire(&opts.run_dir.join("uidpool"))?,
    };
    let mgr = cgroup_manager()?;
    sweep_stale(&opts.run_dir, mgr, &id);
    // We hold the id's lock, so a cgroup of that name is a dead
    // sandbox's (a runtimed killed, the lock file taken over, or gone
    // with a failed start's): it goes. Were some of its processes
    // still dying, the removal fails and the create below says so.
    if let Ok(Some(cg)) = mgr.open_existing(&id) {
        let _ = cg.remove();
    }
    let v2 = mgr.version() == CgroupVersion::V2;
    // The cgroup exists before clone: on v2 the child is born in it
    // (CLONE_INTO_CGROUP); on v1 the child moves itself in (prepare).
    // A container's cgroup is where its engine asked (linux.cgroupsPath).
    // A session's execs each get a child cgroup (their own accounting):
    // on v2 its processes, PID 1 first, then live in a leaf of it.
    let cgroup = match opts
        .container
        .as_ref()
        .and_then(|c| c.cgroup_path.as_deref())
    {
        Some(path) => mgr.create_at(path, &plan.cgroup)?,
        None if opts.session => mgr.create_with_children(&id, &plan.cgroup)?,
        None => mgr.create(&id, &plan.cgroup)?,
    };
    Ok(Claimed {
        id,
        plan,
        lock,
        seccomp,
        lease,
        cgroup,
        v2,
    })
}

/// What the child is handed besides its plan; the parent drops its copies
/// right after the clone.
struct Prepared {
    /// cgroup v1: the `tasks` files the child moves itself in through.
    join_fds: Vec<OwnedFd>,
    /// The caller's binds as detached mount trees (destination, tree).
    bind_trees: Vec<(PathBuf, OwnedFd)>,
    bind_trees_raw: Vec<(PathBuf, RawFd)>,
    staging: PathBuf,
    parent_ch: Channel,
    child_ch: Channel,
    /// Container mode: the exec FIFO, `O_PATH`.
    exec_fifo: Option<OwnedFd>,
}

/// Phase 2, prepare: everything the child needs that only root in the
/// initial namespaces can make.
fn prepare(
    claimed: &Claimed,
    opts: &RunOptions,
    single: &SingleThreaded,
) -> Result<Prepared, SandboxError> {
    // cgroup v1 has no CLONE_INTO_CGROUP, and moving a process by pid
    // (`cgroup.procs`) takes a global lock whose first writer after a
    // quiet period waits for an RCU grace period (5-15 ms measured
    // here). A single thread writing "0" (itself) to `tasks` skips that
    // lock (kernel/cgroup: cgroup_procs_write_start), so the child does
    // the move itself through these fds, opened here while we are
    // root (the kernel checks the writer's euid: still global root in
    // the child until it changes ids).
    let mut join_fds = Vec::new();
    if !claimed.v2 {
        for dir in claimed.cgroup.paths() {
            let tasks = dir.join("tasks");
            let fd = nix::fcntl::open(
                &tasks,
                OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(sys_err(format!("open {}", tasks.display())))?;
            join_fds.push(fd);
        }
    }
    let bind_trees = prepared_binds(&claimed.plan, &claimed.lease, single)?;
    // A layered root's upper dir exists before the child needs it.
    prepare_upper_dir(&claimed.plan)?;
    let bind_trees_raw: Vec<(PathBuf, RawFd)> = bind_trees
        .iter()
        .map(|(d, fd)| (d.clone(), fd.as_raw_fd()))
        .collect();
    let staging: PathBuf = opts.run_dir.join("root");
    // `root-upper` beside it holds a `--rootfs DIR` overlay's upper layer.
    std::fs::create_dir_all(&staging)
        .and_then(|()| std::fs::create_dir_all(opts.run_dir.join("root-upper")))
        .map_err(|e| SandboxError::Sys {
            what: format!("create {}", staging.display()),
            source: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        })?;
    let (parent_ch, child_ch) = Channel::pair().map_err(sys_err("socketpair"))?;
    let exec_fifo = match &opts.container {
        Some(c) => Some(
            // PID 1 reopens it as the container's root, a host uid of
            // the lease: the FIFO becomes that uid's (its directory stays
            // private to host root, and only PID 1 holds a handle).
            std::os::unix::fs::chown(
                &c.exec_fifo,
                Some(claimed.lease.host_base),
                Some(claimed.lease.host_base),
            )
            .map_err(|e| SandboxError::Sys {
                what: "chown the exec fifo".into(),
                source: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            })
            .and_then(|()| {
                nix::fcntl::open(
                    &c.exec_fifo,
                    OFlag::O_PATH | OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                )
                .map_err(sys_err("open the exec fifo"))
            })?,
        ),
        None => None,
    };
    Ok(Prepared {
        exec_fifo,
        join_fds,
        bind_trees,
        bind_trees_raw,
        staging,
        parent_ch,
        child_ch,
    })
}

/// The program's stdio: the child's ends (kept open in the child as the
/// program's 0/1/2; `None` leaves the caller's own fd there) and the
/// supervisor's.
struct Wired {
    child_side: [Option<OwnedFd>; 3],
    out_pipes: [Option<OwnedFd>; 2],
    sinks: [Option<Sink>; 2],
    stdin_pipe: Option<OwnedFd>,
    stdin_data: Vec<u8>,
    tty_input: Option<OwnedFd>,
}

impl Wired {
    /// The fds the program gets as 0, 1 and 2.
    fn child_fds(&self) -> [BorrowedFd<'_>; 3] {
        let mut out = sys::std_fds();
        for (slot, fd) in out.iter_mut().zip(&self.child_side) {
            if let Some(fd) = fd {
                *slot = fd.as_fd();
            }
        }
        out
    }
}

/// Phase 3, wire stdio: pipes for what the supervisor meters or captures,
/// the caller's fds for what it forwards or leaves alone.
fn wire_stdio(stdio: Stdio, terminal: bool, output_limited: bool) -> Result<Wired, SandboxError> {
    let mut stdio = stdio;
    if matches!(stdio, Stdio::Inherit) && (output_limited || terminal) {
        stdio = Stdio::Forward {
            stdin: sys::dup_std_fd(0).map_err(sys_err("dup stdin"))?,
            stdout: sys::dup_std_fd(1).map_err(sys_err("dup stdout"))?,
            stderr: sys::dup_std_fd(2).map_err(sys_err("dup stderr"))?,
        };
    }
    let mut w = Wired {
        child_side: [None, None, None],
        out_pipes: [None, None],
        sinks: [None, None],
        stdin_pipe: None,
        stdin_data: Vec::new(),
        tty_input: None,
    };
    match stdio {
        Stdio::Inherit => {}
        Stdio::Forward {
            stdin,
            stdout,
            stderr,
        } => {
            if terminal {
                w.tty_input = Some(stdin);
            } else {
                w.child_side[0] = Some(stdin);
            }
            w.sinks = [Some(Sink::Fd(stdout)), Some(Sink::Fd(stderr))];
        }
        Stdio::Capture { stdin } => {
            w.stdin_data = stdin.unwrap_or_default();
            if !terminal {
                let (r, wr) = pipe2(OFlag::O_CLOEXEC).map_err(sys_err("pipe"))?;
                w.child_side[0] = Some(r);
                nix::fcntl::fcntl(&wr, nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
                    .map_err(sys_err("fcntl"))?;
                w.stdin_pipe = Some(wr);
            }
            w.sinks = [
                Some(Sink::Buffer(Vec::new())),
                Some(Sink::Buffer(Vec::new())),
            ];
        }
    }
    if w.sinks[0].is_some() && !terminal {
        for i in 0..2 {
            let (r, wr) = pipe2(OFlag::O_CLOEXEC).map_err(sys_err("pipe"))?;
            w.child_side[i + 1] = Some(wr);
            w.out_pipes[i] = Some(r);
        }
    }
    Ok(w)
}

/// The parent's side of a clone: PID 1's pid and pidfd, and the network
/// namespace to return to (entered for the clone only).
struct Cloned {
    pid: i32,
    pidfd: OwnedFd,
    netns_home: Option<crate::netns::Home>,
    /// The namespaces joined by path (`linux.namespaces[].path`), left
    /// for the clone only.
    ns_homes: crate::namespaces::Homes,
    started: Instant,
}

fn return_home(home: &Option<crate::netns::Home>) -> Result<(), SandboxError> {
    match home {
        Some(home) => home
            .back()
            .map_err(sys_err("return to our network namespace")),
        None => Ok(()),
    }
}

/// Phase 4, clone: PID 1 into new namespaces (and, on v2, its cgroup).
/// The child runs `init::run` and never returns.
fn clone_child(
    claimed: &mut Claimed,
    prepared: &Prepared,
    stdio: &Wired,
    opts: &RunOptions,
    single: &SingleThreaded,
) -> Result<Cloned, SandboxError> {
    let plan = &claimed.plan;
    let joined = |t| plan.joins.iter().any(|(j, _)| *j == t);
    let mut flags = (libc::CLONE_NEWUSER | libc::CLONE_NEWPID | libc::CLONE_NEWNS) as u64;
    // Namespaces joined by path are entered for the clone instead
    // (crate::namespaces), like a network namespace made ahead.
    if !joined(oci_spec::runtime::LinuxNamespaceType::Ipc) {
        flags |= libc::CLONE_NEWIPC as u64;
    }
    if !joined(oci_spec::runtime::LinuxNamespaceType::Uts) {
        flags |= libc::CLONE_NEWUTS as u64;
    }
    let joined_net = joined(oci_spec::runtime::LinuxNamespaceType::Network);
    // A namespace made ahead is entered for the clone only (the child
    // is born in it); the caller's own is back right after (hand_over).
    let mut netns_home = None;
    match &opts.network_namespace {
        _ if plan.host_network || joined_net => {}
        Some(ns) => {
            netns_home = Some(
                crate::netns::enter(ns.as_fd())
                    .map_err(sys_err("enter the given network namespace"))?,
            );
        }
        None => flags |= libc::CLONE_NEWNET as u64,
    }
    if claimed.v2 {
        flags |= libc::CLONE_NEWCGROUP as u64;
    }
    let cg_fd = claimed.cgroup.v2_dir_fd();
    let join: Vec<BorrowedFd<'_>> = prepared.join_fds.iter().map(|f| f.as_fd()).collect();
    let started = Instant::now();
    let ns_homes = match crate::namespaces::enter_all(&plan.joins) {
        Ok(h) => h,
        Err(e) => {
            return_home(&netns_home)?;
            return Err(e.into());
        }
    };
    let cloned = sys::clone_namespaces(single, flags, true, cg_fd).map_err(sys_err("clone3"));
    if cloned.is_err() {
        ns_homes.back()?;
        return_home(&netns_home)?;
    }
    match cloned? {
        CloneResult::Child(single) => init::run(ChildContext {
            single,
            plan,
            channel: &prepared.child_ch,
            staging: &prepared.staging,
            seccomp: claimed.seccomp.as_ref(),
            landlock: opts.landlock,
            stdio: stdio.child_fds(),
            join_cgroup: &join,
            bind_trees: &prepared.bind_trees_raw,
            // A layered root's trees come with the go (hand_over).
            layer_trees: crate::mounts::LayerTrees::default(),
            // An engine's profile may let keyctl through (ours do not).
            new_keyring: opts.seccomp == crate::seccomp::SeccompProfile::Unconfined
                || claimed
                    .seccomp
                    .as_ref()
                    .is_some_and(|f| f.profile().is_none()),
            session: opts.session,
            seed: opts.seed.as_ref().map(|s| (&s.manifest, s.source.as_fd())),
            container_fifo: prepared.exec_fifo.as_ref().map(|f| f.as_fd()),
        }),
        CloneResult::Parent { pid, pidfd } => {
            let pidfd = match pidfd {
                Some(fd) => fd,
                None => match sys::pidfd_open(pid) {
                    Ok(fd) => fd,
                    Err(e) => {
                        // No handle on the child: kill it by pid (it is
                        // ours, not yet reaped, so the pid is its) and
                        // reap it before the cgroup goes.
                        let child = nix::unistd::Pid::from_raw(pid);
                        let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                        let _ = nix::sys::wait::waitpid(child, None);
                        let _ = ns_homes.back();
                        let _ = return_home(&netns_home);
                        return Err(sys_err("pidfd_open")(e));
                    }
                },
            };
            Ok(Cloned {
                pid,
                pidfd,
                netns_home,
                ns_homes,
                started,
            })
        }
    }
}

/// Phase 5, release and hand over: the parent's copies of the child's fds
/// go, the `Sandbox` takes ownership of everything claimed (from here an
/// error drops it, which kills and cleans up), the id maps are written,
/// a layered root's trees go with the go, and the program's start is
/// awaited.
fn hand_over(
    claimed: Claimed,
    prepared: Prepared,
    stdio: Wired,
    cloned: Cloned,
    opts: &RunOptions,
    single: &SingleThreaded,
) -> Result<Sandbox, SandboxError> {
    let Prepared {
        join_fds,
        bind_trees,
        parent_ch,
        child_ch,
        exec_fifo,
        ..
    } = prepared;
    drop(child_ch);
    drop(exec_fifo);
    drop(join_fds);
    drop(bind_trees);
    let Wired {
        child_side,
        out_pipes,
        sinks,
        stdin_pipe,
        stdin_data,
        tty_input,
    } = stdio;
    drop(child_side);
    let Claimed {
        id,
        plan,
        lock,
        seccomp: _,
        lease,
        cgroup,
        v2: _,
    } = claimed;
    let pid = cloned.pid;
    let mut sb = Sandbox {
        id,
        init_pid: pid,
        pidfd: cloned.pidfd,
        channel: parent_ch,
        cgroup: Some(cgroup),
        lease,
        pty_master: None,
        out_pipes,
        stdin_pipe,
        stdin_data,
        sinks,
        tty_input,
        started: cloned.started,
        wall_time: opts.wall_time,
        cpu_time: opts.cpu_time,
        output_limit: opts.output_limit,
        finished: false,
        exec_failure: None,
        lock: Some(lock),
        program_start_ns: None,
    };
    cloned.ns_homes.back()?;
    return_home(&cloned.netns_home)?;
    write_id_maps(pid, &sb.lease)?;
    // A layered root's trees are idmapped with the child's own user
    // namespace, now that its maps exist: the same mapping a separate
    // namespace would need, without the extra process that made one
    // (~0.5 ms a start).
    let go = match &plan.root {
        crate::spec::plan::RootPlan::Layers(_) => {
            let ns = nix::fcntl::open(
                format!("/proc/{pid}/ns/user").as_str(),
                OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(sys_err("open the sandbox's user namespace"))?;
            let (lowers, upper) = prepared_layers(&plan, ns.as_fd())?;
            GoFds { lowers, upper }
        }
        // A container's root, idmapped the same way: host root's files
        // (an engine's overlay) are the container root's, and what it
        // writes is stored as the image's ids.
        crate::spec::plan::RootPlan::Bundle { path, .. } => {
            let ns = nix::fcntl::open(
                format!("/proc/{pid}/ns/user").as_str(),
                OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(sys_err("open the sandbox's user namespace"))?;
            // Host ids map to themselves: nothing to idmap.
            let host_ids = opts.container.as_ref().is_some_and(|c| c.host_ids);
            // An engine's overlay cannot be idmapped as a whole: a new
            // overlay of its idmapped layers, with the same upper dir.
            let overlay = if host_ids {
                None
            } else {
                crate::overlay::find(path)?
            };
            if let Some(o) = overlay {
                GoFds {
                    lowers: vec![o.mount_idmapped(
                        ns.as_fd(),
                        sb.lease.host_base,
                        &opts.run_dir,
                        single,
                    )?],
                    upper: None,
                }
            } else {
                let tree = sys::open_tree_clone(path, false)
                    .map_err(sys_err(format!("open_tree {}", path.display())))?;
                if !host_ids {
                    sys::mount_setattr(tree.as_fd(), sys::MOUNT_ATTR_IDMAP, Some(ns.as_fd()))
                        .map_err(|e| {
                            let hint = if e == Errno::EINVAL {
                                " (its filesystem cannot be idmapped: \
                             give this runtime class host ids, docs/oci.md)"
                            } else {
                                ""
                            };
                            sys_err(format!("idmap the root {}{hint}", path.display()))(e)
                        })?;
                }
                GoFds {
                    lowers: vec![tree],
                    upper: None,
                }
            }
        }
        _ => GoFds {
            lowers: Vec::new(),
            upper: None,
        },
    };
    // process.oomScoreAdj: PID 1's score before it forks the program,
    // which inherits it. Written here, as root of the host: a sandbox may
    // not lower its own score (CAP_SYS_RESOURCE), and an engine may ask
    // for a negative one (Kubernetes: -997 for a guaranteed pod).
    if let Some(adj) = plan.oom_score_adj {
        std::fs::write(format!("/proc/{pid}/oom_score_adj"), adj.to_string()).map_err(|e| {
            SandboxError::Sys {
                what: format!("set process.oomScoreAdj {adj} (PID 1's oom_score_adj)"),
                source: nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            }
        })?;
    }
    sb.channel
        .send_json(&ParentMessage::Go, &go.fds())
        .map_err(sys_err("release the child"))?;
    drop(go);
    sb.wait_started()?;
    if opts.container.is_some() {
        // PID 1 will be the program: it keeps its default OOM score.
        return Ok(sb);
    }
    // PID 1 must survive an OOM inside so it can report the program's
    // end. Set only now: the program, forked before, keeps the
    // caller's score instead of inheriting an unkillable one (a memcg
    // whose only task is unkillable loops in OOM forever).
    let _ = std::fs::write(format!("/proc/{pid}/oom_score_adj"), b"-1000");
    // The run's wall clock starts when the program exec'd (PID 1 took
    // the time), not when we heard of it.
    let now = Instant::now();
    sb.started = match sb.program_start_ns {
        Some(at) => now
            .checked_sub(Duration::from_nanos(sys::monotonic_ns().saturating_sub(at)))
            .unwrap_or(now),
        None => now,
    };
    Ok(sb)
}

/// A container left running by [`Sandbox::into_container`]: what its
/// later commands need to find and remove it.
#[derive(Debug)]
pub struct DetachedContainer {
    /// Host pid of PID 1 (blocked on the exec FIFO until `start`).
    pub init_pid: i32,
    /// The cgroup's directories, one per hierarchy.
    pub cgroup_paths: Vec<PathBuf>,
    /// The sandbox id (cgroup name, lock file name).
    pub sandbox_id: String,
    /// The PTY master (terminal mode), for the console socket.
    pub pty_master: Option<OwnedFd>,
    /// The host id range, now held by the owner path given
    /// ([`crate::userns::UidLease::persist`]).
    pub host_uid_base: u32,
    pub uid_range_size: u32,
}

impl Sandbox {
    /// Container mode: lets the container live on after this process.
    /// Its cgroup and lock file stay, its uid lease is kept by `owner`
    /// (a path that exists until `delete`), and nothing is killed; the
    /// pidfd and channel close. On an error the container is torn down.
    pub fn into_container(
        mut self,
        lease_dir: &std::path::Path,
        owner: &std::path::Path,
    ) -> Result<DetachedContainer, SandboxError> {
        let (host_uid_base, uid_range_size) = (self.lease.host_base, self.lease.size);
        // On failure the sandbox is torn down (`self`'s drop) and its
        // lease freed with it.
        self.lease.persist(owner)?;
        let _ = lease_dir;
        self.finished = true;
        if let Some(lock) = self.lock.as_mut() {
            // The lock file outlives us: sweep_stale removes it with the
            // cgroup once the container is gone, or `remove_container`.
            lock.keep = true;
        }
        let cgroup_paths = self.cgroup.take().map(|c| c.release()).unwrap_or_default();
        Ok(DetachedContainer {
            init_pid: self.init_pid,
            cgroup_paths,
            sandbox_id: self.id.clone(),
            pty_master: self.pty_master.take(),
            host_uid_base,
            uid_range_size,
        })
    }
}

/// `delete` of a container: kills every process of its cgroup, removes
/// the cgroup, its lock file below `run_dir` and its uid lease held by
/// `owner`. Idempotent: what is already gone is skipped.
pub fn remove_container(
    run_dir: &std::path::Path,
    sandbox_id: &str,
    cgroup_paths: &[PathBuf],
    lease: Option<(u32, &std::path::Path)>,
) -> Result<(), SandboxError> {
    crate::id::check(sandbox_id).map_err(SandboxError::Options)?;
    let mgr = cgroup_manager()?;
    // No recorded paths: a `create` that died before it recorded them;
    // its cgroup, if any, is where this process would have made it.
    let cg = match cgroup_paths {
        [] => mgr.open_existing(sandbox_id)?,
        paths => Some(Cgroup::adopt(sandbox_id, mgr.version(), paths.to_vec())),
    };
    if let Some(cg) = cg {
        cg.remove()?;
    }
    let _ = std::fs::remove_file(run_dir.join("sandboxes").join(sandbox_id));
    if let Some((host_base, owner)) = lease {
        crate::userns::release_persisted(&run_dir.join("uidpool"), host_base, owner)?;
    }
    Ok(())
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}

/// Takes `<run_dir>/sandboxes/<id>` with an exclusive flock, held until
/// teardown. A live sandbox is proven by its lock; after a crash (a runtimed
/// killed with SIGKILL: its sandbox dies with it, see `parent_death`) the
/// file is left unlocked, and [`sweep_stale`] removes what it left.
/// The lock file of one sandbox; removed on drop unless `keep` (something
/// of the sandbox is left for [`sweep_stale`]).
pub(crate) struct SandboxLock {
    path: PathBuf,
    keep: bool,
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl Drop for SandboxLock {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The lock file appears already locked: it is made and locked under a
/// private dot-name, then hard-linked to its real name (which fails if the
/// id exists). A sweeper (another sandbox's start, [`sweep_stale`]) that
/// opened a plain freshly created file before its owner locked it would
/// otherwise take the lock for a moment (the owner then saw "in use") and
/// delete the file as stale. An existing file of that name is a live
/// sandbox if locked, or one that died: then it is taken over.
fn lock_sandbox(run_dir: &std::path::Path, id: &str) -> Result<SandboxLock, SandboxError> {
    use nix::fcntl::{Flock, FlockArg};
    use std::os::unix::fs::MetadataExt;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = run_dir.join("sandboxes");
    let io = |what: String| {
        move |e: std::io::Error| SandboxError::Sys {
            what,
            source: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        }
    };
    std::fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
    let path = dir.join(id);
    let lock_err = |e: Errno| SandboxError::Sys {
        what: format!("lock {}", path.display()),
        source: e,
    };
    let in_use = || SandboxError::Options(format!("sandbox id {id:?} is in use"));
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{id}.{}.{n}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&tmp)
        .map_err(io(format!("create {}", tmp.display())))?;
    // Nobody else knows this file: the lock cannot be contended.
    let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| lock_err(e));
    let linked = lock.and_then(|lock| match std::fs::hard_link(&tmp, &path) {
        Ok(()) => Ok(Some(lock)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(io(format!("link {}", path.display()))(e)),
    });
    let _ = std::fs::remove_file(&tmp);
    if let Some(lock) = linked? {
        return Ok(SandboxLock {
            path,
            keep: false,
            _lock: lock,
        });
    }
    // The name exists: live (locked) or left by a sandbox that died.
    let file = match std::fs::OpenOptions::new().write(true).open(&path) {
        Ok(f) => f,
        // Removed meanwhile (by its owner or a sweeper): it was not live.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return lock_sandbox(run_dir, id),
        Err(e) => return Err(io(format!("open {}", path.display()))(e)),
    };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => {
            // A sweeper may have deleted it between our open and our lock.
            let same = match (std::fs::metadata(&path), lock.metadata()) {
                (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
                _ => false,
            };
            if !same {
                drop(lock);
                return lock_sandbox(run_dir, id);
            }
            Ok(SandboxLock {
                path,
                keep: false,
                _lock: lock,
            })
        }
        Err((_, Errno::EWOULDBLOCK)) => Err(in_use()),
        Err((_, e)) => Err(lock_err(e)),
    }
}

/// Removes the cgroups of sandboxes whose runtimed died without tearing
/// down (their lock file exists but nobody holds it). Best effort, cheap
/// when there is nothing to do (one readdir).
fn sweep_stale(run_dir: &std::path::Path, mgr: &CgroupManager, own: &str) {
    use nix::fcntl::{Flock, FlockArg};
    let Ok(entries) = std::fs::read_dir(run_dir.join("sandboxes")) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        // Dot-names are lock files being made (see `lock_sandbox`).
        if name == own || name.starts_with('.') {
            continue;
        }
        let Ok(file) = std::fs::OpenOptions::new().write(true).open(entry.path()) else {
            continue;
        };
        // Held: a live sandbox. Acquired: its owner is gone.
        let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
            continue;
        };
        // Its processes may still be dying (they get SIGKILL with their
        // runtimed): never wait for them here, a later start removes it.
        let populated = mgr.parent_paths().iter().any(|p| {
            std::fs::read_to_string(p.join(name).join("cgroup.procs"))
                .is_ok_and(|t| !t.trim().is_empty())
        });
        if populated {
            continue;
        }
        let removed = match mgr.open_existing(name) {
            Ok(Some(cg)) => cg.remove().is_ok(),
            Ok(None) => true,
            Err(_) => false,
        };
        if removed {
            let _ = std::fs::remove_file(entry.path());
        }
        drop(lock);
    }
}

/// Every bind of a caller's path is prepared here, as root, as a detached
/// mount tree (open_tree + mount_setattr) that the child only attaches: the
/// child runs as an unprivileged host uid and could not even walk to a
/// source below a directory only root may enter (a checkout in a 0700
/// temp dir, say).
///
/// Read-write binds are also idmapped: the source's owner (uid and gid) is
/// shown as the sandbox's user, and what the sandbox creates there is owned
/// on disk by that owner, so `--workspace .` works for any caller without
/// chown or a world-writable directory (MOUNT_ATTR_IDMAP needs privilege
/// over the filesystem, which the child's user namespace has none of). On
/// filesystems that cannot be idmapped they stay plain read-write binds
/// (then the sandbox writes as its own unprivileged host uid). A source
/// owned by root (uid or gid 0) is refused, here on the opened mount as in
/// the plan: root's files would become the sandbox's. Only the owner's
/// ids are mapped, so files of other owners inside (root's included) show
/// as the overflow id and are never the sandbox's.
fn prepared_binds(
    plan: &crate::spec::Plan,
    lease: &UidLease,
    single: &SingleThreaded,
) -> Result<Vec<(PathBuf, OwnedFd)>, SandboxError> {
    use crate::spec::MountKind;
    let mut out = Vec::new();
    let mut namespaces: Vec<((u32, u32), OwnedFd)> = Vec::new();
    for m in &plan.mounts {
        let MountKind::Bind {
            source, recursive, ..
        } = &m.kind
        else {
            continue;
        };
        let tree = sys::open_tree_clone(source, *recursive)
            .map_err(sys_err(format!("open_tree {}", source.display())))?;
        if m.atime != 0 {
            sys::mount_setattr_atime(tree.as_fd(), m.atime).map_err(sys_err(format!(
                "set the access-time options of {}",
                source.display()
            )))?;
        }
        let mut attrs = 0;
        for (on, bit) in [
            (m.readonly, sys::MOUNT_ATTR_RDONLY),
            (m.nosuid, sys::MOUNT_ATTR_NOSUID),
            (m.nodev, sys::MOUNT_ATTR_NODEV),
            (m.noexec, sys::MOUNT_ATTR_NOEXEC),
        ] {
            if on {
                attrs |= bit;
            }
        }
        let set_plain = |tree: &OwnedFd| {
            sys::mount_setattr(tree.as_fd(), attrs, None).map_err(sys_err(format!(
                "set mount attributes of {}",
                source.display()
            )))
        };
        if m.readonly {
            set_plain(&tree)?;
            out.push((m.destination.clone(), tree));
            continue;
        }
        // The owner of what was opened, not of whatever the path names
        // now: plan checked the path, this checks the mount itself.
        let meta =
            nix::sys::stat::fstat(&tree).map_err(sys_err(format!("stat {}", source.display())))?;
        let owner = (meta.st_uid, meta.st_gid);
        crate::spec::plan::check_rw_bind_owner(
            &m.destination.display().to_string(),
            source,
            owner.0,
            owner.1,
        )?;
        if !namespaces.iter().any(|(o, _)| *o == owner) {
            let ns = crate::userns::mapping_userns(
                single,
                &format!("{} {} 1\n", owner.0, lease.host_base + plan.uid),
                &format!("{} {} 1\n", owner.1, lease.host_base + plan.gid),
            )?;
            namespaces.push((owner, ns));
        }
        let Some((_, ns)) = namespaces.iter().find(|(o, _)| *o == owner) else {
            continue;
        };
        match sys::mount_setattr(tree.as_fd(), attrs, Some(ns.as_fd())) {
            Ok(()) => {}
            // The filesystem cannot be idmapped (EINVAL), or the kernel is
            // too old: a plain read-write bind.
            Err(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP | Errno::EPERM) => {
                set_plain(&tree)?
            }
            Err(e) => {
                return Err(SandboxError::Sys {
                    what: format!("idmap {}", source.display()),
                    source: e,
                })
            }
        }
        out.push((m.destination.clone(), tree));
    }
    Ok(out)
}

/// Makes sure the sandbox can be given RLIMIT_CORE = 1 (`spec::plan::
/// CORE_LIMIT`). The child sets it after entering its user namespace, where
/// it may lower limits but not raise a hard one; so a caller started with a
/// hard limit of 0 (`LimitCORE=0` in a unit) gets it raised to 1 here, as
/// root in the initial namespace (its own soft limit, what this process
/// dumps by, stays). Without CAP_SYS_RESOURCE that fails: then 0 is all the
/// sandbox can get, as safe as 1 while `kernel.core_pattern` names a file
/// (nothing below a page is written), and refused while it is a pipe,
/// whose handler the kernel starts whatever the limit but 1.
fn settle_core_limit(plan: &mut crate::spec::Plan) -> Result<(), SandboxError> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let core = crate::spec::plan::CORE_LIMIT;
    let (soft, hard) =
        getrlimit(Resource::RLIMIT_CORE).map_err(sys_err("getrlimit(RLIMIT_CORE)"))?;
    if hard >= core {
        return Ok(());
    }
    match setrlimit(Resource::RLIMIT_CORE, soft, core) {
        Ok(()) => Ok(()),
        Err(Errno::EPERM) => {
            // Unreadable counts as a pipe: refuse rather than guess.
            let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern")
                .unwrap_or_else(|_| "|".into());
            if pattern.starts_with('|') {
                return Err(SandboxError::Options(
                    "runtimed's hard RLIMIT_CORE is 0 and cannot be raised (no \
                     CAP_SYS_RESOURCE) while kernel.core_pattern is a pipe: a crash in the \
                     sandbox would start its handler; start runtimed with a hard core limit \
                     of at least 1 byte (e.g. LimitCORE=0:infinity)"
                        .into(),
                ));
            }
            for r in plan
                .rlimits
                .iter_mut()
                .filter(|r| r.resource == libc::RLIMIT_CORE as i32)
            {
                (r.soft, r.hard) = (0, 0);
            }
            Ok(())
        }
        Err(e) => Err(SandboxError::Sys {
            what: "setrlimit(RLIMIT_CORE)".into(),
            source: e,
        }),
    }
}

/// A layered root's trees: each layer directory as a detached, read-only,
/// nosuid, nodev mount idmapped onto the sandbox's whole id range (on-disk
/// uid 0 shows as root inside), and a host upper directory likewise but
/// writable (what the sandbox writes is stored with the image's ids).
/// MOUNT_ATTR_IDMAP needs privilege over the layers' filesystem, which only
/// the parent has; `ns` is the sandbox's own user namespace (its maps
/// written), whose mapping is exactly the one wanted.
fn prepared_layers(
    plan: &crate::spec::Plan,
    ns: std::os::fd::BorrowedFd<'_>,
) -> Result<(Vec<OwnedFd>, Option<OwnedFd>), SandboxError> {
    use crate::options::Upper;
    let crate::spec::plan::RootPlan::Layers(l) = &plan.root else {
        return Ok((Vec::new(), None));
    };
    let idmapped = |dir: &std::path::Path, attrs: u64| -> Result<OwnedFd, SandboxError> {
        let tree = sys::open_tree_clone(dir, false)
            .map_err(sys_err(format!("open_tree {}", dir.display())))?;
        sys::mount_setattr(tree.as_fd(), attrs | sys::MOUNT_ATTR_IDMAP, Some(ns))
            .map_err(sys_err(format!("idmap the layer {}", dir.display())))?;
        Ok(tree)
    };
    let fixed = sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV;
    let lowers = l
        .layers
        .iter()
        .map(|d| idmapped(d, fixed | sys::MOUNT_ATTR_RDONLY))
        .collect::<Result<Vec<_>, _>>()?;
    let upper = match &l.upper {
        Upper::Tmpfs { .. } => None,
        Upper::Dir(dir) => Some(idmapped(dir, fixed)?),
    };
    Ok((lowers, upper))
}

/// `<dir>/upper` and `<dir>/work` of a layered root's host upper dir;
/// `dir` itself, when missing, 0700. It must be private to root (plan
/// checked an existing one; this checks again once it exists): what the
/// sandbox writes there keeps the image's ids, root's included.
fn prepare_upper_dir(plan: &crate::spec::Plan) -> Result<(), SandboxError> {
    use std::os::unix::fs::DirBuilderExt;
    let crate::spec::plan::RootPlan::Layers(l) = &plan.root else {
        return Ok(());
    };
    if let crate::options::Upper::Dir(dir) = &l.upper {
        let created = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir);
        match crate::spec::plan::private_to_root(dir) {
            Ok(true) => {}
            Ok(false) => return Err(crate::spec::plan::upper_not_private(dir).into()),
            Err(e) => {
                return Err(SandboxError::Sys {
                    what: format!("create {}", dir.display()),
                    source: Errno::from_raw(
                        created
                            .err()
                            .unwrap_or(e)
                            .raw_os_error()
                            .unwrap_or(libc::EIO),
                    ),
                })
            }
        }
        for sub in ["upper", "work"] {
            let p = dir.join(sub);
            if let Err(e) = std::fs::create_dir_all(&p) {
                return Err(SandboxError::Sys {
                    what: format!("create {}", p.display()),
                    source: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
                });
            }
        }
    }
    Ok(())
}
