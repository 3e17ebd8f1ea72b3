//! Image import: an OCI image layout (a directory, or a tar of one: what
//! `skopeo copy ... oci:` / `oci-archive:` and umoci write) or a
//! `docker save` archive, into the store.
//!
//! - The archive is never unpacked: its members are found by name (a tar
//!   is indexed once, members then read in place), and every blob is
//!   streamed into the store through `put_blob`, which checks its digest and
//!   size before the blob gets its name. Nothing is named until every blob
//!   of the image is in.
//! - Layout indexes and nested manifest lists resolve to linux/amd64.
//! - `docker save`: `manifest.json` (Config, RepoTags, Layers). Each image
//!   becomes an OCI manifest over Docker's config, stored byte for byte
//!   (Docker's image JSON is what the OCI config was cut from: the same
//!   fields plus Docker's own, which OCI readers ignore), so its digest
//!   stays the image ID, as with `skopeo copy docker-archive: oci:`, and a
//!   second import makes the same manifest. Layers (plain, gzip or zstd
//!   tars) are stored as they are, with the OCI media type their magic
//!   bytes show, and their diff_ids are checked against the config while
//!   they are copied.
//! - Names: `name`, if given, names an archive's only image; otherwise each
//!   image's `org.opencontainers.image.ref.name` (a bare tag `T` becomes
//!   `<name's repository>:T`, and needs `name`) or its RepoTags.
//!
//! A blob already in the store is not copied again; its mtime is renewed so
//! that gc's grace period covers it until the image is named.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use oci_spec::image::{
    Arch, Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType, Os,
};

use crate::digest::Digest;
use crate::store::ImageContent;
use crate::store::{
    oci_digest, ref_name, to_oci_digest, Image, ImageName, Store, StoreError, MAX_JSON_BLOB,
};
use crate::unpack::{self, Compression, Decoder, Hashed};

/// A compressed archive is decompressed into the store's scratch space
/// first; by default this caps what it may grow to.
pub const MAX_ARCHIVE_BYTES: u64 = 64 << 30;

/// Caps on what decompression may grow to during an import (a gzip or zstd
/// bomb stops here, with its scratch copy removed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImportLimits {
    /// A compressed archive, decompressed into the store's scratch space.
    pub max_archive_bytes: u64,
    /// A compressed `docker save` layer, decompressed once to check its
    /// diff_id (nothing is written; this stops a stream that would never
    /// end).
    pub max_layer_bytes: u64,
}

impl Default for ImportLimits {
    fn default() -> Self {
        ImportLimits {
            max_archive_bytes: MAX_ARCHIVE_BYTES,
            max_layer_bytes: MAX_ARCHIVE_BYTES,
        }
    }
}
/// Members of an archive tar indexed at most.
const MAX_MEMBERS: usize = 1_000_000;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: neither an OCI image layout nor a docker save archive (no index.json or manifest.json)")]
    NotAnImage { path: String },
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error("{what} is missing from the archive")]
    Missing { what: String },
    #[error("{which} has no repository name: give one (--name)")]
    NeedsName { which: String },
    #[error("two images of the archive would both be named {0}")]
    DuplicateName(String),
    #[error("{what}: no linux/amd64 manifest (it has: {found})")]
    NoPlatform { what: String, found: String },
    #[error("blob {digest}: {actual} bytes, its descriptor says {expected}")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error(
        "layer {index} ({member}): its uncompressed digest is {actual}, the config says {expected}"
    )]
    DiffIdMismatch {
        index: usize,
        member: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ImportError {
    let what = what.into();
    move |source| ImportError::Io { what, source }
}

fn invalid(what: impl Into<String>, reason: impl ToString) -> ImportError {
    ImportError::Invalid {
        what: what.into(),
        reason: reason.to_string(),
    }
}

/// Imports the layout directory, layout tar or docker save archive at
/// `path` (a tar may be gzip- or zstd-compressed). Returns one `Image` per
/// name given.
pub fn import(
    store: &Store,
    path: &Path,
    name: Option<&ImageName>,
) -> Result<Vec<Image>, ImportError> {
    import_with(store, path, name, &ImportLimits::default())
}

/// `import` with explicit limits.
pub fn import_with(
    store: &Store,
    path: &Path,
    name: Option<&ImageName>,
    limits: &ImportLimits,
) -> Result<Vec<Image>, ImportError> {
    let shown = path.display().to_string();
    let md = std::fs::metadata(path).map_err(io_err(format!("stat {shown}")))?;
    if md.is_dir() {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_err(format!("open {shown}"))(io::Error::from(e)))?;
        let src = Source::Dir {
            path: path.to_path_buf(),
            fd,
        };
        return import_source(store, &src, name, &shown, limits);
    }
    let mut f = File::open(path).map_err(io_err(format!("open {shown}")))?;
    let (head, _) = unpack::peek(&mut f, 6).map_err(io_err(format!("read {shown}")))?;
    f.seek(SeekFrom::Start(0))
        .map_err(io_err(format!("seek {shown}")))?;
    let file = match unpack::sniff_compression(&head) {
        Ok(Compression::None) => f,
        Ok(c) => spool(store, f, c, &shown, limits)?,
        Err(found) => {
            return Err(invalid(
                shown,
                format!("{found} compression is not supported (tar, gzip or zstd)"),
            ))
        }
    };
    import_source(
        store,
        &Source::Tar(TarIndex::new(file, &shown)?),
        name,
        &shown,
        limits,
    )
}

/// Imports a tar stream (plain, gzip or zstd) of a layout or a docker save
/// archive, e.g. a request body. It is spooled to the store's scratch space
/// first (a tar's index is at its start, the blobs anywhere).
pub fn import_reader(
    store: &Store,
    r: impl Read,
    name: Option<&ImageName>,
) -> Result<Vec<Image>, ImportError> {
    import_reader_with(store, r, name, &ImportLimits::default())
}

/// `import_reader` with explicit limits.
pub fn import_reader_with(
    store: &Store,
    r: impl Read,
    name: Option<&ImageName>,
    limits: &ImportLimits,
) -> Result<Vec<Image>, ImportError> {
    let shown = "the archive";
    let (head, r) = unpack::peek(r, 6).map_err(io_err("read the archive"))?;
    let c = unpack::sniff_compression(&head).map_err(|found| {
        invalid(
            shown,
            format!("{found} compression is not supported (tar, gzip or zstd)"),
        )
    })?;
    let file = spool(store, r, c, shown, limits)?;
    import_source(
        store,
        &Source::Tar(TarIndex::new(file, shown)?),
        name,
        shown,
        limits,
    )
}

/// Copies `r` (decompressed) to an unlinked scratch file and returns it
/// open for reading.
fn spool(
    store: &Store,
    r: impl Read,
    c: Compression,
    shown: &str,
    limits: &ImportLimits,
) -> Result<File, ImportError> {
    let max = limits.max_archive_bytes;
    let (path, f) = store.tmp_file()?;
    let res = (|| {
        let mut d = Decoder::new(c, r).map_err(io_err(format!("decompress {shown}")))?;
        let mut w = io::BufWriter::with_capacity(1 << 16, f);
        let n = io::copy(&mut (&mut d).take(max.saturating_add(1)), &mut w)
            .map_err(io_err(format!("decompress {shown}")))?;
        if n > max {
            return Err(invalid(
                shown,
                format!("more than the limit of {max} bytes uncompressed"),
            ));
        }
        w.flush().map_err(io_err("write the scratch copy"))?;
        File::open(&path).map_err(io_err("reopen the scratch copy"))
    })();
    let _ = std::fs::remove_file(&path);
    res
}

/// Where members are read from.
enum Source {
    /// A directory, its members opened beneath `fd` only.
    Dir {
        path: PathBuf,
        fd: OwnedFd,
    },
    Tar(TarIndex),
}

enum Member {
    File { offset: u64, size: u64 },
    Link(String),
}

/// The regular files (and links) of a tar, by normalised name.
struct TarIndex {
    file: File,
    members: HashMap<String, Member>,
}

/// `a/./b//c` → `a/b/c`; `..` pops (`None` if it leaves the root, or with
/// `dotdot == false` at all).
fn normalize(raw: &str, dotdot: bool) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." if dotdot => {
                out.pop()?;
            }
            ".." => return None,
            c => out.push(c),
        }
    }
    Some(out.join("/"))
}

impl TarIndex {
    fn new(file: File, shown: &str) -> Result<TarIndex, ImportError> {
        let bad = |e: io::Error| invalid(shown, format!("reading it as a tar: {e}"));
        let mut members = HashMap::new();
        let len = file.metadata().map_err(bad)?.len();
        {
            let mut ar = tar::Archive::new(&file);
            for e in ar.entries_with_seek().map_err(bad)? {
                let e = e.map_err(bad)?;
                let Ok(raw) = std::str::from_utf8(&e.path_bytes()).map(str::to_string) else {
                    continue;
                };
                // Nothing is extracted, but a member that names a place
                // outside the archive says the archive is not what a tool
                // wrote: refuse it rather than guess what it meant.
                let name = match normalize(&raw, false) {
                    Some(n) if !raw.starts_with('/') => n,
                    _ => {
                        return Err(invalid(
                            shown,
                            format!("member {raw:?}: absolute paths and .. are not allowed"),
                        ))
                    }
                };
                let member = match e.header().entry_type() {
                    tar::EntryType::Regular | tar::EntryType::Continuous => {
                        let (offset, size) = (e.raw_file_position(), e.size());
                        // Else reading it fails later, as if the store had.
                        if offset.saturating_add(size) > len {
                            return Err(invalid(
                                shown,
                                format!("member {raw:?}: the archive ends inside it (truncated)"),
                            ));
                        }
                        Member::File { offset, size }
                    }
                    // docker save links a layer shared by two images
                    // (`<id>/layer.tar -> ../<other>/layer.tar`).
                    tar::EntryType::Symlink => {
                        let Some(t) = e.link_name_bytes() else {
                            continue;
                        };
                        let Ok(t) = std::str::from_utf8(&t) else {
                            continue;
                        };
                        let base = name.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                        match normalize(&format!("{base}/{t}"), true) {
                            Some(t) if !t.starts_with('/') => Member::Link(t),
                            _ => continue,
                        }
                    }
                    tar::EntryType::Link => {
                        let Some(t) = e.link_name_bytes() else {
                            continue;
                        };
                        let Ok(t) = std::str::from_utf8(&t) else {
                            continue;
                        };
                        match normalize(t, false) {
                            Some(t) => Member::Link(t),
                            None => continue,
                        }
                    }
                    _ => continue,
                };
                members.insert(name, member);
                if members.len() > MAX_MEMBERS {
                    return Err(invalid(shown, format!("more than {MAX_MEMBERS} members")));
                }
            }
        }
        Ok(TarIndex { file, members })
    }
}

/// A member of a tar read in place.
struct Section<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for Section<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end - self.pos;
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if n == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..n], self.pos)?;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// A member opened for reading, and its size.
type Opened<'a> = (Box<dyn Read + 'a>, u64);

impl Source {
    /// Member `name` (already normalised) and its size, or `None`.
    fn open(&self, name: &str) -> Result<Option<Opened<'_>>, ImportError> {
        match self {
            Source::Dir { path, fd } => {
                let p = path.join(name);
                // Symlinks within the directory are fine (docker save links
                // shared layers); one leading out of it is not followed, so
                // a layout cannot make host root read a host file as a blob.
                // O_NONBLOCK: a FIFO in its place must not hang the import.
                let how = OpenHow::new()
                    .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK | OFlag::O_NOCTTY)
                    .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
                let mut opened = openat2(fd.as_fd(), Path::new(name), how);
                for _ in 0..16 {
                    if !matches!(opened, Err(Errno::EAGAIN)) {
                        break;
                    }
                    opened = openat2(fd.as_fd(), Path::new(name), how);
                }
                match opened.map(File::from) {
                    Ok(f) => {
                        let md = f
                            .metadata()
                            .map_err(io_err(format!("stat {}", p.display())))?;
                        if !md.is_file() {
                            return Ok(None);
                        }
                        Ok(Some((Box::new(f), md.len())))
                    }
                    Err(Errno::ENOENT | Errno::ENXIO) => Ok(None),
                    Err(Errno::EXDEV | Errno::ELOOP) => Err(invalid(
                        p.display().to_string(),
                        "a symlink that leads out of the directory (or loops)",
                    )),
                    Err(e) => Err(io_err(format!("open {}", p.display()))(io::Error::from(e))),
                }
            }
            Source::Tar(t) => {
                let mut name = name.to_string();
                for _ in 0..16 {
                    match t.members.get(&name) {
                        None => return Ok(None),
                        Some(Member::Link(to)) => name = to.clone(),
                        Some(Member::File { offset, size }) => {
                            let s = Section {
                                file: &t.file,
                                pos: *offset,
                                end: offset + size,
                            };
                            return Ok(Some((Box::new(s), *size)));
                        }
                    }
                }
                Ok(None)
            }
        }
    }

    fn exists(&self, name: &str) -> Result<bool, ImportError> {
        Ok(self.open(name)?.is_some())
    }

    /// A small member, whole.
    fn read_small(&self, name: &str, limit: u64) -> Result<Vec<u8>, ImportError> {
        let (r, size) = self.open(name)?.ok_or_else(|| ImportError::Missing {
            what: name.to_string(),
        })?;
        if size > limit {
            return Err(invalid(
                name,
                format!("{size} bytes, more than the limit of {limit}"),
            ));
        }
        let mut out = Vec::new();
        r.take(limit + 1)
            .read_to_end(&mut out)
            .map_err(io_err(format!("read {name}")))?;
        Ok(out)
    }
}

fn blob_member(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

fn import_source(
    store: &Store,
    src: &Source,
    name: Option<&ImageName>,
    shown: &str,
    limits: &ImportLimits,
) -> Result<Vec<Image>, ImportError> {
    let images = if src.exists("manifest.json")? {
        // Docker 25+ writes an OCI layout too; manifest.json carries the
        // full names (its index.json only bare tags).
        import_docker(store, src, name, limits)?
    } else if src.exists("index.json")? {
        import_oci(store, src, name)?
    } else {
        return Err(ImportError::NotAnImage { path: shown.into() });
    };
    for i in &images {
        tracing::info!(image = %i.name, manifest = %i.manifest_digest, "image imported");
    }
    Ok(images)
}

/// Each image's names from its refs (see the module comment).
fn plan_names(
    refs: &[Vec<String>],
    given: Option<&ImageName>,
) -> Result<Vec<Vec<ImageName>>, ImportError> {
    if let (Some(n), 1) = (given, refs.len()) {
        return Ok(vec![vec![n.clone()]]);
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, image_refs) in refs.iter().enumerate() {
        let mut names = Vec::new();
        for r in image_refs {
            let full = if !r.contains('/') && !r.contains(':') {
                match given {
                    Some(n) => format!("{}:{r}", n.repository),
                    None => {
                        return Err(ImportError::NeedsName {
                            which: format!("the image tagged {r:?}"),
                        })
                    }
                }
            } else {
                r.clone()
            };
            let n: ImageName = full
                .parse()
                .map_err(|e: StoreError| invalid(format!("image name {r:?}"), e))?;
            if !seen.insert(n.clone()) {
                return Err(ImportError::DuplicateName(n.to_string()));
            }
            names.push(n);
        }
        if names.is_empty() {
            return Err(match given {
                Some(_) => invalid(
                    format!("image {} of {}", i + 1, refs.len()),
                    "has no name in the archive, and --name names an archive's only image",
                ),
                None => ImportError::NeedsName {
                    which: format!("image {} of {}", i + 1, refs.len()),
                },
            });
        }
        out.push(names);
    }
    Ok(out)
}

fn is_amd64(p: &oci_spec::image::Platform) -> bool {
    *p.os() == Os::Linux && *p.architecture() == Arch::Amd64
}

fn platforms(descs: &[Descriptor]) -> String {
    let v: Vec<String> = descs
        .iter()
        .map(|d| match d.platform() {
            Some(p) => format!("{}/{}", p.os(), p.architecture()),
            None => "unknown".into(),
        })
        .collect();
    v.join(", ")
}

fn import_oci(
    store: &Store,
    src: &Source,
    name: Option<&ImageName>,
) -> Result<Vec<Image>, ImportError> {
    if src.exists("oci-layout")? {
        let v: serde_json::Value = serde_json::from_slice(&src.read_small("oci-layout", 4096)?)
            .map_err(|e| invalid("oci-layout", e))?;
        if v["imageLayoutVersion"] != "1.0.0" {
            return Err(invalid(
                "oci-layout",
                format!(
                    "image layout version {} (1.0.0 is read)",
                    v["imageLayoutVersion"]
                ),
            ));
        }
    }
    let index: ImageIndex = serde_json::from_slice(&src.read_small("index.json", MAX_JSON_BLOB)?)
        .map_err(|e| invalid("index.json", e))?;
    let candidates: Vec<&Descriptor> = index
        .manifests()
        .iter()
        .filter(|d| d.platform().as_ref().is_none_or(is_amd64))
        .collect();
    if candidates.is_empty() {
        return Err(ImportError::NoPlatform {
            what: "index.json".into(),
            found: platforms(index.manifests()),
        });
    }
    let refs: Vec<Vec<String>> = candidates
        .iter()
        .map(|d| ref_name(d).map(|r| vec![r.to_string()]).unwrap_or_default())
        .collect();
    let names = plan_names(&refs, name)?;
    let manifests = candidates
        .iter()
        .map(|d| copy_manifest(store, src, d, 0))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::new();
    for ((digest, bytes), names) in manifests.iter().zip(names) {
        for n in names {
            out.push(store.put_image(&n, ImageContent::Manifest { bytes, digest })?);
        }
    }
    Ok(out)
}

/// A JSON blob of the source, whole, checked against `desc`.
fn read_json_blob(src: &Source, desc: &Descriptor) -> Result<(Digest, Vec<u8>), ImportError> {
    let d = oci_digest(desc)?;
    let bytes = src.read_small(&blob_member(&d), MAX_JSON_BLOB)?;
    let actual = Digest::of(&bytes);
    if actual != d {
        return Err(StoreError::DigestMismatch {
            what: blob_member(&d),
            expected: d,
            actual,
        }
        .into());
    }
    if bytes.len() as u64 != desc.size() {
        return Err(ImportError::SizeMismatch {
            digest: d,
            expected: desc.size(),
            actual: bytes.len() as u64,
        });
    }
    Ok((d, bytes))
}

/// Copies manifest `desc` (resolving indexes to linux/amd64), its config
/// and layers; returns the image manifest (digest and bytes) for `put_image`.
fn copy_manifest(
    store: &Store,
    src: &Source,
    desc: &Descriptor,
    depth: u32,
) -> Result<(Digest, Vec<u8>), ImportError> {
    let (d, bytes) = read_json_blob(src, desc)?;
    let what = format!("manifest {d}");
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| invalid(&what, e))?;
    let media_type = desc.media_type().to_string();
    let is_index = matches!(
        media_type.as_str(),
        "application/vnd.oci.image.index.v1+json"
            | "application/vnd.docker.distribution.manifest.list.v2+json"
    ) || v.get("manifests").is_some();
    if is_index {
        if depth >= 3 {
            return Err(invalid(&what, "indexes nested more than 3 deep"));
        }
        let index: ImageIndex = serde_json::from_value(v).map_err(|e| invalid(&what, e))?;
        let all = index.manifests();
        let pick = all
            .iter()
            .find(|m| m.platform().as_ref().is_some_and(is_amd64))
            .or_else(|| (all.len() == 1 && all[0].platform().is_none()).then(|| &all[0]))
            .ok_or_else(|| ImportError::NoPlatform {
                what: what.clone(),
                found: platforms(all),
            })?;
        return copy_manifest(store, src, pick, depth + 1);
    }
    let m: ImageManifest = serde_json::from_value(v).map_err(|e| invalid(&what, e))?;
    for l in m.layers() {
        let mt = l.media_type().to_string();
        if unpack::media_type_compression(&mt).is_none() {
            return Err(invalid(
                &what,
                format!("layer media type {mt:?} is not a container image layer"),
            ));
        }
    }
    let config = copy_blob(store, src, m.config(), Some(MAX_JSON_BLOB))?;
    let c: ImageConfiguration = store.read_json(&config)?;
    check_config(&c, m.layers().len(), &what)?;
    for l in m.layers() {
        copy_blob(store, src, l, None)?;
    }
    Ok((d, bytes))
}

fn check_config(c: &ImageConfiguration, layers: usize, what: &str) -> Result<(), ImportError> {
    if *c.os() != Os::Linux || *c.architecture() != Arch::Amd64 {
        return Err(invalid(
            what,
            format!(
                "the image is {}/{}; runtimed runs linux/amd64",
                c.os(),
                c.architecture()
            ),
        ));
    }
    let ids = c.rootfs().diff_ids();
    if ids.len() != layers {
        return Err(invalid(
            what,
            format!("{layers} layers but {} diff_ids in its config", ids.len()),
        ));
    }
    for id in ids {
        id.parse::<Digest>().map_err(|e| invalid(what, e))?;
    }
    Ok(())
}

/// Renews a stored blob's mtime (gc's grace period counts from it).
fn touch(p: &Path) -> io::Result<()> {
    File::open(p)?.set_modified(std::time::SystemTime::now())
}

/// Copies blob `desc` of the source into the store, verified.
fn copy_blob(
    store: &Store,
    src: &Source,
    desc: &Descriptor,
    limit: Option<u64>,
) -> Result<Digest, ImportError> {
    let d = oci_digest(desc)?;
    if let Some(limit) = limit {
        if desc.size() > limit {
            return Err(StoreError::TooLarge {
                what: d.to_string(),
                size: desc.size(),
                limit,
            }
            .into());
        }
    }
    let size_lie = |actual| ImportError::SizeMismatch {
        digest: d.clone(),
        expected: desc.size(),
        actual,
    };
    // A stored blob is the verified content, so the archive's copy is not
    // read again; the descriptor must still tell its size right (the
    // manifest is stored as it is, and unpack checks sizes against it).
    if let Ok(md) = std::fs::metadata(store.blob_path(&d)) {
        if md.len() != desc.size() {
            return Err(size_lie(md.len()));
        }
        if touch(&store.blob_path(&d)).is_ok() {
            return Ok(d);
        }
    }
    let (r, member_size) = src
        .open(&blob_member(&d))?
        .ok_or_else(|| ImportError::Missing {
            what: blob_member(&d),
        })?;
    if member_size != desc.size() {
        return Err(size_lie(member_size));
    }
    let (_, n) = store.put_blob(r, Some(&d), Some(desc.size()))?;
    if n != desc.size() {
        return Err(ImportError::SizeMismatch {
            digest: d,
            expected: desc.size(),
            actual: n,
        });
    }
    let _ = touch(&store.blob_path(&d));
    Ok(d)
}

/// One image of a docker save archive's manifest.json.
#[derive(serde::Deserialize)]
struct DockerImage {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// The digest a docker save member name carries (`<hex>.json`,
/// `blobs/sha256/<hex>`), if any.
fn digest_in_name(name: &str) -> Option<Digest> {
    let file = name.rsplit('/').next()?;
    let hex = file.strip_suffix(".json").unwrap_or(file);
    format!("sha256:{hex}").parse().ok()
}

fn member(raw: &str) -> Result<String, ImportError> {
    match normalize(raw, false) {
        Some(n) if !raw.starts_with('/') && !n.is_empty() => Ok(n),
        _ => Err(invalid(
            format!("manifest.json entry {raw:?}"),
            "names a path outside the archive",
        )),
    }
}

fn import_docker(
    store: &Store,
    src: &Source,
    name: Option<&ImageName>,
    limits: &ImportLimits,
) -> Result<Vec<Image>, ImportError> {
    let list: Vec<DockerImage> =
        serde_json::from_slice(&src.read_small("manifest.json", MAX_JSON_BLOB)?)
            .map_err(|e| invalid("manifest.json", e))?;
    if list.is_empty() {
        return Err(invalid("manifest.json", "lists no image"));
    }
    let refs: Vec<Vec<String>> = list
        .iter()
        .map(|i| i.repo_tags.clone().unwrap_or_default())
        .collect();
    let names = plan_names(&refs, name)?;
    let mut parts = Vec::new();
    for img in &list {
        parts.push(convert_docker(store, src, img, limits)?);
    }
    let mut out = Vec::new();
    for ((config, layers), names) in parts.into_iter().zip(names) {
        for n in names {
            let content = ImageContent::Parts {
                config: &config,
                layers: layers.clone(),
            };
            out.push(store.put_image(&n, content)?);
        }
    }
    Ok(out)
}

/// Stores one docker save image's layers; returns its config (bytes as in
/// the archive) and layer descriptors for `put_image`.
fn convert_docker(
    store: &Store,
    src: &Source,
    img: &DockerImage,
    limits: &ImportLimits,
) -> Result<(Vec<u8>, Vec<Descriptor>), ImportError> {
    let config_name = member(&img.config)?;
    let raw = src.read_small(&config_name, MAX_JSON_BLOB)?;
    if let Some(d) = digest_in_name(&config_name) {
        let actual = Digest::of(&raw);
        if actual != d {
            return Err(StoreError::DigestMismatch {
                what: config_name,
                expected: d,
                actual,
            }
            .into());
        }
    }
    let what = format!("image config {config_name}");
    let config: ImageConfiguration = serde_json::from_slice(&raw).map_err(|e| invalid(&what, e))?;
    check_config(&config, img.layers.len(), &what)?;
    let diff_ids = config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| d.parse::<Digest>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::from)?;
    let mut layers = Vec::new();
    for (index, (raw_name, diff_id)) in img.layers.iter().zip(&diff_ids).enumerate() {
        let name = member(raw_name)?;
        layers.push(copy_docker_layer(
            store, src, &name, index, diff_id, limits,
        )?);
    }
    // Stored as it is: re-serialising would reorder its maps (oci-spec
    // keeps labels in a HashMap), so the same archive would get a new
    // config digest, and a new manifest, on every import.
    Ok((raw, layers))
}

/// Stores a docker save layer as it is; a plain tar must have the diff_id
/// as its digest, a compressed one is decompressed once to check it.
fn copy_docker_layer(
    store: &Store,
    src: &Source,
    name: &str,
    index: usize,
    diff_id: &Digest,
    limits: &ImportLimits,
) -> Result<Descriptor, ImportError> {
    let (r, _) = src.open(name)?.ok_or_else(|| ImportError::Missing {
        what: name.to_string(),
    })?;
    let (head, r) = unpack::peek(r, 6).map_err(io_err(format!("read {name}")))?;
    let c = unpack::sniff_compression(&head).map_err(|found| {
        invalid(
            name,
            format!("{found} compression is not supported (tar, gzip or zstd)"),
        )
    })?;
    let mismatch = |actual| ImportError::DiffIdMismatch {
        index,
        member: name.to_string(),
        expected: diff_id.clone(),
        actual,
    };
    let (digest, size) = match c {
        Compression::None => match store.put_blob(r, Some(diff_id), None) {
            Err(StoreError::DigestMismatch { actual, .. }) => return Err(mismatch(actual)),
            other => other?,
        },
        _ => {
            let (digest, size) = store.put_blob(r, None, None)?;
            let blob = store.open_blob(&digest)?;
            let mut h =
                Hashed::new(Decoder::new(c, blob).map_err(io_err(format!("decompress {name}")))?);
            let max = limits.max_layer_bytes;
            let n = io::copy(&mut (&mut h).take(max.saturating_add(1)), &mut io::sink())
                .map_err(io_err(format!("decompress {name}")))?;
            if n > max {
                return Err(invalid(
                    name,
                    format!("more than the limit of {max} bytes uncompressed"),
                ));
            }
            let (actual, _, _) = h.finish()?;
            if actual != *diff_id {
                return Err(mismatch(actual));
            }
            (digest, size)
        }
    };
    let _ = touch(&store.blob_path(&digest));
    Ok(Descriptor::new(
        MediaType::from(c.oci_media_type()),
        size,
        to_oci_digest(&digest),
    ))
}
