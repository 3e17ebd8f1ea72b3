//! Archives built byte by byte for the unpack, import and gc tests: raw tar
//! headers (so hostile names like `../x` can be written, which the tar
//! crate's own path setters refuse), PAX records, and images put straight
//! into a store.
#![allow(dead_code)]

use std::io::Write;

use oci_spec::image::{
    Arch, Descriptor, ImageConfigurationBuilder, ImageManifestBuilder, MediaType, Os, RootFsBuilder,
};
use rootfs_builder::store::to_oci_digest;
use rootfs_builder::{Digest, Image, ImageName, Store};
use tar::{EntryType, Header};

pub const MTIME: u64 = 1_600_000_000;

/// One tar entry, header fields set directly.
pub struct Ent<'a> {
    pub path: &'a [u8],
    pub kind: EntryType,
    pub data: &'a [u8],
    pub link: &'a [u8],
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub dev: (u32, u32),
    pub pax: Vec<(&'a str, &'a [u8])>,
    /// Size written in the header when it must differ from `data`.
    pub size: Option<u64>,
}

pub fn ent(path: &str, kind: EntryType) -> Ent<'_> {
    Ent {
        path: path.as_bytes(),
        kind,
        data: b"",
        link: b"",
        mode: if kind == EntryType::Directory {
            0o755
        } else {
            0o644
        },
        uid: 0,
        gid: 0,
        dev: (0, 0),
        pax: Vec::new(),
        size: None,
    }
}

pub fn file<'a>(path: &'a str, data: &'a [u8]) -> Ent<'a> {
    Ent {
        data,
        ..ent(path, EntryType::Regular)
    }
}

pub fn dir(path: &str) -> Ent<'_> {
    ent(path, EntryType::Directory)
}

pub fn symlink<'a>(path: &'a str, target: &'a str) -> Ent<'a> {
    Ent {
        link: target.as_bytes(),
        mode: 0o777,
        ..ent(path, EntryType::Symlink)
    }
}

pub fn hardlink<'a>(path: &'a str, target: &'a str) -> Ent<'a> {
    Ent {
        link: target.as_bytes(),
        ..ent(path, EntryType::Link)
    }
}

fn pad(out: &mut Vec<u8>) {
    let rem = out.len() % 512;
    if rem != 0 {
        out.resize(out.len() + 512 - rem, 0);
    }
}

fn header(path: &[u8], kind: EntryType, size: u64) -> Header {
    let mut h = Header::new_ustar();
    assert!(path.len() <= 100, "raw names are at most 100 bytes");
    h.as_old_mut().name[..path.len()].copy_from_slice(path);
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mtime(MTIME);
    h
}

/// The bytes of one entry (a PAX header first when it has records).
pub fn entry_bytes(e: &Ent) -> Vec<u8> {
    let mut out = Vec::new();
    if !e.pax.is_empty() {
        let mut recs = Vec::new();
        for (k, v) in &e.pax {
            // "<len> <key>=<value>\n", len counting itself.
            let body = 1 + k.len() + 1 + v.len() + 1;
            let mut len = body + 1;
            while len.to_string().len() + body != len {
                len = body + len.to_string().len();
            }
            recs.extend_from_slice(format!("{len} {k}=").as_bytes());
            recs.extend_from_slice(v);
            recs.push(b'\n');
        }
        let mut h = header(b"PaxHeaders/x", EntryType::XHeader, recs.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(&recs);
        pad(&mut out);
    }
    let mut h = header(e.path, e.kind, e.size.unwrap_or(e.data.len() as u64));
    h.set_mode(e.mode);
    h.set_uid(e.uid);
    h.set_gid(e.gid);
    if !e.link.is_empty() {
        assert!(e.link.len() <= 100);
        h.as_old_mut().linkname[..e.link.len()].copy_from_slice(e.link);
    }
    if matches!(e.kind, EntryType::Char | EntryType::Block) {
        h.set_device_major(e.dev.0).unwrap();
        h.set_device_minor(e.dev.1).unwrap();
    }
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(e.data);
    pad(&mut out);
    out
}

/// A whole archive: the entries and the two zero end blocks.
pub fn tar(entries: &[Ent]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        out.extend(entry_bytes(e));
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

pub fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).unwrap()
}

/// A layer as stored: the blob, its media type and its diff_id.
pub struct Layer {
    pub blob: Vec<u8>,
    pub media_type: String,
    pub diff_id: Digest,
}

pub fn plain(tar: Vec<u8>) -> Layer {
    Layer {
        diff_id: Digest::of(&tar),
        blob: tar,
        media_type: "application/vnd.oci.image.layer.v1.tar".into(),
    }
}

pub fn gzipped(tar: &[u8]) -> Layer {
    Layer {
        diff_id: Digest::of(tar),
        blob: gzip(tar),
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
    }
}

pub fn zstded(tar: &[u8]) -> Layer {
    Layer {
        diff_id: Digest::of(tar),
        blob: zstd(tar),
        media_type: "application/vnd.oci.image.layer.v1.tar+zstd".into(),
    }
}

/// Stores `layers` (bottom first) as an image and names it `name`.
pub fn image(store: &Store, name: &str, layers: &[Layer]) -> Image {
    let manifest = manifest_of(store, layers);
    store
        .put_image(
            &name.parse::<ImageName>().unwrap(),
            rootfs_builder::ImageContent::Stored(&manifest),
        )
        .unwrap()
}

/// Stores the blobs, config and manifest; returns the manifest digest.
pub fn manifest_of(store: &Store, layers: &[Layer]) -> Digest {
    let mut descs = Vec::new();
    for l in layers {
        let d = store.put_blob_bytes(&l.blob).unwrap();
        descs.push(Descriptor::new(
            MediaType::from(l.media_type.as_str()),
            l.blob.len() as u64,
            to_oci_digest(&d),
        ));
    }
    let config = ImageConfigurationBuilder::default()
        .architecture(Arch::Amd64)
        .os(Os::Linux)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(
                    layers
                        .iter()
                        .map(|l| l.diff_id.to_string())
                        .collect::<Vec<_>>(),
                )
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let cbytes = serde_json::to_vec(&config).unwrap();
    let c = store.put_blob_bytes(&cbytes).unwrap();
    let m = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(Descriptor::new(
            MediaType::ImageConfig,
            cbytes.len() as u64,
            to_oci_digest(&c),
        ))
        .layers(descs)
        .build()
        .unwrap();
    store
        .put_blob_bytes(&serde_json::to_vec(&m).unwrap())
        .unwrap()
}

/// Names under `dir`, recursively, sorted (for "nothing left behind").
pub fn tree(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let e = e.unwrap();
            let p = e.path();
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}
