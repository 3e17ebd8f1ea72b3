//! Export of one image as an OCI image layout (image-layout spec v1.0):
//! `oci-layout`, `index.json` with the manifest's descriptor annotated
//! `org.opencontainers.image.ref.name` = the tag, and `blobs/sha256/` with
//! the manifest, config and layers, copied verified from the store. As a
//! directory (what `umoci --image DIR:TAG` and `skopeo inspect
//! oci:DIR:TAG` read) or as a tar of that directory's contents (what
//! `docker load`-style and `import` tools take). Nothing is overwritten.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndexBuilder, MediaType};

use crate::digest::Digest;
use crate::store::{oci_digest, to_oci_digest, Image, Store, StoreError, REF_NAME};

/// What `export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A directory (which must not exist, or be empty).
    Dir,
    /// A tar file (which must not exist).
    Tar,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("export to {path}: {reason}")]
    Destination { path: PathBuf, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("export to {path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: String,
        #[source]
        source: io::Error,
    },
}

/// The blobs of `image`: manifest, config, layers (with sizes), and the
/// `index.json` bytes naming it.
fn parts(store: &Store, image: &Image) -> Result<(Vec<Digest>, Vec<u8>), ExportError> {
    let mut blobs = vec![
        image.manifest_digest.clone(),
        oci_digest(image.manifest.config())?,
    ];
    for l in image.layer_digests()? {
        if !blobs.contains(&l) {
            blobs.push(l);
        }
    }
    let size = std::fs::metadata(store.blob_path(&image.manifest_digest))
        .map_err(|_| StoreError::BlobMissing(image.manifest_digest.clone()))?
        .len();
    let mut desc = Descriptor::new(
        MediaType::ImageManifest,
        size,
        to_oci_digest(&image.manifest_digest),
    );
    let mut ann = HashMap::new();
    ann.insert(REF_NAME.to_string(), image.name.tag.clone());
    desc.set_annotations(Some(ann));
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![desc])
        .build()
        .map_err(|e| StoreError::Invalid {
            what: "index.json".into(),
            reason: e.to_string(),
        })?;
    let bytes = serde_json::to_vec_pretty(&index).map_err(|e| StoreError::Invalid {
        what: "index.json".into(),
        reason: e.to_string(),
    })?;
    Ok((blobs, bytes))
}

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// Writes `image` as an OCI layout at `dest`; its ref name is the image's
/// tag (`oci:DEST:TAG`).
pub fn export(
    store: &Store,
    image: &Image,
    dest: &Path,
    format: Format,
) -> Result<(), ExportError> {
    let (blobs, index) = parts(store, image)?;
    match format {
        Format::Dir => export_dir(store, &blobs, &index, dest),
        Format::Tar => export_tar(store, &blobs, &index, dest),
    }
}

fn io_at(path: &Path, what: impl Into<String>) -> impl FnOnce(io::Error) -> ExportError {
    let (path, what) = (path.to_path_buf(), what.into());
    move |source| ExportError::Io { path, what, source }
}

fn export_dir(
    store: &Store,
    blobs: &[Digest],
    index: &[u8],
    dest: &Path,
) -> Result<(), ExportError> {
    let created = match std::fs::symlink_metadata(dest) {
        Ok(md) if md.is_dir() => {
            let empty = std::fs::read_dir(dest)
                .map_err(io_at(dest, "read"))?
                .next()
                .is_none();
            if !empty {
                return Err(ExportError::Destination {
                    path: dest.into(),
                    reason: "exists and is not empty".into(),
                });
            }
            false
        }
        Ok(_) => {
            return Err(ExportError::Destination {
                path: dest.into(),
                reason: "exists and is not a directory".into(),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir(dest).map_err(io_at(dest, "create"))?;
            true
        }
        Err(e) => return Err(io_at(dest, "stat")(e)),
    };
    let guard = UndoDir {
        dest: Some(dest.to_path_buf()),
        created,
    };
    let dir = dest.join("blobs/sha256");
    std::fs::create_dir_all(&dir).map_err(io_at(dest, "create blobs/sha256"))?;
    for d in blobs {
        let p = dir.join(d.hex());
        let mut out = create_new(&p)?;
        let mut r = store.open_blob(d)?;
        io::copy(&mut r, &mut out).map_err(io_at(dest, format!("copy blob {d}")))?;
        out.sync_all()
            .map_err(io_at(dest, format!("sync blob {d}")))?;
    }
    // index.json last: a layout with an index has all its blobs.
    create_new(&dest.join("oci-layout"))?
        .write_all(OCI_LAYOUT)
        .map_err(io_at(dest, "write oci-layout"))?;
    let mut f = create_new(&dest.join("index.json"))?;
    f.write_all(index)
        .and_then(|()| f.sync_all())
        .map_err(io_at(dest, "write index.json"))?;
    guard.disarm();
    Ok(())
}

/// Removes what a failed directory export wrote (the directory too when it
/// made it) unless disarmed.
struct UndoDir {
    dest: Option<PathBuf>,
    created: bool,
}

impl UndoDir {
    fn disarm(mut self) {
        self.dest = None;
    }
}

impl Drop for UndoDir {
    fn drop(&mut self) {
        let Some(dest) = &self.dest else { return };
        if self.created {
            let _ = std::fs::remove_dir_all(dest);
        } else {
            let _ = std::fs::remove_dir_all(dest.join("blobs"));
            let _ = std::fs::remove_file(dest.join("oci-layout"));
            let _ = std::fs::remove_file(dest.join("index.json"));
        }
    }
}

fn create_new(p: &Path) -> Result<File, ExportError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(p)
        .map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => ExportError::Destination {
                path: p.into(),
                reason: "exists; not overwritten".into(),
            },
            _ => io_at(p, "create")(e),
        })
}

fn export_tar(
    store: &Store,
    blobs: &[Digest],
    index: &[u8],
    dest: &Path,
) -> Result<(), ExportError> {
    let f = create_new(dest)?;
    let guard = RemoveOnError(Some(dest.to_path_buf()));
    let mut tar = tar::Builder::new(io::BufWriter::with_capacity(1 << 16, f));
    let header = |size: u64, dir: bool| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(if dir {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        h.set_mode(if dir { 0o755 } else { 0o644 });
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h
    };
    let w = io_at(dest, "write the tar");
    let add = |tar: &mut tar::Builder<_>, name: &str, data: &[u8]| {
        tar.append_data(&mut header(data.len() as u64, false), name, data)
    };
    add(&mut tar, "oci-layout", OCI_LAYOUT).map_err(io_at(dest, "write oci-layout"))?;
    for d in ["blobs/", "blobs/sha256/"] {
        tar.append_data(&mut header(0, true), d, io::empty())
            .map_err(io_at(dest, "write blobs/"))?;
    }
    for d in blobs {
        let size = std::fs::metadata(store.blob_path(d))
            .map_err(|_| StoreError::BlobMissing(d.clone()))?
            .len();
        let r = store.open_blob(d)?;
        tar.append_data(
            &mut header(size, false),
            format!("blobs/sha256/{}", d.hex()),
            r,
        )
        .map_err(io_at(dest, format!("write blob {d}")))?;
    }
    add(&mut tar, "index.json", index).map_err(io_at(dest, "write index.json"))?;
    let buf = tar.into_inner().map_err(w)?;
    let f = buf
        .into_inner()
        .map_err(|e| io_at(dest, "flush")(e.into_error()))?;
    f.sync_all().map_err(io_at(dest, "sync"))?;
    guard.disarm();
    Ok(())
}

/// Removes a half-written file unless disarmed.
struct RemoveOnError(Option<PathBuf>);

impl RemoveOnError {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnError {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_directory_export_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("data")).unwrap();
        let missing = Digest::of(b"not stored");
        let dest = dir.path().join("out");
        let e = export_dir(&store, &[missing], b"{}", &dest).unwrap_err();
        assert!(
            matches!(e, ExportError::Store(StoreError::BlobMissing(_))),
            "{e:?}"
        );
        assert!(!dest.exists());
        std::fs::create_dir(&dest).unwrap();
        export_dir(&store, &[Digest::of(b"x")], b"{}", &dest).unwrap_err();
        assert_eq!(
            std::fs::read_dir(&dest).unwrap().count(),
            0,
            "the empty dir stays empty"
        );
    }

    #[test]
    fn refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        assert!(matches!(
            create_new(&f),
            Err(ExportError::Destination { .. })
        ));
    }
}
