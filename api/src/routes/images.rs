//! `/v1/images`: list, build (the log streamed), import, pull, delete.
//!
//! Images are shared by every tenant, so changing them (build, import,
//! pull, delete) is for operators (socket peers, or anyone when no tokens
//! are configured); listing is for everyone. Builds run in a helper job
//! (`engine::build`, typed messages over a control socket): sandboxes are
//! made by a single-threaded process, never by the daemon's threads.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::auth::is_operator;
use crate::engine::build::{BuildHelper, BuildJob, BuildMessage, JobRecipe};
use crate::engine::Engine;
use crate::error::{ApiError, ErrorBody, Json};
use crate::images::ImageError;
use crate::state::AppState;
use rootfs_builder::StoreError;

/// One image of the store.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImageInfo {
    /// `repository:tag`.
    pub name: String,
    /// Manifest digest.
    pub digest: String,
    /// Compressed size of config and layers, bytes.
    pub size: u64,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImageList {
    pub images: Vec<ImageInfo>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PullRequest {
    /// `[REGISTRY[:PORT]/]REPO[:TAG|@sha256:...]`.
    pub reference: String,
    /// Allow plain HTTP.
    #[serde(default)]
    pub insecure: bool,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildRequest {
    /// A builtin recipe (`python`, `gcc`, `node`, `java`, `rust`).
    pub recipe: Option<String>,
    /// Or a recipe in TOML (no `copy` steps: there is no context).
    pub recipe_toml: Option<String>,
    /// Name of the result (default: the recipe's).
    pub tag: Option<String>,
    #[serde(default)]
    pub no_cache: bool,
}

#[derive(Debug, Deserialize)]
pub struct ImportQuery {
    pub name: Option<String>,
}

fn operator_only(parts: &axum::http::request::Parts) -> Result<(), ApiError> {
    if is_operator(&parts.extensions) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "images are shared by all tenants: only operators (the Unix socket, the operator token) change them",
    ))
}

fn store(state: &AppState) -> Result<rootfs_builder::Store, ApiError> {
    state.images.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "images_unavailable",
            "the image store could not be opened (see the daemon's log)",
        )
    })
}

fn info(i: &rootfs_builder::Image) -> ImageInfo {
    ImageInfo {
        name: i.name.to_string(),
        digest: i.manifest_digest.to_string(),
        size: i.size(),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
}

/// The images of the store.
#[utoipa::path(get, path = "/v1/images", responses((status = 200, body = ImageList), (status = 503, body = ErrorBody, description = "images_unavailable") ))]
pub async fn list(State(state): State<Arc<AppState>>) -> Result<axum::Json<ImageList>, ApiError> {
    let store = store(&state)?;
    let images = blocking(move || {
        store
            .list()
            .map_err(|e| ApiError::internal(format!("image store: {e}")))
    })
    .await?;
    Ok(axum::Json(ImageList {
        images: images
            .into_iter()
            .map(|e| ImageInfo {
                name: e.name,
                digest: e.digest.to_string(),
                size: e.size,
            })
            .collect(),
    }))
}

/// Removes an image name (its layers go at the next gc; running sandboxes
/// keep theirs).
#[utoipa::path(delete, path = "/v1/images/{name}", params(("name" = String, Path)),
    responses((status = 204, description = "untagged"),
        (status = 400, body = ErrorBody, description = "invalid_request: not an image name"),
        (status = 403, body = ErrorBody, description = "forbidden: images are changed by operators only"),
        (status = 404, body = ErrorBody, description = "image_not_found"),
        (status = 503, body = ErrorBody, description = "images_unavailable")))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    parts: axum::http::request::Parts,
) -> Result<StatusCode, ApiError> {
    operator_only(&parts)?;
    let store = store(&state)?;
    blocking(move || {
        let parsed: rootfs_builder::ImageName = name
            .parse()
            .map_err(|e: rootfs_builder::StoreError| ApiError::invalid(e.to_string()))?;
        store
            .untag(&parsed)
            .map(drop)
            .map_err(|e| ApiError::from(ImageError::of_store(&name, e)))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Pulls an image from a registry.
#[utoipa::path(post, path = "/v1/images/pull", request_body = PullRequest,
    responses((status = 201, body = ImageInfo),
        (status = 400, body = ErrorBody, description = "invalid_request: a bad reference, plain http not allowed"),
        (status = 403, body = ErrorBody, description = "forbidden: images are changed by operators only"),
        (status = 404, body = ErrorBody, description = "image_not_found: not in the registry"),
        (status = 413, body = ErrorBody, description = "image_too_large: the manifest declares more than max_image_bytes, or a layer over the largest blob"),
        (status = 422, body = ErrorBody, description = "no_matching_platform"),
        (status = 502, body = ErrorBody, description = "registry_error, registry_unauthorized: the registry failed, refused our credentials, or sent us (a redirect, a token realm) to a refused address"),
        (status = 503, body = ErrorBody, description = "images_unavailable")))]
pub async fn pull(
    State(state): State<Arc<AppState>>,
    parts: axum::http::request::Parts,
    Json(req): Json<PullRequest>,
) -> Result<(StatusCode, axum::Json<ImageInfo>), ApiError> {
    operator_only(&parts)?;
    let store = store(&state)?;
    // The largest image the daemon takes, pulled or imported.
    let limits = rootfs_builder::registry::PullLimits {
        max_image_bytes: state
            .cfg
            .max_image_bytes
            .min(rootfs_builder::registry::PullLimits::default().max_image_bytes),
        ..Default::default()
    };
    let image = blocking(move || {
        let opts = rootfs_builder::registry::PullOptions {
            insecure: req.insecure,
            limits,
            ..Default::default()
        };
        rootfs_builder::registry::pull(&store, &req.reference, &opts)
            .map_err(|e| pull_error(&req.reference, e))
    })
    .await?;
    Ok((StatusCode::CREATED, axum::Json(info(&image))))
}

/// Imports an OCI layout tar or a `docker save` archive (the body).
#[utoipa::path(post, path = "/v1/images/import", params(("name" = Option<String>, Query)),
    request_body(content = Vec<u8>, content_type = "application/x-tar"),
    responses((status = 201, body = ImageList),
        (status = 400, body = ErrorBody, description = "invalid_archive, invalid_request"),
        (status = 403, body = ErrorBody, description = "forbidden: images are changed by operators only"),
        (status = 413, body = ErrorBody, description = "body_too_large: over max_image_bytes"),
        (status = 503, body = ErrorBody, description = "images_unavailable")))]
pub async fn import(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ImportQuery>,
    parts: axum::http::request::Parts,
    body: Body,
) -> Result<(StatusCode, axum::Json<ImageList>), ApiError> {
    operator_only(&parts)?;
    let store = store(&state)?;
    let name = match &q.name {
        Some(n) => Some(
            n.parse::<rootfs_builder::ImageName>()
                .map_err(|e| ApiError::invalid(format!("name: {e}")))?,
        ),
        None => None,
    };
    // Spooled to a file in the store's tmp dir (the archive needs random
    // access), capped.
    let (path, file) = store
        .tmp_file()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let guard = TmpFile(path.clone());
    let mut file = tokio::fs::File::from_std(file);
    let limit = state.cfg.max_image_bytes;
    let mut total: u64 = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::invalid(format!("body: {e}")))?;
        total += chunk.len() as u64;
        if total > limit {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("image archives are limited to {limit} bytes (max_image_bytes)"),
            ));
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| ApiError::internal(format!("spool: {e}")))?;
    }
    file.flush()
        .await
        .map_err(|e| ApiError::internal(format!("spool: {e}")))?;
    drop(file);
    let images = blocking(move || {
        // A compressed body decompresses into scratch space: capped too.
        let limits = rootfs_builder::import::ImportLimits {
            max_archive_bytes: limit,
            ..Default::default()
        };
        let r = rootfs_builder::import::import_with(&store, &guard.0, name.as_ref(), &limits)
            .map_err(|e| import_error(e, &guard.0));
        drop(guard);
        r
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(ImageList {
            images: images.iter().map(info).collect(),
        }),
    ))
}

struct TmpFile(std::path::PathBuf);

impl Drop for TmpFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Builds an image; the response streams the build's progress as NDJSON
/// (one event per line, as `runtimed image build --progress json` prints
/// them), ending with `{"type":"done",...}` or `{"type":"error",...}`.
#[utoipa::path(post, path = "/v1/images/build", request_body = BuildRequest,
    responses((status = 200, description = "the build's progress, one JSON event per line", body = ref("#/components/schemas/BuildEvent"), content_type = "application/x-ndjson"),
        (status = 400, body = ErrorBody, description = "invalid_request"),
        (status = 403, body = ErrorBody, description = "forbidden: images are changed by operators only"),
        (status = 404, body = ErrorBody, description = "recipe_not_found"),
        (status = 503, body = ErrorBody, description = "images_unavailable")))]
pub async fn build(
    State(state): State<Arc<AppState>>,
    parts: axum::http::request::Parts,
    Json(req): Json<BuildRequest>,
) -> Result<Response, ApiError> {
    operator_only(&parts)?;
    let store = store(&state)?;
    let recipe = match (req.recipe, req.recipe_toml) {
        (Some(name), None) => {
            if rootfs_builder::recipe::builtin(&name).is_none() {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "recipe_not_found",
                    format!("no builtin recipe {name:?} (python, gcc, node, java, rust)"),
                ));
            }
            JobRecipe::Builtin(name)
        }
        (None, Some(toml)) => {
            rootfs_builder::recipe::Recipe::parse(&toml)
                .map_err(|e| ApiError::invalid(format!("recipe_toml: {e}")))?;
            JobRecipe::Toml(toml)
        }
        _ => {
            return Err(ApiError::invalid(
                "give exactly one of recipe (a builtin name) and recipe_toml",
            ))
        }
    };
    let tag = match &req.tag {
        Some(t) => Some(
            t.parse::<rootfs_builder::ImageName>()
                .map_err(|e| ApiError::invalid(format!("tag: {e}")))?,
        ),
        None => None,
    };
    let job = BuildJob {
        data_dir: store.data_dir().to_path_buf(),
        run_dir: state.engine.run_dir().to_path_buf(),
        recipe,
        tag,
        no_cache: req.no_cache,
    };
    let mut helper = BuildHelper::start(&state.engine, &job)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(64);
    // A failure's message may name paths of the store (the data dir).
    let host_paths = state.host_paths.clone();
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                m = helper.next() => m,
                // The client went away while the build was quiet: dropping
                // `helper` stops it.
                () = tx.closed() => return,
            };
            let (line, last) = match next {
                Some(BuildMessage::Progress(ev)) => match serde_json::to_string(&ev) {
                    Ok(l) => (l, false),
                    Err(_) => continue,
                },
                // Its `done` event came as progress: the stream ends there.
                Some(BuildMessage::Finished { .. }) => return,
                Some(BuildMessage::Failed { message }) => {
                    (build_failed(&host_paths.scrub(&message)), true)
                }
                None => (
                    build_failed("the build helper ended without a result"),
                    true,
                ),
            };
            if tx.send(Ok(format!("{line}\n"))).await.is_err() || last {
                // The client went away, or the build is over: dropping
                // `helper` kills what is left of it.
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError::internal(e.to_string()))
        .map(IntoResponse::into_response)
}

/// The stream's last line when a build fails.
fn build_failed(message: &str) -> String {
    serde_json::json!({"type": "error", "code": "build_failed", "message": message}).to_string()
}

/// The one mapping of an image failure to an answer.
impl From<ImageError> for ApiError {
    fn from(e: ImageError) -> ApiError {
        match e {
            ImageError::BadName(_) | ImageError::Config(_) => ApiError::invalid(e.to_string()),
            ImageError::NotFound { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "image_not_found", e.to_string())
            }
            ImageError::StoreUnavailable => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "images_unavailable",
                e.to_string(),
            ),
            ImageError::Store(_) | ImageError::Unpack { .. } | ImageError::Task(_) => {
                ApiError::internal(e)
            }
        }
    }
}

/// A failed import of the archive spooled at `spooled`: the archive's
/// fault (400 `invalid_archive`) unless the store itself failed. The
/// spool file is in the data dir: its path is named "the archive".
fn import_error(e: rootfs_builder::import::ImportError, spooled: &std::path::Path) -> ApiError {
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
fn pull_error(reference: &str, e: rootfs_builder::registry::PullError) -> ApiError {
    use rootfs_builder::registry::PullError as P;
    if matches!(e, P::Store(StoreError::Io { .. })) {
        return ApiError::internal(format!("pull {reference}: {e}"));
    }
    let (status, code) = pull_error_status(&e);
    ApiError::new(status, code, format!("pull {reference}: {e}"))
}

/// HTTP status and code of a failed pull.
fn pull_error_status(e: &rootfs_builder::registry::PullError) -> (StatusCode, &'static str) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Each image failure keeps its answer: the caller's faults are 4xx
    /// with their stable codes, the host's are 500 with the generic
    /// message (the store's own error names data-dir paths).
    #[test]
    fn image_errors_map_to_their_answers() {
        let not_found = ApiError::from(ImageError::of_store(
            "python:3",
            StoreError::NotFound("python:3".into()),
        ));
        assert_eq!(
            (not_found.status, not_found.code),
            (StatusCode::NOT_FOUND, "image_not_found")
        );
        assert!(
            not_found.message.contains("builtin recipe"),
            "{not_found:?}"
        );
        let bad = ApiError::from(ImageError::of_store(
            "x",
            StoreError::BadName {
                name: "x".into(),
                reason: "bad",
            },
        ));
        assert_eq!(
            (bad.status, bad.code),
            (StatusCode::BAD_REQUEST, "invalid_request")
        );
        let io = ApiError::from(ImageError::of_store(
            "x",
            StoreError::Io {
                what: "/var/lib/runtimed/store/index.json".into(),
                source: std::io::Error::from_raw_os_error(libc::EIO),
            },
        ));
        assert_eq!(
            (io.status, io.code, io.message.as_str()),
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                crate::error::INTERNAL_MESSAGE
            )
        );
        let gone = ApiError::from(ImageError::StoreUnavailable);
        assert_eq!(
            (gone.status, gone.code),
            (StatusCode::SERVICE_UNAVAILABLE, "images_unavailable")
        );
    }
}
