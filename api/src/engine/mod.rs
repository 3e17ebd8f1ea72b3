//! The engine: sandboxes of sessions as the daemon sees them. Each session
//! is a `sandbox-host` helper process ([`host`]) that holds the sandbox;
//! the daemon speaks to the sandbox's PID 1 directly over the channel the
//! helper hands back ([`session`]): spawn a process with these fds, signal
//! it, tell me when it ended. Nothing here sets up namespaces: that only
//! happens in single-threaded helpers.

pub mod build;
pub mod host;
pub mod oneshot;
pub mod process;
pub mod pty;
pub mod session;
pub mod zygote;

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use nix::errno::Errno;
use sandbox::process::channel::Channel;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::unix::AsyncFd;

pub use session::{SessionSandbox, StartError};

/// How the engine starts helpers.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The runtimed binary (re-executed as `runtimed sandbox-host`).
    pub exe: PathBuf,
    /// Lock files, the uid pool's slots, mount staging.
    pub run_dir: PathBuf,
    /// base, slot size, slots.
    pub uid_pool: (u32, u32, u32),
    pub landlock: bool,
    /// Forks helpers when present (`runtimed serve`); otherwise each helper
    /// is the binary re-executed.
    pub zygote: Option<std::sync::Arc<zygote::Zygote>>,
    /// Empty network namespaces that one-shot runs reuse, when present
    /// (`runtimed serve`); otherwise each run gets a new one.
    pub netns_pool: Option<std::sync::Arc<oneshot::NetnsPool>>,
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
