//! `/healthz`, `/metrics` (Prometheus) and the
//! terminal page (`serve --console`).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use crate::auth::is_operator;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// Liveness.
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = Health)))]
pub async fn healthz() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// What `/healthz` answers.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
    pub version: String,
}

/// Prometheus metrics (operators only: socket peers and the operator
/// token).
#[utoipa::path(get, path = "/metrics", responses(
    (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain; version=0.0.4"),
    (status = 403, body = ErrorBody, description = "forbidden: a tenant's token")))]
pub async fn metrics(
    State(state): State<Arc<AppState>>,
    parts: axum::http::request::Parts,
) -> Result<Response, ApiError> {
    if !is_operator(&parts.extensions) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "metrics are served to operators (the Unix socket, the operator token) only",
        ));
    }
    let mut text = state.metrics.render(state.active());
    // Clean network namespaces the one-shot runs (judge tests, /v1/run)
    // take and give back: a dirtied one is dropped, never pooled.
    let free = state.engine.netns_pool.as_ref().map_or(0, |p| p.free());
    text.push_str(&format!(
        "# HELP runtimed_netns_pool_free Clean network namespaces waiting for a one-shot run.\n\
         # TYPE runtimed_netns_pool_free gauge\nruntimed_netns_pool_free {free}\n"
    ));
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

const CONSOLE_PAGE: &str = include_str!("../console.html");

/// The terminal page.
pub async fn console(State(state): State<Arc<AppState>>) -> Result<Html<&'static str>, ApiError> {
    if !state.cfg.console {
        return Err(not_found());
    }
    Ok(Html(CONSOLE_PAGE))
}

fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// xterm.js files from the configured npm `node_modules`.
pub async fn console_asset(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let (Some(dir), true) = (&state.cfg.console_assets, state.cfg.console) else {
        return Err(not_found());
    };
    let (rel, mime) = match name.as_str() {
        "xterm.js" => ("@xterm/xterm/lib/xterm.js", "text/javascript"),
        "xterm.css" => ("@xterm/xterm/css/xterm.css", "text/css"),
        "addon-attach.js" => ("@xterm/addon-attach/lib/addon-attach.js", "text/javascript"),
        "addon-fit.js" => ("@xterm/addon-fit/lib/addon-fit.js", "text/javascript"),
        _ => return Err(not_found()),
    };
    let bytes = tokio::fs::read(dir.join(rel)).await.map_err(|e| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "console_asset_missing",
            format!("{name} is not installed (run npm ci in console/)"),
        )
        .with_detail(format!("{}: {e}", dir.join(rel).display()))
    })?;
    Ok(([(header::CONTENT_TYPE, mime)], bytes).into_response())
}

/// Unknown routes get the JSON error shape too.
pub async fn fallback() -> ApiError {
    not_found()
}
