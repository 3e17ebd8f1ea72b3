//! Requests → `oci_spec::runtime::Spec`: the one conversion of a session's
//! (or one-shot run's) resolved limits into the sandbox's input model.

use std::time::Duration;

use sandbox::request::{Env, Request, RequestBuilder, RequestError, MEMORY_MIN_BYTES};

use crate::config::Config;
use crate::error::ApiError;
use crate::types::{Limits, LimitsRequest};

/// Applies defaults and checks each limit against the configured range.
pub fn resolve_limits(req: Option<&LimitsRequest>, cfg: &Config) -> Result<Limits, ApiError> {
    let empty = LimitsRequest::default();
    let req = req.unwrap_or(&empty);
    let memory = match &req.memory {
        Some(v) => v.bytes("limits.memory")?,
        None => cfg.default_memory,
    };
    // The floor is the sandbox's (`sandbox::request::MEMORY_MIN_BYTES`).
    if !(MEMORY_MIN_BYTES..=cfg.max_memory).contains(&memory) {
        return Err(ApiError::limit(format!(
            "limits.memory: {memory} bytes is outside 4M..{}",
            cfg.max_memory
        )));
    }
    let pids = req.pids.unwrap_or(cfg.default_pids);
    if !(8..=cfg.max_pids).contains(&pids) {
        return Err(ApiError::limit(format!(
            "limits.pids: {pids} is outside 8..{}",
            cfg.max_pids
        )));
    }
    if let Some(c) = req.cpus {
        if !c.is_finite() || !(0.01..=cfg.max_cpus).contains(&c) {
            return Err(ApiError::limit(format!(
                "limits.cpus: {c} is outside 0.01..{}",
                cfg.max_cpus
            )));
        }
    }
    let disk = match &req.disk {
        Some(v) => v.bytes("limits.disk")?,
        None => cfg.default_disk,
    };
    if !(1 << 20..=cfg.max_disk).contains(&disk) {
        return Err(ApiError::limit(format!(
            "limits.disk: {disk} bytes is outside 1M..{}",
            cfg.max_disk
        )));
    }
    Ok(Limits {
        memory_bytes: memory,
        pids,
        cpus: req.cpus,
        disk_bytes: disk,
    })
}

/// The request builder of a sandbox with these limits: /tmp and
/// /workspace of `disk_bytes`, memory, pids, CPUs.
fn builder(limits: &Limits, argv: Vec<String>) -> RequestBuilder {
    let b = Request::builder(argv)
        .scratch_bytes(limits.disk_bytes)
        .memory(limits.memory_bytes)
        .pids(limits.pids);
    match limits.cpus {
        Some(c) => b.cpus(c),
        None => b,
    }
}

/// The limits were checked by `resolve_limits` and the argv and env by
/// the route: a refusal of those is ours. An image's working directory
/// that is not absolute is the image's.
fn built(b: RequestBuilder) -> Result<Request, ApiError> {
    b.build().map_err(|e| match e {
        RequestError::Cwd(_) => ApiError::invalid(format!("the image's {e}")),
        e => ApiError::internal(e.to_string()),
    })
}

/// The request of a session sandbox (its root is the host's, or the
/// image's layers the helper gets). Its process is never started (session
/// mode); processes come with exec and PTY requests.
pub fn session_request(limits: &Limits) -> Result<Request, ApiError> {
    built(builder(limits, vec!["runtimed-session".into()]))
}

/// What a one-shot run (`/v1/run`) asks beside a session's limits.
pub struct RunProcess {
    pub argv: Vec<String>,
    /// Made by `state::process_env`: well-formed entries.
    pub env: Vec<String>,
    pub cwd: String,
    pub wall_time: Duration,
    pub cpu_time: Option<Duration>,
    pub output_limit: u64,
}

/// The request of a one-shot run (`/v1/run`): a session's sandbox whose
/// process is the program itself, with its time and output limits.
pub fn run_request(limits: &Limits, p: RunProcess) -> Result<Request, ApiError> {
    let mut env = Env::empty();
    env.extend_entries(&p.env)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut b = builder(limits, p.argv)
        .env(env)
        .cwd(p.cwd)
        .wall_time(p.wall_time)
        .output_limit(p.output_limit);
    if let Some(t) = p.cpu_time {
        b = b.cpu_time(t);
    }
    built(b)
}
