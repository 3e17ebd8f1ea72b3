//! Helpers shared by the end-to-end tests: finding the `runtimed` and `probe`
//! binaries, the root gate, running `runtimed run` with an exit report, and
//! looking at the host from outside (processes, uids, cgroups).
//!
//! The tests drive the real binary, so it must be built first:
//! `cargo build --workspace --bins && cargo test -p runtimed-tests --
//! --include-ignored` (or point `RUNTIMED_BIN` at one). They need root, so
//! they are `#[ignore = "privileged: ..."]`: a plain `cargo test` lists them
//! as ignored. One that runs without root or the binary fails (see
//! [`missing`]); none returns early and passes.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::Value;

pub use serde_json;

pub mod daemon;
pub mod engines;
pub mod images;

/// The `nobody` user and group: an unprivileged owner for host directories
/// given to sandboxes read-write.
pub const NOBODY: u32 = 65534;

/// One mebibyte.
pub const MIB: u64 = 1 << 20;

/// Where the probe is mounted inside the sandbox.
pub const PROBE_IN_SANDBOX: &str = "/probe";

/// Exit status of runtimed when runtimed itself failed (contract).
pub const EXIT_RUNTIMED_FAILED: i32 = 125;
/// Exit status when the program exists but cannot be executed.
pub const EXIT_NOT_EXECUTABLE: i32 = 126;
/// Exit status when the program does not exist.
pub const EXIT_NOT_FOUND: i32 = 127;
/// Exit status of a program killed by a limit (128 + SIGKILL).
pub const EXIT_KILLED: i32 = 137;

/// Longest any single `runtimed run` may take before the harness kills it
/// and fails the test (so a broken limit cannot hang the suite).
pub const DEFAULT_WATCHDOG: Duration = Duration::from_secs(60);

// ---- the gate ---------------------------------------------------------------

/// How to run the tests a plain `cargo test` ignores (part of every
/// [`missing`] message).
pub const RUN_IGNORED: &str =
    "privileged tests run as root after `cargo build --workspace --bins`, \
     with `cargo test -- --include-ignored`; see README";

/// Fails the current test: a prerequisite is missing. A test that needs
/// one is `#[ignore]`d, so it runs only when asked for (`--include-ignored`
/// or by name); asked for and unable to run, it fails here instead of
/// returning early and being reported "ok" (issue 13, point 7).
pub fn missing(reason: &str) -> ! {
    let test = std::thread::current().name().unwrap_or("?").to_owned();
    panic!("{test} did not run: {reason} ({RUN_IGNORED})");
}

/// Fails the current test unless it runs as root.
pub fn require_root() {
    if !nix::unistd::geteuid().is_root() {
        missing("not root");
    }
}

/// Fails the current test unless it runs in the throwaway cgroup v2 VM
/// (`CGROUP2_VM=1`, set by `.ci/cgroup-v2.sh`): `why` names what it needs
/// that a host must not or cannot give. Such tests are named `vm_only_*`
/// and the README's test command leaves them out (`--skip vm_only_`), so
/// they show as "filtered out" on a host, never as "ok".
pub fn require_cgroup2_vm(why: &str) {
    if std::env::var_os("CGROUP2_VM").is_none_or(|v| v != "1") {
        missing(&format!(
            "{why}: runs only in the cgroup v2 VM (.ci/cgroup-v2.sh)"
        ));
    }
}

/// Directory holding the workspace's built binaries: the test executable
/// lives in `<target>/<profile>/deps/`, binaries in `<target>/<profile>/`.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.file_name() == Some(OsStr::new("deps")) {
        dir.parent().map(Path::to_path_buf).unwrap_or(dir)
    } else {
        dir
    }
}

/// `RUNTIMED_BIN`, else `runtimed` next to the other built binaries.
pub fn runtimed_bin() -> PathBuf {
    std::env::var_os("RUNTIMED_BIN").map_or_else(|| bin_dir().join("runtimed"), PathBuf::from)
}

/// Everything a sandbox test needs; obtained through [`harness!`].
#[derive(Debug, Clone)]
pub struct Harness {
    pub runtimed: PathBuf,
    pub probe: PathBuf,
}

/// `let h = harness!();` at the top of a sandbox test (which is
/// `#[ignore = "privileged: ..."]`): fails the test when not root or when
/// runtimed is not built.
#[macro_export]
macro_rules! harness {
    () => {
        $crate::Harness::get(env!("CARGO_BIN_EXE_probe"))
    };
}

impl Harness {
    /// `probe`: path of the probe binary (`env!("CARGO_BIN_EXE_probe")`).
    /// Fails the test when not root or runtimed is not built.
    pub fn get(probe: &str) -> Harness {
        require_root();
        let runtimed = runtimed_bin();
        if !runtimed.is_file() {
            missing(&format!(
                "no runtimed binary at {} (run `cargo build --workspace --bins` or set RUNTIMED_BIN)",
                runtimed.display()
            ));
        }
        let probe =
            std::env::var_os("PROBE_BIN").map_or_else(|| PathBuf::from(probe), PathBuf::from);
        assert!(
            probe.is_file(),
            "probe binary missing at {}",
            probe.display()
        );
        Harness { runtimed, probe }
    }

    /// A `runtimed run` invocation to configure.
    pub fn sandbox(&self) -> Sandbox<'_> {
        Sandbox {
            h: self,
            opts: Vec::new(),
            cmd: Vec::new(),
            envs: Vec::new(),
            stdin: None,
            watchdog: DEFAULT_WATCHDOG,
            report: true,
        }
    }

    /// Shorthand: run the probe with default options and parse its line.
    pub fn probe(&self, args: &[&str]) -> (RunOutput, Value) {
        let out = self.sandbox().probe(args).run();
        let v = out.probe_json();
        (out, v)
    }

    /// Runs the probe directly on the host (no sandbox) and parses its line:
    /// proves a subcommand can detect the thing the sandbox must prevent.
    pub fn probe_on_host(&self, args: &[&str]) -> Value {
        probe_on_host(&self.probe, args)
    }
}

/// Runs `probe` directly on the host (no sandbox) and parses its line.
pub fn probe_on_host(probe: &Path, args: &[&str]) -> Value {
    let out = Command::new(probe)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("running the probe on the host");
    parse_probe_line(&out.stdout).unwrap_or_else(|e| panic!("probe {args:?} on the host: {e}"))
}

// ---- running runtimed --------------------------------------------------------

/// Builder for one `runtimed run [OPTIONS] -- CMD...`.
pub struct Sandbox<'h> {
    h: &'h Harness,
    opts: Vec<OsString>,
    cmd: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    stdin: Option<Vec<u8>>,
    watchdog: Duration,
    report: bool,
}

impl<'h> Sandbox<'h> {
    /// Adds one option word (`"--memory"`, `"64M"`).
    pub fn opt(mut self, a: impl AsRef<OsStr>) -> Self {
        self.opts.push(a.as_ref().to_owned());
        self
    }

    /// Adds option words.
    pub fn opts<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Self {
        self.opts
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// `--bind <host>:<dst>:<mode>`.
    pub fn bind(self, host: &Path, dst: &str, mode: &str) -> Self {
        self.opt("--bind")
            .opt(format!("{}:{dst}:{mode}", host.display()))
    }

    /// The command after `--`.
    pub fn cmd<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Self {
        self.cmd = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        self
    }

    /// Binds the probe read-only at `/probe` and runs it with `args`.
    pub fn probe(self, args: &[&str]) -> Self {
        let probe = self.h.probe.clone();
        let mut cmd = vec![PROBE_IN_SANDBOX];
        cmd.extend_from_slice(args);
        self.bind(&probe, PROBE_IN_SANDBOX, "ro").cmd(cmd)
    }

    /// Sets a variable in runtimed's own environment (the caller's).
    pub fn caller_env(mut self, k: &str, v: &str) -> Self {
        self.envs.push((k.into(), v.into()));
        self
    }

    /// Bytes fed to runtimed's stdin (default: /dev/null).
    pub fn stdin(mut self, data: &[u8]) -> Self {
        self.stdin = Some(data.to_vec());
        self
    }

    /// Kill runtimed and fail after this long (default 60 s).
    pub fn watchdog(mut self, d: Duration) -> Self {
        self.watchdog = d;
        self
    }

    /// Do not pass `--report` (to test the CLI exactly as given).
    pub fn no_report(mut self) -> Self {
        self.report = false;
        self
    }

    /// Starts runtimed without waiting.
    pub fn spawn(self) -> Running {
        let report_path = self
            .report
            .then(|| std::env::temp_dir().join(format!("{}.json", unique("report"))));
        let mut argv: Vec<OsString> = vec!["run".into()];
        if let Some(p) = &report_path {
            argv.push("--report".into());
            argv.push(p.into());
        }
        argv.extend(self.opts);
        if !self.cmd.is_empty() {
            argv.push("--".into());
            argv.extend(self.cmd);
        }
        let mut command = Command::new(&self.h.runtimed);
        command
            .args(&argv)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", self.h.runtimed.display()));
        if let (Some(data), Some(mut pipe)) = (self.stdin, child.stdin.take()) {
            std::thread::spawn(move || {
                use std::io::Write;
                let _ = pipe.write_all(&data);
            });
        }
        let stdout = Capture::start(child.stdout.take().expect("stdout pipe"));
        let stderr = Capture::start(child.stderr.take().expect("stderr pipe"));
        let argv = std::iter::once(self.h.runtimed.clone().into_os_string())
            .chain(argv)
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        Running {
            child,
            stdout,
            stderr,
            report_path,
            started,
            watchdog: self.watchdog,
            argv,
        }
    }

    /// Runs to completion.
    pub fn run(self) -> RunOutput {
        self.spawn().wait()
    }
}

/// Keeps at most this much of each stream (the rest is counted, not kept).
const CAPTURE_CAP: usize = 16 << 20;

/// A thread draining one pipe.
struct Capture {
    data: Arc<Mutex<(Vec<u8>, u64)>>,
    thread: JoinHandle<()>,
}

impl Capture {
    fn start(mut pipe: impl Read + Send + 'static) -> Capture {
        let data = Arc::new(Mutex::new((Vec::new(), 0u64)));
        let shared = Arc::clone(&data);
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut d = shared.lock().expect("capture lock");
                let keep = n.min(CAPTURE_CAP.saturating_sub(d.0.len()));
                d.0.extend_from_slice(&buf[..keep]);
                d.1 += n as u64;
            }
        });
        Capture { data, thread }
    }

    /// What was read so far; waits up to `grace` for the writer to close.
    fn finish(self, grace: Duration) -> (Vec<u8>, u64, bool) {
        let deadline = Instant::now() + grace;
        while !self.thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let closed = self.thread.is_finished();
        let d = self.data.lock().expect("capture lock");
        (d.0.clone(), d.1, closed)
    }
}

/// A runtimed that was spawned and not yet waited for.
pub struct Running {
    child: Child,
    stdout: Capture,
    stderr: Capture,
    report_path: Option<PathBuf>,
    started: Instant,
    watchdog: Duration,
    argv: Vec<String>,
}

impl Running {
    /// Host pid of the runtimed process.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Kills runtimed and fails the test with `what` and everything runtimed
    /// said: for a sandbox that did not get where the test expected.
    pub fn fail(mut self, what: &str) -> ! {
        let _ = self.child.kill();
        let out = self.wait();
        panic!("{what}{}", out.context())
    }

    /// Waits for runtimed (killing it and failing after the watchdog).
    pub fn wait(mut self) -> RunOutput {
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("waiting for runtimed") {
                break status;
            }
            if self.started.elapsed() > self.watchdog {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let (out, _, _) = self.stdout.finish(Duration::from_secs(1));
                let (err, _, _) = self.stderr.finish(Duration::from_secs(1));
                panic!(
                    "runtimed did not finish within {:?}: {:?}\nstderr: {}\nstdout: {}",
                    self.watchdog,
                    self.argv,
                    String::from_utf8_lossy(&err),
                    String::from_utf8_lossy(&out[..out.len().min(2000)])
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let elapsed = self.started.elapsed();
        let (stdout, stdout_total, stdout_closed) = self.stdout.finish(Duration::from_secs(5));
        let (stderr, _, stderr_closed) = self.stderr.finish(Duration::from_secs(5));
        let report_raw = self.report_path.as_ref().and_then(|p| {
            let raw = fs::read_to_string(p).ok();
            let _ = fs::remove_file(p);
            raw
        });
        let report = report_raw
            .as_deref()
            .filter(|r| !r.trim().is_empty())
            .map(|r| serde_json::from_str::<Report>(r).map_err(|e| e.to_string()));
        RunOutput {
            status,
            stdout,
            stdout_total,
            stderr,
            streams_closed: stdout_closed && stderr_closed,
            report,
            report_raw,
            elapsed,
            argv: self.argv,
        }
    }
}

/// What a finished `runtimed run` produced.
#[derive(Debug)]
pub struct RunOutput {
    pub status: ExitStatus,
    /// At most 16 MiB of stdout.
    pub stdout: Vec<u8>,
    /// Every stdout byte read, kept or not.
    pub stdout_total: u64,
    pub stderr: Vec<u8>,
    /// Both pipes reached EOF within 5 s of runtimed's exit.
    pub streams_closed: bool,
    /// The parsed `--report` file, or why it did not parse.
    pub report: Option<Result<Report, String>>,
    pub report_raw: Option<String>,
    /// As measured by the test (spawn to exit).
    pub elapsed: Duration,
    pub argv: Vec<String>,
}

impl RunOutput {
    /// Exit code, or 128+N if runtimed itself died of signal N.
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .or_else(|| self.status.signal().map(|s| 128 + s))
            .unwrap_or(-1)
    }

    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// A description for assertion messages.
    pub fn context(&self) -> String {
        let out = self.stdout_str();
        let cut = out.char_indices().nth(2000).map_or(out.len(), |(i, _)| i);
        format!(
            "\n  argv: {:?}\n  exit: {} ({:?}) after {:?}\n  stderr: {}\n  stdout: {}\n  report: {}",
            self.argv,
            self.code(),
            self.status,
            self.elapsed,
            self.stderr_str().trim_end(),
            &out[..cut],
            self.report_raw.as_deref().unwrap_or("<none>")
        )
    }

    /// The exit report; fails the test if missing or not matching the contract.
    pub fn report(&self) -> &Report {
        match &self.report {
            Some(Ok(r)) => r,
            Some(Err(e)) => panic!(
                "exit report does not match the contract: {e}{}",
                self.context()
            ),
            None => panic!("no exit report written{}", self.context()),
        }
    }

    /// The probe's JSON line (the first stdout line that parses).
    pub fn probe_json(&self) -> Value {
        parse_probe_line(&self.stdout).unwrap_or_else(|e| panic!("{e}{}", self.context()))
    }

    /// The probe's JSON line if it printed one (it may have been killed).
    pub fn try_probe_json(&self) -> Option<Value> {
        parse_probe_line(&self.stdout).ok()
    }

    /// Asserts runtimed's failure shape: exactly one stderr line, starting
    /// with `runtimed: `; returns it.
    pub fn one_error_line(&self) -> String {
        let err = self.stderr_str();
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(
            lines.len(),
            1,
            "expected exactly one stderr line{}",
            self.context()
        );
        assert!(
            lines[0].starts_with("runtimed: "),
            "stderr line must start with `runtimed: `{}",
            self.context()
        );
        lines[0].to_owned()
    }
}

fn parse_probe_line(stdout: &[u8]) -> Result<Value, String> {
    let text = String::from_utf8_lossy(stdout);
    text.lines()
        .find_map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(Value::is_object)
        })
        .ok_or_else(|| "no probe JSON line on stdout".to_owned())
}

// ---- the exit report -----------------------------------------------------------

/// Why a run ended (contract values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Termination {
    Exited,
    Signaled,
    WallTimeout,
    CpuTimeout,
    OomKilled,
    OutputLimit,
    PidsLimit,
    SetupFailed,
}

/// `error` of a report.
#[derive(Debug, Clone, Deserialize)]
pub struct ReportError {
    pub step: String,
    pub errno: Option<String>,
    pub message: String,
}

/// The `--report` JSON. Every contract field is required, so a report
/// missing one fails to parse.
#[derive(Debug, Clone, Deserialize)]
pub struct Report {
    pub sandbox_id: String,
    pub termination: Termination,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub wall_time_us: u64,
    pub cpu_user_us: u64,
    pub cpu_system_us: u64,
    pub cpu_total_us: u64,
    pub memory_peak_bytes: u64,
    pub oom_kills: u64,
    pub pids_limit_hits: u64,
    pub stdout_bytes: Option<u64>,
    pub stderr_bytes: Option<u64>,
    pub host_uid: u32,
    pub host_gid: u32,
    pub cgroup_paths: Vec<String>,
    pub error: Option<ReportError>,
}

// ---- probe output ----------------------------------------------------------------

/// Accessors for a probe JSON line.
pub trait ProbeLine {
    /// `ok`: did the operation succeed.
    fn ok(&self) -> bool;
    /// `errno` name, or "" when none.
    fn errno(&self) -> String;
    /// A string field ("" when absent).
    fn str_of(&self, key: &str) -> String;
    /// A list of strings ([] when absent).
    fn strings(&self, key: &str) -> Vec<String>;
}

impl ProbeLine for Value {
    fn ok(&self) -> bool {
        self["ok"]
            .as_bool()
            .unwrap_or_else(|| panic!("probe line without `ok`: {self}"))
    }

    fn errno(&self) -> String {
        self["errno"].as_str().unwrap_or_default().to_owned()
    }

    fn str_of(&self, key: &str) -> String {
        self[key].as_str().unwrap_or_default().to_owned()
    }

    fn strings(&self, key: &str) -> Vec<String> {
        self[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

// ---- temp files and names ----------------------------------------------------------

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name unique across tests, processes and runs: `<prefix>-<pid>-<n>-<nanos>`.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{}-{n}-{nanos}", std::process::id())
}

/// A directory under /var/tmp (not /tmp, which a sandbox replaces anyway,
/// so it proves nothing), removed on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let path = PathBuf::from("/var/tmp").join(unique(&format!("runtimed-tests-{prefix}")));
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        TempDir { path }
    }

    /// Mode 0777, so the sandbox user (some unprivileged host uid) can
    /// write, and owned by `nobody` (65534:65534): a read-write bind of a
    /// root-owned directory is refused.
    pub fn world_writable(prefix: &str) -> TempDir {
        let d = TempDir::new(prefix);
        fs::set_permissions(&d.path, fs::Permissions::from_mode(0o777)).expect("chmod temp dir");
        std::os::unix::fs::chown(&d.path, Some(NOBODY), Some(NOBODY)).expect("chown temp dir");
        d
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.path.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

// ---- the host view ------------------------------------------------------------------

/// A process seen in the host's /proc.
#[derive(Debug, Clone)]
pub struct HostProc {
    pub pid: i32,
    pub argv: Vec<String>,
}

/// Host processes whose command line contains `needle` (as one argument
/// or part of one).
pub fn host_procs_matching(needle: &str) -> Vec<HostProc> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id() as i32;
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter(|&pid| pid != me)
        .filter_map(|pid| {
            let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let argv: Vec<String> = raw
                .split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            argv.iter()
                .any(|a| a.contains(needle))
                .then_some(HostProc { pid, argv })
        })
        .collect()
}

/// Host processes running the probe (argv[0] == `/probe`) with `tag` in
/// their arguments.
pub fn host_probe_procs(tag: &str) -> Vec<HostProc> {
    host_procs_matching(tag)
        .into_iter()
        .filter(|p| p.argv.first().map(String::as_str) == Some(PROBE_IN_SANDBOX))
        .collect()
}

/// A `Key:\tv1\tv2...` line of /proc/<pid>/status as numbers (Uid, Gid).
pub fn proc_status_ids(pid: i32, key: &str) -> Option<Vec<u32>> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(&format!("{key}:")))?;
    line.split_once(':')?
        .1
        .split_whitespace()
        .map(|v| v.parse().ok())
        .collect()
}

/// Whether a process exists and is not a zombie.
pub fn pid_alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().chars().next())
        })
        .is_some_and(|state| state != Some('Z') && state != Some('X'))
}

/// Polls `f` every 20 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Host directories of the cgroups `pid` is in, one per hierarchy, from
/// /proc/<pid>/cgroup and the cgroup mounts in /proc/self/mountinfo
/// (works for v1, hybrid and v2 hosts). Keyed by the hierarchy line prefix
/// (`"4:memory"`, `"0:"`).
pub fn host_cgroup_dirs(pid: i32) -> BTreeMap<String, PathBuf> {
    let mounts = cgroup_mounts();
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return BTreeMap::new();
    };
    let mut dirs = BTreeMap::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let mount = if controllers.is_empty() {
            mounts.iter().find(|m| m.v2)
        } else {
            mounts.iter().find(|m| {
                !m.v2
                    && controllers
                        .split(',')
                        .all(|c| m.options.iter().any(|o| o == c))
            })
        };
        if let Some(m) = mount {
            let rel = path
                .strip_prefix(&m.root)
                .unwrap_or(path)
                .trim_start_matches('/');
            dirs.insert(format!("{id}:{controllers}"), m.mount_point.join(rel));
        }
    }
    dirs
}

struct CgroupMount {
    v2: bool,
    root: String,
    mount_point: PathBuf,
    options: Vec<String>,
}

fn cgroup_mounts() -> Vec<CgroupMount> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines() {
        // id parent maj:min root mount-point options [optional...] - fstype source super-options
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        let (Some(fstype), Some(root), Some(mp)) = (right.first(), left.get(3), left.get(4)) else {
            continue;
        };
        let v2 = *fstype == "cgroup2";
        if !v2 && *fstype != "cgroup" {
            continue;
        }
        out.push(CgroupMount {
            v2,
            root: (*root).to_owned(),
            mount_point: PathBuf::from(*mp),
            options: right
                .get(2)
                .map(|o| o.split(',').map(str::to_owned).collect())
                .unwrap_or_default(),
        });
    }
    out
}

/// What no response of the daemon may contain: the host's PID 1 command
/// line (as a files API that followed a link to the host's /proc would
/// serve it) and the host's hostname.
pub fn host_secrets() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if let Ok(c) = std::fs::read("/proc/1/cmdline") {
        if c.len() > 4 {
            out.push(c);
        }
    }
    if let Ok(h) = std::fs::read_to_string("/etc/hostname") {
        if h.trim().len() > 3 {
            out.push(h.trim().as_bytes().to_vec());
        }
    }
    out
}

/// The host's `/etc/hostname`, which a response must not be, byte for
/// byte (it may be too short to search for inside a body).
pub fn host_hostname() -> Option<Vec<u8>> {
    std::fs::read("/etc/hostname")
        .ok()
        .filter(|h| !h.is_empty())
}

/// A figure of `/proc/<pid>/status` in bytes (`"VmRSS:"`, `"VmHWM:"`).
pub fn status_bytes(pid: i32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("{key} of {pid}"))
        * 1024
}

/// Resets `pid`'s peak RSS (`VmHWM`) to its current RSS (proc(5),
/// `clear_refs`: 5); returns that.
pub fn reset_peak_rss(pid: i32) -> u64 {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("clear_refs");
    status_bytes(pid, "VmHWM:")
}
