//! Per-sandbox cgroups: the memory, pids and CPU limits, the accounting every
//! run reports (CPU user/system, peak memory, OOM kills, pids-limit hits), and
//! teardown that reaches every process of the tree, including ones that
//! double-forked away from the sandbox's PID 1.
//!
//! We write cgroupfs directly instead of using a crate: a start touches only
//! the controllers we use (a mkdir and a few writes), teardown is a kill and
//! an rmdir, and on v2 we hand out the directory fd that
//! `clone3(CLONE_INTO_CGROUP)` needs so the child starts inside its cgroup
//! (a v1 move by pid can cost 5-15 ms of RCU grace period when starts are
//! sporadic: docs/process-model.md, step `join_cgroup`).
//!
//! Layout: every cgroup lives in `<own>/<parent>/<name>` (`parent` is
//! `runtimed` by default), where `<own>` is this process's cgroup in each
//! hierarchy. We never create anything elsewhere, never write a limit above
//! our own leaves, and never change mounts. v2 (pure unified hierarchy) is the
//! target; hybrid hosts with the controllers on v1 get one directory per v1
//! hierarchy (memory, pids, cpuacct, and cpu only when a CPU quota is set).
//!
//! v2 and the no-internal-process rule: to give `<own>/<parent>` the memory,
//! pids and cpu controllers they must be enabled in
//! `<own>/cgroup.subtree_control`, which the kernel refuses (EBUSY) while
//! `<own>` holds processes (cgroup-v2.rst, "No Internal Process
//! Constraint"); a daemon started by systemd with `Delegate=yes` is in exactly
//! that spot. Detection then moves the calling process (all its threads) into
//! the leaf `<own>/<parent>-supervisor`, which has no limits, and retries.
//!
//! Writes outside our own leaves are limited to that: `cgroup.subtree_control`
//! of `<own>` and `<own>/<parent>` on v2 (only when a controller is missing)
//! and the supervisor move.
//!
//! Cost (2-core development host, hybrid v1, `examples/cgroup_cost.rs`):
//! create + remove of an empty cgroup with memory and pids limits ~0.17 ms
//! median (three mkdirs, three writes, an open, three rmdirs), ~0.25 ms with
//! a CPU quota (one more mkdir and rmdir, two more writes).
//!
//! Assumption: sandboxed processes cannot create cgroups of their own (no
//! cgroupfs inside, no capabilities), so a sandbox cgroup has no children.

#![forbid(unsafe_code)]

mod discover;
mod v1;
mod v2;

#[cfg(test)]
mod tests;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;

use crate::sys;

/// Which cgroup hierarchy the limits live in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum CgroupVersion {
    /// Legacy or hybrid host: one hierarchy per controller (group).
    V1,
    /// Unified hierarchy.
    V2,
}

/// Limits of one cgroup; `None` leaves the kernel default (no limit).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CgroupLimits {
    /// Memory limit; swap is limited to 0 beside it (memsw on v1, swap.max on v2).
    pub memory_bytes: Option<u64>,
    /// Maximum number of tasks (processes and threads).
    pub pids: Option<u64>,
    /// CPU time allowed per period (CFS bandwidth).
    pub cpu_quota_us: Option<u64>,
    /// CFS period; 100 000 µs when `None` and a quota is set.
    pub cpu_period_us: Option<u64>,
    /// Memory plus swap (OCI's `memory.swap`, as v1's memsw counts it);
    /// `None`: no swap beside `memory_bytes`; `u64::MAX`: swap unlimited.
    pub memory_swap_bytes: Option<u64>,
    /// Memory protected from reclaim under pressure elsewhere (OCI's
    /// `memory.reservation`: v2 `memory.low`, v1 the soft limit).
    pub memory_reservation_bytes: Option<u64>,
    /// Relative CPU weight in v1 shares (OCI's `cpu.shares`, 2..=262144);
    /// converted for v2's `cpu.weight`.
    pub cpu_shares: Option<u64>,
}

/// v2's `cpu.weight` (1..=10000) for v1's `cpu.shares` (2..=262144): the
/// linear map runc and crun document, so 1024 shares (the v1 default) is
/// weight 39 and both ends meet.
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// Accounting of one cgroup. Fields of a controller the host lacks stay 0.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CgroupStats {
    pub cpu_usage_ns: u64,
    pub cpu_user_ns: u64,
    pub cpu_system_ns: u64,
    pub memory_current_bytes: u64,
    pub memory_peak_bytes: u64,
    /// Processes killed by the OOM killer because of this cgroup's limit.
    pub oom_kills: u64,
    pub pids_current: u64,
    /// Forks refused because of `pids.max`.
    pub pids_limit_hits: u64,
}

/// Errors of cgroup setup, accounting and teardown.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("invalid cgroup name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("invalid cgroup limit {limit}={value}: {reason}")]
    InvalidLimit {
        limit: &'static str,
        value: u64,
        reason: &'static str,
    },
    #[error("no usable cgroup hierarchy: no cgroup mount shows this process's cgroup")]
    NoCgroupFs,
    #[error(
        "the {limit} limit needs the {controller} controller, which this host does not offer us"
    )]
    ControllerMissing {
        controller: &'static str,
        limit: &'static str,
    },
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot parse {} (content {content:?})", path.display())]
    Parse { path: PathBuf, content: String },
    #[error("cannot write {value:?} to {}", path.display())]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot create cgroup directory {}", path.display())]
    Mkdir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot remove cgroup directory {}", path.display())]
    Rmdir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot open {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot send SIGKILL to pid {pid} of cgroup {}", path.display())]
    Kill {
        pid: i32,
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("cgroup {} still has processes {pids:?} after {waited:?} of killing", path.display())]
    NotEmpty {
        path: PathBuf,
        pids: Vec<i32>,
        waited: Duration,
    },
    #[error(transparent)]
    Unusable(#[from] CgroupsUnusable),
    #[error("no cgroup {name:?} to make a child cgroup in")]
    ParentMissing { name: String },
    #[error("cgroup {} still busy after {waited:?}", path.display())]
    Busy { path: PathBuf, waited: Duration },
}

/// A controller we use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Controller {
    Memory,
    Pids,
    Cpu,
    /// v1 only; on v2 CPU accounting is part of the core (`cpu.stat`).
    Cpuacct,
}

impl Controller {
    const ALL: [Controller; 4] = [Self::Memory, Self::Pids, Self::Cpu, Self::Cpuacct];

    fn name(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Pids => "pids",
            Self::Cpu => "cpu",
            Self::Cpuacct => "cpuacct",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A small set of [`Controller`]s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct ControllerSet(u8);

impl ControllerSet {
    const EMPTY: Self = Self(0);
    const ALL: Self = Self(0b1111);

    fn with(self, c: Controller) -> Self {
        Self(self.0 | c.bit())
    }
    fn has(self, c: Controller) -> bool {
        self.0 & c.bit() != 0
    }
    fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
    fn intersect(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }
    fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }
    fn is_empty(self) -> bool {
        self.0 == 0
    }
    fn iter(self) -> impl Iterator<Item = Controller> {
        Controller::ALL.into_iter().filter(move |c| self.has(*c))
    }
}

/// The controllers `runtimed doctor` expects per version.
fn required(version: CgroupVersion) -> ControllerSet {
    let set = ControllerSet::EMPTY
        .with(Controller::Memory)
        .with(Controller::Pids)
        .with(Controller::Cpu);
    match version {
        CgroupVersion::V1 => set.with(Controller::Cpuacct),
        CgroupVersion::V2 => set,
    }
}

/// One hierarchy we create cgroups in.
#[derive(Debug)]
struct Hierarchy {
    /// `<own>/<parent name>`.
    parent: PathBuf,
    /// Controllers usable below `parent`.
    controllers: ControllerSet,
}

#[derive(Debug)]
struct Layout {
    version: CgroupVersion,
    hierarchies: Vec<Hierarchy>,
}

/// Where and how this process creates cgroups; discovered once, shared by
/// cloning (an `Arc` inside).
///
/// The parent directories are shared and long-lived: nothing removes them,
/// because another process (a second runtimed, or its tests) may be creating
/// a cgroup in them at any moment, and an rmdir of the empty parent would
/// make that mkdir fail.
#[derive(Clone, Debug)]
pub struct CgroupManager {
    layout: Arc<Layout>,
}

/// Why [`manager`] has none: detection failed once, for the life of the
/// process (the text of the [`CgroupError`] it failed with).
#[derive(Debug, Clone, thiserror::Error)]
#[error("cgroups unusable: {0}")]
pub struct CgroupsUnusable(String);

/// The cgroup manager of this process, detected on first use and kept for
/// the process's life. A lazy global on purpose, owned here: detection may
/// move the whole process into the supervisor leaf (v2, see the module
/// doc), a one-time change of process state, and the daemon warms it before
/// forking its zygote so that every helper inherits the result instead of
/// detecting again per sandbox.
pub fn manager() -> Result<&'static CgroupManager, CgroupsUnusable> {
    static MGR: std::sync::OnceLock<Result<CgroupManager, CgroupsUnusable>> =
        std::sync::OnceLock::new();
    MGR.get_or_init(|| CgroupManager::detect().map_err(|e| CgroupsUnusable(e.to_string())))
        .as_ref()
        .map_err(Clone::clone)
}

impl CgroupManager {
    /// Detects the host's cgroups with the default parent directory `runtimed`.
    pub fn detect() -> Result<Self, CgroupError> {
        Self::detect_with_parent("runtimed")
    }

    /// Detects the host's cgroups and makes sure the parent directory `name`
    /// exists below our own cgroup of every hierarchy we use (on v2 with the
    /// controllers enabled for its children; see the module doc for the
    /// supervisor leaf). Controllers the host does not offer us are not an
    /// error here: [`Self::missing_controllers`] lists them.
    pub fn detect_with_parent(name: &str) -> Result<Self, CgroupError> {
        validate_name(name)?;
        let mountinfo = read_text(Path::new("/proc/self/mountinfo"))?;
        let own = read_text(Path::new("/proc/self/cgroup"))?;
        let plan = discover::plan(
            &discover::parse_mountinfo(&mountinfo),
            &discover::parse_proc_cgroup(&own),
            &v2::supervisor_leaf(name),
        )?;
        let layout = match plan {
            discover::Plan::V1(own_dirs) => {
                let mut hierarchies = Vec::with_capacity(own_dirs.len());
                for (own, controllers) in own_dirs {
                    let parent = own.join(name);
                    v1::prepare_parent(&parent)?;
                    hierarchies.push(Hierarchy {
                        parent,
                        controllers,
                    });
                }
                Layout {
                    version: CgroupVersion::V1,
                    hierarchies,
                }
            }
            discover::Plan::V2(own) => {
                let parent = own.join(name);
                let controllers = v2::prepare_parent(&own, name)?;
                Layout {
                    version: CgroupVersion::V2,
                    hierarchies: vec![Hierarchy {
                        parent,
                        controllers,
                    }],
                }
            }
        };
        Ok(Self {
            layout: Arc::new(layout),
        })
    }

    pub fn version(&self) -> CgroupVersion {
        self.layout.version
    }

    fn usable(&self) -> ControllerSet {
        let all = self
            .layout
            .hierarchies
            .iter()
            .fold(ControllerSet::EMPTY, |acc, h| acc.union(h.controllers));
        all.intersect(match self.version() {
            CgroupVersion::V1 => ControllerSet::ALL,
            CgroupVersion::V2 => required(CgroupVersion::V2),
        })
    }

    /// Usable controllers among memory, pids, cpu and (v1) cpuacct.
    pub fn controllers(&self) -> Vec<String> {
        self.usable().iter().map(|c| c.name().to_owned()).collect()
    }

    /// Required controllers (memory, pids, cpu, and cpuacct on v1) that are
    /// not usable: what `runtimed doctor` reports.
    pub fn missing_controllers(&self) -> Vec<String> {
        let usable = self.usable();
        required(self.version())
            .iter()
            .filter(|c| !usable.has(*c))
            .map(|c| c.name().to_owned())
            .collect()
    }

    /// The parent directories, one per v1 hierarchy or the one on v2.
    pub fn parent_paths(&self) -> Vec<PathBuf> {
        self.layout
            .hierarchies
            .iter()
            .map(|h| h.parent.clone())
            .collect()
    }

    /// Creates cgroup `name` with `limits`: one mkdir per hierarchy and a
    /// write per limit. On any error, whatever was made is removed again.
    /// The cgroup `name` left by an earlier process (e.g. a runtimed that was
    /// killed), for [`Cgroup::remove`]; `None` when no directory of it exists.
    pub fn open_existing(&self, name: &str) -> Result<Option<Cgroup>, CgroupError> {
        validate_name(name)?;
        let mut cgroup = Cgroup::empty(name, self.version());
        for h in &self.layout.hierarchies {
            let dir = h.parent.join(name);
            if dir.is_dir() {
                cgroup.paths.push(dir);
                cgroup.sets.push(h.controllers);
            }
        }
        if cgroup.paths.is_empty() {
            cgroup.removed = true;
            return Ok(None);
        }
        Ok(Some(cgroup))
    }

    /// The accounting of cgroup `name`, which someone else owns (read
    /// only: unlike a [`Cgroup`] from [`Self::open_existing`], nothing is
    /// killed or removed afterwards). `None` when it does not exist.
    pub fn stats_of(&self, name: &str) -> Result<Option<CgroupStats>, CgroupError> {
        let Some(mut cg) = self.open_existing(name)? else {
            return Ok(None);
        };
        let stats = cg.stats();
        cg.removed = true;
        stats.map(Some)
    }

    /// OOM kills in cgroup `name` so far (one file read: what a session's
    /// file writer checks before and after to tell an OOM kill from a
    /// plain SIGKILL; on v1 the cgroup's own processes only).
    /// `None` when the cgroup or its memory controller is missing.
    pub fn oom_kills_of(&self, name: &str) -> Result<Option<u64>, CgroupError> {
        let file = match self.version() {
            CgroupVersion::V1 => "memory.oom_control",
            CgroupVersion::V2 => "memory.events",
        };
        self.event_of(name, Controller::Memory, file, "oom_kill")
    }

    /// The counter `key` of the keyed file `file` of cgroup `name` in the
    /// hierarchy of `controller`.
    fn event_of(
        &self,
        name: &str,
        controller: Controller,
        file: &str,
        key: &str,
    ) -> Result<Option<u64>, CgroupError> {
        validate_name(name)?;
        let Some(h) = self
            .layout
            .hierarchies
            .iter()
            .find(|h| h.controllers.has(controller))
        else {
            return Ok(None);
        };
        let path = h.parent.join(name).join(file);
        match read_keyed(&path, [key]) {
            Ok([n]) => Ok(Some(n)),
            Err(CgroupError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Creates cgroup `name` like [`Self::create`], ready to hold child
    /// cgroups ([`Self::create_child`]): a session, whose execs each get
    /// their own. On v2 a cgroup that gives its children controllers may
    /// hold no process itself (cgroup-v2.rst, "No Internal Process
    /// Constraint"), so its own processes live in the leaf [`INIT_LEAF`]
    /// (what [`Cgroup::v2_dir_fd`] then names, for `CLONE_INTO_CGROUP`)
    /// and memory, pids and cpu are enabled for its children. The limits
    /// stay on `name`, over all of them. v1 has no such rule: the
    /// processes stay in `name` and children are plain subdirectories.
    pub fn create_with_children(
        &self,
        name: &str,
        limits: &CgroupLimits,
    ) -> Result<Cgroup, CgroupError> {
        let mut cgroup = self.create(name, limits)?;
        if self.version() == CgroupVersion::V2 {
            let dir = cgroup.paths[0].clone();
            let leaf = dir.join(INIT_LEAF);
            fs::create_dir(&leaf).map_err(|source| CgroupError::Mkdir {
                path: leaf.clone(),
                source,
            })?;
            v2::enable(&dir, cgroup.sets[0])?;
            cgroup.v2_dir = Some(open_dir(&leaf)?);
        }
        Ok(cgroup)
    }

    /// Creates the child cgroup `name` of cgroup `parent` (made by
    /// [`Self::create_with_children`], possibly by another process: the
    /// daemon makes an exec's cgroup below the session its helper made),
    /// with `limits` of its own below the parent's. Its accounting is its
    /// processes' alone: what an exec's report is built from. It is
    /// removed like any [`Cgroup`] (its processes are killed first), and
    /// removing the parent removes it too.
    pub fn create_child(
        &self,
        parent: &str,
        name: &str,
        limits: &CgroupLimits,
    ) -> Result<Cgroup, CgroupError> {
        validate_name(parent)?;
        validate_name(name)?;
        if name == INIT_LEAF {
            return Err(CgroupError::InvalidName {
                name: name.to_owned(),
                reason: "reserved for the parent's own processes",
            });
        }
        let limits = checked_limits(limits, self.usable())?;
        let version = self.version();
        let mut cgroup = Cgroup::empty(&format!("{parent}/{name}"), version);
        for h in &self.layout.hierarchies {
            let parent_dir = h.parent.join(parent);
            // v1: as in `create`, the cpu hierarchy only for a quota (the
            // child stays in the parent's cpu cgroup, under its quota).
            let wanted = version == CgroupVersion::V2
                || h.controllers.iter().any(|c| c != Controller::Cpu)
                || limits.cpu.is_some();
            if !wanted || !parent_dir.is_dir() {
                continue;
            }
            let controllers = match version {
                CgroupVersion::V1 => h.controllers,
                // What the parent gives its children.
                CgroupVersion::V2 => v2::enabled(&parent_dir)?.intersect(h.controllers),
            };
            let dir = parent_dir.join(name);
            fs::create_dir(&dir).map_err(|source| CgroupError::Mkdir {
                path: dir.clone(),
                source,
            })?;
            cgroup.paths.push(dir);
            cgroup.sets.push(controllers);
        }
        if cgroup.paths.is_empty() {
            // The parent is gone (or never was): nothing made.
            cgroup.removed = true;
            return Err(CgroupError::ParentMissing {
                name: parent.to_owned(),
            });
        }
        self.finish_create(cgroup, &limits)
    }

    pub fn create(&self, name: &str, limits: &CgroupLimits) -> Result<Cgroup, CgroupError> {
        validate_name(name)?;
        self.create_in(name, |h| h.parent.join(name), limits)
    }

    /// An OCI container's cgroup at `path` (`linux.cgroupsPath`, cgroupfs
    /// style, runc's rules): an absolute path is below each hierarchy's
    /// root as this process sees it (its cgroup namespace's), a relative
    /// one below this process's own cgroup. Missing parents are made, on
    /// v2 with our controllers enabled for their children; they stay
    /// (an engine's parent like `/docker` is shared). Only plain names
    /// (`[A-Za-z0-9_.-]`, no `..`) make up the path.
    pub fn create_at(&self, path: &Path, limits: &CgroupLimits) -> Result<Cgroup, CgroupError> {
        let rel: PathBuf = path
            .components()
            .filter(|c| !matches!(c, std::path::Component::RootDir))
            .collect();
        let mut names = Vec::new();
        for c in rel.components() {
            let std::path::Component::Normal(n) = c else {
                return Err(CgroupError::InvalidName {
                    name: path.display().to_string(),
                    reason: "only plain names may make up a cgroup path",
                });
            };
            let n = n.to_str().ok_or(CgroupError::InvalidName {
                name: path.display().to_string(),
                reason: "not UTF-8",
            })?;
            validate_name(n)?;
            names.push(n);
        }
        let Some((leaf, parents)) = names.split_last() else {
            return Err(CgroupError::InvalidName {
                name: path.display().to_string(),
                reason: "empty",
            });
        };
        let absolute = path.is_absolute();
        let mut bases = Vec::new();
        for h in self.layout.hierarchies.iter().filter(|h| {
            self.wanted(
                h,
                limits.cpu_quota_us.is_some() || limits.cpu_shares.is_some(),
            )
        }) {
            // `parent` is `<own>/runtimed`.
            let own = h.parent.parent().unwrap_or(&h.parent).to_path_buf();
            let mut dir = if absolute { hierarchy_root(&own) } else { own };
            for p in parents {
                dir = dir.join(p);
                mkdir_shared(&dir)?;
                if self.version() == CgroupVersion::V2 {
                    v2::enable(&dir, h.controllers)?;
                }
            }
            bases.push((h.parent.clone(), dir));
        }
        self.create_in(
            leaf,
            |h| {
                bases
                    .iter()
                    .find(|(p, _)| *p == h.parent)
                    .map(|(_, d)| d.join(leaf))
                    .unwrap_or_else(|| h.parent.join(leaf))
            },
            limits,
        )
    }

    /// Whether a sandbox's cgroup needs hierarchy `h`.
    fn wanted(&self, h: &Hierarchy, cpu_settings: bool) -> bool {
        match self.version() {
            // The cpu hierarchy adds a mkdir, an attach and an rmdir to
            // every start; it is only needed for a quota or shares (usage
            // comes from cpuacct).
            CgroupVersion::V1 => h.controllers.iter().any(|c| c != Controller::Cpu) || cpu_settings,
            CgroupVersion::V2 => true,
        }
    }

    /// Makes the cgroup `name` at `dir_of(hierarchy)` in every hierarchy
    /// it needs, with `limits`.
    fn create_in(
        &self,
        name: &str,
        dir_of: impl Fn(&Hierarchy) -> PathBuf,
        limits: &CgroupLimits,
    ) -> Result<Cgroup, CgroupError> {
        let limits = checked_limits(limits, self.usable())?;
        let version = self.version();
        let mut cgroup = Cgroup::empty(name, version);
        // On error `cgroup` is dropped, and Drop removes the directories made
        // so far (they are empty, so that is one rmdir each).
        for h in &self.layout.hierarchies {
            // A cpu share is a v1 `cpu` hierarchy setting as a quota is.
            if self.wanted(h, limits.cpu.is_some() || limits.cpu_shares.is_some()) {
                let dir = dir_of(h);
                fs::create_dir(&dir).map_err(|source| CgroupError::Mkdir {
                    path: dir.clone(),
                    source,
                })?;
                cgroup.paths.push(dir);
                cgroup.sets.push(h.controllers);
            }
        }
        if cgroup.paths.is_empty() {
            return Err(CgroupError::NoCgroupFs);
        }
        self.finish_create(cgroup, &limits)
    }

    /// The common end of `create` and `create_child`: the limits, the v2
    /// directory fd, the kept-open CPU counter.
    fn finish_create(&self, mut cgroup: Cgroup, limits: &Checked) -> Result<Cgroup, CgroupError> {
        let version = self.version();
        match version {
            CgroupVersion::V1 => v1::write_limits(&cgroup, limits)?,
            CgroupVersion::V2 => {
                let dir = &cgroup.paths[0];
                v2::write_limits(dir, limits)?;
                cgroup.v2_dir = Some(open_dir(dir)?);
            }
        }
        cgroup.cpu_usage = match version {
            CgroupVersion::V1 => cgroup
                .dir_with(Controller::Cpuacct)
                .map(|d| d.join("cpuacct.usage")),
            CgroupVersion::V2 => Some(cgroup.paths[0].join("cpu.stat")),
        }
        .map(|path| File::open(&path).map_err(|source| CgroupError::Open { path, source }))
        .transpose()?;
        Ok(cgroup)
    }
}

/// Limits after defaults and validation.
#[derive(Debug)]
struct Checked {
    memory: Option<u64>,
    /// Memory plus swap; `u64::MAX` unlimited (only with `memory`).
    memory_swap: Option<u64>,
    memory_reservation: Option<u64>,
    pids: Option<u64>,
    /// (quota, period) in µs.
    cpu: Option<(u64, u64)>,
    cpu_shares: Option<u64>,
}

/// Applies the default period and rejects what no kernel accepts, before any
/// directory is made; a limit without its controller is an error rather than
/// a silently unenforced limit. Upper bounds are left to the kernel.
fn checked_limits(limits: &CgroupLimits, usable: ControllerSet) -> Result<Checked, CgroupError> {
    let need = |limit: &'static str, c: Controller| {
        if usable.has(c) {
            Ok(())
        } else {
            Err(CgroupError::ControllerMissing {
                controller: c.name(),
                limit,
            })
        }
    };
    let invalid = |limit, value, reason| {
        Err(CgroupError::InvalidLimit {
            limit,
            value,
            reason,
        })
    };
    if let Some(m) = limits.memory_bytes {
        need("memory", Controller::Memory)?;
        if m == 0 {
            return invalid("memory_bytes", m, "must be positive");
        }
    }
    if let Some(p) = limits.pids {
        need("pids", Controller::Pids)?;
        if p == 0 {
            return invalid("pids", p, "must be positive");
        }
    }
    let cpu = match limits.cpu_quota_us {
        None => None,
        Some(quota) => {
            need("cpu quota", Controller::Cpu)?;
            let period = limits.cpu_period_us.unwrap_or(100_000);
            // sched/core.c: min_cfs_quota_period 1 ms, max_cfs_quota_period 1 s.
            if !(1_000..=1_000_000).contains(&period) {
                return invalid("cpu_period_us", period, "must be within 1000..=1000000");
            }
            if quota < 1_000 {
                return invalid("cpu_quota_us", quota, "must be at least 1000");
            }
            Some((quota, period))
        }
    };
    if let Some(s) = limits.memory_swap_bytes {
        need("memory swap", Controller::Memory)?;
        match limits.memory_bytes {
            Some(m) if s >= m => {}
            _ => {
                return invalid(
                    "memory_swap_bytes",
                    s,
                    "needs a memory limit at or below it",
                )
            }
        }
    }
    if limits.memory_reservation_bytes.is_some() {
        need("memory reservation", Controller::Memory)?;
    }
    if let Some(s) = limits.cpu_shares {
        need("cpu shares", Controller::Cpu)?;
        if !(2..=262_144).contains(&s) {
            return invalid("cpu_shares", s, "must be within 2..=262144");
        }
    }
    Ok(Checked {
        memory: limits.memory_bytes,
        memory_swap: limits.memory_swap_bytes,
        memory_reservation: limits.memory_reservation_bytes,
        pids: limits.pids,
        cpu,
        cpu_shares: limits.cpu_shares,
    })
}

/// Names become directory names and appear in `/proc/<pid>/cgroup`: a small
/// alphabet keeps both unambiguous.
fn validate_name(name: &str) -> Result<(), CgroupError> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.len() > 64 {
        "longer than 64 bytes"
    } else if name == "." || name == ".." {
        "not a directory name"
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        "only ASCII letters, digits, '-', '_' and '.' are allowed"
    } else {
        return Ok(());
    };
    Err(CgroupError::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

/// One sandbox's cgroup (a directory per hierarchy on v1, one on v2).
/// Dropping it without [`Cgroup::remove`] still kills and removes it, best
/// effort.
#[derive(Debug)]
pub struct Cgroup {
    name: String,
    version: CgroupVersion,
    paths: Vec<PathBuf>,
    /// Controllers of each of `paths`.
    sets: Vec<ControllerSet>,
    v2_dir: Option<OwnedFd>,
    /// Kept open so the polled CPU reading is one pread (cpuacct.usage or cpu.stat).
    cpu_usage: Option<File>,
    removed: bool,
}

/// The leaf of a cgroup with children that holds its own processes on v2
/// (see [`CgroupManager::create_with_children`]).
pub const INIT_LEAF: &str = "init";

/// Bounds of the teardown loops. Killed processes leave in micro- to
/// milliseconds (freeing a large address space takes longest).
const KILL_WAIT: Duration = Duration::from_secs(2);
const REMOVE_WAIT: Duration = Duration::from_secs(5);
const FIRST_POLL: Duration = Duration::from_micros(100);
const MAX_POLL: Duration = Duration::from_millis(10);

impl Cgroup {
    /// No directories yet (filled by `create` / `open_existing`).
    fn empty(name: &str, version: CgroupVersion) -> Cgroup {
        Cgroup {
            name: name.to_owned(),
            version,
            paths: Vec::new(),
            sets: Vec::new(),
            v2_dir: None,
            cpu_usage: None,
            removed: false,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Lets the cgroup outlive this value (an OCI container's, removed
    /// later by another process through [`Cgroup::adopt`]); its
    /// directories.
    pub fn release(mut self) -> Vec<PathBuf> {
        self.removed = true;
        std::mem::take(&mut self.paths)
    }

    /// A cgroup made by another process, from its directories (as
    /// [`Cgroup::release`] gave them): enough to list, kill and remove it.
    pub fn adopt(name: &str, version: CgroupVersion, paths: Vec<PathBuf>) -> Cgroup {
        let mut cg = Cgroup::empty(name, version);
        cg.sets = vec![ControllerSet::default(); paths.len()];
        cg.paths = paths;
        cg
    }

    /// Every directory made for this cgroup.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// The v2 directory fd for `clone3(CLONE_INTO_CGROUP)`; `None` on v1.
    pub fn v2_dir_fd(&self) -> Option<BorrowedFd<'_>> {
        self.v2_dir.as_ref().map(|fd| fd.as_fd())
    }

    fn dir_with(&self, c: Controller) -> Option<&Path> {
        self.paths
            .iter()
            .zip(&self.sets)
            .find(|(_, s)| s.has(c))
            .map(|(p, _)| p.as_path())
    }

    /// Moves process `pid` (all its threads) into the cgroup.
    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        let value = pid.to_string();
        for dir in &self.paths {
            write_value(&dir.join("cgroup.procs"), &value)?;
        }
        Ok(())
    }

    /// CPU time used by the whole tree, in ns. One pread of a file kept open,
    /// no allocation: this is polled during runs to enforce CPU-time limits.
    pub fn cpu_usage_ns(&self) -> Result<u64, CgroupError> {
        let file = self
            .cpu_usage
            .as_ref()
            .ok_or(CgroupError::ControllerMissing {
                controller: "cpuacct",
                limit: "cpu usage",
            })?;
        let mut buf = [0u8; 64];
        let n = file
            .read_at(&mut buf, 0)
            .map_err(|source| CgroupError::Read {
                path: self.cpu_usage_path(),
                source,
            })?;
        let text = &buf[..n];
        let parsed = match self.version {
            CgroupVersion::V1 => parse_u64(text),
            CgroupVersion::V2 => v2::parse_usage_usec(text).map(|us| us.saturating_mul(1000)),
        };
        parsed.ok_or_else(|| CgroupError::Parse {
            path: self.cpu_usage_path(),
            content: String::from_utf8_lossy(text).into_owned(),
        })
    }

    fn cpu_usage_path(&self) -> PathBuf {
        match self.version {
            CgroupVersion::V1 => self
                .dir_with(Controller::Cpuacct)
                .map(|d| d.join("cpuacct.usage"))
                .unwrap_or_default(),
            CgroupVersion::V2 => self.paths[0].join("cpu.stat"),
        }
    }

    /// All accounting counters.
    pub fn stats(&self) -> Result<CgroupStats, CgroupError> {
        match self.version {
            CgroupVersion::V1 => v1::stats(self),
            CgroupVersion::V2 => v2::stats(&self.paths[0], self.sets[0]),
        }
    }

    /// Fds through which a single-threaded process moves itself into this
    /// cgroup by writing `0`, one per directory: v1's `tasks` (moving one
    /// thread skips the global threadgroup lock, see `prepare` in
    /// process/spawn.rs) and v2's `cgroup.procs`. Since Linux 5.16 the
    /// kernel checks such a write with the credentials and cgroup
    /// namespace of the fd's opener (cgroup_procs_write, "inherited fd
    /// attacks"), so a process in a user namespace, with no right to
    /// the cgroupfs of its own, can join with fds that we opened as root.
    pub fn join_fds(&self) -> Result<Vec<OwnedFd>, CgroupError> {
        let file = match self.version {
            CgroupVersion::V1 => "tasks",
            CgroupVersion::V2 => "cgroup.procs",
        };
        self.paths
            .iter()
            .map(|dir| {
                let path = dir.join(file);
                OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_CLOEXEC)
                    .open(&path)
                    .map(OwnedFd::from)
                    .map_err(|source| CgroupError::Open { path, source })
            })
            .collect()
    }

    /// Processes in the cgroup and its child cgroups, sorted (a directory
    /// already removed counts as empty).
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let mut dirs = Vec::new();
        for dir in &self.paths {
            tree(dir, &mut dirs);
        }
        let mut pids = Vec::new();
        for dir in &dirs {
            let path = dir.join("cgroup.procs");
            let text = match fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(CgroupError::Read { path, source }),
            };
            for line in text.lines() {
                let pid = line.trim().parse().map_err(|_| CgroupError::Parse {
                    path: path.clone(),
                    content: line.to_owned(),
                })?;
                pids.push(pid);
            }
        }
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// SIGKILLs every process in the cgroup and returns once none is listed.
    ///
    /// v2 writes `cgroup.kill` (5.14+), which also catches processes forking
    /// meanwhile. v1 (and older v2 kernels) have no such file: we list and
    /// kill until the listing is empty; a process that forks between listing
    /// and kill is caught in the next round, and a SIGKILLed process cannot
    /// fork any more (no freezer needed).
    pub fn kill_all(&self) -> Result<(), CgroupError> {
        let listing_needed = match self.version {
            CgroupVersion::V2 => !v2::kill(&self.paths[0])?,
            CgroupVersion::V1 => true,
        };
        let start = Instant::now();
        let mut poll = FIRST_POLL;
        loop {
            let pids = self.pids()?;
            if pids.is_empty() {
                return Ok(());
            }
            if start.elapsed() > KILL_WAIT {
                return Err(CgroupError::NotEmpty {
                    path: self.paths[0].clone(),
                    pids,
                    waited: start.elapsed(),
                });
            }
            if listing_needed {
                self.kill_listed(&pids)?;
            }
            std::thread::sleep(poll);
            poll = (poll * 2).min(MAX_POLL);
        }
    }

    /// Kills the listed pids without ever signalling a stranger that reused
    /// a pid: each process is pinned with a pidfd, then the cgroup is listed
    /// again; a pid in both listings names, through its pidfd, a process
    /// that was in the cgroup after the pidfd was opened (or one already
    /// dead, which ignores the signal).
    fn kill_listed(&self, listed: &[i32]) -> Result<(), CgroupError> {
        let pinned: Vec<(i32, OwnedFd)> = listed
            .iter()
            .filter_map(|&pid| sys::pidfd_open(pid).ok().map(|fd| (pid, fd)))
            .collect();
        let still = self.pids()?;
        for (pid, fd) in &pinned {
            if still.binary_search(pid).is_err() {
                continue;
            }
            match sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(source) => {
                    return Err(CgroupError::Kill {
                        pid: *pid,
                        path: self.paths[0].clone(),
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    /// Removes the cgroup if none of its processes is left, killing
    /// nothing and never waiting (an rmdir per directory): `Ok(None)` when
    /// removed, `Ok(Some(self))` while it is still populated. What an
    /// exec left running (a server it started) keeps its cgroup until it
    /// ends; the session's removal takes any that are left.
    pub fn remove_if_empty(mut self) -> Result<Option<Cgroup>, CgroupError> {
        let mut i = 0;
        while i < self.paths.len() {
            match remove_tree(&self.paths[i]) {
                Ok(()) => {
                    self.paths.remove(i);
                    self.sets.remove(i);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.paths.remove(i);
                    self.sets.remove(i);
                }
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => i += 1,
                Err(source) => {
                    return Err(CgroupError::Rmdir {
                        path: self.paths[i].clone(),
                        source,
                    })
                }
            }
        }
        if self.paths.is_empty() {
            self.removed = true;
            return Ok(None);
        }
        Ok(Some(self))
    }

    /// Kills what is left and removes every directory. Waits (bounded) for
    /// killed processes to leave: rmdir fails with EBUSY until they have.
    pub fn remove(mut self) -> Result<(), CgroupError> {
        self.removed = true;
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), CgroupError> {
        let start = Instant::now();
        let mut left: Vec<&PathBuf> = self.paths.iter().rev().collect();
        let mut killed = false;
        let mut poll = FIRST_POLL;
        loop {
            // rmdir first: a sandbox that already ended costs one syscall per
            // directory and no listing.
            let mut busy = None;
            let mut i = 0;
            while i < left.len() {
                match remove_tree(left[i]) {
                    Ok(()) => {
                        left.remove(i);
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        left.remove(i);
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        busy = Some(left[i]);
                        i += 1;
                    }
                    Err(source) => {
                        return Err(CgroupError::Rmdir {
                            path: left[i].clone(),
                            source,
                        })
                    }
                }
            }
            let Some(busy) = busy else {
                return Ok(());
            };
            if start.elapsed() > REMOVE_WAIT {
                return Err(CgroupError::Busy {
                    path: busy.clone(),
                    waited: start.elapsed(),
                });
            }
            if !killed {
                self.kill_all()?;
                killed = true;
            } else {
                // Exiting processes are no longer listed but still counted
                // until their exit finishes; just wait.
                std::thread::sleep(poll);
                poll = (poll * 2).min(MAX_POLL);
            }
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        if let Err(e) = self.teardown() {
            tracing::warn!(cgroup = %self.name, error = %e, "cgroup teardown on drop failed");
        }
    }
}

/// `dir` and its child cgroups (subdirectories), parents before children;
/// a directory that cannot be read (already removed) adds nothing below it.
fn tree(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_owned());
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            tree(&entry.path(), out);
        }
    }
}

/// rmdir of `dir`; when it has child cgroups (EBUSY), they go first,
/// deepest first. The plain rmdir comes first: a cgroup without children
/// (every one-shot run) costs one syscall.
fn remove_tree(dir: &Path) -> io::Result<()> {
    match fs::remove_dir(dir) {
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
            let mut dirs = Vec::new();
            tree(dir, &mut dirs);
            if dirs.len() == 1 {
                return Err(e);
            }
            for d in dirs.iter().rev() {
                match fs::remove_dir(d) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            Ok(())
        }
        other => other,
    }
}

fn open_dir(path: &Path) -> Result<OwnedFd, CgroupError> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(path)
        .map(OwnedFd::from)
        .map_err(|source| CgroupError::Open {
            path: path.to_owned(),
            source,
        })
}

fn read_text(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads a file holding one number.
fn read_u64(path: &Path) -> Result<u64, CgroupError> {
    let text = read_text(path)?;
    parse_u64(text.as_bytes()).ok_or_else(|| CgroupError::Parse {
        path: path.to_owned(),
        content: text,
    })
}

/// Reads `key value` lines (memory.events, pids.events, cpu.stat,
/// memory.oom_control) and returns the values of `keys`. A key the kernel
/// does not print yet (an older release) reads as 0.
fn read_keyed<const N: usize>(path: &Path, keys: [&str; N]) -> Result<[u64; N], CgroupError> {
    let text = read_text(path)?;
    let mut values = [0; N];
    for line in text.lines() {
        let Some((key, value)) = line.split_once(' ') else {
            continue;
        };
        if let Some(i) = keys.iter().position(|k| *k == key) {
            values[i] = parse_u64(value.as_bytes()).ok_or_else(|| CgroupError::Parse {
                path: path.to_owned(),
                content: line.to_owned(),
            })?;
        }
    }
    Ok(values)
}

fn parse_u64(text: &[u8]) -> Option<u64> {
    std::str::from_utf8(text).ok()?.trim().parse().ok()
}

/// Writes one value in one write(2), as cgroupfs expects.
fn write_value(path: &Path, value: &str) -> Result<(), CgroupError> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|source| CgroupError::Write {
            path: path.to_owned(),
            value: value.to_owned(),
            source,
        })
}

/// Like [`write_value`] for a file that some kernels lack (swap accounting
/// off, old releases): returns whether it existed.
fn write_if_present(path: &Path, value: &str) -> Result<bool, CgroupError> {
    match write_value(path, value) {
        Err(CgroupError::Write { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            Ok(false)
        }
        other => other.map(|()| true),
    }
}

/// mkdir that accepts an existing directory (another process or thread made
/// the shared parent first).
/// The root of the hierarchy `dir` is in, as this process sees it: the
/// topmost ancestor that is still a cgroup directory (the mount point).
fn hierarchy_root(dir: &Path) -> PathBuf {
    let mut root = dir;
    while let Some(up) = root.parent() {
        if !up.join("cgroup.procs").exists() {
            break;
        }
        root = up;
    }
    root.to_path_buf()
}

fn mkdir_shared(path: &Path) -> Result<(), CgroupError> {
    match fs::create_dir(path) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(CgroupError::Mkdir {
            path: path.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}
