//! `judges`: the code-judge back end's core. A submission (source, tests,
//! limits, checker) is compiled once and run against every test in fresh
//! sandboxes, and gets exact verdicts.
//!
//! - [`language`]: the language table (TOML, shipped and extendable);
//! - [`profile`]: a job's limits and mounts → `oci_spec::runtime::Spec`;
//! - [`runner`]: the [`Runner`] trait jobs go through, and [`CliRunner`];
//! - [`pipeline`]: [`judge`]: compile once, run the tests in parallel;
//! - [`verdict`]: pure classification of a run from its exit report;
//! - [`compare`]: checkers (exact, tokens, float, custom);
//! - [`error`]: [`JudgeError`], the failure of the judge itself.
//!
//! See docs/judges.md.
#![forbid(unsafe_code)]

pub mod cache;
pub mod compare;
pub mod error;
pub mod job;
pub mod language;
pub mod pipeline;
pub mod profile;
pub mod runner;
pub mod verdict;

pub use cache::CompileCache;
pub use compare::Checker;
pub use error::{JudgeError, SubmissionError};
pub use language::{Availability, Language, LanguageError, Languages};
pub use pipeline::{judge, judge_cached, Event, Limits, Report, Submission, TestCase, TestResult};
pub use profile::{job_request, ProfileError};
pub use runner::{CliRunner, Job, Mount, RunError, RunLimits, RunOutput, Runner};
pub use verdict::{TimeLimit, Verdict};
