//! The judge through the daemon's native API: submissions judged in real
//! sandboxes, bad submissions refused, the bounded queue (429 with
//! Retry-After), tenants served round-robin, submissions surviving a
//! kill -9 of the daemon, progress as server-sent events, tenant
//! isolation and the language table.

use std::time::{Duration, Instant};

use runtimed_tests::daemon;
use runtimed_tests::daemon::Daemon;
use runtimed_tests::serde_json::{json, Value};

const TOKENS: &str = r#"
judge_slots = 1
[[tokens]]
token = "alice-token-0123456789"
tenant = "alice"
[[tokens]]
token = "bob-token-0123456789ab"
tenant = "bob"
"#;

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

const ALICE: &str = "alice-token-0123456789";
const BOB: &str = "bob-token-0123456789ab";

const CPP_AB: &str =
    "#include <iostream>\nint main(){long a,b;std::cin>>a>>b;std::cout<<a+b<<\"\\n\";}\n";

fn ab_tests() -> Value {
    json!([
        {"stdin": "1 2\n", "expected_output": "3\n"},
        {"stdin": "-5 5\n", "expected_output": "0\n"},
        {"stdin": "1000000000 1000000000\n", "expected_output": "2000000000\n"},
    ])
}

fn submit(d: &Daemon, body: &Value, wait: bool) -> Value {
    let path = if wait {
        "/v1/judge/submissions?wait=true"
    } else {
        "/v1/judge/submissions"
    };
    let r = d.req_json("POST", path, body);
    assert_eq!(r.status, 201, "submit: {}", r.text());
    r.json()
}

fn submit_as(d: &Daemon, token: &str, body: &Value) -> String {
    let b = body.to_string();
    let auth = bearer(token);
    let r = d.tcp(
        "POST",
        "/v1/judge/submissions",
        Some(b.as_bytes()),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
    );
    assert_eq!(r.status, 201, "submit: {}", r.text());
    r.json()["id"].as_str().expect("id").to_string()
}

fn get_as(d: &Daemon, token: &str, id: &str) -> (u16, Value) {
    let auth = bearer(token);
    let r = d.tcp(
        "GET",
        &format!("/v1/judge/submissions/{id}"),
        None,
        &[("Authorization", &auth)],
    );
    let v = if r.body.is_empty() {
        Value::Null
    } else {
        r.json()
    };
    (r.status, v)
}

/// Polls until the submission is done; returns it.
fn wait_done(d: &Daemon, id: &str, token: Option<&str>) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let v = match token {
            Some(t) => get_as(d, t, id).1,
            None => d
                .req("GET", &format!("/v1/judge/submissions/{id}"), None)
                .json(),
        };
        if v["status"] == "done" {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "submission {id} not done: {v}\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_status(d: &Daemon, id: &str, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = d
            .req("GET", &format!("/v1/judge/submissions/{id}"), None)
            .json();
        if v["status"] == status {
            return;
        }
        assert!(Instant::now() < deadline, "{id} never {status}: {v}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn submissions_get_exact_verdicts_and_per_test_figures() {
    let d = daemon!();
    let v = submit(
        &d,
        &json!({"language": "cpp", "source": CPP_AB, "tests": ab_tests()}),
        true,
    );
    assert_eq!(v["status"], "done", "{v}");
    assert_eq!(v["verdict"], "ACCEPTED", "{v}");
    assert_eq!(v["compile_output"], "", "{v}");
    let tests = v["tests"].as_array().expect("tests");
    assert_eq!(tests.len(), 3);
    for (i, t) in tests.iter().enumerate() {
        assert_eq!(t["verdict"], "ACCEPTED", "{t}");
        assert_eq!(t["index"], i);
        assert_eq!(t["exit_code"], 0);
        assert!(
            t["memory_kb"].as_u64().unwrap() > 0,
            "peak memory from the cgroup: {t}"
        );
        assert!(
            t["wall_time_ms"].is_u64() && t["cpu_time_ms"].is_u64(),
            "{t}"
        );
    }
    assert_eq!(tests[2]["stdout"], "2000000000\n");
    // One `verdict` key for the submission and one per test (a duplicate
    // key once came from the view and the flattened report both).
    let id = v["id"].as_str().unwrap();
    let raw = d
        .req("GET", &format!("/v1/judge/submissions/{id}"), None)
        .text();
    assert_eq!(raw.matches("\"verdict\":").count(), 1 + 3, "{raw}");

    // A wrong answer on one test: that test's verdict is the submission's.
    let wrong = CPP_AB.replace("a+b", "(a==-5?1:a+b)");
    let v = submit(
        &d,
        &json!({"language": "cpp", "source": wrong, "tests": ab_tests()}),
        true,
    );
    assert_eq!(v["verdict"], "WRONG_ANSWER", "{v}");
    let verdicts: Vec<&str> = v["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(verdicts, ["ACCEPTED", "WRONG_ANSWER", "ACCEPTED"]);

    // Compilation errors come with the compiler's words.
    let v = submit(
        &d,
        &json!({"language": "cpp", "source": "int main() { return x; }", "tests": ab_tests()}),
        true,
    );
    assert_eq!(v["verdict"], "COMPILATION_ERROR", "{v}");
    assert!(
        v["compile_output"]
            .as_str()
            .unwrap()
            .contains("was not declared"),
        "{v}"
    );

    // Prints the answer, then sleeps: the wall clock decides. The CPU
    // limit is above the wall limit, so it cannot fire first even where
    // Python's start costs a second of CPU (the emulated CPU of the v2 VM
    // took 1,026 ms).
    let v = submit(
        &d,
        &json!({"language": "python",
                "source": "import time\nprint(sum(map(int, input().split())), flush=True)\ntime.sleep(30)\n",
                "tests": [{"stdin": "1 2\n", "expected_output": "3\n"}],
                "limits": {"cpu_time_ms": 3000, "wall_time_ms": 1500}}),
        true,
    );
    assert_eq!(v["verdict"], "TIME_LIMIT_EXCEEDED", "{v}");
    assert_eq!(v["time_limit"], "wall", "{v}");
    assert_eq!(v["tests"][0]["stdout"], "3\n", "{v}");
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn bad_submissions_are_refused_by_name() {
    let d = daemon!();
    let cases = [
        (
            json!({"language": "cobol", "source": "x", "tests": [{}]}),
            "invalid_submission",
            "cobol",
        ),
        (
            json!({"language": "c", "source": "x", "tests": []}),
            "invalid_submission",
            "no tests",
        ),
        (
            json!({"language": "c", "source": "x", "tests": [{}], "limits": {"memory_mb": 1}}),
            "invalid_submission",
            "limits.memory_mb",
        ),
        (
            json!({"language": "c", "source": "x", "tests": [{}], "extra": 1}),
            "invalid_request",
            "extra",
        ),
        (
            json!({"language": "c", "source": "x", "tests": [{}], "checker": {"kind": "regex"}}),
            "invalid_request",
            "regex",
        ),
    ];
    for (body, code, needle) in cases {
        let r = d.req_json("POST", "/v1/judge/submissions", &body);
        r.assert_error(400, code);
        assert!(
            r.json()["message"].as_str().unwrap().contains(needle),
            "{}",
            r.text()
        );
    }
    let r = d.req_json(
        "POST",
        "/v1/judge/submissions?wait=maybe",
        &json!({"language": "c", "source": "x", "tests": [{}]}),
    );
    r.assert_error(400, "invalid_request");
    d.req("GET", "/v1/judge/submissions/sub-nope", None)
        .assert_error(404, "submission_not_found");
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn the_language_table_reports_probed_versions() {
    let d = daemon!();
    let deadline = Instant::now() + Duration::from_secs(60);
    let langs = loop {
        let v = d.req("GET", "/v1/judge/languages", None).json();
        let list = v.as_array().expect("a list").clone();
        if list.iter().all(|l| l["status"] != "unknown") {
            break list;
        }
        assert!(Instant::now() < deadline, "never probed: {v}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let get = |name: &str| {
        langs
            .iter()
            .find(|l| l["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing from {langs:?}"))
    };
    for (name, id, version) in [
        ("c", 50, "gcc"),
        ("cpp", 54, "g++"),
        ("python", 71, "Python 3"),
        ("java", 62, "17"),
        ("javascript", 63, "v"),
        ("bash", 46, "bash"),
    ] {
        let l = get(name);
        assert_eq!(l["judge0_id"], id, "{l}");
        assert_eq!(l["status"], "available", "{l}");
        assert!(l["version"].as_str().unwrap().contains(version), "{l}");
    }
    for name in ["rust", "go"] {
        let l = get(name);
        assert!(l["status"] == "available" || l["reason"].is_string(), "{l}");
    }
}

/// A submission that takes about `secs` of wall time (bash sleeps).
fn slow(secs: f64) -> Value {
    json!({"language": "bash",
           "source": format!("read a b; sleep {secs}; echo $((a+b)); date +%s%N >&2"),
           "tests": [{"stdin": "2 3\n", "expected_output": "5\n"}],
           "limits": {"cpu_time_ms": 2000, "wall_time_ms": 10000}})
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_full_queue_answers_429_with_retry_after() {
    let d = daemon!("judge_slots = 1\njudge_queue_max = 1\n");
    let first = submit(&d, &slow(1.5), false)["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_status(&d, &first, "running");
    let second = submit(&d, &slow(0.1), false);
    assert_eq!(second["status"], "queued", "{second}");
    assert_eq!(second["queue_position"], 0, "{second}");
    let r = d.req_json("POST", "/v1/judge/submissions", &slow(0.1));
    r.assert_error(429, "queue_full");
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    // Both accepted ones finish; then there is room again.
    assert_eq!(wait_done(&d, &first, None)["verdict"], "ACCEPTED");
    let second = second["id"].as_str().unwrap();
    assert_eq!(wait_done(&d, second, None)["verdict"], "ACCEPTED");
    submit(&d, &slow(0.0), true);
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn tenants_are_served_round_robin() {
    let d = daemon!(TOKENS);
    // One slot: alice's first runs while the rest queue up.
    let a: Vec<String> = (0..4).map(|_| submit_as(&d, ALICE, &slow(0.3))).collect();
    let b = submit_as(&d, BOB, &slow(0.3));
    // Each program printed when it ran (ns since the epoch) on stderr.
    let ran_at = |id: &str, token: &str| -> u128 {
        let v = wait_done(&d, id, Some(token));
        assert_eq!(v["verdict"], "ACCEPTED", "{v}");
        v["tests"][0]["stderr"]
            .as_str()
            .unwrap()
            .trim()
            .parse()
            .expect("a time")
    };
    let bob = ran_at(&b, BOB);
    let alice: Vec<u128> = a.iter().map(|id| ran_at(id, ALICE)).collect();
    assert!(
        alice.windows(2).all(|w| w[0] < w[1]),
        "alice's in order: {alice:?}"
    );
    // Served: a0 (already running), a1, then bob's turn before a2 and a3.
    assert!(
        alice[1] < bob && bob < alice[2],
        "bob waited for all of alice's: alice {alice:?}, bob {bob}"
    );
    // Tenants see only their own submissions.
    let (status, v) = get_as(&d, BOB, &a[0]);
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["code"], "submission_not_found");
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn accepted_submissions_survive_a_kill_9_of_the_daemon() {
    let mut d = daemon!("judge_slots = 1\n");
    let ids: Vec<String> = (0..3)
        .map(|_| {
            submit(&d, &slow(2.0), false)["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    wait_status(&d, &ids[0], "running");
    let helpers = d.helpers();
    d.kill9();
    // What ran with the daemon is gone with it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while helpers
        .iter()
        .any(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
    {
        assert!(
            Instant::now() < deadline,
            "helpers {helpers:?} outlived the daemon"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    d.spawn();
    for id in &ids {
        let v = wait_done(&d, id, None);
        assert_eq!(v["verdict"], "ACCEPTED", "{id} after the restart: {v}");
    }
    assert!(
        d.log_text().contains("queued again"),
        "the restart says so: {}",
        d.log_text()
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn progress_streams_as_server_sent_events() {
    let d = daemon!();
    let v = submit(
        &d,
        &json!({"language": "c",
                "source": "#include <stdio.h>\nint main(){long a,b;scanf(\"%ld %ld\",&a,&b);printf(\"%ld\\n\",a+b);}",
                "tests": ab_tests()}),
        false,
    );
    let id = v["id"].as_str().unwrap();
    let r = d.req("GET", &format!("/v1/judge/submissions/{id}/events"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/event-stream")));
    let names: Vec<String> = r
        .text()
        .lines()
        .filter_map(|l| l.strip_prefix("event: ").map(str::to_string))
        .collect();
    assert_eq!(
        names.first().map(String::as_str),
        Some("compile_start"),
        "{names:?}"
    );
    assert_eq!(
        names.get(1).map(String::as_str),
        Some("compile_done"),
        "{names:?}"
    );
    assert_eq!(names.last().map(String::as_str), Some("done"), "{names:?}");
    assert_eq!(
        names.iter().filter(|n| *n == "test_start").count(),
        3,
        "{names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| *n == "test_done").count(),
        3,
        "{names:?}"
    );
    let done = r
        .text()
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .next_back()
        .map(|d| runtimed_tests::serde_json::from_str::<Value>(d).unwrap())
        .unwrap();
    assert_eq!(done["verdict"], "ACCEPTED", "{done}");
    // Once done, the stream replays the stored result.
    let r = d.req("GET", &format!("/v1/judge/submissions/{id}/events"), None);
    let text = r.text();
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(names, ["test_done", "test_done", "test_done", "done"]);
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_resubmitted_source_compiles_once_per_tenant() {
    let d = daemon!(TOKENS);
    // The key holds the probed compiler version: wait for the probe.
    let deadline = Instant::now() + Duration::from_secs(60);
    let cpp_ready = || {
        let v = d.req("GET", "/v1/judge/languages", None).json();
        v.as_array().is_some_and(|l| {
            l.iter()
                .any(|l| l["name"] == "cpp" && l["status"] == "available")
        })
    };
    while !cpp_ready() {
        assert!(Instant::now() < deadline, "the probe never finished");
        std::thread::sleep(Duration::from_millis(50));
    }
    let body = json!({"language": "cpp", "source": CPP_AB, "tests": ab_tests()});
    let judged = |token: &str| {
        let id = submit_as(&d, token, &body);
        let v = wait_done(&d, &id, Some(token));
        assert_eq!(v["verdict"], "ACCEPTED", "{v}");
        v["compile_cached"].as_bool().expect("compile_cached")
    };
    assert!(!judged(ALICE), "the first compile is a real one");
    assert!(judged(ALICE), "the same source again comes from the cache");
    // Another tenant's identical source is compiled for them: a fast answer
    // must not tell bob what alice submitted.
    assert!(!judged(BOB));
    // A compile that failed is not kept.
    let bad = json!({"language": "cpp", "source": "int main() { return x; }", "tests": ab_tests()});
    for _ in 0..2 {
        let id = submit_as(&d, ALICE, &bad);
        let v = wait_done(&d, &id, Some(ALICE));
        assert_eq!(v["verdict"], "COMPILATION_ERROR", "{v}");
        assert_eq!(v["compile_cached"], false, "{v}");
    }
}

/// What a test's program can leave in its network namespace for the next
/// one: Unix sockets (the judge's seccomp profile allows no other family),
/// bound to an abstract name or kept alive in flight. Each test first
/// counts the sockets it can see (it must see none: "0"), then binds the
/// abstract name `rtd-probe` (EADDRINUSE were two tests running in one
/// namespace at once), leaves a socket in flight in its own queue (a cycle
/// that outlives the process until the kernel's collector runs; the helper
/// drops a namespace that still holds it) and sleeps, so that the two
/// slots overlap.
const PY_NET_TRACES: &str = r#"
import os, socket, sys, time
with open("/proc/net/unix") as f:
    seen = len(f.read().splitlines()) - 1
u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
u.bind("\0rtd-probe")
u.listen()
a, b = socket.socketpair()
socket.send_fds(b, [b"x"], [a.fileno()])
a.close(); b.close()
time.sleep(0.2)
print(seen)
print(os.readlink("/proc/self/ns/net"), file=sys.stderr)
"#;

/// A program that leaves nothing behind and says which namespace it ran in.
const PY_NET_CLEAN: &str = r#"
import os, sys
print("ok")
print(os.readlink("/proc/self/ns/net"), file=sys.stderr)
"#;

fn stderrs(v: &Value) -> Vec<String> {
    v["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .map(|t| t["stderr"].as_str().unwrap_or_default().trim().to_string())
        .collect()
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn tests_reuse_network_namespaces_but_never_see_each_others_sockets() {
    let d = daemon!("judge_slots = 2\n");
    let tests = |expected: &str| {
        json!((0..8)
            .map(|_| json!({"stdin": "", "expected_output": expected}))
            .collect::<Vec<_>>())
    };
    let v = submit(
        &d,
        &json!({"language": "python", "source": PY_NET_TRACES, "tests": tests("0\n")}),
        true,
    );
    assert_eq!(
        v["verdict"], "ACCEPTED",
        "a test saw another's sockets: {v}"
    );

    let v = submit(
        &d,
        &json!({"language": "python", "source": PY_NET_CLEAN, "tests": tests("ok\n")}),
        true,
    );
    assert_eq!(v["verdict"], "ACCEPTED", "{v}");
    let seen = stderrs(&v);
    assert!(
        seen.iter().all(|s| s.starts_with("net:[")),
        "no namespace printed: {seen:?}"
    );
    let distinct: std::collections::BTreeSet<&String> = seen.iter().collect();
    assert!(
        distinct.len() < seen.len(),
        "8 tests in 2 slots ran in {} namespaces: none was reused: {seen:?}",
        distinct.len()
    );
    // The daemon holds the namespaces the clean tests ran in, for the next.
    let held: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", d.pid()))
        .expect("the daemon's fds")
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|l| l.display().to_string())
        .filter(|l| l.starts_with("net:["))
        .collect();
    assert!(
        distinct.iter().any(|ns| held.contains(ns)),
        "the daemon holds {held:?}, none of the tests' {distinct:?}"
    );
}
