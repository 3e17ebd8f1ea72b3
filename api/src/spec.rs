//! Requests → `oci_spec::runtime::Spec`: the one conversion of a session's
//! (or one-shot run's) resolved limits into the sandbox's input model.

use oci_spec::runtime::Spec;
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
fn built(b: RequestBuilder) -> Result<Spec, ApiError> {
    b.build().map(|r| r.spec).map_err(|e| match e {
        RequestError::Cwd(_) => ApiError::invalid(format!("the image's {e}")),
        e => ApiError::internal(e.to_string()),
    })
}

/// The spec of a session sandbox on the `host` image. Its process is never
/// started (session mode); processes come with exec and PTY requests.
pub fn session_spec(limits: &Limits) -> Result<Spec, ApiError> {
    built(builder(limits, vec!["runtimed-session".into()]))
}

/// The spec of a one-shot run (`/v1/run`): a session's sandbox whose
/// process is the program itself.
pub fn run_spec(
    limits: &Limits,
    args: Vec<String>,
    env: Vec<String>,
    cwd: &str,
) -> Result<Spec, ApiError> {
    let mut all = Env::empty();
    // Made by `state::process_env`: well-formed entries.
    all.extend_entries(&env)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    built(builder(limits, args).env(all).cwd(cwd))
}
