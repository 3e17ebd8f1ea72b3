//! Layers written by a build: the diff of a build step's overlay upper dir,
//! and the files of a copy step, as tar+gzip blobs in the store.
//!
//! An upper dir is what overlayfs (`userxattr`) left: whiteouts are 0/0
//! character devices (written as `.wh.NAME`), opaque directories carry
//! `user.overlay.opaque=y` (written as `DIR/.wh..wh..opq`), as the OCI
//! image spec's "Representing Changes" section says. Entries are sorted and
//! the gzip header has no time, so the same tree gives the same digests.
//!
//! Never committed (Docker does the same): `/etc/hostname`, `/etc/hosts`
//! and `/etc/resolv.conf`, which the sandbox writes or binds for the step's
//! own use, and the empty mount points the sandbox made for its own mounts
//! (`/dev`, `/proc`, `/tmp`, `/workspace`, `/etc` ...) when no lower layer
//! has them.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use flate2::write::GzEncoder;

use crate::digest::{Digest, HashingWriter};
use crate::recipe::tree::{self, Entry, Kind};
use crate::store::{Store, StoreError, TmpGuard};

/// Paths a step's diff never contains (relative to the root).
pub const NEVER_COMMITTED: [&str; 3] = ["etc/hostname", "etc/hosts", "etc/resolv.conf"];
/// Top-level directories the sandbox creates as mount points; left out of a
/// diff when empty and absent from every lower layer.
pub const MOUNT_STUBS: [&str; 6] = ["dev", "proc", "sys", "tmp", "workspace", "etc"];

#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("copy {from:?}: {reason}")]
    Context { from: String, reason: String },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> DiffError {
    let what = what.into();
    move |source| DiffError::Io { what, source }
}

/// A layer blob in the store.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerBlob {
    /// Digest of the tar+gzip blob.
    pub digest: Digest,
    /// Digest of the uncompressed tar (`rootfs.diff_ids`).
    pub diff_id: Digest,
    /// Size of the blob.
    pub size: u64,
}

type Sink = HashingWriter<GzEncoder<BufWriter<File>>>;

/// Writes one tar+gzip layer into a scratch file of the store.
pub struct LayerWriter {
    tar: tar::Builder<Sink>,
    tmp: PathBuf,
    _guard: TmpGuard,
    /// First path of each (dev, ino) with more than one link.
    links: HashMap<(u64, u64), PathBuf>,
    /// Devices and sockets left out.
    pub skipped: u64,
}

impl LayerWriter {
    pub fn create(store: &Store) -> Result<LayerWriter, DiffError> {
        let (tmp, f) = store.tmp_file()?;
        let guard = TmpGuard(tmp.clone());
        // GzEncoder's default header has mtime 0 and no name: reproducible.
        let gz = GzEncoder::new(
            BufWriter::with_capacity(1 << 16, f),
            flate2::Compression::default(),
        );
        let mut tar = tar::Builder::new(HashingWriter::new(gz));
        tar.follow_symlinks(false);
        Ok(LayerWriter {
            tar,
            tmp,
            _guard: guard,
            links: HashMap::new(),
            skipped: 0,
        })
    }

    fn header(e: &Entry, typ: tar::EntryType) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(typ);
        h.set_mode(e.mode);
        h.set_uid(e.uid.into());
        h.set_gid(e.gid.into());
        h.set_mtime(e.mtime.max(0) as u64);
        h.set_size(0);
        h
    }

    /// PAX `SCHILY.xattr.*` records for the next entry (what GNU tar,
    /// containerd and our unpacker read).
    fn xattrs(&mut self, e: &Entry) -> io::Result<()> {
        if e.xattrs.is_empty() {
            return Ok(());
        }
        let mut data = Vec::new();
        for (name, value) in &e.xattrs {
            let mut kv = b"SCHILY.xattr.".to_vec();
            kv.extend_from_slice(name.as_encoded_bytes());
            kv.push(b'=');
            kv.extend_from_slice(value);
            kv.push(b'\n');
            // "LEN key=value\n", LEN counting its own digits.
            let mut len = kv.len() + 2;
            while len != kv.len() + 1 + len.to_string().len() {
                len = kv.len() + 1 + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} ").as_bytes());
            data.extend_from_slice(&kv);
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_path("././@PaxHeader")?;
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.tar.append(&h, &data[..])
    }

    /// Adds `e` under `name`; a regular file's content is read from `src`
    /// (opened without following a symlink).
    pub fn add(&mut self, name: &Path, e: &Entry, src: &Path) -> Result<(), DiffError> {
        let what = || format!("add {} to a layer", name.display());
        match &e.kind {
            Kind::Dir => {
                self.xattrs(e).map_err(io_err(what()))?;
                let mut h = Self::header(e, tar::EntryType::Directory);
                self.tar
                    .append_data(&mut h, name, io::empty())
                    .map_err(io_err(what()))?;
            }
            Kind::File => {
                if e.nlink > 1 {
                    if let Some(first) = self.links.get(&(e.dev, e.ino)) {
                        let mut h = Self::header(e, tar::EntryType::Link);
                        let first = first.clone();
                        return self
                            .tar
                            .append_link(&mut h, name, first)
                            .map_err(io_err(what()));
                    }
                    self.links.insert((e.dev, e.ino), name.to_path_buf());
                }
                let f = OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(src)
                    .map_err(io_err(format!("open {}", src.display())))?;
                self.xattrs(e).map_err(io_err(what()))?;
                let mut h = Self::header(e, tar::EntryType::Regular);
                h.set_size(e.size);
                // A file that changed size since the walk would make a bad
                // archive: copy exactly the size in the header.
                let mut r = io::Read::take(f, e.size);
                let mut data = Vec::new();
                if e.size <= 1 << 20 {
                    io::Read::read_to_end(&mut r, &mut data).map_err(io_err(what()))?;
                    if data.len() as u64 != e.size {
                        return Err(DiffError::Io {
                            what: what(),
                            source: io::Error::other("the file changed size while it was read"),
                        });
                    }
                    self.tar
                        .append_data(&mut h, name, &data[..])
                        .map_err(io_err(what()))?;
                } else {
                    self.tar
                        .append_data(
                            &mut h,
                            name,
                            ExactReader {
                                inner: r,
                                left: e.size,
                            },
                        )
                        .map_err(io_err(what()))?;
                }
            }
            Kind::Symlink(target) => {
                let mut h = Self::header(e, tar::EntryType::Symlink);
                self.tar
                    .append_link(&mut h, name, target)
                    .map_err(io_err(what()))?;
            }
            Kind::Fifo => {
                let mut h = Self::header(e, tar::EntryType::Fifo);
                self.tar
                    .append_data(&mut h, name, io::empty())
                    .map_err(io_err(what()))?;
            }
            Kind::Whiteout => self.whiteout(name)?,
            Kind::Other => self.skipped += 1,
        }
        Ok(())
    }

    fn marker(&mut self, path: &Path) -> Result<(), DiffError> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(0);
        h.set_mtime(0);
        self.tar
            .append_data(&mut h, path, io::empty())
            .map_err(io_err(format!("add {} to a layer", path.display())))
    }

    /// `name` was removed: `.wh.NAME` in its parent.
    pub fn whiteout(&mut self, name: &Path) -> Result<(), DiffError> {
        let base = name.file_name().unwrap_or(OsStr::new(""));
        let mut wh = std::ffi::OsString::from(".wh.");
        wh.push(base);
        let p = name.parent().unwrap_or(Path::new("")).join(wh);
        self.marker(&p)
    }

    /// Directory `dir` hides everything below it in lower layers.
    pub fn opaque(&mut self, dir: &Path) -> Result<(), DiffError> {
        self.marker(&dir.join(".wh..wh..opq"))
    }

    /// Ends the archive and moves the blob into the store.
    pub fn finish(self, store: &Store) -> Result<LayerBlob, DiffError> {
        let what = "finish a layer";
        let sink = self.tar.into_inner().map_err(io_err(what))?;
        let (diff_id, _, gz) = sink.finish();
        let buf = gz.finish().map_err(io_err(what))?;
        let f = buf.into_inner().map_err(|e| DiffError::Io {
            what: what.into(),
            source: e.into_error(),
        })?;
        f.sync_all().map_err(io_err(what))?;
        drop(f);
        let r = File::open(&self.tmp).map_err(io_err(what))?;
        let (digest, size) = store.put_blob(r, None, None)?;
        Ok(LayerBlob {
            digest,
            diff_id,
            size,
        })
    }
}

/// A reader that fails unless it gives exactly `left` bytes.
struct ExactReader<R> {
    inner: R,
    left: u64,
}

impl<R: io::Read> io::Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::other("the file shrank while it was read"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// The layer of a build step: what its overlay upper dir `upper` holds over
/// `lowers` (bottom first).
pub fn diff_upper(store: &Store, upper: &Path, lowers: &[PathBuf]) -> Result<LayerBlob, DiffError> {
    let mut w = LayerWriter::create(store)?;
    diff_dir(&mut w, upper, Path::new(""), lowers)?;
    w.finish(store)
}

fn never_committed(rel: &Path) -> bool {
    NEVER_COMMITTED.iter().any(|p| rel == Path::new(p))
}

/// An empty directory (ignoring what is never committed) the sandbox made.
fn is_stub(abs: &Path, rel: &Path) -> Result<bool, DiffError> {
    Ok(tree::children(abs)
        .map_err(io_err(format!("read {}", abs.display())))?
        .iter()
        .all(|c| never_committed(&rel.join(c))))
}

fn diff_dir(
    w: &mut LayerWriter,
    dir: &Path,
    rel: &Path,
    lowers: &[PathBuf],
) -> Result<(), DiffError> {
    let names = tree::children(dir).map_err(io_err(format!("read {}", dir.display())))?;
    for name in names {
        let abs = dir.join(&name);
        let r = rel.join(&name);
        if never_committed(&r) {
            continue;
        }
        let e = tree::entry(&abs, r.clone()).map_err(io_err(format!("stat {}", abs.display())))?;
        if rel.as_os_str().is_empty()
            && e.kind == Kind::Dir
            && MOUNT_STUBS.iter().any(|s| OsStr::new(s) == name)
            && !e.opaque
            && is_stub(&abs, &r)?
            && !tree::in_any_layer(lowers, &r)
        {
            continue;
        }
        w.add(&r, &e, &abs)?;
        if e.kind == Kind::Dir {
            if e.opaque {
                w.opaque(&r)?;
            }
            diff_dir(w, &abs, &r, lowers)?;
        }
    }
    Ok(())
}

/// The path `rel` names in the merged root of `lowers`, with symlinked
/// directories on the way resolved inside the root (so that a copy to
/// `/bin/x` in an image whose `/bin` links to `usr/bin` lands in
/// `usr/bin/x` instead of shadowing the link).
pub fn resolve_in_lowers(lowers: &[PathBuf], rel: &Path) -> PathBuf {
    let mut todo: Vec<std::ffi::OsString> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            _ => None,
        })
        .rev()
        .collect();
    let mut out = PathBuf::new();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            out.pop();
            continue;
        }
        let next = out.join(&c);
        // The last component is what is written: not resolved.
        if todo.is_empty() {
            return next;
        }
        match tree::lower_entry(lowers, &next).map(|e| e.kind) {
            Some(Kind::Symlink(target)) if hops < 40 => {
                hops += 1;
                if target.is_absolute() {
                    out = PathBuf::new();
                }
                for part in target.components().rev() {
                    match part {
                        Component::Normal(n) => todo.push(n.to_os_string()),
                        Component::ParentDir => todo.push("..".into()),
                        _ => {}
                    }
                }
            }
            _ => out = next,
        }
    }
    out
}

/// A directory entry for a parent `rel` of what a copy writes: the lower
/// layers' metadata when they have it as a directory, else 0755 root.
fn parent_entry(lowers: &[PathBuf], rel: &Path) -> Entry {
    match tree::lower_entry(lowers, rel) {
        Some(mut e) if e.kind == Kind::Dir => {
            e.rel = rel.to_path_buf();
            e.opaque = false;
            e
        }
        _ => Entry {
            rel: rel.to_path_buf(),
            kind: Kind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: 0,
            size: 0,
            dev: 0,
            ino: 0,
            nlink: 1,
            xattrs: Vec::new(),
            opaque: false,
        },
    }
}

/// What a copy step reads from the context directory: its source, and the
/// entries (relative to the source; empty `rel` = the source itself).
pub struct CopySource {
    pub src: PathBuf,
    pub is_dir: bool,
    pub entries: Vec<Entry>,
}

/// Resolves `from` inside `context` (a symlink may not lead out of it) and
/// reads what is under it.
pub fn copy_source(context: &Path, from: &str) -> Result<CopySource, DiffError> {
    let bad = |reason: String| DiffError::Context {
        from: from.into(),
        reason,
    };
    let ctx = context
        .canonicalize()
        .map_err(|e| bad(format!("context directory {}: {e}", context.display())))?;
    let src = ctx.join(from).canonicalize().map_err(|e| {
        bad(format!(
            "not found in the context directory {}: {e}",
            ctx.display()
        ))
    })?;
    if !src.starts_with(&ctx) {
        return Err(bad(format!(
            "resolves to {}, outside the context directory {}",
            src.display(),
            ctx.display()
        )));
    }
    let top =
        tree::entry(&src, PathBuf::new()).map_err(io_err(format!("stat {}", src.display())))?;
    let is_dir = top.kind == Kind::Dir;
    let mut entries = vec![top];
    if is_dir {
        entries.extend(
            tree::walk(&src, Path::new("")).map_err(io_err(format!("read {}", src.display())))?,
        );
    } else if entries[0].kind != Kind::File {
        return Err(bad("neither a regular file nor a directory".into()));
    }
    Ok(CopySource {
        src,
        is_dir,
        entries,
    })
}

/// The layer of a copy step: `source` written at `to` (absolute; a file
/// copied to a path ending in `/` keeps its name) owned by `owner`, with
/// its parent directories as the lower layers have them.
pub fn copy_layer(
    store: &Store,
    source: &CopySource,
    to: &str,
    owner: (u32, u32),
    lowers: &[PathBuf],
) -> Result<LayerBlob, DiffError> {
    let mut target = PathBuf::from(to.trim_start_matches('/'));
    if !source.is_dir && to.ends_with('/') {
        if let Some(n) = source.src.file_name() {
            target.push(n);
        }
    }
    let target = resolve_in_lowers(lowers, &target);
    let mut w = LayerWriter::create(store)?;
    let mut parents: Vec<&Path> = target.ancestors().skip(1).collect();
    parents.retain(|p| !p.as_os_str().is_empty());
    parents.reverse();
    for p in parents {
        let e = parent_entry(lowers, p);
        w.add(p, &e, &PathBuf::new())?;
    }
    for e in &source.entries {
        let name = if e.rel.as_os_str().is_empty() {
            target.clone()
        } else {
            target.join(&e.rel)
        };
        if name.as_os_str().is_empty() {
            // `to = "/"` with a directory: its contents go to the root.
            continue;
        }
        let mut e = e.clone();
        (e.uid, e.gid) = owner;
        // Context files are copied one by one (no hard links kept), and
        // without the setuid/setgid bits the unpacker strips anyway.
        e.nlink = 1;
        e.mode &= 0o1777;
        if e.kind == Kind::Whiteout || e.kind == Kind::Other {
            w.skipped += 1;
            continue;
        }
        let abs = if e.rel.as_os_str().is_empty() {
            source.src.clone()
        } else {
            source.src.join(&e.rel)
        };
        w.add(&name, &e, &abs)?;
    }
    w.finish(store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn entries(store: &Store, blob: &LayerBlob) -> Vec<(String, tar::EntryType, Vec<u8>)> {
        let r = store.open_blob(&blob.digest).unwrap();
        let mut a = tar::Archive::new(flate2::read::GzDecoder::new(r));
        let mut out = Vec::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let p = e.path().unwrap().display().to_string();
            let t = e.header().entry_type();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            out.push((p, t, data));
        }
        out
    }

    #[test]
    fn an_upper_dir_becomes_a_sorted_reproducible_layer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("data")).unwrap();
        let up = dir.path().join("upper");
        let lower = dir.path().join("lower");
        std::fs::create_dir_all(lower.join("tmp")).unwrap();
        std::fs::create_dir_all(up.join("etc")).unwrap();
        std::fs::create_dir_all(up.join("proc")).unwrap();
        std::fs::create_dir_all(up.join("tmp")).unwrap();
        std::fs::create_dir_all(up.join("opq")).unwrap();
        std::fs::write(up.join("etc/hostname"), b"sandbox\n").unwrap();
        std::fs::write(up.join("b"), b"bee").unwrap();
        std::fs::hard_link(up.join("b"), up.join("c")).unwrap();
        std::fs::write(up.join("a"), b"a").unwrap();
        xattr::set(up.join("a"), "user.note", b"hi").unwrap();
        xattr::set(up.join("opq"), OPAQUE_FOR_TEST, b"y").unwrap();
        let lowers = vec![lower];
        let one = diff_upper(&store, &up, &lowers).unwrap();
        let two = diff_upper(&store, &up, &lowers).unwrap();
        assert_eq!(one, two, "same tree, same digests");
        let names: Vec<String> = entries(&store, &one).into_iter().map(|e| e.0).collect();
        // etc (only hostname) and proc are stubs; tmp is in a lower layer.
        assert_eq!(names, ["a", "b", "c", "opq", "opq/.wh..wh..opq", "tmp"]);
        let e = entries(&store, &one);
        assert_eq!(e[2].1, tar::EntryType::Link);
        let r = store.open_blob(&one.digest).unwrap();
        let mut a = tar::Archive::new(flate2::read::GzDecoder::new(r));
        let mut first = a.entries().unwrap().next().unwrap().unwrap();
        let x: Vec<_> = first
            .pax_extensions()
            .unwrap()
            .unwrap()
            .map(|x| x.unwrap().key().unwrap().to_string())
            .collect();
        assert_eq!(x, ["SCHILY.xattr.user.note"]);
    }

    const OPAQUE_FOR_TEST: &str = crate::unpack::OPAQUE_XATTR;

    #[test]
    fn copies_resolve_symlinked_parents_and_stay_in_the_context() {
        let dir = tempfile::tempdir().unwrap();
        let lower = dir.path().join("lower");
        std::fs::create_dir_all(lower.join("usr/bin")).unwrap();
        std::os::unix::fs::symlink("usr/bin", lower.join("bin")).unwrap();
        let lowers = vec![lower];
        assert_eq!(
            resolve_in_lowers(&lowers, Path::new("bin/x")),
            PathBuf::from("usr/bin/x")
        );
        let ctx = dir.path().join("ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", ctx.join("out")).unwrap();
        assert!(matches!(
            copy_source(&ctx, "out"),
            Err(DiffError::Context { .. })
        ));
        std::fs::write(ctx.join("tool"), b"#!").unwrap();
        let store = Store::open(&dir.path().join("data")).unwrap();
        let src = copy_source(&ctx, "tool").unwrap();
        let blob = copy_layer(&store, &src, "/bin/", (1, 2), &lowers).unwrap();
        let names: Vec<String> = entries(&store, &blob).into_iter().map(|e| e.0).collect();
        assert_eq!(names, ["usr", "usr/bin", "usr/bin/tool"]);
    }
}
