//! The file-system system calls of the child's mount steps behind a trait:
//! [`Linux`] makes them, [`Recorder`] records them (and can fail one) so the
//! order and error reporting of the steps are unit-tested without root.

#[cfg(test)]
use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::RawFd;
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
