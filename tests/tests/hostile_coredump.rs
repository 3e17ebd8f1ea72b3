//! A crash inside a sandbox must not reach the host's `core_pattern`
//! handler (issue 12, point 7). With a pipe pattern (systemd-coredump,
//! apport) the kernel ignores RLIMIT_CORE = 0 and starts the handler as
//! root on the crashed process's memory; it aborts the dump only when the
//! limit is exactly 1. Sandboxes get 1 (soft and hard) and seccomp keeps
//! them from lowering it.
//!
//! The pipe test changes `kernel.core_pattern`, which is global: it runs
//! only in the throwaway cgroup v2 VM (`.ci/cgroup-v2.sh`, `CGROUP2_VM=1`),
//! never on a host.
#![forbid(unsafe_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use runtimed_tests::serde_json::{json, Value};
use runtimed_tests::{harness, wait_for, Harness, ProbeLine, RunOutput, TempDir, Termination};

const CORE_PATTERN: &str = "/proc/sys/kernel/core_pattern";

/// `sh -c script` in a sandbox with `opts` and the probe at /probe.
fn crash(h: &Harness, opts: &[&str], argv: &[&str]) -> RunOutput {
    h.sandbox()
        .opts(opts)
        .bind(&h.probe, runtimed_tests::PROBE_IN_SANDBOX, "ro")
        .cmd(argv)
        .run()
}

/// The report says the program died of `signal` (the dump's abort changes
/// nothing there).
fn assert_signaled(out: &RunOutput, signal: i32) {
    let r = out.report();
    assert_eq!(r.termination, Termination::Signaled, "{}", out.context());
    assert_eq!(r.signal, Some(signal), "{}", out.context());
    assert_eq!(out.code(), 128 + signal, "{}", out.context());
}

/// Inside, under both confined profiles, RLIMIT_CORE is 1/1 and neither
/// prlimit64 nor setrlimit can lower it; on the host the same probe can.
/// (Checked against: without the seccomp rule both calls succeed and the
/// limit drops to 0; with CORE_LIMIT = 0 `before` is [0, 0].)
#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn the_core_limit_is_one_byte_and_stays_so() {
    let h = harness!();
    for profile in ["default", "judge"] {
        let out = crash(
            &h,
            &["--seccomp", profile],
            &["/probe", "rlimit-core", "/bin/sh", "-c", "kill -SEGV $$"],
        );
        let v = out.probe_json();
        assert!(!v.ok(), "{profile}: {v}");
        assert_eq!(v["before"], json!([1, 1]), "{profile}: {v}");
        assert_eq!(v["after"], json!([1, 1]), "{profile}: {v}");
        // Both calls are answered with success and change nothing.
        assert_eq!(v["prlimit64"], Value::Null, "{profile}: {v}");
        if cfg!(target_arch = "x86_64") {
            assert_eq!(v["setrlimit"], Value::Null, "{profile}: {v}");
        }
        assert_signaled(&out, libc::SIGSEGV);
    }
    let host = h.probe_on_host(&["rlimit-core"]);
    assert!(host.ok() && host["after"] == json!([0, 0]), "{host}");
}

/// Whether this process holds CAP_SYS_RESOURCE (some containers drop it).
fn has_sys_resource() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << 24) != 0)
}

/// `runtimed run /probe rlimit-core` started by a shell that first sets
/// its hard core limit to 0 (`LimitCORE=0` in a unit), with `wrap` (e.g.
/// setpriv) in front.
fn run_with_zero_hard_core_limit(h: &Harness, wrap: &[&str]) -> std::process::Output {
    Command::new(wrap.first().copied().unwrap_or("/bin/sh"))
        .args(wrap.iter().skip(1))
        .args(if wrap.is_empty() {
            &[][..]
        } else {
            &["/bin/sh"][..]
        })
        .args(["-c", "ulimit -Hc 0 && exec \"$0\" \"$@\""])
        .arg(&h.runtimed)
        .arg("run")
        .arg("--bind")
        .arg(format!("{}:/probe:ro", h.probe.display()))
        .args(["--", "/probe", "rlimit-core"])
        .output()
        .expect("runtimed")
}

/// A caller whose own hard core limit is 0 still gives its sandboxes 1
/// byte: the limit is raised in the parent, where CAP_SYS_RESOURCE allows
/// it. Without that capability (this development container) the sandbox
/// gets 0, as safe as 1 under a file core_pattern. (Checked against:
/// without `spawn::settle_core_limit` the run fails at its `rlimits` step
/// with EPERM.) The pipe case is refused: see the VM test below.
#[test]
#[ignore = "cgroup v2 VM: needs CAP_SYS_RESOURCE or a file core_pattern"]
fn vm_only_a_caller_with_a_zero_hard_core_limit_still_runs_sandboxes() {
    let h = harness!();
    let pattern = fs::read_to_string(CORE_PATTERN).unwrap_or_default();
    if !has_sys_resource() && pattern.starts_with('|') {
        runtimed_tests::missing(
            "no CAP_SYS_RESOURCE and a pipe core_pattern (refused, by design; the VM has both)",
        );
    }
    let out = run_with_zero_hard_core_limit(&h, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{out:?}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = runtimed_tests::serde_json::from_str(text.trim()).expect("probe line");
    let want = if has_sys_resource() {
        json!([1, 1])
    } else {
        json!([0, 0])
    };
    assert_eq!(v["before"], want, "{v}");
    assert!(!v.ok() || want == json!([0, 0]), "{v}");
}

/// The daemon's paths (a session's exec, a one-shot `/v1/run`) give the same
/// limit: 1 byte, not lowerable; a crash is reported as signaled.
#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn daemon_sessions_and_runs_get_the_same_core_limit() {
    let d = runtimed_tests::daemon!();
    let script = "ulimit -c 0 2>/dev/null; echo lowered=$?; grep 'core file' /proc/self/limits";
    let words = |r: &Value| {
        r["stdout"]
            .as_str()
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    // `ulimit -c 0` succeeds (ssh-agent and friends do this) and the
    // limit stays 1 byte.
    let want = "lowered=0 Max core file size 1 1 bytes";
    let id = d.create_session(&json!({}));
    let r = d.exec(&id, &["sh", "-c", script]);
    assert_eq!(words(&r), want, "{r}");
    let r = d
        .req_json(
            "POST",
            "/v1/run",
            &json!({"argv": ["sh", "-c", format!("{script}; kill -SEGV $$")]}),
        )
        .json();
    assert_eq!(words(&r), want, "{r}");
    assert_eq!(r["termination"], "signaled", "{r}");
    assert_eq!(r["signal"], libc::SIGSEGV, "{r}");
}

/// Restores `kernel.core_pattern` when the test ends, however it ends.
struct PatternGuard(String);

impl Drop for PatternGuard {
    fn drop(&mut self) {
        let _ = fs::write(CORE_PATTERN, &self.0);
    }
}

/// The handler's log: one line `<pid> <uid> <signal>` per dump it was
/// started for.
fn handler_lines(log: &PathBuf) -> Vec<(String, u64, String)> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((
                f.next()?.to_string(),
                f.next()?.parse().ok()?,
                f.next()?.to_string(),
            ))
        })
        .collect()
}

/// With a pipe `core_pattern`, crashes inside sandboxes (SIGSEGV, SIGABRT,
/// after trying to lower RLIMIT_CORE with `ulimit -c 0` and with both
/// syscalls, under default and judge) never start the handler, and the
/// reports still say signaled. The control: the same crash on the host
/// with RLIMIT_CORE = 0 starts it. (Checked against: with CORE_LIMIT = 0
/// in spec::plan every sandboxed crash starts the handler; without the
/// seccomp rule the crashes that lower the limit first do.)
#[test]
#[ignore = "cgroup v2 VM: changes the global kernel.core_pattern"]
fn vm_only_crashes_inside_never_reach_a_pipe_core_pattern() {
    let h = harness!();
    // By design this runs only where the global sysctl may change.
    runtimed_tests::require_cgroup2_vm("changes the global kernel.core_pattern");
    let dir = TempDir::new("core-pattern");
    let log = dir.join("handler.log");
    let handler = dir.join("handler");
    fs::write(
        &handler,
        format!(
            "#!/bin/sh\necho \"$1 $2 $3\" >> {}\nexec cat > /dev/null\n",
            log.display()
        ),
    )
    .expect("write handler");
    fs::set_permissions(&handler, fs::Permissions::from_mode(0o755)).expect("chmod handler");
    let old = fs::read_to_string(CORE_PATTERN).expect("read core_pattern");
    let _guard = PatternGuard(old.trim_end().to_string());
    fs::write(CORE_PATTERN, format!("|{} %P %u %s", handler.display())).expect("set core_pattern");

    let cases: [(&[&str], &[&str], i32); 5] = [
        (&[], &["/bin/sh", "-c", "kill -SEGV $$"], libc::SIGSEGV),
        (
            &[],
            &[
                "/bin/sh",
                "-c",
                "ulimit -c 0 2>/dev/null; ulimit -Sc 0 2>/dev/null; kill -ABRT $$",
            ],
            libc::SIGABRT,
        ),
        (
            &[],
            &["/probe", "rlimit-core", "/bin/sh", "-c", "kill -SEGV $$"],
            libc::SIGSEGV,
        ),
        (
            &["--seccomp", "judge"],
            &["/probe", "rlimit-core", "/bin/sh", "-c", "kill -SEGV $$"],
            libc::SIGSEGV,
        ),
        (
            &["--seccomp", "judge"],
            &["/bin/sh", "-c", "kill -BUS $$"],
            libc::SIGBUS,
        ),
    ];
    // Whether a probe lowered the limit is asserted last: first what
    // matters, whether the handler ran.
    let mut lowered = Vec::new();
    for (opts, argv, signal) in cases {
        let out = crash(&h, opts, argv);
        assert_signaled(&out, signal);
        if argv[0] == "/probe" {
            let v: Value = out.probe_json();
            if v.ok() {
                lowered.push(v);
            }
        }
    }

    // A runtimed that cannot give 1 byte (hard limit 0, no
    // CAP_SYS_RESOURCE) refuses to start sandboxes under a pipe pattern.
    let out = run_with_zero_hard_core_limit(&h, &["setpriv", "--bounding-set=-sys_resource"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert!(
        err.lines().count() == 1 && err.contains("core_pattern"),
        "{err}"
    );

    // Control: on the host, as root, RLIMIT_CORE = 0 does not stop a pipe.
    let status = Command::new("/bin/sh")
        .args(["-c", "ulimit -c 0; kill -SEGV $$"])
        .status()
        .expect("crash on the host");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGSEGV)
    );
    let ran = wait_for(Duration::from_secs(60), || {
        handler_lines(&log)
            .iter()
            .any(|(_, uid, _)| *uid == 0)
            .then_some(())
    });
    assert!(
        ran.is_some(),
        "the control crash did not start the handler: core_pattern {:?}, log {:?}",
        fs::read_to_string(CORE_PATTERN),
        fs::read_to_string(&log)
    );
    // The sandboxed crashes came first: had one started the handler, its
    // line would be there by now; a moment more for a slow one.
    std::thread::sleep(Duration::from_secs(2));
    let foreign: Vec<_> = handler_lines(&log)
        .into_iter()
        .filter(|(_, uid, _)| *uid != 0)
        .collect();
    assert!(
        foreign.is_empty(),
        "the host's core handler ran for sandboxed crashes: {foreign:?}"
    );
    assert!(lowered.is_empty(), "the limit was lowered: {lowered:?}");
}
