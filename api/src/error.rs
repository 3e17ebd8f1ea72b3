//! `ApiError`: every failure of a request as an HTTP status and a JSON body
//! `{code, message}` with a stable machine code, and the middleware that
//! keeps that promise for the answers no handler of ours wrote (axum's
//! extractor rejections, method not allowed, a panic) and keeps host paths
//! out of every message.
//!
//! A failure of the daemon or the host (5xx `internal_error`,
//! `sandbox_failed`) answers with a generic message; its detail (which
//! names host paths, pids, errnos) goes to the daemon's log, as web
//! servers do: a client learns that it failed, an operator learns why.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// What the daemon's log gets and the client does not (host paths,
    /// errnos of a failure that is not the client's).
    pub detail: Option<String>,
    /// Seconds for a `Retry-After` header (a budget that is full now).
    pub retry_after: Option<u64>,
}

/// The error body.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable machine code, e.g. `session_not_found` (docs/api.md lists
    /// them all).
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}

/// The message of every `internal_error`.
pub const INTERNAL_MESSAGE: &str = "internal error of the daemon (its log has the details)";

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            detail: None,
            retry_after: None,
        }
    }

    /// Asks the client to try again in `seconds` (`Retry-After`).
    pub fn with_retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after = Some(seconds);
        self
    }

    /// Adds what only the daemon's log gets.
    pub fn with_detail(mut self, detail: impl std::fmt::Display) -> ApiError {
        self.detail = Some(detail.to_string());
        self
    }

    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn limit(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "limit_out_of_range", message)
    }

    pub fn session_not_found(id: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "session_not_found",
            format!("no session {id:?}"),
        )
    }

    /// A failure of the daemon or the host: `detail` is logged, the client
    /// gets [`INTERNAL_MESSAGE`].
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            INTERNAL_MESSAGE,
        )
        .with_detail(detail)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn quota(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "quota_exceeded", message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Logged once, here, where the failure becomes an answer (inside
        // the request's span: method and path).
        if let Some(detail) = &self.detail {
            tracing::error!(status = self.status.as_u16(), code = self.code, %detail, "request failed");
        }
        let body = ErrorBody {
            code: self.code.to_string(),
            message: self.message,
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

impl From<crate::workspace::WorkspaceError> for ApiError {
    fn from(e: crate::workspace::WorkspaceError) -> ApiError {
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        if matches!(e, crate::workspace::WorkspaceError::Busy) {
            return ApiError::new(status, e.code(), e.to_string()).with_retry_after(1);
        }
        if status.is_server_error() {
            return ApiError::new(status, e.code(), "i/o error in the workspace").with_detail(e);
        }
        ApiError::new(status, e.code(), e.to_string())
    }
}

/// JSON body extraction whose failures are `ApiError`s (axum's own
/// rejections are plain text).
pub struct Json<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for Json<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rej) => Err(rejection(rej.status(), rej.body_text())),
        }
    }
}

/// An axum rejection (or any answer of ours that is not JSON) as an
/// `ApiError`, by its status. Reading the body fails with 413 only for the
/// length limit; a truncated body or a malformed chunk is the client's
/// broken request (axum answers those 400 already, and so do we).
fn rejection(status: StatusCode, text: String) -> ApiError {
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::NOT_FOUND => "not_found",
        s if s.is_server_error() => return ApiError::internal(text),
        // axum's JSON data errors are 422: one code for every malformed
        // request, as for the ones we check ourselves.
        _ => "invalid_request",
    };
    let status = if status == StatusCode::UNPROCESSABLE_ENTITY || !status.is_client_error() {
        StatusCode::BAD_REQUEST
    } else {
        status
    };
    ApiError::new(status, code, text)
}

/// The router's answer to a method a route does not serve (axum's
/// default is an empty 405); axum adds the `Allow` header.
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{method} is not served on {} (the Allow header lists what is)",
            uri.path()
        ),
    )
}

/// Largest error body the middleware reads back (ours are a few hundred
/// bytes; axum's rejections less).
const MAX_ERROR_BODY: usize = 64 << 10;

/// Middleware over the native API: every 4xx/5xx answer leaves as
/// `{code, message}` JSON (axum's rejections of a path, query or body,
/// written before any handler of ours runs, are plain text), and no
/// message names a host path of the daemon (the data dir, the run dir):
/// a handler that let one through is logged so it can be fixed at its
/// source, and the client sees a placeholder. Headers (`Allow`,
/// `Retry-After`) are kept.
pub async fn error_bodies(
    State(host_paths): State<Arc<HostPaths>>,
    req: Request,
    next: Next,
) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let bytes = match axum::body::to_bytes(body, MAX_ERROR_BODY).await {
        Ok(b) => b,
        Err(e) => return ApiError::internal(format!("error body unreadable: {e}")).into_response(),
    };
    let err = match is_json.then(|| serde_json::from_slice::<ErrorBody>(&bytes)) {
        // Ours: only its message may need a scrub.
        Some(Ok(body)) => {
            tracing::debug!(code = %body.code, "error answer");
            let scrubbed = host_paths.scrub(&body.message);
            if scrubbed == body.message {
                return Response::from_parts(parts, bytes.into());
            }
            tracing::warn!(code = %body.code, message = %body.message, "a host path in an error message (hidden from the client)");
            ErrorBody {
                code: body.code,
                message: scrubbed,
            }
        }
        // Some other JSON shape (none today): left as it is.
        Some(Err(_)) => return Response::from_parts(parts, bytes.into()),
        None => {
            let text = String::from_utf8_lossy(&bytes);
            let text = match text.trim() {
                "" => status.canonical_reason().unwrap_or("error").to_string(),
                t => t.to_string(),
            };
            let e = rejection(status, text);
            if let Some(detail) = &e.detail {
                tracing::error!(status = status.as_u16(), %detail, "request failed");
            }
            parts.status = e.status;
            ErrorBody {
                code: e.code.to_string(),
                message: host_paths.scrub(&e.message),
            }
        }
    };
    let json = serde_json::to_vec(&err).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, json.into())
}

/// Middleware: a panic in a handler answers 500 `internal_error` (the
/// panic itself is printed by the panic hook, in the daemon's log) instead
/// of dropping the connection.
pub async fn catch_panic(req: Request, next: Next) -> Response {
    use futures_util::FutureExt;
    match std::panic::AssertUnwindSafe(next.run(req))
        .catch_unwind()
        .await
    {
        Ok(resp) => resp,
        Err(_) => ApiError::internal("a handler panicked").into_response(),
    }
}

/// Host directories of the daemon that no client message may name.
#[derive(Debug, Default, Clone)]
pub struct HostPaths(Vec<(String, &'static str)>);

impl HostPaths {
    /// `data_dir` and `run_dir`, as configured and resolved.
    pub fn new(data_dir: &Path, run_dir: &Path) -> HostPaths {
        let mut v = Vec::new();
        for (dir, name) in [(data_dir, "<data-dir>"), (run_dir, "<run-dir>")] {
            let resolved = std::fs::canonicalize(dir).unwrap_or_else(|_| PathBuf::from(dir));
            for p in [dir.to_path_buf(), resolved] {
                let s = p.display().to_string();
                let s = s.trim_end_matches('/').to_string();
                // `/` or `.` would hide everything.
                if s.len() > 1 && s != "." && !v.iter().any(|(x, _)| *x == s) {
                    v.push((s, name));
                }
            }
        }
        // Longest first: a run dir inside the data dir is named as such.
        v.sort_by_key(|(dir, _)| std::cmp::Reverse(dir.len()));
        HostPaths(v)
    }

    /// `text` with every known host directory (and what is below it)
    /// replaced by its placeholder.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (dir, name) in &self.0 {
            while let Some(at) = out.find(dir.as_str()) {
                // The whole path: up to the next blank, quote or `: ` (messages
                // are "PATH: what failed").
                let end = out[at..]
                    .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | ',' | ':'))
                    .map_or(out.len(), |n| at + n);
                out.replace_range(at..end, name);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_hides_host_dirs_and_what_is_below() {
        let p = HostPaths::new(Path::new("/srv/rt-data/"), Path::new("/run/runtimed"));
        assert_eq!(
            p.scrub("import: /srv/rt-data/images/tmp/blob-12: not a tar"),
            "import: <data-dir>: not a tar"
        );
        assert_eq!(
            p.scrub("a \"/run/runtimed/x\" and /srv/rt-data"),
            "a \"<run-dir>\" and <data-dir>"
        );
        assert_eq!(p.scrub("no path here"), "no path here");
        // `/` as a data dir must not swallow every message.
        let root = HostPaths::new(Path::new("/"), Path::new("/"));
        assert_eq!(root.scrub("/etc/passwd"), "/etc/passwd");
    }

    #[test]
    fn body_errors_are_413_only_for_the_length_limit() {
        assert_eq!(
            rejection(StatusCode::PAYLOAD_TOO_LARGE, "x".into()).code,
            "body_too_large"
        );
        let truncated = rejection(StatusCode::BAD_REQUEST, "x".into());
        assert_eq!(
            (truncated.status, truncated.code),
            (StatusCode::BAD_REQUEST, "invalid_request")
        );
        let data = rejection(StatusCode::UNPROCESSABLE_ENTITY, "x".into());
        assert_eq!(data.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn internal_errors_keep_their_detail_from_the_client() {
        let e = ApiError::internal("open /var/lib/runtimed/x: EIO");
        assert_eq!(e.message, INTERNAL_MESSAGE);
        assert!(e.detail.as_deref().is_some_and(|d| d.contains("/var/lib")));
    }
}

/// Every code the native API can answer is in docs/api.md's table: the
/// codes are read from the source (`StatusCode::X, "code"` and
/// `StatusCode::X => "code"` pairs, the workspace's `code()`), so a new
/// one fails here until it is documented.
#[cfg(test)]
mod documented_codes {
    use std::path::Path;

    fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            // Judge0's errors are Judge0's shapes (docs/judge0.md).
            if p.is_dir() && !p.ends_with("judge0") {
                sources(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("tests.rs") {
                // Test modules (at the end of a file) answer nobody.
                let text = std::fs::read_to_string(&p).unwrap();
                let code = text.split("#[cfg(test)]").next().unwrap_or("");
                out.push((p.display().to_string(), code.to_string()));
            }
        }
    }

    /// The snake_case literal right after `StatusCode::NAME` and `,` or
    /// `=>`, or after `=>` in the workspace's `fn code`.
    fn codes_in(text: &str) -> Vec<String> {
        let literal = |rest: &str| -> Option<String> {
            let rest = rest.trim_start();
            let rest = rest.strip_prefix(',').or_else(|| rest.strip_prefix("=>"))?;
            let rest = rest.trim_start().strip_prefix('"')?;
            let code = &rest[..rest.find('"')?];
            let snake = !code.is_empty()
                && code
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            snake.then(|| code.to_string())
        };
        let mut out = Vec::new();
        for (at, _) in text.match_indices("StatusCode::") {
            let rest = &text[at + "StatusCode::".len()..];
            let name_end = rest
                .find(|c: char| !(c.is_ascii_uppercase() || c == '_'))
                .unwrap_or(rest.len());
            out.extend(literal(&rest[name_end..]));
        }
        if let Some(at) = text.find("pub fn code(&self) -> &'static str") {
            let body = &text[at..];
            let body = &body[..body.find("\n    }\n").unwrap_or(body.len())];
            for (i, _) in body.match_indices("=>") {
                out.extend(literal(&body[i..]));
            }
        }
        out
    }

    #[test]
    fn every_code_is_in_the_docs_table() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let docs = std::fs::read_to_string(root.join("../docs/api.md")).unwrap();
        let table = &docs[docs.find("## Errors").expect("an Errors section")..];
        let mut files = Vec::new();
        sources(&root.join("src"), &mut files);
        let mut seen = 0;
        let mut missing = Vec::new();
        for (file, text) in &files {
            for code in codes_in(text) {
                seen += 1;
                if !table.contains(&format!("`{code}`")) {
                    missing.push(format!("{code} ({file})"));
                }
            }
        }
        // The scan itself must find the codes (a broken scan passes).
        assert!(seen > 30, "only {seen} codes found in the source");
        assert!(
            missing.is_empty(),
            "codes missing from docs/api.md's Errors table: {missing:?}"
        );
    }
}
