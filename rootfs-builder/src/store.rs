//! The image store: an OCI image layout (image-layout spec v1.0) at
//! `<data dir>/images`.
//!
//! - `blobs/sha256/<hex>`: every manifest, config and layer, named by its
//!   digest, written to `tmp/` first and renamed in only after the digest
//!   was checked; read back through a verifying reader.
//! - `index.json`: one descriptor per image name, whose
//!   `org.opencontainers.image.ref.name` annotation is `repository:tag`.
//!   Changes take `.lock` (flock) and replace the file by rename, so readers
//!   never see half an index and the CLI and the daemon can share a store.
//!
//! Unpacked layers live beside the layout (`<data dir>/layers`, see
//! `unpack`); what no image references is removed by `gc`.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use nix::fcntl::{Flock, FlockArg};
use oci_spec::image::{
    Descriptor, ImageConfiguration, ImageIndex, ImageIndexBuilder, ImageManifest,
    ImageManifestBuilder, MediaType,
};

use crate::atomic_write::{random_hex, write_atomic, AtomicFile, Replace};
use crate::digest::{Digest, DigestError, HashingReader, HashingWriter};

/// Annotation that names an image in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Manifests and configs are small; anything larger is refused unread.
pub const MAX_JSON_BLOB: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("image {0} not found")]
    NotFound(String),
    #[error("blob {0} not in the store")]
    BlobMissing(Digest),
    #[error("blob {what}: content has digest {actual}, expected {expected}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("blob {what}: {size} bytes, more than the limit of {limit}")]
    TooLarge { what: String, size: u64, limit: u64 },
    #[error("image name {name:?}: {reason}")]
    BadName { name: String, reason: &'static str },
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error(transparent)]
    Digest(#[from] DigestError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> StoreError {
    let what = what.into();
    move |source| StoreError::Io { what, source }
}

/// `repository:tag`. The repository may carry a registry host
/// (`localhost:5000/team/app`); the tag defaults to `latest`.
/// On the wire (the daemon's build helper) it is its text, checked again
/// when read.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct ImageName {
    pub repository: String,
    pub tag: String,
}

impl TryFrom<String> for ImageName {
    type Error = StoreError;
    fn try_from(s: String) -> Result<ImageName, StoreError> {
        s.parse()
    }
}

impl From<ImageName> for String {
    fn from(n: ImageName) -> String {
        n.to_string()
    }
}

impl FromStr for ImageName {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<ImageName, StoreError> {
        let bad = |reason| StoreError::BadName {
            name: s.into(),
            reason,
        };
        if s.is_empty() || s.len() > 255 {
            return Err(bad("use 1-255 characters"));
        }
        // A ':' after the last '/' starts the tag (a ':' before it is a
        // registry port).
        let last_slash = s.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (repository, tag) = match s[last_slash..].find(':') {
            Some(i) => (&s[..last_slash + i], &s[last_slash + i + 1..]),
            None => (s, "latest"),
        };
        if s.contains('@') {
            return Err(bad("digest references (@sha256:...) are not names"));
        }
        if repository.is_empty()
            || repository.starts_with(['/', '.', '-'])
            || repository.ends_with('/')
            || repository.contains("//")
            || repository.split('/').any(|c| c == ".." || c == ".")
            || !repository
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/:".contains(&b))
        {
            return Err(bad(
                "the repository is lower-case letters, digits and . _ - / (a registry host may carry :port)",
            ));
        }
        // The written form (`repository:tag`, the tag perhaps implied) is
        // what the index keeps and what must parse back: 255 at most
        // (found by fuzzing: a 250-character name without a tag).
        if repository.len() + 1 + tag.len() > 255 {
            return Err(bad("use 1-255 characters, `:tag` included"));
        }
        if tag.is_empty()
            || tag.len() > 128
            || tag.starts_with(['.', '-'])
            || !tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(bad("the tag is 1-128 of letters, digits and . _ -"));
        }
        Ok(ImageName {
            repository: repository.into(),
            tag: tag.into(),
        })
    }
}

impl std::fmt::Display for ImageName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.repository, self.tag)
    }
}

/// A resolved image: its manifest and config, both read back verified.
#[derive(Clone, Debug)]
pub struct Image {
    pub name: ImageName,
    pub manifest_digest: Digest,
    pub manifest: ImageManifest,
    pub config_digest: Digest,
    pub config: ImageConfiguration,
}

impl Image {
    /// Layer blob digests, bottom first.
    pub fn layer_digests(&self) -> Result<Vec<Digest>, StoreError> {
        self.manifest.layers().iter().map(oci_digest).collect()
    }

    /// Uncompressed layer digests (`rootfs.diff_ids`), bottom first.
    pub fn diff_ids(&self) -> Result<Vec<Digest>, StoreError> {
        self.config
            .rootfs()
            .diff_ids()
            .iter()
            .map(|d| d.parse::<Digest>().map_err(StoreError::from))
            .collect()
    }

    /// Compressed size of config and layers.
    pub fn size(&self) -> u64 {
        self.manifest.config().size() + self.manifest.layers().iter().map(|l| l.size()).sum::<u64>()
    }
}

/// One row of `Store::list`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ImageEntry {
    pub name: String,
    pub digest: Digest,
    pub size: u64,
}

/// The digest of a descriptor, as ours.
pub fn oci_digest(d: &Descriptor) -> Result<Digest, StoreError> {
    Ok(d.digest().to_string().parse::<Digest>()?)
}

/// Our digest as oci-spec's.
pub fn to_oci_digest(d: &Digest) -> oci_spec::image::Digest {
    // Our digests are valid sha256 digests by construction.
    match oci_spec::image::Digest::from_str(&d.to_string()) {
        Ok(x) => x,
        Err(_) => unreachable!("a parsed sha256 digest is a valid OCI digest"),
    }
}

/// A reader over a blob that fails at its end if the content does not have
/// the expected digest (so a consumer that reads to the end has verified
/// everything it read; one that stops early must not trust the data).
pub struct VerifiedBlob {
    inner: HashingReader<File>,
    expected: Digest,
    done: bool,
}

impl Read for VerifiedBlob {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && !self.done {
            self.done = true;
            let h = std::mem::replace(
                &mut self.inner,
                HashingReader::new(File::open("/dev/null")?),
            );
            let (actual, _) = h.finish();
            if actual != self.expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("blob {}: content has digest {actual}", self.expected),
                ));
            }
        }
        Ok(n)
    }
}

#[derive(Clone, Debug)]
pub struct Store {
    data_dir: PathBuf,
    root: PathBuf,
}

/// What [`Store::put_image`] records an image from.
#[derive(Debug)]
pub enum ImageContent<'a> {
    /// A config, as the bytes to store, and the layers it names (already
    /// stored): the manifest is made here (a build, a docker-archive
    /// import).
    Parts {
        config: &'a [u8],
        layers: Vec<Descriptor>,
    },
    /// A manifest as received (a registry, an OCI layout): stored only if
    /// its bytes have `digest`.
    Manifest { bytes: &'a [u8], digest: &'a Digest },
    /// A manifest already in the store (another name for an image).
    Stored(&'a Digest),
}

impl Store {
    /// Opens (creating if needed) the store under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        let root = data_dir.join("images");
        for d in [
            data_dir.to_path_buf(),
            root.clone(),
            root.join("blobs/sha256"),
            root.join("tmp"),
        ] {
            std::fs::create_dir_all(&d).map_err(io_err(format!("create {}", d.display())))?;
        }
        // Layers hold other users' files and the store is root's: nobody
        // else walks the data dir.
        let _ = std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700));
        let layout = root.join("oci-layout");
        if !layout.exists() {
            write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#, 0o644)
                .map_err(io_err(format!("write {}", layout.display())))?;
        }
        let store = Store {
            data_dir: data_dir.to_path_buf(),
            root,
        };
        if !store.root.join("index.json").exists() {
            let _lock = store.lock()?;
            if !store.root.join("index.json").exists() {
                store.write_index(&empty_index()?)?;
            }
        }
        Ok(store)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The OCI layout directory.
    pub fn layout_dir(&self) -> &Path {
        &self.root
    }

    /// A scratch directory on the store's filesystem (renames into the
    /// store are atomic from there).
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Takes the store's lock (index changes, gc). Released on drop.
    pub fn lock(&self) -> Result<Flock<File>, StoreError> {
        let p = self.root.join(".lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&p)
            .map_err(io_err(format!("open {}", p.display())))?;
        Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| StoreError::Io {
            what: format!("lock {}", p.display()),
            source: io::Error::from_raw_os_error(e as i32),
        })
    }

    /// Streams `r` into the store. With `expected`, the content must have
    /// that digest (else nothing is stored); `limit` caps the size.
    pub fn put_blob(
        &self,
        r: impl Read,
        expected: Option<&Digest>,
        limit: Option<u64>,
    ) -> Result<(Digest, u64), StoreError> {
        let what = expected
            .map(|d| d.to_string())
            .unwrap_or_else(|| "upload".into());
        let mut tmp = AtomicFile::create_in(&self.tmp_dir(), 0o644).map_err(io_err(format!(
            "create a file in {}",
            self.tmp_dir().display()
        )))?;
        let mut w = HashingWriter::new(io::BufWriter::with_capacity(1 << 16, tmp.file()));
        let cap = limit.unwrap_or(u64::MAX);
        let copied = io::copy(&mut r.take(cap.saturating_add(1)), &mut w)
            .map_err(io_err(format!("write blob {what}")))?;
        if copied > cap {
            return Err(StoreError::TooLarge {
                what,
                size: copied,
                limit: cap,
            });
        }
        let (digest, size, buf) = w.finish();
        buf.into_inner().map_err(|e| StoreError::Io {
            what: format!("write blob {what}"),
            source: e.into_error(),
        })?;
        if let Some(exp) = expected {
            if *exp != digest {
                return Err(StoreError::DigestMismatch {
                    what,
                    expected: exp.clone(),
                    actual: digest,
                });
            }
        }
        // Content-addressed: a blob already there has these bytes (reads
        // verify it), so it stays.
        tmp.publish(&self.blob_path(&digest), Replace::No)
            .map_err(io_err(format!("store blob {digest}")))?;
        Ok((digest, size))
    }

    pub fn put_blob_bytes(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        Ok(self.put_blob(bytes, None, None)?.0)
    }

    /// Opens a blob for reading; the reader fails at its end if the content
    /// does not match its name.
    pub fn open_blob(&self, d: &Digest) -> Result<VerifiedBlob, StoreError> {
        let p = self.blob_path(d);
        let f = File::open(&p).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::BlobMissing(d.clone()),
            _ => StoreError::Io {
                what: format!("open {}", p.display()),
                source: e,
            },
        })?;
        Ok(VerifiedBlob {
            inner: HashingReader::new(f),
            expected: d.clone(),
            done: false,
        })
    }

    /// Reads a whole (small) blob, verified.
    pub fn read_blob(&self, d: &Digest, limit: u64) -> Result<Vec<u8>, StoreError> {
        let mut r = self.open_blob(d)?;
        let mut out = Vec::new();
        let mismatch = |e: io::Error, out: &[u8]| match e.kind() {
            io::ErrorKind::InvalidData => StoreError::DigestMismatch {
                what: d.to_string(),
                expected: d.clone(),
                actual: Digest::of(out),
            },
            _ => StoreError::Io {
                what: format!("read blob {d}"),
                source: e,
            },
        };
        if let Err(e) = (&mut r).take(limit + 1).read_to_end(&mut out) {
            return Err(mismatch(e, &out));
        }
        if out.len() as u64 > limit {
            return Err(StoreError::TooLarge {
                what: d.to_string(),
                size: out.len() as u64,
                limit,
            });
        }
        // Reach the end so the digest is checked.
        let mut rest = [0u8; 1];
        if let Err(e) = r.read(&mut rest) {
            return Err(mismatch(e, &out));
        }
        Ok(out)
    }

    /// Reads and parses a JSON blob.
    pub fn read_json<T: serde::de::DeserializeOwned>(&self, d: &Digest) -> Result<T, StoreError> {
        let bytes = self.read_blob(d, MAX_JSON_BLOB)?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Invalid {
            what: format!("blob {d}"),
            reason: e.to_string(),
        })
    }

    /// The index (`index.json`).
    pub fn index(&self) -> Result<ImageIndex, StoreError> {
        let p = self.root.join("index.json");
        let bytes = std::fs::read(&p).map_err(io_err(format!("read {}", p.display())))?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Invalid {
            what: p.display().to_string(),
            reason: e.to_string(),
        })
    }

    fn write_index(&self, index: &ImageIndex) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(index).map_err(|e| StoreError::Invalid {
            what: "index.json".into(),
            reason: e.to_string(),
        })?;
        let p = self.root.join("index.json");
        write_atomic(&p, &bytes, 0o644).map_err(io_err(format!("write {}", p.display())))
    }

    /// Records image `name`: its manifest blob (made from `content`) and its
    /// entry in `index.json`. The one way an image enters the store: a
    /// build, a pull, an import. Blobs go first and the index entry last
    /// (one atomic rewrite under the store's lock), so a name never points
    /// at a missing blob; the manifest's config and layers must be stored
    /// and agree (as many layers as diff_ids). Replaces an older image of
    /// that name.
    pub fn put_image(
        &self,
        name: &ImageName,
        content: ImageContent<'_>,
    ) -> Result<Image, StoreError> {
        // Everything is checked before the first blob is written: a refused
        // image leaves no new blob behind.
        let manifest = match content {
            ImageContent::Parts { config, layers } => {
                self.require_blobs(&layers)?;
                let c = self.put_blob_bytes(config)?;
                let m = ImageManifestBuilder::default()
                    .schema_version(2u32)
                    .media_type(MediaType::ImageManifest)
                    .config(Descriptor::new(
                        MediaType::ImageConfig,
                        config.len() as u64,
                        to_oci_digest(&c),
                    ))
                    .layers(layers)
                    .build()
                    .map_err(|e| StoreError::Invalid {
                        what: format!("image {name}"),
                        reason: e.to_string(),
                    })?;
                let bytes = serde_json::to_vec(&m).map_err(|e| StoreError::Invalid {
                    what: format!("image {name}"),
                    reason: e.to_string(),
                })?;
                self.put_blob_bytes(&bytes)?
            }
            ImageContent::Manifest { bytes, digest } => {
                let actual = Digest::of(bytes);
                if actual != *digest {
                    return Err(StoreError::DigestMismatch {
                        what: format!("manifest of {name}"),
                        expected: digest.clone(),
                        actual,
                    });
                }
                let m: ImageManifest =
                    serde_json::from_slice(bytes).map_err(|e| StoreError::Invalid {
                        what: format!("manifest {digest}"),
                        reason: e.to_string(),
                    })?;
                self.require_blobs(m.layers())?;
                self.require_blobs(std::slice::from_ref(m.config()))?;
                self.put_blob(bytes, Some(digest), Some(MAX_JSON_BLOB))?;
                digest.clone()
            }
            ImageContent::Stored(d) => d.clone(),
        };
        let image = self.load(name.clone(), &manifest)?;
        for l in image.layer_digests()? {
            if !self.has_blob(&l) {
                return Err(StoreError::BlobMissing(l));
            }
        }
        let size = self.blob_size(&manifest)?;
        let mut annotations = std::collections::HashMap::new();
        annotations.insert(REF_NAME.to_string(), name.to_string());
        let mut desc = Descriptor::new(MediaType::ImageManifest, size, to_oci_digest(&manifest));
        desc.set_annotations(Some(annotations));
        let _lock = self.lock()?;
        let mut index = self.index()?;
        let mut manifests: Vec<Descriptor> = index
            .manifests()
            .iter()
            .filter(|d| ref_name(d) != Some(name.to_string().as_str()))
            .cloned()
            .collect();
        manifests.push(desc);
        index.set_manifests(manifests);
        self.write_index(&index)?;
        Ok(image)
    }

    /// Fails with `BlobMissing` unless every blob `descs` names is stored.
    fn require_blobs(&self, descs: &[Descriptor]) -> Result<(), StoreError> {
        for d in descs {
            let d = oci_digest(d)?;
            if !self.has_blob(&d) {
                return Err(StoreError::BlobMissing(d));
            }
        }
        Ok(())
    }

    /// Removes the name (blobs stay until `gc`). Returns the manifest digest
    /// it named.
    pub fn untag(&self, name: &ImageName) -> Result<Digest, StoreError> {
        let _lock = self.lock()?;
        let mut index = self.index()?;
        let key = name.to_string();
        let Some(found) = index
            .manifests()
            .iter()
            .find(|d| ref_name(d) == Some(key.as_str()))
            .cloned()
        else {
            return Err(StoreError::NotFound(key));
        };
        let manifests = index
            .manifests()
            .iter()
            .filter(|d| ref_name(d) != Some(key.as_str()))
            .cloned()
            .collect();
        index.set_manifests(manifests);
        self.write_index(&index)?;
        oci_digest(&found)
    }

    /// Every named image, sorted by name.
    pub fn list(&self) -> Result<Vec<ImageEntry>, StoreError> {
        let mut out = BTreeMap::new();
        for d in self.index()?.manifests() {
            let Some(name) = ref_name(d) else { continue };
            let digest = oci_digest(d)?;
            let size = match self
                .read_json::<ImageManifest>(&digest)
                .map(|m| m.config().size() + m.layers().iter().map(|l| l.size()).sum::<u64>())
            {
                Ok(s) => s,
                Err(_) => continue,
            };
            out.insert(
                name.to_string(),
                ImageEntry {
                    name: name.to_string(),
                    digest,
                    size,
                },
            );
        }
        Ok(out.into_values().collect())
    }

    /// The image named `name`.
    pub fn resolve(&self, name: &ImageName) -> Result<Image, StoreError> {
        let key = name.to_string();
        let index = self.index()?;
        let Some(desc) = index
            .manifests()
            .iter()
            .find(|d| ref_name(d) == Some(key.as_str()))
        else {
            return Err(StoreError::NotFound(key));
        };
        self.load(name.clone(), &oci_digest(desc)?)
    }

    /// Reads manifest `manifest` and its config, both verified.
    pub fn load(&self, name: ImageName, manifest: &Digest) -> Result<Image, StoreError> {
        let m: ImageManifest = self.read_json(manifest)?;
        let config_digest = oci_digest(m.config())?;
        let config: ImageConfiguration = self.read_json(&config_digest)?;
        let image = Image {
            name,
            manifest_digest: manifest.clone(),
            manifest: m,
            config_digest,
            config,
        };
        let layers = image.layer_digests()?.len();
        let diff_ids = image.diff_ids()?.len();
        if layers != diff_ids {
            return Err(StoreError::Invalid {
                what: format!("image {}", image.name),
                reason: format!("{layers} layers but {diff_ids} diff_ids in the config"),
            });
        }
        Ok(image)
    }

    fn blob_size(&self, d: &Digest) -> Result<u64, StoreError> {
        let p = self.blob_path(d);
        std::fs::metadata(&p)
            .map(|m| m.len())
            .map_err(|_| StoreError::BlobMissing(d.clone()))
    }

    /// A new file in `tmp/` (mode 0644).
    pub fn tmp_file(&self) -> Result<(PathBuf, File), StoreError> {
        let dir = self.tmp_dir();
        for _ in 0..16 {
            let p = dir.join(format!("blob-{}", random_hex()));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&p)
            {
                Ok(f) => return Ok((p, f)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err(format!("create in {}", dir.display()))(e)),
            }
        }
        Err(StoreError::Io {
            what: format!("create in {}", dir.display()),
            source: io::Error::from(io::ErrorKind::AlreadyExists),
        })
    }
}

/// The ref name annotation of a descriptor.
pub fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations()
        .as_ref()
        .and_then(|a| a.get(REF_NAME))
        .map(|s| s.as_str())
}

fn empty_index() -> Result<ImageIndex, StoreError> {
    ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(Vec::<Descriptor>::new())
        .build()
        .map_err(|e| StoreError::Invalid {
            what: "index.json".into(),
            reason: e.to_string(),
        })
}

/// Removes a temporary file unless it was renamed away.
pub(crate) struct TmpGuard(pub PathBuf);

impl Drop for TmpGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::{ImageConfigurationBuilder, ImageManifestBuilder, RootFsBuilder};

    /// The config bytes of a one-layer image whose layer is `l`.
    fn config_of(l: &Digest) -> Vec<u8> {
        let config = ImageConfigurationBuilder::default()
            .architecture(oci_spec::image::Arch::Amd64)
            .os(oci_spec::image::Os::Linux)
            .rootfs(
                RootFsBuilder::default()
                    .typ("layers")
                    .diff_ids(vec![l.to_string()])
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        serde_json::to_vec(&config).unwrap()
    }

    fn image_in(store: &Store, layer: &[u8]) -> Digest {
        let l = store.put_blob_bytes(layer).unwrap();
        let cbytes = config_of(&l);
        let c = store.put_blob_bytes(&cbytes).unwrap();
        let m = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(Descriptor::new(
                MediaType::ImageConfig,
                cbytes.len() as u64,
                to_oci_digest(&c),
            ))
            .layers(vec![Descriptor::new(
                MediaType::ImageLayer,
                layer.len() as u64,
                to_oci_digest(&l),
            )])
            .build()
            .unwrap();
        store
            .put_blob_bytes(&serde_json::to_vec(&m).unwrap())
            .unwrap()
    }

    #[test]
    fn names_parse_with_hosts_ports_and_default_tags() {
        let n: ImageName = "python".parse().unwrap();
        assert_eq!(
            (n.repository.as_str(), n.tag.as_str()),
            ("python", "latest")
        );
        let n: ImageName = "localhost:5000/team/app:v1.2".parse().unwrap();
        assert_eq!(n.repository, "localhost:5000/team/app");
        assert_eq!(n.tag, "v1.2");
        let n: ImageName = "localhost:5000/app".parse().unwrap();
        assert_eq!(
            (n.repository.as_str(), n.tag.as_str()),
            ("localhost:5000/app", "latest")
        );
        for bad in [
            "",
            "Python",
            "a/../b",
            "/abs",
            "a:",
            "a:-x",
            "a@sha256:00",
            "a b",
            "a//b",
        ] {
            assert!(bad.parse::<ImageName>().is_err(), "{bad:?}");
        }
    }

    /// Found by fuzz/ (target `reference`): a 250-character name without
    /// a tag parsed, but its written form (`:latest` added) did not.
    #[test]
    fn a_name_is_measured_with_its_tag() {
        assert!("a".repeat(250).parse::<ImageName>().is_err());
        let longest = "a".repeat(248);
        let n: ImageName = longest.parse().unwrap();
        assert_eq!(n.to_string().len(), 255);
        assert_eq!(n.to_string().parse::<ImageName>().unwrap(), n);
    }

    #[test]
    fn blobs_are_verified_on_the_way_in_and_out() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let good = Digest::of(b"hello");
        let wrong = Digest::of(b"other");
        assert!(matches!(
            store.put_blob(&b"hello"[..], Some(&wrong), None),
            Err(StoreError::DigestMismatch { .. })
        ));
        assert!(!store.has_blob(&wrong) && !store.has_blob(&good));
        assert!(matches!(
            store.put_blob(&b"hello"[..], None, Some(4)),
            Err(StoreError::TooLarge { .. })
        ));
        assert_eq!(std::fs::read_dir(store.tmp_dir()).unwrap().count(), 0);
        let (d, n) = store.put_blob(&b"hello"[..], Some(&good), None).unwrap();
        assert_eq!((d.clone(), n), (good.clone(), 5));
        assert_eq!(store.read_blob(&d, 100).unwrap(), b"hello");
        // A blob changed on disk is refused when read.
        let p = store.blob_path(&d);
        std::fs::write(&p, b"hellO").unwrap();
        assert!(matches!(
            store.read_blob(&d, 100),
            Err(StoreError::DigestMismatch { .. })
        ));
        let mut r = store.open_blob(&d).unwrap();
        let e = std::io::copy(&mut r, &mut std::io::sink()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn tag_resolve_list_untag() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let m1 = image_in(&store, b"layer one");
        let m2 = image_in(&store, b"layer two");
        let a: ImageName = "a:1".parse().unwrap();
        store.put_image(&a, ImageContent::Stored(&m1)).unwrap();
        store
            .put_image(&"b".parse().unwrap(), ImageContent::Stored(&m1))
            .unwrap();
        assert_eq!(store.resolve(&a).unwrap().manifest_digest, m1);
        store.put_image(&a, ImageContent::Stored(&m2)).unwrap();
        let img = store.resolve(&a).unwrap();
        assert_eq!(img.manifest_digest, m2);
        assert_eq!(img.diff_ids().unwrap(), vec![Digest::of(b"layer two")]);
        let names: Vec<String> = store.list().unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["a:1", "b:latest"]);
        // A second Store on the same dir sees the same index.
        let again = Store::open(dir.path()).unwrap();
        assert_eq!(again.untag(&a).unwrap(), m2);
        assert!(matches!(store.resolve(&a), Err(StoreError::NotFound(_))));
        assert!(matches!(store.untag(&a), Err(StoreError::NotFound(_))));
        // A manifest whose layer is missing cannot be named.
        let m3 = image_in(&store, b"layer three");
        std::fs::remove_file(store.blob_path(&Digest::of(b"layer three"))).unwrap();
        assert!(matches!(
            store.put_image(&a, ImageContent::Stored(&m3)),
            Err(StoreError::BlobMissing(_))
        ));
        let layout: serde_json::Value =
            serde_json::from_slice(&std::fs::read(store.layout_dir().join("oci-layout")).unwrap())
                .unwrap();
        assert_eq!(layout["imageLayoutVersion"], "1.0.0");
    }

    #[test]
    fn put_image_records_an_image_once_or_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let layer = b"the layer";
        let l = store.put_blob_bytes(layer).unwrap();
        let cbytes = config_of(&l);
        let layers = vec![Descriptor::new(
            MediaType::ImageLayer,
            layer.len() as u64,
            to_oci_digest(&l),
        )];
        let a: ImageName = "a:1".parse().unwrap();
        let img = store
            .put_image(
                &a,
                ImageContent::Parts {
                    config: &cbytes,
                    layers: layers.clone(),
                },
            )
            .unwrap();
        // The manifest and config are blobs; the name resolves to them.
        assert!(store.has_blob(&img.manifest_digest));
        assert_eq!(img.config_digest, Digest::of(&cbytes));
        assert_eq!(
            store.resolve(&a).unwrap().manifest_digest,
            img.manifest_digest
        );
        let mbytes = store.read_blob(&img.manifest_digest, 1 << 20).unwrap();
        let index_before = std::fs::read(store.layout_dir().join("index.json")).unwrap();
        let blobs = || {
            std::fs::read_dir(store.layout_dir().join("blobs/sha256"))
                .unwrap()
                .count()
        };
        let blobs_before = blobs();

        // A manifest whose bytes are not its digest: refused, nothing named
        // or stored.
        let b: ImageName = "b:1".parse().unwrap();
        let mut forged = mbytes.clone();
        forged.push(b' ');
        let r = store.put_image(
            &b,
            ImageContent::Manifest {
                bytes: &forged,
                digest: &img.manifest_digest,
            },
        );
        assert!(matches!(r, Err(StoreError::DigestMismatch { .. })), "{r:?}");
        // Layers that are not stored: refused before the index is touched.
        let missing = vec![Descriptor::new(
            MediaType::ImageLayer,
            3,
            to_oci_digest(&Digest::of(b"not stored")),
        )];
        let r = store.put_image(
            &b,
            ImageContent::Parts {
                config: &cbytes,
                layers: missing,
            },
        );
        assert!(matches!(r, Err(StoreError::BlobMissing(_))), "{r:?}");
        assert_eq!(
            std::fs::read(store.layout_dir().join("index.json")).unwrap(),
            index_before
        );
        assert!(matches!(store.resolve(&b), Err(StoreError::NotFound(_))));
        // Neither left a blob.
        assert_eq!(blobs(), blobs_before);

        // The same manifest as received names it again, with no new blob.
        let again = store
            .put_image(
                &b,
                ImageContent::Manifest {
                    bytes: &mbytes,
                    digest: &img.manifest_digest,
                },
            )
            .unwrap();
        assert_eq!(again.manifest_digest, img.manifest_digest);
        assert_eq!(blobs(), blobs_before);
        let names: Vec<String> = store.list().unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["a:1", "b:1"]);
    }
}
