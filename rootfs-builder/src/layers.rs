//! Where unpacked layers live, and who is using them.
//!
//! `<data dir>/layers/sha256/<hex>/` is the root of the layer whose
//! uncompressed tar has digest `sha256:<hex>` (its diff_id); it appears by
//! one atomic rename from `<data dir>/layers/tmp/`, so a directory under that
//! name is always complete. Beside it, `<hex>.lock` is the layer's flock:
//!
//! - an unpacker holds it exclusively while it makes the directory;
//! - every running sandbox holds it shared ([`LayerLease`]) for its life,
//!   and the kernel drops it when the holder dies, however it dies;
//! - gc takes it exclusively without waiting, and leaves a layer whose lock
//!   it cannot get (that is, one in use) alone.
//!
//! gc unlinks a lock file while it holds it, so every locker checks after
//! locking that the path still names the inode it locked (else it locked a
//! file nobody else will ever open, and tries again).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::digest::Digest;
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("layer {0} is not unpacked (gc removed it, or it was never unpacked)")]
    Missing(Digest),
    #[error("{path}: not a layer directory of this store")]
    NotALayer { path: PathBuf },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> LayerError {
    let what = what.into();
    move |source| LayerError::Io { what, source }
}

/// `<data dir>/layers`.
pub fn layers_root(store: &Store) -> PathBuf {
    store.data_dir().join("layers")
}

/// `<data dir>/layers/sha256`: the layer directories and their locks.
pub fn layers_dir(store: &Store) -> PathBuf {
    layers_root(store).join("sha256")
}

/// The unpacked root of the layer with uncompressed digest `diff_id` (it
/// exists once `unpack::ensure_layers` made it).
pub fn layer_dir(store: &Store, diff_id: &Digest) -> PathBuf {
    layers_dir(store).join(diff_id.hex())
}

/// The layer's flock file (see the module comment).
pub fn lock_path(store: &Store, diff_id: &Digest) -> PathBuf {
    layers_dir(store).join(format!("{}.lock", diff_id.hex()))
}

/// Scratch space for unpacking and removal, on the layers' filesystem.
pub(crate) fn layers_tmp(store: &Store) -> PathBuf {
    layers_root(store).join("tmp")
}

/// Creates `layers/{sha256,tmp}`; `layers` is 0700 (it holds files of every
/// uid the images use, some of them setgid directories).
pub(crate) fn ensure_layout(store: &Store) -> Result<(), LayerError> {
    let root = layers_root(store);
    for d in [layers_dir(store), layers_tmp(store)] {
        std::fs::create_dir_all(&d).map_err(io_err(format!("create {}", d.display())))?;
    }
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700))
        .map_err(io_err(format!("chmod {}", root.display())))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LockMode {
    Shared,
    Exclusive,
}

/// Locks layer `diff_id`'s lock file. With `wait == false`, `Ok(None)` when
/// another holder has it in a conflicting mode.
pub(crate) fn lock_layer(
    store: &Store,
    diff_id: &Digest,
    mode: LockMode,
    wait: bool,
) -> Result<Option<Flock<File>>, LayerError> {
    let path = lock_path(store, diff_id);
    let arg = match (mode, wait) {
        (LockMode::Shared, true) => FlockArg::LockShared,
        (LockMode::Shared, false) => FlockArg::LockSharedNonblock,
        (LockMode::Exclusive, true) => FlockArg::LockExclusive,
        (LockMode::Exclusive, false) => FlockArg::LockExclusiveNonblock,
    };
    // Each retry means gc removed the file between our open and our lock;
    // gc runs under the store lock, one at a time, so this ends.
    loop {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(format!("open {}", path.display())))?;
        let locked = match Flock::lock(f, arg) {
            Ok(l) => l,
            Err((_, Errno::EWOULDBLOCK)) if !wait => return Ok(None),
            Err((_, e)) => {
                return Err(LayerError::Io {
                    what: format!("lock {}", path.display()),
                    source: io::Error::from_raw_os_error(e as i32),
                })
            }
        };
        let held = locked
            .metadata()
            .map_err(io_err(format!("stat {}", path.display())))?;
        match std::fs::metadata(&path) {
            Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => {
                return Ok(Some(locked))
            }
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(format!("stat {}", path.display()))(e)),
        }
    }
}

/// Shared locks on the layers of a running sandbox: while a lease lives, gc
/// removes none of its layers. Keep it in the process that lives as long as
/// the sandbox (the locks belong to open files, so a forked child shares
/// them and they end with the last holder).
#[derive(Debug)]
pub struct LayerLease {
    held: Vec<(Digest, Flock<File>)>,
}

impl LayerLease {
    /// The leased layers' diff_ids, in the order given.
    pub fn diff_ids(&self) -> Vec<Digest> {
        self.held.iter().map(|(d, _)| d.clone()).collect()
    }
}

/// The diff_id of a layer directory of this store (`layer_dir`'s inverse).
pub fn diff_id_of(store: &Store, dir: &Path) -> Result<Digest, LayerError> {
    let not = || LayerError::NotALayer {
        path: dir.to_path_buf(),
    };
    if dir.parent() != Some(layers_dir(store).as_path()) {
        return Err(not());
    }
    let hex = dir.file_name().and_then(|n| n.to_str()).ok_or_else(not)?;
    format!("sha256:{hex}").parse().map_err(|_| not())
}

/// Leases the layer directories `layers` (as `unpack::ensure_layers`
/// returned them). Fails with `Missing` if one is not there once locked (gc
/// removed it after it was unpacked: unpack again and retry, or use
/// `unpack::ensure_leased`, which does).
pub fn lease_layers<P: AsRef<Path>>(store: &Store, layers: &[P]) -> Result<LayerLease, LayerError> {
    let ids = layers
        .iter()
        .map(|p| diff_id_of(store, p.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    lease_diff_ids(store, &ids)
}

/// Like `lease_layers`, by diff_id.
pub fn lease_diff_ids(store: &Store, diff_ids: &[Digest]) -> Result<LayerLease, LayerError> {
    ensure_layout(store)?;
    let mut held = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let lock = lock_layer(store, d, LockMode::Shared, true)?
            .ok_or_else(|| LayerError::Missing(d.clone()))?;
        if !layer_dir(store, d).is_dir() {
            return Err(LayerError::Missing(d.clone()));
        }
        held.push((d.clone(), lock));
    }
    Ok(LayerLease { held })
}
