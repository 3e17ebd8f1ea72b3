//! Files put into a one-shot sandbox before its program starts (the
//! `files` of the API's `/v1/run`).
//!
//! PID 1 writes them itself, after its mounts, `pivot_root` and the
//! read-only remounts and before it forks the program ([`write`], step
//! `write_files`). Doing it there rather than from the host means:
//! - no host path is resolved at all: PID 1 already sees only the
//!   sandbox's root, so a hostile image's `/workspace -> /proc` or a
//!   symlink inside it can at worst lead to a file of the sandbox itself;
//! - the files are made with the sandbox user's fsuid/fsgid, so the
//!   kernel applies that user's permissions and makes the user the owner
//!   (what the program could have done itself a moment later);
//! - the tmpfs pages are charged to the sandbox's memory cgroup (PID 1 is
//!   in it), not the daemon's;
//! - a run without files costs nothing, and a run with files no extra
//!   round trip between processes.
//!
//! The bytes come in one file (a sealed memfd the caller filled, all
//! files back to back in manifest order); the manifest says where each
//! goes and how long it is. The rules are those of the daemon's files API
//! for a write with parents: missing directories are made (0755), a new
//! file is 0644, an existing regular file with one link is truncated and
//! rewritten; a final symlink, a non-regular file or a multiply-linked
//! one is refused. Every lookup is `openat2(RESOLVE_IN_ROOT |
//! RESOLVE_NO_MAGICLINKS)` from the target directory, so `..` and
//! absolute links stay below it.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fchmod, fstat, mkdirat, Mode, SFlag};
use nix::unistd::{ftruncate, Gid, Uid};
use serde::{Deserialize, Serialize};

use crate::process::StepError;

/// The step name PID 1 reports a failure under.
pub const STEP: crate::report::Step = crate::report::Step::WriteFiles;

/// Most files one run may be given (each is a few system calls in PID 1
/// during setup).
pub const MAX_FILES: usize = 4096;

/// One file: where it goes, below [`Manifest::dir`], and its length.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedFile {
    /// Relative, with normal components only (no `.`, `..`, root).
    pub path: PathBuf,
    pub len: u64,
}

/// Where the files go and in which order their bytes come.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// An absolute directory inside the sandbox (`/workspace`).
    pub dir: PathBuf,
    pub files: Vec<SeedFile>,
}

/// The manifest and the file holding the bytes (read with `pread`, so
/// its offset does not matter).
#[derive(Debug)]
pub struct Seed {
    pub manifest: Manifest,
    pub source: OwnedFd,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SeedError {
    #[error("files: the directory {0:?} must be absolute, without `.` or `..`")]
    Dir(PathBuf),
    #[error("files: {0:?} must be relative, with normal components only")]
    Path(PathBuf),
    #[error("files: at most {MAX_FILES} files")]
    TooMany,
}

impl Manifest {
    /// Checked in the parent, before anything exists.
    pub fn validate(&self) -> Result<(), SeedError> {
        let normal = |p: &Path| p.components().all(|c| matches!(c, Component::Normal(_)));
        let dir_ok = self.dir.is_absolute()
            && self
                .dir
                .components()
                .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
        if !dir_ok {
            return Err(SeedError::Dir(self.dir.clone()));
        }
        if self.files.len() > MAX_FILES {
            return Err(SeedError::TooMany);
        }
        for f in &self.files {
            if f.path.as_os_str().is_empty() || !normal(&f.path) {
                return Err(SeedError::Path(f.path.clone()));
            }
        }
        Ok(())
    }
}

fn fail(errno: Errno, path: &Path, what: &str) -> StepError {
    StepError::new(STEP, Some(errno), format!("{}: {what}", path.display()))
}

/// Restores PID 1's fsuid/fsgid (root of the namespace) however the
/// writes end.
struct AsUser;

impl AsUser {
    fn become_(uid: u32, gid: u32) -> AsUser {
        // Group first: with fsuid no longer 0 we would still be allowed
        // (setfsgid needs CAP_SETGID, which a non-zero fsuid does not
        // drop), but this order is the conventional one.
        nix::unistd::setfsgid(Gid::from_raw(gid));
        nix::unistd::setfsuid(Uid::from_raw(uid));
        AsUser
    }
}

impl Drop for AsUser {
    fn drop(&mut self) {
        nix::unistd::setfsuid(Uid::from_raw(0));
        nix::unistd::setfsgid(Gid::from_raw(0));
    }
}

/// Writes every file of `manifest` from `source`, as `uid`/`gid`
/// (PID 1's step `write_files`; also callable from a test). A failure
/// names the file (relative to the directory) and carries the errno:
/// ELOOP for a final symlink, ENXIO for a file that is not regular,
/// EMLINK for one with several links.
pub fn write(
    manifest: &Manifest,
    source: BorrowedFd<'_>,
    uid: u32,
    gid: u32,
) -> Result<(), StepError> {
    let _as_user = AsUser::become_(uid, gid);
    // Changing fsuid from 0 drops the effective file capabilities
    // (capabilities(7)): from here the user's own permissions apply.
    let root = open_in(
        None,
        &manifest.dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY,
        ResolveFlag::RESOLVE_NO_MAGICLINKS,
    )
    .map_err(|er| fail(er, &manifest.dir, "open the directory"))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut offset = 0u64;
    for f in &manifest.files {
        write_one(&root, f, source, offset, &mut buf)?;
        offset = offset.saturating_add(f.len);
    }
    Ok(())
}

/// openat2 from `dir` (or the current root), retrying EAGAIN (a rename
/// raced a scoped lookup).
fn open_in(
    dir: Option<&OwnedFd>,
    path: &Path,
    flags: OFlag,
    resolve: ResolveFlag,
) -> Result<OwnedFd, Errno> {
    let mode = Mode::from_bits_truncate(if flags.contains(OFlag::O_CREAT) {
        0o600
    } else {
        0
    });
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .mode(mode)
        .resolve(resolve);
    let cwd = nix::fcntl::AT_FDCWD;
    for _ in 0..16 {
        let r = match dir {
            Some(d) => openat2(d.as_fd(), path, how),
            None => openat2(cwd, path, how),
        };
        match r {
            Err(Errno::EAGAIN) => continue,
            other => return other,
        }
    }
    Err(Errno::EAGAIN)
}

const IN_ROOT: ResolveFlag = ResolveFlag::RESOLVE_IN_ROOT.union(ResolveFlag::RESOLVE_NO_MAGICLINKS);

/// `mkdir -p` of `rel` below `root`; each prefix is resolved from `root`.
fn make_dirs(root: &OwnedFd, rel: &Path) -> Result<OwnedFd, StepError> {
    let dir_flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
    let mut cur = PathBuf::new();
    let mut fd = open_in(Some(root), Path::new("."), dir_flags, IN_ROOT)
        .map_err(|er| fail(er, Path::new("."), "open"))?;
    for name in rel.iter() {
        cur.push(name);
        fd = match open_in(Some(root), &cur, dir_flags, IN_ROOT) {
            Err(Errno::ENOENT) => {
                match mkdirat(fd.as_fd(), name, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(er) => return Err(fail(er, &cur, "create the directory")),
                }
                open_in(Some(root), &cur, dir_flags, IN_ROOT)
                    .map_err(|er| fail(er, &cur, "open the directory"))?
            }
            other => other.map_err(|er| fail(er, &cur, "open the directory"))?,
        };
    }
    Ok(fd)
}

fn write_one(
    root: &OwnedFd,
    f: &SeedFile,
    source: BorrowedFd<'_>,
    offset: u64,
    buf: &mut [u8],
) -> Result<(), StepError> {
    let (parent, name) = match (f.path.parent(), f.path.file_name()) {
        (Some(p), Some(n)) => (p, n),
        _ => return Err(fail(Errno::EINVAL, &f.path, "not a file name")),
    };
    let dir = make_dirs(root, parent)?;
    let file = open_file(&dir, name).map_err(|er| fail(er, &f.path, "open for writing"))?;
    let mut done = 0u64;
    while done < f.len {
        let want = buf
            .len()
            .min(usize::try_from(f.len - done).unwrap_or(usize::MAX));
        let at =
            i64::try_from(offset + done).map_err(|_| fail(Errno::EOVERFLOW, &f.path, "offset"))?;
        let n = match nix::sys::uio::pread(source, &mut buf[..want], at) {
            Ok(0) => return Err(fail(Errno::EPIPE, &f.path, "the source ended early")),
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(er) => return Err(fail(er, &f.path, "read the source")),
        };
        let mut put = 0;
        while put < n {
            match nix::unistd::write(&file, &buf[put..n]) {
                Ok(0) => return Err(fail(Errno::ENOSPC, &f.path, "write")),
                Ok(w) => put += w,
                Err(Errno::EINTR) => {}
                Err(er) => return Err(fail(er, &f.path, "write")),
            }
        }
        done += n as u64;
    }
    Ok(())
}

/// Creates `name` in `dir` (0644), or opens and truncates it when it is a
/// regular file with one link. Never follows a final symlink; never
/// blocks on a FIFO (O_NONBLOCK: ENXIO without a reader).
fn open_file(dir: &OwnedFd, name: &OsStr) -> Result<OwnedFd, Errno> {
    let base = OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_NOFOLLOW;
    let beneath = ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS;
    let name = Path::new(name);
    match open_in(
        Some(dir),
        name,
        base | OFlag::O_CREAT | OFlag::O_EXCL,
        beneath,
    ) {
        Ok(fd) => {
            // The mode asked for, whatever PID 1's umask.
            fchmod(&fd, Mode::from_bits_truncate(0o644))?;
            return Ok(fd);
        }
        Err(Errno::EEXIST) => {}
        Err(er) => return Err(er),
    }
    let fd = open_in(Some(dir), name, base, beneath)?;
    let st = fstat(&fd)?;
    if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFREG {
        return Err(Errno::ENXIO);
    }
    // Truncating a multiply-linked inode would write to names never
    // resolved here.
    if st.st_nlink > 1 {
        return Err(Errno::EMLINK);
    }
    ftruncate(&fd, 0)?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn source(bytes: &[u8]) -> OwnedFd {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        f.into()
    }

    fn manifest(dir: &Path, files: &[(&str, u64)]) -> Manifest {
        Manifest {
            dir: dir.to_path_buf(),
            files: files
                .iter()
                .map(|(p, len)| SeedFile {
                    path: p.into(),
                    len: *len,
                })
                .collect(),
        }
    }

    fn me() -> (u32, u32) {
        (Uid::effective().as_raw(), Gid::effective().as_raw())
    }

    #[test]
    fn files_land_in_order_with_their_directories_and_modes() {
        let t = tempfile::tempdir().unwrap();
        let m = manifest(t.path(), &[("a/b/c.txt", 3), ("top", 2), ("a/empty", 0)]);
        let (uid, gid) = me();
        write(&m, source(b"abcxy").as_fd(), uid, gid).unwrap();
        assert_eq!(std::fs::read(t.path().join("a/b/c.txt")).unwrap(), b"abc");
        assert_eq!(std::fs::read(t.path().join("top")).unwrap(), b"xy");
        assert_eq!(std::fs::read(t.path().join("a/empty")).unwrap(), b"");
        let mode = |p: &str| {
            std::fs::metadata(t.path().join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        assert_eq!(mode("top"), 0o644);
        assert_eq!(mode("a/b"), 0o755 & !current_umask());
        // An existing file is rewritten, not appended to.
        let m = manifest(t.path(), &[("top", 1)]);
        write(&m, source(b"z").as_fd(), uid, gid).unwrap();
        assert_eq!(std::fs::read(t.path().join("top")).unwrap(), b"z");
    }

    fn current_umask() -> u32 {
        let old = nix::sys::stat::umask(Mode::from_bits_truncate(0o022));
        nix::sys::stat::umask(old);
        old.bits()
    }

    fn errno_of(r: Result<(), StepError>) -> Option<Errno> {
        let e = r.unwrap_err();
        assert_eq!(e.step, STEP);
        e.errno
    }

    #[test]
    fn links_and_special_files_are_refused_and_nothing_leaves_the_directory() {
        let t = tempfile::tempdir().unwrap();
        let ws = t.path().join("ws");
        let outside = t.path().join("outside");
        std::fs::create_dir_all(&ws).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), b"keep").unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), ws.join("final")).unwrap();
        std::os::unix::fs::symlink("/", ws.join("up")).unwrap();
        std::fs::write(ws.join("one"), b"1").unwrap();
        std::fs::hard_link(ws.join("one"), ws.join("two")).unwrap();
        nix::unistd::mkfifo(&ws.join("fifo"), Mode::from_bits_truncate(0o644)).unwrap();
        std::fs::write(ws.join("file"), b"f").unwrap();
        let (uid, gid) = me();
        let one = |p: &str| write(&manifest(&ws, &[(p, 1)]), source(b"X").as_fd(), uid, gid);
        assert_eq!(errno_of(one("final")), Some(Errno::ELOOP));
        assert_eq!(errno_of(one("two")), Some(Errno::EMLINK));
        assert_eq!(errno_of(one("fifo")), Some(Errno::ENXIO));
        assert_eq!(errno_of(one("file/x")), Some(Errno::ENOTDIR));
        std::fs::create_dir(ws.join("dir")).unwrap();
        assert_eq!(errno_of(one("dir")), Some(Errno::EISDIR));
        // An absolute link is taken as rooted at the directory: the file
        // lands inside it, never at the host's root.
        one(&format!("up{}/x", outside.display())).unwrap();
        assert!(ws
            .join(outside.strip_prefix("/").unwrap())
            .join("x")
            .exists());
        assert_eq!(std::fs::read(outside.join("secret")).unwrap(), b"keep");
        assert!(!outside.join("x").exists());
        assert_eq!(std::fs::metadata(ws.join("one")).unwrap().size(), 1);
    }

    #[test]
    #[ignore = "privileged: acting as another user needs root"]
    fn the_users_permissions_apply_and_it_owns_what_it_makes() {
        assert!(
            Uid::effective().is_root(),
            "did not run: acting as another user needs root (run as root with --include-ignored)"
        );
        let user = 4242;
        let t = tempfile::tempdir().unwrap();
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        // The directory is root's (0755); one below it is the user's.
        let mine = t.path().join("mine");
        std::fs::create_dir(&mine).unwrap();
        std::os::unix::fs::chown(&mine, Some(user), Some(user)).unwrap();
        let m = manifest(t.path(), &[("mine/sub/f", 1)]);
        write(&m, source(b"x").as_fd(), user, user).unwrap();
        for made in ["mine/sub", "mine/sub/f"] {
            let meta = std::fs::metadata(t.path().join(made)).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (user, user), "{made}");
        }
        let m = manifest(t.path(), &[("f", 1)]);
        assert_eq!(
            errno_of(write(&m, source(b"x").as_fd(), user, user)),
            Some(Errno::EACCES)
        );
        assert!(!t.path().join("f").exists());
        // And this thread is root again afterwards.
        std::fs::write(t.path().join("root-again"), b"").unwrap();
        assert_eq!(
            std::fs::metadata(t.path().join("root-again"))
                .unwrap()
                .uid(),
            0
        );
    }

    #[test]
    fn manifests_name_files_below_an_absolute_directory_only() {
        let ok = manifest(Path::new("/workspace"), &[("a/b", 1)]);
        assert_eq!(ok.validate(), Ok(()));
        for bad in ["", "/etc/passwd", "../x", "a/../b", "./a"] {
            let m = manifest(Path::new("/workspace"), &[(bad, 1)]);
            assert!(m.validate().is_err(), "{bad:?} accepted");
        }
        let m = manifest(Path::new("workspace"), &[("a", 1)]);
        assert!(m.validate().is_err());
        let m = manifest(Path::new("/work/../etc"), &[("a", 1)]);
        assert!(m.validate().is_err());
    }
}
