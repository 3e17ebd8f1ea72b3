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
use crate::error::{JudgeError, SubmissionError};
use crate::language::{Availability, Language, Languages, Vars};
use crate::runner::{Job, Mount, Output, RunLimits, RunOutput, Runner};
use crate::verdict::{self, CompileClass, RunClass, TimeLimit, Verdict};

mod compile;
mod run;
mod submission;

use compile::*;
pub use run::TestResult;
use run::*;
pub use submission::*;

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

/// One submission being judged: what every phase reads.
struct Judging<'a> {
    runner: &'a dyn Runner,
    languages: &'a Languages,
    submission: &'a Submission,
    lang: &'a Language,
    work: &'a Path,
    cache: Option<(&'a CompileCache, &'a str)>,
    progress: &'a (dyn Fn(Event) + Send + Sync),
}

/// How the compile phase ended.
enum CompilePhase<'a> {
    /// The program (and a custom checker) are ready to run.
    Ready {
        compiled: Option<Compiled>,
        checker: Option<Program<'a>>,
    },
    /// Nothing runs: the submission's (or the checker's) compile failed.
    Stop(Report),
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
    let j = Judging {
        runner,
        languages,
        submission,
        lang,
        work,
        cache,
        progress,
    };
    let box_dir = work.join("box");
    let (compiled, checker) = match j.compile(&box_dir).await? {
        CompilePhase::Ready { compiled, checker } => (compiled, checker),
        CompilePhase::Stop(report) => return Ok(report),
    };
    let ctx = j.context(box_dir, checker)?;
    let tests = j.run(&ctx, slots).await;
    Ok(j.report(compiled.as_ref(), tests))
}

impl<'a> Judging<'a> {
    /// A report in which no test ran (each reported skipped).
    fn no_tests(&self, verdict: Verdict, detail: String, compiled: Option<&Compiled>) -> Report {
        let tests: Vec<TestResult> = (0..self.submission.tests.len())
            .map(TestResult::skipped)
            .collect();
        for t in &tests {
            (self.progress)(Event::TestDone {
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
    }

    /// Compile: the submission into `box_dir` (or from the cache), then a
    /// custom checker into its own box.
    async fn compile(&self, box_dir: &Path) -> Result<CompilePhase<'a>, JudgeError> {
        let progress = self.progress;
        let on_compile = |state: Option<bool>| match state {
            None => progress(Event::CompileStart),
            Some(ok) => progress(Event::CompileDone { ok }),
        };
        let compiled = prepare(
            self.runner,
            self.lang,
            &self.submission.source,
            box_dir,
            &on_compile,
            self.cache,
        )
        .await?;
        if let Some(Compiled {
            outcome: Err((v, d)),
            ..
        }) = &compiled
        {
            return Ok(CompilePhase::Stop(self.no_tests(
                *v,
                d.clone(),
                compiled.as_ref(),
            )));
        }
        let checker = match &self.submission.checker {
            Checker::Custom { language, source } => {
                let clang = find_language(self.languages, language)?;
                let dir = self.work.join("checker");
                let quiet = |_: Option<bool>| {};
                let c = prepare(self.runner, clang, source, &dir, &quiet, self.cache).await?;
                if let Some(Compiled {
                    outcome: Err((_, d)),
                    output,
                    ..
                }) = &c
                {
                    let (out, _) = lossy_prefix(output.as_bytes(), 4 << 10);
                    let mut report = self.no_tests(
                        Verdict::InternalError,
                        format!("the custom checker did not compile: {d}\n{out}"),
                        compiled.as_ref(),
                    );
                    report.detail = report.detail.map(|d| d.trim_end().to_string());
                    return Ok(CompilePhase::Stop(report));
                }
                Some(Program {
                    lang: clang,
                    box_dir: dir,
                })
            }
            _ => None,
        };
        Ok(CompilePhase::Ready { compiled, checker })
    }

    /// What every test run shares: the program, the checker, the limits.
    fn context(
        &self,
        box_dir: PathBuf,
        checker: Option<Program<'a>>,
    ) -> Result<Context<'a>, JudgeError> {
        let tests_dir = self.work.join("tests");
        make_dir(&tests_dir, 0o700).map_err(|source| JudgeError::WorkDir {
            path: tests_dir.clone(),
            source,
        })?;
        let (l, lang) = (&self.submission.limits, self.lang);
        let memory_bytes = (l.memory_mb + lang.extra_memory_mb) << 20;
        let output_bytes = l.output_mb << 20;
        Ok(Context {
            runner: self.runner,
            submission: self.submission,
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
            keep: kept_output_bytes(self.submission.tests.len()),
        })
    }

    /// Run: every test, up to `slots` at once (0: one per CPU), stopping
    /// early on the first failure when asked; tests not run are skipped.
    async fn run(&self, ctx: &Context<'a>, slots: usize) -> Vec<TestResult> {
        let (n, progress) = (self.submission.tests.len(), self.progress);
        let slots = if slots == 0 { default_slots() } else { slots };
        let mut results: Vec<Option<TestResult>> = vec![None; n];
        let mut running = FuturesUnordered::new();
        let mut next = 0;
        let mut failure_known = false;
        loop {
            while running.len() < slots
                && next < n
                && !(self.submission.stop_on_first_failure && failure_known)
            {
                let index = next;
                next += 1;
                progress(Event::TestStart { index });
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
        results
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
            .collect()
    }

    /// The submission's verdict: its first failed test's, else accepted.
    fn report(&self, compiled: Option<&Compiled>, tests: Vec<TestResult>) -> Report {
        let first = tests.iter().find(|t| t.failed());
        Report {
            verdict: first.and_then(|t| t.verdict).unwrap_or(Verdict::Accepted),
            time_limit: first.and_then(|t| t.time_limit),
            detail: first.map(|t| match &t.detail {
                Some(d) => format!("test {}: {d}", t.index),
                None => format!("test {}", t.index),
            }),
            compile_output: compiled.map(|c| c.output.clone()),
            compile_output_truncated: compiled.is_some_and(|c| c.truncated),
            compile_cached: compiled.is_some_and(|c| c.cached),
            tests,
        }
    }
}

#[cfg(test)]
mod tests;
