//! The system calls of the child's steps behind two traits: [`MountOps`]
//! (the mount steps) and [`Syscalls`] (everything else PID 1 and the
//! program's steps call before `execve`). [`Linux`] makes them,
//! [`Recorder`] records them (and can fail one) so the order and error
//! reporting of the steps are unit-tested without root.

#[cfg(test)]
use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::{BorrowedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};

/// A mount point resolved inside a root: mount onto `target`. With the
/// real system calls `target` is `/proc/self/fd/N` of an O_PATH fd held
/// here, so no later path walk can be redirected by a symlink.
#[derive(Debug)]
pub struct MountPoint {
    pub target: PathBuf,
    _fd: Option<std::os::fd::OwnedFd>,
}

/// What is at a mount point of a root (its final component, not followed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PointKind {
    Absent,
    Dir,
    File,
    /// A symlink, with its target.
    Symlink(PathBuf),
    /// A FIFO, socket or device node.
    Other,
}

/// What the mount steps need from the kernel.
pub trait MountOps {
    /// What `dest` (absolute, inside the sandbox) is below `root`: its
    /// parent directories resolved inside the root as [`Self::mount_point`]
    /// resolves them, its final component looked at without following it.
    /// `Absent` when it or a parent directory does not exist.
    fn point_kind(&mut self, root: &Path, dest: &Path) -> Result<PointKind, Errno>;
    /// Resolves `dest` (absolute, inside the sandbox) below `root` as if
    /// `root` were `/` (symlinks in the root's own tree cannot lead out of
    /// it: openat2 RESOLVE_IN_ROOT), creating missing directories and, when
    /// `dir` is false, the final file.
    fn mount_point(&mut self, root: &Path, dest: &Path, dir: bool) -> Result<MountPoint, Errno>;
    fn mount(
        &mut self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<(), Errno>;
    /// `umount2(target, MNT_DETACH)`.
    fn detach(&mut self, target: &Path) -> Result<(), Errno>;
    /// `chdir(dir)`, `pivot_root(".", ".")`: the old root ends up on top of
    /// the new one, to be detached.
    fn pivot_root_into(&mut self, dir: &Path) -> Result<(), Errno>;
    fn chdir(&mut self, dir: &Path) -> Result<(), Errno>;
    /// `mkdir -p` with `mode` for the directories made.
    fn mkdir_all(&mut self, path: &Path, mode: u32) -> Result<(), Errno>;
    /// Creates (or truncates) a file with these contents (mode 0644).
    fn write_file(&mut self, path: &Path, contents: &[u8]) -> Result<(), Errno>;
    /// Creates an empty file as a mount point, keeping one that exists.
    fn touch(&mut self, path: &Path) -> Result<(), Errno>;
    fn symlink(&mut self, target: &Path, link: &Path) -> Result<(), Errno>;
    /// Flags of the mount at `path` that a bind remount must keep.
    fn locked_flags(&mut self, path: &Path) -> MsFlags;
    /// Attaches a detached mount tree (an fd from open_tree) on `point`.
    fn attach_tree(&mut self, tree: RawFd, point: &MountPoint) -> Result<(), Errno>;
}

fn io_errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// The real system calls.
pub struct Linux;

/// openat2(2) flags that keep a walk inside the directory fd it starts from.
fn in_root(flags: nix::fcntl::OFlag) -> nix::fcntl::OpenHow {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

impl MountOps for Linux {
    fn point_kind(&mut self, root: &Path, dest: &Path) -> Result<PointKind, Errno> {
        use nix::fcntl::{open, openat2, readlinkat, AtFlags, OFlag};
        use nix::sys::stat::{fstatat, Mode, SFlag};
        let (Some(parent), Some(name)) = (dest.parent(), dest.file_name()) else {
            // `/` itself: the root, a directory.
            return Ok(PointKind::Dir);
        };
        let root_fd = open(
            root,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let rel = Path::new(".").join(parent.strip_prefix("/").unwrap_or(parent));
        let dir = match openat2(&root_fd, &rel, in_root(OFlag::O_PATH | OFlag::O_DIRECTORY)) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(PointKind::Absent),
            Err(e) => return Err(e),
        };
        let st = match fstatat(&dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => return Ok(PointKind::Absent),
            Err(e) => return Err(e),
        };
        let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
        Ok(match kind {
            SFlag::S_IFDIR => PointKind::Dir,
            SFlag::S_IFREG => PointKind::File,
            SFlag::S_IFLNK => PointKind::Symlink(
                readlinkat(&dir, name)
                    .map(PathBuf::from)
                    .unwrap_or_default(),
            ),
            _ => PointKind::Other,
        })
    }

    fn mount_point(&mut self, root: &Path, dest: &Path, dir: bool) -> Result<MountPoint, Errno> {
        use nix::fcntl::{open, openat, openat2, OFlag};
        use nix::sys::stat::{mkdirat, Mode};
        use std::os::fd::AsRawFd;
        let root_fd = open(
            root,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let how = in_root;
        let names: Vec<&std::ffi::OsStr> = dest
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(n) => Some(n),
                _ => None,
            })
            .collect();
        let mut walked = PathBuf::from(".");
        for (i, name) in names.iter().enumerate() {
            let last = i + 1 == names.len();
            let parent = openat2(&root_fd, &walked, how(OFlag::O_PATH | OFlag::O_DIRECTORY))?;
            if !last || dir {
                match mkdirat(&parent, *name, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(e),
                }
            } else {
                // O_NOFOLLOW: an existing symlink is left alone here and
                // resolved (inside the root) by the openat2 below.
                match openat(
                    &parent,
                    *name,
                    OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o644),
                ) {
                    Ok(_) | Err(Errno::ELOOP | Errno::EISDIR | Errno::EROFS | Errno::EACCES) => {}
                    Err(e) => return Err(e),
                }
            }
            walked.push(name);
        }
        let fd = openat2(&root_fd, &walked, how(OFlag::O_PATH))?;
        Ok(MountPoint {
            target: PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())),
            _fd: Some(fd),
        })
    }

    fn mount(
        &mut self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<(), Errno> {
        nix::mount::mount(source, target, fstype, flags, data)
    }

    fn detach(&mut self, target: &Path) -> Result<(), Errno> {
        nix::mount::umount2(target, MntFlags::MNT_DETACH)
    }

    fn pivot_root_into(&mut self, dir: &Path) -> Result<(), Errno> {
        nix::unistd::chdir(dir)?;
        nix::unistd::pivot_root(".", ".")
    }

    fn chdir(&mut self, dir: &Path) -> Result<(), Errno> {
        nix::unistd::chdir(dir)
    }

    fn mkdir_all(&mut self, path: &Path, mode: u32) -> Result<(), Errno> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(path)
            .map_err(io_errno)
    }

    fn write_file(&mut self, path: &Path, contents: &[u8]) -> Result<(), Errno> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        // No following a final symlink, no waiting on a FIFO: the file may
        // come from an image.
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .map_err(io_errno)?;
        if !f.metadata().map_err(io_errno)?.is_file() {
            return Err(Errno::EINVAL);
        }
        f.set_len(0).map_err(io_errno)?;
        f.write_all(contents).map_err(io_errno)
    }

    fn touch(&mut self, path: &Path) -> Result<(), Errno> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o644)
            .open(path)
            .map(drop)
            .map_err(io_errno)
    }

    fn symlink(&mut self, target: &Path, link: &Path) -> Result<(), Errno> {
        std::os::unix::fs::symlink(target, link).map_err(io_errno)
    }

    fn locked_flags(&mut self, path: &Path) -> MsFlags {
        crate::mounts::locked_flags(path)
    }

    fn attach_tree(&mut self, tree: RawFd, point: &MountPoint) -> Result<(), Errno> {
        use std::os::fd::AsFd;
        // SAFETY: `tree` is one of the detached trees the parent prepared
        // (`ChildContext::bind_trees`, `LayerTrees`), whose OwnedFds the
        // child's copy of the parent's memory holds open until it execs;
        // the mount steps are this trait's only callers (crate-private).
        unsafe {
            match &point._fd {
                Some(target) => {
                    super::with_borrowed(tree, |t| super::move_mount_onto(t, target.as_fd()))
                }
                None => super::with_borrowed(tree, |t| super::move_mount_to(t, &point.target)),
            }
        }
    }
}

/// Records every call as one line (`mount tmpfs /x ...`), answers like a
/// fresh, empty file system, and fails the first call whose line contains
/// `fail_on` with `fail_errno`. For unit tests of the steps.
#[cfg(test)]
#[derive(Debug, Default)]
pub struct Recorder {
    pub calls: Vec<String>,
    pub fail_on: Option<(String, Errno)>,
    /// Paths that answer ENOENT to `mount` (absent /proc entries).
    pub missing: BTreeSet<PathBuf>,
    /// Paths that are directories (for `point_kind` and ENOTDIR on file
    /// binds).
    pub dirs: BTreeSet<PathBuf>,
    /// Paths that are regular files, and symlinks with their targets (for
    /// `point_kind`).
    pub files: BTreeSet<PathBuf>,
    pub symlinks: BTreeMap<PathBuf, PathBuf>,
}

#[cfg(test)]
impl Recorder {
    fn record(&mut self, line: String) -> Result<(), Errno> {
        let fail = self
            .fail_on
            .as_ref()
            .filter(|(needle, _)| line.contains(needle.as_str()))
            .map(|(_, e)| *e);
        self.calls.push(line);
        match fail {
            Some(e) => {
                self.fail_on = None;
                Err(e)
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
impl MountOps for Recorder {
    fn point_kind(&mut self, root: &Path, dest: &Path) -> Result<PointKind, Errno> {
        let p = root.join(dest.strip_prefix("/").unwrap_or(dest));
        Ok(if let Some(target) = self.symlinks.get(&p) {
            PointKind::Symlink(target.clone())
        } else if self.dirs.contains(&p) {
            PointKind::Dir
        } else if self.files.contains(&p) {
            PointKind::File
        } else {
            PointKind::Absent
        })
    }

    fn mount_point(&mut self, root: &Path, dest: &Path, dir: bool) -> Result<MountPoint, Errno> {
        let target = root.join(dest.strip_prefix("/").unwrap_or(dest));
        if dir {
            self.dirs.insert(target.clone());
        }
        self.record(format!("mount_point {} dir={dir}", target.display()))?;
        Ok(MountPoint { target, _fd: None })
    }

    fn mount(
        &mut self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<(), Errno> {
        let line = format!(
            "mount {} {} type={} flags={:?} data={}",
            source.map_or("-".into(), |s| s.display().to_string()),
            target.display(),
            fstype.unwrap_or("-"),
            flags,
            data.unwrap_or("-")
        );
        self.record(line)?;
        if self.missing.contains(target) {
            return Err(Errno::ENOENT);
        }
        // A file (/dev/null) bound on a directory.
        if flags.contains(MsFlags::MS_BIND)
            && !flags.contains(MsFlags::MS_REMOUNT)
            && source == Some(Path::new("/dev/null"))
            && self.dirs.contains(target)
        {
            return Err(Errno::ENOTDIR);
        }
        Ok(())
    }

    fn detach(&mut self, target: &Path) -> Result<(), Errno> {
        self.record(format!("detach {}", target.display()))
    }

    fn pivot_root_into(&mut self, dir: &Path) -> Result<(), Errno> {
        self.record(format!("pivot_root {}", dir.display()))
    }

    fn chdir(&mut self, dir: &Path) -> Result<(), Errno> {
        self.record(format!("chdir {}", dir.display()))
    }

    fn mkdir_all(&mut self, path: &Path, mode: u32) -> Result<(), Errno> {
        self.dirs.insert(path.to_path_buf());
        self.record(format!("mkdir {} {mode:o}", path.display()))
    }

    fn write_file(&mut self, path: &Path, contents: &[u8]) -> Result<(), Errno> {
        self.record(format!(
            "write {} ({} bytes)",
            path.display(),
            contents.len()
        ))
    }

    fn touch(&mut self, path: &Path) -> Result<(), Errno> {
        self.record(format!("touch {}", path.display()))
    }

    fn symlink(&mut self, target: &Path, link: &Path) -> Result<(), Errno> {
        self.record(format!(
            "symlink {} -> {}",
            link.display(),
            target.display()
        ))
    }

    fn locked_flags(&mut self, _path: &Path) -> MsFlags {
        MsFlags::MS_RELATIME
    }

    fn attach_tree(&mut self, tree: RawFd, point: &MountPoint) -> Result<(), Errno> {
        self.record(format!("attach fd {tree} on {}", point.target.display()))
    }
}

/// Every other system call of PID 1's setup steps and of the program's
/// steps before `execve` (`process::init`), beside the mount steps': with
/// [`Recorder`] their order is unit-tested without root (mounts before
/// pivot_root, capabilities dropped before seccomp, no_new_privs before
/// seccomp, seccomp last before execve). In the manner of youki's
/// `Syscall` trait; the methods are named after the step's kernel call,
/// not after a generic "syscall" layer.
pub trait Syscalls: MountOps {
    /// Closes every fd at or above `first` except those in `keep`.
    fn close_fds_except(&mut self, first: RawFd, keep: &[RawFd]) -> Result<(), Errno>;
    /// cgroup v1: moves the calling thread into a cgroup through its open
    /// `tasks` file.
    fn join_cgroup(&mut self, tasks: BorrowedFd<'_>) -> Result<(), Errno>;
    /// `unshare(CLONE_NEWCGROUP)`.
    fn unshare_cgroup_namespace(&mut self) -> Result<(), Errno>;
    /// Overwrites this process's argv and environment, renames it and
    /// turns dumpability off.
    fn scrub_caller(&mut self) -> Result<(), Errno>;
    fn setresgid(&mut self, gid: u32) -> Result<(), Errno>;
    fn setresuid(&mut self, uid: u32) -> Result<(), Errno>;
    fn setgroups(&mut self, gids: &[u32]) -> Result<(), Errno>;
    /// `prctl(PR_SET_PDEATHSIG, SIGKILL)`.
    fn set_parent_death_signal(&mut self) -> Result<(), Errno>;
    fn sethostname(&mut self, name: &str) -> Result<(), Errno>;
    /// Brings `lo` up.
    fn loopback_up(&mut self) -> Result<(), Errno>;
    fn join_new_session_keyring(&mut self) -> Result<(), Errno>;
    /// Blocks every signal but SIGKILL and SIGSTOP.
    fn block_signals(&mut self) -> Result<(), Errno>;
    /// Default dispositions for every signal and an empty mask.
    fn reset_signals(&mut self) -> Result<(), Errno>;
    fn set_dumpable(&mut self, dumpable: bool) -> Result<(), Errno>;
    /// Writes `/proc/self/<name>`.
    fn write_proc_self(&mut self, name: &str, value: &[u8]) -> Result<(), Errno>;
    /// Sets the kernel parameter `key` (`net.ipv4.ping_group_range`)
    /// through the sandbox's own `/proc/sys`.
    fn write_sysctl(&mut self, key: &str, value: &[u8]) -> Result<(), Errno>;
    fn setsid(&mut self) -> Result<(), Errno>;
    fn set_controlling_tty(&mut self, fd: BorrowedFd<'_>) -> Result<(), Errno>;
    /// `dup2(fd, target)`, `target` one of 0, 1, 2.
    fn dup_onto_std(&mut self, fd: BorrowedFd<'_>, target: RawFd) -> Result<(), Errno>;
    fn set_rlimit(&mut self, resource: i32, soft: u64, hard: u64) -> Result<(), Errno>;
    fn umask(&mut self, mode: u32);
    fn drop_bounding_set_except(&mut self, keep: u64) -> Result<(), Errno>;
    fn set_capabilities(&mut self, caps: &crate::capabilities::CapabilitySets)
        -> Result<(), Errno>;
    /// Keeps the permitted set across the change to a non-root uid.
    fn keep_capabilities(&mut self) -> Result<(), Errno>;
    fn set_no_new_privs(&mut self) -> Result<(), Errno>;
    /// Landlock: read everywhere, write below `writable`.
    fn restrict_landlock(&mut self, writable: &[&Path]) -> Result<(), String>;
    /// Marks every fd from `first` up close-on-exec.
    fn cloexec_from(&mut self, first: u32) -> Result<(), Errno>;
    fn apply_seccomp(&mut self, filter: &crate::seccomp::SeccompFilter) -> Result<(), String>;
    /// `execve`; returns only on failure.
    fn execve(
        &mut self,
        path: &std::ffi::CStr,
        args: &[std::ffi::CString],
        env: &[std::ffi::CString],
    ) -> Errno;
}

impl Syscalls for Linux {
    fn close_fds_except(&mut self, first: RawFd, keep: &[RawFd]) -> Result<(), Errno> {
        super::close_fds_except(first, keep)
    }

    fn join_cgroup(&mut self, tasks: BorrowedFd<'_>) -> Result<(), Errno> {
        nix::unistd::write(tasks, b"0").map(drop)
    }

    fn unshare_cgroup_namespace(&mut self) -> Result<(), Errno> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
    }

    fn scrub_caller(&mut self) -> Result<(), Errno> {
        scrub_caller()
    }

    fn setresgid(&mut self, gid: u32) -> Result<(), Errno> {
        let g = nix::unistd::Gid::from_raw(gid);
        nix::unistd::setresgid(g, g, g)
    }

    fn setresuid(&mut self, uid: u32) -> Result<(), Errno> {
        let u = nix::unistd::Uid::from_raw(uid);
        nix::unistd::setresuid(u, u, u)
    }

    fn setgroups(&mut self, gids: &[u32]) -> Result<(), Errno> {
        let groups: Vec<nix::unistd::Gid> = gids
            .iter()
            .map(|g| nix::unistd::Gid::from_raw(*g))
            .collect();
        nix::unistd::setgroups(&groups)
    }

    fn set_parent_death_signal(&mut self) -> Result<(), Errno> {
        nix::sys::prctl::set_pdeathsig(Some(nix::sys::signal::Signal::SIGKILL))
    }

    fn sethostname(&mut self, name: &str) -> Result<(), Errno> {
        nix::unistd::sethostname(name)
    }

    fn loopback_up(&mut self) -> Result<(), Errno> {
        super::loopback_up()
    }

    fn join_new_session_keyring(&mut self) -> Result<(), Errno> {
        super::join_new_session_keyring()
    }

    fn block_signals(&mut self) -> Result<(), Errno> {
        use nix::sys::signal::{SigSet, SigmaskHow, Signal};
        let mut set = SigSet::all();
        set.remove(Signal::SIGKILL);
        set.remove(Signal::SIGSTOP);
        super::set_sigmask(SigmaskHow::SIG_BLOCK, &set)
    }

    fn reset_signals(&mut self) -> Result<(), Errno> {
        use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
        let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
        for sig in Signal::iterator() {
            if sig != Signal::SIGKILL && sig != Signal::SIGSTOP {
                // EINVAL for signals the kernel reserves is fine to ignore.
                let _ = super::set_default_signal(sig, &dfl);
            }
        }
        super::set_sigmask(SigmaskHow::SIG_SETMASK, &SigSet::empty())
    }

    fn set_dumpable(&mut self, dumpable: bool) -> Result<(), Errno> {
        nix::sys::prctl::set_dumpable(dumpable)
    }

    fn write_proc_self(&mut self, name: &str, value: &[u8]) -> Result<(), Errno> {
        std::fs::write(Path::new("/proc/self").join(name), value).map_err(io_errno)
    }

    fn write_sysctl(&mut self, key: &str, value: &[u8]) -> Result<(), Errno> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        // The key was checked (validate::check_sysctl): dots and slashes
        // separate plain names, never `..`. No O_CREAT, no truncation:
        // procfs files take one write of the whole value.
        let path = Path::new("/proc/sys").join(key.replace('.', "/"));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(io_errno)?;
        f.write_all(value).map_err(io_errno)
    }

    fn setsid(&mut self) -> Result<(), Errno> {
        nix::unistd::setsid().map(drop)
    }

    fn set_controlling_tty(&mut self, fd: BorrowedFd<'_>) -> Result<(), Errno> {
        super::set_controlling_tty(fd)
    }

    fn dup_onto_std(&mut self, fd: BorrowedFd<'_>, target: RawFd) -> Result<(), Errno> {
        super::dup_onto_std(fd, target)
    }

    fn set_rlimit(&mut self, resource: i32, soft: u64, hard: u64) -> Result<(), Errno> {
        super::set_rlimit(resource, soft, hard)
    }

    fn umask(&mut self, mode: u32) {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mode));
    }

    fn drop_bounding_set_except(&mut self, keep: u64) -> Result<(), Errno> {
        super::drop_bounding_set_except(keep)
    }

    fn set_capabilities(
        &mut self,
        caps: &crate::capabilities::CapabilitySets,
    ) -> Result<(), Errno> {
        super::set_capabilities(caps)
    }

    fn keep_capabilities(&mut self) -> Result<(), Errno> {
        super::keep_capabilities()
    }

    fn set_no_new_privs(&mut self) -> Result<(), Errno> {
        nix::sys::prctl::set_no_new_privs()
    }

    fn restrict_landlock(&mut self, writable: &[&Path]) -> Result<(), String> {
        use landlock::{
            path_beneath_rules, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, ABI,
        };
        let abi = ABI::V5;
        let fail = |er: landlock::RulesetError| er.to_string();
        Ruleset::default()
            .handle_access(AccessFs::from_all(abi))
            .map_err(fail)?
            .create()
            .map_err(fail)?
            .add_rules(path_beneath_rules(["/"], AccessFs::from_read(abi)))
            .map_err(fail)?
            .add_rules(path_beneath_rules(writable, AccessFs::from_all(abi)))
            .map_err(fail)?
            .restrict_self()
            .map_err(fail)?;
        Ok(())
    }

    fn cloexec_from(&mut self, first: u32) -> Result<(), Errno> {
        super::cloexec_from(first)
    }

    fn apply_seccomp(&mut self, filter: &crate::seccomp::SeccompFilter) -> Result<(), String> {
        filter.apply().map_err(|e| e.to_string())
    }

    fn execve(
        &mut self,
        path: &std::ffi::CStr,
        args: &[std::ffi::CString],
        env: &[std::ffi::CString],
    ) -> Errno {
        match nix::unistd::execve(path, args, env) {
            Err(e) => e,
            Ok(never) => match never {},
        }
    }
}

/// Overwrites the argv and environment areas of this process (fields 48–51
/// of /proc/self/stat: arg_start, arg_end, env_start, env_end) through
/// /proc/self/mem: the command line then reads `runtimed-init`, the
/// environment reads empty. Nothing in this process reads either afterwards
/// (the program's argv/env are separate `CString`s from the plan).
fn scrub_caller() -> Result<(), Errno> {
    use std::io::{Seek, SeekFrom, Write};
    let stat = std::fs::read_to_string("/proc/self/stat").map_err(|_| Errno::EIO)?;
    // Fields after the `)` of comm, which may itself hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).ok_or(Errno::EIO)?;
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // `rest` starts at field 3 (state), so field N is fields[N - 3].
    let field = |n: usize| fields.get(n - 3).copied().ok_or(Errno::EIO);
    let (arg_start, arg_end) = (field(48)?, field(49)?);
    let (env_start, env_end) = (field(50)?, field(51)?);
    let mut mem = std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/self/mem")
        .map_err(io_errno)?;
    let mut wipe = |start: u64, end: u64, text: &[u8]| -> std::io::Result<()> {
        if end <= start || end - start > (1 << 20) {
            return Ok(());
        }
        let mut bytes = vec![0u8; (end - start) as usize];
        let n = text.len().min(bytes.len().saturating_sub(1));
        bytes[..n].copy_from_slice(&text[..n]);
        mem.seek(SeekFrom::Start(start))?;
        mem.write_all(&bytes)
    };
    wipe(arg_start, arg_end, b"runtimed-init")
        .and_then(|()| wipe(env_start, env_end, b""))
        .map_err(io_errno)?;
    // And the name (comm), which would be the supervisor's otherwise.
    let _ = nix::sys::prctl::set_name(c"runtimed-init");
    nix::sys::prctl::set_dumpable(false)
}

#[cfg(test)]
impl Syscalls for Recorder {
    fn close_fds_except(&mut self, first: RawFd, keep: &[RawFd]) -> Result<(), Errno> {
        self.record(format!("close_fds_except {first} {keep:?}"))
    }
    fn join_cgroup(&mut self, tasks: BorrowedFd<'_>) -> Result<(), Errno> {
        use std::os::fd::AsRawFd;
        self.record(format!("join_cgroup fd {}", tasks.as_raw_fd()))
    }
    fn unshare_cgroup_namespace(&mut self) -> Result<(), Errno> {
        self.record("unshare CLONE_NEWCGROUP".into())
    }
    fn scrub_caller(&mut self) -> Result<(), Errno> {
        self.record("scrub_caller".into())
    }
    fn setresgid(&mut self, gid: u32) -> Result<(), Errno> {
        self.record(format!("setresgid {gid}"))
    }
    fn setresuid(&mut self, uid: u32) -> Result<(), Errno> {
        self.record(format!("setresuid {uid}"))
    }
    fn setgroups(&mut self, gids: &[u32]) -> Result<(), Errno> {
        self.record(format!("setgroups {gids:?}"))
    }
    fn set_parent_death_signal(&mut self) -> Result<(), Errno> {
        self.record("prctl PR_SET_PDEATHSIG SIGKILL".into())
    }
    fn sethostname(&mut self, name: &str) -> Result<(), Errno> {
        self.record(format!("sethostname {name}"))
    }
    fn loopback_up(&mut self) -> Result<(), Errno> {
        self.record("loopback_up".into())
    }
    fn join_new_session_keyring(&mut self) -> Result<(), Errno> {
        self.record("keyctl JOIN_SESSION_KEYRING".into())
    }
    fn block_signals(&mut self) -> Result<(), Errno> {
        self.record("sigprocmask SIG_BLOCK all".into())
    }
    fn reset_signals(&mut self) -> Result<(), Errno> {
        self.record("reset_signals".into())
    }
    fn set_dumpable(&mut self, dumpable: bool) -> Result<(), Errno> {
        self.record(format!("prctl PR_SET_DUMPABLE {dumpable}"))
    }
    fn write_proc_self(&mut self, name: &str, value: &[u8]) -> Result<(), Errno> {
        let value = String::from_utf8_lossy(value).into_owned();
        self.record(format!("write /proc/self/{name} {value}"))
    }
    fn write_sysctl(&mut self, key: &str, value: &[u8]) -> Result<(), Errno> {
        let value = String::from_utf8_lossy(value).into_owned();
        self.record(format!("sysctl {key}={value}"))
    }
    fn setsid(&mut self) -> Result<(), Errno> {
        self.record("setsid".into())
    }
    fn set_controlling_tty(&mut self, _fd: BorrowedFd<'_>) -> Result<(), Errno> {
        self.record("ioctl TIOCSCTTY".into())
    }
    fn dup_onto_std(&mut self, fd: BorrowedFd<'_>, target: RawFd) -> Result<(), Errno> {
        use std::os::fd::AsRawFd;
        self.record(format!("dup2 {} {target}", fd.as_raw_fd()))
    }
    fn set_rlimit(&mut self, resource: i32, soft: u64, hard: u64) -> Result<(), Errno> {
        self.record(format!("setrlimit {resource} {soft} {hard}"))
    }
    fn umask(&mut self, mode: u32) {
        let _ = self.record(format!("umask {mode:o}"));
    }
    fn drop_bounding_set_except(&mut self, keep: u64) -> Result<(), Errno> {
        self.record(format!("drop_bounding_set except {keep:#x}"))
    }
    fn set_capabilities(
        &mut self,
        caps: &crate::capabilities::CapabilitySets,
    ) -> Result<(), Errno> {
        self.record(format!("capset {:#x}", caps.effective))
    }
    fn keep_capabilities(&mut self) -> Result<(), Errno> {
        self.record("prctl PR_SET_KEEPCAPS".into())
    }
    fn set_no_new_privs(&mut self) -> Result<(), Errno> {
        self.record("prctl PR_SET_NO_NEW_PRIVS".into())
    }
    fn restrict_landlock(&mut self, writable: &[&Path]) -> Result<(), String> {
        self.record(format!("landlock write {writable:?}"))
            .map_err(|e| e.desc().to_string())
    }
    fn cloexec_from(&mut self, first: u32) -> Result<(), Errno> {
        self.record(format!("close_range {first} CLOEXEC"))
    }
    fn apply_seccomp(&mut self, _filter: &crate::seccomp::SeccompFilter) -> Result<(), String> {
        self.record("seccomp".into())
            .map_err(|e| e.desc().to_string())
    }
    fn execve(
        &mut self,
        path: &std::ffi::CStr,
        _args: &[std::ffi::CString],
        _env: &[std::ffi::CString],
    ) -> Errno {
        // A fake exec "fails" so the steps return: ENOENT, or the errno
        // `fail_on` names.
        match self.record(format!("execve {}", path.to_string_lossy())) {
            Ok(()) => Errno::ENOENT,
            Err(e) => e,
        }
    }
}
