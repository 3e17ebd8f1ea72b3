//! Requests → `oci_spec::runtime::Spec`: the one conversion of a session's
//! (or one-shot run's) resolved limits into the sandbox's input model.

use oci_spec::runtime::Spec;
use sandbox::spec::tmpfs_mount as tmpfs;

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
    if !(8 << 20..=cfg.max_memory).contains(&memory) {
        return Err(ApiError::limit(format!(
            "limits.memory: {memory} bytes is outside 8M..{}",
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

/// The spec of a session sandbox on the `host` image. Its process is never
/// started (session mode); processes come with exec and PTY requests.
pub fn session_spec(limits: &Limits) -> Result<Spec, ApiError> {
    let internal = |e: oci_spec::OciSpecError| ApiError::internal(e.to_string());
    let mut spec = sandbox::spec::base_spec(vec!["runtimed-session".into()]);
    spec.set_mounts(Some(vec![
        tmpfs("/tmp", limits.disk_bytes, "1777").map_err(internal)?,
        // The tmpfs root belongs to the session user (uid 1000 inside).
        tmpfs("/workspace", limits.disk_bytes, "755").map_err(internal)?,
    ]));
    let memory = i64::try_from(limits.memory_bytes).map_err(|_| ApiError::limit("memory"))?;
    sandbox::spec::set_resources(
        &mut spec,
        Some(memory),
        Some(limits.pids as i64),
        limits.cpus,
    )
    .map_err(internal)?;
    Ok(spec)
}

/// The spec of a one-shot run (`/v1/run`): a session's sandbox whose
/// process is the program itself.
pub fn run_spec(
    limits: &Limits,
    args: Vec<String>,
    env: Vec<String>,
    cwd: &str,
) -> Result<Spec, ApiError> {
    let mut spec = session_spec(limits)?;
    let mut process = spec
        .process()
        .clone()
        .ok_or_else(|| ApiError::internal("the base spec has no process"))?;
    process.set_args(Some(args));
    process.set_env(Some(env));
    process.set_cwd(cwd.into());
    spec.set_process(Some(process));
    Ok(spec)
}
