//! A tar stream, entry by entry, into a directory: paths, links,
//! whiteouts, modes, ownership, and the device/fifo/setuid rules of the
//! policy in docs/images.md. Everything is created beneath one directory
//! fd with openat2(2) and never through a name the archive made.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{openat2, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{
    fchmod, fstatat, futimens, makedev, mkdirat, mknodat, utimensat, FileStat, Mode, SFlag,
    UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use tar::EntryType;
use xattr::FileExt;

use super::meter::metered;
use super::{errno, io_err, UnpackError, UnpackLimits, UnpackStats, OPAQUE_XATTR};

/// Path components allowed in an entry (each is an fd while a tree is
/// removed, and real images stay far below).
const MAX_DEPTH: usize = 256;

/// Unpacks the tar stream `r` into the existing directory `dir` with the
/// policy above, and reads `r` to its end. On error `dir` holds a partial
/// tree: unpack into a scratch directory and remove it on failure.
pub fn unpack_tar(
    r: impl Read,
    dir: &Path,
    limits: &UnpackLimits,
) -> Result<UnpackStats, UnpackError> {
    let root = nix::fcntl::open(dir, O_DIR, Mode::empty())
        .map_err(|e| io_err(format!("open {}", dir.display()))(errno(e)))?;
    unpack_fd(r, root, limits)
}

pub(super) fn unpack_fd(
    r: impl Read,
    root: OwnedFd,
    limits: &UnpackLimits,
) -> Result<UnpackStats, UnpackError> {
    let (stream, meter) = metered(r, limits);
    let tar_err = |e: io::Error| meter.exceeded().unwrap_or(UnpackError::Tar(e));
    let mut archive = tar::Archive::new(stream);
    let mut u = Unpacker::new(root, *limits);
    {
        let mut entries = archive.entries().map_err(tar_err)?;
        loop {
            meter.open_header();
            let next = entries.next();
            meter.close_header();
            let Some(entry) = next else { break };
            let mut entry = entry.map_err(tar_err)?;
            u.entry(&mut entry)
                .map_err(|e| match (&e, meter.exceeded()) {
                    (UnpackError::Entry { .. }, Some(limit)) => limit,
                    _ => e,
                })?;
            // Whatever the handler did not read (a skipped device's data).
            io::copy(&mut entry, &mut io::sink()).map_err(tar_err)?;
        }
    }
    u.finish()?;
    // The rest of the stream (end blocks, record padding) is part of the
    // diff_id.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(tar_err)?;
    Ok(u.stats)
}

pub(super) const O_DIR: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// openat2 beneath `dir`, following no symlink and crossing no mount.
fn open_beneath(dir: impl AsFd, path: &Path, flags: OFlag, mode: u32) -> Result<OwnedFd, Errno> {
    let resolve = ResolveFlag::RESOLVE_BENEATH
        | ResolveFlag::RESOLVE_NO_SYMLINKS
        | ResolveFlag::RESOLVE_NO_MAGICLINKS
        | ResolveFlag::RESOLVE_NO_XDEV;
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
        .mode(Mode::from_bits_truncate(mode))
        .resolve(resolve);
    let mut left = 16;
    loop {
        match openat2(dir.as_fd(), path, how) {
            // A concurrent rename anywhere on the filesystem: retry.
            Err(Errno::EAGAIN) if left > 0 => left -= 1,
            r => return r,
        }
    }
}

fn is_dir(st: &FileStat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

fn is_char_dev(st: &FileStat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR
}

/// The components of an archive path: a leading `/` and `.` components
/// dropped, `..` refused.
fn clean(raw: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    let mut out = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("the path has a \"..\" component"),
            c => out.push(c),
        }
    }
    if out.len() > MAX_DEPTH {
        return Err("the path is deeper than 256 components");
    }
    Ok(out)
}

const SYMLINK_PARENT: &str = "a parent directory is a symlink of the layer";

/// Why `comps` could not be opened as a directory (ELOOP or ENOTDIR): the
/// first component that is a symlink or not a directory says.
fn why_not_a_dir(root: &OwnedFd, comps: &[&[u8]]) -> &'static str {
    let mut cur = match root.try_clone() {
        Ok(fd) => fd,
        Err(_) => return "a parent is not a directory",
    };
    for c in comps {
        match fstatat(&cur, os(c), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => return SYMLINK_PARENT,
            Ok(st) if is_dir(&st) => match open_beneath(&cur, Path::new(os(c)), O_DIR, 0) {
                Ok(fd) => cur = fd,
                Err(_) => break,
            },
            _ => break,
        }
    }
    "a parent is not a directory"
}

fn joined(comps: &[&[u8]]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(&comps.join(&b'/')))
}

fn os(c: &[u8]) -> &OsStr {
    OsStr::from_bytes(c)
}

/// Removes `name` in `parent` and everything under it, following nothing.
fn remove_tree(parent: impl AsFd, name: &OsStr) -> Result<(), Errno> {
    let fd = open_beneath(&parent, Path::new(name), O_DIR, 0)?;
    let mut dir = Dir::from_fd(fd)?;
    let mut names = Vec::new();
    for e in dir.iter() {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    for n in names {
        let st = fstatat(&dir, os(&n), AtFlags::AT_SYMLINK_NOFOLLOW)?;
        if is_dir(&st) {
            remove_tree(&dir, os(&n))?;
        } else {
            unlinkat(&dir, os(&n), UnlinkatFlags::NoRemoveDir)?;
        }
    }
    drop(dir);
    unlinkat(&parent, name, UnlinkatFlags::RemoveDir)
}

/// What a tar header says about an entry's inode.
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: i64,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// What was at an entry's name before it.
#[derive(PartialEq, Eq)]
enum Slot {
    Free,
    Dir,
    /// A whiteout of this layer was unlinked to make room.
    WasWhiteout,
}

struct Unpacker {
    root: Rc<OwnedFd>,
    limits: UnpackLimits,
    stats: UnpackStats,
    /// Directory mtimes, set last (creating entries changes them).
    dir_times: HashMap<Vec<u8>, i64>,
    /// The last parent directory opened: most entries share it with the one
    /// before. Dropped whenever a tree is removed.
    cached: Option<(Vec<u8>, Rc<OwnedFd>)>,
    buf: Vec<u8>,
}

impl Unpacker {
    fn new(root: OwnedFd, limits: UnpackLimits) -> Unpacker {
        Unpacker {
            root: Rc::new(root),
            limits,
            stats: UnpackStats::default(),
            dir_times: HashMap::new(),
            cached: None,
            buf: vec![0u8; 128 << 10],
        }
    }

    fn count_entry(&mut self) -> Result<(), UnpackError> {
        self.stats.entries += 1;
        if self.stats.entries > self.limits.max_entries {
            return Err(UnpackError::Limit {
                what: "entries",
                limit: self.limits.max_entries,
            });
        }
        Ok(())
    }

    fn entry<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let raw = e.path_bytes().into_owned();
        let path = String::from_utf8_lossy(&raw).into_owned();
        let refused = |reason| UnpackError::Refused {
            path: path.clone(),
            reason,
        };
        let kind = e.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            return Ok(());
        }
        self.count_entry()?;
        let comps = clean(&raw).map_err(refused)?;
        let meta = self.meta(e, &path)?;
        let Some((name, parents)) = comps.split_last() else {
            return match kind {
                EntryType::Directory => self.root_dir(&meta, &path),
                _ => Err(refused("a non-directory entry names the layer root")),
            };
        };
        if comps.iter().any(|c| c.starts_with(b".wh..wh.")) {
            // AUFS metadata (.wh..wh.plnk/, .wh..wh.aufs, .wh..wh.orph/):
            // meaningless here. The opaque marker is handled below.
            if *name != b".wh..wh..opq" || parents.iter().any(|c| c.starts_with(b".wh..wh.")) {
                return Ok(());
            }
        }
        if let Some(rest) = name.strip_prefix(b".wh.") {
            return self.whiteout(parents, rest, &path);
        }
        let at = |op| {
            let path = path.clone();
            move |e: Errno| UnpackError::Entry {
                path,
                op,
                source: errno(e),
            }
        };
        let parent = self.parent(parents, &path)?;
        let name = os(name);
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                // Stop before making a file that cannot fit.
                if kind != EntryType::GNUSparse
                    && self.stats.bytes.saturating_add(e.size()) > self.limits.max_bytes
                {
                    return Err(UnpackError::Limit {
                        what: "bytes",
                        limit: self.limits.max_bytes,
                    });
                }
                self.make_room(&parent, name, false, &path)?;
                let fd = open_beneath(
                    &*parent,
                    Path::new(name),
                    OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
                    0o600,
                )
                .map_err(at("create"))?;
                let mut file = File::from(fd);
                self.copy_data(e, &mut file, kind == EntryType::GNUSparse, &path)?;
                self.apply(&file, &meta, false, &path)?;
            }
            EntryType::Directory => {
                let slot = self.make_room(&parent, name, true, &path)?;
                if slot != Slot::Dir {
                    mkdirat(&*parent, name, Mode::from_bits_truncate(0o700))
                        .map_err(at("mkdir"))?;
                }
                let dir = File::from(
                    open_beneath(&*parent, Path::new(name), O_DIR, 0).map_err(at("open"))?,
                );
                if slot == Slot::WasWhiteout {
                    // A whiteout and a directory of one name in one layer:
                    // the lower directory is gone, this one replaces it.
                    self.set_opaque(&dir, &path)?;
                }
                self.apply(&dir, &meta, true, &path)?;
                self.dir_times.insert(comps.join(&b'/'), meta.mtime);
            }
            EntryType::Symlink => {
                let target = e
                    .link_name_bytes()
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| refused("a symlink without a target"))?
                    .into_owned();
                self.make_room(&parent, name, false, &path)?;
                // The target is stored as written: only the sandbox ever
                // resolves it, inside its own root.
                symlinkat(os(&target), &*parent, name).map_err(at("symlink"))?;
                fchownat(
                    &*parent,
                    name,
                    Some(Uid::from_raw(meta.uid)),
                    Some(Gid::from_raw(meta.gid)),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(at("chown"))?;
                let t = TimeSpec::new(meta.mtime, 0);
                utimensat(&*parent, name, &t, &t, UtimensatFlags::NoFollowSymlink)
                    .map_err(at("set times"))?;
            }
            EntryType::Link => {
                let target = e
                    .link_name_bytes()
                    .ok_or_else(|| refused("a hard link without a target"))?
                    .into_owned();
                self.hard_link(&comps, &target, &parent, name, &path)?;
            }
            EntryType::Fifo => {
                self.make_room(&parent, name, false, &path)?;
                mknodat(
                    &*parent,
                    name,
                    SFlag::S_IFIFO,
                    Mode::from_bits_truncate(0o600),
                    0,
                )
                .map_err(at("mkfifo"))?;
                // O_NONBLOCK: opening a FIFO to read does not wait for a writer.
                let fd = open_beneath(
                    &*parent,
                    Path::new(name),
                    OFlag::O_RDONLY | OFlag::O_NONBLOCK,
                    0,
                )
                .map_err(at("open"))?;
                let meta = Meta {
                    xattrs: Vec::new(), // user.* xattrs are for files and directories only
                    ..meta
                };
                self.apply(&File::from(fd), &meta, false, &path)?;
            }
            EntryType::Char | EntryType::Block => {
                // Useless in a user namespace (the sandbox mounts its own
                // /dev) and a host device under host root's files otherwise.
                self.stats.skipped_devices += 1;
            }
            _ => return Err(refused("unsupported tar entry type")),
        }
        Ok(())
    }

    /// Owner, mode, mtime and kept xattrs from the header and its PAX records.
    fn meta<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        path: &str,
    ) -> Result<Meta, UnpackError> {
        let bad = |reason| UnpackError::Refused {
            path: path.to_string(),
            reason,
        };
        let h = e.header();
        let uid = h.uid().map_err(|_| bad("unreadable uid"))?;
        let gid = h.gid().map_err(|_| bad("unreadable gid"))?;
        // u32::MAX is chown's "leave unchanged".
        let uid = u32::try_from(uid)
            .ok()
            .filter(|u| *u != u32::MAX)
            .ok_or_else(|| bad("uid out of range"))?;
        let gid = u32::try_from(gid)
            .ok()
            .filter(|g| *g != u32::MAX)
            .ok_or_else(|| bad("gid out of range"))?;
        let mode = h.mode().map_err(|_| bad("unreadable mode"))?;
        let mut mtime = h
            .mtime()
            .map(|m| i64::try_from(m).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let mut xattrs = Vec::new();
        if let Some(exts) = e.pax_extensions().map_err(UnpackError::Tar)? {
            for ext in exts {
                let ext = ext.map_err(UnpackError::Tar)?;
                let key = ext.key_bytes();
                if key == b"mtime" {
                    let v = String::from_utf8_lossy(ext.value_bytes());
                    if let Ok(s) = v.split('.').next().unwrap_or("").parse::<i64>() {
                        mtime = s;
                    }
                } else if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    if keep_xattr(name) {
                        xattrs.push((name.to_vec(), ext.value_bytes().to_vec()));
                    } else {
                        self.stats.dropped_xattrs += 1;
                    }
                }
            }
        }
        Ok(Meta {
            uid,
            gid,
            mode,
            mtime,
            xattrs,
        })
    }

    /// chown, then chmod (chown clears setid bits), xattrs, times.
    fn apply(&mut self, f: &File, meta: &Meta, dir: bool, path: &str) -> Result<(), UnpackError> {
        let at = |op| {
            move |e: Errno| UnpackError::Entry {
                path: path.to_string(),
                op,
                source: errno(e),
            }
        };
        fchown(
            f,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
        )
        .map_err(at("chown"))?;
        let (mode, stripped) = sanitize_mode(meta.mode, dir);
        if stripped {
            self.stats.stripped_setid += 1;
        }
        fchmod(f, Mode::from_bits_truncate(mode)).map_err(at("chmod"))?;
        for (name, value) in &meta.xattrs {
            f.set_xattr(os(name), value)
                .map_err(|source| UnpackError::Entry {
                    path: path.to_string(),
                    op: "set xattr",
                    source,
                })?;
        }
        if !dir {
            let t = TimeSpec::new(meta.mtime, 0);
            futimens(f, &t, &t).map_err(at("set times"))?;
        }
        Ok(())
    }

    fn root_dir(&mut self, meta: &Meta, path: &str) -> Result<(), UnpackError> {
        let f = File::from(self.root.try_clone().map_err(io_err("dup layer root"))?);
        self.apply(&f, meta, true, path)?;
        self.dir_times.insert(Vec::new(), meta.mtime);
        Ok(())
    }

    fn copy_data<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        out: &mut File,
        sparse: bool,
        path: &str,
    ) -> Result<(), UnpackError> {
        let limit = UnpackError::Limit {
            what: "bytes",
            limit: self.limits.max_bytes,
        };
        let size = e.size();
        let at = |op| {
            move |source| UnpackError::Entry {
                path: path.to_string(),
                op,
                source,
            }
        };
        let mut copied = 0u64;
        loop {
            let n = match e.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(at("read")(err)),
            };
            copied += n as u64;
            self.stats.bytes += n as u64;
            if self.stats.bytes > self.limits.max_bytes {
                return Err(limit);
            }
            out.write_all(&self.buf[..n]).map_err(at("write"))?;
        }
        if !sparse && copied != size {
            return Err(UnpackError::Refused {
                path: path.to_string(),
                reason: "the archive ends inside the file",
            });
        }
        Ok(())
    }

    /// The directory `parents` names, created (0755, root's) where missing.
    fn parent(&mut self, parents: &[&[u8]], path: &str) -> Result<Rc<OwnedFd>, UnpackError> {
        if parents.is_empty() {
            return Ok(self.root.clone());
        }
        let key = parents.join(&b'/');
        if let Some((k, fd)) = &self.cached {
            if *k == key {
                return Ok(fd.clone());
            }
        }
        let refused = |reason| UnpackError::Refused {
            path: path.to_string(),
            reason,
        };
        let root = self.root.clone();
        let fail = |op, e: Errno| match e {
            Errno::ELOOP | Errno::ENOTDIR => refused(why_not_a_dir(&root, parents)),
            e => UnpackError::Entry {
                path: path.to_string(),
                op,
                source: errno(e),
            },
        };
        let fd = match open_beneath(&*self.root, &joined(parents), O_DIR, 0) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                let mut cur = self.root.try_clone().map_err(io_err("dup layer root"))?;
                for c in parents {
                    cur = match open_beneath(&cur, Path::new(os(c)), O_DIR, 0) {
                        Ok(fd) => fd,
                        Err(Errno::ENOENT) => {
                            self.count_entry()?;
                            mkdirat(&cur, os(c), Mode::from_bits_truncate(0o755))
                                .map_err(|e| fail("mkdir", e))?;
                            let fd = open_beneath(&cur, Path::new(os(c)), O_DIR, 0)
                                .map_err(|e| fail("open", e))?;
                            // Not the umask's choice.
                            fchmod(&fd, Mode::from_bits_truncate(0o755))
                                .map_err(|e| fail("chmod", e))?;
                            fd
                        }
                        Err(e) => return Err(fail("open", e)),
                    };
                }
                cur
            }
            Err(e) => return Err(fail("open", e)),
        };
        let fd = Rc::new(fd);
        self.cached = Some((key, fd.clone()));
        Ok(fd)
    }

    /// Clears `name` in `parent` for a new entry (later entries win, as in
    /// Docker): a directory stays for a directory, anything else is removed.
    fn make_room(
        &mut self,
        parent: &OwnedFd,
        name: &OsStr,
        dir: bool,
        path: &str,
    ) -> Result<Slot, UnpackError> {
        let at = |op| {
            move |e: Errno| UnpackError::Entry {
                path: path.to_string(),
                op,
                source: errno(e),
            }
        };
        match fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Err(Errno::ENOENT) => Ok(Slot::Free),
            Err(e) => Err(at("stat")(e)),
            Ok(st) if is_dir(&st) && dir => Ok(Slot::Dir),
            Ok(st) if is_dir(&st) => {
                self.cached = None;
                remove_tree(parent, name).map_err(at("remove the directory it replaces"))?;
                Ok(Slot::Free)
            }
            Ok(st) => {
                unlinkat(parent, name, UnlinkatFlags::NoRemoveDir)
                    .map_err(at("remove the file it replaces"))?;
                Ok(if is_char_dev(&st) {
                    Slot::WasWhiteout
                } else {
                    Slot::Free
                })
            }
        }
    }

    fn hard_link(
        &mut self,
        comps: &[&[u8]],
        target: &[u8],
        parent: &OwnedFd,
        name: &OsStr,
        path: &str,
    ) -> Result<(), UnpackError> {
        let refused = |reason| UnpackError::Refused {
            path: path.to_string(),
            reason,
        };
        let tcomps = clean(target)
            .map_err(|_| refused("the hard link target has a \"..\" component or is too deep"))?;
        let Some((tname, tparents)) = tcomps.split_last() else {
            return Err(refused("the hard link target is the layer root"));
        };
        if tcomps == comps {
            return Err(refused("the hard link names itself"));
        }
        let tparent = if tparents.is_empty() {
            self.root.try_clone().map_err(io_err("dup layer root"))?
        } else {
            open_beneath(&*self.root, &joined(tparents), O_DIR, 0).map_err(|e| match e {
                Errno::ELOOP | Errno::ENOTDIR => match why_not_a_dir(&self.root, tparents) {
                    SYMLINK_PARENT => refused("the hard link target goes through a symlink"),
                    _ => refused("the hard link target is not in this layer"),
                },
                _ => refused("the hard link target is not in this layer"),
            })?
        };
        match fstatat(&tparent, os(tname), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if is_dir(&st) => return Err(refused("the hard link target is a directory")),
            Ok(_) => {}
            Err(_) => return Err(refused("the hard link target is not in this layer")),
        }
        self.make_room(parent, name, false, path)?;
        // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself.
        linkat(&tparent, os(tname), parent, name, AtFlags::empty()).map_err(|e| match e {
            Errno::ENOENT => refused("the hard link target is not in this layer"),
            e => UnpackError::Entry {
                path: path.to_string(),
                op: "link",
                source: errno(e),
            },
        })
    }

    /// `.wh.<rest>` in directory `parents`.
    fn whiteout(&mut self, parents: &[&[u8]], rest: &[u8], path: &str) -> Result<(), UnpackError> {
        let refused = |reason| UnpackError::Refused {
            path: path.to_string(),
            reason,
        };
        let at = |op| {
            move |e: Errno| UnpackError::Entry {
                path: path.to_string(),
                op,
                source: errno(e),
            }
        };
        if rest == b".wh..opq" {
            let dir = self.parent(parents, path)?;
            let f = File::from(dir.try_clone().map_err(io_err("dup directory"))?);
            return self.set_opaque(&f, path);
        }
        if rest.is_empty() || rest == b"." || rest == b".." {
            return Err(refused("a whiteout of no name"));
        }
        let dir = self.parent(parents, path)?;
        let name = os(rest);
        match fstatat(&*dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Err(Errno::ENOENT) => {
                mknodat(&*dir, name, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
                    .map_err(at("mknod whiteout"))?;
                self.stats.whiteouts += 1;
                Ok(())
            }
            Err(e) => Err(at("stat")(e)),
            // A whiteout hides lower layers only (OCI image spec, "Whiteouts"):
            // this layer's directory of that name stays, without the lower one.
            Ok(st) if is_dir(&st) => {
                let f =
                    File::from(open_beneath(&*dir, Path::new(name), O_DIR, 0).map_err(at("open"))?);
                self.set_opaque(&f, path)
            }
            // This layer's own file already hides the lower one.
            Ok(_) => Ok(()),
        }
    }

    fn set_opaque(&mut self, dir: &File, path: &str) -> Result<(), UnpackError> {
        dir.set_xattr(OPAQUE_XATTR, b"y")
            .map_err(|source| UnpackError::Entry {
                path: path.to_string(),
                op: "set user.overlay.opaque",
                source,
            })?;
        self.stats.opaque_dirs += 1;
        Ok(())
    }

    /// Directory mtimes, now that nothing more is created in them.
    fn finish(&mut self) -> Result<(), UnpackError> {
        self.cached = None;
        for (path, mtime) in std::mem::take(&mut self.dir_times) {
            let t = TimeSpec::new(mtime, 0);
            let res = if path.is_empty() {
                futimens(&*self.root, &t, &t)
            } else {
                match open_beneath(&*self.root, Path::new(os(&path)), O_DIR, 0) {
                    Ok(fd) => futimens(&fd, &t, &t),
                    // Replaced by a later entry.
                    Err(_) => continue,
                }
            };
            res.map_err(|e| UnpackError::Entry {
                path: String::from_utf8_lossy(&path).into_owned(),
                op: "set times",
                source: errno(e),
            })?;
        }
        Ok(())
    }
}

/// Which PAX `SCHILY.xattr.*` attributes are kept: `user.*` only, and not
/// `user.overlay.*` (overlayfs with `userxattr` would obey an image's own
/// opaque/redirect/metacopy markers). `security.capability` is dropped like
/// setuid bits; `trusted.*`, `security.*` and ACLs (`system.*`) too.
pub fn keep_xattr(name: &[u8]) -> bool {
    name.starts_with(b"user.") && !name.starts_with(b"user.overlay.")
}

/// The mode written: permission bits and sticky kept; setuid and setgid
/// stripped from everything but setgid on directories (group inheritance,
/// no privilege). Returns whether a bit was stripped.
pub fn sanitize_mode(mode: u32, dir: bool) -> (u32, bool) {
    let mode = mode & 0o7777;
    let strip = if dir { 0o4000 } else { 0o6000 };
    (mode & !strip, mode & strip != 0)
}
