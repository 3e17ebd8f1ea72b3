//! Judge0's statuses (ids 1–14 with its descriptions) and which one a
//! submission of ours has, with the `message` Judge0 would give.
//!
//! The rules (docs/judge0.md, "Statuses"): our verdicts map one to one
//! where Judge0 has the status; a runtime error maps by the signal the
//! program died of (SIGSEGV 7, SIGXFSZ 8, SIGFPE 9, SIGABRT 10, any other
//! 12) or by its exit code (11, NZEC). Judge0 has no status for memory or
//! output limits: `MEMORY_LIMIT_EXCEEDED` is 11, what Judge0 reports for
//! a program the memory limit ended, and `OUTPUT_LIMIT_EXCEEDED` is 8,
//! Judge0's status for output over `max_file_size`; `message` says which
//! limit it was.

use judges::{TestResult, TimeLimit, Verdict};
use serde::Serialize;

use crate::judge::SubmissionView;

/// A Judge0 status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Status {
    pub id: u8,
    pub description: &'static str,
}

pub const IN_QUEUE: u8 = 1;
pub const PROCESSING: u8 = 2;
pub const ACCEPTED: u8 = 3;
pub const WRONG_ANSWER: u8 = 4;
pub const TIME_LIMIT_EXCEEDED: u8 = 5;
pub const COMPILATION_ERROR: u8 = 6;
pub const SIGSEGV: u8 = 7;
pub const SIGXFSZ: u8 = 8;
pub const SIGFPE: u8 = 9;
pub const SIGABRT: u8 = 10;
pub const NZEC: u8 = 11;
pub const OTHER: u8 = 12;
pub const INTERNAL_ERROR: u8 = 13;
pub const EXEC_FORMAT_ERROR: u8 = 14;

/// Every status, as `GET /statuses` lists them (Judge0 API docs).
pub const STATUSES: [Status; 14] = [
    Status {
        id: IN_QUEUE,
        description: "In Queue",
    },
    Status {
        id: PROCESSING,
        description: "Processing",
    },
    Status {
        id: ACCEPTED,
        description: "Accepted",
    },
    Status {
        id: WRONG_ANSWER,
        description: "Wrong Answer",
    },
    Status {
        id: TIME_LIMIT_EXCEEDED,
        description: "Time Limit Exceeded",
    },
    Status {
        id: COMPILATION_ERROR,
        description: "Compilation Error",
    },
    Status {
        id: SIGSEGV,
        description: "Runtime Error (SIGSEGV)",
    },
    Status {
        id: SIGXFSZ,
        description: "Runtime Error (SIGXFSZ)",
    },
    Status {
        id: SIGFPE,
        description: "Runtime Error (SIGFPE)",
    },
    Status {
        id: SIGABRT,
        description: "Runtime Error (SIGABRT)",
    },
    Status {
        id: NZEC,
        description: "Runtime Error (NZEC)",
    },
    Status {
        id: OTHER,
        description: "Runtime Error (Other)",
    },
    Status {
        id: INTERNAL_ERROR,
        description: "Internal Error",
    },
    Status {
        id: EXEC_FORMAT_ERROR,
        description: "Exec Format Error",
    },
];

/// The status with this id (1–14; anything else is Internal Error).
pub fn by_id(id: u8) -> Status {
    STATUSES
        .iter()
        .copied()
        .find(|s| s.id == id)
        .unwrap_or(STATUSES[INTERNAL_ERROR as usize - 1])
}

/// A submission's status and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub status: Status,
    /// What ended the run, in isolate's words where Judge0 passes those
    /// on ("Exited with error status 1"); ours for the limits Judge0 has
    /// no status for; the judge's reason for an internal error.
    pub message: Option<String>,
}

impl Outcome {
    fn new(id: u8, message: Option<String>) -> Outcome {
        Outcome {
            status: by_id(id),
            message,
        }
    }
}

/// The test a Judge0 submission is: the first (and only) one.
pub fn the_test(view: &SubmissionView) -> Option<&TestResult> {
    view.report.as_ref().and_then(|r| r.tests.first())
}

/// The status of a submission and its message.
pub fn outcome(view: &SubmissionView) -> Outcome {
    let report = match (view.status, &view.report) {
        ("done", Some(r)) => r,
        ("running", _) => return Outcome::new(PROCESSING, None),
        // Done without a report cannot be stored; queued otherwise.
        _ => return Outcome::new(IN_QUEUE, None),
    };
    let test = report.tests.first().filter(|t| !t.skipped);
    // The test's own words, else the submission's ("test 1: ...").
    let detail = test
        .and_then(|t| t.detail.clone())
        .or_else(|| report.detail.clone());
    let time_limit = test.and_then(|t| t.time_limit).or(report.time_limit);
    classify(report.verdict, time_limit, detail, test)
}

/// The status for a verdict and the test it came from (docs/judge0.md,
/// "Statuses").
pub fn classify(
    verdict: Verdict,
    time_limit: Option<TimeLimit>,
    detail: Option<String>,
    test: Option<&TestResult>,
) -> Outcome {
    let with = |what: &str| match &detail {
        Some(d) => format!("{what} ({d})"),
        None => what.to_string(),
    };
    match verdict {
        Verdict::Accepted => Outcome::new(ACCEPTED, None),
        Verdict::WrongAnswer => Outcome::new(WRONG_ANSWER, None),
        // isolate's two messages.
        Verdict::TimeLimitExceeded => Outcome::new(
            TIME_LIMIT_EXCEEDED,
            Some(match time_limit {
                Some(TimeLimit::Wall) => "Time limit exceeded (wall clock)".into(),
                _ => "Time limit exceeded".into(),
            }),
        ),
        Verdict::CompilationError => Outcome::new(COMPILATION_ERROR, None),
        Verdict::MemoryLimitExceeded => Outcome::new(NZEC, Some(with("Memory limit exceeded"))),
        Verdict::OutputLimitExceeded => Outcome::new(SIGXFSZ, Some(with("Output limit exceeded"))),
        Verdict::RuntimeError => runtime_error(test, detail),
        Verdict::InternalError => {
            // execve's ENOEXEC: the program is not one the kernel can run.
            let exec_format = detail.as_deref().is_some_and(|d| {
                d.contains("ENOEXEC") || d.to_ascii_lowercase().contains("exec format error")
            });
            let id = if exec_format {
                EXEC_FORMAT_ERROR
            } else {
                INTERNAL_ERROR
            };
            Outcome::new(id, detail)
        }
    }
}

fn runtime_error(test: Option<&TestResult>, detail: Option<String>) -> Outcome {
    match (test.and_then(|t| t.signal), test.and_then(|t| t.exit_code)) {
        (Some(sig), _) => {
            let id = match sig {
                libc::SIGSEGV => SIGSEGV,
                libc::SIGXFSZ => SIGXFSZ,
                libc::SIGFPE => SIGFPE,
                libc::SIGABRT => SIGABRT,
                _ => OTHER,
            };
            Outcome::new(id, Some(format!("Caught fatal signal {sig}")))
        }
        (None, Some(code)) => Outcome::new(NZEC, Some(format!("Exited with error status {code}"))),
        (None, None) => Outcome::new(OTHER, detail),
    }
}
