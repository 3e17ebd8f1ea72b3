//! Hostile suite: who may use the daemon. A local user without the
//! socket's permissions and without a token gets nothing over TCP (every
//! request tried as `nobody` with curl); the operator token is root's
//! alone; a foreign `Host` (DNS rebinding) and a foreign `Origin` are
//! refused; `?token=` works on WebSocket upgrades only; socket peers are
//! judged by the groups they had at connect(2); the Judge0 listener keeps
//! the same rules. Needs root (the daemon, setpriv).

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use runtimed_tests::daemon::{ws_read_until, Daemon};
use runtimed_tests::{daemon, wait_for};
use serde_json::{json, Value};

const NOBODY: u32 = 65534;
/// A uid and gid with no account and no group membership.
const STRANGER: u32 = 4242;

/// What curl saw: the status and the body.
#[derive(Debug)]
struct Seen {
    status: u16,
    body: String,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    /// `status` with a `{code, message}` body of `code`.
    fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        let v = self.json();
        assert_eq!(v["code"], code, "{v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    }
}

/// The credentials curl runs with (setpriv): uid, gid, supplementary
/// groups.
fn as_user(uid: u32, gid: u32, groups: &[u32]) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"));
    if groups.is_empty() {
        cmd.arg("--clear-groups");
    } else {
        let list: Vec<String> = groups.iter().map(u32::to_string).collect();
        cmd.arg(format!("--groups={}", list.join(",")));
    }
    cmd.arg("--");
    cmd
}

/// curl under `user` with `args`; the last line of its output is the
/// status (`-w`). `-m 5`: a WebSocket that was let in stays open.
fn curl(mut user: Command, args: &[&str]) -> Seen {
    let out = user
        .args(["curl", "-s", "-m", "5", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("setpriv curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    Seen {
        status: status.trim().parse().unwrap_or(0),
        body: body.to_owned(),
    }
}

fn nobody() -> Command {
    as_user(NOBODY, NOBODY, &[])
}

/// The headers of a WebSocket handshake (RFC 6455 §4.1), for curl.
const UPGRADE: [&str; 8] = [
    "-H",
    "Connection: Upgrade",
    "-H",
    "Upgrade: websocket",
    "-H",
    "Sec-WebSocket-Version: 13",
    "-H",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
];

/// The ids of the sessions of tenant `default`, asked over the socket.
fn default_sessions(d: &Daemon) -> Vec<String> {
    let v = d.req("GET", "/v1/sessions", None).json();
    v["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Root's session, made over the socket.
fn roots_session(d: &Daemon) -> String {
    d.create_session(&json!({}))
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_local_user_without_a_token_gets_nothing() {
    let d = daemon!();
    let id = roots_session(&d);
    let base = format!("http://127.0.0.1:{}", d.port);
    let url = |p: &str| format!("{base}{p}");
    let json_body = ["-H", "Content-Type: application/json", "-d", "{}"];

    // Everything but health answers 401 {code, message}.
    let tries: Vec<(&str, String, Vec<&str>)> = vec![
        ("create a session", url("/v1/sessions"), json_body.to_vec()),
        ("list sessions", url("/v1/sessions"), vec![]),
        (
            "read root's session",
            url(&format!("/v1/sessions/{id}")),
            vec![],
        ),
        (
            "exec in root's session",
            url(&format!("/v1/sessions/{id}/exec")),
            vec![
                "-H",
                "Content-Type: application/json",
                "-d",
                r#"{"argv":["true"]}"#,
            ],
        ),
        (
            "delete root's session",
            url(&format!("/v1/sessions/{id}")),
            vec!["-X", "DELETE"],
        ),
        (
            "one-shot run",
            url("/v1/run"),
            vec![
                "-H",
                "Content-Type: application/json",
                "-d",
                r#"{"argv":["true"]}"#,
            ],
        ),
        ("metrics", url("/metrics"), vec![]),
        (
            "a terminal",
            url(&format!("/v1/sessions/{id}/pty")),
            UPGRADE.to_vec(),
        ),
        (
            "a judge0 submission",
            url("/judge0/submissions"),
            json_body.to_vec(),
        ),
    ];
    for (what, u, extra) in &tries {
        let mut args = extra.clone();
        args.push(u);
        let seen = curl(nobody(), &args);
        if what.starts_with("a judge0") {
            assert_eq!(seen.status, 401, "{what}: {}", seen.body);
            assert!(seen.json()["error"].is_string(), "{what}: {}", seen.body);
        } else {
            seen.assert_error(401, "unauthorized");
        }
    }
    assert_eq!(curl(nobody(), &[&url("/healthz")]).status, 200);
    // Nothing was made, root's session is untouched.
    assert_eq!(default_sessions(&d), vec![id.clone()]);
    assert_eq!(d.exec(&id, &["true"])["exit_code"], 0);
    assert!(d
        .req("GET", "/metrics", None)
        .text()
        .contains("runtimed_runs_total 0"));

    // The token is root's: 0600 in a 0700 data dir, unreadable to nobody.
    let file = d.token_file();
    let meta = std::fs::metadata(&file).expect("token file");
    assert_eq!(
        (meta.uid(), meta.mode() & 0o777),
        (0, 0o600),
        "{}",
        file.display()
    );
    let dir = std::fs::metadata(file.parent().unwrap()).unwrap();
    assert_eq!((dir.uid(), dir.mode() & 0o777), (0, 0o700));
    let cat = nobody().arg("cat").arg(&file).output().unwrap();
    assert!(!cat.status.success() && cat.stdout.is_empty(), "{cat:?}");
    let token = d.token.clone().expect("operator token");
    assert_eq!(token.len(), 64, "256 random bits as hex");

    // Holding it, the same user may do it all, as tenant default.
    let bearer = format!("Authorization: Bearer {token}");
    let mut args = vec!["-H", bearer.as_str()];
    args.extend(json_body);
    let created = url("/v1/sessions");
    args.push(&created);
    let seen = curl(nobody(), &args);
    assert_eq!(seen.status, 201, "{}", seen.body);
    let theirs = seen.json()["id"].as_str().unwrap().to_owned();
    let listed = curl(nobody(), &["-H", &bearer, &url("/v1/sessions")]);
    assert_eq!(listed.status, 200);
    assert!(
        listed.body.contains(&id) && listed.body.contains(&theirs),
        "{}",
        listed.body
    );
    let metrics = curl(nobody(), &["-H", &bearer, &url("/metrics")]);
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.body.contains("runtimed_sessions_active 2"),
        "{}",
        metrics.body
    );
    let mut ws = UPGRADE.to_vec();
    ws.extend(["-H", &bearer]);
    let pty = url(&format!("/v1/sessions/{id}/pty"));
    ws.push(&pty);
    assert_eq!(curl(nobody(), &ws).status, 101);
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn the_operator_token_is_kept_and_an_exposed_one_is_refused() {
    let mut d = daemon!();
    let first = d.token.clone().expect("operator token");
    d.stop();
    d.spawn();
    assert_eq!(
        d.token.as_deref(),
        Some(first.as_str()),
        "kept across restarts"
    );
    assert_eq!(d.tcp_operator("GET", "/v1/sessions", None, &[]).status, 200);
    d.stop();
    // Readable by its group: the daemon refuses to start, in one line.
    std::fs::set_permissions(d.token_file(), std::fs::Permissions::from_mode(0o640)).unwrap();
    let mut serve = Command::new(runtimed_tests::runtimed_bin());
    serve
        .arg("serve")
        .arg("--data-dir")
        .arg(d.dir.join("data"))
        .arg("--socket")
        .arg(&d.socket)
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", d.port));
    let (code, err) = refused_start(serve, &d.dir.join("refused.err"));
    assert_eq!(code, Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("mode 0600") && err.contains("0640"), "{err}");
}

/// Runs `runtimed serve ...` that must refuse to start; its exit code and
/// stderr (kept in `err_file`). One that starts anyway is killed after a
/// while and fails the test instead of hanging it.
fn refused_start(mut serve: Command, err_file: &Path) -> (Option<i32>, String) {
    let err = std::fs::File::create(err_file).unwrap();
    let mut child = serve
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("runtimed serve");
    let status = wait_for(Duration::from_secs(60), || child.try_wait().ok().flatten());
    let text = std::fs::read_to_string(err_file).unwrap_or_default();
    match status {
        Some(st) => (st.code(), text),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("runtimed serve started when it must refuse:\n{text}");
        }
    }
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn tenant_tokens_are_not_operators() {
    let d = daemon!("[[tokens]]\ntoken = \"tenant-a-token-0123456789\"\ntenant = \"a\"\n");
    let a = [("Authorization", "Bearer tenant-a-token-0123456789")];
    d.tcp("GET", "/metrics", None, &a)
        .assert_error(403, "forbidden");
    d.tcp("DELETE", "/v1/images/none", None, &a)
        .assert_error(403, "forbidden");
    // The operator token works beside them, as tenant default.
    assert_eq!(d.tcp_operator("GET", "/metrics", None, &[]).status, 200);
    let id = roots_session(&d);
    let r = d.tcp_operator("GET", &format!("/v1/sessions/{id}"), None, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    d.tcp("GET", &format!("/v1/sessions/{id}"), None, &a)
        .assert_error(404, "session_not_found");
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_foreign_host_is_refused() {
    let d = daemon!("allowed_hosts = [\"lab.example\"]\n");
    let bearer = d.operator_bearer();
    let port = d.port;
    // DNS rebinding: the page's own name, now resolving to 127.0.0.1.
    for host in [
        format!("evil.example:{port}"),
        "evil.example".to_owned(),
        format!("localhost.evil.example:{port}"),
        format!("127.0.0.1.evil.example:{port}"),
    ] {
        for path in ["/v1/sessions", "/healthz", "/", "/judge0/statuses"] {
            d.tcp(
                "GET",
                path,
                None,
                &[("Host", &host), ("Authorization", &bearer)],
            )
            .assert_error(403, "host_not_allowed");
        }
        let r = d.tcp(
            "POST",
            "/v1/sessions",
            Some(b"{}"),
            &[
                ("Host", &host),
                ("Authorization", &bearer),
                ("Content-Type", "application/json"),
            ],
        );
        r.assert_error(403, "host_not_allowed");
        let refused = d
            .ws_tcp_with(
                "/v1/sessions/x/pty",
                &[("Host", &host), ("Authorization", &bearer)],
            )
            .expect_err("a WebSocket with a foreign Host is refused");
        match *refused {
            tungstenite::Error::Http(resp) => assert_eq!(resp.status().as_u16(), 403),
            other => panic!("{other}"),
        }
    }
    assert!(default_sessions(&d).is_empty(), "nothing was made");
    // The listener's own names, and the configured one.
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        "lab.example".to_owned(),
        format!("LAB.example:{port}"),
    ] {
        let r = d.tcp(
            "GET",
            "/v1/sessions",
            None,
            &[("Host", &host), ("Authorization", &bearer)],
        );
        assert_eq!(r.status, 200, "{host}: {}", r.text());
    }
    // The socket has no such check (no browser reaches it).
    let r = runtimed_tests::daemon::http(
        std::os::unix::net::UnixStream::connect(&d.socket).unwrap(),
        "GET",
        "/v1/sessions",
        None,
        &[("Host", "evil.example")],
    )
    .unwrap();
    assert_eq!(r.status, 200);
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn browsers_on_other_origins_are_refused() {
    let d = daemon!("allowed_origins = [\"https://ide.example\"]\n");
    let bearer = d.operator_bearer();
    let own_host = format!("127.0.0.1:{}", d.port);
    let own = format!("http://{own_host}");
    let create = |origin: &str| {
        d.tcp(
            "POST",
            "/v1/sessions",
            Some(b"{}"),
            &[
                ("Host", &own_host),
                ("Origin", origin),
                ("Authorization", &bearer),
                ("Content-Type", "application/json"),
            ],
        )
    };
    for origin in [
        "http://evil.example",
        "http://localhost:8888",
        "http://127.0.0.1",
        "null",
        "https://ide.example.evil.example",
    ] {
        create(origin).assert_error(403, "origin_not_allowed");
        let token = d.token.clone().unwrap();
        let refused = d
            .ws_tcp_with(
                &format!("/v1/sessions/x/pty?token={token}"),
                &[("Origin", origin)],
            )
            .expect_err("a WebSocket from another origin is refused");
        match *refused {
            tungstenite::Error::Http(resp) => assert_eq!(resp.status().as_u16(), 403, "{origin}"),
            other => panic!("{other}"),
        }
    }
    assert!(default_sessions(&d).is_empty(), "nothing was made");
    // The listener's own origin and the configured one.
    assert_eq!(create(&own).status, 201);
    assert_eq!(create("https://ide.example").status, 201);
    // A browser's terminal: own origin, the token in the URL.
    let id = roots_session(&d);
    let token = d.token.clone().unwrap();
    let mut ws = d
        .ws_tcp_with(
            &format!("/v1/sessions/{id}/pty?argv=/bin/sh&token={token}"),
            &[("Origin", &own)],
        )
        .expect("own origin");
    ws.send(tungstenite::Message::Binary(
        b"echo O$((40+2))\r".to_vec().into(),
    ))
    .unwrap();
    ws_read_until(&mut ws, "O42");
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_query_token_counts_on_websocket_upgrades_only() {
    let d = daemon!();
    let token = d.token.clone().expect("operator token");
    let q = format!("?token={token}");
    for (method, path) in [
        ("GET", "/v1/sessions"),
        ("POST", "/v1/sessions"),
        ("GET", "/metrics"),
        ("GET", "/v1/images"),
    ] {
        let r = d.tcp(
            method,
            &format!("{path}{q}"),
            (method == "POST").then_some(b"{}".as_slice()),
            &[("Content-Type", "application/json")],
        );
        r.assert_error(401, "unauthorized");
        assert!(r.json()["message"].as_str().unwrap().contains("WebSocket"));
    }
    assert!(default_sessions(&d).is_empty(), "nothing was made");
    // Judge0's X-Auth-Token as a query parameter: refused too.
    let r = d.tcp(
        "GET",
        &format!("/judge0/statuses?X-Auth-Token={token}"),
        None,
        &[],
    );
    assert_eq!(r.status, 401, "{}", r.text());
    // On the upgrade (no header at all) it is what lets the terminal in.
    let id = roots_session(&d);
    let mut ws = d
        .ws_tcp_with(
            &format!("/v1/sessions/{id}/pty?argv=/bin/sh&token={token}"),
            &[],
        )
        .expect("?token= on an upgrade");
    ws.send(tungstenite::Message::Binary(
        b"echo Q$((6*7))\r".to_vec().into(),
    ))
    .unwrap();
    ws_read_until(&mut ws, "Q42");
    let wrong = d
        .ws_tcp_with(
            &format!("/v1/sessions/{id}/pty?token=not-the-token-0123456789"),
            &[],
        )
        .expect_err("a wrong token");
    match *wrong {
        tungstenite::Error::Http(resp) => assert_eq!(resp.status().as_u16(), 401),
        other => panic!("{other}"),
    }
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn socket_peers_count_their_supplementary_groups() {
    let d = daemon!("socket_group = \"nogroup\"\n");
    // Past the socket file's mode (0660 root:nogroup), so that the daemon's
    // own check is what decides.
    std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let socket = d.socket.to_str().unwrap().to_owned();
    let list = |user: Command| {
        curl(
            user,
            &["--unix-socket", &socket, "http://localhost/v1/sessions"],
        )
    };
    // nogroup as a supplementary group (as `usermod -aG` gives it).
    let member = list(as_user(STRANGER, STRANGER, &[NOBODY]));
    assert_eq!(member.status, 200, "{}", member.body);
    assert_eq!(member.json()["sessions"], json!([]));
    // Among many groups (more than the daemon's first guess of 64).
    let many: Vec<u32> = (20_000..20_100).chain([NOBODY]).collect();
    let member = list(as_user(STRANGER, STRANGER, &many));
    assert_eq!(member.status, 200, "{}", member.body);
    // Neither primary nor supplementary: refused, in JSON.
    list(as_user(STRANGER, STRANGER, &[])).assert_error(401, "unauthorized");
    list(as_user(STRANGER, STRANGER, &[STRANGER + 1])).assert_error(401, "unauthorized");
    // A bearer token does not stand in for the socket's credentials.
    let bearer = d.operator_bearer();
    let seen = curl(
        as_user(STRANGER, STRANGER, &[]),
        &[
            "--unix-socket",
            &socket,
            "-H",
            &format!("Authorization: {bearer}"),
            "http://localhost/v1/sessions",
        ],
    );
    seen.assert_error(401, "unauthorized");
}

/// A client that connects, forks, and exits before its child sends the
/// request on the inherited connection (perl: in Debian's perl-base).
const CONNECT_AND_LEAVE: &str = r#"
use IO::Socket::UNIX;
my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $ARGV[0]) or die "connect: $!";
my $parent = $$;
my $pid = fork() // die "fork: $!";
exit 0 if $pid;
# Wait until the connecting process is gone and reaped: its pid no longer
# answers (a zombie still would).
for (1..600) { last unless kill 0, $parent; select(undef, undef, undef, 0.05); }
die "the connecting process is still there\n" if kill 0, $parent;
print $s "GET /v1/sessions HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
print while <$s>;
"#;

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn socket_groups_are_taken_at_connect_not_from_the_pid() {
    let d = daemon!("socket_group = \"nogroup\"\n");
    let script = d.dir.join("leave.pl");
    std::fs::write(&script, CONNECT_AND_LEAVE).unwrap();
    let out = d.dir.join("leave.out");
    let file = std::fs::File::create(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o666)).unwrap();
    // A member through a supplementary group; the socket keeps its 0660.
    let status = as_user(STRANGER, STRANGER, &[NOBODY])
        .arg("perl")
        .arg(&script)
        .arg(&d.socket)
        .stdout(file)
        .stderr(Stdio::inherit())
        .status()
        .expect("perl");
    // The connecting process exited (and is reaped now): its pid names
    // nothing when the request arrives, yet the connection is a member's.
    assert!(status.success());
    let answer = wait_for(Duration::from_secs(60), || {
        let mut s = String::new();
        std::fs::File::open(&out)
            .ok()?
            .read_to_string(&mut s)
            .ok()?;
        s.contains("\r\n\r\n").then_some(s)
    })
    .expect("no answer from the daemon");
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "a member's connection was refused after its connecting process left:\n{answer}"
    );
    assert!(answer.contains(r#"{"sessions":[]}"#), "{answer}");
}

/// A daemon with the Judge0 listener on a free port; its port.
fn with_judge0(config: &str) -> (Daemon, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let cfg = format!("judge0_listen = \"127.0.0.1:{port}\"\n{config}");
    let d = Daemon::start_with(Some(&cfg), &[]);
    (d, port)
}

fn judge0_seen(port: u16, user: Command, path: &str, extra: &[&str]) -> Seen {
    let url = format!("http://127.0.0.1:{port}{path}");
    let mut args = extra.to_vec();
    args.push(&url);
    curl(user, &args)
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn the_judge0_listener_keeps_the_same_rules() {
    let (d, port) =
        with_judge0("[[tokens]]\ntoken = \"alice-token-0123456789\"\ntenant = \"alice\"\n");
    // Up once it says so.
    let said = format!("Judge0-compatible API on http://127.0.0.1:{port}");
    assert!(
        wait_for(Duration::from_secs(20), || d
            .log_text()
            .contains(&said)
            .then_some(()))
        .is_some(),
        "{}",
        d.log_text()
    );
    let token = d.token.clone().expect("operator token");
    let op = format!("X-Auth-Token: {token}");
    let json_body = [
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"source_code":"print(1)","language_id":71}"#,
    ];
    // No token, as nobody: 401 in Judge0's shape on every route.
    for path in ["/statuses", "/languages", "/about", "/submissions"] {
        let extra: &[&str] = if path == "/submissions" {
            &json_body
        } else {
            &[]
        };
        let seen = judge0_seen(port, nobody(), path, extra);
        assert_eq!(seen.status, 401, "{path}: {}", seen.body);
        assert!(seen.json()["error"].is_string(), "{}", seen.body);
    }
    // The query parameter does not authenticate.
    let seen = judge0_seen(
        port,
        nobody(),
        &format!("/statuses?X-Auth-Token={token}"),
        &[],
    );
    assert_eq!(seen.status, 401, "{}", seen.body);
    // With the operator's or a tenant's token.
    assert_eq!(
        judge0_seen(port, nobody(), "/statuses", &["-H", &op]).status,
        200
    );
    let alice = judge0_seen(
        port,
        nobody(),
        "/statuses",
        &["-H", "X-Auth-Token: alice-token-0123456789"],
    );
    assert_eq!(alice.status, 200);
    // A foreign Host or Origin: 403 in Judge0's shape, token or not.
    for extra in [
        ["-H", "Host: evil.example:2358"],
        ["-H", "Origin: http://evil.example"],
    ] {
        let mut args = vec!["-H", op.as_str()];
        args.extend(extra);
        let seen = judge0_seen(port, nobody(), "/statuses", &args);
        assert_eq!(seen.status, 403, "{extra:?}: {}", seen.body);
        assert!(seen.json()["error"].is_string(), "{}", seen.body);
    }
    let own = format!("Origin: http://127.0.0.1:{port}");
    assert_eq!(
        judge0_seen(port, nobody(), "/statuses", &["-H", &op, "-H", &own]).status,
        200
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn tcp_needs_some_token() {
    // operator_token off and no tenant tokens: refused at start, one line.
    runtimed_tests::require_root();
    let dir = runtimed_tests::TempDir::new("notoken");
    std::fs::write(dir.join("c.toml"), "operator_token = false\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let mut serve = Command::new(runtimed_tests::runtimed_bin());
    serve
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--config",
        ])
        .arg(dir.join("c.toml"))
        .arg("--socket")
        .arg(dir.join("s"))
        .arg("--data-dir")
        .arg(dir.join("d"));
    let (code, err) = refused_start(serve, &dir.join("err"));
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("needs a token"), "{err}");
    assert!(!Path::new(&dir.join("d").join("token")).exists());
}
