//! cgroup v2 files: enabling controllers for our subtree, the unified limit
//! and counter names, and `cgroup.kill` (Documentation/admin-guide/cgroup-v2.rst).

use std::io;
use std::path::Path;

use super::{
    mkdir_shared, read_keyed, read_text, read_u64, required, write_if_present, write_value,
};
use super::{CgroupError, CgroupStats, CgroupVersion, Checked, Controller, ControllerSet};

/// The leaf this process moves into when its own cgroup must stop holding
/// processes (see the module doc of `cgroup`).
pub(super) fn supervisor_leaf(parent_name: &str) -> String {
    format!("{parent_name}-supervisor")
}

/// Makes `<own>/<name>` with memory, pids and cpu enabled for its children,
/// as far as `<own>` has them; returns the controllers usable below it.
pub(super) fn prepare_parent(own: &Path, name: &str) -> Result<ControllerSet, CgroupError> {
    let controllers_path = own.join("cgroup.controllers");
    let available = read_text(&controllers_path)?
        .split_whitespace()
        .filter_map(Controller::from_name)
        .fold(ControllerSet::EMPTY, ControllerSet::with)
        .intersect(required(CgroupVersion::V2));
    match enable(own, available) {
        Err(CgroupError::Write { source, .. }) if source.raw_os_error() == Some(libc::EBUSY) => {
            // No internal processes: `<own>` holds processes (us, at least),
            // so it cannot delegate controllers until we leave it.
            let leaf = own.join(supervisor_leaf(name));
            mkdir_shared(&leaf)?;
            write_value(&leaf.join("cgroup.procs"), &std::process::id().to_string())?;
            tracing::info!(cgroup = %leaf.display(), "moved this process into a supervisor leaf cgroup");
            enable(own, available)?;
        }
        other => other?,
    }
    let parent = own.join(name);
    mkdir_shared(&parent)?;
    enable(&parent, available)?;
    Ok(available)
}

/// Enables `controllers` in `dir/cgroup.subtree_control`, writing only when
/// one is missing (the file may belong to a cgroup we should not touch
/// needlessly, e.g. the root in a VM or container).
pub(super) fn enable(dir: &Path, controllers: ControllerSet) -> Result<(), CgroupError> {
    let path = dir.join("cgroup.subtree_control");
    let enabled = enabled(dir)?;
    let missing: Vec<String> = controllers
        .iter()
        .filter(|c| !enabled.has(*c))
        .map(|c| format!("+{}", c.name()))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    write_value(&path, &missing.join(" "))
}

/// The controllers `dir` gives its children (`cgroup.subtree_control`).
pub(super) fn enabled(dir: &Path) -> Result<ControllerSet, CgroupError> {
    Ok(read_text(&dir.join("cgroup.subtree_control"))?
        .split_whitespace()
        .filter_map(Controller::from_name)
        .fold(ControllerSet::EMPTY, ControllerSet::with))
}

pub(super) fn write_limits(dir: &Path, limits: &Checked) -> Result<(), CgroupError> {
    if let Some(bytes) = limits.memory {
        write_value(&dir.join("memory.max"), &bytes.to_string())?;
        // v2 limits swap alone: memory+swap minus memory (runc's
        // conversion of OCI's v1-shaped value). Absent when the kernel has
        // no swap support at all.
        let swap = match limits.memory_swap {
            None => "0".to_string(),
            Some(u64::MAX) => "max".to_string(),
            Some(total) => total.saturating_sub(bytes).to_string(),
        };
        write_if_present(&dir.join("memory.swap.max"), &swap)?;
    }
    if let Some(bytes) = limits.memory_reservation {
        write_value(&dir.join("memory.low"), &bytes.to_string())?;
    }
    if let Some(shares) = limits.cpu_shares {
        write_value(
            &dir.join("cpu.weight"),
            &super::shares_to_weight(shares).to_string(),
        )?;
    }
    if let Some(max) = limits.pids {
        write_value(&dir.join("pids.max"), &max.to_string())?;
    }
    if let Some((quota, period)) = limits.cpu {
        write_value(&dir.join("cpu.max"), &format!("{quota} {period}"))?;
    }
    Ok(())
}

pub(super) fn stats(dir: &Path, controllers: ControllerSet) -> Result<CgroupStats, CgroupError> {
    let [usage, user, system] = read_keyed(
        &dir.join("cpu.stat"),
        ["usage_usec", "user_usec", "system_usec"],
    )?;
    let mut stats = CgroupStats {
        cpu_usage_ns: usage.saturating_mul(1000),
        cpu_user_ns: user.saturating_mul(1000),
        cpu_system_ns: system.saturating_mul(1000),
        ..CgroupStats::default()
    };
    if controllers.has(Controller::Memory) {
        stats.memory_current_bytes = read_u64(&dir.join("memory.current"))?;
        // memory.peak came in 5.19; before it, current is the best we have.
        stats.memory_peak_bytes = match read_u64(&dir.join("memory.peak")) {
            Err(CgroupError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                stats.memory_current_bytes
            }
            other => other?,
        };
        [stats.oom_kills] = read_keyed(&dir.join("memory.events"), ["oom_kill"])?;
    }
    if controllers.has(Controller::Pids) {
        stats.pids_current = read_u64(&dir.join("pids.current"))?;
        [stats.pids_limit_hits] = read_keyed(&dir.join("pids.events"), ["max"])?;
    }
    Ok(stats)
}

/// Writes `cgroup.kill`; `false` when the kernel predates it (5.14).
pub(super) fn kill(dir: &Path) -> Result<bool, CgroupError> {
    write_if_present(&dir.join("cgroup.kill"), "1")
}

/// `usage_usec` from the start of cpu.stat, without allocating.
pub(super) fn parse_usage_usec(text: &[u8]) -> Option<u64> {
    text.split(|b| *b == b'\n')
        .find_map(|line| line.strip_prefix(b"usage_usec "))
        .and_then(super::parse_u64)
}
