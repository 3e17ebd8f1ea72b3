//! Hostile HTTP against the real daemon: requests that break the protocol
//! or the document (bad UTF-8 in a path, a truncated body, a malformed
//! chunk, a method a route does not serve, a body over the cap, integers
//! past what the store can hold) each get a 4xx with the `{code, message}`
//! JSON body, change nothing, and no answer names a host path of the
//! daemon. The fuzzing of the whole document is `.ci/schemathesis.sh`.
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use runtimed_tests::daemon::{Daemon, Resp};
use runtimed_tests::{daemon, serde_json};
use serde_json::json;

/// Writes `raw` as is on a new connection to the socket, closes the
/// writing half (the daemon sees the end of the stream: a body cut
/// short), and reads the answer.
fn raw(d: &Daemon, raw: &[u8]) -> Resp {
    let mut s = UnixStream::connect(&d.socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    s.write_all(raw).expect("write");
    s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no answer: {:?}", String::from_utf8_lossy(&out)));
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: out[split + 4..].to_vec(),
    }
}

fn session_count(d: &Daemon) -> usize {
    let r = d.req("GET", "/v1/sessions", None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["sessions"].as_array().map_or(0, Vec::len)
}

/// axum answers a method a route does not serve with an empty 405; ours
/// says which method in the JSON shape and keeps the Allow header.
#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_method_not_served_is_405_json_with_allow() {
    let d = daemon!();
    for (method, path) in [
        ("PATCH", "/v1/sessions"),
        ("PUT", "/v1/run"),
        ("POST", "/healthz"),
    ] {
        let r = d.req(method, path, None);
        r.assert_error(405, "method_not_allowed");
        let message = r.json()["message"].as_str().unwrap_or("").to_string();
        assert!(
            message.contains(method) && message.contains(path),
            "{method} {path}: {message}"
        );
        assert!(r.header("allow").is_some(), "{method} {path}: no Allow");
    }
    let allow = d.req("PATCH", "/v1/sessions", None);
    let allow = allow.header("allow").unwrap_or("");
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
}

/// Path segments that are not UTF-8 once percent-decoded are refused by
/// axum's extractor before any handler runs: plain text until the router
/// shaped every error.
#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn bad_utf8_in_a_path_is_json() {
    let d = daemon!();
    let id = d.create_session(&json!({}));
    for (method, path) in [
        ("GET", "/v1/sessions/%FF".to_string()),
        ("POST", "/v1/sessions/%C3%28/exec".to_string()),
        ("GET", format!("/v1/sessions/{id}/files/%FF%FE")),
        ("DELETE", format!("/v1/sessions/{id}/ptys/%80")),
    ] {
        let r = d.req(method, &path, None);
        r.assert_error(400, "invalid_request");
        assert_eq!(r.header("content-type"), Some("application/json"), "{path}");
    }
    // And a query that does not parse.
    let r = d.req_json(
        "POST",
        &format!("/v1/sessions/{id}/exec?stream=maybe"),
        &json!({"argv": ["true"]}),
    );
    r.assert_error(400, "invalid_request");
}

/// A file PUT over `max_body_bytes` is refused by the body extractor
/// (plain text from axum) before the handler: JSON now, and nothing
/// written.
#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_file_over_the_body_cap_is_413_json() {
    let d = daemon!("max_body_bytes = 1048576\n");
    let id = d.create_session(&json!({}));
    let big = vec![b'x'; 2 << 20];
    let r = d.req("PUT", &format!("/v1/sessions/{id}/files/big"), Some(&big));
    r.assert_error(413, "body_too_large");
    let r = d.req("GET", &format!("/v1/sessions/{id}/files/big"), None);
    r.assert_error(404, "file_not_found");
}

/// A body shorter than its Content-Length (the client went away) is the
/// client's broken request, 400; 413 is for the size cap only.
#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_truncated_body_is_400_not_413() {
    let d = daemon!();
    let body = br#"{"ttl_seconds": 6"#;
    let mut req = format!(
        "POST /v1/sessions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len() + 100
    )
    .into_bytes();
    req.extend_from_slice(body);
    raw(&d, &req).assert_error(400, "invalid_request");
    // The same for a raw-bytes body (files) and a JSON one with a handler
    // that extracts the body itself (exec).
    let id = d.create_session(&json!({}));
    for path in [
        format!("/v1/sessions/{id}/files/cut"),
        format!("/v1/sessions/{id}/exec"),
    ] {
        let method = if path.ends_with("cut") { "PUT" } else { "POST" };
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"argv\""
        );
        raw(&d, req.as_bytes()).assert_error(400, "invalid_request");
    }
    let r = d.req("GET", &format!("/v1/sessions/{id}/files/cut"), None);
    r.assert_error(404, "file_not_found");
    assert_eq!(session_count(&d), 1, "a truncated create made a session");
}

/// Chunked bodies whose chunk size is not hex, or that end before the
/// last chunk: 400 JSON.
#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_bad_chunk_is_400_json() {
    let d = daemon!();
    let id = d.create_session(&json!({}));
    for (path, body) in [
        ("/v1/sessions".to_string(), "ZZ\r\n{}\r\n0\r\n\r\n"),
        ("/v1/sessions".to_string(), "ffffffffffffffffffff\r\n{}\r\n"),
        (format!("/v1/sessions/{id}/files/chunked"), "5\r\nab"),
        (
            format!("/v1/sessions/{id}/files/chunked"),
            "2\r\nab\r\nQ\r\n",
        ),
    ] {
        let method = if path.contains("files") {
            "PUT"
        } else {
            "POST"
        };
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{body}"
        );
        let r = raw(&d, req.as_bytes());
        assert_eq!(r.status, 400, "{path} {body:?}: {}", r.text());
        r.assert_error(400, "invalid_request");
    }
    let r = d.req("GET", &format!("/v1/sessions/{id}/files/chunked"), None);
    r.assert_error(404, "file_not_found");
    assert_eq!(session_count(&d), 1);
}

/// `idle_timeout_seconds` past the longest lifetime: once stored as -1 in
/// SQLite and echoed back rounded, now 400 like `ttl_seconds`, and no
/// session made.
#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn an_idle_timeout_past_the_longest_lifetime_is_refused() {
    let d = daemon!();
    for body in [
        r#"{"idle_timeout_seconds": 18446744073709551615}"#,
        r#"{"idle_timeout_seconds": 9223372036854775808}"#,
        r#"{"idle_timeout_seconds": 604801}"#,
        r#"{"idle_timeout_seconds": 0}"#,
        r#"{"ttl_seconds": 18446744073709551615}"#,
    ] {
        let body: serde_json::Value = serde_json::from_str(body).expect("json");
        d.req_json("POST", "/v1/sessions", &body)
            .assert_error(400, "limit_out_of_range");
    }
    assert_eq!(session_count(&d), 0, "a refused create made a session");
    // The largest allowed one is kept as given.
    let r = d.req_json(
        "POST",
        "/v1/sessions",
        &json!({"idle_timeout_seconds": 604800}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["idle_timeout_seconds"], 604800);
}

/// A PTY whose program cannot be started answers a documented code.
#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_pty_that_cannot_be_spawned_is_spawn_failed() {
    let d = daemon!();
    let id = d.create_session(&json!({}));
    let s = UnixStream::connect(&d.socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let url = format!("ws://localhost/v1/sessions/{id}/pty?argv=/nonexistent/program");
    let Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) =
        tungstenite::client::client(url, s)
    else {
        panic!("a terminal of a missing program was opened");
    };
    assert_eq!(resp.status().as_u16(), 400);
    let body: serde_json::Value =
        serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).expect("JSON");
    assert_eq!(body["code"], "spawn_failed", "{body}");
    let api_md = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api.md"))
        .expect("docs/api.md");
    let table = &api_md[api_md.find("## Errors").expect("an Errors section")..];
    let table = &table[..table.find("\n## ").unwrap_or(table.len())];
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("| 400 |") && l.contains("`spawn_failed`")),
        "spawn_failed is not in docs/api.md's error table"
    );
}

/// An image archive that is not one: the daemon's message named the
/// spool file in its data dir ("/var/lib/runtimed/images/tmp/blob-...").
#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn error_messages_do_not_name_the_data_dir() {
    let d = daemon!();
    let data_dir = d.dir.join("data");
    let data_dir = data_dir.to_str().expect("utf-8 path");
    for body in [&b"garbage"[..], &[0u8; 1024][..], b""] {
        let r = d.req("POST", "/v1/images/import?name=junk:1", Some(body));
        r.assert_error(400, "invalid_archive");
        let message = r.json()["message"].as_str().unwrap_or("").to_string();
        assert!(!message.contains(data_dir), "{message}");
        assert!(
            !message.contains("<data-dir>"),
            "not fixed at the source: {message}"
        );
        assert!(!message.contains("/images/tmp"), "{message}");
    }
}
