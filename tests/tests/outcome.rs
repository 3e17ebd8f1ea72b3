//! End-to-end tests of the one outcome model for an exec in a session:
//! the classification (`sandbox::report::classify`) is the one
//! `runtimed run` uses, fed with how far the session's cgroup counters
//! rose while the process ran (a session's counters are shared by all its
//! processes, so earlier hits must not be charged to a later process).

use runtimed_tests::daemon;
use runtimed_tests::serde_json::json;

/// A process that fails after the session's pids limit refused a fork is
/// `pids_limit`; a later process that fails on its own is `exited`
/// although the session's counter stays above zero.
#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn an_exec_that_hits_the_pids_limit_is_pids_limit_and_the_next_is_not() {
    let d = daemon!();
    let id = d.create_session(&json!({"limits": {"pids": 8}}));
    // Forks until the kernel refuses (EAGAIN), kills what it made and
    // fails: what a fork bomb in a lab looks like.
    let bomb = [
        "import os, sys, time",
        "kids = []",
        "try:",
        "    for _ in range(64):",
        "        pid = os.fork()",
        "        if pid == 0:",
        "            time.sleep(30)",
        "            os._exit(0)",
        "        kids.append(pid)",
        "except OSError as e:",
        "    print('fork refused', e.errno, file=sys.stderr)",
        "    for k in kids:",
        "        os.kill(k, 9)",
        "        os.waitpid(k, 0)",
        "    sys.exit(1)",
    ]
    .join("\n");
    let r = d.exec(&id, &["python3", "-c", &bomb]);
    assert!(
        r["stderr"]
            .as_str()
            .unwrap_or("")
            .contains("fork refused 11"),
        "the limit did not refuse a fork: {r}"
    );
    assert_eq!(r["termination"], "pids_limit", "{r}");
    assert_eq!(r["exit_code"], 1, "{r}");
    // The session's counter is still up; this process hit nothing.
    let r = d.exec(&id, &["sh", "-c", "exit 3"]);
    assert_eq!(r["termination"], "exited", "{r}");
    assert_eq!(r["exit_code"], 3, "{r}");
}

/// The documented OOM rule for an exec, the same as `runtimed run`'s: the
/// OOM killer fired while it ran and it died of SIGKILL *or exited
/// non-zero* (a shell whose child was killed). Before, an exec counted
/// only its own SIGKILL.
#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn an_exec_whose_child_was_oom_killed_and_that_failed_is_oom_killed() {
    let d = daemon!();
    let id = d.create_session(&json!({"limits": {"memory": "64M"}}));
    let r = d.req_json(
        "POST",
        &format!("/v1/sessions/{id}/exec"),
        &json!({"argv": ["sh", "-c", "python3 -c 'x = bytearray(512 << 20)'; echo child=$? >&2; exit 1"],
                "timeout_ms": 60000}),
    );
    let r = r.json();
    assert!(
        r["stderr"].as_str().unwrap_or("").contains("child=137"),
        "the child was not killed by SIGKILL: {r}"
    );
    assert_eq!(r["termination"], "oom_killed", "{r}");
    assert_eq!(r["exit_code"], 1, "{r}");
    // A later failure with no OOM kill while it ran is its own.
    let r = d.exec(&id, &["sh", "-c", "exit 1"]);
    assert_eq!(r["termination"], "exited", "{r}");
}
