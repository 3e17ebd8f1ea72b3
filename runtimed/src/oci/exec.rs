//! `exec`: a new process in a created or running container, as
//! containerd-shim-runc-v2 asks for one (`exec --process FILE --detach
//! --pid-file F [--console-socket S] ID`) and as a user types it (`exec
//! [--tty] [--env K=V] [--cwd D] [--user U[:G]] [--cap CAP] ID CMD...`).
//!
//! The process is the container's config with its `process` replaced
//! (runc's rule: `--process` replaces it whole, the inline form starts
//! from the config's process and changes the given fields), planned with
//! the options `create` used, and started by the sandbox crate
//! (`sandbox::process::join`): the container's cgroup, namespaces, root,
//! then the same program steps as the container's own program.
//!
//! Without `--detach` we wait and exit with the process's status (128+N
//! for a signal N); the process is our child through
//! `PR_SET_CHILD_SUBREAPER`, as the joiner that forked it exits at once.
//! With `--detach` we return after the exec: the engine's shim, a
//! subreaper, inherits the process and reaps it.

use std::io::Read;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::str::FromStr;

use oci_spec::runtime::{Capability, Process, Spec};

use super::state::Status;
use super::{io_err, sys_err, Context, OciError};

/// Largest `--process` file read (a process.json is well under a KiB).
const MAX_PROCESS_BYTES: u64 = 1 << 20;

#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// A process.json (runtime-spec `process`): replaces the config's.
    #[arg(long, short = 'p')]
    pub process: Option<PathBuf>,
    /// Return once the process runs; do not wait for it.
    #[arg(long, short = 'd')]
    pub detach: bool,
    /// Write the process's host pid here.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// A Unix socket to send the terminal's master to.
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Give the process a terminal (inline form).
    #[arg(long, short = 't')]
    pub tty: bool,
    /// Working directory inside the container (inline form).
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// `KEY=VALUE` added to the environment (inline form; repeatable).
    #[arg(long, short = 'e')]
    pub env: Vec<String>,
    /// `UID[:GID]` inside the container (inline form).
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// Additional group ids (inline form; repeatable).
    #[arg(long = "additional-gids", short = 'g')]
    pub additional_gids: Vec<u32>,
    /// A capability added to every set (inline form; repeatable).
    #[arg(long)]
    pub cap: Vec<String>,
    /// Set no_new_privs (always set by runtimed; accepted for runc's sake).
    #[arg(long)]
    pub no_new_privs: bool,
    /// An AppArmor profile: runtimed applies none (as create).
    #[arg(long)]
    pub apparmor: Option<String>,
    /// An SELinux label: not supported.
    #[arg(long)]
    pub process_label: Option<String>,
    /// Extra fds to pass: not supported beyond 0.
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    pub id: String,
    /// The command (inline form).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `exec`: 0 (detached) or the process's status.
pub fn exec(
    ctx: &Context,
    args: &ExecArgs,
    single: &sandbox::SingleThreaded,
) -> Result<i32, OciError> {
    check_flags(args)?;
    let c = ctx.root.open(&args.id, false)?;
    let state = c.state()?;
    let status = state.status(&c.dir);
    match status {
        Status::Created | Status::Running => {}
        // A frozen cgroup would freeze the joining child in it.
        Status::Paused | Status::Stopped | Status::Creating => {
            return Err(OciError::WrongStatus {
                id: args.id.clone(),
                status: status.as_str(),
                action: "cannot exec in a container that is not running",
            })
        }
    }
    let config = c.config()?;
    let process = exec_process(&config, args)?;
    let terminal = process.terminal().unwrap_or(false);
    if terminal && args.console_socket.is_none() {
        return Err(OciError::Usage(
            "a terminal (process.terminal or --tty) needs --console-socket".into(),
        ));
    }
    if !terminal && args.console_socket.is_some() {
        return Err(OciError::Usage(
            "--console-socket needs a terminal (process.terminal or --tty)".into(),
        ));
    }
    let mut spec: Spec = config;
    spec.set_process(Some(process));
    let Some(pidfd) = state.pidfd() else {
        return Err(OciError::WrongStatus {
            id: args.id.clone(),
            status: Status::Stopped.as_str(),
            action: "cannot exec in a container that is not running",
        });
    };
    if !args.detach {
        // The joiner exits right after forking the process: its orphan
        // comes to us, to be waited for.
        nix::sys::prctl::set_child_subreaper(true).map_err(sys_err("become a subreaper"))?;
    }
    // host_ids shapes a new user namespace's lease only; exec joins the
    // container's existing one (merge of ocicore and ociexec).
    let opts = super::create::run_options(&state.sandbox_id, &c.fifo_path(), false, None);
    let target = sandbox::process::join::Target {
        init_pid: state.pid,
        init_pidfd: pidfd.as_fd(),
        cgroup_paths: &state.cgroup_paths,
    };
    let joined = sandbox::process::join::exec(&target, &spec, &opts, single)
        .map_err(|e| OciError::Sandbox(format!("exec in container {}: {e}", args.id)))?;
    // From here the process runs: a later failure kills it, so the caller
    // is never left with a process it does not know of.
    let kill = |e: OciError| {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(joined.pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        if !args.detach {
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(joined.pid), None);
        }
        e
    };
    if let Some(path) = &args.console_socket {
        let Some(master) = &joined.pty_master else {
            return Err(kill(OciError::Sandbox(
                "the process opened no terminal".into(),
            )));
        };
        super::create::send_console(path, master).map_err(kill)?;
    }
    drop(joined.pty_master);
    if let Some(p) = &args.pid_file {
        super::create::write_pid_file(p, joined.pid).map_err(kill)?;
    }
    // Other commands (delete, kill) may go on while we wait.
    drop(c);
    if args.detach {
        return Ok(0);
    }
    wait_for(joined.pid)
}

/// The process's exit status: its code, or 128+N for a signal N.
fn wait_for(pid: i32) -> Result<i32, OciError> {
    use nix::sys::wait::{waitpid, WaitStatus};
    loop {
        match waitpid(nix::unistd::Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(sys_err("wait for the process")(e)),
        }
    }
}

/// Flags refused or contradictory, before anything is read.
fn check_flags(args: &ExecArgs) -> Result<(), OciError> {
    if args.preserve_fds > 0 {
        return Err(OciError::Usage("--preserve-fds is not supported".into()));
    }
    if args.process_label.is_some() {
        return Err(OciError::Usage(
            "--process-label is not supported: runtimed applies no SELinux label".into(),
        ));
    }
    if args.tty && args.console_socket.is_none() {
        return Err(OciError::Usage("--tty needs --console-socket".into()));
    }
    let inline = args.tty
        || args.cwd.is_some()
        || !args.env.is_empty()
        || args.user.is_some()
        || !args.additional_gids.is_empty()
        || !args.cap.is_empty()
        || args.apparmor.is_some();
    match (&args.process, args.command.is_empty()) {
        (Some(_), false) => Err(OciError::Usage(
            "give either --process or a command, not both".into(),
        )),
        (Some(_), true) if inline => Err(OciError::Usage(
            "--tty, --cwd, --env, --user, --additional-gids, --cap and --apparmor are for the \
             inline form, not --process"
                .into(),
        )),
        (None, true) => Err(OciError::Usage(
            "exec needs --process FILE or a command".into(),
        )),
        _ => Ok(()),
    }
}

/// The process to start: `--process`'s, or the config's changed by the
/// inline flags.
fn exec_process(config: &Spec, args: &ExecArgs) -> Result<Process, OciError> {
    if let Some(path) = &args.process {
        return read_process(path);
    }
    let mut p = config.process().clone().unwrap_or_default();
    p.set_args(Some(args.command.clone()));
    p.set_terminal(Some(args.tty));
    p.set_console_size(None);
    if let Some(cwd) = &args.cwd {
        if !cwd.is_absolute() {
            return Err(OciError::Usage(format!(
                "--cwd {}: must be an absolute path",
                cwd.display()
            )));
        }
        p.set_cwd(cwd.clone());
    }
    if !args.env.is_empty() {
        let mut env = p.env().clone().unwrap_or_default();
        for e in &args.env {
            if !e.contains('=') {
                return Err(OciError::Usage(format!("--env {e:?}: expected KEY=VALUE")));
            }
            env.push(e.clone());
        }
        p.set_env(Some(env));
    }
    let mut user = p.user().clone();
    if let Some(u) = &args.user {
        let (uid, gid) = parse_user(u)?;
        user.set_uid(uid);
        if let Some(gid) = gid {
            user.set_gid(gid);
        }
    }
    if !args.additional_gids.is_empty() {
        user.set_additional_gids(Some(args.additional_gids.clone()));
    }
    p.set_user(user);
    if !args.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for name in &args.cap {
            let cap = Capability::from_str(name)
                .map_err(|_| OciError::Usage(format!("--cap {name:?}: unknown capability")))?;
            let add = |set: &Option<oci_spec::runtime::Capabilities>| {
                let mut s = set.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            let (b, e, pe, i, a) = (
                add(caps.bounding()),
                add(caps.effective()),
                add(caps.permitted()),
                add(caps.inheritable()),
                add(caps.ambient()),
            );
            caps.set_bounding(b);
            caps.set_effective(e);
            caps.set_permitted(pe);
            caps.set_inheritable(i);
            caps.set_ambient(a);
        }
        p.set_capabilities(Some(caps));
    }
    if args.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(profile) = &args.apparmor {
        p.set_apparmor_profile(Some(profile.clone()));
    }
    Ok(p)
}

/// `UID[:GID]`, numbers only (names would be looked up in the
/// container's /etc/passwd, which is the tenant's to forge).
fn parse_user(text: &str) -> Result<(u32, Option<u32>), OciError> {
    let bad = || OciError::Usage(format!("--user {text:?}: expected UID[:GID] as numbers"));
    let (uid, gid) = match text.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (text, None),
    };
    let uid = uid.parse().map_err(|_| bad())?;
    let gid = gid.map(|g| g.parse().map_err(|_| bad())).transpose()?;
    Ok((uid, gid))
}

/// A `--process` file: runtime-spec `process` JSON, bounded in size.
fn read_process(path: &std::path::Path) -> Result<Process, OciError> {
    let file =
        std::fs::File::open(path).map_err(io_err(format!("--process {}", path.display())))?;
    let mut bytes = Vec::new();
    file.take(MAX_PROCESS_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err(format!("--process {}", path.display())))?;
    if bytes.len() as u64 > MAX_PROCESS_BYTES {
        return Err(OciError::Usage(format!(
            "--process {}: larger than {MAX_PROCESS_BYTES} bytes",
            path.display()
        )));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| OciError::Usage(format!("--process {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct T {
        #[command(flatten)]
        a: ExecArgs,
    }

    fn args(v: &[&str]) -> ExecArgs {
        T::try_parse_from(std::iter::once("x").chain(v.iter().copied()))
            .unwrap()
            .a
    }

    #[test]
    fn users_are_numbers() {
        assert_eq!(parse_user("0").unwrap(), (0, None));
        assert_eq!(parse_user("1000:100").unwrap(), (1000, Some(100)));
        for bad in ["", "root", "1:", ":1", "1:2:3", "-1"] {
            assert!(parse_user(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_inline_form_changes_the_configs_process() {
        let config = Spec::default();
        let a = args(&[
            "--env", "A=1", "--cwd", "/tmp", "--user", "7:8", "--cap", "CAP_KILL", "box", "sh",
            "-c", "echo hi",
        ]);
        check_flags(&a).unwrap();
        let p = exec_process(&config, &a).unwrap();
        assert_eq!(p.args().as_deref().unwrap(), ["sh", "-c", "echo hi"]);
        assert!(p.env().as_ref().unwrap().contains(&"A=1".to_string()));
        // The config's environment stays under the additions.
        assert!(p
            .env()
            .as_ref()
            .unwrap()
            .iter()
            .any(|e| e.starts_with("PATH=")));
        assert_eq!(p.cwd(), std::path::Path::new("/tmp"));
        assert_eq!((p.user().uid(), p.user().gid()), (7, 8));
        let caps = p.capabilities().as_ref().unwrap();
        assert!(caps
            .effective()
            .as_ref()
            .unwrap()
            .contains(&Capability::Kill));
        assert_eq!(p.terminal(), Some(false));
    }

    #[test]
    fn contradictory_flags_are_refused() {
        for bad in [
            &["box"][..],
            &["--process", "/p", "box", "sh"],
            &["--process", "/p", "--env", "A=1", "box"],
            &["--tty", "box", "sh"],
            &["--preserve-fds", "1", "box", "sh"],
        ] {
            assert!(check_flags(&args(bad)).is_err(), "{bad:?}");
        }
        let a = args(&["box", "sh", "--env", "A"]);
        // After the command, flags belong to it.
        assert_eq!(a.command, ["sh", "--env", "A"]);
        assert!(exec_process(&Spec::default(), &args(&["-e", "NOEQ", "box", "sh"])).is_err());
        assert!(exec_process(&Spec::default(), &args(&["--cwd", "rel", "box", "sh"])).is_err());
        assert!(
            exec_process(&Spec::default(), &args(&["--cap", "CAP_NOPE", "box", "sh"])).is_err()
        );
    }
}
