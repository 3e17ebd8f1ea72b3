//! The supervisor: waits for the program's end while enforcing the limits a
//! cgroup cannot (wall time, CPU time of the whole tree, output bytes per
//! stream), moving bytes between the sandbox and the caller, forwarding
//! signals, and finally building the exit report and tearing down.

use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use super::channel::ChildMessage;
use super::cpu_time::{CpuCheck, CpuTimeLimit};
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

pub use super::cpu_time::cpu_count;

/// A file descriptor the supervisor's poll loop waits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// PID 1's pidfd: readable once it exited.
    Init,
    /// The channel from PID 1: the program's status, step failures.
    Channel,
    /// The program's stdout (0) or stderr (1) pipe.
    Output(usize),
    /// The pty master: the program's output in terminal mode.
    PtyMaster,
    /// The pipe to the program's stdin: writable.
    Stdin,
    /// The caller's terminal, forwarded to the pty master.
    TtyInput,
    /// The caller's signalfd (forwarded signals, SIGWINCH).
    Signals,
}

/// What the poll loop learns as it goes, for the end of the run.
struct Watch {
    /// Bytes taken per stream (stdout, stderr), within the limit.
    counts: [u64; 2],
    /// The first limit the supervisor killed for.
    killed: Option<LimitKill>,
    /// The program's (exit code, signal), as PID 1 reported it.
    program_status: Option<(Option<i32>, Option<i32>)>,
    failure: Option<StepFailure>,
    init_exited: bool,
    channel_open: bool,
    stdin_off: usize,
    /// When PID 1 was seen gone: the end of the run's wall time.
    end_time: Option<Instant>,
    cpu_limit: Option<CpuTimeLimit>,
    wall_deadline: Option<Instant>,
    buf: Vec<u8>,
}

impl Sandbox {
    /// Runs until the program ends (or a limit kills it), then tears down and
    /// returns the report and, in capture mode, the output. `signals`
    /// (optional) delivers SIGINT/SIGTERM/SIGHUP/SIGQUIT, forwarded to the
    /// program, and SIGWINCH, which resizes the pty from the caller's
    /// terminal.
    pub fn supervise(mut self, mut signals: Option<&mut SignalFd>) -> (ExitReport, Captured) {
        let mut w = self.watch();
        while let Some(timeout) = self.next_timeout(&mut w) {
            let ready = match self.wait(&w, signals.as_deref(), timeout) {
                Some(ready) => ready,
                None => continue,
            };
            if ready.is_empty() {
                if w.init_exited {
                    // Drained (or a daemon's fd copy is gone with it): stop.
                    self.out_pipes = [None, None];
                    self.pty_master = None;
                    w.channel_open = false;
                }
                continue;
            }
            for source in ready {
                self.handle(source, &mut w, signals.as_deref_mut());
            }
        }
        self.finish(w)
    }

    /// Phase 1: the state of the wait, from the sandbox's limits.
    fn watch(&mut self) -> Watch {
        if self.stdin_data.is_empty() {
            self.stdin_pipe = None;
        }
        Watch {
            counts: [0; 2],
            killed: None,
            program_status: None,
            failure: self.exec_failure.take(),
            init_exited: false,
            channel_open: true,
            stdin_off: 0,
            end_time: None,
            cpu_limit: self.cpu_time.map(CpuTimeLimit::new),
            wall_deadline: self.wall_time.map(|d| self.started + d),
            buf: vec![0u8; 64 * 1024],
        }
    }

    /// The timers: checks the wall clock and the tree's CPU time (killing
    /// past a limit) and returns how long the next poll may wait; `None`
    /// when everything is over (PID 1 gone, outputs and channel drained).
    fn next_timeout(&mut self, w: &mut Watch) -> Option<Duration> {
        // The master is a source of output in terminal mode; EOF/EIO on it
        // means every slave is closed.
        let outputs_open = self.out_pipes.iter().any(Option::is_some) || self.pty_master.is_some();
        if w.init_exited && !outputs_open && !w.channel_open {
            return None;
        }
        if w.init_exited {
            w.end_time.get_or_insert_with(Instant::now);
            // Everything in the namespace is dead; drain what is buffered.
            return Some(Duration::from_millis(50));
        }
        let mut timeout = Duration::from_secs(3600);
        if w.killed.is_some() {
            return Some(timeout);
        }
        let now = Instant::now();
        if let Some(d) = w.wall_deadline {
            if now >= d {
                w.killed = Some(LimitKill::Wall);
                self.kill();
            } else {
                timeout = timeout.min(d - now);
            }
        }
        if let (Some(limit), Some(cg), None) = (w.cpu_limit, self.cgroup.as_ref(), w.killed) {
            match limit.check(cg) {
                CpuCheck::Spent => {
                    w.killed = Some(LimitKill::Cpu);
                    self.kill();
                }
                CpuCheck::Within(recheck) => timeout = timeout.min(recheck),
            }
        }
        Some(timeout)
    }

    /// One poll over the open sources: the ready ones (empty on timeout),
    /// `None` when interrupted.
    fn wait(
        &self,
        w: &Watch,
        signals: Option<&SignalFd>,
        timeout: Duration,
    ) -> Option<Vec<Source>> {
        let mut want: Vec<(BorrowedFd<'_>, PollFlags, Source)> = Vec::with_capacity(8);
        if !w.init_exited {
            want.push((self.pidfd.as_fd(), PollFlags::POLLIN, Source::Init));
        }
        if w.channel_open {
            want.push((self.channel.as_fd(), PollFlags::POLLIN, Source::Channel));
        }
        for (i, p) in self.out_pipes.iter().enumerate() {
            if let Some(p) = p {
                want.push((p.as_fd(), PollFlags::POLLIN, Source::Output(i)));
            }
        }
        if let Some(m) = &self.pty_master {
            want.push((m.as_fd(), PollFlags::POLLIN, Source::PtyMaster));
        }
        if let Some(p) = &self.stdin_pipe {
            want.push((p.as_fd(), PollFlags::POLLOUT, Source::Stdin));
        }
        if let (Some(i), false) = (&self.tty_input, w.init_exited) {
            want.push((i.as_fd(), PollFlags::POLLIN, Source::TtyInput));
        }
        if let Some(s) = signals {
            want.push((s.as_fd(), PollFlags::POLLIN, Source::Signals));
        }
        let mut fds: Vec<PollFd<'_>> = want
            .iter()
            .map(|(fd, flags, _)| PollFd::new(*fd, *flags))
            .collect();
        let ms = PollTimeout::try_from(timeout.as_millis().clamp(0, 3_600_000) as i32)
            .unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, ms) {
            Err(Errno::EINTR) => None,
            Ok(0) | Err(_) => Some(Vec::new()),
            Ok(_) => Some(
                fds.iter()
                    .zip(&want)
                    .filter(|(f, _)| f.revents().is_some_and(|r| !r.is_empty()))
                    .map(|(_, (_, _, source))| *source)
                    .collect(),
            ),
        }
    }

    /// Acts on one ready source.
    fn handle(&mut self, source: Source, w: &mut Watch, signals: Option<&mut SignalFd>) {
        match source {
            Source::Init => {
                // PID 1 exited: reap it; the kernel has killed the rest of
                // the pid namespace.
                let _ = waitpid(Pid::from_raw(self.init_pid), None);
                w.init_exited = true;
                self.finished = true;
            }
            Source::Channel => match self.channel.recv_child() {
                Ok(Some((ChildMessage::Exited { code, signal }, _))) => {
                    w.program_status = Some((code, signal))
                }
                Ok(Some((
                    ChildMessage::StepFailed {
                        step,
                        errno,
                        message,
                    },
                    _,
                ))) => {
                    w.failure = Some(StepFailure {
                        step,
                        errno,
                        message,
                    })
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => w.channel_open = false,
            },
            Source::Output(stream) => self.read_output(source, stream, w),
            Source::PtyMaster => self.read_output(source, 0, w),
            Source::Stdin => self.feed_stdin(w),
            Source::TtyInput => self.forward_tty_input(w),
            Source::Signals => {
                if let Some(Ok(Some(info))) = signals.map(|s| s.read_signal()) {
                    self.forward_signal(info.ssi_signo as i32, w.init_exited);
                }
            }
        }
    }

    /// Output from `source`, counted against `stream`'s limit (past it the
    /// sandbox is killed) and passed on to the stream's sink.
    fn read_output(&mut self, source: Source, stream: usize, w: &mut Watch) {
        let fd = match source {
            Source::PtyMaster => self.pty_master.as_ref(),
            _ => self.out_pipes[stream].as_ref(),
        };
        let Some(fd) = fd else { return };
        match nix::unistd::read(fd.as_fd(), &mut w.buf) {
            Ok(0) | Err(Errno::EIO) => self.close_output(source),
            Ok(n) => {
                let limit = self.output_limit.unwrap_or(u64::MAX);
                let room = limit.saturating_sub(w.counts[stream]);
                let take = (n as u64).min(room) as usize;
                w.counts[stream] += take as u64;
                self.emit(stream, &w.buf[..take]);
                if (n as u64) > room && w.killed.is_none() {
                    w.killed = Some(LimitKill::Output);
                    self.kill();
                }
            }
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            Err(_) => self.close_output(source),
        }
    }

    /// The next part of the caller's stdin data; the pipe is closed (EOF
    /// for the program) when all is written or the program stopped reading.
    fn feed_stdin(&mut self, w: &mut Watch) {
        let done = match &self.stdin_pipe {
            Some(p) => match nix::unistd::write(p.as_fd(), &self.stdin_data[w.stdin_off..]) {
                Ok(n) => {
                    w.stdin_off += n;
                    w.stdin_off >= self.stdin_data.len()
                }
                Err(Errno::EAGAIN | Errno::EINTR) => false,
                Err(_) => true,
            },
            None => true,
        };
        if done {
            self.stdin_pipe = None;
        }
    }

    /// The caller's keystrokes, to the pty master.
    fn forward_tty_input(&mut self, w: &mut Watch) {
        let r = match &self.tty_input {
            Some(i) => nix::unistd::read(i.as_fd(), &mut w.buf),
            None => Ok(0),
        };
        match r {
            Ok(0) => self.tty_input = None,
            Ok(n) => {
                if let Some(m) = &self.pty_master {
                    let _ = write_all(m.as_fd(), &w.buf[..n]);
                }
            }
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            Err(_) => self.tty_input = None,
        }
    }

    /// SIGWINCH resizes the pty from the caller's terminal; any other
    /// signal goes to PID 1, which forwards it to the program.
    fn forward_signal(&self, sig: i32, init_exited: bool) {
        if sig == Signal::SIGWINCH as i32 {
            if let (Some(m), Some(i)) = (&self.pty_master, &self.tty_input) {
                if let Ok(ws) = sys::get_winsize(i.as_fd()) {
                    let _ = sys::set_winsize(m.as_fd(), ws);
                }
            }
        } else if !init_exited {
            let _ = sys::pidfd_send_signal(self.pidfd.as_fd(), sig);
        }
    }

    /// The end: reads the cgroup's counters, tears down, classifies and
    /// builds the report.
    fn finish(mut self, w: Watch) -> (ExitReport, Captured) {
        let Watch {
            counts,
            killed,
            program_status,
            mut failure,
            end_time,
            ..
        } = w;
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
        if failure.is_some() && killed.is_none() {
            termination = Termination::SetupFailed;
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
        let setup_failed = termination == Termination::SetupFailed;
        let report = ExitReport {
            sandbox_id: self.id.clone(),
            termination,
            exit_code: if setup_failed { None } else { code },
            signal: if setup_failed { None } else { signal },
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

    fn close_output(&mut self, source: Source) {
        match source {
            Source::PtyMaster => self.pty_master = None,
            Source::Output(i) => self.out_pipes[i] = None,
            _ => {}
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
