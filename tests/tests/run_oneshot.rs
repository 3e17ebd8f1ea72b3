//! `POST /v1/run` on the one-shot path: what it reports that an exec in a
//! session cannot (`cpu_timeout` under `limits.cpu_time`, `pids_limit`),
//! the clean network namespaces it reuses and the dirty ones it drops,
//! the files its sandbox's PID 1 writes (and the errors for files that
//! cannot be written), and a daemon shutting down under a run.
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use runtimed_tests::daemon::{http, Daemon};
use runtimed_tests::serde_json::{json, Value};
use runtimed_tests::{daemon, host_procs_matching, unique, wait_for};

/// Generous: the machine is loaded.
const WITHIN: Duration = Duration::from_secs(30);

fn run(d: &Daemon, body: &Value) -> Value {
    let r = d.req_json("POST", "/v1/run", body);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_run_past_its_cpu_time_ends_as_cpu_timeout() {
    let d = daemon!();
    let v = run(
        &d,
        &json!({
            "argv": ["sh", "-c", "while :; do :; done"],
            "limits": {"cpu_time": "300ms"},
            // Far longer than the CPU time: only the CPU limit can end it
            // before this.
            "timeout_ms": 60_000,
        }),
    );
    assert_eq!(v["termination"], "cpu_timeout", "{v}");
    let cpu =
        v["usage"]["cpu_user_us"].as_u64().unwrap() + v["usage"]["cpu_system_us"].as_u64().unwrap();
    assert!(cpu >= 250_000, "it ran on the CPU for its limit: {v}");
    // A short CPU limit on a program that sleeps does not fire.
    let v = run(
        &d,
        &json!({"argv": ["sleep", "0.5"], "limits": {"cpu_time": "300ms"}}),
    );
    assert_eq!(v["termination"], "exited", "{v}");
    assert_eq!(v["exit_code"], 0, "{v}");
    let m = d.req("GET", "/metrics", None).text();
    assert!(
        m.contains("runtimed_results_total{termination=\"cpu_timeout\"} 1"),
        "{m}"
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn cpu_time_is_parsed_as_the_cli_parses_it_and_refused_where_it_cannot_apply() {
    let d = daemon!();
    for bad in ["abc", "0s", "25h", "-1s", "1 fortnight"] {
        d.req_json(
            "POST",
            "/v1/run",
            &json!({"argv": ["true"], "limits": {"cpu_time": bad}}),
        )
        .assert_error(400, "limit_out_of_range");
    }
    // The CLI's forms: a bare number is seconds, fractions are fine.
    for good in ["2", "1.5s", "750ms", "1m"] {
        let v = run(&d, &json!({"argv": ["true"], "limits": {"cpu_time": good}}));
        assert_eq!(v["termination"], "exited", "{good}: {v}");
    }
    // A session has no one program to limit.
    d.req_json(
        "POST",
        "/v1/sessions",
        &json!({"limits": {"cpu_time": "1s"}}),
    )
    .assert_error(400, "invalid_request");
    let l = d.req("GET", "/v1/sessions", None).json();
    assert!(l["sessions"].as_array().unwrap().is_empty(), "{l}");
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_program_that_fails_at_its_pids_limit_is_reported_as_pids_limit() {
    let d = daemon!();
    // Forks sleepers until a fork is refused, which raises: exit 1.
    let bomb = "import os, time\n\
                for i in range(200):\n    \
                    if os.fork() == 0:\n        \
                        time.sleep(60)\n        \
                        os._exit(0)\n";
    let v = run(
        &d,
        &json!({"argv": ["python3", "-c", bomb], "limits": {"pids": 16}, "timeout_ms": 60_000}),
    );
    assert_eq!(v["termination"], "pids_limit", "{v}");
    assert_eq!(v["exit_code"], 1, "{v}");
    assert!(
        v["stderr"].as_str().unwrap().contains("BlockingIOError"),
        "the fork was refused: {v}"
    );
}

fn netns_free(d: &Daemon) -> u64 {
    let m = d.req("GET", "/metrics", None).text();
    m.lines()
        .find_map(|l| l.strip_prefix("runtimed_netns_pool_free "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no runtimed_netns_pool_free in\n{m}"))
}

fn netns_of(d: &Daemon, extra: &str) -> String {
    let script = format!("{extra}readlink /proc/self/ns/net");
    let v = run(d, &json!({"argv": ["sh", "-c", script]}));
    assert_eq!(v["exit_code"], 0, "{v}");
    v["stdout"].as_str().unwrap().trim().to_string()
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn runs_reuse_clean_network_namespaces_and_drop_dirty_ones() {
    let d = daemon!();
    assert_eq!(netns_free(&d), 0, "nothing ran yet");
    let first = netns_of(&d, "");
    // The first run's namespace was made for it and given back clean.
    assert_eq!(netns_free(&d), 1);
    // The next run takes it (one free namespace, one run at a time) and
    // gives it back again.
    let second = netns_of(&d, "");
    assert_eq!(second, first, "the pooled namespace was reused");
    assert_eq!(netns_free(&d), 1);
    // While a run holds it, it is not free.
    let marker = unique("netns-hold");
    let d2 = d.socket.clone();
    let m2 = marker.clone();
    let holder = std::thread::spawn(move || {
        let s = UnixStream::connect(&d2).unwrap();
        let body = json!({"argv": ["sh", "-c", "sleep 3", &m2]}).to_string();
        http(
            s,
            "POST",
            "/v1/run",
            Some(body.as_bytes()),
            &[("Content-Type", "application/json")],
        )
        .unwrap()
    });
    let held = wait_for(WITHIN, || {
        (!host_procs_matching(&marker).is_empty()).then_some(())
    });
    assert!(held.is_some(), "the holding run did not start");
    assert_eq!(netns_free(&d), 0, "the running run holds the namespace");
    assert_eq!(holder.join().unwrap().status, 200);
    assert_eq!(netns_free(&d), 1);
    // A run that leaves a socket behind in it (a TCP connection in
    // TIME_WAIT outlives every process): the namespace is dropped.
    let dirty = "import socket\n\
                 s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n\
                 c = socket.create_connection(s.getsockname()); a, _ = s.accept()\n\
                 c.close(); a.close()\n";
    let v = run(&d, &json!({"argv": ["python3", "-c", dirty]}));
    assert_eq!(v["exit_code"], 0, "{v}");
    assert_eq!(
        netns_free(&d),
        0,
        "the dirtied namespace was not given back"
    );
    // The next run gets a clean one of its own (made for it: nothing
    // was free), which it gives back.
    let v = run(
        &d,
        &json!({"argv": ["sh", "-c", "cat /proc/net/tcp | wc -l"]}),
    );
    assert_eq!(
        v["stdout"], "1\n",
        "no socket of the dirty run is seen: {v}"
    );
    assert_eq!(netns_free(&d), 1);
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn files_land_before_the_program_and_collisions_get_the_files_api_errors() {
    let d = daemon!();
    let v = run(
        &d,
        &json!({
            "argv": ["sh", "-c", "cat a/b/c; stat -c '%n %a %u %g' a a/b a/b/c top"],
            "files": [{"path": "a/b/c", "content": "deep\n"},
                      {"path": "./top", "content": "AAEC", "encoding": "base64"}],
        }),
    );
    assert_eq!(
        v["stdout"],
        "deep\na 755 1000 1000\na/b 755 1000 1000\na/b/c 644 1000 1000\ntop 644 1000 1000\n",
        "{v}"
    );
    // The same name twice: the second wins, whole.
    let v = run(
        &d,
        &json!({"argv": ["cat", "f"], "files": [{"path": "f", "content": "longer first"}, {"path": "f", "content": "2nd"}]}),
    );
    assert_eq!(v["stdout"], "2nd", "{v}");
    let refused = |files: Value, status: u16, code: &str| {
        let body = json!({"argv": ["true"], "files": files, "limits": {"disk": "1M"}});
        let r = d.req_json("POST", "/v1/run", &body);
        r.assert_error(status, code);
        let msg = r.json()["message"].as_str().unwrap().to_string();
        assert!(
            !msg.contains(&*d.dir.path().to_string_lossy()),
            "a host path shows: {msg}"
        );
        msg
    };
    let msg = refused(
        json!([{"path": "a", "content": "x"}, {"path": "a/b", "content": "y"}]),
        409,
        "not_a_directory",
    );
    // The path that failed, as the files API names it.
    assert!(msg.contains("/a"), "{msg}");
    // A directory on the way that is not itself one of the files.
    refused(
        json!([{"path": "x", "content": "x"}, {"path": "x/y/z", "content": "y"}]),
        409,
        "not_a_directory",
    );
    refused(
        json!([{"path": "a/b", "content": "x"}, {"path": "a", "content": "y"}]),
        409,
        "is_a_directory",
    );
    refused(
        json!([{"path": "../x", "content": "x"}]),
        400,
        "invalid_path",
    );
    refused(json!([{"path": "/", "content": "x"}]), 400, "invalid_path");
    refused(
        json!([{"path": "a\u{0}b", "content": "x"}]),
        400,
        "invalid_path",
    );
    // More than the workspace holds (its size is limits.disk, 1M here).
    let big = "x".repeat(3 << 20);
    refused(
        json!([{"path": "big", "content": big}]),
        413,
        "workspace_full",
    );
    let m = d.req("GET", "/metrics", None).text();
    assert!(
        m.contains("runtimed_runs_total 2"),
        "refused runs ran nothing:\n{m}"
    );
    let left = wait_for(WITHIN, || d.helpers().is_empty().then_some(()));
    assert!(left.is_some(), "helpers left: {:?}", d.helpers());
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_run_in_flight_when_the_daemon_stops_ends_at_once_with_shutting_down() {
    let mut d = daemon!();
    let marker = unique("run-at-shutdown");
    let mut s = UnixStream::connect(&d.socket).unwrap();
    let body =
        json!({"argv": ["sh", "-c", "sleep 600", &marker], "timeout_ms": 600_000}).to_string();
    write!(
        s,
        "POST /v1/run HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let up = wait_for(WITHIN, || {
        (!host_procs_matching(&marker).is_empty()).then_some(())
    });
    assert!(up.is_some(), "the run did not start");
    let asked = Instant::now();
    assert_eq!(d.stop(), Some(0));
    // Well before the 5 s the daemon gives connections to finish.
    assert!(
        asked.elapsed() < Duration::from_secs(15),
        "{:?}",
        asked.elapsed()
    );
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("shutting_down"), "{answer}");
    let gone = wait_for(WITHIN, || {
        host_procs_matching(&marker).is_empty().then_some(())
    });
    assert!(
        gone.is_some(),
        "the run outlived the daemon: {:?}",
        host_procs_matching(&marker)
    );
}
