//! Image import (`rootfs_builder::import::import_reader_with`) of archives
//! built from fuzz bytes (`framing::Members`): OCI layouts (`oci-layout`,
//! `index.json`, blobs) and `docker save` archives (`manifest.json`), with
//! digests that can match. The JSON parsers behind them (OCI index,
//! manifest and config, Docker's manifest.json and image JSON) are reached
//! through the importer, as a hostile archive reaches them.
//!
//! Invariants, into a fresh store each time:
//! - every blob in the store is named by its own sha256 (nothing
//!   unverified got a name) and no temporary file is left;
//! - a failed import names nothing;
//! - a successful one names what it returned, each name resolves to the
//!   same manifest, and every blob of it (manifest, config, layers) is in
//!   the store with the digest and size its descriptor gives, within the
//!   limits;
//! - importing the same archive again gives the same result (the same
//!   images, or again an error).

use std::io::Read;

use rootfs_builder::import::{import_reader_with, ImportLimits};
use rootfs_builder::store::oci_digest;
use rootfs_builder::{Digest, ImageName, Store};

use super::framing::Members;
use super::Scratch;

pub const LIMITS: ImportLimits = ImportLimits {
    max_archive_bytes: 4 << 20,
    max_layer_bytes: 4 << 20,
};

pub fn check(data: &[u8]) {
    // The first byte picks the name given (none, or one), the rest are
    // the members.
    let (name, rest) = match data.split_first() {
        Some((b, rest)) if b % 2 == 1 => (Some("fuzz/image:given"), rest),
        Some((_, rest)) => (None, rest),
        None => (None, data),
    };
    let name: Option<ImageName> = name.map(|n| n.parse().expect("a valid name"));
    let tar = Members::parse(rest).to_tar();
    let scratch = Scratch::new("import");
    let store = Store::open(&scratch.0).expect("open a store");

    let first = import_reader_with(&store, &tar[..], name.as_ref(), &LIMITS);
    check_store(&store, &first);
    if first.is_err() {
        assert!(
            store.list().expect("read the index").is_empty(),
            "a failed import named something: {first:?}"
        );
    }
    let second = import_reader_with(&store, &tar[..], name.as_ref(), &LIMITS);
    check_store(&store, &second);
    match (&first, &second) {
        (Ok(a), Ok(b)) => {
            let digests = |v: &Vec<rootfs_builder::Image>| {
                v.iter()
                    .map(|i| (i.name.to_string(), i.manifest_digest.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(digests(a), digests(b), "a second import differs");
        }
        (Err(_), Err(_)) => {}
        (a, b) => panic!(
            "a second import differs: {:?} then {:?}",
            a.as_ref().map(|v| v.len()),
            b.as_ref().map(|v| v.len())
        ),
    }
}

/// Checks the invariants on `store` after an import that gave `result`.
pub fn check_store(
    store: &Store,
    result: &Result<Vec<rootfs_builder::Image>, rootfs_builder::import::ImportError>,
) {
    // Every blob is what its name says.
    let blobs = store.layout_dir().join("blobs/sha256");
    for e in std::fs::read_dir(&blobs).expect("list blobs") {
        let e = e.expect("blob entry");
        let hex = e.file_name().to_string_lossy().into_owned();
        let meta = std::fs::symlink_metadata(e.path()).expect("stat a blob");
        assert!(meta.is_file(), "blob {hex} is not a regular file");
        let mut content = Vec::new();
        std::fs::File::open(e.path())
            .and_then(|mut f| f.read_to_end(&mut content))
            .expect("read a blob");
        assert_eq!(
            Digest::of(&content).hex(),
            hex,
            "blob {hex} has other content"
        );
    }
    assert_eq!(
        std::fs::read_dir(store.tmp_dir())
            .expect("list tmp")
            .count(),
        0,
        "temporary files left ({result:?})"
    );
    let listed = store.list().expect("the index stays readable");
    // What is named must be whole, whatever this import did.
    for img in result.iter().flatten() {
        assert!(
            listed.iter().any(|e| e.name == img.name.to_string()),
            "{} returned but not named",
            img.name
        );
    }
    for entry in &listed {
        let name: ImageName = entry.name.parse().expect("a stored name parses");
        assert_eq!(name.to_string(), entry.name, "a stored name re-serializes");
        let img = store.resolve(&name).expect("a stored name resolves");
        assert_eq!(img.manifest_digest, entry.digest);
        assert!(store.has_blob(&img.manifest_digest));
        assert!(store.has_blob(&img.config_digest));
        let cfg = img.manifest.config();
        assert_eq!(oci_digest(cfg).expect("config digest"), img.config_digest);
        let layers = img.layer_digests().expect("layer digests");
        assert_eq!(
            layers.len(),
            img.diff_ids().expect("diff ids").len(),
            "{}: layers and diff_ids differ in number",
            name
        );
        for (d, desc) in layers.iter().zip(img.manifest.layers()) {
            let path = store.blob_path(d);
            let size = std::fs::metadata(&path)
                .unwrap_or_else(|e| panic!("{name}: layer {d} missing: {e}"))
                .len();
            assert_eq!(size, desc.size(), "{name}: layer {d} size");
            assert!(size <= LIMITS.max_archive_bytes);
        }
    }
}
