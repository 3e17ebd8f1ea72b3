//! The exit report: what happened to one sandboxed run, as data (serde).
//!
//! A failure of the sandbox itself (`error` set, termination `setup_failed`)
//! and an outcome of the program (exit code, signal, a limit) are kept apart,
//! as isolate's meta file does.

/// The errno type of [`StepFailure`], for crates without their own `nix`.
pub use nix::errno::Errno;
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

/// A step of creating a sandbox or starting a program in it: the names
/// of `docs/process-model.md`, which API clients see as `error.step`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    // The parent (or the daemon) before and around the clone.
    /// The spec or the options were refused before anything was created.
    Validate,
    /// The daemon could not provide the image's root.
    Image,
    /// A system call of the parent while creating the sandbox.
    Create,
    /// The sandbox's cgroup could not be made or configured.
    Cgroup,
    /// The seccomp profile could not be compiled.
    SeccompCompile,
    /// No host uid range was free, or the id maps could not be written.
    UidPool,
    /// A pooled network namespace could not be attached.
    NetworkNamespace,
    /// The child did not finish setup, or broke the protocol.
    Setup,
    /// The sandbox could not be removed after the run.
    Teardown,
    /// `exec` into a running container: entering its namespaces
    /// (`process::join`).
    JoinNamespaces,
    // PID 1, in order.
    CloseFds,
    JoinCgroup,
    CgroupNamespace,
    ScrubCaller,
    WaitForParent,
    BecomeRoot,
    ParentDeath,
    OomScoreAdj,
    Hostname,
    MountPropagation,
    MountRoot,
    MountHostLayout,
    MountDev,
    MountProc,
    MountExtra,
    /// The check of a standard mount point (`/proc`, `/dev`, `/tmp`,
    /// `/workspace`) before something is mounted on it.
    MountPoints,
    PivotRoot,
    /// `linux.sysctl`: the namespaced kernel parameters a config sets.
    Sysctl,
    MaskPaths,
    ReadonlyRoot,
    /// A one-shot run's files into /workspace (`crate::seed`).
    WriteFiles,
    Loopback,
    SessionKeyring,
    OpenPty,
    BlockSignals,
    SpawnProgram,
    // The program child, in order.
    ResetSignals,
    NewSession,
    Stdio,
    Chdir,
    Rlimits,
    Capabilities,
    Identity,
    NoNewPrivs,
    Landlock,
    Fds,
    Seccomp,
    Exec,
}

impl Step {
    /// Every step, in the order of the enum.
    pub const ALL: [Step; 48] = [
        Step::Validate,
        Step::Image,
        Step::Create,
        Step::Cgroup,
        Step::SeccompCompile,
        Step::UidPool,
        Step::NetworkNamespace,
        Step::Setup,
        Step::Teardown,
        Step::JoinNamespaces,
        Step::CloseFds,
        Step::JoinCgroup,
        Step::CgroupNamespace,
        Step::ScrubCaller,
        Step::WaitForParent,
        Step::BecomeRoot,
        Step::ParentDeath,
        Step::OomScoreAdj,
        Step::Hostname,
        Step::MountPropagation,
        Step::MountRoot,
        Step::MountHostLayout,
        Step::MountDev,
        Step::MountProc,
        Step::MountExtra,
        Step::MountPoints,
        Step::PivotRoot,
        Step::Sysctl,
        Step::MaskPaths,
        Step::ReadonlyRoot,
        Step::WriteFiles,
        Step::Loopback,
        Step::SessionKeyring,
        Step::OpenPty,
        Step::BlockSignals,
        Step::SpawnProgram,
        Step::ResetSignals,
        Step::NewSession,
        Step::Stdio,
        Step::Chdir,
        Step::Rlimits,
        Step::Capabilities,
        Step::Identity,
        Step::NoNewPrivs,
        Step::Landlock,
        Step::Fds,
        Step::Seccomp,
        Step::Exec,
    ];

    /// The snake_case name, as in JSON and `docs/process-model.md`.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Validate => "validate",
            Step::Image => "image",
            Step::Create => "create",
            Step::Cgroup => "cgroup",
            Step::SeccompCompile => "seccomp_compile",
            Step::UidPool => "uid_pool",
            Step::NetworkNamespace => "network_namespace",
            Step::Setup => "setup",
            Step::Teardown => "teardown",
            Step::JoinNamespaces => "join_namespaces",
            Step::CloseFds => "close_fds",
            Step::JoinCgroup => "join_cgroup",
            Step::CgroupNamespace => "cgroup_namespace",
            Step::ScrubCaller => "scrub_caller",
            Step::WaitForParent => "wait_for_parent",
            Step::BecomeRoot => "become_root",
            Step::ParentDeath => "parent_death",
            Step::OomScoreAdj => "oom_score_adj",
            Step::Hostname => "hostname",
            Step::MountPropagation => "mount_propagation",
            Step::MountRoot => "mount_root",
            Step::MountHostLayout => "mount_host_layout",
            Step::MountDev => "mount_dev",
            Step::MountProc => "mount_proc",
            Step::MountExtra => "mount_extra",
            Step::MountPoints => "mount_points",
            Step::PivotRoot => "pivot_root",
            Step::Sysctl => "sysctl",
            Step::MaskPaths => "mask_paths",
            Step::ReadonlyRoot => "readonly_root",
            Step::WriteFiles => "write_files",
            Step::Loopback => "loopback",
            Step::SessionKeyring => "session_keyring",
            Step::OpenPty => "open_pty",
            Step::BlockSignals => "block_signals",
            Step::SpawnProgram => "spawn_program",
            Step::ResetSignals => "reset_signals",
            Step::NewSession => "new_session",
            Step::Stdio => "stdio",
            Step::Chdir => "chdir",
            Step::Rlimits => "rlimits",
            Step::Capabilities => "capabilities",
            Step::Identity => "identity",
            Step::NoNewPrivs => "no_new_privs",
            Step::Landlock => "landlock",
            Step::Fds => "fds",
            Step::Seccomp => "seccomp",
            Step::Exec => "exec",
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// serde for an optional errno as its symbolic name (`"ENOENT"`), the form
/// API clients and reports have always seen. A name this build does not
/// know reads as `UnknownErrno` rather than failing the whole message.
pub mod errno_name {
    use nix::errno::Errno;
    use serde::{Deserialize, Deserializer, Serializer};

    /// `ENOENT` for `Errno::ENOENT`.
    pub fn name(e: Errno) -> String {
        format!("{e:?}")
    }

    /// The errno named `name` (`UnknownErrno` when there is none).
    pub fn parse(text: &str) -> Errno {
        static NAMES: std::sync::OnceLock<std::collections::HashMap<String, Errno>> =
            std::sync::OnceLock::new();
        let names = NAMES.get_or_init(|| {
            // Linux errno values are below 4096 (MAX_ERRNO); most are < 134.
            (1..4096)
                .map(Errno::from_raw)
                .filter(|e| *e != Errno::UnknownErrno)
                .map(|e| (name(e), e))
                .collect()
        });
        names.get(text).copied().unwrap_or(Errno::UnknownErrno)
    }

    pub fn serialize<S: Serializer>(e: &Option<Errno>, s: S) -> Result<S::Ok, S::Error> {
        match e {
            Some(e) => s.serialize_some(&name(*e)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Errno>, D::Error> {
        Ok(Option::<String>::deserialize(d)?.map(|n| parse(&n)))
    }
}

/// A setup step that failed, as the child reported it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepFailure {
    pub step: Step,
    /// The system call's errno, when the failure came from one (serialized
    /// as its name: `ENOENT`).
    #[serde(default, with = "errno_name")]
    pub errno: Option<Errno>,
    /// Human text: what failed on what.
    pub message: String,
}

impl std::fmt::Display for StepFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed: {}", self.step, self.message)?;
        if let Some(e) = self.errno {
            write!(f, " ({e:?})")?;
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

    /// The conventional shell status of this outcome ([`exit_status`]).
    pub fn shell_status(&self) -> i32 {
        exit_status(
            self.termination,
            self.exit_code,
            self.signal,
            self.error.as_ref(),
        )
    }
}

/// The status of a program that could not be started: 127 when `execve`
/// did not find it (ENOENT), 126 when exec failed in any other way (found
/// but not executable: EACCES, ENOEXEC, EISDIR, EPERM, ETXTBSY, ...), 125
/// when an earlier step failed (the sandbox, not the program). This is
/// bash's rule for exec failures and docker/podman's 125/126/127.
pub fn failure_status(step: Step, errno: Option<Errno>) -> i32 {
    match (step, errno) {
        (Step::Exec, Some(Errno::ENOENT)) => 127,
        (Step::Exec, _) => 126,
        _ => 125,
    }
}

/// The one exit-status mapping of every front end (`runtimed run` and
/// `exec`, the API's exec and `/v1/run` results, the judge): a failure to
/// start is [`failure_status`]; a limit that kills (wall or CPU time,
/// output, the OOM killer) is 128 + SIGKILL even when the program's own
/// exit raced the kill, so a caller cannot take cut-off output for a
/// success; a signal N is 128 + N; otherwise the program's exit code.
pub fn exit_status(
    termination: Termination,
    exit_code: Option<i32>,
    signal: Option<i32>,
    error: Option<&StepFailure>,
) -> i32 {
    if let Some(f) = error {
        return failure_status(f.step, f.errno);
    }
    let killed_by_limit = matches!(
        termination,
        Termination::WallTimeout
            | Termination::CpuTimeout
            | Termination::OutputLimit
            | Termination::OomKilled
    );
    match (exit_code, signal) {
        (_, Some(s)) => 128 + s,
        (Some(_), None) if killed_by_limit => 128 + libc::SIGKILL,
        (Some(c), None) => c,
        (None, None) => 125,
    }
}

/// A limit the supervisor enforces by killing the sandbox (or, for an exec
/// in a session, the process group): the kernel cannot tell us about these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitKill {
    Wall,
    Cpu,
    Output,
}

/// What is known when a program ended, for [`classify`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ending {
    /// The limit the supervisor killed for, if any (the first one).
    pub killed: Option<LimitKill>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// OOM kills in the cgroup during the run (for an exec in a session:
    /// how far the session's counter rose while the process ran).
    pub oom_kills: u64,
    /// Forks the pids limit refused during the run (likewise).
    pub pids_limit_hits: u64,
}

/// The one classification of how a program ended, for both supervisors
/// (the sandbox crate's and the daemon's exec in a session):
/// 1. a limit the supervisor killed for wins (wall, CPU, output);
/// 2. the OOM rule: the OOM killer fired in the cgroup during the run and
///    the program died of SIGKILL or exited non-zero (a shell whose child
///    was killed exits 137 by itself; the judge calls that MLE, as isolate
///    reports `cg-oom-killed` for the whole box);
/// 3. SIGSYS is a seccomp kill;
/// 4. the program failed (signal or non-zero exit) after the pids limit
///    refused a fork;
/// 5. otherwise it exited or was signaled.
pub fn classify(e: Ending) -> Termination {
    match e.killed {
        Some(LimitKill::Wall) => return Termination::WallTimeout,
        Some(LimitKill::Cpu) => return Termination::CpuTimeout,
        Some(LimitKill::Output) => return Termination::OutputLimit,
        None => {}
    }
    let failed = e.signal.is_some() || e.exit_code.is_some_and(|c| c != 0);
    if e.oom_kills > 0 && (e.signal == Some(libc::SIGKILL) || e.exit_code.is_some_and(|c| c != 0)) {
        return Termination::OomKilled;
    }
    if e.signal == Some(libc::SIGSYS) {
        return Termination::SeccompKill;
    }
    if e.pids_limit_hits > 0 && failed {
        return Termination::PidsLimit;
    }
    match (e.exit_code, e.signal) {
        (Some(_), _) => Termination::Exited,
        _ => Termination::Signaled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(step: Step, errno: Option<Errno>) -> StepFailure {
        StepFailure {
            step,
            errno,
            message: "m".into(),
        }
    }

    /// The one table of exit statuses.
    #[test]
    fn exit_statuses() {
        use Termination as T;
        /// (termination, exit code, signal, failure, status)
        type Case = (T, Option<i32>, Option<i32>, Option<StepFailure>, i32);
        let cases: &[Case] = &[
            (T::Exited, Some(0), None, None, 0),
            (T::Exited, Some(7), None, None, 7),
            (T::Signaled, None, Some(15), None, 143),
            (T::SeccompKill, None, Some(31), None, 159),
            (T::WallTimeout, None, Some(9), None, 137),
            (T::CpuTimeout, None, Some(9), None, 137),
            // The program's exit raced the limit's kill: still the limit's.
            (T::OutputLimit, Some(0), None, None, 137),
            (T::WallTimeout, Some(0), None, None, 137),
            (T::OomKilled, Some(1), None, None, 137),
            // pids_limit is the program's own failure after a refused fork.
            (T::PidsLimit, Some(2), None, None, 2),
            (T::Signaled, None, None, None, 125),
            (
                T::SetupFailed,
                None,
                None,
                Some(failure(Step::Exec, Some(Errno::ENOENT))),
                127,
            ),
        ];
        for (t, code, sig, err, want) in cases {
            assert_eq!(
                exit_status(*t, *code, *sig, err.as_ref()),
                *want,
                "{t:?} {code:?} {sig:?} {err:?}"
            );
        }
        for errno in [
            Some(Errno::EACCES),
            Some(Errno::ENOEXEC),
            Some(Errno::EISDIR),
            Some(Errno::EPERM),
            Some(Errno::ETXTBSY),
            Some(Errno::ENOTDIR),
            Some(Errno::E2BIG),
            None,
        ] {
            assert_eq!(failure_status(Step::Exec, errno), 126, "{errno:?}");
        }
        for step in [Step::Chdir, Step::MountRoot, Step::UidPool, Step::Validate] {
            assert_eq!(failure_status(step, Some(Errno::ENOENT)), 125, "{step}");
        }
    }

    /// The one classification table (both supervisors use it).
    #[test]
    fn classification() {
        use LimitKill as K;
        use Termination as T;
        let end = |killed, exit_code, signal, oom_kills, pids_limit_hits| Ending {
            killed,
            exit_code,
            signal,
            oom_kills,
            pids_limit_hits,
        };
        let cases = [
            (end(None, Some(0), None, 0, 0), T::Exited),
            (end(None, Some(3), None, 0, 0), T::Exited),
            (end(None, None, Some(15), 0, 0), T::Signaled),
            (end(None, None, Some(9), 0, 0), T::Signaled),
            // A limit the supervisor killed for wins over the counters.
            (end(Some(K::Wall), None, Some(9), 1, 0), T::WallTimeout),
            (end(Some(K::Cpu), None, Some(9), 0, 0), T::CpuTimeout),
            (end(Some(K::Output), None, Some(9), 0, 0), T::OutputLimit),
            (end(Some(K::Output), Some(0), None, 0, 0), T::OutputLimit),
            // The OOM rule: the counter rose and the program died of
            // SIGKILL or exited non-zero.
            (end(None, None, Some(9), 1, 0), T::OomKilled),
            (end(None, Some(137), None, 2, 0), T::OomKilled),
            (end(None, Some(1), None, 1, 0), T::OomKilled),
            (end(None, Some(0), None, 1, 0), T::Exited),
            (end(None, None, Some(15), 1, 0), T::Signaled),
            (end(None, None, Some(31), 0, 0), T::SeccompKill),
            (end(None, None, Some(31), 0, 4), T::SeccompKill),
            (end(None, Some(1), None, 0, 3), T::PidsLimit),
            (end(None, None, Some(11), 0, 3), T::PidsLimit),
            (end(None, Some(0), None, 0, 3), T::Exited),
        ];
        for (ending, want) in cases {
            assert_eq!(classify(ending), want, "{ending:?}");
        }
    }

    /// API clients see these names: the wire form must not change.
    #[test]
    fn failures_serialize_as_names() {
        let f = failure(Step::MountPoints, Some(Errno::ELOOP));
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(
            json,
            r#"{"step":"mount_points","errno":"ELOOP","message":"m"}"#
        );
        assert_eq!(serde_json::from_str::<StepFailure>(&json).unwrap(), f);
        let none: StepFailure =
            serde_json::from_str(r#"{"step":"uid_pool","errno":null,"message":"m"}"#).unwrap();
        assert_eq!(none, failure(Step::UidPool, None));
        let missing: StepFailure =
            serde_json::from_str(r#"{"step":"exec","message":"m"}"#).unwrap();
        assert_eq!(missing.errno, None);
        // Every step's name is what serde writes.
        for step in Step::ALL {
            assert_eq!(
                serde_json::to_value(step).unwrap(),
                serde_json::json!(step.as_str())
            );
        }
        assert_eq!(errno_name::parse("EACCES"), Errno::EACCES);
        assert_eq!(errno_name::parse("ENOTANERRNO"), Errno::UnknownErrno);
    }
}
