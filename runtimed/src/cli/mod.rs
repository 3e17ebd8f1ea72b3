//! Command-line verbs.
pub mod client;
pub mod run;
pub mod serve;
