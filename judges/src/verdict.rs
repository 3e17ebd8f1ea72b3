//! Verdicts, and the pure classification of a finished run from its exit
//! report, its limits and its stderr. The rules are in docs/judges.md
//! ("Verdict rules"); the table of unit tests below follows them one by one.
//!
//! A verdict is an outcome of the submission. A failure of the judge or of
//! the sandbox is never blamed on the program: it is `INTERNAL_ERROR` here,
//! and failures before any verdict exists are `JudgeError`s.

use serde::{Deserialize, Serialize};

use sandbox::{ExitReport, Termination};

use crate::runner::RunLimits;

/// The outcome of one test, or of a whole submission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    Accepted,
    WrongAnswer,
    TimeLimitExceeded,
    MemoryLimitExceeded,
    RuntimeError,
    CompilationError,
    OutputLimitExceeded,
    InternalError,
}

impl Verdict {
    /// The SCREAMING_SNAKE name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Accepted => "ACCEPTED",
            Verdict::WrongAnswer => "WRONG_ANSWER",
            Verdict::TimeLimitExceeded => "TIME_LIMIT_EXCEEDED",
            Verdict::MemoryLimitExceeded => "MEMORY_LIMIT_EXCEEDED",
            Verdict::RuntimeError => "RUNTIME_ERROR",
            Verdict::CompilationError => "COMPILATION_ERROR",
            Verdict::OutputLimitExceeded => "OUTPUT_LIMIT_EXCEEDED",
            Verdict::InternalError => "INTERNAL_ERROR",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which time limit a `TIME_LIMIT_EXCEEDED` ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeLimit {
    /// CPU time of the whole process tree.
    Cpu,
    /// Wall-clock time (e.g. a program that sleeps or waits for input).
    Wall,
}

/// A verdict with its details.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Judgement {
    pub verdict: Verdict,
    /// Set for `TIME_LIMIT_EXCEEDED` only.
    pub time_limit: Option<TimeLimit>,
    /// Why, in a few words ("killed by signal 11 (SIGSEGV)").
    pub detail: String,
}

impl Judgement {
    pub fn new(verdict: Verdict, detail: impl Into<String>) -> Judgement {
        Judgement {
            verdict,
            time_limit: None,
            detail: detail.into(),
        }
    }

    fn tle(which: TimeLimit, detail: String) -> Judgement {
        Judgement {
            verdict: Verdict::TimeLimitExceeded,
            time_limit: Some(which),
            detail,
        }
    }
}

/// What a run of the program says before its output is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunClass {
    /// Exited with status 0 within every limit: the checker decides.
    Completed,
    /// A verdict without looking at the output.
    Failed(Judgement),
}

/// A run that failed while its peak memory was at least this share of the
/// memory limit failed of memory: `MEMORY_LIMIT_EXCEEDED`.
pub const MEMORY_NEAR_LIMIT: f64 = 0.9;

/// Bytes at the end of stderr searched for failed-allocation markers.
pub const MARKER_WINDOW: usize = 16 << 10;

/// Classifies a finished run of the program. `oom_markers` are the texts a
/// runtime prints when an allocation fails (`std::bad_alloc`,
/// `MemoryError`, ...: per language in the table).
///
/// In order:
/// 1. a sandbox failure (`setup_failed`, an error in the report) →
///    `INTERNAL_ERROR`;
/// 2. the limit the supervisor killed for: `cpu_timeout` → TLE cpu,
///    `wall_timeout` → TLE wall, `oom_killed` → MLE, `output_limit` → OLE;
/// 3. time measured over a limit although the run ended first (the
///    supervisor polls) → TLE (cpu before wall);
/// 4. a failed run (non-zero exit, signal, `pids_limit`, `seccomp_kill`)
///    whose stderr ends with a failed-allocation marker, or whose peak
///    memory reached [`MEMORY_NEAR_LIMIT`] of the limit → MLE;
/// 5. any other failure → `RUNTIME_ERROR` (`pids_limit` and
///    `seccomp_kill` say so in the detail);
/// 6. exit 0 → [`RunClass::Completed`].
pub fn classify_run(
    report: &ExitReport,
    limits: &RunLimits,
    stderr: &[u8],
    oom_markers: &[String],
) -> RunClass {
    use Termination as T;
    let fail = |j| RunClass::Failed(j);
    if report.termination == T::SetupFailed || report.error.is_some() {
        let why = report
            .error
            .as_ref()
            .map_or_else(|| "sandbox setup failed".to_string(), |e| e.to_string());
        return fail(Judgement::new(Verdict::InternalError, why));
    }
    let cpu_ms = report.cpu_total_us / 1000;
    let wall_ms = report.wall_time_us / 1000;
    let cpu_limit_ms = limits.cpu_time.as_millis();
    let wall_limit_ms = limits.wall_time.as_millis();
    let cpu_tle = || {
        Judgement::tle(
            TimeLimit::Cpu,
            format!("cpu time limit of {cpu_limit_ms} ms exceeded ({cpu_ms} ms used)"),
        )
    };
    let wall_tle = || {
        Judgement::tle(
            TimeLimit::Wall,
            format!("wall time limit of {wall_limit_ms} ms exceeded ({wall_ms} ms)"),
        )
    };
    match report.termination {
        T::CpuTimeout => return fail(cpu_tle()),
        T::WallTimeout => return fail(wall_tle()),
        T::OomKilled => {
            return fail(Judgement::new(
                Verdict::MemoryLimitExceeded,
                format!(
                    "killed by the OOM killer at the memory limit of {} MiB",
                    limits.memory_bytes >> 20
                ),
            ))
        }
        T::OutputLimit => {
            return fail(Judgement::new(
                Verdict::OutputLimitExceeded,
                format!("an output stream went over {} bytes", limits.output_bytes),
            ))
        }
        // SetupFailed returned above.
        T::SetupFailed | T::Exited | T::Signaled | T::PidsLimit | T::SeccompKill => {}
    }
    if u128::from(report.cpu_total_us) > limits.cpu_time.as_micros() {
        return fail(cpu_tle());
    }
    if u128::from(report.wall_time_us) > limits.wall_time.as_micros() {
        return fail(wall_tle());
    }
    let failed = report.termination != T::Exited || report.exit_code != Some(0);
    if !failed {
        return RunClass::Completed;
    }
    if let Some(marker) = find_marker(stderr, oom_markers) {
        return fail(Judgement::new(
            Verdict::MemoryLimitExceeded,
            format!("an allocation failed ({marker})"),
        ));
    }
    if limits.memory_bytes > 0
        && report.memory_peak_bytes as f64 >= MEMORY_NEAR_LIMIT * limits.memory_bytes as f64
    {
        return fail(Judgement::new(
            Verdict::MemoryLimitExceeded,
            format!(
                "failed at {} of the memory limit of {} MiB",
                percent(report.memory_peak_bytes, limits.memory_bytes),
                limits.memory_bytes >> 20
            ),
        ));
    }
    let how = exit_description(report);
    let detail = match report.termination {
        T::PidsLimit => format!(
            "{how} after the pids limit of {} refused to create a process or thread",
            limits.pids
        ),
        T::SeccompKill => format!("{how}: a forbidden system call (seccomp)"),
        _ => how,
    };
    fail(Judgement::new(Verdict::RuntimeError, detail))
}

fn percent(a: u64, b: u64) -> String {
    format!("{:.0} %", a as f64 * 100.0 / b as f64)
}

/// The first of `markers` found in the last [`MARKER_WINDOW`] bytes of
/// `stderr`.
pub fn find_marker<'m>(stderr: &[u8], markers: &'m [String]) -> Option<&'m str> {
    let tail = &stderr[stderr.len().saturating_sub(MARKER_WINDOW)..];
    markers
        .iter()
        .filter(|m| !m.is_empty())
        .find(|m| tail.windows(m.len()).any(|w| w == m.as_bytes()))
        .map(String::as_str)
}

/// "exit code 3" or "killed by signal 11 (SIGSEGV)".
pub fn exit_description(report: &ExitReport) -> String {
    match (report.exit_code, report.signal) {
        (_, Some(s)) => match signal_name(s) {
            Some(n) => format!("killed by signal {s} ({n})"),
            None => format!("killed by signal {s}"),
        },
        (Some(c), None) => format!("exit code {c}"),
        (None, None) => "ended without a status".to_string(),
    }
}

/// The name of a Linux (x86_64) signal number.
pub fn signal_name(sig: i32) -> Option<&'static str> {
    const NAMES: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    usize::try_from(sig)
        .ok()
        .and_then(|s| s.checked_sub(1))
        .and_then(|i| NAMES.get(i).copied())
}

/// What a finished compile says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompileClass {
    /// Exit 0: the artifact is used.
    Compiled,
    /// The compiler refused the source, or was stopped by a compile limit
    /// (a template bomb is the submission's fault): `COMPILATION_ERROR`
    /// with this detail.
    Failed(String),
    /// The compiler could not be run: `INTERNAL_ERROR`.
    Internal(String),
}

/// Classifies a finished compile.
pub fn classify_compile(report: &ExitReport, limits: &RunLimits) -> CompileClass {
    use Termination as T;
    if report.termination == T::SetupFailed || report.error.is_some() {
        let why = report
            .error
            .as_ref()
            .map_or_else(|| "sandbox setup failed".to_string(), |e| e.to_string());
        return CompileClass::Internal(format!("the compiler could not be run: {why}"));
    }
    let limit = match report.termination {
        T::CpuTimeout => Some(format!(
            "cpu time limit of {} ms",
            limits.cpu_time.as_millis()
        )),
        T::WallTimeout => Some(format!(
            "wall time limit of {} ms",
            limits.wall_time.as_millis()
        )),
        T::OomKilled => Some(format!("memory limit of {} MiB", limits.memory_bytes >> 20)),
        T::OutputLimit => Some(format!("output limit of {} bytes", limits.output_bytes)),
        T::PidsLimit => Some(format!("pids limit of {}", limits.pids)),
        _ => None,
    };
    if let Some(l) = limit {
        return CompileClass::Failed(format!("the compiler was stopped by the compile {l}"));
    }
    match (report.termination, report.exit_code) {
        (T::Exited, Some(0)) => CompileClass::Compiled,
        _ => CompileClass::Failed(format!("the compiler failed: {}", exit_description(report))),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use sandbox::StepFailure;

    fn limits() -> RunLimits {
        RunLimits {
            cpu_time: Duration::from_millis(1000),
            wall_time: Duration::from_millis(3000),
            memory_bytes: 256 << 20,
            pids: 16,
            output_bytes: 1 << 20,
            file_size_bytes: 1 << 20,
            stack_bytes: Some(256 << 20),
        }
    }

    fn report(t: Termination, code: Option<i32>, sig: Option<i32>) -> ExitReport {
        ExitReport {
            sandbox_id: "t".into(),
            termination: t,
            exit_code: code,
            signal: sig,
            wall_time_us: 20_000,
            cpu_user_us: 9_000,
            cpu_system_us: 1_000,
            cpu_total_us: 10_000,
            memory_peak_bytes: 4 << 20,
            oom_kills: 0,
            pids_limit_hits: 0,
            stdout_bytes: Some(2),
            stderr_bytes: Some(0),
            host_uid: 100_000_000,
            host_gid: 100_000_000,
            cgroup_paths: vec![],
            error: None,
        }
    }

    fn markers() -> Vec<String> {
        [
            "std::bad_alloc",
            "MemoryError",
            "java.lang.OutOfMemoryError",
        ]
        .map(String::from)
        .to_vec()
    }

    fn class(r: &ExitReport, stderr: &str) -> RunClass {
        classify_run(r, &limits(), stderr.as_bytes(), &markers())
    }

    fn verdict(r: &ExitReport, stderr: &str) -> (Verdict, Option<TimeLimit>, String) {
        match class(r, stderr) {
            RunClass::Completed => (Verdict::Accepted, None, String::new()),
            RunClass::Failed(j) => (j.verdict, j.time_limit, j.detail),
        }
    }

    use Termination as T;
    use Verdict as V;

    #[test]
    fn exit_zero_goes_to_the_checker() {
        assert_eq!(
            class(&report(T::Exited, Some(0), None), ""),
            RunClass::Completed
        );
        // An OOM marker without a failure is only text.
        assert_eq!(
            class(&report(T::Exited, Some(0), None), "MemoryError"),
            RunClass::Completed
        );
    }

    #[test]
    fn classification_table() {
        let mut near = report(T::Signaled, None, Some(11));
        near.memory_peak_bytes = 240 << 20;
        let mut far = report(T::Signaled, None, Some(11));
        far.memory_peak_bytes = 200 << 20;
        let mut slow_exit = report(T::Exited, Some(0), None);
        slow_exit.cpu_total_us = 1_000_500;
        let mut slow_wall = report(T::Exited, Some(0), None);
        slow_wall.wall_time_us = 3_000_001;
        let mut slow_crash = report(T::Signaled, None, Some(6));
        slow_crash.cpu_total_us = 1_200_000;
        let mut exact_limit = report(T::Exited, Some(0), None);
        exact_limit.cpu_total_us = 1_000_000;
        let cases: Vec<(&str, ExitReport, &str, Verdict, Option<TimeLimit>)> = vec![
            ("cpu timeout", report(T::CpuTimeout, None, Some(9)), "", V::TimeLimitExceeded, Some(TimeLimit::Cpu)),
            ("wall timeout", report(T::WallTimeout, None, Some(9)), "", V::TimeLimitExceeded, Some(TimeLimit::Wall)),
            ("oom kill", report(T::OomKilled, None, Some(9)), "", V::MemoryLimitExceeded, None),
            ("output limit", report(T::OutputLimit, None, Some(9)), "", V::OutputLimitExceeded, None),
            ("exit 3", report(T::Exited, Some(3), None), "", V::RuntimeError, None),
            ("sigsegv", report(T::Signaled, None, Some(11)), "", V::RuntimeError, None),
            ("pids limit", report(T::PidsLimit, Some(1), None), "", V::RuntimeError, None),
            ("seccomp", report(T::SeccompKill, None, Some(31)), "", V::RuntimeError, None),
            ("bad_alloc abort", report(T::Signaled, None, Some(6)),
             "terminate called after throwing an instance of 'std::bad_alloc'\n  what():  std::bad_alloc\n",
             V::MemoryLimitExceeded, None),
            ("python MemoryError", report(T::Exited, Some(1), None),
             "Traceback (most recent call last):\n  File \"main.py\", line 1\nMemoryError\n",
             V::MemoryLimitExceeded, None),
            ("java OOM", report(T::Exited, Some(1), None),
             "Exception in thread \"main\" java.lang.OutOfMemoryError: Java heap space\n",
             V::MemoryLimitExceeded, None),
            ("segv near the memory limit", near, "", V::MemoryLimitExceeded, None),
            ("segv far from the limit", far, "", V::RuntimeError, None),
            ("exit 0 but over the cpu limit", slow_exit, "", V::TimeLimitExceeded, Some(TimeLimit::Cpu)),
            ("exit 0 but over the wall limit", slow_wall, "", V::TimeLimitExceeded, Some(TimeLimit::Wall)),
            ("crash after the cpu limit", slow_crash, "std::bad_alloc", V::TimeLimitExceeded, Some(TimeLimit::Cpu)),
            ("exactly at the cpu limit", exact_limit, "", V::Accepted, None),
        ];
        for (name, r, stderr, want, which) in cases {
            let (got, tl, detail) = verdict(&r, stderr);
            assert_eq!((got, tl), (want, which), "{name}: {detail}");
        }
    }

    #[test]
    fn sandbox_failures_are_internal_errors_never_the_programs() {
        let mut r = report(T::SetupFailed, None, None);
        r.error = Some(StepFailure {
            step: sandbox::report::Step::Exec,
            errno: Some(sandbox::report::Errno::ENOENT),
            message: "/box/main: No such file or directory".into(),
        });
        let (v, _, detail) = verdict(&r, "");
        assert_eq!(v, V::InternalError);
        assert!(detail.contains("exec failed"), "{detail}");
        // Even when the report also looks like a crash.
        let mut r = report(T::Signaled, None, Some(11));
        r.error = Some(StepFailure {
            step: sandbox::report::Step::MountExtra,
            errno: None,
            message: "x".into(),
        });
        assert_eq!(verdict(&r, "").0, V::InternalError);
    }

    #[test]
    fn details_name_signal_exit_code_and_limits() {
        assert_eq!(
            verdict(&report(T::Signaled, None, Some(11)), "").2,
            "killed by signal 11 (SIGSEGV)"
        );
        assert_eq!(
            verdict(&report(T::Exited, Some(3), None), "").2,
            "exit code 3"
        );
        let d = verdict(&report(T::PidsLimit, Some(1), None), "").2;
        assert!(d.contains("pids limit of 16"), "{d}");
        let d = verdict(&report(T::SeccompKill, None, Some(31)), "").2;
        assert!(d.contains("SIGSYS") && d.contains("seccomp"), "{d}");
        let d = verdict(&report(T::CpuTimeout, None, Some(9)), "").2;
        assert!(d.contains("1000 ms"), "{d}");
        let d = verdict(&report(T::Signaled, None, Some(6)), "x std::bad_alloc").2;
        assert!(d.contains("std::bad_alloc"), "{d}");
    }

    #[test]
    fn markers_are_searched_at_the_end_of_stderr_only() {
        let m = markers();
        let mut long = b"MemoryError\n".to_vec();
        long.extend(std::iter::repeat_n(b'x', MARKER_WINDOW));
        assert_eq!(find_marker(&long, &m), None);
        long.extend_from_slice(b"std::bad_alloc");
        assert_eq!(find_marker(&long, &m), Some("std::bad_alloc"));
        assert_eq!(find_marker(b"", &m), None);
        assert_eq!(find_marker(b"abc", &[String::new()]), None);
    }

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(9), Some("SIGKILL"));
        assert_eq!(signal_name(31), Some("SIGSYS"));
        assert_eq!(signal_name(0), None);
        assert_eq!(signal_name(64), None);
        assert_eq!(signal_name(-1), None);
    }

    #[test]
    fn verdict_names_are_screaming_snake() {
        for v in [
            V::Accepted,
            V::WrongAnswer,
            V::TimeLimitExceeded,
            V::MemoryLimitExceeded,
            V::RuntimeError,
            V::CompilationError,
            V::OutputLimitExceeded,
            V::InternalError,
        ] {
            assert_eq!(
                serde_json::to_string(&v).unwrap(),
                format!("\"{}\"", v.as_str())
            );
            let back: Verdict = serde_json::from_str(&format!("\"{v}\"")).unwrap();
            assert_eq!(back, v);
        }
        assert_eq!(serde_json::to_string(&TimeLimit::Cpu).unwrap(), "\"cpu\"");
        assert_eq!(serde_json::to_string(&TimeLimit::Wall).unwrap(), "\"wall\"");
    }

    #[test]
    fn compile_classification() {
        let l = limits();
        assert_eq!(
            classify_compile(&report(T::Exited, Some(0), None), &l),
            CompileClass::Compiled
        );
        assert!(matches!(
            classify_compile(&report(T::Exited, Some(1), None), &l),
            CompileClass::Failed(d) if d.contains("exit code 1")
        ));
        assert!(matches!(
            classify_compile(&report(T::CpuTimeout, None, Some(9)), &l),
            CompileClass::Failed(d) if d.contains("cpu time limit")
        ));
        assert!(matches!(
            classify_compile(&report(T::OomKilled, None, Some(9)), &l),
            CompileClass::Failed(d) if d.contains("memory limit")
        ));
        let mut r = report(T::SetupFailed, None, None);
        r.error = Some(StepFailure {
            step: sandbox::report::Step::Exec,
            errno: Some(sandbox::report::Errno::ENOENT),
            message: "gcc: not found".into(),
        });
        assert!(matches!(
            classify_compile(&r, &l),
            CompileClass::Internal(_)
        ));
    }
}
