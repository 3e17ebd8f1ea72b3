//! Request bodies. The handlers take their bodies whole (raw bytes for a
//! file or an archive, parsed JSON for everything else), so what all
//! bodies in flight make the daemon hold is bounded here, once, for every
//! route that takes one: after authentication (a client without a token
//! gets its 401 and nothing is read), a body reserves its length from the
//! daemon's body budget ([`crate::budget::ByteBudget`], a total and a
//! per-tenant share), or `max_body_bytes` when it is chunked, BEFORE a
//! byte of it is read. When that does not fit the answer is 503
//! `body_budget_exhausted` with `Retry-After`, and the body is never read
//! (a client that sent `Expect: 100-continue`, as curl does for large
//! uploads, never sends it). The body is then read into one buffer of its
//! declared length within `request_body_timeout_seconds` (408
//! `body_timeout`: a client that trickles its body, or stops, is cut
//! off), and the reservation is kept until the answer has been sent:
//! what the handler made of the body (parsed JSON, the stdin of a
//! streamed exec) lives that long.
//!
//! Parsed JSON can be much larger than its text (`[0,0,0,...]` is 2 bytes
//! a value as text, 32 or more as `serde_json::Value`, a `Vec<String>`
//! element 24 plus its allocation), so a JSON body is counted as its
//! length plus [`JSON_VALUE_COST`] per value, and that sum is held to
//! `max_body_bytes` too. docs/limits.md gives the bound.
//!
//! Image imports are not read here: they stream to a file in the data dir
//! (`routes::images::import`), holding one chunk at a time.

use std::sync::Arc;

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use futures_util::StreamExt;
use http_body::SizeHint;

use crate::auth::{Shape, Tenant};
use crate::budget::{hold, Grant};
use crate::error::ApiError;
use crate::state::AppState;

/// What one value of a JSON body is counted as, besides its text: the
/// slot of a parsed value (a `serde_json::Value` is 32 bytes, a `String`
/// 24) with the slack of a growing `Vec`, or a small string's allocation.
pub const JSON_VALUE_COST: u64 = 64;

/// The first allocation for a chunked body (grown as it arrives).
const CHUNKED_START: usize = 64 << 10;

/// Why a body was not taken.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the request body is larger than {max} bytes (max_body_bytes)")]
    TooLarge { max: u64 },
    #[error(
        "the JSON body counts as {counted} bytes ({len} bytes and {values} values at \
         {JSON_VALUE_COST} bytes each, for what its parsed form takes), more than {max} \
         (max_body_bytes)"
    )]
    TooManyValues {
        len: u64,
        values: u64,
        counted: u64,
        max: u64,
    },
    #[error(
        "request bodies being read or handled fill the daemon's budget \
         (request_body_budget, or this tenant's share): {want} bytes do not fit now; \
         retry, or send it when fewer of this tenant's requests are running"
    )]
    BudgetExhausted { want: u64 },
    #[error(
        "the request body did not arrive whole within {seconds} s \
         (request_body_timeout_seconds)"
    )]
    TimedOut { seconds: u64 },
    #[error("the request body could not be read: {reason}")]
    Unreadable { reason: String },
}

impl BodyError {
    fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge { .. } | BodyError::TooManyValues { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            BodyError::BudgetExhausted { .. } => StatusCode::SERVICE_UNAVAILABLE,
            BodyError::TimedOut { .. } => StatusCode::REQUEST_TIMEOUT,
            BodyError::Unreadable { .. } => StatusCode::BAD_REQUEST,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            BodyError::TooLarge { .. } | BodyError::TooManyValues { .. } => "body_too_large",
            BodyError::BudgetExhausted { .. } => "body_budget_exhausted",
            BodyError::TimedOut { .. } => "body_timeout",
            BodyError::Unreadable { .. } => "invalid_request",
        }
    }

    /// The answer in the listener's shape (`{code, message}`, or
    /// Judge0's `{"error": ...}`).
    fn respond(&self, shape: Shape) -> Response {
        let mut resp = match shape {
            Shape::Native => {
                ApiError::new(self.status(), self.code(), self.to_string()).into_response()
            }
            Shape::Judge0 => (
                self.status(),
                axum::Json(serde_json::json!({ "error": self.to_string() })),
            )
                .into_response(),
        };
        if matches!(self, BodyError::BudgetExhausted { .. }) {
            resp.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

/// Middleware of the authenticated routes that take a body (docs above).
pub async fn admit(
    State((state, shape)): State<(Arc<AppState>, Shape)>,
    req: Request,
    next: Next,
) -> Response {
    let hint = http_body::Body::size_hint(req.body());
    if hint.exact() == Some(0) {
        return next.run(req).await;
    }
    let tenant = req
        .extensions()
        .get::<Tenant>()
        .map(|t| t.0.clone())
        .unwrap_or_default();
    let json = match shape {
        // Judge0's routes parse any body as JSON.
        Shape::Judge0 => true,
        Shape::Native => is_json(req.headers()),
    };
    match take(&state, &tenant, hint, json, req).await {
        Ok((req, grant)) => hold(next.run(req).await, grant),
        Err(e) => e.respond(shape),
    }
}

/// Reserves, reads and counts the body; the request with its body in one
/// buffer, and the reservation.
async fn take(
    state: &AppState,
    tenant: &str,
    hint: SizeHint,
    json: bool,
    req: Request,
) -> Result<(Request, Grant), BodyError> {
    let max = state.cfg.max_body_bytes as u64;
    if hint.lower() > max {
        return Err(BodyError::TooLarge { max });
    }
    // Content-Length, or the most a chunked body may bring.
    let want = hint.exact().unwrap_or(max);
    let mut grant = state
        .body_budget
        .try_reserve(tenant, want)
        .ok_or(BodyError::BudgetExhausted { want })?;
    let (parts, body) = req.into_parts();
    let seconds = state.cfg.request_body_timeout_seconds;
    let capacity = hint.exact().map_or(CHUNKED_START, |n| {
        usize::try_from(n).unwrap_or(CHUNKED_START)
    });
    let bytes = tokio::time::timeout(
        Duration::from_secs(seconds),
        read_whole(body, capacity, max),
    )
    .await
    .map_err(|_| BodyError::TimedOut { seconds })??;
    if json {
        let len = bytes.len() as u64;
        let values = json_values(&bytes);
        let extra = values.saturating_mul(JSON_VALUE_COST);
        let counted = len.saturating_add(extra);
        if counted > max {
            return Err(BodyError::TooManyValues {
                len,
                values,
                counted,
                max,
            });
        }
        // A chunked body reserved `max`, which may cover its values.
        let need = counted.saturating_sub(grant.bytes());
        if !grant.try_grow(need) {
            return Err(BodyError::BudgetExhausted { want: counted });
        }
    }
    Ok((Request::from_parts(parts, Body::from(bytes)), grant))
}

/// The whole body, at most `max` bytes.
async fn read_whole(body: Body, capacity: usize, max: u64) -> Result<Bytes, BodyError> {
    let mut buf = BytesMut::with_capacity(capacity);
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| BodyError::Unreadable {
            reason: e.to_string(),
        })?;
        if (buf.len() + chunk.len()) as u64 > max {
            return Err(BodyError::TooLarge { max });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Whether the body is declared JSON (`application/json`,
/// `application/*+json`): what the native API's JSON extractor insists on.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    let Some((kind, sub)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (sub.eq_ignore_ascii_case("json")
            || sub.len() > 5 && sub[sub.len() - 5..].eq_ignore_ascii_case("+json"))
}

/// An upper bound of the values (keys included) in a JSON text: each
/// value but the first follows a `,` or a `:`, or opens a container. A
/// text that is not JSON gets some count; its parser refuses it later.
pub fn json_values(text: &[u8]) -> u64 {
    let mut values = 1u64;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b',' | b':' | b'[' | b'{' => values += 1,
            _ => {}
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_values_are_counted_outside_strings() {
        assert_eq!(json_values(b"{}"), 2);
        assert_eq!(json_values(b"0"), 1);
        assert_eq!(json_values(b"[0,0,0]"), 4);
        // {"argv": ["a", "b"]}: the object, a key, the array, two strings.
        assert_eq!(json_values(br#"{"argv": ["a", "b"]}"#), 5);
        // Separators inside strings, escaped quotes and backslashes.
        assert_eq!(json_values(br#"["a,b:[{", "\",\\", "\\\\"]"#), 4);
        let many = format!("[{}0]", "0,".repeat(1000));
        assert_eq!(json_values(many.as_bytes()), 1002);
    }

    #[test]
    fn json_content_types() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(CONTENT_TYPE, v.parse().unwrap());
            m
        };
        for yes in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/problem+json",
        ] {
            assert!(is_json(&h(yes)), "{yes}");
        }
        for no in [
            "application/octet-stream",
            "text/json",
            "application/x-tar",
            "json",
        ] {
            assert!(!is_json(&h(no)), "{no}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }
}
