//! Exec in a session: a process with piped stdin/stdout/stderr, a wall
//! clock limit, a CPU-time limit and a byte cap per output stream, in a
//! child cgroup of its own below the session's
//! ([`sandbox::cgroup::CgroupManager::create_child`]): the process moves
//! itself in before it runs, so its OOM kills, refused forks and CPU time
//! are counted apart from the session's other processes. A limit (or a
//! client that went away) kills the whole cgroup; an exec that ended on
//! its own may leave processes running (a server it started), whose
//! cgroup goes when they have ended. The CPU-time rule
//! is the one-shot supervisor's ([`sandbox::process::cpu_time`]), and the
//! end is classified by the same [`classify`]. Its output goes to one
//! of two places: a capture (the plain JSON answer), whose worst case (the
//! cap of both streams) was reserved from the daemon's capture budget
//! ([`crate::budget::ByteBudget`]) before the exec started, or a
//! bounded channel (the streaming answer), which is never accumulated
//! here: a chunk not yet delivered stops the reading of the pipes, so a
//! slow consumer slows the program instead of growing the daemon. The wall
//! clock runs inside this loop whatever the consumer does, and the process
//! is owned by the loop ([`Spawned`] kills its group when dropped), so a
//! caller that goes away ends it.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use sandbox::cgroup::{Cgroup, CgroupStats};
use sandbox::process::channel::SpawnStdio;
use sandbox::process::cpu_time::{CpuCheck, CpuTimeLimit};
use sandbox::report::{classify, failure_status, Ending, LimitKill, Step, Termination};
use sandbox::StepFailure;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::mpsc;

use super::session::{ExitStatus, SessionSandbox, SpawnError, Spawned};
use crate::budget::Grant;
use crate::types::ExecTermination;

/// How long output is still read after the process ended (a background
/// child may keep the pipe open forever). Time spent waiting for a slow
/// consumer does not count.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(100);

/// Bytes read from a pipe at once (and so the largest chunk).
pub const CHUNK_BYTES: usize = 32 * 1024;

/// Chunks a streaming exec may have in flight to its consumer.
pub const STREAM_CHUNKS: usize = 4;

/// A capture's buffer grows by doubling up to this step, then by it.
const GROWTH_STEP: usize = 4 << 20;

pub struct ExecSpec {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub stdin: Vec<u8>,
    pub timeout: Option<Duration>,
    /// CPU time of the exec's whole tree (its cgroup); killed past it.
    pub cpu_time: Option<Duration>,
    /// Bytes per stream; the process group is killed past it.
    pub output_limit: u64,
}

/// Which stream a chunk came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A piece of output for a streaming consumer.
pub type Chunk = (Stream, Vec<u8>);

/// Where the output goes.
pub enum Output {
    /// Kept for one answer, within this reservation of the daemon's
    /// capture budget (at least twice the exec's `output_limit`).
    Captured(Grant),
    /// Sent as it comes; the channel's bound is the backpressure, and its
    /// closing (the consumer went away) ends the process.
    Streamed(mpsc::Sender<Chunk>),
}

#[derive(Debug, Default)]
pub struct ExecOutcome {
    pub status: Option<ExitStatus>,
    /// How it ended (`sandbox::report::classify`, as for a one-shot run),
    /// `session_ended`, or `client_gone` when a streaming consumer went
    /// away (nobody sees that answer).
    pub termination: ExecTermination,
    /// Captured output (empty when streamed).
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    /// Bytes produced within the limit (captured or streamed).
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    pub wall_time_us: u64,
    /// CPU time of all the exec's processes (its cgroup's counter).
    pub cpu_time_us: u64,
    pub error: Option<StepFailure>,
    /// The budget reserved for `stdout` and `stderr`: keep it as long as
    /// they are kept.
    pub grant: Option<Grant>,
}

fn pipe_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| std::io::Error::from_raw_os_error(e as i32))
}

/// Runs one process to its end (or its limits), sending or keeping its
/// output as `output` says.
pub async fn exec(
    sb: &SessionSandbox,
    spec: ExecSpec,
    output: Output,
) -> std::io::Result<ExecOutcome> {
    let (in_r, in_w) = pipe_pair()?;
    let (out_r, out_w) = pipe_pair()?;
    let (err_r, err_w) = pipe_pair()?;
    let started = Instant::now();
    // Inline rather than on a blocking thread: a few mkdirs and opens on
    // cgroupfs, kernel memory only (the loop below reads cgroup counters
    // inline too). Only the removal, which may wait for killed processes,
    // leaves the runtime (ExecCgroup).
    let (cgroup, join_fds) = match sb.child_cgroup() {
        Ok(Some((cg, fds))) => (ExecCgroup(Some(cg)), fds),
        Ok(None) => {
            return Ok(ExecOutcome {
                termination: ExecTermination::SessionEnded,
                ..Default::default()
            })
        }
        Err(e) => {
            // The error names host paths: logged here, not answered.
            tracing::error!(session_id = %sb.id, error = %e, "cannot create an exec's cgroup");
            let f = StepFailure {
                step: Step::Cgroup,
                errno: None,
                message: "cannot create the exec's cgroup".into(),
            };
            return Ok(setup_failed(f));
        }
    };
    let spawned = sb
        .spawn(
            spec.args,
            spec.env,
            spec.cwd,
            None,
            Some(SpawnStdio {
                stdin: in_r.as_fd(),
                stdout: out_w.as_fd(),
                stderr: err_w.as_fd(),
            }),
            &join_fds,
        )
        .await;
    drop((in_r, out_w, err_w, join_fds));
    let proc = match spawned {
        Ok(p) => p,
        Err(SpawnError::Failed(f)) => return Ok(setup_failed(f)),
        Err(SpawnError::SessionGone) => {
            return Ok(ExecOutcome {
                termination: ExecTermination::SessionEnded,
                ..Default::default()
            })
        }
    };
    let mut stdin_w = pipe::Sender::from_owned_fd(in_w)?;
    let out = pipe::Receiver::from_owned_fd(out_r)?;
    let err = pipe::Receiver::from_owned_fd(err_r)?;
    let stdin = spec.stdin;
    // Aborted when this future ends or is dropped (the program may never
    // read its stdin).
    let writer = AbortOnDrop(tokio::spawn(async move {
        let _ = stdin_w.write_all(&stdin).await;
        // Dropping closes the pipe: EOF for the program.
    }));
    let (sink, grant) = match output {
        Output::Captured(grant) => (None, Some(grant)),
        Output::Streamed(tx) => (Some(tx), None),
    };
    let mut run = Run {
        sb,
        proc,
        cgroup: cgroup.0.as_ref(),
        cpu_limit: spec.cpu_time.map(CpuTimeLimit::new),
        sink,
        limit: spec.output_limit,
        outcome: ExecOutcome {
            grant,
            ..Default::default()
        },
        killed: None,
        client_gone: false,
    };
    let deadline = spec.timeout.map(|t| tokio::time::Instant::now() + t);
    let status = run.pump(out, err, deadline, started).await;
    drop(writer);
    let Run {
        mut outcome,
        killed,
        client_gone,
        ..
    } = run;
    // The exec's own counters up to its end: nobody else's OOM kill or
    // refused fork. A limit (or the client's going away) ends the exec
    // whole; an exec that ended on its own may leave processes running.
    let whole = client_gone || killed.is_some();
    let stats = cgroup.finish(sb, whole).await.unwrap_or_default();
    outcome.cpu_time_us = stats.cpu_usage_ns / 1000;
    outcome.termination = match (client_gone, killed, status) {
        (true, _, _) => ExecTermination::ClientGone,
        (false, Some(k), _) => ExecTermination::Ran(classify(Ending {
            killed: Some(k),
            ..Default::default()
        })),
        (false, None, None) => ExecTermination::SessionEnded,
        (false, None, Some(s)) => ExecTermination::Ran(classify(Ending {
            killed: None,
            exit_code: s.code,
            signal: s.signal,
            oom_kills: stats.oom_kills,
            pids_limit_hits: stats.pids_limit_hits,
        })),
    };
    outcome.status = status;
    Ok(outcome)
}

/// The outcome of an exec whose process never ran.
fn setup_failed(f: StepFailure) -> ExecOutcome {
    ExecOutcome {
        status: Some(ExitStatus {
            code: Some(failure_status(f.step, f.errno)),
            ..Default::default()
        }),
        termination: ExecTermination::Ran(Termination::SetupFailed),
        error: Some(f),
        ..Default::default()
    }
}

/// An exec's cgroup. Killing it whole waits (bounded) for its processes
/// to exit, so that runs on a blocking thread: at the exec's end after a
/// limit ([`Self::finish`]) or, when the exec's future is dropped (its
/// client went away), from `Drop`.
struct ExecCgroup(Option<Cgroup>);

impl ExecCgroup {
    /// The final accounting; then, with `kill`, the cgroup is killed and
    /// removed, else it goes when it is empty (what the exec left running
    /// keeps running: [`SessionSandbox::exec_ended`]).
    async fn finish(mut self, sb: &SessionSandbox, kill: bool) -> Option<CgroupStats> {
        let cg = self.0.take()?;
        if !kill {
            // A few counter reads and rmdirs: nothing waits.
            let stats = cg.stats().ok();
            sb.exec_ended(cg);
            return stats;
        }
        let stats = tokio::task::spawn_blocking(move || {
            let stats = cg.stats();
            let name = cg.name().to_owned();
            if let Err(e) = cg.remove() {
                tracing::warn!(cgroup = %name, error = %e, "an exec's cgroup was not removed");
            }
            stats.ok()
        })
        .await
        .ok()
        .flatten();
        sb.exec_removed(stats.as_ref().map_or(0, |s| s.oom_kills));
        stats
    }
}

impl Drop for ExecCgroup {
    fn drop(&mut self) {
        let Some(cg) = self.0.take() else { return };
        // Without a runtime (the daemon is exiting) it is removed here;
        // the session's teardown would remove it anyway.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn_blocking(move || drop(cg));
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One running exec: its process, where its output goes, what it did.
struct Run<'a> {
    sb: &'a SessionSandbox,
    proc: Spawned,
    /// The exec's own cgroup, whose CPU counter `cpu_limit` is checked on.
    cgroup: Option<&'a Cgroup>,
    cpu_limit: Option<CpuTimeLimit>,
    /// The streaming consumer; `None` for a capture.
    sink: Option<mpsc::Sender<Chunk>>,
    limit: u64,
    outcome: ExecOutcome,
    /// The limit this loop killed the process for (the first one).
    killed: Option<LimitKill>,
    /// A streaming consumer went away (and the process was killed).
    client_gone: bool,
}

impl Run<'_> {
    /// Reads both pipes and waits for the process until it ended and its
    /// output was read (or a limit ended it); returns its exit status
    /// (`None`: the session ended first).
    async fn pump(
        &mut self,
        mut out: pipe::Receiver,
        mut err: pipe::Receiver,
        deadline: Option<tokio::time::Instant>,
        started: Instant,
    ) -> Option<ExitStatus> {
        let (mut out_open, mut err_open) = (true, true);
        let mut status: Option<Option<ExitStatus>> = None;
        let mut drain_until: Option<tokio::time::Instant> = None;
        let mut wall_fired = false;
        // When the CPU counter is read next (the one-shot supervisor's
        // rule says how soon); only while the process runs.
        let mut cpu_check = self
            .cpu_limit
            .map(|_| tokio::time::Instant::now() + Duration::from_millis(1));
        // A chunk read but not yet delivered: while there is one, the
        // pipes are not read (backpressure to the program).
        let mut pending: Option<Chunk> = None;
        let mut buf_o = vec![0u8; CHUNK_BYTES];
        let mut buf_e = vec![0u8; CHUNK_BYTES];
        loop {
            if status.is_some() {
                let drained = !out_open && !err_open && pending.is_none();
                // Past the wall clock nothing waits for a consumer (or for
                // budget) any more: what was not delivered is dropped.
                if drained || (wall_fired && pending.is_some()) {
                    break;
                }
            }
            let wall = deadline.filter(|_| !wall_fired);
            let drain = drain_until.filter(|_| pending.is_none());
            let cpu = cpu_check.filter(|_| status.is_none() && self.killed.is_none());
            let wake = [wall, drain, cpu].into_iter().flatten().min();
            let timer = async {
                match wake {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = out.read(&mut buf_o), if out_open && pending.is_none() => match r {
                    Ok(0) | Err(_) => out_open = false,
                    Ok(n) => pending = self.take(Stream::Stdout, &buf_o[..n]).await,
                },
                r = err.read(&mut buf_e), if err_open && pending.is_none() => match r {
                    Ok(0) | Err(_) => err_open = false,
                    Ok(n) => pending = self.take(Stream::Stderr, &buf_e[..n]).await,
                },
                slot = slot_for(self.sink.as_ref()), if pending.is_some() => {
                    match (slot, pending.take()) {
                        (Some(permit), Some(chunk)) => {
                            permit.send(chunk);
                        }
                        (None, _) => {
                            // Nobody will read the answer: end the program
                            // now and stop.
                            self.client_gone = true;
                            self.sb.signal(self.proc.id, libc::SIGKILL).await;
                            return None;
                        }
                        (Some(_), None) => {}
                    }
                    if status.is_some() {
                        drain_until = Some(tokio::time::Instant::now() + DRAIN_AFTER_EXIT);
                    }
                },
                () = consumer_gone(self.sink.as_ref()), if pending.is_none() => {
                    self.client_gone = true;
                    self.sb.signal(self.proc.id, libc::SIGKILL).await;
                    return None;
                },
                s = self.proc.wait(), if status.is_none() => {
                    status = Some(s);
                    self.outcome.wall_time_us = started.elapsed().as_micros() as u64;
                    drain_until = Some(tokio::time::Instant::now() + DRAIN_AFTER_EXIT);
                },
                () = timer => {
                    let now = tokio::time::Instant::now();
                    if wall.is_some_and(|w| now >= w) {
                        wall_fired = true;
                        if status.is_none() {
                            self.killed.get_or_insert(LimitKill::Wall);
                            self.sb.signal(self.proc.id, libc::SIGKILL).await;
                        }
                    } else if cpu.is_some_and(|c| now >= c) {
                        cpu_check = self.check_cpu().await.map(|d| now + d);
                    } else if status.is_some() {
                        // Drained long enough (a background child may
                        // hold the pipes open forever).
                        break;
                    }
                }
            }
        }
        status.flatten()
    }

    /// Applies the CPU-time rule to the exec's cgroup: past the limit the
    /// process group is killed (`None`: no more checks), else when to
    /// look again.
    async fn check_cpu(&mut self) -> Option<Duration> {
        let (Some(limit), Some(cg)) = (self.cpu_limit, self.cgroup) else {
            return None;
        };
        match limit.check(cg) {
            CpuCheck::Within(recheck) => Some(recheck),
            CpuCheck::Spent => {
                self.killed.get_or_insert(LimitKill::Cpu);
                self.sb.signal(self.proc.id, libc::SIGKILL).await;
                None
            }
        }
    }

    /// Counts `data` against the stream's limit (past it the process
    /// group is killed) and keeps what fits (a capture) or returns it for
    /// delivery (a stream).
    async fn take(&mut self, stream: Stream, data: &[u8]) -> Option<Chunk> {
        let (count, truncated, acc) = match stream {
            Stream::Stdout => (
                &mut self.outcome.stdout_bytes,
                &mut self.outcome.stdout_truncated,
                &mut self.outcome.stdout,
            ),
            Stream::Stderr => (
                &mut self.outcome.stderr_bytes,
                &mut self.outcome.stderr_truncated,
                &mut self.outcome.stderr,
            ),
        };
        let room = self.limit.saturating_sub(*count);
        let n = (data.len() as u64).min(room) as usize;
        *count += n as u64;
        if data.len() > n {
            *truncated = true;
        }
        let chunk = if n == 0 {
            None
        } else if self.sink.is_some() {
            Some((stream, data[..n].to_vec()))
        } else {
            // Within the reservation: the buffer never grows past the
            // limit (which, for both streams, is what was reserved).
            let need = acc.len() + n;
            if need > acc.capacity() {
                let capacity = grown_capacity(acc.capacity(), need, self.limit);
                acc.reserve_exact(capacity - acc.len());
            }
            acc.extend_from_slice(&data[..n]);
            None
        };
        if data.len() > n && self.killed.is_none() {
            self.killed = Some(LimitKill::Output);
            self.sb.signal(self.proc.id, libc::SIGKILL).await;
        }
        chunk
    }
}

/// A slot of the stream's channel for the pending chunk (`None`: the
/// consumer went away). Cancel-safe: the chunk stays with the caller.
async fn slot_for(sink: Option<&mpsc::Sender<Chunk>>) -> Option<mpsc::OwnedPermit<Chunk>> {
    match sink {
        Some(tx) => tx.clone().reserve_owned().await.ok(),
        None => std::future::pending().await,
    }
}

/// The capacity a capture buffer of capacity `cap` grows to for `need`
/// bytes: doubling (amortised appends) up to [`GROWTH_STEP`] at a time,
/// never past the stream's limit.
fn grown_capacity(cap: usize, need: usize, limit: u64) -> usize {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let doubled = cap.saturating_add(cap.clamp(CHUNK_BYTES, GROWTH_STEP));
    doubled.max(need).min(limit.max(need))
}

/// Resolves when a streaming consumer went away (never for a capture).
async fn consumer_gone(sink: Option<&mpsc::Sender<Chunk>>) {
    match sink {
        Some(tx) => tx.closed().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_buffers_grow_within_the_limit() {
        assert_eq!(grown_capacity(0, 10, 1 << 20), CHUNK_BYTES);
        assert_eq!(
            grown_capacity(CHUNK_BYTES, CHUNK_BYTES + 1, 1 << 20),
            2 * CHUNK_BYTES
        );
        assert_eq!(
            grown_capacity(16 << 20, (16 << 20) + 1, 64 << 20),
            (16 << 20) + GROWTH_STEP
        );
        // Never past the limit, however the doubling falls.
        assert_eq!(grown_capacity(700_000, 700_001, 1_000_000), 1_000_000);
        assert_eq!(grown_capacity(0, 5, 5), 5);
    }
}
