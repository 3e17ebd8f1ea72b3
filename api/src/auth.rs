//! Who is calling. Unix socket: the peer's credentials (root, the daemon's
//! own uid, or a member of the configured group) → tenant `default`. TCP:
//! a bearer token from the config → its tenant; with no tokens configured
//! (allowed on loopback only) clients act as tenant `default`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::{AppState, Tenant};

/// The tenant of callers without tokens (socket peers, loopback without
/// tokens).
pub const DEFAULT_TENANT: &str = "default";

/// The peer of a connection.
#[derive(Clone, Debug)]
pub enum Peer {
    Unix {
        uid: u32,
        gid: u32,
        pid: Option<i32>,
    },
    Tcp(SocketAddr),
}

impl
    axum::extract::connect_info::Connected<
        axum::serve::IncomingStream<'_, tokio::net::UnixListener>,
    > for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::UnixListener>) -> Peer {
        match stream.io().peer_cred() {
            Ok(c) => Peer::Unix {
                uid: c.uid(),
                gid: c.gid(),
                pid: c.pid(),
            },
            // Unknown credentials: treated as nobody.
            Err(_) => Peer::Unix {
                uid: u32::MAX,
                gid: u32::MAX,
                pid: None,
            },
        }
    }
}

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Peer {
        Peer::Tcp(*stream.remote_addr())
    }
}

/// Whether a Unix peer may use the socket.
fn unix_allowed(state: &AppState, uid: u32, gid: u32, pid: Option<i32>) -> bool {
    if uid == 0 || uid == nix::unistd::geteuid().as_raw() {
        return true;
    }
    let Some(group) = &state.cfg.socket_group else {
        return false;
    };
    let Ok(Some(g)) = nix::unistd::Group::from_name(group) else {
        return false;
    };
    if gid == g.gid.as_raw() {
        return true;
    }
    // Supplementary groups of the peer process.
    pid.and_then(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("Groups:")).map(|l| {
                l.split_whitespace()
                    .any(|x| x == g.gid.as_raw().to_string())
            })
        })
        .unwrap_or(false)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The tenant for a request, or 401.
pub fn authenticate(
    state: &AppState,
    peer: Option<&Peer>,
    auth: Option<&str>,
) -> Result<Tenant, ApiError> {
    match peer {
        Some(Peer::Unix { uid, gid, pid }) => {
            if unix_allowed(state, *uid, *gid, *pid) {
                Ok(Tenant(DEFAULT_TENANT.into()))
            } else {
                Err(ApiError::unauthorized(format!(
                    "uid {uid} may not use this socket (root or group {:?} only)",
                    state.cfg.socket_group.as_deref().unwrap_or("-")
                )))
            }
        }
        Some(Peer::Tcp(_)) | None => {
            if state.cfg.tokens.is_empty() {
                return Ok(Tenant(DEFAULT_TENANT.into()));
            }
            let token = auth
                .and_then(|h| {
                    h.strip_prefix("Bearer ")
                        .or_else(|| h.strip_prefix("bearer "))
                })
                .map(str::trim)
                .ok_or_else(|| {
                    ApiError::unauthorized("missing bearer token (Authorization: Bearer TOKEN)")
                })?;
            state
                .cfg
                .tokens
                .iter()
                .find(|t| constant_time_eq(t.token.as_bytes(), token.as_bytes()))
                .map(|t| Tenant(t.tenant.clone()))
                .ok_or_else(|| ApiError::unauthorized("invalid bearer token"))
        }
    }
}

/// Middleware: puts the caller's [`Tenant`] into the request or answers 401.
pub async fn require_tenant(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|c| c.0.clone());
    let auth = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Browsers cannot set headers on a WebSocket: `?token=` is accepted too.
    let query_token = req.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| format!("Bearer {v}"))
    });
    match authenticate(
        &state,
        peer.as_ref(),
        auth.as_deref().or(query_token.as_deref()),
    ) {
        Ok(t) => {
            req.extensions_mut().insert(t);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// Whether the caller is an operator (a socket peer, or anyone when no
/// tokens are configured): only they see daemon-wide figures.
pub fn is_operator(state: &AppState, peer: Option<&Peer>) -> bool {
    match peer {
        Some(Peer::Unix { .. }) => true,
        _ => state.cfg.tokens.is_empty(),
    }
}
