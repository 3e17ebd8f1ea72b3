//! Hostile request bodies and connections: many clients that each send a
//! body just under `max_body_bytes` and hold it, a client that trickles
//! its body or its headers, a client that keeps connections open, JSON
//! whose parsed form is many times its text, tenants that fill their
//! share of the body budget. Each test asserts what it sees from outside:
//! the daemon's VmHWM from /proc (reset through clear_refs), the answers
//! (status, code, `Retry-After`, `100 Continue` or not), when a
//! connection is closed, the files that arrived.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use runtimed_tests::daemon::{Daemon, Resp};
use runtimed_tests::serde_json::json;
use runtimed_tests::{daemon, reset_peak_rss as reset_peak, status_bytes, MIB};

/// Generous: the machine is loaded.
const ANSWER_WITHIN: Duration = Duration::from_secs(60);

// ---- a client that writes HTTP by hand ---------------------------------------------

/// A request head asking for `100-continue`; `len` is the Content-Length,
/// `None` a chunked body.
fn send_head<S: Write>(
    s: &mut S,
    method: &str,
    path: &str,
    len: Option<u64>,
    headers: &[(&str, &str)],
) {
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    match len {
        Some(n) => head.push_str(&format!("Content-Length: {n}\r\n")),
        None => head.push_str("Transfer-Encoding: chunked\r\n"),
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).expect("send the head");
}

/// Reads a response head (byte by byte, so nothing after it is taken):
/// the status and the headers.
fn read_head<S: Read>(s: &mut S) -> std::io::Result<(u16, Vec<(String, String)>)> {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            return Err(std::io::Error::new(
                ErrorKind::UnexpectedEof,
                "closed before a head",
            ));
        }
        raw.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let mut lines = text.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok((status, headers))
}

/// A whole final answer: the head, then Content-Length bytes (or up to
/// the end of the connection).
fn read_answer<S: Read>(s: &mut S) -> Resp {
    let (status, headers) = read_head(s).expect("an answer");
    read_body(s, status, headers)
}

fn read_body<S: Read>(s: &mut S, status: u16, headers: Vec<(String, String)>) -> Resp {
    let mut resp = Resp {
        status,
        headers,
        body: Vec::new(),
    };
    match resp
        .header("content-length")
        .and_then(|v| v.parse::<u64>().ok())
    {
        Some(n) => {
            s.take(n)
                .read_to_end(&mut resp.body)
                .expect("the answer's body");
        }
        None => {
            let _ = s.read_to_end(&mut resp.body);
        }
    }
    resp
}

/// After [`send_head`]: `Ok` when the daemon asks for the body (`100
/// Continue`), or its final answer, given without reading the body.
fn continue_or_answer<S: Read>(s: &mut S) -> Result<(), Resp> {
    let (status, headers) = read_head(s).expect("100 Continue or an answer");
    if status == 100 {
        return Ok(());
    }
    Err(read_body(s, status, headers))
}

/// Asserts the refusal of a full body budget.
fn assert_budget_refusal(r: &Resp) {
    r.assert_error(503, "body_budget_exhausted");
    assert_eq!(r.header("retry-after"), Some("1"), "{:?}", r.headers);
}

fn unix(d: &Daemon) -> UnixStream {
    let s = UnixStream::connect(&d.socket).expect("connect");
    s.set_read_timeout(Some(ANSWER_WITHIN)).ok();
    s
}

fn tcp(d: &Daemon) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", d.port)).expect("connect tcp");
    s.set_read_timeout(Some(ANSWER_WITHIN)).ok();
    s
}

// ---- the daemon's memory -----------------------------------------------------------

/// What one holder saw.
enum Held {
    /// Asked for its body; it sent all but the last byte, then the rest
    /// when released. The final answer.
    Admitted(Resp),
    /// Refused before sending a byte of its body.
    Refused(Resp),
}

/// A budget of 4 bodies of 16 MiB; holders wait as long as the test needs.
const BUDGET_64M: &str = "request_body_budget = 67108864\nrequest_body_budget_per_tenant = 67108864\nrequest_body_timeout_seconds = 600\n";

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn bodies_held_by_many_clients_are_bounded_by_the_budget() {
    let d = daemon!(BUDGET_64M);
    let id = d.create_session(&json!({"limits": {"memory": "1G", "disk": "512M"}}));
    const HOLDERS: usize = 16;
    // Just under max_body_bytes (16 MiB): four fit the 64 MiB budget.
    const BODY: u64 = 16 * MIB - 1024;
    let before = reset_peak(d.pid());
    let (asked_tx, asked_rx) = mpsc::channel::<bool>();
    // Write-locked while the bodies are held; unlocked (also when the
    // test fails) to let them finish.
    let gate = std::sync::RwLock::new(());
    let (held, grown, small) = std::thread::scope(|s| {
        let closed = gate.write();
        let holders: Vec<_> = (0..HOLDERS)
            .map(|i| {
                let (asked_tx, gate, d, id) = (asked_tx.clone(), &gate, &d, &id);
                s.spawn(move || {
                    let mut c = unix(d);
                    send_head(
                        &mut c,
                        "PUT",
                        &format!("/v1/sessions/{id}/files/held-{i}"),
                        Some(BODY),
                        &[],
                    );
                    if let Err(refused) = continue_or_answer(&mut c) {
                        asked_tx.send(false).ok();
                        return Held::Refused(refused);
                    }
                    let body = vec![b'a' + (i % 26) as u8; BODY as usize];
                    c.write_all(&body[..body.len() - 1])
                        .expect("send all but a byte");
                    asked_tx.send(true).ok();
                    // Held until the test has measured.
                    drop(gate.read());
                    c.write_all(&body[body.len() - 1..]).expect("the last byte");
                    Held::Admitted(read_answer(&mut c))
                })
            })
            .collect();
        let admitted = (0..HOLDERS)
            .map(|_| {
                asked_rx
                    .recv_timeout(ANSWER_WITHIN)
                    .expect("every holder is answered")
            })
            .filter(|a| *a)
            .count();
        // All the admitted bodies but a byte each are in the daemon now
        // (a socket buffer at most is still on the way).
        std::thread::sleep(Duration::from_millis(500));
        let grown = status_bytes(d.pid(), "VmHWM:").saturating_sub(before);
        // A request without a body needs no budget; a small body fits the
        // 4 KiB left; a larger one does not, and is refused unread.
        let list = d.req("GET", "/v1/sessions", None);
        let tiny = d.req(
            "PUT",
            &format!("/v1/sessions/{id}/files/tiny"),
            Some(b"tiny"),
        );
        let mut c = unix(&d);
        send_head(
            &mut c,
            "PUT",
            &format!("/v1/sessions/{id}/files/larger"),
            Some(64 << 10),
            &[],
        );
        let larger = continue_or_answer(&mut c);
        drop(c);
        drop(closed);
        let held: Vec<Held> = holders
            .into_iter()
            .map(|h| h.join().expect("holder"))
            .collect();
        (held, grown, (list, tiny, larger, admitted))
    });
    let (list, tiny, larger, admitted) = small;
    eprintln!(
        "daemon VmHWM grew by {} KiB with {admitted} of {HOLDERS} bodies of {BODY} bytes held",
        grown / 1024
    );
    assert_eq!(
        admitted, 4,
        "64 MiB of budget takes four bodies of 16 MiB - 1 KiB"
    );
    assert_eq!(list.status, 200, "{}", list.text());
    assert_eq!(tiny.status, 204, "{}", tiny.text());
    assert_budget_refusal(&larger.expect_err("a 64 KiB body does not fit"));
    let mut names = Vec::new();
    for (i, h) in held.iter().enumerate() {
        match h {
            Held::Admitted(r) => {
                assert_eq!(r.status, 204, "{}", r.text());
                names.push(format!("held-{i}"));
            }
            Held::Refused(r) => assert_budget_refusal(r),
        }
    }
    // docs/limits.md: a file body is held once, so the bodies take at most
    // request_body_budget (64 MiB here), plus the allocator's slack. The
    // daemon without a budget held all sixteen: +256 MiB.
    assert!(
        grown < 64 * MIB + 16 * MIB,
        "the daemon grew by {} MiB holding {admitted} bodies (budget 64 MiB)",
        grown / MIB
    );
    // The admitted files arrived whole; the refused ones changed nothing.
    let r = d.req_json(
        "POST",
        &format!("/v1/sessions/{id}/exec"),
        &json!({"argv": ["sh", "-c", "cd /workspace && stat -c '%n %s' held-* | sort"]}),
    );
    let out = r.json()["stdout"].as_str().unwrap_or_default().to_string();
    let mut want: Vec<String> = names.iter().map(|n| format!("{n} {BODY}")).collect();
    want.sort();
    assert_eq!(out.lines().collect::<Vec<_>>(), want, "{}", r.text());
    // The budget is free again: a refused client's retry goes through.
    let body = vec![b'z'; BODY as usize];
    let r = d.req(
        "PUT",
        &format!("/v1/sessions/{id}/files/retry"),
        Some(&body),
    );
    assert_eq!(r.status, 204, "{}", r.text());
}

// ---- slow clients ------------------------------------------------------------------

/// Writes `piece` to `s` every 100 ms until writing fails or `stop` says
/// so.
fn trickle<S: Write + Send + 'static>(mut s: S, piece: &'static [u8]) -> mpsc::Sender<()> {
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    std::thread::spawn(move || loop {
        if s.write_all(piece).is_err() {
            return;
        }
        match stop_rx.recv_timeout(Duration::from_millis(100)) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    });
    stop_tx
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_trickling_body_is_cut_off_after_the_timeout_and_frees_its_reservation() {
    // One chunked body (it reserves max_body_bytes) fills the budget.
    let d = daemon!(
        "request_body_budget = 16777216\nrequest_body_budget_per_tenant = 16777216\nrequest_body_timeout_seconds = 3\n"
    );
    let mut c = unix(&d);
    send_head(&mut c, "PUT", "/v1/sessions/s-none/files/x", None, &[]);
    continue_or_answer(&mut c).expect("the first body is taken");
    let started = Instant::now();
    let stop = trickle(c.try_clone().expect("clone"), b"1\r\nx\r\n");
    // While it trickles, the budget is taken.
    let mut other = unix(&d);
    send_head(
        &mut other,
        "PUT",
        "/v1/sessions/s-none/files/y",
        Some(10),
        &[],
    );
    assert_budget_refusal(&continue_or_answer(&mut other).expect_err("the budget is full"));
    let r = read_answer(&mut c);
    let took = started.elapsed();
    drop(stop);
    r.assert_error(408, "body_timeout");
    assert!(
        took >= Duration::from_secs(3),
        "cut off after {took:?}, before request_body_timeout_seconds"
    );
    // Its reservation went with it.
    let mut next = unix(&d);
    send_head(
        &mut next,
        "PUT",
        "/v1/sessions/s-none/files/z",
        Some(10),
        &[],
    );
    continue_or_answer(&mut next).expect("the budget is free again");
    next.write_all(b"0123456789").unwrap();
    read_answer(&mut next).assert_error(404, "session_not_found");
}

/// Waits for the daemon to close `s` (end of stream or a reset), reading
/// and dropping whatever it sends; how long that took.
fn closed_after<S: Read + ?Sized>(s: &mut S) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return started.elapsed(),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return started.elapsed(),
            Err(e) => panic!(
                "the connection is still open after {:?}: {e}",
                started.elapsed()
            ),
        }
    }
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn slow_headers_and_idle_connections_are_closed_after_the_header_timeout() {
    let d = daemon!("header_read_timeout_seconds = 3\n");
    // Headers that never end, over TCP (no token needed for that) and the
    // socket.
    let started = Instant::now();
    let mut t = tcp(&d);
    t.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        .unwrap();
    let stop_t = trickle(t.try_clone().unwrap(), b"X-Slow: 1\r\n");
    let mut u = unix(&d);
    u.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    let stop_u = trickle(u.try_clone().unwrap(), b"X-Slow: 1\r\n");
    for (what, s) in [("tcp", &mut t as &mut dyn Read), ("socket", &mut u)] {
        closed_after(s);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(3),
            "{what}: closed after {took:?}"
        );
    }
    drop((stop_t, stop_u));
    // A kept-alive connection that asks nothing more.
    let mut k = unix(&d);
    k.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    assert_eq!(read_answer(&mut k).status, 200);
    let took = closed_after(&mut k);
    assert!(
        took >= Duration::from_secs(2),
        "idle: closed after {took:?}"
    );
    // A connection that sends nothing at all.
    let mut n = tcp(&d);
    let took = closed_after(&mut n);
    assert!(
        took >= Duration::from_secs(2),
        "silent: closed after {took:?}"
    );
}

/// Whether `s` got no answer within a few seconds.
fn unanswered(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut byte = [0u8; 1];
    let quiet = matches!(s.read(&mut byte), Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut));
    s.set_read_timeout(Some(ANSWER_WITHIN)).unwrap();
    quiet
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn connections_per_listener_are_capped_websockets_included() {
    let d = daemon!("max_connections = 3\nheader_read_timeout_seconds = 600\n");
    let id = d.create_session(&json!({}));
    // A terminal and two idle connections take the TCP listener's three.
    let ws = d.ws_tcp(&format!("/v1/sessions/{id}/pty"));
    let idle: Vec<TcpStream> = (0..2).map(|_| tcp(&d)).collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut waiting = tcp(&d);
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert!(unanswered(&mut waiting), "a fourth connection was served");
    // The socket is another listener, with its own connections.
    assert_eq!(d.req("GET", "/healthz", None).status, 200);
    // An idle connection goes: the waiting one is served.
    drop(idle);
    assert_eq!(read_answer(&mut waiting).status, 200);
    // Three again: the terminal and two more; the terminal's end frees
    // its slot.
    let idle: Vec<TcpStream> = (0..2).map(|_| tcp(&d)).collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut waiting = tcp(&d);
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert!(unanswered(&mut waiting), "a fourth connection was served");
    drop(ws);
    assert_eq!(read_answer(&mut waiting).status, 200);
    drop(idle);
}

// ---- what a body becomes -----------------------------------------------------------

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn json_is_counted_with_its_values_so_parsing_cannot_multiply_it() {
    let d = daemon!();
    // 8 MiB of empty strings: 2.8 million values, each a String of 24
    // bytes (and a growing Vec's slack) once parsed: 130 MiB and more.
    let mut argv = String::from(r#"{"argv":["#);
    while argv.len() < 8 * MIB as usize {
        argv.push_str(r#""","#);
    }
    argv.push_str(r#""x"]}"#);
    // The same for Judge0, which parses any body as a JSON value.
    let mut zeros = String::from("[");
    while zeros.len() < 8 * MIB as usize {
        zeros.push_str("0,");
    }
    zeros.push_str("0]");
    let before = reset_peak(d.pid());
    let answers = std::thread::scope(|s| {
        let native: Vec<_> = (0..3)
            .map(|_| s.spawn(|| post_json(&d, "/v1/sessions/s-none/exec", argv.as_bytes())))
            .collect();
        let judge0 = s.spawn(|| post_json(&d, "/judge0/submissions", zeros.as_bytes()));
        let mut all: Vec<Resp> = native.into_iter().map(|h| h.join().unwrap()).collect();
        all.push(judge0.join().unwrap());
        all
    });
    let grown = status_bytes(d.pid(), "VmHWM:").saturating_sub(before);
    eprintln!(
        "daemon VmHWM grew by {} KiB over 4 JSON bodies of 8 MiB",
        grown / 1024
    );
    for r in &answers[..3] {
        r.assert_error(413, "body_too_large");
        assert!(
            r.json()["message"].as_str().unwrap().contains("values"),
            "{}",
            r.text()
        );
    }
    let j = &answers[3];
    assert_eq!(j.status, 413, "{}", j.text());
    assert!(
        j.json()["error"]
            .as_str()
            .is_some_and(|m| m.contains("values")),
        "{}",
        j.text()
    );
    // Four bodies of 8 MiB read, none parsed.
    assert!(
        grown < 4 * 8 * MIB + 16 * MIB,
        "the daemon grew by {} MiB over four 8 MiB JSON bodies",
        grown / MIB
    );
    // A JSON body of ordinary shape goes through.
    let r = d.req_json(
        "POST",
        "/v1/sessions/s-none/exec",
        &json!({"argv": ["true"]}),
    );
    r.assert_error(404, "session_not_found");
}

/// `POST path` with a JSON body given as text, over the socket.
fn post_json(d: &Daemon, path: &str, body: &[u8]) -> Resp {
    runtimed_tests::daemon::http(
        unix(d),
        "POST",
        path,
        Some(body),
        &[("Content-Type", "application/json")],
    )
    .expect("an answer")
}

// ---- tenants -----------------------------------------------------------------------

const TENANTS: &str = r#"
request_body_budget = 67108864
request_body_budget_per_tenant = 33554432
request_body_timeout_seconds = 600

[[tokens]]
token = "tenant-a-token-0123456789"
tenant = "a"

[[tokens]]
token = "tenant-b-token-0123456789"
tenant = "b"
"#;

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn the_budget_is_shared_per_tenant_and_unauthenticated_bodies_take_none() {
    let d = daemon!(TENANTS);
    let a = [("Authorization", "Bearer tenant-a-token-0123456789")];
    let b = [("Authorization", "Bearer tenant-b-token-0123456789")];
    // Clients without a token are refused before their bodies are read,
    // and take nothing from the budget.
    let strangers: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut c = tcp(&d);
            send_head(
                &mut c,
                "PUT",
                "/v1/sessions/s-none/files/x",
                Some(16 * MIB),
                &[],
            );
            continue_or_answer(&mut c)
                .expect_err("no 100 Continue without a token")
                .assert_error(401, "unauthorized");
            c
        })
        .collect();
    // Tenant a: two chunked bodies take its 32 MiB share.
    let held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut c = tcp(&d);
            send_head(&mut c, "PUT", "/v1/sessions/s-none/files/x", None, &a);
            continue_or_answer(&mut c).expect("tenant a's share has room");
            c.write_all(b"4\r\nheld\r\n").unwrap();
            c
        })
        .collect();
    let mut c = tcp(&d);
    send_head(&mut c, "PUT", "/v1/sessions/s-none/files/x", Some(1024), &a);
    assert_budget_refusal(&continue_or_answer(&mut c).expect_err("tenant a's share is full"));
    // Tenant b has its own share.
    let mut c = tcp(&d);
    send_head(&mut c, "PUT", "/v1/sessions/s-none/files/x", Some(4), &b);
    continue_or_answer(&mut c).expect("tenant b's share has room");
    c.write_all(b"body").unwrap();
    read_answer(&mut c).assert_error(404, "session_not_found");
    // The Judge0 routes take from the same budget, in Judge0's shape.
    let mut c = tcp(&d);
    send_head(&mut c, "POST", "/judge0/submissions", Some(1024), &a);
    let r = continue_or_answer(&mut c).expect_err("tenant a's share is full");
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(
        r.json()["error"]
            .as_str()
            .is_some_and(|m| m.contains("budget")),
        "{}",
        r.text()
    );
    // Tenant a's bodies end: its share is free.
    drop(held);
    let deadline = Instant::now() + ANSWER_WITHIN;
    loop {
        let mut c = tcp(&d);
        send_head(&mut c, "PUT", "/v1/sessions/s-none/files/x", Some(4), &a);
        match continue_or_answer(&mut c) {
            Ok(()) => break,
            Err(r) if Instant::now() < deadline => {
                assert_budget_refusal(&r);
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(r) => panic!("tenant a's share was not given back: {}", r.text()),
        }
    }
    drop(strangers);
}
