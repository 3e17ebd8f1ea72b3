//! cgroup v1 files: one directory per hierarchy, and the legacy names of
//! limits and counters (Documentation/admin-guide/cgroup-v1/).

use super::{mkdir_shared, read_keyed, read_u64, write_if_present, write_value};
use super::{Cgroup, CgroupError, CgroupStats, Checked, Controller};
use std::path::Path;

/// v1 has no controller enabling: the parent is just a directory.
pub(super) fn prepare_parent(parent: &Path) -> Result<(), CgroupError> {
    mkdir_shared(parent)
}

pub(super) fn write_limits(cgroup: &Cgroup, limits: &Checked) -> Result<(), CgroupError> {
    if let (Some(bytes), Some(dir)) = (limits.memory, cgroup.dir_with(Controller::Memory)) {
        let value = bytes.to_string();
        write_value(&dir.join("memory.limit_in_bytes"), &value)?;
        // memsw is memory+swap: equal to the memory limit means no swap. It
        // must not be below limit_in_bytes, hence the order. Absent when the
        // kernel has no swap accounting (swapaccount=0); swap use then stays
        // unlimited on v1, which matters only on hosts with swap.
        let memsw = match limits.memory_swap {
            None => value,
            Some(u64::MAX) => "-1".to_string(),
            Some(total) => total.to_string(),
        };
        write_if_present(&dir.join("memory.memsw.limit_in_bytes"), &memsw)?;
    }
    if let (Some(bytes), Some(dir)) = (
        limits.memory_reservation,
        cgroup.dir_with(Controller::Memory),
    ) {
        write_value(&dir.join("memory.soft_limit_in_bytes"), &bytes.to_string())?;
    }
    if let (Some(shares), Some(dir)) = (limits.cpu_shares, cgroup.dir_with(Controller::Cpu)) {
        write_value(&dir.join("cpu.shares"), &shares.to_string())?;
    }
    if let (Some(max), Some(dir)) = (limits.pids, cgroup.dir_with(Controller::Pids)) {
        write_value(&dir.join("pids.max"), &max.to_string())?;
    }
    if let (Some((quota, period)), Some(dir)) = (limits.cpu, cgroup.dir_with(Controller::Cpu)) {
        // Period first: the quota is checked against the current period.
        write_value(&dir.join("cpu.cfs_period_us"), &period.to_string())?;
        write_value(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
    }
    Ok(())
}

pub(super) fn stats(cgroup: &Cgroup) -> Result<CgroupStats, CgroupError> {
    let mut stats = CgroupStats::default();
    if let Some(dir) = cgroup.dir_with(Controller::Cpuacct) {
        stats.cpu_usage_ns = read_u64(&dir.join("cpuacct.usage"))?;
        stats.cpu_user_ns = read_u64(&dir.join("cpuacct.usage_user"))?;
        stats.cpu_system_ns = read_u64(&dir.join("cpuacct.usage_sys"))?;
    }
    if let Some(dir) = cgroup.dir_with(Controller::Memory) {
        stats.memory_current_bytes = read_u64(&dir.join("memory.usage_in_bytes"))?;
        stats.memory_peak_bytes = read_u64(&dir.join("memory.max_usage_in_bytes"))?;
        // `oom_kill` joined oom_control in 4.13.
        [stats.oom_kills] = read_keyed(&dir.join("memory.oom_control"), ["oom_kill"])?;
    }
    if let Some(dir) = cgroup.dir_with(Controller::Pids) {
        stats.pids_current = read_u64(&dir.join("pids.current"))?;
        [stats.pids_limit_hits] = read_keyed(&dir.join("pids.events"), ["max"])?;
    }
    Ok(stats)
}
