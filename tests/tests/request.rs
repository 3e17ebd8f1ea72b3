//! `runtimed run --request FILE`: the typed request (`sandbox::Request`)
//! is what runners hand the CLI, instead of flags. What it says reaches the
//! program (limits as durations, rlimits such as the stack that no flag
//! sets, env, binds), and whatever goes wrong before the program runs
//! comes back in the report, with nothing of runtimed's own on stderr
//! (which is the program's).
#![forbid(unsafe_code)]

use std::time::Duration;

use oci_spec::runtime::PosixRlimitType;
use runtimed_tests::{harness, unique, EXIT_RUNTIMED_FAILED};
use sandbox::{Env, Request};

fn write_request(req: &[u8]) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("{}.json", unique("request")));
    std::fs::write(&path, req).expect("write the request");
    path
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_typed_request_runs_with_what_it_says() {
    let h = harness!();
    let mut env = Env::empty();
    env.set("GREETING", "from the request").unwrap();
    let req = Request::builder(vec![
        "/bin/sh".into(),
        "-c".into(),
        "echo \"$GREETING\"; ulimit -s; echo \"$HOME\"; exec sleep 5".into(),
    ])
    .env(env.with_default_path())
    .rlimit(PosixRlimitType::RlimitStack, 12345 << 10)
    .cpu_time(Duration::from_millis(400))
    .wall_time(Duration::from_millis(1500))
    .build()
    .unwrap();
    let path = write_request(&serde_json::to_vec(&req).unwrap());
    let out = h.sandbox().opt("--request").opt(&path).run();
    let _ = std::fs::remove_file(&path);
    // The env is exactly the request's (no HOME), the stack limit (KiB)
    // is the request's, and the wall limit given as a duration ended it.
    assert_eq!(
        out.stdout_str(),
        "from the request\n12345\n\n",
        "{}",
        out.context()
    );
    let report = out.report.as_ref().expect("a report").as_ref().unwrap();
    assert_eq!(
        report.termination,
        runtimed_tests::Termination::WallTimeout,
        "{}",
        out.context()
    );
    assert!(out.stderr.is_empty(), "{}", out.context());
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_bad_request_is_a_setup_failed_report_and_nothing_on_stderr() {
    let h = harness!();
    // Past the cap: a valid request padded with whitespace, so only the
    // size can refuse it (and the message says so).
    let mut oversized =
        serde_json::to_vec(&Request::builder(vec!["/bin/true".into()]).build().unwrap()).unwrap();
    oversized.resize((4 << 20) + 1, b' ');
    for (what, bytes, says) in [
        ("not JSON", b"{not json".to_vec(), "key must be a string"),
        ("not a request", br#"{"spec": 1}"#.to_vec(), "invalid type"),
        ("over 4 MiB", oversized, "more than 4194304 bytes"),
    ] {
        let path = write_request(&bytes);
        let out = h.sandbox().opt("--request").opt(&path).run();
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            out.code(),
            EXIT_RUNTIMED_FAILED,
            "{what}: {}",
            out.context()
        );
        assert!(out.stderr.is_empty(), "{what}: {}", out.context());
        let raw = out.report_raw.clone().expect("a report file");
        let report: serde_json::Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(report["termination"], "setup_failed", "{what}: {raw}");
        assert_eq!(report["error"]["step"], "validate", "{what}: {raw}");
        let message = report["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{what}: {raw}");
    }
    // A request the sandbox refuses (a read-write bind of a root-owned
    // directory) fails in the sandbox's own validation, also as a report.
    let req = Request::builder(vec!["/bin/true".into()])
        .bind(sandbox::request::Bind {
            source: "/etc".into(),
            destination: "/data".into(),
            writable: true,
        })
        .build()
        .unwrap();
    let path = write_request(&serde_json::to_vec(&req).unwrap());
    let out = h.sandbox().opt("--request").opt(&path).run();
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.code(), EXIT_RUNTIMED_FAILED, "{}", out.context());
    assert!(out.stderr.is_empty(), "{}", out.context());
    let raw = out.report_raw.clone().expect("a report file");
    assert!(raw.contains("owned by root"), "{raw}");
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_request_excludes_flags_that_would_change_it() {
    let h = harness!();
    let path = write_request(b"{}");
    let out = h
        .sandbox()
        .no_report()
        .opts([
            "--request".as_ref(),
            path.as_os_str(),
            "--memory".as_ref(),
            "64M".as_ref(),
        ])
        .run();
    let _ = std::fs::remove_file(&path);
    assert_eq!(
        out.code(),
        EXIT_RUNTIMED_FAILED,
        "a usage error: {}",
        out.context()
    );
    assert!(
        out.stderr_str().contains("cannot be used with"),
        "{}",
        out.context()
    );
}
