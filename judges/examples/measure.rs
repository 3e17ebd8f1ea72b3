//! Figures of docs/judges.md ("Measured"): the cost of one test beyond the
//! program itself, test-runs per second, and how much the CPU time of one
//! accepted solution varies over 20 runs.
//!
//! `cargo run --release -p judges --example measure` (as root; the
//! runtimed binary from `RUNTIMED_BIN`, default the debug build).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use judges::{
    judge, Checker, CliRunner, Job, Languages, Limits, RunError, RunOutput, Runner, Submission,
    TestCase, Verdict,
};

/// Records, per test run, the runner's own wall time and the report.
struct Timed<'a> {
    inner: &'a CliRunner,
    runs: Mutex<Vec<(Duration, sandbox::ExitReport)>>,
}

impl Runner for Timed<'_> {
    fn run<'a>(
        &'a self,
        job: Job,
    ) -> Pin<Box<dyn Future<Output = Result<RunOutput, RunError>> + Send + 'a>> {
        Box::pin(async move {
            let test = job.stdin.is_some();
            let t = Instant::now();
            let out = self.inner.run(job).await;
            if let (true, Ok(o)) = (test, &out) {
                self.runs
                    .lock()
                    .unwrap()
                    .push((t.elapsed(), o.report.clone()));
            }
            out
        })
    }
}

fn runtimed() -> PathBuf {
    std::env::var_os("RUNTIMED_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../target/x86_64-unknown-linux-gnu/debug/runtimed")
        })
}

fn submission(language: &str, source: &str, tests: usize, input: &str, out: &str) -> Submission {
    Submission {
        language: language.into(),
        source: source.into(),
        tests: vec![
            TestCase {
                stdin: input.into(),
                expected_output: Some(out.into()),
            };
            tests
        ],
        limits: Limits {
            cpu_time_ms: 5_000,
            wall_time_ms: Some(10_000),
            memory_mb: 256,
            output_mb: 1,
        },
        checker: Checker::Tokens,
        stop_on_first_failure: false,
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn stats(v: &[f64]) -> (f64, f64, f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let min = v.iter().copied().fold(f64::MAX, f64::min);
    let max = v.iter().copied().fold(f64::MIN, f64::max);
    (mean, sd, min, max)
}

const AB_CPP: &str =
    "#include <iostream>\nint main(){long long a,b;std::cin>>a>>b;std::cout<<a+b<<\"\\n\";}\n";
const AB_PY: &str = "a, b = map(int, input().split())\nprint(a + b)\n";
// About 0.3 s of CPU, the same work every run.
const WORK_CPP: &str = "#include <cstdio>\nint main(){unsigned long long x=1;for(unsigned long long i=0;i<300000000ULL;i++)x=x*6364136223846793005ULL+1442695040888963407ULL;std::printf(\"%llu\\n\",x>>63);}\n";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let runner = CliRunner::new(runtimed())?;
    let mut languages = Languages::load(None)?;
    languages.probe_versions(&runner).await;
    let work = tempfile::tempdir()?;

    println!("| what | figure |\n| --- | --- |");
    for (lang, src) in [("cpp", AB_CPP), ("python", AB_PY)] {
        for slots in [1, 2] {
            let timed = Timed {
                inner: &runner,
                runs: Mutex::new(Vec::new()),
            };
            let s = submission(lang, src, 10, "1 2\n", "3\n");
            let rounds = 5;
            let mut test_phase = Duration::ZERO;
            for _ in 0..rounds {
                let first_test = Mutex::new(None::<Instant>);
                let t = Instant::now();
                let r = judge(&timed, &languages, &s, work.path(), slots, |e| {
                    if matches!(e, judges::Event::TestStart { index: 0 }) {
                        *first_test.lock().unwrap() = Some(Instant::now());
                    }
                })
                .await?;
                anyhow::ensure!(r.verdict == Verdict::Accepted, "{lang}: {:?}", r.detail);
                let start = first_test.into_inner().unwrap().unwrap_or(t);
                test_phase += start.elapsed();
            }
            let runs = timed.runs.into_inner().unwrap();
            let mut overhead: Vec<f64> = runs
                .iter()
                .map(|(w, r)| w.as_secs_f64() * 1e3 - r.wall_time_us as f64 / 1e3)
                .collect();
            let mut per_run: Vec<f64> = runs.iter().map(|(w, _)| w.as_secs_f64() * 1e3).collect();
            let mut program: Vec<f64> = runs
                .iter()
                .map(|(_, r)| r.wall_time_us as f64 / 1e3)
                .collect();
            let rate = (rounds * 10) as f64 / test_phase.as_secs_f64();
            println!(
                "| {lang} A+B, {slots} slot(s): one test run as the runner sees it, median | {:.1} ms (the program's own wall time {:.1} ms; overhead {:.1} ms) |",
                median(&mut per_run),
                median(&mut program),
                median(&mut overhead),
            );
            println!("| {lang} A+B, {slots} slot(s): test-runs/s (tests phase) | {rate:.0} |");
        }
    }
    for slots in [1, 2] {
        let timed = Timed {
            inner: &runner,
            runs: Mutex::new(Vec::new()),
        };
        let s = submission("cpp", WORK_CPP, 20, "", "0\n");
        let r = judge(&timed, &languages, &s, work.path(), slots, |_| {}).await?;
        let runs = timed.runs.into_inner().unwrap();
        anyhow::ensure!(
            r.verdict == Verdict::Accepted || r.verdict == Verdict::WrongAnswer,
            "{:?}",
            r.detail
        );
        let cpu: Vec<f64> = runs
            .iter()
            .map(|(_, r)| r.cpu_total_us as f64 / 1e3)
            .collect();
        let (mean, sd, min, max) = stats(&cpu);
        println!(
            "| CPU time of one solution over 20 runs, {slots} slot(s) | mean {mean:.1} ms, sd {sd:.2} ms ({:.2} %), min {min:.1}, max {max:.1} (spread {:.2} % of the mean) |",
            sd / mean * 100.0,
            (max - min) / mean * 100.0
        );
        let ab = submission("cpp", AB_CPP, 20, "1 2\n", "3\n");
        let timed = Timed {
            inner: &runner,
            runs: Mutex::new(Vec::new()),
        };
        judge(&timed, &languages, &ab, work.path(), slots, |_| {}).await?;
        let cpu: Vec<f64> = timed
            .runs
            .into_inner()
            .unwrap()
            .iter()
            .map(|(_, r)| r.cpu_total_us as f64 / 1e3)
            .collect();
        let (mean, sd, min, max) = stats(&cpu);
        println!(
            "| CPU time of C++ A+B over 20 runs, {slots} slot(s) | mean {mean:.2} ms, sd {sd:.2} ms, min {min:.2}, max {max:.2} |"
        );
    }
    Ok(())
}
