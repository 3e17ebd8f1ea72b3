//! The router without sockets (`tower::ServiceExt::oneshot`): auth, error
//! shapes, validation before any sandbox exists, the OpenAPI document.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use crate::config::{Config, TokenConfig};
use crate::engine::EngineConfig;
use crate::state::AppState;
use crate::store::Store;

fn state(tokens: bool) -> (Arc<AppState>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::default();
    if tokens {
        cfg.tokens = vec![TokenConfig {
            token: "0123456789abcdef-a".into(),
            tenant: "a".into(),
        }];
    }
    let engine = EngineConfig {
        // Never started by these tests: every request fails validation
        // before a sandbox would be made.
        exe: "/nonexistent/runtimed".into(),
        settings: crate::engine::host::HostSettings {
            landlock: true,
            uid_pool: sandbox::UidPoolConfig {
                base: 100_000_000,
                slot_size: 65536,
                slots: 16,
            },
            run_dir: dir.path().join("run"),
        },
        zygote: None,
        netns_pool: None,
    };
    let store = Store::open(&dir.path().join("db")).unwrap();
    let mut state = AppState::new(cfg, engine, store);
    assert!(state.set_operator_token(OPERATOR));
    (Arc::new(state), dir)
}

/// The operator token of these tests' daemon (tenant `default`).
const OPERATOR: &str = "operator-token-0123456789";
const OPERATOR_BEARER: &str = "Bearer operator-token-0123456789";
const TENANT_BEARER: &str = "Bearer 0123456789abcdef-a";

/// A request with any headers; the status and the JSON body.
async fn call_with(
    app: axum::Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, serde_json::Value) {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

async fn call(
    app: axum::Router,
    method: &str,
    uri: &str,
    body: &str,
    auth: Option<&str>,
) -> (StatusCode, serde_json::Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = app
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let v = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, v)
}

#[tokio::test]
async fn health_and_unknown_routes() {
    let (s, _d) = state(false);
    let (st, v) = call(crate::router(s.clone()), "GET", "/healthz", "", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["status"], "ok");
    let (st, v) = call(crate::router(s), "GET", "/v2/nothing", "", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(v["code"], "not_found");
}

#[tokio::test]
async fn tokens_are_required_when_configured() {
    let (s, _d) = state(true);
    let (st, v) = call(crate::router(s.clone()), "GET", "/v1/sessions", "", None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(v["code"], "unauthorized");
    let (st, _) = call(
        crate::router(s.clone()),
        "GET",
        "/v1/sessions",
        "",
        Some("Bearer nope-nope-nope-nope"),
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, v) = call(
        crate::router(s.clone()),
        "GET",
        "/v1/sessions",
        "",
        Some("Bearer 0123456789abcdef-a"),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["sessions"], serde_json::json!([]));
    // Metrics are for operators only once tokens exist.
    let (st, v) = call(
        crate::router(s),
        "GET",
        "/metrics",
        "",
        Some("Bearer 0123456789abcdef-a"),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
}

#[tokio::test]
#[ignore = "privileged: without root the engine answers 503"]
async fn bad_requests_fail_before_any_sandbox() {
    let (s, _d) = state(false);
    for (body, code) in [
        ("{", "invalid_request"),
        (r#"{"unknown": 1}"#, "invalid_request"),
        (r#"{"limits": {"memory": 1}}"#, "limit_out_of_range"),
        (r#"{"limits": {"disk": "9999G"}}"#, "limit_out_of_range"),
        (r#"{"limits": {"cpus": 1000}}"#, "limit_out_of_range"),
        (r#"{"ttl_seconds": 99999999}"#, "limit_out_of_range"),
        (r#"{"labels": {"": "x"}}"#, "invalid_request"),
        (r#"{"image": "debian"}"#, "image_not_found"),
    ] {
        let (st, v) = call(
            crate::router(s.clone()),
            "POST",
            "/v1/sessions",
            body,
            Some(OPERATOR_BEARER),
        )
        .await;
        assert!(st.is_client_error(), "{body}: {st}");
        assert_eq!(v["code"], code, "{body}: {v}");
    }
    let (st, v) = call(
        crate::router(s.clone()),
        "POST",
        "/v1/sessions/x/exec",
        r#"{"argv":["true"]}"#,
        Some(OPERATOR_BEARER),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(v["code"], "session_not_found");
    assert_eq!(s.active(), 0);
}

#[tokio::test]
async fn nothing_without_a_token_and_operators_by_token() {
    let (s, _d) = state(true);
    let app = crate::router(s);
    // No token: nothing but the public routes.
    for (method, uri) in [
        ("GET", "/v1/sessions"),
        ("POST", "/v1/sessions"),
        ("POST", "/v1/run"),
        ("GET", "/metrics"),
        ("GET", "/v1/images"),
        ("DELETE", "/v1/images/x"),
        ("GET", "/v1/judge/languages"),
    ] {
        let (st, v) = call_with(app.clone(), method, uri, &[]).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{method} {uri}: {v}");
        assert_eq!(v["code"], "unauthorized", "{method} {uri}: {v}");
    }
    assert_eq!(
        call_with(app.clone(), "GET", "/healthz", &[]).await.0,
        StatusCode::OK
    );
    // Metrics and image changes: the operator token yes, a tenant's no.
    let (st, _) = call_with(
        app.clone(),
        "GET",
        "/metrics",
        &[("authorization", OPERATOR_BEARER)],
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = call_with(
        app.clone(),
        "GET",
        "/metrics",
        &[("authorization", TENANT_BEARER)],
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (st, v) = call_with(
        app.clone(),
        "DELETE",
        "/v1/images/x",
        &[("authorization", OPERATOR_BEARER)],
    )
    .await;
    assert_ne!(st, StatusCode::FORBIDDEN, "{v}");
    assert_ne!(st, StatusCode::UNAUTHORIZED, "{v}");
    let (st, _) = call_with(
        app.clone(),
        "DELETE",
        "/v1/images/x",
        &[("authorization", TENANT_BEARER)],
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // Another scheme than Bearer is refused, not ignored.
    let (st, v) = call_with(
        app.clone(),
        "GET",
        "/v1/sessions",
        &[("authorization", "Basic b3BlcmF0b3I6eA==")],
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
}

#[tokio::test]
async fn a_query_token_is_taken_on_a_websocket_upgrade_only() {
    let (s, _d) = state(true);
    let app = crate::router(s);
    let q = format!("?token={OPERATOR}");
    // Not on a plain request: 401, and it says why.
    for (method, uri) in [
        ("GET", format!("/v1/sessions{q}")),
        ("GET", format!("/metrics{q}")),
        ("GET", format!("/v1/sessions/s-1/pty{q}")),
    ] {
        let (st, v) = call_with(app.clone(), method, &uri, &[]).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{uri}: {v}");
        assert!(v["message"].as_str().unwrap().contains("WebSocket"), "{v}");
    }
    // On an upgrade it authenticates: the request gets as far as the
    // session lookup (404), not 401.
    let upgrade = [
        ("connection", "upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    let (st, v) = call_with(
        app.clone(),
        "GET",
        &format!("/v1/sessions/s-1/pty{q}"),
        &upgrade,
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("session_not_found")),
        "{v}"
    );
    let (st, _) = call_with(
        app.clone(),
        "GET",
        "/v1/sessions/s-1/pty?token=wrong-wrong-wrong-0",
        &upgrade,
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = call_with(app, "GET", "/v1/sessions/s-1/pty", &upgrade).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}

/// `docs/openapi.json` is the generated document, checked in; regenerate
/// with `UPDATE_OPENAPI=1 cargo test -p api openapi`.
#[test]
fn openapi_document_is_checked_in_and_current() {
    let doc = serde_json::to_string_pretty(&crate::openapi::document()).unwrap() + "\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &doc).unwrap();
    }
    let checked = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked == doc,
        "docs/openapi.json is stale: run UPDATE_OPENAPI=1 cargo test -p api openapi"
    );
    let v: serde_json::Value = serde_json::from_str(&doc).unwrap();
    for p in [
        "/v1/sessions",
        "/v1/sessions/{id}/exec",
        "/v1/sessions/{id}/pty",
        "/v1/run",
        "/v1/sessions/{id}/files/{path}",
    ] {
        assert!(v["paths"].get(p).is_some(), "{p} missing from the document");
    }
    assert!(v["components"]["schemas"].get("ExecResult").is_some());
}

/// Answers no handler of ours wrote (axum's rejections, the 405 of a
/// route) leave in the `{code, message}` shape; headers stay.
#[tokio::test]
async fn router_rejections_are_json() {
    let (s, _d) = state(true);
    let resp = crate::router(s.clone())
        .oneshot(
            Request::builder()
                .method("PATCH")
                .uri("/v1/sessions")
                .header("authorization", "Bearer 0123456789abcdef-a")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(resp.headers().contains_key("allow"));
    let v: serde_json::Value = serde_json::from_slice(
        &axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(v["code"], "method_not_allowed", "{v}");
    for uri in ["/v1/sessions/%FF", "/v1/sessions/x/files/%C3%28"] {
        let bearer = Some("Bearer 0123456789abcdef-a");
        let (st, v) = call(crate::router(s.clone()), "GET", uri, "", bearer).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(v["code"], "invalid_request", "{uri}: {v}");
    }
}

/// A body that fails while it is read (the client went away, a bad
/// chunk) is a broken request, 400, not 413.
#[tokio::test]
async fn a_body_that_breaks_is_400() {
    let (s, _d) = state(true);
    let chunks: Vec<Result<&'static [u8], std::io::Error>> = vec![
        Ok(&b"{\"ttl_seconds\":"[..]),
        Err(std::io::Error::other("connection closed")),
    ];
    let resp = crate::router(s.clone())
        .oneshot(
            Request::builder()
                .method("POST")
                .uri("/v1/sessions")
                .header("content-type", "application/json")
                .header("authorization", "Bearer 0123456789abcdef-a")
                .body(Body::from_stream(futures_util::stream::iter(chunks)))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let v: serde_json::Value = serde_json::from_slice(
        &axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(v["code"], "invalid_request", "{v}");
    assert_eq!(s.active(), 0);
}

/// The last line of defense: a message that names the data dir (a
/// handler that forgot to map its error) leaves with a placeholder.
#[tokio::test]
async fn host_paths_are_scrubbed_from_every_error() {
    use axum::routing::get;
    let (s, _d) = state(false);
    let data = s.cfg.data_dir.display().to_string();
    let leak = format!("open {data}/images/tmp/blob-1: I/O error");
    let app = axum::Router::new()
        .route(
            "/leak",
            get(move || {
                let leak = leak.clone();
                async move { crate::error::ApiError::invalid(leak) }
            }),
        )
        .layer(axum::middleware::from_fn_with_state(
            s.host_paths.clone(),
            crate::error::error_bodies,
        ))
        .with_state(s);
    let (st, v) = call(app, "GET", "/leak", "", None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(v["code"], "invalid_request");
    let message = v["message"].as_str().unwrap();
    assert!(!message.contains(&data), "{message}");
    assert_eq!(message, "open <data-dir>: I/O error");
}

/// A handler that panics answers 500 `internal_error` (the panic itself
/// goes to the daemon's log) instead of dropping the connection.
#[tokio::test]
async fn a_panicking_handler_answers_500_json() {
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/boom",
            get(|| async {
                if std::hint::black_box(true) {
                    panic!("boom");
                }
                ""
            }),
        )
        .layer(axum::middleware::from_fn(crate::error::catch_panic));
    let (st, v) = call(app, "GET", "/boom", "", None).await;
    assert_eq!(st, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(v["code"], "internal_error");
    assert_eq!(v["message"], crate::error::INTERNAL_MESSAGE);
}
