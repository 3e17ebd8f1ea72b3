//! `runtimed run [OPTIONS] -- CMD [ARGS...]`: one sandboxed run from the
//! command line, like bwrap or nsjail, with limits and an exit report.
//! Converts its flags into the sandbox's typed request (one function,
//! [`request_from_args`]), runs, and exits with the program's status.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use oci_spec::runtime::PosixRlimitType;
use sandbox::report::Step;
use sandbox::request::{Bind, StepNetwork};
use sandbox::spec::size::{parse_duration, parse_size};
use sandbox::{Env, Request, RequestError, RunOptions, Sandbox, SeccompProfile, SingleThreaded};

use crate::EXIT_RUNTIME_FAILURE;

fn size_arg(s: &str) -> Result<u64, String> {
    parse_size(s)
}

/// `--output-limit` when it is not given and stdout or stderr is not a
/// terminal: a program cannot flood its caller's pipe or file without
/// bound (docs/limits.md).
pub const DEFAULT_OUTPUT_LIMIT: u64 = 64 << 20;

/// `--output-limit`: a size, or `unlimited`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputCap {
    Bytes(u64),
    Unlimited,
}

fn output_cap_arg(s: &str) -> Result<OutputCap, String> {
    if s == "unlimited" {
        return Ok(OutputCap::Unlimited);
    }
    match parse_size(s)? {
        0 => Err("output limit must be positive (or `unlimited`)".into()),
        n => Ok(OutputCap::Bytes(n)),
    }
}

/// The output limit of a run: the flag's, else the default unless both
/// output streams are terminals (a person watching, who has Ctrl-C; a
/// program there keeps its terminal instead of a relayed pipe).
fn output_limit(flag: Option<OutputCap>, both_terminals: bool) -> Option<u64> {
    match flag {
        Some(OutputCap::Bytes(n)) => Some(n),
        Some(OutputCap::Unlimited) => None,
        None if both_terminals => None,
        None => Some(DEFAULT_OUTPUT_LIMIT),
    }
}

fn duration_arg(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err("duration must be positive".into());
    }
    Ok(d)
}

fn cpus_arg(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.01..=1024.0).contains(&v) => Ok(v),
        _ => Err(format!("invalid CPU count {s:?} (expected e.g. 0.5, 1, 2)")),
    }
}

fn uid_pool_arg(s: &str) -> Result<sandbox::UidPoolConfig, String> {
    let bad = || format!("invalid uid pool {s:?} (expected BASE:SLOTS, e.g. 100000000:4096)");
    let (base, slots) = s.split_once(':').ok_or_else(bad)?;
    let pool = sandbox::UidPoolConfig {
        base: base.parse().map_err(|_| bad())?,
        slot_size: sandbox::options::defaults::UID_POOL_SLOT_SIZE,
        slots: slots.parse().map_err(|_| bad())?,
    };
    let end = u64::from(pool.base) + u64::from(pool.slot_size) * u64::from(pool.slots);
    if pool.base == 0 || pool.slots == 0 || end > u64::from(u32::MAX) {
        return Err(format!(
            "uid pool {s:?}: must start above 0, hold at least one slot and end below 2^32"
        ));
    }
    Ok(pool)
}

fn net_arg(s: &str) -> Result<String, String> {
    match s {
        "none" => Ok(s.to_string()),
        other => Err(format!("network mode {other:?} is not implemented; only \"none\" (an empty network namespace with lo) is")),
    }
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Root filesystem: `host` (read-only host /usr, generated /etc) or a directory.
    #[arg(long, default_value = "host", value_name = "host|DIR")]
    rootfs: String,
    /// Run on an image of the store (`runtimed image ls`): its layers under
    /// a writable, size-capped overlay; its env, workdir, user and command
    /// are the defaults.
    #[arg(long, value_name = "NAME[:TAG]", conflicts_with_all = ["rootfs", "layers"])]
    image: Option<String>,
    /// Run this typed request (the JSON of `sandbox::Request`, what the
    /// judge's `CliRunner` writes) instead of one made from flags; only
    /// `--image` (its root), `--data-dir`, `--report`, `--id`, `--uid-pool`
    /// and `--no-landlock` combine with it. Failures go to the report, and
    /// nothing of runtimed's own is written to stderr (the program's).
    #[arg(long, hide = true, value_name = "FILE", conflicts_with_all = [
        "rootfs", "layers", "binds", "tmpfs", "workspace", "workdir", "env", "user",
        "memory", "pids", "cpus", "cpu_time", "wall_time", "output_limit", "file_size",
        "open_files", "tmp_size", "tty", "build_step", "command",
    ])]
    request: Option<PathBuf>,
    /// Data directory holding the image store.
    #[arg(long, value_name = "DIR", env = "RUNTIMED_DATA_DIR", default_value = crate::cli::image::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Bind a host path into the sandbox (read-only unless `:rw`).
    #[arg(long = "bind", value_name = "SRC:DST[:ro|rw]")]
    binds: Vec<String>,
    /// Mount a size-capped tmpfs (default size 256M).
    #[arg(long = "tmpfs", value_name = "DST[:SIZE]")]
    tmpfs: Vec<String>,
    /// Bind this host directory read-write at /workspace (default: a 256M tmpfs).
    #[arg(long, value_name = "DIR")]
    workspace: Option<PathBuf>,
    /// Working directory inside (default: the image's, else /workspace).
    #[arg(long, value_name = "DIR")]
    workdir: Option<PathBuf>,
    /// Set K=V, or pass K from the caller's environment. Nothing else is passed.
    #[arg(long = "env", short = 'e', value_name = "K=V|K")]
    env: Vec<String>,
    /// uid[:gid] inside the sandbox (default: the image's user, else 1000:1000).
    #[arg(long, value_name = "UID[:GID]")]
    user: Option<String>,
    /// Memory limit of the whole sandbox (swap off).
    #[arg(long, value_parser = size_arg, value_name = "SIZE")]
    memory: Option<u64>,
    /// Maximum number of tasks.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=4_194_304))]
    pids: Option<u64>,
    /// CPU quota in CPUs (e.g. 0.5).
    #[arg(long, value_parser = cpus_arg, value_name = "FLOAT")]
    cpus: Option<f64>,
    /// CPU time of the whole process tree.
    #[arg(long, value_parser = duration_arg, value_name = "DUR")]
    cpu_time: Option<Duration>,
    /// Wall-clock limit.
    #[arg(long, value_parser = duration_arg, value_name = "DUR")]
    wall_time: Option<Duration>,
    /// Bytes per output stream (stdout, stderr); the run is killed past it.
    /// Default 64M unless both are terminals; `unlimited` for none.
    #[arg(long, value_parser = output_cap_arg, value_name = "SIZE|unlimited")]
    output_limit: Option<OutputCap>,
    /// Largest file the program may write (RLIMIT_FSIZE).
    #[arg(long, value_parser = size_arg, value_name = "SIZE")]
    file_size: Option<u64>,
    /// Open files per process (RLIMIT_NOFILE, default 1024).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(16..=1_048_576))]
    open_files: Option<u64>,
    /// Size of the /tmp and default /workspace tmpfs.
    #[arg(long, value_parser = size_arg, value_name = "SIZE")]
    tmp_size: Option<u64>,
    /// Network: only `none` (an empty namespace with lo).
    #[arg(long, default_value = "none", value_parser = net_arg)]
    net: String,
    /// seccomp profile.
    #[arg(
        long,
        default_value = "default",
        value_name = "default|judge|unconfined"
    )]
    seccomp: SeccompProfile,
    /// Give the program a terminal (pty).
    #[arg(long, short = 't')]
    tty: bool,
    /// Hostname inside.
    #[arg(long, default_value = "sandbox")]
    hostname: String,
    /// Write the JSON exit report to FILE (`-`: stdout, after the program's output).
    #[arg(long, value_name = "FILE|-")]
    report: Option<String>,
    /// Name of the sandbox (its cgroup name); random when omitted.
    #[arg(long, value_name = "NAME")]
    id: Option<String>,
    /// Host id pool: sandboxes lease disjoint ranges of 65536 host uids/gids
    /// starting at BASE, SLOTS ranges in all (default 100000000:4096).
    #[arg(long, value_parser = uid_pool_arg, value_name = "BASE:SLOTS", env = "RUNTIMED_UID_POOL")]
    uid_pool: Option<sandbox::UidPoolConfig>,
    /// Disable the Landlock layer.
    #[arg(long)]
    no_landlock: bool,
    /// A root of these unpacked layer directories (bottom first) under an
    /// overlay (what `--image` resolves to; for debugging and tests).
    #[arg(long = "layer", value_name = "DIR", hide = true)]
    layers: Vec<PathBuf>,
    /// With `--layer`: keep the root's writes in DIR/upper on the host.
    #[arg(
        long = "upper-dir",
        value_name = "DIR",
        hide = true,
        requires = "layers"
    )]
    upper_dir: Option<PathBuf>,
    /// An image build step: the host's network and the build capabilities
    /// (inside the user namespace), as `image build` runs `run` steps.
    #[arg(long, hide = true)]
    build_step: bool,
    /// Size cap of the writable layer of an image root.
    #[arg(long, value_parser = size_arg, value_name = "SIZE")]
    root_size: Option<u64>,
    /// The command and its arguments (with `--image`: default the image's).
    #[arg(last = true, required_unless_present_any = ["image", "request"], value_name = "CMD")]
    command: Vec<String>,
}

fn bind(src: &str, dst: &str, mode: &str) -> Result<Bind, String> {
    let writable = match mode {
        "ro" => false,
        "rw" => true,
        _ => return Err(format!("bind mode {mode:?}: use ro or rw")),
    };
    Ok(Bind {
        source: absolute(src)?,
        destination: PathBuf::from(dst),
        writable,
    })
}

fn absolute(p: &str) -> Result<PathBuf, String> {
    let path = Path::new(p);
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    std::env::current_dir()
        .map(|d| d.join(path))
        .map_err(|e| format!("current directory: {e}"))
}

/// The one conversion from CLI flags (and the image's defaults) to the
/// sandbox's typed request; `output_limit` is the cap `main` settled on.
pub fn request_from_args(
    a: &RunArgs,
    image: Option<&rootfs_builder::runtime::RunDefaults>,
    output_limit: Option<u64>,
) -> Result<Request, String> {
    let argv = match image {
        Some(d) => d.argv(&a.command),
        None => a.command.clone(),
    };
    if argv.is_empty() {
        return Err("the image has no command: give one after --".into());
    }
    let mut b = Request::builder(argv)
        .hostname(a.hostname.clone())
        .terminal(a.tty)
        .seccomp(a.seccomp);
    if let Some(root) = layered_root(a) {
        b = b.root_layers(root);
    } else if a.rootfs != "host" {
        b = b.root_dir(absolute(&a.rootfs)?);
    }
    if !a.layers.is_empty() && a.image.is_none() && a.rootfs != "host" {
        return Err("--layer and --rootfs exclude each other".into());
    }
    if let Some(size) = a.tmp_size {
        b = b.scratch_bytes(size);
    }
    if let Some(ws) = &a.workspace {
        b = b.workspace_dir(absolute(
            ws.to_str().ok_or("--workspace: path is not UTF-8")?,
        )?);
    }
    for spec in &a.binds {
        let parts: Vec<&str> = spec.split(':').collect();
        let m = match parts.as_slice() {
            [src, dst] => bind(src, dst, "ro"),
            [src, dst, mode] => bind(src, dst, mode),
            _ => Err("expected SRC:DST[:ro|rw]".to_string()),
        }
        .map_err(|e| format!("--bind {spec}: {e}"))?;
        b = b.bind(m);
    }
    for t in &a.tmpfs {
        let (dst, size) = match t.split_once(':') {
            Some((d, s)) => (d, parse_size(s).map_err(|e| format!("--tmpfs {t}: {e}"))?),
            None => (t.as_str(), sandbox::options::defaults::TMPFS_BYTES),
        };
        b = b.tmpfs(dst, size);
    }

    match (&a.user, image.and_then(|d| d.user)) {
        (Some(user), _) => {
            let (uid, gid) = match user.split_once(':') {
                Some((u, g)) => (u.parse::<u32>(), g.parse::<u32>()),
                None => (user.parse::<u32>(), user.parse::<u32>()),
            };
            let (Ok(uid), Ok(gid)) = (uid, gid) else {
                return Err(format!("--user {user}: expected UID[:GID] as numbers"));
            };
            b = b.user(uid, gid);
        }
        (None, Some((uid, gid))) => b = b.user(uid, gid),
        (None, None) => {}
    }

    let mut env = Env::sandbox_default();
    if let Some(d) = image {
        for kv in &d.env {
            // An image's malformed entry is skipped, as a shell would.
            let _ = env.set_entry(kv);
        }
    }
    if a.tty {
        let term = std::env::var("TERM").unwrap_or_else(|_| "xterm-256color".into());
        env.set("TERM", &term).map_err(|e| e.to_string())?;
    }
    for e in &a.env {
        let r = match e.split_once('=') {
            Some(("", _)) => return Err(format!("--env {e}: empty name")),
            Some(_) => env.set_entry(e),
            None => match std::env::var(e) {
                Ok(v) => env.set(e, &v),
                Err(_) => continue,
            },
        };
        r.map_err(|err| format!("--env {e}: {err}"))?;
    }
    b = b.env(env);
    if let Some(cwd) = a
        .workdir
        .clone()
        .or_else(|| image.and_then(|d| d.cwd.clone()).map(PathBuf::from))
    {
        b = b.cwd(cwd);
    }
    if let Some(fs) = a.file_size {
        b = b.rlimit(PosixRlimitType::RlimitFsize, fs);
    }
    if let Some(n) = a.open_files {
        b = b.rlimit(PosixRlimitType::RlimitNofile, n);
    }
    if let Some(m) = a.memory {
        b = b.memory(m);
    }
    if let Some(p) = a.pids {
        b = b.pids(p);
    }
    if let Some(c) = a.cpus {
        b = b.cpus(c);
    }
    if let Some(t) = a.wall_time {
        b = b.wall_time(t);
    }
    if let Some(t) = a.cpu_time {
        b = b.cpu_time(t);
    }
    if let Some(o) = output_limit {
        b = b.output_limit(o);
    }
    if a.build_step {
        b = b.build_step(StepNetwork::Host);
    }
    b.build().map_err(|e| match e {
        RequestError::MemoryTooSmall(_) => "--memory: at least 4M".to_string(),
        RequestError::MemoryTooLarge(_) => "--memory: too large".to_string(),
        e => e.to_string(),
    })
}

/// The writable default size of an image root's upper layer.
pub const ROOT_SIZE: u64 = 1 << 30;

fn layered_root(a: &RunArgs) -> Option<sandbox::LayeredRoot> {
    if a.layers.is_empty() && a.image.is_none() {
        return None;
    }
    Some(sandbox::LayeredRoot {
        layers: a.layers.clone(),
        upper: match &a.upper_dir {
            Some(d) => sandbox::Upper::Dir(d.clone()),
            None => sandbox::Upper::Tmpfs {
                bytes: a.root_size.unwrap_or(ROOT_SIZE),
            },
        },
        readonly: false,
    })
}

fn fail(msg: impl std::fmt::Display) -> i32 {
    eprintln!("runtimed: {msg}");
    EXIT_RUNTIME_FAILURE
}

/// Puts the caller's terminal in raw mode for `--tty`; restores on drop.
struct RawMode {
    saved: Option<nix::sys::termios::Termios>,
}

impl RawMode {
    fn enter() -> RawMode {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        match tcgetattr(&stdin) {
            Ok(t) => {
                let mut raw = t.clone();
                cfmakeraw(&mut raw);
                let _ = tcsetattr(&stdin, SetArg::TCSANOW, &raw);
                RawMode { saved: Some(t) }
            }
            Err(_) => RawMode { saved: None },
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                t,
            );
        }
    }
}

/// Largest `--request` file: a request holds argv, env and binds, far
/// below this.
const REQUEST_BYTES_MAX: u64 = 4 << 20;

/// A run that could not start: one line on stderr (not with `--request`,
/// whose callers read only the report, and whose stderr is the
/// program's), and, with `--report`, a `setup_failed` report.
fn setup_failed(args: &RunArgs, error: sandbox::StepFailure) -> i32 {
    if args.request.is_none() {
        eprintln!("runtimed: {error}");
    }
    if let Some(dest) = &args.report {
        let id = args.id.clone().unwrap_or_default();
        if let Err(e) = write_report(dest, &sandbox::ExitReport::setup_failed(id, error)) {
            eprintln!("runtimed: {e}");
        }
    }
    EXIT_RUNTIME_FAILURE
}

fn step_failure(step: Step, message: impl std::fmt::Display) -> sandbox::StepFailure {
    sandbox::StepFailure {
        step,
        errno: None,
        message: message.to_string(),
    }
}

fn read_request(path: &Path) -> Result<Request, String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| format!("--request {}: {e}", path.display()))?;
    let mut text = Vec::new();
    f.take(REQUEST_BYTES_MAX + 1)
        .read_to_end(&mut text)
        .map_err(|e| format!("--request {}: {e}", path.display()))?;
    if text.len() as u64 > REQUEST_BYTES_MAX {
        return Err(format!("--request: more than {REQUEST_BYTES_MAX} bytes"));
    }
    serde_json::from_slice(&text).map_err(|e| format!("--request: {e}"))
}

fn write_report(dest: &str, report: &sandbox::ExitReport) -> Result<(), String> {
    let json = serde_json::to_string_pretty(report).map_err(|e| format!("report: {e}"))?;
    let r = if dest == "-" {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{json}")
    } else {
        std::fs::write(dest, json + "\n")
    };
    r.map_err(|e| format!("writing report {dest}: {e}"))
}

pub fn main(mut args: RunArgs, single: &SingleThreaded) -> i32 {
    // An image: its layers unpacked (once per digest) and leased for the
    // run's life so that `image gc` leaves them alone.
    let mut lease = None;
    let mut defaults = None;
    if let Some(name) = args.image.clone() {
        match crate::cli::image::prepare(&args.data_dir, &name) {
            Ok(p) => {
                args.layers = p.layers;
                defaults = Some(p.defaults);
                lease = Some(p.lease);
            }
            Err(e) => return setup_failed(&args, step_failure(Step::Image, e)),
        }
    }
    let req = match &args.request {
        // The request is whole; an image gives only its root.
        Some(path) => read_request(path).map(|mut r| {
            if let Some(root) = layered_root(&args) {
                r.root_layers = Some(root);
            }
            r
        }),
        None => {
            let cap = output_limit(
                args.output_limit,
                std::io::stdout().is_terminal() && std::io::stderr().is_terminal(),
            );
            request_from_args(&args, defaults.as_ref(), cap)
        }
    };
    let req = match req {
        Ok(r) => r,
        Err(e) => return setup_failed(&args, step_failure(Step::Validate, e)),
    };
    let tty_size = if args.tty {
        sandbox::pty::stdin_winsize().ok()
    } else {
        None
    };
    let opts = RunOptions {
        sandbox_id: args.id.clone(),
        landlock: !args.no_landlock,
        tty_size,
        uid_pool: args.uid_pool.clone().unwrap_or_default(),
        run_dir: std::env::var_os("RUNTIMED_RUN_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(sandbox::options::defaults::RUN_DIR)),
        ..req.run_options()
    };
    let spec = req.spec;
    // Signals for the supervisor: forwarded to the program (or resize).
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGWINCH,
    ] {
        set.add(s);
    }
    if let Err(e) = sandbox::process::signals::set_sigmask(SigmaskHow::SIG_BLOCK, &set) {
        return fail(format!("sigprocmask: {e}"));
    }
    let mut sigfd = match SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
    {
        Ok(s) => s,
        Err(e) => return fail(format!("signalfd: {e}")),
    };
    let sb = match Sandbox::create(&spec, opts, single) {
        Ok(sb) => sb,
        Err(e) => return setup_failed(&args, e.as_step_failure()),
    };
    let raw = if args.tty {
        Some(RawMode::enter())
    } else {
        None
    };
    let (report, _) = sb.supervise(Some(&mut sigfd));
    drop(raw);
    if let (Some(err), None) = (&report.error, &args.request) {
        eprintln!("runtimed: {err}");
    }
    if let Some(dest) = &args.report {
        if let Err(e) = write_report(dest, &report) {
            return fail(e);
        }
    }
    drop(lease);
    report.shell_status()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        run: RunArgs,
    }

    fn parse(args: &[&str]) -> Result<RunArgs, String> {
        let mut v = vec!["runtimed"];
        v.extend_from_slice(args);
        T::try_parse_from(v)
            .map(|t| t.run)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn flags_become_a_request() {
        // A read-write bind's source must not be root's: a directory of
        // our own, handed to nobody when we are root.
        let src = std::env::temp_dir().join(format!("runtimed-run-test-{}", std::process::id()));
        std::fs::create_dir_all(&src).unwrap();
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::chown(&src, Some(65534), Some(65534)).unwrap();
        }
        let bind = format!("{}:/data:rw", src.display());
        let a = parse(&[
            "--memory",
            "64M",
            "--pids",
            "32",
            "--cpus",
            "0.5",
            "--bind",
            &bind,
            "--tmpfs",
            "/scratch:8M",
            "--env",
            "A=1",
            "--user",
            "1234:99",
            "--hostname",
            "box",
            "--",
            "sh",
            "-c",
            "true",
        ])
        .unwrap();
        let r = request_from_args(&a, None, None).unwrap();
        let p = sandbox::spec::plan(&r.spec, &r.run_options());
        let _ = std::fs::remove_dir(&src);
        let p = p.unwrap();
        assert_eq!(p.cgroup.memory_bytes, Some(64 << 20));
        assert_eq!(p.cgroup.pids, Some(32));
        assert_eq!(p.cgroup.cpu_quota_us, Some(50_000));
        assert_eq!((p.uid, p.gid), (1234, 99));
        assert_eq!(p.hostname, "box");
        assert!(p.env.iter().any(|e| e.to_str() == Ok("A=1")));
        assert!(p
            .mounts
            .iter()
            .any(|m| m.destination == Path::new("/data") && !m.readonly));
        assert!(p
            .mounts
            .iter()
            .any(|m| m.destination == Path::new("/scratch")));
    }

    #[test]
    fn bad_flags_are_rejected() {
        assert!(parse(&["--memory", "12Q", "--", "true"]).is_err());
        assert!(parse(&["--net", "host", "--", "true"])
            .unwrap_err()
            .contains("not implemented"));
        assert!(parse(&["--seccomp", "nope", "--", "true"]).is_err());
        assert!(parse(&["--cpus", "0", "--", "true"]).is_err());
        assert!(parse(&["--wall-time", "0s", "--", "true"]).is_err());
        assert!(parse(&["--uid-pool", "0:10", "--", "true"]).is_err());
        assert!(parse(&["--uid-pool", "4294000000:100", "--", "true"]).is_err());
        assert!(parse(&["--uid-pool", "200000000", "--", "true"]).is_err());
        let a = parse(&["--uid-pool", "200000000:2", "--", "true"]).unwrap();
        assert_eq!(
            a.uid_pool.map(|p| (p.base, p.slots)),
            Some((200_000_000, 2))
        );
        let a = parse(&["--bind", "a:b:c:d", "--", "true"]).unwrap();
        assert!(request_from_args(&a, None, None).is_err());
        let a = parse(&["--user", "x", "--", "true"]).unwrap();
        assert!(request_from_args(&a, None, None).is_err());
    }

    #[test]
    fn output_is_capped_unless_asked_otherwise() {
        let cap = |args: &[&str]| parse(args).unwrap().output_limit;
        assert_eq!(cap(&["--", "true"]), None);
        assert_eq!(
            cap(&["--output-limit", "1M", "--", "true"]),
            Some(OutputCap::Bytes(1 << 20))
        );
        assert_eq!(
            cap(&["--output-limit", "unlimited", "--", "true"]),
            Some(OutputCap::Unlimited)
        );
        assert!(parse(&["--output-limit", "0", "--", "true"]).is_err());
        assert!(parse(&["--output-limit", "lots", "--", "true"]).is_err());
        // Not given: the default, unless a person watches both streams.
        assert_eq!(output_limit(None, false), Some(DEFAULT_OUTPUT_LIMIT));
        assert_eq!(output_limit(None, true), None);
        assert_eq!(output_limit(Some(OutputCap::Unlimited), false), None);
        assert_eq!(output_limit(Some(OutputCap::Bytes(5)), true), Some(5));
    }
}
