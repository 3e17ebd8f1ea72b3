//! The supervisor: waits for the program's end while enforcing the limits a
//! cgroup cannot (wall time, CPU time of the whole tree, output bytes per
//! stream), moving bytes between the sandbox and the caller, forwarding
//! signals, and finally building the exit report and tearing down.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use super::channel::ChildMessage;
use super::spawn::{Sandbox, Sink};
use crate::report::{classify, Ending, ExitReport, LimitKill, Step, StepFailure, Termination};
use crate::sys;

/// Output captured in capture mode.
#[derive(Debug, Default, Clone)]
pub struct Captured {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> Result<(), Errno> {
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => {
                let mut p = [PollFd::new(fd, PollFlags::POLLOUT)];
                let _ = poll(&mut p, PollTimeout::from(100u16));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// CPUs this process may run on, looked up once per process (the lookup
/// reads cgroup files: ~0.1 ms, which once cost every limit check). A
/// process that forks sandboxes (the zygote) calls it first so that its
/// children inherit the answer.
pub fn cpu_count() -> u64 {
    static N: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() as u64)
            .unwrap_or(1)
    })
}

impl Sandbox {
    /// Runs until the program ends (or a limit kills it), then tears down and
    /// returns the report and, in capture mode, the output. `signals`
    /// (optional) delivers SIGINT/SIGTERM/SIGHUP/SIGQUIT, forwarded to the
    /// program, and SIGWINCH, which resizes the pty from the caller's
    /// terminal.
    pub fn supervise(mut self, mut signals: Option<&mut SignalFd>) -> (ExitReport, Captured) {
        let mut counts = [0u64; 2];
        let mut killed: Option<LimitKill> = None;
        let mut program_status: Option<(Option<i32>, Option<i32>)> = None;
        let mut failure: Option<StepFailure> = self.exec_failure.take();
        let mut init_exited = false;
        let mut channel_open = true;
        let mut stdin_off = 0usize;
        let cpu_limit_ns = self.cpu_time.map(|d| d.as_nanos() as u64);
        let wall_deadline = self.wall_time.map(|d| self.started + d);
        let mut end_time: Option<Instant> = None;
        let mut buf = vec![0u8; 64 * 1024];
        if self.stdin_data.is_empty() {
            self.stdin_pipe = None;
        }

        loop {
            // Sources still open. The master is a source of output in
            // terminal mode; EOF/EIO on it means every slave is closed.
            let pty_out = self.pty_master.is_some();
            let outputs_open = self.out_pipes.iter().any(Option::is_some) || pty_out;
            if init_exited && !outputs_open && !channel_open {
                break;
            }
            if init_exited && end_time.is_none() {
                end_time = Some(Instant::now());
            }
            // Timeout: the next limit check.
            let now = Instant::now();
            let mut timeout = Duration::from_secs(3600);
            if init_exited {
                // Everything in the namespace is dead; drain what is buffered.
                timeout = Duration::from_millis(50);
            }
            if killed.is_none() && !init_exited {
                if let Some(d) = wall_deadline {
                    if now >= d {
                        killed = Some(LimitKill::Wall);
                        self.kill();
                    } else {
                        timeout = timeout.min(d - now);
                    }
                }
                if let (Some(limit), Some(cg)) = (cpu_limit_ns, self.cgroup.as_ref()) {
                    let used = cg.cpu_usage_ns().unwrap_or(0);
                    if used >= limit {
                        killed = Some(LimitKill::Cpu);
                        self.kill();
                    } else {
                        // Check again before the tree can have used the rest,
                        // assuming every CPU busy; 1 ms .. 100 ms.
                        let ncpu = cpu_count();
                        let left = Duration::from_nanos((limit - used) / ncpu);
                        timeout = timeout
                            .min(left.clamp(Duration::from_millis(1), Duration::from_millis(100)));
                    }
                }
            }

            let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(8);
            let mut kinds: Vec<u8> = Vec::with_capacity(8);
            if !init_exited {
                fds.push(PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN));
                kinds.push(0);
            }
            if channel_open {
                fds.push(PollFd::new(self.channel.as_fd(), PollFlags::POLLIN));
                kinds.push(1);
            }
            for (i, p) in self.out_pipes.iter().enumerate() {
                if let Some(p) = p {
                    fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
                    kinds.push(2 + i as u8);
                }
            }
            if let Some(m) = &self.pty_master {
                fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
                kinds.push(4);
            }
            if let Some(w) = &self.stdin_pipe {
                fds.push(PollFd::new(w.as_fd(), PollFlags::POLLOUT));
                kinds.push(5);
            }
            if let (Some(i), false) = (&self.tty_input, init_exited) {
                fds.push(PollFd::new(i.as_fd(), PollFlags::POLLIN));
                kinds.push(6);
            }
            if let Some(s) = signals.as_deref() {
                fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
                kinds.push(7);
            }
            let ms = PollTimeout::try_from(timeout.as_millis().clamp(0, 3_600_000) as i32)
                .unwrap_or(PollTimeout::MAX);
            let n = match poll(&mut fds, ms) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(_) => 0,
            };
            if n == 0 {
                if init_exited {
                    // Drained (or a daemon's fd copy is gone with it): stop.
                    self.out_pipes = [None, None];
                    self.pty_master = None;
                    channel_open = false;
                }
                continue;
            }
            let ready: Vec<(u8, PollFlags)> = fds
                .iter()
                .zip(&kinds)
                .filter_map(|(f, k)| f.revents().filter(|r| !r.is_empty()).map(|r| (*k, r)))
                .collect();
            drop(fds);
            for (kind, rev) in ready {
                match kind {
                    0 => {
                        // PID 1 exited: reap it; the kernel has killed the
                        // rest of the pid namespace.
                        let _ = waitpid(Pid::from_raw(self.init_pid), None);
                        init_exited = true;
                        self.finished = true;
                    }
                    1 => match self.channel.recv_child() {
                        Ok(Some((ChildMessage::Exited { code, signal }, _))) => {
                            program_status = Some((code, signal))
                        }
                        Ok(Some((
                            ChildMessage::StepFailed {
                                step,
                                errno,
                                message,
                            },
                            _,
                        ))) => {
                            failure = Some(StepFailure {
                                step,
                                errno,
                                message,
                            })
                        }
                        Ok(Some(_)) => {}
                        Ok(None) | Err(_) => channel_open = false,
                    },
                    2..=4 => {
                        let stream = if kind == 4 { 0 } else { (kind - 2) as usize };
                        let fd_ref: &OwnedFd = match kind {
                            4 => match &self.pty_master {
                                Some(m) => m,
                                None => continue,
                            },
                            _ => match &self.out_pipes[stream] {
                                Some(p) => p,
                                None => continue,
                            },
                        };
                        match nix::unistd::read(fd_ref.as_fd(), &mut buf) {
                            Ok(0) | Err(Errno::EIO) => self.close_output(kind),
                            Ok(n) => {
                                let limit = self.output_limit.unwrap_or(u64::MAX);
                                let room = limit.saturating_sub(counts[stream]);
                                let take = (n as u64).min(room) as usize;
                                counts[stream] += take as u64;
                                self.emit(stream, &buf[..take]);
                                if (n as u64) > room && killed.is_none() {
                                    killed = Some(LimitKill::Output);
                                    self.kill();
                                }
                            }
                            Err(Errno::EINTR | Errno::EAGAIN) => {}
                            Err(_) => self.close_output(kind),
                        }
                        let _ = rev;
                    }
                    5 => {
                        let done = match &self.stdin_pipe {
                            Some(w) => {
                                match nix::unistd::write(w.as_fd(), &self.stdin_data[stdin_off..]) {
                                    Ok(n) => {
                                        stdin_off += n;
                                        stdin_off >= self.stdin_data.len()
                                    }
                                    Err(Errno::EAGAIN | Errno::EINTR) => false,
                                    Err(_) => true,
                                }
                            }
                            None => true,
                        };
                        if done {
                            self.stdin_pipe = None;
                        }
                    }
                    6 => {
                        let r = match &self.tty_input {
                            Some(i) => nix::unistd::read(i.as_fd(), &mut buf),
                            None => Ok(0),
                        };
                        match r {
                            Ok(0) => self.tty_input = None,
                            Ok(n) => {
                                if let Some(m) = &self.pty_master {
                                    let _ = write_all(m.as_fd(), &buf[..n]);
                                }
                            }
                            Err(Errno::EINTR | Errno::EAGAIN) => {}
                            Err(_) => self.tty_input = None,
                        }
                    }
                    7 => {
                        if let Some(Ok(Some(info))) =
                            signals.as_deref_mut().map(|s| s.read_signal())
                        {
                            let sig = info.ssi_signo as i32;
                            if sig == Signal::SIGWINCH as i32 {
                                if let (Some(m), Some(i)) = (&self.pty_master, &self.tty_input) {
                                    if let Ok(ws) = sys::get_winsize(i.as_fd()) {
                                        let _ = sys::set_winsize(m.as_fd(), ws);
                                    }
                                }
                            } else if !init_exited {
                                // PID 1 forwards it to the program.
                                let _ = sys::pidfd_send_signal(self.pidfd.as_fd(), sig);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }

        let counted = self.sinks[0].is_some();
        let wall = end_time
            .unwrap_or_else(Instant::now)
            .saturating_duration_since(self.started);
        let stats = self
            .cgroup
            .as_ref()
            .and_then(|c| c.stats().ok())
            .unwrap_or_default();
        let cgroup_paths = self
            .cgroup
            .as_ref()
            .map(|c| c.paths().iter().map(|p| p.display().to_string()).collect())
            .unwrap_or_default();
        let teardown = self.teardown();
        let (code, signal) = program_status.unwrap_or((None, Some(libc::SIGKILL)));
        let mut termination = classify(Ending {
            killed,
            exit_code: code,
            signal,
            oom_kills: stats.oom_kills,
            pids_limit_hits: stats.pids_limit_hits,
        });
        if let Some(f) = &failure {
            if killed.is_none() {
                termination = Termination::SetupFailed;
                let _ = f;
            }
        }
        if let (Err(e), None) = (&teardown, &failure) {
            failure = Some(StepFailure {
                step: Step::Teardown,
                errno: None,
                message: e.to_string(),
            });
        }
        let captured = Captured {
            stdout: match self.sinks[0].take() {
                Some(Sink::Buffer(b)) => b,
                _ => Vec::new(),
            },
            stderr: match self.sinks[1].take() {
                Some(Sink::Buffer(b)) => b,
                _ => Vec::new(),
            },
        };
        let report = ExitReport {
            sandbox_id: self.id.clone(),
            termination,
            exit_code: if termination == Termination::SetupFailed {
                None
            } else {
                code
            },
            signal: if termination == Termination::SetupFailed {
                None
            } else {
                signal
            },
            wall_time_us: wall.as_micros() as u64,
            cpu_user_us: stats.cpu_user_ns / 1000,
            cpu_system_us: stats.cpu_system_ns / 1000,
            cpu_total_us: stats.cpu_usage_ns / 1000,
            memory_peak_bytes: stats.memory_peak_bytes,
            oom_kills: stats.oom_kills,
            pids_limit_hits: stats.pids_limit_hits,
            stdout_bytes: counted.then_some(counts[0]),
            stderr_bytes: counted.then_some(counts[1]),
            host_uid: self.lease.host_base,
            host_gid: self.lease.host_base,
            cgroup_paths,
            error: failure,
        };
        (report, captured)
    }

    fn close_output(&mut self, kind: u8) {
        match kind {
            4 => self.pty_master = None,
            k => self.out_pipes[(k - 2) as usize] = None,
        }
    }

    fn emit(&mut self, stream: usize, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        match &mut self.sinks[stream] {
            Some(Sink::Fd(fd)) => {
                let _ = write_all(fd.as_fd(), bytes);
            }
            Some(Sink::Buffer(b)) => b.extend_from_slice(bytes),
            None => {}
        }
    }
}
