//! `runtimed run [OPTIONS] -- CMD [ARGS...]`: one sandboxed run from the
//! command line, like bwrap or nsjail, with limits and an exit report.
//! Converts its flags into an `oci_spec::runtime::Spec` (one function,
//! [`spec_from_args`]) plus `RunOptions`, runs, and exits with the program's
//! status.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use oci_spec::runtime::{
    Mount, MountBuilder, PosixRlimitBuilder, PosixRlimitType, RootBuilder, Spec,
};
use sandbox::spec::size::{parse_duration, parse_size};
use sandbox::{RunOptions, Sandbox, SeccompProfile, SingleThreaded};

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
    #[arg(last = true, required_unless_present = "image", value_name = "CMD")]
    command: Vec<String>,
}

fn bind_mount(src: &str, dst: &str, mode: &str) -> Result<Mount, String> {
    let src = absolute(src)?;
    if !matches!(mode, "ro" | "rw") {
        return Err(format!("bind mode {mode:?}: use ro or rw"));
    }
    MountBuilder::default()
        .destination(dst)
        .typ("bind")
        .source(src)
        .options(vec!["rbind".to_string(), mode.to_string()])
        .build()
        .map_err(|e| e.to_string())
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
/// sandbox's input model.
pub fn spec_from_args(
    a: &RunArgs,
    image: Option<&rootfs_builder::runtime::RunDefaults>,
) -> Result<Spec, String> {
    let argv = match image {
        Some(d) => d.argv(&a.command),
        None => a.command.clone(),
    };
    if argv.is_empty() {
        return Err("the image has no command: give one after --".into());
    }
    let mut spec = sandbox::spec::base_spec(argv);
    if image.is_some() {
        spec.set_root(None);
    } else if !a.layers.is_empty() {
        if a.rootfs != "host" {
            return Err("--layer and --rootfs exclude each other".into());
        }
        spec.set_root(None);
    } else if a.rootfs != "host" {
        let dir = absolute(&a.rootfs)?;
        spec.set_root(Some(
            RootBuilder::default()
                .path(dir)
                .readonly(true)
                .build()
                .map_err(|e| e.to_string())?,
        ));
    }
    let mut mounts = Vec::new();
    let tmp_size = a
        .tmp_size
        .unwrap_or(sandbox::options::defaults::TMPFS_BYTES);
    if tmp_size != sandbox::options::defaults::TMPFS_BYTES {
        mounts.push(tmpfs_mount("/tmp", tmp_size, "1777")?);
        if a.workspace.is_none() {
            mounts.push(tmpfs_mount("/workspace", tmp_size, "755")?);
        }
    }
    if let Some(ws) = &a.workspace {
        let ws = ws.to_str().ok_or("--workspace: path is not UTF-8")?;
        mounts.push(bind_mount(ws, "/workspace", "rw")?);
    }
    for b in &a.binds {
        let parts: Vec<&str> = b.split(':').collect();
        let m = match parts.as_slice() {
            [src, dst] => bind_mount(src, dst, "ro"),
            [src, dst, mode] => bind_mount(src, dst, mode),
            _ => Err("expected SRC:DST[:ro|rw]".to_string()),
        }
        .map_err(|e| format!("--bind {b}: {e}"))?;
        mounts.push(m);
    }
    for t in &a.tmpfs {
        let (dst, size) = match t.split_once(':') {
            Some((d, s)) => (d, parse_size(s).map_err(|e| format!("--tmpfs {t}: {e}"))?),
            None => (t.as_str(), sandbox::options::defaults::TMPFS_BYTES),
        };
        mounts.push(tmpfs_mount(dst, size, "1777")?);
    }
    spec.set_mounts(Some(mounts));
    spec.set_hostname(Some(a.hostname.clone()));

    let (uid, gid) = match (&a.user, image.and_then(|d| d.user)) {
        (Some(user), _) => {
            let (uid, gid) = match user.split_once(':') {
                Some((u, g)) => (u.parse::<u32>(), g.parse::<u32>()),
                None => (user.parse::<u32>(), user.parse::<u32>()),
            };
            let (Ok(uid), Ok(gid)) = (uid, gid) else {
                return Err(format!("--user {user}: expected UID[:GID] as numbers"));
            };
            (uid, gid)
        }
        (None, Some(ids)) => ids,
        (None, None) => (
            sandbox::options::defaults::UID,
            sandbox::options::defaults::GID,
        ),
    };

    let mut env: Vec<String> = vec![
        format!("PATH={}", sandbox::options::defaults::PATH),
        "HOME=/workspace".to_string(),
    ];
    if let Some(d) = image {
        env = rootfs_builder::runtime::RunDefaults {
            env,
            ..Default::default()
        }
        .env_with(&d.env);
    }
    if a.tty {
        env.push(format!(
            "TERM={}",
            std::env::var("TERM").unwrap_or_else(|_| "xterm-256color".into())
        ));
    }
    for e in &a.env {
        let kv = match e.split_once('=') {
            Some(("", _)) => return Err(format!("--env {e}: empty name")),
            Some(_) => e.clone(),
            None => match std::env::var(e) {
                Ok(v) => format!("{e}={v}"),
                Err(_) => continue,
            },
        };
        let key = kv.split('=').next().unwrap_or_default().to_string();
        env.retain(|x| x.split('=').next() != Some(key.as_str()));
        env.push(kv);
    }

    let mut rlimits = Vec::new();
    if let Some(fs) = a.file_size {
        rlimits.push(rlimit(PosixRlimitType::RlimitFsize, fs)?);
    }
    if let Some(n) = a.open_files {
        rlimits.push(rlimit(PosixRlimitType::RlimitNofile, n)?);
    }

    if let Some(p) = spec.process_mut() {
        p.set_env(Some(env));
        let cwd = a
            .workdir
            .clone()
            .or_else(|| image.and_then(|d| d.cwd.clone()).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/workspace"));
        p.set_cwd(cwd);
        p.set_terminal(Some(a.tty));
        p.user_mut().set_uid(uid);
        p.user_mut().set_gid(gid);
        if !rlimits.is_empty() {
            p.set_rlimits(Some(rlimits));
        }
    }

    let memory = match a.memory {
        Some(m) => {
            let m = i64::try_from(m).map_err(|_| "--memory: too large".to_string())?;
            if m < 4 << 20 {
                return Err("--memory: at least 4M".into());
            }
            Some(m)
        }
        None => None,
    };
    sandbox::spec::set_resources(&mut spec, memory, a.pids.map(|p| p as i64), a.cpus)
        .map_err(|e| e.to_string())?;
    if a.build_step {
        sandbox::spec::make_build_step(&mut spec);
    }
    Ok(spec)
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

fn tmpfs_mount(dst: &str, size: u64, mode: &str) -> Result<Mount, String> {
    sandbox::spec::tmpfs_mount(dst, size, mode).map_err(|e| e.to_string())
}

fn rlimit(t: PosixRlimitType, v: u64) -> Result<oci_spec::runtime::PosixRlimit, String> {
    PosixRlimitBuilder::default()
        .typ(t)
        .soft(v)
        .hard(v)
        .build()
        .map_err(|e| e.to_string())
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

pub fn main(mut args: RunArgs, single: &SingleThreaded) -> i32 {
    // An image: its layers unpacked (once per digest) and leased for the
    // run's life so that `image gc` leaves them alone.
    let mut lease = None;
    let mut defaults = None;
    if let Some(name) = &args.image {
        match crate::cli::image::prepare(&args.data_dir, name) {
            Ok(p) => {
                args.layers = p.layers;
                defaults = Some(p.defaults);
                lease = Some(p.lease);
            }
            Err(e) => return fail(e),
        }
    }
    let spec = match spec_from_args(&args, defaults.as_ref()) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let tty_size = if args.tty {
        sandbox::pty::stdin_winsize().ok()
    } else {
        None
    };
    let opts = RunOptions {
        sandbox_id: args.id.clone(),
        wall_time: args.wall_time,
        cpu_time: args.cpu_time,
        output_limit: output_limit(
            args.output_limit,
            std::io::stdout().is_terminal() && std::io::stderr().is_terminal(),
        ),
        seccomp: args.seccomp,
        landlock: !args.no_landlock,
        tty_size,
        uid_pool: args.uid_pool.clone().unwrap_or_default(),
        run_dir: std::env::var_os("RUNTIMED_RUN_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(sandbox::options::defaults::RUN_DIR)),
        root_layers: layered_root(&args),
        host_network: args.build_step,
        build_capabilities: args.build_step,
        ..RunOptions::default()
    };
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
        Err(e) => {
            let f = e.as_step_failure();
            return fail(f);
        }
    };
    let raw = if args.tty {
        Some(RawMode::enter())
    } else {
        None
    };
    let (report, _) = sb.supervise(Some(&mut sigfd));
    drop(raw);
    if let Some(err) = &report.error {
        eprintln!("runtimed: {err}");
    }
    if let Some(dest) = &args.report {
        let json = match serde_json::to_string_pretty(&report) {
            Ok(j) => j,
            Err(e) => return fail(format!("report: {e}")),
        };
        let r = if dest == "-" {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{json}")
        } else {
            std::fs::write(dest, json + "\n")
        };
        if let Err(e) = r {
            return fail(format!("writing report {dest}: {e}"));
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
    fn flags_become_a_spec() {
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
        let s = spec_from_args(&a, None).unwrap();
        let p = sandbox::spec::plan(&s, &RunOptions::default());
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
        assert!(spec_from_args(&a, None).is_err());
        let a = parse(&["--user", "x", "--", "true"]).unwrap();
        assert!(spec_from_args(&a, None).is_err());
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
