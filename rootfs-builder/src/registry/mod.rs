//! Pulling images from an OCI distribution registry (distribution spec v2
//! API: `GET /v2/<name>/manifests/<ref>`, `GET /v2/<name>/blobs/<digest>`).
//!
//! A pull resolves the reference (Docker Hub defaults, `reference`), asks
//! for the manifest accepting OCI and Docker schema 2 manifests and
//! indexes/lists, picks the wanted platform's manifest out of an index,
//! streams config and layers into the store through `Store::put_blob`
//! (each checked against its descriptor's digest and size; blobs already
//! present are not fetched), stores the manifest verbatim once its digest
//! matches what was asked for (the `@digest`, the index entry, or the
//! registry's `Docker-Content-Digest`), and tags the name last. A failed
//! pull leaves only verified blobs (for `gc`), never a name.
//!
//! Docker schema 2 manifests are stored as they are: their digest is the
//! registry's, and oci-spec reads Docker media types as `MediaType::Other`.

pub mod auth;
mod client;
pub mod destination;
pub mod manifest;
pub mod reference;

use std::fmt;
use std::io::{self, Read};
use std::str::FromStr;

use oci_spec::image::ImageConfiguration;

use crate::digest::Digest;
use crate::store::ImageContent;
use crate::store::{Image, Store, StoreError, MAX_JSON_BLOB};

use client::Client;
use manifest::{choose_platform, manifest_kind, Kind};
pub use reference::Reference;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub(crate) const DOCKER_SCHEMA1: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// Progress events are sent at most once per this many bytes of a blob.
const PROGRESS_STEP: u64 = 1 << 20;
/// Layers an image may have: overlayfs stacks at most 500 lower layers
/// (`OVL_MAX_STACK`), so more could never be mounted; refused before any
/// blob is asked for.
pub const MAX_LAYERS: usize = 500;

/// What a pull may store, whatever the manifest claims. A descriptor's
/// size is the registry's word: it caps what is read of that blob (a body
/// longer than it is cut off and refused), but it never raises these caps,
/// and a claim above them is refused before the blob is requested.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PullLimits {
    /// One blob (a compressed layer). Default 16 GiB, what `UnpackLimits`
    /// lets one layer unpack to: a larger compressed layer could not be
    /// used.
    pub max_blob_bytes: u64,
    /// Config and layers together, as the manifest declares them (blobs
    /// already in the store included). Default 64 GiB, the largest archive
    /// an import takes (`import::MAX_ARCHIVE_BYTES`).
    pub max_image_bytes: u64,
}

impl Default for PullLimits {
    fn default() -> Self {
        PullLimits {
            max_blob_bytes: crate::unpack::UnpackLimits::default().max_bytes,
            max_image_bytes: crate::import::MAX_ARCHIVE_BYTES,
        }
    }
}

/// The platform to pick out of a manifest list (`linux/amd64`,
/// `linux/arm64/v8`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    /// Matched only when set.
    pub variant: Option<String>,
}

impl Default for Platform {
    fn default() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = PullError;
    fn from_str(s: &str) -> Result<Platform, PullError> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b))
        };
        match parts[..] {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform {
                os: os.into(),
                architecture: arch.into(),
                variant: None,
            }),
            [os, arch, v] if ok(os) && ok(arch) && ok(v) => Ok(Platform {
                os: os.into(),
                architecture: arch.into(),
                variant: Some(v.into()),
            }),
            _ => Err(PullError::BadPlatform(s.into())),
        }
    }
}

/// Which blob of an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlobKind {
    Config,
    Layer,
}

impl fmt::Display for BlobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BlobKind::Config => "config",
            BlobKind::Layer => "layer",
        })
    }
}

/// What a pull reports while it runs (serializable for the API's stream).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum PullEvent {
    /// The image's manifest was fetched and verified (after a manifest
    /// list, the chosen platform's).
    Manifest {
        reference: String,
        digest: Digest,
        layers: usize,
        /// Config and layers, compressed.
        size: u64,
    },
    /// Already in the store: not downloaded.
    BlobPresent {
        kind: BlobKind,
        digest: Digest,
        size: u64,
    },
    BlobStart {
        kind: BlobKind,
        digest: Digest,
        size: u64,
    },
    BlobProgress {
        digest: Digest,
        done: u64,
        total: u64,
    },
    /// Downloaded and verified.
    BlobDone { digest: Digest, size: u64 },
    /// The name now points at the image.
    Tagged { name: String, digest: Digest },
}

/// How to pull.
#[derive(Default)]
pub struct PullOptions<'a> {
    /// Plain http is allowed: an `http://` reference, or without a scheme
    /// https first and plain http if that fails to connect. TLS, when
    /// used, is still verified.
    pub insecure: bool,
    pub platform: Platform,
    /// Sent to the token server (or as basic auth) when a registry asks.
    pub username: Option<String>,
    pub password: Option<String>,
    pub progress: Option<&'a dyn Fn(&PullEvent)>,
    /// Hosts (`host` or `host:port`) the registry may redirect to, or name
    /// as its token realm, even on loopback, link-local or private
    /// addresses: the operator vouches for them (a local token server or
    /// object store). The registry's credentials still go only to the
    /// registry (and basic credentials to its token realm).
    pub trusted_hosts: Vec<String>,
    pub limits: PullLimits,
}

impl fmt::Debug for PullOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PullOptions")
            .field("insecure", &self.insecure)
            .field("platform", &self.platform.to_string())
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("progress", &self.progress.is_some())
            .field("trusted_hosts", &self.trusted_hosts)
            .field("limits", &self.limits)
            .finish()
    }
}

impl PullOptions<'_> {
    fn emit(&self, e: PullEvent) {
        if let Some(p) = self.progress {
            p(&e);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("image reference {reference:?}: {reason}")]
    BadReference { reference: String, reason: String },
    #[error("platform {0:?}: expected os/architecture[/variant], e.g. linux/amd64")]
    BadPlatform(String),
    #[error("registry {registry}: plain http refused; allow it with insecure (--insecure)")]
    InsecureRefused { registry: String },
    #[error("cannot reach {host}: {reason}")]
    Connect { host: String, reason: String },
    /// A redirect or token realm the registry chose leads somewhere a pull
    /// does not go (`destination`); nothing was sent there.
    #[error("{what}: refused to connect to {url}: {reason}")]
    DestinationRefused {
        what: String,
        url: String,
        reason: String,
    },
    /// A blob the manifest declares is larger than the store takes.
    #[error("{what}: {size} bytes declared, more than the limit of {limit} ({limit_name})")]
    TooLarge {
        what: String,
        size: u64,
        limit: u64,
        limit_name: &'static str,
    },
    #[error("{reference}: not found in registry {registry} ({detail})")]
    NotFound {
        reference: String,
        registry: String,
        detail: String,
    },
    #[error("{what}: unauthorized: {reason}")]
    Unauthorized { what: String, reason: String },
    #[error("{what}: registry answered {status}: {detail}")]
    Registry {
        what: String,
        status: u16,
        detail: String,
    },
    #[error("{what}: content has digest {actual}, expected {expected}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{what}: {actual} bytes, but {declared_by} declares {expected}")]
    SizeMismatch {
        what: String,
        declared_by: String,
        expected: u64,
        actual: u64,
    },
    #[error("{reference}: no {platform} image in its manifest list (it has: {available})")]
    NoPlatform {
        reference: String,
        platform: String,
        available: String,
    },
    #[error("{reference}: the image is for {actual}, not {wanted}")]
    PlatformMismatch {
        reference: String,
        wanted: String,
        actual: String,
    },
    #[error("{what}: unsupported: {reason}")]
    Unsupported { what: String, reason: String },
    #[error("{what}: invalid: {reason}")]
    BadManifest { what: String, reason: String },
    #[error("{what}: download failed: {source}")]
    Transfer {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Pulls `reference` into `store` and names it (see `Reference::store_name`:
/// `localhost:5000/team/app:v1`, `debian:bookworm`). Blocking; the daemon
/// calls it from `spawn_blocking`.
pub fn pull(store: &Store, reference: &str, opts: &PullOptions) -> Result<Image, PullError> {
    let r: Reference = reference.parse()?;
    let name = r.store_name()?;
    let mut c = Client::new(&r, opts)?;

    let wanted = r.manifest_ref();
    let first = fetch_manifest(&mut c, &r, &wanted)?;
    match &r.digest {
        Some(d) => check_digest(&format!("manifest of {r}"), d, &first.digest)?,
        None => {
            if let Some(d) = &first.reported {
                check_digest(
                    &format!("manifest of {r} (Docker-Content-Digest)"),
                    d,
                    &first.digest,
                )?
            }
        }
    }
    let m = match first.kind {
        Kind::Manifest => first,
        Kind::Index => {
            let entry = choose_platform(&r, &first.bytes, &opts.platform)?;
            let m = fetch_manifest(&mut c, &r, &entry.digest.to_string())?;
            let what = format!("{} manifest of {r}", opts.platform);
            check_digest(&what, &entry.digest, &m.digest)?;
            if m.bytes.len() as u64 != entry.size {
                return Err(PullError::SizeMismatch {
                    what,
                    declared_by: "the manifest list".into(),
                    expected: entry.size,
                    actual: m.bytes.len() as u64,
                });
            }
            if m.kind != Kind::Manifest {
                return Err(PullError::Unsupported {
                    what,
                    reason: "a manifest list inside a manifest list".into(),
                });
            }
            m
        }
    };
    let what = format!("manifest {} of {r}", m.digest);
    let plan = manifest::image_plan(&what, &m.bytes, &opts.limits)?;
    let (config_digest, config_size) = plan.config.clone();
    let layers = plan.layers;
    let total = plan.total;
    opts.emit(PullEvent::Manifest {
        reference: r.to_string(),
        digest: m.digest.clone(),
        layers: layers.len(),
        size: total,
    });

    fetch_blob(
        store,
        &mut c,
        &r,
        BlobKind::Config,
        &config_digest,
        config_size,
        opts,
    )?;
    let config: ImageConfiguration = store.read_json(&config_digest)?;
    let actual = format!("{}/{}", config.os(), config.architecture());
    if config.os().to_string() != opts.platform.os
        || config.architecture().to_string() != opts.platform.architecture
    {
        return Err(PullError::PlatformMismatch {
            reference: r.to_string(),
            wanted: opts.platform.to_string(),
            actual,
        });
    }
    for (d, size) in &layers {
        fetch_blob(store, &mut c, &r, BlobKind::Layer, d, *size, opts)?;
    }
    let image = store.put_image(
        &name,
        ImageContent::Manifest {
            bytes: &m.bytes,
            digest: &m.digest,
        },
    )?;
    opts.emit(PullEvent::Tagged {
        name: name.to_string(),
        digest: m.digest.clone(),
    });
    tracing::info!(reference = %r, name = %name, digest = %m.digest, "pulled");
    Ok(image)
}

struct Fetched {
    bytes: Vec<u8>,
    digest: Digest,
    /// `Docker-Content-Digest`, if the registry sent one.
    reported: Option<Digest>,
    kind: Kind,
}

fn fetch_manifest(c: &mut Client, r: &Reference, wanted: &str) -> Result<Fetched, PullError> {
    let accept = [
        OCI_MANIFEST,
        OCI_INDEX,
        DOCKER_MANIFEST,
        DOCKER_MANIFEST_LIST,
    ]
    .join(", ");
    let path = format!("/v2/{}/manifests/{wanted}", r.repository);
    let what = format!("manifest {wanted} of {}/{}", r.registry, r.repository);
    let resp = c.get(&path, Some(&accept))?.resp;
    match resp.status() {
        200 => {}
        404 => {
            return Err(PullError::NotFound {
                reference: r.to_string(),
                registry: c.registry().to_string(),
                detail: client::error_detail(resp),
            })
        }
        status => {
            return Err(PullError::Registry {
                what,
                status,
                detail: client::error_detail(resp),
            })
        }
    }
    let reported = match resp.header("Docker-Content-Digest") {
        Some(h) => Some(
            h.trim()
                .parse::<Digest>()
                .map_err(|_| PullError::Unsupported {
                    what: what.clone(),
                    reason: format!(
                        "Docker-Content-Digest {h:?} (only sha256 digests are supported)"
                    ),
                })?,
        ),
        None => None,
    };
    let content_type = resp
        .header("Content-Type")
        .map(|t| t.split(';').next().unwrap_or("").trim().to_string())
        .unwrap_or_default();
    let mut bytes = Vec::new();
    resp.into_reader()
        .take(MAX_JSON_BLOB + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| PullError::Transfer {
            what: what.clone(),
            source: e,
        })?;
    if bytes.len() as u64 > MAX_JSON_BLOB {
        return Err(PullError::BadManifest {
            what,
            reason: format!("more than {MAX_JSON_BLOB} bytes"),
        });
    }
    let kind = manifest_kind(&what, &content_type, &bytes)?;
    Ok(Fetched {
        digest: Digest::of(&bytes),
        bytes,
        reported,
        kind,
    })
}

fn check_digest(what: &str, expected: &Digest, actual: &Digest) -> Result<(), PullError> {
    if expected == actual {
        Ok(())
    } else {
        Err(PullError::DigestMismatch {
            what: what.to_string(),
            expected: expected.clone(),
            actual: actual.clone(),
        })
    }
}

/// Streams one blob into the store unless it is there already.
fn fetch_blob(
    store: &Store,
    c: &mut Client,
    r: &Reference,
    kind: BlobKind,
    digest: &Digest,
    size: u64,
    opts: &PullOptions,
) -> Result<(), PullError> {
    if store.has_blob(digest) {
        opts.emit(PullEvent::BlobPresent {
            kind,
            digest: digest.clone(),
            size,
        });
        return Ok(());
    }
    let what = format!("{kind} {digest} of {r}");
    opts.emit(PullEvent::BlobStart {
        kind,
        digest: digest.clone(),
        size,
    });
    let resp = c
        .get(&format!("/v2/{}/blobs/{digest}", r.repository), None)?
        .resp;
    match resp.status() {
        200 => {}
        404 => {
            return Err(PullError::NotFound {
                reference: format!("{kind} {digest} of {r}"),
                registry: c.registry().to_string(),
                detail: client::error_detail(resp),
            })
        }
        status => {
            return Err(PullError::Registry {
                what,
                status,
                detail: client::error_detail(resp),
            })
        }
    }
    if let Some(len) = resp
        .header("Content-Length")
        .and_then(|l| l.trim().parse::<u64>().ok())
    {
        if len != size {
            return Err(PullError::SizeMismatch {
                what,
                declared_by: "the manifest".into(),
                expected: size,
                actual: len,
            });
        }
    }
    let reader = ProgressReader {
        inner: resp.into_reader(),
        digest,
        done: 0,
        reported: 0,
        total: size,
        opts,
    };
    let stored = store.put_blob(reader, Some(digest), Some(size));
    let n = match stored {
        Ok((_, n)) => n,
        Err(StoreError::DigestMismatch {
            expected, actual, ..
        }) => {
            return Err(PullError::DigestMismatch {
                what,
                expected,
                actual,
            })
        }
        Err(StoreError::TooLarge { size: got, .. }) => {
            return Err(PullError::SizeMismatch {
                what,
                declared_by: "the manifest".into(),
                expected: size,
                actual: got,
            })
        }
        Err(StoreError::Io { source, .. }) => return Err(PullError::Transfer { what, source }),
        Err(e) => return Err(e.into()),
    };
    if n != size {
        // The digest matched, so the content is right and the manifest's
        // size is wrong: refuse the image all the same.
        return Err(PullError::SizeMismatch {
            what,
            declared_by: "the manifest".into(),
            expected: size,
            actual: n,
        });
    }
    opts.emit(PullEvent::BlobDone {
        digest: digest.clone(),
        size: n,
    });
    Ok(())
}

struct ProgressReader<'a, 'o, R> {
    inner: R,
    digest: &'a Digest,
    done: u64,
    reported: u64,
    total: u64,
    opts: &'a PullOptions<'o>,
}

impl<R: Read> Read for ProgressReader<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if self.opts.progress.is_some()
            && (self.done - self.reported >= PROGRESS_STEP || (n == 0 && self.done > self.reported))
        {
            self.reported = self.done;
            self.opts.emit(PullEvent::BlobProgress {
                digest: self.digest.clone(),
                done: self.done,
                total: self.total,
            });
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse() {
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(p.variant.as_deref(), Some("v8"));
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert_eq!(Platform::default().to_string(), "linux/amd64");
        for bad in ["linux", "linux/", "Linux/amd64", "a/b/c/d"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
    }
}
