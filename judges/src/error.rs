//! The failure of the judge itself, as opposed to an outcome of the
//! submission ([`crate::Verdict`]). A sandbox or runner failure during a
//! judgement is not one of these: it becomes the verdict `INTERNAL_ERROR`
//! of that step, inside a report. A `JudgeError` means there is no report.

use std::path::PathBuf;

#[derive(thiserror::Error, Debug)]
pub enum JudgeError {
    #[error("invalid submission: {0}")]
    Invalid(#[from] SubmissionError),
    #[error("create the judge's work directory under {path}: {source}")]
    WorkDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Why a submission was refused before anything ran: its fields against
/// the documented ranges (`pipeline::ranges`) and the languages here.
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
