//! The unpacked-layer directories in the store: one per diff_id, made once
//! under the layer's exclusive lock in a scratch directory on the same
//! filesystem, synced, and published by one `RENAME_NOREPLACE`, so a
//! directory under `layers/sha256/` is always complete and a concurrent
//! caller (the CLI and the daemon) waits and finds it done.

use std::path::PathBuf;
use std::time::Instant;

use nix::sys::stat::{fchmod, Mode};
use oci_spec::image::Descriptor;

use super::stream::unpack_blob;
use super::tar::O_DIR;
use super::{errno, io_err, media_type_compression, UnpackError, UnpackLimits};
use crate::atomic_write::random_hex;
use crate::atomic_write::{rename_durable, Replace};
use crate::digest::Digest;
use crate::layers::{self, LayerError, LayerLease, LockMode};
use crate::store::{oci_digest, Image, Store};

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
            // Existed: the same race; the layer in place is complete.
            rename_durable(&tmp, &dir, Replace::No)
                .map_err(io_err(format!("rename into {}", dir.display())))?;
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
