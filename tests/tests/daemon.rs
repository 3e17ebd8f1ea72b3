//! End-to-end tests of `runtimed serve`: a real daemon on a temp socket
//! and a loopback port, a real HTTP client and a real WebSocket client.
//! Each test asserts what it can observe from outside: host processes,
//! cgroup directories, bytes read back, status codes and error codes.

use std::path::PathBuf;
use std::time::Duration;

use runtimed_tests::daemon;
use runtimed_tests::daemon::{ws_read_until, Daemon};
use runtimed_tests::serde_json::{json, Value};
use runtimed_tests::{host_cgroup_dirs, host_procs_matching, pid_alive, unique, wait_for};

/// A `sleep` with a unique duration, started in the background inside the
/// session: returns its host pid and host cgroup directories.
fn background_marker(d: &Daemon, id: &str) -> (i32, Vec<PathBuf>) {
    let n = unique("m").len() as u64 * 7919 + std::process::id() as u64 % 9973;
    let marker = format!("1000.{n}{}", std::process::id());
    let r = d.exec(
        id,
        &[
            "sh",
            "-c",
            &format!("sleep {marker} </dev/null >/dev/null 2>&1 &"),
        ],
    );
    assert_eq!(r["exit_code"], 0, "{r}");
    let pid = wait_for(Duration::from_secs(10), || {
        host_procs_matching(&marker)
            .into_iter()
            .find(|p| p.argv.first().is_some_and(|a| a == "sleep"))
            .map(|p| p.pid)
    })
    .expect("marker process visible on the host");
    let dirs: Vec<PathBuf> = host_cgroup_dirs(pid)
        .into_values()
        .filter(|p| p.to_string_lossy().contains(id))
        .collect();
    assert!(!dirs.is_empty(), "marker is in the session's cgroup");
    (pid, dirs)
}

fn has_cap_sys_resource() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 24) != 0)
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn session_create_exec_delete_leaves_nothing() {
    let d = daemon!();
    let id = d.create_session(
        &json!({"limits": {"memory": "128M", "pids": 64}, "labels": {"course": "os"}}),
    );
    let info = d.req("GET", &format!("/v1/sessions/{id}"), None).json();
    assert_eq!(info["state"], "running");
    assert_eq!(info["limits"]["memory_bytes"], 128 << 20);
    assert!(
        info["usage"]["memory_current_bytes"].as_u64().is_some(),
        "{info}"
    );

    // The process runs inside: its own pid namespace, uid 1000, no caps,
    // cwd /workspace, no network but lo.
    let r = d.exec(&id, &["sh", "-c", "echo $$; id -u; pwd; grep CapEff /proc/self/status; ls /sys/class/net 2>/dev/null || cat /proc/net/dev | tail -n +3 | cut -d: -f1"]);
    let out = r["stdout"].as_str().unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_ne!(
        lines[0], "1",
        "PID 1 is the session's init, not the program"
    );
    assert!(
        lines[0].parse::<i32>().unwrap() < 100,
        "pid inside is small: {out}"
    );
    assert_eq!(lines[1], "1000");
    assert_eq!(lines[2], "/workspace");
    assert_eq!(lines[3], "CapEff:\t0000000000000000");
    assert_eq!(lines[4].trim(), "lo", "{out}");
    // Processes of the session are killable by the OOM killer (PID 1 is
    // not, and they must not inherit that).
    // (Lowering PID 1's score needs CAP_SYS_RESOURCE, which some hosts
    // withhold even from root.)
    let r = d.exec(
        &id,
        &["cat", "/proc/self/oom_score_adj", "/proc/1/oom_score_adj"],
    );
    let pid1 = if has_cap_sys_resource() { "-1000" } else { "0" };
    assert_eq!(r["stdout"], format!("0\n{pid1}\n"), "{r}");
    assert_eq!(r["termination"], "exited");

    // State survives between execs (one workspace, one session).
    d.exec(&id, &["sh", "-c", "echo kept > note"]);
    assert_eq!(d.exec(&id, &["cat", "note"])["stdout"], "kept\n");

    // Label filter.
    let l = d.req("GET", "/v1/sessions?label=course=os", None).json();
    assert_eq!(l["sessions"].as_array().unwrap().len(), 1);
    let l = d.req("GET", "/v1/sessions?label=course=math", None).json();
    assert!(l["sessions"].as_array().unwrap().is_empty());

    let (pid, dirs) = background_marker(&d, &id);
    let r = d.req("DELETE", &format!("/v1/sessions/{id}"), None);
    assert_eq!(r.status, 204, "{}", r.text());
    // DELETE returns after the teardown: nothing of the session is left.
    assert!(!pid_alive(pid), "process {pid} survived DELETE");
    for dir in &dirs {
        assert!(!dir.exists(), "cgroup {} survived DELETE", dir.display());
    }
    d.req("GET", &format!("/v1/sessions/{id}"), None)
        .assert_error(404, "session_not_found");
    d.req("DELETE", &format!("/v1/sessions/{id}"), None)
        .assert_error(404, "session_not_found");
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn exec_results_limits_and_streaming() {
    let d = daemon!();
    let id = d.create_session(&json!({"env": {"GREETING": "hello"}}));
    let exec = |body: Value| {
        let r = d.req_json("POST", &format!("/v1/sessions/{id}/exec"), &body);
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    };
    let r = exec(
        json!({"argv": ["sh", "-c", "echo $GREETING $EXTRA; cat; echo err >&2; exit 7"], "stdin": "from-stdin\n", "env": {"EXTRA": "x"}}),
    );
    assert_eq!(r["stdout"], "hello x\nfrom-stdin\n");
    assert_eq!(r["stderr"], "err\n");
    assert_eq!(r["exit_code"], 7);
    assert_eq!(r["termination"], "exited");

    // Binary output comes back as base64.
    let r = exec(json!({"argv": ["printf", "\\377\\376"]}));
    assert_eq!(r["stdout_encoding"], "base64");
    assert_eq!(r["stdout"], "//4=");

    // Wall-clock timeout kills the process group.
    let r = exec(json!({"argv": ["sleep", "30"], "timeout_ms": 300}));
    assert_eq!(r["termination"], "wall_timeout");
    assert_eq!(r["signal"], 9);
    assert!(r["usage"]["wall_time_us"].as_u64().unwrap() < 10_000_000);

    // Output cap.
    let r = exec(json!({"argv": ["sh", "-c", "yes | head -c 1000000"], "output_limit": 1000}));
    assert_eq!(r["termination"], "output_limit");
    assert_eq!(r["stdout"].as_str().unwrap().len(), 1000);
    assert_eq!(r["stdout_truncated"], true);

    // Missing program: 127 with the failed step.
    let r = exec(json!({"argv": ["no-such-program"]}));
    assert_eq!(r["exit_code"], 127);
    assert_eq!(r["termination"], "setup_failed");
    assert_eq!(r["error"]["step"], "exec");
    assert_eq!(r["error"]["errno"], "ENOENT");

    // A forbidden syscall is refused inside (seccomp): unshare fails.
    let r = exec(json!({"argv": ["unshare", "-U", "true"]}));
    assert_ne!(r["exit_code"], 0, "{r}");

    // Streaming form: NDJSON chunks, then the exit line.
    let resp = d.req_json(
        "POST",
        &format!("/v1/sessions/{id}/exec?stream=true"),
        &json!({"argv": ["sh", "-c", "echo one; echo two >&2; exit 3"]}),
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/x-ndjson"));
    let lines: Vec<Value> = resp
        .text()
        .lines()
        .map(|l| runtimed_tests::serde_json::from_str(l).expect("ndjson line"))
        .collect();
    let decode = |v: &Value| {
        use base64::Engine;
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(v["data"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    let stdout: String = lines
        .iter()
        .filter(|l| l["type"] == "stdout")
        .map(decode)
        .collect();
    let stderr: String = lines
        .iter()
        .filter(|l| l["type"] == "stderr")
        .map(decode)
        .collect();
    assert_eq!(stdout, "one\n");
    assert_eq!(stderr, "two\n");
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "exit");
    assert_eq!(last["exit_code"], 3);
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn memory_limit_kills_with_oom_in_the_session() {
    let d = daemon!();
    let id = d.create_session(&json!({"limits": {"memory": "64M"}}));
    let r = d.req_json(
        "POST",
        &format!("/v1/sessions/{id}/exec"),
        &json!({"argv": ["python3", "-c", "x = bytearray(512 << 20)"], "timeout_ms": 60000}),
    );
    let r = r.json();
    assert_eq!(r["termination"], "oom_killed", "{r}");
    let info = d.req("GET", &format!("/v1/sessions/{id}"), None).json();
    assert!(info["usage"]["oom_kills"].as_u64().unwrap() >= 1, "{info}");
    // The session survives its program's OOM.
    assert_eq!(d.exec(&id, &["echo", "alive"])["stdout"], "alive\n");
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn files_round_trip_and_archives() {
    let d = daemon!();
    let id = d.create_session(&json!({"limits": {"disk": "4M"}}));
    let base = format!("/v1/sessions/{id}");
    let big = vec![7u8; 5 << 20];
    d.req("PUT", &format!("{base}/files/big"), Some(&big))
        .assert_error(413, "workspace_full");
    let data: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let r = d.req(
        "PUT",
        &format!("{base}/files/src/bin/data.bin?parents=true"),
        Some(&data),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        d.req("GET", &format!("{base}/files/src/bin/data.bin"), None)
            .body,
        data
    );
    // The program inside sees it, owned by the session user.
    let r = d.exec(
        &id,
        &[
            "sh",
            "-c",
            "stat -c '%U %s' src/bin/data.bin; echo made-inside > inside.txt",
        ],
    );
    assert_eq!(r["stdout"], "sandbox 70000\n");
    assert_eq!(
        d.req("GET", &format!("{base}/files/inside.txt"), None)
            .text(),
        "made-inside\n"
    );
    // Listing.
    let l = d.req("GET", &format!("{base}/files/src"), None).json();
    assert_eq!(l["entries"][0]["name"], "bin");
    assert_eq!(l["entries"][0]["type"], "dir");
    // Missing parent without ?parents.
    d.req("PUT", &format!("{base}/files/nope/x"), Some(b"x"))
        .assert_error(404, "file_not_found");
    // Archive out, delete, archive back in.
    let tar = d.req("GET", &format!("{base}/archive?path=src"), None);
    assert_eq!(tar.status, 200);
    assert_eq!(
        d.req("DELETE", &format!("{base}/files/src?recursive=true"), None)
            .status,
        204
    );
    d.req("GET", &format!("{base}/files/src/bin/data.bin"), None)
        .assert_error(404, "file_not_found");
    let r = d.req(
        "PUT",
        &format!("{base}/archive?path=restored"),
        Some(&tar.body),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        d.req("GET", &format!("{base}/files/restored/bin/data.bin"), None)
            .body,
        data
    );
    // The API acts as the session user: its permissions and its disk
    // limit apply.
    d.exec(&id, &["sh", "-c", "mkdir locked && chmod 000 locked"]);
    d.req("PUT", &format!("{base}/files/locked/x"), Some(b"x"))
        .assert_error(403, "permission_denied");
    d.req("GET", &format!("{base}/files/../../etc/passwd"), None);
    d.req("GET", &format!("{base}/files/a/..%2f..%2fetc"), None)
        .assert_error(400, "invalid_path");
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn hostile_symlinks_made_inside_never_reach_host_files() {
    let d = daemon!();
    let id = d.create_session(&json!({}));
    let base = format!("/v1/sessions/{id}");
    // A host file the attacker wants, and a host dir it wants to write to.
    let host = runtimed_tests::TempDir::world_writable("hostile");
    std::fs::write(host.join("secret"), "host-secret").unwrap();
    let hostdir = host.path().display().to_string();
    let r = d.exec(
        &id,
        &[
            "sh",
            "-c",
            &format!(
                "ln -s /etc/shadow shadow; ln -s {hostdir}/secret secret; ln -s {hostdir} hostdir; \
                 ln -s ../../../../../../.. up; ln -s /proc/1/root procroot; mkfifo fifo; echo ok"
            ),
        ],
    );
    assert_eq!(r["stdout"], "ok\n", "{r}");
    for path in [
        "shadow",
        "secret",
        "hostdir/secret",
        "up/etc/shadow",
        "up/etc/hostname",
        "procroot/etc/shadow",
    ] {
        let r = d.req("GET", &format!("{base}/files/{path}"), None);
        assert_ne!(r.status, 200, "{path}: served {:?}", r.text());
        assert!(
            !r.text().contains("host-secret"),
            "{path} leaked a host file"
        );
    }
    // Writes through the links land inside (or fail), never on the host.
    for path in ["hostdir/pwned", "up/pwned", "secret"] {
        let _ = d.req(
            "PUT",
            &format!("{base}/files/{path}?parents=true"),
            Some(b"pwned"),
        );
    }
    assert!(
        !host.join("pwned").exists(),
        "a write escaped into the host dir"
    );
    assert_eq!(
        std::fs::read_to_string(host.join("secret")).unwrap(),
        "host-secret"
    );
    assert!(!std::path::Path::new("/pwned").exists());
    // Removing a link removes the link, not its target.
    assert_eq!(
        d.req("DELETE", &format!("{base}/files/hostdir"), None)
            .status,
        204
    );
    assert!(host.join("secret").exists());
    // A FIFO is refused without blocking the daemon.
    let r = d.req("GET", &format!("{base}/files/fifo"), None);
    assert_eq!(r.status / 100, 4, "{}", r.text());
    // A tar that climbs out is refused.
    let evil = {
        let mut b = Vec::new();
        let mut h = [0u8; 512];
        let name = b"../../escape";
        h[..name.len()].copy_from_slice(name);
        h[100..107].copy_from_slice(b"0000644");
        h[124..135].copy_from_slice(b"00000000005");
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&x| x as u32).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        b.extend_from_slice(&h);
        let mut data = [0u8; 512];
        data[..5].copy_from_slice(b"owned");
        b.extend_from_slice(&data);
        b.extend_from_slice(&[0u8; 1024]);
        b
    };
    let r = d.req("PUT", &format!("{base}/archive?path=x"), Some(&evil));
    r.assert_error(400, "invalid_path");
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn pty_echo_resize_reconnect_and_exit() {
    let d = daemon!();
    let id = d.create_session(&json!({}));
    let mut ws = d.ws(&format!(
        "/v1/sessions/{id}/pty?cols=100&rows=30&argv=/bin/sh"
    ));
    ws.send(tungstenite::Message::Binary(
        b"echo hi-$((40+2))\r".to_vec().into(),
    ))
    .unwrap();
    ws_read_until(&mut ws, "hi-42");
    ws.send(tungstenite::Message::Binary(b"stty size\r".to_vec().into()))
        .unwrap();
    ws_read_until(&mut ws, "30 100");
    ws.send(tungstenite::Message::Text(
        r#"{"type":"resize","cols":132,"rows":50}"#.into(),
    ))
    .unwrap();
    ws.send(tungstenite::Message::Binary(b"stty size\r".to_vec().into()))
        .unwrap();
    ws_read_until(&mut ws, "50 132");
    ws.send(tungstenite::Message::Binary(
        b"echo before-$((1+1))-drop\r".to_vec().into(),
    ))
    .unwrap();
    ws_read_until(&mut ws, "before-2-drop");
    // Drop the connection: the terminal lives on.
    drop(ws);
    let list = d
        .req("GET", &format!("/v1/sessions/{id}/ptys"), None)
        .json();
    let ptys = list["ptys"].as_array().unwrap();
    assert_eq!(ptys.len(), 1, "{list}");
    let pty_id = ptys[0]["id"].as_str().unwrap().to_string();
    assert!(ptys[0]["exit_code"].is_null());
    // Reconnect: the scrollback is replayed, then it goes on.
    let mut ws = d.ws(&format!("/v1/sessions/{id}/ptys/{pty_id}"));
    let replay = ws_read_until(&mut ws, "before-2-drop");
    assert!(
        replay.contains("hi-42"),
        "scrollback holds the earlier output: {replay:?}"
    );
    ws.send(tungstenite::Message::Binary(
        b"echo after-$((2+2))\r".to_vec().into(),
    ))
    .unwrap();
    ws_read_until(&mut ws, "after-4");
    // Exit: the exit message with the shell's code, even while a
    // background child still holds the terminal open.
    ws.send(tungstenite::Message::Binary(
        b"sleep 60 &\r".to_vec().into(),
    ))
    .unwrap();
    ws.send(tungstenite::Message::Binary(b"exit 5\r".to_vec().into()))
        .unwrap();
    let rest = ws_read_until(&mut ws, r#""type":"exit""#);
    assert!(rest.contains(r#""code":5"#), "{rest:?}");
    // A terminal the client named.
    let mut named = d.ws(&format!(
        "/v1/sessions/{id}/pty?argv=/bin/sh&pty_id=editor-1"
    ));
    named
        .send(tungstenite::Message::Binary(
            b"echo N$((3))\r".to_vec().into(),
        ))
        .unwrap();
    ws_read_until(&mut named, "N3");
    let list = d
        .req("GET", &format!("/v1/sessions/{id}/ptys"), None)
        .json();
    assert!(
        list["ptys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == "editor-1"),
        "{list}"
    );
    // Several terminals per session, over TCP too.
    let mut a = d.ws_tcp(&format!("/v1/sessions/{id}/pty?argv=/bin/sh"));
    let mut b = d.ws_tcp(&format!("/v1/sessions/{id}/pty?argv=/bin/sh"));
    a.send(tungstenite::Message::Binary(
        b"echo A$((1))\r".to_vec().into(),
    ))
    .unwrap();
    b.send(tungstenite::Message::Binary(
        b"echo B$((2))\r".to_vec().into(),
    ))
    .unwrap();
    ws_read_until(&mut a, "A1");
    ws_read_until(&mut b, "B2");
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn ttl_and_idle_timeout_remove_sessions_and_their_processes() {
    let d = daemon!();
    let id = d.create_session(&json!({"ttl_seconds": 2}));
    let (pid, dirs) = background_marker(&d, &id);
    let gone = wait_for(Duration::from_secs(15), || {
        (d.req("GET", &format!("/v1/sessions/{id}"), None).status == 404).then_some(())
    });
    assert!(gone.is_some(), "session outlived its TTL");
    // The session leaves the list first; its teardown follows.
    let clean = wait_for(Duration::from_secs(15), || {
        (!pid_alive(pid) && dirs.iter().all(|d| !d.exists())).then_some(())
    });
    assert!(
        clean.is_some(),
        "process or cgroup left after TTL: {dirs:?}"
    );

    let idle = d.create_session(&json!({"idle_timeout_seconds": 2}));
    // Activity keeps it: exec every 500 ms for 3 s.
    for _ in 0..6 {
        d.exec(&idle, &["true"]);
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        d.req("GET", &format!("/v1/sessions/{idle}"), None).status,
        200
    );
    let gone = wait_for(Duration::from_secs(15), || {
        (d.req("GET", &format!("/v1/sessions/{idle}"), None).status == 404).then_some(())
    });
    assert!(gone.is_some(), "idle session was not removed");
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn errors_are_json_with_stable_codes_and_change_nothing() {
    let d = daemon!();
    let bad = |method: &str, path: &str, body: &[u8], status: u16, code: &str| {
        let s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
        let r = runtimed_tests::daemon::http(
            s,
            method,
            path,
            Some(body),
            &[("Content-Type", "application/json")],
        )
        .unwrap();
        r.assert_error(status, code);
    };
    bad("POST", "/v1/sessions", b"{not json", 400, "invalid_request");
    bad(
        "POST",
        "/v1/sessions",
        br#"{"limitz": {}}"#,
        400,
        "invalid_request",
    );
    bad(
        "POST",
        "/v1/sessions",
        br#"{"limits": {"memory": "1K"}}"#,
        400,
        "limit_out_of_range",
    );
    bad(
        "POST",
        "/v1/sessions",
        br#"{"limits": {"memory": "lots"}}"#,
        400,
        "limit_out_of_range",
    );
    bad(
        "POST",
        "/v1/sessions",
        br#"{"limits": {"pids": 0}}"#,
        400,
        "limit_out_of_range",
    );
    bad(
        "POST",
        "/v1/sessions",
        br#"{"limits": {"cpus": -1}}"#,
        400,
        "limit_out_of_range",
    );
    bad(
        "POST",
        "/v1/sessions",
        br#"{"ttl_seconds": 0}"#,
        400,
        "limit_out_of_range",
    );
    bad(
        "POST",
        "/v1/sessions",
        br#"{"image": "nope"}"#,
        404,
        "image_not_found",
    );
    bad(
        "POST",
        "/v1/sessions",
        br#"{"env": {"A=B": "x"}}"#,
        400,
        "invalid_request",
    );
    bad(
        "POST",
        "/v1/sessions/nope/exec",
        br#"{"argv": ["true"]}"#,
        404,
        "session_not_found",
    );
    bad(
        "POST",
        "/v1/run",
        br#"{"argv": []}"#,
        400,
        "invalid_request",
    );
    bad(
        "POST",
        "/v1/run",
        br#"{"argv": ["true"], "files": [{"path": "a", "content": "!!", "encoding": "base64"}]}"#,
        400,
        "invalid_request",
    );
    d.req("GET", "/v1/nowhere", None)
        .assert_error(404, "not_found");
    // Oversized body (default limit 16 MiB).
    let big = vec![b' '; 17 << 20];
    let s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    let r = runtimed_tests::daemon::http(
        s,
        "POST",
        "/v1/sessions",
        Some(&big),
        &[("Content-Type", "application/json")],
    )
    .unwrap();
    assert_eq!(r.status, 413, "{}", r.text());
    // Nothing was created by any of that.
    let l = d.req("GET", "/v1/sessions", None).json();
    assert!(l["sessions"].as_array().unwrap().is_empty(), "{l}");
    let id = d.create_session(&json!({}));
    bad(
        "POST",
        &format!("/v1/sessions/{id}/exec"),
        br#"{"argv": []}"#,
        400,
        "invalid_request",
    );
    bad(
        "POST",
        &format!("/v1/sessions/{id}/exec"),
        br#"{"argv": ["true"], "timeout_ms": 0}"#,
        400,
        "limit_out_of_range",
    );
    d.req("GET", &format!("/v1/sessions/{id}/ptys/p99"), None)
        .assert_error(404, "pty_not_found");
    // The daemon is still fine.
    assert_eq!(d.exec(&id, &["echo", "ok"])["stdout"], "ok\n");
}

const TOKENS: &str = r#"
max_sessions_per_tenant = 2
max_sessions = 3
[[tokens]]
token = "tenant-a-token-0123456789"
tenant = "a"
[[tokens]]
token = "tenant-b-token-0123456789"
tenant = "b"
"#;

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn tokens_tenants_and_quotas() {
    let d = daemon!(TOKENS);
    let a = [
        ("Authorization", "Bearer tenant-a-token-0123456789"),
        ("Content-Type", "application/json"),
    ];
    let b = [
        ("Authorization", "Bearer tenant-b-token-0123456789"),
        ("Content-Type", "application/json"),
    ];
    // No token, a bad token: 401 with the JSON body.
    d.tcp("GET", "/v1/sessions", None, &[])
        .assert_error(401, "unauthorized");
    d.tcp(
        "GET",
        "/v1/sessions",
        None,
        &[("Authorization", "Bearer wrong-token-000000000")],
    )
    .assert_error(401, "unauthorized");
    d.tcp(
        "POST",
        "/v1/sessions",
        Some(b"{}"),
        &[("Content-Type", "application/json")],
    )
    .assert_error(401, "unauthorized");
    // Health is public; metrics are for operators (the socket) only.
    assert_eq!(d.tcp("GET", "/healthz", None, &[]).status, 200);
    assert_eq!(d.tcp("GET", "/metrics", None, &a).status, 403);
    assert_eq!(d.req("GET", "/metrics", None).status, 200);

    let r = d.tcp("POST", "/v1/sessions", Some(b"{}"), &a);
    assert_eq!(r.status, 201, "{}", r.text());
    let sa = r.json()["id"].as_str().unwrap().to_string();
    // Tenant b neither sees nor touches a's session.
    let lb = d.tcp("GET", "/v1/sessions", None, &b).json();
    assert!(lb["sessions"].as_array().unwrap().is_empty(), "{lb}");
    d.tcp("GET", &format!("/v1/sessions/{sa}"), None, &b)
        .assert_error(404, "session_not_found");
    d.tcp(
        "POST",
        &format!("/v1/sessions/{sa}/exec"),
        Some(br#"{"argv":["true"]}"#),
        &b,
    )
    .assert_error(404, "session_not_found");
    d.tcp("GET", &format!("/v1/sessions/{sa}/files/"), None, &b)
        .assert_error(404, "session_not_found");
    d.tcp("DELETE", &format!("/v1/sessions/{sa}"), None, &b)
        .assert_error(404, "session_not_found");
    assert_eq!(
        d.tcp("GET", &format!("/v1/sessions/{sa}"), None, &a).status,
        200
    );
    // Nor does the socket's tenant.
    d.req("GET", &format!("/v1/sessions/{sa}"), None)
        .assert_error(404, "session_not_found");

    // Per-tenant quota (2), then the total (3).
    assert_eq!(d.tcp("POST", "/v1/sessions", Some(b"{}"), &a).status, 201);
    d.tcp("POST", "/v1/sessions", Some(b"{}"), &a)
        .assert_error(429, "quota_exceeded");
    assert_eq!(d.tcp("POST", "/v1/sessions", Some(b"{}"), &b).status, 201);
    d.tcp("POST", "/v1/sessions", Some(b"{}"), &b)
        .assert_error(429, "quota_exceeded");
    // b counts only its own: after deleting a's, b still at 1 of its 2 but
    // the total frees one.
    assert_eq!(
        d.tcp("DELETE", &format!("/v1/sessions/{sa}"), None, &a)
            .status,
        204
    );
    assert_eq!(d.tcp("POST", "/v1/sessions", Some(b"{}"), &b).status, 201);
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn non_loopback_without_tokens_is_refused() {
    runtimed_tests::require_root();
    let dir = runtimed_tests::TempDir::new("listen");
    let out = std::process::Command::new(runtimed_tests::runtimed_bin())
        .args(["serve", "--listen", "0.0.0.0:17999", "--socket"])
        .arg(dir.join("s"))
        .arg("--data-dir")
        .arg(dir.join("d"))
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("needs tokens"), "{err}");
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn one_shot_run_with_files_and_stdin() {
    let d = daemon!();
    let r = d.req_json(
        "POST",
        "/v1/run",
        &json!({
            "argv": ["python3", "main.py"],
            "files": [{"path": "main.py", "content": "import sys\nprint(sum(int(x) for x in sys.stdin.read().split()))"},
                      {"path": "data/blob", "content": "AAEC", "encoding": "base64"}],
            "stdin": "40 2",
            "limits": {"memory": "128M"}
        }),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["stdout"], "42\n", "{v}");
    assert_eq!(v["exit_code"], 0);
    // Nothing is listed, and the sandbox is torn down right after the
    // answer: no helper is left.
    let l = d.req("GET", "/v1/sessions", None).json();
    assert!(l["sessions"].as_array().unwrap().is_empty(), "{l}");
    let gone = wait_for(Duration::from_secs(10), || {
        d.helpers().is_empty().then_some(())
    });
    assert!(
        gone.is_some(),
        "the run's helper is left: {:?}",
        d.helpers()
    );
    let m = d.req("GET", "/metrics", None).text();
    assert!(m.contains("runtimed_sessions_active 0"), "{m}");
    let m = d.req("GET", "/metrics", None).text();
    assert!(m.contains("runtimed_runs_total 1"), "{m}");
    assert!(
        m.contains("runtimed_results_total{termination=\"exited\"} 1"),
        "{m}"
    );
    assert!(m.contains("runtimed_sandbox_start_seconds_count 1"), "{m}");
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn sigterm_ends_every_session_and_exits_zero() {
    let mut d = daemon!();
    let id = d.create_session(&json!({}));
    let (pid, dirs) = background_marker(&d, &id);
    assert_eq!(d.stop(), Some(0), "{}", d.log_text());
    assert!(!pid_alive(pid));
    for dir in &dirs {
        assert!(
            !dir.exists(),
            "cgroup {} left after shutdown",
            dir.display()
        );
    }
    assert!(!d.socket.exists(), "socket file removed");
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn kill_9_of_the_daemon_leaves_nothing_and_restart_reports_lost() {
    let mut d = daemon!();
    let id = d.create_session(&json!({"labels": {"k": "v"}}));
    let (pid, dirs) = background_marker(&d, &id);
    let helpers = d.helpers();
    assert_eq!(helpers.len(), 1, "one helper per session");
    d.kill9();
    // The helper sees its control socket close and tears the sandbox down.
    let clean = wait_for(Duration::from_secs(15), || {
        (!pid_alive(pid) && !pid_alive(helpers[0]) && dirs.iter().all(|p| !p.exists()))
            .then_some(())
    });
    assert!(
        clean.is_some(),
        "processes or cgroups outlived the killed daemon: {dirs:?}"
    );
    d.spawn();
    assert!(
        d.log_text().contains("reported as lost"),
        "{}",
        d.log_text()
    );
    let info = d.req("GET", &format!("/v1/sessions/{id}"), None).json();
    assert_eq!(info["state"], "lost", "{info}");
    assert_eq!(info["labels"]["k"], "v");
    d.req_json(
        "POST",
        &format!("/v1/sessions/{id}/exec"),
        &json!({"argv": ["true"]}),
    )
    .assert_error(409, "session_not_running");
    assert_eq!(
        d.req("DELETE", &format!("/v1/sessions/{id}"), None).status,
        204
    );
    d.req("GET", &format!("/v1/sessions/{id}"), None)
        .assert_error(404, "session_not_found");
    // And the new daemon works.
    let id2 = d.create_session(&json!({}));
    assert_eq!(d.exec(&id2, &["echo", "ok"])["stdout"], "ok\n");
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_killed_helper_ends_its_session_and_leaves_no_cgroup() {
    let d = daemon!();
    let id = d.create_session(&json!({}));
    let (pid, dirs) = background_marker(&d, &id);
    let helpers = d.helpers();
    assert_eq!(helpers.len(), 1, "one helper per session");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(helpers[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let clean = wait_for(Duration::from_secs(15), || {
        let gone = d.req("GET", &format!("/v1/sessions/{id}"), None).status == 404;
        (gone && !pid_alive(pid) && dirs.iter().all(|p| !p.exists())).then_some(())
    });
    assert!(
        clean.is_some(),
        "session, process or cgroup outlived its helper: {dirs:?}\n{}",
        d.log_text()
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn socket_group_members_may_use_the_socket() {
    let d = daemon!("socket_group = \"nogroup\"\n");
    // The socket is 0660 root:nogroup; nobody (primary group nogroup) may
    // connect and is let in by its peer credentials.
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(&d.socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    let nogroup = nix::unistd::Group::from_name("nogroup")
        .unwrap()
        .unwrap()
        .gid
        .as_raw();
    assert_eq!(meta.gid(), nogroup);
    let curl = |uid: u32, gid: u32| {
        std::process::Command::new("setpriv")
            .args([
                format!("--reuid={uid}"),
                format!("--regid={gid}"),
                "--clear-groups".into(),
            ])
            .args([
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--unix-socket",
            ])
            .arg(&d.socket)
            .arg("http://localhost/v1/sessions")
            .output()
            .expect("setpriv curl")
    };
    let ok = curl(65534, nogroup);
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "200", "{ok:?}");
    // Someone outside the group cannot even connect (mode 0660).
    let no = curl(4242, 4242);
    assert_ne!(String::from_utf8_lossy(&no.stdout), "200", "{no:?}");
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_sandbox_that_cannot_start_leaves_nothing() {
    // A uid pool of one slot (at a base no other test uses): the second
    // session cannot get a host uid range.
    let d = daemon!("uid_pool_base = 3000000000\nuid_pool_slots = 1\n");
    let first = d.create_session(&json!({}));
    let before = d.helpers();
    assert_eq!(before.len(), 1);
    let r = d.req_json("POST", "/v1/sessions", &json!({}));
    r.assert_error(503, "capacity_exhausted");
    assert!(
        r.json()["message"].as_str().unwrap().contains("uid"),
        "{}",
        r.text()
    );
    // No helper, no session, and the first one still works.
    let settled = wait_for(Duration::from_secs(10), || {
        (d.helpers().len() == 1).then_some(())
    });
    assert!(
        settled.is_some(),
        "a helper of the failed start is left: {:?}",
        d.helpers()
    );
    let l = d.req("GET", "/v1/sessions", None).json();
    assert_eq!(l["sessions"].as_array().unwrap().len(), 1, "{l}");
    assert_eq!(d.exec(&first, &["echo", "ok"])["stdout"], "ok\n");
    // /v1/run fails the same way and leaves nothing either.
    d.req_json("POST", "/v1/run", &json!({"argv": ["true"]}))
        .assert_error(503, "capacity_exhausted");
    // Once the slot is free again, sessions start.
    assert_eq!(
        d.req("DELETE", &format!("/v1/sessions/{first}"), None)
            .status,
        204
    );
    let again = d.create_session(&json!({}));
    assert_eq!(d.exec(&again, &["echo", "ok"])["stdout"], "ok\n");
}

/// Kills `d`'s zygote (the daemon's child named rtd-zygote) and waits
/// until it is gone: helpers are then the re-executed binary.
fn kill_zygote(d: &runtimed_tests::daemon::Daemon) {
    let zygote = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .find(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().nth(1).map(str::to_owned));
            comm.trim() == "rtd-zygote" && ppid == Some(d.pid().to_string())
        })
        .expect("the daemon's zygote");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(zygote),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(wait_for(Duration::from_secs(5), || (!pid_alive(zygote))
        .then_some(()))
    .is_some());
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn sessions_start_when_the_zygote_was_killed() {
    let d = daemon!();
    let first = d.create_session(&json!({}));
    kill_zygote(&d);
    // Existing sessions are untouched, new ones start (re-executed helper).
    assert_eq!(d.exec(&first, &["echo", "still"])["stdout"], "still\n");
    let second = d.create_session(&json!({}));
    assert_eq!(d.exec(&second, &["echo", "new"])["stdout"], "new\n");
    // The new helper is the re-executed binary, the daemon's own child (the
    // first one was orphaned with its zygote and goes on).
    assert_eq!(d.helpers().len(), 1, "{:?}", d.helpers());
    assert_eq!(
        d.req("DELETE", &format!("/v1/sessions/{first}"), None)
            .status,
        204
    );
    assert_eq!(
        d.req("DELETE", &format!("/v1/sessions/{second}"), None)
            .status,
        204
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_reexecuted_helper_gets_the_daemons_uid_pool() {
    // A pool of one slot at a base no other test uses: seen from inside
    // as the session's uid map, and full after one session.
    let d = daemon!("uid_pool_base = 3100000000\nuid_pool_slots = 1\n");
    kill_zygote(&d);
    let s = d.create_session(&json!({}));
    let map = d.exec(&s, &["cat", "/proc/self/uid_map"]);
    let first = map["stdout"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>();
    assert_eq!(first.get(..2), Some(&["0", "3100000000"][..]), "{map}");
    d.req_json("POST", "/v1/sessions", &json!({}))
        .assert_error(503, "capacity_exhausted");
}
