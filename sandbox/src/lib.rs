//! `sandbox`: an `oci_spec::runtime::Spec` in, an isolated, limited,
//! accounted process tree out.
//!
//! The flow is validate → plan → create → start → supervise → exit report →
//! teardown (see `docs/process-model.md`). Only [`sys`] holds `unsafe` code.

pub mod cgroup;
pub mod seccomp;
pub mod sys;
