//! Seccomp filters for the sandboxed process.
//!
//! Namespaces hide the host, but every sandboxed process still talks to the
//! host kernel. This module shrinks that surface: it turns a named
//! [`SeccompProfile`] into classic-BPF programs once, in the parent, and the
//! child installs them with [`SeccompFilter::apply`] as its last step before
//! `execve` (after that the child can no longer mount, unshare, ... itself).
//!
//! The `default` profile follows Docker's default profile (moby/profiles
//! `seccomp/default.json`): an allow-list, everything else fails with `EPERM`.
//! `judge` tightens it for untrusted code judges. The policy, the deviations
//! from Docker and how to extend it are described in `docs/seccomp.md`.
//!
//! Each profile compiles to one compact classic-BPF program ([`bpf`]: the
//! argument rules first, then a binary search over allowed number ranges);
//! seccompiler only installs it.
//!
//! Both confined profiles also keep a sandbox from leaving setuid or setgid
//! files on the host through a writable bind (no call may put those bits
//! in a mode) and from lowering RLIMIT_CORE (whose value 1 keeps a crash
//! away from the host's `core_pattern` pipe): see [`Purpose`].

pub mod attempt;
mod bpf;
mod names;
pub mod oci;

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use seccompiler::BpfProgram;

/// The seccomp policies a sandbox can ask for.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum SeccompProfile {
    /// Docker's default allow-list plus a little hardening (TIOCSTI, ptrace).
    #[default]
    Default,
    /// `default` minus network sockets, device nodes and most ioctls.
    Judge,
    /// No filter at all.
    Unconfined,
}

impl SeccompProfile {
    const ALL: [SeccompProfile; 3] = [Self::Default, Self::Judge, Self::Unconfined];

    fn name(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Judge => "judge",
            Self::Unconfined => "unconfined",
        }
    }
}

impl fmt::Display for SeccompProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SeccompProfile {
    type Err = SeccompError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| SeccompError::UnknownProfile { name: s.to_owned() })
    }
}

/// Failures of this module.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("unknown seccomp profile {name:?}: expected one of default, judge, unconfined")]
    UnknownProfile { name: String },
    #[error("seccomp profiles have no syscall table for architecture {arch}")]
    UnsupportedArch { arch: &'static str },
    #[error(transparent)]
    Config(#[from] oci::OciSeccompError),
    #[error("building the {stage} stage of the {profile} seccomp filter failed")]
    Build {
        profile: Source,
        stage: &'static str,
        #[source]
        source: bpf::TooLarge,
    },
    #[error("installing the {stage} stage of the {profile} seccomp filter failed")]
    Install {
        profile: Source,
        stage: &'static str,
        #[source]
        source: seccompiler::Error,
    },
}

/// Where a filter's policy comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// One of our named profiles.
    Profile(SeccompProfile),
    /// The spec's `linux.seccomp` (an engine's config.json), translated by
    /// [`oci`].
    Config,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Profile(p) => p.fmt(f),
            Source::Config => f.write_str("linux.seccomp"),
        }
    }
}

/// Who the filter is for: it decides whether setuid/setgid modes may be
/// set.
///
/// A sandbox's files reach the host through read-write binds, where a
/// setuid file owned by the bind's owner would let any local user run code
/// as that owner; so no call of a confined sandbox may set `S_ISUID` or
/// `S_ISGID`. An image build step (dpkg as root in the user namespace)
/// must be able to, and may: its only host-writable place is its upper dir
/// in the daemon's private data dir, rw binds are refused for it
/// (`spec::plan`), and the unpacker strips those bits from every layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Purpose {
    /// Any sandbox but an image build step: no setuid/setgid modes.
    #[default]
    Run,
    /// An image build step (`RunOptions::build_capabilities`).
    BuildStep,
}

/// One compiled BPF program of a profile.
///
/// The kernel runs every installed program, newest first, and keeps the first
/// action of the highest precedence (seccomp(2), "multiple filters";
/// `seccomp_run_filters` in kernel/seccomp.c). All our deny actions are
/// `SECCOMP_RET_ERRNO`, so a later stage that returns a specific errno wins
/// over the allow-list's `EPERM` for the calls it matches, and lets all other
/// calls through to the allow-list's verdict.
#[derive(Clone)]
struct Stage {
    name: &'static str,
    program: BpfProgram,
}

/// The compiled filter of a confined profile, ready to install.
///
/// Built in the parent by [`compile`]; the child only calls [`apply`].
///
/// [`apply`]: SeccompFilter::apply
#[derive(Clone)]
pub struct SeccompFilter {
    profile: Source,
    purpose: Purpose,
    /// In installation order. Shared: [`compile`] hands out clones of a
    /// cached filter.
    stages: Arc<[Stage]>,
}

impl fmt::Debug for SeccompFilter {
    // A program is a few hundred instructions (266 for `default`, 284 for
    // `judge` in December 2026); log their sizes, not their bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_struct("SeccompFilter");
        list.field("profile", &self.profile);
        list.field("purpose", &self.purpose);
        for stage in self.stages.iter() {
            list.field(stage.name, &stage.program.len());
        }
        list.finish()
    }
}

impl SeccompFilter {
    /// Sets no_new_privs and installs the filter on the calling thread.
    ///
    /// Called in a forked child right before execve: it makes only the
    /// `prctl` and `seccomp` calls (seccompiler's `apply_filter`) and does not
    /// allocate. The allow-list goes first so that the later, narrower stages
    /// take precedence (see `Stage`); the allow-list keeps `prctl` and
    /// `seccomp` allowed, so the later stages can still be installed.
    pub fn apply(&self) -> Result<(), SeccompError> {
        for stage in self.stages.iter() {
            seccompiler::apply_filter(&stage.program).map_err(|source| SeccompError::Install {
                profile: self.profile,
                stage: stage.name,
                source,
            })?;
        }
        Ok(())
    }

    /// Total number of BPF instructions over all stages.
    pub fn instructions(&self) -> usize {
        self.stages.iter().map(|s| s.program.len()).sum()
    }

    /// The named profile this filter was compiled from (`None` for the
    /// spec's own `linux.seccomp`).
    pub fn profile(&self) -> Option<SeccompProfile> {
        match self.profile {
            Source::Profile(p) => Some(p),
            Source::Config => None,
        }
    }

    /// Who the filter is for.
    pub fn purpose(&self) -> Purpose {
        self.purpose
    }
}

/// Compiles `profile` for the running architecture; `None` for `unconfined`.
/// The filter of any sandbox but an image build step ([`Purpose::Run`]).
pub fn compile(profile: SeccompProfile) -> Result<Option<SeccompFilter>, SeccompError> {
    compile_for(profile, Purpose::Run)
}

/// [`compile`] for `purpose`.
///
/// Results are cached per profile and purpose for the life of the process:
/// the policy is static and compiling it costs far more than cloning it
/// (figures in `docs/seccomp.md`).
pub fn compile_for(
    profile: SeccompProfile,
    purpose: Purpose,
) -> Result<Option<SeccompFilter>, SeccompError> {
    static CELLS: [OnceLock<SeccompFilter>; 4] = [const { OnceLock::new() }; 4];
    let cell = match (profile, purpose) {
        (SeccompProfile::Unconfined, _) => return Ok(None),
        (SeccompProfile::Default, Purpose::Run) => &CELLS[0],
        (SeccompProfile::Judge, Purpose::Run) => &CELLS[1],
        (SeccompProfile::Default, Purpose::BuildStep) => &CELLS[2],
        (SeccompProfile::Judge, Purpose::BuildStep) => &CELLS[3],
    };
    if let Some(filter) = cell.get() {
        return Ok(Some(filter.clone()));
    }
    // Two threads may race to compile; both get equal filters and one wins
    // the cell (OnceLock::get_or_try_init is not stable yet).
    let filter = compile_uncached(profile, purpose)?;
    Ok(Some(cell.get_or_init(|| filter).clone()))
}

/// The actual compilation behind [`compile_for`]'s cache.
fn compile_uncached(
    profile: SeccompProfile,
    purpose: Purpose,
) -> Result<SeccompFilter, SeccompError> {
    let policy = policy(profile, purpose)?;
    let program = bpf::compile(&policy).map_err(|source| SeccompError::Build {
        profile: Source::Profile(profile),
        stage: "filter",
        source,
    })?;
    Ok(SeccompFilter {
        profile: Source::Profile(profile),
        purpose,
        stages: vec![Stage {
            name: "filter",
            program,
        }]
        .into(),
    })
}

/// Compiles the spec's own profile (`linux.seccomp`, [`oci`]) for the
/// running architecture: runtimed's guard, then the profile's program
/// (RLIMIT_CORE kept, and for [`Purpose::Run`] no setuid/setgid modes),
/// which only ever makes a call fail that the profile lets through.
pub fn compile_config(
    profile: &oci_spec::runtime::LinuxSeccomp,
    purpose: Purpose,
) -> Result<SeccompFilter, SeccompError> {
    let translated = oci::translate(profile)?;
    let build = |stage| {
        move |source| SeccompError::Build {
            profile: Source::Config,
            stage,
            source,
        }
    };
    let program = oci::program(&translated).map_err(build("config"))?;
    let (audit_arch, nr_limit) = target_arch()?;
    let mut special = core_limit_rules();
    if purpose == Purpose::Run {
        special.extend(setid_mode_rules());
    }
    let guard = oci::guard_program(audit_arch, nr_limit, &special).map_err(build("guard"))?;
    Ok(SeccompFilter {
        profile: Source::Config,
        purpose,
        // The guard first: it allows `seccomp`, which the profile may not;
        // the profile last, so its errno wins a tie of two ERRNO verdicts
        // (the newest program's, seccomp(2)).
        stages: vec![
            Stage {
                name: "guard",
                program: guard,
            },
            Stage {
                name: "config",
                program,
            },
        ]
        .into(),
    })
}

/// `AUDIT_ARCH_*` of the target (linux/audit.h) and the first syscall
/// number that is not a native one (x86_64: the x32 ABI sets bit 30).
#[cfg(target_arch = "x86_64")]
fn target_arch() -> Result<(u32, u32), SeccompError> {
    Ok((0xc000_003e, 0x4000_0000))
}

#[cfg(target_arch = "aarch64")]
fn target_arch() -> Result<(u32, u32), SeccompError> {
    Ok((0xc000_00b7, u32::MAX))
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn target_arch() -> Result<(u32, u32), SeccompError> {
    Err(SeccompError::UnsupportedArch {
        arch: std::env::consts::ARCH,
    })
}

/// The kernel takes the ioctl request as `unsigned int` (fs/ioctl.c), and
/// `libc::Ioctl` is `c_ulong` on glibc but `c_int` on musl.
fn ioctl_cmd(cmd: libc::Ioctl) -> u32 {
    cmd as u32
}

/// `clone` flags that create namespaces; Docker allows `clone` only when none
/// is set (mask 0x7E020000 in moby/profiles `seccomp/default.json`).
/// CLONE_NEWTIME needs clone3 or unshare, both denied. All live in the low
/// 32 bits, which is what the rule checks.
const CLONE_NAMESPACE_FLAGS: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u32;

/// `personality` values Docker allows: PER_LINUX, PER_LINUX32, UNAME26 and
/// their combination, and 0xffffffff (query). Others (e.g. READ_IMPLIES_EXEC,
/// ADDR_NO_RANDOMIZE) weaken exploit mitigations.
const PERSONALITIES: [u32; 5] = [0x0, 0x8, 0x2_0000, 0x2_0008, 0xffff_ffff];

/// ioctls that push input into a terminal (TIOCSTI, CVE-2017-5226 in
/// bubblewrap) or do the same through the VT layer (TIOCLINUX subcommands,
/// CVE-2023-1523 in snapd). A sandboxed program sharing a terminal with a
/// user could otherwise type commands into the user's shell.
const TERMINAL_INJECTION_IOCTLS: [libc::Ioctl; 2] = [libc::TIOCSTI, libc::TIOCLINUX];

/// ioctls the `judge` profile keeps: terminal attributes (isatty, stty, bash
/// job control), window size, and the generic fd ioctls runtimes use
/// (FIONREAD for Java's `available()`, FIONBIO/FIOCLEX in libuv and Rust std,
/// TIOCGPTN in libuv's tty probe). TCGETS2 and friends are what newer glibc
/// uses for tcgetattr/tcsetattr.
const JUDGE_IOCTLS: [libc::Ioctl; 22] = [
    libc::TCGETS,
    libc::TCSETS,
    libc::TCSETSW,
    libc::TCSETSF,
    libc::TCGETS2,
    libc::TCSETS2,
    libc::TCSETSW2,
    libc::TCSETSF2,
    libc::TCSBRK,
    libc::TCXONC,
    libc::TCFLSH,
    libc::TIOCGWINSZ,
    libc::TIOCSWINSZ,
    libc::TIOCGPGRP,
    libc::TIOCSPGRP,
    libc::TIOCGSID,
    libc::TIOCGPTN,
    libc::FIONREAD,
    libc::FIONBIO,
    libc::FIOASYNC,
    libc::FIOCLEX,
    libc::FIONCLEX,
];

/// The policy of a confined profile. Everything not allowed (including
/// syscalls newer than this table and the x32 ABI's numbers) fails with
/// EPERM, like Docker's `defaultAction: SCMP_ACT_ERRNO`; a call from another
/// architecture (i386 `int 0x80`) kills the process.
fn policy(profile: SeccompProfile, purpose: Purpose) -> Result<bpf::Policy, SeccompError> {
    use bpf::{ArgRule, Special};
    let (audit_arch, nr_limit) = target_arch()?;
    let judge = profile == SeccompProfile::Judge;
    let nr = |n: libc::c_long| n as u32;
    let allowed = table::ALLOWED
        .iter()
        .filter(|n| !(judge && table::JUDGE_DENIED.contains(n)))
        .map(|&n| nr(n))
        .collect();
    let eperm = libc::EPERM;
    let mut special = vec![
        // glibc >= 2.34 tries clone3 first and falls back to clone only on
        // ENOSYS (sysdeps/unix/sysv/linux/clone-internal.c). clone3 passes
        // its flags in memory, where BPF cannot look, so we refuse it the way
        // Docker does and check clone's flags instead.
        (nr(libc::SYS_clone3), Special::Errno(libc::ENOSYS)),
        // Threads and fork are fine; new namespaces are not.
        (
            nr(libc::SYS_clone),
            Special::Rule {
                rule: ArgRule::MaskClear {
                    arg: 0,
                    mask: CLONE_NAMESPACE_FLAGS,
                },
                errno: eperm,
            },
        ),
        (
            nr(libc::SYS_personality),
            Special::Rule {
                rule: ArgRule::OneOf {
                    arg: 0,
                    values: PERSONALITIES.to_vec(),
                },
                errno: eperm,
            },
        ),
    ];
    if judge {
        // ioctls outside JUDGE_IOCTLS fail with ENOTTY, the kernel's own
        // answer for "this fd has no such ioctl", which callers probing
        // optional features (FICLONE in cp, FS_IOC_* flags) already handle.
        special.push((
            nr(libc::SYS_ioctl),
            Special::Rule {
                rule: ArgRule::OneOf {
                    arg: 1,
                    values: JUDGE_IOCTLS.iter().map(|c| ioctl_cmd(*c)).collect(),
                },
                errno: libc::ENOTTY,
            },
        ));
        // Only Unix sockets: Python multiprocessing, the JVM and libuv use
        // them locally; anything reaching a network stack is refused even if
        // the sandbox was given a network. connect/bind/listen/accept stay:
        // on Unix sockets they only reach what the mount namespace shows.
        for call in [libc::SYS_socket, libc::SYS_socketpair] {
            special.push((
                nr(call),
                Special::Rule {
                    rule: ArgRule::OneOf {
                        arg: 0,
                        values: vec![libc::AF_UNIX as u32],
                    },
                    errno: eperm,
                },
            ));
        }
    } else {
        special.push((
            nr(libc::SYS_ioctl),
            Special::Rule {
                rule: ArgRule::NoneOf {
                    arg: 1,
                    values: TERMINAL_INJECTION_IOCTLS
                        .iter()
                        .map(|c| ioctl_cmd(*c))
                        .collect(),
                },
                errno: eperm,
            },
        ));
        // Docker's rule: every family except AF_ALG (kernel crypto API, a
        // steady source of kernel bugs) and AF_VSOCK (reaches the hypervisor
        // and other VMs' services). Network access is governed by the
        // network namespace, not here.
        special.push((
            nr(libc::SYS_socket),
            Special::Rule {
                rule: ArgRule::NoneOf {
                    arg: 0,
                    values: vec![libc::AF_ALG as u32, libc::AF_VSOCK as u32],
                },
                errno: eperm,
            },
        ));
    }
    let mut allowed: std::collections::BTreeSet<u32> = allowed;
    if !judge {
        allowed.insert(nr(libc::SYS_socketpair));
    }
    special.extend(core_limit_rules());
    if purpose == Purpose::Run {
        // Only for calls this profile allows at all (judge denies mknod
        // outright: a rule here would let mode-clean calls through).
        special.extend(
            setid_mode_rules()
                .into_iter()
                .filter(|(n, rule)| matches!(rule, Special::Errno(_)) || allowed.contains(n)),
        );
    }
    // The highest number this table knows; anything above is newer.
    let newest = allowed
        .iter()
        .copied()
        .chain(special.iter().map(|(n, _)| *n))
        .max()
        .unwrap_or(0);
    Ok(bpf::Policy {
        audit_arch,
        nr_limit,
        newer_than: Some((newest, libc::ENOSYS)),
        allowed,
        special,
        default_errno: eperm,
    })
}

/// `S_ISUID | S_ISGID`: the mode bits no sandbox may set (see [`Purpose`]).
const SETID_BITS: u32 = libc::S_ISUID | libc::S_ISGID;

/// The `open` flags that make a file and so use the mode argument:
/// `O_CREAT`, and `O_TMPFILE` without its `O_DIRECTORY` part (an
/// `O_DIRECTORY` open alone ignores the mode).
const CREATING_OPEN_FLAGS: u32 = (libc::O_CREAT | (libc::O_TMPFILE & !libc::O_DIRECTORY)) as u32;

/// Argument rules that keep `S_ISUID`/`S_ISGID` out of every mode a
/// sandbox can give a file: chmod and its variants, open/openat/creat when
/// they create, mknod (a regular file made by mknod takes the mode as
/// given). Each fails with EPERM, what the kernel answers a chmod by
/// someone who may not. `mkdir` needs no rule: the kernel drops both bits
/// from a new directory's mode (vfs_mkdir; setgid is only inherited from a
/// setgid parent). `openat2` passes its mode inside `struct open_how`, which
/// BPF cannot read: it gets ENOSYS, on which callers fall back to `openat`
/// as on kernels before 5.6.
fn setid_mode_rules() -> Vec<(u32, bpf::Special)> {
    use bpf::{ArgCond, ArgRule, Special};
    let nr = |n: libc::c_long| n as u32;
    let eperm = libc::EPERM;
    let mode_clear = |arg: u8| Special::Rule {
        rule: ArgRule::MaskClear {
            arg,
            mask: SETID_BITS,
        },
        errno: eperm,
    };
    let creating = |flags: u8, mode: u8| Special::Rule {
        rule: ArgRule::DenyWhenAll(vec![
            ArgCond::AnyBit {
                arg: flags,
                mask: CREATING_OPEN_FLAGS,
            },
            ArgCond::AnyBit {
                arg: mode,
                mask: SETID_BITS,
            },
        ]),
        errno: eperm,
    };
    let mut rules = vec![
        (nr(libc::SYS_fchmod), mode_clear(1)),
        (nr(libc::SYS_fchmodat), mode_clear(2)),
        (nr(table::NR_FCHMODAT2), mode_clear(2)),
        (nr(libc::SYS_mknodat), mode_clear(2)),
        (nr(libc::SYS_openat), creating(2, 3)),
        (nr(libc::SYS_openat2), Special::Errno(libc::ENOSYS)),
    ];
    #[cfg(target_arch = "x86_64")]
    rules.extend([
        (nr(libc::SYS_chmod), mode_clear(1)),
        (nr(libc::SYS_creat), mode_clear(1)),
        (nr(libc::SYS_mknod), mode_clear(1)),
        (nr(libc::SYS_open), creating(1, 2)),
    ]);
    rules
}

/// Rules that keep RLIMIT_CORE where the sandbox set it (1 byte, hard and
/// soft): with a pipe `core_pattern` the kernel ignores a limit of 0 and
/// starts the host's handler, but aborts the dump at exactly 1 (its guard
/// against recursive dumps, fs/coredump.c), and for a file pattern 1 byte
/// is below the smallest dump. The hard limit cannot be raised without
/// CAP_SYS_RESOURCE in the initial namespace; lowering the soft limit to 0
/// is what these stop: `prlimit64` and `setrlimit` on RLIMIT_CORE with a
/// new value succeed without doing anything (`SECCOMP_RET_ERRNO` with 0).
/// Programs that lower the limit to keep their secrets out of core files
/// (ssh-agent, gpg-agent, test suites) would stop on EPERM, and what they
/// ask for (no core dump) holds anyway; asking for more cannot give a dump
/// in a sandbox either. Reading the limit (`prlimit64` with a NULL new
/// value, `getrlimit`) keeps working; a `prlimit64` that sets and reads at
/// once gets no old value written.
fn core_limit_rules() -> Vec<(u32, bpf::Special)> {
    use bpf::{ArgCond, ArgRule, Special};
    // SECCOMP_RET_ERRNO with 0: the call returns 0 and is not made.
    const IGNORED: i32 = 0;
    // `c_uint` on glibc, `c_int` on musl.
    #[allow(clippy::unnecessary_cast)]
    let core = libc::RLIMIT_CORE as u32;
    #[allow(unused_mut)]
    let mut rules = vec![(
        libc::SYS_prlimit64 as u32,
        Special::Rule {
            rule: ArgRule::DenyWhenAll(vec![
                ArgCond::Equals {
                    arg: 1,
                    value: core,
                },
                ArgCond::NonZero { arg: 2 },
            ]),
            errno: IGNORED,
        },
    )];
    #[cfg(target_arch = "x86_64")]
    rules.push((
        libc::SYS_setrlimit as u32,
        Special::Rule {
            rule: ArgRule::NoneOf {
                arg: 0,
                values: vec![core],
            },
            errno: IGNORED,
        },
    ));
    rules
}

/// Syscall numbers. Docker's allow-list (moby/profiles
/// `seccomp/default.json`) restricted to names that exist on the target,
/// minus our deviations (docs/seccomp.md). Calls with argument rules
/// (`clone`, `personality`, `ioctl`, `socket`, `socketpair`) and `clone3` are
/// handled in [`allow_list`] and [`compile_uncached`], not here.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod table {
    use libc::*;

    // Newer than the libc crate's tables. Numbers from 424 up are shared by
    // all architectures (arch/x86/entry/syscalls/syscall_64.tbl,
    // include/uapi/asm-generic/unistd.h).
    const NR_CACHESTAT: c_long = 451;
    pub(super) const NR_FCHMODAT2: c_long = 452;
    const NR_MAP_SHADOW_STACK: c_long = 453;
    const NR_FUTEX_WAKE: c_long = 454;
    const NR_FUTEX_WAIT: c_long = 455;
    const NR_FUTEX_REQUEUE: c_long = 456;
    const NR_STATMOUNT: c_long = 457;
    const NR_LISTMOUNT: c_long = 458;
    const NR_MSEAL: c_long = 462;
    const NR_SETXATTRAT: c_long = 463;
    const NR_GETXATTRAT: c_long = 464;
    const NR_LISTXATTRAT: c_long = 465;
    const NR_REMOVEXATTRAT: c_long = 466;
    // Missing from the libc crate; per-architecture numbers.
    #[cfg(target_arch = "x86_64")]
    const NR_IO_PGETEVENTS: c_long = 333;
    #[cfg(target_arch = "aarch64")]
    const NR_IO_PGETEVENTS: c_long = 292;
    /// x86_64 only (syscall_64.tbl), kernel 6.11.
    #[cfg(target_arch = "x86_64")]
    const NR_URETPROBE: c_long = 335;

    /// Allowed without argument checks, in both confined profiles (minus
    /// [`JUDGE_DENIED`] for `judge`).
    pub(super) const ALLOWED: &[c_long] = &[
        // processes, threads, signals
        SYS_execve,
        SYS_execveat,
        SYS_exit,
        SYS_exit_group,
        SYS_wait4,
        SYS_waitid,
        SYS_kill,
        SYS_tkill,
        SYS_tgkill,
        SYS_rt_sigaction,
        SYS_rt_sigpending,
        SYS_rt_sigprocmask,
        SYS_rt_sigqueueinfo,
        SYS_rt_sigreturn,
        SYS_rt_sigsuspend,
        SYS_rt_sigtimedwait,
        SYS_rt_tgsigqueueinfo,
        SYS_sigaltstack,
        SYS_signalfd4,
        SYS_pidfd_open,
        SYS_pidfd_send_signal,
        SYS_set_tid_address,
        SYS_set_robust_list,
        SYS_get_robust_list,
        SYS_rseq,
        SYS_futex,
        SYS_futex_waitv,
        NR_FUTEX_WAKE,
        NR_FUTEX_WAIT,
        NR_FUTEX_REQUEUE,
        SYS_membarrier,
        SYS_restart_syscall,
        SYS_prctl,
        SYS_seccomp,
        SYS_capget,
        SYS_capset,
        SYS_landlock_create_ruleset,
        SYS_landlock_add_rule,
        SYS_landlock_restrict_self,
        // ids, sessions, limits, scheduling
        SYS_getpid,
        SYS_getppid,
        SYS_gettid,
        SYS_getuid,
        SYS_geteuid,
        SYS_getgid,
        SYS_getegid,
        SYS_getresuid,
        SYS_getresgid,
        SYS_getgroups,
        SYS_setuid,
        SYS_setgid,
        SYS_setreuid,
        SYS_setregid,
        SYS_setresuid,
        SYS_setresgid,
        SYS_setfsuid,
        SYS_setfsgid,
        SYS_setgroups,
        SYS_getpgid,
        SYS_setpgid,
        SYS_getsid,
        SYS_setsid,
        SYS_prlimit64,
        SYS_getrusage,
        SYS_getpriority,
        SYS_setpriority,
        SYS_sched_getaffinity,
        SYS_sched_setaffinity,
        SYS_sched_getattr,
        SYS_sched_setattr,
        SYS_sched_getparam,
        SYS_sched_setparam,
        SYS_sched_getscheduler,
        SYS_sched_setscheduler,
        SYS_sched_get_priority_max,
        SYS_sched_get_priority_min,
        SYS_sched_rr_get_interval,
        SYS_sched_yield,
        SYS_getcpu,
        SYS_ioprio_get,
        SYS_ioprio_set,
        SYS_uname,
        SYS_sysinfo,
        SYS_getrandom,
        SYS_umask,
        // time (reading and sleeping; setting the clock is denied)
        SYS_clock_getres,
        SYS_clock_gettime,
        SYS_clock_nanosleep,
        SYS_gettimeofday,
        SYS_nanosleep,
        SYS_times,
        SYS_getitimer,
        SYS_setitimer,
        SYS_timer_create,
        SYS_timer_delete,
        SYS_timer_getoverrun,
        SYS_timer_gettime,
        SYS_timer_settime,
        SYS_timerfd_create,
        SYS_timerfd_gettime,
        SYS_timerfd_settime,
        // memory
        SYS_brk,
        SYS_mmap,
        SYS_munmap,
        SYS_mremap,
        SYS_mprotect,
        SYS_madvise,
        SYS_mincore,
        SYS_msync,
        SYS_mlock,
        SYS_mlock2,
        SYS_mlockall,
        SYS_munlock,
        SYS_munlockall,
        SYS_remap_file_pages,
        SYS_memfd_create,
        SYS_memfd_secret,
        SYS_pkey_alloc,
        SYS_pkey_free,
        SYS_pkey_mprotect,
        SYS_process_mrelease,
        NR_MAP_SHADOW_STACK,
        NR_MSEAL,
        // file descriptors and I/O
        SYS_read,
        SYS_write,
        SYS_readv,
        SYS_writev,
        SYS_pread64,
        SYS_pwrite64,
        SYS_preadv,
        SYS_pwritev,
        SYS_preadv2,
        SYS_pwritev2,
        SYS_lseek,
        SYS_close,
        SYS_close_range,
        SYS_dup,
        SYS_dup3,
        SYS_fcntl,
        SYS_flock,
        SYS_pipe2,
        SYS_splice,
        SYS_tee,
        SYS_vmsplice,
        SYS_sendfile,
        SYS_copy_file_range,
        SYS_readahead,
        SYS_fadvise64,
        SYS_fallocate,
        SYS_fsync,
        SYS_fdatasync,
        SYS_sync,
        SYS_syncfs,
        SYS_ftruncate,
        SYS_truncate,
        NR_CACHESTAT,
        SYS_eventfd2,
        SYS_epoll_create1,
        SYS_epoll_ctl,
        SYS_epoll_pwait,
        SYS_epoll_pwait2,
        SYS_ppoll,
        SYS_pselect6,
        SYS_inotify_init1,
        SYS_inotify_add_watch,
        SYS_inotify_rm_watch,
        SYS_fanotify_mark,
        SYS_io_setup,
        SYS_io_destroy,
        SYS_io_submit,
        SYS_io_cancel,
        SYS_io_getevents,
        NR_IO_PGETEVENTS,
        // paths, metadata, xattrs
        SYS_openat,
        SYS_openat2,
        SYS_getcwd,
        SYS_chdir,
        SYS_fchdir,
        SYS_getdents64,
        SYS_newfstatat,
        SYS_fstat,
        SYS_statx,
        SYS_statfs,
        SYS_fstatfs,
        SYS_faccessat,
        SYS_faccessat2,
        SYS_readlinkat,
        SYS_mkdirat,
        SYS_mknodat,
        SYS_linkat,
        SYS_symlinkat,
        SYS_unlinkat,
        SYS_renameat2,
        SYS_fchmod,
        SYS_fchmodat,
        NR_FCHMODAT2,
        SYS_fchown,
        SYS_fchownat,
        SYS_utimensat,
        SYS_getxattr,
        SYS_lgetxattr,
        SYS_fgetxattr,
        SYS_setxattr,
        SYS_lsetxattr,
        SYS_fsetxattr,
        SYS_listxattr,
        SYS_llistxattr,
        SYS_flistxattr,
        SYS_removexattr,
        SYS_lremovexattr,
        SYS_fremovexattr,
        NR_GETXATTRAT,
        NR_SETXATTRAT,
        NR_LISTXATTRAT,
        NR_REMOVEXATTRAT,
        NR_STATMOUNT,
        NR_LISTMOUNT,
        // sockets (creation is checked in allow_list)
        SYS_accept,
        SYS_accept4,
        SYS_bind,
        SYS_connect,
        SYS_listen,
        SYS_getsockname,
        SYS_getpeername,
        SYS_getsockopt,
        SYS_setsockopt,
        SYS_sendto,
        SYS_sendmsg,
        SYS_sendmmsg,
        SYS_recvfrom,
        SYS_recvmsg,
        SYS_recvmmsg,
        SYS_shutdown,
        // System V and POSIX IPC (private to the IPC namespace)
        SYS_msgget,
        SYS_msgsnd,
        SYS_msgrcv,
        SYS_msgctl,
        SYS_semget,
        SYS_semop,
        SYS_semtimedop,
        SYS_semctl,
        SYS_shmget,
        SYS_shmat,
        SYS_shmdt,
        SYS_shmctl,
        SYS_mq_open,
        SYS_mq_unlink,
        SYS_mq_timedsend,
        SYS_mq_timedreceive,
        SYS_mq_notify,
        SYS_mq_getsetattr,
        // x86_64 legacy calls (aarch64 only has the *at / generic forms)
        #[cfg(target_arch = "x86_64")]
        SYS_access,
        #[cfg(target_arch = "x86_64")]
        SYS_alarm,
        #[cfg(target_arch = "x86_64")]
        SYS_arch_prctl,
        #[cfg(target_arch = "x86_64")]
        SYS_chmod,
        #[cfg(target_arch = "x86_64")]
        SYS_chown,
        #[cfg(target_arch = "x86_64")]
        SYS_creat,
        #[cfg(target_arch = "x86_64")]
        SYS_dup2,
        #[cfg(target_arch = "x86_64")]
        SYS_epoll_create,
        #[cfg(target_arch = "x86_64")]
        SYS_epoll_ctl_old,
        #[cfg(target_arch = "x86_64")]
        SYS_epoll_wait,
        #[cfg(target_arch = "x86_64")]
        SYS_epoll_wait_old,
        #[cfg(target_arch = "x86_64")]
        SYS_eventfd,
        #[cfg(target_arch = "x86_64")]
        SYS_fork,
        #[cfg(target_arch = "x86_64")]
        SYS_futimesat,
        #[cfg(target_arch = "x86_64")]
        SYS_getdents,
        #[cfg(target_arch = "x86_64")]
        SYS_getpgrp,
        #[cfg(target_arch = "x86_64")]
        SYS_getrlimit,
        #[cfg(target_arch = "x86_64")]
        SYS_get_thread_area,
        #[cfg(target_arch = "x86_64")]
        SYS_inotify_init,
        #[cfg(target_arch = "x86_64")]
        SYS_lchown,
        #[cfg(target_arch = "x86_64")]
        SYS_link,
        #[cfg(target_arch = "x86_64")]
        SYS_lstat,
        #[cfg(target_arch = "x86_64")]
        SYS_mkdir,
        #[cfg(target_arch = "x86_64")]
        SYS_mknod,
        #[cfg(target_arch = "x86_64")]
        SYS_modify_ldt,
        #[cfg(target_arch = "x86_64")]
        SYS_open,
        #[cfg(target_arch = "x86_64")]
        SYS_pause,
        #[cfg(target_arch = "x86_64")]
        SYS_pipe,
        #[cfg(target_arch = "x86_64")]
        SYS_poll,
        #[cfg(target_arch = "x86_64")]
        SYS_readlink,
        #[cfg(target_arch = "x86_64")]
        SYS_rename,
        #[cfg(target_arch = "x86_64")]
        SYS_renameat,
        #[cfg(target_arch = "x86_64")]
        SYS_rmdir,
        #[cfg(target_arch = "x86_64")]
        SYS_select,
        #[cfg(target_arch = "x86_64")]
        SYS_set_thread_area,
        #[cfg(target_arch = "x86_64")]
        SYS_setrlimit,
        #[cfg(target_arch = "x86_64")]
        SYS_signalfd,
        #[cfg(target_arch = "x86_64")]
        SYS_stat,
        #[cfg(target_arch = "x86_64")]
        SYS_symlink,
        #[cfg(target_arch = "x86_64")]
        SYS_sync_file_range,
        #[cfg(target_arch = "x86_64")]
        SYS_time,
        #[cfg(target_arch = "x86_64")]
        SYS_unlink,
        #[cfg(target_arch = "x86_64")]
        NR_URETPROBE,
        #[cfg(target_arch = "x86_64")]
        SYS_utime,
        #[cfg(target_arch = "x86_64")]
        SYS_utimes,
        #[cfg(target_arch = "x86_64")]
        SYS_vfork,
    ];

    /// Removed from [`ALLOWED`] for `judge`: creating device nodes and FIFOs
    /// outside the sandbox's own files is never needed by judged code (and
    /// device nodes would be the way to raw disks if a capability leaked).
    pub(super) const JUDGE_DENIED: &[c_long] = &[
        SYS_mknodat,
        #[cfg(target_arch = "x86_64")]
        SYS_mknod,
    ];
}

/// Other architectures: no table yet, [`target_arch`] refuses before use.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
mod table {
    pub(super) const ALLOWED: &[libc::c_long] = &[];
    pub(super) const JUDGE_DENIED: &[libc::c_long] = &[];
    pub(super) const NR_FCHMODAT2: libc::c_long = 452;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_fromstr_display_and_serde() {
        for profile in SeccompProfile::ALL {
            let name = profile.to_string();
            assert_eq!(name.parse::<SeccompProfile>().unwrap(), profile);
            let json = serde_json::to_string(&profile).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(
                serde_json::from_str::<SeccompProfile>(&json).unwrap(),
                profile
            );
        }
        assert_eq!(SeccompProfile::default(), SeccompProfile::Default);
    }

    #[test]
    fn unknown_name_is_rejected_with_the_valid_names() {
        for bad in ["strict", "Default", ""] {
            let err = bad.parse::<SeccompProfile>().unwrap_err();
            assert!(
                matches!(&err, SeccompError::UnknownProfile { name } if name == bad),
                "{err:?}"
            );
            let msg = err.to_string();
            assert!(msg.contains(&format!("{bad:?}")), "{msg}");
            for profile in SeccompProfile::ALL {
                assert!(msg.contains(&profile.to_string()), "{msg}");
            }
        }
    }

    #[test]
    fn unconfined_compiles_to_no_filter() {
        assert!(compile(SeccompProfile::Unconfined).unwrap().is_none());
    }

    #[test]
    fn confined_profiles_compile_within_the_bpf_limit() {
        let default = compile(SeccompProfile::Default).unwrap().unwrap();
        let judge = compile(SeccompProfile::Judge).unwrap().unwrap();
        assert_eq!(default.profile(), Some(SeccompProfile::Default));
        assert_eq!(judge.profile(), Some(SeccompProfile::Judge));
        // One compact program each (loading cost is linear in its length:
        // the seccompiler stack of 2–3 programs had 1,561/1,605).
        assert_eq!(default.stages.len(), 1);
        assert_eq!(judge.stages.len(), 1);
        assert!(default.instructions() < 400, "{}", default.instructions());
        assert!(judge.instructions() < 400, "{}", judge.instructions());
        eprintln!(
            "instructions: default {}, judge {}",
            default.instructions(),
            judge.instructions()
        );
        for filter in [&default, &judge] {
            for stage in filter.stages.iter() {
                // BPF_MAXINSNS (include/uapi/linux/bpf_common.h).
                assert!(
                    (1..=4096).contains(&stage.program.len()),
                    "{filter:?} stage {}",
                    stage.name
                );
            }
        }
        assert_ne!(default.instructions(), judge.instructions());
        // Debug stays short: sizes, not instructions.
        assert!(format!("{judge:?}").len() < 200);
    }

    #[test]
    fn tables_never_allow_what_the_policy_denies_outright() {
        let denied = [
            libc::SYS_mount,
            libc::SYS_umount2,
            libc::SYS_pivot_root,
            libc::SYS_chroot,
            libc::SYS_unshare,
            libc::SYS_setns,
            libc::SYS_clone,
            libc::SYS_clone3,
            libc::SYS_ptrace,
            libc::SYS_process_vm_readv,
            libc::SYS_process_vm_writev,
            libc::SYS_bpf,
            libc::SYS_perf_event_open,
            libc::SYS_keyctl,
            libc::SYS_add_key,
            libc::SYS_request_key,
            libc::SYS_userfaultfd,
            libc::SYS_io_uring_setup,
            libc::SYS_io_uring_enter,
            libc::SYS_io_uring_register,
            libc::SYS_init_module,
            libc::SYS_finit_module,
            libc::SYS_delete_module,
            libc::SYS_kexec_load,
            libc::SYS_kexec_file_load,
            libc::SYS_reboot,
            libc::SYS_swapon,
            libc::SYS_swapoff,
            libc::SYS_clock_settime,
            libc::SYS_clock_adjtime,
            libc::SYS_settimeofday,
            libc::SYS_adjtimex,
            libc::SYS_acct,
            libc::SYS_quotactl,
            libc::SYS_open_by_handle_at,
            libc::SYS_name_to_handle_at,
            libc::SYS_fanotify_init,
            libc::SYS_mount_setattr,
            libc::SYS_move_mount,
            libc::SYS_open_tree,
            libc::SYS_fsopen,
            libc::SYS_fsconfig,
            libc::SYS_fsmount,
            libc::SYS_fspick,
            libc::SYS_pidfd_getfd,
            libc::SYS_kcmp,
            libc::SYS_syslog,
            libc::SYS_vhangup,
            libc::SYS_sethostname,
            libc::SYS_setdomainname,
            libc::SYS_personality,
            libc::SYS_ioctl,
            libc::SYS_socket,
        ];
        for nr in denied {
            assert!(
                !table::ALLOWED.contains(&nr),
                "syscall {nr} must not be allowed unconditionally"
            );
        }
    }
}

/// The filters at work: each case installs a filter in a forked child
/// (`sys::run_in_child`, so the test process stays unfiltered) and reports
/// what it observed through its exit code. The tests run as root, so without
/// the filter most denied calls would succeed or fail differently; the
/// `*_without_filter` control tests check exactly that.
#[cfg(all(test, target_arch = "x86_64"))]
mod kernel_tests {
    use std::ffi::CString;
    use std::os::fd::{AsFd, AsRawFd, OwnedFd};
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::path::{Path, PathBuf};

    use std::os::unix::ffi::OsStrExt;

    use libc::{ENOTTY, EPERM};
    use nix::errno::Errno;
    use nix::fcntl::OFlag;
    use nix::sys::stat::Mode;
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::Pid;

    use super::*;
    use crate::sys;

    // Child exit codes other than errno values (all errnos are < 134).
    const APPLY_FAILED: i32 = 250;
    const SETUP_FAILED: i32 = 251;
    const PANICKED: i32 = 252;
    const WRONG_RESULT: i32 = 253;
    const EXEC_FAILED: i32 = 127;

    fn filter(profile: SeccompProfile) -> SeccompFilter {
        compile(profile)
            .expect("profile compiles")
            .expect("confined profile")
    }

    /// Forks, runs `child` there (a panic becomes exit code PANICKED instead
    /// of unwinding into the test harness) and returns the wait status.
    fn fork_run(child: impl FnOnce() -> i32) -> WaitStatus {
        sys::test_support::run_in_child(|| {
            catch_unwind(AssertUnwindSafe(child)).unwrap_or(PANICKED)
        })
        .expect("fork")
    }

    fn exit_code(status: WaitStatus) -> i32 {
        match status {
            WaitStatus::Exited(_, code) => code,
            other => panic!("child did not exit normally: {other:?}"),
        }
    }

    /// Runs `probe` in a child under `filter` (unfiltered for `None`).
    fn probe(filter: Option<&SeccompFilter>, probe: impl FnOnce() -> i32) -> i32 {
        exit_code(fork_run(|| {
            if let Some(filter) = filter {
                if filter.apply().is_err() {
                    return APPLY_FAILED;
                }
            }
            probe()
        }))
    }

    /// The errno of a failed call, 0 on success.
    fn errno_of<T>(result: nix::Result<T>) -> i32 {
        result.err().map_or(0, |e| e as i32)
    }

    /// A raw syscall's errno, 0 on success. Pointer arguments are NULL or
    /// point to live data, so a call only fails or does its harmless thing.
    fn raw(nr: libc::c_long, a: usize, b: usize, c: usize) -> i32 {
        let (ret, errno) = sys::test_support::raw_syscall3(nr, a, b, c);
        if ret < 0 {
            errno as i32
        } else {
            0
        }
    }

    #[test]
    fn syscalls_newer_than_the_table_get_enosys_and_known_denied_ones_eperm() {
        // 1000 is beyond every kernel's table: ENOSYS with or without the
        // filter, where a plain default action would say EPERM.
        for profile in [SeccompProfile::Default, SeccompProfile::Judge] {
            let f = filter(profile);
            assert_eq!(
                probe(Some(&f), || raw(1000, 0, 0, 0)),
                libc::ENOSYS,
                "{profile}"
            );
            // lsm_list_modules (461) is within the table and not allowed.
            assert_eq!(
                probe(Some(&f), || raw(461, 0, 0, 0)),
                libc::EPERM,
                "{profile}"
            );
        }
    }

    fn setns_own_uts() -> i32 {
        match std::fs::File::open("/proc/self/ns/uts") {
            Ok(ns) => raw(
                libc::SYS_setns,
                ns.as_raw_fd() as usize,
                libc::CLONE_NEWUTS as usize,
                0,
            ),
            Err(_) => SETUP_FAILED,
        }
    }

    /// clone(2) asking for a user namespace. Should it succeed, the new
    /// process leaves at once and the caller reaps it.
    fn clone_newuser() -> i32 {
        let flags = (libc::CLONE_NEWUSER | libc::SIGCHLD) as usize;
        let (ret, errno) = sys::test_support::raw_syscall3(libc::SYS_clone, flags, 0, 0);
        match ret {
            0 => sys::exit_now(0),
            pid if pid > 0 => {
                let _ = waitpid(Pid::from_raw(pid as i32), None);
                0
            }
            _ => errno as i32,
        }
    }

    /// vhangup(2) as root hangs up the controlling terminal: drop it first
    /// with setsid so the unfiltered control cannot touch the user's tty.
    fn vhangup_without_tty() -> i32 {
        if nix::unistd::setsid().is_err() {
            return SETUP_FAILED;
        }
        raw(libc::SYS_vhangup, 0, 0, 0)
    }

    struct Probe {
        name: &'static str,
        run: fn() -> i32,
        /// The errno the filter answers with.
        denied: i32,
        /// Whether running it unfiltered is harmless and tells something.
        control: bool,
    }

    /// Calls every confined profile refuses, with arguments chosen so that
    /// the unfiltered call (as root) fails differently or succeeds without
    /// touching the host: bad magic, NULL pointers, fd -1, no-op values.
    fn denied_probes() -> Vec<Probe> {
        use libc::*;
        fn eperm(name: &'static str, run: fn() -> i32) -> Probe {
            Probe {
                name,
                run,
                denied: EPERM,
                control: true,
            }
        }
        const NOWHERE: &std::ffi::CStr = c"/nonexistent-runtimed-seccomp";
        vec![
            eperm("unshare(CLONE_NEWUSER)", || {
                raw(SYS_unshare, CLONE_NEWUSER as usize, 0, 0)
            }),
            eperm("unshare(CLONE_NEWNS)", || {
                raw(SYS_unshare, CLONE_NEWNS as usize, 0, 0)
            }),
            eperm("setns", setns_own_uts),
            eperm("clone(CLONE_NEWUSER)", clone_newuser),
            Probe {
                name: "clone3",
                run: || raw(SYS_clone3, 0, 0, 0),
                denied: ENOSYS,
                control: true,
            },
            eperm("pivot_root", || raw(SYS_pivot_root, 0, 0, 0)),
            eperm("chroot", || raw(SYS_chroot, c"/".as_ptr() as usize, 0, 0)),
            eperm("bpf", || raw(SYS_bpf, 0xffff, 0, 0)),
            eperm("perf_event_open", || raw(SYS_perf_event_open, 0, 0, 0)),
            eperm("keyctl", || {
                // KEYCTL_GET_KEYRING_ID of the session keyring, no create.
                raw(SYS_keyctl, 0, KEY_SPEC_SESSION_KEYRING as usize, 0)
            }),
            eperm("add_key", || raw(SYS_add_key, 0, 0, 0)),
            eperm("request_key", || raw(SYS_request_key, 0, 0, 0)),
            eperm("userfaultfd", || {
                raw(SYS_userfaultfd, O_CLOEXEC as usize, 0, 0)
            }),
            eperm("io_uring_setup", || raw(SYS_io_uring_setup, 1, 0, 0)),
            eperm("io_uring_enter", || {
                raw(SYS_io_uring_enter, usize::MAX, 0, 0)
            }),
            eperm("io_uring_register", || {
                raw(SYS_io_uring_register, usize::MAX, 0, 0)
            }),
            eperm("kexec_load", || raw(SYS_kexec_load, 0, 1000, 0)),
            eperm("kexec_file_load", || {
                raw(SYS_kexec_file_load, usize::MAX, usize::MAX, 0)
            }),
            eperm("init_module", || raw(SYS_init_module, 0, 0, 0)),
            eperm("finit_module", || raw(SYS_finit_module, usize::MAX, 0, 0)),
            eperm("delete_module", || raw(SYS_delete_module, 0, 0, 0)),
            eperm("ptrace(PTRACE_TRACEME)", || {
                raw(SYS_ptrace, PTRACE_TRACEME as usize, 0, 0)
            }),
            eperm("process_vm_readv", || raw(SYS_process_vm_readv, 0, 0, 0)),
            eperm("process_vm_writev", || raw(SYS_process_vm_writev, 0, 0, 0)),
            eperm("kcmp", || raw(SYS_kcmp, 0, 0, 0)),
            eperm("pidfd_getfd", || raw(SYS_pidfd_getfd, usize::MAX, 0, 0)),
            eperm("reboot", || raw(SYS_reboot, 0, 0, 0)),
            eperm("swapon", || raw(SYS_swapon, 0, 0, 0)),
            eperm("swapoff", || raw(SYS_swapoff, 0, 0, 0)),
            eperm("clock_settime", || {
                raw(SYS_clock_settime, CLOCK_REALTIME as usize, 0, 0)
            }),
            eperm("clock_adjtime", || {
                raw(SYS_clock_adjtime, CLOCK_REALTIME as usize, 0, 0)
            }),
            eperm("settimeofday", || raw(SYS_settimeofday, 0, 0, 0)),
            eperm("adjtimex", || raw(SYS_adjtimex, 0, 0, 0)),
            eperm("acct", || raw(SYS_acct, NOWHERE.as_ptr() as usize, 0, 0)),
            eperm("quotactl", || raw(SYS_quotactl, 0, 0, 0)),
            eperm("lookup_dcookie", || raw(SYS_lookup_dcookie, 0, 0, 0)),
            eperm("open_by_handle_at", || {
                raw(SYS_open_by_handle_at, AT_FDCWD as usize, 0, 0)
            }),
            eperm("name_to_handle_at", || {
                raw(
                    SYS_name_to_handle_at,
                    AT_FDCWD as usize,
                    c"/".as_ptr() as usize,
                    0,
                )
            }),
            eperm("fanotify_init", || {
                raw(SYS_fanotify_init, 0xffff_ffff, 0, 0)
            }),
            eperm("mount_setattr", || raw(SYS_mount_setattr, usize::MAX, 0, 0)),
            eperm("move_mount", || {
                raw(SYS_move_mount, usize::MAX, 0, usize::MAX)
            }),
            eperm("open_tree", || raw(SYS_open_tree, usize::MAX, 0, 0)),
            eperm("fsopen", || raw(SYS_fsopen, 0, 0, 0)),
            eperm("fsconfig", || raw(SYS_fsconfig, usize::MAX, 0, 0)),
            eperm("fsmount", || raw(SYS_fsmount, usize::MAX, 0, 0)),
            eperm("fspick", || raw(SYS_fspick, usize::MAX, 0, 0)),
            eperm("iopl", || raw(SYS_iopl, 0, 0, 0)),
            eperm("ioperm", || raw(SYS_ioperm, 0, 0, 0)),
            // Removed from the kernel and the libc crate; syscall_64.tbl numbers.
            eperm("create_module", || raw(174, 0, 0, 0)),
            eperm("get_kernel_syms", || raw(177, 0, 0, 0)),
            eperm("nfsservctl", || raw(SYS_nfsservctl, 0, 0, 0)),
            eperm("uselib", || raw(SYS_uselib, 0, 0, 0)),
            eperm("ustat", || raw(SYS_ustat, 0, 0, 0)),
            eperm("sysfs", || raw(SYS_sysfs, 1, 0, 0)),
            eperm("_sysctl", || raw(SYS__sysctl, 0, 0, 0)),
            // SYSLOG_ACTION_SIZE_BUFFER: a read-only query.
            eperm("syslog", || raw(SYS_syslog, 10, 0, 0)),
            eperm("vhangup", vhangup_without_tty),
            // Lengths over __NEW_UTS_LEN fail before anything is set.
            eperm("sethostname", || raw(SYS_sethostname, 0, 1000, 0)),
            eperm("setdomainname", || raw(SYS_setdomainname, 0, 1000, 0)),
            eperm("personality(READ_IMPLIES_EXEC)", || {
                raw(SYS_personality, 0x0040_0000, 0, 0)
            }),
            eperm("personality(ADDR_NO_RANDOMIZE)", || {
                raw(SYS_personality, 0x0004_0000, 0, 0)
            }),
            // x32 ABI: getpid's number with __X32_SYSCALL_BIT.
            eperm("x32 getpid", || raw(SYS_getpid | 0x4000_0000, 0, 0, 0)),
            // Unfiltered, these may make the host autoload a module.
            Probe {
                control: false,
                ..eperm("socket(AF_VSOCK)", || {
                    raw(SYS_socket, AF_VSOCK as usize, SOCK_STREAM as usize, 0)
                })
            },
            Probe {
                control: false,
                ..eperm("socket(AF_ALG)", || {
                    raw(SYS_socket, AF_ALG as usize, SOCK_SEQPACKET as usize, 0)
                })
            },
        ]
    }

    /// Runs every probe under `profile`; reports all mismatches at once.
    fn assert_probes_denied(profile: SeccompProfile) {
        let filter = filter(profile);
        let failures: Vec<String> = denied_probes()
            .into_iter()
            .filter_map(|p| {
                let got = probe(Some(&filter), p.run);
                (got != p.denied).then(|| {
                    let expected = Errno::from_raw(p.denied);
                    match got {
                        0 => format!("{}: expected {expected}, the call succeeded", p.name),
                        _ => format!("{}: expected {expected}, got {got}", p.name),
                    }
                })
            })
            .collect();
        assert!(failures.is_empty(), "{profile}: {failures:#?}");
    }

    #[test]
    fn default_denies_the_listed_syscalls() {
        assert_probes_denied(SeccompProfile::Default);
    }

    #[test]
    fn judge_denies_the_listed_syscalls() {
        assert_probes_denied(SeccompProfile::Judge);
    }

    /// The probes mean something: unfiltered, as root, none of them gets the
    /// errno the filter answers with.
    #[test]
    #[ignore = "privileged: the unfiltered control needs root"]
    fn probes_get_other_answers_without_filter() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the control needs root (run as root with `--include-ignored`)"
        );
        let failures: Vec<String> = denied_probes()
            .into_iter()
            .filter(|p| p.control)
            .filter_map(|p| {
                let got = probe(None, p.run);
                (got == p.denied || got >= APPLY_FAILED)
                    .then(|| format!("{}: got {got} without a filter", p.name))
            })
            .collect();
        assert!(failures.is_empty(), "{failures:#?}");
    }

    fn scratch_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("runtimed-seccomp-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        dir
    }

    /// In a child: a private mount namespace (so nothing can leak to the
    /// host), a control tmpfs mount on `dir` that must succeed, then the
    /// filter, then `probe`.
    fn in_private_mount_ns(dir: &Path, filter: &SeccompFilter, probe: fn(&Path) -> i32) -> i32 {
        use nix::mount::{mount, MsFlags};
        exit_code(fork_run(|| {
            let private = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).and_then(|()| {
                mount(
                    None::<&str>,
                    "/",
                    None::<&str>,
                    MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                    None::<&str>,
                )
            });
            let control = mount(
                Some("tmpfs"),
                dir,
                Some("tmpfs"),
                MsFlags::empty(),
                None::<&str>,
            );
            if private.is_err() || control.is_err() {
                return SETUP_FAILED;
            }
            if filter.apply().is_err() {
                return APPLY_FAILED;
            }
            probe(dir)
        }))
    }

    #[test]
    #[ignore = "privileged: mount in a private mount namespace needs root"]
    fn default_denies_mount_and_umount2() {
        use nix::mount::{mount, umount2, MntFlags, MsFlags};
        let dir = scratch_dir("mount");
        let filter = filter(SeccompProfile::Default);
        let mounted = in_private_mount_ns(&dir, &filter, |dir| {
            errno_of(mount(
                Some("tmpfs"),
                dir,
                Some("tmpfs"),
                MsFlags::empty(),
                None::<&str>,
            ))
        });
        let unmounted = in_private_mount_ns(&dir, &filter, |dir| {
            errno_of(umount2(dir, MntFlags::MNT_DETACH))
        });
        let _ = std::fs::remove_dir(&dir);
        assert_eq!(mounted, EPERM, "mount");
        assert_eq!(unmounted, EPERM, "umount2");
    }

    #[test]
    fn default_blocks_terminal_injection_but_not_other_tty_ioctls() {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let slave = pty.slave.as_raw_fd() as usize;
        let inject = move || {
            let byte = b'x';
            raw(
                libc::SYS_ioctl,
                slave,
                libc::TIOCSTI as usize,
                std::ptr::addr_of!(byte) as usize,
            )
        };
        let tioclinux = move || {
            let subcode: u8 = 0;
            raw(
                libc::SYS_ioctl,
                slave,
                libc::TIOCLINUX as usize,
                std::ptr::addr_of!(subcode) as usize,
            )
        };
        let winsize = || errno_of(sys::get_winsize(pty.slave.as_fd()));
        let filter = filter(SeccompProfile::Default);
        assert_eq!(probe(Some(&filter), inject), EPERM, "TIOCSTI");
        assert_eq!(probe(Some(&filter), tioclinux), EPERM, "TIOCLINUX");
        assert_eq!(probe(Some(&filter), winsize), 0, "TIOCGWINSZ");
        // Control: as root, TIOCSTI works on a pty without the filter
        // (it fails with EPERM for non-root since dev.tty.legacy_tiocsti=0).
        if nix::unistd::geteuid().is_root() {
            assert_eq!(probe(None, inject), 0, "TIOCSTI without filter");
            assert_ne!(probe(None, tioclinux), EPERM, "TIOCLINUX without filter");
        }
    }

    #[test]
    fn personality_query_and_docker_values_stay_allowed() {
        let filter = filter(SeccompProfile::Default);
        // The query returns the current persona (>= 0).
        assert_eq!(
            probe(Some(&filter), || raw(
                libc::SYS_personality,
                0xffff_ffff,
                0,
                0
            )),
            0
        );
        // PER_LINUX: what setarch and some runtimes set back.
        assert_eq!(
            probe(Some(&filter), || raw(libc::SYS_personality, 0, 0, 0)),
            0
        );
    }

    type NamedProbe = (&'static str, fn() -> i32);

    fn pipe_round_trip() -> i32 {
        let Ok((r, w)) = nix::unistd::pipe() else {
            return WRONG_RESULT;
        };
        let mut buf = [0u8; 4];
        match (
            nix::unistd::write(&w, b"ping"),
            nix::unistd::read(&r, &mut buf),
        ) {
            (Ok(4), Ok(4)) if &buf == b"ping" => 0,
            _ => WRONG_RESULT,
        }
    }

    fn fork_and_wait() -> i32 {
        match sys::test_support::fork() {
            Ok(None) => sys::exit_now(7),
            Ok(Some(pid)) => match waitpid(Pid::from_raw(pid), None) {
                Ok(WaitStatus::Exited(_, 7)) => 0,
                _ => WRONG_RESULT,
            },
            Err(e) => e as i32,
        }
    }

    fn thread_join() -> i32 {
        match std::thread::spawn(|| 42).join() {
            Ok(42) => 0,
            _ => WRONG_RESULT,
        }
    }

    fn socket_of(family: nix::sys::socket::AddressFamily) -> i32 {
        use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
        let kind = match family {
            AddressFamily::Netlink => SockType::Datagram,
            _ => SockType::Stream,
        };
        errno_of(socket(family, kind, SockFlag::SOCK_CLOEXEC, None))
    }

    fn unix_socketpair() -> i32 {
        use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
        errno_of(socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        ))
    }

    #[test]
    fn default_keeps_ordinary_program_syscalls() {
        use nix::sys::socket::AddressFamily;
        let filter = filter(SeccompProfile::Default);
        let cases: [NamedProbe; 7] = [
            ("getpid", || raw(libc::SYS_getpid, 0, 0, 0)),
            ("pipe, write, read", pipe_round_trip),
            ("fork + waitpid", fork_and_wait),
            ("thread spawn + join", thread_join),
            ("socket(AF_INET)", || socket_of(AddressFamily::Inet)),
            ("socket(AF_NETLINK)", || socket_of(AddressFamily::Netlink)),
            ("socketpair(AF_UNIX)", unix_socketpair),
        ];
        for (name, case) in cases {
            assert_eq!(probe(Some(&filter), case), 0, "{name}");
        }
    }

    #[test]
    fn judge_allows_only_unix_sockets() {
        use nix::sys::socket::AddressFamily;
        let filter = filter(SeccompProfile::Judge);
        assert_eq!(
            probe(Some(&filter), || socket_of(AddressFamily::Inet)),
            EPERM
        );
        assert_eq!(
            probe(Some(&filter), || socket_of(AddressFamily::Inet6)),
            EPERM
        );
        assert_eq!(
            probe(Some(&filter), || socket_of(AddressFamily::Netlink)),
            EPERM
        );
        assert_eq!(probe(Some(&filter), || socket_of(AddressFamily::Unix)), 0);
        assert_eq!(probe(Some(&filter), unix_socketpair), 0);
        // Control: AF_INET works unfiltered (an empty netns still has lo).
        assert_eq!(probe(None, || socket_of(AddressFamily::Inet)), 0);
    }

    #[test]
    fn judge_keeps_threads_fork_and_pipes() {
        let filter = filter(SeccompProfile::Judge);
        assert_eq!(probe(Some(&filter), thread_join), 0, "threads");
        assert_eq!(probe(Some(&filter), fork_and_wait), 0, "fork");
        assert_eq!(probe(Some(&filter), pipe_round_trip), 0, "pipe");
    }

    /// One way of giving a file a mode, tried on `path` (a file that
    /// exists for chmod-like calls, a free name for creating ones) in a
    /// forked child; the errno, 0 on success.
    type ModeWay = (&'static str, fn(&CString, u32) -> i32);

    fn c(p: &Path) -> CString {
        CString::new(p.as_os_str().as_encoded_bytes()).expect("no NUL in temp path")
    }

    /// Every call that can put a mode on an existing file.
    fn chmod_ways() -> Vec<ModeWay> {
        vec![
            ("chmod", |p, m| {
                raw(libc::SYS_chmod, p.as_ptr() as usize, m as usize, 0)
            }),
            ("fchmodat", |p, m| {
                raw(
                    libc::SYS_fchmodat,
                    libc::AT_FDCWD as usize,
                    p.as_ptr() as usize,
                    m as usize,
                )
            }),
            ("fchmodat2", |p, m| {
                raw(
                    table::NR_FCHMODAT2,
                    libc::AT_FDCWD as usize,
                    p.as_ptr() as usize,
                    m as usize,
                )
            }),
            ("fchmod", |p, m| {
                match nix::fcntl::open(p.as_c_str(), OFlag::O_RDONLY, Mode::empty()) {
                    Ok(fd) => errno_of(nix::sys::stat::fchmod(&fd, Mode::from_bits_retain(m))),
                    Err(_) => SETUP_FAILED,
                }
            }),
        ]
    }

    /// Every call that can create a file with a mode (`path` is free).
    fn create_ways() -> Vec<ModeWay> {
        vec![
            ("open(O_CREAT)", |p, m| {
                raw(
                    libc::SYS_open,
                    p.as_ptr() as usize,
                    (libc::O_CREAT | libc::O_WRONLY) as usize,
                    m as usize,
                )
            }),
            ("openat(O_CREAT)", |p, m| {
                errno_of(nix::fcntl::open(
                    p.as_c_str(),
                    OFlag::O_CREAT | OFlag::O_WRONLY,
                    Mode::from_bits_retain(m),
                ))
            }),
            ("creat", |p, m| {
                raw(libc::SYS_creat, p.as_ptr() as usize, m as usize, 0)
            }),
            ("mknod(S_IFREG)", |p, m| {
                raw(
                    libc::SYS_mknod,
                    p.as_ptr() as usize,
                    (libc::S_IFREG | m) as usize,
                    0,
                )
            }),
            ("mknodat(S_IFREG)", |p, m| {
                raw(
                    libc::SYS_mknodat,
                    libc::AT_FDCWD as usize,
                    p.as_ptr() as usize,
                    (libc::S_IFREG | m) as usize,
                )
            }),
            ("openat(O_TMPFILE) in its directory", |p, m| {
                let dir = Path::new(std::ffi::OsStr::from_bytes(p.to_bytes()))
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default();
                errno_of(nix::fcntl::open(
                    &dir,
                    OFlag::O_TMPFILE | OFlag::O_RDWR,
                    Mode::from_bits_retain(m),
                ))
            }),
        ]
    }

    /// A fresh file in a fresh scratch dir (mode 0755).
    fn scratch_file(dir: &Path, name: &str) -> CString {
        let p = dir.join(name);
        std::fs::write(&p, b"x").expect("write scratch file");
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod scratch file");
        c(&p)
    }

    fn setid_bits(p: &CString) -> u32 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(std::ffi::OsStr::from_bytes(p.to_bytes()))
            .map_or(0, |m| m.mode() & SETID_BITS)
    }

    #[test]
    fn confined_profiles_refuse_setuid_and_setgid_modes() {
        let dir = scratch_dir("setid");
        let mut failures = Vec::new();
        for profile in [SeccompProfile::Default, SeccompProfile::Judge] {
            let f = filter(profile);
            for bits in [libc::S_ISUID, libc::S_ISGID] {
                for (i, (name, way)) in chmod_ways().into_iter().enumerate() {
                    let file = scratch_file(&dir, &format!("{profile}-{bits:o}-{i}"));
                    let got = probe(Some(&f), || way(&file, bits | 0o755));
                    if got != EPERM || setid_bits(&file) != 0 {
                        failures.push(format!("{profile} {name} {bits:o}: {got}"));
                    }
                    // Plain modes and the sticky bit still work.
                    let plain = probe(Some(&f), || way(&file, 0o1755));
                    if plain != 0 {
                        failures.push(format!("{profile} {name} 1755: {plain}"));
                    }
                }
                for (i, (name, way)) in create_ways().into_iter().enumerate() {
                    let file = c(&dir.join(format!("{profile}-new-{bits:o}-{i}")));
                    let got = probe(Some(&f), || way(&file, bits | 0o755));
                    if got != EPERM || setid_bits(&file) != 0 {
                        failures.push(format!("{profile} {name} {bits:o}: {got}"));
                    }
                    let plain = c(&dir.join(format!("{profile}-plain-{bits:o}-{i}")));
                    // judge denies mknod outright.
                    let want = if profile == SeccompProfile::Judge && name.starts_with("mknod") {
                        EPERM
                    } else {
                        0
                    };
                    let got = probe(Some(&f), || way(&plain, 0o755));
                    if got != want {
                        failures.push(format!("{profile} {name} 755: {got}, want {want}"));
                    }
                }
            }
            // Without O_CREAT the mode is ignored: a set bit there is fine.
            let existing = scratch_file(&dir, &format!("{profile}-existing"));
            let got = probe(Some(&f), || {
                raw(
                    libc::SYS_open,
                    existing.as_ptr() as usize,
                    libc::O_RDONLY as usize,
                    0o4755,
                )
            });
            if got != 0 {
                failures.push(format!("{profile} open(O_RDONLY, 04755): {got}"));
            }
            // openat2 hides its mode in a struct: ENOSYS, libc falls back.
            let got = probe(Some(&f), || raw(libc::SYS_openat2, 0, 0, 0));
            if got != libc::ENOSYS {
                failures.push(format!("{profile} openat2: {got}"));
            }
            // mkdir needs no rule: the kernel drops both bits itself.
            let sub = c(&dir.join(format!("{profile}-dir")));
            let got = probe(Some(&f), || {
                raw(libc::SYS_mkdir, sub.as_ptr() as usize, 0o6755, 0)
            });
            if got != 0 || setid_bits(&sub) != 0 {
                failures.push(format!(
                    "{profile} mkdir 6755: {got}, {:o}",
                    setid_bits(&sub)
                ));
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert!(failures.is_empty(), "{failures:#?}");
    }

    /// Unfiltered, as root, every way sets the bits: the test above can fail.
    #[test]
    #[ignore = "privileged: the unfiltered control needs root"]
    fn setid_ways_work_without_filter() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the control needs root (run as root with `--include-ignored`)"
        );
        let dir = scratch_dir("setid-control");
        let mut failures = Vec::new();
        for (i, (name, way)) in chmod_ways().into_iter().enumerate() {
            let file = scratch_file(&dir, &format!("c{i}"));
            let got = probe(None, || way(&file, 0o6755));
            if got != 0 || setid_bits(&file) != SETID_BITS {
                failures.push(format!("{name}: {got}"));
            }
        }
        for (i, (name, way)) in create_ways().into_iter().enumerate() {
            let file = c(&dir.join(format!("n{i}")));
            let got = probe(None, || way(&file, 0o4755));
            // O_TMPFILE leaves no name to look at; its success is enough.
            let made = name.contains("O_TMPFILE") || setid_bits(&file) == libc::S_ISUID;
            if got != 0 || !made {
                failures.push(format!("{name}: {got}"));
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn build_steps_may_set_setuid_modes() {
        let f = compile_for(SeccompProfile::Default, Purpose::BuildStep)
            .expect("compiles")
            .expect("confined");
        assert_eq!(f.purpose(), Purpose::BuildStep);
        let dir = scratch_dir("setid-build");
        let file = scratch_file(&dir, "dpkg");
        let (chmod, _) = chmod_ways()[0];
        assert_eq!(chmod, "chmod");
        let got = probe(Some(&f), || chmod_ways()[0].1(&file, 0o4755));
        let bits = setid_bits(&file);
        // openat2 is a plain call again (EFAULT for the NULL path).
        let openat2 = probe(Some(&f), || raw(libc::SYS_openat2, 0, 0, 0));
        // The core limit stays guarded.
        let lowered = core_limit_after(Some(&f), lower_core_limit);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!((got, bits), (0, libc::S_ISUID));
        assert_ne!(openat2, libc::ENOSYS);
        assert_eq!(lowered, (0, true));
    }

    /// setrlimit(RLIMIT_CORE, 0/0) through glibc (prlimit64).
    fn lower_core_limit() -> i32 {
        use nix::sys::resource::{setrlimit, Resource};
        errno_of(setrlimit(Resource::RLIMIT_CORE, 0, 0))
    }

    /// In a forked child with RLIMIT_CORE 1/1 (as in a sandbox), under
    /// `filter`: `lower`'s errno, and whether the limit is still 1 after it.
    fn core_limit_after(filter: Option<&SeccompFilter>, lower: fn() -> i32) -> (i32, bool) {
        use nix::sys::resource::{getrlimit, setrlimit, Resource};
        const KEPT: i32 = 100;
        let code = exit_code(fork_run(|| {
            if setrlimit(Resource::RLIMIT_CORE, 1, 1).is_err() {
                return APPLY_FAILED;
            }
            if let Some(filter) = filter {
                if filter.apply().is_err() {
                    return APPLY_FAILED;
                }
            }
            let errno = lower();
            match getrlimit(Resource::RLIMIT_CORE) {
                Ok((1, 1)) => KEPT + errno,
                Ok(_) => errno,
                Err(_) => APPLY_FAILED,
            }
        }));
        assert_ne!(code, APPLY_FAILED, "core limit probe could not be set up");
        (code % KEPT, code >= KEPT)
    }

    #[test]
    fn confined_profiles_keep_the_core_limit() {
        use nix::sys::resource::{getrlimit, setrlimit, Resource};
        let legacy_setrlimit = || {
            let lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            raw(
                libc::SYS_setrlimit,
                libc::RLIMIT_CORE as usize,
                std::ptr::addr_of!(lim) as usize,
                0,
            )
        };
        let read = || errno_of(getrlimit(Resource::RLIMIT_CORE));
        let other = || errno_of(setrlimit(Resource::RLIMIT_NOFILE, 512, 512));
        // Setting it succeeds and changes nothing (programs that lower it
        // to keep secrets out of core files must not stop).
        for profile in [SeccompProfile::Default, SeccompProfile::Judge] {
            let f = filter(profile);
            assert_eq!(
                core_limit_after(Some(&f), lower_core_limit),
                (0, true),
                "{profile} prlimit64"
            );
            assert_eq!(
                core_limit_after(Some(&f), legacy_setrlimit),
                (0, true),
                "{profile} setrlimit"
            );
            assert_eq!(probe(Some(&f), read), 0, "{profile} getrlimit");
            assert_eq!(probe(Some(&f), other), 0, "{profile} RLIMIT_NOFILE");
        }
        // Control: unfiltered, lowering works.
        assert_eq!(core_limit_after(None, lower_core_limit), (0, false));
        assert_eq!(core_limit_after(None, legacy_setrlimit), (0, false));
    }

    #[test]
    fn judge_denies_device_nodes_and_fifos() {
        let dir = scratch_dir("mknod");
        let fifo = CString::new(dir.join("fifo").into_os_string().into_encoded_bytes())
            .expect("no NUL in temp path");
        let mkfifo = || {
            raw(
                libc::SYS_mknodat,
                libc::AT_FDCWD as usize,
                fifo.as_ptr() as usize,
                (libc::S_IFIFO | 0o600) as usize,
            )
        };
        let judged = probe(Some(&filter(SeccompProfile::Judge)), mkfifo);
        let defaulted = probe(Some(&filter(SeccompProfile::Default)), mkfifo);
        let _ = std::fs::remove_file(dir.join("fifo"));
        let _ = std::fs::remove_dir(&dir);
        assert_eq!(judged, EPERM, "judge mknodat");
        assert_eq!(defaulted, 0, "default mknodat (Docker allows it)");
    }

    #[test]
    fn judge_allows_terminal_ioctls_and_refuses_others_with_enotty() {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let slave = pty.slave.as_raw_fd() as usize;
        let master = pty.master.as_raw_fd() as usize;
        let file = std::fs::File::open("/proc/self/exe").expect("open own binary");
        let regular = file.as_raw_fd() as usize;
        let judge = filter(SeccompProfile::Judge);
        let ioctl = move |fd: usize, cmd: libc::Ioctl| {
            let mut arg = [0u8; 64];
            raw(
                libc::SYS_ioctl,
                fd,
                cmd as usize,
                std::ptr::addr_of_mut!(arg) as usize,
            )
        };
        for (name, fd, cmd) in [
            ("TCGETS", slave, libc::TCGETS),
            ("TIOCGWINSZ", slave, libc::TIOCGWINSZ),
            ("FIONREAD", slave, libc::FIONREAD),
            ("TIOCGPTN", master, libc::TIOCGPTN),
            ("FIOCLEX", regular, libc::FIOCLEX),
        ] {
            assert_eq!(probe(Some(&judge), move || ioctl(fd, cmd)), 0, "{name}");
        }
        // Not on the list: ENOTTY, as for an fd without that ioctl.
        // FS_IOC_GETFLAGS works on most file systems without the filter.
        const FS_IOC_GETFLAGS: libc::Ioctl = 0x8008_6601;
        assert_eq!(
            probe(Some(&judge), move || ioctl(regular, FS_IOC_GETFLAGS)),
            ENOTTY
        );
        assert_eq!(
            probe(Some(&judge), move || ioctl(slave, libc::TIOCSTI)),
            ENOTTY
        );
        // Default keeps FS_IOC_GETFLAGS: whatever the file system says, not ENOTTY from us.
        let default = filter(SeccompProfile::Default);
        assert_eq!(
            probe(Some(&default), move || ioctl(regular, FS_IOC_GETFLAGS)),
            probe(None, move || ioctl(regular, FS_IOC_GETFLAGS)),
        );
    }

    /// Forks; the child installs `filter`, sends stdout and stderr to `out`
    /// and execs `/bin/sh -c script`. Returns the wait status.
    fn sh_under(filter: Option<&SeccompFilter>, script: &str, out: &OwnedFd) -> WaitStatus {
        let script = CString::new(script).expect("no NUL in script");
        let argv = [c"sh", c"-c", script.as_c_str()];
        fork_run(|| {
            if nix::unistd::dup2_stdout(out).is_err() || nix::unistd::dup2_stderr(out).is_err() {
                return SETUP_FAILED;
            }
            if let Some(filter) = filter {
                if filter.apply().is_err() {
                    return APPLY_FAILED;
                }
            }
            let _ = nix::unistd::execv(c"/bin/sh", &argv);
            EXEC_FAILED
        })
    }

    #[test]
    fn sh_runs_under_every_profile() {
        for profile in SeccompProfile::ALL {
            let filter = compile(profile).expect("compiles");
            let (r, w) = nix::unistd::pipe().expect("pipe");
            let status = sh_under(filter.as_ref(), "echo ok", &w);
            drop(w);
            let mut out = String::new();
            std::io::Read::read_to_string(&mut std::fs::File::from(r), &mut out)
                .expect("read child output");
            assert_eq!(exit_code(status), 0, "{profile}: {out}");
            assert_eq!(out, "ok\n", "{profile}");
        }
    }

    fn in_path(program: &str) -> bool {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
    }

    /// The runtimes judged code uses start, compile and run under both
    /// confined profiles. A missing runtime fails the test, which is
    /// therefore ignored unless asked for (CI installs them all).
    #[test]
    #[ignore = "needs the judge's toolchains (gcc, g++, python3, node, java)"]
    fn real_runtimes_work_under_confined_profiles() {
        let dir = scratch_dir("runtimes");
        let files = [
            (
                "hello.c",
                "#include <stdio.h>\nint main(void) { puts(\"ok\"); return 0; }\n",
            ),
            (
                "threads.cpp",
                "#include <thread>\n#include <iostream>\nint main() { int x = 0; \
                 std::thread t([&] { x = 1; }); t.join(); std::cout << (x ? \"ok\" : \"no\") \
                 << std::endl; }\n",
            ),
            (
                "Hello.java",
                "public class Hello { public static void main(String[] a) throws Exception { \
                 Thread t = new Thread(() -> {}); t.start(); t.join(); \
                 System.out.println(\"ok\"); } }\n",
            ),
        ];
        for (name, text) in files {
            std::fs::write(dir.join(name), text).expect("write source");
        }
        let cases: [(&str, &[&str], &str); 6] = [
            ("bash", &["bash"], "bash -c 'x=$(echo ok); ls / >/dev/null && echo \"$x\"'"),
            (
                "python3",
                &["python3"],
                "python3 -c 'import subprocess, threading, multiprocessing as m; \
                 t = threading.Thread(target=print, args=(\"ok\",)); t.start(); t.join(); \
                 subprocess.run([\"true\"], check=True); \
                 p = m.Process(target=int); p.start(); p.join(); assert p.exitcode == 0'",
            ),
            ("gcc", &["gcc"], "gcc -O2 -o hello hello.c && ./hello"),
            ("g++", &["g++"], "g++ -O2 -pthread -o threads threads.cpp && ./threads"),
            (
                "node",
                &["node"],
                "node -e 'require(\"fs\").readdirSync(\"/\"); setTimeout(() => console.log(\"ok\"), 1)'",
            ),
            ("java", &["javac", "java"], "javac Hello.java && java -cp . Hello"),
        ];
        let mut failures = Vec::new();
        for profile in [SeccompProfile::Default, SeccompProfile::Judge] {
            let filter = filter(profile);
            for (name, needs, command) in cases {
                if let Some(missing) = needs.iter().find(|p| !in_path(p)) {
                    failures.push(format!("{profile}/{name}: {missing} not installed"));
                    continue;
                }
                let log = dir.join(format!("{profile}-{name}.log"));
                let out = std::fs::File::create(&log).expect("create log");
                let script = format!("cd '{}' && {command}", dir.display());
                let status = sh_under(Some(&filter), &script, &OwnedFd::from(out));
                let output = std::fs::read_to_string(&log).unwrap_or_default();
                let ok = matches!(status, WaitStatus::Exited(_, 0)) && output.contains("ok");
                if !ok {
                    failures.push(format!("{profile}/{name}: {status:?}\n{output}"));
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
