//! The daemon's live state: sessions by id (each with its sandbox and its
//! terminals), quotas, the reaper (TTL, idle timeout, detached terminals),
//! recovery after a restart and the shutdown sweep.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::http::StatusCode;

use crate::auth::Tenant;
use crate::budget::ByteBudget;
use crate::config::Config;
use crate::engine::pty::Pty;
use crate::engine::{Engine, EngineConfig, SessionHandle, SessionSandbox, StartError};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::store::{SessionRow, Store};
use crate::types::{now_unix, CreateSession, Limits, SessionInfo, Usage};

/// One session; `S` is what its sandbox is held as (the real helper's
/// [`SessionSandbox`], or a test's fake).
pub struct Session<S = SessionSandbox> {
    pub id: String,
    pub tenant: String,
    pub image: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub idle_timeout: Option<u64>,
    pub limits: Limits,
    pub env: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// The image config's env (`KEY=VALUE`) and working directory.
    pub image_env: Vec<String>,
    pub image_cwd: Option<String>,
    /// `None` for a session lost in a crash of the daemon.
    pub sandbox: Option<Arc<S>>,
    last_activity: AtomicI64,
    last_activity_mono: Mutex<Instant>,
    pub ptys: Mutex<HashMap<String, Arc<Pty>>>,
    pub next_pty: AtomicU64,
}

impl<S: SessionHandle> Session<S> {
    pub fn touch(&self) {
        self.last_activity.store(now_unix(), Ordering::Relaxed);
        if let Ok(mut t) = self.last_activity_mono.lock() {
            *t = Instant::now();
        }
    }

    fn idle_for(&self) -> Duration {
        self.last_activity_mono
            .lock()
            .map(|t| t.elapsed())
            .unwrap_or_default()
    }

    pub fn state(&self) -> &'static str {
        match &self.sandbox {
            None => "lost",
            Some(sb) if sb.is_gone() => "ended",
            Some(_) => "running",
        }
    }

    /// The running sandbox, or 409 for a lost session.
    pub fn running(&self) -> Result<&Arc<S>, ApiError> {
        match &self.sandbox {
            Some(sb) if !sb.is_gone() => Ok(sb),
            _ => Err(ApiError::new(
                StatusCode::CONFLICT,
                "session_not_running",
                format!("session {} is {}", self.id, self.state()),
            )),
        }
    }

    /// The environment a process of this session starts with.
    pub fn process_env(&self, extra: &BTreeMap<String, String>, tty: bool) -> Vec<String> {
        process_env(&self.image_env, &self.env, extra, tty)
    }

    pub fn info(&self, with_usage: bool) -> SessionInfo {
        let usage = if with_usage {
            self.sandbox
                .as_ref()
                .and_then(|sb| sb.stats())
                .map(|s| Usage {
                    memory_current_bytes: s.memory_current_bytes,
                    memory_peak_bytes: s.memory_peak_bytes,
                    cpu_usage_us: s.cpu_usage_ns / 1000,
                    pids_current: s.pids_current,
                    oom_kills: s.oom_kills,
                })
        } else {
            None
        };
        SessionInfo {
            id: self.id.clone(),
            state: self.state().into(),
            image: self.image.clone(),
            created_at: crate::types::rfc3339(self.created_at),
            expires_at: self.expires_at.map(crate::types::rfc3339),
            idle_timeout_seconds: self.idle_timeout,
            last_activity_at: crate::types::rfc3339(self.last_activity.load(Ordering::Relaxed)),
            limits: self.limits.clone(),
            env: self.env.clone(),
            labels: self.labels.clone(),
            usage,
            ptys: self.ptys.lock().map(|p| p.len()).unwrap_or(0),
        }
    }
}

/// What the store keeps of a create request beside the columns.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredRequest {
    limits: Limits,
    env: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
}

/// The daemon's state over its process layer `E` (the real helpers, or a
/// test's fake engine).
pub struct AppState<E: Engine = EngineConfig> {
    pub cfg: Config,
    /// Who may call, from the config (and the operator token's file).
    pub auth: Arc<crate::auth::Policy>,
    pub engine: E,
    pub store: Store,
    pub metrics: Metrics,
    /// The image store in the data dir (`None` if it could not be opened:
    /// only `host` sessions then).
    pub images: Option<rootfs_builder::Store>,
    sessions: RwLock<HashMap<String, Arc<Session<E::Sandbox>>>>,
    /// Sessions being created, per tenant (they count against quotas).
    starting: Mutex<HashMap<String, usize>>,
    pub shutting_down: AtomicBool,
    /// The judge (set by `serve` once it started).
    pub judge: std::sync::OnceLock<Arc<crate::judge::JudgeService>>,
    /// Captured exec output held at once (`exec_output_budget`).
    pub output_budget: Arc<ByteBudget>,
    /// Request bodies read or being handled at once
    /// (`request_body_budget`, [`crate::request_body`]).
    pub body_budget: Arc<ByteBudget>,
    /// Directories no error message may show a client.
    pub host_paths: Arc<crate::error::HostPaths>,
}

/// Releases a quota reservation.
struct Reservation<'a, E: Engine> {
    state: &'a AppState<E>,
    tenant: String,
}

impl<E: Engine> Drop for Reservation<'_, E> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.state.starting.lock() {
            if let Some(n) = s.get_mut(&self.tenant) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

impl<E: Engine> AppState<E> {
    /// Adds the operator's token to the auth policy. Only before the state
    /// is shared (the policy is still this state's alone); `false` after.
    pub fn set_operator_token(&mut self, token: &str) -> bool {
        match Arc::get_mut(&mut self.auth) {
            Some(policy) => {
                policy.set_operator_token(token);
                true
            }
            None => false,
        }
    }

    pub fn new(cfg: Config, engine: E, store: Store) -> AppState<E> {
        let images = match rootfs_builder::Store::open(&cfg.data_dir) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "image store unavailable; only the host image works");
                None
            }
        };
        let output_budget =
            ByteBudget::new(cfg.exec_output_budget, cfg.exec_output_budget_per_tenant);
        let (body_total, body_share) = cfg.request_body_budget();
        AppState {
            output_budget,
            body_budget: ByteBudget::new(body_total, body_share),
            auth: Arc::new(crate::auth::Policy::from_config(&cfg)),
            host_paths: Arc::new(crate::error::HostPaths::new(
                &cfg.data_dir,
                engine.run_dir(),
            )),
            cfg,
            engine,
            store,
            images,
            metrics: Metrics::default(),
            sessions: RwLock::new(HashMap::new()),
            starting: Mutex::new(HashMap::new()),
            shutting_down: AtomicBool::new(false),
            judge: std::sync::OnceLock::new(),
        }
    }

    /// After a restart: sessions the store still lists were running when
    /// the daemon died. Their helpers tore them down when the daemon's end
    /// of their control socket closed, so they are reported as `lost`.
    pub fn recover(&self) -> Result<usize, ApiError> {
        let lost = self
            .store
            .mark_running_lost()
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let rows = self
            .store
            .all()
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let mut map = self
            .sessions
            .write()
            .map_err(|_| ApiError::internal("lock"))?;
        for row in rows {
            let Ok(req) = serde_json::from_str::<StoredRequest>(&row.request) else {
                continue;
            };
            map.insert(row.id.clone(), Arc::new(session_of(&row, req, None)));
        }
        Ok(lost.len())
    }

    fn reserve(&self, tenant: &str) -> Result<Reservation<'_, E>, ApiError> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the daemon is shutting down",
            ));
        }
        // Check and count under one lock so two racing creates cannot both
        // take the last slot.
        let mut starting = self
            .starting
            .lock()
            .map_err(|_| ApiError::internal("lock"))?;
        let (live_all, live_mine) = self.sessions.read().map_or((0, 0), |m| {
            let live: Vec<_> = m.values().filter(|s| s.sandbox.is_some()).collect();
            (
                live.len(),
                live.iter().filter(|s| s.tenant == tenant).count(),
            )
        });
        let all = live_all + starting.values().sum::<usize>();
        let mine = live_mine + starting.get(tenant).copied().unwrap_or(0);
        if mine >= self.cfg.max_sessions_per_tenant {
            return Err(ApiError::quota(format!(
                "tenant {tenant:?} has {mine} sessions (limit {})",
                self.cfg.max_sessions_per_tenant
            )));
        }
        if all >= self.cfg.max_sessions {
            return Err(ApiError::quota(format!(
                "the daemon runs {all} sessions (limit {})",
                self.cfg.max_sessions
            )));
        }
        *starting.entry(tenant.to_string()).or_default() += 1;
        Ok(Reservation {
            state: self,
            tenant: tenant.to_string(),
        })
    }

    /// A one-shot run's place in the quotas: while it runs it counts as
    /// one of the tenant's sessions and the daemon's, as the ephemeral
    /// session it once was did (429 `quota_exceeded`, 503 while shutting
    /// down). Given back when dropped, however the run ends.
    pub fn reserve_run(&self, tenant: &Tenant) -> Result<RunSlot<'_, E>, ApiError> {
        self.reserve(&tenant.0).map(RunSlot)
    }

    /// Validates the request, starts the sandbox, records the session.
    /// Nothing is left behind when any step fails.
    pub async fn create_session(
        &self,
        tenant: &Tenant,
        req: CreateSession,
    ) -> Result<Arc<Session<E::Sandbox>>, ApiError> {
        let image = req.image.clone().unwrap_or_else(|| "host".into());
        let limits = crate::spec::resolve_limits(req.limits.as_ref(), &self.cfg)?;
        let ttl = req.ttl_seconds.unwrap_or(self.cfg.default_ttl_seconds);
        if ttl == 0 || ttl > self.cfg.max_ttl_seconds {
            return Err(ApiError::limit(format!(
                "ttl_seconds: {ttl} is outside 1..{}",
                self.cfg.max_ttl_seconds
            )));
        }
        // Bounded like the TTL (an idle timeout past the longest lifetime
        // never fires); unbounded, 2^64-1 was stored as -1 in SQLite.
        if let Some(idle) = req.idle_timeout_seconds {
            if idle == 0 || idle > self.cfg.max_ttl_seconds {
                return Err(ApiError::limit(format!(
                    "idle_timeout_seconds: {idle} is outside 1..{}",
                    self.cfg.max_ttl_seconds
                )));
            }
        }
        check_env(&req.env)?;
        for (k, v) in &req.labels {
            if k.is_empty() || k.len() > 128 || v.len() > 1024 || k.contains('=') {
                return Err(ApiError::invalid(format!(
                    "label {k:?}: keys are 1-128 characters without '=', values up to 1024"
                )));
            }
        }
        if req.labels.len() > 64 {
            return Err(ApiError::invalid("at most 64 labels"));
        }
        // An image: resolved and unpacked (once per layer digest) before
        // anything else exists; its name is stored as resolved.
        let (image, root) = if image == "host" {
            (image, None)
        } else {
            let prepared =
                crate::images::prepare(self.images.as_ref(), &image, limits.disk_bytes).await?;
            (prepared.name.clone(), Some(prepared))
        };
        let request = crate::spec::session_request(&limits)?;
        let _reservation = self.reserve(&tenant.0)?;
        let id = format!("s-{}", sandbox::id::generate());
        let started = Instant::now();
        let sb = self
            .engine
            .start_session(&id, &request, root.as_ref().map(|r| &r.root))
            .await
            .map_err(start_error);
        self.metrics.sandbox_started(started.elapsed(), sb.is_ok());
        let sb = sb?;
        let now = now_unix();
        let row = SessionRow {
            id: id.clone(),
            tenant: tenant.0.clone(),
            state: "running".into(),
            image,
            created_at: now,
            expires_at: Some(now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX))),
            idle_timeout: req.idle_timeout_seconds,
            last_activity: now,
            request: serde_json::to_string(&StoredRequest {
                limits: limits.clone(),
                env: req.env.clone(),
                labels: req.labels.clone(),
            })
            .unwrap_or_default(),
        };
        if let Err(e) = self.store.insert(&row) {
            sb.stop().await;
            return Err(ApiError::internal(e.to_string()));
        }
        let mut session = session_of(
            &row,
            StoredRequest {
                limits,
                env: req.env,
                labels: req.labels,
            },
            Some(sb),
        );
        if let Some(r) = root {
            session.image_env = r.defaults.env;
            session.image_cwd = r.defaults.cwd;
        }
        let session = Arc::new(session);
        if let Ok(mut m) = self.sessions.write() {
            m.insert(id, session.clone());
        }
        Ok(session)
    }

    /// The tenant's session `id` (another tenant's is "not found").
    pub fn get(&self, tenant: &Tenant, id: &str) -> Result<Arc<Session<E::Sandbox>>, ApiError> {
        let map = self
            .sessions
            .read()
            .map_err(|_| ApiError::internal("lock"))?;
        match map.get(id) {
            Some(s) if s.tenant == tenant.0 => Ok(s.clone()),
            _ => Err(ApiError::session_not_found(id)),
        }
    }

    pub fn list(
        &self,
        tenant: &Tenant,
        labels: &[(String, String)],
    ) -> Vec<Arc<Session<E::Sandbox>>> {
        let mut out: Vec<Arc<Session<E::Sandbox>>> = self
            .sessions
            .read()
            .map(|m| {
                m.values()
                    .filter(|s| s.tenant == tenant.0)
                    .filter(|s| {
                        labels
                            .iter()
                            .all(|(k, v)| s.labels.get(k).is_some_and(|x| x == v))
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        out
    }

    /// Removes a session: ends every process and its cgroup first.
    pub async fn remove(&self, id: &str, reason: &str) {
        let session = self.sessions.write().ok().and_then(|mut m| m.remove(id));
        let Some(session) = session else { return };
        if let Some(sb) = &session.sandbox {
            sb.stop().await;
        }
        let _ = self.store.remove(id);
        tracing::info!(session_id = id, reason, "session removed");
    }

    pub async fn delete(&self, tenant: &Tenant, id: &str) -> Result<(), ApiError> {
        self.get(tenant, id)?;
        self.remove(id, "deleted").await;
        Ok(())
    }

    /// Active sessions (for metrics).
    pub fn active(&self) -> usize {
        self.sessions
            .read()
            .map(|m| m.values().filter(|s| s.state() == "running").count())
            .unwrap_or(0)
    }

    /// One pass of the reaper.
    pub async fn reap(&self) {
        self.reap_at(now_unix()).await
    }

    /// [`Self::reap`] at the wall-clock time `now` (TTLs are wall-clock
    /// times, stored; idle time is measured on the monotonic clock).
    async fn reap_at(&self, now: i64) {
        let sessions: Vec<Arc<Session<E::Sandbox>>> = self
            .sessions
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        for s in sessions {
            if s.sandbox.is_none() {
                continue;
            }
            let reason = if s.expires_at.is_some_and(|e| now >= e) {
                Some("ttl")
            } else if s
                .idle_timeout
                .is_some_and(|t| s.idle_for() >= Duration::from_secs(t))
            {
                Some("idle_timeout")
            } else if s.sandbox.as_ref().is_some_and(|sb| sb.is_gone()) {
                Some("ended")
            } else {
                None
            };
            if let Some(reason) = reason {
                self.remove(&s.id, reason).await;
                continue;
            }
            // Terminals: a detached one idle too long is ended; an ended
            // one nobody watches is forgotten.
            let ptys: Vec<Arc<Pty>> = s
                .ptys
                .lock()
                .map(|p| p.values().cloned().collect())
                .unwrap_or_default();
            for p in ptys {
                let idle = p.attached() == 0
                    && p.idle_for() >= Duration::from_secs(self.cfg.pty_idle_timeout_seconds);
                if idle && p.exit_code().is_none() {
                    if let Some(sb) = &s.sandbox {
                        p.kill(sb).await;
                    }
                }
                if p.exit_code().is_some()
                    && p.attached() == 0
                    && p.idle_for() > Duration::from_secs(60)
                {
                    if let Ok(mut m) = s.ptys.lock() {
                        m.remove(&p.id);
                    }
                }
            }
        }
    }

    /// Shutdown: ends every session (in parallel) and forgets them.
    pub async fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        let ids: Vec<String> = self
            .sessions
            .read()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        let stops = ids.iter().map(|id| self.remove(id, "shutdown"));
        futures_util::future::join_all(stops).await;
    }
}

/// A one-shot run's quota slot ([`AppState::reserve_run`]).
pub struct RunSlot<'a, E: Engine = EngineConfig>(#[allow(dead_code)] Reservation<'a, E>);

/// Why a sandbox did not start, as the client hears it.
pub fn start_error(e: StartError) -> ApiError {
    match e {
        StartError::Invalid(f) => ApiError::invalid(f.to_string()),
        // The image's own mount points (/proc, /dev, /tmp, /workspace)
        // are links or files: the image's fault, not the host's.
        StartError::Setup(
            f @ sandbox::StepFailure {
                step: sandbox::report::Step::MountPoints,
                ..
            },
        ) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "image_invalid",
            format!("the image cannot be used: {}", f.message),
        ),
        // Every host uid range is leased: a capacity limit of the
        // host, not a failure.
        StartError::Setup(
            f @ sandbox::StepFailure {
                step: sandbox::report::Step::UidPool,
                ..
            },
        ) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "capacity_exhausted",
            f.to_string(),
        ),
        other => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "sandbox_failed",
            other.to_string(),
        ),
    }
}

fn session_of<S>(row: &SessionRow, req: StoredRequest, sandbox: Option<Arc<S>>) -> Session<S> {
    Session {
        id: row.id.clone(),
        tenant: row.tenant.clone(),
        image: row.image.clone(),
        created_at: row.created_at,
        expires_at: row.expires_at,
        idle_timeout: row.idle_timeout,
        limits: req.limits,
        env: req.env,
        labels: req.labels,
        sandbox,
        last_activity: AtomicI64::new(row.last_activity),
        last_activity_mono: Mutex::new(Instant::now()),
        ptys: Mutex::new(HashMap::new()),
        next_pty: AtomicU64::new(1),
        image_env: Vec::new(),
        image_cwd: None,
    }
}

/// The environment of a process: the defaults (PATH, HOME), the image's,
/// TERM for a terminal, the session's (or run's), then the request's.
pub fn process_env(
    image_env: &[String],
    env: &BTreeMap<String, String>,
    extra: &BTreeMap<String, String>,
    tty: bool,
) -> Vec<String> {
    let mut all = sandbox::Env::sandbox_default();
    for kv in image_env {
        // An image's malformed entry is skipped, as a shell would.
        let _ = all.set_entry(kv);
    }
    if tty {
        let _ = all.set("TERM", "xterm-256color");
    }
    for (k, v) in env.iter().chain(extra) {
        // Checked by `check_env` when the session, run or exec was asked.
        let _ = all.set(k, v);
    }
    all.entries()
}

/// Environment names: non-empty, no `=` or NUL; bounded in size.
pub fn check_env(env: &BTreeMap<String, String>) -> Result<(), ApiError> {
    let mut total = 0;
    for (k, v) in env {
        if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
            return Err(ApiError::invalid(format!(
                "env: invalid variable name or value {k:?}"
            )));
        }
        total += k.len() + v.len() + 2;
    }
    if total > 32 * 1024 {
        return Err(ApiError::invalid("env: more than 32 KiB in all"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! `AppState` over the fake engine: the rules it keeps about sessions
    //! (quotas, the reaper, recovery, shutdown), without sandboxes.

    use super::*;
    use crate::engine::fake::{Call, FakeEngine};
    use sandbox::StepFailure;

    fn state_in(dir: &std::path::Path, per_tenant: usize, all: usize) -> AppState<FakeEngine> {
        let cfg = Config {
            data_dir: dir.to_path_buf(),
            max_sessions_per_tenant: per_tenant,
            max_sessions: all,
            ..Config::default()
        };
        let store = Store::open(&dir.join("runtimed.db")).unwrap();
        AppState::new(cfg, FakeEngine::new(&dir.join("run")), store)
    }

    fn tenant(name: &str) -> Tenant {
        Tenant(name.into())
    }

    async fn create(state: &AppState<FakeEngine>, who: &str) -> Result<String, ApiError> {
        let s = state
            .create_session(&tenant(who), CreateSession::default())
            .await?;
        Ok(s.id.clone())
    }

    fn ids(state: &AppState<FakeEngine>, who: &str) -> Vec<String> {
        let list = state.list(&tenant(who), &[]);
        list.iter().map(|s| s.id.clone()).collect()
    }

    #[tokio::test]
    async fn a_tenant_gets_its_quota_and_the_next_create_is_429() {
        let dir = tempfile::tempdir().unwrap();
        let state = state_in(dir.path(), 2, 10);
        let first = create(&state, "a").await.unwrap();
        create(&state, "a").await.unwrap();
        let refused = create(&state, "a").await.unwrap_err();
        assert_eq!(
            (refused.status, refused.code),
            (StatusCode::TOO_MANY_REQUESTS, "quota_exceeded")
        );
        // Refused before the engine was asked.
        assert_eq!(state.engine.starts(), 2);
        // Another tenant's quota is its own.
        create(&state, "b").await.unwrap();
        // A deleted session frees its slot; its sandbox was stopped.
        state.delete(&tenant("a"), &first).await.unwrap();
        assert_eq!(state.engine.sandbox(&first).stops(), 1);
        create(&state, "a").await.unwrap();
        assert_eq!(ids(&state, "a").len(), 2);
    }

    #[tokio::test]
    async fn the_daemon_wide_limit_counts_every_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let state = state_in(dir.path(), 5, 2);
        create(&state, "a").await.unwrap();
        create(&state, "b").await.unwrap();
        let refused = create(&state, "c").await.unwrap_err();
        assert_eq!(refused.code, "quota_exceeded");
        assert_eq!(state.engine.starts(), 2);
    }

    #[tokio::test]
    async fn a_failed_start_frees_its_slot_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let state = state_in(dir.path(), 1, 10);
        state.engine.fail_next_start(StartError::Setup(StepFailure {
            step: sandbox::report::Step::UidPool,
            errno: None,
            message: "every range is leased".into(),
        }));
        let refused = create(&state, "a").await.unwrap_err();
        assert_eq!(
            (refused.status, refused.code),
            (StatusCode::SERVICE_UNAVAILABLE, "capacity_exhausted")
        );
        assert!(ids(&state, "a").is_empty());
        assert!(state.store.all().unwrap().is_empty());
        // The one slot is free again.
        let id = create(&state, "a").await.unwrap();
        assert_eq!(ids(&state, "a"), vec![id]);
        assert_eq!(state.engine.starts(), 2);
    }

    #[tokio::test]
    async fn sessions_start_with_the_default_seccomp_profile() {
        let dir = tempfile::tempdir().unwrap();
        let state = state_in(dir.path(), 1, 10);
        let id = create(&state, "a").await.unwrap();
        assert_eq!(
            state.engine.calls(),
            vec![Call::StartSession {
                id,
                seccomp: sandbox::SeccompProfile::Default,
                image: false,
            }]
        );
    }

    #[tokio::test]
    async fn the_reaper_ends_sessions_past_their_ttl_idle_time_or_end() {
        let dir = tempfile::tempdir().unwrap();
        let state = state_in(dir.path(), 10, 10);
        let req = |ttl: u64, idle: Option<u64>| CreateSession {
            ttl_seconds: Some(ttl),
            idle_timeout_seconds: idle,
            ..CreateSession::default()
        };
        let a = tenant("a");
        let ttl = state.create_session(&a, req(60, None)).await.unwrap();
        let idle = state.create_session(&a, req(3600, Some(30))).await.unwrap();
        let ends = state.create_session(&a, req(3600, None)).await.unwrap();
        let stays = state.create_session(&a, req(3600, None)).await.unwrap();
        let expires = ttl.expires_at.unwrap();

        // A second before the TTL: nothing is due.
        state.reap_at(expires - 1).await;
        assert_eq!(ids(&state, "a").len(), 4);

        // The TTL is reached; the session idle past its timeout (moved back
        // on the monotonic clock) and the one whose PID 1 ended go too.
        *idle.last_activity_mono.lock().unwrap() = Instant::now() - Duration::from_secs(31);
        state.engine.sandbox(&ends.id).end();
        state.reap_at(expires).await;
        assert_eq!(ids(&state, "a"), vec![stays.id.clone()]);
        for gone in [&ttl.id, &idle.id, &ends.id] {
            assert_eq!(state.engine.sandbox(gone).stops(), 1, "{gone}");
            assert!(state.store.get(gone).unwrap().is_none(), "{gone}");
        }
        assert_eq!(state.engine.sandbox(&stays.id).stops(), 0);
    }

    #[tokio::test]
    async fn a_recent_session_is_not_idle() {
        let dir = tempfile::tempdir().unwrap();
        let state = state_in(dir.path(), 10, 10);
        let req = CreateSession {
            idle_timeout_seconds: Some(30),
            ..CreateSession::default()
        };
        let s = state.create_session(&tenant("a"), req).await.unwrap();
        *s.last_activity_mono.lock().unwrap() = Instant::now() - Duration::from_secs(29);
        state.reap().await;
        assert_eq!(ids(&state, "a"), vec![s.id.clone()]);
        assert_eq!(state.engine.sandbox(&s.id).stops(), 0);
    }

    #[tokio::test]
    async fn recovery_reports_a_dead_daemons_sessions_as_lost() {
        let dir = tempfile::tempdir().unwrap();
        let before = state_in(dir.path(), 1, 10);
        let id = create(&before, "a").await.unwrap();
        // The daemon dies: no shutdown, its store stays as it was.
        drop(before);

        let after = state_in(dir.path(), 1, 10);
        assert_eq!(after.recover().unwrap(), 1);
        let listed = after.list(&tenant("a"), &[]);
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].id.as_str(), listed[0].state()),
            (id.as_str(), "lost")
        );
        assert_eq!(after.store.get(&id).unwrap().unwrap().state, "lost");
        // Nothing was started for it, and it holds no slot: the tenant's
        // one session can be made.
        assert_eq!(after.engine.starts(), 0);
        create(&after, "a").await.unwrap();
    }

    #[tokio::test]
    async fn shutdown_stops_every_session_and_refuses_new_ones() {
        let dir = tempfile::tempdir().unwrap();
        let state = state_in(dir.path(), 10, 10);
        let a = create(&state, "a").await.unwrap();
        let b = create(&state, "b").await.unwrap();
        state.shutdown().await;
        assert_eq!(state.engine.sandbox(&a).stops(), 1);
        assert_eq!(state.engine.sandbox(&b).stops(), 1);
        assert!(ids(&state, "a").is_empty() && ids(&state, "b").is_empty());
        let refused = create(&state, "a").await.unwrap_err();
        assert_eq!(
            (refused.status, refused.code),
            (StatusCode::SERVICE_UNAVAILABLE, "shutting_down")
        );
        assert_eq!(state.engine.starts(), 2);
    }
}
