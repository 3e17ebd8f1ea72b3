//! `POST /v1/run`: a fresh sandbox for one program (the "run this code"
//! button), on the one-shot path the judge's test runs take
//! ([`crate::engine::oneshot`]): a helper creates the sandbox, its PID 1
//! writes the request's files into /workspace ([`sandbox::seed`]) and
//! starts the program, the helper's supervisor enforces the wall, CPU-time
//! and output limits and classifies the end (so `cpu_timeout` and
//! `pids_limit` are reported), and the network namespace is taken from and
//! given back to the pool of clean ones. The daemon feeds stdin and reads
//! stdout/stderr into the same capped capture an exec uses.
//!
//! The run belongs to the request: if the client goes away this future
//! is dropped, which closes the helper's control socket (the helper then
//! kills the sandbox and cleans up) and gives the quota slot back at once.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use sandbox::{ExitReport, Termination};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;

use crate::auth::Tenant;
use crate::budget::Grant;
use crate::engine::host::Oneshot;
use crate::engine::oneshot::OneshotStdio;
use crate::engine::process::{ExecOutcome, Output, CHUNK_BYTES};
use crate::engine::session::ExitStatus;
use crate::engine::{Engine, StartError};
use crate::error::{ApiError, ErrorBody, Json};
use crate::routes::exec::{capture, captured_response, check_argv};
use crate::state::{check_env, process_env, start_error, AppState};
use crate::types::{decode_input, ExecResult, RunRequest};

/// How often a running run looks whether the daemon shuts down.
const SHUTDOWN_POLL: Duration = Duration::from_millis(200);

/// The longest wall-clock and CPU-time limit a run may ask for.
const MAX_LIMIT: Duration = Duration::from_secs(24 * 3600);

/// Run a program in a fresh sandbox.
#[utoipa::path(post, path = "/v1/run", request_body = RunRequest,
    responses((status = 200, body = ExecResult),
        (status = 400, body = ErrorBody, description = "invalid_request, limit_out_of_range, invalid_path"),
        (status = 403, body = ErrorBody, description = "permission_denied: a file the sandbox user may not write"),
        (status = 404, body = ErrorBody, description = "image_not_found"),
        (status = 409, body = ErrorBody, description = "not_a_directory, is_a_directory: files that collide (a and a/b)"),
        (status = 413, body = ErrorBody, description = "body_too_large, workspace_full"),
        (status = 422, body = ErrorBody, description = "image_invalid"),
        (status = 429, body = ErrorBody, description = "quota_exceeded"),
        (status = 500, body = ErrorBody, description = "sandbox_failed, internal_error"),
        (status = 503, body = ErrorBody, description = "shutting_down, capacity_exhausted, images_unavailable, output_budget_exhausted (with Retry-After)",
            headers(("Retry-After" = u64, description = "seconds to wait before trying again (output_budget_exhausted)")))))]
pub async fn run(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Tenant>,
    Json(req): Json<RunRequest>,
) -> Result<Response, ApiError> {
    // Everything is checked before anything exists.
    let checked = Checked::of(&state, req)?;
    // Output room next: a run the budget cannot take starts nothing.
    let output = match capture(&state, &tenant, checked.output_limit) {
        Ok(Output::Captured(grant)) => grant,
        Ok(Output::Streamed(_)) => return Err(ApiError::internal("capture: not a capture")),
        Err(refused) => return Ok(*refused),
    };
    // The image is resolved (404, 503) before the run takes a slot, as a
    // session's is; its lease keeps gc away until the helper has its own.
    let image = match checked.image.as_deref() {
        None | Some("host") => None,
        Some(name) => Some(
            crate::images::prepare(state.images.as_ref(), name, checked.limits.disk_bytes).await?,
        ),
    };
    let _slot = state.reserve_run(&tenant)?;
    let (image_env, image_cwd) = image
        .as_ref()
        .map(|i| (i.defaults.env.clone(), i.defaults.cwd.clone()))
        .unwrap_or_default();
    let env = process_env(&image_env, &checked.env, &BTreeMap::new(), false);
    let cwd = image_cwd.unwrap_or_else(|| "/workspace".into());
    let request = crate::spec::run_request(
        &checked.limits,
        crate::spec::RunProcess {
            argv: checked.argv,
            env,
            cwd,
            wall_time: checked.timeout,
            cpu_time: checked.cpu_time,
            output_limit: checked.output_limit,
        },
    )?;
    let (files_fd, manifest) = files_source(&checked.files)?;
    let once = Oneshot {
        files: manifest,
        ..Oneshot::default()
    };
    let (in_r, in_w) = pipe_pair()?;
    let (out_r, out_w) = pipe_pair()?;
    let (err_r, err_w) = pipe_pair()?;
    let stdio = OneshotStdio {
        stdin: in_r,
        stdout: out_w,
        stderr: err_w,
        files: files_fd,
    };
    let id = format!("s-{}", sandbox::id::generate());
    let started = Instant::now();
    let finished =
        state
            .engine
            .run_oneshot(&id, &request, image.as_ref().map(|i| &i.root), once, stdio);
    let limit = checked.output_limit;
    let outputs = async {
        tokio::join!(
            finished,
            read_capped(out_r, limit),
            read_capped(err_r, limit)
        )
    };
    // A daemon shutting down ends the run (dropping it kills the sandbox)
    // rather than waiting for its time limit.
    let shutdown = async {
        while !state.shutting_down.load(Ordering::Relaxed) {
            tokio::time::sleep(SHUTDOWN_POLL).await;
        }
    };
    let (report, stdout, stderr) = tokio::select! {
        done = with_stdin(in_w, checked.stdin, outputs) => done?,
        () = shutdown => return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the daemon is shutting down",
        )),
    };
    drop(image);
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            state.metrics.sandbox_started(started.elapsed(), false);
            return Err(run_error(e, &checked.files));
        }
    };
    let took = started
        .elapsed()
        .saturating_sub(Duration::from_micros(report.wall_time_us));
    state.metrics.sandbox_started(took, true);
    state
        .metrics
        .result(crate::types::ExecTermination::Ran(report.termination), true);
    captured_response(outcome(report, stdout, stderr, limit, output))
}

/// A request checked and decoded, nothing started yet.
struct Checked {
    image: Option<String>,
    argv: Vec<String>,
    env: BTreeMap<String, String>,
    stdin: Vec<u8>,
    /// (relative path below /workspace, bytes).
    files: Vec<(PathBuf, Vec<u8>)>,
    limits: crate::types::Limits,
    cpu_time: Option<Duration>,
    timeout: Duration,
    output_limit: u64,
}

impl Checked {
    fn of(state: &AppState, req: RunRequest) -> Result<Checked, ApiError> {
        let mut files = Vec::with_capacity(req.files.len());
        for f in &req.files {
            let data = decode_input(&f.content, f.encoding.as_deref(), "files[].content")?;
            files.push((crate::workspace::seed_path(&f.path)?, data));
        }
        if files.len() > sandbox::seed::MAX_FILES {
            return Err(ApiError::invalid(format!(
                "files: at most {} files",
                sandbox::seed::MAX_FILES
            )));
        }
        check_argv(&req.argv)?;
        check_env(&req.env)?;
        let limits = crate::spec::resolve_limits(req.limits.as_ref(), &state.cfg)?;
        let cpu_time = cpu_time(req.limits.as_ref().and_then(|l| l.cpu_time.as_deref()))?;
        let stdin = match &req.stdin {
            Some(s) => decode_input(s, req.stdin_encoding.as_deref(), "stdin")?,
            None => Vec::new(),
        };
        let timeout = req.timeout_ms.unwrap_or(state.cfg.exec_timeout_ms);
        if timeout == 0 || Duration::from_millis(timeout) > MAX_LIMIT {
            return Err(ApiError::limit("timeout_ms: outside 1..86400000"));
        }
        Ok(Checked {
            image: req.image,
            argv: req.argv,
            env: req.env,
            stdin,
            files,
            limits,
            cpu_time,
            timeout: Duration::from_millis(timeout),
            output_limit: req.output_limit.unwrap_or(state.cfg.exec_output_limit),
        })
    }
}

/// `limits.cpu_time` of `/v1/run` and of an exec, with the parser and
/// the bounds of the CLI's `--cpu-time`.
pub fn cpu_time(text: Option<&str>) -> Result<Option<Duration>, ApiError> {
    let Some(text) = text else {
        return Ok(None);
    };
    sandbox::spec::size::parse_duration(text)
        .ok()
        .filter(|d| !d.is_zero() && *d <= MAX_LIMIT)
        .map(Some)
        .ok_or_else(|| {
            ApiError::limit(format!(
                "limits.cpu_time: {text:?} is not a duration in 1ns..24h \
                 (e.g. \"500ms\", \"2s\")"
            ))
        })
}

fn pipe_pair() -> Result<(OwnedFd, OwnedFd), ApiError> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| ApiError::internal(format!("pipe: {e}")))
}

/// The files' bytes back to back in a sealed memfd, and where each goes.
/// The memfd is read by the sandbox's PID 1 only (it charges the pages it
/// writes to the sandbox); ours lives until the run started.
fn files_source(
    files: &[(PathBuf, Vec<u8>)],
) -> Result<(Option<OwnedFd>, Option<sandbox::seed::Manifest>), ApiError> {
    if files.is_empty() {
        return Ok((None, None));
    }
    let internal = |e: std::io::Error| ApiError::internal(format!("the files' memfd: {e}"));
    let fd = nix::sys::memfd::memfd_create(
        c"runtimed-run-files",
        nix::sys::memfd::MFdFlags::MFD_CLOEXEC | nix::sys::memfd::MFdFlags::MFD_ALLOW_SEALING,
    )
    .map_err(|e| internal(e.into()))?;
    let mut file = std::fs::File::from(fd);
    for (_, data) in files {
        file.write_all(data).map_err(internal)?;
    }
    // Nothing can change the bytes after the manifest was made from them.
    let seals = nix::fcntl::SealFlag::F_SEAL_SEAL
        | nix::fcntl::SealFlag::F_SEAL_SHRINK
        | nix::fcntl::SealFlag::F_SEAL_GROW
        | nix::fcntl::SealFlag::F_SEAL_WRITE;
    nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_ADD_SEALS(seals))
        .map_err(|e| internal(e.into()))?;
    let manifest = sandbox::seed::Manifest {
        dir: "/workspace".into(),
        files: files
            .iter()
            .map(|(path, data)| sandbox::seed::SeedFile {
                path: path.clone(),
                len: data.len() as u64,
            })
            .collect(),
    };
    Ok((Some(file.into()), Some(manifest)))
}

/// Runs `outputs` to its end while `stdin` is written into the program's
/// stdin pipe beside it; the pipe closes (EOF) once all was written, or
/// when `outputs` ended first (the program need never read its stdin).
async fn with_stdin<T>(
    stdin_w: OwnedFd,
    stdin: Vec<u8>,
    outputs: impl std::future::Future<Output = T>,
) -> Result<T, ApiError> {
    let mut sender = pipe::Sender::from_owned_fd(stdin_w)
        .map_err(|e| ApiError::internal(format!("stdin pipe: {e}")))?;
    let feed = async move {
        // EPIPE: the program ended or closed its stdin, which is its
        // business.
        let _ = sender.write_all(&stdin).await;
        drop(sender);
        std::future::pending::<()>().await
    };
    tokio::select! {
        done = outputs => Ok(done),
        () = feed => Err(ApiError::internal("stdin: the feeder ended")),
    }
}

/// What a stream's pipe carried, at most `limit` bytes of it, and whether
/// there was more. The helper's supervisor forwards no more than the
/// limit (and kills the run past it), so the cut here is a second line.
async fn read_capped(fd: OwnedFd, limit: u64) -> (Vec<u8>, bool) {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let Ok(mut pipe) = pipe::Receiver::from_owned_fd(fd) else {
        return (Vec::new(), false);
    };
    let mut kept = Vec::new();
    let mut more = false;
    let mut buf = vec![0u8; CHUNK_BYTES];
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return (kept, more),
            Ok(n) => n,
        };
        let take = n.min(limit - kept.len());
        if take < n {
            more = true;
        }
        if kept.len() + take > kept.capacity() {
            // Doubling, never past the limit the budget reserved for.
            let want = (kept.len() + take).max(kept.capacity() * 2).min(limit);
            kept.reserve_exact(want - kept.len());
        }
        kept.extend_from_slice(&buf[..take]);
    }
}

/// The exec result of a finished run.
fn outcome(
    report: ExitReport,
    stdout: (Vec<u8>, bool),
    stderr: (Vec<u8>, bool),
    limit: u64,
    grant: Grant,
) -> ExecOutcome {
    // At the limit when the run was stopped for its output: that stream
    // was cut (the helper counted what the program wrote).
    let cut = |counted: Option<u64>, kept: usize| {
        report.termination == Termination::OutputLimit && counted.unwrap_or(kept as u64) >= limit
    };
    let code = match &report.error {
        Some(_) => Some(report.shell_status()),
        None => report.exit_code,
    };
    ExecOutcome {
        status: Some(ExitStatus {
            code,
            signal: report.signal,
            cpu_user_us: report.cpu_user_us,
            cpu_system_us: report.cpu_system_us,
            // The sandbox's peak (its memory cgroup), which holds the
            // program's.
            max_rss_kb: report.memory_peak_bytes / 1024,
        }),
        termination: crate::types::ExecTermination::Ran(report.termination),
        stdout_truncated: stdout.1 || cut(report.stdout_bytes, stdout.0.len()),
        stderr_truncated: stderr.1 || cut(report.stderr_bytes, stderr.0.len()),
        stdout_bytes: stdout.0.len() as u64,
        stderr_bytes: stderr.0.len() as u64,
        stdout: stdout.0,
        stderr: stderr.0,
        wall_time_us: report.wall_time_us,
        cpu_time_us: report.cpu_total_us,
        error: report.error,
        grant: Some(grant),
    }
}

/// A run that did not start, as the client hears it: a file PID 1 could
/// not write is the files API's error for it (the same codes and
/// statuses); the rest as a session's start.
fn run_error(e: StartError, files: &[(PathBuf, Vec<u8>)]) -> ApiError {
    if let StartError::Setup(f) = &e {
        if f.step == sandbox::seed::STEP {
            let errno = f.errno.unwrap_or(Errno::EIO);
            // PID 1 names the file, or the directory on its way that
            // failed, first in its message: the longest that fits.
            let path = files
                .iter()
                .flat_map(|(p, _)| p.ancestors())
                .filter(|p| !p.as_os_str().is_empty())
                .filter(|p| f.message.starts_with(&format!("{}: ", p.display())))
                .max_by_key(|p| p.as_os_str().len());
            if let Some(path) = path {
                return crate::workspace::seed_error(path, errno).into();
            }
        }
    }
    start_error(e)
}
