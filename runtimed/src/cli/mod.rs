//! Command-line verbs.
pub mod client;
pub mod image;
pub mod run;
pub mod serve;
