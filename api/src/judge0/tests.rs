//! The Judge0 layer without sandboxes: tokens, the status rules, request
//! parsing and its 422s, `fields`, units, base64, language names,
//! `/config_info`, and the routes' auth and error shapes through the
//! router (`oneshot`).

use std::sync::Arc;

use judges::{Availability, Languages, Verdict};
use serde_json::{json, Value};

use super::request::{decode_base64, parse};
use super::response::{encode_base64, iso8601, render, seconds, Fields, Source, DEFAULT_FIELDS};
use super::status::{classify, outcome, STATUSES};
use super::*;
use crate::judge::SubmissionView;

fn languages() -> Languages {
    let mut l = Languages::load(None).unwrap();
    let v = |s: &str| Availability::Available { version: s.into() };
    l.set_availability("c", v("gcc (Debian 12.2.0-14+deb12u1) 12.2.0"));
    l.set_availability("cpp", v("g++ (Debian 12.2.0-14+deb12u1) 12.2.0"));
    l.set_availability("python", v("Python 3.11.2"));
    l.set_availability("go", v("go version go1.19.8 linux/amd64"));
    l.set_availability(
        "rust",
        Availability::Unavailable {
            reason: "no rustc".into(),
        },
    );
    l
}

#[test]
fn tokens_are_uuid_v4_and_only_tokens_are_looked_up() {
    let a = new_token().unwrap();
    let b = new_token().unwrap();
    assert_ne!(a, b);
    for t in [&a, &b] {
        assert!(is_token(t), "{t}");
        assert_eq!(&t[14..15], "4", "version 4: {t}");
        assert!("89ab".contains(&t[19..20]), "RFC variant: {t}");
    }
    assert!(!is_token("sub-0123456789ab"));
    assert!(!is_token("d85cd024-1548-4165-96c7-7bc88673f19"));
    assert!(is_token("d85cd024-1548-4165-96c7-7bc88673f194"));
    assert!(!is_token("d85cd024-1548-4165-96c7x7bc88673f194"));
}

#[test]
fn the_statuses_are_judge0s_fourteen() {
    let ids: Vec<u8> = STATUSES.iter().map(|s| s.id).collect();
    assert_eq!(ids, (1..=14).collect::<Vec<u8>>());
    assert_eq!(STATUSES[6].description, "Runtime Error (SIGSEGV)");
    assert_eq!(STATUSES[10].description, "Runtime Error (NZEC)");
    assert_eq!(STATUSES[13].description, "Exec Format Error");
    assert_eq!(status::by_id(99).id, status::INTERNAL_ERROR);
}

/// A test result as the judge stores it.
fn test_result(verdict: &str, exit_code: Option<i32>, signal: Option<i32>) -> judges::TestResult {
    serde_json::from_value(json!({
        "index": 0, "verdict": verdict, "skipped": false, "time_limit": null,
        "detail": "the detail", "termination": if signal.is_some() { "signaled" } else { "exited" },
        "cpu_time_ms": 2, "wall_time_ms": 15, "memory_kb": 1234,
        "exit_code": exit_code, "signal": signal,
        "stdout": "3\n", "stdout_truncated": false, "stderr": "", "stderr_truncated": false,
        "checker_output": null
    }))
    .unwrap()
}

fn status_of(
    verdict: Verdict,
    exit_code: Option<i32>,
    signal: Option<i32>,
) -> (u8, Option<String>) {
    let t = test_result(verdict.as_str(), exit_code, signal);
    let o = classify(verdict, None, Some("the detail".into()), Some(&t));
    (o.status.id, o.message)
}

#[test]
fn verdicts_map_to_judge0_statuses_and_messages() {
    use status::*;
    let s = |id: u8, m: Option<&str>| (id, m.map(String::from));
    assert_eq!(
        status_of(Verdict::Accepted, Some(0), None),
        s(ACCEPTED, None)
    );
    assert_eq!(
        status_of(Verdict::WrongAnswer, Some(0), None),
        s(WRONG_ANSWER, None)
    );
    assert_eq!(
        status_of(Verdict::CompilationError, None, None),
        s(COMPILATION_ERROR, None)
    );
    // Runtime errors by signal, else by exit code (isolate's messages).
    for (sig, id) in [
        (11, SIGSEGV),
        (25, SIGXFSZ),
        (8, SIGFPE),
        (6, SIGABRT),
        (4, OTHER),
        (9, OTHER),
    ] {
        assert_eq!(
            status_of(Verdict::RuntimeError, None, Some(sig)),
            (id, Some(format!("Caught fatal signal {sig}"))),
            "signal {sig}"
        );
    }
    assert_eq!(
        status_of(Verdict::RuntimeError, Some(3), None),
        s(NZEC, Some("Exited with error status 3"))
    );
    // The limits Judge0 has no status for.
    assert_eq!(
        status_of(Verdict::MemoryLimitExceeded, None, Some(9)),
        s(NZEC, Some("Memory limit exceeded (the detail)"))
    );
    assert_eq!(
        status_of(Verdict::MemoryLimitExceeded, None, Some(6)),
        s(NZEC, Some("Memory limit exceeded (the detail)")),
        "a failed allocation (bad_alloc) is a memory limit too"
    );
    assert_eq!(
        status_of(Verdict::OutputLimitExceeded, None, Some(9)),
        s(SIGXFSZ, Some("Output limit exceeded (the detail)"))
    );
    assert_eq!(
        status_of(Verdict::InternalError, None, None),
        s(INTERNAL_ERROR, Some("the detail"))
    );
    let t = test_result("INTERNAL_ERROR", None, None);
    let o = classify(
        Verdict::InternalError,
        None,
        Some("exec failed: execve /box/main (ENOEXEC)".into()),
        Some(&t),
    );
    assert_eq!(o.status.id, EXEC_FORMAT_ERROR);
    for (which, message) in [
        (judges::TimeLimit::Cpu, "Time limit exceeded"),
        (judges::TimeLimit::Wall, "Time limit exceeded (wall clock)"),
    ] {
        let o = classify(Verdict::TimeLimitExceeded, Some(which), None, Some(&t));
        assert_eq!(
            (o.status.id, o.message.as_deref()),
            (TIME_LIMIT_EXCEEDED, Some(message))
        );
    }
}

fn body(v: Value) -> Result<judges::Submission, BTreeMapErrors> {
    parse(&v, false, &languages()).map_err(|e| e.0)
}

type BTreeMapErrors = std::collections::BTreeMap<String, Vec<String>>;

fn errors(v: Value) -> Value {
    json!(body(v).expect_err("refused"))
}

#[test]
fn a_judge0_body_becomes_one_test_with_converted_limits() {
    let s = body(json!({
        "source_code": "int main(){}", "language_id": "50", "stdin": "1 2",
        "expected_output": "3", "cpu_time_limit": "1.5", "wall_time_limit": 4,
        "memory_limit": 100000, "max_file_size": 1, "stack_limit": 64000,
        "cpu_extra_time": 0.5, "number_of_runs": 1, "max_processes_and_or_threads": 60,
        "enable_per_process_and_thread_time_limit": false, "redirect_stderr_to_stdout": "false",
        "compiler_options": "", "some_future_attribute": [1, 2]
    }))
    .unwrap();
    assert_eq!(s.language, "c");
    assert_eq!(s.tests.len(), 1);
    assert_eq!(s.tests[0].stdin, "1 2");
    assert_eq!(s.tests[0].expected_output.as_deref(), Some("3"));
    assert_eq!(s.limits.cpu_time_ms, 1500);
    assert_eq!(s.limits.wall_time_ms, Some(4000));
    // KB → MiB, rounded up: 100000 KB is 97.7 MiB.
    assert_eq!(s.limits.memory_mb, 98);
    assert_eq!(s.limits.output_mb, 1);
    assert_eq!(s.checker, judges::Checker::Tokens);
    s.validate(&languages()).unwrap();

    // Defaults: the judge's; no expected output, nothing compared.
    let s = body(json!({"source_code": "print(1)", "language_id": 71})).unwrap();
    assert_eq!(s.limits, judges::Limits::default());
    assert_eq!(s.tests[0].expected_output, None);
    assert_eq!(s.tests[0].stdin, "");
}

#[test]
fn bad_attributes_get_judge0s_422_by_name() {
    assert_eq!(
        errors(json!({})),
        json!({"source_code": ["can't be blank"], "language_id": ["can't be blank"]})
    );
    assert_eq!(
        errors(json!("not an object")),
        json!({"source_code": ["can't be blank"], "language_id": ["can't be blank"]})
    );
    assert_eq!(
        errors(json!({"source_code": "  ", "language_id": 150000})),
        json!({"source_code": ["can't be blank"],
               "language_id": ["language with id 150000 doesn't exist"]})
    );
    let e = errors(json!({"source_code": "fn main(){}", "language_id": 73}));
    assert!(
        e["language_id"][0]
            .as_str()
            .unwrap()
            .contains("not available here: no rustc"),
        "{e}"
    );
    let ok = json!({"source_code": "x", "language_id": 50});
    let with = |k: &str, v: Value| {
        let mut b = ok.clone();
        b[k] = v;
        errors(b)
    };
    assert_eq!(
        with("wall_time_limit", json!(100000)),
        json!({"wall_time_limit": ["must be less than or equal to 180"]})
    );
    assert_eq!(
        with("cpu_time_limit", json!(0)),
        json!({"cpu_time_limit": ["must be greater than or equal to 0.05"]})
    );
    assert_eq!(
        with("memory_limit", json!(2048)),
        json!({"memory_limit": ["must be greater than or equal to 16384"]})
    );
    assert_eq!(
        with("cpu_time_limit", json!("fast")),
        json!({"cpu_time_limit": ["is not a number"]})
    );
    assert_eq!(
        with("number_of_runs", json!(3)),
        json!({"number_of_runs": ["must be less than or equal to 1"]})
    );
    for (k, v) in [
        ("enable_network", json!(true)),
        ("redirect_stderr_to_stdout", json!("true")),
        ("enable_per_process_and_thread_time_limit", json!(true)),
        ("enable_per_process_and_thread_memory_limit", json!(true)),
        ("compiler_options", json!("-O3")),
        ("command_line_arguments", json!("a b")),
        ("callback_url", json!("http://example.com/")),
        ("additional_files", json!("UEsDBA==")),
        ("enable_network", json!("maybe")),
    ] {
        let e = with(k, v.clone());
        assert!(e[k][0].is_string(), "{k} = {v}: {e}");
    }
}

#[test]
fn base64_comes_in_lenient_and_goes_out_like_judge0s() {
    // Ruby's encode64: 60 characters a line, a line break at the end.
    let long = "x".repeat(100);
    let enc = encode_base64(long.as_bytes());
    let lines: Vec<&str> = enc.split_terminator('\n').collect();
    assert_eq!(lines[0].len(), 60);
    assert!(enc.ends_with('\n'));
    assert_eq!(decode_base64(&enc).unwrap(), long.as_bytes());
    assert_eq!(encode_base64(b"hello, Judge0\n"), "aGVsbG8sIEp1ZGdlMAo=\n");
    assert_eq!(encode_base64(b""), "");
    // Unpadded, with line breaks: taken.
    assert_eq!(decode_base64("aGVsbG8\n").unwrap(), b"hello");
    assert_eq!(decode_base64("not base64!"), None);

    let langs = languages();
    let b64 = |s: &[u8]| Value::String(encode_base64(s));
    let s = parse(
        &json!({"source_code": b64("print(input())".as_bytes()), "language_id": 71,
                "stdin": b64("h\u{e9}llo".as_bytes()), "expected_output": b64(b"")}),
        true,
        &langs,
    )
    .unwrap();
    assert_eq!(s.source, "print(input())");
    assert_eq!(s.tests[0].stdin, "h\u{e9}llo");
    assert_eq!(s.tests[0].expected_output.as_deref(), Some(""));
    let e = parse(
        &json!({"source_code": "@@@", "language_id": 71, "stdin": b64(b"\xfe\xff")}),
        true,
        &langs,
    )
    .unwrap_err();
    assert_eq!(
        json!(e),
        json!({"source_code": ["is not valid Base64"],
               "stdin": ["must be UTF-8 text once Base64-decoded"]})
    );
}

#[test]
fn fields_default_star_lists_and_unknown_names() {
    assert_eq!(Fields::parse(None).unwrap().names(), DEFAULT_FIELDS);
    assert_eq!(Fields::parse(Some(" ")).unwrap().names(), DEFAULT_FIELDS);
    assert_eq!(Fields::parse(Some("*")).unwrap().names().len(), 35);
    assert_eq!(
        Fields::parse(Some("stdout, status_id,language_id,stdout"))
            .unwrap()
            .names(),
        ["stdout", "status_id", "language_id"]
    );
    let e = Fields::parse(Some("stdout,bogus,nope")).unwrap_err();
    assert_eq!(e.to_string(), "invalid fields: [bogus, nope]");
    assert!(!Fields::parse(None).unwrap().need_request());
    assert!(Fields::parse(Some("stdin")).unwrap().need_request());
}

#[test]
fn units_are_judge0s() {
    assert_eq!(seconds(2), "0.002");
    assert_eq!(seconds(1234), "1.234");
    assert_eq!(seconds(0), "0.000");
    assert_eq!(iso8601(1_473_589_175_306), "2016-09-11T10:19:35.306Z");
    assert_eq!(iso8601(1_473_589_175_000), "2016-09-11T10:19:35.000Z");
}

fn view(status: &'static str, report: Option<Value>) -> SubmissionView {
    SubmissionView {
        id: "d85cd024-1548-4165-96c7-7bc88673f194".into(),
        status,
        language: "cpp".into(),
        created_at: 1_473_589_175,
        finished_at_ms: report.as_ref().map(|_| 1_473_589_176_250),
        report: report.map(|r| serde_json::from_value(r).unwrap()),
        queue_position: None,
    }
}

fn report(verdict: &str, test: judges::TestResult) -> Value {
    json!({"verdict": verdict, "time_limit": null, "detail": null,
           "compile_output": "", "compile_output_truncated": false,
           "tests": [test]})
}

fn rendered(
    v: &SubmissionView,
    fields: &str,
    base64: bool,
) -> Result<Value, super::response::NotUtf8> {
    let langs = languages();
    let src = Source {
        view: v,
        request: None,
        languages: &langs,
    };
    render(&src, &Fields::parse(Some(fields)).unwrap(), base64).map(Value::Object)
}

#[test]
fn a_submission_renders_in_judge0s_attributes_and_units() {
    let done = view(
        "done",
        Some(report("ACCEPTED", test_result("ACCEPTED", Some(0), None))),
    );
    let v = rendered(&done, "", false).unwrap();
    assert_eq!(
        v,
        json!({"stdout": "3\n", "time": "0.002", "memory": 1234, "stderr": null,
               "token": "d85cd024-1548-4165-96c7-7bc88673f194", "compile_output": null,
               "message": null, "status": {"id": 3, "description": "Accepted"}})
    );
    let v = rendered(&done, "*", false).unwrap();
    assert_eq!(v.as_object().unwrap().len(), 35);
    assert_eq!(v["language_id"], 54);
    assert_eq!(v["language"], json!({"id": 54, "name": "C++ (GCC 12.2.0)"}));
    assert_eq!(v["status_id"], 3);
    assert_eq!(v["wall_time"], "0.015");
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["exit_signal"], Value::Null);
    assert_eq!(v["created_at"], "2016-09-11T10:19:35.000Z");
    assert_eq!(v["finished_at"], "2016-09-11T10:19:36.250Z");

    // base64 out: the text attributes.
    let v = rendered(&done, "stdout,stderr,message,status_id", true).unwrap();
    assert_eq!(
        v,
        json!({"stdout": "Mwo=\n", "stderr": null, "message": null, "status_id": 3})
    );

    // Not valid UTF-8 (the judge's U+FFFD): refused without base64 only.
    let mut t = test_result("ACCEPTED", Some(0), None);
    t.stdout = "\u{fffd}\u{fffd} ok\n".into();
    let bad = view("done", Some(report("ACCEPTED", t)));
    assert!(rendered(&bad, "", false).is_err());
    assert!(
        rendered(&bad, "status,time", false).is_ok(),
        "stdout not asked for"
    );
    let v = rendered(&bad, "stdout", true).unwrap();
    assert_eq!(
        decode_base64(v["stdout"].as_str().unwrap()).unwrap(),
        "\u{fffd}\u{fffd} ok\n".as_bytes()
    );

    // Waiting: no figures yet.
    let queued = view("queued", None);
    let v = rendered(&queued, "stdout,time,memory,status,finished_at", false).unwrap();
    assert_eq!(
        v,
        json!({"stdout": null, "time": null, "memory": null, "finished_at": null,
               "status": {"id": 1, "description": "In Queue"}})
    );
    assert_eq!(
        outcome(&view("running", None)).status.id,
        status::PROCESSING
    );

    // A compile error: its output, no test figures.
    let mut ce: Value = json!({"verdict": "COMPILATION_ERROR", "time_limit": null,
        "detail": "the compiler failed", "compile_output": "main.cpp:1: error\n",
        "compile_output_truncated": false, "tests": []});
    ce["tests"] = json!([]);
    let v = rendered(&view("done", Some(ce)), "", false).unwrap();
    assert_eq!(v["status"]["id"], 6);
    assert_eq!(v["compile_output"], "main.cpp:1: error\n");
    assert_eq!(
        (v["time"].clone(), v["memory"].clone()),
        (Value::Null, Value::Null)
    );
}

#[test]
fn language_names_carry_the_probed_version() {
    use super::info::{language_name, languages as list, version_number};
    for (line, want) in [
        ("gcc (Debian 12.2.0-14+deb12u1) 12.2.0", "12.2.0"),
        ("Python 3.11.2", "3.11.2"),
        ("javac 17.0.15", "17.0.15"),
        ("v20.20.2", "20.20.2"),
        ("rustc 1.63.0", "1.63.0"),
        ("go version go1.19.8 linux/amd64", "1.19.8"),
        (
            "GNU bash, version 5.2.15(1)-release (x86_64-pc-linux-gnu)",
            "5.2.15",
        ),
    ] {
        assert_eq!(version_number(line), Some(want), "{line}");
    }
    assert_eq!(version_number("no version here 3"), None);
    let langs = languages();
    let name = |n: &str| language_name(langs.get(n).unwrap());
    assert_eq!(name("c"), "C (GCC 12.2.0)");
    assert_eq!(name("cpp"), "C++ (GCC 12.2.0)");
    assert_eq!(name("go"), "Go (1.19.8)");
    // Not probed yet: the table's name.
    assert_eq!(name("bash"), "Bash");
    // Only the available ones, by name.
    assert_eq!(
        json!(list(&langs)),
        json!([{"id": 50, "name": "C (GCC 12.2.0)"}, {"id": 54, "name": "C++ (GCC 12.2.0)"},
               {"id": 60, "name": "Go (1.19.8)"}, {"id": 71, "name": "Python (3.11.2)"}])
    );
}

#[test]
fn config_info_has_every_key_judge0_clients_read() {
    let v = info::config_info(7);
    // The judge0 Python client's Config model (judge0 0.0.8), all required.
    let keys = "allow_enable_network allow_enable_per_process_and_thread_memory_limit \
        allow_enable_per_process_and_thread_time_limit allowed_languages_for_compile_options \
        callbacks_max_tries callbacks_timeout cpu_extra_time cpu_time_limit enable_additional_files \
        enable_batched_submissions enable_callbacks enable_command_line_arguments \
        enable_compiler_options enable_network enable_per_process_and_thread_memory_limit \
        enable_per_process_and_thread_time_limit enable_submission_delete enable_wait_result \
        maintenance_mode max_cpu_extra_time max_cpu_time_limit max_extract_size max_file_size \
        max_max_file_size max_max_processes_and_or_threads max_memory_limit max_number_of_runs \
        max_processes_and_or_threads max_queue_size max_stack_limit max_submission_batch_size \
        max_wall_time_limit memory_limit number_of_runs redirect_stderr_to_stdout stack_limit \
        submission_cache_duration use_docs_as_homepage wall_time_limit";
    for k in keys.split_whitespace() {
        assert!(!v[k].is_null(), "{k} missing");
    }
    assert_eq!(v["max_queue_size"], 7);
    assert_eq!(v["cpu_time_limit"], 2.0);
    assert_eq!(v["wall_time_limit"], 5.0);
    assert_eq!(v["memory_limit"], 262144);
    assert_eq!(v["max_cpu_time_limit"], 60.0);
    assert_eq!(info::about()["version"], JUDGE0_VERSION);
}

#[test]
fn judge0_listen_off_loopback_needs_tokens() {
    let mut cfg = crate::config::Config::default();
    assert_eq!(cfg.judge0_listen, None, "off by default");
    cfg.judge0_listen = Some("127.0.0.1:2358".parse().unwrap());
    cfg.validate().unwrap();
    cfg.judge0_listen = Some("0.0.0.0:2358".parse().unwrap());
    assert!(cfg.validate().unwrap_err().contains("0.0.0.0:2358"));
    cfg.tokens = vec![crate::config::TokenConfig {
        token: "0123456789abcdef-a".into(),
        tenant: "a".into(),
    }];
    cfg.validate().unwrap();
}

mod routes {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;
    use crate::state::AppState;

    const TOKEN: &str = "0123456789abcdef-a";
    const OPERATOR: &str = "operator-token-0123456789";

    fn state(tokens: bool) -> (Arc<AppState>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = crate::config::Config::default();
        if tokens {
            cfg.tokens = vec![crate::config::TokenConfig {
                token: TOKEN.into(),
                tenant: "a".into(),
            }];
        }
        let engine = crate::engine::EngineConfig {
            // No sandbox is made here: the judge service is not started.
            exe: "/nonexistent/runtimed".into(),
            settings: crate::engine::host::HostSettings {
                landlock: true,
                uid_pool: sandbox::UidPoolConfig {
                    base: 100_000_000,
                    slot_size: 65536,
                    slots: 16,
                },
                run_dir: dir.path().join("run"),
            },
            zygote: None,
            netns_pool: None,
        };
        let store = crate::store::Store::open(&dir.path().join("db")).unwrap();
        let mut state = AppState::new(cfg, engine, store);
        assert!(state.set_operator_token(OPERATOR));
        (Arc::new(state), dir)
    }

    async fn call(
        app: axum::Router,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn x_auth_token_is_checked_on_the_prefix_and_the_root() {
        let (state, _dir) = state(true);
        for (app, prefix) in [
            (crate::router(state.clone()), "/judge0"),
            (crate::routes::judge0_router(state.clone()), ""),
        ] {
            let uri = format!("{prefix}/statuses");
            let (s, v) = call(app.clone(), "GET", &uri, &[]).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{uri}: {v}");
            assert!(v["error"].as_str().unwrap().contains("X-Auth-Token"), "{v}");
            let (s, _) = call(
                app.clone(),
                "GET",
                &uri,
                &[("X-Auth-Token", "wrong-token-0123456")],
            )
            .await;
            assert_eq!(s, StatusCode::UNAUTHORIZED);
            let (s, v) = call(app.clone(), "GET", &uri, &[("X-Auth-Token", TOKEN)]).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            assert_eq!(v.as_array().unwrap().len(), 14);
            let authed = format!("{prefix}/authenticate");
            assert_eq!(
                call(app.clone(), "POST", &authed, &[("X-Auth-Token", TOKEN)])
                    .await
                    .0,
                StatusCode::OK
            );
            // Not as a query parameter (a secret in a URL): 401, and why.
            let query = format!("{prefix}/authenticate?X-Auth-Token={TOKEN}");
            let (s, v) = call(app.clone(), "POST", &query, &[]).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
            assert!(v["error"].as_str().unwrap().contains("header only"), "{v}");
            // The operator token acts as tenant default.
            let (s, _) = call(app.clone(), "GET", &uri, &[("X-Auth-Token", OPERATOR)]).await;
            assert_eq!(s, StatusCode::OK);
            // The native API's bearer token works too.
            let bearer = format!("Bearer {TOKEN}");
            let (s, _) = call(app.clone(), "GET", &uri, &[("Authorization", &bearer)]).await;
            assert_eq!(s, StatusCode::OK);
        }
    }

    #[tokio::test]
    async fn errors_come_in_judge0s_shapes() {
        let (state, _dir) = state(false);
        const OP: &[(&str, &str)] = &[("X-Auth-Token", OPERATOR)];
        let app = crate::router(state.clone());
        // No judge service in this daemon: 503, Judge0's shape.
        let (s, v) = call(app.clone(), "GET", "/judge0/languages", OP).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert!(v["error"].is_string(), "{v}");
        let (s, v) = call(app.clone(), "GET", "/judge0/no/such/route", OP).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert!(v["error"].is_string(), "{v}");
        // Judge0's paged list is not served.
        let (s, _) = call(app.clone(), "GET", "/judge0/submissions", OP).await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
        let (s, v) = call(app.clone(), "GET", "/judge0/about", OP).await;
        assert_eq!(
            (s, v["version"].clone()),
            (StatusCode::OK, json!(JUDGE0_VERSION))
        );
        // The root router serves only Judge0's routes.
        let root = crate::routes::judge0_router(state);
        assert_eq!(
            call(root.clone(), "GET", "/config_info", OP).await.0,
            StatusCode::OK
        );
        let (s, v) = call(root, "GET", "/v1/judge/languages", OP).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    }
}
