//! Who is calling, and what they may do. One check per listener kind:
//!
//! - Unix socket: the peer's credentials as the kernel recorded them at
//!   connect(2), read once per connection when it is accepted (uid and gid
//!   from `SO_PEERCRED`, supplementary groups from `SO_PEERGROUPS`; never
//!   `/proc/<pid>`, which a reused pid could answer). Root, the daemon's own
//!   uid and members of `socket_group` are operators of tenant `default`.
//! - TCP: nothing without a bearer token. The operator token (`token`, in
//!   the data dir, 0600) acts as tenant `default` with a socket peer's
//!   rights; a configured tenant token acts as its tenant, without them.
//!   `?token=` is taken only on a WebSocket upgrade, whose headers a
//!   browser cannot set. Before any of that, [`origin`] refuses a `Host`
//!   that is not the listener's and an `Origin` that is not allowed.

pub mod origin;
pub mod token;

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::Config;
use crate::error::ApiError;
use token::{Holder, TokenTable};

/// The tenant of socket peers and of the operator token.
pub const DEFAULT_TENANT: &str = "default";

/// The peer of a connection, taken when it was accepted.
#[derive(Clone, Debug)]
pub enum Peer {
    Unix {
        uid: u32,
        gid: u32,
        /// Supplementary groups at connect(2).
        groups: Arc<[u32]>,
    },
    Tcp {
        remote: SocketAddr,
        /// The address the client connected to (the listener's, or one of
        /// the host's for a wildcard listener).
        local: Option<SocketAddr>,
    },
}

impl Peer {
    /// The peer of an accepted Unix-socket connection.
    pub fn of_unix(io: &tokio::net::UnixStream) -> Peer {
        // Unknown credentials: treated as nobody, without groups.
        let (uid, gid) = io
            .peer_cred()
            .map(|c| (c.uid(), c.gid()))
            .unwrap_or((u32::MAX, u32::MAX));
        let groups = sandbox::peer::peer_groups(io.as_fd()).unwrap_or_else(|e| {
            tracing::warn!(error = %e, uid, "socket peer: SO_PEERGROUPS failed; no supplementary groups");
            Vec::new()
        });
        Peer::Unix {
            uid,
            gid,
            groups: groups.into(),
        }
    }

    /// The peer of an accepted TCP connection.
    pub fn of_tcp(io: &tokio::net::TcpStream, remote: SocketAddr) -> Peer {
        Peer::Tcp {
            remote,
            local: io.local_addr().ok(),
        }
    }
}

/// Who is asking (from the socket's peer credentials or a bearer token):
/// the tenant every quota, session and submission belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant(pub String);

/// What the daemon needs to know about callers, made once from the config
/// (and the operator token's file) before anything listens.
pub struct Policy {
    tokens: TokenTable,
    daemon_uid: u32,
    socket_group: Option<(String, Option<u32>)>,
    /// The TCP listeners' `Host` and `Origin` rules.
    pub hosts: origin::HostRules,
}

impl Policy {
    /// The tenant tokens, `socket_group` (looked up now) and the host
    /// rules of `cfg`. The operator token is added by the daemon once it
    /// has read or made its file ([`Policy::set_operator_token`]).
    pub fn from_config(cfg: &Config) -> Policy {
        let mut tokens = TokenTable::default();
        for t in &cfg.tokens {
            tokens.add(&t.token, Holder::Tenant(t.tenant.clone()));
        }
        let socket_group = cfg.socket_group.as_ref().map(|name| {
            let gid = nix::unistd::Group::from_name(name)
                .ok()
                .flatten()
                .map(|g| g.gid.as_raw());
            (name.clone(), gid)
        });
        Policy {
            tokens,
            daemon_uid: nix::unistd::geteuid().as_raw(),
            socket_group,
            hosts: origin::HostRules::new(&cfg.allowed_hosts, &cfg.allowed_origins),
        }
    }

    pub fn set_operator_token(&mut self, token: &str) {
        self.tokens.add(token, Holder::Operator);
    }

    /// Whether a Unix peer with these credentials may use the socket.
    fn unix_allowed(&self, uid: u32, gid: u32, groups: &[u32]) -> bool {
        if uid == 0 || uid == self.daemon_uid {
            return true;
        }
        match &self.socket_group {
            Some((_, Some(g))) => gid == *g || groups.contains(g),
            _ => false,
        }
    }
}

/// The authenticated caller, put into the request's extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub tenant: Tenant,
    /// Operators (socket peers, the operator token) see daemon-wide
    /// figures and change the shared images.
    pub operator: bool,
}

/// The caller of a request from `peer` presenting `token` (TCP only; the
/// socket's peers need none), or 401. `None` for the peer (no connection
/// info: a router driven without a listener) is held to TCP's rules.
pub fn authenticate(
    policy: &Policy,
    peer: Option<&Peer>,
    token: Option<&str>,
) -> Result<Caller, ApiError> {
    if let Some(Peer::Unix { uid, gid, groups }) = peer {
        if !policy.unix_allowed(*uid, *gid, groups) {
            let group = match &policy.socket_group {
                Some((name, _)) => format!("root or members of group {name:?}"),
                None => "root only".into(),
            };
            return Err(ApiError::unauthorized(format!(
                "uid {uid} may not use this socket ({group})"
            )));
        }
        return Ok(Caller {
            tenant: Tenant(DEFAULT_TENANT.into()),
            operator: true,
        });
    }
    let token = token.ok_or_else(|| {
        ApiError::unauthorized("missing bearer token (Authorization: Bearer TOKEN)")
    })?;
    match policy.tokens.lookup(token.trim()) {
        Some(Holder::Operator) => Ok(Caller {
            tenant: Tenant(DEFAULT_TENANT.into()),
            operator: true,
        }),
        Some(Holder::Tenant(t)) => Ok(Caller {
            tenant: Tenant(t.clone()),
            operator: false,
        }),
        None => Err(ApiError::unauthorized("invalid bearer token")),
    }
}

/// The token of an `Authorization: Bearer TOKEN` header (the scheme in any
/// case, RFC 7235); `Err` for another scheme or a value that is not text.
pub fn bearer(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not ASCII"))?;
    match text.trim().split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            Ok(Some(token.trim().to_owned()))
        }
        _ => Err(ApiError::unauthorized(
            "Authorization: only the Bearer scheme is taken (Authorization: Bearer TOKEN)",
        )),
    }
}

/// The value of query parameter `name` (the first one), if any.
pub fn query_param(req: &Request, name: &str) -> Option<String> {
    req.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.into_owned())
    })
}

/// Whether the request asks for a WebSocket (RFC 6455 §4.1: a GET with
/// `Upgrade: websocket`): the one request a browser cannot give headers.
pub fn is_websocket_upgrade(req: &Request) -> bool {
    req.method() == axum::http::Method::GET
        && req
            .headers()
            .get_all(header::UPGRADE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
}

fn peer_of(req: &Request) -> Option<Peer> {
    req.extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|c| c.0.clone())
}

/// Middleware of the native API: puts the [`Caller`] (and its [`Tenant`])
/// into the request, or answers 401.
pub async fn require_tenant(
    State(policy): State<Arc<Policy>>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = peer_of(&req);
    let token = match native_token(&req, peer.as_ref()) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    match authenticate(&policy, peer.as_ref(), token.as_deref()) {
        Ok(caller) => {
            req.extensions_mut().insert(caller.tenant.clone());
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// The token a native API request presents: its bearer header, or on a
/// WebSocket upgrade `?token=`. A query token elsewhere is refused, so a
/// secret does not end up in URLs (logs, history, Referer) by habit.
fn native_token(req: &Request, peer: Option<&Peer>) -> Result<Option<String>, ApiError> {
    if matches!(peer, Some(Peer::Unix { .. })) {
        return Ok(None);
    }
    if let Some(t) = bearer(req.headers())? {
        return Ok(Some(t));
    }
    match query_param(req, "token") {
        Some(t) if is_websocket_upgrade(req) => Ok(Some(t)),
        Some(_) => Err(ApiError::unauthorized(
            "?token= is taken only on a WebSocket upgrade: send Authorization: Bearer TOKEN",
        )),
        None => Ok(None),
    }
}

/// Whether the request's caller is an operator (set by [`require_tenant`]
/// or the Judge0 layer's check).
pub fn is_operator(extensions: &axum::http::Extensions) -> bool {
    extensions.get::<Caller>().is_some_and(|c| c.operator)
}

/// The error shape a TCP listener answers in.
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    /// `{code, message}`.
    Native,
    /// Judge0's `{"error": "..."}`.
    Judge0,
}

/// Middleware of the TCP listeners: refuses a `Host` that is not the
/// listener's and an `Origin` that is not allowed ([`origin`]) with 403,
/// before routing and authentication.
pub async fn check_host(
    State((policy, shape)): State<(Arc<Policy>, Shape)>,
    req: Request,
    next: Next,
) -> Response {
    let local = match peer_of(&req) {
        Some(Peer::Tcp { local, .. }) => local.map(|a| a.ip()),
        _ => None,
    };
    match policy.hosts.check(local, req.headers(), req.uri()) {
        Ok(()) => next.run(req).await,
        Err(refusal) => {
            tracing::info!(code = refusal.code(), reason = refusal.message(), "refused");
            match shape {
                Shape::Native => {
                    ApiError::new(StatusCode::FORBIDDEN, refusal.code(), refusal.message())
                        .into_response()
                }
                Shape::Judge0 => (
                    StatusCode::FORBIDDEN,
                    axum::Json(serde_json::json!({ "error": refusal.message() })),
                )
                    .into_response(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TokenConfig;

    fn policy() -> Policy {
        let cfg = Config {
            tokens: vec![TokenConfig {
                token: "tenant-a-token-0123456789".into(),
                tenant: "a".into(),
            }],
            socket_group: Some("nogroup".into()),
            ..Config::default()
        };
        let mut p = Policy::from_config(&cfg);
        p.set_operator_token("operator-token-0123456789");
        p
    }

    fn unix(uid: u32, gid: u32, groups: &[u32]) -> Peer {
        Peer::Unix {
            uid,
            gid,
            groups: groups.into(),
        }
    }

    #[test]
    fn tokens_name_their_holder() {
        let p = policy();
        let tcp = Peer::Tcp {
            remote: "127.0.0.1:5555".parse().unwrap(),
            local: "127.0.0.1:7070".parse().ok(),
        };
        for peer in [Some(&tcp), None] {
            let op = authenticate(&p, peer, Some("operator-token-0123456789")).unwrap();
            assert_eq!((op.tenant.0.as_str(), op.operator), ("default", true));
            let a = authenticate(&p, peer, Some("tenant-a-token-0123456789")).unwrap();
            assert_eq!((a.tenant.0.as_str(), a.operator), ("a", false));
            for bad in [None, Some(""), Some("tenant-a-token-012345678")] {
                let e = authenticate(&p, peer, bad).unwrap_err();
                assert_eq!(e.code, "unauthorized", "{bad:?}");
            }
        }
    }

    #[test]
    fn socket_peers_by_uid_and_groups_taken_at_connect() {
        let p = policy();
        let nogroup = nix::unistd::Group::from_name("nogroup")
            .unwrap()
            .expect("group nogroup")
            .gid
            .as_raw();
        assert!(
            authenticate(&p, Some(&unix(0, 0, &[])), None)
                .unwrap()
                .operator
        );
        // Primary or supplementary group.
        assert!(authenticate(&p, Some(&unix(4242, nogroup, &[])), None).is_ok());
        assert!(authenticate(&p, Some(&unix(4242, 4242, &[7, nogroup])), None).is_ok());
        let e = authenticate(&p, Some(&unix(4242, 4242, &[7])), None).unwrap_err();
        assert_eq!(e.code, "unauthorized");
        assert!(e.message.contains("nogroup"), "{}", e.message);
        // A token does not let in a socket peer that is not allowed.
        assert!(authenticate(
            &p,
            Some(&unix(4242, 4242, &[])),
            Some("operator-token-0123456789")
        )
        .is_err());
    }

    #[test]
    fn peer_groups_are_the_connecting_process_groups() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut got = sandbox::peer::peer_groups(a.as_fd()).unwrap();
        let mut ours: Vec<u32> = nix::unistd::getgroups()
            .unwrap()
            .into_iter()
            .map(|g| g.as_raw())
            .collect();
        got.sort_unstable();
        ours.sort_unstable();
        assert_eq!(got, ours);
    }

    #[test]
    fn bearer_header_parsing() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::AUTHORIZATION, v.parse().unwrap());
            m
        };
        assert_eq!(bearer(&HeaderMap::new()).unwrap(), None);
        assert_eq!(bearer(&h("Bearer abc")).unwrap().as_deref(), Some("abc"));
        assert_eq!(bearer(&h("bEaReR  abc ")).unwrap().as_deref(), Some("abc"));
        assert!(bearer(&h("Basic YWJjOmRlZg==")).is_err());
        assert!(bearer(&h("abc")).is_err());
    }
}
