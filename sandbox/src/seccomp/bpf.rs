//! A small classic-BPF generator for our seccomp policies.
//!
//! seccompiler emits one linear compare chain per syscall (1,561
//! instructions for the default profile, in 2–3 stacked programs). The
//! kernel converts and JIT-compiles every instruction at load time, which
//! made loading the filter cost about as much as creating the network
//! namespace. This generator emits one program per profile: the few
//! syscalls with argument rules first, then a binary search over the sorted
//! boundaries of the allowed syscall-number ranges, so the program has
//! ~2 instructions per *range* (not per syscall) and any syscall is decided
//! after ~9 comparisons.

use std::collections::BTreeSet;

use seccompiler::sock_filter;

// linux/bpf_common.h, linux/filter.h
/// BPF_LD | BPF_W | BPF_ABS
pub(super) const BPF_LD_W_ABS: u16 = 0x20;
/// BPF_ALU | BPF_AND | BPF_K
pub(super) const BPF_ALU_AND_K: u16 = 0x04 | 0x50;
pub(super) const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10;
pub(super) const BPF_JMP_JGE_K: u16 = 0x05 | 0x30;
pub(super) const BPF_JMP_JGT_K: u16 = 0x05 | 0x20;
const BPF_JMP_JSET_K: u16 = 0x05 | 0x40;
pub(super) const BPF_JMP_JA: u16 = 0x05;
pub(super) const BPF_RET_K: u16 = 0x06;

// linux/seccomp.h
pub const RET_KILL_PROCESS: u32 = 0x8000_0000;
pub const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ERRNO: u32 = 0x0005_0000;

/// `SECCOMP_RET_ERRNO` with `errno`.
pub fn ret_errno(errno: i32) -> u32 {
    RET_ERRNO | (errno as u32 & 0xffff)
}

// struct seccomp_data offsets.
pub(super) const OFF_NR: u32 = 0;
pub(super) const OFF_ARCH: u32 = 4;
/// Low 32 bits of argument `i` (little-endian). Every rule we write is on a
/// C `int`/`unsigned int` argument or on flags that live in the low word,
/// except [`ArgCond::NonZero`], which reads both halves.
pub(super) fn off_arg_lo(i: u8) -> u32 {
    16 + 8 * u32::from(i)
}

/// High 32 bits of argument `i`.
pub(super) fn off_arg_hi(i: u8) -> u32 {
    off_arg_lo(i) + 4
}

/// One condition of an [`ArgRule::DenyWhenAll`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgCond {
    /// `arg & mask != 0` on the low 32 bits.
    AnyBit { arg: u8, mask: u32 },
    /// The low 32 bits equal `value`.
    Equals { arg: u8, value: u32 },
    /// The whole 64-bit argument is not 0 (a non-NULL pointer: a pointer's
    /// low half alone may be 0).
    NonZero { arg: u8 },
}

/// A rule on one argument's low 32 bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgRule {
    /// Allowed when `arg & mask == 0`.
    MaskClear { arg: u8, mask: u32 },
    /// Allowed when the argument is one of `values`.
    OneOf { arg: u8, values: Vec<u32> },
    /// Allowed unless the argument is one of `values`.
    NoneOf { arg: u8, values: Vec<u32> },
    /// Allowed unless every condition holds (e.g. `O_CREAT` in the flags
    /// and a setuid bit in the mode).
    DenyWhenAll(Vec<ArgCond>),
}

/// What one syscall number does beyond plain allow/deny.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Special {
    /// Always fails with this errno (clone3 → ENOSYS).
    Errno(i32),
    /// Allowed when the rule holds, otherwise fails with `errno`.
    Rule { rule: ArgRule, errno: i32 },
}

/// A whole policy for one architecture.
#[derive(Clone, Debug)]
pub struct Policy {
    /// `AUDIT_ARCH_*` of the target; other architectures are killed.
    pub audit_arch: u32,
    /// Numbers at or above this fail with the default errno (the x32 ABI's
    /// bit 30 on x86_64); `u32::MAX` for none.
    pub nr_limit: u32,
    /// Numbers above the highest one the policy knows fail with this errno
    /// (ENOSYS: newer than our table, so libc falls back as on an older
    /// kernel; runc does the same).
    pub newer_than: Option<(u32, i32)>,
    /// Allowed without conditions.
    pub allowed: BTreeSet<u32>,
    /// Syscalls with an errno or an argument rule, checked first.
    pub special: Vec<(u32, Special)>,
    /// errno of everything else.
    pub default_errno: i32,
}

pub(super) fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

pub(super) fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Error for a program the classic BPF limits cannot hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("seccomp program too large: {0}")]
pub struct TooLarge(pub String);

pub(super) fn small(n: usize, what: &str) -> Result<u8, TooLarge> {
    u8::try_from(n).map_err(|_| TooLarge(format!("{what} needs a jump of {n}")))
}

/// Instructions deciding a rule on an argument (A holds anything; the block
/// loads the argument and ends in a return).
pub(super) fn rule_block(rule: &ArgRule, errno: i32) -> Result<Vec<sock_filter>, TooLarge> {
    let deny = ret_errno(errno);
    let mut out = Vec::new();
    match rule {
        ArgRule::MaskClear { arg, mask } => {
            out.push(stmt(BPF_LD_W_ABS, off_arg_lo(*arg)));
            out.push(jump(BPF_JMP_JSET_K, *mask, 1, 0));
            out.push(stmt(BPF_RET_K, RET_ALLOW));
            out.push(stmt(BPF_RET_K, deny));
        }
        ArgRule::OneOf { arg, values } | ArgRule::NoneOf { arg, values } => {
            let one_of = matches!(rule, ArgRule::OneOf { .. });
            out.push(stmt(BPF_LD_W_ABS, off_arg_lo(*arg)));
            let n = values.len();
            for (i, v) in values.iter().enumerate() {
                // On a match jump over the remaining compares to the first
                // return (allow for OneOf, deny for NoneOf).
                out.push(jump(
                    BPF_JMP_JEQ_K,
                    *v,
                    small(n - i - 1, "argument list")?,
                    0,
                ));
            }
            let (hit, miss) = if one_of {
                (RET_ALLOW, deny)
            } else {
                (deny, RET_ALLOW)
            };
            // After the last compare falls through: `miss`; a match lands on
            // the instruction after the compares... so put `hit` last and
            // jump one further.
            out.push(stmt(BPF_RET_K, miss));
            out.push(stmt(BPF_RET_K, hit));
            // Fix the jumps: a match must skip `miss` as well.
            for ins in out.iter_mut().filter(|i| i.code == BPF_JMP_JEQ_K) {
                ins.jt = ins
                    .jt
                    .checked_add(1)
                    .ok_or_else(|| TooLarge("argument list".into()))?;
            }
        }
        ArgRule::DenyWhenAll(conds) => {
            // Each condition falls through when it holds and jumps to the
            // final ALLOW when it does not; past the last one: deny.
            let mut to_allow: Vec<(usize, bool)> = Vec::new();
            for cond in conds {
                match *cond {
                    ArgCond::AnyBit { arg, mask } => {
                        out.push(stmt(BPF_LD_W_ABS, off_arg_lo(arg)));
                        to_allow.push((out.len(), false));
                        out.push(jump(BPF_JMP_JSET_K, mask, 0, 0));
                    }
                    ArgCond::Equals { arg, value } => {
                        out.push(stmt(BPF_LD_W_ABS, off_arg_lo(arg)));
                        to_allow.push((out.len(), false));
                        out.push(jump(BPF_JMP_JEQ_K, value, 0, 0));
                    }
                    ArgCond::NonZero { arg } => {
                        // Low half non-zero: holds, skip the high half.
                        out.push(stmt(BPF_LD_W_ABS, off_arg_lo(arg)));
                        out.push(jump(BPF_JMP_JEQ_K, 0, 0, 2));
                        out.push(stmt(BPF_LD_W_ABS, off_arg_hi(arg)));
                        to_allow.push((out.len(), true));
                        out.push(jump(BPF_JMP_JEQ_K, 0, 0, 0));
                    }
                }
            }
            out.push(stmt(BPF_RET_K, deny));
            let allow = out.len();
            out.push(stmt(BPF_RET_K, RET_ALLOW));
            for (i, on_true) in to_allow {
                let off = small(allow - i - 1, "argument conditions")?;
                if on_true {
                    out[i].jt = off;
                } else {
                    out[i].jf = off;
                }
            }
        }
    }
    Ok(out)
}

/// Binary search over `bounds` (sorted range boundaries): a number is
/// allowed when an odd count of boundaries is ≤ it.
fn search(bounds: &[u32], deny: u32, out: &mut Vec<sock_filter>) {
    let actions: Vec<u32> = (0..=bounds.len())
        .map(|i| if i % 2 == 1 { RET_ALLOW } else { deny })
        .collect();
    search_regions(bounds, &actions, out);
}

/// Binary search over the regions `bounds` (sorted, distinct) cut the
/// numbers into: a number below `bounds[0]` gets `actions[0]`, one in
/// `bounds[i-1]..bounds[i]` gets `actions[i]`, one at or above the last
/// bound the last action (`actions.len() == bounds.len() + 1`).
pub(super) fn search_regions(bounds: &[u32], actions: &[u32], out: &mut Vec<sock_filter>) {
    search_between(bounds, actions, 0, bounds.len(), out);
}

/// [`search_regions`] where the count of boundaries ≤ the number is known
/// to lie in `lo..=hi`.
fn search_between(
    bounds: &[u32],
    actions: &[u32],
    lo: usize,
    hi: usize,
    out: &mut Vec<sock_filter>,
) {
    if lo == hi {
        out.push(stmt(BPF_RET_K, actions[lo]));
        return;
    }
    let m = (lo + hi).div_ceil(2);
    // count ≥ m  ⇔  nr ≥ bounds[m - 1]
    let mut left = Vec::new();
    search_between(bounds, actions, lo, m - 1, &mut left);
    match u8::try_from(left.len()) {
        Ok(skip) => out.push(jump(BPF_JMP_JGE_K, bounds[m - 1], skip, 0)),
        Err(_) => {
            // Too far for an 8-bit offset: jump over an unconditional `ja`.
            out.push(jump(BPF_JMP_JGE_K, bounds[m - 1], 0, 1));
            out.push(stmt(BPF_JMP_JA, left.len() as u32));
        }
    }
    out.extend(left);
    search_between(bounds, actions, m, hi, out);
}

/// Compiles `policy` into one program.
pub fn compile(policy: &Policy) -> Result<Vec<sock_filter>, TooLarge> {
    let deny = ret_errno(policy.default_errno);
    let mut out = vec![
        stmt(BPF_LD_W_ABS, OFF_ARCH),
        jump(BPF_JMP_JEQ_K, policy.audit_arch, 1, 0),
        stmt(BPF_RET_K, RET_KILL_PROCESS),
        stmt(BPF_LD_W_ABS, OFF_NR),
    ];
    if policy.nr_limit != u32::MAX {
        out.push(jump(BPF_JMP_JGE_K, policy.nr_limit, 0, 1));
        out.push(stmt(BPF_RET_K, deny));
    }
    if let Some((max, errno)) = policy.newer_than {
        out.push(jump(BPF_JMP_JGT_K, max, 0, 1));
        out.push(stmt(BPF_RET_K, ret_errno(errno)));
    }
    for (nr, special) in &policy.special {
        let block = match special {
            Special::Errno(e) => vec![stmt(BPF_RET_K, ret_errno(*e))],
            Special::Rule { rule, errno } => rule_block(rule, *errno)?,
        };
        out.push(jump(
            BPF_JMP_JEQ_K,
            *nr,
            0,
            small(block.len(), "rule block")?,
        ));
        out.extend(block);
    }
    // Range boundaries of the allowed set (specials excluded).
    let specials: BTreeSet<u32> = policy.special.iter().map(|(nr, _)| *nr).collect();
    let mut bounds = Vec::new();
    let mut prev: Option<u32> = None;
    for &nr in policy.allowed.iter().filter(|nr| !specials.contains(nr)) {
        match prev {
            Some(p) if p + 1 == nr => {}
            _ => {
                if let Some(p) = prev {
                    bounds.push(p + 1);
                }
                bounds.push(nr);
            }
        }
        prev = Some(nr);
    }
    if let Some(p) = prev {
        bounds.push(p + 1);
    }
    search(&bounds, deny, &mut out);
    if out.len() > 4096 {
        return Err(TooLarge(format!("{} instructions (limit 4096)", out.len())));
    }
    Ok(out)
}

#[cfg(test)]
/// Runs `prog` the way the kernel does for a syscall (tests and checks):
/// returns the action value.
pub fn evaluate(prog: &[sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> Option<u32> {
    let load = |off: u32| -> Option<u32> {
        match off {
            OFF_NR => Some(nr),
            OFF_ARCH => Some(arch),
            o if (16..64).contains(&o) => {
                let i = ((o - 16) / 8) as usize;
                Some(if (o - 16) % 8 == 0 {
                    args[i] as u32
                } else {
                    (args[i] >> 32) as u32
                })
            }
            _ => None,
        }
    };
    let mut a: u32 = 0;
    let mut pc = 0usize;
    while let Some(ins) = prog.get(pc) {
        pc += 1;
        match ins.code {
            BPF_LD_W_ABS => a = load(ins.k)?,
            BPF_ALU_AND_K => a &= ins.k,
            BPF_RET_K => return Some(ins.k),
            BPF_JMP_JA => pc += ins.k as usize,
            BPF_JMP_JEQ_K | BPF_JMP_JGE_K | BPF_JMP_JGT_K | BPF_JMP_JSET_K => {
                let t = match ins.code {
                    BPF_JMP_JEQ_K => a == ins.k,
                    BPF_JMP_JGE_K => a >= ins.k,
                    BPF_JMP_JGT_K => a > ins.k,
                    _ => a & ins.k != 0,
                };
                pc += usize::from(if t { ins.jt } else { ins.jf });
            }
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARCH: u32 = 0xc000_003e;

    fn policy() -> Policy {
        Policy {
            audit_arch: ARCH,
            nr_limit: 0x4000_0000,
            newer_than: Some((500, 38)),
            allowed: [0, 1, 2, 3, 7, 8, 20, 56, 100, 101, 102]
                .into_iter()
                .collect(),
            special: vec![
                (
                    56,
                    Special::Rule {
                        rule: ArgRule::MaskClear {
                            arg: 0,
                            mask: 0x7e02_0000,
                        },
                        errno: 1,
                    },
                ),
                (
                    16,
                    Special::Rule {
                        rule: ArgRule::NoneOf {
                            arg: 1,
                            values: vec![0x5412, 0x541c],
                        },
                        errno: 1,
                    },
                ),
                (
                    41,
                    Special::Rule {
                        rule: ArgRule::OneOf {
                            arg: 0,
                            values: vec![1],
                        },
                        errno: 1,
                    },
                ),
                (435, Special::Errno(38)),
            ],
            default_errno: 1,
        }
    }

    #[test]
    fn decisions_match_the_policy() {
        let p = policy();
        let prog = compile(&p).unwrap();
        let eperm = ret_errno(1);
        for nr in 0..600u32 {
            let want = match nr {
                56 | 16 | 41 | 435 => continue,
                n if n > 500 => ret_errno(38),
                n if p.allowed.contains(&n) => RET_ALLOW,
                _ => eperm,
            };
            assert_eq!(evaluate(&prog, ARCH, nr, [0; 6]), Some(want), "nr {nr}");
        }
        assert_eq!(
            evaluate(&prog, ARCH, 0x4000_0027, [0; 6]),
            Some(eperm),
            "x32"
        );
        assert_eq!(
            evaluate(&prog, 0x4000_0003, 0, [0; 6]),
            Some(RET_KILL_PROCESS),
            "i386"
        );
        assert_eq!(evaluate(&prog, ARCH, 435, [0; 6]), Some(ret_errno(38)));
        // clone: namespace flags refused, thread flags fine
        assert_eq!(
            evaluate(&prog, ARCH, 56, [0x003d_0f00, 0, 0, 0, 0, 0]),
            Some(RET_ALLOW)
        );
        assert_eq!(
            evaluate(&prog, ARCH, 56, [0x1000_0000, 0, 0, 0, 0, 0]),
            Some(eperm)
        );
        // ioctl: TIOCSTI refused, TIOCGWINSZ fine, upper bits ignored
        assert_eq!(
            evaluate(&prog, ARCH, 16, [0, 0x5412, 0, 0, 0, 0]),
            Some(eperm)
        );
        assert_eq!(
            evaluate(&prog, ARCH, 16, [0, 0x5413, 0, 0, 0, 0]),
            Some(RET_ALLOW)
        );
        assert_eq!(
            evaluate(&prog, ARCH, 16, [0, 0x1_0000_5412, 0, 0, 0, 0]),
            Some(eperm)
        );
        // socket: only family 1
        assert_eq!(
            evaluate(&prog, ARCH, 41, [1, 0, 0, 0, 0, 0]),
            Some(RET_ALLOW)
        );
        assert_eq!(evaluate(&prog, ARCH, 41, [2, 0, 0, 0, 0, 0]), Some(eperm));
    }

    #[test]
    fn deny_when_all_needs_every_condition() {
        // open-like: deny when flags have 0o100 and mode has 0o6000;
        // prlimit-like: deny when arg 1 is 4 and arg 2 (64 bits) is not 0.
        let p = Policy {
            audit_arch: ARCH,
            nr_limit: u32::MAX,
            newer_than: None,
            allowed: [2, 302].into_iter().collect(),
            special: vec![
                (
                    2,
                    Special::Rule {
                        rule: ArgRule::DenyWhenAll(vec![
                            ArgCond::AnyBit {
                                arg: 1,
                                mask: 0o100,
                            },
                            ArgCond::AnyBit {
                                arg: 2,
                                mask: 0o6000,
                            },
                        ]),
                        errno: 1,
                    },
                ),
                (
                    302,
                    Special::Rule {
                        rule: ArgRule::DenyWhenAll(vec![
                            ArgCond::Equals { arg: 1, value: 4 },
                            ArgCond::NonZero { arg: 2 },
                        ]),
                        errno: 1,
                    },
                ),
            ],
            default_errno: 1,
        };
        let prog = compile(&p).unwrap();
        let deny = Some(ret_errno(1));
        let allow = Some(RET_ALLOW);
        let open = |flags: u64, mode: u64| evaluate(&prog, ARCH, 2, [0, flags, mode, 0, 0, 0]);
        assert_eq!(open(0o100, 0o4755), deny);
        assert_eq!(open(0o100 | 0o2, 0o2755), deny);
        assert_eq!(open(0o100, 0o755), allow);
        assert_eq!(open(0, 0o4755), allow, "no O_CREAT: the mode is ignored");
        assert_eq!(open(0o100, 0o1777), allow, "sticky is fine");
        // Upper halves do not hide the bits (the kernel reads the low ones).
        assert_eq!(open(0xffff_0000_0000_0040, 0x1_0000_0800), deny);
        let prlimit = |res: u64, new: u64| evaluate(&prog, ARCH, 302, [0, res, new, 0, 0, 0]);
        assert_eq!(prlimit(4, 0x7ffd_1234_5678), deny);
        assert_eq!(prlimit(4, 0x7f00_0000_0000), deny, "low half 0, high not");
        assert_eq!(prlimit(4, 0x1234), deny, "high half 0, low not");
        assert_eq!(prlimit(4, 0), allow, "NULL: only reads the limit");
        assert_eq!(prlimit(7, 0x7ffd_1234_5678), allow, "another resource");
        assert_eq!(prlimit(0x1_0000_0004, 0x10), deny, "upper half of an int");
    }

    #[test]
    fn long_jumps_are_handled() {
        // Every other number allowed: ~600 ranges, left subtrees over 255.
        let p = Policy {
            audit_arch: ARCH,
            nr_limit: u32::MAX,
            newer_than: None,
            allowed: (0..1200u32).filter(|n| n % 2 == 0).collect(),
            special: vec![],
            default_errno: 1,
        };
        let prog = compile(&p).unwrap();
        assert!(prog.iter().any(|i| i.code == BPF_JMP_JA));
        for nr in 0..1300u32 {
            let want = if nr < 1200 && nr % 2 == 0 {
                RET_ALLOW
            } else {
                ret_errno(1)
            };
            assert_eq!(evaluate(&prog, ARCH, nr, [0; 6]), Some(want), "nr {nr}");
        }
    }
}
