//! `/v1/sessions`: create, list, get, delete.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Extension;

use crate::auth::Tenant;
use crate::error::{ApiError, ErrorBody, Json};
use crate::state::AppState;
use crate::types::{CreateSession, SessionInfo, SessionList};

/// Create a session.
#[utoipa::path(post, path = "/v1/sessions", request_body = CreateSession,
    responses((status = 201, body = SessionInfo),
        (status = 400, body = ErrorBody, description = "invalid_request, limit_out_of_range"),
        (status = 404, body = ErrorBody, description = "image_not_found"),
        (status = 429, body = ErrorBody, description = "quota_exceeded"),
        (status = 500, body = ErrorBody, description = "sandbox_failed, internal_error"),
        (status = 503, body = ErrorBody, description = "shutting_down, capacity_exhausted, images_unavailable")))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Tenant>,
    Json(req): Json<CreateSession>,
) -> Result<impl IntoResponse, ApiError> {
    // A session's processes come and go: there is no one program whose
    // CPU time could be limited (each exec takes its own `limits.cpu_time`).
    if req.limits.as_ref().is_some_and(|l| l.cpu_time.is_some()) {
        return Err(ApiError::invalid(
            "limits.cpu_time: a session takes none; give it per exec or to /v1/run",
        ));
    }
    let s = state.create_session(&tenant, req).await?;
    Ok((StatusCode::CREATED, axum::Json(s.info(false))))
}

/// List the caller's sessions; `?label=k=v` (repeatable) filters.
#[utoipa::path(get, path = "/v1/sessions", params(("label" = Option<String>, Query, description = "k=v; repeatable", pattern = "=")),
    responses((status = 200, body = SessionList), (status = 400, body = ErrorBody, description = "invalid_request: a label filter that is not k=v")))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Tenant>,
    RawQuery(q): RawQuery,
) -> Result<axum::Json<SessionList>, ApiError> {
    let mut labels = Vec::new();
    for (k, v) in form_urlencoded::parse(q.unwrap_or_default().as_bytes()) {
        if k == "label" {
            let (lk, lv) = v
                .split_once('=')
                .ok_or_else(|| ApiError::invalid("label filter must be k=v"))?;
            labels.push((lk.to_string(), lv.to_string()));
        }
    }
    let sessions = state
        .list(&tenant, &labels)
        .iter()
        .map(|s| s.info(false))
        .collect();
    Ok(axum::Json(SessionList { sessions }))
}

/// One session with live usage.
#[utoipa::path(get, path = "/v1/sessions/{id}", params(("id" = String, Path)),
    responses((status = 200, body = SessionInfo), (status = 404, body = ErrorBody, description = "session_not_found")))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
) -> Result<axum::Json<SessionInfo>, ApiError> {
    let s = state.get(&tenant, &id)?;
    let info = tokio::task::spawn_blocking(move || s.info(true))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(axum::Json(info))
}

/// Kill everything in the session and remove it.
#[utoipa::path(delete, path = "/v1/sessions/{id}", params(("id" = String, Path)),
    responses((status = 204, description = "removed"), (status = 404, body = ErrorBody, description = "session_not_found")))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.delete(&tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
