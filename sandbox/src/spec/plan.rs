//! Turns a validated `Spec` plus `RunOptions` into a [`Plan`]: everything the
//! child needs, computed in the parent (argv/env as `CString`s, the mount list,
//! ids, rlimits, cgroup limits), so that the child only makes system calls.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use oci_spec::runtime::{PosixRlimitType, Spec};

use super::validate::{check_abs_path, invalid, SpecError};
use crate::cgroup::CgroupLimits;
use crate::options::{defaults, RunOptions};
use crate::sys::WinSize;

/// One mount the child makes below the new root, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountPlan {
    /// Absolute path inside the sandbox.
    pub destination: PathBuf,
    pub kind: MountKind,
    pub readonly: bool,
    pub nosuid: bool,
    pub nodev: bool,
    pub noexec: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountKind {
    /// A bind of a host path (recursive when `recursive`).
    Bind {
        source: PathBuf,
        recursive: bool,
        is_dir: bool,
    },
    /// A fresh size-capped tmpfs.
    Tmpfs {
        size: u64,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// A sysfs of the sandbox's own network namespace (an engine's /sys;
    /// with a joined one the host's /sys is bound read-only instead, as
    /// runc and crun do: the kernel refuses a sysfs whose network
    /// namespace the mounter's user namespace does not own).
    Sysfs,
    /// The cgroup2 filesystem seen from the sandbox's cgroup namespace
    /// (an engine's /sys/fs/cgroup; cgroup v2 hosts).
    Cgroup2,
    /// cgroup v1 hosts: a tmpfs holding each of the host's v1 hierarchies
    /// (directory name, mount options), mounted read-only from the
    /// sandbox's cgroup namespace, as runc lays out /sys/fs/cgroup.
    CgroupV1 { hierarchies: Vec<(String, String)> },
}

/// The root filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootPlan {
    /// A tmpfs root holding read-only binds of the host's /usr (and the
    /// merged-usr links), a generated /etc and our /dev, /proc, /tmp.
    Host(&'static HostLayout),
    /// A caller-supplied directory, mounted read-only.
    Dir(PathBuf),
    /// Image layers under an overlay (`RunOptions::root_layers`).
    Layers(crate::options::LayeredRoot),
    /// An OCI container's own root (`RunOptions::container`): the
    /// directory itself, idmapped by the parent onto the sandbox's ids and
    /// attached as the root; writable unless `root.readonly`.
    Bundle { path: PathBuf, readonly: bool },
}

/// What the `host` root takes from the host, discovered once per process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostLayout {
    /// Top-level directories bound read-only (`/usr`, and `/bin`, `/lib*`
    /// on hosts without merged /usr).
    pub ro_dirs: Vec<PathBuf>,
    /// Locked mount flags (`MsFlags` bits) of each of `ro_dirs`' mounts.
    pub ro_dir_flags: Vec<u64>,
    /// Locked mount flags of the mount holding /etc.
    pub etc_flags: u64,
    /// Top-level symlinks recreated as they are (`/bin -> usr/bin`).
    pub symlinks: Vec<(PathBuf, PathBuf)>,
    /// Entries of the host's /etc made visible read-only (a short list of
    /// non-secret files programs need: the dynamic linker cache,
    /// alternatives, certificates, time zone).
    pub etc_entries: Vec<EtcEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EtcEntry {
    /// Bound read-only (file or directory).
    Bind { name: String, is_dir: bool },
    /// A symlink recreated with the same target.
    Symlink { name: String, target: PathBuf },
}

/// /etc entries of the host that the `host` root shows (when present).
const ETC_WHITELIST: &[&str] = &[
    // dynamic linker cache: library lookups without a directory scan
    "ld.so.cache",
    // /usr/bin/awk, cc, java... are links through /etc/alternatives
    "alternatives",
    // TLS roots, time zone, OS identity
    "ssl",
    "localtime",
    "os-release",
    // JVM configuration (/usr/lib/jvm/*/conf links here)
    "java-17-openjdk",
    "java-21-openjdk",
    // interactive shells
    "bash.bashrc",
    "inputrc",
    // name databases some libraries read without network
    "services",
    "protocols",
    "mime.types",
];

/// Top-level host directories considered for the `host` root.
const HOST_TOP: &[&str] = &["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"];

impl HostLayout {
    /// Reads the host's layout once (cached for the life of the process).
    pub fn get() -> &'static HostLayout {
        static LAYOUT: OnceLock<HostLayout> = OnceLock::new();
        LAYOUT.get_or_init(|| HostLayout::discover(Path::new("/")))
    }

    /// Looks at `root`'s top level and /etc.
    pub fn discover(root: &Path) -> HostLayout {
        let mut layout = HostLayout::default();
        for name in HOST_TOP {
            let p = root.join(name);
            match std::fs::symlink_metadata(&p) {
                Ok(m) if m.file_type().is_symlink() => {
                    if let Ok(t) = std::fs::read_link(&p) {
                        layout.symlinks.push((Path::new("/").join(name), t));
                    }
                }
                Ok(m) if m.is_dir() => {
                    layout.ro_dirs.push(Path::new("/").join(name));
                    layout
                        .ro_dir_flags
                        .push(crate::mounts::locked_flags(&p).bits());
                }
                _ => {}
            }
        }
        layout.etc_flags = crate::mounts::locked_flags(&root.join("etc")).bits();
        for name in ETC_WHITELIST {
            let p = root.join("etc").join(name);
            match std::fs::symlink_metadata(&p) {
                Ok(m) if m.file_type().is_symlink() => {
                    if let Ok(target) = std::fs::read_link(&p) {
                        layout.etc_entries.push(EtcEntry::Symlink {
                            name: (*name).to_string(),
                            target,
                        });
                    }
                }
                Ok(m) => layout.etc_entries.push(EtcEntry::Bind {
                    name: (*name).to_string(),
                    is_dir: m.is_dir(),
                }),
                Err(_) => {}
            }
        }
        layout
    }
}

/// The devpts instance's options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DevptsOptions {
    pub gid: Option<u32>,
    pub mode: u32,
    pub ptmxmode: u32,
}

impl Default for DevptsOptions {
    fn default() -> Self {
        DevptsOptions {
            gid: None,
            mode: 0o620,
            ptmxmode: 0o666,
        }
    }
}

impl DevptsOptions {
    /// The mount data: always a new instance (devpts(5)).
    pub fn data(&self) -> String {
        let mut s = format!(
            "newinstance,ptmxmode={:04o},mode={:04o}",
            self.ptmxmode, self.mode
        );
        if let Some(g) = self.gid {
            s.push_str(&format!(",gid={g}"));
        }
        s
    }
}

/// Whether the host runs the unified cgroup hierarchy at /sys/fs/cgroup
/// (statfs magic CGROUP2_SUPER_MAGIC), read once.
fn host_cgroup2() -> bool {
    static V2: OnceLock<bool> = OnceLock::new();
    *V2.get_or_init(|| {
        nix::sys::statfs::statfs("/sys/fs/cgroup")
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
    })
}

/// The host's cgroup v1 hierarchies below /sys/fs/cgroup: (directory
/// name, the options that mount the same hierarchy again), from
/// /proc/self/mountinfo, read once. A hierarchy is named by its
/// controllers (`cpu,cpuacct`) or its `name=` (`name=systemd`, mounted
/// with `none`).
fn host_cgroup1_hierarchies() -> &'static [(String, String)] {
    static H: OnceLock<Vec<(String, String)>> = OnceLock::new();
    H.get_or_init(|| {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut out = Vec::new();
        for line in info.lines() {
            // ID PARENT MAJ:MIN ROOT POINT OPTS [TAGS] - FSTYPE SOURCE SUPER
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let mut r = right.split(' ');
            let (Some("cgroup"), Some(_), Some(sup)) = (r.next(), r.next(), r.next()) else {
                continue;
            };
            let Some(point) = left.split(' ').nth(4) else {
                continue;
            };
            let Some(dir) = point.strip_prefix("/sys/fs/cgroup/") else {
                continue;
            };
            if dir.is_empty() || dir.contains('/') {
                continue;
            }
            let keep: Vec<&str> = sup
                .split(',')
                .filter(|o| !matches!(*o, "rw" | "ro" | "xattr" | "noprefix" | "clone_children"))
                .filter(|o| !o.starts_with("release_agent="))
                .collect();
            if keep.is_empty() {
                continue;
            }
            let opts = if keep.iter().all(|o| o.starts_with("name=")) {
                format!("none,{}", keep.join(","))
            } else {
                keep.join(",")
            };
            out.push((dir.to_string(), opts));
        }
        out
    })
}

/// Which namespaces a spec joins by path (a sysfs needs the sandbox's own
/// network namespace).
#[derive(Clone, Copy, Debug, Default)]
struct Joined {
    net: bool,
}

/// One resource limit to set with setrlimit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rlimit {
    pub resource: i32,
    pub soft: u64,
    pub hard: u64,
}

/// Everything the child needs, computed before the first side effect.
#[derive(Clone, Debug)]
pub struct Plan {
    pub hostname: String,
    pub root: RootPlan,
    /// The spec's mounts, parents first.
    pub mounts: Vec<MountPlan>,
    pub shm_bytes: u64,
    /// An mqueue filesystem at /dev/mqueue (an engine asks for one; it
    /// shows the sandbox's own IPC namespace's queues).
    pub mqueue: bool,
    /// devpts options an engine asked for (`gid`, `mode`, `ptmxmode`),
    /// checked numbers; our defaults otherwise.
    pub devpts: DevptsOptions,
    /// Namespaces joined by path (network, ipc, uts; validated), entered
    /// by the parent for the clone.
    pub joins: Vec<(oci_spec::runtime::LinuxNamespaceType, PathBuf)>,
    /// Set the hostname: false in a joined uts namespace.
    pub set_hostname: bool,
    /// `linux.sysctl`, sorted by key (validated: namespaced ones only).
    pub sysctl: Vec<(String, String)>,
    pub masked_paths: Vec<PathBuf>,
    pub readonly_paths: Vec<PathBuf>,
    /// Generated files of /etc (host root only): name, contents.
    pub etc_files: Vec<(String, String)>,
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    /// Directories searched for `args[0]` when it has no `/`.
    pub path_dirs: Vec<String>,
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: Option<u32>,
    /// `process.oomScoreAdj`: written by the parent for PID 1 before it
    /// forks the program (which inherits it); a session's programs take it
    /// instead of 0.
    pub oom_score_adj: Option<i32>,
    pub rlimits: Vec<Rlimit>,
    pub terminal: bool,
    pub tty_size: Option<WinSize>,
    pub cgroup: CgroupLimits,
    /// The program's capability sets (the spec's, in the sandbox's user
    /// namespace; empty unless it lists some).
    pub capabilities: crate::capabilities::CapabilitySets,
    /// No network namespace: the host's network (build steps only).
    pub host_network: bool,
    /// A network namespace made ahead (`RunOptions::network_namespace`):
    /// PID 1 does not set up `lo`.
    pub joined_network: bool,
}

/// moby's default masked paths (those under /proc; there is no /sys).
pub const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
];

/// moby's default read-only paths.
pub const DEFAULT_READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// RLIMIT_CORE of every sandboxed process, soft and hard: 1 byte. With a
/// file `core_pattern` nothing is written below a page (the smallest
/// dump); with a pipe pattern (`|/usr/lib/systemd/systemd-coredump ...`,
/// apport) the kernel ignores RLIMIT_CORE, so 0 would still start the
/// host's handler, as root, on the sandbox's memory, but it aborts the dump
/// at exactly 1, its own guard against a crashing handler (fs/coredump.c:
/// "RLIMIT_CORE is set to 1, aborting core"). The seccomp profiles keep the
/// sandbox from lowering it to 0 (`seccomp::core_limit_rules`); raising it
/// needs CAP_SYS_RESOURCE in the initial user namespace.
pub const CORE_LIMIT: u64 = 1;

fn rlimit_resource(t: PosixRlimitType) -> i32 {
    (match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }) as i32
}

fn cstring(field: &str, s: &str) -> Result<CString, SpecError> {
    CString::new(s).map_err(|_| invalid(field, "contains a NUL byte"))
}

/// Parses a size option value (`size=64m`) of a tmpfs mount.
fn tmpfs_size(field: &str, v: &str) -> Result<u64, SpecError> {
    let n = super::size::parse_size(v).map_err(|e| invalid(field, e))?;
    if n < 4096 {
        return Err(invalid(field, "tmpfs size below 4 KiB"));
    }
    Ok(n)
}

/// The flag options shared by bind and tmpfs mounts; false for others.
fn mount_flag_option(plan: &mut MountPlan, option: &str) -> bool {
    match option {
        "ro" => plan.readonly = true,
        "rw" => plan.readonly = false,
        "nosuid" => plan.nosuid = true,
        "nodev" => plan.nodev = true,
        "noexec" => plan.noexec = true,
        "exec" => plan.noexec = false,
        _ => return false,
    }
    true
}

/// Mount options we understand; anything else is rejected by name.
fn parse_mount(
    i: usize,
    m: &oci_spec::runtime::Mount,
    uid: u32,
    gid: u32,
    joined: Joined,
) -> Result<Option<MountPlan>, SpecError> {
    let field = format!("mounts[{i}]");
    let dest = m.destination();
    check_abs_path(&format!("{field}.destination"), dest)?;
    let typ = m.typ().as_deref().unwrap_or("");
    let opts = m.options().clone().unwrap_or_default();
    let is_bind = typ == "bind" || opts.iter().any(|o| o == "bind" || o == "rbind");
    // The standard mounts of an OCI default spec are always provided.
    match (typ, dest.to_str()) {
        ("proc", Some("/proc"))
        | ("tmpfs", Some("/dev"))
        | ("devpts", Some("/dev/pts"))
        | ("mqueue", Some("/dev/mqueue")) => return Ok(None),
        ("sysfs" | "cgroup" | "cgroup2", _) => {
            return special_mount(&field, typ, dest, &opts, joined).map(Some)
        }
        ("mqueue" | "devpts" | "proc", _) => {
            return Err(SpecError::Unsupported {
                field,
                why: "proc, devpts and mqueue are mounted at /proc, /dev/pts and /dev/mqueue only",
            })
        }
        _ => {}
    }
    if dest == Path::new("/")
        || dest.starts_with("/proc")
        || (dest.starts_with("/dev") && dest != Path::new("/dev/shm"))
    {
        return Err(invalid(
            format!("{field}.destination"),
            format!("{} is managed by the sandbox", dest.display()),
        ));
    }
    let mut plan = MountPlan {
        destination: dest.clone(),
        kind: MountKind::Tmpfs {
            size: defaults::TMPFS_BYTES,
            mode: 0o755,
            uid: 0,
            gid: 0,
        },
        readonly: false,
        nosuid: true,
        nodev: true,
        noexec: false,
    };
    if is_bind {
        let source = m.source().clone().ok_or(SpecError::Missing {
            field: format!("{field}.source"),
        })?;
        check_abs_path(&format!("{field}.source"), &source)?;
        let meta = std::fs::metadata(&source).map_err(|e| {
            invalid(
                format!("{field}.source"),
                format!("{}: {e}", source.display()),
            )
        })?;
        let mut recursive = false;
        plan.readonly = true;
        for o in &opts {
            if mount_flag_option(&mut plan, o) {
                continue;
            }
            match o.as_str() {
                "bind" => {}
                "rbind" => recursive = true,
                "private" | "rprivate" | "slave" | "rslave" => {}
                other => {
                    return Err(invalid(
                        format!("{field}.options"),
                        format!("{other:?} is not supported for bind mounts"),
                    ))
                }
            }
        }
        if !plan.readonly {
            use std::os::unix::fs::MetadataExt;
            check_rw_bind_owner(&format!("{field}.source"), &source, meta.uid(), meta.gid())?;
        }
        plan.kind = MountKind::Bind {
            source,
            recursive,
            is_dir: meta.is_dir(),
        };
    } else if typ == "tmpfs" {
        let (mut size, mut mode, mut tuid, mut tgid) = (defaults::TMPFS_BYTES, 0o755, uid, gid);
        for o in &opts {
            if mount_flag_option(&mut plan, o) {
                continue;
            }
            let (k, v) = o.split_once('=').unwrap_or((o.as_str(), ""));
            match k {
                "size" => size = tmpfs_size(&format!("{field}.options"), v)?,
                "mode" => {
                    mode = u32::from_str_radix(v, 8)
                        .ok()
                        .filter(|m| *m <= 0o7777)
                        .ok_or_else(|| {
                            invalid(
                                format!("{field}.options"),
                                format!("mode={v} is not an octal mode"),
                            )
                        })?
                }
                "uid" => {
                    tuid = v
                        .parse()
                        .map_err(|_| invalid(format!("{field}.options"), format!("uid={v}")))?
                }
                "gid" => {
                    tgid = v
                        .parse()
                        .map_err(|_| invalid(format!("{field}.options"), format!("gid={v}")))?
                }
                other => {
                    return Err(invalid(
                        format!("{field}.options"),
                        format!("{other:?} is not supported for tmpfs"),
                    ))
                }
            }
        }
        plan.kind = MountKind::Tmpfs {
            size,
            mode,
            uid: tuid,
            gid: tgid,
        };
    } else {
        return Err(SpecError::Unsupported {
            field: format!("{field}.type"),
            why: "only bind and tmpfs mounts (plus the standard proc, /dev, devpts and /dev/shm)",
        });
    }
    Ok(Some(plan))
}

/// sysfs and cgroup mounts: always nosuid, nodev, noexec; read-only
/// unless the config says `rw` (inside the sandbox's user namespace a
/// sysfs is read-only for it anyway).
fn special_mount(
    field: &str,
    typ: &str,
    dest: &Path,
    opts: &[String],
    joined: Joined,
) -> Result<MountPlan, SpecError> {
    let mut plan = MountPlan {
        destination: dest.to_path_buf(),
        kind: MountKind::Sysfs,
        readonly: true,
        nosuid: true,
        nodev: true,
        noexec: true,
    };
    for o in opts {
        if mount_flag_option(&mut plan, o) {
            continue;
        }
        match o.as_str() {
            // Propagation and time flags change nothing for a filesystem
            // seen by this sandbox only.
            "private" | "rprivate" | "slave" | "rslave" | "relatime" | "norelatime" | "noatime"
            | "strictatime" => {}
            other => {
                return Err(invalid(
                    format!("{field}.options"),
                    format!("{other:?} is not supported for {typ}"),
                ))
            }
        }
    }
    // No exec and no devices on either, whatever was asked.
    (plan.nosuid, plan.nodev, plan.noexec) = (true, true, true);
    plan.kind = match typ {
        "sysfs" if joined.net => {
            plan.readonly = true;
            MountKind::Bind {
                source: PathBuf::from("/sys"),
                recursive: true,
                is_dir: true,
            }
        }
        "sysfs" => MountKind::Sysfs,
        _ if host_cgroup2() => MountKind::Cgroup2,
        _ => {
            plan.readonly = true;
            MountKind::CgroupV1 {
                hierarchies: host_cgroup1_hierarchies().to_vec(),
            }
        }
    };
    Ok(plan)
}

/// Refuses a read-write bind of a source owned by host root (uid 0 or gid
/// 0).
///
/// A read-write bind is idmapped so that the source's owner is the
/// sandbox's user (`spawn::prepared_binds`): the sandbox gets the owner's
/// rights over what is there, and what it makes belongs to the owner on the
/// host. For a root-owned source that would make root's files writable and
/// new files root's (and with a chmod, setuid root). Checked here for a
/// clear error before any side effect, and again on the opened mount.
pub(crate) fn check_rw_bind_owner(
    field: &str,
    source: &Path,
    uid: u32,
    gid: u32,
) -> Result<(), SpecError> {
    if uid != 0 && gid != 0 {
        return Ok(());
    }
    let who = match (uid, gid) {
        (0, 0) => "owned by root".to_string(),
        (0, g) => format!("owned by root (group {g})"),
        (u, _) => format!("owned by group root (user {u})"),
    };
    Err(invalid(
        field,
        format!(
            "{} is {who}: a read-write bind gives the sandbox its owner's rights on the host, \
             so its owner and group must not be root; chown it to an unprivileged user and \
             group, or bind it read-only",
            source.display()
        ),
    ))
}

pub(crate) use super::validate::{private_to_root, upper_not_private};

/// Validates `spec` ([`super::validate::validate_run`]: everything that can
/// be refused, before anything is computed) and computes the plan, phase by
/// phase: root, mounts, process, limits. Reads the host's layout (cached)
/// and checks that bind sources exist; makes no change anywhere.
pub fn plan(spec: &Spec, opts: &RunOptions) -> Result<Plan, SpecError> {
    super::validate::validate_run(spec, opts)?;
    // validate_run checked both are present.
    let (Some(process), Some(linux)) = (spec.process().as_ref(), spec.linux().as_ref()) else {
        return Err(SpecError::Missing {
            field: "process/linux".into(),
        });
    };
    let user = process.user();
    let (uid, gid) = (user.uid(), user.gid());
    let hostname = spec
        .hostname()
        .clone()
        .unwrap_or_else(|| defaults::HOSTNAME.to_string());

    let joins: Vec<_> = linux
        .namespaces()
        .iter()
        .flatten()
        .filter_map(|n| n.path().clone().map(|p| (n.typ(), p)))
        .collect();
    let root = plan_root(spec, opts);
    let etc_files = plan_etc(&root, &hostname, uid, gid);
    let (mounts, shm_bytes) = plan_mounts(spec, opts, uid, gid)?;
    let (mqueue, devpts) = plan_dev(spec, opts.uid_pool.slot_size)?;
    let (masked_paths, readonly_paths) = plan_masks(linux);
    let program = plan_process(process, opts)?;
    let (rlimits, cgroup) = plan_limits(process, linux, opts);
    let host_network = opts.host_network
        && !linux
            .namespaces()
            .iter()
            .flatten()
            .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Network);

    Ok(Plan {
        hostname,
        root,
        mounts,
        shm_bytes,
        mqueue,
        devpts,
        joins: joins.clone(),
        set_hostname: !joins
            .iter()
            .any(|(t, _)| *t == oci_spec::runtime::LinuxNamespaceType::Uts),
        sysctl: plan_sysctl(linux, opts.uid_pool.slot_size),
        masked_paths,
        readonly_paths,
        etc_files,
        args: program.args,
        env: program.env,
        path_dirs: program.path_dirs,
        cwd: process.cwd().clone(),
        uid,
        gid,
        additional_gids: user.additional_gids().clone().unwrap_or_default(),
        umask: user.umask(),
        oom_score_adj: process.oom_score_adj(),
        rlimits,
        terminal: process.terminal().unwrap_or(false),
        tty_size: program.tty_size,
        cgroup,
        capabilities: program.capabilities,
        host_network,
        joined_network: !host_network
            && (opts.network_namespace.is_some()
                || joins
                    .iter()
                    .any(|(t, _)| *t == oci_spec::runtime::LinuxNamespaceType::Network)),
    })
}

/// Root: the host's layout, the caller's directory, or an image's layers
/// (all checked by `validate_run`).
fn plan_root(spec: &Spec, opts: &RunOptions) -> RootPlan {
    match (spec.root(), &opts.root_layers) {
        (_, Some(layered)) => RootPlan::Layers(layered.clone()),
        (None, None) => RootPlan::Host(HostLayout::get()),
        (Some(r), None) if opts.container.is_some() => RootPlan::Bundle {
            path: r.path().clone(),
            readonly: r.readonly().unwrap_or(false),
        },
        (Some(r), None) => RootPlan::Dir(r.path().clone()),
    }
}

/// The generated `/etc` files the root needs.
fn plan_etc(root: &RootPlan, hostname: &str, uid: u32, gid: u32) -> Vec<(String, String)> {
    match root {
        RootPlan::Host(_) => etc_files(hostname, uid, gid),
        // An image brings its own /etc; a sandbox with a throwaway upper
        // gets its hostname and hosts written over the image's.
        RootPlan::Layers(l) if matches!(l.upper, crate::options::Upper::Tmpfs { .. }) => {
            etc_files(hostname, uid, gid)
                .into_iter()
                .filter(|(n, _)| n == "hostname" || n == "hosts")
                .collect()
        }
        RootPlan::Dir(_) | RootPlan::Layers(_) | RootPlan::Bundle { .. } => Vec::new(),
    }
}

/// Mounts: the spec's (parsed and checked one by one), parents before
/// children; and the size of `/dev/shm`.
fn plan_mounts(
    spec: &Spec,
    opts: &RunOptions,
    uid: u32,
    gid: u32,
) -> Result<(Vec<MountPlan>, u64), SpecError> {
    let mut shm_bytes = defaults::SHM_BYTES;
    let mut mounts = Vec::new();
    let joins = |t| {
        spec.linux()
            .iter()
            .flat_map(|l| l.namespaces().iter().flatten())
            .any(|n| n.typ() == t && n.path().is_some())
    };
    let joined = Joined {
        net: joins(oci_spec::runtime::LinuxNamespaceType::Network),
    };
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if m.destination() == Path::new("/dev/shm") {
            for o in m.options().iter().flatten() {
                if let Some(v) = o.strip_prefix("size=") {
                    shm_bytes = tmpfs_size(&format!("mounts[{i}].options"), v)?;
                }
            }
            continue;
        }
        if let Some(mp) = parse_mount(i, m, uid, gid, joined)? {
            // A build step may set setuid modes (dpkg; seccomp::Purpose):
            // its writes must stay in its private upper dir.
            if opts.build_capabilities && !mp.readonly && matches!(mp.kind, MountKind::Bind { .. })
            {
                return Err(invalid(
                    format!("mounts[{i}]"),
                    "an image build step writes only to its upper dir: bind read-only",
                ));
            }
            if mounts
                .iter()
                .any(|x: &MountPlan| x.destination == mp.destination)
            {
                return Err(invalid(
                    format!("mounts[{i}].destination"),
                    format!("{} is mounted twice", mp.destination.display()),
                ));
            }
            mounts.push(mp);
        }
    }
    // Parents before children: sort by depth (stable, so equal depths keep
    // the spec's order). A container gets exactly the mounts its spec lists:
    // /tmp and /workspace are the RequestBuilder's, stated there once.
    mounts.sort_by_key(|m| m.destination.components().count());
    Ok((mounts, shm_bytes))
}

/// `linux.sysctl` sorted by key, with `net.ipv4.ping_group_range` fitted
/// to the sandbox's gids: the kernel takes only gids mapped in the user
/// namespace that owns the network namespace (EINVAL otherwise,
/// net/ipv4/sysctl_net_ipv4.c), and dockerd asks for `0 2147483647`,
/// "every group", which inside the sandbox is `0 <last mapped gid>`.
fn plan_sysctl(linux: &oci_spec::runtime::Linux, ids: u32) -> Vec<(String, String)> {
    let last_gid = u64::from(ids.saturating_sub(1));
    let mut v: Vec<(String, String)> = linux
        .sysctl()
        .iter()
        .flatten()
        .map(|(k, v)| {
            let fitted = (k == "net.ipv4.ping_group_range")
                .then(|| {
                    let mut parts = v.split_whitespace().map(str::parse::<u64>);
                    match (parts.next(), parts.next(), parts.next()) {
                        (Some(Ok(lo)), Some(Ok(hi)), None) if hi > last_gid => {
                            Some(format!("{lo}\t{last_gid}"))
                        }
                        _ => None,
                    }
                })
                .flatten();
            (k.clone(), fitted.unwrap_or_else(|| v.clone()))
        })
        .collect();
    v.sort();
    v
}

/// The standard mounts of /dev an engine lists: an mqueue at /dev/mqueue
/// (the sandbox's own IPC namespace: a joined one is not the sandbox's to
/// mount), and the devpts options (checked numbers; a new instance
/// always).
fn plan_dev(spec: &Spec, ids: u32) -> Result<(bool, DevptsOptions), SpecError> {
    let mut mqueue = false;
    let mut devpts = DevptsOptions::default();
    let ipc_joined = spec
        .linux()
        .iter()
        .flat_map(|l| l.namespaces().iter().flatten())
        .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Ipc && n.path().is_some());
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let field = format!("mounts[{i}].options");
        match (m.typ().as_deref(), m.destination().to_str()) {
            (Some("mqueue"), Some("/dev/mqueue")) => {
                if ipc_joined {
                    return Err(SpecError::Unsupported {
                        field: format!("mounts[{i}]"),
                        why: "an mqueue belongs to an IPC namespace the sandbox owns; this one is joined",
                    });
                }
                mqueue = true;
            }
            (Some("devpts"), Some("/dev/pts")) => {
                for o in m.options().iter().flatten() {
                    let (k, v) = o.split_once('=').unwrap_or((o.as_str(), ""));
                    let octal = |v: &str| {
                        u32::from_str_radix(v, 8)
                            .ok()
                            .filter(|m| *m <= 0o777)
                            .ok_or_else(|| invalid(&field, format!("{k}={v} is not an octal mode")))
                    };
                    match k {
                        "newinstance" | "nosuid" | "noexec" | "rw" => {}
                        "mode" => devpts.mode = octal(v)?,
                        "ptmxmode" => devpts.ptmxmode = octal(v)?,
                        "gid" => {
                            devpts.gid =
                                Some(v.parse::<u32>().ok().filter(|g| *g < ids).ok_or_else(
                                    || invalid(&field, format!("gid={v} is outside 0..{ids}")),
                                )?)
                        }
                        other => {
                            return Err(invalid(
                                &field,
                                format!("{other:?} is not supported for devpts"),
                            ))
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok((mqueue, devpts))
}

/// Masked and read-only paths: the spec's, or the OCI/moby defaults.
fn plan_masks(linux: &oci_spec::runtime::Linux) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let masked_paths = match linux.masked_paths() {
        Some(v) => v.iter().map(PathBuf::from).collect(),
        None => DEFAULT_MASKED_PATHS.iter().map(PathBuf::from).collect(),
    };
    let readonly_paths = match linux.readonly_paths() {
        Some(v) => v.iter().map(PathBuf::from).collect(),
        None => DEFAULT_READONLY_PATHS.iter().map(PathBuf::from).collect(),
    };
    (masked_paths, readonly_paths)
}

/// The process phase's part of the plan.
struct ProgramPlan {
    args: Vec<CString>,
    env: Vec<CString>,
    path_dirs: Vec<String>,
    tty_size: Option<WinSize>,
    capabilities: crate::capabilities::CapabilitySets,
}

/// Process: argv and environment as `CString`s, the `PATH` search list,
/// the terminal's size and the capabilities kept (build steps only).
fn plan_process(
    process: &oci_spec::runtime::Process,
    opts: &RunOptions,
) -> Result<ProgramPlan, SpecError> {
    let args = process
        .args()
        .iter()
        .flatten()
        .map(|a| cstring("process.args", a))
        .collect::<Result<Vec<_>, _>>()?;
    let env_list = process.env().clone().unwrap_or_default();
    let env = env_list
        .iter()
        .map(|e| cstring("process.env", e))
        .collect::<Result<Vec<_>, _>>()?;
    let path_var = env_list
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(defaults::PATH);
    let path_dirs = path_var
        .split(':')
        .filter(|d| d.starts_with('/'))
        .map(str::to_string)
        .collect();
    let tty_size = opts.tty_size.or_else(|| {
        process.console_size().as_ref().map(|b| WinSize {
            rows: b.height().min(u16::MAX as u64) as u16,
            cols: b.width().min(u16::MAX as u64) as u16,
        })
    });
    let capabilities = match process.capabilities() {
        // validate() allowed only BUILD_CAPABILITIES; a capability missing
        // from any of the three sets is not held, and nothing passes on
        // across an exec by inheritance.
        Some(c) if opts.build_capabilities => {
            let sets = crate::capabilities::CapabilitySets::of(c);
            let held = sets.bounding & sets.effective & sets.permitted;
            crate::capabilities::CapabilitySets {
                bounding: held,
                effective: held,
                permitted: held,
                ..Default::default()
            }
        }
        Some(c) => crate::capabilities::CapabilitySets::of(c),
        None => crate::capabilities::CapabilitySets::default(),
    };
    Ok(ProgramPlan {
        args,
        env,
        path_dirs,
        tty_size,
        capabilities,
    })
}

/// Limits: the rlimits (the spec's, RLIMIT_CORE pinned to 1 byte, the
/// defaults for what it leaves out) and the cgroup's limits.
fn plan_limits(
    process: &oci_spec::runtime::Process,
    linux: &oci_spec::runtime::Linux,
    opts: &RunOptions,
) -> (Vec<Rlimit>, CgroupLimits) {
    let mut rlimits: Vec<Rlimit> = process
        .rlimits()
        .iter()
        .flatten()
        .map(|r| Rlimit {
            resource: rlimit_resource(r.typ()),
            soft: r.soft(),
            hard: r.hard(),
        })
        .collect();
    for r in &mut rlimits {
        if r.resource == libc::RLIMIT_CORE as i32 {
            // See CORE_LIMIT: 0 and 1 both mean "no core file" (validate_run
            // refused more).
            (r.soft, r.hard) = (CORE_LIMIT, CORE_LIMIT);
        }
    }
    let mut add_default = |resource: i32, v: u64| {
        if !rlimits.iter().any(|r| r.resource == resource) {
            rlimits.push(Rlimit {
                resource,
                soft: v,
                hard: v,
            });
        }
    };
    add_default(libc::RLIMIT_NOFILE as i32, defaults::OPEN_FILES);
    add_default(libc::RLIMIT_CORE as i32, CORE_LIMIT);
    if let Some(cpu) = opts.cpu_time {
        // Per-process backstop only; the whole tree is limited through the
        // cgroup's CPU counter by the supervisor, which fires first.
        add_default(libc::RLIMIT_CPU as i32, cpu.as_secs() + 2);
    }

    let res = linux.resources().as_ref();
    let memory = res.and_then(|r| r.memory().as_ref());
    let memory_bytes = memory
        .and_then(|m| m.limit())
        .map(|l| l as u64)
        .unwrap_or(defaults::MEMORY_BYTES);
    // OCI's swap counts memory plus swap; equal to the limit (or absent) is
    // no swap, -1 unlimited (validate checked it is not below the limit).
    let memory_swap_bytes = match memory.and_then(|m| m.swap()) {
        Some(-1) => Some(u64::MAX),
        Some(s) if s as u64 > memory_bytes => Some(s as u64),
        _ => None,
    };
    let pids = res
        .and_then(|r| r.pids().as_ref())
        .map(|p| p.limit())
        .filter(|l| *l > 0)
        .map(|l| l as u64)
        .unwrap_or(defaults::PIDS);
    let cpu = res.and_then(|r| r.cpu().as_ref());
    let cgroup = CgroupLimits {
        memory_bytes: Some(memory_bytes),
        pids: Some(pids),
        cpu_quota_us: cpu.and_then(|c| c.quota()).map(|q| q as u64),
        cpu_period_us: cpu.and_then(|c| c.period()),
        memory_swap_bytes,
        memory_reservation_bytes: memory
            .and_then(|m| m.reservation())
            .filter(|r| *r > 0)
            .map(|r| r as u64),
        cpu_shares: cpu.and_then(|c| c.shares()).filter(|s| *s != 0),
    };
    (rlimits, cgroup)
}

/// passwd, group, hostname and hosts for the generated /etc.
fn etc_files(hostname: &str, uid: u32, gid: u32) -> Vec<(String, String)> {
    let mut passwd = String::from("root:x:0:0:root:/root:/bin/sh\n");
    let mut group = String::from("root:x:0:\n");
    if uid != 0 && uid != 65534 {
        passwd.push_str(&format!(
            "sandbox:x:{uid}:{gid}:sandbox:/workspace:/bin/sh\n"
        ));
    }
    if gid != 0 && gid != 65534 {
        group.push_str(&format!("sandbox:x:{gid}:\n"));
    }
    passwd.push_str("nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n");
    group.push_str("nogroup:x:65534:\n");
    vec![
        ("passwd".into(), passwd),
        ("group".into(), group),
        ("hostname".into(), format!("{hostname}\n")),
        ("hosts".into(), format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n")),
        ("nsswitch.conf".into(), "passwd: files\ngroup: files\nhosts: files\n".into()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::base_spec;
    use oci_spec::runtime::{LinuxMemoryBuilder, LinuxResourcesBuilder, MountBuilder};

    fn spec_with_mounts(mounts: Vec<oci_spec::runtime::Mount>) -> Spec {
        let mut s = base_spec(vec!["/bin/true".into()]);
        s.set_mounts(Some(mounts));
        s
    }

    #[test]
    fn base_spec_plans_with_defaults() {
        let p = plan(&base_spec(vec!["true".into()]), &RunOptions::default()).unwrap();
        assert_eq!(p.uid, 1000);
        assert_eq!(p.hostname, "sandbox");
        assert_eq!(p.cgroup.memory_bytes, Some(defaults::MEMORY_BYTES));
        assert_eq!(p.cgroup.pids, Some(defaults::PIDS));
        assert!(p
            .rlimits
            .iter()
            .any(|r| r.resource == libc::RLIMIT_NOFILE as i32 && r.hard == 1024));
        // A raw spec gets exactly the mounts it lists (issue 13: /tmp and
        // /workspace are the RequestBuilder's, not plan's).
        assert!(p.mounts.is_empty(), "{:?}", p.mounts);
        assert!(p.path_dirs.contains(&"/usr/bin".to_string()));
        assert!(p.masked_paths.contains(&PathBuf::from("/proc/kcore")));
        assert!(p
            .etc_files
            .iter()
            .any(|(n, c)| n == "passwd" && c.contains(":1000:1000:")));
    }

    #[test]
    fn host_layout_has_usr() {
        let l = HostLayout::get();
        assert!(l.ro_dirs.contains(&PathBuf::from("/usr")), "{l:?}");
        assert!(!l
            .etc_entries
            .iter()
            .any(|e| matches!(e, EtcEntry::Bind { name, .. } if name == "shadow")));
    }

    #[test]
    fn rejects_unsupported_fields_by_name() {
        let mut s = base_spec(vec!["true".into()]);
        s.set_domainname(Some("x".into()));
        assert!(plan(&s, &RunOptions::default())
            .unwrap_err()
            .to_string()
            .contains("domainname"));

        let mut s = base_spec(vec!["true".into()]);
        s.linux_mut().as_mut().unwrap().set_namespaces(Some(vec![]));
        let e = plan(&s, &RunOptions::default()).unwrap_err().to_string();
        assert!(e.contains("linux.namespaces"), "{e}");

        let mut s = base_spec(vec!["true".into()]);
        s.linux_mut().as_mut().unwrap().set_sysctl(Some(
            // Not namespaced (issue 14 lets namespaced ones through).
            [("vm.swappiness".to_string(), "1".to_string())].into(),
        ));
        assert!(plan(&s, &RunOptions::default())
            .unwrap_err()
            .to_string()
            .contains("linux.sysctl"));

        let mut s = base_spec(vec!["true".into()]);
        let res = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    // Issue 14 takes swap above the limit; below is invalid.
                    .limit(2 << 20)
                    .swap(1 << 20)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        s.linux_mut().as_mut().unwrap().set_resources(Some(res));
        assert!(plan(&s, &RunOptions::default())
            .unwrap_err()
            .to_string()
            .contains("swap"));

        let mut s = base_spec(vec![]);
        s.set_hostname(Some("bad host".into()));
        assert!(plan(&s, &RunOptions::default()).is_err());
    }

    /// A scratch directory owned by nobody when we are root (a read-write
    /// bind of a root-owned one is refused), removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str, mode: u32) -> Scratch {
            use std::os::unix::fs::PermissionsExt;
            let p = std::env::temp_dir().join(format!(
                "runtimed-plan-{}-{name}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            std::fs::create_dir_all(&p).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            Scratch(p)
        }

        fn owned_by(self, id: u32) -> Scratch {
            if nix::unistd::geteuid().is_root() {
                std::os::unix::fs::chown(&self.0, Some(id), Some(id)).unwrap();
            }
            self
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn bind_mount(src: &Path, dest: &str, mode: &str) -> oci_spec::runtime::Mount {
        MountBuilder::default()
            .destination(dest)
            .typ("bind")
            .source(src)
            .options(vec!["rbind".to_string(), mode.to_string()])
            .build()
            .unwrap()
    }

    #[test]
    fn mounts_are_parsed_and_checked() {
        let src = Scratch::new("bind-src", 0o755).owned_by(65534);
        let bind = bind_mount(&src.0, "/data", "rw");
        let tmp = MountBuilder::default()
            .destination("/scratch")
            .typ("tmpfs")
            .options(vec!["size=8m".to_string(), "mode=1777".to_string()])
            .build()
            .unwrap();
        let p = plan(&spec_with_mounts(vec![bind, tmp]), &RunOptions::default()).unwrap();
        let data = p
            .mounts
            .iter()
            .find(|m| m.destination == Path::new("/data"))
            .unwrap();
        assert!(!data.readonly);
        assert!(matches!(
            data.kind,
            MountKind::Bind {
                recursive: true,
                is_dir: true,
                ..
            }
        ));
        let scratch = p
            .mounts
            .iter()
            .find(|m| m.destination == Path::new("/scratch"))
            .unwrap();
        assert_eq!(
            scratch.kind,
            MountKind::Tmpfs {
                size: 8 << 20,
                mode: 0o1777,
                uid: 1000,
                gid: 1000
            }
        );

        for (dest, typ, src, opt) in [
            ("relative", "tmpfs", None, "size=1m"),
            ("/x", "tmpfs", None, "size=12Q"),
            ("/x", "tmpfs", None, "uid=abc"),
            ("/x", "bind", Some("/nonexistent-source"), "ro"),
            ("/x", "bind", Some("/usr"), "suid"),
            ("/proc/sys", "tmpfs", None, "size=1m"),
            ("/x", "nfs", None, "ro"),
            ("/sys", "sysfs", None, "suid"),
            ("/x/../y", "tmpfs", None, "size=1m"),
        ] {
            let mut b = MountBuilder::default();
            b = b.destination(dest).typ(typ).options(vec![opt.to_string()]);
            if let Some(s) = src {
                b = b.source(s);
            }
            let m = b.build().unwrap();
            let r = plan(&spec_with_mounts(vec![m]), &RunOptions::default());
            assert!(r.is_err(), "{dest} {typ} {opt} accepted");
            assert!(
                r.unwrap_err().to_string().starts_with("mounts[0]"),
                "{dest}"
            );
        }
    }

    #[test]
    fn ids_must_fit_the_pool_slot() {
        let mut s = base_spec(vec!["true".into()]);
        s.process_mut().as_mut().unwrap().user_mut().set_uid(70_000);
        let e = plan(&s, &RunOptions::default()).unwrap_err().to_string();
        assert!(e.contains("process.user.uid"), "{e}");
    }

    #[test]
    fn standard_oci_mounts_are_accepted() {
        let proc_m = MountBuilder::default()
            .destination("/proc")
            .typ("proc")
            .source("proc")
            .build()
            .unwrap();
        let shm = MountBuilder::default()
            .destination("/dev/shm")
            .typ("tmpfs")
            .options(vec!["size=1m".to_string()])
            .build()
            .unwrap();
        let p = plan(&spec_with_mounts(vec![proc_m, shm]), &RunOptions::default()).unwrap();
        assert_eq!(p.shm_bytes, 1 << 20);
        // proc and /dev/shm are the sandbox's own: no extra mount planned.
        assert!(p.mounts.is_empty(), "{:?}", p.mounts);
    }

    #[test]
    fn build_allowances_are_off_unless_asked_for() {
        use oci_spec::runtime::{Capability, LinuxCapabilitiesBuilder};
        let caps = |list: Vec<Capability>| {
            let set: std::collections::HashSet<Capability> = list.into_iter().collect();
            LinuxCapabilitiesBuilder::default()
                .bounding(set.clone())
                .effective(set.clone())
                .permitted(set)
                .inheritable(std::collections::HashSet::new())
                .ambient(std::collections::HashSet::new())
                .build()
                .unwrap()
        };
        let mut s = base_spec(vec!["true".into()]);
        s.process_mut()
            .as_mut()
            .unwrap()
            .set_capabilities(Some(caps(vec![Capability::Chown, Capability::Setuid])));
        // Issue 14: a spec's capabilities are held as listed (in the
        // sandbox's user namespace) by any run; a build step's are
        // checked against BUILD_CAPABILITIES below.
        let listed = plan(&s, &RunOptions::default()).unwrap().capabilities;
        assert_eq!(listed.effective, 1 | (1 << 7));
        let build = RunOptions {
            build_capabilities: true,
            ..RunOptions::default()
        };
        let held = plan(&s, &build).unwrap().capabilities;
        assert_eq!(
            (held.bounding, held.effective, held.permitted),
            (1 | (1 << 7), 1 | (1 << 7), 1 | (1 << 7))
        );
        assert_eq!((held.inheritable, held.ambient), (0, 0));
        s.process_mut()
            .as_mut()
            .unwrap()
            .set_capabilities(Some(caps(vec![Capability::SysAdmin])));
        let err = plan(&s, &build).unwrap_err().to_string();
        assert!(
            err.contains("CAP_SYS_ADMIN") || err.contains("SysAdmin") || err.contains("SYS_ADMIN"),
            "{err}"
        );

        let mut s = base_spec(vec!["true".into()]);
        let linux = s.linux_mut().as_mut().unwrap();
        let ns: Vec<_> = linux
            .namespaces()
            .clone()
            .unwrap()
            .into_iter()
            .filter(|n| n.typ() != oci_spec::runtime::LinuxNamespaceType::Network)
            .collect();
        linux.set_namespaces(Some(ns));
        let err = plan(&s, &RunOptions::default()).unwrap_err().to_string();
        assert!(err.contains("network"), "{err}");
        let host = RunOptions {
            host_network: true,
            ..RunOptions::default()
        };
        assert!(plan(&s, &host).unwrap().host_network);
        assert!(
            !plan(&base_spec(vec!["true".into()]), &host)
                .unwrap()
                .host_network
        );

        // A layered root excludes spec.root.
        let mut s = base_spec(vec!["true".into()]);
        s.set_root(Some(
            oci_spec::runtime::RootBuilder::default()
                .path("/srv")
                .readonly(true)
                .build()
                .unwrap(),
        ));
        let layered = RunOptions {
            root_layers: Some(crate::options::LayeredRoot {
                layers: vec![],
                upper: crate::options::Upper::Tmpfs { bytes: 1 << 20 },
                readonly: false,
            }),
            ..RunOptions::default()
        };
        let err = plan(&s, &layered).unwrap_err().to_string();
        assert!(err.contains("root"), "{err}");
        s.set_root(None);
        assert!(matches!(
            plan(&s, &layered).unwrap().root,
            RootPlan::Layers(_)
        ));
    }

    #[test]
    fn rw_binds_of_root_owned_sources_are_refused() {
        // The check itself, for every way an owner can be root's.
        let src = Path::new("/srv/ws");
        for (uid, gid) in [(0, 0), (0, 1000), (1000, 0)] {
            let e = check_rw_bind_owner("mounts[0].source", src, uid, gid)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("mounts[0].source"), "{e}");
            assert!(e.contains("/srv/ws") && e.contains("root"), "{e}");
            assert!(e.contains("chown") && e.contains("read-only"), "{e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
        assert!(check_rw_bind_owner("f", src, 1000, 1000).is_ok());
        // Through plan: /usr (root's) read-write is refused, read-only fine.
        let e = plan(
            &spec_with_mounts(vec![bind_mount(Path::new("/usr"), "/data", "rw")]),
            &RunOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("mounts[0].source") && e.contains("root"),
            "{e}"
        );
        assert!(plan(
            &spec_with_mounts(vec![bind_mount(Path::new("/usr"), "/data", "ro")]),
            &RunOptions::default(),
        )
        .is_ok());
        // Group root alone is refused too (root only: chown needs it).
        if nix::unistd::geteuid().is_root() {
            let src = Scratch::new("group-root", 0o755);
            std::os::unix::fs::chown(&src.0, Some(65534), Some(0)).unwrap();
            let e = plan(
                &spec_with_mounts(vec![bind_mount(&src.0, "/data", "rw")]),
                &RunOptions::default(),
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains("group root"), "{e}");
        }
    }

    #[test]
    fn build_steps_get_no_read_write_binds() {
        let src = Scratch::new("build-bind", 0o755).owned_by(65534);
        let build = RunOptions {
            build_capabilities: true,
            ..RunOptions::default()
        };
        let rw = spec_with_mounts(vec![bind_mount(&src.0, "/data", "rw")]);
        let e = plan(&rw, &build).unwrap_err().to_string();
        assert!(e.starts_with("mounts[0]") && e.contains("upper dir"), "{e}");
        assert!(plan(&rw, &RunOptions::default()).is_ok());
        let ro = spec_with_mounts(vec![bind_mount(&src.0, "/data", "ro")]);
        assert!(plan(&ro, &build).is_ok());
    }

    fn core_limit(p: &Plan) -> Vec<(u64, u64)> {
        p.rlimits
            .iter()
            .filter(|r| r.resource == libc::RLIMIT_CORE as i32)
            .map(|r| (r.soft, r.hard))
            .collect()
    }

    #[test]
    fn core_dumps_are_limited_to_one_byte() {
        use oci_spec::runtime::PosixRlimitBuilder;
        let p = plan(&base_spec(vec!["true".into()]), &RunOptions::default()).unwrap();
        assert_eq!(core_limit(&p), [(1, 1)]);
        let with_core = |soft: u64, hard: u64| {
            let mut s = base_spec(vec!["true".into()]);
            let r = PosixRlimitBuilder::default()
                .typ(PosixRlimitType::RlimitCore)
                .soft(soft)
                .hard(hard)
                .build()
                .unwrap();
            s.process_mut().as_mut().unwrap().set_rlimits(Some(vec![r]));
            plan(&s, &RunOptions::default())
        };
        // 0 means "no core file" as 1 does, and becomes 1.
        assert_eq!(core_limit(&with_core(0, 0).unwrap()), [(1, 1)]);
        assert_eq!(core_limit(&with_core(0, 1).unwrap()), [(1, 1)]);
        for (soft, hard) in [(0, u64::MAX), (4096, 4096)] {
            let e = with_core(soft, hard).unwrap_err().to_string();
            assert!(e.contains("RLIMIT_CORE"), "{e}");
        }
    }

    #[test]
    fn a_host_upper_dir_must_be_private_to_root() {
        let layered = |upper: &Path| RunOptions {
            root_layers: Some(crate::options::LayeredRoot {
                layers: vec![],
                upper: crate::options::Upper::Dir(upper.to_path_buf()),
                readonly: false,
            }),
            ..RunOptions::default()
        };
        let mut s = base_spec(vec!["true".into()]);
        s.set_root(None);
        let public = Scratch::new("upper-public", 0o755);
        let e = plan(&s, &layered(&public.0)).unwrap_err().to_string();
        assert!(
            e.starts_with("root_layers.upper") && e.contains("0700"),
            "{e}"
        );
        // Missing: made 0700 by spawn, fine here.
        assert!(plan(&s, &layered(&public.0.join("new"))).is_ok());
        if nix::unistd::geteuid().is_root() {
            let private = Scratch::new("upper-private", 0o700);
            std::fs::create_dir(private.0.join("below")).unwrap();
            assert!(plan(&s, &layered(&private.0)).is_ok());
            // Below a private directory: private however open it is.
            assert!(plan(&s, &layered(&private.0.join("below"))).is_ok());
            // A link from a private place to a public one is not private.
            std::os::unix::fs::symlink(&public.0, private.0.join("link")).unwrap();
            assert!(plan(&s, &layered(&private.0.join("link"))).is_err());
        }
    }
}
