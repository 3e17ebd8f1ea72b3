//! `apibench`: the load generator of `bench/api.sh`. Every row of that
//! table is measured by this one binary in the same way: N worker threads,
//! each doing one operation after another until a deadline, each
//! operation's wall time taken on the client side, then ops/s, p50 and p99.
//!
//! Subcommands (each prints one JSON line `{what, concurrency, ops, errors,
//! secs, per_sec, p50_ms, p99_ms, mean_ms, max_ms, cpu_ms_per_op,
//! machine_busy_pct, ...}`; `cpu_ms_per_op` is the CPU time of the measured
//! processes only: the daemon's process tree with `--daemon-pid`, the
//! spawned commands for `cmd`):
//!
//! - `run`:  `POST /v1/run {"argv":["/bin/true"]}` over the Unix socket.
//! - `exec`: `POST /v1/sessions/{id}/exec` in an existing session (one
//!   session per worker, created before and deleted after the timing).
//! - `cmd -- ARGV...`: spawn ARGV and wait for it (the peers: bwrap, crun,
//!   `runtimed run`); `{w}` in an argument is replaced by the worker number
//!   (crun needs a container id per concurrent run).
//! - `pty`: keystroke → echo round trips over the terminal WebSocket.
//! - `mem`: RSS of the daemon, its helpers and their sandboxes with 0 and
//!   with N idle sessions (a different JSON line, see `mem`).
//! - `merge NAME`: the rows written by `--out NAME` over several rounds,
//!   merged into one line (ops and secs summed, percentiles over all samples).
//!
//! HTTP is written by hand (HTTP/1.1, keep-alive, one connection per worker)
//! so that the client adds next to nothing: no runtime, no pool.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const USAGE: &str = "usage:
  apibench run  --socket S [--daemon-pid P] [--concurrency N] [--duration-secs D] [--warmup-secs W] [--out NAME]
  apibench exec --socket S [--daemon-pid P] [--concurrency N] [--duration-secs D] [--warmup-secs W] [--out NAME]
  apibench cmd  [--concurrency N] [--duration-secs D] [--warmup-secs W] [--out NAME] -- ARGV...
  apibench pty  --socket S [--keystrokes K] [--warmup K] [--mode echo|cat] [--gap-ms G] [--out NAME]
  apibench mem  --socket S --daemon-pid P [--sessions N] [--settle-secs S]
  apibench merge NAME";

/// How long one HTTP exchange may take before the worker gives up.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((sub, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let opts = match Opts::parse(rest) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("apibench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let r = match sub.as_str() {
        "run" => bench_run(&opts),
        "exec" => bench_exec(&opts),
        "cmd" => bench_cmd(&opts),
        "pty" => bench_pty(&opts),
        "mem" => bench_mem(&opts),
        "merge" => merge(&opts),
        "-h" | "--help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => Err(format!("unknown subcommand {other:?}")),
    };
    match r {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("apibench {sub}: {e}");
            ExitCode::FAILURE
        }
    }
}

// --- options ------------------------------------------------------------------

struct Opts {
    socket: Option<PathBuf>,
    concurrency: usize,
    duration: Duration,
    warmup: Duration,
    out: Option<String>,
    keystrokes: usize,
    warmup_keys: usize,
    mode: String,
    gap: Duration,
    daemon_pid: Option<i32>,
    sessions: usize,
    settle: Duration,
    argv: Vec<String>,
    positional: Vec<String>,
}

impl Opts {
    fn parse(args: &[String]) -> Result<Opts, String> {
        let mut o = Opts {
            socket: None,
            concurrency: 1,
            duration: Duration::from_secs(5),
            warmup: Duration::from_secs(1),
            out: None,
            keystrokes: 2000,
            warmup_keys: 100,
            mode: "echo".into(),
            gap: Duration::ZERO,
            daemon_pid: None,
            sessions: 200,
            settle: Duration::from_secs(2),
            argv: Vec::new(),
            positional: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if a == "--" {
                o.argv = it.by_ref().cloned().collect();
                break;
            }
            if !a.starts_with("--") {
                o.positional.push(a.clone());
                continue;
            }
            let v = it
                .next()
                .ok_or_else(|| format!("{a} needs a value"))?
                .as_str();
            let num = |v: &str| -> Result<u64, String> {
                v.parse().map_err(|_| format!("{a}: not a number: {v:?}"))
            };
            let secs = |v: &str| -> Result<Duration, String> {
                v.parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s >= 0.0 && *s < 3600.0)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| format!("{a}: not a number of seconds below 3600: {v:?}"))
            };
            match a.as_str() {
                "--socket" => o.socket = Some(v.into()),
                "--concurrency" => o.concurrency = num(v)?.clamp(1, 64) as usize,
                "--duration-secs" => o.duration = secs(v)?,
                "--warmup-secs" => o.warmup = secs(v)?,
                "--out" => o.out = Some(v.into()),
                "--keystrokes" => o.keystrokes = num(v)?.clamp(1, 1_000_000) as usize,
                "--warmup" => o.warmup_keys = num(v)?.min(100_000) as usize,
                "--mode" => o.mode = v.into(),
                "--gap-ms" => o.gap = Duration::from_millis(num(v)?.min(10_000)),
                "--daemon-pid" => o.daemon_pid = Some(num(v)? as i32),
                "--sessions" => o.sessions = num(v)?.min(10_000) as usize,
                "--settle-secs" => o.settle = secs(v)?,
                _ => return Err(format!("unknown option {a}")),
            }
        }
        Ok(o)
    }

    fn socket(&self) -> Result<&PathBuf, String> {
        self.socket
            .as_ref()
            .ok_or_else(|| "--socket is required".into())
    }
}

// --- statistics ---------------------------------------------------------------

/// One row: how many operations, over how long, and each one's wall time.
struct Row {
    what: String,
    concurrency: usize,
    ops: u64,
    errors: u64,
    secs: f64,
    samples_us: Vec<u64>,
    first_error: Option<String>,
    /// CPU time of the measured processes over the window (see `CpuOf`).
    cpu_ms: Option<f64>,
    /// (busy, total) jiffies of the whole machine over the window.
    machine: (u64, u64),
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

fn ms(us: f64) -> f64 {
    (us / 10.0).round() / 100.0
}

impl Row {
    fn to_json(&self) -> Value {
        let mut s = self.samples_us.clone();
        s.sort_unstable();
        let mean = if s.is_empty() {
            0.0
        } else {
            s.iter().sum::<u64>() as f64 / s.len() as f64
        };
        json!({
            "what": self.what,
            "concurrency": self.concurrency,
            "ops": self.ops,
            "errors": self.errors,
            "secs": (self.secs * 1000.0).round() / 1000.0,
            "per_sec": if self.secs > 0.0 { (self.ops as f64 / self.secs * 10.0).round() / 10.0 } else { 0.0 },
            "p50_ms": ms(percentile(&s, 50.0)),
            "p99_ms": ms(percentile(&s, 99.0)),
            "mean_ms": ms(mean),
            "max_ms": ms(s.last().copied().unwrap_or(0) as f64),
            "cpu_ms": self.cpu_ms.map(|c| c.round()),
            "cpu_ms_per_op": self.cpu_ms.filter(|_| self.ops > 0).map(|c| (c / self.ops as f64 * 100.0).round() / 100.0),
            "machine_busy_ticks": self.machine.0,
            "machine_total_ticks": self.machine.1,
            "machine_busy_pct": (self.machine.0 * 100).checked_div(self.machine.1),
            // Busy time of all CPUs per op: kernel threads and other loads included.
            "machine_cpu_ms_per_op": if self.ops > 0 {
                (self.machine.0 as f64 * 1000.0 / clock_ticks() / self.ops as f64 * 100.0).round() / 100.0
            } else {
                0.0
            },
            "first_error": self.first_error,
        })
    }

    /// Prints the row; with `--out NAME` also appends it to NAME.jsonl and
    /// its samples (µs, one a line) to NAME.samples, for `merge`.
    fn finish(self, out: &Option<String>) -> Result<String, String> {
        let line = self.to_json().to_string();
        if let Some(name) = out {
            let append = |path: String, text: &str| -> Result<(), String> {
                fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .and_then(|mut f| f.write_all(text.as_bytes()))
                    .map_err(|e| format!("write {path}: {e}"))
            };
            append(format!("{name}.jsonl"), &format!("{line}\n"))?;
            let mut s = String::with_capacity(self.samples_us.len() * 6);
            for v in &self.samples_us {
                s.push_str(&v.to_string());
                s.push('\n');
            }
            append(format!("{name}.samples"), &s)?;
        }
        if self.ops == 0 {
            return Err(format!(
                "no operation succeeded: {}",
                self.first_error.as_deref().unwrap_or("?")
            ));
        }
        Ok(line)
    }
}

/// `merge NAME`: all rounds of one row as one line.
fn merge(o: &Opts) -> Result<String, String> {
    let name = o.positional.first().ok_or("merge needs a NAME")?;
    let read = |p: String| fs::read_to_string(&p).map_err(|e| format!("read {p}: {e}"));
    let lines = read(format!("{name}.jsonl"))?;
    let mut row = Row {
        what: String::new(),
        concurrency: 0,
        ops: 0,
        errors: 0,
        secs: 0.0,
        samples_us: Vec::new(),
        first_error: None,
        cpu_ms: Some(0.0),
        machine: (0, 0),
    };
    let mut rounds = 0;
    for l in lines.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(l).map_err(|e| format!("{name}.jsonl: {e}"))?;
        row.what = v["what"].as_str().unwrap_or("").to_string();
        row.concurrency = v["concurrency"].as_u64().unwrap_or(0) as usize;
        row.ops += v["ops"].as_u64().unwrap_or(0);
        row.errors += v["errors"].as_u64().unwrap_or(0);
        row.secs += v["secs"].as_f64().unwrap_or(0.0);
        if row.first_error.is_none() {
            row.first_error = v["first_error"].as_str().map(str::to_owned);
        }
        row.cpu_ms = row.cpu_ms.zip(v["cpu_ms"].as_f64()).map(|(a, b)| a + b);
        row.machine.0 += v["machine_busy_ticks"].as_u64().unwrap_or(0);
        row.machine.1 += v["machine_total_ticks"].as_u64().unwrap_or(0);
        rounds += 1;
    }
    for l in read(format!("{name}.samples"))?.lines() {
        if let Ok(v) = l.trim().parse() {
            row.samples_us.push(v);
        }
    }
    let mut v = row.to_json();
    v["rounds"] = json!(rounds);
    Ok(v.to_string())
}

/// Where the CPU time of a row is read.
#[derive(Clone, Copy)]
enum CpuOf {
    /// The daemon and every process below it (see [`tree_cpu_ms`]).
    Tree(i32),
    /// This process's waited-for children (`RUSAGE_CHILDREN`).
    Children,
    None,
}

impl CpuOf {
    fn read(self) -> Option<f64> {
        match self {
            CpuOf::Tree(pid) => tree_cpu_ms(pid),
            CpuOf::Children => {
                use nix::sys::resource::{getrusage, UsageWho};
                let u = getrusage(UsageWho::RUSAGE_CHILDREN).ok()?;
                let ms = |t: nix::sys::time::TimeVal| {
                    t.tv_sec() as f64 * 1000.0 + t.tv_usec() as f64 / 1000.0
                };
                Some(ms(u.user_time()) + ms(u.system_time()))
            }
            CpuOf::None => None,
        }
    }
}

/// User + system CPU of `root` and of all processes below it, including
/// what their reaped children used (cutime/cstime), in ms. A process that
/// ends between two readings moves its time into its parent's cutime, so
/// the difference of two readings counts it once. Not counted: kernel
/// threads working for them (e.g. the asynchronous network namespace
/// teardown in a kworker).
fn tree_cpu_ms(root: i32) -> Option<f64> {
    let tick = clock_ticks();
    let mut stats: Vec<(i32, i32, u64)> = Vec::new();
    for e in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(text) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the ")" that ends the command name: state is field 3.
        let Some(rest) = text.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let ppid = num(1) as i32;
        stats.push((pid, ppid, num(11) + num(12) + num(13) + num(14)));
    }
    let mut inside: HashSet<i32> = HashSet::from([root]);
    stats.iter().find(|(p, _, _)| *p == root)?;
    for _ in 0..32 {
        let before = inside.len();
        for (pid, ppid, _) in &stats {
            if inside.contains(ppid) {
                inside.insert(*pid);
            }
        }
        if inside.len() == before {
            break;
        }
    }
    let ticks: u64 = stats
        .iter()
        .filter(|(p, _, _)| inside.contains(p))
        .map(|(_, _, t)| t)
        .sum();
    Some(ticks as f64 * 1000.0 / tick)
}

/// Clock ticks per second of /proc/stat and /proc/PID/stat (USER_HZ).
fn clock_ticks() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .unwrap_or(100) as f64
}

/// (busy, total) jiffies of all CPUs from /proc/stat.
fn machine_ticks() -> (u64, u64) {
    let text = fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// Runs `op` on `concurrency` threads until the deadline, after a warm-up
/// whose operations are not counted. `setup` makes each worker's state
/// (a connection, a session); `teardown` ends it after the measurement
/// (outside the CPU reading).
fn drive<S, Setup, Op, Teardown>(
    what: &str,
    o: &Opts,
    cpu: CpuOf,
    setup: Setup,
    op: Op,
    teardown: Teardown,
) -> Result<Row, String>
where
    S: Send,
    Setup: Fn(usize) -> Result<S, String> + Sync,
    Op: Fn(&mut S) -> Result<(), String> + Sync,
    Teardown: Fn(S) + Sync,
{
    let n = o.concurrency;
    let mut states = Vec::with_capacity(n);
    for w in 0..n {
        match setup(w) {
            Ok(s) => states.push(s),
            Err(e) => {
                states.into_iter().for_each(&teardown);
                return Err(e);
            }
        }
    }
    // All workers warm up, then all measure over the same window: the main
    // thread reads the CPU counters between the barriers.
    let warmed = std::sync::Barrier::new(n + 1);
    let measured = std::sync::Barrier::new(n + 1);
    let snapped = std::sync::Barrier::new(n + 1);
    type Out = (Vec<u64>, u64, Option<String>);
    let (results, secs, cpu_ms, machine): (Vec<Out>, f64, Option<f64>, (u64, u64)) =
        std::thread::scope(|scope| {
            let handles: Vec<_> = states
                .into_iter()
                .map(|mut st| {
                    let (op, teardown) = (&op, &teardown);
                    let (warmed, measured, snapped) = (&warmed, &measured, &snapped);
                    scope.spawn(move || {
                        let warm_end = Instant::now() + o.warmup;
                        while Instant::now() < warm_end {
                            let _ = op(&mut st);
                        }
                        warmed.wait();
                        let end = Instant::now() + o.duration;
                        let mut samples = Vec::new();
                        let mut errors = 0;
                        let mut first_error = None;
                        // Bounded: by the deadline, and each op by IO_TIMEOUT.
                        while Instant::now() < end {
                            let t = Instant::now();
                            match op(&mut st) {
                                Ok(()) => samples.push(t.elapsed().as_micros() as u64),
                                Err(e) => {
                                    errors += 1;
                                    first_error.get_or_insert(e);
                                    // a broken daemon must not spin the loop
                                    std::thread::sleep(Duration::from_millis(10));
                                }
                            }
                        }
                        measured.wait();
                        snapped.wait();
                        teardown(st);
                        (samples, errors, first_error)
                    })
                })
                .collect();
            warmed.wait();
            let t0 = Instant::now();
            let (cpu0, m0) = (cpu.read(), machine_ticks());
            measured.wait();
            let secs = t0.elapsed().as_secs_f64();
            let (cpu1, m1) = (cpu.read(), machine_ticks());
            snapped.wait();
            let results = handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| (Vec::new(), 1, Some("worker panicked".into())))
                })
                .collect();
            let cpu_ms = cpu0.zip(cpu1).map(|(a, b)| b - a);
            (results, secs, cpu_ms, (m1.0 - m0.0, m1.1 - m0.1))
        });
    let mut row = Row {
        what: what.to_string(),
        concurrency: n,
        ops: 0,
        errors: 0,
        secs,
        samples_us: Vec::new(),
        first_error: None,
        cpu_ms,
        machine,
    };
    for (samples, errors, first_error) in results {
        row.ops += samples.len() as u64;
        row.samples_us.extend(samples);
        row.errors += errors;
        if row.first_error.is_none() {
            row.first_error = first_error;
        }
    }
    Ok(row)
}

// --- HTTP/1.1 with keep-alive ---------------------------------------------------

/// One keep-alive connection to the daemon's Unix socket.
struct Conn {
    path: PathBuf,
    s: Option<UnixStream>,
    buf: Vec<u8>,
}

impl Conn {
    fn new(path: &Path) -> Conn {
        Conn {
            path: path.to_path_buf(),
            s: None,
            buf: Vec::with_capacity(16 * 1024),
        }
    }

    fn stream(&mut self) -> io::Result<&mut UnixStream> {
        if self.s.is_none() {
            let s = UnixStream::connect(&self.path)?;
            s.set_read_timeout(Some(IO_TIMEOUT))?;
            s.set_write_timeout(Some(IO_TIMEOUT))?;
            self.buf.clear();
            self.s = Some(s);
        }
        self.s.as_mut().ok_or_else(|| io::Error::other("no stream"))
    }

    /// One request; returns (status, body). A connection the server closed
    /// between requests is reopened once.
    fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Result<(u16, Vec<u8>), String> {
        let fresh = self.s.is_none();
        match self.try_request(method, path, body) {
            Ok(r) => Ok(r),
            Err(e) => {
                self.s = None;
                if fresh {
                    return Err(format!("{method} {path}: {e}"));
                }
                self.try_request(method, path, body)
                    .map_err(|e| format!("{method} {path}: {e}"))
            }
        }
    }

    fn try_request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> io::Result<(u16, Vec<u8>)> {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
        if let Some(b) = body {
            req.push_str("Content-Type: application/json\r\n");
            req.push_str(&format!("Content-Length: {}\r\n\r\n{b}", b.len()));
        } else {
            req.push_str("\r\n");
        }
        self.stream()?.write_all(req.as_bytes())?;
        self.buf.clear();
        let head_end = loop {
            if let Some(p) = find(&self.buf, b"\r\n\r\n") {
                break p;
            }
            self.fill()?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line in {head:?}")))?;
        let mut length = None;
        let mut chunked = false;
        let mut close = false;
        for l in lines {
            let Some((k, v)) = l.split_once(':') else {
                continue;
            };
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase());
            match k.as_str() {
                "content-length" => length = v.parse::<usize>().ok(),
                "transfer-encoding" => chunked = v.contains("chunked"),
                "connection" => close = v.contains("close"),
                _ => {}
            }
        }
        let mut pos = head_end + 4;
        let body = if chunked {
            let mut out = Vec::new();
            loop {
                let eol = loop {
                    if let Some(p) = find(&self.buf[pos..], b"\r\n") {
                        break pos + p;
                    }
                    self.fill()?;
                };
                let size_text = String::from_utf8_lossy(&self.buf[pos..eol]).into_owned();
                let size =
                    usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                        .map_err(|_| io::Error::other(format!("bad chunk size {size_text:?}")))?;
                pos = eol + 2;
                while self.buf.len() < pos + size + 2 {
                    self.fill()?;
                }
                out.extend_from_slice(&self.buf[pos..pos + size]);
                pos += size + 2;
                if size == 0 {
                    break out;
                }
            }
        } else {
            let n = length.unwrap_or(0);
            while self.buf.len() < pos + n {
                self.fill()?;
            }
            self.buf[pos..pos + n].to_vec()
        };
        if close {
            self.s = None;
        }
        Ok((status, body))
    }

    fn fill(&mut self) -> io::Result<()> {
        let mut tmp = [0u8; 16 * 1024];
        let n = self.stream()?.read(&mut tmp)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(())
    }

    fn json(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
        want: u16,
    ) -> Result<Value, String> {
        let (status, b) = self.request(method, path, body)?;
        if status != want {
            return Err(format!(
                "{method} {path}: status {status} (want {want}): {}",
                String::from_utf8_lossy(&b)
            ));
        }
        if b.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&b).map_err(|e| format!("{method} {path}: not JSON ({e})"))
    }

    fn create_session(&mut self) -> Result<String, String> {
        let v = self.json("POST", "/v1/sessions", Some("{}"), 201)?;
        v["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("POST /v1/sessions: no id in {v}"))
    }

    fn delete_session(&mut self, id: &str) -> Result<(), String> {
        self.json("DELETE", &format!("/v1/sessions/{id}"), None, 204)
            .map(|_| ())
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// An exec result must say the program ran and exited 0.
fn check_result(v: &Value) -> Result<(), String> {
    if v["exit_code"] == 0 && v["termination"] == "exited" {
        Ok(())
    } else {
        Err(format!("unexpected result: {v}"))
    }
}

const TRUE_BODY: &str = r#"{"argv":["/bin/true"]}"#;

// --- the rows -------------------------------------------------------------------

fn bench_run(o: &Opts) -> Result<String, String> {
    let sock = o.socket()?;
    let row = drive(
        "run",
        o,
        o.daemon_pid.map_or(CpuOf::None, CpuOf::Tree),
        |_| Ok(Conn::new(sock)),
        |c| check_result(&c.json("POST", "/v1/run", Some(TRUE_BODY), 200)?),
        |_| {},
    )?;
    row.finish(&o.out)
}

fn bench_exec(o: &Opts) -> Result<String, String> {
    let sock = o.socket()?;
    let row = drive(
        "exec",
        o,
        o.daemon_pid.map_or(CpuOf::None, CpuOf::Tree),
        |_| {
            let mut c = Conn::new(sock);
            let id = c.create_session()?;
            Ok((c, format!("/v1/sessions/{id}/exec"), id))
        },
        |(c, path, _)| check_result(&c.json("POST", path, Some(TRUE_BODY), 200)?),
        |(mut c, _, id)| {
            if let Err(e) = c.delete_session(&id) {
                eprintln!("apibench exec: {e}");
            }
        },
    )?;
    row.finish(&o.out)
}

fn bench_cmd(o: &Opts) -> Result<String, String> {
    use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag};
    use nix::unistd::Pid;
    if o.argv.is_empty() {
        return Err("cmd needs -- ARGV...".into());
    }
    // Some commands exit before their own children (bwrap's monitor exits
    // on the exit code its pid-1 child reports and leaves that child to
    // die); such orphans would be reparented to init and their CPU time
    // lost to RUSAGE_CHILDREN. As a subreaper we inherit them and reap them.
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| format!("PR_SET_CHILD_SUBREAPER: {e}"))?;
    // Our direct children, so that the orphan reaper leaves them to their
    // thread. Held across spawn: a child that ended before its pid was
    // recorded must not be taken for an orphan.
    let direct: std::sync::Mutex<HashSet<i32>> = Default::default();
    let reap_orphans = || {
        for _ in 0..64 {
            let Ok(set) = direct.lock() else { return };
            let peek = waitid(
                Id::All,
                WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT,
            );
            match peek.ok().and_then(|st| st.pid()) {
                Some(p) if !set.contains(&p.as_raw()) => {
                    let _ = waitpid(p, None);
                }
                // nothing has ended, or the first one found is another
                // thread's child: later
                _ => return,
            }
        }
    };
    let what = o.argv[0].rsplit('/').next().unwrap_or("cmd").to_string();
    let row = drive(
        &what,
        o,
        CpuOf::Children,
        |w| {
            let argv: Vec<String> = o
                .argv
                .iter()
                .map(|a| a.replace("{w}", &w.to_string()))
                .collect();
            Ok(argv)
        },
        |argv| {
            let mut child = {
                let mut set = direct.lock().map_err(|_| "lock poisoned".to_string())?;
                let child = Command::new(&argv[0])
                    .args(&argv[1..])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(|e| format!("spawn {}: {e}", argv[0]))?;
                set.insert(child.id() as i32);
                child
            };
            let st = child.wait();
            if let Ok(mut set) = direct.lock() {
                set.remove(&(child.id() as i32));
            }
            reap_orphans();
            let st = st.map_err(|e| format!("wait {}: {e}", argv[0]))?;
            if st.success() {
                Ok(())
            } else {
                Err(format!("{} exited with {st}", argv.join(" ")))
            }
        },
        |_| {},
    )?;
    // Orphans still dying at the end (outside the measured window).
    for _ in 0..500 {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(nix::sys::wait::WaitStatus::StillAlive) => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    row.finish(&o.out)
}

// --- PTY ------------------------------------------------------------------------

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

type Ws = tungstenite::WebSocket<UnixStream>;

/// Reads binary frames, appending to `acc`, until `done(acc)` or the timeout.
fn ws_read_until(
    ws: &mut Ws,
    acc: &mut Vec<u8>,
    timeout: Duration,
    done: impl Fn(&[u8]) -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    while !done(acc) {
        if Instant::now() > deadline {
            return Err(format!("timeout; got {:?}", String::from_utf8_lossy(acc)));
        }
        match ws.read() {
            Ok(tungstenite::Message::Binary(b)) => acc.extend_from_slice(&b),
            Ok(tungstenite::Message::Text(t)) => {
                return Err(format!("control message: {}", t.as_str()))
            }
            Ok(tungstenite::Message::Close(_)) => return Err("the terminal closed".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("websocket read: {e}")),
        }
    }
    Ok(())
}

/// Keystroke → echo over `GET /v1/sessions/{id}/pty`. Mode `echo`: argv
/// /bin/cat in a cooked tty; the echo comes from the line discipline
/// (daemon → pty master → n_tty → master → daemon). Mode `cat`: the tty in
/// raw mode without echo, so the byte comes back only through cat's
/// read + write (adds a process wake-up in the sandbox, as a shell's line
/// editor would). `--gap-ms`: a pause before each keystroke, as between
/// a typist's keys, so that every thread on the path has gone to sleep.
fn bench_pty(o: &Opts) -> Result<String, String> {
    let sock = o.socket()?;
    let argv: Vec<&str> = match o.mode.as_str() {
        "echo" => vec!["/bin/cat"],
        "cat" => vec!["/bin/sh", "-c", "stty raw -echo && echo READY && exec cat"],
        m => return Err(format!("--mode: echo or cat, not {m:?}")),
    };
    let mut c = Conn::new(sock);
    let id = c.create_session()?;
    let r = (|| {
        let q: String = argv
            .iter()
            .map(|a| format!("&argv={}", percent_encode(a)))
            .collect();
        let path = format!("/v1/sessions/{id}/pty?cols=80&rows=24{q}");
        let s = UnixStream::connect(sock).map_err(|e| format!("connect: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        let (mut ws, resp) = tungstenite::client::client(format!("ws://localhost{path}"), s)
            .map_err(|e| format!("websocket {path}: {e}"))?;
        if resp.status().as_u16() != 101 {
            return Err(format!("websocket {path}: status {}", resp.status()));
        }
        let mut acc = Vec::new();
        if o.mode == "cat" {
            ws_read_until(&mut ws, &mut acc, Duration::from_secs(10), |a| {
                find(a, b"READY").is_some()
            })?;
        }
        let mut samples = Vec::with_capacity(o.keystrokes);
        let mut line: Vec<u8> = Vec::new();
        let total = o.warmup_keys + o.keystrokes;
        let started = Instant::now();
        for i in 0..total {
            // Cycle through letters so a stale echo cannot pass for this one.
            let key = b'a' + (i % 26) as u8;
            if !o.gap.is_zero() {
                std::thread::sleep(o.gap);
            }
            acc.clear();
            let t = Instant::now();
            ws.send(tungstenite::Message::Binary(vec![key].into()))
                .map_err(|e| format!("websocket send: {e}"))?;
            ws_read_until(&mut ws, &mut acc, Duration::from_secs(10), |a| {
                !a.is_empty()
            })?;
            let dt = t.elapsed().as_micros() as u64;
            if acc != [key] {
                return Err(format!(
                    "sent {:?}, got {:?}",
                    key as char,
                    String::from_utf8_lossy(&acc)
                ));
            }
            if i >= o.warmup_keys {
                samples.push(dt);
            }
            line.push(key);
            // The canonical line buffer holds 4095 bytes: end the line now
            // and then (untimed), and read until cat has printed it back.
            if o.mode == "echo" && line.len() == 64 {
                ws.send(tungstenite::Message::Binary(b"\n".to_vec().into()))
                    .map_err(|e| format!("websocket send: {e}"))?;
                let mut want = line.clone();
                want.extend_from_slice(b"\r\n");
                acc.clear();
                ws_read_until(&mut ws, &mut acc, Duration::from_secs(10), |a| {
                    find(a, &want).is_some()
                })?;
                line.clear();
            }
        }
        let secs = started.elapsed().as_secs_f64();
        let _ = ws.close(None);
        Ok(Row {
            what: format!("pty-{}-gap{}ms", o.mode, o.gap.as_millis()),
            concurrency: 1,
            ops: samples.len() as u64,
            errors: 0,
            secs,
            samples_us: samples,
            first_error: None,
            cpu_ms: None,
            machine: (0, 0),
        })
    })();
    let del = c.delete_session(&id);
    let row = r?;
    del?;
    row.finish(&o.out)
}

// --- memory ---------------------------------------------------------------------

/// One process as /proc shows it.
struct Proc {
    ppid: i32,
    rss_kib: u64,
    pss_kib: u64,
    helper: bool,
}

fn procs() -> BTreeMap<i32, Proc> {
    let mut out = BTreeMap::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let field = |name: &str| -> Option<u64> {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        };
        let ppid = field("PPid:").unwrap_or(0) as i32;
        let rss_kib = field("VmRSS:").unwrap_or(0);
        let pss_kib = fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Pss:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0);
        // Re-executed helpers are `runtimed sandbox-host`; helpers forked
        // by the daemon's zygote carry the name (comm) `sandbox-host`.
        let helper = fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| c.split(|b| *b == 0).nth(1) == Some(b"sandbox-host".as_slice()))
            .unwrap_or(false)
            || fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "sandbox-host");
        out.insert(
            pid,
            Proc {
                ppid,
                rss_kib,
                pss_kib,
                helper,
            },
        );
    }
    out
}

/// RSS and PSS of the daemon, of its `sandbox-host` children, and of every
/// process below those (the sandboxes), in KiB, with process counts.
fn memory_of(daemon: i32) -> Result<Value, String> {
    let all = procs();
    let d = all
        .get(&daemon)
        .ok_or_else(|| format!("no process {daemon}"))?;
    // The zygote (a child of the daemon that forks the helpers) counts
    // with the daemon's own figures below as one of `other_children`.
    let parents: HashSet<i32> = std::iter::once(daemon)
        .chain(
            all.iter()
                .filter(|(_, p)| p.ppid == daemon && !p.helper)
                .map(|(pid, _)| *pid),
        )
        .collect();
    let helpers: HashSet<i32> = all
        .iter()
        .filter(|(_, p)| parents.contains(&p.ppid) && p.helper)
        .map(|(pid, _)| *pid)
        .collect();
    let others = all
        .iter()
        .filter(|(_, p)| p.ppid == daemon && !p.helper)
        .count();
    // Descendants of the helpers, by repeated passes (bounded by the depth).
    let mut below: HashSet<i32> = HashSet::new();
    for _ in 0..16 {
        let before = below.len();
        for (pid, p) in &all {
            if helpers.contains(&p.ppid) || below.contains(&p.ppid) {
                below.insert(*pid);
            }
        }
        if below.len() == before {
            break;
        }
    }
    let sum = |set: &HashSet<i32>, f: fn(&Proc) -> u64| -> u64 {
        set.iter().filter_map(|p| all.get(p)).map(f).sum()
    };
    // The memory cgroups of the sandboxes (their PID 1s are the helpers'
    // children): what the kernel charges to them, kernel objects included.
    let cgroups: HashSet<PathBuf> = below
        .iter()
        .filter(|p| all.get(p).is_some_and(|pr| helpers.contains(&pr.ppid)))
        .filter_map(|p| memory_cgroup_file(*p))
        .collect();
    let cgroup_kib: u64 = cgroups
        .iter()
        .filter_map(|f| fs::read_to_string(f).ok())
        .filter_map(|t| t.trim().parse::<u64>().ok())
        .map(|b| b / 1024)
        .sum();
    Ok(json!({
        "daemon_rss_kib": d.rss_kib,
        "daemon_pss_kib": d.pss_kib,
        "helpers": helpers.len(),
        "helpers_rss_kib": sum(&helpers, |p| p.rss_kib),
        "helpers_pss_kib": sum(&helpers, |p| p.pss_kib),
        "sandbox_procs": below.len(),
        "sandbox_rss_kib": sum(&below, |p| p.rss_kib),
        "sandbox_pss_kib": sum(&below, |p| p.pss_kib),
        "total_pss_kib": d.pss_kib + sum(&helpers, |p| p.pss_kib) + sum(&below, |p| p.pss_kib),
        "sandbox_cgroups": cgroups.len(),
        "sandbox_cgroup_kib": cgroup_kib,
        "other_children": others,
    }))
}

/// The file holding the memory usage of `pid`'s memory cgroup (v1
/// `memory.usage_in_bytes`, v2 `memory.current`).
fn memory_cgroup_file(pid: i32) -> Option<PathBuf> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrl, path) = (parts.next()?, parts.next()?, parts.next()?);
        let rel = path.trim_start_matches('/');
        if ctrl.split(',').any(|c| c == "memory") {
            return Some(
                PathBuf::from("/sys/fs/cgroup/memory")
                    .join(rel)
                    .join("memory.usage_in_bytes"),
            );
        }
        if ctrl.is_empty() {
            let f = PathBuf::from("/sys/fs/cgroup")
                .join(rel)
                .join("memory.current");
            if f.exists() {
                return Some(f);
            }
        }
    }
    None
}

/// `mem`: warm up (create and delete a few sessions, so one-time costs are
/// not charged to the idle ones), then the figures with 0 sessions, with N
/// idle sessions, and after deleting them.
fn bench_mem(o: &Opts) -> Result<String, String> {
    let sock = o.socket()?;
    let daemon = o.daemon_pid.ok_or("--daemon-pid is required")?;
    let mut c = Conn::new(sock);
    let fresh = memory_of(daemon)?;
    for _ in 0..5 {
        let id = c.create_session()?;
        c.delete_session(&id)?;
    }
    std::thread::sleep(o.settle);
    let zero = memory_of(daemon)?;
    let t = Instant::now();
    let mut ids = Vec::with_capacity(o.sessions);
    let mut err = None;
    for _ in 0..o.sessions {
        match c.create_session() {
            Ok(id) => ids.push(id),
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    let create_secs = t.elapsed().as_secs_f64();
    std::thread::sleep(o.settle);
    let idle = memory_of(daemon);
    let t = Instant::now();
    for id in &ids {
        if let Err(e) = c.delete_session(id) {
            err.get_or_insert(e);
        }
    }
    let delete_secs = t.elapsed().as_secs_f64();
    if let Some(e) = err {
        return Err(e);
    }
    std::thread::sleep(o.settle);
    let after = memory_of(daemon)?;
    let idle = idle?;
    let n = ids.len().max(1) as f64;
    let per = |k: &str| {
        ((idle[k].as_f64().unwrap_or(0.0) - zero[k].as_f64().unwrap_or(0.0)) / n * 10.0).round()
            / 10.0
    };
    Ok(json!({
        "what": "mem",
        "sessions": ids.len(),
        "fresh": fresh,
        "zero": zero,
        "idle": idle,
        "after_delete": after,
        "per_session_kib": {
            "daemon_rss": per("daemon_rss_kib"),
            "daemon_pss": per("daemon_pss_kib"),
            "helpers_rss": per("helpers_rss_kib"),
            "helpers_pss": per("helpers_pss_kib"),
            "sandbox_rss": per("sandbox_rss_kib"),
            "sandbox_pss": per("sandbox_pss_kib"),
            "total_pss": per("total_pss_kib"),
            "sandbox_cgroup": per("sandbox_cgroup_kib"),
        },
        "create_secs": (create_secs * 1000.0).round() / 1000.0,
        "delete_secs": (delete_secs * 1000.0).round() / 1000.0,
    })
    .to_string())
}
