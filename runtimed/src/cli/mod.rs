//! Command-line verbs.
pub mod run;
pub mod serve;
