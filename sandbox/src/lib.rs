//! `sandbox`: an `oci_spec::runtime::Spec` in, an isolated, limited,
//! accounted process tree out.
//!
//! The flow is validate → plan → create → start → supervise → exit report →
//! teardown (see `docs/process-model.md`). Raw system calls without a safe
//! wrapper live in the private `sys` module only; the compiler enforces it
//! (deny(unsafe_code) here, allowed in `sys`). Other crates reach it only
//! through safe modules named after their concept: [`helper`] (forking
//! from a single-threaded process, with its [`SingleThreaded`] proof),
//! [`pty`], [`peer`], [`process::signals`], [`seccomp::attempt`].
#![deny(unsafe_code)]

pub mod capabilities;
pub mod cgroup;
pub mod helper;
pub mod id;
pub mod landlock;
pub mod mounts;
pub mod namespaces;
pub mod netns;
pub mod options;
pub mod overlay;
pub mod peer;
pub mod process;
pub mod pty;
pub mod report;
pub mod request;
pub mod seccomp;
pub mod seed;
pub mod spec;
#[allow(unsafe_code)]
mod sys;
pub mod userns;

pub use helper::SingleThreaded;
pub use options::{LayeredRoot, RunOptions, Stdio, UidPoolConfig, Upper};
pub use process::spawn::{Sandbox, SandboxError};
pub use process::supervise::Captured;
pub use report::{ExitReport, StepFailure, Termination};
pub use request::{Env, Request, RequestBuilder, RequestError};
pub use seccomp::SeccompProfile;
