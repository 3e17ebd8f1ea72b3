//! Host-side access to a session's `/workspace`, for the files API.
//!
//! The daemon is root on the host; the workspace is filled by hostile code
//! with symlinks (absolute, `..`, magic), FIFOs and hard links, rearranged
//! while we work. So paths are only ever walked by openat2(2) with
//! `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS` from the workspace fd (the kernel
//! clamps `..` and absolute links to it and detects rename races), and final
//! steps act on an fd or a (parent fd, single name) pair without following
//! links: runc's CVE-2019-19921 and CVE-2021-30465 show what check-then-use
//! on path strings loses to a symlink swap. `write` refuses a final symlink
//! rather than following it; `read` and `tar` follow it, inside the root.
//! The workspace itself is found the same way from the session's root
//! ([`Workspace::in_root`]): an image's `/workspace -> /proc` must not lead
//! to the host's /proc.
//!
//! The daemon resolves, creates and opens every file itself, as the session
//! user; the bytes are written by a [`Writer`]. For a session that is a
//! process of the session ([`crate::engine::SessionSandbox::write_files`]):
//! a tmpfs page is charged to the memory cgroup of the task that writes it,
//! and a session's files must count against the session, not the daemon.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{openat2, readlinkat, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fchmod, fstat, fstatat, futimens, mkdirat, FileStat, Mode};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, ftruncate, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use tar::EntryType;

/// Longest API path accepted (PATH_MAX).
const MAX_PATH: usize = 4096;
/// Files of an archive written by one [`Writer::write`] call (each holds
/// an fd until then).
const WRITE_BATCH: usize = 64;
/// Nesting limit for recursive walks: each level holds an fd, and a hostile
/// sandbox can build trees deeper than any path could name.
const MAX_DEPTH: usize = 256;
const NOFOLLOW: AtFlags = AtFlags::AT_SYMLINK_NOFOLLOW;
const O_DIR_PATH: OFlag = OFlag::O_PATH.union(OFlag::O_DIRECTORY);
const O_DIR_READ: OFlag = OFlag::O_RDONLY.union(OFlag::O_DIRECTORY);
/// O_NONBLOCK: opening a FIFO must not wait for a writer (nor a reader).
const O_READ: OFlag = OFlag::from_bits_retain(libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY);
const O_WRITE: OFlag = OFlag::from_bits_retain(libc::O_WRONLY | libc::O_NONBLOCK | libc::O_NOCTTY);

type Res<T> = Result<T, WorkspaceError>;
type Tar = tar::Builder<Vec<u8>>;

/// What the daemon may still hold for the answer being built. Directory
/// names, listings, file bytes and archives are asked for before they are
/// held, so a sandbox that made a 60 MiB file or a million names cannot
/// make the daemon hold that many times over for clients that do not read
/// (the daemon's output budget, `crate::budget`). A refusal ends the
/// operation with [`WorkspaceError::Busy`].
pub trait Allowance {
    fn take(&mut self, bytes: u64) -> bool;
}

/// No bound beyond the operation's own `max` (unit tests).
pub struct Unbounded;

impl Allowance for Unbounded {
    fn take(&mut self, _bytes: u64) -> bool {
        true
    }
}

/// What a directory entry's name costs while held (the allocation and its
/// header); a listed entry's struct and its JSON cost [`LISTED_ENTRY`] more.
const NAME_OVERHEAD: u64 = 48;
const LISTED_ENTRY: u64 = 160;
/// File bytes are read and paid for in pieces of this size.
const READ_PIECE: usize = 64 << 10;

/// The workspace root (an `O_PATH` directory fd), the host ids that files
/// created through the API are given, and who writes their bytes.
#[derive(Debug)]
pub struct Workspace {
    root: OwnedFd,
    uid: Uid,
    gid: Gid,
    writer: Box<dyn Writer>,
}

/// Writes the bytes of workspace files that the daemon opened.
pub trait Writer: Send + Sync + std::fmt::Debug {
    /// Writes each `data` into its file (open for writing, empty), in
    /// order. ENOSPC, EDQUOT, EFBIG and ENOMEM mean the session's disk or
    /// memory is full; ESRCH that the session ended.
    fn write(&self, files: &[(BorrowedFd<'_>, &[u8])]) -> Result<(), Errno>;
}

/// Writes from the calling thread: for a workspace that is not a
/// session's (unit tests).
#[derive(Debug)]
pub struct InProcess;

impl Writer for InProcess {
    fn write(&self, files: &[(BorrowedFd<'_>, &[u8])]) -> Result<(), Errno> {
        for (fd, data) in files {
            let mut done = 0;
            while done < data.len() {
                match nix::unistd::write(fd, &data[done..]) {
                    Ok(0) => return Err(Errno::ENOSPC),
                    Ok(n) => done += n,
                    Err(Errno::EINTR) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Entry {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: EntryKind,
    pub size: u64,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    /// Modification time, unix seconds.
    pub mtime: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Other,
}

/// What `read` found.
#[derive(Debug, PartialEq)]
pub enum Node {
    File(Vec<u8>),
    Dir(Vec<Entry>),
}

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("no such file or directory: {path}")]
    NotFound { path: String },
    #[error("not a directory: {path}")]
    NotADirectory { path: String },
    #[error("is a directory: {path}")]
    IsADirectory { path: String },
    #[error("not a regular file: {path}")]
    NotRegular { path: String },
    #[error("{path} exceeds the limit of {max} bytes")]
    TooLarge { path: String, max: u64 },
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("directory not empty: {path}")]
    DirectoryNotEmpty { path: String },
    #[error("malformed tar archive: {source}")]
    Archive { source: std::io::Error },
    #[error("permission denied: {path}")]
    PermissionDenied { path: String },
    #[error("no space left in the workspace (its size or the session's memory limit): {path}")]
    NoSpace { path: String },
    #[error("the session has ended")]
    SessionGone,
    #[error("i/o error on {path}: {source}")]
    Io { path: String, source: Errno },
    /// The daemon's output budget (or this tenant's share) has no room for
    /// what the answer would hold.
    #[error("the daemon holds as much output for clients as it may now: try again shortly")]
    Busy,
}

impl WorkspaceError {
    /// Stable machine-readable code for the HTTP layer.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "file_not_found",
            Self::NotADirectory { .. } => "not_a_directory",
            Self::IsADirectory { .. } => "is_a_directory",
            Self::NotRegular { .. } => "not_a_regular_file",
            Self::TooLarge { .. } => "file_too_large",
            Self::InvalidPath { .. } => "invalid_path",
            Self::DirectoryNotEmpty { .. } => "directory_not_empty",
            Self::Archive { .. } => "invalid_archive",
            Self::PermissionDenied { .. } => "permission_denied",
            Self::NoSpace { .. } => "workspace_full",
            Self::SessionGone => "session_not_running",
            Self::Io { .. } => "io_error",
            Self::Busy => "output_budget_exhausted",
        }
    }

    /// 409 for a conflict with what is on disk (wrong type, not empty).
    pub fn http_status(&self) -> u16 {
        match self {
            Self::NotFound { .. } => 404,
            Self::InvalidPath { .. } | Self::Archive { .. } => 400,
            Self::TooLarge { .. } | Self::NoSpace { .. } => 413,
            Self::PermissionDenied { .. } => 403,
            Self::Io { .. } => 500,
            Self::Busy => 503,
            _ => 409,
        }
    }
}

fn invalid(path: String, reason: &'static str) -> WorkspaceError {
    WorkspaceError::InvalidPath { path, reason }
}

fn errno_error(path: String, e: Errno) -> WorkspaceError {
    match e {
        Errno::ENOENT => WorkspaceError::NotFound { path },
        Errno::ENOTDIR => WorkspaceError::NotADirectory { path },
        Errno::EISDIR => WorkspaceError::IsADirectory { path },
        Errno::ENOTEMPTY => WorkspaceError::DirectoryNotEmpty { path },
        // open(2) of a socket, or of a FIFO for writing with no reader.
        Errno::ENXIO => WorkspaceError::NotRegular { path },
        Errno::ELOOP => invalid(path, "symlink loop, magic link, or a symlink swapped in"),
        // A scoped lookup refusing to leave the root (e.g. through a magic link).
        Errno::EXDEV => invalid(path, "leads out of the workspace"),
        Errno::ENAMETOOLONG => invalid(path, "name too long"),
        // The daemon acts as the session user: its permissions apply.
        Errno::EACCES | Errno::EPERM => WorkspaceError::PermissionDenied { path },
        // ENOMEM: a writer of the session met its memory limit.
        Errno::ENOSPC | Errno::EDQUOT | Errno::EFBIG | Errno::ENOMEM => {
            WorkspaceError::NoSpace { path }
        }
        Errno::ESRCH => WorkspaceError::SessionGone,
        source => WorkspaceError::Io { path, source },
    }
}

/// A file path of a one-shot run (`/v1/run`'s `files`), checked as the
/// files API checks one and made relative: PID 1 of the run writes it
/// (`sandbox::seed`), with the same rules as [`Workspace::write`].
pub fn seed_path(raw: &str) -> Result<PathBuf, WorkspaceError> {
    let rel = RelPath::parse(raw.as_bytes())?;
    if rel.split().is_none() {
        return Err(invalid(raw.into(), "names the workspace root itself"));
    }
    Ok(rel.0)
}

/// The error of a [`seed_path`] that PID 1 could not write, as the files
/// API would have given it: `sandbox::seed` says ELOOP for a final
/// symlink, ENXIO for a non-regular file and EMLINK for a hard link.
pub fn seed_error(rel: &Path, e: Errno) -> WorkspaceError {
    let rel = RelPath(rel.to_path_buf());
    match e {
        Errno::ELOOP => rel.not_regular(),
        Errno::EMLINK => rel.invalid("refusing to write through a hard link"),
        e => rel.err(e),
    }
}

/// Attaches the workspace path to an errno.
trait At<T> {
    fn at(self, rel: &RelPath) -> Res<T>;
}

impl<T> At<T> for Result<T, Errno> {
    fn at(self, rel: &RelPath) -> Res<T> {
        self.map_err(|e| rel.err(e))
    }
}

impl<T> At<T> for std::io::Result<T> {
    fn at(self, rel: &RelPath) -> Res<T> {
        self.map_err(|e| rel.err(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))))
    }
}

/// A normalised workspace-relative path: no leading `/`, `.`, `..` or empty
/// components; empty is the root.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RelPath(PathBuf);

impl RelPath {
    fn parse(raw: &[u8]) -> Res<RelPath> {
        let bad = |reason| Err(invalid(String::from_utf8_lossy(raw).into(), reason));
        if raw.len() > MAX_PATH {
            return bad("longer than 4096 bytes");
        }
        if raw.contains(&0) {
            return bad("contains a NUL byte");
        }
        let mut out = PathBuf::new();
        for comp in raw.split(|b| *b == b'/') {
            match comp {
                b"" | b"." => {}
                // RESOLVE_IN_ROOT would clamp it, but the client deserves to know.
                b".." => return bad("contains a `..` component"),
                comp => out.push(OsStr::from_bytes(comp)),
            }
        }
        Ok(RelPath(out))
    }

    /// (parent, final name); `None` for the root.
    fn split(&self) -> Option<(RelPath, &OsStr)> {
        Some((RelPath(self.0.parent()?.to_path_buf()), self.0.file_name()?))
    }

    fn join(&self, name: &OsStr) -> RelPath {
        RelPath(self.0.join(name))
    }

    fn shown(&self) -> String {
        format!("/{}", self.0.display())
    }

    fn err(&self, e: Errno) -> WorkspaceError {
        errno_error(self.shown(), e)
    }

    fn invalid(&self, reason: &'static str) -> WorkspaceError {
        invalid(self.shown(), reason)
    }

    fn not_regular(&self) -> WorkspaceError {
        WorkspaceError::NotRegular { path: self.shown() }
    }

    fn too_large(&self, max: u64) -> WorkspaceError {
        let path = self.shown();
        WorkspaceError::TooLarge { path, max }
    }
}

/// openat2(2); created files start 0600 until callers fchmod the real mode.
/// Scoped lookups fail with EAGAIN when a rename raced them: retry.
fn open_how(dir: impl AsFd, path: &Path, flags: OFlag, res: ResolveFlag) -> Result<OwnedFd, Errno> {
    let create = flags.contains(OFlag::O_CREAT);
    let mode = Mode::from_bits_truncate(if create { 0o600 } else { 0 });
    let flags = flags | OFlag::O_CLOEXEC;
    let how = OpenHow::new().flags(flags).mode(mode).resolve(res);
    let mut left = 16;
    loop {
        match openat2(dir.as_fd(), path, how) {
            Err(Errno::EAGAIN) if left > 0 => left -= 1,
            result => return result,
        }
    }
}

/// Opens the single component `name` of `dir`, following nothing: the kernel
/// stays beneath `dir` and a symlink is ELOOP.
fn open_child(dir: impl AsFd, name: &OsStr, flags: OFlag) -> Result<OwnedFd, Errno> {
    let resolve = ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS;
    let resolve = resolve | ResolveFlag::RESOLVE_NO_MAGICLINKS;
    open_how(dir, Path::new(name), flags | OFlag::O_NOFOLLOW, resolve)
}

fn kind_of(st: &FileStat) -> EntryKind {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => EntryKind::File,
        libc::S_IFDIR => EntryKind::Dir,
        libc::S_IFLNK => EntryKind::Symlink,
        _ => EntryKind::Other,
    }
}

/// Non-UTF-8 names are shown lossily: the API speaks JSON strings.
fn entry_of(name: &OsStr, st: &FileStat) -> Entry {
    Entry {
        name: name.to_string_lossy().into_owned(),
        kind: kind_of(st),
        size: u64::try_from(st.st_size).unwrap_or(0),
        mode: st.st_mode & 0o7777,
        mtime: st.st_mtime,
    }
}

/// The names in directory `fd` (readable, not O_PATH), sorted bytewise, and
/// the directory handle to use as their dirfd.
fn read_names(fd: OwnedFd, allow: &mut dyn Allowance, rel: &RelPath) -> Res<(Dir, Vec<OsString>)> {
    let mut dir = Dir::from_fd(fd).at(rel)?;
    let mut names = Vec::new();
    for entry in dir.iter() {
        let name = entry.at(rel)?.file_name().to_bytes().to_vec();
        if name == b"." || name == b".." {
            continue;
        }
        if !allow.take(name.len() as u64 + NAME_OVERHEAD) {
            return Err(WorkspaceError::Busy);
        }
        names.push(OsString::from_vec(name));
    }
    names.sort();
    Ok((dir, names))
}

/// All of `fd` if it is at most `max` bytes, `None` if longer (the file may
/// grow after fstat, so the read itself is bounded); what is kept is paid
/// for as it is read (the piece buffer is transient).
fn read_bounded(
    fd: OwnedFd,
    max: u64,
    allow: &mut dyn Allowance,
    rel: &RelPath,
) -> Res<Option<Vec<u8>>> {
    let mut data = Vec::new();
    let mut file = File::from(fd).take(max.saturating_add(1));
    let mut piece = vec![0u8; READ_PIECE];
    loop {
        let n = match file.read(&mut piece) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => other.at(rel)?,
        };
        if n == 0 {
            break;
        }
        if !allow.take(n as u64) {
            return Err(WorkspaceError::Busy);
        }
        data.extend_from_slice(&piece[..n]);
    }
    Ok((data.len() as u64 <= max).then_some(data))
}

/// `Ok(None)` when an entry vanished or changed type between readdir and
/// use: the sandbox is racing a walk, and the entry is skipped, never followed.
fn unless_raced<T>(result: Result<T, Errno>, rel: &RelPath) -> Res<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(Errno::ENOENT | Errno::ELOOP | Errno::ENOTDIR | Errno::ENXIO) => Ok(None),
        Err(e) => Err(rel.err(e)),
    }
}

impl Workspace {
    /// Opens `dir` as the root, written from this thread; this first open
    /// follows links on purpose, the caller chose the path. `owner` is the
    /// host uid/gid given to everything created through the API.
    pub fn open(dir: &Path, owner: (u32, u32)) -> Res<Workspace> {
        let root = nix::fcntl::open(dir, O_DIR_PATH | OFlag::O_CLOEXEC, Mode::empty())
            // Named as the session sees it: `dir` is a host path.
            .map_err(|e| errno_error("/workspace".into(), e))?;
        Ok(Workspace::with(root, owner, Box::new(InProcess)))
    }

    /// The `/workspace` directory of a session whose root directory is
    /// `root`, resolved inside that root with no symlink followed at all:
    /// the sandbox refuses to start on a root whose mount points are links,
    /// and if one got there it must not lead anywhere, least of all out of
    /// the root (an absolute link in a plain open of
    /// `/proc/<pid>/root/workspace` is resolved from the daemon's root).
    pub fn in_root(root: &OwnedFd, owner: (u32, u32), writer: Box<dyn Writer>) -> Res<Workspace> {
        let resolve = ResolveFlag::RESOLVE_IN_ROOT
            | ResolveFlag::RESOLVE_NO_MAGICLINKS
            | ResolveFlag::RESOLVE_NO_SYMLINKS;
        let path = || "/workspace".to_string();
        let ws = match open_how(root, Path::new("workspace"), O_DIR_PATH, resolve) {
            Ok(fd) => fd,
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                return Err(WorkspaceError::NotADirectory { path: path() })
            }
            Err(e) => return Err(errno_error(path(), e)),
        };
        Ok(Workspace::with(ws, owner, writer))
    }

    fn with(root: OwnedFd, owner: (u32, u32), writer: Box<dyn Writer>) -> Workspace {
        let (uid, gid) = (Uid::from_raw(owner.0), Gid::from_raw(owner.1));
        Workspace {
            root,
            uid,
            gid,
            writer,
        }
    }

    /// Opens `rel` with every symlink resolved inside the root.
    fn resolve(&self, rel: &RelPath, flags: OFlag) -> Res<OwnedFd> {
        let resolve = ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS;
        // `./` names the root fd itself.
        open_how(&self.root, &Path::new(".").join(&rel.0), flags, resolve).at(rel)
    }

    /// A file's bytes (at most `max`) or a directory's listing, sorted by name.
    pub fn read(&self, rel: &str, max: u64) -> Res<Node> {
        self.read_within(rel, max, &mut Unbounded)
    }

    /// [`Workspace::read`], holding only what `allow` grants.
    pub fn read_within(&self, rel: &str, max: u64, allow: &mut dyn Allowance) -> Res<Node> {
        let rel = RelPath::parse(rel.as_bytes())?;
        let fd = self.resolve(&rel, O_READ)?;
        match kind_of(&fstat(&fd).at(&rel)?) {
            EntryKind::Dir => list(fd, &rel, allow).map(Node::Dir),
            EntryKind::File => {
                let data = read_bounded(fd, max, allow, &rel)?;
                data.map(Node::File).ok_or(rel.too_large(max))
            }
            _ => Err(rel.not_regular()),
        }
    }

    /// Metadata of `rel`; a final symlink is reported as itself. The root is named "/".
    pub fn stat(&self, rel: &str) -> Res<Entry> {
        let rel = RelPath::parse(rel.as_bytes())?;
        let st = fstat(self.resolve(&rel, OFlag::O_PATH | OFlag::O_NOFOLLOW)?).at(&rel)?;
        Ok(entry_of(rel.0.file_name().unwrap_or(OsStr::new("/")), &st))
    }

    /// Creates (0644, chowned to the owner) or truncates the regular file `rel`.
    /// A final symlink is refused (`NotRegular`), never followed.
    pub fn write(&self, rel: &str, data: &[u8], parents: bool) -> Res<()> {
        let rel = RelPath::parse(rel.as_bytes())?;
        self.put_file(&rel, data, 0o644, parents).map(drop)
    }

    /// The parent directory of `rel` (created when `parents`) and its final name.
    fn parent<'a>(&self, rel: &'a RelPath, parents: bool) -> Res<(OwnedFd, &'a OsStr)> {
        let Some((parent, name)) = rel.split() else {
            return Err(rel.invalid("names the workspace root itself"));
        };
        match parents {
            true => Ok((self.mkdir_all(&parent)?, name)),
            false => Ok((self.resolve(&parent, O_DIR_PATH)?, name)),
        }
    }

    /// Creates (with `mode`, chowned) or truncates regular file `rel`, writes `data`.
    fn put_file(&self, rel: &RelPath, data: &[u8], mode: u32, parents: bool) -> Res<OwnedFd> {
        let (dir, name, fd, created) = self.open_for_write(rel, mode, parents)?;
        if let Err(e) = self.writer.write(&[(fd.as_fd(), data)]) {
            // A file we made and could not fill (the workspace is full) is
            // removed again: a failed request leaves nothing behind.
            if created {
                let _ = unlinkat(&dir, name, UnlinkatFlags::NoRemoveDir);
            }
            return Err(rel.err(e));
        }
        Ok(fd)
    }

    /// Creates (with `mode`, chowned) or opens and truncates regular file
    /// `rel` for writing: (its directory, its name, the file, whether it
    /// was created).
    fn open_for_write<'a>(
        &self,
        rel: &'a RelPath,
        mode: u32,
        parents: bool,
    ) -> Res<(OwnedFd, &'a OsStr, OwnedFd, bool)> {
        let (dir, name) = self.parent(rel, parents)?;
        let fd = match open_child(&dir, name, O_WRITE | OFlag::O_CREAT | OFlag::O_EXCL) {
            Ok(fd) => {
                let chowned = fchown(&fd, Some(self.uid), Some(self.gid))
                    .and_then(|()| fchmod(&fd, Mode::from_bits_truncate(mode)));
                if let Err(e) = chowned {
                    let _ = unlinkat(&dir, name, UnlinkatFlags::NoRemoveDir);
                    return Err(rel.err(e));
                }
                return Ok((dir, name, fd, true));
            }
            Err(Errno::EEXIST) => match open_child(&dir, name, O_WRITE) {
                Err(Errno::ELOOP) => return Err(rel.not_regular()),
                other => other.at(rel)?,
            },
            Err(e) => return Err(rel.err(e)),
        };
        let st = fstat(&fd).at(rel)?;
        if kind_of(&st) != EntryKind::File {
            return Err(rel.not_regular());
        }
        // Truncating a multiply-linked inode writes to names we never
        // resolved, possibly outside the workspace tree.
        if st.st_nlink > 1 {
            return Err(rel.invalid("refusing to write through a hard link"));
        }
        ftruncate(&fd, 0).at(rel)?;
        Ok((dir, name, fd, false))
    }

    /// `mkdir -p` inside the root; returns the directory's fd. Each prefix is
    /// resolved from the root, so existing links behave as they do for `read`.
    fn mkdir_all(&self, rel: &RelPath) -> Res<OwnedFd> {
        let mut cur = RelPath(PathBuf::new());
        let mut fd = self.resolve(&cur, O_DIR_PATH)?;
        for name in rel.0.iter() {
            let next = cur.join(name);
            fd = match self.resolve(&next, O_DIR_PATH) {
                Err(WorkspaceError::NotFound { .. }) => match self.mkdir_child(&fd, name, 0o755) {
                    // Raced, or a dangling symlink: resolve again, fail if still missing.
                    Err(Errno::EEXIST) => self.resolve(&next, O_DIR_PATH)?,
                    other => other.at(&next)?,
                },
                other => other?,
            };
            cur = next;
        }
        Ok(fd)
    }

    /// mkdirat, then chown/chmod through a no-follow fd of the new directory,
    /// so a swap right after mkdirat cannot redirect them (nor the umask decide).
    fn mkdir_child(&self, dir: &OwnedFd, name: &OsStr, mode: u32) -> Result<OwnedFd, Errno> {
        let mode = Mode::from_bits_truncate(mode);
        mkdirat(dir, name, mode)?;
        let fd = open_child(dir, name, O_DIR_READ)?;
        fchown(&fd, Some(self.uid), Some(self.gid))?;
        fchmod(&fd, mode)?;
        Ok(fd)
    }

    /// Removes a file, a symlink itself, an empty directory, or with
    /// `recursive` a whole tree (links inside are unlinked, never followed).
    pub fn remove(&self, rel: &str, recursive: bool) -> Res<()> {
        self.remove_within(rel, recursive, &mut Unbounded)
    }

    /// [`Workspace::remove`], holding the names of a tree's directories
    /// only as far as `allow` grants.
    pub fn remove_within(&self, rel: &str, recursive: bool, allow: &mut dyn Allowance) -> Res<()> {
        let rel = RelPath::parse(rel.as_bytes())?;
        let (dir, name) = self.parent(&rel, false)?;
        match kind_of(&fstatat(&dir, name, NOFOLLOW).at(&rel)?) {
            EntryKind::Dir if recursive => remove_tree(&dir, name, &rel, allow),
            EntryKind::Dir => unlinkat(&dir, name, UnlinkatFlags::RemoveDir).at(&rel),
            _ => unlinkat(&dir, name, UnlinkatFlags::NoRemoveDir).at(&rel),
        }
    }

    /// A tar of directory `rel`, names relative to it. Symlinks are stored as
    /// links, FIFOs and sockets skipped, owners recorded as 0 (host ids mean
    /// nothing to the client). `max` bounds the whole archive, headers included.
    pub fn tar(&self, rel: &str, max: u64) -> Res<Vec<u8>> {
        self.tar_within(rel, max, &mut Unbounded)
    }

    /// [`Workspace::tar`], holding only what `allow` grants.
    pub fn tar_within(&self, rel: &str, max: u64, allow: &mut dyn Allowance) -> Res<Vec<u8>> {
        let rel = RelPath::parse(rel.as_bytes())?;
        let fd = self.resolve(&rel, O_DIR_READ)?;
        let mut builder = tar::Builder::new(Vec::new());
        tar_dir(&mut builder, fd, &rel, Path::new(""), max, allow)?;
        let archive = builder.into_inner().at(&rel)?;
        let fits = archive.len() as u64 <= max;
        fits.then_some(archive).ok_or_else(|| rel.too_large(max))
    }

    /// Unpacks `tar` into directory `rel` (created when missing); returns the
    /// number of entries written. See `plan_untar` for what is refused. Modes
    /// lose setuid/setgid/sticky; everything created is chowned to the owner.
    /// Files are filled in batches by the writer; if that fails, the files
    /// this call created are removed again.
    pub fn untar(&self, rel: &str, tar: &[u8], max: u64) -> Res<u64> {
        let dest = RelPath::parse(rel.as_bytes())?;
        let items = plan_untar(&dest, tar, max)?;
        self.mkdir_all(&dest)?;
        let mut batch = Vec::new();
        let mut created = Vec::new();
        let unpacked = (|| {
            for (path, item) in &items {
                let full = RelPath(dest.0.join(path));
                match item {
                    Item::Dir(mode) => self.put_dir(&full, *mode)?,
                    Item::File(data, mode, mtime) => {
                        let (_, _, fd, made) = self.open_for_write(&full, *mode, true)?;
                        if made {
                            created.push(full.clone());
                        }
                        batch.push(Pending {
                            rel: full,
                            fd,
                            data,
                            mode: *mode,
                            mtime: *mtime,
                        });
                        if batch.len() == WRITE_BATCH {
                            self.fill(&dest, &mut batch)?;
                        }
                    }
                    Item::Symlink(to) => self.put_symlink(&full, to)?,
                }
            }
            self.fill(&dest, &mut batch)
        })();
        if let Err(e) = unpacked {
            for rel in created.iter().rev() {
                if let Some((parent, name)) = rel.split() {
                    if let Ok(dir) = self.resolve(&parent, O_DIR_PATH) {
                        let _ = unlinkat(&dir, name, UnlinkatFlags::NoRemoveDir);
                    }
                }
            }
            return Err(e);
        }
        Ok(items.len() as u64)
    }

    /// Writes the pending files of an archive, then sets their modes (again,
    /// also when the file existed, as tar(1) does) and mtimes: after the
    /// bytes, which would change the mtime.
    fn fill(&self, dest: &RelPath, batch: &mut Vec<Pending<'_>>) -> Res<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let files: Vec<(BorrowedFd<'_>, &[u8])> = batch
            .iter()
            .map(|p| (p.fd.as_fd(), p.data.as_slice()))
            .collect();
        self.writer.write(&files).map_err(|e| dest.err(e))?;
        for p in batch.drain(..) {
            fchmod(&p.fd, Mode::from_bits_truncate(p.mode)).at(&p.rel)?;
            let mtime = TimeSpec::new(i64::try_from(p.mtime).unwrap_or(0), 0);
            futimens(&p.fd, &TimeSpec::UTIME_OMIT, &mtime).at(&p.rel)?;
        }
        Ok(())
    }

    fn put_dir(&self, rel: &RelPath, mode: u32) -> Res<()> {
        let (dir, name) = self.parent(rel, true)?;
        match self.mkdir_child(&dir, name, mode) {
            Err(Errno::EEXIST) => self.resolve(rel, O_DIR_PATH).map(drop),
            other => other.at(rel).map(drop),
        }
    }

    /// Creates symlink `rel`, replacing a non-directory (EISDIR otherwise) as tar(1) does.
    fn put_symlink(&self, rel: &RelPath, to: &OsStr) -> Res<()> {
        let (dir, name) = self.parent(rel, true)?;
        if let Err(Errno::EEXIST) = symlinkat(to, &dir, name) {
            unlinkat(&dir, name, UnlinkatFlags::NoRemoveDir).at(rel)?;
            symlinkat(to, &dir, name).at(rel)?;
        }
        fchownat(&dir, name, Some(self.uid), Some(self.gid), NOFOLLOW).at(rel)
    }
}

fn list(fd: OwnedFd, rel: &RelPath, allow: &mut dyn Allowance) -> Res<Vec<Entry>> {
    let (dir, names) = read_names(fd, allow, rel)?;
    if !allow.take(names.len() as u64 * LISTED_ENTRY) {
        return Err(WorkspaceError::Busy);
    }
    let mut entries = Vec::with_capacity(names.len());
    for name in names {
        let st = fstatat(&dir, name.as_os_str(), NOFOLLOW);
        if let Some(st) = unless_raced(st, &rel.join(&name))? {
            entries.push(entry_of(&name, &st));
        }
    }
    Ok(entries)
}

fn remove_tree(
    parent: &impl AsFd,
    name: &OsStr,
    rel: &RelPath,
    allow: &mut dyn Allowance,
) -> Res<()> {
    if rel.0.components().count() > MAX_DEPTH {
        return Err(rel.invalid("directory tree nested too deeply"));
    }
    let (dir, names) = read_names(open_child(parent, name, O_DIR_READ).at(rel)?, allow, rel)?;
    for child in names {
        let (path, child) = (rel.join(&child), child.as_os_str());
        match unless_raced(fstatat(&dir, child, NOFOLLOW), &path)? {
            Some(st) if kind_of(&st) == EntryKind::Dir => remove_tree(&dir, child, &path, allow)?,
            Some(_) => match unlinkat(&dir, child, UnlinkatFlags::NoRemoveDir) {
                Err(Errno::ENOENT) => {}
                other => other.at(&path)?,
            },
            None => {}
        }
    }
    unlinkat(parent, name, UnlinkatFlags::RemoveDir).at(rel)
}

fn tar_dir(
    out: &mut Tar,
    fd: OwnedFd,
    rel: &RelPath,
    prefix: &Path,
    max: u64,
    allow: &mut dyn Allowance,
) -> Res<()> {
    if rel.0.components().count() > MAX_DEPTH {
        return Err(rel.invalid("directory tree nested too deeply"));
    }
    let (dir, names) = read_names(fd, allow, rel)?;
    // What the archive held when last paid for.
    let mut paid = out.get_ref().len() as u64;
    for name in names {
        // Headers count too: a million empty files must not go unbounded.
        let held = out.get_ref().len() as u64;
        if held > max {
            return Err(rel.too_large(max));
        }
        // The archive grows by what the last entry added (a file's bytes
        // were paid for while read, and are held twice while appended).
        if !allow.take(held.saturating_sub(paid)) {
            return Err(WorkspaceError::Busy);
        }
        paid = held;
        let (arc, child, name) = (prefix.join(&name), rel.join(&name), name.as_os_str());
        let Some(st) = unless_raced(fstatat(&dir, name, NOFOLLOW), &child)? else {
            continue;
        };
        let mut header = tar::Header::new_gnu();
        header.set_mode(st.st_mode & 0o7777);
        header.set_mtime(u64::try_from(st.st_mtime).unwrap_or(0));
        header.set_size(0);
        match kind_of(&st) {
            EntryKind::Dir => {
                let Some(sub) = unless_raced(open_child(&dir, name, O_DIR_READ), &child)? else {
                    continue;
                };
                header.set_entry_type(EntryType::Directory);
                out.append_data(&mut header, &arc, &[][..]).at(&child)?;
                tar_dir(out, sub, &child, &arc, max, allow)?;
                paid = out.get_ref().len() as u64;
            }
            EntryKind::File => {
                let Some(file) = unless_raced(open_child(&dir, name, O_READ), &child)? else {
                    continue;
                };
                // Check the fd, not the name: it may have been swapped for a FIFO.
                if kind_of(&fstat(&file).at(&child)?) != EntryKind::File {
                    continue;
                }
                let budget = max.saturating_sub(out.get_ref().len() as u64);
                let Some(data) = read_bounded(file, budget, allow, &child)? else {
                    return Err(rel.too_large(max));
                };
                header.set_size(data.len() as u64);
                header.set_entry_type(EntryType::Regular);
                out.append_data(&mut header, &arc, &data[..]).at(&child)?;
            }
            EntryKind::Symlink => {
                let Some(target) = unless_raced(readlinkat(&dir, name), &child)? else {
                    continue;
                };
                header.set_entry_type(EntryType::Symlink);
                out.append_link(&mut header, &arc, &target).at(&child)?;
            }
            // FIFOs and sockets have no content worth archiving.
            EntryKind::Other => continue,
        }
    }
    let held = out.get_ref().len() as u64;
    if !allow.take(held.saturating_sub(paid)) {
        return Err(WorkspaceError::Busy);
    }
    Ok(())
}

/// A file of an archive, opened, waiting for its bytes.
struct Pending<'a> {
    rel: RelPath,
    fd: OwnedFd,
    data: &'a Vec<u8>,
    mode: u32,
    mtime: u64,
}

/// An archive entry to create: directory (mode), file (data, mode, mtime), symlink (target).
enum Item {
    Dir(u32),
    File(Vec<u8>, u32, u64),
    Symlink(OsString),
}

/// Validates and loads the whole archive, so a bad entry anywhere is refused
/// before the first write: absolute or `..` names, hard links, devices,
/// FIFOs, paths through a symlink of the same archive, more than `max` bytes.
fn plan_untar(dest: &RelPath, tar: &[u8], max: u64) -> Res<Vec<(PathBuf, Item)>> {
    let malformed = |source| WorkspaceError::Archive { source };
    let mut archive = tar::Archive::new(tar);
    let (mut items, mut symlinks, mut total) = (Vec::new(), HashSet::new(), 0u64);
    for entry in archive.entries().map_err(malformed)? {
        let mut entry = entry.map_err(malformed)?;
        let raw = entry.path_bytes().into_owned();
        let path = RelPath::parse(&raw)?;
        let bad = |reason| Err(invalid(String::from_utf8_lossy(&raw).into(), reason));
        if raw.starts_with(b"/") {
            return bad("absolute path in archive");
        }
        // A link from this archive would redirect later entries: still inside
        // the root, but not where the archive claims.
        if path.0.ancestors().skip(1).any(|a| symlinks.contains(a)) {
            return bad("path goes through a symlink from the same archive");
        }
        let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
        let root = path.split().is_none();
        let kind = match entry.header().entry_type() {
            EntryType::Directory if root => continue,
            EntryType::XGlobalHeader => continue,
            _ if root => return bad("entry names the destination directory itself"),
            EntryType::Directory => Item::Dir(mode),
            EntryType::Regular | EntryType::Continuous => {
                total = total.saturating_add(entry.size());
                if total > max {
                    return Err(dest.too_large(max));
                }
                let mut data = Vec::new();
                entry.read_to_end(&mut data).map_err(malformed)?;
                Item::File(data, mode, entry.header().mtime().unwrap_or(0))
            }
            EntryType::Symlink => match entry.link_name_bytes() {
                Some(target) if !target.is_empty() => {
                    symlinks.insert(path.0.clone());
                    Item::Symlink(OsString::from_vec(target.into_owned()))
                }
                _ => return bad("symlink without a target"),
            },
            EntryType::Link => return bad("hard links are not allowed"),
            EntryType::Char | EntryType::Block => return bad("device nodes are not allowed"),
            EntryType::Fifo => return bad("FIFOs are not allowed"),
            _ => return bad("unsupported entry type"),
        };
        items.push((path.0, kind));
    }
    // A name archived twice: the later entry wins, as with tar(1); the
    // earlier one is not written at all (both files would be open at once
    // in a batch, and a longer first version would leave its tail).
    let mut last = std::collections::HashMap::new();
    for (i, (path, _)) in items.iter().enumerate() {
        last.insert(path.clone(), i);
    }
    let items = items
        .into_iter()
        .enumerate()
        .filter(|(i, (path, _))| last.get(path) == Some(i))
        .map(|(_, item)| item)
        .collect();
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
    use tar::EntryType::{Char, Fifo, Link, Regular, Symlink};

    const OWNER: (u32, u32) = (4321, 4321);
    const MAX: u64 = 1 << 20;

    /// A fake workspace `ws` with a fake host directory `host` beside it.
    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf, Workspace) {
        let tmp = tempfile::tempdir().unwrap();
        let (ws, host) = (tmp.path().join("ws"), tmp.path().join("host"));
        fs::create_dir(&ws).unwrap();
        fs::create_dir(&host).unwrap();
        fs::write(host.join("secret.txt"), "host secret").unwrap();
        let w = Workspace::open(&ws, OWNER).unwrap();
        (tmp, ws, host, w)
    }

    fn code<T: std::fmt::Debug>(result: Res<T>) -> &'static str {
        result.unwrap_err().code()
    }

    /// (uid, gid, permission bits) of `path` itself.
    fn owner_mode(path: &Path) -> (u32, u32, u32) {
        let meta = fs::symlink_metadata(path).unwrap();
        (meta.uid(), meta.gid(), meta.mode() & 0o7777)
    }

    fn host_untouched(host: &Path) {
        assert_eq!(fs::read_dir(host).unwrap().count(), 1);
        assert_eq!(fs::read(host.join("secret.txt")).unwrap(), b"host secret");
    }

    #[test]
    #[ignore = "privileged: writes chown to the sandbox's owner"]
    fn write_read_round_trip_parents_and_owner() {
        let (_tmp, ws, _host, w) = setup();
        w.write("a.txt", b"hello world", false).unwrap();
        w.write("/a.txt", b"short", false).unwrap();
        assert_eq!(w.read("a.txt", 100).unwrap(), Node::File(b"short".into()));
        assert_eq!(owner_mode(&ws.join("a.txt")), (4321, 4321, 0o644));
        w.write("//x/./y/z.txt", b"deep", true).unwrap();
        assert_eq!(w.read("x/y/z.txt", 9).unwrap(), Node::File(b"deep".into()));
        assert_eq!(owner_mode(&ws.join("x")), (4321, 4321, 0o755));
        assert_eq!(owner_mode(&ws.join("x/y")), (4321, 4321, 0o755));
        assert_eq!(code(w.write("missing/f.txt", b"", false)), "file_not_found");
        assert!(!ws.join("missing").exists());
        let err = w.read("a.txt", 4).unwrap_err();
        assert_eq!((err.code(), err.http_status()), ("file_too_large", 413));
        assert_eq!(code(w.write("x", b"", false)), "is_a_directory");
        assert_eq!(code(w.write("a.txt/b", b"", false)), "not_a_directory");
        // A multiply-linked inode is not written through.
        fs::hard_link(ws.join("a.txt"), ws.join("hard")).unwrap();
        assert_eq!(code(w.write("hard", b"x", false)), "invalid_path");
        assert_eq!(fs::read(ws.join("a.txt")).unwrap(), b"short");
    }

    /// An allowance of `left` bytes in all.
    struct Capped {
        left: u64,
    }

    impl Allowance for Capped {
        fn take(&mut self, bytes: u64) -> bool {
            let ok = bytes <= self.left;
            if ok {
                self.left -= bytes;
            }
            ok
        }
    }

    #[test]
    fn reads_listings_archives_and_deletes_hold_only_what_they_are_allowed() {
        let (_tmp, ws, _host, w) = setup();
        fs::write(ws.join("big"), vec![7u8; 1 << 20]).unwrap();
        fs::create_dir(ws.join("many")).unwrap();
        for i in 0..2000 {
            fs::write(ws.join(format!("many/file-with-a-longish-name-{i}")), "").unwrap();
        }
        let busy = |r: Result<(), WorkspaceError>| r.err().map(|e| e.code());
        // Half of the file's size: refused before it is all held.
        let mut half = Capped { left: 512 << 10 };
        assert_eq!(
            busy(w.read_within("big", MAX, &mut half).map(drop)),
            Some("output_budget_exhausted")
        );
        // Enough: served whole, and paid for.
        let mut enough = Capped { left: 2 << 20 };
        assert_eq!(
            w.read_within("big", MAX, &mut enough).unwrap(),
            Node::File(vec![7u8; 1 << 20])
        );
        assert!(enough.left <= 1 << 20, "{}", enough.left);
        // 2000 names: more than 64 KiB of names and listing.
        for (what, r) in [
            (
                "list",
                w.read_within("many", MAX, &mut Capped { left: 64 << 10 })
                    .map(drop),
            ),
            (
                "tar",
                w.tar_within("many", MAX, &mut Capped { left: 64 << 10 })
                    .map(drop),
            ),
            (
                "remove",
                w.remove_within("many", true, &mut Capped { left: 32 << 10 }),
            ),
        ] {
            assert_eq!(busy(r), Some("output_budget_exhausted"), "{what}");
        }
        // Refused, nothing was removed; with room, all goes.
        assert_eq!(fs::read_dir(ws.join("many")).unwrap().count(), 2000);
        let Node::Dir(listed) = w
            .read_within("many", MAX, &mut Capped { left: 4 << 20 })
            .unwrap()
        else {
            panic!("not a listing");
        };
        assert_eq!(listed.len(), 2000);
        let tar = w
            .tar_within("", 4 << 20, &mut Capped { left: 8 << 20 })
            .unwrap();
        assert!(tar.len() > 1 << 20);
        w.remove_within("many", true, &mut Capped { left: 1 << 20 })
            .unwrap();
        assert!(!ws.join("many").exists());
    }

    #[test]
    fn listing_stat_and_fifo() {
        let (_tmp, ws, _host, w) = setup();
        fs::write(ws.join("b.txt"), "12345").unwrap();
        fs::set_permissions(ws.join("b.txt"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::create_dir(ws.join("a")).unwrap();
        fs::set_permissions(ws.join("a"), fs::Permissions::from_mode(0o750)).unwrap();
        symlink("b.txt", ws.join("c")).unwrap();
        nix::unistd::mkfifo(&ws.join("d"), Mode::from_bits_truncate(0o644)).unwrap();
        // Opening a FIFO must not block: a thread, so a hang fails the test.
        let (tx, rx) = std::sync::mpsc::channel();
        let ws2 = Workspace::open(&ws, OWNER).unwrap();
        std::thread::spawn(move || {
            let read = code(ws2.read("d", 100));
            let _ = tx.send([read, code(ws2.write("d", b"x", false))]);
        });
        let codes = rx.recv_timeout(std::time::Duration::from_secs(10));
        assert_eq!(codes, Ok(["not_a_regular_file"; 2]), "blocked on a FIFO?");
        let Ok(Node::Dir(got)) = w.read("/", 0) else {
            panic!()
        };
        let row = |e: &Entry| (e.name.clone(), e.kind, e.mode, e.size);
        let got: Vec<_> = got.iter().map(row).collect();
        let want = [
            ("a".into(), EntryKind::Dir, 0o750, got[0].3),
            ("b.txt".into(), EntryKind::File, 0o600, 5),
            ("c".into(), EntryKind::Symlink, 0o777, 5),
            ("d".into(), EntryKind::Other, 0o644, 0),
        ];
        assert_eq!(got, want);
        assert!(w.stat("b.txt").unwrap().mtime > 1_600_000_000);
        assert_eq!(w.stat("c").unwrap().kind, EntryKind::Symlink);
        assert_eq!(w.stat("").unwrap().name, "/");
        let json = serde_json::to_value(w.stat("a").unwrap()).unwrap();
        assert_eq!(json["type"], "dir");
    }

    #[test]
    #[ignore = "privileged: writes chown to the sandbox's owner"]
    fn hostile_symlinks_stay_inside_the_root() {
        let (_tmp, ws, host, w) = setup();
        fs::write(ws.join("inside.txt"), "in root").unwrap();
        symlink("/etc", ws.join("etc")).unwrap();
        symlink("../../../../..", ws.join("up")).unwrap();
        symlink("/etc/hostname", ws.join("abs")).unwrap();
        symlink(&host, ws.join("hostdir")).unwrap();
        symlink(host.join("secret.txt"), ws.join("hostfile")).unwrap();
        // `etc` resolves to itself inside the root: a loop, not the host's /etc.
        assert_eq!(code(w.read("abs", MAX)), "invalid_path");
        assert_eq!(code(w.read("etc/passwd", MAX)), "invalid_path");
        for path in ["hostfile", "hostdir/secret.txt", "up/host/secret.txt"] {
            assert_eq!(code(w.read(path, MAX)), "file_not_found", "{path}");
        }
        // `..` past the root is clamped to the root.
        let inside = w.read("up/inside.txt", 100).unwrap();
        assert_eq!(inside, Node::File(b"in root".into()));

        assert!(w.write("etc/pwned", b"x", false).is_err());
        assert!(w.write("etc/pwned", b"x", true).is_err());
        assert!(w.write("hostdir/pwned", b"x", true).is_err());
        assert_eq!(code(w.write("hostfile", b"x", false)), "not_a_regular_file");
        w.write("up/pwned", b"x", false).unwrap();
        assert!(ws.join("pwned").exists() && !ws.parent().unwrap().join("pwned").exists());
        assert!(!Path::new("/etc/pwned").exists());
        host_untouched(&host);

        w.remove("etc", false).unwrap();
        w.remove("hostdir", true).unwrap();
        assert!(ws.join("etc").symlink_metadata().is_err());
        assert!(ws.join("hostdir").symlink_metadata().is_err());
        assert!(Path::new("/etc/passwd").exists());

        fs::create_dir_all(ws.join("tree/sub")).unwrap();
        fs::write(ws.join("tree/sub/f"), "f").unwrap();
        symlink(&host, ws.join("tree/sub/hostdir")).unwrap();
        symlink("../../../..", ws.join("tree/up")).unwrap();
        assert_eq!(code(w.remove("tree", false)), "directory_not_empty");
        w.remove("tree", true).unwrap();
        assert!(!ws.join("tree").exists() && ws.join("inside.txt").exists());
        host_untouched(&host);

        // /proc/self/{root,cwd} are magic links to the host's real root.
        let w = Workspace::open(Path::new("/proc/self"), OWNER).unwrap();
        assert_eq!(code(w.read("root/etc/passwd", MAX)), "invalid_path");
        assert_eq!(code(w.read("cwd", MAX)), "invalid_path");
    }

    #[test]
    fn a_linked_or_missing_workspace_in_a_root_is_never_followed() {
        let (tmp, _ws, host, _w) = setup();
        let host_s = host.to_str().unwrap();
        for target in [
            host_s,
            "/etc",
            "/proc",
            "/",
            "..",
            "../host",
            "/proc/self/root",
        ] {
            let root = tmp.path().join("root");
            let _ = fs::remove_dir_all(&root);
            fs::create_dir_all(root.join("etc")).unwrap();
            symlink(target, root.join("workspace")).unwrap();
            let fd = nix::fcntl::open(&root, O_DIR_PATH, Mode::empty()).unwrap();
            let err = Workspace::in_root(&fd, OWNER, Box::new(InProcess)).unwrap_err();
            assert_eq!(err.code(), "not_a_directory", "{target}: {err}");
            assert_eq!(err.to_string(), "not a directory: /workspace", "{target}");
        }
        host_untouched(&host);
        // A file, or nothing, there.
        let root = tmp.path().join("root");
        fs::remove_file(root.join("workspace")).unwrap();
        let fd = nix::fcntl::open(&root, O_DIR_PATH, Mode::empty()).unwrap();
        let missing = Workspace::in_root(&fd, OWNER, Box::new(InProcess)).unwrap_err();
        assert_eq!(missing.code(), "file_not_found");
        fs::write(root.join("workspace"), "a file").unwrap();
        let file = Workspace::in_root(&fd, OWNER, Box::new(InProcess)).unwrap_err();
        assert_eq!(file.code(), "not_a_directory");
        // A real directory is the workspace; its files are read inside it.
        fs::remove_file(root.join("workspace")).unwrap();
        fs::create_dir(root.join("workspace")).unwrap();
        fs::write(root.join("workspace/in.txt"), "in").unwrap();
        let w = Workspace::in_root(&fd, OWNER, Box::new(InProcess)).unwrap();
        assert_eq!(w.read("in.txt", 10).unwrap(), Node::File(b"in".to_vec()));
    }

    /// Records what it is asked to write, writes it, and fails from the
    /// `fail_at`-th call on with `errno`.
    #[derive(Debug, Default)]
    struct Recording {
        calls: std::sync::Mutex<Vec<Vec<usize>>>,
        fail_at: Option<(usize, Errno)>,
    }

    impl Writer for std::sync::Arc<Recording> {
        fn write(&self, files: &[(BorrowedFd<'_>, &[u8])]) -> Result<(), Errno> {
            let mut calls = self.calls.lock().unwrap();
            calls.push(files.iter().map(|(_, d)| d.len()).collect());
            match self.fail_at {
                Some((n, e)) if calls.len() >= n => Err(e),
                _ => InProcess.write(files),
            }
        }
    }

    fn recorded(
        ws: &Path,
        fail_at: Option<(usize, Errno)>,
    ) -> (std::sync::Arc<Recording>, Workspace) {
        let rec = std::sync::Arc::new(Recording {
            fail_at,
            ..Default::default()
        });
        let root = nix::fcntl::open(ws, O_DIR_PATH | OFlag::O_CLOEXEC, Mode::empty()).unwrap();
        (rec.clone(), Workspace::with(root, OWNER, Box::new(rec)))
    }

    fn files_archive(n: usize, size: usize) -> Vec<u8> {
        let specs: Vec<String> = (0..n).map(|i| format!("f{i:03}")).collect();
        let data = vec![b'x'; size];
        let entries: Vec<Spec> = specs
            .iter()
            .map(|p| (p.as_str(), Regular, data.as_slice(), "", 0o644))
            .collect();
        hostile(&entries)
    }

    #[test]
    #[ignore = "privileged: writes chown to the sandbox's owner"]
    fn every_byte_goes_through_the_writer_in_batches() {
        let (_tmp, ws, _host, _w) = setup();
        let (rec, w) = recorded(&ws, None);
        w.write("a.txt", b"abc", false).unwrap();
        assert_eq!(w.untar("t", &files_archive(70, 5), MAX).unwrap(), 70);
        let calls = rec.calls.lock().unwrap().clone();
        assert_eq!(calls[0], vec![3]);
        assert_eq!(calls[1], vec![5; WRITE_BATCH]);
        assert_eq!(calls[2], vec![5; 70 - WRITE_BATCH]);
        assert_eq!(fs::read(ws.join("t/f069")).unwrap(), b"xxxxx");
        assert_eq!(owner_mode(&ws.join("t/f000")), (4321, 4321, 0o644));
    }

    #[test]
    #[ignore = "privileged: writes chown to the sandbox's owner"]
    fn a_failed_write_leaves_no_file_it_created() {
        let (_tmp, ws, _host, _w) = setup();
        let (_rec, w) = recorded(&ws, Some((1, Errno::ENOMEM)));
        let err = w.write("big", b"data", false).unwrap_err();
        assert_eq!((err.code(), err.http_status()), ("workspace_full", 413));
        assert!(!ws.join("big").exists());
        // An archive: the second batch fails; the first batch's files go too.
        fs::create_dir(ws.join("t")).unwrap();
        fs::write(ws.join("t/keep"), "kept").unwrap();
        let (_rec, w) = recorded(&ws, Some((2, Errno::ENOSPC)));
        let err = w.untar("t", &files_archive(70, 5), MAX).unwrap_err();
        assert_eq!(err.code(), "workspace_full");
        let left: Vec<_> = fs::read_dir(ws.join("t"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left, vec![OsString::from("keep")]);
        // The session ended meanwhile.
        let (_rec, w) = recorded(&ws, Some((1, Errno::ESRCH)));
        let err = w.write("x", b"x", false).unwrap_err();
        assert_eq!(
            (err.code(), err.http_status()),
            ("session_not_running", 409)
        );
    }

    #[test]
    #[ignore = "privileged: writes chown to the sandbox's owner"]
    fn a_name_archived_twice_gets_the_later_entry_whole() {
        let (_tmp, ws, _host, w) = setup();
        let archive = hostile(&[
            ("f", Regular, b"a longer first version", "", 0o600),
            ("f", Regular, b"short", "", 0o644),
        ]);
        assert_eq!(w.untar("d", &archive, MAX).unwrap(), 1);
        assert_eq!(fs::read(ws.join("d/f")).unwrap(), b"short");
        assert_eq!(owner_mode(&ws.join("d/f")).2, 0o644);
    }

    #[test]
    fn invalid_paths_and_root_removal() {
        let (_tmp, ws, _host, w) = setup();
        fs::create_dir(ws.join("a")).unwrap();
        let long = "a/".repeat(2100);
        for bad in ["..", "../x", "a/../a", "a/..", "a\0b", long.as_str()] {
            let err = w.read(bad, 10).unwrap_err();
            assert_eq!(err.http_status(), 400, "{bad:?}");
            assert_eq!(code(w.write(bad, b"x", true)), "invalid_path");
        }
        for root in ["", "/", "//./"] {
            assert_eq!(code(w.remove(root, true)), "invalid_path");
            assert_eq!(code(w.write(root, b"x", true)), "invalid_path");
        }
        assert!(ws.join("a").is_dir());
        w.remove("a", false).unwrap();
        assert!(!ws.join("a").exists());
        assert_eq!(code(w.remove("a", false)), "file_not_found");
    }

    #[test]
    #[ignore = "privileged: writes chown to the sandbox's owner"]
    fn tar_round_trip() {
        let (_tmp, ws, _host, w) = setup();
        fs::create_dir_all(ws.join("src/d/e")).unwrap();
        fs::write(ws.join("src/f.txt"), "top").unwrap();
        fs::set_permissions(ws.join("src/f.txt"), fs::Permissions::from_mode(0o640)).unwrap();
        fs::write(ws.join("src/d/g.txt"), "nested").unwrap();
        symlink("d/g.txt", ws.join("src/link")).unwrap();
        symlink("/etc", ws.join("src/etc")).unwrap();
        nix::unistd::mkfifo(&ws.join("src/fifo"), Mode::S_IRWXU).unwrap();
        let archive = w.tar("src", MAX).unwrap();

        assert_eq!(w.untar("copy/here", &archive, MAX).unwrap(), 6);
        let out = ws.join("copy/here");
        assert_eq!(fs::read(out.join("f.txt")).unwrap(), b"top");
        assert_eq!(fs::read(out.join("d/g.txt")).unwrap(), b"nested");
        assert!(out.join("d/e").is_dir());
        let link = |name| fs::read_link(out.join(name)).unwrap();
        assert_eq!(link("link"), Path::new("d/g.txt"));
        assert_eq!(link("etc"), Path::new("/etc"));
        assert!(out.join("fifo").symlink_metadata().is_err());
        assert_eq!(owner_mode(&out.join("f.txt")), (4321, 4321, 0o640));
        assert_eq!(owner_mode(&out.join("link")).0, 4321);
        // Unpacking again replaces files and links in place.
        assert_eq!(w.untar("copy/here", &archive, MAX).unwrap(), 6);
        assert_eq!(code(w.tar("src", 600)), "file_too_large");
        assert_eq!(code(w.tar("src/f.txt", MAX)), "not_a_directory");
    }

    type Spec<'a> = (&'a str, tar::EntryType, &'a [u8], &'a str, u32);

    /// An archive of raw headers, bypassing the tar crate's own path checks.
    fn hostile(entries: &[Spec]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data, link, mode) in entries {
            let mut h = tar::Header::new_gnu();
            h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(*mode);
            h.set_link_name_literal(link).unwrap();
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn reg(path: &str) -> Spec<'_> {
        (path, Regular, b"x", "", 0o644)
    }

    #[test]
    #[ignore = "privileged: writes chown to the sandbox's owner"]
    fn untar_refuses_hostile_archives() {
        let (tmp, ws, host, w) = setup();
        let host_s = host.to_str().unwrap();
        let cases: [&[Spec]; 7] = [
            &[reg("ok.txt"), reg("/abs.txt")],
            &[reg("ok.txt"), reg("../escape")],
            &[reg("a/../../escape")],
            &[("link", Symlink, b"", host_s, 0o777), reg("link/file")],
            &[("hard", Link, b"", "/etc/passwd", 0o644)],
            &[("null", Char, b"", "", 0o666)],
            &[("pipe", Fifo, b"", "", 0o666)],
        ];
        for case in cases {
            let err = code(w.untar("dest", &hostile(case), MAX));
            assert_eq!(err, "invalid_path", "{case:?}");
            assert!(!ws.join("dest").exists(), "{case:?} wrote before refusing");
        }
        assert!(!Path::new("/abs.txt").exists() && !tmp.path().join("escape").exists());

        // A link planted by the sandbox is resolved inside the root, not on the host.
        fs::create_dir(ws.join("dest")).unwrap();
        symlink(&host, ws.join("dest/link")).unwrap();
        assert!(w.untar("dest", &hostile(&[reg("link/file")]), MAX).is_err());
        host_untouched(&host);

        let suid = hostile(&[("suid", Regular, b"#!", "", 0o6755)]);
        assert_eq!(w.untar("dest", &suid, MAX).unwrap(), 1);
        assert_eq!(owner_mode(&ws.join("dest/suid")), (4321, 4321, 0o755));

        let big = vec![0u8; 4096];
        let bomb = hostile(&[("a", Regular, &big, "", 0), ("b", Regular, &big, "", 0)]);
        assert_eq!(code(w.untar("dest", &bomb, 6000)), "file_too_large");
        assert!(!ws.join("dest/a").exists());
        // A header claiming a huge size is refused before anything is read.
        let mut claim = hostile(&[("c", Regular, b"", "", 0o644)]);
        let mut h = tar::Header::from_byte_slice(&claim[..512]).clone();
        h.set_size(1 << 40);
        h.set_cksum();
        claim[..512].copy_from_slice(h.as_bytes());
        assert_eq!(code(w.untar("dest", &claim, MAX)), "file_too_large");
    }
}
