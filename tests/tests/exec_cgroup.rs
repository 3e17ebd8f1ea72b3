//! End-to-end tests of an exec's own cgroup: each exec in a session runs
//! in a child cgroup of the session's, joined before the program runs,
//! so its OOM kills, refused forks and CPU time are its own, its
//! `limits.cpu_time` is enforced on its whole tree by the one-shot
//! supervisor's rule, and a limit kills it whole, while what an exec
//! that ended on its own left running keeps running. No assertion is on
//! timing beyond "at least the limit" and bounds that hold on the slow
//! cgroup v2 VM.

use std::time::{Duration, Instant};

use runtimed_tests::daemon;
use runtimed_tests::serde_json::{json, Value};

fn exec_body(d: &runtimed_tests::daemon::Daemon, id: &str, body: &Value) -> Value {
    let r = d.req_json("POST", &format!("/v1/sessions/{id}/exec"), body);
    assert_eq!(r.status, 200, "exec: {}", r.text());
    r.json()
}

fn cpu_time_us(r: &Value) -> u64 {
    r["usage"]["cpu_time_us"]
        .as_u64()
        .unwrap_or_else(|| panic!("no usage.cpu_time_us: {r}"))
}

/// The program itself sees its own cgroup: a child `exec-<n>` of the
/// session's (through the session's cgroup namespace).
#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn an_exec_runs_in_a_cgroup_of_its_own() {
    let d = daemon!();
    let id = d.create_session(&json!({}));
    let r = d.exec(&id, &["cat", "/proc/self/cgroup"]);
    assert_eq!(r["exit_code"], 0, "{r}");
    let text = r["stdout"].as_str().unwrap_or("");
    assert!(
        text.lines().any(|l| l.contains("/exec-")),
        "not in an exec cgroup: {text:?}"
    );
    // A second exec gets another one.
    let r2 = d.exec(&id, &["cat", "/proc/self/cgroup"]);
    assert_ne!(r2["stdout"], r["stdout"], "{r2}");
}

/// Two execs at once, one an OOM bomb, the other innocent (it waits for
/// a file, then fails with exit 3): only the bomb is `oom_killed`. With
/// the session's counter (what rose while each ran), the innocent one,
/// running all through the bomb's OOM kill and failing, was classified
/// `oom_killed` too.
#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn of_two_concurrent_execs_only_the_oom_bomb_is_oom_killed() {
    let d = daemon!();
    let id = d.create_session(&json!({"limits": {"memory": "64M"}}));
    std::thread::scope(|s| {
        let innocent = s.spawn(|| {
            exec_body(
                &d,
                &id,
                &json!({"argv": ["sh", "-c",
                        "touch /tmp/started; while [ ! -e /tmp/go ]; do sleep 0.05; done; exit 3"],
                        "timeout_ms": 120000}),
            )
        });
        // The innocent one is running before the bomb goes off.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = d.exec(&id, &["test", "-e", "/tmp/started"]);
            if r["exit_code"] == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "the innocent exec never started");
            std::thread::sleep(Duration::from_millis(50));
        }
        let bomb = exec_body(
            &d,
            &id,
            &json!({"argv": ["python3", "-c", "x = bytearray(512 << 20)"], "timeout_ms": 60000}),
        );
        assert_eq!(bomb["termination"], "oom_killed", "{bomb}");
        assert_eq!(bomb["signal"], 9, "{bomb}");
        let r = d.exec(&id, &["touch", "/tmp/go"]);
        assert_eq!(r["exit_code"], 0, "{r}");
        let innocent = innocent.join().unwrap();
        assert_eq!(innocent["exit_code"], 3, "{innocent}");
        assert_eq!(innocent["termination"], "exited", "{innocent}");
    });
}

/// A spinning exec with `cpu_time: "300ms"` ends `cpu_timeout` having used
/// at least that, long before its wall limit.
#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_spinning_exec_ends_at_its_cpu_time_limit() {
    let d = daemon!();
    let id = d.create_session(&json!({}));
    let r = exec_body(
        &d,
        &id,
        &json!({"argv": ["sh", "-c", "while :; do :; done"],
                "limits": {"cpu_time": "300ms"}, "timeout_ms": 120000}),
    );
    assert_eq!(r["termination"], "cpu_timeout", "{r}");
    assert_eq!(r["signal"], 9, "{r}");
    assert!(cpu_time_us(&r) >= 300_000, "{r}");
    let wall = r["usage"]["wall_time_us"].as_u64().unwrap();
    assert!(wall < 100_000_000, "not ended by the CPU limit: {r}");
}

/// CPU time is not wall time: a sleeping exec with a CPU limit and a long
/// wall limit ends on its own.
#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_sleeping_exec_is_not_killed_by_its_cpu_time_limit() {
    let d = daemon!();
    let id = d.create_session(&json!({}));
    let r = exec_body(
        &d,
        &id,
        &json!({"argv": ["sh", "-c", "sleep 3; echo woke"],
                "limits": {"cpu_time": "1s"}, "timeout_ms": 120000}),
    );
    // 1 s: the emulated v2 VM spends ~0.35 s of CPU starting sh and sleep.
    assert_eq!(r["termination"], "exited", "{r}");
    assert_eq!(r["exit_code"], 0, "{r}");
    assert_eq!(r["stdout"], "woke\n", "{r}");
    assert!(cpu_time_us(&r) < 1_000_000, "{r}");
    assert!(
        r["usage"]["wall_time_us"].as_u64().unwrap() >= 3_000_000,
        "{r}"
    );
}

/// The limit holds for the exec's whole tree: a shell that only waits
/// while four children spin is killed when their CPU time adds up to the
/// limit, which its own rusage (the children it reaped: none) never
/// shows.
#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_forking_spinners_children_count_against_its_cpu_time() {
    let d = daemon!();
    let id = d.create_session(&json!({}));
    let r = exec_body(
        &d,
        &id,
        &json!({"argv": ["sh", "-c",
                "for i in 1 2 3 4; do (while :; do :; done) & done; wait"],
                "limits": {"cpu_time": "1s"}, "timeout_ms": 120000}),
    );
    assert_eq!(r["termination"], "cpu_timeout", "{r}");
    assert!(cpu_time_us(&r) >= 1_000_000, "{r}");
    let own =
        r["usage"]["cpu_user_us"].as_u64().unwrap() + r["usage"]["cpu_system_us"].as_u64().unwrap();
    assert!(
        own < 1_000_000,
        "the shell itself spun, so the test proves nothing: {r}"
    );
}

/// Whether process `pid` of the session is alive (not a zombie), asked
/// from inside.
fn alive_inside(d: &runtimed_tests::daemon::Daemon, id: &str, pid: &str) -> bool {
    let r = d.exec(
        id,
        &[
            "sh",
            "-c",
            &format!("! grep -q '^State:.*Z' /proc/{pid}/status && kill -0 {pid}"),
        ],
    );
    r["exit_code"] == 0
}

/// What an exec that ended on its own leaves running (a server it
/// started) keeps running in the session; its cgroup goes once it ended.
#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn what_an_exec_leaves_running_keeps_running() {
    let d = daemon!();
    let id = d.create_session(&json!({}));
    let r = d.exec(&id, &["sh", "-c", "sleep 1000 >/dev/null 2>&1 & echo $!"]);
    assert_eq!(
        (r["exit_code"].clone(), r["termination"].clone()),
        (json!(0), json!("exited")),
        "{r}"
    );
    let pid = r["stdout"].as_str().unwrap().trim().to_string();
    assert!(pid.parse::<u32>().is_ok(), "{r}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        alive_inside(&d, &id, &pid),
        "the exec's background process was killed"
    );
    // Still in its exec's cgroup, which a later exec's end leaves alone.
    let r = d.exec(&id, &["cat", &format!("/proc/{pid}/cgroup")]);
    assert!(r["stdout"].as_str().unwrap_or("").contains("/exec-"), "{r}");
    assert!(alive_inside(&d, &id, &pid));
}

/// A limit ends the exec whole: a process it moved out of its process
/// group (setsid), which the group kill misses, dies with its cgroup.
#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_limit_kills_the_execs_whole_cgroup() {
    let d = daemon!();
    let id = d.create_session(&json!({}));
    let r = exec_body(
        &d,
        &id,
        &json!({"argv": ["sh", "-c",
                "setsid sleep 1000 >/dev/null 2>&1 & echo $!; while :; do :; done"],
                "limits": {"cpu_time": "300ms"}, "timeout_ms": 120000}),
    );
    assert_eq!(r["termination"], "cpu_timeout", "{r}");
    let pid = r["stdout"].as_str().unwrap().trim().to_string();
    assert!(pid.parse::<u32>().is_ok(), "{r}");
    // Killed before the answer; PID 1 reaps the orphan soon after, hence
    // the wait.
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive_inside(&d, &id, &pid) {
        assert!(
            Instant::now() < deadline,
            "a process of an exec killed for its limit is still alive"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Bad `limits` of an exec are refused with the documented codes, and
/// nothing runs.
#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn bad_exec_limits_are_refused_and_nothing_runs() {
    let d = daemon!();
    let id = d.create_session(&json!({}));
    for (limits, code) in [
        (json!({"cpu_time": "0"}), "limit_out_of_range"),
        (json!({"cpu_time": "25h"}), "limit_out_of_range"),
        (json!({"cpu_time": "fast"}), "limit_out_of_range"),
        (json!({"memory": "1G"}), "invalid_request"),
    ] {
        let r = d.req_json(
            "POST",
            &format!("/v1/sessions/{id}/exec"),
            &json!({"argv": ["touch", "/tmp/ran"], "limits": limits}),
        );
        assert_eq!(r.status, 400, "{limits}: {}", r.text());
        assert_eq!(r.json()["code"], code, "{limits}: {}", r.text());
    }
    let r = d.exec(&id, &["test", "-e", "/tmp/ran"]);
    assert_eq!(r["exit_code"], 1, "a refused exec ran: {r}");
}
