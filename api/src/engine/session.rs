//! One session's sandbox from the daemon's side: start it through a
//! helper, spawn processes in it through its PID 1, end it.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sandbox::cgroup::{Cgroup, CgroupError, CgroupStats, CgroupVersion};
use sandbox::process::channel::{
    Channel, ChildMessage, ParentMessage, SpawnFds, SpawnRequest, SpawnStdio, WriteFilesFds,
    WriteOutcome,
};
use sandbox::StepFailure;
use tokio::sync::{mpsc, watch};

use super::host::{HostCommand, HostReply, HostRequest, CONTROL_FD};
use super::{AsyncChannel, EngineConfig};

/// How long a helper may take to set up a sandbox.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long ending a session may take before we stop waiting for the
/// helper's word (it still cleans up on its own).
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// How long one [`SessionSandbox::write_files`] may take, bytes and
/// answer (a writer that a root inside stopped must not hold the caller
/// forever).
const WRITE_TIMEOUT: Duration = Duration::from_secs(120);
/// Files per [`SessionSandbox::write_files`] call: SCM_RIGHTS carries at
/// most 253 fds per message, one of them the pipe.
pub const MAX_WRITE_FILES: usize = 250;

/// Why a session sandbox did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The request's spec was refused by the sandbox's validation.
    #[error("{0}")]
    Invalid(StepFailure),
    /// A setup step failed on this host.
    #[error("{0}")]
    Setup(StepFailure),
    #[error("sandbox helper: {0}")]
    Helper(String),
}

/// What happens to a spawned process, in order: `Spawned` (or `Failed`),
/// then `Exited`; `SessionGone` when the session ended first.
#[derive(Debug)]
pub enum ProcEvent {
    Spawned {
        pid: i32,
        master: Option<OwnedFd>,
    },
    Failed(StepFailure),
    Exited(ExitStatus),
    /// A `write_files` request is over.
    Written(WriteOutcome),
    SessionGone,
}

/// Why [`SessionSandbox::write_files`] failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The writer stopped at this errno (ENOSPC, EFBIG...) or could not
    /// start (EAGAIN: the session's pids limit).
    #[error("writing failed: {0}")]
    Failed(nix::errno::Errno),
    /// The OOM killer took the writer: the session's memory limit (the
    /// writer is its first choice).
    #[error("the session's memory limit was reached")]
    MemoryLimit,
    /// The writer was killed otherwise (the session is being torn down).
    #[error("the writer was killed by signal {0}")]
    Killed(i32),
    #[error("too many files in one request ({0})")]
    TooMany(usize),
    #[error("the writer did not finish within {WRITE_TIMEOUT:?}")]
    TimedOut,
    #[error("pipe: {0}")]
    Pipe(std::io::Error),
    #[error("the session has ended")]
    SessionGone,
}

/// How a spawned process ended, with its rusage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExitStatus {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub cpu_user_us: u64,
    pub cpu_system_us: u64,
    pub max_rss_kb: u64,
}

/// The cgroups of a session's ended execs that still hold processes, and
/// the OOM kills counted in those removed since (for v1's session figure).
#[derive(Debug, Default)]
struct ExecCgroups {
    lingering: Vec<Cgroup>,
    removed_oom_kills: u64,
}

impl ExecCgroups {
    /// Removes the lingering cgroups that emptied (their last OOM count
    /// read first).
    fn sweep(&mut self, session_id: &str) {
        let mut kept = Vec::with_capacity(self.lingering.len());
        for cg in self.lingering.drain(..) {
            let oom_kills = cg.stats().map(|s| s.oom_kills).unwrap_or(0);
            match cg.remove_if_empty() {
                Ok(None) => self.removed_oom_kills += oom_kills,
                Ok(Some(cg)) => kept.push(cg),
                Err(e) => {
                    tracing::warn!(session_id = %session_id, error = %e, "an exec's cgroup was not removed");
                }
            }
        }
        self.lingering = kept;
    }
}

/// A running session sandbox.
pub struct SessionSandbox {
    pub id: String,
    /// Host pid of PID 1 (its /proc/<pid>/root reaches the session's files).
    pub init_pid: i32,
    /// Host uid/gid that uid 0 inside maps to.
    pub host_uid: u32,
    pub cgroup_paths: Vec<String>,
    pid1: Arc<AsyncChannel>,
    control: AsyncChannel,
    /// PID 1's pidfd: tells whether `init_pid` still names PID 1 (see
    /// [`Self::open_root`]).
    pidfd: OwnedFd,
    waiters: Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<ProcEvent>>>>,
    next_id: AtomicU64,
    /// Numbers the execs' child cgroups (`exec-<n>`).
    next_cgroup: AtomicU64,
    /// The cgroups of ended execs whose processes still run.
    exec_cgroups: Mutex<ExecCgroups>,
    /// Becomes true when PID 1's channel closed (the session is over).
    gone: watch::Receiver<bool>,
    stopped: AtomicBool,
    helper: tokio::sync::Mutex<Option<tokio::process::Child>>,
}

impl SessionSandbox {
    /// Starts a helper that creates a session sandbox for `request`.
    pub async fn start(
        cfg: &EngineConfig,
        id: &str,
        request: &sandbox::Request,
        image: Option<&super::host::ImageRoot>,
    ) -> Result<Arc<SessionSandbox>, StartError> {
        let helper_err =
            |what: &str, e: &dyn std::fmt::Display| StartError::Helper(format!("{what}: {e}"));
        let (control, mut child) = start_helper(cfg)?;
        let req = HostRequest::new(id, request, image, None);
        let reply = async {
            control.send(&req, &[]).await?;
            control.recv::<HostReply>().await
        };
        let reply = match tokio::time::timeout(START_TIMEOUT, reply).await {
            Ok(r) => r,
            Err(_) => {
                // Closing the control socket makes the helper tear down.
                drop(control);
                if let Some(c) = child.as_mut() {
                    let _ = c.start_kill();
                    let _ = c.wait().await;
                }
                return Err(StartError::Helper(format!(
                    "the sandbox did not start within {START_TIMEOUT:?}"
                )));
            }
        };
        let (init_pid, host_uid, cgroup_paths, fds) = match reply {
            Ok(Some((
                HostReply::Ready {
                    init_pid,
                    host_uid,
                    cgroup_paths,
                },
                fds,
            ))) if fds.len() == 2 => (init_pid, host_uid, cgroup_paths, fds),
            other => {
                if let Some(c) = child.as_mut() {
                    let _ = c.wait().await;
                }
                return Err(match other {
                    Ok(Some((
                        HostReply::Failed {
                            error,
                            invalid_spec,
                        },
                        _,
                    ))) => {
                        if invalid_spec {
                            StartError::Invalid(error)
                        } else {
                            StartError::Setup(error)
                        }
                    }
                    Ok(_) => StartError::Helper("the helper exited without a reply".into()),
                    Err(e) => helper_err("control", &e),
                });
            }
        };
        let mut fds = fds.into_iter();
        let (Some(chan), Some(pidfd)) = (fds.next(), fds.next()) else {
            return Err(StartError::Helper("missing fds".into()));
        };
        let pid1 = Arc::new(AsyncChannel::new(chan).map_err(|e| helper_err("channel", &e))?);
        let waiters: Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<ProcEvent>>>> = Arc::default();
        let (gone_tx, gone) = watch::channel(false);
        tokio::spawn(read_pid1(pid1.clone(), waiters.clone(), gone_tx));
        Ok(Arc::new(SessionSandbox {
            id: id.to_string(),
            init_pid,
            host_uid,
            cgroup_paths,
            pid1,
            control,
            pidfd,
            waiters,
            next_id: AtomicU64::new(1),
            next_cgroup: AtomicU64::new(1),
            exec_cgroups: Mutex::default(),
            gone,
            stopped: AtomicBool::new(false),
            helper: tokio::sync::Mutex::new(child),
        }))
    }

    /// Whether the sandbox ended (PID 1 gone) or was stopped.
    pub fn is_gone(&self) -> bool {
        *self.gone.borrow() || self.stopped.load(Ordering::SeqCst)
    }

    /// Resolves when PID 1's channel closes.
    pub async fn wait_gone(&self) {
        let mut rx = self.gone.clone();
        let _ = rx.wait_for(|g| *g).await;
    }

    /// Starts a process; `stdio` (stdin, stdout, stderr) unless `terminal`;
    /// `join_cgroup`: the fds of a child cgroup of the session's that the
    /// process moves itself into before it runs ([`Self::child_cgroup`]).
    /// Returns the process's id, its pid inside, the pty master (terminal)
    /// and its event stream.
    pub async fn spawn(
        &self,
        args: Vec<String>,
        env: Vec<String>,
        cwd: String,
        terminal: Option<(u16, u16)>,
        stdio: Option<SpawnStdio<BorrowedFd<'_>>>,
        join_cgroup: &[OwnedFd],
    ) -> Result<Spawned, SpawnError> {
        if self.is_gone() {
            return Err(SpawnError::SessionGone);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = mpsc::unbounded_channel();
        if let Ok(mut w) = self.waiters.lock() {
            w.insert(id, tx);
        }
        let req = ParentMessage::Spawn(SpawnRequest {
            id,
            args,
            env,
            cwd,
            terminal,
            cgroup_fds: join_cgroup.len(),
        });
        // Armed before the request leaves: a caller that goes away while
        // PID 1 is still starting the process (a dropped request future)
        // kills it as soon as it exists (PID 1 reads the channel in order).
        let mut guard = KillOnDrop {
            pid1: self.pid1.clone(),
            id,
            armed: true,
        };
        let fds = SpawnFds {
            stdio,
            join_cgroup: join_cgroup.iter().map(AsFd::as_fd).collect(),
        };
        if self.pid1.send(&req, &fds.fds()).await.is_err() {
            guard.armed = false;
            self.forget(id);
            return Err(SpawnError::SessionGone);
        }
        match rx.recv().await {
            Some(ProcEvent::Spawned { pid, master }) => Ok(Spawned {
                id,
                pid,
                master,
                events: rx,
                guard,
            }),
            Some(ProcEvent::Failed(f)) => {
                guard.armed = false;
                Err(SpawnError::Failed(f))
            }
            _ => {
                guard.armed = false;
                Err(SpawnError::SessionGone)
            }
        }
    }

    /// PID 1's root directory (the session's `/`) as an `O_PATH` fd, for
    /// the daemon's own access to the session's files: everything below it
    /// is then resolved inside it (`openat2` with `RESOLVE_IN_ROOT`), never
    /// as a path from the daemon's root. `/proc/<pid>` is opened first and
    /// PID 1 is checked afterwards, through its pidfd, to be still unreaped:
    /// a pid number is reused only after its process is reaped, so the
    /// directory opened is PID 1's (the method of pidfd_open(2), NOTES).
    pub fn open_root(&self) -> std::io::Result<OwnedFd> {
        use nix::fcntl::{open, openat, OFlag};
        use nix::sys::stat::Mode;
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let io = |e: nix::errno::Errno| std::io::Error::from_raw_os_error(e as i32);
        let proc = open(
            format!("/proc/{}", self.init_pid).as_str(),
            flags,
            Mode::empty(),
        )
        .map_err(io)?;
        sandbox::process::signals::pidfd_send_signal(self.pidfd.as_fd(), 0).map_err(io)?;
        openat(&proc, "root", flags, Mode::empty()).map_err(io)
    }

    /// Writes `data` into each file (opened for writing and empty, by the
    /// caller) through a writer process that PID 1 forks: a process of the
    /// session, so the tmpfs pages count against the session's memory
    /// limit and not the daemon's ([`ParentMessage::WriteFiles`]). The
    /// writer only ever gets the fds; the bytes stream through a pipe, so
    /// the daemon holds no more than the pipe's buffer in the kernel. At
    /// most [`MAX_WRITE_FILES`] files.
    pub async fn write_files(&self, files: &[(BorrowedFd<'_>, &[u8])]) -> Result<(), WriteError> {
        if files.len() > MAX_WRITE_FILES {
            return Err(WriteError::TooMany(files.len()));
        }
        if self.is_gone() {
            return Err(WriteError::SessionGone);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = mpsc::unbounded_channel();
        if let Ok(mut w) = self.waiters.lock() {
            w.insert(id, tx);
        }
        let oom_before = self.oom_kills();
        let done =
            tokio::time::timeout(WRITE_TIMEOUT, self.write_files_as(id, files, &mut rx)).await;
        self.forget(id);
        match done {
            Err(_) => Err(WriteError::TimedOut),
            // The OOM killer counts its kill before the signal goes out.
            Ok(Err(WriteError::Killed(libc::SIGKILL))) if self.oom_kills() > oom_before => {
                Err(WriteError::MemoryLimit)
            }
            Ok(r) => r,
        }
    }

    async fn write_files_as(
        &self,
        id: u64,
        files: &[(BorrowedFd<'_>, &[u8])],
        rx: &mut mpsc::UnboundedReceiver<ProcEvent>,
    ) -> Result<(), WriteError> {
        use tokio::io::AsyncWriteExt;
        let pipe_err =
            |e: nix::errno::Errno| WriteError::Pipe(std::io::Error::from_raw_os_error(e as i32));
        let (pipe_r, pipe_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(pipe_err)?;
        let lengths = files.iter().map(|(_, d)| d.len() as u64).collect();
        let fds = WriteFilesFds {
            source: pipe_r.as_fd(),
            files: files.iter().map(|(f, _)| *f).collect(),
        };
        let sent = self
            .pid1
            .send(&ParentMessage::WriteFiles { id, lengths }, &fds.fds())
            .await;
        drop(fds);
        // Only the writer may hold the read end: when it stops, our writes
        // fail (EPIPE) instead of blocking.
        drop(pipe_r);
        sent.map_err(|_| WriteError::SessionGone)?;
        let mut pipe =
            tokio::net::unix::pipe::Sender::from_owned_fd(pipe_w).map_err(WriteError::Pipe)?;
        for (_, data) in files {
            match pipe.write_all(data).await {
                Ok(()) => {}
                // The writer stopped early: its outcome says why.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
                Err(e) => return Err(WriteError::Pipe(e)),
            }
        }
        drop(pipe);
        loop {
            match rx.recv().await {
                Some(ProcEvent::Written(WriteOutcome::Done)) => return Ok(()),
                Some(ProcEvent::Written(WriteOutcome::Failed { errno })) => {
                    return Err(WriteError::Failed(nix::errno::Errno::from_raw(errno)))
                }
                Some(ProcEvent::Written(WriteOutcome::Killed { signal })) => {
                    return Err(WriteError::Killed(signal))
                }
                Some(ProcEvent::SessionGone) | None => return Err(WriteError::SessionGone),
                Some(_) => continue,
            }
        }
    }

    fn forget(&self, id: u64) {
        if let Ok(mut w) = self.waiters.lock() {
            w.remove(&id);
        }
    }

    /// Sends `signal` to the process group of process `id`.
    pub async fn signal(&self, id: u64, signal: i32) {
        let _ = self
            .pid1
            .send(&ParentMessage::Signal { id, signal }, &[])
            .await;
    }

    /// A new child cgroup of the session's (blocking: a few cgroupfs
    /// calls), with the fds a process joins it through: an exec's own,
    /// so that its accounting is its alone. `None` when the session has
    /// ended.
    pub fn child_cgroup(&self) -> Result<Option<(Cgroup, Vec<OwnedFd>)>, CgroupError> {
        let mgr = sandbox::cgroup::manager()?;
        let n = self.next_cgroup.fetch_add(1, Ordering::Relaxed);
        let cg = match mgr.create_child(&self.id, &format!("exec-{n}"), &Default::default()) {
            Ok(cg) => cg,
            Err(CgroupError::ParentMissing { .. }) => return Ok(None),
            Err(e) if self.is_gone() => {
                tracing::debug!(session_id = %self.id, error = %e, "no exec cgroup: the session ended");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let fds = cg.join_fds()?;
        Ok(Some((cg, fds)))
    }

    /// An exec ended on its own: its cgroup goes now if it is empty, else
    /// when the processes it left running (a server it started) have
    /// ended; they stay under the session's limits meanwhile. Also
    /// removes the cgroups of earlier execs that emptied since. Never
    /// kills or waits: rmdirs only.
    pub fn exec_ended(&self, cg: Cgroup) {
        let Ok(mut execs) = self.exec_cgroups.lock() else {
            return;
        };
        execs.lingering.push(cg);
        execs.sweep(&self.id);
    }

    /// An exec's cgroup was removed (after a limit killed it whole):
    /// `oom_kills` are its last count.
    pub fn exec_removed(&self, oom_kills: u64) {
        if let Ok(mut execs) = self.exec_cgroups.lock() {
            execs.removed_oom_kills += oom_kills;
        }
    }

    /// OOM kills in execs' cgroups that the session's own counter does not
    /// show: on v1 a parent's `oom_kill` counts its own processes only
    /// (those of ended execs, removed or still running, are added); v2's
    /// `memory.events` is hierarchical and shows them all.
    fn exec_oom_kills(&self) -> u64 {
        if !sandbox::cgroup::manager().is_ok_and(|m| m.version() == CgroupVersion::V1) {
            return 0;
        }
        let Ok(execs) = self.exec_cgroups.lock() else {
            return 0;
        };
        execs.removed_oom_kills
            + execs
                .lingering
                .iter()
                .filter_map(|c| c.stats().ok())
                .map(|s| s.oom_kills)
                .sum::<u64>()
    }

    /// OOM kills in the session so far, its execs' included (0 when
    /// unknown).
    pub fn oom_kills(&self) -> u64 {
        sandbox::cgroup::manager()
            .ok()
            .and_then(|m| m.oom_kills_of(&self.id).ok().flatten())
            .unwrap_or(0)
            + self.exec_oom_kills()
    }

    /// The cgroup's accounting right now (OOM kills of ended execs
    /// included).
    pub fn stats(&self) -> Option<CgroupStats> {
        let mgr = sandbox::cgroup::manager().ok()?;
        let mut stats = mgr.stats_of(&self.id).ok()??;
        stats.oom_kills += self.exec_oom_kills();
        Some(stats)
    }

    /// Ends the session: the helper kills everything in the sandbox and
    /// removes its cgroup; returns when it said so (or after a timeout).
    pub async fn stop(&self) -> Option<CgroupStats> {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return None;
        }
        let ended = async {
            let _ = self.control.send(&HostCommand::Stop, &[]).await;
            loop {
                match self.control.recv::<HostReply>().await {
                    Ok(Some((HostReply::Ended { stats, .. }, _))) => return Some(stats),
                    Ok(Some(_)) => continue,
                    _ => return None,
                }
            }
        };
        let stats = tokio::time::timeout(STOP_TIMEOUT, ended)
            .await
            .ok()
            .flatten();
        if let Some(mut child) = self.helper.lock().await.take() {
            let _ = tokio::time::timeout(STOP_TIMEOUT, child.wait()).await;
        }
        if stats.is_none() {
            // The helper died without cleaning up (killed from outside):
            // its sandbox died with it (PID 1's parent-death signal), so
            // what is left is the cgroup. Remove it here rather than wait
            // for the next start's sweep.
            let id = self.id.clone();
            let _ = tokio::task::spawn_blocking(move || {
                if let Ok(mgr) = sandbox::cgroup::manager() {
                    if let Ok(Some(cg)) = mgr.open_existing(&id) {
                        if let Err(e) = cg.remove() {
                            tracing::warn!(session_id = %id, error = %e, "cgroup of a dead helper not removed");
                        }
                    }
                }
            })
            .await;
        }
        stats
    }
}

/// Starts a `sandbox-host` helper and returns our end of its control
/// socket (and the child, when it was re-executed rather than forked by
/// the zygote, so that the caller reaps it). A re-executed helper gets
/// the daemon's settings as its first message; a forked one has them from
/// the zygote.
pub(super) fn start_helper(
    cfg: &EngineConfig,
) -> Result<(AsyncChannel, Option<tokio::process::Child>), StartError> {
    let helper_err =
        |what: &str, e: &dyn std::fmt::Display| StartError::Helper(format!("{what}: {e}"));
    let (ours, theirs) = Channel::pair().map_err(|e| helper_err("socketpair", &e))?;
    let mut child = None;
    // From the zygote; if it is gone (killed from outside), the binary
    // re-executed as `runtimed sandbox-host` does the same job.
    let forked = match &cfg.zygote {
        Some(z) => match z.spawn_helper(theirs.as_fd()) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "the zygote is gone; re-executing helpers");
                false
            }
        },
        None => false,
    };
    if !forked {
        let mut cmd = std::process::Command::new(&cfg.exe);
        cmd.arg("sandbox-host")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit());
        // Its own process group: a Ctrl-C meant for the daemon must not
        // kill helpers before they tear down their sandboxes.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        // A copy the command owns until it is dropped (after the spawn).
        let fd = theirs
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| helper_err("dup the control socket", &e))?;
        sandbox::helper::pass_fd_to_command(&mut cmd, fd, CONTROL_FD);
        child = Some(
            tokio::process::Command::from(cmd)
                .spawn()
                .map_err(|e| helper_err(&format!("start {}", cfg.exe.display()), &e))?,
        );
        // Still blocking and empty: one small message goes out at once.
        ours.send_json(&cfg.settings, &[])
            .map_err(|e| helper_err("send the settings", &e))?;
    }
    drop(theirs);
    let control = AsyncChannel::new(ours.into_fd()).map_err(|e| helper_err("control", &e))?;
    Ok((control, child))
}

/// A started process. It owns the process: dropped before the process
/// was seen to end (its request went away, its task was cancelled), it
/// kills the process's group, so no caller can leave work running by
/// forgetting to.
pub struct Spawned {
    pub id: u64,
    pub pid: i32,
    pub master: Option<OwnedFd>,
    pub events: mpsc::UnboundedReceiver<ProcEvent>,
    guard: KillOnDrop,
}

impl Spawned {
    /// Waits for the process's end (`None`: the session ended first).
    pub async fn wait(&mut self) -> Option<ExitStatus> {
        loop {
            match self.events.recv().await {
                Some(ProcEvent::Exited(s)) => {
                    self.guard.armed = false;
                    return Some(s);
                }
                Some(ProcEvent::SessionGone) | None => {
                    self.guard.armed = false;
                    return None;
                }
                Some(_) => continue,
            }
        }
    }
}

/// Sends SIGKILL to process `id`'s group when dropped while armed.
struct KillOnDrop {
    pid1: Arc<AsyncChannel>,
    id: u64,
    armed: bool,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // Drop cannot wait for the channel; the message goes out on the
        // runtime. Without a runtime (the daemon is exiting) the helper's
        // teardown kills everything anyway.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (pid1, id) = (self.pid1.clone(), self.id);
        rt.spawn(async move {
            let _ = pid1
                .send(
                    &ParentMessage::Signal {
                        id,
                        signal: libc::SIGKILL,
                    },
                    &[],
                )
                .await;
        });
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("{0}")]
    Failed(StepFailure),
    #[error("the session has ended")]
    SessionGone,
}

/// Dispatches PID 1's messages to the waiting callers.
async fn read_pid1(
    chan: Arc<AsyncChannel>,
    waiters: Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<ProcEvent>>>>,
    gone: watch::Sender<bool>,
) {
    // A message over the channel's size limit (EMSGSIZE) or not one of
    // ours (EBADMSG) was consumed whole by the receive: the next one reads
    // cleanly. PID 1 never sends either (it shortens its failures to fit),
    // so one is logged, once per session, and the session goes on.
    let mut logged_bad_message = false;
    loop {
        let msg = match chan.recv::<ChildMessage>().await {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMSGSIZE | libc::EBADMSG)) => {
                if !logged_bad_message {
                    logged_bad_message = true;
                    tracing::warn!(
                        error = %e,
                        max_bytes = sandbox::process::channel::MAX_MSG,
                        "dropped a message from the session's PID 1 that was too large or malformed"
                    );
                }
                continue;
            }
            Err(_) => break,
        };
        let (id, event, done) = match msg {
            (ChildMessage::Spawned { id, pid }, fds) => (
                id,
                ProcEvent::Spawned {
                    pid,
                    master: fds.into_iter().next(),
                },
                false,
            ),
            (
                ChildMessage::SpawnFailed {
                    id,
                    step,
                    errno,
                    message,
                },
                _,
            ) => (
                id,
                ProcEvent::Failed(StepFailure {
                    step,
                    errno,
                    message,
                }),
                true,
            ),
            (
                ChildMessage::ProcessExited {
                    id,
                    code,
                    signal,
                    cpu_user_us,
                    cpu_system_us,
                    max_rss_kb,
                },
                _,
            ) => (
                id,
                ProcEvent::Exited(ExitStatus {
                    code,
                    signal,
                    cpu_user_us,
                    cpu_system_us,
                    max_rss_kb,
                }),
                true,
            ),
            (ChildMessage::Written { id, outcome }, _) => (id, ProcEvent::Written(outcome), true),
            _ => continue,
        };
        if let Ok(mut w) = waiters.lock() {
            if let Some(tx) = w.get(&id) {
                let _ = tx.send(event);
            }
            if done {
                w.remove(&id);
            }
        }
    }
    let _ = gone.send(true);
    if let Ok(mut w) = waiters.lock() {
        for (_, tx) in w.drain() {
            let _ = tx.send(ProcEvent::SessionGone);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sandbox::report::{Errno, Step};

    /// A datagram over the channel's limit is dropped (logged once) and the
    /// session goes on: the next message still reaches its waiter. Before,
    /// PID 1's oversized failure was cut into invalid JSON and its waiter
    /// never heard back.
    #[tokio::test]
    async fn an_oversized_message_does_not_confuse_the_session() {
        let (pid1, daemon) = Channel::pair().unwrap();
        let chan = Arc::new(AsyncChannel::new(daemon.into_fd()).unwrap());
        let waiters = Arc::new(Mutex::new(HashMap::new()));
        let (tx, mut rx) = mpsc::unbounded_channel();
        waiters.lock().unwrap().insert(5, tx);
        let (gone_tx, gone_rx) = watch::channel(false);
        let reader = tokio::spawn(read_pid1(chan, waiters.clone(), gone_tx));
        let big = vec![b'{'; sandbox::process::channel::MAX_MSG + 1];
        nix::sys::socket::send(pid1.raw_fd(), &big, nix::sys::socket::MsgFlags::empty()).unwrap();
        // A failure too long for a message: shortened by the sender.
        let failed = ChildMessage::SpawnFailed {
            id: 5,
            step: Step::Exec,
            errno: Some(Errno::ENOENT),
            message: "x".repeat(sandbox::process::channel::MAX_MSG),
        };
        pid1.send_child(&failed, None).unwrap();
        let event = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("the waiter heard back");
        match event {
            Some(ProcEvent::Failed(f)) => {
                assert_eq!((f.step, f.errno), (Step::Exec, Some(Errno::ENOENT)));
            }
            other => panic!("{other:?}"),
        }
        assert!(!*gone_rx.borrow(), "the session is still there");
        drop(pid1);
        tokio::time::timeout(Duration::from_secs(30), reader)
            .await
            .unwrap()
            .unwrap();
        assert!(*gone_rx.borrow());
    }
}
