//! Isolation seen from inside (the probe) and from the host: processes,
//! network, files, syscalls, capabilities, identities, /proc, /sys, /dev,
//! file descriptors and environment.
#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::fs;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::Duration;

use runtimed_tests::serde_json::Value;
use runtimed_tests::{
    harness, host_probe_procs, pid_alive, probe_on_host, proc_status_ids, unique, wait_for,
    Harness, ProbeLine, RunOutput, TempDir,
};

/// Runs `probe ARGS` with default options; it must exit 0 and print its line.
fn probe_ok_run(h: &Harness, args: &[&str]) -> (RunOutput, Value) {
    let (out, v) = h.probe(args);
    assert_eq!(
        out.code(),
        0,
        "probe {args:?} did not exit 0{}",
        out.context()
    );
    (out, v)
}

/// The probe attempt must fail inside the sandbox with one of `errnos`.
fn assert_denied(h: &Harness, args: &[&str], errnos: &[&str]) -> Value {
    let (out, v) = probe_ok_run(h, args);
    assert!(
        !v.ok(),
        "{args:?} SUCCEEDED inside the sandbox: {v}{}",
        out.context()
    );
    assert!(
        errnos.contains(&v.errno().as_str()),
        "{args:?} failed with {} but {errnos:?} was expected: {v}",
        v.errno()
    );
    v
}

fn spawn_host_sleep() -> std::process::Child {
    Command::new("sleep")
        .arg("30")
        .stdin(Stdio::null())
        .spawn()
        .expect("spawning a host sleep")
}

// ---- processes ----------------------------------------------------------------

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn host_processes_are_invisible() {
    let h = harness!();
    let mut sleeper = spawn_host_sleep();
    let host_pid = sleeper.id() as i64;
    let (out, v) = probe_ok_run(&h, &["ps"]);
    let _ = sleeper.kill();
    let _ = sleeper.wait();

    assert!(v.ok(), "ps failed: {v}");
    let procs = v["procs"].as_array().expect("procs list");
    let pids: Vec<i64> = procs.iter().filter_map(|p| p["pid"].as_i64()).collect();
    let comms: Vec<String> = procs.iter().map(|p| p.str_of("comm")).collect();
    // A pid namespace of our own: the probe sees a handful of processes
    // with small pids, itself among them, and nothing of the host.
    assert!(
        !pids.is_empty() && pids.len() <= 4,
        "the sandbox sees {} processes: {comms:?}{}",
        pids.len(),
        out.context()
    );
    let me = v["self"].as_i64().expect("self pid");
    assert!(
        pids.contains(&me) && me <= 10,
        "probe pid {me} is not a small pid of a new pid namespace: {pids:?}"
    );
    assert!(
        !pids.contains(&host_pid),
        "host pid {host_pid} visible: {pids:?}"
    );
    assert!(
        !pids.contains(&(std::process::id() as i64)),
        "the test's own pid is visible: {pids:?}"
    );
    assert!(
        !comms.iter().any(|c| c == "sleep"),
        "the host's sleep is visible: {comms:?}"
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn host_processes_cannot_be_killed() {
    let h = harness!();
    let mut sleeper = spawn_host_sleep();
    let host_pid = sleeper.id();
    let (_, v) = probe_ok_run(&h, &["kill", &host_pid.to_string(), "9"]);
    let alive = sleeper.try_wait().expect("try_wait").is_none();
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert!(!v.ok(), "kill of host pid {host_pid} reported success: {v}");
    assert!(
        alive,
        "the host process {host_pid} died after the sandbox tried to kill it: {v}"
    );
}

// ---- network ------------------------------------------------------------------

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn host_loopback_listener_is_unreachable() {
    let h = harness!();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a host listener");
    let addr = listener.local_addr().expect("local addr").to_string();
    // The probe can see a listener where there is one: from the host.
    let host = h.probe_on_host(&["connect", &addr]);
    assert!(
        host.ok(),
        "the probe cannot reach {addr} even from the host: {host}"
    );
    let v = assert_denied(
        &h,
        &["connect", &addr],
        &["ECONNREFUSED", "ENETUNREACH", "ETIMEDOUT"],
    );
    assert_eq!(
        v.errno(),
        "ECONNREFUSED",
        "the sandbox's own lo should refuse: {v}"
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn no_route_out_of_the_sandbox() {
    let h = harness!();
    // An empty network namespace has no route at all.
    assert_denied(&h, &["connect", "1.1.1.1:80"], &["ENETUNREACH"]);
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn only_loopback_interface() {
    let h = harness!();
    let (_, v) = probe_ok_run(&h, &["ifaces"]);
    assert_eq!(
        v.strings("ifaces"),
        vec!["lo".to_owned()],
        "interfaces: {v}"
    );
}

// ---- files ----------------------------------------------------------------------

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn host_file_outside_binds_is_unreadable_but_a_bound_one_is_readable() {
    let h = harness!();
    let dir = TempDir::new("secret");
    let marker = unique("marker");
    let secret = dir.join("secret.txt");
    fs::write(&secret, &marker).expect("write secret");
    let secret_path = secret.to_str().expect("utf-8 path");

    // The probe reads it fine on the host.
    let host = h.probe_on_host(&["read", secret_path]);
    assert!(
        host.ok() && host.str_of("head") == marker,
        "host read: {host}"
    );

    assert_denied(&h, &["read", secret_path], &["ENOENT"]);

    let out = h
        .sandbox()
        .bind(&secret, "/data/secret.txt", "ro")
        .probe(&["read", "/data/secret.txt"])
        .run();
    let v = out.probe_json();
    assert!(
        v.ok() && v.str_of("head") == marker,
        "bound file not readable: {v}{}",
        out.context()
    );

    // ro is the default mode and means it.
    let out = h
        .sandbox()
        .opts(["--bind", &format!("{secret_path}:/data/secret.txt")])
        .probe(&["write", "/data/secret.txt", "overwritten"])
        .run();
    let v = out.probe_json();
    assert!(
        !v.ok(),
        "a default (ro) bind was writable: {v}{}",
        out.context()
    );
    assert_eq!(
        fs::read_to_string(&secret).expect("reread"),
        marker,
        "the host file changed"
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn etc_shadow_is_not_readable() {
    let h = harness!();
    assert_denied(&h, &["read", "/etc/shadow"], &["ENOENT", "EACCES"]);
    // The generated /etc knows the sandbox user.
    let (_, v) = probe_ok_run(&h, &["read", "/etc/passwd"]);
    assert!(
        v.ok() && v.str_of("head").contains(":1000:"),
        "generated /etc/passwd: {v}"
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn root_filesystem_is_read_only() {
    let h = harness!();
    let name = unique("probe-write");
    for dir in ["/usr", "", "/etc", "/usr/bin"] {
        let path = format!("{dir}/{name}");
        assert_denied(&h, &["write", &path], &["EROFS", "EACCES"]);
    }
    assert!(
        !std::path::Path::new(&format!("/usr/{name}")).exists(),
        "a file appeared in the host /usr"
    );
    for path in ["/", "/usr"] {
        let (_, v) = probe_ok_run(&h, &["stat", path]);
        assert_eq!(
            v["read_only"],
            Value::Bool(true),
            "{path} is not mounted read-only: {v}"
        );
    }
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn scratch_directories_are_writable() {
    let h = harness!();
    for path in ["/tmp/x", "/workspace/x", "/dev/shm/x"] {
        let (_, v) = probe_ok_run(&h, &["write", path]);
        assert!(v.ok(), "{path} not writable: {v}");
    }
    // /tmp is a private tmpfs, not the host's /tmp.
    let (_, v) = probe_ok_run(&h, &["stat", "/tmp"]);
    assert_eq!(
        v.str_of("fs_magic"),
        "0x1021994",
        "/tmp is not a tmpfs: {v}"
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn workspace_dir_is_shared_read_write() {
    let h = harness!();
    let ws = TempDir::world_writable("ws");
    let from_host = unique("from-host");
    fs::write(ws.join("in.txt"), &from_host).expect("write in.txt");

    let out = h
        .sandbox()
        .opt("--workspace")
        .opt(ws.path())
        .probe(&["read", "/workspace/in.txt"])
        .run();
    let v = out.probe_json();
    assert!(
        v.ok() && v.str_of("head") == from_host,
        "host file not visible in /workspace: {v}{}",
        out.context()
    );

    let out = h
        .sandbox()
        .opt("--workspace")
        .opt(ws.path())
        .probe(&["write", "/workspace/out.txt", "from the sandbox"])
        .run();
    assert!(
        out.probe_json().ok(),
        "write to /workspace failed{}",
        out.context()
    );
    assert_eq!(
        fs::read_to_string(ws.join("out.txt")).expect("out.txt on the host"),
        "from the sandbox"
    );
}

// ---- forbidden system calls -----------------------------------------------------------

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn probe_detects_working_attacks_on_the_host() {
    // Without a sandbox (as root on the host) the same probe subcommands
    // succeed: an `ok: false` inside a sandbox is the sandbox's doing.
    runtimed_tests::require_root();
    let probe = std::path::Path::new(env!("CARGO_BIN_EXE_probe"));
    for check in [
        "mount",
        "unshare-user",
        "unshare-mount",
        "setns",
        "ptrace",
        "clone3",
        "keyctl",
    ] {
        let v = probe_on_host(probe, &[check]);
        assert!(v.ok(), "probe {check} fails even on the host: {v}");
    }
    for check in ["bpf", "io-uring-setup", "userfaultfd", "perf-event-open"] {
        // Host-configuration dependent (sysctls, kernel config): informative.
        eprintln!("host control: {}", probe_on_host(probe, &[check]));
    }
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn mount_is_denied() {
    let h = harness!();
    assert_denied(&h, &["mount"], &["EPERM"]);
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn unshare_user_is_denied() {
    let h = harness!();
    assert_denied(&h, &["unshare-user"], &["EPERM"]);
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn unshare_mount_is_denied() {
    let h = harness!();
    assert_denied(&h, &["unshare-mount"], &["EPERM"]);
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn setns_is_denied() {
    let h = harness!();
    assert_denied(&h, &["setns"], &["EPERM"]);
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn ptrace_is_denied() {
    let h = harness!();
    let v = assert_denied(&h, &["ptrace"], &["EPERM"]);
    assert_eq!(
        v["traceme_ok"],
        Value::Bool(false),
        "PTRACE_TRACEME worked: {v}"
    );
    assert_eq!(v.str_of("traceme_errno"), "EPERM", "{v}");
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn bpf_is_denied() {
    let h = harness!();
    assert_denied(&h, &["bpf"], &["EPERM"]);
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn perf_event_open_is_denied() {
    let h = harness!();
    assert_denied(&h, &["perf-event-open"], &["EPERM"]);
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn keyctl_and_add_key_are_denied() {
    let h = harness!();
    let v = assert_denied(&h, &["keyctl"], &["EPERM"]);
    assert_eq!(v["add_key_ok"], Value::Bool(false), "add_key worked: {v}");
    assert_eq!(v.str_of("add_key_errno"), "EPERM", "{v}");
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn io_uring_setup_is_denied() {
    let h = harness!();
    assert_denied(&h, &["io-uring-setup"], &["EPERM"]);
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn userfaultfd_is_denied() {
    let h = harness!();
    assert_denied(&h, &["userfaultfd"], &["EPERM"]);
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn clone3_is_enosys() {
    // ENOSYS (not EPERM) makes libc fall back to clone(2).
    let h = harness!();
    assert_denied(&h, &["clone3"], &["ENOSYS"]);
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn seccomp_unconfined_really_removes_the_filter() {
    // The same probe that reports clone3 denied sees it work once the
    // filter is off, and /proc shows no filter.
    let h = harness!();
    let out = h
        .sandbox()
        .opts(["--seccomp", "unconfined"])
        .probe(&["clone3"])
        .run();
    let v = out.probe_json();
    assert!(v.ok(), "clone3 fails even unconfined: {v}{}", out.context());
    let out = h
        .sandbox()
        .opts(["--seccomp", "unconfined"])
        .probe(&["caps"])
        .run();
    let v = out.probe_json();
    assert_eq!(v.str_of("Seccomp"), "0", "{v}{}", out.context());
    // Capabilities still keep mount out.
    let out = h
        .sandbox()
        .opts(["--seccomp", "unconfined"])
        .probe(&["mount"])
        .run();
    assert!(
        !out.probe_json().ok(),
        "mount worked without seccomp{}",
        out.context()
    );
}

// ---- identity and privileges ---------------------------------------------------------

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn capabilities_are_empty_with_no_new_privs_and_seccomp() {
    let h = harness!();
    let (_, v) = probe_ok_run(&h, &["caps"]);
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(v.str_of(set), "0000000000000000", "{set} is not empty: {v}");
    }
    assert_eq!(v.str_of("NoNewPrivs"), "1", "{v}");
    assert_eq!(v.str_of("Seccomp"), "2", "not in seccomp filter mode: {v}");
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn runs_as_unprivileged_user_mapped_away_from_host_root() {
    let h = harness!();
    let (_, v) = probe_ok_run(&h, &["ids"]);
    for key in ["uid", "euid", "gid", "egid"] {
        assert_eq!(v[key].as_u64(), Some(1000), "{key}: {v}");
    }
    // Read from inside, the second column of each map line is the host id.
    for map in ["uid_map", "gid_map"] {
        let text = v.str_of(map);
        assert!(!text.is_empty(), "{map} empty: {v}");
        for line in text.lines() {
            let cols: Vec<u64> = line
                .split_whitespace()
                .filter_map(|c| c.parse().ok())
                .collect();
            assert_eq!(cols.len(), 3, "{map} line {line:?}");
            assert_ne!(cols[1], 0, "{map} maps to host id 0: {line:?}");
            assert_ne!(
                cols[2],
                u64::from(u32::MAX),
                "{map} is the whole-range identity map: {line:?}"
            );
        }
    }
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn user_option_sets_ids() {
    let h = harness!();
    let out = h
        .sandbox()
        .opts(["--user", "1234:2345"])
        .probe(&["ids"])
        .run();
    let v = out.probe_json();
    assert_eq!(v["uid"].as_u64(), Some(1234), "{v}{}", out.context());
    assert_eq!(v["gid"].as_u64(), Some(2345), "{v}{}", out.context());
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn host_uids_are_nonzero_and_distinct_between_concurrent_sandboxes() {
    let h = harness!();
    let (tag_a, tag_b) = (unique("uid-a"), unique("uid-b"));
    let a = h.sandbox().probe(&["sleep", "3", &tag_a]).spawn();
    let b = h.sandbox().probe(&["sleep", "3", &tag_b]).spawn();
    let host_ids = |tag: &str| {
        wait_for(Duration::from_secs(10), || {
            let p = host_probe_procs(tag).into_iter().next()?;
            Some((
                proc_status_ids(p.pid, "Uid")?,
                proc_status_ids(p.pid, "Gid")?,
            ))
        })
    };
    let ids_a = host_ids(&tag_a);
    let ids_b = host_ids(&tag_b);
    let (ra, rb) = (a.wait(), b.wait());
    let (uid_a, gid_a) =
        ids_a.unwrap_or_else(|| panic!("sandbox A's probe not found on the host{}", ra.context()));
    let (uid_b, gid_b) =
        ids_b.unwrap_or_else(|| panic!("sandbox B's probe not found on the host{}", rb.context()));
    for ids in [&uid_a, &uid_b, &gid_a, &gid_b] {
        assert!(
            ids.iter().all(|&id| id != 0),
            "a sandbox runs with host id 0: {ids:?}"
        );
    }
    assert_ne!(
        uid_a[0], uid_b[0],
        "two concurrent sandboxes share host uid {}",
        uid_a[0]
    );
    assert_eq!(ra.code(), 0, "{}", ra.context());
    assert_eq!(rb.code(), 0, "{}", rb.context());
    let (rep_a, rep_b) = (ra.report(), rb.report());
    assert!(
        rep_a.host_uid != 0 && rep_b.host_uid != 0,
        "report host_uid 0"
    );
    assert!(
        rep_a.host_gid != 0 && rep_b.host_gid != 0,
        "report host_gid 0"
    );
    assert_ne!(rep_a.host_uid, rep_b.host_uid, "reports share a host uid");
}

// ---- uts, /proc, /sys, /dev -------------------------------------------------------------

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn hostname_is_sandbox_or_the_given_name() {
    let h = harness!();
    let (_, v) = probe_ok_run(&h, &["hostname"]);
    assert_eq!(v.str_of("hostname"), "sandbox", "{v}");
    let name = "probe-host";
    let out = h
        .sandbox()
        .opts(["--hostname", name])
        .probe(&["hostname"])
        .run();
    assert_eq!(
        out.probe_json().str_of("hostname"),
        name,
        "{}",
        out.context()
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn sys_is_absent_or_empty() {
    let h = harness!();
    let (_, v) = probe_ok_run(&h, &["ls", "/sys"]);
    assert!(
        (!v.ok() && v.errno() == "ENOENT") || v.strings("entries").is_empty(),
        "/sys is visible: {v}"
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn sensitive_proc_files_are_masked() {
    let h = harness!();
    for path in [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
    ] {
        let (_, st) = probe_ok_run(&h, &["stat", path]);
        if !st.ok() {
            // Not built into this kernel: nothing to mask.
            assert_eq!(st.errno(), "ENOENT", "{st}");
            continue;
        }
        let (_, rd) = probe_ok_run(&h, &["read", path]);
        let dev_null =
            st.str_of("type") == "char" && st["rdev_major"] == 1 && st["rdev_minor"] == 3;
        let empty = rd.ok() && rd["bytes"] == 0;
        assert!(dev_null || empty, "{path} is not masked: {st} {rd}");
    }
    let (_, v) = probe_ok_run(&h, &["ls", "/proc/acpi"]);
    assert!(
        !v.ok() || v.strings("entries").is_empty(),
        "/proc/acpi not masked: {v}"
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn proc_system_paths_are_read_only() {
    let h = harness!();
    let mut checked = 0;
    for path in ["/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus"] {
        let (_, v) = probe_ok_run(&h, &["stat", path]);
        if !v.ok() {
            assert_eq!(v.errno(), "ENOENT", "{v}");
            continue;
        }
        checked += 1;
        assert_eq!(v["read_only"], Value::Bool(true), "{path} is writable: {v}");
    }
    assert!(checked > 0, "none of the read-only /proc paths exist");
    assert_denied(
        &h,
        &["write", "/proc/sys/kernel/hostname", "pwned"],
        &["EROFS", "EACCES", "EPERM"],
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn dev_is_minimal() {
    let h = harness!();
    let (_, v) = probe_ok_run(&h, &["ls", "/dev"]);
    let entries: BTreeSet<String> = v.strings("entries").into_iter().collect();
    let required = [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx",
    ];
    let tolerated = [
        "fd", "stdin", "stdout", "stderr", "core", "mqueue", "console",
    ];
    for r in required {
        assert!(entries.contains(r), "/dev/{r} missing: {entries:?}");
    }
    let extra: Vec<&String> = entries
        .iter()
        .filter(|e| !required.contains(&e.as_str()) && !tolerated.contains(&e.as_str()))
        .collect();
    assert!(extra.is_empty(), "unexpected /dev entries {extra:?}");
    // Real devices, not files: /dev/null is 1:3, /dev/full fills up.
    let (_, null) = probe_ok_run(&h, &["stat", "/dev/null"]);
    assert!(
        null.str_of("type") == "char" && null["rdev_major"] == 1 && null["rdev_minor"] == 3,
        "{null}"
    );
    let (_, full) = probe_ok_run(&h, &["write", "/dev/full"]);
    assert_eq!(
        full.errno(),
        "ENOSPC",
        "/dev/full is not the full device: {full}"
    );
}

// ---- file descriptors and environment -----------------------------------------------------

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn inherited_fds_are_closed() {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    let h = harness!();
    let file = fs::File::open("/etc/hostname").expect("open");
    let leak = nix::unistd::dup(&file).expect("dup");
    fcntl(&leak, FcntlArg::F_SETFD(FdFlag::empty())).expect("clear FD_CLOEXEC");
    let leaked = leak.as_raw_fd() as i64;

    // The probe sees an inherited fd when there is one.
    let host = h.probe_on_host(&["fds"]);
    let host_others: Vec<i64> = host["others"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();
    assert!(
        host_others.contains(&leaked),
        "the probe misses fd {leaked} on the host: {host}"
    );

    let (out, v) = probe_ok_run(&h, &["fds"]);
    drop(leak);
    let fds: Vec<i64> = v["fds"]
        .as_array()
        .expect("fds")
        .iter()
        .filter_map(|f| f["fd"].as_i64())
        .collect();
    for std_fd in 0..3 {
        assert!(fds.contains(&std_fd), "stdio fd {std_fd} missing: {v}");
    }
    assert_eq!(
        v["others"],
        Value::Array(vec![]),
        "fds leaked into the sandbox: {v}{}",
        out.context()
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn environment_is_clean_unless_passed() {
    let h = harness!();
    let secret = unique("secret");
    let out = h
        .sandbox()
        .caller_env("HOME_SECRET", &secret)
        .caller_env("FOO", "from-the-caller")
        .opts(["--env", "FOO=bar"])
        .probe(&["env"])
        .run();
    let v = out.probe_json();
    let env = v["env"].as_object().expect("env object");
    assert_eq!(
        env.get("FOO").and_then(Value::as_str),
        Some("bar"),
        "{v}{}",
        out.context()
    );
    assert!(
        !env.contains_key("HOME_SECRET"),
        "caller variable leaked: {v}"
    );
    assert!(env.contains_key("PATH"), "no default PATH: {v}");
    // Nothing else of the caller's environment either.
    for (k, val) in std::env::vars() {
        if k != "PATH" && k != "HOME" {
            assert!(
                env.get(&k).and_then(Value::as_str) != Some(val.as_str()),
                "caller variable {k} leaked: {v}"
            );
        }
    }

    let out = h
        .sandbox()
        .caller_env("HOME_SECRET", &secret)
        .opts(["--env", "HOME_SECRET"])
        .probe(&["env"])
        .run();
    let v = out.probe_json();
    assert_eq!(
        v["env"]["HOME_SECRET"].as_str(),
        Some(secret.as_str()),
        "--env K did not pass it: {v}{}",
        out.context()
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn sandbox_processes_stay_alive_only_with_the_sandbox() {
    // Sanity for the host-view helpers the lifecycle tests rely on: a
    // running sandbox's probe is found on the host, and is gone afterwards.
    let h = harness!();
    let tag = unique("alive");
    let run = h.sandbox().probe(&["sleep", "1", &tag]).spawn();
    let found = wait_for(Duration::from_secs(10), || {
        host_probe_procs(&tag).into_iter().next()
    });
    let out = run.wait();
    let p = found.unwrap_or_else(|| panic!("probe not found on the host{}", out.context()));
    assert!(
        !pid_alive(p.pid),
        "probe pid {} still alive after the run",
        p.pid
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn uid_zero_inside_has_no_capabilities_and_is_not_host_root() {
    let h = harness!();
    let out = h.sandbox().opts(["--user", "0:0"]).probe(&["caps"]).run();
    assert_eq!(out.code(), 0, "{}", out.context());
    let v = out.probe_json();
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(
            v.str_of(set),
            "0000000000000000",
            "{set} is not empty for uid 0: {v}"
        );
    }
    let out = h.sandbox().opts(["--user", "0:0"]).probe(&["mount"]).run();
    let v = out.probe_json();
    assert_eq!(v["ok"], false, "root inside could mount: {v}");
    assert_ne!(out.report().host_uid, 0, "{}", out.context());
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn judge_profile_refuses_network_sockets() {
    let h = harness!();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let addr = format!("127.0.0.1:{port}");
    let out = h
        .sandbox()
        .opts(["--seccomp", "judge"])
        .probe(&["connect", &addr])
        .run();
    let v = out.probe_json();
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(
        v.str_of("errno"),
        "EPERM",
        "socket(AF_INET) must be refused by the judge profile: {v}"
    );
    // Under the default profile the same call reaches the (empty) network
    // namespace and is refused there instead.
    let out = h.sandbox().probe(&["connect", &addr]).run();
    let v = out.probe_json();
    assert_eq!(v["ok"], false, "{v}");
    assert_ne!(v.str_of("errno"), "EPERM", "{v}");
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn pid1_shows_neither_the_callers_command_line_nor_environment() {
    let h = harness!();
    let secret = unique("caller-secret");
    let out = h
        .sandbox()
        .caller_env("RUNTIMED_TEST_SECRET", &secret)
        .opts(["--hostname", &format!("h{}", &secret[secret.len() - 8..])])
        .probe(&["read", "/proc/1/cmdline"])
        .run();
    assert_eq!(out.code(), 0, "{}", out.context());
    let v = out.probe_json();
    assert_eq!(v["ok"], true, "{v}");
    let head = v.str_of("head");
    assert!(
        head.starts_with("runtimed-init"),
        "PID 1's command line: {head:?}"
    );
    assert!(
        !head.contains(&h.runtimed.display().to_string()) && !head.contains("--hostname"),
        "the caller's command line leaks: {head:?}"
    );
    // The environment is unreadable (PID 1 is not dumpable), even for uid 0.
    for user in ["1000:1000", "0:0"] {
        let out = h
            .sandbox()
            .caller_env("RUNTIMED_TEST_SECRET", &secret)
            .opts(["--user", user])
            .probe(&["read", "/proc/1/environ"])
            .run();
        let v = out.probe_json();
        assert!(
            v["ok"] == false || !v.str_of("head").contains(&secret),
            "the caller's environment leaks to uid {user}: {v}"
        );
    }
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn rw_binds_are_idmapped_to_the_sandbox_user() {
    use std::os::unix::fs::MetadataExt;
    let h = harness!();
    // Owned by another user, mode 0755: not writable by the sandbox's own
    // host uid, only through the idmapping. (A root-owned one is refused:
    // hostile_binds.rs.)
    for owner in [4321u32, runtimed_tests::NOBODY] {
        let dir = TempDir::new("idmap");
        std::os::unix::fs::chown(dir.path(), Some(owner), Some(owner)).expect("chown");
        fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
        let out = h
            .sandbox()
            .opt("--workspace")
            .opt(dir.path())
            .cmd([
                "/bin/sh",
                "-c",
                "stat -c '%u:%g' /workspace && echo made > /workspace/new.txt && echo wrote",
            ])
            .run();
        assert_eq!(out.code(), 0, "owner {owner}: {}", out.context());
        let text = out.stdout_str();
        assert!(
            text.contains("1000:1000"),
            "the directory's owner is not shown as the sandbox user: {text}"
        );
        assert!(text.contains("wrote"), "{text}");
        let meta = fs::metadata(dir.join("new.txt")).expect("the file reached the host");
        assert_eq!(
            (meta.uid(), meta.gid()),
            (owner, owner),
            "the file belongs to the directory's owner on the host"
        );
    }
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn landlock_layer_denies_writes_the_mounts_allow() {
    // /proc is mounted read-write (the kernel needs that for some of its
    // files); only the Landlock ruleset (writes limited to /tmp, /workspace,
    // /dev and rw mounts) refuses this write. --no-landlock is the control.
    let h = harness!();
    let out = h.sandbox().probe(&["write", "/proc/self/comm", "x"]).run();
    let v = out.probe_json();
    assert_eq!(v["ok"], false, "Landlock did not refuse the write: {v}");
    assert_eq!(v.str_of("errno"), "EACCES", "{v}");
    let out = h
        .sandbox()
        .opt("--no-landlock")
        .probe(&["write", "/proc/self/comm", "x"])
        .run();
    let v = out.probe_json();
    assert_eq!(v["ok"], true, "without Landlock the write should work: {v}");
    // And the layer leaves the writable places writable.
    let out = h.sandbox().probe(&["write", "/dev/shm/probe", "x"]).run();
    assert_eq!(out.probe_json()["ok"], true, "{}", out.context());
}
