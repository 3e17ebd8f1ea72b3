//! Layer unpacking: each layer blob becomes, once per diff_id, a directory
//! that a sandbox uses directly as an overlayfs lower layer (mounted with
//! `userxattr` in its user namespace, the directory idmapped so on-disk
//! uid 0 is root inside).
//!
//! Layer tars come from anyone who can push or import an image and are
//! unpacked here by host root, so the unpacker trusts nothing in them (the
//! policy, one row per hostile case, is in docs/images.md):
//!
//! - every path is walked by openat2(2) beneath the layer root with
//!   `RESOLVE_NO_SYMLINKS`: nothing is ever resolved through a symlink the
//!   archive made, `..` is refused, a leading `/` dropped;
//! - files are created `O_EXCL`, never opened for writing when they exist
//!   (an existing name is unlinked first: no write through a hard link);
//! - hard links must name an entry already in this layer;
//! - device nodes are skipped, setuid/setgid bits stripped from files, and
//!   only `user.*` xattrs (not `user.overlay.*`) kept;
//! - bytes, entries and header sizes are capped, and the blob's digest,
//!   size and diff_id are verified while it streams through.
//!
//! Whiteouts become what overlayfs reads: `.wh.NAME` → a 0/0 character
//! device `NAME`; `.wh..wh..opq` → `user.overlay.opaque=y` on its directory.
//!
//! The layer is made in `layers/tmp/` (same filesystem), synced and renamed
//! in with `RENAME_NOREPLACE` under the layer's exclusive lock, so the CLI
//! and the daemon can unpack concurrently: a second caller waits for the
//! lock and finds the layer done. On any error the scratch directory is
//! removed; nothing half-made is ever visible in `layers/sha256/`.

use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufReader, Cursor, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{openat2, renameat2, AtFlags, OFlag, OpenHow, RenameFlags, ResolveFlag};
use nix::sys::stat::{
    fchmod, fstatat, futimens, makedev, mkdirat, mknodat, utimensat, FileStat, Mode, SFlag,
    UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use oci_spec::image::Descriptor;
use sha2::{Digest as _, Sha256};
use tar::EntryType;
use xattr::FileExt;

use crate::digest::Digest;
use crate::layers::{self, LayerError, LayerLease, LockMode};
use crate::store::{oci_digest, random_hex, Image, Store, StoreError};

/// Caps on what one layer may unpack to. Exceeding one stops the unpack at
/// once, and the partial layer is removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnpackLimits {
    /// Bytes of regular-file content (sparse files count at their full size).
    pub max_bytes: u64,
    /// Tar entries plus the parent directories the archive implies.
    pub max_entries: u64,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        UnpackLimits {
            max_bytes: 16 << 30,
            max_entries: 1_000_000,
        }
    }
}

/// Header bytes (GNU long names, PAX records) allowed before one entry: the
/// tar crate reads them into memory.
const MAX_HEADER_BYTES: u64 = 1 << 20;
/// Path components allowed in an entry (each is an fd while a tree is
/// removed, and real images stay far below).
const MAX_DEPTH: usize = 256;
/// What overlayfs (`userxattr`) reads as an opaque directory.
pub const OPAQUE_XATTR: &str = "user.overlay.opaque";

/// What an unpack did, for logs and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct UnpackStats {
    pub entries: u64,
    pub bytes: u64,
    pub whiteouts: u64,
    pub opaque_dirs: u64,
    pub skipped_devices: u64,
    pub stripped_setid: u64,
    pub dropped_xattrs: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error("image {image}: {layers} layers but {diff_ids} diff_ids in its config")]
    LayerCount {
        image: String,
        layers: usize,
        diff_ids: usize,
    },
    #[error("layer {layer}: media type {media_type:?} is not a layer (tar, tar+gzip or tar+zstd)")]
    MediaType { layer: Digest, media_type: String },
    #[error("layer {layer}: {found} compression is not supported (tar, gzip or zstd)")]
    Compression { layer: Digest, found: &'static str },
    #[error("layer {layer}: the blob does not match its digest: {source}")]
    BlobCorrupt {
        layer: Digest,
        #[source]
        source: io::Error,
    },
    #[error("layer {layer}: the blob is {actual} bytes, the manifest says {expected}")]
    SizeMismatch {
        layer: Digest,
        expected: u64,
        actual: u64,
    },
    #[error(
        "layer {layer}: the uncompressed tar has digest {actual}, the image config says {expected}"
    )]
    DiffIdMismatch {
        layer: Digest,
        expected: Digest,
        actual: Digest,
    },
    #[error("layer {layer}: {source}")]
    InLayer {
        layer: Digest,
        #[source]
        source: Box<UnpackError>,
    },
    #[error("entry {path:?}: refused: {reason}")]
    Refused { path: String, reason: &'static str },
    #[error("the layer exceeds the limit of {limit} {what}")]
    Limit { what: &'static str, limit: u64 },
    #[error("entry {path:?}: {op}: {source}")]
    Entry {
        path: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("reading the tar stream: {0}")]
    Tar(#[source] io::Error),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> UnpackError {
    let what = what.into();
    move |source| UnpackError::Io { what, source }
}

fn errno(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The OCI layer media type for this compression.
    pub fn oci_media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// The compression a layer media type declares; `None` if it is not a
/// layer media type we unpack (OCI, OCI non-distributable, Docker v2).
pub fn media_type_compression(media_type: &str) -> Option<Compression> {
    let oci = media_type
        .strip_prefix("application/vnd.oci.image.layer.v1.")
        .or_else(|| {
            media_type.strip_prefix("application/vnd.oci.image.layer.nondistributable.v1.")
        });
    match oci {
        Some("tar") => return Some(Compression::None),
        Some("tar+gzip") => return Some(Compression::Gzip),
        Some("tar+zstd") => return Some(Compression::Zstd),
        Some(_) => return None,
        None => {}
    }
    match media_type {
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Some(Compression::Gzip),
        // Not in Docker's spec, but written by some tools for plain tars.
        "application/vnd.docker.image.rootfs.diff.tar" => Some(Compression::None),
        _ => None,
    }
}

/// The compression the first bytes of a blob show. A plain tar has no
/// magic at offset 0; the tar parser judges it.
pub fn sniff_compression(head: &[u8]) -> Result<Compression, &'static str> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Compression::Gzip)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Compression::Zstd)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Err("xz")
    } else if head.starts_with(b"BZh") {
        Err("bzip2")
    } else {
        Ok(Compression::None)
    }
}

/// A reader whose first bytes were peeked at.
pub(crate) type Peeked<R> = io::Chain<Cursor<Vec<u8>>, R>;

/// Reads up to `n` bytes (fewer only at EOF) and returns a reader that
/// yields them again followed by the rest.
pub(crate) fn peek<R: Read>(mut r: R, n: usize) -> io::Result<(Vec<u8>, Peeked<R>)> {
    let mut head = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match r.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(got);
    Ok((head.clone(), Cursor::new(head).chain(r)))
}

/// A streaming decompressor chosen from the blob's magic bytes.
pub(crate) enum Decoder<R: Read> {
    Plain(R),
    Gzip(flate2::read::MultiGzDecoder<R>),
    Zstd(zstd::stream::read::Decoder<'static, BufReader<R>>),
}

impl<R: Read> Decoder<R> {
    pub(crate) fn new(c: Compression, r: R) -> io::Result<Decoder<R>> {
        Ok(match c {
            Compression::None => Decoder::Plain(r),
            // Multi-member: pigz and some registries concatenate members.
            Compression::Gzip => Decoder::Gzip(flate2::read::MultiGzDecoder::new(r)),
            Compression::Zstd => Decoder::Zstd(zstd::stream::read::Decoder::new(r)?),
        })
    }

    /// The compressed reader (its buffered bytes are dropped: callers only
    /// drain it to its end).
    pub(crate) fn into_inner(self) -> R {
        match self {
            Decoder::Plain(r) => r,
            Decoder::Gzip(d) => d.into_inner(),
            Decoder::Zstd(d) => d.finish().into_inner(),
        }
    }
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(d) => d.read(buf),
            Decoder::Zstd(d) => d.read(buf),
        }
    }
}

/// Hashes and counts what is read through it, and gives the reader back.
pub(crate) struct Hashed<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> Hashed<R> {
    pub(crate) fn new(inner: R) -> Self {
        Hashed {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    pub(crate) fn finish(self) -> Result<(Digest, u64, R), StoreError> {
        let d = format!("sha256:{:x}", self.hasher.finalize()).parse::<Digest>()?;
        Ok((d, self.count, self.inner))
    }
}

impl<R: Read> Read for Hashed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Shared between the unpacker and the reader under the tar parser.
#[derive(Default)]
struct Meter {
    /// Header bytes still allowed, while the parser looks for the next entry.
    header_left: Cell<Option<u64>>,
    /// Which cap a failed read hit.
    exceeded: Cell<Option<(&'static str, u64)>>,
}

/// The uncompressed stream under the tar parser: capped in total, and in
/// header bytes between two entries.
struct Metered<R> {
    inner: R,
    left: u64,
    cap: u64,
    meter: Rc<Meter>,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let over = |meter: &Meter, what, limit| {
            meter.exceeded.set(Some((what, limit)));
            io::Error::other(format!("more than {limit} {what}"))
        };
        if n as u64 > self.left {
            return Err(over(
                &self.meter,
                "bytes of uncompressed tar stream",
                self.cap,
            ));
        }
        self.left -= n as u64;
        if let Some(h) = self.meter.header_left.get() {
            if n as u64 > h {
                return Err(over(
                    &self.meter,
                    "header bytes before one entry",
                    MAX_HEADER_BYTES,
                ));
            }
            self.meter.header_left.set(Some(h - n as u64));
        }
        Ok(n)
    }
}

/// Counts what passes.
pub(crate) struct Counted<R> {
    pub(crate) inner: R,
    pub(crate) count: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// Unpacks the layers of `image` that are not unpacked yet; returns each
/// layer's directory, bottom first.
pub fn ensure_layers(store: &Store, image: &Image) -> Result<Vec<PathBuf>, UnpackError> {
    ensure_layers_with(store, image, &UnpackLimits::default())
}

/// `ensure_layers` with explicit limits.
pub fn ensure_layers_with(
    store: &Store,
    image: &Image,
    limits: &UnpackLimits,
) -> Result<Vec<PathBuf>, UnpackError> {
    layer_pairs(image)?
        .into_iter()
        .map(|(desc, diff_id)| ensure_layer(store, desc, &diff_id, limits))
        .collect()
}

/// `ensure_layers`, and a lease on the layers taken so that gc cannot
/// remove one between the unpack and the lease.
pub fn ensure_leased(
    store: &Store,
    image: &Image,
    limits: &UnpackLimits,
) -> Result<(Vec<PathBuf>, LayerLease), UnpackError> {
    let pairs = layer_pairs(image)?;
    let ids: Vec<Digest> = pairs.iter().map(|(_, d)| d.clone()).collect();
    // gc removes a layer only while holding its lock exclusively, and only
    // when no image names it; if that happened in between, unpack again.
    let mut tries = 0;
    loop {
        let dirs = pairs
            .iter()
            .map(|(desc, diff_id)| ensure_layer(store, desc, diff_id, limits))
            .collect::<Result<Vec<_>, _>>()?;
        match layers::lease_diff_ids(store, &ids) {
            Ok(lease) => return Ok((dirs, lease)),
            Err(LayerError::Missing(_)) if tries < 3 => tries += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

fn layer_pairs(image: &Image) -> Result<Vec<(&Descriptor, Digest)>, UnpackError> {
    let descs = image.manifest.layers();
    let diff_ids = image.diff_ids()?;
    if descs.len() != diff_ids.len() {
        return Err(UnpackError::LayerCount {
            image: image.name.to_string(),
            layers: descs.len(),
            diff_ids: diff_ids.len(),
        });
    }
    Ok(descs.iter().zip(diff_ids).collect())
}

/// Makes sure layer `desc` (whose uncompressed digest must be `diff_id`) is
/// unpacked; returns its directory.
pub fn ensure_layer(
    store: &Store,
    desc: &Descriptor,
    diff_id: &Digest,
    limits: &UnpackLimits,
) -> Result<PathBuf, UnpackError> {
    let dir = layers::layer_dir(store, diff_id);
    if dir.is_dir() {
        return Ok(dir);
    }
    layers::ensure_layout(store)?;
    let _lock = layers::lock_layer(store, diff_id, LockMode::Exclusive, true)?;
    if dir.is_dir() {
        return Ok(dir);
    }
    let started = Instant::now();
    let blob = oci_digest(desc)?;
    let media_type = desc.media_type().to_string();
    let declared = media_type_compression(&media_type).ok_or_else(|| UnpackError::MediaType {
        layer: blob.clone(),
        media_type: media_type.clone(),
    })?;
    let tmp = layers::layers_tmp(store).join(format!("{}.{}", diff_id.hex(), random_hex()));
    std::fs::create_dir(&tmp).map_err(io_err(format!("create {}", tmp.display())))?;
    let guard = TmpDir(Some(tmp.clone()));
    let root = nix::fcntl::open(&tmp, O_DIR, Mode::empty())
        .map_err(|e| io_err(format!("open {}", tmp.display()))(errno(e)))?;
    // The archive's own "./" entry, if any, overrides this.
    fchmod(&root, Mode::from_bits_truncate(0o755))
        .map_err(|e| io_err(format!("chmod {}", tmp.display()))(errno(e)))?;
    let root_for_sync = root.try_clone().map_err(io_err("dup layer root"))?;
    let stats = unpack_blob(store, &blob, desc.size(), declared, diff_id, root, limits)?;
    // Data first, then the name: a crash must not leave a complete-looking
    // layer with empty files.
    nix::unistd::syncfs(&root_for_sync)
        .map_err(|e| io_err(format!("sync {}", tmp.display()))(errno(e)))?;
    match std::fs::metadata(&dir) {
        Ok(_) => {} // made meanwhile through a lock file gc had unlinked; ours goes
        Err(_) => {
            let parent = layers::layers_dir(store);
            let res = renameat2(
                nix::fcntl::AT_FDCWD,
                &tmp,
                nix::fcntl::AT_FDCWD,
                &dir,
                RenameFlags::RENAME_NOREPLACE,
            );
            match res {
                Ok(()) => {}
                Err(Errno::EEXIST | Errno::ENOTEMPTY) => {}
                Err(e) => return Err(io_err(format!("rename into {}", dir.display()))(errno(e))),
            }
            if let Ok(d) = File::open(&parent) {
                let _ = d.sync_all();
            }
        }
    }
    drop(guard);
    tracing::info!(
        layer = %diff_id,
        entries = stats.entries,
        bytes = stats.bytes,
        whiteouts = stats.whiteouts,
        skipped_devices = stats.skipped_devices,
        ms = started.elapsed().as_millis() as u64,
        "layer unpacked"
    );
    Ok(dir)
}

/// Streams blob `blob` through its decompressor into the directory `root`,
/// verifying its digest, size and diff_id.
fn unpack_blob(
    store: &Store,
    blob: &Digest,
    size: u64,
    declared: Compression,
    diff_id: &Digest,
    root: OwnedFd,
    limits: &UnpackLimits,
) -> Result<UnpackStats, UnpackError> {
    let in_layer = |e: UnpackError| UnpackError::InLayer {
        layer: diff_id.clone(),
        source: Box::new(e),
    };
    let corrupt = |source| UnpackError::BlobCorrupt {
        layer: blob.clone(),
        source,
    };
    let counted = Counted {
        inner: store.open_blob(blob)?,
        count: 0,
    };
    let (head, src) = peek(counted, 6).map_err(corrupt)?;
    let found = sniff_compression(&head).map_err(|found| UnpackError::Compression {
        layer: blob.clone(),
        found,
    })?;
    if found != declared {
        // The diff_id check below holds whatever the media type claimed.
        tracing::warn!(layer = %blob, ?declared, ?found, "layer media type and content disagree on compression; using the content's");
    }
    let mut hashed = Hashed::new(Decoder::new(found, src).map_err(corrupt)?);
    let stats = unpack_fd(&mut hashed, root, limits).map_err(|e| match e {
        // A decoder or digest failure surfaces as a tar read error.
        UnpackError::Tar(source) if source.kind() == io::ErrorKind::InvalidData => corrupt(source),
        e => in_layer(e),
    })?;
    let (actual, _, decoder) = hashed.finish()?;
    let (_, mut counted) = decoder.into_inner().into_inner();
    io::copy(&mut counted, &mut io::sink()).map_err(corrupt)?;
    if counted.count != size {
        return Err(UnpackError::SizeMismatch {
            layer: blob.clone(),
            expected: size,
            actual: counted.count,
        });
    }
    if actual != *diff_id {
        return Err(UnpackError::DiffIdMismatch {
            layer: blob.clone(),
            expected: diff_id.clone(),
            actual,
        });
    }
    Ok(stats)
}

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

fn unpack_fd(
    r: impl Read,
    root: OwnedFd,
    limits: &UnpackLimits,
) -> Result<UnpackStats, UnpackError> {
    let meter = Rc::new(Meter::default());
    // Headers are at most 512 bytes plus padding per entry in real layers;
    // the cap only stops a stream that would never end.
    let cap = limits
        .max_bytes
        .saturating_add(limits.max_entries.saturating_mul(4096))
        .saturating_add(MAX_HEADER_BYTES);
    let metered = Metered {
        inner: r,
        left: cap,
        cap,
        meter: meter.clone(),
    };
    let tar_err = |meter: &Meter, e: io::Error| match meter.exceeded.get() {
        Some((what, limit)) => UnpackError::Limit { what, limit },
        None => UnpackError::Tar(e),
    };
    let mut archive = tar::Archive::new(metered);
    let mut u = Unpacker::new(root, *limits);
    {
        let mut entries = archive.entries().map_err(|e| tar_err(&meter, e))?;
        loop {
            meter.header_left.set(Some(MAX_HEADER_BYTES));
            let next = entries.next();
            meter.header_left.set(None);
            let Some(entry) = next else { break };
            let mut entry = entry.map_err(|e| tar_err(&meter, e))?;
            u.entry(&mut entry)
                .map_err(|e| match (&e, meter.exceeded.get()) {
                    (UnpackError::Entry { .. }, Some((what, limit))) => {
                        UnpackError::Limit { what, limit }
                    }
                    _ => e,
                })?;
            // Whatever the handler did not read (a skipped device's data).
            io::copy(&mut entry, &mut io::sink()).map_err(|e| tar_err(&meter, e))?;
        }
    }
    u.finish()?;
    // The rest of the stream (end blocks, record padding) is part of the
    // diff_id.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| tar_err(&meter, e))?;
    Ok(u.stats)
}

const O_DIR: OFlag = OFlag::O_RDONLY
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

/// A scratch directory removed on drop unless renamed away (then removing
/// the old name fails harmlessly).
struct TmpDir(Option<PathBuf>);

impl Drop for TmpDir {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            // std's remove_dir_all does not follow symlinks (CVE-2022-21658 fix).
            let _ = std::fs::remove_dir_all(p);
        }
    }
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
