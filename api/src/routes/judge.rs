//! The native judge API: `POST /v1/judge/submissions[?wait=true]`, `GET
//! /v1/judge/submissions/{id}`, its progress as server-sent events, and
//! `GET /v1/judge/languages`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures_util::stream::Stream;
use judges::{Event, Submission};
use serde::Serialize;

use crate::auth::Tenant;
use crate::error::{ApiError, ErrorBody, Json};
use crate::judge::{JudgeService, JudgeServiceError, SubmissionView};
use crate::state::AppState;

/// The judge service; its first use starts the toolchain probe.
pub fn service(state: &AppState) -> Result<&Arc<JudgeService>, ApiError> {
    let svc = state.judge.get().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "judge_unavailable",
            "the judge is not running in this daemon",
        )
    })?;
    svc.kick_probe();
    Ok(svc)
}

pub fn submission_not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "submission_not_found",
        format!("no submission {id:?}"),
    )
}

/// The service's refusal as an HTTP answer (429 carries Retry-After).
pub fn service_error(e: JudgeServiceError) -> Response {
    match e {
        JudgeServiceError::Invalid(e) => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_submission", e.to_string())
                .into_response()
        }
        JudgeServiceError::QueueFull { retry_after, .. }
        | JudgeServiceError::TenantQueueFull { retry_after, .. } => {
            let code = match e {
                JudgeServiceError::QueueFull { .. } => "queue_full",
                _ => "tenant_queue_full",
            };
            let mut r =
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, e.to_string()).into_response();
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            r
        }
        other => ApiError::internal(other.to_string()).into_response(),
    }
}

/// `wait=true|false` (also `1`/`0`); anything else is refused.
pub fn flag(query: Option<&str>, name: &str) -> Result<bool, ApiError> {
    let mut value = false;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if k == name {
            value = match v.as_ref() {
                "true" | "1" | "" => true,
                "false" | "0" => false,
                other => {
                    return Err(ApiError::invalid(format!(
                        "{name}={other:?}: expected true or false"
                    )))
                }
            };
        }
    }
    Ok(value)
}

/// Submit code to be judged.
#[utoipa::path(post, path = "/v1/judge/submissions",
    params(("wait" = Option<bool>, Query, description = "answer when the judgement is done")),
    request_body(content = ref("#/components/schemas/JudgeSubmission"), description = "docs/judges.md"),
    responses((status = 201, body = ref("#/components/schemas/JudgeSubmissionView"), description = "the submission (done when waited for)"),
        (status = 400, body = ErrorBody, description = "invalid_submission, invalid_request"),
        (status = 429, body = ErrorBody, description = "queue_full, tenant_queue_full",
            headers(("Retry-After" = u64, description = "seconds to wait before trying again"))),
        (status = 503, body = ErrorBody, description = "judge_unavailable")))]
pub async fn submit(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Tenant>,
    RawQuery(q): RawQuery,
    Json(sub): Json<Submission>,
) -> Response {
    let wait = match flag(q.as_deref(), "wait") {
        Ok(w) => w,
        Err(e) => return e.into_response(),
    };
    let svc = match service(&state) {
        Ok(s) => s.clone(),
        Err(e) => return e.into_response(),
    };
    let id = match svc.submit(&tenant.0, &sub) {
        Ok(id) => id,
        Err(e) => return service_error(e),
    };
    if wait {
        svc.wait_done(&id).await;
    }
    match svc.view(&tenant.0, &id) {
        Ok(Some(v)) => (StatusCode::CREATED, axum::Json(v)).into_response(),
        Ok(None) => submission_not_found(&id).into_response(),
        Err(e) => service_error(e),
    }
}

/// A submission: its status, and when done its verdict and per-test results.
#[utoipa::path(get, path = "/v1/judge/submissions/{id}", params(("id" = String, Path)),
    responses((status = 200, body = ref("#/components/schemas/JudgeSubmissionView")),
        (status = 404, body = ErrorBody, description = "submission_not_found"),
        (status = 503, body = ErrorBody, description = "judge_unavailable")))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
) -> Result<axum::Json<SubmissionView>, Response> {
    let svc = service(&state).map_err(IntoResponse::into_response)?;
    match svc.view(&tenant.0, &id) {
        Ok(Some(v)) => Ok(axum::Json(v)),
        Ok(None) => Err(submission_not_found(&id).into_response()),
        Err(e) => Err(service_error(e)),
    }
}

/// The judgement's progress as server-sent events (`compile_start`,
/// `compile_done`, `test_start`, `test_done`, `done`), from the first;
/// the stream ends after `done`. For a finished submission: its tests'
/// `test_done` and `done`.
#[utoipa::path(get, path = "/v1/judge/submissions/{id}/events", params(("id" = String, Path)),
    responses((status = 200, description = "server-sent events", body = ref("#/components/schemas/JudgeEvent"), content_type = "text/event-stream"),
        (status = 404, body = ErrorBody, description = "submission_not_found"),
        (status = 503, body = ErrorBody, description = "judge_unavailable")))]
pub async fn events(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, Response> {
    let svc = service(&state)
        .map_err(IntoResponse::into_response)?
        .clone();
    // Ownership first (the view checks the tenant).
    let view = match svc.view(&tenant.0, &id) {
        Ok(Some(v)) => v,
        Ok(None) => return Err(submission_not_found(&id).into_response()),
        Err(e) => return Err(service_error(e)),
    };
    let (past, rx) = match svc.events(&id) {
        Some((past, rx)) => (past, Some(rx)),
        // Finished before we looked: replay it from the stored result.
        None => {
            let view = match svc.view(&tenant.0, &id) {
                Ok(Some(v)) => v,
                _ => view,
            };
            (replay(&view), None)
        }
    };
    let stream = async_stream(past, rx);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn replay(view: &SubmissionView) -> Vec<Event> {
    let mut out = Vec::new();
    if let Some(r) = &view.report {
        for t in &r.tests {
            out.push(Event::TestDone {
                index: t.index,
                result: t.clone(),
            });
        }
        out.push(Event::Done { verdict: r.verdict });
    }
    out
}

fn sse_of(e: &Event) -> SseEvent {
    let name = match e {
        Event::CompileStart => "compile_start",
        Event::CompileDone { .. } => "compile_done",
        Event::TestStart { .. } => "test_start",
        Event::TestDone { .. } => "test_done",
        Event::Done { .. } => "done",
    };
    let data = serde_json::to_string(e).unwrap_or_else(|_| "{}".into());
    SseEvent::default().event(name).data(data)
}

fn async_stream(
    past: Vec<Event>,
    rx: Option<tokio::sync::broadcast::Receiver<Event>>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let ended = past.iter().any(|e| matches!(e, Event::Done { .. }));
    let past = futures_util::stream::iter(past.into_iter().map(|e| Ok(sse_of(&e))));
    let live = futures_util::stream::unfold(if ended { None } else { rx }, |rx| async move {
        let mut rx = rx?;
        match rx.recv().await {
            Ok(e) => {
                let last = matches!(e, Event::Done { .. });
                Some((Ok(sse_of(&e)), if last { None } else { Some(rx) }))
            }
            // A slow reader missed some: say so, carry on.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                let item = Ok(SseEvent::default()
                    .event("lagged")
                    .data(format!("{{\"missed\":{n}}}")));
                Some((item, Some(rx)))
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
        }
    });
    futures_util::StreamExt::chain(past, live)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LanguageInfo {
    pub name: String,
    pub display: String,
    pub judge0_id: Option<u32>,
    pub source_file: String,
    pub compiled: bool,
    pub image: Option<String>,
    /// `available`, `unavailable` or `unknown` (not probed yet).
    pub status: &'static str,
    pub version: Option<String>,
    pub reason: Option<String>,
}

/// The language table and what the toolchain probe found.
#[utoipa::path(get, path = "/v1/judge/languages", responses((status = 200, body = Vec<LanguageInfo>), (status = 503, body = ErrorBody, description = "judge_unavailable")))]
pub async fn languages(
    State(state): State<Arc<AppState>>,
) -> Result<axum::Json<Vec<LanguageInfo>>, ApiError> {
    let svc = service(&state)?;
    let langs = svc.probed_languages().await;
    Ok(axum::Json(
        langs
            .iter()
            .map(|l| {
                let (status, version, reason) = match &l.availability {
                    judges::Availability::Available { version } => {
                        ("available", Some(version.clone()), None)
                    }
                    judges::Availability::Unavailable { reason } => {
                        ("unavailable", None, Some(reason.clone()))
                    }
                    judges::Availability::Unknown => ("unknown", None, None),
                };
                LanguageInfo {
                    name: l.name.clone(),
                    display: l.display.clone(),
                    judge0_id: l.judge0_id,
                    source_file: l.source_file.clone(),
                    compiled: l.compile.is_some(),
                    image: l.image.clone(),
                    status,
                    version,
                    reason,
                }
            })
            .collect(),
    ))
}
