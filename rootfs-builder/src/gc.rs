//! Garbage collection: removes what no named image references and no
//! running sandbox uses.
//!
//! Under the store lock (so no name changes meanwhile, and one gc at a
//! time):
//! - **blobs**: kept if a manifest named in `index.json` reaches them
//!   (the manifest, its config, its layers; through nested indexes too).
//!   Others go once older than the grace period (default one hour): an
//!   import or pull stores its blobs before it names the image.
//! - **unpacked layers**: kept if a named image's config lists the diff_id,
//!   or if a lease holds the layer's lock (gc only tries the exclusive lock,
//!   never waits, and skips what it cannot get). A layer is renamed into
//!   `layers/tmp/` before it is deleted, so a half-deleted tree never
//!   carries a layer's name.
//! - **scratch**: `images/tmp/` entries older than the grace period;
//!   `layers/tmp/` leftovers of unpacks whose lock is free (a crashed
//!   unpacker) and of earlier gc runs.
//!
//! An image whose manifest or config blob is missing references nothing
//! more; any other failure to read one stops gc before it removes anything.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};

use crate::atomic_write::random_hex;
use crate::digest::Digest;
use crate::layers::{self, LayerError, LockMode};
use crate::store::{oci_digest, ref_name, Store, StoreError};

/// How gc treats young unreferenced files.
#[derive(Clone, Copy, Debug)]
pub struct GcOptions {
    /// Unreferenced blobs and scratch files younger than this are kept.
    pub grace: Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            grace: Duration::from_secs(3600),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct GcReport {
    pub removed_blobs: usize,
    pub removed_layers: usize,
    /// Blob bytes plus the disk blocks of removed layers and scratch files.
    pub freed_bytes: u64,
    /// Unreferenced layers left alone because a lease holds them.
    pub kept_in_use: usize,
    pub removed_tmp: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("gc: image {image}: {source} (nothing was removed; `image rm` it if it is broken)")]
    Unreadable {
        image: String,
        #[source]
        source: StoreError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error("gc: {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> GcError {
    let what = what.into();
    move |source| GcError::Io { what, source }
}

/// Collects with the default grace period (one hour).
pub fn gc(store: &Store) -> Result<GcReport, GcError> {
    gc_with(store, &GcOptions::default())
}

pub fn gc_with(store: &Store, opts: &GcOptions) -> Result<GcReport, GcError> {
    let _lock = store.lock()?;
    layers::ensure_layout(store)?;
    let live = referenced(store)?;
    let mut report = GcReport::default();
    collect_blobs(store, &live, opts, &mut report)?;
    collect_layers(store, &live, &mut report)?;
    collect_tmp(store, opts, &mut report)?;
    tracing::info!(
        removed_blobs = report.removed_blobs,
        removed_layers = report.removed_layers,
        freed_bytes = report.freed_bytes,
        kept_in_use = report.kept_in_use,
        removed_tmp = report.removed_tmp,
        "gc done"
    );
    Ok(report)
}

/// What named images reach.
#[derive(Default)]
struct Live {
    blobs: HashSet<Digest>,
    diff_ids: HashSet<Digest>,
}

fn referenced(store: &Store) -> Result<Live, GcError> {
    let mut live = Live::default();
    for desc in store.index()?.manifests() {
        let image = ref_name(desc).unwrap_or("(unnamed)").to_string();
        let unreadable = |source| GcError::Unreadable {
            image: image.clone(),
            source,
        };
        let d = oci_digest(desc).map_err(unreadable)?;
        walk(store, &d, 0, &mut live).map_err(unreadable)?;
    }
    Ok(live)
}

/// Marks manifest (or index) `d` and everything it reaches.
fn walk(store: &Store, d: &Digest, depth: u32, live: &mut Live) -> Result<(), StoreError> {
    live.blobs.insert(d.clone());
    let v: serde_json::Value = match store.read_json(d) {
        Err(StoreError::BlobMissing(_)) => return Ok(()),
        other => other?,
    };
    let invalid = |e: serde_json::Error| StoreError::Invalid {
        what: format!("blob {d}"),
        reason: e.to_string(),
    };
    if v.get("manifests").is_some() {
        if depth >= 4 {
            return Ok(());
        }
        let index: ImageIndex = serde_json::from_value(v).map_err(invalid)?;
        for m in index.manifests() {
            walk(store, &oci_digest(m)?, depth + 1, live)?;
        }
        return Ok(());
    }
    let m: ImageManifest = serde_json::from_value(v).map_err(invalid)?;
    let config = oci_digest(m.config())?;
    live.blobs.insert(config.clone());
    for l in m.layers() {
        live.blobs.insert(oci_digest(l)?);
    }
    match store.read_json::<ImageConfiguration>(&config) {
        Err(StoreError::BlobMissing(_)) => Ok(()),
        Err(e) => Err(e),
        Ok(c) => {
            for id in c.rootfs().diff_ids() {
                live.diff_ids.insert(id.parse::<Digest>()?);
            }
            Ok(())
        }
    }
}

fn young(md: &fs::Metadata, grace: Duration) -> bool {
    match md.modified().map(|t| SystemTime::now().duration_since(t)) {
        Ok(Ok(age)) => age < grace,
        // In the future, or no mtime: keep.
        _ => true,
    }
}

fn collect_blobs(
    store: &Store,
    live: &Live,
    opts: &GcOptions,
    report: &mut GcReport,
) -> Result<(), GcError> {
    let dir = store.layout_dir().join("blobs/sha256");
    for e in fs::read_dir(&dir).map_err(io_err(format!("read {}", dir.display())))? {
        let e = e.map_err(io_err(format!("read {}", dir.display())))?;
        let Some(d) = e
            .file_name()
            .to_str()
            .and_then(|h| format!("sha256:{h}").parse::<Digest>().ok())
        else {
            continue;
        };
        if live.blobs.contains(&d) {
            continue;
        }
        let Ok(md) = e.metadata() else { continue };
        if young(&md, opts.grace) {
            continue;
        }
        match fs::remove_file(e.path()) {
            Ok(()) => {
                report.removed_blobs += 1;
                report.freed_bytes += md.len();
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(io_err(format!("remove blob {d}"))(err)),
        }
    }
    Ok(())
}

/// `(diff_id, is_lock_file)` for a name in `layers/sha256/`.
fn layer_entry(name: &str) -> Option<(Digest, bool)> {
    let (hex, lock) = match name.strip_suffix(".lock") {
        Some(h) => (h, true),
        None => (name, false),
    };
    Some((format!("sha256:{hex}").parse().ok()?, lock))
}

fn collect_layers(store: &Store, live: &Live, report: &mut GcReport) -> Result<(), GcError> {
    let dir = layers::layers_dir(store);
    let mut dirs = Vec::new();
    let mut locks = Vec::new();
    for e in fs::read_dir(&dir).map_err(io_err(format!("read {}", dir.display())))? {
        let e = e.map_err(io_err(format!("read {}", dir.display())))?;
        match e.file_name().to_str().and_then(layer_entry) {
            Some((d, false)) => dirs.push(d),
            Some((d, true)) => locks.push(d),
            None => {}
        }
    }
    for d in dirs {
        if live.diff_ids.contains(&d) {
            continue;
        }
        let Some(lock) = layers::lock_layer(store, &d, LockMode::Exclusive, false)? else {
            report.kept_in_use += 1;
            continue;
        };
        let path = layers::layer_dir(store, &d);
        let grave = layers::layers_tmp(store).join(format!("gc-{}-{}", d.hex(), random_hex()));
        match fs::rename(&path, &grave) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(format!("move {} aside", path.display()))(e)),
        }
        // Unlinked while held: a locker of the old file notices and retries.
        let _ = fs::remove_file(layers::lock_path(store, &d));
        drop(lock);
        report.freed_bytes += disk_usage(&grave);
        fs::remove_dir_all(&grave).map_err(io_err(format!("remove {}", grave.display())))?;
        report.removed_layers += 1;
    }
    // Lock files of layers that are gone (or were never made).
    for d in locks {
        if layers::layer_dir(store, &d).exists() {
            continue;
        }
        if let Some(_lock) = layers::lock_layer(store, &d, LockMode::Exclusive, false)? {
            if !layers::layer_dir(store, &d).exists() {
                let _ = fs::remove_file(layers::lock_path(store, &d));
            }
        }
    }
    Ok(())
}

fn collect_tmp(store: &Store, opts: &GcOptions, report: &mut GcReport) -> Result<(), GcError> {
    let images_tmp = store.tmp_dir();
    for e in fs::read_dir(&images_tmp).map_err(io_err(format!("read {}", images_tmp.display())))? {
        let Ok(e) = e else { continue };
        let Ok(md) = fs::symlink_metadata(e.path()) else {
            continue;
        };
        if !young(&md, opts.grace) {
            remove_scratch(&e.path(), report)?;
        }
    }
    let layers_tmp = layers::layers_tmp(store);
    for e in fs::read_dir(&layers_tmp).map_err(io_err(format!("read {}", layers_tmp.display())))? {
        let Ok(e) = e else { continue };
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("gc-") {
            // An earlier gc's, interrupted (gc runs one at a time).
            remove_scratch(&e.path(), report)?;
            continue;
        }
        let unpacking = name
            .split_once('.')
            .and_then(|(hex, _)| format!("sha256:{hex}").parse::<Digest>().ok());
        match unpacking {
            // An unpacker holds its layer's lock for as long as its scratch
            // directory lives; a free lock means the unpacker is gone.
            Some(d) => {
                if let Some(_lock) = layers::lock_layer(store, &d, LockMode::Exclusive, false)? {
                    remove_scratch(&e.path(), report)?;
                }
            }
            None => {
                let Ok(md) = fs::symlink_metadata(e.path()) else {
                    continue;
                };
                if !young(&md, opts.grace) {
                    remove_scratch(&e.path(), report)?;
                }
            }
        }
    }
    Ok(())
}

fn remove_scratch(p: &Path, report: &mut GcReport) -> Result<(), GcError> {
    let Ok(md) = fs::symlink_metadata(p) else {
        return Ok(());
    };
    let res = if md.is_dir() {
        report.freed_bytes += disk_usage(p);
        fs::remove_dir_all(p)
    } else {
        report.freed_bytes += md.blocks() * 512;
        fs::remove_file(p)
    };
    match res {
        Ok(()) => {
            report.removed_tmp += 1;
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(format!("remove {}", p.display()))(e)),
    }
}

/// Disk blocks under `dir`, hard links counted once, symlinks not followed
/// (best effort: unreadable parts count as nothing).
fn disk_usage(dir: &Path) -> u64 {
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(md) = fs::symlink_metadata(&p) else {
            continue;
        };
        if md.nlink() > 1 && !md.is_dir() && !seen.insert((md.dev(), md.ino())) {
            continue;
        }
        total += md.blocks() * 512;
        if md.is_dir() {
            if let Ok(rd) = fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        }
    }
    total
}
