//! The file-system system calls of the child's mount steps behind a trait:
//! [`Linux`] makes them, [`Recorder`] records them (and can fail one) so the
//! order and error reporting of the steps are unit-tested without root.

use std::collections::BTreeSet;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};

/// What the mount steps need from the kernel.
pub trait MountOps {
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
    fn is_dir(&mut self, path: &Path) -> bool;
    /// Flags of the mount at `path` that a bind remount must keep.
    fn locked_flags(&mut self, path: &Path) -> MsFlags;
    /// Attaches a detached mount tree (an fd from open_tree) at `target`.
    fn attach_tree(&mut self, tree: RawFd, target: &Path) -> Result<(), Errno>;
}

fn io_errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// The real system calls.
pub struct Linux;

impl MountOps for Linux {
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
        std::fs::write(path, contents).map_err(io_errno)
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

    fn is_dir(&mut self, path: &Path) -> bool {
        path.is_dir()
    }

    fn locked_flags(&mut self, path: &Path) -> MsFlags {
        crate::mounts::locked_flags(path)
    }

    fn attach_tree(&mut self, tree: RawFd, target: &Path) -> Result<(), Errno> {
        super::with_borrowed(tree, |fd| super::move_mount_to(fd, target))
    }
}

/// Records every call as one line (`mount tmpfs /x ...`), answers like a
/// fresh, empty file system, and fails the first call whose line contains
/// `fail_on` with `fail_errno`. For unit tests of the steps.
#[derive(Debug, Default)]
pub struct Recorder {
    pub calls: Vec<String>,
    pub fail_on: Option<(String, Errno)>,
    /// Paths that answer ENOENT to `mount` (absent /proc entries).
    pub missing: BTreeSet<PathBuf>,
    /// Paths that are directories (for `is_dir` and ENOTDIR on file binds).
    pub dirs: BTreeSet<PathBuf>,
}

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

impl MountOps for Recorder {
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

    fn is_dir(&mut self, path: &Path) -> bool {
        self.dirs.contains(path)
    }

    fn locked_flags(&mut self, _path: &Path) -> MsFlags {
        MsFlags::MS_RELATIME
    }

    fn attach_tree(&mut self, tree: RawFd, target: &Path) -> Result<(), Errno> {
        self.record(format!("attach fd {tree} on {}", target.display()))
    }
}
