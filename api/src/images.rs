//! Sessions and runs on images of the store: a name resolved to its
//! unpacked layers (unpacked once per layer digest, on first use) and the
//! image config's defaults. The store's calls block (disk, digests), so
//! they run on tokio's blocking pool.

use std::path::Path;

use axum::http::StatusCode;
use rootfs_builder::runtime::RunDefaults;
use rootfs_builder::{ImageName, StoreError};

use crate::engine::host::ImageRoot;
use crate::error::ApiError;
use crate::state::AppState;

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

pub fn not_found(name: &str) -> ApiError {
    let hint = match rootfs_builder::recipe::builtin(name.split(':').next().unwrap_or(name)) {
        Some(_) => format!(
            "image {name:?} is not built yet (a builtin recipe: POST /v1/images/build {{\"recipe\": \"{}\"}} or `runtimed image build {}`)",
            name.split(':').next().unwrap_or(name),
            name.split(':').next().unwrap_or(name)
        ),
        None => format!("image {name:?} is not in the store (GET /v1/images lists them)"),
    };
    ApiError::new(StatusCode::NOT_FOUND, "image_not_found", hint)
}

/// Maps a store error of a request about `name`.
pub fn store_error(name: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound(_) => not_found(name),
        StoreError::BadName { .. } => ApiError::invalid(e.to_string()),
        other => ApiError::internal(format!("image store: {other}")),
    }
}

/// Resolves and unpacks `name`; `upper_bytes` caps the sandbox's writes.
pub async fn prepare(state: &AppState, name: &str, upper_bytes: u64) -> Result<Prepared, ApiError> {
    let parsed: ImageName = name
        .parse()
        .map_err(|e: StoreError| ApiError::invalid(format!("image: {e}")))?;
    let Some(store) = state.images.clone() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "images_unavailable",
            "the image store could not be opened (see the daemon's log)",
        ));
    };
    let name = name.to_string();
    tokio::task::spawn_blocking(move || prepare_in(&store, &parsed, &name, upper_bytes))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
}

/// [`prepare`]'s blocking part, on an open store (the judge's runner calls
/// it from its own blocking task).
pub fn prepare_in(
    store: &rootfs_builder::Store,
    parsed: &ImageName,
    name: &str,
    upper_bytes: u64,
) -> Result<Prepared, ApiError> {
    let image = store.resolve(parsed).map_err(|e| store_error(name, e))?;
    let (layers, lease) = rootfs_builder::unpack::ensure_leased(store, &image, &Default::default())
        .map_err(|e| ApiError::internal(format!("image {name}: unpacking its layers: {e}")))?;
    let defaults = rootfs_builder::runtime::run_defaults(&image, &layers)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
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

/// A failed import of the archive spooled at `spooled`: the archive's
/// fault (400 `invalid_archive`) unless the store itself failed. The
/// spool file is in the data dir: its path is named "the archive".
pub fn import_error(e: rootfs_builder::import::ImportError, spooled: &Path) -> ApiError {
    use rootfs_builder::import::ImportError as I;
    let message = format!("import: {e}").replace(&spooled.display().to_string(), "the archive");
    match e {
        I::Store(StoreError::Io { .. }) | I::Io { .. } => ApiError::internal(message),
        I::NeedsName { .. } | I::DuplicateName(_) => ApiError::invalid(message),
        _ => ApiError::new(StatusCode::BAD_REQUEST, "invalid_archive", message),
    }
}

/// A failed pull of `reference`; the store's own failures (disk, in the
/// data dir) are internal errors.
pub fn pull_error(reference: &str, e: rootfs_builder::registry::PullError) -> ApiError {
    use rootfs_builder::registry::PullError as P;
    if matches!(e, P::Store(StoreError::Io { .. })) {
        return ApiError::internal(format!("pull {reference}: {e}"));
    }
    let (status, code) = pull_error_status(&e);
    ApiError::new(status, code, format!("pull {reference}: {e}"))
}

/// HTTP status and code of a failed pull.
pub fn pull_error_status(e: &rootfs_builder::registry::PullError) -> (StatusCode, &'static str) {
    use rootfs_builder::registry::PullError as P;
    match e {
        P::NotFound { .. } => (StatusCode::NOT_FOUND, "image_not_found"),
        // The registry refused us: not the caller's credentials to us.
        P::Unauthorized { .. } => (StatusCode::BAD_GATEWAY, "registry_unauthorized"),
        P::BadReference { .. } | P::BadPlatform(_) | P::InsecureRefused { .. } => {
            (StatusCode::BAD_REQUEST, "invalid_request")
        }
        P::NoPlatform { .. } | P::PlatformMismatch { .. } => {
            (StatusCode::UNPROCESSABLE_ENTITY, "no_matching_platform")
        }
        // The manifest declares more than the store takes (checked before
        // any blob is fetched), or a blob came longer than declared.
        P::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "image_too_large"),
        // A redirect or token realm the registry chose leads to a refused
        // address (loopback, link-local...): the registry misbehaves.
        _ => (StatusCode::BAD_GATEWAY, "registry_error"),
    }
}
