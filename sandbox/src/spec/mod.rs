//! The sandbox's single input model is `oci_spec::runtime::Spec`. This module
//! builds the baseline spec every front end starts from, validates a spec
//! (rejecting what we do not support by field name, before any side effect)
//! and turns it into a private [`plan::Plan`] that the child only executes.

pub mod plan;
pub mod size;
pub mod validate;

use oci_spec::runtime::{
    LinuxBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, ProcessBuilder, Spec, SpecBuilder,
    UserBuilder,
};

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
