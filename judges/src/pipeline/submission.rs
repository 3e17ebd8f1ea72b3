//! What a submission is: its source, language, tests and limits, the
//! ranges they must fall in, and their checks before anything runs.

use super::*;

/// Documented ranges of a submission (docs/judges.md, "Limits").
pub mod ranges {
    use std::ops::RangeInclusive;
    pub const CPU_TIME_MS: RangeInclusive<u64> = 50..=60_000;
    pub const WALL_TIME_MS: RangeInclusive<u64> = 50..=180_000;
    pub const MEMORY_MB: RangeInclusive<u64> = 16..=8_192;
    /// Per stream. 256 MiB: four times the largest expected output, so a
    /// right answer with generous whitespace fits; far above what judges
    /// allow (ICPC's and Kattis's default is 8 MiB, Judge0's largest 4 MiB).
    /// Each running test may leave twice this on the daemon's disk until
    /// it is compared (docs/judges.md, "Memory and disk").
    pub const OUTPUT_MB: RangeInclusive<u64> = 1..=256;
    pub const TESTS: RangeInclusive<usize> = 1..=1_000;
    /// Bytes of a source (submission or custom checker).
    pub const SOURCE_BYTES: usize = 1 << 20;
    /// Bytes of one test's stdin, and of one expected output.
    pub const TEST_BYTES: usize = 64 << 20;
}

/// Defaults of [`Limits`].
pub mod limit_defaults {
    pub const CPU_TIME_MS: u64 = 2_000;
    pub const MEMORY_MB: u64 = 256;
    pub const OUTPUT_MB: u64 = 16;
}

/// The wall-time limit when a submission gives none: twice the CPU time
/// plus a second (startup of the JVM and of Node, scheduling).
pub fn default_wall_time_ms(cpu_time_ms: u64) -> u64 {
    cpu_time_ms.saturating_mul(2).saturating_add(1_000)
}

/// Bytes of stdout and of stderr kept in a test's result, at most.
pub const RESULT_OUTPUT_BYTES: usize = 64 << 10;

/// Bytes of output (stdout and stderr of all tests together) a
/// submission's result keeps: a submission of many tests keeps less of
/// each ([`kept_output_bytes`]).
pub const RESULT_OUTPUT_BUDGET: usize = 2 << 20;

/// Bytes of a custom checker's output kept in a test's result, at most.
pub const CHECKER_OUTPUT_BYTES: usize = 4 << 10;

/// Bytes of a program's output read at once when comparing it.
pub const COMPARE_CHUNK: usize = 64 << 10;

/// Bytes of each stream (stdout, stderr) a test's result keeps, for a
/// submission of `tests` tests: [`RESULT_OUTPUT_BYTES`], or less so that
/// all of them fit in [`RESULT_OUTPUT_BUDGET`] (1 KiB each for 1000
/// tests). The same for every test, whichever finishes first.
pub fn kept_output_bytes(tests: usize) -> usize {
    (RESULT_OUTPUT_BUDGET / (2 * tests.max(1))).min(RESULT_OUTPUT_BYTES)
}

/// A compile is killed past this much output per stream (the result keeps
/// the language's `output_kb`).
pub const COMPILE_OUTPUT_LIMIT: u64 = 1 << 20;

/// RLIMIT_FSIZE of a compile (the artifact).
pub const COMPILE_FILE_SIZE: u64 = 256 << 20;

/// Limits of a custom checker's run (its language's extra memory and pids
/// are added as for a submission).
pub mod checker_limits {
    pub const CPU_TIME_MS: u64 = 10_000;
    pub const WALL_TIME_MS: u64 = 20_000;
    pub const MEMORY_MB: u64 = 512;
    pub const OUTPUT_BYTES: u64 = 64 << 10;
}

/// One test.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    #[serde(default)]
    pub stdin: String,
    /// `None`: the run only has to succeed (nothing is compared).
    #[serde(default)]
    pub expected_output: Option<String>,
}

/// Limits of every test of a submission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub cpu_time_ms: u64,
    /// Default: [`default_wall_time_ms`] of the CPU time.
    pub wall_time_ms: Option<u64>,
    /// Memory of the program; a language's own overhead (the JVM) is
    /// added on top.
    pub memory_mb: u64,
    /// Bytes per stream (stdout, stderr) in MiB.
    pub output_mb: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            cpu_time_ms: limit_defaults::CPU_TIME_MS,
            wall_time_ms: None,
            memory_mb: limit_defaults::MEMORY_MB,
            output_mb: limit_defaults::OUTPUT_MB,
        }
    }
}

impl Limits {
    /// The wall-time limit in effect.
    pub fn wall_time_ms(&self) -> u64 {
        self.wall_time_ms.unwrap_or_else(|| {
            default_wall_time_ms(self.cpu_time_ms).min(*ranges::WALL_TIME_MS.end())
        })
    }
}

/// What to judge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submission {
    /// A name of the language table.
    pub language: String,
    pub source: String,
    pub tests: Vec<TestCase>,
    #[serde(default)]
    pub limits: Limits,
    /// Default: `tokens`.
    #[serde(default)]
    pub checker: Checker,
    /// Tests after the first failure are skipped (not started once the
    /// failure is known; those already running finish).
    #[serde(default)]
    pub stop_on_first_failure: bool,
}

pub(super) fn check_range(
    field: &'static str,
    v: u64,
    r: RangeInclusive<u64>,
) -> Result<(), SubmissionError> {
    if r.contains(&v) {
        Ok(())
    } else {
        Err(SubmissionError::OutOfRange {
            field,
            value: v,
            min: *r.start(),
            max: *r.end(),
        })
    }
}

pub(super) fn find_language<'l>(
    languages: &'l Languages,
    name: &str,
) -> Result<&'l Language, SubmissionError> {
    let lang = languages
        .get(name)
        .ok_or_else(|| SubmissionError::UnknownLanguage {
            name: name.to_string(),
            known: languages.names().join(", "),
        })?;
    if let Availability::Unavailable { reason } = &lang.availability {
        return Err(SubmissionError::Unavailable {
            name: name.to_string(),
            reason: reason.clone(),
        });
    }
    Ok(lang)
}

impl Submission {
    /// Checks the submission against the table and the documented ranges.
    pub fn validate(&self, languages: &Languages) -> Result<(), SubmissionError> {
        find_language(languages, &self.language)?;
        if self.tests.is_empty() {
            return Err(SubmissionError::NoTests);
        }
        if !ranges::TESTS.contains(&self.tests.len()) {
            return Err(SubmissionError::TooManyTests {
                count: self.tests.len(),
                max: *ranges::TESTS.end(),
            });
        }
        let l = &self.limits;
        check_range("limits.cpu_time_ms", l.cpu_time_ms, ranges::CPU_TIME_MS)?;
        if let Some(w) = l.wall_time_ms {
            check_range("limits.wall_time_ms", w, ranges::WALL_TIME_MS)?;
        }
        check_range("limits.memory_mb", l.memory_mb, ranges::MEMORY_MB)?;
        check_range("limits.output_mb", l.output_mb, ranges::OUTPUT_MB)?;
        let size = |what: String, len: usize, max: usize| {
            if len > max {
                Err(SubmissionError::TooLarge { what, len, max })
            } else {
                Ok(())
            }
        };
        size("source".into(), self.source.len(), ranges::SOURCE_BYTES)?;
        for (i, t) in self.tests.iter().enumerate() {
            size(
                format!("tests[{i}].stdin"),
                t.stdin.len(),
                ranges::TEST_BYTES,
            )?;
            if let Some(e) = &t.expected_output {
                size(
                    format!("tests[{i}].expected_output"),
                    e.len(),
                    ranges::TEST_BYTES,
                )?;
            }
        }
        match &self.checker {
            Checker::Float { tolerance } => {
                if !tolerance.is_finite() || !(0.0..=compare::TOLERANCE_MAX).contains(tolerance) {
                    return Err(SubmissionError::Tolerance {
                        value: *tolerance,
                        max: compare::TOLERANCE_MAX,
                    });
                }
            }
            Checker::Custom { language, source } => {
                find_language(languages, language)?;
                size("checker.source".into(), source.len(), ranges::SOURCE_BYTES)?;
            }
            Checker::Exact | Checker::Tokens => {}
        }
        Ok(())
    }
}
