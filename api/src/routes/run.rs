//! `POST /v1/run`: a fresh sandbox for one program (the "run this code"
//! button): files written into /workspace, the program run, everything
//! removed, the exec result returned. The sandbox belongs to the request
//! ([`crate::state::EphemeralSession`]): however the request ends,
//! including a client that disconnects, it is removed at once.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use axum::Extension;

use crate::engine::process;
use crate::error::{ApiError, ErrorBody, Json};
use crate::routes::exec::{capture, captured_response, exec_spec};
use crate::routes::files::{as_session_user, workspace_of};
use crate::state::{AppState, Tenant};
use crate::types::{decode_input, CreateSession, ExecRequest, ExecResult, RunRequest};

/// Run a program in a fresh sandbox.
#[utoipa::path(post, path = "/v1/run", request_body = RunRequest,
    responses((status = 200, body = ExecResult),
        (status = 400, body = ErrorBody, description = "invalid_request, limit_out_of_range, invalid_path"),
        (status = 403, body = ErrorBody, description = "permission_denied: a file the session user may not write"),
        (status = 404, body = ErrorBody, description = "image_not_found"),
        (status = 409, body = ErrorBody, description = "not_a_directory, is_a_directory: files that collide"),
        (status = 413, body = ErrorBody, description = "body_too_large, workspace_full"),
        (status = 429, body = ErrorBody, description = "quota_exceeded"),
        (status = 500, body = ErrorBody, description = "sandbox_failed, internal_error"),
        (status = 503, body = ErrorBody, description = "shutting_down, capacity_exhausted, images_unavailable, output_budget_exhausted (with Retry-After)",
            headers(("Retry-After" = u64, description = "seconds to wait before trying again (output_budget_exhausted)")))))]
pub async fn run(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Tenant>,
    Json(req): Json<RunRequest>,
) -> Result<Response, ApiError> {
    // Everything is checked before a sandbox exists.
    let mut files = Vec::with_capacity(req.files.len());
    for f in &req.files {
        files.push((
            f.path.clone(),
            decode_input(&f.content, f.encoding.as_deref(), "files[].content")?,
        ));
    }
    if req.argv.is_empty() {
        return Err(ApiError::invalid("argv: must name a program"));
    }
    // Output room first: a run the budget cannot take starts nothing.
    let output_limit = req.output_limit.unwrap_or(state.cfg.exec_output_limit);
    let output = match capture(&state, &tenant, output_limit) {
        Ok(o) => o,
        Err(refused) => return Ok(*refused),
    };
    // The guard owns the sandbox: it is removed when the guard goes,
    // after the answer is made, on an error, or when the client went away
    // and this future was dropped mid-way (the process dies with it).
    let session = state
        .create_ephemeral(
            &tenant,
            CreateSession {
                image: req.image.clone(),
                limits: req.limits.clone(),
                ttl_seconds: None,
                idle_timeout_seconds: None,
                env: req.env.clone(),
                labels: Default::default(),
            },
        )
        .await?;
    let spec = exec_spec(
        &state,
        &session,
        ExecRequest {
            argv: req.argv,
            stdin: req.stdin,
            stdin_encoding: req.stdin_encoding,
            env: Default::default(),
            cwd: None,
            timeout_ms: req.timeout_ms,
            output_limit: req.output_limit,
        },
    )?;
    if !files.is_empty() {
        let s = session.session.clone();
        tokio::task::spawn_blocking(move || -> Result<(), ApiError> {
            let ws = workspace_of(&s)?;
            let owner = s.running()?.host_uid + sandbox::options::defaults::UID;
            as_session_user(owner, || {
                for (path, data) in files {
                    ws.write(&path, &data, true)?;
                }
                Ok(())
            })
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    }
    let sb = session.running()?.clone();
    let outcome = process::exec(&sb, spec, output)
        .await
        .map_err(|e| ApiError::internal(format!("exec: {e}")))?;
    state.metrics.result(outcome.termination, true);
    // The sandbox goes now (the teardown, ~0.7 ms, runs beside the
    // answer); the answer holds only the captured output.
    drop(sb);
    drop(session);
    captured_response(outcome)
}
