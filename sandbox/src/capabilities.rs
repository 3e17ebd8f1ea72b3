//! Capability sets of the program, from `process.capabilities` of a spec.
//!
//! A sandbox's program holds no capability unless its spec lists some: an
//! engine's config.json (Docker's default fourteen), or an image build
//! step's [`crate::spec::BUILD_CAPABILITIES`]. Whatever it holds is held in
//! the sandbox's own user namespace, never over the host's resources
//! (user_namespaces(7)). This module names the kernel's numbers and carries
//! the five sets from the plan to PID 1's capability step.

use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

/// The kernel's number of a capability (linux/capability.h).
pub fn number(c: Capability) -> u32 {
    use Capability as C;
    match c {
        C::Chown => 0,
        C::DacOverride => 1,
        C::DacReadSearch => 2,
        C::Fowner => 3,
        C::Fsetid => 4,
        C::Kill => 5,
        C::Setgid => 6,
        C::Setuid => 7,
        C::Setpcap => 8,
        C::LinuxImmutable => 9,
        C::NetBindService => 10,
        C::NetBroadcast => 11,
        C::NetAdmin => 12,
        C::NetRaw => 13,
        C::IpcLock => 14,
        C::IpcOwner => 15,
        C::SysModule => 16,
        C::SysRawio => 17,
        C::SysChroot => 18,
        C::SysPtrace => 19,
        C::SysPacct => 20,
        C::SysAdmin => 21,
        C::SysBoot => 22,
        C::SysNice => 23,
        C::SysResource => 24,
        C::SysTime => 25,
        C::SysTtyConfig => 26,
        C::Mknod => 27,
        C::Lease => 28,
        C::AuditWrite => 29,
        C::AuditControl => 30,
        C::Setfcap => 31,
        C::MacOverride => 32,
        C::MacAdmin => 33,
        C::Syslog => 34,
        C::WakeAlarm => 35,
        C::BlockSuspend => 36,
        C::AuditRead => 37,
        C::Perfmon => 38,
        C::Bpf => 39,
        C::CheckpointRestore => 40,
    }
}

/// One set as bits.
pub fn bits(set: &Option<Capabilities>) -> u64 {
    set.iter()
        .flatten()
        .fold(0, |m, c| m | (1u64 << number(*c)))
}

/// The five sets of the program, as bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapabilitySets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

impl CapabilitySets {
    /// The sets a spec lists (absent sets are empty).
    pub fn of(c: &LinuxCapabilities) -> CapabilitySets {
        CapabilitySets {
            bounding: bits(c.bounding()),
            effective: bits(c.effective()),
            permitted: bits(c.permitted()),
            inheritable: bits(c.inheritable()),
            ambient: bits(c.ambient()),
        }
    }

    /// Whether the program keeps no capability at all.
    pub fn is_empty(&self) -> bool {
        self.effective | self.permitted | self.inheritable | self.ambient == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_the_kernels() {
        // A few fixed points of linux/capability.h.
        assert_eq!(number(Capability::Chown), 0);
        assert_eq!(number(Capability::SysAdmin), 21);
        assert_eq!(number(Capability::AuditWrite), 29);
        assert_eq!(number(Capability::CheckpointRestore), 40);
        // Every build capability agrees with the old table.
        for c in crate::spec::BUILD_CAPABILITIES {
            assert_eq!(crate::spec::capability_bit(c), Some(number(c)));
        }
    }
}
