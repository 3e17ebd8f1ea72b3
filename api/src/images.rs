//! Sessions and runs on images of the store: a name resolved to its
//! unpacked layers (unpacked once per layer digest, on first use) and the
//! image config's defaults. The store's calls block (disk, digests), so
//! they run on tokio's blocking pool.
//!
//! Failures are [`ImageError`], a domain error: the routes turn it into
//! an HTTP answer (`routes::images`), the judge into a run error. This
//! module knows neither the daemon's state nor HTTP.

use rootfs_builder::runtime::{RunDefaults, RuntimeError};
use rootfs_builder::unpack::UnpackError;
use rootfs_builder::{ImageName, StoreError};

use crate::engine::host::ImageRoot;

/// An image ready to run.
pub struct Prepared {
    /// `repository:tag` as resolved.
    pub name: String,
    pub root: ImageRoot,
    pub defaults: RunDefaults,
    /// Held until the session's helper has leased the layers itself (so
    /// gc cannot remove them in between).
    pub lease: rootfs_builder::layers::LayerLease,
}

/// Why an image could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The name is not an image reference.
    #[error("image: {0}")]
    BadName(#[source] StoreError),
    /// The daemon runs without an image store (it could not be opened).
    #[error("the image store could not be opened (see the daemon's log)")]
    StoreUnavailable,
    #[error("{}", not_found_hint(.name))]
    NotFound { name: String },
    /// The store failed (disk, database): the host's fault.
    #[error("image store: {0}")]
    Store(#[source] StoreError),
    #[error("image {name}: unpacking its layers: {source}")]
    Unpack {
        name: String,
        #[source]
        source: UnpackError,
    },
    /// The image's config cannot be run (the image's fault).
    #[error("{0}")]
    Config(#[from] RuntimeError),
    #[error("image preparation: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl ImageError {
    /// A store error of a request about `name`.
    pub fn of_store(name: &str, e: StoreError) -> ImageError {
        match e {
            StoreError::NotFound(_) => ImageError::NotFound {
                name: name.to_string(),
            },
            StoreError::BadName { .. } => ImageError::BadName(e),
            other => ImageError::Store(other),
        }
    }
}

/// What to tell a caller who named an image the store does not have.
fn not_found_hint(name: &str) -> String {
    let repo = name.split(':').next().unwrap_or(name);
    match rootfs_builder::recipe::builtin(repo) {
        Some(_) => format!(
            "image {name:?} is not built yet (a builtin recipe: POST /v1/images/build {{\"recipe\": \"{repo}\"}} or `runtimed image build {repo}`)"
        ),
        None => format!("image {name:?} is not in the store (GET /v1/images lists them)"),
    }
}

/// Resolves and unpacks `name` in `store` (`None`: the daemon has none);
/// `upper_bytes` caps the sandbox's writes.
pub async fn prepare(
    store: Option<&rootfs_builder::Store>,
    name: &str,
    upper_bytes: u64,
) -> Result<Prepared, ImageError> {
    let parsed: ImageName = name.parse().map_err(ImageError::BadName)?;
    let store = store.cloned().ok_or(ImageError::StoreUnavailable)?;
    let name = name.to_string();
    tokio::task::spawn_blocking(move || prepare_in(&store, &parsed, &name, upper_bytes)).await?
}

/// [`prepare`]'s blocking part, on an open store (the judge's runner calls
/// it from its own blocking task).
pub fn prepare_in(
    store: &rootfs_builder::Store,
    parsed: &ImageName,
    name: &str,
    upper_bytes: u64,
) -> Result<Prepared, ImageError> {
    let image = store
        .resolve(parsed)
        .map_err(|e| ImageError::of_store(name, e))?;
    let (layers, lease) = rootfs_builder::unpack::ensure_leased(store, &image, &Default::default())
        .map_err(|source| ImageError::Unpack {
            name: name.to_string(),
            source,
        })?;
    let defaults = rootfs_builder::runtime::run_defaults(&image, &layers)?;
    Ok(Prepared {
        name: image.name.to_string(),
        root: ImageRoot {
            data_dir: store.data_dir().display().to_string(),
            layers: layers.iter().map(|p| p.display().to_string()).collect(),
            upper_bytes,
        },
        defaults,
        lease,
    })
}
