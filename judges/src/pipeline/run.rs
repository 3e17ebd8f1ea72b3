//! The run phase: each test in a fresh sandbox (the box read-only), its
//! output compared in pieces or by a custom checker, and its result.

use super::*;

/// The result of one test.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestResult {
    pub index: usize,
    /// `None` when skipped.
    pub verdict: Option<Verdict>,
    pub skipped: bool,
    /// Which limit, for `TIME_LIMIT_EXCEEDED`.
    pub time_limit: Option<TimeLimit>,
    /// Why, in a few words (signal, exit code, limit, checker's reason).
    pub detail: Option<String>,
    /// How the sandbox saw the run end.
    pub termination: Option<Termination>,
    /// CPU time of the whole process tree (cgroup).
    pub cpu_time_ms: u64,
    pub wall_time_ms: u64,
    /// Peak memory of the sandbox (cgroup).
    pub memory_kb: u64,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// The first [`kept_output_bytes`] (lossy UTF-8, cut at a character).
    pub stdout: String,
    /// Not all of the output is here (cut here, or at the output limit).
    pub stdout_truncated: bool,
    pub stderr: String,
    pub stderr_truncated: bool,
    /// What a custom checker printed.
    pub checker_output: Option<String>,
}

impl TestResult {
    pub(super) fn skipped(index: usize) -> TestResult {
        TestResult {
            index,
            verdict: None,
            skipped: true,
            time_limit: None,
            detail: None,
            termination: None,
            cpu_time_ms: 0,
            wall_time_ms: 0,
            memory_kb: 0,
            exit_code: None,
            signal: None,
            stdout: String::new(),
            stdout_truncated: false,
            stderr: String::new(),
            stderr_truncated: false,
            checker_output: None,
        }
    }

    pub(super) fn internal(index: usize, detail: String) -> TestResult {
        TestResult {
            verdict: Some(Verdict::InternalError),
            skipped: false,
            detail: Some(detail),
            ..TestResult::skipped(index)
        }
    }

    pub(super) fn failed(&self) -> bool {
        self.verdict.is_some_and(|v| v != Verdict::Accepted)
    }
}

/// At most `max` bytes of text from the start of `bytes` (lossy UTF-8:
/// an invalid byte becomes three, so the text is cut again, at a
/// character), and whether anything was left out.
pub(super) fn lossy_prefix(bytes: &[u8], max: usize) -> (String, bool) {
    let mut text = String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).into_owned();
    let mut cut = bytes.len() > max;
    if text.len() > max {
        let mut at = max;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.truncate(at);
        cut = true;
    }
    (text, cut)
}

/// The first `max` bytes of a run's stdout followed by its stderr, as
/// text, and whether anything was left out.
pub(super) fn joined_prefix(out: &RunOutput, max: usize) -> std::io::Result<(String, bool)> {
    let mut text = out.stdout.prefix(max)?;
    let room = max - text.len();
    text.extend(out.stderr.prefix(room)?);
    let (s, cut) = lossy_prefix(&text, max);
    Ok((s, cut || out.stdout.len() + out.stderr.len() > max as u64))
}

/// Feeds `out` to a built-in checker in pieces of [`COMPARE_CHUNK`],
/// until it ends or a wrong answer is certain.
pub(super) async fn compare_output(
    mut s: compare::Stream<'_>,
    out: &Output,
) -> std::io::Result<Check> {
    let mut buf = vec![0; COMPARE_CHUNK];
    let mut offset = 0;
    while !s.decided() {
        let (b, n) = out.read_chunk(offset, buf).await;
        buf = b;
        let n = n?;
        if n == 0 {
            break;
        }
        s.feed(&buf[..n]);
        offset += n as u64;
    }
    Ok(s.finish())
}

pub(super) fn round_ms(us: u64) -> u64 {
    us.saturating_add(500) / 1000
}

/// Everything a test needs, shared by the tests running at once.
pub(super) struct Context<'a> {
    pub(super) runner: &'a dyn Runner,
    pub(super) submission: &'a Submission,
    pub(super) program: Program<'a>,
    pub(super) checker: Option<Program<'a>>,
    pub(super) tests_dir: PathBuf,
    pub(super) limits: RunLimits,
    pub(super) vars: Vars,
    /// Bytes of each stream a result keeps ([`kept_output_bytes`]).
    pub(super) keep: usize,
}

impl Context<'_> {
    pub(super) fn run_job(&self, stdin: PathBuf) -> Job {
        let lang = self.program.lang;
        Job {
            argv: lang
                .run
                .iter()
                .map(|a| crate::language::expand(a, &self.vars))
                .collect(),
            env: lang.job_env(&self.vars, None),
            cwd: "/box".into(),
            image: lang.image.clone(),
            mounts: vec![Mount {
                host: self.program.box_dir.clone(),
                dest: "/box".into(),
                writable: false,
            }],
            stdin: Some(stdin),
            limits: self.limits.clone(),
        }
    }

    pub(super) async fn run_test(&self, index: usize) -> TestResult {
        let case = &self.submission.tests[index];
        let stdin = self.tests_dir.join(format!("{index}.in"));
        // 0600: the program reads it through the fd it is given; it cannot
        // reopen it by name.
        let files = vec![(stdin.clone(), case.stdin.clone().into_bytes(), 0o600)];
        if let Err(e) = write_files(None, files).await {
            return TestResult::internal(index, format!("write {}: {e}", stdin.display()));
        }
        let out = self.runner.run(self.run_job(stdin.clone())).await;
        let _ = std::fs::remove_file(&stdin);
        let out = match out {
            Ok(o) => o,
            Err(e) => return TestResult::internal(index, format!("the run failed: {e}")),
        };
        // Bounded reads: the kept prefixes and the end of stderr.
        let read = result_of(index, &out, self.keep)
            .and_then(|r| Ok((r, out.stderr.tail(verdict::MARKER_WINDOW)?)));
        let (mut result, stderr_tail) = match read {
            Ok(r) => r,
            Err(e) => {
                return TestResult::internal(index, format!("read the program's output: {e}"))
            }
        };
        let class = verdict::classify_run(
            &out.report,
            &self.limits,
            &stderr_tail,
            &self.program.lang.oom_markers,
        );
        // Only stdout is compared; the rest goes now (with the daemon's
        // slot once stdout goes too: see `check`).
        let RunOutput { stdout, stderr, .. } = out;
        drop(stderr);
        match class {
            RunClass::Failed(j) => {
                result.verdict = Some(j.verdict);
                result.time_limit = j.time_limit;
                result.detail = Some(j.detail);
            }
            RunClass::Completed => {
                let (v, detail, checker_output) = self.check(index, stdout).await;
                result.verdict = Some(v);
                result.detail = detail;
                result.checker_output = checker_output;
            }
        }
        result
    }

    /// Takes the output (and with it, in the daemon, the run's slot: see
    /// [`Output::with_lease`]), so that it is gone before a custom
    /// checker waits for a slot of its own.
    pub(super) async fn check(
        &self,
        index: usize,
        actual: Output,
    ) -> (Verdict, Option<String>, Option<String>) {
        let case = &self.submission.tests[index];
        let checker = &self.submission.checker;
        if let Some(stream) = case
            .expected_output
            .as_ref()
            .and_then(|e| compare::Stream::new(checker, e.as_bytes()))
        {
            return match compare_output(stream, &actual).await {
                Ok(Check::Accepted) => (Verdict::Accepted, None, None),
                Ok(Check::WrongAnswer(why)) => (Verdict::WrongAnswer, Some(why), None),
                Err(e) => (
                    Verdict::InternalError,
                    Some(format!("read the program's output: {e}")),
                    None,
                ),
            };
        }
        match &self.checker {
            Some(program) => self.run_checker(program, index, actual).await,
            // No expected output: the run only had to succeed.
            None => (Verdict::Accepted, None, None),
        }
    }

    pub(super) async fn run_checker(
        &self,
        checker: &Program<'_>,
        index: usize,
        actual: Output,
    ) -> (Verdict, Option<String>, Option<String>) {
        let internal = |d: String| (Verdict::InternalError, Some(d), None);
        let case = &self.submission.tests[index];
        let dir = self.tests_dir.join(format!("check-{index}"));
        let expected = case.expected_output.as_deref().unwrap_or("");
        let files = [
            ("input", case.stdin.as_bytes()),
            ("expected", expected.as_bytes()),
        ]
        .map(|(name, data)| (dir.join(name), data.to_vec(), 0o644))
        .to_vec();
        let mut written = write_files(Some(dir.clone()), files).await;
        if written.is_ok() {
            // The program's output, file to file (it may be as large as
            // the output limit); then the run's slot is free.
            let path = dir.join("actual");
            written = tokio::task::spawn_blocking(move || actual.copy_to(&path, 0o644))
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r);
        }
        if let Err(e) = written {
            let _ = std::fs::remove_dir_all(&dir);
            return internal(format!(
                "write the checker's files in {}: {e}",
                dir.display()
            ));
        }
        let lang = checker.lang;
        let memory = (checker_limits::MEMORY_MB + lang.extra_memory_mb) << 20;
        let vars = Vars {
            memory_mb: checker_limits::MEMORY_MB,
            stack_bytes: checker_limits::MEMORY_MB << 20,
        };
        let mut argv: Vec<String> = lang
            .run
            .iter()
            .map(|a| crate::language::expand(a, &vars))
            .collect();
        argv.extend(["/check/input", "/check/expected", "/check/actual"].map(String::from));
        let limits = RunLimits {
            cpu_time: Duration::from_millis(checker_limits::CPU_TIME_MS),
            wall_time: Duration::from_millis(checker_limits::WALL_TIME_MS),
            memory_bytes: memory,
            pids: lang.pids,
            output_bytes: checker_limits::OUTPUT_BYTES,
            file_size_bytes: 1 << 20,
            stack_bytes: Some(vars.stack_bytes),
        };
        let job = Job {
            argv,
            env: lang.job_env(&vars, None),
            cwd: "/box".into(),
            image: lang.image.clone(),
            mounts: vec![
                Mount {
                    host: checker.box_dir.clone(),
                    dest: "/box".into(),
                    writable: false,
                },
                Mount {
                    host: dir.clone(),
                    dest: "/check".into(),
                    writable: false,
                },
            ],
            stdin: None,
            limits: limits.clone(),
        };
        let out = self.runner.run(job).await;
        let _ = std::fs::remove_dir_all(&dir);
        let out = match out {
            Ok(o) => o,
            Err(e) => return internal(format!("the checker could not run: {e}")),
        };
        let keep = CHECKER_OUTPUT_BYTES.min(self.keep);
        let message = joined_prefix(&out, keep)
            .ok()
            .map(|(m, _)| m)
            .filter(|m| !m.trim().is_empty());
        // The checker's own limits and crashes are the checker's fault.
        if let RunClass::Failed(j) = verdict::classify_run(&out.report, &limits, &[], &[]) {
            if !(j.verdict == Verdict::RuntimeError
                && out.report.termination == Termination::Exited
                && out.report.exit_code == Some(1))
            {
                return (
                    Verdict::InternalError,
                    Some(format!("the checker failed: {}", j.detail)),
                    message,
                );
            }
        }
        match compare::custom_status(out.report.exit_code) {
            CustomStatus::Accepted => (Verdict::Accepted, None, message),
            CustomStatus::WrongAnswer => (
                Verdict::WrongAnswer,
                Some("the checker rejected the output".into()),
                message,
            ),
            CustomStatus::Broken => (
                Verdict::InternalError,
                Some(format!(
                    "the checker failed: {}",
                    verdict::exit_description(&out.report)
                )),
                message,
            ),
        }
    }
}

/// A test's result from its run, before the verdict: `keep` bytes of
/// each stream.
pub(super) fn result_of(index: usize, out: &RunOutput, keep: usize) -> std::io::Result<TestResult> {
    let r = &out.report;
    let (stdout, so_cut) = lossy_prefix(&out.stdout.prefix(keep + 1)?, keep);
    let (stderr, se_cut) = lossy_prefix(&out.stderr.prefix(keep + 1)?, keep);
    Ok(TestResult {
        index,
        verdict: None,
        skipped: false,
        time_limit: None,
        detail: None,
        termination: Some(r.termination),
        cpu_time_ms: round_ms(r.cpu_total_us),
        wall_time_ms: round_ms(r.wall_time_us),
        memory_kb: r.memory_peak_bytes / 1024,
        exit_code: r.exit_code,
        signal: r.signal,
        stdout,
        stdout_truncated: so_cut || out.stdout_truncated,
        stderr,
        stderr_truncated: se_cut || out.stderr_truncated,
        checker_output: None,
    })
}
