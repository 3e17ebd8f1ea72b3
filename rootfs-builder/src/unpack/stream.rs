//! The incoming bytes of a layer: the blob is decompressed by what its
//! magic bytes say (not what the manifest claims), hashed and counted as it
//! streams, and checked at its end against the manifest's digest and size
//! and the config's diff_id. The tar parser then reads it through
//! [`super::meter`]'s caps.

use std::io::{self, BufReader, Cursor, Read};
use std::os::fd::OwnedFd;

use sha2::{Digest as _, Sha256};

use super::{UnpackError, UnpackLimits, UnpackStats};
use crate::digest::Digest;
use crate::store::{Store, StoreError};

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

/// Streams blob `blob` through its decompressor into the directory `root`,
/// verifying its digest, size and diff_id.
pub(super) fn unpack_blob(
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
    let stats = super::tar::unpack_fd(&mut hashed, root, limits).map_err(|e| match e {
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
