//! `update`: new limits for a live container, written to its cgroup and
//! recorded in the container's config (`<root>/<id>/config.json`'s
//! `linux.resources`, so `exec` and a later `update` start from them).
//!
//! Input as runc takes it: `--resources FILE` (`-` for stdin), the
//! runtime-spec `linux.resources` JSON that containerd's shim sends for
//! `docker update`, and flags that override it. runc's value rules: 0
//! leaves a limit as it is, -1 removes it. What runtimed's sandboxes do
//! not manage (cpusets, block I/O weights, hugepages, devices, network
//! classes, rdma, kernel memory, `unified`) is refused by name, so a
//! caller never believes a limit is in place that is not.

use std::io::Read;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};

use super::cgroups::{self, Controller, Dirs};
use super::state::Status;
use super::{Context, OciError};

/// Largest resources JSON read.
const MAX_RESOURCES_BYTES: u64 = 1 << 20;

#[derive(clap::Args, Debug)]
pub struct UpdateArgs {
    /// A `linux.resources` JSON file, `-` for stdin.
    #[arg(long, short = 'r')]
    pub resources: Option<PathBuf>,
    /// Memory limit in bytes (suffixes k, m, g; -1: none).
    #[arg(long, allow_hyphen_values = true, value_parser = parse_bytes)]
    pub memory: Option<i64>,
    /// Memory plus swap, in bytes (-1: none).
    #[arg(long, allow_hyphen_values = true, value_parser = parse_bytes)]
    pub memory_swap: Option<i64>,
    /// Memory soft limit, in bytes.
    #[arg(long, allow_hyphen_values = true, value_parser = parse_bytes)]
    pub memory_reservation: Option<i64>,
    /// Maximum number of tasks (-1: none).
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// CPU time per period, µs (-1: none).
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CFS period, µs.
    #[arg(long)]
    pub cpu_period: Option<u64>,
    /// CPU shares (relative weight).
    #[arg(long)]
    pub cpu_share: Option<u64>,
    pub id: String,
}

/// `64m`, `1g`, `4096`, `-1`: bytes.
fn parse_bytes(text: &str) -> Result<i64, String> {
    if text == "-1" {
        return Ok(-1);
    }
    let lower = text.to_ascii_lowercase();
    let trimmed = lower.trim_end_matches('b');
    let (digits, shift) = match trimmed.chars().last() {
        Some('k') => (&trimmed[..trimmed.len() - 1], 10),
        Some('m') => (&trimmed[..trimmed.len() - 1], 20),
        Some('g') => (&trimmed[..trimmed.len() - 1], 30),
        _ => (trimmed, 0),
    };
    let n: i64 = digits
        .parse()
        .map_err(|_| format!("{text:?}: expected bytes (4096, 64m, 1g) or -1"))?;
    if n < 0 {
        return Err(format!("{text:?}: negative (only -1, no limit)"));
    }
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?}: too large"))
}

/// `update ID`.
pub fn update(ctx: &Context, args: &UpdateArgs) -> Result<i32, OciError> {
    let mut wanted = match &args.resources {
        Some(p) => read_resources(p)?,
        None => LinuxResources::default(),
    };
    apply_flags(&mut wanted, args);
    refuse_unsupported(&wanted)?;
    let c = ctx.root.open(&args.id, false)?;
    let state = c.state()?;
    let status = state.status(&c.dir);
    if status == Status::Stopped {
        return Err(OciError::WrongStatus {
            id: args.id.clone(),
            status: status.as_str(),
            action: "cannot update a stopped container",
        });
    }
    let dirs = Dirs::new(&state.cgroup_paths);
    write_limits(&dirs, &wanted)?;
    let mut config = c.config()?;
    let mut linux = config.linux().clone().unwrap_or_default();
    let merged = merge(linux.resources().clone().unwrap_or_default(), &wanted);
    linux.set_resources(Some(merged));
    config.set_linux(Some(linux));
    let bytes = serde_json::to_vec(&config).map_err(|e| OciError::Sandbox(e.to_string()))?;
    super::state::write_atomic(&c.dir, super::state::CONFIG_FILE, &bytes)?;
    Ok(0)
}

fn read_resources(path: &Path) -> Result<LinuxResources, OciError> {
    let what = format!("--resources {}", path.display());
    let mut bytes = Vec::new();
    let reader: Box<dyn Read> = if path == Path::new("-") {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(path).map_err(super::io_err(what.clone()))?)
    };
    reader
        .take(MAX_RESOURCES_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(super::io_err(what.clone()))?;
    if bytes.len() as u64 > MAX_RESOURCES_BYTES {
        return Err(OciError::Usage(format!(
            "{what}: larger than {MAX_RESOURCES_BYTES} bytes"
        )));
    }
    serde_json::from_slice(&bytes).map_err(|e| OciError::Usage(format!("{what}: {e}")))
}

fn apply_flags(r: &mut LinuxResources, args: &UpdateArgs) {
    let mut memory = (*r.memory()).unwrap_or_default();
    if let Some(v) = args.memory {
        memory.set_limit(Some(v));
    }
    if let Some(v) = args.memory_swap {
        memory.set_swap(Some(v));
    }
    if let Some(v) = args.memory_reservation {
        memory.set_reservation(Some(v));
    }
    if memory != LinuxMemory::default() {
        r.set_memory(Some(memory));
    }
    let mut cpu = r.cpu().clone().unwrap_or_default();
    if let Some(v) = args.cpu_quota {
        cpu.set_quota(Some(v));
    }
    if let Some(v) = args.cpu_period {
        cpu.set_period(Some(v));
    }
    if let Some(v) = args.cpu_share {
        cpu.set_shares(Some(v));
    }
    if cpu != LinuxCpu::default() {
        r.set_cpu(Some(cpu));
    }
    if let Some(v) = args.pids_limit {
        let mut p = LinuxPids::default();
        p.set_limit(v);
        r.set_pids(Some(p));
    }
}

/// Fields runtimed does not manage, by name, when they ask for something.
fn refuse_unsupported(r: &LinuxResources) -> Result<(), OciError> {
    let mut refused: Vec<&str> = Vec::new();
    if r.devices().as_ref().is_some_and(|d| !d.is_empty()) {
        refused.push("devices");
    }
    if r.block_io().as_ref().is_some_and(|b| {
        b.weight().is_some_and(|w| w != 0)
            || b.leaf_weight().is_some_and(|w| w != 0)
            || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
            || b.throttle_read_bps_device()
                .as_ref()
                .is_some_and(|v| !v.is_empty())
            || b.throttle_write_bps_device()
                .as_ref()
                .is_some_and(|v| !v.is_empty())
            || b.throttle_read_iops_device()
                .as_ref()
                .is_some_and(|v| !v.is_empty())
            || b.throttle_write_iops_device()
                .as_ref()
                .is_some_and(|v| !v.is_empty())
    }) {
        refused.push("blockIO");
    }
    if r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()) {
        refused.push("hugepageLimits");
    }
    if r.network().is_some() {
        refused.push("network");
    }
    if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
        refused.push("rdma");
    }
    if r.unified().as_ref().is_some_and(|m| !m.is_empty()) {
        refused.push("unified");
    }
    if let Some(c) = r.cpu() {
        if c.cpus().as_ref().is_some_and(|s| !s.is_empty()) {
            refused.push("cpu.cpus");
        }
        if c.mems().as_ref().is_some_and(|s| !s.is_empty()) {
            refused.push("cpu.mems");
        }
        if c.realtime_runtime().is_some_and(|v| v != 0)
            || c.realtime_period().is_some_and(|v| v != 0)
        {
            refused.push("cpu.realtimeRuntime/realtimePeriod");
        }
    }
    if let Some(m) = r.memory() {
        if m.kernel().is_some_and(|v| v != 0) {
            refused.push("memory.kernel");
        }
        if m.kernel_tcp().is_some_and(|v| v != 0) {
            refused.push("memory.kernelTCP");
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(OciError::Usage(format!(
            "linux.resources: not supported by runtimed: {}",
            refused.join(", ")
        )))
    }
}

/// v1 writes -1 for "no limit", v2 "max".
fn unlimited(v2: bool) -> &'static str {
    if v2 {
        "max"
    } else {
        "-1"
    }
}

/// A runc value: 0 leaves the limit, -1 removes it, else the number.
fn value(v: i64, v2: bool) -> Option<String> {
    match v {
        0 => None,
        v if v < 0 => Some(unlimited(v2).to_string()),
        v => Some(v.to_string()),
    }
}

fn write_limits(dirs: &Dirs, r: &LinuxResources) -> Result<(), OciError> {
    let v2 = dirs.v2;
    if let Some(m) = r.memory() {
        write_memory(dirs, m)?;
    }
    if let Some(p) = r.pids() {
        if let Some(v) = value(p.limit(), v2) {
            let dir = dirs.need(Controller::Pids, "pids.limit")?;
            // v1's pids.max takes "max" too; -1 is the memory files' word.
            let v = if p.limit() < 0 { "max".to_string() } else { v };
            cgroups::write(&dir.join("pids.max"), &v)?;
        }
    }
    if let Some(c) = r.cpu() {
        write_cpu(dirs, c)?;
    }
    Ok(())
}

fn write_memory(dirs: &Dirs, m: &LinuxMemory) -> Result<(), OciError> {
    let v2 = dirs.v2;
    let wants = m.limit().is_some_and(|v| v != 0)
        || m.swap().is_some_and(|v| v != 0)
        || m.reservation().is_some_and(|v| v != 0);
    if !wants {
        return Ok(());
    }
    let dir = dirs.need(Controller::Memory, "memory")?;
    let limit = m.limit().and_then(|v| value(v, v2));
    let swap = m.swap().and_then(|v| value(v, v2));
    if v2 {
        if let Some(l) = &limit {
            cgroups::write(&dir.join("memory.max"), l)?;
        }
        // runtime-spec's swap is memory+swap; v2's swap.max is swap only.
        if let (Some(s), true) = (m.swap(), dir.join("memory.swap.max").exists()) {
            let text = match (s, m.limit()) {
                (s, _) if s < 0 => Some("max".to_string()),
                (0, _) => None,
                (s, Some(l)) if l > 0 => Some(s.saturating_sub(l).max(0).to_string()),
                _ => {
                    return Err(OciError::Usage(
                        "memory.swap needs memory.limit beside it".into(),
                    ))
                }
            };
            if let Some(t) = text {
                cgroups::write(&dir.join("memory.swap.max"), &t)?;
            }
        }
        if let Some(r) = m.reservation().and_then(|v| value(v, v2)) {
            cgroups::write(&dir.join("memory.low"), &r)?;
        }
        return Ok(());
    }
    // v1: memsw must stay >= the limit at every moment: raising, memsw
    // first; lowering, the limit first (runc orders them the same way).
    let memsw = dir.join("memory.memsw.limit_in_bytes");
    let has_memsw = memsw.exists();
    let new_limit = m.limit().unwrap_or(0);
    let current = cgroups::read_u64(&dir.join("memory.limit_in_bytes"))?.unwrap_or(u64::MAX);
    let raising = new_limit < 0 || (new_limit > 0 && new_limit as u64 > current);
    let swap = match (&swap, m.limit()) {
        (Some(s), _) => Some(s.clone()),
        // A limit without swap keeps runtimed's "no swap" rule: memsw
        // follows the limit.
        (None, Some(l)) if l != 0 && has_memsw => limit.clone(),
        _ => None,
    };
    let write_swap = |s: &Option<String>| -> Result<(), OciError> {
        match s {
            Some(s) if has_memsw => cgroups::write(&memsw, s),
            Some(_) => Err(OciError::Usage(
                "memory.swap: this kernel does not account swap (swapaccount=0)".into(),
            )),
            None => Ok(()),
        }
    };
    if raising {
        write_swap(&swap)?;
    }
    if let Some(l) = &limit {
        cgroups::write(&dir.join("memory.limit_in_bytes"), l)?;
    }
    if !raising {
        write_swap(&swap)?;
    }
    if let Some(r) = m.reservation().and_then(|v| value(v, v2)) {
        cgroups::write(&dir.join("memory.soft_limit_in_bytes"), &r)?;
    }
    Ok(())
}

fn write_cpu(dirs: &Dirs, c: &LinuxCpu) -> Result<(), OciError> {
    let v2 = dirs.v2;
    let quota = c.quota().filter(|q| *q != 0);
    let period = c.period().filter(|p| *p != 0);
    let shares = c.shares().filter(|s| *s != 0);
    if quota.is_none() && period.is_none() && shares.is_none() {
        return Ok(());
    }
    let dir = dirs.need(Controller::Cpu, "cpu")?;
    if v2 {
        if quota.is_some() || period.is_some() {
            // cpu.max is "QUOTA PERIOD"; a missing half keeps its value.
            let current = cgroups::read(&dir.join("cpu.max"))?;
            let mut parts = current.split_whitespace();
            let (cur_q, cur_p) = (
                parts.next().unwrap_or("max").to_string(),
                parts.next().unwrap_or("100000").to_string(),
            );
            let q = match quota {
                Some(q) if q < 0 => "max".to_string(),
                Some(q) => q.to_string(),
                None => cur_q,
            };
            let p = period.map_or(cur_p, |p| p.to_string());
            cgroups::write(&dir.join("cpu.max"), &format!("{q} {p}"))?;
        }
        if let Some(s) = shares {
            // The kernel's and runc's mapping of shares [2, 262144] onto
            // weight [1, 10000].
            let s = s.clamp(2, 262_144);
            let weight = 1 + ((s - 2) * 9999) / 262_142;
            cgroups::write(&dir.join("cpu.weight"), &weight.to_string())?;
        }
        return Ok(());
    }
    // v1: the period first, the quota is checked against it.
    if let Some(p) = period {
        cgroups::write(&dir.join("cpu.cfs_period_us"), &p.to_string())?;
    }
    if let Some(q) = quota {
        cgroups::write(&dir.join("cpu.cfs_quota_us"), &q.max(-1).to_string())?;
    }
    if let Some(s) = shares {
        cgroups::write(&dir.join("cpu.shares"), &s.to_string())?;
    }
    Ok(())
}

/// The recorded resources with the update's set values over them.
fn merge(mut old: LinuxResources, new: &LinuxResources) -> LinuxResources {
    if let Some(m) = new.memory() {
        let mut cur = (*old.memory()).unwrap_or_default();
        if let Some(v) = m.limit().filter(|v| *v != 0) {
            cur.set_limit(Some(v));
        }
        if let Some(v) = m.swap().filter(|v| *v != 0) {
            cur.set_swap(Some(v));
        }
        if let Some(v) = m.reservation().filter(|v| *v != 0) {
            cur.set_reservation(Some(v));
        }
        old.set_memory(Some(cur));
    }
    if let Some(c) = new.cpu() {
        let mut cur = old.cpu().clone().unwrap_or_default();
        if let Some(v) = c.quota().filter(|v| *v != 0) {
            cur.set_quota(Some(v));
        }
        if let Some(v) = c.period().filter(|v| *v != 0) {
            cur.set_period(Some(v));
        }
        if let Some(v) = c.shares().filter(|v| *v != 0) {
            cur.set_shares(Some(v));
        }
        old.set_cpu(Some(cur));
    }
    if let Some(p) = new.pids().as_ref().filter(|p| p.limit() != 0) {
        old.set_pids(Some(*p));
    }
    old
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert_eq!(parse_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("1G").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("2kb").unwrap(), 2048);
        assert_eq!(parse_bytes("-1").unwrap(), -1);
        for bad in ["", "-2", "x", "1t", "99999999999999999g"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unsupported_fields_are_refused_by_name() {
        let r: LinuxResources = serde_json::from_value(serde_json::json!({
            "cpu": {"cpus": "0-1", "shares": 512},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 1}],
        }))
        .unwrap();
        let e = refuse_unsupported(&r).unwrap_err().to_string();
        assert!(
            e.contains("cpu.cpus") && e.contains("hugepageLimits"),
            "{e}"
        );
        // What dockerd sends for `docker update --memory`: empty cpusets,
        // zero weights.
        let docker: LinuxResources = serde_json::from_value(serde_json::json!({
            "cpu": {"cpus": "", "mems": "", "shares": 0},
            "memory": {"limit": 67108864},
            "pids": {"limit": 0},
        }))
        .unwrap();
        refuse_unsupported(&docker).unwrap();
    }

    #[test]
    fn zero_keeps_and_the_rest_replaces() {
        let old: LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"limit": 100}, "pids": {"limit": 5}
        }))
        .unwrap();
        let new: LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"limit": 0, "reservation": 7}, "pids": {"limit": 9}
        }))
        .unwrap();
        let m = merge(old, &new);
        assert_eq!(m.memory().as_ref().unwrap().limit(), Some(100));
        assert_eq!(m.memory().as_ref().unwrap().reservation(), Some(7));
        assert_eq!(m.pids().as_ref().unwrap().limit(), 9);
        assert_eq!(value(0, true), None);
        assert_eq!(value(-1, true).as_deref(), Some("max"));
        assert_eq!(value(-1, false).as_deref(), Some("-1"));
    }
}
