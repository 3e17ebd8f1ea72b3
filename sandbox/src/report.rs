//! The exit report: what happened to one sandboxed run, as data (serde).
//!
//! A failure of the sandbox itself (`error` set, termination `setup_failed`)
//! and an outcome of the program (exit code, signal, a limit) are kept apart,
//! as isolate's meta file does.

use serde::{Deserialize, Serialize};

/// Why the run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Termination {
    /// The program exited on its own.
    Exited,
    /// The program was killed by a signal that no limit explains.
    Signaled,
    /// The wall-clock limit ran out; the sandbox was killed.
    WallTimeout,
    /// The CPU time of the whole process tree ran out; the sandbox was killed.
    CpuTimeout,
    /// The kernel's OOM killer fired inside the sandbox's memory limit.
    OomKilled,
    /// A stream went over its output limit; the sandbox was killed.
    OutputLimit,
    /// The program failed after hitting the pids limit (fork refused).
    PidsLimit,
    /// A forbidden system call killed the program (SIGSYS from seccomp).
    SeccompKill,
    /// The sandbox could not be set up or the program could not be executed.
    SetupFailed,
}

impl Termination {
    /// The snake_case name used in JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Termination::Exited => "exited",
            Termination::Signaled => "signaled",
            Termination::WallTimeout => "wall_timeout",
            Termination::CpuTimeout => "cpu_timeout",
            Termination::OomKilled => "oom_killed",
            Termination::OutputLimit => "output_limit",
            Termination::PidsLimit => "pids_limit",
            Termination::SeccompKill => "seccomp_kill",
            Termination::SetupFailed => "setup_failed",
        }
    }
}

/// A setup step that failed, as the child reported it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepFailure {
    /// Name of the step (see `docs/process-model.md`).
    pub step: String,
    /// errno name (`ENOENT`) when the failure came from a system call.
    pub errno: Option<String>,
    /// Human text: what failed on what.
    pub message: String,
}

impl std::fmt::Display for StepFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed: {}", self.step, self.message)?;
        if let Some(e) = &self.errno {
            write!(f, " ({e})")?;
        }
        Ok(())
    }
}

/// Everything known about a finished run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitReport {
    pub sandbox_id: String,
    pub termination: Termination,
    /// Exit code when the program exited.
    pub exit_code: Option<i32>,
    /// Signal number when the program was killed by a signal.
    pub signal: Option<i32>,
    /// From the program's start to its end.
    pub wall_time_us: u64,
    pub cpu_user_us: u64,
    pub cpu_system_us: u64,
    /// CPU time of the whole process tree (cgroup accounting).
    pub cpu_total_us: u64,
    pub memory_peak_bytes: u64,
    pub oom_kills: u64,
    pub pids_limit_hits: u64,
    /// Bytes the program wrote per stream; `None` when its fds were the
    /// caller's own (passed through, not counted).
    pub stdout_bytes: Option<u64>,
    pub stderr_bytes: Option<u64>,
    /// Host uid/gid that uid/gid 0 inside maps to (the base of the range).
    pub host_uid: u32,
    pub host_gid: u32,
    /// cgroup directories the sandbox used (all removed by teardown).
    pub cgroup_paths: Vec<String>,
    /// Set when `termination` is `setup_failed`.
    pub error: Option<StepFailure>,
}

impl ExitReport {
    /// The report of a run whose sandbox could not be made: nothing ran,
    /// nothing was counted.
    pub fn setup_failed(sandbox_id: String, error: StepFailure) -> ExitReport {
        ExitReport {
            sandbox_id,
            termination: Termination::SetupFailed,
            exit_code: None,
            signal: None,
            wall_time_us: 0,
            cpu_user_us: 0,
            cpu_system_us: 0,
            cpu_total_us: 0,
            memory_peak_bytes: 0,
            oom_kills: 0,
            pids_limit_hits: 0,
            stdout_bytes: None,
            stderr_bytes: None,
            host_uid: 0,
            host_gid: 0,
            cgroup_paths: Vec::new(),
            error: Some(error),
        }
    }

    /// The conventional shell status for this outcome: the exit code, 128+N
    /// for signal N, 127/126 for a program that could not be found/executed
    /// and 125 for any other failure of the sandbox.
    pub fn shell_status(&self) -> i32 {
        if let Some(err) = &self.error {
            return match (err.step.as_str(), err.errno.as_deref()) {
                ("exec", Some("ENOENT")) => 127,
                ("exec", Some("EACCES" | "ENOEXEC" | "EISDIR" | "EPERM")) => 126,
                _ => 125,
            };
        }
        match (self.exit_code, self.signal) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            (None, None) => 125,
        }
    }
}
