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
        for (name, set) in sets {
            // A build step may list build capabilities in any set; only
            // those in bounding, effective and permitted alike are held
            // (inheritable and ambient stay empty: nothing passes on
            // across an exec by a non-root user).
            if allow.build_capabilities {
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
                continue;
            }
            if set.as_ref().is_some_and(|s| !s.is_empty()) {
                return Err(unsupported(
                    format!("process.capabilities.{name}"),
                    "sandboxes hold no capabilities",
                ));
            }
        }
    }
    if p.no_new_privileges() == Some(false) {
        return Err(unsupported(
            "process.noNewPrivileges",
            "no_new_privs is always set",
        ));
    }
    if p.apparmor_profile().is_some() {
        return Err(unsupported("process.apparmorProfile", "not implemented"));
    }
    if p.selinux_label().is_some() {
        return Err(unsupported("process.selinuxLabel", "not implemented"));
    }
    if p.oom_score_adj().is_some() {
        return Err(unsupported("process.oomScoreAdj", "not implemented"));
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
        if n.path().is_some() {
            return Err(unsupported(
                format!("linux.namespaces[{}].path", n.typ()),
                "joining existing namespaces is not supported",
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
    let checks: [(&str, bool, &'static str); 10] = [
        (
            "linux.netDevices",
            l.net_devices().is_some(),
            "no network devices are moved into sandboxes",
        ),
        (
            "linux.sysctl",
            l.sysctl().as_ref().is_some_and(|s| !s.is_empty()),
            "not implemented",
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
            "linux.seccomp",
            l.seccomp().is_some(),
            "seccomp profiles are chosen by name in the run options",
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
        let checks: [(&str, bool); 7] = [
            (
                "linux.resources.devices",
                r.devices().as_ref().is_some_and(|d| !d.is_empty()),
            ),
            ("linux.resources.blockIO", r.block_io().is_some()),
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
            (
                "linux.resources.cpu.cpus/mems/shares/realtime",
                r.cpu().as_ref().is_some_and(|c| {
                    c.cpus().is_some()
                        || c.mems().is_some()
                        || c.shares().is_some()
                        || c.realtime_runtime().is_some()
                        || c.realtime_period().is_some()
                        || c.idle().is_some()
                        || c.burst().is_some()
                }),
            ),
        ];
        for (field, bad) in checks {
            if bad {
                return Err(unsupported(field, "not implemented"));
            }
        }
        if let Some(m) = r.memory() {
            if m.reservation().is_some()
                || m.kernel().is_some()
                || m.kernel_tcp().is_some()
                || m.swappiness().is_some()
                || m.disable_oom_killer().is_some()
            {
                return Err(unsupported(
                    "linux.resources.memory (reservation/kernel/swappiness/disableOOMKiller)",
                    "only limit and swap",
                ));
            }
            match (m.limit(), m.swap()) {
                (Some(l), _) if l <= 0 => {
                    return Err(invalid("linux.resources.memory.limit", "must be positive"))
                }
                (Some(l), Some(s)) if s != l => {
                    return Err(unsupported(
                        "linux.resources.memory.swap",
                        "swap is always off (swap must equal limit)",
                    ))
                }
                (None, Some(_)) => {
                    return Err(unsupported(
                        "linux.resources.memory.swap",
                        "swap is always off",
                    ))
                }
                _ => {}
            }
        }
        if let Some(p) = r.pids() {
            if p.limit() <= 0 {
                return Err(invalid("linux.resources.pids.limit", "must be positive"));
            }
        }
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
}
