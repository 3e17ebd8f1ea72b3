//! Hostile tests of what a judge client can make the daemon hold: output
//! bombs at the largest output limit (native API and the Judge0 layer)
//! against the daemon's own memory (VmRSS/VmHWM), with the verdicts of a
//! huge right answer, a huge wrong one and one over the limit; the
//! tenant's share of the queue; retention of finished submissions; the
//! compile cache's bytes on disk (docs/judges.md, "Resources").
//!
//! Each test fails on the code before these defenses: the daemon's peak
//! memory grew by every test's whole output, a tenant could fill the
//! queue, nothing was ever deleted, and the cache counted entries only.

use std::time::{Duration, Instant};

use runtimed_tests::daemon;
use runtimed_tests::daemon::{Daemon, Resp};
use runtimed_tests::serde_json::{json, Value};

const ALICE: &str = "alice-token-0123456789";
const BOB: &str = "bob-token-0123456789ab";

fn tokens(extra: &str) -> String {
    format!(
        "{extra}\n[[tokens]]\ntoken = \"{ALICE}\"\ntenant = \"alice\"\n\
         [[tokens]]\ntoken = \"{BOB}\"\ntenant = \"bob\"\n"
    )
}

/// A program printing "x" and then, when its input is `ac`, 240 MiB of
/// whitespace (a right answer to "x" for the tokens checker); `wa`: the
/// same and "y" after it (wrong, and only at the very end); `ole`: 300
/// MiB (over the largest output limit, 256 MiB); anything else: nothing
/// more.
const BOMB: &str = r#"#include <stdio.h>
#include <string.h>
static char buf[1 << 20];
int main(void) {
    char mode[8] = "";
    if (scanf("%7s", mode) != 1) return 2;
    memset(buf, ' ', sizeof buf);
    for (unsigned i = 63; i < sizeof buf; i += 64) buf[i] = '\n';
    long mib = strcmp(mode, "ole") == 0 ? 300
        : strcmp(mode, "ac") == 0 || strcmp(mode, "wa") == 0 ? 240 : 0;
    fputs("x\n", stdout);
    for (long i = 0; i < mib; i++) fwrite(buf, 1, sizeof buf, stdout);
    if (strcmp(mode, "wa") == 0) fputs("y\n", stdout);
    return 0;
}
"#;

/// The largest `output_mb` (docs/judges.md, "Limits").
const OUTPUT_MB_MAX: u64 = 256;

/// What the daemon may grow by while judging these bombs
/// (docs/judges.md, "Memory and disk"): per slot a 64 KiB comparison
/// buffer and the kept prefixes (< 1 MiB), per submission its kept output
/// (< 2 MiB, a few copies, and its JSON), the rest allocator and thread
/// slack. The code before kept each test's whole output: 240 MiB per test
/// in flight, twice that with two slots.
const RSS_GROWTH_BOUND: u64 = 48 << 20;

/// (VmRSS, VmHWM) of `pid`, bytes.
fn rss(pid: i32) -> (u64, u64) {
    use runtimed_tests::status_bytes;
    (status_bytes(pid, "VmRSS:"), status_bytes(pid, "VmHWM:"))
}

/// Resets the peak (VmHWM) to the current RSS, so that the next peak is
/// this test's (proc(5): clear_refs, 5).
fn reset_peak(pid: i32) {
    runtimed_tests::reset_peak_rss(pid);
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

/// Files of the judge's output directory the daemon holds open now.
/// Distinct output files the daemon holds open (by inode: while a run
/// starts, the daemon briefly holds two fds of each file, its own and the
/// copy it sends to the helper).
fn output_files_open(d: &Daemon) -> usize {
    use std::os::unix::fs::MetadataExt;
    let Ok(fds) = std::fs::read_dir(format!("/proc/{}/fd", d.pid())) else {
        return 0;
    };
    fds.flatten()
        .filter(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|target| target.to_string_lossy().contains("/judge/output/"))
        })
        .filter_map(|fd| std::fs::metadata(fd.path()).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect::<std::collections::HashSet<_>>()
        .len()
}

fn get(d: &Daemon, path: &str) -> Resp {
    d.req("GET", path, None)
}

fn wait_native(d: &Daemon, id: &str, mut also: impl FnMut()) -> Value {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let v = get(d, &format!("/v1/judge/submissions/{id}")).json();
        if v["status"] == "done" {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{id} not done: {v}\n{}",
            d.log_text()
        );
        also();
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The toolchains probed and a first submission judged: the daemon's
/// memory after this is its working size.
fn warm_up(d: &Daemon) {
    let r = d.req_json(
        "POST",
        "/v1/judge/submissions?wait=true",
        &json!({"language": "c", "source": BOMB,
                "tests": [{"stdin": "none", "expected_output": "x\n"}]}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
}

fn bomb(tests: &[&str]) -> Value {
    json!({"language": "c", "source": BOMB,
           "tests": tests.iter().map(|m| json!({"stdin": m, "expected_output": "x\n"})).collect::<Vec<_>>(),
           "limits": {"output_mb": OUTPUT_MB_MAX, "cpu_time_ms": 20000, "wall_time_ms": 120000}})
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn output_bombs_leave_the_daemons_memory_alone_and_the_verdicts_right() {
    let d = daemon!("judge_slots = 2\n");
    warm_up(&d);
    let pid = d.pid();
    reset_peak(pid);
    let (before, _) = rss(pid);
    // Two submissions at once (two workers), each with tests in parallel.
    let ids: Vec<String> = [bomb(&["ac", "wa", "ole", "ac"]), bomb(&["wa", "ac"])]
        .iter()
        .map(|b| {
            let r = d.req_json("POST", "/v1/judge/submissions", b);
            assert_eq!(r.status, 201, "{}", r.text());
            r.json()["id"].as_str().expect("id").to_string()
        })
        .collect();
    let mut most_files = 0;
    let mut sample = || most_files = most_files.max(output_files_open(&d));
    let first = wait_native(&d, &ids[0], &mut sample);
    let second = wait_native(&d, &ids[1], &mut sample);
    let (after, peak) = rss(pid);
    let growth = peak.saturating_sub(before);
    eprintln!(
        "daemon VmRSS before {:.1} MiB, after {:.1} MiB, peak (VmHWM) {:.1} MiB: grew {:.1} MiB \
         while judging 5 x 240 MiB and 1 x 256 MiB of output; at most {most_files} output files open",
        mib(before),
        mib(after),
        mib(peak),
        mib(growth)
    );

    let verdicts = |v: &Value| -> Vec<String> {
        v["tests"]
            .as_array()
            .expect("tests")
            .iter()
            .map(|t| t["verdict"].as_str().unwrap_or("?").to_string())
            .collect()
    };
    assert_eq!(
        verdicts(&first),
        [
            "ACCEPTED",
            "WRONG_ANSWER",
            "OUTPUT_LIMIT_EXCEEDED",
            "ACCEPTED"
        ],
        "{first}"
    );
    assert_eq!(verdicts(&second), ["WRONG_ANSWER", "ACCEPTED"], "{second}");
    assert_eq!(first["verdict"], "WRONG_ANSWER", "the first failing test's");
    // The wrong token is at the very end: the whole output was compared.
    assert_eq!(
        first["tests"][1]["detail"], "output has extra tokens from token 2",
        "{first}"
    );
    for t in first["tests"].as_array().unwrap() {
        let out = t["stdout"].as_str().expect("stdout");
        assert!(out.starts_with("x\n"), "{}", &out[..out.len().min(80)]);
        assert!(out.len() <= 64 << 10, "a prefix is kept: {}", out.len());
        assert_eq!(t["stdout_truncated"], true);
    }
    assert!(
        growth < RSS_GROWTH_BOUND,
        "the daemon's peak memory grew by {:.1} MiB judging output bombs (bound {:.0} MiB)",
        mib(growth),
        mib(RSS_GROWTH_BOUND)
    );
    // Outputs count against the slots: two streams of at most two tests
    // (on disk: 2 x 2 x 256 MiB at most), however many are in flight.
    assert!(most_files <= 4, "{most_files} output files open at once");
    // Over the largest output limit: refused by name.
    let mut over = bomb(&["ac"]);
    over["limits"]["output_mb"] = json!(OUTPUT_MB_MAX + 1);
    d.req_json("POST", "/v1/judge/submissions", &over)
        .assert_error(400, "invalid_submission");
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn judge0_output_bombs_leave_the_daemons_memory_alone() {
    let d = daemon!("judge_slots = 2\n");
    warm_up(&d);
    let item = |stdin: &str, kb: u64| {
        json!({"source_code": BOMB, "language_id": 50, "stdin": stdin,
               "expected_output": "x", "max_file_size": kb,
               "cpu_time_limit": 20, "wall_time_limit": 120})
    };
    let pid = d.pid();
    reset_peak(pid);
    let (before, _) = rss(pid);
    let max = OUTPUT_MB_MAX * 1024;
    let r = d.req_json(
        "POST",
        "/judge0/submissions/batch",
        &json!({"submissions": [item("ac", max), item("wa", max), item("ole", max), item("ac", max)]}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let tokens: Vec<String> = r
        .json()
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["token"].as_str().expect("token").to_string())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(600);
    let done = loop {
        let v = get(
            &d,
            &format!(
                "/judge0/submissions/batch?tokens={}&fields=status,stdout,message",
                tokens.join(",")
            ),
        )
        .json();
        let subs = v["submissions"].as_array().expect("submissions").clone();
        if subs.iter().all(|s| s["status"]["id"].as_u64() > Some(2)) {
            break subs;
        }
        assert!(Instant::now() < deadline, "not done: {v}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let (after, peak) = rss(pid);
    let growth = peak.saturating_sub(before);
    eprintln!(
        "judge0: daemon VmRSS before {:.1} MiB, after {:.1} MiB, peak {:.1} MiB: grew {:.1} MiB",
        mib(before),
        mib(after),
        mib(peak),
        mib(growth)
    );
    let statuses: Vec<u64> = done
        .iter()
        .map(|s| s["status"]["id"].as_u64().unwrap_or(0))
        .collect();
    // Accepted, Wrong Answer, Runtime Error (SIGXFSZ: the output limit).
    assert_eq!(statuses, [3, 4, 8, 3], "{done:?}");
    for s in &done {
        let out = s["stdout"].as_str().expect("stdout");
        assert!(
            out.starts_with("x\n") && out.len() <= 64 << 10,
            "{}",
            out.len()
        );
    }
    assert!(
        growth < RSS_GROWTH_BOUND,
        "the daemon's peak memory grew by {:.1} MiB (bound {:.0} MiB)",
        mib(growth),
        mib(RSS_GROWTH_BOUND)
    );
    // Judge0's largest max_file_size is the judge's largest output limit.
    let r = d.req_json(
        "POST",
        "/judge0/submissions",
        &item("ac", OUTPUT_MB_MAX * 1024 + 1),
    );
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.json()["max_file_size"].is_array(), "{}", r.text());
    let info = get(&d, "/judge0/config_info").json();
    assert_eq!(info["max_max_file_size"], OUTPUT_MB_MAX * 1024, "{info}");
}

fn as_tenant(d: &Daemon, method: &str, path: &str, token: &str, body: Option<&Value>) -> Resp {
    let auth = format!("Bearer {token}");
    let text = body.map(Value::to_string);
    d.tcp(
        method,
        path,
        text.as_deref().map(str::as_bytes),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
    )
}

/// A submission that takes about `secs` of wall time.
fn slow(secs: f64) -> Value {
    json!({"language": "bash",
           "source": format!("read a b; sleep {secs}; echo $((a+b))"),
           "tests": [{"stdin": "2 3\n", "expected_output": "5\n"}],
           "limits": {"cpu_time_ms": 2000, "wall_time_ms": 30000}})
}

fn status_of(d: &Daemon, token: &str, id: &str) -> (u16, Value) {
    let r = as_tenant(
        d,
        "GET",
        &format!("/v1/judge/submissions/{id}"),
        token,
        None,
    );
    let v = if r.body.is_empty() {
        Value::Null
    } else {
        r.json()
    };
    (r.status, v)
}

fn wait_for_status(d: &Daemon, token: &str, id: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (code, v) = status_of(d, token, id);
        assert_eq!(code, 200, "{v}");
        if v["status"] == want {
            return v;
        }
        assert!(Instant::now() < deadline, "{id} never {want}: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn one_tenant_cannot_fill_the_queue_and_lock_the_others_out() {
    let d = daemon!(tokens(
        "judge_slots = 1\njudge_queue_max = 4\njudge_queue_max_per_tenant = 2\n"
    ));
    let submit = |token: &str, body: &Value| {
        as_tenant(&d, "POST", "/v1/judge/submissions", token, Some(body))
    };
    // Alice's first runs; two more wait: her whole share.
    let r = submit(ALICE, &slow(3.0));
    assert_eq!(r.status, 201, "{}", r.text());
    let running = r.json()["id"].as_str().unwrap().to_string();
    wait_for_status(&d, ALICE, &running, "running");
    let mut alice = vec![running];
    for _ in 0..2 {
        let r = submit(ALICE, &slow(0.0));
        assert_eq!(r.status, 201, "{}", r.text());
        alice.push(r.json()["id"].as_str().unwrap().to_string());
    }
    // The third waiting one is over her share, though the queue has room.
    let r = submit(ALICE, &slow(0.0));
    r.assert_error(429, "tenant_queue_full");
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    // The same through the Judge0 layer.
    let j0 = d.tcp(
        "POST",
        "/judge0/submissions",
        Some(
            json!({"source_code": "echo 5", "language_id": 46})
                .to_string()
                .as_bytes(),
        ),
        &[
            ("X-Auth-Token", ALICE),
            ("Content-Type", "application/json"),
        ],
    );
    assert_eq!(j0.status, 429, "{}", j0.text());
    assert_eq!(j0.json(), json!({"error": "queue is full for this tenant"}));
    assert!(j0.header("retry-after").is_some());
    // Bob is still served.
    let r = submit(BOB, &slow(0.0));
    assert_eq!(r.status, 201, "bob locked out: {}", r.text());
    let bob = r.json()["id"].as_str().unwrap().to_string();
    // The global bound still holds for everyone: 2 + 1 waiting, one more
    // fills it, and then even bob (under his share) gets queue_full.
    assert_eq!(submit(BOB, &slow(0.0)).status, 201);
    submit(BOB, &slow(0.0)).assert_error(429, "queue_full");
    for id in &alice {
        assert_eq!(
            wait_for_status(&d, ALICE, id, "done")["verdict"],
            "ACCEPTED"
        );
    }
    assert_eq!(
        wait_for_status(&d, BOB, &bob, "done")["verdict"],
        "ACCEPTED"
    );
    // Her share is free again.
    assert_eq!(submit(ALICE, &slow(0.0)).status, 201);
}

fn quick() -> Value {
    json!({"language": "bash", "source": "echo 5",
           "tests": [{"stdin": "", "expected_output": "5"}]})
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn finished_submissions_are_deleted_after_the_retention_and_unfinished_never() {
    // Swept every second (a quarter of the retention, at least 1 s).
    let d = daemon!("judge_slots = 1\njudge_retention_seconds = 3\n");
    let r = d.req_json("POST", "/v1/judge/submissions?wait=true", &quick());
    assert_eq!(r.status, 201, "{}", r.text());
    let old = r.json()["id"].as_str().unwrap().to_string();
    let r = d.req_json(
        "POST",
        "/judge0/submissions?wait=true",
        &json!({"source_code": "echo 5", "language_id": 46}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let old_j0 = r.json()["token"].as_str().unwrap().to_string();
    // A long one runs, another waits behind it: older than the retention
    // by the time they finish, and never deleted before.
    let running = d
        .req_json("POST", "/v1/judge/submissions", &slow(8.0))
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let queued = d.req_json("POST", "/v1/judge/submissions", &quick()).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let since = Instant::now();
    let visible = |id: &str| get(&d, &format!("/v1/judge/submissions/{id}")).status == 200;
    let j0_visible = || get(&d, &format!("/judge0/submissions/{old_j0}")).status == 200;
    let deadline = Instant::now() + Duration::from_secs(60);
    while visible(&old) || j0_visible() {
        assert!(Instant::now() < deadline, "{old} or {old_j0} never deleted");
        std::thread::sleep(Duration::from_millis(200));
    }
    get(&d, &format!("/v1/judge/submissions/{old}")).assert_error(404, "submission_not_found");
    get(&d, &format!("/v1/judge/submissions/{old}/events"))
        .assert_error(404, "submission_not_found");
    let r = get(&d, &format!("/judge0/submissions/{old_j0}"));
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.json()["error"].is_string());
    // The unfinished ones outlive the retention and many sweeps: wait
    // until they are older than it by two sweeps (the program sleeps 8 s).
    std::thread::sleep(Duration::from_secs(6).saturating_sub(since.elapsed()));
    let v = get(&d, &format!("/v1/judge/submissions/{running}")).json();
    assert_eq!(v["status"], "running", "{v}");
    let v = get(&d, &format!("/v1/judge/submissions/{queued}")).json();
    assert_eq!(v["status"], "queued", "{v}");
    // Done, they go too.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen_done = false;
    while visible(&running) || visible(&queued) {
        seen_done |=
            get(&d, &format!("/v1/judge/submissions/{running}")).json()["status"] == "done";
        assert!(Instant::now() < deadline, "finished ones never deleted");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(seen_done, "it was seen finished before it went");
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn each_tenant_keeps_its_newest_finished_submissions_from_the_start() {
    let mut d = daemon!(tokens("judge_retention_per_tenant = 2\n"));
    let judged = |token: &str| -> String {
        let r = as_tenant(
            &d,
            "POST",
            "/v1/judge/submissions?wait=true",
            token,
            Some(&quick()),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        r.json()["id"].as_str().unwrap().to_string()
    };
    let alice: Vec<String> = (0..3).map(|_| judged(ALICE)).collect();
    let bob = judged(BOB);
    // Swept at start: a restart applies it at once.
    d.stop();
    d.spawn();
    assert_eq!(
        status_of(&d, ALICE, &alice[0]).0,
        404,
        "the oldest of alice's"
    );
    assert_eq!(status_of(&d, ALICE, &alice[1]).0, 200);
    assert_eq!(status_of(&d, ALICE, &alice[2]).0, 200);
    assert_eq!(status_of(&d, BOB, &bob).0, 200, "bob's are his own count");
}

fn du(path: &std::path::Path) -> u64 {
    let out = std::process::Command::new("du")
        .args(["-s", "--block-size=1"])
        .arg(path)
        .output()
        .expect("du");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("du's number")
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn the_compile_cache_stays_within_its_bytes_least_recently_used_out() {
    // A static C program is ~0.9 MB: room for two.
    let budget: u64 = 2 << 20;
    let d = daemon!(format!(
        "judge_slots = 1\njudge_compile_cache_bytes = {budget}\n"
    ));
    let cache = d.dir.join("data/judge/compile-cache");
    let source =
        |n: u32| format!("#include <stdio.h>\nint main(void){{puts(\"{n}\");return 0;}}\n");
    let judge = |n: u32| -> Value {
        let r = d.req_json(
            "POST",
            "/v1/judge/submissions?wait=true",
            &json!({"language": "c", "source": source(n),
                    "tests": [{"stdin": "", "expected_output": n.to_string()}]}),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        let v = r.json();
        assert_eq!(v["verdict"], "ACCEPTED", "{v}");
        v
    };
    let empty = {
        let e = d.dir.join("empty");
        std::fs::create_dir(&e).expect("mkdir");
        du(&e)
    };
    for n in 1..=3 {
        assert_eq!(judge(n)["compile_cached"], false);
        let used = du(&cache) - empty;
        assert!(
            used <= budget,
            "{used} bytes in the cache (budget {budget})"
        );
    }
    // 3 and 2 are kept; 1, the least recently used, went.
    assert_eq!(judge(3)["compile_cached"], true);
    assert_eq!(judge(2)["compile_cached"], true);
    assert_eq!(judge(1)["compile_cached"], false, "evicted");
    // Compiling 1 again evicted 3 (used before 2).
    assert_eq!(judge(2)["compile_cached"], true);
    assert_eq!(judge(3)["compile_cached"], false);
    assert!(du(&cache) - empty <= budget);
}
