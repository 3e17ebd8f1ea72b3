//! Translation of an OCI seccomp profile (`linux.seccomp` of a config.json,
//! as dockerd and containerd write it) into our own classic-BPF program.
//!
//! Engines hand runtimes a libseccomp-shaped profile: a default action,
//! architectures, and rules naming syscalls with an action and optional
//! argument comparisons. runc and crun feed it to libseccomp; we compile it
//! with the generator in [`super::bpf`] instead, so an engine's container
//! gets the same compact program shape as our own profiles (argument rules
//! first, then a binary search over number ranges grouped by action).
//!
//! Semantics follow libseccomp as runc drives it (runc's
//! `libcontainer/seccomp/seccomp_linux.go`, read for behaviour only):
//! - names this architecture does not have are skipped;
//! - the conditions of one rule must all hold, except when two of them
//!   compare the same argument: then each condition is a rule of its own
//!   (libseccomp cannot AND two comparisons of one argument, and runc falls
//!   back to that older behaviour);
//! - `SCMP_ACT_ERRNO` without `errnoRet` is `EPERM`; `defaultErrnoRet`
//!   applies to the default action only; `SCMP_ACT_KILL` kills the thread;
//! - with an errno default action, numbers above the highest one the
//!   profile names fail with `ENOSYS`, so a libc newer than the profile
//!   falls back as on an older kernel (runc's stub does the same).
//!
//! What we cannot implement is refused by name: `SCMP_ACT_NOTIFY` (needs a
//! seccomp agent behind `listenerPath`), the `LOG` and `SPEC_ALLOW` filter
//! flags, and a profile whose architectures leave out the native one.

use std::collections::BTreeMap;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator,
};
use seccompiler::sock_filter;

use super::bpf::{
    self, jump, small, stmt, TooLarge, BPF_ALU_AND_K, BPF_JMP_JA, BPF_JMP_JEQ_K, BPF_JMP_JGE_K,
    BPF_JMP_JGT_K, BPF_LD_W_ABS, BPF_RET_K, OFF_ARCH, OFF_NR,
};

// linux/seccomp.h actions (besides bpf::RET_ALLOW, RET_KILL_PROCESS).
const RET_KILL_THREAD: u32 = 0x0000_0000;
const RET_TRAP: u32 = 0x0003_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;

/// Why a profile cannot be translated; `field` names the part at fault in
/// config.json terms (`linux.seccomp.syscalls[3].action`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OciSeccompError {
    #[error("{field}: not supported ({why})")]
    Unsupported { field: String, why: String },
    #[error("{field}: invalid value: {why}")]
    Invalid { field: String, why: String },
    #[error("linux.seccomp: {0}")]
    TooLarge(#[from] TooLarge),
}

fn unsupported(field: impl Into<String>, why: impl Into<String>) -> OciSeccompError {
    OciSeccompError::Unsupported {
        field: field.into(),
        why: why.into(),
    }
}

fn invalid(field: impl Into<String>, why: impl Into<String>) -> OciSeccompError {
    OciSeccompError::Invalid {
        field: field.into(),
        why: why.into(),
    }
}

/// One comparison of a 64-bit argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cond {
    arg: u8,
    op: LinuxSeccompOperator,
    value: u64,
    /// `SCMP_CMP_MASKED_EQ`: `arg & value == value_two`. Absent is 0:
    /// Docker 20.10 writes its clone rule without it.
    value_two: u64,
}

/// A conditional rule: every condition holds → `action`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    conds: Vec<Cond>,
    action: u32,
}

/// What one syscall number does: its conditional rules in profile order,
/// then its unconditional action (or the default).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Call {
    rules: Vec<Rule>,
    fallback: Option<u32>,
}

/// A profile resolved to numbers for one architecture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Translated {
    audit_arch: u32,
    /// x86_64: numbers with bit 30 (the x32 ABI) get the default action.
    nr_limit: u32,
    default_action: u32,
    /// `AUDIT_ARCH_*` of the other architectures the profile lists: they
    /// get the default action (we have no tables for them); unlisted ones
    /// are killed.
    other_arches: Vec<u32>,
    newer_than: Option<(u32, u32)>,
    calls: BTreeMap<u32, Call>,
}

/// The kernel action for an OCI action with its errno (`None`: the rule's
/// own `errnoRet` is absent).
fn action(field: &str, a: LinuxSeccompAction, errno: Option<u32>) -> Result<u32, OciSeccompError> {
    let data = |default: u32| -> Result<u32, OciSeccompError> {
        let e = errno.unwrap_or(default);
        if e > 0xffff {
            return Err(invalid(
                format!("{field}.errnoRet"),
                format!("{e} does not fit the 16 bits of SECCOMP_RET_DATA"),
            ));
        }
        Ok(e)
    };
    let eperm = libc::EPERM as u32;
    Ok(match a {
        LinuxSeccompAction::ScmpActAllow => bpf::RET_ALLOW,
        LinuxSeccompAction::ScmpActErrno => bpf::ret_errno(data(eperm)? as i32),
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => RET_KILL_THREAD,
        LinuxSeccompAction::ScmpActKillProcess => bpf::RET_KILL_PROCESS,
        LinuxSeccompAction::ScmpActTrap => RET_TRAP,
        LinuxSeccompAction::ScmpActTrace => RET_TRACE | data(eperm)?,
        LinuxSeccompAction::ScmpActLog => RET_LOG,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(unsupported(
                format!("{field}.action"),
                "SCMP_ACT_NOTIFY needs a seccomp agent (listenerPath); runtimed has none",
            ))
        }
    })
}

/// The syscall names this architecture's table knows (what a profile may
/// name and have translated; others are skipped). For `features`-style
/// reports and for tests that write profiles.
pub fn known_syscalls() -> impl Iterator<Item = &'static str> {
    #[cfg(target_arch = "x86_64")]
    let table: &[(&str, u32)] = super::names::X86_64;
    #[cfg(not(target_arch = "x86_64"))]
    let table: &[(&str, u32)] = &[];
    table.iter().map(|(n, _)| *n)
}

/// The number of `name` on this architecture, if it has that call.
fn syscall_number(name: &str) -> Option<u32> {
    #[cfg(target_arch = "x86_64")]
    {
        let table = super::names::X86_64;
        table
            .binary_search_by(|(n, _)| n.cmp(&name))
            .ok()
            .map(|i| table[i].1)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = name;
        None
    }
}

/// The `AUDIT_ARCH_*` value of an OCI architecture name, and whether it is
/// the one we translate for.
fn is_native(a: Arch, native: u32) -> bool {
    match a {
        Arch::ScmpArchNative => true,
        Arch::ScmpArchX86_64 => native == 0xc000_003e,
        Arch::ScmpArchAarch64 => native == 0xc000_00b7,
        _ => false,
    }
}

fn cond(field: &str, a: &LinuxSeccompArg) -> Result<Cond, OciSeccompError> {
    if a.index() > 5 {
        return Err(invalid(
            format!("{field}.index"),
            format!("{} is not an argument index (0..=5)", a.index()),
        ));
    }
    Ok(Cond {
        arg: a.index() as u8,
        op: a.op(),
        value: a.value(),
        value_two: a.value_two().unwrap_or(0),
    })
}

/// Resolves `profile` to numbers for the running architecture, refusing
/// what we cannot implement. Pure: used by validation and by [`compile`].
pub(super) fn translate(profile: &LinuxSeccomp) -> Result<Translated, OciSeccompError> {
    let (audit_arch, nr_limit) = super::target_arch().map_err(|_| {
        unsupported(
            "linux.seccomp",
            format!("no syscall table for {}", std::env::consts::ARCH),
        )
    })?;
    if cfg!(not(target_arch = "x86_64")) {
        return Err(unsupported(
            "linux.seccomp",
            format!("no syscall name table for {}", std::env::consts::ARCH),
        ));
    }
    if profile.listener_path().is_some() || profile.listener_metadata().is_some() {
        return Err(unsupported(
            "linux.seccomp.listenerPath",
            "runtimed has no seccomp agent to hand a notify fd to",
        ));
    }
    for f in profile.flags().iter().flatten() {
        match f {
            // One thread execs: syncing the filter to all threads is moot.
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => {}
            other => {
                return Err(unsupported(
                    "linux.seccomp.flags",
                    format!("{other:?}: the filter is installed without flags"),
                ))
            }
        }
    }
    let arches = profile.architectures().clone().unwrap_or_default();
    if !arches.is_empty() && !arches.iter().any(|a| is_native(*a, audit_arch)) {
        return Err(unsupported(
            "linux.seccomp.architectures",
            format!(
                "the list leaves out this machine's architecture ({})",
                std::env::consts::ARCH
            ),
        ));
    }
    let default_action = action(
        "linux.seccomp.defaultAction",
        profile.default_action(),
        profile.default_errno_ret(),
    )?;
    let mut calls: BTreeMap<u32, Call> = BTreeMap::new();
    let mut highest = None;
    for (i, sc) in profile.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let act = action(&field, sc.action(), sc.errno_ret())?;
        let conds = sc
            .args()
            .iter()
            .flatten()
            .enumerate()
            .map(|(j, a)| cond(&format!("{field}.args[{j}]"), a))
            .collect::<Result<Vec<_>, _>>()?;
        // Two comparisons of one argument: each is a rule of its own.
        let same_arg_twice = conds
            .iter()
            .enumerate()
            .any(|(j, c)| conds[..j].iter().any(|d| d.arg == c.arg));
        let rules: Vec<Rule> = if same_arg_twice {
            conds
                .iter()
                .map(|c| Rule {
                    conds: vec![*c],
                    action: act,
                })
                .collect()
        } else if conds.is_empty() {
            Vec::new()
        } else {
            vec![Rule { conds, action: act }]
        };
        for name in sc.names() {
            let Some(nr) = syscall_number(name) else {
                continue;
            };
            highest = highest.max(Some(nr));
            let call = calls.entry(nr).or_default();
            if rules.is_empty() {
                match call.fallback {
                    Some(prev) if prev != act => {
                        return Err(invalid(
                            format!("{field}.names"),
                            format!("{name} already has another unconditional action"),
                        ))
                    }
                    _ => call.fallback = Some(act),
                }
            } else {
                call.rules.extend(rules.iter().cloned());
            }
        }
    }
    let newer_than = match (profile.default_action(), highest) {
        (LinuxSeccompAction::ScmpActErrno, Some(h)) => Some((h, bpf::ret_errno(libc::ENOSYS))),
        _ => None,
    };
    Ok(Translated {
        audit_arch,
        nr_limit,
        default_action,
        other_arches: arches
            .iter()
            .filter(|a| !is_native(**a, audit_arch))
            // x32 shares x86_64's AUDIT_ARCH (its numbers carry bit 30:
            // `nr_limit`); the others' enum values are their AUDIT_ARCH.
            .filter(|a| **a != Arch::ScmpArchX32)
            .map(|a| *a as u32)
            .collect(),
        newer_than,
        calls,
    })
}

/// Whether `profile` can be translated and compiled (validation, before
/// any side effect).
pub fn check(profile: &LinuxSeccomp) -> Result<(), OciSeccompError> {
    program(&translate(profile)?)?;
    Ok(())
}

/// Instructions of one condition: falls through when it holds, jumps to
/// the rule's end (patched by the caller: the indices returned, and
/// whether each is a `jt` or a `jf`) when it does not.
fn cond_block(c: &Cond) -> (Vec<sock_filter>, Vec<(usize, bool)>) {
    use LinuxSeccompOperator as Op;
    let (hi, lo) = ((c.value >> 32) as u32, c.value as u32);
    let ld_hi = stmt(BPF_LD_W_ABS, bpf::off_arg_hi(c.arg));
    let ld_lo = stmt(BPF_LD_W_ABS, bpf::off_arg_lo(c.arg));
    // `fail` marks which half of a jump goes to the rule's end: true = jt.
    match c.op {
        Op::ScmpCmpEq => (
            vec![
                ld_hi,
                jump(BPF_JMP_JEQ_K, hi, 0, 0),
                ld_lo,
                jump(BPF_JMP_JEQ_K, lo, 0, 0),
            ],
            vec![(1, false), (3, false)],
        ),
        Op::ScmpCmpNe => (
            // High halves differ: holds (skip the low compare).
            vec![
                ld_hi,
                jump(BPF_JMP_JEQ_K, hi, 0, 2),
                ld_lo,
                jump(BPF_JMP_JEQ_K, lo, 0, 0),
            ],
            vec![(3, true)],
        ),
        Op::ScmpCmpGt | Op::ScmpCmpGe => {
            let last = if c.op == Op::ScmpCmpGt {
                BPF_JMP_JGT_K
            } else {
                BPF_JMP_JGE_K
            };
            (
                // hi > H: holds; hi < H: fails; equal: compare the low half.
                vec![
                    ld_hi,
                    jump(BPF_JMP_JGT_K, hi, 3, 0),
                    jump(BPF_JMP_JEQ_K, hi, 0, 0),
                    ld_lo,
                    jump(last, lo, 0, 0),
                ],
                vec![(2, false), (4, false)],
            )
        }
        Op::ScmpCmpLt | Op::ScmpCmpLe => {
            // a < v is !(a >= v); a <= v is !(a > v).
            let last = if c.op == Op::ScmpCmpLt {
                BPF_JMP_JGE_K
            } else {
                BPF_JMP_JGT_K
            };
            (
                vec![
                    ld_hi,
                    jump(BPF_JMP_JGT_K, hi, 0, 0),
                    jump(BPF_JMP_JEQ_K, hi, 0, 2),
                    ld_lo,
                    jump(last, lo, 0, 0),
                ],
                vec![(1, true), (4, true)],
            )
        }
        Op::ScmpCmpMaskedEq => {
            let (vhi, vlo) = ((c.value_two >> 32) as u32, c.value_two as u32);
            (
                vec![
                    ld_hi,
                    stmt(BPF_ALU_AND_K, hi),
                    jump(BPF_JMP_JEQ_K, vhi, 0, 0),
                    ld_lo,
                    stmt(BPF_ALU_AND_K, lo),
                    jump(BPF_JMP_JEQ_K, vlo, 0, 0),
                ],
                vec![(2, false), (5, false)],
            )
        }
    }
}

/// The instructions deciding one syscall with rules: each rule's conditions
/// then its action; past the last rule, `fallback`.
fn call_block(call: &Call, fallback: u32) -> Result<Vec<sock_filter>, TooLarge> {
    let mut out = Vec::new();
    for rule in &call.rules {
        let start = out.len();
        let mut fails = Vec::new();
        for c in &rule.conds {
            let (code, f) = cond_block(c);
            let base = out.len();
            fails.extend(f.into_iter().map(|(i, jt)| (base + i, jt)));
            out.extend(code);
        }
        out.push(stmt(BPF_RET_K, rule.action));
        // A failed condition goes to the next rule (right after the return).
        let next = out.len();
        for (i, jt) in fails {
            let off = small(next - i - 1, "seccomp rule")?;
            if jt {
                out[i].jt = off;
            } else {
                out[i].jf = off;
            }
        }
        debug_assert!(out.len() > start);
    }
    out.push(stmt(BPF_RET_K, call.fallback.unwrap_or(fallback)));
    Ok(out)
}

/// Compiles a translated profile into one program.
pub(super) fn program(t: &Translated) -> Result<Vec<sock_filter>, TooLarge> {
    // Another architecture the profile lists gets the default action (we
    // have its numbers in no table); an unlisted one is killed, as
    // libseccomp's bad-architecture action does.
    let n = t.other_arches.len();
    let mut out = vec![
        stmt(BPF_LD_W_ABS, OFF_ARCH),
        jump(
            BPF_JMP_JEQ_K,
            t.audit_arch,
            small(n + 2, "architectures")?,
            0,
        ),
    ];
    for (i, a) in t.other_arches.iter().enumerate() {
        out.push(jump(BPF_JMP_JEQ_K, *a, small(n - i, "architectures")?, 0));
    }
    out.push(stmt(BPF_RET_K, bpf::RET_KILL_PROCESS));
    out.push(stmt(BPF_RET_K, t.default_action));
    out.push(stmt(BPF_LD_W_ABS, OFF_NR));
    if t.nr_limit != u32::MAX {
        out.push(jump(BPF_JMP_JGE_K, t.nr_limit, 0, 1));
        out.push(stmt(BPF_RET_K, t.default_action));
    }
    if let Some((max, ret)) = t.newer_than {
        out.push(jump(BPF_JMP_JGT_K, max, 0, 1));
        out.push(stmt(BPF_RET_K, ret));
    }
    for (nr, call) in t.calls.iter().filter(|(_, c)| !c.rules.is_empty()) {
        let block = call_block(call, t.default_action)?;
        match u8::try_from(block.len()) {
            Ok(skip) => out.push(jump(BPF_JMP_JEQ_K, *nr, 0, skip)),
            Err(_) => {
                out.push(jump(BPF_JMP_JEQ_K, *nr, 1, 0));
                out.push(stmt(BPF_JMP_JA, block.len() as u32));
            }
        }
        out.extend(block);
    }
    // The unconditional calls: regions of equal action over the numbers
    // (gaps take the default action).
    let mut bounds = Vec::new();
    let mut actions = vec![t.default_action];
    let mut next = 0u32;
    for (nr, call) in t.calls.iter().filter(|(_, c)| c.rules.is_empty()) {
        let act = call.fallback.unwrap_or(t.default_action);
        if *nr != next && actions.last() != Some(&t.default_action) {
            bounds.push(next);
            actions.push(t.default_action);
        }
        if actions.last() != Some(&act) {
            bounds.push(*nr);
            actions.push(act);
        }
        next = nr.saturating_add(1);
    }
    if actions.last() != Some(&t.default_action) {
        bounds.push(next);
        actions.push(t.default_action);
    }
    bpf::search_regions(&bounds, &actions, &mut out);
    if out.len() > 4096 {
        return Err(TooLarge(format!("{} instructions (limit 4096)", out.len())));
    }
    Ok(out)
}

/// runtimed's own invariants, stacked after an engine's profile as a second
/// program: the argument rules in `special` (RLIMIT_CORE kept, no
/// setuid/setgid modes: see [`super::Purpose`]), everything else allowed so
/// the profile's verdict stands (the kernel keeps the most severe action of
/// all programs, seccomp(2)). x32 numbers fail with EPERM: the rules match
/// native numbers only, and nothing uses the x32 ABI.
pub(super) fn guard_program(
    audit_arch: u32,
    nr_limit: u32,
    special: &[(u32, bpf::Special)],
) -> Result<Vec<sock_filter>, TooLarge> {
    let mut out = vec![
        stmt(BPF_LD_W_ABS, OFF_ARCH),
        // Other architectures: the profile's program decides.
        jump(BPF_JMP_JEQ_K, audit_arch, 1, 0),
        stmt(BPF_RET_K, bpf::RET_ALLOW),
        stmt(BPF_LD_W_ABS, OFF_NR),
    ];
    if nr_limit != u32::MAX {
        out.push(jump(BPF_JMP_JGE_K, nr_limit, 0, 1));
        out.push(stmt(BPF_RET_K, bpf::ret_errno(libc::EPERM)));
    }
    for (nr, sp) in special {
        let block = match sp {
            bpf::Special::Errno(e) => vec![stmt(BPF_RET_K, bpf::ret_errno(*e))],
            bpf::Special::Rule { rule, errno } => bpf::rule_block(rule, *errno)?,
        };
        out.push(jump(
            BPF_JMP_JEQ_K,
            *nr,
            0,
            small(block.len(), "guard rule")?,
        ));
        out.extend(block);
    }
    out.push(stmt(BPF_RET_K, bpf::RET_ALLOW));
    Ok(out)
}

#[cfg(test)]
mod tests;
