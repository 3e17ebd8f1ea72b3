//! The OCI runtime front end: `runtimed oci <command>` and the same
//! commands when the binary is invoked as `runtimed-runc` (an installed
//! symlink: containerd's runc shim takes a binary name, no arguments).
//! runc's command line as containerd-shim-runc-v2 and dockerd drive it
//! (go-runc's arguments), runc's exit codes (1 on any error, one line on
//! stderr and in `--log`), and runc's process model: `create` leaves the
//! container's init blocked before its program, `start` releases it, and
//! no runtimed process stays behind (see docs/oci.md).
//!
//! The config.json is the sandbox's own input type: `create` hands the
//! parsed `Spec` to the sandbox crate in container mode
//! (`sandbox::options::ContainerMode`), which validates it and refuses
//! what it does not support by field name.

mod cgroups;
mod create;
mod exec;
mod freezer;
mod hooks;
mod info;
mod log;
mod manage;
pub mod state;
mod stats;
mod update;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use log::{Log, LogFormat};
use state::{Root, StateError};

/// Names the binary answers to as the OCI runtime (argv[0]'s basename),
/// besides `runtimed-runc-<class>` (one symlink per runtime class, each
/// with its own section in the config file).
pub const RUNTIME_NAMES: &[&str] = &["runtimed-runc", "runtimed-oci"];

/// Whether argv[0] names the OCI runtime.
pub fn invoked_as_runtime(argv0: &std::ffi::OsStr) -> bool {
    std::path::Path::new(argv0)
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| RUNTIME_NAMES.contains(&n) || n.starts_with("runtimed-runc-"))
}

/// The OCI runtime's config file: settings per runtime class, keyed by
/// the name the binary was invoked under (containerd's shim passes no
/// arguments, so a class is a symlink and a section here).
pub const CONFIG_FILE: &str = "/etc/runtimed/oci.toml";

/// `[runtime.<name>]` sections.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct OciConfig {
    #[serde(default)]
    runtime: std::collections::BTreeMap<String, RuntimeClass>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RuntimeClass {
    /// `false`: no fresh host uid range for containers that ask for no
    /// user namespace (their ids are the host's, as runc).
    uid_range: Option<bool>,
}

/// The config file (`RUNTIMED_OCI_CONFIG` overrides the path); none is
/// the defaults.
fn load_config() -> Result<OciConfig, OciError> {
    let path = std::env::var_os("RUNTIMED_OCI_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(CONFIG_FILE));
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(OciConfig::default()),
        Err(e) => return Err(io_err(format!("read {}", path.display()))(e)),
    };
    toml::from_str(&text).map_err(|e: toml::de::Error| {
        // One line: the message, without the excerpt toml adds.
        OciError::Usage(format!("{}: {}", path.display(), e.message().trim()))
    })
}

/// runc's exit status for every error.
pub const EXIT_ERROR: i32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{0}")]
    Usage(String),
    #[error("bundle {bundle}: {message}")]
    Config { bundle: PathBuf, message: String },
    #[error("{0}")]
    Sandbox(String),
    #[error("container {id} is {status}: {action}")]
    WrongStatus {
        id: String,
        status: &'static str,
        action: &'static str,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Sys {
        what: String,
        source: nix::errno::Errno,
    },
    #[error(transparent)]
    Hook(#[from] hooks::HookError),
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> OciError {
    let what = what.into();
    move |source| OciError::Io { what, source }
}

pub(crate) fn sys_err(what: impl Into<String>) -> impl FnOnce(nix::errno::Errno) -> OciError {
    let what = what.into();
    move |source| OciError::Sys { what, source }
}

#[derive(Parser, Debug)]
#[command(
    name = "runtimed-runc",
    version,
    about = "runtimed as an OCI runtime (runc's command line)",
    after_help = "Exit status: 0 on success; 1 on any error (one line on stderr, and in --log); \
`run` exits with the container's status (128+N for a signal N). See docs/oci.md."
)]
struct OciCli {
    /// Directory of the containers' state.
    #[arg(long, default_value = state::DEFAULT_ROOT)]
    root: PathBuf,
    /// Also write errors (and --debug messages) to this file.
    #[arg(long)]
    log: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[arg(long)]
    debug: bool,
    /// Systemd-managed cgroups: not supported (refused).
    #[arg(long)]
    systemd_cgroup: bool,
    /// Accepted for go-runc's sake; checkpointing is not supported.
    #[arg(long, hide = true)]
    criu: Option<String>,
    /// `--rootless=true|false|auto`: runtimed runs as root; only
    /// false/auto are accepted.
    #[arg(long, require_equals = true, num_args = 0..=1, default_missing_value = "true")]
    rootless: Option<String>,
    /// Do not add a user namespace with a fresh host uid range when the
    /// config asks for none: the container's ids are the host's (as runc).
    #[arg(long)]
    no_uid_range: bool,
    #[command(subcommand)]
    command: OciCommand,
}

#[derive(Subcommand, Debug)]
enum OciCommand {
    /// Create a container: set it up and leave it waiting for `start`.
    Create(create::CreateArgs),
    /// Start the program of a created container.
    Start(IdArg),
    /// Create, start and wait for a container; exit with its status.
    Run(create::RunArgs),
    /// Print a container's state as JSON.
    State(IdArg),
    /// Send a signal to a container's init (or, with --all, every process).
    Kill(manage::KillArgs),
    /// Delete a container (--force: also a running one).
    Delete(manage::DeleteArgs),
    /// List containers.
    #[command(alias = "ps-all")]
    List(manage::ListArgs),
    /// Write a default config.json.
    Spec(info::SpecArgs),
    /// Print what this runtime supports, as JSON.
    Features,
    /// Run a new process in a created or running container.
    Exec(exec::ExecArgs),
    /// List the processes of a container (host pids).
    Ps(stats::PsArgs),
    /// A container's resource usage (--stats) or a stream of events.
    Events(stats::EventsArgs),
    /// Change a running container's limits.
    Update(update::UpdateArgs),
    /// Freeze every process of a container.
    Pause(IdArg),
    /// Thaw a paused container.
    Resume(IdArg),
}

#[derive(clap::Args, Debug)]
pub struct IdArg {
    pub id: String,
}

/// What every command gets: the state root, the log, the options.
pub struct Context {
    pub root: Root,
    pub log: Log,
    /// A fresh host uid range for the container (the default), or the
    /// host's ids (`--no-uid-range`, or `uid_range = false` in the
    /// runtime class's config section).
    pub uid_range: bool,
}

/// Runs the OCI runtime with `args` (without the program name and the
/// `oci` word) and returns the exit status. `invoked_as` is argv[0]'s
/// basename. Must run before any thread exists: `create` and `run` clone
/// the container.
pub fn main(invoked_as: &str, args: Vec<OsString>, single: &sandbox::SingleThreaded) -> i32 {
    let argv = std::iter::once(OsString::from(invoked_as)).chain(args);
    let cli = match OciCli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return 0;
            }
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("runtimed-runc: {first}");
            return EXIT_ERROR;
        }
    };
    let log = Log {
        file: cli.log.clone(),
        format: cli.log_format,
        debug: cli.debug,
    };
    let ctx = match context(&cli, invoked_as, log.clone()) {
        Ok(c) => c,
        Err(e) => {
            log.error(&e.to_string());
            return EXIT_ERROR;
        }
    };
    let result = match cli.command {
        OciCommand::Create(a) => create::create(&ctx, &a, single),
        OciCommand::Start(a) => create::start(&ctx, &a.id, single),
        OciCommand::Run(a) => create::run(&ctx, &a, single),
        OciCommand::State(a) => manage::state(&ctx, &a.id),
        OciCommand::Kill(a) => manage::kill(&ctx, &a),
        OciCommand::Delete(a) => manage::delete(&ctx, &a),
        OciCommand::List(a) => manage::list(&ctx, &a),
        OciCommand::Spec(a) => info::spec(&a),
        OciCommand::Features => info::features(),
        OciCommand::Exec(a) => exec::exec(&ctx, &a, single),
        OciCommand::Ps(a) => stats::ps(&ctx, &a),
        OciCommand::Events(a) => stats::events(&ctx, &a),
        OciCommand::Update(a) => update::update(&ctx, &a),
        OciCommand::Pause(a) => freezer::pause(&ctx, &a.id),
        OciCommand::Resume(a) => freezer::resume(&ctx, &a.id),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            ctx.log.error(&e.to_string());
            EXIT_ERROR
        }
    }
}

fn context(cli: &OciCli, invoked_as: &str, log: Log) -> Result<Context, OciError> {
    if cli.systemd_cgroup {
        return Err(OciError::Usage(
            "--systemd-cgroup is not supported: use cgroupfs paths (docs/oci.md)".into(),
        ));
    }
    match cli.rootless.as_deref() {
        None | Some("false") | Some("auto") => {}
        Some(other) => {
            return Err(OciError::Usage(format!(
                "--rootless={other} is not supported: runtimed runs as root and adds its \
                 own user namespace"
            )))
        }
    }
    let root = if cli.root.is_absolute() {
        cli.root.clone()
    } else {
        std::env::current_dir()
            .map_err(io_err("the current directory"))?
            .join(&cli.root)
    };
    let config = load_config()?;
    let class = config.runtime.get(invoked_as);
    let uid_range = !cli.no_uid_range && class.and_then(|c| c.uid_range).unwrap_or(true);
    Ok(Context {
        root: Root::new(root),
        log,
        uid_range,
    })
}
