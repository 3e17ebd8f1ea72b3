//! The JSON a registry or an archive hands us: what a pull makes of a
//! manifest answer (`registry::manifest`: its kind, the platform's entry of
//! a list, the image plan with its size limits), and the OCI types the
//! store keeps (index, manifest, config).
//!
//! The first input byte picks the `Content-Type` the registry claims; the
//! rest is the body. Invariants: a parse fails cleanly or its result keeps
//! the rules (a list entry is a sha256 digest of at most 4 MiB; a plan has
//! at most `MAX_LAYERS` layers, each within the blob limit, a total within
//! the image limit and equal to the sum), and every OCI value that parses
//! re-serializes to JSON that parses to the same value.

use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use rootfs_builder::registry::manifest::{choose_platform, image_plan, manifest_kind, Kind};
use rootfs_builder::registry::{
    Platform, PullLimits, Reference, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, MAX_LAYERS, OCI_INDEX,
    OCI_MANIFEST,
};
use rootfs_builder::store::MAX_JSON_BLOB;
use rootfs_builder::Digest;

const CONTENT_TYPES: [&str; 8] = [
    "",
    "application/json",
    "text/plain",
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

pub const LIMITS: PullLimits = PullLimits {
    max_blob_bytes: 1 << 30,
    max_image_bytes: 3 << 30,
};

pub fn check(data: &[u8]) {
    let Some((ct, body)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(*ct) % CONTENT_TYPES.len()];
    registry_view(content_type, body);
    round_trip::<ImageIndex>(body);
    round_trip::<ImageManifest>(body);
    round_trip::<ImageConfiguration>(body);
}

fn registry_view(content_type: &str, body: &[u8]) {
    let r: Reference = "registry.test/fuzz/image:v1"
        .parse()
        .expect("a valid reference");
    match manifest_kind("m", content_type, body) {
        Err(_) => {}
        Ok(Kind::Index) => {
            for p in ["linux/amd64", "linux/arm64/v8"] {
                let p: Platform = p.parse().expect("a valid platform");
                if let Ok(e) = choose_platform(&r, body, &p) {
                    assert!(e.size <= MAX_JSON_BLOB, "entry of {} bytes", e.size);
                    let again: Digest = e.digest.to_string().parse().expect("digest round trip");
                    assert_eq!(again, e.digest);
                }
            }
        }
        Ok(Kind::Manifest) => {
            if let Ok(plan) = image_plan("m", body, &LIMITS) {
                assert!(plan.layers.len() <= MAX_LAYERS);
                assert!(plan.config.1 <= MAX_JSON_BLOB);
                let mut sum = plan.config.1;
                for (_, size) in &plan.layers {
                    assert!(*size <= LIMITS.max_blob_bytes);
                    sum += size;
                }
                assert_eq!(sum, plan.total);
                assert!(plan.total <= LIMITS.max_image_bytes);
            }
        }
    }
}

/// Parses `body` as `T`; if that works, its JSON must parse back equal.
fn round_trip<T>(body: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let Ok(v) = serde_json::from_slice::<T>(body) else {
        return;
    };
    let json = serde_json::to_vec(&v).expect("a parsed value serializes");
    let again: T = serde_json::from_slice(&json).unwrap_or_else(|e| {
        panic!(
            "{} does not parse back: {e}: {}",
            std::any::type_name::<T>(),
            String::from_utf8_lossy(&json)
        )
    });
    assert_eq!(
        v,
        again,
        "{} changes in a round trip",
        std::any::type_name::<T>()
    );
}
