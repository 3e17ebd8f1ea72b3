//! Validation of a `Spec` before any side effect: every field we do not
//! implement is rejected by its name (never silently ignored), and values
//! that would weaken isolation are refused.

use std::path::{Component, Path};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

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
}

/// Validates the whole spec. Mount options and limits are parsed (and their
/// errors reported) by `plan`, which calls this first.
pub fn validate(spec: &Spec) -> Result<(), SpecError> {
    validate_allowing(spec, Allowances::default())
}

/// [`validate`] with what the run's options allow.
pub fn validate_allowing(spec: &Spec, allow: Allowances) -> Result<(), SpecError> {
    if spec.hooks().is_some() {
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
        if root.readonly() == Some(false) {
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
            l.cgroups_path().is_some(),
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
