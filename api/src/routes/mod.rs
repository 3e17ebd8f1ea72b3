//! The router: one file per resource. `router()` needs no socket, so tests
//! drive it with `tower::ServiceExt::oneshot`.

pub mod exec;
pub mod files;
pub mod images;
pub mod judge;
pub mod judge0;
pub mod pty;
pub mod run;
pub mod sessions;
pub mod system;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use crate::state::AppState;

/// One span per request (method, path); the outcome is logged once, here:
/// server errors as warnings, the rest at debug (`RUNTIMED_LOG=debug`).
async fn trace_request(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use tracing::Instrument;
    let span = tracing::info_span!("request", method = %req.method(), path = %req.uri().path());
    let started = std::time::Instant::now();
    async move {
        let resp = next.run(req).await;
        let status = resp.status().as_u16();
        let ms = started.elapsed().as_secs_f64() * 1e3;
        if status >= 500 {
            tracing::warn!(status, ms, "request failed");
        } else {
            tracing::debug!(status, ms, "request");
        }
        resp
    }
    .instrument(span)
    .await
}

pub fn router(state: Arc<AppState>) -> Router {
    let authed = Router::new()
        .route("/v1/sessions", post(sessions::create).get(sessions::list))
        .route(
            "/v1/sessions/{id}",
            get(sessions::get).delete(sessions::delete),
        )
        .route("/v1/sessions/{id}/exec", post(exec::exec))
        .route("/v1/sessions/{id}/pty", get(pty::open))
        .route("/v1/sessions/{id}/ptys", get(pty::list))
        .route(
            "/v1/sessions/{id}/ptys/{pty_id}",
            get(pty::attach).delete(pty::delete),
        )
        .route("/v1/sessions/{id}/files", get(files::get_root))
        .route("/v1/sessions/{id}/files/", get(files::get_root))
        .route(
            "/v1/sessions/{id}/files/{*path}",
            get(files::get).put(files::put).delete(files::delete),
        )
        .route(
            "/v1/sessions/{id}/archive",
            get(files::archive_get).put(files::archive_put),
        )
        .route("/v1/run", post(run::run))
        .route("/v1/images", get(images::list))
        .route("/v1/images/build", post(images::build))
        .route("/v1/images/pull", post(images::pull))
        .route("/v1/images/{*name}", axum::routing::delete(images::delete))
        .route("/v1/judge/submissions", post(judge::submit))
        .route("/v1/judge/submissions/{id}", get(judge::get))
        .route("/v1/judge/submissions/{id}/events", get(judge::events))
        .route("/v1/judge/languages", get(judge::languages))
        .route("/metrics", get(system::metrics))
        // Every route above reads its body whole: bounded by the body
        // budget (crate::request_body), after authentication.
        .route_layer(axum::middleware::from_fn_with_state(
            (state.clone(), crate::auth::Shape::Native),
            crate::request_body::admit,
        ))
        .route(
            "/v1/images/import",
            // Streamed to disk under its own cap (max_image_bytes).
            post(images::import).layer(DefaultBodyLimit::disable()),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.auth.clone(),
            crate::auth::require_tenant,
        ));
    // Every error of the native API is `{code, message}` JSON without host
    // paths, axum's own answers included (error::error_bodies); the
    // Judge0 layer keeps Judge0's shapes, so it is nested outside.
    let native = Router::new()
        .route("/healthz", get(system::healthz))
        .route("/v1/openapi.json", get(crate::openapi::serve))
        .route("/", get(system::console))
        .route("/console/{name}", get(system::console_asset))
        .merge(authed)
        .fallback(system::fallback)
        .method_not_allowed_fallback(crate::error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.host_paths.clone(),
            crate::error::error_bodies,
        ));
    native
        .nest("/judge0", judge0::routes(state.clone()))
        .layer(axum::middleware::from_fn(crate::error::catch_panic))
        .layer(axum::middleware::from_fn(trace_request))
        .layer(DefaultBodyLimit::max(state.cfg.max_body_bytes))
        .with_state(state)
}

/// The Judge0-compatible API at the root, for its own listener
/// (`judge0_listen`).
pub fn judge0_router(state: Arc<AppState>) -> Router {
    judge0::routes(state.clone())
        .layer(axum::middleware::from_fn(crate::error::catch_panic))
        .layer(axum::middleware::from_fn(trace_request))
        .layer(DefaultBodyLimit::max(state.cfg.max_body_bytes))
        .with_state(state)
}

#[cfg(test)]
mod tests;
