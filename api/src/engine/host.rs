//! The `sandbox-host` helper: one single-threaded process per session,
//! re-executed from the daemon's binary (`runtimed sandbox-host`), because
//! namespaces must never be set up from a thread of the multi-threaded
//! daemon (docs/process-model.md).
//!
//! The daemon passes a SOCK_SEQPACKET control socket as fd 3 and sends one
//! [`HostRequest`]. The daemon-wide [`HostSettings`] come once per process
//! that serves requests, not with each request: the zygote gets them when
//! it is forked (its helpers inherit them), an exec'd helper as the first
//! message on its control socket. The helper creates the session sandbox, answers
//! [`HostReply::Ready`] with two fds (the channel to the sandbox's PID 1,
//! which the daemon then speaks the session protocol on, and PID 1's
//! pidfd), and waits. When the control socket closes (the daemon deleted
//! the session, or the daemon died, even by SIGKILL) or PID 1 ends, the
//! helper kills everything in the sandbox, removes its cgroup, sends
//! [`HostReply::Ended`] if anyone still listens, and exits. So no sandbox
//! outlives its daemon, and no cgroup is left behind on any of these paths.

use std::os::fd::AsFd;
use std::path::PathBuf;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use oci_spec::runtime::Spec;
use sandbox::cgroup::CgroupStats;
use sandbox::process::channel::Channel;
use sandbox::report::Step;
use sandbox::{RunOptions, Sandbox, SingleThreaded, StepFailure, UidPoolConfig};
use serde::{Deserialize, Serialize};

/// The fd number of the control socket in the helper.
pub const CONTROL_FD: i32 = 3;

/// What every sandbox of one daemon shares, from its configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSettings {
    /// Landlock rules in every sandbox (where the kernel has Landlock).
    pub landlock: bool,
    /// The host uid/gid ranges sandboxes lease.
    pub uid_pool: UidPoolConfig,
    /// Lock files, the uid pool's slots, mount staging.
    pub run_dir: PathBuf,
}

/// What the daemon asks of a helper.
#[derive(Debug, Serialize, Deserialize)]
pub struct HostRequest {
    pub id: String,
    /// The sandbox's typed request: its spec, time and output limits,
    /// seccomp profile (`sandbox::request`), as the front end built it.
    pub request: sandbox::Request,
    /// An image root: the helper leases the layers (shared flocks that
    /// `image gc` respects) for the sandbox's life.
    pub image: Option<ImageRoot>,
    /// Run the spec's process once instead of holding a session: the
    /// request carries its stdin, stdout and stderr fds, and the helper
    /// answers [`HostReply::Finished`] with the exit report.
    #[serde(default)]
    pub oneshot: Option<Oneshot>,
}

impl HostRequest {
    pub fn new(
        id: &str,
        request: &sandbox::Request,
        image: Option<&ImageRoot>,
        oneshot: Option<Oneshot>,
    ) -> HostRequest {
        HostRequest {
            id: id.to_string(),
            request: request.clone(),
            image: image.cloned(),
            oneshot,
        }
    }
}

/// How a one-shot run gets its fds and files (its limits are the
/// request's, `sandbox::request::RunLimits`, durations as they are).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Oneshot {
    /// Run in an empty network namespace made ahead instead of a new one
    /// (`sandbox::netns`): a fourth fd, or, without one, the helper makes
    /// it. When the run left it pristine, [`HostReply::Finished`] hands it
    /// back for the next run.
    #[serde(default)]
    pub reuse_network: bool,
    /// Files the sandbox's PID 1 writes before the program starts
    /// (`sandbox::seed`); their bytes come in the fd after stderr.
    #[serde(default)]
    pub files: Option<sandbox::seed::Manifest>,
}

/// A session's image root, as the helper gets it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImageRoot {
    /// The data dir holding the store and the unpacked layers.
    pub data_dir: String,
    /// Unpacked layer directories, bottom first.
    pub layers: Vec<String>,
    /// Size cap of the session's writable layer (a tmpfs).
    pub upper_bytes: u64,
}

/// What a helper reports.
#[derive(Debug, Serialize, Deserialize)]
pub enum HostReply {
    /// The session runs; fds: PID 1's channel, PID 1's pidfd.
    Ready {
        init_pid: i32,
        host_uid: u32,
        cgroup_paths: Vec<String>,
    },
    /// The sandbox could not be created (`invalid_spec`: the request was at
    /// fault; otherwise the host or runtimed was).
    Failed {
        error: StepFailure,
        invalid_spec: bool,
    },
    /// A one-shot run ended and was torn down; with `reuse_network`, the
    /// fd of its network namespace comes along when it may be reused.
    Finished { report: Box<sandbox::ExitReport> },
    /// The session is over and cleaned up (`teardown_error` when the cgroup
    /// could not be removed).
    Ended {
        stats: CgroupStats,
        teardown_error: Option<String>,
    },
}

/// Messages from the daemon after `Ready`.
#[derive(Debug, Serialize, Deserialize)]
pub enum HostCommand {
    /// End the session now (the same as closing the socket, but the reply
    /// `Ended` tells when everything is gone).
    Stop,
}

/// Entry point of `runtimed sandbox-host`; returns the exit status. The
/// first message on the control socket is the daemon's [`HostSettings`],
/// then comes the request, as for a helper forked by the zygote.
pub fn main(single: &SingleThreaded) -> i32 {
    // The same name as a helper forked by the zygote.
    let _ = nix::sys::prctl::set_name(c"sandbox-host");
    let control = match sandbox::helper::take_inherited_fd(single, CONTROL_FD) {
        Ok(fd) => Channel::from_fd(fd),
        Err(e) => {
            eprintln!("runtimed: sandbox-host needs its control socket as fd {CONTROL_FD}: {e}");
            return 2;
        }
    };
    match control.recv_json::<HostSettings>() {
        Ok(Some((settings, _))) => serve(control, &settings, single),
        Ok(None) => 0,
        Err(e) => {
            eprintln!("runtimed: sandbox-host: bad settings: {e}");
            2
        }
    }
}

/// One session's life on `control` (exec'd helper or zygote child).
pub fn serve(control: Channel, settings: &HostSettings, single: &SingleThreaded) -> i32 {
    let (req, fds) = match control.recv_json::<HostRequest>() {
        Ok(Some(r)) => r,
        Ok(None) => return 0,
        Err(e) => {
            eprintln!("runtimed: sandbox-host: bad request: {e}");
            return 2;
        }
    };
    // The lease lives as long as this helper (the kernel drops the locks
    // when it exits, however it exits).
    let mut root_layers = None;
    let mut _lease = None;
    if let Some(img) = &req.image {
        let layers: Vec<std::path::PathBuf> = img.layers.iter().map(Into::into).collect();
        match rootfs_builder::Store::open(std::path::Path::new(&img.data_dir))
            .map_err(|e| e.to_string())
            .and_then(|store| {
                rootfs_builder::layers::lease_layers(&store, &layers).map_err(|e| e.to_string())
            }) {
            Ok(l) => _lease = Some(l),
            Err(message) => return fail(&control, step_failure(Step::Image, message), false),
        }
        root_layers = Some(sandbox::LayeredRoot {
            layers,
            upper: sandbox::Upper::Tmpfs {
                bytes: img.upper_bytes,
            },
            readonly: false,
        });
    }
    if let Some(once) = &req.oneshot {
        return run_once(&control, &req, settings, once, fds, root_layers, single);
    }
    drop(fds);
    let opts = RunOptions {
        session: true,
        ..base_options(&req, settings, root_layers)
    };
    let sb = match create(&control, &req.request.spec, opts, single) {
        Some(sb) => sb,
        None => return 1,
    };
    let ready = HostReply::Ready {
        init_pid: sb.init_pid(),
        host_uid: sb.host_uid_base(),
        cgroup_paths: sb
            .cgroup()
            .map(|c| c.paths().iter().map(|p| p.display().to_string()).collect())
            .unwrap_or_default(),
    };
    if control
        .send_json(&ready, &[sb.channel().as_fd(), sb.pidfd()])
        .is_ok()
    {
        wait_for_end(&control, &sb);
    }
    let (stats, removed) = sb.end_session();
    let _ = control.send_json(
        &HostReply::Ended {
            stats,
            teardown_error: removed.err().map(|e| e.to_string()),
        },
        &[],
    );
    0
}

fn step_failure(step: Step, message: String) -> StepFailure {
    StepFailure {
        step,
        errno: None,
        message,
    }
}

/// Tells the daemon the sandbox could not be created; the exit status.
fn fail(control: &Channel, error: StepFailure, invalid_spec: bool) -> i32 {
    let _ = control.send_json(
        &HostReply::Failed {
            error,
            invalid_spec,
        },
        &[],
    );
    1
}

/// What both modes set from the request (its limits and seccomp profile)
/// and the daemon's settings.
fn base_options(
    req: &HostRequest,
    settings: &HostSettings,
    root_layers: Option<sandbox::LayeredRoot>,
) -> RunOptions {
    RunOptions {
        sandbox_id: Some(req.id.clone()),
        root_layers,
        landlock: settings.landlock,
        uid_pool: settings.uid_pool.clone(),
        run_dir: settings.run_dir.clone(),
        ..req.request.run_options()
    }
}

/// Creates the sandbox, or reports why not (`invalid_spec`: the request
/// was at fault) and returns `None`.
fn create(
    control: &Channel,
    spec: &Spec,
    opts: RunOptions,
    single: &SingleThreaded,
) -> Option<Sandbox> {
    match Sandbox::create(spec, opts, single) {
        Ok(sb) => Some(sb),
        Err(e) => {
            let invalid_spec = matches!(
                e,
                sandbox::SandboxError::Spec(_) | sandbox::SandboxError::Options(_)
            );
            fail(control, e.as_step_failure(), invalid_spec);
            None
        }
    }
}

/// A one-shot run: the program gets the request's three fds as stdin,
/// stdout and stderr (through the supervisor, which counts and caps the
/// output), and the report goes back when it ended and everything is torn
/// down. Should the daemon go away meanwhile, a watcher kills the sandbox
/// (the run does not wait for its wall-time limit).
fn run_once(
    control: &Channel,
    req: &HostRequest,
    settings: &HostSettings,
    once: &Oneshot,
    fds: Vec<std::os::fd::OwnedFd>,
    root_layers: Option<sandbox::LayeredRoot>,
    single: &SingleThreaded,
) -> i32 {
    // stdin, stdout, stderr, then the files' bytes (with `files`), then
    // a network namespace (only with `reuse_network`, and optional).
    let mut fds = fds.into_iter();
    let (stdin, stdout, stderr) = (fds.next(), fds.next(), fds.next());
    let source = once.files.as_ref().and_then(|_| fds.next());
    let netns = fds.next().filter(|_| once.reuse_network);
    let (Some(stdin), Some(stdout), Some(stderr), true, None) = (
        stdin,
        stdout,
        stderr,
        once.files.is_none() || source.is_some(),
        fds.next(),
    ) else {
        return fail(
            control,
            step_failure(
                Step::Validate,
                "a one-shot run needs three fds (stdin, stdout, stderr), then the files' \
                 bytes with files, then a network namespace's only with reuse_network"
                    .into(),
            ),
            true,
        );
    };
    let seed = once
        .files
        .clone()
        .zip(source)
        .map(|(manifest, source)| sandbox::seed::Seed { manifest, source });
    // The namespace to run in, and our copy to check and hand back after.
    let netns = match netns {
        Some(ns) => Some(ns),
        None if once.reuse_network => match sandbox::netns::create() {
            Ok(ns) => Some(ns),
            Err(e) => {
                return fail(
                    control,
                    StepFailure {
                        step: Step::NetworkNamespace,
                        errno: Some(e),
                        message: format!("make a network namespace: {e}"),
                    },
                    false,
                )
            }
        },
        None => None,
    };
    let (netns, netns_back) = match netns.map(|ns| ns.try_clone().map(|copy| (ns, copy))) {
        Some(Ok((ns, copy))) => (Some(ns), Some(copy)),
        Some(Err(e)) => {
            return fail(
                control,
                step_failure(Step::NetworkNamespace, format!("dup its fd: {e}")),
                false,
            )
        }
        None => (None, None),
    };
    let opts = RunOptions {
        stdio: sandbox::Stdio::Forward {
            stdin,
            stdout,
            stderr,
        },
        network_namespace: netns,
        seed,
        ..base_options(req, settings, root_layers)
    };
    let sb = match create(control, &req.request.spec, opts, single) {
        Some(sb) => sb,
        None => return 1,
    };
    // Threads are safe from here on: the sandbox exists.
    if let (Ok(pidfd), Ok(watch)) = (
        sb.pidfd().try_clone_to_owned(),
        control.as_fd().try_clone_to_owned(),
    ) {
        std::thread::spawn(move || kill_when_closed(watch, pidfd));
    }
    let (report, _) = sb.supervise(None);
    // Everything of the run is gone (supervise tore it down): what is left
    // in the namespace would be seen by the next run.
    let reusable = netns_back.filter(|ns| sandbox::netns::is_pristine(ns.as_fd()).unwrap_or(false));
    let _ = control.send_json(
        &HostReply::Finished {
            report: Box::new(report),
        },
        &reusable
            .as_ref()
            .map(|ns| ns.as_fd())
            .into_iter()
            .collect::<Vec<_>>(),
    );
    0
}

/// Kills the sandbox (SIGKILL to its PID 1 ends its pid namespace) once
/// the daemon's end of the control socket closes.
fn kill_when_closed(control: std::os::fd::OwnedFd, pidfd: std::os::fd::OwnedFd) {
    loop {
        let mut fds = [PollFd::new(control.as_fd(), PollFlags::empty())];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Ok(_)
                if fds[0]
                    .revents()
                    .is_some_and(|r| r.contains(PollFlags::POLLHUP)) =>
            {
                let _ = sandbox::process::signals::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
                return;
            }
            Ok(_) => continue,
            Err(_) => return,
        }
    }
}

/// Blocks until the daemon says stop or goes away, or PID 1 ends.
fn wait_for_end(control: &Channel, sb: &Sandbox) {
    loop {
        let mut fds = [
            PollFd::new(control.as_fd(), PollFlags::POLLIN),
            PollFd::new(sb.pidfd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        }
        if fds[1].revents().is_some_and(|r| !r.is_empty()) {
            return;
        }
        if fds[0].revents().is_some_and(|r| !r.is_empty()) {
            match control.recv_json::<HostCommand>() {
                Ok(Some((HostCommand::Stop, _))) | Ok(None) => return,
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                Err(_) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sandbox::SeccompProfile;

    use super::*;

    /// The daemon's settings are not in a request (they reach a helper
    /// once); the sandbox's typed request is, with its profile as the enum
    /// (a name the helper does not know is refused when the request is
    /// read) and its limits as durations (no rounding through
    /// milliseconds: 0.4 ms once became 1 ms, 2.0004 s became 2 s).
    #[test]
    fn a_request_carries_the_typed_request_and_no_settings() {
        let request = sandbox::Request::builder(vec!["/bin/true".into()])
            .seccomp(SeccompProfile::Judge)
            .wall_time(Duration::from_micros(2_000_400))
            .cpu_time(Duration::from_micros(400))
            .output_limit(7)
            .build()
            .unwrap();
        let once = Oneshot {
            reuse_network: true,
            files: None,
        };
        let req = HostRequest::new("s-1", &request, None, Some(once));
        let wire = serde_json::to_value(&req).unwrap();
        let mut keys: Vec<&str> = wire
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["id", "image", "oneshot", "request"]);
        let back: HostRequest = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(back.request, request);
        assert_eq!(
            back.request.limits.cpu_time,
            Some(Duration::from_micros(400))
        );
        let opts = back.request.run_options();
        assert_eq!(opts.seccomp, SeccompProfile::Judge);
        assert_eq!(opts.wall_time, Some(Duration::from_micros(2_000_400)));
        let mut unknown = wire;
        unknown["request"]["seccomp"] = serde_json::json!("none");
        assert!(serde_json::from_value::<HostRequest>(unknown).is_err());
    }

    #[test]
    fn settings_keep_every_field_across_the_wire() {
        let settings = HostSettings {
            landlock: false,
            uid_pool: UidPoolConfig {
                base: 3_100_000_000,
                slot_size: 4096,
                slots: 3,
            },
            run_dir: "/run/runtimed-test".into(),
        };
        let wire = serde_json::to_string(&settings).unwrap();
        assert_eq!(
            serde_json::from_str::<HostSettings>(&wire).unwrap(),
            settings
        );
    }
}
