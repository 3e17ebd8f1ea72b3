//! Terminals over WebSocket. Binary frames carry raw terminal bytes both
//! ways; text frames carry JSON control messages: from the client
//! `{"type":"resize","cols":N,"rows":N}`, from the server
//! `{"type":"exit","code":N}` (then the socket closes). Works with xterm.js
//! and its attach addon (which sends keystrokes as text frames: a text
//! frame that is not a control message is terminal input).

use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;

use crate::auth::Tenant;
use crate::engine::pty::Pty;
use crate::error::{ApiError, ErrorBody};
use crate::state::{AppState, Session};
use crate::types::{rfc3339, PtyInfo, PtyList};

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Control {
    Resize { cols: u16, rows: u16 },
}

fn default_argv() -> Vec<String> {
    vec![
        "/bin/sh".into(),
        "-c".into(),
        "if [ -x /bin/bash ]; then exec /bin/bash -l; else exec /bin/sh -l; fi".into(),
    ]
}

fn size_of(v: Option<&String>, name: &str, default: u16) -> Result<u16, ApiError> {
    match v {
        None => Ok(default),
        Some(s) => s
            .parse::<u16>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::invalid(format!("{name}: 1..1000"))),
    }
}

/// Open a new terminal in the session (WebSocket). Query: `cols`, `rows`,
/// `argv` (repeatable; default a login shell), `pty_id` (optional name).
#[utoipa::path(get, path = "/v1/sessions/{id}/pty",
    params(("id" = String, Path),
        ("cols" = Option<u16>, Query, minimum = 1, maximum = 1000),
        ("rows" = Option<u16>, Query, minimum = 1, maximum = 1000),
        ("argv" = Option<String>, Query, description = "repeatable"),
        ("pty_id" = Option<String>, Query, description = "name of the new terminal")),
    responses((status = 101, description = "WebSocket"),
        (status = 400, body = ErrorBody, description = "websocket_required, invalid_request, spawn_failed (the program cannot be started)"),
        (status = 404, body = ErrorBody, description = "session_not_found"),
        (status = 409, body = ErrorBody, description = "pty_exists, session_not_running"),
        (status = 429, body = ErrorBody, description = "too_many_ptys")))]
pub async fn open(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let session = state.get(&tenant, &id)?;
    let sb = session.running()?.clone();
    let ws = ws.map_err(upgrade_required)?;
    let q = q.unwrap_or_default();
    let pairs: Vec<(String, String)> = form_urlencoded::parse(q.as_bytes()).into_owned().collect();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v);
    let cols = size_of(get("cols"), "cols", 80)?;
    let rows = size_of(get("rows"), "rows", 24)?;
    let mut argv: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "argv")
        .map(|(_, v)| v.clone())
        .collect();
    if argv.is_empty() {
        argv = default_argv();
    }
    if argv.iter().any(|a| a.contains('\0')) || argv[0].is_empty() {
        return Err(ApiError::invalid("argv: invalid"));
    }
    // A client may name the terminal (to reattach to it later without
    // asking the list); otherwise it is `p1`, `p2`, ...
    let chosen = match get("pty_id") {
        Some(name) => {
            if name.is_empty()
                || name.len() > 64
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(ApiError::invalid("pty_id: 1-64 of [A-Za-z0-9_-]"));
            }
            if session
                .ptys
                .lock()
                .is_ok_and(|m| m.contains_key(name.as_str()))
            {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "pty_exists",
                    format!("session {id} already has a terminal {name:?}"),
                ));
            }
            Some(name.clone())
        }
        None => None,
    };
    // Each terminal holds its scrollback and a reader: a session has a
    // bounded number (checked again, atomically, when it is added).
    let max = state.cfg.max_ptys_per_session;
    if session.ptys.lock().is_ok_and(|m| m.len() >= max) {
        return Err(too_many_ptys(&id, max));
    }
    let env = session.process_env(&Default::default(), true);
    let spawned = sb
        .spawn(
            argv.clone(),
            env,
            "/workspace".into(),
            Some((rows, cols)),
            None,
            // A terminal stays in the session's cgroup: it has no report
            // to account for.
            &[],
        )
        .await
        .map_err(spawn_error)?;
    let n = session
        .next_pty
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let pty_id = chosen.unwrap_or_else(|| format!("p{n}"));
    let pty = Pty::start(
        pty_id.clone(),
        argv,
        (rows, cols),
        spawned,
        crate::types::now_unix(),
    )
    .map_err(|e| ApiError::internal(format!("pty: {e}")))?;
    let added = match session.ptys.lock() {
        Ok(mut m) if m.len() < max && !m.contains_key(&pty_id) => {
            m.insert(pty_id.clone(), pty.clone());
            Ok(())
        }
        Ok(m) if m.contains_key(&pty_id) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "pty_exists",
            format!("session {id} already has a terminal {pty_id:?}"),
        )),
        _ => Err(too_many_ptys(&id, max)),
    };
    if let Err(e) = added {
        // Lost a race with another open: this terminal never existed.
        pty.kill(&sb).await;
        return Err(e);
    }
    session.touch();
    Ok(limit_messages(ws, &state).on_upgrade(move |socket| bridge(socket, pty, session)))
}

fn too_many_ptys(id: &str, max: usize) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_ptys",
        format!(
            "session {id} has {max} terminals (max_ptys_per_session); delete one first (DELETE /v1/sessions/{id}/ptys/PTY_ID)"
        ),
    )
}

/// A client's messages and frames are bounded (tungstenite's default
/// would let one message be 64 MiB, held whole in the daemon).
fn limit_messages(ws: WebSocketUpgrade, state: &AppState) -> WebSocketUpgrade {
    let n = state.cfg.ws_max_message_bytes;
    ws.max_message_size(n).max_frame_size(n)
}

/// Reattach to a terminal: the scrollback first, then live output.
#[utoipa::path(get, path = "/v1/sessions/{id}/ptys/{pty_id}", params(("id" = String, Path), ("pty_id" = String, Path)),
    responses((status = 101, description = "WebSocket"),
        (status = 400, body = ErrorBody, description = "websocket_required"),
        (status = 404, body = ErrorBody, description = "session_not_found, pty_not_found"),
        (status = 409, body = ErrorBody, description = "session_not_running")))]
pub async fn attach(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Tenant>,
    Path((id, pty_id)): Path<(String, String)>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let session = state.get(&tenant, &id)?;
    session.running()?;
    let pty = find(&session, &pty_id)?;
    let ws = ws.map_err(upgrade_required)?;
    session.touch();
    Ok(limit_messages(ws, &state).on_upgrade(move |socket| bridge(socket, pty, session)))
}

/// The program could not be started (a missing or not executable
/// `argv[0]`, the session's pids limit): 400 `spawn_failed`; a session
/// that ended meanwhile: 409 as for every other call on it.
fn spawn_error(e: crate::engine::session::SpawnError) -> ApiError {
    use crate::engine::session::SpawnError;
    match e {
        SpawnError::Failed(f) => {
            ApiError::new(StatusCode::BAD_REQUEST, "spawn_failed", f.to_string())
        }
        SpawnError::SessionGone => ApiError::new(
            StatusCode::CONFLICT,
            "session_not_running",
            "the session has ended",
        ),
    }
}

fn upgrade_required(r: WebSocketUpgradeRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "websocket_required",
        format!("this endpoint is a WebSocket: {}", r.body_text()),
    )
}

fn find(session: &Session, pty_id: &str) -> Result<Arc<Pty>, ApiError> {
    session
        .ptys
        .lock()
        .ok()
        .and_then(|m| m.get(pty_id).cloned())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "pty_not_found",
                format!("no terminal {pty_id:?} in session {}", session.id),
            )
        })
}

/// The session's terminals.
#[utoipa::path(get, path = "/v1/sessions/{id}/ptys", params(("id" = String, Path)),
    responses((status = 200, body = PtyList), (status = 404, body = ErrorBody, description = "session_not_found")))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
) -> Result<axum::Json<PtyList>, ApiError> {
    let session = state.get(&tenant, &id)?;
    let mut ptys: Vec<PtyInfo> = session
        .ptys
        .lock()
        .map(|m| {
            m.values()
                .map(|p| {
                    let (rows, cols) = p.size();
                    PtyInfo {
                        id: p.id.clone(),
                        argv: p.argv.clone(),
                        created_at: rfc3339(p.created_at),
                        attached: p.attached(),
                        rows,
                        cols,
                        exit_code: p.exit_code(),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    ptys.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(axum::Json(PtyList { ptys }))
}

/// End a terminal's process and forget it.
#[utoipa::path(delete, path = "/v1/sessions/{id}/ptys/{pty_id}", params(("id" = String, Path), ("pty_id" = String, Path)),
    responses((status = 204, description = "ended"), (status = 404, body = ErrorBody, description = "session_not_found, pty_not_found")))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Tenant>,
    Path((id, pty_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let session = state.get(&tenant, &id)?;
    let pty = find(&session, &pty_id)?;
    if let Some(sb) = &session.sandbox {
        pty.kill(sb).await;
    }
    if let Ok(mut m) = session.ptys.lock() {
        m.remove(&pty_id);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Moves bytes between one WebSocket and a terminal until either ends.
async fn bridge(socket: WebSocket, pty: Arc<Pty>, session: Arc<Session>) {
    let _guard = pty.attached_guard();
    let (mut tx, mut rx) = socket.split();
    let (scrollback, mut live) = pty.attach();
    if !scrollback.is_empty() && tx.send(Message::Binary(scrollback.into())).await.is_err() {
        return;
    }
    let mut exit = pty.exit_watch();
    if let Some(code) = pty.exit_code() {
        let msg = serde_json::json!({"type": "exit", "code": code}).to_string();
        let _ = tx.send(Message::Text(msg.into())).await;
        let _ = tx.send(Message::Close(None)).await;
        return;
    }
    loop {
        tokio::select! {
            msg = rx.next() => {
                let Some(Ok(msg)) = msg else { return };
                session.touch();
                match msg {
                    Message::Binary(b) if pty.write(&b).await.is_err() => return,
                    Message::Binary(_) => {}
                    Message::Text(t) => {
                        match serde_json::from_str::<Control>(t.as_str()) {
                            Ok(Control::Resize { cols, rows }) => {
                                if (1..=1000).contains(&cols) && (1..=1000).contains(&rows) {
                                    let _ = pty.resize(rows, cols);
                                }
                            }
                            // Not a control message: keystrokes (xterm.js's
                            // attach addon sends text frames).
                            Err(_) => {
                                if pty.write(t.as_bytes()).await.is_err() { return; }
                            }
                        }
                    }
                    Message::Close(_) => return,
                    _ => {}
                }
            }
            out = live.recv() => {
                match out {
                    Ok(bytes) => {
                        if tx.send(Message::Binary(bytes)).await.is_err() { return; }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
            changed = exit.changed() => {
                if changed.is_ok() && pty.exit_code().is_none() {
                    continue;
                }
                // Deliver what is still queued, then the exit message.
                while let Ok(bytes) = live.try_recv() {
                    if tx.send(Message::Binary(bytes)).await.is_err() { return; }
                }
                let code = pty.exit_code().unwrap_or(-1);
                let msg = serde_json::json!({"type": "exit", "code": code}).to_string();
                let _ = tx.send(Message::Text(msg.into())).await;
                let _ = tx.send(Message::Close(None)).await;
                return;
            }
        }
    }
}
