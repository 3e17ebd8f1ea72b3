//! `ps` and `events`: what is in a container's cgroup and what it uses,
//! in runc's output shapes (containerd's go-runc parses them: `ps
//! --format json` is a JSON array of host pids; `events` prints one JSON
//! object per line, `{"type","id","data"}`, with runc's `types.Stats` as
//! the data of a `stats` event and nothing for an `oom` event).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::cgroups::{self, Controller, Dirs};
use super::state::Status;
use super::{io_err, Context, OciError};

#[derive(clap::Args, Debug)]
pub struct PsArgs {
    /// `table` (the host's `ps` lines of the container's processes) or
    /// `json` (their host pids).
    #[arg(long, short = 'f', default_value = "table")]
    pub format: super::manage::ListFormat,
    pub id: String,
    /// Options for ps(1) in the table form (default `-ef`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

/// `ps ID`.
pub fn ps(ctx: &Context, args: &PsArgs) -> Result<i32, OciError> {
    let (state, status) = ctx.root.peek(&args.id)?;
    if status == Status::Stopped {
        return Err(OciError::WrongStatus {
            id: args.id.clone(),
            status: status.as_str(),
            action: "container not running",
        });
    }
    let pids = Dirs::new(&state.cgroup_paths).pids();
    let mut out = std::io::stdout().lock();
    if args.format == super::manage::ListFormat::Json {
        let text = serde_json::to_string(&pids).map_err(|e| OciError::Sandbox(e.to_string()))?;
        writeln!(out, "{text}").map_err(io_err("write to stdout"))?;
        return Ok(0);
    }
    let ps_args: Vec<String> = if args.ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        args.ps_args.clone()
    };
    let listing = std::process::Command::new("ps")
        .args(&ps_args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(io_err("run ps"))?;
    if !listing.status.success() {
        return Err(OciError::Sandbox(format!(
            "ps {}: {}",
            ps_args.join(" "),
            String::from_utf8_lossy(&listing.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&listing.stdout);
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Ok(0);
    };
    let Some(pid_col) = header.split_whitespace().position(|h| h == "PID") else {
        return Err(OciError::Usage(format!(
            "ps {}: its output has no PID column",
            ps_args.join(" ")
        )));
    };
    writeln!(out, "{header}").map_err(io_err("write to stdout"))?;
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(pid_col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.binary_search(&p).is_ok()) {
            writeln!(out, "{line}").map_err(io_err("write to stdout"))?;
        }
    }
    Ok(0)
}

#[derive(clap::Args, Debug)]
pub struct EventsArgs {
    /// Print one stats event and exit.
    #[arg(long)]
    pub stats: bool,
    /// How often the stream prints stats (a Go duration: 5s, 500ms, 1m).
    #[arg(long, default_value = "5s", value_parser = parse_interval)]
    pub interval: Duration,
    pub id: String,
}

/// `--interval`: Go's duration syntax as far as runc's users write it.
fn parse_interval(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| format!("{text:?}: {e}"))?;
    if d.is_zero() {
        return Err("the interval must be positive".into());
    }
    Ok(d)
}

/// runc's `types.Event`.
#[derive(Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Stats>,
}

/// runc's `types.Stats` (the parts a cgroup gives).
#[derive(Serialize, Default)]
struct Stats {
    cpu: Cpu,
    memory: Memory,
    pids: Pids,
    blkio: Blkio,
}

#[derive(Serialize, Default)]
struct Cpu {
    usage: CpuUsage,
    throttling: Throttling,
}

#[derive(Serialize, Default)]
struct CpuUsage {
    /// ns.
    total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    percpu: Vec<u64>,
    kernel: u64,
    user: u64,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct Throttling {
    periods: u64,
    throttled_periods: u64,
    /// ns.
    throttled_time: u64,
}

#[derive(Serialize, Default)]
struct Memory {
    cache: u64,
    usage: MemoryEntry,
    swap: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    raw: BTreeMap<String, u64>,
}

#[derive(Serialize, Default)]
struct MemoryEntry {
    limit: u64,
    usage: u64,
    max: u64,
    failcnt: u64,
}

#[derive(Serialize, Default)]
struct Pids {
    current: u64,
    limit: u64,
}

/// The block I/O counters, when the container's cgroup has the io (v2) or
/// blkio (v1) controller; runtimed's sandboxes do not enable it, so this
/// is usually empty, as runc prints it then.
#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct Blkio {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    io_service_bytes_recursive: Vec<BlkioEntry>,
}

#[derive(Serialize)]
struct BlkioEntry {
    major: u64,
    minor: u64,
    op: String,
    value: u64,
}

/// `events ID`: with `--stats` one stats event; without, a stats event
/// every interval and an `oom` event whenever the OOM killer struck,
/// until the container stops.
pub fn events(ctx: &Context, args: &EventsArgs) -> Result<i32, OciError> {
    let (state, status) = ctx.root.peek(&args.id)?;
    if status == Status::Stopped {
        return Err(OciError::WrongStatus {
            id: args.id.clone(),
            status: status.as_str(),
            action: "container not running",
        });
    }
    let dirs = Dirs::new(&state.cgroup_paths);
    if args.stats {
        emit(&Event {
            kind: "stats",
            id: &args.id,
            data: Some(collect(&dirs)?),
        })?;
        return Ok(0);
    }
    // OOM kills are polled (runc waits on an eventfd or inotify): a short
    // tick, well below any interval a caller sets.
    let tick = Duration::from_millis(200).min(args.interval);
    let mut ooms = oom_kills(&dirs);
    let mut next_stats = Instant::now();
    while state.init_alive() {
        let now_ooms = oom_kills(&dirs);
        if now_ooms > ooms {
            emit(&Event {
                kind: "oom",
                id: &args.id,
                data: None,
            })?;
        }
        ooms = now_ooms;
        if Instant::now() >= next_stats {
            // A cgroup that vanished (deleted meanwhile) ends the stream.
            let Ok(stats) = collect(&dirs) else { break };
            emit(&Event {
                kind: "stats",
                id: &args.id,
                data: Some(stats),
            })?;
            next_stats = Instant::now() + args.interval;
        }
        std::thread::sleep(tick);
    }
    Ok(0)
}

fn emit(event: &Event<'_>) -> Result<(), OciError> {
    let text = serde_json::to_string(event).map_err(|e| OciError::Sandbox(e.to_string()))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(io_err("write to stdout"))
}

fn oom_kills(dirs: &Dirs) -> u64 {
    let Some(dir) = dirs.dir(Controller::Memory) else {
        return 0;
    };
    let file = if dirs.v2 {
        "memory.events"
    } else {
        "memory.oom_control"
    };
    cgroups::read_keyed(&dir.join(file))
        .ok()
        .and_then(|kv| {
            kv.into_iter()
                .find(|(k, _)| k == "oom_kill")
                .map(|(_, v)| v)
        })
        .unwrap_or(0)
}

fn collect(dirs: &Dirs) -> Result<Stats, OciError> {
    let mut s = Stats::default();
    if dirs.v2 {
        v2_stats(&dirs.paths[0], &mut s)?;
    } else {
        v1_stats(dirs, &mut s)?;
    }
    Ok(s)
}

fn keyed(path: &Path) -> Result<BTreeMap<String, u64>, OciError> {
    Ok(cgroups::read_keyed(path)?.into_iter().collect())
}

/// A limit as runc reports it: the number, or u64::MAX for none.
fn limit(path: &Path) -> Result<u64, OciError> {
    Ok(cgroups::read_u64(path)?.unwrap_or(u64::MAX))
}

fn v2_stats(dir: &Path, s: &mut Stats) -> Result<(), OciError> {
    let cpu = keyed(&dir.join("cpu.stat"))?;
    let us = |k: &str| cpu.get(k).copied().unwrap_or(0).saturating_mul(1000);
    s.cpu.usage = CpuUsage {
        total: us("usage_usec"),
        percpu: Vec::new(),
        kernel: us("system_usec"),
        user: us("user_usec"),
    };
    s.cpu.throttling = Throttling {
        periods: cpu.get("nr_periods").copied().unwrap_or(0),
        throttled_periods: cpu.get("nr_throttled").copied().unwrap_or(0),
        throttled_time: us("throttled_usec"),
    };
    if dir.join("memory.current").exists() {
        let raw = keyed(&dir.join("memory.stat"))?;
        s.memory.cache = raw.get("file").copied().unwrap_or(0);
        let usage = cgroups::read_u64(&dir.join("memory.current"))?.unwrap_or(0);
        let events = keyed(&dir.join("memory.events"))?;
        s.memory.usage = MemoryEntry {
            limit: limit(&dir.join("memory.max"))?,
            usage,
            max: cgroups::read_u64(&dir.join("memory.peak"))
                .ok()
                .flatten()
                .unwrap_or(usage),
            failcnt: events.get("max").copied().unwrap_or(0),
        };
        if dir.join("memory.swap.current").exists() {
            s.memory.swap = MemoryEntry {
                limit: limit(&dir.join("memory.swap.max"))?,
                usage: cgroups::read_u64(&dir.join("memory.swap.current"))?.unwrap_or(0),
                max: 0,
                failcnt: 0,
            };
        }
        s.memory.raw = raw;
    }
    if dir.join("pids.current").exists() {
        s.pids = Pids {
            current: cgroups::read_u64(&dir.join("pids.current"))?.unwrap_or(0),
            limit: cgroups::read_u64(&dir.join("pids.max"))?.unwrap_or(0),
        };
    }
    if dir.join("io.stat").exists() {
        s.blkio.io_service_bytes_recursive = v2_io(&cgroups::read(&dir.join("io.stat"))?);
    }
    Ok(())
}

/// io.stat lines: `MAJ:MIN rbytes=.. wbytes=.. rios=..`.
fn v2_io(text: &str) -> Vec<BlkioEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some((major, minor)) = words.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else {
            continue;
        };
        for w in words {
            let Some((k, v)) = w.split_once('=') else {
                continue;
            };
            let op = match k {
                "rbytes" => "Read",
                "wbytes" => "Write",
                _ => continue,
            };
            if let Ok(value) = v.parse() {
                out.push(BlkioEntry {
                    major,
                    minor,
                    op: op.into(),
                    value,
                });
            }
        }
    }
    out
}

fn v1_stats(dirs: &Dirs, s: &mut Stats) -> Result<(), OciError> {
    if let Some(dir) = dirs.dir(Controller::Cpuacct) {
        let total = cgroups::read_u64(&dir.join("cpuacct.usage"))?.unwrap_or(0);
        let percpu = cgroups::read(&dir.join("cpuacct.usage_percpu"))?
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        s.cpu.usage = CpuUsage {
            total,
            percpu,
            kernel: cgroups::read_u64(&dir.join("cpuacct.usage_sys"))?.unwrap_or(0),
            user: cgroups::read_u64(&dir.join("cpuacct.usage_user"))?.unwrap_or(0),
        };
    }
    if let Some(dir) = dirs.dir(Controller::Cpu) {
        let t = keyed(&dir.join("cpu.stat"))?;
        s.cpu.throttling = Throttling {
            periods: t.get("nr_periods").copied().unwrap_or(0),
            throttled_periods: t.get("nr_throttled").copied().unwrap_or(0),
            throttled_time: t.get("throttled_time").copied().unwrap_or(0),
        };
    }
    if let Some(dir) = dirs.dir(Controller::Memory) {
        let raw = keyed(&dir.join("memory.stat"))?;
        s.memory.cache = raw.get("total_cache").copied().unwrap_or(0);
        let entry = |prefix: &str| -> Result<MemoryEntry, OciError> {
            let f = |name: &str| cgroups::read_u64(&dir.join(format!("{prefix}.{name}")));
            Ok(MemoryEntry {
                limit: f("limit_in_bytes")?.unwrap_or(u64::MAX),
                usage: f("usage_in_bytes")?.unwrap_or(0),
                max: f("max_usage_in_bytes")?.unwrap_or(0),
                failcnt: f("failcnt")?.unwrap_or(0),
            })
        };
        s.memory.usage = entry("memory")?;
        if dir.join("memory.memsw.usage_in_bytes").exists() {
            s.memory.swap = entry("memory.memsw")?;
        }
        s.memory.raw = raw;
    }
    if let Some(dir) = dirs.dir(Controller::Pids) {
        s.pids = Pids {
            current: cgroups::read_u64(&dir.join("pids.current"))?.unwrap_or(0),
            limit: cgroups::read_u64(&dir.join("pids.max"))?.unwrap_or(0),
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_stat_lines_become_blkio_entries() {
        let e = v2_io("8:0 rbytes=4096 wbytes=8192 rios=1 wios=2\nbad line\n253:1 rbytes=1\n");
        let got: Vec<(u64, u64, &str, u64)> = e
            .iter()
            .map(|b| (b.major, b.minor, b.op.as_str(), b.value))
            .collect();
        assert_eq!(
            got,
            [
                (8, 0, "Read", 4096),
                (8, 0, "Write", 8192),
                (253, 1, "Read", 1)
            ]
        );
    }

    #[test]
    fn events_have_runcs_shape() {
        let e = Event {
            kind: "stats",
            id: "box",
            data: Some(Stats::default()),
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "stats");
        assert_eq!(v["id"], "box");
        for k in ["cpu", "memory", "pids", "blkio"] {
            assert!(v["data"].get(k).is_some(), "{k}: {v}");
        }
        assert!(v["data"]["cpu"]["throttling"]
            .get("throttledPeriods")
            .is_some());
        assert!(v["data"]["memory"]["usage"].get("failcnt").is_some());
        let oom = serde_json::to_value(Event {
            kind: "oom",
            id: "box",
            data: None,
        })
        .unwrap();
        assert_eq!(oom, serde_json::json!({"type": "oom", "id": "box"}));
        assert!(parse_interval("0s").is_err());
        assert_eq!(parse_interval("500ms").unwrap(), Duration::from_millis(500));
    }
}
