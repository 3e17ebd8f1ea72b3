//! The sandbox's single input model is `oci_spec::runtime::Spec`. This module
//! builds the baseline spec every front end starts from, validates a spec
//! (rejecting what we do not support by field name, before any side effect)
//! and turns it into a private [`plan::Plan`] that the child only executes.

pub mod plan;
pub mod size;
pub mod validate;

use oci_spec::runtime::{
    LinuxBuilder, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxPidsBuilder, LinuxResourcesBuilder, Mount, MountBuilder, ProcessBuilder, Spec,
    SpecBuilder, UserBuilder,
};
use oci_spec::OciSpecError;

pub use plan::{plan, MountKind, MountPlan, Plan};
pub use validate::{validate, SpecError};

use crate::options::defaults;

/// The seven namespaces every sandbox gets.
pub const NAMESPACES: [LinuxNamespaceType; 7] = [
    LinuxNamespaceType::User,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Mount,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Cgroup,
];

/// Capabilities an image build step may hold (Docker's default set), held
/// inside the sandbox's user namespace only: apt and dpkg running as root
/// in the image need them to chown, write root-owned files and drop to
/// `_apt`.
pub const BUILD_CAPABILITIES: [oci_spec::runtime::Capability; 13] = {
    use oci_spec::runtime::Capability as C;
    [
        C::Chown,
        C::DacOverride,
        C::Fowner,
        C::Fsetid,
        C::Kill,
        C::Setgid,
        C::Setuid,
        C::Setpcap,
        C::NetBindService,
        C::SysChroot,
        C::Mknod,
        C::AuditWrite,
        C::Setfcap,
    ]
};

/// The capability number (linux/capability.h) of one of
/// [`BUILD_CAPABILITIES`]; `None` for any other.
pub fn capability_bit(c: oci_spec::runtime::Capability) -> Option<u32> {
    BUILD_CAPABILITIES
        .contains(&c)
        .then(|| crate::capabilities::number(c))
}

/// Makes `spec` an image build step's: the network namespace removed (the
/// host's network; needs `RunOptions::host_network`) and
/// [`BUILD_CAPABILITIES`] held (needs `RunOptions::build_capabilities`).
pub fn make_build_step(spec: &mut Spec) {
    if let Some(linux) = spec.linux_mut() {
        let ns: Vec<_> = linux
            .namespaces()
            .iter()
            .flatten()
            .filter(|n| n.typ() != LinuxNamespaceType::Network)
            .cloned()
            .collect();
        linux.set_namespaces(Some(ns));
    }
    if let Some(p) = spec.process_mut() {
        let set: std::collections::HashSet<_> = BUILD_CAPABILITIES.into_iter().collect();
        let mut caps = oci_spec::runtime::LinuxCapabilities::default();
        caps.set_bounding(Some(set.clone()));
        caps.set_effective(Some(set.clone()));
        caps.set_permitted(Some(set));
        caps.set_inheritable(None);
        caps.set_ambient(None);
        p.set_capabilities(Some(caps));
    }
}

/// A valid spec with our defaults (host rootfs, all namespaces, uid/gid
/// 1000, no capabilities, default masked paths and limits) running `args`.
/// Front ends start from this and set what their request says.
pub fn base_spec(args: Vec<String>) -> Spec {
    let namespaces = NAMESPACES
        .iter()
        .map(|t| {
            LinuxNamespaceBuilder::default()
                .typ(*t)
                .build()
                .expect("namespace builder has all required fields") // cannot fire: typ is set
        })
        .collect::<Vec<_>>();
    let user = UserBuilder::default()
        .uid(defaults::UID)
        .gid(defaults::GID)
        .build()
        .expect("user builder has all required fields"); // cannot fire: uid and gid are set
    let process = ProcessBuilder::default()
        .args(args)
        .env(vec![format!("PATH={}", defaults::PATH)])
        .cwd("/workspace")
        .user(user)
        .no_new_privileges(true)
        .build()
        .expect("process builder has all required fields"); // cannot fire: every field has a default
    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .build()
        .expect("linux builder has all required fields"); // cannot fire: every field has a default
    let mut spec = SpecBuilder::default()
        .process(process)
        .hostname(defaults::HOSTNAME)
        .linux(linux)
        .build()
        .expect("spec builder has all required fields"); // cannot fire: every field has a default
                                                         // SpecBuilder fills OCI's default root, mounts and resources; ours differ.
    spec.set_root(None);
    spec.set_mounts(None);
    if let Some(p) = spec.process_mut() {
        p.set_capabilities(None);
        p.set_rlimits(None);
    }
    if let Some(linux) = spec.linux_mut() {
        linux.set_resources(None);
        linux.set_masked_paths(None);
        linux.set_readonly_paths(None);
    }
    spec
}

/// A size-capped tmpfs mount (`nosuid`, `nodev`) at `dst` with `mode`
/// (octal text, e.g. `"1777"`): what the front ends add for /tmp,
/// /workspace and `--tmpfs`.
pub fn tmpfs_mount(dst: &str, size: u64, mode: &str) -> Result<Mount, OciSpecError> {
    MountBuilder::default()
        .destination(dst)
        .typ("tmpfs")
        .source("tmpfs")
        .options(vec![
            format!("size={size}"),
            format!("mode={mode}"),
            "nosuid".into(),
            "nodev".into(),
        ])
        .build()
}

/// Sets the cgroup limits of `spec`: memory (swap limited to the same
/// value, i.e. none beside it), tasks, and a CPU quota in CPUs over a
/// 100 ms period. `None` leaves a limit to the defaults (docs/limits.md).
pub fn set_resources(
    spec: &mut Spec,
    memory_bytes: Option<i64>,
    pids: Option<i64>,
    cpus: Option<f64>,
) -> Result<(), OciSpecError> {
    let mut res = LinuxResourcesBuilder::default();
    if let Some(m) = memory_bytes {
        res = res.memory(LinuxMemoryBuilder::default().limit(m).swap(m).build()?);
    }
    if let Some(p) = pids {
        res = res.pids(LinuxPidsBuilder::default().limit(p).build()?);
    }
    if let Some(c) = cpus {
        let period = 100_000u64;
        res = res.cpu(
            LinuxCpuBuilder::default()
                .quota((c * period as f64).round() as i64)
                .period(period)
                .build()?,
        );
    }
    let mut res = res.build()?;
    res.set_devices(None);
    if let Some(l) = spec.linux_mut() {
        l.set_resources(Some(res));
    }
    Ok(())
}
