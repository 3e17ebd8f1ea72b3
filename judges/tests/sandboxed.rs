//! The judge on real sandboxes, through `CliRunner` (`runtimed run`). Needs
//! root and the runtimed binary (`cargo build --workspace --bins`; or
//! `RUNTIMED_BIN`), so every test is `#[ignore = "privileged: ..."]` and
//! runs with `--include-ignored`; without them it fails.
//!
//! Every test asserts an observed effect: the verdict with its detail, the
//! program's output, the order of real runs.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use judges::{
    judge, Availability, Checker, CliRunner, Event, Job, Languages, Limits, Report, RunError,
    RunOutput, Runner, Submission, TestCase, TimeLimit, Verdict,
};

struct Env {
    runner: CliRunner,
    languages: Languages,
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

fn runtimed_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("RUNTIMED_BIN") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let ws = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    [
        "target/x86_64-unknown-linux-gnu/debug/runtimed",
        "target/debug/runtimed",
    ]
    .iter()
    .map(|p| ws.join(p))
    .find(|p| p.is_file())
}

/// The runner and the probed table, made once for the whole binary. These
/// tests are `#[ignore = "privileged: ..."]`; one that runs without root or
/// the runtimed binary fails here (it never returns early and passes).
fn judge_env() -> &'static Env {
    static ENV: OnceLock<Result<Env, String>> = OnceLock::new();
    let env = ENV.get_or_init(|| {
        let bin = match (is_root(), runtimed_bin()) {
            (false, _) => return Err("not root".to_string()),
            (true, None) => {
                return Err("no runtimed binary: cargo build --workspace --bins".to_string())
            }
            (true, Some(bin)) => bin,
        };
        let runner = CliRunner::new(bin).expect("runner");
        // Probed on a runtime of its own: each test has its own.
        let languages = std::thread::scope(|s| {
            s.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                let mut l = Languages::load(None).expect("language table");
                rt.block_on(l.probe_versions(&runner));
                l
            })
            .join()
            .expect("probe thread")
        });
        Ok(Env { runner, languages })
    });
    match env {
        Ok(env) => env,
        Err(why) => {
            panic!("sandboxed judge test did not run: {why} (run as root with `--include-ignored`)")
        }
    }
}

fn sub(language: &str, source: &str, tests: &[(&str, &str)]) -> Submission {
    Submission {
        language: language.into(),
        source: source.into(),
        tests: tests
            .iter()
            .map(|(i, o)| TestCase {
                stdin: i.to_string(),
                expected_output: Some(o.to_string()),
            })
            .collect(),
        limits: Limits {
            cpu_time_ms: 2_000,
            wall_time_ms: Some(5_000),
            memory_mb: 128,
            output_mb: 4,
        },
        checker: Checker::Tokens,
        stop_on_first_failure: false,
    }
}

async fn judge_with(runner: &dyn Runner, s: &Submission, slots: usize) -> (Report, Vec<Event>) {
    let e = judge_env();
    let work = tempfile::tempdir().expect("work dir");
    let events = Mutex::new(Vec::new());
    let report = judge(runner, &e.languages, s, work.path(), slots, |ev| {
        events.lock().unwrap().push(ev)
    })
    .await
    .unwrap_or_else(|err| panic!("judge failed: {err}"));
    assert_eq!(
        std::fs::read_dir(work.path()).unwrap().count(),
        0,
        "the work dir must be removed"
    );
    (report, events.into_inner().unwrap())
}

async fn run(s: &Submission) -> Report {
    let e = judge_env();
    judge_with(&e.runner, s, 2).await.0
}

fn verdicts(r: &Report) -> Vec<Option<Verdict>> {
    r.tests.iter().map(|t| t.verdict).collect()
}

/// Prints what a failed expectation needs to be understood.
fn show(r: &Report) -> String {
    serde_json::to_string_pretty(r).unwrap_or_default()
}

const AB_TESTS: &[(&str, &str)] = &[("1 2\n", "3\n"), ("-7 100\n", "93\n")];

fn aplusb(language: &str) -> &'static str {
    match language {
        "c" => "#include <stdio.h>\nint main(void){long a,b;if(scanf(\"%ld %ld\",&a,&b)!=2)return 1;printf(\"%ld\\n\",a+b);return 0;}\n",
        "cpp" => "#include <iostream>\nint main(){long long a,b;std::cin>>a>>b;std::cout<<a+b<<\"\\n\";}\n",
        "python" => "a, b = map(int, input().split())\nprint(a + b)\n",
        "java" => "import java.util.Scanner;\npublic class Main { public static void main(String[] x) { Scanner s = new Scanner(System.in); long a = s.nextLong(), b = s.nextLong(); System.out.println(a + b); } }\n",
        "javascript" => "const [a, b] = require('fs').readFileSync(0, 'utf8').trim().split(/\\s+/).map(Number);\nconsole.log(a + b);\n",
        "rust" => "use std::io::Read;\nfn main() { let mut s = String::new(); std::io::stdin().read_to_string(&mut s).unwrap(); let v: Vec<i64> = s.split_whitespace().map(|x| x.parse().unwrap()).collect(); println!(\"{}\", v[0] + v[1]); }\n",
        "go" => "package main\nimport \"fmt\"\nfunc main() { var a, b int64; fmt.Scan(&a, &b); fmt.Println(a + b) }\n",
        "bash" => "read a b\necho $((a + b))\n",
        other => panic!("no A+B in {other}"),
    }
}

#[tokio::test]
#[ignore = "privileged: real sandboxes need root and a built runtimed"]
async fn aplusb_is_accepted_in_every_shipped_language() {
    let e = judge_env();
    // All eight are installed by CI (docs/judges.md, "Host packages"): a
    // missing one fails the test rather than passing it unjudged.
    for lang in e.languages.iter() {
        let name = lang.name.as_str();
        assert!(
            lang.is_available(),
            "{name} did not run: unavailable ({:?})",
            lang.availability
        );
        let r = run(&sub(name, aplusb(name), AB_TESTS)).await;
        assert_eq!(r.verdict, Verdict::Accepted, "{name}: {}", show(&r));
        assert!(r
            .tests
            .iter()
            .all(|t| t.stdout.trim() == "3" || t.stdout.trim() == "93"));
        assert!(r
            .tests
            .iter()
            .all(|t| t.memory_kb > 0 && t.wall_time_ms > 0 || name == "bash"));
        assert_eq!(r.compile_output.is_some(), lang.compile.is_some(), "{name}");
    }
}

#[tokio::test]
#[ignore = "privileged: real sandboxes need root and a built runtimed"]
async fn versions_are_probed_inside_the_sandbox() {
    let e = judge_env();
    let want = [
        ("c", "gcc"),
        ("cpp", "g++"),
        ("python", "Python 3"),
        ("java", "javac"),
        ("javascript", "v"),
        ("bash", "GNU bash"),
        ("rust", "rustc"),
        ("go", "go version"),
    ];
    for (name, prefix) in want {
        let l = e.languages.get(name).unwrap();
        match &l.availability {
            Availability::Available { version } => {
                assert!(version.starts_with(prefix), "{name}: {version}")
            }
            Availability::Unavailable { reason } => {
                // Only the optional toolchains may be missing.
                assert!(
                    name == "rust" || name == "go",
                    "{name} unavailable: {reason}"
                );
            }
            Availability::Unknown => panic!("{name} was not probed"),
        }
    }
}

#[tokio::test]
#[ignore = "privileged: real sandboxes need root and a built runtimed"]
async fn a_missing_toolchain_is_reported_unavailable_and_refused() {
    let e = judge_env();
    let mut l = Languages::load(None)
        .unwrap()
        .with_overrides(
            "[[language]]\nname = \"cobol\"\nsource_file = \"main.cob\"\nrun = [\"/box/main\"]\nversion = [\"cobc\", \"--version\"]\n[language.compile]\nargv = [\"cobc\", \"-x\", \"main.cob\"]\n",
            "test",
        )
        .unwrap();
    l.probe_versions(&e.runner).await;
    let cobol = l.get("cobol").unwrap();
    assert!(
        matches!(&cobol.availability, Availability::Unavailable { reason } if reason.contains("cobc")),
        "{:?}",
        cobol.availability
    );
    assert!(l.get("c").unwrap().is_available());
    let work = tempfile::tempdir().unwrap();
    let err = judge(
        &e.runner,
        &l,
        &sub("cobol", "x", AB_TESTS),
        work.path(),
        1,
        |_| {},
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("unavailable"), "{err}");
}

#[tokio::test]
#[ignore = "privileged: real sandboxes need root and a built runtimed"]
async fn wrong_answer() {
    judge_env();
    let src = "#include <iostream>\nint main(){long long a,b;std::cin>>a>>b;std::cout<<a+b+(a<0)<<\"\\n\";}\n";
    let r = run(&sub("cpp", src, AB_TESTS)).await;
    assert_eq!(
        verdicts(&r),
        [Some(Verdict::Accepted), Some(Verdict::WrongAnswer)],
        "{}",
        show(&r)
    );
    assert_eq!(r.verdict, Verdict::WrongAnswer);
    assert_eq!(r.tests[1].stdout, "94\n");
    assert_eq!(r.detail.as_deref(), Some("test 1: token 1 differs"));
}

#[tokio::test]
#[ignore = "privileged: real sandboxes need root and a built runtimed"]
async fn a_busy_loop_is_tle_on_cpu_time() {
    judge_env();
    let mut s = sub(
        "c",
        "int main(void){volatile unsigned long i=0;for(;;)i++;}\n",
        &[("", "")],
    );
    s.limits.cpu_time_ms = 500;
    s.limits.wall_time_ms = Some(5_000);
    let r = run(&s).await;
    let t = &r.tests[0];
    assert_eq!(t.verdict, Some(Verdict::TimeLimitExceeded), "{}", show(&r));
    assert_eq!(t.time_limit, Some(TimeLimit::Cpu));
    assert_eq!(r.time_limit, Some(TimeLimit::Cpu));
    assert!(t.cpu_time_ms >= 500, "{}", t.cpu_time_ms);
    // The whole tree's CPU time: the parent only waits, a child spins.
    let src = "#include <sys/wait.h>\n#include <unistd.h>\nint main(void){if(fork()==0){volatile unsigned long i=0;for(;;)i++;}wait(0);return 0;}\n";
    let mut s = sub("c", src, &[("", "")]);
    s.limits.cpu_time_ms = 500;
    s.limits.wall_time_ms = Some(5_000);
    let r = run(&s).await;
    assert_eq!(r.tests[0].time_limit, Some(TimeLimit::Cpu), "{}", show(&r));
}

#[tokio::test]
#[ignore = "privileged: real sandboxes need root and a built runtimed"]
async fn printing_the_answer_then_sleeping_is_tle_on_wall_time() {
    judge_env();
    let src = "#include <stdio.h>\n#include <unistd.h>\nint main(void){long a,b;scanf(\"%ld %ld\",&a,&b);printf(\"%ld\\n\",a+b);fflush(stdout);sleep(30);return 0;}\n";
    let mut s = sub("c", src, &AB_TESTS[..1]);
    s.limits.wall_time_ms = Some(1_000);
    let r = run(&s).await;
    let t = &r.tests[0];
    assert_eq!(t.verdict, Some(Verdict::TimeLimitExceeded), "{}", show(&r));
    assert_eq!(t.time_limit, Some(TimeLimit::Wall));
    assert_eq!(t.stdout, "3\n", "the answer was printed");
    assert!(t.cpu_time_ms < 500);
    // Python too.
    let mut s = sub(
        "python",
        "import time\nprint(3, flush=True)\ntime.sleep(30)\n",
        &AB_TESTS[..1],
    );
    s.limits.wall_time_ms = Some(1_000);
    let r = run(&s).await;
    assert_eq!(r.tests[0].time_limit, Some(TimeLimit::Wall), "{}", show(&r));
}

#[tokio::test]
#[ignore = "privileged: real sandboxes need root and a built runtimed"]
async fn memory_limit_by_oom_kill_and_by_failed_allocation() {
    let e = judge_env();
    let cases: Vec<(&str, &str, &str, &str)> = vec![
        (
            "cpp",
            "touching more than the limit (OOM kill)",
            "#include <vector>\nint main(){std::vector<std::vector<char>> v;for(;;)v.emplace_back(1<<20,'x');}\n",
            "",
        ),
        (
            "cpp",
            "std::bad_alloc",
            "#include <cstdio>\n#include <cstddef>\nchar*volatile keep;\nint main(){int k;if(std::scanf(\"%d\",&k)!=1)return 2;keep=new char[std::size_t(1)<<k];std::puts(\"1\");}\n",
            "50",
        ),
        (
            "python",
            "touching more than the limit (OOM kill)",
            "a = []\nwhile True:\n    a.append(b'x' * (1 << 20))\n",
            "",
        ),
        ("python", "MemoryError", "x = bytearray(1 << 50)\nprint(len(x))\n", ""),
        (
            "java",
            "OutOfMemoryError",
            "public class Main { public static void main(String[] a) { long[] x = new long[1 << 28]; System.out.println(x.length); } }\n",
            "",
        ),
    ];
    for (lang, what, src, input) in cases {
        if !e.languages.get(lang).unwrap().is_available() {
            continue;
        }
        let mut s = sub(lang, src, &[(input, "1")]);
        s.limits.memory_mb = 64;
        let r = run(&s).await;
        let t = &r.tests[0];
        assert_eq!(
            t.verdict,
            Some(Verdict::MemoryLimitExceeded),
            "{lang} {what}: {}",
            show(&r)
        );
        if what.contains("OOM") {
            assert!(t.memory_kb >= 60 << 10, "{lang}: peak {} KiB", t.memory_kb);
        } else {
            assert!(
                t.detail.as_ref().unwrap().contains(what),
                "{lang}: {:?}",
                t.detail
            );
        }
    }
}

#[tokio::test]
#[ignore = "privileged: real sandboxes need root and a built runtimed"]
async fn runtime_errors_carry_the_exit_code_or_signal() {
    judge_env();
    let src = "#include <stdio.h>\nint main(void){int k;scanf(\"%d\",&k);if(k==3)return 3;if(k==11){volatile int*p=0;*p=1;}printf(\"%d\\n\",k);return 0;}\n";
    let r = run(&sub("c", src, &[("3", "3"), ("11", "11"), ("5", "5")])).await;
    assert_eq!(
        verdicts(&r),
        [
            Some(Verdict::RuntimeError),
            Some(Verdict::RuntimeError),
            Some(Verdict::Accepted)
        ],
        "{}",
        show(&r)
    );
    assert_eq!(r.tests[0].exit_code, Some(3));
    assert_eq!(r.tests[0].detail.as_deref(), Some("exit code 3"));
    assert_eq!(r.tests[1].signal, Some(11));
    assert_eq!(
        r.tests[1].detail.as_deref(),
        Some("killed by signal 11 (SIGSEGV)")
    );
    let r = run(&sub("python", "raise ValueError('boom')\n", &[("", "")])).await;
    assert_eq!(r.verdict, Verdict::RuntimeError);
    assert!(
        r.tests[0].stderr.contains("ValueError: boom"),
        "{}",
        show(&r)
    );
}

#[tokio::test]
#[ignore = "privileged: real sandboxes need root and a built runtimed"]
async fn a_compile_error_returns_the_compiler_message() {
    judge_env();
    let r = run(&sub(
        "cpp",
        "int main() { return undefined_name; }\n",
        AB_TESTS,
    ))
    .await;
    assert_eq!(r.verdict, Verdict::CompilationError, "{}", show(&r));
    let out = r.compile_output.unwrap();
    assert!(
        out.contains("undefined_name") && out.contains("error"),
        "{out}"
    );
    assert!(r.tests.iter().all(|t| t.skipped));
    let r = run(&sub(
        "java",
        "public class Main { void f() { int x = \"s\"; } }\n",
        AB_TESTS,
    ))
    .await;
    assert_eq!(r.verdict, Verdict::CompilationError, "{}", show(&r));
    assert!(r.compile_output.unwrap().contains("incompatible types"));
}

#[tokio::test]
#[ignore = "privileged: real sandboxes need root and a built runtimed"]
async fn endless_output_is_ole() {
    judge_env();
    let mut s = sub(
        "c",
        "#include <stdio.h>\nint main(void){for(;;)fputs(\"yes\\n\",stdout);}\n",
        &[("", "y")],
    );
    s.limits.output_mb = 1;
    let r = run(&s).await;
    let t = &r.tests[0];
    assert_eq!(
        t.verdict,
        Some(Verdict::OutputLimitExceeded),
        "{}",
        show(&r)
    );
    assert!(t.stdout_truncated);
    assert!(t.stdout.starts_with("yes\nyes\n"));
}

const RECURSION: &str = "#include <stdio.h>\nstatic int f(int n){volatile char pad[100];pad[0]=(char)n;if(n==0)return 0;int r=f(n-1);return r+(pad[0]&1);}\nint main(void){int n;if(scanf(\"%d\",&n)!=1)return 2;printf(\"%d\\n\",f(n));return 0;}\n";

#[tokio::test]
#[ignore = "privileged: real sandboxes need root and a built runtimed"]
async fn deep_recursion_gets_the_memory_limit_as_stack() {
    let _e = judge_env();
    // 10^6 frames of ~130 bytes: far over an 8 MiB default stack, well
    // within 256 MiB. Then unbounded recursion: the stack meets the memory
    // limit, which is MEMORY_LIMIT_EXCEEDED (docs/judges.md, "Stack").
    let mut s = sub("c", RECURSION, &[("1000000", "500000"), ("-1", "0")]);
    s.limits.memory_mb = 256;
    let r = run(&s).await;
    assert_eq!(r.tests[0].verdict, Some(Verdict::Accepted), "{}", show(&r));
    assert!(
        r.tests[0].memory_kb > 64 << 10,
        "the stack was used: {} KiB",
        r.tests[0].memory_kb
    );
    assert_eq!(
        r.tests[1].verdict,
        Some(Verdict::MemoryLimitExceeded),
        "{}",
        show(&r)
    );
    // Node: V8 checks its depth against --stack-size (90 % of the stack
    // limit): deep recursion works, unbounded recursion is a RangeError.
    let js = "function f(n) { return n === 0 ? 0 : 1 + f(n - 1); }\nconsole.log(f(Number(require('fs').readFileSync(0, 'utf8'))));\n";
    let mut s = sub("javascript", js, &[("1000000", "1000000"), ("-1", "0")]);
    s.limits.memory_mb = 256;
    let r = run(&s).await;
    assert_eq!(
        verdicts(&r),
        [Some(Verdict::Accepted), Some(Verdict::RuntimeError)],
        "{}",
        show(&r)
    );
    assert!(r.tests[1].stderr.contains("RangeError"), "{}", show(&r));
    // Python stops at its recursion limit: RecursionError.
    let r = run(&sub(
        "python",
        "def f(n):\n    return f(n + 1)\nf(0)\n",
        &[("", "")],
    ))
    .await;
    assert_eq!(r.verdict, Verdict::RuntimeError);
    assert!(r.tests[0].stderr.contains("RecursionError"), "{}", show(&r));
}

#[tokio::test]
#[ignore = "privileged: real sandboxes need root and a built runtimed"]
async fn fork_bombs_end_in_the_pids_limit_or_a_time_limit() {
    judge_env();
    // Forks until refused, then fails: RUNTIME_ERROR after the pids limit.
    let src = "#include <stdio.h>\n#include <unistd.h>\nint main(void){for(;;){if(fork()<0){perror(\"fork\");return 1;}}}\n";
    let mut s = sub("c", src, &[("", "x")]);
    s.limits.cpu_time_ms = 1_000;
    s.limits.wall_time_ms = Some(3_000);
    let r = run(&s).await;
    let t = &r.tests[0];
    assert_eq!(t.verdict, Some(Verdict::RuntimeError), "{}", show(&r));
    assert_eq!(t.termination, Some(sandbox::Termination::PidsLimit));
    assert!(
        t.detail.as_ref().unwrap().contains("pids limit of 16"),
        "{:?}",
        t.detail
    );
    // One that never stops trying: a time limit, and the judge goes on.
    let src = "#include <unistd.h>\nint main(void){for(;;)fork();}\n";
    let mut s = sub("c", src, &[("", "x")]);
    s.limits.cpu_time_ms = 1_000;
    s.limits.wall_time_ms = Some(3_000);
    let r = run(&s).await;
    assert_eq!(
        r.tests[0].verdict,
        Some(Verdict::TimeLimitExceeded),
        "{}",
        show(&r)
    );
}

#[tokio::test]
#[ignore = "privileged: real sandboxes need root and a built runtimed"]
async fn host_secrets_and_expected_outputs_are_not_visible() {
    judge_env();
    // The program hunts for the expected output everywhere it can read
    // (the string is built at run time, so the source itself never
    // matches) and prints it when found: the attack worked if ACCEPTED.
    let src = r#"
import os
secret = "SECRET" + "-EXPECTED-" + "7f3a"
try:
    print("shadow:", open("/etc/shadow").read()[:16])
except Exception as e:
    print("shadow:", type(e).__name__)
found = None
skip = ("/proc", "/sys", "/dev", "/usr", "/lib", "/lib64", "/bin", "/sbin")
for root, dirs, files in os.walk("/"):
    if root.startswith(skip):
        dirs[:] = []
        continue
    for f in files:
        p = os.path.join(root, f)
        try:
            if os.path.getsize(p) < (1 << 20) and secret in open(p, errors="ignore").read():
                found = p
        except Exception:
            pass
for fd in os.listdir("/proc/self/fd"):
    try:
        if secret in open("/proc/self/fd/" + fd, errors="ignore").read():
            found = "fd " + fd
    except Exception:
        pass
print(secret if found else "NOTFOUND", found)
print("box:", sorted(os.listdir("/box")))
"#;
    let r = run(&sub("python", src, &[("hello", "SECRET-EXPECTED-7f3a")])).await;
    let t = &r.tests[0];
    assert_eq!(t.verdict, Some(Verdict::WrongAnswer), "{}", show(&r));
    assert!(t.stdout.contains("NOTFOUND None"), "{}", t.stdout);
    assert!(t.stdout.starts_with("shadow: "), "{}", t.stdout);
    assert!(!t.stdout.contains("shadow: root"), "{}", t.stdout);
    assert!(t.stdout.contains("box: ['main.py']"), "{}", t.stdout);
}

#[tokio::test]
#[ignore = "privileged: real sandboxes need root and a built runtimed"]
async fn trailing_whitespace_passes_tokens_but_not_exact() {
    judge_env();
    let src = "read a b\nprintf '%s  \\n\\n' $((a + b))\n";
    let mut s = sub("bash", src, &AB_TESTS[..1]);
    let r = run(&s).await;
    assert_eq!(r.verdict, Verdict::Accepted, "{}", show(&r));
    assert_eq!(r.tests[0].stdout, "3  \n\n");
    s.checker = Checker::Exact;
    let r = run(&s).await;
    assert_eq!(r.verdict, Verdict::WrongAnswer, "{}", show(&r));
    s.tests[0].expected_output = Some("3  \n\n".into());
    assert_eq!(run(&s).await.verdict, Verdict::Accepted);
}

#[tokio::test]
#[ignore = "privileged: real sandboxes need root and a built runtimed"]
async fn the_float_checker_accepts_within_tolerance() {
    judge_env();
    let src = "a, b = map(float, input().split())\nprint('%.6f' % (a / b))\n";
    let mut s = sub("python", src, &[("1 3", "0.3333333333"), ("2 3", "0.67")]);
    s.checker = Checker::Float { tolerance: 1e-5 };
    let r = run(&s).await;
    assert_eq!(
        verdicts(&r),
        [Some(Verdict::Accepted), Some(Verdict::WrongAnswer)],
        "{}",
        show(&r)
    );
}

#[tokio::test]
#[ignore = "privileged: real sandboxes need root and a built runtimed"]
async fn a_custom_checker_accepts_rejects_and_crashes() {
    judge_env();
    // A compiled checker: the output must be any number within 1 of the
    // sum of the input (the expected file is ignored on purpose).
    let checker = r#"#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    if (argc != 4) return 3;
    FILE *in = fopen(argv[1], "r"), *exp = fopen(argv[2], "r"), *out = fopen(argv[3], "r");
    if (!in || !exp || !out) return 4;
    long a, b, c;
    if (fscanf(in, "%ld %ld", &a, &b) != 2) return 5;
    if (fscanf(out, "%ld", &c) != 1) { puts("no number"); return 1; }
    if (labs(c - (a + b)) <= 1) { puts("close enough"); return 0; }
    puts("too far");
    return 1;
}
"#;
    let src = "read a b\nif [ $a -eq 1 ]; then echo $((a + b + 1)); else echo $((a + b + 5)); fi\n";
    let mut s = sub("bash", src, AB_TESTS);
    s.checker = Checker::Custom {
        language: "c".into(),
        source: checker.into(),
    };
    let r = run(&s).await;
    assert_eq!(
        verdicts(&r),
        [Some(Verdict::Accepted), Some(Verdict::WrongAnswer)],
        "{}",
        show(&r)
    );
    assert_eq!(r.tests[0].checker_output.as_deref(), Some("close enough\n"));
    assert_eq!(r.tests[1].checker_output.as_deref(), Some("too far\n"));
    // A checker that crashes: the judge's fault, not the program's.
    s.checker = Checker::Custom {
        language: "python".into(),
        source: "import os\nos.abort()\n".into(),
    };
    let r = run(&s).await;
    assert_eq!(r.verdict, Verdict::InternalError, "{}", show(&r));
    assert!(
        r.tests[0].detail.as_ref().unwrap().contains("SIGABRT"),
        "{}",
        show(&r)
    );
}

/// Wraps the real runner and records when each run really started and
/// ended, by its test's stdin file name.
struct Recording<'a> {
    inner: &'a CliRunner,
    runs: Mutex<Vec<(String, Instant, Instant)>>,
}

impl Runner for Recording<'_> {
    fn run<'a>(
        &'a self,
        job: Job,
    ) -> Pin<Box<dyn Future<Output = Result<RunOutput, RunError>> + Send + 'a>> {
        Box::pin(async move {
            let name = job
                .stdin
                .as_ref()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "compile".into());
            let start = Instant::now();
            let out = self.inner.run(job).await;
            self.runs
                .lock()
                .unwrap()
                .push((name, start, Instant::now()));
            out
        })
    }
}

#[tokio::test]
#[ignore = "privileged: real sandboxes need root and a built runtimed"]
async fn tests_run_in_parallel_up_to_the_slots() {
    let e = judge_env();
    let src = "#include <stdio.h>\n#include <unistd.h>\nint main(void){sleep(1);puts(\"ok\");return 0;}\n";
    let s = sub("c", src, &[("", "ok"); 4]);
    let rec = Recording {
        inner: &e.runner,
        runs: Mutex::new(Vec::new()),
    };
    let (r, events) = judge_with(&rec, &s, 2).await;
    assert_eq!(r.verdict, Verdict::Accepted, "{}", show(&r));
    let runs: Vec<_> = rec
        .runs
        .into_inner()
        .unwrap()
        .into_iter()
        .filter(|(n, _, _)| n != "compile")
        .collect();
    assert_eq!(runs.len(), 4);
    // At most two runs overlap any instant, and some do overlap: at every
    // start, count the runs in progress.
    let mut max = 0;
    for (_, s, _) in &runs {
        let live = runs.iter().filter(|(_, s2, e2)| s2 <= s && s < e2).count();
        max = max.max(live);
    }
    assert_eq!(max, 2, "{runs:?}");
    // The events say the same: two tests started before any ended.
    let first_done = events
        .iter()
        .position(|e| matches!(e, Event::TestDone { .. }))
        .unwrap();
    let started_before = events[..first_done]
        .iter()
        .filter(|e| matches!(e, Event::TestStart { .. }))
        .count();
    assert_eq!(started_before, 2);
}

#[tokio::test]
#[ignore = "privileged: real sandboxes need root and a built runtimed"]
async fn stop_on_first_failure_skips_the_rest() {
    let e = judge_env();
    let src = "read a b\necho $((a + b))\n";
    let mut s = sub(
        "bash",
        src,
        &[("1 1", "2"), ("1 2", "4"), ("2 2", "4"), ("3 3", "6")],
    );
    s.stop_on_first_failure = true;
    let rec = Recording {
        inner: &e.runner,
        runs: Mutex::new(Vec::new()),
    };
    let (r, _) = judge_with(&rec, &s, 1).await;
    assert_eq!(r.verdict, Verdict::WrongAnswer);
    assert_eq!(
        verdicts(&r),
        [
            Some(Verdict::Accepted),
            Some(Verdict::WrongAnswer),
            None,
            None
        ]
    );
    assert!(r.tests[2].skipped && r.tests[3].skipped);
    let ran: Vec<String> = rec
        .runs
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(ran, ["0.in", "1.in"]);
}

#[tokio::test]
#[ignore = "privileged: real sandboxes need root and a built runtimed"]
async fn no_state_is_shared_between_tests() {
    judge_env();
    // Each test tries to leave a file for the next, in /tmp and in /box.
    let src = r#"
import os
seen = [p for p in ("/tmp/mark", "/box/mark") if os.path.exists(p)]
for p in ("/tmp/mark", "/box/mark"):
    try:
        open(p, "w").write("x")
    except OSError as e:
        print(p, type(e).__name__)
print("seen", seen)
"#;
    let r = run(&sub("python", src, &[("", ""), ("", ""), ("", "")])).await;
    for t in &r.tests {
        assert!(t.stdout.contains("seen []"), "{}", t.stdout);
        assert!(
            t.stdout.contains("/box/mark OSError")
                || t.stdout.contains("/box/mark PermissionError"),
            "{}",
            t.stdout
        );
    }
}
