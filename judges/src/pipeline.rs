//! Judging one submission: the source is written into a fresh box
//! directory, compiled once in a sandbox (the box read-write), then every
//! test runs in a fresh sandbox of its own (the box read-only, a fresh
//! /tmp, stdin from a file outside every mount), up to `slots` at a time.
//! Expected outputs never enter a sandbox of the submission; a custom
//! checker sees them in its own read-only mount.
//!
//! A program's output is never read whole into memory: the runner leaves
//! it in a file, the built-in checkers compare it in pieces
//! ([`compare::Stream`]), a custom checker gets a copy of the file, and
//! the result keeps a bounded prefix ([`kept_output_bytes`]).
//!
//! The work directory is removed on every path (a guard, so also when the
//! future is dropped).

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use serde::{Deserialize, Serialize};

use sandbox::Termination;

use crate::cache::CompileCache;
use crate::compare::{self, Check, Checker, CustomStatus};
use crate::error::JudgeError;
use crate::language::{Availability, Language, Languages, Vars};
use crate::runner::{Job, Mount, Output, RunLimits, RunOutput, Runner};
use crate::verdict::{self, CompileClass, RunClass, TimeLimit, Verdict};

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

#[derive(thiserror::Error, Debug, PartialEq)]
pub enum SubmissionError {
    #[error("unknown language {name:?} (known: {known})")]
    UnknownLanguage { name: String, known: String },
    #[error("language {name:?} is unavailable here: {reason}")]
    Unavailable { name: String, reason: String },
    #[error("no tests: give at least one")]
    NoTests,
    #[error("{count} tests: at most {max}")]
    TooManyTests { count: usize, max: usize },
    #[error("{field} = {value} is out of range {min}..={max}")]
    OutOfRange {
        field: &'static str,
        value: u64,
        min: u64,
        max: u64,
    },
    #[error("{what} is {len} bytes: at most {max}")]
    TooLarge {
        what: String,
        len: usize,
        max: usize,
    },
    #[error("checker.tolerance = {value} must be a number in 0..={max}")]
    Tolerance { value: f64, max: f64 },
}

fn check_range(field: &'static str, v: u64, r: RangeInclusive<u64>) -> Result<(), SubmissionError> {
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

fn find_language<'l>(
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

/// The result of one test.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestResult {
    pub index: usize,
    /// `None` when skipped.
    pub verdict: Option<Verdict>,
    pub skipped: bool,
    /// Which limit, for `TIME_LIMIT_EXCEEDED`.
    pub time_limit: Option<TimeLimit>,
    /// Why, in a few words (signal, exit code, limit, checker's reason).
    pub detail: Option<String>,
    /// How the sandbox saw the run end.
    pub termination: Option<Termination>,
    /// CPU time of the whole process tree (cgroup).
    pub cpu_time_ms: u64,
    pub wall_time_ms: u64,
    /// Peak memory of the sandbox (cgroup).
    pub memory_kb: u64,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// The first [`kept_output_bytes`] (lossy UTF-8, cut at a character).
    pub stdout: String,
    /// Not all of the output is here (cut here, or at the output limit).
    pub stdout_truncated: bool,
    pub stderr: String,
    pub stderr_truncated: bool,
    /// What a custom checker printed.
    pub checker_output: Option<String>,
}

impl TestResult {
    fn skipped(index: usize) -> TestResult {
        TestResult {
            index,
            verdict: None,
            skipped: true,
            time_limit: None,
            detail: None,
            termination: None,
            cpu_time_ms: 0,
            wall_time_ms: 0,
            memory_kb: 0,
            exit_code: None,
            signal: None,
            stdout: String::new(),
            stdout_truncated: false,
            stderr: String::new(),
            stderr_truncated: false,
            checker_output: None,
        }
    }

    fn internal(index: usize, detail: String) -> TestResult {
        TestResult {
            verdict: Some(Verdict::InternalError),
            skipped: false,
            detail: Some(detail),
            ..TestResult::skipped(index)
        }
    }

    fn failed(&self) -> bool {
        self.verdict.is_some_and(|v| v != Verdict::Accepted)
    }
}

/// The result of a submission.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The first failing test's verdict in test order, else `ACCEPTED`;
    /// `COMPILATION_ERROR` or `INTERNAL_ERROR` when no test ran.
    pub verdict: Verdict,
    pub time_limit: Option<TimeLimit>,
    /// Why, for a verdict other than `ACCEPTED` ("test 2: exit code 3").
    pub detail: Option<String>,
    /// The compiler's stdout and stderr, when there is a compile step.
    pub compile_output: Option<String>,
    pub compile_output_truncated: bool,
    /// The compiled program came from the compile cache.
    #[serde(default)]
    pub compile_cached: bool,
    pub tests: Vec<TestResult>,
}

/// Progress of a judgement, in order: `compile_start`, `compile_done`
/// (compiled languages only), `test_start`/`test_done` per test (skipped
/// tests get a `test_done` only), `done`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    CompileStart,
    CompileDone { ok: bool },
    TestStart { index: usize },
    TestDone { index: usize, result: TestResult },
    Done { verdict: Verdict },
}

/// Slots when the caller gives 0: the number of CPUs.
pub fn default_slots() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// At most `max` bytes of text from the start of `bytes` (lossy UTF-8:
/// an invalid byte becomes three, so the text is cut again, at a
/// character), and whether anything was left out.
fn lossy_prefix(bytes: &[u8], max: usize) -> (String, bool) {
    let mut text = String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).into_owned();
    let mut cut = bytes.len() > max;
    if text.len() > max {
        let mut at = max;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.truncate(at);
        cut = true;
    }
    (text, cut)
}

/// The first `max` bytes of a run's stdout followed by its stderr, as
/// text, and whether anything was left out.
fn joined_prefix(out: &RunOutput, max: usize) -> std::io::Result<(String, bool)> {
    let mut text = out.stdout.prefix(max)?;
    let room = max - text.len();
    text.extend(out.stderr.prefix(room)?);
    let (s, cut) = lossy_prefix(&text, max);
    Ok((s, cut || out.stdout.len() + out.stderr.len() > max as u64))
}

/// Feeds `out` to a built-in checker in pieces of [`COMPARE_CHUNK`],
/// until it ends or a wrong answer is certain.
async fn compare_output(mut s: compare::Stream<'_>, out: &Output) -> std::io::Result<Check> {
    let mut buf = vec![0; COMPARE_CHUNK];
    let mut offset = 0;
    while !s.decided() {
        let (b, n) = out.read_chunk(offset, buf).await;
        buf = b;
        let n = n?;
        if n == 0 {
            break;
        }
        s.feed(&buf[..n]);
        offset += n as u64;
    }
    Ok(s.finish())
}

fn round_ms(us: u64) -> u64 {
    us.saturating_add(500) / 1000
}

fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), std::io::Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.write_all(data)
}

/// Makes `dir` (0755) when given, then writes the files, off the async
/// threads (outputs and expected outputs can be large).
async fn write_files(
    dir: Option<PathBuf>,
    files: Vec<(PathBuf, Vec<u8>, u32)>,
) -> Result<(), std::io::Error> {
    tokio::task::spawn_blocking(move || {
        if let Some(d) = &dir {
            make_dir(d, 0o755)?;
        }
        files
            .iter()
            .try_for_each(|(path, data, mode)| write_file(path, data, *mode))
    })
    .await
    .map_err(std::io::Error::other)?
}

fn make_dir(path: &Path, mode: u32) -> Result<(), std::io::Error> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().mode(mode).create(path)?;
    // The umask may have taken bits the sandbox's uid needs.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Owner (uid and gid) of a box on the host: `nobody`. The sandbox refuses
/// a read-write bind of a root-owned directory (its owner's rights would
/// become the sandbox's, docs/limits.md), so the box is handed to an id
/// that owns nothing else; the compile's files belong to it on the host.
const BOX_OWNER: u32 = 65534;

/// Gives a new box to [`BOX_OWNER`]. Not running as root, the box is the
/// caller's already (and not root's), which is just as good.
fn give_box_away(dir: &Path) -> Result<(), std::io::Error> {
    match std::os::unix::fs::chown(dir, Some(BOX_OWNER), Some(BOX_OWNER)) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Ok(()),
        r => r,
    }
}

/// A compiled (or written) program in its box directory.
struct Program<'a> {
    lang: &'a Language,
    box_dir: PathBuf,
}

struct Compiled {
    output: String,
    truncated: bool,
    outcome: Result<(), (Verdict, String)>,
    /// Restored from the compile cache.
    cached: bool,
}

/// Writes `source` into `box_dir` and compiles it there (when the language
/// has a compile step).
async fn prepare(
    runner: &dyn Runner,
    lang: &Language,
    source: &str,
    box_dir: &Path,
    on_compile: &(dyn Fn(Option<bool>) + Send + Sync),
    cache: Option<(&CompileCache, &str)>,
) -> Result<Option<Compiled>, JudgeError> {
    let key = match (cache, &lang.compile) {
        (Some((c, scope)), Some(_)) => Some((c, CompileCache::key(scope, lang, source))),
        _ => None,
    };
    if let Some((c, key)) = &key {
        if let Some(output) = c.restore(key, box_dir) {
            on_compile(None);
            on_compile(Some(true));
            return Ok(Some(Compiled {
                output,
                truncated: false,
                outcome: Ok(()),
                cached: true,
            }));
        }
    }
    let compiled = compile(runner, lang, source, box_dir, on_compile).await?;
    if let (Some((c, key)), Some(done)) = (&key, &compiled) {
        if done.outcome.is_ok() && !done.truncated {
            c.store(key, box_dir, &done.output);
        }
    }
    Ok(compiled)
}

async fn compile(
    runner: &dyn Runner,
    lang: &Language,
    source: &str,
    box_dir: &Path,
    on_compile: &(dyn Fn(Option<bool>) + Send + Sync),
) -> Result<Option<Compiled>, JudgeError> {
    // World-writable: the compile step mounts it read-write and the
    // sandbox normally sees it as its own through an idmapped bind; on a
    // filesystem that cannot be idmapped (overlayfs, NFS) the bind stays
    // plain and uid 1000 inside must still be able to write the program.
    // Only the sandbox it is mounted into can reach it (its parent is a
    // 0700 work dir), and tests get it read-only. Owned by nobody, not
    // root: a root-owned rw bind is refused.
    make_dir(box_dir, 0o777)
        .and_then(|()| give_box_away(box_dir))
        .map_err(|source| JudgeError::WorkDir {
            path: box_dir.to_path_buf(),
            source,
        })?;
    let src = box_dir.join(&lang.source_file);
    write_file(&src, source.as_bytes(), 0o644).map_err(|source| JudgeError::Write {
        path: src.clone(),
        source,
    })?;
    let Some(c) = &lang.compile else {
        return Ok(None);
    };
    on_compile(None);
    let vars = Vars {
        memory_mb: c.memory_mb,
        stack_bytes: c.memory_mb << 20,
    };
    let limits = RunLimits {
        cpu_time: Duration::from_millis(c.cpu_time_ms),
        wall_time: Duration::from_millis(c.wall_time_ms),
        memory_bytes: c.memory_mb << 20,
        pids: c.pids,
        output_bytes: COMPILE_OUTPUT_LIMIT.max(c.output_kb << 10),
        file_size_bytes: COMPILE_FILE_SIZE,
        stack_bytes: None,
    };
    let job = Job {
        argv: c
            .argv
            .iter()
            .map(|a| crate::language::expand(a, &vars))
            .collect(),
        env: lang.job_env(&vars, Some(&c.env)),
        cwd: "/box".into(),
        image: lang.image.clone(),
        mounts: vec![Mount {
            host: box_dir.to_path_buf(),
            dest: "/box".into(),
            writable: true,
        }],
        stdin: None,
        limits: limits.clone(),
    };
    let compiled = match runner.run(job).await {
        Err(e) => Compiled {
            output: String::new(),
            truncated: false,
            outcome: Err((
                Verdict::InternalError,
                format!("the compile could not run: {e}"),
            )),
            cached: false,
        },
        Ok(out) => {
            let outcome = match verdict::classify_compile(&out.report, &limits) {
                CompileClass::Compiled => Ok(()),
                CompileClass::Failed(d) => Err((Verdict::CompilationError, d)),
                CompileClass::Internal(d) => Err((Verdict::InternalError, d)),
            };
            match joined_prefix(&out, (c.output_kb << 10) as usize) {
                Ok((output, cut)) => Compiled {
                    output,
                    truncated: cut || out.stdout_truncated || out.stderr_truncated,
                    outcome,
                    cached: false,
                },
                Err(e) => Compiled {
                    output: String::new(),
                    truncated: false,
                    outcome: Err((
                        Verdict::InternalError,
                        format!("read the compiler's output: {e}"),
                    )),
                    cached: false,
                },
            }
        }
    };
    on_compile(Some(compiled.outcome.is_ok()));
    Ok(Some(compiled))
}

/// Everything a test needs, shared by the tests running at once.
struct Context<'a> {
    runner: &'a dyn Runner,
    submission: &'a Submission,
    program: Program<'a>,
    checker: Option<Program<'a>>,
    tests_dir: PathBuf,
    limits: RunLimits,
    vars: Vars,
    /// Bytes of each stream a result keeps ([`kept_output_bytes`]).
    keep: usize,
}

impl Context<'_> {
    fn run_job(&self, stdin: PathBuf) -> Job {
        let lang = self.program.lang;
        Job {
            argv: lang
                .run
                .iter()
                .map(|a| crate::language::expand(a, &self.vars))
                .collect(),
            env: lang.job_env(&self.vars, None),
            cwd: "/box".into(),
            image: lang.image.clone(),
            mounts: vec![Mount {
                host: self.program.box_dir.clone(),
                dest: "/box".into(),
                writable: false,
            }],
            stdin: Some(stdin),
            limits: self.limits.clone(),
        }
    }

    async fn run_test(&self, index: usize) -> TestResult {
        let case = &self.submission.tests[index];
        let stdin = self.tests_dir.join(format!("{index}.in"));
        // 0600: the program reads it through the fd it is given; it cannot
        // reopen it by name.
        let files = vec![(stdin.clone(), case.stdin.clone().into_bytes(), 0o600)];
        if let Err(e) = write_files(None, files).await {
            return TestResult::internal(index, format!("write {}: {e}", stdin.display()));
        }
        let out = self.runner.run(self.run_job(stdin.clone())).await;
        let _ = std::fs::remove_file(&stdin);
        let out = match out {
            Ok(o) => o,
            Err(e) => return TestResult::internal(index, format!("the run failed: {e}")),
        };
        // Bounded reads: the kept prefixes and the end of stderr.
        let read = result_of(index, &out, self.keep)
            .and_then(|r| Ok((r, out.stderr.tail(verdict::MARKER_WINDOW)?)));
        let (mut result, stderr_tail) = match read {
            Ok(r) => r,
            Err(e) => {
                return TestResult::internal(index, format!("read the program's output: {e}"))
            }
        };
        let class = verdict::classify_run(
            &out.report,
            &self.limits,
            &stderr_tail,
            &self.program.lang.oom_markers,
        );
        // Only stdout is compared; the rest goes now (with the daemon's
        // slot once stdout goes too: see `check`).
        let RunOutput { stdout, stderr, .. } = out;
        drop(stderr);
        match class {
            RunClass::Failed(j) => {
                result.verdict = Some(j.verdict);
                result.time_limit = j.time_limit;
                result.detail = Some(j.detail);
            }
            RunClass::Completed => {
                let (v, detail, checker_output) = self.check(index, stdout).await;
                result.verdict = Some(v);
                result.detail = detail;
                result.checker_output = checker_output;
            }
        }
        result
    }

    /// Takes the output (and with it, in the daemon, the run's slot: see
    /// [`Output::with_lease`]), so that it is gone before a custom
    /// checker waits for a slot of its own.
    async fn check(
        &self,
        index: usize,
        actual: Output,
    ) -> (Verdict, Option<String>, Option<String>) {
        let case = &self.submission.tests[index];
        let checker = &self.submission.checker;
        if let Some(stream) = case
            .expected_output
            .as_ref()
            .and_then(|e| compare::Stream::new(checker, e.as_bytes()))
        {
            return match compare_output(stream, &actual).await {
                Ok(Check::Accepted) => (Verdict::Accepted, None, None),
                Ok(Check::WrongAnswer(why)) => (Verdict::WrongAnswer, Some(why), None),
                Err(e) => (
                    Verdict::InternalError,
                    Some(format!("read the program's output: {e}")),
                    None,
                ),
            };
        }
        match &self.checker {
            Some(program) => self.run_checker(program, index, actual).await,
            // No expected output: the run only had to succeed.
            None => (Verdict::Accepted, None, None),
        }
    }

    async fn run_checker(
        &self,
        checker: &Program<'_>,
        index: usize,
        actual: Output,
    ) -> (Verdict, Option<String>, Option<String>) {
        let internal = |d: String| (Verdict::InternalError, Some(d), None);
        let case = &self.submission.tests[index];
        let dir = self.tests_dir.join(format!("check-{index}"));
        let expected = case.expected_output.as_deref().unwrap_or("");
        let files = [
            ("input", case.stdin.as_bytes()),
            ("expected", expected.as_bytes()),
        ]
        .map(|(name, data)| (dir.join(name), data.to_vec(), 0o644))
        .to_vec();
        let mut written = write_files(Some(dir.clone()), files).await;
        if written.is_ok() {
            // The program's output, file to file (it may be as large as
            // the output limit); then the run's slot is free.
            let path = dir.join("actual");
            written = tokio::task::spawn_blocking(move || actual.copy_to(&path, 0o644))
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r);
        }
        if let Err(e) = written {
            let _ = std::fs::remove_dir_all(&dir);
            return internal(format!(
                "write the checker's files in {}: {e}",
                dir.display()
            ));
        }
        let lang = checker.lang;
        let memory = (checker_limits::MEMORY_MB + lang.extra_memory_mb) << 20;
        let vars = Vars {
            memory_mb: checker_limits::MEMORY_MB,
            stack_bytes: checker_limits::MEMORY_MB << 20,
        };
        let mut argv: Vec<String> = lang
            .run
            .iter()
            .map(|a| crate::language::expand(a, &vars))
            .collect();
        argv.extend(["/check/input", "/check/expected", "/check/actual"].map(String::from));
        let limits = RunLimits {
            cpu_time: Duration::from_millis(checker_limits::CPU_TIME_MS),
            wall_time: Duration::from_millis(checker_limits::WALL_TIME_MS),
            memory_bytes: memory,
            pids: lang.pids,
            output_bytes: checker_limits::OUTPUT_BYTES,
            file_size_bytes: 1 << 20,
            stack_bytes: Some(vars.stack_bytes),
        };
        let job = Job {
            argv,
            env: lang.job_env(&vars, None),
            cwd: "/box".into(),
            image: lang.image.clone(),
            mounts: vec![
                Mount {
                    host: checker.box_dir.clone(),
                    dest: "/box".into(),
                    writable: false,
                },
                Mount {
                    host: dir.clone(),
                    dest: "/check".into(),
                    writable: false,
                },
            ],
            stdin: None,
            limits: limits.clone(),
        };
        let out = self.runner.run(job).await;
        let _ = std::fs::remove_dir_all(&dir);
        let out = match out {
            Ok(o) => o,
            Err(e) => return internal(format!("the checker could not run: {e}")),
        };
        let keep = CHECKER_OUTPUT_BYTES.min(self.keep);
        let message = joined_prefix(&out, keep)
            .ok()
            .map(|(m, _)| m)
            .filter(|m| !m.trim().is_empty());
        // The checker's own limits and crashes are the checker's fault.
        if let RunClass::Failed(j) = verdict::classify_run(&out.report, &limits, &[], &[]) {
            if !(j.verdict == Verdict::RuntimeError
                && out.report.termination == Termination::Exited
                && out.report.exit_code == Some(1))
            {
                return (
                    Verdict::InternalError,
                    Some(format!("the checker failed: {}", j.detail)),
                    message,
                );
            }
        }
        match compare::custom_status(out.report.exit_code) {
            CustomStatus::Accepted => (Verdict::Accepted, None, message),
            CustomStatus::WrongAnswer => (
                Verdict::WrongAnswer,
                Some("the checker rejected the output".into()),
                message,
            ),
            CustomStatus::Broken => (
                Verdict::InternalError,
                Some(format!(
                    "the checker failed: {}",
                    verdict::exit_description(&out.report)
                )),
                message,
            ),
        }
    }
}

/// A test's result from its run, before the verdict: `keep` bytes of
/// each stream.
fn result_of(index: usize, out: &RunOutput, keep: usize) -> std::io::Result<TestResult> {
    let r = &out.report;
    let (stdout, so_cut) = lossy_prefix(&out.stdout.prefix(keep + 1)?, keep);
    let (stderr, se_cut) = lossy_prefix(&out.stderr.prefix(keep + 1)?, keep);
    Ok(TestResult {
        index,
        verdict: None,
        skipped: false,
        time_limit: None,
        detail: None,
        termination: Some(r.termination),
        cpu_time_ms: round_ms(r.cpu_total_us),
        wall_time_ms: round_ms(r.wall_time_us),
        memory_kb: r.memory_peak_bytes / 1024,
        exit_code: r.exit_code,
        signal: r.signal,
        stdout,
        stdout_truncated: so_cut || out.stdout_truncated,
        stderr,
        stderr_truncated: se_cut || out.stderr_truncated,
        checker_output: None,
    })
}

/// Judges `submission`: validates it, compiles once, runs every test in a
/// fresh sandbox through `runner` (up to `slots` at once; 0 = the number
/// of CPUs) and returns the report. `work_dir` must exist; a fresh
/// directory is made in it and removed before returning (also on errors
/// and when the future is dropped). Needs a tokio runtime (file writes).
///
/// Failures of the sandbox or the runner are verdicts (`INTERNAL_ERROR`)
/// inside the report; an `Err` means no report: the submission is invalid,
/// or the work directory could not be made.
pub async fn judge(
    runner: &dyn Runner,
    languages: &Languages,
    submission: &Submission,
    work_dir: &Path,
    slots: usize,
    progress: impl Fn(Event) + Send + Sync,
) -> Result<Report, JudgeError> {
    judge_dyn(
        runner, languages, submission, work_dir, slots, None, &progress,
    )
    .await
}

/// [`judge`] with a compile cache: compiles (of the submission and of a
/// custom checker) are looked up under `scope` first and kept when they
/// succeed ([`CompileCache`]).
pub async fn judge_cached(
    runner: &dyn Runner,
    languages: &Languages,
    submission: &Submission,
    work_dir: &Path,
    slots: usize,
    cache: (&CompileCache, &str),
    progress: impl Fn(Event) + Send + Sync,
) -> Result<Report, JudgeError> {
    judge_dyn(
        runner,
        languages,
        submission,
        work_dir,
        slots,
        Some(cache),
        &progress,
    )
    .await
}

async fn judge_dyn(
    runner: &dyn Runner,
    languages: &Languages,
    submission: &Submission,
    work_dir: &Path,
    slots: usize,
    cache: Option<(&CompileCache, &str)>,
    progress: &(dyn Fn(Event) + Send + Sync),
) -> Result<Report, JudgeError> {
    submission.validate(languages)?;
    let lang = find_language(languages, &submission.language)?;
    let work = tempfile::Builder::new()
        .prefix("judge-")
        .tempdir_in(work_dir)
        .map_err(|source| JudgeError::WorkDir {
            path: work_dir.to_path_buf(),
            source,
        })?;
    let report = judge_in(
        runner,
        languages,
        submission,
        lang,
        work.path(),
        slots,
        cache,
        progress,
    )
    .await;
    let path = work.path().to_path_buf();
    if let Err(e) = work.close() {
        tracing::warn!(path = %path.display(), error = %e, "removing the judge's work directory failed");
    }
    let report = report?;
    progress(Event::Done {
        verdict: report.verdict,
    });
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn judge_in(
    runner: &dyn Runner,
    languages: &Languages,
    submission: &Submission,
    lang: &Language,
    work: &Path,
    slots: usize,
    cache: Option<(&CompileCache, &str)>,
    progress: &(dyn Fn(Event) + Send + Sync),
) -> Result<Report, JudgeError> {
    let n = submission.tests.len();
    let all_skipped = || (0..n).map(TestResult::skipped).collect::<Vec<_>>();
    let no_tests = |verdict, detail: String, compiled: Option<&Compiled>| {
        let tests = all_skipped();
        for t in &tests {
            progress(Event::TestDone {
                index: t.index,
                result: t.clone(),
            });
        }
        Report {
            verdict,
            time_limit: None,
            detail: Some(detail),
            compile_output: compiled.map(|c| c.output.clone()),
            compile_output_truncated: compiled.is_some_and(|c| c.truncated),
            compile_cached: compiled.is_some_and(|c| c.cached),
            tests,
        }
    };
    let box_dir = work.join("box");
    let on_compile = |state: Option<bool>| match state {
        None => progress(Event::CompileStart),
        Some(ok) => progress(Event::CompileDone { ok }),
    };
    let compiled = prepare(
        runner,
        lang,
        &submission.source,
        &box_dir,
        &on_compile,
        cache,
    )
    .await?;
    if let Some(Compiled {
        outcome: Err((v, d)),
        ..
    }) = &compiled
    {
        return Ok(no_tests(*v, d.clone(), compiled.as_ref()));
    }

    let checker = match &submission.checker {
        Checker::Custom { language, source } => {
            let clang = find_language(languages, language)?;
            let dir = work.join("checker");
            let quiet = |_: Option<bool>| {};
            let c = prepare(runner, clang, source, &dir, &quiet, cache).await?;
            if let Some(Compiled {
                outcome: Err((_, d)),
                output,
                ..
            }) = &c
            {
                let (out, _) = lossy_prefix(output.as_bytes(), 4 << 10);
                let mut report = no_tests(
                    Verdict::InternalError,
                    format!("the custom checker did not compile: {d}\n{out}"),
                    compiled.as_ref(),
                );
                report.detail = report.detail.map(|d| d.trim_end().to_string());
                return Ok(report);
            }
            Some(Program {
                lang: clang,
                box_dir: dir,
            })
        }
        _ => None,
    };

    let tests_dir = work.join("tests");
    make_dir(&tests_dir, 0o700).map_err(|source| JudgeError::WorkDir {
        path: tests_dir.clone(),
        source,
    })?;
    let l = &submission.limits;
    let memory_bytes = (l.memory_mb + lang.extra_memory_mb) << 20;
    let output_bytes = l.output_mb << 20;
    let ctx = Context {
        runner,
        submission,
        program: Program { lang, box_dir },
        checker,
        tests_dir,
        limits: RunLimits {
            cpu_time: Duration::from_millis(l.cpu_time_ms),
            wall_time: Duration::from_millis(l.wall_time_ms()),
            memory_bytes,
            pids: lang.pids,
            output_bytes,
            file_size_bytes: output_bytes,
            // Deep recursion meets the memory limit, not a small default
            // stack (docs/judges.md, "Stack").
            stack_bytes: Some(l.memory_mb << 20),
        },
        vars: Vars {
            memory_mb: l.memory_mb,
            stack_bytes: l.memory_mb << 20,
        },
        keep: kept_output_bytes(n),
    };
    let slots = if slots == 0 { default_slots() } else { slots };
    let mut results: Vec<Option<TestResult>> = vec![None; n];
    let mut running = FuturesUnordered::new();
    let mut next = 0;
    let mut failure_known = false;
    loop {
        while running.len() < slots
            && next < n
            && !(submission.stop_on_first_failure && failure_known)
        {
            let index = next;
            next += 1;
            progress(Event::TestStart { index });
            let ctx = &ctx;
            running.push(async move { ctx.run_test(index).await });
        }
        let Some(result) = running.next().await else {
            break;
        };
        failure_known |= result.failed();
        progress(Event::TestDone {
            index: result.index,
            result: result.clone(),
        });
        let i = result.index;
        results[i] = Some(result);
    }
    let tests: Vec<TestResult> = results
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.unwrap_or_else(|| {
                let t = TestResult::skipped(i);
                progress(Event::TestDone {
                    index: i,
                    result: t.clone(),
                });
                t
            })
        })
        .collect();
    let first = tests.iter().find(|t| t.failed());
    Ok(Report {
        verdict: first.and_then(|t| t.verdict).unwrap_or(Verdict::Accepted),
        time_limit: first.and_then(|t| t.time_limit),
        detail: first.map(|t| match &t.detail {
            Some(d) => format!("test {}: {d}", t.index),
            None => format!("test {}", t.index),
        }),
        compile_output: compiled.as_ref().map(|c| c.output.clone()),
        compile_output_truncated: compiled.as_ref().is_some_and(|c| c.truncated),
        compile_cached: compiled.as_ref().is_some_and(|c| c.cached),
        tests,
    })
}

#[cfg(test)]
mod tests;
