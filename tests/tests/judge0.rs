//! The Judge0-compatible API on a real daemon with real sandboxes: a
//! submission with `wait` and by polling, Judge0's attributes and units,
//! `fields`, base64 both ways (and output that is not UTF-8 refused
//! without it), batches, every status the judge produces for the shipped
//! languages, the queue's statuses and 429, the statuses, languages,
//! about and config lists, `X-Auth-Token`, and the separate port.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use base64::Engine as _;
use runtimed_tests::daemon;
use runtimed_tests::daemon::{http, Daemon, Resp};
use runtimed_tests::serde_json::{json, Value};

const NOT_UTF8: &str = "some attributes for this submission cannot be converted to UTF-8, use base64_encoded=true query parameter";

fn post(d: &Daemon, path: &str, body: &Value) -> Resp {
    d.req_json("POST", &format!("/judge0{path}"), body)
}

fn get(d: &Daemon, path: &str) -> Resp {
    d.req("GET", &format!("/judge0{path}"), None)
}

/// Creates a submission (`query` after `?`); its token.
fn create(d: &Daemon, body: &Value, query: &str) -> String {
    let r = post(d, &format!("/submissions?{query}"), body);
    assert_eq!(r.status, 201, "create: {}", r.text());
    let v = r.json();
    assert_eq!(
        v.as_object().map(|o| o.len()),
        Some(1),
        "only the token: {v}"
    );
    v["token"].as_str().expect("token").to_string()
}

/// Polls until Judge0 would call the submission done (status above 2).
fn wait_done(d: &Daemon, token: &str, query: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = get(d, &format!("/submissions/{token}?{query}"));
        assert_eq!(r.status, 200, "get {token}: {}", r.text());
        let v = r.json();
        let id = v["status"]["id"].as_u64().or(v["status_id"].as_u64());
        if id.expect("a status") > 2 {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{token} not done: {v}\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// "0.002": seconds with three decimals.
fn is_seconds(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.split_once('.').is_some_and(|(a, b)| {
            !a.is_empty()
                && a.chars().all(|c| c.is_ascii_digit())
                && b.len() == 3
                && b.chars().all(|c| c.is_ascii_digit())
        })
    })
}

/// Judge0's (Ruby's) base64: line breaks every 60 characters.
fn b64(data: &[u8]) -> String {
    let flat = base64::engine::general_purpose::STANDARD.encode(data);
    flat.as_bytes()
        .chunks(60)
        .map(|c| format!("{}\n", String::from_utf8_lossy(c)))
        .collect()
}

fn unb64(v: &Value) -> Vec<u8> {
    let s: String = v
        .as_str()
        .unwrap_or_else(|| panic!("base64 text, not {v}"))
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .unwrap_or_else(|e| panic!("{v}: {e}"))
}

/// The available languages, once the toolchain probe is done.
fn languages(d: &Daemon) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let native = d.req("GET", "/v1/judge/languages", None).json();
        if native
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["status"] != "unknown")
        {
            return get(d, "/languages").json().as_array().unwrap().clone();
        }
        assert!(Instant::now() < deadline, "never probed: {native}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

const C_AB: &str =
    "#include <stdio.h>\nint main(){long a,b;scanf(\"%ld %ld\",&a,&b);printf(\"%ld\\n\",a+b);}\n";

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn a_submission_is_judged_with_wait_and_by_polling_in_judge0s_attributes() {
    let d = daemon!();
    // wait=true: 201 with Judge0's 8 default attributes. Judge0 strips
    // trailing whitespace before comparing: "3" is accepted for "3\n".
    let r = post(
        &d,
        "/submissions?wait=true",
        &json!({"source_code": C_AB, "language_id": 50, "stdin": "1 2", "expected_output": "3"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "compile_output",
            "memory",
            "message",
            "status",
            "stderr",
            "stdout",
            "time",
            "token"
        ],
        "{v}"
    );
    assert_eq!(
        v["status"],
        json!({"id": 3, "description": "Accepted"}),
        "{v}"
    );
    assert_eq!(v["stdout"], "3\n");
    assert_eq!(
        (&v["stderr"], &v["compile_output"], &v["message"]),
        (&Value::Null, &Value::Null, &Value::Null)
    );
    assert!(
        is_seconds(&v["time"]),
        "time in seconds as a decimal string: {v}"
    );
    let kb = v["memory"].as_u64().expect("memory: an integer");
    assert!(
        kb > 0 && kb < 256 * 1024,
        "memory in KB (the cgroup's peak): {v}"
    );
    assert!(is_uuid(v["token"].as_str().unwrap()), "{v}");
    // Wrong output: 4.
    let r = post(
        &d,
        "/submissions?wait=true&fields=status_id,stdout",
        &json!({"source_code": C_AB, "language_id": "50", "stdin": "1 2", "expected_output": "4"}),
    );
    assert_eq!(r.json(), json!({"status_id": 4, "stdout": "3\n"}));

    // Without wait: the token; then polled, every attribute (`*`).
    let token = create(
        &d,
        &json!({"source_code": "a, b = map(int, input().split())\nprint(a * b)", "language_id": 71,
                "stdin": "6 7", "cpu_time_limit": 1.5, "memory_limit": 128000, "max_file_size": 2048}),
        "",
    );
    assert!(is_uuid(&token), "{token}");
    let v = wait_done(&d, &token, "fields=*");
    assert_eq!(v.as_object().unwrap().len(), 35, "{v}");
    assert_eq!(v["status_id"], 3, "{v}");
    assert_eq!(v["stdout"], "42\n");
    assert_eq!(v["language_id"], 71);
    assert_eq!(v["language"]["id"], 71);
    assert_eq!(v["stdin"], "6 7");
    assert_eq!(v["expected_output"], Value::Null);
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["exit_signal"], Value::Null);
    assert!(is_seconds(&v["time"]) && is_seconds(&v["wall_time"]), "{v}");
    assert_eq!(v["cpu_time_limit"], "1.5");
    assert_eq!(
        v["wall_time_limit"], "4.0",
        "the default: twice the CPU time and a second"
    );
    // 128000 KB is 125 MiB; the limit echoes in KB.
    assert_eq!(v["memory_limit"], 128000);
    assert_eq!(v["max_file_size"], 2048);
    let (created, finished) = (
        v["created_at"].as_str().unwrap(),
        v["finished_at"].as_str().unwrap(),
    );
    for t in [created, finished] {
        assert!(
            t.len() == 24 && t.ends_with('Z') && &t[10..11] == "T",
            "ISO 8601 with ms: {t}"
        );
    }
    assert!(created <= finished, "{created} {finished}");

    // Only the attributes asked for.
    let v = get(
        &d,
        &format!("/submissions/{token}?fields=stdout,status_id,language_id"),
    )
    .json();
    assert_eq!(
        v,
        json!({"stdout": "42\n", "status_id": 3, "language_id": 71})
    );
    let r = get(&d, &format!("/submissions/{token}?fields=stdout,bogus"));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.json()["error"].as_str().unwrap().contains("bogus"),
        "{}",
        r.text()
    );
    // Unknown tokens, and the native API's ids, are not Judge0's.
    for t in ["0b2c4f3e-1111-4222-8333-444455556666", "sub-0123456789ab"] {
        let r = get(&d, &format!("/submissions/{t}"));
        assert_eq!(r.status, 404, "{}", r.text());
        assert!(r.json()["error"].is_string());
    }
    // The same submission through the native API.
    let native = d
        .req("GET", &format!("/v1/judge/submissions/{token}"), None)
        .json();
    assert_eq!(native["verdict"], "ACCEPTED", "{native}");
    assert_eq!(
        native["tests"].as_array().unwrap().len(),
        1,
        "one test: {native}"
    );
    assert_eq!(native["tests"][0]["index"], 0);
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn bad_submissions_get_judge0s_error_shapes() {
    let d = daemon!();
    let cases = [
        (
            json!({"source_code": "x"}),
            json!({"language_id": ["can't be blank"]}),
        ),
        (
            json!({"source_code": "x", "language_id": 150000}),
            json!({"language_id": ["language with id 150000 doesn't exist"]}),
        ),
        (
            json!({"source_code": "x", "language_id": 50, "wall_time_limit": 1000}),
            json!({"wall_time_limit": ["must be less than or equal to 180"]}),
        ),
        (
            json!({"source_code": "x", "language_id": 50, "compiler_options": "-O0"}),
            json!({"compiler_options": ["setting compiler options is not allowed"]}),
        ),
        (
            json!({"language_id": 50, "enable_network": true}),
            json!({"source_code": ["can't be blank"], "enable_network": ["enabling network is not allowed"]}),
        ),
    ];
    for (body, want) in cases {
        let r = post(&d, "/submissions", &body);
        assert_eq!(r.status, 422, "{body}: {}", r.text());
        assert_eq!(r.json(), want, "{body}");
    }
    let r = post(
        &d,
        "/submissions?wait=perhaps",
        &json!({"source_code": "x", "language_id": 50}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.json()["error"].as_str().unwrap().contains("wait"),
        "{}",
        r.text()
    );
    let r = d.req("POST", "/judge0/submissions", Some(b"{not json"));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.json()["error"].is_string());
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn base64_round_trips_and_output_that_is_not_utf8_needs_it() {
    let d = daemon!();
    let source = "import sys\ns = sys.stdin.read()\nprint(s[::-1])\nprint('\u{2713} on stderr', file=sys.stderr)\n";
    let stdin = "h\u{e9}llo \u{2713}";
    let r = post(
        &d,
        "/submissions?base64_encoded=true&wait=true&fields=stdout,stderr,status,message",
        &json!({"source_code": b64(source.as_bytes()), "language_id": 71,
                "stdin": b64(stdin.as_bytes()), "expected_output": b64("\u{2713} oll\u{e9}h".as_bytes())}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    assert_eq!(v["status"]["id"], 3, "{v}");
    assert_eq!(unb64(&v["stdout"]), "\u{2713} oll\u{e9}h\n".as_bytes());
    assert_eq!(unb64(&v["stderr"]), "\u{2713} on stderr\n".as_bytes());
    assert_eq!(v["message"], Value::Null);
    // Judge0's encoding: lines of 60 characters, a line break at the end.
    let long = post(
        &d,
        "/submissions?base64_encoded=true&wait=true&fields=stdout,token",
        &json!({"source_code": b64(b"print('x' * 100)"), "language_id": 71}),
    )
    .json();
    let text = long["stdout"].as_str().unwrap();
    assert!(
        text.ends_with('\n') && text.lines().next().unwrap().len() == 60,
        "{text:?}"
    );
    assert_eq!(
        unb64(&long["stdout"]),
        format!("{}\n", "x".repeat(100)).as_bytes()
    );
    // What was sent comes back the same.
    let token = long["token"].as_str().unwrap();
    let v = get(
        &d,
        &format!("/submissions/{token}?base64_encoded=true&fields=source_code,stdin"),
    )
    .json();
    assert_eq!(unb64(&v["source_code"]), b"print('x' * 100)");
    assert_eq!(v["stdin"], Value::Null);

    // Bytes that are not UTF-8: Judge0's error, unless base64.
    let raw = json!({"source_code": "import sys\nsys.stdout.buffer.write(b'\\xfe\\xff ok\\n')\n", "language_id": 71});
    let r = post(&d, "/submissions?wait=true", &raw);
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"], NOT_UTF8, "{v}");
    let token = v["token"]
        .as_str()
        .expect("the token comes with the error")
        .to_string();
    let r = get(&d, &format!("/submissions/{token}"));
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json(), json!({"error": NOT_UTF8}));
    let r = get(&d, &format!("/submissions/batch?tokens={token}"));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("one or more submissions"));
    // Attributes that are text are fine without base64.
    let v = get(&d, &format!("/submissions/{token}?fields=status_id,time")).json();
    assert_eq!(v["status_id"], 3, "{v}");
    let v = get(&d, &format!("/submissions/{token}?base64_encoded=true")).json();
    assert!(unb64(&v["stdout"]).ends_with(b" ok\n"), "{v}");
    // Input that is not valid base64.
    let r = post(
        &d,
        "/submissions?base64_encoded=true",
        &json!({"source_code": "print(1)", "language_id": 71}),
    );
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json(), json!({"source_code": ["is not valid Base64"]}));
}

/// A submission and the status Judge0 gives it.
struct Case {
    what: &'static str,
    body: Value,
    status: u64,
    /// `message` starts with this (`None`: null).
    message: Option<&'static str>,
    exit_signal: Option<i64>,
}

fn case(
    what: &'static str,
    lang: u32,
    source: &str,
    extra: Value,
    status: u64,
    message: Option<&'static str>,
) -> Case {
    let mut body = json!({"source_code": source, "language_id": lang});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    Case {
        what,
        body,
        status,
        message,
        exit_signal: None,
    }
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn every_status_the_judge_produces_for_the_shipped_languages() {
    let d = daemon!();
    let signal = |mut c: Case, sig: i64| {
        c.exit_signal = Some(sig);
        c
    };
    let cases = [
        case("C accepted", 50, C_AB, json!({"stdin": "2 2", "expected_output": "4"}), 3, None),
        case("C wrong answer", 50, C_AB, json!({"stdin": "2 2", "expected_output": "5"}), 4, None),
        case(
            "C spinning: CPU time",
            50,
            "int main(){for(;;);}",
            json!({"cpu_time_limit": 0.5}),
            5,
            Some("Time limit exceeded"),
        ),
        case(
            "Python sleeping: wall clock",
            71,
            "import time\ntime.sleep(5)",
            json!({"wall_time_limit": 1}),
            5,
            Some("Time limit exceeded (wall clock)"),
        ),
        case("C++ compile error", 54, "int main() { return x; }", json!({}), 6, None),
        signal(
            case(
                "C null pointer from the input",
                50,
                "#include <stdio.h>\nint main(){long a;scanf(\"%ld\",&a);*(int*)a=1;}",
                json!({"stdin": "0"}),
                7,
                Some("Caught fatal signal 11"),
            ),
            11,
        ),
        case(
            "C flooding stdout past max_file_size",
            50,
            "#include <stdio.h>\nint main(){for(;;)puts(\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\");}",
            json!({"max_file_size": 1024}),
            8,
            Some("Output limit exceeded"),
        ),
        signal(
            case(
                "C dividing by zero",
                50,
                C_AB.replace("a+b", "a/b").as_str(),
                json!({"stdin": "1 0"}),
                9,
                Some("Caught fatal signal 8"),
            ),
            8,
        ),
        signal(
            case(
                "C++ uncaught exception",
                54,
                "#include <stdexcept>\nint main(){throw std::runtime_error(\"no\");}",
                json!({}),
                10,
                Some("Caught fatal signal 6"),
            ),
            6,
        ),
        case(
            "Python exit(3)",
            71,
            "raise SystemExit(3)",
            json!({}),
            11,
            Some("Exited with error status 3"),
        ),
        case(
            "Java uncaught exception",
            62,
            "public class Main { public static void main(String[] a) { throw new RuntimeException(\"no\"); } }",
            json!({}),
            11,
            Some("Exited with error status 1"),
        ),
        signal(
            case(
                "C touching memory past memory_limit (OOM kill)",
                50,
                "#include <stdlib.h>\n#include <string.h>\nint main(){for(;;){char*p=malloc(1<<20);memset(p,1,1<<20);}}",
                json!({"memory_limit": 65536}),
                11,
                Some("Memory limit exceeded"),
            ),
            9,
        ),
        case(
            "C++ failed allocation (bad_alloc)",
            54,
            "#include <vector>\nint main(){std::vector<char> v(1ULL<<50);return v[7];}",
            json!({}),
            11,
            Some("Memory limit exceeded"),
        ),
        case(
            "Python MemoryError",
            71,
            "b = bytearray(1 << 50)",
            json!({}),
            11,
            Some("Memory limit exceeded"),
        ),
        signal(
            case(
                "C illegal instruction",
                50,
                "int main(){__builtin_trap();}",
                json!({}),
                12,
                Some("Caught fatal signal 4"),
            ),
            4,
        ),
    ];
    // All queued at once; judged side by side.
    let tokens: Vec<String> = cases.iter().map(|c| create(&d, &c.body, "")).collect();
    let fields = "fields=status,message,exit_code,exit_signal,time,memory,compile_output,stdout";
    let statuses = get(&d, "/statuses").json();
    for (c, token) in cases.iter().zip(&tokens) {
        let v = wait_done(&d, token, fields);
        assert_eq!(v["status"]["id"], c.status, "{}: {v}", c.what);
        let description =
            statuses.as_array().unwrap()[c.status as usize - 1]["description"].clone();
        assert_eq!(v["status"]["description"], description, "{}: {v}", c.what);
        match c.message {
            None => assert_eq!(v["message"], Value::Null, "{}: {v}", c.what),
            Some(m) => assert!(
                v["message"].as_str().is_some_and(|s| s.starts_with(m)),
                "{}: message {m:?}...: {v}",
                c.what
            ),
        }
        if let Some(sig) = c.exit_signal {
            assert_eq!(v["exit_signal"], sig, "{}: {v}", c.what);
            assert_eq!(v["exit_code"], Value::Null, "{}: {v}", c.what);
        }
        if c.status == 6 {
            assert!(
                v["compile_output"]
                    .as_str()
                    .is_some_and(|o| o.contains("error")),
                "{}: {v}",
                c.what
            );
            assert_eq!(
                (&v["time"], &v["memory"]),
                (&Value::Null, &Value::Null),
                "{v}"
            );
        } else {
            assert!(is_seconds(&v["time"]), "{}: {v}", c.what);
        }
    }
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn batches_are_created_and_read_with_per_item_errors() {
    let d = daemon!();
    let available: Vec<u64> = languages(&d)
        .iter()
        .map(|l| l["id"].as_u64().unwrap())
        .collect();
    // Every shipped language with a Judge0 id answers, in one batch.
    let hello = [
        (50, "#include <stdio.h>\nint main(){puts(\"hi\");}"),
        (54, "#include <iostream>\nint main(){std::cout<<\"hi\"<<std::endl;}"),
        (62, "public class Main { public static void main(String[] a) { System.out.println(\"hi\"); } }"),
        (63, "console.log('hi')"),
        (71, "print('hi')"),
        (73, "fn main() { println!(\"hi\"); }"),
        (60, "package main\nimport \"fmt\"\nfunc main() { fmt.Println(\"hi\") }"),
        (46, "echo hi"),
    ];
    for required in [50, 54, 62, 63, 71, 46] {
        assert!(
            available.contains(&required),
            "{required} not in {available:?}"
        );
    }
    let hello: Vec<(u64, &str)> = hello
        .into_iter()
        .filter(|(id, _)| available.contains(id))
        .collect();
    let mut items: Vec<Value> = hello
        .iter()
        .map(|(id, src)| json!({"language_id": id, "source_code": src, "expected_output": "hi"}))
        .collect();
    items.push(json!({"language_id": 123456789, "source_code": "print('x')"}));
    items.push(json!({"language_id": 71, "source_code": ""}));
    let r = post(&d, "/submissions/batch", &json!({"submissions": items}));
    assert_eq!(r.status, 201, "{}", r.text());
    let out = r.json().as_array().unwrap().clone();
    assert_eq!(out.len(), hello.len() + 2);
    let n = hello.len();
    assert_eq!(
        out[n],
        json!({"language_id": ["language with id 123456789 doesn't exist"]})
    );
    assert_eq!(out[n + 1], json!({"source_code": ["can't be blank"]}));
    let tokens: Vec<&str> = out[..n]
        .iter()
        .map(|t| t["token"].as_str().expect("a token"))
        .collect();

    // Read back together (an unknown token is null), until all are done.
    let unknown = "0b2c4f3e-1111-4222-8333-444455556666";
    let query = format!(
        "/submissions/batch?tokens={},{unknown}&fields=token,stdout,status_id,language_id",
        tokens.join(",")
    );
    let deadline = Instant::now() + Duration::from_secs(180);
    let subs = loop {
        let r = get(&d, &query);
        assert_eq!(r.status, 200, "{}", r.text());
        let subs = r.json()["submissions"]
            .as_array()
            .expect("{submissions: [...]}")
            .clone();
        assert_eq!(subs.len(), n + 1);
        if subs[..n]
            .iter()
            .all(|s| s["status_id"].as_u64().unwrap() > 2)
        {
            break subs;
        }
        assert!(Instant::now() < deadline, "not done: {subs:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    for (s, (id, _)) in subs.iter().zip(&hello) {
        assert_eq!(s.as_object().unwrap().len(), 4, "{s}");
        assert_eq!(s["language_id"], *id, "{s}");
        assert_eq!(s["status_id"], 3, "language {id}: {s}");
        assert_eq!(s["stdout"], "hi\n", "{s}");
    }
    assert_eq!(subs[n], Value::Null);

    let r = post(&d, "/submissions/batch", &json!({"submissions": []}));
    assert_eq!(r.status, 400, "{}", r.text());
    let many: Vec<Value> = (0..21)
        .map(|_| json!({"language_id": 46, "source_code": "echo"}))
        .collect();
    let r = post(&d, "/submissions/batch", &json!({"submissions": many}));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.json()["error"].as_str().unwrap().contains("20"),
        "{}",
        r.text()
    );
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn statuses_languages_about_and_config_info() {
    let d = daemon!();
    let statuses = get(&d, "/statuses").json();
    let want = [
        "In Queue",
        "Processing",
        "Accepted",
        "Wrong Answer",
        "Time Limit Exceeded",
        "Compilation Error",
        "Runtime Error (SIGSEGV)",
        "Runtime Error (SIGXFSZ)",
        "Runtime Error (SIGFPE)",
        "Runtime Error (SIGABRT)",
        "Runtime Error (NZEC)",
        "Runtime Error (Other)",
        "Internal Error",
        "Exec Format Error",
    ];
    let got: Vec<(u64, &str)> = statuses
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_u64().unwrap(),
                s["description"].as_str().unwrap(),
            )
        })
        .collect();
    let want: Vec<(u64, &str)> = want
        .iter()
        .enumerate()
        .map(|(i, s)| (i as u64 + 1, *s))
        .collect();
    assert_eq!(got, want);

    // Names from the probed versions; the host rootfs's toolchains.
    let langs = languages(&d);
    let name = |id: u64| {
        langs
            .iter()
            .find(|l| l["id"] == id)
            .unwrap_or_else(|| panic!("{id} missing from {langs:?}"))["name"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let host = |cmd: &str, arg: &str| {
        let out = std::process::Command::new(cmd)
            .arg(arg)
            .output()
            .expect(cmd);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let gcc = host("gcc", "-dumpfullversion");
    assert_eq!(name(50), format!("C (GCC {gcc})"));
    assert_eq!(name(54), format!("C++ (GCC {gcc})"));
    let python = host("/usr/bin/python3", "--version");
    assert_eq!(
        name(71),
        format!("Python ({})", python.trim_start_matches("Python "))
    );
    for l in &langs {
        assert_eq!(l.as_object().unwrap().len(), 2, "{{id, name}}: {l}");
        assert!(
            [46, 50, 54, 60, 62, 63, 71, 73].contains(&l["id"].as_u64().unwrap()),
            "{l}"
        );
    }
    let mut sorted = langs.clone();
    sorted.sort_by_key(|l| l["name"].as_str().unwrap().to_string());
    assert_eq!(sorted, langs, "by name, as Judge0 lists them");
    let cpp = get(&d, "/languages/54").json();
    assert_eq!(cpp["id"], 54);
    assert_eq!(cpp["name"], name(54));
    assert_eq!(cpp["source_file"], "main.cpp");
    assert_eq!(cpp["is_archived"], false);
    assert!(
        cpp["compile_cmd"].as_str().unwrap().starts_with("g++ "),
        "{cpp}"
    );
    assert_eq!(cpp["run_cmd"], "/box/main");
    let r = get(&d, "/languages/9999");
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.json()["error"].is_string());

    assert_eq!(get(&d, "/about").json()["version"], "1.13.1");
    let c = get(&d, "/config_info").json();
    assert_eq!(
        c["max_queue_size"], 1000,
        "the daemon's judge_queue_max: {c}"
    );
    assert_eq!(c["enable_wait_result"], true);
    assert_eq!(c["max_submission_batch_size"], 20);
    assert_eq!(c["memory_limit"], 262144);
}

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn the_queue_shows_in_queue_and_processing_then_429() {
    let d = daemon!("judge_slots = 1\njudge_queue_max = 1\n");
    let slow = json!({"source_code": "read a b; sleep 2; echo $((a+b))", "language_id": 46,
                      "stdin": "2 3", "expected_output": "5", "wall_time_limit": 10});
    let first = create(&d, &slow, "");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = get(
            &d,
            &format!("/submissions/{first}?fields=status,time,finished_at"),
        )
        .json();
        let id = v["status"]["id"].as_u64().unwrap();
        if id == 2 {
            assert_eq!(v["status"]["description"], "Processing");
            assert_eq!(
                (&v["time"], &v["finished_at"]),
                (&Value::Null, &Value::Null),
                "{v}"
            );
            break;
        }
        assert_eq!(id, 1, "{v}");
        assert!(Instant::now() < deadline, "never processing: {v}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = create(&d, &slow, "");
    let v = get(&d, &format!("/submissions/{second}?fields=status,stdout")).json();
    assert_eq!(
        v,
        json!({"status": {"id": 1, "description": "In Queue"}, "stdout": null})
    );
    // Full: 429 with Retry-After, for one and for a batch.
    for r in [
        post(&d, "/submissions", &slow),
        post(
            &d,
            "/submissions/batch",
            &json!({"submissions": [slow.clone(), slow.clone()]}),
        ),
    ] {
        assert_eq!(r.status, 429, "{}", r.text());
        assert_eq!(r.json(), json!({"error": "queue is full"}));
        let retry: u64 = r
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
    }
    assert_eq!(wait_done(&d, &first, "")["status"]["id"], 3);
    assert_eq!(wait_done(&d, &second, "")["status"]["id"], 3);
}

/// A request to the Judge0 port.
fn judge0_port(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&Value>,
    token: Option<&str>,
) -> Resp {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to judge0_listen");
    let body = body.map(Value::to_string);
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(t) = token {
        headers.push(("X-Auth-Token", t));
    }
    http(
        s,
        method,
        path,
        body.as_deref().map(str::as_bytes),
        &headers,
    )
    .expect("request")
}

const ALICE: &str = "alice-token-0123456789";
const BOB: &str = "bob-token-0123456789ab";

#[test]
#[ignore = "privileged: needs root and a built runtimed"]
fn x_auth_token_and_the_judge0_port() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let config = format!(
        "judge0_listen = \"127.0.0.1:{port}\"\n\
         [[tokens]]\ntoken = \"{ALICE}\"\ntenant = \"alice\"\n\
         [[tokens]]\ntoken = \"{BOB}\"\ntenant = \"bob\"\n"
    );
    let d = daemon!(config);
    // Said once it listens (the log is read on another thread).
    let said = format!("Judge0-compatible API on http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.log_text().contains(&said) {
        assert!(
            Instant::now() < deadline,
            "{said:?} not in {}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Tokens are configured: none or a wrong one is 401.
    for token in [None, Some("not-a-configured-token")] {
        let r = judge0_port(port, "GET", "/statuses", None, token);
        assert_eq!(r.status, 401, "{token:?}: {}", r.text());
        assert!(
            r.json()["error"].as_str().unwrap().contains("X-Auth-Token"),
            "{}",
            r.text()
        );
    }
    assert_eq!(
        judge0_port(port, "GET", "/statuses", None, Some(ALICE)).status,
        200
    );
    assert_eq!(
        judge0_port(port, "POST", "/authenticate", None, Some(BOB)).status,
        200
    );

    // Alice's submission, at the root of the Judge0 port.
    let r = judge0_port(
        port,
        "POST",
        "/submissions?wait=true&fields=token,status_id,stdout",
        Some(&json!({"source_code": "echo $((6*7))", "language_id": 46})),
        Some(ALICE),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    assert_eq!(
        (v["status_id"].clone(), v["stdout"].clone()),
        (json!(3), json!("42\n")),
        "{v}"
    );
    let token = v["token"].as_str().unwrap().to_string();
    let path = format!("/submissions/{token}?fields=stdout");
    assert_eq!(
        judge0_port(port, "GET", &path, None, Some(ALICE)).json()["stdout"],
        "42\n"
    );
    // Tenants see their own submissions only.
    let r = judge0_port(port, "GET", &path, None, Some(BOB));
    assert_eq!(r.status, 404, "{}", r.text());
    // The /judge0 prefix on the daemon's own TCP listener, the same token.
    let r = d.tcp(
        "GET",
        &format!("/judge0{path}"),
        None,
        &[("X-Auth-Token", ALICE)],
    );
    assert_eq!(
        (r.status, r.json()["stdout"].clone()),
        (200, json!("42\n")),
        "{}",
        r.text()
    );
    assert_eq!(
        d.tcp("GET", &format!("/judge0{path}"), None, &[]).status,
        401
    );
    // The socket needs no token; its peers act as tenant default.
    assert_eq!(get(&d, "/statuses").status, 200);
    assert_eq!(get(&d, &path).status, 404);
    // The Judge0 port serves nothing else.
    for p in ["/v1/judge/languages", "/healthz"] {
        let r = judge0_port(port, "GET", p, None, Some(ALICE));
        assert_eq!(r.status, 404, "{p}: {}", r.text());
        assert!(r.json()["error"].is_string());
    }
}
