//! The engine: sandboxes of sessions as the daemon sees them. Each session
//! is a `sandbox-host` helper process ([`host`]) that holds the sandbox;
//! the daemon speaks to the sandbox's PID 1 directly over the channel the
//! helper hands back ([`session`]): spawn a process with these fds, signal
//! it, tell me when it ended. Nothing here sets up namespaces: that only
//! happens in single-threaded helpers.
//!
//! What the rest of the daemon asks of this layer is the [`Engine`] trait
//! (start a session's sandbox, run one program once) and the
//! [`SessionHandle`] trait (is it gone, its usage, stop it, signal one of
//! its processes). [`EngineConfig`] is the real engine; a fake stands in
//! for it in `AppState`'s unit tests ([`fake`]), so quotas, the reaper,
//! recovery and shutdown are tested without sandboxes.

pub mod build;
#[cfg(test)]
pub mod fake;
pub mod host;
pub mod oneshot;
pub mod process;
pub mod pty;
pub mod session;
pub mod zygote;

use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::errno::Errno;
use sandbox::cgroup::CgroupStats;
use sandbox::process::channel::Channel;
use sandbox::ExitReport;
use sandbox::Request;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::unix::AsyncFd;

pub use session::{SessionSandbox, StartError};

/// How the engine starts helpers.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The runtimed binary (re-executed as `runtimed sandbox-host`).
    pub exe: PathBuf,
    /// What every helper is given once: the zygote's when there is one
    /// (it was forked with them), sent to each re-executed helper.
    pub settings: host::HostSettings,
    /// Forks helpers when present (`runtimed serve`); otherwise each helper
    /// is the binary re-executed.
    pub zygote: Option<std::sync::Arc<zygote::Zygote>>,
    /// Empty network namespaces that one-shot runs reuse, when present
    /// (`runtimed serve`); otherwise each run gets a new one.
    pub netns_pool: Option<std::sync::Arc<oneshot::NetnsPool>>,
}

/// The daemon's process layer as `AppState` and the routes see it. The
/// methods keep the shapes of the functions they stand for
/// ([`SessionSandbox::start`], [`oneshot::run`]). Recovery after a restart
/// needs nothing of it: a dead daemon's helpers tore their sandboxes down
/// when its end of their control sockets closed (docs/process-model.md),
/// so what is left to do is the store's.
pub trait Engine: Send + Sync + 'static {
    /// What a running session holds.
    type Sandbox: SessionHandle;

    /// Starts a session sandbox for `request` (on `image`'s layers, when
    /// one is given instead of the spec's root).
    fn start_session(
        &self,
        id: &str,
        request: &Request,
        image: Option<&host::ImageRoot>,
    ) -> impl Future<Output = Result<Arc<Self::Sandbox>, StartError>> + Send;

    /// Runs `request`'s process once ([`oneshot::run`]).
    fn run_oneshot(
        &self,
        id: &str,
        request: &Request,
        image: Option<&host::ImageRoot>,
        limits: host::Oneshot,
        stdio: oneshot::OneshotStdio,
    ) -> impl Future<Output = Result<ExitReport, StartError>> + Send;

    /// Directories of the host that this engine works in, which no error
    /// message may show a client.
    fn run_dir(&self) -> &Path;
}

/// A running session's sandbox, as `AppState` uses it.
pub trait SessionHandle: Send + Sync + 'static {
    /// Whether the sandbox ended (PID 1 gone) or was stopped.
    fn is_gone(&self) -> bool;
    /// The cgroup's accounting right now.
    fn stats(&self) -> Option<CgroupStats>;
    /// Ends the session (every process, the cgroup); returns when done.
    fn stop(&self) -> impl Future<Output = Option<CgroupStats>> + Send;
    /// Sends `signal` to the process group of process `id`.
    fn signal(&self, id: u64, signal: i32) -> impl Future<Output = ()> + Send;
}

/// The real engine: `sandbox-host` helpers, forked by the zygote or the
/// binary re-executed.
impl Engine for EngineConfig {
    type Sandbox = SessionSandbox;

    async fn start_session(
        &self,
        id: &str,
        request: &Request,
        image: Option<&host::ImageRoot>,
    ) -> Result<Arc<SessionSandbox>, StartError> {
        SessionSandbox::start(self, id, request, image).await
    }

    async fn run_oneshot(
        &self,
        id: &str,
        request: &Request,
        image: Option<&host::ImageRoot>,
        limits: host::Oneshot,
        stdio: oneshot::OneshotStdio,
    ) -> Result<ExitReport, StartError> {
        oneshot::run(self, id, request, image, limits, stdio).await
    }

    fn run_dir(&self) -> &Path {
        &self.settings.run_dir
    }
}

impl SessionHandle for SessionSandbox {
    fn is_gone(&self) -> bool {
        SessionSandbox::is_gone(self)
    }

    fn stats(&self) -> Option<CgroupStats> {
        SessionSandbox::stats(self)
    }

    async fn stop(&self) -> Option<CgroupStats> {
        SessionSandbox::stop(self).await
    }

    async fn signal(&self, id: u64, signal: i32) {
        SessionSandbox::signal(self, id, signal).await
    }
}

/// Registers an owned fd with tokio's reactor. `AsyncFd::new` is
/// deprecated because a `T` whose `as_raw_fd` changes or closes under the
/// registration is unsound; the types we pass own their fd for their whole
/// life and never swap it (`OwnedFd`, `Channel`), which is the contract its
/// replacement `register` states, so the deprecated entry point is sound.
#[allow(deprecated)]
pub fn register<T: AsRawFd>(inner: T) -> io::Result<AsyncFd<T>> {
    AsyncFd::new(inner)
}

/// A [`Channel`] driven by tokio (the fd is non-blocking).
pub struct AsyncChannel {
    inner: AsyncFd<Channel>,
}

fn io_err(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

impl AsyncChannel {
    pub fn new(fd: OwnedFd) -> io::Result<AsyncChannel> {
        nix::fcntl::fcntl(
            &fd,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .map_err(io_err)?;
        Ok(AsyncChannel {
            inner: register(Channel::from_fd(fd))?,
        })
    }

    /// One message and its fds; `None` when the peer closed.
    pub async fn recv<T: DeserializeOwned>(&self) -> io::Result<Option<(T, Vec<OwnedFd>)>> {
        loop {
            let mut guard = self.inner.readable().await?;
            match guard.try_io(|c| c.get_ref().recv_json::<T>().map_err(io_err)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    pub async fn send<T: Serialize>(&self, msg: &T, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        loop {
            let mut guard = self.inner.writable().await?;
            match guard.try_io(|c| c.get_ref().send_json(msg, fds).map_err(io_err)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    pub fn raw_fd(&self) -> i32 {
        self.inner.get_ref().as_raw_fd()
    }
}
