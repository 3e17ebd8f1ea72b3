//! `sandbox`: an `oci_spec::runtime::Spec` in, an isolated, limited,
//! accounted process tree out.
//!
//! The flow is validate → plan → create → start → supervise → exit report →
//! teardown (see `docs/process-model.md`). Raw system calls without a safe
//! wrapper live in [`sys`] only; the compiler enforces it (deny(unsafe_code)
//! here, allowed in `sys`).
#![deny(unsafe_code)]

pub mod cgroup;
pub mod mounts;
pub mod netns;
pub mod options;
pub mod process;
pub mod report;
pub mod seccomp;
pub mod seed;
pub mod spec;
#[allow(unsafe_code)]
pub mod sys;
pub mod userns;

pub use options::{LayeredRoot, RunOptions, Stdio, UidPoolConfig, Upper};
pub use process::spawn::{Sandbox, SandboxError};
pub use process::supervise::Captured;
pub use report::{ExitReport, StepFailure, Termination};
pub use seccomp::SeccompProfile;
