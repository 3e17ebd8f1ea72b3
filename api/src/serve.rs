//! `runtimed serve`: state, listeners (Unix socket and TCP, the same
//! router), the reaper, and shutdown. SIGTERM/SIGINT: stop accepting, end
//! every sandbox (their cgroups are removed by their helpers), exit.
//!
//! Connections are served here rather than by `axum::serve`, which takes
//! no settings: without a timer hyper has no header timeout, so a client
//! could trickle headers (slowloris) or sit idle forever, each holding a
//! task and a buffer. Each listener takes at most `max_connections` at
//! once (more wait in the kernel's queue, as Go's `netutil.LimitListener`
//! does), a request's headers must arrive within
//! `header_read_timeout_seconds`, and hyper's buffer per connection is
//! capped (docs/limits.md, "The daemon's memory").

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

use crate::auth::{Peer, Shape};
use crate::config::Config;
use crate::engine::host::HostSettings;
use crate::engine::EngineConfig;
use crate::state::AppState;
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Token(#[from] crate::auth::token::TokenFileError),
    #[error("cgroups: {0}")]
    Cgroup(String),
    #[error("{0}")]
    Other(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServeError {
    let what = what.into();
    move |source| ServeError::Io { what, source }
}

/// Runs the daemon until SIGTERM or SIGINT. Helpers come from `zygote`
/// (forked by the caller while it was single-threaded), or else from `exe`,
/// the runtimed binary re-executed as `sandbox-host`.
pub async fn serve(
    cfg: Config,
    exe: PathBuf,
    zygote: Option<crate::engine::zygote::Zygote>,
) -> Result<(), ServeError> {
    cfg.validate().map_err(ServeError::Config)?;
    if !nix::unistd::geteuid().is_root() {
        return Err(ServeError::Config(
            "runtimed serve needs root (sandboxes get their own host uid ranges)".into(),
        ));
    }
    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(io(format!("create {}", cfg.data_dir.display())))?;
    let _ = std::fs::set_permissions(&cfg.data_dir, std::fs::Permissions::from_mode(0o700));
    // On cgroup v2 this moves the daemon into its supervisor leaf before any
    // helper exists (helpers are born there and create cgroups beside it).
    sandbox::cgroup::manager().map_err(|e| ServeError::Cgroup(e.to_string()))?;
    let store = Store::open(&cfg.data_dir.join("runtimed.db"))?;
    // The zygote's helpers have the settings it was forked with; the
    // re-executed ones get the same.
    let settings = zygote
        .as_ref()
        .map_or_else(|| host_settings(&cfg), |z| z.settings().clone());
    let engine = EngineConfig {
        exe,
        settings,
        zygote: zygote.map(Arc::new),
        netns_pool: Some(Arc::new(crate::engine::oneshot::NetnsPool::default())),
    };
    let mut state = AppState::new(cfg.clone(), engine, store);
    let operator_token = operator_token(&cfg)?;
    if let Some(t) = &operator_token {
        // The state was made just above and is not shared yet.
        if !state.set_operator_token(t) {
            return Err(ServeError::Other(
                "the auth policy was shared before the operator token was set".into(),
            ));
        }
    }
    let state = Arc::new(state);
    let lost = state
        .recover()
        .map_err(|e| ServeError::Other(e.to_string()))?;
    if lost > 0 {
        tracing::warn!(
            lost,
            "sessions of a previous daemon are lost (their processes ended with it)"
        );
        eprintln!("runtimed: {lost} session(s) of the previous daemon are reported as lost");
    }

    // The judge: its queue (with what a previous daemon left unfinished)
    // starts before anything listens.
    let judge = crate::judge::JudgeService::open(crate::judge::JudgeSetup {
        data_dir: cfg.data_dir.clone(),
        db_path: cfg.data_dir.join("runtimed.db"),
        engine: state.engine.clone(),
        images: state.images.clone(),
        slots: cfg.judge_slots,
        queue_max: cfg.judge_queue_max,
        languages: cfg.judge_languages.clone(),
        policy: crate::judge::JudgePolicy::from_config(&cfg),
    })
    .map_err(|e| ServeError::Other(format!("judge: {e}")))?;
    if judge.requeued > 0 {
        eprintln!(
            "runtimed: {} judge submission(s) accepted before the restart are queued again",
            judge.requeued
        );
    }
    judge.start();
    let _ = state.judge.set(judge);

    let unix = bind_unix(&cfg).await?;
    let tcp = match cfg.listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(io(format!("listen on {addr}")))?,
        ),
        None => None,
    };
    let judge0_tcp = match cfg.judge0_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(io(format!("listen on {addr} (judge0_listen)")))?,
        ),
        None => None,
    };
    let app = crate::router(state.clone());
    // TCP only: a browser cannot reach the socket, so DNS rebinding and
    // foreign pages concern the TCP listeners alone.
    let host_checked = |router: axum::Router, shape| {
        router.layer(axum::middleware::from_fn_with_state(
            (state.auth.clone(), shape),
            crate::auth::check_host,
        ))
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let limits = ConnectionLimits::of(&cfg);
    let mut servers = Vec::new();
    servers.push(tokio::spawn(serve_listener(
        unix,
        app.clone(),
        limits,
        stop_rx.clone(),
    )));
    if let Some(tcp) = tcp {
        let addr = tcp.local_addr().ok();
        servers.push(tokio::spawn(serve_listener(
            tcp,
            host_checked(app, Shape::Native),
            limits,
            stop_rx.clone(),
        )));
        if let Some(a) = addr {
            announce(&cfg, a, operator_token.as_deref());
        }
    }
    if let Some(tcp) = judge0_tcp {
        let addr = tcp.local_addr().ok();
        let judge0 = host_checked(crate::routes::judge0_router(state.clone()), Shape::Judge0);
        servers.push(tokio::spawn(serve_listener(
            tcp,
            judge0,
            limits,
            stop_rx.clone(),
        )));
        if let Some(a) = addr {
            eprintln!("runtimed: the Judge0-compatible API on http://{a} (X-Auth-Token: the operator token or a tenant's)");
        }
    }
    eprintln!("runtimed: listening on {}", cfg.socket.display());

    let reaper_state = state.clone();
    let reaper = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            reaper_state.reap().await;
        }
    });

    wait_for_signal().await;
    eprintln!("runtimed: shutting down");
    let _ = stop_tx.send(true);
    state
        .shutting_down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    reaper.abort();
    // Upgraded connections (terminals) do not end by themselves: ending the
    // sessions closes them.
    state.shutdown().await;
    for s in servers {
        let _ = tokio::time::timeout(Duration::from_secs(5), s).await;
    }
    let _ = std::fs::remove_file(&cfg.socket);
    eprintln!("runtimed: stopped");
    Ok(())
}

/// The operator token (read, or made at first start) when a TCP listener
/// is on and `operator_token` is set.
/// What every sandbox helper of a daemon with `cfg` is given once (the
/// zygote when it is forked, a re-executed helper first thing).
pub fn host_settings(cfg: &Config) -> HostSettings {
    HostSettings {
        landlock: cfg.landlock,
        uid_pool: sandbox::UidPoolConfig {
            base: cfg.uid_pool_base,
            slot_size: sandbox::options::defaults::UID_POOL_SLOT_SIZE,
            slots: cfg.uid_pool_slots,
        },
        run_dir: PathBuf::from(sandbox::options::defaults::RUN_DIR),
    }
}

fn operator_token(cfg: &Config) -> Result<Option<String>, ServeError> {
    if !cfg.operator_token || (cfg.listen.is_none() && cfg.judge0_listen.is_none()) {
        return Ok(None);
    }
    let path = cfg.data_dir.join(crate::auth::token::TOKEN_FILE);
    Ok(Some(crate::auth::token::load_or_create(&path)?))
}

/// Says where the API listens and where its token is. The console's URL
/// carries the token only when printed to a terminal: a service's log is
/// read by more people than its operators (journald's `adm` group).
fn announce(cfg: &Config, addr: std::net::SocketAddr, operator_token: Option<&str>) {
    use std::io::IsTerminal;
    let token_file = cfg.data_dir.join(crate::auth::token::TOKEN_FILE);
    match operator_token {
        Some(_) => eprintln!(
            "runtimed: listening on http://{addr} (Authorization: Bearer $(cat {}))",
            token_file.display()
        ),
        None => eprintln!("runtimed: listening on http://{addr} (tenant tokens only)"),
    }
    if !cfg.console {
        return;
    }
    match operator_token {
        Some(t) if std::io::stderr().is_terminal() => {
            eprintln!("runtimed: console at http://{addr}/#token={t}")
        }
        Some(_) => eprintln!(
            "runtimed: console at http://{addr}/#token=TOKEN (TOKEN: the contents of {})",
            token_file.display()
        ),
        None => eprintln!("runtimed: console at http://{addr}/#token=TOKEN (a tenant's token)"),
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Binds the Unix socket (mode 0660, group as configured). A socket file
/// left by a dead daemon is replaced; one a live daemon answers on is not.
async fn bind_unix(cfg: &Config) -> Result<UnixListener, ServeError> {
    let path = &cfg.socket;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
    }
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(ServeError::Other(format!(
                "{} is in use by a running daemon",
                path.display()
            )));
        }
        std::fs::remove_file(path).map_err(io(format!("remove stale {}", path.display())))?;
    }
    let listener = UnixListener::bind(path).map_err(io(format!("bind {}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(io(format!("chmod {}", path.display())))?;
    if let Some(group) = &cfg.socket_group {
        let g = nix::unistd::Group::from_name(group)
            .ok()
            .flatten()
            .ok_or_else(|| ServeError::Config(format!("socket_group {group:?}: no such group")))?;
        nix::unistd::chown(path, None, Some(g.gid))
            .map_err(|e| ServeError::Other(format!("chgrp {}: {e}", path.display())))?;
    }
    Ok(listener)
}

/// hyper's buffer of one connection, read side (and write side): the most
/// a request's headers may take, and the largest piece of a body read at
/// once. hyper's default (about 400 KiB) would let each idle connection
/// that trickles headers hold that much; 64 KiB is above what proxies
/// take (nginx: 4 x 8 KiB by default).
const CONNECTION_BUFFER: usize = 64 << 10;

/// How a listener serves its connections.
#[derive(Clone, Copy, Debug)]
struct ConnectionLimits {
    max: usize,
    header_read_timeout: Duration,
}

impl ConnectionLimits {
    fn of(cfg: &Config) -> ConnectionLimits {
        ConnectionLimits {
            max: cfg.max_connections,
            header_read_timeout: Duration::from_secs(cfg.header_read_timeout_seconds),
        }
    }
}

/// A listener whose connections come with their [`Peer`].
trait Accept: Send + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept_peer(&self) -> impl Future<Output = std::io::Result<(Self::Io, Peer)>> + Send;
}

impl Accept for UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept_peer(&self) -> std::io::Result<(Self::Io, Peer)> {
        let (io, _) = self.accept().await?;
        let peer = Peer::of_unix(&io);
        Ok((io, peer))
    }
}

impl Accept for TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept_peer(&self) -> std::io::Result<(Self::Io, Peer)> {
        let (io, remote) = self.accept().await?;
        let peer = Peer::of_tcp(&io, remote);
        Ok((io, peer))
    }
}

/// Serves `app` on `listener` until `stop`, then waits for its
/// connections to end (each finishes the request it is in).
async fn serve_listener<L: Accept>(
    listener: L,
    app: axum::Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max));
    loop {
        // A slot first: with every slot taken, connections wait in the
        // listen queue (and the kernel refuses them once it is full).
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            _ = stopped(&mut stop) => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept_peer() => accepted,
            _ = stopped(&mut stop) => break,
        };
        match accepted {
            Ok((io, peer)) => {
                let io = Counted { io, _slot: slot };
                tokio::spawn(serve_connection(
                    io,
                    peer,
                    app.clone(),
                    limits,
                    stop.clone(),
                ));
            }
            Err(e) => accept_failed(e).await,
        }
    }
    drop(listener);
    let all = u32::try_from(limits.max).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

/// Resolves once the daemon is stopping.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error: the sender is gone, so the daemon is stopping too.
    let _ = stop.wait_for(|s| *s).await;
}

/// A failed accept(2): a connection that went away before it was taken
/// is nothing; anything else (EMFILE, ENOMEM) is logged, and accepting
/// pauses a moment instead of spinning.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::warn!(error = %e, "accept failed; pausing for 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// One connection: HTTP/1.1 with upgrades (WebSockets), the header
/// timeout and the buffer cap; the peer in every request's extensions.
async fn serve_connection<I>(
    io: I,
    peer: Peer,
    app: axum::Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = app.map_request(move |mut req: axum::http::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer.clone()));
        req
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(CONNECTION_BUFFER);
    let conn = builder
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
        .with_upgrades();
    tokio::pin!(conn);
    let done = tokio::select! {
        done = conn.as_mut() => done,
        _ = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = done {
        // Timeouts, resets and malformed requests: the client's doing.
        tracing::debug!(error = %e, "connection ended");
    }
}

/// A connection's stream holding its listener slot: the slot is free when
/// the stream is dropped, also after an upgrade (a WebSocket keeps it).
struct Counted<I> {
    io: I,
    _slot: OwnedSemaphorePermit,
}

impl<I: AsyncRead + Unpin> AsyncRead for Counted<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Counted<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
