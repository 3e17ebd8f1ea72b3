//! The failure of the judge itself, as opposed to an outcome of the
//! submission ([`crate::Verdict`]). A sandbox or runner failure during a
//! judgement is not one of these: it becomes the verdict `INTERNAL_ERROR`
//! of that step, inside a report. A `JudgeError` means there is no report.

use std::path::PathBuf;

use crate::pipeline::SubmissionError;

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
