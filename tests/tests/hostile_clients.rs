//! Hostile clients of the daemon: clients that disconnect mid-request,
//! clients that stay connected and read nothing, clients that ask for
//! floods of output and terminals, and the CLI's caller that gets a flood
//! into its pipe. Each test asserts what it sees from outside: host
//! processes (found by a marker in their argv), helpers and cgroup
//! directories, quota answers, the daemon's VmHWM from /proc, bytes read.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use runtimed_tests::daemon::{dechunk, http, Daemon};
use runtimed_tests::serde_json::{self, json, Value};
use runtimed_tests::{daemon, Termination, EXIT_KILLED};
use runtimed_tests::{harness, host_cgroup_dirs, host_procs_matching, unique, wait_for, MIB};

/// A small quota, so that leaked sandboxes show up as 429s quickly.
const QUOTA: &str = "max_sessions_per_tenant = 2\n";

/// Generous: the machine is loaded.
const GONE_WITHIN: Duration = Duration::from_secs(30);

/// Writes one HTTP request on a fresh Unix-socket connection and returns
/// the connection without reading anything.
fn send_only(d: &Daemon, method: &str, path: &str, body: &Value) -> UnixStream {
    let mut s = UnixStream::connect(&d.socket).expect("connect");
    let body = body.to_string();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("send request");
    s
}

/// Pids of host processes with `marker` in their argv.
fn marked(marker: &str) -> Vec<i32> {
    host_procs_matching(marker)
        .into_iter()
        .map(|p| p.pid)
        .collect()
}

/// Waits until a process with `marker` runs; returns its pid.
fn wait_marked(d: &Daemon, marker: &str) -> i32 {
    wait_for(GONE_WITHIN, || marked(marker).first().copied()).unwrap_or_else(|| {
        panic!(
            "no process with {marker} started; daemon log:\n{}",
            d.log_text()
        )
    })
}

/// The host cgroup directories of `pid` that belong to a sandbox (their
/// path names a session id `s-...`).
fn sandbox_cgroups(pid: i32) -> Vec<PathBuf> {
    host_cgroup_dirs(pid)
        .into_values()
        .filter(|p| p.to_string_lossy().contains("/s-"))
        .collect()
}

/// Waits until no process with `marker` is left (and the given cgroup
/// directories are gone); fails with what is left.
fn assert_gone(d: &Daemon, marker: &str, cgroups: &[PathBuf], what: &str) {
    let gone = wait_for(GONE_WITHIN, || {
        (marked(marker).is_empty() && cgroups.iter().all(|c| !c.exists())).then_some(())
    });
    assert!(
        gone.is_some(),
        "{what}: left running after the client went away: processes {:?}, cgroups {:?}\n{}",
        host_procs_matching(marker),
        cgroups.iter().filter(|c| c.exists()).collect::<Vec<_>>(),
        d.log_text()
    );
}

/// A `sh` loop whose every process carries `marker` (as `$0`): forks of
/// the shell keep its argv.
fn marked_loop(marker: &str) -> Value {
    json!(["sh", "-c", "while :; do sleep 1; done", marker])
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_run_whose_client_disconnects_is_killed_and_frees_its_quota_slot() {
    let d = daemon!(QUOTA);
    // One more disconnect than the quota: each must give its slot back.
    for round in 0..3 {
        let marker = unique("hostile-run");
        let conn = send_only(
            &d,
            "POST",
            "/v1/run",
            &json!({"argv": marked_loop(&marker), "timeout_ms": 600_000}),
        );
        let pid = wait_marked(&d, &marker);
        let cgroups = sandbox_cgroups(pid);
        assert!(!cgroups.is_empty(), "the run is in a sandbox cgroup");
        drop(conn);
        assert_gone(&d, &marker, &cgroups, &format!("/v1/run, round {round}"));
    }
    let helpers = wait_for(GONE_WITHIN, || d.helpers().is_empty().then_some(()));
    assert!(
        helpers.is_some(),
        "helpers left: {:?}\n{}",
        d.helpers(),
        d.log_text()
    );
    // The tenant's quota is whole again: two sessions and a run.
    let a = d.create_session(&json!({}));
    let b = d.create_session(&json!({}));
    let r = d.req_json("POST", "/v1/run", &json!({"argv": ["true"]}));
    r.assert_error(429, "quota_exceeded");
    for id in [a, b] {
        assert_eq!(
            d.req("DELETE", &format!("/v1/sessions/{id}"), None).status,
            204
        );
    }
    let r = d.req_json("POST", "/v1/run", &json!({"argv": ["true"]}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["exit_code"], 0);
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_fork_bomb_run_whose_client_disconnects_is_killed_whole() {
    let d = daemon!(QUOTA);
    let marker = unique("hostile-bomb");
    // Every fork of the shell keeps its argv, so all of the bomb is marked.
    // The bomb is set off again and again: once forks fail, its tree
    // collapses within ~0.1 s, and a one-shot run ends (whole) when its
    // program does, so a single bomb could be over before the client
    // goes away.
    let conn = send_only(
        &d,
        "POST",
        "/v1/run",
        &json!({
            "argv": ["sh", "-c", "f() { f | f & wait; }; while :; do f; done", &marker],
            "limits": {"pids": 64},
            "timeout_ms": 600_000,
        }),
    );
    wait_marked(&d, &marker);
    // Its processes come and go: any one still there shows the cgroup.
    let cgroups = wait_for(GONE_WITHIN, || {
        marked(&marker)
            .into_iter()
            .map(sandbox_cgroups)
            .find(|c| !c.is_empty())
    })
    .expect("the bomb is in a sandbox cgroup");
    // Let it fill its pids limit.
    let grown = wait_for(GONE_WITHIN, || (marked(&marker).len() >= 16).then_some(()));
    assert!(grown.is_some(), "the bomb did not fork");
    drop(conn);
    assert_gone(&d, &marker, &cgroups, "fork bomb run");
    let helpers = wait_for(GONE_WITHIN, || d.helpers().is_empty().then_some(()));
    assert!(helpers.is_some(), "helpers left: {:?}", d.helpers());
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn an_exec_whose_client_disconnects_is_killed_captured_or_streamed() {
    let d = daemon!(QUOTA);
    let id = d.create_session(&json!({}));
    for stream in [false, true] {
        let marker = unique("hostile-exec");
        let path = format!("/v1/sessions/{id}/exec?stream={stream}");
        let conn = send_only(
            &d,
            "POST",
            &path,
            &json!({"argv": marked_loop(&marker), "timeout_ms": 600_000}),
        );
        wait_marked(&d, &marker);
        drop(conn);
        assert_gone(&d, &marker, &[], &format!("exec, stream={stream}"));
    }
    // The session itself lives on and works.
    let r = d.exec(&id, &["echo", "still here"]);
    assert_eq!(r["stdout"], "still here\n");
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn timeout_holds_for_a_streamed_exec_whose_client_reads_nothing() {
    let d = daemon!(QUOTA);
    let id = d.create_session(&json!({}));
    let marker = unique("hostile-stall");
    // A flood that fills every buffer between it and the client, which
    // reads nothing.
    let mut conn = send_only(
        &d,
        "POST",
        &format!("/v1/sessions/{id}/exec?stream=true"),
        &json!({"argv": ["sh", "-c", "yes flood", &marker], "timeout_ms": 2000,
                "output_limit": 64 * MIB}),
    );
    wait_marked(&d, &marker);
    // Still connected, reading nothing: the wall clock must end it.
    assert_gone(&d, &marker, &[], "streamed exec past its timeout");
    // Read it all now: the answer ends with the timeout.
    conn.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).expect("read the stream");
    let text = String::from_utf8_lossy(&raw);
    let last = text
        .lines()
        .rev()
        .find(|l| l.contains("\"type\":\"exit\""))
        .unwrap_or_else(|| panic!("no exit line in {} bytes", raw.len()));
    let exit: Value = serde_json::from_str(last).expect("exit line");
    assert_eq!(exit["termination"], "wall_timeout", "{exit}");
}

// ---- the daemon's memory -------------------------------------------------------

/// `VmHWM` (peak resident set) of `pid` in bytes.
fn peak_rss(pid: i32) -> u64 {
    runtimed_tests::status_bytes(pid, "VmHWM:")
}

/// Runs `clients` at once, each with a fresh Unix-socket connection.
fn in_parallel<T: Send>(n: usize, client: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let client = &client;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n).map(|i| s.spawn(move || client(i))).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    })
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn streamed_output_floods_do_not_grow_the_daemon() {
    let d = daemon!();
    let id = d.create_session(&json!({}));
    d.exec(&id, &["true"]);
    let before = peak_rss(d.pid());
    const N: usize = 4;
    const BYTES: u64 = 64 * MIB;
    // Each stream takes the whole 64 MiB a stream may have, the client
    // reading as fast as it can, and one of them slowly.
    let sizes = in_parallel(N, |i| {
        let s = UnixStream::connect(&d.socket).expect("connect");
        let body = json!({"argv": ["sh", "-c", format!("yes | head -c {BYTES}")],
                          "output_limit": BYTES, "timeout_ms": 300_000})
        .to_string();
        let path = format!("/v1/sessions/{id}/exec?stream=true");
        if i == 0 {
            return read_ndjson_slowly(s, &path, &body);
        }
        let r = http(
            s,
            "POST",
            &path,
            Some(body.as_bytes()),
            &[("Content-Type", "application/json")],
        )
        .expect("stream");
        stream_bytes(&r.body)
    });
    let grown = peak_rss(d.pid()).saturating_sub(before);
    eprintln!(
        "daemon VmHWM grew by {} KiB over {N} streams of {BYTES} bytes",
        grown / 1024
    );
    for (stdout, exit) in &sizes {
        assert_eq!(*stdout, BYTES, "every byte streamed");
        assert_eq!(exit["termination"], "exited", "{exit}");
        assert_eq!(
            exit["stdout"], "",
            "the exit line does not repeat the output"
        );
    }
    // docs/limits.md: a stream holds a few chunks, well under 1 MiB; the
    // rest is the allocator's slack (3 MiB measured; 523 MiB before the
    // bound).
    assert!(
        grown < 16 * MIB,
        "the daemon grew by {} MiB streaming {N} x {} MiB",
        grown / MIB,
        BYTES / MIB
    );
}

/// The stdout bytes of an NDJSON exec stream and its exit line.
fn stream_bytes(body: &[u8]) -> (u64, Value) {
    use base64::Engine;
    let mut n = 0;
    let mut exit = Value::Null;
    for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let v: Value = serde_json::from_slice(line).expect("ndjson line");
        match v["type"].as_str() {
            Some("stdout") => {
                n += base64::engine::general_purpose::STANDARD
                    .decode(v["data"].as_str().unwrap_or_default())
                    .expect("base64")
                    .len() as u64
            }
            Some("exit") => exit = v,
            _ => {}
        }
    }
    (n, exit)
}

/// A client that reads an exec stream 64 KiB at a time, pausing between
/// reads (the daemon must slow the program down, not buffer for it).
fn read_ndjson_slowly(mut s: UnixStream, path: &str, body: &str) -> (u64, Value) {
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("send");
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut reads = 0u64;
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => panic!("slow read: {e}"),
        }
        reads += 1;
        if reads % 16 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    stream_bytes(&dechunk(&raw[split + 4..]))
}

/// The capture budget of the test daemon: small, to show it binds.
const BUDGET: &str = "exec_output_budget = 33554432\nexec_output_budget_per_tenant = 33554432\n";

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn captured_output_is_bounded_by_the_budget_and_sent_whole() {
    let d = daemon!(BUDGET);
    let id = d.create_session(&json!({"limits": {"memory": "256M"}}));
    d.exec(&id, &["true"]);
    // Half the tenant's share of the budget is the most one exec may ask
    // for (both streams must fit).
    let r = d.req_json(
        "POST",
        &format!("/v1/sessions/{id}/exec"),
        &json!({"argv": ["true"], "output_limit": 16 * MIB + 1}),
    );
    r.assert_error(400, "limit_out_of_range");
    let before = peak_rss(d.pid());
    const N: usize = 4;
    const BYTES: u64 = 16 * MIB;
    // Control characters: JSON writes each as 6 bytes (\u0001), the
    // worst case of a text answer.
    // Each reserves 2 x 16 MiB, the whole budget: one runs at a time, the
    // others are refused before they start and retry.
    let results = in_parallel(N, |_| {
        let body = json!({"argv": ["sh", "-c", format!("head -c {BYTES} /dev/zero | tr '\\0' '\\1'")],
                          "output_limit": BYTES, "timeout_ms": 300_000});
        let deadline = Instant::now() + Duration::from_secs(240);
        let mut refused = 0;
        loop {
            let r = d.req_json("POST", &format!("/v1/sessions/{id}/exec"), &body);
            if r.status == 503 && Instant::now() < deadline {
                r.assert_error(503, "output_budget_exhausted");
                assert_eq!(r.header("retry-after"), Some("1"));
                refused += 1;
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            assert_eq!(
                r.status,
                200,
                "{}",
                String::from_utf8_lossy(&r.body[..200.min(r.body.len())])
            );
            let v: Value = serde_json::from_slice(&r.body).expect("JSON answer");
            let out = v["stdout"].as_str().unwrap_or_default();
            return (
                out.len() as u64,
                out.bytes().all(|b| b == 1),
                v["termination"].clone(),
                refused,
            );
        }
    });
    let grown = peak_rss(d.pid()).saturating_sub(before);
    eprintln!(
        "daemon VmHWM grew by {} KiB over {N} captured execs of {BYTES} bytes",
        grown / 1024
    );
    for (len, ones, termination, _) in &results {
        assert_eq!((*len, *ones), (BYTES, true), "the whole output came back");
        assert_eq!(termination, "exited");
    }
    assert!(
        results.iter().map(|r| r.3).sum::<u32>() > 0,
        "the budget never refused a capture"
    );
    // docs/limits.md: captured output held <= exec_output_budget (32 MiB
    // here) plus about 0.5 MiB of buffers per answer being sent.
    assert!(
        grown < 32 * MIB + 32 * MIB,
        "the daemon grew by {} MiB capturing {N} x {} MiB (budget 32 MiB)",
        grown / MIB,
        BYTES / MIB
    );
}

// ---- terminals -----------------------------------------------------------------

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn terminals_per_session_and_websocket_messages_are_capped() {
    let d = daemon!("max_ptys_per_session = 3\nws_max_message_bytes = 65536\n");
    let id = d.create_session(&json!({}));
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(d.ws(&format!("/v1/sessions/{id}/pty?argv=cat")));
    }
    // The fourth is refused instead of the upgrade, with a documented code.
    let s = UnixStream::connect(&d.socket).expect("connect");
    let refused =
        tungstenite::client::client(format!("ws://localhost/v1/sessions/{id}/pty?argv=cat"), s);
    match refused {
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
            assert_eq!(resp.status().as_u16(), 429);
            let body: Value =
                serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).expect("JSON");
            assert_eq!(body["code"], "too_many_ptys", "{body}");
        }
        Err(e) => panic!("fourth terminal: {e}"),
        Ok(_) => panic!("a fourth terminal was opened (cap 3)"),
    }
    let list = d
        .req("GET", &format!("/v1/sessions/{id}/ptys"), None)
        .json();
    assert_eq!(list["ptys"].as_array().map(Vec::len), Some(3), "{list}");

    // A message over the cap ends that connection (the terminal lives on).
    let mut ws = open.pop().expect("a terminal");
    let big = vec![b'x'; 256 * 1024];
    let _ = ws.send(tungstenite::Message::Binary(big.into()));
    let deadline = Instant::now() + GONE_WITHIN;
    let mut closed = false;
    while Instant::now() < deadline {
        match ws.read() {
            // Our own read timeout is not the server closing.
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Ok(tungstenite::Message::Close(_)) | Err(_) => {
                closed = true;
                break;
            }
            Ok(_) => {}
        }
    }
    assert!(closed, "a 256 KiB message was taken (cap 64 KiB)");
    // Within the cap, input still reaches a terminal.
    let mut ws = open.pop().expect("a terminal");
    ws.send(tungstenite::Message::Binary(b"hello-pty\n".to_vec().into()))
        .expect("send");
    runtimed_tests::daemon::ws_read_until(&mut ws, "hello-pty");
}

// ---- the CLI --------------------------------------------------------------------

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn runtimed_run_caps_output_into_a_pipe_by_default() {
    let h = harness!();
    let out = h
        .sandbox()
        .cmd(["sh", "-c", "yes | head -c 200M"])
        .watchdog(Duration::from_secs(120))
        .run();
    assert_eq!(out.code(), EXIT_KILLED, "{}", out.context());
    assert_eq!(out.report().termination, Termination::OutputLimit);
    assert_eq!(
        out.stdout_total,
        64 * MIB,
        "stdout holds exactly the default cap"
    );
    // Asked for explicitly, there is no cap.
    let out = h
        .sandbox()
        .opts(["--output-limit", "unlimited"])
        .cmd(["sh", "-c", "yes | head -c 80M"])
        .watchdog(Duration::from_secs(120))
        .run();
    assert_eq!(out.code(), 0, "{}", out.context());
    assert_eq!(out.stdout_total, 80 * MIB);
}
