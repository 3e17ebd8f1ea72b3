//! One-shot runs through a helper: the spec's process runs once with the
//! caller's stdin/stdout/stderr fds under wall, CPU-time and output limits,
//! and the sandbox's exit report comes back (the judge's test runs, and
//! `POST /v1/run`, whose files PID 1 writes before the program). Unlike
//! a session there is no PID 1 protocol: the helper supervises the run
//! itself and tears everything down before it answers.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use sandbox::ExitReport;

use super::host::{HostReply, HostRequest, ImageRoot, Oneshot};
use super::session::start_helper;
use super::{EngineConfig, StartError};

/// How long past its own wall-time limit a run may take before we stop
/// waiting (setup, teardown, a helper that hangs).
const GRACE: Duration = Duration::from_secs(30);

/// Network namespaces kept between one-shot runs (at most this many).
const NETNS_POOL_MAX: usize = 64;

/// Empty network namespaces for one-shot runs (`sandbox::netns`): a run
/// takes one (or its helper makes one when none is free) and, when its
/// helper found it pristine after the run, gives it back. A namespace is
/// held by one run at a time. Creating and freeing one per run cost ~10 %
/// of the machine at a judge's rate (docs/judges.md).
#[derive(Debug, Default)]
pub struct NetnsPool {
    free: std::sync::Mutex<Vec<OwnedFd>>,
}

impl NetnsPool {
    fn take(&self) -> Option<OwnedFd> {
        self.free.lock().ok()?.pop()
    }

    fn give_back(&self, ns: OwnedFd) {
        if let Ok(mut free) = self.free.lock() {
            if free.len() < NETNS_POOL_MAX {
                free.push(ns);
            }
        }
    }

    /// Namespaces waiting for a run.
    pub fn free(&self) -> usize {
        self.free.lock().map_or(0, |f| f.len())
    }
}

/// The fds the program gets, and the bytes of the files its sandbox's
/// PID 1 writes first (with [`Oneshot::files`]).
pub struct OneshotStdio {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    pub files: Option<OwnedFd>,
}

/// Runs `request` once. A sandbox that could not be set up comes back as
/// `Err(StartError::Invalid | Setup)`, a program that could not be
/// executed as a report with `termination: setup_failed`, like the CLI.
/// Dropping the future closes the control socket: the helper then kills
/// the sandbox and cleans up.
pub async fn run(
    cfg: &EngineConfig,
    id: &str,
    request: &sandbox::Request,
    image: Option<&ImageRoot>,
    mut limits: Oneshot,
    stdio: OneshotStdio,
) -> Result<ExitReport, StartError> {
    let pool = cfg.netns_pool.as_deref();
    limits.reuse_network = pool.is_some();
    let netns = pool.and_then(NetnsPool::take);
    let (control, mut child) = start_helper(cfg)?;
    let wait_at_most = request
        .limits
        .wall_time
        .unwrap_or(Duration::from_secs(3600))
        + GRACE;
    let req = HostRequest::new(id, request, image, Some(limits));
    let exchange = async {
        let mut fds = vec![
            stdio.stdin.as_fd(),
            stdio.stdout.as_fd(),
            stdio.stderr.as_fd(),
        ];
        fds.extend(stdio.files.as_ref().map(|f| f.as_fd()));
        fds.extend(netns.as_ref().map(|ns| ns.as_fd()));
        control.send(&req, &fds).await?;
        // Ours are not needed any more (the helper holds its copies; the
        // namespace comes back with the reply if it may be reused).
        drop(fds);
        drop(stdio);
        drop(netns);
        control.recv::<HostReply>().await
    };
    let reply = tokio::time::timeout(wait_at_most, exchange).await;
    drop(control);
    if let Some(c) = child.as_mut() {
        let _ = c.wait().await;
    }
    match reply {
        Err(_) => Err(StartError::Helper(format!(
            "the run did not end within {wait_at_most:?}"
        ))),
        Ok(Err(e)) => Err(StartError::Helper(format!("control: {e}"))),
        Ok(Ok(Some((HostReply::Finished { report }, mut fds)))) => {
            if let (Some(pool), Some(ns), true) = (pool, fds.pop(), fds.is_empty()) {
                pool.give_back(ns);
            }
            Ok(*report)
        }
        Ok(Ok(Some((
            HostReply::Failed {
                error,
                invalid_spec,
            },
            _,
        )))) => Err(if invalid_spec {
            StartError::Invalid(error)
        } else {
            StartError::Setup(error)
        }),
        Ok(Ok(Some((other, _)))) => Err(StartError::Helper(format!(
            "unexpected reply to a one-shot run: {other:?}"
        ))),
        Ok(Ok(None)) => Err(StartError::Helper(
            "the helper exited without a reply".into(),
        )),
    }
}
