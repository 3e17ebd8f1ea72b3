//! Image builds started by the daemon, as helper jobs. A build creates a
//! sandbox per `run` step, and sandboxes are only created by a
//! single-threaded process (docs/process-model.md), so the daemon re-executes
//! its binary as `runtimed image-builder`, hands it a SOCK_SEQPACKET control
//! socket as fd 3 and sends one typed [`BuildJob`]. The helper runs the build
//! in-process through `rootfs_builder::recipe` and answers with typed
//! [`BuildMessage`]s: every progress event as it happens, then exactly one
//! `Finished` or `Failed`. Nothing is encoded as command-line flags and no
//! stderr is parsed.
//!
//! The daemon's end ([`BuildHelper`]) owns the helper. Dropping it (the
//! client went away, the request was cancelled) stops the build so that it
//! cleans up after itself: the helper's children (the running step's
//! sandbox PID 1, whose death takes its whole pid namespace with it) are
//! killed until the helper, its step failed, has removed the step's cgroup
//! and scratch directory and exited. A helper that does not exit within
//! [`STOP_GRACE`] is killed. The helper also dies with the daemon
//! (`PR_SET_PDEATHSIG`).

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::Duration;

use rootfs_builder::recipe::{self, BuildEvent, BuildOptions, Recipe};
use rootfs_builder::{Digest, ImageName, Store};
use sandbox::process::channel::Channel;
use serde::{Deserialize, Serialize};

use super::host::CONTROL_FD;
use super::{AsyncChannel, EngineConfig};

/// What the daemon asks the build helper to do.
#[derive(Debug, Serialize, Deserialize)]
pub struct BuildJob {
    /// The data dir holding the image store.
    pub data_dir: PathBuf,
    /// The daemon's run dir (uid pool slots, locks), shared with its
    /// sessions so a build step never takes a session's uid range.
    pub run_dir: PathBuf,
    pub recipe: JobRecipe,
    /// Name of the result instead of the recipe's (already validated).
    pub tag: Option<ImageName>,
    pub no_cache: bool,
}

/// Which recipe a job builds.
#[derive(Debug, Serialize, Deserialize)]
pub enum JobRecipe {
    /// A builtin recipe by name (`python`, `gcc`, ...).
    Builtin(String),
    /// A recipe given as TOML. There is no context directory, so a `copy`
    /// step fails the build.
    Toml(String),
}

/// What the build helper reports, in order: progress, then one end.
#[derive(Debug, Serialize, Deserialize)]
pub enum BuildMessage {
    /// A step started, printed a line, or finished; or the image was named.
    Progress(BuildEvent),
    /// The build made `image` (its `done` event was sent as progress).
    Finished {
        image: ImageName,
        manifest: Digest,
        steps_built: usize,
        steps_cached: usize,
    },
    /// The build failed; `message` says where (it may name host paths: the
    /// daemon scrubs it before a client sees it).
    Failed { message: String },
}

/// Why a build helper could not be started.
#[derive(Debug, thiserror::Error)]
pub enum BuildStartError {
    #[error("control socket: {0}")]
    Socket(#[source] nix::errno::Errno),
    #[error("dup the control socket: {0}")]
    Dup(#[source] std::io::Error),
    #[error("start the build helper: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("send the build job: {0}")]
    Send(#[source] std::io::Error),
}

/// How long a stopped build may take to clean up before its helper is
/// killed (generous: removing a large scratch tree on a loaded host).
pub const STOP_GRACE: Duration = Duration::from_secs(60);

/// The daemon's end of a running build helper. Dropped, it stops the
/// build (see the module comment).
pub struct BuildHelper {
    control: AsyncChannel,
    child: Option<tokio::process::Child>,
}

impl Drop for BuildHelper {
    fn drop(&mut self) {
        let Some(child) = self.child.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(stop(child));
            }
            // No runtime left (the daemon is exiting): the helper dies with
            // it (PR_SET_PDEATHSIG); kill_on_drop kills it now.
            Err(_) => drop(child),
        }
    }
}

/// Ends a build helper's work and reaps it: its children are killed (the
/// step fails, the build cleans up and exits) until it exits or
/// `STOP_GRACE` passes.
async fn stop(mut child: tokio::process::Child) {
    let deadline = tokio::time::Instant::now() + STOP_GRACE;
    let Some(pid) = child.id() else {
        return; // already reaped
    };
    loop {
        if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(pid, "build helper did not stop in time; killed");
            let _ = child.kill().await;
            return;
        }
        for c in children(pid) {
            kill_child(pid, c);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The children of `pid`, from `/proc/<pid>/task/*/children` (a sandbox's
/// PID 1 is a child of the thread that cloned it).
fn children(pid: u32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|c| c.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

/// SIGKILLs `child` if it is still a child of `parent`. The pidfd is taken
/// first and the parent checked after: if the pid was reaped and reused in
/// between, the pidfd names the dead process and the signal goes nowhere.
fn kill_child(parent: u32, child: i32) {
    let Ok(pidfd) = sandbox::process::signals::pidfd_open(child) else {
        return;
    };
    let ppid = std::fs::read_to_string(format!("/proc/{child}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse::<u32>()
                .ok()
        });
    if ppid == Some(parent) {
        let _ = sandbox::process::signals::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
    }
}

impl BuildHelper {
    /// Starts a helper for `job`.
    pub async fn start(cfg: &EngineConfig, job: &BuildJob) -> Result<BuildHelper, BuildStartError> {
        let (ours, theirs) = Channel::pair().map_err(BuildStartError::Socket)?;
        let mut cmd = std::process::Command::new(&cfg.exe);
        cmd.arg("image-builder")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit());
        // Its own process group: a Ctrl-C meant for the daemon goes to the
        // daemon, which ends the build by dropping its end.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        // A copy the command owns until it is dropped (after the spawn).
        let fd = theirs
            .as_fd()
            .try_clone_to_owned()
            .map_err(BuildStartError::Dup)?;
        sandbox::helper::pass_fd_to_command(&mut cmd, fd, CONTROL_FD);
        let child = tokio::process::Command::from(cmd)
            .kill_on_drop(true)
            .spawn()
            .map_err(BuildStartError::Spawn)?;
        drop(theirs);
        let control = AsyncChannel::new(ours.into_fd()).map_err(BuildStartError::Spawn)?;
        control
            .send(job, &[])
            .await
            .map_err(BuildStartError::Send)?;
        Ok(BuildHelper {
            control,
            child: Some(child),
        })
    }

    /// The next message; `None` once the helper is gone (after its final
    /// message, or when it died without one).
    pub async fn next(&mut self) -> Option<BuildMessage> {
        match self.control.recv::<BuildMessage>().await {
            Ok(Some((msg, _fds))) => Some(msg),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "build helper: unreadable message");
                None
            }
        }
    }
}

/// Entry point of `runtimed image-builder`; returns the exit status. Runs
/// single-threaded from `main`, before any runtime exists: the build's
/// sandboxes are forked from here.
pub fn main(single: &sandbox::SingleThreaded) -> i32 {
    let _ = nix::sys::prctl::set_pdeathsig(Some(nix::sys::signal::Signal::SIGKILL));
    let _ = nix::sys::prctl::set_name(c"image-builder");
    let control = match sandbox::helper::take_inherited_fd(single, CONTROL_FD) {
        Ok(fd) => Channel::from_fd(fd),
        Err(e) => {
            eprintln!("runtimed: image-builder needs its control socket as fd {CONTROL_FD}: {e}");
            return 2;
        }
    };
    let job = match control.recv_json::<BuildJob>() {
        Ok(Some((job, _fds))) => job,
        Ok(None) => return 0,
        Err(e) => {
            eprintln!("runtimed: image-builder: bad job: {e}");
            return 2;
        }
    };
    let end = match run(&control, job, single) {
        Ok(done) => done,
        Err(message) => BuildMessage::Failed { message },
    };
    let failed = matches!(end, BuildMessage::Failed { .. });
    if let Err(e) = control.send_json(&end, &[]) {
        eprintln!("runtimed: image-builder: report the result: {e}");
        return 1;
    }
    i32::from(failed)
}

/// Runs `job`, sending its progress on `control`.
fn run(
    control: &Channel,
    job: BuildJob,
    single: &sandbox::SingleThreaded,
) -> Result<BuildMessage, String> {
    let store = Store::open(&job.data_dir).map_err(|e| format!("image store: {e}"))?;
    let mut recipe = match &job.recipe {
        JobRecipe::Builtin(name) => {
            recipe::builtin(name).ok_or_else(|| format!("no builtin recipe {name:?}"))?
        }
        JobRecipe::Toml(text) => Recipe::parse(text).map_err(|e| format!("recipe_toml: {e}"))?,
    };
    if let Some(tag) = &job.tag {
        recipe.name = tag.to_string();
    }
    let progress = |ev: &BuildEvent| {
        // The daemon gone is not the build's failure: it kills us anyway.
        // A message too large for the channel (log lines are capped far
        // below it) is dropped rather than ending the build.
        if let Err(e) = control.send_json(&BuildMessage::Progress(ev.clone()), &[]) {
            tracing::debug!(error = %e, "image-builder: progress not sent");
        }
    };
    let opts = BuildOptions {
        context: None,
        no_cache: job.no_cache,
        progress: Some(Box::new(progress)),
        run_dir: Some(job.run_dir.clone()),
    };
    let outcome = recipe::build(&store, &recipe, opts, single)
        .map_err(|e| format!("build {}: {e}", recipe.name))?;
    Ok(BuildMessage::Finished {
        image: outcome.image.name.clone(),
        manifest: outcome.image.manifest_digest.clone(),
        steps_built: outcome.steps_built,
        steps_cached: outcome.steps_cached,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_crosses_the_channel_typed_and_a_bad_name_does_not() {
        let (ours, theirs) = Channel::pair().unwrap();
        let job = BuildJob {
            data_dir: "/data".into(),
            run_dir: "/run/runtimed".into(),
            recipe: JobRecipe::Toml("name = \"x:1\"\n".into()),
            tag: Some("team/app:v1".parse().unwrap()),
            no_cache: true,
        };
        ours.send_json(&job, &[]).unwrap();
        let (got, fds) = theirs.recv_json::<BuildJob>().unwrap().unwrap();
        assert!(fds.is_empty());
        assert_eq!(got.tag.unwrap().to_string(), "team/app:v1");
        assert!(got.no_cache);
        assert!(matches!(got.recipe, JobRecipe::Toml(t) if t == "name = \"x:1\"\n"));
        // A name is checked again when read: the wire carries no unchecked
        // text into the store.
        let mut v = serde_json::to_value(&job).unwrap();
        v["tag"] = serde_json::json!("Bad Name");
        assert!(serde_json::from_value::<BuildJob>(v).is_err());
        // A progress event keeps its type across.
        let ev = BuildMessage::Progress(BuildEvent::StepStart {
            index: 1,
            total: 2,
            description: "run".into(),
        });
        ours.send_json(&ev, &[]).unwrap();
        let (got, _) = theirs.recv_json::<BuildMessage>().unwrap().unwrap();
        assert!(matches!(
            got,
            BuildMessage::Progress(BuildEvent::StepStart {
                index: 1,
                total: 2,
                ..
            })
        ));
    }
}
