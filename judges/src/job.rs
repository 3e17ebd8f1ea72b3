//! What the pipeline asks of a runner: one sandboxed run ([`Job`]) with
//! its binds and limits. Its own module so that the conversion into the
//! sandbox's request (`profile`) and the runners (`runner`) both depend on
//! it, and not on each other.

use std::path::PathBuf;
use std::time::Duration;

/// RLIMIT_NOFILE of judged programs and compilers.
pub const OPEN_FILES: u64 = 256;

/// A host directory or file bound into the sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub host: PathBuf,
    pub dest: String,
    /// Read-only unless set; a writable bind is idmapped by the sandbox so
    /// that the directory's host owner appears as uid 1000 inside.
    pub writable: bool,
}

/// Limits of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunLimits {
    /// CPU time of the whole process tree (cgroup accounting).
    pub cpu_time: Duration,
    pub wall_time: Duration,
    /// Memory of the whole sandbox (cgroup, swap 0).
    pub memory_bytes: u64,
    /// Tasks: processes and threads.
    pub pids: u64,
    /// Bytes per stream (stdout, stderr); the run is killed past it
    /// (`sandbox::Termination::OutputLimit`).
    pub output_bytes: u64,
    /// RLIMIT_FSIZE.
    pub file_size_bytes: u64,
    /// RLIMIT_STACK; `None` is unlimited (bounded by the memory limit).
    pub stack_bytes: Option<u64>,
}

/// One sandboxed run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub argv: Vec<String>,
    /// The whole environment of the program (nothing else is passed; PATH
    /// defaults to sandbox's when missing).
    pub env: Vec<(String, String)>,
    pub cwd: String,
    /// `None`: the host rootfs; `Some(name)`: an image of the store.
    pub image: Option<String>,
    pub mounts: Vec<Mount>,
    /// A host file given as stdin; `None`: /dev/null.
    pub stdin: Option<PathBuf>,
    pub limits: RunLimits,
}
