//! `POST /v1/sessions/{id}/exec`: run a process in a session, captured
//! (JSON result) or streamed (`?stream=true`: NDJSON lines `stdout`,
//! `stderr` with base64 `data`, then `exit` with the result).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use base64::Engine;
use serde::Deserialize;

use crate::engine::process::{self, ExecOutcome, ExecSpec, Stream};
use crate::error::{ApiError, ErrorBody, Json};
use crate::state::{check_env, AppState, Session, Tenant};
use crate::types::{decode_input, encode_output, ExecRequest, ExecResult, ExecUsage, StepError};

#[derive(Deserialize)]
pub struct ExecQuery {
    #[serde(default)]
    pub stream: bool,
}

/// Checks an exec request and turns it into the engine's form.
pub fn exec_spec(
    state: &AppState,
    session: &Session,
    req: ExecRequest,
) -> Result<ExecSpec, ApiError> {
    if req.argv.is_empty() || req.argv[0].is_empty() {
        return Err(ApiError::invalid("argv: must name a program"));
    }
    if req.argv.iter().any(|a| a.contains('\0')) {
        return Err(ApiError::invalid("argv: NUL byte"));
    }
    if req.argv.iter().map(|a| a.len() + 1).sum::<usize>() > 64 * 1024 {
        return Err(ApiError::invalid("argv: more than 64 KiB"));
    }
    check_env(&req.env)?;
    let cwd = req
        .cwd
        .or_else(|| session.image_cwd.clone())
        .unwrap_or_else(|| "/workspace".into());
    if !cwd.starts_with('/') || cwd.contains('\0') {
        return Err(ApiError::invalid("cwd: must be an absolute path"));
    }
    let stdin = match &req.stdin {
        Some(s) => decode_input(s, req.stdin_encoding.as_deref(), "stdin")?,
        None => Vec::new(),
    };
    let timeout = req.timeout_ms.unwrap_or(state.cfg.exec_timeout_ms);
    if timeout == 0 || timeout > 24 * 3600 * 1000 {
        return Err(ApiError::limit("timeout_ms: outside 1..86400000"));
    }
    let output_limit = req.output_limit.unwrap_or(state.cfg.exec_output_limit);
    if output_limit == 0 || output_limit > 64 << 20 {
        return Err(ApiError::limit("output_limit: outside 1..64M"));
    }
    Ok(ExecSpec {
        args: req.argv,
        env: session.process_env(&req.env, false),
        cwd,
        stdin,
        timeout: Some(Duration::from_millis(timeout)),
        output_limit,
    })
}

pub fn result_of(o: &ExecOutcome) -> ExecResult {
    let (stdout, stdout_encoding) = encode_output(&o.stdout);
    let (stderr, stderr_encoding) = encode_output(&o.stderr);
    let st = o.status.unwrap_or_default();
    ExecResult {
        exit_code: st.code,
        signal: st.signal,
        termination: o.termination.to_string(),
        stdout,
        stdout_encoding,
        stderr,
        stderr_encoding,
        stdout_truncated: o.stdout_truncated,
        stderr_truncated: o.stderr_truncated,
        usage: ExecUsage {
            wall_time_us: o.wall_time_us,
            cpu_user_us: st.cpu_user_us,
            cpu_system_us: st.cpu_system_us,
            max_rss_kb: st.max_rss_kb,
        },
        error: o.error.as_ref().map(|f| StepError {
            step: f.step.clone(),
            errno: f.errno.clone(),
            message: f.message.clone(),
        }),
    }
}

/// Run a process in the session.
#[utoipa::path(post, path = "/v1/sessions/{id}/exec",
    params(("id" = String, Path), ("stream" = Option<bool>, Query, description = "answer NDJSON lines as output arrives")),
    request_body = ExecRequest,
    responses((status = 200, description = "the result, or with stream=true NDJSON lines (stdout, stderr, then exit)", content(
            (ExecResult = "application/json"),
            (ref("#/components/schemas/ExecStreamLine") = "application/x-ndjson"))),
        (status = 400, body = ErrorBody, description = "invalid_request, limit_out_of_range"),
        (status = 404, body = ErrorBody, description = "session_not_found"),
        (status = 409, body = ErrorBody, description = "session_not_running"),
        (status = 503, body = ErrorBody, description = "output_budget_exhausted: the captured output would not fit the daemon's budget now",
            headers(("Retry-After" = u64, description = "seconds to wait before trying again")))))]
pub async fn exec(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
    Query(q): Query<ExecQuery>,
    Json(req): Json<ExecRequest>,
) -> Result<Response, ApiError> {
    let session = state.get(&tenant, &id)?;
    let sb = session.running()?.clone();
    let spec = exec_spec(&state, &session, req)?;
    session.touch();
    if !q.stream {
        let outcome = process::exec(&sb, spec, None)
            .await
            .map_err(|e| ApiError::internal(format!("exec: {e}")))?;
        session.touch();
        state.metrics.result(outcome.termination, false);
        return Ok(axum::Json(result_of(&outcome)).into_response());
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Stream, Vec<u8>)>(64);
    let (line_tx, line_rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(64);
    let metrics_state = state.clone();
    tokio::spawn(async move {
        let run = process::exec(&sb, spec, Some(tx));
        tokio::pin!(run);
        let outcome = loop {
            tokio::select! {
                chunk = rx.recv() => {
                    if let Some((stream, data)) = chunk {
                        let _ = line_tx.send(Ok(chunk_line(stream, &data))).await;
                    }
                }
                o = &mut run => break o,
            }
        };
        while let Ok((stream, data)) = rx.try_recv() {
            let _ = line_tx.send(Ok(chunk_line(stream, &data))).await;
        }
        session.touch();
        let last = match outcome {
            Ok(o) => {
                metrics_state.metrics.result(o.termination, false);
                let mut r = serde_json::to_value(result_of(&o)).unwrap_or_default();
                r["type"] = "exit".into();
                r
            }
            Err(e) => {
                tracing::error!(error = %e, "exec failed");
                serde_json::json!({"type": "error", "code": "internal_error", "message": crate::error::INTERNAL_MESSAGE})
            }
        };
        let _ = line_tx.send(Ok(format!("{last}\n"))).await;
    });
    let body = Body::from_stream(tokio_stream_of(line_rx));
    Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(body)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// One NDJSON line of output: `{"type":"stdout"|"stderr","data":BASE64}`.
fn chunk_line(stream: Stream, data: &[u8]) -> String {
    let line = serde_json::json!({
        "type": if stream == Stream::Stdout { "stdout" } else { "stderr" },
        "data": base64::engine::general_purpose::STANDARD.encode(data),
    });
    format!("{line}\n")
}

fn tokio_stream_of(
    mut rx: tokio::sync::mpsc::Receiver<Result<String, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<String, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
