//! `pause` and `resume`: the cgroup freezer, waited on until the kernel
//! says every process is frozen (or thawed), as runc does; `state` then
//! reports `paused` (it reads the same files).
//!
//! v2: `cgroup.freeze`, and `frozen 1` in `cgroup.events`. v1: the freezer
//! is a hierarchy of its own, which the sandbox does not join (it uses
//! memory, pids, cpu and cpuacct). The first `pause` makes the container a
//! freezer cgroup below ours, moves every process of the container into
//! it (until a listing finds none left outside: a process forked meanwhile
//! is born in its parent's freezer cgroup once the parent was moved) and
//! records the directory with the others in the state, so `ps`, `kill
//! --all` and `delete` see it; `delete` thaws before it kills (a frozen v1
//! task does not die until thawed).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::cgroups::{self, Controller, Dirs};
use super::state::{State, Status};
use super::{Context, OciError};

/// How long the freezer may take (a process in an uninterruptible sleep
/// holds FREEZING; runc retries for about as long).
const FREEZE_WAIT: Duration = Duration::from_secs(30);

/// The v1 freezer parent below our own freezer cgroup.
const V1_PARENT: &str = "runtimed-oci";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    Frozen,
    Thawed,
}

/// `pause ID`.
pub fn pause(ctx: &Context, id: &str) -> Result<i32, OciError> {
    let c = ctx.root.open(id, false)?;
    let mut state = c.state()?;
    let status = state.status(&c.dir);
    if status != Status::Running {
        return Err(OciError::WrongStatus {
            id: id.into(),
            status: status.as_str(),
            action: "only a running container can be paused",
        });
    }
    let dirs = Dirs::new(&state.cgroup_paths);
    let dir = match dirs.dir(Controller::Freezer) {
        Some(d) => d.to_path_buf(),
        None if dirs.v2 => {
            return Err(OciError::Usage(
                "pause: this kernel has no cgroup.freeze (5.2+)".into(),
            ))
        }
        None => {
            let dir = v1_freezer_dir(&state.sandbox_id)?;
            // Recorded before anything moves, so a failure below still
            // leaves `delete` the directory to remove.
            state.cgroup_paths.push(dir.clone());
            c.save(&state)?;
            move_all(&dirs, &dir)?;
            dir
        }
    };
    if let Err(e) = set(&dir, dirs.v2, Want::Frozen) {
        // Half frozen helps nobody: thaw and report.
        let _ = set(&dir, dirs.v2, Want::Thawed);
        return Err(e);
    }
    Ok(0)
}

/// `resume ID`.
pub fn resume(ctx: &Context, id: &str) -> Result<i32, OciError> {
    let c = ctx.root.open(id, false)?;
    let state = c.state()?;
    let status = state.status(&c.dir);
    if status != Status::Paused {
        return Err(OciError::WrongStatus {
            id: id.into(),
            status: status.as_str(),
            action: "only a paused container can be resumed",
        });
    }
    let dirs = Dirs::new(&state.cgroup_paths);
    let dir = dirs.need(Controller::Freezer, "resume")?;
    set(dir, dirs.v2, Want::Thawed)?;
    Ok(0)
}

/// Thaws the container's freezer cgroup if it has one (before `delete`
/// kills it); errors are left to the removal that follows.
pub fn thaw_for_delete(state: &State) {
    let dirs = Dirs::new(&state.cgroup_paths);
    if let Some(dir) = dirs.dir(Controller::Freezer) {
        let _ = set(dir, dirs.v2, Want::Thawed);
    }
}

/// Writes the freezer's state and waits until the kernel reports it.
fn set(dir: &Path, v2: bool, want: Want) -> Result<(), OciError> {
    let deadline = Instant::now() + FREEZE_WAIT;
    let mut poll = Duration::from_millis(1);
    loop {
        if v2 {
            cgroups::write(
                &dir.join("cgroup.freeze"),
                if want == Want::Frozen { "1" } else { "0" },
            )?;
        } else {
            // v1: FREEZING can stay when a task was forked during the
            // freeze; writing FROZEN again retries (runc does the same).
            cgroups::write(
                &dir.join("freezer.state"),
                if want == Want::Frozen {
                    "FROZEN"
                } else {
                    "THAWED"
                },
            )?;
        }
        if reached(dir, v2, want)? {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(OciError::Sandbox(format!(
                "the container's processes were not {} within {FREEZE_WAIT:?}",
                if want == Want::Frozen {
                    "frozen"
                } else {
                    "thawed"
                }
            )));
        }
        std::thread::sleep(poll);
        poll = (poll * 2).min(Duration::from_millis(50));
    }
}

fn reached(dir: &Path, v2: bool, want: Want) -> Result<bool, OciError> {
    if v2 {
        let frozen = cgroups::read_keyed(&dir.join("cgroup.events"))?
            .into_iter()
            .any(|(k, v)| k == "frozen" && v == 1);
        Ok(frozen == (want == Want::Frozen))
    } else {
        let text = cgroups::read(&dir.join("freezer.state"))?;
        Ok(match want {
            Want::Frozen => text == "FROZEN",
            Want::Thawed => text == "THAWED",
        })
    }
}

/// `<freezer mount><our freezer cgroup>/runtimed-oci/<sandbox id>`, made.
fn v1_freezer_dir(sandbox_id: &str) -> Result<PathBuf, OciError> {
    let mount = v1_freezer_mount()?;
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(super::io_err("read /proc/self/cgroup"))?
        .lines()
        .find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            controllers
                .split(',')
                .any(|c| c == "freezer")
                .then(|| path.to_string())
        })
        .ok_or_else(|| OciError::Usage("pause: this host has no cgroup freezer".into()))?;
    let dir = mount
        .join(own.trim_start_matches('/'))
        .join(V1_PARENT)
        .join(sandbox_id);
    std::fs::create_dir_all(&dir).map_err(super::io_err("make the container's freezer cgroup"))?;
    Ok(dir)
}

/// The v1 freezer hierarchy's mount point (from /proc/self/mountinfo).
fn v1_freezer_mount() -> Result<PathBuf, OciError> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(super::io_err("read /proc/self/mountinfo"))?;
    info.lines()
        .find_map(|l| {
            // `... mount_point ... - cgroup source super_options`
            let (left, right) = l.split_once(" - ")?;
            let mut r = right.split_whitespace();
            let (fstype, _, opts) = (r.next()?, r.next()?, r.next()?);
            let on_freezer = fstype == "cgroup" && opts.split(',').any(|o| o == "freezer");
            let point = left.split_whitespace().nth(4)?;
            on_freezer.then(|| PathBuf::from(point))
        })
        .ok_or_else(|| OciError::Usage("pause: this host has no cgroup freezer".into()))
}

/// Moves every process of the container into `freezer` until a listing
/// finds none outside it.
fn move_all(dirs: &Dirs, freezer: &Path) -> Result<(), OciError> {
    let deadline = Instant::now() + FREEZE_WAIT;
    loop {
        let inside: Vec<i32> = Dirs::new(&[freezer.to_path_buf()]).pids();
        let outside: Vec<i32> = dirs
            .pids()
            .into_iter()
            .filter(|p| inside.binary_search(p).is_err())
            .collect();
        if outside.is_empty() {
            return Ok(());
        }
        for pid in outside {
            // A process that exited meanwhile is ESRCH: nothing to move.
            let _ = std::fs::write(freezer.join("cgroup.procs"), pid.to_string());
        }
        if Instant::now() > deadline {
            return Err(OciError::Sandbox(
                "the container's processes could not all be moved into its freezer cgroup".into(),
            ));
        }
    }
}
