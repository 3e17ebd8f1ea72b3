//! A container's cgroup as the later commands see it (`ps`, `events`,
//! `update`, `pause`, `resume`): the directories `create` recorded, each
//! known by the files it holds rather than by its mount's name (a v1 host
//! may co-mount controllers, `cpu,cpuacct`; v2 has one directory with
//! every controller's files).

use std::path::{Path, PathBuf};

use super::OciError;

/// A controller's directory, found by a file only it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Controller {
    Memory,
    Pids,
    Cpu,
    Cpuacct,
    Freezer,
}

impl Controller {
    /// The file that marks the controller's directory: v1's name, v2's
    /// name.
    fn markers(self) -> [&'static str; 2] {
        match self {
            Controller::Memory => ["memory.limit_in_bytes", "memory.max"],
            Controller::Pids => ["pids.max", "pids.max"],
            Controller::Cpu => ["cpu.cfs_quota_us", "cpu.max"],
            Controller::Cpuacct => ["cpuacct.usage", "cpu.stat"],
            Controller::Freezer => ["freezer.state", "cgroup.freeze"],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Cpu => "cpu",
            Controller::Cpuacct => "cpuacct",
            Controller::Freezer => "freezer",
        }
    }
}

/// The container's cgroup directories.
#[derive(Clone, Debug)]
pub struct Dirs {
    pub paths: Vec<PathBuf>,
    /// One directory with `cgroup.controllers`: the unified hierarchy.
    pub v2: bool,
}

impl Dirs {
    pub fn new(paths: &[PathBuf]) -> Dirs {
        let v2 = paths.len() == 1 && paths[0].join("cgroup.controllers").exists();
        Dirs {
            paths: paths.to_vec(),
            v2,
        }
    }

    /// The directory of `c`, if the container has one.
    pub fn dir(&self, c: Controller) -> Option<&Path> {
        let marker = c.markers()[usize::from(self.v2)];
        self.paths
            .iter()
            .find(|p| p.join(marker).exists())
            .map(PathBuf::as_path)
    }

    /// The directory of `c`, or an error naming what needs it.
    pub fn need(&self, c: Controller, for_what: &str) -> Result<&Path, OciError> {
        self.dir(c).ok_or_else(|| {
            OciError::Usage(format!(
                "{for_what}: the container's cgroup has no {} controller",
                c.name()
            ))
        })
    }

    /// Every pid in the cgroup, sorted.
    pub fn pids(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = self
            .paths
            .iter()
            .filter_map(|p| std::fs::read_to_string(p.join("cgroup.procs")).ok())
            .flat_map(|t| {
                t.lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }
}

/// A file's text, trimmed.
pub fn read(path: &Path) -> Result<String, OciError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(super::io_err(format!("read {}", file_name(path))))
}

/// A number file; `max` (v2) and v1's "unlimited" values read as `None`.
pub fn read_u64(path: &Path) -> Result<Option<u64>, OciError> {
    let text = read(path)?;
    if text == "max" {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| OciError::Sandbox(format!("{}: not a number: {text:?}", file_name(path))))
}

/// A `key value` line file (memory.stat, cpu.stat, memory.events).
pub fn read_keyed(path: &Path) -> Result<Vec<(String, u64)>, OciError> {
    Ok(read(path)?
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect())
}

pub fn write(path: &Path, value: &str) -> Result<(), OciError> {
    std::fs::write(path, value).map_err(super::io_err(format!(
        "write {value:?} to {}",
        file_name(path)
    )))
}

/// The file's name with its controller directory (`memory.max`): errors
/// name what failed without showing the host's cgroup layout.
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
