//! Walking a directory tree the way a layer needs it: `lstat` only (a
//! symlink is an entry, never followed), children sorted by name so that the
//! same tree always gives the same layer bytes, and each entry's mode,
//! owner, mtime, link count and `user.*` extended attributes read once.
//! Used on a build step's overlay upper dir (`diff`) and on the context
//! directory of a copy step.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::unpack::OPAQUE_XATTR;

/// What an entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink(PathBuf),
    Fifo,
    /// A character device 0/0: overlayfs' whiteout.
    Whiteout,
    /// Other devices and sockets (never put into a layer).
    Other,
}

/// One entry of a tree, with the metadata a tar header carries.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Path relative to the walked root (never empty, no leading `/`).
    pub rel: PathBuf,
    pub kind: Kind,
    /// Permission bits, setuid/setgid and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub size: u64,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    /// `user.*` attributes except `user.overlay.*`, sorted by name.
    pub xattrs: Vec<(OsString, Vec<u8>)>,
    /// A directory with `user.overlay.opaque=y` (overlayfs' opaque marker).
    pub opaque: bool,
}

/// Reads one entry (`abs` is its path on the host, `rel` its name).
pub fn entry(abs: &Path, rel: PathBuf) -> io::Result<Entry> {
    let md = fs::symlink_metadata(abs)?;
    let ft = md.file_type();
    let kind = if ft.is_dir() {
        Kind::Dir
    } else if ft.is_file() {
        Kind::File
    } else if ft.is_symlink() {
        Kind::Symlink(fs::read_link(abs)?)
    } else if ft.is_fifo() {
        Kind::Fifo
    } else if ft.is_char_device() && md.rdev() == 0 {
        Kind::Whiteout
    } else {
        Kind::Other
    };
    let mut xattrs = Vec::new();
    let mut opaque = false;
    // Symlinks cannot carry user.* attributes (xattr(7)); the xattr crate
    // uses the l*xattr calls, so nothing is followed.
    if matches!(kind, Kind::Dir | Kind::File) {
        for name in xattr::list(abs)? {
            let bytes = name.as_bytes();
            if bytes == OPAQUE_XATTR.as_bytes() {
                opaque = kind == Kind::Dir && xattr::get(abs, &name)?.as_deref() == Some(b"y");
                continue;
            }
            if !crate::unpack::keep_xattr(bytes) {
                continue;
            }
            if let Some(v) = xattr::get(abs, &name)? {
                xattrs.push((name, v));
            }
        }
        xattrs.sort();
    }
    Ok(Entry {
        rel,
        kind,
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        mtime: md.mtime(),
        size: if ft.is_file() { md.len() } else { 0 },
        dev: md.dev(),
        ino: md.ino(),
        nlink: md.nlink(),
        xattrs,
        opaque,
    })
}

/// The children of directory `abs`, sorted by name.
pub fn children(abs: &Path) -> io::Result<Vec<OsString>> {
    let mut names = fs::read_dir(abs)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<Vec<_>>>()?;
    names.sort();
    Ok(names)
}

/// Every entry under `root` (not `root` itself), parents before children,
/// siblings sorted by name; `rel` of each is relative to `root` prefixed
/// with `prefix`.
pub fn walk(root: &Path, prefix: &Path) -> io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    walk_into(root, prefix, &mut out)?;
    Ok(out)
}

fn walk_into(dir: &Path, rel: &Path, out: &mut Vec<Entry>) -> io::Result<()> {
    for name in children(dir)? {
        let abs = dir.join(&name);
        let e = entry(&abs, rel.join(&name))?;
        let is_dir = e.kind == Kind::Dir;
        let rel_child = e.rel.clone();
        out.push(e);
        if is_dir {
            walk_into(&abs, &rel_child, out)?;
        }
    }
    Ok(())
}

/// How the merged root of `layers` (bottom first, as unpacked: whiteouts
/// are 0/0 devices, opaque dirs carry the overlay xattr) shows `rel`: the
/// topmost layer's entry, or `None` when no layer has it or a whiteout or
/// opaque directory above hides it. Parents are not checked for symlinks:
/// this is only used to copy a directory's metadata into a new layer.
pub fn lower_entry(layers: &[PathBuf], rel: &Path) -> Option<Entry> {
    for layer in layers.iter().rev() {
        let abs = layer.join(rel);
        match entry(&abs, rel.to_path_buf()) {
            Ok(e) if e.kind == Kind::Whiteout => return None,
            Ok(e) => return Some(e),
            Err(_) => {}
        }
        // An opaque parent in this layer hides everything below it.
        let mut p = rel.parent();
        while let Some(parent) = p.filter(|p| !p.as_os_str().is_empty()) {
            if let Ok(e) = entry(&layer.join(parent), parent.to_path_buf()) {
                if e.opaque {
                    return None;
                }
            }
            p = parent.parent();
        }
    }
    None
}

/// Whether any of `layers` has a top-level entry `name` (whiteouts count:
/// they mean a lower layer had it).
pub fn in_any_layer(layers: &[PathBuf], name: &Path) -> bool {
    layers
        .iter()
        .any(|l| fs::symlink_metadata(l.join(name)).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_sorted_without_following_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        fs::create_dir_all(r.join("b/c")).unwrap();
        fs::write(r.join("b/c/f"), b"x").unwrap();
        fs::write(r.join("a"), b"yy").unwrap();
        std::os::unix::fs::symlink("/etc", r.join("b/link")).unwrap();
        let e = walk(r, Path::new("")).unwrap();
        let names: Vec<String> = e.iter().map(|e| e.rel.display().to_string()).collect();
        assert_eq!(names, ["a", "b", "b/c", "b/c/f", "b/link"]);
        assert_eq!(e[0].size, 2);
        assert_eq!(e[4].kind, Kind::Symlink("/etc".into()));
    }
}
