//! The pipeline against a recording fake runner: which jobs it makes (mounts,
//! stdin, limits), what the sandbox would see on disk at that moment, the
//! order of events, skipping, and cleanup. Real sandboxes: judges/tests/.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use super::*;
use crate::runner::RunError;
use sandbox::{ExitReport, StepFailure};

type Respond = dyn Fn(&Job) -> (Duration, Result<RunOutput, RunError>) + Send + Sync;

struct Fake {
    respond: Box<Respond>,
    jobs: Mutex<Vec<Job>>,
}

impl Fake {
    fn new(
        respond: impl Fn(&Job) -> (Duration, Result<RunOutput, RunError>) + Send + Sync + 'static,
    ) -> Fake {
        Fake {
            respond: Box::new(respond),
            jobs: Mutex::new(Vec::new()),
        }
    }

    fn jobs(&self) -> Vec<Job> {
        self.jobs.lock().unwrap().clone()
    }
}

impl Runner for Fake {
    fn run<'a>(
        &'a self,
        job: Job,
    ) -> Pin<Box<dyn Future<Output = Result<RunOutput, RunError>> + Send + 'a>> {
        let (delay, out) = (self.respond)(&job);
        self.jobs.lock().unwrap().push(job);
        Box::pin(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            out
        })
    }
}

fn report(termination: Termination, code: Option<i32>, signal: Option<i32>) -> ExitReport {
    ExitReport {
        sandbox_id: "fake".into(),
        termination,
        exit_code: code,
        signal,
        wall_time_us: 12_400,
        cpu_user_us: 5_000,
        cpu_system_us: 1_000,
        cpu_total_us: 6_600,
        memory_peak_bytes: 3 << 20,
        oom_kills: 0,
        pids_limit_hits: 0,
        stdout_bytes: Some(0),
        stderr_bytes: Some(0),
        host_uid: 100_000_000,
        host_gid: 100_000_000,
        cgroup_paths: vec![],
        error: None,
    }
}

fn output(r: ExitReport, stdout: &str, stderr: &str) -> Result<RunOutput, RunError> {
    Ok(RunOutput {
        report: r,
        stdout: stdout.into(),
        stderr: stderr.into(),
        stdout_truncated: false,
        stderr_truncated: false,
    })
}

fn exited(code: i32, stdout: &str) -> Result<RunOutput, RunError> {
    output(report(Termination::Exited, Some(code), None), stdout, "")
}

fn is_compile(j: &Job) -> bool {
    j.mounts.iter().any(|m| m.writable)
}

fn is_checker(j: &Job) -> bool {
    j.mounts.iter().any(|m| m.dest == "/check")
}

/// The test's stdin, read the way the runner would (host side).
fn stdin_of(j: &Job) -> String {
    std::fs::read_to_string(j.stdin.as_ref().unwrap()).unwrap()
}

/// The A+B answer for a test job.
fn sum(j: &Job) -> String {
    let s: i64 = stdin_of(j)
        .split_whitespace()
        .map(|t| t.parse::<i64>().unwrap())
        .sum();
    format!("{s}\n")
}

fn langs() -> Languages {
    Languages::load(None).unwrap()
}

fn submission(language: &str, tests: &[(&str, &str)]) -> Submission {
    Submission {
        language: language.into(),
        source: "SOURCE TEXT".into(),
        tests: tests
            .iter()
            .map(|(i, o)| TestCase {
                stdin: i.to_string(),
                expected_output: Some(o.to_string()),
            })
            .collect(),
        limits: Limits::default(),
        checker: Checker::Tokens,
        stop_on_first_failure: false,
    }
}

struct Run {
    report: Result<Report, JudgeError>,
    events: Vec<Event>,
}

async fn run(fake: &Fake, languages: &Languages, s: &Submission, slots: usize) -> Run {
    let work = tempfile::tempdir().unwrap();
    let events = Mutex::new(Vec::new());
    let report = judge(fake, languages, s, work.path(), slots, |e| {
        events.lock().unwrap().push(e)
    })
    .await;
    let left: Vec<_> = std::fs::read_dir(work.path()).unwrap().collect();
    assert!(left.is_empty(), "the work dir was left behind: {left:?}");
    Run {
        report,
        events: events.into_inner().unwrap(),
    }
}

fn names(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            Event::CompileStart => "compile_start".to_string(),
            Event::CompileDone { ok } => format!("compile_done({ok})"),
            Event::TestStart { index } => format!("start{index}"),
            Event::TestDone { index, result } => {
                format!(
                    "done{index}{}",
                    if result.skipped { "(skipped)" } else { "" }
                )
            }
            Event::Done { verdict } => format!("done({verdict})"),
        })
        .collect()
}

#[tokio::test]
async fn compiles_once_then_runs_each_test_read_only_with_its_stdin() {
    let fake = Fake::new(|j| {
        let box_dir = &j.mounts[0].host;
        if is_compile(j) {
            // The sandbox sees the source, and no test data.
            assert_eq!(
                std::fs::read_to_string(box_dir.join("main.cpp")).unwrap(),
                "SOURCE TEXT"
            );
            assert_eq!(std::fs::read_dir(box_dir).unwrap().count(), 1);
            std::fs::write(box_dir.join("main"), "ELF").unwrap();
            return (Duration::ZERO, exited(0, ""));
        }
        let stdin = j.stdin.clone().unwrap();
        for m in &j.mounts {
            assert!(!stdin.starts_with(&m.host), "stdin file is inside a mount");
            assert!(!m.writable);
        }
        let mut files: Vec<_> = std::fs::read_dir(box_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        assert_eq!(
            files,
            ["main", "main.cpp"],
            "only the program is in the box"
        );
        (Duration::ZERO, exited(0, &sum(j)))
    });
    let s = submission("cpp", &[("1 2", "3"), ("10 20\n", "30\n"), ("-5 5", "0")]);
    let r = run(&fake, &langs(), &s, 2).await;
    let report = r.report.unwrap();
    assert_eq!(report.verdict, Verdict::Accepted);
    assert_eq!(report.detail, None);
    assert_eq!(report.compile_output.as_deref(), Some(""));
    assert_eq!(report.tests.len(), 3);
    for (i, t) in report.tests.iter().enumerate() {
        assert_eq!(t.index, i);
        assert_eq!(t.verdict, Some(Verdict::Accepted));
        assert_eq!((t.cpu_time_ms, t.wall_time_ms, t.memory_kb), (7, 12, 3072));
        assert_eq!(t.exit_code, Some(0));
        assert_eq!(t.termination, Some(Termination::Exited));
    }
    let jobs = fake.jobs();
    assert_eq!(jobs.len(), 4);
    let compile = &jobs[0];
    assert!(is_compile(compile));
    assert_eq!(compile.argv[0], "g++");
    assert_eq!(compile.cwd, "/box");
    assert_eq!(compile.mounts.len(), 1);
    assert_eq!(compile.mounts[0].dest, "/box");
    assert_eq!(compile.limits.cpu_time, Duration::from_secs(10));
    assert_eq!(compile.limits.memory_bytes, 1 << 30);
    assert_eq!(compile.limits.pids, 64);
    let t = &jobs[1];
    assert_eq!(t.argv, ["/box/main"]);
    assert_eq!(t.limits.cpu_time, Duration::from_millis(2000));
    assert_eq!(t.limits.wall_time, Duration::from_millis(5000));
    assert_eq!(t.limits.memory_bytes, 256 << 20);
    assert_eq!(t.limits.stack_bytes, Some(256 << 20));
    assert_eq!(t.limits.output_bytes, 16 << 20);
    assert_eq!(t.limits.pids, 16);
    assert!(t.env.iter().any(|(k, v)| k == "HOME" && v == "/tmp"));
    let n = names(&r.events);
    assert_eq!(n.len(), 9, "{n:?}");
    assert_eq!(
        n[..4],
        ["compile_start", "compile_done(true)", "start0", "start1"],
        "{n:?}"
    );
    assert_eq!(n[8], "done(ACCEPTED)");
    // The third test starts only when a slot is free.
    let pos = |s: &str| n.iter().position(|x| x == s).unwrap();
    assert!(pos("start2") > pos("done0").min(pos("done1")), "{n:?}");
    assert!(pos("done2") > pos("start2"));
}

#[tokio::test]
async fn language_adjustments_reach_the_job() {
    let fake = Fake::new(|j| {
        if is_compile(j) {
            (Duration::ZERO, exited(0, ""))
        } else {
            (Duration::ZERO, exited(0, &sum(j)))
        }
    });
    let mut s = submission("java", &[("1 2", "3")]);
    s.limits.memory_mb = 128;
    s.limits.cpu_time_ms = 1000;
    s.limits.wall_time_ms = Some(1500);
    let r = run(&fake, &langs(), &s, 1).await.report.unwrap();
    assert_eq!(r.verdict, Verdict::Accepted);
    let t = &fake.jobs()[1];
    assert!(t.argv.contains(&"-Xmx128m".to_string()), "{:?}", t.argv);
    assert!(t.argv.contains(&"-Xss128m".to_string()), "{:?}", t.argv);
    assert_eq!(t.limits.memory_bytes, (128 + 160) << 20);
    assert_eq!(t.limits.pids, 64);
    assert_eq!(t.limits.wall_time, Duration::from_millis(1500));
}

#[tokio::test]
async fn interpreted_languages_have_no_compile_step() {
    let fake = Fake::new(|j| (Duration::ZERO, exited(0, &sum(j))));
    let r = run(&fake, &langs(), &submission("python", &[("2 2", "4")]), 1).await;
    assert_eq!(r.report.unwrap().compile_output, None);
    assert_eq!(
        names(&r.events),
        ["start0", "done0", "done(ACCEPTED)"].map(String::from)
    );
    let jobs = fake.jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].argv, ["python3", "-B", "/box/main.py"]);
}

#[tokio::test]
async fn a_compile_error_returns_the_compiler_output_and_runs_nothing() {
    let fake = Fake::new(|_| {
        (
            Duration::ZERO,
            output(
                report(Termination::Exited, Some(1), None),
                "",
                "main.c:1:1: error: expected ';'\n",
            ),
        )
    });
    let r = run(
        &fake,
        &langs(),
        &submission("c", &[("1", "1"), ("2", "2")]),
        2,
    )
    .await;
    let report = r.report.unwrap();
    assert_eq!(report.verdict, Verdict::CompilationError);
    assert_eq!(
        report.compile_output.as_deref(),
        Some("main.c:1:1: error: expected ';'\n")
    );
    assert!(report.detail.unwrap().contains("exit code 1"));
    assert!(report
        .tests
        .iter()
        .all(|t| t.skipped && t.verdict.is_none()));
    assert_eq!(fake.jobs().len(), 1);
    assert_eq!(
        names(&r.events),
        [
            "compile_start",
            "compile_done(false)",
            "done0(skipped)",
            "done1(skipped)",
            "done(COMPILATION_ERROR)"
        ]
        .map(String::from)
    );
}

#[tokio::test]
async fn compiler_output_is_capped() {
    let fake = Fake::new(|_| {
        (
            Duration::ZERO,
            output(
                report(Termination::Exited, Some(1), None),
                "",
                &"e".repeat(100 << 10),
            ),
        )
    });
    let r = run(&fake, &langs(), &submission("c", &[("1", "1")]), 1)
        .await
        .report
        .unwrap();
    assert_eq!(r.compile_output.map(|o| o.len()), Some(64 << 10));
    assert!(r.compile_output_truncated);
}

#[tokio::test]
async fn a_compiler_that_cannot_start_is_an_internal_error_not_the_programs() {
    let fake = Fake::new(|_| {
        let mut r = report(Termination::SetupFailed, None, None);
        r.error = Some(StepFailure {
            step: sandbox::report::Step::Exec,
            errno: Some(sandbox::report::Errno::ENOENT),
            message: "gcc: No such file or directory".into(),
        });
        (Duration::ZERO, output(r, "", ""))
    });
    let r = run(&fake, &langs(), &submission("c", &[("1", "1")]), 1)
        .await
        .report
        .unwrap();
    assert_eq!(r.verdict, Verdict::InternalError);
    assert!(r.detail.unwrap().contains("gcc: No such file"));
}

#[tokio::test]
async fn runner_failures_are_internal_errors() {
    let fake = Fake::new(|_| {
        (
            Duration::ZERO,
            Err(RunError::Protocol {
                what: "zygote".into(),
                reason: "gone".into(),
            }),
        )
    });
    let r = run(&fake, &langs(), &submission("bash", &[("", "x")]), 1)
        .await
        .report
        .unwrap();
    assert_eq!(r.verdict, Verdict::InternalError);
    assert_eq!(r.tests[0].verdict, Some(Verdict::InternalError));
    assert!(r.detail.unwrap().contains("zygote: gone"));
}

#[tokio::test]
async fn the_overall_verdict_is_the_first_failure_in_test_order() {
    // Test 0 fails late (RE), test 2 fails early (TLE): RE wins.
    let fake = Fake::new(|j| match stdin_of(j).as_str() {
        "0" => (Duration::from_millis(300), exited(3, "")),
        "2" => (
            Duration::ZERO,
            output(report(Termination::CpuTimeout, None, Some(9)), "", ""),
        ),
        _ => (Duration::ZERO, exited(0, "ok")),
    });
    let s = submission(
        "bash",
        &[("0", "ok"), ("1", "ok"), ("2", "ok"), ("3", "no")],
    );
    let r = run(&fake, &langs(), &s, 3).await;
    let report = r.report.unwrap();
    assert_eq!(report.verdict, Verdict::RuntimeError);
    assert_eq!(report.detail.as_deref(), Some("test 0: exit code 3"));
    let v: Vec<_> = report.tests.iter().map(|t| t.verdict).collect();
    assert_eq!(
        v,
        [
            Some(Verdict::RuntimeError),
            Some(Verdict::Accepted),
            Some(Verdict::TimeLimitExceeded),
            Some(Verdict::WrongAnswer)
        ]
    );
    assert_eq!(report.tests[2].time_limit, Some(TimeLimit::Cpu));
    assert_eq!(report.tests[3].detail.as_deref(), Some("token 1 differs"));
    // Test 0 finished last although it started first.
    let n = names(&r.events);
    let pos = |s: &str| n.iter().position(|x| x == s).unwrap();
    assert!(
        pos("done2") < pos("done0") && pos("done3") < pos("done0"),
        "{n:?}"
    );
}

#[tokio::test]
async fn stop_on_first_failure_skips_and_never_starts_later_tests() {
    let fake = Fake::new(|j| {
        let wrong = stdin_of(j) == "1";
        (Duration::ZERO, exited(0, if wrong { "bad" } else { "ok" }))
    });
    let mut s = submission(
        "bash",
        &[("0", "ok"), ("1", "ok"), ("2", "ok"), ("3", "ok")],
    );
    s.stop_on_first_failure = true;
    let r = run(&fake, &langs(), &s, 1).await;
    let report = r.report.unwrap();
    assert_eq!(report.verdict, Verdict::WrongAnswer);
    assert_eq!(fake.jobs().len(), 2, "tests 2 and 3 must not run");
    assert!(report.tests[2].skipped && report.tests[3].skipped);
    assert_eq!(report.tests[2].verdict, None);
    assert_eq!(
        names(&r.events),
        [
            "start0",
            "done0",
            "start1",
            "done1",
            "done2(skipped)",
            "done3(skipped)",
            "done(WRONG_ANSWER)"
        ]
        .map(String::from)
    );
    // Without the flag every test runs.
    s.stop_on_first_failure = false;
    let fake2 = Fake::new(|_| (Duration::ZERO, exited(0, "bad")));
    let report = run(&fake2, &langs(), &s, 1).await.report.unwrap();
    assert_eq!(fake2.jobs().len(), 4);
    assert!(report
        .tests
        .iter()
        .all(|t| t.verdict == Some(Verdict::WrongAnswer)));
}

#[tokio::test]
async fn no_more_than_slots_tests_run_at_once() {
    let fake = Fake::new(|_| (Duration::from_millis(50), exited(0, "x")));
    let s = submission("bash", &[("", "x"); 7]);
    let r = run(&fake, &langs(), &s, 3).await;
    let (mut now, mut max) = (0i32, 0i32);
    for e in &r.events {
        match e {
            Event::TestStart { .. } => now += 1,
            Event::TestDone { .. } => now -= 1,
            _ => {}
        }
        max = max.max(now);
    }
    assert_eq!(max, 3);
}

#[tokio::test]
async fn expected_output_is_optional_and_checkers_apply() {
    let fake = Fake::new(|_| (Duration::ZERO, exited(0, "3 \n")));
    let mut s = submission("bash", &[("", "3")]);
    s.tests.push(TestCase {
        stdin: String::new(),
        expected_output: None,
    });
    let r = run(&fake, &langs(), &s, 1).await.report.unwrap();
    assert_eq!(
        r.verdict,
        Verdict::Accepted,
        "tokens ignore the trailing space"
    );
    s.checker = Checker::Exact;
    let r = run(&fake, &langs(), &s, 1).await.report.unwrap();
    assert_eq!(r.tests[0].verdict, Some(Verdict::WrongAnswer));
    assert_eq!(
        r.tests[1].verdict,
        Some(Verdict::Accepted),
        "nothing to compare"
    );
}

#[tokio::test]
async fn results_cap_output_and_say_so() {
    let fake = Fake::new(|_| {
        let mut out = output(
            report(Termination::OutputLimit, None, Some(9)),
            &"y".repeat(70 << 10),
            "e",
        );
        if let Ok(o) = &mut out {
            o.stdout_truncated = true;
        }
        (Duration::ZERO, out)
    });
    let r = run(&fake, &langs(), &submission("bash", &[("", "x")]), 1)
        .await
        .report
        .unwrap();
    let t = &r.tests[0];
    assert_eq!(t.verdict, Some(Verdict::OutputLimitExceeded));
    assert_eq!(t.stdout.len(), RESULT_OUTPUT_BYTES);
    assert!(t.stdout_truncated);
    assert_eq!(t.stderr, "e");
    assert!(!t.stderr_truncated);
}

#[tokio::test]
async fn a_custom_checker_is_compiled_once_and_sees_input_expected_and_actual() {
    let fake = Fake::new(|j| {
        if is_compile(j) {
            return (Duration::ZERO, exited(0, ""));
        }
        if is_checker(j) {
            let n = j.argv.len();
            assert_eq!(
                &j.argv[n - 3..],
                ["/check/input", "/check/expected", "/check/actual"]
            );
            let check = &j.mounts.iter().find(|m| m.dest == "/check").unwrap().host;
            assert!(j.mounts.iter().all(|m| !m.writable));
            let read = |f: &str| std::fs::read_to_string(check.join(f)).unwrap();
            let (input, expected, actual) = (read("input"), read("expected"), read("actual"));
            assert_eq!(expected, "expected-for-".to_string() + &input);
            let code = match actual.as_str() {
                "good" => 0,
                "bad" => 1,
                _ => 7,
            };
            return (
                Duration::ZERO,
                output(
                    report(Termination::Exited, Some(code), None),
                    "",
                    "checker says hi",
                ),
            );
        }
        // The program: its box holds no expected output.
        let box_dir = &j.mounts[0].host;
        for e in std::fs::read_dir(box_dir).unwrap() {
            let text = std::fs::read(e.unwrap().path()).unwrap();
            assert!(!String::from_utf8_lossy(&text).contains("expected-for-"));
        }
        let answer = match stdin_of(j).as_str() {
            "a" => "good",
            "b" => "bad",
            _ => "weird",
        };
        (Duration::ZERO, exited(0, answer))
    });
    let mut s = submission(
        "cpp",
        &[
            ("a", "expected-for-a"),
            ("b", "expected-for-b"),
            ("c", "expected-for-c"),
        ],
    );
    s.checker = Checker::Custom {
        language: "cpp".into(),
        source: "CHECKER".into(),
    };
    let r = run(&fake, &langs(), &s, 1).await.report.unwrap();
    let v: Vec<_> = r.tests.iter().map(|t| t.verdict).collect();
    assert_eq!(
        v,
        [
            Some(Verdict::Accepted),
            Some(Verdict::WrongAnswer),
            Some(Verdict::InternalError)
        ]
    );
    assert_eq!(
        r.tests[0].checker_output.as_deref(),
        Some("checker says hi")
    );
    assert!(r.tests[2].detail.as_ref().unwrap().contains("exit code 7"));
    assert_eq!(r.verdict, Verdict::WrongAnswer);
    let compiles = fake.jobs().iter().filter(|j| is_compile(j)).count();
    assert_eq!(compiles, 2, "the submission and the checker, once each");
}

/// A runner like the daemon's: one slot, held by a run's outputs until
/// the judge drops them ([`Output::with_lease`]).
struct Leasing {
    slot: std::sync::Arc<tokio::sync::Semaphore>,
    inner: Fake,
}

impl Runner for Leasing {
    fn run<'a>(
        &'a self,
        job: Job,
    ) -> Pin<Box<dyn Future<Output = Result<RunOutput, RunError>> + Send + 'a>> {
        Box::pin(async move {
            let permit = self.slot.clone().acquire_owned().await.unwrap();
            let out = self.inner.run(job).await?;
            let lease: std::sync::Arc<dyn std::any::Any + Send + Sync> =
                std::sync::Arc::new(permit);
            Ok(RunOutput {
                stdout: out.stdout.with_lease(lease.clone()),
                stderr: out.stderr.with_lease(lease),
                ..out
            })
        })
    }
}

#[tokio::test]
async fn a_custom_checker_never_waits_for_the_slot_its_tests_output_holds() {
    let fake = Fake::new(|j| {
        if is_compile(j) {
            return (Duration::ZERO, exited(0, ""));
        }
        if is_checker(j) {
            return (Duration::ZERO, exited(0, ""));
        }
        let out = output(
            report(Termination::Exited, Some(0), None),
            "answer",
            "a note on stderr",
        );
        (Duration::ZERO, out)
    });
    let runner = Leasing {
        slot: std::sync::Arc::new(tokio::sync::Semaphore::new(1)),
        inner: fake,
    };
    let mut s = submission("cpp", &[("1", "x"), ("2", "x"), ("3", "x")]);
    s.checker = Checker::Custom {
        language: "cpp".into(),
        source: "CHECKER".into(),
    };
    let work = tempfile::tempdir().unwrap();
    // Two tests at once, one slot: a test that kept its output (stdout or
    // stderr) while its checker waited for the slot would wait forever.
    let judged = tokio::time::timeout(
        Duration::from_secs(20),
        judge(&runner, &langs(), &s, work.path(), 2, |_| {}),
    )
    .await
    .expect("the judgement is stuck: a checker waits for a slot an output holds")
    .unwrap();
    assert_eq!(judged.verdict, Verdict::Accepted, "{judged:?}");
    assert_eq!(runner.slot.available_permits(), 1, "every lease returned");
}

#[tokio::test]
async fn a_checker_that_crashes_or_times_out_is_an_internal_error() {
    for (t, code, sig) in [
        (Termination::Signaled, None, Some(11)),
        (Termination::CpuTimeout, None, Some(9)),
    ] {
        let fake = Fake::new(move |j| {
            if is_checker(j) {
                (Duration::ZERO, output(report(t, code, sig), "", ""))
            } else {
                (Duration::ZERO, exited(0, "x"))
            }
        });
        let mut s = submission("bash", &[("", "x")]);
        s.checker = Checker::Custom {
            language: "python".into(),
            source: "import sys".into(),
        };
        let r = run(&fake, &langs(), &s, 1).await.report.unwrap();
        assert_eq!(r.verdict, Verdict::InternalError, "{t:?}");
        assert!(r.tests[0]
            .detail
            .as_ref()
            .unwrap()
            .starts_with("the checker failed"));
    }
}

#[tokio::test]
async fn a_checker_that_does_not_compile_is_an_internal_error() {
    let fake = Fake::new(|j| {
        if is_compile(j)
            && std::fs::read_to_string(j.mounts[0].host.join("main.c")).is_ok_and(|s| s == "BAD")
        {
            (
                Duration::ZERO,
                output(
                    report(Termination::Exited, Some(1), None),
                    "",
                    "checker.c: error",
                ),
            )
        } else {
            (Duration::ZERO, exited(0, ""))
        }
    });
    let mut s = submission("bash", &[("", "x")]);
    s.checker = Checker::Custom {
        language: "c".into(),
        source: "BAD".into(),
    };
    let r = run(&fake, &langs(), &s, 1).await.report.unwrap();
    assert_eq!(r.verdict, Verdict::InternalError);
    let d = r.detail.unwrap();
    assert!(
        d.contains("custom checker did not compile") && d.contains("checker.c: error"),
        "{d}"
    );
    assert!(r.tests[0].skipped);
}

#[tokio::test]
async fn a_dropped_judgement_removes_its_work_dir() {
    let fake = Fake::new(|j| {
        if is_compile(j) {
            (Duration::ZERO, exited(0, ""))
        } else {
            (Duration::from_secs(3600), exited(0, ""))
        }
    });
    let work = tempfile::tempdir().unwrap();
    let s = submission("c", &[("1", "1")]);
    let l = langs();
    let fut = judge(&fake, &l, &s, work.path(), 1, |_| {});
    let timed_out = tokio::time::timeout(Duration::from_millis(200), fut).await;
    assert!(timed_out.is_err());
    assert_eq!(fake.jobs().len(), 2, "the test was running");
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0);
}

#[test]
fn the_judge_future_is_send() {
    fn send<T: Send>(_: &T) {}
    let fake = Fake::new(|_| (Duration::ZERO, exited(0, "")));
    let l = langs();
    let s = submission("c", &[("1", "1")]);
    let dir = PathBuf::from("/nonexistent");
    let fut = judge(&fake, &l, &s, &dir, 1, |_| {});
    send(&fut);
}

#[tokio::test]
async fn invalid_submissions_are_judge_errors_with_no_sandbox_run() {
    let fake = Fake::new(|_| (Duration::ZERO, exited(0, "")));
    let r = run(&fake, &langs(), &submission("cobol", &[("", "")]), 1).await;
    assert!(matches!(
        r.report,
        Err(JudgeError::Invalid(SubmissionError::UnknownLanguage { .. }))
    ));
    assert!(r.events.is_empty());
    assert!(fake.jobs().is_empty());
}

// ---- validation ----

fn invalid(s: &Submission) -> String {
    s.validate(&langs()).unwrap_err().to_string()
}

#[test]
fn validation_names_what_is_wrong() {
    let ok = submission("c", &[("1", "1")]);
    assert_eq!(ok.validate(&langs()), Ok(()));
    let e = invalid(&submission("cobol", &[("", "")]));
    assert!(
        e.contains("unknown language \"cobol\"") && e.contains("python"),
        "{e}"
    );
    assert_eq!(
        invalid(&submission("c", &[])),
        "no tests: give at least one"
    );
    let many = submission("c", &vec![("", ""); 1001]);
    assert!(invalid(&many).contains("1001 tests"));
    let with = |f: &dyn Fn(&mut Submission)| {
        let mut s = ok.clone();
        f(&mut s);
        invalid(&s)
    };
    assert_eq!(
        with(&|s| s.limits.cpu_time_ms = 10),
        "limits.cpu_time_ms = 10 is out of range 50..=60000"
    );
    assert!(with(&|s| s.limits.cpu_time_ms = 60_001).contains("cpu_time_ms"));
    assert!(with(&|s| s.limits.wall_time_ms = Some(0)).contains("wall_time_ms"));
    assert!(with(&|s| s.limits.memory_mb = 8).contains("memory_mb = 8"));
    assert!(with(&|s| s.limits.memory_mb = 9000).contains("memory_mb"));
    assert!(with(&|s| s.limits.output_mb = 0).contains("output_mb"));
    assert!(with(&|s| s.source = "x".repeat(ranges::SOURCE_BYTES + 1)).contains("source is"));
    assert!(
        with(&|s| s.tests[0].stdin = "x".repeat(ranges::TEST_BYTES + 1)).contains("tests[0].stdin")
    );
    assert!(with(&|s| s.checker = Checker::Float {
        tolerance: f64::NAN
    })
    .contains("tolerance"));
    assert!(with(&|s| s.checker = Checker::Float { tolerance: -1.0 }).contains("tolerance"));
    assert!(with(&|s| s.checker = Checker::Custom {
        language: "brainfuck".into(),
        source: String::new()
    })
    .contains("brainfuck"));
}

#[test]
fn unavailable_languages_are_refused_with_the_reason() {
    let mut l = langs();
    assert_eq!(
        submission("go", &[("", "")]).validate(&l),
        Ok(()),
        "unknown counts as available"
    );
    assert!(l.set_availability(
        "go",
        Availability::Unavailable {
            reason: "go: not found".into(),
        },
    ));
    let e = submission("go", &[("", "")])
        .validate(&l)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("\"go\" is unavailable here: go: not found"),
        "{e}"
    );
    let mut s = submission("c", &[("", "")]);
    s.checker = Checker::Custom {
        language: "go".into(),
        source: String::new(),
    };
    assert!(s.validate(&l).is_err(), "nor as a checker");
}

#[test]
fn submissions_parse_with_defaults_and_refuse_unknown_fields() {
    let s: Submission = serde_json::from_str(
        r#"{"language":"python","source":"print(1)","tests":[{"stdin":"","expected_output":"1"}]}"#,
    )
    .unwrap();
    assert_eq!(s.limits, Limits::default());
    assert_eq!(s.limits.wall_time_ms(), 5_000);
    assert_eq!(s.checker, Checker::Tokens);
    assert!(!s.stop_on_first_failure);
    let s: Submission = serde_json::from_str(
        r#"{"language":"c","source":"","tests":[{}],"limits":{"cpu_time_ms":500},
            "checker":{"kind":"float","tolerance":0.001},"stop_on_first_failure":true}"#,
    )
    .unwrap();
    assert_eq!(s.limits.cpu_time_ms, 500);
    assert_eq!(s.limits.memory_mb, 256);
    assert_eq!(s.limits.wall_time_ms(), 2_000);
    assert_eq!(s.tests[0], TestCase::default());
    assert!(s.stop_on_first_failure);
    for bad in [
        r#"{"language":"c","source":"","tests":[],"colour":1}"#,
        r#"{"language":"c","source":"","tests":[],"limits":{"cpu":1}}"#,
        r#"{"language":"c","source":"","tests":[{"input":""}]}"#,
        r#"{"source":"","tests":[]}"#,
    ] {
        assert!(serde_json::from_str::<Submission>(bad).is_err(), "{bad}");
    }
}

#[test]
fn events_and_results_serialize_with_snake_names() {
    let e = serde_json::to_value(Event::TestStart { index: 2 }).unwrap();
    assert_eq!(e, serde_json::json!({"event": "test_start", "index": 2}));
    let e = serde_json::to_value(Event::Done {
        verdict: Verdict::TimeLimitExceeded,
    })
    .unwrap();
    assert_eq!(
        e,
        serde_json::json!({"event": "done", "verdict": "TIME_LIMIT_EXCEEDED"})
    );
    let mut t = TestResult::internal(0, "x".into());
    t.verdict = Some(Verdict::TimeLimitExceeded);
    t.time_limit = Some(TimeLimit::Wall);
    let v = serde_json::to_value(&t).unwrap();
    assert_eq!(v["time_limit"], "wall");
    assert_eq!(v["verdict"], "TIME_LIMIT_EXCEEDED");
    assert_eq!(
        serde_json::to_value(Event::CompileStart).unwrap(),
        serde_json::json!({"event": "compile_start"})
    );
}
