//! `state`, `list`, `kill` and `delete`: commands on containers that
//! exist, each reading the state `create` left (see `state`).

use std::io::Write;
use std::os::fd::AsFd;
use std::path::Path;

use super::hooks::{self, Stage};
use super::state::{PublicState, Status};
use super::{io_err, sys_err, Context, OciError};

/// `state ID`: runc's JSON, indented.
pub fn state(ctx: &Context, id: &str) -> Result<i32, OciError> {
    let (state, status) = ctx.root.peek(id)?;
    print_json(&state.public(status))?;
    Ok(0)
}

fn print_json(v: &impl serde::Serialize) -> Result<(), OciError> {
    let text = serde_json::to_string_pretty(v).map_err(|e| OciError::Sandbox(e.to_string()))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").map_err(io_err("write to stdout"))
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// `table` or `json`.
    #[arg(long, short = 'f', default_value = "table")]
    pub format: ListFormat,
    /// Ids only.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

/// `list`: every container with a readable state (one being created, or
/// whose state is unreadable, is left out, as runc does).
pub fn list(ctx: &Context, args: &ListArgs) -> Result<i32, OciError> {
    let mut all: Vec<PublicState> = Vec::new();
    for id in ctx.root.ids()? {
        if let Ok((state, status)) = ctx.root.peek(&id) {
            all.push(state.public(status));
        }
    }
    if args.quiet {
        let mut out = std::io::stdout().lock();
        for s in &all {
            writeln!(out, "{}", s.id).map_err(io_err("write to stdout"))?;
        }
        return Ok(0);
    }
    match args.format {
        ListFormat::Json => print_json(&all)?,
        ListFormat::Table => {
            let mut out = std::io::stdout().lock();
            let w = all.iter().map(|s| s.id.len()).max().unwrap_or(2).max(2);
            writeln!(
                out,
                "{:w$}   {:<10} {:<10} {:<40} {:<30} OWNER",
                "ID", "PID", "STATUS", "BUNDLE", "CREATED"
            )
            .map_err(io_err("write to stdout"))?;
            for s in &all {
                writeln!(
                    out,
                    "{:w$}   {:<10} {:<10} {:<40} {:<30} {}",
                    s.id,
                    s.pid,
                    s.status.as_str(),
                    s.bundle.display(),
                    s.created,
                    s.owner
                )
                .map_err(io_err("write to stdout"))?;
            }
        }
    }
    Ok(0)
}

#[derive(clap::Args, Debug)]
pub struct KillArgs {
    /// Every process of the container's cgroup, not only its init.
    #[arg(long, short = 'a')]
    pub all: bool,
    pub id: String,
    /// A name (TERM, SIGTERM) or a number; default SIGTERM.
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

/// A signal by name (with or without `SIG`, any case) or number.
pub fn parse_signal(text: &str) -> Result<nix::sys::signal::Signal, OciError> {
    use std::str::FromStr;
    let bad = || OciError::Usage(format!("invalid signal {text:?}"));
    if let Ok(n) = text.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(n).map_err(|_| bad());
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    nix::sys::signal::Signal::from_str(&name).map_err(|_| bad())
}

/// `kill ID [SIGNAL]`: to init through a pidfd (never a recycled pid);
/// with `--all`, to every process of the cgroup, each pinned by a pidfd.
pub fn kill(ctx: &Context, args: &KillArgs) -> Result<i32, OciError> {
    let sig = parse_signal(&args.signal)?;
    let c = ctx.root.open(&args.id, false)?;
    let state = c.state()?;
    let status = state.status(&c.dir);
    if status == Status::Stopped && !args.all {
        return Err(OciError::WrongStatus {
            id: args.id.clone(),
            status: status.as_str(),
            action: "container not running",
        });
    }
    if args.all {
        for pid in cgroup_pids(&state.cgroup_paths) {
            if let Ok(fd) = sandbox::process::signals::pidfd_open(pid) {
                // Still in the cgroup after the pidfd pinned it: ours.
                if cgroup_pids(&state.cgroup_paths).contains(&pid) {
                    let _ = sandbox::process::signals::pidfd_send_signal(fd.as_fd(), sig as i32);
                }
            }
        }
        return Ok(0);
    }
    let Some(fd) = state.pidfd() else {
        return Err(OciError::WrongStatus {
            id: args.id.clone(),
            status: Status::Stopped.as_str(),
            action: "container not running",
        });
    };
    sandbox::process::signals::pidfd_send_signal(fd.as_fd(), sig as i32)
        .map_err(sys_err(format!("signal the container {}", args.id)))?;
    Ok(0)
}

/// Every pid listed in the cgroup's directories.
fn cgroup_pids(paths: &[std::path::PathBuf]) -> Vec<i32> {
    let mut pids: Vec<i32> = paths
        .iter()
        .filter_map(|p| std::fs::read_to_string(p.join("cgroup.procs")).ok())
        .flat_map(|t| {
            t.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    /// Also a running or paused container (killed first).
    #[arg(long, short = 'f')]
    pub force: bool,
    pub id: String,
}

/// `delete [--force] ID`.
pub fn delete(ctx: &Context, args: &DeleteArgs) -> Result<i32, OciError> {
    delete_now(ctx, &args.id, args.force).map(|()| 0)
}

/// Removes a container: refused while running or paused unless `force`;
/// kills what is left (the whole cgroup), removes the cgroup, the uid
/// lease and the state directory, then runs the poststop hooks. A missing
/// container is an error without `force` (runc's "does not exist"), and
/// nothing to do with it.
pub fn delete_now(ctx: &Context, id: &str, force: bool) -> Result<(), OciError> {
    let c = match ctx.root.open(id, true) {
        Ok(c) => c,
        Err(super::StateError::NotFound(_)) if force => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let state = match c.state() {
        Ok(s) => s,
        // A create that died before writing its state (it holds the lock
        // until it wrote it or cleaned up, so it is gone): its container
        // may be left, blocked before its program, in the cgroup named
        // after the id; its uid lease names the directory.
        Err(super::StateError::NotFound(_)) => {
            sandbox::process::spawn::remove_container(
                Path::new(sandbox::options::defaults::RUN_DIR),
                &super::create::sandbox_id(id),
                &[],
                None,
            )
            .map_err(|e| OciError::Sandbox(e.to_string()))?;
            sandbox::userns::release_owned_by(
                &Path::new(sandbox::options::defaults::RUN_DIR).join("uidpool"),
                &c.dir,
            )
            .map_err(|e| OciError::Sandbox(e.to_string()))?;
            c.remove()?;
            return if force {
                Ok(())
            } else {
                Err(super::StateError::NotFound(id.into()).into())
            };
        }
        Err(e) => return Err(e.into()),
    };
    let status = state.status(&c.dir);
    if matches!(status, Status::Running | Status::Paused) && !force {
        return Err(OciError::WrongStatus {
            id: id.into(),
            status: status.as_str(),
            action: "cannot delete a container that is not stopped without --force",
        });
    }
    let spec = c.config().ok();
    // A frozen v1 task does not die of SIGKILL until thawed.
    super::freezer::thaw_for_delete(&state);
    sandbox::process::spawn::remove_container(
        Path::new(sandbox::options::defaults::RUN_DIR),
        &state.sandbox_id,
        &state.cgroup_paths,
        state.uid_lease.map(|r| (r.host_base, c.dir.as_path())),
    )
    .map_err(|e| OciError::Sandbox(e.to_string()))?;
    c.remove()?;
    if let Some(spec) = spec {
        let public = state.public(Status::Stopped);
        if let Err(e) = hooks::run_stage(&spec, Stage::Poststop, &public, &ctx.log) {
            // runtime-spec: a failing poststop hook is logged, delete goes on.
            ctx.log.warn(&format!("poststop: {e}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("KILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("sigterm").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("SIGUSR1").unwrap(), Signal::SIGUSR1);
        for bad in ["", "0x9", "NOPE", "999", "-1"] {
            assert!(parse_signal(bad).is_err(), "{bad}");
        }
    }
}
