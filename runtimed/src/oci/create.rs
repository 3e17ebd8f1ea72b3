//! `create`, `start` and `run`: the container's birth in two processes.
//!
//! `create` reads the bundle, makes the state directory and the exec
//! FIFO, runs the createRuntime/prestart hooks, and has the sandbox crate
//! build the container in container mode: PID 1 does every setup step
//! and blocks opening the FIFO. `create` then records the state, writes
//! `--pid-file`, sends a terminal's master over `--console-socket`, and
//! exits; the container is reparented to the caller's subreaper (the
//! shim). `start` opens the FIFO for reading, which releases PID 1 to
//! become the program. Any failure of `create` removes everything it made
//! (the container, cgroup, uid lease, state directory).

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oci_spec::runtime::Spec;

use super::hooks::{self, Stage};
use super::state::{Container, State, Status, UidRange};
use super::{io_err, sys_err, Context, OciError};

/// Largest config.json read (runc has no limit; engines write a few KiB).
const MAX_CONFIG_BYTES: u64 = 4 << 20;

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// The bundle directory (holding config.json).
    #[arg(long, short = 'b', default_value = ".")]
    pub bundle: PathBuf,
    /// A Unix socket to send the terminal's master to (process.terminal).
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Write the container init's host pid here.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Accepted for runc compatibility; pivot_root is always used.
    #[arg(long, hide = true)]
    pub no_pivot: bool,
    /// Accepted for runc compatibility; a new session keyring is always made.
    #[arg(long, hide = true)]
    pub no_new_keyring: bool,
    /// Extra fds to pass (not supported beyond 0).
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    pub id: String,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    /// Return after `start` instead of waiting for the container.
    #[arg(long, short = 'd')]
    pub detach: bool,
}

/// The bundle's config, with `root.path` made absolute.
pub fn load_bundle(bundle: &Path) -> Result<(PathBuf, Spec), OciError> {
    let cfg_err = |bundle: &Path, message: String| OciError::Config {
        bundle: bundle.to_path_buf(),
        message,
    };
    let bundle = std::fs::canonicalize(bundle)
        .map_err(|e| cfg_err(bundle, format!("cannot open the bundle: {e}")))?;
    let path = bundle.join("config.json");
    let file =
        std::fs::File::open(&path).map_err(|e| cfg_err(&bundle, format!("config.json: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| cfg_err(&bundle, format!("config.json: {e}")))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(cfg_err(
            &bundle,
            format!("config.json is larger than {MAX_CONFIG_BYTES} bytes"),
        ));
    }
    // serde_json's message names the field and the position.
    let mut spec: Spec = serde_json::from_slice(&bytes)
        .map_err(|e| cfg_err(&bundle, format!("config.json: {e}")))?;
    let Some(root) = spec.root().clone() else {
        return Err(cfg_err(&bundle, "config.json: root: missing".into()));
    };
    let rootfs = bundle.join(root.path());
    let rootfs = std::fs::canonicalize(&rootfs)
        .map_err(|e| cfg_err(&bundle, format!("root.path {}: {e}", root.path().display())))?;
    let mut root = root;
    root.set_path(rootfs);
    spec.set_root(Some(root));
    if let Some(p) = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone()) {
        check_cgroups_path(&p).map_err(|m| cfg_err(&bundle, m))?;
    }
    Ok((bundle, spec))
}

/// cgroupfs paths only: systemd's `slice:prefix:name` is refused by name.
fn check_cgroups_path(p: &Path) -> Result<(), String> {
    let text = p.to_string_lossy();
    if !text.starts_with('/') && text.matches(':').count() == 2 {
        return Err(format!(
            "linux.cgroupsPath {text:?}: systemd-style paths (slice:prefix:name) are not \
             supported, use a cgroupfs path"
        ));
    }
    if p.components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(format!("linux.cgroupsPath {text:?}: `..` is not allowed"));
    }
    Ok(())
}

/// The sandbox id of a container: its cgroup's and lock file's name.
/// Distinct from the daemon's sandboxes by its prefix; an id that does not
/// fit the sandbox charset or length is hashed.
pub fn sandbox_id(id: &str) -> String {
    let direct = format!("oci-{id}");
    if sandbox::id::check(&direct).is_ok() {
        return direct;
    }
    // FNV-1a, 64 bits: stable across runs (no random state).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("oci-{h:016x}")
}

/// What `create` made, removed again on drop while `armed`: the state
/// directory, and the container itself once it exists (`state`).
struct Undo<'a> {
    ctx: &'a Context,
    container: Container,
    state: Option<State>,
    sandbox_id: String,
    armed: bool,
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let c = &self.container;
        if let Some(state) = &self.state {
            let lease = state.uid_lease.map(|r| (r.host_base, c.dir.as_path()));
            if let Err(e) = sandbox::process::spawn::remove_container(
                Path::new(sandbox::options::defaults::RUN_DIR),
                &self.sandbox_id,
                &state.cgroup_paths,
                lease,
            ) {
                self.ctx
                    .log
                    .error(&format!("cleaning up after a failed create: {e}"));
            }
            // PID 1 is our child: reap it.
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(state.pid), None);
        }
        let _ = c.remove();
    }
}

/// The sandbox options of a container: `create`'s, and `exec`'s, which
/// must plan its process and compile its seccomp filter the same way.
pub(crate) fn run_options(
    sandbox_id: &str,
    fifo: &Path,
    host_ids: bool,
    cgroup_path: Option<PathBuf>,
) -> sandbox::RunOptions {
    sandbox::RunOptions {
        sandbox_id: Some(sandbox_id.to_string()),
        container: Some(sandbox::options::ContainerMode {
            exec_fifo: fifo.to_path_buf(),
            host_ids,
            cgroup_path,
        }),
        ..sandbox::RunOptions::default()
    }
}

/// `create`: 0 once the container waits for `start`.
pub fn create(
    ctx: &Context,
    args: &CreateArgs,
    single: &sandbox::SingleThreaded,
) -> Result<i32, OciError> {
    create_container(ctx, args, single).map(|_| 0)
}

fn create_container(
    ctx: &Context,
    args: &CreateArgs,
    single: &sandbox::SingleThreaded,
) -> Result<State, OciError> {
    if args.preserve_fds > 0 {
        return Err(OciError::Usage("--preserve-fds is not supported".into()));
    }
    let (bundle, spec) = load_bundle(&args.bundle)?;
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    if terminal && args.console_socket.is_none() {
        return Err(OciError::Usage(
            "process.terminal needs --console-socket".into(),
        ));
    }
    if !terminal && args.console_socket.is_some() {
        return Err(OciError::Usage(
            "--console-socket needs process.terminal: true".into(),
        ));
    }
    let container = ctx.root.create(&args.id)?;
    let dir = container.dir.clone();
    let mut undo = Undo {
        ctx,
        container,
        state: None,
        sandbox_id: sandbox_id(&args.id),
        armed: true,
    };
    let config = serde_json::to_vec(&spec).map_err(|e| OciError::Config {
        bundle: bundle.clone(),
        message: e.to_string(),
    })?;
    super::state::write_atomic(&dir, super::state::CONFIG_FILE, &config)?;
    let fifo = dir.join(super::state::EXEC_FIFO);
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(sys_err("make the exec fifo"))?;
    let opts = run_options(
        &undo.sandbox_id,
        &fifo,
        !ctx.uid_range,
        spec.linux().as_ref().and_then(|l| l.cgroups_path().clone()),
    );
    let sb = sandbox::Sandbox::create(&spec, opts, single)
        .map_err(|e| OciError::Sandbox(e.as_step_failure().to_string()))?;
    let run_dir = Path::new(sandbox::options::defaults::RUN_DIR);
    let detached = sb
        .into_container(&run_dir.join("uidpool"), &dir)
        .map_err(|e| OciError::Sandbox(e.to_string()))?;
    let rootfs = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .unwrap_or_default();
    let state = State {
        id: args.id.clone(),
        pid: detached.init_pid,
        init_start_time: super::state::proc_start_time(detached.init_pid).unwrap_or(0),
        bundle: bundle.clone(),
        rootfs,
        created: humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
        annotations: spec
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        sandbox_id: detached.sandbox_id.clone(),
        cgroup_paths: detached.cgroup_paths.clone(),
        cgroup_owned: true,
        uid_lease: ctx.uid_range.then_some(UidRange {
            host_base: detached.host_uid_base,
            size: detached.uid_range_size,
        }),
        owner_uid: nix::unistd::geteuid().as_raw(),
    };
    undo.state = Some(state.clone());
    // The runtime's hooks see the container created (its pid known);
    // prestart (deprecated) before createRuntime, as runc orders them.
    let public = state.public(Status::Created);
    hooks::run_stage(&spec, Stage::Prestart, &public, &ctx.log)?;
    hooks::run_stage(&spec, Stage::CreateRuntime, &public, &ctx.log)?;
    hooks::run_stage_in(
        &spec,
        Stage::CreateContainer,
        &public,
        &ctx.log,
        hooks::Place::Container {
            state: &state,
            single,
        },
    )?;
    if let Some(path) = &args.console_socket {
        let Some(master) = &detached.pty_master else {
            return Err(OciError::Sandbox("the container opened no terminal".into()));
        };
        send_console(path, master)?;
    }
    undo.container.save(&state)?;
    if let Some(p) = &args.pid_file {
        write_pid_file(p, state.pid)?;
    }
    undo.armed = false;
    Ok(state)
}

/// `--pid-file`: written through a temp file in the same directory and
/// renamed, so a reader never sees it half written (runc does the same).
pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<(), OciError> {
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(io_err("the current directory"))?
            .join(path)
    };
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(OciError::Usage(format!(
            "--pid-file {}: not a file",
            path.display()
        )));
    };
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    std::fs::write(&tmp, pid.to_string())
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(io_err(format!("write the pid file {}", path.display())))
}

/// Sends the pty master over the console socket (SCM_RIGHTS), as runc.
pub(crate) fn send_console(path: &Path, master: &OwnedFd) -> Result<(), OciError> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let stream = std::os::unix::net::UnixStream::connect(path).map_err(io_err(format!(
        "connect to the console socket {}",
        path.display()
    )))?;
    let fds = [master.as_raw_fd()];
    let name = b"/dev/ptmx";
    let iov = [std::io::IoSlice::new(name)];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(
        stream.as_fd().as_raw_fd(),
        &iov,
        &cmsg,
        MsgFlags::empty(),
        None,
    )
    .map_err(sys_err("send the terminal over the console socket"))?;
    Ok(())
}

/// How long `start` waits for init to take the FIFO.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// `start`: runs the startContainer hooks in the container, releases it,
/// then runs the poststart hooks.
pub fn start(ctx: &Context, id: &str, single: &sandbox::SingleThreaded) -> Result<i32, OciError> {
    let c = ctx.root.open(id, false)?;
    let state = c.state()?;
    let status = state.status(&c.dir);
    if status != Status::Created {
        return Err(OciError::WrongStatus {
            id: id.into(),
            status: status.as_str(),
            action: "only a created container can be started",
        });
    }
    let spec = c.config()?;
    start_hooks(ctx, &spec, &state, single)?;
    release(&c, &state)?;
    // A failing poststart hook is logged (runtime-spec: the runtime MUST
    // log it; the container stays).
    let public = state.public(Status::Running);
    if let Err(e) = hooks::run_stage(&spec, Stage::Poststart, &public, &ctx.log) {
        ctx.log.warn(&format!("poststart: {e}"));
    }
    Ok(0)
}

/// startContainer hooks: before the program, in the container's mount
/// namespace. A failure leaves the container created (the engine deletes
/// it).
fn start_hooks(
    ctx: &Context,
    spec: &Spec,
    state: &State,
    single: &sandbox::SingleThreaded,
) -> Result<(), OciError> {
    let public = state.public(Status::Created);
    hooks::run_stage_in(
        spec,
        Stage::StartContainer,
        &public,
        &ctx.log,
        hooks::Place::Container { state, single },
    )?;
    Ok(())
}

/// Opens the FIFO for reading (releasing init's open), reads its byte and
/// removes the FIFO: from then on the container is running.
fn release(c: &Container, state: &State) -> Result<(), OciError> {
    use nix::fcntl::OFlag;
    let fifo = c.fifo_path();
    // Non-blocking: an init that died never opens the other end.
    let fd = nix::fcntl::open(
        &fifo,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(sys_err("open the exec fifo"))?;
    let deadline = Instant::now() + START_TIMEOUT;
    let mut buf = [0u8; 1];
    loop {
        match nix::unistd::read(&fd, &mut buf) {
            Ok(1) => break,
            // No writer yet (or it closed without a byte: init died).
            Ok(_) | Err(nix::errno::Errno::EAGAIN) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(sys_err("read the exec fifo")(e)),
        }
        if !state.init_alive() {
            return Err(OciError::Sandbox(
                "the container's init exited before start".into(),
            ));
        }
        if Instant::now() > deadline {
            return Err(OciError::Sandbox(format!(
                "the container's init did not take the start within {START_TIMEOUT:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    std::fs::remove_file(&fifo).map_err(io_err("remove the exec fifo"))
}

/// `run`: create, start, wait; exits with the container's status and
/// deletes it (unless detached).
pub fn run(
    ctx: &Context,
    args: &RunArgs,
    single: &sandbox::SingleThreaded,
) -> Result<i32, OciError> {
    // Signals to `run` go to the container (its program has a session of
    // its own: Ctrl-C reaches only us). Blocked before the clone, which
    // inherits the mask; the program's steps reset it.
    let forwarded = forwarded_signals();
    if !args.detach {
        sandbox::process::signals::set_sigmask(nix::sys::signal::SigmaskHow::SIG_BLOCK, &forwarded)
            .map_err(sys_err("block signals"))?;
    }
    let state = create_container(ctx, &args.create, single)?;
    let started = ctx
        .root
        .open(&state.id, false)
        .map_err(OciError::from)
        .and_then(|c| {
            let spec = c.config()?;
            start_hooks(ctx, &spec, &state, single)?;
            release(&c, &state)?;
            let public = state.public(Status::Running);
            if let Err(e) = hooks::run_stage(&spec, Stage::Poststart, &public, &ctx.log) {
                ctx.log.warn(&format!("poststart: {e}"));
            }
            Ok(())
        });
    if let Err(e) = started {
        let _ = super::manage::delete_now(ctx, &state.id, true);
        return Err(e);
    }
    if args.detach {
        return Ok(0);
    }
    let waited = wait_forwarding(&state, &forwarded);
    super::manage::delete_now(ctx, &state.id, true)?;
    waited
}

/// What `run` forwards to the container.
fn forwarded_signals() -> nix::sys::signal::SigSet {
    use nix::sys::signal::Signal;
    let mut set = nix::sys::signal::SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
        Signal::SIGCHLD,
    ] {
        set.add(s);
    }
    set
}

/// Waits for the container's init (our child: `run` created it),
/// forwarding the blocked signals to it through its pidfd; its exit
/// status, 128+N for a signal N.
fn wait_forwarding(state: &State, set: &nix::sys::signal::SigSet) -> Result<i32, OciError> {
    use nix::sys::signal::Signal;
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let pid = nix::unistd::Pid::from_raw(state.pid);
    let pidfd = state.pidfd();
    let sigfd = SignalFd::with_flags(set, SfdFlags::SFD_CLOEXEC).map_err(sys_err("signalfd"))?;
    loop {
        // First: the init may have exited before the signalfd existed.
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(sys_err("wait for the container")(e)),
        }
        let info = match sigfd.read_signal() {
            Ok(Some(i)) => i,
            Ok(None) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(sys_err("read signals")(e)),
        };
        let sig = info.ssi_signo as i32;
        if sig == Signal::SIGCHLD as i32 {
            continue;
        }
        if let Some(fd) = &pidfd {
            let _ = sandbox::process::signals::pidfd_send_signal(fd.as_fd(), sig);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_cgroup_paths_are_refused_by_name() {
        let e = check_cgroups_path(Path::new("system.slice:docker:abc")).unwrap_err();
        assert!(
            e.contains("linux.cgroupsPath") && e.contains("systemd"),
            "{e}"
        );
        assert!(check_cgroups_path(Path::new("/a/../b")).is_err());
        assert!(check_cgroups_path(Path::new("/docker/abc")).is_ok());
        assert!(check_cgroups_path(Path::new("mine/abc")).is_ok());
    }

    #[test]
    fn sandbox_ids_fit_the_sandbox_charset() {
        assert_eq!(sandbox_id("web-1"), "oci-web-1");
        let long = "a".repeat(64);
        for id in [long.as_str(), "a.b", "x+y"] {
            let s = sandbox_id(id);
            assert!(sandbox::id::check(&s).is_ok(), "{s}");
        }
        assert_ne!(sandbox_id("a.b"), sandbox_id("a+b"));
    }
}
