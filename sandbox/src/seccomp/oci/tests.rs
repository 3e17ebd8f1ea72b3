//! The translation of OCI profiles, checked by running the programs
//! through the BPF evaluator (`bpf::evaluate`) the way the kernel would.

use super::*;
use crate::seccomp::bpf::evaluate;

const X86_64: u32 = 0xc000_003e;
const I386: u32 = 0x4000_0003;
const AARCH64: u32 = 0xc000_00b7;

fn nr(name: &str) -> u32 {
    syscall_number(name).unwrap_or_else(|| panic!("{name} not in the table"))
}

fn profile(json: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(json).unwrap()
}

/// A profile with the shape of Docker's default (moby/profiles
/// seccomp/default.json, as dockerd resolves it into config.json for a
/// container without extra capabilities): an errno default, three
/// architectures, one big allow rule, argument rules on personality,
/// clone and socket, clone3 with ENOSYS. Written here, not copied.
pub(crate) fn docker_shaped() -> serde_json::Value {
    serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["read", "write", "openat", "close", "exit_group", "ptrace",
                       "getpid", "mmap", "no_such_call_anywhere", "arm_fadvise64_64"],
             "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 131072, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 131080, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 4294967295u64, "op": "SCMP_CMP_EQ"}]},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]}
        ]
    })
}

fn compiled(json: serde_json::Value) -> Vec<sock_filter> {
    program(&translate(&profile(json)).unwrap()).unwrap()
}

fn run(prog: &[sock_filter], name: &str, args: [u64; 6]) -> u32 {
    evaluate(prog, X86_64, nr(name), args).unwrap()
}

#[test]
fn a_docker_shaped_profile_allows_and_denies_as_docker_does() {
    let prog = compiled(docker_shaped());
    let eperm = bpf::ret_errno(libc::EPERM);
    let allow = bpf::RET_ALLOW;
    let none = [0u64; 6];
    for name in ["read", "write", "openat", "ptrace", "getpid"] {
        assert_eq!(run(&prog, name, none), allow, "{name}");
    }
    for name in [
        "mount",
        "unshare",
        "keyctl",
        "add_key",
        "setns",
        "bpf",
        "kexec_load",
    ] {
        assert_eq!(run(&prog, name, none), eperm, "{name}");
    }
    // personality: the listed values only (ADDR_NO_RANDOMIZE is not).
    for (v, want) in [
        (0, allow),
        (8, allow),
        (0x2_0000, allow),
        (0x2_0008, allow),
        (0xffff_ffff, allow),
        (0x0040_0000, eperm),
        (0x1_0000_0000, eperm),
    ] {
        assert_eq!(
            run(&prog, "personality", [v, 0, 0, 0, 0, 0]),
            want,
            "{v:#x}"
        );
    }
    // clone: threads and fork, no namespace flags.
    let sigchld = libc::SIGCHLD as u64;
    assert_eq!(run(&prog, "clone", [sigchld, 0, 0, 0, 0, 0]), allow);
    assert_eq!(run(&prog, "clone", [0x003d_0f00, 0, 0, 0, 0, 0]), allow);
    for flag in [libc::CLONE_NEWUSER, libc::CLONE_NEWNS, libc::CLONE_NEWNET] {
        let flags = sigchld | flag as u64;
        assert_eq!(
            run(&prog, "clone", [flags, 0, 0, 0, 0, 0]),
            eperm,
            "{flag:#x}"
        );
    }
    assert_eq!(run(&prog, "clone3", none), bpf::ret_errno(libc::ENOSYS));
    // socket: every family but AF_VSOCK.
    assert_eq!(
        run(&prog, "socket", [libc::AF_INET as u64, 1, 0, 0, 0, 0]),
        allow
    );
    assert_eq!(run(&prog, "socket", [40, 1, 0, 0, 0, 0]), eperm);
    // Newer than anything the profile names: ENOSYS, libc falls back.
    let highest = nr("clone3").max(nr("personality"));
    assert_eq!(
        evaluate(&prog, X86_64, highest + 30, none),
        Some(bpf::ret_errno(libc::ENOSYS))
    );
    // x32 numbers and the listed i386 get the default action; an unlisted
    // architecture is killed.
    assert_eq!(evaluate(&prog, X86_64, 0x4000_0000, none), Some(eperm));
    assert_eq!(evaluate(&prog, I386, 3, none), Some(eperm));
    assert_eq!(
        evaluate(&prog, AARCH64, 63, none),
        Some(bpf::RET_KILL_PROCESS)
    );
}

#[test]
fn every_comparison_matches_its_64_bit_meaning() {
    use LinuxSeccompOperator as Op;
    let ops = [
        ("SCMP_CMP_EQ", Op::ScmpCmpEq),
        ("SCMP_CMP_NE", Op::ScmpCmpNe),
        ("SCMP_CMP_LT", Op::ScmpCmpLt),
        ("SCMP_CMP_LE", Op::ScmpCmpLe),
        ("SCMP_CMP_GT", Op::ScmpCmpGt),
        ("SCMP_CMP_GE", Op::ScmpCmpGe),
    ];
    let points: [u64; 9] = [
        0,
        1,
        0xffff_ffff,
        0x1_0000_0000,
        0x1_0000_0001,
        0x2_0000_0000,
        0x1_ffff_ffff,
        u64::MAX - 1,
        u64::MAX,
    ];
    for (name, op) in ops {
        for v in points {
            let prog = compiled(serde_json::json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                              "args": [{"index": 2, "value": v, "op": name}]}]
            }));
            for a in points {
                let holds = match op {
                    Op::ScmpCmpEq => a == v,
                    Op::ScmpCmpNe => a != v,
                    Op::ScmpCmpLt => a < v,
                    Op::ScmpCmpLe => a <= v,
                    Op::ScmpCmpGt => a > v,
                    Op::ScmpCmpGe => a >= v,
                    Op::ScmpCmpMaskedEq => unreachable!(),
                };
                let want = if holds {
                    bpf::RET_ALLOW
                } else {
                    bpf::ret_errno(libc::EPERM)
                };
                assert_eq!(
                    run(&prog, "read", [0, 0, a, 0, 0, 0]),
                    want,
                    "{a:#x} {name} {v:#x}"
                );
            }
        }
    }
    // Masked: arg & mask == valueTwo, on both halves.
    let prog = compiled(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 1, "value": 0xff00_0000_00f0u64, "valueTwo": 0x1200_0000_0030u64,
                                "op": "SCMP_CMP_MASKED_EQ"}]}]
    }));
    for (a, ok) in [
        (0x1200_0000_0030u64, true),
        (0x12ff_ffff_ff3fu64, true),
        (0x1300_0000_0030u64, false),
        (0x1200_0000_0031u64 & !0xf0 | 0x40, false),
    ] {
        let want = if ok {
            bpf::RET_ALLOW
        } else {
            bpf::ret_errno(libc::EPERM)
        };
        assert_eq!(run(&prog, "read", [0, a, 0, 0, 0, 0]), want, "{a:#x}");
    }
}

#[test]
fn rules_combine_as_runc_combines_them() {
    // Two arguments in one rule: both must hold.
    let prog = compiled(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 13,
        "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                      {"index": 2, "value": 5, "op": "SCMP_CMP_LE"}]},
            {"names": ["write"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                      {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]},
            {"names": ["close"], "action": "SCMP_ACT_KILL_PROCESS"},
            {"names": ["getpid"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
            {"names": ["getppid"], "action": "SCMP_ACT_LOG"},
            {"names": ["gettid"], "action": "SCMP_ACT_KILL"},
            {"names": ["getuid"], "action": "SCMP_ACT_TRAP"},
            {"names": ["getgid"], "action": "SCMP_ACT_ERRNO"}
        ]
    }));
    let deny = bpf::ret_errno(libc::EACCES);
    assert_eq!(run(&prog, "read", [1, 0, 5, 0, 0, 0]), bpf::RET_ALLOW);
    assert_eq!(run(&prog, "read", [1, 0, 6, 0, 0, 0]), deny);
    assert_eq!(run(&prog, "read", [2, 0, 5, 0, 0, 0]), deny);
    // One argument compared twice: either comparison allows.
    assert_eq!(run(&prog, "write", [1, 0, 0, 0, 0, 0]), bpf::RET_ALLOW);
    assert_eq!(run(&prog, "write", [2, 0, 0, 0, 0, 0]), bpf::RET_ALLOW);
    assert_eq!(run(&prog, "write", [3, 0, 0, 0, 0, 0]), deny);
    let none = [0; 6];
    assert_eq!(run(&prog, "close", none), bpf::RET_KILL_PROCESS);
    assert_eq!(run(&prog, "getpid", none), RET_TRACE | 7);
    assert_eq!(run(&prog, "getppid", none), RET_LOG);
    assert_eq!(run(&prog, "gettid", none), RET_KILL_THREAD);
    assert_eq!(run(&prog, "getuid", none), RET_TRAP);
    // A rule's ERRNO without errnoRet is EPERM (defaultErrnoRet is the
    // default action's).
    assert_eq!(run(&prog, "getgid", none), bpf::ret_errno(libc::EPERM));
    assert_eq!(run(&prog, "mount", none), deny);
}

#[test]
fn what_cannot_be_implemented_is_refused_by_name() {
    let base = |extra: serde_json::Value| {
        let mut p = serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]});
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        translate(&profile(p)).map(|_| ()).unwrap_err().to_string()
    };
    let cases = [
        (
            serde_json::json!({"syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]}),
            "linux.seccomp.syscalls[0].action: not supported",
        ),
        (
            serde_json::json!({"listenerPath": "/run/agent.sock"}),
            "linux.seccomp.listenerPath: not supported",
        ),
        (
            serde_json::json!({"flags": ["SECCOMP_FILTER_FLAG_LOG"]}),
            "linux.seccomp.flags: not supported",
        ),
        (
            serde_json::json!({"architectures": ["SCMP_ARCH_AARCH64"]}),
            "linux.seccomp.architectures: not supported",
        ),
        (
            serde_json::json!({"syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]}),
            "linux.seccomp.syscalls[0].args[0].index: invalid value",
        ),
        (
            serde_json::json!({"syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["read"], "action": "SCMP_ACT_KILL"}]}),
            "linux.seccomp.syscalls[1].names: invalid value",
        ),
        (
            serde_json::json!({"syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                "errnoRet": 70000}]}),
            "linux.seccomp.syscalls[0].errnoRet: invalid value",
        ),
    ];
    for (extra, want) in cases {
        let got = base(extra.clone());
        assert!(got.starts_with(want), "{extra}: {got}");
        assert!(!got.contains('\n'), "one line: {got}");
    }
    // TSYNC is harmless (one thread execs) and accepted.
    let ok = profile(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC"], "architectures": ["SCMP_ARCH_NATIVE"]}));
    assert!(translate(&ok).is_ok());
}

#[test]
fn the_guard_keeps_runtimeds_invariants_and_nothing_else() {
    let f = crate::seccomp::compile_config(
        &profile(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW"})),
        crate::seccomp::Purpose::Run,
    )
    .unwrap();
    assert_eq!(f.profile(), None);
    let guard = &f.stages[0].program;
    println!("guard: {} instructions", guard.len());
    let chmod = nr("fchmodat");
    // fchmodat(dirfd, path, mode): setuid refused, plain modes pass.
    assert_eq!(
        evaluate(guard, X86_64, chmod, [0, 0, 0o4755, 0, 0, 0]),
        Some(bpf::ret_errno(libc::EPERM))
    );
    assert_eq!(
        evaluate(guard, X86_64, chmod, [0, 0, 0o755, 0, 0, 0]),
        Some(bpf::RET_ALLOW)
    );
    assert_eq!(
        evaluate(guard, X86_64, nr("mount"), [0; 6]),
        Some(bpf::RET_ALLOW)
    );
    // Another architecture: the profile's program decides.
    assert_eq!(
        evaluate(guard, I386, 15, [0, 0o4755, 0, 0, 0, 0]),
        Some(bpf::RET_ALLOW)
    );
}

#[test]
fn the_name_table_is_sorted_and_right_where_libc_knows() {
    let t = crate::seccomp::names::X86_64;
    assert!(
        t.windows(2).all(|w| w[0].0 < w[1].0),
        "sorted, no duplicates"
    );
    for (name, n) in [
        ("read", libc::SYS_read),
        ("mount", libc::SYS_mount),
        ("clone3", libc::SYS_clone3),
        ("personality", libc::SYS_personality),
        ("keyctl", libc::SYS_keyctl),
        ("openat2", libc::SYS_openat2),
    ] {
        assert_eq!(syscall_number(name), Some(n as u32), "{name}");
    }
    assert_eq!(syscall_number("fchmodat2"), Some(452));
    assert_eq!(syscall_number("arm_fadvise64_64"), None);
}

/// Docker's own profile, from the config.json a real dockerd wrote
/// (`OCI_CONFIG_JSON=/path/config.json`; not in the repository: it holds
/// Docker's profile and host paths). Prints the program's size.
#[test]
#[ignore = "needs OCI_CONFIG_JSON: a config.json written by dockerd"]
fn dockers_own_profile_translates() {
    let path = std::env::var("OCI_CONFIG_JSON").expect("OCI_CONFIG_JSON");
    let spec: oci_spec::runtime::Spec =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let profile = spec.linux().as_ref().unwrap().seccomp().clone().unwrap();
    let prog = program(&translate(&profile).unwrap()).unwrap();
    println!("docker default profile: {} instructions", prog.len());
    let eperm = bpf::ret_errno(libc::EPERM);
    assert_eq!(run(&prog, "read", [0; 6]), bpf::RET_ALLOW);
    assert_eq!(run(&prog, "mount", [0; 6]), eperm);
    assert_eq!(run(&prog, "keyctl", [0; 6]), eperm);
    assert_eq!(
        run(&prog, "clone", [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0]),
        eperm
    );
    assert_eq!(run(&prog, "clone3", [0; 6]), bpf::ret_errno(libc::ENOSYS));
}

/// Our program for Docker's profile decides every native call as runc's
/// (libseccomp's) program does: `RUNC_BPF` is that program, read from a
/// runc container's process with `PTRACE_SECCOMP_GET_FILTER` (raw
/// `sock_filter`s), `OCI_CONFIG_JSON` the container's config.json.
#[test]
#[ignore = "needs RUNC_BPF and OCI_CONFIG_JSON from a runc container under dockerd"]
fn dockers_profile_decides_as_runcs_program() {
    let raw = std::fs::read(std::env::var("RUNC_BPF").expect("RUNC_BPF")).unwrap();
    let runc: Vec<sock_filter> = raw
        .chunks_exact(8)
        .map(|c| sock_filter {
            code: u16::from_le_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    let path = std::env::var("OCI_CONFIG_JSON").expect("OCI_CONFIG_JSON");
    let spec: oci_spec::runtime::Spec =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let profile = spec.linux().as_ref().unwrap().seccomp().clone().unwrap();
    let ours = program(&translate(&profile).unwrap()).unwrap();
    println!("runc {} instructions, ours {}", runc.len(), ours.len());
    let arg_sets: [[u64; 6]; 6] = [
        [0; 6],
        [libc::SIGCHLD as u64, 0, 0, 0, 0, 0],
        [libc::CLONE_NEWUSER as u64 | 0x11, 0, 0, 0, 0, 0],
        [8, 0, 0, 0, 0, 0],
        [0x0040_0000, 0, 0, 0, 0, 0],
        [0xffff_ffff, 1, 2, 3, 4, 5],
    ];
    let mut differ = Vec::new();
    for nr in 0..=470u32 {
        for args in arg_sets {
            let (r, o) = (
                evaluate(&runc, X86_64, nr, args),
                evaluate(&ours, X86_64, nr, args),
            );
            if r != o {
                differ.push((nr, args[0], r, o));
            }
        }
    }
    assert!(differ.is_empty(), "(nr, arg0, runc, ours): {differ:x?}");
}
