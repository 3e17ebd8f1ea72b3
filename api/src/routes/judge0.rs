//! The Judge0-compatible API (Judge0 CE 1.13): `POST /submissions`, `GET
//! /submissions/{token}`, `POST` and `GET /submissions/batch`, `GET
//! /languages`, `/languages/{id}`, `/statuses`, `/about`,
//! `/config_info` and `POST /authenticate`. Served under `/judge0` on the
//! daemon's listeners and at the root of `judge0_listen`
//! (docs/judge0.md).
//!
//! Errors come in Judge0's shapes: 422 `{"attribute": ["message"]}` for a
//! submission's attributes, `{"error": "..."}` otherwise. These routes
//! are not in the OpenAPI document (Judge0's API is documented by
//! Judge0).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, RawQuery, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde_json::{json, Value};

use crate::auth::{Peer, Tenant};
use crate::judge::{JudgeService, JudgeServiceError};
use crate::judge0::request::{self, FieldErrors};
use crate::judge0::response::{self, Fields, Source};
use crate::judge0::{info, is_token, new_token, status, MAX_BATCH, NOT_UTF8_BATCH, NOT_UTF8_ONE};
use crate::routes::judge::flag;
use crate::state::AppState;

/// The routes, relative to where they are served.
pub fn routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/submissions", post(create))
        .route("/submissions/batch", post(create_batch).get(get_batch))
        .route("/submissions/{token}", get(get_one))
        .route("/languages", get(languages))
        .route("/languages/{id}", get(language))
        .route("/statuses", get(statuses))
        .route("/about", get(about))
        .route("/config_info", get(config_info))
        .route("/authenticate", post(authenticate))
        // Bodies bounded by the body budget, after authentication.
        .route_layer(axum::middleware::from_fn_with_state(
            (state.clone(), crate::auth::Shape::Judge0),
            crate::request_body::admit,
        ))
        .route_layer(axum::middleware::from_fn_with_state(state, require_token))
        .fallback(not_found)
}

/// A refusal in Judge0's shapes: `{"error": "..."}`, or 422 with the
/// attributes; 429 carries Retry-After.
#[derive(Debug)]
pub struct Judge0Error {
    status: StatusCode,
    body: Value,
    retry_after: Option<u64>,
}

impl Judge0Error {
    fn new(status: StatusCode, message: impl Into<String>) -> Judge0Error {
        Judge0Error {
            status,
            body: json!({"error": message.into()}),
            retry_after: None,
        }
    }

    fn fields(errors: FieldErrors) -> Judge0Error {
        Judge0Error {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: json!(errors),
            retry_after: None,
        }
    }

    fn internal(message: impl Into<String>) -> Judge0Error {
        let message = message.into();
        tracing::error!(error = %message, "judge0");
        // The detail (store errors name the data dir) stays in the log.
        Judge0Error::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            crate::error::INTERNAL_MESSAGE,
        )
    }

    /// The judge service's refusal of a submission.
    fn service(e: JudgeServiceError) -> Judge0Error {
        match e {
            JudgeServiceError::Invalid(e) => Judge0Error::fields(FieldErrors::from_service(&e)),
            JudgeServiceError::QueueFull { retry_after, .. } => Judge0Error {
                // Judge0's own words ("queue is full"); the status and
                // Retry-After are the native API's (docs/judge0.md).
                retry_after: Some(retry_after),
                ..Judge0Error::new(StatusCode::TOO_MANY_REQUESTS, "queue is full")
            },
            JudgeServiceError::TenantQueueFull { retry_after, .. } => Judge0Error {
                retry_after: Some(retry_after),
                ..Judge0Error::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "queue is full for this tenant",
                )
            },
            other => Judge0Error::internal(other.to_string()),
        }
    }
}

impl IntoResponse for Judge0Error {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(self.body)).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

type Reply = Result<Response, Judge0Error>;

async fn not_found() -> Judge0Error {
    Judge0Error::new(StatusCode::NOT_FOUND, "no such route")
}

/// Judge0's authentication: the `X-Auth-Token` header names a token (the
/// operator's or a tenant's), whose tenant the request acts for; the
/// native API's bearer token is taken too. Judge0's query parameter is
/// not: a secret in a URL ends up in logs and histories, and these routes
/// have no WebSocket that would need it. Socket peers follow the native
/// API's rules (`auth::authenticate`). Refused: 401.
async fn require_token(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|c| c.0.clone());
    let is_unix = matches!(peer, Some(Peer::Unix { .. }));
    let header_token = req
        .headers()
        .get("x-auth-token")
        .map(|v| v.to_str().map(|t| t.trim().to_owned()));
    let token = match header_token {
        Some(Ok(t)) => Some(t),
        Some(Err(_)) => {
            return Judge0Error::new(
                StatusCode::UNAUTHORIZED,
                "authentication failed: X-Auth-Token is not ASCII",
            )
            .into_response()
        }
        None if is_unix => None,
        None => match crate::auth::bearer(req.headers()) {
            Ok(t) => t,
            Err(e) => return Judge0Error::new(StatusCode::UNAUTHORIZED, e.message).into_response(),
        },
    };
    if token.is_none() && !is_unix && crate::auth::query_param(&req, "x-auth-token").is_some() {
        return Judge0Error::new(
            StatusCode::UNAUTHORIZED,
            "authentication failed: X-Auth-Token is taken as a header only",
        )
        .into_response();
    }
    match crate::auth::authenticate(&state.auth, peer.as_ref(), token.as_deref()) {
        Ok(caller) => {
            req.extensions_mut().insert(caller.tenant.clone());
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => {
            let why = match (is_unix, &token) {
                (true, _) => e.message,
                (false, None) => "authentication failed: no X-Auth-Token".into(),
                (false, Some(_)) => "authentication failed: unknown X-Auth-Token".into(),
            };
            Judge0Error::new(StatusCode::UNAUTHORIZED, why).into_response()
        }
    }
}

/// The judge service; its first use starts the toolchain probe.
fn service(state: &AppState) -> Result<Arc<JudgeService>, Judge0Error> {
    let svc = state.judge.get().cloned().ok_or_else(|| {
        Judge0Error::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the judge is not running in this daemon",
        )
    })?;
    svc.kick_probe();
    Ok(svc)
}

/// A query parameter's value (the last one given).
fn param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(k, _)| k == name)
        .last()
        .map(|(_, v)| v.into_owned())
}

/// `base64_encoded`, `wait`: true or false.
fn query_flag(query: Option<&str>, name: &str) -> Result<bool, Judge0Error> {
    flag(query, name).map_err(|e| Judge0Error::new(StatusCode::BAD_REQUEST, e.message))
}

fn fields(query: Option<&str>) -> Result<Fields, Judge0Error> {
    Fields::parse(param(query, "fields").as_deref())
        .map_err(|e| Judge0Error::new(StatusCode::BAD_REQUEST, e.to_string()))
}

/// The body as JSON (whatever the Content-Type); an empty body is an
/// empty object (so: the required attributes are blank).
fn body_json(body: &Bytes) -> Result<Value, Judge0Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|e| {
        Judge0Error::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not JSON: {e}"),
        )
    })
}

/// Reads, validates and queues one submission; its token.
fn submit_one(
    svc: &JudgeService,
    tenant: &Tenant,
    body: &Value,
    base64: bool,
) -> Result<String, Judge0Error> {
    let sub = request::parse(body, base64, &svc.languages()).map_err(Judge0Error::fields)?;
    let token = new_token().map_err(|e| Judge0Error::internal(format!("make a token: {e}")))?;
    svc.submit_with_id(&tenant.0, token, &sub)
        .map_err(Judge0Error::service)
}

/// One submission in the attributes asked for; `Ok(None)`: no such
/// submission of this tenant's.
fn render_one(
    svc: &JudgeService,
    tenant: &Tenant,
    token: &str,
    fields: &Fields,
    base64: bool,
) -> Result<Option<Result<Value, response::NotUtf8>>, Judge0Error> {
    let internal = |e: JudgeServiceError| Judge0Error::internal(e.to_string());
    if !is_token(token) {
        return Ok(None);
    }
    let Some(view) = svc.view(&tenant.0, token).map_err(internal)? else {
        return Ok(None);
    };
    let request = if fields.need_request() {
        svc.request(&tenant.0, token).map_err(internal)?
    } else {
        None
    };
    let languages = svc.languages();
    let src = Source {
        view: &view,
        request: request.as_ref(),
        languages: &languages,
    };
    Ok(Some(
        response::render(&src, fields, base64).map(Value::Object),
    ))
}

fn no_submission(token: &str) -> Judge0Error {
    Judge0Error::new(
        StatusCode::NOT_FOUND,
        format!("no submission with token {token:?}"),
    )
}

/// `POST /submissions[?base64_encoded][&wait][&fields]`: 201 with the
/// token, or with the judged submission when `wait=true`.
async fn create(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Tenant>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Reply {
    let base64 = query_flag(q.as_deref(), "base64_encoded")?;
    let wait = query_flag(q.as_deref(), "wait")?;
    let fields = fields(q.as_deref())?;
    let svc = service(&state)?;
    let body = body_json(&body)?;
    let token = submit_one(&svc, &tenant, &body, base64)?;
    if !wait {
        return Ok((StatusCode::CREATED, axum::Json(json!({"token": token}))).into_response());
    }
    svc.wait_done(&token).await;
    let v = match render_one(&svc, &tenant, &token, &fields, base64)? {
        Some(Ok(v)) => v,
        // Judge0 answers 201 with the token and the error.
        Some(Err(_)) => json!({"token": token, "error": NOT_UTF8_ONE}),
        None => return Err(no_submission(&token)),
    };
    Ok((StatusCode::CREATED, axum::Json(v)).into_response())
}

/// `GET /submissions/{token}[?base64_encoded][&fields]`.
async fn get_one(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Tenant>,
    Path(token): Path<String>,
    RawQuery(q): RawQuery,
) -> Reply {
    let base64 = query_flag(q.as_deref(), "base64_encoded")?;
    let fields = fields(q.as_deref())?;
    let svc = service(&state)?;
    match render_one(&svc, &tenant, &token, &fields, base64)? {
        Some(Ok(v)) => Ok(axum::Json(v).into_response()),
        Some(Err(_)) => Err(Judge0Error::new(StatusCode::BAD_REQUEST, NOT_UTF8_ONE)),
        None => Err(no_submission(&token)),
    }
}

/// `POST /submissions/batch[?base64_encoded]` with `{"submissions":
/// [...]}`: 201 with one item per submission, `{"token"}` or why it was
/// refused (Judge0's per-item errors). When the queue refused every
/// submission that was otherwise fine and none was created: 429.
async fn create_batch(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Tenant>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Reply {
    let base64 = query_flag(q.as_deref(), "base64_encoded")?;
    let svc = service(&state)?;
    let body = body_json(&body)?;
    let Some(items) = body.get("submissions").and_then(Value::as_array) else {
        return Err(Judge0Error::new(
            StatusCode::BAD_REQUEST,
            "the body must be {\"submissions\": [submission, ...]}",
        ));
    };
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(Judge0Error::new(
            StatusCode::BAD_REQUEST,
            format!(
                "a batch holds 1 to {MAX_BATCH} submissions, not {}",
                items.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    let mut created = 0;
    let mut queue_full = None;
    for item in items {
        match submit_one(&svc, &tenant, item, base64) {
            Ok(token) => {
                created += 1;
                out.push(json!({"token": token}));
            }
            Err(e) if e.retry_after.is_some() => {
                out.push(e.body.clone());
                queue_full = Some(e);
            }
            Err(e) => out.push(e.body),
        }
    }
    if let (0, Some(e)) = (created, queue_full) {
        return Err(e);
    }
    Ok((StatusCode::CREATED, axum::Json(Value::Array(out))).into_response())
}

/// `GET /submissions/batch?tokens=a,b,c[&base64_encoded][&fields]`:
/// `{"submissions": [...]}` in the order asked, `null` for a token that
/// names no submission of this tenant's.
async fn get_batch(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Tenant>,
    RawQuery(q): RawQuery,
) -> Reply {
    let base64 = query_flag(q.as_deref(), "base64_encoded")?;
    let fields = fields(q.as_deref())?;
    let svc = service(&state)?;
    let tokens = param(q.as_deref(), "tokens").unwrap_or_default();
    let tokens: Vec<&str> = tokens
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    if tokens.is_empty() || tokens.len() > MAX_BATCH {
        return Err(Judge0Error::new(
            StatusCode::BAD_REQUEST,
            format!(
                "tokens= names 1 to {MAX_BATCH} submissions, not {}",
                tokens.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(tokens.len());
    for token in tokens {
        match render_one(&svc, &tenant, token, &fields, base64)? {
            Some(Ok(v)) => out.push(v),
            Some(Err(_)) => return Err(Judge0Error::new(StatusCode::BAD_REQUEST, NOT_UTF8_BATCH)),
            None => out.push(Value::Null),
        }
    }
    Ok(axum::Json(json!({"submissions": out})).into_response())
}

/// `GET /languages`: `[{id, name}]` of the available languages.
async fn languages(State(state): State<Arc<AppState>>) -> Reply {
    let svc = service(&state)?;
    Ok(axum::Json(info::languages(&*svc.probed_languages().await)).into_response())
}

/// `GET /languages/{id}`: any language of the table but those found
/// unavailable.
async fn language(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Reply {
    let svc = service(&state)?;
    let langs = svc.probed_languages().await;
    let found = id
        .parse::<u32>()
        .ok()
        .and_then(|n| langs.by_judge0_id(n))
        .filter(|l| !matches!(l.availability, judges::Availability::Unavailable { .. }));
    match found {
        Some(l) => Ok(axum::Json(info::language(l)).into_response()),
        None => Err(Judge0Error::new(
            StatusCode::NOT_FOUND,
            format!("language with id {id} doesn't exist"),
        )),
    }
}

/// `GET /statuses`: ids 1–14.
async fn statuses() -> axum::Json<Vec<status::Status>> {
    axum::Json(status::STATUSES.to_vec())
}

/// `GET /about`.
async fn about() -> axum::Json<Value> {
    axum::Json(info::about())
}

/// `GET /config_info`.
async fn config_info(State(state): State<Arc<AppState>>) -> axum::Json<Value> {
    axum::Json(info::config_info(state.cfg.judge_queue_max))
}

/// `POST /authenticate`: 200 when the token is good (the middleware
/// answered 401 otherwise).
async fn authenticate() -> StatusCode {
    StatusCode::OK
}
