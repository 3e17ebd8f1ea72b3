//! `judges`: compile a submission once and run it against many tests in
//! sandboxes, with exact verdicts.
#![forbid(unsafe_code)]
