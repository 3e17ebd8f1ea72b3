//! What a registry sends, parsed and checked without any I/O: the kind of
//! a manifest, the entry of a manifest list for a platform, and an image
//! manifest turned into the blobs to fetch with their declared sizes held
//! to `PullLimits`. Pure, so unit tests and the fuzzer (`fuzz/`) drive it
//! with hostile bytes directly.

use oci_spec::image::ImageManifest;

use crate::digest::Digest;
use crate::store::MAX_JSON_BLOB;

use super::{
    Platform, PullError, PullLimits, Reference, DOCKER_CONFIG, DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST, DOCKER_SCHEMA1, MAX_LAYERS, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST,
};

/// What a manifest answer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An image manifest.
    Manifest,
    /// A manifest list or OCI index.
    Index,
}

/// The manifest's kind from its `mediaType` field, else from the
/// Content-Type, else from its shape.
pub fn manifest_kind(what: &str, content_type: &str, bytes: &[u8]) -> Result<Kind, PullError> {
    #[derive(serde::Deserialize)]
    struct Peek {
        #[serde(rename = "mediaType", default)]
        media_type: Option<String>,
        #[serde(rename = "schemaVersion", default)]
        schema_version: Option<u32>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
        #[serde(default)]
        layers: Option<serde_json::Value>,
    }
    let peek: Peek = serde_json::from_slice(bytes).map_err(|e| PullError::BadManifest {
        what: what.to_string(),
        reason: format!("not JSON: {e}"),
    })?;
    let unsupported = |reason: String| PullError::Unsupported {
        what: what.to_string(),
        reason,
    };
    if peek.schema_version == Some(1) || DOCKER_SCHEMA1.contains(&content_type) {
        return Err(unsupported(
            "Docker schema 1 manifest (push the image again with a current client)".into(),
        ));
    }
    let generic = matches!(content_type, "" | "application/json" | "text/plain");
    let media_type = peek
        .media_type
        .as_deref()
        .or((!generic).then_some(content_type));
    match media_type {
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => Ok(Kind::Manifest),
        Some(OCI_INDEX | DOCKER_MANIFEST_LIST) => Ok(Kind::Index),
        Some(other) => Err(unsupported(format!("manifest media type {other}"))),
        None if peek.manifests.is_some() => Ok(Kind::Index),
        None if peek.layers.is_some() => Ok(Kind::Manifest),
        None => Err(unsupported("a manifest of unknown type".into())),
    }
}

/// A manifest list's entry: the manifest to fetch, and its size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub digest: Digest,
    pub size: u64,
}

/// The manifest list's entry for `want` (the first one, if several match).
pub fn choose_platform(r: &Reference, bytes: &[u8], want: &Platform) -> Result<Entry, PullError> {
    #[derive(serde::Deserialize)]
    struct Index {
        manifests: Vec<IndexEntry>,
    }
    #[derive(serde::Deserialize)]
    struct IndexEntry {
        #[serde(rename = "mediaType", default)]
        media_type: String,
        digest: String,
        size: u64,
        #[serde(default)]
        platform: Option<PlatformJson>,
    }
    #[derive(serde::Deserialize)]
    struct PlatformJson {
        architecture: String,
        os: String,
        #[serde(default)]
        variant: Option<String>,
    }
    let what = format!("manifest list of {r}");
    let index: Index = serde_json::from_slice(bytes).map_err(|e| PullError::BadManifest {
        what: what.clone(),
        reason: e.to_string(),
    })?;
    let mut available = Vec::new();
    for e in &index.manifests {
        let Some(p) = &e.platform else { continue };
        let is_manifest = matches!(e.media_type.as_str(), OCI_MANIFEST | DOCKER_MANIFEST | "");
        let label = match &p.variant {
            Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
            None => format!("{}/{}", p.os, p.architecture),
        };
        if is_manifest
            && p.os == want.os
            && p.architecture == want.architecture
            && (want.variant.is_none() || want.variant == p.variant)
        {
            let digest = e
                .digest
                .parse::<Digest>()
                .map_err(|err| PullError::BadManifest {
                    what: what.clone(),
                    reason: format!("entry for {label}: {err}"),
                })?;
            if e.size > MAX_JSON_BLOB {
                return Err(PullError::BadManifest {
                    what,
                    reason: format!("entry for {label} of {} bytes", e.size),
                });
            }
            return Ok(Entry {
                digest,
                size: e.size,
            });
        }
        if !available.contains(&label) {
            available.push(label);
        }
    }
    Err(PullError::NoPlatform {
        reference: r.to_string(),
        platform: want.to_string(),
        available: if available.is_empty() {
            "no platforms".into()
        } else {
            available.join(", ")
        },
    })
}

/// An image manifest's blobs, their declared sizes within the limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImagePlan {
    /// The config's digest and size (at most `MAX_JSON_BLOB`).
    pub config: (Digest, u64),
    /// Layers bottom first, each at most `max_blob_bytes`, at most
    /// `MAX_LAYERS` of them.
    pub layers: Vec<(Digest, u64)>,
    /// Config and layers, at most `max_image_bytes`.
    pub total: u64,
}

/// Reads an image manifest (OCI or Docker schema 2) for a pull: its config
/// must be a container image config, its digests sha256, its sizes within
/// `limits`. Refused here, nothing has been downloaded yet.
pub fn image_plan(what: &str, bytes: &[u8], limits: &PullLimits) -> Result<ImagePlan, PullError> {
    let what = what.to_string();
    let manifest: ImageManifest =
        serde_json::from_slice(bytes).map_err(|e| PullError::BadManifest {
            what: what.clone(),
            reason: e.to_string(),
        })?;
    let config_type = manifest.config().media_type().to_string();
    if config_type != OCI_CONFIG && config_type != DOCKER_CONFIG {
        return Err(PullError::Unsupported {
            what,
            reason: format!("config media type {config_type}: not a container image"),
        });
    }
    let bad = |reason: String| PullError::BadManifest {
        what: what.clone(),
        reason,
    };
    let config_digest: Digest = manifest
        .config()
        .digest()
        .to_string()
        .parse()
        .map_err(|e: crate::digest::DigestError| bad(e.to_string()))?;
    let layers: Vec<(Digest, u64)> = manifest
        .layers()
        .iter()
        .map(|l| {
            l.digest()
                .to_string()
                .parse::<Digest>()
                .map(|d| (d, l.size()))
                .map_err(|e| bad(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let config_size = manifest.config().size();
    if config_size > MAX_JSON_BLOB {
        return Err(bad(format!(
            "config of {config_size} bytes (more than {MAX_JSON_BLOB})"
        )));
    }
    let total = check_sizes(&what, config_size, &layers, limits)?;
    Ok(ImagePlan {
        config: (config_digest, config_size),
        layers,
        total,
    })
}

/// Refuses, before anything is downloaded, a manifest whose declared
/// sizes the store would not take; returns the declared total.
fn check_sizes(
    what: &str,
    config_size: u64,
    layers: &[(Digest, u64)],
    limits: &PullLimits,
) -> Result<u64, PullError> {
    if layers.len() > MAX_LAYERS {
        return Err(PullError::Unsupported {
            what: what.to_string(),
            reason: format!(
                "{} layers (overlayfs mounts at most {MAX_LAYERS})",
                layers.len()
            ),
        });
    }
    let mut total = config_size;
    for (d, size) in layers {
        if *size > limits.max_blob_bytes {
            return Err(PullError::TooLarge {
                what: format!("layer {d} of {what}"),
                size: *size,
                limit: limits.max_blob_bytes,
                limit_name: "max_blob_bytes",
            });
        }
        // Sizes are the registry's numbers: saturate rather than wrap.
        total = total.saturating_add(*size);
    }
    if total > limits.max_image_bytes {
        return Err(PullError::TooLarge {
            what: what.to_string(),
            size: total,
            limit: limits.max_image_bytes,
            limit_name: "max_image_bytes",
        });
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_kinds() {
        let k = |ct: &str, body: &str| manifest_kind("m", ct, body.as_bytes());
        assert_eq!(
            k(
                "",
                r#"{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#
            )
            .unwrap(),
            Kind::Index
        );
        assert_eq!(
            k(DOCKER_MANIFEST_LIST, r#"{"manifests":[]}"#).unwrap(),
            Kind::Index
        );
        assert_eq!(
            k("application/json", r#"{"layers":[]}"#).unwrap(),
            Kind::Manifest
        );
        let e = k("", r#"{"schemaVersion":1,"fsLayers":[]}"#).unwrap_err();
        assert!(e.to_string().contains("schema 1"), "{e}");
        assert!(matches!(
            k(
                "",
                r#"{"mediaType":"application/vnd.cncf.helm.config.v1+json"}"#
            ),
            Err(PullError::Unsupported { .. })
        ));
        assert!(matches!(k("", "nope"), Err(PullError::BadManifest { .. })));
    }

    #[test]
    fn platform_choice_names_what_there_is() {
        let r: Reference = "localhost:5000/x:1".parse().unwrap();
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let index = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": d('a'), "size": 10,
                 "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
                {"mediaType": OCI_MANIFEST, "digest": d('c'), "size": 11,
                 "platform": {"os": "unknown", "architecture": "unknown"}},
                {"mediaType": OCI_MANIFEST, "digest": d('b'), "size": 12,
                 "platform": {"os": "linux", "architecture": "amd64"}},
            ]
        });
        let bytes = serde_json::to_vec(&index).unwrap();
        let e = choose_platform(&r, &bytes, &Platform::default()).unwrap();
        assert_eq!((e.digest.to_string(), e.size), (d('b'), 12));
        let arm = choose_platform(&r, &bytes, &"linux/arm64/v8".parse().unwrap()).unwrap();
        assert_eq!(arm.digest.to_string(), d('a'));
        let err = choose_platform(&r, &bytes, &"linux/s390x".parse().unwrap())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("no linux/s390x image")
                && err.contains("linux/arm64/v8, unknown/unknown, linux/amd64"),
            "{err}"
        );
    }
}
