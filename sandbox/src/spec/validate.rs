//! Validation of a `Spec` before any side effect: every field we do not
//! implement is rejected by its name (never silently ignored), and values
//! that would weaken isolation are refused.

use std::path::{Component, Path};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::options::RunOptions;

use super::NAMESPACES;

/// A spec we cannot run, with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("{field}: not supported ({why})")]
    Unsupported { field: String, why: &'static str },
    #[error("{field}: invalid value: {why}")]
    Invalid { field: String, why: String },
    #[error("{field}: required")]
    Missing { field: String },
    /// `linux.seccomp` cannot be translated ([`crate::seccomp::oci`]).
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::oci::OciSeccompError),
}

fn unsupported(field: impl Into<String>, why: &'static str) -> SpecError {
    SpecError::Unsupported {
        field: field.into(),
        why,
    }
}

pub(crate) fn invalid(field: impl Into<String>, why: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        field: field.into(),
        why: why.into(),
    }
}

/// Checks that `p` is absolute and has no `.`/`..` components.
pub(crate) fn check_abs_path(field: &str, p: &Path) -> Result<(), SpecError> {
    if !p.is_absolute() {
        return Err(invalid(
            field,
            format!("{} is not an absolute path", p.display()),
        ));
    }
    if p.components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(invalid(field, format!("{} contains . or ..", p.display())));
    }
    if p.as_os_str().as_encoded_bytes().contains(&0) {
        return Err(invalid(field, "contains a NUL byte"));
    }
    Ok(())
}

/// What a caller's `RunOptions` allow beyond the default rules (image
/// builds only).
#[derive(Clone, Copy, Debug, Default)]
pub struct Allowances {
    /// The network namespace may be missing (the host's network is shared).
    pub host_network: bool,
    /// `process.capabilities` may hold [`super::BUILD_CAPABILITIES`].
    pub build_capabilities: bool,
    /// The root comes from `RunOptions::root_layers`: `root` must be unset.
    pub layered_root: bool,
    /// An OCI container (`RunOptions::container`): its root is its own,
    /// writable unless `root.readonly`.
    pub container: bool,
}

/// Everything about a run that can be refused, checked before `plan`
/// computes anything: the spec with what the options allow, the ids against
/// the uid pool's slot, the root, and the rlimits. Mount options are
/// parsed (and their errors reported) by `plan`'s mount phase.
pub fn validate_run(spec: &Spec, opts: &RunOptions) -> Result<(), SpecError> {
    let allow = Allowances {
        host_network: opts.host_network,
        build_capabilities: opts.build_capabilities,
        layered_root: opts.root_layers.is_some(),
        container: opts.container.is_some(),
    };
    validate_allowing(spec, allow)?;
    // validate_allowing checked it is present.
    let Some(process) = spec.process().as_ref() else {
        return Err(SpecError::Missing {
            field: "process".into(),
        });
    };
    validate_ids(process.user(), opts.uid_pool.slot_size)?;
    validate_root(spec, opts)?;
    validate_rlimits(process)
}

/// Every id the program runs with lies in the sandbox's id range.
fn validate_ids(user: &oci_spec::runtime::User, max_id: u32) -> Result<(), SpecError> {
    for (f, id) in [
        ("process.user.uid", user.uid()),
        ("process.user.gid", user.gid()),
    ]
    .into_iter()
    .chain(
        user.additional_gids()
            .iter()
            .flatten()
            .map(|g| ("process.user.additionalGids", *g)),
    ) {
        if id >= max_id {
            return Err(invalid(
                f,
                format!("{id} is outside the sandbox's id range 0..{max_id}"),
            ));
        }
    }
    Ok(())
}

/// The root: an image's layers and upper dir, or the caller's directory.
fn validate_root(spec: &Spec, opts: &RunOptions) -> Result<(), SpecError> {
    match (spec.root(), &opts.root_layers) {
        (_, Some(layered)) => {
            let upper_dir = match &layered.upper {
                crate::options::Upper::Dir(d) => Some(d),
                crate::options::Upper::Tmpfs { bytes: 0 } => {
                    return Err(invalid("root_layers.upper", "a tmpfs upper needs a size"));
                }
                crate::options::Upper::Tmpfs { .. } => None,
            };
            for (f, p) in layered
                .layers
                .iter()
                .map(|p| ("root_layers.layers", p))
                .chain(upper_dir.map(|p| ("root_layers.upper", p)))
            {
                if !p.is_absolute() || p.to_string_lossy().contains([',', ':', '\\']) {
                    return Err(invalid(
                        f,
                        format!("{} must be absolute without ',', ':' or '\\'", p.display()),
                    ));
                }
                if f == "root_layers.layers" && !p.is_dir() {
                    return Err(invalid(f, format!("{} is not a directory", p.display())));
                }
            }
            if layered.layers.len() > 128 {
                return Err(invalid("root_layers.layers", "more than 128 layers"));
            }
            // A missing upper dir is made 0700 by the parent (spawn), which
            // checks again once it exists.
            if let Some(d) = upper_dir.filter(|d| d.exists()) {
                if !private_to_root(d).unwrap_or(false) {
                    return Err(upper_not_private(d));
                }
            }
            Ok(())
        }
        (None, None) => Ok(()),
        (Some(r), None) => {
            let p = r.path();
            // The path goes into overlay mount options, where these separate
            // fields and layers.
            if p.to_string_lossy().contains([',', ':', '\\']) {
                return Err(invalid(
                    "root.path",
                    format!("{} contains ',', ':' or '\\'", p.display()),
                ));
            }
            if !p.is_dir() {
                return Err(invalid(
                    "root.path",
                    format!("{} is not a directory", p.display()),
                ));
            }
            Ok(())
        }
    }
}

/// Soft limits within hard ones; no core files (see `plan::CORE_LIMIT`).
fn validate_rlimits(process: &oci_spec::runtime::Process) -> Result<(), SpecError> {
    for r in process.rlimits().iter().flatten() {
        if r.soft() > r.hard() {
            return Err(invalid(
                "process.rlimits",
                format!("soft limit {} above hard limit {}", r.soft(), r.hard()),
            ));
        }
        if r.typ() == oci_spec::runtime::PosixRlimitType::RlimitCore
            && r.hard() > super::plan::CORE_LIMIT
        {
            return Err(invalid(
                "process.rlimits",
                "RLIMIT_CORE above 1 byte: sandboxes never dump core (a crash would \
                 reach the host's core_pattern handler); leave it out",
            ));
        }
    }
    Ok(())
}

/// Whether no user but root can reach `dir`: it, or a directory above it,
/// is owned by root and grants nothing to group or others. Symlinks are
/// resolved first, so a link below a private directory to a public one
/// does not count as private. An image root's host upper dir must be: it
/// holds the image's files with the image's ids (root's, and setuid ones).
pub(crate) fn private_to_root(dir: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let real = std::fs::canonicalize(dir)?;
    for p in real.ancestors() {
        let meta = std::fs::metadata(p)?;
        if meta.is_dir() && meta.uid() == 0 && meta.mode() & 0o077 == 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The error for an upper dir others can reach (see [`private_to_root`]).
pub(crate) fn upper_not_private(dir: &Path) -> SpecError {
    invalid(
        "root_layers.upper",
        format!(
            "{} can be reached by other users: an upper dir holds files with the image's \
             ids (root's and setuid ones included), so it or a directory above it must be \
             owned by root with mode 0700",
            dir.display()
        ),
    )
}

/// Validates the whole spec. Mount options and limits are parsed (and their
/// errors reported) by `plan`, which calls this first.
pub fn validate(spec: &Spec) -> Result<(), SpecError> {
    validate_allowing(spec, Allowances::default())
}

/// [`validate`] with what the run's options allow.
pub fn validate_allowing(spec: &Spec, allow: Allowances) -> Result<(), SpecError> {
    // A container's hooks are its engine's (trusted, like the engine):
    // the OCI front end runs them, the sandbox never does.
    if spec.hooks().is_some() && !allow.container {
        return Err(unsupported(
            "hooks",
            "hooks would run code outside the sandbox",
        ));
    }
    if spec.domainname().is_some() {
        return Err(unsupported("domainname", "not implemented"));
    }
    if spec.solaris().is_some()
        || spec.windows().is_some()
        || spec.vm().is_some()
        || spec.zos().is_some()
    {
        return Err(unsupported("solaris/windows/vm/zos", "Linux only"));
    }
    if spec.uid_mappings().is_some() || spec.gid_mappings().is_some() {
        return Err(unsupported(
            "uidMappings/gidMappings",
            "ids come from the uid pool",
        ));
    }
    let joins_uts = spec.linux().as_ref().is_some_and(|l| {
        l.namespaces()
            .iter()
            .flatten()
            .any(|n| n.typ() == LinuxNamespaceType::Uts && n.path().is_some())
    });
    if joins_uts && spec.hostname().is_some() {
        return Err(unsupported(
            "hostname",
            "a joined uts namespace keeps its own hostname (runc refuses the same)",
        ));
    }
    if let Some(h) = spec.hostname() {
        if h.is_empty()
            || h.len() > 64
            || !h
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return Err(invalid(
                "hostname",
                format!("{h:?} is not a valid hostname"),
            ));
        }
    }
    if let Some(root) = spec.root() {
        if allow.layered_root {
            return Err(unsupported(
                "root",
                "the root comes from the image's layers (RunOptions::root_layers)",
            ));
        }
        check_abs_path("root.path", root.path())?;
        if root.readonly() == Some(false) && !allow.container {
            return Err(unsupported(
                "root.readonly",
                "the root is always read-only; use binds, tmpfs or /workspace for writes",
            ));
        }
    }
    let process = spec.process().as_ref().ok_or(SpecError::Missing {
        field: "process".into(),
    })?;
    validate_process(process, allow)?;
    let linux = spec.linux().as_ref().ok_or(SpecError::Missing {
        field: "linux".into(),
    })?;
    validate_linux(linux, allow)?;
    Ok(())
}

fn validate_process(p: &oci_spec::runtime::Process, allow: Allowances) -> Result<(), SpecError> {
    match p.args() {
        Some(a) if !a.is_empty() && !a[0].is_empty() => {}
        _ => {
            return Err(SpecError::Missing {
                field: "process.args".into(),
            })
        }
    }
    if p.args().iter().flatten().any(|a| a.contains('\0')) {
        return Err(invalid("process.args", "contains a NUL byte"));
    }
    for e in p.env().iter().flatten() {
        match e.split_once('=') {
            Some((k, _)) if !k.is_empty() && !e.contains('\0') => {}
            _ => return Err(invalid("process.env", format!("{e:?} is not KEY=VALUE"))),
        }
    }
    check_abs_path("process.cwd", p.cwd())?;
    if p.command_line().is_some() {
        return Err(unsupported("process.commandLine", "Windows only"));
    }
    if let Some(caps) = p.capabilities() {
        let sets = [
            ("bounding", caps.bounding()),
            ("effective", caps.effective()),
            ("inheritable", caps.inheritable()),
            ("permitted", caps.permitted()),
            ("ambient", caps.ambient()),
        ];
        // A build step may list build capabilities in any set; only those
        // in bounding, effective and permitted alike are held (inheritable
        // and ambient stay empty: nothing passes on across an exec by a
        // non-root user).
        for (name, set) in sets.into_iter().filter(|_| allow.build_capabilities) {
            if let Some(c) = set
                .iter()
                .flatten()
                .find(|c| super::capability_bit(**c).is_none())
            {
                return Err(invalid(
                    format!("process.capabilities.{name}"),
                    format!("{c} is not one a build step may hold"),
                ));
            }
        }
        // Otherwise any capability, held in the sandbox's user namespace
        // only; the sets must be ones the kernel can give (capset(2) and
        // PR_CAP_AMBIENT_RAISE refuse the rest with EPERM).
        if !allow.build_capabilities {
            let s = crate::capabilities::CapabilitySets::of(caps);
            if s.effective & !s.permitted != 0 {
                return Err(invalid(
                    "process.capabilities.effective",
                    "holds capabilities the permitted set lacks",
                ));
            }
            if s.ambient & !(s.permitted & s.inheritable) != 0 {
                return Err(invalid(
                    "process.capabilities.ambient",
                    "holds capabilities not in both the permitted and inheritable sets",
                ));
            }
        }
    }
    // noNewPrivileges false asks for less than our default: no_new_privs
    // is set anyway (seccomp and Landlock rest on it), as the runtime adds
    // isolation an engine leaves out (issue 14). Kubernetes sends false
    // for every pod that does not forbid privilege escalation.
    if let Some(profile) = p.apparmor_profile() {
        check_apparmor(profile, apparmor_enabled())?;
    }
    if p.selinux_label().is_some() {
        return Err(unsupported("process.selinuxLabel", "not implemented"));
    }
    if let Some(adj) = p.oom_score_adj() {
        if !(-1000..=1000).contains(&adj) {
            return Err(invalid(
                "process.oomScoreAdj",
                format!("{adj} is outside -1000..=1000"),
            ));
        }
    }
    if p.io_priority().is_some() {
        return Err(unsupported("process.ioPriority", "not implemented"));
    }
    if p.scheduler().is_some() {
        return Err(unsupported("process.scheduler", "not implemented"));
    }
    if p.exec_cpu_affinity().is_some() {
        return Err(unsupported("process.execCPUAffinity", "not implemented"));
    }
    if p.user().username().is_some() {
        return Err(unsupported("process.user.username", "Windows only"));
    }
    Ok(())
}

fn validate_linux(l: &oci_spec::runtime::Linux, allow: Allowances) -> Result<(), SpecError> {
    let ns = l.namespaces().as_ref().ok_or(SpecError::Missing {
        field: "linux.namespaces".into(),
    })?;
    for n in ns {
        if let Some(path) = n.path() {
            let field = format!("linux.namespaces[{}].path", n.typ());
            if !crate::namespaces::JOINABLE.contains(&n.typ()) {
                return Err(unsupported(
                    field,
                    "only network, ipc and uts namespaces are joined by path \
                     (ids come from the uid pool; pid, mount and cgroup are always new)",
                ));
            }
            check_abs_path(&field, path)?;
            crate::namespaces::open_checked(n.typ(), path)
                .map_err(|e| invalid(field.clone(), e.to_string()))?;
        }
        if ns.iter().filter(|m| m.typ() == n.typ()).count() > 1 {
            return Err(invalid(
                format!("linux.namespaces[{}]", n.typ()),
                "listed twice",
            ));
        }
        if !NAMESPACES.contains(&n.typ()) {
            return Err(unsupported(
                format!("linux.namespaces[{}]", n.typ()),
                "not implemented",
            ));
        }
    }
    for want in NAMESPACES {
        if want == LinuxNamespaceType::Network && allow.host_network {
            continue;
        }
        // A container that asks for no user or cgroup namespace gets ours
        // anyway (a fresh host uid range; a cgroup namespace rooted at its
        // cgroup): less isolation than asked is never given.
        if allow.container && matches!(want, LinuxNamespaceType::User | LinuxNamespaceType::Cgroup)
        {
            continue;
        }
        if !ns.iter().any(|n| n.typ() == want) {
            let name = match want {
                LinuxNamespaceType::Network => {
                    "network namespace is required (--net none is the only network mode)"
                }
                _ => "every sandbox gets user, pid, mount, network, ipc, uts and cgroup namespaces",
            };
            return Err(unsupported(
                format!("linux.namespaces: {want} missing"),
                name,
            ));
        }
    }
    let checks: [(&str, bool, &'static str); 8] = [
        (
            "linux.netDevices",
            l.net_devices().is_some(),
            "no network devices are moved into sandboxes",
        ),
        (
            "linux.cgroupsPath",
            l.cgroups_path().is_some() && !allow.container,
            "cgroups are placed below the runtime's own cgroup",
        ),
        (
            "linux.devices",
            l.devices().as_ref().is_some_and(|d| !d.is_empty()),
            "the device set is fixed (null, zero, full, random, urandom, tty)",
        ),
        (
            "linux.mountLabel",
            l.mount_label().is_some(),
            "SELinux is not implemented",
        ),
        ("linux.intelRdt", l.intel_rdt().is_some(), "not implemented"),
        (
            "linux.memoryPolicy",
            l.memory_policy().is_some(),
            "not implemented",
        ),
        (
            "linux.personality",
            l.personality().is_some(),
            "not implemented",
        ),
        (
            "linux.timeOffsets",
            l.time_offsets().is_some(),
            "time namespaces are not implemented",
        ),
    ];
    for (field, bad, why) in checks {
        if bad {
            return Err(unsupported(field, why));
        }
    }
    for (key, value) in l.sysctl().iter().flatten() {
        check_sysctl(key, value, ns, allow)?;
    }
    // An engine's profile replaces the named one of the run options; what
    // cannot be translated is refused here, before any side effect.
    if let Some(profile) = l.seccomp() {
        crate::seccomp::oci::check(profile)?;
    }
    if let Some(p) = l.rootfs_propagation() {
        if !matches!(p.as_str(), "private" | "rprivate" | "slave" | "rslave") {
            return Err(unsupported(
                "linux.rootfsPropagation",
                "only private/slave propagation",
            ));
        }
    }
    for (field, list) in [
        ("linux.maskedPaths", l.masked_paths()),
        ("linux.readonlyPaths", l.readonly_paths()),
    ] {
        for p in list.iter().flatten() {
            check_abs_path(field, Path::new(p))?;
        }
    }
    if let Some(r) = l.resources() {
        check_device_rules(r)?;
        let checks: [(&str, bool); 4] = [
            (
                "linux.resources.hugepageLimits",
                r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()),
            ),
            ("linux.resources.network", r.network().is_some()),
            ("linux.resources.rdma", r.rdma().is_some()),
            (
                "linux.resources.unified",
                r.unified().as_ref().is_some_and(|u| !u.is_empty()),
            ),
        ];
        for (field, bad) in checks {
            if bad {
                return Err(unsupported(field, "not implemented"));
            }
        }
        check_cpu_resources(r)?;
        check_memory_resources(r)?;
        // dockerd writes `blockIO: {weight: 0}` (no weight asked) for
        // every container; a weight or throttle is refused by name.
        if let Some(b) = r.block_io() {
            let devices = [
                b.weight_device().as_ref().map_or(0, Vec::len),
                b.throttle_read_bps_device().as_ref().map_or(0, Vec::len),
                b.throttle_write_bps_device().as_ref().map_or(0, Vec::len),
                b.throttle_read_iops_device().as_ref().map_or(0, Vec::len),
                b.throttle_write_iops_device().as_ref().map_or(0, Vec::len),
            ];
            if b.weight().is_some_and(|w| w != 0)
                || b.leaf_weight().is_some_and(|w| w != 0)
                || devices.iter().any(|n| *n != 0)
            {
                return Err(unsupported(
                    "linux.resources.blockIO",
                    "no io/blkio controller is managed (weights and throttles)",
                ));
            }
        }
        // pids.limit 0 or -1 is "no limit" (runtime-spec): the default
        // applies (docs/limits.md).
        if let Some(c) = r.cpu() {
            if let Some(q) = c.quota() {
                if q <= 0 {
                    return Err(invalid("linux.resources.cpu.quota", "must be positive"));
                }
            }
            if let Some(p) = c.period() {
                if !(1000..=1_000_000).contains(&p) {
                    return Err(invalid(
                        "linux.resources.cpu.period",
                        "must be 1000..=1000000 µs",
                    ));
                }
            }
        }
    }
    Ok(())
}

/// `linux.resources.devices`: the device controller's rules, checked for
/// form and not programmed. What a sandbox can open is decided before
/// them: its /dev holds only the fixed nodes and `linux.devices`, every
/// other mount is nodev, and a user namespace cannot make device nodes
/// (mknod(2) needs CAP_MKNOD in the initial namespace). crun does the same
/// in a user namespace, where the controller is not delegated.
fn check_device_rules(r: &oci_spec::runtime::LinuxResources) -> Result<(), SpecError> {
    for (i, d) in r.devices().iter().flatten().enumerate() {
        if let Some(a) = d.access() {
            if a.is_empty() || !a.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
                return Err(invalid(
                    format!("linux.resources.devices[{i}].access"),
                    format!("{a:?} is not a combination of r, w and m"),
                ));
            }
        }
    }
    Ok(())
}

/// `linux.resources.cpu`: shares (0 is dockerd's "none asked"), quota and
/// period; cpusets and realtime are refused by name.
fn check_cpu_resources(r: &oci_spec::runtime::LinuxResources) -> Result<(), SpecError> {
    let Some(c) = r.cpu() else {
        return Ok(());
    };
    if c.cpus().is_some()
        || c.mems().is_some()
        || c.realtime_runtime().is_some()
        || c.realtime_period().is_some()
        || c.idle().is_some()
        || c.burst().is_some()
    {
        return Err(unsupported(
            "linux.resources.cpu (cpus/mems/realtime/idle/burst)",
            "no cpuset or realtime control; shares, quota and period are",
        ));
    }
    if let Some(s) = c.shares().filter(|s| *s != 0) {
        if !(2..=262_144).contains(&s) {
            return Err(invalid(
                "linux.resources.cpu.shares",
                format!("{s} is outside 2..=262144"),
            ));
        }
    }
    Ok(())
}

/// `linux.resources.memory`: limit, swap (memory plus swap, -1 for
/// unlimited), reservation; the OOM killer stays on.
fn check_memory_resources(r: &oci_spec::runtime::LinuxResources) -> Result<(), SpecError> {
    let Some(m) = r.memory() else {
        return Ok(());
    };
    if m.kernel().is_some() || m.kernel_tcp().is_some() || m.swappiness().is_some() {
        return Err(unsupported(
            "linux.resources.memory (kernel/kernelTCP/swappiness)",
            "kernel memory limits are gone from the kernel; swappiness is v1-only",
        ));
    }
    if m.disable_oom_killer() == Some(true) {
        return Err(unsupported(
            "linux.resources.memory.disableOOMKiller",
            "the OOM killer enforces the memory limit and reports oom_killed",
        ));
    }
    if m.check_before_update().is_some() {
        return Err(unsupported(
            "linux.resources.memory.checkBeforeUpdate",
            "not implemented",
        ));
    }
    match (m.limit(), m.swap()) {
        (Some(l), _) if l <= 0 => {
            return Err(invalid("linux.resources.memory.limit", "must be positive"))
        }
        (Some(l), Some(s)) if s != -1 && s < l => {
            return Err(invalid(
                "linux.resources.memory.swap",
                format!("{s} is below the limit {l}: swap counts memory plus swap"),
            ))
        }
        (None, Some(_)) => {
            return Err(unsupported(
                "linux.resources.memory.swap",
                "swap is limited together with a memory limit",
            ))
        }
        _ => {}
    }
    if m.reservation().is_some_and(|v| v < 0) {
        return Err(invalid(
            "linux.resources.memory.reservation",
            "must not be negative",
        ));
    }
    Ok(())
}

/// Whether AppArmor is active on this host (the kernel module's own
/// switch).
fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
}

/// `process.apparmorProfile`: without AppArmor there is nothing to apply
/// and the profile is ignored with a log line, as runc and crun do; with
/// AppArmor active we would have to apply it and cannot, so it is refused
/// rather than silently dropped.
fn check_apparmor(profile: &str, enabled: bool) -> Result<(), SpecError> {
    if profile.is_empty() || profile == "unconfined" {
        return Ok(());
    }
    if enabled {
        return Err(unsupported(
            "process.apparmorProfile",
            "AppArmor is active on this host and runtimed cannot apply its profiles",
        ));
    }
    tracing::info!(
        profile,
        "process.apparmorProfile ignored: AppArmor is not active on this host"
    );
    Ok(())
}

/// IPC parameters a new IPC namespace has its own copy of (ipc/ipc_sysctl.c;
/// the `fs.mqueue.*` ones are checked by prefix).
const IPC_SYSCTLS: [&str; 8] = [
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// The namespace a kernel parameter belongs to, `None` for one shared with
/// the host (runc's list of namespaced sysctls, the same kernel facts).
pub(crate) fn sysctl_namespace(key: &str) -> Option<LinuxNamespaceType> {
    if IPC_SYSCTLS.contains(&key) || key.starts_with("fs.mqueue.") {
        Some(LinuxNamespaceType::Ipc)
    } else if key.starts_with("net.") {
        Some(LinuxNamespaceType::Network)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some(LinuxNamespaceType::Uts)
    } else {
        None
    }
}

/// One `linux.sysctl` entry: a well-formed name (it becomes a path under
/// /proc/sys), a parameter of a namespace the sandbox has, a value without
/// NUL. Anything else would change the host, and is refused by name.
fn check_sysctl(
    key: &str,
    value: &str,
    ns: &[oci_spec::runtime::LinuxNamespace],
    allow: Allowances,
) -> Result<(), SpecError> {
    let field = format!("linux.sysctl.{key}");
    let well_formed = !key.is_empty()
        && key.len() <= 256
        && key.split(['.', '/']).all(|c| {
            !c.is_empty()
                && c != ".."
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
    if !well_formed {
        return Err(invalid(field, "not a kernel parameter name"));
    }
    let Some(typ) = sysctl_namespace(key) else {
        return Err(SpecError::Unsupported {
            field,
            why: "not a namespaced parameter: it would change the host",
        });
    };
    let have = ns.iter().any(|n| n.typ() == typ)
        && !(typ == LinuxNamespaceType::Network && allow.host_network);
    if !have {
        return Err(SpecError::Unsupported {
            field,
            why: "the config asks for no namespace of its kind (net.* needs network, \
                  kernel.shm*/msg*/sem and fs.mqueue.* need ipc, kernel.hostname needs uts)",
        });
    }
    if ns.iter().any(|n| n.typ() == typ && n.path().is_some()) {
        return Err(SpecError::Unsupported {
            field,
            why: "the namespace is joined by path: the sandbox's user namespace does not \
                  own it, so set the parameter where the namespace was made",
        });
    }
    if value.contains('\0') || value.len() > 4096 {
        return Err(invalid(
            field,
            "the value has a NUL byte or is over 4096 bytes",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::base_spec;
    use oci_spec::runtime::{PosixRlimitBuilder, PosixRlimitType, RootBuilder};

    fn field_of(r: Result<(), SpecError>) -> String {
        match r {
            Err(SpecError::Invalid { field, .. }) => field,
            other => panic!("not refused as invalid: {other:?}"),
        }
    }

    fn with_rlimit(typ: PosixRlimitType, soft: u64, hard: u64) -> Spec {
        let mut s = base_spec(vec!["/bin/true".into()]);
        let mut p = s.process().clone().unwrap();
        let r = PosixRlimitBuilder::default()
            .typ(typ)
            .soft(soft)
            .hard(hard)
            .build()
            .unwrap();
        p.set_rlimits(Some(vec![r]));
        s.set_process(Some(p));
        s
    }

    /// What `plan` used to check as it went is refused by `validate_run`
    /// alone, before anything is computed; `plan` gives the same error.
    #[test]
    fn a_run_is_refused_before_planning() {
        let opts = RunOptions::default();
        let mut uid = base_spec(vec!["/bin/true".into()]);
        let mut p = uid.process().clone().unwrap();
        let mut user = p.user().clone();
        user.set_uid(opts.uid_pool.slot_size);
        p.set_user(user);
        uid.set_process(Some(p));
        let mut not_dir = base_spec(vec!["/bin/true".into()]);
        not_dir.set_root(Some(
            RootBuilder::default()
                .path("/proc/self/status")
                .build()
                .unwrap(),
        ));
        let mut comma = base_spec(vec!["/bin/true".into()]);
        comma.set_root(Some(
            RootBuilder::default().path("/tmp/a,b").build().unwrap(),
        ));
        let cases = [
            (uid, "process.user.uid"),
            (not_dir, "root.path"),
            (comma, "root.path"),
            (
                with_rlimit(PosixRlimitType::RlimitNofile, 10, 5),
                "process.rlimits",
            ),
            (
                with_rlimit(PosixRlimitType::RlimitCore, 0, 2),
                "process.rlimits",
            ),
        ];
        for (spec, field) in cases {
            assert_eq!(field_of(validate_run(&spec, &opts)), field);
            let planned = crate::spec::plan::plan(&spec, &opts).map(|_| ());
            assert_eq!(field_of(planned), field);
        }
        // The limits that are allowed pass.
        validate_run(&with_rlimit(PosixRlimitType::RlimitCore, 1, 1), &opts).unwrap();
    }

    fn with_sysctl(spec: &mut Spec, key: &str, value: &str) {
        let linux = spec.linux_mut().as_mut().unwrap();
        linux.set_sysctl(Some([(key.to_string(), value.to_string())].into()));
    }

    fn without_namespace(spec: &mut Spec, typ: LinuxNamespaceType) {
        let linux = spec.linux_mut().as_mut().unwrap();
        let ns = linux.namespaces().clone().unwrap();
        linux.set_namespaces(Some(ns.into_iter().filter(|n| n.typ() != typ).collect()));
    }

    /// Namespaced parameters pass when their namespace is asked for; the
    /// host's are refused by name, as are names that would leave /proc/sys.
    #[test]
    fn sysctls_must_be_namespaced_and_their_namespace_asked_for() {
        let opts = RunOptions::default();
        for key in [
            "net.ipv4.ping_group_range",
            "net.ipv4.ip_unprivileged_port_start",
            "kernel.shmmax",
            "fs.mqueue.msg_max",
            "kernel.hostname",
        ] {
            let mut s = base_spec(vec!["/bin/true".into()]);
            with_sysctl(&mut s, key, "0");
            validate_run(&s, &opts).unwrap_or_else(|e| panic!("{key}: {e}"));
            let p = crate::spec::plan::plan(&s, &opts).unwrap();
            assert_eq!(p.sysctl, [(key.to_string(), "0".to_string())]);
        }
        // Docker's "every group" fitted to the sandbox's gids.
        let mut s = base_spec(vec!["/bin/true".into()]);
        with_sysctl(&mut s, "net.ipv4.ping_group_range", "0 2147483647");
        let p = crate::spec::plan::plan(&s, &opts).unwrap();
        let last = opts.uid_pool.slot_size - 1;
        assert_eq!(p.sysctl[0].1, format!("0\t{last}"));
        with_sysctl(&mut s, "net.ipv4.ping_group_range", "100 200");
        let p = crate::spec::plan::plan(&s, &opts).unwrap();
        assert_eq!(p.sysctl[0].1, "100 200");
        for key in [
            "vm.swappiness",
            "kernel.core_pattern",
            "kernel.pid_max",
            "fs.file-max",
        ] {
            let mut s = base_spec(vec!["/bin/true".into()]);
            with_sysctl(&mut s, key, "1");
            let e = validate_run(&s, &opts).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("linux.sysctl.{key}: not supported")),
                "{e}"
            );
        }
        for key in [
            "net/../../kernel/core_pattern",
            "net..ipv4",
            "net.ipv4.a b",
            "",
        ] {
            let mut s = base_spec(vec!["/bin/true".into()]);
            with_sysctl(&mut s, key, "1");
            let e = validate_run(&s, &opts).unwrap_err().to_string();
            assert!(e.contains("not a kernel parameter name"), "{key:?}: {e}");
        }
        // The namespace must be there: net.* in the host's network, ipc
        // ones without an IPC namespace.
        let host = RunOptions {
            host_network: true,
            ..RunOptions::default()
        };
        let mut s = base_spec(vec!["/bin/true".into()]);
        with_sysctl(&mut s, "net.ipv4.ping_group_range", "0 0");
        without_namespace(&mut s, LinuxNamespaceType::Network);
        let e = validate_run(&s, &host).unwrap_err().to_string();
        assert!(e.contains("no namespace of its kind"), "{e}");
        let mut s = base_spec(vec!["/bin/true".into()]);
        with_sysctl(&mut s, "kernel.msgmax", "1");
        without_namespace(&mut s, LinuxNamespaceType::Ipc);
        let e = validate_allowing(&s, Allowances::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("linux.sysctl.kernel.msgmax") || e.contains("ipc"),
            "{e}"
        );
    }

    fn joining(spec: &mut Spec, typ: LinuxNamespaceType, path: &str) {
        let linux = spec.linux_mut().as_mut().unwrap();
        let mut ns = linux.namespaces().clone().unwrap();
        for n in ns.iter_mut().filter(|n| n.typ() == typ) {
            n.set_path(Some(path.into()));
        }
        linux.set_namespaces(Some(ns));
    }

    /// Network, IPC and UTS namespaces may be joined by a path that names
    /// one of that type; other types, wrong files and sysctls of a joined
    /// namespace are refused by name.
    #[test]
    fn namespaces_are_joined_by_checked_paths() {
        let opts = RunOptions::default();
        let mut s = base_spec(vec!["/bin/true".into()]);
        joining(&mut s, LinuxNamespaceType::Network, "/proc/self/ns/net");
        joining(&mut s, LinuxNamespaceType::Ipc, "/proc/self/ns/ipc");
        let p = crate::spec::plan::plan(&s, &opts).unwrap();
        assert_eq!(p.joins.len(), 2);
        assert!(p.joined_network && p.set_hostname);

        let refused = |typ, path: &str| {
            let mut s = base_spec(vec!["/bin/true".into()]);
            joining(&mut s, typ, path);
            validate_run(&s, &opts).unwrap_err().to_string()
        };
        let e = refused(LinuxNamespaceType::Network, "/proc/self/ns/ipc");
        assert!(
            e.starts_with("linux.namespaces[net].path: invalid value"),
            "{e}"
        );
        assert!(e.contains("not a net namespace"), "{e}");
        let e = refused(LinuxNamespaceType::Ipc, "/etc/passwd");
        assert!(e.contains("not a ipc namespace"), "{e}");
        let e = refused(LinuxNamespaceType::User, "/proc/self/ns/user");
        assert!(
            e.starts_with("linux.namespaces[user].path: not supported"),
            "{e}"
        );
        let e = refused(LinuxNamespaceType::Pid, "/proc/self/ns/pid");
        assert!(
            e.starts_with("linux.namespaces[pid].path: not supported"),
            "{e}"
        );
        let e = refused(LinuxNamespaceType::Network, "relative/net");
        assert!(e.contains("not an absolute path"), "{e}");

        // A joined uts namespace keeps its hostname: asking for one is
        // refused; without one the plan does not set it.
        let e = refused(LinuxNamespaceType::Uts, "/proc/self/ns/uts");
        assert!(e.starts_with("hostname: not supported"), "{e}");
        let mut s = base_spec(vec!["/bin/true".into()]);
        joining(&mut s, LinuxNamespaceType::Uts, "/proc/self/ns/uts");
        s.set_hostname(None);
        assert!(!crate::spec::plan::plan(&s, &opts).unwrap().set_hostname);

        // A sysctl of a joined namespace cannot be set from inside.
        let mut s = base_spec(vec!["/bin/true".into()]);
        joining(&mut s, LinuxNamespaceType::Network, "/proc/self/ns/net");
        with_sysctl(&mut s, "net.ipv4.ping_group_range", "0 0");
        let e = validate_run(&s, &opts).unwrap_err().to_string();
        assert!(e.contains("joined by path"), "{e}");
    }
}

#[cfg(test)]
mod capability_tests {
    use super::*;
    use crate::spec::base_spec;
    use oci_spec::runtime::{Capability as C, LinuxCapabilitiesBuilder};

    /// Sets the kernel cannot give are refused by name before anything
    /// runs; an engine's usual sets pass.
    #[test]
    fn capability_sets_must_be_ones_the_kernel_can_give() {
        let set = |l: &[C]| l.iter().copied().collect::<std::collections::HashSet<C>>();
        let spec = |eff: &[C], prm: &[C], inh: &[C], amb: &[C]| {
            let mut s = base_spec(vec!["/bin/true".into()]);
            s.process_mut().as_mut().unwrap().set_capabilities(Some(
                LinuxCapabilitiesBuilder::default()
                    .bounding(set(prm))
                    .effective(set(eff))
                    .permitted(set(prm))
                    .inheritable(set(inh))
                    .ambient(set(amb))
                    .build()
                    .unwrap(),
            ));
            validate(&s)
        };
        let ok = [C::Chown, C::NetBindService];
        spec(&ok, &ok, &[], &[]).unwrap();
        spec(&ok, &ok, &[C::NetBindService], &[C::NetBindService]).unwrap();
        let e = spec(&[C::SysAdmin], &ok, &[], &[]).unwrap_err().to_string();
        assert!(
            e.starts_with("process.capabilities.effective: invalid value"),
            "{e}"
        );
        let e = spec(&ok, &ok, &[], &[C::NetBindService])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("process.capabilities.ambient: invalid value"),
            "{e}"
        );
    }
}

#[cfg(test)]
mod process_field_tests {
    use super::*;
    use crate::spec::base_spec;

    #[test]
    fn apparmor_is_ignored_only_where_it_is_absent() {
        assert!(check_apparmor("docker-default", false).is_ok());
        assert!(check_apparmor("unconfined", true).is_ok());
        let e = check_apparmor("docker-default", true)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("process.apparmorProfile: not supported"),
            "{e}"
        );
    }

    #[test]
    fn oom_score_adj_and_no_new_privileges_are_taken() {
        let mut s = base_spec(vec!["/bin/true".into()]);
        let p = s.process_mut().as_mut().unwrap();
        p.set_oom_score_adj(Some(-997));
        // Less isolation than our default is asked for: NNP stays set.
        p.set_no_new_privileges(Some(false));
        let plan = crate::spec::plan::plan(&s, &RunOptions::default()).unwrap();
        assert_eq!(plan.oom_score_adj, Some(-997));
        s.process_mut()
            .as_mut()
            .unwrap()
            .set_oom_score_adj(Some(1001));
        let e = validate(&s).unwrap_err().to_string();
        assert!(e.starts_with("process.oomScoreAdj: invalid value"), "{e}");
    }
}

#[cfg(test)]
mod resource_tests {
    use super::*;
    use crate::spec::base_spec;

    fn with_resources(json: serde_json::Value) -> Spec {
        let mut s = base_spec(vec!["/bin/true".into()]);
        let r: oci_spec::runtime::LinuxResources = serde_json::from_value(json).unwrap();
        s.linux_mut().as_mut().unwrap().set_resources(Some(r));
        s
    }

    /// What dockerd and containerd write becomes cgroup limits: swap as
    /// memory plus swap, a reservation, shares; dockerd's zero values mean
    /// "not asked".
    #[test]
    fn engine_resources_become_cgroup_limits() {
        let opts = RunOptions::default();
        let plan = |j| {
            crate::spec::plan::plan(&with_resources(j), &opts)
                .unwrap()
                .cgroup
        };
        let c = plan(serde_json::json!({
            "memory": {"limit": 67108864, "swap": 134217728, "reservation": 33554432,
                       "disableOOMKiller": false},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000},
            "pids": {"limit": 64},
            "blockIO": {"weight": 0},
            "devices": [{"allow": false, "access": "rwm"}]
        }));
        assert_eq!(c.memory_bytes, Some(64 << 20));
        assert_eq!(c.memory_swap_bytes, Some(128 << 20));
        assert_eq!(c.memory_reservation_bytes, Some(32 << 20));
        assert_eq!(c.cpu_shares, Some(512));
        assert_eq!(
            (c.cpu_quota_us, c.cpu_period_us),
            (Some(50_000), Some(100_000))
        );
        assert_eq!(c.pids, Some(64));
        let c = plan(
            serde_json::json!({"memory": {"limit": 67108864, "swap": -1},
                                         "cpu": {"shares": 0}, "pids": {"limit": 0}}),
        );
        assert_eq!(c.memory_swap_bytes, Some(u64::MAX));
        assert_eq!(c.cpu_shares, None);
        assert_eq!(c.pids, Some(crate::options::defaults::PIDS));
        // The v2 weight of v1 shares, at both ends and the default.
        use crate::cgroup::shares_to_weight;
        assert_eq!(
            (
                shares_to_weight(2),
                shares_to_weight(1024),
                shares_to_weight(262_144)
            ),
            (1, 39, 10_000)
        );
        for (json, field) in [
            (
                serde_json::json!({"memory": {"limit": 100, "swap": 50}}),
                "linux.resources.memory.swap",
            ),
            (
                serde_json::json!({"memory": {"disableOOMKiller": true}}),
                "linux.resources.memory.disableOOMKiller",
            ),
            (
                serde_json::json!({"cpu": {"shares": 1}}),
                "linux.resources.cpu.shares",
            ),
            (
                serde_json::json!({"cpu": {"cpus": "0-1"}}),
                "linux.resources.cpu (cpus",
            ),
            (
                serde_json::json!({"blockIO": {"weight": 500}}),
                "linux.resources.blockIO",
            ),
            (
                serde_json::json!({"devices": [{"allow": true, "access": "rwx"}]}),
                "linux.resources.devices[0].access",
            ),
        ] {
            let e = validate(&with_resources(json.clone()))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(field), "{json}: {e}");
        }
    }
}

#[cfg(test)]
mod engine_config {
    use super::*;

    /// Which of a real engine's config.json the sandbox refuses
    /// (`OCI_CONFIG_JSON=/path/config.json`, written by dockerd or
    /// containerd; not in the repository). The fields other parts of the
    /// OCI runtime own (hooks, cgroupsPath, the user and cgroup namespaces
    /// the runtime adds) are set aside first.
    #[test]
    #[ignore = "needs OCI_CONFIG_JSON: a config.json written by an engine"]
    fn an_engines_config_validates() {
        let path = std::env::var("OCI_CONFIG_JSON").expect("OCI_CONFIG_JSON");
        let mut spec: Spec = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        spec.set_hooks(None);
        spec.set_root(None);
        let linux = spec.linux_mut().as_mut().unwrap();
        linux.set_cgroups_path(None);
        let mut ns = linux.namespaces().clone().unwrap();
        for t in [LinuxNamespaceType::User, LinuxNamespaceType::Cgroup] {
            if !ns.iter().any(|n| n.typ() == t) {
                ns.push(
                    oci_spec::runtime::LinuxNamespaceBuilder::default()
                        .typ(t)
                        .build()
                        .unwrap(),
                );
            }
        }
        linux.set_namespaces(Some(ns));
        let r = crate::spec::plan::plan(&spec, &RunOptions::default());
        assert!(r.is_ok(), "{}", r.unwrap_err());
    }
}
