//! A fake [`Engine`] for unit tests of what sits above the process layer
//! (`AppState`: quotas, the reaper, recovery, shutdown): it records every
//! call, answers with fake sandboxes or with failures a test queued, and
//! starts no process.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use sandbox::cgroup::CgroupStats;
use sandbox::Request;
use sandbox::{ExitReport, SeccompProfile};

use super::host::{ImageRoot, Oneshot};
use super::oneshot::OneshotStdio;
use super::{Engine, SessionHandle, StartError};

/// One call the engine got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    StartSession {
        id: String,
        seccomp: SeccompProfile,
        image: bool,
    },
    RunOneshot {
        id: String,
        seccomp: SeccompProfile,
    },
}

#[derive(Debug, Default)]
pub struct FakeEngine {
    run_dir: PathBuf,
    calls: Mutex<Vec<Call>>,
    /// Answers for the next starts, in order (then: success).
    failures: Mutex<VecDeque<StartError>>,
    /// Every sandbox handed out, in order.
    started: Mutex<Vec<Arc<FakeSandbox>>>,
}

impl FakeEngine {
    pub fn new(run_dir: &Path) -> FakeEngine {
        FakeEngine {
            run_dir: run_dir.to_path_buf(),
            ..FakeEngine::default()
        }
    }

    /// The next start fails with `e`.
    pub fn fail_next_start(&self, e: StartError) {
        self.failures.lock().unwrap().push_back(e);
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// How many session starts were asked for (failed ones included).
    pub fn starts(&self) -> usize {
        self.calls()
            .iter()
            .filter(|c| matches!(c, Call::StartSession { .. }))
            .count()
    }

    /// The sandbox handed out for session `id`.
    pub fn sandbox(&self, id: &str) -> Arc<FakeSandbox> {
        let started = self.started.lock().unwrap();
        let found = started.iter().find(|s| s.id == id);
        found.cloned().unwrap_or_else(|| panic!("no sandbox {id}"))
    }
}

impl Engine for FakeEngine {
    type Sandbox = FakeSandbox;

    async fn start_session(
        &self,
        id: &str,
        request: &Request,
        image: Option<&ImageRoot>,
    ) -> Result<Arc<FakeSandbox>, StartError> {
        self.calls.lock().unwrap().push(Call::StartSession {
            id: id.to_string(),
            seccomp: request.seccomp,
            image: image.is_some(),
        });
        if let Some(e) = self.failures.lock().unwrap().pop_front() {
            return Err(e);
        }
        let sb = Arc::new(FakeSandbox {
            id: id.to_string(),
            ..FakeSandbox::default()
        });
        self.started.lock().unwrap().push(sb.clone());
        Ok(sb)
    }

    async fn run_oneshot(
        &self,
        id: &str,
        request: &Request,
        _image: Option<&ImageRoot>,
        _limits: Oneshot,
        _stdio: OneshotStdio,
    ) -> Result<ExitReport, StartError> {
        self.calls.lock().unwrap().push(Call::RunOneshot {
            id: id.to_string(),
            seccomp: request.seccomp,
        });
        Err(StartError::Helper("the fake engine runs nothing".into()))
    }

    fn run_dir(&self) -> &Path {
        &self.run_dir
    }
}

/// A session's sandbox that only records what was asked of it.
#[derive(Debug, Default)]
pub struct FakeSandbox {
    pub id: String,
    /// PID 1 ended on its own (set by a test) or the sandbox was stopped.
    gone: AtomicBool,
    stops: AtomicUsize,
    signals: Mutex<Vec<(u64, i32)>>,
}

impl FakeSandbox {
    /// PID 1 ends, as if the program inside exited.
    pub fn end(&self) {
        self.gone.store(true, Ordering::SeqCst);
    }

    /// How often it was stopped.
    pub fn stops(&self) -> usize {
        self.stops.load(Ordering::SeqCst)
    }

    pub fn signals(&self) -> Vec<(u64, i32)> {
        self.signals.lock().unwrap().clone()
    }
}

impl SessionHandle for FakeSandbox {
    fn is_gone(&self) -> bool {
        self.gone.load(Ordering::SeqCst)
    }

    fn stats(&self) -> Option<CgroupStats> {
        None
    }

    async fn stop(&self) -> Option<CgroupStats> {
        self.stops.fetch_add(1, Ordering::SeqCst);
        self.gone.store(true, Ordering::SeqCst);
        None
    }

    async fn signal(&self, id: u64, signal: i32) {
        self.signals.lock().unwrap().push((id, signal));
    }
}
