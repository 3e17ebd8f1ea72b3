//! The zygote: a single-threaded process forked by `runtimed serve` before
//! its tokio runtime exists, which forks one `sandbox-host` helper per
//! session on request. Starting a helper this way costs a fork of a small
//! single-threaded process, instead of a fork of the multi-threaded daemon
//! (page tables, copy-on-write faults) plus an exec and self-relocation of
//! the static binary: ~0.85 ms of wall time and ~1 ms of CPU per session
//! measured by bench/api.sh. Work every sandbox repeats (cgroup discovery,
//! the host layout, the compiled seccomp programs) is done once in the
//! zygote and inherited.
//!
//! The daemon-wide [`HostSettings`] are given once, when the zygote is
//! forked; every helper it forks inherits them.
//!
//! Protocol: the daemon sends `Spawn` with one fd, the helper's end of its
//! control socket; nothing comes back (the helper answers on that socket).
//! The zygote exits when the daemon's end closes (and gets SIGKILL if the
//! daemon dies first).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::sys::signal::{SigHandler, Signal};
use sandbox::helper::{self, Forked};
use sandbox::process::channel::Channel;
use sandbox::process::signals;
use sandbox::SingleThreaded;
use serde::{Deserialize, Serialize};

use super::host::HostSettings;

#[derive(Debug, Serialize, Deserialize)]
pub enum ZygoteRequest {
    /// Fork a helper; the message carries its control socket.
    Spawn,
}

/// The daemon's end.
#[derive(Debug)]
pub struct Zygote {
    chan: Channel,
    pub pid: i32,
    /// What its helpers were given.
    settings: HostSettings,
}

impl Zygote {
    /// Forks the zygote. Call while the process is single-threaded (before
    /// any runtime or thread exists) and after cgroup discovery (on v2 the
    /// daemon has moved into its supervisor leaf, where the zygote and the
    /// helpers are then born).
    pub fn start(
        settings: HostSettings,
        single: &SingleThreaded,
    ) -> Result<Zygote, nix::errno::Errno> {
        let (ours, theirs) = Channel::pair()?;
        // Warm what every sandbox start needs; the helpers inherit it.
        let _ = sandbox::cgroup::manager();
        let _ = sandbox::spec::plan::HostLayout::get();
        let _ = sandbox::process::supervise::cpu_count();
        let _ = sandbox::seccomp::compile(sandbox::SeccompProfile::Default);
        let _ = sandbox::seccomp::compile(sandbox::SeccompProfile::Judge);
        match helper::fork(single)? {
            Forked::Child(single) => {
                drop(ours);
                serve(theirs, &settings, &single)
            }
            Forked::Parent(pid) => {
                drop(theirs);
                Ok(Zygote {
                    chan: ours,
                    pid,
                    settings,
                })
            }
        }
    }

    /// The settings its helpers have.
    pub fn settings(&self) -> &HostSettings {
        &self.settings
    }

    /// Asks for a helper holding `control` (the helper's end).
    pub fn spawn_helper(&self, control: BorrowedFd<'_>) -> Result<(), nix::errno::Errno> {
        self.chan.send_json(&ZygoteRequest::Spawn, &[control])
    }
}

fn serve(chan: Channel, settings: &HostSettings, single: &SingleThreaded) -> ! {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use nix::sys::signal::{SigSet, SigmaskHow};
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    let _ = nix::sys::prctl::set_pdeathsig(Some(Signal::SIGKILL));
    let _ = nix::sys::prctl::set_name(c"rtd-zygote");
    let _ = signal_ignore_terminal();
    // Helpers are reaped here (waitpid, not SIGCHLD ignored: their CPU time
    // then adds up in our cutime, where accounting can see it).
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    let _ = signals::set_sigmask(SigmaskHow::SIG_BLOCK, &chld);
    let Ok(sfd) = SignalFd::with_flags(&chld, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
    else {
        helper::exit_now(1)
    };
    loop {
        let mut fds = [
            PollFd::new(chan.as_fd(), PollFlags::POLLIN),
            PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => helper::exit_now(1),
        }
        if fds[1].revents().is_some_and(|r| !r.is_empty()) {
            while let Ok(Some(_)) = sfd.read_signal() {}
            while let Ok(Some(_)) = signals::reap_any() {}
        }
        if fds[0].revents().is_none_or(|r| r.is_empty()) {
            continue;
        }
        match chan.recv_json::<ZygoteRequest>() {
            Ok(Some((ZygoteRequest::Spawn, mut fds))) if fds.len() == 1 => {
                let Some(control) = fds.pop() else { continue };
                match helper::fork(single) {
                    Ok(Forked::Child(single)) => {
                        drop(chan);
                        drop(sfd);
                        helper::exit_now(host_helper(control, settings, &single))
                    }
                    Ok(Forked::Parent(_)) | Err(_) => drop(control),
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => helper::exit_now(0),
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
            Err(_) => helper::exit_now(1),
        }
    }
}

/// A Ctrl-C for the daemon's terminal reaches its whole process group:
/// the zygote ignores it and ends with the daemon.
fn signal_ignore_terminal() -> Result<(), nix::errno::Errno> {
    let ign = nix::sys::signal::SigAction::new(
        SigHandler::SigIgn,
        nix::sys::signal::SaFlags::empty(),
        nix::sys::signal::SigSet::empty(),
    );
    signals::set_default_signal(Signal::SIGINT, &ign)?;
    signals::set_default_signal(Signal::SIGTERM, &ign)
}

/// In the forked helper: signal defaults and an empty mask back, its own
/// process group, a name.
fn host_helper(control: OwnedFd, settings: &HostSettings, single: &SingleThreaded) -> i32 {
    let dfl = nix::sys::signal::SigAction::new(
        SigHandler::SigDfl,
        nix::sys::signal::SaFlags::empty(),
        nix::sys::signal::SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        let _ = signals::set_default_signal(sig, &dfl);
    }
    let _ = signals::set_sigmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        &nix::sys::signal::SigSet::empty(),
    );
    let _ = nix::unistd::setpgid(nix::unistd::Pid::from_raw(0), nix::unistd::Pid::from_raw(0));
    let _ = nix::sys::prctl::set_name(c"sandbox-host");
    super::host::serve(Channel::from_fd(control), settings, single)
}
