//! The config's hooks (runtime-spec "POSIX-platform Hooks"): each gets
//! the container's state JSON on stdin, its own args and env (nothing of
//! ours), and is killed at its `timeout`. A failing hook fails the step
//! it belongs to (`create`, `start`), except poststart/poststop, whose
//! failures are logged.
//!
//! Where they run: prestart, createRuntime, poststart and poststop in the
//! runtime's namespaces; createContainer and startContainer in the
//! container's user and mount namespaces (a forked child joins them with
//! setns, which also moves its root there, and becomes the container's
//! root, then starts the hook: its path resolves in the container). The
//! user namespace first: the program found there is the container's, and
//! must not run as host root.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Spec};

use super::state::PublicState;
use super::Log;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Prestart => "prestart",
            Stage::CreateRuntime => "createRuntime",
            Stage::CreateContainer => "createContainer",
            Stage::StartContainer => "startContainer",
            Stage::Poststart => "poststart",
            Stage::Poststop => "poststop",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{stage} hook {path}: cannot start: {source}")]
    Spawn {
        stage: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{stage} hook {path} failed ({status}){stderr}")]
    Failed {
        stage: &'static str,
        path: String,
        status: String,
        stderr: String,
    },
    #[error("{stage} hook {path} timed out after {secs}s")]
    Timeout {
        stage: &'static str,
        path: String,
        secs: i64,
    },
    #[error("{stage} hooks: entering the container's mount namespace: {source}")]
    Namespace {
        stage: &'static str,
        source: nix::errno::Errno,
    },
    /// A namespaced hook's failure, as its child reported it.
    #[error("{0}")]
    InContainer(String),
}

/// Where a stage's hooks run.
pub enum Place<'a> {
    /// The runtime's own namespaces.
    Runtime,
    /// The user and mount namespaces of the container's (live) init.
    Container {
        state: &'a super::state::State,
        single: &'a sandbox::SingleThreaded,
    },
}

/// Longest wait for a hook without a `timeout` (runc waits forever; a
/// hung hook would hang the engine's call).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

fn hooks_of(spec: &Spec, stage: Stage) -> Vec<Hook> {
    let Some(h) = spec.hooks() else {
        return Vec::new();
    };
    #[allow(deprecated)]
    let list = match stage {
        Stage::Prestart => h.prestart(),
        Stage::CreateRuntime => h.create_runtime(),
        Stage::CreateContainer => h.create_container(),
        Stage::StartContainer => h.start_container(),
        Stage::Poststart => h.poststart(),
        Stage::Poststop => h.poststop(),
    };
    list.clone().unwrap_or_default()
}

/// Runs the hooks of `stage` in order, in the runtime's namespaces; the
/// first failure stops them.
pub fn run_stage(
    spec: &Spec,
    stage: Stage,
    state: &PublicState,
    log: &Log,
) -> Result<(), HookError> {
    run_stage_in(spec, stage, state, log, Place::Runtime)
}

/// Runs the hooks of `stage` in order at `place`.
pub fn run_stage_in(
    spec: &Spec,
    stage: Stage,
    state: &PublicState,
    log: &Log,
    place: Place<'_>,
) -> Result<(), HookError> {
    let hooks = hooks_of(spec, stage);
    if hooks.is_empty() {
        return Ok(());
    }
    let input = serde_json::to_vec(state).unwrap_or_default();
    let run_all = || -> Result<(), HookError> {
        for hook in &hooks {
            log.debug(&format!("{} hook {}", stage.name(), hook.path().display()));
            run_one(stage, hook, &input)?;
        }
        Ok(())
    };
    match place {
        Place::Runtime => run_all(),
        Place::Container { state, single } => in_mount_namespace(stage, state, single, run_all),
    }
}

/// Runs `f` in a forked child that joined the mount namespace of `pid`;
/// its error comes back through a pipe as text.
fn in_mount_namespace(
    stage: Stage,
    state: &super::state::State,
    single: &sandbox::SingleThreaded,
    f: impl FnOnce() -> Result<(), HookError>,
) -> Result<(), HookError> {
    use nix::fcntl::OFlag;
    let ns_err = |source| HookError::Namespace {
        stage: stage.name(),
        source,
    };
    // Only while the recorded init lives (its start time checked): a
    // reused pid would be a stranger's namespaces.
    let open_ns = |kind: &str| {
        let path = state
            .namespace_path(kind)
            .ok_or(ns_err(nix::errno::Errno::ESRCH))?;
        nix::fcntl::open(
            &path,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(ns_err)
    };
    let userns = open_ns("user")?;
    let ns = open_ns("mnt")?;
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(ns_err)?;
    match sandbox::helper::fork(single).map_err(ns_err)? {
        sandbox::helper::Forked::Child(_) => {
            drop(r);
            let root = nix::unistd::Uid::from_raw(0);
            let root_gid = nix::unistd::Gid::from_raw(0);
            let result = nix::sched::setns(&userns, nix::sched::CloneFlags::CLONE_NEWUSER)
                .and_then(|()| nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNS))
                .and_then(|()| nix::unistd::setgroups(&[]))
                .and_then(|()| nix::unistd::setresgid(root_gid, root_gid, root_gid))
                .and_then(|()| nix::unistd::setresuid(root, root, root))
                .map_err(ns_err)
                .and_then(|()| f());
            let code = match result {
                Ok(()) => 0,
                Err(e) => {
                    let _ = nix::unistd::write(&w, e.to_string().as_bytes());
                    1
                }
            };
            sandbox::helper::exit_now(code)
        }
        sandbox::helper::Forked::Parent(child) => {
            drop(w);
            let mut text = Vec::new();
            let _ = std::fs::File::from(r).read_to_end(&mut text);
            let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child), None);
            match status {
                Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(()),
                _ if !text.is_empty() => Err(HookError::InContainer(
                    String::from_utf8_lossy(&text).into_owned(),
                )),
                other => Err(HookError::InContainer(format!(
                    "{} hooks: the hook runner ended with {other:?}",
                    stage.name()
                ))),
            }
        }
    }
}

fn run_one(stage: Stage, hook: &Hook, input: &[u8]) -> Result<(), HookError> {
    let path = hook.path().display().to_string();
    let args = hook.args().clone().unwrap_or_default();
    let mut cmd = Command::new(hook.path());
    if let Some(argv0) = args.first() {
        cmd.arg0(argv0);
    }
    cmd.args(args.iter().skip(1))
        .env_clear()
        .envs(
            hook.env()
                .iter()
                .flatten()
                .filter_map(|kv| kv.split_once('=')),
        )
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| HookError::Spawn {
        stage: stage.name(),
        path: path.clone(),
        source,
    })?;
    // The state is small (far below a pipe's buffer); a hook that does
    // not read it gets EPIPE on our side, which is fine.
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input);
    }
    let timeout = match hook.timeout() {
        Some(s) if s > 0 => Duration::from_secs(s as u64),
        _ => DEFAULT_TIMEOUT,
    };
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(HookError::Timeout {
                    stage: stage.name(),
                    path,
                    secs: timeout.as_secs() as i64,
                });
            }
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        // The hook has exited; what it wrote is in the pipe (a child of
        // its still holding the pipe could block us: bounded read).
        let _ = nix::fcntl::fcntl(
            &err,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        let mut buf = vec![0u8; 1024];
        if let Ok(n) = err.read(&mut buf) {
            stderr = String::from_utf8_lossy(&buf[..n]).trim().to_string();
        }
    }
    Err(HookError::Failed {
        stage: stage.name(),
        path,
        status: status.to_string(),
        stderr: if stderr.is_empty() {
            String::new()
        } else {
            format!(": {}", stderr.lines().last().unwrap_or_default())
        },
    })
}
