//! The judge service: accepts submissions (persisted before they are
//! acknowledged), queues them fairly between tenants, judges them with
//! [`judges::judge`] on the daemon's sandboxes ([`runner::DaemonRunner`]),
//! keeps their progress for event streams and stores their results.
//!
//! A restart loses no accepted submission: rows still `queued` or
//! `running` in SQLite are queued again, in the order they were accepted,
//! when the service starts (a run cut short is judged again from scratch).
//!
//! What a client can make it hold is bounded ([`JudgePolicy`]): each
//! tenant's share of the queue, the compile cache in bytes, finished
//! submissions by age and count per tenant (swept at start and
//! periodically), and the outputs of running tests by the slots
//! ([`runner::DaemonRunner`]).

pub mod queue;
pub mod runner;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use judges::{Event, Languages, Report, Submission, Verdict};
use serde::Serialize;
use tokio::sync::{broadcast, watch, Notify};

use crate::engine::EngineConfig;
use crate::store::{Store, StoreError, SubmissionRow};
use crate::types::now_unix;
use queue::FairQueue;

/// What a client sees of a submission.
#[derive(Clone, Debug, Serialize)]
pub struct SubmissionView {
    pub id: String,
    /// `queued`, `running` or `done`.
    pub status: &'static str,
    pub language: String,
    /// Unix time (s) it was accepted.
    pub created_at: i64,
    /// Unix time (ms) its result was stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<i64>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub report: Option<Report>,
    /// Submissions ahead of this one (queued only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<usize>,
}

/// A submission being judged or waiting: its events so far and a
/// channel for new ones.
struct Live {
    events: Mutex<Vec<Event>>,
    tx: broadcast::Sender<Event>,
    done: watch::Sender<bool>,
}

impl Live {
    fn new() -> Arc<Live> {
        let (tx, _) = broadcast::channel(1024);
        let (done, _) = watch::channel(false);
        Arc::new(Live {
            events: Mutex::new(Vec::new()),
            tx,
            done,
        })
    }

    /// Records and sends under one lock, so that a subscriber that copies
    /// the past under the same lock misses nothing and sees nothing twice.
    fn publish(&self, e: Event) {
        let mut events = lock(&self.events);
        events.push(e.clone());
        let _ = self.tx.send(e);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JudgeServiceError {
    #[error("{0}")]
    Invalid(judges::SubmissionError),
    #[error("the judge queue is full ({capacity} submissions wait)")]
    QueueFull { capacity: usize, retry_after: u64 },
    #[error("this tenant's share of the judge queue is full ({share} submissions wait)")]
    TenantQueueFull { share: usize, retry_after: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("judge: {0}")]
    Internal(String),
}

pub struct JudgeService {
    languages: RwLock<Arc<Languages>>,
    runner: runner::DaemonRunner,
    store: Store,
    work_dir: PathBuf,
    slots: usize,
    queue: Mutex<FairQueue<String>>,
    wake: Notify,
    live: Mutex<HashMap<String, Arc<Live>>>,
    /// Successful compiles, per tenant.
    cache: judges::CompileCache,
    probe_started: std::sync::atomic::AtomicBool,
    probed: watch::Sender<bool>,
    /// Submissions of an earlier daemon queued again at open.
    pub requeued: usize,
    policy: JudgePolicy,
}

/// The judge's resource bounds, from the config (docs/judges.md,
/// "Resources").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JudgePolicy {
    /// Submissions one tenant may have waiting.
    pub queue_max_per_tenant: usize,
    /// Bytes on disk of the compile cache.
    pub compile_cache_bytes: u64,
    /// Finished submissions older than this are deleted.
    pub retention: Option<std::time::Duration>,
    /// Finished submissions kept per tenant.
    pub retention_per_tenant: Option<usize>,
}

impl JudgePolicy {
    pub fn from_config(cfg: &crate::config::Config) -> JudgePolicy {
        JudgePolicy {
            queue_max_per_tenant: cfg.judge_tenant_share(),
            compile_cache_bytes: cfg.judge_compile_cache_bytes,
            retention: Some(std::time::Duration::from_secs(cfg.judge_retention_seconds))
                .filter(|d| !d.is_zero()),
            retention_per_tenant: Some(cfg.judge_retention_per_tenant).filter(|n| *n > 0),
        }
    }

    /// How often retention is applied: a quarter of the retention age,
    /// between a second and a minute.
    pub fn sweep_interval(&self) -> std::time::Duration {
        let quarter = self.retention.map_or(SWEEP_MAX, |r| r / 4);
        quarter.clamp(std::time::Duration::from_secs(1), SWEEP_MAX)
    }
}

/// The longest time between two retention sweeps.
const SWEEP_MAX: std::time::Duration = std::time::Duration::from_secs(60);

/// Everything needed to start the service.
pub struct JudgeSetup {
    pub data_dir: PathBuf,
    pub db_path: PathBuf,
    pub engine: EngineConfig,
    pub images: Option<rootfs_builder::Store>,
    pub slots: Option<usize>,
    pub queue_max: usize,
    pub languages: Option<PathBuf>,
    pub policy: JudgePolicy,
}

/// How long a languages request waits for the toolchain probe.
const PROBE_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Compiled programs kept (the least recently used go first).
const COMPILE_CACHE_ENTRIES: usize = 512;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind
    // (queues, event lists), still consistent enough to go on with.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl JudgeService {
    /// Opens the service: the language table, its own connection to the
    /// state database, its directories, and the unfinished submissions
    /// of an earlier run (queued again). Workers start with [`Self::start`].
    pub fn open(setup: JudgeSetup) -> Result<Arc<JudgeService>, JudgeServiceError> {
        let languages = Languages::load(setup.languages.as_deref())
            .map_err(|e| JudgeServiceError::Internal(e.to_string()))?;
        let store = Store::open(&setup.db_path)?;
        let dir = |p: PathBuf| -> Result<PathBuf, JudgeServiceError> {
            std::fs::create_dir_all(&p)
                .map_err(|e| JudgeServiceError::Internal(format!("create {}: {e}", p.display())))?;
            Ok(p)
        };
        let work_dir = dir(setup.data_dir.join("judge").join("work"))?;
        let output_dir = dir(setup.data_dir.join("judge").join("output"))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&output_dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| JudgeServiceError::Internal(format!("chmod the output dir: {e}")))?;
        }
        let cache = judges::CompileCache::open(
            setup.data_dir.join("judge").join("compile-cache"),
            COMPILE_CACHE_ENTRIES,
            setup.policy.compile_cache_bytes,
        )
        .map_err(|e| JudgeServiceError::Internal(format!("the compile cache: {e}")))?;
        // Work dirs of a judgement the previous daemon did not finish, and
        // output files it made where it could not unlink them at once.
        for d in [&work_dir, &output_dir] {
            if let Ok(entries) = std::fs::read_dir(d) {
                for e in entries.flatten() {
                    let _ = std::fs::remove_dir_all(e.path())
                        .or_else(|_| std::fs::remove_file(e.path()));
                }
            }
        }
        // Retention first: what the previous daemon kept too long goes now.
        let swept = store.sweep_submissions(
            setup
                .policy
                .retention
                .map(|r| now_ms() - r.as_millis() as i64),
            setup.policy.retention_per_tenant,
        )?;
        if swept > 0 {
            tracing::info!(
                count = swept,
                "judge: finished submissions past retention deleted"
            );
        }
        let slots = setup.slots.unwrap_or_else(judges::pipeline::default_slots);
        let runner = runner::DaemonRunner::new(setup.engine, setup.images, slots, output_dir);
        let mut queue = FairQueue::new(setup.queue_max);
        let mut live = HashMap::new();
        let unfinished = store.unfinished_submissions()?;
        for row in &unfinished {
            queue.push_unbounded(&row.tenant, row.id.clone());
            live.insert(row.id.clone(), Live::new());
        }
        if !unfinished.is_empty() {
            tracing::info!(
                count = unfinished.len(),
                "judge: submissions accepted before the restart are queued again"
            );
        }
        Ok(Arc::new(JudgeService {
            languages: RwLock::new(Arc::new(languages)),
            runner,
            store,
            work_dir,
            slots,
            queue: Mutex::new(queue),
            wake: Notify::new(),
            live: Mutex::new(live),
            cache,
            probe_started: std::sync::atomic::AtomicBool::new(false),
            probed: watch::channel(false).0,
            requeued: unfinished.len(),
            policy: setup.policy,
        }))
    }

    /// Starts the workers (one per slot, so that one submission's compile
    /// overlaps another's tests; the runner's semaphore bounds the
    /// sandboxes). Submissions accepted before a restart make the workers
    /// probe the toolchains at once; otherwise the first use of the judge
    /// does ([`Self::kick_probe`]): a daemon that only serves sessions
    /// never starts the probe's sandboxes.
    pub fn start(self: &Arc<Self>) {
        for _ in 0..self.slots {
            let svc = self.clone();
            tokio::spawn(async move { svc.work().await });
        }
        if self.requeued > 0 {
            self.kick_probe();
        }
        let svc = self.clone();
        tokio::spawn(async move { svc.sweep_forever().await });
    }

    /// Applies retention every [`JudgePolicy::sweep_interval`].
    async fn sweep_forever(self: Arc<Self>) {
        if self.policy.retention.is_none() && self.policy.retention_per_tenant.is_none() {
            return;
        }
        let mut tick = tokio::time::interval(self.policy.sweep_interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let svc = self.clone();
            let swept = tokio::task::spawn_blocking(move || {
                svc.store.sweep_submissions(
                    svc.policy
                        .retention
                        .map(|r| now_ms() - r.as_millis() as i64),
                    svc.policy.retention_per_tenant,
                )
            })
            .await;
            match swept {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::debug!(
                    count = n,
                    "judge: finished submissions past retention deleted"
                ),
                Ok(Err(e)) => tracing::warn!(error = %e, "judge: retention sweep failed"),
                Err(e) => tracing::warn!(error = %e, "judge: retention sweep panicked"),
            }
        }
    }

    /// Starts the toolchain probe (once): every language's version argv in
    /// a sandbox, as a submission would get it.
    pub fn kick_probe(self: &Arc<Self>) {
        if self
            .probe_started
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return;
        }
        let svc = self.clone();
        tokio::spawn(async move {
            let mut langs = (*svc.languages()).clone();
            langs.probe_versions(&svc.runner).await;
            for l in langs.iter() {
                tracing::info!(language = %l.name, availability = ?l.availability, "judge language");
            }
            *svc.languages.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(langs);
            // send_replace: `send` stores nothing when nobody is
            // subscribed yet (a probe kicked by a submission), and every
            // later `probed_languages` then waited its full PROBE_WAIT.
            svc.probed.send_replace(true);
        });
    }

    /// The language table once probed (starting the probe if need be;
    /// at most `PROBE_WAIT`, then as far as it got).
    pub async fn probed_languages(self: &Arc<Self>) -> Arc<Languages> {
        self.kick_probe();
        let mut rx = self.probed.subscribe();
        let _ = tokio::time::timeout(PROBE_WAIT, rx.wait_for(|done| *done)).await;
        self.languages()
    }

    pub fn languages(&self) -> Arc<Languages> {
        self.languages
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    fn add_live(&self, id: &str) -> Arc<Live> {
        let live = Live::new();
        lock(&self.live).insert(id.to_string(), live.clone());
        live
    }

    /// Validates, persists and queues a submission; returns its id.
    pub fn submit(&self, tenant: &str, sub: &Submission) -> Result<String, JudgeServiceError> {
        let id = format!("sub-{}", sandbox::id::generate());
        self.submit_with_id(tenant, id, sub)
    }

    /// As [`Self::submit`], under an id the caller made (the Judge0
    /// layer's UUID tokens); an id already in use fails in the store.
    pub fn submit_with_id(
        &self,
        tenant: &str,
        id: String,
        sub: &Submission,
    ) -> Result<String, JudgeServiceError> {
        sub.validate(&self.languages())
            .map_err(JudgeServiceError::Invalid)?;
        let request = serde_json::to_string(sub)
            .map_err(|e| JudgeServiceError::Internal(format!("encode the submission: {e}")))?;
        let mut q = lock(&self.queue);
        if q.len() >= q.capacity() {
            return Err(JudgeServiceError::QueueFull {
                capacity: q.capacity(),
                retry_after: self.retry_after(q.len()),
            });
        }
        // Then the tenant's share, so that one tenant cannot fill the
        // queue and lock the others out.
        let mine = q.tenant_len(tenant);
        if mine >= self.policy.queue_max_per_tenant {
            // Tenants take turns: before this tenant's next one, each
            // tenant waiting may get as many.
            let ahead = (mine * q.tenants().max(1)).min(q.len());
            return Err(JudgeServiceError::TenantQueueFull {
                share: self.policy.queue_max_per_tenant,
                retry_after: self.retry_after(ahead),
            });
        }
        // On disk before anyone hears of it.
        self.store.insert_submission(&SubmissionRow {
            id: id.clone(),
            tenant: tenant.to_string(),
            state: "queued".into(),
            created_at: now_unix(),
            request,
            result: None,
            finished_at_ms: None,
        })?;
        self.add_live(&id);
        q.push_unbounded(tenant, id.clone());
        drop(q);
        self.wake.notify_one();
        Ok(id)
    }

    /// A guess of when a slot frees up: a second per submission per slot.
    fn retry_after(&self, waiting: usize) -> u64 {
        (waiting / self.slots.max(1)).clamp(1, 60) as u64
    }

    /// The submission as `tenant` may see it (`None`: no such submission
    /// of theirs).
    pub fn view(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<SubmissionView>, JudgeServiceError> {
        let Some(row) = self.store.submission(id)? else {
            return Ok(None);
        };
        if row.tenant != tenant {
            return Ok(None);
        }
        let language = serde_json::from_str::<serde_json::Value>(&row.request)
            .ok()
            .and_then(|v| v.get("language").and_then(|l| l.as_str()).map(String::from))
            .unwrap_or_default();
        let report =
            match &row.result {
                Some(text) => Some(serde_json::from_str::<Report>(text).map_err(|e| {
                    JudgeServiceError::Internal(format!("stored result of {id}: {e}"))
                })?),
                None => None,
            };
        let status = match row.state.as_str() {
            "done" => "done",
            "running" => "running",
            _ => "queued",
        };
        let queue_position = match status {
            "queued" => lock(&self.queue).position(&row.tenant, |i| i == id),
            _ => None,
        };
        Ok(Some(SubmissionView {
            id: row.id,
            status,
            language,
            created_at: row.created_at,
            finished_at_ms: row.finished_at_ms,
            report,
            queue_position,
        }))
    }

    /// The submission as `tenant` sent it (`None`: no such submission of
    /// theirs).
    pub fn request(&self, tenant: &str, id: &str) -> Result<Option<Submission>, JudgeServiceError> {
        match self.store.submission(id)? {
            Some(row) if row.tenant == tenant => serde_json::from_str(&row.request)
                .map(Some)
                .map_err(|e| JudgeServiceError::Internal(format!("stored request of {id}: {e}"))),
            _ => Ok(None),
        }
    }

    /// Waits until the submission is done (returns at once if it is, or
    /// if it is unknown here).
    pub async fn wait_done(&self, id: &str) {
        let rx = lock(&self.live).get(id).map(|l| l.done.subscribe());
        if let Some(mut rx) = rx {
            let _ = rx.wait_for(|done| *done).await;
        }
    }

    /// The events so far and a receiver of the rest; `None` when the
    /// submission is not live (done before, or unknown).
    pub fn events(&self, id: &str) -> Option<(Vec<Event>, broadcast::Receiver<Event>)> {
        let live = lock(&self.live).get(id).cloned()?;
        let events = lock(&live.events);
        let rx = live.tx.subscribe();
        Some((events.clone(), rx))
    }

    async fn next(&self) -> String {
        loop {
            let notified = self.wake.notified();
            if let Some((_, id)) = lock(&self.queue).pop() {
                return id;
            }
            notified.await;
        }
    }

    async fn work(self: Arc<Self>) {
        loop {
            let id = self.next().await;
            // Another one may be waiting too.
            if !lock(&self.queue).is_empty() {
                self.wake.notify_one();
            }
            if let Err(e) = self.judge_one(&id).await {
                tracing::error!(submission = %id, error = %e, "judge: submission failed");
            }
        }
    }

    async fn judge_one(&self, id: &str) -> Result<(), JudgeServiceError> {
        let live = lock(&self.live)
            .get(id)
            .cloned()
            .unwrap_or_else(|| self.add_live(id));
        let row = self
            .store
            .submission(id)?
            .ok_or_else(|| JudgeServiceError::Internal(format!("submission {id} vanished")))?;
        self.store.set_submission_state(id, "running")?;
        let report = match serde_json::from_str::<Submission>(&row.request) {
            Ok(sub) => {
                let langs = self.languages();
                let progress = |e: Event| live.publish(e);
                match judges::judge_cached(
                    &self.runner,
                    &langs,
                    &sub,
                    &self.work_dir,
                    self.slots,
                    (&self.cache, &row.tenant),
                    progress,
                )
                .await
                {
                    Ok(r) => r,
                    Err(e) => internal_report(e.to_string()),
                }
            }
            Err(e) => internal_report(format!("the stored submission cannot be read: {e}")),
        };
        let text = serde_json::to_string(&report)
            .map_err(|e| JudgeServiceError::Internal(format!("encode the result: {e}")))?;
        let stored = self.store.finish_submission(id, &text, now_ms());
        lock(&self.live).remove(id);
        let _ = live.done.send(true);
        stored?;
        Ok(())
    }
}

/// Unix time in milliseconds.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The report of a submission the judge could not judge at all.
fn internal_report(detail: String) -> Report {
    Report {
        verdict: Verdict::InternalError,
        time_limit: None,
        detail: Some(detail),
        compile_output: None,
        compile_output_truncated: false,
        compile_cached: false,
        tests: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::time::Duration;

    #[test]
    fn the_policy_follows_the_config_and_its_documented_defaults() {
        let p = JudgePolicy::from_config(&Config::default());
        assert_eq!(
            p,
            JudgePolicy {
                queue_max_per_tenant: 250,
                compile_cache_bytes: 1 << 30,
                retention: Some(Duration::from_secs(7 * 24 * 3600)),
                retention_per_tenant: Some(10_000),
            }
        );
        assert_eq!(p.sweep_interval(), Duration::from_secs(60));
        let cfg = Config {
            judge_queue_max: 1,
            judge_retention_seconds: 0,
            judge_retention_per_tenant: 0,
            ..Config::default()
        };
        let p = JudgePolicy::from_config(&cfg);
        assert_eq!(p.queue_max_per_tenant, 1, "at least one");
        assert_eq!((p.retention, p.retention_per_tenant), (None, None));
        let cfg = Config {
            judge_queue_max: 10,
            judge_queue_max_per_tenant: Some(50),
            judge_retention_seconds: 3,
            ..Config::default()
        };
        let p = JudgePolicy::from_config(&cfg);
        assert_eq!(p.queue_max_per_tenant, 10, "never above the queue");
        assert_eq!(p.sweep_interval(), Duration::from_secs(1));
        let zero = Config {
            judge_queue_max_per_tenant: Some(0),
            ..Config::default()
        };
        assert!(zero.validate().is_err());
    }
}
