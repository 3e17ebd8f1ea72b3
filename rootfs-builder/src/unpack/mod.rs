//! Layer unpacking: each layer blob becomes, once per diff_id, a directory
//! that a sandbox uses directly as an overlayfs lower layer (mounted with
//! `userxattr` in its user namespace, the directory idmapped so on-disk
//! uid 0 is root inside).
//!
//! Layer tars come from anyone who can push or import an image and are
//! unpacked here by host root, so the unpacker trusts nothing in them (the
//! policy, one row per hostile case, is in docs/images.md). The work has
//! three phases, one module each:
//!
//! - [`stream`]: the incoming bytes. The blob is decompressed by what its
//!   magic says, its digest, size and diff_id are verified while it streams
//!   through; [`meter`] caps the uncompressed stream and each entry's
//!   header bytes under the tar parser.
//! - [`cache`]: the unpacked-layer directories in the store. A layer is made
//!   in `layers/tmp/` (same filesystem), synced and renamed in with
//!   `RENAME_NOREPLACE` under the layer's exclusive lock, so the CLI and the
//!   daemon can unpack concurrently: a second caller waits for the lock and
//!   finds the layer done. On any error the scratch directory is removed;
//!   nothing half-made is ever visible in `layers/sha256/`.
//! - [`tar`](self::tar): entry by entry. Every path is walked by openat2(2)
//!   beneath the layer root with `RESOLVE_NO_SYMLINKS` (nothing is resolved
//!   through a symlink the archive made, `..` is refused, a leading `/`
//!   dropped); files are created `O_EXCL` (an existing name is unlinked
//!   first: no write through a hard link); hard links must name an entry
//!   already in this layer; device nodes are skipped, setuid/setgid bits
//!   stripped from files, only `user.*` xattrs (not `user.overlay.*`) kept;
//!   entries are counted and file bytes capped. Whiteouts become what
//!   overlayfs reads: `.wh.NAME` → a 0/0 character device `NAME`;
//!   `.wh..wh..opq` → `user.overlay.opaque=y` on its directory.

use std::io;

use nix::errno::Errno;

use crate::digest::Digest;
use crate::layers::LayerError;
use crate::store::StoreError;

mod cache;
mod meter;
mod stream;
mod tar;

pub use self::tar::{keep_xattr, sanitize_mode, unpack_tar};
pub use cache::{ensure_layer, ensure_layers, ensure_layers_with, ensure_leased};
pub use stream::{media_type_compression, sniff_compression, Compression};
pub(crate) use stream::{peek, Decoder, Hashed};

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
