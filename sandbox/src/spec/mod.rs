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
