//! `POST /v1/sessions/{id}/exec`: run a process in a session, captured
//! (JSON result) or streamed (`?stream=true`: NDJSON lines `stdout`,
//! `stderr` with base64 `data`, then `exit` with the result).
//!
//! What the daemon holds for either is bounded (docs/limits.md): a
//! captured answer is the program's raw output, reserved from the
//! daemon's capture budget and turned into JSON piece by piece as the
//! client reads it; a streamed one holds a few chunks and is never
//! accumulated. The process belongs to the request: a client that goes
//! away ends it (the captured request future is dropped with the
//! process's owner; a streamed body that is dropped closes the channel
//! the exec loop watches).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use base64::Engine;
use bytes::Bytes;
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use crate::auth::Tenant;
use crate::engine::process::{self, Chunk, ExecOutcome, ExecSpec, Output, Stream, STREAM_CHUNKS};
use crate::error::{ApiError, ErrorBody, Json};
use crate::state::{check_env, AppState, Session};
use crate::types::{decode_input, ExecRequest, ExecResult, ExecTermination, ExecUsage, StepError};

#[derive(Deserialize)]
pub struct ExecQuery {
    #[serde(default)]
    pub stream: bool,
}

/// A program's argv as exec and `/v1/run` take it: a name, no NUL byte,
/// at most 64 KiB in all.
pub fn check_argv(argv: &[String]) -> Result<(), ApiError> {
    if argv.is_empty() || argv[0].is_empty() {
        return Err(ApiError::invalid("argv: must name a program"));
    }
    if argv.iter().any(|a| a.contains('\0')) {
        return Err(ApiError::invalid("argv: NUL byte"));
    }
    if argv.iter().map(|a| a.len() + 1).sum::<usize>() > 64 * 1024 {
        return Err(ApiError::invalid("argv: more than 64 KiB"));
    }
    Ok(())
}

/// Checks an exec request and turns it into the engine's form.
pub fn exec_spec(
    state: &AppState,
    session: &Session,
    req: ExecRequest,
) -> Result<ExecSpec, ApiError> {
    check_argv(&req.argv)?;
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
    let max = state.cfg.max_exec_output_limit();
    if output_limit == 0 || output_limit > max {
        return Err(ApiError::limit(format!(
            "output_limit: outside 1..{max} (bytes per stream)"
        )));
    }
    let cpu_time = super::run::cpu_time(req.limits.as_ref().and_then(|l| l.cpu_time.as_deref()))?;
    Ok(ExecSpec {
        cpu_time,
        args: req.argv,
        env: session.process_env(&req.env, false),
        cwd,
        stdin,
        timeout: Some(Duration::from_millis(timeout)),
        output_limit,
    })
}

/// Where a captured exec of `tenant` keeps its output: the worst case of
/// both streams reserved from the daemon's capture budget, or the answer
/// to give instead (a limit out of range; the budget spent, 503 with
/// `Retry-After`). Reserved before anything runs, so a refused request
/// changes nothing.
pub fn capture(
    state: &AppState,
    tenant: &Tenant,
    output_limit: u64,
) -> Result<Output, Box<Response>> {
    let max = state.cfg.max_exec_output_limit();
    if output_limit == 0 || output_limit > max {
        let e = ApiError::limit(format!("output_limit: outside 1..{max} (bytes per stream)"));
        return Err(Box::new(e.into_response()));
    }
    let want = output_limit.saturating_mul(2);
    match state.output_budget.try_reserve(&tenant.0, want) {
        Some(grant) => Ok(Output::Captured(grant)),
        None => {
            let mut resp = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "output_budget_exhausted",
                format!(
                    "captured output of running execs fills the daemon's budget \
                     (exec_output_budget, or this tenant's share): {want} bytes \
                     (twice output_limit) do not fit now; retry, ask for a smaller \
                     output_limit, or stream (?stream=true)"
                ),
            )
            .into_response();
            resp.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            Err(Box::new(resp))
        }
    }
}

/// The result's fields with empty `stdout` and `stderr` (a streamed
/// answer's `exit` line; the skeleton of a captured one).
fn result_fields(o: &ExecOutcome, stdout_encoding: &str, stderr_encoding: &str) -> ExecResult {
    let st = o.status.unwrap_or_default();
    ExecResult {
        exit_code: st.code,
        signal: st.signal,
        termination: o.termination,
        stdout: String::new(),
        stdout_encoding: stdout_encoding.into(),
        stderr: String::new(),
        stderr_encoding: stderr_encoding.into(),
        stdout_truncated: o.stdout_truncated,
        stderr_truncated: o.stderr_truncated,
        usage: ExecUsage {
            wall_time_us: o.wall_time_us,
            cpu_user_us: st.cpu_user_us,
            cpu_system_us: st.cpu_system_us,
            max_rss_kb: st.max_rss_kb,
            cpu_time_us: o.cpu_time_us,
        },
        error: o.error.as_ref().map(StepError::from),
    }
}

/// `utf8` when the bytes are UTF-8, else `base64`.
fn encoding_of(bytes: &[u8]) -> &'static str {
    if std::str::from_utf8(bytes).is_ok() {
        "utf8"
    } else {
        "base64"
    }
}

/// Raw bytes turned into JSON string content at once (a multiple of 3, so
/// that base64 pieces join without padding in between).
const PIECE: usize = 48 * 1024;

/// The JSON answer of a captured exec, made as it is sent: the result
/// without its output first, then `stdout` and `stderr` encoded
/// [`PIECE`] by [`PIECE`] from the raw bytes. The daemon so holds the raw
/// output (reserved from the budget, whose grant this owns until the body
/// is sent or dropped) and one piece, never a second copy of the whole.
pub fn captured_response(outcome: ExecOutcome) -> Result<Response, ApiError> {
    let (out_enc, err_enc) = (encoding_of(&outcome.stdout), encoding_of(&outcome.stderr));
    let skeleton = serde_json::to_string(&result_fields(&outcome, out_enc, err_enc))
        .map_err(|e| ApiError::internal(format!("result: {e}")))?;
    // Both empty strings are found where serde wrote them: the fields
    // before them (numbers, a fixed termination word, a fixed encoding
    // name) cannot contain either marker.
    let field = |name: &str, from: usize| {
        let marker = format!("\"{name}\":\"\"");
        skeleton[from..]
            .find(&marker)
            .map(|i| from + i + marker.len() - 1)
    };
    let split = field("stdout", 0).and_then(|a| Some((a, field("stderr", a)?)));
    let Some((a, b)) = split else {
        return Err(ApiError::internal("result: output fields not found"));
    };
    let parts = CapturedBody {
        head: [
            Bytes::copy_from_slice(&skeleton.as_bytes()[..a]),
            Bytes::copy_from_slice(&skeleton.as_bytes()[a..b]),
            Bytes::copy_from_slice(&skeleton.as_bytes()[b..]),
        ],
        base64: [out_enc == "base64", err_enc == "base64"],
        outcome,
        stage: 0,
        offset: 0,
    };
    Response::builder()
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from_stream(futures_util::stream::iter(parts)))
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// The pieces of a captured answer: `head[0]`, stdout, `head[1]`, stderr,
/// `head[2]`.
struct CapturedBody {
    head: [Bytes; 3],
    base64: [bool; 2],
    outcome: ExecOutcome,
    stage: usize,
    offset: usize,
}

impl Iterator for CapturedBody {
    type Item = Result<Bytes, Infallible>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let stream = match self.stage {
                0 | 2 | 4 => {
                    let head = std::mem::take(&mut self.head[self.stage / 2]);
                    self.stage += 1;
                    return Some(Ok(head));
                }
                1 => 0,
                3 => 1,
                _ => {
                    // Sent: the output and its budget go now, not when the
                    // connection does.
                    self.outcome = ExecOutcome::default();
                    return None;
                }
            };
            let raw = if stream == 0 {
                &self.outcome.stdout
            } else {
                &self.outcome.stderr
            };
            if self.offset >= raw.len() {
                self.stage += 1;
                self.offset = 0;
                continue;
            }
            let (piece, used) = json_piece(&raw[self.offset..], self.base64[stream]);
            self.offset += used;
            return Some(Ok(piece));
        }
    }
}

/// The JSON string content of the first (up to) [`PIECE`] bytes of `raw`
/// and how many bytes it took: base64, or escaped UTF-8 cut at a
/// character boundary (`raw` is valid UTF-8 then).
fn json_piece(raw: &[u8], base64: bool) -> (Bytes, usize) {
    let mut end = raw.len().min(PIECE);
    if base64 {
        let text = base64::engine::general_purpose::STANDARD.encode(&raw[..end]);
        return (Bytes::from(text), end);
    }
    // A UTF-8 continuation byte (0b10xxxxxx) is never a boundary; a
    // character is at most 4 bytes, so this stops well above 0.
    while end < raw.len() && end > 1 && raw[end] & 0xC0 == 0x80 {
        end -= 1;
    }
    let text = std::str::from_utf8(&raw[..end]).unwrap_or_default();
    let quoted = serde_json::to_string(text).unwrap_or_default();
    let inner = quoted
        .get(1..quoted.len().saturating_sub(1))
        .unwrap_or_default()
        .to_string();
    (Bytes::from(inner), end)
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
        // Awaited here: if the client goes away, this future is dropped
        // and the process with it.
        let output = match capture(&state, &tenant, spec.output_limit) {
            Ok(o) => o,
            Err(refused) => return Ok(*refused),
        };
        let outcome = process::exec(&sb, spec, output)
            .await
            .map_err(|e| ApiError::internal(format!("exec: {e}")))?;
        session.touch();
        state.metrics.result(outcome.termination, false);
        return captured_response(outcome);
    }
    let (tx, rx) = mpsc::channel::<Chunk>(STREAM_CHUNKS);
    let (done_tx, done_rx) = oneshot::channel();
    let metrics_state = state.clone();
    // The exec runs in its own task so that its wall clock runs even
    // while the client reads nothing (the body is then not polled); it
    // ends when the body (the channel's receiver) is dropped.
    tokio::spawn(async move {
        let outcome = process::exec(&sb, spec, Output::Streamed(tx)).await;
        session.touch();
        if let Ok(o) = &outcome {
            if o.termination != ExecTermination::ClientGone {
                metrics_state.metrics.result(o.termination, false);
            }
        }
        let _ = done_tx.send(outcome);
    });
    let body = futures_util::stream::unfold((rx, Some(done_rx)), |(mut rx, done)| async move {
        if let Some(chunk) = rx.recv().await {
            return Some((Ok::<_, Infallible>(chunk_line(chunk)), (rx, done)));
        }
        let line = match done?.await {
            Ok(Ok(o)) => {
                let mut r =
                    serde_json::to_value(result_fields(&o, "utf8", "utf8")).unwrap_or_default();
                r["type"] = "exit".into();
                r
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "exec failed");
                serde_json::json!({"type": "error", "code": "internal_error", "message": crate::error::INTERNAL_MESSAGE})
            }
            Err(_) => {
                tracing::error!("exec: the run was lost");
                serde_json::json!({"type": "error", "code": "internal_error", "message": crate::error::INTERNAL_MESSAGE})
            }
        };
        Some((Ok(format!("{line}\n")), (rx, None)))
    });
    Response::builder()
        .header(CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(body))
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// One NDJSON line of output: `{"type":"stdout"|"stderr","data":BASE64}`.
fn chunk_line((stream, data): Chunk) -> String {
    let line = serde_json::json!({
        "type": if stream == Stream::Stdout { "stdout" } else { "stderr" },
        "data": base64::engine::general_purpose::STANDARD.encode(&data),
    });
    format!("{line}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use sandbox::report::Termination;

    async fn body_of(outcome: ExecOutcome) -> serde_json::Value {
        let resp = captured_response(outcome).unwrap();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(&bytes));
        })
    }

    #[tokio::test]
    async fn a_captured_answer_is_the_json_of_the_whole_output() {
        // Several pieces long, with multi-byte characters across piece
        // boundaries and characters that JSON escapes.
        let text: String = (0..40_000)
            .map(|i| ["é", "\"", "\u{1}", "€", "a\n", "😀"][i % 6])
            .collect();
        let binary: Vec<u8> = (0..200_001u32).map(|i| (i * 7 % 256) as u8).collect();
        let o = ExecOutcome {
            termination: ExecTermination::Ran(Termination::Exited),
            stdout: text.clone().into_bytes(),
            stderr: binary.clone(),
            ..Default::default()
        };
        let v = body_of(o).await;
        assert_eq!(v["stdout"], text.as_str());
        assert_eq!(v["stdout_encoding"], "utf8");
        assert_eq!(v["stderr_encoding"], "base64");
        let got = base64::engine::general_purpose::STANDARD
            .decode(v["stderr"].as_str().unwrap())
            .unwrap();
        assert_eq!(got, binary);
        assert_eq!(v["termination"], "exited");
    }

    #[tokio::test]
    async fn an_empty_answer_is_json_too() {
        let v = body_of(ExecOutcome {
            termination: ExecTermination::Ran(Termination::WallTimeout),
            ..Default::default()
        })
        .await;
        assert_eq!(v["stdout"], "");
        assert_eq!(v["stderr"], "");
        assert_eq!(v["termination"], "wall_timeout");
    }
}
