//! Exec in a session: a process with piped stdin/stdout/stderr, a wall
//! clock limit and a byte cap per output stream, its output delivered as
//! chunks (for the streaming form) and collected (for the plain one).

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use sandbox::StepFailure;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::mpsc;

use super::session::{ExitStatus, SessionSandbox, SpawnError};

/// How long output is still read after the process ended (a background
/// child may keep the pipe open forever).
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(100);

pub struct ExecSpec {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub stdin: Vec<u8>,
    pub timeout: Option<Duration>,
    /// Bytes per stream; the process group is killed past it.
    pub output_limit: u64,
}

/// Which stream a chunk came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

#[derive(Clone, Debug, Default)]
pub struct ExecOutcome {
    pub status: Option<ExitStatus>,
    /// exited, signaled, wall_timeout, output_limit, oom_killed,
    /// setup_failed, session_ended.
    pub termination: &'static str,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub wall_time_us: u64,
    pub error: Option<StepFailure>,
}

fn pipe_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| std::io::Error::from_raw_os_error(e as i32))
}

/// Runs one process to its end. `chunks` (optional) receives output as it
/// comes; the outcome holds all of it either way (up to the limit).
pub async fn exec(
    sb: &SessionSandbox,
    spec: ExecSpec,
    chunks: Option<mpsc::Sender<(Stream, Vec<u8>)>>,
) -> std::io::Result<ExecOutcome> {
    let (in_r, in_w) = pipe_pair()?;
    let (out_r, out_w) = pipe_pair()?;
    let (err_r, err_w) = pipe_pair()?;
    let started = Instant::now();
    let oom_before = sb.oom_kills();
    let spawned = sb
        .spawn(
            spec.args,
            spec.env,
            spec.cwd,
            None,
            &[in_r.as_fd(), out_w.as_fd(), err_w.as_fd()],
        )
        .await;
    drop((in_r, out_w, err_w));
    let mut proc = match spawned {
        Ok(p) => p,
        Err(SpawnError::Failed(f)) => {
            let code = match (f.step.as_str(), f.errno.as_deref()) {
                ("exec", Some("ENOENT")) => 127,
                ("exec", _) => 126,
                _ => 125,
            };
            return Ok(ExecOutcome {
                status: Some(ExitStatus {
                    code: Some(code),
                    ..Default::default()
                }),
                termination: "setup_failed",
                error: Some(f),
                ..Default::default()
            });
        }
        Err(SpawnError::SessionGone) => {
            return Ok(ExecOutcome {
                termination: "session_ended",
                ..Default::default()
            })
        }
    };
    let mut stdin_w = pipe::Sender::from_owned_fd(in_w)?;
    let mut out = pipe::Receiver::from_owned_fd(out_r)?;
    let mut err = pipe::Receiver::from_owned_fd(err_r)?;
    let stdin = spec.stdin;
    let writer = tokio::spawn(async move {
        let _ = stdin_w.write_all(&stdin).await;
        // Dropping closes the pipe: EOF for the program.
    });

    let mut outcome = ExecOutcome::default();
    let limit = spec.output_limit;
    let deadline = spec.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut killed: Option<&'static str> = None;
    let (mut out_open, mut err_open) = (true, true);
    let mut status: Option<Option<ExitStatus>> = None;
    let mut drain_until: Option<tokio::time::Instant> = None;
    let mut buf_o = vec![0u8; 32 * 1024];
    let mut buf_e = vec![0u8; 32 * 1024];
    loop {
        if status.is_some() && (!out_open && !err_open) {
            break;
        }
        let timer = async {
            match (drain_until, deadline, killed) {
                (Some(d), _, _) => tokio::time::sleep_until(d).await,
                (None, Some(d), None) => tokio::time::sleep_until(d).await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            r = out.read(&mut buf_o), if out_open => match r {
                Ok(0) | Err(_) => out_open = false,
                Ok(n) => {
                    if take(&mut outcome.stdout, &mut outcome.stdout_truncated, &buf_o[..n], limit, &chunks, Stream::Stdout).await && killed.is_none() {
                        killed = Some("output_limit");
                        sb.signal(proc.id, libc::SIGKILL).await;
                    }
                }
            },
            r = err.read(&mut buf_e), if err_open => match r {
                Ok(0) | Err(_) => err_open = false,
                Ok(n) => {
                    if take(&mut outcome.stderr, &mut outcome.stderr_truncated, &buf_e[..n], limit, &chunks, Stream::Stderr).await && killed.is_none() {
                        killed = Some("output_limit");
                        sb.signal(proc.id, libc::SIGKILL).await;
                    }
                }
            },
            s = proc.wait(), if status.is_none() => {
                status = Some(s);
                outcome.wall_time_us = started.elapsed().as_micros() as u64;
                drain_until = Some(tokio::time::Instant::now() + DRAIN_AFTER_EXIT);
            },
            () = timer => {
                if drain_until.is_some() {
                    break;
                }
                killed = Some("wall_timeout");
                sb.signal(proc.id, libc::SIGKILL).await;
            }
        }
    }
    writer.abort();
    let status = status.flatten();
    outcome.termination = match (killed, status) {
        (Some(k), _) => k,
        (None, None) => "session_ended",
        (None, Some(s)) => {
            let oom_after = sb.oom_kills();
            if s.signal == Some(libc::SIGKILL) && oom_after > oom_before {
                "oom_killed"
            } else if s.signal == Some(libc::SIGSYS) {
                "seccomp_kill"
            } else if s.signal.is_some() {
                "signaled"
            } else {
                "exited"
            }
        }
    };
    outcome.status = status;
    Ok(outcome)
}

/// Appends what fits under `limit`; true when the stream went over it.
async fn take(
    acc: &mut Vec<u8>,
    truncated: &mut bool,
    data: &[u8],
    limit: u64,
    chunks: &Option<mpsc::Sender<(Stream, Vec<u8>)>>,
    stream: Stream,
) -> bool {
    let room = (limit as usize).saturating_sub(acc.len());
    let n = data.len().min(room);
    if n > 0 {
        acc.extend_from_slice(&data[..n]);
        if let Some(tx) = chunks {
            let _ = tx.send((stream, data[..n].to_vec())).await;
        }
    }
    if data.len() > room {
        *truncated = true;
        return true;
    }
    false
}
